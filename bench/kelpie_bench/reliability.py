"""Reliability scenario (see reliability_apps): the parts but the daemon kills
(reliability_kill), each one a function of a manager with a fresh daemon and home, returning
what it saw; and bench_reliability, which runs them all."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .common import FAKE_APP, log
from .managers import Kelpie, Manager, Pm2
from .processes import free_port, pid_alive
from .reliability_apps import REL_GARBAGE, REL_OTHER_UID, REL_SECRET, REL_STEP_CAP_S
from .reliability_kill import rel_cluster_kill, rel_daemon_kill
from .reliability_tools import (
    apps_by_name, first_message, parse_jlist, rel_ecosystem, rel_node_app, wait_apps_online,
)
from .stats import median


def proc_uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def kill_uid_with_env(uid: int, needle: str) -> None:
    """SIGKILL the processes of uid whose environment contains needle (our temp home: only
    processes this run started as that uid)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or proc_uid(int(d.name)) != uid:
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if needle.encode() in env:
            try:
                os.kill(int(d.name), signal.SIGKILL)
            except OSError:
                pass


def connect_as(uid: int, path: Path) -> str:
    """connect() to the unix socket at path from a forked child running as uid (gid = uid, no
    supplementary groups): "connected" or the error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no exec, so no program of ours needs to be readable by uid
        msg = "?"
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                try:
                    s.connect(str(path))
                    msg = "connected"
                except OSError as e:
                    msg = f"{type(e).__name__}: {e.strerror or e}"
        except BaseException as e:  # noqa: BLE001 - reported
            msg = f"setup failed: {e}"
        finally:
            try:
                os.write(w, msg.encode()[:500])
            finally:
                os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return out


def mode_str(path: Path) -> str:
    try:
        return stat.filemode(path.lstat().st_mode)
    except OSError:
        return "missing"


def rel_socket(m: Manager, scripts: dict[str, Path], tmp: Path) -> dict:
    """Modes of the home the manager created itself and of its control socket(s); what another
    uid gets from them (parents made traversable: 0711 for the temp dir)."""
    shutil.rmtree(m.home, ignore_errors=True)  # let the manager create it, with its own mode
    m.run("start", str(rel_ecosystem(m, "probe.json",
                                     [rel_node_app("probe", scripts["chatty"])])), timeout=60)
    wait_apps_online(m, ["probe"])
    m.daemon_pid()
    socks = ["rpc.sock", "pub.sock"] if isinstance(m, Pm2) else ["kelpie.sock"]
    res: dict = {"home_mode": mode_str(m.home),
                 "sockets": {s: mode_str(m.home / s) for s in socks}}
    if os.geteuid() != 0:
        res["other_uid"] = "not measured (needs root to run as another uid)"
        return res
    old = stat.S_IMODE(tmp.stat().st_mode)
    os.chmod(tmp, 0o711)
    try:
        ids = dict(user=REL_OTHER_UID, group=REL_OTHER_UID, extra_groups=[])
        res["other_connect"] = connect_as(REL_OTHER_UID, m.home / socks[0])
        env = {**m.env(), "HOME": "/nonexistent"}
        try:
            p = subprocess.run(m.argv("jlist"), env=env, cwd="/", stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30, **ids)
            out = p.stdout.decode(errors="replace").replace(str(m.home), "<home>")
            err = p.stderr.decode(errors="replace").replace(str(m.home), "<home>")
            listed = [a.get("name") for a in parse_jlist(p.stdout)]
            res["other_cli"] = {"exit": p.returncode, "listed_apps": listed,
                                "message": first_message(err) or first_message(out)}
        except subprocess.TimeoutExpired:
            res["other_cli"] = {"exit": None, "listed_apps": [], "message": "timed out (30 s)"}
    finally:
        os.chmod(tmp, old)
        kill_uid_with_env(REL_OTHER_UID, str(m.home))  # a daemon it may have started
    log(f"{m.label}: reliability: socket: {res}")
    return res


def rel_secrets_dump(m: Manager, scripts: dict[str, Path]) -> dict:
    apps = [rel_node_app("sec", scripts["chatty"], env={"API_TOKEN": REL_SECRET}),
            rel_node_app("keep1", scripts["chatty"]), rel_node_app("keep2", scripts["chatty"])]
    names = [a["name"] for a in apps]
    m.run("start", str(rel_ecosystem(m, "secrets.json", apps)), timeout=60)
    pids = wait_apps_online(m, names)
    secret = REL_SECRET.encode()
    try:
        in_env = f"API_TOKEN={REL_SECRET}".encode() in \
            Path(f"/proc/{pids['sec']}/environ").read_bytes().split(b"\0")
    except OSError:
        in_env = None
    jl = m.run("jlist", capture=True, timeout=60)
    ds = m.run("describe", "sec", capture=True, check=False, timeout=60)
    sec_id = next((a.get("pm_id") for a in parse_jlist(jl.stdout) if a.get("name") == "sec"), 0)
    ev = m.run("env", str(sec_id), capture=True, check=False, timeout=60)  # PM2's env command
    res: dict = {"app_has_it": in_env, "jlist_shows": secret in jl.stdout,
                 "describe_shows": secret in ds.stdout + ds.stderr,
                 "env_exit": ev.returncode, "env_shows": secret in ev.stdout + ev.stderr}
    if isinstance(m, Kelpie):
        sj = m.run("jlist", "--show-secrets", capture=True, check=False, timeout=60)
        res["jlist_show_secrets_shows"] = secret in sj.stdout
    m.run("save", timeout=60)
    time.sleep(0.2)
    m.run("save", timeout=60)  # the second save keeps the first as the backup
    dump = m.home / ("dump.pm2" if isinstance(m, Pm2) else "dump.json")
    bak = dump.with_name(dump.name + ".bak")
    res.update(dump=dump.name, dump_mode=mode_str(dump), bak_mode=mode_str(bak),
               dump_has_secret=secret in (dump.read_bytes() if dump.exists() else b""))
    # Corrupt dump: no app running, garbage in the dump, its backup left as the saves made it.
    m.run("delete", "all", timeout=60)
    dump.write_bytes(REL_GARBAGE)
    t0 = time.perf_counter()
    p = m.run("resurrect", capture=True, check=False, timeout=60)
    res["resurrect_s"] = time.perf_counter() - t0
    out = p.stdout.decode(errors="replace") + "\n" + p.stderr.decode(errors="replace")
    out = out.replace(str(m.home), "<home>")
    res.update(resurrect_exit=p.returncode, resurrect_message=first_message(out),
               resurrect_output=out[-1500:])
    deadline = time.monotonic() + 10
    while True:
        after = apps_by_name(m.jlist())
        online = [n for n in names if n in after and after[n][1] == "online"]
        if len(online) == len(names) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    res.update(apps=len(names), back_listed=sum(n in after for n in names),
               back_online=len(online),
               dump_after=("garbage kept" if dump.exists() and dump.read_bytes() == REL_GARBAGE
                           else "replaced" if dump.exists() else "gone"),
               dump_aside=sorted(x.name for x in m.home.glob(dump.name + "*")))
    log(f"{m.label}: reliability: secrets/dump: "
        f"{ {k: v for k, v in res.items() if k != 'resurrect_output'} }")
    return res


def rel_stubborn(m: Manager, scripts: dict[str, Path], rounds: int) -> dict:
    eco = rel_ecosystem(m, "stubborn.json", [rel_node_app("stubborn", scripts["stubborn"])])
    rows = []
    for _ in range(rounds):
        m.run("start", str(eco), timeout=60)
        pid = wait_apps_online(m, ["stubborn"])["stubborn"]
        time.sleep(0.5)  # its handlers are set up
        t0 = time.perf_counter()
        p = m.run("stop", "stubborn", check=False, timeout=60)
        stop_s = time.perf_counter() - t0
        gone = not pid_alive(pid)
        gone_s = None
        while gone_s is None and time.perf_counter() - t0 < 10:
            if not pid_alive(pid):
                gone_s = time.perf_counter() - t0
            else:
                time.sleep(0.01)
        st = apps_by_name(m.jlist()).get("stubborn", (None, "?"))[1]
        rows.append({"stop_s": stop_s, "exit": p.returncode, "gone_after_stop": gone,
                     "gone_s": gone_s, "status": st})
        m.run("delete", "stubborn", check=False, timeout=60)
        time.sleep(0.3)
    res = {"stop_s": median([r["stop_s"] for r in rows]),
           "gone": sum(r["gone_after_stop"] for r in rows), "rounds": len(rows), "raw": rows}
    log(f"{m.label}: reliability: stubborn app: {res}")
    return res


def rel_many(m: Manager, n: int, rounds: int) -> dict:
    apps = [{"name": f"app{i}", "script": str(FAKE_APP), "interpreter": "none", "args": [],
             "autorestart": True} for i in range(n)]
    eco = rel_ecosystem(m, "many.json", apps)
    m.run("ping", timeout=60)
    m.daemon_pid()
    rows = []
    for r in range(rounds):
        row: dict = {}

        def step(key: str, *args: str) -> bool:
            t0 = time.perf_counter()
            try:
                p = m.run(*args, timeout=REL_STEP_CAP_S, check=False)
            except subprocess.TimeoutExpired:
                row[key], row[f"{key}_timeout"] = None, True
                log(f"{m.label}: `{' '.join(args)}` over {REL_STEP_CAP_S:.0f} s")
                return False
            row[key] = time.perf_counter() - t0
            row[f"{key}_exit"] = p.returncode
            return p.returncode == 0

        step("start_s", "start", str(eco))
        m.wait_status("online", n, timeout=120)
        lists, jlists = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            m.run("list", timeout=60)
            lists.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            m.jlist()  # also records the pids for the cleanup
            jlists.append(time.perf_counter() - t0)
        row["list_s"], row["jlist_s"] = median(lists), median(jlists)
        step("restart_s", "restart", "all")
        row["online_after_restart"] = m.wait_status("online", n, timeout=120)
        m.jlist()
        step("delete_s", "delete", "all")
        row["left_after_delete"] = len(m.jlist())
        rows.append(row)
        log(f"{m.label}: reliability: {n} apps, round {r + 1}/{rounds}: {row}")

    def med(k: str) -> float | None:
        return median([x[k] for x in rows if x.get(k) is not None])
    return {"apps": n, "rounds": len(rows), **{k: med(k) for k in
            ("start_s", "list_s", "jlist_s", "restart_s", "delete_s")},
            "timeouts": sum(k.endswith("_timeout") for x in rows for k in x), "raw": rows}


REL_PARTS = ("kill", "cluster", "socket", "secrets", "stubborn", "many")


def bench_reliability(make: "Callable[[str], Manager]", run_part, scripts: dict[str, Path],
                      cluster_script: Path, cfg: argparse.Namespace) -> dict:
    """Every part for one manager, each with a fresh daemon and home (run_part(manager,
    function) runs it, records an error instead of raising, and cleans up)."""
    parts = {
        "kill": lambda m: rel_daemon_kill(m, scripts),
        "cluster": lambda m: rel_cluster_kill(m, cluster_script, free_port()),
        "socket": lambda m: rel_socket(m, scripts, cfg.tmp),
        "secrets": lambda m: rel_secrets_dump(m, scripts),
        "stubborn": lambda m: rel_stubborn(m, scripts, cfg.rounds),
        "many": lambda m: rel_many(m, cfg.apps, cfg.rounds),
    }
    return {k: run_part(make(k), f) for k, f in parts.items()}
