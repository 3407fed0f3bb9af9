"""Exceptions raised in callbacks come out of run_once()/run() (or of the
call that fired the callback), are never printed and swallowed, and stop
the loop after the event that raised."""

from __future__ import annotations

import threading

import pytest

from sipreferral import SessionState as S


class Boom(Exception):
    pass


def test_exception_in_on_invite_comes_out_of_run_once(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    calls = []

    def on_invite(inv):
        calls.append(inv)
        raise Boom("from on_invite")

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    with pytest.raises(Boom, match="from on_invite") as e:
        net.drive(lambda: False)
    # the traceback reaches into the callback
    assert any(f.name == "on_invite" for f in e.traceback)
    assert len(calls) == 1
    # the loop goes on afterwards; the undecided call can still be answered
    calls[0].accept()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_exception_in_on_state_comes_out_of_run(net):
    alice = net.ua("alice")  # calls itself: run() drives both sides
    alice.on_invite = lambda i: i.accept()
    inv = alice.make_inviter(alice.contact_uri("alice"))

    def on_state(st):
        if st == S.ESTABLISHED:
            raise Boom(st)

    inv.on_state = on_state
    inv.invite()
    with pytest.raises(Boom):
        alice.run(timeout=10)
    assert inv.state == S.ESTABLISHED
    inv.bye()
    assert alice.run(timeout=10, until=lambda: inv.state == S.TERMINATED)


def test_exception_stops_loop_after_that_event(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    bob.on_invite = lambda i: i.accept()
    inv = alice.make_inviter(bob.contact_uri("bob"))
    seen = []

    def on_state(st):
        seen.append(st)
        if st == S.ESTABLISHED:
            raise Boom("established")

    inv.on_state = on_state
    inv.invite()
    with pytest.raises(Boom):
        net.drive(lambda: False)
    assert seen[-1] == S.ESTABLISHED
    assert inv.state == S.ESTABLISHED
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)
    assert seen[-1] == S.TERMINATED


def test_exception_in_synchronous_callback_comes_out_of_the_call(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    inv = alice.make_inviter(bob.contact_uri("bob"))

    def on_state(st):
        raise Boom(st)

    inv.on_state = on_state  # invite() moves to ESTABLISHING at once
    with pytest.raises(Boom):
        inv.invite()
    assert inv.state == S.ESTABLISHING  # the INVITE went out all the same
    inv.on_state = None
    # nothing stale is left for the loop to raise
    assert alice.run_once(0) >= 0
    inv.cancel()
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_first_exception_wins_and_is_raised_once(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    bob.on_invite = lambda i: i.accept()
    inv = alice.make_inviter(bob.contact_uri("bob"))
    n = []

    def bad(st):
        n.append(st)
        raise Boom(len(n))

    inv.on_state = bad
    with pytest.raises(Boom, match="1"):
        inv.invite()
    with pytest.raises(Boom, match="2"):
        net.drive(lambda: inv.state == S.ESTABLISHED)
    inv.on_state = None
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_base_exceptions_too(net):
    alice, bob = net.ua("alice"), net.ua("bob")

    def on_invite(inv):
        inv.reject()
        raise KeyboardInterrupt

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    with pytest.raises(KeyboardInterrupt):
        net.drive(lambda: False)
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_exception_in_message_hook(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    n = []

    def hook(outgoing, tp, local, remote, data):
        n.append(data)
        raise Boom(len(n))

    bob.message_hook = hook
    bob.on_invite = lambda i: i.accept()
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    with pytest.raises(Boom, match="^1$"):
        net.drive(lambda: False)
    bob.message_hook = None
    # every message the hook saw raised once: each exception comes out, in
    # order, from the next calls into the library (none is swallowed)
    got = []
    while len(got) < len(n) - 1:
        try:
            net.drive(lambda: True)
        except Boom as e:
            got.append(int(str(e)))
    assert got == list(range(2, len(n) + 1))
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_gil_is_released_while_waiting(net):
    alice = net.ua("alice")
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=spin)
    t.start()
    try:
        # blocks in the C loop for up to 0.3 s with nothing to do; the other
        # thread must run meanwhile (it could not if the GIL were held)
        alice.run_once(0.3)
    finally:
        stop.set()
        t.join()
    assert len(ticks) > 1


def test_callbacks_run_on_the_driving_thread(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    threads = set()

    def on_invite(inv):
        threads.add(threading.get_ident())
        inv.accept()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_state = lambda st: threads.add(threading.get_ident())
    inv.invite()

    def worker():
        net.drive(lambda: inv.state == S.ESTABLISHED)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert inv.state == S.ESTABLISHED
    assert threads == {threading.get_ident(), t.ident}  # invite() here, the rest there
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)
