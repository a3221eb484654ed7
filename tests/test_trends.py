"""Trends: the SQLite index of analysed recordings, sessions, daily/weekly totals, commands."""

import os
import re
import sqlite3
from datetime import date, timezone
from pathlib import Path

import numpy as np
import pytest

from nape import trends
from nape.analysis import analyse
from nape.cli import build_parser
from nape.errors import NapeError
from nape.report import write_reports
from nape.report.trends import rom_changes
from nape.settings import AnalysisSettings
from tests.recording_factory import G, in_car, pitch_quat, write_recording

RATE = 50.0


def _run(argv):
    args = build_parser().parse_args(argv)
    return args.func(args)


def _window(n, i0, i1, ramp=100):
    i = np.arange(n)
    return np.minimum(np.clip((i - i0) / ramp, 0, 1), np.clip((i1 - i) / ramp, 0, 1))


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """200 s: neck flexed 30° for ~75 s, a moderate braking jolt and a severe bump."""
    d = tmp_path_factory.mktemp("trends")
    n = int(200 * RATE)
    neck = 30.0 * _window(n, int(20 * RATE), int(95 * RATE))
    t = np.arange(n) / RATE
    lin = np.zeros((n, 3))
    lin[:, 0] = -0.8 * G * np.exp(-0.5 * ((t - 120) / 0.25) ** 2)
    lin[:, 2] = 2.0 * G * np.exp(-0.5 * ((t - 160) / 0.06) ** 2)
    p = write_recording(d / "drive.nape", RATE, pitch_quat(np.zeros(n)), pitch_quat(neck), lin_trunk=in_car(lin, RATE),
                        lin_head=lin)
    return p, analyse(p)


def _fake(tmp_path, name, created, neck_s=None, trunk_s=0.0, grades=(), duration_s=3600.0):
    """A JSON-report-like dict for a small real file (index_findings accepts both)."""
    p = tmp_path / name
    p.write_bytes(b"x" * 10)
    exposure = {"trunk_over_threshold_s": trunk_s}
    if neck_s is not None:
        exposure["neck_over_threshold_s"] = neck_s
    return {"path": str(p), "metadata": {"created": created}, "duration_s": duration_s,
            "roles": ["trunk", "head"] if neck_s is not None else ["trunk"], "exposure_s": exposure,
            "episodes": [{"kind": "neck_flexion"}], "jolts": [{"grade": g} for g in grades], "lying_s": 0.0}


def test_index_sessions_and_daily_match_the_findings(drive, tmp_path):
    path, f = drive
    f.metadata["created"] = "2025-01-06T09:30:00.000Z"
    db = tmp_path / "sub" / "nape.db"  # folder is created
    reports = write_reports(f, tmp_path / "rep", "drive")
    row = trends.index_findings(db, f, reports)
    assert row["path"] == str(path.resolve())
    [s] = trends.sessions(db)
    assert s.status == "ok" and s.path == str(path.resolve())
    assert s.start.isoformat() == "2025-01-06T09:30:00+00:00" and s.start_source == "metadata"
    assert s.duration_s == pytest.approx(200.0, abs=0.1)
    assert s.neck_poor_min == pytest.approx(f.exposure_s.neck_over_threshold_s / 60)
    assert 1.1 < s.neck_poor_min < 1.4  # ~75 s of 30° neck flexion
    assert s.trunk_poor_min == 0.0
    assert s.jolts == {g: sum(j.grade == g for j in f.jolts) for g in trends.GRADES}
    assert s.jolts["moderate"] == 1 and s.jolts["severe"] == 1
    assert s.episodes == len(f.episodes) == 1
    assert s.report_html == str(reports["html"].resolve())
    [day] = trends.daily(db, tz=timezone.utc)
    assert day.label == "2025-01-06" and day.recordings == 1
    assert day.neck_poor_min == pytest.approx(s.neck_poor_min) and day.jolts == s.jolts


def test_reanalysis_updates_the_row_and_changed_files_are_flagged(drive, tmp_path):
    path, f = drive
    db = tmp_path / "nape.db"
    trends.index_findings(db, f)
    stricter = analyse(path, AnalysisSettings(neck_flexion_deg=35.0))
    trends.index_findings(db, stricter)
    [s] = trends.sessions(db)  # one row per recording: upserted
    assert s.neck_poor_min == 0.0 and s.episodes == 0
    copy = tmp_path / "copy.nape"
    copy.write_bytes(path.read_bytes())
    f2 = analyse(copy)
    trends.index_findings(db, f2)
    with open(copy, "ab") as fh:
        fh.write(b"\0")  # the file changed after it was analysed
    status = {Path(s.path).name: s.status for s in trends.sessions(db)}
    assert status == {"drive.nape": "ok", "copy.nape": "changed"}


def test_deleted_file_is_reported_missing_not_crashed_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    db = tmp_path / "nape.db"
    keep = _fake(tmp_path, "keep.nape", "2025-02-03T08:00:00Z", neck_s=600, grades=("mild",))
    gone = _fake(tmp_path, "gone.nape", "2025-02-04T08:00:00Z", neck_s=300, grades=("severe",))
    trends.index_findings(db, keep)
    trends.index_findings(db, gone)
    Path(gone["path"]).unlink()
    assert [s.status for s in trends.sessions(db)] == ["ok", "missing"]
    assert [d.jolts["severe"] for d in trends.daily(db, tz=timezone.utc)] == [0, 1]  # still counts
    assert _run(["sessions", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "1 file missing" in out
    assert _run(["sessions", "--db", str(db), "--forget-missing"]) == 0
    assert "forgot 1 missing recording" in capsys.readouterr().out
    assert [Path(s.path).name for s in trends.sessions(db)] == ["keep.nape"]


def test_daily_and_weekly_totals_across_days(tmp_path):
    db = tmp_path / "nape.db"
    # Mon 6 Jan and Tue 7 Jan 2025 are ISO week 2; Mon 13 Jan is week 3
    for name, created, neck, trunk, grades in [
        ("a.nape", "2025-01-06T08:00:00Z", 600, 120, ("mild", "mild")),
        ("b.nape", "2025-01-06T15:00:00Z", 300, 60, ("moderate",)),
        ("c.nape", "2025-01-07T09:00:00Z", 1200, 0, ()),
        ("d.nape", "2025-01-13T23:30:00Z", None, 900, ("severe",)),  # trunk only
    ]:
        trends.index_findings(db, _fake(tmp_path, name, created, neck, trunk, grades))
    days = trends.daily(db, tz=timezone.utc)
    assert [d.label for d in days] == ["2025-01-06", "2025-01-07", "2025-01-13"]
    assert [d.recordings for d in days] == [2, 1, 1]
    assert [d.neck_poor_min for d in days] == [15.0, 20.0, None]
    assert [d.trunk_poor_min for d in days] == [3.0, 0.0, 15.0]
    assert [d.jolts for d in days] == [{"mild": 2, "moderate": 1, "severe": 0}, {"mild": 0, "moderate": 0, "severe": 0},
                                       {"mild": 0, "moderate": 0, "severe": 1}]
    weeks = trends.weekly(db, tz=timezone.utc)
    assert [(w.label, w.start, w.recordings, w.neck_poor_min) for w in weeks] == [
        ("2025-W02", date(2025, 1, 6), 3, 35.0), ("2025-W03", date(2025, 1, 13), 1, None)]
    # the day is the local day of the start: 23:30 UTC on the 13th is the 14th at UTC+1
    from datetime import timedelta
    assert trends.daily(db, tz=timezone(timedelta(hours=1)))[-1].label == "2025-01-14"


def test_trends_command_writes_offline_html_and_prints_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    db = tmp_path / "nape.db"
    trends.index_findings(db, _fake(tmp_path, "a.nape", "2025-01-06T08:00:00Z", 600, 120, ("mild", "severe")))
    trends.index_findings(db, _fake(tmp_path, "b.nape", "2025-01-09T08:00:00Z", 300, 60, ()))
    monkeypatch.setenv("NAPE_DB", str(db))  # the environment variable picks the database
    out = tmp_path / "t.html"
    assert _run(["trends", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    inlined = len(page) > 1_000_000 and "Plotly" in page
    assert inlined, "plotly.js is not inlined"
    external = re.findall(r"<(?:script|link)[^>]+(?:src|href)=[^>]*>", page)
    assert not external, external  # opens offline: no external scripts or styles
    shown = [d for d in ("2025-01-06", "2025-01-07", "2025-01-08", "2025-01-09", "per week (each bar at its Monday;")
             if d in page]
    assert len(shown) == 5, shown  # empty days between recordings are shown too
    text = capsys.readouterr().out
    assert "2025-01-06" in text and "week of 6 Jan 2025" in text and str(out.resolve()) in text


def test_database_location_and_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NAPE_DB", raising=False)
    assert trends.resolve_db_path(None) == trends.default_db_path()
    assert trends.default_db_path().name == "nape.db"
    monkeypatch.setenv("NAPE_DB", str(tmp_path / "env.db"))
    assert trends.resolve_db_path(None) == tmp_path / "env.db"
    assert trends.resolve_db_path(tmp_path / "arg.db") == tmp_path / "arg.db"
    with pytest.raises(trends.TrendsError, match="no trends database .* analyse a recording first"):
        _run(["sessions", "--db", str(tmp_path / "none.db")])
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all" * 100)
    with pytest.raises(NapeError, match="cannot use trends database"):
        trends.sessions(junk)
    newer = tmp_path / "newer.db"
    sqlite3.connect(newer).execute("PRAGMA user_version = 99").connection.close()
    with pytest.raises(NapeError, match="newer nape"):
        trends.sessions(newer)
    # the analyse hook never fails the analysis: it warns on one line instead
    f = _fake(tmp_path, "a.nape", "2025-01-06T08:00:00Z", 60)
    assert trends.index_after_analysis(f, {}, db=tmp_path) is None  # a folder, not a database
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nape: warning: not added to trends")
    assert trends.index_after_analysis(f, {"json": tmp_path / "a.json"}) == tmp_path / "env.db"
    assert trends.sessions(tmp_path / "env.db")[0].roles == ["trunk", "head"]


def test_start_falls_back_to_file_time_without_created(tmp_path):
    f = _fake(tmp_path, "old.nape", "not a time", 60, duration_s=600.0)
    os.utime(f["path"], (1736150400, 1736150400))  # 2025-01-06T08:00:00Z
    trends.index_findings(tmp_path / "n.db", f)
    [s] = trends.sessions(tmp_path / "n.db")
    assert s.start_source == "file_mtime" and s.start.isoformat() == "2025-01-06T07:50:00+00:00"


@pytest.mark.parametrize("cmd", ["sessions", "trends"])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        _run([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"nape {cmd}" in out and "--db" in out


# ---------------------------------------------------------------- neck range of motion (nape rom)


def _rom(tmp_path, name, created, **max_deg):
    """A ROM JSON-like dict for a small real file (index_rom accepts a RomResult or its JSON)."""
    p = tmp_path / name
    p.write_bytes(b"x" * 10)
    base = {"flexion": 55.0, "extension": 65.0, "lateral_left": 42.0, "lateral_right": 41.0,
            "rotation_left": 75.0, "rotation_right": 73.0} | max_deg
    lows = {"flexion": 50, "extension": 60, "lateral_left": 40, "lateral_right": 40, "rotation_left": 70,
            "rotation_right": 70}
    dirs = [{"direction": k, "max_deg": v, "verdict": "not_measured" if v is None else
             "below" if v < lows[k] else "typical"} for k, v in base.items()]
    return {"path": str(p), "created": created, "duration_s": 74.0, "directions": dirs}


def test_rom_tests_over_days_show_a_stiffer_or_freer_neck(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    db = tmp_path / "nape.db"
    trends.index_rom(db, _rom(tmp_path, "r1.nape", "2025-03-03T08:00:00Z", rotation_left=58.0))
    trends.index_rom(db, _rom(tmp_path, "r2.nape", "2025-03-03T18:00:00Z", rotation_left=62.0, extension=None))
    trends.index_rom(db, _rom(tmp_path, "r3.nape", "2025-03-10T08:00:00Z", rotation_left=72.0, flexion=44.0))
    items = trends.rom_sessions(db)
    assert [Path(s.path).name for s in items] == ["r1.nape", "r2.nape", "r3.nape"]
    assert [s.below_typical for s in items] == [1, 1, 1]
    assert items[1].max_deg["extension"] is None
    days = trends.rom_daily_from(items, tz=timezone.utc)
    assert [(d.label, d.tests) for d in days] == [("2025-03-03", 2), ("2025-03-10", 1)]
    assert days[0].max_deg["rotation_left"] == 60.0  # mean of the day's tests
    assert days[0].max_deg["extension"] == 65.0  # a not-measured value does not pull the mean down
    changes = rom_changes(items)
    assert len(changes) == 2
    assert changes[0].startswith("Bending forward: 55° on") and "(-11°, stiffer)" in changes[0]
    assert changes[1].startswith("Rotation left: 58° on") and "(+14°, freer)" in changes[1]
    assert rom_changes(items[:2], change_deg=5.0) == ["Range of motion unchanged within 5° from the first to "
                                                             "the latest test."]
    # the trends page works with ROM tests only, and says what changed
    out = tmp_path / "t.html"
    assert _run(["trends", "--db", str(db), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Neck range of motion" in page and "(+14°, freer)" in page and "3 guided tests" in page
    assert 'id="trend0"' in page  # the ROM chart
    text = capsys.readouterr().out
    assert "Neck range of motion" in text and "2025-03-10" in text and "stiffer" in text
    # sessions lists the tests; re-indexing a test updates its row; missing files are forgotten
    trends.index_rom(db, _rom(tmp_path, "r1.nape", "2025-03-03T08:00:00Z", rotation_left=60.0))
    assert len(trends.rom_sessions(db)) == 3 and trends.rom_sessions(db)[0].max_deg["rotation_left"] == 60.0
    Path(items[2].path).unlink()
    assert _run(["sessions", "--db", str(db)]) == 0
    out_text = capsys.readouterr().out
    assert "range-of-motion tests" in out_text and "r2.nape" in out_text and "1 file missing" in out_text
    assert _run(["sessions", "--db", str(db), "--forget-missing"]) == 0
    assert [Path(s.path).name for s in trends.rom_sessions(db)] == ["r1.nape", "r2.nape"]


def test_a_version_1_database_gains_the_rom_table_and_keeps_its_rows(tmp_path):
    db = tmp_path / "v1.db"
    con = sqlite3.connect(db)
    with con:
        con.execute(f"CREATE TABLE recordings ({trends._COLUMNS})")
        con.execute("PRAGMA user_version = 1")
    con.close()
    old = _fake(tmp_path, "old.nape", "2025-01-06T08:00:00Z", 600)
    row = {k: v for k, v in trends.row_from_findings(old).items() if k not in trends._COVERAGE_COLUMNS}
    con = sqlite3.connect(db)
    with con:
        con.execute(f"INSERT INTO recordings ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    con.close()
    assert trends.rom_sessions(db) == []  # the rom table was added on first use
    trends.index_rom(db, _rom(tmp_path, "r.nape", "2025-01-07T08:00:00Z"))
    assert [Path(s.path).name for s in trends.sessions(db)] == ["old.nape"]
    assert len(trends.rom_sessions(db)) == 1
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == trends.SCHEMA_VERSION == 3
    assert trends.sessions(db)[0].valid_s is None and not trends.sessions(db)[0].low_coverage  # schema 3 columns


def test_sessions_reanalyse_changed_files(drive, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    path, _ = drive
    db = tmp_path / "nape.db"
    copy = tmp_path / "copy.nape"
    copy.write_bytes(path.read_bytes())
    trends.index_findings(db, analyse(copy), write_reports(analyse(copy), tmp_path / "rep", "copy"))
    broken = _fake(tmp_path, "broken.nape", "2025-01-06T08:00:00Z", 60)
    trends.index_findings(db, broken)
    with open(copy, "ab") as fh:
        fh.write(b"\0")
    with open(broken["path"], "ab") as fh:
        fh.write(b"\0")  # changed, and not a recording at all: it cannot be analysed
    assert {s.status for s in trends.sessions(db)} == {"changed"}
    assert _run(["sessions", "--db", str(db), "--reanalyse"]) == 0
    captured = capsys.readouterr()
    assert "re-analysed 1 changed file, 1 failed" in captured.out
    warn = [line for line in captured.err.splitlines() if line.startswith("nape: warning:")]
    assert len(warn) == 1 and "broken.nape not re-analysed" in warn[0]
    status = {Path(s.path).name: s.status for s in trends.sessions(db)}
    assert status == {"copy.nape": "ok", "broken.nape": "changed"}
    [s] = [s for s in trends.sessions(db) if s.path.endswith("copy.nape")]
    assert Path(s.report_html).parent == tmp_path / "rep"  # the report is rewritten where it was


def test_trends_charts_leave_days_without_recordings_empty(tmp_path):
    """A day without recordings is a gap in the "recorded" line, not a drop to 0 minutes; days
    sit on a date axis (short '6 Jan' ticks that fit a phone, not a cut '2025-01')."""
    from nape.report.trends import _charts, fill_days

    items = []
    for name, created in (("a.nape", "2025-01-06T08:00:00Z"), ("b.nape", "2025-01-09T08:00:00Z")):
        trends.index_findings(tmp_path / "t.db", _fake(tmp_path, name, created, 600, 120, ("mild",)))
    items = trends.sessions(tmp_path / "t.db")
    days = fill_days(trends.daily_from(items, tz=timezone.utc))
    assert [d.recordings for d in days] == [1, 0, 0, 1]
    (posture, _title), (jolts, _title2) = _charts(days, "day")
    recorded = next(t for t in posture.data if t.name.startswith("recorded"))
    assert list(recorded.y) == [60.0, None, None, 60.0] and recorded.connectgaps is False
    assert posture.layout.xaxis.type == "date" and posture.layout.xaxis.tickformat == "%-d %b"
    assert jolts.layout.yaxis.dtick == 1  # whole jolts
