"""REFER both ways: :class:`Referral` (a REFER we received, SIP.js's
Referral) and :class:`Referrer` (a REFER we sent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._base import (
    REFERRAL_STATES, REFERRALS, REFERRERS, Headers, NotifyMode, ReferralState, Transport, _core,
    _ext, call, call_session, inviter_options, remember, response_options, settle,
)
from .session import Inviter, Session, wrap_session
from .views import IncomingRequest, NameAddrHeader

if TYPE_CHECKING:  # pragma: no cover
    from .ua import UserAgent

__all__ = ["Referral", "Referrer"]


#: wrap_referral(ptr, ua_ref=None): the one wrapper of a C referral (ptr
#: is borrowed; None for None). ``ua_ref``: a weak reference to its
#: UserAgent when the caller has one. In C (python_natives.i), on every
#: REFER: a new wrapper is a Referral made without __init__, with _ptr,
#: _ua_ref, _inviter None and a reference on the referral, which its
#: REFERRALS entry drops when it goes.
wrap_referral: Callable[..., "Optional[Referral]"] = _ext.sr_py_wrap_referral


class Referral:
    """A REFER received in a session (or out of dialog, when allowed) that
    passed validation and policy. Decide with :meth:`accept` or
    :meth:`reject`, then follow it with :meth:`make_inviter`; the
    Inviter's responses become NOTIFYs to the referrer. Calls on a referral
    that ended raise :class:`Error` (ECLOSED, EALREADY)."""

    _ptr: Any
    _ua_ref: Any
    _inviter: Optional[Inviter]  # the one make_inviter made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("referrals come from Session.on_refer / UserAgent.on_refer")

    @property
    def ua(self) -> "Optional[UserAgent]":
        """The user agent, or None once it is closed or gone."""
        ref = self._ua_ref
        ua = ref() if ref is not None else None
        return ua if ua is not None and not ua._closed else None

    @property
    def state(self) -> ReferralState:
        """PENDING, ACCEPTED, REJECTED or TERMINATED."""
        return REFERRAL_STATES[_core.sr_referral_get_state(self._ptr)]

    @property
    def refer_to(self) -> NameAddrHeader:
        """The Refer-To header, parsed."""
        return NameAddrHeader(self, _core.sr_referral_refer_to(self._ptr))

    @property
    def referred_by(self) -> Optional[str]:
        """The Referred-By value, or None: an untrusted claim."""
        return _core.sr_referral_referred_by(self._ptr)

    @property
    def replaces(self) -> Optional[str]:
        """The Replaces carried in the Refer-To URI (unescaped), or None."""
        return _core.sr_referral_replaces(self._ptr)

    @property
    def request(self) -> IncomingRequest:
        """The REFER as received."""
        return IncomingRequest(self, _core.sr_referral_request(self._ptr))

    @property
    def session(self) -> Optional[Session]:
        """The session the REFER arrived in, or None (out of dialog)."""
        return wrap_session(_core.sr_referral_get_session(self._ptr))

    @property
    def id(self) -> int:
        """The event id (the REFER's CSeq number)."""
        return _core.sr_referral_get_id(self._ptr)

    @property
    def refer_sub(self) -> bool:
        """False when the REFER carried Refer-Sub: false (no NOTIFYs)."""
        return bool(_core.sr_referral_get_refer_sub(self._ptr))

    def accept(self, status_code: int = 202, reason_phrase: Optional[str] = None,
               extra_headers: Optional[Headers] = (), body: Optional[str] = None,
               content_type: Optional[str] = None) -> None:
        """Answers 2xx (202 by default), then NOTIFY 100 unless Refer-Sub:
        false. Raises Error: EINVAL (not 2xx), EALREADY, ECLOSED."""
        call(self._ua_ref, _core.sr_referral_accept, self._ptr,
             None if (status_code.__class__ is int and status_code == 202
                      and reason_phrase is None and not extra_headers and body is None
                      and content_type is None)
             else response_options(202, status_code, reason_phrase, extra_headers, body,
                                   content_type))

    def reject(self, status_code: int = 603, reason_phrase: Optional[str] = None,
               extra_headers: Optional[Headers] = (), body: Optional[str] = None,
               content_type: Optional[str] = None) -> None:
        """Answers 300-699 (603 by default). Raises Error: EINVAL,
        EALREADY, ECLOSED."""
        call(self._ua_ref, _core.sr_referral_reject, self._ptr, response_options(
            603, status_code, reason_phrase, extra_headers, body, content_type))

    def make_inviter(self, extra_headers: Optional[Headers] = (), body: Optional[str] = None,
                     content_type: Optional[str] = None, *,
                     from_display_name: Optional[str] = None,
                     transport: Union[Transport, str, None] = None) -> Inviter:
        """The Inviter that follows the referral (to the Refer-To URI, with
        Replaces and Referred-By added); the same object when called again.
        Call its :meth:`Inviter.invite`. Raises Error: ESTATE (rejected),
        ECLOSED."""
        inviter = call_session(self._ua_ref, False, _core.sr_referral_make_inviter, self._ptr,
                               None if (not extra_headers and body is None and content_type is None
                                    and from_display_name is None and transport is None)
                               else inviter_options(extra_headers, body, content_type,
                                                    from_display_name, transport))
        assert isinstance(inviter, Inviter)
        self._inviter = inviter  # "the same object" even after the call ends
        return inviter

    @property
    def notify_mode(self) -> NotifyMode:
        """Which NOTIFYs are sent by themselves (write-only in the core;
        reads give the last value set here, ALL by default)."""
        return getattr(self, "_notify_mode", NotifyMode.ALL)

    @notify_mode.setter
    def notify_mode(self, mode: NotifyMode) -> None:
        call(self._ua_ref, _core.sr_referral_set_notify_mode, self._ptr, int(NotifyMode(mode)))
        self._notify_mode = NotifyMode(mode)

    def notify(self, status_code: int, reason_phrase: Optional[str] = None) -> None:
        """Sends a NOTIFY with sipfrag "SIP/2.0 code reason"; a final code
        ends the subscription. Raises Error: ESTATE, ECLOSED, EINVAL."""
        call(self._ua_ref, _core.sr_referral_notify, self._ptr, status_code, reason_phrase)

    def __repr__(self) -> str:
        return f"<Referral {self.state.name} to {str(self.refer_to)!r}>"


def _release_referrer(ptr: Any) -> None:
    _core.sr_referrer_unref(ptr)


class Referrer:
    """A REFER we sent (:meth:`Session.refer`). Its callbacks, given to
    refer() or set as attributes: ``on_accept(code, reason)``,
    ``on_reject(code, reason)``, ``on_notify(code, reason,
    subscription_state)`` and ``on_closed()`` (the last event)."""

    on_accept: Optional[Callable[[int, Optional[str]], Any]]
    on_reject: Optional[Callable[[int, Optional[str]], Any]]
    on_notify: Optional[Callable[[int, Optional[str], Optional[str]], Any]]
    on_closed: Optional[Callable[[], Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("referrers come from Session.refer()")

    @classmethod
    def _new(cls, session: Session, on_notify: Any, on_accept: Any,
             on_reject: Any, on_closed: Any) -> "Referrer":
        self = object.__new__(cls)
        self._ptr = None
        self._session = session
        self._ua_ref = session._ua_ref
        self.on_accept = on_accept
        self.on_reject = on_reject
        self.on_notify = on_notify
        self.on_closed = on_closed
        return self

    def _attach(self, ptr: Any) -> None:
        self._ptr = ptr  # owned: sr_session_refer's reference
        remember(REFERRERS, int(ptr), self, _release_referrer, ptr)

    # The C handler calls on_accept, on_reject, on_notify and on_closed
    # itself; a result that may be awaitable comes here.

    def _settle(self, res: Any) -> None:
        settle(self._ua_ref() if self._ua_ref is not None else None, res)

    @property
    def session(self) -> Session:
        """The session the REFER went out in."""
        return self._session

    @property
    def id(self) -> int:
        """The subscription's event id (the REFER's CSeq number)."""
        return _core.sr_referrer_get_id(self._ptr) if self._ptr is not None else 0

    @property
    def closed(self) -> bool:
        """True once the referrer ended (final NOTIFY, rejection, or its
        session ended)."""
        return self._ptr is None or bool(_core.sr_referrer_is_closed(self._ptr))

    def __repr__(self) -> str:
        return f"<Referrer id={self.id} closed={self.closed}>"


_ext.sr_py_set_referral_class(REFERRALS, Referral, _core.sr_referral_unref)
