--- sipreferral.referral: Referral, an incoming REFER.
-- Internal: applications use require "sipreferral".
local B = require "sipreferral.base"
B.internal()
local view = require "sipreferral.views"

local core, priv, live = B.core, B.priv, B.live
local check, argerror, check_int, check_type = B.check, B.argerror, B.check_int, B.check_type
local handle, getter = B.handle, B.getter
local wrap_session, ua_of = B.wrap_session, B.ua_of
local SESSION_EVENTS, NOTIFY_MODES = B.SESSION_EVENTS, B.NOTIFY_MODES
local C = B.classes
local Referral = C.Referral

Referral.ref, Referral.unref = core.sr_referral_ref, core.sr_referral_unref

local REFERRAL_STATES = {[core.SR_REFERRAL_PENDING] = "pending",
                         [core.SR_REFERRAL_ACCEPTED] = "accepted",
                         [core.SR_REFERRAL_REJECTED] = "rejected",
                         [core.SR_REFERRAL_TERMINATED] = "terminated"}

function Referral.release(self)
  local st = priv[self]
  local p = st and st.p
  if not p then return end
  st.p = nil
  if live[p] == self then live[p] = nil end
  core.sr_referral_unref(p)
end
function Referral.describe(_, st)
  if not st.p then return "released" end
  return REFERRAL_STATES[core.sr_referral_get_state(st.p)] or "?"
end

getter(Referral, "state", function(p) return REFERRAL_STATES[core.sr_referral_get_state(p)] end)
getter(Referral, "referred_by", core.sr_referral_referred_by)
getter(Referral, "replaces", core.sr_referral_replaces)
getter(Referral, "id", core.sr_referral_get_id)
getter(Referral, "refer_sub", function(p) return core.sr_referral_get_refer_sub(p) ~= 0 end)
getter(Referral, "session", function(p) return wrap_session(core.sr_referral_get_session(p)) end)
getter(Referral, "ua", function(p) return ua_of(core.sr_referral_get_ua(p)) end)
Referral.getters.refer_to = function(self)
  local p, st = handle(self, "Referral.refer_to")
  st.refer_to = st.refer_to or view(C.NameAddrHeader, self, core.sr_referral_refer_to(p))
  return st.refer_to
end
Referral.getters.request = function(self)
  local p, st = handle(self, "Referral.request")
  st.request = st.request or view(C.IncomingRequest, self, core.sr_referral_request(p))
  return st.request
end

--- referral:accept{status_code=202, ...}: 2xx, then NOTIFY 100.
Referral.methods.accept = B.respond("Referral:accept", 3)
--- referral:reject{status_code=603, reason_phrase=...} or referral:reject(603)
Referral.methods.reject = B.respond("Referral:reject", 4)

--- referral:make_inviter{extra_headers=..., ...} -> Inviter (the same
--- object when called again). Its responses drive the NOTIFYs.
function Referral.methods.make_inviter(self, opts)
  local what = "Referral:make_inviter"
  local st = priv[self]
  local p = st and st.kinds[Referral] and st.p or handle(self, what)
  local c = opts ~= nil and B.inviter_opts(opts, what) or nil
  local sp, rc = core.sr_lua_referral_make_inviter(p, c)
  if not sp then check(rc, what) end
  local inv = wrap_session(sp, false)
  if opts then
    for k in pairs(SESSION_EVENTS) do if opts[k] then inv[k] = opts[k] end end
  end
  return inv
end

--- referral:set_notify_mode("all" | "final_only" | "none")
function Referral.methods.set_notify_mode(self, mode)
  local what = "Referral:set_notify_mode"
  local p = handle(self, what)
  local m = NOTIFY_MODES[mode]
  if not m then argerror(what, "mode must be \"all\", \"final_only\" or \"none\"") end
  check(core.sr_referral_set_notify_mode(p, m), what)
end

--- referral:notify(status_code [, reason_phrase]): a NOTIFY with that
--- sipfrag; a final code ends the subscription.
function Referral.methods.notify(self, code, reason)
  local what = "Referral:notify"
  local p = handle(self, what)
  code = check_int(code, what, "status_code")
  check_type(reason, "string", what, "reason_phrase", true)
  check(core.sr_referral_notify(p, code, reason), what)
end

return Referral
