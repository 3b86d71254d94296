"""Health scenario: (1) the daemon's CPU while N idle apps run and nobody calls the CLI (Kelpie
samples every app's whole process tree from /proc every second; PM2 runs pidusage on each
app's main pid every 30 s), with its RSS; (2) the time from an app crossing its
max_memory_restart to its restart, the app's main process allocating, or its child."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import time
from pathlib import Path

from .common import FAKE_APP, log
from .core import sample_rss, write_ecosystems
from .managers import Kelpie, Manager
from .processes import CLK_TCK, daemon_cpu_ticks, pid_alive
from .runtime import kelpie_exits
from .stats import median


HEALTH_APP = "mem"
HEALTH_LIMIT_MIB = 100
HEALTH_LIMIT = f"{HEALTH_LIMIT_MIB}M"  # --max-memory-restart, both managers (M = MiB for both)
HEALTH_ALLOC_MB = 200          # what the app (or its child) allocates and touches
HEALTH_ALLOC_AFTER_MS = 2000   # ... this long after it started
HEALTH_CAP_S = 40.0            # a round gives up this long after the allocation completed
HEALTH_CPU_TARGET_PCT = 2.0    # Kelpie's daemon while sampling N idle apps: % of one core
HEALTH_RESTART_TARGET_S = 1.5  # Kelpie: crossing the limit to the restart, every round
HEALTH_VARIANTS = (
    # key, title
    ("main", f"the app's main process allocates {HEALTH_ALLOC_MB} MB"),
    ("child", f"a child of the app allocates {HEALTH_ALLOC_MB} MB (the main process stays small)"),
)
PM2_MEMORY_LOG_LINE = "exceeds --max-memory-restart"  # PM2's worker logs this when it restarts


def parse_health_stamps(text: str) -> tuple[list[tuple[int, int]], list[tuple[str, int, int]]]:
    """The lines `fake-app --stamp FILE --allocate MB --stamp-over MIB` writes: start stamps
    `<pid> <ns>` and allocation stamps `allocating|over|allocated <pid> <ns>` (also written by a
    child of --child-allocate). Returns (starts, allocations), in file order; other lines are
    skipped."""
    starts: list[tuple[int, int]] = []
    allocs: list[tuple[str, int, int]] = []
    for line in text.splitlines():
        parts = line.split()
        try:
            if len(parts) == 2:
                starts.append((int(parts[0]), int(parts[1])))
            elif len(parts) == 3 and parts[0] in ("allocating", "over", "allocated"):
                allocs.append((parts[0], int(parts[1]), int(parts[2])))
        except ValueError:
            pass
    return starts, allocs


def restart_after_allocation(starts: list[tuple[int, int]],
                             allocs: list[tuple[str, int, int]]) -> dict:
    """What one round's stamps say: the first process; the first allocation (`allocating`, then
    `over` when the allocating process went over the limit, `allocated` when it finished: it may
    be killed before); the restart, i.e. the first start of another pid after the allocation
    began; and the times between them in ms (None when not there yet). The latency runs from
    `over` (from `allocating`, an upper bound, if the process was restarted before it saw itself
    over the limit: `crossing` says which)."""
    res: dict = {"pid": starts[0][0] if starts else None, "alloc_pid": None,
                 "allocating_ns": None, "over_ns": None, "allocated_ns": None,
                 "over_after_ms": None, "alloc_ms": None, "new_pid": None, "restart_ns": None,
                 "restart_ms": None, "crossing": None, "cut_short": None}
    for kind, pid, ns in allocs:
        if kind == "allocating":
            if res["allocating_ns"] is None:
                res["alloc_pid"], res["allocating_ns"] = pid, ns
        elif pid == res["alloc_pid"] and res[f"{kind}_ns"] is None:
            res[f"{kind}_ns"] = ns
    a = res["allocating_ns"]
    if a is None or res["pid"] is None:
        return res
    if res["over_ns"] is not None:
        res["over_after_ms"] = (res["over_ns"] - a) / 1e6
    if res["allocated_ns"] is not None:
        res["alloc_ms"] = (res["allocated_ns"] - a) / 1e6
    for pid, ns in starts[1:]:
        if pid != res["pid"] and ns >= a:
            res["new_pid"], res["restart_ns"] = pid, ns
            break
    if res["restart_ns"] is not None:
        r = res["restart_ns"]
        res["crossing"] = "over" if res["over_ns"] is not None and res["over_ns"] <= r \
            else "allocating"
        res["restart_ms"] = (r - res[f"{res['crossing']}_ns"]) / 1e6
        res["cut_short"] = res["allocated_ns"] is None or res["allocated_ns"] > r
        if res["cut_short"]:
            res["alloc_ms"] = None  # a later process's, or none
    return res


def thread_ticks(pid: int) -> dict[tuple[int, str], int]:
    """utime + stime of each live thread of pid, in clock ticks: (tid, thread name) -> ticks."""
    out: dict[tuple[int, str], int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
            name = s[s.index("(") + 1:s.rindex(")")]
            fields = s[s.rindex(")") + 1:].split()
            out[(int(tid), name)] = int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return out


def threads_pct(before: dict[tuple[int, str], int], after: dict[tuple[int, str], int],
                total_ticks: int, wall: float) -> dict[str, float]:
    """CPU of the daemon's threads between two thread_ticks() readings, by thread name, in % of
    one core over wall seconds; threads that ended meanwhile (in the process's total, no longer
    listed), and the difference between the process's ticks and its threads' (each rounded on its
    own) are under "(rest: ended threads, rounding)"."""
    by_name: dict[str, int] = {}
    for key, ticks in after.items():
        d = ticks - before.get(key, 0)
        if d > 0:
            by_name[key[1]] = by_name.get(key[1], 0) + d
    rest = total_ticks - sum(by_name.values())
    if rest > 0:
        by_name["(rest: ended threads, rounding)"] = rest
    return {k: 100 * v / CLK_TCK / wall for k, v in
            sorted(by_name.items(), key=lambda kv: -kv[1])} if wall > 0 else {}


def apps_summary(m: Manager) -> tuple[dict[str, int], int]:
    """Status counts of all apps and their restarts (sum of restart_time), from one jlist."""
    counts: dict[str, int] = {}
    restarts = 0
    for app in m.jlist():
        env = app.get("pm2_env") or {}
        st = env.get("status", "?")
        counts[st] = counts.get(st, 0) + 1
        if isinstance(env.get("restart_time"), int):
            restarts += env["restart_time"]
    return counts, restarts


def cpu_window(m: Manager, dpid: int, seconds: float) -> dict:
    """The daemon's CPU over `seconds` of wall time in which this script does nothing (so
    nobody calls the CLI): utime + stime of the process (all its threads) in CPU seconds and in
    % of one core, by thread name too, and the number of processes on the machine."""
    procs = sum(1 for d in os.listdir("/proc") if d.isdigit())
    c0, th0, t0 = daemon_cpu_ticks(dpid), thread_ticks(dpid), time.perf_counter()
    time.sleep(seconds)
    c1, th1, t1 = daemon_cpu_ticks(dpid), thread_ticks(dpid), time.perf_counter()
    if c0 is None or c1 is None:
        raise RuntimeError(f"{m.label}: daemon {dpid} gone during the CPU window")
    wall = t1 - t0
    return {"cpu_s": (c1 - c0) / CLK_TCK, "wall_s": wall,
            "pct": 100 * (c1 - c0) / CLK_TCK / wall,
            "threads_pct": threads_pct(th0, th1, c1 - c0, wall),
            "processes_on_machine": procs}


def bench_health_cpu(m: Manager, n_apps: int, cfg: argparse.Namespace) -> dict:
    """The daemon's CPU while n_apps idle apps run and nobody calls the CLI: cfg.rounds windows
    of cfg.cpu_window s back to back, after all are online and cfg.health_settle s; then its
    RSS."""
    write_ecosystems(m, n_apps)
    eco = m.workdir / "ecosystem.json"
    log(f"{m.label}: health: starting daemon")
    m.run("ping", timeout=60)
    dpid = m.daemon_pid()
    log(f"{m.label}: health: daemon pid {dpid}")
    if dpid is None:
        raise RuntimeError(f"{m.label}: no daemon pid file")
    time.sleep(cfg.settle)
    log(f"{m.label}: health: start {n_apps} apps from {eco.name}")
    start_s = m.timed("start", str(eco), timeout=900)
    if not m.wait_status("online", n_apps, timeout=600):
        raise RuntimeError(f"{m.label}: not all {n_apps} apps online")
    counts0, restarts0 = apps_summary(m)  # also records every app's pid for the cleanup
    log(f"{m.label}: health: start took {start_s:.2f} s; all {n_apps} online; settling "
        f"{cfg.health_settle:g} s, then {cfg.rounds} window(s) of {cfg.cpu_window:g} s with "
        f"nobody calling the CLI")
    time.sleep(cfg.health_settle)
    windows = []
    for r in range(cfg.rounds):
        w = cpu_window(m, dpid, cfg.cpu_window)
        windows.append(w)
        log(f"{m.label}: health: window {r + 1}/{cfg.rounds}: daemon CPU {w['cpu_s']:.2f} s "
            f"over {w['wall_s']:.1f} s = {w['pct']:.2f}% of a core; by thread: "
            + ", ".join(f"{k} {v:.2f}%" for k, v in list(w["threads_pct"].items())[:4]))
    # The same with many unrelated processes on the machine: what the daemon does must not
    # grow with them.
    crowded = None
    if cfg.unrelated:
        with unrelated_processes(cfg.unrelated, m.workdir):
            time.sleep(cfg.health_settle)
            crowded = cpu_window(m, dpid, cfg.cpu_window)
        log(f"{m.label}: health: with {cfg.unrelated} unrelated processes: daemon CPU "
            f"{crowded['pct']:.2f}% of a core ({crowded['processes_on_machine']} processes)")
    rss = sample_rss(m, cfg.rss_samples, 0.2)
    counts1, restarts1 = apps_summary(m)
    log(f"{m.label}: health: daemon RSS {rss} MB with {n_apps} apps; apps after: {counts1}, "
        f"restarts during the windows: {restarts1 - restarts0}")
    # Median per thread name over the windows (0 in a window where it did not show).
    names = {k for w in windows for k in w["threads_pct"]}
    thr = {k: median([w["threads_pct"].get(k, 0.0) for w in windows]) for k in names}
    return {
        "apps": n_apps, "start_s": start_s,
        "cpu_pct": median([w["pct"] for w in windows]),
        "cpu_pct_min": min(w["pct"] for w in windows),
        "cpu_pct_max": max(w["pct"] for w in windows),
        "windows": len(windows), "window_s": cfg.cpu_window,
        "threads_pct": dict(sorted(thr.items(), key=lambda kv: -kv[1])),
        "rss_mb": rss, "status_after": counts1, "restarts_during": restarts1 - restarts0,
        "processes_on_machine": median([w["processes_on_machine"] for w in windows]),
        "crowded_pct": None if crowded is None else crowded["pct"],
        "unrelated": cfg.unrelated,
        "crowded_processes": None if crowded is None else crowded["processes_on_machine"],
        "raw": {"windows": windows, "status_before": counts0, "start_s": start_s,
                "crowded": crowded},
    }


@contextlib.contextmanager
def unrelated_processes(n: int, workdir: Path):
    """`n` idle processes that no manager knows (`sleep`), killed on the way out."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    marker = str(workdir / "unrelated")
    pids: list[int] = []
    try:
        for _ in range(n):
            pids.append(os.posix_spawn(sleep, [sleep, "3600"], {"KELPIE_BENCH": marker}))
        yield pids
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def pm2_memory_restarts_logged(m: Manager) -> int:
    """How many times PM2's worker logged a restart for max_memory_restart (in pm2.log)."""
    try:
        return (m.home / "pm2.log").read_text(errors="replace").count(PM2_MEMORY_LOG_LINE)
    except OSError:
        return 0


def read_text_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def memory_restart_round(m: Manager, variant: str, delay: float, r: int) -> dict:
    """One round: start the app with --max-memory-restart, wait for its (or its child's)
    allocation, then for the next start of the app (a new pid); HEALTH_CAP_S at most after the
    allocation completed. Starts after `delay` s, so that the crossing falls anywhere in the
    manager's checking period."""
    stamp = m.workdir / f"{HEALTH_APP}-{variant}-{r}.stamp"
    children = m.workdir / f"{HEALTH_APP}-{variant}-{r}.children"
    m.run("delete", HEALTH_APP, check=False)
    time.sleep(delay)
    app_args = ["--stamp", str(stamp), "--allocate-after", str(HEALTH_ALLOC_AFTER_MS),
                "--stamp-over", str(HEALTH_LIMIT_MIB)]
    if variant == "child":
        app_args += ["--spawn-children", "1", "--children-file", str(children),
                     "--child-allocate", str(HEALTH_ALLOC_MB)]
    else:
        app_args += ["--allocate", str(HEALTH_ALLOC_MB)]
    logged0 = pm2_memory_restarts_logged(m)
    m.run("start", str(FAKE_APP), "--name", HEALTH_APP, "--interpreter", "none",
          "--max-memory-restart", HEALTH_LIMIT, "--", *app_args)
    t_start = time.monotonic()
    child_pids: list[int] = []
    res: dict = {}
    while True:
        try:
            text = stamp.read_text()
        except OSError:
            text = ""
        starts, allocs = parse_health_stamps(text)
        m.app_pids.update(p for p, _ in starts)
        if variant == "child" and not child_pids:
            child_pids = [int(x) for x in read_text_or_empty(children).split() if x.isdigit()]
            m.app_pids.update(child_pids)
        res = restart_after_allocation(starts, allocs)
        if res["restart_ns"] is not None:
            break
        if res["over_ns"] is None:
            if time.monotonic() - t_start > 20 + HEALTH_ALLOC_AFTER_MS / 1e3:
                raise RuntimeError(f"{m.label}: the {variant} variant's app never went over "
                                   f"{HEALTH_LIMIT_MIB} MiB (stamps: {text[:1000]!r})")
        elif time.time_ns() - res["over_ns"] > HEALTH_CAP_S * 1e9:
            break
        time.sleep(0.02)
    res.update(variant=variant, delay_s=delay, restarted=res["restart_ns"] is not None,
               child_pids=child_pids)
    if res["restarted"]:
        m.app_pids.add(res["new_pid"])
    # Why it restarted: Kelpie records the cause of each exit (in `describe --json`, as jlist
    # keeps PM2's shape); PM2's worker logs a line.
    app = next((a for a in m.jlist() if a.get("name") == HEALTH_APP), None)
    env = (app or {}).get("pm2_env") or {}
    exits = kelpie_exits(m, HEALTH_APP) if isinstance(m, Kelpie) else None
    if isinstance(exits, list):
        res["causes"] = [e.get("cause") for e in exits if isinstance(e, dict)]
        res["memory_cause"] = bool(res["causes"]) and res["causes"][0] == "memory"
    else:
        res["memory_cause"] = pm2_memory_restarts_logged(m) > logged0
    res["restart_time"] = env.get("restart_time")
    if variant == "child" and res["restarted"]:
        # The old child goes with its tree (Kelpie stops the whole process group).
        deadline = time.monotonic() + 3
        while any(pid_alive(p) for p in child_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        res["old_child_gone"] = not any(pid_alive(p) for p in child_pids)
    m.run("delete", HEALTH_APP, check=False)
    return res


def bench_health_memory(m: Manager, rounds: dict[str, int], period_s: float,
                        cfg: argparse.Namespace) -> dict:
    """Memory limit to restart, per variant (rounds: variant -> number of rounds, 0 to skip).
    Each round first waits a random time in [0, period_s) (the manager's checking period)."""
    log(f"{m.label}: health (memory): starting daemon")
    m.run("ping", timeout=60)
    log(f"{m.label}: health (memory): daemon pid {m.daemon_pid()}")
    time.sleep(cfg.settle)
    rng = random.Random()
    out: dict = {}
    for variant, _title in HEALTH_VARIANTS:
        rows = []
        for r in range(rounds.get(variant, 0)):
            delay = rng.uniform(0, period_s)
            x = memory_restart_round(m, variant, delay, r)
            rows.append(x)
            if x["restarted"]:
                how = (f"allocation took {x['alloc_ms']:.0f} ms" if not x["cut_short"] else
                       "restarted before its allocation ended")
                log(f"{m.label}: memory ({variant}) round {r + 1}/{rounds[variant]}: restarted "
                    f"{x['restart_ms']:.0f} ms after going over the limit (from `"
                    f"{x['crossing']}`; over "
                    f"{'?' if x['over_after_ms'] is None else round(x['over_after_ms'])} ms into "
                    f"the allocation, {how}; "
                    f"started after {delay:.2f} s), cause memory: {x['memory_cause']}"
                    + (f", old child gone: {x.get('old_child_gone')}" if variant == "child"
                       else ""))
            else:
                log(f"{m.label}: memory ({variant}) round {r + 1}/{rounds[variant]}: NOT "
                    f"restarted within {HEALTH_CAP_S:.0f} s of going over the limit")
        out[variant] = rows
    return summarize_health_memory(out)


def summarize_health_memory(raw: dict[str, list[dict]]) -> dict:
    res: dict = {}
    for variant, _title in HEALTH_VARIANTS:
        rows = raw.get(variant) or []
        done = [x for x in rows if x.get("restarted")]
        lat = [x["restart_ms"] for x in done]
        res[variant] = {
            "rounds": len(rows), "restarted": len(done),
            "restart_ms": median(lat), "restart_ms_min": min(lat, default=None),
            "restart_ms_max": max(lat, default=None),
            "alloc_ms": median([x["alloc_ms"] for x in rows if x.get("alloc_ms") is not None]),
            "over_after_ms": median([x["over_after_ms"] for x in rows
                                     if x.get("over_after_ms") is not None]),
            "cut_short": sum(bool(x.get("cut_short")) for x in done),
            "from_allocating": sum(x.get("crossing") == "allocating" for x in done),
            "memory_cause": sum(bool(x.get("memory_cause")) for x in done),
            "old_child_gone": sum(bool(x.get("old_child_gone")) for x in done)
            if variant == "child" else None,
        }
    res["raw"] = raw
    return res
