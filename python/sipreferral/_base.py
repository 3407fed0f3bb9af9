"""Shared pieces of the package: the SWIG module, errors, enums, the
registry that keeps one Python wrapper per C object, and callback calls.

Callbacks run on every SIP event, so the paths they take are kept short:
the core's functions are called without SWIG's Python shims, enum members
come from tables, and a callback's result is looked at only when it may
be awaitable."""

from __future__ import annotations

import asyncio
import enum
import inspect
import types
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional, Union

from . import _sipreferral_core as _ext
from . import sipreferral_core as _swig

if TYPE_CHECKING:  # pragma: no cover
    from .ua import UserAgent

__all__ = [
    "Error", "ErrorCode", "SessionState", "SessionRole", "ReferralState",
    "Transport", "NotifyMode", "Headers",
]


def _direct(mod: types.ModuleType, ext: types.ModuleType) -> types.SimpleNamespace:
    """The SWIG module with each Python shim that only passes its arguments
    on (``def f(a): return _ext.f(a)``) replaced by the C function itself:
    one Python call less per core call. Anything else stays as it is."""
    ns = dict(vars(mod))
    for name, fn in vars(mod).items():
        code = getattr(fn, "__code__", None)
        if (code is not None and getattr(fn, "__module__", None) == mod.__name__
                and code.co_names == (ext.__name__.rpartition(".")[2], name)
                and code.co_consts in ((None,), ()) and callable(getattr(ext, name, None))):
            ns[name] = getattr(ext, name)
    return types.SimpleNamespace(**ns)


_core = _direct(_swig, _ext)


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


def _members(cls: Any) -> Dict[int, Any]:
    return {int(m): m for m in cls}


#: Enum members by value: a dict lookup instead of a call to the enum class.
STATES: Dict[int, SessionState] = _members(SessionState)
# State events pass the members themselves (values 0..n-1).
_core.sr_py_set_session_states(tuple(STATES[i] for i in range(len(STATES))))
ROLES: Dict[int, SessionRole] = _members(SessionRole)
REFERRAL_STATES: Dict[int, ReferralState] = _members(ReferralState)
TRANSPORTS: Dict[int, Transport] = _members(Transport)


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


def response_options(default: int, status_code: Optional[int], reason_phrase: Optional[str],
                     extra_headers: "Optional[Headers]", body: Optional[str],
                     content_type: Optional[str]) -> Optional[dict]:
    """The options of a response (None: all defaults, ``default`` being
    the call's own status code), built directly: a response is sent
    several times per call, mostly with the defaults."""
    if (reason_phrase is None and not extra_headers and body is None
            and content_type is None and (status_code is None or (
                status_code.__class__ is int and status_code == default))):
        return None
    d = {} if status_code is None else {"status_code": status_code}
    if reason_phrase is not None:
        d["reason_phrase"] = reason_phrase
    _put_message(d, extra_headers, body, content_type)
    return d or None


def _put_message(d: dict, extra_headers: "Optional[Headers]",
                 body: Optional[str], content_type: Optional[str]) -> None:
    """Adds the extra headers and body a response or a request carries."""
    if extra_headers:
        lines = header_lines(extra_headers)
        if lines is not None:
            d["extra_headers"] = lines
    if body is not None:
        d["body"] = body
    if content_type is not None:
        d["content_type"] = content_type


def inviter_options(extra_headers: "Optional[Headers]", body: Optional[str],
                    content_type: Optional[str], from_display_name: Optional[str],
                    transport: "Union[Transport, int, str, None]") -> Optional[dict]:
    """The options of a new Inviter (None: all defaults), built directly
    (one per call)."""
    d: dict = {}
    _put_message(d, extra_headers, body, content_type)
    if from_display_name is not None:
        d["from_display_name"] = from_display_name
    if transport is not None:
        d["transport"] = transport_of(transport)
    return d or None


# ------------------------------------------------------------ results


# ``ua_ref`` below: a weak reference to the UserAgent of the object the
# call is about (or None). A UA under serve() (in SERVED) is told that its
# timers may have changed.
SERVED: "set[Any]" = set()


def _touch(ua_ref: Any) -> None:
    ua = ua_ref()
    if ua is not None and ua._server is not None:
        ua._touch()


#: call(ua_ref, fn, *args) -> int: calls a core function that may fire
#: callbacks at once (a state change, a message hook): an exception they
#: raise comes out of here, then Error for a negative result (in C: no
#: Python frame on every API call).
call: Callable[..., int] = _ext.sr_py_call


#: call_new(ua_ref, wrap, fn, *args): like call() for a function that
#: returns [rc, pointer]: the pointer is wrapped (so never leaked) before
#: anything is raised; returns wrap(pointer) (in C).
call_new: Callable[..., Any] = _ext.sr_py_call_new
#: call_session(ua_ref, owned, fn, *args): call_new for a function that
#: makes a session: returns wrap_session(pointer, owned, ua_ref).
call_session: Callable[..., Any] = _ext.sr_py_call_session


# ------------------------------------------------------------ registry

# One wrapper per C object, a table per kind: address -> weak reference to
# the wrapper. A wrapper holds a reference on its C object, so the address
# cannot be reused while its entry lives; the weak reference's callback
# removes the entry and releases the C object when the wrapper goes (one
# callback for both, instead of a dictionary of weak values and a
# finalizer each).
UAS: Dict[int, Any] = {}
SESSIONS: Dict[int, Any] = {}
REFERRALS: Dict[int, Any] = {}
REFERRERS: Dict[int, Any] = {}


#: remember(table, key, obj, release=None, *args): records obj as the
#: wrapper of the C object at address ``key``; when obj goes, its entry
#: leaves the table (unless a newer wrapper's took its place) and
#: ``release(*args)`` runs (dropping its C references). In C: the entry is
#: a weak reference whose callback is a C function bound to what it needs.
remember: Callable[..., None] = _ext.sr_py_remember


def ua_of(ua_ptr: Any) -> "Optional[UserAgent]":
    """The UserAgent wrapper of a C UA pointer (None if closed or gone)."""
    if ua_ptr is None:
        return None
    ref = UAS.get(int(ua_ptr))
    return ref() if ref is not None else None


def _ua_ref_of(ua_ptr: Any) -> Any:
    """A weak reference to the UserAgent wrapper of a C UA pointer, or None."""
    ua = ua_of(ua_ptr)
    return weakref.ref(ua) if ua is not None else None


_ext.sr_py_set_hooks(Error, SERVED, _touch, _ua_ref_of)


# ------------------------------------------------------------ callbacks

_orphan_tasks: "set[asyncio.Future]" = set()

# Results that are never awaitable: no need to ask.
_PLAIN = frozenset({type(None), bool, int, str})


def settle(ua: "Optional[UserAgent]", res: Any) -> Any:
    """A callback's result: an awaitable becomes a task (and None)."""
    if res.__class__ in _PLAIN or not inspect.isawaitable(res):
        return res
    spawn(ua, res)
    return None


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
