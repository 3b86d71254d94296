"""Chaos scenario (`--only chaos`): the random-fault test (crates/kelpie-cli/tests/cli/chaos.rs)
run for a long window (ten minutes by default, `--chaos-secs`), seeded and replayable: the
faults injected, the lines checked, the lines lost where the test allows it (a pipe left
without a reader when daemon and keeper are both killed; what a full home dropped, counted),
the processes that lived through a daemon's SIGKILL (a line lost there is a violation: issue
51's finding 3) and every violation, in bench/RESULTS.md's `chaos` section.

CI runs the same test for 20 s; this is its long run. It drives the debug build the tests use
(`cargo test`), not the release one: what it checks is behaviour, not speed."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import time

from .common import log, REPO
from .processes import loadavg
from .report import merge_section

BEGIN = "<!-- bench:chaos:begin -->"
END = "<!-- bench:chaos:end -->"
TEST = "cli::chaos::random_faults_leave_every_app_running_once_and_every_line_whole_once_and_in_order"


def run_chaos(secs: int, seed: int | None) -> dict:
    """One run of the test: its verdict and what it printed about itself."""
    env = dict(os.environ, KELPIE_NO_SKIP="1", KELPIE_CHAOS_SECS=str(secs))
    if seed is not None:
        env["KELPIE_CHAOS_SEED"] = str(seed)
    cmd = ["cargo", "test", "-q", "-p", "kelpie-cli", "--test", "cli", TEST, "--",
           "--exact", "--nocapture"]
    log(f"chaos: {' '.join(cmd)} (KELPIE_CHAOS_SECS={secs})")
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=secs + 900)
    result = parse_output(p.stdout.decode(errors="replace"), p.returncode == 0)
    result["wall_s"] = time.monotonic() - t0
    return result


def parse_output(out: str, passed: bool) -> dict:
    """What the test printed about itself (its `chaos:` lines), and its verdict."""
    said = [line for line in out.splitlines() if line.startswith("chaos:")]
    result: dict = {"passed": passed, "said": said}
    for line in said:
        if m := re.match(r"chaos: seed (\d+)", line):
            result["seed"] = int(m.group(1))
        if m := re.match(r"chaos: faults injected: \{(.*)\}", line):
            result["faults"] = {k: int(v) for k, v in re.findall(r'"([^"]+)": (\d+)', m.group(1))}
        if m := re.match(r"chaos: (\d+) lines of (\d+) processes checked; (\d+) lost from pipes "
                         r"left without a reader.*?; (\d+) dropped while the home was full; "
                         r"(\d+) processes lived through a daemon's SIGKILL", line):
            result.update(lines=int(m.group(1)), processes=int(m.group(2)),
                          orphan_lost=int(m.group(3)), full_dropped=int(m.group(4)),
                          through_kills=int(m.group(5)))
    result["violations"] = [line.removeprefix("chaos: VIOLATION ") for line in said
                            if line.startswith("chaos: VIOLATION")]
    if not passed and not result["violations"]:
        result["violations"] = [out[-1500:]]
    return result


def chaos_section(r: dict, argv: str, started: dt.datetime, load: str) -> str:
    faults = r.get("faults", {})
    rows = "\n".join(f"| {name} | {count} |" for name, count in sorted(faults.items()))
    violations = "\n".join(f"- {v}" for v in r["violations"]) or "none"
    return f"""{BEGIN}
## Random faults (issue 51)

`{argv}` on {started:%Y-%m-%d %H:%M} UTC (load {load}); {r['wall_s'] / 60:.1f} min in all,
seed {r.get('seed', '?')} (replay: `KELPIE_CHAOS_SEED={r.get('seed', '?')}
KELPIE_CHAOS_SECS=... cargo test -p kelpie-cli --test cli chaos`). Apps: sh and Node printers
(numbered lines, each process recording the last line it printed), a Node cluster of two
instances sharing a port, a job restarted by `cron_restart` every 3 s, a crash loop; three
clients running commands all along. The faults, one every 0.5-2 s:

| fault | times |
|---|---|
{rows}

Verdict: **{'passed' if r['passed'] else 'FAILED'}**. {r.get('lines', 0)} lines of
{r.get('processes', 0)} processes checked, each whole, once and in order;
{r.get('orphan_lost', 0)} lines lost from pipes left without a reader (daemon and keeper both
killed: allowed), {r.get('full_dropped', 0)} dropped while the home was full (counted by the
daemon: allowed); {r.get('through_kills', 0)} processes lived through a daemon's SIGKILL with
their keeper and lost no line (a line lost there is a violation: issue 51's finding 3). After
the faults every app ran exactly its instances with nothing outside the list, every command
ended within 30 s, and `kill` left nothing (each a violation otherwise).

Violations: {violations}
{END}
"""


def chaos_main(cfg: argparse.Namespace, argv: str) -> int:
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    r = run_chaos(cfg.chaos_secs, cfg.chaos_seed)
    for line in r["said"]:
        log(line)
    if cfg.output:
        text = cfg.output.read_text() if cfg.output.exists() else ""
        cfg.output.write_text(merge_section(text, BEGIN, END, chaos_section(r, argv, started,
                                                                           load)))
        log(f"updated the chaos section of {cfg.output}")
    return 0 if r["passed"] else 1
