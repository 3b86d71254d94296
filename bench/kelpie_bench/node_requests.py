"""CPU per request of a Node HTTP server, measured so that a busy 2-CPU machine does not decide
the figure (the nodemetrics section, and bench/nodemetrics/perreq.py).

- The app's own CPU time: user + system of all its threads, read at ns resolution as the sum
  of /proc/<pid>/task/*/schedstat's first field (what /proc/<pid>/stat's utime + stime count,
  in 10 ms ticks), over the requests wrk counted. Not wall time, not req/s: a busy machine
  slows a server without making its requests cost more CPU (it does make them cost somewhat
  more: caches, fewer requests per loop turn; hence the pairing below).
- The app pinned to CPU 0 (all its threads), `wrk -t1 -c32` pinned to CPU 1.
- Variants compared in adjacent rounds (A B B A A B ...: neither always goes first), each
  round after a warm-up run that is not counted; a variant's figure is the median of its
  rounds, with the quartiles; a difference is the median of the differences within each pair
  of adjacent rounds, with the quartiles and a bootstrap 95 % interval of that median.
- Two ways to get the variants: separate processes (`interleaved`), or one process whose
  metrics are stopped and started again between rounds (`toggled`, through
  bench/nodemetrics/preload.js), so that no difference between two processes (heap layout,
  placement, what ran before) counts.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from pathlib import Path

from .wrk import parse_wrk

PRELOAD = Path(__file__).resolve().parent.parent / "nodemetrics" / "preload.js"
CONNECTIONS = 32


def cpu_ns(pid: int) -> int:
    """User + system CPU time of all the threads of pid, in ns (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def stat_cpu_s(pid: int) -> float:
    """utime + stime of /proc/<pid>/stat, in s (10 ms ticks; every thread, dead ones too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpu: int = 0) -> None:
    """Every thread of pid on one CPU."""
    subprocess.run(["taskset", "-apc", str(cpu), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def wrk_run(wrk: str, port: int, seconds: int) -> dict:
    p = subprocess.run(["taskset", "-c", "1", wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s",
                        f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                       timeout=seconds + 60)
    res = parse_wrk(p.stdout)
    if res["failed"] or res["requests"] == 0:
        raise RuntimeError(f"wrk on port {port}: {p.stdout[-1500:]}")
    return res


def measured(wrk: str, pid: int, port: int, seconds: int, warm: float) -> dict:
    """One round: a warm-up run (not counted), then the app's CPU over one counted run."""
    if warm > 0:
        wrk_run(wrk, port, max(1, round(warm)))
    ns0, ticks0 = cpu_ns(pid), stat_cpu_s(pid)
    res = wrk_run(wrk, port, seconds)
    ns1, ticks1 = cpu_ns(pid), stat_cpu_s(pid)
    return {"ns_per_req": (ns1 - ns0) / res["requests"], "requests": res["requests"],
            "rps": res["rps"], "stat_cpu_s": ticks1 - ticks0, "cpu_s": (ns1 - ns0) / 1e9,
            "load1": os.getloadavg()[0]}


def interleaved(wrk: str, targets: dict[str, tuple[int, int]], rounds: int, seconds: int,
                warm: float = 1.0, say=print) -> dict[str, list[dict]]:
    """targets: variant -> (pid, port), each its own process. Every round measures every
    variant once, in the order of `targets`, reversed every other round."""
    for pid, _ in targets.values():
        pin(pid)
    names = list(targets)
    out: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            pid, port = targets[name]
            out[name].append(measured(wrk, pid, port, seconds, warm))
        say(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {out[n][-1]['ns_per_req']:.0f}" for n in names)
            + f" ns/request; load {os.getloadavg()[0]:.2f}")
    return out


def toggled(wrk: str, pid: int, port: int, state_file: Path, pairs: int, seconds: int,
            warm_on: float = 3.0, warm_off: float = 1.0, say=print) -> dict[str, list[dict]]:
    """One process whose metrics (bench/nodemetrics/preload.js, KELPIE_METRICS_TOGGLE=
    state_file) SIGUSR2 stops and starts. Rounds on, off, off, on, on, off...; each pair of
    adjacent rounds is one `on` and one `off`. After a start, the warm-up lasts until the
    metrics are as under steady load (the delay monitor arms at the second report, ~2 s)."""
    pin(pid)
    out: dict[str, list[dict]] = {"on": [], "off": []}
    state = read_state(state_file)
    for i in range(pairs):
        for want in ("on", "off") if i % 2 == 0 else ("off", "on"):
            if state != want:
                os.kill(pid, signal.SIGUSR2)
                state = wait_state(state_file, want)
            out[want].append(measured(wrk, pid, port, seconds,
                                      warm_on if want == "on" else warm_off))
        say(f"pair {i + 1}/{pairs}: on {out['on'][-1]['ns_per_req']:.0f}, off "
            f"{out['off'][-1]['ns_per_req']:.0f} ns/request; load {os.getloadavg()[0]:.2f}")
    return out


def read_state(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def wait_state(path: Path, want: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_state(path) == want:
            return want
        time.sleep(0.05)
    raise RuntimeError(f"the app's metrics did not turn {want} ({path})")


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def bootstrap_median(xs: list[float], n: int = 4000, seed: int = 50) -> tuple[float, float]:
    """A 95 % interval of the median of xs (percentile bootstrap)."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def summarize(per: dict[str, list[dict]], base: str) -> dict:
    """Per variant: the quartiles of its rounds' ns/request, median req/s; against `base`,
    paired by position (the same round, or the same pair of adjacent rounds): the quartiles
    of the differences in ns and in % of base, and a 95 % interval of their median."""
    out: dict = {}
    for name, rounds in per.items():
        ns = [r["ns_per_req"] for r in rounds]
        q1, med, q3 = quartiles(ns)
        s = {"rounds": len(ns), "ns_q1": q1, "ns_median": med, "ns_q3": q3,
             "rps_median": statistics.median(r["rps"] for r in rounds),
             "load1_min": min(r["load1"] for r in rounds),
             "load1_max": max(r["load1"] for r in rounds)}
        if name != base:
            d = [r["ns_per_req"] - b["ns_per_req"] for r, b in zip(rounds, per[base])]
            pct = [x / b["ns_per_req"] * 100 for x, b in zip(d, per[base])]
            s["delta_ns"] = quartiles(d)
            s["delta_pct"] = quartiles(pct)
            s["delta_ns_ci95"] = bootstrap_median(d)
            s["delta_pct_ci95"] = bootstrap_median(pct)
            loads = [r["load1"] for r in rounds + per[base]]
            s["delta_load"] = (min(loads), max(loads))
        out[name] = s
    return out


def describe(summary: dict, base: str) -> list[str]:
    """One line per variant: ns/request (median, quartiles), and its difference to base."""
    lines = []
    for name, s in summary.items():
        line = (f"{name}: {s['ns_median']:.0f} ns/request (quartiles {s['ns_q1']:.0f}-"
                f"{s['ns_q3']:.0f}, {s['rounds']} rounds), {s['rps_median']:.0f} req/s")
        if name != base:
            q1, med, q3 = s["delta_ns"]
            p1, pmed, p3 = s["delta_pct"]
            lo, hi = s["delta_ns_ci95"]
            plo, phi = s["delta_pct_ci95"]
            line += (f"; over {base}: {med:+.0f} ns ({pmed:+.2f} %), quartiles {q1:+.0f}..{q3:+.0f}"
                     f" ns ({p1:+.2f}..{p3:+.2f} %), 95 % interval of the median {lo:+.0f}..{hi:+.0f}"
                     f" ns ({plo:+.2f}..{phi:+.2f} %)")
        lo, hi = s.get("delta_load", (s["load1_min"], s["load1_max"]))
        lines.append(line + f"; load {lo:.1f}-{hi:.1f}")
    return lines
