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
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from . import import_streams, safe_write, wire
from .errors import NapeError
from .import_timing import REASON_SOURCE_GAP, GridResampler, TimingStats
from .recording import RecordingError, RecordingWriter
from .settings import AnalysisSettings

G = 9.80665
BLOCK_ROWS = 20_000  # rows per block: a multiple of 10 so every block fills whole packets
RATE_PROBE = 2_000  # intervals of the first block whose median gives the sample rate
JITTER = 0.25  # a time step may differ from the sample period by this fraction
ROLES = ("trunk", "head")
AXES = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
ACC_UNITS = {"ms2": 1.0, "g": G}
GYR_UNITS = {"rads": 1.0, "dps": math.pi / 180.0}
GAP_PERIODS = 4  # resampling: rows further apart than this many periods (and GAP_MIN_S) leave a gap
GAP_MIN_S = 0.1
ACC_LIMIT_MS2 = 32767 * wire.ACC_LSB_MS2  # the wire format's range (protocol/SPEC.md): ±32.767 g
GYR_LIMIT_RADS = 32767 * wire.GYR_LSB_RADS  # ±3276.7 °/s
NAPE_COLUMNS = ("time_s", "time_ms", "sensor", "x", "y", "z") + tuple(f"{r}_{a}" for r in ("trunk", "head") for a in AXES)
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
    timing: dict | None = None  # how the rows were resampled (None: taken as they came)


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


def check_input_file(path: Path) -> None:
    """Refuse, before opening, what is not a regular file: opening a FIFO (named pipe) blocks until
    something writes to it, and a device or socket is no CSV (a missing file is left to open())."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise CsvImportError(f"{path} is a folder, not a CSV file")
    if not stat.S_ISREG(st.st_mode):
        raise CsvImportError(f"{path} is not a regular file (a pipe or device), not a CSV file")


def _same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name one file (also through links or another spelling of the path)."""
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


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


def parse_column_map(text: str) -> dict[str, str]:
    """``"t_s=time_s,ax=trunk_acc_x"`` → ``{"t_s": "time_s", "ax": "trunk_acc_x"}`` (CSV name →
    Nape name; either side may come first: the side that is a Nape column name is taken as it).

    Raises:
        CsvImportError: a pair without ``=``, or neither side a Nape column name.
    """
    out = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        left, sep, right = (x.strip().lower() for x in pair.partition("="))
        if not sep or not left or not right:
            raise CsvImportError(f"--columns: {pair!r} is not CSV_NAME=NAPE_NAME (e.g. t_s=time_s,ax=trunk_acc_x)")
        if right in NAPE_COLUMNS:
            out[left] = right
        elif left in NAPE_COLUMNS:
            out[right] = left
        else:
            raise CsvImportError(f"--columns: neither {left!r} nor {right!r} is a Nape column name "
                                 f"({', '.join(NAPE_COLUMNS[:6])}, trunk_acc_x, ..., head_gyr_z)")
    return out


def _mapped_names(line: str, rename: dict[str, str]) -> list[str]:
    names = [c.strip().lower() for c in next(csv.reader([line], delimiter=_detect_delimiter(line)))]
    return [rename.get(c, c) for c in names]


def _parse_header(line: str, path: Path, need_time: bool, rename: dict[str, str] | None = None,
                  no_gyro: bool = False) -> tuple[str, list[str], dict[str, int], list[str]]:
    """Delimiter, header names (after ``rename``), column index by name, roles present.

    Raises:
        CsvImportError: no header row, duplicate or missing columns.
    """
    delim = _detect_delimiter(line)
    names = _mapped_names(line, rename or {})
    expected = "time_s, trunk_acc_x..z, trunk_gyr_x..z and optionally head_acc_x..z, head_gyr_x..z"
    if names and all(_is_number(c) for c in names if c):
        raise CsvImportError(f"{path.name} line 1: no header row: the first line must name the columns "
                             f"({expected}; see protocol/IMPORT.md), got {line.strip()[:60]!r}")
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in index:
            raise CsvImportError(f"{path.name} line 1: column {n!r} appears twice (columns {index[n] + 1} and {i + 1})")
        index[n] = i
    need = [c for c in _columns("trunk") if not (no_gyro and "_gyr_" in c)]
    missing = [c for c in (["time_s"] if need_time and "time_ms" not in index else []) + need if c not in index]
    if missing and not no_gyro and not any(c in index for c in _columns("trunk")[3:]) and \
            all(c in index for c in _columns("trunk")[:3]):
        raise CsvImportError(f"{path.name} line 1: no gyroscope columns (trunk_gyr_x..z): give them in a second file "
                             "with --gyr FILE, or import without them with --no-gyro (orientation from the "
                             "accelerometer alone: see protocol/IMPORT.md)")
    if missing:
        raise CsvImportError(f"{path.name} line 1: header lacks column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(missing)}; expected {expected} (see protocol/IMPORT.md)")
    roles = ["trunk"]
    head_have = [c for c in _columns("head") if c in index]
    if head_have:
        head_missing = [c for c in _columns("head") if c not in index and not (no_gyro and "_gyr_" in c)]
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
                comma = " (decimal commas? Nape reads numbers with a decimal point)" if delim_is_comma(row, n_cols) else ""
                raise CsvImportError(f"{path.name} line {ln}: too many columns ({len(row)}; the header has {n_cols}){comma}")
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


def delim_is_comma(row: list[str], n_cols: int) -> bool:
    """A row split at decimal commas: more cells than the header, every one of them whole digits."""
    return len(row) > n_cols and all(c.strip().lstrip("-").isdigit() for c in row if c.strip())


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
    try:
        dt = dt if dt.tzinfo else dt.astimezone()
    except (OverflowError, OSError, ValueError):  # year 1 or 9999 as local time: beyond the platform's clock
        raise CsvImportError(_start_range_message(text)) from None
    return _check_start(dt, text)


#: The plausible recording starts: from the Unix epoch (the recording's host times are Unix
#: seconds) to a day from now (a start in the future is a wrong clock or a typing error; the
#: day leaves room for time zones).
START_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
START_AHEAD = timedelta(days=1)


def _start_range_message(text: object) -> str:
    return (f"--start {text!s} is not a plausible recording start: give a time from 1970-01-01 to no later "
            "than a day from now")


def _check_start(dt: datetime, text: object = None) -> datetime:
    """``dt`` when it lies in the plausible range (:data:`START_EARLIEST` … now + :data:`START_AHEAD`).

    Raises:
        CsvImportError: outside it, one line naming the range.
    """
    if dt.tzinfo is None:
        dt = dt.astimezone()
    try:
        ok = START_EARLIEST <= dt <= datetime.now(timezone.utc) + START_AHEAD
    except OverflowError:
        ok = False
    if not ok:
        raise CsvImportError(_start_range_message(text if text is not None else dt.isoformat()))
    return dt


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
    columns: dict[str, str] | str | None = None,
    gyr_path: str | os.PathLike | None = None,
    no_gyro: bool = False,
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
        columns: column names of the CSV mapped to the names above, as ``{csv_name: nape_name}``
            or the text ``"t_s=time_s,ax=trunk_acc_x,..."`` (:func:`parse_column_map`).
        gyr_path: a second CSV with the gyroscope stream (its own clock), merged by time.
        no_gyro: import without gyroscope columns (angular velocities recorded as 0; the
            header says so and the analysis names what is lost).

    Without ``rate_hz``, rows whose time steps stray more than ±25 % from the period are
    resampled onto the fixed rate (:mod:`nape.import_timing`); the header's
    ``extras.import.timing`` says how much.

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
    rename = parse_column_map(columns) if isinstance(columns, str) else {k.lower(): v.lower()
                                                                         for k, v in (columns or {}).items()}
    start_dt = _parse_start(start) if isinstance(start, str) else (None if start is None else _check_start(start))
    if no_gyro and gyr_path is not None:
        raise CsvImportError("--no-gyro and --gyr contradict each other: give the gyroscope file, or import "
                             "without gyroscope, not both")
    for src in [csv_path] + ([Path(gyr_path)] if gyr_path is not None else []):
        check_input_file(src)
        if _same_file(src, out_path):
            raise CsvImportError(f"the output {out_path} is the CSV being imported ({src.name}): importing would "
                                 "overwrite it; choose another --out")
    if not out_path.parent.is_dir():
        raise CsvImportError(f"cannot write {out_path}: its folder {out_path.parent} does not exist")
    if out_path.is_dir():
        raise CsvImportError(f"cannot write {out_path}: it is a folder; give a file name with --out")
    if out_path.exists() and not out_path.is_file():  # os.replace would swap a device node itself for the file
        raise CsvImportError(f"cannot write {out_path}: it is not a regular file (a device, pipe or socket); "
                             "give another --out")
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
        acc_scale, gyr_scale = ACC_UNITS[acc_unit], GYR_UNITS[gyr_unit]
        timing: GridResampler | None = None  # set: rows resampled onto the fixed rate
        if gyr_path is not None or import_streams.is_long_layout(_mapped_names(header, rename)):
            layout = "long" if gyr_path is None else "two files"
            source, roles, period_s, timing = _merged_source(csv_path, gyr_path, rename, rate_hz, acc_scale,
                                                             gyr_scale, block_rows)
            rate_from = "--rate" if rate_hz else "time (separate streams merged and resampled)"
        else:
            layout = "wide"
            delim, names, index, roles = _parse_header(header, csv_path, need_time=rate_hz is None, rename=rename,
                                                       no_gyro=no_gyro)
            time_col = next((c for c in ("time_s", "time_ms") if c in index), None)
            tscale = 1e-3 if time_col == "time_ms" else 1.0
            cols = [c for r in roles for c in _columns(r) if c in index]
            picks = ([index[time_col]] if time_col else []) + [index[c] for c in cols]
            if rate_hz:
                period_s, rate_from = 1.0 / rate_hz, "--rate"
            else:
                period_s, timing = _plan_timing(csv_path, delim, index[time_col], tscale, len(names))
                rate_from = "time_s" if timing is None else "time_s (jittery: resampled)"
            reader = csv.reader(text, delimiter=delim)
            source = _wide_source(_blocks(reader, 2, len(names), picks, names, csv_path, block_rows, block_rows),
                                  time_col is not None, tscale, cols, roles, acc_scale, gyr_scale, names, picks,
                                  csv_path, strict_time=timing is None)
        rate = 1.0 / period_s
        if not (MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
            raise CsvImportError(f"{csv_path.name}: sample rate {rate:.4g} Hz (from time_s) is outside "
                                 f"{MIN_RATE_HZ:.2f}..{MAX_RATE_HZ:g} Hz, what the wire format can carry")
        period_us = int(round(period_s * 1e6))
        period_s = period_us / 1e6  # what the wire carries: the analysis times samples by it
        if timing is not None:
            timing.period = period_s
            if layout == "wide":  # rows resampled one by one: a glitched row would be smeared
                timing.despike(*_glitch_rules(period_s))
        n_imu = len(roles)
        mask = 3 if n_imu == 2 else 1
        per_packet = 5 if n_imu == 2 else 10
        n = packets = next_k = 0  # samples and packets written; grid index (seq) of the next sample
        filters: list = []
        host_t0 = 0.0
        meta: dict = {}
        start_from = ""
        for t, data, lines in _with_finish(source, timing if layout == "wide" else None):
            if not filters:  # first block: check units, set up filters and the writer
                _check_units(data, n_imu, acc_unit, csv_path, int(lines[0]) if len(lines) else 2)
                filters = [vqf.VQF(period_s) for _ in range(n_imu)]
                if start_dt is None:
                    duration = (timing.span_s if timing is not None and hasattr(timing, "span_s")
                                else max(1, _count_lines(csv_path) - 1) * period_s)
                    start_dt = datetime.fromtimestamp(csv_path.stat().st_mtime, timezone.utc) - timedelta(seconds=duration)
                    start_from = "csv_mtime_minus_duration"
                else:
                    start_from = "--start"
                host_t0 = start_dt.timestamp()
                meta = _metadata(start_dt, device_name, roles, 1.0 / period_s, csv_path, acc_unit, gyr_unit,
                                 rate_from, start_from, layout, no_gyro, gyr_path, timing)
                try:
                    writer = RecordingWriter(tmp, meta, fsync_interval_s=10.0, overwrite=True)
                except RecordingError as e:  # name the user's file, not the temporary one beside it
                    raise RecordingError(str(e).replace(str(tmp), str(out_path))) from None
            gaps_before = len(timing.gaps_seen) if timing is not None else 0
            if t is _FINISH:
                k, data = timing.finish()
            elif timing is not None:
                k, data = timing.feed(t, data) if layout == "wide" else timing.place(t, data)
            else:
                k = np.arange(next_k, next_k + len(data), dtype=np.int64)
            if len(k):
                next_k = int(k[-1]) + 1
            assert writer is not None  # created with the first block
            for g0, g1 in (timing.gaps_seen[gaps_before:] if timing is not None else []):
                # before the packets: the analysis takes the gap's reason from this note
                writer.write_note({"event": "gap", "boot_id": None, "from_seq": g0, "to_seq": g1,
                                   "missing_samples": g1 - g0, "reason": REASON_SOURCE_GAP}, host_t0 + g0 * period_s)
            if len(k):
                packets += _write_block(writer, filters, roles, mask, per_packet, k, data, period_us, host_t0)
                n += len(k)
            if on_progress:
                on_progress(counter.count, size)
        if writer is None:
            raise CsvImportError(f"{csv_path.name}: no data rows after the header")
        writer.close()
        safe_write.check_target(out_path)  # made a device, pipe or folder while the import ran: refused
        os.replace(tmp, out_path)
    except import_streams.StreamError as e:
        _discard(writer, tmp)
        raise CsvImportError(str(e)) from None
    except BaseException:
        _discard(writer, tmp)
        raise
    finally:
        text.close()
    return ImportResult(out=out_path, samples=n, packets=packets, rate_hz=1.0 / period_s, rate_from=rate_from,
                        roles=roles, duration_s=next_k * period_s, created=meta["created"], start_from=start_from,
                        timing=meta["extras"]["import"].get("timing"))


def _metadata(start_dt, device_name, roles, rate, csv_path, acc_unit, gyr_unit, rate_from, start_from, layout,
              no_gyro, gyr_path, timing) -> dict:
    """The recording header of an import (protocol/IMPORT.md 2)."""
    imp = {"acc_unit": acc_unit, "gyr_unit": gyr_unit, "rate_from": rate_from, "start_from": start_from,
           "layout": layout, "orientation": f"vqf.VQF 6D (gyroscope + accelerometer), vqf {_version('vqf')}"}
    if no_gyro:
        imp["gyroscope"] = "none: recorded as 0"
    if timing is not None:
        imp["timing"] = {"resampled": True, "period_s": round(1.0 / rate, 9)} | timing.planned
    meta = {"created": _iso_utc(start_dt), "device_name": device_name, "source": "import", "imu_roles": roles,
            "sample_rate_hz": round(rate, 6), "wire_format_version": wire.VERSION,
            "extras": {"original_file": csv_path.name, "import": imp}}
    if gyr_path is not None:
        meta["extras"]["gyr_file"] = Path(gyr_path).name
    return meta


def _plan_timing(path: Path, delim: str, time_index: int, tscale: float,
                 n_cols: int | None = None) -> tuple[float, GridResampler | None]:
    try:
        return _plan_timing_pass(path, delim, time_index, tscale, n_cols)
    except csv.Error as e:  # e.g. a cell longer than the csv module's field limit
        raise CsvImportError(f"{path.name}: not a readable CSV: {e}") from None


def _plan_timing_pass(path: Path, delim: str, time_index: int, tscale: float,
                      n_cols: int | None) -> tuple[float, GridResampler | None]:
    """A first pass over the time column: the period (median of the first ``RATE_PROBE`` steps,
    on a whole rate when near one) and, when any step strays more than ``JITTER`` from it or
    repeats a time, the resampler whose figures go into the header (rows whose time cell does
    not parse are left to the main pass, which names them).

    Raises:
        CsvImportError: one data row only, or time going back (line named).
    """
    times, lines = [], []
    with open(path, encoding="utf-8-sig", newline="", errors="replace") as f:
        reader = csv.reader(f, delimiter=delim)
        next(reader, None)
        for row in reader:
            if len(row) > time_index and (n_cols is None or len(row) == n_cols):  # else: the main pass names it
                try:
                    v = float(row[time_index])
                except ValueError:
                    if "," in row[time_index] and _is_number(row[time_index].replace(",", ".")):
                        raise CsvImportError(
                            f"{path.name} line {reader.line_num}, column time_s: {row[time_index]!r} has a decimal "
                            "comma; Nape reads numbers with a decimal point (protocol/IMPORT.md): export the CSV "
                            "with '.' as the decimal separator") from None
                    continue
                if math.isfinite(v):
                    times.append(v * tscale)
                    lines.append(reader.line_num)
    t = np.array(times)
    if len(t) == 0:
        return 0.01, None  # no data rows: the main pass says so
    dt = np.diff(t)
    back = np.flatnonzero(dt < 0)
    if back.size:
        i = int(back[0]) + 1
        raise CsvImportError(f"{path.name} line {lines[i]}, column time_s: {t[i]:g} s is not after the previous "
                             f"row's {t[i - 1]:g} s (time must increase)")
    probe = dt[:RATE_PROBE][dt[:RATE_PROBE] > 0]
    if probe.size == 0:
        if len(t) > 1:
            raise CsvImportError(f"{path.name}: all {len(t)} data rows have the same time_s ({t[0]:.10g} s), so "
                                 "the sample rate cannot be told from it (time rounded too coarsely? pass --rate)")
        raise CsvImportError(f"{path.name}: one data row only; the sample rate needs two (or pass --rate)")
    period = float(np.median(probe))
    if (np.abs(dt - period) <= JITTER * period).all():
        return period, None
    period = _nice_period(period)
    r = GridResampler(period, max(GAP_PERIODS * period, GAP_MIN_S), t0=float(t[0]))
    r.planned = _planned(t, period, r.gap)
    r.span_s = float(t[-1] - t[0]) + period
    return period, r


def _planned(t: np.ndarray, period: float, gap: float) -> dict:
    """How much the row times ``t`` stray from the grid (the header's ``extras.import.timing``)."""
    dt = np.diff(t)
    st = TimingStats(rows=len(t), duplicates=int((dt == 0).sum()), steps=int((dt > 0).sum()))
    ok = (dt > 0) & (dt <= gap)
    dev = np.abs(dt[ok] - period)
    st.abs_dev_sum_s, st.max_dev_s = float(dev.sum()), float(dev.max(initial=0.0))
    st.steps = int(ok.sum())
    big = np.flatnonzero(dt > gap)
    st.gaps = [(0, int(round(dt[i] / period)) - 1) for i in big]
    d = st.as_dict(period)
    d["gap_samples"] = int(sum(max(0, b) for _a, b in st.gaps))
    return d


def _discard(writer: RecordingWriter | None, tmp: Path) -> None:
    if writer is not None and not writer.closed:
        try:
            writer.close()
        except NapeError:
            pass
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass


def _write_block(writer, filters, roles, mask, per_packet, k, data, period_us, host_t0) -> int:
    """Orientation by vqf, SAMPLES packets (seq = grid index ``k``), written; returns packets."""
    n_imu = len(roles)
    m = len(data)
    d = data.reshape(m, n_imu, 6)
    acc = np.ascontiguousarray(d[:, :, 0:3])
    gyr = np.ascontiguousarray(d[:, :, 3:6])
    quat = np.empty((m, n_imu, 4))
    flags = np.zeros(m, np.uint8)
    for j, (f, role) in enumerate(zip(filters, roles)):
        out = f.updateBatch(np.ascontiguousarray(gyr[:, j]), np.ascontiguousarray(acc[:, j]))
        quat[:, j] = out["quat6D"]
        rest_bit = wire.FLAG_TRUNK_REST if role == "trunk" else wire.FLAG_HEAD_REST
        flags[out["restDetected"].astype(bool)] |= rest_bit
    batch = []
    cuts = np.flatnonzero(np.diff(k) != 1) + 1  # a packet holds consecutive seq only
    for r0, r1 in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [m]])):
        for i in range(int(r0), int(r1), per_packet):
            j = min(int(r1), i + per_packet)
            seq = int(k[i])
            batch.append(wire.encode_samples(mask, seq, (seq * period_us) // 1000, period_us, flags[i:j],
                                             quat[i:j], acc[i:j], gyr[i:j]))
    writer.write_packets(batch, host_t0 + int(k[0]) * period_us / 1e6)
    return len(batch)


def _glitch_rules(period_s: float) -> tuple[float, float | None, float | None]:
    """The analysis' single-sample glitch rules at this rate, for GridResampler.despike: its
    GlitchGuard (``glitch_spike_g``; ``glitch_spike_dps`` from ``GYRO_SPIKE_MIN_HZ``) and, from
    ``DEGLITCH_MIN_HZ``, the jolt detector's one-axis rule (``DEGLITCH_JUMP_G``)."""
    from .analysis.jolts import DEGLITCH_JUMP_G, DEGLITCH_MIN_HZ
    from .analysis.quality import GYRO_SPIKE_MIN_HZ

    s = AnalysisSettings()
    rate = 1.0 / period_s
    return (s.glitch_spike_g * G, math.radians(s.glitch_spike_dps) if rate >= GYRO_SPIKE_MIN_HZ - 1e-6 else None,
            DEGLITCH_JUMP_G * G if rate >= DEGLITCH_MIN_HZ - 1e-6 else None)


_FINISH = object()  # the time of the block _with_finish adds: the resampler's held row


def _with_finish(source, timing: GridResampler | None):
    """``source``'s blocks, then (for a despiking resampler) one more whose time is
    :data:`_FINISH`: the resampler's last held row, written like any block."""
    last_lines = None
    for t, data, lines in source:
        last_lines = lines
        yield t, data, lines
    if last_lines is not None and timing is not None and timing.spike is not None:
        yield _FINISH, np.zeros((0, 0)), last_lines[-1:]


def _nice_period(median_s: float) -> float:
    """The period of the median step, on a whole rate in Hz when it is within 5 % of one (a
    '20 Hz' phone log whose median step is 49.3 ms runs at 20 Hz, not 20.28 Hz)."""
    rate = 1.0 / median_s
    whole = round(rate)
    return 1.0 / whole if whole >= 1 and abs(rate - whole) <= 0.05 * whole else median_s


def _start_resampling(period_s: float, last_t: float | None, last_row, next_k: int, t_first: float) -> GridResampler:
    """A resampler that continues the samples written so far on their grid."""
    gap = max(GAP_PERIODS * period_s, GAP_MIN_S)
    if last_t is None:
        return GridResampler(period_s, gap, t0=t_first, next_k=0)
    r = GridResampler(period_s, gap, t0=last_t - (next_k - 1) * period_s, next_k=next_k)
    r.prev = (last_t, last_row)
    return r


def _wide_source(blocks, has_time: bool, tscale: float, cols: list[str], roles: list[str], acc_scale: float,
                 gyr_scale: float, names: list[str], picks: list[int], path: Path, strict_time: bool = True):
    """(time s or None, values (n, 6 × IMUs) in m/s² and rad/s, line numbers) per block of a
    wide CSV; values beyond the wire format's range are an error naming line and column, so is
    time not increasing (``strict_time``; else only time going back)."""
    last_t = None
    for vals, lines in blocks:
        t = vals[:, 0] * tscale if has_time else None
        if t is not None:
            prev = np.concatenate([[last_t if last_t is not None else -np.inf], t[:-1]])
            back = np.flatnonzero(t <= prev if strict_time else t < prev)
            if back.size:
                i = int(back[0])
                raise CsvImportError(f"{path.name} line {lines[i]}, column {names[picks[0]]}: {t[i]:g} s is not after "
                                     f"the previous row's {prev[i]:g} s (time must increase)")
            last_t = float(t[-1])
        raw = vals[:, 1:] if has_time else vals
        data = np.zeros((len(raw), 6 * len(roles)))
        for j, c in enumerate(cols):
            r, _, axis = c.partition("_")
            pos = roles.index(r) * 6 + AXES.index(axis)
            data[:, pos] = raw[:, j] * (acc_scale if axis.startswith("acc") else gyr_scale)
        _check_range(data, lines, len(roles), path, names, picks[1:] if has_time else picks)
        yield t, data, lines


def _check_range(data: np.ndarray, lines: np.ndarray, n_imu: int, path: Path, names, picks) -> None:
    """Raises CsvImportError at the first value no IMU can read (beyond the wire format's range)."""
    d = data.reshape(len(data), n_imu, 6)
    with np.errstate(all="ignore"):
        bad = (np.abs(d[:, :, 0:3]) > ACC_LIMIT_MS2) | False
        bad_g = np.abs(d[:, :, 3:6]) > GYR_LIMIT_RADS
    hit = np.concatenate([bad, bad_g], axis=2).reshape(len(data), -1)
    if not hit.any():
        return
    row, col = map(int, np.argwhere(hit)[0])
    imu, axis = divmod(col, 6)
    label = f"{('trunk', 'head')[imu]}_{AXES[axis]}"
    what = (f"beyond ±{ACC_LIMIT_MS2 / G:.1f} g, what any IMU (and the wire format) can carry" if axis < 3 else
            f"beyond ±{np.degrees(GYR_LIMIT_RADS):.0f} °/s, what any IMU (and the wire format) can carry")
    value = d[row, imu, axis]
    unit = "m/s²" if axis < 3 else "rad/s"
    raise CsvImportError(f"{path.name} line {lines[row]}, column {label}: {value:.4g} {unit} is {what} "
                         "(check the unit options and the column mapping)")


def _merged_source(csv_path: Path, gyr_path, rename: dict, rate_hz: float | None, acc_scale: float,
                   gyr_scale: float, block_rows: int):
    """Blocks of (grid time, values, line numbers (0: interpolated)) from separate acc / gyr streams."""
    if gyr_path is not None:
        streams = import_streams.read_wide(csv_path, rename, "acc") | import_streams.read_wide(Path(gyr_path), rename,
                                                                                              "gyr")
    else:
        streams = import_streams.read_long(csv_path, rename)
    roles = ["trunk"] + (["head"] if ("head", "acc") in streams or ("head", "gyr") in streams else [])
    for (role, kind), (t, v, lines) in list(streams.items()):
        v = v * (acc_scale if kind == "acc" else gyr_scale)
        streams[(role, kind)] = (t, v, lines)
        limit = ACC_LIMIT_MS2 if kind == "acc" else GYR_LIMIT_RADS
        with np.errstate(all="ignore"):
            over = np.argwhere(np.abs(v) > limit)
        if over.size:
            i, a = map(int, over[0])
            unit = "m/s²" if kind == "acc" else "rad/s"
            raise CsvImportError(f"{csv_path.name if kind == 'acc' or gyr_path is None else Path(gyr_path).name} "
                                 f"line {lines[i]}: {role} {kind} {'xyz'[a]} = {v[i, a]:.4g} {unit} is beyond what any "
                                 "IMU (and the wire format) can carry (check the unit options and the column mapping)")
    period_s = 1.0 / rate_hz if rate_hz else _nice_period(import_streams.median_period(streams))
    gap = max(GAP_PERIODS * period_s, GAP_MIN_S)
    t, values, resamplers = import_streams.merge(streams, roles, period_s, gap, csv_path)
    if len(t) == 0:
        raise CsvImportError(f"{csv_path.name}: the accelerometer and gyroscope streams do not overlap in time")
    timing = GridResampler(period_s, gap, t0=float(t[0]))
    acc_t = streams[("trunk", "acc")][0]
    timing.planned = _planned(acc_t[acc_t >= t[0] - gap], period_s, gap) | {
        "streams": {f"{r}_{k}": len(streams[(r, k)][0]) for r, k in resamplers}}
    timing.span_s = float(t[-1] - t[0]) + period_s

    def blocks():
        for i in range(0, len(t), block_rows):
            yield t[i: i + block_rows], values[i: i + block_rows], np.zeros(len(t[i: i + block_rows]), np.int64)

    return blocks(), roles, period_s, timing


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # pragma: no cover
        return "unknown"


def _check_units(data: np.ndarray, n_imu: int, acc_unit: str, path: Path, line: int) -> None:
    """Catch the commonest mistake (g read as m/s² or the reverse) before it ruins the angles.

    Raises:
        CsvImportError: the median acceleration magnitude of the first block does not look like
            gravity in the unit given.
    """
    d = data.reshape(len(data), n_imu, 6)
    mag = float(np.median(np.linalg.norm(d[:, 0, 0:3], axis=1)))  # m/s^2 if the unit is right
    acc_scale = ACC_UNITS[acc_unit]
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
    where = f"from line {line}" if line > 0 else "in the first rows"
    raise CsvImportError(f"{path.name} {where}: trunk acceleration magnitude reads {raw:.3g} {label} (median "
                         f"of the first rows) where a worn sensor reads about 1 g = 9.81 m/s²{hint}")
