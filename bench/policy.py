"""The benchmark's Python policy for `python3 -m sipreferral agent
--script`: it decides exactly what the agent's flags --on-invite answer
--on-refer follow do (180 then 200; 202, then the INVITE to the Refer-To
target), so the difference in cost is the binding's."""


def on_invite(invitation):
    invitation.progress()
    invitation.accept()
    return True  # handled: the flags do nothing more


def on_refer(referral):
    referral.accept()
    referral.make_inviter().invite()
    return True
