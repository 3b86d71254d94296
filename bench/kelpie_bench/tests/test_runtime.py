"""Self-test of the runtime scenario's helpers."""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest
from pathlib import Path

from ..cluster_report import cluster_section
from ..health_report import health_section, merge_health_section
from ..report import README_LINE
from ..runtime import runtime_ecosystem, summarize_runtime
from ..runtime_procs import (
    dir_footprint, is_runtime_app, parse_proc_stat, process_table, tree_below,
)
from ..runtime_report import (
    build_runtime_table, existing_runtime_section, merge_runtime_section, RUNTIME_BEGIN,
    runtime_section,
)


class RuntimeTest(unittest.TestCase):
    APP = "/x/target/static/fake-app"

    def table(self) -> dict[int, tuple[int, str, str]]:
        """PID 1 (100) with two apps, one app's orphan (alive), two zombies, an app's child
        (below it), and processes outside the namespace."""
        a = self.APP
        return {
            99: (1, "S", "unshare --pid --fork --mount-proc kelpie runtime e.json"),
            100: (99, "S", "kelpie runtime e.json"),
            101: (100, "S", f"{a} --orphans 5 --orphan-life 200"),
            102: (100, "S", f"{a} --orphans 5 --orphan-life 200"),
            103: (100, "S", f"{a} --quiet --exit-after 200 --exit-code 0"),
            104: (100, "Z", ""),
            105: (100, "Z", ""),
            106: (101, "S", f"{a} --orphan-parent 200"),
            200: (1, "S", f"{a}"),  # another namespace's app
            201: (200, "Z", ""),
        }

    def test_parse_proc_stat(self):
        self.assertEqual(parse_proc_stat("12 (fake-app) S 1 12 12 0 -1"), ("S", 1))
        self.assertEqual(parse_proc_stat("7 (a b) (c)) Z 100 7 7 0"), ("Z", 100))

    def test_tree_apps_and_zombies(self):
        t = self.table()
        below = tree_below(t, 100)
        self.assertEqual(below, [101, 102, 103, 104, 105, 106])
        apps = [p for p in below if t[p][1] != "Z" and is_runtime_app(t[p][2], self.APP)]
        self.assertEqual(apps, [101, 102])
        self.assertEqual(sum(1 for p in below if t[p][1] == "Z"), 2)
        self.assertEqual(tree_below(t, 999), [])
        self.assertTrue(is_runtime_app(f"{self.APP}", self.APP))
        self.assertFalse(is_runtime_app("node /x/other.js", self.APP))

    def test_process_table_sees_this_process(self):
        t = process_table()
        self.assertIn(os.getpid(), t)
        self.assertEqual(t[os.getpid()][0], os.getppid())
        self.assertIn("run.py", t[os.getpid()][2])

    def test_ecosystem(self):
        e = runtime_ecosystem(3, self.APP, ["--orphans", "5"])
        self.assertEqual([a["name"] for a in e["apps"]], ["app0", "app1", "app2"])
        self.assertEqual(e["apps"][1], {"name": "app1", "script": self.APP, "interpreter": "none",
                                        "args": ["--orphans", "5"], "autorestart": True})

    def test_dir_footprint(self):
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "sub").mkdir()
            (d / "a").write_bytes(b"x" * 1000)
            (d / "sub" / "b").write_bytes(b"y" * 24)
            os.link(d / "a", d / "sub" / "a-link")      # the same inode: counted once
            os.symlink(d / "a", d / "sub" / "a-sym")    # not followed
            self.assertEqual(dir_footprint(d), (1024, 2))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def round_row(self, r: int, stop: float | None, zombies: int | None = None,
                  code: int = 0) -> dict:
        row = {"round": r, "start_s": 0.05, "pid1_rss_mb": 6.0, "stop_s": stop, "exit_code": code}
        if zombies is not None:
            row |= {"zombies": zombies, "processes": 10 + zombies, "orphans_spawned": 50}
        if stop is None:
            row["error"] = "still running"
        return row

    def test_summary_and_table(self):
        kel = summarize_runtime({
            "stop": [self.round_row(0, 0.02), self.round_row(1, 0.016), self.round_row(2, 0.03)],
            "orphans": [self.round_row(0, 0.02, 0), self.round_row(1, 0.03, 0)]})
        self.assertAlmostEqual(kel["stop"]["stop_s"], 0.02)
        self.assertEqual((kel["stop"]["exit_0"], kel["stop"]["ok"]), (3, 3))
        self.assertEqual((kel["orphans"]["zombies"], kel["orphans"]["zombies_max"]), (0, 0))
        pm2 = summarize_runtime({
            "stop": [self.round_row(0, 0.3, code=1), self.round_row(1, None)],
            "orphans": [self.round_row(0, 0.35, 50), self.round_row(1, 0.34, 48)]})
        self.assertEqual((pm2["stop"]["ok"], pm2["stop"]["exit_codes"]), (1, [1]))
        sizes = {"kelpie_bytes": 7 * 1024 * 1024, "kelpie_file": "static-pie linked, stripped",
                 "node_bytes": 90 * 1024 * 1024, "pm2_modules_bytes": 14 * 1024 * 1024,
                 "pm2_modules_files": 3000}
        t = build_runtime_table(pm2, kel, sizes)
        self.assertIn("| 300 ms, 1 round(s) failed | 20 ms (16–30) | 15.0x | - |", t)
        self.assertIn("| 0 in 0 of 1 (else 1) | 0 in 3 of 3 | - | Kelpie 0 (met) |", t)
        self.assertIn("| 49 (worst 50) | 0 (worst 0) | - | Kelpie 0 (met) |", t)
        self.assertIn("| 50 | 50 | - | 50 (= 10 apps × 5", t)
        self.assertIn("| - | 7.0 MB | - | Kelpie < 15 MB (met) |", t)
        self.assertIn("| 14.0 MB (3,000 files) | 7.0 MB (1 file) | 2.0x | - |", t)
        self.assertIn("| 104.0 MB | 7.0 MB | 14.9x | - |", t)
        # A zombie left by Kelpie, a binary over the target, --kelpie-only.
        bad = summarize_runtime({"stop": [self.round_row(0, 0.02)],
                                 "orphans": [self.round_row(0, 0.02, 1)]})
        t = build_runtime_table(None, bad, sizes | {"kelpie_bytes": 16 * 1024 * 1024})
        self.assertIn("| n/a | 1 (worst 1) | - | Kelpie 0 (missed) |", t)
        self.assertIn("Kelpie < 15 MB (missed)", t)
        self.assertEqual(t.count("\n"), 11)

    def test_merge_runtime_section(self):
        head = "# Kelpie vs PM2: benchmark results\n\n| core |\n\n"
        tail = README_LINE + "\n\n<details>raw</details>\n"
        cl = cluster_section("| c |", "cluster notes", "Command: c", {})
        h = health_section("| h |", "health notes", "Command: h", {})
        r1 = runtime_section("| r1 |", "notes 1", "Command: one", {"runs": {"x": 0.12345}})
        r2 = runtime_section("| r2 |", "notes 2", "Command: two", {})
        base = head + cl + "\n\n" + h + "\n\n" + tail
        one = merge_runtime_section(base, r1)
        self.assertEqual(one, head + cl + "\n\n" + h + "\n\n" + r1 + "\n\n" + tail)
        self.assertIn('"x": 0.123', one)
        self.assertTrue(r1.startswith(RUNTIME_BEGIN + "\n## Runtime (containers)\n"))
        two = merge_runtime_section(one, r2)
        self.assertEqual(two, head + cl + "\n\n" + h + "\n\n" + r2 + "\n\n" + tail)
        h2 = health_section("| h2 |", "health notes", "Command: h2", {})
        self.assertEqual(merge_health_section(two, h2),
                         head + cl + "\n\n" + h2 + "\n\n" + r2 + "\n\n" + tail)
        self.assertEqual(merge_runtime_section(two, None), base)
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "r.md").write_text(two)
            self.assertEqual(existing_runtime_section(d / "r.md"), r2)
            self.assertIsNone(existing_runtime_section(d / "missing.md"))
        finally:
            shutil.rmtree(d, ignore_errors=True)
