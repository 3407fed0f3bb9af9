"""Sessions: :class:`Inviter` (the call we place) and :class:`Invitation`
(the call we receive), after SIP.js's Session, Inviter and Invitation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._base import (
    ROLES, SESSIONS, STATES, Headers, SessionRole, SessionState, _core, _ext, call, call_new,
    header_lines, options, response_options, settle,
)
from .views import IncomingRequest

if TYPE_CHECKING:  # pragma: no cover
    from .referral import Referral, Referrer
    from .ua import UserAgent

__all__ = ["Session", "Inviter", "Invitation"]


_get_role = _core.sr_session_get_role
_get_state = _core.sr_session_get_state
# When a wrapper goes: its handler (installed still only if nothing kept
# the wrapper for its callbacks, an Inviter never invited: nobody can
# observe them now) and its reference on the session.
_release = _core.sr_py_session_release


#: wrap_session(ptr, owned=False, ua_ref=None): the one wrapper of a C
#: session (None for None). ``owned``: ptr carries a reference the wrapper
#: takes over (else it is borrowed and gets one). ``ua_ref``: a weak
#: reference to its UserAgent when the caller has one. In C
#: (python_natives.i), on every INVITE: a new wrapper is an Inviter or an
#: Invitation made without __init__ (its callbacks start as the class's
#: None) with _ptr, _ua_ref and _handler, which keeps it until the session
#: terminates or its UA closes (an Inviter not yet invited only from
#: invite() on); its SESSIONS entry releases (_release) both when it goes.
wrap_session: Callable[..., "Optional[Session]"] = _ext.sr_py_wrap_session


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

    on_state: Optional[Callable[[SessionState], Any]] = None
    on_response: Optional[Callable[[int, str], Any]] = None
    on_bye: Optional[Callable[[], Any]] = None
    _on_refer: "Optional[Callable[[Referral], Any]]" = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("sessions come from UserAgent.make_inviter(), "
                        "UserAgent.on_invite or Referral.make_inviter()")

    # -------------------------------------------------------- events
    # The C handler calls on_state, on_response, on_bye and _on_refer (with
    # the referral's wrapper) itself; a result that may be awaitable comes
    # to _settle.

    def _settle(self, res: Any) -> None:
        settle(self.ua, res)

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

    #: _own_callbacks(on_state, state_mask, on_response, min_code, on_refer,
    #: ended=None): sets the callbacks of a session the package itself
    #: handles (the agent's), in one call: on_state is told only of the
    #: states in ``state_mask`` (bits ``1 << state``), on_response only of
    #: codes of ``min_code`` or more; the other events are not even made
    #: while they stay the callbacks (a user's callback set later sees
    #: all). ``ended`` = (list, item, batch): when the session ends, item
    #: is appended to list and its ``ended`` set to True, and once list
    #: holds batch items the loop of ``UserAgent._run_until_break`` stops
    #: after its turn. In C, a method without a Python frame
    #: (sr_py_own_callbacks).
    _own_callbacks = _ext.sr_py_own_callbacks_method

    # -------------------------------------------------------- properties

    @property
    def ua(self) -> "Optional[UserAgent]":
        """The user agent, or None once it is closed or gone."""
        ref = self._ua_ref
        ua = ref() if ref is not None else None
        return ua if ua is not None and not ua._closed else None

    @property
    def state(self) -> SessionState:
        """The current :class:`SessionState`."""
        return STATES[_get_state(self._ptr)]

    @property
    def role(self) -> SessionRole:
        """INVITER or INVITATION."""
        return ROLES[_get_role(self._ptr)]

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
        Inviter. While our 2xx awaits its ACK the session is "terminating"
        at once and the BYE leaves with the ACK (or 64*T1 without one).
        Raises Error (ESTATE before the INVITE, ECLOSED once ended)."""
        call(self._ua_ref, _core.sr_session_bye, self._ptr)

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
        opts = options(extra_headers=header_lines(extra_headers),
                       refer_sub=int(bool(refer_sub)),
                       bye_on_success=int(bool(bye_on_success)))
        if isinstance(target_or_session, Session):
            fn, target = _core.sr_py_session_refer_session, target_or_session._ptr
        elif isinstance(target_or_session, str):
            fn, target = _core.sr_py_session_refer, target_or_session
        else:
            raise TypeError("refer() target must be a URI str or a Session, not "
                            f"{type(target_or_session).__name__}")
        ref = Referrer._new(self, on_notify, on_accept, on_reject, on_closed)
        call_new(self._ua_ref, ref._attach, fn, self._ptr, target, opts, ref)
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
        # The handler keeps the wrapper from now on (its callbacks will
        # fire) if the INVITE went out.
        call(self._ua_ref, _inviter_invite, self._handler, self, self._ptr)

    def cancel(self) -> None:
        """Cancels the INVITE while it has no final response. Raises Error
        (ESTATE, ECLOSED)."""
        call(self._ua_ref, _core.sr_inviter_cancel, self._ptr)


_inviter_invite = _core.sr_py_inviter_invite


class Invitation(Session):
    """An incoming call (UAS), given to :attr:`UserAgent.on_invite`."""

    def progress(self, status_code: int = 180, reason_phrase: Optional[str] = None,
                 extra_headers: Optional[Headers] = (), body: Optional[str] = None,
                 content_type: Optional[str] = None) -> None:
        """Sends a provisional response (180 by default, 101-199)."""
        # All defaults (the common case) need no options: None, made here
        # without a call.
        call(self._ua_ref, _core.sr_invitation_progress, self._ptr,
             None if (status_code.__class__ is int and status_code == 180
                      and reason_phrase is None and not extra_headers and body is None
                      and content_type is None)
             else response_options(180, status_code, reason_phrase, extra_headers, body,
                                   content_type))

    def accept(self, status_code: int = 200, reason_phrase: Optional[str] = None,
               extra_headers: Optional[Headers] = (), body: Optional[str] = None,
               content_type: Optional[str] = None) -> None:
        """Answers 2xx with ``body`` or a minimal SDP answer."""
        call(self._ua_ref, _core.sr_invitation_accept, self._ptr,
             None if (status_code.__class__ is int and status_code == 200
                      and reason_phrase is None and not extra_headers and body is None
                      and content_type is None)
             else response_options(200, status_code, reason_phrase, extra_headers, body,
                                   content_type))

    def reject(self, status_code: int = 480, reason_phrase: Optional[str] = None,
               extra_headers: Optional[Headers] = (), body: Optional[str] = None,
               content_type: Optional[str] = None) -> None:
        """Answers with a final 300-699 (480 by default)."""
        call(self._ua_ref, _core.sr_invitation_reject, self._ptr,
             response_options(480, status_code, reason_phrase, extra_headers, body, content_type))

    @property
    def request(self) -> IncomingRequest:
        """The INVITE as received."""
        return IncomingRequest(self, _core.sr_invitation_get_request(self._ptr))

    @property
    def replaces(self) -> "Optional[Session]":
        """The session this INVITE replaces (RFC 3891), or None."""
        return wrap_session(_core.sr_invitation_get_replaced(self._ptr))


_ext.sr_py_set_session_classes(SESSIONS, Inviter, Invitation, _release)
