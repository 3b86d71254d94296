#!/usr/bin/env python3
"""CPU per request of a hello-world Node server, the shim's metrics off vs on
(bench/kelpie_bench/node_requests.py has the method: the app's own CPU time, pinned, adjacent
rounds, medians with quartiles and a 95 % interval of the paired difference).

  python3 bench/nodemetrics/perreq.py [--rounds 12] [--seconds 3] [name=preload.js ...]
      separate processes, by hand (no daemon); default variants: off = no preload, on =
      bench/nodemetrics/preload.js; `name=preload@K=V@K2=V2` sets variables for that server
  python3 bench/nodemetrics/perreq.py --toggle [--env K=V ...]
      one process, by hand, its metrics stopped and started between rounds (SIGUSR2)
  python3 bench/nodemetrics/perreq.py --kelpie [--toggle]
      the same through a Kelpie daemon (target/release/kelpie, a temporary home): apps
      `pmx: false` (off) and default (on); with --toggle one app, `pmx: false` with the
      metrics from preload.js (sending to the daemon), stopped and started
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kelpie_bench import node_requests as nr  # noqa: E402 - needs the path above
from kelpie_bench.managers import clean_up_on_exit, Kelpie, Manager  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def by_hand(a: argparse.Namespace, tmp: Path, procs: list[subprocess.Popen]) -> dict:
    hello = str(HERE / "hello.js")
    if a.toggle:
        port, state = free_port(), tmp / "state"
        env = {**os.environ, "PORT": str(port), "KELPIE_METRICS_TOGGLE": str(state),
               **dict(kv.split("=", 1) for kv in a.env)}
        procs.append(subprocess.Popen(["taskset", "-c", "0", "node", *a.node_args.split(), "-r",
                                       str(nr.PRELOAD), hello], env=env))
        wait_port(port)
        return nr.toggled(a.wrk, procs[-1].pid, port, state, a.rounds, a.seconds)
    variants = [v.split("=", 1) for v in a.variants] or [["off", ""], ["on", str(nr.PRELOAD)]]
    targets = {}
    for name, spec in variants:
        preload, _, env = spec.partition("@")
        port = free_port()
        cmd = ["taskset", "-c", "0", "node", *a.node_args.split()]
        if preload:
            cmd += ["-r", str(Path(preload).resolve())]
        extra = dict(kv.split("=", 1) for kv in env.split("@") if kv)
        procs.append(subprocess.Popen([*cmd, hello],
                                      env={**os.environ, **extra, "PORT": str(port)}))
        targets[name] = (procs[-1].pid, port)
    for _, port in targets.values():
        wait_port(port)
    return nr.interleaved(a.wrk, targets, a.rounds, a.seconds)


def through_kelpie(a: argparse.Namespace, tmp: Path, managers: list[Manager]) -> dict:
    k = Kelpie(tmp / "kelpie")
    managers.append(k)
    apps, ports = [], {}
    state = tmp / "state"
    if a.toggle:
        ports["toggle"] = free_port()
        apps.append({"name": "toggle", "script": str(HERE / "hello.js"), "pmx": False,
                     "node_args": ["-r", str(nr.PRELOAD)], "autorestart": False,
                     "env": {"PORT": str(ports["toggle"]), "KELPIE_METRICS_TOGGLE": str(state)}})
    else:
        for name, pmx in (("off", False), ("on", True)):
            ports[name] = free_port()
            apps.append({"name": name, "script": str(HERE / "hello.js"), "pmx": pmx,
                         "autorestart": False, "env": {"PORT": str(ports[name])}})
    eco = tmp / "ecosystem.json"
    eco.write_text(json.dumps({"apps": apps}))
    k.run("start", str(eco), timeout=120)
    pids = {a["name"]: a["pid"] for a in k.jlist()}
    for port in ports.values():
        wait_port(port)
    if a.toggle:
        return nr.toggled(a.wrk, pids["toggle"], ports["toggle"], state, a.rounds, a.seconds)
    return nr.interleaved(a.wrk, {n: (pids[n], ports[n]) for n in ports}, a.rounds, a.seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=12, help="rounds (pairs with --toggle)")
    ap.add_argument("--seconds", type=int, default=3, help="each counted wrk run")
    ap.add_argument("--node-args", default="", help="extra node flags (by hand)")
    ap.add_argument("--toggle", action="store_true",
                    help="one server whose metrics are stopped and started between rounds")
    ap.add_argument("--kelpie", action="store_true", help="apps started by a Kelpie daemon")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="a variable for the server (--toggle by hand)")
    ap.add_argument("--json", type=Path, help="write the rounds and the summary there")
    ap.add_argument("variants", nargs="*")
    a = ap.parse_args()
    a.wrk = shutil.which("wrk")
    if not a.wrk:
        sys.exit("wrk is not installed (apt-get install wrk)")
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-perreq-"))
    procs: list[subprocess.Popen] = []
    managers: list[Manager] = []
    cleanup = clean_up_on_exit(managers)
    try:
        per = through_kelpie(a, tmp, managers) if a.kelpie else by_hand(a, tmp, procs)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        cleanup()
        managers.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    base = "off"
    summary = nr.summarize(per, base)
    for line in nr.describe(summary, base):
        print(line)
    if a.json:
        a.json.write_text(json.dumps({"rounds": per, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
