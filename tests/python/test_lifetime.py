"""Lifetime abuse: objects dropped or collected at any moment (also inside
their own callbacks), stale handles, ua.close() with live calls, user
agents dropped while calls run, interpreter exit with live objects. No
crash, no leak (the net fixture checks the C object and handler counts
after every test)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref

import pytest

import sipreferral as sr
from sipreferral import SessionState as S

from conftest import Net, live, subprocess_env


def call(net, alice, bob, accept=True):
    got = []

    def on_invite(inv):
        got.append(inv)
        if accept:
            inv.accept()
        else:
            inv.progress()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    want = S.ESTABLISHED if accept else S.ESTABLISHING
    assert net.drive(lambda: got and inv.state == want)
    return inv, got[0]


def test_one_wrapper_per_session(net):
    from sipreferral.session import wrap_session
    alice, bob = net.ua("alice"), net.ua("bob")
    seen = []
    bob.on_invite = lambda inv: (seen.append(inv), inv.accept())
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED and seen)
    bob_s = seen[0]
    # a C session met again (a borrowed pointer) maps to the same wrapper
    assert wrap_session(bob_s._ptr) is bob_s and wrap_session(inv._ptr) is inv
    assert bob_s.ua is bob and inv.ua is alice
    inv.bye()
    assert net.drive(lambda: bob_s.state == S.TERMINATED and inv.state == S.TERMINATED)


def test_drop_and_collect_mid_call(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    states = []
    ended = []

    def on_invite(inv):
        inv.on_state = states.append
        inv.accept()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_state = lambda st: ended.append(st)
    inv.invite()
    ref = weakref.ref(inv)
    del inv
    gc.collect()
    # a live call keeps its wrapper (its callbacks must still fire)
    assert ref() is not None
    assert net.drive(lambda: S.ESTABLISHED in states)
    gc.collect()
    ref().bye()
    assert net.drive(lambda: S.TERMINATED in states and S.TERMINATED in ended)
    gc.collect()
    assert ref() is None  # ended and unreferenced: gone
    # (the C sessions go once their last transactions end)
    assert net.drive(lambda: live()["sessions"] == 0)


def test_collect_inside_callbacks(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    keep = {}

    def on_invite(inv):
        inv.on_state = lambda st: gc.collect()
        inv.accept()
        gc.collect()

    def on_state(st):
        keep.clear()  # drop the last user reference from its own callback
        gc.collect()

    bob.on_invite = on_invite
    keep["inv"] = alice.make_inviter(bob.contact_uri("bob"))
    keep["inv"].on_state = on_state
    r = weakref.ref(keep["inv"])
    keep["inv"].invite()
    assert net.drive(lambda: r() is not None and r().state == S.ESTABLISHED)
    r().bye()
    assert net.drive(lambda: r() is None or r().state == S.TERMINATED)
    assert net.drive(lambda: bob.stats()["sessions"] == 0)


def test_stale_handles_raise(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    inv, bob_s = call(net, alice, bob)
    inv.bye()
    assert net.drive(lambda: bob_s.state == S.TERMINATED and inv.state == S.TERMINATED)
    for f in (inv.bye, inv.invite, inv.cancel, bob_s.bye, bob_s.accept,
              bob_s.progress, bob_s.reject,
              lambda: inv.refer("sip:carol@127.0.0.1")):
        with pytest.raises(sr.Error) as e:
            f()
        assert e.value.code in (sr.ErrorCode.ECLOSED, sr.ErrorCode.ESTATE)
    # read-only properties still answer
    assert inv.call_id and bob_s.request.method == "INVITE"
    inv.on_state = lambda st: 1 / 0  # never called: ended
    assert net.drive(lambda: True)


def test_close_with_live_calls(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    inv, bob_s = call(net, alice, bob)
    ringing, bob_r = call(net, alice, bob, accept=False)
    fired = []
    for s in (inv, bob_s, ringing, bob_r):
        s.on_state = fired.append
    alice.close()
    alice.close()  # twice is fine
    assert fired == []  # close fires no callback
    assert alice.closed and inv.ua is None
    assert inv.state == S.TERMINATED and ringing.state == S.TERMINATED
    for f in (inv.bye, ringing.cancel, lambda: alice.make_inviter("sip:x@127.0.0.1"),
              lambda: alice.run_once(0), lambda: alice.run(0), alice.address):
        with pytest.raises(sr.Error) as e:
            f()
        assert e.value.code == sr.ErrorCode.ECLOSED
    assert alice.fileno() == -1 and alice.next_timeout() is None
    # Bob's side still works: he ends his calls himself (Alice is gone:
    # his BYE will time out, his reject will not be ACKed)
    bob_s.bye()
    bob_r.reject()
    assert bob_s.state == S.TERMINATING and bob_r.state == S.TERMINATED


def test_close_inside_callback(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    got = []

    def on_invite(inv):
        got.append(inv)
        inv.on_state = lambda st: 1 / 0  # must never run: the UA closes
        bob.close()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    assert net.drive(lambda: got)
    assert bob.closed
    with pytest.raises(sr.Error):
        got[0].accept()
    inv.cancel()
    alice.close()


@pytest.mark.parametrize("where", ["on_invite", "hook"])
def test_close_inside_callback_over_tcp(net, where):
    # The loop turn reading the TCP connection goes on after the callback:
    # under ASan this found it using the connection close had freed.
    alice, bob = net.ua("alice"), net.ua("bob")
    if where == "on_invite":
        bob.on_invite = lambda inv: bob.close()
    else:
        bob.on_invite = lambda inv: 1 / 0  # never: closed before routing
        bob.message_hook = lambda out, *a: bool(not out and bob.close())
    inv = alice.make_inviter(bob.contact_uri("bob", "tcp"))
    inv.invite()
    assert net.drive(lambda: bob.closed)
    assert bob.stats()["connections"] == 0
    with pytest.raises(sr.Error):
        bob.run_once(0)
    alice.close()


def test_close_then_raise_in_same_callback(net):
    alice, bob = net.ua("alice"), net.ua("bob")

    def on_invite(inv):
        bob.close()
        raise RuntimeError("after close")

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    with pytest.raises(RuntimeError, match="after close"):
        net.drive(lambda: False)


def test_dropping_the_user_agent_closes_it():
    n = Net()
    alice, bob = n.ua("alice"), n.ua("bob")
    bob.on_invite = lambda inv: inv.accept()
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_state = lambda st: None
    inv.invite()
    assert n.drive(lambda: inv.state == S.ESTABLISHED)
    wa = weakref.ref(alice)
    n.uas.remove(alice)
    del alice
    gc.collect()
    assert wa() is None  # sessions do not keep their UA alive...
    assert inv.ua is None and inv.state == S.TERMINATED  # ...it closed them
    with pytest.raises(sr.Error) as e:
        inv.bye()
    assert e.value.code == sr.ErrorCode.ECLOSED
    n.close()
    inv = bob = e = None  # (e's traceback holds frames that hold inv)
    gc.collect()
    assert live() == {"sessions": 0, "referrals": 0, "referrers": 0}
    assert sr.sipreferral_core.sr_py_handler_counts() == [0, 0]


def test_views_keep_their_parent(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    inv, bob_s = call(net, alice, bob)
    req = bob_s.request
    inv.bye()
    assert net.drive(lambda: bob_s.state == S.TERMINATED)
    bob_s = None
    net.close()
    gc.collect()
    # the Invitation is gone from our hands, its request view is still valid
    assert req.method == "INVITE" and "INVITE" in str(req)
    assert req.header("Call-ID") == inv.call_id
    assert req.header("X-None") is None and req.headers("X-None") == []
    req = inv = None


def test_many_calls_with_random_drops(net):
    import random
    rnd = random.Random(4)
    alice, bob = net.ua("alice"), net.ua("bob")
    kept = []
    answered = set()

    def on_invite(inv):
        k = rnd.random()
        if k < 0.3:
            inv.reject(486)
        elif k < 0.6:
            inv.accept()
        else:
            inv.progress()
        if rnd.random() < 0.5:
            gc.collect()

    bob.on_invite = on_invite
    for i in range(30):
        inv = alice.make_inviter(bob.contact_uri("bob", "tcp" if i % 2 else "udp"))
        inv.on_response = lambda code, reason, i=i: code >= 180 and answered.add(i)
        inv.invite()
        if rnd.random() < 0.5:
            kept.append(inv)
        del inv  # the others live on through their handlers only
        if rnd.random() < 0.3:
            gc.collect()
    assert net.drive(lambda: len(answered) == 30)
    for c in kept[::2]:
        if c.state in (S.ESTABLISHING, S.ESTABLISHED):
            c.bye()
    gc.collect()
    # the rest is left to close()
    alice.close()
    bob.close()
    assert all(c.state == S.TERMINATED for c in kept)
    kept.clear()


def test_interpreter_exit_with_live_objects(tmp_path):
    script = tmp_path / "exit.py"
    script.write_text(textwrap.dedent("""
        import sipreferral as sr
        a = sr.UserAgent("sip:a@127.0.0.1", t1_ms=50)
        b = sr.UserAgent("sip:b@127.0.0.1", t1_ms=50)
        b.on_invite = lambda inv: inv.accept()
        s = a.make_inviter(b.contact_uri("b"))
        s.on_state = lambda st: None
        s.invite()
        a.run(5, until=lambda: b.run_once(0) >= 0 and s.state == 2)
        assert s.state == 2
        keep = (a, b, s)  # exit with a live call and open user agents
        print("ok")
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, timeout=60, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_inviters_never_invited_go_when_dropped(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    base = live()["sessions"]
    handlers = sr.sipreferral_core.sr_py_handler_counts()  # the UAs' own
    for _ in range(20):
        inv = alice.make_inviter(bob.contact_uri("bob"))
        inv.on_state = lambda st: None  # a callback does not pin it
    inv = None
    gc.collect()
    assert live()["sessions"] == base  # while the UA is still open
    assert sr.sipreferral_core.sr_py_handler_counts() == handlers


def test_invite_pins_the_inviter_until_terminated(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    bob.on_invite = lambda i: i.accept()
    states = []
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_state = states.append
    inv.invite()
    ref = weakref.ref(inv)
    inv = None
    gc.collect()
    assert ref() is not None
    assert net.drive(lambda: S.ESTABLISHED in states)
    ref().bye()
    assert net.drive(lambda: S.TERMINATED in states)
    gc.collect()
    assert ref() is None


def test_run_once_reentered_from_callbacks(net):
    alice, bob = net.ua("alice"), net.ua("bob")

    def on_invite(inv):
        bob.run_once(0.01)  # nested turns of both loops
        alice.run_once(0.01)
        inv.accept()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_state = lambda st: (alice.run_once(0), bob.run_once(0))
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)
