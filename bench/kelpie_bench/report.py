"""What every report shares: the machine's description and the replacement of one section
(between its `<!-- bench:<section>:begin/end -->` markers) in an existing report."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path


README_LINE = "See `bench/README.md` for the method."
SECTION_BEGIN = re.compile(r"<!-- bench:([A-Za-z0-9_-]+):begin -->")


def merge_section(report: str, begin: str, end: str, section: str | None) -> str:
    """report with its section between the markers begin and end replaced in place by section
    (None: removed), or section put before the "See bench/README.md" line (at the end when
    there is none) if the report has no such section yet."""
    i, j = report.find(begin), report.find(end)
    if i >= 0 and j > i:
        if section is not None:
            return report[:i] + section + report[j + len(end):]
        return report[:i].rstrip("\n") + "\n\n" + report[j + len(end):].lstrip("\n")
    if section is None:
        return report
    k = report.find(README_LINE)
    if k < 0:
        return report.rstrip("\n") + "\n\n" + section + "\n"
    return report[:k].rstrip("\n") + "\n\n" + section + "\n\n" + report[k:]


def existing_section(path: Path | None, begin: str, end: str) -> str | None:
    """The section between the markers in the file at path (with them), if any."""
    try:
        text = path.read_text() if path else ""
    except OSError:
        return None
    i, j = text.find(begin), text.find(end)
    return text[i:j + len(end)] if i >= 0 and j > i else None


def keep_missing_sections(report: str, previous: str) -> str:
    """report with every marked section of previous that report lacks put back (in previous's
    order, before the "See bench/README.md" line). A full run writes the report anew from the
    sections it knows; a section measured only on its own (--only scale, deploy, nodemetrics,
    or one added later) must not vanish with it."""
    for m in SECTION_BEGIN.finditer(previous):
        begin, end = m.group(0), f"<!-- bench:{m.group(1)}:end -->"
        j = previous.find(end, m.end())
        if begin in report or j < 0:
            continue
        report = merge_section(report, begin, end, previous[m.start():j + len(end)])
    return report


def keep_sections_of(path: Path, previous: str) -> None:
    """The report at path, just written, given back the sections its previous text had."""
    text = path.read_text()
    kept = keep_missing_sections(text, previous)
    if kept != text:
        path.write_text(kept)


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except OSError:
        node = "not found"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "node": node,
    }
