"""Inviter.invite() and the wrapper's lifetime: the handler holds an
Inviter strongly only once its INVITE went out (its callbacks will fire);
one whose INVITE could not be sent goes with its last reference."""

from __future__ import annotations

import gc
import weakref

import pytest

import sipreferral as sr
from sipreferral import SessionState as S


def test_unsent_invite_does_not_keep_the_wrapper(net):
    # UDP only (the net's UAs listen on TCP too): a TCP target fails at once
    ua = sr.UserAgent("sip:alice@127.0.0.1", listen=["udp:127.0.0.1:0"])
    net.uas.append(ua)
    inv = ua.make_inviter("sip:bob@127.0.0.1:9;transport=tcp")
    with pytest.raises(sr.Error) as e:
        inv.invite()
    assert e.value.code == sr.ErrorCode.ETRANSPORT
    assert inv.state is S.INITIAL
    gone = weakref.ref(inv)
    del inv, e
    gc.collect()
    assert gone() is None
    assert ua.stats()["sessions"] == 0


def test_sent_invite_keeps_the_wrapper(net, rec):
    alice, bob = net.ua("alice"), net.ua("bob")
    inv = alice.make_inviter(bob.contact_uri("bob"))
    inv.on_state = rec("state")
    inv.invite()
    kept = weakref.ref(inv)
    del inv
    gc.collect()
    assert kept() is not None  # its callbacks are still to come
    assert net.drive(lambda: (S.TERMINATED,) in rec.of("state"))  # bob: 480
