#!/usr/bin/env python3
"""Idle cost of the shim's metrics without a daemon: N hello-world servers per variant (none
asked anything), started together, then over a window each one's CPU (schedstat run ns over all
threads), wake-ups (schedstat's scheduled-in count) and VmRSS; medians per variant, plus how
many apps woke more than 3 times a second (the delay monitor armed, or something else).

  python3 bench/nodemetrics/idle.py [--apps 60] [--window 30] [--settle 10] [name=preload ...]"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sched(pid: int) -> tuple[int, int]:
    ns = n = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            f = (task / "schedstat").read_text().split()
            ns += int(f[0])
            n += int(f[2])
        except (OSError, ValueError, IndexError):
            pass
    return ns, n


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=60)
    ap.add_argument("--window", type=float, default=30)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("variants", nargs="*")
    a = ap.parse_args()
    variants = [v.split("=", 1) for v in a.variants] or [["off", ""], ["on", str(HERE / "preload.js")]]
    procs: dict[str, list[subprocess.Popen]] = {n: [] for n, _ in variants}
    try:
        for i in range(a.apps):  # interleaved: the same moments' load for each variant
            for name, preload in variants:
                cmd = ["node", *(["-r", str(Path(preload).resolve())] if preload else []), str(HERE / "hello.js")]
                procs[name].append(subprocess.Popen(cmd, env={**os.environ, "PORT": "0"}))
        time.sleep(a.settle)
        before = {n: [sched(p.pid) for p in ps] for n, ps in procs.items()}
        time.sleep(a.window)
        after = {n: [sched(p.pid) for p in ps] for n, ps in procs.items()}
        for name, ps in procs.items():
            cpu = [(x[0] - b[0]) / (a.window * 1e9) * 100 for b, x in zip(before[name], after[name])]
            wake = [(x[1] - b[1]) / a.window for b, x in zip(before[name], after[name])]
            rss = [rss_mb(p.pid) for p in ps]
            print(f"{name}: cpu median {statistics.median(cpu):.4f} % (mean {statistics.mean(cpu):.4f}), "
                  f"wake-ups/s median {statistics.median(wake):.2f} (mean {statistics.mean(wake):.2f}, "
                  f"max {max(wake):.1f}, {sum(w > 3 for w in wake)} apps > 3/s), "
                  f"RSS median {statistics.median(rss):.1f} MB")
        print(f"load {os.getloadavg()}")
    finally:
        for ps in procs.values():
            for p in ps:
                p.terminate()
        for ps in procs.values():
            for p in ps:
                p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
