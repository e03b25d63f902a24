"""Typed command-line options: argparse ``type=`` callables that reject bad values at parse time.

argparse reports a rejected value as ``gradpimsim CMD: error: argument --x: <message>`` and exit
code 2, before anything runs; the messages here say what is accepted.  Echoed values are clipped.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from gradpimsim.errors import clip_repr

#: Largest count any option takes (a guard against typos like 10**30; real bounds come later).
MAX_COUNT = 1 << 62


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {clip_repr(text)}") from None


def int_range(low: int, high: int = MAX_COUNT, what: str = "") -> Callable[[str], int]:
    """An integer in ``[low, high]``."""
    def parse(text: str) -> int:
        value = _parse_int(text)
        if not low <= value <= high:
            bound = f">= {low:,}" if high == MAX_COUNT else f"between {low:,} and {high:,}"
            raise argparse.ArgumentTypeError(f"must be {what or 'an integer'} {bound}, "
                                             f"got {clip_repr(text)}")
        return value
    parse.__name__ = "integer"
    return parse


positive_int = int_range(1)
nonneg_int = int_range(0)


def finite_float(low: float, high: float) -> Callable[[str], float]:
    """A finite number in ``[low, high]``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {clip_repr(text)}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a finite number between {low:g} and "
                                             f"{high:g}, got {clip_repr(text)}")
        return value
    parse.__name__ = "number"
    return parse


def power_of_two(text: str) -> int:
    """A positive power of two (channels, ranks)."""
    value = _parse_int(text)
    if value < 1 or value & (value - 1) or value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be a power of two >= 1 (1, 2, 4, ...), got "
                                         f"{clip_repr(text)}")
    return value
