#!/usr/bin/env python3
"""Run PM2's own end-to-end scenarios (test/e2e/*.sh) against Kelpie, or against PM2.

PM2's scenarios are AGPL: they are never copied into this repository. This script takes
the path of a PM2 checkout (or of its bare git directory, as `fetch github:Unitech/pm2`
gives) and prepares a full checkout in a temporary directory, as PM2's CI has one: the
whole tree (`git archive HEAD`, or a copy of the checkout without `.git`), so the
fixtures find what they require beside `test/` (`../../../modules/pm2-io-bpm`, PM2's own
`index.js` through `require('../../..')`, `lib/`, `package.json`), and a `node_modules`
with PM2's dependencies (`npm install --omit=dev --ignore-scripts` in the copy, taken
from `--deps-cache DIR` when an earlier run put it there; a checkout that has its own
`node_modules` keeps it).

Each scenario listed in PM2's `test/e2e.sh` then runs as PM2's CI runs it, each in a
container of its own: in a fresh copy of that checkout (node_modules shared) with a fresh
`HOME`, so what one scenario leaves (files in the fixtures, a saved list, a daemon's
state) never reaches the next. `bash <scenario>` runs from the copy's root, with one retry
(as `test/e2e.sh`'s runTest) and a time limit (600 s: `infinite-loop` alone sleeps 202 s). The copy's `bin/pm2` is replaced by a
launcher that runs the manager under test, with its home in that `HOME`: `~/.pm2`, as
in the CI container. Kelpie runs as `pm2` (its drop-in: PM2's home and file names), so the
scenarios that read `~/.pm2/dump.pm2` or kill `~/.pm2/pm2.pid` find Kelpie's, and none of
them ever reaches the user's own PM2. Under Kelpie the launcher also sets `PM2_HOME` to
`~/.pm2-api`, so a fixture that drives PM2's API (`inside-pm2`) reaches a PM2 daemon of the
scenario's own, beside Kelpie's. After
each attempt the daemons are killed, then whatever still runs with the scenario's HOME
(a daemon whose home a scenario deleted answers no `kill`).

    python3 bench/pm2_e2e.py --pm2-source /work/.mirror/Unitech+pm2/repo
    python3 bench/pm2_e2e.py --pm2-source ... --manager pm2 --pm2-bin /tmp/bench-pm2/node_modules/.bin/pm2
    python3 bench/pm2_e2e.py --pm2-source ... --only startOrX,operate-regex --verbose
    python3 bench/pm2_e2e.py --pm2-source ... --deps-cache /tmp/pm2-e2e-deps

Prints one line per scenario (pass/FAIL and time) and a total; `--json FILE` writes the
results. Exit status 0 when every scenario passed.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Under Kelpie, the home of the PM2 daemon a fixture may start through PM2's API.
PM2_API_HOME = ".pm2-api"


def extract_checkout(source: Path, into: Path) -> None:
    """Copies PM2's whole tree from a checkout (without .git) or a bare git directory."""
    if (source / "test" / "e2e.sh").is_file():
        shutil.copytree(source, into, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return
    into.mkdir()
    archive = subprocess.run(
        ["git", "--git-dir", str(source), "archive", "HEAD"],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def install_dependencies(root: Path, cache) -> None:
    """Gives the copy a node_modules with PM2's dependencies, as `npm install` does in its CI.

    With a cache directory, the install is kept there under a key of package.json and the
    major version of node, and copied from there on the next run."""
    if (root / "node_modules").is_dir():
        return
    node = subprocess.run(["node", "--version"], check=True, stdout=subprocess.PIPE, text=True)
    key = hashlib.sha256((root / "package.json").read_bytes()).hexdigest()[:16]
    key += "-node" + node.stdout.strip().lstrip("v").split(".")[0]
    cached = cache / key / "node_modules" if cache else None
    if cached and cached.is_dir():
        shutil.copytree(cached, root / "node_modules", symlinks=True)
        return
    install = subprocess.run(
        ["npm", "install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        sys.exit(f"npm install in {root} failed:\n{install.stdout}")
    if cached:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=key + ".", dir=cache))
        shutil.copytree(root / "node_modules", staging / "node_modules", symlinks=True)
        try:
            staging.rename(cache / key)
        except OSError:  # another run cached it first
            shutil.rmtree(staging, ignore_errors=True)


def fresh_checkout(tree: Path, root: Path) -> None:
    """A copy of the prepared checkout for one scenario; node_modules is shared (a link)."""
    shutil.copytree(tree, root, symlinks=True, ignore=shutil.ignore_patterns("node_modules"))
    (root / "node_modules").symlink_to(tree / "node_modules")


def scenarios(e2e_sh: Path) -> list:
    """The scenarios PM2's CI runs: `runTest` lines not commented out (bun is not installed)."""
    listed = []
    for line in e2e_sh.read_text().splitlines():
        match = re.match(r"\s*runTest\s+\./(test/e2e/\S+\.sh)", line)
        if match:
            listed.append(match.group(1))
    return listed


def write_launcher(root: Path, manager: str, binary: str, home: Path, pm2_api_home: Path) -> None:
    """Replaces the copy's bin/pm2 (PM2's own CLI) with the manager under test.

    Kelpie runs as `pm2` (argv[0], as a link named `pm2` runs it: the drop-in), so its home
    has PM2's file names (`pm2.pid`, `dump.pm2`). PM2_HOME goes to the apps (they inherit the
    CLI's environment): a fixture that uses PM2's API gets a PM2 daemon in a home of its own,
    which never meets Kelpie's."""
    (root / "bin").mkdir(exist_ok=True)
    launcher = root / "bin" / "pm2"
    if launcher.exists() or launcher.is_symlink():
        launcher.unlink()
    if manager == "kelpie":
        command = f'KELPIE_HOME="{home}" PM2_HOME="{pm2_api_home}" exec -a pm2 "{binary}" "$@"'
    else:
        command = f'PM2_HOME="{home}" exec "{binary}" "$@"'
    launcher.write_text(f"#!/bin/bash\n{command}\n")
    launcher.chmod(0o755)


def scenario_env(user_home: Path) -> dict:
    env = dict(os.environ)
    env["HOME"] = str(user_home)  # the scenarios' ~/.pm2 is the run's, as in PM2's CI container
    env["PM2_SILENT"] = "true"
    env.pop("PM2_HOME", None)
    env.pop("KELPIE_HOME", None)
    env.pop("CI", None)  # some scenarios change what they do under CI
    return env


def reap_leftovers(user_home: Path) -> int:
    """Kills what is still running with the run's HOME once the daemons were asked to quit.

    A scenario that deletes its home (`rm -rf ~/.pm2`) leaves a daemon that no `kill`
    reaches any more; everything the scenarios start has the run's HOME in its environment."""
    marker = f"HOME={user_home}".encode()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker not in environ.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue
    return killed


def kill_daemon(root: Path, user_home: Path, log=None) -> None:
    env = scenario_env(user_home)
    subprocess.run(
        [str(root / "bin" / "pm2"), "kill"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    pm2_home = user_home / PM2_API_HOME
    if (pm2_home / "pm2.pid").is_file():
        # A PM2 daemon that a fixture started through PM2's API, under Kelpie.
        subprocess.run(
            ["node", str(root / "lib" / "binaries" / "CLI.js"), "kill"],
            env=dict(env, PM2_HOME=str(pm2_home)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    left = reap_leftovers(user_home)
    if left and log is not None:
        log.write(f"\n[pm2_e2e] killed {left} processes left running\n".encode())


def run_once(root: Path, user_home: Path, scenario: str, timeout: float, log) -> bool:
    child = subprocess.Popen(
        ["bash", scenario],
        cwd=root,
        env=scenario_env(user_home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        return child.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        log.write(f"\n[pm2_e2e] timed out after {timeout:.0f} s\n".encode())
        return False
    finally:
        # The scenario's own background commands (`pm2 logs &`…) go with its session.
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pm2-source", required=True, type=Path, help="PM2 checkout or bare git dir")
    parser.add_argument("--manager", choices=["kelpie", "pm2"], default="kelpie")
    parser.add_argument("--kelpie-bin", default=str(REPO / "target" / "release" / "kelpie"))
    parser.add_argument("--pm2-bin", help="PM2's bin/pm2 (with --manager pm2)")
    parser.add_argument("--only", help="comma-separated scenario names (file stems)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per attempt (infinite-loop takes ~390)"
    )
    parser.add_argument("--no-retry", action="store_true", help="PM2's CI retries a failure once")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (each scenario's copy and home)"
    )
    parser.add_argument("--verbose", action="store_true", help="print each failed scenario's output")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--deps-cache", type=Path, help="keep PM2's npm install here and reuse it on later runs"
    )
    args = parser.parse_args()

    binary = args.kelpie_bin if args.manager == "kelpie" else args.pm2_bin
    if not binary or not os.access(binary, os.X_OK):
        parser.error(f"no executable manager binary: {binary!r}")
    binary = os.path.abspath(binary)

    work = Path(tempfile.mkdtemp(prefix=f"pm2-e2e-{args.manager}-"))
    tree = work / "tree"
    extract_checkout(args.pm2_source.resolve(), tree)
    install_dependencies(tree, args.deps_cache.resolve() if args.deps_cache else None)
    selected = scenarios(tree / "test" / "e2e.sh")
    if args.only:
        wanted = set(args.only.split(","))
        selected = [s for s in selected if Path(s).stem in wanted]

    results = []
    for scenario in selected:
        name = Path(scenario).stem
        log_path = work / f"{name}.log"
        started = time.monotonic()
        # A checkout and a home of the scenario's own, as PM2's CI gives each its container.
        root = work / "runs" / name
        user_home = work / "homes" / name
        fresh_checkout(tree, root)
        home = user_home / ".pm2"
        home.mkdir(parents=True)
        write_launcher(root, args.manager, binary, home, user_home / PM2_API_HOME)
        with open(log_path, "wb") as log:
            passed = run_once(root, user_home, scenario, args.timeout, log)
            kill_daemon(root, user_home, log)
            if not passed and not args.no_retry:
                log.write(b"\n[pm2_e2e] retry\n")
                log.flush()
                passed = run_once(root, user_home, scenario, args.timeout, log)
                kill_daemon(root, user_home, log)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(user_home, ignore_errors=True)
        took = time.monotonic() - started
        results.append({"scenario": scenario, "passed": passed, "seconds": round(took, 1)})
        print(f"{'pass' if passed else 'FAIL'}  {took:6.1f}s  {scenario}", flush=True)
        if not passed and args.verbose:
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            print("\n".join("    " + line for line in tail), flush=True)

    passed = sum(r["passed"] for r in results)
    print(f"{passed} of {len(results)} scenarios passed under {args.manager} ({work})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
