from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .budgets import BUDGETS_FILE, CHECK_APPS
from .check import check_main
from .cluster import bench_bound, bench_cluster
from .cluster_apps import CLUSTER_APP, CLUSTER_APP_JS
from .cluster_report import (
    build_cluster_table, cluster_notes, cluster_section, existing_cluster_section,
    merge_cluster_section,
)
from .common import KELPIE_BIN, log, SCRIPT
from .core import app_alone_start_ms, bench_manager, bench_restart_only
from .core_report import build_table
from .health import bench_health_cpu, bench_health_memory
from .health_report import (
    build_health_table, existing_health_section, health_notes, health_section,
    merge_health_section,
)
from .logs import app_alone, bench_logs, LOG_VARIANTS
from .logs_report import build_logs_table, logs_notes
from .managers import (
    build_kelpie, install_pm2, Kelpie, KelpieUnprivileged, Pm2, unprivileged_possible,
)
from .processes import cleanup_on_exit, free_port, kill_with_marker, loadavg
from .reliability import bench_reliability
from .reliability_report import (
    build_reliability_table, existing_reliability_section, merge_reliability_section,
    reliability_notes, reliability_section,
)
from .reliability_tools import REL_SCRIPTS
from .report import machine_info
from .runtime import bench_runtime, build_static, KELPIE_STATIC, RUNTIME_RUNS, unshare_permitted
from .runtime_report import (
    build_runtime_table, existing_runtime_section, merge_runtime_section, runtime_notes,
    runtime_section,
)
from .selftest import self_test
from .stats import median, round_floats
from .wrk import ensure_wrk, WRK_PROCS, wrk_version


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Kelpie vs PM2 benchmark")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions (1 round, 5 list runs, 5 crash rounds)")
    ap.add_argument("--apps", type=int, default=200, help="number of apps (default 200)")
    ap.add_argument("--only", choices=["core", "logs", "cluster", "health", "runtime",
                                       "reliability"],
                    help="run only this scenario: core (RSS, list, start/stop, crash), logs, "
                         "cluster, health, runtime or reliability (default: all)")
    ap.add_argument("--wrk-seconds", type=float, default=4.0,
                    help="length of each cluster throughput run (default 4)")
    ap.add_argument("--log-lines", type=int, default=500_000,
                    help="lines the logs app prints (default 500000)")
    ap.add_argument("--health-apps", type=int,
                    help="idle apps of the health scenario's CPU measurement (default 500, "
                         "100 with --quick)")
    ap.add_argument("--cpu-window", type=float,
                    help="length of each window of the health scenario's CPU measurement, in s "
                         "(default 30, 10 with --quick)")
    ap.add_argument("--kelpie-only", action="store_true", help="skip PM2")
    ap.add_argument("--output", type=Path, help="also write a markdown report to this file")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--pm2-prefix", type=Path,
                    help="npm prefix to install PM2 into / reuse (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--self-test", action="store_true",
                    help="only run the tests of the helpers (no build, no managers)")
    ap.add_argument("--check", action="store_true",
                    help="regression check, Kelpie only (~30 s after the build): the core "
                         "figures against the budgets in bench/budgets.json; exit 1 if one is "
                         "over its budget or could not be measured")
    ap.add_argument("--check-output", type=Path, metavar="FILE",
                    help="with --check: also write the results as JSON to FILE")
    ap.add_argument("--check-update-budgets", nargs="*", type=Path, metavar="RESULTS_JSON",
                    help="rewrite bench/budgets.json with the headroom rule: alone, from the "
                         "figures of a --check run it makes; with --check-output files, from "
                         "the worst figure of those (no run)")
    ap.add_argument("--budgets", type=Path, default=BUDGETS_FILE, metavar="FILE",
                    help="the budgets file of --check (default bench/budgets.json)")
    a = ap.parse_args()
    if a.check_update_budgets is not None and not a.check_update_budgets:
        a.check = True  # the flag alone: run the check, then rewrite the budgets
    if a.check_output and not a.check:
        ap.error("--check-output needs --check")
    if a.check or a.check_update_budgets:
        for flag, given in (("--only", a.only), ("--output", a.output), ("--quick", a.quick),
                            ("--self-test", a.self_test), ("--apps", a.apps != 200)):
            if given:
                ap.error(f"{flag} cannot go with --check / --check-update-budgets (the check "
                         f"has fixed repetitions and {CHECK_APPS} apps)")
    if a.quick:
        # settle: 3 s, so that RSS is of the steady state (the daemon unmaps the code of a
        # burst of work 1-2 s after it).
        a.rounds, a.list_runs, a.crash_rounds, a.rss_samples, a.settle = 1, 5, 5, 3, 3.0
        # Health: memory limit rounds (Kelpie per variant; PM2 main; PM2 child).
        a.health_rounds_kelpie, a.health_rounds_pm2, a.health_rounds_pm2_child = 3, 1, 1
    else:
        a.rounds, a.list_runs, a.crash_rounds, a.rss_samples, a.settle = 3, 5, 20, 5, 3.0
        a.health_rounds_kelpie, a.health_rounds_pm2, a.health_rounds_pm2_child = 5, 3, 1
    if a.health_apps is None:
        a.health_apps = 100 if a.quick else 500
    if a.cpu_window is None:
        a.cpu_window = 10.0 if a.quick else 30.0
    a.health_settle = 5.0  # after all the health apps are online, before the CPU windows
    # Idle processes no manager knows, for one more CPU window (the cost must not grow).
    a.unrelated = 1000 if a.quick else 5000
    if not 1 <= a.log_lines <= 9_999_999:
        ap.error("--log-lines must be between 1 and 9999999 (7-digit line numbers)")
    a.log_timeout, a.log_stall = 60.0, 10.0
    a.core = a.only in (None, "core")
    a.logs = a.only in (None, "logs")
    a.cluster = a.only in (None, "cluster")
    a.health = a.only in (None, "health")
    a.runtime = a.only in (None, "runtime")
    a.reliability = a.only in (None, "reliability")
    a.runtime_rounds = 2 if a.quick else 5
    return a


def main() -> int:
    cfg = parse_args()
    if cfg.self_test:
        return self_test()
    if cfg.check or cfg.check_update_budgets:
        return check_main(cfg)
    argv_str = "python3 " + " ".join(shlex.quote(x) for x in
                                     [os.path.relpath(SCRIPT, Path.cwd()), *sys.argv[1:]])
    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()

    if not cfg.no_build:
        if cfg.core or cfg.logs or cfg.cluster or cfg.health or cfg.reliability:
            build_kelpie()
        if cfg.runtime:
            build_static()
    wrk, cluster_skipped = None, None
    if cfg.cluster:
        wrk, why = ensure_wrk()
        if wrk is None and cfg.only == "cluster":
            log(f"cannot run the cluster scenario: {why}")
            return 1
        if wrk is None:
            cluster_skipped = why
            cfg.cluster = False
            log(f"skipping the cluster scenario: {why}")
    runtime_skipped = None
    if cfg.runtime:
        ok, why = unshare_permitted()
        if not ok and cfg.only == "runtime":
            log(f"cannot run the runtime scenario: {why}")
            return 1
        if not ok:
            runtime_skipped = why
            cfg.runtime = False
            log(f"skipping the runtime scenario: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-"))
    log(f"temp dir {tmp}")
    log_scripts: dict[str, Path] = {}
    for v in LOG_VARIANTS:
        log_scripts[v.key] = tmp / v.filename
        log_scripts[v.key].write_text(v.js % cfg.log_lines)
    cluster_script = tmp / f"{CLUSTER_APP}.js"
    cluster_script.write_text(CLUSTER_APP_JS)
    cfg.tmp = tmp
    rel_scripts: dict[str, Path] = {}
    for key, (fname, js) in REL_SCRIPTS.items():
        rel_scripts[key] = tmp / fname
        rel_scripts[key].write_text(js)

    managers: list[Manager] = []

    def cleanup_all() -> None:
        for m in managers:
            try:
                m.cleanup()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup of {m.label} failed: {e}")
        managers.clear()
        for p in WRK_PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        WRK_PROCS.clear()
        for run in list(RUNTIME_RUNS):
            run.kill()
        RUNTIME_RUNS.clear()
        for script in (*log_scripts.values(), cluster_script, *rel_scripts.values()):
            kill_with_marker(str(script))  # a logs or cluster app left behind, if any
        if not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    cleanup_on_exit(cleanup_all)

    def run_one(m: Manager, scenario) -> dict:
        """One scenario with a fresh daemon and home, stopped afterwards (never two daemons)."""
        managers.append(m)
        res = scenario(m)
        m.cleanup()
        return res

    def run_part(m: Manager, part) -> dict:
        """Like run_one, for a part of the reliability scenario: an error is recorded (and
        shown in the table) instead of ending the run; the manager is cleaned up either way."""
        managers.append(m)
        m.app_markers = (*m.app_markers, *map(str, rel_scripts.values()), str(cluster_script))
        try:
            return part(m)
        except Exception as e:  # noqa: BLE001 - reported in the table
            log(f"{m.label}: reliability part failed: {type(e).__name__}: {e}")
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            m.cleanup()
            managers.remove(m)
            for script in (*rel_scripts.values(), cluster_script):
                kill_with_marker(str(script))  # an app the killed daemon left behind

    pm2_res = kel_res = None
    # variant key -> {"alone": ..., "pm2": ..., "kelpie": ...}
    logs: dict[str, dict] = {v.key: {} for v in LOG_VARIANTS} if cfg.logs else {}
    cluster: dict[str, dict | None] = {}  # "pm2", "kelpie" -> summarize_cluster()
    health: dict[str, dict] = {}  # "pm2", "kelpie" -> {"cpu": ..., "memory": ...}
    runtime: dict | None = None  # bench_runtime()
    reliability: dict[str, dict] = {}  # "pm2", "kelpie" -> bench_reliability()
    pm2_bin: Path | None = None
    try:
        for v in LOG_VARIANTS if cfg.logs else ():
            logs[v.key]["alone"] = app_alone(log_scripts[v.key], tmp / "alone", cfg)
        version_bin = KELPIE_BIN if KELPIE_BIN.exists() else KELPIE_STATIC
        versions = {"kelpie": subprocess.run([str(version_bin), "--version"], capture_output=True,
                                             text=True).stdout.strip()}
        if not cfg.kelpie_only:
            pm2_bin = install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix else tmp / "pm2")
            probe = Pm2(tmp / "pm2-version", pm2_bin)
            versions["pm2"] = probe.run("--version", capture=True).stdout.decode().strip() \
                .splitlines()[-1]
            run_one(probe, lambda m: None)  # `pm2 --version` may start a daemon: stop it
            if cfg.core:
                pm2_res = run_one(Pm2(tmp / "pm2-run", pm2_bin),
                                  lambda m: bench_manager(m, cfg.apps, cfg))
            for v in LOG_VARIANTS if cfg.logs else ():
                logs[v.key]["pm2"] = run_one(
                    Pm2(tmp / f"pm2-logs-{v.key}", pm2_bin),
                    lambda m, v=v: bench_logs(m, log_scripts[v.key], cfg))
            if cfg.cluster:
                cluster["pm2"] = run_one(
                    Pm2(tmp / "pm2-cluster", pm2_bin),
                    lambda m: bench_cluster(m, cluster_script, free_port(), wrk, cfg))
            if cfg.health:
                health["pm2"] = {
                    "cpu": run_one(Pm2(tmp / "pm2-health-cpu", pm2_bin),
                                   lambda m: bench_health_cpu(m, cfg.health_apps, cfg)),
                    "memory": run_one(Pm2(tmp / "pm2-health-memory", pm2_bin),
                                      lambda m: bench_health_memory(
                                          m, {"main": cfg.health_rounds_pm2,
                                              "child": cfg.health_rounds_pm2_child},
                                          Pm2.memory_check_period_s, cfg))}
            if cfg.reliability:
                reliability["pm2"] = bench_reliability(
                    lambda k: Pm2(tmp / f"pm2-rel-{k}", pm2_bin), run_part, rel_scripts,
                    cluster_script, cfg)
        if cfg.core:
            kel_res = run_one(Kelpie(tmp / "kelpie-run"),
                              lambda m: bench_manager(m, cfg.apps, cfg))
            alone = app_alone_start_ms(cfg.crash_rounds, tmp)
            kel_res["alone_start_ms"] = median(alone)
            kel_res["raw"]["alone_start_ms"] = alone
            ok, why = unprivileged_possible()
            if ok:
                kel_res["nocgroups"] = run_one(KelpieUnprivileged(tmp / "kelpie-nocg"),
                                               lambda m: bench_restart_only(m, cfg))
                kel_res["raw"]["nocgroups_restart_ms"] = kel_res["nocgroups"]["raw"]["restart_ms"]
            else:
                log(f"Kelpie without cgroups: skipped ({why})")
        for v in LOG_VARIANTS if cfg.logs else ():
            logs[v.key]["kelpie"] = run_one(
                Kelpie(tmp / f"kelpie-logs-{v.key}"),
                lambda m, v=v: bench_logs(m, log_scripts[v.key], cfg))
        if cfg.cluster:
            cluster["kelpie"] = run_one(
                Kelpie(tmp / "kelpie-cluster"),
                lambda m: bench_cluster(m, cluster_script, free_port(), wrk, cfg))
            try:
                cluster["kelpie"]["bound"] = bench_bound(cluster_script, free_port(), wrk, cfg)
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"the bound (the app run by hand) could not be measured: {e}")
        if cfg.health:
            health["kelpie"] = {
                "cpu": run_one(Kelpie(tmp / "kelpie-health-cpu"),
                               lambda m: bench_health_cpu(m, cfg.health_apps, cfg)),
                "memory": run_one(Kelpie(tmp / "kelpie-health-memory"),
                                  lambda m: bench_health_memory(
                                      m, {"main": cfg.health_rounds_kelpie,
                                          "child": cfg.health_rounds_kelpie},
                                      Kelpie.memory_check_period_s, cfg))}
        if cfg.reliability:
            reliability["kelpie"] = bench_reliability(
                lambda k: Kelpie(tmp / f"kelpie-rel-{k}"), run_part, rel_scripts,
                cluster_script, cfg)
        if cfg.runtime:
            runtime = bench_runtime(pm2_bin.parent / "pm2-runtime" if pm2_bin else None, tmp, cfg)
    finally:
        cleanup_all()

    info = machine_info()
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    ver_line = f"kelpie: `{versions['kelpie']}`" + (
        f", pm2: `{versions['pm2']}`" if "pm2" in versions else "")
    mach_line = (f"{info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                 f"Linux {info['kernel']}, node {info['node']}, Python {info['python']}, "
                 f"load average {load_before} at start (1/5/15 min)")
    reps_parts = []
    if cfg.core:
        reps_parts.append(f"{cfg.rounds} start/stop round(s) (median), "
                          f"{cfg.rounds * cfg.list_runs} runs of each list command (median), "
                          f"{cfg.crash_rounds} crash rounds")
    if cfg.logs:
        reps_parts.append(f"{cfg.rounds} logs round(s) of {cfg.log_lines:,} lines per app "
                          f"variant and manager (median)")
    if cfg.cluster:
        reps_parts.append(f"{cfg.rounds} cluster round(s) per manager (median)")
    if cfg.health:
        reps_parts.append(f"health: {cfg.health_apps} idle apps, {cfg.rounds} CPU window(s) of "
                          f"{cfg.cpu_window:g} s (median); memory limit rounds: Kelpie "
                          f"{cfg.health_rounds_kelpie} per variant, PM2 {cfg.health_rounds_pm2} "
                          f"(main) and {cfg.health_rounds_pm2_child} (child)")
    if cfg.runtime:
        reps_parts.append(f"runtime: {cfg.runtime_rounds} round(s) per variant and runtime "
                          f"(median)")
    if cfg.reliability:
        reps_parts.append(f"reliability: {cfg.rounds} round(s) of the stop and {cfg.apps}-app "
                          f"parts (median), the others once")
    reps = "; ".join(reps_parts)
    if cfg.cluster:
        versions["wrk"] = wrk_version(wrk)

    sections = []
    if kel_res is not None:
        sections.append(build_table(cfg.apps, pm2_res, kel_res))
    if logs:
        sections.append(build_logs_table(cfg.log_lines, logs))
    if cluster:
        sections.append(build_cluster_table(cluster.get("pm2"), cluster["kelpie"]))
    if health:
        sections.append(build_health_table(health.get("pm2"), health["kelpie"]))
    if runtime:
        sections.append(build_runtime_table(runtime["pm2"], runtime["kelpie"], runtime["sizes"]))
    if reliability:
        sections.append(build_reliability_table(reliability["kelpie"], reliability.get("pm2")))
    print(f"\nDate: {date}\nMachine: {mach_line}\nVersions: {ver_line}\nRepetitions: {reps}\n")
    print("\n\n".join(sections))
    if logs:
        print("\n" + logs_notes(cfg.log_lines, logs))
    if cluster:
        print("\n" + cluster_notes(cfg, versions["wrk"]))
    if health:
        print("\n" + health_notes(cfg, cfg.health_apps))
    if runtime:
        print("\n" + runtime_notes(cfg))
    if reliability:
        print("\n" + reliability_notes(cfg))
    if cluster_skipped:
        print(f"\nCluster scenario skipped: {cluster_skipped}")
    if runtime_skipped:
        print(f"\nRuntime scenario skipped: {runtime_skipped}")

    if cfg.output:
        raw: dict = {}
        if kel_res is not None:
            raw["pm2"] = pm2_res and pm2_res["raw"]
            raw["kelpie"] = kel_res["raw"]
        if logs:
            raw["logs"] = {
                k: {"pm2": d.get("pm2") and d["pm2"]["raw"], "kelpie": d["kelpie"]["raw"],
                    "app_alone_s": d["alone"]["raw"]}
                for k, d in logs.items()}
        raw_txt = json.dumps(round_floats(raw), indent=1)
        section = None
        if cluster:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}, wrk `{versions['wrk']}`; {info['nproc']} CPUs "
                        f"({info['cpu']}), node {info['node']}")
            section = cluster_section(
                build_cluster_table(cluster.get("pm2"), cluster["kelpie"]),
                cluster_notes(cfg, versions["wrk"]), run_line,
                {k: d and d["raw"] for k, d in cluster.items()})
        else:
            # Not measured this time: keep the cluster results the file already has.
            section = existing_cluster_section(cfg.output)
        if health:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                        f"Linux {info['kernel']}")
            hsection = health_section(
                build_health_table(health.get("pm2"), health["kelpie"]),
                health_notes(cfg, cfg.health_apps), run_line,
                {k: {part: d[part] for part in ("cpu", "memory")} for k, d in health.items()})
        else:
            hsection = existing_health_section(cfg.output)  # kept as the file has it
        if runtime:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}; {info['nproc']} CPUs ({info['cpu']}), node {info['node']}, "
                        f"Linux {info['kernel']}")
            rsection = runtime_section(
                build_runtime_table(runtime["pm2"], runtime["kelpie"], runtime["sizes"]),
                runtime_notes(cfg), run_line, {"runs": runtime["raw"], "sizes": runtime["sizes"]})
        else:
            rsection = existing_runtime_section(cfg.output)  # kept as the file has it
        if reliability:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}; {info['nproc']} CPUs ({info['cpu']}), node {info['node']}, "
                        f"Linux {info['kernel']}")
            relsection = reliability_section(
                build_reliability_table(reliability["kelpie"], reliability.get("pm2")),
                reliability_notes(cfg), run_line, reliability)
        else:
            relsection = existing_reliability_section(cfg.output)  # kept as the file has it
        if cfg.only == "cluster" and cfg.output.exists():
            # Only the cluster scenario ran: replace its section, keep the rest of the report.
            cfg.output.write_text(merge_cluster_section(cfg.output.read_text(), section))
            log(f"updated the cluster section of {cfg.output}")
            return 0
        if cfg.only == "health" and cfg.output.exists():
            # Only the health scenario ran: replace its section, keep the rest of the report.
            cfg.output.write_text(merge_health_section(cfg.output.read_text(), hsection))
            log(f"updated the health section of {cfg.output}")
            return 0
        if cfg.only == "runtime" and cfg.output.exists():
            # Only the runtime scenario ran: replace its section, keep the rest of the report.
            cfg.output.write_text(merge_runtime_section(cfg.output.read_text(), rsection))
            log(f"updated the runtime section of {cfg.output}")
            return 0
        if cfg.only == "reliability" and cfg.output.exists():
            # Only the reliability scenario ran: replace its section, keep the rest.
            cfg.output.write_text(merge_reliability_section(cfg.output.read_text(), relsection))
            log(f"updated the reliability section of {cfg.output}")
            return 0
        body = []
        if kel_res is not None:
            body.append(build_table(cfg.apps, pm2_res, kel_res) + """

MB = MiB of VmRSS of the daemon process alone (not its apps). Times are the wall time of the whole
CLI command as a user runs it (process start included). Ratio = PM2 / Kelpie (how many times
smaller or faster Kelpie is).""")
        if logs:
            body.append("## Logs\n\n" + build_logs_table(cfg.log_lines, logs)
                        + "\n\n" + logs_notes(cfg.log_lines, logs))
        apps_line = f"- Apps: {cfg.apps}; {reps}" if cfg.core else f"- {reps}"
        if section:
            body.append(section)
        if hsection:
            body.append(hsection)
        if rsection:
            body.append(rsection)
        if relsection:
            body.append(relsection)
        report = f"""# Kelpie vs PM2: benchmark results

Command: `{argv_str}` (from the repository root)

- Date: {date}
- Machine: {mach_line}
- Versions: {ver_line}
{apps_line}

{(chr(10) * 2).join(body)}

See `bench/README.md` for the method.

<details><summary>Raw samples</summary>

```json
{raw_txt}
```

</details>
"""
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(report)
        log(f"wrote {cfg.output}")
    return 0
