"""The core scenario's table."""

from __future__ import annotations

from .core import NODE_APPS
from .stats import fmt, fmt_ratio


def build_table(n: int, pm2: dict | None, kel: dict) -> str:
    p = pm2 or {}
    # (label, key, unit, scale to display, target, kind)
    rows = [
        ("Daemon RSS, idle (0 apps)", "rss_idle", "MB", 1, "PM2/Kelpie >= 10x"),
        (f"Daemon RSS, {n} apps", "rss_loaded", "MB", 1, "PM2/Kelpie >= 10x"),
        (f"`list` with {n} apps", "list_ms", "ms", 1, "PM2/Kelpie >= 20x"),
        (f"`jlist` with {n} apps", "jlist_ms", "ms", 1, "PM2/Kelpie >= 20x"),
        (f"Start {n} apps (ecosystem.config.js)", "start_s", "ms", 1e3, "PM2/Kelpie >= 10x"),
        (f"Start {n} apps (ecosystem.json)", "start_json_s", "ms", 1e3, "PM2/Kelpie >= 10x"),
        (f"`stop all` ({n} apps)", "stop_s", "ms", 1e3, "PM2/Kelpie >= 10x"),
        (f"Start {NODE_APPS} Node apps (ecosystem.json), until the command returns",
         "start_node_s", "ms", 1e3, "informative: Kelpie answers once each app's code ran"),
        (f"Of those {NODE_APPS}, main modules run when `start` returned (fewest of the rounds)",
         "node_ran", "", 1, f"Kelpie = {NODE_APPS}"),
        ("One of those Node apps: RSS (median)", "node_rss", "MB", 1, "PM2/Kelpie >= 1x"),
        ("One of those Node apps idle: CPU, % of one core", "node_idle_cpu", "%", 1,
         "PM2/Kelpie >= 1x"),
        ("Crash-to-restart, median", "restart_ms", "ms", 1, "Kelpie <= 3 ms"),
        ("Crash-to-restart, p90", "restart_p90_ms", "ms", 1, ""),
    ]
    nocg = kel.get("nocgroups") or {}
    if nocg:
        rows += [
            ("Crash-to-restart without cgroups (daemon as `nobody`), median", "nocg_restart_ms",
             "ms", 1, "Kelpie <= 2 ms"),
            ("Crash-to-restart without cgroups (daemon as `nobody`), p90", "nocg_restart_p90_ms",
             "ms", 1, ""),
        ]
        kel = {**kel, "nocg_restart_ms": nocg.get("restart_ms"),
               "nocg_restart_p90_ms": nocg.get("restart_p90_ms")}
    if kel.get("node_alone_rss") is not None:
        rows.append(("The same Node app alone (no manager): RSS", "node_alone_rss", "MB", 1,
                     "the floor of the RSS above"))
        rows.append(("The same Node app alone: idle CPU, % of one core", "node_alone_cpu", "%", 1,
                     "the floor of the CPU above"))
    if kel.get("alone_start_ms") is not None:
        rows.append(("The app alone: spawned (no manager) to its start stamp, median",
                     "alone_start_ms", "ms", 1, "the floor of any restart"))
    lines = ["| Metric | PM2 7 | Kelpie | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    for label, key, unit, scale, target in rows:
        pv = p.get(key)
        kv = kel.get(key)
        pv = None if pv is None else pv * scale
        kv = None if kv is None else kv * scale
        if not unit:  # a count of apps, not a figure to compare
            lines.append(f"| {label} | {count(pv)} | {count(kv)} | - | {target}"
                         f"{'' if kv is None else ' (met)' if kv == NODE_APPS else ' (missed)'} |")
            continue
        ratio = fmt_ratio(pv, kv)
        verdict = ""
        if target.startswith("PM2/Kelpie") and pv is not None and kv:
            need = float(target.split(">=")[1].strip().rstrip("x"))
            verdict = " (met)" if pv / kv >= need else " (missed)"
        elif target.startswith("Kelpie <=") and kv is not None:
            need = float(target.split("<=")[1].strip().split()[0])
            verdict = " (met)" if kv <= need else " (missed)"
        digits = 2 if unit == "%" else 1
        lines.append(f"| {label} | {fmt(pv, unit, digits)} | {fmt(kv, unit, digits)} | {ratio} | "
                     f"{target}{verdict} |")
    return "\n".join(lines)


def count(v: float | None) -> str:
    return "n/a" if v is None else f"{int(v)} of {NODE_APPS}"
