"""Runtime scenario, what it reads: the processes below PID 1 of a pid namespace (from /proc),
the runtime apps among them, Kelpie's recorded exits, and the size of a directory or a binary."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from .managers import Kelpie
from .processes import cmdline


def parse_proc_stat(text: str) -> tuple[str, int]:
    """(state, ppid) from the text of /proc/<pid>/stat (the command may hold spaces and
    parentheses: the fields start after the last ')')."""
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, command line) of every process, from /proc."""
    table = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            state, ppid = parse_proc_stat((d / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        table[int(d.name)] = (ppid, state, cmdline(int(d.name)))
    return table


def tree_below(table: dict[int, tuple[int, str, str]], root: int) -> list[int]:
    """Every pid below root in table (its children, their children...)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _s, _c) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def is_runtime_app(command: str, app: str) -> bool:
    """An app process of the scenario (fake-app started by the runtime), not one of the orphans
    its `--orphans` starts (`--orphan-parent`, then `--quiet --exit-after`)."""
    return app in command and "--orphan-parent" not in command and "--exit-after" not in command


def dir_footprint(path: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files under path: their sizes, each inode once, symlinks
    not followed (what the directory adds to an image layer)."""
    seen: set[tuple[int, int]] = set()
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
            files += 1
    return total, files


def kelpie_exits(m: "Kelpie", name: str) -> list | None:
    """The exits Kelpie recorded for the first instance of `name` (`describe NAME --json`),
    None if it cannot say."""
    p = m.run("describe", name, "--json", check=False, capture=True)
    try:
        described = json.loads(p.stdout)
        exits = described[0]["pm2_env"]["exits"]
    except (json.JSONDecodeError, TypeError, KeyError, IndexError):
        return None
    return exits if isinstance(exits, list) else None


def describe_binary(path: Path) -> str:
    """`file`'s description of path (linking, stripped), or "" without `file`."""
    try:
        out = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    keep = [p.strip() for p in out.split(",")
            if any(k in p for k in ("linked", "stripped", "pie executable"))]
    return ", ".join(keep)
