"""Health scenario, part 1: the daemon's CPU while N idle apps run and nobody calls the CLI (by
thread, from /proc), one more window with unrelated idle processes on the machine, and its RSS."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from .common import log
from .core import sample_rss, write_ecosystems
from .managers import Kelpie, Manager
from .processes import CLK_TCK, daemon_cpu_ticks, thread_files
from .stats import median


def thread_ticks(pid: int) -> dict[tuple[int, str], int]:
    """utime + stime of each live thread of pid, in clock ticks: (tid, thread name) -> ticks."""
    out: dict[tuple[int, str], int] = {}
    for tid, s in thread_files(pid, "stat"):
        try:
            name = s[s.index("(") + 1:s.rindex(")")]
            fields = s[s.rindex(")") + 1:].split()
            out[(tid, name)] = int(fields[11]) + int(fields[12])
        except (ValueError, IndexError):
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
    dpid = m.start_daemon("health")
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
    scrape = scrape_cost(m, dpid) if isinstance(m, Kelpie) else None
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
        "rss_mb": rss, "scrape": scrape, "status_after": counts1, "restarts_during": restarts1 - restarts0,
        "processes_on_machine": median([w["processes_on_machine"] for w in windows]),
        "crowded_pct": None if crowded is None else crowded["pct"],
        "unrelated": cfg.unrelated,
        "crowded_processes": None if crowded is None else crowded["processes_on_machine"],
        "raw": {"windows": windows, "status_before": counts0, "start_s": start_s,
                "crowded": crowded},
    }


SCRAPES = 50  # /metrics scrapes timed back to back


def scrape_cost(m: Manager, dpid: int) -> dict:
    """What a Prometheus scrape of `kelpie web`'s /metrics costs with these apps: the daemon's
    CPU per scrape (its ticks over SCRAPES scrapes), the median answer time, the body's size,
    and the part of it that is the host's families (node_*, read from /proc at each scrape)."""
    import socket
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m.run("web", "--port", str(port))
    # Every call needs the daemon's token, /metrics too (as Prometheus reads it from the file).
    token = (m.home / "web.token").read_text().strip()
    scrape = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                    headers={"Authorization": f"Bearer {token}"})
    body = urllib.request.urlopen(scrape, timeout=30).read()  # warm: the first answer
    times = []
    c0 = daemon_cpu_ticks(dpid)
    for _ in range(SCRAPES):
        t = time.perf_counter()
        body = urllib.request.urlopen(scrape, timeout=30).read()
        times.append(time.perf_counter() - t)
    c1 = daemon_cpu_ticks(dpid)
    m.run("web", "--stop", check=False)
    host_lines = [line for line in body.decode().splitlines() if line.startswith("node_")]
    result = {"scrapes": SCRAPES, "cpu_ms_per_scrape": 1000 * (c1 - c0) / CLK_TCK / SCRAPES,
              "median_ms": 1000 * median(times), "bytes": len(body),
              "host_samples": len(host_lines),
              "host_bytes": sum(len(line) + 1 for line in host_lines)}
    log(f"{m.label}: health: /metrics: {result['median_ms']:.2f} ms a scrape (median of "
        f"{SCRAPES}), daemon CPU {result['cpu_ms_per_scrape']:.2f} ms a scrape, "
        f"{result['bytes']} bytes, of which {result['host_samples']} host samples "
        f"({result['host_bytes']} bytes)")
    return result


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
