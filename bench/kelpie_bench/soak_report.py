"""Soak scenario (`--only soak`): crash-looping apps of each kind (quiet ones exiting 0,
printing ones exiting 1, as a shell script and as a Node script) restarted by PM2 and by
Kelpie in the same run: the daemon's CPU per restart and its RssAnon along the way (at each
doubling of the restarts); the soak section of RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from .common import log
from .managers import clean_up_on_exit, Kelpie, Manager, Pm2, install_pm2
from .processes import loadavg
from .report import machine_info, merge_section
from .scale import SOAK_APPS, SOAK_MILESTONES, SOAK_SH, SOAK_SKIP_RESTARTS, soak
from .stats import round_floats

SOAK_KELPIE_S = {"quiet": 150.0, "printing": 150.0, "sh": 180.0, "node": 150.0}
SOAK_PM2_S = {"printing": 60.0, "sh": 60.0, "node": 60.0}  # PM2's figures settle sooner
SOAK_BEGIN = "<!-- bench:soak:begin -->"
SOAK_END = "<!-- bench:soak:end -->"
KIND_LABELS = {
    "quiet": "fake-app, exits 0",
    "printing": "fake-app, prints to stdout and stderr, exits 1",
    "sh": "`sh -c '" + SOAK_SH.format(life="0.3..0.6") + "'`",
    "node": "Node: `console.log`, `console.error`, `process.exit(1)` after 0.3..0.6 s",
}


def soak_manager(m: Manager, seconds: dict[str, float]) -> dict:
    """Each kind's soak in one daemon, one after the other; an error is recorded and the next
    kind goes on."""
    out: dict = {}
    m.start_daemon("soak")
    for kind, s in seconds.items():
        log(f"{m.label}: soak: {SOAK_APPS} apps ({kind}) for {s:g} s")
        try:
            out[kind] = soak(m, s, kind=kind)
        except Exception as e:  # noqa: BLE001 - recorded in the report
            out[kind] = {"error": f"{type(e).__name__}: {e}"}
            log(f"{m.label}: soak ({kind}) failed: {e}")
    return out


def cell(d: dict | None, key: str, fmt: str) -> str:
    v = (d or {}).get(key)
    return "-" if v is None else format(v, fmt)


def anon_path(d: dict) -> str:
    at = {int(k): v for k, v in (d.get("anon_mb_at") or {}).items()}
    return " / ".join("-" if at.get(n) is None else f"{at[n]:.1f}" for n in SOAK_MILESTONES)


def build_soak_table(kelpie: dict, pm2: dict | None) -> str:
    marks = " / ".join(f"{n:,}".replace(",", " ") for n in SOAK_MILESTONES)
    rows = [f"| Manager | Apps | Restarts (s) | CPU per restart | RssAnon from the "
            f"{SOAK_SKIP_RESTARTS}th restart to the end (per restart) | RssAnon at {marks} "
            f"restarts (MB) |",
            "|---|---|---:|---:|---:|---|"]
    for label, runs in (("Kelpie", kelpie), ("PM2 7", pm2 or {})):
        for kind, d in runs.items():
            if "error" in d:
                rows.append(f"| {label} | {KIND_LABELS[kind]} | {d['error']} | | | |")
                continue
            rows.append(
                f"| {label} | {KIND_LABELS[kind]} | {cell(d, 'restarts', 'd')} "
                f"({cell(d, 'seconds', '.0f')} s) | {cell(d, 'cpu_ms_per_restart', '.2f')} ms "
                f"| {cell(d, 'anon_mb_at_warm', '.2f')} → {cell(d, 'anon_mb_at_end', '.2f')} MB "
                f"({cell(d, 'anon_kb_per_restart', '.3f')} KB) | {anon_path(d)} |")
    return "\n".join(rows)


SOAK_NOTES = (
    f"{SOAK_APPS} apps, each living 0.3 s + 10 ms x its index and restarted at once "
    "(`restart_delay: 0`), one kind after the other in one daemon (`delete all` between). CPU "
    "per restart: the daemon's utime + stime from /proc/<pid>/stat from the "
    f"{SOAK_SKIP_RESTARTS}th restart (counted in `jlist`'s `restart_time`, read every 2 s) to "
    "the end, divided by the restarts in between; for PM2, its God daemon. RssAnon: the "
    "daemon's own memory at the first look past each count of restarts. A restart of a Node "
    "app costs the apps far more CPU than the daemon (Node's start-up), so fewer are done in "
    "the same time on two cores. PM2 is run for less time: its figures settle within a "
    "minute.")


def soak_section(table: str, run_line: str, raw: dict) -> str:
    return f"""{SOAK_BEGIN}
## Soak: crash-looping apps

{run_line}

{table}

{SOAK_NOTES}

<details><summary>Raw samples (soak)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{SOAK_END}"""


def soak_main(cfg: argparse.Namespace, argv_str: str) -> int:
    """--only soak: PM2 (unless --kelpie-only) then Kelpie, print the table, and with --output
    put the section in that report (the rest kept)."""
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-soak-"))
    managers: list[Manager] = []
    cleanup = clean_up_on_exit(managers)
    pm2 = None
    try:
        if not cfg.kelpie_only:
            pm2_bin = install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix else tmp / "pm2")
            managers.append(Pm2(tmp / "pm2-run", pm2_bin))
            pm2 = soak_manager(managers[-1], SOAK_PM2_S)
            managers[-1].cleanup()
        managers.append(Kelpie(tmp / "kelpie"))
        kelpie = soak_manager(managers[-1], SOAK_KELPIE_S)
    finally:
        cleanup()
    table = build_soak_table(kelpie, pm2)
    print(table)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                    f"Linux {info['kernel']}")
        section = soak_section(table, run_line, {"kelpie": kelpie, "pm2": pm2})
        text = cfg.output.read_text() if cfg.output.exists() else ""
        cfg.output.write_text(merge_section(text, SOAK_BEGIN, SOAK_END, section))
        log(f"updated the soak section of {cfg.output}")
    return 0
