"""User agents driven by asyncio (``await ua.serve()``): fd reader and
timers, coroutine callbacks, exceptions out of serve()."""

from __future__ import annotations

import asyncio

import pytest

import sipreferral as sr
from sipreferral import SessionState as S

LIMIT = 10.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, LIMIT * 2))


async def until(cond, limit=LIMIT):
    """Waits (bounded) for cond() while the loop serves the UAs."""
    async def poll():
        while not cond():
            await asyncio.sleep(0.005)  # yields to the loop; not a sync sleep
    await asyncio.wait_for(poll(), limit)


def test_call_under_asyncio_with_coroutine_callbacks(net):
    alice, bob = net.ua("alice"), net.ua("bob")
    log = []

    async def on_invite(inv):
        log.append("invite")
        inv.progress()
        await asyncio.sleep(0)
        inv.accept()

    async def on_state(st):
        await asyncio.sleep(0)
        log.append(st)

    bob.on_invite = on_invite

    async def main():
        servers = [asyncio.ensure_future(u.serve()) for u in (alice, bob)]
        inv = alice.make_inviter(bob.contact_uri("bob"))
        inv.on_state = on_state
        inv.invite()
        await until(lambda: S.ESTABLISHED in log)
        inv.bye()
        await until(lambda: S.TERMINATED in log)
        alice.close()
        bob.close()
        await asyncio.gather(*servers)  # close() ends serve()
        return inv

    inv = run(main())
    assert log[0] == "invite" or log[0] == S.ESTABLISHING
    assert inv.state == S.TERMINATED


def test_timers_fire_under_asyncio(net):
    # Alice's first INVITE is lost: only her retransmission timer can save
    # the call, and under serve() that timer is an asyncio call_later.
    alice, bob = net.ua("alice"), net.ua("bob")
    bob.on_invite = lambda inv: inv.accept()
    sent = []

    def hook(outgoing, tp, local, remote, data):
        if outgoing and data.startswith(b"INVITE"):
            sent.append(data)
            return len(sent) == 1
        return False

    alice.message_hook = hook

    async def main():
        servers = [asyncio.ensure_future(u.serve()) for u in (alice, bob)]
        inv = alice.make_inviter(bob.contact_uri("bob"))
        inv.invite()
        await until(lambda: inv.state == S.ESTABLISHED)
        inv.bye()
        await until(lambda: inv.state == S.TERMINATED)
        for u in (alice, bob):
            u.close()
        await asyncio.gather(*servers)

    run(main())
    assert len(sent) >= 2


@pytest.mark.parametrize("coroutine", [False, True])
def test_exception_in_callback_comes_out_of_serve(net, coroutine):
    alice, bob = net.ua("alice"), net.ua("bob")

    if coroutine:
        async def on_invite(inv):
            await asyncio.sleep(0)
            inv.reject()
            raise ValueError("async boom")
    else:
        def on_invite(inv):
            inv.reject()
            raise ValueError("async boom")

    bob.on_invite = on_invite

    async def main():
        alice_srv = asyncio.ensure_future(alice.serve())
        inv = alice.make_inviter(bob.contact_uri("bob"))
        inv.invite()
        with pytest.raises(ValueError, match="async boom"):
            await bob.serve()
        # bob can be served again afterwards
        bob_srv = asyncio.ensure_future(bob.serve())
        await until(lambda: inv.state == S.TERMINATED)
        alice.close()
        bob.close()
        await asyncio.gather(alice_srv, bob_srv)

    run(main())


def test_coroutine_callback_needs_asyncio(net):
    alice, bob = net.ua("alice"), net.ua("bob")

    async def on_invite(inv):  # pragma: no cover - never awaited
        inv.accept()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.invite()
    with pytest.raises(TypeError, match="asyncio"):
        net.drive(lambda: False)
    inv.cancel()


def test_serve_misuse(net):
    alice = net.ua("alice")

    async def main():
        srv = asyncio.ensure_future(alice.serve())
        await asyncio.sleep(0)
        with pytest.raises(sr.Error) as e:
            await alice.serve()
        assert e.value.code == sr.ErrorCode.ESTATE
        srv.cancel()  # cancelling serve() leaves the UA open
        with pytest.raises(asyncio.CancelledError):
            await srv
        assert not alice.closed and alice._server is None
        alice.close()
        with pytest.raises(sr.Error) as e:
            await alice.serve()
        assert e.value.code == sr.ErrorCode.ECLOSED

    run(main())


def test_close_from_a_coroutine_callback(net):
    alice, bob = net.ua("alice"), net.ua("bob")

    async def on_invite(inv):
        await asyncio.sleep(0)
        bob.close()

    bob.on_invite = on_invite

    async def main():
        alice_srv = asyncio.ensure_future(alice.serve())
        inv = alice.make_inviter(bob.contact_uri("bob"))
        inv.invite()
        await asyncio.wait_for(bob.serve(), LIMIT)  # returns: bob closed
        inv.cancel()
        alice.close()
        await alice_srv

    run(main())
    assert bob.closed


def test_transfer_under_asyncio(net):
    from parties import Party, Referrer
    alice, bob, carol = (Party(net, n) for n in ("alice", "bob", "carol"))
    decided = []

    async def on_refer(referral):
        await asyncio.sleep(0)  # e.g. ask a policy service first
        referral.accept()
        await asyncio.sleep(0)
        inviter = referral.make_inviter()
        inviter.invite()
        decided.append(inviter)

    async def carol_answers(inv):
        carol.calls.append(inv)
        inv.progress()
        await asyncio.sleep(0)
        inv.accept()

    carol.ua.on_invite = carol_answers
    rr = Referrer()

    async def main():
        servers = [asyncio.ensure_future(p.ua.serve()) for p in (alice, bob, carol)]
        a = alice.ua.make_inviter(bob.ua.contact_uri("bob"))
        a.on_refer = on_refer
        a.invite()
        await until(lambda: a.state == S.ESTABLISHED and bob.calls)
        b = bob.last_call()
        b.refer(carol.ua.contact_uri("carol"), bye_on_success=True, **rr.callbacks())
        await until(lambda: rr.closed and a.state == S.TERMINATED)
        assert decided and decided[0].state == S.ESTABLISHED
        assert carol.last_call().state == S.ESTABLISHED
        decided[0].bye()
        await until(lambda: carol.last_call().state == S.TERMINATED)
        for p in (alice, bob, carol):
            p.ua.close()
        await asyncio.gather(*servers)

    run(main())
    assert rr.codes() == [100, 180, 200]
    assert rr.notifies[-1][2] == "terminated;reason=noresource"
    decided.clear()


def test_every_callback_may_be_a_coroutine(net):
    # The binding calls on_response, on_bye and a referrer's callbacks
    # itself; a coroutine any of them returns still becomes a task.
    from parties import Party
    alice, bob, carol = (Party(net, n) for n in ("alice", "bob", "carol"))
    log = []

    def recorder(name):
        async def cb(*args):
            await asyncio.sleep(0)
            log.append((name,) + args)
        return cb

    async def main():
        servers = [asyncio.ensure_future(p.ua.serve()) for p in (alice, bob, carol)]
        a = alice.ua.make_inviter(bob.ua.contact_uri("bob"))
        a.on_response = recorder("response")
        a.on_bye = recorder("bye")
        a.invite()
        await until(lambda: a.state == S.ESTABLISHED and bob.calls)
        b = bob.last_call()
        ref = b.refer(carol.ua.contact_uri("carol"), on_notify=recorder("notify"),
                      on_accept=recorder("accept"), on_closed=recorder("closed"))
        await until(lambda: ("closed",) in log)
        b.bye()
        await until(lambda: ("bye",) in log)
        assert ref.closed
        for p in (alice, bob, carol):
            p.ua.close()
        await asyncio.gather(*servers)

    run(main())
    assert ("response", 200, "OK") in log
    assert [e[0] for e in log if e[0] in ("accept", "closed")] == ["accept", "closed"]
    assert [e[1] for e in log if e[0] == "notify"] == [100, 180, 200]
