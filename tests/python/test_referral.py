"""The Referral core through Python: SIP.js's Referral scenarios, blind
and attended transfer, each validation code, Refer-Sub: false, concurrent
REFERs, the referrer hanging up mid-transfer, the decision deadline,
manual NOTIFYs, out-of-dialog REFER, policy."""

from __future__ import annotations

import pytest

import sipreferral as sr
from sipreferral import ReferralState as RS
from sipreferral import SessionState as S

from parties import Party, RawUDP, Referrer


@pytest.fixture
def trio(net):
    def make(**opts):
        return tuple(Party(net, n, **opts) for n in ("alice", "bob", "carol"))
    return make


def no_checks(*parties):
    for p in parties:
        assert p.checks == [], (p.name, p.checks)


# ------------------------------------------------------------ SIP.js


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("bob_refers", [True, False])
@pytest.mark.parametrize("with_on_refer", [True, False])
def test_sipjs_scenarios(net, trio, transport, bob_refers, with_on_refer):
    alice, bob, carol = trio()
    referee = alice if bob_refers else bob
    if not with_on_refer:
        referee.refer_mode = None  # no on_refer: the core accepts and follows
    a = alice.call(bob, transport)
    b = bob.last_call()
    rr = Referrer()
    ref = (b if bob_refers else a).refer(carol.ua.contact_uri("carol", transport),
                                         **rr.callbacks())
    assert isinstance(ref, sr.Referrer) and ref.id > 0
    assert ref.session is (b if bob_refers else a)
    assert net.drive(lambda: rr.closed)
    assert ref.closed
    assert rr.accepts and rr.accepts[0][0] == 202
    assert rr.codes()[0] == 100 and rr.codes()[-1] == 200
    # the original call stays up, and so does the new one
    assert a.state == S.ESTABLISHED and b.state == S.ESTABLISHED
    c = carol.last_call()
    assert c is not None and c.state == S.ESTABLISHED
    referrer = bob if bob_refers else alice
    refer_at = next(i for i, s in enumerate(referrer.sent) if s.startswith("REFER "))
    assert any(s.startswith("SIP/2.0 200") for s in referrer.sent[refer_at:])
    acc = next(i for i, s in enumerate(referee.sent) if s.startswith("SIP/2.0 202 Accepted"))
    assert any(s.startswith("NOTIFY ") for s in referee.sent[acc:])
    if with_on_refer:
        assert len(referee.referrals) == 1
        assert referee.referrals[0].state == RS.TERMINATED
    else:
        assert referee.referrals == []
        s = a if bob_refers else b  # where the REFER arrived
        follow = s.referral_inviter  # made by the core, wrapped on demand
        assert isinstance(follow, sr.Inviter) and follow is s.referral_inviter
        assert follow.referred_session is s
        assert follow.state == S.ESTABLISHED
    no_checks(alice, bob, carol)


# ------------------------------------------------------------ blind


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_blind_transfer(net, trio, transport):
    alice, bob, carol = trio()
    alice.call(bob, transport)
    b = bob.last_call()
    rr = Referrer()
    # a URI header besides Replaces must never reach Carol's INVITE
    target = (carol.ua.contact_uri("carol", transport)
              + "?X-Leak=1&Route=%3Csip:evil@192.0.2.9%3E")
    b.refer(target, **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.notifies[0][:2] == (100, "Trying")
    assert rr.notifies[0][2].startswith("active;expires=")
    assert rr.notifies[1][:2] == (180, "Ringing")
    assert rr.notifies[2] == (200, "OK", "terminated;reason=noresource")
    assert len(rr.notifies) == 3
    inv = carol.invites[-1]
    assert inv.startswith("INVITE sip:carol@")
    assert "Referred-By: <sip:bob@127.0.0.1>" in inv
    assert "X-Leak" not in inv and "evil" not in inv and "Replaces" not in inv
    r = alice.referrals[0]
    assert isinstance(r.refer_to, sr.NameAddrHeader)
    uri = r.refer_to.uri
    assert isinstance(uri, sr.URI)
    assert uri.scheme == "sip" and uri.user == "carol" and uri.host == "127.0.0.1"
    assert uri.port == carol.ua.address(transport)[1]
    assert uri.headers == {"X-Leak": "1", "Route": "<sip:evil@192.0.2.9>"}
    if transport == "tcp":
        assert uri.parameters == {"transport": "tcp"}
    assert str(uri).startswith("sip:carol@") and "X-Leak" in str(uri)
    assert r.refer_to.display_name is None and r.refer_to.parameters == {}
    assert r.referred_by == "<sip:bob@127.0.0.1>"
    assert r.replaces is None
    assert r.request.method == "REFER" and isinstance(r.request, sr.IncomingRequest)
    assert r.request.header("Refer-To") and r.request.header("r") == r.request.header("Refer-To")
    assert str(r.request).startswith("REFER ")
    assert r.state == RS.TERMINATED and r.refer_sub
    assert r.id == int(r.request.header("CSeq").split()[0])
    assert alice.count_sent("NOTIFY ") == 3
    no_checks(alice, bob, carol)


# ------------------------------------------------------------ attended


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_attended_transfer(net, trio, transport):
    alice, bob, carol = trio()
    ba = bob.call(alice, transport)
    bc = bob.call(carol, transport)
    cb = carol.last_call()
    rr = Referrer()
    ba.refer(bc, **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.codes()[-1] == 200
    r = alice.referrals[0]
    assert r.replaces == f"{bc.call_id};to-tag={bc.remote_tag};from-tag={bc.local_tag}"
    assert r.refer_to.uri.headers.get("Replaces") == r.replaces
    ca = carol.last_call()
    assert ca is not cb
    assert ca.replaces is cb  # the same wrapper as the one on_invite got
    assert net.drive(lambda: bc.state == S.TERMINATED)
    assert cb.state == S.TERMINATED and ca.state == S.ESTABLISHED
    assert "Replaces: " in carol.invites[-1] and bc.call_id in carol.invites[-1]
    assert "\r\nRequire: replaces\r\n" in carol.invites[-1]
    no_checks(alice, bob, carol)


# ------------------------------------------------------------ validation


@pytest.mark.parametrize("target,extra,code", [
    ("tel:+15551234", (), 416),
    ("sips:carol@127.0.0.1", (), 416),  # sips needs TLS: not in the defaults
    ("sip:carol@127.0.0.1;method=BYE", (), 501),
])
def test_validation_codes(net, trio, target, extra, code):
    alice, bob, carol = trio()
    a = alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(target, extra_headers=extra, **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.rejects == [(code, rr.rejects[0][1])] and rr.accepts == []
    assert alice.referrals == []
    assert a.state == S.ESTABLISHED


def test_second_refer_to_refused_by_sender(net, trio):
    # A peer's REFER with two gets 400: test_raw_validation.
    alice, bob, carol = trio()
    a = alice.call(bob)
    with pytest.raises(sr.Error) as e:
        bob.last_call().refer("sip:carol@127.0.0.1",
                              extra_headers=["Refer-To: <sip:dave@127.0.0.1>"])
    assert e.value.code == sr.ErrorCode.EINVAL
    assert a.state == S.ESTABLISHED


def test_raw_validation(net, trio):
    alice, bob, carol = trio()
    a = alice.call(bob)
    raw = RawUDP()
    try:
        cid, lt, rt = a.call_id, a.local_tag, a.remote_tag
        ua = alice.ua
        assert raw.refer(net, ua, cid, lt, rt, "", 100) == 400
        assert "Missing Refer-To" in raw.last
        assert raw.refer(net, ua, cid, lt, rt, "Refer-To: <sip:a@127.0.0.1>\r\n"
                         "Refer-To: <sip:b@127.0.0.1>\r\n", 101) == 400
        assert "Multiple Refer-To" in raw.last
        assert raw.refer(net, ua, cid, lt, rt, "Refer-To: <sip:a@127.0.0.1\r\n", 102) == 400
        assert "Bad Refer-To" in raw.last
        assert raw.refer(net, ua, cid, lt, rt,
                         "Refer-To: <sip:a@127.0.0.1?Replaces=%zz>\r\n", 103) == 400
        assert raw.refer(net, ua, cid, lt, rt, "Refer-To: <tel:+1555>\r\n", 104) == 416
        assert raw.refer(net, ua, cid, lt, rt,
                         "r: <sip:a@127.0.0.1;method=SUBSCRIBE>\r\n", 105) == 501
        assert raw.refer(net, ua, "nosuchcall", "x1", "y1",
                         "Refer-To: <sip:a@127.0.0.1>\r\n", 1) == 481
        assert raw.refer(net, ua, "ood-call", None, "y2",
                         "Refer-To: <sip:a@127.0.0.1>\r\n", 1) == 405
        assert "Allow:" in raw.last
    finally:
        raw.close()
    assert alice.referrals == []
    assert a.state == S.ESTABLISHED


def test_refer_in_early_dialog_is_403(net, trio):
    alice, bob, carol = trio()
    bob.answer = "ring"
    a = alice.ua.make_inviter(bob.ua.contact_uri("bob"))
    a.invite()
    assert net.drive(lambda: bob.last_call() is not None and bob.last_call().local_tag)
    b = bob.last_call()
    raw = RawUDP()
    try:
        assert raw.refer(net, bob.ua, b.call_id, b.local_tag, b.remote_tag,
                         "Refer-To: <sip:c@127.0.0.1>\r\n", 2) == 403
    finally:
        raw.close()
    assert bob.referrals == []
    a.cancel()
    assert net.drive(lambda: a.state == S.TERMINATED)


# ------------------------------------------------------------ decisions


def test_policy_denies(net, trio):
    alice, bob, carol = trio()
    asked = []

    def policy(referral):
        asked.append((str(referral.refer_to.uri), referral.state))
        return 403

    alice.ua.on_refer_policy = policy
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.rejects[0][0] == 403
    assert alice.referrals == []
    assert asked and asked[0][0].startswith("sip:carol@") and asked[0][1] == RS.PENDING


@pytest.mark.parametrize("answer", [None, 0])
def test_policy_allows(net, trio, answer):
    alice, bob, carol = trio()
    alice.ua.on_refer_policy = lambda referral: answer
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.codes()[-1] == 200 and len(alice.referrals) == 1


@pytest.mark.parametrize("bad", ["raise", 42, "text"])
def test_policy_that_fails_answers_500(net, trio, bad):
    alice, bob, carol = trio()

    def policy(referral):
        if bad == "raise":
            raise LookupError("policy failed")
        return bad

    alice.ua.on_refer_policy = policy
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    expected = {"raise": LookupError, 42: ValueError, "text": ValueError}[bad]
    with pytest.raises(expected):
        net.drive(lambda: False)
    assert net.drive(lambda: rr.closed)
    assert rr.rejects[0][0] == 500
    assert alice.referrals == []


def test_application_rejects(net, trio):
    alice, bob, carol = trio()
    alice.refer_mode = "pending"
    a = alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: alice.referrals)
    r = alice.referrals[0]
    assert r.state == RS.PENDING and r.session is a
    E = sr.ErrorCode
    for f, code in ((lambda: r.reject(200), E.EINVAL), (lambda: r.accept(404), E.EINVAL)):
        with pytest.raises(sr.Error) as e:
            f()
        assert e.value.code == code
    r.reject()
    for f, code in ((r.reject, E.EALREADY), (r.accept, E.EALREADY),
                    (r.make_inviter, E.ESTATE)):
        with pytest.raises(sr.Error) as e:
            f()
        assert e.value.code == code
    assert net.drive(lambda: rr.closed)
    assert rr.rejects[0][0] == 603
    assert r.state == RS.REJECTED


def test_reject_with_status_and_headers(net, trio):
    alice, bob, carol = trio()
    alice.refer_mode = "pending"
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: alice.referrals)
    alice.referrals[0].reject(status_code=486, reason_phrase="Not Now",
                              extra_headers=[("X-Why", "busy")])
    assert net.drive(lambda: rr.closed)
    assert rr.rejects == [(486, "Not Now")]


def test_target_rejects_486(net, trio):
    alice, bob, carol = trio()
    carol.answer = "reject"
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.notifies[-1] == (486, "Busy Here", "terminated;reason=noresource")


def test_refer_sub_false(net, trio):
    alice, bob, carol = trio()
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), refer_sub=False, **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.accepts and rr.accepts[0][0] == 202
    # the transfer still happens, without a NOTIFY
    assert net.drive(lambda: carol.last_call() is not None
                     and carol.last_call().state == S.ESTABLISHED)
    assert alice.count_sent("NOTIFY ") == 0 and rr.notifies == []
    assert alice.referrals[0].refer_sub is False
    assert alice.count_sent("SIP/2.0 202") == 1


def test_two_concurrent_refers(net, trio):
    alice, bob, carol = trio()
    alice.call(bob)
    r1, r2 = Referrer(), Referrer()
    b = bob.last_call()
    x = b.refer(carol.ua.contact_uri("carol", "udp"), **r1.callbacks())
    y = b.refer(carol.ua.contact_uri("carol", "tcp"), **r2.callbacks())
    assert x.id != y.id
    assert net.drive(lambda: r1.closed and r2.closed)
    assert r1.codes()[-1] == 200 and r2.codes()[-1] == 200
    assert len(alice.referrals) == 2
    assert alice.referrals[0] is not alice.referrals[1]
    assert {r.id for r in alice.referrals} == {x.id, y.id}


def test_referrer_hangs_up_mid_transfer(net, trio):
    alice, bob, carol = trio()
    carol.answer = "ring"
    a = alice.call(bob)
    b = bob.last_call()
    rr = Referrer()
    b.refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: carol.last_call() is not None and len(rr.notifies) >= 2)
    before = alice.count_sent("NOTIFY ")
    b.bye()
    assert net.drive(lambda: a.state == S.TERMINATED and rr.closed)
    r = alice.referrals[0]
    assert r.state == RS.TERMINATED
    with pytest.raises(sr.Error) as e:
        r.notify(200)
    assert e.value.code == sr.ErrorCode.ESTATE
    c = carol.last_call()
    c.accept()
    follow = alice.calls[-1]
    assert net.drive(lambda: follow.state == S.ESTABLISHED)
    assert c.state == S.ESTABLISHED
    assert alice.count_sent("NOTIFY ") == before


def test_decision_deadline(net, trio):
    alice, bob, carol = trio(refer_decision_timeout_ms=300)
    alice.refer_mode = "pending"
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.rejects[0][0] == 603
    r = alice.referrals[0]
    assert r.state == RS.REJECTED
    with pytest.raises(sr.Error) as e:
        r.accept()
    assert e.value.code in (sr.ErrorCode.EALREADY, sr.ErrorCode.ECLOSED)


def test_referral_after_its_session_ended(net, trio):
    alice, bob, carol = trio()
    alice.refer_mode = "accept"
    a = alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.notifies)
    a.bye()
    assert net.drive(lambda: a.state == S.TERMINATED)
    r = alice.referrals[0]
    assert r.state == RS.TERMINATED
    with pytest.raises(sr.Error) as e:
        r.accept()
    assert e.value.code == sr.ErrorCode.ECLOSED
    with pytest.raises(sr.Error) as e:
        r.notify(180)
    assert e.value.code == sr.ErrorCode.ESTATE
    assert r.refer_to.uri.user == "carol"  # views stay readable
    # following it is still allowed (the transfer may complete), silently
    notifies = alice.count_sent("NOTIFY ")
    follow = r.make_inviter()
    follow.invite()
    assert net.drive(lambda: follow.state == S.ESTABLISHED)
    assert alice.count_sent("NOTIFY ") == notifies


def test_manual_notify(net, trio):
    alice, bob, carol = trio()
    alice.refer_mode = "accept"
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.notifies)
    r = alice.referrals[0]
    r.notify_mode = sr.NotifyMode.NONE
    assert r.notify_mode is sr.NotifyMode.NONE
    r.notify(183, "Session Progress")
    r.notify(503, "Gateway Busy")
    assert net.drive(lambda: rr.closed)
    assert rr.codes() == [100, 183, 503]
    assert rr.notifies[2] == (503, "Gateway Busy", "terminated;reason=noresource")


def test_subscription_expires(net, trio):
    alice, bob, carol = trio(refer_expires_s=1)
    alice.refer_mode = "accept"
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert [n[2] for n in rr.notifies] == ["active;expires=1", "terminated;reason=timeout"]
    assert alice.referrals[0].state == RS.TERMINATED


def test_final_only_mode(net, trio):
    alice, bob, carol = trio(notify_mode=sr.NotifyMode.FINAL_ONLY)
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.codes() == [100, 200]


def test_bye_on_success(net, trio):
    alice, bob, carol = trio()
    a = alice.call(bob)
    b = bob.last_call()
    rr = Referrer()
    b.refer(carol.ua.contact_uri("carol"), bye_on_success=True, **rr.callbacks())
    assert net.drive(lambda: rr.closed and a.state == S.TERMINATED
                     and b.state == S.TERMINATED)
    assert carol.last_call().state == S.ESTABLISHED


@pytest.mark.parametrize("target,code", [
    ("sip:carol@127.0.0.1:1;transport=tcp", 503),  # connection refused
    ("sip:carol@[::1]:5099", 503),                  # no IPv6 listener
])
def test_target_fails_locally(net, trio, target, code):
    alice, bob, carol = trio()
    alice.refer_mode = None
    a = alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(target, **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.notifies[-1][0] == code
    assert rr.notifies[-1][2] == "terminated;reason=noresource"
    assert a.state == S.ESTABLISHED


def test_out_of_dialog_refer(net, trio):
    alice, bob, carol = trio(allow_out_of_dialog_refer=True)
    got = []

    def on_refer(referral):
        got.append(referral)
        assert referral.session is None
        referral.accept()

    alice.ua.on_refer = on_refer
    raw = RawUDP()
    try:
        assert raw.refer(net, alice.ua, "ood-1", None, "ft1",
                         "Refer-To: <sip:carol@127.0.0.1:9>\r\n", 7) == 202
        assert got and got[0].id == 7
        assert "To: <sip:alice@127.0.0.1>;tag=" in raw.last
        assert net.drive(raw.got, 5)  # the NOTIFY, in the REFER's own dialog
        assert raw.last.startswith("NOTIFY sip:bob@127.0.0.1:")
        assert "Event: refer;id=7" in raw.last and "Call-ID: ood-1" in raw.last
        assert "SIP/2.0 100 Trying" in raw.last
    finally:
        raw.close()


def test_out_of_dialog_refer_refused_by_default(net, trio):
    alice, bob, carol = trio()
    alice.ua.on_refer = lambda referral: referral.accept()  # not enough
    raw = RawUDP()
    try:
        assert raw.refer(net, alice.ua, "ood-2", None, "ft2",
                         "Refer-To: <sip:carol@127.0.0.1:9>\r\n", 1) == 405
    finally:
        raw.close()


# ------------------------------------------------------------ outbound proxy


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("core_follows", [False, True])
def test_transfer_to_a_host_name_through_the_outbound_proxy(net, transport, core_follows):
    """Alice's outbound proxy is Carol's address; Bob refers Alice to a
    target that names a host. The INVITE goes to the proxy with the
    target as Request-URI and the proxy as Route; the NOTIFYs report its
    progress as usual."""
    carol = Party(net, "carol")
    host, port = carol.ua.address(transport)
    tp = ";transport=tcp" if transport == "tcp" else ""
    alice = Party(net, "alice", outbound_proxy=f"sip:{host}:{port}{tp}")
    bob = Party(net, "bob")
    if core_follows:
        alice.refer_mode = None
    b = bob.call(alice)  # Alice's own INVITEs would go to the proxy
    rr = Referrer()
    b.refer("sip:carol@carol.example.com", **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.codes() == [100, 180, 200]
    inv = carol.invites[-1]
    assert inv.startswith("INVITE sip:carol@carol.example.com SIP/2.0\r\n")
    assert f"\r\nRoute: <sip:{host}:{port}{tp};lr>\r\n" in inv
    assert f"SIP/2.0/{transport.upper()} " in inv
    assert "Referred-By: <sip:bob@127.0.0.1>" in inv
    assert carol.last_call().state == S.ESTABLISHED
    no_checks(alice, bob, carol)


def test_sips_target_is_unreachable(net, trio):
    """sips needs TLS on every hop, which the library has not: make_inviter
    raises ETRANSPORT. Allowed as a Refer-To scheme all the same and
    followed by the core, the referrer gets a final NOTIFY 503 and Carol
    hears nothing: the call is not made in the clear."""
    alice, bob, carol = trio(allowed_schemes="sip,sips")
    target = "sips:" + carol.ua.contact_uri("carol", "udp")[4:]
    with pytest.raises(sr.Error) as e:
        alice.ua.make_inviter(target)
    assert e.value.code == sr.ErrorCode.ETRANSPORT
    alice.refer_mode = None
    a = alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(target, **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.accepts and rr.notifies[-1][0] == 503
    assert a.state == S.ESTABLISHED and carol.invites == []


def test_host_name_without_a_proxy(net, trio):
    """No outbound proxy: a target naming a host cannot be called
    (make_inviter raises EADDR); followed by the core, the referrer gets
    a final NOTIFY 503 and the call it is in goes on."""
    alice, bob, carol = trio()
    with pytest.raises(sr.Error) as e:
        alice.ua.make_inviter("sip:carol@carol.example.com")
    assert e.value.code == sr.ErrorCode.EADDR
    alice.refer_mode = None
    a = alice.call(bob)
    rr = Referrer()
    bob.last_call().refer("sip:carol@carol.example.com", **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.notifies[-1] == (503, "Service Unavailable", "terminated;reason=noresource")
    assert a.state == S.ESTABLISHED and carol.invites == []


@pytest.mark.parametrize("proxy,code", [
    ("sips:127.0.0.1", "EINVAL"), ("sip:bob@127.0.0.1", "EINVAL"),
    ("sip:127.0.0.1;transport=sctp", "EINVAL"), ("sip:no-such-host.invalid", "EADDR"),
])
def test_bad_outbound_proxy(net, proxy, code):
    with pytest.raises(sr.Error) as e:
        net.ua("alice", outbound_proxy=proxy)
    assert e.value.code == getattr(sr.ErrorCode, code)
    with pytest.raises(TypeError):
        net.ua("alice", outbound_proxy=5)
