"""Core scenario, crash-to-restart: an app killed with SIGKILL until its next start stamp (with
and without cgroups), and the floor of any restart (fake-app spawned by hand)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from .common import FAKE_APP, log
from .managers import Manager


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
