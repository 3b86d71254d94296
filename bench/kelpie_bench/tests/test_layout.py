"""Self-test of the package's own size targets (issue 19): no module but a test over 800 lines,
no function over 120 lines (tests included), so that bench stays a set of small modules."""

from __future__ import annotations

import ast
import tempfile
import unittest
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 120


def bench_sources() -> list[Path]:
    """Every Python file of bench/kelpie_bench and the entry point bench/run.py."""
    return sorted(PACKAGE.rglob("*.py")) + [PACKAGE.parent / "run.py"]


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """The functions and methods of path longer than limit lines, as `file:line name (n)`."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append(f"{path.name}:{node.lineno} {node.name} ({n} lines)")
    return out


class LayoutTest(unittest.TestCase):
    def test_sources_found(self):
        names = {p.name for p in bench_sources()}
        self.assertTrue({"run.py", "cli.py", "managers.py", "test_layout.py"} <= names, names)

    def test_no_module_over_800_lines(self):
        too_long = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)" for p in bench_sources()
                    if p.parent.name != "tests"
                    and (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
        self.assertEqual(too_long, [])

    def test_no_function_over_120_lines(self):
        self.assertEqual([f for p in bench_sources() for f in long_functions(p)], [])

    def test_the_checker_finds_a_long_function(self):
        src = "def f():\n" + "    x = 1\n" * 119 + "    return x\n"
        with tempfile.TemporaryDirectory(prefix="kelpie-bench-selftest-") as d:
            sample = Path(d) / "sample.py"
            sample.write_text(src)
            self.assertEqual(long_functions(sample), ["sample.py:1 f (121 lines)"])
            self.assertEqual(long_functions(sample, limit=121), [])
