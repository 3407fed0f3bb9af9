--- sipreferral.base: what the parts of the module share — the SWIG core,
--- errors and argument checks, option tables, and the object machinery
--- (classes, private state, one Lua object per C object).
-- Internal: applications use require "sipreferral".

local core
do -- SWIG's loader also sets the globals swig_type/swig_equals: keep _G clean
  local had_type, had_equals = rawget(_G, "swig_type"), rawget(_G, "swig_equals")
  core = require "sipreferral_core"
  if had_type == nil then rawset(_G, "swig_type", nil) end
  if had_equals == nil then rawset(_G, "swig_equals", nil) end
end

local B = {core = core}
local count_c_memory = core.sr_lua_count_c_memory

local tointeger, mtype = math.tointeger, math.type
local fmt, concat = string.format, table.concat

-- Handler registration kinds and masks (see bindings/lua.i).
B.KIND_UA, B.KIND_SESSION, B.KIND_REFERRER = 0, 1, 2
B.UA_EVENTS = {on_invite = 1, on_refer = 2, on_refer_policy = 4, on_message = 8,
               on_log = 16}
B.SESSION_EVENTS = {on_state = 1, on_response = 2, on_refer = 4, on_bye = 8}
B.REFERRER_EVENTS = {on_accept = true, on_reject = true, on_notify = true,
                     on_closed = true}

------------------------------------------------------------------ errors

local Error = {__name = "sipreferral.Error"}
Error.__index = Error
function Error.__tostring(e) return (e.where or "") .. e.message end
B.Error = Error

local code_names = {}
B.codes = {}
for _, n in ipairs{"EINVAL", "ENOMEM", "ECLOSED", "ESTATE", "EPARSE", "EIO",
                   "EADDR", "ETOOBIG", "ETRANSPORT", "ECALLBACK", "ELIMIT",
                   "EROLE", "EALREADY"} do
  local code = core["SR_" .. n]
  B.codes[n] = code
  code_names[code] = n
end
local EINVAL, ECLOSED = B.codes.EINVAL, B.codes.ECLOSED

-- Sources of the module's own files: error positions skip their frames.
local internal = {}
--- B.internal(): called by each part of the module from its main chunk.
function B.internal() internal[debug.getinfo(2, "S").source] = true end
B.internal()

-- "file:line: " of the first Lua frame outside the module.
local function where()
  local level = 3
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return "" end
    if not internal[info.source] and info.what ~= "C" then
      return info.currentline > 0
        and fmt("%s:%d: ", info.short_src, info.currentline) or ""
    end
    level = level + 1
  end
end

--- raise(code, fmt, ...): raises an sr.Error.
local function raise(code, msg, ...)
  if select("#", ...) > 0 then msg = fmt(msg, ...) end
  error(setmetatable({code = code, name = code_names[code] or tostring(code),
                      message = fmt("%s (%s)", msg, code_names[code] or code),
                      where = where()}, Error), 0)
end
B.raise = raise

--- check(rc, what): raises for a negative C return code; returns rc.
function B.check(rc, what)
  if rc < 0 then raise(rc, "%s: %s", what, core.sr_strerror(rc)) end
  return rc
end

local function argerror(what, msg, ...) raise(EINVAL, what .. ": " .. msg, ...) end
B.argerror = argerror

local function check_type(v, want, what, name, optional)
  if v == nil and optional then return v end
  if type(v) ~= want then
    argerror(what, "%s must be a %s, got %s", name, want, type(v))
  end
  -- C would see the text cut short at a NUL.
  if want == "string" and v:find("\0", 1, true) then
    argerror(what, "%s contains a NUL character", name)
  end
  return v
end
B.check_type = check_type

local function check_int(v, what, name, optional)
  if v == nil and optional then return nil end
  local i = type(v) == "number" and tointeger(v)
  if not i or i < -0x80000000 or i > 0x7fffffff then
    argerror(what, "%s must be an integer, got %s", name,
             type(v) == "number" and tostring(v) or type(v))
  end
  return i
end
B.check_int = check_int

--- check_bool(v, what, name) -> 1, 0 or nil (for the C options).
function B.check_bool(v, what, name)
  if v == nil then return nil end
  if type(v) ~= "boolean" then
    argerror(what, "%s must be a boolean, got %s", name, type(v))
  end
  return v and 1 or 0
end

local function check_keys(t, allowed, what)
  for k in pairs(t) do
    if not allowed[k] then argerror(what, "unknown option '%s'", tostring(k)) end
  end
end
B.check_keys = check_keys

local function set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end
B.set_of = set_of

------------------------------------------------------------------ options

-- Extra headers: a list of "Name: value" lines, a {Name = value} map, or
-- raw text. Returns the CRLF-joined text for the C layer.
local function headers_text(v, what)
  if v == nil or type(v) == "string" then
    return check_type(v, "string", what, "extra_headers", true)
  end
  if type(v) ~= "table" then
    argerror(what, "extra_headers must be a table or a string, got %s", type(v))
  end
  local lines, names = {}, {}
  for k in pairs(v) do
    if type(k) == "string" then
      names[#names + 1] = k
    elseif not (mtype(k) == "integer" and k >= 1 and k <= #v) then
      argerror(what, "extra_headers has a bad key %s", tostring(k))
    end
  end
  for i = 1, #v do lines[i] = check_type(v[i], "string", what, "extra_headers line") end
  table.sort(names)
  for _, k in ipairs(names) do
    local val = v[k]
    if type(val) ~= "string" and type(val) ~= "number" then
      argerror(what, "extra_headers value of %s must be a string", k)
    end
    lines[#lines + 1] = k .. ": " .. val
  end
  for _, line in ipairs(lines) do
    check_type(line, "string", what, "extra_headers line")
    if line:find("[\r\n]") then argerror(what, "a header line contains CR or LF") end
  end
  return concat(lines, "\r\n")
end
B.headers_text = headers_text

local RESPONSE_KEYS = set_of{"status_code", "reason_phrase", "extra_headers",
                             "body", "content_type"}

--- response_opts(o, what): a response table (or a bare status code) into
--- C-level fields; nil (the C defaults) for nil.
function B.response_opts(o, what)
  if o == nil then return nil end
  if type(o) == "number" then o = {status_code = o} end
  check_type(o, "table", what, "options")
  check_keys(o, RESPONSE_KEYS, what)
  return {
    status_code = check_int(o.status_code, what, "status_code", true),
    reason_phrase = check_type(o.reason_phrase, "string", what, "reason_phrase", true),
    extra_headers = headers_text(o.extra_headers, what),
    body = check_type(o.body, "string", what, "body", true),
    content_type = check_type(o.content_type, "string", what, "content_type", true),
  }
end

--- respond(what, kind) -> a method sending a response with its options
--- (kind: see sr_lua_respond in bindings/lua.i).
function B.respond(what, kind)
  local priv, handle, response_opts, check = B.priv, B.handle, B.response_opts, B.check
  local cls = B.expected[what]
  return function(self, opts)
    local st = priv[self]
    local p = st and st.kinds[cls] and st.p or handle(self, what)
    if opts ~= nil then opts = response_opts(opts, what) end
    local rc = core.sr_lua_respond(kind, p, opts)
    if rc < 0 then check(rc, what) end
  end
end

local TRANSPORTS = {udp = core.SR_TRANSPORT_UDP, tcp = core.SR_TRANSPORT_TCP}

local function transport_arg(v, what)
  if v == nil then return core.SR_TRANSPORT_AUTO end
  local tp = TRANSPORTS[v]
  if not tp then argerror(what, "transport must be \"udp\" or \"tcp\", got %s", tostring(v)) end
  return tp
end
B.transport_arg = transport_arg

local INVITER_KEYS = set_of{"extra_headers", "body", "content_type",
                            "from_display_name", "transport"}
for k in pairs(B.SESSION_EVENTS) do INVITER_KEYS[k] = true end

--- inviter_opts(o, what): Inviter options (handlers allowed too) into
--- C-level fields; nil (the C defaults) for nil.
function B.inviter_opts(o, what)
  if o == nil then return nil end
  check_type(o, "table", what, "options")
  check_keys(o, INVITER_KEYS, what)
  for k in pairs(B.SESSION_EVENTS) do check_type(o[k], "function", what, k, true) end
  return {
    extra_headers = headers_text(o.extra_headers, what),
    body = check_type(o.body, "string", what, "body", true),
    content_type = check_type(o.content_type, "string", what, "content_type", true),
    from_display_name = check_type(o.from_display_name, "string", what,
                                   "from_display_name", true),
    transport = transport_arg(o.transport, what),
  }
end

B.NOTIFY_MODES = {all = core.SR_NOTIFY_ALL, final_only = core.SR_NOTIFY_FINAL_ONLY,
                  none = core.SR_NOTIFY_NONE}

------------------------------------------------------------------ objects

-- Private state of each object, out of the user's reach: priv[obj] =
-- {p = handle (light userdata) or nil once released, ...}. Ephemeron keys:
-- the state goes with its object, and is still there for its __gc.
local priv = setmetatable({}, {__mode = "k"})
B.priv = priv
-- One Lua object per C object: live[handle] = object.
local live = setmetatable({}, {__mode = "v"})
B.live = live

B.classes = {}

--- class(name [, base]) -> the metatable of a class, with tables
--- `methods`, `getters` and `setters` to fill, and `release(obj)`,
--- `describe(obj, st)` (for tostring), `ref`/`unref` to define.
function B.class(name, base)
  local c = {__name = "sipreferral." .. name, name = name,
             methods = {}, getters = {}, setters = {}}
  -- The classes an object of this class is (kept in its private state):
  -- a method checks that its object is one of its own before handing the
  -- handle to C, where another kind of object would be misread.
  c.kinds = {[c] = true}
  if base then
    setmetatable(c.methods, {__index = base.methods})
    setmetatable(c.getters, {__index = base.getters})
    setmetatable(c.setters, {__index = base.setters})
    setmetatable(c, {__index = base}) -- release, describe, ref, unref
    c.kinds[base] = true
  end
  local methods, getters, setters = c.methods, c.getters, c.setters
  -- Methods first: they are what is looked up most (no name is both).
  function c.__index(self, k)
    local m = methods[k]
    if m ~= nil then return m end
    local g = getters[k]
    if g then return g(self) end
  end
  function c.__newindex(self, k, v)
    local s = setters[k]
    if not s then
      argerror(name, "no settable field '%s'", tostring(k))
    end
    s(self, v, k)
  end
  function c.__tostring(self)
    local st = priv[self]
    if not st then return name end
    return fmt("%s: %s", name, c.describe and c.describe(self, st) or "")
  end
  B.classes[name] = c
  return c
end

local function a_name(name) return (name:find("^[AEIO]") and "an " or "a ") .. name end

-- The class that `what` ("Class:method", "Class.field") names, or false.
local expected = setmetatable({}, {__index = function(t, what)
  local cls = B.classes[what:match("^(%a+)[:.]") or what] or false
  t[what] = cls
  return cls
end})
B.expected = expected

--- check_kind(self, what) -> st: the private state of self, or an EINVAL
--- error if self is not an object of the class `what` names.
function B.check_kind(self, what)
  local st = priv[self]
  local cls = expected[what]
  if st and (not cls or st.kinds[cls]) then return st end
  local mt = st and getmetatable(self)
  argerror(what, "called on %s, not on %s (obj:method(), not obj.method())",
           mt and a_name(mt.name) or type(self),
           cls and a_name(cls.name) or "a sipreferral object")
end

local function nothing() end

--- seal(): once every part defined its classes, a class's `release`
--- becomes its __gc and __close itself (no call through the class per
--- collected object), and classes that hold no reference (the views) get
--- no finalizer at all. Runs before any object exists: Lua decides
--- whether an object is finalized when its metatable is set.
function B.seal()
  for _, c in pairs(B.classes) do
    local release = c.release -- inherited from the base class too
    c.__gc = release
    c.__close = release or nothing
  end
end

--- handle(obj, what) -> p, st: the handle of a reference-counted object,
--- or an error (EINVAL if obj is not one of the class `what` names,
--- ECLOSED once released).
function B.handle(self, what)
  local st = B.check_kind(self, what)
  local p = st.p
  if not p then raise(ECLOSED, "%s: the object was released", what) end
  return p, st
end

--- wrap(cls, p, owned [, init]) -> the object for handle p (nil for nil).
--- owned: the caller hands over a reference; otherwise one is taken.
--- init(st) fills the private state of a new object.
function B.wrap(cls, p, owned, init)
  if p == nil then return nil end
  local o = live[p]
  if o then
    if owned then cls.unref(p) end
    return o
  end
  if not owned then cls.ref(p) end
  o = setmetatable({}, cls)
  local st = {p = p, kinds = cls.kinds}
  if init then init(st) end
  priv[o] = st
  live[p] = o
  -- Lua's collector sees only the small table above, not the C memory
  -- the reference keeps (the request, its parsed parts, the session's
  -- strings). Counted as if allocated here, it paces the collector: an
  -- object nobody holds is freed within a cycle of the script's own heap,
  -- not after thousands of calls whose C memory then comes back at once.
  if cls.c_kib then count_c_memory(cls.c_kib) end
  return o
end

--- forget(obj, st) -> p: marks obj released; the caller drops p's reference.
function B.forget(self, st)
  local p = st.p
  st.p = nil
  if live[p] == self then live[p] = nil end
  return p
end

--- getter(cls, name, fn): a property whose value is fn(handle).
function B.getter(cls, name, fn)
  local what = cls.name .. "." .. name
  cls.getters[name] = function(self)
    return fn((B.handle(self, what)))
  end
end

-- Every class, so that the parts can refer to each other's.
local Session = B.class("Session")
B.class("Inviter", Session)
B.class("Invitation", Session)
B.class("Referral")
B.class("Referrer")
-- KiB of C memory an object's reference keeps alive (see wrap): a
-- referral its REFER and Refer-To, a session its INVITE and dialog
-- strings, a referrer the REFER it sent. The benchmark's transfer (a
-- referral, two sessions) keeps about 5 KiB of pool blocks until collected.
Session.c_kib = 2
B.classes.Referral.c_kib = 2
B.classes.Referrer.c_kib = 2
B.class("UserAgent")
B.class("NameAddrHeader")
B.class("URI")
B.class("IncomingRequest")

--- wrap_session(p, owned) -> an Inviter or Invitation (nil for nil).
function B.wrap_session(p, owned)
  if p == nil then return nil end
  local cls = core.sr_session_get_role(p) == core.SR_ROLE_INVITATION
    and B.classes.Invitation or B.classes.Inviter
  return B.wrap(cls, p, owned)
end

--- wrap_referral(p) -> the Referral for a borrowed handle.
function B.wrap_referral(p) return B.wrap(B.classes.Referral, p, false) end

--- ua_of(p) -> the UserAgent object of a UA handle, or nil.
function B.ua_of(p) return p and live[p] or nil end

return B
