#!/usr/bin/env python3
"""Kelpie vs PM2 benchmark.

Builds Kelpie (release), installs PM2 7 from npm into a temporary directory, and measures both
process managers in the same run, each with its own temporary home:

  * daemon RSS idle (0 apps) and with N apps running (VmRSS of the daemon process only);
  * wall time of `list` and `jlist` with N apps;
  * wall time of `start ecosystem.config.js` (N apps) and of `stop all`;
  * crash-to-restart latency of one app killed with SIGKILL.

Standard library only (Python 3.11). See bench/README.md. Run from anywhere:

    python3 bench/run.py [--quick] [--apps N] [--kelpie-only] [--output FILE]
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
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


def kill9(pid: int, must_contain: str | None = None) -> None:
    """SIGKILL pid if alive (and, if given, only if its command line contains must_contain,
    so that a recycled pid is never hit)."""
    if pid <= 1 or pid == os.getpid() or not pid_alive(pid):
        return
    if must_contain is not None and must_contain not in cmdline(pid):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


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

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.workdir = root / "work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.daemon_pids: set[int] = set()
        self.app_pids: set[int] = set()

    # --- to override
    def argv(self, *args: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    # --- common
    def run(self, *args: str, timeout: float = 120, check: bool = True,
            capture: bool = False) -> subprocess.CompletedProcess:
        p = subprocess.run(
            self.argv(*args), env=self.env(), cwd=self.workdir, timeout=timeout,
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
            kill9(pid, "fake-app")


class Pm2(Manager):
    label = "PM2"
    pidfile_name = "pm2.pid"
    daemon_marker = "PM2"  # the God daemon's title is "PM2 v7.x.y: God Daemon (...)"

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

    def argv(self, *args: str) -> list[str]:
        return [str(KELPIE_BIN), *args]

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if k not in ("PM2_HOME",)}
        e.update(KELPIE_HOME=str(self.home), PM2_DISABLE_VERSION_CHECK="1")
        return e


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


def bench_manager(m: Manager, n_apps: int, cfg: argparse.Namespace) -> dict:
    res: dict = {}
    eco, crashy, stamp = write_ecosystems(m, n_apps)

    # Daemon up, idle.
    log(f"{m.label}: starting daemon")
    m.run("ping", timeout=60)
    pid = m.daemon_pid()
    log(f"{m.label}: daemon pid {pid}")
    time.sleep(cfg.settle)
    res["rss_idle"] = sample_rss(m, cfg.rss_samples, 0.2)

    starts, stops, rss_loaded, lists, jlists = [], [], [], [], []
    for r in range(cfg.rounds):
        if m.status_counts():
            m.run("delete", "all", timeout=300)
        log(f"{m.label}: round {r + 1}/{cfg.rounds}: start {n_apps} apps")
        t = m.timed("start", str(eco), timeout=600)
        starts.append(t)
        log(f"{m.label}:   start took {t:.3f} s")
        m.wait_status("online", n_apps, timeout=120)
        time.sleep(cfg.settle)
        rss_loaded.append(sample_rss(m, cfg.rss_samples, 0.2))
        for _ in range(cfg.list_runs):
            lists.append(m.timed("list"))
            jlists.append(m.timed("jlist"))
        log(f"{m.label}:   list {median(lists[-cfg.list_runs:]) * 1e3:.1f} ms, "
            f"jlist {median(jlists[-cfg.list_runs:]) * 1e3:.1f} ms, "
            f"rss {rss_loaded[-1]} MB")
        m.jlist()  # record app pids for cleanup
        t = m.timed("stop", "all", timeout=600)
        stops.append(t)
        log(f"{m.label}:   stop all took {t:.3f} s")
        m.wait_status("stopped", n_apps, timeout=120)
        m.run("delete", "all", timeout=300)

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
        ("Crash-to-restart, median", "restart_ms", "ms", 1, "Kelpie < 10 ms"),
        ("Crash-to-restart, p90", "restart_p90_ms", "ms", 1, ""),
    ]
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
        elif target.startswith("Kelpie <") and kv is not None:
            verdict = " (met)" if kv < 10 else " (missed)"
        lines.append(f"| {label} | {fmt(pv, unit)} | {fmt(kv, unit)} | {ratio} | "
                     f"{target}{verdict} |")
    return "\n".join(lines)


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
    ap.add_argument("--kelpie-only", action="store_true", help="skip PM2")
    ap.add_argument("--output", type=Path, help="also write a markdown report to this file")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--pm2-prefix", type=Path,
                    help="npm prefix to install PM2 into / reuse (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.list_runs, a.crash_rounds, a.rss_samples, a.settle = 1, 5, 5, 3, 1.0
    else:
        a.rounds, a.list_runs, a.crash_rounds, a.rss_samples, a.settle = 3, 5, 20, 5, 2.0
    return a


def main() -> int:
    cfg = parse_args()
    argv_str = "python3 " + " ".join(shlex.quote(x) for x in
                                     [os.path.relpath(SCRIPT, Path.cwd()), *sys.argv[1:]])
    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()

    if not cfg.no_build:
        build_kelpie()
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-"))
    log(f"temp dir {tmp}")

    managers: list[Manager] = []

    def cleanup_all() -> None:
        for m in managers:
            try:
                m.cleanup()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup of {m.label} failed: {e}")
        managers.clear()
        if not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup_all)

    def on_signal(signum, _frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        log(f"signal {signum}: cleaning up")
        cleanup_all()
        os._exit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    try:
        pm2_res = None
        versions = {"kelpie": subprocess.run([str(KELPIE_BIN), "--version"], capture_output=True,
                                             text=True).stdout.strip()}
        if not cfg.kelpie_only:
            pm2_bin = install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix else tmp / "pm2")
            pm2 = Pm2(tmp / "pm2-run", pm2_bin)
            managers.append(pm2)
            versions["pm2"] = pm2.run("--version", capture=True).stdout.decode().strip() \
                .splitlines()[-1]
            pm2_res = bench_manager(pm2, cfg.apps, cfg)
            pm2.cleanup()  # no PM2 daemon while Kelpie is measured
        kel = Kelpie(tmp / "kelpie-run")
        managers.append(kel)
        kel_res = bench_manager(kel, cfg.apps, cfg)
        kel.cleanup()
    finally:
        cleanup_all()

    info = machine_info()
    table = build_table(cfg.apps, pm2_res, kel_res)
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    ver_line = f"kelpie: `{versions['kelpie']}`" + (
        f", pm2: `{versions['pm2']}`" if "pm2" in versions else "")
    mach_line = (f"{info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                 f"Linux {info['kernel']}, node {info['node']}, Python {info['python']}, "
                 f"load average {load_before} at start (1/5/15 min)")
    reps = (f"{cfg.rounds} start/stop round(s) (median), {cfg.rounds * cfg.list_runs} runs "
            f"of each list command (median), {cfg.crash_rounds} crash rounds")

    print(f"\nDate: {date}\nMachine: {mach_line}\nVersions: {ver_line}\nRepetitions: {reps}\n")
    print(table)
    extra = ""

    if cfg.output:
        raw = {"pm2": pm2_res and pm2_res["raw"], "kelpie": kel_res["raw"]}
        def rnd(obj):
            if isinstance(obj, float):
                return round(obj, 3)
            if isinstance(obj, list):
                return [rnd(x) for x in obj]
            if isinstance(obj, dict):
                return {k: rnd(v) for k, v in obj.items()}
            return obj
        raw_txt = json.dumps(rnd(raw), indent=1)
        report = f"""# Kelpie vs PM2: benchmark results

Command: `{argv_str}` (from the repository root)

- Date: {date}
- Machine: {mach_line}
- Versions: {ver_line}
- Apps: {cfg.apps}; {reps}

{table}

{extra}

MB = MiB of VmRSS of the daemon process alone (not its apps). Times are the wall time of the whole
CLI command as a user runs it (process start included). Ratio = PM2 / Kelpie (how many times
smaller or faster Kelpie is). See `bench/README.md` for the method.

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


if __name__ == "__main__":
    sys.exit(main())
