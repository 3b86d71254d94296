"""Cluster scenario, the measurement: each manager's rounds (throughput, daemon and instance
CPU, keep-alive balance, reload under load, apps that shut down by themselves) and the bound
(the same app run by hand)."""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .cluster_apps import (
    BALANCE_CONNECTIONS, BOUND_LAUNCHER_JS, CLUSTER_APP, CLUSTER_INSTANCES, CLUSTER_MODES,
    EXPRESS_APP_JS, EXPRESS_VERSION, RELOAD_AT_S, RELOAD_RUN_S, SEED_APP_JS, WRK_CONNECTIONS,
)
from .common import log
from .managers import Kelpie, Manager
from .processes import CLK_TCK, daemon_cpu_ticks
from .stats import median
from .wrk import finish_wrk, keep_alive_balance, start_wrk, wrk_argv, WRK_ERROR_KINDS


def http_ok(port: int, timeout: float = 1.0) -> bool:
    """One GET / on 127.0.0.1:port (new connection): True on a 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def cluster_pids(m: Manager) -> dict[int, str]:
    """pid -> status of the cluster app's instances."""
    out = {}
    for a in m.jlist():
        if a.get("name") == CLUSTER_APP and isinstance(a.get("pid"), int) and a["pid"] > 0:
            out[a["pid"]] = (a.get("pm2_env") or {}).get("status", "?")
    return out


def wait_cluster_ready(m: Manager, port: int, timeout: float = 30) -> dict[int, str]:
    """Until CLUSTER_INSTANCES instances are online and the port answers 200."""
    deadline = time.monotonic() + timeout
    pids: dict[int, str] = {}
    while time.monotonic() < deadline:
        pids = cluster_pids(m)
        online = [p for p, st in pids.items() if st == "online"]
        if len(online) == CLUSTER_INSTANCES and len(pids) == CLUSTER_INSTANCES and http_ok(port):
            return pids
        time.sleep(0.2)
    raise RuntimeError(f"{m.label}: {CLUSTER_APP} not ready on port {port} within {timeout:.0f} s "
                       f"(instances: {pids})")


def cluster_pids_after_reload(m: Manager, port: int) -> dict[int, str]:
    """The instances once ready again; if they never are, what there is (the round then
    counts as not replaced)."""
    try:
        return wait_cluster_ready(m, port)
    except RuntimeError as e:
        log(str(e))
        return cluster_pids(m)


def cluster_logs_tail(m: Manager, n: int = 40) -> str:
    """The daemon's log and the app's logs, last lines of each (for a report of what failed)."""
    parts = []
    files = [m.home / "kelpie.log", m.home / "pm2.log", *m.logs_dir.glob(f"{CLUSTER_APP}*")]
    for p in sorted(files):
        try:
            lines = p.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            continue
        parts.append(f"--- {p.name} (last {len(lines)} lines)\n" + "\n".join(lines))
    return "\n".join(parts)


def bench_cluster(m: Manager, script: Path, port: int, wrk: str, cfg: argparse.Namespace) -> dict:
    m.app_markers = (*m.app_markers, str(script))
    log(f"{m.label}: cluster: starting daemon")
    m.run("ping", timeout=60)
    dpid = m.daemon_pid()
    log(f"{m.label}: cluster: daemon pid {dpid}")
    time.sleep(cfg.settle)
    args, env = m.cluster_start(script, port)
    log(f"{m.label}: cluster: {' '.join(args)}" + "".join(f" ({k}={v})" for k, v in env.items()))
    m.run(*args, env=env)
    pids = wait_cluster_ready(m, port)
    log(f"{m.label}: cluster: {CLUSTER_INSTANCES} instances online on port {port}: "
        f"{sorted(pids)}")
    # Warm-up (JIT, connection pools), not counted.
    finish_wrk(start_wrk(wrk_argv(wrk, port, 1, ())), timeout=60)
    time.sleep(0.5)

    def cpu_fields(c0: int | None, c1: int | None, wall: float, requests: int) -> dict:
        if c0 is None or c1 is None:
            return {"daemon_cpu_s": None, "daemon_cpu_pct": None, "daemon_cpu_us_per_req": None}
        s = (c1 - c0) / CLK_TCK
        return {"daemon_cpu_s": s, "daemon_cpu_pct": 100 * s / wall if wall > 0 else None,
                "daemon_cpu_us_per_req": s / requests * 1e6 if requests else None}

    runs: dict[str, list[dict]] = {k: [] for k, _, _ in CLUSTER_MODES}
    reloads: dict[str, list[dict]] = {k: [] for k, _, _ in CLUSTER_MODES}
    balance: list[dict] = []
    for r in range(cfg.rounds):
        wait_cluster_ready(m, port)
        b = keep_alive_balance(wrk, port)
        balance.append(b)
        log(f"{m.label}: cluster round {r + 1}/{cfg.rounds}, keep-alive balance (wrk -c "
            f"{BALANCE_CONNECTIONS}): requests per instance {b['requests_per_instance']}, "
            f"busiest / least busy {b['ratio']}")
        time.sleep(0.5)
        for key, _title, extra in CLUSTER_MODES:
            inst = sorted(wait_cluster_ready(m, port))
            i0 = [daemon_cpu_ticks(p) for p in inst]
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped
            c0, t0 = daemon_cpu_ticks(dpid), time.perf_counter()
            w = finish_wrk(start_wrk(wrk_argv(wrk, port, cfg.wrk_seconds, extra)),
                           timeout=cfg.wrk_seconds + 60)
            wall, c1 = time.perf_counter() - t0, daemon_cpu_ticks(dpid)
            i1 = [daemon_cpu_ticks(p) for p in inst]
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            w["wrk_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            w.update(cpu_fields(c0, c1, wall, w["requests"]), wall_s=wall, pids=inst,
                     # Each instance's CPU (utime+stime) over the run, % of one core.
                     instance_cpu_pct=[None if a is None or b is None else
                                       100 * (b - a) / CLK_TCK / wall for a, b in zip(i0, i1)])
            if None not in (w["daemon_cpu_s"], *w["instance_cpu_pct"]) and w["requests"]:
                server_s = w["daemon_cpu_s"] + sum(w["instance_cpu_pct"]) * wall / 100
                w["server_cpu_us_per_req"] = server_s / w["requests"] * 1e6
                # How much of the machine this run got: wrk + daemon + instances, % of all CPUs.
                w["bench_cpu_pct_of_machine"] = \
                    100 * (server_s + w["wrk_cpu_s"]) / (wall * (os.cpu_count() or 1))
            runs[key].append(w)
            log(f"{m.label}: cluster round {r + 1}/{cfg.rounds}, {key}: {w['rps']:,.0f} req/s, "
                f"p99 {w['latency_p99_ms']} ms, daemon CPU {w['daemon_cpu_s']} s "
                f"({w['daemon_cpu_pct']:.1f}% of a core), instances "
                + " + ".join("?" if x is None else f"{x:.0f}%" for x in w["instance_cpu_pct"])
                + f" of a core, failed {w['failed']}")
            time.sleep(0.5)
        for key, _title, extra in CLUSTER_MODES:
            before = wait_cluster_ready(m, port)
            c0, t0 = daemon_cpu_ticks(dpid), time.perf_counter()
            proc = start_wrk(wrk_argv(wrk, port, RELOAD_RUN_S, extra))
            time.sleep(RELOAD_AT_S)
            t_reload = time.perf_counter()
            rp = m.run("reload", CLUSTER_APP, timeout=120, check=False, capture=True)
            reload_s = time.perf_counter() - t_reload
            reload_end = t_reload + reload_s - t0  # seconds after wrk started
            w = finish_wrk(proc, timeout=RELOAD_RUN_S + 60)
            wall, c1 = time.perf_counter() - t0, daemon_cpu_ticks(dpid)
            after = cluster_pids_after_reload(m, port)
            w.update(cpu_fields(c0, c1, wall, w["requests"]), wall_s=wall, reload_s=reload_s,
                     reload_exit=rp.returncode, reload_end_s=reload_end,
                     reload_within_run=reload_end <= RELOAD_RUN_S - 0.5,
                     pids_before=sorted(before), pids_after=sorted(after),
                     replaced=len(after) == CLUSTER_INSTANCES and not set(before) & set(after))
            if rp.returncode != 0:
                w["reload_stderr"] = rp.stderr.decode(errors="replace")[-2000:]
                log(f"{m.label}: `reload {CLUSTER_APP}` exited {rp.returncode}: "
                    f"{w['reload_stderr']}")
            if w["failed"] and isinstance(m, Kelpie):
                log(f"{m.label}: {w['failed']} failed requests during the reload; logs:\n"
                    + cluster_logs_tail(m))
            reloads[key].append(w)
            log(f"{m.label}: cluster round {r + 1}/{cfg.rounds}, reload under {key} load: "
                f"failed {w['failed']} (connect {w['connect']}, read {w['read']}, write "
                f"{w['write']}, timeout {w['timeout']}, non-2xx {w['non2xx']}), reload took "
                f"{reload_s:.2f} s (exit {rp.returncode}), instances replaced: {w['replaced']}"
                + ("" if w["reload_within_run"] else " (WARNING: reload ended after the run)"))
            time.sleep(0.5)
    res = summarize_cluster({"runs": runs, "reloads": reloads, "balance": balance})
    res["graceful"] = reload_graceful_apps(m, script.parent, port, wrk, cfg)
    return res


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
