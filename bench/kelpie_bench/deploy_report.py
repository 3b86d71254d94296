"""The deploy scenario's summary, tables, notes and section of RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from .common import log
from .deploy_lab import (
    DEPLOY_USERS, INSTANCES, KELPIE_PATH, LOAD_LEAD_S, LOAD_TAIL_S, PM2_PATH, WRK_CONNECTIONS,
)
from .report import existing_section, machine_info, merge_section
from .stats import median, round_floats

DEPLOY_BEGIN = "<!-- bench:deploy:begin -->"
DEPLOY_END = "<!-- bench:deploy:end -->"
LABELS = {"pm2": "PM2", "kelpie": "Kelpie"}


def summarize_deploy(res: dict) -> dict:
    """One manager's measure_manager() result -> the figures of its row: setup and first deploy
    wall times, the loaded rounds' median wall time, the failed and total requests per host
    over the rounds, and whether every round and the first deploy exited 0."""
    rounds = res.get("rounds") or []
    users = sorted({u for r in rounds for u in (r.get("load") or {})})
    failed = {u: sum((r.get("load") or {}).get(u, {}).get("failed", 0) for r in rounds)
              for u in users}
    requests = {u: sum((r.get("load") or {}).get(u, {}).get("requests", 0) for r in rounds)
                for u in users}
    kinds = {k: sum((r.get("load") or {}).get(u, {}).get(k, 0) for r in rounds for u in users)
             for k in ("connect", "read", "write", "timeout", "non2xx")}
    walls = [r["wall_s"] for r in rounds if r.get("rc") == 0]
    return {
        "setup_s": (res.get("setup") or {}).get("wall_s"),
        "first_s": (res.get("first") or {}).get("wall_s"),
        "deploy_s": median(walls),
        "deploy_s_all": [r.get("wall_s") for r in rounds],
        "rounds_failed_rc": [r.get("rc") for r in rounds if r.get("rc") != 0],
        # Rounds after which a host did not answer the version deployed (2 s after the end).
        "rounds_not_switched": sum(1 for r in rounds if r.get("rc") == 0 and any(
            v != r.get("ref") for v in (r.get("served_after") or {}).values())),
        "failed": failed,
        "failed_kinds": {k: v for k, v in kinds.items() if v},
        "requests": requests,
        "failed_total": sum(failed.values()),
        "requests_total": sum(requests.values()),
    }


def secs(v: float | None, nd: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{nd}f} s"


def count(n: int) -> str:
    """1234567 -> 1.23M, 12345 -> 12.3k."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def failed_cell(s: dict) -> str:
    per = " + ".join(str(s["failed"][u]) for u in sorted(s["failed"]))
    kinds = ", ".join(f"{k} {v}" for k, v in (s.get("failed_kinds") or {}).items())
    return f"{s['failed_total']} ({per}{': ' + kinds if kinds else ''}) of " \
        f"{count(s['requests_total'])}"


def host_after_failure(user: str, before: dict, after: dict, served: str) -> str:
    """What one host has after a deploy whose post-deploy failed."""
    new_failed = (after.get("failed_releases") or 0) - (before.get("failed_releases") or 0)
    same = (after.get("current"), after.get("last_deploy")) == \
        (before.get("current"), before.get("last_deploy"))
    if same:
        s = f"{user}: unchanged (current {after.get('current')}, serving {served})"
        return s + (", the new release marked FAILED" if new_failed > 0 else "")
    return (f"{user}: {after.get('current')} checked out in current (was "
            f"{before.get('current')}), `.deploys` ends {after.get('last_deploy')}, "
            f"serving {served}")


def failure_cell(fail: dict | None) -> str:
    """The "what a failed post-deploy leaves" cell: the exit code, each host's state and the
    failed requests meanwhile."""
    if not fail:
        return "n/a"
    hosts = "; ".join(host_after_failure(u, fail["before"].get(u, {}), fail["after"].get(u, {}),
                                         fail.get("served_after", {}).get(u, "?"))
                      for u in sorted(fail["after"]))
    lost = sum(w.get("failed", 0) for w in (fail.get("load") or {}).values())
    return f"exit {fail.get('rc')} after {secs(fail.get('wall_s'))}; {hosts}; {lost} failed requests"


def build_deploy_table(results: dict) -> str:
    rows = ["| Manager | Setup of 2 hosts | First deploy (v1: starts the apps) | Deploy of 2 hosts "
            "under load, median | Failed requests during the deploys (kbdep1 + kbdep2) | What a "
            "failed post-deploy leaves |",
            "|---|---:|---:|---:|---|---|"]
    for key in ("pm2", "kelpie"):
        res = results.get(key)
        if res is None:
            continue
        s = res.get("summary") or summarize_deploy(res)
        if "error" in res and s["deploy_s"] is None:
            rows.append(f"| {LABELS[key]} | {secs(s['setup_s'])} | {secs(s['first_s'])} | "
                        f"{res['error']} | | |")
            continue
        walls = ", ".join(secs(w) for w in s["deploy_s_all"] if w is not None)
        bad = f"; {len(s['rounds_failed_rc'])} round(s) failed" if s["rounds_failed_rc"] else ""
        if s.get("rounds_not_switched"):
            bad += f"; {s['rounds_not_switched']} round(s) left a host on the old version"
        rows.append(f"| {LABELS[key]} | {secs(s['setup_s'])} | {secs(s['first_s'])} | "
                    f"{secs(s['deploy_s'])} ({walls}){bad} | {failed_cell(s)} | "
                    f"{failure_cell(res.get('fail'))} |")
    return "\n".join(rows)


def build_rounds_table(results: dict) -> str:
    rows = ["| Manager | Round | Ref | Exit | Wall | SSH logins, kbdep1 / kbdep2 | Failed requests, "
            "kbdep1 / kbdep2 (wrk, keep-alive) | Failed new connections, kbdep1 / kbdep2 (one "
            "per host every 0.1 s) | New version first answered, kbdep1 / kbdep2 (after the "
            "start) |",
            "|---|---:|---|---:|---:|---|---|---|---|"]
    for key in ("pm2", "kelpie"):
        rounds = (results.get(key) or {}).get("rounds") or []
        fail = (results.get(key) or {}).get("fail")
        runs = [(str(i + 1), r) for i, r in enumerate(rounds)]
        if fail:
            runs.append(("post-deploy `exit 3`", fail))
        for label, r in runs:
            load = r.get("load") or {}
            first = (r.get("watch") or {}).get("first_new_s") or {}
            failed = " / ".join(str(load.get(u, {}).get("failed", "?")) for u in DEPLOY_USERS)
            seen = " / ".join("never" if first.get(u) is None else secs(first[u])
                              for u in DEPLOY_USERS)
            logins = " / ".join(str((r.get("ssh_logins") or {}).get(u, "?"))
                                for u in DEPLOY_USERS)
            watch = r.get("watch") or {}
            polls = " / ".join(str((watch.get("new_connection_failed") or {}).get(u, "?"))
                               for u in DEPLOY_USERS)
            kinds = ", ".join(f"{k} {v}" for k, v in
                              sorted((watch.get("new_connection_failures") or {}).items()))
            if kinds:
                polls += f" ({kinds})"
            rows.append(f"| {LABELS[key]} | {label} | {r.get('ref')} | {r.get('rc')} | "
                        f"{secs(r.get('wall_s'))} | {logins} | {failed} | {polls} | {seen} |")
    return "\n".join(rows)


def deploy_notes(results: dict, versions: dict) -> str:
    n = max((len(r.get("rounds") or []) for r in results.values()), default=0)
    refs = ", ".join(f"`ref {'v2' if i % 2 == 0 else 'v1'}`" for i in range(n))
    rounds_line = f"{n} round{'s' if n != 1 else ''} ({refs})"
    return f"""Two hosts, both on this machine: users `{DEPLOY_USERS[0]}` and `{DEPLOY_USERS[1]}`, each reached
through an sshd of its own on 127.0.0.1 (key authentication, a port each), with `kelpie` and
`pm2` in `~/bin`. The app (a bare git repository on this machine, tags v1 and v2) is a Node HTTP
server run with {INSTANCES} instances in cluster mode that answers the `VERSION` it read at start;
its ecosystem file (committed in the repository) has one deploy env per manager, both hosts in
it. Every command runs as root from a clone of the repository, timed as a whole (wall time);
the two managers' apps listen on their own ports. Per manager: `setup`, `ref v1` (the first
deploy, which starts the apps), then {rounds_line} each under load:
`wrk -t1 -c{WRK_CONNECTIONS} -d…` (keep-alive) on each host's port from {LOAD_LEAD_S:g} s before the deploy to {LOAD_TAIL_S:g} s
after it; failed requests = socket errors (connect, read, write, timeout) + non-2xx responses, per
host, summed over the rounds. Besides, a new connection to each host every 0.1 s while the
deploy runs (1 s timeout) shows when each host first answered the new version, and the new
connections that failed (refused, reset, timeout, ...). Then the same deploy with a `post-deploy` of `exit 3`.

- PM2 ({versions.get('pm2', '?')}, pm2-deploy 1.0.2): `pm2 deploy ecosystem.config.js pm2 setup`,
  then `pm2 deploy ecosystem.config.js pm2 ref v2`; post-deploy `pm2 startOrReload
  ecosystem.config.js --env pm2` (cluster-mode reload, one worker after the other). It deploys
  the hosts **one after the other** (`run-series`, a full run of its bash script per host, an ssh
  login for each of its steps; the first failure stops the rest), and resets the live checkout
  (`source/`) to the new ref before post-deploy. What it needed here: the ports as strings (a
  number is ignored: port 22); `PATH` in the env's `env` (its hooks run in the host's
  non-interactive shell, which does not read `~/.profile`); an absolute `path`
  (`{PM2_PATH}`: it resolves `path` on the deploying machine, so `~/…` would not do; the host's
  shell completes `$USER`); host objects `{{host, port, user}}` work only because its parser
  takes the last `"user"`/`"port"` of the JSON. `pm2 deploy` talks to a local PM2 daemon, started
  before the timed commands.
- Kelpie ({versions.get('kelpie', '?')}, built from {versions.get('kelpie_source', '?')}): `kelpie deploy ecosystem.config.js kelpie setup`, then
  `kelpie deploy ecosystem.config.js kelpie ref v2`; post-deploy `kelpie startOrReload
  ecosystem.config.js --env kelpie`, run in the new release before `current` switches. The
  hosts go **in parallel**: lock all, prepare the release on all (a barrier), then activate
  all at once; one ssh connection per host. Host objects with numeric ports, `path:
  '{KELPIE_PATH}'`, hooks in a login shell (`~/.profile` gives the `PATH`).
- A failed post-deploy: PM2 has already reset the first host's live checkout to the new ref
  and appended it to `.deploys`; its old processes go on serving the old version (a restart,
  or a crash, runs the new code), and the second host is never reached (no SSH login: the
  series stops). Kelpie runs post-deploy in the new release on both hosts, leaves `current` on
  the live release, marks the new one `FAILED`, and exits 1.
- wrk {versions.get('wrk', '?')}, wrk and the apps and sshd and git on the same 2 cores: the load
  slows the deploys; compare the two managers of one run."""


def compact_json(obj, levels: int = 3, _level: int = 0) -> str:
    """obj as JSON, indented by one space down to `levels` levels, each deeper value on one
    line (a command's figures: one line each)."""
    if _level >= levels or not isinstance(obj, (dict, list)) or not obj:
        return json.dumps(obj)
    pad, end = " " * (_level + 1), " " * _level
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(str(k))}: {compact_json(v, levels, _level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    items = [pad + compact_json(v, levels, _level + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + end + "]"


def raw_samples(results: dict, versions: dict) -> dict:
    """What the report keeps of the results: without the summaries (the tables have them) and
    wrk's latencies (not measured here)."""
    def slim(cmd: dict) -> dict:
        out = dict(cmd)
        if "load" in out:
            out["load"] = {u: {k: v for k, v in w.items() if not k.startswith("latency")}
                           for u, w in out["load"].items()}
        return out

    raw: dict = {"versions": versions}
    for key, res in results.items():
        r = {k: v for k, v in res.items() if k != "summary"}
        r["rounds"] = [slim(x) for x in r.get("rounds") or []]
        if r.get("fail"):
            r["fail"] = slim(r["fail"])
        raw[key] = r
    return raw


def deploy_section(table: str, rounds: str, notes: str, run_line: str, raw: dict) -> str:
    return f"""{DEPLOY_BEGIN}
## Deploy (two hosts over SSH)

{run_line}

{table}

{rounds}

{notes}

<details><summary>Raw samples (deploy)</summary>

```json
{compact_json(round_floats(raw))}
```

</details>
{DEPLOY_END}"""


def merge_deploy_section(report: str, section: str | None) -> str:
    return merge_section(report, DEPLOY_BEGIN, DEPLOY_END, section)


def existing_deploy_section(path) -> str | None:
    return existing_section(path, DEPLOY_BEGIN, DEPLOY_END)


def deploy_output(cfg: argparse.Namespace, argv_str: str, started: dt.datetime, load: str,
                  results: dict, versions: dict) -> int:
    """The tables on stdout; with --output, the deploy section of that report (the rest kept).
    Exit 1 when a manager's part failed."""
    table, rounds = build_deploy_table(results), build_rounds_table(results)
    print(table + "\n\n" + rounds)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, node "
                    f"{info['node']}, Linux {info['kernel']}")
        section = deploy_section(table, rounds, deploy_notes(results, versions), run_line,
                                 raw_samples(results, versions))
        text = cfg.output.read_text() if cfg.output.exists() else ""
        cfg.output.write_text(merge_deploy_section(text, section))
        log(f"updated the deploy section of {cfg.output}")
    return 1 if any("error" in r for r in results.values()) else 0
