"""Logs scenario: one Node.js app prints LOG_LINES lines of 90 bytes + "\n" as fast as it can.
Two variants of the app: the main one does one console.log() per line (what Node.js apps
actually do: one write() system call per line); the other builds 1000 lines per write().
Measured: the time until all lines are in the log files, the daemon's CPU until it is idle,
the lines lost."""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from .common import log
from .logfiles import check_log_lines, LineCounter, LOG_APP
from .managers import Manager
from .processes import CLK_TCK, daemon_cpu_ticks
from .stats import median


def remove_app_logs(m: Manager, name: str) -> None:
    for p in m.logs_dir.glob(f"{name}-*"):
        try:
            p.unlink()
        except OSError:
            pass


def app_alone(script: Path, workdir: Path, cfg: argparse.Namespace) -> dict:
    """Reference: the log app with no manager, stdout redirected to a file (about the floor for
    any manager's time to disk: a manager cannot get the lines to disk faster than the app
    prints them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "alone-out.log"
    times = []
    for _ in range(cfg.rounds):
        out.unlink(missing_ok=True)
        with open(out, "wb") as f:
            t0 = time.perf_counter()
            subprocess.run(["node", str(script)], stdout=f, stdin=subprocess.DEVNULL,
                           check=True, timeout=120)
            times.append(time.perf_counter() - t0)
        with open(out, "rb") as f:
            n = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))
        if n != cfg.log_lines:
            raise RuntimeError(f"log app alone printed {n} lines, not {cfg.log_lines}")
    out.unlink(missing_ok=True)
    log(f"log app {script.name} alone (node > file): {median(times):.3f} s")
    return {"time_s": median(times), "raw": times}


IDLE_WINDOW_S = 1.0   # the daemon is idle once it used at most IDLE_TICKS in this long
IDLE_TICKS = 1        # clock ticks (1 tick = 1 / SC_CLK_TCK s, 10 ms on Linux)
IDLE_CAP_S = 15.0     # give up waiting for idle after this long (the round says so)


def wait_daemon_idle(pid: int) -> tuple[int | None, float, bool]:
    """Samples the daemon's CPU ticks every 0.1 s until it has used at most IDLE_TICKS over the
    last IDLE_WINDOW_S (work that finishes after the last line landed, e.g. gzip of rotated
    files or handling the app's exit, is then counted). Returns (ticks at the end, seconds
    waited, idle reached)."""
    t0 = time.perf_counter()
    samples = [(t0, daemon_cpu_ticks(pid))]
    while True:
        time.sleep(0.1)
        now, ticks = time.perf_counter(), daemon_cpu_ticks(pid)
        samples.append((now, ticks))
        if ticks is None:
            return None, now - t0, False
        if now - t0 >= IDLE_WINDOW_S:
            # The newest sample at least IDLE_WINDOW_S old.
            old = [tk for (t, tk) in samples if now - t >= IDLE_WINDOW_S - 1e-3][-1]
            if old is not None and ticks - old <= IDLE_TICKS:
                return ticks, now - t0, True
        if now - t0 >= IDLE_CAP_S:
            return ticks, now - t0, False


def bench_logs(m: Manager, script: Path, cfg: argparse.Namespace) -> dict:
    n_lines = cfg.log_lines
    m.app_markers = (*m.app_markers, str(script))
    dpid = m.start_daemon(f"logs ({script.name})")
    time.sleep(cfg.settle)
    rounds: list[dict] = []
    for r in range(cfg.rounds):
        m.run("delete", LOG_APP, check=False)
        remove_app_logs(m, LOG_APP)
        time.sleep(0.5)
        counter = LineCounter(m.logs_dir, LOG_APP)
        cpu0 = daemon_cpu_ticks(dpid)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            m.argv("start", str(script), "--name", LOG_APP, "--interpreter", "node",
                   "--no-autorestart"),
            env=m.env(), cwd=m.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = t0 + cfg.log_timeout
        last_n, last_change, done = -1, t0, False
        while True:
            n = counter.count()
            now = time.perf_counter()
            if n != last_n:
                last_n, last_change = n, now
            if n >= n_lines:
                done = True
                break
            if now > deadline or (n > 0 and now - last_change > cfg.log_stall):
                break
            time.sleep(0.02)
        t_disk = (now if done else last_change) - t0
        cpu1 = daemon_cpu_ticks(dpid)
        # Then until the daemon is idle: what it still spends right after (gzip of the last
        # rotated file, the app's exit) belongs to the work of getting the lines to disk.
        cpu2, idle_wait, idle = wait_daemon_idle(dpid)
        if not idle:
            log(f"{m.label}: WARNING: daemon not idle {IDLE_CAP_S:.0f} s after the last line")
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{m.label}: start {LOG_APP} exited {proc.returncode}: "
                               f"{err.decode(errors='replace')[-2000:]}")
        check = check_log_lines(m.logs_dir, LOG_APP, n_lines)
        apps = [a for a in m.jlist() if a.get("name") == LOG_APP]
        env = (apps[0].get("pm2_env") or {}) if apps else {}
        out_path = env.get("pm_out_log_path")
        if out_path and Path(out_path) != m.logs_dir / f"{LOG_APP}-out.log":
            log(f"{m.label}: WARNING: pm_out_log_path is {out_path}, "
                f"expected {m.logs_dir / f'{LOG_APP}-out.log'}")

        def secs(a: int | None, b: int | None) -> float | None:
            return None if a is None or b is None else (b - a) / CLK_TCK
        res = {
            "done": done, "time_s": t_disk, "lines_per_s": n_lines / t_disk if done else None,
            "daemon_cpu_s": secs(cpu0, cpu2),            # until idle (the reported number)
            "daemon_cpu_landed_s": secs(cpu0, cpu1),     # until the last line landed
            "daemon_cpu_after_s": secs(cpu1, cpu2),      # from then until idle
            "idle_wait_s": idle_wait, "idle_reached": idle,
            "lines_counted": last_n, "status_after": env.get("status"),
            "exit_code": env.get("exit_code"), **check,
        }
        rounds.append(res)
        log(f"{m.label}: logs round {r + 1}/{cfg.rounds}: "
            f"{'done' if done else 'INCOMPLETE'} in {t_disk:.3f} s, daemon CPU "
            f"{res['daemon_cpu_s']} s ({res['daemon_cpu_after_s']} s after the last line, "
            f"idle after {idle_wait:.1f} s), lost {check['lost']}, "
            f"dups {check['duplicates']}, out of order {check['out_of_order']}, "
            f"invalid {check['invalid']}, rotated files {check['rotated']}, "
            f"status {res['status_after']}")
        m.run("delete", LOG_APP, check=False)
        remove_app_logs(m, LOG_APP)
        time.sleep(cfg.settle)

    def med(key: str) -> float | None:
        return median([x[key] for x in rounds if x[key] is not None])

    done_rounds = [x for x in rounds if x["done"]]
    t = median([x["time_s"] for x in done_rounds])
    return {
        "time_s": t, "lines_per_s": n_lines / t if t else None,
        "daemon_cpu_s": med("daemon_cpu_s"), "daemon_cpu_after_s": med("daemon_cpu_after_s"),
        "not_idle": sum(not x["idle_reached"] for x in rounds), "lost": med("lost"),
        "lost_max": max(x["lost"] for x in rounds), "duplicates": max(x["duplicates"] for x in rounds),
        "out_of_order": max(x["out_of_order"] for x in rounds),
        "invalid": max(x["invalid"] + x["partial"] for x in rounds),
        "rotated": med("rotated"), "incomplete": len(rounds) - len(done_rounds),
        "rounds": len(rounds), "raw": rounds,
    }
