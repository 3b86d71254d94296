"""Core scenario: daemon RSS idle and with N apps, `list` / `jlist`, `start` / `stop all` of
an ecosystem file, and crash-to-restart latency (core_restart measures it), with and without
cgroups."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .common import FAKE_APP, log
from .core_restart import crash_latencies
from .managers import Manager
from .processes import read_rss_mb
from .stats import median, p90


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


# Node apps whose `start` is timed, and how many of them had run their main module when the
# command answered: Kelpie answers once the main module ran (so that a command that follows
# finds the app's handlers installed); the cost of that wait is this row.
NODE_APPS = 10
NODE_APP = """const fs = require('fs');
process.on('SIGUSR2', () => {});
fs.appendFileSync(process.env.STAMPS, `${process.env.name} ${Date.now()}\\n`);
setInterval(() => {}, 1000);
"""


def write_node_ecosystem(m: Manager) -> tuple[Path, Path]:
    """NODE_APPS small Node apps in one ecosystem.json; each appends `<name> <ms>` to a stamp
    file once its main module has run."""
    script = m.workdir / "node-app.js"
    script.write_text(NODE_APP)
    stamps = m.workdir / "node-main-ran.stamps"
    apps = [{"name": f"node{i}", "script": str(script), "env": {"STAMPS": str(stamps)}}
            for i in range(NODE_APPS)]
    eco = m.workdir / "node-ecosystem.json"
    eco.write_text(json.dumps({"apps": apps}, indent=1))
    return eco, stamps


# How long the Node apps settle before their memory and CPU are read, and the CPU window.
NODE_SETTLE_S = 3.0
NODE_CPU_WINDOW_S = 5.0


def app_ticks(pids: list[int]) -> int:
    """utime + stime of these processes (clock ticks)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def node_app_cost(pids: list[int]) -> tuple[float | None, float]:
    """The median RSS (MB) of these Node processes, and the CPU one of them uses while idle
    (their total over NODE_CPU_WINDOW_S, per process, in % of one core)."""
    rss = median([v for v in (read_rss_mb(pid) for pid in pids) if v is not None]) if pids else None
    before = app_ticks(pids)
    time.sleep(NODE_CPU_WINDOW_S)
    used = (app_ticks(pids) - before) / os.sysconf("SC_CLK_TCK")
    return rss, used / NODE_CPU_WINDOW_S * 100.0 / max(len(pids), 1)


def node_alone_cost(m: Manager) -> tuple[float | None, float]:
    """The same app run alone (`node node-app.js`), no manager: the floor of the two above."""
    script = m.workdir / "node-app.js"
    env = dict(os.environ, STAMPS=str(m.workdir / "alone.stamps"), name="alone")
    child = subprocess.Popen(["node", str(script)], env=env, stdout=subprocess.DEVNULL)
    try:
        time.sleep(NODE_SETTLE_S)
        return node_app_cost([child.pid])
    finally:
        child.kill()
        child.wait()


def node_start_rounds(m: Manager, rounds: int) -> dict:
    """`start` of NODE_APPS Node apps, timed until the command returns; how many main modules
    had run by then (their stamp's time is at most the answer's). After the last round, the
    apps' memory and idle CPU under the manager (Kelpie preloads its shim into each; PM2 its
    APM agent)."""
    eco, stamps = write_node_ecosystem(m)
    times, ran = [], []
    rss, cpu = None, None
    for r in range(rounds):
        stamps.unlink(missing_ok=True)
        t0 = time.time()
        m.run("start", str(eco), timeout=120)
        answered_ms = time.time() * 1e3
        times.append(time.time() - t0)
        lines = stamps.read_text().splitlines() if stamps.exists() else []
        ran.append(sum(1 for line in lines if float(line.split()[1]) <= answered_ms))
        m.wait_status("online", NODE_APPS, timeout=120)
        entries = m.jlist()
        if r == rounds - 1:
            time.sleep(NODE_SETTLE_S)
            rss, cpu = node_app_cost([e["pid"] for e in entries if e.get("pid")])
        m.run("delete", "all", timeout=120)
    log(f"{m.label}:   start {NODE_APPS} Node apps: {median(times) * 1e3:.0f} ms, "
        f"main modules run by the answer: {ran}; per app {rss} MB, idle {cpu:.3f} % CPU")
    return {"start_node_s": median(times), "node_ran": min(ran), "node_rss": rss,
            "node_idle_cpu": cpu, "raw": {"start_node_s": times, "node_ran": ran}}


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


def start_daemon_idle_rss(m: Manager, settle: float, rss_samples: int
                          ) -> tuple[int | None, float | None]:
    """Starts the daemon (`ping`), waits `settle` s, and returns its pid and its RSS with 0 apps
    (median of rss_samples samples 0.2 s apart)."""
    pid = m.start_daemon("core")
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

    node = node_start_rounds(m, cfg.rounds)
    for key in ("start_node_s", "node_ran", "node_rss", "node_idle_cpu"):
        res[key] = node[key]
    res["raw"].update(node["raw"])
    res["node_alone_rss"], res["node_alone_cpu"] = node_alone_cost(m)

    log(f"{m.label}: crash-to-restart, {cfg.crash_rounds} rounds")
    lat = crash_latencies(m, crashy, stamp, cfg.crash_rounds)
    res["restart_ms"] = median(lat)
    res["restart_p90_ms"] = p90(lat)
    res["raw"]["restart_ms"] = lat
    log(f"{m.label}:   restart median {res['restart_ms']} ms, p90 {res['restart_p90_ms']} ms")
    return res


def bench_restart_only(m: Manager, cfg: argparse.Namespace) -> dict:
    """Crash-to-restart alone (the non-root variant of the core scenario)."""
    _eco, crashy, stamp = write_ecosystems(m, 1)
    m.run("ping", timeout=60)
    log(f"{m.label}: crash-to-restart, {cfg.crash_rounds} rounds")
    lat = crash_latencies(m, crashy, stamp, cfg.crash_rounds)
    log(f"{m.label}:   restart median {median(lat)} ms, p90 {p90(lat)} ms")
    return {"restart_ms": median(lat), "restart_p90_ms": p90(lat), "raw": {"restart_ms": lat}}
