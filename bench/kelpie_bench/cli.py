"""The command line of bench/run.py: its flags, then the run: --self-test, --check (and
--check-update-budgets), or the scenarios, their tables on stdout and the report (--output)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
from pathlib import Path

from .budgets import BUDGETS_FILE, CHECK_APPS
from .check_command import check_main
from .common import log, SCRIPT
from .chaos import chaos_main
from .deploy import deploy_main
from .managers import build_kelpie
from .node_metrics import node_metrics_main
from .output import print_results, run_info
from .processes import cleanup_on_exit, loadavg
from .report import keep_sections_of
from .report_file import write_report
from .runtime import build_static, unshare_permitted
from .scale_report import scale_main
from .soak_report import soak_main
from .selftest import self_test
from .session import Session
from .notify import notify_main
from .js_runtimes import runtimes_main
from .sockets import sockets_main
from .wrk import ensure_wrk


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Kelpie vs PM2 benchmark")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions (1 round, 5 list runs, 5 crash rounds)")
    ap.add_argument("--apps", type=int, default=200, help="number of apps (default 200)")
    ap.add_argument("--only", choices=["core", "logs", "cluster", "health", "runtime",
                                       "reliability", "scale", "soak", "deploy",
                                       "nodemetrics", "chaos", "notify", "runtimes",
                                       "sockets"],
                    help="run only this scenario: core (RSS, list, start/stop, crash), logs, "
                         "cluster, health, runtime, reliability, scale, soak (crash-looping apps "
                         "of each kind), deploy, nodemetrics (the Node shim's runtime "
                         "metrics), chaos (random faults for --chaos-secs) or notify "
                         "(notifications on against off with crash-looping apps, and an "
                         "exception burst; Kelpie only), runtimes (Bun and Deno clusters "
                         "against the same runtime's processes by hand) or sockets (uvicorn, "
                         "gunicorn and a Go server on Kelpie's socket against their own "
                         "port); default: all but scale, soak, deploy, nodemetrics, chaos, "
                         "notify, runtimes and sockets, which "
                         "are run only on their own; deploy needs root and sshd, and is skipped with the reason "
                         "without them)")
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
    ap.add_argument("--chaos-secs", type=int, default=600,
                    help="how long the chaos scenario injects faults, in s (default 600)")
    ap.add_argument("--chaos-seed", type=int,
                    help="the chaos scenario's seed (default: a new one, printed)")
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


def prepare_tools(cfg: argparse.Namespace) -> tuple[str | None, str | None, str | None] | None:
    """Builds what the scenarios need (unless --no-build), finds wrk (cluster) and checks that
    `unshare` is permitted (runtime). A scenario that cannot run is skipped, with why; None
    when it is the only one asked for (--only): the run cannot go on. Returns (wrk's path,
    why the cluster scenario is skipped, why the runtime scenario is skipped)."""
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
            return None
        if wrk is None:
            cluster_skipped = why
            cfg.cluster = False
            log(f"skipping the cluster scenario: {why}")
    runtime_skipped = None
    if cfg.runtime:
        ok, why = unshare_permitted()
        if not ok and cfg.only == "runtime":
            log(f"cannot run the runtime scenario: {why}")
            return None
        if not ok:
            runtime_skipped = why
            cfg.runtime = False
            log(f"skipping the runtime scenario: {why}")
    return wrk, cluster_skipped, runtime_skipped


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

    if cfg.only == "deploy":
        return deploy_main(cfg, argv_str)
    if cfg.only == "scale":
        if not cfg.no_build:
            build_kelpie()
        return scale_main(cfg, argv_str)
    if cfg.only == "soak":
        if not cfg.no_build:
            build_kelpie()
        return soak_main(cfg, argv_str)
    if cfg.only == "chaos":
        return chaos_main(cfg, argv_str)
    if cfg.only == "notify":
        if not cfg.no_build:
            build_kelpie()
        return notify_main(cfg, argv_str)
    if cfg.only == "runtimes":
        if not cfg.no_build:
            build_kelpie()
        return runtimes_main(cfg, argv_str)
    if cfg.only == "sockets":
        if not cfg.no_build:
            build_kelpie()
        return sockets_main(cfg, argv_str)
    if cfg.only == "nodemetrics":
        if not cfg.no_build:
            build_kelpie()
        return node_metrics_main(cfg, argv_str)
    tools = prepare_tools(cfg)
    if tools is None:
        return 1
    wrk, cluster_skipped, runtime_skipped = tools
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-"))
    log(f"temp dir {tmp}")
    session = Session(cfg, tmp, wrk)
    cleanup_on_exit(session.cleanup_all)
    session.measure()

    ri = run_info(cfg, session, argv_str, started, load_before)
    print_results(cfg, session, ri, cluster_skipped, runtime_skipped)
    if cfg.output:
        previous = cfg.output.read_text() if cfg.output.exists() else ""
        write_report(cfg, session, ri)
        keep_sections_of(cfg.output, previous)  # nodemetrics, and any other it does not know
    return 0
