"""Reliability scenario, helpers of its parts: the request load on an HTTP app (and its
summary), the first line of a message, the apps' ecosystem files, jlist by name, waits and
logs."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

from .common import http_result
from .logfiles import read_log_files
from .managers import Manager
from .reliability_apps import ANSI_RX, REL_LOAD_THREADS


def summarize_load(samples: list[tuple[float, str]], t_kill: float) -> dict:
    """Requests of the cluster part: samples = (time, "ok" or the kind of failure), times on
    the same clock as t_kill. Counts by kind, and the first and last failure after the kill."""
    kinds: dict[str, int] = {}
    for _t, r in samples:
        if r != "ok":
            kinds[r] = kinds.get(r, 0) + 1
    fails_after = [t - t_kill for t, r in samples if r != "ok" and t >= t_kill]
    return {"requests": len(samples), "ok": sum(r == "ok" for _t, r in samples),
            "failed": sum(kinds.values()), "by_kind": kinds,
            "failed_before_kill": sum(r != "ok" and t < t_kill for t, r in samples),
            "first_fail_after_kill_s": min(fails_after, default=None),
            "last_fail_after_kill_s": max(fails_after, default=None)}


def first_message(text: str) -> str:
    """The line of a command's output that says what happened: the first one speaking of an
    error, a failure, corruption or a backup, else the first non-empty line."""
    lines = [ANSI_RX.sub("", x).strip() for x in text.splitlines()]
    lines = [x for x in lines if x]
    for x in lines:
        if re.search(r"error|fail|corrupt|invalid|backup|\.bak|cannot|unexpected", x, re.I):
            return x[:200]
    return lines[0][:200] if lines else ""


class RequestLoad:
    """REL_LOAD_THREADS loops of GET / (a new connection each) until stopped; a failed request
    is followed by a 10 ms pause (a refused port would otherwise spin)."""

    def __init__(self, port: int):
        self.port = port
        self.stop_ev = threading.Event()
        self.samples: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True)
                        for _ in range(REL_LOAD_THREADS)]

    def _loop(self) -> None:
        mine = []
        while not self.stop_ev.is_set():
            r = http_result(self.port)
            mine.append((time.perf_counter(), r))
            if r != "ok":
                time.sleep(0.01)
        with self.lock:
            self.samples.extend(mine)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> list[tuple[float, str]]:
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=10)
        return sorted(self.samples)


def rel_node_app(name: str, script: Path, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> dict:
    a: dict = {"name": name, "script": str(script), "interpreter": "node", "args": list(args),
               "autorestart": True}
    if env:
        a["env"] = env
    return a


def rel_ecosystem(m: Manager, file_name: str, apps: list[dict]) -> Path:
    p = m.workdir / file_name
    p.write_text(json.dumps({"apps": apps}, indent=1))
    return p


def parse_jlist(out: bytes) -> list[dict]:
    text = out.decode(errors="replace")
    i = text.find("[")
    try:
        return json.loads(text[i:]) if i >= 0 else []
    except json.JSONDecodeError:
        return []


def apps_by_name(data: list[dict]) -> dict[str, tuple[int | None, str]]:
    out = {}
    for a in data:
        pid = a.get("pid")
        out[a.get("name")] = (pid if isinstance(pid, int) and pid > 0 else None,
                              (a.get("pm2_env") or {}).get("status", "?"))
    return out


def wait_apps_online(m: Manager, names: list[str], timeout: float = 30) -> dict[str, int]:
    """name -> pid once every app of names is online with a pid."""
    deadline = time.monotonic() + timeout
    apps: dict = {}
    while time.monotonic() < deadline:
        apps = apps_by_name(m.jlist())
        if all(n in apps and apps[n][0] and apps[n][1] == "online" for n in names):
            return {n: apps[n][0] for n in names}
        time.sleep(0.2)
    raise RuntimeError(f"{m.label}: apps not online within {timeout:.0f} s: {apps}")


def app_log(m: Manager, name: str) -> bytes:
    files, _bad = read_log_files(m.logs_dir, name)
    return b"".join(data for _f, data in files)
