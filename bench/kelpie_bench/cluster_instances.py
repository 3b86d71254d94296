"""Cluster scenario, the instances: whether the app answers, the instances' pids (before and
after a reload), the app's logs when something went wrong."""

from __future__ import annotations

import time

from .cluster_apps import CLUSTER_APP, CLUSTER_INSTANCES
from .common import http_result, log
from .managers import Manager


def http_ok(port: int, timeout: float = 1.0) -> bool:
    """One GET / on 127.0.0.1:port (new connection): True on a 200."""
    return http_result(port, timeout) == "ok"


def cluster_pids(m: Manager) -> dict[int, str]:
    """pid -> status of the cluster app's instances."""
    out = {}
    for a in m.jlist():
        if a.get("name") == CLUSTER_APP and isinstance(a.get("pid"), int) and a["pid"] > 0:
            out[a["pid"]] = (a.get("pm2_env") or {}).get("status", "?")
    return out


def wait_cluster_ready(m: Manager, port: int, timeout: float = 30) -> dict[int, str]:
    """Until CLUSTER_INSTANCES instances are online and the port answers 200."""
    deadline = time.monotonic() + timeout
    pids: dict[int, str] = {}
    while time.monotonic() < deadline:
        pids = cluster_pids(m)
        online = [p for p, st in pids.items() if st == "online"]
        if len(online) == CLUSTER_INSTANCES and len(pids) == CLUSTER_INSTANCES and http_ok(port):
            return pids
        time.sleep(0.2)
    raise RuntimeError(f"{m.label}: {CLUSTER_APP} not ready on port {port} within {timeout:.0f} s "
                       f"(instances: {pids})")


def cluster_pids_after_reload(m: Manager, port: int) -> dict[int, str]:
    """The instances once ready again; if they never are, what there is (the round then
    counts as not replaced)."""
    try:
        return wait_cluster_ready(m, port)
    except RuntimeError as e:
        log(str(e))
        return cluster_pids(m)


def cluster_logs_tail(m: Manager, n: int = 40) -> str:
    """The daemon's log and the app's logs, last lines of each (for a report of what failed)."""
    parts = []
    files = [m.home / "kelpie.log", m.home / "pm2.log", *m.logs_dir.glob(f"{CLUSTER_APP}*")]
    for p in sorted(files):
        try:
            lines = p.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            continue
        parts.append(f"--- {p.name} (last {len(lines)} lines)\n" + "\n".join(lines))
    return "\n".join(parts)
