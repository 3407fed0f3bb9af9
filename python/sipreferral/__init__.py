"""sipreferral: SIP call transfer (REFER) over a small C user agent core.

>>> import sipreferral
>>> with sipreferral.UserAgent("sip:bob@127.0.0.1") as ua:
...     ua.on_invite = lambda inv: inv.accept()
...     ua.run(timeout=0.01)
False

The names mirror SIP.js: :class:`UserAgent`, :class:`Session`
(:class:`Inviter`, :class:`Invitation`), :class:`Referral`; see each
class. Errors are :class:`Error` with a ``code``; the core's log goes to
the ``logging`` logger "sipreferral".
"""

from ._base import (
    Error, ErrorCode, NotifyMode, ReferralState, SessionRole, SessionState,
    Transport,
)
from . import _log  # noqa: F401  (routes the core's log to logging)
from .referral import Referral, Referrer
from .session import Invitation, Inviter, Session
from .ua import UserAgent, global_stats
from .views import URI, IncomingRequest, NameAddrHeader
from .sipreferral_core import sr_version as _sr_version

__version__: str = _sr_version()

__all__ = [
    "UserAgent", "Session", "Inviter", "Invitation", "Referral", "Referrer",
    "NameAddrHeader", "URI", "IncomingRequest", "Error", "ErrorCode",
    "SessionState", "SessionRole", "ReferralState", "Transport", "NotifyMode",
    "global_stats", "__version__",
]
