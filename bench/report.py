"""The benchmark's report: derived ratios and targets, a Markdown table and
a PNG plot (python3-matplotlib) of CPU per transfer and latency by rate."""

from __future__ import annotations

from pathlib import Path

# Reference figures for other stacks under the same SIPp load, from the
# project brief (pjsua and SIP.js are not installed here to remeasure).
PEERS_US = {"pjsua": 2000.0, "SIP.js": 24000.0}


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d


def _ratio(a, b, nd=2):
    return round(a / b, nd) if a is not None and b else None


def derive(res: dict) -> None:
    """Adds ratios and the targets' verdicts to res (in place)."""
    floor = res.get("floor") or {}
    mod = res.get("moderate")
    if mod and mod.get("cpu_us_per_transfer"):
        cpu = mod["cpu_us_per_transfer"]
        mod["ratio_to_floor"] = _ratio(cpu, floor.get("floor_us"))
        mod["ratio_to_floor_with_io"] = _ratio(cpu,
                                               floor.get("floor_with_io_us"))
        mod["user_ratio_to_floor"] = _ratio(mod.get("user_us_per_transfer"),
                                            floor.get("floor_us"))
        mod["ratio_to_paced_floor"] = _ratio(cpu, _get(floor, "paced",
                                                       "paced_us"))
        mod["peers_speedup"] = {k: _ratio(v, cpu, 1)
                                for k, v in PEERS_US.items()}
    busy = res.get("busy")
    if busy:
        for kind, r in busy["runs"].items():
            alone = (mod or {}).get("cpu_us_per_transfer") \
                if kind.startswith("c") \
                else _get(res, "bindings", kind, "cpu_us_per_transfer")
            r["ratio_to_no_calls_up"] = _ratio(r.get("cpu_us_per_transfer"),
                                               alone)
    t = []

    def target(name, value, limit, unit, met):
        t.append({"target": name, "value": value, "limit": limit,
                  "unit": unit, "met": met})
    cpu = _get(res, "moderate", "cpu_us_per_transfer")
    r = _get(res, "moderate", "ratio_to_floor")
    target("CPU per transfer within 2x of the libosip2 floor", r, 2, "x",
           None if r is None else r <= 2)
    r = _ratio(_get(res, "max_rate", "best", "cpu_us_per_transfer"),
               floor.get("floor_us"))
    target("... at the highest rate without failed calls", r, 2, "x",
           None if r is None else r <= 2)
    r = _get(res, "moderate", "ratio_to_paced_floor")
    target("... against the floor paced at the moderate rate (same socket "
           "calls, woken the same way)", r, 2, "x",
           None if r is None else r <= 2)
    r = _get(res, "instructions", "c", "ratio_to_floor")
    target("... counted in instructions (callgrind)", r, 2, "x",
           None if r is None else r <= 2)
    target("CPU per transfer well under 100 us", cpu, 100, "us",
           None if cpu is None else cpu < 100)
    for kind, lim in (("lua", 1.15), ("python", 1.3)):
        v = _get(res, "bindings", kind, "ratio_to_c")
        target(f"{kind} policy at most {lim}x the C-only cost", v, lim, "x",
               None if v is None else v <= lim)
        v = _get(res, "instructions", kind, "ratio_to_c")
        if v is not None:
            target("... counted in instructions (callgrind)", v, lim, "x",
                   v <= lim)
    v = _get(res, "memory", "sessions", "bytes_per_session")
    target("RSS per established session at most 16 KiB", v, 16384, "bytes",
           None if v is None else v <= 16384)
    v = _get(res, "latency", "refer_to_202_us", "p99")
    target("p99 REFER to 202 under 1 ms at the moderate rate", v, 1000, "us",
           None if v is None else v < 1000)
    res["targets"] = t


def _fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def write_markdown(res: dict, path: Path) -> None:
    m = res.get("meta", {})
    L = ["# sipreferral-agent benchmark", "",
         f"{m.get('date', '')} — `{m.get('command', '')}` — "
         f"commit {m.get('commit', '?')}"
         f"{' (tree modified)' if m.get('tree_modified') else ''}, "
         f"{m.get('build_type', '?')} build, {m.get('cpus')} CPUs "
         f"({m.get('cpu', '')}), kernel {m.get('kernel', '')}, "
         f"load average at start "
         f"{', '.join(f'{x:.2f}' for x in m.get('load_average_at_start', []))}."
         , ""]
    if res.get("targets"):
        L += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
        for t in res["targets"]:
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            L.append(f"| {t['target']} | {_fmt(t['value'], 2)} {t['unit'] if t['value'] is not None else ''} | {met} |")
        L.append("")
    f = res.get("floor")
    if f:
        L += ["## Floor: libosip2 alone, per transfer", "",
              f"{f['messages']} messages ({f['received']} received, "
              f"{f['sent']} sent, {f['bytes']:,} bytes) of one captured "
              "transfer (`transfer.pcap`).", "",
              "| parse all | serialise sent | floor | socket calls | floor + sockets | floor, library's allocator |",
              "|---|---|---|---|---|---|",
              f"| {_fmt(f['parse_us'])} µs | {_fmt(f['serialise_us'])} µs | "
              f"{_fmt(f['floor_us'])} µs | {_fmt(f.get('io_us'))} µs | "
              f"{_fmt(f.get('floor_with_io_us'))} µs | "
              f"{_fmt(f.get('floor_pool_us'))} µs |", "",
              "The targets compare with the floor as defined (libosip2 on "
              "malloc); the last column is the same loop with libosip2 on "
              "the library's allocator (`csrc/pool.c`), as in the agent.", ""]
        pf = f.get("paced")
        if pf:
            L += [f"The loop runs hot. Paced at {pf['rate']:g} transfers/s "
                  "(`bench_floor --paced`: a peer process replays the "
                  "received messages over loopback UDP, each group once the "
                  "floor's answers to the previous one are back; the floor, "
                  "woken by epoll, parses each and parses, serialises and "
                  "sends the messages the agent sent next), the same work "
                  f"costs {_fmt(pf['paced_us'])} µs/transfer "
                  f"({_fmt(pf['user_us'])} user, {_fmt(pf['sys_us'])} sys; "
                  f"{_fmt(pf['switches_per_transfer'], 1)} context switches "
                  "per transfer), median of "
                  f"{len(pf['runs'])} runs of {pf['transfers']}.", ""]
    mod = res.get("moderate")
    if mod:
        L += [f"## Moderate rate: {mod['rate']:g} transfers/s", "",
              "| transfers/s | CPU µs/transfer | user | sys | context "
              "switches | vs floor | vs floor+sockets | vs paced floor "
              "| completed | failed | retrans |",
              "|---|---|---|---|---|---|---|---|---|---|---|",
              f"| {_fmt(mod.get('achieved_rate'))} | "
              f"{_fmt(mod.get('cpu_us_per_transfer'))} | "
              f"{_fmt(mod.get('user_us_per_transfer'))} | "
              f"{_fmt(mod.get('sys_us_per_transfer'))} | "
              f"{_fmt(mod.get('switches_per_transfer'), 1)} | "
              f"{_fmt(mod.get('ratio_to_floor'), 2)}x | "
              f"{_fmt(mod.get('ratio_to_floor_with_io'), 2)}x | "
              f"{_fmt(mod.get('ratio_to_paced_floor'), 2)}x | "
              f"{mod['completed']} | {mod['failed']} | "
              f"{mod['retransmissions']} |", "",
              f"Median of {len(mod['runs'])} runs of {mod['calls_per_run']} "
              "transfers; CPU is the agent's user+sys time (wait4 after a "
              "clean shutdown, less an idle start/stop), divided by the "
              "completed transfers."]
        ps = mod.get("peers_speedup") or {}
        if ps:
            L.append("Against the project brief's figures for other stacks: " + ", ".join(
                f"{k} ~{v / 1000:g} ms/transfer ({_fmt(ps[k])}x ours)"
                for k, v in PEERS_US.items()) + ".")
        L.append("")
    busy = res.get("busy")
    if busy:
        L += [f"## With {busy['held']:,} other calls up, {busy['rate']:g} "
              "transfers/s", "",
              "| agent | CPU µs/transfer | user | sys | vs no calls up | "
              "completed | failed |", "|---|---|---|---|---|---|---|"]
        for kind, r in busy["runs"].items():
            if "not_measured" in r:
                L.append(f"| {kind} | not measured: {r['not_measured']} "
                         "| | | | | |")
                continue
            if r.get("idle_tcp"):
                kind = f"c, no calls held, {r['idle_tcp']:,} idle TCP connections"
            L.append(f"| {kind} | {_fmt(r.get('cpu_us_per_transfer'))} | "
                     f"{_fmt(r.get('user_us_per_transfer'))} | "
                     f"{_fmt(r.get('sys_us_per_transfer'))} | "
                     f"{_fmt(r.get('ratio_to_no_calls_up'), 2)}"
                     f"{'x' if r.get('ratio_to_no_calls_up') else ''} | "
                     f"{r['completed']} | {r['failed']} |")
        L += ["", "The moderate load while SIPp holds the other calls "
              "open (`hold.xml`, established at 2000/s before the load "
              "starts). CPU is the agent's during the load only "
              "(`/proc/PID/schedstat`); \"vs no calls up\" compares with "
              "the moderate run (C) and the bindings part (Lua, Python) of "
              "the same report. The last row has no calls held: the "
              "bench holds that many idle TCP connections open to the "
              "agent (phones that stay connected between calls).", ""]
    ins = res.get("instructions")
    if ins and "not_measured" not in ins:
        L += ["## Instructions per transfer (callgrind, noise-free)", "",
              "| | instructions/transfer | vs floor | vs C agent |",
              "|---|---|---|---|",
              f"| libosip2 floor | {ins['floor_ir']:,} | 1.00x | |"]
        if ins.get("floor_pool_ir"):
            L.append(f"| ... on the library's allocator | {ins['floor_pool_ir']:,} | "
                     f"{ins['floor_pool_ir'] / ins['floor_ir']:.2f}x | |")
        for kind, name in (("c", "C agent"), ("lua", "Lua policy"),
                           ("python", "Python twin + policy.py"),
                           ("python-flags", "Python twin, flags only")):
            k = ins.get(kind)
            if k and "error" in k:
                L.append(f"| {name} | not measured: {k['error']} | | |")
            elif k:
                L.append(f"| {name} | {k['ir_per_transfer']:,} | "
                         f"{k['ratio_to_floor']:.2f}x | "
                         f"{_fmt(k.get('ratio_to_c'), 2)} |")
        L += ["", f"{ins['transfers']} transfers at {ins['rate']:g}/s under "
              "valgrind --tool=callgrind, less a run with 5; user-space "
              "instructions only (the kernel's work is not counted).", ""]
    lat = res.get("latency")
    if lat:
        a, b = lat["refer_to_202_us"], lat["refer_to_invite_us"]
        L += [f"## Latency at {lat['rate']:g} transfers/s (capture on lo)", "",
              "| | n | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|",
              f"| REFER → 202 | {a['n']} | {_fmt(a['p50'])} µs | "
              f"{_fmt(a['p90'])} µs | {_fmt(a['p99'])} µs | {_fmt(a['max'])} µs |",
              f"| REFER → INVITE to target | {b['n']} | {_fmt(b['p50'])} µs | "
              f"{_fmt(b['p90'])} µs | {_fmt(b['p99'])} µs | {_fmt(b['max'])} µs |",
              ""]
    sw = res.get("sweep")
    if sw:
        L += ["## By rate", "",
              "| rate | achieved | CPU µs/transfer | floor paced, µs "
              "| agent busy | SIPp busy "
              "| agent peak RSS | failed | REFER→202 p50/p99 µs "
              "| REFER→INVITE p50/p99 µs |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for s in sw:
            c, lr = s["cpu"], s["latency_run"]["latency"]
            L.append(
                f"| {s['rate']:g} | {_fmt(c['achieved_rate'])} | "
                f"{_fmt(c.get('cpu_us_per_transfer'))} | "
                f"{_fmt(_get(s, 'paced_floor', 'paced_us'))} | "
                f"{c['agent_busy']:.0%} | {c['sipp_busy']:.0%} | "
                f"{_fmt(c['agent_max_rss_kb'] / 1024, 0) + ' MiB' if c.get('agent_max_rss_kb') else '–'} | "
                f"{c['failed'] + s['latency_run']['failed']} | "
                f"{_fmt(lr['refer_to_202_us']['p50'])} / "
                f"{_fmt(lr['refer_to_202_us']['p99'])} | "
                f"{_fmt(lr['refer_to_invite_us']['p50'])} / "
                f"{_fmt(lr['refer_to_invite_us']['p99'])} |")
        L += ["", "Busy: CPU seconds per wall second during the load (1.0 = "
              "one core); the machine has "
              f"{m.get('cpus')} cores shared by the agent and both SIPp.", ""]
    mx = res.get("max_rate")
    if mx:
        L += ["## Highest rate without failed calls", ""]
        if mx.get("rate"):
            b = mx["best"]
            L.append(f"{mx['rate']:g} transfers/s ({b['completed']} "
                     f"transfers, achieved {_fmt(b['achieved_rate'])}/s, "
                     f"{_fmt(b.get('cpu_us_per_transfer'))} µs/transfer; "
                     f"agent busy {b['agent_busy']:.0%}, SIPp busy "
                     f"{b['sipp_busy']:.0%}); first failing probe: "
                     f"{_fmt(mx.get('first_failing_rate'))}/s.")
        else:
            L.append(mx.get("note", "not found"))
        L += ["", "| probe rate | completed | failed | achieved | agent busy "
              "| SIPp busy | agent peak RSS | ok |",
              "|---|---|---|---|---|---|---|---|"]
        for p in mx.get("probes", []):
            rss = p.get("agent_max_rss_kb")
            L.append(f"| {p['rate']:g}{' (confirm)' if p.get('confirmation') else ''}"
                     f" | {p['completed']}/{p['calls']} | "
                     f"{p['failed']} | {_fmt(p['achieved_rate'])} | "
                     f"{p['agent_busy']:.0%} | {p['sipp_busy']:.0%} | "
                     f"{_fmt(rss / 1024, 0) + ' MiB' if rss else '–'} | "
                     f"{'yes' if p['ok'] else 'no'} |")
        L.append("")
    bi = res.get("bindings")
    if bi:
        L += ["## Policy in a script (binding overhead)", "",
              "| policy | CPU µs/transfer | ratio to C | completed | failed |",
              "|---|---|---|---|---|"]
        c = bi.get("c") if "cpu_us_per_transfer" in bi.get("c", {}) else \
            res.get("moderate", {})
        L.append(f"| C flags (`--on-refer follow`) | "
                 f"{_fmt(c.get('cpu_us_per_transfer'))} | 1.00 | "
                 f"{c.get('completed')} | {c.get('failed')} |")
        for kind, name in (("lua", "Lua (`--script bench/policy.lua`)"),
                           ("python", "Python twin (`--script bench/policy.py`)"),
                           ("python-flags", "Python twin, flags only")):
            b = bi.get(kind, {})
            if "not_measured" in b or "error" in b:
                why = b.get("not_measured") or "failed: " + b["error"]
                L.append(f"| {name} | not measured: {why} | | | |")
            elif b:
                L.append(f"| {name} | {_fmt(b.get('cpu_us_per_transfer'))} | "
                         f"{_fmt(b.get('ratio_to_c'), 2)} | {b['completed']} "
                         f"| {b['failed']} |")
        L += ["", "Each round runs the C agent and every script agent back "
              "to back, at the moderate rate; a ratio is the median of "
              "the per-round ratios (the machine drifts more between "
              "parts of the run than within a round).", ""]
    mem = res.get("memory")
    if mem:
        s, r = mem["sessions"], mem["referrals"]
        L += ["## Memory (agent RSS growth)", "",
              "| held by SIPp | count | RSS idle | RSS held | per item |",
              "|---|---|---|---|---|",
              f"| established sessions | {s['sessions']:,} | "
              f"{s['rss_idle_kb']:,} KiB | {s['rss_ready_kb']:,} KiB | "
              f"{_fmt(s['bytes_per_session'])} B/session |",
              f"| sessions + pending referral | {r['sessions']:,} | "
              f"{r['rss_idle_kb']:,} KiB | {r['rss_ready_kb']:,} KiB | "
              f"{_fmt(r['bytes_per_referral'])} B/referral beyond the "
              "session |", "",
              "Read once all calls are established (SIPp's counts), at "
              f"{_fmt(s['rate'], 0)} calls/s. A pending referral's figure "
              "includes its REFER's server transaction (kept 64×T1 = 32 s "
              "for retransmissions) and its NOTIFY's client transaction "
              "(T4 = 5 s): each holds its request until the final "
              "response and the exact bytes it may have to send again.", ""]
    path.write_text("\n".join(L) + "\n")


def write_plot(res: dict, path: Path) -> None:
    """CPU per transfer and latency by rate; skipped without a sweep."""
    sw = res.get("sweep")
    if not sw:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [s["rate"] for s in sw]
    cpu = [s["cpu"].get("cpu_us_per_transfer") for s in sw]
    user = [s["cpu"].get("user_us_per_transfer") for s in sw]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    a1.plot(rates, cpu, "o-", label="agent user+sys")
    a1.plot(rates, user, "s--", label="agent user only")
    paced = [_get(s, "paced_floor", "paced_us") for s in sw]
    if all(p is not None for p in paced):
        a1.plot(rates, paced, "^-.", color="gray",
                label="libosip2 floor, paced at the rate")
    f = res.get("floor")
    if f:
        a1.axhline(f["floor_us"], color="gray", ls=":",
                   label="libosip2 floor (parse+serialise, hot loop)")
        if f.get("floor_with_io_us"):
            a1.axhline(f["floor_with_io_us"], color="black", ls=":",
                       label="floor + socket calls")
    mx = res.get("max_rate") or {}
    if mx.get("rate") and mx["best"].get("cpu_us_per_transfer"):
        a1.plot([mx["rate"]], [mx["best"]["cpu_us_per_transfer"]], "r*",
                ms=12, label=f"highest rate without failures")
    a1.set_xscale("log")
    a1.set_xlabel("transfers per second")
    a1.set_ylabel("CPU µs per transfer")
    a1.set_ylim(bottom=0)
    a1.set_title("CPU per completed transfer")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    for key, lab, mk in (("refer_to_202_us", "REFER→202", "o"),
                         ("refer_to_invite_us", "REFER→INVITE", "s")):
        p50 = [s["latency_run"]["latency"][key]["p50"] for s in sw]
        p99 = [s["latency_run"]["latency"][key]["p99"] for s in sw]
        a2.plot(rates, p50, mk + "-", label=f"{lab} p50")
        a2.plot(rates, p99, mk + "--", label=f"{lab} p99")
    a2.axhline(1000, color="red", ls=":", lw=1, label="1 ms")
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("transfers per second")
    a2.set_ylabel("µs (capture on lo)")
    a2.set_title("Latency")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3, which="both")
    m = res.get("meta", {})
    fig.suptitle(f"sipreferral-agent, {m.get('cpus')} CPUs, "
                 f"{m.get('date', '')[:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
