"""Alice, Bob and Carol for the referral tests: user agents that answer
calls and handle REFERs by a chosen rule, record what they sent, and a
recorder for the referrer's events."""

from __future__ import annotations

import socket
from typing import Optional

import sipreferral as sr
from sipreferral import SessionState as S


class Party:
    """One user agent with a rule for calls (``answer``: "accept", "ring",
    "reject") and for REFERs (``refer_mode``: None = no on_refer, the core
    accepts and follows; "follow" = accept + make_inviter + invite;
    "accept" = accept only; "pending" = decide later)."""

    def __init__(self, net, name: str, **opts) -> None:
        self.net = net
        self.name = name
        self.ua = net.ua(name, **opts)
        self.answer = "accept"
        self.refer_mode: Optional[str] = "follow"
        self.calls: list[sr.Session] = []
        self.referrals: list[sr.Referral] = []
        self.sent: list[str] = []
        self.invites: list[str] = []  # INVITEs received, as text
        self.checks: list = []  # failures seen inside callbacks
        self.ua.on_invite = self._on_invite
        self.ua.message_hook = self._hook
        net.holders.append(self)

    def clear(self) -> None:
        """Drops every object this party holds (test teardown)."""
        self.calls.clear()
        self.referrals.clear()

    def _hook(self, outgoing, tp, local, remote, data):
        if outgoing:
            self.sent.append(data.split(b"\r\n", 1)[0].decode())
        return False

    def count_sent(self, prefix: str) -> int:
        return sum(1 for s in self.sent if s.startswith(prefix))

    def attach(self, s: sr.Session) -> None:
        if self.refer_mode is not None:
            s.on_refer = self._on_refer

    def _on_invite(self, inv: sr.Invitation) -> None:
        self.calls.append(inv)
        self.invites.append(str(inv.request))
        self.attach(inv)
        if self.answer == "reject":
            inv.reject(486)
            return
        inv.progress()
        if self.answer == "accept":
            inv.accept()

    def _on_refer(self, referral: sr.Referral) -> None:
        self.referrals.append(referral)
        if not any(referral.session is c for c in self.calls):
            self.checks.append("referral.session is not our session's wrapper")
        if self.refer_mode in ("follow", "accept"):
            referral.accept()
            try:
                referral.accept()
                self.checks.append("accept twice did not raise")
            except sr.Error as e:
                if e.code != sr.ErrorCode.EALREADY:
                    self.checks.append(e)
        if self.refer_mode == "follow":
            inv = referral.make_inviter()
            if referral.make_inviter() is not inv:
                self.checks.append("make_inviter gave another object")
            if inv.referred_session is not referral.session:
                self.checks.append("referred_session")
            if referral.session.referral_inviter is not inv:
                self.checks.append("referral_inviter")
            inv.invite()
            self.calls.append(inv)

    def call(self, other: "Party", transport: str = "udp") -> sr.Inviter:
        """Calls other; returns our Inviter once established."""
        inv = self.ua.make_inviter(other.ua.contact_uri(other.name, transport))
        self.attach(inv)
        self.calls.append(inv)
        inv.invite()
        assert self.net.drive(lambda: inv.state == S.ESTABLISHED)
        return inv

    def last_call(self) -> Optional[sr.Session]:
        return self.calls[-1] if self.calls else None


class Referrer:
    """Records a Referrer's events; pass ``**rr.callbacks()`` to refer()."""

    def __init__(self) -> None:
        self.accepts: list = []
        self.rejects: list = []
        self.notifies: list = []  # (code, reason, subscription_state)
        self.closed = 0

    def callbacks(self) -> dict:
        return dict(on_accept=lambda c, r: self.accepts.append((c, r)),
                    on_reject=lambda c, r: self.rejects.append((c, r)),
                    on_notify=lambda c, r, s: self.notifies.append((c, r, s)),
                    on_closed=self._closed)

    def _closed(self) -> None:
        self.closed += 1

    def codes(self) -> list:
        return [n[0] for n in self.notifies]


class RawUDP:
    """A bare UDP socket that sends hand-written requests to a UA."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.branch = 0
        self.last = ""

    def close(self) -> None:
        self.sock.close()

    def got(self) -> bool:
        try:
            self.last = self.sock.recv(8192).decode("utf-8", "replace")
            return True
        except BlockingIOError:
            return False

    def send(self, ua: sr.UserAgent, method: str, call_id: str, cseq: int = 1,
             to_tag: Optional[str] = None, from_tag: str = "r1",
             more_lines: str = "") -> None:
        """Sends a request from bob to alice (the UA), reading nothing."""
        self.branch += 1
        host, port = ua.address("udp")
        msg = (f"{method} sip:alice@127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKpy{self.branch};rport\r\n"
               f"From: <sip:bob@127.0.0.1>;tag={from_tag}\r\n"
               f"To: <sip:alice@127.0.0.1>{';tag=' + to_tag if to_tag else ''}\r\n"
               f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
               f"Contact: <sip:bob@127.0.0.1:{self.port}>\r\nMax-Forwards: 70\r\n"
               f"{more_lines}Content-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), (host, port))

    def refer(self, net, ua: sr.UserAgent, call_id: str, to_tag: Optional[str],
              from_tag: str, refer_to_lines: str, cseq: int) -> int:
        """Sends a REFER; returns the status code of the answer (or -1)."""
        self.send(ua, "REFER", call_id, cseq, to_tag, from_tag, refer_to_lines)
        if not net.drive(self.got, 5, fds=[self.sock.fileno()]):
            return -1
        return int(self.last[8:11])
