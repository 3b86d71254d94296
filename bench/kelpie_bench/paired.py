"""Two setups of one server up at once, measured in turn with wrk (`--only runtimes`,
`--only sockets`): keep-alive and a new connection per request, which goes first alternating
round by round, so that the machine's drift falls on both alike; the figure is the median of
the rounds' ratios (a round's two runs are next to each other in time). Samples are kept as
`samples[server][mode][side]`, side "bound" (the reference) or "kelpie"."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from .common import log
from .report import merge_section
from .stats import round_floats
from .wrk import finish_wrk, start_wrk, wrk_argv

CONNECTIONS = 32
MODES = (("keep-alive", True), ("new connections", False))


def measure(wrk: str, port: int, keep_alive: bool, seconds: float) -> dict:
    """One wrk run on 127.0.0.1:`port`: its rate, requests, failures and mean latency."""
    extra = () if keep_alive else ("-H", "Connection: close")
    res = finish_wrk(start_wrk(wrk_argv(wrk, port, seconds, extra, CONNECTIONS)),
                     timeout=seconds + 60)
    return {key: res[key] for key in ("rps", "requests", "failed", "latency_avg_ms")}


def measure_rounds(wrk: str, ports: dict[str, int], rounds: int, seconds: float) -> dict:
    """`rounds` rounds of both modes on both sides (`ports`: "bound" and "kelpie"), which side
    goes first alternating; the samples of one server."""
    samples = {mode: {"bound": [], "kelpie": []} for mode, _ in MODES}
    for round_ in range(rounds):
        for mode, keep_alive in MODES:
            order = ("bound", "kelpie") if round_ % 2 == 0 else ("kelpie", "bound")
            for side in order:
                samples[mode][side].append(measure(wrk, ports[side], keep_alive, seconds))
    return samples


def ratio_table(samples: dict, columns: tuple[str, str, str],
                budget: float) -> tuple[str, float]:
    """The table (`columns`: the server's heading, the bound's and Kelpie's) and the worst
    median ratio."""
    rows = [f"| {columns[0]} | Load | {columns[1]}, median | {columns[2]}, median "
            "| Ratio (median of the rounds') | Budget |",
            "|---|---|---:|---:|---:|---|"]
    worst = float("inf")
    for name, modes in samples.items():
        for mode, sides in modes.items():
            median = {side: statistics.median(s["rps"] for s in runs)
                      for side, runs in sides.items()}
            ratio = statistics.median(k["rps"] / max(b["rps"], 1.0)
                                      for b, k in zip(sides["bound"], sides["kelpie"]))
            worst = min(worst, ratio)
            verdict = "ok" if ratio >= budget else "under"
            rows.append(f"| {name} | {mode} | {median['bound']:,.0f} req/s | "
                        f"{median['kelpie']:,.0f} req/s | {ratio:.3f}x | >= {budget}x: {verdict} |")
    return "\n".join(rows), worst


def raw_samples(samples: dict) -> str:
    """The samples as JSON, one line per server, load and side."""
    lines = [f' "{name} / {mode} / {side}": {json.dumps(runs)}'
             for name, modes in samples.items()
             for mode, sides in modes.items()
             for side, runs in sides.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


def write_section(cfg: argparse.Namespace, name: str, title: str, run_line: str, table: str,
                  notes: str, samples: dict) -> None:
    """The section `name` of cfg.output (between `<!-- bench:<name>:begin/end -->`)."""
    output: Path = cfg.output
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    section = f"""{begin}
## {title}

{run_line}

{table}

{notes}

<details><summary>Raw samples ({name})</summary>

```json
{raw_samples(round_floats(samples))}
```

</details>
{end}"""
    text = output.read_text() if output.exists() else ""
    output.write_text(merge_section(text, begin, end, section))
    log(f"updated the {name} section of {output}")
