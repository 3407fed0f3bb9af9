"""The loop's wait: run_once blocks in one system call with the GIL
released (another thread runs Python meanwhile), a signal interrupts it
(KeyboardInterrupt comes out of run_once), and a signal wake-up descriptor
watched by the UA ends it even when the signal came just before."""

from __future__ import annotations

import gc
import signal
import socket
import threading
import time
import weakref

import pytest

import sipreferral as sr
from sipreferral import SessionState as S

from conftest import LIMIT


# poll, select, epoll_wait, pselect6, ppoll, epoll_pwait, epoll_pwait2
_WAIT_SYSCALLS_X86_64 = ("7", "23", "232", "270", "271", "281", "441")


def _waiting(tid: int) -> bool:
    """Whether thread ``tid`` of this process sleeps in a poll-like wait."""
    try:
        with open(f"/proc/self/task/{tid}/wchan") as f:
            wchan = f.read()
        with open(f"/proc/self/task/{tid}/syscall") as f:
            nr = f.read().split()[0]
    except OSError:
        return False
    # by name where the kernel tells it, else by number (x86-64)
    return "poll" in wchan or "select" in wchan or nr in _WAIT_SYSCALLS_X86_64


def _until_waiting(tid: int, end: float) -> bool:
    while time.monotonic() < end:
        if _waiting(tid):
            return True
        time.sleep(0)  # yield: the other thread must get there
    return False


def test_another_thread_runs_python_while_one_waits(net):
    alice = net.ua("alice")
    host, port = alice.address("udp")
    rc = []
    t = threading.Thread(target=lambda: rc.append(alice.run_once(LIMIT)))
    t.start()
    end = time.monotonic() + LIMIT
    # This loop is Python: it runs only if the waiting thread let go of
    # the GIL. Then a datagram ends the wait, long before its timeout.
    blocked = _until_waiting(t.native_id, end)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\r\n\r\n", (host, port))  # a keep-alive: nothing to answer
    t.join()
    assert blocked
    assert rc and rc[0] >= 1  # woken by the datagram, not by the timeout


def test_signal_interrupts_a_blocking_run_once(net):
    alice = net.ua("alice")
    main_tid, main = threading.get_native_id(), threading.get_ident()
    end = time.monotonic() + LIMIT
    sent = []

    def interrupt():
        if _until_waiting(main_tid, end):
            sent.append(1)
            signal.pthread_kill(main, signal.SIGINT)

    # Python's own handler, whatever this process inherited: started in
    # the background by a shell without job control, it ignores SIGINT.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            while time.monotonic() < end:
                alice.run_once(max(end - time.monotonic(), 0))
    finally:
        t.join()
        signal.signal(signal.SIGINT, old)
    assert sent
    assert time.monotonic() < end  # the wait ended by the signal
    assert alice.run_once(0) == 0  # and the UA goes on


def test_wakeup_fd_ends_the_wait(net):
    alice = net.ua("alice")
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    got = []
    old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    old_handler = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        alice._watch_wakeup(r.fileno())
        # The signal lands before the wait (its handler runs at once); its
        # byte in the wake-up socket still ends the wait, and is read.
        signal.raise_signal(signal.SIGUSR1)
        assert got == [signal.SIGUSR1]
        assert alice.run_once(LIMIT) == 1
        with pytest.raises(BlockingIOError):
            r.recv(1)
        assert alice.run_once(0) == 0
        with pytest.raises(sr.Error) as e:
            alice._watch_wakeup(r.fileno())  # watched already
        assert e.value.code == sr.ErrorCode.EINVAL
        alice._unwatch_wakeup(r.fileno())
        w.send(b"x")
        assert alice.run_once(0) == 0  # no longer watched
    finally:
        signal.signal(signal.SIGUSR1, old_handler)
        signal.set_wakeup_fd(old_fd)
        r.close()
        w.close()


def test_closed_wakeup_fd_is_dropped_not_spun_on(net):
    alice = net.ua("alice")
    r, w = socket.socketpair()
    r.setblocking(False)
    try:
        alice._watch_wakeup(r.fileno())
        w.close()  # end of file: readable for ever
        assert alice.run_once(LIMIT) == 1
        assert alice.run_once(0) == 0  # dropped, not ready again
        with pytest.raises(sr.Error) as e:
            alice._unwatch_wakeup(r.fileno())
        assert e.value.code == sr.ErrorCode.EINVAL
    finally:
        r.close()


def test_wrappers_go_without_the_cycle_collector(net):
    """A call's wrappers are freed when the call ends and nothing else
    holds them: the handlers' hold on them makes no reference cycle."""
    alice, bob = net.ua("alice"), net.ua("bob")
    got = []

    def on_invite(inv):
        got.append(weakref.ref(inv))
        inv.accept()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    states = []
    inv.on_state = states.append
    was = gc.isenabled()
    gc.disable()
    try:
        inv.invite()
        assert net.drive(lambda: inv.state == S.ESTABLISHED)
        inv.bye()
        assert net.drive(lambda: inv.state == S.TERMINATED and got and got[0]() is None)
        ref = weakref.ref(inv)
        inv = None  # the last reference: no collector needed to free it
        assert ref() is None
    finally:
        if was:
            gc.enable()
    assert states[-1] == S.TERMINATED


# ---------------------------------------------------- call_soon_threadsafe

def test_call_soon_threadsafe_wakes_a_wait(net):
    """A call posted from another thread ends the loop thread's wait and
    runs on the loop thread."""
    alice = net.ua("alice")
    ran, rc = [], []
    t = threading.Thread(target=lambda: rc.append(alice.run_once(3 * LIMIT)))
    t.start()
    blocked = _until_waiting(t.native_id, time.monotonic() + LIMIT)
    alice.call_soon_threadsafe(lambda x: ran.append((threading.get_ident(), x)), 7)
    t.join(LIMIT)
    woken = not t.is_alive()
    t.join()
    assert blocked
    assert woken  # long before the wait's 30 s
    assert ran == [(t.ident, 7)] and rc and rc[0] >= 1


def test_call_soon_threadsafe_places_calls_from_another_thread(net):
    """The loop runs in a thread of its own; the main thread places a call
    through it. The INVITE and its retransmission (a timer the posted call
    armed) reach a peer that never answers; a last posted call ends the
    loop."""
    alice = net.ua("alice")
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(LIMIT)
    done, calls = [], []
    loop = threading.Thread(target=lambda: alice.run(timeout=3 * LIMIT,
                                                     until=lambda: done))
    loop.start()
    try:
        def place():
            calls.append(alice.make_inviter(
                "sip:carol@127.0.0.1:%d" % peer.getsockname()[1]))
            calls[0].invite()

        alice.call_soon_threadsafe(place)
        first = peer.recv(65535)
        again = peer.recv(65535)
        assert first.startswith(b"INVITE ") and again == first
        alice.call_soon_threadsafe(done.append, True)
        loop.join(LIMIT)
        assert not loop.is_alive()
    finally:
        done.append(True)
        if loop.is_alive():
            alice.call_soon_threadsafe(lambda: None)
        loop.join()
        peer.close()


def test_call_soon_threadsafe_errors(net):
    """A posted call that raises: its exception comes out of run_once, the
    calls after it run in the next turn. Not callable: TypeError. After
    close: ECLOSED."""
    alice = net.ua("alice")
    ran = []

    def boom():
        raise ValueError("posted")

    alice.call_soon_threadsafe(boom)
    alice.call_soon_threadsafe(ran.append, 2)
    with pytest.raises(ValueError, match="posted"):
        alice.run_once(LIMIT)
    assert ran == []
    assert alice.run_once(LIMIT) == 1 and ran == [2]
    with pytest.raises(TypeError):
        alice.call_soon_threadsafe(3)
    alice.close()
    with pytest.raises(sr.Error) as e:
        alice.call_soon_threadsafe(ran.append, 3)
    assert e.value.code == sr.ErrorCode.ECLOSED


def test_call_soon_threadsafe_under_serve(net):
    """Under serve() the posted call runs on the asyncio loop's thread."""
    import asyncio

    alice = net.ua("alice")
    ran = []

    async def main():
        task = asyncio.ensure_future(alice.serve())
        await asyncio.sleep(0)  # serving: the reader is on
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        def post():
            alice.call_soon_threadsafe(
                lambda: (ran.append(threading.get_ident()),
                         got.set_result(True)))

        threading.Thread(target=post).start()
        await asyncio.wait_for(got, LIMIT)
        alice.close()
        await asyncio.wait_for(task, LIMIT)

    asyncio.run(main())
    assert ran == [threading.get_ident()]
