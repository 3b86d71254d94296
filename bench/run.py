#!/usr/bin/env python3
"""Kelpie vs PM2 benchmark: the entry point. The code is the package bench/kelpie_bench/ (see
bench/README.md); this file puts bench/ on sys.path and runs its command line, so that

    python3 bench/run.py [--quick] [--apps N] [--kelpie-only]
                         [--only core|logs|cluster|health|runtime|reliability|scale|deploy|nodemetrics|chaos|notify|runtimes]
                         [--output FILE]
    python3 bench/run.py --self-test     # tests of the helpers (log line counter, wrk parser, …)
    python3 bench/run.py --check [--check-output FILE]   # Kelpie's figures against budgets.json
    python3 bench/run.py --check-update-budgets [RESULTS.json ...]  # rewrite budgets.json

work from anywhere. Standard library only (Python 3.11).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kelpie_bench.cli import main  # noqa: E402 - needs the path above

if __name__ == "__main__":
    sys.exit(main())
