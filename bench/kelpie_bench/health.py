"""Health scenario, part 2 (part 1, the daemon's CPU with idle apps, is health_cpu): the time
from an app crossing its max_memory_restart to its restart, the app's main process allocating,
or its child (Kelpie checks the whole tree every second; PM2 the main pid every 30 s)."""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from .common import FAKE_APP, log
from .managers import Kelpie, Manager
from .processes import pid_alive
from .runtime_procs import kelpie_exits
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
    m.start_daemon("health (memory)")
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
