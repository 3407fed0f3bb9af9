-- Lifetime abuse: garbage collection mid-call, objects used after
-- ua:close() or after their Lua handle was closed, UAs dropped without
-- close, handlers released when their object ends, memory flat over many
-- calls.
local t = require "lib.harness"
local sr = t.sr

-- A weak probe: probe.x becomes nil once x is collected.
local function probe(x) return setmetatable({x = x}, {__mode = "v"}) end

local function full_gc()
  collectgarbage()
  collectgarbage()
end

t.test("collectgarbage() mid-call, in every callback", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local states = {a = {}, b = {}}
  bob.on_invite = function(inv)
    full_gc()
    inv.on_state = function(st)
      full_gc()
      states.b[#states.b + 1] = st
    end
    inv:accept()
  end
  do
    -- no local reference survives this block: the handlers keep it alive
    alice:make_inviter(t.target(bob, "bob"), {on_state = function(st)
      full_gc()
      states.a[#states.a + 1] = st
    end}):invite()
  end
  full_gc()
  t.require_(t.drive(function()
    full_gc()
    return states.a[#states.a] == "established" and states.b[#states.b] == "established"
  end), "established")
  t.eq(sr.stats().sessions, 2, "two sessions alive")
  bob:close() -- Alice never hears of it: it sent nothing
  alice:close()
  full_gc()
  t.eq(sr.stats().sessions, 0, "freed after close and collection")
end)

t.test("handlers are released when the session ends", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local inv_probe
  bob.on_invite = function(inv)
    inv_probe = probe(inv)
    inv.on_bye = function() end
    inv:accept()
  end
  local s = alice:make_inviter(t.target(bob, "bob"), {on_state = function() end})
  local s_probe = probe(s)
  s:invite()
  t.require_(t.drive(function() return s.state == "established" end), "established")
  full_gc()
  t.check(inv_probe.x ~= nil, "a live session with handlers stays")
  s:bye()
  t.require_(t.drive(function() return s.state == "terminated" and inv_probe.x.state == "terminated" end),
             "terminated")
  s = nil
  full_gc()
  t.eq(s_probe.x, nil, "Alice's session collected once ended")
  t.eq(inv_probe.x, nil, "Bob's session collected once ended")
  -- transactions may still hold them until their timers end; close does
  alice:close()
  bob:close()
  t.eq(sr.stats().sessions, 0, "C sessions freed")
end)

t.test("objects used after ua:close()", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local inv
  bob.on_invite = function(i) inv = i; i:accept() end
  local s = alice:make_inviter(t.target(bob, "bob"), {on_state = function() end})
  s:invite()
  t.require_(t.drive(function() return s.state == "established" and inv and inv.state == "established" end), "up")
  local req = inv.request
  local sp = probe(s)
  alice:close()
  alice:close() -- twice is fine
  t.check(alice.closed, "closed")
  t.eq(s.state, "terminated", "session ended by close")
  t.raises(function() s:bye() end, sr.ECLOSED, "Session:bye")
  t.raises(function() s:invite() end, sr.ECLOSED)
  t.eq(s.ua, nil, "no UA any more")
  t.raises(function() alice:run_once(0) end, sr.ECLOSED, "closed")
  t.raises(function() alice:run{timeout = 0} end, sr.ECLOSED)
  t.raises(function() alice:address("udp") end, sr.ECLOSED)
  t.raises(function() alice:fileno() end, sr.ECLOSED)
  t.raises(function() alice:make_inviter(t.target(bob, "bob")) end, sr.ECLOSED)
  s.on_state = function() end -- allowed, never called
  t.eq(alice.uri, "sip:alice@127.0.0.1", "identity still readable")
  -- Bob's side is untouched; close it too, with a call up
  t.eq(inv.state, "established", "Bob still up")
  bob:close()
  t.eq(inv.state, "terminated", "Bob ended by close")
  t.raises(function() inv:accept() end, sr.ECLOSED)
  t.eq(req.method, "INVITE", "a view stays readable while its session is held")
  s = nil
  full_gc()
  t.eq(sp.x, nil, "close released the handlers")
end)

-- The loop turn reading the TCP connection goes on after the callback:
-- under ASan this found it using the connection close had freed.
for _, where in ipairs{"on_invite", "on_message"} do
  t.test("ua:close() inside " .. where .. " over TCP", function()
    local alice, bob = t.ua("alice"), t.ua("bob")
    if where == "on_invite" then
      bob.on_invite = function() bob:close() end
    else
      bob.on_invite = function() error("never: closed before routing") end
      bob.on_message = function(out) if not out then bob:close() end return false end
    end
    alice:make_inviter(t.target(bob, "bob", "tcp")):invite()
    t.require_(t.drive(function() return bob.closed end), "closed inside")
    t.eq(bob:stats().connections, 0, "its connections closed")
    t.raises(function() bob:run_once(0) end, sr.ECLOSED)
    alice:close()
  end)
end

t.test("a handle closed with <close>", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local kept, req, got
  bob.on_invite = function(inv)
    local i <close> = inv
    kept = inv
    req = inv.request
    do
      local r <close> = req -- a view holds no reference: closing it is nothing
    end
    t.eq(req.method, "INVITE", "a closed view still reads")
    inv:reject(486)
  end
  local s = alice:make_inviter(t.target(bob, "bob"), {on_response = function(c) got = c end})
  s:invite()
  t.require_(t.drive(function() return got == 486 end), "rejected")
  t.raises(function() return kept.state end, sr.ECLOSED, "released")
  t.raises(function() kept:accept() end, sr.ECLOSED, "released")
  t.raises(function() return req.method end, sr.ECLOSED, "belongs to was released")
  t.raises(function() kept.on_state = print end, sr.ECLOSED)
  t.check(tostring(kept):find("released"), "tostring says so")
  do
    local s2 <close> = s
  end
  t.raises(function() s:bye() end, sr.ECLOSED)
end)

t.test("a released handle of a live session; a new one for the same call", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local first
  bob.on_invite = function(inv)
    first = inv
    inv:accept()
    getmetatable(inv).__close(inv)
  end
  local s = alice:make_inviter(t.target(bob, "bob"))
  s:invite()
  t.require_(t.drive(function() return s.state == "established" end), "up")
  t.raises(function() return first.state end, sr.ECLOSED)
  s:bye()
  t.require_(t.drive(function() return s.state == "terminated" end), "down")
  full_gc()
  t.eq(sr.stats().sessions, 1, "only Alice's (held) session is left")
end)

t.test("a UA dropped without close is collected and closed", function()
  local alice = t.ua("alice")
  local target, bp
  do
    local bob = sr.UserAgent{uri = "sip:bob@127.0.0.1", listen = {"udp:127.0.0.1:0"},
                             log_level = "error"}
    bob.on_invite = function(inv) inv:accept() end -- captures nothing
    target = t.target(bob, "bob")
    bp = probe(bob)
  end
  full_gc()
  t.eq(bp.x, nil, "UA collected")
  local got
  local s = alice:make_inviter(target, {on_response = function(c) got = c end})
  s:invite()
  -- nobody listens any more: the INVITE times out (or the port refuses)
  t.require_(t.drive(function() return s.state == "terminated" end, 20), "gave up")
  t.check(got == 408 or got == 503, "no answer: " .. tostring(got))
end)

t.test("a UA dropped by the caller while sr.run drives it", function()
  local args = {sr.UserAgent{uri = "sip:a@127.0.0.1", listen = {"udp:127.0.0.1:0"},
                             log_level = "error"}, timeout = 0.05}
  local wp = probe(args[1])
  local turns = 0
  args["until"] = function()
    args[1] = nil
    full_gc()
    turns = turns + 1
    return false
  end
  t.eq(sr.run(args), false, "ran until the timeout")
  t.check(turns >= 2, "the loop turned after the UA was dropped")
  full_gc()
  t.eq(wp.x, nil, "collected after the run")
end)

t.test("a UA released (<close>) inside its own callback while it runs", function()
  local alice = t.ua("alice")
  local bob = sr.UserAgent{uri = "sip:bob@127.0.0.1", listen = {"udp:127.0.0.1:0"},
                           log_level = "error"}
  local ran = false
  bob.on_invite = function(inv)
    ran = true
    local i <close> = inv
    local b <close> = bob -- releases Bob (and so frees him) inside his callback
  end
  local s = alice:make_inviter(t.target(bob, "bob"))
  s:invite()
  t.eq(sr.run{alice, bob, timeout = 0.5, ["until"] = function() full_gc(); return false end},
       false, "ran on after the release")
  t.check(ran, "on_invite ran")
  t.check(bob.closed, "Bob closed")
  t.raises(function() bob:run_once(0) end, sr.ECLOSED)
  t.raises(function() sr.run{alice, bob, timeout = 0.1} end, sr.ECLOSED, "released")
end)

t.test("a session outlives its collected UA", function()
  local s, sp
  do
    local ua = sr.UserAgent{uri = "sip:a@127.0.0.1", listen = {"udp:127.0.0.1:0"},
                            log_level = "error"}
    s = ua:make_inviter("sip:x@127.0.0.1:9")
  end
  full_gc()
  t.eq(s.ua, nil, "UA gone")
  t.eq(s.state, "initial", "never sent")
  t.raises(function() s:invite() end, sr.ECLOSED)
  sp = probe(s)
  s = nil
  full_gc()
  t.eq(sp.x, nil, "collected")
  t.eq(sr.stats().sessions, 0, "C session freed")
end)

t.test("memory is flat over many calls", function()
  local alice, bob = t.ua("alice", {t4_ms = 200}), t.ua("bob", {t4_ms = 200})
  local ended = 0
  bob.on_invite = function(inv)
    inv.on_state = function(st) if st == "terminated" then ended = ended + 1 end end
    inv:accept()
  end
  local target = t.target(bob, "bob")
  local function one()
    local s = alice:make_inviter(target, {on_state = function(st)
      if st == "established" then
        local ok, err = pcall(function() return nil end)
        assert(ok and err == nil)
      end
    end})
    s:invite()
    assert(t.drive(function() return s.state == "established" end), "established")
    s:bye()
    local want = ended + 1
    assert(t.drive(function() return ended == want and s.state == "terminated" end), "ended")
  end
  -- Transactions hold ended sessions until their timers fire (64*T1):
  -- settle by driving until the C side has no session left.
  local function settle()
    full_gc() -- the Lua objects of ended sessions go first
    t.require_(t.drive(function() return sr.stats().sessions == 0 end, 20), "C sessions freed")
    full_gc()
  end
  for _ = 1, 200 do one() end
  settle()
  local kb0 = collectgarbage("count")
  for _ = 1, 1000 do one() end
  settle()
  local kb1 = collectgarbage("count")
  t.eq(t.live(), 0, "C live objects")
  t.check(kb1 - kb0 < 64, ("Lua memory grew by %.1f KB"):format(kb1 - kb0))
  alice:close()
  bob:close()
  full_gc()
  t.eq(sr.stats().sessions, 0, "no C sessions left")
end)

-- A dropped object holds C memory Lua cannot see (a session: ~2 KiB; its
-- Lua table: a few hundred bytes). Each new object counts for it, so the
-- collector ends a cycle after about the script's heap in C memory (about
-- 80 sessions for a heap of 170 KiB); without the count, four sessions
-- per KiB of heap did not end one.
t.test("dropped objects are collected at the pace of their C memory", function()
  local alice, bob = t.ua("alice"), t.ua("bob")
  local target = t.target(bob, "bob")
  full_gc()
  local heap_kib = collectgarbage("count")
  local sessions0 = sr.stats().sessions
  local cycle_ended = false
  setmetatable({}, {__gc = function() cycle_ended = true end}) -- garbage already
  local made = 0
  while not cycle_ended and made < 4 * heap_kib do
    alice:make_inviter(target) -- dropped at once
    made = made + 1
  end
  t.check(cycle_ended, "a collection cycle ended")
  t.check(made < heap_kib, ("%d objects made before a cycle ended, with a heap of %.0f KiB")
          :format(made, heap_kib))
  full_gc()
  t.eq(sr.stats().sessions, sessions0, "all collected")

  -- A script that stopped the collector keeps it stopped.
  collectgarbage("stop")
  for _ = 1, 50 do alice:make_inviter(target) end
  local kept = sr.stats().sessions - sessions0
  collectgarbage("restart")
  t.eq(kept, 50, "nothing collected while stopped")
  alice:close()
  bob:close()
  full_gc()
end)

t.done()
