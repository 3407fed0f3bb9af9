"""Session._own_callbacks, the agent's way of setting a session's
callbacks: its own callables are told only of the events they asked for,
while a callback a user sets afterwards sees every event."""

from __future__ import annotations

import os
import threading

import pytest

import sipreferral as sr
from sipreferral import SessionState as S

TERMINATED_ONLY = 1 << int(S.TERMINATED)


def place(net, rec):
    """Alice calls Bob, who answers 180 then 200: (alice, bob, inviter)."""
    alice, bob = net.ua("alice"), net.ua("bob")

    def on_invite(inv):
        inv.progress()
        inv.accept()

    bob.on_invite = on_invite
    inv = alice.make_inviter(bob.contact_uri("bob"))
    return alice, bob, inv


def hang_up(net, inv):
    inv.bye()
    assert net.drive(lambda: inv.state == S.TERMINATED)


def test_own_callbacks_get_only_what_they_asked_for(net, rec):
    alice, bob, inv = place(net, rec)
    inv._own_callbacks(rec("state"), TERMINATED_ONLY, rec("response"), 300, None)
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    hang_up(net, inv)
    assert rec.of("state") == [(S.TERMINATED,)]
    assert rec.of("response") == []  # 180 and 200 are below 300


def test_a_users_callbacks_set_later_see_everything(net, rec):
    alice, bob, inv = place(net, rec)
    inv._own_callbacks(rec("own_state"), TERMINATED_ONLY, rec("own_response"), 300, None)
    inv.on_state = rec("state")
    inv.on_response = rec("response")
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    hang_up(net, inv)
    assert rec.of("own_state") == [] and rec.of("own_response") == []
    assert rec.of("state") == [(S.ESTABLISHING,), (S.ESTABLISHED,), (S.TERMINATING,),
                               (S.TERMINATED,)]
    assert [code for code, _ in rec.of("response")] == [180, 200]


def test_own_callbacks_with_all_states_and_codes(net, rec):
    alice, bob, inv = place(net, rec)
    inv._own_callbacks(rec("state"), -1, rec("response"), 0, None)
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    hang_up(net, inv)
    assert S.ESTABLISHED in [st for st, in rec.of("state")]
    assert [code for code, _ in rec.of("response")] == [180, 200]


def test_own_on_refer_sets_the_handler(net, rec):
    alice, bob, inv = place(net, rec)
    inv._own_callbacks(rec("state"), TERMINATED_ONLY, rec("response"), 300, rec("refer"))
    assert inv.on_refer is not None
    inv._own_callbacks(rec("state"), TERMINATED_ONLY, rec("response"), 300, None)
    assert inv.on_refer is None
    assert isinstance(inv, sr.Inviter)


class Item:
    """What the agent's Call is to the ``ended`` list: it has ``ended``."""
    __slots__ = ("ended",)

    def __init__(self, ended: bool = False) -> None:
        self.ended = ended


def test_ended_list_is_kept_in_c(net, rec):
    """``ended`` = (list, item, batch): when the session ends, item joins
    the list once, marked ended, without a Python callback; on_state was
    not asked for TERMINATED and hears nothing of it."""
    alice, bob, inv = place(net, rec)
    ended: list = []
    item = Item()
    inv._own_callbacks(rec("state"), 0, rec("response"), 300, None, (ended, item, 8))
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    assert ended == [] and not item.ended
    hang_up(net, inv)
    assert ended == [item] and item.ended is True
    assert rec.of("state") == []


def test_ended_item_already_ended_is_not_added_again(net, rec):
    alice, bob, inv = place(net, rec)
    ended: list = []
    item = Item(ended=True)  # the agent counted it itself
    inv._own_callbacks(None, -1, None, 0, None, (ended, item, 8))
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    hang_up(net, inv)
    assert ended == []


def test_ended_batch_stops_the_quiet_loop(net, rec):
    """With a batch of 1, the loop that turns in C until a break
    (UserAgent._run_until_break) returns once the call has ended. A guard
    thread ends the wait through a wake-up descriptor after 10 s, so a
    missing break fails instead of hanging."""
    ua = net.ua("solo")  # calls itself: one loop runs both sides
    ua.on_invite = lambda inv: inv.accept()
    inv = ua.make_inviter(ua.contact_uri("solo"))
    ended: list = []
    inv._own_callbacks(None, -1, None, 0, None, (ended, Item(), 1))
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    r, w = os.pipe()
    os.set_blocking(r, False)
    ua._watch_wakeup(r)
    fired = []
    guard = threading.Timer(10, lambda: (fired.append(1), os.write(w, b"x")))
    guard.start()
    try:
        inv.bye()
        ua._run_until_break()
    finally:
        guard.cancel()
        guard.join()
        ua._unwatch_wakeup(r)
        os.close(r)
        os.close(w)
    assert not fired and len(ended) == 1 and inv.state == S.TERMINATED


def test_ended_must_be_a_list_an_item_and_a_batch(net, rec):
    alice, bob, inv = place(net, rec)
    for bad in ((), ([], Item()), ((), Item(), 8), ([], Item(), "8")):
        with pytest.raises(TypeError, match="ended"):
            inv._own_callbacks(None, -1, None, 0, None, bad)
    for bad in ((list(), Item(), 0), (list(), Item(), -3)):
        with pytest.raises(ValueError, match="batch"):
            inv._own_callbacks(None, -1, None, 0, None, bad)


def test_ended_none_drops_the_list(net, rec):
    alice, bob, inv = place(net, rec)
    ended: list = []
    inv._own_callbacks(None, -1, None, 0, None, (ended, Item(), 8))
    inv._own_callbacks(None, -1, None, 0, None, None)
    inv.invite()
    assert net.drive(lambda: inv.state == S.ESTABLISHED)
    hang_up(net, inv)
    assert ended == []
