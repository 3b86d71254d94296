"""Instructions per request of a hello-world Node server, counted by valgrind (callgrind): a
figure the rest of the machine's load does not change, beside the CPU times of
node_requests.py (the nodemetrics section, and bench/nodemetrics/instructions.py).

Each variant's server (bench/nodemetrics/hello-n.js, which exits after N requests) runs under
callgrind while wrk asks it; the instructions of a run answering N2 requests less those of one
answering N1 (start-up, warm-up), over N2 - N1, are the server's per request, warm. Under
valgrind the app runs ~50x slower, so its timers would fire ~50x more often per request than
for real: the metrics' own periods are made as much longer (KELPIE_METRICS_SLOW, preload.js).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent.parent / "nodemetrics"
SLOW = "50"
# One connection: each request has an event-loop turn of its own. With 32, how many requests a
# turn handles depends on timing, and the runs of one variant disagreed by 2-4 % (the turn's own
# work shared among more or fewer requests).
CONNECTIONS = 1


def available() -> str | None:
    """None when valgrind and wrk are both there, else what is missing."""
    missing = [p for p in ("valgrind", "wrk") if not shutil.which(p)]
    return " and ".join(missing) + " not installed" if missing else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def count(preload: str, env: dict[str, str], n: int, tmp: Path) -> int:
    """The instructions of one server run (node [-r preload] hello-n.js) answering n requests."""
    port = _free_port()
    log = tmp / f"vg-{port}.log"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.%p", "node"]
    if preload:
        cmd += ["-r", str(Path(preload).resolve())]
    cmd.append(str(NODE_DIR / "hello-n.js"))
    with log.open("w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, **env, "PORT": str(port),
                                       "EXIT_AFTER": str(n), "KELPIE_METRICS_SLOW": SLOW})
    client = None
    try:
        while server.poll() is None and not _listening(port):
            time.sleep(0.5)
        client = subprocess.Popen(["wrk", "-t1", f"-c{CONNECTIONS}", "-d3600s",
                                   f"http://127.0.0.1:{port}/"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server.wait(timeout=3600)
    finally:
        if client is not None:
            client.kill()
            client.wait()
        if server.poll() is None:
            server.kill()
            server.wait()
    m = re.search(r"Collected : (\d+)", log.read_text())
    if not m or server.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {log.read_text()[-2000:]}")
    return int(m.group(1))


def per_request(variants: list[tuple[str, str, dict[str, str]]], tmp: Path, n1: int = 5000,
                n2: int = 25000, parallel: int = 2) -> dict[str, dict]:
    """variants: (name, preload or "", variables). name -> instructions per request and the
    two runs' counts; `parallel` runs at once (the counts do not depend on it)."""
    jobs = [(name, preload, env, n) for name, preload, env in variants for n in (n1, n2)]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        counts = list(pool.map(lambda j: count(j[1], j[2], j[3], tmp), jobs))
    out: dict[str, dict] = {}
    for (name, _, _, n), c in zip(jobs, counts):
        out.setdefault(name, {})[f"instructions_{n}"] = c
    for name, r in out.items():
        r["per_request"] = (r[f"instructions_{n2}"] - r[f"instructions_{n1}"]) / (n2 - n1)
    return out
