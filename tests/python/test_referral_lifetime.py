"""Lifetime abuse around transfers: referrals and referrers dropped or
collected mid-transfer (also inside their callbacks), stale handles,
exceptions in referral callbacks, user agents closed mid-transfer. No
crash, no leak (the net fixture checks counts after each test)."""

from __future__ import annotations

import gc
import weakref

import pytest

import sipreferral as sr
from sipreferral import ReferralState as RS
from sipreferral import SessionState as S

from parties import Party, Referrer


@pytest.fixture
def trio(net):
    return tuple(Party(net, n) for n in ("alice", "bob", "carol"))


def test_referral_dropped_inside_on_refer(net, trio):
    alice, bob, carol = trio
    refs = []

    def on_refer(referral):
        referral.accept()
        referral.make_inviter().invite()
        refs.append(weakref.ref(referral))
        del referral
        gc.collect()  # the core keeps the live referral; our wrapper may go

    a = alice.call(bob)
    a.on_refer = on_refer
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: rr.closed)
    assert rr.codes()[-1] == 200
    gc.collect()
    assert refs[0]() is None
    follow = a.referral_inviter  # a new wrapper for the same C Inviter
    assert follow is not None and follow.state == S.ESTABLISHED


def test_referrer_not_kept_and_collected_mid_transfer(net, trio):
    alice, bob, carol = trio
    alice.call(bob)
    rr = Referrer()
    ref = weakref.ref(bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks()))
    gc.collect()
    assert ref() is not None  # its callbacks are still to come
    assert net.drive(lambda: rr.notifies)
    gc.collect()
    assert net.drive(lambda: rr.closed)
    gc.collect()
    assert ref() is None  # closed and unreferenced: gone
    assert rr.codes()[-1] == 200


def test_gc_in_every_callback(net, trio):
    alice, bob, carol = trio

    def collecting(cb):
        def wrapped(*args):
            gc.collect()
            return cb(*args)
        return wrapped

    alice.ua.on_invite = collecting(alice.ua.on_invite)
    carol.ua.on_invite = collecting(carol.ua.on_invite)
    alice.ua.on_refer_policy = collecting(lambda r: None)
    a = alice.call(bob)
    a.on_refer = collecting(alice._on_refer)
    a.on_state = collecting(lambda st: None)
    rr = Referrer()
    cbs = {k: collecting(v) for k, v in rr.callbacks().items()}
    bob.last_call().refer(carol.ua.contact_uri("carol"), **cbs)
    assert net.drive(lambda: rr.closed)
    assert rr.codes()[-1] == 200
    assert alice.checks == []


def test_exception_in_on_refer_leaves_it_pending(net, trio):
    alice, bob, carol = trio
    a = alice.call(bob)
    got = []

    def on_refer(referral):
        got.append(referral)
        raise RuntimeError("cannot decide")

    a.on_refer = on_refer
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    with pytest.raises(RuntimeError, match="cannot decide"):
        net.drive(lambda: False)
    r = got[0]
    assert r.state == RS.PENDING
    r.accept()
    r.make_inviter().invite()
    assert net.drive(lambda: rr.closed)
    assert rr.codes()[-1] == 200


def test_exceptions_in_referrer_callbacks(net, trio):
    alice, bob, carol = trio
    alice.call(bob)
    seen = []

    def on_notify(code, reason, state):
        seen.append(code)
        raise ValueError(code)

    def on_closed():
        seen.append("closed")
        raise KeyError("closed")

    bob.last_call().refer(carol.ua.contact_uri("carol"), on_notify=on_notify,
                          on_closed=on_closed)
    raised = []
    while len(raised) < 4:
        try:
            net.drive(lambda: "closed" in seen)
        except (ValueError, KeyError) as e:
            raised.append(type(e))
    assert seen == [100, 180, 200, "closed"]
    assert raised == [ValueError, ValueError, ValueError, KeyError]
    # the handler went with on_closed despite the exception (the fixture
    # checks that no handler is left)


def test_referral_kept_after_ua_close(net, trio):
    alice, bob, carol = trio
    alice.refer_mode = "pending"
    alice.call(bob)
    rr = Referrer()
    bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: alice.referrals)
    r = alice.referrals[0]
    alice.ua.close()
    assert r.ua is None and r.session.ua is None
    for f in (r.accept, r.reject, r.make_inviter, lambda: r.notify(200)):
        with pytest.raises(sr.Error) as e:
            f()
        assert e.value.code in (sr.ErrorCode.ECLOSED, sr.ErrorCode.ESTATE)
    assert r.refer_to.uri.user == "carol" and r.request.method == "REFER"
    # Bob's REFER is never answered: his referrer ends by timeout (408)
    assert net.drive(lambda: rr.closed)
    assert rr.rejects and rr.rejects[0][0] == 408


def test_referrer_ua_closed_mid_transfer(net, trio):
    alice, bob, carol = trio
    carol.answer = "ring"
    alice.call(bob)
    rr = Referrer()
    ref = bob.last_call().refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    assert net.drive(lambda: len(rr.notifies) >= 2)
    bob.ua.close()  # no further referrer callback
    assert ref.closed  # ended with its UA, silently
    n = len(rr.notifies)
    carol.last_call().accept()
    follow = alice.calls[-1]
    assert net.drive(lambda: follow.state == S.ESTABLISHED)
    assert len(rr.notifies) == n and rr.closed == 0


def test_referrer_session_dropped_everywhere(net, trio):
    alice, bob, carol = trio
    alice.call(bob)
    rr = Referrer()
    b = bob.last_call()
    bob.calls.clear()
    b.refer(carol.ua.contact_uri("carol"), **rr.callbacks())
    wb = weakref.ref(b)
    del b
    gc.collect()
    assert wb() is not None  # live call (and its referrer) keep it
    assert net.drive(lambda: rr.closed)
    wb().bye()
    assert net.drive(lambda: wb() is None or wb().state == S.TERMINATED)


def test_whole_transfer_then_everything_dropped(net):
    # nothing kept but the user agents: the net fixture proves no leak
    alice, bob, carol = (Party(net, n) for n in ("alice", "bob", "carol"))
    alice.call(bob)
    done = []
    bob.last_call().refer(carol.ua.contact_uri("carol"), on_closed=lambda: done.append(1))
    assert net.drive(lambda: done)
    for p in (alice, bob, carol):
        p.calls.clear()
        p.referrals.clear()
    gc.collect()
