"""The markdown report of --output: the whole report, or with --only <scenario> on an existing
file, that scenario's section replaced in place."""

from __future__ import annotations

import argparse
import json

from .cluster_report import (
    build_cluster_table, cluster_notes, cluster_section, existing_cluster_section,
    merge_cluster_section,
)
from .common import log
from .deploy_report import existing_deploy_section, merge_deploy_section
from .core_report import build_table
from .health_report import (
    build_health_table, existing_health_section, health_notes, health_section,
    merge_health_section,
)
from .logs_report import (
    build_logs_table, existing_logs_section, logs_notes, logs_section, merge_logs_section,
)
from .logs_slow import slow_disk_notes, slow_disk_table
from .output import RunInfo, logs_repetitions
from .reliability_report import (
    build_reliability_table, existing_reliability_section, merge_reliability_section,
    reliability_notes, reliability_section,
)
from .runtime_report import (
    build_runtime_table, existing_runtime_section, merge_runtime_section, runtime_notes,
    runtime_section,
)
from .scale_report import existing_scale_section, merge_scale_section
from .session import Session
from .stats import round_floats


def write_report(cfg: argparse.Namespace, s: Session, ri: RunInfo) -> None:
    """cfg.output: with --only <scenario> on an existing file, that scenario's section replaced;
    else the whole report (a section measured this time, or kept as the file has it)."""
    sections = scenario_sections(cfg, s, ri)
    if merge_only_section(cfg, *sections):
        return
    report = full_report(cfg, s, ri, *sections)
    # The scale and deploy sections are measured only on their own (--only scale, --only
    # deploy): kept as the file has them.
    report = merge_scale_section(report, existing_scale_section(cfg.output))
    report = merge_deploy_section(report, existing_deploy_section(cfg.output))
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(report)
    log(f"wrote {cfg.output}")


def scenario_sections(cfg: argparse.Namespace, s: Session, ri: RunInfo
                      ) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    """The self-contained sections (logs, cluster, health, runtime, reliability): measured this
    time, else the one the file at cfg.output already has (or None)."""
    cluster, health, runtime, reliability = s.cluster, s.health, s.runtime, s.reliability
    info = ri.info
    prefix = f"Command: `{ri.argv_str}`; {ri.date}; load average {ri.load_before} at start"
    # The line under each section's heading: the run, then what of the machine matters to it.
    node_linux = (f"{prefix}; {ri.ver_line}; {info['nproc']} CPUs ({info['cpu']}), "
                  f"node {info['node']}, Linux {info['kernel']}")
    if s.logs:
        raw = {k: {"pm2": d.get("pm2") and d["pm2"]["raw"], "kelpie": d["kelpie"]["raw"],
                   "app_alone_s": d["alone"]["raw"]}
               for k, d in s.logs.items()}
        table = build_logs_table(cfg.log_lines, s.logs)
        notes = logs_notes(cfg.log_lines, s.logs)
        if s.logs_slow:
            raw["slow_log_file"] = s.logs_slow
            table += "\n\n" + slow_disk_table(s.logs_slow)
            notes += "\n\n" + slow_disk_notes(s.logs_slow)
        lsection = logs_section(table, notes, f"{node_linux}; {logs_repetitions(cfg)}", raw)
    else:
        lsection = existing_logs_section(cfg.output)  # kept as the file has it
    section = None
    if cluster:
        run_line = (f"{prefix}; {ri.ver_line}, wrk `{s.versions['wrk']}`; {info['nproc']} CPUs "
                    f"({info['cpu']}), node {info['node']}")
        section = cluster_section(
            build_cluster_table(cluster.get("pm2"), cluster["kelpie"]),
            cluster_notes(cfg, s.versions["wrk"]), run_line,
            {k: d and d["raw"] for k, d in cluster.items()})
    else:
        # Not measured this time: keep the cluster results the file already has.
        section = existing_cluster_section(cfg.output)
    if health:
        run_line = (f"{prefix}; {ri.ver_line}; {info['nproc']} CPUs ({info['cpu']}), "
                    f"{info['memory']}, Linux {info['kernel']}")
        hsection = health_section(
            build_health_table(health.get("pm2"), health["kelpie"]),
            health_notes(cfg, cfg.health_apps), run_line,
            {k: {part: d[part] for part in ("cpu", "memory")} for k, d in health.items()})
    else:
        hsection = existing_health_section(cfg.output)  # kept as the file has it
    if runtime:
        rsection = runtime_section(
            build_runtime_table(runtime["pm2"], runtime["kelpie"], runtime["sizes"]),
            runtime_notes(cfg), node_linux, {"runs": runtime["raw"], "sizes": runtime["sizes"]})
    else:
        rsection = existing_runtime_section(cfg.output)  # kept as the file has it
    if reliability:
        relsection = reliability_section(
            build_reliability_table(reliability["kelpie"], reliability.get("pm2")),
            reliability_notes(cfg), node_linux, reliability)
    else:
        relsection = existing_reliability_section(cfg.output)  # kept as the file has it
    return lsection, section, hsection, rsection, relsection


def merge_only_section(cfg: argparse.Namespace, lsection: str | None, section: str | None,
                       hsection: str | None, rsection: str | None, relsection: str | None
                       ) -> bool:
    """With --only logs, cluster, health, runtime or reliability and an existing cfg.output:
    that section replaced in the file, the rest kept (True). Else False: nothing written."""
    merges = {
        "logs": (merge_logs_section, lsection),
        "cluster": (merge_cluster_section, section),
        "health": (merge_health_section, hsection),
        "runtime": (merge_runtime_section, rsection),
        "reliability": (merge_reliability_section, relsection),
    }
    if cfg.only in merges and cfg.output.exists():
        # Only that scenario ran: replace its section, keep the rest of the report.
        merge, text = merges[cfg.only]
        cfg.output.write_text(merge(cfg.output.read_text(), text))
        log(f"updated the {cfg.only} section of {cfg.output}")
        return True
    return False


def raw_samples(s: Session) -> str:
    """The core scenario's raw samples, as JSON (the other scenarios' are in their sections)."""
    raw: dict = {}
    if s.kel_res is not None:
        raw["pm2"] = s.pm2_res and s.pm2_res["raw"]
        raw["kelpie"] = s.kel_res["raw"]
    return json.dumps(round_floats(raw), indent=1)


def full_report(cfg: argparse.Namespace, s: Session, ri: RunInfo, lsection: str | None,
                section: str | None, hsection: str | None, rsection: str | None,
                relsection: str | None) -> str:
    raw_txt = raw_samples(s)
    body = []
    if s.kel_res is not None:
        body.append(build_table(cfg.apps, s.pm2_res, s.kel_res) + """

MB = MiB of VmRSS of the daemon process alone (not its apps). Times are the wall time of the whole
CLI command as a user runs it (process start included). Ratio = PM2 / Kelpie (how many times
smaller or faster Kelpie is).""")
    if lsection:
        body.append(lsection)
    apps_line = f"- Apps: {cfg.apps}; {ri.reps}" if cfg.core else f"- {ri.reps}"
    if section:
        body.append(section)
    if hsection:
        body.append(hsection)
    if rsection:
        body.append(rsection)
    if relsection:
        body.append(relsection)
    return f"""# Kelpie vs PM2: benchmark results

Command: `{ri.argv_str}` (from the repository root)

- Date: {ri.date}
- Machine: {ri.mach_line}
- Versions: {ri.ver_line}
{apps_line}

{(chr(10) * 2).join(body)}

See `bench/README.md` for the method.

<details><summary>Raw samples</summary>

```json
{raw_txt}
```

</details>
"""
