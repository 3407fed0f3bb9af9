"""``python3 -m sipreferral agent``, the Python twin of sipreferral-agent:
each flag, driven by in-process user agents (Bob refers the agent to
Carol), over a real subprocess."""

from __future__ import annotations

import os
import re
import select
import socket
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

import sipreferral as sr
from sipreferral import SessionState as S

from conftest import subprocess_env
from parties import Party, RawUDP, Referrer

FLAGS = ["--listen", "--uri", "--username", "--password", "--outbound-proxy", "--t1",
         "--port-file",
         "--max-connections",
         "--on-invite", "--on-refer", "--allow-out-of-dialog-refer", "--allow-scheme",
         "--script", "--call", "--bye-after", "--max-calls", "--duration", "--ladder",
         "--pcap", "--stats", "--verbose", "--log-level", "--help", "--version"]


def agent_cmd(*args):
    return [sys.executable, "-m", "sipreferral", "agent", *args]


def run_quick(*args):
    return subprocess.run(agent_cmd(*args), capture_output=True, text=True,
                          timeout=60, env=subprocess_env())


class Agent:
    """The agent as a subprocess on 127.0.0.1 port 0 (its ports come back
    through a FIFO), its stdout and stderr in files."""

    def __init__(self, net, tmp_path, *args):
        self.net = net
        self.tmp = tmp_path
        fifo = tmp_path / "ports"
        os.mkfifo(fifo)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.out = open(tmp_path / "stdout", "w+")
        self.err = open(tmp_path / "stderr", "w+")
        self.proc = subprocess.Popen(
            agent_cmd("--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0",
                      "--t1", "50", "--port-file", str(fifo), *args),
            stdout=self.out, stderr=self.err, env=subprocess_env())
        try:
            ready, _, _ = select.select([rfd], [], [], 30)
            line = os.read(rfd, 4096).decode() if ready else ""
        finally:
            os.close(rfd)
        m = re.match(r"udp:127\.0\.0\.1:(\d+) tcp:127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            pytest.fail(f"no port line from the agent: {line!r} {self.stderr()}")
        self.udp, self.tcp = int(m.group(1)), int(m.group(2))

    def uri(self, transport="udp"):
        if transport == "tcp":
            return f"sip:agent@127.0.0.1:{self.tcp};transport=tcp"
        return f"sip:agent@127.0.0.1:{self.udp}"

    def stop(self, sig=signal.SIGTERM):
        """Signals the agent and drives our UAs until it exits; its status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait()

    def wait(self, limit=20):
        """Drives our UAs until the agent exits (its pidfd wakes us up)."""
        pidfd = os.pidfd_open(self.proc.pid)
        try:
            self.net.drive(lambda: self.proc.poll() is not None, limit, fds=[pidfd])
        finally:
            os.close(pidfd)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the agent did not exit")
        return self.proc.returncode

    def stdout(self):
        self.out.seek(0)
        return self.out.read()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.close()


@pytest.fixture
def agent(net, tmp_path):
    made = []

    def start(*args):
        a = Agent(net, tmp_path, *args)
        made.append(a)
        return a
    yield start
    for a in made:
        a.close()


def transfer(net, ag, bob, carol, transport="udp", **refer_kw):
    """Bob calls the agent, then refers it to Carol. Returns Bob's call
    and the recorder of his referrer."""
    b = bob.ua.make_inviter(ag.uri(transport))
    bob.calls.append(b)
    b.invite()
    assert net.drive(lambda: b.state == S.ESTABLISHED), ag.stderr()
    rr = Referrer()
    b.refer(carol.ua.contact_uri("carol", transport), **refer_kw, **rr.callbacks())
    return b, rr


# ------------------------------------------------------------ command line


def test_help_documents_every_flag_and_version():
    out = run_quick("--help")
    assert out.returncode == 0
    for flag in FLAGS:
        assert flag in out.stdout, flag
    v = run_quick("--version")
    assert v.returncode == 0 and sr.__version__ in v.stdout
    assert run_quick("-V").stdout == v.stdout


@pytest.mark.parametrize("args", [
    ["--bogus"], ["--on-invite", "maybe"], ["--on-refer", "reject:200"],
    ["--listen", "sctp:1.2.3.4:5"], ["--uri", "http://x"], ["--max-calls", "0"],
    ["--duration", "-1"], ["--t1", "x"], ["--log-level", "loud"],
    ["--max-connections", "0"],
    ["--username", "u"], ["--allow-scheme", "no scheme"], ["extra"],
    ["--listen", "udp:127.0.0.1:99999"],
    ["--listen", "udp:127.0.0.1:0", "--outbound-proxy", "sips:127.0.0.1"],
    ["--listen", "udp:127.0.0.1:0", "--call", "sip:carol@pbx.example.com"],
    ["--listen", "udp:127.0.0.1:0", "--call", "sips:carol@127.0.0.1"],
])
def test_bad_command_line_is_one_line_and_status_2(args):
    out = run_quick(*args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sipreferral-agent: "), out.stderr


def test_call_to_sips_says_tls():
    out = run_quick("--listen", "udp:127.0.0.1:0", "--call", "<sips:carol@127.0.0.1>")
    assert out.returncode == 2 and "sips needs TLS" in out.stderr, out.stderr


def test_unbindable_address_is_one_line_and_status_1():
    out = run_quick("--listen", "udp:192.0.2.1:5060")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "192.0.2.1" in lines[0], out.stderr


def _c_agent():
    # build/python/sipreferral -> build/sipreferral-agent
    from pathlib import Path
    exe = Path(sr.__file__).resolve().parents[2] / "sipreferral-agent"
    return [str(exe)] if exe.exists() else None


@pytest.mark.parametrize("kind", ["python", "c"])
def test_port_file_names_every_listener(tmp_path, kind):
    """IPv4 and IPv6 listeners of both transports: each bound port is in
    the port file (a second listener of a transport used to be 0)."""
    base = agent_cmd() if kind == "python" else _c_agent()
    if base is None:
        pytest.skip("no C agent next to this build")
    pf = tmp_path / "ports"
    out = subprocess.run(
        [*base, "--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0",
         "--listen", "udp:[::1]:0", "--listen", "tcp:[::1]:0",
         "--port-file", str(pf), "--duration", "0.2"],
        capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    specs = pf.read_text().split()
    assert [s.rsplit(":", 1)[0] for s in specs] == [
        "udp:127.0.0.1", "tcp:127.0.0.1", "udp:[::1]", "tcp:[::1]"]
    ports = [int(s.rsplit(":", 1)[1]) for s in specs]
    assert all(p > 0 for p in ports), specs
    assert ports[0] == ports[1] and ports[2] == ports[3]  # UDP and TCP share


def test_unresolvable_outbound_proxy_is_one_line_and_status_1():
    out = run_quick("--listen", "udp:127.0.0.1:0", "--outbound-proxy",
                    "sip:no-such-host.invalid")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-host.invalid" in lines[0], out.stderr


def test_module_without_a_command():
    out = subprocess.run([sys.executable, "-m", "sipreferral"], capture_output=True,
                         text=True, timeout=60, env=subprocess_env())
    assert out.returncode == 2 and "agent" in out.stderr


# ------------------------------------------------------------ transfers


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_blind_transfer_with_ladder_and_pcap(net, agent, tmp_path, transport):
    bob, carol = Party(net, "bob"), Party(net, "carol")
    pcap = tmp_path / "agent.pcap"
    ag = agent("--ladder", "--pcap", str(pcap), "--stats")
    b, rr = transfer(net, ag, bob, carol, transport)
    assert net.drive(lambda: rr.closed), ag.stderr()
    assert rr.accepts[0][0] == 202
    assert rr.codes() == [100, 180, 200]
    assert rr.notifies[-1][2] == "terminated;reason=noresource"
    inv = carol.invites[-1]
    assert "Referred-By: <sip:bob@127.0.0.1>" in inv
    c = carol.last_call()
    assert c.state == S.ESTABLISHED and b.state == S.ESTABLISHED
    assert ag.stop() == 0, ag.stderr()
    # clean shutdown: the agent hung up both calls
    assert net.drive(lambda: b.state == S.TERMINATED and c.state == S.TERMINATED)
    out = ag.stdout()
    assert re.search(r"-> 127\.0\.0\.1:\d+  %s  REFER sip:" % transport.upper(), out), out
    assert "[SIP/2.0 200 OK]  Subscription-State: terminated;reason=noresource" in out
    assert "INVITE sip:carol@" in out and "Referred-By: <sip:bob@127.0.0.1>" in out
    assert re.search(r"stats process: sessions=0 referrals=0 referrers=0", out), out
    data = pcap.read_bytes()
    assert data[:4] == (0xA1B2C3D4).to_bytes(4, sys.byteorder) and len(data) > 1000
    tshark = shutil.which("tshark")
    if tshark:
        # SIP's heuristics before port numbers: an ephemeral port may be
        # another protocol's (34962 is PROFINET's)
        t = subprocess.run([tshark, "-o", "udp.try_heuristic_first:TRUE",
                            "-o", "tcp.try_heuristic_first:TRUE",
                            "-r", str(pcap), "-Y", "sip", "-T", "fields",
                            "-e", "sip.Method", "-e", "sip.Status-Code"],
                           capture_output=True, text=True, timeout=120)
        assert t.returncode == 0, t.stderr
        seen = t.stdout.split()
        assert "REFER" in seen and "NOTIFY" in seen and "202" in seen, t.stdout


@pytest.mark.parametrize("proxy", [True, False])
def test_transfer_to_a_host_name(net, agent, proxy):
    """A Refer-To naming a host: through --outbound-proxy (Carol plays the
    proxy), or, without one, a final NOTIFY 503."""
    bob, carol = Party(net, "bob"), Party(net, "carol")
    ag = agent(*(["--outbound-proxy", carol.ua.contact_uri("")] if proxy else []))
    b = bob.ua.make_inviter(ag.uri("udp"))
    bob.calls.append(b)
    b.invite()
    assert net.drive(lambda: b.state == S.ESTABLISHED), ag.stderr()
    rr = Referrer()
    b.refer("sip:carol@pbx.example.com", **rr.callbacks())
    assert net.drive(lambda: rr.closed), ag.stderr()
    if proxy:
        assert rr.codes() == [100, 180, 200]
        inv = carol.invites[-1]
        assert inv.startswith("INVITE sip:carol@pbx.example.com SIP/2.0\r\n")
        assert f"\r\nRoute: <{carol.ua.contact_uri('')};lr>\r\n" in inv
    else:
        assert rr.codes() == [100, 503] and carol.invites == []
        assert "cannot follow the REFER to sip:carol@pbx.example.com" in ag.stderr()
    assert ag.stop() == 0, ag.stderr()


def test_on_refer_reject(net, agent):
    bob, carol = Party(net, "bob"), Party(net, "carol")
    ag = agent("--on-refer", "reject:603")
    b, rr = transfer(net, ag, bob, carol)
    assert net.drive(lambda: rr.closed)
    assert rr.rejects[0][0] == 603 and carol.invites == []
    assert ag.stop() == 0


def test_on_refer_accept_then_shutdown_sends_final_notify(net, agent):
    bob, carol = Party(net, "bob"), Party(net, "carol")
    ag = agent("--on-refer", "accept")
    b, rr = transfer(net, ag, bob, carol)
    assert net.drive(lambda: rr.notifies)
    assert rr.codes() == [100] and not rr.closed
    assert ag.stop() == 0
    assert net.drive(lambda: rr.closed)
    assert rr.notifies[-1] == (503, "Service Unavailable", "terminated;reason=noresource")
    assert carol.invites == []


def test_shutdown_mid_transfer_cancels_the_follow_up(net, agent):
    bob, carol = Party(net, "bob"), Party(net, "carol")
    carol.answer = "ring"
    ag = agent()
    b, rr = transfer(net, ag, bob, carol)
    assert net.drive(lambda: 180 in rr.codes())
    assert ag.stop(signal.SIGINT) == 0
    assert net.drive(lambda: rr.closed and b.state == S.TERMINATED)
    assert rr.notifies[-1][0] == 487


def test_on_invite_reject_and_ignore(net, agent, rec):
    bob = Party(net, "bob")
    ag = agent("--on-invite", "reject:486")
    b = bob.ua.make_inviter(ag.uri())
    b.on_response = rec("resp")
    b.invite()
    assert net.drive(lambda: b.state == S.TERMINATED)
    assert rec.of("resp")[-1][0] == 486
    assert ag.stop() == 0


def test_on_invite_ignore_then_shutdown_is_480(net, agent, rec):
    bob = Party(net, "bob")
    ag = agent("--on-invite", "ignore")
    b = bob.ua.make_inviter(ag.uri())
    b.on_response = rec("resp")
    b.invite()
    assert net.drive(lambda: rec.of("resp"))  # 100 Trying, then nothing
    assert ag.stop() == 0
    assert net.drive(lambda: b.state == S.TERMINATED)
    assert rec.of("resp")[-1][0] == 480


def test_script_policy(net, agent, tmp_path):
    bob, carol = Party(net, "bob"), Party(net, "carol")
    script = tmp_path / "policy.py"
    log = tmp_path / "policy.log"
    script.write_text(textwrap.dedent(f"""
        LOG = {str(log)!r}
        def note(*a):
            with open(LOG, "a") as f:
                print(*a, file=f)
        def on_invite(invitation):
            note("invite", invitation.request.method)
            return False              # the flags answer it
        def on_refer(referral):
            note("refer", referral.refer_to.uri.user)
            if referral.refer_to.uri.user == "mallory":
                referral.reject(403)
                return               # handled
            return False              # the flags follow it
        def on_notify(referral, code, reason):
            note("notify", code)
    """))
    ag = agent("--script", str(script))
    b, rr = transfer(net, ag, bob, carol)
    assert net.drive(lambda: rr.closed), ag.stderr()
    assert rr.codes()[-1] == 200
    rr2 = Referrer()
    b.refer(f"sip:mallory@127.0.0.1:{carol.ua.address()[1]}", **rr2.callbacks())
    assert net.drive(lambda: rr2.closed)
    assert rr2.rejects[0][0] == 403
    assert ag.stop() == 0
    lines = log.read_text().split("\n")
    assert "invite INVITE" in lines and "refer carol" in lines and "refer mallory" in lines
    assert "notify 180" in lines and "notify 200" in lines


def test_script_with_an_error_is_refused(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("def on_refer(r):\n  return (\n")
    out = run_quick("--script", str(script), "--listen", "udp:127.0.0.1:0")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "SyntaxError" in out.stderr


def test_call_bye_after_and_max_calls(net, agent):
    carol = Party(net, "carol")
    target = carol.ua.contact_uri("carol")
    ag = agent("--call", target, "--bye-after", "0", "--max-calls", "1")
    assert ag.wait() == 0, ag.stderr()
    c = carol.last_call()
    assert c is not None
    assert net.drive(lambda: c.state == S.TERMINATED)


def test_max_connections_closes_the_one_over(agent):
    ag = agent("--max-connections", "2")
    socks = [socket.create_connection(("127.0.0.1", ag.tcp), 10) for _ in range(3)]
    try:
        for s in socks:
            s.settimeout(10)  # bounds a broken test; the close comes at once
        assert socks[2].recv(1) == b"", "the third connection was not closed"
        socks[0].sendall(b"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\n"
                         b"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKmaxconn1\r\n"
                         b"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\n"
                         b"Call-ID: maxconn1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                         b"Content-Length: 0\r\n\r\n")
        assert socks[0].recv(4096).startswith(b"SIP/2.0 200 ")
    finally:
        for s in socks:
            s.close()
    assert ag.stop() == 0
    assert "connection limit (2) reached" in ag.stderr()


def test_bye_after_hangs_up_each_of_several_calls(net, agent):
    """Calls established one after the other are each hung up by the
    agent (its --bye-after queue), and it then exits on --max-calls."""
    bob = Party(net, "bob")
    ag = agent("--bye-after", "0.3", "--max-calls", "3", "--log-level", "info")
    calls = []
    for _ in range(3):
        b = bob.ua.make_inviter(ag.uri())
        bob.calls.append(b)
        b.invite()
        assert net.drive(lambda: b.state == S.ESTABLISHED), ag.stderr()
        calls.append(b)
    assert net.drive(lambda: all(c.state == S.TERMINATED for c in calls)), ag.stderr()
    assert ag.wait() == 0, ag.stderr()
    assert ag.stderr().count("hanging up") == 3, ag.stderr()


def test_failed_call_is_status_3(net, agent):
    carol = Party(net, "carol")
    carol.answer = "reject"
    ag = agent("--call", carol.ua.contact_uri("carol"), "--max-calls", "1")
    assert ag.wait() == 3, ag.stderr()


def test_duration(net, agent):
    ag = agent("--duration", "0.2")
    assert ag.wait() == 0


def test_out_of_dialog_refer_flag(net, agent):
    Party(net, "carol")
    ag = agent("--allow-out-of-dialog-refer", "--on-refer", "accept")
    raw = RawUDP()
    try:
        class Target:  # RawUDP.refer() only asks for address("udp")
            def address(self, tp):
                return ("127.0.0.1", ag.udp)
        assert raw.refer(net, Target(), "ood-py", None, "f1",
                         "Refer-To: <sip:carol@127.0.0.1:9>\r\n", 1) == 202
    finally:
        raw.close()
    assert ag.stop() == 0


def test_out_of_dialog_refer_refused_without_the_flag(net, agent):
    ag = agent()
    raw = RawUDP()
    try:
        class Target:
            def address(self, tp):
                return ("127.0.0.1", ag.udp)
        assert raw.refer(net, Target(), "ood-py2", None, "f2",
                         "Refer-To: <sip:carol@127.0.0.1:9>\r\n", 1) == 405
    finally:
        raw.close()
    assert ag.stop() == 0


def test_allow_scheme_and_log_level(net, agent):
    bob, carol = Party(net, "bob"), Party(net, "carol")
    ag = agent("--on-refer", "accept", "--allow-scheme", "tel", "--log-level", "info",
               "--uri", "sip:agent@127.0.0.1", "--username", "u", "--password", "p")
    b, rr = transfer(net, ag, bob, carol)
    assert net.drive(lambda: rr.notifies)
    rr2 = Referrer()
    b.refer("tel:+15551234", **rr2.callbacks())
    assert net.drive(lambda: rr2.accepts or rr2.rejects)
    assert rr2.accepts and not rr2.rejects  # tel: allowed now
    assert ag.stop() == 0
    err = ag.stderr()
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} agent info: REFER \(id \d+\) to <tel:", err), err


def test_verbose_logs_the_core(net, agent):
    bob = Party(net, "bob")
    ag = agent("-v", "-v")
    b = bob.ua.make_inviter(ag.uri())
    b.invite()
    assert net.drive(lambda: b.state == S.ESTABLISHED)
    assert ag.stop() == 0
    assert " sipreferral debug: " in ag.stderr() or " sipreferral info: " in ag.stderr()


def test_script_that_raises_is_logged_and_the_agent_goes_on(net, agent, tmp_path):
    bob, carol = Party(net, "bob"), Party(net, "carol")
    script = tmp_path / "raises.py"
    script.write_text("def on_refer(referral):\n    raise RuntimeError('policy bug')\n")
    ag = agent("--script", str(script), "--t1", "50")
    b, rr = transfer(net, ag, bob, carol)
    # the REFER stays undecided until the core's decision deadline (603)
    assert net.drive(lambda: rr.closed, 15)
    assert rr.rejects and rr.rejects[0][0] == 603
    assert ag.stop() == 0
    assert "RuntimeError: policy bug" in ag.stderr()


def test_script_that_follows_itself(net, agent, tmp_path):
    # the benchmark's policy: functions that return nothing handle the event
    bob, carol = Party(net, "bob"), Party(net, "carol")
    script = tmp_path / "follow.py"
    script.write_text(textwrap.dedent("""
        def on_invite(invitation):
            invitation.progress()
            invitation.accept()
        def on_refer(referral):
            referral.accept()
            referral.make_inviter().invite()
    """))
    ag = agent("--script", str(script))
    b, rr = transfer(net, ag, bob, carol)
    assert net.drive(lambda: rr.closed), ag.stderr()
    assert rr.codes() == [100, 180, 200]
    c = carol.last_call()
    assert ag.stop() == 0
    assert "error" not in ag.stderr()
    # the agent tracked the script's call too: the shutdown hung it up
    assert net.drive(lambda: c.state == S.TERMINATED and b.state == S.TERMINATED)
