"""Bun and Deno in cluster mode (`--only runtimes`, issue 78): a hello-world server of each
runtime, two instances through Kelpie (`-i 2`, the app's source as written: `Bun.serve({ port
})`, `Deno.serve({ port })`) against the bound, the same runtime's two processes sharing the
port by hand (the source with `reusePort: true`, started directly). wrk with keep-alive and with
a new connection per request, both setups running at once and measured in turn, ROUNDS rounds
each; the median requests/s of each, and the median of each round's ratio. Budget: Kelpie >= 0.95x the bound. PM2 cannot run either
in cluster mode (docs/differences-from-pm2.md). The runtimes section of RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .common import log
from .managers import clean_up_on_exit, Kelpie, Manager
from .paired import CONNECTIONS, measure_rounds, ratio_table, write_section
from .processes import loadavg
from .report import machine_info
from .wrk import ensure_wrk

VERSIONS = {"bun": "1.4.5", "deno": "2.9.6"}  # as the black-box tests pin them
# Each runtime's bound and Kelpie's apps listen at once, on ports of their own.
PORTS = {("bun", "bound"): 18411, ("bun", "kelpie"): 18412,
         ("deno", "bound"): 18413, ("deno", "kelpie"): 18414}
INSTANCES = 2
ROUNDS = 9
SECONDS_PER_RUN = 5.0
BUDGET = 0.95

SOURCES = {
    "bun": "Bun.serve({ port: %d%s, fetch() { return new Response('hello'); } });\n",
    "deno": "Deno.serve({ port: %d%s, onListen() {} }, () => new Response('hello'));\n",
}


def install_runtimes(tmp: Path) -> Path:
    """bun and deno from npm (pinned) into `tmp`; their .bin directory."""
    log(f"installing bun@{VERSIONS['bun']} and deno@{VERSIONS['deno']} from npm into {tmp}")
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(tmp),
                    *(f"{name}@{version}" for name, version in VERSIONS.items())],
                   check=True, stdin=subprocess.DEVNULL, timeout=900)
    return tmp / "node_modules" / ".bin"


def source(runtime: str, by_hand: bool) -> str:
    port = PORTS[(runtime, "bound" if by_hand else "kelpie")]
    return SOURCES[runtime] % (port, ", reusePort: true" if by_hand else "")


def command(bin_dir: Path, runtime: str, script: Path, by_hand: bool) -> list[str]:
    program = str(bin_dir / runtime)
    if runtime == "bun":
        return [program, str(script)]
    flags = ["--allow-net"] + (["--unstable-net"] if by_hand else [])
    return [program, "run", *flags, str(script)]


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


class ByHand:
    """The bound: INSTANCES processes of the runtime started directly, each binding the port
    with reusePort."""

    def __init__(self, bin_dir: Path, runtime: str, workdir: Path):
        script = workdir / f"bound-{runtime}.ts"
        script.write_text(source(runtime, True))
        self.procs = [subprocess.Popen(command(bin_dir, runtime, script, True),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
                      for _ in range(INSTANCES)]
        wait_port(PORTS[(runtime, "bound")])
        time.sleep(1.0)  # every process listening

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


def through_kelpie(k: Kelpie, bin_dir: Path, runtime: str) -> None:
    script = k.workdir / f"{runtime}.ts"
    script.write_text(source(runtime, False))
    args = ["start", str(script), "--name", runtime, "--interpreter", str(bin_dir / runtime),
            "-i", str(INSTANCES)]
    if runtime == "deno":
        args += ["--interpreter-args", "run --allow-net"]
    k.run(*args)
    if not k.wait_status("online", INSTANCES, timeout=60):
        raise RuntimeError(f"{runtime}: {INSTANCES} instances not online through Kelpie")
    wait_port(PORTS[(runtime, "kelpie")])
    time.sleep(1.0)


def runtimes_main(cfg: argparse.Namespace, argv_str: str) -> int:
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    wrk, why = ensure_wrk()
    if wrk is None:
        log(why)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-runtimes-"))
    bin_dir = install_runtimes(tmp / "npm")
    managers: list[Manager] = []
    cleanup = clean_up_on_exit(managers)
    rounds = 1 if cfg.quick else ROUNDS
    samples: dict = {}
    try:
        managers.append(Kelpie(tmp / "kelpie"))
        k = managers[-1]
        for runtime in VERSIONS:
            # Both run at once, each idle while the other is measured (paired.py).
            bound = ByHand(bin_dir, runtime, k.workdir)
            try:
                through_kelpie(k, bin_dir, runtime)
                ports = {side: PORTS[(runtime, side)] for side in ("bound", "kelpie")}
                samples[runtime] = measure_rounds(wrk, ports, rounds, SECONDS_PER_RUN)
                k.run("delete", runtime)
            finally:
                bound.stop()
    finally:
        cleanup()
    table, worst = ratio_table(
        samples, ("Runtime", "Bound (2 processes by hand)", "Through Kelpie (`-i 2`)"), BUDGET)
    print(table)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                    f"Linux {info['kernel']}; Bun {VERSIONS['bun']}, Deno {VERSIONS['deno']} "
                    f"(npm); wrk -t2 -c{CONNECTIONS} -d{SECONDS_PER_RUN:g}s, {rounds} rounds, median of each")
        write_section(cfg, "runtimes", "Bun and Deno in cluster mode", run_line, table, NOTES,
                      samples)
    return 0 if worst >= BUDGET else 1


NOTES = """Two instances of a hello-world server, as written (`Bun.serve({ port })`,
`Deno.serve({ port })`), started by `kelpie start app.ts --interpreter bun -i 2` (Deno: with
`--interpreter-args "run --allow-net"`): Kelpie's runtime shim adds `reusePort` to the listen
and times a sample of the requests for the runtime metrics (at most 500 a second). The bound:
the same runtime's two processes started by hand, the source saying `reusePort: true`, running
at the same time as Kelpie's on another port (each idle while the other is measured). Kelpie
is in no request's path either way; what it adds is the shim's work per request. Bun answers
`Connection: close` requests by closing at once, which wrk counts as read errors in both setups
(the requests are answered; the column counts them as wrk does)."""
