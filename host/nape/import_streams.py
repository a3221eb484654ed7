"""Accelerometer and gyroscope logged as separate streams, merged by time (protocol/IMPORT.md 1.5).

Two layouts come as separate streams, each sample stamped by its own sensor's clock:

- the *long* layout: one CSV, one row per sensor reading: a time column (``time_s`` or
  ``time_ms``), a ``sensor`` column (``acc`` / ``accelerometer``, ``gyr`` / ``gyro`` /
  ``gyroscope``; other sensors such as ``mag`` are skipped; ``trunk_acc`` / ``head_gyr``
  name the IMU, else it is the trunk) and ``x``, ``y``, ``z``;
- two files: the main CSV with the time and acceleration columns, ``--gyr FILE`` with the
  time and gyroscope columns (``trunk_gyr_x..z``, or ``x, y, z``).

Each stream is resampled onto one grid (:class:`nape.import_timing.GridResampler`, origin
the later of the streams' first times), and only grid points both streams reach are kept.
Both streams are read whole (a phone log of an 8-hour day at 100 Hz: ~100 MB); the wide
layout of one file streams in blocks.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from .errors import NapeError
from .import_timing import GridResampler

SENSOR_NAMES = {"acc": "acc", "accelerometer": "acc", "accel": "acc", "gyr": "gyr", "gyro": "gyr",
                "gyroscope": "gyr"}
ROLES = ("trunk", "head")


class StreamError(NapeError):
    """A separate-stream CSV cannot be read (the importer re-raises it as CsvImportError)."""


def _open_text(path: Path):
    try:
        raw = open(path, "rb")
    except IsADirectoryError:
        raise StreamError(f"{path} is a folder, not a CSV file") from None
    except OSError as e:
        raise StreamError(f"cannot read {path}: {e.strerror or e}") from None
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _header(text, path: Path, rename: dict[str, str]) -> tuple[str, list[str]]:
    line = text.readline()
    if not line.strip():
        raise StreamError(f"{path.name} is empty")
    delim = next((d for d in (",", ";", "\t") if d in line), ",")
    names = [rename.get(c.strip().lower(), c.strip().lower()) for c in next(csv.reader([line], delimiter=delim))]
    return delim, names


def _time_column(names: list[str], path: Path) -> tuple[int, float]:
    for name, scale in (("time_s", 1.0), ("time_ms", 1e-3)):
        if name in names:
            return names.index(name), scale
    raise StreamError(f"{path.name} line 1: no time column (time_s or time_ms; map another with --columns)")


def _number(text: str, path: Path, line: int, col: str) -> float:
    try:
        v = float(text)
    except ValueError:
        what = "is empty" if not text.strip() else f"{text.strip()[:30]!r} is not a number"
        raise StreamError(f"{path.name} line {line}, column {col}: {what}") from None
    if not math.isfinite(v):
        raise StreamError(f"{path.name} line {line}, column {col}: {text.strip()!r} is not a finite number")
    return v


def is_long_layout(names: list[str]) -> bool:
    """True when header names (after mapping) describe the long layout."""
    return "sensor" in names and {"x", "y", "z"} <= set(names)


def read_long(path: Path, rename: dict[str, str]) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{(role, "acc"|"gyr"): (time s (n,), xyz (n, 3), line numbers (n,))} from a long-layout CSV.

    Raises:
        StreamError: bad header, number, or time going backwards within a stream (line named).
    """
    text = _open_text(path)
    with text:
        delim, names = _header(text, path, rename)
        ti, tscale = _time_column(names, path)
        si, cols = names.index("sensor"), [names.index(c) for c in ("x", "y", "z")]
        out: dict[tuple[str, str], list] = {}
        for ln, row in _data_rows(text, delim, names, path):
            role, _, kind = row[si].strip().lower().rpartition("_")
            kind = SENSOR_NAMES.get(kind)
            if kind is None:
                continue  # magnetometer, temperature, ...
            role = role or "trunk"
            if role not in ROLES:
                raise StreamError(f"{path.name} line {ln}, column sensor: unknown IMU {role!r} (trunk or head)")
            t = _number(row[ti], path, ln, names[ti]) * tscale
            xyz = [_number(row[c], path, ln, names[c]) for c in cols]
            out.setdefault((role, kind), []).append((t, *xyz, ln))
    streams = {}
    for key, rows in out.items():
        a = np.array(rows, float)
        streams[key] = (a[:, 0], a[:, 1:4], a[:, 4].astype(np.int64))
    return streams


def read_wide(path: Path, rename: dict[str, str], kind: str) -> dict[tuple[str, str], tuple]:
    """The ``kind`` ("acc" or "gyr") streams of a wide CSV (``ROLE_kind_x..z``, or ``x, y, z`` for the trunk)."""
    text = _open_text(path)
    with text:
        delim, names = _header(text, path, rename)
        ti, tscale = _time_column(names, path)
        sets = {}
        for role in ROLES:
            c = [f"{role}_{kind}_{a}" for a in "xyz"]
            if all(x in names for x in c):
                sets[role] = [names.index(x) for x in c]
        if "trunk" not in sets and {"x", "y", "z"} <= set(names):
            sets["trunk"] = [names.index(a) for a in "xyz"]
        if "trunk" not in sets:
            raise StreamError(f"{path.name} line 1: no trunk_{kind}_x..z (or x, y, z) columns")
        rows = []
        for ln, row in _data_rows(text, delim, names, path):
            vals = [_number(row[ti], path, ln, names[ti]) * tscale]
            for role in sets:
                vals += [_number(row[c], path, ln, names[c]) for c in sets[role]]
            rows.append(vals + [ln])
    if not rows:
        raise StreamError(f"{path.name}: no data rows after the header")
    a = np.array(rows, float)
    return {(role, kind): (a[:, 0], a[:, 1 + 3 * i: 4 + 3 * i], a[:, -1].astype(np.int64))
            for i, role in enumerate(sets)}


def _data_rows(text, delim: str, names: list[str], path: Path):
    """(line number, row) for every non-blank data row of an open CSV after its header.

    Raises:
        StreamError: a row with fewer columns than the header; not UTF-8 text.
    """
    reader = csv.reader(text, delimiter=delim)
    try:
        for row in reader:
            ln = reader.line_num + 1
            if not any(c.strip() for c in row):
                continue
            if len(row) < len(names):
                raise StreamError(f"{path.name} line {ln}: too few columns ({len(row)}; the header has {len(names)})")
            yield ln, row
    except UnicodeDecodeError:
        raise StreamError(f"{path.name}: not UTF-8 text (is it a CSV file?)") from None


def check_increasing(t: np.ndarray, lines: np.ndarray, path: Path, what: str) -> None:
    """Raises StreamError at the first row whose time goes back."""
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise StreamError(f"{path.name} line {lines[i]}: {what} time {t[i]:g} s is before the previous "
                          f"{what} row's {t[i - 1]:g} s (time must not go back)")


def median_period(streams: dict) -> float:
    """The median sampling interval of the accelerometer streams (s); repeated times ignored."""
    steps = [np.diff(t) for (_r, k), (t, _v, _l) in streams.items() if k == "acc"]
    steps = np.concatenate(steps) if steps else np.zeros(0)
    steps = steps[steps > 0]
    if steps.size == 0:
        raise StreamError("the accelerometer stream needs at least two rows with different times")
    return float(np.median(steps))


def merge(streams: dict, roles: list[str], period_s: float, gap_s: float, path: Path):
    """Resample every stream of ``roles`` onto one grid and keep the grid points all reach.

    Returns:
        (grid times s (m,), values (m, 6 × len(roles)) acc then gyr per role, resamplers by stream).
    """
    for key in [(r, k) for r in roles for k in ("acc", "gyr")]:
        if key not in streams:
            raise StreamError(f"{path.name}: no {key[0]} {'accelerometer' if key[1] == 'acc' else 'gyroscope'} rows")
        check_increasing(streams[key][0], streams[key][2], path, f"{key[0]} {key[1]}")
    t0 = max(float(streams[(r, k)][0][0]) for r in roles for k in ("acc", "gyr"))
    parts, rs = [], {}
    common = None
    for r in roles:
        for k in ("acc", "gyr"):
            t, v, _lines = streams[(r, k)]
            res = GridResampler(period_s, gap_s, t0=t0)
            keep = t >= t0 - gap_s  # rows before the other stream starts: only the one bracketing t0 matters
            kk, vv = res.feed(t[keep], v[keep])
            rs[(r, k)] = res
            parts.append((kk, vv))
            common = set(kk.tolist()) if common is None else common & set(kk.tolist())
    k_all = np.array(sorted(common or ()), dtype=np.int64)
    cols = []
    for kk, vv in parts:
        pos = np.searchsorted(kk, k_all)
        cols.append(vv[pos] if len(k_all) else np.zeros((0, 3)))
    values = np.concatenate(cols, axis=1) if cols else np.zeros((0, 0))
    return t0 + k_all * period_s, values, rs
