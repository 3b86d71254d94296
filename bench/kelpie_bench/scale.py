"""Scale: what each app costs the daemon as the number of apps grows (start, jlist, descriptors,
memory, idle CPU, stop all), and what each restart costs it in a crash-looping fleet (CPU and
memory per restart, over thousands of restarts). Used by --check (a shorter form) and by the
scale section."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

from .common import FAKE_APP, log
from .managers import Kelpie, Manager
from .processes import CLK_TCK, cpu_ms_between, daemon_cpu_ticks, read_anon_mb, thread_cpu_ns

SCALE_IDLE_S = 30.0      # idle CPU window once all apps are online: as long as Kelpie's cycle
                          # of readings (each idle app's files are read every 30th second), so
                          # that it is counted once in every window and not in some only
CHECK_IDLE_S = 5.0        # --check: the same window (its idle figure is not checked)
SOAK_APPS = 30           # crash-looping apps of the soak
SOAK_LIFE_MS = 300       # each lives 300 ms + 10 ms x its index, then exits 0 and is restarted
SOAK_SLOW_LIFE_MS = 1400  # kind "sh-slow": the sh apps living this long instead, which restarts
                          # them about as often as the Node apps are here (Node's start-up)
SOAK_SKIP_RESTARTS = 1000  # the soak's figures count from this restart on (warm caches, tables)


def descriptors(pid: int | None) -> int | None:
    """Open descriptors of a process (None if it cannot be read)."""
    if pid is None:
        return None
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def settled_anon_mb(pid: int | None, most_s: float = 15.0) -> float | None:
    """RssAnon once it stopped moving (the same in two readings 1 s apart, at most most_s):
    what the daemon keeps, not the buffers of the burst just done (a start's requests, state
    writes), which both managers give back within seconds; Kelpie's on its next quiet second."""
    if pid is None:
        return None
    before = read_anon_mb(pid)
    deadline = time.monotonic() + most_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = read_anon_mb(pid)
        if now is None or now == before:
            return now
        before = now
    return before


def sleep_apps_file(m: Manager, n: int) -> Path:
    """An ecosystem file of n idle apps (`sleep`, no interpreter), for either manager."""
    apps = [{"name": f"s{i}", "script": "sleep", "args": ["100000"], "interpreter": "none",
             "autorestart": True} for i in range(n)]
    path = m.workdir / f"sleep-{n}.json"
    path.write_text(json.dumps({"apps": apps}))
    return path


def online(m: Manager, n: int, timeout: float) -> bool:
    """Whether n apps are online within timeout (one jlist every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for a in m.jlist() if (a.get("pm2_env") or {}).get("status") == "online") >= n:
            return True
        time.sleep(0.5)
    return False


def cost_of_apps(m: Manager, n: int, idle_s: float = SCALE_IDLE_S,
                 anon_base: float | None = None, give_back: bool = False) -> dict:
    """Start n idle apps into a running daemon with none, and measure: the start's wall time and
    the daemon's CPU during it (per app), jlist's wall time, the daemon's descriptors and RssAnon
    (per app), the keeper's descriptors (Kelpie), idle CPU, then `stop all` and `delete all`
    (and, with give_back, the RssAnon once they are deleted and it stopped moving).
    RssAnon per app is its growth over anon_base when given (the fresh daemon's: a daemon keeps
    the heap an earlier, smaller count freed and reuses it, so growth over its RssAnon before
    this count would leave that part out), else over its RssAnon before this count."""
    dpid = m.daemon_pid()
    file = sleep_apps_file(m, n)
    fds_before, anon_before = descriptors(dpid), settled_anon_mb(dpid)
    cpu0, threads0 = daemon_cpu_ticks(dpid) or 0, thread_cpu_ns(dpid)
    start_s = m.timed("start", str(file), timeout=600)
    all_online = online(m, n, timeout=120 + n / 10)
    cpu1, threads1 = daemon_cpu_ticks(dpid) or 0, thread_cpu_ns(dpid)
    start_cpu_ms = cpu_ms_between(threads0, threads1)
    if start_cpu_ms is None:  # no schedstat: clock ticks
        start_cpu_ms = (cpu1 - cpu0) * 1000 / CLK_TCK
    jlist_s = min(m.timed("jlist", timeout=120) for _ in range(3))
    anon = settled_anon_mb(dpid)
    fds = descriptors(dpid)
    keeper_fds = descriptors(kelpie_keeper_pid(m) if isinstance(m, Kelpie) else None)
    t_idle = time.monotonic()
    idle0 = daemon_cpu_ticks(dpid) or 0
    time.sleep(idle_s)
    idle1 = daemon_cpu_ticks(dpid) or 0
    idle_wall = time.monotonic() - t_idle
    stop_s = m.timed("stop", "all", timeout=600)
    m.run("delete", "all", timeout=600)
    # What the daemon gives back once they are gone (issue 48: within 2x a fresh daemon's).
    anon_after = settled_anon_mb(dpid) if give_back else None
    per_app = lambda a, b: None if a is None or b is None else (b - a) / n  # noqa: E731
    return {
        "apps": n,
        "online": all_online,
        "start_s": start_s,
        "start_cpu_ms_per_app": start_cpu_ms / n,
        "jlist_ms": jlist_s * 1000,
        "fds": fds,
        "fds_per_app": per_app(fds_before, fds),
        "keeper_fds": keeper_fds,
        "anon_mb": anon,
        "anon_kb_per_app": None if anon is None or (anon_base or anon_before) is None
        else (anon - (anon_base or anon_before)) * 1024 / n,
        "idle_cpu_pct": 100 * (idle1 - idle0) / CLK_TCK / idle_wall,
        "stop_all_s": stop_s,
        "anon_after_delete_mb": anon_after,
    }


SOAK_KINDS = ("quiet", "printing", "sh", "node")
SOAK_MILESTONES = (1000, 2000, 4000, 6000, 8000, 12000)  # RssAnon is read past each (issue
                                                         # 48: at most 5 % from 6 000 to 12 000)
SOAK_SH = "echo out; echo err >&2; sleep {life}; exit 1"
SOAK_NODE = ("console.log('out'); console.error('err');\n"
             "setTimeout(() => process.exit(1), Number(process.argv[2]));\n")


def soak_apps(m: Manager, kind: str) -> list[dict]:
    """The soak's SOAK_APPS apps of `kind`, each living SOAK_LIFE_MS + 10 ms x its index:
    quiet: fake-app exiting 0; printing: fake-app printing a line to stdout and one to stderr
    and exiting 1; sh: `sh -c` doing the same (two processes: the shell and its `sleep`);
    sh-slow: the same living SOAK_SLOW_LIFE_MS + 10 ms x its index; node: a Node script
    doing the same."""
    common = {"min_uptime": 100, "restart_delay": 0, "max_restarts": 10_000_000}
    if kind == "node":
        script = m.workdir / "soak-crash.js"
        script.write_text(SOAK_NODE)
        return [{"name": f"crash{i}", "script": str(script), "args": [str(SOAK_LIFE_MS + 10 * i)],
                 **common} for i in range(SOAK_APPS)]
    if kind in ("sh", "sh-slow"):
        life = SOAK_SLOW_LIFE_MS if kind == "sh-slow" else SOAK_LIFE_MS
        return [{"name": f"crash{i}", "script": "/bin/sh", "interpreter": "none",
                 "args": ["-c", SOAK_SH.format(life=(life + 10 * i) / 1000)], **common}
                for i in range(SOAK_APPS)]
    if kind == "printing":
        life = ["--quiet", "--print", "1", "--print-err", "1"]
        code = "1"
    else:
        life = ["--quiet"]
        code = "0"
    return [{"name": f"crash{i}", "script": str(FAKE_APP), "interpreter": "none",
             "args": [*life, "--exit-after", str(SOAK_LIFE_MS + 10 * i), "--exit-code", code],
             **common}
            for i in range(SOAK_APPS)]


def soak(m: Manager, seconds: float, skip: int = SOAK_SKIP_RESTARTS,
         printing: bool = False, kind: str | None = None, until: int | None = None) -> dict:
    """SOAK_APPS apps that exit every ~0.3-0.6 s and are restarted, for `seconds`, or until
    `until` restarts when given (then `seconds` is the most it runs; see soak_apps for each
    kind; `printing` is kind "printing"): the daemon's CPU and RssAnon per restart from the
    `skip`-th restart on, its RssAnon at that point and at the end (flat means nothing is left
    behind per restart), past each of SOAK_MILESTONES' restarts, and the most it was at any
    look (every 2 s)."""
    kind = kind or ("printing" if printing else "quiet")
    file = m.workdir / f"soak-{kind}.json"
    file.write_text(json.dumps({"apps": soak_apps(m, kind)}))
    dpid = m.daemon_pid()
    m.run("start", str(file))
    began = time.monotonic()

    def restarts() -> int:
        return sum((a.get("pm2_env") or {}).get("restart_time", 0) for a in m.jlist())

    warm = None  # (restarts, cpu ticks, anon MB) at the first look past `skip`
    anon_at: dict[int, float | None] = {}  # milestone: RssAnon at the first look past it
    anon_max: float | None = None
    r = 0
    while time.monotonic() - began < seconds and (until is None or r < until):
        time.sleep(2.0)
        r = restarts()
        anon = read_anon_mb(dpid)
        if anon is not None and (anon_max is None or anon > anon_max):
            anon_max = anon
        if warm is None and r >= skip:
            warm = (r, daemon_cpu_ticks(dpid) or 0, anon)
        for milestone in SOAK_MILESTONES:
            if r >= milestone and milestone not in anon_at:
                anon_at[milestone] = anon
    end = (restarts(), daemon_cpu_ticks(dpid) or 0, read_anon_mb(dpid))
    m.run("delete", "all", timeout=120)
    if warm is None or end[0] <= warm[0]:
        log(f"{m.label}: soak ({kind}): too few restarts to measure ({end[0]})")
        return {"kind": kind, "restarts": end[0]}
    counted = end[0] - warm[0]
    return {
        "kind": kind,
        "restarts": end[0],
        "counted": counted,
        "cpu_ms_per_restart": (end[1] - warm[1]) * 1000 / CLK_TCK / counted,
        "anon_mb_at_warm": warm[2],
        "anon_mb_at_end": end[2],
        "anon_kb_per_restart": None if warm[2] is None or end[2] is None
        else (end[2] - warm[2]) * 1024 / counted,
        "anon_mb_at": anon_at,
        "anon_mb_max": anon_max,
        "seconds": time.monotonic() - began,
    }


def kelpie_keeper_pid(m: Kelpie) -> int | None:
    """Kelpie's keeper process (it holds the apps' pipes while no daemon runs)."""
    try:
        return int((m.home / "keeper.pid").read_text().strip())
    except (OSError, ValueError):
        return None


CHECK_SCALE_SMALL = 300   # --check: the daemon's CPU per app starting this many apps...
CHECK_SCALE_LARGE = 3000  # ... and this many: their ratio is the linearity figure (issue 34's
                          # goal: within 1.3x); a machine whose open-files limit cannot hold
                          # them measures CHECK_SCALE_FALLBACK instead
CHECK_SCALE_FALLBACK = 1000
CHECK_SCALE_NEEDS_FDS = 20_000  # hard open-files limit for CHECK_SCALE_LARGE apps (4 each, the
                                # daemon's bounded caches and its clients' share)
CHECK_SOAK_S = 25.0       # --check: the soak's length
CHECK_SOAK_SKIP = 300     # --check: its figures count from this restart on


def check_scale(m: Manager, figures: dict, raw: dict) -> None:
    """--check's scale figures, with the check's daemon (no app running): the linearity of a
    start's cost (CPU per app at CHECK_SCALE_LARGE over CHECK_SCALE_SMALL apps), the daemon's
    descriptors per app, what it holds once they are deleted, and a short soak's CPU and
    memory per restart."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    n_large = (CHECK_SCALE_LARGE if hard == resource.RLIM_INFINITY or hard >= CHECK_SCALE_NEEDS_FDS
               else CHECK_SCALE_FALLBACK)
    log(f"check: scale: {CHECK_SCALE_SMALL} then {n_large} idle apps")
    small = cost_of_apps(m, CHECK_SCALE_SMALL, CHECK_IDLE_S)
    large = cost_of_apps(m, n_large, CHECK_IDLE_S, give_back=True)
    raw["scale"] = [small, large]
    if not (small["online"] and large["online"]):
        raise RuntimeError("scale: not every app came online")
    figures["scale_cpu_ratio"] = (large["start_cpu_ms_per_app"]
                                  / max(small["start_cpu_ms_per_app"], 1e-9))
    figures["scale_fds_per_app"] = large["fds_per_app"]
    figures["scale_anon_after_delete_mb"] = large["anon_after_delete_mb"]
    log(f"check: soak: {SOAK_APPS} apps exiting every ~0.3-0.6 s, {CHECK_SOAK_S:g} s")
    s = soak(m, CHECK_SOAK_S, CHECK_SOAK_SKIP)
    raw["soak"] = s
    if "counted" not in s:
        raise RuntimeError(f"soak: too few restarts ({s['restarts']})")
    figures["soak_cpu_ms_per_restart"] = s["cpu_ms_per_restart"]
    figures["soak_anon_kb_per_restart"] = s["anon_kb_per_restart"]
    log(f"check: soak: the same apps printing a line to stdout and stderr and exiting 1, "
        f"{CHECK_SOAK_S:g} s")
    p = soak(m, CHECK_SOAK_S, CHECK_SOAK_SKIP, printing=True)
    raw["soak_printing"] = p
    if "counted" not in p:
        raise RuntimeError(f"soak (printing apps): too few restarts ({p['restarts']})")
    figures["soak_print_cpu_ms_per_restart"] = p["cpu_ms_per_restart"]
    figures["soak_print_anon_kb_per_restart"] = p["anon_kb_per_restart"]
