"""Session._own_callbacks, the agent's way of setting a session's
callbacks: its own callables are told only of the events they asked for,
while a callback a user sets afterwards sees every event."""

from __future__ import annotations

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
