#!/usr/bin/env python3
"""Run PM2's own end-to-end scenarios (test/e2e/*.sh) against Kelpie, or against PM2.

PM2's scenarios are AGPL: they are never copied into this repository. This script takes
the path of a PM2 checkout (or of its bare git directory, as `fetch github:Unitech/pm2`
gives) and copies its `test/` folder into a temporary directory, next to a `bin/pm2` that
runs the manager under test with a home of its own. Each scenario listed in PM2's
`test/e2e.sh` then runs as PM2's CI runs it (`bash <scenario>` from the copy's root, one
retry), with a time limit, and the daemon is killed after each.

    python3 bench/pm2_e2e.py --pm2-source /work/.mirror/Unitech+pm2/repo
    python3 bench/pm2_e2e.py --pm2-source ... --manager pm2 --pm2-bin /tmp/bench-pm2/node_modules/.bin/pm2
    python3 bench/pm2_e2e.py --pm2-source ... --only startOrX,operate-regex --verbose

Prints one line per scenario (pass/FAIL and time) and a total; `--json FILE` writes the
results. Exit status 0 when every scenario passed.
"""

import argparse
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


def copy_tests(source: Path, into: Path) -> None:
    """Copies PM2's test/ folder from a checkout or a bare git directory."""
    if (source / "test" / "e2e.sh").is_file():
        shutil.copytree(source / "test", into / "test", symlinks=True)
        return
    archive = subprocess.run(
        ["git", "--git-dir", str(source), "archive", "HEAD", "test"],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def scenarios(e2e_sh: Path) -> list:
    """The scenarios PM2's CI runs: `runTest` lines not commented out (bun is not installed)."""
    listed = []
    for line in e2e_sh.read_text().splitlines():
        match = re.match(r"\s*runTest\s+\./(test/e2e/\S+\.sh)", line)
        if match:
            listed.append(match.group(1))
    return listed


def write_launcher(root: Path, manager: str, binary: str, home: Path) -> None:
    (root / "bin").mkdir(exist_ok=True)
    launcher = root / "bin" / "pm2"
    variable = "KELPIE_HOME" if manager == "kelpie" else "PM2_HOME"
    launcher.write_text(f'#!/bin/sh\n{variable}="{home}" exec "{binary}" "$@"\n')
    launcher.chmod(0o755)


def kill_daemon(root: Path) -> None:
    subprocess.run(
        [str(root / "bin" / "pm2"), "kill"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def run_once(root: Path, scenario: str, timeout: float, log) -> bool:
    env = dict(os.environ)
    env["PM2_SILENT"] = "true"
    env.pop("CI", None)  # some scenarios change what they do under CI
    child = subprocess.Popen(
        ["bash", scenario],
        cwd=root,
        env=env,
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
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per attempt")
    parser.add_argument("--no-retry", action="store_true", help="PM2's CI retries a failure once")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", action="store_true", help="print each failed scenario's output")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    binary = args.kelpie_bin if args.manager == "kelpie" else args.pm2_bin
    if not binary or not os.access(binary, os.X_OK):
        parser.error(f"no executable manager binary: {binary!r}")
    binary = os.path.abspath(binary)

    work = Path(tempfile.mkdtemp(prefix=f"pm2-e2e-{args.manager}-"))
    home = work / "home"
    home.mkdir()
    copy_tests(args.pm2_source.resolve(), work)
    write_launcher(work, args.manager, binary, home)
    selected = scenarios(work / "test" / "e2e.sh")
    if args.only:
        wanted = set(args.only.split(","))
        selected = [s for s in selected if Path(s).stem in wanted]

    results = []
    for scenario in selected:
        name = Path(scenario).stem
        log_path = work / f"{name}.log"
        started = time.monotonic()
        with open(log_path, "wb") as log:
            passed = run_once(work, scenario, args.timeout, log)
            kill_daemon(work)
            if not passed and not args.no_retry:
                log.write(b"\n[pm2_e2e] retry\n")
                log.flush()
                passed = run_once(work, scenario, args.timeout, log)
                kill_daemon(work)
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
        kill_daemon(work)
        shutil.rmtree(work, ignore_errors=True)
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
