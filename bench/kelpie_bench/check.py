"""Regression check (`--check`), the measurement: a quiet machine first, then the core figures
of Kelpie alone (the best of the attempts). Its command is check_command."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from .budgets import (
    CHECK_APPS, CHECK_CPU_WINDOW_S, CHECK_CPU_WINDOWS, CHECK_CRASH_ROUNDS, CHECK_LIST_RUNS,
    CHECK_QUIET_IDLE, CHECK_QUIET_MAX_S, CHECK_ROUNDS, CHECK_RSS_SAMPLES, CHECK_SETTLE_S,
)
from .common import log
from .core import (
    NODE_APPS, loaded_round, node_start_rounds, start_daemon_idle_rss, write_ecosystems,
)
from .core_restart import crash_latencies
from .health_cpu import cpu_window
from .managers import Kelpie, Manager
from .processes import cleanup_on_exit, read_anon_mb
from .scale import check_scale
from .stats import median, p90


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
    figures["anon_idle_mb"] = read_anon_mb(dpid)
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
    sdk = sdk_reporting_cpu(m, dpid, CHECK_APPS)
    raw["cpu_sdk_windows_pct"] = sdk["windows_pct"]
    figures["cpu_sdk_200_pct"] = sdk["pct"]
    log(f"check: {NODE_APPS} Node apps under Kelpie (its shim in each): RSS and idle CPU")
    node = node_start_rounds(m, 1)
    raw["node_apps"] = node["raw"]
    figures["node_app_rss_mb"] = node["node_rss"]
    figures["node_app_idle_cpu_pct"] = node["node_idle_cpu"]
    check_scale(m, figures, raw)
    if m.daemon_pid() != dpid:
        raise RuntimeError(f"the daemon changed during the check: pid {dpid}, now "
                           f"{m.daemon_pid()}")


# What @pm2/io sends every 990 ms from each app that uses it: ten metrics (its built-in ones and
# a few of the app's), each in its entry shape. It marks itself as @pm2/io does, so that
# Kelpie's shim leaves the runtime metrics to it, as with the real package.
SDK_REPORTER = """\
global[Symbol.for('@pm2/io')] = {};
const metrics = () => {
  const data = {};
  for (let i = 0; i < 10; i++) data[`metric ${i}`] = { value: Math.random() * 100, unit: 'ms', historic: true };
  process.send({ type: 'axm:monitor', data });
};
setInterval(metrics, 990);
"""


def sdk_reporting_cpu(m: Manager, dpid: int, n_apps: int) -> dict:
    """The daemon's CPU while n_apps Node apps report SDK metrics every second (the lowest of
    CHECK_CPU_WINDOWS windows, once all are online and have reported a few times); the apps
    are deleted after."""
    reporter = m.workdir / "sdk-reporter.js"
    reporter.write_text(SDK_REPORTER)
    eco = m.workdir / "sdk.json"
    eco.write_text(json.dumps({"apps": [{"name": f"sdk{i}", "script": str(reporter)}
                                        for i in range(n_apps)]}))
    log(f"check: daemon CPU while {n_apps} Node apps report SDK metrics every second")
    m.run("start", str(eco), timeout=300)
    try:
        if not m.wait_status("online", n_apps, timeout=300):
            raise RuntimeError(f"not all {n_apps} SDK apps online within 300 s")
        m.jlist()  # record app pids for cleanup
        time.sleep(CHECK_SETTLE_S + 2)
        best = quietest_cpu_window(m, dpid)
        log(f"check:   daemon CPU {best['pct']:.2f}% of a core (windows: "
            + ", ".join(f"{p:.2f}%" for p in best["windows_pct"]) + ")")
        return best
    finally:
        m.run("delete", "all", timeout=300, check=False)


