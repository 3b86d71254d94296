"""Reliability scenario, kill -9 of the daemon: with apps printing (and a 4 MiB burst right
after), and with a 2-instance HTTP app under load."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from .cluster_apps import CLUSTER_APP
from .cluster_instances import wait_cluster_ready
from .common import http_result, log
from .health import read_text_or_empty
from .managers import Kelpie, Manager
from .processes import pid_alive, read_pidfile
from .reliability_apps import (
    check_burst_lines, classify_after_kill, REL_ALIVE_AFTER_S, REL_BURST_LINES, REL_CHATTY,
    REL_KILL_AT_S, REL_LOAD_S, REL_NEXT_AT_S, tick_gaps,
)
from .reliability_tools import (
    app_log, apps_by_name, parse_jlist, rel_ecosystem, rel_node_app, RequestLoad,
    summarize_load, wait_apps_online,
)


def rel_daemon_kill(m: Manager, scripts: dict[str, Path]) -> dict:
    trigger, done = m.workdir / "burst.trigger", m.workdir / "burst.done"
    apps = [rel_node_app(f"chatty{i}", scripts["chatty"]) for i in range(REL_CHATTY)]
    apps.append(rel_node_app("burst", scripts["burst"], (str(trigger), str(done))))
    names = [a["name"] for a in apps]
    m.run("start", str(rel_ecosystem(m, "kill.json", apps)), timeout=60)
    before = wait_apps_online(m, names)
    time.sleep(1.0)  # lines flowing
    dpid = m.daemon_pid()
    keeper = read_pidfile(m.home / "keeper.pid") if isinstance(m, Kelpie) else None
    if keeper:
        m.keeper_pids.add(keeper)
    log(f"{m.label}: reliability: kill -9 of the daemon {dpid} (keeper {keeper}), "
        f"apps {before}")
    os.kill(dpid, signal.SIGKILL)
    t_kill = time.perf_counter()
    trigger.touch()
    burst_done_s = None
    while time.perf_counter() - t_kill < REL_ALIVE_AFTER_S:
        if burst_done_s is None and done.exists():
            burst_done_s = time.perf_counter() - t_kill
        time.sleep(0.01)
    alive = {n for n, p in before.items() if pid_alive(p)}
    done_text = read_text_or_empty(done).split()
    failed_writes = int(done_text[0]) if done_text else None
    if done_text and failed_writes == 0:
        burst = "completed"
    elif done_text:
        burst = "write failed"
    elif "burst" in alive:
        burst = "blocked"
    else:
        burst = "died"
    keeper_alive = bool(keeper and pid_alive(keeper))
    t0 = time.perf_counter()
    p = m.run("jlist", capture=True, check=False, timeout=60)
    next_s = time.perf_counter() - t0
    after_list = parse_jlist(p.stdout)
    for a in after_list:
        if isinstance(a.get("pid"), int) and a["pid"] > 0:
            m.app_pids.add(a["pid"])
    alive_pids = {pid for pid in before.values() if pid_alive(pid)}
    cls = classify_after_kill(before, apps_by_name(after_list), alive_pids)
    new_dpid = m.daemon_pid()
    # The burst's lines in the log file (Kelpie's new daemon writes what the keeper spooled).
    deadline = time.monotonic() + 5
    while True:
        check = check_burst_lines(app_log(m, "burst"), REL_BURST_LINES)
        if check["lost"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    ticks = missing = 0
    for i in range(REL_CHATTY):
        n, gap = tick_gaps(app_log(m, f"chatty{i}"), before[f"chatty{i}"])
        ticks, missing = ticks + n, missing + gap
    res = {"apps": len(before), "alive_after": len(alive), "burst": burst,
           "burst_alive": "burst" in alive,
           "burst_done_s": burst_done_s, "burst_failed_writes": failed_writes,
           "keeper_alive_before_next": keeper_alive if keeper else None,
           "keeper_alive_after_next": (pid_alive(keeper) if keeper else None),
           "next_exit": p.returncode, "next_s": next_s, "new_daemon": new_dpid != dpid,
           **cls, "burst_log": check, "ticks_logged": ticks, "ticks_missing": missing}
    log(f"{m.label}: reliability: daemon kill: {res}")
    return res


def rel_cluster_kill(m: Manager, script: Path, port: int) -> dict:
    args, env = m.cluster_start(script, port)
    m.run(*args, env=env, timeout=60)
    before = wait_cluster_ready(m, port)
    dpid = m.daemon_pid()
    keeper = read_pidfile(m.home / "keeper.pid") if isinstance(m, Kelpie) else None
    if keeper:
        m.keeper_pids.add(keeper)
    load = RequestLoad(port)
    t0 = time.perf_counter()
    load.start()
    time.sleep(REL_KILL_AT_S)
    os.kill(dpid, signal.SIGKILL)
    t_kill = time.perf_counter()
    time.sleep(max(0.0, t0 + REL_NEXT_AT_S - time.perf_counter()))
    tn = time.perf_counter()
    p = m.run("jlist", capture=True, check=False, timeout=60)
    next_s = time.perf_counter() - tn
    time.sleep(max(0.0, t0 + REL_LOAD_S - time.perf_counter()))
    samples = load.stop()
    serving = http_result(port) == "ok"
    after = [a for a in parse_jlist(p.stdout) if a.get("name") == CLUSTER_APP]
    for a in after:
        if isinstance(a.get("pid"), int) and a["pid"] > 0:
            m.app_pids.add(a["pid"])
    m.daemon_pid()
    res = {**summarize_load(samples, t_kill), "next_exit": p.returncode, "next_s": next_s,
           "next_at_s": tn - t_kill, "serving_after": serving,
           "instances_before": sorted(before), "instances_listed_after": len(after),
           "same_pids_after": sorted(a["pid"] for a in after
                                     if a.get("pid") in before and pid_alive(a["pid"])),
           "instances_alive_after": sum(pid_alive(x) for x in before)}
    log(f"{m.label}: reliability: cluster kill: {res}")
    return res
