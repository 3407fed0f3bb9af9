"""Calls between two user agents through the Python module: INVITE/200/
ACK/BYE over UDP, TCP and IPv6, CANCEL, reject, progress, errors."""

from __future__ import annotations

import logging

import pytest

import sipreferral as sr
from sipreferral import SessionState as S

from parties import RawUDP


def answer(ua, rec, how="accept", **kw):
    """Bob's on_invite: record the Invitation and answer it."""
    got = []

    def on_invite(inv):
        got.append(inv)
        inv.on_state = rec("bob_state")
        inv.on_bye = rec("bob_bye")
        inv.progress()
        if how == "accept":
            inv.accept(**kw)
        elif how == "reject":
            inv.reject(**kw)

    ua.on_invite = on_invite
    return got


@pytest.mark.parametrize("transport,v6", [("udp", False), ("tcp", False),
                                          ("udp", True), ("tcp", True)])
def test_call_and_bye(net, rec, transport, v6):
    alice, bob = net.ua("alice", v6), net.ua("bob", v6)
    got = answer(bob, rec)
    inv = alice.make_inviter(bob.contact_uri("bob", transport))
    assert isinstance(inv, sr.Inviter) and isinstance(inv, sr.Session)
    inv.on_state = rec("alice_state")
    inv.on_response = rec("alice_response")
    assert inv.state is S.INITIAL
    assert inv.call_id is None
    inv.invite()
    with pytest.raises(sr.Error) as e:
        inv.invite()
    assert e.value.code == sr.ErrorCode.ESTATE
    assert net.drive(lambda: got and inv.state == S.ESTABLISHED
                     and got[0].state == S.ESTABLISHED)
    bob_s = got[0]
    assert isinstance(bob_s, sr.Invitation)
    assert bob_s.role is sr.SessionRole.INVITATION
    assert inv.call_id == bob_s.call_id
    assert inv.local_tag == bob_s.remote_tag
    assert inv.remote_tag == bob_s.local_tag
    assert inv.remote_target and bob_s.remote_target
    assert inv.remote_body and "v=0" in inv.remote_body
    assert bob_s.request.method == "INVITE"
    assert "alice" in bob_s.request.header("From")
    assert bob_s.request.headers("Via")
    assert "v=0" in bob_s.request.body
    assert str(bob_s.request).startswith("INVITE ")
    assert [c for (c, _) in rec.of("alice_response")][-1] == 200
    assert alice.stats()["dialogs"] == 1
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED and bob_s.state == S.TERMINATED)
    assert rec.of("alice_state") == [(S.ESTABLISHING,), (S.ESTABLISHED,),
                                     (S.TERMINATING,), (S.TERMINATED,)]
    assert rec.of("bob_state") == [(S.ESTABLISHING,), (S.ESTABLISHED,), (S.TERMINATED,)]
    assert rec.of("bob_bye") == [()]
    # ended sessions refuse, with the code the core gives
    with pytest.raises(sr.Error) as e:
        inv.bye()
    assert e.value.code == sr.ErrorCode.ECLOSED
    with pytest.raises(sr.Error) as e:
        bob_s.accept()
    assert e.value.code == sr.ErrorCode.ECLOSED
    with pytest.raises(AttributeError):
        bob_s.invite()  # an Invitation has no invite()


def test_cancel(net, rec):
    alice, bob = net.ua("alice"), net.ua("bob")
    got = answer(bob, rec, how="ring")
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_response = rec("resp")
    inv.invite()
    assert net.drive(lambda: (180, "Ringing") in rec.of("resp"))
    inv.cancel()
    assert net.drive(lambda: inv.state == S.TERMINATED and got[0].state == S.TERMINATED)
    assert rec.of("resp")[-1][0] == 487
    with pytest.raises(sr.Error) as e:
        inv.cancel()
    assert e.value.code == sr.ErrorCode.ECLOSED


@pytest.mark.parametrize("code", [486, 603])
def test_reject(net, rec, code):
    alice, bob = net.ua("alice"), net.ua("bob")
    answer(bob, rec, how="reject", status_code=code, reason_phrase="Not Today",
           extra_headers=["X-Why: test"])
    inv = alice.make_inviter(bob.contact_uri("bob"), extra_headers={"X-Test": "1"})
    inv.on_response = rec("resp")
    inv.invite()
    assert net.drive(lambda: inv.state == S.TERMINATED)
    assert rec.of("resp")[-1] == (code, "Not Today")


def test_no_on_invite_is_480(net, rec):
    alice, bob = net.ua("alice"), net.ua("bob")
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_response = rec("resp")
    inv.invite()
    assert net.drive(lambda: inv.state == S.TERMINATED)
    assert rec.of("resp")[-1][0] == 480
    # and setting then clearing on_invite restores that default
    bob.on_invite = lambda i: i.accept()
    bob.on_invite = None
    inv2 = alice.make_inviter(bob.contact_uri("bob"))
    inv2.on_response = rec("resp2")
    inv2.invite()
    assert net.drive(lambda: inv2.state == S.TERMINATED)
    assert rec.of("resp2")[-1][0] == 480


def test_bad_arguments(net):
    alice = net.ua("alice")
    with pytest.raises(sr.Error) as e:
        alice.make_inviter("not a uri")
    assert e.value.code == sr.ErrorCode.EINVAL
    assert "invalid" in str(e.value).lower() or e.value.message
    with pytest.raises(ValueError):
        alice.make_inviter("sip:x@127.0.0.1", extra_headers=["X: a\r\nY: b"])
    with pytest.raises(TypeError):
        sr.UserAgent("sip:a@127.0.0.1", no_such_option=1)
    with pytest.raises(sr.Error) as e:
        sr.UserAgent("mailto:a@example.com", listen=[])
    assert e.value.code == sr.ErrorCode.EINVAL
    with pytest.raises(sr.Error) as e:
        sr.UserAgent("sip:a@127.0.0.1", listen=["bogus:1.2.3.4:5"])
    host, port = alice.address("tcp")
    with pytest.raises(sr.Error) as e:
        sr.UserAgent("sip:a@127.0.0.1", listen=[f"tcp:{host}:{port}"])
    assert e.value.code == sr.ErrorCode.EADDR
    with pytest.raises(TypeError):
        sr.Session()
    with pytest.raises(TypeError):
        sr.Referral()


def test_invitation_misuse(net, rec):
    alice, bob = net.ua("alice"), net.ua("bob")
    errors = []

    def on_invite(inv):
        for call in (lambda: inv.progress(status_code=200),
                     lambda: inv.accept(status_code=180),
                     lambda: inv.reject(status_code=200)):
            try:
                call()
            except sr.Error as e:
                errors.append(e.code)
        inv.accept()
        try:
            inv.accept()
        except sr.Error as e:
            errors.append(e.code)
        try:
            inv.refer("sip:carol@127.0.0.1")  # not established yet
        except sr.Error as e:
            errors.append(e.code)

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    E = sr.ErrorCode
    assert errors == [E.EINVAL, E.EINVAL, E.EINVAL, E.ESTATE, E.ESTATE]
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_lossy_network_via_message_hook(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    bob.on_invite = lambda inv: inv.accept()
    seen = []
    n = [0]

    def hook(outgoing, tp, local, remote, data):
        assert isinstance(data, bytes) and tp is sr.Transport.UDP
        if outgoing:
            seen.append(data.split(b" ", 1)[0])
            n[0] += 1
            return n[0] % 3 == 1  # drop every third message sent
        return False

    alice.message_hook = hook
    bob.message_hook = hook
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    assert seen[0] == b"INVITE" and seen.count(b"INVITE") >= 2  # retransmitted
    alice.message_hook = None
    bob.message_hook = None
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_core_log_goes_to_logging(net, caplog):
    with caplog.at_level(logging.DEBUG, logger="sipreferral"):
        ua = net.ua("logger")
    assert any(r.name == "sipreferral" and "listening" in r.getMessage()
               for r in caplog.records)
    assert ua.uri == "sip:logger@127.0.0.1"


def test_run_until_and_timeout(net, rec):
    alice = net.ua("alice")
    assert alice.run(timeout=0) is False
    assert alice.run(until=lambda: True) is True
    assert alice.next_timeout() is None or alice.next_timeout() >= 0
    assert alice.fileno() >= 0
    # one UA can run a whole call against itself
    alice.on_invite = lambda inv: inv.accept()
    inv = alice.make_inviter(alice.contact_uri("alice"))
    inv.invite()
    assert alice.run(timeout=10, until=lambda: inv.state == S.ESTABLISHED)
    inv.bye()
    assert alice.run(timeout=10, until=lambda: inv.state == S.TERMINATED)


def test_overload_answers_new_requests_503(net, caplog):
    """udp_receive_buffer reaches the core: a burst that fills more than
    half of it gets 503 with Retry-After for new requests once the first
    batch is served, until the queue drains; then requests are served."""
    ua = net.ua("busy", udp_receive_buffer=200000)
    raw = RawUDP()
    answers: dict = {}

    def take():
        while raw.got():
            cid = raw.last.split("Call-ID: ", 1)[1].split("\r\n", 1)[0]
            answers.setdefault(cid, raw.last)

    def drained():
        take()
        return any("overload over" in r.getMessage() for r in caplog.records)

    try:
        with caplog.at_level(logging.WARNING, logger="sipreferral"):
            for i in range(400):  # queued before the UA reads any of them
                raw.send(ua, "OPTIONS", f"burst-{i}")
            assert net.drive(drained, fds=[raw.sock.fileno()])
        codes = {cid: int(m[8:11]) for cid, m in answers.items()}
        assert all(codes[f"burst-{i}"] == 200 for i in range(64))
        shed = [cid for cid, c in codes.items() if c == 503]
        assert shed and all("\r\nRetry-After: 5\r\n" in answers[c] for c in shed)
        assert set(codes.values()) == {200, 503}
        raw.send(ua, "OPTIONS", "after")
        assert net.drive(lambda: take() or "after" in answers, fds=[raw.sock.fileno()])
        assert answers["after"].startswith("SIP/2.0 200 ")
    finally:
        raw.close()


def test_injection_and_nul_refused(net, caplog):
    """Text that would add header lines, repeat a header the core writes or
    be cut short at a NUL is refused at the call; nothing goes out."""
    E = sr.ErrorCode
    for key in ("display_name", "user_agent"):
        with pytest.raises(sr.Error) as e:
            sr.UserAgent("sip:x@127.0.0.1", listen=[], **{key: "X\r\nInjected: 1"})
        assert e.value.code == E.EINVAL
    assert "display_name refused" in caplog.text
    alice, bob = net.ua("alice"), net.ua("bob")
    sent = []
    hook = lambda out, tp, l, r, data: (out and sent.append(data)) and False
    alice.message_hook = hook
    bob.message_hook = hook
    target = bob.contact_uri("bob")
    with pytest.raises(ValueError, match="target.*NUL"):
        alice.make_inviter(target + "\0xx")
    with pytest.raises(ValueError, match="spec.*NUL"):
        alice.listen("udp:127.0.0.1:0\0x")
    for bad in (target + "\r\nInjected: 1", target + " x"):
        with pytest.raises(sr.Error) as e:
            alice.make_inviter(bad)
        assert e.value.code == E.EINVAL
    with pytest.raises(sr.Error) as e:
        alice.make_inviter("sip:" + "a" * 100000 + "@127.0.0.1")
    assert e.value.code == E.ETOOBIG
    for hdr in ("Content-Length: 0", "l: 0", "Call-ID: x@y", "CSeq: 1 BYE"):
        with pytest.raises(sr.Error) as e:
            alice.make_inviter(target, extra_headers=[hdr])
        assert e.value.code == E.EINVAL
    with pytest.raises(sr.Error):
        alice.make_inviter(target, from_display_name="A\r\nInjected: 1")
    assert sent == []

    errors = []

    def on_invite(inv):
        for kw in ({"reason_phrase": "OK\r\nInjected: 1"},
                   {"content_type": "application/sdp\r\nInjected: 1", "body": "v=0\r\n"},
                   {"extra_headers": ["Content-Length: 0"]}):
            try:
                inv.accept(**kw)
            except sr.Error as e:
                errors.append(e.code)
        inv.accept()

    bob.on_invite = on_invite
    inv = alice.make_inviter(target)
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    assert errors == [E.EINVAL] * 3
    for bad in (None, 123, b"sip:x@127.0.0.1"):
        with pytest.raises(TypeError, match="str or a Session"):
            inv.refer(bad)
    with pytest.raises(ValueError, match="NUL"):
        inv.refer("sip:carol@127.0.0.1\0evil")
    with pytest.raises(sr.Error) as e:
        inv.refer("sip:carol@127.0.0.1", extra_headers=["Refer-To: <sip:evil@x>"])
    assert e.value.code == E.EINVAL
    assert not any(d.startswith(b"REFER") for d in sent)
    assert not any(b"Injected" in d or d.count(b"Content-Length") > 1 for d in sent)
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)
