"""The process managers under test: how to run each one's CLI with its own temporary home,
where its daemon's pid is, how to stop everything it started; and how to get the binaries
(Kelpie's release build, PM2 from npm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .cluster_apps import CLUSTER_APP, CLUSTER_INSTANCES
from .common import FAKE_APP, KELPIE_BIN, log, REPO
from .processes import cleanup_on_exit, kill9, read_pidfile


class Manager:
    """One process manager under test: how to run its CLI, where its daemon pid lives."""

    label = "?"
    pidfile_name = "?"
    daemon_marker = "?"  # substring of the daemon's command line (for safe kill -9)
    memory_check_period_s = 0.0  # how often it checks max_memory_restart
    sampling = "?"  # what it does periodically with idle apps (the health table says it)

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.workdir = root / "work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.daemon_pids: set[int] = set()
        self.app_pids: set[int] = set()
        self.keeper_pids: set[int] = set()  # Kelpie's keeper processes seen
        # Substrings of our apps' command lines (kill -9 of a recorded app pid needs one).
        self.app_markers: tuple[str, ...] = ("fake-app",)

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    # --- to override
    def argv(self, *args: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    # --- common
    def run(self, *args: str, timeout: float = 120, check: bool = True,
            capture: bool = False, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        p = subprocess.run(
            self.argv(*args), env={**self.env(), **(env or {})}, cwd=self.workdir,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if check and p.returncode != 0:
            raise RuntimeError(
                f"{self.label}: `{' '.join(args)}` exited {p.returncode}: "
                f"{p.stderr.decode(errors='replace')[-2000:]}")
        return p

    def timed(self, *args: str, timeout: float = 300) -> float:
        """Wall time (s) of one whole CLI command, stdout to /dev/null."""
        t0 = time.perf_counter()
        self.run(*args, timeout=timeout)
        return time.perf_counter() - t0

    def start_daemon(self, what: str) -> int | None:
        """Start the daemon (`ping`) for the scenario `what` (in the log) and return its pid."""
        log(f"{self.label}: {what}: starting daemon")
        self.run("ping", timeout=60)
        pid = self.daemon_pid()
        log(f"{self.label}: {what}: daemon pid {pid}")
        return pid

    def daemon_pid(self) -> int | None:
        pid = read_pidfile(self.home / self.pidfile_name)
        if pid is not None:
            self.daemon_pids.add(pid)
        return pid

    def jlist(self) -> list[dict]:
        out = self.run("jlist", capture=True).stdout.decode(errors="replace")
        # PM2 may print a banner before the JSON; take from the first '['.
        i = out.find("[")
        data = json.loads(out[i:]) if i >= 0 else []
        for app in data:
            pid = app.get("pid")
            if isinstance(pid, int) and pid > 0:
                self.app_pids.add(pid)
        return data

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for app in self.jlist():
            st = (app.get("pm2_env") or {}).get("status", "?")
            counts[st] = counts.get(st, 0) + 1
        return counts

    def wait_status(self, status: str, n: int, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.status_counts()
            if c.get(status, 0) == n:
                return True
            time.sleep(0.25)
        log(f"{self.label}: timed out waiting for {n} apps {status}: {self.status_counts()}")
        return False

    def kill_command(self) -> list[str]:
        return ["kill"]

    def cluster_start(self, script: Path, port: int) -> tuple[list[str], dict[str, str]]:
        """The CLI arguments (and extra environment) that start the cluster scenario's app with
        CLUSTER_INSTANCES instances sharing `port`."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Stop the daemon and everything it started, whatever state things are in."""
        self.daemon_pid()
        try:
            self.run(*self.kill_command(), timeout=60, check=False)
        except Exception as e:  # noqa: BLE001 - best effort
            log(f"{self.label}: kill command failed: {e}")
        self.daemon_pid()
        for pid in self.daemon_pids:
            kill9(pid, self.daemon_marker)
        for pid in self.app_pids:
            kill9(pid, self.app_markers)


class Pm2(Manager):
    label = "PM2"
    pidfile_name = "pm2.pid"
    daemon_marker = "PM2"  # the God daemon's title is "PM2 v7.x.y: God Daemon (...)"
    memory_check_period_s = 30.0  # its worker's interval (PM2_WORKER_INTERVAL, 30000 ms)
    sampling = ("its worker every 30 s: pidusage of each app's main pid (and max_memory_restart "
                "checked on it), host metrics; nothing else unless asked (list, monit)")

    def __init__(self, root: Path, pm2_bin: Path):
        super().__init__(root)
        self.bin = pm2_bin
        self.user_home = root / "userhome"
        self.user_home.mkdir(parents=True, exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return [str(self.bin), *args]

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if k not in ("KELPIE_HOME",)}
        e.update(PM2_HOME=str(self.home), HOME=str(self.user_home),
                 PM2_DISABLE_VERSION_CHECK="1")
        return e

    def cluster_start(self, script: Path, port: int) -> tuple[list[str], dict[str, str]]:
        # A Node.js app with instances runs in PM2's cluster mode; the app gets the CLI's env.
        return (["start", str(script), "--name", CLUSTER_APP, "-i", str(CLUSTER_INSTANCES)],
                {"PORT": str(port)})

    def cleanup(self) -> None:
        super().cleanup()
        # kill -9 fallback for the daemon when the title check did not match (node renames
        # its process title, but the cmdline may still show the node binary).
        for pid in self.daemon_pids:
            kill9(pid, "node")


class Kelpie(Manager):
    label = "Kelpie"
    pidfile_name = "kelpie.pid"
    daemon_marker = "kelpie"
    memory_check_period_s = 1.0  # the monitor thread's sampling period
    sampling = ("every second (thread `kelpie-monitor`): each app's whole process tree summed "
                "(its processes' /proc/<pid>/stat kept open; the trees found again every 5 s), "
                "limits checked; every 10 s (each second while someone looks) the host's figures "
                "(5 small /proc files and a statvfs)")

    def argv(self, *args: str) -> list[str]:
        return [str(KELPIE_BIN), *args]

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if k not in ("PM2_HOME",)}
        e.update(KELPIE_HOME=str(self.home), PM2_DISABLE_VERSION_CHECK="1")
        return e

    def cluster_start(self, script: Path, port: int) -> tuple[list[str], dict[str, str]]:
        # --port: the daemon owns the socket and sets PORT for the app itself.
        return (["start", str(script), "--name", CLUSTER_APP, "-i", str(CLUSTER_INSTANCES),
                 "--port", str(port)], {})

    def cleanup(self) -> None:
        keeper = read_pidfile(self.home / "keeper.pid")
        if keeper is not None:
            self.keeper_pids.add(keeper)
        super().cleanup()
        keeper = read_pidfile(self.home / "keeper.pid")
        if keeper is not None:
            self.keeper_pids.add(keeper)
        for pid in self.keeper_pids:  # a keeper left behind by a daemon killed with -9
            kill9(pid, self.daemon_marker)


class KelpieUnprivileged(Kelpie):
    """Kelpie run by an unprivileged user (`nobody`, through setpriv): a daemon that cannot
    create cgroups, so the restart path without them is measured on the same machine."""

    label = "Kelpie (non-root)"
    UID = 65534

    def __init__(self, root: Path):
        super().__init__(root)
        self.user_home = root / "userhome"
        self.user_home.mkdir(parents=True, exist_ok=True)
        for path in (root, self.home, self.workdir, self.user_home):
            os.chown(path, self.UID, self.UID)
        # The run's temp dir is root's and 0700: let the user through it to its own.
        os.chmod(root.parent, os.stat(root.parent).st_mode | 0o111)

    def argv(self, *args: str) -> list[str]:
        return ["setpriv", f"--reuid={self.UID}", f"--regid={self.UID}", "--clear-groups",
                "--", str(KELPIE_BIN), *args]

    def env(self) -> dict[str, str]:
        e = super().env()
        e["HOME"] = str(self.user_home)
        return e


def unprivileged_possible() -> tuple[bool, str]:
    """Whether the non-root variant can run: root (to switch) and setpriv."""
    if os.geteuid() != 0:
        return False, "not root: the main run is already without cgroups"
    if shutil.which("setpriv") is None:
        return False, "setpriv (util-linux) not found"
    return True, ""


def build_kelpie() -> None:
    log("building Kelpie (release)")
    subprocess.run(["cargo", "build", "--release", "-p", "kelpie-cli", "-p", "kelpie-testkit"],
                   cwd=REPO, check=True, stdout=sys.stderr)
    for b in (KELPIE_BIN, FAKE_APP):
        if not b.exists():
            sys.exit(f"missing binary after build: {b}")


def install_pm2(prefix: Path) -> Path:
    pm2_bin = prefix / "node_modules" / ".bin" / "pm2"
    if pm2_bin.exists():
        log(f"reusing PM2 in {prefix}")
        return pm2_bin
    log(f"installing pm2@7 into {prefix}")
    subprocess.run(["npm", "install", "--prefix", str(prefix), "pm2@7", "--no-audit",
                    "--no-fund"], check=True, stdout=sys.stderr,
                   env={**os.environ, "PM2_DISABLE_VERSION_CHECK": "1"})
    if not pm2_bin.exists():
        sys.exit(f"pm2 binary not found at {pm2_bin}")
    return pm2_bin


def clean_up_on_exit(managers: list[Manager]) -> Callable[[], None]:
    """At exit (or on a stop signal), clean up every manager in `managers` (the list may grow
    after this call), each on its own: one failing does not spare the others. Returns that
    cleanup, for the caller's own `finally` (it is safe to run twice)."""

    def cleanup() -> None:
        for m in managers:
            try:
                m.cleanup()
            except Exception as e:  # noqa: BLE001 - best effort
                log(f"{m.label}: cleanup failed: {e}")

    cleanup_on_exit(cleanup)
    return cleanup
