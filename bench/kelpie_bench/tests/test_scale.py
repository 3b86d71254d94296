"""Self-test of the scale scenario's table and section, and of its descriptor count."""

from __future__ import annotations

import os
import unittest

from ..report import README_LINE
from ..processes import cpu_ms_between, thread_cpu_ns
from ..scale import descriptors
from ..scale_report import (
    SCALE_BEGIN, SCALE_END, build_scale_table, merge_scale_section, scale_section,
)


class ScaleTest(unittest.TestCase):
    KELPIE = {"fresh_anon_mb": 1.0,
              "apps": {300: {"start_s": 0.42, "start_cpu_ms_per_app": 0.73, "jlist_ms": 21.0,
                             "fds": 2400, "fds_per_app": 8.0, "keeper_fds": 1205,
                             "anon_mb": 7.3, "anon_kb_per_app": 18.5, "idle_cpu_pct": 0.2,
                             "stop_all_s": 0.1, "anon_after_delete_mb": 2.0},
                       3000: {"error": "RuntimeError: boom"}},
              "new_daemon": {3000: {"start_s": 2.5, "anon_mb": 42.0, "anon_kb_per_app": 13.9}},
              "soak": {"restarts": 12000, "counted": 11000, "cpu_ms_per_restart": 1.8,
                       "anon_mb_at_warm": 7.0, "anon_mb_at_end": 7.0, "anon_kb_per_restart": 0.0,
                       "seconds": 180.0}}

    def test_the_table_has_a_row_per_manager_and_count_and_says_the_soak(self):
        table = build_scale_table(self.KELPIE, {"apps": {1000: {"start_s": 11.3}}})
        self.assertIn("| Kelpie, 300 | 0.42 s | 0.73 ms | 21 ms | 2400 (8.0) | 1205 | 7.3 MB "
                      "(18.5 KB) | 0.2 % | 0.10 s | 2.0 MB (2.0x) |", table)
        self.assertIn("| Kelpie, 3000 | RuntimeError: boom |", table)
        self.assertIn("| PM2 7, 1000 | 11.30 s | - ms |", table)
        self.assertIn("| Kelpie, new daemon, 3000 | 2.50 s |", table)
        self.assertIn("| 42.0 MB (13.9 KB) |", table)
        self.assertIn("1.80 ms of daemon CPU per restart", table)

    def test_the_section_goes_before_the_readme_line_then_is_replaced_in_place(self):
        report = f"# Results\n\n{README_LINE}\n"
        once = merge_scale_section(report, scale_section("T1", "run", {}))
        self.assertLess(once.index(SCALE_BEGIN), once.index(README_LINE))
        twice = merge_scale_section(once, scale_section("T2", "run", {}))
        self.assertEqual(twice.count(SCALE_END), 1)
        self.assertIn("T2", twice)
        self.assertNotIn("T1", twice)

    def test_descriptors_are_counted_from_proc(self):
        # Each listing holds the directory open while it reads: both count it.
        self.assertEqual(descriptors(os.getpid()), len(os.listdir("/proc/self/fd")))
        self.assertIsNone(descriptors(None))


class ThreadCpuTest(unittest.TestCase):
    def test_this_process_threads_are_read_to_the_nanosecond(self):
        before = thread_cpu_ns(os.getpid())
        self.assertIsNotNone(before)
        sum(i * i for i in range(200_000))  # some CPU on this thread
        after = thread_cpu_ns(os.getpid())
        spent = cpu_ms_between(before, after)
        self.assertGreater(spent, 0.0)
        self.assertLess(spent, 10_000.0)

    def test_new_threads_count_whole_and_ended_ones_not_at_all(self):
        before = {1: 5_000_000, 2: 1_000_000}
        after = {1: 7_000_000, 3: 500_000}  # 2 ended, 3 is new
        self.assertAlmostEqual(cpu_ms_between(before, after), 2.5)
        self.assertIsNone(cpu_ms_between(None, after))
