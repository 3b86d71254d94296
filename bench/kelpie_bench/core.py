"""Core scenario: daemon RSS idle and with N apps, `list` / `jlist`, `start` / `stop all` of
an ecosystem file, crash-to-restart latency (with and without cgroups), and the floor of any
restart (fake-app spawned by hand)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from .common import FAKE_APP, log
from .managers import Manager
from .processes import read_rss_mb
from .stats import median, p90


def app_alone_start_ms(rounds: int, workdir: Path) -> list[float]:
    """The floor of any restart: fake-app spawned directly (posix_spawn, no manager) until it
    has written its start stamp, in ms; `rounds` runs."""
    stamp = workdir / "alone.stamp"
    out: list[float] = []
    for _ in range(rounds):
        stamp.unlink(missing_ok=True)
        t0 = time.time_ns()
        pid = os.posix_spawn(str(FAKE_APP), [str(FAKE_APP), "--quiet", "--stamp", str(stamp)],
                             {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        deadline = time.monotonic() + 5
        stamps = []
        while not stamps and time.monotonic() < deadline:
            stamps = read_stamps(stamp)
            time.sleep(0.0002)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if stamps:
            out.append((stamps[0][1] - t0) / 1e6)
    return out


def bench_restart_only(m: Manager, cfg: argparse.Namespace) -> dict:
    """Crash-to-restart alone (the non-root variant of the core scenario)."""
    _eco, crashy, stamp = write_ecosystems(m, 1)
    m.run("ping", timeout=60)
    log(f"{m.label}: crash-to-restart, {cfg.crash_rounds} rounds")
    lat = crash_latencies(m, crashy, stamp, cfg.crash_rounds)
    log(f"{m.label}:   restart median {median(lat)} ms, p90 {p90(lat)} ms")
    return {"restart_ms": median(lat), "restart_p90_ms": p90(lat), "raw": {"restart_ms": lat}}


def write_ecosystems(m: Manager, n_apps: int) -> tuple[Path, Path, Path]:
    apps = [
        {"name": f"app{i}", "script": str(FAKE_APP), "interpreter": "none", "args": [],
         "autorestart": True}
        for i in range(n_apps)
    ]
    eco = m.workdir / "ecosystem.config.js"
    eco.write_text("module.exports = " + json.dumps({"apps": apps}, indent=1) + ";\n")
    (m.workdir / "ecosystem.json").write_text(json.dumps({"apps": apps}, indent=1))
    stamp = m.workdir / "crashy.stamp"
    crashy = m.workdir / "crashy.json"
    crashy.write_text(json.dumps({"apps": [{
        "name": "crashy", "script": str(FAKE_APP), "interpreter": "none",
        "args": ["--stamp", str(stamp)], "min_uptime": 100, "max_restarts": 1000}]}, indent=1))
    return eco, crashy, stamp


def sample_rss(m: Manager, samples: int, gap: float) -> float | None:
    pid = m.daemon_pid()
    if pid is None:
        log(f"{m.label}: no daemon pid file")
        return None
    vals = []
    for i in range(samples):
        if i:
            time.sleep(gap)
        v = read_rss_mb(pid)
        if v is not None:
            vals.append(v)
    return median(vals)


def read_stamps(path: Path) -> list[tuple[int, int]]:
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out.append((int(parts[0]), int(parts[1])))
            except ValueError:
                pass
    return out


def crash_latencies(m: Manager, crashy: Path, stamp: Path, rounds: int) -> list[float]:
    stamp.unlink(missing_ok=True)
    m.run("start", str(crashy))
    deadline = time.monotonic() + 20
    while not read_stamps(stamp):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{m.label}: crashy app never wrote its stamp file")
        time.sleep(0.01)
    time.sleep(0.5)  # let it settle (> min_uptime)
    lat_ms: list[float] = []
    for r in range(rounds):
        stamps = read_stamps(stamp)
        pid = stamps[-1][0]
        m.app_pids.add(pid)
        n_before = len(stamps)
        t0 = time.time_ns()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            log(f"{m.label}: crashy pid {pid} already gone, skipping round {r}")
            time.sleep(0.3)
            continue
        deadline = time.monotonic() + 15
        new = None
        while time.monotonic() < deadline:
            s = read_stamps(stamp)
            if len(s) > n_before:
                new = s[n_before]
                break
            time.sleep(0.0005)
        if new is None:
            log(f"{m.label}: no restart within 15 s after SIGKILL (round {r})")
            break
        m.app_pids.add(new[0])
        lat_ms.append((new[1] - t0) / 1e6)
        time.sleep(0.3)
    m.run("delete", "crashy", check=False)
    return lat_ms


def start_daemon_idle_rss(m: Manager, settle: float, rss_samples: int
                          ) -> tuple[int | None, float | None]:
    """Starts the daemon (`ping`), waits `settle` s, and returns its pid and its RSS with 0 apps
    (median of rss_samples samples 0.2 s apart)."""
    log(f"{m.label}: starting daemon")
    m.run("ping", timeout=60)
    pid = m.daemon_pid()
    log(f"{m.label}: daemon pid {pid}")
    time.sleep(settle)
    return pid, sample_rss(m, rss_samples, 0.2)


def loaded_round(m: Manager, eco: Path, n_apps: int, cfg: argparse.Namespace,
                 while_idle: "Callable[[], object] | None" = None) -> dict:
    """One round of the core scenario: `start eco` (timed) into a daemon with no apps, wait
    until all n_apps are online, cfg.settle s, the daemon's RSS (median of cfg.rss_samples),
    then while_idle() if given (nothing has called the CLI since the wait), cfg.list_runs runs
    each of `list` and `jlist` (timed), `stop all` (timed) and `delete all`. Times in s."""
    if m.status_counts():
        m.run("delete", "all", timeout=300)
    start = m.timed("start", str(eco), timeout=600)
    log(f"{m.label}:   start ({eco.name}) took {start:.3f} s")
    online = m.wait_status("online", n_apps, timeout=120)
    time.sleep(cfg.settle)
    rss = sample_rss(m, cfg.rss_samples, 0.2)
    idle = while_idle() if while_idle is not None else None
    lists, jlists = [], []
    for _ in range(cfg.list_runs):
        lists.append(m.timed("list"))
        jlists.append(m.timed("jlist"))
    log(f"{m.label}:   list {median(lists) * 1e3:.1f} ms, jlist {median(jlists) * 1e3:.1f} ms, "
        f"rss {rss} MB")
    m.jlist()  # record app pids for cleanup
    stop = m.timed("stop", "all", timeout=600)
    log(f"{m.label}:   stop all took {stop:.3f} s")
    stopped = m.wait_status("stopped", n_apps, timeout=120)
    m.run("delete", "all", timeout=300)
    return {"start_s": start, "online": online, "rss": rss, "idle": idle, "list_s": lists,
            "jlist_s": jlists, "stop_s": stop, "stopped": stopped}


def bench_manager(m: Manager, n_apps: int, cfg: argparse.Namespace) -> dict:
    res: dict = {}
    eco, crashy, stamp = write_ecosystems(m, n_apps)

    # Daemon up, idle.
    _pid, res["rss_idle"] = start_daemon_idle_rss(m, cfg.settle, cfg.rss_samples)

    starts, stops, rss_loaded, lists, jlists = [], [], [], [], []
    for r in range(cfg.rounds):
        log(f"{m.label}: round {r + 1}/{cfg.rounds}: start {n_apps} apps")
        rd = loaded_round(m, eco, n_apps, cfg)
        starts.append(rd["start_s"])
        stops.append(rd["stop_s"])
        rss_loaded.append(rd["rss"])
        lists.extend(rd["list_s"])
        jlists.extend(rd["jlist_s"])

    res["rss_loaded"] = median([x for x in rss_loaded if x is not None])
    res["list_ms"] = median(lists) * 1e3
    res["jlist_ms"] = median(jlists) * 1e3
    res["start_s"] = median(starts)
    res["stop_s"] = median(stops)
    res["raw"] = {"start_s": starts, "stop_s": stops, "rss_loaded": rss_loaded,
                  "list_ms": [x * 1e3 for x in lists], "jlist_ms": [x * 1e3 for x in jlists]}

    # The same start from ecosystem.json, for both managers: no JavaScript to evaluate, so it
    # shows the managers themselves (Kelpie runs `node` to read a .js file; PM2's CLI is node).
    starts_json = []
    for r in range(cfg.rounds):
        starts_json.append(m.timed("start", str(m.workdir / "ecosystem.json"), timeout=600))
        m.jlist()
        m.wait_status("online", n_apps, timeout=120)
        m.run("delete", "all", timeout=300)
    res["start_json_s"] = median(starts_json)
    res["raw"]["start_json_s"] = starts_json
    log(f"{m.label}:   start from .json: {res['start_json_s']:.3f} s")

    log(f"{m.label}: crash-to-restart, {cfg.crash_rounds} rounds")
    lat = crash_latencies(m, crashy, stamp, cfg.crash_rounds)
    res["restart_ms"] = median(lat)
    res["restart_p90_ms"] = p90(lat)
    res["raw"]["restart_ms"] = lat
    log(f"{m.label}:   restart median {res['restart_ms']} ms, p90 {res['restart_p90_ms']} ms")
    return res
