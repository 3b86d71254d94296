"""Cluster scenario, beyond throughput: the reload under load of apps that shut down by
themselves (the seed's server.close() app, Express), the bound (the same app run by hand), and
the summary of a manager's rounds."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .cluster_apps import (
    BOUND_LAUNCHER_JS, CLUSTER_APP, CLUSTER_INSTANCES, CLUSTER_MODES, EXPRESS_APP_JS,
    EXPRESS_VERSION, RELOAD_AT_S, RELOAD_RUN_S, SEED_APP_JS, WRK_CONNECTIONS,
)
from .cluster_instances import cluster_pids_after_reload, http_ok, wait_cluster_ready
from .common import log
from .managers import Manager
from .stats import median
from .wrk import finish_wrk, start_wrk, wrk_argv, WRK_ERROR_KINDS


def express_installed(directory: Path) -> str | None:
    """Install Express from npm into `directory` (once); None, or why it could not be."""
    if (directory / "node_modules" / "express" / "package.json").exists():
        return None
    npm = shutil.which("npm")
    if not npm:
        return "npm not found"
    p = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        str(directory), f"express@{EXPRESS_VERSION}"], capture_output=True,
                       timeout=300, check=False)
    return None if p.returncode == 0 else f"npm install express failed: {p.stderr[-500:]!r}"


def reload_graceful_apps(m: Manager, directory: Path, port: int, wrk: str,
                         cfg: argparse.Namespace) -> dict:
    """For the seed's SIGINT/server.close() app and the same in Express: the failed requests
    of a `reload` under keep-alive and new-connection load at the same time, per round."""
    out: dict = {}
    for kind, js in (("seed", SEED_APP_JS), ("express", EXPRESS_APP_JS)):
        if kind == "express":
            why = express_installed(directory)
            if why:
                log(f"{m.label}: Express reload rounds skipped: {why}")
                out[kind] = {"skipped": why}
                continue
        script = directory / f"{kind}.js"
        script.write_text(js)
        m.app_markers = (*m.app_markers, str(script))
        m.run("delete", CLUSTER_APP, check=False)
        args, env = m.cluster_start(script, port)
        m.run(*args, env=env)
        rounds = []
        for r in range(cfg.rounds):
            before = wait_cluster_ready(m, port)
            half = max(1, WRK_CONNECTIONS // 2)
            procs = [start_wrk(wrk_argv(wrk, port, RELOAD_RUN_S, extra, half))
                     for _key, _title, extra in CLUSTER_MODES]
            time.sleep(RELOAD_AT_S)
            rp = m.run("reload", CLUSTER_APP, timeout=120, check=False, capture=True)
            results = [finish_wrk(p, timeout=RELOAD_RUN_S + 60) for p in procs]
            after = cluster_pids_after_reload(m, port)
            row = {"failed": [w["failed"] for w in results], "reload_exit": rp.returncode,
                   "replaced": len(after) == CLUSTER_INSTANCES and not set(before) & set(after)}
            rounds.append(row)
            log(f"{m.label}: {kind} app, round {r + 1}/{cfg.rounds}, reload under mixed load: "
                f"failed {row['failed']} (new connection, keep-alive), exit {rp.returncode}, "
                f"replaced: {row['replaced']}")
            time.sleep(0.5)
        out[kind] = {"rounds": rounds,
                     "failed_max": max((sum(x["failed"]) for x in rounds), default=None),
                     "replaced": sum(x["replaced"] and x["reload_exit"] == 0 for x in rounds)}
    return out


def bench_bound(script: Path, port: int, wrk: str, cfg: argparse.Namespace) -> dict:
    """The hello world run by hand: CLUSTER_INSTANCES Node processes sharing one socket, no
    manager. Requests/s per load kind, median of the rounds."""
    launcher = script.parent / "bound-launcher.js"
    launcher.write_text(BOUND_LAUNCHER_JS)
    env = dict(os.environ, PORT=str(port))
    proc = subprocess.Popen(["node", str(launcher), str(script), str(CLUSTER_INSTANCES)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not http_ok(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        finish_wrk(start_wrk(wrk_argv(wrk, port, 1, ())), timeout=60)  # warm-up
        rps: dict[str, list[float]] = {key: [] for key, _t, _e in CLUSTER_MODES}
        for _r in range(cfg.rounds):
            for key, _title, extra in CLUSTER_MODES:
                w = finish_wrk(start_wrk(wrk_argv(wrk, port, cfg.wrk_seconds, extra)),
                               timeout=cfg.wrk_seconds + 60)
                rps[key].append(w["rps"])
                time.sleep(0.5)
        log(f"by hand (no manager): requests/s {rps}")
        return {f"rps_{key}": median(v) for key, v in rps.items()} | {"raw": rps}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def summarize_cluster(raw: dict) -> dict:
    """Medians (and worst rounds) of the cluster runs; raw as bench_cluster collects it."""
    res: dict = {}
    for key, _t, _e in CLUSTER_MODES:
        runs = raw["runs"][key]
        rel = raw["reloads"][key]

        def med(rows: list[dict], k: str) -> float | None:
            return median([x[k] for x in rows if x.get(k) is not None])
        for k in ("rps", "latency_p50_ms", "latency_p99_ms", "daemon_cpu_s", "daemon_cpu_pct",
                  "daemon_cpu_us_per_req", "server_cpu_us_per_req", "wrk_cpu_s",
                  "bench_cpu_pct_of_machine"):
            res[f"{k}_{key}"] = med(runs, k)
        res[f"failed_{key}_max"] = max((x["failed"] for x in runs), default=None)
        # Instances' CPU, busiest first in each run, median per rank over the runs.
        ranked = [sorted(x["instance_cpu_pct"], reverse=True) for x in runs
                  if x.get("instance_cpu_pct") and None not in x["instance_cpu_pct"]]
        res[f"instance_cpu_pct_{key}"] = [median([x[i] for x in ranked if len(x) > i])
                                          for i in range(max(map(len, ranked), default=0))]
        res[f"reload_failed_{key}"] = med(rel, "failed")
        worst = max(rel, key=lambda x: x["failed"], default=None)
        res[f"reload_failed_{key}_max"] = worst and worst["failed"]
        res[f"reload_failed_{key}_worst"] = worst and {k: worst[k] for k in (*WRK_ERROR_KINDS,
                                                                             "non2xx")}
        res[f"reload_s_{key}"] = med(rel, "reload_s")
        res[f"reload_rps_{key}"] = med(rel, "rps")
    balance = raw.get("balance") or []
    ratios = [x["ratio"] for x in balance if x.get("ratio") is not None]
    res["balance_ratio"] = median(ratios) if ratios else None
    res["balance_ratio_max"] = max(ratios, default=None)
    res["balance_rounds"] = len(balance)
    rel_all = [x for key, _t, _e in CLUSTER_MODES for x in raw["reloads"][key]]
    res["reload_s"] = median([x["reload_s"] for x in rel_all])
    res["reloads"] = len(rel_all)
    res["reloads_replaced"] = sum(bool(x.get("replaced")) for x in rel_all)
    res["reloads_ok"] = sum(x.get("reload_exit") == 0 for x in rel_all)
    res["reloads_late"] = sum(not x.get("reload_within_run", True) for x in rel_all)
    # The raw samples without wrk's full output (kept in the report only when something failed).
    strip = lambda x: {k: v for k, v in x.items() if k != "output" or x.get("failed")}  # noqa: E731
    res["raw"] = {part: {k: [strip(x) for x in v] for k, v in raw[part].items()}
                  for part in ("runs", "reloads")}
    res["raw"]["balance"] = balance
    return res
