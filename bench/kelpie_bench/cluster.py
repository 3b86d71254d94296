"""Cluster scenario, the measurement of one manager: its rounds (throughput, daemon and
instance CPU, keep-alive balance, reload under load), then the apps that shut down by
themselves (cluster_graceful)."""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from .cluster_apps import (
    BALANCE_CONNECTIONS, CLUSTER_APP, CLUSTER_INSTANCES, CLUSTER_MODES, RELOAD_AT_S, RELOAD_RUN_S,
)
from .cluster_graceful import reload_graceful_apps, summarize_cluster
from .cluster_instances import cluster_logs_tail, cluster_pids_after_reload, wait_cluster_ready
from .common import log
from .managers import Kelpie, Manager
from .processes import CLK_TCK, daemon_cpu_ticks
from .wrk import finish_wrk, keep_alive_balance, start_wrk, wrk_argv


def bench_cluster(m: Manager, script: Path, port: int, wrk: str, cfg: argparse.Namespace) -> dict:
    m.app_markers = (*m.app_markers, str(script))
    dpid = m.start_daemon("cluster")
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


