"""Runtime scenario: `kelpie runtime` vs `pm2-runtime`, each as PID 1 of its own pid namespace
(`unshare`), 10 apps: the time from SIGTERM to the runtime's exit, the zombies left by apps
whose orphans exit, and the size of a static kelpie against PM2's install (+ node). Here: the
static build, the runs and their rounds, the summary; what is read from /proc is in
runtime_procs."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .common import log, REPO
from .processes import kill9, read_rss_mb
from .runtime_procs import (
    describe_binary, dir_footprint, is_runtime_app, parse_proc_stat, process_table, tree_below,
)
from .stats import median


RUNTIME_APPS = 10
RUNTIME_ORPHANS = 5            # orphans each app of the zombie variant leaves
RUNTIME_ORPHAN_LIFE_MS = 200   # ... which exit this long after they were born
RUNTIME_ZOMBIE_WAIT_S = 3.0    # after all apps run, before the zombies are counted
RUNTIME_SETTLE_S = 1.0         # after all apps run, before the RSS and the SIGTERM
RUNTIME_START_CAP_S = 60.0     # a round gives up when the apps are not all running by then
RUNTIME_STOP_CAP_S = 60.0      # ... or when the runtime has not exited this long after SIGTERM
RUNTIME_BINARY_TARGET_MB = 15  # the target for the static binary (MiB)
RUNTIME_VARIANTS = (
    ("stop", "apps that exit at once on SIGINT/SIGTERM"),
    ("orphans", f"apps that each leave {RUNTIME_ORPHANS} orphans (double fork)"),
)
STATIC_TRIPLE = f"{platform.machine()}-unknown-linux-gnu"
STATIC_DIR = REPO / "target" / "static" / STATIC_TRIPLE / "release"
KELPIE_STATIC = STATIC_DIR / "kelpie"
FAKE_STATIC = STATIC_DIR / "fake-app"
RUNTIME_RUNS: list["RuntimeRun"] = []  # every runtime started, for the cleanup


def build_static() -> None:
    """kelpie and fake-app linked statically, as crates/kelpie-cli/tests/cli/image.rs builds them
    (same command, same target dir: whichever runs second finds them up to date). glibc with
    crt-static: the Dockerfile's musl target is not installed on these machines."""
    log(f"building static kelpie and fake-app (release, {STATIC_TRIPLE}, crt-static, "
        f"target/static)")
    env = {**os.environ, "CARGO_TARGET_DIR": str(REPO / "target" / "static"),
           "RUSTFLAGS": "-C target-feature=+crt-static"}
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    subprocess.run(["cargo", "build", "--release", "--locked", "--target", STATIC_TRIPLE,
                    "-p", "kelpie-cli", "-p", "kelpie-testkit"],
                   cwd=REPO, check=True, stdout=sys.stderr, env=env)
    for b in (KELPIE_STATIC, FAKE_STATIC):
        if not b.exists():
            sys.exit(f"missing binary after build: {b}")


def unshare_permitted() -> tuple[bool, str]:
    try:
        r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"unshare: {e}"
    if r.returncode != 0:
        return False, ("`unshare --pid --fork --mount-proc` is not permitted here: "
                       + r.stderr.decode(errors="replace").strip())
    return True, ""


def runtime_ecosystem(n: int, app: str, args: list[str]) -> dict:
    """The ecosystem file both runtimes read: n copies of app, run directly."""
    return {"apps": [{"name": f"app{i}", "script": app, "interpreter": "none", "args": args,
                      "autorestart": True} for i in range(n)]}


class RuntimeRun:
    """One runtime as PID 1 of a new pid namespace: `unshare --pid --fork --mount-proc argv`,
    output to a file. PID 1's host pid is unshare's child; killing it kills the namespace
    (`--kill-child`: also when unshare itself is killed first)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, out: Path):
        self.out_path = out
        self._out = open(out, "wb")
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child",
                                      "--mount-proc", *argv],
                                     env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        self.started = time.perf_counter()
        self.pid1: int | None = None
        RUNTIME_RUNS.append(self)

    def find_pid1(self, table: dict[int, tuple[int, str, str]]) -> int | None:
        if self.pid1 is None:
            self.pid1 = next((p for p, (pp, _s, _c) in table.items() if pp == self.proc.pid),
                             None)
        return self.pid1

    def output(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.find_pid1(process_table())
            if self.pid1 is not None and _ppid_of(self.pid1) == self.proc.pid:
                kill9(self.pid1)  # the namespace's init: every process in it dies too
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def _ppid_of(pid: int) -> int | None:
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())[1]
    except (OSError, IndexError, ValueError):
        return None


def runtime_round(label: str, argv: list[str], env: dict[str, str], workdir: Path,
                  variant: str, r: int, app: str) -> dict:
    """One round: start the runtime, wait until its RUNTIME_APPS apps run, then (orphans) wait
    and count the namespace's zombies, read PID 1's RSS, SIGTERM it and time its exit."""
    run = RuntimeRun(argv, env, workdir, workdir / f"{label}-{variant}-{r}.out")
    res: dict = {"round": r}
    try:
        deadline = run.started + RUNTIME_START_CAP_S
        apps: list[int] = []
        while time.perf_counter() < deadline and run.proc.poll() is None:
            table = process_table()
            pid1 = run.find_pid1(table)
            if pid1 is not None:
                apps = [p for p in tree_below(table, pid1)
                        if table[p][1] != "Z" and is_runtime_app(table[p][2], app)]
                if len(apps) >= RUNTIME_APPS:
                    break
            time.sleep(0.01)
        res["start_s"] = time.perf_counter() - run.started
        if len(apps) < RUNTIME_APPS:
            res["error"] = (f"{len(apps)} of {RUNTIME_APPS} apps running after "
                            f"{res['start_s']:.1f} s (exit {run.proc.poll()}):\n"
                            + run.output()[-2000:])
            log(f"{label} {variant} round {r}: {res['error']}")
            return res
        if variant == "orphans":
            time.sleep(RUNTIME_ZOMBIE_WAIT_S)
            table = process_table()
            below = tree_below(table, run.pid1)
            res["zombies"] = sum(1 for p in below if table[p][1] == "Z")
            res["processes"] = len(below)
            # Each app prints `orphans N spawned` once its N double forks are done.
            res["orphans_spawned"] = (run.output().count(f"orphans {RUNTIME_ORPHANS} spawned")
                                      * RUNTIME_ORPHANS)
        else:
            time.sleep(RUNTIME_SETTLE_S)
        res["pid1_rss_mb"] = read_rss_mb(run.pid1)
        t0 = time.perf_counter()
        os.kill(run.pid1, signal.SIGTERM)
        try:
            run.proc.wait(timeout=RUNTIME_STOP_CAP_S)
            res["stop_s"] = time.perf_counter() - t0
            res["exit_code"] = run.proc.returncode
        except subprocess.TimeoutExpired:
            res["stop_s"] = None
            res["error"] = f"still running {RUNTIME_STOP_CAP_S:.0f} s after SIGTERM"
        return res
    finally:
        run.kill()
        if run in RUNTIME_RUNS:
            RUNTIME_RUNS.remove(run)


def bench_runtime(pm2_runtime: Path | None, tmp: Path, cfg: argparse.Namespace) -> dict:
    """Both runtimes, round by round in turn (PM2 then Kelpie in each round, so that noise on
    the machine falls on both alike), per variant; and the sizes."""
    work = tmp / "runtime"
    work.mkdir(parents=True, exist_ok=True)
    app = str(FAKE_STATIC)
    ecos = {}
    for variant, _title in RUNTIME_VARIANTS:
        args = ([] if variant == "stop" else
                ["--orphans", str(RUNTIME_ORPHANS), "--orphan-life", str(RUNTIME_ORPHAN_LIFE_MS)])
        ecos[variant] = work / f"ecosystem-{variant}.json"
        ecos[variant].write_text(json.dumps(runtime_ecosystem(RUNTIME_APPS, app, args), indent=1))
    raw: dict[str, dict[str, list[dict]]] = {"pm2": {}, "kelpie": {}}
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PM2_", "KELPIE_"))}
    for variant, _title in RUNTIME_VARIANTS:
        for r in range(cfg.runtime_rounds):
            for label in (("pm2", "kelpie") if pm2_runtime else ("kelpie",)):
                home = work / f"{label}-home-{variant}-{r}"
                home.mkdir()
                if label == "pm2":
                    argv = [str(pm2_runtime), str(ecos[variant])]
                    env = {**base_env, "PM2_HOME": str(home), "HOME": str(home),
                           "PM2_DISABLE_VERSION_CHECK": "1"}
                else:
                    argv = [str(KELPIE_STATIC), "runtime", str(ecos[variant])]
                    env = {**base_env, "KELPIE_HOME": str(home)}
                log(f"runtime: {label}, {variant}, round {r + 1}/{cfg.runtime_rounds}")
                raw[label].setdefault(variant, []).append(
                    runtime_round(label, argv, env, work, variant, r, app))
    node = shutil.which("node")
    sizes = {"kelpie_bytes": KELPIE_STATIC.stat().st_size,
             "kelpie_file": describe_binary(KELPIE_STATIC),
             "node_bytes": Path(node).resolve().stat().st_size if node else None}
    if pm2_runtime:
        modules = pm2_runtime.parent.parent  # <prefix>/node_modules/.bin/pm2-runtime
        sizes["pm2_modules_bytes"], sizes["pm2_modules_files"] = dir_footprint(modules)
    return {"raw": raw, "sizes": sizes,
            "pm2": summarize_runtime(raw["pm2"]) if pm2_runtime else None,
            "kelpie": summarize_runtime(raw["kelpie"])}


def summarize_runtime(raw: dict[str, list[dict]]) -> dict:
    """Medians (and extremes) over the rounds of each variant."""
    out: dict = {}
    for variant, _title in RUNTIME_VARIANTS:
        rounds = raw.get(variant) or []
        ok = [x for x in rounds if x.get("stop_s") is not None]
        stops = [x["stop_s"] for x in ok]
        d = {"rounds": len(rounds), "ok": len(ok),
             "stop_s": median(stops), "stop_s_min": min(stops, default=None),
             "stop_s_max": max(stops, default=None),
             "start_s": median([x["start_s"] for x in ok]),
             "rss_mb": median([x["pid1_rss_mb"] for x in ok if x.get("pid1_rss_mb") is not None]),
             "exit_0": sum(1 for x in ok if x.get("exit_code") == 0),
             "exit_codes": sorted({x.get("exit_code") for x in ok if x.get("exit_code") != 0},
                                  key=str)}
        if variant == "orphans":
            zs = [x["zombies"] for x in rounds if "zombies" in x]
            d["zombies"] = median(zs)
            d["zombies_max"] = max(zs, default=None)
            d["orphans_spawned"] = median([x.get("orphans_spawned", 0) for x in rounds
                                           if "zombies" in x])
        out[variant] = d
    return out
