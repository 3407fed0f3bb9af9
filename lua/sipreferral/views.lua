--- sipreferral.views: the read-only views URI, NameAddrHeader and
--- IncomingRequest. A view belongs to a referral's or invitation's C
--- object: it keeps that object (its root) alive, and raises ECLOSED once
--- the root's Lua object was released.
-- Internal: applications use require "sipreferral".
local B = require "sipreferral.base"
B.internal()

local core, priv = B.core, B.priv
local check_type, check_int = B.check_type, B.check_int
local ECLOSED = B.codes.ECLOSED
local URI = B.classes.URI
local NameAddrHeader = B.classes.NameAddrHeader
local IncomingRequest = B.classes.IncomingRequest

--- view(cls, root, vp) -> a view of handle vp owned by object root.
local function view(cls, root, vp)
  if vp == nil then return nil end
  local o = setmetatable({}, cls)
  priv[o] = {root = root, vp = vp, kinds = cls.kinds}
  return o
end

local function vptr(self, what)
  local st = B.check_kind(self, what)
  local rst = priv[st.root]
  if not (rst and rst.p) then
    B.raise(ECLOSED, "%s: the object it belongs to was released", what)
  end
  return st.vp, st
end

B.view = view

-- {name = value} of a view's parameters or headers (true for a flag).
local function pairs_table(count, name_fn, value_fn, vp)
  local t = {}
  for i = 0, count(vp) - 1 do
    local v = value_fn(vp, i)
    if v == nil then v = true end
    t[name_fn(vp, i)] = v
  end
  return t
end

function URI.__tostring(self) return core.sr_uri_string((vptr(self, "URI"))) end
URI.getters.scheme = function(self) return core.sr_uri_scheme((vptr(self, "URI.scheme"))) end
URI.getters.user = function(self) return core.sr_uri_user((vptr(self, "URI.user"))) end
URI.getters.host = function(self) return core.sr_uri_host((vptr(self, "URI.host"))) end
URI.getters.port = function(self)
  local port = core.sr_uri_port((vptr(self, "URI.port")))
  return port > 0 and port or nil
end
URI.getters.parameters = function(self)
  return pairs_table(core.sr_uri_param_count, core.sr_uri_param_name,
                     core.sr_uri_param_value, (vptr(self, "URI.parameters")))
end
URI.getters.headers = function(self)
  return pairs_table(core.sr_uri_header_count, core.sr_uri_header_name,
                     core.sr_uri_header_value, (vptr(self, "URI.headers")))
end

function NameAddrHeader.__tostring(self)
  return core.sr_name_addr_string((vptr(self, "NameAddrHeader")))
end
NameAddrHeader.getters.display_name = function(self)
  return core.sr_name_addr_display_name((vptr(self, "NameAddrHeader.display_name")))
end
NameAddrHeader.getters.uri = function(self)
  local vp, st = vptr(self, "NameAddrHeader.uri")
  st.uri = st.uri or view(URI, st.root, core.sr_name_addr_uri(vp))
  return st.uri
end
NameAddrHeader.getters.parameters = function(self)
  return pairs_table(core.sr_name_addr_param_count, core.sr_name_addr_param_name,
                     core.sr_name_addr_param_value,
                     (vptr(self, "NameAddrHeader.parameters")))
end

function IncomingRequest.__tostring(self)
  return core.sr_request_text((vptr(self, "IncomingRequest")))
end
IncomingRequest.getters.method = function(self)
  return core.sr_request_method((vptr(self, "IncomingRequest.method")))
end
IncomingRequest.getters.ruri = function(self)
  return core.sr_request_ruri((vptr(self, "IncomingRequest.ruri")))
end
IncomingRequest.getters.body = function(self)
  return core.sr_lua_request_body((vptr(self, "IncomingRequest.body")))
end
IncomingRequest.getters.text = IncomingRequest.__tostring
--- request:header(name [, i]) -> the i-th (default first) value, or nil.
function IncomingRequest.methods.header(self, name, i)
  local vp = vptr(self, "IncomingRequest:header")
  check_type(name, "string", "IncomingRequest:header", "name")
  i = check_int(i or 1, "IncomingRequest:header", "index")
  if i < 1 then return nil end
  return core.sr_request_header(vp, name, i - 1)
end
--- request:headers(name) -> list of every value of the header.
function IncomingRequest.methods.headers(self, name)
  local vp = vptr(self, "IncomingRequest:headers")
  check_type(name, "string", "IncomingRequest:headers", "name")
  local t = {}
  for i = 0, core.sr_request_header_count(vp, name) - 1 do
    t[#t + 1] = core.sr_request_header(vp, name, i)
  end
  return t
end

return view
