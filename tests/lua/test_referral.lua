-- Transfers written in Lua: SIP.js's Referral scenarios, blind and
-- attended transfer, rejections and validation, Refer-Sub: false,
-- concurrent REFERs, the referrer hanging up, decisions made later,
-- manual NOTIFYs, errors in on_refer and in the policy.
local t = require "lib.harness"
local P = require "lib.parties"
local sr = t.sr

-- An on_refer that accepts and follows, recording the referral.
local function follower(p)
  return function(r)
    p.referrals[#p.referrals + 1] = r
    r:accept()
    t.raises(function() r:accept() end, sr.EALREADY, "Referral:accept")
    local inv = r:make_inviter()
    t.eq(r:make_inviter(), inv, "make_inviter gives the same Inviter")
    t.eq(inv.referred_session, r.session, "inviter -> referred session")
    t.eq(r.session.referral_inviter, inv, "session -> inviter")
    inv:invite()
    p.calls[#p.calls + 1] = inv
  end
end

local function sipjs(bob_refers, with_handler, tp)
  local alice, bob, carol = P.new()
  local referee = bob_refers and alice or bob
  if with_handler then referee.on_refer = follower(referee) end
  local a, b = P.call(alice, bob, tp)
  local rec = P.recorder()
  local referrer = (bob_refers and b or a):refer(t.target(carol.ua, "carol", tp), rec.opts)
  t.check(getmetatable(referrer) == sr.Referrer, "a Referrer")
  t.is_int(referrer.id, "event id")
  t.require_(t.drive(rec.is_closed), "referrer closed")
  t.check(referrer.closed, "referrer.closed")
  t.eq(rec.accepts, 1, "202 seen")
  t.is_int(rec.accept_code, "accept code")
  t.eq(rec.notifies[1].code, 100, "first NOTIFY")
  t.eq(rec.notifies[#rec.notifies].code, 200, "last NOTIFY")
  t.eq(a.state, "established", "Alice-Bob stays up")
  t.eq(b.state, "established", "Bob-Alice stays up")
  t.eq(carol.calls[1] and carol.calls[1].state, "established", "Carol's call is up")
  if with_handler then t.eq(#referee.referrals, 1, "on_refer ran once") end
  -- the referee answered 202 before its first NOTIFY
  local acc, notify
  for i, line in ipairs(referee.sent) do
    if not acc and line:find("^SIP/2.0 202 Accepted") then acc = i end
    if not notify and line:find("^NOTIFY ") then notify = i end
  end
  t.check(acc and notify and acc < notify, "202 then NOTIFY")
end

t.test("SIP.js: Bob refers Alice, default handler", function() sipjs(true, false, "udp") end)
t.test("SIP.js: Bob refers Alice, on_refer accepts and follows", function() sipjs(true, true, "udp") end)
t.test("SIP.js: Alice refers Bob, default handler", function() sipjs(false, false, "udp") end)
t.test("SIP.js: Alice refers Bob, on_refer accepts and follows", function() sipjs(false, true, "udp") end)
t.test("SIP.js over TCP", function()
  sipjs(true, true, "tcp")
  t.cleanup()
  sipjs(false, false, "tcp")
end)

local function blind(tp)
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob, tp)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol", tp) .. "?X-Leak=1&Route=%3Csip:evil@192.0.2.9%3E", rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.codes(), "100,180,200", "NOTIFY codes")
  t.eq(rec.notifies[1].reason, "Trying", "reason 1")
  t.check(rec.notifies[1].state:find("^active;expires="), "active")
  t.eq(rec.notifies[2].reason, "Ringing", "reason 2")
  t.eq(rec.notifies[3].reason, "OK", "reason 3")
  t.eq(rec.notifies[3].state, "terminated;reason=noresource", "terminated")
  for _, n in ipairs(rec.notifies) do t.is_int(n.code, "NOTIFY code") end
  local inv = carol.invites[1]
  t.check(inv and inv:find("Referred-By: <sip:bob@127.0.0.1>", 1, true), "Referred-By")
  t.check(inv and not inv:find("X-Leak") and not inv:find("evil"), "no URI header leaks")
  t.check(inv and inv:find("^INVITE sip:carol@"), "INVITE to Carol")
  -- the referral as Alice saw it
  local r = alice.referrals[1]
  t.require_(r, "a referral")
  t.check(getmetatable(r) == sr.Referral, "Referral class")
  local to = r.refer_to
  t.check(getmetatable(to) == sr.NameAddrHeader, "NameAddrHeader")
  t.eq(r.refer_to, to, "same view")
  t.eq(to.uri.host, "127.0.0.1", "host")
  t.eq(to.uri.user, "carol", "user")
  t.eq(to.uri.scheme, "sip", "scheme")
  t.is_int(to.uri.port, "port")
  t.eq(to.uri.port, select(2, carol.ua:address(tp)), "port value")
  t.eq(to.uri.headers["X-Leak"], "1", "URI header visible in the view")
  t.eq(to.uri.headers.Route, "<sip:evil@192.0.2.9>", "unescaped")
  t.eq(to.display_name, nil, "no display name")
  t.check(tostring(to):find("carol"), "tostring")
  t.eq(r.referred_by, "<sip:bob@127.0.0.1>", "referred_by")
  t.eq(r.replaces, nil, "no Replaces")
  t.eq(r.request.method, "REFER", "request method")
  t.check(r.request:header("Refer-To"):find("carol"), "Refer-To header")
  t.eq(r.request:header("r"), r.request:header("Refer-To"), "compact form")
  t.eq(r.state, "terminated", "referral terminated")
  t.is_int(r.id, "id")
  t.eq(r.refer_sub, true, "subscription")
  t.eq(r.session, alice.calls[1], "the session it came in")
  t.eq(r.ua, alice.ua, "the UA")
  t.eq(P.count(alice, "NOTIFY "), 3, "three NOTIFYs sent")
end
t.test("blind transfer over UDP", function() blind("udp") end)
t.test("blind transfer over TCP", function() blind("tcp") end)

-- The methods a transfer calls take a shortcut for a live object; misuse
-- must still fail as anywhere else, at the caller's line.
t.test("a referral's methods misused: clear errors", function()
  local alice, bob, carol = P.new()
  local seen = false
  alice.on_refer = function(r)
    seen = true
    t.raises(function() r.accept() end, sr.EINVAL, "called on nil, not on a Referral")
    t.raises(function() r.make_inviter() end, sr.EINVAL, "called on nil, not on a Referral")
    t.raises(function() r.accept(r.session) end, sr.EINVAL,
             "called on an Inviter, not on a Referral")
    t.raises(function() r.session.bye(r) end, sr.EINVAL, "Session:bye: called on a Referral")
    t.raises(function() r.session.ua.fileno(r) end, sr.EINVAL, "not on a UserAgent")
    t.raises(function() r.refer_to.uri.host = 1 end, sr.EINVAL)
    t.raises(function() r.request.header(r.refer_to, "To") end, sr.EINVAL,
             "called on a NameAddrHeader, not on an IncomingRequest")
    t.raises(function() r:accept("202") end, sr.EINVAL, "Referral:accept")
    local e = t.raises(function() r:accept{bogus = 1} end, sr.EINVAL, "unknown option")
    t.check(e and e.where:find("test_referral%.lua:%d+: $"), "at the caller's line: " .. tostring(e))
    t.raises(function() r:make_inviter(5) end, sr.EINVAL, "Referral:make_inviter")
    r:accept()
    t.raises(function() r:accept() end, sr.EALREADY, "Referral:accept")
    local inv = r:make_inviter()
    t.raises(function() inv.invite() end, sr.EINVAL, "called on nil, not on an Inviter")
    t.raises(function() inv.invite(r) end, sr.EINVAL, "called on a Referral, not on an Inviter")
    t.raises(function() inv.invite(r.session.ua) end, sr.EINVAL, "called on a UserAgent, not on an Inviter")
    inv:invite()
    t.raises(function() inv:invite() end, nil, "Inviter:invite")
  end
  local _, b = P.call(alice, bob, "udp")
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol", "udp"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.check(seen, "on_refer ran")
  t.eq(rec.codes(), "100,180,200", "the transfer went on")
end)

local function attended(tp)
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local ba = P.call(bob, alice, tp)
  local bc, cb = P.call(bob, carol, tp)
  local rec = P.recorder()
  ba:refer(bc, rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.notifies[#rec.notifies].code, 200, "final NOTIFY")
  local r = alice.referrals[1]
  t.require_(r, "referral")
  t.eq(r.replaces, ("%s;to-tag=%s;from-tag=%s"):format(bc.call_id, bc.remote_tag, bc.local_tag),
       "Replaces")
  local ca = carol.calls[2]
  t.require_(ca and ca ~= cb, "Carol's new call")
  t.eq(ca.replaces, cb, "the Invitation replaces Bob-Carol (same object)")
  t.require_(t.drive(function() return bc.state == "terminated" end), "Bob-Carol ended")
  t.eq(cb.state, "terminated", "Carol's side ended")
  t.eq(ca.state, "established", "Alice-Carol up")
  t.check(carol.invites[2]:find("Replaces: " .. bc.call_id, 1, true), "Replaces in INVITE")
end
t.test("attended transfer over UDP", function() attended("udp") end)
t.test("attended transfer over TCP", function() attended("tcp") end)

local function expect_reject(target, opts, code)
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local a, b = P.call(alice, bob)
  local rec = P.recorder()
  for k, v in pairs(opts or {}) do rec.opts[k] = v end
  b:refer(target or t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.rejects, 1, "rejected")
  t.eq(rec.reject_code, code, "code")
  t.is_int(rec.reject_code, "integer code")
  t.eq(#alice.referrals, 0, "no referral reached on_refer")
  t.eq(a.state, "established", "call stays up")
  return rec, alice, bob, carol
end

t.test("tel: target is refused with 416", function() expect_reject("tel:+15551234", nil, 416) end)
t.test("sips: target is refused with 416 (no TLS)", function()
  expect_reject("sips:carol@127.0.0.1", nil, 416)
end)
t.test("method=BYE is refused with 501", function()
  expect_reject("sip:carol@127.0.0.1;method=BYE", nil, 501)
end)
t.test("a second Refer-To is refused by the sender", function()
  local alice, bob = P.new()
  local a, b = P.call(alice, bob)
  t.raises(function()
    b:refer("sip:carol@127.0.0.1", {extra_headers = {"Refer-To: <sip:dave@127.0.0.1>"}})
  end, sr.EINVAL)
  t.eq(a.state, "established", "call stays up")
end)

t.test("the policy denies", function()
  local alice, bob, carol = P.new()
  local seen
  alice.ua.on_refer_policy = function(r)
    seen = {to = r.refer_to.uri.user, by = r.referred_by, state = r.state}
    return 403
  end
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.reject_code, 403, "403")
  t.eq(seen and seen.to, "carol", "policy saw the target")
  t.eq(seen and seen.by, "<sip:bob@127.0.0.1>", "policy saw the referrer")
  t.eq(seen and seen.state, "pending", "pending while asked")
  t.eq(#alice.referrals, 0, "on_refer not called")
end)

t.test("the policy allows (nil) and on_refer decides", function()
  local alice, bob, carol = P.new()
  local asked = 0
  alice.ua.on_refer_policy = function() asked = asked + 1 end
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(asked, 1, "asked once")
  t.eq(rec.accepts, 1, "accepted")
end)

t.test("an error in the policy: 500, raised from run", function()
  local alice, bob, carol = P.new()
  alice.ua.on_refer_policy = function() error("policy broke", 0) end
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  local ok, err = pcall(t.drive, rec.is_closed)
  t.eq(ok, false, "raised")
  t.eq(err, "policy broke", "the error")
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.reject_code, 500, "500")
end)

t.test("a bad policy return value: 500 and a clear error", function()
  local alice, bob, carol = P.new()
  alice.ua.on_refer_policy = function() return 200 end
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  local ok, err = pcall(t.drive, rec.is_closed)
  t.eq(ok, false, "raised")
  t.check(tostring(err):find("status code 300%-699"), "message: " .. tostring(err))
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.reject_code, 500, "500")
end)

t.test("an error in on_refer: 500, raised from run", function()
  local alice, bob, carol = P.new()
  local marker = {}
  alice.on_refer = function() error(marker) end
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  local ok, err = pcall(t.drive, rec.is_closed)
  t.eq(ok, false, "raised")
  t.eq(err, marker, "the same error value")
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.reject_code, 500, "500")
end)

t.test("the application rejects later, with its reason", function()
  local alice, bob, carol = P.new()
  local held
  alice.on_refer = function(r) held = r end
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(function() return held ~= nil end), "REFER arrived")
  t.eq(held.state, "pending", "pending")
  t.raises(function() held:reject(200) end, sr.EINVAL, "Referral:reject")
  t.raises(function() held:accept(404) end, sr.EINVAL, "Referral:accept")
  held:reject{status_code = 603, reason_phrase = "Not Today"}
  t.raises(function() held:reject() end, sr.EALREADY)
  t.raises(function() held:accept() end, sr.EALREADY)
  t.raises(function() held:make_inviter() end, sr.ESTATE, "make_inviter")
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.reject_code, 603, "603")
  t.eq(rec.reject_reason, "Not Today", "reason phrase")
  t.eq(held.state, "rejected", "rejected")
end)

t.test("Carol rejects with 486: final NOTIFY 486", function()
  local alice, bob, carol = P.new()
  carol.answer = "reject"
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  local last = rec.notifies[#rec.notifies]
  t.eq(last.code, 486, "486")
  t.eq(last.reason, "Busy Here", "reason")
  t.eq(last.state, "terminated;reason=noresource", "state")
end)

t.test("Refer-Sub: false gives no NOTIFY", function()
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  rec.opts.refer_sub = false
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.accepts, 1, "accepted")
  t.require_(t.drive(function() return carol.calls[1] and carol.calls[1].state == "established" end),
             "the transfer still happens")
  t.eq(#rec.notifies, 0, "no NOTIFY reported")
  t.eq(P.count(alice, "NOTIFY "), 0, "no NOTIFY sent")
  t.eq(P.count(alice, "SIP/2.0 202"), 1, "202 sent")
  t.eq(alice.referrals[1].refer_sub, false, "referral.refer_sub")
end)

t.test("two concurrent REFERs", function()
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local r1, r2 = P.recorder(), P.recorder()
  local x = b:refer(t.target(carol.ua, "carol", "udp"), r1.opts)
  local y = b:refer(t.target(carol.ua, "carol", "tcp"), r2.opts)
  t.check(x.id ~= y.id, "two ids")
  t.eq(x.session, b, "referrer.session")
  t.require_(t.drive(function() return r1.closed > 0 and r2.closed > 0 end), "both closed")
  t.eq(r1.notifies[#r1.notifies].code, 200, "first transfer")
  t.eq(r2.notifies[#r2.notifies].code, 200, "second transfer")
  t.eq(#alice.referrals, 2, "two referrals")
  t.check(alice.referrals[1].id ~= alice.referrals[2].id, "two referral ids")
end)

t.test("the referrer hangs up mid-transfer", function()
  local alice, bob, carol = P.new()
  carol.answer = "ring"
  alice.on_refer = follower(alice)
  local a, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(function() return #rec.notifies >= 2 end), "100 and 180")
  local before = P.count(alice, "NOTIFY ")
  b:bye()
  t.require_(t.drive(function() return a.state == "terminated" end), "Alice-Bob ended")
  t.eq(rec.closed, 1, "referrer closed with its session")
  local r = alice.referrals[1]
  t.eq(r.state, "terminated", "referral terminated")
  t.raises(function() r:notify(200) end, sr.ESTATE, "Referral:notify")
  t.raises(function() r:accept() end, sr.ECLOSED)
  t.eq(r.refer_to.uri.user, "carol", "views still readable")
  carol.calls[1]:accept()
  local ac = alice.calls[#alice.calls]
  t.require_(t.drive(function() return ac.state == "established" end), "Alice-Carol up")
  t.eq(P.count(alice, "NOTIFY "), before, "no NOTIFY after the hang-up")
end)

t.test("manual NOTIFYs", function()
  local alice, bob, carol = P.new()
  local held
  alice.on_refer = function(r)
    held = r
    r:accept{status_code = 202, extra_headers = {"X-Why: manual"}}
  end
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(function() return #rec.notifies >= 1 end), "NOTIFY 100")
  t.eq(rec.accept_code, 202, "202")
  t.raises(function() held:set_notify_mode("sometimes") end, sr.EINVAL)
  held:set_notify_mode("none")
  held:notify(183, "Session Progress")
  held:notify(503, "Gateway Busy")
  t.raises(function() held:notify(200) end, sr.ESTATE)
  t.raises(function() held:notify("x") end, sr.EINVAL)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.codes(), "100,183,503", "codes")
  t.eq(rec.notifies[3].reason, "Gateway Busy", "reason")
  t.eq(rec.notifies[3].state, "terminated;reason=noresource", "state")
end)

t.test("final_only notify mode", function()
  local alice, bob, carol = P.new{alice = {notify_mode = "final_only"}}
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.codes(), "100,200", "no 180")
end)

t.test("bye_on_success ends the referrer's call", function()
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local a, b = P.call(alice, bob)
  local rec = P.recorder()
  rec.opts.bye_on_success = true
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(function() return rec.closed > 0 and a.state == "terminated" end), "ended")
  t.eq(b.state, "terminated", "Bob's side")
  t.eq(carol.calls[1].state, "established", "Alice-Carol")
end)

t.test("the decision deadline rejects an undecided REFER", function()
  local alice, bob, carol = P.new{alice = {refer_decision_timeout_ms = 300}}
  local held
  alice.on_refer = function(r) held = r end
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(rec.is_closed), "closed")
  t.eq(rec.reject_code, 603, "603")
  t.eq(held.state, "rejected", "rejected by the deadline")
end)

t.test("a referral after its session ended", function()
  local alice, bob, carol = P.new()
  local held
  alice.on_refer = function(r) held = r; r:accept() end
  local a, b = P.call(alice, bob)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(function() return #rec.notifies >= 1 end), "NOTIFY 100")
  a:bye()
  t.require_(t.drive(function() return a.state == "terminated" end), "ended")
  t.eq(held.state, "terminated", "terminated")
  t.raises(function() held:accept() end, sr.ECLOSED)
  t.raises(function() held:notify(180) end, sr.ESTATE)
  t.eq(held.refer_to.uri.user, "carol", "views readable")
  local req = held.request
  do local r <close> = held end
  t.raises(function() return held.state end, sr.ECLOSED, "released")
  t.raises(function() return req.method end, sr.ECLOSED, "belongs to was released")
end)

t.test("collectgarbage() mid-transfer", function()
  local alice, bob, carol = P.new()
  alice.on_refer = function(r)
    collectgarbage()
    r:accept()
    collectgarbage()
    r:make_inviter{on_state = function() collectgarbage() end}:invite()
  end
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  local orig = rec.opts.on_notify
  rec.opts.on_notify = function(...) collectgarbage(); return orig(...) end
  b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(function() collectgarbage("step"); return rec.closed > 0 end), "closed")
  t.eq(rec.codes(), "100,180,200", "complete")
end)

t.test("a referrer with handlers lives until it is closed", function()
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local rec = P.recorder()
  local weak = setmetatable({b:refer(t.target(carol.ua, "carol"), rec.opts)}, {__mode = "v"})
  collectgarbage()
  collectgarbage()
  t.check(weak[1] ~= nil, "kept by its handlers")
  t.require_(t.drive(function() collectgarbage(); return rec.closed > 0 end), "closed")
  t.eq(rec.codes(), "100,180,200", "every NOTIFY reported")
  collectgarbage()
  collectgarbage()
  t.eq(weak[1], nil, "collected once closed")
end)

t.test("a referrer handle released early; its REFER goes on", function()
  local alice, bob, carol = P.new()
  alice.on_refer = follower(alice)
  local _, b = P.call(alice, bob)
  local called = false
  do
    local r <close> = b:refer(t.target(carol.ua, "carol"), {on_notify = function() called = true end})
  end
  collectgarbage()
  t.require_(t.drive(function() return carol.calls[1] and carol.calls[1].state == "established" end),
             "transfer done")
  t.eq(called, false, "no callback after release")
end)

t.test("objects used after ua:close() mid-transfer", function()
  local alice, bob, carol = P.new()
  local held
  alice.on_refer = function(r) held = r; r:accept() end
  local a, b = P.call(alice, bob)
  local rec = P.recorder()
  local referrer = b:refer(t.target(carol.ua, "carol"), rec.opts)
  t.require_(t.drive(function() return #rec.notifies >= 1 end), "NOTIFY 100")
  alice.ua:close()
  t.eq(held.state, "terminated", "referral ended")
  t.raises(function() held:accept() end, sr.ECLOSED)
  t.raises(function() held:make_inviter() end, sr.ECLOSED)
  t.eq(held.ua, nil, "no UA")
  t.eq(a.state, "terminated", "session ended")
  bob.ua:close()
  t.check(referrer.closed, "referrer closed by close")
  t.raises(function() b:refer("sip:x@127.0.0.1") end, sr.ECLOSED)
  t.eq(rec.closed, 0, "no callback from close")
end)

t.test("views: URI parameters, flags, headers; misuse of refer", function()
  local alice, bob, carol = P.new()
  local held
  alice.on_refer = function(r) held = r end
  local a, b = P.call(alice, bob)
  t.raises(function() b:refer(42) end, sr.EINVAL, "target")
  t.raises(function() b:refer("sip:c@127.0.0.1", {on_notfy = print}) end, sr.EINVAL, "on_notfy")
  t.raises(function() b:refer("sip:c@127.0.0.1", {refer_sub = 0}) end, sr.EINVAL, "boolean")
  t.raises(function() b:refer(held) end, sr.EINVAL)
  local rec = P.recorder()
  b:refer(t.target(carol.ua, "carol") .. ";lr;x=1?Subject=hi%20there", rec.opts)
  t.require_(t.drive(function() return held ~= nil end), "REFER arrived")
  local uri = held.refer_to.uri
  t.check(getmetatable(uri) == sr.URI, "URI class")
  t.eq(uri.parameters.lr, true, "flag parameter")
  t.eq(uri.parameters.x, "1", "valued parameter")
  t.eq(uri.headers.Subject, "hi there", "unescaped header")
  t.check(tostring(uri):find("^sip:carol@127%.0%.0%.1:%d+;lr;x=1%?Subject=hi%%20there$"),
          "URI as received: " .. tostring(uri))
  t.eq(next(held.refer_to.parameters), nil, "no header parameters")
  t.eq(held.request.body, "", "empty body")
  t.eq(#held.request:headers("Refer-To"), 1, "one Refer-To")
  t.eq(held.request:header("Refer-To", 2), nil, "no second value")
  held:reject(603)
  t.require_(t.drive(rec.is_closed), "closed")
  -- REFER outside an established session
  local s = alice.ua:make_inviter(t.target(carol.ua, "carol"))
  t.raises(function() s:refer("sip:x@127.0.0.1") end, sr.ESTATE, "Session:refer")
  t.eq(a.state, "established", "call up")
end)

t.test("memory is flat over 10,000 REFER create/accept/close cycles", function()
  local alice, bob = P.new{ua = {t4_ms = 200}}
  alice.on_refer = function(r)
    local ref <close> = r
    r:accept()
  end
  local _, b = P.call(alice, bob)
  local n202 = 0 -- a counter, not the recording P keeps (that would grow)
  alice.ua.on_message = function(out, _, _, _, data)
    if out and data:find("^SIP/2.0 202") then n202 = n202 + 1 end
  end
  bob.ua.on_message = nil
  local done = 0
  local opts = {refer_sub = false, on_closed = function() done = done + 1 end}
  local function cycles(n)
    for _ = 1, n do
      local want = done + 1
      local r <close> = b:refer("sip:carol@127.0.0.1:9", opts)
      assert(t.drive(function() return done == want end), "REFER answered")
    end
  end
  local function settle()
    collectgarbage()
    collectgarbage()
    t.require_(t.drive(function()
      local s = sr.stats()
      return s.referrals == 0 and s.referrers == 0
    end, 20), "C referrals freed")
    collectgarbage()
    collectgarbage()
  end
  cycles(1000)
  settle()
  local kb0, live0 = collectgarbage("count"), t.live()
  cycles(10000)
  settle()
  local kb1, live1 = collectgarbage("count"), t.live()
  t.eq(live1, live0, "C live objects")
  t.check(kb1 - kb0 < 64, ("Lua memory grew by %.1f KB"):format(kb1 - kb0))
  t.eq(n202, 11000, "every REFER accepted")
end)

t.done()
