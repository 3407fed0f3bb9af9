-- Calls between two UAs in one Lua process: INVITE/180/200/ACK/BYE over
-- UDP and TCP, CANCEL, reject, no on_invite, the Invitation's request view,
-- identity of objects, integers, and calls on ended sessions.
local t = require "lib.harness"
local sr = t.sr

-- Bob answers per `mode` ("accept", "ring", "reject"); both sides record.
local function setup(mode)
  local alice, bob = t.ua("alice"), t.ua("bob")
  local rec = {a_states = {}, b_states = {}, a_resp = {}, bye = 0}
  bob.on_invite = function(inv)
    rec.inv = inv
    inv.on_state = function(st) rec.b_states[#rec.b_states + 1] = st end
    inv.on_bye = function() rec.bye = rec.bye + 1 end
    inv:progress()
    if mode == "accept" then inv:accept()
    elseif mode == "reject" then inv:reject{status_code = 486, reason_phrase = "Busy Here"} end
  end
  return alice, bob, rec
end

local function call(alice, bob, rec, tp)
  local s = alice:make_inviter(t.target(bob, "bob", tp), {
    on_state = function(st) rec.a_states[#rec.a_states + 1] = st end,
    on_response = function(code, reason) rec.a_resp[#rec.a_resp + 1] = {code, reason} end,
  })
  rec.s = s
  t.eq(s.state, "initial", "inviter starts initial")
  t.eq(s.role, "inviter", "role")
  s:invite()
  return s
end

local function both(state, rec)
  return function()
    return rec.s and rec.inv and rec.s.state == state and rec.inv.state == state
  end
end

local function basic(tp)
  local alice, bob, rec = setup("accept")
  local s = call(alice, bob, rec, tp)
  t.raises(function() s:invite() end, sr.ESTATE, "Inviter:invite")
  t.require_(t.drive(both("established", rec)), "established")
  t.check(getmetatable(s) == sr.Inviter, "Inviter class")
  t.check(getmetatable(rec.inv) == sr.Invitation, "Invitation class")
  local last = rec.a_resp[#rec.a_resp]
  t.eq(last[1], 200, "final response")
  t.is_int(last[1], "status code")
  t.eq(last[2], "OK", "reason")
  local codes = {}
  for i, r in ipairs(rec.a_resp) do codes[i] = r[1] end
  -- answered inside on_invite: no 100 Trying (RFC 3261 §17.2.1)
  t.eq(table.concat(codes, ","), "180,200", "responses")
  t.eq(s.call_id, rec.inv.call_id, "same Call-ID")
  t.eq(s.local_tag, rec.inv.remote_tag, "tags")
  t.eq(s.remote_tag, rec.inv.local_tag, "tags")
  t.check(s.remote_body and s.remote_body:find("v=0"), "SDP answer")
  t.check(rec.inv.remote_identity:find("alice"), "remote identity")
  t.eq(s.ua, alice, "session.ua is the UA object")
  -- the INVITE as Bob received it
  local req = rec.inv.request
  t.eq(req.method, "INVITE", "request method")
  t.check(req.ruri:find("^sip:bob@"), "request uri")
  t.eq(req, rec.inv.request, "same view object")
  t.check(req:header("From"):find("alice"), "From")
  t.eq(#req:headers("Via"), 1, "one Via")
  t.eq(req:header("No-Such-Header"), nil, "missing header")
  t.check(req.body:find("v=0"), "request body")
  t.check(tostring(req):find("^INVITE "), "request text")
  t.eq(alice:stats().dialogs, 1, "one dialog")
  s:bye()
  t.require_(t.drive(both("terminated", rec)), "terminated")
  t.eq(rec.bye, 1, "Bob saw BYE")
  t.eq(table.concat(rec.a_states, ","), "establishing,established,terminating,terminated",
       "Alice's states")
  t.eq(table.concat(rec.b_states, ","), "establishing,established,terminated", "Bob's states")
  t.raises(function() s:bye() end, sr.ECLOSED, "Session:bye")
  t.raises(function() rec.inv:accept() end, sr.ECLOSED)
  t.eq(rec.inv.request.method, "INVITE", "view of an ended session")
  -- Held by Lua until collected, an ended session keeps its identity but
  -- not its dialog.
  t.eq(alice:stats().dialogs, 0, "Alice's dialog gone")
  t.eq(bob:stats().dialogs, 0, "Bob's dialog gone")
  t.eq(s.call_id, rec.inv.call_id, "Call-ID of an ended session")
  t.eq(s.remote_tag, rec.inv.local_tag, "tags of an ended session")
  t.check(s.remote_body:find("v=0"), "SDP of an ended session")
end

t.test("call over udp", function() basic("udp") end)
t.test("call over tcp", function() basic("tcp") end)

t.test("cancel", function()
  local alice, bob, rec = setup("ring")
  local s = call(alice, bob, rec, "udp")
  t.require_(t.drive(function() return rec.inv and #rec.a_resp > 0 end), "ringing")
  s:cancel()
  t.require_(t.drive(both("terminated", rec)), "terminated")
  t.eq(rec.a_resp[#rec.a_resp][1], 487, "487")
  t.raises(function() s:cancel() end, sr.ECLOSED)
end)

t.test("reject", function()
  local alice, bob, rec = setup("reject")
  call(alice, bob, rec, "tcp")
  t.require_(t.drive(both("terminated", rec)), "terminated")
  t.eq(rec.a_resp[#rec.a_resp][1], 486, "486")
  t.eq(rec.a_resp[#rec.a_resp][2], "Busy Here", "reason phrase")
end)

t.test("reject with a bare code; bad codes", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local got
  bob.on_invite = function(inv)
    t.raises(function() inv:reject(200) end, sr.EINVAL, "Invitation:reject")
    t.raises(function() inv:reject(486.5) end, sr.EINVAL, "integer")
    t.raises(function() inv:reject{status_code = 486, bogus = 1} end, sr.EINVAL, "unknown option")
    inv:reject(603)
  end
  local s = alice:make_inviter(t.target(bob, "bob"), {on_response = function(c) got = c end})
  s:invite()
  t.require_(t.drive(function() return got and s.state == "terminated" end), "answered")
  t.eq(got, 603, "603")
end)

t.test("no on_invite answers 480", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local got
  local s = alice:make_inviter(t.target(bob, "bob"), {on_response = function(c) got = c end})
  s:invite()
  t.require_(t.drive(function() return got ~= nil end), "answered")
  t.eq(got, 480, "480")
  -- a handler set, then cleared: 480 again
  bob.on_invite = function(inv) inv:accept() end
  bob.on_invite = nil
  got = nil
  alice:make_inviter(t.target(bob, "bob"), {on_response = function(c) got = c end}):invite()
  t.require_(t.drive(function() return got ~= nil end), "answered again")
  t.eq(got, 480, "480 again")
end)

t.test("one Lua object per C object", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local invs = {}
  bob.on_invite = function(inv)
    invs[#invs + 1] = inv
    inv:accept()
  end
  local s = alice:make_inviter(t.target(bob, "bob"))
  local established
  s.on_state = function(st) established = established or st == "established" end
  s:invite()
  t.require_(t.drive(function() return established and invs[1] and invs[1].state == "established" end), "up")
  t.eq(#invs, 1, "one invitation")
  -- Bob refers to the same Invitation wherever it comes from
  t.eq(invs[1].ua, bob, "invitation.ua")
  s:bye()
  t.require_(t.drive(function() return invs[1].state == "terminated" end), "down")
end)

t.test("integers and addresses", function()
  local alice = t.ua("alice")
  local host, port = alice:address("udp")
  t.eq(host, "127.0.0.1", "host")
  t.is_int(port, "udp port")
  t.check(port > 0, "port bound")
  local _, tport = alice:address("tcp")
  t.is_int(tport, "tcp port")
  t.is_int(alice:fileno(), "fileno")
  local nt = alice:next_timeout()
  t.check(nt == nil or type(nt) == "number", "next_timeout")
  t.is_int(alice:run_once(0), "run_once count")
  for k, v in pairs(alice:stats()) do t.is_int(v, "stats." .. k) end
  t.eq(alice.uri, "sip:alice@127.0.0.1", "uri")
end)

t.test("user agent options", function()
  t.raises(function() sr.UserAgent{} end, sr.EINVAL, "uri")
  t.raises(function() sr.UserAgent{uri = "mailto:x@y"} end, sr.EINVAL)
  t.raises(function() sr.UserAgent{uri = "sip:a@127.0.0.1", lisen = {}} end, sr.EINVAL,
           "unknown option 'lisen'")
  t.raises(function() sr.UserAgent{uri = "sip:a@127.0.0.1", t1_ms = "fast"} end, sr.EINVAL)
  t.raises(function() sr.UserAgent{uri = "sip:a@127.0.0.1", listen = {"udp:256.0.0.1:0"}} end)
  t.raises(function() sr.UserAgent{uri = "sip:a@127.0.0.1", listen = {"bogus"}} end, sr.EINVAL)
  local ua <close> = sr.UserAgent{uri = "sip:a@127.0.0.1", listen = "udp:127.0.0.1:0",
                                  allowed_schemes = {"sip", "sips", "tel"},
                                  notify_mode = "final_only", log_level = "error",
                                  allow_out_of_dialog_refer = true}
  t.is_int(select(2, ua:address()), "port")
  t.raises(function() ua:address("tcp") end, sr.EINVAL, "no tcp listener")
  t.raises(function() ua:address("sctp") end, sr.EINVAL)
  t.raises(function() ua.no_such_field = 1 end, sr.EINVAL, "no settable field")
  t.raises(function() ua.on_invite = 42 end, sr.EINVAL, "function")
  t.raises(function() ua:make_inviter("not a uri") end, sr.EINVAL, "make_inviter")
  t.raises(function() ua:make_inviter("sip:x@127.0.0.1", {extra_headers = {"X-A: 1\r\nX-B: 2"}}) end,
           sr.EINVAL, "CR or LF")
  t.raises(function() ua:run_once(-1) end, sr.EINVAL, "timeout")
  local err = t.raises(function() ua:make_inviter(42) end, sr.EINVAL)
  t.check(err and tostring(err):find("test_call.lua:%d+: UserAgent:make_inviter"),
          "error names the caller's line: " .. tostring(err))
end)

t.test("errors are sr.Error objects", function()
  local ua = t.ua("alice")
  local ok, err = pcall(ua.make_inviter, ua, "nonsense")
  t.eq(ok, false, "raised")
  t.check(getmetatable(err) == sr.Error, "an sr.Error")
  t.eq(err.code, sr.EINVAL, "code")
  t.is_int(err.code, "integer code")
  t.eq(err.name, "EINVAL", "name")
  t.check(err.message:find("^UserAgent:make_inviter: "), "message: " .. err.message)
  t.eq(sr.strerror(sr.ECLOSED), sr.core.sr_strerror(sr.ECLOSED), "strerror")
end)

t.test("run: until, timeout, closed from a callback", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  t.eq(alice:run{timeout = 0}, false, "nothing to do: times out")
  t.eq(alice:run{timeout = 5, ["until"] = function() return true end}, true, "until holds")
  t.raises(function() alice:run{timeout = 1, unitl = print} end, sr.EINVAL, "unknown option")
  t.raises(function() sr.run{alice, "bob"} end, sr.EINVAL, "not a UserAgent")
  bob.on_invite = function(inv)
    inv:reject(486)
    bob:close()
  end
  alice:make_inviter(t.target(bob, "bob")):invite()
  t.eq(sr.run{alice, bob, timeout = 10, ["until"] = function() return bob.closed end}, true,
       "closed inside a callback")
  t.raises(function() bob:run() end, sr.ECLOSED, "the user agent is closed")
end)

t.test("IPv6", function()
  local alice = t.ua("alice", {uri = "sip:alice@[::1]", listen = {"udp:[::1]:0"}})
  local bob = t.ua("bob", {uri = "sip:bob@[::1]", listen = {"udp:[::1]:0"}})
  local host, port = bob:address("udp")
  t.eq(host, "::1", "host")
  local got
  bob.on_invite = function(inv) inv:reject(486) end
  alice:make_inviter(("sip:bob@[::1]:%d"):format(port), {on_response = function(c) got = c end}):invite()
  t.require_(t.drive(function() return got == 486 end), "answered over IPv6")
end)

t.test("extra headers reach the peer", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local req
  bob.on_invite = function(inv)
    req = inv.request
    inv:reject(486)
  end
  alice:make_inviter(t.target(bob, "bob"), {extra_headers = {"X-One: 1", ["X-Two"] = "two"},
                                            from_display_name = "Alice A"}):invite()
  t.require_(t.drive(function() return req ~= nil end), "invite received")
  t.eq(req:header("X-One"), "1", "list entry")
  t.eq(req:header("X-Two"), "two", "map entry")
  t.check(req:header("From"):find("Alice A", 1, true), "display name")
end)

t.test("udp_receive_buffer is an option", function()
  local ua = t.ua("buffered", {udp_receive_buffer = 200000})
  t.check(ua:address("udp"), "listening")
  t.raises(function() t.ua("bad", {udp_receive_buffer = "big"}) end, sr.EINVAL)
end)

t.test("outbound_proxy: the first hop of out-of-dialog INVITEs", function()
  local proxy = t.ua("proxy")
  local host, port = proxy:address("udp")
  local alice = t.ua("alice", {outbound_proxy = ("sip:%s:%d"):format(host, port)})
  local req
  proxy.on_invite = function(inv)
    req = inv.request
    inv:reject(486)
  end
  alice:make_inviter("sip:carol@pbx.example.com"):invite()
  t.require_(t.drive(function() return req ~= nil end), "INVITE at the proxy")
  t.eq(req.ruri, "sip:carol@pbx.example.com", "Request-URI kept")
  t.eq(req:header("Route"), ("<sip:%s:%d;lr>"):format(host, port), "proxy as Route")
  t.raises(function() t.ua("bad", {outbound_proxy = "sips:127.0.0.1"}) end, sr.EINVAL)
  t.raises(function() t.ua("bad", {outbound_proxy = 5}) end, sr.EINVAL, "outbound_proxy")
  local err = t.raises(function() proxy:make_inviter("sip:carol@pbx.example.com") end, sr.EADDR)
  t.check(err and err.message:find("make_inviter"), "without a proxy, a name: EADDR")
  t.raises(function() proxy:make_inviter("sips:carol@127.0.0.1") end, sr.ETRANSPORT)
end)

t.test("text that would add header lines or hold a NUL is refused", function()
  t.raises(function() t.ua("bad", {user_agent = "UA\r\nInjected-UA: 1"}) end, sr.EINVAL)
  local err = t.raises(function() sr.UserAgent{uri = "sip:a@127.0.0.1\0junk"} end, sr.EINVAL)
  t.check(err and err.message:find("uri contains a NUL"), "names the option")
  local alice, bob = t.ua("alice"), t.ua("bob")
  local sent = {}
  local function hook(out, tp, l, r, data) if out then sent[#sent + 1] = data end return false end
  alice.on_message = hook
  bob.on_message = hook
  local target = t.target(bob, "bob")
  err = t.raises(function() alice:make_inviter(target .. "\0xyz") end, sr.EINVAL)
  t.check(err and err.message:find("target contains a NUL"), "names the argument")
  t.raises(function() alice:listen("udp:127.0.0.1:0\0x") end, sr.EINVAL)
  t.raises(function() alice:make_inviter(target .. "\r\nInjected: 1") end, sr.EINVAL)
  t.raises(function() alice:make_inviter(("sip:%s@127.0.0.1"):format(("a"):rep(100000))) end, sr.ETOOBIG)
  t.raises(function() alice:make_inviter(target, {extra_headers = {"Content-Length: 0"}}) end, sr.EINVAL)
  t.raises(function() alice:make_inviter(target, {extra_headers = "X-A: 1\0"}) end, sr.EINVAL)
  t.eq(#sent, 0, "nothing sent")
  local codes = {}
  bob.on_invite = function(inv)
    for _, o in ipairs{{reason_phrase = "OK\r\nInjected: 1"},
                       {content_type = "application/sdp\r\nInjected: 1", body = "v=0\r\n"},
                       {extra_headers = {"i: x@y"}}} do
      local ok, e = pcall(inv.accept, inv, o)
      codes[#codes + 1] = not ok and e.code or 0
    end
    inv:accept()
  end
  local s = alice:make_inviter(target)
  s:invite()
  t.require_(t.drive(function() return s.state == "established" end), "established")
  t.eq(table.concat(codes, ","), table.concat({sr.EINVAL, sr.EINVAL, sr.EINVAL}, ","), "answers refused")
  t.raises(function() s:refer("sip:carol@127.0.0.1\0evil") end, sr.EINVAL)
  t.raises(function() s:refer("sip:carol@127.0.0.1", {extra_headers = {"Refer-Sub: false"}}) end, sr.EINVAL)
  for _, d in ipairs(sent) do
    t.check(not d:find("^REFER") and not d:find("Injected"), "nothing injected or referred")
  end
  s:bye()
  t.drive(function() return s.state == "terminated" end)
end)

t.test("no live C objects are left", function()
  collectgarbage()
  collectgarbage()
  local s = sr.stats()
  t.eq(s.sessions, 0, "sessions")
end)

t.done()
