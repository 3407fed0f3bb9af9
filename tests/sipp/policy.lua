-- A policy for tests/sipp: refuse transfers to "blocked", follow others
-- from the script itself; report the follow-up call's progress.
function on_invite(invitation)
  print("script on_invite " .. tostring(invitation.remote_identity))
  return false -- the flags answer
end
function on_refer(referral)
  local user = referral.refer_to.uri.user
  print("script on_refer " .. tostring(referral.id) .. " " .. tostring(user))
  if user == "blocked" then
    referral:reject(403)
    return
  end
  referral:accept()
  referral:make_inviter():invite()
end
function on_notify(referral, code, reason)
  print(string.format("script on_notify %d %d %s", referral.id, code, reason))
end
