"""Self-test of the reliability scenario's helpers."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from ..processes import free_port
from ..reliability import connect_as
from ..reliability_apps import (
    burst_line, check_burst_lines, classify_after_kill, REL_BURST_LINES, REL_OTHER_UID,
    REL_SCRIPTS, tick_gaps,
)
from ..reliability_report import (
    build_reliability_table, merge_reliability_section, REL_BEGIN, REL_END, reliability_section,
)
from ..reliability_tools import first_message, http_result, summarize_load
from ..report import README_LINE


class ReliabilityTest(unittest.TestCase):
    def test_burst_lines(self):
        self.assertEqual(len(burst_line(1)), 64)
        data = b"".join(burst_line(n) for n in range(1, 11))
        self.assertEqual(check_burst_lines(data, 10),
                         {"distinct": 10, "lost": 0, "duplicates": 0, "malformed": 0})
        # A date prefix is allowed; a duplicate, a torn line and a missing one are counted.
        data = (b"2026-01-01T00:00:00: " + burst_line(1) + burst_line(2) + burst_line(2)
                + burst_line(3)[:30] + b"\n" + burst_line(5))
        self.assertEqual(check_burst_lines(data, 5),
                         {"distinct": 3, "lost": 2, "duplicates": 1, "malformed": 1})
        self.assertEqual(check_burst_lines(b"tick 1 2\n", 3)["lost"], 3)

    def test_burst_app(self):
        if not shutil.which("node"):
            self.skipTest("node not found")
        with tempfile.TemporaryDirectory() as d:
            script, trigger, done = Path(d) / "b.js", Path(d) / "t", Path(d) / "done"
            script.write_text(REL_SCRIPTS["burst"][1])
            trigger.touch()
            p = subprocess.Popen(["node", str(script), str(trigger), str(done)],
                                 stdout=subprocess.PIPE)
            try:
                out = b""
                deadline = time.monotonic() + 30
                while len(out) < REL_BURST_LINES * 64 and time.monotonic() < deadline:
                    out += p.stdout.read1(1 << 20)
                while not done.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                p.kill()
                p.wait()
            self.assertEqual(len(out), REL_BURST_LINES * 64)
            self.assertEqual(check_burst_lines(out, REL_BURST_LINES)["lost"], 0)
            self.assertEqual(done.read_text().split()[0], "0")

    def test_tick_gaps(self):
        data = b"tick 7 0\ntick 7 1\ntick 9 0\ntick 7 4\n2026: tick 7 5\n"
        self.assertEqual(tick_gaps(data, 7), (4, 2))
        self.assertEqual(tick_gaps(data, 9), (1, 0))
        self.assertEqual(tick_gaps(data, 8), (0, 0))

    def test_classify(self):
        before = {"a": 10, "b": 11, "c": 12, "d": 13, "e": 14}
        after = {"a": (10, "online"), "b": (21, "online"), "c": (12, "online"),
                 "d": (None, "stopped")}
        self.assertEqual(classify_after_kill(before, after, {10, 11}),
                         {"apps": 5, "listed": 4, "adopted": 1, "restarted": 1, "lost": 3})
        self.assertEqual(classify_after_kill(before, {}, set())["lost"], 5)

    def test_summarize_load(self):
        s = [(0.5, "ok"), (0.9, "refused"), (1.1, "refused"), (1.5, "ok"), (2.0, "reset")]
        r = summarize_load(s, 1.0)
        self.assertEqual((r["requests"], r["ok"], r["failed"], r["failed_before_kill"]),
                         (5, 2, 3, 1))
        self.assertEqual(r["by_kind"], {"refused": 2, "reset": 1})
        self.assertAlmostEqual(r["first_fail_after_kill_s"], 0.1)
        self.assertAlmostEqual(r["last_fail_after_kill_s"], 1.0)
        self.assertIsNone(summarize_load([(1.0, "ok")], 0.5)["first_fail_after_kill_s"])

    def test_first_message(self):
        self.assertEqual(first_message("\x1b[32m[PM2]\x1b[39m Resurrecting\n[PM2] Error: bad\n"),
                         "[PM2] Error: bad")
        self.assertEqual(first_message("\n\n  started 3 apps \n"), "started 3 apps")
        self.assertEqual(first_message(""), "")

    def test_connect_as(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        with tempfile.TemporaryDirectory() as d, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            path = Path(d) / "s.sock"
            srv.bind(str(path))
            srv.listen(4)
            self.assertEqual(connect_as(0, path), "connected")
            self.assertTrue(connect_as(REL_OTHER_UID, path).startswith("PermissionError"))
            self.assertTrue(connect_as(0, Path(d) / "none").startswith("FileNotFoundError"))

    def test_http_result_refused(self):
        self.assertEqual(http_result(free_port(), timeout=0.5), "refused")

    def _sample(self) -> dict:
        return {
            "kill": {"apps": 6, "alive_after": 6, "burst": "completed", "burst_done_s": 0.05,
                     "burst_failed_writes": 0, "listed": 6, "adopted": 6, "restarted": 0,
                     "lost": 0, "next_s": 0.08, "ticks_missing": 0, "ticks_logged": 1200,
                     "burst_log": {"distinct": REL_BURST_LINES, "lost": 0, "duplicates": 0,
                                   "malformed": 0}},
            "cluster": {"requests": 900, "ok": 900, "failed": 0, "by_kind": {},
                        "first_fail_after_kill_s": None, "last_fail_after_kill_s": None,
                        "serving_after": True, "instances_listed_after": 2,
                        "same_pids_after": [5, 6], "instances_alive_after": 2,
                        "instances_before": [5, 6]},
            "socket": {"home_mode": "drwx------", "sockets": {"kelpie.sock": "srwx------"},
                       "other_connect": "PermissionError: Permission denied",
                       "other_cli": {"exit": 1, "listed_apps": [], "message": "no | access"}},
            "secrets": {"jlist_shows": False, "describe_shows": False, "env_exit": 2,
                        "env_shows": False,
                        "jlist_show_secrets_shows": True, "dump": "dump.json",
                        "dump_mode": "-rw-------", "bak_mode": "-rw-------",
                        "dump_has_secret": True, "resurrect_exit": 0, "back_online": 3,
                        "apps": 3, "resurrect_message": "dump.json is corrupt: using the .bak"},
            "stubborn": {"stop_s": 1.7, "gone": 3, "rounds": 3},
            "many": {"apps": 200, "start_s": 0.2, "list_s": 0.01, "jlist_s": 0.012,
                     "restart_s": 0.5, "delete_s": 0.1, "raw": [{}]},
        }

    def test_table(self):
        kel = self._sample()
        pm2 = self._sample()
        pm2["kill"].update(alive_after=0, burst="died", listed=0, adopted=0, lost=6)
        pm2["cluster"] = {"error": "RuntimeError: not ready\nat all"}
        pm2["many"].update(restart_s=None, raw=[{"restart_s_timeout": True}])
        del pm2["stubborn"]
        t = build_reliability_table(kel, pm2)
        lines = t.splitlines()
        self.assertEqual(lines[0], "| Fault | Kelpie | PM2 7 |")
        for x in lines[2:]:  # every row has exactly 3 cells (no stray "|")
            self.assertEqual(len(re.split(r"(?<!\\)\|", x)), 5, x)
        self.assertIn("6 of 6 listed: 6 adopted (same pid), 0 restarted, 0 lost", t)
        self.assertIn("**app died**", t)
        self.assertIn("error: RuntimeError: not ready at all", t)
        self.assertIn("not run", t)
        self.assertIn("n/a (1 round(s) over", t)
        self.assertIn("masked; `--show-secrets` prints it", t)
        self.assertIn("no such command (exit 2)", t)
        t2 = build_reliability_table(kel, None)
        self.assertIn("not run (`--kelpie-only`)", t2)

    def test_merge_section(self):
        report = "# R\n\nx\n\n" + README_LINE + "\n"
        sec = reliability_section("T", "N", "run", {"a": 1.23456})
        merged = merge_reliability_section(report, sec)
        self.assertIn(REL_BEGIN, merged)
        self.assertLess(merged.index(REL_END), merged.index(README_LINE))
        self.assertIn('"a": 1.235', merged)
        again = merge_reliability_section(merged, reliability_section("T2", "N", "run", {}))
        self.assertEqual(again.count(REL_BEGIN), 1)
        self.assertIn("T2", again)
        self.assertNotIn("\nT\n", again)
