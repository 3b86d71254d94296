"""Regression check (`--check`): Kelpie alone, the core figures against bench/budgets.json.
Here: the check's parameters, the metrics, and the budgets file (read, compare, rewrite)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .common import log, SCRIPT


BUDGETS_FILE = SCRIPT.parent / "budgets.json"
CHECK_APPS = 200            # the core scenario's apps (fake-app, interpreter none)
CHECK_ROUNDS = 3            # start / stop rounds: start_json, stop_all, rss_200 (median)
CHECK_LIST_RUNS = 4         # runs of list and of jlist per round (12 of each in all)
CHECK_CRASH_ROUNDS = 20     # SIGKILL rounds of the crashy app
CHECK_CPU_WINDOW_S = 10.0   # the daemon's CPU window, 200 idle apps, nobody calling the CLI
CHECK_CPU_WINDOWS = 2       # that many windows in a row; the figure is the lowest (see below)
CHECK_SETTLE_S = 3.0        # after the daemon starts / after all apps are online (the daemon unmaps
                            # the code of a burst of work 1-2 s after it; RSS is of the steady state)
CHECK_RSS_SAMPLES = 5
CHECK_QUIET_IDLE = 0.9      # the machine's idle share that counts as quiet, before measuring
CHECK_QUIET_MAX_S = 60.0    # measure anyway after this long
CHECK_CROWDED = 2 * CHECK_APPS  # more processes on the machine than this: a note (CPU figure)
# How a budget is set from a measured figure (the worst of the runs): x2 for times and CPU,
# +25 % for memory, rounded up to 2 significant digits. budgets.json carries its own copy.
DEFAULT_HEADROOM = {"ms": 2.0, "%": 2.0, "MB": 1.25, "x": 1.25, "fd": 1.25, "kB": 2.0}
BUDGETS_COMMENT = (
    "Performance budgets of `python3 bench/run.py --check` (Kelpie alone, 200 fake-app apps; "
    "see bench/README.md), which CI runs: a figure over its budget fails the check. Rule: "
    "budget = the worst figure of at least 3 runs on the reference machine x headroom (x2 for "
    "times and CPU, x1.25 for memory), rounded up to 2 significant digits; `measured` is that "
    "worst figure. A change that makes a figure better must tighten its budget in the same "
    "commit (`python3 bench/run.py --check-update-budgets` rewrites this file from a run's "
    "figures, or from the worst of several --check-output files given after it). Loosening a "
    "budget needs a reason in the commit message.")


@dataclass(frozen=True)
class CheckMetric:
    key: str
    unit: str       # "ms", "MB" or "%" (of one core)
    what: str
    budgeted: bool = True  # False: reported only


CHECK_METRICS = (
    CheckMetric("restart_ms", "ms",
                f"SIGKILL of an app to its restart, median of {CHECK_CRASH_ROUNDS} rounds"),
    CheckMetric("restart_p90_ms", "ms", "the same, p90 (reported, no budget)", budgeted=False),
    CheckMetric("start_json_ms", "ms",
                f"`start ecosystem.json`, {CHECK_APPS} apps, median of {CHECK_ROUNDS} rounds"),
    CheckMetric("stop_all_ms", "ms",
                f"`stop all`, {CHECK_APPS} apps, median of {CHECK_ROUNDS} rounds"),
    CheckMetric("list_ms", "ms", f"`list`, {CHECK_APPS} apps online, median of "
                f"{CHECK_ROUNDS * CHECK_LIST_RUNS} runs"),
    CheckMetric("jlist_ms", "ms", f"`jlist`, {CHECK_APPS} apps online, median of "
                f"{CHECK_ROUNDS * CHECK_LIST_RUNS} runs"),
    CheckMetric("anon_idle_mb", "MB",
                f"daemon RssAnon (its own memory), 0 apps, {CHECK_SETTLE_S:g} s after start"),
    # VmRSS idle is RssAnon plus the pages of the (shared, cached) kelpie binary the kernel
    # maps: 0.7 to 3.5 MB for the same binary, with the page cache's folio sizes, run to run.
    CheckMetric("rss_idle_mb", "MB", f"daemon VmRSS, 0 apps, {CHECK_SETTLE_S:g} s after start "
                "(reported: its file pages vary with the page cache)", budgeted=False),
    CheckMetric("rss_200_mb", "MB",
                f"daemon VmRSS, {CHECK_APPS} apps online, median of {CHECK_ROUNDS} rounds"),
    CheckMetric("cpu_idle_200_pct", "%", f"daemon CPU (% of one core), {CHECK_APPS} idle apps, "
                f"{CHECK_CPU_WINDOW_S:g} s without CLI calls, lowest of {CHECK_CPU_WINDOWS}"),
    CheckMetric("node_app_rss_mb", "MB", "a small Node app's VmRSS under Kelpie (its shim, runtime "
                "metrics on), median of 10 apps, 3 s after they are online"),
    CheckMetric("node_app_idle_cpu_pct", "%", "the CPU one of those idle Node apps uses (% of one "
                "core: their total over 5 s, per app)"),
    CheckMetric("cpu_sdk_200_pct", "%", f"daemon CPU (% of one core), {CHECK_APPS} Node apps each "
                "sending @pm2/io's ten metrics every 990 ms, "
                f"{CHECK_CPU_WINDOW_S:g} s without CLI calls, lowest of {CHECK_CPU_WINDOWS}"),
)
CHECK_METRICS += (
    CheckMetric("scale_cpu_ratio", "x", "the daemon's CPU per app starting 3000 idle apps over "
                "that starting 300 (1.0: linear)"),
    CheckMetric("scale_fds_per_app", "fd", "the daemon's descriptors per app with 3000 idle apps"),
    CheckMetric("scale_anon_after_delete_mb", "MB", "the daemon's RssAnon once those 3000 apps "
                "are deleted and it stopped moving (what it gives back)"),
    CheckMetric("soak_cpu_ms_per_restart", "ms", "the daemon's CPU per restart, 30 apps exiting "
                "every 0.3-0.6 s, from the 300th restart over 25 s"),
    CheckMetric("soak_anon_kb_per_restart", "kB", "the daemon's RssAnon growth per restart over "
                "the same restarts (0: nothing left behind)"),
    CheckMetric("soak_print_cpu_ms_per_restart", "ms", "the same, the apps printing a line to "
                "stdout and one to stderr and exiting 1"),
    CheckMetric("soak_print_anon_kb_per_restart", "kB", "the daemon's RssAnon growth per restart "
                "of those printing apps (their lines kept in memory: 2 x ~40 bytes per restart "
                "until each instance has its 500)"),
)
CHECK_METRIC = {cm.key: cm for cm in CHECK_METRICS}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_budgets(path: Path) -> dict:
    """budgets.json, checked: {"comment", "headroom": {unit: factor}, "metrics": {key:
    {"budget": number > 0, "unit": str, "measured": number, "note": str}}}. Raises ValueError
    (OSError when it cannot be read) with what is wrong."""
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise ValueError(f'{path}: no "metrics" object')
    headroom = doc.get("headroom", DEFAULT_HEADROOM)
    if not isinstance(headroom, dict) or not all(
            _is_number(v) and v >= 1 for v in headroom.values()):
        raise ValueError(f'{path}: "headroom" must map units to factors >= 1')
    for key, e in doc["metrics"].items():
        if not isinstance(e, dict):
            raise ValueError(f"{path}: metric {key}: not an object")
        if not _is_number(e.get("budget")) or e["budget"] <= 0:
            raise ValueError(f'{path}: metric {key}: "budget" must be a number > 0')
        if not isinstance(e.get("unit"), str):
            raise ValueError(f'{path}: metric {key}: "unit" missing')
        if "measured" in e and e["measured"] is not None and not _is_number(e["measured"]):
            raise ValueError(f'{path}: metric {key}: "measured" must be a number')
    return doc


def compare_budgets(figures: dict[str, float | None], budgets: dict | None) -> list[dict]:
    """One row per metric (CHECK_METRICS' order, then budgets of metrics this script does not
    measure): metric, unit, measured, budget, status: "ok" (measured <= budget), "OVER",
    "not measured", "no budget", "unit mismatch", or "info" (no budget by design)."""
    entries = (budgets or {}).get("metrics", {})
    rows = []
    for cm in CHECK_METRICS:
        v = figures.get(cm.key)
        e = entries.get(cm.key)
        b = e["budget"] if e else None
        if not cm.budgeted:
            status = "info"
        elif e is None:
            status = "no budget"
        elif e.get("unit") != cm.unit:
            status = "unit mismatch"
        elif v is None:
            status = "not measured"
        else:
            status = "ok" if v <= b else "OVER"
        rows.append({"metric": cm.key, "unit": cm.unit, "measured": v, "budget": b,
                     "status": status, "what": cm.what})
    for key, e in entries.items():
        if key not in CHECK_METRIC:
            rows.append({"metric": key, "unit": e.get("unit"), "measured": None,
                         "budget": e["budget"], "status": "not measured",
                         "what": "in budgets.json but not measured by this script"})
    return rows


def check_passed(rows: list[dict]) -> bool:
    return all(r["status"] in ("ok", "info") for r in rows)


def _check_value(v: float | None, unit: str | None) -> str:
    if v is None:
        return "-"
    nd = 2 if unit == "%" else 1
    return f"{v:.{nd}f} {unit}"


def format_check_table(rows: list[dict]) -> str:
    head = ("metric", "measured", "budget", "of budget", "status", "what")
    lines = [head]
    for r in rows:
        b = r["budget"]
        used = (f"{100 * r['measured'] / b:.0f}%"
                if r["measured"] is not None and b else "-")
        lines.append((r["metric"], _check_value(r["measured"], r["unit"]),
                      "-" if b is None else f"{b:g} {r['unit']}", used, r["status"], r["what"]))
    widths = [max(len(x[i]) for x in lines) for i in range(len(head) - 1)]
    right = (False, True, True, True, False)
    out = []
    for x in lines:
        cells = [x[i].rjust(widths[i]) if right[i] else x[i].ljust(widths[i])
                 for i in range(len(widths))]
        out.append("  ".join(cells) + "  " + x[-1])
    out.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(head[-1]))
    return "\n".join(out)


def ceil_sig(x: float, digits: int = 2) -> float:
    """x rounded up to `digits` significant digits (4.06 -> 4.1, 12.5 -> 13, 0.333 -> 0.34)."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return round(math.ceil(round(x / scale, 9)) * scale, 12)


def updated_budgets(doc: dict | None, runs: list[dict[str, float | None]], source: str) -> dict:
    """budgets.json rewritten from the figures of one or more runs: for every budgeted metric,
    measured = the worst (highest) figure of the runs and budget = ceil_sig(measured x the
    headroom of its unit). Notes, the comment and the headroom of `doc` (the current file, or
    None) are kept. Raises ValueError if a metric has no figure in any run."""
    doc = doc or {}
    headroom = {**DEFAULT_HEADROOM, **doc.get("headroom", {})}
    old = doc.get("metrics", {})
    metrics = {}
    for cm in CHECK_METRICS:
        if not cm.budgeted:
            continue
        vals = [r[cm.key] for r in runs if r.get(cm.key) is not None]
        if not vals:
            raise ValueError(f"no figure for {cm.key} in the run(s): budgets not updated")
        worst = max(vals)
        note = (old.get(cm.key) or {}).get("note", cm.what)
        metrics[cm.key] = {"budget": ceil_sig(worst * headroom[cm.unit]), "unit": cm.unit,
                           "measured": round(worst, 3), "note": note}
    return {"comment": doc.get("comment", BUDGETS_COMMENT), "headroom": headroom,
            "measured_on": source, "metrics": metrics}


def write_budgets(path: Path, old: dict | None, doc: dict) -> None:
    """Writes doc to path, and logs each budget that changed from old (the file before)."""
    before = (old or {}).get("metrics", {})
    for key, e in doc["metrics"].items():
        b = (before.get(key) or {}).get("budget")
        if b != e["budget"]:
            log(f"budget of {key}: {'none' if b is None else f'{b:g}'} -> {e['budget']:g} "
                f"{e['unit']} (measured {e['measured']:g})")
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def figures_from_results(doc: dict) -> dict[str, float | None]:
    """The measured figures of a --check-output file."""
    return {k: (v or {}).get("measured") for k, v in doc.get("metrics", {}).items()}
