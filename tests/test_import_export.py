"""CSV import (raw IMU → vqf orientation → .nape) and CSV/Parquet export of the findings."""

import math
import sys

import numpy as np
import pytest

from nape import export, importer, wire
from nape.analysis import analyse
from nape.analysis.findings import episode_record, jolt_record
from nape.cli import build_parser
from nape.errors import NapeError
from nape.importer import CsvImportError, import_csv
from nape.recording import open_recording
from tests.recording_factory import G, in_car, pitch_quat, specific_force

RATE = 100.0
AXES = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


def _run(argv):
    args = build_parser().parse_args(argv)
    return args.func(args)


def _window(t, t0, t1, ramp_s=2.0):
    return np.minimum(np.clip((t - t0) / ramp_s, 0, 1), np.clip((t1 - t) / ramp_s, 0, 1))


def imu_columns(pitch_deg, heading_deg, t, lin=None):
    """Raw acc (m/s^2) and gyr (rad/s) of a sensor pitching forward about its y axis."""
    q = pitch_quat(pitch_deg, heading_deg)
    acc = specific_force(q, np.zeros((len(t), 3)) if lin is None else lin)
    gyr = np.zeros((len(t), 3))
    gyr[:, 1] = np.deg2rad(np.gradient(pitch_deg, t))
    return acc, gyr


def write_csv(path, t, imus, acc_scale=1.0, gyr_scale=1.0, delimiter=",", time_col=True):
    """imus: {role: (acc, gyr)} → CSV in the documented layout (acc / acc_scale, gyr / gyr_scale)."""
    names = (["time_s"] if time_col else []) + [f"{r}_{a}" for r in imus for a in AXES]
    cols = ([t] if time_col else []) + [c for acc, gyr in imus.values()
                                        for c in (*(acc / acc_scale).T, *(gyr / gyr_scale).T)]
    np.savetxt(path, np.column_stack(cols), delimiter=delimiter, header=delimiter.join(names), comments="",
               fmt="%.7g")
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """200 s at 100 Hz in a car: trunk 5° (mounting), neck flexed 30° from 40 s to 150 s, a 0.5 g braking jolt at 170 s."""
    d = tmp_path_factory.mktemp("import")
    t = np.arange(int(200 * RATE)) / RATE
    trunk = np.full(len(t), 5.0)
    head = trunk + 30.0 * _window(t, 40, 150)
    fwd = np.array([np.cos(np.deg2rad(25)), np.sin(np.deg2rad(25)), 0.0])
    lin = (-0.5 * G * np.exp(-0.5 * ((t - 170) / 0.25) ** 2))[:, None] * fwd
    # seated in a car: road vibration at the back makes the vehicle context the braking needs
    imus = {"trunk": imu_columns(trunk, 25, t, in_car(lin, RATE)), "head": imu_columns(head, 25, t, lin)}
    csv = write_csv(d / "phone.csv", t, imus)
    res = import_csv(csv, d / "phone.nape", start="2025-01-06T09:30:00Z")
    return {"dir": d, "t": t, "imus": imus, "csv": csv, "result": res, "findings": analyse(res.out)}


# ---------------------------------------------------------------- import


def test_imported_recording_analyses_like_a_recorded_one(session):
    res, f = session["result"], session["findings"]
    assert (res.samples, res.rate_hz, res.roles, res.rate_from) == (20000, pytest.approx(100.0), ["trunk", "head"], "time_s")
    rec = open_recording(res.out)
    meta = rec.metadata
    assert meta["source"] == "import" and meta["imu_roles"] == ["trunk", "head"]
    assert meta["sample_rate_hz"] == pytest.approx(100.0) and meta["created"] == "2025-01-06T09:30:00.000Z"
    assert meta["extras"]["original_file"] == "phone.csv" and "vqf" in meta["extras"]["import"]["orientation"]
    pkts = [wire.decode_packet(p) for _, p in rec.iter_packets()]
    assert {p.count for p in pkts} == {5} and {p.imu_mask for p in pkts} == {3} and pkts[0].period_us == 10000
    assert [p.seq for p in pkts[:3]] == [0, 5, 10] and rec.closed_cleanly
    # the analysis finds what was put in: 30° neck flexion for 40..150 s, a moderate braking jolt
    assert f.samples == 20000 and f.lost_samples == 0 and f.duration_s == pytest.approx(200.0)
    [ep] = f.episodes
    assert ep.kind == "neck_flexion" and ep.mean_deg == pytest.approx(30, abs=1.0)
    assert ep.start_s == pytest.approx(41.3, abs=1.5) and ep.end_s == pytest.approx(150.5, abs=2.5)
    neck = np.array(f.series["neck_flexion_deg"])
    assert np.abs(neck[60:130] - 30).max() < 1.0 and np.abs(neck[12:35]).max() < 1.0
    [j] = f.jolts
    assert (j.cause, j.grade) == ("braking", "moderate") and j.peak_t_s == pytest.approx(170, abs=0.1)
    assert j.peak_trunk_g == pytest.approx(0.5, rel=0.1)


def test_units_delimiter_and_trunk_only(session, tmp_path):
    t, (acc, gyr) = session["t"], session["imus"]["trunk"]
    ref = import_csv(write_csv(tmp_path / "a.csv", t, {"trunk": (acc, gyr)}), tmp_path / "a.nape", start="2025-01-06T09:30:00Z")
    other = write_csv(tmp_path / "b.csv", t, {"trunk": (acc, gyr)}, acc_scale=G, gyr_scale=np.pi / 180, delimiter=";")
    res = import_csv(other, tmp_path / "b.nape", acc_unit="g", gyr_unit="dps", start="2025-01-06T09:30:00Z")
    qa = np.concatenate([wire.decode_packet(p).quat for _, p in open_recording(ref.out).iter_packets()])
    pb = [wire.decode_packet(p) for _, p in open_recording(res.out).iter_packets()]
    assert {p.count for p in pb} == {10} and {p.imu_mask for p in pb} == {1}  # one IMU: 10 samples a packet
    assert np.abs(np.concatenate([p.quat for p in pb]) - qa).max() <= 2.5 / 16384  # same orientation
    with pytest.raises(CsvImportError, match=r"magnitude reads 9.81 g .*looks like m/s²: pass --acc-unit ms2"):
        import_csv(ref.out.with_suffix(".csv"), tmp_path / "c.nape", acc_unit="g")


def test_blocks_stream_the_same_recording_as_one_pass(session, tmp_path):
    """Small blocks (bounded memory) carry filter state across: byte-identical packets."""
    one = import_csv(session["csv"], tmp_path / "one.nape", start="2025-01-06T09:30:00Z", block_rows=10**6)
    small = import_csv(session["csv"], tmp_path / "small.nape", start="2025-01-06T09:30:00Z", block_rows=333)
    a = [p for _, p in open_recording(one.out).iter_packets()]
    b = [p for _, p in open_recording(small.out).iter_packets()]
    assert len(a) == len(b) == 4000 and a == b


def test_rate_option_without_time_column(session, tmp_path):
    t, trunk = session["t"][:3000], tuple(x[:3000] for x in session["imus"]["trunk"])
    csv = write_csv(tmp_path / "r.csv", t, {"trunk": trunk}, time_col=False)
    res = import_csv(csv, tmp_path / "r.nape", rate_hz=100.0)
    assert (res.samples, res.rate_from, res.start_from) == (3000, "--rate", "csv_mtime_minus_duration")
    with pytest.raises(CsvImportError, match="lacks column time_s"):
        import_csv(csv, tmp_path / "r2.nape")


HEADER = "time_s," + ",".join(f"trunk_{a}" for a in AXES)
ROW = "0.01,0,0,9.81,0,0,0"


def _rows(n=30, dt=0.01):
    return [f"{i * dt:.3f},0.1,0,9.8,0,0.01,0" for i in range(n)]


@pytest.mark.parametrize("lines,message", [
    ([], r"x.csv is empty"),
    (["", ""], r"x.csv is empty"),
    ([HEADER], r"no data rows after the header"),
    (["0,0,0,9.81,0,0,0", ROW], r"line 1: no header row: the first line must name the columns"),
    (["time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z", ROW], r"line 1: header lacks columns trunk_acc_x, trunk_acc_y"),
    ([HEADER + ",head_acc_x", ROW + ",0"], r"line 1: head IMU columns incomplete: lacks head_acc_y"),
    ([HEADER + ",time_s", ROW + ",0"], r"line 1: column 'time_s' appears twice"),
    ([HEADER, *_rows(5), "0.05,0.1,0,abc,0,0,0"], r"line 7, column trunk_acc_z: 'abc' is not a number"),
    ([HEADER, *_rows(5), "0.05,0.1,0,,0,0,0"], r"line 7, column trunk_acc_z: is empty"),
    ([HEADER, *_rows(5), "0.05,0.1,0,nan,0,0,0"], r"line 7, column trunk_acc_z: 'nan' is not a finite number"),
    ([HEADER, *_rows(5), "0.05,0.1,0,9.8,0"], r"line 7: too few columns \(5; the header has 7\)"),
    ([HEADER, *_rows(5), "0.05,0.1,0,9.8,0,0,0,1"], r"line 7: too many columns \(8; the header has 7\)"),
    ([HEADER, *_rows(5), "0.03,0.1,0,9.8,0,0,0"], r"line 7, column time_s: 0.03 s is not after the previous row's 0.04 s"),
    ([HEADER, *_rows(5), "0.05,0.1,0,1e308,0,0,0"], r"line 7, column trunk_acc_z: 1e\+308 m/s² is beyond ±32.8 g"),
    ([HEADER, *_rows(5), "0.05,0.1,0,9.8,0,-400,0"], r"line 7, column trunk_gyr_y: -400 rad/s is beyond ±3277 °/s"),
    (["time_s,trunk_acc_x,trunk_acc_y,trunk_acc_z", "0,0,0,9.8"], r"line 1: no gyroscope columns .* --gyr FILE, or .*--no-gyro"),
    ([HEADER, *_rows(1)], r"one data row only; the sample rate needs two"),
    ([HEADER, *_rows(30, dt=0.5)], r"sample rate 2 Hz \(from time_s\) is outside 15.26..10000 Hz"),
    ([HEADER, *[r.replace(",9.8,", ",1.0,") for r in _rows(30)]], r"magnitude reads 1 m/s² .* looks like g: pass --acc-unit g"),
])
def test_bad_csv_gives_one_line_error_naming_line_and_column(tmp_path, lines, message):
    csv = tmp_path / "x.csv"
    csv.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    out = tmp_path / "x.nape"
    with pytest.raises(CsvImportError, match=message) as e:
        import_csv(csv, out, block_rows=10)  # small blocks: errors in later blocks keep their line numbers
    assert "\n" not in str(e.value)
    assert not list(tmp_path.glob("*.nape*")) and not list(tmp_path.glob(".*"))  # nothing half-written left


def test_cli_import_errors_and_refuses_to_overwrite(session, tmp_path, capsys):
    out = tmp_path / "cli.nape"
    assert _run(["import", str(session["csv"]), "--out", str(out), "--start", "2025-01-06T09:30:00Z"]) == 0
    assert "imported 20000 samples" in capsys.readouterr().out and out.exists()
    with pytest.raises(CsvImportError, match="already exists .*--force"):
        _run(["import", str(session["csv"]), "--out", str(out)])
    assert _run(["import", str(session["csv"]), "--out", str(out), "--force", "--acc-unit", "ms2"]) == 0
    with pytest.raises(CsvImportError, match="not an ISO 8601 time"):
        _run(["import", str(session["csv"]), "--out", str(tmp_path / "z.nape"), "--start", "yesterday"])
    with pytest.raises(NapeError, match="cannot read"):
        _run(["import", str(tmp_path / "nope.csv")])
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x89NAP\r\n\x1a\n\xff\xfe\x00\x01")
    with pytest.raises(CsvImportError, match="not UTF-8 text"):
        _run(["import", str(binary)])


# ---------------------------------------------------------------- export


def _plain(v):
    if isinstance(v, list):  # names (a jolt's range_reached) are one text cell, joined by "+"
        return "+".join(v)
    return None if isinstance(v, float) and math.isnan(v) else v


def test_csv_export_round_trips_the_findings(session, tmp_path):
    f = session["findings"]
    paths = export.write_csv(f, tmp_path / "tables")
    assert sorted(p.name for p in paths.values()) == ["angles.csv", "episodes.csv", "jolts.csv"]
    cols, rows = export.read_csv(paths["angles"])
    assert cols[:4] == ["time_s", "trunk_inclination_deg", "neck_flexion_deg", "lying"]
    s = f.series
    assert set(cols) == set(s)  # every series, none invented
    for k, c in enumerate(cols):
        assert [r[k] for r in rows] == s[c], c  # exact: floats round-trip
    cols, rows = export.read_csv(paths["episodes"])
    assert cols[:6] == list(export.EPISODE_COLUMNS) and len(rows) == len(f.episodes) == 1
    assert {"iso11226_verdict", "mean_trunk_inclination_deg"} <= set(cols)  # the JSON report's names
    for row, e in zip(rows, f.episodes):
        assert row == [episode_record(e)[c] for c in cols]
    cols, rows = export.read_csv(paths["jolts"])
    assert cols[:8] == list(export.JOLT_COLUMNS) and "nic_m2s2" in cols and len(rows) == len(f.jolts) == 1
    assert cols[0] == "peak_t_s" and "peak_vehicle_g" in cols and "trace" not in cols
    for row, j in zip(rows, f.jolts):
        assert row == [_plain(jolt_record(j)[c]) for c in cols]
        assert row[0] == j.peak_t_s and row[cols.index("peak_neck_dps")] == j.peak_neck_dps


def test_trunk_only_export_leaves_unmeasured_cells_empty(session, tmp_path):
    t, (acc, gyr) = session["t"], session["imus"]["trunk"]
    res = import_csv(write_csv(tmp_path / "t.csv", t, {"trunk": (acc, gyr)}), tmp_path / "t.nape")
    f = analyse(res.out)
    paths = export.write_csv(f, tmp_path / "out")
    _, angles = export.read_csv(paths["angles"])
    assert len(angles) == 200 and all(r[2] is None for r in angles)
    _, jolts = export.read_csv(paths["jolts"])
    assert len(jolts) == 1 and jolts[0][6] is None and math.isnan(f.jolts[0].peak_head_g)
    assert jolts[0][5] == f.jolts[0].peak_trunk_g


def test_parquet_export_round_trips_when_pyarrow_is_installed(session, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is optional: pip install 'nape[parquet]'")
    f = session["findings"]
    paths = export.write_parquet(f, tmp_path)
    angles = pq.read_table(paths["angles"]).to_pydict()
    assert angles["neck_flexion_deg"] == f.series["neck_flexion_deg"] and angles["lying"] == f.series["lying"]
    jolts = pq.read_table(paths["jolts"]).to_pydict()
    assert jolts["grade"] == [j.grade for j in f.jolts] and jolts["peak_trunk_g"] == [j.peak_trunk_g for j in f.jolts]
    assert pq.read_table(paths["episodes"]).num_rows == len(f.episodes)


def test_export_command_and_parquet_without_pyarrow(session, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmd"
    assert _run(["export", str(session["result"].out), "--csv", str(out)]) == 0
    assert (out / "angles.csv").exists() and str(out / "angles.csv") in capsys.readouterr().out
    with pytest.raises(NapeError, match="nothing to export"):
        _run(["export", str(session["result"].out)])
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    with pytest.raises(export.ExportError, match=r"Parquet export needs pyarrow: pip install 'nape\[parquet\]'"):
        _run(["export", str(session["result"].out), "--csv", str(out), "--parquet"])


@pytest.mark.parametrize("cmd", ["import", "export"])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        _run([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"nape {cmd}" in out


def _jittery_phone_csv(path, rate, seconds, glitches, seed=0, drop=0.01):
    """A car-seated wearer logged by a phone at ``rate`` with ±2 ms jitter and ``drop`` of the rows
    lost (so the import resamples); ``glitches``: (time s, column index 1..12, value[, rows lost
    right before it]) cells set."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate + rng.uniform(-0.002, 0.002, n)
    keep = np.ones(n, bool)
    keep[rng.choice(np.arange(2, n - 2), int(drop * n), replace=False)] = False
    q = pitch_quat(np.zeros(n))
    acc = specific_force(q, in_car(np.zeros((n, 3)), rate)) + rng.normal(0, 0.01, (n, 3))
    gyr = rng.normal(0, 0.002, (n, 3))
    x = np.column_stack([t, acc, gyr, acc, gyr])
    for ts, col, value, *lost in glitches:
        i = int(round(ts * rate))
        keep[i - 1: i + 2] = True  # the glitch and its neighbours are in the file ...
        if lost:
            keep[i - lost[0]: i] = False  # ... unless rows before it were lost
        x[i, col] = value
    header = "time_s," + ",".join(f"{r}_{a}" for r in ("trunk", "head") for a in AXES)
    np.savetxt(path, x[keep], delimiter=",", header=header, comments="", fmt="%.6f")
    return path


@pytest.mark.parametrize("rate", [50.0, 100.0])
def test_a_glitched_row_of_a_resampled_phone_log_is_dropped_not_smeared(tmp_path, rate):
    """Resampling a jittery log interpolates each grid point from the two rows around it: a row
    glitched to 12 g (or 1500 °/s) would become two samples of ~6 g that no longer look like one
    bad sample, and be analysed as shocks and tilts. Such rows are dropped before interpolating."""
    glitches = [(20.0, 3, 12 * G), (35.0, 4, math.radians(1500)), (50.0, 8, -10 * G), (65.0, 1, 9 * G),
                (80.0, 3, 4.0 * G, 2)]  # the last: 3 g above its neighbours, after 2 lost rows
    csv = _jittery_phone_csv(tmp_path / "phone.csv", rate, 90, glitches)
    res = import_csv(csv, tmp_path / "phone.nape", start="2026-01-01T00:00:00+00:00")
    assert res.timing and res.timing["resampled"]
    f = analyse(tmp_path / "phone.nape")
    assert f.jolts == [], [(j.cause, j.grade, j.peak_t_s) for j in f.jolts]


def test_grid_resampler_drops_single_row_spikes_across_blocks():
    from nape.import_timing import GridResampler

    t = np.arange(40) * 0.01 + 0.0013 * np.sin(np.arange(40))
    v = np.zeros((40, 6))
    v[:, 2] = G
    v[10, 0] = 12 * G  # a glitched acc row
    v[14, 2] = 3.5 * G  # ... one axis 2.5 g off: the jolt detector's rule
    v[19, 4] = math.radians(1200)  # a glitched gyro row, the last of the first block
    v[30:, 0] = 3 * G  # a real step (stays): not a spike
    r = GridResampler(0.01, 0.1, t0=0.0)
    r.despike(4 * G, math.radians(400), 1.5 * G)
    k1, a = r.feed(t[:20], v[:20])
    k2, b = r.feed(t[20:], v[20:])
    k3, c = r.finish()
    k = np.concatenate([k1, k2, k3])
    out = np.concatenate([a, b, c])
    assert list(k) == list(range(len(k))) and len(k) >= 39
    assert np.abs(out[:, 0]).max() <= 3 * G + 1e-9 and np.abs(out[:, 4]).max() < 1e-9
    assert out[:, 2].max() < 1.2 * G and out[-1, 0] == pytest.approx(3 * G) and r.spikes == 3
