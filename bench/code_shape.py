#!/usr/bin/env python3
"""The code's shape, as figures anyone can re-run (docs/architecture.md, "How the code is kept"):
files over 500 lines and functions over 120 (test code left out), file names used more than
four times, fixed sleeps in the black-box tests, `#[non_exhaustive]` on what no other crate
sees, and each crate's share of the workspace's non-test lines.

    python3 bench/code_shape.py            # the figures
    python3 bench/code_shape.py --check    # exit 1 when a limit is passed

Test code is a file under `tests/`, a `*_tests.rs` or `tests.rs` file, or a module under
`#[cfg(test)]` (`mod tests { ... }`). Anything else under `#[cfg(test)]` (an import, a function,
a match arm) counts: a file is read whole, so nothing high in it hides the rest.
"""

import argparse
import functools
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILE_LIMIT = 500
FUNCTION_LIMIT = 120
# A name a newcomer can follow: at most four files of the workspace's code share one (`mod.rs`
# and `lib.rs` aside, whose names are Rust's; `error.rs` counts once per crate).
NAME_LIMIT = 4
# No crate holds more than a quarter of the workspace's non-test lines (docs/architecture.md,
# "How the code is kept"): a crate that grows past it is split along its layers.
CRATE_SHARE = 0.25
FN_START = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def is_test_file(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return (
        "tests" in parts
        or path.name == "tests.rs"
        or path.name.endswith("_tests.rs")
        or "kelpie-testkit" in parts
        or "fuzz" in parts
    )


TEST_MODULE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*(\{|;)")


@functools.cache
def library_lines(path: Path) -> list[str]:
    """The file's lines without its test modules (a module under `#[cfg(test)]`); read once
    for every figure that counts them."""
    lines = path.read_text(errors="replace").splitlines()
    kept, i = [], 0
    while i < len(lines):
        if lines[i].strip() != "#[cfg(test)]":
            kept.append(lines[i])
            i += 1
            continue
        # The item the attribute is on, past any other attributes and comments.
        j = i + 1
        while j < len(lines):
            if lines[j].strip().startswith("//"):
                j += 1
            elif lines[j].strip().startswith("#["):
                # An attribute, over as many lines as its brackets take.
                depth = 0
                while j < len(lines):
                    code = code_only(lines[j])
                    depth += code.count("[") - code.count("]")
                    j += 1
                    if depth <= 0:
                        break
            else:
                break
        module = TEST_MODULE.match(lines[j]) if j < len(lines) else None
        if not module:
            kept.append(lines[i])
            i += 1
            continue
        if module.group(3) == ";":
            i = j + 1
            continue
        # rustfmt closes a module with `}` at the indentation of its `mod` line (counting
        # braces would trip on raw strings and characters in the tests).
        indent = lines[j][: len(lines[j]) - len(lines[j].lstrip())]
        j += 1
        while j < len(lines) and lines[j].rstrip() != indent + "}":
            j += 1
        i = j + 1
    return kept


def code_only(line: str) -> str:
    """A line without its comment and string contents, for counting braces."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//", 1)[0]


def functions(lines: list[str]):
    """(name, first line, length) of each function with a body."""
    i = 0
    while i < len(lines):
        match = FN_START.match(lines[i])
        if not match:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            code = code_only(lines[j])
            if not started and ";" in code and "{" not in code:
                break  # a declaration without a body
            for c in code:
                if c == "{":
                    depth, started = depth + 1, True
                elif c == "}":
                    depth -= 1
            if started and depth <= 0:
                yield match.group(6), i + 1, j - i + 1
                break
            j += 1
        i += 1


def rust_files():
    return sorted(p for p in (ROOT / "crates").rglob("*.rs") if "target" not in p.parts)


def figures():
    long_files, long_functions = [], []
    for path in rust_files():
        if is_test_file(path):
            continue
        lines = library_lines(path)
        name = str(path.relative_to(ROOT))
        if len(lines) > FILE_LIMIT:
            long_files.append((len(lines), name))
        for function, line, length in functions(lines):
            if length > FUNCTION_LIMIT:
                long_functions.append((length, f"{name}:{line} {function}"))
    return sorted(long_files, reverse=True), sorted(long_functions, reverse=True), sleeps()


def crowded_names():
    """The file names of the workspace's code (tests left out) used more than NAME_LIMIT times,
    with their paths."""
    by_name: dict[str, list[str]] = {}
    error_crates = set()
    for path in rust_files():
        if is_test_file(path) or path.name in ("mod.rs", "lib.rs", "main.rs"):
            continue
        relative = path.relative_to(ROOT)
        if path.name == "error.rs" and relative.parts[1] not in error_crates:
            error_crates.add(relative.parts[1])
            continue
        by_name.setdefault(path.name, []).append(str(relative))
    return sorted((name, paths) for name, paths in by_name.items() if len(paths) > NAME_LIMIT)


def crate_shares():
    """(crate, non-test lines, share of the workspace's), largest first."""
    by_crate: dict[str, int] = {}
    for path in rust_files():
        if is_test_file(path):
            continue
        crate = path.relative_to(ROOT).parts[1]
        by_crate[crate] = by_crate.get(crate, 0) + len(library_lines(path))
    total = sum(by_crate.values())
    return sorted(
        ((crate, lines, lines / total) for crate, lines in by_crate.items()),
        key=lambda row: -row[1],
    )


def is_pacing(lines: list[str], index: int) -> bool:
    """Whether the sleep on `lines[index]` says why it paces: `pacing:` in its line's comment or
    in the comment lines right above it."""
    _, _, comment = lines[index].partition("//")
    if "pacing:" in comment:
        return True
    i = index - 1
    while i >= 0 and lines[i].strip().startswith("//"):
        if "pacing:" in lines[i]:
            return True
        i -= 1
    return False


def sleeps():
    """(pacing, waiting): where the black-box tests sleep, the pacing ones and the others."""
    black_box = ROOT / "crates" / "kelpie-cli" / "tests"
    pacing, waiting = [], []
    for path in sorted(black_box.rglob("*.rs")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if "thread::sleep(" in code_only(line):
                where = f"{path.relative_to(ROOT)}:{index + 1}"
                (pacing if is_pacing(lines, index) else waiting).append(where)
    return pacing, waiting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a limit is passed")
    args = parser.parse_args()
    long_files, long_functions, sleeps = figures()
    print(f"files over {FILE_LIMIT} lines (test code left out): {len(long_files)}")
    for length, name in long_files:
        print(f"  {length:5}  {name}")
    print(f"functions over {FUNCTION_LIMIT} lines: {len(long_functions)}")
    for length, name in long_functions:
        print(f"  {length:5}  {name}")
    crowded = crowded_names()
    print(f"file names used more than {NAME_LIMIT} times: {len(crowded)}")
    for name, paths in crowded:
        print(f"  {name}: {', '.join(paths)}")
    shares = crate_shares()
    total = sum(lines for _, lines, _ in shares)
    print(f"non-test lines by crate (of {total}; none may hold over {CRATE_SHARE:.0%}):")
    for crate, lines, share in shares:
        print(f"  {lines:6}  {share:5.1%}  {crate}")
    pacing, waiting = sleeps
    print(
        f"fixed sleeps in the black-box tests (crates/kelpie-cli/tests): {len(pacing) + len(waiting)}"
    )
    print(f"  pacing (`// pacing:` says why): {len(pacing)}")
    print(f"  waiting on time instead of a condition: {len(waiting)}")
    for where in waiting:
        print(f"    {where}")
    # A black-box test waits for what it needs; a fixed sleep says why it paces (`// pacing:`).
    too_large = [crate for crate, _, share in shares if share > CRATE_SHARE]
    if too_large:
        print(f"  over {CRATE_SHARE:.0%}: {', '.join(too_large)}")
    if args.check and (long_files or long_functions or crowded or waiting or too_large):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
