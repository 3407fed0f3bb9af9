"""Sessions: :class:`Inviter` (the call we place) and :class:`Invitation`
(the call we receive), after SIP.js's Session, Inviter and Invitation."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._base import (
    Dispatch, Headers, SessionRole, SessionState, _core, call, call_new, header_lines, invoke,
    lookup, options, remember, ua_of,
)
from .views import IncomingRequest

if TYPE_CHECKING:  # pragma: no cover
    from .referral import Referral, Referrer
    from .ua import UserAgent

__all__ = ["Session", "Inviter", "Invitation"]


def _release(ptr: Any, handler: Any) -> None:
    # Installed still only if nothing kept the wrapper for its callbacks
    # (an Inviter never invited): nobody can observe them now.
    _core.sr_py_handler_drop(handler)
    _core.sr_session_unref(ptr)


def wrap_session(ptr: Any, owned: bool = False) -> "Optional[Session]":
    """The one wrapper of a C session. ``owned``: ptr carries a reference
    the wrapper takes over (else it is borrowed and gets one)."""
    if ptr is None:
        return None
    obj = lookup("session", ptr)
    if obj is not None:
        if owned:
            _core.sr_session_unref(ptr)
        return obj
    if not owned:
        _core.sr_session_ref(ptr)
    role = _core.sr_session_get_role(ptr)
    cls = Inviter if role == _core.SR_ROLE_INVITER else Invitation
    obj = object.__new__(cls)
    obj._setup(ptr)
    remember("session", ptr, obj)
    return obj


class Session:
    """What an Inviter and an Invitation share: state, dialog identifiers,
    BYE, REFER (sending and receiving).

    Callbacks (attributes, None by default):

    - ``on_state(state: SessionState)``: the state changed. TERMINATED is
      the last event.
    - ``on_response(status_code: int, reason: str)``: a response to our
      INVITE (Inviter only).
    - ``on_refer(referral: Referral)``: a REFER arrived in this session and
      passed validation and policy. Without it the core accepts the
      referral and follows it.
    - ``on_bye()``: the peer hung up.

    Callbacks may be coroutine functions when the user agent runs under
    asyncio (:meth:`UserAgent.serve`).
    """

    on_state: Optional[Callable[[SessionState], Any]]
    on_response: Optional[Callable[[int, str], Any]]
    on_bye: Optional[Callable[[], Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("sessions come from UserAgent.make_inviter(), "
                        "UserAgent.on_invite or Referral.make_inviter()")

    def _setup(self, ptr: Any) -> None:
        self._ptr = ptr
        ua = ua_of(_core.sr_session_get_ua(ptr))
        self._ua_ref = weakref.ref(ua) if ua is not None else None
        self.on_state = None
        self.on_response = None
        self.on_bye = None
        self._on_refer: Optional[Callable[["Referral"], Any]] = None
        # The handler keeps this wrapper until the session terminates or
        # its UA closes; an Inviter not yet invited only from invite() on.
        initial_inviter = (_core.sr_session_get_role(ptr) == _core.SR_ROLE_INVITER
                           and _core.sr_session_get_state(ptr) == _core.SR_SESSION_INITIAL)
        self._dispatcher = Dispatch(self, keep=not initial_inviter)
        self._handler = _core.sr_py_session_set_handler(ptr, self._dispatcher, 0)
        self._finalizer = weakref.finalize(self, _release, ptr, self._handler)

    # -------------------------------------------------------- events

    def _dispatch(self, event: str, *args: Any) -> None:
        ua = self.ua
        if event == "state":
            invoke(ua, self.on_state, SessionState(args[0]))
        elif event == "response":
            invoke(ua, self.on_response, args[0], args[1])
        elif event == "refer":
            from .referral import wrap_referral
            invoke(ua, self._on_refer, wrap_referral(args[0]))
        elif event == "bye":
            invoke(ua, self.on_bye)

    @property
    def on_refer(self) -> "Optional[Callable[[Referral], Any]]":
        """``on_refer(referral)``: a REFER arrived in this session. None
        (the default) lets the core accept and follow it."""
        return self._on_refer

    @on_refer.setter
    def on_refer(self, cb: "Optional[Callable[[Referral], Any]]") -> None:
        self._on_refer = cb
        if self._handler is not None:
            _core.sr_py_handler_set_flags(
                self._handler, _core.SR_PY_SESSION_REFER if cb is not None else 0)

    # -------------------------------------------------------- properties

    @property
    def ua(self) -> "Optional[UserAgent]":
        """The user agent, or None once it is closed or gone."""
        ua = self._ua_ref() if self._ua_ref is not None else None
        return None if ua is None or ua.closed else ua

    @property
    def state(self) -> SessionState:
        """The current :class:`SessionState`."""
        return SessionState(_core.sr_session_get_state(self._ptr))

    @property
    def role(self) -> SessionRole:
        """INVITER or INVITATION."""
        return SessionRole(_core.sr_session_get_role(self._ptr))

    @property
    def call_id(self) -> Optional[str]:
        """The Call-ID, or None before the INVITE."""
        return _core.sr_session_call_id(self._ptr)

    @property
    def local_tag(self) -> Optional[str]:
        """Our tag in the dialog, or None before it is known."""
        return _core.sr_session_local_tag(self._ptr)

    @property
    def remote_tag(self) -> Optional[str]:
        """The peer's tag, or None before it is known."""
        return _core.sr_session_remote_tag(self._ptr)

    @property
    def remote_target(self) -> Optional[str]:
        """The peer's Contact URI, or None before it is known."""
        return _core.sr_session_remote_target(self._ptr)

    @property
    def remote_identity(self) -> Optional[str]:
        """The peer's URI (From of an Invitation, To of an Inviter)."""
        return _core.sr_session_remote_identity(self._ptr)

    @property
    def remote_body(self) -> Optional[str]:
        """The peer's SDP, or None."""
        return _core.sr_session_remote_body(self._ptr)

    @property
    def referred_session(self) -> "Optional[Session]":
        """For an Inviter made by a Referral: the session the REFER came in."""
        return wrap_session(_core.sr_session_get_referred_session(self._ptr))

    @property
    def referral_inviter(self) -> "Optional[Inviter]":
        """For a session that followed a REFER: the latest Inviter made."""
        return wrap_session(_core.sr_session_get_referral_inviter(self._ptr))  # type: ignore[return-value]

    # -------------------------------------------------------- actions

    def bye(self) -> None:
        """Ends the session: BYE when established, CANCEL for an unanswered
        Inviter. Raises Error (ESTATE before the INVITE, ECLOSED once
        ended)."""
        call(self.ua, _core.sr_session_bye, self._ptr)

    def refer(self, target_or_session: "Union[str, Session]",
              on_notify: Optional[Callable[[int, Optional[str], Optional[str]], Any]] = None,
              on_accept: Optional[Callable[[int, Optional[str]], Any]] = None,
              on_reject: Optional[Callable[[int, Optional[str]], Any]] = None,
              *, on_closed: Optional[Callable[[], Any]] = None,
              extra_headers: Optional[Headers] = (), refer_sub: bool = True,
              bye_on_success: bool = False) -> "Referrer":
        """Sends a REFER in this (established) session.

        ``target_or_session``: a URI (blind transfer) or another Session
        (attended transfer: Refer-To is its remote target with Replaces).
        Callbacks: ``on_accept(code, reason)`` / ``on_reject(code, reason)``
        for the REFER's answer, ``on_notify(code, reason,
        subscription_state)`` per NOTIFY, ``on_closed()`` at the end.
        ``refer_sub=False`` sends Refer-Sub: false; ``bye_on_success`` ends
        this session when the transfer succeeds.
        """
        from .referral import Referrer
        ref = Referrer._new(self, on_notify, on_accept, on_reject, on_closed)
        opts = options(extra_headers=header_lines(extra_headers),
                       refer_sub=int(bool(refer_sub)),
                       bye_on_success=int(bool(bye_on_success)))
        if isinstance(target_or_session, Session):
            fn, target = _core.sr_py_session_refer_session, target_or_session._ptr
        else:
            fn, target = _core.sr_py_session_refer, str(target_or_session)
        call_new(self.ua, ref._attach, fn, self._ptr, target, opts, ref._dispatch)
        return ref

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.state.name} "
                f"call_id={self.call_id!r}>")


class Inviter(Session):
    """An outgoing call (UAC). Made by :meth:`UserAgent.make_inviter` or
    :meth:`Referral.make_inviter`; nothing is sent before :meth:`invite`."""

    def invite(self) -> None:
        """Sends the INVITE. Raises Error (ESTATE if sent already,
        ETRANSPORT, ECLOSED)."""
        self._dispatcher.keep = self  # from now on its callbacks will fire
        try:
            call(self.ua, _core.sr_inviter_invite, self._ptr)
        finally:
            if self.state == SessionState.INITIAL:
                self._dispatcher.keep = None

    def cancel(self) -> None:
        """Cancels the INVITE while it has no final response. Raises Error
        (ESTATE, ECLOSED)."""
        call(self.ua, _core.sr_inviter_cancel, self._ptr)


def _response(status_code: Optional[int], reason_phrase: Optional[str],
              extra_headers: Optional[Headers], body: Optional[str],
              content_type: Optional[str]) -> dict:
    return options(status_code=status_code, reason_phrase=reason_phrase,
                   extra_headers=header_lines(extra_headers), body=body,
                   content_type=content_type)


class Invitation(Session):
    """An incoming call (UAS), given to :attr:`UserAgent.on_invite`."""

    def progress(self, status_code: int = 180, reason_phrase: Optional[str] = None,
                 extra_headers: Optional[Headers] = (), body: Optional[str] = None,
                 content_type: Optional[str] = None) -> None:
        """Sends a provisional response (180 by default, 101-199)."""
        call(self.ua, _core.sr_invitation_progress, self._ptr,
             _response(status_code, reason_phrase, extra_headers, body, content_type))

    def accept(self, status_code: int = 200, reason_phrase: Optional[str] = None,
               extra_headers: Optional[Headers] = (), body: Optional[str] = None,
               content_type: Optional[str] = None) -> None:
        """Answers 2xx with ``body`` or a minimal SDP answer."""
        call(self.ua, _core.sr_invitation_accept, self._ptr,
             _response(status_code, reason_phrase, extra_headers, body, content_type))

    def reject(self, status_code: int = 480, reason_phrase: Optional[str] = None,
               extra_headers: Optional[Headers] = (), body: Optional[str] = None,
               content_type: Optional[str] = None) -> None:
        """Answers with a final 300-699 (480 by default)."""
        call(self.ua, _core.sr_invitation_reject, self._ptr,
             _response(status_code, reason_phrase, extra_headers, body, content_type))

    @property
    def request(self) -> IncomingRequest:
        """The INVITE as received."""
        return IncomingRequest(self, _core.sr_invitation_get_request(self._ptr))

    @property
    def replaces(self) -> "Optional[Session]":
        """The session this INVITE replaces (RFC 3891), or None."""
        return wrap_session(_core.sr_invitation_get_replaced(self._ptr))

