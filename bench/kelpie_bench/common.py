"""Paths every module needs (the entry point, the repository, the release binaries) and the
log line on stderr."""

from __future__ import annotations

import sys
from pathlib import Path


# The entry point, bench/run.py: reports quote the command line with its path.
SCRIPT = Path(__file__).resolve().parent.parent / "run.py"
REPO = SCRIPT.parent.parent
KELPIE_BIN = REPO / "target" / "release" / "kelpie"
FAKE_APP = REPO / "target" / "release" / "fake-app"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)
