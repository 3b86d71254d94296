"""The logs scenario's table, notes and section of the report."""

from __future__ import annotations

import json
from pathlib import Path

from .logfiles import LOG_LINE_LEN
from .logs import IDLE_WINDOW_S
from .logs_apps import LOG_VARIANTS
from .report import existing_section, merge_section
from .stats import fmt, fmt_ratio, round_floats

LOGS_BEGIN = "<!-- bench:logs:begin -->"
LOGS_END = "<!-- bench:logs:end -->"


def build_logs_table(n_lines: int, logs: dict[str, dict]) -> str:
    """logs: variant key -> {"pm2": result or None, "kelpie": result, "alone": result or None},
    one block of rows per variant, in LOG_VARIANTS order."""

    def verdict(ok: bool | None) -> str:
        return "" if ok is None else (" (met)" if ok else " (missed)")

    def incomplete(d: dict) -> str:
        return f" ({d['incomplete']} of {d['rounds']} rounds incomplete)" if d.get("incomplete") \
            else ""

    def lost(d: dict) -> str:
        return "n/a" if d.get("lost") is None else f"{d['lost']:.0f} (worst {d['lost_max']})"

    def odd(d: dict) -> str:
        return "n/a" if not d else f"{d['duplicates']} / {d['out_of_order']} / {d['invalid']}"

    def cpu(d: dict) -> str:
        if d.get("daemon_cpu_s") is None:
            return "n/a"
        s = f"{d['daemon_cpu_s']:.2f} s"
        if d.get("daemon_cpu_after_s") is not None:
            s += f" ({d['daemon_cpu_after_s']:.2f} s after)"
        if d.get("not_idle"):
            s += f" (not idle in {d['not_idle']} round(s))"
        return s

    lines = ["| Metric | PM2 7 | Kelpie | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    for v in LOG_VARIANTS:
        if v.key not in logs:
            continue
        p = logs[v.key].get("pm2") or {}
        kel = logs[v.key]["kelpie"]
        alone = logs[v.key].get("alone") or {}
        h = f"**{v.title}**:"
        pt, kt = p.get("time_s"), kel.get("time_s")
        ok = None if pt is None or not kt else pt / kt >= 3
        lines.append(f"| {h} time until all {n_lines:,} lines are on disk | {fmt(pt, 's', 2)}"
                     f"{incomplete(p)} | {fmt(kt, 's', 2)}{incomplete(kel)} | "
                     f"{fmt_ratio(pt, kt)} | PM2/Kelpie >= 3x{verdict(ok)} |")
        pl, kl = p.get("lines_per_s"), kel.get("lines_per_s")
        pls = "n/a" if pl is None else f"{pl / 1e3:,.0f}k lines/s"
        kls = "n/a" if kl is None else f"{kl / 1e3:,.0f}k lines/s"
        ratio = "-" if kl is None or not pl else f"{kl / pl:.1f}x"
        lines.append(f"| {h} throughput | {pls} | {kls} | {ratio} (Kelpie / PM2) | "
                     f"Kelpie >= 3x PM2's{verdict(ok)} |")
        at = alone.get("time_s")
        best = "-" if pt is None or not at else f"~{pt / at:.1f}x best possible (PM2 / app alone)"
        ats = fmt(at, "s", 2) + ("" if not at else f", {n_lines / at / 1e3:,.0f}k lines/s")
        lines.append(f"| {h} app alone, no manager (`node app.js > file`) | {ats} | {ats} | "
                     f"{best} | - (the floor for both) |")
        pc, kc = p.get("daemon_cpu_s"), kel.get("daemon_cpu_s")
        ok = None if pc is None or kc is None else kc <= 0.5 * pc
        lines.append(f"| {h} daemon CPU, until idle {IDLE_WINDOW_S:.0f} s after the last line "
                     f"(of it after the last line) | {cpu(p)} | {cpu(kel)} | "
                     f"{fmt_ratio(pc, kc)} | Kelpie <= 0.5x PM2's{verdict(ok)} |")
        ok = None if kel.get("lost_max") is None else kel["lost_max"] == 0
        lines.append(f"| {h} lines lost, median (worst round) | {lost(p)} | {lost(kel)} | - | "
                     f"Kelpie 0{verdict(ok)} |")
        ok = None if not kel else kel["duplicates"] + kel["out_of_order"] + kel["invalid"] == 0
        lines.append(f"| {h} duplicated / out-of-order / malformed lines (worst round) | "
                     f"{odd(p)} | {odd(kel)} | - | Kelpie 0 / 0 / 0{verdict(ok)} |")
        pr, kr = p.get("rotated"), kel.get("rotated")
        prs = "n/a" if pr is None else f"{pr:.0f} (PM2 does not rotate by default)"
        krs = "n/a" if kr is None else f"{kr:.0f}"
        ok = None if kr is None else kr > 0
        lines.append(f"| {h} rotated files at the end | {prs} | {krs} | - | "
                     f"Kelpie with rotation on (its default, 10 MB){verdict(ok)} |")
    return "\n".join(lines)


def logs_notes(n_lines: int, logs: dict[str, dict]) -> str:
    mb = n_lines * (LOG_LINE_LEN + 1) / 1e6
    notes = [f"Logs: a Node.js app prints {n_lines:,} lines of {LOG_LINE_LEN} bytes + newline "
             f"({mb:.1f} MB) as fast as it can and exits, in two variants: "
             "one `console.log(line)` per line (the main one: what Node.js apps do, one "
             "`write()` per line) and 1000 lines per `process.stdout.write()`. Both managers run "
             "it with `node` and `--no-autorestart`, and their default log settings: PM2 has no "
             "log rotation (pm2-logrotate is a separate module, not installed), Kelpie's "
             "rotation is on (10 MB). Time runs from the `start` command until every line is in "
             "the log files (live and rotated). Daemon CPU is utime+stime of the daemon process "
             "(all its threads, not its children: the app's CPU is not in it) from just before "
             "`start` until the daemon has been idle (at most 10 ms of CPU) for "
             f"{IDLE_WINDOW_S:.0f} s after the last line landed; in brackets, the part after the "
             "last line landed (e.g. compressing the last rotated file)."]
    bounds = []
    for v in LOG_VARIANTS:
        d = logs.get(v.key) or {}
        at = (d.get("alone") or {}).get("time_s")
        pt = (d.get("pm2") or {}).get("time_s")
        if at and pt:
            bounds.append(f"{v.title}: PM2 {pt:.2f} s / app alone {at:.2f} s = "
                          f"{pt / at:.1f}x")
    notes.append("Throughput is bounded by the app's own speed: no manager can get the lines to "
                 "disk faster than the app prints them, which the \"app alone\" row measures "
                 "(the same app with no manager, stdout to a file, median of the same number of "
                 "runs). So the best ratio any manager can reach is PM2's time / the app-alone "
                 "time" + (f" ({'; '.join(bounds)})" if bounds else "") + "; the 3x target is "
                 "out of reach where that is clearly below 3. The bound is approximate: under a "
                 "manager the app writes to a pipe, not a file (a pipe write can be cheaper, so "
                 "a manager can come in a little under the app-alone time), and shares the 2 "
                 "cores with the daemon.")
    for v in LOG_VARIANTS:
        kel = (logs.get(v.key) or {}).get("kelpie")
        if kel and kel.get("rotated") == 0 and mb > 10:
            notes.append(f"Kelpie left no rotated file ({v.title}) although the app wrote "
                         f"{mb:.0f} MB: this Kelpie build did not rotate its log files.")
    return "\n\n".join(notes)


def logs_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The logs scenario's part of RESULTS.md, self-contained (its own run line and raw
    samples) so that `--only logs` replaces it, and `--only core` keeps it, in a report that
    has the other sections."""
    return f"""{LOGS_BEGIN}
## Logs

{run_line}

{table}

{notes}

<details><summary>Raw samples (logs)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{LOGS_END}"""


def merge_logs_section(report: str, section: str | None) -> str:
    return merge_section(report, LOGS_BEGIN, LOGS_END, section)


def existing_logs_section(path: Path | None) -> str | None:
    return existing_section(path, LOGS_BEGIN, LOGS_END)
