#!/usr/bin/env python3
"""Kelpie vs PM2 benchmark.

Builds Kelpie (release), installs PM2 7 from npm into a temporary directory, and measures both
process managers in the same run, each with its own temporary home:

  * daemon RSS idle (0 apps) and with N apps running (VmRSS of the daemon process only);
  * wall time of `list` and `jlist` with N apps;
  * wall time of `start ecosystem.config.js` (N apps) and of `stop all`;
  * crash-to-restart latency of one app killed with SIGKILL;
  * logs: time until 500 000 lines printed by a Node.js app (one console.log per line; and a
    variant writing 1000 lines per write) are in its log files, the daemon's CPU time (until it
    is idle again), and lines lost (rotated and gzipped files included);
  * cluster: a Node.js HTTP hello world with 2 instances in cluster mode under wrk (installed
    from Debian's packages when missing): requests/s with a new connection per request and with
    keep-alive, the daemon's CPU meanwhile, and failed requests during `reload` under load.
  * health: the daemon's CPU (and its busiest threads) while 500 idle apps run and nobody calls
    the CLI, and its RSS; the time from an app crossing its max_memory_restart to its restart,
    the app itself or its child allocating.
  * runtime: `kelpie runtime` and `pm2-runtime` as PID 1 of a pid namespace (`unshare`), 10
    apps: the time from SIGTERM to the runtime's exit, the zombies left by apps whose orphans
    exit, and the size of a static kelpie against PM2's install (+ node).
  * reliability: what each manager does under faults: kill -9 of the daemon (apps alive, a 4 MiB
    burst, the next command: adopted, restarted or lost; log lines), the same with a 2-instance
    HTTP app under load (failed requests), the control socket's modes and another uid, secrets
    in jlist/describe/env and the dump's mode, a corrupt dump, an app ignoring the stop signals,
    and 200 apps (list, restart all, delete all).

Standard library only (Python 3.11). See bench/README.md. Run from anywhere:

    python3 bench/run.py [--quick] [--apps N] [--kelpie-only]
                         [--only core|logs|cluster|health|runtime|reliability]
                         [--output FILE]
    python3 bench/run.py --self-test     # tests of the helpers (log line counter, wrk parser, …)
    python3 bench/run.py --check [--check-output FILE]   # Kelpie's figures against budgets.json
    python3 bench/run.py --check-update-budgets [RESULTS.json ...]  # rewrite budgets.json
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import gzip
import json
import math
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
KELPIE_BIN = REPO / "target" / "release" / "kelpie"
FAKE_APP = REPO / "target" / "release" / "fake-app"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Small helpers


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def p90(xs: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def read_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB -> MB (MiB)
    except OSError:
        return None
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill9(pid: int, must_contain: str | tuple[str, ...] | None = None) -> None:
    """SIGKILL pid if alive (and, if given, only if its command line contains must_contain, or
    one of them, so that a recycled pid is never hit)."""
    if pid <= 1 or pid == os.getpid() or not pid_alive(pid):
        return
    if isinstance(must_contain, str):
        must_contain = (must_contain,)
    if must_contain is not None and not any(x in cmdline(pid) for x in must_contain):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def kill_with_marker(marker: str) -> None:
    """SIGKILL every process whose command line contains marker (a path inside this run's
    unique temp dir, so only processes this run started can match)."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            kill9(int(d.name), marker)


def read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Managers


class Manager:
    """One process manager under test: how to run its CLI, where its daemon pid lives."""

    label = "?"
    pidfile_name = "?"
    daemon_marker = "?"  # substring of the daemon's command line (for safe kill -9)
    memory_check_period_s = 0.0  # how often it checks max_memory_restart
    sampling = "?"  # what it does periodically with idle apps (the health table says it)

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.workdir = root / "work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.daemon_pids: set[int] = set()
        self.app_pids: set[int] = set()
        self.keeper_pids: set[int] = set()  # Kelpie's keeper processes seen
        # Substrings of our apps' command lines (kill -9 of a recorded app pid needs one).
        self.app_markers: tuple[str, ...] = ("fake-app",)

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    # --- to override
    def argv(self, *args: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    # --- common
    def run(self, *args: str, timeout: float = 120, check: bool = True,
            capture: bool = False, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        p = subprocess.run(
            self.argv(*args), env={**self.env(), **(env or {})}, cwd=self.workdir,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if check and p.returncode != 0:
            raise RuntimeError(
                f"{self.label}: `{' '.join(args)}` exited {p.returncode}: "
                f"{p.stderr.decode(errors='replace')[-2000:]}")
        return p

    def timed(self, *args: str, timeout: float = 300) -> float:
        """Wall time (s) of one whole CLI command, stdout to /dev/null."""
        t0 = time.perf_counter()
        self.run(*args, timeout=timeout)
        return time.perf_counter() - t0

    def daemon_pid(self) -> int | None:
        pid = read_pidfile(self.home / self.pidfile_name)
        if pid is not None:
            self.daemon_pids.add(pid)
        return pid

    def jlist(self) -> list[dict]:
        out = self.run("jlist", capture=True).stdout.decode(errors="replace")
        # PM2 may print a banner before the JSON; take from the first '['.
        i = out.find("[")
        data = json.loads(out[i:]) if i >= 0 else []
        for app in data:
            pid = app.get("pid")
            if isinstance(pid, int) and pid > 0:
                self.app_pids.add(pid)
        return data

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for app in self.jlist():
            st = (app.get("pm2_env") or {}).get("status", "?")
            counts[st] = counts.get(st, 0) + 1
        return counts

    def wait_status(self, status: str, n: int, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.status_counts()
            if c.get(status, 0) == n:
                return True
            time.sleep(0.25)
        log(f"{self.label}: timed out waiting for {n} apps {status}: {self.status_counts()}")
        return False

    def kill_command(self) -> list[str]:
        return ["kill"]

    def cluster_start(self, script: Path, port: int) -> tuple[list[str], dict[str, str]]:
        """The CLI arguments (and extra environment) that start the cluster scenario's app with
        CLUSTER_INSTANCES instances sharing `port`."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Stop the daemon and everything it started, whatever state things are in."""
        self.daemon_pid()
        try:
            self.run(*self.kill_command(), timeout=60, check=False)
        except Exception as e:  # noqa: BLE001 - best effort
            log(f"{self.label}: kill command failed: {e}")
        self.daemon_pid()
        for pid in self.daemon_pids:
            kill9(pid, self.daemon_marker)
        for pid in self.app_pids:
            kill9(pid, self.app_markers)


class Pm2(Manager):
    label = "PM2"
    pidfile_name = "pm2.pid"
    daemon_marker = "PM2"  # the God daemon's title is "PM2 v7.x.y: God Daemon (...)"
    memory_check_period_s = 30.0  # its worker's interval (PM2_WORKER_INTERVAL, 30000 ms)
    sampling = ("its worker every 30 s: pidusage of each app's main pid (and max_memory_restart "
                "checked on it), host metrics; nothing else unless asked (list, monit)")

    def __init__(self, root: Path, pm2_bin: Path):
        super().__init__(root)
        self.bin = pm2_bin
        self.user_home = root / "userhome"
        self.user_home.mkdir(parents=True, exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return [str(self.bin), *args]

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if k not in ("KELPIE_HOME",)}
        e.update(PM2_HOME=str(self.home), HOME=str(self.user_home),
                 PM2_DISABLE_VERSION_CHECK="1")
        return e

    def cluster_start(self, script: Path, port: int) -> tuple[list[str], dict[str, str]]:
        # A Node.js app with instances runs in PM2's cluster mode; the app gets the CLI's env.
        return (["start", str(script), "--name", CLUSTER_APP, "-i", str(CLUSTER_INSTANCES)],
                {"PORT": str(port)})

    def cleanup(self) -> None:
        super().cleanup()
        # kill -9 fallback for the daemon when the title check did not match (node renames
        # its process title, but the cmdline may still show the node binary).
        for pid in self.daemon_pids:
            kill9(pid, "node")


class Kelpie(Manager):
    label = "Kelpie"
    pidfile_name = "kelpie.pid"
    daemon_marker = "kelpie"
    memory_check_period_s = 1.0  # the monitor thread's sampling period
    sampling = ("every second (thread `kelpie-monitor`): each app's whole process tree summed "
                "(its processes' /proc/<pid>/stat kept open; the trees found again every 5 s), "
                "limits checked")

    def argv(self, *args: str) -> list[str]:
        return [str(KELPIE_BIN), *args]

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if k not in ("PM2_HOME",)}
        e.update(KELPIE_HOME=str(self.home), PM2_DISABLE_VERSION_CHECK="1")
        return e

    def cluster_start(self, script: Path, port: int) -> tuple[list[str], dict[str, str]]:
        # --port: the daemon owns the socket and sets PORT for the app itself.
        return (["start", str(script), "--name", CLUSTER_APP, "-i", str(CLUSTER_INSTANCES),
                 "--port", str(port)], {})

    def cleanup(self) -> None:
        keeper = read_pidfile(self.home / "keeper.pid")
        if keeper is not None:
            self.keeper_pids.add(keeper)
        super().cleanup()
        keeper = read_pidfile(self.home / "keeper.pid")
        if keeper is not None:
            self.keeper_pids.add(keeper)
        for pid in self.keeper_pids:  # a keeper left behind by a daemon killed with -9
            kill9(pid, self.daemon_marker)


class KelpieUnprivileged(Kelpie):
    """Kelpie run by an unprivileged user (`nobody`, through setpriv): a daemon that cannot
    create cgroups, so the restart path without them is measured on the same machine."""

    label = "Kelpie (non-root)"
    UID = 65534

    def __init__(self, root: Path):
        super().__init__(root)
        self.user_home = root / "userhome"
        self.user_home.mkdir(parents=True, exist_ok=True)
        for path in (root, self.home, self.workdir, self.user_home):
            os.chown(path, self.UID, self.UID)
        # The run's temp dir is root's and 0700: let the user through it to its own.
        os.chmod(root.parent, os.stat(root.parent).st_mode | 0o111)

    def argv(self, *args: str) -> list[str]:
        return ["setpriv", f"--reuid={self.UID}", f"--regid={self.UID}", "--clear-groups",
                "--", str(KELPIE_BIN), *args]

    def env(self) -> dict[str, str]:
        e = super().env()
        e["HOME"] = str(self.user_home)
        return e


def unprivileged_possible() -> tuple[bool, str]:
    """Whether the non-root variant can run: root (to switch) and setpriv."""
    if os.geteuid() != 0:
        return False, "not root: the main run is already without cgroups"
    if shutil.which("setpriv") is None:
        return False, "setpriv (util-linux) not found"
    return True, ""


def app_alone_start_ms(rounds: int, workdir: Path) -> list[float]:
    """The floor of any restart: fake-app spawned directly (posix_spawn, no manager) until it
    has written its start stamp, in ms; `rounds` runs."""
    stamp = workdir / "alone.stamp"
    out: list[float] = []
    for _ in range(rounds):
        stamp.unlink(missing_ok=True)
        t0 = time.time_ns()
        pid = os.posix_spawn(str(FAKE_APP), [str(FAKE_APP), "--quiet", "--stamp", str(stamp)],
                             {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        deadline = time.monotonic() + 5
        stamps = []
        while not stamps and time.monotonic() < deadline:
            stamps = read_stamps(stamp)
            time.sleep(0.0002)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if stamps:
            out.append((stamps[0][1] - t0) / 1e6)
    return out


def bench_restart_only(m: Manager, cfg: argparse.Namespace) -> dict:
    """Crash-to-restart alone (the non-root variant of the core scenario)."""
    _eco, crashy, stamp = write_ecosystems(m, 1)
    m.run("ping", timeout=60)
    log(f"{m.label}: crash-to-restart, {cfg.crash_rounds} rounds")
    lat = crash_latencies(m, crashy, stamp, cfg.crash_rounds)
    log(f"{m.label}:   restart median {median(lat)} ms, p90 {p90(lat)} ms")
    return {"restart_ms": median(lat), "restart_p90_ms": p90(lat), "raw": {"restart_ms": lat}}


# --------------------------------------------------------------------------------------------
# Measurements


def write_ecosystems(m: Manager, n_apps: int) -> tuple[Path, Path, Path]:
    apps = [
        {"name": f"app{i}", "script": str(FAKE_APP), "interpreter": "none", "args": [],
         "autorestart": True}
        for i in range(n_apps)
    ]
    eco = m.workdir / "ecosystem.config.js"
    eco.write_text("module.exports = " + json.dumps({"apps": apps}, indent=1) + ";\n")
    (m.workdir / "ecosystem.json").write_text(json.dumps({"apps": apps}, indent=1))
    stamp = m.workdir / "crashy.stamp"
    crashy = m.workdir / "crashy.json"
    crashy.write_text(json.dumps({"apps": [{
        "name": "crashy", "script": str(FAKE_APP), "interpreter": "none",
        "args": ["--stamp", str(stamp)], "min_uptime": 100, "max_restarts": 1000}]}, indent=1))
    return eco, crashy, stamp


def sample_rss(m: Manager, samples: int, gap: float) -> float | None:
    pid = m.daemon_pid()
    if pid is None:
        log(f"{m.label}: no daemon pid file")
        return None
    vals = []
    for i in range(samples):
        if i:
            time.sleep(gap)
        v = read_rss_mb(pid)
        if v is not None:
            vals.append(v)
    return median(vals)


def read_stamps(path: Path) -> list[tuple[int, int]]:
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out.append((int(parts[0]), int(parts[1])))
            except ValueError:
                pass
    return out


def crash_latencies(m: Manager, crashy: Path, stamp: Path, rounds: int) -> list[float]:
    stamp.unlink(missing_ok=True)
    m.run("start", str(crashy))
    deadline = time.monotonic() + 20
    while not read_stamps(stamp):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{m.label}: crashy app never wrote its stamp file")
        time.sleep(0.01)
    time.sleep(0.5)  # let it settle (> min_uptime)
    lat_ms: list[float] = []
    for r in range(rounds):
        stamps = read_stamps(stamp)
        pid = stamps[-1][0]
        m.app_pids.add(pid)
        n_before = len(stamps)
        t0 = time.time_ns()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            log(f"{m.label}: crashy pid {pid} already gone, skipping round {r}")
            time.sleep(0.3)
            continue
        deadline = time.monotonic() + 15
        new = None
        while time.monotonic() < deadline:
            s = read_stamps(stamp)
            if len(s) > n_before:
                new = s[n_before]
                break
            time.sleep(0.0005)
        if new is None:
            log(f"{m.label}: no restart within 15 s after SIGKILL (round {r})")
            break
        m.app_pids.add(new[0])
        lat_ms.append((new[1] - t0) / 1e6)
        time.sleep(0.3)
    m.run("delete", "crashy", check=False)
    return lat_ms


def start_daemon_idle_rss(m: Manager, settle: float, rss_samples: int
                          ) -> tuple[int | None, float | None]:
    """Starts the daemon (`ping`), waits `settle` s, and returns its pid and its RSS with 0 apps
    (median of rss_samples samples 0.2 s apart)."""
    log(f"{m.label}: starting daemon")
    m.run("ping", timeout=60)
    pid = m.daemon_pid()
    log(f"{m.label}: daemon pid {pid}")
    time.sleep(settle)
    return pid, sample_rss(m, rss_samples, 0.2)


def loaded_round(m: Manager, eco: Path, n_apps: int, cfg: argparse.Namespace,
                 while_idle: "Callable[[], object] | None" = None) -> dict:
    """One round of the core scenario: `start eco` (timed) into a daemon with no apps, wait
    until all n_apps are online, cfg.settle s, the daemon's RSS (median of cfg.rss_samples),
    then while_idle() if given (nothing has called the CLI since the wait), cfg.list_runs runs
    each of `list` and `jlist` (timed), `stop all` (timed) and `delete all`. Times in s."""
    if m.status_counts():
        m.run("delete", "all", timeout=300)
    start = m.timed("start", str(eco), timeout=600)
    log(f"{m.label}:   start ({eco.name}) took {start:.3f} s")
    online = m.wait_status("online", n_apps, timeout=120)
    time.sleep(cfg.settle)
    rss = sample_rss(m, cfg.rss_samples, 0.2)
    idle = while_idle() if while_idle is not None else None
    lists, jlists = [], []
    for _ in range(cfg.list_runs):
        lists.append(m.timed("list"))
        jlists.append(m.timed("jlist"))
    log(f"{m.label}:   list {median(lists) * 1e3:.1f} ms, jlist {median(jlists) * 1e3:.1f} ms, "
        f"rss {rss} MB")
    m.jlist()  # record app pids for cleanup
    stop = m.timed("stop", "all", timeout=600)
    log(f"{m.label}:   stop all took {stop:.3f} s")
    stopped = m.wait_status("stopped", n_apps, timeout=120)
    m.run("delete", "all", timeout=300)
    return {"start_s": start, "online": online, "rss": rss, "idle": idle, "list_s": lists,
            "jlist_s": jlists, "stop_s": stop, "stopped": stopped}


def bench_manager(m: Manager, n_apps: int, cfg: argparse.Namespace) -> dict:
    res: dict = {}
    eco, crashy, stamp = write_ecosystems(m, n_apps)

    # Daemon up, idle.
    _pid, res["rss_idle"] = start_daemon_idle_rss(m, cfg.settle, cfg.rss_samples)

    starts, stops, rss_loaded, lists, jlists = [], [], [], [], []
    for r in range(cfg.rounds):
        log(f"{m.label}: round {r + 1}/{cfg.rounds}: start {n_apps} apps")
        rd = loaded_round(m, eco, n_apps, cfg)
        starts.append(rd["start_s"])
        stops.append(rd["stop_s"])
        rss_loaded.append(rd["rss"])
        lists.extend(rd["list_s"])
        jlists.extend(rd["jlist_s"])

    res["rss_loaded"] = median([x for x in rss_loaded if x is not None])
    res["list_ms"] = median(lists) * 1e3
    res["jlist_ms"] = median(jlists) * 1e3
    res["start_s"] = median(starts)
    res["stop_s"] = median(stops)
    res["raw"] = {"start_s": starts, "stop_s": stops, "rss_loaded": rss_loaded,
                  "list_ms": [x * 1e3 for x in lists], "jlist_ms": [x * 1e3 for x in jlists]}

    # The same start from ecosystem.json, for both managers: no JavaScript to evaluate, so it
    # shows the managers themselves (Kelpie runs `node` to read a .js file; PM2's CLI is node).
    starts_json = []
    for r in range(cfg.rounds):
        starts_json.append(m.timed("start", str(m.workdir / "ecosystem.json"), timeout=600))
        m.jlist()
        m.wait_status("online", n_apps, timeout=120)
        m.run("delete", "all", timeout=300)
    res["start_json_s"] = median(starts_json)
    res["raw"]["start_json_s"] = starts_json
    log(f"{m.label}:   start from .json: {res['start_json_s']:.3f} s")

    log(f"{m.label}: crash-to-restart, {cfg.crash_rounds} rounds")
    lat = crash_latencies(m, crashy, stamp, cfg.crash_rounds)
    res["restart_ms"] = median(lat)
    res["restart_p90_ms"] = p90(lat)
    res["raw"]["restart_ms"] = lat
    log(f"{m.label}:   restart median {res['restart_ms']} ms, p90 {res['restart_p90_ms']} ms")
    return res


# --------------------------------------------------------------------------------------------
# Logs scenario: one Node.js app prints LOG_LINES lines of 90 bytes + "\n" as fast as it can.
# Two variants of the app: the main one does one console.log() per line (what Node.js apps
# actually do: one write() system call per line); the other builds 1000 lines per write().

LOG_APP = "logspam"
LOG_LINE_LEN = 90  # bytes, without the "\n"
LOG_PAD = b"x" * 69  # "line NNNNNNN " (13) + pad (69) + " NNNNNNN" (8) = 90
CLK_TCK = os.sysconf("SC_CLK_TCK")

LOG_APP_JS_PERLINE = r"""// Kelpie bench: print LINES unique lines of 90 bytes + "\n", one console.log() per line, as
// fast as possible, exit 0. Line n (1-based): "line " + n (7 digits) + " " + 69 x "x" + " " + n.
const LINES = %d;
const pad = "x".repeat(69);
function line(n) {
  const s = String(n).padStart(7, "0");
  return "line " + s + " " + pad + " " + s;
}
for (let i = 1; i <= LINES; i++) console.log(line(i));
"""

LOG_APP_JS_BATCHED = r"""// Kelpie bench: print LINES unique lines of 90 bytes + "\n" as fast as possible, exit 0.
// Line n (1-based): "line " + n (7 digits) + " " + 69 x "x" + " " + n (7 digits).
const LINES = %d;
const PER = 1000;  // lines per write()
const pad = "x".repeat(69);
let i = 1;
function line(n) {
  const s = String(n).padStart(7, "0");
  return "line " + s + " " + pad + " " + s + "\n";
}
function pump() {
  while (i <= LINES) {
    const end = Math.min(LINES, i + PER - 1);
    let chunk = "";
    for (; i <= end; i++) chunk += line(i);
    if (!process.stdout.write(chunk)) {
      process.stdout.once("drain", pump);  // backpressure: wait, then go on
      return;
    }
  }
}
pump();  // node exits (code 0) once stdout has been flushed
"""


@dataclass(frozen=True)
class LogVariant:
    key: str       # in the raw samples and file names
    title: str     # in the table
    js: str        # app source, "%d" = number of lines
    filename: str  # the app's file in the temp dir


LOG_VARIANTS = (
    LogVariant("per_line", "console.log per line", LOG_APP_JS_PERLINE, "logspam.js"),
    LogVariant("batched", "batched writes, 1000 lines each", LOG_APP_JS_BATCHED,
               "logspam-batched.js"),
)


def log_line(n: int) -> bytes:
    """Line n as the app prints it, without the newline (used by the self-test)."""
    d = b"%07d" % n
    return b"line " + d + b" " + LOG_PAD + b" " + d


def parse_log_line(ln: bytes) -> int | None:
    """The number of a well-formed line (without its "\\n"), else None."""
    if (len(ln) != LOG_LINE_LEN or not ln.startswith(b"line ") or ln[12:13] != b" "
            or ln[82:83] != b" " or ln[5:12] != ln[83:90] or ln[13:82] != LOG_PAD
            or not ln[5:12].isdigit()):
        return None
    return int(ln[5:12])


@dataclass(frozen=True)
class LogFile:
    path: Path
    gz: bool
    ino: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.path.name, self.ino)


class _Changed(Exception):
    """The set of log files changed while we read it (rotation, compression): read again."""


def list_log_files(logs_dir: Path, name: str, stream: str = "out") -> list[LogFile]:
    """An app's log files for one stream, oldest first: the rotated files
    `<name>-<stream>__<YYYY-MM-DD_HH-mm-ss>[_NNN].log[.gz]` by timestamp then counter, then the
    live `<name>-<stream>.log`. A rotated file present both as `.log` and `.log.gz` is being
    compressed: only the `.log` (complete, the `.gz` may not be yet) is listed."""
    live_name = f"{name}-{stream}.log"
    rx = re.compile(rf"^{re.escape(name)}-{re.escape(stream)}__"
                    r"(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})(?:_(\d+))?\.log(\.gz)?$")
    rotated: dict[tuple[str, int], LogFile] = {}
    live: LogFile | None = None
    try:
        with os.scandir(logs_dir) as it:
            for e in it:
                if e.name == live_name:
                    live = LogFile(Path(e.path), False, e.inode())
                    continue
                m = rx.match(e.name)
                if not m:
                    continue
                k = (m[1], int(m[2]) if m[2] is not None else -1)
                f = LogFile(Path(e.path), m[3] is not None, e.inode())
                prev = rotated.get(k)
                if prev is None or (prev.gz and not f.gz):
                    rotated[k] = f
    except FileNotFoundError:
        return []
    out = [rotated[k] for k in sorted(rotated)]
    if live is not None:
        out.append(live)
    return out


def _open_checked(f: LogFile):
    """Open f, making sure it is still the file that was listed (not a new one under its name)."""
    fh = open(f.path, "rb")
    if os.fstat(fh.fileno()).st_ino != f.ino:
        fh.close()
        raise _Changed()
    return fh


class LineCounter:
    """Counts the complete lines ("\\n") of an app's log files (live + rotated, gzipped or not),
    cheaply enough to be called every 20 ms: plain files are read incrementally (offset kept per
    inode, which survives the rename of a rotation), a `.gz` is decompressed once. A listing
    that changes while it is read (rotation, compression) is read again."""

    def __init__(self, logs_dir: Path, name: str, stream: str = "out"):
        self.logs_dir, self.name, self.stream = logs_dir, name, stream
        self.plain: dict[tuple[int, int], tuple[int, int, bytes]] = {}  # (dev, ino) -> off, n, head
        self.gz: dict[tuple, int] = {}
        self.last = 0
        self._between = None  # test hook: called between listing and reading

    def _count_plain(self, f: LogFile) -> int:
        with _open_checked(f) as fh:
            fd = fh.fileno()
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            off, n, head = self.plain.get(key, (0, 0, b""))
            # An inode number can be reused by a new file: its first bytes tell.
            if off > st.st_size or (head and os.pread(fd, len(head), 0) != head):
                off, n, head = 0, 0, b""
            fh.seek(off)
            while chunk := fh.read(1 << 22):
                n += chunk.count(b"\n")
                off += len(chunk)
            if len(head) < 64:
                head = os.pread(fd, 64, 0)
            self.plain[key] = (off, n, head)
            return n

    def _count_gz(self, f: LogFile) -> int:
        with _open_checked(f) as fh:
            st = os.fstat(fh.fileno())
            key = (f.path.name, st.st_ino, st.st_size, st.st_mtime_ns)
            if key in self.gz:
                return self.gz[key]
            n = 0
            try:
                with gzip.GzipFile(fileobj=fh) as g:
                    while chunk := g.read(1 << 22):
                        n += chunk.count(b"\n")
            except (EOFError, gzip.BadGzipFile, zlib.error):
                return 0  # still being written: not counted yet, read again next time
            self.gz[key] = n
            return n

    def count(self) -> int:
        for _ in range(20):
            try:
                files = list_log_files(self.logs_dir, self.name, self.stream)
                if self._between:
                    self._between()
                total = sum(self._count_gz(f) if f.gz else self._count_plain(f) for f in files)
                again = list_log_files(self.logs_dir, self.name, self.stream)
                if [f.key for f in again] != [f.key for f in files]:
                    continue
                self.last = total
                return total
            except (FileNotFoundError, _Changed):
                continue
        return self.last


def read_log_files(logs_dir: Path, name: str, stream: str = "out",
                   attempts: int = 50) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Contents of all the log files, oldest first, from one consistent listing. Returns
    ([(file name, bytes)], [files that could not be read in full])."""
    for attempt in range(attempts):
        last = attempt == attempts - 1
        files = list_log_files(logs_dir, name, stream)
        out: list[tuple[str, bytes]] = []
        bad: list[str] = []
        try:
            for f in files:
                with _open_checked(f) as fh:
                    if not f.gz:
                        out.append((f.path.name, fh.read()))
                        continue
                    try:
                        with gzip.GzipFile(fileobj=fh) as g:
                            out.append((f.path.name, g.read()))
                    except (EOFError, gzip.BadGzipFile, zlib.error):
                        if not last:
                            raise _Changed()
                        bad.append(f.path.name)
            again = list_log_files(logs_dir, name, stream)
            if [f.key for f in again] != [f.key for f in files] and not last:
                raise _Changed()
            return out, bad
        except (FileNotFoundError, _Changed):
            time.sleep(0.05)
    return [], ["(log files kept changing)"]


def check_log_lines(logs_dir: Path, name: str, expected: int, stream: str = "out") -> dict:
    """Reads every line of the app's log files (oldest file first) and checks them against the
    app's output: lines 1..expected, each exactly once, in order."""
    files, bad = read_log_files(logs_dir, name, stream)
    seen = bytearray(expected + 1)
    distinct = dups = ooo = invalid = partial = complete = 0
    prev = 0  # number of the previous well-formed line
    for _fname, data in files:
        lines = data.split(b"\n")
        if lines.pop():  # bytes after the last "\n": a line cut short
            partial += 1
        complete += len(lines)
        for ln in lines:
            n = parse_log_line(ln)
            if n is None or not 1 <= n <= expected:
                invalid += 1
                continue
            if seen[n]:
                dups += 1
            else:
                seen[n] = 1
                distinct += 1
                if n < prev:  # a break in the sequence (not counted again for each later line)
                    ooo += 1
            prev = n
    live = f"{name}-{stream}.log"
    return {"files": [f for f, _ in files], "rotated": sum(f != live for f, _ in files),
            "unreadable": bad, "complete_lines": complete, "distinct": distinct,
            "lost": expected - distinct, "duplicates": dups, "out_of_order": ooo,
            "invalid": invalid, "partial": partial}


def daemon_cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads; not its children), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def remove_app_logs(m: Manager, name: str) -> None:
    for p in m.logs_dir.glob(f"{name}-*"):
        try:
            p.unlink()
        except OSError:
            pass


def app_alone(script: Path, workdir: Path, cfg: argparse.Namespace) -> dict:
    """Reference: the log app with no manager, stdout redirected to a file (about the floor for
    any manager's time to disk: a manager cannot get the lines to disk faster than the app
    prints them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "alone-out.log"
    times = []
    for _ in range(cfg.rounds):
        out.unlink(missing_ok=True)
        with open(out, "wb") as f:
            t0 = time.perf_counter()
            subprocess.run(["node", str(script)], stdout=f, stdin=subprocess.DEVNULL,
                           check=True, timeout=120)
            times.append(time.perf_counter() - t0)
        with open(out, "rb") as f:
            n = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))
        if n != cfg.log_lines:
            raise RuntimeError(f"log app alone printed {n} lines, not {cfg.log_lines}")
    out.unlink(missing_ok=True)
    log(f"log app {script.name} alone (node > file): {median(times):.3f} s")
    return {"time_s": median(times), "raw": times}


IDLE_WINDOW_S = 1.0   # the daemon is idle once it used at most IDLE_TICKS in this long
IDLE_TICKS = 1        # clock ticks (1 tick = 1 / SC_CLK_TCK s, 10 ms on Linux)
IDLE_CAP_S = 15.0     # give up waiting for idle after this long (the round says so)


def wait_daemon_idle(pid: int) -> tuple[int | None, float, bool]:
    """Samples the daemon's CPU ticks every 0.1 s until it has used at most IDLE_TICKS over the
    last IDLE_WINDOW_S (work that finishes after the last line landed, e.g. gzip of rotated
    files or handling the app's exit, is then counted). Returns (ticks at the end, seconds
    waited, idle reached)."""
    t0 = time.perf_counter()
    samples = [(t0, daemon_cpu_ticks(pid))]
    while True:
        time.sleep(0.1)
        now, ticks = time.perf_counter(), daemon_cpu_ticks(pid)
        samples.append((now, ticks))
        if ticks is None:
            return None, now - t0, False
        if now - t0 >= IDLE_WINDOW_S:
            # The newest sample at least IDLE_WINDOW_S old.
            old = [tk for (t, tk) in samples if now - t >= IDLE_WINDOW_S - 1e-3][-1]
            if old is not None and ticks - old <= IDLE_TICKS:
                return ticks, now - t0, True
        if now - t0 >= IDLE_CAP_S:
            return ticks, now - t0, False


def bench_logs(m: Manager, script: Path, cfg: argparse.Namespace) -> dict:
    n_lines = cfg.log_lines
    m.app_markers = (*m.app_markers, str(script))
    log(f"{m.label}: logs ({script.name}): starting daemon")
    m.run("ping", timeout=60)
    dpid = m.daemon_pid()
    log(f"{m.label}: logs: daemon pid {dpid}")
    time.sleep(cfg.settle)
    rounds: list[dict] = []
    for r in range(cfg.rounds):
        m.run("delete", LOG_APP, check=False)
        remove_app_logs(m, LOG_APP)
        time.sleep(0.5)
        counter = LineCounter(m.logs_dir, LOG_APP)
        cpu0 = daemon_cpu_ticks(dpid)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            m.argv("start", str(script), "--name", LOG_APP, "--interpreter", "node",
                   "--no-autorestart"),
            env=m.env(), cwd=m.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = t0 + cfg.log_timeout
        last_n, last_change, done = -1, t0, False
        while True:
            n = counter.count()
            now = time.perf_counter()
            if n != last_n:
                last_n, last_change = n, now
            if n >= n_lines:
                done = True
                break
            if now > deadline or (n > 0 and now - last_change > cfg.log_stall):
                break
            time.sleep(0.02)
        t_disk = (now if done else last_change) - t0
        cpu1 = daemon_cpu_ticks(dpid)
        # Then until the daemon is idle: what it still spends right after (gzip of the last
        # rotated file, the app's exit) belongs to the work of getting the lines to disk.
        cpu2, idle_wait, idle = wait_daemon_idle(dpid)
        if not idle:
            log(f"{m.label}: WARNING: daemon not idle {IDLE_CAP_S:.0f} s after the last line")
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{m.label}: start {LOG_APP} exited {proc.returncode}: "
                               f"{err.decode(errors='replace')[-2000:]}")
        check = check_log_lines(m.logs_dir, LOG_APP, n_lines)
        apps = [a for a in m.jlist() if a.get("name") == LOG_APP]
        env = (apps[0].get("pm2_env") or {}) if apps else {}
        out_path = env.get("pm_out_log_path")
        if out_path and Path(out_path) != m.logs_dir / f"{LOG_APP}-out.log":
            log(f"{m.label}: WARNING: pm_out_log_path is {out_path}, "
                f"expected {m.logs_dir / f'{LOG_APP}-out.log'}")

        def secs(a: int | None, b: int | None) -> float | None:
            return None if a is None or b is None else (b - a) / CLK_TCK
        res = {
            "done": done, "time_s": t_disk, "lines_per_s": n_lines / t_disk if done else None,
            "daemon_cpu_s": secs(cpu0, cpu2),            # until idle (the reported number)
            "daemon_cpu_landed_s": secs(cpu0, cpu1),     # until the last line landed
            "daemon_cpu_after_s": secs(cpu1, cpu2),      # from then until idle
            "idle_wait_s": idle_wait, "idle_reached": idle,
            "lines_counted": last_n, "status_after": env.get("status"),
            "exit_code": env.get("exit_code"), **check,
        }
        rounds.append(res)
        log(f"{m.label}: logs round {r + 1}/{cfg.rounds}: "
            f"{'done' if done else 'INCOMPLETE'} in {t_disk:.3f} s, daemon CPU "
            f"{res['daemon_cpu_s']} s ({res['daemon_cpu_after_s']} s after the last line, "
            f"idle after {idle_wait:.1f} s), lost {check['lost']}, "
            f"dups {check['duplicates']}, out of order {check['out_of_order']}, "
            f"invalid {check['invalid']}, rotated files {check['rotated']}, "
            f"status {res['status_after']}")
        m.run("delete", LOG_APP, check=False)
        remove_app_logs(m, LOG_APP)
        time.sleep(cfg.settle)

    def med(key: str) -> float | None:
        return median([x[key] for x in rounds if x[key] is not None])

    done_rounds = [x for x in rounds if x["done"]]
    t = median([x["time_s"] for x in done_rounds])
    return {
        "time_s": t, "lines_per_s": n_lines / t if t else None,
        "daemon_cpu_s": med("daemon_cpu_s"), "daemon_cpu_after_s": med("daemon_cpu_after_s"),
        "not_idle": sum(not x["idle_reached"] for x in rounds), "lost": med("lost"),
        "lost_max": max(x["lost"] for x in rounds), "duplicates": max(x["duplicates"] for x in rounds),
        "out_of_order": max(x["out_of_order"] for x in rounds),
        "invalid": max(x["invalid"] + x["partial"] for x in rounds),
        "rotated": med("rotated"), "incomplete": len(rounds) - len(done_rounds),
        "rounds": len(rounds), "raw": rounds,
    }


# --------------------------------------------------------------------------------------------
# Cluster scenario: a Node.js HTTP hello world with 2 instances in cluster mode (the manager
# shares one listening port between them), loaded with wrk: requests per second with a new
# connection per request and with keep-alive, the daemon's CPU meanwhile, and the requests that
# fail while `reload` replaces the instances under load.

CLUSTER_APP = "hello"
CLUSTER_INSTANCES = 2
WRK_THREADS = 2
WRK_CONNECTIONS = 50
RELOAD_AT_S = 1.0     # `reload` starts this long after wrk
RELOAD_RUN_S = 6      # length of each wrk run during which the reload happens
DAEMON_CPU_MAX_PCT = 1.0  # "the daemon uses no CPU per request": at most this % of one core
BALANCE_CONNECTIONS = 16  # keep-alive balance: `wrk -c 16`, requests counted per instance
BALANCE_RUN_S = 4
BALANCE_MAX_RATIO = 1.3   # busiest instance's requests / least busy's
CLUSTER_MODES = (
    # key, title, extra wrk arguments
    ("close", "new connection per request (`Connection: close`)", ("-H", "Connection: close")),
    ("keepalive", "keep-alive", ()),
)

CLUSTER_APP_JS = r"""// Kelpie bench: an HTTP hello world on process.env.PORT, unchanged for either manager.
const http = require("http");
const port = Number(process.env.PORT);
if (!port) {
  console.error("PORT is not set");
  process.exit(1);
}
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("hello world\n");
}).listen(port);
"""

# The reload under load, for apps that shut down by themselves: the seed documents' SIGINT
# handler (`server.close()`, then exit), and the same in an Express app (from npm).
SEED_APP_JS = r"""// Kelpie bench: the seed documents' graceful shutdown, on process.env.PORT.
const http = require("http");
const server = http.createServer((req, res) => res.end("hello world\n"));
server.listen(Number(process.env.PORT));
process.on("SIGINT", () => server.close(() => process.exit(0)));
"""
EXPRESS_APP_JS = r"""// Kelpie bench: an Express hello world with the seed's graceful shutdown.
const app = require("express")();
app.get("/", (req, res) => res.send("hello world\n"));
const server = app.listen(Number(process.env.PORT));
process.on("SIGINT", () => server.close(() => process.exit(0)));
"""
EXPRESS_VERSION = "4.21.2"
# The bound: the same hello world run by hand, two Node processes sharing one listening socket
# (Node's cluster module with the primary only binding, SCHED_NONE: no manager, no hand-off).
BOUND_LAUNCHER_JS = r"""const cluster = require("cluster");
cluster.schedulingPolicy = cluster.SCHED_NONE;
cluster.setupPrimary({ exec: process.argv[2] });
for (let i = 0; i < Number(process.argv[3]); i++) cluster.fork();
"""

# wrk processes this run started (stopped by the cleanup if still running).
WRK_PROCS: list[subprocess.Popen] = []


def ensure_wrk() -> tuple[str | None, str]:
    """wrk's path, installing Debian's package `wrk` when it is missing (as root, with apt-get;
    `apt-get update` first if the plain install fails). Else (None, why not)."""
    found = shutil.which("wrk")
    if found:
        return found, ""
    if not shutil.which("apt-get"):
        return None, ("wrk is not installed and there is no apt-get here: install wrk "
                      "(most distributions package it) and run again")
    if os.geteuid() != 0:
        return None, ("wrk is not installed and installing it needs root: "
                      "`sudo apt-get install -y wrk`, then run again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]

    def run(cmd: list[str]) -> bool:
        log("wrk is not installed: " + " ".join(cmd))
        try:
            return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                  stderr=sys.stderr, timeout=600).returncode == 0
        except (OSError, subprocess.TimeoutExpired) as e:
            log(f"{' '.join(cmd)} failed: {e}")
            return False
    if not run(install):
        run(["apt-get", "update"])
        run(install)
    found = shutil.which("wrk")
    if found:
        return found, ""
    return None, "wrk is not installed and `apt-get install -y wrk` failed (see above)"


def wrk_version(wrk: str) -> str:
    try:
        p = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(r"wrk (\S+)", p.stdout + p.stderr)
    return m[1] if m else "?"


_DURATION_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _wrk_ms(s: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", s.strip())
    return float(m[1]) * _DURATION_MS[m[2]] if m else None


WRK_ERROR_KINDS = ("connect", "read", "write", "timeout")


def parse_wrk(out: str) -> dict:
    """The numbers of one wrk run's report: requests, duration, requests/s, latency (average,
    and the distribution's percentiles when run with --latency, in ms), socket errors by kind,
    non-2xx/3xx responses, and failed = socket errors + non-2xx/3xx responses."""
    m = re.search(r"^\s*(\d+) requests in ([\d.]+(?:us|ms|s|m|h)),", out, re.M)
    if not m:
        raise ValueError(f"no request count in wrk's output: {out[-1500:]!r}")
    res: dict = {"requests": int(m[1]), "duration_s": _wrk_ms(m[2]) / 1e3}
    m = re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M)
    res["rps"] = float(m[1]) if m else res["requests"] / res["duration_s"]
    m = re.search(r"^\s*Latency\s+(\S+)", out, re.M)
    res["latency_avg_ms"] = _wrk_ms(m[1]) if m else None
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s*{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        res[f"latency_p{pct}_ms"] = _wrk_ms(m[1]) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = dict(zip(WRK_ERROR_KINDS, map(int, m.groups()))) if m else \
        dict.fromkeys(WRK_ERROR_KINDS, 0)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res.update(errors)
    res["non2xx"] = int(m[1]) if m else 0
    res["failed"] = sum(errors.values()) + res["non2xx"]
    return res


def wrk_argv(wrk: str, port: int, seconds: float, extra: tuple[str, ...],
             connections: int = WRK_CONNECTIONS) -> list[str]:
    return [wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
            *extra, f"http://127.0.0.1:{port}/"]


def requests_per_instance(port: int) -> dict[int, int]:
    """pid -> requests received so far on the established connections to `port` that the
    process holds: the data segments each connection received (one per request from wrk,
    whose requests are small and never pipelined), from `ss -i`. Connections already closed
    are not counted."""
    out = subprocess.run(["ss", "-tnpiH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10, check=False).stdout
    return parse_ss_requests(out)


def parse_ss_requests(out: str) -> dict[int, int]:
    """`ss -tnpiH` output -> pid -> data segments received (see requests_per_instance)."""
    counts: dict[int, int] = {}
    pid = None
    for line in out.splitlines():
        owner = re.search(r"pid=(\d+)", line)
        if owner:
            pid = int(owner.group(1))
            continue
        segs = re.search(r"\bdata_segs_in:(\d+)", line)
        if segs and pid is not None:
            counts[pid] = counts.get(pid, 0) + int(segs.group(1))
            pid = None
    return counts


def keep_alive_balance(wrk: str, port: int) -> dict:
    """Keep-alive clients all connecting at once (`wrk -c 16`): the requests each instance
    received, counted with ss just before wrk ends."""
    proc = start_wrk(wrk_argv(wrk, port, BALANCE_RUN_S, (), BALANCE_CONNECTIONS))
    time.sleep(BALANCE_RUN_S - 0.5)
    per = requests_per_instance(port)
    w = finish_wrk(proc, timeout=BALANCE_RUN_S + 60)
    counts = sorted(per.values(), reverse=True)
    ratio = counts[0] / counts[-1] if len(counts) == CLUSTER_INSTANCES and counts[-1] else None
    return {"rps": w["rps"], "failed": w["failed"], "requests_per_instance": counts,
            "ratio": ratio}


def start_wrk(argv: list[str]) -> subprocess.Popen:
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    WRK_PROCS.append(p)
    return p


def finish_wrk(p: subprocess.Popen, timeout: float) -> dict:
    out, _ = p.communicate(timeout=timeout)
    text = out.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"wrk exited {p.returncode}: {text[-2000:]}")
    res = parse_wrk(text)
    res["output"] = text
    return res


def http_ok(port: int, timeout: float = 1.0) -> bool:
    """One GET / on 127.0.0.1:port (new connection): True on a 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def cluster_pids(m: Manager) -> dict[int, str]:
    """pid -> status of the cluster app's instances."""
    out = {}
    for a in m.jlist():
        if a.get("name") == CLUSTER_APP and isinstance(a.get("pid"), int) and a["pid"] > 0:
            out[a["pid"]] = (a.get("pm2_env") or {}).get("status", "?")
    return out


def wait_cluster_ready(m: Manager, port: int, timeout: float = 30) -> dict[int, str]:
    """Until CLUSTER_INSTANCES instances are online and the port answers 200."""
    deadline = time.monotonic() + timeout
    pids: dict[int, str] = {}
    while time.monotonic() < deadline:
        pids = cluster_pids(m)
        online = [p for p, st in pids.items() if st == "online"]
        if len(online) == CLUSTER_INSTANCES and len(pids) == CLUSTER_INSTANCES and http_ok(port):
            return pids
        time.sleep(0.2)
    raise RuntimeError(f"{m.label}: {CLUSTER_APP} not ready on port {port} within {timeout:.0f} s "
                       f"(instances: {pids})")


def cluster_pids_after_reload(m: Manager, port: int) -> dict[int, str]:
    """The instances once ready again; if they never are, what there is (the round then
    counts as not replaced)."""
    try:
        return wait_cluster_ready(m, port)
    except RuntimeError as e:
        log(str(e))
        return cluster_pids(m)


def cluster_logs_tail(m: Manager, n: int = 40) -> str:
    """The daemon's log and the app's logs, last lines of each (for a report of what failed)."""
    parts = []
    files = [m.home / "kelpie.log", m.home / "pm2.log", *m.logs_dir.glob(f"{CLUSTER_APP}*")]
    for p in sorted(files):
        try:
            lines = p.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            continue
        parts.append(f"--- {p.name} (last {len(lines)} lines)\n" + "\n".join(lines))
    return "\n".join(parts)


def bench_cluster(m: Manager, script: Path, port: int, wrk: str, cfg: argparse.Namespace) -> dict:
    m.app_markers = (*m.app_markers, str(script))
    log(f"{m.label}: cluster: starting daemon")
    m.run("ping", timeout=60)
    dpid = m.daemon_pid()
    log(f"{m.label}: cluster: daemon pid {dpid}")
    time.sleep(cfg.settle)
    args, env = m.cluster_start(script, port)
    log(f"{m.label}: cluster: {' '.join(args)}" + "".join(f" ({k}={v})" for k, v in env.items()))
    m.run(*args, env=env)
    pids = wait_cluster_ready(m, port)
    log(f"{m.label}: cluster: {CLUSTER_INSTANCES} instances online on port {port}: "
        f"{sorted(pids)}")
    # Warm-up (JIT, connection pools), not counted.
    finish_wrk(start_wrk(wrk_argv(wrk, port, 1, ())), timeout=60)
    time.sleep(0.5)

    def cpu_fields(c0: int | None, c1: int | None, wall: float, requests: int) -> dict:
        if c0 is None or c1 is None:
            return {"daemon_cpu_s": None, "daemon_cpu_pct": None, "daemon_cpu_us_per_req": None}
        s = (c1 - c0) / CLK_TCK
        return {"daemon_cpu_s": s, "daemon_cpu_pct": 100 * s / wall if wall > 0 else None,
                "daemon_cpu_us_per_req": s / requests * 1e6 if requests else None}

    runs: dict[str, list[dict]] = {k: [] for k, _, _ in CLUSTER_MODES}
    reloads: dict[str, list[dict]] = {k: [] for k, _, _ in CLUSTER_MODES}
    balance: list[dict] = []
    for r in range(cfg.rounds):
        wait_cluster_ready(m, port)
        b = keep_alive_balance(wrk, port)
        balance.append(b)
        log(f"{m.label}: cluster round {r + 1}/{cfg.rounds}, keep-alive balance (wrk -c "
            f"{BALANCE_CONNECTIONS}): requests per instance {b['requests_per_instance']}, "
            f"busiest / least busy {b['ratio']}")
        time.sleep(0.5)
        for key, _title, extra in CLUSTER_MODES:
            inst = sorted(wait_cluster_ready(m, port))
            i0 = [daemon_cpu_ticks(p) for p in inst]
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped
            c0, t0 = daemon_cpu_ticks(dpid), time.perf_counter()
            w = finish_wrk(start_wrk(wrk_argv(wrk, port, cfg.wrk_seconds, extra)),
                           timeout=cfg.wrk_seconds + 60)
            wall, c1 = time.perf_counter() - t0, daemon_cpu_ticks(dpid)
            i1 = [daemon_cpu_ticks(p) for p in inst]
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            w["wrk_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            w.update(cpu_fields(c0, c1, wall, w["requests"]), wall_s=wall, pids=inst,
                     # Each instance's CPU (utime+stime) over the run, % of one core.
                     instance_cpu_pct=[None if a is None or b is None else
                                       100 * (b - a) / CLK_TCK / wall for a, b in zip(i0, i1)])
            if None not in (w["daemon_cpu_s"], *w["instance_cpu_pct"]) and w["requests"]:
                server_s = w["daemon_cpu_s"] + sum(w["instance_cpu_pct"]) * wall / 100
                w["server_cpu_us_per_req"] = server_s / w["requests"] * 1e6
                # How much of the machine this run got: wrk + daemon + instances, % of all CPUs.
                w["bench_cpu_pct_of_machine"] = \
                    100 * (server_s + w["wrk_cpu_s"]) / (wall * (os.cpu_count() or 1))
            runs[key].append(w)
            log(f"{m.label}: cluster round {r + 1}/{cfg.rounds}, {key}: {w['rps']:,.0f} req/s, "
                f"p99 {w['latency_p99_ms']} ms, daemon CPU {w['daemon_cpu_s']} s "
                f"({w['daemon_cpu_pct']:.1f}% of a core), instances "
                + " + ".join("?" if x is None else f"{x:.0f}%" for x in w["instance_cpu_pct"])
                + f" of a core, failed {w['failed']}")
            time.sleep(0.5)
        for key, _title, extra in CLUSTER_MODES:
            before = wait_cluster_ready(m, port)
            c0, t0 = daemon_cpu_ticks(dpid), time.perf_counter()
            proc = start_wrk(wrk_argv(wrk, port, RELOAD_RUN_S, extra))
            time.sleep(RELOAD_AT_S)
            t_reload = time.perf_counter()
            rp = m.run("reload", CLUSTER_APP, timeout=120, check=False, capture=True)
            reload_s = time.perf_counter() - t_reload
            reload_end = t_reload + reload_s - t0  # seconds after wrk started
            w = finish_wrk(proc, timeout=RELOAD_RUN_S + 60)
            wall, c1 = time.perf_counter() - t0, daemon_cpu_ticks(dpid)
            after = cluster_pids_after_reload(m, port)
            w.update(cpu_fields(c0, c1, wall, w["requests"]), wall_s=wall, reload_s=reload_s,
                     reload_exit=rp.returncode, reload_end_s=reload_end,
                     reload_within_run=reload_end <= RELOAD_RUN_S - 0.5,
                     pids_before=sorted(before), pids_after=sorted(after),
                     replaced=len(after) == CLUSTER_INSTANCES and not set(before) & set(after))
            if rp.returncode != 0:
                w["reload_stderr"] = rp.stderr.decode(errors="replace")[-2000:]
                log(f"{m.label}: `reload {CLUSTER_APP}` exited {rp.returncode}: "
                    f"{w['reload_stderr']}")
            if w["failed"] and isinstance(m, Kelpie):
                log(f"{m.label}: {w['failed']} failed requests during the reload; logs:\n"
                    + cluster_logs_tail(m))
            reloads[key].append(w)
            log(f"{m.label}: cluster round {r + 1}/{cfg.rounds}, reload under {key} load: "
                f"failed {w['failed']} (connect {w['connect']}, read {w['read']}, write "
                f"{w['write']}, timeout {w['timeout']}, non-2xx {w['non2xx']}), reload took "
                f"{reload_s:.2f} s (exit {rp.returncode}), instances replaced: {w['replaced']}"
                + ("" if w["reload_within_run"] else " (WARNING: reload ended after the run)"))
            time.sleep(0.5)
    res = summarize_cluster({"runs": runs, "reloads": reloads, "balance": balance})
    res["graceful"] = reload_graceful_apps(m, script.parent, port, wrk, cfg)
    return res


def express_installed(directory: Path) -> str | None:
    """Install Express from npm into `directory` (once); None, or why it could not be."""
    if (directory / "node_modules" / "express" / "package.json").exists():
        return None
    npm = shutil.which("npm")
    if not npm:
        return "npm not found"
    p = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        str(directory), f"express@{EXPRESS_VERSION}"], capture_output=True,
                       timeout=300, check=False)
    return None if p.returncode == 0 else f"npm install express failed: {p.stderr[-500:]!r}"


def reload_graceful_apps(m: Manager, directory: Path, port: int, wrk: str,
                         cfg: argparse.Namespace) -> dict:
    """For the seed's SIGINT/server.close() app and the same in Express: the failed requests
    of a `reload` under keep-alive and new-connection load at the same time, per round."""
    out: dict = {}
    for kind, js in (("seed", SEED_APP_JS), ("express", EXPRESS_APP_JS)):
        if kind == "express":
            why = express_installed(directory)
            if why:
                log(f"{m.label}: Express reload rounds skipped: {why}")
                out[kind] = {"skipped": why}
                continue
        script = directory / f"{kind}.js"
        script.write_text(js)
        m.app_markers = (*m.app_markers, str(script))
        m.run("delete", CLUSTER_APP, check=False)
        args, env = m.cluster_start(script, port)
        m.run(*args, env=env)
        rounds = []
        for r in range(cfg.rounds):
            before = wait_cluster_ready(m, port)
            half = max(1, WRK_CONNECTIONS // 2)
            procs = [start_wrk(wrk_argv(wrk, port, RELOAD_RUN_S, extra, half))
                     for _key, _title, extra in CLUSTER_MODES]
            time.sleep(RELOAD_AT_S)
            rp = m.run("reload", CLUSTER_APP, timeout=120, check=False, capture=True)
            results = [finish_wrk(p, timeout=RELOAD_RUN_S + 60) for p in procs]
            after = cluster_pids_after_reload(m, port)
            row = {"failed": [w["failed"] for w in results], "reload_exit": rp.returncode,
                   "replaced": len(after) == CLUSTER_INSTANCES and not set(before) & set(after)}
            rounds.append(row)
            log(f"{m.label}: {kind} app, round {r + 1}/{cfg.rounds}, reload under mixed load: "
                f"failed {row['failed']} (new connection, keep-alive), exit {rp.returncode}, "
                f"replaced: {row['replaced']}")
            time.sleep(0.5)
        out[kind] = {"rounds": rounds,
                     "failed_max": max((sum(x["failed"]) for x in rounds), default=None),
                     "replaced": sum(x["replaced"] and x["reload_exit"] == 0 for x in rounds)}
    return out


def bench_bound(script: Path, port: int, wrk: str, cfg: argparse.Namespace) -> dict:
    """The hello world run by hand: CLUSTER_INSTANCES Node processes sharing one socket, no
    manager. Requests/s per load kind, median of the rounds."""
    launcher = script.parent / "bound-launcher.js"
    launcher.write_text(BOUND_LAUNCHER_JS)
    env = dict(os.environ, PORT=str(port))
    proc = subprocess.Popen(["node", str(launcher), str(script), str(CLUSTER_INSTANCES)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not http_ok(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        finish_wrk(start_wrk(wrk_argv(wrk, port, 1, ())), timeout=60)  # warm-up
        rps: dict[str, list[float]] = {key: [] for key, _t, _e in CLUSTER_MODES}
        for _r in range(cfg.rounds):
            for key, _title, extra in CLUSTER_MODES:
                w = finish_wrk(start_wrk(wrk_argv(wrk, port, cfg.wrk_seconds, extra)),
                               timeout=cfg.wrk_seconds + 60)
                rps[key].append(w["rps"])
                time.sleep(0.5)
        log(f"by hand (no manager): requests/s {rps}")
        return {f"rps_{key}": median(v) for key, v in rps.items()} | {"raw": rps}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def summarize_cluster(raw: dict) -> dict:
    """Medians (and worst rounds) of the cluster runs; raw as bench_cluster collects it."""
    res: dict = {}
    for key, _t, _e in CLUSTER_MODES:
        runs = raw["runs"][key]
        rel = raw["reloads"][key]

        def med(rows: list[dict], k: str) -> float | None:
            return median([x[k] for x in rows if x.get(k) is not None])
        for k in ("rps", "latency_p50_ms", "latency_p99_ms", "daemon_cpu_s", "daemon_cpu_pct",
                  "daemon_cpu_us_per_req", "server_cpu_us_per_req", "wrk_cpu_s",
                  "bench_cpu_pct_of_machine"):
            res[f"{k}_{key}"] = med(runs, k)
        res[f"failed_{key}_max"] = max((x["failed"] for x in runs), default=None)
        # Instances' CPU, busiest first in each run, median per rank over the runs.
        ranked = [sorted(x["instance_cpu_pct"], reverse=True) for x in runs
                  if x.get("instance_cpu_pct") and None not in x["instance_cpu_pct"]]
        res[f"instance_cpu_pct_{key}"] = [median([x[i] for x in ranked if len(x) > i])
                                          for i in range(max(map(len, ranked), default=0))]
        res[f"reload_failed_{key}"] = med(rel, "failed")
        worst = max(rel, key=lambda x: x["failed"], default=None)
        res[f"reload_failed_{key}_max"] = worst and worst["failed"]
        res[f"reload_failed_{key}_worst"] = worst and {k: worst[k] for k in (*WRK_ERROR_KINDS,
                                                                             "non2xx")}
        res[f"reload_s_{key}"] = med(rel, "reload_s")
        res[f"reload_rps_{key}"] = med(rel, "rps")
    balance = raw.get("balance") or []
    ratios = [x["ratio"] for x in balance if x.get("ratio") is not None]
    res["balance_ratio"] = median(ratios) if ratios else None
    res["balance_ratio_max"] = max(ratios, default=None)
    res["balance_rounds"] = len(balance)
    rel_all = [x for key, _t, _e in CLUSTER_MODES for x in raw["reloads"][key]]
    res["reload_s"] = median([x["reload_s"] for x in rel_all])
    res["reloads"] = len(rel_all)
    res["reloads_replaced"] = sum(bool(x.get("replaced")) for x in rel_all)
    res["reloads_ok"] = sum(x.get("reload_exit") == 0 for x in rel_all)
    res["reloads_late"] = sum(not x.get("reload_within_run", True) for x in rel_all)
    # The raw samples without wrk's full output (kept in the report only when something failed).
    strip = lambda x: {k: v for k, v in x.items() if k != "output" or x.get("failed")}  # noqa: E731
    res["raw"] = {part: {k: [strip(x) for x in v] for k, v in raw[part].items()}
                  for part in ("runs", "reloads")}
    res["raw"]["balance"] = balance
    return res


# --------------------------------------------------------------------------------------------
# Health scenario: (1) the daemon's CPU while N idle apps run and nobody calls the CLI (Kelpie
# samples every app's whole process tree from /proc every second; PM2 runs pidusage on each
# app's main pid every 30 s), with its RSS; (2) the time from an app crossing its
# max_memory_restart to its restart, the app's main process allocating, or its child.

HEALTH_APP = "mem"
HEALTH_LIMIT_MIB = 100
HEALTH_LIMIT = f"{HEALTH_LIMIT_MIB}M"  # --max-memory-restart, both managers (M = MiB for both)
HEALTH_ALLOC_MB = 200          # what the app (or its child) allocates and touches
HEALTH_ALLOC_AFTER_MS = 2000   # ... this long after it started
HEALTH_CAP_S = 40.0            # a round gives up this long after the allocation completed
HEALTH_CPU_TARGET_PCT = 2.0    # Kelpie's daemon while sampling N idle apps: % of one core
HEALTH_RESTART_TARGET_S = 1.5  # Kelpie: crossing the limit to the restart, every round
HEALTH_VARIANTS = (
    # key, title
    ("main", f"the app's main process allocates {HEALTH_ALLOC_MB} MB"),
    ("child", f"a child of the app allocates {HEALTH_ALLOC_MB} MB (the main process stays small)"),
)
PM2_MEMORY_LOG_LINE = "exceeds --max-memory-restart"  # PM2's worker logs this when it restarts


def parse_health_stamps(text: str) -> tuple[list[tuple[int, int]], list[tuple[str, int, int]]]:
    """The lines `fake-app --stamp FILE --allocate MB --stamp-over MIB` writes: start stamps
    `<pid> <ns>` and allocation stamps `allocating|over|allocated <pid> <ns>` (also written by a
    child of --child-allocate). Returns (starts, allocations), in file order; other lines are
    skipped."""
    starts: list[tuple[int, int]] = []
    allocs: list[tuple[str, int, int]] = []
    for line in text.splitlines():
        parts = line.split()
        try:
            if len(parts) == 2:
                starts.append((int(parts[0]), int(parts[1])))
            elif len(parts) == 3 and parts[0] in ("allocating", "over", "allocated"):
                allocs.append((parts[0], int(parts[1]), int(parts[2])))
        except ValueError:
            pass
    return starts, allocs


def restart_after_allocation(starts: list[tuple[int, int]],
                             allocs: list[tuple[str, int, int]]) -> dict:
    """What one round's stamps say: the first process; the first allocation (`allocating`, then
    `over` when the allocating process went over the limit, `allocated` when it finished: it may
    be killed before); the restart, i.e. the first start of another pid after the allocation
    began; and the times between them in ms (None when not there yet). The latency runs from
    `over` (from `allocating`, an upper bound, if the process was restarted before it saw itself
    over the limit: `crossing` says which)."""
    res: dict = {"pid": starts[0][0] if starts else None, "alloc_pid": None,
                 "allocating_ns": None, "over_ns": None, "allocated_ns": None,
                 "over_after_ms": None, "alloc_ms": None, "new_pid": None, "restart_ns": None,
                 "restart_ms": None, "crossing": None, "cut_short": None}
    for kind, pid, ns in allocs:
        if kind == "allocating":
            if res["allocating_ns"] is None:
                res["alloc_pid"], res["allocating_ns"] = pid, ns
        elif pid == res["alloc_pid"] and res[f"{kind}_ns"] is None:
            res[f"{kind}_ns"] = ns
    a = res["allocating_ns"]
    if a is None or res["pid"] is None:
        return res
    if res["over_ns"] is not None:
        res["over_after_ms"] = (res["over_ns"] - a) / 1e6
    if res["allocated_ns"] is not None:
        res["alloc_ms"] = (res["allocated_ns"] - a) / 1e6
    for pid, ns in starts[1:]:
        if pid != res["pid"] and ns >= a:
            res["new_pid"], res["restart_ns"] = pid, ns
            break
    if res["restart_ns"] is not None:
        r = res["restart_ns"]
        res["crossing"] = "over" if res["over_ns"] is not None and res["over_ns"] <= r \
            else "allocating"
        res["restart_ms"] = (r - res[f"{res['crossing']}_ns"]) / 1e6
        res["cut_short"] = res["allocated_ns"] is None or res["allocated_ns"] > r
        if res["cut_short"]:
            res["alloc_ms"] = None  # a later process's, or none
    return res


def thread_ticks(pid: int) -> dict[tuple[int, str], int]:
    """utime + stime of each live thread of pid, in clock ticks: (tid, thread name) -> ticks."""
    out: dict[tuple[int, str], int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
            name = s[s.index("(") + 1:s.rindex(")")]
            fields = s[s.rindex(")") + 1:].split()
            out[(int(tid), name)] = int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return out


def threads_pct(before: dict[tuple[int, str], int], after: dict[tuple[int, str], int],
                total_ticks: int, wall: float) -> dict[str, float]:
    """CPU of the daemon's threads between two thread_ticks() readings, by thread name, in % of
    one core over wall seconds; threads that ended meanwhile (in the process's total, no longer
    listed), and the difference between the process's ticks and its threads' (each rounded on its
    own) are under "(rest: ended threads, rounding)"."""
    by_name: dict[str, int] = {}
    for key, ticks in after.items():
        d = ticks - before.get(key, 0)
        if d > 0:
            by_name[key[1]] = by_name.get(key[1], 0) + d
    rest = total_ticks - sum(by_name.values())
    if rest > 0:
        by_name["(rest: ended threads, rounding)"] = rest
    return {k: 100 * v / CLK_TCK / wall for k, v in
            sorted(by_name.items(), key=lambda kv: -kv[1])} if wall > 0 else {}


def apps_summary(m: Manager) -> tuple[dict[str, int], int]:
    """Status counts of all apps and their restarts (sum of restart_time), from one jlist."""
    counts: dict[str, int] = {}
    restarts = 0
    for app in m.jlist():
        env = app.get("pm2_env") or {}
        st = env.get("status", "?")
        counts[st] = counts.get(st, 0) + 1
        if isinstance(env.get("restart_time"), int):
            restarts += env["restart_time"]
    return counts, restarts


def cpu_window(m: Manager, dpid: int, seconds: float) -> dict:
    """The daemon's CPU over `seconds` of wall time in which this script does nothing (so
    nobody calls the CLI): utime + stime of the process (all its threads) in CPU seconds and in
    % of one core, by thread name too, and the number of processes on the machine."""
    procs = sum(1 for d in os.listdir("/proc") if d.isdigit())
    c0, th0, t0 = daemon_cpu_ticks(dpid), thread_ticks(dpid), time.perf_counter()
    time.sleep(seconds)
    c1, th1, t1 = daemon_cpu_ticks(dpid), thread_ticks(dpid), time.perf_counter()
    if c0 is None or c1 is None:
        raise RuntimeError(f"{m.label}: daemon {dpid} gone during the CPU window")
    wall = t1 - t0
    return {"cpu_s": (c1 - c0) / CLK_TCK, "wall_s": wall,
            "pct": 100 * (c1 - c0) / CLK_TCK / wall,
            "threads_pct": threads_pct(th0, th1, c1 - c0, wall),
            "processes_on_machine": procs}


def bench_health_cpu(m: Manager, n_apps: int, cfg: argparse.Namespace) -> dict:
    """The daemon's CPU while n_apps idle apps run and nobody calls the CLI: cfg.rounds windows
    of cfg.cpu_window s back to back, after all are online and cfg.health_settle s; then its
    RSS."""
    write_ecosystems(m, n_apps)
    eco = m.workdir / "ecosystem.json"
    log(f"{m.label}: health: starting daemon")
    m.run("ping", timeout=60)
    dpid = m.daemon_pid()
    log(f"{m.label}: health: daemon pid {dpid}")
    if dpid is None:
        raise RuntimeError(f"{m.label}: no daemon pid file")
    time.sleep(cfg.settle)
    log(f"{m.label}: health: start {n_apps} apps from {eco.name}")
    start_s = m.timed("start", str(eco), timeout=900)
    if not m.wait_status("online", n_apps, timeout=600):
        raise RuntimeError(f"{m.label}: not all {n_apps} apps online")
    counts0, restarts0 = apps_summary(m)  # also records every app's pid for the cleanup
    log(f"{m.label}: health: start took {start_s:.2f} s; all {n_apps} online; settling "
        f"{cfg.health_settle:g} s, then {cfg.rounds} window(s) of {cfg.cpu_window:g} s with "
        f"nobody calling the CLI")
    time.sleep(cfg.health_settle)
    windows = []
    for r in range(cfg.rounds):
        w = cpu_window(m, dpid, cfg.cpu_window)
        windows.append(w)
        log(f"{m.label}: health: window {r + 1}/{cfg.rounds}: daemon CPU {w['cpu_s']:.2f} s "
            f"over {w['wall_s']:.1f} s = {w['pct']:.2f}% of a core; by thread: "
            + ", ".join(f"{k} {v:.2f}%" for k, v in list(w["threads_pct"].items())[:4]))
    # The same with many unrelated processes on the machine: what the daemon does must not
    # grow with them.
    crowded = None
    if cfg.unrelated:
        with unrelated_processes(cfg.unrelated, m.workdir):
            time.sleep(cfg.health_settle)
            crowded = cpu_window(m, dpid, cfg.cpu_window)
        log(f"{m.label}: health: with {cfg.unrelated} unrelated processes: daemon CPU "
            f"{crowded['pct']:.2f}% of a core ({crowded['processes_on_machine']} processes)")
    rss = sample_rss(m, cfg.rss_samples, 0.2)
    counts1, restarts1 = apps_summary(m)
    log(f"{m.label}: health: daemon RSS {rss} MB with {n_apps} apps; apps after: {counts1}, "
        f"restarts during the windows: {restarts1 - restarts0}")
    # Median per thread name over the windows (0 in a window where it did not show).
    names = {k for w in windows for k in w["threads_pct"]}
    thr = {k: median([w["threads_pct"].get(k, 0.0) for w in windows]) for k in names}
    return {
        "apps": n_apps, "start_s": start_s,
        "cpu_pct": median([w["pct"] for w in windows]),
        "cpu_pct_min": min(w["pct"] for w in windows),
        "cpu_pct_max": max(w["pct"] for w in windows),
        "windows": len(windows), "window_s": cfg.cpu_window,
        "threads_pct": dict(sorted(thr.items(), key=lambda kv: -kv[1])),
        "rss_mb": rss, "status_after": counts1, "restarts_during": restarts1 - restarts0,
        "processes_on_machine": median([w["processes_on_machine"] for w in windows]),
        "crowded_pct": None if crowded is None else crowded["pct"],
        "unrelated": cfg.unrelated,
        "crowded_processes": None if crowded is None else crowded["processes_on_machine"],
        "raw": {"windows": windows, "status_before": counts0, "start_s": start_s,
                "crowded": crowded},
    }


@contextlib.contextmanager
def unrelated_processes(n: int, workdir: Path):
    """`n` idle processes that no manager knows (`sleep`), killed on the way out."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    marker = str(workdir / "unrelated")
    pids: list[int] = []
    try:
        for _ in range(n):
            pids.append(os.posix_spawn(sleep, [sleep, "3600"], {"KELPIE_BENCH": marker}))
        yield pids
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def pm2_memory_restarts_logged(m: Manager) -> int:
    """How many times PM2's worker logged a restart for max_memory_restart (in pm2.log)."""
    try:
        return (m.home / "pm2.log").read_text(errors="replace").count(PM2_MEMORY_LOG_LINE)
    except OSError:
        return 0


def read_text_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def memory_restart_round(m: Manager, variant: str, delay: float, r: int) -> dict:
    """One round: start the app with --max-memory-restart, wait for its (or its child's)
    allocation, then for the next start of the app (a new pid); HEALTH_CAP_S at most after the
    allocation completed. Starts after `delay` s, so that the crossing falls anywhere in the
    manager's checking period."""
    stamp = m.workdir / f"{HEALTH_APP}-{variant}-{r}.stamp"
    children = m.workdir / f"{HEALTH_APP}-{variant}-{r}.children"
    m.run("delete", HEALTH_APP, check=False)
    time.sleep(delay)
    app_args = ["--stamp", str(stamp), "--allocate-after", str(HEALTH_ALLOC_AFTER_MS),
                "--stamp-over", str(HEALTH_LIMIT_MIB)]
    if variant == "child":
        app_args += ["--spawn-children", "1", "--children-file", str(children),
                     "--child-allocate", str(HEALTH_ALLOC_MB)]
    else:
        app_args += ["--allocate", str(HEALTH_ALLOC_MB)]
    logged0 = pm2_memory_restarts_logged(m)
    m.run("start", str(FAKE_APP), "--name", HEALTH_APP, "--interpreter", "none",
          "--max-memory-restart", HEALTH_LIMIT, "--", *app_args)
    t_start = time.monotonic()
    child_pids: list[int] = []
    res: dict = {}
    while True:
        try:
            text = stamp.read_text()
        except OSError:
            text = ""
        starts, allocs = parse_health_stamps(text)
        m.app_pids.update(p for p, _ in starts)
        if variant == "child" and not child_pids:
            child_pids = [int(x) for x in read_text_or_empty(children).split() if x.isdigit()]
            m.app_pids.update(child_pids)
        res = restart_after_allocation(starts, allocs)
        if res["restart_ns"] is not None:
            break
        if res["over_ns"] is None:
            if time.monotonic() - t_start > 20 + HEALTH_ALLOC_AFTER_MS / 1e3:
                raise RuntimeError(f"{m.label}: the {variant} variant's app never went over "
                                   f"{HEALTH_LIMIT_MIB} MiB (stamps: {text[:1000]!r})")
        elif time.time_ns() - res["over_ns"] > HEALTH_CAP_S * 1e9:
            break
        time.sleep(0.02)
    res.update(variant=variant, delay_s=delay, restarted=res["restart_ns"] is not None,
               child_pids=child_pids)
    if res["restarted"]:
        m.app_pids.add(res["new_pid"])
    # Why it restarted: Kelpie records the cause of each exit (in `describe --json`, as jlist
    # keeps PM2's shape); PM2's worker logs a line.
    app = next((a for a in m.jlist() if a.get("name") == HEALTH_APP), None)
    env = (app or {}).get("pm2_env") or {}
    exits = kelpie_exits(m, HEALTH_APP) if isinstance(m, Kelpie) else None
    if isinstance(exits, list):
        res["causes"] = [e.get("cause") for e in exits if isinstance(e, dict)]
        res["memory_cause"] = bool(res["causes"]) and res["causes"][0] == "memory"
    else:
        res["memory_cause"] = pm2_memory_restarts_logged(m) > logged0
    res["restart_time"] = env.get("restart_time")
    if variant == "child" and res["restarted"]:
        # The old child goes with its tree (Kelpie stops the whole process group).
        deadline = time.monotonic() + 3
        while any(pid_alive(p) for p in child_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        res["old_child_gone"] = not any(pid_alive(p) for p in child_pids)
    m.run("delete", HEALTH_APP, check=False)
    return res


def bench_health_memory(m: Manager, rounds: dict[str, int], period_s: float,
                        cfg: argparse.Namespace) -> dict:
    """Memory limit to restart, per variant (rounds: variant -> number of rounds, 0 to skip).
    Each round first waits a random time in [0, period_s) (the manager's checking period)."""
    log(f"{m.label}: health (memory): starting daemon")
    m.run("ping", timeout=60)
    log(f"{m.label}: health (memory): daemon pid {m.daemon_pid()}")
    time.sleep(cfg.settle)
    rng = random.Random()
    out: dict = {}
    for variant, _title in HEALTH_VARIANTS:
        rows = []
        for r in range(rounds.get(variant, 0)):
            delay = rng.uniform(0, period_s)
            x = memory_restart_round(m, variant, delay, r)
            rows.append(x)
            if x["restarted"]:
                how = (f"allocation took {x['alloc_ms']:.0f} ms" if not x["cut_short"] else
                       "restarted before its allocation ended")
                log(f"{m.label}: memory ({variant}) round {r + 1}/{rounds[variant]}: restarted "
                    f"{x['restart_ms']:.0f} ms after going over the limit (from `"
                    f"{x['crossing']}`; over "
                    f"{'?' if x['over_after_ms'] is None else round(x['over_after_ms'])} ms into "
                    f"the allocation, {how}; "
                    f"started after {delay:.2f} s), cause memory: {x['memory_cause']}"
                    + (f", old child gone: {x.get('old_child_gone')}" if variant == "child"
                       else ""))
            else:
                log(f"{m.label}: memory ({variant}) round {r + 1}/{rounds[variant]}: NOT "
                    f"restarted within {HEALTH_CAP_S:.0f} s of going over the limit")
        out[variant] = rows
    return summarize_health_memory(out)


def summarize_health_memory(raw: dict[str, list[dict]]) -> dict:
    res: dict = {}
    for variant, _title in HEALTH_VARIANTS:
        rows = raw.get(variant) or []
        done = [x for x in rows if x.get("restarted")]
        lat = [x["restart_ms"] for x in done]
        res[variant] = {
            "rounds": len(rows), "restarted": len(done),
            "restart_ms": median(lat), "restart_ms_min": min(lat, default=None),
            "restart_ms_max": max(lat, default=None),
            "alloc_ms": median([x["alloc_ms"] for x in rows if x.get("alloc_ms") is not None]),
            "over_after_ms": median([x["over_after_ms"] for x in rows
                                     if x.get("over_after_ms") is not None]),
            "cut_short": sum(bool(x.get("cut_short")) for x in done),
            "from_allocating": sum(x.get("crossing") == "allocating" for x in done),
            "memory_cause": sum(bool(x.get("memory_cause")) for x in done),
            "old_child_gone": sum(bool(x.get("old_child_gone")) for x in done)
            if variant == "child" else None,
        }
    res["raw"] = raw
    return res


# --------------------------------------------------------------------------------------------
# Runtime scenario: `kelpie runtime` vs `pm2-runtime`, each as PID 1 of its own pid namespace


RUNTIME_APPS = 10
RUNTIME_ORPHANS = 5            # orphans each app of the zombie variant leaves
RUNTIME_ORPHAN_LIFE_MS = 200   # ... which exit this long after they were born
RUNTIME_ZOMBIE_WAIT_S = 3.0    # after all apps run, before the zombies are counted
RUNTIME_SETTLE_S = 1.0         # after all apps run, before the RSS and the SIGTERM
RUNTIME_START_CAP_S = 60.0     # a round gives up when the apps are not all running by then
RUNTIME_STOP_CAP_S = 60.0      # ... or when the runtime has not exited this long after SIGTERM
RUNTIME_BINARY_TARGET_MB = 15  # the issue's target for the static binary (MiB)
RUNTIME_VARIANTS = (
    ("stop", "apps that exit at once on SIGINT/SIGTERM"),
    ("orphans", f"apps that each leave {RUNTIME_ORPHANS} orphans (double fork)"),
)
STATIC_TRIPLE = f"{platform.machine()}-unknown-linux-gnu"
STATIC_DIR = REPO / "target" / "static" / STATIC_TRIPLE / "release"
KELPIE_STATIC = STATIC_DIR / "kelpie"
FAKE_STATIC = STATIC_DIR / "fake-app"
RUNTIME_RUNS: list["RuntimeRun"] = []  # every runtime started, for the cleanup


def build_static() -> None:
    """kelpie and fake-app linked statically, as crates/kelpie-cli/tests/cli/image.rs builds them
    (same command, same target dir: whichever runs second finds them up to date). glibc with
    crt-static: the Dockerfile's musl target is not installed on these machines."""
    log(f"building static kelpie and fake-app (release, {STATIC_TRIPLE}, crt-static, "
        f"target/static)")
    env = {**os.environ, "CARGO_TARGET_DIR": str(REPO / "target" / "static"),
           "RUSTFLAGS": "-C target-feature=+crt-static"}
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    subprocess.run(["cargo", "build", "--release", "--locked", "--target", STATIC_TRIPLE,
                    "-p", "kelpie-cli", "-p", "kelpie-testkit"],
                   cwd=REPO, check=True, stdout=sys.stderr, env=env)
    for b in (KELPIE_STATIC, FAKE_STATIC):
        if not b.exists():
            sys.exit(f"missing binary after build: {b}")


def unshare_permitted() -> tuple[bool, str]:
    try:
        r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"unshare: {e}"
    if r.returncode != 0:
        return False, ("`unshare --pid --fork --mount-proc` is not permitted here: "
                       + r.stderr.decode(errors="replace").strip())
    return True, ""


def parse_proc_stat(text: str) -> tuple[str, int]:
    """(state, ppid) from the text of /proc/<pid>/stat (the command may hold spaces and
    parentheses: the fields start after the last ')')."""
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, command line) of every process, from /proc."""
    table = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            state, ppid = parse_proc_stat((d / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        table[int(d.name)] = (ppid, state, cmdline(int(d.name)))
    return table


def tree_below(table: dict[int, tuple[int, str, str]], root: int) -> list[int]:
    """Every pid below root in table (its children, their children...)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _s, _c) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def is_runtime_app(command: str, app: str) -> bool:
    """An app process of the scenario (fake-app started by the runtime), not one of the orphans
    its `--orphans` starts (`--orphan-parent`, then `--quiet --exit-after`)."""
    return app in command and "--orphan-parent" not in command and "--exit-after" not in command


def runtime_ecosystem(n: int, app: str, args: list[str]) -> dict:
    """The ecosystem file both runtimes read: n copies of app, run directly."""
    return {"apps": [{"name": f"app{i}", "script": app, "interpreter": "none", "args": args,
                      "autorestart": True} for i in range(n)]}


def dir_footprint(path: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files under path: their sizes, each inode once, symlinks
    not followed (what the directory adds to an image layer)."""
    seen: set[tuple[int, int]] = set()
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
            files += 1
    return total, files


def kelpie_exits(m: "Kelpie", name: str) -> list | None:
    """The exits Kelpie recorded for the first instance of `name` (`describe NAME --json`),
    None if it cannot say."""
    p = m.run("describe", name, "--json", check=False, capture=True)
    try:
        described = json.loads(p.stdout)
        exits = described[0]["pm2_env"]["exits"]
    except (json.JSONDecodeError, TypeError, KeyError, IndexError):
        return None
    return exits if isinstance(exits, list) else None


def describe_binary(path: Path) -> str:
    """`file`'s description of path (linking, stripped), or "" without `file`."""
    try:
        out = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    keep = [p.strip() for p in out.split(",")
            if any(k in p for k in ("linked", "stripped", "pie executable"))]
    return ", ".join(keep)


class RuntimeRun:
    """One runtime as PID 1 of a new pid namespace: `unshare --pid --fork --mount-proc argv`,
    output to a file. PID 1's host pid is unshare's child; killing it kills the namespace
    (`--kill-child`: also when unshare itself is killed first)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, out: Path):
        self.out_path = out
        self._out = open(out, "wb")
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child",
                                      "--mount-proc", *argv],
                                     env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        self.started = time.perf_counter()
        self.pid1: int | None = None
        RUNTIME_RUNS.append(self)

    def find_pid1(self, table: dict[int, tuple[int, str, str]]) -> int | None:
        if self.pid1 is None:
            self.pid1 = next((p for p, (pp, _s, _c) in table.items() if pp == self.proc.pid),
                             None)
        return self.pid1

    def output(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.find_pid1(process_table())
            if self.pid1 is not None and _ppid_of(self.pid1) == self.proc.pid:
                kill9(self.pid1)  # the namespace's init: every process in it dies too
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def _ppid_of(pid: int) -> int | None:
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())[1]
    except (OSError, IndexError, ValueError):
        return None


def runtime_round(label: str, argv: list[str], env: dict[str, str], workdir: Path,
                  variant: str, r: int, app: str) -> dict:
    """One round: start the runtime, wait until its RUNTIME_APPS apps run, then (orphans) wait
    and count the namespace's zombies, read PID 1's RSS, SIGTERM it and time its exit."""
    run = RuntimeRun(argv, env, workdir, workdir / f"{label}-{variant}-{r}.out")
    res: dict = {"round": r}
    try:
        deadline = run.started + RUNTIME_START_CAP_S
        apps: list[int] = []
        while time.perf_counter() < deadline and run.proc.poll() is None:
            table = process_table()
            pid1 = run.find_pid1(table)
            if pid1 is not None:
                apps = [p for p in tree_below(table, pid1)
                        if table[p][1] != "Z" and is_runtime_app(table[p][2], app)]
                if len(apps) >= RUNTIME_APPS:
                    break
            time.sleep(0.01)
        res["start_s"] = time.perf_counter() - run.started
        if len(apps) < RUNTIME_APPS:
            res["error"] = (f"{len(apps)} of {RUNTIME_APPS} apps running after "
                            f"{res['start_s']:.1f} s (exit {run.proc.poll()}):\n"
                            + run.output()[-2000:])
            log(f"{label} {variant} round {r}: {res['error']}")
            return res
        if variant == "orphans":
            time.sleep(RUNTIME_ZOMBIE_WAIT_S)
            table = process_table()
            below = tree_below(table, run.pid1)
            res["zombies"] = sum(1 for p in below if table[p][1] == "Z")
            res["processes"] = len(below)
            # Each app prints `orphans N spawned` once its N double forks are done.
            res["orphans_spawned"] = (run.output().count(f"orphans {RUNTIME_ORPHANS} spawned")
                                      * RUNTIME_ORPHANS)
        else:
            time.sleep(RUNTIME_SETTLE_S)
        res["pid1_rss_mb"] = read_rss_mb(run.pid1)
        t0 = time.perf_counter()
        os.kill(run.pid1, signal.SIGTERM)
        try:
            run.proc.wait(timeout=RUNTIME_STOP_CAP_S)
            res["stop_s"] = time.perf_counter() - t0
            res["exit_code"] = run.proc.returncode
        except subprocess.TimeoutExpired:
            res["stop_s"] = None
            res["error"] = f"still running {RUNTIME_STOP_CAP_S:.0f} s after SIGTERM"
        return res
    finally:
        run.kill()
        if run in RUNTIME_RUNS:
            RUNTIME_RUNS.remove(run)


def bench_runtime(pm2_runtime: Path | None, tmp: Path, cfg: argparse.Namespace) -> dict:
    """Both runtimes, round by round in turn (PM2 then Kelpie in each round, so that noise on
    the machine falls on both alike), per variant; and the sizes."""
    work = tmp / "runtime"
    work.mkdir(parents=True, exist_ok=True)
    app = str(FAKE_STATIC)
    ecos = {}
    for variant, _title in RUNTIME_VARIANTS:
        args = ([] if variant == "stop" else
                ["--orphans", str(RUNTIME_ORPHANS), "--orphan-life", str(RUNTIME_ORPHAN_LIFE_MS)])
        ecos[variant] = work / f"ecosystem-{variant}.json"
        ecos[variant].write_text(json.dumps(runtime_ecosystem(RUNTIME_APPS, app, args), indent=1))
    raw: dict[str, dict[str, list[dict]]] = {"pm2": {}, "kelpie": {}}
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PM2_", "KELPIE_"))}
    for variant, _title in RUNTIME_VARIANTS:
        for r in range(cfg.runtime_rounds):
            for label in (("pm2", "kelpie") if pm2_runtime else ("kelpie",)):
                home = work / f"{label}-home-{variant}-{r}"
                home.mkdir()
                if label == "pm2":
                    argv = [str(pm2_runtime), str(ecos[variant])]
                    env = {**base_env, "PM2_HOME": str(home), "HOME": str(home),
                           "PM2_DISABLE_VERSION_CHECK": "1"}
                else:
                    argv = [str(KELPIE_STATIC), "runtime", str(ecos[variant])]
                    env = {**base_env, "KELPIE_HOME": str(home)}
                log(f"runtime: {label}, {variant}, round {r + 1}/{cfg.runtime_rounds}")
                raw[label].setdefault(variant, []).append(
                    runtime_round(label, argv, env, work, variant, r, app))
    node = shutil.which("node")
    sizes = {"kelpie_bytes": KELPIE_STATIC.stat().st_size,
             "kelpie_file": describe_binary(KELPIE_STATIC),
             "node_bytes": Path(node).resolve().stat().st_size if node else None}
    if pm2_runtime:
        modules = pm2_runtime.parent.parent  # <prefix>/node_modules/.bin/pm2-runtime
        sizes["pm2_modules_bytes"], sizes["pm2_modules_files"] = dir_footprint(modules)
    return {"raw": raw, "sizes": sizes,
            "pm2": summarize_runtime(raw["pm2"]) if pm2_runtime else None,
            "kelpie": summarize_runtime(raw["kelpie"])}


def summarize_runtime(raw: dict[str, list[dict]]) -> dict:
    """Medians (and extremes) over the rounds of each variant."""
    out: dict = {}
    for variant, _title in RUNTIME_VARIANTS:
        rounds = raw.get(variant) or []
        ok = [x for x in rounds if x.get("stop_s") is not None]
        stops = [x["stop_s"] for x in ok]
        d = {"rounds": len(rounds), "ok": len(ok),
             "stop_s": median(stops), "stop_s_min": min(stops, default=None),
             "stop_s_max": max(stops, default=None),
             "start_s": median([x["start_s"] for x in ok]),
             "rss_mb": median([x["pid1_rss_mb"] for x in ok if x.get("pid1_rss_mb") is not None]),
             "exit_0": sum(1 for x in ok if x.get("exit_code") == 0),
             "exit_codes": sorted({x.get("exit_code") for x in ok if x.get("exit_code") != 0},
                                  key=str)}
        if variant == "orphans":
            zs = [x["zombies"] for x in rounds if "zombies" in x]
            d["zombies"] = median(zs)
            d["zombies_max"] = max(zs, default=None)
            d["orphans_spawned"] = median([x.get("orphans_spawned", 0) for x in rounds
                                           if "zombies" in x])
        out[variant] = d
    return out


def build_runtime_table(pm2: dict | None, kel: dict, sizes: dict) -> str:
    """The runtime scenario's rows. pm2/kel: summarize_runtime() (pm2 None with --kelpie-only)."""
    p = pm2 or {}
    mib = 1024 * 1024

    def verdict(ok: bool | None) -> str:
        return "" if ok is None else (" (met)" if ok else " (missed)")

    def stop(d: dict) -> str:
        if not d or not d.get("ok"):
            return "n/a"
        s = f"{d['stop_s'] * 1e3:.0f} ms"
        if d["ok"] > 1:
            s += f" ({d['stop_s_min'] * 1e3:.0f}–{d['stop_s_max'] * 1e3:.0f})"
        if d["ok"] < d["rounds"]:
            s += f", {d['rounds'] - d['ok']} round(s) failed"
        return s

    def exits(d: dict) -> str:
        if not d or not d.get("ok"):
            return "n/a"
        s = f"0 in {d['exit_0']} of {d['ok']}"
        if d["exit_codes"]:
            s += " (else " + ", ".join(str(c) for c in d["exit_codes"]) + ")"
        return s

    def zombies(d: dict) -> str:
        if not d or d.get("zombies") is None:
            return "n/a"
        return f"{d['zombies']:.0f} (worst {d['zombies_max']})"

    def val(d: dict, key: str, unit: str = "", scale: float = 1, nd: int = 0) -> str:
        v = (d or {}).get(key)
        return "n/a" if v is None else f"{v * scale:.{nd}f} {unit}".rstrip()

    ps, ks = p.get("stop") or {}, kel.get("stop") or {}
    po, ko = p.get("orphans") or {}, kel.get("orphans") or {}
    n = RUNTIME_APPS
    lines = ["| Metric | pm2-runtime (PM2 7) | kelpie runtime | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    pv = ps.get("stop_s") if ps.get("ok") else None
    kv = ks.get("stop_s") if ks.get("ok") else None
    lines.append(f"| Stop on SIGTERM, {n} apps (signal to PID 1 → the runtime has exited): "
                 f"median (min–max) | {stop(ps)} | {stop(ks)} | {fmt_ratio(pv, kv)} | - |")
    lines.append(f"| Exit code after SIGTERM (stop rounds) | {exits(ps)} | {exits(ks)} | - | "
                 f"Kelpie 0{verdict(None if not ks.get('ok') else ks['exit_0'] == ks['ok'])} |")
    kz = ko.get("zombies_max")
    lines.append(f"| Zombies in the namespace {RUNTIME_ZOMBIE_WAIT_S:g} s after {n} apps each "
                 f"left {RUNTIME_ORPHANS} orphans (exiting after {RUNTIME_ORPHAN_LIFE_MS} ms): "
                 f"median (worst round) | {zombies(po)} | {zombies(ko)} | - | Kelpie 0"
                 f"{verdict(None if kz is None else kz == 0)} |")
    lines.append(f"| Orphans the apps reported spawned, per round (median) | "
                 f"{val(po, 'orphans_spawned')} | {val(ko, 'orphans_spawned')} | - | "
                 f"{n * RUNTIME_ORPHANS} (= {n} apps × {RUNTIME_ORPHANS}, from the apps' output) |")
    pv = po.get("stop_s") if po.get("ok") else None
    kv = ko.get("stop_s") if ko.get("ok") else None
    lines.append(f"| Stop on SIGTERM with the orphans' apps: median (min–max) | {stop(po)} | "
                 f"{stop(ko)} | {fmt_ratio(pv, kv)} | - |")
    lines.append(f"| Start: `unshare` spawned → {n} apps running, median | "
                 f"{val(ps, 'start_s', 'ms', 1e3)} | {val(ks, 'start_s', 'ms', 1e3)} | "
                 f"{fmt_ratio(ps.get('start_s'), ks.get('start_s'))} | - |")
    lines.append(f"| PID 1 RSS with {n} apps, median | {val(ps, 'rss_mb', 'MB', 1, 1)} | "
                 f"{val(ks, 'rss_mb', 'MB', 1, 1)} | {fmt_ratio(ps.get('rss_mb'), ks.get('rss_mb'))} "
                 f"| - |")
    kb = sizes.get("kelpie_bytes")
    kdesc = sizes.get("kelpie_file") or "static"
    lines.append(f"| Static binary (`kelpie`, glibc crt-static {STATIC_TRIPLE}; {kdesc}) | - | "
                 f"{fmt(kb and kb / mib, 'MB')} | - | Kelpie < {RUNTIME_BINARY_TARGET_MB} MB"
                 f"{verdict(None if kb is None else kb < RUNTIME_BINARY_TARGET_MB * mib)} |")
    pmb, pmf, nb = sizes.get("pm2_modules_bytes"), sizes.get("pm2_modules_files"), \
        sizes.get("node_bytes")
    lines.append(f"| What a Node.js image adds for the supervisor: PM2's `node_modules` "
                 f"(`npm install pm2@7`) / the kelpie binary | "
                 f"{fmt(pmb and pmb / mib, 'MB')}{f' ({pmf:,} files)' if pmf else ''} | "
                 f"{fmt(kb and kb / mib, 'MB')} (1 file) | {fmt_ratio(pmb, kb)} | - |")
    total = pmb + nb if pmb is not None and nb is not None else None
    lines.append(f"| What an image without Node adds: PM2's `node_modules` + the `node` binary "
                 f"({fmt(nb and nb / mib, 'MB')}) / the kelpie binary | "
                 f"{fmt(total and total / mib, 'MB')} | {fmt(kb and kb / mib, 'MB')} | "
                 f"{fmt_ratio(total, kb)} | - |")
    return "\n".join(lines)


def runtime_notes(cfg: argparse.Namespace) -> str:
    return (
        f"Runtime: each runtime is PID 1 of its own pid namespace, as in a container: `unshare "
        f"--pid --fork --kill-child --mount-proc pm2-runtime ecosystem.json` (PM2's daemon in "
        f"the same Node.js process, `PM2_HOME` and `HOME` in a fresh temp dir) and the same "
        f"with `kelpie runtime ecosystem.json` (fresh `KELPIE_HOME`), the same file: "
        f"{RUNTIME_APPS} apps, the static `fake-app` with `interpreter: \"none\"`. Stop: the "
        f"apps have no handlers, so the stop signal (SIGINT for both) ends them at once; "
        f"{RUNTIME_SETTLE_S:g} s after all {RUNTIME_APPS} run (seen in `/proc` below PID 1), "
        f"SIGTERM to PID 1 and the time until `unshare`'s wait for it returns (the kernel "
        f"has then killed and reaped whatever was left in the namespace). Zombies: the apps run "
        f"`fake-app --orphans {RUNTIME_ORPHANS} --orphan-life {RUNTIME_ORPHAN_LIFE_MS}`: each "
        f"starts a child that starts a grandchild and exits (a daemonizing double fork), so the "
        f"grandchild is re-parented to PID 1 and exits {RUNTIME_ORPHAN_LIFE_MS} ms later; "
        f"{RUNTIME_ZOMBIE_WAIT_S:g} s after all apps run, the processes in state `Z` below PID "
        f"1 are counted (then SIGTERM, timed as above). {cfg.runtime_rounds} round(s) per "
        f"variant and runtime, PM2 and Kelpie in turn in each round; medians. Start is from "
        f"spawning `unshare` until all {RUNTIME_APPS} apps run (polled every 10 ms); PID 1's RSS "
        f"is its `VmRSS` just before the SIGTERM. Sizes: the static kelpie as built by the "
        f"bench (`RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target "
        f"{STATIC_TRIPLE}`, stripped by the release profile); the Dockerfile builds it for "
        f"musl, whose target is not installed on this machine, so the image's binary is not "
        f"measured here. PM2: the bytes of the regular files under `node_modules` of `npm "
        f"install pm2@7` (each inode once; what the install adds to an image layer), and the "
        f"`node` binary of this machine (an image without Node needs it for PM2; a Node.js image "
        f"has it anyway).")


RUNTIME_BEGIN = "<!-- bench:runtime:begin -->"
RUNTIME_END = "<!-- bench:runtime:end -->"


def runtime_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The runtime scenario's part of RESULTS.md, self-contained like the cluster section, so
    that `--only runtime` can replace it in a report that has the others."""
    return f"""{RUNTIME_BEGIN}
## Runtime (containers)

{run_line}

{table}

{notes}

<details><summary>Raw samples (runtime)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{RUNTIME_END}"""


def merge_runtime_section(report: str, section: str | None) -> str:
    return merge_section(report, RUNTIME_BEGIN, RUNTIME_END, section)


def existing_runtime_section(path: Path | None) -> str | None:
    return existing_section(path, RUNTIME_BEGIN, RUNTIME_END)


# --------------------------------------------------------------------------------------------
# Reliability scenario: what each manager does under faults, PM2 and Kelpie in the same run,
# each part with a fresh daemon and home: kill -9 of the daemon (apps printing, a 4 MiB burst
# right after, the next command), the same with a 2-instance HTTP app under load, the control
# socket's modes and another uid, secrets in jlist/describe and the dump, a corrupt dump, an
# app ignoring the stop signals, and 200 apps.

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


def rel_daemon_kill(m: Manager, scripts: dict[str, Path]) -> dict:
    trigger, done = m.workdir / "burst.trigger", m.workdir / "burst.done"
    apps = [rel_node_app(f"chatty{i}", scripts["chatty"]) for i in range(REL_CHATTY)]
    apps.append(rel_node_app("burst", scripts["burst"], (str(trigger), str(done))))
    names = [a["name"] for a in apps]
    m.run("start", str(rel_ecosystem(m, "kill.json", apps)), timeout=60)
    before = wait_apps_online(m, names)
    time.sleep(1.0)  # lines flowing
    dpid = m.daemon_pid()
    keeper = read_pidfile(m.home / "keeper.pid") if isinstance(m, Kelpie) else None
    if keeper:
        m.keeper_pids.add(keeper)
    log(f"{m.label}: reliability: kill -9 of the daemon {dpid} (keeper {keeper}), "
        f"apps {before}")
    os.kill(dpid, signal.SIGKILL)
    t_kill = time.perf_counter()
    trigger.touch()
    burst_done_s = None
    while time.perf_counter() - t_kill < REL_ALIVE_AFTER_S:
        if burst_done_s is None and done.exists():
            burst_done_s = time.perf_counter() - t_kill
        time.sleep(0.01)
    alive = {n for n, p in before.items() if pid_alive(p)}
    done_text = read_text_or_empty(done).split()
    failed_writes = int(done_text[0]) if done_text else None
    if done_text and failed_writes == 0:
        burst = "completed"
    elif done_text:
        burst = "write failed"
    elif "burst" in alive:
        burst = "blocked"
    else:
        burst = "died"
    keeper_alive = bool(keeper and pid_alive(keeper))
    t0 = time.perf_counter()
    p = m.run("jlist", capture=True, check=False, timeout=60)
    next_s = time.perf_counter() - t0
    after_list = parse_jlist(p.stdout)
    for a in after_list:
        if isinstance(a.get("pid"), int) and a["pid"] > 0:
            m.app_pids.add(a["pid"])
    alive_pids = {pid for pid in before.values() if pid_alive(pid)}
    cls = classify_after_kill(before, apps_by_name(after_list), alive_pids)
    new_dpid = m.daemon_pid()
    # The burst's lines in the log file (Kelpie's new daemon writes what the keeper spooled).
    deadline = time.monotonic() + 5
    while True:
        check = check_burst_lines(app_log(m, "burst"), REL_BURST_LINES)
        if check["lost"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    ticks = missing = 0
    for i in range(REL_CHATTY):
        n, gap = tick_gaps(app_log(m, f"chatty{i}"), before[f"chatty{i}"])
        ticks, missing = ticks + n, missing + gap
    res = {"apps": len(before), "alive_after": len(alive), "burst": burst,
           "burst_alive": "burst" in alive,
           "burst_done_s": burst_done_s, "burst_failed_writes": failed_writes,
           "keeper_alive_before_next": keeper_alive if keeper else None,
           "keeper_alive_after_next": (pid_alive(keeper) if keeper else None),
           "next_exit": p.returncode, "next_s": next_s, "new_daemon": new_dpid != dpid,
           **cls, "burst_log": check, "ticks_logged": ticks, "ticks_missing": missing}
    log(f"{m.label}: reliability: daemon kill: {res}")
    return res


def rel_cluster_kill(m: Manager, script: Path, port: int) -> dict:
    args, env = m.cluster_start(script, port)
    m.run(*args, env=env, timeout=60)
    before = wait_cluster_ready(m, port)
    dpid = m.daemon_pid()
    keeper = read_pidfile(m.home / "keeper.pid") if isinstance(m, Kelpie) else None
    if keeper:
        m.keeper_pids.add(keeper)
    load = RequestLoad(port)
    t0 = time.perf_counter()
    load.start()
    time.sleep(REL_KILL_AT_S)
    os.kill(dpid, signal.SIGKILL)
    t_kill = time.perf_counter()
    time.sleep(max(0.0, t0 + REL_NEXT_AT_S - time.perf_counter()))
    tn = time.perf_counter()
    p = m.run("jlist", capture=True, check=False, timeout=60)
    next_s = time.perf_counter() - tn
    time.sleep(max(0.0, t0 + REL_LOAD_S - time.perf_counter()))
    samples = load.stop()
    serving = http_result(port) == "ok"
    after = [a for a in parse_jlist(p.stdout) if a.get("name") == CLUSTER_APP]
    for a in after:
        if isinstance(a.get("pid"), int) and a["pid"] > 0:
            m.app_pids.add(a["pid"])
    m.daemon_pid()
    res = {**summarize_load(samples, t_kill), "next_exit": p.returncode, "next_s": next_s,
           "next_at_s": tn - t_kill, "serving_after": serving,
           "instances_before": sorted(before), "instances_listed_after": len(after),
           "same_pids_after": sorted(a["pid"] for a in after
                                     if a.get("pid") in before and pid_alive(a["pid"])),
           "instances_alive_after": sum(pid_alive(x) for x in before)}
    log(f"{m.label}: reliability: cluster kill: {res}")
    return res


def proc_uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def kill_uid_with_env(uid: int, needle: str) -> None:
    """SIGKILL the processes of uid whose environment contains needle (our temp home: only
    processes this run started as that uid)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or proc_uid(int(d.name)) != uid:
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if needle.encode() in env:
            try:
                os.kill(int(d.name), signal.SIGKILL)
            except OSError:
                pass


def connect_as(uid: int, path: Path) -> str:
    """connect() to the unix socket at path from a forked child running as uid (gid = uid, no
    supplementary groups): "connected" or the error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no exec, so no program of ours needs to be readable by uid
        msg = "?"
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                try:
                    s.connect(str(path))
                    msg = "connected"
                except OSError as e:
                    msg = f"{type(e).__name__}: {e.strerror or e}"
        except BaseException as e:  # noqa: BLE001 - reported
            msg = f"setup failed: {e}"
        finally:
            try:
                os.write(w, msg.encode()[:500])
            finally:
                os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return out


def mode_str(path: Path) -> str:
    try:
        return stat.filemode(path.lstat().st_mode)
    except OSError:
        return "missing"


def rel_socket(m: Manager, scripts: dict[str, Path], tmp: Path) -> dict:
    """Modes of the home the manager created itself and of its control socket(s); what another
    uid gets from them (parents made traversable: 0711 for the temp dir)."""
    shutil.rmtree(m.home, ignore_errors=True)  # let the manager create it, with its own mode
    m.run("start", str(rel_ecosystem(m, "probe.json",
                                     [rel_node_app("probe", scripts["chatty"])])), timeout=60)
    wait_apps_online(m, ["probe"])
    m.daemon_pid()
    socks = ["rpc.sock", "pub.sock"] if isinstance(m, Pm2) else ["kelpie.sock"]
    res: dict = {"home_mode": mode_str(m.home),
                 "sockets": {s: mode_str(m.home / s) for s in socks}}
    if os.geteuid() != 0:
        res["other_uid"] = "not measured (needs root to run as another uid)"
        return res
    old = stat.S_IMODE(tmp.stat().st_mode)
    os.chmod(tmp, 0o711)
    try:
        ids = dict(user=REL_OTHER_UID, group=REL_OTHER_UID, extra_groups=[])
        res["other_connect"] = connect_as(REL_OTHER_UID, m.home / socks[0])
        env = {**m.env(), "HOME": "/nonexistent"}
        try:
            p = subprocess.run(m.argv("jlist"), env=env, cwd="/", stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30, **ids)
            out = p.stdout.decode(errors="replace").replace(str(m.home), "<home>")
            err = p.stderr.decode(errors="replace").replace(str(m.home), "<home>")
            listed = [a.get("name") for a in parse_jlist(p.stdout)]
            res["other_cli"] = {"exit": p.returncode, "listed_apps": listed,
                                "message": first_message(err) or first_message(out)}
        except subprocess.TimeoutExpired:
            res["other_cli"] = {"exit": None, "listed_apps": [], "message": "timed out (30 s)"}
    finally:
        os.chmod(tmp, old)
        kill_uid_with_env(REL_OTHER_UID, str(m.home))  # a daemon it may have started
    log(f"{m.label}: reliability: socket: {res}")
    return res


def rel_secrets_dump(m: Manager, scripts: dict[str, Path]) -> dict:
    apps = [rel_node_app("sec", scripts["chatty"], env={"API_TOKEN": REL_SECRET}),
            rel_node_app("keep1", scripts["chatty"]), rel_node_app("keep2", scripts["chatty"])]
    names = [a["name"] for a in apps]
    m.run("start", str(rel_ecosystem(m, "secrets.json", apps)), timeout=60)
    pids = wait_apps_online(m, names)
    secret = REL_SECRET.encode()
    try:
        in_env = f"API_TOKEN={REL_SECRET}".encode() in \
            Path(f"/proc/{pids['sec']}/environ").read_bytes().split(b"\0")
    except OSError:
        in_env = None
    jl = m.run("jlist", capture=True, timeout=60)
    ds = m.run("describe", "sec", capture=True, check=False, timeout=60)
    sec_id = next((a.get("pm_id") for a in parse_jlist(jl.stdout) if a.get("name") == "sec"), 0)
    ev = m.run("env", str(sec_id), capture=True, check=False, timeout=60)  # PM2's env command
    res: dict = {"app_has_it": in_env, "jlist_shows": secret in jl.stdout,
                 "describe_shows": secret in ds.stdout + ds.stderr,
                 "env_exit": ev.returncode, "env_shows": secret in ev.stdout + ev.stderr}
    if isinstance(m, Kelpie):
        sj = m.run("jlist", "--show-secrets", capture=True, check=False, timeout=60)
        res["jlist_show_secrets_shows"] = secret in sj.stdout
    m.run("save", timeout=60)
    time.sleep(0.2)
    m.run("save", timeout=60)  # the second save keeps the first as the backup
    dump = m.home / ("dump.pm2" if isinstance(m, Pm2) else "dump.json")
    bak = dump.with_name(dump.name + ".bak")
    res.update(dump=dump.name, dump_mode=mode_str(dump), bak_mode=mode_str(bak),
               dump_has_secret=secret in (dump.read_bytes() if dump.exists() else b""))
    # Corrupt dump: no app running, garbage in the dump, its backup left as the saves made it.
    m.run("delete", "all", timeout=60)
    dump.write_bytes(REL_GARBAGE)
    t0 = time.perf_counter()
    p = m.run("resurrect", capture=True, check=False, timeout=60)
    res["resurrect_s"] = time.perf_counter() - t0
    out = p.stdout.decode(errors="replace") + "\n" + p.stderr.decode(errors="replace")
    out = out.replace(str(m.home), "<home>")
    res.update(resurrect_exit=p.returncode, resurrect_message=first_message(out),
               resurrect_output=out[-1500:])
    deadline = time.monotonic() + 10
    while True:
        after = apps_by_name(m.jlist())
        online = [n for n in names if n in after and after[n][1] == "online"]
        if len(online) == len(names) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    res.update(apps=len(names), back_listed=sum(n in after for n in names),
               back_online=len(online),
               dump_after=("garbage kept" if dump.exists() and dump.read_bytes() == REL_GARBAGE
                           else "replaced" if dump.exists() else "gone"),
               dump_aside=sorted(x.name for x in m.home.glob(dump.name + "*")))
    log(f"{m.label}: reliability: secrets/dump: "
        f"{ {k: v for k, v in res.items() if k != 'resurrect_output'} }")
    return res


def rel_stubborn(m: Manager, scripts: dict[str, Path], rounds: int) -> dict:
    eco = rel_ecosystem(m, "stubborn.json", [rel_node_app("stubborn", scripts["stubborn"])])
    rows = []
    for _ in range(rounds):
        m.run("start", str(eco), timeout=60)
        pid = wait_apps_online(m, ["stubborn"])["stubborn"]
        time.sleep(0.5)  # its handlers are set up
        t0 = time.perf_counter()
        p = m.run("stop", "stubborn", check=False, timeout=60)
        stop_s = time.perf_counter() - t0
        gone = not pid_alive(pid)
        gone_s = None
        while gone_s is None and time.perf_counter() - t0 < 10:
            if not pid_alive(pid):
                gone_s = time.perf_counter() - t0
            else:
                time.sleep(0.01)
        st = apps_by_name(m.jlist()).get("stubborn", (None, "?"))[1]
        rows.append({"stop_s": stop_s, "exit": p.returncode, "gone_after_stop": gone,
                     "gone_s": gone_s, "status": st})
        m.run("delete", "stubborn", check=False, timeout=60)
        time.sleep(0.3)
    res = {"stop_s": median([r["stop_s"] for r in rows]),
           "gone": sum(r["gone_after_stop"] for r in rows), "rounds": len(rows), "raw": rows}
    log(f"{m.label}: reliability: stubborn app: {res}")
    return res


def rel_many(m: Manager, n: int, rounds: int) -> dict:
    apps = [{"name": f"app{i}", "script": str(FAKE_APP), "interpreter": "none", "args": [],
             "autorestart": True} for i in range(n)]
    eco = rel_ecosystem(m, "many.json", apps)
    m.run("ping", timeout=60)
    m.daemon_pid()
    rows = []
    for r in range(rounds):
        row: dict = {}

        def step(key: str, *args: str) -> bool:
            t0 = time.perf_counter()
            try:
                p = m.run(*args, timeout=REL_STEP_CAP_S, check=False)
            except subprocess.TimeoutExpired:
                row[key], row[f"{key}_timeout"] = None, True
                log(f"{m.label}: `{' '.join(args)}` over {REL_STEP_CAP_S:.0f} s")
                return False
            row[key] = time.perf_counter() - t0
            row[f"{key}_exit"] = p.returncode
            return p.returncode == 0

        step("start_s", "start", str(eco))
        m.wait_status("online", n, timeout=120)
        lists, jlists = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            m.run("list", timeout=60)
            lists.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            m.jlist()  # also records the pids for the cleanup
            jlists.append(time.perf_counter() - t0)
        row["list_s"], row["jlist_s"] = median(lists), median(jlists)
        step("restart_s", "restart", "all")
        row["online_after_restart"] = m.wait_status("online", n, timeout=120)
        m.jlist()
        step("delete_s", "delete", "all")
        row["left_after_delete"] = len(m.jlist())
        rows.append(row)
        log(f"{m.label}: reliability: {n} apps, round {r + 1}/{rounds}: {row}")

    def med(k: str) -> float | None:
        return median([x[k] for x in rows if x.get(k) is not None])
    return {"apps": n, "rounds": len(rows), **{k: med(k) for k in
            ("start_s", "list_s", "jlist_s", "restart_s", "delete_s")},
            "timeouts": sum(k.endswith("_timeout") for x in rows for k in x), "raw": rows}


REL_PARTS = ("kill", "cluster", "socket", "secrets", "stubborn", "many")


def bench_reliability(make: "Callable[[str], Manager]", run_part, scripts: dict[str, Path],
                      cluster_script: Path, cfg: argparse.Namespace) -> dict:
    """Every part for one manager, each with a fresh daemon and home (run_part(manager,
    function) runs it, records an error instead of raising, and cleans up)."""
    parts = {
        "kill": lambda m: rel_daemon_kill(m, scripts),
        "cluster": lambda m: rel_cluster_kill(m, cluster_script, free_port()),
        "socket": lambda m: rel_socket(m, scripts, cfg.tmp),
        "secrets": lambda m: rel_secrets_dump(m, scripts),
        "stubborn": lambda m: rel_stubborn(m, scripts, cfg.rounds),
        "many": lambda m: rel_many(m, cfg.apps, cfg.rounds),
    }
    return {k: run_part(make(k), f) for k, f in parts.items()}


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


# --------------------------------------------------------------------------------------------
# Report


def fmt(v: float | None, unit: str, nd: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{nd}f} {unit}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def build_table(n: int, pm2: dict | None, kel: dict) -> str:
    p = pm2 or {}
    # (label, key, unit, scale to display, target, kind)
    rows = [
        ("Daemon RSS, idle (0 apps)", "rss_idle", "MB", 1, "PM2/Kelpie >= 10x"),
        (f"Daemon RSS, {n} apps", "rss_loaded", "MB", 1, "PM2/Kelpie >= 10x"),
        (f"`list` with {n} apps", "list_ms", "ms", 1, "PM2/Kelpie >= 20x"),
        (f"`jlist` with {n} apps", "jlist_ms", "ms", 1, "PM2/Kelpie >= 20x"),
        (f"Start {n} apps (ecosystem.config.js)", "start_s", "ms", 1e3, "PM2/Kelpie >= 10x"),
        (f"Start {n} apps (ecosystem.json)", "start_json_s", "ms", 1e3, "PM2/Kelpie >= 10x"),
        (f"`stop all` ({n} apps)", "stop_s", "ms", 1e3, "PM2/Kelpie >= 10x"),
        ("Crash-to-restart, median", "restart_ms", "ms", 1, "Kelpie <= 3 ms"),
        ("Crash-to-restart, p90", "restart_p90_ms", "ms", 1, ""),
    ]
    nocg = kel.get("nocgroups") or {}
    if nocg:
        rows += [
            ("Crash-to-restart without cgroups (daemon as `nobody`), median", "nocg_restart_ms",
             "ms", 1, "Kelpie <= 2 ms"),
            ("Crash-to-restart without cgroups (daemon as `nobody`), p90", "nocg_restart_p90_ms",
             "ms", 1, ""),
        ]
        kel = {**kel, "nocg_restart_ms": nocg.get("restart_ms"),
               "nocg_restart_p90_ms": nocg.get("restart_p90_ms")}
    if kel.get("alone_start_ms") is not None:
        rows.append(("The app alone: spawned (no manager) to its start stamp, median",
                     "alone_start_ms", "ms", 1, "the floor of any restart"))
    lines = ["| Metric | PM2 7 | Kelpie | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    for label, key, unit, scale, target in rows:
        pv = p.get(key)
        kv = kel.get(key)
        pv = None if pv is None else pv * scale
        kv = None if kv is None else kv * scale
        ratio = fmt_ratio(pv, kv)
        verdict = ""
        if target.startswith("PM2/Kelpie") and pv is not None and kv:
            need = float(target.split(">=")[1].strip().rstrip("x"))
            verdict = " (met)" if pv / kv >= need else " (missed)"
        elif target.startswith("Kelpie <=") and kv is not None:
            need = float(target.split("<=")[1].strip().split()[0])
            verdict = " (met)" if kv <= need else " (missed)"
        lines.append(f"| {label} | {fmt(pv, unit)} | {fmt(kv, unit)} | {ratio} | "
                     f"{target}{verdict} |")
    return "\n".join(lines)


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


def build_cluster_table(pm2: dict | None, kel: dict) -> str:
    """The cluster scenario's rows (pm2: None with --kelpie-only)."""
    p = pm2 or {}

    def verdict(ok: bool | None) -> str:
        return "" if ok is None else (" (met)" if ok else " (missed)")

    def rps(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.0f} req/s"

    def lat(d: dict, key: str) -> str:
        a, b = d.get(f"latency_p50_ms_{key}"), d.get(f"latency_p99_ms_{key}")
        return "n/a" if a is None or b is None else f"{a:.2f} / {b:.2f} ms"

    def cpu(d: dict, key: str) -> str:
        s = d.get(f"daemon_cpu_s_{key}")
        if s is None:
            return "n/a"
        pct, us = d.get(f"daemon_cpu_pct_{key}"), d.get(f"daemon_cpu_us_per_req_{key}")
        return f"{s:.2f} s, {pct:.1f}% of a core, {us:.1f} µs/req"

    def failed(d: dict, key: str) -> str:
        v = d.get(f"reload_failed_{key}")
        if v is None:
            return "n/a"
        s = f"{v:.0f} (worst {d[f'reload_failed_{key}_max']})"
        worst = d.get(f"reload_failed_{key}_worst") or {}
        kinds = [f"{k} {worst[k]}" for k in (*WRK_ERROR_KINDS, "non2xx") if worst.get(k)]
        return s + (f": {', '.join(kinds)}" if kinds else "")

    lines = ["| Metric | PM2 7 | Kelpie | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    for key, title, _extra, need in ((k, t, e, n) for (k, t, e), n in
                                     zip(CLUSTER_MODES, (3.0, 1.2))):
        pv, kv = p.get(f"rps_{key}"), kel.get(f"rps_{key}")
        ratio = "-" if pv is None or kv is None or not pv else f"{kv / pv:.2f}x (Kelpie / PM2)"
        ok = None if pv is None or kv is None or not pv else kv / pv >= need
        lines.append(f"| Requests/s, {title} | {rps(pv)} | {rps(kv)} | {ratio} | "
                     f"Kelpie >= {need:g}x PM2's{verdict(ok)} |")
    def balance(d: dict) -> str:
        if d.get("balance_ratio") is None:
            return "n/a"
        return (f"{d['balance_ratio']:.2f}x (worst round {d['balance_ratio_max']:.2f}x, of "
                f"{d['balance_rounds']})")
    kb = kel.get("balance_ratio_max")
    lines.append(f"| Keep-alive balance, `wrk -c {BALANCE_CONNECTIONS}`: requests of the busiest "
                 f"instance / the least busy, median | {balance(p)} | {balance(kel)} | - | Kelpie "
                 f"<= {BALANCE_MAX_RATIO:g}x{verdict(None if kb is None else kb <= BALANCE_MAX_RATIO)} |")
    for key, title, _extra in CLUSTER_MODES:
        lines.append(f"| Latency p50 / p99, {title} | {lat(p, key)} | {lat(kel, key)} | - | - |")
    def inst(d: dict, key: str) -> str:
        xs = d.get(f"instance_cpu_pct_{key}")
        return "n/a" if not xs else " + ".join(f"{x:.0f}%" for x in xs) + " of a core"
    for key, title, _extra in CLUSTER_MODES:
        lines.append(f"| Instances' CPU during the wrk run, {title} (each, busiest first) | "
                     f"{inst(p, key)} | {inst(kel, key)} | - | - |")
    for key, title, _extra in CLUSTER_MODES:
        pv, kv = p.get(f"server_cpu_us_per_req_{key}"), kel.get(f"server_cpu_us_per_req_{key}")
        lines.append(f"| CPU per request, daemon + instances, {title} | {fmt(pv, 'µs')} | "
                     f"{fmt(kv, 'µs')} | {fmt_ratio(pv, kv)} | - |")
    for key, title, _extra in CLUSTER_MODES:
        k = f"bench_cpu_pct_of_machine_{key}"
        pv, kv = p.get(k), kel.get(k)
        lines.append(f"| CPU used by wrk + daemon + instances, % of the machine's {os.cpu_count()} "
                     f"CPUs, {title} | {fmt(pv, '%', 0)} | {fmt(kv, '%', 0)} | - | - (the rest "
                     f"went to other work) |")
    for key, title, _extra in CLUSTER_MODES:
        kp = kel.get(f"daemon_cpu_pct_{key}")
        ok = None if kp is None else kp <= DAEMON_CPU_MAX_PCT
        ratio = fmt_ratio(p.get(f"daemon_cpu_s_{key}"), kel.get(f"daemon_cpu_s_{key}"))
        lines.append(f"| Daemon CPU during the wrk run, {title} | {cpu(p, key)} | "
                     f"{cpu(kel, key)} | {ratio} | Kelpie ~0: <= {DAEMON_CPU_MAX_PCT:g}% of a "
                     f"core{verdict(ok)} |")
    pf = [p.get(f"failed_{k}_max") for k, _t, _e in CLUSTER_MODES]
    kf = [kel.get(f"failed_{k}_max") for k, _t, _e in CLUSTER_MODES]
    show = lambda xs: "n/a" if None in xs else " / ".join(str(x) for x in xs)  # noqa: E731
    ok = None if None in kf else sum(kf) == 0
    lines.append(f"| Failed requests without reload, worst round (new connection / keep-alive) "
                 f"| {show(pf)} | {show(kf)} | - | Kelpie 0{verdict(ok)} |")
    for key, title, _extra in CLUSTER_MODES:
        km = kel.get(f"reload_failed_{key}_max")
        ok = None if km is None else km == 0
        lines.append(f"| Failed requests during `reload` under load, {title}: median (worst "
                     f"round) | {failed(p, key)} | {failed(kel, key)} | - | "
                     f"Kelpie 0{verdict(ok)} |")
    def graceful(d: dict, kind: str) -> str:
        g = (d.get("graceful") or {}).get(kind) or {}
        if "skipped" in g:
            return f"skipped ({g['skipped'][:60]})"
        if not g.get("rounds"):
            return "n/a"
        worst = max(g["rounds"], key=lambda x: sum(x["failed"]))["failed"]
        return (f"{g['failed_max']} ({' + '.join(map(str, worst))}), "
                f"{g['replaced']} of {len(g['rounds'])} replaced")
    for kind, title in (("seed", "the seed's SIGINT handler calling `server.close()`"),
                        ("express", f"Express {EXPRESS_VERSION}, same handler")):
        g = (kel.get("graceful") or {}).get(kind) or {}
        ok = None if g.get("failed_max") is None else \
            g["failed_max"] == 0 and g["replaced"] == len(g["rounds"])
        lines.append(f"| Failed requests during `reload` under new-connection + keep-alive load "
                     f"at once, {title}: worst round (new connection + keep-alive) | "
                     f"{graceful(p, kind)} | {graceful(kel, kind)} | - | Kelpie 0{verdict(ok)} |")
    bound = kel.get("bound") or {}
    for key, title, _extra in CLUSTER_MODES:
        bv, kv = bound.get(f"rps_{key}"), kel.get(f"rps_{key}")
        share = "-" if bv is None or kv is None or not bv else f"Kelpie at {100 * kv / bv:.0f}%"
        lines.append(f"| Bound: requests/s, {title}, the same app run by hand ({CLUSTER_INSTANCES} "
                     f"Node processes sharing one socket, no manager) | - | {rps(bv)} | {share} "
                     f"| - |")
    pr, kr = p.get("reload_s"), kel.get("reload_s")
    lines.append(f"| `reload` command time ({CLUSTER_INSTANCES} instances, under load), median | "
                 f"{fmt(pr, 's', 2)} | {fmt(kr, 's', 2)} | {fmt_ratio(pr, kr)} | - |")

    def replaced(d: dict) -> str:
        if not d.get("reloads"):
            return "n/a"
        s = f"{d['reloads_replaced']} of {d['reloads']}"
        if d["reloads_ok"] != d["reloads"]:
            s += f" ({d['reloads'] - d['reloads_ok']} exited non-zero)"
        if d["reloads_late"]:
            s += f" ({d['reloads_late']} ended after the wrk run)"
        return s
    ok = None if not kel.get("reloads") else \
        kel["reloads_replaced"] == kel["reloads_ok"] == kel["reloads"] and not kel["reloads_late"]
    lines.append(f"| Reloads that replaced all {CLUSTER_INSTANCES} instances (exit 0, within "
                 f"the run) | {replaced(p)} | {replaced(kel)} | - | all{verdict(ok)} |")
    return "\n".join(lines)


def cluster_notes(cfg: argparse.Namespace, wrk_ver: str) -> str:
    return (
        f"Cluster: a Node.js HTTP hello world (`res.end(\"hello world\\n\")`, the same unchanged "
        f"file for both) listening on `process.env.PORT`, {CLUSTER_INSTANCES} instances in "
        f"cluster mode: `pm2 start hello.js -i {CLUSTER_INSTANCES}` with `PORT` in its "
        f"environment (Node's cluster module: the PM2 daemon is the cluster master and "
        f"hands each connection to a worker) and `kelpie start hello.js -i "
        f"{CLUSTER_INSTANCES} --port <port>` (the daemon owns the listening socket, every "
        f"instance accepts from it). Each manager on its own free port, one after the other. "
        f"Load: wrk {wrk_ver}, `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{cfg.wrk_seconds:g}s "
        f"--latency http://127.0.0.1:<port>/`, with `-H 'Connection: close'` (a new TCP "
        f"connection per request) and without (keep-alive), after a 1 s warm-up; wrk runs on "
        f"the same 2 cores as the apps and the daemon. Medians of {cfg.rounds} round(s). "
        f"Daemon CPU: utime+stime of the daemon process (all its threads, not its children: "
        f"the instances' CPU is not in it) over the wrk run, also as % of one core over the "
        f"run's wall time and per request; the instances' CPU likewise, per instance process "
        f"(busiest first, median per rank), and the CPU per request of the daemon and the "
        f"instances together (their CPU seconds over the run / requests: the server side's "
        f"cost, less sensitive than requests/s to other work on the machine, which takes CPU "
        f"time from both); and the CPU that wrk, the daemon and the instances used together, "
        f"as % of all the machine's CPUs over the run (below 100 %: other work on the machine "
        f"took the rest, or the client and server left CPUs idle). Reload: wrk runs "
        f"{RELOAD_RUN_S} s (same options), "
        f"`<manager> reload {CLUSTER_APP}` starts {RELOAD_AT_S:g} s in; failed requests = wrk's "
        f"socket errors (connect, read, write, timeout) + non-2xx/3xx responses of that run; "
        f"the instances' pids before and after tell that both were replaced. The reload time is "
        f"the wall time of the `reload` command. Keep-alive balance: `wrk -t{WRK_THREADS} "
        f"-c{BALANCE_CONNECTIONS} -d{BALANCE_RUN_S}s` (keep-alive clients that all connect at "
        f"once), and {BALANCE_RUN_S - 0.5:g} s in, the requests each instance has received on "
        f"its open connections (`ss -ti`: data segments received per connection, one per "
        f"request); busiest / least busy, per round. Apps that shut down by themselves: the "
        f"seed documents' `process.on('SIGINT', () => server.close(() => process.exit(0)))` "
        f"in the same hello world, and in an Express {EXPRESS_VERSION} hello world (from npm), "
        f"started the same way; per round, `reload` {RELOAD_AT_S:g} s into two wrk runs at "
        f"once ({max(1, WRK_CONNECTIONS // 2)} connections each, one with `Connection: close`, "
        f"one keep-alive, {RELOAD_RUN_S} s). Bound: the hello world started by hand, "
        f"{CLUSTER_INSTANCES} workers of Node's cluster module with `SCHED_NONE` (the primary "
        f"binds, every worker accepts from the same socket; no manager), same wrk runs, "
        f"in the same bench run.")


CLUSTER_BEGIN = "<!-- bench:cluster:begin -->"
CLUSTER_END = "<!-- bench:cluster:end -->"
README_LINE = "See `bench/README.md` for the method."


def cluster_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The cluster scenario's part of RESULTS.md, self-contained (its own run line and raw
    samples) so that `--only cluster` can replace it in a report that has the other sections."""
    return f"""{CLUSTER_BEGIN}
## Cluster

{run_line}

{table}

{notes}

<details><summary>Raw samples (cluster)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{CLUSTER_END}"""


def merge_section(report: str, begin: str, end: str, section: str | None) -> str:
    """report with its section between the markers begin and end replaced in place by section
    (None: removed), or section put before the "See bench/README.md" line (at the end when
    there is none) if the report has no such section yet."""
    i, j = report.find(begin), report.find(end)
    if i >= 0 and j > i:
        if section is not None:
            return report[:i] + section + report[j + len(end):]
        return report[:i].rstrip("\n") + "\n\n" + report[j + len(end):].lstrip("\n")
    if section is None:
        return report
    k = report.find(README_LINE)
    if k < 0:
        return report.rstrip("\n") + "\n\n" + section + "\n"
    return report[:k].rstrip("\n") + "\n\n" + section + "\n\n" + report[k:]


def merge_cluster_section(report: str, section: str | None) -> str:
    return merge_section(report, CLUSTER_BEGIN, CLUSTER_END, section)


def merge_health_section(report: str, section: str | None) -> str:
    return merge_section(report, HEALTH_BEGIN, HEALTH_END, section)


def existing_section(path: Path | None, begin: str, end: str) -> str | None:
    """The section between the markers in the file at path (with them), if any."""
    try:
        text = path.read_text() if path else ""
    except OSError:
        return None
    i, j = text.find(begin), text.find(end)
    return text[i:j + len(end)] if i >= 0 and j > i else None


def existing_cluster_section(path: Path | None) -> str | None:
    return existing_section(path, CLUSTER_BEGIN, CLUSTER_END)


def existing_health_section(path: Path | None) -> str | None:
    return existing_section(path, HEALTH_BEGIN, HEALTH_END)


def build_health_table(pm2: dict | None, kel: dict) -> str:
    """The health scenario's rows. pm2/kel: {"cpu": bench_health_cpu() or None, "memory":
    bench_health_memory() or None}; pm2 None with --kelpie-only."""
    p = pm2 or {}
    pc, kc = p.get("cpu") or {}, kel.get("cpu") or {}
    pmem, kmem = p.get("memory") or {}, kel.get("memory") or {}

    def verdict(ok: bool | None) -> str:
        return "" if ok is None else (" (met)" if ok else " (missed)")

    def cpu(d: dict) -> str:
        if d.get("cpu_pct") is None:
            return "n/a"
        s = f"{d['cpu_pct']:.2f} %"
        if d.get("windows", 0) > 1:
            s += f" ({d['cpu_pct_min']:.2f}–{d['cpu_pct_max']:.2f})"
        return s

    def threads(d: dict) -> str:
        t = d.get("threads_pct")
        if not t:
            return "n/a"
        shown = [(k, v) for k, v in t.items() if round(v, 2) > 0][:3]  # not the idle ones
        return ", ".join(f"{k} {v:.2f} %" for k, v in shown) or "0.00 %"

    def lat(d: dict, key: str = "restart_ms") -> str:
        if not d or not d.get("rounds"):
            return "n/a"
        n, ok = d["rounds"], d["restarted"]
        if not ok:
            return f"not restarted within {HEALTH_CAP_S:.0f} s ({n} round{'s' * (n > 1)})"
        s = f"{d[key] / 1e3:.2f} s"
        if ok > 1:
            s += f" ({d[key + '_min'] / 1e3:.2f}–{d[key + '_max'] / 1e3:.2f} s)"
        s += f", {n} round{'s' * (n > 1)}"
        if ok < n:
            s += f", {n - ok} not restarted within {HEALTH_CAP_S:.0f} s"
        return s

    n = kc.get("apps") or pc.get("apps") or "?"
    w = kc.get("window_s") or pc.get("window_s") or 0
    lines = ["| Metric | PM2 7 | Kelpie | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    # The target is PM2's own figure in the same run; without PM2 (--kelpie-only), a bound.
    if kc.get("cpu_pct") is not None and pc.get("cpu_pct") is not None:
        ok, target = kc["cpu_pct"] <= pc["cpu_pct"], "Kelpie <= PM2 in the same run"
    else:
        ok = None if kc.get("cpu_pct") is None else kc["cpu_pct"] < HEALTH_CPU_TARGET_PCT
        target = f"Kelpie < {HEALTH_CPU_TARGET_PCT:g} % of one core"
    nw = kc.get("windows") or pc.get("windows") or 0
    lines.append(f"| Daemon CPU with {n} idle apps, % of one core over {w:g} s with nobody calling "
                 f"the CLI: median of {nw} window(s) (min–max) | {cpu(pc)} | {cpu(kc)} | "
                 f"{fmt_ratio(pc.get('cpu_pct'), kc.get('cpu_pct'))} | {target}{verdict(ok)} |")
    if kc.get("crowded_pct") is not None or pc.get("crowded_pct") is not None:
        def crowded(d: dict) -> str:
            if d.get("crowded_pct") is None:
                return "n/a"
            return f"{d['crowded_pct']:.2f} % ({d['crowded_processes']} processes)"
        same = None
        if kc.get("crowded_pct") is not None and kc.get("cpu_pct") is not None:
            # Within one 10 ms tick over the window of the idle figure.
            tick_pct = 100 / CLK_TCK / max(w, 1)
            same = kc["crowded_pct"] <= kc["cpu_pct"] + tick_pct
        lines.append(f"| The same, one window, with {kc.get('unrelated') or pc.get('unrelated')} "
                     f"unrelated idle processes on the machine | {crowded(pc)} | {crowded(kc)} | "
                     f"{fmt_ratio(pc.get('crowded_pct'), kc.get('crowded_pct'))} | Kelpie: no "
                     f"more than without them (within a tick){verdict(same)} |")
    procs = kc.get("processes_on_machine") or pc.get("processes_on_machine")
    lines.append(f"| What the daemon does in that window | {Pm2.sampling} | {Kelpie.sampling} | - "
                 f"| - |" if procs is None else
                 f"| What the daemon does in that window ({procs:.0f} processes on the machine) | "
                 f"{Pm2.sampling} | {Kelpie.sampling} | - | - |")
    lines.append(f"| Daemon CPU by thread, busiest 3 (% of one core, median over the windows) | "
                 f"{threads(pc)} | {threads(kc)} | - | - |")
    pr, kr = pc.get("rss_mb"), kc.get("rss_mb")
    lines.append(f"| Daemon RSS, {n} apps | {fmt(pr, 'MB')} | {fmt(kr, 'MB')} | "
                 f"{fmt_ratio(pr, kr)} | - |")
    for key, title in HEALTH_VARIANTS:
        pd, kd = pmem.get(key) or {}, kmem.get(key) or {}
        ok = None if not kd.get("rounds") else (
            kd["restarted"] == kd["rounds"]
            and kd["restart_ms_max"] / 1e3 < HEALTH_RESTART_TARGET_S)
        pv = pd.get("restart_ms") if pd.get("restarted") else None
        kv = kd.get("restart_ms") if kd.get("restarted") else None
        lines.append(f"| Memory limit ({HEALTH_LIMIT}) crossed to restart, {title}: median "
                     f"(min–max) | {lat(pd)} | {lat(kd)} | {fmt_ratio(pv, kv)} | Kelpie < "
                     f"{HEALTH_RESTART_TARGET_S:g} s in every round{verdict(ok)} |")

    def causes(d: dict, how: str) -> str:
        rs = [(d.get(k) or {}) for k, _t in HEALTH_VARIANTS]
        total = sum(x.get("restarted", 0) for x in rs)
        if not any(x.get("rounds") for x in rs):
            return "n/a"
        return f"{sum(x.get('memory_cause', 0) for x in rs)} of {total} ({how})"
    lines.append(f"| Restarts recorded as caused by memory | "
                 f"{causes(pmem, 'its worker logs exceeds --max-memory-restart in pm2.log')} | "
                 f"{causes(kmem, '`exits[].cause` = memory in describe --json')} | - | - |")
    kd = kmem.get("child") or {}
    gone = "n/a" if not kd.get("restarted") else f"{kd['old_child_gone']} of {kd['restarted']}"
    pd = pmem.get("child") or {}
    pgone = "n/a" if not pd.get("restarted") else f"{pd['old_child_gone']} of {pd['restarted']}"
    lines.append(f"| Child variant: the old child gone within 3 s of the restart | {pgone} | "
                 f"{gone} | - | - |")

    def alloc(d: dict) -> str:
        parts = []
        for k, _t in HEALTH_VARIANTS:
            x = d.get(k) or {}
            if not x.get("rounds"):
                continue
            over, took = x.get("over_after_ms"), x.get("alloc_ms")
            s = f"{k}: over after {'?' if over is None else f'{over:.0f}'} ms"
            s += f", done in {'?' if took is None else f'{took:.0f}'} ms"
            if x.get("cut_short"):
                s += f" ({x['cut_short']} of {x['restarted']} restarted before it was done)"
            if x.get("from_allocating"):
                s += (f" ({x['from_allocating']} without an `over` stamp before the restart: "
                      f"latency from `allocating`)")
            parts.append(s)
        return "; ".join(parts) or "n/a"
    lines.append(f"| Allocating {HEALTH_ALLOC_MB} MB: over {HEALTH_LIMIT_MIB} MiB after, done in "
                 f"(median of the rounds) | {alloc(pmem)} | {alloc(kmem)} | - | - |")
    return "\n".join(lines)


def health_notes(cfg: argparse.Namespace, n_apps: int) -> str:
    window = "about one" if cfg.cpu_window >= 30 else "at most one"
    cpu = (
        f"Health, daemon CPU: {n_apps} idle `fake-app`s (native, `interpreter: \"none\"`) "
        f"started from an `ecosystem.json`; {cfg.health_settle:g} s after all are `online`, the "
        f"daemon's CPU (utime+stime of `/proc/<daemon pid>/stat`: all its threads, not its "
        f"children) over {cfg.rounds} back-to-back window(s) of {cfg.cpu_window:g} s in which "
        f"nothing calls the CLI, as % of one core; by thread from `/proc/<pid>/task/*/stat` (by "
        f"thread name; 1 tick = 10 ms, so about ±{100 / CLK_TCK / cfg.cpu_window * 2:.2f} % per "
        f"thread). Kelpie samples every app's whole process tree every second by design (one scan "
        f"of all of `/proc`, so its cost also grows with the other processes on the machine); "
        f"PM2's only periodic work is its worker every 30 s (pidusage of each app's main pid, host "
        f"metrics), so a {cfg.cpu_window:g} s window holds {window} of its runs: PM2's number is "
        f"for reference. Then the daemon's RSS (median of {cfg.rss_samples} samples).")
    mem = (
        f"Health, memory limit: one app, `<manager> start <fake-app> --interpreter none "
        f"--max-memory-restart {HEALTH_LIMIT} -- --stamp FILE --allocate {HEALTH_ALLOC_MB} "
        f"--allocate-after {HEALTH_ALLOC_AFTER_MS} --stamp-over {HEALTH_LIMIT_MIB}` (child variant: `--spawn-children 1 "
        f"--child-allocate {HEALTH_ALLOC_MB}` instead of `--allocate`, so the app's main process "
        f"stays at ~2 MB). {HEALTH_ALLOC_AFTER_MS / 1e3:g} s after it starts, the app (or its "
        f"child) appends `allocating <pid> <ns>` to FILE and touches {HEALTH_ALLOC_MB} MB a MiB at "
        f"a time, reading its `VmRSS` after each: `over <pid> <ns>` once that is over "
        f"{HEALTH_LIMIT_MIB} MiB (the limit is crossed, within a MiB, ~1 ms; in the child "
        f"variant the tree, with the app's ~2 MB, crosses it ~2 ms earlier), `allocated <pid> "
        f"<ns>` at the end; the restarted app appends its start stamp `<pid> <ns>`. Latency = "
        f"that start stamp − the `over` stamp (a restart can come before the allocation is "
        f"done). Each round is a fresh `start` after a random wait in [0, the manager's checking "
        f"period) (1 s for Kelpie, 30 s for PM2), so that the crossing falls anywhere in that "
        f"period, and gives up {HEALTH_CAP_S:.0f} s after the crossing. Kelpie checks the limit at each sample "
        f"(every second) against the whole tree; PM2 at its worker's next run (every 30 s: "
        f"anything from 0 to 30 s, 15 s on average) against the main pid's memory only. Rounds: "
        f"Kelpie {cfg.health_rounds_kelpie} per variant; PM2 {cfg.health_rounds_pm2} (main) and "
        f"{cfg.health_rounds_pm2_child} (child: its worker runs at least once in any "
        f"{HEALTH_CAP_S:.0f} s and never looks at children).")
    return cpu + "\n\n" + mem


HEALTH_BEGIN = "<!-- bench:health:begin -->"
HEALTH_END = "<!-- bench:health:end -->"


def health_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The health scenario's part of RESULTS.md, self-contained like the cluster section, so that
    `--only health` can replace it in a report that has the others."""
    return f"""{HEALTH_BEGIN}
## Health

{run_line}

{table}

{notes}

<details><summary>Raw samples (health)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{HEALTH_END}"""


def round_floats(obj):
    """obj with every float rounded to 3 decimals (for the raw samples in the report)."""
    if isinstance(obj, float):
        return round(obj, 3)
    if isinstance(obj, list):
        return [round_floats(x) for x in obj]
    if isinstance(obj, dict):
        return {k: round_floats(v) for k, v in obj.items()}
    return obj


def free_port() -> int:
    """A TCP port free on this machine right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET) as s:
        s.bind(("::" if socket.has_ipv6 else "0.0.0.0", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except OSError:
        node = "not found"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "node": node,
    }


# --------------------------------------------------------------------------------------------
# Regression check (`--check`): Kelpie alone, the core figures against bench/budgets.json.

BUDGETS_FILE = SCRIPT.parent / "budgets.json"
CHECK_APPS = 200            # the core scenario's apps (fake-app, interpreter none)
CHECK_ROUNDS = 3            # start / stop rounds: start_json, stop_all, rss_200 (median)
CHECK_LIST_RUNS = 4         # runs of list and of jlist per round (12 of each in all)
CHECK_CRASH_ROUNDS = 20     # SIGKILL rounds of the crashy app
CHECK_CPU_WINDOW_S = 10.0   # the daemon's CPU window, 200 idle apps, nobody calling the CLI
CHECK_CPU_WINDOWS = 2       # that many windows in a row; the figure is the lowest (see below)
CHECK_SETTLE_S = 3.0        # after the daemon starts / after all apps are online (the daemon unmaps
                            # the code of a burst of work 1-2 s after it; RSS is of the steady state)
CHECK_RSS_SAMPLES = 5
CHECK_QUIET_IDLE = 0.9      # the machine's idle share that counts as quiet, before measuring
CHECK_QUIET_MAX_S = 60.0    # measure anyway after this long
CHECK_CROWDED = 2 * CHECK_APPS  # more processes on the machine than this: a note (CPU figure)
# How a budget is set from a measured figure (the worst of the runs): x2 for times and CPU,
# +25 % for memory, rounded up to 2 significant digits. budgets.json carries its own copy.
DEFAULT_HEADROOM = {"ms": 2.0, "%": 2.0, "MB": 1.25}
BUDGETS_COMMENT = (
    "Performance budgets of `python3 bench/run.py --check` (Kelpie alone, 200 fake-app apps; "
    "see bench/README.md), which CI runs: a figure over its budget fails the check. Rule: "
    "budget = the worst figure of at least 3 runs on the reference machine x headroom (x2 for "
    "times and CPU, x1.25 for memory), rounded up to 2 significant digits; `measured` is that "
    "worst figure. A change that makes a figure better must tighten its budget in the same "
    "commit (`python3 bench/run.py --check-update-budgets` rewrites this file from a run's "
    "figures, or from the worst of several --check-output files given after it). Loosening a "
    "budget needs a reason in the commit message.")


@dataclass(frozen=True)
class CheckMetric:
    key: str
    unit: str       # "ms", "MB" or "%" (of one core)
    what: str
    budgeted: bool = True  # False: reported only


CHECK_METRICS = (
    CheckMetric("restart_ms", "ms",
                f"SIGKILL of an app to its restart, median of {CHECK_CRASH_ROUNDS} rounds"),
    CheckMetric("restart_p90_ms", "ms", "the same, p90 (reported, no budget)", budgeted=False),
    CheckMetric("start_json_ms", "ms",
                f"`start ecosystem.json`, {CHECK_APPS} apps, median of {CHECK_ROUNDS} rounds"),
    CheckMetric("stop_all_ms", "ms",
                f"`stop all`, {CHECK_APPS} apps, median of {CHECK_ROUNDS} rounds"),
    CheckMetric("list_ms", "ms", f"`list`, {CHECK_APPS} apps online, median of "
                f"{CHECK_ROUNDS * CHECK_LIST_RUNS} runs"),
    CheckMetric("jlist_ms", "ms", f"`jlist`, {CHECK_APPS} apps online, median of "
                f"{CHECK_ROUNDS * CHECK_LIST_RUNS} runs"),
    CheckMetric("rss_idle_mb", "MB", f"daemon VmRSS, 0 apps, {CHECK_SETTLE_S:g} s after start"),
    CheckMetric("rss_200_mb", "MB",
                f"daemon VmRSS, {CHECK_APPS} apps online, median of {CHECK_ROUNDS} rounds"),
    CheckMetric("cpu_idle_200_pct", "%", f"daemon CPU (% of one core), {CHECK_APPS} idle apps, "
                f"{CHECK_CPU_WINDOW_S:g} s without CLI calls, lowest of {CHECK_CPU_WINDOWS}"),
)
CHECK_METRIC = {cm.key: cm for cm in CHECK_METRICS}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_budgets(path: Path) -> dict:
    """budgets.json, checked: {"comment", "headroom": {unit: factor}, "metrics": {key:
    {"budget": number > 0, "unit": str, "measured": number, "note": str}}}. Raises ValueError
    (OSError when it cannot be read) with what is wrong."""
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise ValueError(f'{path}: no "metrics" object')
    headroom = doc.get("headroom", DEFAULT_HEADROOM)
    if not isinstance(headroom, dict) or not all(
            _is_number(v) and v >= 1 for v in headroom.values()):
        raise ValueError(f'{path}: "headroom" must map units to factors >= 1')
    for key, e in doc["metrics"].items():
        if not isinstance(e, dict):
            raise ValueError(f"{path}: metric {key}: not an object")
        if not _is_number(e.get("budget")) or e["budget"] <= 0:
            raise ValueError(f'{path}: metric {key}: "budget" must be a number > 0')
        if not isinstance(e.get("unit"), str):
            raise ValueError(f'{path}: metric {key}: "unit" missing')
        if "measured" in e and e["measured"] is not None and not _is_number(e["measured"]):
            raise ValueError(f'{path}: metric {key}: "measured" must be a number')
    return doc


def compare_budgets(figures: dict[str, float | None], budgets: dict | None) -> list[dict]:
    """One row per metric (CHECK_METRICS' order, then budgets of metrics this script does not
    measure): metric, unit, measured, budget, status: "ok" (measured <= budget), "OVER",
    "not measured", "no budget", "unit mismatch", or "info" (no budget by design)."""
    entries = (budgets or {}).get("metrics", {})
    rows = []
    for cm in CHECK_METRICS:
        v = figures.get(cm.key)
        e = entries.get(cm.key)
        b = e["budget"] if e else None
        if not cm.budgeted:
            status = "info"
        elif e is None:
            status = "no budget"
        elif e.get("unit") != cm.unit:
            status = "unit mismatch"
        elif v is None:
            status = "not measured"
        else:
            status = "ok" if v <= b else "OVER"
        rows.append({"metric": cm.key, "unit": cm.unit, "measured": v, "budget": b,
                     "status": status, "what": cm.what})
    for key, e in entries.items():
        if key not in CHECK_METRIC:
            rows.append({"metric": key, "unit": e.get("unit"), "measured": None,
                         "budget": e["budget"], "status": "not measured",
                         "what": "in budgets.json but not measured by this script"})
    return rows


def check_passed(rows: list[dict]) -> bool:
    return all(r["status"] in ("ok", "info") for r in rows)


def _check_value(v: float | None, unit: str | None) -> str:
    if v is None:
        return "-"
    nd = 2 if unit == "%" else 1
    return f"{v:.{nd}f} {unit}"


def format_check_table(rows: list[dict]) -> str:
    head = ("metric", "measured", "budget", "of budget", "status", "what")
    lines = [head]
    for r in rows:
        b = r["budget"]
        used = (f"{100 * r['measured'] / b:.0f}%"
                if r["measured"] is not None and b else "-")
        lines.append((r["metric"], _check_value(r["measured"], r["unit"]),
                      "-" if b is None else f"{b:g} {r['unit']}", used, r["status"], r["what"]))
    widths = [max(len(x[i]) for x in lines) for i in range(len(head) - 1)]
    right = (False, True, True, True, False)
    out = []
    for x in lines:
        cells = [x[i].rjust(widths[i]) if right[i] else x[i].ljust(widths[i])
                 for i in range(len(widths))]
        out.append("  ".join(cells) + "  " + x[-1])
    out.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(head[-1]))
    return "\n".join(out)


def ceil_sig(x: float, digits: int = 2) -> float:
    """x rounded up to `digits` significant digits (4.06 -> 4.1, 12.5 -> 13, 0.333 -> 0.34)."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return round(math.ceil(round(x / scale, 9)) * scale, 12)


def updated_budgets(doc: dict | None, runs: list[dict[str, float | None]], source: str) -> dict:
    """budgets.json rewritten from the figures of one or more runs: for every budgeted metric,
    measured = the worst (highest) figure of the runs and budget = ceil_sig(measured x the
    headroom of its unit). Notes, the comment and the headroom of `doc` (the current file, or
    None) are kept. Raises ValueError if a metric has no figure in any run."""
    doc = doc or {}
    headroom = {**DEFAULT_HEADROOM, **doc.get("headroom", {})}
    old = doc.get("metrics", {})
    metrics = {}
    for cm in CHECK_METRICS:
        if not cm.budgeted:
            continue
        vals = [r[cm.key] for r in runs if r.get(cm.key) is not None]
        if not vals:
            raise ValueError(f"no figure for {cm.key} in the run(s): budgets not updated")
        worst = max(vals)
        note = (old.get(cm.key) or {}).get("note", cm.what)
        metrics[cm.key] = {"budget": ceil_sig(worst * headroom[cm.unit]), "unit": cm.unit,
                           "measured": round(worst, 3), "note": note}
    return {"comment": doc.get("comment", BUDGETS_COMMENT), "headroom": headroom,
            "measured_on": source, "metrics": metrics}


def write_budgets(path: Path, old: dict | None, doc: dict) -> None:
    """Writes doc to path, and logs each budget that changed from old (the file before)."""
    before = (old or {}).get("metrics", {})
    for key, e in doc["metrics"].items():
        b = (before.get(key) or {}).get("budget")
        if b != e["budget"]:
            log(f"budget of {key}: {'none' if b is None else f'{b:g}'} -> {e['budget']:g} "
                f"{e['unit']} (measured {e['measured']:g})")
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def figures_from_results(doc: dict) -> dict[str, float | None]:
    """The measured figures of a --check-output file."""
    return {k: (v or {}).get("measured") for k, v in doc.get("metrics", {}).items()}


def check_round_figures(rounds: list[dict]) -> dict[str, float | None]:
    """The start / stop rounds' figures so far (loaded_round() results)."""
    rss = [rd["rss"] for rd in rounds if rd["rss"] is not None]
    return {
        "start_json_ms": median([rd["start_s"] * 1e3 for rd in rounds]),
        "stop_all_ms": median([rd["stop_s"] * 1e3 for rd in rounds]),
        "list_ms": median([x * 1e3 for rd in rounds for x in rd["list_s"]]),
        "jlist_ms": median([x * 1e3 for rd in rounds for x in rd["jlist_s"]]),
        "rss_200_mb": median(rss),
    }


def cpu_idle_fraction(seconds: float) -> float:
    """The share of the machine's CPU time that was idle over `seconds` (/proc/stat)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)
    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet_machine(min_idle: float = CHECK_QUIET_IDLE, most_s: float = CHECK_QUIET_MAX_S
                           ) -> float:
    """Wait until the machine is mostly idle (what ran before, such as CI's test suite, may
    still be ending: its processes, the kernel writing back a build) for two 0.5 s windows
    in a row, for at most `most_s`; returns how long it waited. The figures are noted with it."""
    began = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - began < most_s:
        quiet = quiet + 1 if cpu_idle_fraction(0.5) >= min_idle else 0
    waited = time.monotonic() - began
    log(f"check: waited {waited:.1f} s for a quiet machine"
        + ("" if quiet >= 2 else f" (still busy after {most_s:g} s: measuring anyway)"))
    return waited


def quietest_cpu_window(m: Manager, dpid: int) -> dict:
    """CHECK_CPU_WINDOWS cpu_window()s in a row; the one with the least CPU, with every
    window's % in "windows_pct". On a shared host another tenant's burst (or this machine's
    own leftovers) slows the daemon's few wake-ups in one window and not in the next; a
    regression of the daemon's idle cost shows in every window, so the lowest still shows it."""
    windows = [cpu_window(m, dpid, CHECK_CPU_WINDOW_S) for _ in range(CHECK_CPU_WINDOWS)]
    best = min(windows, key=lambda w: w["pct"])
    return {**best, "windows_pct": [round(w["pct"], 3) for w in windows]}


def check_attempt(cfg: argparse.Namespace) -> tuple[dict, dict, str | None]:
    """One run of measure_check() with its own daemon and temp dir, cleaned up after (kept
    with --keep): its figures, raw samples and error (None if it went through)."""
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-check-"))
    log(f"check: temp dir {tmp}")
    m = Kelpie(tmp / "kelpie")
    cleaned = []

    def cleanup() -> None:  # in the finally below, and at exit or on a signal: once
        if cleaned:
            return
        cleaned.append(True)
        try:
            m.cleanup()
        except Exception as e:  # noqa: BLE001 - best effort
            log(f"cleanup failed: {e}")
        if not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    cleanup_on_exit(cleanup)
    figures: dict[str, float | None] = {}
    raw: dict = {}
    error = None
    try:
        measure_check(m, figures, raw)
    except Exception as e:  # noqa: BLE001 - reported, and the check fails
        error = f"{type(e).__name__}: {e}"
        log(f"check failed: {error}")
    finally:
        cleanup()
    return figures, raw, error


def better_figure(a: float | None, b: float | None) -> float | None:
    """The better (lower: every check metric is a cost) of two runs' figures of one metric."""
    known = [x for x in (a, b) if x is not None]
    return min(known) if known else None


def measure_check(m: Manager, figures: dict, raw: dict) -> None:
    """The --check measurements, with one daemon: its RSS idle; CHECK_ROUNDS rounds of the
    core scenario's loaded_round() from ecosystem.json (the last one with the CPU window);
    crash_latencies(). Fills figures (metric -> value) and raw as it goes, so that what was
    measured before an error is still reported; raises on any failure."""
    cfg = argparse.Namespace(settle=CHECK_SETTLE_S, rss_samples=CHECK_RSS_SAMPLES,
                             list_runs=CHECK_LIST_RUNS)
    _eco_js, crashy, stamp = write_ecosystems(m, CHECK_APPS)
    eco = m.workdir / "ecosystem.json"
    raw["waited_for_quiet_s"] = wait_for_quiet_machine()
    dpid, figures["rss_idle_mb"] = start_daemon_idle_rss(m, CHECK_SETTLE_S, CHECK_RSS_SAMPLES)
    if dpid is None:
        raise RuntimeError("no daemon pid file after `kelpie ping`")
    raw["daemon_pid"] = dpid
    rounds: list[dict] = []
    for r in range(CHECK_ROUNDS):
        last = r == CHECK_ROUNDS - 1
        log(f"check: round {r + 1}/{CHECK_ROUNDS}: start {CHECK_APPS} apps from {eco.name}"
            + (f", the daemon's CPU over {CHECK_CPU_WINDOWS} x {CHECK_CPU_WINDOW_S:g} s"
               if last else ""))
        rd = loaded_round(m, eco, CHECK_APPS, cfg, while_idle=(
            (lambda: quietest_cpu_window(m, dpid)) if last else None))
        rounds.append(rd)
        raw["rounds"] = rounds
        figures.update(check_round_figures(rounds))
        if rd["idle"] is not None:
            figures["cpu_idle_200_pct"] = rd["idle"]["pct"]
            raw["cpu_windows_pct"] = rd["idle"]["windows_pct"]
            raw["processes_on_machine"] = rd["idle"]["processes_on_machine"]
            log(f"check:   daemon CPU {rd['idle']['pct']:.2f}% of a core (windows: "
                + ", ".join(f"{p:.2f}%" for p in rd["idle"]["windows_pct"]) + "); by thread: "
                + ", ".join(f"{k} {v:.2f}%"
                            for k, v in list(rd["idle"]["threads_pct"].items())[:4]))
        if not rd["online"]:
            raise RuntimeError(f"round {r + 1}: not all {CHECK_APPS} apps online within 120 s")
        if not rd["stopped"]:
            raise RuntimeError(f"round {r + 1}: not all {CHECK_APPS} apps stopped within 120 s")
    log(f"check: crash-to-restart, {CHECK_CRASH_ROUNDS} rounds")
    lat = crash_latencies(m, crashy, stamp, CHECK_CRASH_ROUNDS)
    raw["restart_ms"] = lat
    figures["restart_ms"], figures["restart_p90_ms"] = median(lat), p90(lat)
    if len(lat) < CHECK_CRASH_ROUNDS:
        raise RuntimeError(f"only {len(lat)} of {CHECK_CRASH_ROUNDS} crash rounds restarted")
    if m.daemon_pid() != dpid:
        raise RuntimeError(f"the daemon changed during the check: pid {dpid}, now "
                           f"{m.daemon_pid()}")


def git_commit() -> str | None:
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                           text=True, timeout=30)
    except OSError:
        return None
    return p.stdout.strip() or None


def check_run_summary(doc: dict) -> str:
    """What a --check-output file says of the build and machine, for budgets.json."""
    commit = doc.get("commit")
    return (f"{doc.get('kelpie') or 'kelpie ?'}"
            + (f" at {commit[:10]}" if commit else "")
            + f", {(doc.get('machine') or {}).get('summary', 'machine ?')}")


def check_main(cfg: argparse.Namespace) -> int:
    """--check and --check-update-budgets."""
    budgets_path: Path = cfg.budgets
    try:
        budgets: dict | None = load_budgets(budgets_path)
    except FileNotFoundError:
        budgets = None
        log(f"{budgets_path} does not exist (yet): no budgets")
    except (OSError, ValueError) as e:
        log(f"cannot use the budgets: {e}")
        return 1
    if cfg.check_update_budgets:  # --check-update-budgets FILE...: no run
        try:
            docs = [json.loads(Path(f).read_text()) for f in cfg.check_update_budgets]
        except (OSError, json.JSONDecodeError) as e:
            log(f"cannot read the results: {e}")
            return 1
        runs = [figures_from_results(d) for d in docs]
        source = f"worst of {len(runs)} runs of --check: " + "; ".join(sorted(
            {check_run_summary(d) for d in docs}))
        try:
            new = updated_budgets(budgets, runs, source)
        except ValueError as e:
            log(str(e))
            return 1
        write_budgets(budgets_path, budgets, new)
        print(format_check_table(compare_budgets(
            {k: v["measured"] for k, v in new["metrics"].items()}, new)))
        log(f"wrote {budgets_path}")
        return 0

    t_begin = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    if not cfg.no_build:
        build_kelpie()
    for b in (KELPIE_BIN, FAKE_APP):
        if not b.exists():
            log(f"missing binary {b} (build it, or run without --no-build)")
            return 1
    t_measure = time.monotonic()
    figures, raw, error = check_attempt(cfg)
    first_over = [r["metric"] for r in compare_budgets(figures, budgets)
                  if r["status"] == "OVER"]
    if error is None and first_over:
        # A shared host's noisy minute can double a figure; a regression is there every time.
        log(f"check: over budget ({', '.join(first_over)}): measuring again, once; each figure "
            f"is the better of the two runs")
        again, raw_again, error = check_attempt(cfg)
        raw = {"first_run": {"figures": figures, "raw": raw}, **raw_again}
        figures = {k: better_figure(figures.get(k), again.get(k))
                   for k in {*figures, *again}}
    measure_s = time.monotonic() - t_measure
    info = machine_info()
    version = subprocess.run([str(KELPIE_BIN), "--version"], capture_output=True,
                             text=True).stdout.strip()
    machine = {"nproc": info["nproc"], "cpu": info["cpu"], "kernel": info["kernel"],
               "load_before": load_before, "load_after": loadavg()}
    machine["summary"] = (f"{info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, "
                          f"{started.strftime('%Y-%m-%d')}")
    rows = compare_budgets(figures, budgets)
    ok = error is None and check_passed(rows)
    print(f"\nKelpie performance check ({version}, {CHECK_APPS} apps; budgets: "
          f"{os.path.relpath(budgets_path, Path.cwd())}); load average {load_before} before, "
          f"{machine['load_after']} after; measured in {measure_s:.0f} s\n")
    print(format_check_table(rows))
    procs = raw.get("processes_on_machine")
    if procs is not None and procs > CHECK_CROWDED:
        print(f"\nnote: {procs} processes on the machine during the CPU window (about "
              f"{CHECK_APPS + 80} when the check runs alone): the daemon's monitor scans all of "
              f"/proc every second, so cpu_idle_200_pct grows with other processes")
    if error:
        print(f"\nerror: {error}")
    over = [r["metric"] for r in rows if r["status"] not in ("ok", "info")]
    print("\n" + ("check passed" if ok else "CHECK FAILED"
                  + (f": {', '.join(over)}" if over else "")))
    if cfg.check_output:
        doc = {"ok": ok, "error": error, "date": started.isoformat(timespec="seconds"),
               "kelpie": version, "commit": git_commit(), "apps": CHECK_APPS,
               "measure_s": measure_s, "total_s": time.monotonic() - t_begin,
               "machine": machine, "budgets_file": str(budgets_path),
               "metrics": {r["metric"]: {k: r[k] for k in
                                         ("measured", "budget", "unit", "status")}
                           for r in rows},
               "raw": raw}
        cfg.check_output.parent.mkdir(parents=True, exist_ok=True)
        cfg.check_output.write_text(json.dumps(round_floats(doc), indent=1) + "\n")
        log(f"wrote {cfg.check_output}")
    if cfg.check_update_budgets is not None:  # the flag alone: from this run's figures
        if error is not None:
            log("the run failed: budgets not updated")
            return 1
        try:
            new = updated_budgets(budgets, [figures], "one run of --check: " + check_run_summary(
                {"kelpie": version, "commit": git_commit(), "machine": machine}))
        except ValueError as e:
            log(str(e))
            return 1
        write_budgets(budgets_path, budgets, new)
        print("\nnew budgets:\n" + format_check_table(compare_budgets(figures, new)))
        log(f"wrote {budgets_path}")
        return 0
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
# Setup


def build_kelpie() -> None:
    log("building Kelpie (release)")
    subprocess.run(["cargo", "build", "--release", "-p", "kelpie-cli", "-p", "kelpie-testkit"],
                   cwd=REPO, check=True, stdout=sys.stderr)
    for b in (KELPIE_BIN, FAKE_APP):
        if not b.exists():
            sys.exit(f"missing binary after build: {b}")


def install_pm2(prefix: Path) -> Path:
    pm2_bin = prefix / "node_modules" / ".bin" / "pm2"
    if pm2_bin.exists():
        log(f"reusing PM2 in {prefix}")
        return pm2_bin
    log(f"installing pm2@7 into {prefix}")
    subprocess.run(["npm", "install", "--prefix", str(prefix), "pm2@7", "--no-audit",
                    "--no-fund"], check=True, stdout=sys.stderr,
                   env={**os.environ, "PM2_DISABLE_VERSION_CHECK": "1"})
    if not pm2_bin.exists():
        sys.exit(f"pm2 binary not found at {pm2_bin}")
    return pm2_bin


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Kelpie vs PM2 benchmark")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions (1 round, 5 list runs, 5 crash rounds)")
    ap.add_argument("--apps", type=int, default=200, help="number of apps (default 200)")
    ap.add_argument("--only", choices=["core", "logs", "cluster", "health", "runtime",
                                       "reliability"],
                    help="run only this scenario: core (RSS, list, start/stop, crash), logs, "
                         "cluster, health, runtime or reliability (default: all)")
    ap.add_argument("--wrk-seconds", type=float, default=4.0,
                    help="length of each cluster throughput run (default 4)")
    ap.add_argument("--log-lines", type=int, default=500_000,
                    help="lines the logs app prints (default 500000)")
    ap.add_argument("--health-apps", type=int,
                    help="idle apps of the health scenario's CPU measurement (default 500, "
                         "100 with --quick)")
    ap.add_argument("--cpu-window", type=float,
                    help="length of each window of the health scenario's CPU measurement, in s "
                         "(default 30, 10 with --quick)")
    ap.add_argument("--kelpie-only", action="store_true", help="skip PM2")
    ap.add_argument("--output", type=Path, help="also write a markdown report to this file")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--pm2-prefix", type=Path,
                    help="npm prefix to install PM2 into / reuse (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--self-test", action="store_true",
                    help="only run the tests of the helpers (no build, no managers)")
    ap.add_argument("--check", action="store_true",
                    help="regression check, Kelpie only (~30 s after the build): the core "
                         "figures against the budgets in bench/budgets.json; exit 1 if one is "
                         "over its budget or could not be measured")
    ap.add_argument("--check-output", type=Path, metavar="FILE",
                    help="with --check: also write the results as JSON to FILE")
    ap.add_argument("--check-update-budgets", nargs="*", type=Path, metavar="RESULTS_JSON",
                    help="rewrite bench/budgets.json with the headroom rule: alone, from the "
                         "figures of a --check run it makes; with --check-output files, from "
                         "the worst figure of those (no run)")
    ap.add_argument("--budgets", type=Path, default=BUDGETS_FILE, metavar="FILE",
                    help="the budgets file of --check (default bench/budgets.json)")
    a = ap.parse_args()
    if a.check_update_budgets is not None and not a.check_update_budgets:
        a.check = True  # the flag alone: run the check, then rewrite the budgets
    if a.check_output and not a.check:
        ap.error("--check-output needs --check")
    if a.check or a.check_update_budgets:
        for flag, given in (("--only", a.only), ("--output", a.output), ("--quick", a.quick),
                            ("--self-test", a.self_test), ("--apps", a.apps != 200)):
            if given:
                ap.error(f"{flag} cannot go with --check / --check-update-budgets (the check "
                         f"has fixed repetitions and {CHECK_APPS} apps)")
    if a.quick:
        # settle: 3 s, so that RSS is of the steady state (the daemon unmaps the code of a
        # burst of work 1-2 s after it).
        a.rounds, a.list_runs, a.crash_rounds, a.rss_samples, a.settle = 1, 5, 5, 3, 3.0
        # Health: memory limit rounds (Kelpie per variant; PM2 main; PM2 child).
        a.health_rounds_kelpie, a.health_rounds_pm2, a.health_rounds_pm2_child = 3, 1, 1
    else:
        a.rounds, a.list_runs, a.crash_rounds, a.rss_samples, a.settle = 3, 5, 20, 5, 3.0
        a.health_rounds_kelpie, a.health_rounds_pm2, a.health_rounds_pm2_child = 5, 3, 1
    if a.health_apps is None:
        a.health_apps = 100 if a.quick else 500
    if a.cpu_window is None:
        a.cpu_window = 10.0 if a.quick else 30.0
    a.health_settle = 5.0  # after all the health apps are online, before the CPU windows
    # Idle processes no manager knows, for one more CPU window (the cost must not grow).
    a.unrelated = 1000 if a.quick else 5000
    if not 1 <= a.log_lines <= 9_999_999:
        ap.error("--log-lines must be between 1 and 9999999 (7-digit line numbers)")
    a.log_timeout, a.log_stall = 60.0, 10.0
    a.core = a.only in (None, "core")
    a.logs = a.only in (None, "logs")
    a.cluster = a.only in (None, "cluster")
    a.health = a.only in (None, "health")
    a.runtime = a.only in (None, "runtime")
    a.reliability = a.only in (None, "reliability")
    a.runtime_rounds = 2 if a.quick else 5
    return a


def cleanup_on_exit(cleanup: "Callable[[], None]") -> None:
    """Runs cleanup() at exit and on SIGINT, SIGTERM or SIGHUP (then exits 128 + the signal;
    a second signal does not interrupt the cleanup). cleanup() must be safe to run twice."""
    atexit.register(cleanup)

    def on_signal(signum, _frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        log(f"signal {signum}: cleaning up")
        cleanup()
        os._exit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)


def main() -> int:
    cfg = parse_args()
    if cfg.self_test:
        return self_test()
    if cfg.check or cfg.check_update_budgets:
        return check_main(cfg)
    argv_str = "python3 " + " ".join(shlex.quote(x) for x in
                                     [os.path.relpath(SCRIPT, Path.cwd()), *sys.argv[1:]])
    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()

    if not cfg.no_build:
        if cfg.core or cfg.logs or cfg.cluster or cfg.health or cfg.reliability:
            build_kelpie()
        if cfg.runtime:
            build_static()
    wrk, cluster_skipped = None, None
    if cfg.cluster:
        wrk, why = ensure_wrk()
        if wrk is None and cfg.only == "cluster":
            log(f"cannot run the cluster scenario: {why}")
            return 1
        if wrk is None:
            cluster_skipped = why
            cfg.cluster = False
            log(f"skipping the cluster scenario: {why}")
    runtime_skipped = None
    if cfg.runtime:
        ok, why = unshare_permitted()
        if not ok and cfg.only == "runtime":
            log(f"cannot run the runtime scenario: {why}")
            return 1
        if not ok:
            runtime_skipped = why
            cfg.runtime = False
            log(f"skipping the runtime scenario: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-"))
    log(f"temp dir {tmp}")
    log_scripts: dict[str, Path] = {}
    for v in LOG_VARIANTS:
        log_scripts[v.key] = tmp / v.filename
        log_scripts[v.key].write_text(v.js % cfg.log_lines)
    cluster_script = tmp / f"{CLUSTER_APP}.js"
    cluster_script.write_text(CLUSTER_APP_JS)
    cfg.tmp = tmp
    rel_scripts: dict[str, Path] = {}
    for key, (fname, js) in REL_SCRIPTS.items():
        rel_scripts[key] = tmp / fname
        rel_scripts[key].write_text(js)

    managers: list[Manager] = []

    def cleanup_all() -> None:
        for m in managers:
            try:
                m.cleanup()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup of {m.label} failed: {e}")
        managers.clear()
        for p in WRK_PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        WRK_PROCS.clear()
        for run in list(RUNTIME_RUNS):
            run.kill()
        RUNTIME_RUNS.clear()
        for script in (*log_scripts.values(), cluster_script, *rel_scripts.values()):
            kill_with_marker(str(script))  # a logs or cluster app left behind, if any
        if not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    cleanup_on_exit(cleanup_all)

    def run_one(m: Manager, scenario) -> dict:
        """One scenario with a fresh daemon and home, stopped afterwards (never two daemons)."""
        managers.append(m)
        res = scenario(m)
        m.cleanup()
        return res

    def run_part(m: Manager, part) -> dict:
        """Like run_one, for a part of the reliability scenario: an error is recorded (and
        shown in the table) instead of ending the run; the manager is cleaned up either way."""
        managers.append(m)
        m.app_markers = (*m.app_markers, *map(str, rel_scripts.values()), str(cluster_script))
        try:
            return part(m)
        except Exception as e:  # noqa: BLE001 - reported in the table
            log(f"{m.label}: reliability part failed: {type(e).__name__}: {e}")
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            m.cleanup()
            managers.remove(m)
            for script in (*rel_scripts.values(), cluster_script):
                kill_with_marker(str(script))  # an app the killed daemon left behind

    pm2_res = kel_res = None
    # variant key -> {"alone": ..., "pm2": ..., "kelpie": ...}
    logs: dict[str, dict] = {v.key: {} for v in LOG_VARIANTS} if cfg.logs else {}
    cluster: dict[str, dict | None] = {}  # "pm2", "kelpie" -> summarize_cluster()
    health: dict[str, dict] = {}  # "pm2", "kelpie" -> {"cpu": ..., "memory": ...}
    runtime: dict | None = None  # bench_runtime()
    reliability: dict[str, dict] = {}  # "pm2", "kelpie" -> bench_reliability()
    pm2_bin: Path | None = None
    try:
        for v in LOG_VARIANTS if cfg.logs else ():
            logs[v.key]["alone"] = app_alone(log_scripts[v.key], tmp / "alone", cfg)
        version_bin = KELPIE_BIN if KELPIE_BIN.exists() else KELPIE_STATIC
        versions = {"kelpie": subprocess.run([str(version_bin), "--version"], capture_output=True,
                                             text=True).stdout.strip()}
        if not cfg.kelpie_only:
            pm2_bin = install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix else tmp / "pm2")
            probe = Pm2(tmp / "pm2-version", pm2_bin)
            versions["pm2"] = probe.run("--version", capture=True).stdout.decode().strip() \
                .splitlines()[-1]
            run_one(probe, lambda m: None)  # `pm2 --version` may start a daemon: stop it
            if cfg.core:
                pm2_res = run_one(Pm2(tmp / "pm2-run", pm2_bin),
                                  lambda m: bench_manager(m, cfg.apps, cfg))
            for v in LOG_VARIANTS if cfg.logs else ():
                logs[v.key]["pm2"] = run_one(
                    Pm2(tmp / f"pm2-logs-{v.key}", pm2_bin),
                    lambda m, v=v: bench_logs(m, log_scripts[v.key], cfg))
            if cfg.cluster:
                cluster["pm2"] = run_one(
                    Pm2(tmp / "pm2-cluster", pm2_bin),
                    lambda m: bench_cluster(m, cluster_script, free_port(), wrk, cfg))
            if cfg.health:
                health["pm2"] = {
                    "cpu": run_one(Pm2(tmp / "pm2-health-cpu", pm2_bin),
                                   lambda m: bench_health_cpu(m, cfg.health_apps, cfg)),
                    "memory": run_one(Pm2(tmp / "pm2-health-memory", pm2_bin),
                                      lambda m: bench_health_memory(
                                          m, {"main": cfg.health_rounds_pm2,
                                              "child": cfg.health_rounds_pm2_child},
                                          Pm2.memory_check_period_s, cfg))}
            if cfg.reliability:
                reliability["pm2"] = bench_reliability(
                    lambda k: Pm2(tmp / f"pm2-rel-{k}", pm2_bin), run_part, rel_scripts,
                    cluster_script, cfg)
        if cfg.core:
            kel_res = run_one(Kelpie(tmp / "kelpie-run"),
                              lambda m: bench_manager(m, cfg.apps, cfg))
            alone = app_alone_start_ms(cfg.crash_rounds, tmp)
            kel_res["alone_start_ms"] = median(alone)
            kel_res["raw"]["alone_start_ms"] = alone
            ok, why = unprivileged_possible()
            if ok:
                kel_res["nocgroups"] = run_one(KelpieUnprivileged(tmp / "kelpie-nocg"),
                                               lambda m: bench_restart_only(m, cfg))
                kel_res["raw"]["nocgroups_restart_ms"] = kel_res["nocgroups"]["raw"]["restart_ms"]
            else:
                log(f"Kelpie without cgroups: skipped ({why})")
        for v in LOG_VARIANTS if cfg.logs else ():
            logs[v.key]["kelpie"] = run_one(
                Kelpie(tmp / f"kelpie-logs-{v.key}"),
                lambda m, v=v: bench_logs(m, log_scripts[v.key], cfg))
        if cfg.cluster:
            cluster["kelpie"] = run_one(
                Kelpie(tmp / "kelpie-cluster"),
                lambda m: bench_cluster(m, cluster_script, free_port(), wrk, cfg))
            try:
                cluster["kelpie"]["bound"] = bench_bound(cluster_script, free_port(), wrk, cfg)
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"the bound (the app run by hand) could not be measured: {e}")
        if cfg.health:
            health["kelpie"] = {
                "cpu": run_one(Kelpie(tmp / "kelpie-health-cpu"),
                               lambda m: bench_health_cpu(m, cfg.health_apps, cfg)),
                "memory": run_one(Kelpie(tmp / "kelpie-health-memory"),
                                  lambda m: bench_health_memory(
                                      m, {"main": cfg.health_rounds_kelpie,
                                          "child": cfg.health_rounds_kelpie},
                                      Kelpie.memory_check_period_s, cfg))}
        if cfg.reliability:
            reliability["kelpie"] = bench_reliability(
                lambda k: Kelpie(tmp / f"kelpie-rel-{k}"), run_part, rel_scripts,
                cluster_script, cfg)
        if cfg.runtime:
            runtime = bench_runtime(pm2_bin.parent / "pm2-runtime" if pm2_bin else None, tmp, cfg)
    finally:
        cleanup_all()

    info = machine_info()
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    ver_line = f"kelpie: `{versions['kelpie']}`" + (
        f", pm2: `{versions['pm2']}`" if "pm2" in versions else "")
    mach_line = (f"{info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                 f"Linux {info['kernel']}, node {info['node']}, Python {info['python']}, "
                 f"load average {load_before} at start (1/5/15 min)")
    reps_parts = []
    if cfg.core:
        reps_parts.append(f"{cfg.rounds} start/stop round(s) (median), "
                          f"{cfg.rounds * cfg.list_runs} runs of each list command (median), "
                          f"{cfg.crash_rounds} crash rounds")
    if cfg.logs:
        reps_parts.append(f"{cfg.rounds} logs round(s) of {cfg.log_lines:,} lines per app "
                          f"variant and manager (median)")
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
    reps = "; ".join(reps_parts)
    if cfg.cluster:
        versions["wrk"] = wrk_version(wrk)

    sections = []
    if kel_res is not None:
        sections.append(build_table(cfg.apps, pm2_res, kel_res))
    if logs:
        sections.append(build_logs_table(cfg.log_lines, logs))
    if cluster:
        sections.append(build_cluster_table(cluster.get("pm2"), cluster["kelpie"]))
    if health:
        sections.append(build_health_table(health.get("pm2"), health["kelpie"]))
    if runtime:
        sections.append(build_runtime_table(runtime["pm2"], runtime["kelpie"], runtime["sizes"]))
    if reliability:
        sections.append(build_reliability_table(reliability["kelpie"], reliability.get("pm2")))
    print(f"\nDate: {date}\nMachine: {mach_line}\nVersions: {ver_line}\nRepetitions: {reps}\n")
    print("\n\n".join(sections))
    if logs:
        print("\n" + logs_notes(cfg.log_lines, logs))
    if cluster:
        print("\n" + cluster_notes(cfg, versions["wrk"]))
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

    if cfg.output:
        raw: dict = {}
        if kel_res is not None:
            raw["pm2"] = pm2_res and pm2_res["raw"]
            raw["kelpie"] = kel_res["raw"]
        if logs:
            raw["logs"] = {
                k: {"pm2": d.get("pm2") and d["pm2"]["raw"], "kelpie": d["kelpie"]["raw"],
                    "app_alone_s": d["alone"]["raw"]}
                for k, d in logs.items()}
        raw_txt = json.dumps(round_floats(raw), indent=1)
        section = None
        if cluster:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}, wrk `{versions['wrk']}`; {info['nproc']} CPUs "
                        f"({info['cpu']}), node {info['node']}")
            section = cluster_section(
                build_cluster_table(cluster.get("pm2"), cluster["kelpie"]),
                cluster_notes(cfg, versions["wrk"]), run_line,
                {k: d and d["raw"] for k, d in cluster.items()})
        else:
            # Not measured this time: keep the cluster results the file already has.
            section = existing_cluster_section(cfg.output)
        if health:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                        f"Linux {info['kernel']}")
            hsection = health_section(
                build_health_table(health.get("pm2"), health["kelpie"]),
                health_notes(cfg, cfg.health_apps), run_line,
                {k: {part: d[part] for part in ("cpu", "memory")} for k, d in health.items()})
        else:
            hsection = existing_health_section(cfg.output)  # kept as the file has it
        if runtime:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}; {info['nproc']} CPUs ({info['cpu']}), node {info['node']}, "
                        f"Linux {info['kernel']}")
            rsection = runtime_section(
                build_runtime_table(runtime["pm2"], runtime["kelpie"], runtime["sizes"]),
                runtime_notes(cfg), run_line, {"runs": runtime["raw"], "sizes": runtime["sizes"]})
        else:
            rsection = existing_runtime_section(cfg.output)  # kept as the file has it
        if reliability:
            run_line = (f"Command: `{argv_str}`; {date}; load average {load_before} at start; "
                        f"{ver_line}; {info['nproc']} CPUs ({info['cpu']}), node {info['node']}, "
                        f"Linux {info['kernel']}")
            relsection = reliability_section(
                build_reliability_table(reliability["kelpie"], reliability.get("pm2")),
                reliability_notes(cfg), run_line, reliability)
        else:
            relsection = existing_reliability_section(cfg.output)  # kept as the file has it
        if cfg.only == "cluster" and cfg.output.exists():
            # Only the cluster scenario ran: replace its section, keep the rest of the report.
            cfg.output.write_text(merge_cluster_section(cfg.output.read_text(), section))
            log(f"updated the cluster section of {cfg.output}")
            return 0
        if cfg.only == "health" and cfg.output.exists():
            # Only the health scenario ran: replace its section, keep the rest of the report.
            cfg.output.write_text(merge_health_section(cfg.output.read_text(), hsection))
            log(f"updated the health section of {cfg.output}")
            return 0
        if cfg.only == "runtime" and cfg.output.exists():
            # Only the runtime scenario ran: replace its section, keep the rest of the report.
            cfg.output.write_text(merge_runtime_section(cfg.output.read_text(), rsection))
            log(f"updated the runtime section of {cfg.output}")
            return 0
        if cfg.only == "reliability" and cfg.output.exists():
            # Only the reliability scenario ran: replace its section, keep the rest.
            cfg.output.write_text(merge_reliability_section(cfg.output.read_text(), relsection))
            log(f"updated the reliability section of {cfg.output}")
            return 0
        body = []
        if kel_res is not None:
            body.append(build_table(cfg.apps, pm2_res, kel_res) + """

MB = MiB of VmRSS of the daemon process alone (not its apps). Times are the wall time of the whole
CLI command as a user runs it (process start included). Ratio = PM2 / Kelpie (how many times
smaller or faster Kelpie is).""")
        if logs:
            body.append("## Logs\n\n" + build_logs_table(cfg.log_lines, logs)
                        + "\n\n" + logs_notes(cfg.log_lines, logs))
        apps_line = f"- Apps: {cfg.apps}; {reps}" if cfg.core else f"- {reps}"
        if section:
            body.append(section)
        if hsection:
            body.append(hsection)
        if rsection:
            body.append(rsection)
        if relsection:
            body.append(relsection)
        report = f"""# Kelpie vs PM2: benchmark results

Command: `{argv_str}` (from the repository root)

- Date: {date}
- Machine: {mach_line}
- Versions: {ver_line}
{apps_line}

{(chr(10) * 2).join(body)}

See `bench/README.md` for the method.

<details><summary>Raw samples</summary>

```json
{raw_txt}
```

</details>
"""
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(report)
        log(f"wrote {cfg.output}")
    return 0


# --------------------------------------------------------------------------------------------
# Self-test of the log line counter (`--self-test`): synthetic log files in a temp dir.


class LogCounterTest(unittest.TestCase):
    N = 3000

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        self.next = 1

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def lines(self, k: int) -> bytes:
        out = b"".join(log_line(n) + b"\n" for n in range(self.next, self.next + k))
        self.next += k
        return out

    def put(self, name: str, data: bytes, mode: str = "wb") -> Path:
        p = self.dir / name
        if name.endswith(".gz"):
            p.write_bytes(gzip.compress(data))
        else:
            with open(p, mode) as f:
                f.write(data)
        return p

    def check(self, **want) -> dict:
        got = check_log_lines(self.dir, "app", self.N)
        for k, v in want.items():
            self.assertEqual(got[k], v, f"{k}: {got}")
        return got

    def test_line_format(self):
        ln = log_line(1)
        self.assertEqual(len(ln), 90)
        self.assertTrue(ln.startswith(b"line 0000001 "))
        self.assertEqual(parse_log_line(ln), 1)
        self.assertEqual(parse_log_line(log_line(9_999_999)), 9_999_999)
        self.assertIsNone(parse_log_line(ln[:-1]))
        self.assertIsNone(parse_log_line(ln.replace(b"xx", b"xy", 1)))
        self.assertIsNone(parse_log_line(b"line 0000001 " + LOG_PAD + b" 0000002"))

    def test_js_app_matches(self):
        """Each variant of the Node.js app prints exactly what the checker expects, to a pipe
        and to a file (skipped without node)."""
        if not shutil.which("node"):
            self.skipTest("node not found")
        want = b"".join(log_line(n) + b"\n" for n in range(1, 2501))
        for v in LOG_VARIANTS:
            with self.subTest(v.key):
                js = self.dir / v.filename
                js.write_text(v.js % 2500)
                out = subprocess.run(["node", str(js)], capture_output=True, timeout=60,
                                     check=True)
                self.assertEqual(out.stdout, want)
                with open(self.dir / "out.txt", "wb") as f:
                    subprocess.run(["node", str(js)], stdout=f, timeout=60, check=True)
                self.assertEqual((self.dir / "out.txt").read_bytes(), want)

    def test_live_only_and_missing_dir(self):
        self.assertEqual(LineCounter(self.dir / "nope", "app").count(), 0)
        self.assertEqual(list_log_files(self.dir / "nope", "app"), [])
        self.put("app-out.log", self.lines(1000))
        self.assertEqual(LineCounter(self.dir, "app").count(), 1000)
        self.check(lost=self.N - 1000, distinct=1000, duplicates=0, out_of_order=0, rotated=0)

    def test_rotated_plain_gz_and_order(self):
        # Written out of name order on purpose: the listing sorts them.
        self.put("app-out__2026-11-22_08-00-00.log.gz", self.lines(500))
        self.put("app-out__2026-11-22_08-00-00_001.log.gz", self.lines(500))
        self.put("app-out__2026-11-22_08-00-00_002.log", self.lines(500))
        self.put("app-out__2026-11-22_08-00-01.log", self.lines(700))
        self.put("app-out.log", self.lines(800))
        # Not ours: other stream, other app, other names.
        self.put("app-error.log", b"boom\n")
        self.put("app-error__2026-11-22_08-00-00.log", b"boom\n")
        self.put("other-out.log", b"x\n" * 10)
        self.put("app-out__garbage.log", b"x\n" * 10)
        self.put("app-out.log.1", b"x\n" * 10)
        names = [f.path.name for f in list_log_files(self.dir, "app")]
        self.assertEqual(names, ["app-out__2026-11-22_08-00-00.log.gz",
                                 "app-out__2026-11-22_08-00-00_001.log.gz",
                                 "app-out__2026-11-22_08-00-00_002.log",
                                 "app-out__2026-11-22_08-00-01.log", "app-out.log"])
        self.assertEqual(LineCounter(self.dir, "app").count(), self.N)
        self.check(lost=0, distinct=self.N, duplicates=0, out_of_order=0, invalid=0, partial=0,
                   rotated=4)

    def test_counter_value_order_beyond_999(self):
        self.put("app-out__2026-11-22_08-00-00_1000.log", self.lines(2))
        self.next = 1
        self.put("app-out__2026-11-22_08-00-00_999.log", self.lines(1))
        names = [f.path.name for f in list_log_files(self.dir, "app")]
        self.assertEqual(names[0], "app-out__2026-11-22_08-00-00_999.log")

    def test_being_compressed_counted_once(self):
        data = self.lines(1000)
        self.put("app-out__2026-11-22_08-00-00.log", data)
        self.put("app-out__2026-11-22_08-00-00.log.gz", data)
        self.put("app-out.log", self.lines(10))
        self.assertEqual(LineCounter(self.dir, "app").count(), 1010)
        self.check(duplicates=0, distinct=1010, rotated=1)

    def test_half_written_gz(self):
        data = self.lines(1000)
        whole = gzip.compress(data)
        # .log still there: it is used, the partial .gz ignored.
        self.put("app-out__2026-11-22_08-00-00.log", data)
        (self.dir / "app-out__2026-11-22_08-00-00.log.gz").write_bytes(whole[: len(whole) // 2])
        c = LineCounter(self.dir, "app")
        self.assertEqual(c.count(), 1000)
        # .log gone, .gz still partial: not counted (yet), no crash, no cache of the 0.
        (self.dir / "app-out__2026-11-22_08-00-00.log").unlink()
        self.assertEqual(c.count(), 0)
        (self.dir / "app-out__2026-11-22_08-00-00.log.gz").write_bytes(whole)
        self.assertEqual(c.count(), 1000)
        got = check_log_lines(self.dir, "app", self.N)
        self.assertEqual(got["distinct"], 1000)

    def test_incremental_across_rotation_and_compression(self):
        c = LineCounter(self.dir, "app")
        live = self.dir / "app-out.log"
        self.put("app-out.log", self.lines(100))
        self.assertEqual(c.count(), 100)
        self.put("app-out.log", self.lines(50) + log_line(self.next)[:40], "ab")
        self.assertEqual(c.count(), 150)  # a line being written is not counted
        self.put("app-out.log", log_line(self.next)[40:] + b"\n", "ab")
        self.next += 1
        self.assertEqual(c.count(), 151)
        # Rotation: rename (same inode, offset kept), new live file.
        rot = self.dir / "app-out__2026-11-22_08-00-00.log"
        live.rename(rot)
        self.put("app-out.log", self.lines(20))
        self.assertEqual(c.count(), 171)
        # Compression: .gz written, then the .log removed.
        self.put(rot.name + ".gz", rot.read_bytes())
        self.assertEqual(c.count(), 171)
        rot.unlink()
        self.assertEqual(c.count(), 171)
        # A new live file that may reuse a freed inode number: the head check resets it.
        live.unlink()
        self.put("app-out.log", self.lines(5))
        self.assertEqual(c.count(), 151 + 5)
        self.check(distinct=156, lost=self.N - 156, duplicates=0, out_of_order=0,
                   invalid=0, partial=0)

    def test_inode_reuse_same_size(self):
        c = LineCounter(self.dir, "app")
        self.put("app-out.log", self.lines(10))
        self.assertEqual(c.count(), 10)
        # Same inode, content replaced by different lines of the same length.
        with open(self.dir / "app-out.log", "r+b") as f:
            f.write(self.lines(10))
        self.put("app-out.log", self.lines(3), "ab")
        self.assertEqual(c.count(), 13)

    def test_listing_changes_while_counting(self):
        """A rotation between the listing and the reading: counted again, never twice."""
        live = self.dir / "app-out.log"
        self.put("app-out.log", self.lines(100))
        c = LineCounter(self.dir, "app")
        fired = []

        def rotate():
            if not fired:
                fired.append(1)
                live.rename(self.dir / "app-out__2026-11-22_08-00-00.log")
                self.put("app-out.log", self.lines(30))
        c._between = rotate
        self.assertEqual(c.count(), 130)
        self.assertTrue(fired)

        fired.clear()

        def compress():
            if not fired:
                fired.append(1)
                rot = self.dir / "app-out__2026-11-22_08-00-00.log"
                self.put(rot.name + ".gz", rot.read_bytes())
                rot.unlink()
        c._between = compress
        self.assertEqual(c.count(), 130)

    def test_losses_duplicates_order_garbage(self):
        a = [log_line(n) + b"\n" for n in range(1, self.N + 1)]
        del a[10:15]                    # 5 lost
        a.insert(20, a[30])             # 1 duplicate, 1 break in the order (31, then 21)
        a[100], a[101] = a[101], a[100]  # 1 out of order
        a.insert(200, b"garbage\n")     # 1 malformed
        a.insert(300, log_line(self.N + 1) + b"\n")  # out of range: malformed
        data = b"".join(a)
        half = len(data) // 2
        self.put("app-out__2026-11-22_08-00-00.log.gz", data[:half])  # cut mid-line
        self.put("app-out.log", data[half:])
        got = self.check(lost=5 + 1, duplicates=1, out_of_order=1 + 1, partial=1)
        # The torn line: its head is a partial in the rotated file, its tail a malformed line.
        self.assertEqual(got["invalid"], 2 + 1)
        self.assertEqual(LineCounter(self.dir, "app").count(), got["complete_lines"])

    def test_live_rotating_writer(self):
        """A writer thread that rotates every 256 kB and gzips the rotated files (the .gz written
        in pieces next to its .log, the .log removed after), polled meanwhile: the count never
        exceeds what was written and ends exact."""
        import threading
        total, per, limit = 60_000, 500, 256 * 1024
        written = [0]
        stop, abort = threading.Event(), threading.Event()

        def writer():
            live = self.dir / "app-out.log"
            fh = open(live, "ab")
            k = 0
            while written[0] < total and not abort.is_set():
                first = written[0] + 1
                written[0] += per  # before the write: an upper bound of what is on disk
                fh.write(b"".join(log_line(n) + b"\n" for n in range(first, first + per)))
                fh.flush()
                if fh.tell() >= limit:
                    fh.close()
                    k += 1
                    rot = self.dir / f"app-out__2026-11-22_08-00-00_{k:03d}.log"
                    live.rename(rot)
                    fh = open(live, "ab")
                    data = gzip.compress(rot.read_bytes())
                    with open(str(rot) + ".gz", "wb") as g:
                        for i in range(0, len(data), 8192):
                            g.write(data[i:i + 8192])
                            g.flush()
                    rot.unlink()
            fh.close()
            stop.set()

        c = LineCounter(self.dir, "app")
        t = threading.Thread(target=writer)
        t.start()
        polls = 0
        try:
            while not stop.is_set():
                n = c.count()
                self.assertLessEqual(n, written[0])
                polls += 1
        finally:
            abort.set()
            t.join()
        self.assertEqual(c.count(), total)
        got = check_log_lines(self.dir, "app", total)
        self.assertEqual((got["lost"], got["duplicates"], got["out_of_order"], got["invalid"]),
                         (0, 0, 0, 0), got)
        self.assertGreater(got["rotated"], 10)
        self.assertGreater(polls, 5)

    def test_wait_daemon_idle_counts_late_work(self):
        """CPU burnt by a thread after the call starts (like a gzip finishing after the last
        line landed) is counted, and the wait ends about IDLE_WINDOW_S after it stops."""
        import threading

        def burn():
            end = time.thread_time() + 0.3
            while time.thread_time() < end:
                pass
        t0 = daemon_cpu_ticks(os.getpid())
        th = threading.Thread(target=burn)
        th.start()
        ticks, waited, idle = wait_daemon_idle(os.getpid())
        th.join()
        self.assertTrue(idle)
        self.assertGreaterEqual(waited, IDLE_WINDOW_S + 0.2)
        self.assertLess(waited, IDLE_CAP_S)
        self.assertGreaterEqual((ticks - t0) / CLK_TCK, 0.25)

    def test_logs_table_renders(self):
        r = {"time_s": 1.0, "lines_per_s": 3000.0, "daemon_cpu_s": 0.5, "daemon_cpu_after_s": 0.1,
             "not_idle": 0, "lost": 0, "lost_max": 0, "duplicates": 0, "out_of_order": 0,
             "invalid": 0, "rotated": 4, "incomplete": 0, "rounds": 1}
        logs = {v.key: {"pm2": {**r, "time_s": 3.5, "daemon_cpu_s": 2.0, "rotated": 0},
                        "kelpie": r, "alone": {"time_s": 0.9, "raw": [0.9]}}
                for v in LOG_VARIANTS}
        table = build_logs_table(3000, logs)
        self.assertEqual(table.count("\n"), 1 + 7 * len(LOG_VARIANTS))
        self.assertIn("3.5x | PM2/Kelpie >= 3x (met)", table)
        self.assertIn("~3.9x best possible (PM2 / app alone)", table)
        self.assertIn("Kelpie <= 0.5x PM2's (met)", table)
        self.assertIn("PM2 3.50 s / app alone 0.90 s = 3.9x", logs_notes(3000, logs))
        logs[LOG_VARIANTS[0].key]["pm2"] = None  # --kelpie-only
        self.assertIn("| n/a |", build_logs_table(3000, logs))


# --------------------------------------------------------------------------------------------
# Self-test of the cluster scenario's helpers: wrk's report, the summary and table, the merge of
# the cluster section into an existing report, the hello app.

WRK_SAMPLE_ERRORS = """Running 1s test @ http://127.0.0.1:48931/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   283.20us  660.99us   7.42ms   92.33%
    Req/Sec     4.02k     1.09k    5.80k    50.00%
  Latency Distribution
     50%  100.00us
     75%  118.00us
     90%  358.00us
     99%    3.52ms
  4012 requests in 1.00s, 231.16KB read
  Socket errors: connect 0, read 2110, write 1904, timeout 0
  Non-2xx or 3xx responses: 4012
Requests/sec:   3999.18
Transfer/sec:    230.42KB
"""

WRK_SAMPLE_CLEAN = """Running 1m test @ http://127.0.0.1:3000/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21s   305.12ms   1.99s    70.00%
    Req/Sec    12.01k     1.10k   14.00k    68.00%
  1441200 requests in 1.00m, 180.00MB read
Requests/sec:  24020.00
Transfer/sec:      3.00MB
"""


class ClusterTest(unittest.TestCase):
    def test_parse_wrk_errors_and_latency(self):
        w = parse_wrk(WRK_SAMPLE_ERRORS)
        self.assertEqual((w["requests"], w["connect"], w["read"], w["write"], w["timeout"],
                          w["non2xx"]), (4012, 0, 2110, 1904, 0, 4012))
        self.assertEqual(w["failed"], 2110 + 1904 + 4012)
        self.assertAlmostEqual(w["duration_s"], 1.0)
        self.assertAlmostEqual(w["rps"], 3999.18)
        self.assertAlmostEqual(w["latency_avg_ms"], 0.2832)
        self.assertAlmostEqual(w["latency_p50_ms"], 0.1)
        self.assertAlmostEqual(w["latency_p90_ms"], 0.358)
        self.assertAlmostEqual(w["latency_p99_ms"], 3.52)

    def test_parse_wrk_clean_minutes_seconds(self):
        w = parse_wrk(WRK_SAMPLE_CLEAN)
        self.assertEqual((w["requests"], w["failed"], w["non2xx"], w["read"]), (1441200, 0, 0, 0))
        self.assertAlmostEqual(w["duration_s"], 60.0)
        self.assertAlmostEqual(w["rps"], 24020.0)
        self.assertAlmostEqual(w["latency_avg_ms"], 1210.0)
        self.assertIsNone(w["latency_p99_ms"])  # run without --latency
        # No Requests/sec line: computed from the count and the duration.
        w = parse_wrk(WRK_SAMPLE_CLEAN.replace("Requests/sec:  24020.00\n", ""))
        self.assertAlmostEqual(w["rps"], 24020.0)

    def test_parse_wrk_not_a_report(self):
        with self.assertRaises(ValueError):
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")

    def test_ensure_wrk_without_root_or_apt(self):
        """No wrk: the reason is given, nothing is installed (which/geteuid stubbed)."""
        which, geteuid = shutil.which, os.geteuid
        try:
            shutil.which = lambda name: None
            self.assertEqual(ensure_wrk()[0], None)
            self.assertIn("no apt-get", ensure_wrk()[1])
            shutil.which = lambda name: "/usr/bin/apt-get" if name == "apt-get" else None
            os.geteuid = lambda: 1000
            wrk, why = ensure_wrk()
            self.assertIsNone(wrk)
            self.assertIn("sudo apt-get install -y wrk", why)
            shutil.which = lambda name: "/opt/bin/wrk" if name == "wrk" else None
            self.assertEqual(ensure_wrk(), ("/opt/bin/wrk", ""))
        finally:
            shutil.which, os.geteuid = which, geteuid

    def test_parse_ss_requests(self):
        out = ('0 0 [::ffff:127.0.0.1]:8000 [::ffff:127.0.0.1]:44766 users:(("node",pid=91,fd=27))\n'
               '\t bbr wscale:10,10 data_segs_out:4629 data_segs_in:4630 bbr:(bw:1bps)\n'
               '0 0 [::ffff:127.0.0.1]:8000 [::ffff:127.0.0.1]:44768 users:(("node",pid=92,fd=26))\n'
               '\t cubic data_segs_in:10\n'
               '0 0 [::ffff:127.0.0.1]:8000 [::ffff:127.0.0.1]:44770 users:(("node",pid=91,fd=28))\n'
               '\t cubic segs_in:3 data_segs_in:5\n')
        self.assertEqual(parse_ss_requests(out), {91: 4635, 92: 10})

    def test_wrk_argv(self):
        close = dict((k, e) for k, _t, e in CLUSTER_MODES)["close"]
        a = wrk_argv("wrk", 3000, 4, close)
        self.assertEqual(a, ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", "-d4s",
                             "--latency", "-H", "Connection: close", "http://127.0.0.1:3000/"])
        self.assertNotIn("-H", wrk_argv("wrk", 3000, 4, ()))

    @staticmethod
    def raw(rps: dict[str, list[float]], cpu: float, reload_failed: dict[str, list[dict]]) -> dict:
        def run(r: float) -> dict:
            w = parse_wrk(WRK_SAMPLE_CLEAN)
            w.update(rps=r, requests=int(r * 4), latency_p50_ms=1.0, latency_p99_ms=9.0,
                     daemon_cpu_s=cpu, daemon_cpu_pct=cpu / 4 * 100,
                     daemon_cpu_us_per_req=cpu / (r * 4) * 1e6, output="...",
                     instance_cpu_pct=[40.0, 90.0], server_cpu_us_per_req=100.0 + cpu * 100,
                     wrk_cpu_s=3.0, bench_cpu_pct_of_machine=95.0)
            return w

        def rel(errs: dict) -> dict:
            w = run(1000.0)
            w.update(errs, reload_s=2.0, reload_exit=0, reload_within_run=True, replaced=True)
            w["failed"] = sum(errs.values())
            return w
        balance = [{"rps": 30000.0, "failed": 0, "requests_per_instance": [c, 100],
                    "ratio": c / 100} for c in (110, 125, 105)]
        return {"runs": {k: [run(x) for x in v] for k, v in rps.items()},
                "reloads": {k: [rel(e) for e in v] for k, v in reload_failed.items()},
                "balance": balance}

    def test_summary_and_table(self):
        zero = {"read": 0}
        pm2 = summarize_cluster(self.raw(
            {"close": [2000.0, 2500.0, 2400.0], "keepalive": [20000.0, 21000.0, 19000.0]}, 1.0,
            {"close": [{"read": 26}, {"read": 30, "connect": 2}, {"read": 10}],
             "keepalive": [zero, zero, {"read": 64}]}))
        kel = summarize_cluster(self.raw(
            {"close": [8000.0, 8400.0, 9000.0], "keepalive": [23000.0, 25000.0, 24000.0]}, 0.0,
            {"close": [zero] * 3, "keepalive": [zero] * 3}))
        self.assertEqual(pm2["rps_close"], 2400.0)
        self.assertEqual(kel["rps_close"], 8400.0)
        self.assertEqual(pm2["reload_failed_close"], 26)
        self.assertEqual(pm2["reload_failed_close_max"], 32)
        self.assertEqual(pm2["reload_failed_close_worst"]["connect"], 2)
        self.assertEqual((kel["reloads"], kel["reloads_replaced"], kel["reloads_ok"]), (6, 6, 6))
        # wrk's output is kept in the raw samples only for runs with failed requests.
        self.assertNotIn("output", kel["raw"]["runs"]["close"][0])
        self.assertIn("output", pm2["raw"]["reloads"]["close"][0])
        table = build_cluster_table(pm2, kel)
        self.assertEqual(table.count("\n"), 1 + 2 + 1 + 2 + 2 + 2 + 2 + 2 + 1 + 2 + 2 + 2 + 2)
        kel["graceful"] = {"seed": {"rounds": [{"failed": [0, 0], "replaced": True,
                                                "reload_exit": 0}], "failed_max": 0,
                                    "replaced": 1},
                           "express": {"skipped": "npm not found"}}
        pm2["graceful"] = {"seed": {"rounds": [{"failed": [1, 40], "replaced": True,
                                                "reload_exit": 0}], "failed_max": 41,
                                    "replaced": 1}}
        kel["bound"] = {"rps_close": 10500.0, "rps_keepalive": 24000.0}
        table = build_cluster_table(pm2, kel)
        self.assertIn("| 41 (1 + 40), 1 of 1 replaced | 0 (0 + 0), 1 of 1 replaced | - | Kelpie 0 "
                      "(met) |", table)
        self.assertIn("| n/a | skipped (npm not found) | - | Kelpie 0 |", table)
        self.assertIn("| - | 10,500 req/s | Kelpie at 80% | - |", table)
        self.assertEqual((kel["balance_ratio"], kel["balance_ratio_max"]), (1.1, 1.25))
        self.assertIn("| 1.10x (worst round 1.25x, of 3) | 1.10x (worst round 1.25x, of 3) | - | "
                      "Kelpie <= 1.3x (met) |", table)
        self.assertIn("| 95 % | 95 % | - | - (the rest went to other work) |", table)
        self.assertIn("| 200.0 µs | 100.0 µs | 2.0x | - |", table)
        self.assertEqual(kel["instance_cpu_pct_close"], [90.0, 40.0])
        self.assertIn("| 90% + 40% of a core | 90% + 40% of a core | - | - |", table)
        self.assertIn("| 2,400 req/s | 8,400 req/s | 3.50x (Kelpie / PM2) | Kelpie >= 3x PM2's "
                      "(met) |", table)
        self.assertIn("1.20x (Kelpie / PM2) | Kelpie >= 1.2x PM2's (met) |", table)
        self.assertIn("| 26 (worst 32): connect 2, read 30 | 0 (worst 0) | - | Kelpie 0 (met) |",
                      table)
        self.assertIn("| 0 (worst 64): read 64 |", table)
        self.assertIn("0.00 s, 0.0% of a core, 0.0 µs/req | - | Kelpie ~0: <= 1% of a core (met)",
                      table)
        self.assertIn("| 6 of 6 | 6 of 6 | - | all (met) |", table)
        kel["rps_keepalive"] = 22000.0
        self.assertIn("Kelpie >= 1.2x PM2's (missed)", build_cluster_table(pm2, kel))
        kel["raw"]["reloads"]["close"][1].update(reload_exit=1, replaced=False)
        bad = summarize_cluster(kel["raw"])
        self.assertIn("| 5 of 6 (1 exited non-zero) | - | all (missed) |",
                      build_cluster_table(None, bad))
        self.assertIn("| n/a |", build_cluster_table(None, kel))  # --kelpie-only

    def test_merge_cluster_section(self):
        head = "# Kelpie vs PM2: benchmark results\n\n| core |\n\n## Logs\n\n| logs |\n\n"
        tail = README_LINE + "\n\n<details>raw</details>\n"
        sec1 = cluster_section("| t1 |", "notes 1", "Command: one", {"kelpie": {"a": 1.23456}})
        sec2 = cluster_section("| t2 |", "notes 2", "Command: two", {"kelpie": {"a": 2}})
        one = merge_cluster_section(head + tail, sec1)
        self.assertEqual(one, head + sec1 + "\n\n" + tail)
        self.assertIn('"a": 1.235', one)
        two = merge_cluster_section(one, sec2)
        self.assertEqual(two, head + sec2 + "\n\n" + tail)
        self.assertEqual(merge_cluster_section(two, None), head + tail)
        self.assertEqual(merge_cluster_section("# r\n", sec1), "# r\n\n" + sec1 + "\n")
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "r.md").write_text(two)
            self.assertEqual(existing_cluster_section(d / "r.md"), sec2)
            self.assertIsNone(existing_cluster_section(d / "missing.md"))
            self.assertIsNone(existing_cluster_section(None))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_hello_app_serves(self):
        """The cluster app answers 200 on PORT with no manager (skipped without node)."""
        if not shutil.which("node"):
            self.skipTest("node not found")
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        port = free_port()
        (d / "hello.js").write_text(CLUSTER_APP_JS)
        p = subprocess.Popen(["node", str(d / "hello.js")], env={**os.environ, "PORT": str(port)},
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not http_ok(port) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(http_ok(port))
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)
        self.assertFalse(http_ok(port))


# --------------------------------------------------------------------------------------------
# Self-test of the health scenario's helpers: the stamps of the memory rounds, the per-thread
# CPU reading, the table, the merge of the health section into a report, fake-app's stamps.


class HealthTest(unittest.TestCase):
    MS = 1_000_000  # ns

    def stamps(self, restart_at_ms: int | None, child: bool = False,
               allocated: bool = True) -> str:
        """Start at 1 s, allocating at 3 s, over at 3.07 s, allocated at 3.15 s (if allocated);
        a restart restart_at_ms after going over."""
        a = 201 if child else 100
        lines = ["100 1000000000", "not a stamp line", f"allocating {a} 3000000000",
                 f"over {a} 3070000000", "over 999 3080000000"]
        restart = None if restart_at_ms is None else 3_070_000_000 + restart_at_ms * self.MS
        if allocated and (restart is None or restart > 3_150_000_000):
            lines.append(f"allocated {a} 3150000000")
        if restart is not None:
            lines.append(f"300 {restart}")
        if allocated and restart is not None and restart <= 3_150_000_000:
            # The new process's start came first; the old one's `allocated` never comes.
            lines.append("allocating 300 5300000000")
        return "\n".join(lines) + "\n"

    def test_parse_and_restart_after_allocation(self):
        starts, allocs = parse_health_stamps(self.stamps(700))
        self.assertEqual(starts, [(100, 1_000_000_000), (300, 3_770_000_000)])
        self.assertEqual([x[0] for x in allocs], ["allocating", "over", "over", "allocated"])
        r = restart_after_allocation(starts, allocs)
        self.assertEqual((r["pid"], r["alloc_pid"], r["new_pid"]), (100, 100, 300))
        self.assertAlmostEqual(r["alloc_ms"], 150.0)
        self.assertAlmostEqual(r["over_after_ms"], 70.0)
        self.assertAlmostEqual(r["restart_ms"], 700.0)
        self.assertEqual((r["crossing"], r["cut_short"]), ("over", False))
        # Restarted 40 ms after going over, before the allocation was done.
        r = restart_after_allocation(*parse_health_stamps(self.stamps(40)))
        self.assertAlmostEqual(r["restart_ms"], 40.0)
        self.assertEqual((r["crossing"], r["cut_short"], r["alloc_ms"]), ("over", True, None))
        # A child allocates: its pid is not the app's; no restart yet.
        r = restart_after_allocation(*parse_health_stamps(self.stamps(None, child=True)))
        self.assertEqual((r["pid"], r["alloc_pid"], r["new_pid"], r["restart_ms"]),
                         (100, 201, None, None))
        self.assertAlmostEqual(r["over_after_ms"], 70.0)
        # Restarted before the app saw itself over: from `allocating` (an upper bound).
        text = "100 1000000000\nallocating 100 3000000000\n300 3100000000\n"
        r = restart_after_allocation(*parse_health_stamps(text))
        self.assertEqual((r["crossing"], r["cut_short"], r["new_pid"]), ("allocating", True, 300))
        self.assertAlmostEqual(r["restart_ms"], 100.0)
        # Not allocating yet: nothing but the first pid.
        r = restart_after_allocation(*parse_health_stamps("100 1000000000\n"))
        self.assertEqual((r["pid"], r["over_ns"], r["restart_ns"]), (100, None, None))
        self.assertEqual(restart_after_allocation([], [])["pid"], None)

    def test_thread_ticks_and_pct(self):
        mine = thread_ticks(os.getpid())
        self.assertIn(os.getpid(), [tid for tid, _name in mine])
        self.assertEqual(thread_ticks(2 ** 22 + 12345), {})  # no such process
        before = {(1, "main"): 10, (2, "kelpie-monitor"): 100, (3, "gone"): 5}
        after = {(1, "main"): 10, (2, "kelpie-monitor"): 130, (4, "tokio-runtime-w"): 2,
                 (5, "tokio-runtime-w"): 1}
        pct = threads_pct(before, after, 40, 30.0)  # 40 ticks in all: 7 not in live threads
        self.assertEqual(list(pct), ["kelpie-monitor", "(rest: ended threads, rounding)",
                                     "tokio-runtime-w"])
        self.assertAlmostEqual(pct["kelpie-monitor"], 100 * 30 / CLK_TCK / 30.0)
        self.assertAlmostEqual(pct["tokio-runtime-w"], 100 * 3 / CLK_TCK / 30.0)
        self.assertAlmostEqual(pct["(rest: ended threads, rounding)"], 100 * 7 / CLK_TCK / 30.0)

    @staticmethod
    def round_row(variant: str, restart_ms: float | None, cause: bool = True) -> dict:
        cut = restart_ms is not None and restart_ms < 80
        return {"variant": variant, "restarted": restart_ms is not None,
                "restart_ms": restart_ms, "alloc_ms": None if cut else 150.0,
                "over_after_ms": 70.0, "cut_short": cut, "crossing": "over",
                "memory_cause": cause and restart_ms is not None,
                "old_child_gone": restart_ms is not None}

    def results(self) -> tuple[dict, dict]:
        cpu = lambda pct, thr: {"apps": 500, "window_s": 30.0, "windows": 3,  # noqa: E731
                                "cpu_pct": pct, "cpu_pct_min": pct * 0.9,
                                "cpu_pct_max": pct * 1.1, "threads_pct": thr, "rss_mb": 20.0}
        kel = {"cpu": cpu(1.2, {"kelpie-monitor": 1.1, "kelpie-log-writ": 0.03, "kelpie": 0.0}),
               "memory": summarize_health_memory({
                   "main": [self.round_row("main", x) for x in (500.0, 800.0, 300.0, 900.0, 600.0)],
                   "child": [self.round_row("child", x) for x in (700.0,) * 5]})}
        pm2 = {"cpu": cpu(0.3, {"node": 0.25}) | {"rss_mb": 180.0},
               "memory": summarize_health_memory({
                   "main": [self.round_row("main", x) for x in (12000.0, 27000.0, 3000.0)],
                   "child": [self.round_row("child", None)]})}
        return pm2, kel

    def test_summary_and_table(self):
        pm2, kel = self.results()
        self.assertEqual(kel["memory"]["main"]["restart_ms"], 600.0)
        self.assertEqual((kel["memory"]["main"]["restarted"], kel["memory"]["child"]["rounds"]),
                         (5, 5))
        self.assertEqual(pm2["memory"]["child"]["restarted"], 0)
        t = build_health_table(pm2, kel)
        self.assertEqual(t.count("\n"), 1 + 4 + 2 + 3)
        self.assertIn("| 0.30 % (0.27–0.33) | 1.20 % (1.08–1.32) | 0.2x | Kelpie <= PM2 in the "
                      "same run (missed) |", t)
        self.assertIn("| node 0.25 % | kelpie-monitor 1.10 %, kelpie-log-writ 0.03 % |", t)
        self.assertIn("| 180.0 MB | 20.0 MB | 9.0x | - |", t)
        self.assertIn("median (min–max) | 12.00 s (3.00–27.00 s), 3 rounds | 0.60 s (0.30–0.90 s), "
                      "5 rounds | 20.0x | Kelpie < 1.5 s in every round (met) |", t)
        self.assertIn(f"| not restarted within {HEALTH_CAP_S:.0f} s (1 round) | 0.70 s "
                      "(0.70–0.70 s), 5 rounds | - | Kelpie < 1.5 s in every round (met) |", t)
        self.assertIn("| 3 of 3 (its worker logs", t)
        self.assertIn("| 10 of 10 (`exits[].cause` = memory in describe --json) |", t)
        self.assertIn("| n/a | 5 of 5 | - | - |", t)  # the old child gone
        self.assertIn("| main: over after 70 ms, done in 150 ms; child: over after 70 ms, done in "
                      "150 ms | main:", t)
        # One slow round misses the target; one restarted during the allocation is counted.
        kel["memory"]["raw"]["main"][1] = self.round_row("main", 1600.0)
        kel["memory"]["raw"]["main"][2] = self.round_row("main", 40.0)
        slow = summarize_health_memory(kel["memory"]["raw"])
        t = build_health_table(pm2, {"cpu": kel["cpu"], "memory": slow})
        self.assertIn("Kelpie < 1.5 s in every round (missed)", t)
        self.assertIn("| main: over after 70 ms, done in 150 ms (1 of 5 restarted before it was "
                      "done); child:", t)
        # A round without a restart misses it too.
        kel["memory"]["raw"]["main"][1] = self.round_row("main", None)
        lost = summarize_health_memory(kel["memory"]["raw"])
        t = build_health_table(None, {"cpu": kel["cpu"] | {"cpu_pct": 2.5}, "memory": lost})
        self.assertIn(f"5 rounds, 1 not restarted within {HEALTH_CAP_S:.0f} s | - | Kelpie < "
                      "1.5 s in every round (missed) |", t)
        self.assertIn("Kelpie < 2 % of one core (missed)", t)
        self.assertIn("| n/a |", t)  # --kelpie-only

    def test_merge_health_section(self):
        head = "# Kelpie vs PM2: benchmark results\n\n| core |\n\n"
        tail = README_LINE + "\n\n<details>raw</details>\n"
        cl1 = cluster_section("| c1 |", "cluster notes", "Command: c", {})
        cl2 = cluster_section("| c2 |", "cluster notes", "Command: c2", {})
        h1 = health_section("| h1 |", "notes 1", "Command: one", {"kelpie": {"a": 1.23456}})
        h2 = health_section("| h2 |", "notes 2", "Command: two", {"kelpie": {"a": 2}})
        base = head + cl1 + "\n\n" + tail
        one = merge_health_section(base, h1)
        self.assertEqual(one, head + cl1 + "\n\n" + h1 + "\n\n" + tail)
        self.assertIn('"a": 1.235', one)
        self.assertTrue(h1.startswith(HEALTH_BEGIN + "\n## Health\n") and h1.endswith(HEALTH_END))
        two = merge_health_section(one, h2)
        self.assertEqual(two, head + cl1 + "\n\n" + h2 + "\n\n" + tail)
        # The cluster section is replaced in place: the health section stays after it.
        self.assertEqual(merge_cluster_section(two, cl2), head + cl2 + "\n\n" + h2 + "\n\n" + tail)
        self.assertEqual(merge_health_section(two, None), base)
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "r.md").write_text(two)
            self.assertEqual(existing_health_section(d / "r.md"), h2)
            self.assertEqual(existing_cluster_section(d / "r.md"), cl1)
            self.assertIsNone(existing_health_section(d / "missing.md"))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_fake_app_stamps_its_allocation(self):
        """fake-app writes the stamps the memory rounds read (skipped when not built)."""
        if not FAKE_APP.exists():
            self.skipTest(f"{FAKE_APP} not built")
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            stamp = d / "stamp"
            subprocess.run([str(FAKE_APP), "--quiet", "--stamp", str(stamp), "--allocate", "8",
                            "--allocate-after", "20", "--exit-after", "500"],
                           stdout=subprocess.DEVNULL, timeout=30)
            r = restart_after_allocation(*parse_health_stamps(stamp.read_text()))
            self.assertIsNotNone(r["pid"])
            self.assertEqual(r["alloc_pid"], r["pid"])
            self.assertGreaterEqual(r["alloc_ms"], 0)
            self.assertIsNone(r["restart_ns"])
        finally:
            shutil.rmtree(d, ignore_errors=True)


class RuntimeTest(unittest.TestCase):
    APP = "/x/target/static/fake-app"

    def table(self) -> dict[int, tuple[int, str, str]]:
        """PID 1 (100) with two apps, one app's orphan (alive), two zombies, an app's child
        (below it), and processes outside the namespace."""
        a = self.APP
        return {
            99: (1, "S", "unshare --pid --fork --mount-proc kelpie runtime e.json"),
            100: (99, "S", "kelpie runtime e.json"),
            101: (100, "S", f"{a} --orphans 5 --orphan-life 200"),
            102: (100, "S", f"{a} --orphans 5 --orphan-life 200"),
            103: (100, "S", f"{a} --quiet --exit-after 200 --exit-code 0"),
            104: (100, "Z", ""),
            105: (100, "Z", ""),
            106: (101, "S", f"{a} --orphan-parent 200"),
            200: (1, "S", f"{a}"),  # another namespace's app
            201: (200, "Z", ""),
        }

    def test_parse_proc_stat(self):
        self.assertEqual(parse_proc_stat("12 (fake-app) S 1 12 12 0 -1"), ("S", 1))
        self.assertEqual(parse_proc_stat("7 (a b) (c)) Z 100 7 7 0"), ("Z", 100))

    def test_tree_apps_and_zombies(self):
        t = self.table()
        below = tree_below(t, 100)
        self.assertEqual(below, [101, 102, 103, 104, 105, 106])
        apps = [p for p in below if t[p][1] != "Z" and is_runtime_app(t[p][2], self.APP)]
        self.assertEqual(apps, [101, 102])
        self.assertEqual(sum(1 for p in below if t[p][1] == "Z"), 2)
        self.assertEqual(tree_below(t, 999), [])
        self.assertTrue(is_runtime_app(f"{self.APP}", self.APP))
        self.assertFalse(is_runtime_app("node /x/other.js", self.APP))

    def test_process_table_sees_this_process(self):
        t = process_table()
        self.assertIn(os.getpid(), t)
        self.assertEqual(t[os.getpid()][0], os.getppid())
        self.assertIn("run.py", t[os.getpid()][2])

    def test_ecosystem(self):
        e = runtime_ecosystem(3, self.APP, ["--orphans", "5"])
        self.assertEqual([a["name"] for a in e["apps"]], ["app0", "app1", "app2"])
        self.assertEqual(e["apps"][1], {"name": "app1", "script": self.APP, "interpreter": "none",
                                        "args": ["--orphans", "5"], "autorestart": True})

    def test_dir_footprint(self):
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "sub").mkdir()
            (d / "a").write_bytes(b"x" * 1000)
            (d / "sub" / "b").write_bytes(b"y" * 24)
            os.link(d / "a", d / "sub" / "a-link")      # the same inode: counted once
            os.symlink(d / "a", d / "sub" / "a-sym")    # not followed
            self.assertEqual(dir_footprint(d), (1024, 2))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def round_row(self, r: int, stop: float | None, zombies: int | None = None,
                  code: int = 0) -> dict:
        row = {"round": r, "start_s": 0.05, "pid1_rss_mb": 6.0, "stop_s": stop, "exit_code": code}
        if zombies is not None:
            row |= {"zombies": zombies, "processes": 10 + zombies, "orphans_spawned": 50}
        if stop is None:
            row["error"] = "still running"
        return row

    def test_summary_and_table(self):
        kel = summarize_runtime({
            "stop": [self.round_row(0, 0.02), self.round_row(1, 0.016), self.round_row(2, 0.03)],
            "orphans": [self.round_row(0, 0.02, 0), self.round_row(1, 0.03, 0)]})
        self.assertAlmostEqual(kel["stop"]["stop_s"], 0.02)
        self.assertEqual((kel["stop"]["exit_0"], kel["stop"]["ok"]), (3, 3))
        self.assertEqual((kel["orphans"]["zombies"], kel["orphans"]["zombies_max"]), (0, 0))
        pm2 = summarize_runtime({
            "stop": [self.round_row(0, 0.3, code=1), self.round_row(1, None)],
            "orphans": [self.round_row(0, 0.35, 50), self.round_row(1, 0.34, 48)]})
        self.assertEqual((pm2["stop"]["ok"], pm2["stop"]["exit_codes"]), (1, [1]))
        sizes = {"kelpie_bytes": 7 * 1024 * 1024, "kelpie_file": "static-pie linked, stripped",
                 "node_bytes": 90 * 1024 * 1024, "pm2_modules_bytes": 14 * 1024 * 1024,
                 "pm2_modules_files": 3000}
        t = build_runtime_table(pm2, kel, sizes)
        self.assertIn("| 300 ms, 1 round(s) failed | 20 ms (16–30) | 15.0x | - |", t)
        self.assertIn("| 0 in 0 of 1 (else 1) | 0 in 3 of 3 | - | Kelpie 0 (met) |", t)
        self.assertIn("| 49 (worst 50) | 0 (worst 0) | - | Kelpie 0 (met) |", t)
        self.assertIn("| 50 | 50 | - | 50 (= 10 apps × 5", t)
        self.assertIn("| - | 7.0 MB | - | Kelpie < 15 MB (met) |", t)
        self.assertIn("| 14.0 MB (3,000 files) | 7.0 MB (1 file) | 2.0x | - |", t)
        self.assertIn("| 104.0 MB | 7.0 MB | 14.9x | - |", t)
        # A zombie left by Kelpie, a binary over the target, --kelpie-only.
        bad = summarize_runtime({"stop": [self.round_row(0, 0.02)],
                                 "orphans": [self.round_row(0, 0.02, 1)]})
        t = build_runtime_table(None, bad, sizes | {"kelpie_bytes": 16 * 1024 * 1024})
        self.assertIn("| n/a | 1 (worst 1) | - | Kelpie 0 (missed) |", t)
        self.assertIn("Kelpie < 15 MB (missed)", t)
        self.assertEqual(t.count("\n"), 11)

    def test_merge_runtime_section(self):
        head = "# Kelpie vs PM2: benchmark results\n\n| core |\n\n"
        tail = README_LINE + "\n\n<details>raw</details>\n"
        cl = cluster_section("| c |", "cluster notes", "Command: c", {})
        h = health_section("| h |", "health notes", "Command: h", {})
        r1 = runtime_section("| r1 |", "notes 1", "Command: one", {"runs": {"x": 0.12345}})
        r2 = runtime_section("| r2 |", "notes 2", "Command: two", {})
        base = head + cl + "\n\n" + h + "\n\n" + tail
        one = merge_runtime_section(base, r1)
        self.assertEqual(one, head + cl + "\n\n" + h + "\n\n" + r1 + "\n\n" + tail)
        self.assertIn('"x": 0.123', one)
        self.assertTrue(r1.startswith(RUNTIME_BEGIN + "\n## Runtime (containers)\n"))
        two = merge_runtime_section(one, r2)
        self.assertEqual(two, head + cl + "\n\n" + h + "\n\n" + r2 + "\n\n" + tail)
        h2 = health_section("| h2 |", "health notes", "Command: h2", {})
        self.assertEqual(merge_health_section(two, h2),
                         head + cl + "\n\n" + h2 + "\n\n" + r2 + "\n\n" + tail)
        self.assertEqual(merge_runtime_section(two, None), base)
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "r.md").write_text(two)
            self.assertEqual(existing_runtime_section(d / "r.md"), r2)
            self.assertIsNone(existing_runtime_section(d / "missing.md"))
        finally:
            shutil.rmtree(d, ignore_errors=True)


class ReliabilityTest(unittest.TestCase):
    def test_burst_lines(self):
        self.assertEqual(len(burst_line(1)), 64)
        data = b"".join(burst_line(n) for n in range(1, 11))
        self.assertEqual(check_burst_lines(data, 10),
                         {"distinct": 10, "lost": 0, "duplicates": 0, "malformed": 0})
        # A date prefix is allowed; a duplicate, a torn line and a missing one are counted.
        data = (b"2026-01-01T00:00:00: " + burst_line(1) + burst_line(2) + burst_line(2)
                + burst_line(3)[:30] + b"\n" + burst_line(5))
        self.assertEqual(check_burst_lines(data, 5),
                         {"distinct": 3, "lost": 2, "duplicates": 1, "malformed": 1})
        self.assertEqual(check_burst_lines(b"tick 1 2\n", 3)["lost"], 3)

    def test_burst_app(self):
        if not shutil.which("node"):
            self.skipTest("node not found")
        with tempfile.TemporaryDirectory() as d:
            script, trigger, done = Path(d) / "b.js", Path(d) / "t", Path(d) / "done"
            script.write_text(REL_SCRIPTS["burst"][1])
            trigger.touch()
            p = subprocess.Popen(["node", str(script), str(trigger), str(done)],
                                 stdout=subprocess.PIPE)
            try:
                out = b""
                deadline = time.monotonic() + 30
                while len(out) < REL_BURST_LINES * 64 and time.monotonic() < deadline:
                    out += p.stdout.read1(1 << 20)
                while not done.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                p.kill()
                p.wait()
            self.assertEqual(len(out), REL_BURST_LINES * 64)
            self.assertEqual(check_burst_lines(out, REL_BURST_LINES)["lost"], 0)
            self.assertEqual(done.read_text().split()[0], "0")

    def test_tick_gaps(self):
        data = b"tick 7 0\ntick 7 1\ntick 9 0\ntick 7 4\n2026: tick 7 5\n"
        self.assertEqual(tick_gaps(data, 7), (4, 2))
        self.assertEqual(tick_gaps(data, 9), (1, 0))
        self.assertEqual(tick_gaps(data, 8), (0, 0))

    def test_classify(self):
        before = {"a": 10, "b": 11, "c": 12, "d": 13, "e": 14}
        after = {"a": (10, "online"), "b": (21, "online"), "c": (12, "online"),
                 "d": (None, "stopped")}
        self.assertEqual(classify_after_kill(before, after, {10, 11}),
                         {"apps": 5, "listed": 4, "adopted": 1, "restarted": 1, "lost": 3})
        self.assertEqual(classify_after_kill(before, {}, set())["lost"], 5)

    def test_summarize_load(self):
        s = [(0.5, "ok"), (0.9, "refused"), (1.1, "refused"), (1.5, "ok"), (2.0, "reset")]
        r = summarize_load(s, 1.0)
        self.assertEqual((r["requests"], r["ok"], r["failed"], r["failed_before_kill"]),
                         (5, 2, 3, 1))
        self.assertEqual(r["by_kind"], {"refused": 2, "reset": 1})
        self.assertAlmostEqual(r["first_fail_after_kill_s"], 0.1)
        self.assertAlmostEqual(r["last_fail_after_kill_s"], 1.0)
        self.assertIsNone(summarize_load([(1.0, "ok")], 0.5)["first_fail_after_kill_s"])

    def test_first_message(self):
        self.assertEqual(first_message("\x1b[32m[PM2]\x1b[39m Resurrecting\n[PM2] Error: bad\n"),
                         "[PM2] Error: bad")
        self.assertEqual(first_message("\n\n  started 3 apps \n"), "started 3 apps")
        self.assertEqual(first_message(""), "")

    def test_connect_as(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        with tempfile.TemporaryDirectory() as d, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            path = Path(d) / "s.sock"
            srv.bind(str(path))
            srv.listen(4)
            self.assertEqual(connect_as(0, path), "connected")
            self.assertTrue(connect_as(REL_OTHER_UID, path).startswith("PermissionError"))
            self.assertTrue(connect_as(0, Path(d) / "none").startswith("FileNotFoundError"))

    def test_http_result_refused(self):
        self.assertEqual(http_result(free_port(), timeout=0.5), "refused")

    def _sample(self) -> dict:
        return {
            "kill": {"apps": 6, "alive_after": 6, "burst": "completed", "burst_done_s": 0.05,
                     "burst_failed_writes": 0, "listed": 6, "adopted": 6, "restarted": 0,
                     "lost": 0, "next_s": 0.08, "ticks_missing": 0, "ticks_logged": 1200,
                     "burst_log": {"distinct": REL_BURST_LINES, "lost": 0, "duplicates": 0,
                                   "malformed": 0}},
            "cluster": {"requests": 900, "ok": 900, "failed": 0, "by_kind": {},
                        "first_fail_after_kill_s": None, "last_fail_after_kill_s": None,
                        "serving_after": True, "instances_listed_after": 2,
                        "same_pids_after": [5, 6], "instances_alive_after": 2,
                        "instances_before": [5, 6]},
            "socket": {"home_mode": "drwx------", "sockets": {"kelpie.sock": "srwx------"},
                       "other_connect": "PermissionError: Permission denied",
                       "other_cli": {"exit": 1, "listed_apps": [], "message": "no | access"}},
            "secrets": {"jlist_shows": False, "describe_shows": False, "env_exit": 2,
                        "env_shows": False,
                        "jlist_show_secrets_shows": True, "dump": "dump.json",
                        "dump_mode": "-rw-------", "bak_mode": "-rw-------",
                        "dump_has_secret": True, "resurrect_exit": 0, "back_online": 3,
                        "apps": 3, "resurrect_message": "dump.json is corrupt: using the .bak"},
            "stubborn": {"stop_s": 1.7, "gone": 3, "rounds": 3},
            "many": {"apps": 200, "start_s": 0.2, "list_s": 0.01, "jlist_s": 0.012,
                     "restart_s": 0.5, "delete_s": 0.1, "raw": [{}]},
        }

    def test_table(self):
        kel = self._sample()
        pm2 = self._sample()
        pm2["kill"].update(alive_after=0, burst="died", listed=0, adopted=0, lost=6)
        pm2["cluster"] = {"error": "RuntimeError: not ready\nat all"}
        pm2["many"].update(restart_s=None, raw=[{"restart_s_timeout": True}])
        del pm2["stubborn"]
        t = build_reliability_table(kel, pm2)
        lines = t.splitlines()
        self.assertEqual(lines[0], "| Fault | Kelpie | PM2 7 |")
        for x in lines[2:]:  # every row has exactly 3 cells (no stray "|")
            self.assertEqual(len(re.split(r"(?<!\\)\|", x)), 5, x)
        self.assertIn("6 of 6 listed: 6 adopted (same pid), 0 restarted, 0 lost", t)
        self.assertIn("**app died**", t)
        self.assertIn("error: RuntimeError: not ready at all", t)
        self.assertIn("not run", t)
        self.assertIn("n/a (1 round(s) over", t)
        self.assertIn("masked; `--show-secrets` prints it", t)
        self.assertIn("no such command (exit 2)", t)
        t2 = build_reliability_table(kel, None)
        self.assertIn("not run (`--kelpie-only`)", t2)

    def test_merge_section(self):
        report = "# R\n\nx\n\n" + README_LINE + "\n"
        sec = reliability_section("T", "N", "run", {"a": 1.23456})
        merged = merge_reliability_section(report, sec)
        self.assertIn(REL_BEGIN, merged)
        self.assertLess(merged.index(REL_END), merged.index(README_LINE))
        self.assertIn('"a": 1.235', merged)
        again = merge_reliability_section(merged, reliability_section("T2", "N", "run", {}))
        self.assertEqual(again.count(REL_BEGIN), 1)
        self.assertIn("T2", again)
        self.assertNotIn("\nT\n", again)


class CheckTest(unittest.TestCase):
    FIGS = {"restart_ms": 2.0, "restart_p90_ms": 3.1, "start_json_ms": 180.0,
            "stop_all_ms": 40.0, "list_ms": 12.0, "jlist_ms": 12.5, "rss_idle_mb": 4.4,
            "rss_200_mb": 10.0, "cpu_idle_200_pct": 0.4}

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_a_second_run_keeps_the_better_figure_of_each_metric(self):
        self.assertEqual(better_figure(14.2, 2.7), 2.7)
        self.assertEqual(better_figure(0.1, 0.6), 0.1)
        self.assertEqual(better_figure(None, 3.0), 3.0)
        self.assertIsNone(better_figure(None, None))

    def budgets(self) -> dict:
        return updated_budgets(None, [self.FIGS], "test")

    def test_ceil_sig(self):
        self.assertEqual(ceil_sig(4.06), 4.1)
        self.assertEqual(ceil_sig(4.0), 4.0)  # exact stays
        self.assertEqual(ceil_sig(12.5), 13.0)
        self.assertEqual(ceil_sig(0.333), 0.34)
        self.assertEqual(ceil_sig(360.0), 360.0)
        self.assertEqual(ceil_sig(361.0), 370.0)
        self.assertEqual(ceil_sig(1.2 * 3), 3.6)  # 3.5999999999999996
        self.assertEqual(ceil_sig(0.0), 0.0)

    def test_update_rule_worst_run_and_notes(self):
        b = self.budgets()
        m = b["metrics"]
        self.assertNotIn("restart_p90_ms", m)  # reported only
        self.assertEqual(set(m), {cm.key for cm in CHECK_METRICS if cm.budgeted})
        self.assertEqual((m["restart_ms"]["budget"], m["restart_ms"]["measured"]), (4.0, 2.0))
        self.assertEqual(m["start_json_ms"]["budget"], 360.0)
        self.assertEqual(m["rss_idle_mb"]["budget"], 5.5)   # 4.4 x 1.25
        self.assertEqual(m["rss_200_mb"]["budget"], 13.0)   # 12.5 rounded up
        self.assertEqual(m["cpu_idle_200_pct"]["budget"], 0.8)
        self.assertEqual((m["rss_200_mb"]["unit"], m["cpu_idle_200_pct"]["unit"]), ("MB", "%"))
        self.assertEqual(b["comment"], BUDGETS_COMMENT)
        # The worst of several runs; the file's notes, comment and headroom are kept.
        b["comment"] = "mine"
        b["headroom"]["ms"] = 3.0
        b["metrics"]["list_ms"]["note"] = "a note"
        worse = dict(self.FIGS, list_ms=20.0, rss_200_mb=9.0)
        b2 = updated_budgets(b, [self.FIGS, worse, {"list_ms": None}], "three runs")
        self.assertEqual(b2["metrics"]["list_ms"],
                         {"budget": 60.0, "unit": "ms", "measured": 20.0, "note": "a note"})
        self.assertEqual(b2["metrics"]["rss_200_mb"]["measured"], 10.0)
        self.assertEqual((b2["comment"], b2["measured_on"]), ("mine", "three runs"))
        with self.assertRaises(ValueError):
            updated_budgets(None, [dict(self.FIGS, jlist_ms=None)], "incomplete")

    def test_load_roundtrip_and_errors(self):
        path = self.dir / "budgets.json"
        write_budgets(path, None, self.budgets())
        self.assertEqual(load_budgets(path), self.budgets())
        for text, why in (("{", "not JSON"), ("[]", "metrics"), ('{"metrics": 1}', "metrics"),
                          ('{"metrics": {"x": {"budget": 0, "unit": "ms"}}}', "budget"),
                          ('{"metrics": {"x": {"budget": true, "unit": "ms"}}}', "budget"),
                          ('{"metrics": {"x": {"budget": 1}}}', "unit"),
                          ('{"metrics": {"x": {"budget": 1, "unit": "ms", "measured": "a"}}}',
                           "measured"),
                          ('{"headroom": {"ms": 0.5}, "metrics": {}}', "headroom")):
            path.write_text(text)
            with self.assertRaisesRegex(ValueError, why):
                load_budgets(path)
        with self.assertRaises(FileNotFoundError):
            load_budgets(self.dir / "missing.json")

    def test_committed_budgets(self):
        """bench/budgets.json loads, and has a budget in the right unit for every metric."""
        doc = load_budgets(BUDGETS_FILE)
        self.assertIn("comment", doc)
        for cm in CHECK_METRICS:
            if cm.budgeted:
                e = doc["metrics"][cm.key]
                self.assertEqual(e["unit"], cm.unit, cm.key)
                self.assertGreaterEqual(e["budget"], e["measured"], cm.key)
        self.assertEqual(set(doc["metrics"]), {cm.key for cm in CHECK_METRICS if cm.budgeted})
        # Its own measured figures pass it (the p90 row, without a figure here, is only info).
        self.assertTrue(check_passed(compare_budgets(
            {k: e["measured"] for k, e in doc["metrics"].items()}, doc)))

    def test_compare_and_table(self):
        b = self.budgets()
        rows = compare_budgets(self.FIGS, b)
        self.assertEqual([r["metric"] for r in rows], [cm.key for cm in CHECK_METRICS])
        self.assertEqual({r["status"] for r in rows}, {"ok", "info"})
        self.assertTrue(check_passed(rows))
        # At the budget is ok; over it, or not measured, fails.
        figs = dict(self.FIGS, restart_ms=4.0, list_ms=24.1, rss_200_mb=None)
        b["metrics"]["ghost_ms"] = {"budget": 1, "unit": "ms"}
        b["metrics"]["jlist_ms"]["unit"] = "s"
        del b["metrics"]["stop_all_ms"]
        rows = compare_budgets(figs, b)
        st = {r["metric"]: r["status"] for r in rows}
        self.assertEqual(st, {"restart_ms": "ok", "restart_p90_ms": "info",
                              "start_json_ms": "ok", "stop_all_ms": "no budget",
                              "list_ms": "OVER", "jlist_ms": "unit mismatch",
                              "rss_idle_mb": "ok", "rss_200_mb": "not measured",
                              "cpu_idle_200_pct": "ok", "ghost_ms": "not measured"})
        self.assertFalse(check_passed(rows))
        self.assertFalse(check_passed(compare_budgets(self.FIGS, None)))  # no budgets file
        t = format_check_table(rows).splitlines()
        self.assertEqual(len(t), 2 + len(rows))
        self.assertEqual(t[0].split()[:5], ["metric", "measured", "budget", "of", "budget"])
        row = {ln.split()[0]: ln for ln in t[2:]}
        self.assertRegex(row["list_ms"], r"^list_ms +24\.1 ms +24 ms +100% +OVER ")
        self.assertRegex(row["restart_ms"], r"^restart_ms +4\.0 ms +4 ms +100% +ok ")
        self.assertRegex(row["restart_p90_ms"], r" 3\.1 ms +- +- +info ")
        self.assertRegex(row["rss_200_mb"], r" - +13 MB +- +not measured ")
        self.assertRegex(row["cpu_idle_200_pct"], r" 0\.40 % +0\.8 % +50% +ok ")
        self.assertRegex(row["stop_all_ms"], r" 40\.0 ms +- +- +no budget ")
        # Every line has the columns at the same place.
        self.assertEqual(len({ln.index(" ms") for ln in t[2:] if ln.split()[0] in
                              ("list_ms", "restart_ms", "jlist_ms")}), 1)

    def test_round_figures_and_results(self):
        rd = lambda s, rss: {"start_s": s, "stop_s": s / 10, "rss": rss,  # noqa: E731
                             "list_s": [0.01, 0.012], "jlist_s": [0.011, 0.02]}
        f = check_round_figures([rd(0.2, 10.0), rd(0.3, None), rd(0.1, 12.0)])
        self.assertAlmostEqual(f["start_json_ms"], 200.0)
        self.assertAlmostEqual(f["stop_all_ms"], 20.0)
        self.assertAlmostEqual(f["list_ms"], 11.0)
        self.assertAlmostEqual(f["jlist_ms"], 15.5)
        self.assertAlmostEqual(f["rss_200_mb"], 11.0)
        self.assertIsNone(check_round_figures([rd(0.2, None)])["rss_200_mb"])
        doc = {"metrics": {"list_ms": {"measured": 3.0, "budget": 5}, "x": None}}
        self.assertEqual(figures_from_results(doc), {"list_ms": 3.0, "x": None})


def self_test() -> int:
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite([loader.loadTestsFromTestCase(LogCounterTest),
                                loader.loadTestsFromTestCase(ClusterTest),
                                loader.loadTestsFromTestCase(HealthTest),
                                loader.loadTestsFromTestCase(RuntimeTest),
                                loader.loadTestsFromTestCase(ReliabilityTest),
                                loader.loadTestsFromTestCase(CheckTest)])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
