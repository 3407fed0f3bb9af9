-- Errors raised in callbacks come out of run(), unchanged; callbacks and
-- the loop work with coroutines.
local t = require "lib.harness"
local sr = t.sr

-- Alice calls Bob; Bob's on_invite is `on_invite`. Returns alice, bob, s.
local function call(on_invite, inviter_opts)
  local alice, bob = t.ua("alice"), t.ua("bob")
  bob.on_invite = on_invite
  local s = alice:make_inviter(t.target(bob, "bob"), inviter_opts)
  s:invite()
  return alice, bob, s
end

local function drive_error(cond)
  local ok, err = pcall(t.drive, cond)
  t.check(not ok, "run raised")
  return err
end

t.test("an error in on_invite comes out of run, and the caller gets 500", function()
  local boom = setmetatable({}, {__tostring = function() return "boom" end})
  local code
  local _, _, s = call(function() error(boom) end,
                       {on_response = function(c) code = c end})
  local err = drive_error(function() return false end)
  t.eq(err, boom, "the very error value")
  t.require_(t.drive(function() return code ~= nil end), "answered")
  t.eq(code, 500, "500 after a failed on_invite")
  t.eq(s.state, "terminated", "inviter ended")
end)

t.test("an error in an on_state callback; the loop goes on afterwards", function()
  local n, established = 0, false
  local alice, bob, s = call(function(inv) inv:accept() end)
  s.on_state = function(st)
    if st == "established" then
      established = true
      error("on_state failed")
    end
  end
  local err = drive_error(function() return false end)
  t.check(type(err) == "string" and err:find("test_callbacks.lua:%d+: on_state failed"),
          "string error with its position: " .. tostring(err))
  t.check(established, "the callback ran")
  -- the UA still works: hang up normally
  s.on_state = function(st) if st == "terminated" then n = n + 1 end end
  s:bye()
  t.require_(t.drive(function() return n == 1 end), "terminated after the error")
  t.check(not alice.closed and not bob.closed, "UAs open")
end)

t.test("an error in a callback fired inside a call is raised by the next run", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  bob.on_invite = function(inv) inv:reject(486) end
  local s = alice:make_inviter(t.target(bob, "bob"), {on_state = function(st)
    if st == "establishing" then error("sync " .. st) end
  end})
  s:invite() -- on_state("establishing") fires in here; invite() succeeds
  t.eq(s.state, "establishing", "invite went out")
  local ok, err = pcall(alice.run_once, alice, 5)
  t.check(not ok and tostring(err):find("sync establishing"), "raised by run_once: " .. tostring(err))
  -- nothing else pending
  t.check(pcall(alice.run_once, alice, 0), "the flag was cleared")
  t.require_(t.drive(function() return s.state == "terminated" end), "call answered")
end)

t.test("the first error wins", function()
  local alice = t.ua("alice")
  local s1 = alice:make_inviter("sip:x@127.0.0.1:9", {on_state = function() error("first", 0) end})
  local s2 = alice:make_inviter("sip:y@127.0.0.1:9", {on_state = function() error("second", 0) end})
  s1:invite()
  s2:invite()
  local ok, err = pcall(alice.run_once, alice, 0)
  t.eq(ok, false, "raised")
  t.eq(err, "first", "first error kept")
  t.check(pcall(alice.run_once, alice, 0), "second one dropped")
  s1:bye()
  s2:bye()
end)

t.test("close from inside a callback, then an error", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  bob.on_invite = function(inv)
    bob:close()
    error("after close", 0)
  end
  alice:make_inviter(t.target(bob, "bob")):invite()
  local ok, err = pcall(t.drive, function() return bob.closed end)
  t.eq(ok, false, "raised")
  t.eq(err, "after close", "error kept across close")
  t.check(bob.closed, "bob closed")
  t.raises(function() bob:run_once(0) end, sr.ECLOSED, "closed")
end)

t.test("an error in on_message", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local seen = {}
  alice.on_message = function(out, tp, laddr, raddr, data)
    seen[#seen + 1] = (out and ">" or "<") .. data:match("^(%S+)")
    t.eq(tp, "udp", "transport")
    t.check(laddr:find("^127%.0%.0%.1:%d+$") and raddr:find("^127%.0%.0%.1:%d+$"), "addresses")
    if not out and data:find("^SIP/2.0 486") then error("hook", 0) end
  end
  bob.on_invite = function(inv) inv:reject(486) end
  alice:make_inviter(t.target(bob, "bob")):invite()
  local ok, err = pcall(t.drive, function() return false end)
  t.eq(ok, false, "raised")
  t.eq(err, "hook", "hook error")
  t.eq(seen[1], ">INVITE", "sent INVITE seen")
  alice.on_message = nil
end)

t.test("a message hook can drop messages", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local invites = 0
  bob.on_message = function(out, _, _, _, data)
    if not out and data:find("^INVITE") then
      invites = invites + 1
      return invites == 1 -- drop the first: Alice retransmits
    end
  end
  local got
  bob.on_invite = function(inv) inv:reject(603) end
  alice:make_inviter(t.target(bob, "bob"), {on_response = function(c) got = c end}):invite()
  t.require_(t.drive(function() return got == 603 end), "answered after a retransmission")
  t.check(invites >= 2, "retransmitted")
end)

t.test("the loop driven from inside a coroutine", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local main = coroutine.running()
  local threads = {}
  local established = false
  bob.on_invite = function(inv)
    threads[#threads + 1] = coroutine.running()
    inv:accept()
  end
  local s = alice:make_inviter(t.target(bob, "bob"), {on_state = function(st)
    threads[#threads + 1] = coroutine.running()
    if st == "established" then established = true end
  end})
  s:invite()
  local turns = 0
  local co = coroutine.create(function()
    return sr.run{alice, bob, timeout = 10, ["until"] = function()
      coroutine.yield("turn")
      return established
    end}
  end)
  local result
  while coroutine.status(co) ~= "dead" do
    local ok, v = coroutine.resume(co)
    t.require_(ok, "coroutine failed: " .. tostring(v))
    if v == "turn" then turns = turns + 1 else result = v end
  end
  t.eq(result, true, "run returned true")
  t.check(turns > 0, "yielded between turns")
  t.check(#threads > 0, "callbacks ran")
  for _, th in ipairs(threads) do t.eq(th, main, "callbacks run on the main thread") end
  s:bye()
end)

t.test("an error in a callback while a coroutine drives the loop", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  bob.on_invite = function() error("in callback", 0) end
  alice:make_inviter(t.target(bob, "bob")):invite()
  local co = coroutine.wrap(function()
    return pcall(sr.run, {alice, bob, timeout = 10})
  end)
  local ok, err = co()
  t.eq(ok, false, "raised inside the coroutine")
  t.eq(err, "in callback", "the error")
end)

t.test("a callback resumes a coroutine", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  bob.on_invite = function(inv) inv:accept() end
  local log = {}
  local waiter = coroutine.create(function(first)
    local st = first
    while true do
      log[#log + 1] = st
      if st == "terminated" then return "done" end
      st = coroutine.yield()
    end
  end)
  local s = alice:make_inviter(t.target(bob, "bob"), {on_state = function(st)
    assert(coroutine.resume(waiter, st))
  end})
  s:invite()
  t.require_(t.drive(function() return s.state == "established" end), "established")
  s:bye()
  t.require_(t.drive(function() return coroutine.status(waiter) == "dead" end), "waiter done")
  t.eq(table.concat(log, ","), "establishing,established,terminating,terminated", "states")
end)

t.test("a UA made inside a finished coroutine", function()
  local bob = coroutine.wrap(function() return t.ua("bob") end)()
  local alice = t.ua("alice")
  local got
  bob.on_invite = function(inv) got = coroutine.running(); inv:reject(486) end
  alice:make_inviter(t.target(bob, "bob")):invite()
  t.require_(t.drive(function() return got ~= nil end), "on_invite ran")
  t.eq(got, (coroutine.running()), "on the main thread")
end)

t.test("a callback that yields gets a clear error", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  bob.on_invite = function() coroutine.yield() end
  alice:make_inviter(t.target(bob, "bob")):invite()
  local co = coroutine.wrap(function() return pcall(sr.run, {alice, bob, timeout = 10}) end)
  local ok, err = co()
  t.eq(ok, false, "raised")
  t.check(tostring(err):find("yield"), "mentions yield: " .. tostring(err))
end)

t.test("on_refer_policy must return a status code", function()
  -- only the check of the return value; REFER scenarios are in test_referral
  local alice = t.ua("alice")
  alice.on_refer_policy = function() return 603 end
  t.eq(type(alice.on_refer_policy), "function", "handler readable")
  alice.on_refer_policy = nil
  t.eq(alice.on_refer_policy, nil, "cleared")
end)

t.test("on_log gets the core's lines between turns of the loop", function()
  local lines = {}
  local ua = t.ua("logger", {log_level = "info",
                             on_log = function(level, msg) lines[#lines + 1] = {level, msg} end})
  t.eq(#lines, 0, "nothing during the constructor: the loop hands them over")
  ua:run_once(0)
  local listening
  for _, l in ipairs(lines) do
    if l[1] == "info" and l[2]:find("listening on udp 127.0.0.1 port", 1, true) then listening = true end
  end
  t.check(listening, "the constructor's listening line, as info")
  -- A line logged by a call between turns comes with the next turn.
  local n = #lines
  ua:listen("tcp:127.0.0.1:0")
  t.eq(#lines, n, "not inside the call")
  ua:run_once(0)
  t.check(#lines > n and lines[#lines][2]:find("listening on tcp", 1, true), "the tcp listening line")
  -- An error of on_log is raised by the loop; unset, lines go to stderr.
  ua.on_log = function() error("log boom", 0) end
  ua:listen("udp:127.0.0.1:0")
  local ok, err = pcall(ua.run_once, ua, 0)
  t.check(not ok and err == "log boom", "the error of on_log")
  ua.on_log = nil
  n = #lines
  ua:listen("udp:127.0.0.1:0")
  ua:run_once(0)
  t.eq(#lines, n, "no on_log: not delivered")
end)

t.test("on_log and a closed UA", function()
  local lines = {}
  local ua = t.ua("closing", {log_level = "debug",
                              on_log = function(level, msg) lines[#lines + 1] = msg end})
  ua:listen("udp:127.0.0.1:0") -- kept, not delivered: the UA closes first
  ua:close()
  t.eq(#lines, 0, "none after close (they went to stderr)")
  t.raises(function() ua:run_once(0) end, sr.ECLOSED)
end)

t.done()
