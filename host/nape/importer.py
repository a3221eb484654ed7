"""Import raw IMU recordings from other devices (CSV) into ``.nape`` recordings.

The CSV layout is specified in ``protocol/IMPORT.md``. In short: a header row; a
``time_s`` column; per IMU role (``trunk`` required, ``head`` optional) the columns
``ROLE_acc_x, ROLE_acc_y, ROLE_acc_z`` (specific force, m/s² by default) and
``ROLE_gyr_x, ROLE_gyr_y, ROLE_gyr_z`` (rad/s by default), sensor axes as in
docs/CONVENTIONS.md. Other columns are ignored.

Orientation is estimated on the host with the ``vqf`` package (``vqf.VQF``, 6D:
gyroscope + accelerometer, no magnetometer), one filter per IMU, and every sample is
encoded with :func:`nape.wire.encode_samples` into SAMPLES packets exactly as the board
would send them, so ``nape analyse`` treats an imported file like a recorded one.

The CSV is streamed in blocks of rows (``BLOCK_ROWS``): memory stays bounded whatever the
file size. The output is written to a temporary file beside the target and renamed into
place only when the whole CSV has been read, so a bad line never leaves a half-written
recording behind.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from . import wire
from .errors import NapeError
from .recording import RecordingWriter

G = 9.80665
BLOCK_ROWS = 20_000  # rows per block: a multiple of 10 so every block fills whole packets
RATE_PROBE = 2_000  # intervals of the first block whose median gives the sample rate
JITTER = 0.25  # a time step may differ from the sample period by this fraction
ROLES = ("trunk", "head")
AXES = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
ACC_UNITS = {"ms2": 1.0, "g": G}
GYR_UNITS = {"rads": 1.0, "dps": math.pi / 180.0}
MIN_RATE_HZ = 1e6 / 0xFFFF  # period_us is a u16 on the wire
MAX_RATE_HZ = 10_000.0


class CsvImportError(NapeError):
    """A CSV file cannot be imported (its layout is described in protocol/IMPORT.md)."""


@dataclass
class ImportResult:
    """What an import wrote."""

    out: Path
    samples: int
    packets: int
    rate_hz: float
    rate_from: str  # "time_s" (median interval) or "--rate"
    roles: list[str]
    duration_s: float
    created: str  # ISO 8601 UTC start time written into the header
    start_from: str  # "--start" or "csv_mtime_minus_duration"


def _columns(role: str) -> list[str]:
    return [f"{role}_{a}" for a in AXES]


# ---------------------------------------------------------------- reading


class _CountingReader(io.RawIOBase):
    """Binary file wrapper that counts bytes read (for progress)."""

    def __init__(self, f):
        self._f = f
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        self.count += n or 0
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def _detect_delimiter(line: str) -> str:
    for d in (",", ";", "\t"):
        if d in line:
            return d
    return ","


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_header(line: str, path: Path, need_time: bool) -> tuple[str, list[str], dict[str, int], list[str]]:
    """Delimiter, header names, column index by name, roles present.

    Raises:
        CsvImportError: no header row, duplicate or missing columns.
    """
    delim = _detect_delimiter(line)
    names = [c.strip().lower() for c in next(csv.reader([line], delimiter=delim))]
    expected = "time_s, trunk_acc_x..z, trunk_gyr_x..z and optionally head_acc_x..z, head_gyr_x..z"
    if names and all(_is_number(c) for c in names if c):
        raise CsvImportError(f"{path.name} line 1: no header row: the first line must name the columns "
                             f"({expected}; see protocol/IMPORT.md), got {line.strip()[:60]!r}")
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in index:
            raise CsvImportError(f"{path.name} line 1: column {n!r} appears twice (columns {index[n] + 1} and {i + 1})")
        index[n] = i
    missing = [c for c in (["time_s"] if need_time else []) + _columns("trunk") if c not in index]
    if missing:
        raise CsvImportError(f"{path.name} line 1: header lacks column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(missing)}; expected {expected} (see protocol/IMPORT.md)")
    roles = ["trunk"]
    head_have = [c for c in _columns("head") if c in index]
    if head_have:
        head_missing = [c for c in _columns("head") if c not in index]
        if head_missing:
            raise CsvImportError(f"{path.name} line 1: head IMU columns incomplete: lacks {', '.join(head_missing)}")
        roles.append("head")
    return delim, names, index, roles


def _bad_cell(rows: list[list[str]], lines: list[int], picks: list[int], names: list[str], path: Path) -> CsvImportError:
    """The precise error for a block that failed fast conversion: first bad line and column."""
    for row, ln in zip(rows, lines):
        for i in picks:
            text = row[i]
            try:
                v = float(text)
            except ValueError:
                what = "is empty" if not text.strip() else f"{text.strip()[:30]!r} is not a number"
                return CsvImportError(f"{path.name} line {ln}, column {names[i]}: {what}")
            if not math.isfinite(v):
                return CsvImportError(f"{path.name} line {ln}, column {names[i]}: {text.strip()!r} is not a finite number")
    return CsvImportError(f"{path.name}: unreadable numbers near line {lines[0]}")  # pragma: no cover


def _blocks(reader, first_line: int, n_cols: int, picks: list[int], names: list[str], path: Path, block_rows: int,
            first_rows: int):
    """Yield (values (n, len(picks)) float64, line numbers (n,)) blocks of data rows; the first
    block holds ``first_rows`` rows, the others ``block_rows`` (the last one what is left).

    Raises:
        CsvImportError: a row with the wrong number of columns, a non-numeric or
            non-finite value, or a CSV syntax error (with its line number).
    """
    get = operator.itemgetter(*picks) if len(picks) > 1 else (lambda r: (r[picks[0]],))
    rows: list[list[str]] = []
    lines: list[int] = []
    offset = first_line - 1  # reader.line_num counts from the first line after the header
    want = first_rows

    def convert():
        try:
            vals = np.array([get(r) for r in rows], dtype=np.float64)
        except ValueError:
            raise _bad_cell(rows, lines, picks, names, path) from None
        if not np.isfinite(vals).all():
            raise _bad_cell(rows, lines, picks, names, path)
        return vals.reshape(len(rows), len(picks)), np.array(lines)

    try:
        for row in reader:
            ln = reader.line_num + offset
            if len(row) != n_cols:
                if not any(c.strip() for c in row):
                    continue  # blank line
                if len(row) < n_cols:
                    raise CsvImportError(f"{path.name} line {ln}: too few columns ({len(row)}; the header has {n_cols})")
                raise CsvImportError(f"{path.name} line {ln}: too many columns ({len(row)}; the header has {n_cols})")
            rows.append(row)
            lines.append(ln)
            if len(rows) >= want:
                yield convert()
                rows, lines, want = [], [], block_rows
    except csv.Error as e:
        raise CsvImportError(f"{path.name} line {reader.line_num + offset}: {e}") from None
    except UnicodeDecodeError:
        raise CsvImportError(f"{path.name} near line {reader.line_num + offset + 1}: not UTF-8 text "
                             "(is it a CSV file?)") from None
    if rows:
        yield convert()


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
    return n


def _parse_start(text: str) -> datetime:
    """An aware datetime from ISO 8601 ('Z' allowed; naive means local time).

    Raises:
        CsvImportError: not ISO 8601.
    """
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CsvImportError(f"--start {text!r} is not an ISO 8601 time such as 2025-01-06T09:30:00Z") from None
    return dt if dt.tzinfo else dt.astimezone()


def _iso_utc(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- main entry


def import_csv(
    csv_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    rate_hz: float | None = None,
    acc_unit: str = "ms2",
    gyr_unit: str = "rads",
    start: str | datetime | None = None,
    device_name: str = "imported",
    overwrite: bool = False,
    block_rows: int = BLOCK_ROWS,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Convert a raw IMU CSV (protocol/IMPORT.md) into a ``.nape`` recording.

    Args:
        csv_path: the CSV file.
        out_path: the ``.nape`` file to write.
        rate_hz: sample rate in Hz; default: the median interval of ``time_s`` over the first
            ``RATE_PROBE`` rows, and every later interval must be within ±25 % of it.
            When given, ``time_s`` (optional then) need only increase.
        acc_unit: ``"ms2"`` (m/s²) or ``"g"`` (9.80665 m/s²).
        gyr_unit: ``"rads"`` (rad/s) or ``"dps"`` (°/s).
        start: recording start (ISO 8601 string or datetime) for the header's ``created``;
            default: the CSV's modification time minus the recording's duration.
        device_name: the header's ``device_name``.
        overwrite: replace ``out_path`` if it exists.
        block_rows: rows per processing block (rounded up to a multiple of 10).
        on_progress: called with (bytes of CSV read, CSV size).

    Raises:
        CsvImportError: the CSV is empty, has no or a wrong header, a bad line (named with its
            line number and column), irregular or non-increasing time, implausible units, or
            a sample rate the wire format cannot carry; or the output exists.
        RecordingError: the output cannot be written.
    """
    csv_path = Path(csv_path)
    out_path = Path(out_path)
    if acc_unit not in ACC_UNITS:
        raise CsvImportError(f"acceleration unit must be one of {', '.join(ACC_UNITS)}, got {acc_unit!r}")
    if gyr_unit not in GYR_UNITS:
        raise CsvImportError(f"angular velocity unit must be one of {', '.join(GYR_UNITS)}, got {gyr_unit!r}")
    if rate_hz is not None and not (MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ):
        raise CsvImportError(f"sample rate {rate_hz:g} Hz is outside {MIN_RATE_HZ:.2f}..{MAX_RATE_HZ:g} Hz, "
                             "what the wire format can carry")
    start_dt = _parse_start(start) if isinstance(start, str) else start
    if out_path.exists() and not overwrite:
        raise CsvImportError(f"{out_path} already exists (pass --force to replace it)")
    try:
        import vqf
    except ImportError:  # pragma: no cover - vqf is a dependency
        raise CsvImportError("importing needs the vqf package: pip install vqf") from None
    block_rows = max(10, -(-int(block_rows) // 10) * 10)
    try:
        size = csv_path.stat().st_size
        raw = open(csv_path, "rb")
    except IsADirectoryError:
        raise CsvImportError(f"{csv_path} is a folder, not a CSV file") from None
    except OSError as e:
        raise CsvImportError(f"cannot read {csv_path}: {e.strerror or e}") from None
    if size == 0:
        raw.close()
        raise CsvImportError(f"{csv_path.name} is empty")
    counter = _CountingReader(raw)
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
    tmp = out_path.with_name(f".{out_path.name}.importing-{os.getpid()}")
    writer: RecordingWriter | None = None
    try:
        try:
            header = text.readline()
        except UnicodeDecodeError:
            raise CsvImportError(f"{csv_path.name} line 1: not UTF-8 text (is it a CSV file?)") from None
        if not header.strip():
            raise CsvImportError(f"{csv_path.name} is empty" if not text.read(1 << 16).strip() else
                                 f"{csv_path.name} line 1: empty; the first line must be the header row")
        delim, names, index, roles = _parse_header(header, csv_path, need_time=rate_hz is None)
        has_time = "time_s" in index
        cols = [c for r in roles for c in _columns(r)]
        picks = ([index["time_s"]] if has_time else []) + [index[c] for c in cols]
        n_imu = len(roles)
        mask = 3 if n_imu == 2 else 1
        per_packet = 5 if n_imu == 2 else 10
        reader = csv.reader(text, delimiter=delim)
        acc_scale, gyr_scale = ACC_UNITS[acc_unit], GYR_UNITS[gyr_unit]

        n = 0  # samples written
        packets = 0
        period_s = 1.0 / rate_hz if rate_hz else 0.0  # 0: not known yet (inferred from time_s)
        period_us = 0
        last_t: float | None = None
        filters: list = []
        host_t0 = 0.0
        meta: dict = {}
        rate_from = start_from = ""
        first_rows = block_rows if rate_hz else max(block_rows, -(-(RATE_PROBE + 1) // 10) * 10)
        for vals, lines in _blocks(reader, 2, len(names), picks, names, csv_path, block_rows, first_rows):
            if has_time:
                t = vals[:, 0]
                data = vals[:, 1:]
                prev = np.concatenate([[last_t], t[:-1]]) if last_t is not None else None
                dt = (t - prev) if prev is not None else np.diff(t, prepend=np.nan)
                bad = np.flatnonzero(dt <= 0)
                if bad.size:
                    i = int(bad[0])
                    before = prev[i] if prev is not None else t[i - 1]
                    raise CsvImportError(f"{csv_path.name} line {lines[i]}, column time_s: {t[i]:g} s is not after "
                                         f"the previous row's {before:g} s (time must increase)")
                if not period_s:
                    probe = dt[1 : RATE_PROBE + 1]
                    if probe.size == 0:
                        raise CsvImportError(f"{csv_path.name}: one data row only; the sample rate needs two "
                                             "(or pass --rate)")
                    period_s = float(np.median(probe))
                if rate_hz is None:
                    ok = np.abs(dt - period_s) <= JITTER * period_s
                    ok[np.isnan(dt)] = True
                    if not ok.all():
                        i = int(np.flatnonzero(~ok)[0])
                        raise CsvImportError(
                            f"{csv_path.name} line {lines[i]}, column time_s: step of {dt[i]:.6g} s differs from the "
                            f"sample period {period_s:.6g} s ({1 / period_s:.4g} Hz, median of the first intervals) "
                            f"by more than {JITTER:.0%}: irregular timing or missing samples "
                            "(resample, or pass --rate to use the row order only)")
                last_t = float(t[-1])
            else:
                data = vals
            if not filters:  # first block: rate known, check units, set up filters and the writer
                rate = 1.0 / period_s
                if not (MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
                    raise CsvImportError(f"{csv_path.name}: sample rate {rate:.4g} Hz (from time_s) is outside "
                                         f"{MIN_RATE_HZ:.2f}..{MAX_RATE_HZ:g} Hz, what the wire format can carry")
                rate_from = "time_s" if rate_hz is None else "--rate"
                period_us = int(round(period_s * 1e6))
                period_s = period_us / 1e6  # what the wire carries: the analysis times samples by it
                rate = 1.0 / period_s
                _check_units(data, n_imu, acc_scale, acc_unit, csv_path, lines[0])
                filters = [vqf.VQF(period_s) for _ in range(n_imu)]
                if start_dt is None:
                    rows_total = max(1, _count_lines(csv_path) - 1)
                    duration = rows_total * period_s
                    start_dt = datetime.fromtimestamp(csv_path.stat().st_mtime, timezone.utc) - timedelta(seconds=duration)
                    start_from = "csv_mtime_minus_duration"
                else:
                    start_from = "--start"
                host_t0 = start_dt.timestamp()
                meta = {
                    "created": _iso_utc(start_dt),
                    "device_name": device_name,
                    "source": "import",
                    "imu_roles": roles,
                    "sample_rate_hz": round(rate, 6),
                    "wire_format_version": wire.VERSION,
                    "extras": {
                        "original_file": csv_path.name,
                        "import": {
                            "acc_unit": acc_unit, "gyr_unit": gyr_unit, "rate_from": rate_from,
                            "start_from": start_from,
                            "orientation": f"vqf.VQF 6D (gyroscope + accelerometer), vqf {_version('vqf')}",
                        },
                    },
                }
                writer = RecordingWriter(tmp, meta, fsync_interval_s=10.0, overwrite=True)
            k = len(data)
            d = data.reshape(k, n_imu, 6)
            acc = np.ascontiguousarray(d[:, :, 0:3]) * acc_scale
            gyr = np.ascontiguousarray(d[:, :, 3:6]) * gyr_scale
            quat = np.empty((k, n_imu, 4))
            flags = np.zeros(k, np.uint8)
            for j, (f, role) in enumerate(zip(filters, roles)):
                out = f.updateBatch(np.ascontiguousarray(gyr[:, j]), np.ascontiguousarray(acc[:, j]))
                quat[:, j] = out["quat6D"]
                rest_bit = wire.FLAG_TRUNK_REST if role == "trunk" else wire.FLAG_HEAD_REST
                flags[out["restDetected"].astype(bool)] |= rest_bit
            batch = []
            for i in range(0, k, per_packet):
                j = min(k, i + per_packet)
                s = n + i
                batch.append(wire.encode_samples(mask, s, (s * period_us) // 1000, period_us, flags[i:j],
                                                 quat[i:j], acc[i:j], gyr[i:j]))
            assert writer is not None  # created with the first block
            writer.write_packets(batch, host_t0 + n * period_s)
            packets += len(batch)
            n += k
            if on_progress:
                on_progress(counter.count, size)
        if writer is None:
            raise CsvImportError(f"{csv_path.name}: no data rows after the header")
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        if writer is not None and not writer.closed:
            try:
                writer.close()
            except NapeError:
                pass
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    finally:
        text.close()
    return ImportResult(out=out_path, samples=n, packets=packets, rate_hz=1.0 / period_s, rate_from=rate_from,
                        roles=roles, duration_s=n * period_s, created=meta["created"], start_from=start_from)


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # pragma: no cover
        return "unknown"


def _check_units(data: np.ndarray, n_imu: int, acc_scale: float, acc_unit: str, path: Path, line: int) -> None:
    """Catch the commonest mistake (g read as m/s² or the reverse) before it ruins the angles.

    Raises:
        CsvImportError: the median acceleration magnitude of the first block does not look like
            gravity in the unit given.
    """
    d = data.reshape(len(data), n_imu, 6)
    mag = float(np.median(np.linalg.norm(d[:, 0, 0:3], axis=1))) * acc_scale  # m/s^2 if the unit is right
    if 5.0 <= mag <= 20.0:
        return
    if acc_unit == "ms2" and 0.5 <= mag <= 2.0:
        hint = "; that looks like g: pass --acc-unit g"
    elif acc_unit == "g" and 50.0 <= mag <= 200.0:
        hint = "; that looks like m/s²: pass --acc-unit ms2"
    else:
        hint = "; check the unit and the columns"
    raw = mag / acc_scale
    label = "g" if acc_unit == "g" else "m/s²"
    raise CsvImportError(f"{path.name} from line {line}: trunk acceleration magnitude reads {raw:.3g} {label} (median "
                         f"of the first rows) where a worn sensor reads about 1 g = 9.81 m/s²{hint}")
