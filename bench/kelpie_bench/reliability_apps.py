"""Reliability scenario: what each manager does under faults, PM2 and Kelpie in the same run,
each part with a fresh daemon and home. Here: its parameters, its apps' sources and the checks of
what they print."""

from __future__ import annotations

import re

REL_CHATTY = 5                # apps printing a line every 10 ms during the daemon kill
REL_BURST_LINES = 65536       # the burst app's lines of 64 bytes ("\n" included): 4 MiB
REL_ALIVE_AFTER_S = 3.0       # apps counted alive this long after the kill
REL_LOAD_S = 5.0              # the cluster part's load run
REL_KILL_AT_S = 1.0           # kill -9 of the daemon this long into the load
REL_NEXT_AT_S = 2.0           # the next command (`jlist`) this long into the load
REL_LOAD_THREADS = 4          # request loops (a new connection per request)
REL_STEP_CAP_S = 120.0        # a step of the many-apps part gives up after this long
REL_SECRET = "s3cr3t"
REL_OTHER_UID = 65534         # nobody
REL_GARBAGE = b"\x00\xffthis is not a dump {[\n"

REL_CHATTY_JS = r"""// Kelpie bench (reliability): one line every 10 ms, "tick <pid> <n>", forever.
let n = 0;
setInterval(() => console.log("tick " + process.pid + " " + n++), 10);
"""

REL_BURST_JS = r"""// Kelpie bench (reliability): idle until the file argv[2] exists, then prints LINES lines of
// 64 bytes ("burst NNNNNNN bbb...b NNNNNNN\n": 4 MiB) to stdout, 256 lines per write, and once
// every write has completed writes "<failed writes> <ms>" to the file argv[3]. A write to a
// full pipe nobody reads blocks (stdout to a pipe is synchronous in Node.js on Linux); one to a
// pipe without a reader fails with EPIPE (uncaught: the app dies).
const fs = require("fs");
const [trigger, done] = process.argv.slice(2);
const LINES = %d;
const PER = 256;
const pad = "b".repeat(41);
function line(n) {
  const s = String(n).padStart(7, "0");
  return "burst " + s + " " + pad + " " + s + "\n";
}
const poll = setInterval(() => {
  if (!fs.existsSync(trigger)) return;
  clearInterval(poll);
  const t0 = Date.now();
  let pending = 0, failed = 0;
  for (let i = 1; i <= LINES; i += PER) {
    let chunk = "";
    for (let j = i; j < i + PER && j <= LINES; j++) chunk += line(j);
    pending++;
    process.stdout.write(chunk, (err) => {
      if (err) failed++;
      if (--pending === 0) fs.writeFileSync(done, failed + " " + (Date.now() - t0) + "\n");
    });
  }
}, 10);
setInterval(() => {}, 1000);
"""

REL_STUBBORN_JS = r"""// Kelpie bench (reliability): ignores SIGINT, SIGTERM and SIGHUP (handlers that do nothing).
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, () => {});
console.log("ready " + process.pid);
setInterval(() => {}, 1000);
"""

REL_SCRIPTS = {"chatty": ("rel-chatty.js", REL_CHATTY_JS),
               "burst": ("rel-burst.js", REL_BURST_JS % REL_BURST_LINES),
               "stubborn": ("rel-stubborn.js", REL_STUBBORN_JS)}

BURST_RX = re.compile(rb"burst (\d{7}) b{41} (\d{7})$")
TICK_RX = re.compile(rb"tick (\d+) (\d+)")
ANSI_RX = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def burst_line(n: int) -> bytes:
    """Line n of the burst app, with its "\\n" (64 bytes; used by the self-test)."""
    d = b"%07d" % n
    return b"burst " + d + b" " + b"b" * 41 + b" " + d + b"\n"


def check_burst_lines(data: bytes, expected: int) -> dict:
    """The burst app's lines in data (anything before them on a line, e.g. a date, allowed):
    distinct line numbers 1..expected, lost, duplicated, malformed."""
    seen = bytearray(expected + 1)
    distinct = dups = bad = 0
    for ln in data.split(b"\n"):
        if b"burst " not in ln:
            continue
        m = BURST_RX.search(ln)
        if not m or m[1] != m[2] or not 1 <= int(m[1]) <= expected:
            bad += 1
            continue
        n = int(m[1])
        if seen[n]:
            dups += 1
        else:
            seen[n] = 1
            distinct += 1
    return {"distinct": distinct, "lost": expected - distinct, "duplicates": dups,
            "malformed": bad}


def tick_gaps(data: bytes, pid: int) -> tuple[int, int]:
    """(lines of process pid, numbers missing between its first and last line) in a chatty
    app's log."""
    ns = sorted({int(m[2]) for m in TICK_RX.finditer(data) if int(m[1]) == pid})
    if not ns:
        return 0, 0
    return len(ns), ns[-1] - ns[0] + 1 - len(ns)


def classify_after_kill(before: dict[str, int], after: dict[str, tuple[int | None, str]],
                        alive: set[int]) -> dict:
    """What the next daemon made of the apps that ran before the kill: before = name -> pid,
    after = name -> (pid or None, status) from its jlist, alive = the pids still running.
    Adopted: listed with the same pid, still running; restarted: listed with another pid;
    lost: not listed, or listed without a running process."""
    out = {"apps": len(before), "listed": 0, "adopted": 0, "restarted": 0, "lost": 0}
    for name, pid in before.items():
        a = after.get(name)
        if a is not None:
            out["listed"] += 1
        if a is None or a[0] is None:
            out["lost"] += 1
        elif a[0] == pid:
            out["adopted" if pid in alive else "lost"] += 1
        else:
            out["restarted"] += 1
    return out
