"""Shared pieces of the package: the SWIG module, errors, enums, the
registry that keeps one Python wrapper per C object, and callback calls."""

from __future__ import annotations

import asyncio
import enum
import inspect
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Union

from . import sipreferral_core as _core

if TYPE_CHECKING:  # pragma: no cover
    from .ua import UserAgent

__all__ = [
    "Error", "ErrorCode", "SessionState", "SessionRole", "ReferralState",
    "Transport", "NotifyMode", "Headers",
]


class ErrorCode(enum.IntEnum):
    """The core's negative error codes (``SR_E...``)."""

    EINVAL = _core.SR_EINVAL
    ENOMEM = _core.SR_ENOMEM
    ECLOSED = _core.SR_ECLOSED
    ESTATE = _core.SR_ESTATE
    EPARSE = _core.SR_EPARSE
    EIO = _core.SR_EIO
    EADDR = _core.SR_EADDR
    ETOOBIG = _core.SR_ETOOBIG
    ETRANSPORT = _core.SR_ETRANSPORT
    ECALLBACK = _core.SR_ECALLBACK
    ELIMIT = _core.SR_ELIMIT
    EROLE = _core.SR_EROLE
    EALREADY = _core.SR_EALREADY


class Error(Exception):
    """A call the core refused: ``code`` is the negative ``SR_E...`` code
    (an :class:`ErrorCode` when known), ``message`` says what it means."""

    code: int
    message: str

    def __init__(self, code: int, message: Optional[str] = None) -> None:
        try:
            code = ErrorCode(code)
        except ValueError:
            pass
        if message is None:
            message = _core.sr_strerror(int(code))
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        name = self.code.name if isinstance(self.code, ErrorCode) else str(self.code)
        return f"{self.message} ({name})"


class SessionState(enum.IntEnum):
    """State of a :class:`Session` (SIP.js's SessionState)."""

    INITIAL = _core.SR_SESSION_INITIAL
    ESTABLISHING = _core.SR_SESSION_ESTABLISHING
    ESTABLISHED = _core.SR_SESSION_ESTABLISHED
    TERMINATING = _core.SR_SESSION_TERMINATING
    TERMINATED = _core.SR_SESSION_TERMINATED


class SessionRole(enum.IntEnum):
    """Whether a session sent the INVITE (INVITER) or received it."""

    INVITER = _core.SR_ROLE_INVITER
    INVITATION = _core.SR_ROLE_INVITATION


class ReferralState(enum.IntEnum):
    """State of a :class:`Referral`."""

    PENDING = _core.SR_REFERRAL_PENDING
    ACCEPTED = _core.SR_REFERRAL_ACCEPTED
    REJECTED = _core.SR_REFERRAL_REJECTED
    TERMINATED = _core.SR_REFERRAL_TERMINATED


class Transport(enum.IntEnum):
    """A SIP transport; AUTO follows the URI's ``transport`` parameter."""

    AUTO = _core.SR_TRANSPORT_AUTO
    UDP = _core.SR_TRANSPORT_UDP
    TCP = _core.SR_TRANSPORT_TCP


class NotifyMode(enum.IntEnum):
    """Which NOTIFYs a referral sends by itself."""

    ALL = _core.SR_NOTIFY_ALL
    FINAL_ONLY = _core.SR_NOTIFY_FINAL_ONLY
    NONE = _core.SR_NOTIFY_NONE


#: Extra headers: "Name: value" strings, (name, value) pairs, or a mapping.
Headers = Union[Iterable[Union[str, "tuple[str, str]"]], Mapping[str, str], str]


def transport_of(tp: Union[Transport, int, str, None]) -> Optional[int]:
    """A Transport from an enum, an int or "udp"/"tcp" (None stays None)."""
    if tp is None:
        return None
    if isinstance(tp, str):
        try:
            return int(Transport[tp.upper()])
        except KeyError:
            raise ValueError(f"unknown transport {tp!r}") from None
    return int(Transport(tp))


def header_lines(extra: Optional[Headers]) -> Optional[str]:
    """Joins extra headers into the CRLF-separated text the core takes.
    A line break inside one header is refused (it would inject headers)."""
    if not extra:
        return None
    if isinstance(extra, str):
        items: list = extra.splitlines()
    elif isinstance(extra, Mapping):
        items = list(extra.items())
    else:
        items = list(extra)
    lines = []
    for item in items:
        if isinstance(item, str):
            line = item
        else:
            name, value = item
            line = f"{name}: {value}"
        if "\r" in line or "\n" in line or "\0" in line:
            raise ValueError(f"line break in header {line!r}")
        if line:
            lines.append(line)
    return "\r\n".join(lines) or None


def options(**kw: Any) -> dict:
    """An options dict for the core without the None values."""
    return {k: v for k, v in kw.items() if v is not None}


# ------------------------------------------------------------ results


def check(rc: int, ua: "Optional[UserAgent]" = None, mark: int = 0) -> int:
    """Raises what a callback raised during the call (queued after
    ``mark``), then Error for a negative result; tells a serving UA that
    its timers may have changed."""
    if ua is not None:
        ua._touch()
    _core.sr_py_raise_pending(mark)
    if rc < 0:
        raise Error(rc)
    return rc


def call(ua: "Optional[UserAgent]", fn: Callable[..., int], *args: Any) -> int:
    """Calls a core function that may fire callbacks at once (a state
    change, a message hook): an exception they raise comes out of here."""
    mark = _core.sr_py_pending_mark()
    return check(fn(*args), ua, mark)


def call_new(ua: "Optional[UserAgent]", wrap: Callable[[Any], Any],
             fn: Callable[..., Any], *args: Any) -> Any:
    """Like call() for a function that returns [rc, pointer]: the pointer
    is wrapped (so never leaked) before anything is raised."""
    mark = _core.sr_py_pending_mark()
    rc, ptr = fn(*args)
    obj = wrap(ptr) if rc >= 0 else None
    check(rc, ua, mark)
    return obj


# ------------------------------------------------------------ registry

# One wrapper per C object: (kind, address) -> wrapper. A wrapper holds a
# reference on its C object, so the address cannot be reused while the
# entry is alive; a dead entry leaves the dict with its wrapper.
_objects: "weakref.WeakValueDictionary[tuple, Any]" = weakref.WeakValueDictionary()


def lookup(kind: str, ptr: Any) -> Any:
    """The live wrapper of a C object, or None."""
    if ptr is None:
        return None
    return _objects.get((kind, int(ptr)))


def remember(kind: str, ptr: Any, obj: Any) -> None:
    """Records obj as the wrapper of ptr."""
    _objects[(kind, int(ptr))] = obj


def ua_of(ua_ptr: Any) -> "Optional[UserAgent]":
    """The UserAgent wrapper of a C UA pointer (None if closed or gone)."""
    return lookup("ua", ua_ptr)


# ------------------------------------------------------------ callbacks


class Dispatch:
    """The callable a C handler holds: forwards events to obj._dispatch.
    It holds obj weakly, and strongly while ``keep`` is set (a live call
    must keep the wrapper whose callbacks are still to fire; an Inviter
    never invited, or a UserAgent, must not be kept by its own handler)."""

    __slots__ = ("ref", "keep")

    def __init__(self, obj: Any, keep: bool) -> None:
        self.ref = weakref.ref(obj)
        self.keep = obj if keep else None

    def __call__(self, event: str, *args: Any) -> Any:
        obj = self.ref()
        return obj._dispatch(event, *args) if obj is not None else None


_orphan_tasks: "set[asyncio.Future]" = set()


def invoke(ua: "Optional[UserAgent]", cb: Optional[Callable[..., Any]], *args: Any) -> Any:
    """Calls a user callback; a coroutine it returns becomes a task of the
    running asyncio loop (its exception is raised from ua.serve())."""
    if cb is None:
        return None
    res = cb(*args)
    if inspect.isawaitable(res):
        spawn(ua, res)
        return None
    return res


def spawn(ua: "Optional[UserAgent]", aw: Any) -> None:
    """Runs an awaitable a callback returned as a task of the running loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        if inspect.iscoroutine(aw):
            aw.close()
        raise TypeError(
            "a coroutine callback needs a running asyncio loop "
            "(drive the user agent with `await ua.serve()`)") from None
    task = asyncio.ensure_future(aw, loop=loop)
    if ua is not None:
        ua._track_task(task)
    else:
        _orphan_tasks.add(task)
        task.add_done_callback(_orphan_tasks.discard)
