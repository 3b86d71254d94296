"""Processes seen from /proc (alive, RSS, CPU ticks, command line), killing only our own,
pid files, free ports, the load average, and the cleanup at exit or on a signal."""

from __future__ import annotations

import atexit
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from .common import log


def read_status_mb(pid: int, field: str) -> float | None:
    """A kB field of /proc/<pid>/status (VmRSS, RssAnon...) in MB (MiB)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def read_rss_mb(pid: int) -> float | None:
    return read_status_mb(pid, "VmRSS")


def read_anon_mb(pid: int) -> float | None:
    """The process's own memory (heap, stacks): VmRSS without the file pages it maps, which
    are the page cache of its binary, shared with every other process running it."""
    return read_status_mb(pid, "RssAnon")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill9(pid: int, must_contain: str | tuple[str, ...] | None = None) -> None:
    """SIGKILL pid if alive (and, if given, only if its command line contains must_contain, or
    one of them, so that a recycled pid is never hit)."""
    if pid <= 1 or pid == os.getpid() or not pid_alive(pid):
        return
    if isinstance(must_contain, str):
        must_contain = (must_contain,)
    if must_contain is not None and not any(x in cmdline(pid) for x in must_contain):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def kill_with_marker(marker: str) -> None:
    """SIGKILL every process whose command line contains marker (a path inside this run's
    unique temp dir, so only processes this run started can match)."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            kill9(int(d.name), marker)


def read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def thread_files(pid: int, name: str) -> Iterator[tuple[int, str]]:
    """(tid, text of /proc/<pid>/task/<tid>/<name>) for each live thread of pid; a thread that
    ends meanwhile is left out."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                yield int(tid), f.read()
        except (OSError, ValueError):
            continue


def thread_cpu_ns(pid: int) -> dict[int, int] | None:
    """Each thread's CPU time in ns (its schedstat): to the nanosecond where utime + stime count
    10-ms ticks (starting 300 apps is about 10 of them)."""
    out = {tid: int(text.split()[0]) for tid, text in thread_files(pid, "schedstat") if text}
    return out or None


def cpu_ms_between(before: dict[int, int] | None, after: dict[int, int] | None) -> float | None:
    """The CPU the process's threads used between two thread_cpu_ns() readings, in ms. A thread
    that ended in between is not counted: the daemon's are its long-lived ones and its blocking
    pool's, which live 10 s past their last use, so none that worked ends within a start."""
    if before is None or after is None:
        return None
    return sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e6


def daemon_cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads; not its children), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def free_port() -> int:
    """A TCP port free on this machine right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET) as s:
        s.bind(("::" if socket.has_ipv6 else "0.0.0.0", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cleanup_on_exit(cleanup: "Callable[[], None]") -> None:
    """Runs cleanup() at exit and on SIGINT, SIGTERM or SIGHUP (then exits 128 + the signal;
    a second signal does not interrupt the cleanup). cleanup() must be safe to run twice."""
    atexit.register(cleanup)

    def on_signal(signum, _frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        log(f"signal {signum}: cleaning up")
        cleanup()
        os._exit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
