"""`pip install .` into a fresh venv works with no package index (the
README's recipe), and the installed package carries out a transfer."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TRANSFER = textwrap.dedent("""
    import sipreferral as sr, time
    assert "site-packages" in sr.__file__, sr.__file__
    S = sr.SessionState
    uas = [sr.UserAgent(f"sip:{n}@127.0.0.1", t1_ms=50) for n in ("alice", "bob", "carol")]
    alice, bob, carol = uas
    calls = []
    def answer(inv):
        calls.append(inv)
        inv.accept()
    bob.on_invite = answer
    carol.on_invite = answer
    def on_refer(referral):
        referral.accept()
        referral.make_inviter().invite()
    a = alice.make_inviter(bob.contact_uri("bob"))
    a.on_refer = on_refer
    a.invite()
    def drive(cond):
        end = time.monotonic() + 10
        while not cond() and time.monotonic() < end:
            for ua in uas:
                ua.run_once(0.005)
        return cond()
    assert drive(lambda: a.state == S.ESTABLISHED and calls)
    notes = []
    calls[0].refer(carol.contact_uri("carol"), on_notify=lambda c, r, s: notes.append(c))
    assert drive(lambda: 200 in notes), notes
    for ua in uas:
        ua.close()
    print("transfer ok", notes)
""")


@pytest.mark.skipif(os.environ.get("SR_PY_SKIP_INSTALL") == "1",
                    reason="SR_PY_SKIP_INSTALL=1")
def test_pip_install_into_fresh_venv(tmp_path):
    if shutil.which("swig") is None:
        pytest.fail("swig is needed (scripts/setup.sh installs it)")
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "setup.py", src)
    for d in ("csrc", "bindings", "python"):
        shutil.copytree(ROOT / d, src / d,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # a plain environment: no sanitizer preload, no PYTHONPATH to our build
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LD_PRELOAD", "PYTHONMALLOC")
           and not k.startswith(("ASAN_", "UBSAN_", "PIP_"))}
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, env=env, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "."],
                         cwd=src, env=env, capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    run = subprocess.run([str(venv / "bin" / "python"), "-c", TRANSFER], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "transfer ok" in run.stdout
