-- The benchmark's Lua policy for `sipreferral-agent --script`: it decides
-- exactly what the agent's flags --on-invite answer --on-refer follow do
-- (180 then 200; 202, then the INVITE to the Refer-To target), so the
-- difference in cost is the binding's.

function on_invite(invitation)
  invitation:progress()
  invitation:accept()
  return true -- handled: the flags do nothing more
end

function on_refer(referral)
  referral:accept()
  referral:make_inviter():invite()
  return true
end
