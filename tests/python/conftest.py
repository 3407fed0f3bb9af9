"""Shared fixtures: user agents on 127.0.0.1 / ::1 port 0, a driver that
runs their loops until a condition holds (bounded, never a fixed sleep),
and a leak check after every test.

The module comes from PYTHONPATH (scripts/test.sh: build/python); set
SR_PY_BUILD to test another build directory's python/. Under the sanitizers
(a build with -DSR_SANITIZE=ON), the interpreter needs the ASan runtime
first:

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
    PYTHONMALLOC=malloc SR_PY_BUILD=build-asan/python \
    /usr/bin/python3 -m pytest -q tests/python

(detect_leaks=0: CPython itself does not free everything at exit; leaks
of ours are caught by the live-object and handler counts checked after
each test. PYTHONMALLOC=malloc lets ASan see Python objects too.)
"""

from __future__ import annotations

import gc
import os
import selectors
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_build = os.environ.get("SR_PY_BUILD")
if _build:
    sys.path.insert(0, str(Path(_build).resolve()))
else:
    try:
        import sipreferral  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT / "build" / "python"))

import sipreferral as sr  # noqa: E402
from sipreferral import sipreferral_core as core  # noqa: E402

LIMIT = 10.0  # seconds: only bounds a broken test


class Net:
    """The user agents of one test and a driver for all of them."""

    def __init__(self) -> None:
        self.uas: list[sr.UserAgent] = []
        self.holders: list = []  # objects with clear(): dropped at close()

    def ua(self, user: str, v6: bool = False, **opts) -> sr.UserAgent:
        host = "[::1]" if v6 else "127.0.0.1"
        opts.setdefault("t1_ms", 50)  # 64*T1 = 3.2 s transaction timeouts
        opts.setdefault("t4_ms", 100)  # non-INVITE transactions linger T4
        ua = sr.UserAgent(f"sip:{user}@{host}",
                          listen=[f"udp:{host}:0", f"tcp:{host}:0"], **opts)
        self.uas.append(ua)
        return ua

    def drive(self, until=None, limit: float = LIMIT, fds=()) -> bool:
        """Runs every open UA until until() is true or limit seconds pass.
        ``fds``: more descriptors whose readiness may change until() (a
        socket, a process's pidfd). Returns whether the condition held."""
        end = time.monotonic() + limit
        sel = selectors.DefaultSelector()
        try:
            while True:
                for ua in self.uas:
                    if not ua.closed:
                        ua.run_once(0)
                if until is not None and until():
                    return True
                now = time.monotonic()
                if now >= end:
                    return False
                wait = end - now
                for key in list(sel.get_map().values()):
                    sel.unregister(key.fileobj)
                for fd in fds:
                    sel.register(fd, selectors.EVENT_READ)
                for ua in self.uas:
                    if ua.closed:
                        continue
                    sel.register(ua.fileno(), selectors.EVENT_READ)
                    t = ua.next_timeout()
                    if t is not None:
                        wait = min(wait, t)
                sel.select(wait)
        finally:
            sel.close()

    def settle(self, limit: float = 0.3) -> None:
        """Runs the loops for a while (lets in-flight messages land); for
        checks that something does NOT happen, which no condition can end."""
        self.drive(None, limit)

    def close(self) -> None:
        for ua in self.uas:
            ua.close()
        self.uas.clear()
        for h in self.holders:
            h.clear()
        self.holders.clear()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def net(request):
    n = Net()
    yield n
    # failures a Party saw inside its callbacks (parties.py), every test
    checks = [(h.name, h.checks) for h in n.holders if getattr(h, "checks", None)]
    n.close()
    unraised = []
    while True:  # callback exceptions the test left unraised
        try:
            core.sr_py_raise_pending(0)
            break
        except BaseException as e:  # noqa: B902
            unraised.append(e)
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        return
    assert unraised == []
    assert checks == []
    gc.collect()
    assert live() == {"sessions": 0, "referrals": 0, "referrers": 0}
    assert core.sr_py_handler_counts() == [0, 0]


def live() -> dict:
    st = sr.global_stats()
    return {k: st[k] for k in ("sessions", "referrals", "referrers")}


def subprocess_env() -> dict:
    """The environment for a child Python that must import this same build."""
    env = os.environ.copy()
    pkg_root = str(Path(sr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Recorder:
    """Collects (name, *args) tuples from callbacks."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def __call__(self, name: str):
        def cb(*args):
            self.events.append((name, *args))
        return cb

    def names(self) -> list[str]:
        return [e[0] for e in self.events]

    def of(self, name: str) -> list[tuple]:
        return [e[1:] for e in self.events if e[0] == name]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()
