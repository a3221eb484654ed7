"""Trends across recordings: a local SQLite index of every analysed recording.

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

Units: durations in seconds (``_s``) or minutes (``_min``), times as ISO 8601 strings in
UTC. Days are calendar days in the local time zone (or the ``tz`` passed) of the
recording's start; a recording that spans midnight counts on the day it started.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path

from .errors import NapeError

SCHEMA_VERSION = 1
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
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name)


def row_from_findings(findings, report_paths: Mapping[str, os.PathLike | str] | None = None,
                      analysed_at: datetime | None = None) -> dict:
    """The database row for one analysis (``findings``: a Findings or its JSON dict).

    Raises:
        TrendsError: the recording file does not exist (nothing to fingerprint).
    """
    raw_path = _field(findings, "path")
    if not raw_path:
        raise TrendsError("cannot index findings without a recording path")
    path = Path(raw_path).resolve()
    try:
        st = path.stat()
    except OSError as e:
        raise TrendsError(f"cannot index {path}: {e.strerror or e}") from None
    duration_s = float(_field(findings, "duration_s", 0.0) or 0.0)
    meta = _field(findings, "metadata", {}) or {}
    start = _parse_iso(meta.get("created")) if isinstance(meta, Mapping) else None
    start_source = "metadata"
    if start is None:  # no usable 'created': the file was last written at the end of the recording
        start = datetime.fromtimestamp(st.st_mtime, timezone.utc) - timedelta(seconds=duration_s)
        start_source = "file_mtime"
    exposure = _field(findings, "exposure_s", {}) or {}
    neck_s = exposure.get("neck_over_threshold_s")
    episodes = list(_field(findings, "episodes", []) or [])
    jolts = list(_field(findings, "jolts", []) or [])
    kinds = [_get(e, "kind") for e in episodes]
    grades = [_get(j, "grade") for j in jolts]
    reports = {k: str(Path(v).resolve()) for k, v in (report_paths or {}).items()}
    return {
        "path": str(path),
        "size_bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "start_utc": _iso_utc(start),
        "start_source": start_source,
        "duration_s": duration_s,
        "roles": json.dumps(list(_field(findings, "roles", []) or [])),
        "neck_poor_min": None if neck_s is None else float(neck_s) / 60.0,
        "trunk_poor_min": float(exposure.get("trunk_over_threshold_s", 0.0)) / 60.0,
        "lying_min": float(_field(findings, "lying_s", 0.0) or 0.0) / 60.0,
        "episodes": len(episodes),
        "neck_episodes": kinds.count("neck_flexion"),
        "trunk_episodes": kinds.count("trunk_inclination"),
        "jolts_mild": grades.count("mild"),
        "jolts_moderate": grades.count("moderate"),
        "jolts_severe": grades.count("severe"),
        "analysed_at": _iso_utc(analysed_at or datetime.now(timezone.utc)),
        "report_html": reports.get("html"),
        "report_json": reports.get("json"),
    }


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
    cols = list(row)
    sql = (f"INSERT INTO recordings ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
           f"ON CONFLICT(path) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols if c != 'path')}")
    con = _connect(Path(db_path), create=True)
    try:
        with con:
            con.execute(sql, [row[c] for c in cols])
    except sqlite3.Error as e:
        raise TrendsError(f"cannot write trends database {db_path}: {e}") from None
    finally:
        con.close()
    return row


def index_after_analysis(findings, paths: Mapping[str, os.PathLike | str] | None = None,
                         db: str | os.PathLike | None = None) -> Path | None:
    """Index a just-analysed recording; never fails the analysis.

    Called by ``nape analyse`` after the reports are written. A database problem prints one
    warning line on stderr instead of raising, because the reports are already there.

    Returns:
        The database path, or None if indexing failed.
    """
    db_path = resolve_db_path(db)
    try:
        index_findings(db_path, findings, paths)
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

    @property
    def jolt_total(self) -> int:
        return sum(self.jolts.values())


def _status(row: sqlite3.Row) -> str:
    try:
        st = os.stat(row["path"])
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
            path=r["path"], status=_status(r), start=_parse_iso(r["start_utc"]) or _EPOCH, start_source=r["start_source"],
            duration_s=r["duration_s"], roles=json.loads(r["roles"]), neck_poor_min=r["neck_poor_min"],
            trunk_poor_min=r["trunk_poor_min"], lying_min=r["lying_min"], episodes=r["episodes"],
            neck_episodes=r["neck_episodes"], trunk_episodes=r["trunk_episodes"],
            jolts={g: r[f"jolts_{g}"] for g in GRADES}, analysed_at=r["analysed_at"],
            report_html=r["report_html"], report_json=r["report_json"],
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
            n = sum(con.execute("DELETE FROM recordings WHERE path = ?", (str(p),)).rowcount for p in paths)
    except sqlite3.Error as e:
        raise TrendsError(f"cannot write trends database {db_path}: {e}") from None
    finally:
        con.close()
    return n


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

    @property
    def poor_min(self) -> float:
        """Neck plus trunk poor-posture minutes (the two can overlap in time)."""
        return (self.neck_poor_min or 0.0) + self.trunk_poor_min

    def add(self, s: Session) -> None:
        self.recordings += 1
        self.recorded_min += s.duration_s / 60.0
        if s.neck_poor_min is not None:
            self.neck_poor_min = (self.neck_poor_min or 0.0) + s.neck_poor_min
        self.trunk_poor_min += s.trunk_poor_min
        self.lying_min += s.lying_min
        self.episodes += s.episodes
        for g in GRADES:
            self.jolts[g] += s.jolts[g]


def _local_tz() -> tzinfo:
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
    tz = tz or _local_tz()

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
    tz = tz or _local_tz()

    def key(s: Session):
        d = s.start.astimezone(tz).date()
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}", d - timedelta(days=d.weekday())

    return _group(items, key)


# ---------------------------------------------------------------- HTML page


def _fill_days(days: list[Period]) -> list[Period]:
    """Insert empty days between the first and last so gaps show as gaps (max 400 days)."""
    if not days:
        return days
    by = {p.start: p for p in days}
    first, last = days[0].start, days[-1].start
    if (last - first).days > 400:
        return days
    out, d = [], first
    while d <= last:
        out.append(by.get(d) or Period(d.isoformat(), d))
        d += timedelta(days=1)
    return out


def _charts(periods: list[Period], what: str) -> list:
    import plotly.graph_objects as go

    from .report import GRADE_COLOUR

    x = [p.label for p in periods]
    posture = go.Figure()
    posture.add_trace(go.Bar(x=x, y=[round(p.neck_poor_min or 0.0, 1) for p in periods],
                             name="neck flexed (min)", marker_color="#1565c0"))
    posture.add_trace(go.Bar(x=x, y=[round(p.trunk_poor_min, 1) for p in periods],
                             name="upper back hunched (min)", marker_color="#2e7d32"))
    posture.add_trace(go.Scatter(x=x, y=[round(p.recorded_min, 1) for p in periods], name="recorded (min, right axis)",
                                 mode="lines+markers", line={"color": "#999", "dash": "dot"}, yaxis="y2"))
    posture.update_layout(title=f"Poor-posture minutes per {what} (neck flexion and upper-back inclination over threshold)",
                          barmode="group", yaxis_title="poor posture (min)", height=360,
                          yaxis2={"title": "recorded (min)", "overlaying": "y", "side": "right", "rangemode": "tozero",
                                  "showgrid": False},
                          margin={"l": 50, "r": 20, "t": 60, "b": 60}, legend={"orientation": "h", "y": -0.25})
    jolts = go.Figure()
    for g in GRADES:
        jolts.add_trace(go.Bar(x=x, y=[p.jolts[g] for p in periods], name=g, marker_color=GRADE_COLOUR[g]))
    jolts.update_layout(title=f"Jolts per {what}, by grade", barmode="stack", yaxis_title="jolts", height=320,
                        margin={"l": 50, "r": 20, "t": 60, "b": 60}, legend={"orientation": "h", "y": -0.25})
    for fig in (posture, jolts):
        fig.update_xaxes(type="category")
    return [posture, jolts]


def render_trends_html(items: list[Session], tz: tzinfo | None = None) -> str:
    """The trends page as one self-contained HTML string (plotly.js inlined, no network)."""
    import html

    from plotly.offline import get_plotlyjs

    from .report import fmt_duration

    tz = tz or _local_tz()
    n_days = len(daily_from(items, tz))
    days = _fill_days(daily_from(items, tz))
    weeks = weekly_from(items, tz)
    figs = _charts(days, "day") + _charts(weeks, "week")
    plots = "".join(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"trend{i}",
                                config={"responsive": True}) for i, fig in enumerate(figs))
    missing = sum(s.status == "missing" for s in items)
    rows = "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in (
            html.escape(s.start.astimezone(tz).strftime("%Y-%m-%d %H:%M")),
            html.escape(Path(s.path).name), fmt_duration(s.duration_s),
            "–" if s.neck_poor_min is None else f"{s.neck_poor_min:.0f}", f"{s.trunk_poor_min:.0f}",
            " / ".join(str(s.jolts[g]) for g in GRADES), html.escape(s.status),
        )) + "</tr>"
        for s in items
    )
    total = Period("all", days[0].start if days else date.today())
    for s in items:
        total.add(s)
    summary = (f"{len(items)} recording{'s' if len(items) != 1 else ''} on {n_days} day"
               f"{'s' if n_days != 1 else ''}: {fmt_duration(total.recorded_min * 60)} recorded, "
               f"neck flexed {fmt_duration((total.neck_poor_min or 0) * 60)}, upper back hunched "
               f"{fmt_duration(total.trunk_poor_min * 60)}, jolts "
               + ", ".join(f"{total.jolts[g]} {g}" for g in GRADES) + ".")
    note = f"<p>{missing} recording file{'s are' if missing != 1 else ' is'} missing; their results still count.</p>" if missing else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nape trends</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: auto; padding: 1em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3em; text-align: left; }}
.meta {{ color: #666; font-size: .85em; }}
</style>
<script>{get_plotlyjs()}</script>
</head><body>
<h1>Nape trends</h1>
<p>{html.escape(summary)}</p>{note}
<p class="meta">Days are the local calendar day on which each recording started. Neck and upper-back minutes
can overlap in time. Days without recordings show as empty.</p>
{plots}
<h2>Recordings</h2>
<table><thead><tr><th>start</th><th>file</th><th>recorded</th><th>neck flexed (min)</th>
<th>back hunched (min)</th><th>jolts mild / moderate / severe</th><th>status</th></tr></thead>
<tbody>{rows}</tbody></table>
<p class="meta">Nape is not a medical device. Grades describe movement intensity, not injury.</p>
</body></html>
"""


# ---------------------------------------------------------------- commands


def _console():
    from rich.console import Console

    return Console()


def _short_path(path: str) -> str:
    """File name, then its folder (with ~ for the home folder) dimmed on the next line."""
    p = Path(path)
    folder = str(p.parent)
    home = str(Path.home())
    if folder == home or folder.startswith(home + os.sep):
        folder = "~" + folder[len(home):]
    return f"{p.name}\n[dim]{folder}[/dim]"


def cmd_sessions(args) -> int:
    """List the recordings indexed in the trends database and whether their files still exist."""
    from rich.table import Table

    from .report import fmt_duration

    db_path = resolve_db_path(args.db)
    items = sessions(db_path)
    c = _console()
    if args.forget_missing:
        gone = [s.path for s in items if s.status == "missing"]
        n = forget(db_path, gone)
        c.print(f"forgot {n} missing recording{'s' if n != 1 else ''}")
        items = [s for s in items if s.status != "missing"]
    t = Table(title=f"Recordings in {db_path}")
    t.add_column("start", no_wrap=True)
    t.add_column("recording", overflow="fold", ratio=1)  # the column that folds in a narrow terminal
    for col in ("duration", "neck min", "back min", "episodes", "jolts m/M/S"):
        t.add_column(col, justify="right")
    t.add_column("status", no_wrap=True, min_width=7)
    style = {"ok": "green", "missing": "bold red", "changed": "yellow"}
    for s in items:
        t.add_row(s.start.astimezone().strftime("%Y-%m-%d %H:%M"), _short_path(s.path), fmt_duration(s.duration_s),
                  "–" if s.neck_poor_min is None else f"{s.neck_poor_min:.1f}", f"{s.trunk_poor_min:.1f}",
                  str(s.episodes), "/".join(str(s.jolts[g]) for g in GRADES), f"[{style[s.status]}]{s.status}[/]")
    c.print(t)
    missing = sum(s.status == "missing" for s in items)
    changed = sum(s.status == "changed" for s in items)
    if missing:
        c.print(f"{missing} file{'s' if missing != 1 else ''} missing (moved or deleted); their results still "
                "count in trends (nape sessions --forget-missing drops them)")
    if changed:
        c.print(f"{changed} file{'s' if changed != 1 else ''} changed since analysed: run nape analyse on them again")
    return 0


def print_trends_summary(items: list[Session], console=None, tz: tzinfo | None = None, last_days: int = 14) -> None:
    """Terminal summary: the last ``last_days`` days and every week."""
    from rich.table import Table

    c = console or _console()
    for title, periods in ((f"Last {last_days} days with recordings", daily_from(items, tz)[-last_days:]),
                           ("Weeks", weekly_from(items, tz))):
        t = Table(title=title)
        for col in ("period", "recordings", "recorded min", "neck flexed min", "back hunched min", "episodes",
                    "jolts mild", "moderate", "severe"):
            t.add_column(col, justify="right" if col != "period" else "left")
        for p in periods:
            t.add_row(p.label, str(p.recordings), f"{p.recorded_min:.0f}",
                      "–" if p.neck_poor_min is None else f"{p.neck_poor_min:.1f}", f"{p.trunk_poor_min:.1f}",
                      str(p.episodes), str(p.jolts["mild"]), str(p.jolts["moderate"]),
                      f"[bold red]{p.jolts['severe']}[/]" if p.jolts["severe"] else "0")
        c.print(t)


def cmd_trends(args) -> int:
    """Write an HTML page of daily and weekly poor-posture minutes and jolts, and print a summary."""
    db_path = resolve_db_path(args.db)
    items = sessions(db_path)
    if not items:
        raise TrendsError(f"trends database {db_path} holds no recordings yet: analyse one first (nape analyse FILE)")
    out = Path(args.out)
    if out.is_dir():
        out = out / "trends.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_trends_html(items), encoding="utf-8")
    c = _console()
    print_trends_summary(items, c)
    c.print(f"[bold]trends:[/bold] {out.resolve()}", soft_wrap=True)
    return 0


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--db FILE`` (the trends database) to a command's parser."""
    parser.add_argument("--db", metavar="FILE",
                        help=f"trends database (default: $NAPE_DB or {default_db_path()})")


def register(subparsers) -> None:
    """Add the ``sessions`` and ``trends`` commands to the nape CLI."""
    s = subparsers.add_parser(
        "sessions", help="list analysed recordings indexed for trends (marks missing files)",
        description=cmd_sessions.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every 'nape analyse' adds its recording to the trends database.\n\n"
               "example:\n  nape sessions\n  nape sessions --db ~/nape/nape.db --forget-missing")
    add_db_argument(s)
    s.add_argument("--forget-missing", action="store_true",
                   help="drop recordings whose file no longer exists from the database")
    s.set_defaults(func=cmd_sessions)

    t = subparsers.add_parser(
        "trends", help="daily and weekly poor-posture minutes and jolts across recordings (HTML + summary)",
        description=cmd_trends.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The page is one self-contained file (plotly inlined) that opens offline.\n\n"
               "example:\n  nape trends\n  nape trends --out reports/trends.html --db ~/nape/nape.db")
    add_db_argument(t)
    t.add_argument("--out", default="nape-trends.html", help="HTML file to write (default: ./nape-trends.html)")
    t.set_defaults(func=cmd_trends)
