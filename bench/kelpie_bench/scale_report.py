"""Scale scenario (`--only scale`): Kelpie with 300, 1 000 and 3 000 idle apps and PM2 with
1 000 in the same run (start, jlist, descriptors, memory, idle CPU, stop all), the cost per
app along the way, and Kelpie's crash-looping soak; the section of RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from .common import log
from .managers import clean_up_on_exit, Kelpie, Manager, Pm2, install_pm2
from .processes import loadavg
from .report import existing_section, machine_info, merge_section
from .scale import SOAK_APPS, SOAK_SKIP_RESTARTS, cost_of_apps, settled_anon_mb, soak
from .stats import round_floats

SCALE_KELPIE_APPS = (300, 1000, 3000)
SCALE_PM2_APPS = (1000,)
SCALE_SOAK_S = 180.0  # ~70 restarts a second: 12 000 or so
SCALE_BEGIN = "<!-- bench:scale:begin -->"
SCALE_END = "<!-- bench:scale:end -->"


def measure_manager(m: Manager, counts: tuple[int, ...], soak_s: float | None,
                    again_in_new_daemon: int | None = None) -> dict:
    """cost_of_apps() for each count in one daemon (each start into a daemon with none), then
    again_in_new_daemon apps in a new daemon (Kelpie: its memory without the earlier counts'
    heap, which a daemon keeps in part), then the soak (Kelpie); errors are recorded and the
    next part goes on."""
    out: dict = {"apps": {}}
    m.start_daemon("scale")
    fresh = settled_anon_mb(m.daemon_pid())
    for n in counts:
        log(f"{m.label}: scale: {n} idle apps")
        try:
            out["apps"][n] = cost_of_apps(m, n, anon_base=fresh)
        except Exception as e:  # noqa: BLE001 - recorded in the report
            out["apps"][n] = {"error": f"{type(e).__name__}: {e}"}
            log(f"{m.label}: scale: {n} apps failed: {e}")
    if again_in_new_daemon:
        log(f"{m.label}: scale: {again_in_new_daemon} idle apps in a new daemon")
        try:
            m.run("kill", timeout=120)
            m.start_daemon("scale, new daemon")
            fresh = settled_anon_mb(m.daemon_pid())
            out["new_daemon"] = {again_in_new_daemon: cost_of_apps(m, again_in_new_daemon,
                                                                   anon_base=fresh)}
        except Exception as e:  # noqa: BLE001 - recorded in the report
            out["new_daemon"] = {again_in_new_daemon: {"error": f"{type(e).__name__}: {e}"}}
    if soak_s:
        log(f"{m.label}: soak: {SOAK_APPS} crash-looping apps for {soak_s:g} s")
        out["soak"] = soak(m, soak_s)
    return out


def cell(d: dict | None, key: str, fmt: str) -> str:
    v = (d or {}).get(key)
    return "-" if v is None else format(v, fmt)


def build_scale_table(kelpie: dict, pm2: dict | None) -> str:
    rows = ["| Manager, apps | Start | CPU per app (start) | `jlist` | Descriptors (per app) "
            "| Keeper's descriptors | RssAnon (per app) | Idle CPU | `stop all` |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    runs = [("Kelpie", kelpie.get("apps")), ("Kelpie, new daemon", kelpie.get("new_daemon")),
            ("PM2 7", (pm2 or {}).get("apps"))]
    for label, counts in runs:
        for n, d in sorted((counts or {}).items(), key=lambda kv: int(kv[0])):
            if "error" in d:
                rows.append(f"| {label}, {n} | {d['error']} | | | | | | | |")
                continue
            rows.append(
                f"| {label}, {n} | {cell(d, 'start_s', '.2f')} s "
                f"| {cell(d, 'start_cpu_ms_per_app', '.2f')} ms "
                f"| {cell(d, 'jlist_ms', '.0f')} ms "
                f"| {cell(d, 'fds', 'd')} ({cell(d, 'fds_per_app', '.1f')}) "
                f"| {cell(d, 'keeper_fds', 'd')} "
                f"| {cell(d, 'anon_mb', '.1f')} MB ({cell(d, 'anon_kb_per_app', '.1f')} KB) "
                f"| {cell(d, 'idle_cpu_pct', '.1f')} % | {cell(d, 'stop_all_s', '.2f')} s |")
    s = kelpie.get("soak") or {}
    soak_line = (
        f"Soak (Kelpie): {SOAK_APPS} apps exiting every 0.3-0.6 s and restarted at once, "
        f"{cell(s, 'seconds', '.0f')} s, {cell(s, 'restarts', 'd')} restarts; from the "
        f"{SOAK_SKIP_RESTARTS}th on ({cell(s, 'counted', 'd')} restarts): "
        f"{cell(s, 'cpu_ms_per_restart', '.2f')} ms of daemon CPU per restart, RssAnon "
        f"{cell(s, 'anon_mb_at_warm', '.2f')} MB then {cell(s, 'anon_mb_at_end', '.2f')} MB "
        f"({cell(s, 'anon_kb_per_restart', '.3f')} KB per restart).")
    return "\n".join(rows) + "\n\n" + soak_line


SCALE_NOTES = (
    "Idle apps are `sleep 100000` (no interpreter) from one `.json` file, started into a "
    "daemon that runs none, one count after the other in the same daemon (`stop all` and "
    "`delete all` between). Start: the wall time of `start` plus the wait until every app is "
    "online (`jlist` every 0.5 s); CPU per app: the daemon's utime + stime over that time, "
    "divided by the apps (issue 34's linearity: within 1.3x from 300 to 3 000). `jlist`: the "
    "best of 3. Descriptors: the daemon's open descriptors once all are online (per app: "
    "their growth over the apps; Kelpie holds 3 per app plus files kept open up to a bound, "
    "see docs/architecture.md); the keeper's (Kelpie's process holding the apps' pipes while "
    "no daemon runs). RssAnon: the daemon's own memory (heap, stacks), read once it stopped "
    "moving (the same twice 1 s apart): what it keeps, not the start's transient buffers, "
    "which both managers give back within seconds (per app: its growth over the fresh "
    "daemon's, the counts running one after the other in it: glibc's heap keeps pages that "
    "still hold a few long-lived allocations, so a daemon that started and deleted apps holds "
    "more than their count needs; the new-daemon row is the largest count alone). Idle "
    "CPU: the daemon's over 30 s once all are online (Kelpie reads every idle app's files "
    "each 30th second, the other seconds one file for all). PM2 runs 1 000 only: it needs minutes per thousand apps "
    "to stop them.")


def scale_section(table: str, run_line: str, raw: dict) -> str:
    return f"""{SCALE_BEGIN}
## Scale

{run_line}

{table}

{SCALE_NOTES}

<details><summary>Raw samples (scale)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{SCALE_END}"""


def merge_scale_section(report: str, section: str | None) -> str:
    return merge_section(report, SCALE_BEGIN, SCALE_END, section)


def existing_scale_section(path: Path | None) -> str | None:
    return existing_section(path, SCALE_BEGIN, SCALE_END)


def scale_main(cfg: argparse.Namespace, argv_str: str) -> int:
    """--only scale: measure PM2 (unless --kelpie-only) then Kelpie, print the table, and with
    --output put the section in that report (the rest kept)."""
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-scale-"))
    managers: list[Manager] = []
    cleanup = clean_up_on_exit(managers)
    pm2 = None
    try:
        if not cfg.kelpie_only:
            pm2_bin = install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix else tmp / "pm2")
            managers.append(Pm2(tmp / "pm2-run", pm2_bin))
            pm2 = measure_manager(managers[-1], SCALE_PM2_APPS, None)
            managers[-1].cleanup()
        managers.append(Kelpie(tmp / "kelpie"))
        kelpie = measure_manager(managers[-1], SCALE_KELPIE_APPS, SCALE_SOAK_S,
                                 again_in_new_daemon=SCALE_KELPIE_APPS[-1])
    finally:
        cleanup()
    table = build_scale_table(kelpie, pm2)
    print(table)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                    f"Linux {info['kernel']}")
        section = scale_section(table, run_line, {"kelpie": kelpie, "pm2": pm2})
        text = cfg.output.read_text() if cfg.output.exists() else ""
        cfg.output.write_text(merge_scale_section(text, section))
        log(f"updated the scale section of {cfg.output}")
    return 0
