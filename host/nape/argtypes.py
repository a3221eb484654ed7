"""argparse value types shared by every ``nape`` command.

Each raises :class:`argparse.ArgumentTypeError` with a short reason, so a wrong value gives one
line and exit 2 (the commands' parsers print ``nape CMD: error: ...``). NaN and infinity are
refused everywhere: a number a user typed is finite.
"""

from __future__ import annotations

import argparse


def nonneg_int(text: str) -> int:
    """An integer >= 0 (seeds, counts)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {v}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, speeds, scales)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 and finite: {v}")
    return v


def positive_float_at_most(hi: float):
    """A :func:`positive_float` no larger than ``hi``."""

    def check(text: str) -> float:
        v = positive_float(text)
        if v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi:g}: {v:g}")
        return v

    check.__name__ = "positive_float_at_most"
    return check


def mtu(text: str) -> int:
    """An ATT MTU, bytes: 23 (the BLE minimum) to 517 (the maximum)."""
    v = nonneg_int(text)
    if not 23 <= v <= 517:
        raise argparse.ArgumentTypeError(f"ATT MTU must be 23..517, got {v}")
    return v
