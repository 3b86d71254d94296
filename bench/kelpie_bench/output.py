"""What a bench run prints: its header (command, date, machine, versions, repetitions), every
scenario's table, then their notes. The --output report is report_file."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass

from .cluster_report import build_cluster_table, cluster_notes
from .core_report import build_table
from .health_report import build_health_table, health_notes
from .logs_report import build_logs_table, logs_notes
from .logs_slow import slow_disk_notes, slow_disk_table
from .reliability_report import build_reliability_table, reliability_notes
from .report import machine_info
from .runtime_report import build_runtime_table, runtime_notes
from .session import Session
from .wrk import wrk_version


@dataclass
class RunInfo:
    """How the run was made: its command line, when, on what, with which versions."""

    argv_str: str
    date: str
    load_before: str
    info: dict[str, str]
    ver_line: str
    mach_line: str
    reps: str


def run_info(cfg: argparse.Namespace, s: Session, argv_str: str, started: dt.datetime,
             load_before: str) -> RunInfo:
    """The run's description (also adds wrk's version to s.versions when the cluster scenario
    ran)."""
    versions = s.versions
    info = machine_info()
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    ver_line = f"kelpie: `{versions['kelpie']}`" + (
        f", pm2: `{versions['pm2']}`" if "pm2" in versions else "")
    mach_line = (f"{info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                 f"Linux {info['kernel']}, node {info['node']}, Python {info['python']}, "
                 f"load average {load_before} at start (1/5/15 min)")
    reps = repetitions(cfg)
    if cfg.cluster:
        versions["wrk"] = wrk_version(s.wrk)
    return RunInfo(argv_str, date, load_before, info, ver_line, mach_line, reps)


def logs_repetitions(cfg: argparse.Namespace) -> str:
    """How many times the logs scenario measured (also the run line of its section)."""
    return (f"{cfg.rounds} logs round(s) of {cfg.log_lines:,} lines per app variant and manager "
            f"(median)")


def repetitions(cfg: argparse.Namespace) -> str:
    reps_parts = []
    if cfg.core:
        reps_parts.append(f"{cfg.rounds} start/stop round(s) (median), "
                          f"{cfg.rounds * cfg.list_runs} runs of each list command (median), "
                          f"{cfg.crash_rounds} crash rounds")
    if cfg.logs:
        reps_parts.append(logs_repetitions(cfg))
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
    return "; ".join(reps_parts)


def print_results(cfg: argparse.Namespace, s: Session, ri: RunInfo,
                  cluster_skipped: str | None, runtime_skipped: str | None) -> None:
    """The header, every table, then every scenario's notes, on stdout."""
    logs, cluster, health, runtime, reliability = (s.logs, s.cluster, s.health, s.runtime,
                                                   s.reliability)
    sections = []
    if s.kel_res is not None:
        sections.append(build_table(cfg.apps, s.pm2_res, s.kel_res))
    if logs:
        sections.append(build_logs_table(cfg.log_lines, logs))
    if s.logs_slow:
        sections.append(slow_disk_table(s.logs_slow))
    if cluster:
        sections.append(build_cluster_table(cluster.get("pm2"), cluster["kelpie"]))
    if health:
        sections.append(build_health_table(health.get("pm2"), health["kelpie"]))
    if runtime:
        sections.append(build_runtime_table(runtime["pm2"], runtime["kelpie"], runtime["sizes"]))
    if reliability:
        sections.append(build_reliability_table(reliability["kelpie"], reliability.get("pm2")))
    print(f"\nDate: {ri.date}\nMachine: {ri.mach_line}\nVersions: {ri.ver_line}\n"
          f"Repetitions: {ri.reps}\n")
    print("\n\n".join(sections))
    if logs:
        print("\n" + logs_notes(cfg.log_lines, logs))
    if s.logs_slow:
        print("\n" + slow_disk_notes(s.logs_slow))
    if cluster:
        print("\n" + cluster_notes(cfg, s.versions["wrk"]))
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


