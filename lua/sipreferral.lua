--- sipreferral: SIP call transfer (REFER) for Lua 5.4.
--
--   local sr = require "sipreferral"
--   local ua <close> = sr.UserAgent{uri = "sip:bob@127.0.0.1",
--                                   listen = {"udp:127.0.0.1:0"}}
--   ua.on_invite = function(invitation)
--     invitation.on_refer = function(referral)
--       referral:accept()
--       referral:make_inviter():invite()
--     end
--     invitation:accept()
--   end
--   ua:run()
--
-- API (names mirror the Python module):
--   sr.UserAgent{uri=, listen={...}, ...options}  on_invite(invitation),
--     on_refer(referral) (out of dialog), on_refer_policy(referral) -> nil
--     or a code 300-699, on_message(outgoing, "udp"|"tcp", local, remote,
--     data) -> true drops it; on_log(level, message): the core's log lines
--     ("error" | "warning" | "info" | "debug", up to log_level) instead of
--     stderr, until the UA is closed; the loop (run, run_once, sr.run)
--     hands them over between its turns, in order, and raises an error of
--     on_log; :address(tp) -> host, port; :listen(spec);
--     :run{timeout=, ["until"]=} -> boolean; :run_once([timeout]) -> n;
--     :fileno(); :next_timeout(); :make_inviter(target, opts); :stats();
--     :close(); .uri, .closed
--   sr.run{ua1, ua2, ..., timeout=, ["until"]=}: several loops together
--   Session (Inviter, Invitation): .state ("initial", "establishing",
--     "established", "terminating", "terminated"), .role, .call_id,
--     .local_tag, .remote_tag, .remote_target, .remote_identity,
--     .remote_body, .ua, .referred_session, .referral_inviter; :bye();
--     :refer(uri | session, {on_accept, on_reject, on_notify, on_closed,
--     extra_headers, refer_sub, bye_on_success}) -> Referrer; handlers
--     on_state(state), on_response(code, reason), on_refer(referral),
--     on_bye(). Inviter: :invite(), :cancel(). Invitation: :progress(o),
--     :accept(o), :reject(o | code), .request, .replaces
--   Referral: .state, .refer_to (NameAddrHeader), .referred_by, .replaces,
--     .request (IncomingRequest), .session, .ua, .id, .refer_sub;
--     :accept(o), :reject(o | code), :make_inviter(o), :notify(code,
--     reason), :set_notify_mode("all" | "final_only" | "none")
--   Referrer: .id, .closed, .session, on_accept/on_reject/on_notify/on_closed
--   NameAddrHeader: .display_name, .uri, .parameters, tostring()
--   URI: .scheme, .user, .host, .port, .parameters, .headers, tostring()
--   IncomingRequest: .method, .ruri, :header(name [, i]), :headers(name),
--     .body, .text, tostring()
--   sr.stats(), sr.strerror(code), sr.version, sr.Error, sr.EINVAL, ...
-- Response options: status_code, reason_phrase, extra_headers, body,
-- content_type. extra_headers: {"Name: value", ...} or {Name = "value"}.
--
-- Errors: misuse and every failure of the C library raise a Lua error
-- (never `nil, message`). The value is an `sr.Error` object with `code`
-- (`sr.EINVAL`, `sr.ECLOSED`, ...), `name` ("ECLOSED"), `message`, and a
-- `__tostring` that gives "file:line: Class:method: description (ENAME)".
-- An error raised inside a callback is kept and raised again, unchanged,
-- by the `ua:run()` / `ua:run_once()` / `sr.run()` that drives that UA
-- (a callback fired inside a call such as inviter:invite() does not make
-- that call fail: its error comes out of the next run).
--
-- Lifetime: every object holds a reference on its C object, dropped by
-- `__gc` or `__close`; after that, or once the protocol object ended, a
-- call raises ECLOSED. An object with handlers (on_*) stays alive until its
-- closed event (a session's "terminated", a referrer's on_closed) or until
-- its UA is closed; the handlers are released then. A UserAgent that is
-- collected is closed. Each session, referral and referrer counts the C
-- memory it keeps (about 2 KiB) towards the collector's pace, so objects
-- the script dropped are collected as it goes (unless it stopped the
-- collector). One Lua object per C object: the same session,
-- referral or inviter is always the same value.
--
-- Callbacks run on the main Lua thread (captured when the UA is created),
-- so the loop may be driven from a coroutine; a callback must not yield.
-- Integers (status codes, ports, CSeq ids) are Lua integers; timeouts are
-- in seconds.

local B = require "sipreferral.base"
B.internal()
require "sipreferral.views"
require "sipreferral.session"
require "sipreferral.referral"
local loop = require "sipreferral.useragent"
B.seal()

local M = {
  version = B.core.sr_version(),
  core = B.core,                 -- the raw SWIG module (handles as light userdata)
  Error = B.Error,
  run = loop.run,                -- sr.run{ua1, ua2, ..., timeout=, ["until"]=}
  stats = loop.stats,            -- live C objects in the process
}
--- sr.strerror(code) -> the C library's description of an error code.
function M.strerror(code) return B.core.sr_strerror(code) end
for name, code in pairs(B.codes) do M[name] = code end -- sr.EINVAL, sr.ECLOSED, ...
for name, cls in pairs(B.classes) do M[name] = cls end -- sr.UserAgent, sr.Session, ...

return M
