"""The nodemetrics section's table and notes (node_metrics.py measures)."""

from __future__ import annotations

from .node_requests import summarize

NOTES = (
    "Idle: hello-world HTTP servers nobody asks anything, medians per app over the window (CPU "
    "from /proc/<pid>/task/*/schedstat, wake-ups its scheduled-in count, VmRSS). Kelpie `off` "
    "is `pmx: false` (the shim without its metrics), `on` the default; PM2 7 with its agent "
    "(the default). Per request: the app's own CPU time (user + system of all its threads, "
    "from schedstat) per request answered, the app pinned to CPU 0 and `wrk -t1 -c32` to CPU "
    "1, adjacent rounds of 3 s (A B B A ..., each after an uncounted warm-up run); medians "
    "with quartiles, and differences paired by round with a bootstrap 95 % interval of their "
    "median. Three ways: (1) one server per variant, each started by its manager; (2) one "
    "server started by Kelpie (`pmx: false`, the metrics loaded by "
    "bench/nodemetrics/preload.js) whose metrics are stopped and started between rounds, so "
    "that no difference between two processes counts; (3) instructions per request counted "
    "by valgrind (callgrind) for servers answering 25 000 and 5 000 requests on one "
    "connection (one request per event-loop turn), which the machine's load does not change. Budgets (issue 50): idle <= 0.05 % of a core, <= 2 "
    "wake-ups/s and <= +2 MB over off; <= 150 ns and <= +2 % CPU per request over off.")

LABELS = {"off": "Kelpie, metrics off", "on": "Kelpie, metrics on", "pm2": "PM2 7 (agent)"}


def _delta(s: dict, base: str) -> str:
    q1, med, q3 = s["delta_ns"]
    p1, pmed, p3 = s["delta_pct"]
    lo, hi = s["delta_ns_ci95"]
    plo, phi = s["delta_pct_ci95"]
    return (f"{med:+.0f} ns ({pmed:+.2f} %) over {base}, quartiles {q1:+.0f} to {q3:+.0f} ns "
            f"({p1:+.2f} to {p3:+.2f} %), 95 % interval of the median {lo:+.0f} to {hi:+.0f} ns "
            f"({plo:+.2f} to {phi:+.2f} %); load {s['delta_load'][0]:.1f}-{s['delta_load'][1]:.1f}")


def build_table(results: dict) -> str:
    req = results.get("requests", {})
    separate = summarize(req["separate"], "off") if req.get("separate") else {}
    rows = ["| variant | idle CPU, % of a core | wake-ups/s | RSS MB | CPU ns/request: median "
            "(quartiles) | req/s |", "|---|---|---|---|---|---|"]
    for variant, label in LABELS.items():
        i = results["idle"].get("pm2" if variant == "pm2" else f"kelpie_{variant}")
        r = separate.get(variant)
        if i is None and not r:
            continue
        cells = [f"{i['cpu_pct']:.3f}" if i else "-", f"{i['wakeups_s']:.2f}" if i else "-",
                 f"{i['rss_mb']:.1f}" if i and i["rss_mb"] else "-",
                 f"{r['ns_median']:.0f} ({r['ns_q1']:.0f}-{r['ns_q3']:.0f})" if r else "-",
                 f"{r['rps_median']:.0f}" if r else "-"]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    rows.append("")
    for variant in ("on", "pm2"):
        if variant in separate:
            rows.append(f"- Per request, {LABELS[variant]}, one server per variant: "
                        f"{_delta(separate[variant], 'off')}.")
    if req.get("toggled"):
        t = summarize(req["toggled"], "off")
        rows.append(f"- Per request, Kelpie's metrics in one server stopped and started: on "
                    f"{t['on']['ns_median']:.0f} ns, off {t['off']['ns_median']:.0f} ns; "
                    f"{_delta(t['on'], 'off')}.")
    ins = req.get("instructions") or {}
    if "off" in ins and "on" in ins:
        off, on = ins["off"]["per_request"], ins["on"]["per_request"]
        rows.append(f"- Instructions per request (valgrind): off {off:.0f}, on {on:.0f}: "
                    f"{on - off:+.0f} ({(on - off) / off * 100:+.2f} %).")
    elif ins.get("missing"):
        rows.append(f"- Instructions per request: not counted ({ins['missing']}).")
    io, ii = results["idle"].get("kelpie_off"), results["idle"].get("kelpie_on")
    if io and ii and io["rss_mb"] and ii["rss_mb"]:
        rows.append(f"- Idle, on over off: {ii['cpu_pct'] - io['cpu_pct']:+.3f} % of a core, "
                    f"{ii['wakeups_s'] - io['wakeups_s']:+.2f} wake-ups/s, "
                    f"{ii['rss_mb'] - io['rss_mb']:+.1f} MB.")
    return "\n".join(rows)
