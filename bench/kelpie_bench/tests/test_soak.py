"""Self-test of the soak scenario's table, section and apps."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

from ..managers import Kelpie
from ..report import README_LINE, merge_section
from ..scale import SOAK_APPS, soak_apps
from ..soak_report import SOAK_BEGIN, SOAK_END, build_soak_table, soak_section


class SoakTest(unittest.TestCase):
    KELPIE = {"sh": {"restarts": 12500, "counted": 11500, "cpu_ms_per_restart": 0.65,
                     "anon_mb_at_warm": 3.1, "anon_mb_at_end": 3.2, "anon_kb_per_restart": 0.009,
                     "anon_mb_at": {"1000": 3.0, "2000": 3.1, "6000": 3.2, "12000": 3.3},
                     "anon_mb_max": 3.4, "seconds": 180.0},
              "node": {"error": "RuntimeError: boom"}}

    def test_the_table_has_a_row_per_manager_and_kind_with_memory_at_each_doubling(self):
        table = build_soak_table(self.KELPIE, {"node": {"restarts": 900, "seconds": 60.0}})
        self.assertIn("| Kelpie | `sh -c 'echo out; echo err >&2; sleep 0.3..0.6; exit 1'` "
                      "| 12500 (180 s) | 0.65 ms | 3.10 → 3.20 MB (0.009 KB) "
                      "| 3.0 / 3.1 / - / 3.2 / - / 3.3 | 3.4 MB (ok) | +3.1 % (ok) |", table)
        self.assertIn("| Kelpie | Node: `console.log`, `console.error`, `process.exit(1)` after "
                      "0.3..0.6 s | RuntimeError: boom |", table)
        self.assertIn("| PM2 7 | Node: ", table)
        self.assertIn("| 900 (60 s) | - ms |", table)

    def test_the_issues_memory_checks_say_over(self):
        over = {"sh": {"anon_mb_at": {"6000": 4.0, "12000": 4.4}, "anon_mb_max": 8.5}}
        table = build_soak_table(over, None)
        self.assertIn("| 8.5 MB (over) | +10.0 % (over) |", table)

    def test_the_section_is_replaced_in_place(self):
        report = f"# Results\n\n{README_LINE}\n"
        once = merge_section(report, SOAK_BEGIN, SOAK_END, soak_section("T1", "run", {}))
        twice = merge_section(once, SOAK_BEGIN, SOAK_END, soak_section("T2", "run", {}))
        self.assertEqual(twice.count(SOAK_END), 1)
        self.assertIn("T2", twice)
        self.assertNotIn("T1", twice)

    def test_each_kind_makes_its_apps_printing_ones_exit_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            m = Kelpie(Path(tmp))
            for kind in ("quiet", "printing", "sh", "sh-slow", "node"):
                apps = soak_apps(m, kind)
                self.assertEqual(len(apps), SOAK_APPS)
                self.assertEqual(apps[0]["restart_delay"], 0)
            self.assertIn("exit 1", soak_apps(m, "sh")[0]["args"][1])
            self.assertIn("sleep 0.3;", soak_apps(m, "sh")[0]["args"][1])
            self.assertIn("sleep 1.4;", soak_apps(m, "sh-slow")[0]["args"][1])
            self.assertIn("process.exit(1)", (m.workdir / "soak-crash.js").read_text())
            self.assertIn("--exit-code", soak_apps(m, "printing")[0]["args"])


if __name__ == "__main__":
    unittest.main()
