"""Self-test of the health scenario's helpers: the stamps of the memory rounds, the per-thread
CPU reading, the table, the merge of the health section into a report, fake-app's stamps."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from ..cluster_report import cluster_section, existing_cluster_section, merge_cluster_section
from ..common import FAKE_APP
from ..health import (
    HEALTH_CAP_S, parse_health_stamps, restart_after_allocation, summarize_health_memory,
)
from ..health_cpu import thread_ticks, threads_pct
from ..health_report import (
    build_health_table, existing_health_section, HEALTH_BEGIN, HEALTH_END, health_section,
    merge_health_section,
)
from ..processes import CLK_TCK
from ..report import README_LINE


class HealthTest(unittest.TestCase):
    MS = 1_000_000  # ns

    def stamps(self, restart_at_ms: int | None, child: bool = False,
               allocated: bool = True) -> str:
        """Start at 1 s, allocating at 3 s, over at 3.07 s, allocated at 3.15 s (if allocated);
        a restart restart_at_ms after going over."""
        a = 201 if child else 100
        lines = ["100 1000000000", "not a stamp line", f"allocating {a} 3000000000",
                 f"over {a} 3070000000", "over 999 3080000000"]
        restart = None if restart_at_ms is None else 3_070_000_000 + restart_at_ms * self.MS
        if allocated and (restart is None or restart > 3_150_000_000):
            lines.append(f"allocated {a} 3150000000")
        if restart is not None:
            lines.append(f"300 {restart}")
        if allocated and restart is not None and restart <= 3_150_000_000:
            # The new process's start came first; the old one's `allocated` never comes.
            lines.append("allocating 300 5300000000")
        return "\n".join(lines) + "\n"

    def test_parse_and_restart_after_allocation(self):
        starts, allocs = parse_health_stamps(self.stamps(700))
        self.assertEqual(starts, [(100, 1_000_000_000), (300, 3_770_000_000)])
        self.assertEqual([x[0] for x in allocs], ["allocating", "over", "over", "allocated"])
        r = restart_after_allocation(starts, allocs)
        self.assertEqual((r["pid"], r["alloc_pid"], r["new_pid"]), (100, 100, 300))
        self.assertAlmostEqual(r["alloc_ms"], 150.0)
        self.assertAlmostEqual(r["over_after_ms"], 70.0)
        self.assertAlmostEqual(r["restart_ms"], 700.0)
        self.assertEqual((r["crossing"], r["cut_short"]), ("over", False))
        # Restarted 40 ms after going over, before the allocation was done.
        r = restart_after_allocation(*parse_health_stamps(self.stamps(40)))
        self.assertAlmostEqual(r["restart_ms"], 40.0)
        self.assertEqual((r["crossing"], r["cut_short"], r["alloc_ms"]), ("over", True, None))
        # A child allocates: its pid is not the app's; no restart yet.
        r = restart_after_allocation(*parse_health_stamps(self.stamps(None, child=True)))
        self.assertEqual((r["pid"], r["alloc_pid"], r["new_pid"], r["restart_ms"]),
                         (100, 201, None, None))
        self.assertAlmostEqual(r["over_after_ms"], 70.0)
        # Restarted before the app saw itself over: from `allocating` (an upper bound).
        text = "100 1000000000\nallocating 100 3000000000\n300 3100000000\n"
        r = restart_after_allocation(*parse_health_stamps(text))
        self.assertEqual((r["crossing"], r["cut_short"], r["new_pid"]), ("allocating", True, 300))
        self.assertAlmostEqual(r["restart_ms"], 100.0)
        # Not allocating yet: nothing but the first pid.
        r = restart_after_allocation(*parse_health_stamps("100 1000000000\n"))
        self.assertEqual((r["pid"], r["over_ns"], r["restart_ns"]), (100, None, None))
        self.assertEqual(restart_after_allocation([], [])["pid"], None)

    def test_thread_ticks_and_pct(self):
        mine = thread_ticks(os.getpid())
        self.assertIn(os.getpid(), [tid for tid, _name in mine])
        self.assertEqual(thread_ticks(2 ** 22 + 12345), {})  # no such process
        before = {(1, "main"): 10, (2, "kelpie-monitor"): 100, (3, "gone"): 5}
        after = {(1, "main"): 10, (2, "kelpie-monitor"): 130, (4, "tokio-runtime-w"): 2,
                 (5, "tokio-runtime-w"): 1}
        pct = threads_pct(before, after, 40, 30.0)  # 40 ticks in all: 7 not in live threads
        self.assertEqual(list(pct), ["kelpie-monitor", "(rest: ended threads, rounding)",
                                     "tokio-runtime-w"])
        self.assertAlmostEqual(pct["kelpie-monitor"], 100 * 30 / CLK_TCK / 30.0)
        self.assertAlmostEqual(pct["tokio-runtime-w"], 100 * 3 / CLK_TCK / 30.0)
        self.assertAlmostEqual(pct["(rest: ended threads, rounding)"], 100 * 7 / CLK_TCK / 30.0)

    @staticmethod
    def round_row(variant: str, restart_ms: float | None, cause: bool = True) -> dict:
        cut = restart_ms is not None and restart_ms < 80
        return {"variant": variant, "restarted": restart_ms is not None,
                "restart_ms": restart_ms, "alloc_ms": None if cut else 150.0,
                "over_after_ms": 70.0, "cut_short": cut, "crossing": "over",
                "memory_cause": cause and restart_ms is not None,
                "old_child_gone": restart_ms is not None}

    def results(self) -> tuple[dict, dict]:
        cpu = lambda pct, thr: {"apps": 500, "window_s": 30.0, "windows": 3,  # noqa: E731
                                "cpu_pct": pct, "cpu_pct_min": pct * 0.9,
                                "cpu_pct_max": pct * 1.1, "threads_pct": thr, "rss_mb": 20.0}
        kel = {"cpu": cpu(1.2, {"kelpie-monitor": 1.1, "kelpie-log-writ": 0.03, "kelpie": 0.0}),
               "memory": summarize_health_memory({
                   "main": [self.round_row("main", x) for x in (500.0, 800.0, 300.0, 900.0, 600.0)],
                   "child": [self.round_row("child", x) for x in (700.0,) * 5]})}
        pm2 = {"cpu": cpu(0.3, {"node": 0.25}) | {"rss_mb": 180.0},
               "memory": summarize_health_memory({
                   "main": [self.round_row("main", x) for x in (12000.0, 27000.0, 3000.0)],
                   "child": [self.round_row("child", None)]})}
        return pm2, kel

    def test_summary_and_table(self):
        pm2, kel = self.results()
        self.assertEqual(kel["memory"]["main"]["restart_ms"], 600.0)
        self.assertEqual((kel["memory"]["main"]["restarted"], kel["memory"]["child"]["rounds"]),
                         (5, 5))
        self.assertEqual(pm2["memory"]["child"]["restarted"], 0)
        t = build_health_table(pm2, kel)
        self.assertEqual(t.count("\n"), 1 + 4 + 2 + 3)
        self.assertIn("| 0.30 % (0.27–0.33) | 1.20 % (1.08–1.32) | 0.2x | Kelpie <= PM2 in the "
                      "same run (missed) |", t)
        self.assertIn("| node 0.25 % | kelpie-monitor 1.10 %, kelpie-log-writ 0.03 % |", t)
        self.assertIn("| 180.0 MB | 20.0 MB | 9.0x | - |", t)
        self.assertIn("median (min–max) | 12.00 s (3.00–27.00 s), 3 rounds | 0.60 s (0.30–0.90 s), "
                      "5 rounds | 20.0x | Kelpie < 1.5 s in every round (met) |", t)
        self.assertIn(f"| not restarted within {HEALTH_CAP_S:.0f} s (1 round) | 0.70 s "
                      "(0.70–0.70 s), 5 rounds | - | Kelpie < 1.5 s in every round (met) |", t)
        self.assertIn("| 3 of 3 (its worker logs", t)
        self.assertIn("| 10 of 10 (`exits[].cause` = memory in describe --json) |", t)
        self.assertIn("| n/a | 5 of 5 | - | - |", t)  # the old child gone
        self.assertIn("| main: over after 70 ms, done in 150 ms; child: over after 70 ms, done in "
                      "150 ms | main:", t)
        # One slow round misses the target; one restarted during the allocation is counted.
        kel["memory"]["raw"]["main"][1] = self.round_row("main", 1600.0)
        kel["memory"]["raw"]["main"][2] = self.round_row("main", 40.0)
        slow = summarize_health_memory(kel["memory"]["raw"])
        t = build_health_table(pm2, {"cpu": kel["cpu"], "memory": slow})
        self.assertIn("Kelpie < 1.5 s in every round (missed)", t)
        self.assertIn("| main: over after 70 ms, done in 150 ms (1 of 5 restarted before it was "
                      "done); child:", t)
        # A round without a restart misses it too.
        kel["memory"]["raw"]["main"][1] = self.round_row("main", None)
        lost = summarize_health_memory(kel["memory"]["raw"])
        t = build_health_table(None, {"cpu": kel["cpu"] | {"cpu_pct": 2.5}, "memory": lost})
        self.assertIn(f"5 rounds, 1 not restarted within {HEALTH_CAP_S:.0f} s | - | Kelpie < "
                      "1.5 s in every round (missed) |", t)
        self.assertIn("Kelpie < 2 % of one core (missed)", t)
        self.assertIn("| n/a |", t)  # --kelpie-only

    def test_merge_health_section(self):
        head = "# Kelpie vs PM2: benchmark results\n\n| core |\n\n"
        tail = README_LINE + "\n\n<details>raw</details>\n"
        cl1 = cluster_section("| c1 |", "cluster notes", "Command: c", {})
        cl2 = cluster_section("| c2 |", "cluster notes", "Command: c2", {})
        h1 = health_section("| h1 |", "notes 1", "Command: one", {"kelpie": {"a": 1.23456}})
        h2 = health_section("| h2 |", "notes 2", "Command: two", {"kelpie": {"a": 2}})
        base = head + cl1 + "\n\n" + tail
        one = merge_health_section(base, h1)
        self.assertEqual(one, head + cl1 + "\n\n" + h1 + "\n\n" + tail)
        self.assertIn('"a": 1.235', one)
        self.assertTrue(h1.startswith(HEALTH_BEGIN + "\n## Health\n") and h1.endswith(HEALTH_END))
        two = merge_health_section(one, h2)
        self.assertEqual(two, head + cl1 + "\n\n" + h2 + "\n\n" + tail)
        # The cluster section is replaced in place: the health section stays after it.
        self.assertEqual(merge_cluster_section(two, cl2), head + cl2 + "\n\n" + h2 + "\n\n" + tail)
        self.assertEqual(merge_health_section(two, None), base)
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "r.md").write_text(two)
            self.assertEqual(existing_health_section(d / "r.md"), h2)
            self.assertEqual(existing_cluster_section(d / "r.md"), cl1)
            self.assertIsNone(existing_health_section(d / "missing.md"))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_fake_app_stamps_its_allocation(self):
        """fake-app writes the stamps the memory rounds read (skipped when not built)."""
        if not FAKE_APP.exists():
            self.skipTest(f"{FAKE_APP} not built")
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            stamp = d / "stamp"
            subprocess.run([str(FAKE_APP), "--quiet", "--stamp", str(stamp), "--allocate", "8",
                            "--allocate-after", "20", "--exit-after", "500"],
                           stdout=subprocess.DEVNULL, timeout=30)
            r = restart_after_allocation(*parse_health_stamps(stamp.read_text()))
            self.assertIsNotNone(r["pid"])
            self.assertEqual(r["alloc_pid"], r["pid"])
            self.assertGreaterEqual(r["alloc_ms"], 0)
            self.assertIsNone(r["restart_ns"])
        finally:
            shutil.rmtree(d, ignore_errors=True)
