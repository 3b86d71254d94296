#!/usr/bin/env python3
"""CPU per request of a hello-world Node server, the shim's metrics off vs on, without a daemon.

Each variant is one server (`node [-r preload] hello.js`) pinned to CPU 0; `wrk -t1 -c32` pinned
to CPU 1 asks one variant at a time, rounds interleaved (order reversed every other round); the
server's CPU (first field of /proc/<pid>/task/*/schedstat, ns) over the requests wrk counted.
Prints each round and the medians, and the paired (same round) difference to the first variant.

  python3 bench/nodemetrics/perreq.py [--rounds 7] [--seconds 5] [name=preload.js ...]
  (default variants: off = no preload, on = bench/nodemetrics/preload.js; name=preload@K=V,K2=V2
  sets variables for that variant's server)"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def schedstat_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(port: int, seconds: int) -> int:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk: {out}")
    return int(m.group(1))


def toggle(a: argparse.Namespace) -> int:
    """The same process measured with the metrics on and off, alternately (no difference of
    heap layout or placement between two processes); off is reached as with @pm2/io present."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "KELPIE_METRICS_TOGGLE": "1",
           **dict(kv.split("=", 1) for kv in a.env)}
    p = subprocess.Popen(["taskset", "-c", "0", "node", *a.node_args.split(), "-r",
                          os.environ.get("PRELOAD", str(HERE / "preload.js")), str(HERE / "hello.js")], env=env)
    per: dict[str, list[float]] = {"on": [], "off": []}
    try:
        wait_port(port)
        wrk(port, 2)
        state = "on"
        for r in range(a.rounds * 2):
            before = schedstat_ns(p.pid)
            n = wrk(port, a.seconds)
            per[state].append((schedstat_ns(p.pid) - before) / n)
            if state == "off" or r == a.rounds * 2 - 1:
                print(f"round {len(per['off'])}: on {per['on'][-1]:.0f}, off {per['off'][-1] if per['off'] else 0:.0f} "
                      f"ns/req; load {os.getloadavg()[0]:.2f}", flush=True)
            os.kill(p.pid, signal.SIGUSR2)
            state = "off" if state == "on" else "on"
            time.sleep(1.5)  # the metrics stop at their next report
            wrk(port, 1)
        d = [x - y for x, y in zip(per["on"], per["off"])]
        pct = [x / y * 100 for x, y in zip(d, per["off"])]
        q = lambda xs: statistics.quantiles(xs, n=4)[0] if len(xs) > 1 else xs[0]
        print(f"lowest quartile: off {q(per['off']):.0f}, on {q(per['on']):.0f} ({q(per['on']) - q(per['off']):+.0f} ns); "
              f"minimum: off {min(per['off']):.0f}, on {min(per['on']):.0f} ({min(per['on']) - min(per['off']):+.0f} ns)")
        print(f"off: median {statistics.median(per['off']):.0f} ns/req; on: median "
              f"{statistics.median(per['on']):.0f}; on over off paired: median "
              f"{statistics.median(d):+.0f} ns ({statistics.median(pct):+.1f} %), rounds "
              + ", ".join(f"{x:+.0f}" for x in d))
    finally:
        p.terminate()
        p.wait()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--node-args", default="", help="extra node flags for every variant")
    ap.add_argument("--toggle", action="store_true",
                    help="one server with the metrics, turned off and on (SIGUSR2) between runs")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="a variable for the server (--toggle)")
    ap.add_argument("variants", nargs="*")
    a = ap.parse_args()
    if a.toggle:
        return toggle(a)
    variants = [v.split("=", 1) for v in a.variants] or [["off", ""], ["on", str(HERE / "preload.js")]]
    procs: dict[str, subprocess.Popen] = {}
    ports: dict[str, int] = {}
    try:
        for name, preload in variants:
            preload, _, env = preload.partition("@")
            ports[name] = free_port()
            cmd = ["taskset", "-c", "0", "node", *a.node_args.split()]
            if preload:
                cmd += ["-r", str(Path(preload).resolve())]
            cmd.append(str(HERE / "hello.js"))
            extra = dict(kv.split("=", 1) for kv in env.split(",") if kv)
            procs[name] = subprocess.Popen(cmd, env={**os.environ, **extra, "PORT": str(ports[name])})
        for name, _ in variants:
            wait_port(ports[name])
            wrk(ports[name], 2)  # warm up: JIT, buffers
        per: dict[str, list[float]] = {n: [] for n, _ in variants}
        names = [n for n, _ in variants]
        for r in range(a.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                pid = procs[name].pid
                before = schedstat_ns(pid)
                n = wrk(ports[name], a.seconds)
                per[name].append((schedstat_ns(pid) - before) / n)
            print(f"round {r + 1}: " + ", ".join(f"{n} {per[n][-1]:.0f}" for n in names)
                  + f" ns/req; load {os.getloadavg()[0]:.2f}", flush=True)
        base = names[0]
        for name in names:
            med = statistics.median(per[name])
            line = f"{name}: median {med:.0f} ns/req (min {min(per[name]):.0f}, max {max(per[name]):.0f})"
            if name != base:
                d = [x - y for x, y in zip(per[name], per[base])]
                pct = [x / y * 100 for x, y in zip(d, per[base])]
                line += (f"; over {base} paired: median {statistics.median(d):+.0f} ns "
                         f"({statistics.median(pct):+.1f} %), rounds {', '.join(f'{x:+.0f}' for x in d)}")
            print(line)
    finally:
        for p in procs.values():
            p.terminate()
            p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
