#!/usr/bin/python3
"""The benchmark of sipreferral-agent: one command runs it all.

    /usr/bin/python3 bench/run.py                 # full run (~12 minutes)
    /usr/bin/python3 bench/run.py --quick         # shorter runs, same parts
    /usr/bin/python3 bench/run.py --smoke --out DIR   # a few transfers (CI)

Parts (see bench/README.md): the libosip2 floor, CPU per transfer at a
moderate rate, a rate sweep with latency, the highest rate without failed
calls, the Lua and Python policy agents, and memory per session and per
pending referral. Writes results.json, results.md and results.png to --out
(default bench/results/). No part asserts on speed: a run fails only when
something could not be measured (a failed call in a smoke run, a tool that
would not start).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (BENCH, ROOT, Agent, BenchError, Capture, Sipp,  # noqa: E402
                      free_udp_port, make_workdir, median, percentile,
                      read_pcap_udp, sip_summary, udp_port_bound, wait_until)
import report  # noqa: E402

PY = "/usr/bin/python3"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- agents

class Kinds:
    """How to start each kind of agent: C flags, Lua policy, Python twin."""

    def __init__(self, build: Path, wrapper: list[str] | None = None):
        self.build = build
        self.agent = build / "sipreferral-agent"
        self.wrapper = wrapper or []  # e.g. valgrind --tool=callgrind ...

    def cmd(self, kind: str, on_refer: str = "follow"):
        env = dict(os.environ)
        if kind == "c":
            return [str(self.agent), "--on-refer", on_refer], env
        if kind == "lua":
            env["LUA_PATH"] = f"{self.build}/lua/?.lua;;"
            env["LUA_CPATH"] = f"{self.build}/lua/?.so;;"
            return [str(self.agent), "--script",
                    str(BENCH / "policy.lua")], env
        if kind in ("python", "python-flags"):
            env["PYTHONPATH"] = str(self.build / "python") + (
                ":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            cmd = [PY, "-m", "sipreferral", "agent", "--on-refer", on_refer]
            if kind == "python":
                cmd += ["--script", str(BENCH / "policy.py")]
            return cmd, env
        raise ValueError(kind)

    def start(self, kind: str, workdir: Path, on_refer: str = "follow",
              tcp: int = 0):
        """tcp: also listen on TCP, for that many connections."""
        cmd, env = self.cmd(kind, on_refer)
        cmd = self.wrapper + cmd
        if tcp:
            cmd += ["--max-connections", str(tcp + 16)]
        return Agent(cmd, workdir, env, name=f"agent-{kind}", tcp=tcp > 0)

    def unavailable(self, kind: str, workdir: Path) -> str | None:
        """Why this kind of agent cannot run here, or None."""
        if not self.agent.exists():
            return f"{self.agent} not built"
        module = {"lua": self.build / "lua" / "sipreferral_core.so"}.get(
            kind, self.build / "python" / "sipreferral")
        if kind != "c" and not module.exists():
            return f"{module} not built"
        try:
            a = self.start(kind, workdir)
        except BenchError as e:
            return str(e).splitlines()[0][:300]
        try:
            a.stop()
        except BenchError as e:
            return str(e)
        return None


def startup_cost(kinds: Kinds, kind: str, workdir: Path, reps: int = 3):
    """CPU seconds of starting and stopping an idle agent (subtracted from
    each run, so only the transfers are counted)."""
    vals = []
    for _ in range(reps):
        a = kinds.start(kind, workdir)
        vals.append(a.stop().cpu)
    return median(vals)


# ---------------------------------------------------------------- transfers

def hold_calls(agent, wd: Path, scenario: str, sessions: int, rate: float,
               ready_key: str, hold_s: float) -> "Sipp":
    """SIPp holding `sessions` calls open with the agent (hold.xml or
    hold_refer.xml), returned once all are established and the agent has
    handled the last message (its CPU time stopped moving)."""
    ramp_s = sessions / rate
    hold_ms = int((ramp_s + hold_s) * 1000)
    sipp = Sipp("hold", scenario,
                [f"127.0.0.1:{agent.port}", "-r", f"{rate:g}", "-rp",
                 "1000", "-m", str(sessions), "-l", str(sessions), "-d",
                 str(hold_ms)], wd, hold_ms / 1000 + ramp_s + 60)

    def ready():
        c = sipp.counts()
        n = sum(int(v) for k, v in c.items()
                if re.fullmatch(r"\d+_" + ready_key, k))
        return n >= sessions or not sipp.running()
    if not wait_until(ready, ramp_s * 3 + 30, 0.2) or not sipp.running():
        sipp.stop()
        raise BenchError(f"{scenario}: {sessions} calls were not all "
                         f"established (--keep keeps its logs: {wd})")
    last = [agent.cpu_ns()]

    def idle():
        now = agent.cpu_ns()
        still = now == last[0]
        last[0] = now
        return still
    wait_until(idle, 10, 0.1)
    return sipp


def fit_open_files(n: int) -> int:
    """Raises this process's open-file limit for n more sockets, as far as
    the hard limit allows; returns how many fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return n if soft == resource.RLIM_INFINITY else min(n, soft - 256)


def hold_tcp(agent, n: int) -> list:
    """n idle TCP connections to the agent (phones kept connected between
    calls), returned once the agent has accepted them all."""
    base = agent.open_fds()
    socks: list = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1",
                                                   agent.tcp_port), 10))
        if not wait_until(lambda: agent.open_fds() >= base + n, 30, 0.1):
            raise BenchError(f"the agent did not accept {n} TCP connections")
        return socks
    except (OSError, BenchError) as e:
        for s in socks:
            s.close()
        if isinstance(e, BenchError):
            raise
        raise BenchError(f"{len(socks)} of {n} idle TCP connections "
                         f"opened: {e}") from e


def transfer_run(kinds: Kinds, kind: str, rate: float, calls: int,
                 workdir: Path, base_cpu: float, capture: bool = False,
                 pcap_agent: bool = False, held: int = 0,
                 idle_tcp: int = 0) -> dict:
    """One load: SIPp referrer at `rate` calls/s for `calls` transfers,
    SIPp target answering, the agent in between; with `held`, that many
    other calls are up with the agent (SIPp holds them) during the load;
    with `idle_tcp`, that many idle TCP connections are open to it."""
    wd = make_workdir(workdir, f"{kind}-{int(rate)}-")
    agent = None
    cap = None
    target = ref = hold = None
    socks: list = []
    try:
        if pcap_agent:
            cmd, env = kinds.cmd(kind)
            agent = Agent(kinds.wrapper + cmd + ["--pcap",
                                                 str(wd / "agent.pcap")],
                          wd, env, name=f"agent-{kind}")
        else:
            agent = kinds.start(kind, wd, tcp=idle_tcp)
        limit_s = calls / rate + 30
        if idle_tcp:
            socks = hold_tcp(agent, idle_tcp)
        if held:
            hold = hold_calls(agent, wd, "hold.xml", held, 2000, "ACK_Sent",
                              limit_s + 30)
        tport = free_udp_port()
        target = Sipp("target", "target.xml",
                      ["-p", str(tport), "-m", str(calls)], wd, limit_s + 10)
        if not wait_until(lambda: udp_port_bound(tport) or
                          not target.running(), 10):
            raise BenchError("SIPp target did not bind its port")
        if not target.running():
            raise BenchError("SIPp target exited at start: " +
                             (wd / "target.out").read_text()[-300:])
        if capture:
            cap = Capture(agent.port, wd / "load.pcap", limit_s + 30)
        c0, t0, k0 = agent.cpu_ns(), time.monotonic(), agent.user_sys_ticks()
        ref = Sipp("referrer", "referrer.xml",
                   [f"127.0.0.1:{agent.port}", "-key", "target",
                    f"127.0.0.1:{tport}", "-r", f"{rate:g}", "-rp", "1000",
                    "-m", str(calls), "-l", str(max(1000, int(rate * 10)))],
                   wd, limit_s)
        rr = ref.wait()
        wait_until(lambda: not target.running(), 10)
        tr = target.stop()
        c1, t1, k1 = agent.cpu_ns(), time.monotonic(), agent.user_sys_ticks()
        cap_log = cap.stop() if cap else ""
        if hold:
            hold.stop()
        usage = agent.stop()
    finally:
        for sock in socks:
            sock.close()
        for p in (ref, target, hold):
            if p and p.running():
                p.stop()
        if cap:
            cap.stop()
        if agent:
            agent.kill()
    completed = min(rr.successful, tr.successful)
    cpu = max(0.0, usage.cpu - base_cpu)
    share = usage.user / usage.cpu if usage.cpu else 0
    if held or idle_tcp:  # during the load only: not the setup around it
        cpu = (c1 - c0) / 1e9
        ticks = (k1[0] - k0[0]) + (k1[1] - k0[1])
        share = (k1[0] - k0[0]) / ticks if ticks else 0
    out = {
        "kind": kind, "rate": rate, "calls": calls, "held": held,
        "idle_tcp": idle_tcp,
        "completed": completed,
        "failed": rr.failed + tr.failed,
        "referrer_rc": rr.rc, "target_rc": tr.rc,
        "retransmissions": rr.retransmissions + tr.retransmissions,
        "achieved_rate": float(rr.stats.get("CallRate(C)", 0) or 0),
        "load_wall_s": round(t1 - t0, 3),
        "agent_cpu_s": round(cpu, 6),
        "agent_cpu_during_load_s": round((c1 - c0) / 1e9, 6),
        "agent_busy": round((c1 - c0) / 1e9 / max(t1 - t0, 1e-9), 3),
        "agent_max_rss_kb": usage.max_rss_kb,
        "sipp_busy": round((rr.usage.cpu + tr.usage.cpu) /
                           max(t1 - t0, 1e-9), 3),
        "workdir": str(wd),
    }
    if completed:
        out["cpu_us_per_transfer"] = round(cpu * 1e6 / completed, 2)
        out["user_us_per_transfer"] = round(cpu * share * 1e6 / completed, 2)
        out["sys_us_per_transfer"] = round(cpu * (1 - share) * 1e6 /
                                           completed, 2)
        out["switches_per_transfer"] = round(usage.switches / completed, 2)
    if capture:
        out["latency"] = latencies(wd / "load.pcap", agent.port)
        m = re.search(r"dropped on interface[^:]*:\s*(\d+)/(\d+)", cap_log)
        if m:
            out["latency"]["capture_dropped"] = int(m.group(2))
    if pcap_agent:
        out["agent_pcap"] = str(wd / "agent.pcap")
    return out


def ok_run(r: dict) -> bool:
    """No failed call, every transfer completed, the rate was kept."""
    return (r["failed"] == 0 and r["completed"] == r["calls"] and
            r["referrer_rc"] == 0 and r["achieved_rate"] >= 0.95 * r["rate"])


def latencies(pcap: Path, agent_port: int) -> dict:
    """REFER -> 202 and REFER -> INVITE to the target, from a capture on
    lo. Each REFER names its target (sip:targetN@...), which pairs it with
    the INVITE the agent sends; the first copy of each message counts."""
    refer_by_call, refer_by_target, ok202, invite = {}, {}, {}, {}
    for ts, sport, dport, payload in read_pcap_udp(pcap):
        first, h = sip_summary(payload)
        callid = h.get("call-id") or h.get("i")
        if first.startswith("REFER ") and dport == agent_port:
            refer_by_call.setdefault(callid, ts)
            m = re.search(r"sip:(target\d+)@", h.get("refer-to", "") or
                          h.get("r", ""))
            if m:
                refer_by_target.setdefault(m.group(1), ts)
        elif (first.startswith("SIP/2.0 202") and sport == agent_port and
              "REFER" in h.get("cseq", "")):
            ok202.setdefault(callid, ts)
        elif first.startswith("INVITE ") and sport == agent_port:
            m = re.match(r"INVITE sip:(target\d+)@", first)
            if m:
                invite.setdefault(m.group(1), ts)
    d202 = [(ok202[c] - t) * 1e6 for c, t in refer_by_call.items()
            if c in ok202]
    dinv = [(invite[k] - t) * 1e6 for k, t in refer_by_target.items()
            if k in invite]

    def summary(v):
        return {"n": len(v),
                "p50": round(percentile(v, 50), 1) if v else None,
                "p90": round(percentile(v, 90), 1) if v else None,
                "p99": round(percentile(v, 99), 1) if v else None,
                "max": round(max(v), 1) if v else None}
    return {"refers": len(refer_by_call),
            "refer_to_202_us": summary(d202),
            "refer_to_invite_us": summary(dinv)}


# ---------------------------------------------------------------- parts

def part_floor(build: Path, pcap: Path, seconds: float) -> dict:
    exe = build / "bench" / "bench_floor"
    if not exe.exists():
        raise BenchError(f"{exe} not built")
    out = subprocess.run([str(exe), "--io", "--seconds", f"{seconds:g}",
                          str(pcap)], capture_output=True, text=True,
                         timeout=seconds * 4 + 60)
    if out.returncode != 0:
        raise BenchError(f"bench_floor failed: {out.stderr.strip()}")
    res = json.loads(out.stdout)
    # The same with libosip2 on the library's allocator (csrc/pool.c), as
    # inside the agent: the stricter comparison, reported next to it.
    out = subprocess.run([str(exe), "--pool", "--seconds", f"{seconds:g}",
                          str(pcap)], capture_output=True, text=True,
                         timeout=seconds * 4 + 60)
    if out.returncode != 0:
        raise BenchError(f"bench_floor --pool failed: {out.stderr.strip()}")
    res["floor_pool_us"] = json.loads(out.stdout)["floor_us"]
    return res


def part_paced_floor(build: Path, pcap: Path, rate: float,
                     transfers: int) -> dict:
    """The floor's libosip2 work at a rate, as the agent does it: woken by
    datagrams from a peer process, with the same socket calls (bench_floor
    --paced). The loop of part_floor runs hot; this is the like-for-like
    figure at a moderate rate."""
    exe = build / "bench" / "bench_floor"
    out = subprocess.run([str(exe), "--paced", f"{rate:g}", "--transfers",
                          str(transfers), str(pcap)], capture_output=True,
                         text=True, timeout=transfers / rate * 2 + 120)
    if out.returncode != 0:
        raise BenchError(f"bench_floor --paced {rate:g} failed: "
                         f"{out.stderr.strip()}")
    return json.loads(out.stdout)


def capture_one_transfer(kinds: Kinds, workdir: Path) -> Path:
    """The messages of one transfer, as the agent saw them (--pcap)."""
    r = transfer_run(kinds, "c", 1, 1, workdir, 0.0, pcap_agent=True)
    if r["completed"] != 1:
        raise BenchError("the single captured transfer did not complete "
                         f"(--keep keeps its logs: {r['workdir']})")
    return Path(r["agent_pcap"])


def medians(runs: list[dict], keys) -> dict:
    """Each key's median over the runs."""
    return {k: median([r.get(k) for r in runs]) for k in keys}


def summarize_runs(runs: list[dict]) -> dict:
    s = medians(runs, ("cpu_us_per_transfer", "user_us_per_transfer",
                       "sys_us_per_transfer", "switches_per_transfer",
                       "achieved_rate", "agent_busy"))
    s = {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}
    s["completed"] = sum(r["completed"] for r in runs)
    s["failed"] = sum(r["failed"] for r in runs)
    s["retransmissions"] = sum(r["retransmissions"] for r in runs)
    s["runs"] = runs
    return s


def part_bindings(kinds: Kinds, workdir: Path, base: float, a) -> dict:
    """The policy in Lua and in Python against the C agent, in rounds:
    each round runs the C agent and every script agent back to back
    (the order turning from round to round), and a kind's ratio is the
    median of its per-round ratios. This machine drifts by more than the
    differences measured between runs minutes apart."""
    out: dict = {}
    script_kinds = []
    for kind in ("lua", "python", "python-flags"):
        why = kinds.unavailable(kind, workdir)
        if why:
            log(f"{kind} policy agent: not measured ({why})")
            out[kind] = {"not_measured": why}
        else:
            script_kinds.append(kind)
    bases = {"c": base}
    for kind in script_kinds:
        bases[kind] = startup_cost(kinds, kind, workdir)
    calls = max(3, int(a.rate * a.round_seconds))
    order = ["c"] + script_kinds
    runs = {k: [] for k in order}
    errors: dict = {}
    for i in range(a.rounds):
        rnd = {}
        for kind in order[i % len(order):] + order[:i % len(order)]:
            if kind in errors:
                continue
            try:
                rnd[kind] = transfer_run(kinds, kind, a.rate, calls, workdir,
                                         bases[kind])
            except BenchError as e:
                log(f"{kind} policy agent: failed ({e})")
                errors[kind] = str(e)
                continue
            runs[kind].append(rnd[kind])
        c = rnd.get("c", {}).get("cpu_us_per_transfer")
        for kind in script_kinds:
            v = rnd.get(kind, {}).get("cpu_us_per_transfer")
            if c and v:
                rnd[kind]["ratio_to_c"] = round(v / c, 3)
        log(f"bindings round {i + 1}: " + ", ".join(
            f"{k} {r.get('cpu_us_per_transfer')} us"
            + (f" ({r['ratio_to_c']:.2f}x)" if "ratio_to_c" in r else "")
            for k, r in rnd.items()))
    out["c"] = summarize_runs(runs["c"]) if runs["c"] else {
        "error": errors.get("c", "no run")}
    for kind in script_kinds:
        if kind in errors or not runs[kind]:
            out[kind] = {"error": errors.get(kind, "no run")}
            continue
        s = summarize_runs(runs[kind])
        s["startup_cpu_s"] = bases[kind]
        ratios = [r["ratio_to_c"] for r in runs[kind] if "ratio_to_c" in r]
        if ratios:
            s["ratio_to_c"] = round(median(ratios), 3)
            s["ratios_by_round"] = ratios
        out[kind] = s
        log(f"{kind} policy agent: {s.get('cpu_us_per_transfer')} "
            f"us/transfer, ratio {s.get('ratio_to_c')}")
    return out


def callgrind_total(path: Path) -> int:
    """Instructions (Ir) of a callgrind output file."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"{path}: no callgrind totals")


def part_instructions(build: Path, workdir: Path, pcap: Path, kinds_avail,
                      transfers: int, rate: float) -> dict:
    """Instructions per transfer under callgrind: noise-free, unlike CPU
    time on a shared machine. Each figure is a difference of two runs (N
    transfers and 5), so start-up and shutdown cancel out; shutdown
    frees what timers would have freed, so that cost stays in."""
    wd = make_workdir(workdir, "callgrind-")
    base_n = 5
    out = {"transfers": transfers, "rate": rate}
    exe = build / "bench" / "bench_floor"
    for key, opts in (("floor_ir", []), ("floor_pool_ir", ["--pool"])):
        counts = {}
        for n in (0, 100):
            f = wd / f"floor{''.join(opts)}-{n}.out"
            r = subprocess.run(["valgrind", "--tool=callgrind",
                                f"--callgrind-out-file={f}", str(exe), *opts,
                                "--count", str(n), str(pcap)],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise BenchError("bench_floor under callgrind: "
                                 f"{r.stderr[-300:]}")
            counts[n] = callgrind_total(f)
        out[key] = round((counts[100] - counts[0]) / 100)
    for kind in kinds_avail:
        totals = {}
        try:
            # The baseline run makes a few transfers rather than none, so
            # that the SIGTERM ending it never lands during start-up.
            for n in (base_n, transfers):
                f = wd / f"{kind}-{n}.out"
                kinds = Kinds(build, ["valgrind", "--tool=callgrind",
                                      f"--callgrind-out-file={f}"])
                r = transfer_run(kinds, kind, rate, n, wd, 0.0)
                if r["completed"] != n:
                    raise BenchError(f"{kind} agent under callgrind: "
                                     f"{r['completed']}/{n} transfers")
                totals[n] = callgrind_total(f)
        except BenchError as e:
            log(f"  {kind}: not measured under callgrind ({e})")
            out[kind] = {"error": str(e)}
            continue
        ir = round((totals[transfers] - totals[base_n]) /
                   (transfers - base_n))
        out[kind] = {"ir_per_transfer": ir,
                     "ratio_to_floor": round(ir / out["floor_ir"], 2)}
        log(f"  {kind}: {ir:,} instructions/transfer "
            f"({out[kind]['ratio_to_floor']}x the floor's "
            f"{out['floor_ir']:,})")
    if "ir_per_transfer" in out.get("c", {}):
        for kind in kinds_avail:
            if kind != "c" and "ir_per_transfer" in out[kind]:
                out[kind]["ratio_to_c"] = round(
                    out[kind]["ir_per_transfer"] / out["c"]["ir_per_transfer"],
                    3)
    return out


def part_max_rate(kinds: Kinds, workdir: Path, base: float, start: float,
                  probe_s: float, steps: int, cap: float) -> dict:
    """Doubles the rate until a probe fails, then bisects between the last
    good and the first bad rate."""
    probes = []

    def probe(rate):
        rate = round(rate)
        r = transfer_run(kinds, "c", rate, max(50, int(rate * probe_s)),
                         workdir, base)
        r["ok"] = ok_run(r)
        probes.append(r)
        log(f"  max-rate probe {rate}/s: completed {r['completed']}/"
            f"{r['calls']}, failed {r['failed']}, achieved "
            f"{r['achieved_rate']:.0f}/s, agent busy {r['agent_busy']:.2f}, "
            f"sipp busy {r['sipp_busy']:.2f} -> {'ok' if r['ok'] else 'no'}")
        return r

    good, bad, rate = None, None, start
    while rate <= cap:
        r = probe(rate)
        if r["ok"]:
            good, rate = r, rate * 2
        else:
            bad = r
            break
    if good is None:
        return {"rate": None, "probes": probes,
                "note": f"no probe from {start}/s passed"}
    if bad is not None:
        lo, hi = good["rate"], bad["rate"]
        for _ in range(steps):
            if hi - lo <= max(10, lo * 0.05):
                break
            r = probe((lo + hi) / 2)
            if r["ok"]:
                good, lo = r, r["rate"]
            else:
                hi = r["rate"]
    # Confirm with a run twice as long; step down 10% while it fails, six
    # times at most (to 53%): a probe that passed by luck (6400/s once did,
    # 5184/s then failed over 12 s) needs more than three steps.
    first_bad = bad["rate"] if bad else None
    rate = good["rate"]
    for _ in range(6):
        r = transfer_run(kinds, "c", rate, max(50, int(rate * probe_s * 2)),
                         workdir, base)
        r["ok"] = ok_run(r)
        r["confirmation"] = True
        probes.append(r)
        log(f"  confirming {rate:g}/s over {r['calls']} transfers: "
            f"{'ok' if r['ok'] else 'no'} (failed {r['failed']}, achieved "
            f"{r['achieved_rate']:.0f}/s)")
        if r["ok"]:
            return {"rate": rate, "best": r, "probes": probes,
                    "first_failing_rate": first_bad}
        rate = round(rate * 0.9)
    return {"rate": None, "probes": probes, "first_failing_rate": first_bad,
            "note": "no rate was confirmed by a second, longer run"}


def part_memory(kinds: Kinds, workdir: Path, scenario: str, on_refer: str,
                sessions: int, rate: float, ready_key: str) -> dict:
    """RSS growth of the agent while SIPp holds `sessions` calls open. It
    is read once all are established: later readings would not show the
    transactions' memory going (glibc keeps what is freed)."""
    wd = make_workdir(workdir, f"mem-{Path(scenario).stem}-")
    agent = kinds.start("c", wd, on_refer=on_refer)
    sipp = None
    try:
        rss0 = agent.rss_kb()
        t0 = time.monotonic()
        sipp = hold_calls(agent, wd, scenario, sessions, rate, ready_key, 10)
        rss_ready = agent.rss_kb()
        t_ready = time.monotonic() - t0
        res = sipp.wait()
        agent.stop()
    finally:
        if sipp and sipp.running():
            sipp.stop()
        agent.kill()
    return {
        "scenario": scenario, "sessions": sessions, "rate": rate,
        "rss_idle_kb": rss0, "rss_ready_kb": rss_ready,
        "ready_after_s": round(t_ready, 1),
        "bytes_per_session": round((rss_ready - rss0) * 1024 / sessions),
        "sipp_successful": res.successful, "sipp_failed": res.failed,
        "workdir": str(wd),
    }


# ---------------------------------------------------------------- main

def meta(build: Path, argv: list[str]) -> dict:
    def cmd(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in
                   open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cache = {}
    try:
        for line in (build / "CMakeCache.txt").read_text().splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                cache["build_type"] = line.split("=", 1)[1]
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join(["/usr/bin/python3", "bench/run.py", *argv]),
        "host": platform.node(), "kernel": platform.release(),
        "cpu": cpu, "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "build_dir": str(build), **cache,
        "commit": cmd("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "tree_modified": bool(cmd("git", "-C", str(ROOT), "status",
                                  "--porcelain", "--", "csrc", "tools")),
        "sipp": cmd("sipp", "-v").splitlines()[0:1] if shutil.which("sipp")
        else None,
        "libosip2": cmd("dpkg-query", "-W", "-f=${Version}", "libosip2-15"),
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build-dir", default=str(ROOT / "build"),
                   help="where sipreferral-agent and bench/bench_floor are "
                   "(default build/; measure a RelWithDebInfo build)")
    p.add_argument("--out", default=str(BENCH / "results"),
                   help="results directory (default bench/results)")
    p.add_argument("--rate", type=float, default=200,
                   help="the moderate rate, transfers/s (default 200)")
    p.add_argument("--seconds", type=float, default=20,
                   help="length of each moderate-rate run (default 20)")
    p.add_argument("--reps", type=int, default=3,
                   help="moderate-rate runs and floor runs (median; 3)")
    p.add_argument("--rounds", type=int, default=9,
                   help="rounds of the binding comparison (default 9)")
    p.add_argument("--round-seconds", type=float, default=10,
                   help="length of each run in a round (default 10)")
    p.add_argument("--sweep", default="50,100,200,400,800",
                   help="rates of the sweep (default 50,100,200,400,800)")
    p.add_argument("--sweep-seconds", type=float, default=8)
    p.add_argument("--max-start", type=float, default=400)
    p.add_argument("--max-cap", type=float, default=12800)
    p.add_argument("--sessions", type=int, default=10000,
                   help="concurrent sessions for memory and busy "
                   "(default 10000)")
    p.add_argument("--only", default="",
                   help="comma list of parts: floor,moderate,busy,sweep,"
                   "max,bindings,memory,instructions (default all)")
    p.add_argument("--quick", action="store_true",
                   help="shorter runs (for trying things out)")
    p.add_argument("--smoke", action="store_true",
                   help="a few transfers through every code path; fails "
                   "only if a transfer fails or a tool is missing")
    p.add_argument("--keep", action="store_true",
                   help="keep the per-run directories (logs, pcaps)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    build = Path(a.build_dir).resolve()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    parts = set(filter(None, a.only.split(","))) or {
        "floor", "moderate", "busy", "sweep", "max", "bindings", "memory",
        "instructions"}
    if a.smoke:
        a.rate, a.seconds, a.reps = 5, 1, 1
        a.rounds, a.round_seconds, a.sessions = 1, 1, 20
        parts = {"floor", "moderate", "bindings", "busy"}
    elif a.quick:
        a.seconds, a.reps, a.sweep_seconds = 6, 1, 4
        a.rounds, a.round_seconds = 2, 6
        a.sweep, a.sessions = "100,400", 2000
    for tool in ("sipp",) + (("dumpcap",) if "sweep" in parts else ()):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found (bash scripts/setup.sh "
                             "installs it)")
    kinds = Kinds(build)
    if not kinds.agent.exists():
        raise BenchError(f"{kinds.agent} not built; build first "
                         "(bash scripts/setup.sh)")
    workdir = make_workdir(None, "sipreferral-bench-")
    res: dict = {"meta": meta(build, argv)}
    log(f"agent {kinds.agent}; scratch {workdir}")
    try:
        base = startup_cost(kinds, "c", workdir)
        res["startup_cpu_s"] = {"c": base}

        moderate_calls = max(3, int(a.rate * a.seconds))
        pcap = None
        if parts & {"floor", "sweep", "instructions"}:
            log("capturing one transfer (agent --pcap) for the floor")
            pcap = capture_one_transfer(kinds, workdir)
            shutil.copy(pcap, out / "transfer.pcap")
        if "floor" in parts:
            floors = [part_floor(build, pcap, 0.3 if a.smoke else 2.0)
                      for _ in range(a.reps)]
            res["floor"] = medians(floors, ("parse_us", "serialise_us",
                                            "floor_us", "io_us",
                                            "floor_with_io_us",
                                            "floor_pool_us"))
            res["floor"].update({k: floors[0][k] for k in
                                 ("messages", "received", "sent", "bytes")})
            res["floor"]["runs"] = floors
            log(f"floor: {res['floor']['floor_us']:.1f} us/transfer "
                f"(+ socket calls: {res['floor']['floor_with_io_us']:.1f}; "
                f"on the library's allocator: "
                f"{res['floor']['floor_pool_us']:.1f})")
            paced = [part_paced_floor(build, pcap, a.rate, moderate_calls)
                     for _ in range(a.reps)]
            res["floor"]["paced"] = {
                "rate": a.rate, "transfers": moderate_calls,
                **medians(paced, ("paced_us", "user_us", "sys_us",
                                  "switches_per_transfer",
                                  "wakeups_per_transfer")),
                "runs": paced}
            log(f"floor paced at {a.rate:g}/s: "
                f"{res['floor']['paced']['paced_us']:.1f} us/transfer")

        if "moderate" in parts:
            calls = moderate_calls
            runs = []
            for i in range(a.reps):
                r = transfer_run(kinds, "c", a.rate, calls, workdir, base)
                log(f"moderate {a.rate:g}/s run {i + 1}: "
                    f"{r['completed']}/{calls} completed, "
                    f"{r.get('cpu_us_per_transfer', '-')} us/transfer")
                runs.append(r)
            res["moderate"] = {"rate": a.rate, "calls_per_run": calls,
                               **summarize_runs(runs)}

        if "busy" in parts:
            # The moderate load again, with a.sessions other calls up: what
            # a transfer costs is not to depend on how many calls are up.
            res["busy"] = {"rate": a.rate, "held": a.sessions, "runs": {}}
            for kind in ("c", "lua", "python"):
                why = kinds.unavailable(kind, workdir)
                if why:
                    res["busy"]["runs"][kind] = {"not_measured": why}
                    continue
                r = transfer_run(kinds, kind, a.rate, moderate_calls, workdir,
                                 base, held=a.sessions)
                log(f"busy: {kind} agent, {a.sessions} calls up, "
                    f"{a.rate:g}/s: {r['completed']}/{moderate_calls} "
                    f"completed, {r.get('cpu_us_per_transfer', '-')} "
                    "us/transfer")
                res["busy"]["runs"][kind] = r
            # Phones that stay connected over TCP between calls: the C
            # agent (--max-connections) with as many idle connections open
            # as there were calls up, UDP transfers as before.
            n = fit_open_files(a.sessions)
            r = transfer_run(kinds, "c", a.rate, moderate_calls, workdir,
                             base, idle_tcp=n)
            log(f"busy: c agent, {n} idle TCP connections, {a.rate:g}/s: "
                f"{r['completed']}/{moderate_calls} completed, "
                f"{r.get('cpu_us_per_transfer', '-')} us/transfer")
            res["busy"]["runs"]["c-idle-tcp"] = r

        if "sweep" in parts:
            res["sweep"] = []
            for rate in [float(x) for x in a.sweep.split(",") if x]:
                calls = max(10, int(rate * a.sweep_seconds))
                r = transfer_run(kinds, "c", rate, calls, workdir, base)
                lat = transfer_run(kinds, "c", rate, calls, workdir, base,
                                   capture=True)
                log(f"sweep {rate:g}/s: {r.get('cpu_us_per_transfer')} "
                    f"us/transfer; REFER->202 p50/p99 "
                    f"{lat['latency']['refer_to_202_us']['p50']}/"
                    f"{lat['latency']['refer_to_202_us']['p99']} us")
                pf = part_paced_floor(build, pcap, rate, calls)
                log(f"  the floor paced at {rate:g}/s: {pf['paced_us']} "
                    "us/transfer")
                res["sweep"].append({"rate": rate, "cpu": r,
                                     "latency_run": lat, "paced_floor": pf})
            mod = [s for s in res["sweep"] if s["rate"] == a.rate]
            if mod:
                res["latency"] = {"rate": a.rate,
                                  **mod[0]["latency_run"]["latency"]}

        if "max" in parts:
            log("searching the highest rate without failed calls")
            res["max_rate"] = part_max_rate(
                kinds, workdir, base, a.max_start, 4 if a.quick else 6,
                2 if a.quick else 3, a.max_cap)

        if "bindings" in parts:
            res["bindings"] = part_bindings(kinds, workdir, base, a)

        if "instructions" in parts:
            if not shutil.which("valgrind"):
                res["instructions"] = {"not_measured": "valgrind not found"}
            else:
                log("instructions per transfer (callgrind)")
                avail = ["c"] + [k for k in ("lua", "python", "python-flags")
                                 if "bindings" in parts and
                                 "cpu_us_per_transfer" in
                                 (res.get("bindings") or {}).get(k, {})]
                res["instructions"] = part_instructions(
                    build, workdir, pcap, avail, 50 if a.quick else 200, 15)

        if "memory" in parts:
            rate = 1000 if not a.quick else 500
            log(f"memory: {a.sessions} sessions held by SIPp")
            sess = part_memory(kinds, workdir, "hold.xml", "follow",
                               a.sessions, rate, "ACK_Sent")
            log(f"  {sess['bytes_per_session']} bytes/session")
            log(f"memory: {a.sessions} sessions with a pending referral")
            refs = part_memory(kinds, workdir, "hold_refer.xml", "accept",
                               a.sessions, rate, "200_Sent")
            refs["bytes_per_referral"] = (refs["bytes_per_session"] -
                                          sess["bytes_per_session"])
            log(f"  {refs['bytes_per_referral']} bytes/pending referral")
            res["memory"] = {"sessions": sess, "referrals": refs}
    finally:
        res["meta"]["load_average_at_end"] = os.getloadavg()
        report.derive(res)
        (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
        report.write_markdown(res, out / "results.md")
        if not a.smoke:
            report.write_plot(res, out / "results.png")
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"results in {out}/results.json and results.md")
    if a.smoke:
        m = res.get("moderate", {})

        # An agent whose module is not built is skipped; one that is built
        # but did not start is a failure.
        def failed(b: dict) -> bool:
            if "not_measured" in b:
                return not b["not_measured"].endswith(" not built")
            return ("error" in b or b["failed"] or
                    b["completed"] != m.get("calls_per_run"))
        bad = [k for k, b in (res.get("bindings") or {}).items() if failed(b)]
        bad += [f"{k} with calls up" for k, b in
                (res.get("busy") or {}).get("runs", {}).items() if failed(b)]
        if m.get("failed") or m.get("completed") != m.get("calls_per_run"):
            bad.append("c")
        if bad:
            print(f"smoke: transfers failed ({', '.join(bad)})",
                  file=sys.stderr)
            return 1
        print(f"smoke: {m['completed']} transfers completed, "
              f"{m.get('cpu_us_per_transfer')} us/transfer (not asserted)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
