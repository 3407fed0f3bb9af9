--- sipreferral.useragent: UserAgent and the loop (ua:run, sr.run).
-- Internal: applications use require "sipreferral".
local B = require "sipreferral.base"
B.internal()

local core, priv, live = B.core, B.priv, B.live
local raise, check, argerror, check_type, check_int, check_bool, check_keys, set_of =
  B.raise, B.check, B.argerror, B.check_type, B.check_int, B.check_bool,
  B.check_keys, B.set_of
local handle, forget, getter = B.handle, B.forget, B.getter
local wrap_session, wrap_referral = B.wrap_session, B.wrap_referral
local KIND_UA, UA_EVENTS, SESSION_EVENTS = B.KIND_UA, B.UA_EVENTS, B.SESSION_EVENTS
local NOTIFY_MODES = B.NOTIFY_MODES
local ECLOSED = B.codes.ECLOSED
local tointeger, mtype = math.tointeger, math.type
local fmt, concat = string.format, table.concat
local UserAgent = B.classes.UserAgent
local M = {} -- what this part adds to the module: run, stats

local LEVEL_NAMES = {[core.SR_LOG_ERROR] = "error", [core.SR_LOG_WARNING] = "warning",
                     [core.SR_LOG_INFO] = "info", [core.SR_LOG_DEBUG] = "debug"}
local LOG_LEVELS = {error = core.SR_LOG_ERROR, warning = core.SR_LOG_WARNING,
                    info = core.SR_LOG_INFO, debug = core.SR_LOG_DEBUG}

local UA_STRINGS = {"uri", "display_name", "user_agent", "username", "password",
                    "outbound_proxy"}
local UA_INTS = {"t1_ms", "t2_ms", "t4_ms", "max_message_size",
                 "refer_decision_timeout_ms", "refer_expires_s", "max_sessions",
                 "max_referrals", "max_referrals_per_session",
                 "max_tcp_connections", "tcp_idle_timeout_ms", "udp_receive_buffer"}
local UA_BOOLS = {"allow_out_of_dialog_refer"}
local UA_KEYS = set_of{"listen", "log_level", "allowed_schemes", "notify_mode"}
for _, list in ipairs{UA_STRINGS, UA_INTS, UA_BOOLS} do
  for _, k in ipairs(list) do UA_KEYS[k] = true end
end
for k in pairs(UA_EVENTS) do UA_KEYS[k] = true end

local function ua_handle(self, what)
  local p, st = handle(self, what)
  if core.sr_ua_fd(p) < 0 then raise(ECLOSED, "%s: the user agent is closed", what) end
  return p, st
end

local function ua_dispatcher(self)
  local ref = setmetatable({self}, {__mode = "v"}) -- the UA may be collected
  return function(ev, a, b, c, d, e)
    local ua = ref[1]
    local h = ua and priv[ua] and priv[ua].h or {}
    if ev == "invite" then
      local inv = wrap_session(a)
      local f = h.on_invite
      if f then f(inv) else inv:reject{status_code = 480} end
    elseif ev == "refer" then
      local r = wrap_referral(a)
      local f = h.on_refer
      if f then f(r) end
    elseif ev == "policy" then
      local f = h.on_refer_policy
      if not f then return 0 end
      local code = f(wrap_referral(a))
      if code == nil or code == false or code == 0 then return 0 end
      local i = type(code) == "number" and tointeger(code)
      if not i or i < 300 or i > 699 then
        error("on_refer_policy must return nil or a status code 300-699, got "
              .. tostring(code), 0)
      end
      return i
    elseif ev == "message" then
      local f = h.on_message
      if not f then return 0 end
      local tp = b == core.SR_TRANSPORT_TCP and "tcp" or "udp"
      return f(a, tp, c, d, e) and 1 or 0
    end
  end
end

local function set_ua_handler(self, v, k)
  local what = "UserAgent." .. k
  local p, st = handle(self, what)
  check_type(v, "function", what, k, true)
  st.h[k] = v
  local mask = 0
  for name, bit in pairs(UA_EVENTS) do
    if st.h[name] then mask = mask | bit end
  end
  st.dispatch = st.dispatch or ua_dispatcher(self)
  core.sr_lua_set_handler(KIND_UA, p, st.dispatch, mask)
end

for k in pairs(UA_EVENTS) do
  UserAgent.setters[k] = set_ua_handler
  UserAgent.getters[k] = function(self)
    local st = priv[self]
    return st and st.h[k]
  end
end

function UserAgent.release(self)
  local st = priv[self]
  if st and st.p then core.sr_lua_ua_free(forget(self, st)) end
end
function UserAgent.describe(_, st)
  if not st.p then return "released" end
  return fmt("%s%s", core.sr_ua_uri(st.p), core.sr_ua_fd(st.p) < 0 and " (closed)" or "")
end

--- sr.UserAgent{uri=..., listen={"udp:127.0.0.1:0", ...}, ...}
-- Options: display_name, user_agent, username, password, outbound_proxy
-- ("sip:HOST[:PORT][;transport=tcp]", the first hop of out-of-dialog INVITEs), t1_ms, t2_ms,
-- t4_ms, max_message_size, log_level ("error"|"warning"|"info"|"debug"),
-- allow_out_of_dialog_refer (boolean),
-- allowed_schemes ({"sip","tel"} or "sip,tel"; default "sip"), refer_decision_timeout_ms,
-- refer_expires_s, notify_mode ("all"|"final_only"|"none"), max_sessions,
-- max_referrals, max_referrals_per_session, max_tcp_connections,
-- tcp_idle_timeout_ms, udp_receive_buffer, and the handlers on_invite, on_refer,
-- on_refer_policy, on_message, on_log.
local function new_user_agent(_, o)
  local what = "UserAgent"
  check_type(o, "table", what, "options")
  check_keys(o, UA_KEYS, what)
  check_type(o.uri, "string", what, "uri")
  local c = {}
  for _, k in ipairs(UA_STRINGS) do c[k] = check_type(o[k], "string", what, k, true) end
  for _, k in ipairs(UA_INTS) do c[k] = check_int(o[k], what, k, true) end
  for _, k in ipairs(UA_BOOLS) do c[k] = check_bool(o[k], what, k) end
  if o.log_level ~= nil then
    c.log_level = LOG_LEVELS[o.log_level] or (mtype(o.log_level) == "integer" and o.log_level)
    if not c.log_level then argerror(what, "bad log_level %s", tostring(o.log_level)) end
  end
  if o.notify_mode ~= nil then
    c.notify_mode = NOTIFY_MODES[o.notify_mode]
    if not c.notify_mode then argerror(what, "bad notify_mode %s", tostring(o.notify_mode)) end
  end
  local schemes = o.allowed_schemes
  if type(schemes) == "table" then
    for i = 1, #schemes do check_type(schemes[i], "string", what, "allowed_schemes entry") end
    schemes = concat(schemes, ",")
  end
  c.allowed_schemes = check_type(schemes, "string", what, "allowed_schemes", true)
  local listen = o.listen
  if type(listen) == "string" then listen = {listen} end
  check_type(listen, "table", what, "listen", true)
  for k in pairs(UA_EVENTS) do check_type(o[k], "function", what, k, true) end

  local p, rc = core.sr_lua_ua_new(c)
  if not p then check(rc, what) end
  local ua = setmetatable({}, UserAgent)
  priv[ua] = {p = p, h = {}, kinds = UserAgent.kinds}
  live[p] = ua
  for k in pairs(UA_EVENTS) do -- first: on_log sees the listening lines
    if o[k] then ua[k] = o[k] end
  end
  for _, spec in ipairs(listen or {}) do
    if type(spec) ~= "string" then
      UserAgent.release(ua)
      argerror(what, "listen entries must be strings like \"udp:127.0.0.1:0\"")
    end
    local lrc = core.sr_ua_listen(p, spec)
    if lrc < 0 then
      UserAgent.release(ua)
      raise(lrc, "%s: cannot listen on %s: %s", what, spec, core.sr_strerror(lrc))
    end
  end
  return ua
end
setmetatable(UserAgent, {__call = new_user_agent})

getter(UserAgent, "uri", core.sr_ua_uri)
UserAgent.getters.closed = function(self)
  local st = priv[self]
  return not (st and st.p) or core.sr_ua_fd(st.p) < 0
end

--- ua:listen("udp:HOST:PORT" | "tcp:HOST:PORT")
function UserAgent.methods.listen(self, spec)
  local p = ua_handle(self, "UserAgent:listen")
  check_type(spec, "string", "UserAgent:listen", "spec")
  check(core.sr_ua_listen(p, spec), "UserAgent:listen " .. spec)
end

--- ua:address("udp" | "tcp") -> host, port actually bound (first listener).
function UserAgent.methods.address(self, transport)
  local what = "UserAgent:address"
  local p = ua_handle(self, what)
  local tp = B.transport_arg(transport or "udp", what)
  local port = core.sr_ua_local_port(p, tp)
  if port < 0 then argerror(what, "no %s listener", transport or "udp") end
  return core.sr_ua_local_host(p, tp), port
end

--- ua:fileno() -> the descriptor to watch for readability.
function UserAgent.methods.fileno(self)
  return core.sr_ua_fd((ua_handle(self, "UserAgent:fileno")))
end

--- ua:next_timeout() -> seconds until the next timer, or nil if none.
function UserAgent.methods.next_timeout(self)
  local ms = core.sr_ua_next_timeout_ms((ua_handle(self, "UserAgent:next_timeout")))
  return ms >= 0 and ms / 1000 or nil
end

--- ua:close(): ends every session, referral and referrer of the UA
--- without sending anything; their handlers are released. Idempotent.
function UserAgent.methods.close(self)
  local st = priv[self]
  if st and st.p then core.sr_lua_ua_close(st.p) end
end

--- ua:make_inviter(target, {extra_headers=..., body=..., content_type=...,
--- from_display_name=..., transport="udp"|"tcp", on_state=..., ...}) -> Inviter
function UserAgent.methods.make_inviter(self, target, opts)
  local what = "UserAgent:make_inviter"
  local p = ua_handle(self, what)
  check_type(target, "string", what, "target")
  local c = B.inviter_opts(opts, what)
  local sp, rc = core.sr_lua_make_inviter(p, target, c)
  if not sp then check(rc, what) end
  local inv = wrap_session(sp, true)
  if opts then
    for k in pairs(SESSION_EVENTS) do if opts[k] then inv[k] = opts[k] end end
  end
  return inv
end

--- ua:stats() -> {sessions=, referrals=, referrers=, transactions=,
--- dialogs=, connections=} for this UA.
function UserAgent.methods.stats(self)
  return core.sr_lua_ua_stats((handle(self, "UserAgent:stats")))
end

--- sr.stats() -> live C objects in the whole process (sessions,
--- referrals, referrers; the other counts are 0).
function M.stats() return core.sr_lua_global_stats() end

------------------------------------------------------------------ the loop

local now_ms = core.sr_lua_now_ms

-- The core's log lines kept since the last turn, to on_log (unsetting it
-- sends those kept to stderr, in C); an error of on_log is raised, and
-- the lines after it are dropped.
local function deliver_logs(p)
  local lines, dropped = core.sr_lua_take_logs(p)
  if not lines then return end
  if dropped > 0 then
    lines[#lines + 1] = core.SR_LOG_WARNING
    lines[#lines + 1] = ("%d log lines dropped (more than 1024 in one turn)"):format(dropped)
  end
  local ua = live[p]
  local f = priv[ua].h.on_log
  if not f then return end -- (none are kept without it)
  for i = 1, #lines, 2 do f(LEVEL_NAMES[lines[i]] or tostring(lines[i]), lines[i + 1]) end
end

-- One turn of a UA's loop (waiting up to ms), raising a callback's error.
-- Returns the number of events handled, or nil if the UA is closed.
local function step(p, ms)
  deliver_logs(p)
  local has, err = core.sr_lua_take_error(p)
  if has then
    if core.sr_ua_fd(p) >= 0 then core.sr_ua_run_once(p, 0) end -- clears the C flag
    error(err, 0)
  end
  if core.sr_ua_fd(p) < 0 then return nil end
  local rc = core.sr_ua_run_once(p, ms)
  deliver_logs(p)
  has, err = core.sr_lua_take_error(p)
  if has then error(err, 0) end
  if rc == ECLOSED then return nil end
  return check(rc, "UserAgent:run_once")
end

local function to_ms(seconds, what)
  if seconds == nil then return -1 end
  if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
    argerror(what, "timeout must be a number of seconds >= 0")
  end
  return math.min(math.ceil(seconds * 1000), 0x7fffffff) // 1
end

--- ua:run_once([timeout]) -> number of events handled. Waits up to
--- timeout seconds (nil: until something happens) and fires callbacks.
function UserAgent.methods.run_once(self, timeout)
  local what = "UserAgent:run_once"
  local p = handle(self, what)
  local ms = to_ms(timeout, what)
  local n = step(p, ms)
  if not n then raise(ECLOSED, "%s: the user agent is closed", what) end
  return n
end

--- sr.run{ua1, ua2, ..., timeout=seconds, ["until"]=function} -> boolean
-- Drives the loops of several UAs together until `until()` returns true
-- (-> true), the timeout passes or every UA is closed (-> false).
function M.run(t)
  local what = "run"
  check_type(t, "table", what, "argument")
  local cond = check_type(t["until"], "function", what, "until", true)
  local timeout = t.timeout
  local deadline = timeout ~= nil and now_ms() + to_ms(timeout, what) or nil
  -- uas keeps the objects alive while their loops run; their handles are
  -- read again at each use, as a callback may release one (__close).
  local uas = {}
  for i, ua in ipairs(t) do
    if getmetatable(ua) ~= UserAgent then argerror(what, "entry %d is not a UserAgent", i) end
    handle(ua, what)
    uas[i] = ua
  end
  for k in pairs(t) do
    if not (k == "timeout" or k == "until" or (mtype(k) == "integer" and uas[k])) then
      argerror(what, "unknown option '%s'", tostring(k))
    end
  end
  local fds = {}
  while true do
    local open = 0
    for i = 1, #uas do
      local p = priv[uas[i]].p
      if p and step(p, 0) then open = open + 1 end
    end
    if cond and cond() then return true end
    if open == 0 then return false end
    local now = now_ms()
    if deadline and now >= deadline then return false end
    local wait = deadline and deadline - now or -1
    local n = 0
    for i = 1, #uas do
      local p = priv[uas[i]].p
      local fd = p and core.sr_ua_fd(p) or -1
      if fd >= 0 then
        n = n + 1
        fds[n] = fd
        local nt = core.sr_ua_next_timeout_ms(p)
        if nt >= 0 and (wait < 0 or nt < wait) then wait = nt end
      end
    end
    for i = n + 1, #fds do fds[i] = nil end
    core.sr_lua_wait(fds, wait)
  end
end

--- ua:run{timeout=seconds, ["until"]=function} -> boolean: as sr.run for
--- this UA alone. With neither option it runs until the UA is closed.
function UserAgent.methods.run(self, opts)
  local what = "UserAgent:run"
  ua_handle(self, what)
  opts = opts or {}
  check_type(opts, "table", what, "options")
  check_keys(opts, {timeout = true, ["until"] = true}, what)
  return M.run{self, timeout = opts.timeout, ["until"] = opts["until"]}
end

return M
