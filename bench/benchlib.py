"""Helpers of the benchmark driver: the agent process, SIPp runs, loopback
captures and their pcap files, and small statistics.

Everything runs on 127.0.0.1; every child is bounded by a timeout and is
ended by the pid we started it with.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCENARIOS = BENCH / "sipp"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A run that could not be measured (a tool failed, a bound was hit)."""


def wait_until(cond, timeout_s: float, step_s: float = 0.05) -> bool:
    """Polls cond() until true or timeout_s passed (bounded by design)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step_s)
    return bool(cond())


def udp_port_bound(port: int) -> bool:
    """True when some socket is bound to UDP port on this host."""
    suffix = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)
                if any(line.split()[1].endswith(suffix) for line in f):
                    return True
        except OSError:
            pass
    return False


def free_udp_port() -> int:
    """A UDP port free right now on 127.0.0.1 (for SIPp's UAS side)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the agent

@dataclass
class Usage:
    """CPU seconds (user, sys), the wall time, the peak RSS (VmHWM, read
    just before SIGTERM) and the context switches (voluntary and not) of
    a finished process."""
    user: float = 0.0
    sys: float = 0.0
    wall: float = 0.0
    max_rss_kb: int = 0
    switches: int = 0

    @property
    def cpu(self) -> float:
        return self.user + self.sys


class Child:
    """A child process reaped with wait4(), so its rusage is kept
    (Popen.poll() would reap it and lose the rusage)."""

    proc: subprocess.Popen
    _exit: tuple | None = None

    def _reap(self, block: bool = False) -> bool:
        if self._exit is None:
            try:
                pid, status, ru = os.wait4(self.proc.pid,
                                           0 if block else os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == self.proc.pid:
                self._exit = (os.waitstatus_to_exitcode(status), ru,
                              time.monotonic())
                self.proc.returncode = self._exit[0]
        return self._exit is not None

    def running(self) -> bool:
        return not self._reap(False)

    def wait_bounded(self, timeout_s: float) -> bool:
        """Waits up to timeout_s for the exit; True when it exited."""
        return wait_until(lambda: self._reap(False), timeout_s, 0.02)

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self._reap(True)


class Agent(Child):
    """sipreferral-agent (or the Python twin) on a UDP port of its choice.

    The CPU it used is read from wait4() after a clean SIGTERM shutdown, so
    every transfer's cost is counted, including transactions still waiting
    for their timers when the load ended (freed at shutdown)."""

    def __init__(self, cmd: list[str], workdir: Path, env: dict | None = None,
                 name: str = "agent", tcp: bool = False):
        self.workdir = workdir
        port_file = workdir / f"{name}.port"
        port_file.unlink(missing_ok=True)  # a stale one would look ready
        self.log = open(workdir / f"{name}.log", "wb")
        full = cmd + ["--listen", "udp:127.0.0.1:0", "--port-file",
                      str(port_file)]
        if tcp:
            full[-2:-2] = ["--listen", "tcp:127.0.0.1:0"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(full, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env,
                                     cwd=workdir)
        self.pid = self.proc.pid
        if not wait_until(lambda: port_file.exists() or
                          not self.running(), 30):
            self.kill()
            raise BenchError(f"{name} did not start: {' '.join(full)}")
        if not self.running():
            self.log.close()
            raise BenchError(f"{name} exited at start ({self.proc.returncode})"
                             f": {(workdir / f'{name}.log').read_text()[-500:]}")
        specs = port_file.read_text().split()
        self.port = int(specs[0].rsplit(":", 1)[1])
        self.tcp_port = next((int(x.rsplit(":", 1)[1]) for x in specs
                              if x.startswith("tcp:")), None)
        self.usage: Usage | None = None
        # Stopping is a SIGTERM: wait until it would be caught (or blocked
        # for a signalfd), as the port file may be written before that.
        if not wait_until(lambda: self._sigterm_ready() or
                          not self.running(), 30):
            self.kill()
            raise BenchError(f"{name} never set up SIGTERM handling")

    def _sigterm_ready(self) -> bool:
        bit = 1 << (signal.SIGTERM - 1)
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(("SigBlk:", "SigCgt:")) and \
                            int(line.split()[1], 16) & bit:
                        return True
        except OSError:
            pass
        return False

    def cpu_ns(self) -> int:
        """CPU time so far (user+sys, ns) from /proc/PID/schedstat."""
        with open(f"/proc/{self.pid}/schedstat") as f:
            return int(f.read().split()[0])

    def user_sys_ticks(self) -> tuple[int, int]:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kb(self, field: str = "VmRSS") -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout_s: float = 20) -> Usage:
        """SIGTERM, wait (bounded), and return its rusage."""
        if self.usage:
            return self.usage
        # The peak RSS of the agent itself: wait4's ru_maxrss would also
        # count the bench process that forked it (Linux carries the peak
        # across exec).
        peak_kb = 0
        if self.running():
            try:
                peak_kb = self.rss_kb("VmHWM")
            except OSError:
                pass
            self.proc.send_signal(signal.SIGTERM)
        if not self.wait_bounded(timeout_s):
            self.kill()
            raise BenchError("the agent did not exit within "
                             f"{timeout_s}s of SIGTERM")
        rc, ru, ended = self._exit
        self.log.close()
        self.usage = Usage(ru.ru_utime, ru.ru_stime, ended - self.started,
                           peak_kb, ru.ru_nvcsw + ru.ru_nivcsw)
        if rc != 0:
            raise BenchError(f"the agent exited with {rc}")
        return self.usage

    def kill(self) -> None:
        Child.kill(self)
        if not self.log.closed:
            self.log.close()


# ---------------------------------------------------------------- SIPp

@dataclass
class SippResult:
    rc: int
    usage: Usage
    stats: dict = field(default_factory=dict)

    def count(self, column: str) -> int:
        try:
            return int(float(self.stats.get(column, "0")))
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.count("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        return self.count("Retransmissions(C)")


def read_csv_last(path: Path) -> dict:
    """The last row of a SIPp ';' CSV (stat or counts file) as a dict."""
    try:
        lines = [l for l in path.read_text().splitlines() if l.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head = lines[0].rstrip(";").split(";")
    row = lines[-1].rstrip(";").split(";")
    return dict(zip(head, row))


class Sipp(Child):
    """One SIPp process, run as `timeout N sipp ... -nostdin -timeout Ns`
    in the run's directory, with its stats written once a second."""

    def __init__(self, name: str, scenario: str, args: list[str],
                 workdir: Path, timeout_s: float):
        self.name = name
        self.workdir = workdir
        self.stat = workdir / f"{name}_stat.csv"
        self.scenario_stem = Path(scenario).stem
        t = int(timeout_s)
        cmd = ["timeout", str(t + 10), "sipp", "-sf",
               str(SCENARIOS / scenario), *args, "-i", "127.0.0.1",
               "-nostdin", "-timeout", f"{t}s", "-timeout_error",
               "-trace_stat", "-stf", str(self.stat), "-fd", "1",
               "-trace_err", "-error_file", str(workdir / f"{name}_err.log"),
               "-trace_counts",
               # SIPp's default socket buffers (64 KiB) overflow in bursts
               # at high rates; losses then stall calls on retransmissions.
               "-buff_size", "4194304"]
        self.out = open(workdir / f"{name}.out", "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.out,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir)
        self.deadline = self.started + t + 15
        self.result: SippResult | None = None

    def counts(self) -> dict:
        """The latest row of SIPp's per-message counts file
        (<scenario>_<pid>_counts.csv in the run's directory)."""
        for f in self.workdir.glob(f"{self.scenario_stem}_*_counts.csv"):
            return read_csv_last(f)
        return {}

    def wait(self) -> SippResult:
        if self.result:
            return self.result
        if not self.wait_bounded(max(0.0, self.deadline - time.monotonic())):
            self.kill()
        rc, ru, ended = self._exit
        self.out.close()
        self.result = SippResult(rc, Usage(ru.ru_utime, ru.ru_stime,
                                           ended - self.started),
                                 read_csv_last(self.stat))
        return self.result

    def stop(self) -> SippResult:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()


# ---------------------------------------------------------------- captures

class Capture(Child):
    """dumpcap on the loopback interface for one UDP port (root only)."""

    def __init__(self, port: int, path: Path, timeout_s: float):
        self.path = path
        self.err = open(str(path) + ".log", "wb")
        self.proc = subprocess.Popen(
            ["timeout", str(int(timeout_s)), "dumpcap", "-i", "lo", "-f",
             f"udp port {port}", "-w", str(path), "-P", "-B", "64"],
            stdout=subprocess.DEVNULL, stderr=self.err,
            stdin=subprocess.DEVNULL)
        log = Path(str(path) + ".log")
        ok = wait_until(lambda: b"Capturing on" in log.read_bytes() or
                        not self.running(), 15)
        if not ok or not self.running():
            self.stop()
            raise BenchError("dumpcap could not capture on lo: " +
                             log.read_text(errors="replace")[-300:])

    def stop(self) -> str:
        if self.running():
            # Through timeout(1): SIGINT to dumpcap ends it cleanly.
            for child in _children(self.proc.pid):
                os.kill(child, signal.SIGINT)
            if not self.wait_bounded(15):
                self.kill()
        if not self.err.closed:
            self.err.close()
        return Path(str(self.path) + ".log").read_text(errors="replace")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def read_pcap_udp(path: Path):
    """Yields (time_s, src_port, dst_port, payload) of each UDP packet of a
    classic pcap (Ethernet, Linux cooked or raw IP link types)."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise BenchError(f"{path}: not a classic pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack(end + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 101: 0, 228: 0}.get(link)
    if l2 is None:
        raise BenchError(f"{path}: link type {link} not supported")
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        ip = pkt[l2:]
        if len(ip) < 20:
            continue
        if ip[0] >> 4 == 4:
            hl, proto = (ip[0] & 15) * 4, ip[9]
        elif ip[0] >> 4 == 6:
            hl, proto = 40, ip[6]
        else:
            continue
        if proto != 17 or len(ip) < hl + 8:
            continue
        sport, dport = struct.unpack(">HH", ip[hl:hl + 4])
        yield (sec + frac / (1e9 if nano else 1e6), sport, dport,
               ip[hl + 8:])


def sip_summary(payload: bytes) -> tuple[str, dict]:
    """First line and a few headers (lower-case names) of a SIP message."""
    head = payload.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return lines[0], headers


# ---------------------------------------------------------------- numbers

def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def median(values: list[float]) -> float | None:
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def make_workdir(parent: Path | None, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
