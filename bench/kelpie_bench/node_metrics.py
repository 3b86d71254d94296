"""--only nodemetrics: what the Node shim's runtime metrics (issue 50) cost an app, against the
same apps with them off (`pmx: false`) and under PM2 7 (its agent on, as by default).

Idle: N hello-world HTTP servers per variant, nothing asking them anything; over a window, the
CPU (sum of /proc/<pid>/task/*/schedstat's run time: ticks are too coarse), the wake-ups (its
third field, the times a thread was scheduled in) and the median VmRSS. Per request (the method
in node_requests.py): the app's own CPU time per request answered, the app pinned to CPU 0 and
wrk to CPU 1, in adjacent rounds, three ways: one server per variant started by its manager;
one server started by Kelpie whose metrics are stopped and started between rounds (no two
processes' differences); and, when valgrind is there, the instructions per request
(node_instructions.py), which no other load changes."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from . import node_instructions, node_requests
from .common import log
from .managers import clean_up_on_exit, Kelpie, Manager, Pm2, install_pm2
from .node_metrics_report import build_table, NOTES
from .processes import free_port, loadavg, read_rss_mb
from .report import machine_info, merge_section
from .stats import round_floats
from .wrk import ensure_wrk

BEGIN = "<!-- bench:nodemetrics:begin -->"
END = "<!-- bench:nodemetrics:end -->"
HELLO = ("require('http').createServer((req, res) => res.end('hello')).listen("
         "Number(process.env.PORT) || 0);\n")


def schedstat(pid: int) -> tuple[int, int]:
    """(run ns, times scheduled in) summed over the threads of pid."""
    ns = slices = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            run, _wait, count = (task / "schedstat").read_text().split()[:3]
        except (OSError, ValueError):
            continue
        ns += int(run)
        slices += int(count)
    return ns, slices


def start_apps(m: Manager, script: Path, names: list[str], pmx: bool,
               ports: list[int] | None = None, extra: dict | None = None) -> list[int]:
    """Start one app per name (through an ecosystem file) and return their pids once online;
    `extra`: more of each app's settings (its `env` added to PORT's)."""
    apps = []
    for i, name in enumerate(names):
        app = {"name": name, "script": str(script), "pmx": pmx, "autorestart": False,
               **(extra or {})}
        if ports:
            app["env"] = {**app.get("env", {}), "PORT": str(ports[i])}
        apps.append(app)
    eco = m.workdir / f"{names[0]}-ecosystem.json"
    eco.write_text(json.dumps({"apps": apps}))
    m.run("start", str(eco), timeout=300)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        by_name = {a.get("name"): a for a in m.jlist()}
        pids = [by_name.get(n, {}).get("pid") or 0 for n in names]
        if all(p > 0 for p in pids) and all(
                by_name[n]["pm2_env"]["status"] == "online" for n in names):
            return pids
        time.sleep(0.5)
    raise RuntimeError(f"{m.label}: {names[0]}... not online")


def idle(pids: list[int], window: float) -> dict:
    before = {p: schedstat(p) for p in pids}
    time.sleep(window)
    after = {p: schedstat(p) for p in pids}
    cpu = [(after[p][0] - before[p][0]) / (window * 1e9) * 100 for p in pids]
    wake = [(after[p][1] - before[p][1]) / window for p in pids]
    rss = [r for r in (read_rss_mb(p) for p in pids) if r is not None]
    return {"cpu_pct": statistics.median(cpu), "wakeups_s": statistics.median(wake),
            "rss_mb": statistics.median(rss) if rss else None, "apps": len(pids)}


def per_request(wrk: str, k: Kelpie, script: Path, tmp: Path, pids: dict[str, int],
                ports: dict[str, int], quick: bool) -> dict:
    """The three measures of the CPU per request (see the module's doc)."""
    rounds = 4 if quick else 12
    log("per request, one server per variant: wrk on CPU 1, the app on CPU 0, adjacent rounds")
    out: dict = {"separate": node_requests.interleaved(
        wrk, {v: (pids[v], ports[v]) for v in pids}, rounds, 3, say=log)}
    log("per request, one server started by Kelpie, its metrics stopped and started")
    state = tmp / "toggle-state"
    port = free_port()
    pid = start_apps(k, script, ["req-toggle"], False, [port], {
        "node_args": ["-r", str(node_requests.PRELOAD)],
        "env": {"KELPIE_METRICS_TOGGLE": str(state)}})[0]
    out["toggled"] = node_requests.toggled(wrk, pid, port, state, rounds, 3, say=log)
    k.run("delete", "req-toggle")
    missing = node_instructions.available()
    if missing:
        log(f"no instruction counts: {missing}")
        out["instructions"] = {"missing": missing}
    else:
        log("instructions per request under valgrind (a few minutes)")
        out["instructions"] = node_instructions.per_request(
            [("off", "", {}), ("on", str(node_requests.PRELOAD), {})], tmp,
            2000 if quick else 5000, 6000 if quick else 25000)
    return out


def node_metrics_main(cfg: argparse.Namespace, argv_str: str) -> int:
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    wrk, why = ensure_wrk()
    if wrk is None:
        log(f"cannot run the nodemetrics scenario: {why}")
        return 1
    n = min(cfg.apps, 50 if cfg.quick else 100)
    window = 10.0 if cfg.quick else 20.0
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-nodemetrics-"))
    script = tmp / "hello.js"
    script.write_text(HELLO)
    managers: list[Manager] = []
    cleanup = clean_up_on_exit(managers)
    results: dict = {"idle": {}, "requests": {}}
    ports = {"off": free_port(), "on": free_port(), "pm2": free_port()}
    pids: dict[str, int] = {}
    try:
        k = Kelpie(tmp / "kelpie")
        managers.append(k)
        for variant, pmx in (("off", False), ("on", True)):
            log(f"Kelpie, metrics {variant}: {n} idle apps")
            app_pids = start_apps(k, script, [f"idle-{variant}-{i}" for i in range(n)], pmx)
            time.sleep(5)  # past the start's own work
            results["idle"][f"kelpie_{variant}"] = idle(app_pids, window)
            k.run("delete", "all")
        pids["off"] = start_apps(k, script, ["req-off"], False, [ports["off"]])[0]
        pids["on"] = start_apps(k, script, ["req-on"], True, [ports["on"]])[0]
        if not cfg.kelpie_only:
            pm2 = Pm2(tmp / "pm2", install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix
                                               else tmp / "pm2-install"))
            managers.append(pm2)
            log(f"PM2 7: {n} idle apps")
            app_pids = start_apps(pm2, script, [f"idle-pm2-{i}" for i in range(n)], True)
            time.sleep(5)
            results["idle"]["pm2"] = idle(app_pids, window)
            pm2.run("delete", "all")
            pids["pm2"] = start_apps(pm2, script, ["req-pm2"], True, [ports["pm2"]])[0]
        results["requests"] = per_request(wrk, k, script, tmp, pids, ports, cfg.quick)
        results["load_at_end"] = loadavg()
    finally:
        cleanup()
        managers.clear()  # the exit hook has nothing left to stop
        shutil.rmtree(tmp, ignore_errors=True)
    table = build_table(results)
    print(table)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start, {results.get('load_at_end', '?')} at the end (each round's "
                    f"below); {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                    f"Linux {info['kernel']}")
        section = (f"{BEGIN}\n## Node runtime metrics (the shim's, issue 50)\n\n{run_line}\n\n"
                   f"{NOTES}\n\n{table}\n\n<details><summary>raw</summary>\n\n```json\n"
                   f"{json.dumps(round_floats(results), indent=1)}\n```\n</details>\n{END}")
        text = cfg.output.read_text() if cfg.output.exists() else ""
        cfg.output.write_text(merge_section(text, BEGIN, END, section))
        log(f"updated the nodemetrics section of {cfg.output}")
    return 0
