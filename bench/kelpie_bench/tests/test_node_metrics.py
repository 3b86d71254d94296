"""Self-test of the nodemetrics section's figures: rounds paired by position, quartiles, the
bootstrap interval of the median difference, and the table's lines."""

from __future__ import annotations

import unittest

from ..node_metrics_report import build_table
from ..node_requests import bootstrap_median, quartiles, summarize


def rounds(ns: list[float], load: float = 3.0) -> list[dict]:
    return [{"ns_per_req": x, "rps": 1e9 / x, "load1": load} for x in ns]


class NodeMetricsTest(unittest.TestCase):
    def test_quartiles_of_one_and_of_many(self):
        self.assertEqual(quartiles([5.0]), (5.0, 5.0, 5.0))
        self.assertEqual(quartiles([1.0, 2.0, 3.0, 4.0, 5.0]), (2.0, 3.0, 4.0))

    def test_the_interval_holds_the_median_and_narrows_with_agreement(self):
        lo, hi = bootstrap_median([10.0] * 12)
        self.assertEqual((lo, hi), (10.0, 10.0))
        xs = [float(x) for x in range(-50, 51, 5)]
        lo, hi = bootstrap_median(xs)
        self.assertLessEqual(lo, 0.0)
        self.assertGreaterEqual(hi, 0.0)

    def test_differences_are_paired_by_round_not_by_rank(self):
        # A machine getting busier: both variants slow down together; `on` costs 100 ns more
        # in every round, which sorted lists would hide.
        per = {"off": rounds([10000, 20000, 30000, 40000]),
               "on": rounds([10100, 20100, 30100, 40100])}
        s = summarize(per, "off")
        self.assertEqual(s["on"]["delta_ns"], (100.0, 100.0, 100.0))
        self.assertEqual(s["on"]["delta_ns_ci95"], (100.0, 100.0))
        self.assertAlmostEqual(s["on"]["delta_pct"][1], (0.5 + 1 / 3) / 2, places=6)
        self.assertNotIn("delta_ns", s["off"])

    def test_the_table_says_each_measure_and_the_load(self):
        idle = {"cpu_pct": 0.01, "wakeups_s": 1.0, "rss_mb": 40.0, "apps": 2}
        results = {
            "idle": {"kelpie_off": idle, "kelpie_on": {**idle, "cpu_pct": 0.04, "rss_mb": 41.5}},
            "requests": {
                "separate": {"off": rounds([16000, 16200], 2.5), "on": rounds([16100, 16250], 4.0)},
                "toggled": {"off": rounds([16000, 16100]), "on": rounds([16050, 16120])},
                "instructions": {"off": {"per_request": 47000.0}, "on": {"per_request": 47200.0}},
            },
        }
        table = build_table(results)
        self.assertIn("| Kelpie, metrics on | 0.040 | 1.00 | 41.5 | 16175 (16138-16212) |", table)
        self.assertIn("one server per variant: +75 ns (+0.47 %) over off", table)
        self.assertIn("load 2.5-4.0", table)
        self.assertIn("stopped and started: on 16085 ns, off 16050 ns; +35 ns", table)
        self.assertIn("off 47000, on 47200: +200 (+0.43 %)", table)
        self.assertIn("Idle, on over off: +0.030 % of a core, +0.00 wake-ups/s, +1.5 MB.", table)
        results["requests"]["instructions"] = {"missing": "valgrind not installed"}
        self.assertIn("not counted (valgrind not installed)", build_table(results))
