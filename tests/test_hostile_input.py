"""Hostile input found by driving every command as a hostile user (the robustness pass of Dec 2026).

Each case failed before its fix: a command that hung on a named pipe, an import that overwrote its
own CSV, a write that replaced a device node, a damaged header that made the analysis drop every
intact sample without a word, repeated sequence numbers dropped silently, a head-only recording
reported as the upper back, CSV numbers with decimal commas read as a wrong sample rate.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from nape import wire
from nape.analysis import analyse
from nape.analysis.calibration import _zero_rate_offset
from nape.analysis.core import HEAD_ONLY_WORDS
from nape.errors import NapeError
from nape.importer import import_csv
from nape.recording import RecordingError, RecordingWriter, open_recording
from nape.safe_write import check_target, write_text
from nape.settings import AnalysisSettings
from tests.recording_factory import pitch_quat, specific_force, write_recording

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("time_s,trunk_acc_x,trunk_acc_y,trunk_acc_z,trunk_gyr_x,trunk_gyr_y,trunk_gyr_z")


def _csv(path: Path, n: int = 400, rate: float = 100.0, sep: str = ",", dec: str = ".") -> Path:
    rows = [HEADER.replace(",", sep)]
    for i in range(n):
        cells = [f"{i / rate:.3f}", "0.100", "0.000", "9.800", "0.000", "0.000", "0.000"]
        rows.append(sep.join(c.replace(".", dec) for c in cells))
    path.write_text("\n".join(rows) + "\n")
    return path


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _nape(*argv: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, so a hang fails the test (TimeoutExpired) instead of stalling it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT)]), COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "nape.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def _one_line_error(p: subprocess.CompletedProcess, *words: str) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode != 0 and "Traceback" not in p.stderr + p.stdout, p.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("nape"), p.stderr
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    n = 1500
    return write_recording(d / "rec.nape", 50.0, pitch_quat(np.zeros(n)), pitch_quat(np.full(n, 10.0)))


# ------------------------------------------------------------------ named pipes (FIFOs)


@pytest.mark.parametrize("argv", [
    ["info", "{fifo}"],
    ["analyse", "{fifo}", "--no-trends", "--out", "{tmp}"],
    ["export", "{fifo}", "--csv", "{tmp}/x"],
    ["rom", "{fifo}", "--out", "{tmp}", "--db", "{tmp}/t.db"],
    ["import", "{fifo}", "--out", "{tmp}/x.nape"],
    ["import", "{csv}", "--gyr", "{fifo}", "--out", "{tmp}/x.nape"],
    ["analyse", "{rec}", "--no-trends", "--out", "{tmp}", "--settings", "{fifo}"],
], ids=["info", "analyse", "export", "rom", "import", "import-gyr", "settings"])
def test_a_named_pipe_as_input_is_refused_not_waited_on(argv, rec, tmp_path):
    fifo = tmp_path / "pipe.nape"
    os.mkfifo(fifo)
    csv = _csv(tmp_path / "in.csv")
    args = [a.replace("{fifo}", str(fifo)).replace("{tmp}", str(tmp_path)).replace("{rec}", str(rec))
            .replace("{csv}", str(csv)) for a in argv]
    _one_line_error(_nape(*args), "not a regular file")


def _blocked(signum, frame):
    raise TimeoutError("blocked on the FIFO")


def test_open_recording_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "p.nape"
    os.mkfifo(fifo)
    old = signal.signal(signal.SIGALRM, _blocked)
    signal.alarm(10)  # a regression fails here instead of stalling the run
    try:
        with pytest.raises(RecordingError, match="not a regular file"):
            open_recording(fifo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_zero_rate_offset_of_two_far_still_windows_takes_no_mean_of_nothing():
    """Two still windows 0.8 °/s apart: the median lies 0.4 °/s from each, beyond the trim, so no
    window was 'close' and the mean of an empty selection warned (and was NaN)."""
    win = 100
    gyr = np.zeros((2 * win, 1, 3))
    gyr[win:, 0, 0] = np.radians(0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        off = _zero_rate_offset(gyr, win, np.radians([[0.4, 0.0, 0.0]]), AnalysisSettings())
    assert np.isfinite(off).all() and abs(float(np.degrees(off[0, 0])) - 0.4) < 1e-6


# ------------------------------------------------------------------ output onto the input or a device


@pytest.mark.parametrize("how", ["same-path", "dotdot-path", "symlink", "default-out-of-a-.nape-csv", "gyr-file"])
def test_import_never_overwrites_the_csv_it_reads(how, tmp_path):
    src = _csv(tmp_path / ("in.nape" if how.startswith("default") else "in.csv"))
    before = _sha(src)
    (tmp_path / "sub").mkdir()
    out = {"same-path": src, "dotdot-path": tmp_path / "sub" / ".." / src.name, "symlink": tmp_path / "link.nape",
           "default-out-of-a-.nape-csv": None, "gyr-file": tmp_path / "gyr.csv"}[how]
    if how == "symlink":
        out.symlink_to(src)
    gyr = None
    if how == "gyr-file":
        gyr = _csv(out)
        gyr_before = _sha(gyr)
    argv = ["import", str(src), "--force"] + ([] if out is None else ["--out", str(out)])
    if gyr is not None:
        argv = ["import", str(_csv(tmp_path / "acc.csv")), "--gyr", str(gyr), "--out", str(gyr), "--force"]
    _one_line_error(_nape(*argv), "is the CSV being imported")
    assert _sha(src) == before
    if gyr is not None:
        assert _sha(gyr) == gyr_before


@pytest.mark.parametrize("argv", [
    ["import", "{csv}", "--out", "{target}", "--force"],
    ["trends", "--db", "{db}", "--out", "{target}"],
], ids=["import", "trends"])
def test_output_onto_a_pipe_is_refused_and_the_node_stays(argv, rec, tmp_path):
    target = tmp_path / "out-pipe"
    os.mkfifo(target)
    db = tmp_path / "t.db"
    if "trends" in argv:
        assert _nape("analyse", str(rec), "--out", str(tmp_path / "r"), "--db", str(db)).returncode == 0
    args = [a.replace("{csv}", str(_csv(tmp_path / "in.csv"))).replace("{target}", str(target))
            .replace("{db}", str(db)) for a in argv]
    _one_line_error(_nape(*args), "not a regular file")
    assert target.is_fifo()  # before the fix the file was renamed over it (as root: over /dev/full too)


def test_safe_write_refuses_non_regular_targets(tmp_path):
    with pytest.raises(OSError, match="(?i)not a regular file"):
        check_target(Path("/dev/null"))  # only looked at: this test never writes near /dev
    path = tmp_path / "fifo"
    os.mkfifo(path)
    with pytest.raises(OSError, match="(?i)not a regular file"):
        check_target(path)
    with pytest.raises(OSError, match="(?i)not a regular file"):
        write_text(path, "x")
    assert path.is_fifo()
    check_target(tmp_path / "new.txt")  # nothing there: fine
    assert write_text(tmp_path / "new.txt", "y").read_text() == "y"


def test_import_into_a_missing_folder_names_the_users_file(tmp_path):
    out = tmp_path / "no" / "such" / "x.nape"
    line = _one_line_error(_nape("import", str(_csv(tmp_path / "in.csv")), "--out", str(out)), str(out))
    assert ".importing-" not in line


# ------------------------------------------------------------------ CSV numbers and times


@pytest.mark.parametrize("sep,words", [(";", "decimal comma"), (",", "decimal commas?"), ("\t", "decimal comma")],
                         ids=["semicolon", "comma", "tab"])
def test_decimal_commas_are_named_not_read_as_a_wrong_rate(sep, words, tmp_path):
    src = _csv(tmp_path / "dec.csv", sep=sep, dec=",")
    with pytest.raises(NapeError) as e:
        import_csv(src, tmp_path / "x.nape")
    assert words in str(e.value) and "Hz" not in str(e.value)


@pytest.mark.parametrize("time_cell", ["1700000000", "0"])
def test_rows_that_all_share_one_time_are_said_as_such(time_cell, tmp_path):
    src = tmp_path / "same.csv"
    src.write_text(HEADER + "\n" + "".join(f"{time_cell},0.1,0,9.8,0,0,0\n" for _ in range(50)))
    with pytest.raises(NapeError, match="all 50 data rows have the same time_s"):
        import_csv(src, tmp_path / "x.nape")


def test_a_cell_beyond_the_csv_field_limit_is_one_line(tmp_path):
    src = tmp_path / "huge.csv"
    src.write_text(HEADER + "\n" + "1" * 200_000 + "\n")
    _one_line_error(_nape("import", str(src), "--out", str(tmp_path / "x.nape")), "huge.csv")


# ------------------------------------------------------------------ which IMUs: header against packets


def _with_metadata(src: Path, dst: Path, meta: bytes) -> Path:
    """``src`` with its header's metadata replaced by ``meta`` (a valid header CRC)."""
    data = src.read_bytes()
    mlen = struct.unpack_from("<I", data, 10)[0]
    hdr = data[:8] + struct.pack("<HI", 1, len(meta)) + meta
    dst.write_bytes(hdr + struct.pack("<I", zlib.crc32(hdr)) + data[18 + mlen:])
    return dst


@pytest.mark.parametrize("meta,said", [
    (b"\xff\xfe not json", "header is damaged"),
    (json.dumps({"imu_roles": ["trunk"], "sample_rate_hz": 50}).encode(), "lists the IMUs trunk"),
    (json.dumps({"imu_roles": ["neck", "pelvis"]}).encode(), "lists the IMUs neck, pelvis"),
    (json.dumps({"imu_roles": "trunk"}).encode(), "does not say which IMUs"),
    (json.dumps({}).encode(), "does not say which IMUs"),
], ids=["not-json", "roles-too-few", "roles-unknown", "roles-not-a-list", "no-roles"])
def test_a_wrong_or_damaged_header_does_not_drop_the_samples(meta, said, rec, tmp_path):
    path = _with_metadata(rec, tmp_path / "bad-header.nape", meta)
    f = analyse(path, AnalysisSettings())
    assert f.samples == 1500 and f.roles == ["trunk", "head"]  # before: 0 samples and no word why
    assert any(said in w and "packets carry trunk and head" in w for w in f.input_warnings), f.input_warnings


def test_a_matching_header_gets_no_header_doubt(rec):
    f = analyse(rec, AnalysisSettings())
    assert not any("packets carry" in w for w in f.input_warnings)


def test_a_head_only_recording_says_its_upper_back_figures_are_the_heads(tmp_path):
    n = 1500
    q = pitch_quat(np.full(n, 30.0))
    a = specific_force(q, np.zeros((n, 3)))
    meta = {"device_name": "t", "imu_roles": ["head"], "sample_rate_hz": 50.0, "source": "simulated",
            "wire_format_version": 1}
    path = tmp_path / "head.nape"
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for i in range(0, n, 10):
            w.write_packets([wire.encode_samples(2, i, i * 20, 20000, np.zeros(10, np.uint8), q[i:i + 10, None],
                                                 a[i:i + 10, None], np.zeros((10, 1, 3)))], 1.7e9 + i / 50)
    f = analyse(path, AnalysisSettings())
    assert f.roles == ["head"] and f.samples == n
    assert HEAD_ONLY_WORDS in f.input_warnings
    r = _nape("analyse", str(path), "--no-trends", "--out", str(tmp_path))
    assert r.returncode == 0 and "Only a head sensor" in " ".join(r.stdout.split())
    report = json.loads((tmp_path / "head.json").read_text())
    assert HEAD_ONLY_WORDS in report["headlines"]


# ------------------------------------------------------------------ repeated sequence numbers


@pytest.mark.parametrize("repeat", [2, 10])
def test_repeated_sequence_numbers_are_said_not_silently_dropped(repeat, tmp_path):
    n = 3000
    q = pitch_quat(np.zeros(n))
    a = specific_force(q, np.zeros((n, 3)))
    meta = {"device_name": "t", "imu_roles": ["trunk"], "sample_rate_hz": 100.0, "source": "simulated",
            "wire_format_version": 1}
    path = tmp_path / "dup.nape"
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for k, i in enumerate(range(0, n, 10)):
            seq = (k // repeat) * 10  # each packet's sequence numbers sent `repeat` times
            w.write_packets([wire.encode_samples(1, seq, i * 10, 10000, np.zeros(10, np.uint8), q[i:i + 10, None],
                                                 a[i:i + 10, None], np.zeros((10, 1, 3)))], 1.7e9 + i / 100)
    f = analyse(path, AnalysisSettings())
    dropped = n - n // repeat
    assert any(w.startswith(f"{dropped} samples repeated the sequence number") for w in f.input_warnings), \
        f.input_warnings


def test_a_clean_recording_has_no_repeat_warning(rec):
    assert not any("repeated the sequence number" in w for w in analyse(rec, AnalysisSettings()).input_warnings)


# ------------------------------------------------------------------ the virtual radio's key store


@pytest.mark.parametrize("kind", ["folder", "not-json", "json-list", "fifo"])
@pytest.mark.parametrize("cmd", ["record", "pair-forget"])
def test_a_bad_key_store_is_named_not_taken_for_a_missing_adapter(kind, cmd, tmp_path):
    ks = tmp_path / "keys.json"
    if kind == "folder":
        ks.mkdir()
    elif kind == "fifo":
        os.mkfifo(ks)
    else:
        ks.write_text("not json" if kind == "not-json" else "[1, 2]")
    argv = (["record", str(tmp_path / "r.nape"), "--virtual", "--duration", "1", "--quiet", "--keystore", str(ks)]
            if cmd == "record" else ["pair", "--forget", "--virtual", "--keystore", str(ks)])
    line = _one_line_error(_nape(*argv, timeout=60), str(ks), "key store")
    assert "adapter" not in line


# ------------------------------------------------------------------ Ctrl-C while starting up


def test_ctrl_c_while_the_commands_load_is_one_line(monkeypatch, capsys):
    """Building the parser imports every command group (numpy, scipy, …: about a second); a Ctrl-C
    then printed a KeyboardInterrupt traceback."""
    import nape.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        rc = cli.main(["info", "x.nape"])
    except KeyboardInterrupt:  # caught here, so a regression fails this test, not the whole run
        pytest.fail("KeyboardInterrupt escaped nape.cli.main (a traceback for the user)")
    assert rc == 130
    err = capsys.readouterr().err
    assert err.strip() == "nape: interrupted"


# ------------------------------------------------------------------ an output folder that is a file


@pytest.mark.parametrize("argv", [
    ["analyse", "{rec}", "--no-trends", "--out", "{file}"],
    ["export", "{rec}", "--csv", "{file}"],
    ["demo", "--link", "pipe", "--time-scale", "0.02", "--out", "{file}"],
], ids=["analyse", "export", "demo"])
def test_an_output_folder_that_is_a_file_says_so(argv, rec, tmp_path):
    target = tmp_path / "taken.txt"
    target.write_text("keep me")
    args = [a.replace("{rec}", str(rec)).replace("{file}", str(target)) for a in argv]
    line = _one_line_error(_nape(*args), "not a folder", str(target))
    assert "File exists" not in line and target.read_text() == "keep me"


def test_no_gyro_with_a_gyroscope_file_is_a_contradiction(tmp_path):
    acc, gyr = _csv(tmp_path / "acc.csv"), _csv(tmp_path / "gyr.csv")
    with pytest.raises(NapeError, match="contradict"):
        import_csv(acc, tmp_path / "x.nape", gyr_path=gyr, no_gyro=True)
    assert not (tmp_path / "x.nape").exists()


# ------------------------------------------------------------------ second pass (robust2)


def _jumping(path: Path, jump: int, n: int = 6000) -> Path:
    """100 Hz trunk recording whose sequence numbers jump by ``jump`` half-way while the device
    clock (t_ms) and the host clock run on one sample period per sample."""
    q = pitch_quat(np.zeros(n))
    a = specific_force(q, np.zeros((n, 3)))
    meta = {"device_name": "t", "imu_roles": ["trunk"], "sample_rate_hz": 100.0, "source": "simulated",
            "wire_format_version": 1}
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for i in range(0, n, 10):
            seq = (i + (jump if i >= n // 2 else 0)) & 0xFFFFFFFF
            w.write_packets([wire.encode_samples(1, seq, i * 10, 10000, np.zeros(10, np.uint8), q[i:i + 10, None],
                                                 a[i:i + 10, None], np.zeros((10, 1, 3)))], 1.7e9 + i / 100)
    return path


@pytest.mark.parametrize("jump", [1 << 31, (1 << 31) - 1, 100_000])
def test_a_sequence_jump_the_clocks_contradict_is_corruption_not_hours_of_gap(jump, tmp_path):
    f = analyse(_jumping(tmp_path / "jump.nape", jump), AnalysisSettings())
    # before: a gap of 5965 h (or 1000 s), 0 % valid, 90 s of analysis; at 2^31 exactly, the second
    # half was dropped as "late"
    assert f.duration_s == pytest.approx(60.0, abs=0.1) and f.gaps == [] and f.lost_samples == 0
    assert f.valid_s == pytest.approx(60.0, abs=1.0)
    said = [w for w in f.input_warnings if "sequence number jumped" in w]
    assert len(said) == 1 and "corruption" in said[0] and "\n" not in said[0], f.input_warnings


def test_a_sequence_jump_the_device_clock_confirms_is_still_a_gap(tmp_path):
    n = 3000
    q = pitch_quat(np.zeros(n))
    path = write_recording(tmp_path / "gap.nape", 100.0, q, drop_packets=set(range(200, 300)))  # 5 s lost
    f = analyse(path, AnalysisSettings())
    assert len(f.gaps) == 1 and f.gaps[0]["missing_samples"] == 500
    assert not any("sequence number jumped" in w for w in f.input_warnings)


def test_an_interrupted_report_write_leaves_the_previous_pair(rec, tmp_path, monkeypatch):
    from nape import safe_write
    from nape.report import write_reports

    f = analyse(rec, AnalysisSettings())
    paths = write_reports(f, tmp_path, "r")
    before = {k: p.read_bytes() for k, p in paths.items()}
    f.duration_s += 1.0  # a different run: both files would change
    calls = {"n": 0}
    real = os.fsync

    def interrupted(fd):
        calls["n"] += 1
        if calls["n"] == 2:  # the second file's write: Ctrl-C
            raise KeyboardInterrupt
        return real(fd)

    monkeypatch.setattr(safe_write.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_reports(f, tmp_path, "r")
    monkeypatch.setattr(safe_write.os, "fsync", real)
    # before: the new JSON stood beside the previous run's HTML
    assert {k: p.read_bytes() for k, p in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]  # no temporary left
    write_reports(f, tmp_path, "r")
    assert all(p.read_bytes() != before[k] for k, p in paths.items())


@pytest.mark.parametrize("header_hz", [1000.0, 25.0])
def test_a_header_rate_the_packets_contradict_is_said(header_hz, tmp_path):
    from nape.report.recording import quality_notes

    n = 3000
    q = pitch_quat(np.zeros(n))
    a = specific_force(q, np.zeros((n, 3)))
    meta = {"device_name": "t", "imu_roles": ["trunk"], "sample_rate_hz": header_hz, "source": "simulated",
            "wire_format_version": 1}
    path = tmp_path / "rate.nape"
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for i in range(0, n, 10):
            w.write_packets([wire.encode_samples(1, i, i * 10, 10000, np.zeros(10, np.uint8), q[i:i + 10, None],
                                                 a[i:i + 10, None], np.zeros((10, 1, 3)))], 1.7e9 + i / 100)
    f = analyse(path, AnalysisSettings())
    words = f.rates.get("header_rate_words") or ""
    assert f"{header_hz:g} Hz" in words and "100 Hz" in words and "analysed" not in words.lower()
    assert words in quality_notes(f)
    assert f.duration_s == pytest.approx(30.0, abs=0.05)  # the packets' rate, not the header's 1000 Hz grid


def test_a_header_rate_the_packets_confirm_is_not_mentioned(rec):
    assert "header_rate_words" not in analyse(rec, AnalysisSettings()).rates


@pytest.mark.parametrize("start", ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00",
                                   "1969-12-31T23:00:00Z"])
def test_an_implausible_import_start_is_refused(start, tmp_path):
    out = tmp_path / "x.nape"
    _one_line_error(_nape("import", str(_csv(tmp_path / "in.csv")), "--out", str(out), "--start", start),
                    "plausible", "1970-01-01")
    assert not out.exists()


def test_import_start_help_states_the_range():
    p = _nape("import", "--help")
    assert "1970-01-01" in " ".join(p.stdout.split())


def test_cohort_report_renames_refuse_a_pipe(tmp_path):
    from nape.cohort.task import write_report

    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "r1.json"
    os.mkfifo(target)
    with pytest.raises(OSError, match="(?i)not a regular file"):
        write_report(tmp_path, "r1", {"a": 1})
    assert target.is_fifo() and os.listdir(tmp_path / "reports") == ["r1.json"]


def test_import_rename_refuses_a_pipe_made_while_it_ran(tmp_path, monkeypatch):
    from nape import importer

    out = tmp_path / "x.nape"
    real_close = importer.RecordingWriter.close

    def close_then_pipe(self):
        real_close(self)
        if not out.exists():
            os.mkfifo(out)  # appears between the start checks and the final rename

    monkeypatch.setattr(importer.RecordingWriter, "close", close_then_pipe)
    with pytest.raises((OSError, NapeError), match="(?i)not a regular file"):
        import_csv(_csv(tmp_path / "in.csv"), out, start="2025-01-06T09:30:00Z")
    assert out.is_fifo()


def test_a_knock_that_rails_the_sensor_reads_at_least_the_rail(tmp_path):
    """Before: the railed samples were masked and interpolated, the knock read 12.1 g, below
    the 16 g the sensor had measured; now the rail stands and the peak is "at least"."""
    from nape.report import write_reports
    from nape.report.recording import quality_notes

    g = 9.80665
    n, k0 = 6000, 3000
    q = pitch_quat(np.zeros(n))
    a = specific_force(q, np.zeros((n, 3)))
    a[k0:k0 + 6, 0] = np.minimum(a[k0:k0 + 6, 0] + np.array([5, 12, 16, 16, 10, 4]) * g, 16 * g)
    flags = np.zeros(n, np.uint8)
    flags[k0 + 2:k0 + 4] = wire.FLAG_TRUNK_SAT
    meta = {"device_name": "t", "imu_roles": ["trunk"], "sample_rate_hz": 100.0, "source": "simulated",
            "wire_format_version": 1}
    path = tmp_path / "knock.nape"
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for i in range(0, n, 10):
            w.write_packets([wire.encode_samples(1, i, i * 10, 10000, flags[i:i + 10], q[i:i + 10, None],
                                                 a[i:i + 10, None], np.zeros((10, 1, 3)))], 1.7e9 + i / 100)
    f = analyse(path, AnalysisSettings())
    (j,) = f.jolts
    assert j.cause == "knock" and j.range_reached == ["trunk"] and j.peak_trunk_g > 14.5
    assert f.glitches == {"samples": 0, "by_kind": {}, "saturated_samples": 2}
    assert any("reached the sensor's range" in n for n in quality_notes(f))
    paths = write_reports(f, tmp_path, "knock")
    assert json.loads(paths["json"].read_text())["jolts"][0]["range_reached"] == ["trunk"]
    assert "at least" in paths["html"].read_text()
