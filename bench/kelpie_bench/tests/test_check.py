"""Self-test of the regression check: budgets, comparison, the headroom rule."""

from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

from ..budgets import (
    BUDGETS_COMMENT, BUDGETS_FILE, ceil_sig, CHECK_METRICS, check_passed, compare_budgets,
    figures_from_results, format_check_table, load_budgets, updated_budgets, write_budgets,
)
from ..check import better_figure, check_round_figures


class CheckTest(unittest.TestCase):
    FIGS = {"restart_ms": 2.0, "restart_p90_ms": 3.1, "start_json_ms": 180.0,
            "stop_all_ms": 40.0, "list_ms": 12.0, "jlist_ms": 12.5, "anon_idle_mb": 4.4, "rss_idle_mb": 5.0,
            "rss_200_mb": 10.0, "cpu_idle_200_pct": 0.4, "cpu_sdk_200_pct": 0.9,
            "node_app_rss_mb": 42.0, "node_app_idle_cpu_pct": 0.1, "scale_cpu_ratio": 1.1,
            "scale_fds_per_app": 5.0, "scale_anon_after_delete_mb": 9.0,
            "soak_cpu_ms_per_restart": 1.8,
            "soak_anon_kb_per_restart": 0.1, "soak_print_cpu_ms_per_restart": 1.9,
            "soak_print_anon_kb_per_restart": 0.2}

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_a_second_run_keeps_the_better_figure_of_each_metric(self):
        self.assertEqual(better_figure(14.2, 2.7), 2.7)
        self.assertEqual(better_figure(0.1, 0.6), 0.1)
        self.assertEqual(better_figure(None, 3.0), 3.0)
        self.assertIsNone(better_figure(None, None))

    def budgets(self) -> dict:
        return updated_budgets(None, [self.FIGS], "test")

    def test_ceil_sig(self):
        self.assertEqual(ceil_sig(4.06), 4.1)
        self.assertEqual(ceil_sig(4.0), 4.0)  # exact stays
        self.assertEqual(ceil_sig(12.5), 13.0)
        self.assertEqual(ceil_sig(0.333), 0.34)
        self.assertEqual(ceil_sig(360.0), 360.0)
        self.assertEqual(ceil_sig(361.0), 370.0)
        self.assertEqual(ceil_sig(1.2 * 3), 3.6)  # 3.5999999999999996
        self.assertEqual(ceil_sig(0.0), 0.0)

    def test_update_rule_worst_run_and_notes(self):
        b = self.budgets()
        m = b["metrics"]
        self.assertNotIn("restart_p90_ms", m)  # reported only
        self.assertNotIn("rss_idle_mb", m)  # reported only
        self.assertEqual(set(m), {cm.key for cm in CHECK_METRICS if cm.budgeted})
        self.assertEqual((m["restart_ms"]["budget"], m["restart_ms"]["measured"]), (4.0, 2.0))
        self.assertEqual(m["start_json_ms"]["budget"], 360.0)
        self.assertEqual(m["anon_idle_mb"]["budget"], 5.5)   # 4.4 x 1.25
        self.assertEqual(m["rss_200_mb"]["budget"], 13.0)   # 12.5 rounded up
        self.assertEqual(m["cpu_idle_200_pct"]["budget"], 0.8)
        self.assertEqual((m["rss_200_mb"]["unit"], m["cpu_idle_200_pct"]["unit"]), ("MB", "%"))
        self.assertEqual(b["comment"], BUDGETS_COMMENT)
        # The worst of several runs; the file's notes, comment and headroom are kept.
        b["comment"] = "mine"
        b["headroom"]["ms"] = 3.0
        b["metrics"]["list_ms"]["note"] = "a note"
        worse = dict(self.FIGS, list_ms=20.0, rss_200_mb=9.0)
        b2 = updated_budgets(b, [self.FIGS, worse, {"list_ms": None}], "three runs")
        self.assertEqual(b2["metrics"]["list_ms"],
                         {"budget": 60.0, "unit": "ms", "measured": 20.0, "note": "a note"})
        self.assertEqual(b2["metrics"]["rss_200_mb"]["measured"], 10.0)
        self.assertEqual((b2["comment"], b2["measured_on"]), ("mine", "three runs"))
        with self.assertRaises(ValueError):
            updated_budgets(None, [dict(self.FIGS, jlist_ms=None)], "incomplete")

    def test_load_roundtrip_and_errors(self):
        path = self.dir / "budgets.json"
        write_budgets(path, None, self.budgets())
        self.assertEqual(load_budgets(path), self.budgets())
        for text, why in (("{", "not JSON"), ("[]", "metrics"), ('{"metrics": 1}', "metrics"),
                          ('{"metrics": {"x": {"budget": 0, "unit": "ms"}}}', "budget"),
                          ('{"metrics": {"x": {"budget": true, "unit": "ms"}}}', "budget"),
                          ('{"metrics": {"x": {"budget": 1}}}', "unit"),
                          ('{"metrics": {"x": {"budget": 1, "unit": "ms", "measured": "a"}}}',
                           "measured"),
                          ('{"headroom": {"ms": 0.5}, "metrics": {}}', "headroom")):
            path.write_text(text)
            with self.assertRaisesRegex(ValueError, why):
                load_budgets(path)
        with self.assertRaises(FileNotFoundError):
            load_budgets(self.dir / "missing.json")

    def test_committed_budgets(self):
        """bench/budgets.json loads, and has a budget in the right unit for every metric."""
        doc = load_budgets(BUDGETS_FILE)
        self.assertIn("comment", doc)
        for cm in CHECK_METRICS:
            if cm.budgeted:
                e = doc["metrics"][cm.key]
                self.assertEqual(e["unit"], cm.unit, cm.key)
                self.assertGreaterEqual(e["budget"], e["measured"], cm.key)
        self.assertEqual(set(doc["metrics"]), {cm.key for cm in CHECK_METRICS if cm.budgeted})
        # Its own measured figures pass it (the p90 row, without a figure here, is only info).
        self.assertTrue(check_passed(compare_budgets(
            {k: e["measured"] for k, e in doc["metrics"].items()}, doc)))

    def test_compare_and_table(self):
        b = self.budgets()
        rows = compare_budgets(self.FIGS, b)
        self.assertEqual([r["metric"] for r in rows], [cm.key for cm in CHECK_METRICS])
        self.assertEqual({r["status"] for r in rows}, {"ok", "info"})
        self.assertTrue(check_passed(rows))
        # At the budget is ok; over it, or not measured, fails.
        figs = dict(self.FIGS, restart_ms=4.0, list_ms=24.1, rss_200_mb=None)
        b["metrics"]["ghost_ms"] = {"budget": 1, "unit": "ms"}
        b["metrics"]["jlist_ms"]["unit"] = "s"
        del b["metrics"]["stop_all_ms"]
        rows = compare_budgets(figs, b)
        st = {r["metric"]: r["status"] for r in rows}
        self.assertEqual(st, {"restart_ms": "ok", "restart_p90_ms": "info",
                              "start_json_ms": "ok", "stop_all_ms": "no budget",
                              "list_ms": "OVER", "jlist_ms": "unit mismatch",
                              "anon_idle_mb": "ok", "rss_idle_mb": "info",
                              "rss_200_mb": "not measured",
                              "cpu_idle_200_pct": "ok", "cpu_sdk_200_pct": "ok",
                              "node_app_rss_mb": "ok", "node_app_idle_cpu_pct": "ok",
                              "scale_cpu_ratio": "ok", "scale_fds_per_app": "ok",
                              "scale_anon_after_delete_mb": "ok",
                              "soak_cpu_ms_per_restart": "ok",
                              "soak_anon_kb_per_restart": "ok",
                              "soak_print_cpu_ms_per_restart": "ok",
                              "soak_print_anon_kb_per_restart": "ok", "ghost_ms": "not measured"})
        self.assertFalse(check_passed(rows))
        self.assertFalse(check_passed(compare_budgets(self.FIGS, None)))  # no budgets file
        t = format_check_table(rows).splitlines()
        self.assertEqual(len(t), 2 + len(rows))
        self.assertEqual(t[0].split()[:5], ["metric", "measured", "budget", "of", "budget"])
        row = {ln.split()[0]: ln for ln in t[2:]}
        self.assertRegex(row["list_ms"], r"^list_ms +24\.1 ms +24 ms +100% +OVER ")
        self.assertRegex(row["restart_ms"], r"^restart_ms +4\.0 ms +4 ms +100% +ok ")
        self.assertRegex(row["restart_p90_ms"], r" 3\.1 ms +- +- +info ")
        self.assertRegex(row["rss_200_mb"], r" - +13 MB +- +not measured ")
        self.assertRegex(row["cpu_idle_200_pct"], r" 0\.40 % +0\.8 % +50% +ok ")
        self.assertRegex(row["stop_all_ms"], r" 40\.0 ms +- +- +no budget ")
        # Every line has the columns at the same place.
        self.assertEqual(len({ln.index(" ms") for ln in t[2:] if ln.split()[0] in
                              ("list_ms", "restart_ms", "jlist_ms")}), 1)

    def test_round_figures_and_results(self):
        rd = lambda s, rss: {"start_s": s, "stop_s": s / 10, "rss": rss,  # noqa: E731
                             "list_s": [0.01, 0.012], "jlist_s": [0.011, 0.02]}
        f = check_round_figures([rd(0.2, 10.0), rd(0.3, None), rd(0.1, 12.0)])
        self.assertAlmostEqual(f["start_json_ms"], 200.0)
        self.assertAlmostEqual(f["stop_all_ms"], 20.0)
        self.assertAlmostEqual(f["list_ms"], 11.0)
        self.assertAlmostEqual(f["jlist_ms"], 15.5)
        self.assertAlmostEqual(f["rss_200_mb"], 11.0)
        self.assertIsNone(check_round_figures([rd(0.2, None)])["rss_200_mb"])
        doc = {"metrics": {"list_ms": {"measured": 3.0, "budget": 5}, "x": None}}
        self.assertEqual(figures_from_results(doc), {"list_ms": 3.0, "x": None})
