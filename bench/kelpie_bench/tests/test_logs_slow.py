"""Self-test of the slow-log-file part: the FIFO reader's line check (fed a real FIFO), its
table and notes."""

from __future__ import annotations

import os
import tempfile
import time
import unittest
from pathlib import Path

from ..logs_slow import FifoReader, slow_disk_notes, slow_disk_table


def line(n: int) -> bytes:
    return b"line %07d %s\n" % (n, b"y" * 77)


class SlowLogFileTest(unittest.TestCase):
    def test_the_reader_counts_lost_doubled_reordered_and_malformed_lines(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            fifo = Path(d) / "f.fifo"
            os.mkfifo(fifo)
            reader = FifoReader(fifo, 6)
            reader.start()
            w = os.open(fifo, os.O_WRONLY)
            # 1, 2, 2 (doubled), 5 (3 and 4 lost), garbage, 1 (out of order), 6 (the last).
            os.write(w, line(1) + line(2) + line(2) + line(5) + b"junk\n" + line(1) + line(6))
            deadline = time.time() + 10
            while reader.last_line_at is None and time.time() < deadline:
                time.sleep(0.01)
            reader.stop.set()
            reader.join(5)
            os.close(w)
        self.assertIsNotNone(reader.last_line_at)
        self.assertEqual((reader.lost, reader.dups, reader.out_of_order, reader.invalid),
                         (2, 1, 1, 1))
        self.assertEqual(reader.next, 7)

    def test_table_and_notes(self) -> None:
        kel = {"lost": 0, "duplicates": 0, "out_of_order": 0, "invalid": 0,
               "app_printed_s": 4.866, "last_line_s": 5.69, "daemon_rss_growth_mb": 17.5}
        table = slow_disk_table({"pm2": {"error": "RuntimeError: boom"}, "kelpie": kel})
        self.assertIn("| lines lost / duplicated / out of order / malformed | RuntimeError: "
                      "boom | 0 / 0 / 0 / 0 |", table)
        self.assertIn("| app's own time to print everything | n/a | 4.87 s |", table)
        self.assertIn("| daemon RSS growth (peak minus before the start) | n/a | 17.5 MB |",
                      table)
        self.assertNotIn("PM2 lost", slow_disk_notes({"kelpie": kel}))
        self.assertIn("PM2 lost 1,234 lines", slow_disk_notes({"pm2": {"lost": 1234}}))
