--- Alice, Bob and Carol for the transfer tests: each party answers calls
--- per `answer` ("accept", "ring", "reject"), keeps the sessions it holds,
--- records the messages it sends and the REFERs it receives.
local t = require "lib.harness"

local P = {}

--- P.new(opts) -> alice, bob, carol. opts.ua: extra UserAgent options for
--- all three; opts.alice / opts.bob / opts.carol: per party.
function P.new(opts)
  opts = opts or {}
  local parties = {}
  for _, name in ipairs{"alice", "bob", "carol"} do
    local o = {}
    for k, v in pairs(opts.ua or {}) do o[k] = v end
    for k, v in pairs(opts[name] or {}) do o[k] = v end
    local p = {name = name, answer = "accept", calls = {}, sent = {}, invites = {},
               referrals = {}}
    p.ua = t.ua(name, o)
    p.ua.on_message = function(out, _, _, _, data)
      if out then p.sent[#p.sent + 1] = data:match("^[^\r]*") end
    end
    p.ua.on_invite = function(inv)
      p.calls[#p.calls + 1] = inv
      p.invites[#p.invites + 1] = tostring(inv.request)
      if p.on_refer then inv.on_refer = p.on_refer end
      if p.answer == "reject" then return inv:reject(486) end
      inv:progress()
      if p.answer == "accept" then inv:accept() end
    end
    parties[#parties + 1] = p
  end
  return table.unpack(parties)
end

--- P.call(from, to, tp) -> from's session, to's session, both established.
function P.call(from, to, tp)
  local n = #to.calls
  local s = from.ua:make_inviter(t.target(to.ua, to.name, tp))
  if from.on_refer then s.on_refer = from.on_refer end
  from.calls[#from.calls + 1] = s
  s:invite()
  t.require_(t.drive(function()
    local other = to.calls[n + 1]
    return s.state == "established" and other and other.state == "established"
  end), from.name .. " calls " .. to.name)
  return s, to.calls[n + 1]
end

--- P.count(p, prefix): messages p sent that start with prefix.
function P.count(p, prefix)
  local n = 0
  for _, line in ipairs(p.sent) do
    if line:sub(1, #prefix) == prefix then n = n + 1 end
  end
  return n
end

--- P.refer_opts(rec): referrer handlers recording into rec.
function P.recorder()
  local rec = {accepts = 0, rejects = 0, closed = 0, notifies = {}}
  rec.opts = {
    on_accept = function(code, reason) rec.accepts = rec.accepts + 1; rec.accept_code = code end,
    on_reject = function(code, reason)
      rec.rejects = rec.rejects + 1
      rec.reject_code, rec.reject_reason = code, reason
    end,
    on_notify = function(code, reason, state)
      rec.notifies[#rec.notifies + 1] = {code = code, reason = reason, state = state}
    end,
    on_closed = function() rec.closed = rec.closed + 1 end,
  }
  rec.is_closed = function() return rec.closed > 0 end
  rec.codes = function()
    local c = {}
    for i, n in ipairs(rec.notifies) do c[i] = n.code end
    return table.concat(c, ",")
  end
  return rec
end

return P
