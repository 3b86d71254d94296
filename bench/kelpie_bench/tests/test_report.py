"""The full report keeps every marked section of the file it replaces (issue 50: the
nodemetrics section, measured only with --only nodemetrics, was dropped by a full run)."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

from ..report import README_LINE, keep_missing_sections, keep_sections_of

REPO = Path(__file__).resolve().parents[3]


def section(name: str, body: str) -> str:
    return f"<!-- bench:{name}:begin -->\n## {name}\n\n{body}\n<!-- bench:{name}:end -->"


class ReportTest(unittest.TestCase):
    def test_sections_the_new_report_lacks_are_put_back_before_the_readme_line(self):
        previous = ("# old\n\n" + section("logs", "old logs") + "\n\n" + section("nodemetrics", "NM")
                    + "\n\n" + section("future", "F") + "\n\n" + README_LINE + "\n")
        new = "# new\n\n" + section("logs", "new logs") + "\n\n" + README_LINE + "\n\nraw\n"
        kept = keep_missing_sections(new, previous)
        self.assertIn("new logs", kept)  # what the run measured wins
        self.assertNotIn("old logs", kept)
        self.assertLess(kept.index("new logs"), kept.index("NM"))
        self.assertLess(kept.index("NM"), kept.index("## future"))
        self.assertLess(kept.index("## future"), kept.index(README_LINE))
        self.assertEqual(keep_missing_sections(kept, previous), kept)  # once only

    def test_every_section_of_results_md_survives_a_rewrite(self):
        results = (REPO / "bench" / "RESULTS.md").read_text()
        names = [line.split(":")[1] for line in results.splitlines()
                 if line.startswith("<!-- bench:") and line.endswith(":begin -->")]
        self.assertIn("nodemetrics", names)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "RESULTS.md"
            path.write_text("# Kelpie vs PM2: benchmark results\n\n" + README_LINE + "\n")
            keep_sections_of(path, results)
            text = path.read_text()
        for name in names:
            begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
            self.assertEqual(text[text.index(begin):text.index(end)],
                             results[results.index(begin):results.index(end)], name)
