"""``python3 -m sipreferral agent``: the Python twin of sipreferral-agent.

A SIP user agent that answers calls and handles REFERs as its flags (the
same as the C agent's) or a Python policy script say. The script is a
Python file with any of::

    def on_invite(invitation): ...            # sipreferral.Invitation
    def on_refer(referral): ...               # sipreferral.Referral
    def on_notify(referral, status_code, reason): ...

A defined on_invite / on_refer handles the event itself (it may also
decide later) unless it returns False: then the flags decide, so a script
may only look. on_notify is told of each response of a call that follows
a REFER (what its NOTIFY says).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import runpy
import signal
import socket
import sys
import time
from collections import deque
from typing import Any, Callable, Dict, List, Optional

from . import __version__
from ._base import Error, ErrorCode, ReferralState, SessionRole, SessionState, Transport, _core
from ._trace import Pcap, ladder_line
from .referral import Referral
from .session import Invitation, Session
from .ua import UserAgent, _loop_break, global_stats

__all__ = ["main"]

PROG = "sipreferral-agent"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_CALL_FAILED = 0, 1, 2, 3
LEVELS = ["error", "warning", "info", "debug"]
_PY_LEVEL = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}

USAGE = """\
Usage: python3 -m sipreferral agent [OPTION]...
A SIP user agent that answers calls and handles REFER (call transfer)
as its flags, or a Python policy script, say (the twin of sipreferral-agent).

Network and identity:
  --listen SPEC        udp:HOST:PORT or tcp:HOST:PORT (IPv6 as [::1]);
                       repeatable; default udp and tcp on 127.0.0.1:5060.
                       Port 0 picks a free port (udp and tcp then share one
                       when they can); see --port-file
  --uri SIP-URI        identity, default sip:agent@HOST of the first --listen
  --username NAME      digest username for 401/407 challenges
  --password SECRET    digest password
  --outbound-proxy URI send out-of-dialog INVITEs (--call, followed REFERs)
                       through this proxy, e.g. sip:10.0.0.1;transport=tcp;
                       targets may then name hosts
  --t1 MS              SIP timer T1 in milliseconds (default 500)
  --max-connections N  TCP connections open at once (default 1024); the
                       open-file limit is raised to fit when it can be
  --port-file FILE     write the bound listeners, one line:
                       "udp:127.0.0.1:PORT tcp:127.0.0.1:PORT"

Behaviour:
  --on-invite MODE     answer (default: 180 then 200), reject:CODE
                       (a final 300-699), or ignore (no answer)
  --on-refer MODE      follow (default: 202, NOTIFY 100, then INVITE the
                       Refer-To target, its progress sent as NOTIFYs),
                       accept (202 and NOTIFY 100 only, no INVITE), or
                       reject:CODE (a final 300-699)
  --allow-out-of-dialog-refer
                       accept REFER outside a call (default: 405)
  --allow-scheme SCHEME
                       also allow Refer-To URIs of SCHEME (besides sip;
                       a sips target gets NOTIFY 503: no TLS); repeatable
  --script FILE.py     Python policy: functions on_invite(invitation),
                       on_refer(referral), on_notify(referral, code, reason);
                       a defined one handles the event unless it returns
                       False (then the flags do)
  --call TARGET        place a call to the SIP URI TARGET at start;
                       repeatable. Exit status 3 if one never connects
  --bye-after SECONDS  hang up each call this long after it is
                       established (0: at once); default never
  --max-calls N        exit after N calls (incoming and --call) have
                       ended and nothing else is in progress
  --duration SECONDS   shut down cleanly after this long

Output:
  --ladder             print each SIP message sent or received as one line
                       of a ladder diagram on stdout
  --pcap FILE          write every SIP message to FILE as a pcap capture
                       (Wireshark, tshark, sngrep)
  --stats              print the library's live object counts at exit
  -v, --verbose        more log output on stderr (repeatable)
  --log-level LEVEL    error, warning (default), info or debug
  -h, --help           this text
  -V, --version        the version

SIGINT or SIGTERM shuts down cleanly: undecided REFERs are rejected, open
transfer subscriptions get their final NOTIFY, calls end with BYE, and
the exit status is 0. Exit status: 0 ok, 1 runtime error (e.g. an address
that cannot be bound), 2 bad command line, 3 a --call failed.
"""


class UsageError(Exception):
    """A bad command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _int(lo: int, hi: int, what: str) -> Callable[[str], int]:
    def conv(v: str) -> int:
        if not re.fullmatch(r"[+-]?\d+", v.strip()) or not lo <= int(v) <= hi:
            raise argparse.ArgumentTypeError(f"'{v}': expected {what}")
        return int(v)
    return conv


def _seconds(positive: bool) -> Callable[[str], float]:
    def conv(v: str) -> float:
        try:
            x = float(v)
        except ValueError:
            x = float("nan")
        if not math.isfinite(x) or x < 0 or x > 1e7 or (positive and x <= 0):
            raise argparse.ArgumentTypeError(
                f"'{v}': expected seconds {'> 0' if positive else '>= 0'}")
        return x
    return conv


def _code(v: str) -> Optional[int]:
    m = re.fullmatch(r"(?i)reject:(\d+)", v)
    return int(m.group(1)) if m and 300 <= int(m.group(1)) <= 699 else None


def _on_invite(v: str) -> tuple:
    if v.lower() in ("answer", "ignore"):
        return (v.lower(), 0)
    code = _code(v)
    if code is None:
        raise argparse.ArgumentTypeError(
            f"'{v}': expected answer, reject:CODE (300-699) or ignore")
    return ("reject", code)


def _on_refer(v: str) -> tuple:
    if v.lower() in ("follow", "accept"):
        return (v.lower(), 0)
    code = _code(v)
    if code is None:
        raise argparse.ArgumentTypeError(
            f"'{v}': expected follow, accept or reject:CODE (300-699)")
    return ("reject", code)


def _listen(v: str) -> str:
    if not re.match(r"(?i)(udp|tcp):", v):
        raise argparse.ArgumentTypeError(f"'{v}': expected udp:HOST:PORT or tcp:HOST:PORT")
    return v


def _uri(v: str) -> str:
    if not re.match(r"(?i)sips?:", v):
        raise argparse.ArgumentTypeError(f"'{v}': expected a sip: or sips: URI")
    return v


def _is_sips(target: str) -> bool:
    return target[target.startswith("<"):][:5].lower() == "sips:"


def _scheme(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,31}", v):
        raise argparse.ArgumentTypeError(f"'{v}': not a URI scheme")
    return v


def _level(v: str) -> int:
    if v.lower() in LEVELS:
        return LEVELS.index(v.lower())
    if v in ("0", "1", "2", "3"):
        return int(v)
    raise argparse.ArgumentTypeError(f"'{v}': expected error, warning, info or debug")


def _fit_open_files(n: int) -> None:
    """Each TCP connection is a file descriptor: room for n of them besides
    the rest, as far as the hard limit allows."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (want if hard == resource.RLIM_INFINITY or want < hard else hard, hard))


def parse_args(argv: List[str]) -> argparse.Namespace:
    """The options; raises UsageError (or exits 0 for --help/--version)."""
    p = _Parser(prog=PROG, add_help=False, allow_abbrev=False)
    a = p.add_argument
    a("--listen", action="append", type=_listen, default=[])
    a("--uri", type=_uri)
    a("--username")
    a("--password")
    a("--outbound-proxy")
    a("--t1", type=_int(1, 60000, "milliseconds (1-60000)"), default=0)
    a("--max-connections", type=_int(1, 1000000, "a positive integer"), default=0)
    a("--port-file")
    a("--on-invite", type=_on_invite, default=("answer", 0))
    a("--on-refer", type=_on_refer, default=("follow", 0))
    a("--allow-out-of-dialog-refer", action="store_true")
    a("--allow-scheme", action="append", type=_scheme, default=[])
    a("--script")
    a("--call", action="append", default=[])
    a("--bye-after", type=_seconds(False), default=-1.0)
    a("--max-calls", type=_int(1, 1000000000, "a positive integer"), default=0)
    a("--duration", type=_seconds(True), default=0.0)
    a("--ladder", action="store_true")
    a("--pcap")
    a("--stats", action="store_true")
    a("-v", "--verbose", action="count", default=0)
    a("--log-level", type=_level)
    a("-h", "--help", action="store_true")
    a("-V", "--version", action="store_true")
    o = p.parse_args(argv)
    if o.help:
        sys.stdout.write(USAGE)
        raise SystemExit(EXIT_OK)
    if o.version:
        print(f"{PROG} {__version__} (python; libsipreferral {__version__})")
        raise SystemExit(EXIT_OK)
    if o.log_level is None:
        o.log_level = min(1 + o.verbose, 3)
    if (o.username is None) != (o.password is None):
        raise UsageError("--username and --password go together")
    if len(o.listen) > 8 or len(o.allow_scheme) > 8 or len(o.call) > 16:
        raise UsageError("too many --listen (8), --allow-scheme (8) or --call (16)")
    if not o.listen:
        o.listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    return o


def _split_spec(spec: str) -> Optional[tuple]:
    """"udp:HOST:PORT" -> ("udp", host with brackets, port) or None."""
    m = re.fullmatch(r"(?i)(udp|tcp):(\[[^\]]+\]|[^:\[\]]+):(\d{1,5})", spec)
    if not m or int(m.group(3)) > 65535:
        return None
    return m.group(1).lower(), m.group(2), int(m.group(3))


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(record.created))
        who = "agent" if record.name.endswith(".agent") else record.name
        level = {"WARNING": "warning", "ERROR": "error", "INFO": "info",
                 "DEBUG": "debug"}.get(record.levelname, "log")
        line = f"{t}.{int(record.msecs):03d} {who} {level}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Hold(logging.Filter):
    """Keeps the core's error lines (while binding) instead of printing
    them, so that a failure is reported in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.last: Optional[str] = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.name == "sipreferral":
            self.last = record.getMessage()
            return False
        return True


_ESTABLISHED = SessionState.ESTABLISHED
_TERMINATED = SessionState.TERMINATED
_ESTABLISHED_BIT = 1 << _ESTABLISHED
_TERMINATED_BIT = 1 << _TERMINATED
_LIVE_REFERRAL = (ReferralState.PENDING, ReferralState.ACCEPTED)
_referral_state = _core.sr_referral_get_state  # Referral.state without the enum
# Ended calls a quiet loop lets gather before it stops to forget them.
_SWEEP_BATCH = 8


class Call:
    """A call the agent holds: incoming, --call, or one following a REFER.
    Its callbacks are the session's until it ends (then dropped, so that
    neither keeps the other: no garbage cycle per call)."""

    __slots__ = ("agent", "session", "id", "counted", "placed", "established",
                 "ended", "bye_at", "referral", "kept")

    def __init__(self, agent: "Agent", session: Session, counted: bool,
                 placed: bool = False, referral: Optional[Referral] = None) -> None:
        self.agent = agent
        self.session = session
        self.id = agent.next_id = agent.next_id + 1
        self.counted = counted
        self.placed = placed  # a --call
        self.established = False
        self.ended = False
        self.bye_at = 0.0
        self.referral = referral  # the REFER it follows
        self.kept: Optional[Dict[str, Any]] = None  # its entry in agent.referrals
        if counted:
            agent.calls_started += 1
        if agent.info:  # it logs every event
            states, min_code = -1, 0
            session.on_bye = self.on_bye
            ended = None
        else:  # only what it acts on is delivered
            states = (agent.call_states | _ESTABLISHED_BIT) if placed else agent.call_states
            min_code = 0 if referral is not None and agent.script.get("on_notify") else 300
            # Its end is kept in C (no Python frame), except a --call's,
            # which on_state counts when it failed.
            ended = None if placed else (agent.ended, self, _SWEEP_BATCH)
            if ended is not None:
                states &= ~_TERMINATED_BIT
        session._own_callbacks(self.on_state, states, self.on_response, min_code,
                               agent.handle_referral, ended)
        agent.calls[self] = None

    def name(self) -> str:
        return "outgoing" if self.session.role == SessionRole.INVITER else "incoming"

    def on_state(self, st: SessionState) -> None:
        ag = self.agent
        if ag.info:
            ag.log.info("call %d (%s): %s", self.id, self.name(), st.name.lower())
        if st == _ESTABLISHED:
            self.established = True
            if ag.o.bye_after >= 0 and not ag.shutdown:
                self.bye_at = time.monotonic() + ag.o.bye_after
                ag.byes.append((self.bye_at, self))
                ag.dirty = True
        elif st == _TERMINATED:
            if not self.ended:  # Agent.call_ended, inline: one frame less per call
                self.ended = ag.dirty = True
                ag.ended.append(self)
                if not ag.quiet or len(ag.ended) >= _SWEEP_BATCH:
                    _loop_break()
            if self.placed and not self.established:
                ag.placed_failed += 1
            s = self.session  # the last event
            s.on_state = s.on_response = s.on_bye = None

    def on_response(self, code: int, reason: Optional[str]) -> None:
        ag = self.agent
        if code >= 300:
            ag.log.warning("call %d: %d %s", self.id, code, reason or "")
        elif ag.info:
            ag.log.info("call %d: %d %s", self.id, code, reason or "")
        if self.referral is not None:
            cb = ag.script.get("on_notify")
            if cb:
                cb(self.referral, code, reason)

    def on_bye(self) -> None:
        if self.agent.info:
            self.agent.log.info("call %d: BYE from the peer", self.id)


class Agent:
    """The agent's state: its user agent, calls, referrals, shutdown."""

    def __init__(self, o: argparse.Namespace) -> None:
        self.o = o
        self.log = logging.getLogger("sipreferral.agent")
        # Info lines are off by default: their arguments are not even made.
        self.info = self.log.isEnabledFor(logging.INFO)
        self.ua: Optional[UserAgent] = None
        # Nothing done per message or per call walks all calls or all
        # referrals: 10,000 calls up must not cost more per transfer than ten.
        self.calls: Dict[Call, None] = {}  # in the order they came
        self.referrals: List[Dict[str, Any]] = []  # {"r", "call", "final"}
        # A referral says nothing when it finishes: the finished ones are
        # dropped once their number has doubled since the last look.
        self.scan_referrals_at = 64
        # --bye-after: (time, call) in time order (every call gets the same
        # delay); an entry whose call ended or was hung up is skipped.
        self.byes: deque = deque()
        self.next_id = 0
        self.calls_started = self.calls_ended = self.placed_failed = 0
        self.shutdown = 0  # 1 finishing referrals, 2 ending calls
        self.deadline = self.half_deadline = 0.0
        self.script: Dict[str, Any] = {}
        self.pcap: Optional[Pcap] = None
        self.signal: Optional[str] = None
        self.wake: Optional[socket.socket] = None  # signal.set_wakeup_fd
        self.dirty = False  # a call ended or got a --bye-after time
        self.ended: List[Call] = []  # calls ended since the last sweep
        self.next_bye: Optional[float] = None
        self.quiet = False  # the loop turns in C until a break or a signal
        # The states a Call acts on without --info (and ESTABLISHED for a
        # --call, see Call): TERMINATED, ESTABLISHED for --bye-after.
        self.call_states = _TERMINATED_BIT | (_ESTABLISHED_BIT if o.bye_after >= 0 else 0)

    # ---------------------------------------------------- events

    def on_invite(self, inv: Invitation) -> None:
        if self.info:
            self.log.info("INVITE from %s%s", inv.remote_identity or "?",
                          " with Replaces" if inv.request.header("Replaces") else "")
        if self.shutdown or (self.o.max_calls and self.calls_started >= self.o.max_calls):
            inv.reject(503, extra_headers=["Retry-After: 60"])
            return
        c = Call(self, inv, True)
        cb = self.script.get("on_invite")
        if cb and cb(inv) is not False:
            return
        mode, code = self.o.on_invite
        if mode == "answer":
            inv.progress()
            try:
                inv.accept()
            except Error as e:
                self.log.warning("call %d: could not answer: %s", c.id, e)
        elif mode == "reject":
            inv.reject(code)

    def handle_referral(self, r: Referral) -> None:
        if self.info:
            self.log.info("REFER (id %d) to %s%s%s", r.id, r.refer_to,
                          " with Replaces" if r.replaces else "",
                          "" if r.refer_sub else ", Refer-Sub: false")
        if self.shutdown:
            r.reject(503)
            return
        cb = self.script.get("on_refer")
        if cb and cb(r) is not False:
            if _referral_state(r._ptr) in _LIVE_REFERRAL:
                k = {"r": r, "call": None, "final": False}  # kept: a shutdown answers it
                self.referrals.append(k)
                # The Inviter the script made for it, if any (new: this is
                # the referral's only on_refer), when the REFER came in a call.
                follow = r._inviter
                if follow is not None and _core.sr_referral_get_session(r._ptr) is not None:
                    c = Call(self, follow, False, referral=r)  # the script followed it
                    k["call"], c.kept = c, k
            return
        mode, code = self.o.on_refer
        try:
            if mode == "reject":
                r.reject(code)
                return
            r.accept()
        except Error as e:
            self.log.warning("%s: %s", mode, e)
            return
        k = {"r": r, "call": None, "final": False}  # kept: a shutdown answers it
        self.referrals.append(k)
        if mode == "follow":
            self.follow(k)

    def notify_final(self, k: Dict[str, Any], code: int, reason: Optional[str] = None) -> None:
        if k["final"]:
            return
        k["final"] = True
        try:
            k["r"].notify(code, reason)
        except Error as e:
            if e.code not in (ErrorCode.ESTATE, ErrorCode.ECLOSED):
                self.log.warning("final NOTIFY %d: %s", code, e)

    def follow(self, k: Dict[str, Any]) -> None:
        r: Referral = k["r"]
        try:
            inv = r.make_inviter()
        except Error as e:
            self.log.warning("cannot follow the REFER to %s: %s", r.refer_to.uri, e)
            scheme = r.refer_to.uri.scheme.lower()
            # a host name without an outbound proxy, or sips without TLS:
            # unreachable (RFC 3261 §8.1.3.1, RFC 3263 §4.3)
            self.notify_final(k, 416 if scheme not in ("sip", "sips")
                              else 503 if e.code in (ErrorCode.EADDR, ErrorCode.ETRANSPORT)
                              else 400)
            return
        c = Call(self, inv, False, referral=r)
        k["call"], c.kept = c, k
        if self.info:
            self.log.info("call %d: following the REFER to %s", c.id, r.refer_to.uri)
        try:
            inv.invite()
        except Error as e:
            self.log.warning("call %d: INVITE not sent: %s", c.id, e)
            self.call_ended(c)
            self.notify_final(k, 503)

    def place_call(self, target: str) -> None:
        assert self.ua is not None
        inv = self.ua.make_inviter(target)
        c = Call(self, inv, True, placed=True)
        try:
            inv.invite()
        except Error:
            self.call_ended(c)
            self.placed_failed += 1
            raise
        finally:
            self.log.info("call %d: INVITE %s", c.id, target)

    # ---------------------------------------------------- housekeeping

    def call_ended(self, c: Call) -> None:
        """Marks a call ended; the next sweep forgets it. A loop turning
        in C (quiet) is stopped for it only every _SWEEP_BATCH calls:
        nothing needs the sweep sooner. (Call.on_state has it inline.)"""
        if not c.ended:
            c.ended = self.dirty = True
            self.ended.append(c)
            if not self.quiet or len(self.ended) >= _SWEEP_BATCH:
                _loop_break()  # the loop has a sweep to make

    def sweep(self, now: float) -> Optional[float]:
        """Forgets ended calls and finished referrals, fires --bye-after.
        Returns seconds until the next --bye-after, or None. Works only
        when a call ended, got a --bye-after time or one is due (the loop
        calls it on every turn); its cost follows what happened, not how
        many calls are up."""
        if not self.dirty and not self.ended and (self.next_bye is None or now < self.next_bye):
            return None if self.next_bye is None else self.next_bye - now
        self.dirty = False
        if self.shutdown or len(self.referrals) >= self.scan_referrals_at:
            self.referrals = [k for k in self.referrals
                              if _referral_state(k["r"]._ptr) in _LIVE_REFERRAL]
            self.scan_referrals_at = max(64, 2 * len(self.referrals))
        if self.ended:
            ended = self.ended[:]
            self.ended.clear()  # (the same list: the C side of Call appends to it)
            for c in ended:
                del self.calls[c]
                s = c.session  # its callbacks and it no longer refer to each other
                s.on_state = s.on_response = s.on_bye = None
                if c.counted:
                    self.calls_ended += 1
                k, c.kept = c.kept, None  # (they referred to each other)
                if k is not None and k["call"] is c:
                    k["call"] = None
        byes = self.byes
        while byes:
            at, c = byes[0]
            live = not c.ended and c.bye_at == at  # not ended or hung up already
            if live and at > now:
                break
            byes.popleft()
            if not live:
                continue
            c.bye_at = 0.0
            if self.info:
                self.log.info("call %d: hanging up", c.id)
            try:
                c.session.bye()
            except Error:
                pass
        self.next_bye = byes[0][0] if byes else None
        return None if self.next_bye is None else max(self.next_bye - now, 0.0)

    def live_calls(self) -> int:
        return sum(1 for c in self.calls if not c.ended)

    def live_referrals(self) -> int:
        return sum(1 for k in self.referrals if k["r"].state in _LIVE_REFERRAL)

    def finish_referrals(self) -> None:
        for k in self.referrals:
            r, c = k["r"], k["call"]
            try:
                if r.state == ReferralState.PENDING:
                    r.reject()  # 603
                elif r.state == ReferralState.ACCEPTED:
                    # a call in progress ends with 487, its final NOTIFY
                    if c is not None and not c.ended and \
                            c.session.state == SessionState.ESTABLISHING:
                        c.session.bye()
                    elif c is None or c.ended:
                        self.notify_final(k, 503, "Service Unavailable")
            except Error as e:
                self.log.warning("shutdown: %s", e)

    def end_calls(self) -> None:
        for c in list(self.calls):
            if c.ended:
                continue
            c.bye_at = 0.0
            st = c.session.state
            try:
                if st == SessionState.INITIAL and isinstance(c.session, Invitation):
                    c.session.reject(480)
                elif st == SessionState.INITIAL:
                    self.call_ended(c)  # an Inviter never sent
                elif st < SessionState.TERMINATING:
                    c.session.bye()
            except Error as e:
                self.log.warning("shutdown: call %d: %s", c.id, e)

    def begin_shutdown(self, why: str) -> None:
        t1 = self.o.t1 or 500
        bound = min(max(64 * t1, 1000), 8000) / 1000.0
        self.log.info("shutting down (%s)", why)
        self.shutdown = 1
        self.dirty = True
        self.deadline = time.monotonic() + bound
        self.half_deadline = self.deadline - bound / 2
        self.finish_referrals()

    # ---------------------------------------------------- the loop

    def run(self) -> int:
        """The loop. Each turn waits once, in the UA's run_once: for its
        sockets, its next timer, a signal (the wakeup fd is in the UA's
        wait, so one arriving just before it is not missed) or the next
        deadline of our own; then handles what came. One system call per
        wake-up."""
        assert self.ua is not None
        run_once, monotonic = self.ua.run_once, time.monotonic
        run_quiet = self.ua._run_until_break
        end = monotonic() + self.o.duration if self.o.duration > 0 else 0.0
        # Without --duration, --max-calls and --bye-after, a turn after
        # which no call ended and no signal came has nothing to check.
        plain = not end and not self.o.max_calls and self.o.bye_after < 0
        while True:
            self.quiet = plain and self.signal is None
            if self.quiet:
                # Turns in C until calls ended (call_ended breaks, every
                # _SWEEP_BATCH calls) or a signal comes: nothing to check
                # in between.
                if self.dirty or self.ended:
                    self.sweep(monotonic())
                try:
                    run_quiet()
                except Exception:  # a --script callback failed: say so, go on
                    self.log.exception("a callback raised")
                continue
            now = monotonic()
            wait = self.sweep(now)
            if self.signal and not self.shutdown:
                self.begin_shutdown(self.signal)
                continue
            if self.signal == "again":
                self.log.warning("second signal: exiting now")
                return EXIT_OK
            if not self.shutdown:
                if end and now >= end:
                    self.begin_shutdown("--duration")
                    continue
                if (self.o.max_calls and self.calls_ended >= self.o.max_calls
                        and not self.live_calls() and not self.live_referrals()):
                    return EXIT_OK
                if end:
                    wait = _min(wait, end - now)
            else:
                refs, calls = self.live_referrals(), self.live_calls()
                if self.shutdown == 1 and (refs == 0 or now >= self.half_deadline):
                    self.shutdown = 2
                    self.end_calls()
                    continue
                if self.shutdown == 2 and calls == 0 and refs == 0:
                    return EXIT_OK
                if now >= self.deadline:
                    self.log.warning("shutdown bound reached with %d calls and %d "
                                     "referrals still open", calls, refs)
                    return EXIT_OK
                wait = _min(wait, (self.half_deadline if self.shutdown == 1
                                   else self.deadline) - now)
            try:
                run_once(wait)
            except Exception:  # a --script callback failed: say so, go on
                self.log.exception("a callback raised")

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.shutdown:
            self.signal = "again"
        else:
            self.signal = "SIGINT" if signum == signal.SIGINT else "SIGTERM"

    def trace(self, outgoing: bool, tp: Transport, local: str, remote: str,
              data: bytes) -> bool:
        if self.o.ladder:
            src, dst = (local, remote) if outgoing else (remote, local)
            print(ladder_line(src, dst, tp, data), flush=True)
        if self.pcap is not None:
            self.pcap.write(outgoing, tp, local, remote, data)
        return False


def _min(a: Optional[float], b: float) -> float:
    return b if a is None else min(a, b)


def _listen_all(ua: UserAgent, specs: List[str]) -> str:
    """Binds every --listen; a port-0 one reuses the port an earlier port-0
    listener got on the same host (UDP and TCP on one port, as SIP peers
    expect). Returns the bound specs, space-separated."""
    got: List[tuple] = []
    out = []
    for spec in specs:
        parts = _split_spec(spec)
        if parts is None:
            raise UsageError(f"--listen '{spec}': expected udp:HOST:PORT or tcp:HOST:PORT")
        tp, host, port = parts
        wanted0, done = port == 0, False
        if wanted0:
            for h, p in got:
                if h == host:
                    try:
                        ua.listen(f"{tp}:{host}:{p}")
                        port, done = p, True
                        break
                    except Error:
                        pass
        if not done:
            port = ua.listen(spec)
        if wanted0 and port:
            got.append((host, port))
        out.append(f"{tp}:{host}:{port}")
    return " ".join(out)


def _write_port_file(path: str, line: str) -> None:
    """A FIFO is written in place (non-blocking: no reader is an error); a
    regular file is replaced atomically."""
    special = os.path.exists(path) and not os.path.isfile(path)
    target = path if special else f"{path}.tmp{os.getpid()}"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    if not special:
        os.replace(target, path)


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the agent; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        o = parse_args(argv)
    except UsageError as e:
        print(f"{PROG}: {e} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:
        return int(e.code or 0)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("sipreferral")
    saved = (root.level, root.propagate)
    root.addHandler(handler)
    root.setLevel(_PY_LEVEL[o.log_level])
    root.propagate = False
    restore: List[Callable[[], Any]] = [
        lambda: (root.removeHandler(handler), root.setLevel(saved[0]),
                 setattr(root, "propagate", saved[1]))]

    ag = Agent(o)
    rc = EXIT_OK
    try:
        if o.uri:
            uri = o.uri
        else:
            parts = _split_spec(o.listen[0])
            uri = f"sip:agent@{parts[1] if parts else '127.0.0.1'}"
        schemes = ",".join(["sip"] + o.allow_scheme)
        opts: Dict[str, Any] = dict(user_agent=f"{PROG}/{__version__} (python)",
                                    allow_out_of_dialog_refer=o.allow_out_of_dialog_refer,
                                    allowed_schemes=schemes, log_level=o.log_level)
        if o.outbound_proxy is not None:
            opts["outbound_proxy"] = o.outbound_proxy
        if o.t1:
            opts["t1_ms"] = o.t1
        if o.max_connections:
            opts["max_tcp_connections"] = o.max_connections
            _fit_open_files(o.max_connections)
        try:
            ag.ua = UserAgent(uri, listen=[], username=o.username, password=o.password,
                              **opts)
        except Error as e:
            proxy = "" if o.outbound_proxy is None else f", outbound proxy {o.outbound_proxy}"
            print(f"{PROG}: cannot create the user agent ({uri}{proxy}): {e.message}",
                  file=sys.stderr)
            return EXIT_USAGE if e.code == ErrorCode.EINVAL else EXIT_RUNTIME
        held = _Hold()
        handler.addFilter(held)  # the core's own error line becomes ours
        try:
            ports = _listen_all(ag.ua, o.listen)
        except Error as e:
            print(f"{PROG}: {held.last or e.message}", file=sys.stderr)
            return EXIT_USAGE if e.code == ErrorCode.EINVAL else EXIT_RUNTIME
        except UsageError as e:
            print(f"{PROG}: {e} (see --help)", file=sys.stderr)
            return EXIT_USAGE
        finally:
            handler.removeFilter(held)
        if o.script:
            try:
                ag.script = runpy.run_path(o.script, run_name="sipreferral_policy")
            except Exception as e:  # the script's own error, in one line
                print(f"{PROG}: --script {o.script}: {type(e).__name__}: {e}",
                      file=sys.stderr)
                return EXIT_USAGE
        if o.pcap:
            try:
                ag.pcap = Pcap(o.pcap)
            except OSError as e:
                print(f"{PROG}: cannot write --pcap {o.pcap}: {e.strerror}", file=sys.stderr)
                return EXIT_RUNTIME
        ag.ua.on_invite = ag.on_invite
        ag.ua.on_refer = ag.handle_referral
        if o.ladder or ag.pcap is not None:
            ag.ua.message_hook = ag.trace
        ag.wake, wake_w = socket.socketpair()
        for sock in (ag.wake, wake_w):
            sock.setblocking(False)
        ag.ua._watch_wakeup(ag.wake.fileno())  # dropped by ua.close()
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        old_handlers = {s: signal.signal(s, ag.on_signal)
                        for s in (signal.SIGINT, signal.SIGTERM)}
        restore.append(lambda: (signal.set_wakeup_fd(old_wakeup), wake_w.close(),
                                ag.wake and ag.wake.close(),
                                [signal.signal(s, h) for s, h in old_handlers.items()]))
        # Written once signals are handled: a reader may signal at once.
        if o.port_file:
            try:
                _write_port_file(o.port_file, ports)
            except OSError as e:
                print(f"{PROG}: cannot write --port-file {o.port_file}: {e.strerror}",
                      file=sys.stderr)
                return EXIT_RUNTIME
        ag.log.info("%s listening on %s", ag.ua.uri, ports)
        for target in o.call:
            try:
                ag.place_call(target)
            except Error as e:
                if e.code == ErrorCode.EINVAL:
                    print(f"{PROG}: --call '{target}': not a usable SIP URI", file=sys.stderr)
                    return EXIT_USAGE
                if e.code == ErrorCode.EADDR:
                    print(f"{PROG}: --call '{target}': its host is a name (give an "
                          "address, or --outbound-proxy)", file=sys.stderr)
                    return EXIT_USAGE
                if e.code == ErrorCode.ETRANSPORT and _is_sips(target):
                    print(f"{PROG}: --call '{target}': sips needs TLS, which "
                          "sipreferral does not have", file=sys.stderr)
                    return EXIT_USAGE
                ag.log.error("--call %s: %s", target, e)
        rc = ag.run()
        if rc == EXIT_OK and ag.placed_failed:
            rc = EXIT_CALL_FAILED
        return rc
    finally:
        if o.stats and ag.ua is not None and not ag.ua.closed:
            _print_stats("ua", ag.ua.stats())
        ag.calls.clear()
        ag.referrals.clear()
        if ag.ua is not None:
            ag.ua.close()
        if o.stats:
            import gc
            gc.collect()
            _print_stats("process", global_stats())
        if ag.pcap is not None:
            ag.pcap.close()
        for undo in reversed(restore):
            undo()


def _print_stats(what: str, st: Dict[str, int]) -> None:
    print(f"stats {what}: " + " ".join(f"{k}={v}" for k, v in st.items()), flush=True)
