"""Self-test of the paired scenarios' table (paired.py) and of what it reads from docs/cluster.md."""

from __future__ import annotations

import unittest

from ..paired import ratio_table
from ..sockets import BUDGET, ROOT


class SocketsTest(unittest.TestCase):
    def test_the_ratio_is_the_median_of_the_rounds_and_the_worst_decides(self):
        def runs(*rps):
            return [{"rps": r} for r in rps]
        samples = {
            "go": {"keep-alive": {"bound": runs(100, 200, 100), "kelpie": runs(95, 100, 110)}},
            "gunicorn": {"new connections": {"bound": runs(10, 10, 10),
                                             "kelpie": runs(8, 9, 12)}},
        }
        table, worst = ratio_table(samples, ("Server", "Own port", "Kelpie's socket"), BUDGET)
        # go: 0.95, 0.5 and 1.1 per round, median 0.95; gunicorn: 0.8, 0.9, 1.2, median 0.9.
        self.assertIn("| go | keep-alive | 100 req/s | 100 req/s | 0.950x | >= 0.9x: ok |", table)
        self.assertIn("| gunicorn | new connections | 10 req/s | 9 req/s | 0.900x", table)
        self.assertAlmostEqual(worst, 0.9)
        self.assertGreaterEqual(worst, BUDGET)

    def test_docs_cluster_md_has_the_go_server_the_bench_builds(self):
        docs = (ROOT / "docs/cluster.md").read_text()
        source = docs.split("```go\n")[1].split("\n```")[0]
        self.assertIn("package main", source)
        self.assertIn("LISTEN_FDS", source)
