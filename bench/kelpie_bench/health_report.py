"""The health scenario's table, notes and section of RESULTS.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .health import (
    HEALTH_ALLOC_AFTER_MS, HEALTH_ALLOC_MB, HEALTH_CAP_S, HEALTH_CPU_TARGET_PCT, HEALTH_LIMIT,
    HEALTH_LIMIT_MIB, HEALTH_RESTART_TARGET_S, HEALTH_VARIANTS,
)
from .managers import Kelpie, Pm2
from .processes import CLK_TCK
from .report import existing_section, merge_section
from .stats import fmt, fmt_ratio, round_floats


def merge_health_section(report: str, section: str | None) -> str:
    return merge_section(report, HEALTH_BEGIN, HEALTH_END, section)


def existing_health_section(path: Path | None) -> str | None:
    return existing_section(path, HEALTH_BEGIN, HEALTH_END)


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" (met)" if ok else " (missed)")


def _cpu(d: dict) -> str:
    if d.get("cpu_pct") is None:
        return "n/a"
    s = f"{d['cpu_pct']:.2f} %"
    if d.get("windows", 0) > 1:
        s += f" ({d['cpu_pct_min']:.2f}–{d['cpu_pct_max']:.2f})"
    return s


def _threads(d: dict) -> str:
    t = d.get("threads_pct")
    if not t:
        return "n/a"
    shown = [(k, v) for k, v in t.items() if round(v, 2) > 0][:3]  # not the idle ones
    return ", ".join(f"{k} {v:.2f} %" for k, v in shown) or "0.00 %"


def _lat(d: dict, key: str = "restart_ms") -> str:
    if not d or not d.get("rounds"):
        return "n/a"
    n, ok = d["rounds"], d["restarted"]
    if not ok:
        return f"not restarted within {HEALTH_CAP_S:.0f} s ({n} round{'s' * (n > 1)})"
    s = f"{d[key] / 1e3:.2f} s"
    if ok > 1:
        s += f" ({d[key + '_min'] / 1e3:.2f}–{d[key + '_max'] / 1e3:.2f} s)"
    s += f", {n} round{'s' * (n > 1)}"
    if ok < n:
        s += f", {n - ok} not restarted within {HEALTH_CAP_S:.0f} s"
    return s


def _crowded(d: dict) -> str:
    if d.get("crowded_pct") is None:
        return "n/a"
    return f"{d['crowded_pct']:.2f} % ({d['crowded_processes']} processes)"


def _causes(d: dict, how: str) -> str:
    rs = [(d.get(k) or {}) for k, _t in HEALTH_VARIANTS]
    total = sum(x.get("restarted", 0) for x in rs)
    if not any(x.get("rounds") for x in rs):
        return "n/a"
    return f"{sum(x.get('memory_cause', 0) for x in rs)} of {total} ({how})"


def _alloc(d: dict) -> str:
    parts = []
    for k, _t in HEALTH_VARIANTS:
        x = d.get(k) or {}
        if not x.get("rounds"):
            continue
        over, took = x.get("over_after_ms"), x.get("alloc_ms")
        s = f"{k}: over after {'?' if over is None else f'{over:.0f}'} ms"
        s += f", done in {'?' if took is None else f'{took:.0f}'} ms"
        if x.get("cut_short"):
            s += f" ({x['cut_short']} of {x['restarted']} restarted before it was done)"
        if x.get("from_allocating"):
            s += (f" ({x['from_allocating']} without an `over` stamp before the restart: "
                  f"latency from `allocating`)")
        parts.append(s)
    return "; ".join(parts) or "n/a"


def build_health_table(pm2: dict | None, kel: dict) -> str:
    """The health scenario's rows. pm2/kel: {"cpu": bench_health_cpu() or None, "memory":
    bench_health_memory() or None}; pm2 None with --kelpie-only."""
    p = pm2 or {}
    pc, kc = p.get("cpu") or {}, kel.get("cpu") or {}
    pmem, kmem = p.get("memory") or {}, kel.get("memory") or {}

    n = kc.get("apps") or pc.get("apps") or "?"
    w = kc.get("window_s") or pc.get("window_s") or 0
    lines = ["| Metric | PM2 7 | Kelpie | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    # The target is PM2's own figure in the same run; without PM2 (--kelpie-only), a bound.
    if kc.get("cpu_pct") is not None and pc.get("cpu_pct") is not None:
        ok, target = kc["cpu_pct"] <= pc["cpu_pct"], "Kelpie <= PM2 in the same run"
    else:
        ok = None if kc.get("cpu_pct") is None else kc["cpu_pct"] < HEALTH_CPU_TARGET_PCT
        target = f"Kelpie < {HEALTH_CPU_TARGET_PCT:g} % of one core"
    nw = kc.get("windows") or pc.get("windows") or 0
    lines.append(f"| Daemon CPU with {n} idle apps, % of one core over {w:g} s with nobody calling "
                 f"the CLI: median of {nw} window(s) (min–max) | {_cpu(pc)} | {_cpu(kc)} | "
                 f"{fmt_ratio(pc.get('cpu_pct'), kc.get('cpu_pct'))} | {target}{_verdict(ok)} |")
    if kc.get("crowded_pct") is not None or pc.get("crowded_pct") is not None:
        same = None
        if kc.get("crowded_pct") is not None and kc.get("cpu_pct") is not None:
            # Within one 10 ms tick over the window of the idle figure.
            tick_pct = 100 / CLK_TCK / max(w, 1)
            same = kc["crowded_pct"] <= kc["cpu_pct"] + tick_pct
        lines.append(f"| The same, one window, with {kc.get('unrelated') or pc.get('unrelated')} "
                     f"unrelated idle processes on the machine | {_crowded(pc)} | "
                     f"{_crowded(kc)} | "
                     f"{fmt_ratio(pc.get('crowded_pct'), kc.get('crowded_pct'))} | Kelpie: no "
                     f"more than without them (within a tick){_verdict(same)} |")
    procs = kc.get("processes_on_machine") or pc.get("processes_on_machine")
    lines.append(f"| What the daemon does in that window | {Pm2.sampling} | {Kelpie.sampling} | - "
                 f"| - |" if procs is None else
                 f"| What the daemon does in that window ({procs:.0f} processes on the machine) | "
                 f"{Pm2.sampling} | {Kelpie.sampling} | - | - |")
    lines.append(f"| Daemon CPU by thread, busiest 3 (% of one core, median over the windows) | "
                 f"{_threads(pc)} | {_threads(kc)} | - | - |")
    pr, kr = pc.get("rss_mb"), kc.get("rss_mb")
    lines.append(f"| Daemon RSS, {n} apps | {fmt(pr, 'MB')} | {fmt(kr, 'MB')} | "
                 f"{fmt_ratio(pr, kr)} | - |")
    scrape = kc.get("scrape")
    if scrape:
        lines.append(f"| A /metrics scrape with {n} apps (`kelpie web`; PM2 has none built in): "
                     f"median answer time, daemon CPU per scrape (over {scrape['scrapes']}), "
                     f"body; of it the host's node_* samples, read from /proc at each scrape | - | "
                     f"{scrape['median_ms']:.2f} ms, {scrape['cpu_ms_per_scrape']:.2f} ms CPU, "
                     f"{scrape['bytes'] / 1024:.0f} KiB; host: {scrape['host_samples']} samples, "
                     f"{scrape['host_bytes'] / 1024:.1f} KiB | - | - |")
    for key, title in HEALTH_VARIANTS:
        pd, kd = pmem.get(key) or {}, kmem.get(key) or {}
        ok = None if not kd.get("rounds") else (
            kd["restarted"] == kd["rounds"]
            and kd["restart_ms_max"] / 1e3 < HEALTH_RESTART_TARGET_S)
        pv = pd.get("restart_ms") if pd.get("restarted") else None
        kv = kd.get("restart_ms") if kd.get("restarted") else None
        lines.append(f"| Memory limit ({HEALTH_LIMIT}) crossed to restart, {title}: median "
                     f"(min–max) | {_lat(pd)} | {_lat(kd)} | {fmt_ratio(pv, kv)} | Kelpie < "
                     f"{HEALTH_RESTART_TARGET_S:g} s in every round{_verdict(ok)} |")

    lines.append(f"| Restarts recorded as caused by memory | "
                 f"{_causes(pmem, 'its worker logs exceeds --max-memory-restart in pm2.log')} | "
                 f"{_causes(kmem, '`exits[].cause` = memory in describe --json')} | - | - |")
    kd = kmem.get("child") or {}
    gone = "n/a" if not kd.get("restarted") else f"{kd['old_child_gone']} of {kd['restarted']}"
    pd = pmem.get("child") or {}
    pgone = "n/a" if not pd.get("restarted") else f"{pd['old_child_gone']} of {pd['restarted']}"
    lines.append(f"| Child variant: the old child gone within 3 s of the restart | {pgone} | "
                 f"{gone} | - | - |")

    lines.append(f"| Allocating {HEALTH_ALLOC_MB} MB: over {HEALTH_LIMIT_MIB} MiB after, done in "
                 f"(median of the rounds) | {_alloc(pmem)} | {_alloc(kmem)} | - | - |")
    return "\n".join(lines)


def health_notes(cfg: argparse.Namespace, n_apps: int) -> str:
    window = "about one" if cfg.cpu_window >= 30 else "at most one"
    cpu = (
        f"Health, daemon CPU: {n_apps} idle `fake-app`s (native, `interpreter: \"none\"`) "
        f"started from an `ecosystem.json`; {cfg.health_settle:g} s after all are `online`, the "
        f"daemon's CPU (utime+stime of `/proc/<daemon pid>/stat`: all its threads, not its "
        f"children) over {cfg.rounds} back-to-back window(s) of {cfg.cpu_window:g} s in which "
        f"nothing calls the CLI, as % of one core; by thread from `/proc/<pid>/task/*/stat` (by "
        f"thread name; 1 tick = 10 ms, so about ±{100 / CLK_TCK / cfg.cpu_window * 2:.2f} % per "
        f"thread). Kelpie samples every app's whole process tree every second by design (one scan "
        f"of all of `/proc`, so its cost also grows with the other processes on the machine); "
        f"PM2's only periodic work is its worker every 30 s (pidusage of each app's main pid, host "
        f"metrics), so a {cfg.cpu_window:g} s window holds {window} of its runs: PM2's number is "
        f"for reference. Then the daemon's RSS (median of {cfg.rss_samples} samples).")
    mem = (
        f"Health, memory limit: one app, `<manager> start <fake-app> --interpreter none "
        f"--max-memory-restart {HEALTH_LIMIT} -- --stamp FILE --allocate {HEALTH_ALLOC_MB} "
        f"--allocate-after {HEALTH_ALLOC_AFTER_MS} --stamp-over {HEALTH_LIMIT_MIB}` (child variant: `--spawn-children 1 "
        f"--child-allocate {HEALTH_ALLOC_MB}` instead of `--allocate`, so the app's main process "
        f"stays at ~2 MB). {HEALTH_ALLOC_AFTER_MS / 1e3:g} s after it starts, the app (or its "
        f"child) appends `allocating <pid> <ns>` to FILE and touches {HEALTH_ALLOC_MB} MB a MiB at "
        f"a time, reading its `VmRSS` before each: `over <pid> <ns>` just before the MiB that "
        f"takes it over {HEALTH_LIMIT_MIB} MiB (the limit is crossed within ~1 ms of it; in the "
        f"child variant the child counts the app's `VmRSS` too, as a limit on the tree does), `allocated <pid> "
        f"<ns>` at the end; the restarted app appends its start stamp `<pid> <ns>`. Latency = "
        f"that start stamp − the `over` stamp (a restart can come before the allocation is "
        f"done). Each round is a fresh `start` after a random wait in [0, the manager's checking "
        f"period) (1 s for Kelpie, 30 s for PM2), so that the crossing falls anywhere in that "
        f"period, and gives up {HEALTH_CAP_S:.0f} s after the crossing. Kelpie checks the limit at each sample "
        f"(every second) against the whole tree; PM2 at its worker's next run (every 30 s: "
        f"anything from 0 to 30 s, 15 s on average) against the main pid's memory only. Rounds: "
        f"Kelpie {cfg.health_rounds_kelpie} per variant; PM2 {cfg.health_rounds_pm2} (main) and "
        f"{cfg.health_rounds_pm2_child} (child: its worker runs at least once in any "
        f"{HEALTH_CAP_S:.0f} s and never looks at children).")
    return cpu + "\n\n" + mem


HEALTH_BEGIN = "<!-- bench:health:begin -->"
HEALTH_END = "<!-- bench:health:end -->"


def health_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The health scenario's part of RESULTS.md, self-contained like the cluster section, so that
    `--only health` can replace it in a report that has the others."""
    return f"""{HEALTH_BEGIN}
## Health

{run_line}

{table}

{notes}

<details><summary>Raw samples (health)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{HEALTH_END}"""
