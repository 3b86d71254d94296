"""Reliability scenario: what each manager does under faults, PM2 and Kelpie in the same run,
each part with a fresh daemon and home: kill -9 of the daemon (apps printing, a 4 MiB burst
right after, the next command), the same with a 2-instance HTTP app under load, the control
socket's modes and another uid, secrets in jlist/describe and the dump, a corrupt dump, an
app ignoring the stop signals, and 200 apps. Here: its parameters, apps and helpers."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

from .logfiles import read_log_files
from .managers import Manager


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


def summarize_load(samples: list[tuple[float, str]], t_kill: float) -> dict:
    """Requests of the cluster part: samples = (time, "ok" or the kind of failure), times on
    the same clock as t_kill. Counts by kind, and the first and last failure after the kill."""
    kinds: dict[str, int] = {}
    for _t, r in samples:
        if r != "ok":
            kinds[r] = kinds.get(r, 0) + 1
    fails_after = [t - t_kill for t, r in samples if r != "ok" and t >= t_kill]
    return {"requests": len(samples), "ok": sum(r == "ok" for _t, r in samples),
            "failed": sum(kinds.values()), "by_kind": kinds,
            "failed_before_kill": sum(r != "ok" and t < t_kill for t, r in samples),
            "first_fail_after_kill_s": min(fails_after, default=None),
            "last_fail_after_kill_s": max(fails_after, default=None)}


def first_message(text: str) -> str:
    """The line of a command's output that says what happened: the first one speaking of an
    error, a failure, corruption or a backup, else the first non-empty line."""
    lines = [ANSI_RX.sub("", x).strip() for x in text.splitlines()]
    lines = [x for x in lines if x]
    for x in lines:
        if re.search(r"error|fail|corrupt|invalid|backup|\.bak|cannot|unexpected", x, re.I):
            return x[:200]
    return lines[0][:200] if lines else ""


def http_result(port: int, timeout: float = 1.0) -> str:
    """One GET / with a new connection: "ok" on a 200, else what went wrong."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError:
        return "error"
    if not data:
        return "empty"
    return "ok" if data.startswith(b"HTTP/1.1 200") else "non-200"


class RequestLoad:
    """REL_LOAD_THREADS loops of GET / (a new connection each) until stopped; a failed request
    is followed by a 10 ms pause (a refused port would otherwise spin)."""

    def __init__(self, port: int):
        self.port = port
        self.stop_ev = threading.Event()
        self.samples: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True)
                        for _ in range(REL_LOAD_THREADS)]

    def _loop(self) -> None:
        mine = []
        while not self.stop_ev.is_set():
            r = http_result(self.port)
            mine.append((time.perf_counter(), r))
            if r != "ok":
                time.sleep(0.01)
        with self.lock:
            self.samples.extend(mine)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> list[tuple[float, str]]:
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=10)
        return sorted(self.samples)


def rel_node_app(name: str, script: Path, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> dict:
    a: dict = {"name": name, "script": str(script), "interpreter": "node", "args": list(args),
               "autorestart": True}
    if env:
        a["env"] = env
    return a


def rel_ecosystem(m: Manager, file_name: str, apps: list[dict]) -> Path:
    p = m.workdir / file_name
    p.write_text(json.dumps({"apps": apps}, indent=1))
    return p


def parse_jlist(out: bytes) -> list[dict]:
    text = out.decode(errors="replace")
    i = text.find("[")
    try:
        return json.loads(text[i:]) if i >= 0 else []
    except json.JSONDecodeError:
        return []


def apps_by_name(data: list[dict]) -> dict[str, tuple[int | None, str]]:
    out = {}
    for a in data:
        pid = a.get("pid")
        out[a.get("name")] = (pid if isinstance(pid, int) and pid > 0 else None,
                              (a.get("pm2_env") or {}).get("status", "?"))
    return out


def wait_apps_online(m: Manager, names: list[str], timeout: float = 30) -> dict[str, int]:
    """name -> pid once every app of names is online with a pid."""
    deadline = time.monotonic() + timeout
    apps: dict = {}
    while time.monotonic() < deadline:
        apps = apps_by_name(m.jlist())
        if all(n in apps and apps[n][0] and apps[n][1] == "online" for n in names):
            return {n: apps[n][0] for n in names}
        time.sleep(0.2)
    raise RuntimeError(f"{m.label}: apps not online within {timeout:.0f} s: {apps}")


def app_log(m: Manager, name: str) -> bytes:
    files, _bad = read_log_files(m.logs_dir, name)
    return b"".join(data for _f, data in files)
