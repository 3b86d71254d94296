"""The cluster scenario's table, notes and section of RESULTS.md."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .cluster_apps import (
    BALANCE_CONNECTIONS, BALANCE_MAX_RATIO, BALANCE_RUN_S, CLUSTER_APP, CLUSTER_INSTANCES,
    CLUSTER_MODES, DAEMON_CPU_MAX_PCT, EXPRESS_VERSION, RELOAD_AT_S, RELOAD_RUN_S,
    WRK_CONNECTIONS, WRK_THREADS,
)
from .report import existing_section, merge_section
from .stats import fmt, fmt_ratio, round_floats
from .wrk import WRK_ERROR_KINDS


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" (met)" if ok else " (missed)")


def _rps(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f} req/s"


def _lat(d: dict, key: str) -> str:
    a, b = d.get(f"latency_p50_ms_{key}"), d.get(f"latency_p99_ms_{key}")
    return "n/a" if a is None or b is None else f"{a:.2f} / {b:.2f} ms"


def _cpu(d: dict, key: str) -> str:
    s = d.get(f"daemon_cpu_s_{key}")
    if s is None:
        return "n/a"
    pct, us = d.get(f"daemon_cpu_pct_{key}"), d.get(f"daemon_cpu_us_per_req_{key}")
    return f"{s:.2f} s, {pct:.1f}% of a core, {us:.1f} µs/req"


def _failed(d: dict, key: str) -> str:
    v = d.get(f"reload_failed_{key}")
    if v is None:
        return "n/a"
    s = f"{v:.0f} (worst {d[f'reload_failed_{key}_max']})"
    worst = d.get(f"reload_failed_{key}_worst") or {}
    kinds = [f"{k} {worst[k]}" for k in (*WRK_ERROR_KINDS, "non2xx") if worst.get(k)]
    return s + (f": {', '.join(kinds)}" if kinds else "")


def _balance(d: dict) -> str:
    if d.get("balance_ratio") is None:
        return "n/a"
    return (f"{d['balance_ratio']:.2f}x (worst round {d['balance_ratio_max']:.2f}x, of "
            f"{d['balance_rounds']})")


def _inst(d: dict, key: str) -> str:
    xs = d.get(f"instance_cpu_pct_{key}")
    return "n/a" if not xs else " + ".join(f"{x:.0f}%" for x in xs) + " of a core"


def _graceful(d: dict, kind: str) -> str:
    g = (d.get("graceful") or {}).get(kind) or {}
    if "skipped" in g:
        return f"skipped ({g['skipped'][:60]})"
    if not g.get("rounds"):
        return "n/a"
    worst = max(g["rounds"], key=lambda x: sum(x["failed"]))["failed"]
    return (f"{g['failed_max']} ({' + '.join(map(str, worst))}), "
            f"{g['replaced']} of {len(g['rounds'])} replaced")


def _replaced(d: dict) -> str:
    if not d.get("reloads"):
        return "n/a"
    s = f"{d['reloads_replaced']} of {d['reloads']}"
    if d["reloads_ok"] != d["reloads"]:
        s += f" ({d['reloads'] - d['reloads_ok']} exited non-zero)"
    if d["reloads_late"]:
        s += f" ({d['reloads_late']} ended after the wrk run)"
    return s


def build_cluster_table(pm2: dict | None, kel: dict) -> str:
    """The cluster scenario's rows (pm2: None with --kelpie-only)."""
    p = pm2 or {}
    lines = ["| Metric | PM2 7 | Kelpie | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    for key, title, _extra, need in ((k, t, e, n) for (k, t, e), n in
                                     zip(CLUSTER_MODES, (3.0, 1.2))):
        pv, kv = p.get(f"rps_{key}"), kel.get(f"rps_{key}")
        ratio = "-" if pv is None or kv is None or not pv else f"{kv / pv:.2f}x (Kelpie / PM2)"
        ok = None if pv is None or kv is None or not pv else kv / pv >= need
        lines.append(f"| Requests/s, {title} | {_rps(pv)} | {_rps(kv)} | {ratio} | "
                     f"Kelpie >= {need:g}x PM2's{_verdict(ok)} |")
    kb = kel.get("balance_ratio_max")
    balanced = None if kb is None else kb <= BALANCE_MAX_RATIO
    lines.append(f"| Keep-alive balance, `wrk -c {BALANCE_CONNECTIONS}`: requests of the busiest "
                 f"instance / the least busy, median | {_balance(p)} | {_balance(kel)} | - | "
                 f"Kelpie <= {BALANCE_MAX_RATIO:g}x{_verdict(balanced)} |")
    for key, title, _extra in CLUSTER_MODES:
        lines.append(f"| Latency p50 / p99, {title} | {_lat(p, key)} | {_lat(kel, key)} | - | - |")
    for key, title, _extra in CLUSTER_MODES:
        lines.append(f"| Instances' CPU during the wrk run, {title} (each, busiest first) | "
                     f"{_inst(p, key)} | {_inst(kel, key)} | - | - |")
    for key, title, _extra in CLUSTER_MODES:
        pv, kv = p.get(f"server_cpu_us_per_req_{key}"), kel.get(f"server_cpu_us_per_req_{key}")
        lines.append(f"| CPU per request, daemon + instances, {title} | {fmt(pv, 'µs')} | "
                     f"{fmt(kv, 'µs')} | {fmt_ratio(pv, kv)} | - |")
    for key, title, _extra in CLUSTER_MODES:
        k = f"bench_cpu_pct_of_machine_{key}"
        pv, kv = p.get(k), kel.get(k)
        lines.append(f"| CPU used by wrk + daemon + instances, % of the machine's {os.cpu_count()} "
                     f"CPUs, {title} | {fmt(pv, '%', 0)} | {fmt(kv, '%', 0)} | - | - (the rest "
                     f"went to other work) |")
    for key, title, _extra in CLUSTER_MODES:
        kp = kel.get(f"daemon_cpu_pct_{key}")
        ok = None if kp is None else kp <= DAEMON_CPU_MAX_PCT
        ratio = fmt_ratio(p.get(f"daemon_cpu_s_{key}"), kel.get(f"daemon_cpu_s_{key}"))
        lines.append(f"| Daemon CPU during the wrk run, {title} | {_cpu(p, key)} | "
                     f"{_cpu(kel, key)} | {ratio} | Kelpie ~0: <= {DAEMON_CPU_MAX_PCT:g}% of a "
                     f"core{_verdict(ok)} |")
    pf = [p.get(f"failed_{k}_max") for k, _t, _e in CLUSTER_MODES]
    kf = [kel.get(f"failed_{k}_max") for k, _t, _e in CLUSTER_MODES]
    show = lambda xs: "n/a" if None in xs else " / ".join(str(x) for x in xs)  # noqa: E731
    ok = None if None in kf else sum(kf) == 0
    lines.append(f"| Failed requests without reload, worst round (new connection / keep-alive) "
                 f"| {show(pf)} | {show(kf)} | - | Kelpie 0{_verdict(ok)} |")
    for key, title, _extra in CLUSTER_MODES:
        km = kel.get(f"reload_failed_{key}_max")
        ok = None if km is None else km == 0
        lines.append(f"| Failed requests during `reload` under load, {title}: median (worst "
                     f"round) | {_failed(p, key)} | {_failed(kel, key)} | - | "
                     f"Kelpie 0{_verdict(ok)} |")
    for kind, title in (("seed", "the seed's SIGINT handler calling `server.close()`"),
                        ("express", f"Express {EXPRESS_VERSION}, same handler")):
        g = (kel.get("graceful") or {}).get(kind) or {}
        ok = None if g.get("failed_max") is None else \
            g["failed_max"] == 0 and g["replaced"] == len(g["rounds"])
        lines.append(f"| Failed requests during `reload` under new-connection + keep-alive load "
                     f"at once, {title}: worst round (new connection + keep-alive) | "
                     f"{_graceful(p, kind)} | {_graceful(kel, kind)} | - | "
                     f"Kelpie 0{_verdict(ok)} |")
    bound = kel.get("bound") or {}
    for key, title, _extra in CLUSTER_MODES:
        bv, kv = bound.get(f"rps_{key}"), kel.get(f"rps_{key}")
        share = "-" if bv is None or kv is None or not bv else f"Kelpie at {100 * kv / bv:.0f}%"
        lines.append(f"| Bound: requests/s, {title}, the same app run by hand ({CLUSTER_INSTANCES} "
                     f"Node processes sharing one socket, no manager) | - | {_rps(bv)} | {share} "
                     f"| - |")
    pr, kr = p.get("reload_s"), kel.get("reload_s")
    lines.append(f"| `reload` command time ({CLUSTER_INSTANCES} instances, under load), median | "
                 f"{fmt(pr, 's', 2)} | {fmt(kr, 's', 2)} | {fmt_ratio(pr, kr)} | - |")

    ok = None if not kel.get("reloads") else \
        kel["reloads_replaced"] == kel["reloads_ok"] == kel["reloads"] and not kel["reloads_late"]
    lines.append(f"| Reloads that replaced all {CLUSTER_INSTANCES} instances (exit 0, within "
                 f"the run) | {_replaced(p)} | {_replaced(kel)} | - | all{_verdict(ok)} |")
    return "\n".join(lines)


def cluster_notes(cfg: argparse.Namespace, wrk_ver: str) -> str:
    return (
        f"Cluster: a Node.js HTTP hello world (`res.end(\"hello world\\n\")`, the same unchanged "
        f"file for both) listening on `process.env.PORT`, {CLUSTER_INSTANCES} instances in "
        f"cluster mode: `pm2 start hello.js -i {CLUSTER_INSTANCES}` with `PORT` in its "
        f"environment (Node's cluster module: the PM2 daemon is the cluster master and "
        f"hands each connection to a worker) and `kelpie start hello.js -i "
        f"{CLUSTER_INSTANCES} --port <port>` (the daemon owns the listening socket, every "
        f"instance accepts from it). Each manager on its own free port, one after the other. "
        f"Load: wrk {wrk_ver}, `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{cfg.wrk_seconds:g}s "
        f"--latency http://127.0.0.1:<port>/`, with `-H 'Connection: close'` (a new TCP "
        f"connection per request) and without (keep-alive), after a 1 s warm-up; wrk runs on "
        f"the same 2 cores as the apps and the daemon. Medians of {cfg.rounds} round(s). "
        f"Daemon CPU: utime+stime of the daemon process (all its threads, not its children: "
        f"the instances' CPU is not in it) over the wrk run, also as % of one core over the "
        f"run's wall time and per request; the instances' CPU likewise, per instance process "
        f"(busiest first, median per rank), and the CPU per request of the daemon and the "
        f"instances together (their CPU seconds over the run / requests: the server side's "
        f"cost, less sensitive than requests/s to other work on the machine, which takes CPU "
        f"time from both); and the CPU that wrk, the daemon and the instances used together, "
        f"as % of all the machine's CPUs over the run (below 100 %: other work on the machine "
        f"took the rest, or the client and server left CPUs idle). Reload: wrk runs "
        f"{RELOAD_RUN_S} s (same options), "
        f"`<manager> reload {CLUSTER_APP}` starts {RELOAD_AT_S:g} s in; failed requests = wrk's "
        f"socket errors (connect, read, write, timeout) + non-2xx/3xx responses of that run; "
        f"the instances' pids before and after tell that both were replaced. The reload time is "
        f"the wall time of the `reload` command. Keep-alive balance: `wrk -t{WRK_THREADS} "
        f"-c{BALANCE_CONNECTIONS} -d{BALANCE_RUN_S}s` (keep-alive clients that all connect at "
        f"once), and {BALANCE_RUN_S - 0.5:g} s in, the requests each instance has received on "
        f"its open connections (`ss -ti`: data segments received per connection, one per "
        f"request); busiest / least busy, per round. Apps that shut down by themselves: the "
        f"seed documents' `process.on('SIGINT', () => server.close(() => process.exit(0)))` "
        f"in the same hello world, and in an Express {EXPRESS_VERSION} hello world (from npm), "
        f"started the same way; per round, `reload` {RELOAD_AT_S:g} s into two wrk runs at "
        f"once ({max(1, WRK_CONNECTIONS // 2)} connections each, one with `Connection: close`, "
        f"one keep-alive, {RELOAD_RUN_S} s). Bound: the hello world started by hand, "
        f"{CLUSTER_INSTANCES} workers of Node's cluster module with `SCHED_NONE` (the primary "
        f"binds, every worker accepts from the same socket; no manager), same wrk runs, "
        f"in the same bench run.")


CLUSTER_BEGIN = "<!-- bench:cluster:begin -->"
CLUSTER_END = "<!-- bench:cluster:end -->"


def cluster_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The cluster scenario's part of RESULTS.md, self-contained (its own run line and raw
    samples) so that `--only cluster` can replace it in a report that has the other sections."""
    return f"""{CLUSTER_BEGIN}
## Cluster

{run_line}

{table}

{notes}

<details><summary>Raw samples (cluster)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{CLUSTER_END}"""


def merge_cluster_section(report: str, section: str | None) -> str:
    return merge_section(report, CLUSTER_BEGIN, CLUSTER_END, section)


def existing_cluster_section(path: Path | None) -> str | None:
    return existing_section(path, CLUSTER_BEGIN, CLUSTER_END)
