"""Turn bench results (the dict written to latest.json) into the Markdown report and target verdicts."""

from __future__ import annotations

from typing import Any

PEERS = ("uwsgi", "supervisord", "circus")
PORTABLE = "attachdaemon-portable"  # attachdaemon with ATTACHDAEMON_PLATFORM=portable (bench/portable.py)
SYSTEMS = ("attachdaemon", PORTABLE, *PEERS)


def system_label(system: str, row: dict[str, Any], meta: dict[str, Any]) -> str:
    """A system's name in a table row: attachdaemon's process layer named where both ran."""
    if system == PORTABLE:
        return "attachdaemon (portable)"
    if system == "attachdaemon" and PORTABLE in row:
        return f"attachdaemon ({meta.get('layer', {}).get('attachdaemon', 'auto')})"
    return system


LATENCY_ROWS = [
    ("crash_first", "1. crash → running again, first crash (ms)"),
    ("crash_spaced", "1. crash → running again, spaced repeats (ms)"),
    ("smart_restart", "2. smart (pidfile) daemon killed → restarted (ms)"),
    ("launcher_restart", "2b. smart daemon started by an `sh` launcher killed → restarted (ms)"),
    ("reload_4", "3. graceful reload, 4 attached → all running again (ms)"),
    ("start_200", "5. N=200 start → all running (ms)"),
    ("stop_200", "5. N=200 stop → all gone (ms)"),
    ("status_call", "5. status round trip, N=200 (ms; ad: client.call, uWSGI: stats socket)"),
    ("status_cli", "5. status CLI, N=200 (ms; ad: `status --json`)"),
]


EXEC_ROWS = [
    ("x_first_1", "exec → first daemon running, N=1 (ms)", 60.0, "ms"),
    ("x_all_100", "exec → all running, N=100 (ms)", 300.0, "ms"),
    ("x_stop_100", "stop signal → every process gone, N=100 (ms)", 100.0, "ms"),
    ("x_pss_50", "PSS of the whole tree, N=50 (MB)", 12.0, "MB"),
]


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.{digits}f}" if abs(v) >= 1 else f"{v:.2f}"
    return str(v)


def median(entry: Any) -> float | None:
    if isinstance(entry, dict):
        if "median" in entry:
            return entry["median"]
        if "value_ms" in entry:
            return entry["value_ms"]
    return None


def row_cells(entry: Any) -> list[str]:
    if entry is None:
        return ["-"] * 5
    if isinstance(entry, str):
        return [entry, "", "", "", ""]
    if "median" in entry:
        extra = f" ({entry['timeouts']} timeouts)" if entry.get("timeouts") else ""
        return [
            f"{entry['n']}{extra}",
            fmt(entry["min"]),
            fmt(entry["median"]),
            fmt(entry["p95"]),
            fmt(entry["max"]),
        ]
    if "value_ms" in entry:
        if entry.get("censored"):
            return ["1", "", entry["text"], "", ""]
        return ["1", "", fmt(entry["value_ms"]), "", ""]
    if "timeouts" in entry:
        return [f"0 ({entry['timeouts']} timeouts)", "", "", "", ""]
    return ["-"] * 5


def ratio(ad: Any, peer: Any) -> str:
    a, p = median(ad), median(peer)
    if isinstance(peer, dict) and peer.get("censored"):
        return f"< {a / 1000 / float(peer['text'].split()[0].lstrip('>')):.4f}" if a is not None else "-"
    if a is None or p is None or p == 0:
        return "-"
    return f"{a / p:.4f}" if a / p < 0.01 else f"{a / p:.3f}"


def verdict(ok: bool | None) -> str:
    return "pending" if ok is None else ("PASS" if ok else "MISS")


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    m = res["metrics"]
    out: list[dict[str, Any]] = []

    def add(name: str, value: str, ok: bool | None) -> None:
        out.append({"target": name, "value": value, "verdict": verdict(ok)})

    probe = (res.get("probe") or {}).get("median")
    crash = m.get("crash_spaced", {}).get("attachdaemon")
    cm = median(crash)
    if cm is not None and probe is not None:
        add(
            "crash→running median ≤ probe exec + 5 ms",
            f"{cm:.2f} ms (probe {probe:.2f} ms, +{cm - probe:.2f})",
            cm - probe <= 5,
        )
        add(
            "crash→running median ≤ probe exec + 2 ms (issue 11)",
            f"+{cm - probe:.2f} ms beyond the probe's {probe:.2f} ms",
            cm - probe <= 2,
        )
        add("crash→running p95 ≤ 20 ms", f"{crash['p95']:.2f} ms", crash["p95"] <= 20)
        for peer in PEERS:
            pm = median(m.get("crash_spaced", {}).get(peer))
            if pm is None:
                add(f"crash→running ≥ 50x faster than {peer}", "peer not measured", None)
            else:
                add(
                    f"crash→running ≥ 50x faster than {peer}",
                    f"{pm / cm:.0f}x ({pm:.0f} vs {cm:.2f} ms)",
                    pm / cm >= 50,
                )
    else:
        add("crash→running", "not measured", None)
    sm = median(m.get("smart_restart", {}).get("attachdaemon"))
    add(
        "smart restart median ≤ 10 ms",
        f"{sm:.2f} ms" if sm is not None else "not measured",
        None if sm is None else sm <= 10,
    )
    lm = median(m.get("launcher_restart", {}).get("attachdaemon"))
    add(
        "launcher-started smart restart median ≤ 10 ms",
        f"{lm:.2f} ms" if lm is not None else "not measured",
        None if lm is None else lm <= 10,
    )
    rl = median(m.get("reload_4", {}).get("attachdaemon"))
    rl_entry = m.get("reload_4", {}).get("attachdaemon")
    add(
        "reload of 4 attached ≤ 0.5 s",
        f"{rl:.0f} ms" if rl is not None else str(rl_entry or "not measured"),
        None if rl is None else rl <= 500,
    )
    idle = {n: m.get(f"idle_{n}", {}) for n in (1, 50, 200)}
    ads = {n: v.get("attachdaemon") for n, v in idle.items() if isinstance(v.get("attachdaemon"), dict)}
    if ads:
        wake = {n: a["wakeups"] for n, a in ads.items()}
        add(
            "idle: 0 periodic wake-ups (supervisor+guard)",
            ", ".join(f"N={n}: {w} in {ads[n]['window_s']:.0f}s" for n, w in wake.items()),
            all(w == 0 for w in wake.values()),
        )
        a50, u50 = ads.get(50), idle[50].get("uwsgi")
        if a50 and isinstance(u50, dict):
            add(
                "idle CPU, 50 daemons ≤ uWSGI's",
                f"{a50['cpu_ms_sched']:.2f} ms vs uWSGI {u50['cpu_ms_sched']:.2f} ms "
                f"(scheduler time over {a50['window_s']:.0f}s)",
                a50["cpu_ms_sched"] <= u50["cpu_ms_sched"],
            )
        else:
            add("idle CPU, 50 daemons ≤ uWSGI's", "not measured", None)
        rss = max(a["rss_mb"] for a in ads.values())
        pss = max(a["pss_total_mb"] for a in ads.values())
        add(
            "supervisor RSS ≤ 20 MB",
            ", ".join(f"N={n}: {a['rss_mb']:.1f}" for n, a in ads.items()) + " MB",
            rss <= 20,
        )
        add(
            "supervisor+guard PSS ≤ 25 MB",
            ", ".join(f"N={n}: {a['pss_total_mb']:.1f}" for n, a in ads.items()) + " MB",
            pss <= 25,
        )
    else:
        add("idle cost", "not measured", None)
    st = median(m.get("start_200", {}).get("attachdaemon"))
    add(
        "N=200 start ≤ 0.5 s",
        f"{st:.0f} ms" if st is not None else "not measured",
        None if st is None else st <= 500,
    )
    sp = median(m.get("stop_200", {}).get("attachdaemon"))
    add(
        "N=200 stop ≤ 0.2 s",
        f"{sp:.0f} ms" if sp is not None else "not measured",
        None if sp is None else sp <= 200,
    )
    sc = median(m.get("status_cli", {}).get("attachdaemon"))
    scall = median(m.get("status_call", {}).get("attachdaemon"))
    add(
        "status --json ≤ 100 ms (N=200, CLI)",
        (f"CLI {sc:.0f} ms" if sc is not None else "CLI not measured")
        + (f"; client.call {scall:.1f} ms" if scall is not None else ""),
        None if sc is None else sc <= 100,
    )
    add(
        "status --json CLI ≤ 30 ms (N=200, issue 11)",
        f"{sc:.0f} ms" if sc is not None else "not measured",
        None if sc is None else sc <= 30,
    )
    for key, title, limit, unit in EXEC_ROWS:
        v = median(m.get(key, {}).get("attachdaemon"))
        name = f"exec form: {title.rsplit(' (', 1)[0]} ≤ {limit:g} {unit}"
        add(name, f"{v:.1f} {unit}" if v is not None else "not measured", None if v is None else v <= limit)
    gb = m.get("gunicorn_boot", {}).get("attachdaemon")
    if isinstance(gb, dict) and gb.get("none") and gb.get("with_10"):
        delta = gb["with_10"]["median"] - gb["none"]["median"]
        add(
            "gunicorn boot with 10 daemons ≤ +150 ms",
            f"+{delta:.0f} ms ({gb['with_10']['median']:.0f} vs {gb['none']['median']:.0f} ms)",
            delta <= 150,
        )
        add("gunicorn boot with 10 daemons ≤ +50 ms (issue 11)", f"+{delta:.0f} ms", delta <= 50)
    else:
        add("gunicorn boot with 10 daemons ≤ +150 ms", str(gb or "not measured"), None)
    return out


def render(res: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    meta = res["meta"]
    m = res["metrics"]
    L: list[str] = []
    L.append("# attachdaemon benchmark")
    L.append("")
    L.append(
        f"- date: {meta['date']}; duration {meta.get('duration_s', '?')} s"
        + (" (--quick)" if meta["quick"] else "")
    )
    L.append(f"- machine: nproc {meta['nproc']}, kernel {meta['kernel']}, Python {meta['python']}")
    L.append(f"- command: `{meta['command']}`")
    la0, la1 = meta.get("loadavg_start"), meta.get("loadavg_end")
    if la0 is not None:
        busy = max(la0, la1 or 0) > 0.7
        L.append(
            f"- load average (1 min) at start {la0:.2f}, at end {la1 or 0:.2f}"
            + (" - **the machine was busy with other work: latencies are noisy**" if busy else "")
        )
    L.append("- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    for s, why in res.get("unavailable", {}).items():
        L.append(f"- **{s} unavailable**: {why}")
    p = res.get("probe")
    if p:
        L.append(
            f"- probe fork+exec+announce ({p['how']}): min {fmt(p['min'], 2)}, median "
            f"{fmt(p['median'], 2)}, p95 {fmt(p['p95'], 2)}, max {fmt(p['max'], 2)} ms (n={p['n']})"
        )
    L.append(
        f"- trials of metrics 1-2 are spaced {meta['spacing_s']} s apart (daemon age at each kill), so "
        "throttles (uWSGI 3-s window, supervisord startsecs, attachdaemon min_uptime) are not triggered; "
        "the crash loop measures the throttles on their own"
    )
    L.append("")
    L.append("## Latencies")
    L.append("")
    L.append("| metric | system | n | min | median | p95 | max | ad ÷ peer (median) |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, title in LATENCY_ROWS:
        row = m.get(key)
        if not row:
            continue
        ad = row.get("attachdaemon")
        for s in SYSTEMS:
            if s not in row:
                continue
            r = ratio(ad, row[s]) if s != "attachdaemon" else ""
            L.append(
                f"| {title} | {system_label(s, row, meta)} | " + " | ".join(row_cells(row[s])) + f" | {r} |"
            )
    gb = m.get("gunicorn_boot", {}).get("attachdaemon")
    if isinstance(gb, dict):
        for label, k in (("no daemons", "none"), ("10 daemons", "with_10")):
            L.append(
                f"| 6. gunicorn start → first HTTP 200 (ms) | gunicorn, {label} | "
                + " | ".join(row_cells(gb.get(k)))
                + " | |"
            )
    elif gb:
        L.append(f"| 6. gunicorn start → first HTTP 200 (ms) | attachdaemon | {gb} | | | | | |")
    L.append("")
    cl = m.get("crash_loop")
    if cl:
        L.append("## Crash loop (probe exits 3 right after announcing)")
        L.append("")
        L.append("| system | window | starts | gaps between starts (ms) | state at end |")
        L.append("| --- | --- | --- | --- | --- |")
        for s in SYSTEMS:
            if s in cl:
                c = cl[s]
                gaps = ", ".join(fmt(g, 1) for g in c["gaps_ms"][:15])
                state = (c.get("state_at_end") or "").replace("\n", "; ")
                L.append(f"| {s} | {c['window_s']:.0f} s | {c['starts']} | {gaps} | {state} |")
        L.append("")
    idle_keys = [k for k in ("idle_1", "idle_50", "idle_200") if k in m]
    if idle_keys:
        L.append("## 4. Idle cost (supervisor process, plus attachdaemon's guard)")
        L.append("")
        L.append(
            "N=1 and N=50: all systems side by side in one window; N=200: each system alone. CPU from "
            "utime+stime (10-ms ticks) and from /proc/PID/task/*/schedstat; wake-ups = voluntary + "
            "involuntary context switches of every thread."
        )
        L.append("")
        L.append(
            "| N | system | window | CPU ms (ticks) | CPU ms (sched) | wake-ups | wake-ups/s | RSS sup MB | "
            "RSS sup+guard MB | PSS sup MB | PSS sup+guard MB | threads |"
        )
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for k in idle_keys:
            for s in SYSTEMS:
                v = m[k].get(s)
                if v is None:
                    continue
                if isinstance(v, str):
                    L.append(f"| {k[5:]} | {s} | {v} |" + " |" * 9)
                    continue
                L.append(
                    f"| {k[5:]} | {s} | {v['window_s']:.0f} s | {fmt(v['cpu_ms_ticks'])} | "
                    f"{fmt(v['cpu_ms_sched'], 2)} | {v['wakeups']} | {v['wakeups_per_s']:.2f} | "
                    f"{v['rss_mb']:.1f} | {v['rss_total_mb']:.1f} | {v['pss_mb']:.1f} | "
                    f"{v['pss_total_mb']:.1f} | {v['threads']} |"
                )
        L.append("")
    if any(PORTABLE in (m.get(k) or {}) for k in ("crash_spaced", "idle_smart_1", "idle_smart_50")):
        L.extend(portable_section(res))
    if any(k in m for k, _, _, _ in EXEC_ROWS):
        L.extend(exec_section(res))
    tg = targets(res)
    L.append("## Targets (attachdaemon)")
    L.append("")
    L.append("| target | measured | verdict |")
    L.append("| --- | --- | --- |")
    for t in tg:
        L.append(f"| {t['target']} | {t['value']} | {t['verdict']} |")
    L.append("")
    L.append("## Peer defaults (not tuned)")
    L.append("")
    for s, text in meta["peer_defaults"].items():
        L.append(f"- **{s}**: {text}")
    L.append("")
    if res.get("notes"):
        L.append("## Notes from this run")
        L.append("")
        for n in res["notes"]:
            L.append(f"- {n}")
        L.append("")
    c = res.get("cleanup", {})
    L.append("## Cleanup")
    L.append("")
    for lo in c.get("leftovers_during_run", []):
        L.append(
            f"- {lo['system']}: {len(lo['processes'])} process(es) {lo.get('why', 'left behind')}: "
            + "; ".join(lo["processes"][:5])
            + (" …" if len(lo["processes"]) > 5 else "")
        )
    if c.get("left"):
        L.append(f"- could not be ended: {', '.join(c['left'])}")
    else:
        L.append(
            f"- {c.get('processes_seen', '?')} processes seen in all "
            "(supervisors, guards, workers, daemons); "
            f"{c.get('ended_at_end', 0)} still running at the end were killed; none is left"
        )
    L.append("")
    return "\n".join(L), tg


def exec_section(res: dict[str, Any]) -> list[str]:
    """The exec form: every system timed from the exec of the command a user types."""
    m = res["metrics"]
    how = res.get("exec_form", {}).get("how", "")
    L = ["## 7. Exec form (from the exec of the command a user types)", ""]
    L.append(
        "`attachdaemon --config f.toml run`, `uwsgi --ini u.ini`, `supervisord -n -c s.conf`, "
        "`circusd c.ini`; "
        + how
        + ". PSS: every process of the tree that is not a daemon (uWSGI: master and its one worker)."
    )
    L.append("")
    L.append("| metric | system | n | min | median | p95 | max | ad ÷ peer (median) | target |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, title, limit, unit in EXEC_ROWS:
        row = m.get(key)
        if not row:
            continue
        ad = row.get("attachdaemon")
        for s in SYSTEMS:
            if s not in row:
                continue
            r = ratio(ad, row[s]) if s != "attachdaemon" else ""
            t = f"≤ {limit:g} {unit}" if s == "attachdaemon" else ""
            L.append(f"| {title} | {s} | " + " | ".join(row_cells(row[s])) + f" | {r} | {t} |")
    pss = m.get("x_pss_50", {})
    if pss:
        L.append("")
        L.append(
            "PSS split (MB, the median run): "
            + "; ".join(
                f"{s}: " + ", ".join(f"{r} {mb:.1f}" for r, mb in v.get("processes", []))
                for s, v in pss.items()
                if isinstance(v, dict)
            )
        )
    L.append("")
    return L


def _lat(entry: Any) -> str:
    """``median (p95 P)`` of a latency entry, or what the entry says instead."""
    if isinstance(entry, dict) and "median" in entry:
        extra = f", {entry['timeouts']} timeouts" if entry.get("timeouts") else ""
        return f"{fmt(entry['median'], 2)} (p95 {fmt(entry['p95'], 2)}, n={entry['n']}{extra})"
    return "-" if entry is None else str(entry)


def portable_section(res: dict[str, Any]) -> list[str]:
    """Issue 14: the portable process layer beside linux, on crash → running, smart restart and
    idle wake-ups with smart daemons (the polling fallback's, counted)."""
    m, meta = res["metrics"], res["meta"]
    auto = meta.get("layer", {}).get("attachdaemon", "auto")
    poll = meta.get("portable_poll_interval_s")
    L = ["## Portable process layer beside linux (issue 14)", ""]
    L.append(
        f"`attachdaemon` runs the layer chosen here ({auto}); `attachdaemon (portable)` is the same "
        "owner and declarations with `ATTACHDAEMON_PLATFORM=portable` in the supervisor's environment: "
        "psutil, and on Linux (no kqueue) exits of processes that are not its children polled"
        + (f" every {poll:g} s" if isinstance(poll, (int, float)) else "")
        + " while some are watched. Idle rows: N smart daemons (not the supervisor's children), both "
        "layers side by side in one window; wake-ups are the supervisor's and guard's context "
        "switches, waiting calls the supervisor's epoll/poll/select calls under `strace -c` over a "
        "second window."
    )
    L.append("")
    L.append(f"| metric | attachdaemon ({auto}) | attachdaemon (portable) |")
    L.append("| --- | --- | --- |")
    probe = (res.get("probe") or {}).get("median")

    def both(key: str, cell: Any) -> str:
        row = m.get(key) or {}
        return f"{cell(row.get('attachdaemon'))} | {cell(row.get(PORTABLE))}"

    def beyond(entry: Any) -> str:
        med = median(entry)
        return "-" if med is None or probe is None else f"{med - probe:+.2f}"

    L.append(f"| crash → running again, spaced repeats, median ms | {both('crash_spaced', _lat)} |")
    if probe is not None:
        L.append(
            f"| … beyond the probe's own fork+exec ({probe:.2f} ms), ms | {both('crash_spaced', beyond)} |"
        )
    L.append(f"| smart (pidfile) daemon killed → restarted, median ms | {both('smart_restart', _lat)} |")
    L.append(
        f"| smart daemon started by an `sh` launcher killed → restarted, median ms | "
        f"{both('launcher_restart', _lat)} |"
    )
    for n in (1, 50):
        idle, calls = m.get(f"idle_smart_{n}"), m.get(f"idle_smart_{n}_calls")
        if not idle:
            continue
        daemons = f"{n} smart daemon" + ("s" if n != 1 else "")

        def wake(v: Any) -> str:
            if not isinstance(v, dict):
                return "-" if v is None else str(v)
            return f"{v['wakeups']} in {v['window_s']:.0f} s ({v['wakeups_per_s']:.2f}/s)"

        def waits(v: Any) -> str:
            if not isinstance(v, dict):
                return "-" if v is None else str(v)
            return f"{v['wait_calls']} in {v['window_s']:.0f} s ({v['wait_calls_per_s']:.2f}/s)"

        def cpu(v: Any) -> str:
            return f"{v['cpu_ms_sched']:.2f}" if isinstance(v, dict) else "-"

        L.append(f"| idle, {daemons}: wake-ups (supervisor + guard) | {both(f'idle_smart_{n}', wake)} |")
        if calls:
            L.append(
                f"| idle, {daemons}: supervisor's waiting calls (strace -c) | "
                f"{both(f'idle_smart_{n}_calls', waits)} |"
            )
        L.append(f"| idle, {daemons}: CPU ms (scheduler time) | {both(f'idle_smart_{n}', cpu)} |")
    layers = res.get("layers", {})
    if layers:

        def held(s: str) -> str:
            got = [str(x["supervisor_pidfds"]) for x in layers.get(s, [])]
            return ", ".join(got) if got else "-"

        L.append(
            "| pidfds the supervisor holds, daemons running (the layer check: linux one per watched "
            f"process, portable none) | {held('attachdaemon')} | {held(PORTABLE)} |"
        )
    L.append("")
    return L
