"""Deploy scenario (`--only deploy`): the same two-host deploy (deploy_lab: two users, each
behind its own sshd on 127.0.0.1) with `pm2 deploy` and with `kelpie deploy`: setup, the first
deploy (v1), then rounds alternating v2/v1 under keep-alive HTTP load on both hosts (wrk,
started before the deploy and stopped after it): the deploy's wall time, the failed requests
and when each host first answered with the new version; then a deploy whose post-deploy exits
3, and what it leaves on each host."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .common import http_get, KELPIE_BIN, log, REPO
from .deploy_lab import (
    DEPLOY_VERSIONS, DeployLab, deploy_possible, LOAD_LEAD_S, LOAD_TAIL_S, PM2_DEPLOY_USER,
    WRK_CONNECTIONS,
)
from .deploy_report import deploy_output, summarize_deploy
from .managers import build_kelpie, install_pm2, Kelpie, Manager, Pm2
from .processes import cleanup_on_exit, loadavg
from .wrk import finish_wrk, start_wrk, WRK_PROCS, wrk_version

POLL_S = 0.1        # the switch watch: one new connection per host this often
DEPLOY_TIMEOUT_S = 300.0


@dataclass
class Driver:
    """One manager's deploy command, run as root in the app's checkout."""

    key: str       # "pm2" or "kelpie": the deploy env, and the apps' ports
    label: str
    argv0: list[str]
    env: dict[str, str]
    path: str      # the deploy path on each host, from its home

    def argv(self, env: str, *words: str) -> list[str]:
        return [*self.argv0, "deploy", "ecosystem.config.js", env, *words]

    def shown(self, env: str, *words: str) -> str:
        """The command as the report shows it."""
        return " ".join([self.key, "deploy", "ecosystem.config.js", env, *words])


def deploy_cmd(lab: DeployLab, drv: Driver, env: str, *words: str) -> dict:
    """One deploy command: its exit code, wall time, the SSH logins it made on each host, and
    the end of its output when it failed."""
    logins = lab.logins()
    t0 = time.perf_counter()
    p = subprocess.run(drv.argv(env, *words), cwd=lab.src, env=drv.env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=DEPLOY_TIMEOUT_S)
    wall = time.perf_counter() - t0
    out = p.stdout.decode(errors="replace")
    log(f"{drv.label}: `{drv.shown(env, *words)}` exited {p.returncode} in {wall:.2f} s")
    after = lab.logins()
    res = {"command": drv.shown(env, *words), "rc": p.returncode, "wall_s": wall,
           "ssh_logins": {u: after[u] - logins.get(u, 0) for u in after}}
    if p.returncode != 0:
        res["output_tail"] = out[-800:]
    return res


def http_body(port: int, timeout: float = 1.0) -> str:
    """One GET / with a new connection: the body's first line on a 200, else what failed."""
    data = http_get(port, timeout)
    if isinstance(data, str):
        return data
    return parse_http_body(data)


def parse_http_body(data: bytes) -> str:
    """A raw HTTP/1.x response -> its body's first line on a 200, else "non-200" or "empty"."""
    if not data:
        return "empty"
    head, _, body = data.partition(b"\r\n\r\n")
    if head.split(b" ", 2)[1:2] != [b"200"]:
        return "non-200"
    if b"transfer-encoding: chunked" in head.lower():
        size, _, rest = body.partition(b"\r\n")
        body = rest[:int(size or b"0", 16)]
    return body.decode(errors="replace").strip().splitlines()[0] if body.strip() else "empty"


class SwitchWatch:
    """While a deploy runs: each host's port asked every POLL_S with a new connection; when each
    host first answered the new version (s after start()), and how many asks failed."""

    def __init__(self, ports: dict[str, int], new: str):
        self.ports, self.new = ports, new
        self.first_new: dict[str, float | None] = dict.fromkeys(ports)
        self.failed: dict[str, int] = dict.fromkeys(ports, 0)
        self.kinds: dict[str, int] = {}  # what the failed asks got (refused, reset, ...)
        self.asked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.asked += 1
            for user, port in self.ports.items():
                body = http_body(port)
                if body not in DEPLOY_VERSIONS:
                    self.failed[user] += 1
                    self.kinds[body] = self.kinds.get(body, 0) + 1
                elif body == self.new and self.first_new[user] is None:
                    self.first_new[user] = time.perf_counter() - self.t0
            self._stop.wait(POLL_S)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=10)
        return {"first_new_s": self.first_new, "new_connection_failed": self.failed,
                "new_connection_failures": self.kinds, "asked": self.asked}


def loaded_deploy(lab: DeployLab, drv: Driver, wrk: str, env: str, ref: str) -> dict:
    """`deploy <env> ref <ref>` while wrk loads both hosts (keep-alive, from LOAD_LEAD_S before
    to LOAD_TAIL_S after): the command's result, wrk's figures per host, the switch watch, and
    what each host answers after."""
    ports = lab.app_ports[drv.key]
    procs = {u: start_wrk([wrk, "-t1", f"-c{WRK_CONNECTIONS}", "-d3600s",
                           f"http://127.0.0.1:{port}/"]) for u, port in ports.items()}
    try:
        time.sleep(LOAD_LEAD_S)
        watch = SwitchWatch(ports, ref)
        watch.start()
        res = deploy_cmd(lab, drv, env, "ref", ref)
        time.sleep(LOAD_TAIL_S)
        res["watch"] = watch.stop()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # wrk prints its report on SIGINT
    res["load"] = {}
    for u, p in procs.items():
        w = finish_wrk(p, timeout=30)
        w.pop("output", None)
        res["load"][u] = w
    WRK_PROCS.clear()
    res["served_after"] = {u: http_body(port) for u, port in ports.items()}
    return res


def wait_serving(ports: dict[str, int], version: str, timeout: float = 30.0) -> dict[str, str]:
    """Each host's answer, once all answer version (or after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        served = {u: http_body(port) for u, port in ports.items()}
        if all(b == version for b in served.values()) or time.monotonic() > deadline:
            return served
        time.sleep(0.2)


def host_state(lab: DeployLab, drv: Driver, user: str) -> dict:
    """What the host has: the VERSION of `current`, the tag of the last `.deploys` line, and
    the releases marked FAILED (Kelpie's)."""
    p = drv.path
    out = lab.su(user, f'echo "current=$(cat {p}/current/VERSION 2>/dev/null)"; '
                       f'echo "last=$(tail -n1 {p}/.deploys 2>/dev/null)"; '
                       f'echo "failed=$(ls -d {p}/releases/*/FAILED 2>/dev/null | wc -l)"',
                 check=False).stdout
    return parse_host_state(out, lab.sha_tag)


def parse_host_state(out: str, sha_tag) -> dict:
    """host_state()'s output (`current=`, `last=`, `failed=` lines) -> its dict."""
    kv = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    failed = kv.get("failed", "").strip()
    return {"current": kv.get("current", "").strip() or "-",
            "last_deploy": sha_tag(kv.get("last", "").strip()),
            "failed_releases": int(failed) if failed.isdigit() else None}


def failed_post_deploy(lab: DeployLab, drv: Driver, wrk: str, live: str) -> dict:
    """A deploy of the other version whose post-deploy exits 3 (env `<manager>_fail`), under
    the same load: what each host has and serves before and after."""
    other = next(v for v in DEPLOY_VERSIONS if v != live)
    users = list(lab.app_ports[drv.key])
    before = {u: host_state(lab, drv, u) for u in users}
    res = loaded_deploy(lab, drv, wrk, f"{drv.key}_fail", other)
    res["ref"], res["live_before"] = other, live
    res["before"] = before
    res["after"] = {u: host_state(lab, drv, u) for u in users}
    return res


def measure_manager(lab: DeployLab, drv: Driver, wrk: str, rounds: int) -> dict:
    """setup, the first deploy (v1), the loaded rounds (v2, v1, v2, ...) and the failing
    post-deploy, for one manager; its daemons on the hosts are stopped after."""
    out: dict = {"rounds": []}
    ports = lab.app_ports[drv.key]
    try:
        log(f"{drv.label}: deploy: setup of {len(ports)} hosts")
        out["setup"] = deploy_cmd(lab, drv, drv.key, "setup")
        if out["setup"]["rc"] != 0:
            raise RuntimeError(f"setup exited {out['setup']['rc']}: "
                               f"{out['setup'].get('output_tail')}")
        out["first"] = deploy_cmd(lab, drv, drv.key, "ref", DEPLOY_VERSIONS[0])
        out["first"]["served_after"] = wait_serving(ports, DEPLOY_VERSIONS[0])
        if out["first"]["rc"] != 0:
            raise RuntimeError(f"the first deploy exited {out['first']['rc']}: "
                               f"{out['first'].get('output_tail')}")
        live = DEPLOY_VERSIONS[0]
        for i in range(rounds):
            ref = DEPLOY_VERSIONS[1] if i % 2 == 0 else DEPLOY_VERSIONS[0]
            log(f"{drv.label}: deploy: round {i + 1}: ref {ref} under load")
            r = loaded_deploy(lab, drv, wrk, drv.key, ref)
            r["ref"] = ref
            out["rounds"].append(r)
            if r["rc"] == 0:
                live = ref
        log(f"{drv.label}: deploy: a post-deploy that exits 3")
        out["fail"] = failed_post_deploy(lab, drv, wrk, live)
    except Exception as e:  # noqa: BLE001 - recorded in the report
        log(f"{drv.label}: deploy scenario failed: {type(e).__name__}: {e}")
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        for u in ports:
            try:
                lab.su(u, f"~/bin/{drv.key} kill", timeout=60, check=False)
            except subprocess.TimeoutExpired:
                log(f"{u}: `{drv.key} kill` timed out")
    return out


def source_description() -> str:
    """The commit Kelpie was built from, and whether crates/ had changes not committed."""
    git = ["git", "-C", str(REPO)]
    try:
        sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "crates", "Cargo.lock"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return f"{sha or '?'}" + (" with changes to crates/ not committed" if dirty else "")


def drivers(tmp: Path, pm2_bin: Path | None, local: list[Manager]) -> list[Driver]:
    """PM2's (unless pm2_bin is None), then Kelpie's. Each deploy command runs with the
    manager's own temporary home (`pm2 deploy` starts a local PM2 daemon: `local` gets the
    managers to clean up)."""
    out = []
    if pm2_bin is not None:
        pm2 = Pm2(tmp / "pm2-local", pm2_bin)
        local.append(pm2)
        pm2.run("ping", timeout=60)  # its daemon up before any timed command
        out.append(Driver("pm2", "PM2", [str(pm2_bin)],
                          {**pm2.env(), "USER": PM2_DEPLOY_USER}, "~/pm2app"))
    kel = Kelpie(tmp / "kelpie-local")
    local.append(kel)
    out.append(Driver("kelpie", "Kelpie", [str(KELPIE_BIN)], kel.env(), "~/kapp"))
    return out


def deploy_main(cfg: argparse.Namespace, argv_str: str) -> int:
    """--only deploy: the lab, PM2's rounds (unless --kelpie-only) then Kelpie's, the table on
    stdout and, with --output, the deploy section of that report (the rest kept)."""
    ok, why = deploy_possible()
    if not ok:
        log(f"skipping the deploy scenario: {why}")
        return 0
    wrk = shutil.which("wrk")
    if wrk is None:
        log("skipping the deploy scenario: wrk is not installed (apt-get install wrk)")
        return 0
    if not cfg.no_build:
        build_kelpie()
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-deploy-"))
    os.chmod(tmp, 0o755)  # the users read the repository and PM2's install under it
    local: list[Manager] = []
    lab: DeployLab | None = None

    def cleanup() -> None:
        for p in WRK_PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        WRK_PROCS.clear()
        if lab is not None:
            lab.cleanup()
        for m in local:
            try:
                m.cleanup()
            except Exception as e:  # noqa: BLE001 - best effort
                log(f"{m.label}: cleanup failed: {e}")
        local.clear()
        if not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    cleanup_on_exit(cleanup)
    results: dict = {}
    versions: dict = {"wrk": wrk_version(wrk), "kelpie_source": source_description()}
    try:
        pm2_bin = None
        if not cfg.kelpie_only:
            pm2_bin = install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix else tmp / "pm2")
        lab = DeployLab(tmp, KELPIE_BIN, pm2_bin)
        lab.start()
        rounds = 1 if cfg.quick else 3
        for drv in drivers(tmp, pm2_bin, local):
            lines = subprocess.run([*drv.argv0, "--version"], env=drv.env,
                                   capture_output=True, text=True, timeout=60
                                   ).stdout.strip().splitlines()
            versions[drv.key] = lines[-1] if lines else "?"
            results[drv.key] = measure_manager(lab, drv, wrk, rounds)
            results[drv.key]["summary"] = summarize_deploy(results[drv.key])
    finally:
        cleanup()
    return deploy_output(cfg, argv_str, started, load, results, versions)
