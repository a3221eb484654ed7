"""Trends across recordings: a local SQLite index of every analysed recording, and the
per-day and per-week totals read from it (the page: :mod:`nape.report.trends`; the commands:
:mod:`nape.cli.trends`).

Every ``nape analyse`` adds (or updates) one row per recording in a small SQLite
database, so ``nape sessions`` lists what was analysed and ``nape trends`` shows daily and
weekly poor-posture minutes and jolt counts across many recordings without analysing them
again.

Where the database lives (first that applies):

1. ``--db FILE`` on the command line (``db=`` in the API);
2. the ``NAPE_DB`` environment variable;
3. ``nape.db`` in the user's data directory (``platformdirs.user_data_path("nape")`` when
   platformdirs is installed, else ``~/.local/share/nape/nape.db``).

One row per recording, keyed by the recording's resolved path (analysing a file again
replaces its row). The row keeps a fingerprint of the file (size in bytes and modification
time in ns) so a listing can tell a recording that was deleted (``missing``) or changed
since it was analysed (``changed``) from one that is still as analysed (``ok``).

Neck range-of-motion tests (``nape rom``) go into a second table, ``rom``: one row per test
recording with the end range of each of the six directions in degrees, so ``nape trends``
shows a neck getting stiffer or freer across days and ``nape sessions`` lists the tests.
Schema version 2 added that table; a version-1 database gains it on first use.

Units: durations in seconds (``_s``) or minutes (``_min``), times as ISO 8601 strings in
UTC. Days are calendar days in the local time zone (or the ``tz`` passed) of the
recording's start; a recording that spans midnight counts on the day it started.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path

from . import safe_write
from .errors import NapeError

SCHEMA_VERSION = 3  # 2: the rom table; 3: valid data per recording (coverage)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # stands in for an unreadable start time
GRADES = ("mild", "moderate", "severe")

_COLUMNS = """
    path            TEXT PRIMARY KEY,   -- resolved absolute path of the .nape file
    size_bytes      INTEGER NOT NULL,   -- fingerprint when analysed: file size
    mtime_ns        INTEGER NOT NULL,   -- fingerprint when analysed: modification time, ns
    start_utc       TEXT NOT NULL,      -- recording start, ISO 8601 UTC
    start_source    TEXT NOT NULL,      -- 'metadata' (header 'created') or 'file_mtime'
    duration_s      REAL NOT NULL,
    roles           TEXT NOT NULL,      -- JSON list, e.g. ["trunk", "head"]
    neck_poor_min   REAL,               -- minutes of neck flexion over threshold (NULL: no head IMU)
    trunk_poor_min  REAL NOT NULL,      -- minutes of trunk inclination over threshold
    lying_min       REAL NOT NULL,
    episodes        INTEGER NOT NULL,   -- long poor-posture episodes, all kinds
    neck_episodes   INTEGER NOT NULL,
    trunk_episodes  INTEGER NOT NULL,
    jolts_mild      INTEGER NOT NULL,
    jolts_moderate  INTEGER NOT NULL,
    jolts_severe    INTEGER NOT NULL,
    analysed_at     TEXT NOT NULL,      -- ISO 8601 UTC
    report_html     TEXT,               -- path of the HTML report, if written
    report_json     TEXT                -- path of the JSON report, if written
"""


# schema 3: how much valid data a recording's figures rest on (nape.analysis.coverage); added to
# older databases by ALTER TABLE (NULL / 0 for recordings indexed before)
_COVERAGE_COLUMNS = {"valid_s": "REAL", "low_coverage": "INTEGER NOT NULL DEFAULT 0"}

ROM_DIRECTIONS = ("flexion", "extension", "lateral_left", "lateral_right", "rotation_left", "rotation_right")
#: The directions in words (as nape.analysis.rom.LABELS).
ROM_LABELS = {"flexion": "bending forward", "extension": "bending backward", "lateral_left": "side-bending left",
              "lateral_right": "side-bending right", "rotation_left": "turning left", "rotation_right": "turning right"}

_ROM_COLUMNS = """
    path            TEXT PRIMARY KEY,   -- resolved absolute path of the ROM test recording
    size_bytes      INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    start_utc       TEXT NOT NULL,      -- test start, ISO 8601 UTC
    start_source    TEXT NOT NULL,      -- 'metadata' or 'file_mtime'
    duration_s      REAL NOT NULL,
""" + "".join(f"    {d}_deg REAL,  -- held end range, deg (NULL: not measured)\n" for d in ROM_DIRECTIONS) + """
    below_typical   INTEGER NOT NULL,   -- directions below the typical range
    analysed_at     TEXT NOT NULL,
    report_html     TEXT,
    report_json     TEXT
"""


class TrendsError(NapeError):
    """The trends database cannot be opened, read or written."""


# ---------------------------------------------------------------- database location


def default_db_path() -> Path:
    """``nape.db`` in the user's data directory (see the module docstring)."""
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".local" / "share" / "nape" / "nape.db"
    return Path(platformdirs.user_data_path("nape")) / "nape.db"


def resolve_db_path(db: str | os.PathLike | None = None) -> Path:
    """The database path to use: ``db`` if given, else ``$NAPE_DB``, else :func:`default_db_path`."""
    if db:
        return Path(db).expanduser()
    env = os.environ.get("NAPE_DB")
    if env:
        return Path(env).expanduser()
    return default_db_path()


def _connect(db_path: Path, create: bool) -> sqlite3.Connection:
    """Open (and, with ``create``, create) the database and check its schema version.

    Raises:
        TrendsError: no database there (and not ``create``), not a SQLite file, made by a
            newer nape, or it cannot be created.
    """
    db_path = Path(db_path)
    if not db_path.exists():
        if not create:
            raise TrendsError(f"no trends database at {db_path}: analyse a recording first (nape analyse FILE)")
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrendsError(f"cannot create folder for the trends database {db_path.parent}: {e.strerror or e}") from None
    elif db_path.is_dir():
        raise TrendsError(f"trends database {db_path} is a folder, not a file")
    try:
        con = sqlite3.connect(db_path, timeout=10.0)
        con.row_factory = sqlite3.Row
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            con.close()
            raise TrendsError(f"trends database {db_path} was made by a newer nape (schema {version}); upgrade nape")
        if version < SCHEMA_VERSION:
            with con:
                con.execute(f"CREATE TABLE IF NOT EXISTS recordings ({_COLUMNS})")
                have = {r[1] for r in con.execute("PRAGMA table_info(recordings)")}
                for name, decl in _COVERAGE_COLUMNS.items():
                    if name not in have:
                        con.execute(f"ALTER TABLE recordings ADD COLUMN {name} {decl}")
                con.execute(f"CREATE TABLE IF NOT EXISTS rom ({_ROM_COLUMNS})")
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as e:
        raise TrendsError(f"cannot use trends database {db_path}: {e}") from None
    return con


# ---------------------------------------------------------------- indexing


def _iso_utc(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_iso(text: str | None) -> datetime | None:
    """An aware datetime from ISO 8601 ('Z' accepted); naive times are taken as UTC."""
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _field(findings, name: str, default=None):
    """A Findings attribute, or a key when a dict (e.g. a loaded JSON report) is given."""
    if isinstance(findings, Mapping):
        return findings.get(name, default)
    return getattr(findings, name, default)


def _get(obj, name: str):
    """A key of a dict (a JSON report's part), else an attribute (None when missing)."""
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _file_and_start(result, what: str, created):
    """The recording's resolved path, its stat, the duration (s) and when it started (UTC) with
    where that came from: ``created`` (ISO 8601, "metadata"), else the file's modification
    time minus the duration ("file_mtime": it was last written at the end of the recording).

    Raises:
        TrendsError: no path, or the file does not exist (nothing to fingerprint).
    """
    raw_path = _field(result, "path")
    if not raw_path:
        raise TrendsError(f"cannot index {what} without a recording path")
    path = Path(raw_path).resolve()
    try:
        st = path.stat()
    except OSError as e:
        raise TrendsError(f"cannot index {path}: {e.strerror or e}") from None
    duration_s = float(_field(result, "duration_s", 0.0) or 0.0)
    start = _parse_iso(created)
    if start is not None:
        return path, st, duration_s, start, "metadata"
    return path, st, duration_s, datetime.fromtimestamp(st.st_mtime, timezone.utc) - timedelta(seconds=duration_s), \
        "file_mtime"


def row_from_findings(findings, report_paths: Mapping[str, os.PathLike | str] | None = None,
                      analysed_at: datetime | None = None) -> dict:
    """The database row for one analysis (``findings``: a Findings or its JSON dict).

    Raises:
        TrendsError: the recording file does not exist (nothing to fingerprint).
    """
    meta = _field(findings, "metadata", {}) or {}
    path, st, duration_s, start, start_source = _file_and_start(
        findings, "findings", meta.get("created") if isinstance(meta, Mapping) else None)
    exposure = _field(findings, "exposure_s", {}) or {}  # an Exposure, or its JSON dict
    neck_s = _get(exposure, "neck_over_threshold_s")
    episodes = list(_field(findings, "episodes", []) or [])
    jolts = list(_field(findings, "jolts", []) or [])
    kinds = [_get(e, "kind") for e in episodes]
    grades = [_get(j, "grade") for j in jolts]
    reports = {k: str(Path(v).resolve()) for k, v in (report_paths or {}).items()}
    return {
        "path": db_text(str(path)),
        "size_bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "start_utc": _iso_utc(start),
        "start_source": start_source,
        "duration_s": duration_s,
        "roles": json.dumps(list(_field(findings, "roles", []) or [])),
        "neck_poor_min": None if neck_s is None else float(neck_s) / 60.0,
        "trunk_poor_min": float(_get(exposure, "trunk_over_threshold_s") or 0.0) / 60.0,
        "lying_min": float(_field(findings, "lying_s", 0.0) or 0.0) / 60.0,
        "episodes": len(episodes),
        "neck_episodes": kinds.count("neck_flexion"),
        "trunk_episodes": kinds.count("trunk_inclination"),
        "jolts_mild": grades.count("mild"),
        "jolts_moderate": grades.count("moderate"),
        "jolts_severe": grades.count("severe"),
        "analysed_at": _iso_utc(analysed_at or datetime.now(timezone.utc)),
        "report_html": db_text(reports.get("html")),
        "report_json": db_text(reports.get("json")),
        "valid_s": _float_or_none(_field(findings, "valid_s")),
        "low_coverage": int(bool(_field(findings, "low_coverage", False))),
    }


def _float_or_none(v) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def index_findings(db_path: str | os.PathLike, findings, report_paths: Mapping[str, os.PathLike | str] | None = None) -> dict:
    """Add or update (by resolved recording path) the row of one analysed recording.

    Args:
        db_path: the SQLite file (created with its folder if missing).
        findings: a :class:`nape.analysis.Findings` (or the dict of its JSON report).
        report_paths: ``{"html": path, "json": path}`` as returned by ``report.write_reports``.

    Returns:
        The row written (column name → value).

    Raises:
        TrendsError: the database cannot be used or the recording file is gone.
    """
    row = row_from_findings(findings, report_paths)
    _upsert(db_path, "recordings", row)
    return row


def index_after_analysis(findings, paths: Mapping[str, os.PathLike | str] | None = None,
                         db: str | os.PathLike | None = None) -> Path | None:
    """Index a just-analysed recording; never fails the analysis.

    Called by ``nape analyse`` after the reports are written. A database problem prints one
    warning line on stderr instead of raising, because the reports are already there.

    Returns:
        The database path, or None if indexing failed.
    """
    return _index_quietly(index_findings, db, findings, paths)


def _index_quietly(index, db, *args) -> Path | None:
    """Run ``index(db_path, *args)``; a database problem is one warning line, not an error
    (the reports are already written). Returns the database path, or None if it failed."""
    db_path = resolve_db_path(db)
    try:
        index(db_path, *args)
    except NapeError as e:
        print(f"nape: warning: not added to trends: {e}", file=sys.stderr)
        return None
    return db_path


# ---------------------------------------------------------------- reading


@dataclass
class Session:
    """One indexed recording. ``status``: ok, missing (file deleted/moved) or changed (file
    differs from when it was analysed: analyse it again)."""

    path: str
    status: str
    start: datetime  # aware, UTC
    start_source: str
    duration_s: float
    roles: list[str]
    neck_poor_min: float | None
    trunk_poor_min: float
    lying_min: float
    episodes: int
    neck_episodes: int
    trunk_episodes: int
    jolts: dict[str, int]  # grade → count
    analysed_at: str
    report_html: str | None
    report_json: str | None
    valid_s: float | None = None  # seconds of valid data (None: indexed before schema 3)
    low_coverage: bool = False  # little valid data: listed, left out of the totals

    @property
    def jolt_total(self) -> int:
        return sum(self.jolts.values())


def db_text(path: str | None) -> str | bytes | None:
    """A path as SQLite can hold it: text, or its raw bytes when the name is not valid UTF-8
    (a Linux file name decoded with surrogateescape; SQLite text must be UTF-8)."""
    if path is None:
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def from_db(value: str | bytes | None) -> str | None:
    """The inverse of :func:`db_text`."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _status(row: sqlite3.Row) -> str:
    try:
        st = os.stat(from_db(row["path"]))
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "missing"
    if st.st_size != row["size_bytes"] or st.st_mtime_ns != row["mtime_ns"]:
        return "changed"
    return "ok"


def sessions(db_path: str | os.PathLike) -> list[Session]:
    """Every indexed recording, oldest start first, with its file status.

    Raises:
        TrendsError: no database there, or it cannot be read.
    """
    con = _connect(Path(db_path), create=False)
    try:
        rows = con.execute("SELECT * FROM recordings ORDER BY start_utc, path").fetchall()
    except sqlite3.Error as e:
        raise TrendsError(f"cannot read trends database {db_path}: {e}") from None
    finally:
        con.close()
    out = []
    for r in rows:
        out.append(Session(
            path=from_db(r["path"]), status=_status(r), start=_parse_iso(r["start_utc"]) or _EPOCH, start_source=r["start_source"],
            duration_s=r["duration_s"], roles=json.loads(r["roles"]), neck_poor_min=r["neck_poor_min"],
            trunk_poor_min=r["trunk_poor_min"], lying_min=r["lying_min"], episodes=r["episodes"],
            neck_episodes=r["neck_episodes"], trunk_episodes=r["trunk_episodes"],
            jolts={g: r[f"jolts_{g}"] for g in GRADES}, analysed_at=r["analysed_at"],
            report_html=from_db(r["report_html"]), report_json=from_db(r["report_json"]),
            valid_s=r["valid_s"], low_coverage=bool(r["low_coverage"]),
        ))
    return out


def forget(db_path: str | os.PathLike, paths: Iterable[str]) -> int:
    """Delete the rows of these recording paths; returns how many were deleted.

    Raises:
        TrendsError: the database cannot be used.
    """
    con = _connect(Path(db_path), create=False)
    try:
        with con:
            n = sum(con.execute(f"DELETE FROM {table} WHERE path = ?", (db_text(str(p)),)).rowcount
                    for p in paths for table in ("recordings", "rom"))
    except sqlite3.Error as e:
        raise TrendsError(f"cannot write trends database {db_path}: {e}") from None
    finally:
        con.close()
    return n


# ---------------------------------------------------------------- range of motion (nape rom)


def row_from_rom(result, report_paths: Mapping[str, os.PathLike | str] | None = None,
                 analysed_at: datetime | None = None) -> dict:
    """The ``rom`` table row of one ROM test (``result``: a RomResult or its JSON dict).

    Raises:
        TrendsError: the recording file does not exist (nothing to fingerprint).
    """
    meta = _field(result, "metadata", None)
    path, st, duration_s, start, start_source = _file_and_start(
        result, "a range-of-motion result", meta.get("created") if isinstance(meta, Mapping) else _field(result, "created"))
    dirs = {_get(d, "direction"): d for d in (_field(result, "directions", []) or [])}
    reports = {k: str(Path(v).resolve()) for k, v in (report_paths or {}).items()}
    row = {"path": db_text(str(path)), "size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "start_utc": _iso_utc(start),
           "start_source": start_source, "duration_s": duration_s}
    for d in ROM_DIRECTIONS:
        v = _get(dirs[d], "max_deg") if d in dirs else None
        row[f"{d}_deg"] = None if v is None else float(v)
    row["below_typical"] = sum(_get(d, "verdict") == "below" for d in dirs.values())
    row["analysed_at"] = _iso_utc(analysed_at or datetime.now(timezone.utc))
    row["report_html"] = db_text(reports.get("html"))
    row["report_json"] = db_text(reports.get("json"))
    return row


def _upsert(db_path: str | os.PathLike, table: str, row: dict) -> None:
    """Insert ``row`` into ``table``, or replace the row of the same ``path``.

    Raises:
        TrendsError: the database cannot be written.
    """
    cols = list(row)
    sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
           f"ON CONFLICT(path) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols if c != 'path')}")
    con = _connect(Path(db_path), create=True)
    try:
        with con:
            con.execute(sql, [row[c] for c in cols])
    except sqlite3.Error as e:
        raise TrendsError(f"cannot write trends database {db_path}: {e}") from None
    finally:
        con.close()


def index_rom(db_path: str | os.PathLike, result, report_paths: Mapping[str, os.PathLike | str] | None = None) -> dict:
    """Add or update (by resolved recording path) the row of one range-of-motion test.

    Returns:
        The row written (column name → value).

    Raises:
        TrendsError: the database cannot be used or the recording file is gone.
    """
    row = row_from_rom(result, report_paths)
    _upsert(db_path, "rom", row)
    return row


def index_rom_after_analysis(result, paths: Mapping[str, os.PathLike | str] | None = None,
                             db: str | os.PathLike | None = None) -> Path | None:
    """Index a just-analysed ROM test; never fails the analysis (one warning line instead).

    Returns:
        The database path, or None if indexing failed.
    """
    return _index_quietly(index_rom, db, result, paths)


@dataclass
class RomSession:
    """One indexed range-of-motion test. ``max_deg``: direction → end range, deg (None: not measured)."""

    path: str
    status: str
    start: datetime
    start_source: str
    duration_s: float
    max_deg: dict[str, float | None]
    below_typical: int
    analysed_at: str
    report_html: str | None
    report_json: str | None


def rom_sessions(db_path: str | os.PathLike) -> list[RomSession]:
    """Every indexed ROM test, oldest first, with its file status.

    Raises:
        TrendsError: no database there, or it cannot be read.
    """
    con = _connect(Path(db_path), create=False)
    try:
        rows = con.execute("SELECT * FROM rom ORDER BY start_utc, path").fetchall()
    except sqlite3.Error as e:
        raise TrendsError(f"cannot read trends database {db_path}: {e}") from None
    finally:
        con.close()
    return [RomSession(path=from_db(r["path"]), status=_status(r), start=_parse_iso(r["start_utc"]) or _EPOCH,
                       start_source=r["start_source"], duration_s=r["duration_s"],
                       max_deg={d: r[f"{d}_deg"] for d in ROM_DIRECTIONS}, below_typical=r["below_typical"],
                       analysed_at=r["analysed_at"], report_html=from_db(r["report_html"]),
                       report_json=from_db(r["report_json"]))
            for r in rows]


@dataclass
class RomDay:
    """Mean end range per direction of the ROM tests that started on one day, deg."""

    label: str
    start: date
    tests: int
    max_deg: dict[str, float | None]


def rom_daily_from(items: list[RomSession], tz: tzinfo | None = None) -> list[RomDay]:
    """Per calendar day (of each test's start, in ``tz``): the mean of that day's tests per direction."""
    tz = tz or local_tz()
    by: dict[date, list[RomSession]] = {}
    for s in items:
        by.setdefault(s.start.astimezone(tz).date(), []).append(s)
    out = []
    for d in sorted(by):
        tests = by[d]
        mean = {}
        for k in ROM_DIRECTIONS:
            vals = [t.max_deg[k] for t in tests if t.max_deg[k] is not None]
            mean[k] = round(sum(vals) / len(vals), 1) if vals else None
        out.append(RomDay(d.isoformat(), d, len(tests), mean))
    return out


@dataclass
class Period:
    """Totals of the recordings that started in one day or one ISO week."""

    label: str  # '2025-01-06' for a day, '2025-W02' for a week
    start: date  # the day, or the Monday of the week
    recordings: int = 0
    recorded_min: float = 0.0
    neck_poor_min: float | None = None  # None: no recording with a head IMU
    trunk_poor_min: float = 0.0
    lying_min: float = 0.0
    episodes: int = 0
    jolts: dict[str, int] = field(default_factory=lambda: {g: 0 for g in GRADES})
    left_out: int = 0  # recordings with little valid data (nape.analysis.coverage): not in the totals

    @property
    def shown(self) -> str:
        """The period as a page or table shows it: the day as is, a week by its Monday
        ('week of 6 Jan 2025': an ISO week number means nothing to most wearers)."""
        if "-W" not in self.label:
            return self.label
        return f"week of {self.start.day} {self.start:%b %Y}"

    @property
    def poor_min(self) -> float:
        """Neck plus trunk poor-posture minutes (the two can overlap in time)."""
        return (self.neck_poor_min or 0.0) + self.trunk_poor_min

    def add(self, s: Session) -> None:
        if s.low_coverage:  # its figures rest on too little data to count with the others
            self.left_out += 1
            return
        self.recordings += 1
        self.recorded_min += s.duration_s / 60.0
        if s.neck_poor_min is not None:
            self.neck_poor_min = (self.neck_poor_min or 0.0) + s.neck_poor_min
        self.trunk_poor_min += s.trunk_poor_min
        self.lying_min += s.lying_min
        self.episodes += s.episodes
        for g in GRADES:
            self.jolts[g] += s.jolts[g]


def local_tz() -> tzinfo:
    """This computer's time zone (UTC when it has none)."""
    return datetime.now().astimezone().tzinfo or timezone.utc


def _group(items: list[Session], key) -> list[Period]:
    periods: dict[str, Period] = {}
    for s in items:
        label, start = key(s)
        periods.setdefault(label, Period(label, start)).add(s)
    return [periods[k] for k in sorted(periods)]


def daily(db_path: str | os.PathLike, tz: tzinfo | None = None) -> list[Period]:
    """Totals per calendar day (of each recording's start, in ``tz``; default local time).

    Recordings whose file has since been deleted still count: they were analysed.

    Raises:
        TrendsError: no database there, or it cannot be read.
    """
    return daily_from(sessions(db_path), tz)


def daily_from(items: list[Session], tz: tzinfo | None = None) -> list[Period]:
    """:func:`daily` for sessions already read."""
    tz = tz or local_tz()

    def key(s: Session):
        d = s.start.astimezone(tz).date()
        return d.isoformat(), d

    return _group(items, key)


def weekly(db_path: str | os.PathLike, tz: tzinfo | None = None) -> list[Period]:
    """Totals per ISO week (Monday to Sunday) of each recording's start.

    Raises:
        TrendsError: no database there, or it cannot be read.
    """
    return weekly_from(sessions(db_path), tz)


def weekly_from(items: list[Session], tz: tzinfo | None = None) -> list[Period]:
    """:func:`weekly` for sessions already read."""
    tz = tz or local_tz()

    def key(s: Session):
        d = s.start.astimezone(tz).date()
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}", d - timedelta(days=d.weekday())

    return _group(items, key)
