"""Logs scenario, reading the logs: an app's log files (live, rotated, gzipped) listed
consistently while they rotate, their lines counted cheaply (every 20 ms) and checked against
what the app printed (lost, duplicated, out of order)."""

from __future__ import annotations

import gzip
import os
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path


LOG_APP = "logspam"
LOG_LINE_LEN = 90  # bytes, without the "\n"
LOG_PAD = b"x" * 69  # "line NNNNNNN " (13) + pad (69) + " NNNNNNN" (8) = 90


def log_line(n: int) -> bytes:
    """Line n as the app prints it, without the newline (used by the self-test)."""
    d = b"%07d" % n
    return b"line " + d + b" " + LOG_PAD + b" " + d


def parse_log_line(ln: bytes) -> int | None:
    """The number of a well-formed line (without its "\\n"), else None."""
    if (len(ln) != LOG_LINE_LEN or not ln.startswith(b"line ") or ln[12:13] != b" "
            or ln[82:83] != b" " or ln[5:12] != ln[83:90] or ln[13:82] != LOG_PAD
            or not ln[5:12].isdigit()):
        return None
    return int(ln[5:12])


@dataclass(frozen=True)
class LogFile:
    path: Path
    gz: bool
    ino: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.path.name, self.ino)


class _Changed(Exception):
    """The set of log files changed while we read it (rotation, compression): read again."""


def list_log_files(logs_dir: Path, name: str, stream: str = "out") -> list[LogFile]:
    """An app's log files for one stream, oldest first: the rotated files
    `<name>-<stream>__<YYYY-MM-DD_HH-mm-ss>[_NNN].log[.gz]` by timestamp then counter, then the
    live `<name>-<stream>.log`. A rotated file present both as `.log` and `.log.gz` is being
    compressed: only the `.log` (complete, the `.gz` may not be yet) is listed."""
    live_name = f"{name}-{stream}.log"
    rx = re.compile(rf"^{re.escape(name)}-{re.escape(stream)}__"
                    r"(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})(?:_(\d+))?\.log(\.gz)?$")
    rotated: dict[tuple[str, int], LogFile] = {}
    live: LogFile | None = None
    try:
        with os.scandir(logs_dir) as it:
            for e in it:
                if e.name == live_name:
                    live = LogFile(Path(e.path), False, e.inode())
                    continue
                m = rx.match(e.name)
                if not m:
                    continue
                k = (m[1], int(m[2]) if m[2] is not None else -1)
                f = LogFile(Path(e.path), m[3] is not None, e.inode())
                prev = rotated.get(k)
                if prev is None or (prev.gz and not f.gz):
                    rotated[k] = f
    except FileNotFoundError:
        return []
    out = [rotated[k] for k in sorted(rotated)]
    if live is not None:
        out.append(live)
    return out


def _open_checked(f: LogFile):
    """Open f, making sure it is still the file that was listed (not a new one under its name)."""
    fh = open(f.path, "rb")
    if os.fstat(fh.fileno()).st_ino != f.ino:
        fh.close()
        raise _Changed()
    return fh


class LineCounter:
    """Counts the complete lines ("\\n") of an app's log files (live + rotated, gzipped or not),
    cheaply enough to be called every 20 ms: plain files are read incrementally (offset kept per
    inode, which survives the rename of a rotation), a `.gz` is decompressed once. A listing
    that changes while it is read (rotation, compression) is read again."""

    def __init__(self, logs_dir: Path, name: str, stream: str = "out"):
        self.logs_dir, self.name, self.stream = logs_dir, name, stream
        self.plain: dict[tuple[int, int], tuple[int, int, bytes]] = {}  # (dev, ino) -> off, n, head
        self.gz: dict[tuple, int] = {}
        self.last = 0
        self._between = None  # test hook: called between listing and reading

    def _count_plain(self, f: LogFile) -> int:
        with _open_checked(f) as fh:
            fd = fh.fileno()
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            off, n, head = self.plain.get(key, (0, 0, b""))
            # An inode number can be reused by a new file: its first bytes tell.
            if off > st.st_size or (head and os.pread(fd, len(head), 0) != head):
                off, n, head = 0, 0, b""
            fh.seek(off)
            while chunk := fh.read(1 << 22):
                n += chunk.count(b"\n")
                off += len(chunk)
            if len(head) < 64:
                head = os.pread(fd, 64, 0)
            self.plain[key] = (off, n, head)
            return n

    def _count_gz(self, f: LogFile) -> int:
        with _open_checked(f) as fh:
            st = os.fstat(fh.fileno())
            key = (f.path.name, st.st_ino, st.st_size, st.st_mtime_ns)
            if key in self.gz:
                return self.gz[key]
            n = 0
            try:
                with gzip.GzipFile(fileobj=fh) as g:
                    while chunk := g.read(1 << 22):
                        n += chunk.count(b"\n")
            except (EOFError, gzip.BadGzipFile, zlib.error):
                return 0  # still being written: not counted yet, read again next time
            self.gz[key] = n
            return n

    def count(self) -> int:
        for _ in range(20):
            try:
                files = list_log_files(self.logs_dir, self.name, self.stream)
                if self._between:
                    self._between()
                total = sum(self._count_gz(f) if f.gz else self._count_plain(f) for f in files)
                again = list_log_files(self.logs_dir, self.name, self.stream)
                if [f.key for f in again] != [f.key for f in files]:
                    continue
                self.last = total
                return total
            except (FileNotFoundError, _Changed):
                continue
        return self.last


def read_log_files(logs_dir: Path, name: str, stream: str = "out",
                   attempts: int = 50) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Contents of all the log files, oldest first, from one consistent listing. Returns
    ([(file name, bytes)], [files that could not be read in full])."""
    for attempt in range(attempts):
        last = attempt == attempts - 1
        files = list_log_files(logs_dir, name, stream)
        out: list[tuple[str, bytes]] = []
        bad: list[str] = []
        try:
            for f in files:
                with _open_checked(f) as fh:
                    if not f.gz:
                        out.append((f.path.name, fh.read()))
                        continue
                    try:
                        with gzip.GzipFile(fileobj=fh) as g:
                            out.append((f.path.name, g.read()))
                    except (EOFError, gzip.BadGzipFile, zlib.error):
                        if not last:
                            raise _Changed()
                        bad.append(f.path.name)
            again = list_log_files(logs_dir, name, stream)
            if [f.key for f in again] != [f.key for f in files] and not last:
                raise _Changed()
            return out, bad
        except (FileNotFoundError, _Changed):
            time.sleep(0.05)
    return [], ["(log files kept changing)"]


def check_log_lines(logs_dir: Path, name: str, expected: int, stream: str = "out") -> dict:
    """Reads every line of the app's log files (oldest file first) and checks them against the
    app's output: lines 1..expected, each exactly once, in order."""
    files, bad = read_log_files(logs_dir, name, stream)
    seen = bytearray(expected + 1)
    distinct = dups = ooo = invalid = partial = complete = 0
    prev = 0  # number of the previous well-formed line
    for _fname, data in files:
        lines = data.split(b"\n")
        if lines.pop():  # bytes after the last "\n": a line cut short
            partial += 1
        complete += len(lines)
        for ln in lines:
            n = parse_log_line(ln)
            if n is None or not 1 <= n <= expected:
                invalid += 1
                continue
            if seen[n]:
                dups += 1
            else:
                seen[n] = 1
                distinct += 1
                if n < prev:  # a break in the sequence (not counted again for each later line)
                    ooo += 1
            prev = n
    live = f"{name}-{stream}.log"
    return {"files": [f for f, _ in files], "rotated": sum(f != live for f, _ in files),
            "unreadable": bad, "complete_lines": complete, "distinct": distinct,
            "lost": expected - distinct, "duplicates": dups, "out_of_order": ooo,
            "invalid": invalid, "partial": partial}
