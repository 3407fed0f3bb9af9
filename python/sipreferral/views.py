"""Read-only views into received SIP: URI, name-addr header, request.

A view keeps the object it came from (a Referral or an Invitation) alive,
so it stays valid for as long as the view is referenced."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ._base import _core

__all__ = ["URI", "NameAddrHeader", "IncomingRequest"]


class URI:
    """A SIP (or other scheme) URI as received."""

    __slots__ = ("_owner", "_ptr")

    def __init__(self, owner: Any, ptr: Any) -> None:
        self._owner = owner  # keeps the C memory the view points into
        self._ptr = ptr

    @property
    def scheme(self) -> str:
        """"sip", "sips", "tel", ..."""
        return _core.sr_uri_scheme(self._ptr)

    @property
    def user(self) -> Optional[str]:
        """The user part, or None."""
        return _core.sr_uri_user(self._ptr)

    @property
    def host(self) -> Optional[str]:
        """The host (IPv6 without brackets), or None (e.g. for tel:)."""
        return _core.sr_uri_host(self._ptr)

    @property
    def port(self) -> Optional[int]:
        """The port, or None when the URI names none."""
        port = _core.sr_uri_port(self._ptr)
        return port or None

    @property
    def parameters(self) -> Dict[str, Optional[str]]:
        """URI parameters (``;name=value``); a flag parameter maps to None."""
        n = _core.sr_uri_param_count(self._ptr)
        return {_core.sr_uri_param_name(self._ptr, i): _core.sr_uri_param_value(self._ptr, i)
                for i in range(n)}

    @property
    def headers(self) -> Dict[str, Optional[str]]:
        """URI headers (``?name=value&...``), values %-unescaped."""
        n = _core.sr_uri_header_count(self._ptr)
        return {_core.sr_uri_header_name(self._ptr, i): _core.sr_uri_header_value(self._ptr, i)
                for i in range(n)}

    def __str__(self) -> str:
        return _core.sr_uri_string(self._ptr) or ""

    def __repr__(self) -> str:
        return f"URI({str(self)!r})"


class NameAddrHeader:
    """A name-addr header value such as Refer-To: display name, URI,
    header parameters."""

    __slots__ = ("_owner", "_ptr")

    def __init__(self, owner: Any, ptr: Any) -> None:
        self._owner = owner
        self._ptr = ptr

    @property
    def uri(self) -> URI:
        """The URI inside the angle brackets."""
        return URI(self._owner, _core.sr_name_addr_uri(self._ptr))

    @property
    def display_name(self) -> Optional[str]:
        """The display name, unquoted, or None."""
        return _core.sr_name_addr_display_name(self._ptr)

    @property
    def parameters(self) -> Dict[str, Optional[str]]:
        """Header parameters (after the closing '>')."""
        n = _core.sr_name_addr_param_count(self._ptr)
        return {_core.sr_name_addr_param_name(self._ptr, i):
                _core.sr_name_addr_param_value(self._ptr, i) for i in range(n)}

    def __str__(self) -> str:
        return _core.sr_name_addr_string(self._ptr) or ""

    def __repr__(self) -> str:
        return f"NameAddrHeader({str(self)!r})"


class IncomingRequest:
    """A received request (the REFER of a Referral, the INVITE of an
    Invitation), read-only."""

    __slots__ = ("_owner", "_ptr")

    def __init__(self, owner: Any, ptr: Any) -> None:
        self._owner = owner
        self._ptr = ptr

    @property
    def method(self) -> str:
        """"REFER", "INVITE", ..."""
        return _core.sr_request_method(self._ptr)

    @property
    def ruri(self) -> str:
        """The Request-URI as text."""
        return _core.sr_request_ruri(self._ptr)

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive, compact
        forms too), or None."""
        return _core.sr_request_header(self._ptr, name, 0)

    def headers(self, name: str) -> List[str]:
        """Every value of header ``name``, in order."""
        n = _core.sr_request_header_count(self._ptr, name)
        return [_core.sr_request_header(self._ptr, name, i) for i in range(max(n, 0))]

    @property
    def body(self) -> str:
        """The body as text (undecodable bytes kept as surrogates)."""
        return self.body_bytes.decode("utf-8", "surrogateescape")

    @property
    def body_bytes(self) -> bytes:
        """The body as received."""
        return _core.sr_py_request_body(self._ptr)

    def __str__(self) -> str:
        return _core.sr_request_text(self._ptr) or ""

    def __repr__(self) -> str:
        return f"IncomingRequest({self.method} {self.ruri})"
