"""Paths every module needs (the entry point, the repository, the release binaries) and the
log line on stderr."""

from __future__ import annotations

import socket
import sys
from pathlib import Path


# The entry point, bench/run.py: reports quote the command line with its path.
SCRIPT = Path(__file__).resolve().parent.parent / "run.py"
REPO = SCRIPT.parent.parent
KELPIE_BIN = REPO / "target" / "release" / "kelpie"
FAKE_APP = REPO / "target" / "release" / "fake-app"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def http_get(port: int, timeout: float = 1.0) -> bytes | str:
    """One GET / with a new connection: the whole response, or a word for what went wrong
    ("refused", "reset", "timeout", "error")."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError:
        return "error"
    return data


def http_result(port: int, timeout: float = 1.0) -> str:
    """One GET / with a new connection: "ok" on a 200, else what went wrong."""
    data = http_get(port, timeout)
    if isinstance(data, str):
        return data
    if not data:
        return "empty"
    return "ok" if data.startswith(b"HTTP/1.1 200") else "non-200"
