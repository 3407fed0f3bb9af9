--- Test support for the Lua suite: named tests run under pcall, checks that
--- count, and UAs on 127.0.0.1 port 0 driven until a condition holds
--- (bounded; never a fixed sleep). A script ends with `t.done()`, which
--- prints "N passed, N failed" and exits non-zero on any failure.
local sr = require "sipreferral"

local H = {sr = sr}
local passed, failed = 0, 0
local current, current_failed
local verbose = os.getenv("SR_TEST_VERBOSE")

local function location(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. info.currentline) or "?"
end

local function fail(msg, level)
  current_failed = true
  io.stderr:write(("  FAIL %s: %s (%s)\n"):format(current or "?", msg, location(level + 1)))
end

--- check(cond, msg): records a failure when cond is false.
function H.check(cond, msg)
  if not cond then fail(msg or "check failed", 2) end
  return cond
end

--- eq(got, want, msg)
function H.eq(got, want, msg)
  if got ~= want then
    fail(("%s: got %s, want %s"):format(msg or "eq", tostring(got), tostring(want)), 2)
    return false
  end
  return true
end

--- is_int(v, msg): v is a Lua integer.
function H.is_int(v, msg)
  if math.type(v) ~= "integer" then
    fail(("%s: %s is a %s, not an integer"):format(msg or "is_int", tostring(v),
         math.type(v) or type(v)), 2)
    return false
  end
  return true
end

--- raises(fn, code, pattern): fn() raises an sr.Error with that code (and
--- a message matching pattern, if given). Returns the error.
function H.raises(fn, code, pattern)
  local ok, err = pcall(fn)
  if ok then
    fail("no error raised", 2)
    return nil
  end
  if getmetatable(err) ~= sr.Error then
    fail("not an sr.Error: " .. tostring(err), 2)
    return err
  end
  if code and err.code ~= code then
    fail(("error code %s, want %s (%s)"):format(err.name, tostring(code), tostring(err)), 2)
  end
  if pattern and not tostring(err):find(pattern) then
    fail(("message %q does not match %q"):format(tostring(err), pattern), 2)
  end
  return err
end

--- require_(cond, msg): like check, but ends the current test.
function H.require_(cond, msg)
  if not cond then
    fail(msg or "requirement failed", 2)
    error({H_abort = true}, 0)
  end
  return cond
end

--- test(name, fn): runs fn under pcall; an uncaught error fails it.
function H.test(name, fn)
  current, current_failed = name, false
  local ok, err = xpcall(fn, function(e)
    if type(e) == "table" and e.H_abort then return e end
    return debug.traceback(tostring(e), 2)
  end)
  if not ok and not (type(err) == "table" and err.H_abort) then
    fail("error: " .. tostring(err), 1)
  end
  H.cleanup()
  if current_failed then
    failed = failed + 1
    io.stderr:write("not ok  " .. name .. "\n")
  else
    passed = passed + 1
    if verbose then print("ok      " .. name) end
  end
  current = nil
end

--- done(): prints the summary and exits (non-zero if anything failed).
function H.done()
  print(("%d passed, %d failed"):format(passed, failed))
  -- close the state: finalizers run, so leak checkers see what is left
  os.exit(failed == 0 and passed > 0 and 0 or 1, true)
end

-------------------------------------------------------------- user agents

local uas = {}

--- ua(user, opts): a UA "sip:user@127.0.0.1" listening on UDP and TCP
--- port 0 with short timers; opts are merged into the UserAgent options.
function H.ua(user, opts)
  local o = {uri = "sip:" .. user .. "@127.0.0.1",
             listen = {"udp:127.0.0.1:0", "tcp:127.0.0.1:0"},
             t1_ms = 50, log_level = os.getenv("SR_TEST_LOG") and "debug" or "error"}
  for k, v in pairs(opts or {}) do o[k] = v end
  local ua = sr.UserAgent(o)
  uas[#uas + 1] = ua
  return ua
end

--- target(ua, user, tp): "sip:user@127.0.0.1:PORT[;transport=tcp]"
function H.target(ua, user, tp)
  local host, port = ua:address(tp or "udp")
  return ("sip:%s@%s:%d%s"):format(user, host, port,
                                    tp == "tcp" and ";transport=tcp" or "")
end

--- drive(cond, limit_s, list): runs the loops of every open UA made by
--- H.ua (or of `list`) until cond() holds; false after limit_s seconds.
function H.drive(cond, limit_s, list)
  local t = {}
  for _, ua in ipairs(list or uas) do
    if not ua.closed then t[#t + 1] = ua end
  end
  t.timeout = limit_s or 10
  t["until"] = cond
  return sr.run(t)
end

--- cleanup(): closes every UA made by H.ua and collects garbage.
function H.cleanup()
  for i = #uas, 1, -1 do
    local ua = uas[i]
    uas[i] = nil
    pcall(getmetatable(ua).__close, ua)
  end
  collectgarbage()
  collectgarbage()
end

--- live(): the process's live C sessions + referrals + referrers.
function H.live()
  local s = sr.stats()
  return s.sessions + s.referrals + s.referrers
end

return H
