"""Logs scenario, second part: an app that writes faster than its log file takes. The log file
is a FIFO that this script reads at a fixed rate (SLOW_RATE bytes/s), the same real file for
both managers: writable, only slower than the app, as a slow disk. The app prints SLOW_LINES
lines as fast as it can (1000 per write(), waiting for 'drain') and reports how long it took.

Measured per manager: lines lost, duplicated or out of order at the reader; the app's own time
to print everything (how long its writes were held back); the time until the last line reached
the reader; the daemon's RSS growth (peak sampled every 50 ms, minus before the start)."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from .common import log
from .managers import Manager
from .processes import read_rss_mb

SLOW_LINES = 500_000
SLOW_RATE = 8_000_000  # bytes/s the "disk" (the FIFO's reader) takes
SLOW_APP = "slowdisk"

# Line n (1-based): "line " + n (7 digits) + " " + 77 x "y" + "\n" (91 bytes).
SLOW_APP_JS = r"""// Kelpie bench: print LINES lines as fast as the stdout pipe takes them (1000 lines per
// write(), waiting for 'drain'), then report on stderr how long that took.
const LINES = %d;
const PER = 1000;
const pad = "y".repeat(77);
const t0 = process.hrtime.bigint();
let i = 1;
function pump() {
  while (i <= LINES) {
    const end = Math.min(LINES, i + PER - 1);
    let chunk = "";
    for (; i <= end; i++) chunk += "line " + String(i).padStart(7, "0") + " " + pad + "\n";
    if (!process.stdout.write(chunk)) {
      process.stdout.once("drain", pump);
      return;
    }
  }
  // The last write is handed to the pipe (synchronous for pipes on Linux) once this runs.
  process.stdout.write("", () => {
    process.stderr.write("printed_ms " + Number((process.hrtime.bigint() - t0) / 1000000n) + "\n");
  });
}
pump();
"""
LINE_RE = re.compile(rb"^line (\d{7}) y{77}$")


class FifoReader(threading.Thread):
    """Reads the FIFO at most SLOW_RATE bytes/s and checks the lines as they come."""

    def __init__(self, path: Path, n_lines: int):
        super().__init__(daemon=True)
        # Non-blocking open: the managers open it for writing once it has a reader.
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.n_lines = n_lines
        self.next = 1
        self.lost = self.dups = self.out_of_order = self.invalid = 0
        self.bytes = 0
        self.last_line_at: float | None = None
        self.stop = threading.Event()

    def check(self, line: bytes) -> None:
        m = LINE_RE.match(line)
        if not m:
            self.invalid += 1
            return
        n = int(m.group(1))
        if n == self.next:
            self.next += 1
        elif n > self.next:
            self.lost += n - self.next
            self.next = n + 1
        elif n == self.next - 1:
            self.dups += 1
        else:
            self.out_of_order += 1
        if n == self.n_lines:
            self.last_line_at = time.perf_counter()

    def run(self) -> None:
        t0, rest = time.perf_counter(), b""
        while not self.stop.is_set():
            ahead = self.bytes / SLOW_RATE - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            if not data:  # no writer (yet, or any more)
                time.sleep(0.005)
                continue
            self.bytes += len(data)
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            for line in lines:
                self.check(line)
        os.close(self.fd)


def bench_slow_disk(m: Manager, script: Path, n_lines: int, timeout: float = 180) -> dict:
    """One run of the app under `m` with its stdout log the FIFO."""
    fifo = m.root / "slow.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    m.app_markers = (*m.app_markers, str(script))
    dpid = m.start_daemon("logs to a slow file")
    reader = FifoReader(fifo, n_lines)
    reader.start()
    rss0 = read_rss_mb(dpid) if dpid else None
    peak = rss0
    err_log = m.root / "slow-err.log"
    t0 = time.perf_counter()
    m.run("start", str(script), "--name", SLOW_APP, "--interpreter", "node", "--no-autorestart",
          "-o", str(fifo), "-e", str(err_log))
    printed_ms = None
    deadline = t0 + timeout
    seen, seen_at = -1, t0
    while time.perf_counter() < deadline:
        rss = read_rss_mb(dpid) if dpid else None
        if rss is not None and (peak is None or rss > peak):
            peak = rss
        if printed_ms is None and err_log.exists():
            found = re.search(rb"printed_ms (\d+)", err_log.read_bytes())
            printed_ms = int(found.group(1)) if found else None
        if reader.last_line_at is not None and printed_ms is not None:
            break
        if reader.bytes != seen:
            seen, seen_at = reader.bytes, time.perf_counter()
        elif printed_ms is not None and time.perf_counter() - seen_at > 20:
            break  # the app is done and nothing came for 20 s: the rest is lost
        time.sleep(0.05)
    # Lines still on their way after the deadline count as lost.
    reader.stop.set()
    reader.join(timeout=5)
    lost = reader.lost + max(0, n_lines + 1 - reader.next)
    res = {
        "lost": lost, "duplicates": reader.dups, "out_of_order": reader.out_of_order,
        "invalid": reader.invalid,
        "app_printed_s": None if printed_ms is None else printed_ms / 1000,
        "last_line_s": None if reader.last_line_at is None else reader.last_line_at - t0,
        "daemon_rss_before_mb": rss0, "daemon_rss_peak_mb": peak,
        "daemon_rss_growth_mb": None if rss0 is None or peak is None else peak - rss0,
    }
    log(f"{m.label}: slow log file: lost {lost}, app printed in {res['app_printed_s']} s, last "
        f"line at {res['last_line_s']} s, daemon RSS {rss0} -> peak {peak} MB")
    m.run("delete", SLOW_APP, check=False)
    return res


def slow_disk_table(d: dict) -> str:
    """d: {"pm2": result or None, "kelpie": result}."""
    p, k = d.get("pm2") or {}, d.get("kelpie") or {}

    def cell(r: dict, key: str, unit: str, digits: int = 2) -> str:
        v = r.get(key)
        return "n/a" if v is None else f"{v:.{digits}f} {unit}".strip()

    rows = [("lines lost / duplicated / out of order / malformed",
             lambda r: r.get("error", "n/a") if "lost" not in r else
             f"{r['lost']} / {r['duplicates']} / {r['out_of_order']} / {r['invalid']}"),
            ("app's own time to print everything", lambda r: cell(r, "app_printed_s", "s")),
            ("time until the last line is in the file", lambda r: cell(r, "last_line_s", "s")),
            ("daemon RSS growth (peak minus before the start)",
             lambda r: cell(r, "daemon_rss_growth_mb", "MB", 1))]
    mb = SLOW_LINES * 91 / 1e6
    lines = [f"**An app faster than its log file** ({SLOW_LINES:,} lines, {mb:.1f} MB, into a "
             f"FIFO read at {SLOW_RATE / 1e6:.0f} MB/s):", "",
             "| Metric | PM2 7 | Kelpie |", "|---|---:|---:|"]
    lines += [f"| {name} | {f(p)} | {f(k)} |" for name, f in rows]
    return "\n".join(lines)


def slow_disk_notes(d: dict) -> str:
    """What the slow-file table measures and why the managers differ; d as slow_disk_table's."""
    notes = (
        "An app faster than its log file: the app's stdout log (`-o`) is a FIFO that the bench "
        f"reads at {SLOW_RATE / 1e6:.0f} MB/s, a real file that takes every write but slower than "
        "the app, as a slow disk; one run per manager. PM2 reads the app's pipe at full speed and "
        "keeps what the file has not taken in its daemon's memory (a Node stream buffers without "
        "bound): the app is never held back, the daemon grows by about what the file is behind. "
        "Kelpie only looks at the app's pipe and takes bytes out of it by writing them to the "
        "file (spliced from the pipe into the FIFO): what the file has not taken stays in the "
        "pipe (1 MiB), and then the app's writes wait (its own time to print becomes about the "
        "file's time, less what the pipe holds) while the daemon's memory stays flat. Kelpie "
        "drops (and counts) only for a file that fails or takes nothing for about 5 s.")
    p = d.get("pm2") or {}
    if p.get("lost"):
        notes += (f" PM2 lost {p['lost']:,} lines in this run: the end of the output never "
                  "reached the file (nothing more came in the 20 s after the last byte).")
    return notes


def write_slow_app(tmp: Path) -> Path:
    path = tmp / "slowdisk.js"
    path.write_text(SLOW_APP_JS % SLOW_LINES)
    return path
