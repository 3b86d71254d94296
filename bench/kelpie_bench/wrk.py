"""wrk for the cluster scenario: installing it, its command line and report, the requests
each instance received (from `ss`), and the wrk processes this run started."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

from .cluster_apps import (
    BALANCE_CONNECTIONS, BALANCE_RUN_S, CLUSTER_INSTANCES, WRK_CONNECTIONS, WRK_THREADS,
)
from .common import log


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
