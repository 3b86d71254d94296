"""Self-test of the log line counter: synthetic log files in a temp dir."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from ..logfiles import (
    check_log_lines, LineCounter, list_log_files, log_line, LOG_PAD, parse_log_line,
)
from ..logs import IDLE_CAP_S, IDLE_WINDOW_S, wait_daemon_idle
from ..logs_apps import LOG_VARIANTS
from ..logs_report import (
    build_logs_table, existing_logs_section, logs_notes, logs_section, merge_logs_section,
)
from ..processes import CLK_TCK, daemon_cpu_ticks
from ..report import README_LINE


class LogCounterTest(unittest.TestCase):
    N = 3000

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        self.next = 1

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def lines(self, k: int) -> bytes:
        out = b"".join(log_line(n) + b"\n" for n in range(self.next, self.next + k))
        self.next += k
        return out

    def put(self, name: str, data: bytes, mode: str = "wb") -> Path:
        p = self.dir / name
        if name.endswith(".gz"):
            p.write_bytes(gzip.compress(data))
        else:
            with open(p, mode) as f:
                f.write(data)
        return p

    def check(self, **want) -> dict:
        got = check_log_lines(self.dir, "app", self.N)
        for k, v in want.items():
            self.assertEqual(got[k], v, f"{k}: {got}")
        return got

    def test_line_format(self):
        ln = log_line(1)
        self.assertEqual(len(ln), 90)
        self.assertTrue(ln.startswith(b"line 0000001 "))
        self.assertEqual(parse_log_line(ln), 1)
        self.assertEqual(parse_log_line(log_line(9_999_999)), 9_999_999)
        self.assertIsNone(parse_log_line(ln[:-1]))
        self.assertIsNone(parse_log_line(ln.replace(b"xx", b"xy", 1)))
        self.assertIsNone(parse_log_line(b"line 0000001 " + LOG_PAD + b" 0000002"))

    def test_js_app_matches(self):
        """Each variant of the Node.js app prints exactly what the checker expects, to a pipe
        and to a file (skipped without node)."""
        if not shutil.which("node"):
            self.skipTest("node not found")
        want = b"".join(log_line(n) + b"\n" for n in range(1, 2501))
        for v in LOG_VARIANTS:
            with self.subTest(v.key):
                js = self.dir / v.filename
                js.write_text(v.js % 2500)
                out = subprocess.run(["node", str(js)], capture_output=True, timeout=60,
                                     check=True)
                self.assertEqual(out.stdout, want)
                with open(self.dir / "out.txt", "wb") as f:
                    subprocess.run(["node", str(js)], stdout=f, timeout=60, check=True)
                self.assertEqual((self.dir / "out.txt").read_bytes(), want)

    def test_live_only_and_missing_dir(self):
        self.assertEqual(LineCounter(self.dir / "nope", "app").count(), 0)
        self.assertEqual(list_log_files(self.dir / "nope", "app"), [])
        self.put("app-out.log", self.lines(1000))
        self.assertEqual(LineCounter(self.dir, "app").count(), 1000)
        self.check(lost=self.N - 1000, distinct=1000, duplicates=0, out_of_order=0, rotated=0)

    def test_rotated_plain_gz_and_order(self):
        # Written out of name order on purpose: the listing sorts them.
        self.put("app-out__2026-11-22_08-00-00.log.gz", self.lines(500))
        self.put("app-out__2026-11-22_08-00-00_001.log.gz", self.lines(500))
        self.put("app-out__2026-11-22_08-00-00_002.log", self.lines(500))
        self.put("app-out__2026-11-22_08-00-01.log", self.lines(700))
        self.put("app-out.log", self.lines(800))
        # Not ours: other stream, other app, other names.
        self.put("app-error.log", b"boom\n")
        self.put("app-error__2026-11-22_08-00-00.log", b"boom\n")
        self.put("other-out.log", b"x\n" * 10)
        self.put("app-out__garbage.log", b"x\n" * 10)
        self.put("app-out.log.1", b"x\n" * 10)
        names = [f.path.name for f in list_log_files(self.dir, "app")]
        self.assertEqual(names, ["app-out__2026-11-22_08-00-00.log.gz",
                                 "app-out__2026-11-22_08-00-00_001.log.gz",
                                 "app-out__2026-11-22_08-00-00_002.log",
                                 "app-out__2026-11-22_08-00-01.log", "app-out.log"])
        self.assertEqual(LineCounter(self.dir, "app").count(), self.N)
        self.check(lost=0, distinct=self.N, duplicates=0, out_of_order=0, invalid=0, partial=0,
                   rotated=4)

    def test_counter_value_order_beyond_999(self):
        self.put("app-out__2026-11-22_08-00-00_1000.log", self.lines(2))
        self.next = 1
        self.put("app-out__2026-11-22_08-00-00_999.log", self.lines(1))
        names = [f.path.name for f in list_log_files(self.dir, "app")]
        self.assertEqual(names[0], "app-out__2026-11-22_08-00-00_999.log")

    def test_being_compressed_counted_once(self):
        data = self.lines(1000)
        self.put("app-out__2026-11-22_08-00-00.log", data)
        self.put("app-out__2026-11-22_08-00-00.log.gz", data)
        self.put("app-out.log", self.lines(10))
        self.assertEqual(LineCounter(self.dir, "app").count(), 1010)
        self.check(duplicates=0, distinct=1010, rotated=1)

    def test_half_written_gz(self):
        data = self.lines(1000)
        whole = gzip.compress(data)
        # .log still there: it is used, the partial .gz ignored.
        self.put("app-out__2026-11-22_08-00-00.log", data)
        (self.dir / "app-out__2026-11-22_08-00-00.log.gz").write_bytes(whole[: len(whole) // 2])
        c = LineCounter(self.dir, "app")
        self.assertEqual(c.count(), 1000)
        # .log gone, .gz still partial: not counted (yet), no crash, no cache of the 0.
        (self.dir / "app-out__2026-11-22_08-00-00.log").unlink()
        self.assertEqual(c.count(), 0)
        (self.dir / "app-out__2026-11-22_08-00-00.log.gz").write_bytes(whole)
        self.assertEqual(c.count(), 1000)
        got = check_log_lines(self.dir, "app", self.N)
        self.assertEqual(got["distinct"], 1000)

    def test_incremental_across_rotation_and_compression(self):
        c = LineCounter(self.dir, "app")
        live = self.dir / "app-out.log"
        self.put("app-out.log", self.lines(100))
        self.assertEqual(c.count(), 100)
        self.put("app-out.log", self.lines(50) + log_line(self.next)[:40], "ab")
        self.assertEqual(c.count(), 150)  # a line being written is not counted
        self.put("app-out.log", log_line(self.next)[40:] + b"\n", "ab")
        self.next += 1
        self.assertEqual(c.count(), 151)
        # Rotation: rename (same inode, offset kept), new live file.
        rot = self.dir / "app-out__2026-11-22_08-00-00.log"
        live.rename(rot)
        self.put("app-out.log", self.lines(20))
        self.assertEqual(c.count(), 171)
        # Compression: .gz written, then the .log removed.
        self.put(rot.name + ".gz", rot.read_bytes())
        self.assertEqual(c.count(), 171)
        rot.unlink()
        self.assertEqual(c.count(), 171)
        # A new live file that may reuse a freed inode number: the head check resets it.
        live.unlink()
        self.put("app-out.log", self.lines(5))
        self.assertEqual(c.count(), 151 + 5)
        self.check(distinct=156, lost=self.N - 156, duplicates=0, out_of_order=0,
                   invalid=0, partial=0)

    def test_inode_reuse_same_size(self):
        c = LineCounter(self.dir, "app")
        self.put("app-out.log", self.lines(10))
        self.assertEqual(c.count(), 10)
        # Same inode, content replaced by different lines of the same length.
        with open(self.dir / "app-out.log", "r+b") as f:
            f.write(self.lines(10))
        self.put("app-out.log", self.lines(3), "ab")
        self.assertEqual(c.count(), 13)

    def test_listing_changes_while_counting(self):
        """A rotation between the listing and the reading: counted again, never twice."""
        live = self.dir / "app-out.log"
        self.put("app-out.log", self.lines(100))
        c = LineCounter(self.dir, "app")
        fired = []

        def rotate():
            if not fired:
                fired.append(1)
                live.rename(self.dir / "app-out__2026-11-22_08-00-00.log")
                self.put("app-out.log", self.lines(30))
        c._between = rotate
        self.assertEqual(c.count(), 130)
        self.assertTrue(fired)

        fired.clear()

        def compress():
            if not fired:
                fired.append(1)
                rot = self.dir / "app-out__2026-11-22_08-00-00.log"
                self.put(rot.name + ".gz", rot.read_bytes())
                rot.unlink()
        c._between = compress
        self.assertEqual(c.count(), 130)

    def test_losses_duplicates_order_garbage(self):
        a = [log_line(n) + b"\n" for n in range(1, self.N + 1)]
        del a[10:15]                    # 5 lost
        a.insert(20, a[30])             # 1 duplicate, 1 break in the order (31, then 21)
        a[100], a[101] = a[101], a[100]  # 1 out of order
        a.insert(200, b"garbage\n")     # 1 malformed
        a.insert(300, log_line(self.N + 1) + b"\n")  # out of range: malformed
        data = b"".join(a)
        half = len(data) // 2
        self.put("app-out__2026-11-22_08-00-00.log.gz", data[:half])  # cut mid-line
        self.put("app-out.log", data[half:])
        got = self.check(lost=5 + 1, duplicates=1, out_of_order=1 + 1, partial=1)
        # The torn line: its head is a partial in the rotated file, its tail a malformed line.
        self.assertEqual(got["invalid"], 2 + 1)
        self.assertEqual(LineCounter(self.dir, "app").count(), got["complete_lines"])

    def test_live_rotating_writer(self):
        """A writer thread that rotates every 256 kB and gzips the rotated files (the .gz written
        in pieces next to its .log, the .log removed after), polled meanwhile: the count never
        exceeds what was written and ends exact."""
        import threading
        total, per, limit = 60_000, 500, 256 * 1024
        written = [0]
        stop, abort = threading.Event(), threading.Event()

        def writer():
            live = self.dir / "app-out.log"
            fh = open(live, "ab")
            k = 0
            while written[0] < total and not abort.is_set():
                first = written[0] + 1
                written[0] += per  # before the write: an upper bound of what is on disk
                fh.write(b"".join(log_line(n) + b"\n" for n in range(first, first + per)))
                fh.flush()
                if fh.tell() >= limit:
                    fh.close()
                    k += 1
                    rot = self.dir / f"app-out__2026-11-22_08-00-00_{k:03d}.log"
                    live.rename(rot)
                    fh = open(live, "ab")
                    data = gzip.compress(rot.read_bytes())
                    with open(str(rot) + ".gz", "wb") as g:
                        for i in range(0, len(data), 8192):
                            g.write(data[i:i + 8192])
                            g.flush()
                    rot.unlink()
            fh.close()
            stop.set()

        c = LineCounter(self.dir, "app")
        t = threading.Thread(target=writer)
        t.start()
        polls = 0
        try:
            while not stop.is_set():
                n = c.count()
                self.assertLessEqual(n, written[0])
                polls += 1
        finally:
            abort.set()
            t.join()
        self.assertEqual(c.count(), total)
        got = check_log_lines(self.dir, "app", total)
        self.assertEqual((got["lost"], got["duplicates"], got["out_of_order"], got["invalid"]),
                         (0, 0, 0, 0), got)
        self.assertGreater(got["rotated"], 10)
        self.assertGreater(polls, 5)

    def test_wait_daemon_idle_counts_late_work(self):
        """CPU burnt by a thread after the call starts (like a gzip finishing after the last
        line landed) is counted, and the wait ends about IDLE_WINDOW_S after it stops."""
        import threading

        def burn():
            end = time.thread_time() + 0.3
            while time.thread_time() < end:
                pass
        t0 = daemon_cpu_ticks(os.getpid())
        th = threading.Thread(target=burn)
        th.start()
        ticks, waited, idle = wait_daemon_idle(os.getpid())
        th.join()
        self.assertTrue(idle)
        self.assertGreaterEqual(waited, IDLE_WINDOW_S + 0.2)
        self.assertLess(waited, IDLE_CAP_S)
        self.assertGreaterEqual((ticks - t0) / CLK_TCK, 0.25)

    def test_logs_table_renders(self):
        r = {"time_s": 1.0, "lines_per_s": 3000.0, "daemon_cpu_s": 0.5, "daemon_cpu_after_s": 0.1,
             "not_idle": 0, "lost": 0, "lost_max": 0, "duplicates": 0, "out_of_order": 0,
             "invalid": 0, "rotated": 4, "incomplete": 0, "rounds": 1}
        logs = {v.key: {"pm2": {**r, "time_s": 3.5, "daemon_cpu_s": 2.0, "rotated": 0},
                        "kelpie": r, "alone": {"time_s": 0.9, "raw": [0.9]}}
                for v in LOG_VARIANTS}
        table = build_logs_table(3000, logs)
        self.assertEqual(table.count("\n"), 1 + 7 * len(LOG_VARIANTS))
        self.assertIn("3.5x | PM2/Kelpie >= 3x (met)", table)
        self.assertIn("~3.9x best possible (PM2 / app alone)", table)
        self.assertIn("Kelpie <= 0.5x PM2's (met)", table)
        self.assertIn("PM2 3.50 s / app alone 0.90 s = 3.9x", logs_notes(3000, logs))
        logs[LOG_VARIANTS[0].key]["pm2"] = None  # --kelpie-only
        self.assertIn("| n/a |", build_logs_table(3000, logs))

    def test_logs_section_is_replaced_alone(self):
        """`--only logs` replaces its own section; the core table above it and the sections
        after it stay (and `--only core` finds it to keep)."""
        head = "# Kelpie vs PM2: benchmark results\n\n| core |\n\n"
        tail = "<!-- bench:cluster:begin -->\n| cluster |\n<!-- bench:cluster:end -->\n\n"
        tail += README_LINE + "\n"
        one = logs_section("| t1 |", "notes 1", "Command: one", {"kelpie": {"a": 1.23456}})
        two = logs_section("| t2 |", "notes 2", "Command: two", {"kelpie": {"a": 2}})
        report = head + one + "\n\n" + tail
        self.assertIn('"a": 1.235', one)
        self.assertEqual(merge_logs_section(report, two), head + two + "\n\n" + tail)
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "r.md").write_text(report)
            self.assertEqual(existing_logs_section(d / "r.md"), one)
            self.assertIsNone(existing_logs_section(d / "missing.md"))
        finally:
            shutil.rmtree(d, ignore_errors=True)
