"""The user agent: sockets, the loop, incoming calls and REFERs."""

from __future__ import annotations

import asyncio
import collections
import inspect
import math
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _log
from ._base import (
    SERVED, TRANSPORTS, UAS, Error, ErrorCode, Headers, NotifyMode, Transport, _core, call_session,
    inviter_options, options, remember, settle, transport_of,
)
from .referral import Referral, wrap_referral
from .session import Invitation, Inviter

__all__ = ["UserAgent", "global_stats"]

DEFAULT_LISTEN = ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")

_STATS = ("sessions", "referrals", "referrers", "transactions", "dialogs",
          "connections")


def _stats_dict(st: Any) -> Dict[str, int]:
    return {k: getattr(st, k) for k in _STATS}


def global_stats() -> Dict[str, int]:
    """Live C objects in the whole process (sessions, referrals,
    referrers), for leak checks."""
    return _stats_dict(_core.sr_global_stats())


def _release(ptr: Any, handler: list, soon: "_Soon") -> None:
    _core.sr_py_ua_release(ptr)
    _drop_handler(handler)
    soon.close()
    _core.sr_ua_unref(ptr)


class _Soon:
    """Calls posted from other threads (UserAgent.call_soon_threadsafe)
    and the pipe that wakes the loop for them. The pipe is made at the
    first post; its read end is watched by the loop (sr_ua_watch_fd),
    whose close drops it. The lock keeps a post from writing to a
    descriptor that a close on the loop's thread has just closed."""

    def __init__(self) -> None:
        self.calls: "collections.deque[Tuple[Callable[..., Any], tuple]]" = \
            collections.deque()
        self.lock = threading.Lock()
        self.fds: Optional[Tuple[int, int]] = None
        self.closed = False

    def close(self) -> None:
        with self.lock:
            self.closed = True
            fds, self.fds = self.fds, None
        if fds is not None:
            for fd in fds:
                os.close(fd)


def _drop_handler(box: list) -> None:
    # The handler reference goes at close() or at collection, once.
    if box[0] is not None:
        _core.sr_py_handler_release(box[0])
        box[0] = None


_run_once = _core.sr_py_ua_run_once
_run_until_break = _core.sr_py_ua_run_until_break
#: Ends UserAgent._run_until_break after the current turn (from a callback).
_loop_break = _core.sr_py_loop_break


def _ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    return min(int(math.ceil(timeout * 1000)), 0x7fffffff)


class UserAgent:
    """A SIP user agent on its own non-blocking loop.

    ``uri`` is its identity (``sip:alice@127.0.0.1``); ``listen`` the
    sockets ("udp:HOST:PORT", "tcp:HOST:PORT", port 0 for any, IPv6 as
    ``[::1]``). Further keyword options are those of the C
    ``sr_ua_options`` (``outbound_proxy``: "sip:HOST[:PORT][;transport=tcp]",
    the first hop of out-of-dialog INVITEs; ``t1_ms``, ``allow_out_of_dialog_refer``,
    ``allowed_schemes``,
    ``refer_decision_timeout_ms``, ``notify_mode``, limits...). The core's
    log goes to the ``logging`` logger "sipreferral" (its level when the UA
    is made decides what the core formats).

    Callbacks (attributes): ``on_invite(invitation)`` (None: 480),
    ``on_refer(referral)`` for out-of-dialog REFERs (when allowed),
    ``on_refer_policy(referral) -> None | 0 | 300-699`` asked for every
    valid REFER first. A callback that raises stops the loop: the
    exception comes out of :meth:`run_once` / :meth:`run` / :meth:`serve`.

    Run it with :meth:`run` / :meth:`run_once`, embed it with
    :meth:`fileno` and :meth:`next_timeout`, or ``await ua.serve()``.
    One thread drives a user agent and its objects; other threads reach
    it through :meth:`call_soon_threadsafe`. :meth:`close` (or the
    ``with`` block, or dropping the last reference) ends it and every
    session, referral and referrer in it.
    """

    def __init__(self, uri: str, listen: Union[str, Iterable[str]] = DEFAULT_LISTEN, *,
                 display_name: Optional[str] = None, username: Optional[str] = None,
                 password: Optional[str] = None, user_agent: Optional[str] = None,
                 **opts: Any) -> None:
        o: Dict[str, Any] = {}
        for k, v in opts.items():
            o[k] = int(v) if isinstance(v, (bool, NotifyMode)) else v
        o.setdefault("log_level", _log.core_level())
        o.update(options(uri=uri, display_name=display_name, username=username,
                         password=password, user_agent=user_agent))
        rc, ptr = _core.sr_py_ua_new(o)
        if rc < 0:
            raise Error(rc, f"cannot create a user agent for {uri!r}: "
                            f"{_core.sr_strerror(rc)}")
        self._ptr = ptr
        self._self_ref = weakref.ref(self)  # for the objects it makes
        self._closed = False
        self._listeners = 0  # made by listen(), in order
        self._server: Optional[_Server] = None
        self._tasks: "set[asyncio.Future]" = set()
        self._errors: List[BaseException] = []
        self._on_invite: Optional[Callable[[Invitation], Any]] = None
        self._on_refer: Optional[Callable[[Referral], Any]] = None
        self._on_refer_policy: Optional[Callable[[Referral], Optional[int]]] = None
        self._message_hook: Optional[Callable[..., Any]] = None
        # Weak: dropping the last reference to a UserAgent closes it.
        self._handler = [_core.sr_py_ua_set_handler(ptr, self, 0)]
        self._soon = _Soon()
        self._finalizer = weakref.finalize(self, _release, ptr, self._handler,
                                           self._soon)
        remember(UAS, int(ptr), self)
        try:
            for spec in [listen] if isinstance(listen, str) else list(listen):
                self.listen(spec)
        except Error:
            self.close()
            raise

    def listen(self, spec: str) -> int:
        """Adds a listener: "udp:HOST:PORT" or "tcp:HOST:PORT" (IPv6 as
        ``[::1]``, port 0 for any). Returns the port it bound. Raises
        Error: EINVAL (bad spec), EADDR (cannot bind), ECLOSED."""
        rc = _core.sr_ua_listen(self._ptr, spec)
        if rc < 0:
            raise Error(rc, f"cannot listen on {spec!r}: {_core.sr_strerror(rc)}")
        self._listeners += 1
        return _core.sr_ua_listener_port(self._ptr, self._listeners - 1)

    # -------------------------------------------------------- callbacks

    def _flags(self) -> None:
        f = 0
        if self._on_invite is not None:
            f |= _core.SR_PY_UA_INVITE
        if self._on_refer is not None:
            f |= _core.SR_PY_UA_REFER
        if self._on_refer_policy is not None:
            f |= _core.SR_PY_UA_POLICY
        if not self._closed:
            _core.sr_py_handler_set_flags(self._handler[0], f)

    @property
    def on_invite(self) -> Optional[Callable[[Invitation], Any]]:
        """``on_invite(invitation)``: a new call. Without it calls get 480."""
        return self._on_invite

    @on_invite.setter
    def on_invite(self, cb: Optional[Callable[[Invitation], Any]]) -> None:
        self._on_invite = cb
        self._flags()

    @property
    def on_refer(self) -> Optional[Callable[[Referral], Any]]:
        """``on_refer(referral)``: an out-of-dialog REFER (only with
        ``allow_out_of_dialog_refer=True``)."""
        return self._on_refer

    @on_refer.setter
    def on_refer(self, cb: Optional[Callable[[Referral], Any]]) -> None:
        self._on_refer = cb
        self._flags()

    @property
    def on_refer_policy(self) -> Optional[Callable[[Referral], Optional[int]]]:
        """``on_refer_policy(referral)``: asked for every REFER that passed
        validation, before any on_refer; return None/0 to allow, or a
        status 300-699 to answer it. A policy that raises answers 500.
        Must not be a coroutine function (the answer is needed now)."""
        return self._on_refer_policy

    @on_refer_policy.setter
    def on_refer_policy(self, cb: Optional[Callable[[Referral], Optional[int]]]) -> None:
        self._on_refer_policy = cb
        self._flags()

    @property
    def message_hook(self) -> Optional[Callable[[bool, Transport, str, str, bytes], Any]]:
        """``hook(outgoing, transport, local, remote, data)`` sees every SIP
        message sent or received; a true result drops it (tests: a lossy
        network). None removes it."""
        return self._message_hook

    @message_hook.setter
    def message_hook(self, cb: Optional[Callable[[bool, Transport, str, str, bytes], Any]]) -> None:
        if cb is None:
            fn: Any = None
        else:
            def fn(outgoing: bool, tp: int, local: str, remote: str, data: bytes) -> Any:
                return cb(outgoing, TRANSPORTS[tp], local, remote, data)
        rc = _core.sr_py_ua_set_message_hook(self._ptr, fn)
        if rc < 0:
            raise Error(rc)
        self._message_hook = cb

    # The C handler calls _on_invite and _on_refer itself (with the new
    # object's wrapper); a result that may be awaitable comes here.

    def _settle(self, res: Any) -> None:
        settle(self, res)

    def _ev_policy(self, ptr: Any) -> Optional[int]:
        cb = self._on_refer_policy
        res = cb(wrap_referral(ptr, self._self_ref)) if cb is not None else None
        if res is None:
            return None
        if inspect.isawaitable(res):
            if inspect.iscoroutine(res):
                res.close()
            raise TypeError("on_refer_policy must answer at once, not be a coroutine")
        return int(res)

    # -------------------------------------------------------- identity

    @property
    def uri(self) -> str:
        """The identity URI as configured."""
        return _core.sr_ua_uri(self._ptr)

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed

    def address(self, transport: Union[Transport, str] = Transport.UDP) -> Tuple[str, int]:
        """(host, port) of the first listener of ``transport`` ("udp" or
        "tcp"), as bound. Raises Error (EINVAL) when there is none."""
        tp = transport_of(transport)
        if self._closed:
            raise Error(ErrorCode.ECLOSED)
        port = _core.sr_ua_local_port(self._ptr, tp)
        host = _core.sr_ua_local_host(self._ptr, tp)
        if port < 0 or host is None:
            raise Error(port if port < 0 else ErrorCode.EINVAL,
                        f"no {Transport(tp).name} listener")
        return host, port

    def contact_uri(self, user: Optional[str] = None,
                    transport: Union[Transport, str] = Transport.UDP) -> str:
        """"sip:user@host:port" (with ;transport=tcp for TCP) to reach this
        UA on ``transport``; ``user`` defaults to the identity's user."""
        host, port = self.address(transport)
        if user is None:
            user = self.uri.split(":", 1)[1].split("@", 1)[0] if "@" in self.uri else ""
        tp = Transport(transport_of(transport))
        h = f"[{host}]" if ":" in host else host
        return (f"sip:{user + '@' if user else ''}{h}:{port}"
                + (";transport=tcp" if tp == Transport.TCP else ""))

    def stats(self) -> Dict[str, int]:
        """This UA's live objects: sessions, referrals, referrers,
        transactions, dialogs, connections."""
        return _stats_dict(_core.sr_ua_get_stats(self._ptr))

    # -------------------------------------------------------- calls

    def make_inviter(self, target: str, extra_headers: Optional[Headers] = (),
                     body: Optional[str] = None, content_type: Optional[str] = None, *,
                     from_display_name: Optional[str] = None,
                     transport: Union[Transport, str, None] = None) -> Inviter:
        """An Inviter to ``target`` (a SIP URI); call its invite(). Raises
        Error: EINVAL (bad target), ECLOSED, ELIMIT."""
        inviter = call_session(self._self_ref, True, _core.sr_ua_make_inviter, self._ptr, target,
                               None if (not extra_headers and body is None
                                        and content_type is None
                                        and from_display_name is None and transport is None)
                               else inviter_options(extra_headers, body, content_type,
                                                    from_display_name, transport))
        assert isinstance(inviter, Inviter)
        return inviter

    # -------------------------------------------------------- the loop

    def fileno(self) -> int:
        """The descriptor to watch for readability (-1 once closed)."""
        return _core.sr_ua_fd(self._ptr)

    def next_timeout(self) -> Optional[float]:
        """Seconds until the next timer (0 if due), None if no timer."""
        ms = _core.sr_ua_next_timeout_ms(self._ptr)
        return None if ms < 0 else ms / 1000.0

    def _raise_task_errors(self) -> None:
        if self._errors:
            raise self._errors.pop(0)

    def run_once(self, timeout: Optional[float] = None) -> int:
        """Waits up to ``timeout`` seconds (None: until something happens,
        0: not at all; the GIL is released meanwhile), then handles what
        arrived and the due timers, firing callbacks. Returns the number of
        events handled. Raises what a callback (or, while waiting, a signal
        handler: KeyboardInterrupt) raised, or Error (ECLOSED)."""
        if self._errors:
            raise self._errors.pop(0)
        if self._closed:
            raise Error(ErrorCode.ECLOSED)
        soon = self._soon.calls
        if soon:  # posted calls wait: no waiting
            timeout = 0
        rc = _run_once(self._ptr, -1 if timeout is None else _ms(timeout))
        if rc < 0:
            if rc == ErrorCode.ECLOSED and self._closed:
                return 0
            raise Error(rc)
        if soon:
            rc += self._run_soon()
        return rc

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Runs ``callback(*args)`` on the thread that drives this UA, in
        its next turn of :meth:`run_once` (also inside :meth:`run` and
        :meth:`serve`), waking a wait in progress. The one method that may
        be called from any thread: the way for other threads to place
        calls, transfers or anything else on a UA. Calls run in the order
        posted; one that raises has its exception raised from that
        run_once, like a callback's, and the rest run in the next turns.
        Raises Error (ECLOSED) once the UA is closed."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        soon = self._soon
        with soon.lock:
            if soon.closed or self._closed:
                raise Error(ErrorCode.ECLOSED)
            if soon.fds is None:
                r, w = os.pipe()
                try:
                    os.set_blocking(r, False)
                    os.set_blocking(w, False)
                    self._watch_wakeup(r)
                except BaseException:
                    os.close(r)
                    os.close(w)
                    raise
                soon.fds = (r, w)
            soon.calls.append((callback, args))
            try:
                os.write(soon.fds[1], b"\0")
            except BlockingIOError:
                pass  # the pipe is full: readable already

    def _run_soon(self) -> int:
        """Runs the calls posted so far (not those they post); returns how
        many ran. A call that raises stops the rest until the next turn."""
        calls = self._soon.calls
        n = 0
        for _ in range(len(calls)):
            callback, args = calls.popleft()
            n += 1
            callback(*args)
        return n

    def _run_until_break(self) -> int:
        """run_once(None) turns, without coming back to Python in between,
        until a callback calls ``_loop_break()``, a signal arrives on the
        :meth:`_watch_wakeup` descriptor (its handler has run) or a
        callback raises (raised here). Returns the events handled."""
        if self._errors:
            raise self._errors.pop(0)
        if self._closed:
            raise Error(ErrorCode.ECLOSED)
        rc = _run_until_break(self._ptr)
        if rc < 0:
            raise Error(rc)
        if self._soon.calls:
            rc += self._run_soon()
        return rc

    def _watch_wakeup(self, fd: int) -> None:
        """Also ends the wait of run_once when ``fd`` (a non-blocking
        signal.set_wakeup_fd descriptor) becomes readable, reading what
        arrives: a signal that lands just before the wait still ends it.
        Unwatch it (or close the UA) before closing fd."""
        rc = _core.sr_py_ua_watch_wakeup(self._ptr, fd)
        if rc < 0:
            raise Error(rc)

    def _unwatch_wakeup(self, fd: int) -> None:
        """Stops watching a descriptor of :meth:`_watch_wakeup`."""
        rc = _core.sr_py_ua_unwatch_wakeup(self._ptr, fd)
        if rc < 0 and not (rc == ErrorCode.ECLOSED and self._closed):
            raise Error(rc)

    def run(self, timeout: Optional[float] = None,
            until: Optional[Callable[[], Any]] = None) -> bool:
        """Runs the loop until ``until()`` is true (checked before each
        turn), the UA is closed, or ``timeout`` seconds passed (None: no
        limit). Returns True when ``until()`` held."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._closed:
            raise Error(ErrorCode.ECLOSED)
        while True:
            if until is not None and until():
                return True
            if self._closed:
                return False
            wait = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return False
            self.run_once(wait)

    async def serve(self) -> None:
        """Runs the UA inside the running asyncio loop (its fd with
        add_reader, its timers with call_later) until :meth:`close`.
        Callbacks may then be coroutine functions: they run as tasks. An
        exception from a callback or such a task is raised from here."""
        if self._closed:
            raise Error(ErrorCode.ECLOSED)
        if self._server is not None:
            raise Error(ErrorCode.ESTATE, "the user agent is served already")
        self._raise_task_errors()
        server = self._server = _Server(self, asyncio.get_running_loop())
        SERVED.add(self)
        try:
            await server.done
        finally:
            server.stop()
            if self._server is server:
                self._server = None
                SERVED.discard(self)

    def _touch(self) -> None:
        # A call may have armed a timer: the asyncio timer must follow.
        if self._server is not None:
            self._server.reschedule()

    def _track_task(self, task: "asyncio.Future") -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Future") -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self._server is not None and not self._server.done.done():
            self._server.done.set_exception(exc)
        else:
            self._errors.append(exc)

    # -------------------------------------------------------- closing

    def close(self) -> None:
        """Closes the UA: sockets and timers go, every session, referral
        and referrer in it ends (no message is sent, no callback fires; the
        objects stay usable and raise Error). Safe to call twice, and from
        inside a callback."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.stop()  # before the fd closes
        _core.sr_py_ua_release(self._ptr)  # unwatches the pipe
        _drop_handler(self._handler)
        self._soon.close()
        for task in list(self._tasks):
            task.cancel()

    def __enter__(self) -> "UserAgent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<UserAgent {self.uri!r}{' closed' if self._closed else ''}>"


class _Server:
    """Drives one UA from an asyncio loop: reader on its fd, one timer."""

    def __init__(self, ua: UserAgent, loop: asyncio.AbstractEventLoop) -> None:
        self.ua = ua
        self.loop = loop
        self.done: asyncio.Future = loop.create_future()
        self.timer: Optional[asyncio.TimerHandle] = None
        self.fd = ua.fileno()
        self.reading = True
        loop.add_reader(self.fd, self.step)
        self.reschedule()

    def step(self) -> None:
        if self.done.done():
            return
        try:
            self.ua.run_once(0)
        except Exception as exc:  # delivered by serve()
            if not self.done.done():
                self.done.set_exception(exc)
            return
        self.reschedule()

    def reschedule(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.done.done() or self.ua.closed:
            return
        t = self.ua.next_timeout()
        if t is not None:
            self.timer = self.loop.call_later(t, self.step)

    def stop(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.done.done():
            self.done.set_result(None)

