"""Python memory stays flat over many transfers in one process: the
wrappers, registries and callbacks that the C natives
(bindings/python_natives.i) hold and release leave nothing behind per
call. The live-object check after every test covers the C objects; this
counts the interpreter's own blocks, which a reference kept too many in C
would leak without any C object staying alive."""

from __future__ import annotations

import gc
import sys

from sipreferral import SessionState as S


def test_memory_flat_over_transfers(net):
    alice, bob, carol = net.ua("alice"), net.ua("bob"), net.ua("carol")
    bob_uri, carol_uri = bob.contact_uri("bob"), carol.contact_uri("carol")
    ended = []
    at_carol = []

    def on_state(st):
        if st == S.TERMINATED:
            ended.append(1)

    def follow(r):
        r.accept()
        out = r.make_inviter()
        out.on_state = on_state
        out.invite()

    def referee(inv):  # Bob: answers, accepts a REFER and follows it
        inv.on_refer = follow
        inv.on_state = on_state
        inv.progress()
        inv.accept()

    def target(inv):  # Carol: answers
        inv.on_state = on_state
        at_carol.append(inv)
        inv.accept()

    bob.on_invite, carol.on_invite = referee, target

    def transfers(n: int) -> None:
        for _ in range(n):
            ended.clear()
            closed = []
            s = alice.make_inviter(bob_uri)
            s.invite()
            assert net.drive(lambda: s.state == S.ESTABLISHED)
            s.refer(carol_uri, on_closed=lambda: closed.append(1))
            assert net.drive(lambda: closed and at_carol
                             and at_carol[0].state == S.ESTABLISHED)
            s.bye()
            at_carol.pop().bye()
            # Bob's two calls and Carol's one
            assert net.drive(lambda: len(ended) == 3 and s.state == S.TERMINATED)
            del s

    transfers(20)  # warm-up: caches, interned strings, free lists
    gc.collect()
    before = sys.getallocatedblocks()
    transfers(200)
    gc.collect()
    grown = sys.getallocatedblocks() - before
    # One object kept per transfer would be 200 blocks or more.
    assert grown < 100, f"{grown} blocks more after 200 transfers"
    bob.on_invite = carol.on_invite = None
