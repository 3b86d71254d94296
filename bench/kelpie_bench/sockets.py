"""Servers of other languages on Kelpie's socket (`--only sockets`, issue 73): FastAPI under
uvicorn (`--fd 3`), Flask under gunicorn (the socket from `LISTEN_FDS`) and docs/cluster.md's Go
server, each as one instance on the socket Kelpie owns and passes (`--port`), against the same
program binding its own port. Both run as Kelpie apps (so the socket is all that differs: each
app gets a cgroup of its own, where a process started by the bench would not), at once, and are
measured in turn with wrk, keep-alive and a new connection per request, ROUNDS rounds,
alternating which goes first; the median of each round's ratio. Budget: >= 0.9x the own port.
The black-box tests (`cli::frameworks`) check that these servers reload losing nothing; how fast
they serve is measured here, where a noisy machine's swings are a figure, not a failed test.
The sockets section of RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import tempfile
from pathlib import Path

from .common import log
from .js_runtimes import wait_port
from .managers import clean_up_on_exit, Kelpie, Manager
from .paired import CONNECTIONS, measure_rounds, ratio_table, write_section
from .processes import loadavg
from .report import machine_info
from .wrk import ensure_wrk

ROOT = Path(__file__).resolve().parents[2]
# As the black-box tests pin them (crates/kelpie-cli/tests/cli/frameworks.rs).
VENVS = {"fastapi": ["fastapi==0.165.0", "uvicorn==0.54.0"],
         "flask": ["flask==3.1.3", "gunicorn==27.0.1"]}
SOURCES = {
    "main.py": ('from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get("/")\n'
                'def read_root():\n    return {"Hello": "World"}\n'),
    "app.py": ('from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route("/")\n'
               'def hello_world():\n    return "<p>Hello, World!</p>"\n'),
}
PORTS = {"uvicorn": (18431, 18432), "gunicorn": (18433, 18434), "go": (18435, 18436)}
# Short runs, many rounds: a Python server on this 2-core VM swings 20 % from one 5 s run to the
# next (gunicorn: 3 100 to 4 800 req/s on the same processes), and a round's two runs closer in
# time drift less apart; the median of 15 ratios is what is kept.
ROUNDS = 15
SECONDS_PER_RUN = 3.0
BUDGET = 0.9


def venv(tmp: Path, name: str) -> Path:
    """A venv with VENVS[name] from PyPI; its bin directory."""
    where = tmp / name
    log(f"installing {' '.join(VENVS[name])} from PyPI into {where}")
    subprocess.run(["python3", "-m", "venv", str(where)], check=True, timeout=300)
    subprocess.run([str(where / "bin/python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", *VENVS[name]], check=True, timeout=900,
                   stdin=subprocess.DEVNULL)
    return where / "bin"


def go_server(tmp: Path) -> Path:
    """docs/cluster.md's Go server, built with the machine's Go."""
    where = tmp / "go-server"
    where.mkdir(parents=True)
    docs = (ROOT / "docs/cluster.md").read_text()
    (where / "main.go").write_text(docs.split("```go\n")[1].split("\n```")[0])
    subprocess.run(["go", "mod", "init", "example.com/server"], cwd=where, check=True,
                   capture_output=True, timeout=120)
    subprocess.run(["go", "build", "-o", "server", "."], cwd=where, check=True, timeout=600,
                   env={**os.environ, "GOFLAGS": "-mod=mod"})
    return where / "server"


def servers(tmp: Path, workdir: Path) -> dict[str, tuple[list[str], list[str], dict[str, str]]]:
    """Per server: the arguments of `kelpie start` on Kelpie's socket (`--port` added), those of
    the same program on its own port, and the latter's extra environment."""
    for name, text in SOURCES.items():
        (workdir / name).write_text(text)
    uvicorn = str(venv(tmp, "fastapi") / "uvicorn")
    gunicorn = str(venv(tmp, "flask") / "gunicorn")
    go = str(go_server(tmp))
    own = {name: ports[1] for name, ports in PORTS.items()}
    return {
        # docs/cluster.md's recipes: uvicorn `--fd 3`; gunicorn reads LISTEN_FDS itself.
        "uvicorn": ([uvicorn, "--", "main:app", "--fd", "3"],
                    [uvicorn, "--", "main:app", "--port", str(own["uvicorn"])], {}),
        "gunicorn": ([gunicorn, "--", "-w", "2", "--no-control-socket", "app:app"],
                     [gunicorn, "--", "-w", "2", "--no-control-socket", "-b",
                      f"127.0.0.1:{own['gunicorn']}", "app:app"], {}),
        "go": ([go], [go], {"PORT": str(own["go"])}),
    }


def start_both(k: Kelpie, name: str, setup: tuple[list[str], list[str], dict[str, str]]) -> None:
    through, own, own_env = setup
    cwd = str(k.workdir)
    k.run("start", through[0], "--name", name, "--cwd", cwd, "--port", str(PORTS[name][0]),
          *through[1:])
    k.run("start", own[0], "--name", f"{name}-own", "--cwd", cwd, *own[1:], env=own_env)
    if not k.wait_status("online", 2, timeout=60):
        raise RuntimeError(f"{name}: not online on both ports")
    for port in PORTS[name]:
        wait_port(port, timeout=60)


def sockets_main(cfg: argparse.Namespace, argv_str: str) -> int:
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    wrk, why = ensure_wrk()
    if wrk is None:
        log(why)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-sockets-"))
    managers: list[Manager] = []
    cleanup = clean_up_on_exit(managers)
    rounds = 1 if cfg.quick else ROUNDS
    samples: dict = {}
    try:
        managers.append(Kelpie(tmp / "kelpie"))
        k = managers[-1]
        for name, setup in servers(tmp, k.workdir).items():
            start_both(k, name, setup)
            ports = {"kelpie": PORTS[name][0], "bound": PORTS[name][1]}
            samples[name] = measure_rounds(wrk, ports, rounds, SECONDS_PER_RUN)
            k.run("delete", "all")
    finally:
        cleanup()
    table, worst = ratio_table(samples, ("Server", "Own port", "Kelpie's socket"), BUDGET)
    print(table)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                    f"Linux {info['kernel']}; {', '.join(p for v in VENVS.values() for p in v)} "
                    f"(PyPI); wrk -t2 -c{CONNECTIONS} -d{SECONDS_PER_RUN:g}s, {rounds} rounds, "
                    "median of each")
        write_section(cfg, "sockets", "Other languages' servers on Kelpie's socket", run_line,
                      table, NOTES, samples)
    return 0 if worst >= BUDGET else 1


NOTES = """One instance of each server on the listening socket Kelpie owns and passes (`kelpie
start <program> --port P`: uvicorn takes it with `--fd 3`, gunicorn from `LISTEN_FDS`, the Go
server from fd 3 as docs/cluster.md shows), against the same program binding its own port,
both Kelpie apps running at the same time (each idle while the other is measured). Kelpie is in
no request's path either way: the figure shows that the passed socket serves as fast as the
program's own (gunicorn with 2 workers accepting on it, uvicorn with one process). On this 2-core
VM a Python server's runs swing by 20 %: by hand, gunicorn on Kelpie's socket (with the Python
shim and without it, on the wildcard and on 127.0.0.1) and on its own port (127.0.0.1 and
`[::]`), five setups alternated five times, measured 3 189 to 3 497 req/s with new connections,
in no order of setup; a 7-round run of this section once read gunicorn's new connections as
0.848x, and this one 0.945x."""
