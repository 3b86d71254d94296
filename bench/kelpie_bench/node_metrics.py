"""--only nodemetrics: what the Node shim's runtime metrics (issue 50) cost an app, against the
same apps with them off (`pmx: false`) and under PM2 7 (its agent on, as by default).

Idle: N hello-world HTTP servers per variant, nothing asking them anything; over a window, the
CPU (sum of /proc/<pid>/task/*/schedstat's run time: ticks are too coarse), the wake-ups (its
third field, the times a thread was scheduled in) and the median VmRSS. Per request: one
hello-world server per variant pinned to CPU 0 (`taskset`), wrk on CPU 1, rounds interleaved;
the app's CPU (schedstat) per request answered."""

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

from .common import log
from .managers import clean_up_on_exit, Kelpie, Manager, Pm2, install_pm2
from .processes import free_port, loadavg, read_rss_mb
from .report import machine_info, merge_section
from .wrk import ensure_wrk, parse_wrk

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
               ports: list[int] | None = None) -> list[int]:
    """Start one app per name (through an ecosystem file) and return their pids once online."""
    apps = []
    for i, name in enumerate(names):
        app = {"name": name, "script": str(script), "pmx": pmx, "autorestart": False}
        if ports:
            app["env"] = {"PORT": str(ports[i])}
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


def per_request(wrk: str, pids: dict[str, int], ports: dict[str, int], rounds: int,
                seconds: float) -> dict[str, list[dict]]:
    for pid in pids.values():
        subprocess.run(["taskset", "-apc", "0", str(pid)], check=True,
                       stdout=subprocess.DEVNULL)
    out: dict[str, list[dict]] = {v: [] for v in pids}
    for r in range(rounds):
        order = list(pids) if r % 2 == 0 else list(reversed(pids))
        for variant in order:
            ns0 = schedstat(pids[variant])[0]
            p = subprocess.run(["taskset", "-c", "1", wrk, "-t1", "-c32", f"-d{int(seconds)}s",
                                f"http://127.0.0.1:{ports[variant]}/"],
                               capture_output=True, text=True, timeout=seconds + 60)
            ns1 = schedstat(pids[variant])[0]
            res = parse_wrk(p.stdout)
            out[variant].append({"requests": res["requests"], "rps": res["rps"],
                                 "cpu_ns_per_req": (ns1 - ns0) / max(1, res["requests"]),
                                 "failed": res["failed"]})
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
    rounds = 3 if cfg.quick else 5
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
        log("per request: wrk on CPU 1, the app on CPU 0, interleaved rounds")
        results["requests"] = per_request(wrk, pids, ports, rounds, 5.0)
    finally:
        cleanup()
        managers.clear()  # the exit hook has nothing left to stop
        shutil.rmtree(tmp, ignore_errors=True)
    table = build_table(results)
    print(table)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                    f"Linux {info['kernel']}")
        section = (f"{BEGIN}\n## Node runtime metrics (the shim's, issue 50)\n\n{run_line}\n\n"
                   f"{NOTES}\n\n{table}\n\n<details><summary>raw</summary>\n\n```json\n"
                   f"{json.dumps(results, indent=1)}\n```\n</details>\n{END}")
        text = cfg.output.read_text() if cfg.output.exists() else ""
        cfg.output.write_text(merge_section(text, BEGIN, END, section))
        log(f"updated the nodemetrics section of {cfg.output}")
    return 0


NOTES = ("Idle: hello-world HTTP servers nobody asks anything, medians per app over the window "
         "(CPU from /proc/<pid>/task/*/schedstat, wake-ups its scheduled-in count, VmRSS). "
         "Kelpie `off` is `pmx: false` (the shim without its metrics), `on` the default; PM2 7 "
         "with its agent (the default). Per request: one server per variant pinned to CPU 0, "
         "`wrk -t1 -c32 -d5s` pinned to CPU 1, rounds interleaved; the app's CPU per request "
         "answered (medians of the rounds). Budgets (issue 50): idle <= 0.05 % of a core, <= 2 "
         "wake-ups/s and <= +2 MB over off; <= 150 ns and <= +2 % CPU per request over off.")


def build_table(results: dict) -> str:
    rows = ["| variant | idle CPU, % of a core | wake-ups/s | RSS MB | CPU ns/request | req/s |",
            "|---|---|---|---|---|---|"]
    names = {"off": "Kelpie, metrics off", "on": "Kelpie, metrics on", "pm2": "PM2 7 (agent)"}
    for variant, label in names.items():
        i = results["idle"].get("pm2" if variant == "pm2" else f"kelpie_{variant}")
        r = results["requests"].get(variant)
        if i is None and not r:
            continue
        ns = statistics.median(x["cpu_ns_per_req"] for x in r) if r else None
        rps = statistics.median(x["rps"] for x in r) if r else None
        cells = [f"{i['cpu_pct']:.3f}" if i else "-", f"{i['wakeups_s']:.2f}" if i else "-",
                 f"{i['rss_mb']:.1f}" if i and i["rss_mb"] else "-",
                 f"{ns:.0f}" if ns else "-", f"{rps:.0f}" if rps else "-"]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    off = results["requests"].get("off")
    on = results["requests"].get("on")
    if off and on:
        # Paired by round: the same moment's load for both.
        deltas = [b["cpu_ns_per_req"] - a["cpu_ns_per_req"] for a, b in zip(off, on)]
        pct = [d / a["cpu_ns_per_req"] * 100 for d, a in zip(deltas, off)]
        rows.append(f"\nMetrics on over off, per request (paired by round, median): "
                    f"{statistics.median(deltas):+.0f} ns CPU ({statistics.median(pct):+.1f} %); "
                    f"rounds: {', '.join(f'{d:+.0f}' for d in deltas)} ns.")
    io, ii = results["idle"].get("kelpie_off"), results["idle"].get("kelpie_on")
    if io and ii and io["rss_mb"] and ii["rss_mb"]:
        rows.append(f"Idle, on over off: {ii['cpu_pct'] - io['cpu_pct']:+.3f} % of a core, "
                    f"{ii['wakeups_s'] - io['wakeups_s']:+.2f} wake-ups/s, "
                    f"{ii['rss_mb'] - io['rss_mb']:+.1f} MB.")
    return "\n".join(rows)

