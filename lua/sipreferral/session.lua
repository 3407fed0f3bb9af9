--- sipreferral.session: Session (Inviter, Invitation) and Referrer, the
--- REFER a session sends.
-- Internal: applications use require "sipreferral".
local B = require "sipreferral.base"
B.internal()
local view = require "sipreferral.views"

local core, priv, live = B.core, B.priv, B.live
local check, argerror, check_type, check_bool, check_keys, set_of =
  B.check, B.argerror, B.check_type, B.check_bool, B.check_keys, B.set_of
local handle, wrap, forget, getter = B.handle, B.wrap, B.forget, B.getter
local wrap_session, wrap_referral, ua_of = B.wrap_session, B.wrap_referral, B.ua_of
local fmt = string.format
local KIND_SESSION, KIND_REFERRER = B.KIND_SESSION, B.KIND_REFERRER
local SESSION_EVENTS, REFERRER_EVENTS = B.SESSION_EVENTS, B.REFERRER_EVENTS
local C = B.classes
local Session, Inviter, Invitation = C.Session, C.Inviter, C.Invitation
local Referrer, IncomingRequest = C.Referrer, C.IncomingRequest

Session.ref, Session.unref = core.sr_session_ref, core.sr_session_unref
Referrer.ref, Referrer.unref = core.sr_referrer_ref, core.sr_referrer_unref

local function session_dispatcher(self)
  return function(ev, a, b)
    local st = priv[self]
    local h = st and st.h
    if not h then return end
    if ev == "state" then
      local f = h.on_state
      if f then f(core.sr_session_state_name(a)) end
    elseif ev == "response" then
      local f = h.on_response
      if f then f(a, b) end
    elseif ev == "refer" then
      local r = wrap_referral(a)
      local f = h.on_refer
      if f then f(r) end
    elseif ev == "bye" then
      local f = h.on_bye
      if f then f() end
    end
  end
end

local function set_session_handler(self, v, k)
  local what = getmetatable(self).name .. "." .. k
  local p, st = handle(self, what)
  check_type(v, "function", what, k, true)
  st.h = st.h or {}
  st.h[k] = v
  local mask = 0
  for name, bit in pairs(SESSION_EVENTS) do
    if st.h[name] then mask = mask | bit end
  end
  st.dispatch = st.dispatch or session_dispatcher(self)
  st.registered = core.sr_lua_set_handler(KIND_SESSION, p, st.dispatch, mask)
end

for k in pairs(SESSION_EVENTS) do
  Session.setters[k] = set_session_handler
  Session.getters[k] = function(self)
    local st = priv[self]
    return st and st.h and st.h[k]
  end
end

function Session.release(self)
  local st = priv[self]
  local p = st and st.p
  if not p then return end
  st.p = nil
  if live[p] == self then live[p] = nil end
  if st.registered then
    st.registered = false
    core.sr_lua_set_handler(KIND_SESSION, p, nil, 0)
  end
  core.sr_session_unref(p)
end

function Session.describe(self, st)
  if not st.p then return "released" end
  return fmt("%s, %s", core.sr_session_state_name(core.sr_session_get_state(st.p)),
             core.sr_session_call_id(st.p) or "no Call-ID yet")
end

getter(Session, "state", function(p)
  return core.sr_session_state_name(core.sr_session_get_state(p))
end)
getter(Session, "role", function(p)
  return core.sr_session_get_role(p) == core.SR_ROLE_INVITATION
    and "invitation" or "inviter"
end)
getter(Session, "call_id", core.sr_session_call_id)
getter(Session, "local_tag", core.sr_session_local_tag)
getter(Session, "remote_tag", core.sr_session_remote_tag)
getter(Session, "remote_target", core.sr_session_remote_target)
getter(Session, "remote_identity", core.sr_session_remote_identity)
getter(Session, "remote_body", core.sr_session_remote_body)
getter(Session, "ua", function(p) return ua_of(core.sr_session_get_ua(p)) end)
getter(Session, "referred_session", function(p)
  return wrap_session(core.sr_session_get_referred_session(p))
end)
getter(Session, "referral_inviter", function(p)
  return wrap_session(core.sr_session_get_referral_inviter(p))
end)

--- session:bye(): BYE when established; CANCEL (Inviter) or 487
--- (Invitation) while establishing.
function Session.methods.bye(self)
  check(core.sr_session_bye((handle(self, "Session:bye"))), "Session:bye")
end

local REFER_KEYS = set_of{"extra_headers", "refer_sub", "bye_on_success"}
for k in pairs(REFERRER_EVENTS) do REFER_KEYS[k] = true end

-- The dispatcher of a referrer: box.self, set once the Referrer object
-- exists, is held by it, so the object lives as long as its handlers.
local function referrer_dispatcher(h, box)
  return function(ev, rp, code, reason, state)
    if not box.self then
      box.self = live[rp] or wrap(Referrer, rp, false, function(st) st.h = h end)
    end
    local f = h["on_" .. ev]
    if not f then return end
    if ev == "notify" then f(code, reason, state)
    elseif ev == "closed" then f()
    else f(code, reason) end
  end
end

--- session:refer(target, opts) -> Referrer. target: a SIP URI (blind
--- transfer) or another Session (attended: Refer-To with Replaces).
--- opts: on_accept(code, reason), on_reject(code, reason),
--- on_notify(code, reason, subscription_state), on_closed(),
--- extra_headers, refer_sub (boolean), bye_on_success (boolean).
function Session.methods.refer(self, target, opts)
  local what = "Session:refer"
  local p = handle(self, what)
  local other
  if type(target) == "table" and (getmetatable(target) == Inviter
      or getmetatable(target) == Invitation) then
    other = handle(target, what)
  elseif type(target) ~= "string" then
    argerror(what, "target must be a URI string or a Session, got %s", type(target))
  else
    check_type(target, "string", what, "target")
  end
  opts = opts or {}
  check_type(opts, "table", what, "options")
  check_keys(opts, REFER_KEYS, what)
  local h = {}
  for k in pairs(REFERRER_EVENTS) do h[k] = check_type(opts[k], "function", what, k, true) end
  local c = {extra_headers = B.headers_text(opts.extra_headers, what),
             refer_sub = check_bool(opts.refer_sub, what, "refer_sub"),
             bye_on_success = check_bool(opts.bye_on_success, what, "bye_on_success")}
  local box = {}
  local dispatch = referrer_dispatcher(h, box)
  local rp, rc = core.sr_lua_refer(p, other or target, c, dispatch)
  if not rp then check(rc, what) end
  local r = wrap(Referrer, rp, true, function(st) st.h = h end)
  box.self = r
  core.sr_lua_set_handler(KIND_REFERRER, rp, dispatch, 1)
  return r
end

-- Inviter
--- inviter:invite(): sends the INVITE.
function Inviter.methods.invite(self)
  local st = priv[self]
  local rc = core.sr_inviter_invite(st and st.kinds[Inviter] and st.p
                                    or handle(self, "Inviter:invite"))
  if rc < 0 then check(rc, "Inviter:invite") end
end
--- inviter:cancel(): cancels an INVITE not yet answered finally.
function Inviter.methods.cancel(self)
  check(core.sr_inviter_cancel((handle(self, "Inviter:cancel"))), "Inviter:cancel")
end

-- Invitation
local respond = B.respond
--- invitation:progress{status_code=180|183, ...}
Invitation.methods.progress = respond("Invitation:progress", 0)
--- invitation:accept{body=..., content_type=..., extra_headers=...}: 200
Invitation.methods.accept = respond("Invitation:accept", 1)
--- invitation:reject{status_code=486, ...} or invitation:reject(486)
Invitation.methods.reject = respond("Invitation:reject", 2)
Invitation.getters.request = function(self)
  local p, st = handle(self, "Invitation.request")
  st.request = st.request or view(IncomingRequest, self, core.sr_invitation_get_request(p))
  return st.request
end
getter(Invitation, "replaces", function(p)
  return wrap_session(core.sr_invitation_get_replaced(p))
end)

------------------------------------------------------------------ referrer

function Referrer.release(self)
  local st = priv[self]
  if not (st and st.p) then return end
  local p = forget(self, st)
  -- A placeholder, not nil: its later events must not be taken for those
  -- of a REFER being sent (see sr_lua_refer).
  core.sr_lua_set_handler(KIND_REFERRER, p, false, 0)
  core.sr_referrer_unref(p)
end
function Referrer.describe(_, st)
  if not st.p then return "released" end
  return core.sr_referrer_is_closed(st.p) ~= 0 and "closed" or "active"
end
getter(Referrer, "id", core.sr_referrer_get_id)
getter(Referrer, "closed", function(p) return core.sr_referrer_is_closed(p) ~= 0 end)
getter(Referrer, "session", function(p) return wrap_session(core.sr_referrer_get_session(p)) end)
for k in pairs(REFERRER_EVENTS) do
  Referrer.getters[k] = function(self)
    local st = priv[self]
    return st and st.h and st.h[k]
  end
  Referrer.setters[k] = function(self, v)
    local _, st = handle(self, "Referrer." .. k)
    check_type(v, "function", "Referrer." .. k, k, true)
    st.h[k] = v
  end
end

return Session
