"""Small figures: median, 90th percentile, the rounding of raw samples, and the formats of
the tables' cells."""

from __future__ import annotations

import math
import statistics


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def p90(xs: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def fmt(v: float | None, unit: str, nd: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{nd}f} {unit}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def round_floats(obj):
    """obj with every float rounded to 3 decimals (for the raw samples in the report)."""
    if isinstance(obj, float):
        return round(obj, 3)
    if isinstance(obj, list):
        return [round_floats(x) for x in obj]
    if isinstance(obj, dict):
        return {k: round_floats(v) for k, v in obj.items()}
    return obj
