#!/usr/bin/env python3
"""Instructions per request of a hello-world Node server, the shim's metrics off vs on, counted
by valgrind (bench/kelpie_bench/node_instructions.py has the method): a figure no other load
on the machine changes, beside the CPU times of perreq.py.

  python3 bench/nodemetrics/instructions.py [--n1 5000] [--n2 25000] [name=preload@K=V ...]
  (default variants: off = no preload, on = preload.js; the first is the base; needs valgrind
  and wrk)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kelpie_bench import node_instructions as ni  # noqa: E402 - needs the path above


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n1", type=int, default=5000)
    ap.add_argument("--n2", type=int, default=25000)
    ap.add_argument("--parallel", type=int, default=2, help="valgrind runs at once")
    ap.add_argument("variants", nargs="*")
    a = ap.parse_args()
    missing = ni.available()
    if missing:
        sys.exit(f"{missing} (apt-get install valgrind wrk)")
    variants = []
    for v in a.variants or ["off=", f"on={HERE / 'preload.js'}"]:
        name, spec = v.split("=", 1)
        preload, _, env = spec.partition("@")
        variants.append((name, preload, dict(kv.split("=", 1) for kv in env.split("@") if kv)))
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-instructions-"))
    try:
        per = ni.per_request(variants, tmp, a.n1, a.n2, a.parallel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = variants[0][0]
    for name, r in per.items():
        line = f"{name}: {r['per_request']:.0f} instructions/request"
        if name != base:
            d = r["per_request"] - per[base]["per_request"]
            line += f"; over {base}: {d:+.0f} ({d / per[base]['per_request'] * 100:+.2f} %)"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
