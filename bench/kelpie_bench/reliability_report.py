"""The reliability scenario's table, notes and section of RESULTS.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .reliability_apps import (
    REL_BURST_LINES, REL_CHATTY, REL_LOAD_THREADS, REL_OTHER_UID, REL_SECRET, REL_STEP_CAP_S,
)
from .report import existing_section, merge_section
from .stats import round_floats


def _rel_cell(part: dict | None, fn) -> str:
    """A table cell from one part's results: fn(part), or why there is none."""
    if part is None:
        return "not run"
    if "error" in part:
        return "error: " + str(part["error"]).replace("|", "\\|").replace("\n", " ")[:160]
    try:
        return str(fn(part)).replace("|", "\\|")
    except (KeyError, TypeError, ValueError) as e:
        return f"n/a ({type(e).__name__}: {e})"


def _yes(b: bool | None) -> str:
    return "n/a" if b is None else ("**yes**" if b else "no")


def _ms(s: float | None) -> str:
    return "n/a" if s is None else (f"{s * 1e3:.0f} ms" if s < 10 else f"{s:.1f} s")


def _burst(k: dict) -> str:
    if k["burst"] == "completed":
        return f"completed ({_ms(k['burst_done_s'])} after the kill)"
    return {"blocked": "**blocked** (app alive, its writes never completed within 3 s)",
            "died": "**app died** (no reader on its stdout pipe: EPIPE)",
            "write failed": f"**writes failed** ({k['burst_failed_writes']} of 256, EPIPE)"
                            + ("" if k.get("burst_alive") else ", then the app died")}[k["burst"]]


def _after_next(k: dict) -> str:
    return (f"{k['listed']} of {k['apps']} listed: {k['adopted']} adopted (same pid), "
            f"{k['restarted']} restarted, {k['lost']} lost")


def _burst_log(k: dict) -> str:
    b = k["burst_log"]
    return (f"{b['distinct']:,} of {REL_BURST_LINES:,} (lost {b['lost']:,}, "
            f"duplicated {b['duplicates']}, malformed {b['malformed']})")


def _cluster(c: dict) -> str:
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(c["by_kind"].items()))
    s = f"{c['failed']:,} of {c['requests']:,}" + (f" ({kinds})" if kinds else "")
    if c["failed"]:
        s += (f"; failing from {c['first_fail_after_kill_s']:.2f} s to "
              f"{c['last_fail_after_kill_s']:.2f} s after the kill")
    return s


def _cluster_after(c: dict) -> str:
    return (f"port serving at the end: {'yes' if c['serving_after'] else '**no**'}; instances "
            f"listed by the new daemon: {c['instances_listed_after']} "
            f"({len(c['same_pids_after'])} with the same pid); old instances still running: "
            f"{c['instances_alive_after']} of {len(c['instances_before'])}")


def _modes(s: dict) -> str:
    return f"home `{s['home_mode']}`, " + ", ".join(f"{k} `{v}`" for k, v in s["sockets"].items())


def _other_cli(s: dict) -> str:
    c = s.get("other_cli")
    if c is None:
        return s.get("other_uid", "n/a")
    if c["listed_apps"]:
        return f"**listed the apps** ({', '.join(map(str, c['listed_apps']))}), exit {c['exit']}"
    return f"refused, exit {c['exit']}: \"{c['message']}\""


def _resurrect(d: dict) -> str:
    return (f"exit {d['resurrect_exit']}, {d['back_online']} of {d['apps']} apps back online; "
            f"\"{d['resurrect_message']}\"")


def _many(key: str):
    def f(p: dict) -> str:
        v = p[key]
        timeouts = sum(1 for x in p["raw"] if x.get(f"{key}_timeout"))
        s = _ms(v) if v is not None else "n/a"
        return s + (f" ({timeouts} round(s) over {REL_STEP_CAP_S:.0f} s)" if timeouts else "")
    return f


def build_reliability_table(kel: dict, pm2: dict | None) -> str:
    """fault | Kelpie | PM2; kel, pm2 = bench_reliability() (pm2 None with --kelpie-only)."""
    p = pm2 or {}
    n = (kel.get("many") or {}).get("apps") or (p.get("many") or {}).get("apps") or "N"
    rows = [
        ("kill", f"`kill -9` of the daemon ({REL_CHATTY} apps printing a line every 10 ms + 1 "
                 "idle app): apps still running 3 s later",
         lambda k: f"{k['alive_after']} of {k['apps']}"),
        ("kill", "… a 4 MiB burst printed right after the kill",
         _burst),
        ("kill", "… the next command (`jlist`, starts a new daemon)", _after_next),
        ("kill", "… that command's wall time", lambda k: _ms(k["next_s"])),
        ("kill", "… the burst's lines in its log file", _burst_log),
        ("kill", "… lines of the 10 ms apps missing in their logs (gaps)",
         lambda k: f"{k['ticks_missing']:,} (of {k['ticks_logged']:,} logged)"),
        ("cluster", "2-instance HTTP app, a new connection per request (4 loops, 5 s): "
                    "`kill -9` of the daemon 1 s in, `jlist` 1 s later: failed requests",
         _cluster),
        ("cluster", "… after that", _cluster_after),
        ("socket", "Control socket and home modes (home created by the manager, umask 022)",
         _modes),
        ("socket", f"Another uid ({REL_OTHER_UID}): `connect()` to the control socket",
         lambda s: s.get("other_connect", s.get("other_uid", "n/a"))),
        ("socket", f"Another uid ({REL_OTHER_UID}): `jlist` with the same home", _other_cli),
        ("secrets", f"App with env `API_TOKEN={REL_SECRET}`: value printed by `jlist`",
         lambda d: _yes(d["jlist_shows"]) + ("" if d.get("jlist_show_secrets_shows") is None
                                             else " (masked; `--show-secrets` prints it)"
                                             if d["jlist_show_secrets_shows"] else "")),
        ("secrets", "… value printed by `describe`", lambda d: _yes(d["describe_shows"])),
        ("secrets", "… value printed by `env <id>`",
         lambda d: _yes(d["env_shows"]) if d["env_exit"] == 0 or d["env_shows"]
         else f"no such command (exit {d['env_exit']})"),
        ("secrets", "`save`: dump file mode (backup's mode); value in the dump",
         lambda d: f"`{d['dump']}` `{d['dump_mode']}` (`.bak` `{d['bak_mode']}`); "
                   f"{'yes' if d['dump_has_secret'] else 'no'}"),
        ("secrets", "`resurrect` with garbage in the dump (its `.bak` from an earlier `save`), "
                    "3 apps saved", _resurrect),
        ("stubborn", "`stop` of an app ignoring SIGINT, SIGTERM, SIGHUP: time (median)",
         lambda s: _ms(s["stop_s"])),
        ("stubborn", "… process gone when `stop` returns",
         lambda s: f"{s['gone']} of {s['rounds']} rounds"),
        ("many", f"{n} apps (fake-app, one ecosystem.json): `start`", _many("start_s")),
        ("many", f"{n} apps: `list`", _many("list_s")),
        ("many", f"{n} apps: `jlist`", _many("jlist_s")),
        ("many", f"{n} apps: `restart all`", _many("restart_s")),
        ("many", f"{n} apps: `delete all`", _many("delete_s")),
    ]
    lines = ["| Fault | Kelpie | PM2 7 |", "|---|---|---|"]
    for part, title, fn in rows:
        pm2_cell = "not run (`--kelpie-only`)" if pm2 is None else _rel_cell(p.get(part), fn)
        lines.append(f"| {title} | {_rel_cell(kel.get(part), fn)} | {pm2_cell} |")
    return "\n".join(lines)


def reliability_notes(cfg: argparse.Namespace) -> str:
    return (
        f"Each part runs with a fresh daemon and home per manager, PM2 first, then Kelpie. "
        f"The apps are the same Node.js scripts for both (`interpreter: node`): {REL_CHATTY} print "
        f"`tick <pid> <n>` every 10 ms; the burst app waits for a file the bench creates right "
        f"after the `kill -9`, then prints {REL_BURST_LINES:,} lines of 64 bytes (4 MiB) in "
        f"writes of 256 lines and, once every write completed, writes a done file (\"blocked\": "
        f"alive without it 3 s after the kill; \"died\": gone). Adopted = listed by the new "
        f"daemon with the pid it had before the kill, still running. The cluster part's load "
        f"is {REL_LOAD_THREADS} Python loops of `GET /` with a new connection each (1 s "
        f"timeout, 10 ms pause after a failure, so the count of failures depends on that "
        f"pace: the times say how long the port failed). The other-uid part runs as uid "
        f"{REL_OTHER_UID} (nobody) with the temp dir made 0711 (traversable) for it, so only the "
        f"manager's own modes decide. The `stop` rounds, and the {cfg.apps}-app rounds, are "
        f"{cfg.rounds} per manager (medians); a step of the latter gives up after "
        f"{REL_STEP_CAP_S:.0f} s. PM2's `kill_timeout` and Kelpie's are both 1600 ms by default.")


REL_BEGIN = "<!-- bench:reliability:begin -->"
REL_END = "<!-- bench:reliability:end -->"


def reliability_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The reliability scenario's part of RESULTS.md, self-contained like the cluster section,
    so that `--only reliability` can replace it in a report that has the others."""
    return f"""{REL_BEGIN}
## Reliability

{run_line}

{table}

{notes}

<details><summary>Raw samples (reliability)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{REL_END}"""


def merge_reliability_section(report: str, section: str | None) -> str:
    return merge_section(report, REL_BEGIN, REL_END, section)


def existing_reliability_section(path: Path | None) -> str | None:
    return existing_section(path, REL_BEGIN, REL_END)
