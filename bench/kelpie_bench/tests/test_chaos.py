"""The chaos scenario reads what the test says about itself."""

import unittest

from ..chaos import chaos_section, parse_output

OUTPUT = """running 1 test
chaos: seed 42 for 600 s (replay: KELPIE_CHAOS_SEED=42)
chaos: faults injected: {"SIGSTOP daemon 1-3 s": 3, "kill -9 daemon": 5}
chaos: VIOLATION p1: process 7's line 3 after its line 5 (repeated or out of order)
chaos: 1200 lines of 9 processes checked; 14 lost from pipes left without a reader (daemon and keeper both killed); 30 dropped while the home was full; 4 processes lived through a daemon's SIGKILL with their keeper (a line lost there is a violation)
test result: FAILED.
"""


class ParseOutput(unittest.TestCase):
    def test_the_figures_and_the_violations_are_read(self):
        r = parse_output(OUTPUT, passed=False)
        self.assertEqual(r["seed"], 42)
        self.assertEqual(r["faults"], {"SIGSTOP daemon 1-3 s": 3, "kill -9 daemon": 5})
        self.assertEqual(
            (r["lines"], r["processes"], r["orphan_lost"], r["full_dropped"], r["through_kills"]),
            (1200, 9, 14, 30, 4))
        self.assertEqual(len(r["violations"]), 1)

    def test_a_failure_without_a_violation_line_keeps_the_output(self):
        r = parse_output("thread panicked at src/x.rs\n", passed=False)
        self.assertEqual(r["violations"], ["thread panicked at src/x.rs\n"])

    def test_the_section_has_its_markers_and_verdict(self):
        r = parse_output(OUTPUT, passed=False)
        r["wall_s"] = 630.0
        import datetime as dt
        text = chaos_section(r, "python3 bench/run.py --only chaos", dt.datetime(2026, 11, 25),
                             "1.0 1.0 1.0")
        self.assertTrue(text.startswith("<!-- bench:chaos:begin -->"))
        self.assertIn("**FAILED**", text)
        self.assertIn("| kill -9 daemon | 5 |", text)
        self.assertIn("1200 lines of\n9 processes checked", text)
        self.assertIn("30 dropped while the home was full", text)
        self.assertIn("4 processes lived through a daemon's SIGKILL", text)


if __name__ == "__main__":
    unittest.main()
