"""Bad input matrix: every CLI command against bad files, bad options, unwritable output and no device.

The cases are generated from ``nape.cli.build_parser()``, so a new command or option is covered
without editing this file:

* input files (a positional recording / CSV, ``--settings``, ``--firmware``, ``--source``, ``--db``):
  missing, a directory, empty, truncated, a file of another format;
* typed options: not a number, NaN, infinity, a negative number where only positive ones make
  sense; choices: an unknown choice; ``--set``: malformed, unknown, non-numeric, non-finite;
* output (``--out`` / ``--csv`` / ``--parquet`` / a positional output): an existing recording where
  a new file is written, a file where a folder is expected, a read-only folder (in a subprocess
  without the DAC capabilities, so the test means the same as root), a full disk (a subprocess
  with ``RLIMIT_FSIZE``: writes past the limit fail with EFBIG as on a full disk);
* an unreachable device: ``scan`` and ``record`` without a reachable adapter / address, a
  virtual radio that is not there, ``flash`` on a port that does not exist.

Each case must exit non-zero with exactly one non-blank line on stderr (``nape: error: ...`` or
argparse's ``nape CMD: error: ...``), no traceback, and leave every input file byte-identical
(SHA-256 before and after). The number of cases is the number of parametrized tests
(docs/RELIABILITY.md records it).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import io
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nape.cli import build_parser, main
from tests.recording_factory import pitch_quat, write_recording

ROOT = Path(__file__).resolve().parents[1]
BOGUS_PORT = "/dev/ttyNAPE-TEST-NOPE"
FULL_DISK_BYTES = 100  # bytes per file (RLIMIT_FSIZE): every output is larger
NO_BLUEZ = not Path("/run/dbus/system_bus_socket").exists()

# ------------------------------------------------------------------ inputs


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    """Valid inputs of every kind, made once: a recording, a CSV, settings, a trends database."""
    d = tmp_path_factory.mktemp("bad-input-master")
    n = 1500  # 30 s at 50 Hz, two IMUs
    write_recording(d / "rec.nape", 50.0, pitch_quat(np.zeros(n)), pitch_quat(np.full(n, 10.0)))
    t = np.arange(500) / 100.0
    rows = "\n".join(f"{x:.2f},0.0,0.0,9.80665,0.0,0.0,0.0" for x in t)
    (d / "imp.csv").write_text("time_s,trunk_acc_x,trunk_acc_y,trunk_acc_z,trunk_gyr_x,trunk_gyr_y,trunk_gyr_z\n" + rows + "\n")
    (d / "settings.json").write_text("{}")
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (d / "empty").write_bytes(b"")
    (d / "trunc.nape").write_bytes((d / "rec.nape").read_bytes()[:11])
    (d / "trunc.csv").write_text("time_s,trunk_acc_x,trunk_a")
    (d / "list.json").write_text("[1, 2]")
    (d / "unknown.json").write_text('{"no_such_setting": 1}')
    (d / "not-a-db.sqlite").write_bytes(b"SQLite format 2\x00" + bytes(200))
    (d / "folder").mkdir()
    (d / "firmware").mkdir()  # a --source folder without the firmware files
    # a trends database with one session, so that `trends` gets as far as writing
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        assert main(["analyse", str(d / "rec.nape"), "--out", str(d / "reports"), "--db", str(d / "trends.db")]) == 0
    shutil.rmtree(d / "reports")
    return d


@pytest.fixture
def data(master, tmp_path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(master, d)
    return d


def _hashes(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ running the CLI


def run_inproc(argv: list[str]) -> tuple[int, str, str]:
    """``nape.cli.main`` in this process; an exception escaping it fails the test with its traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: exit 2
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def _drop_dac_caps() -> None:
    """In the child: drop CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so file modes apply to root too."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; fails harmlessly when not root


def run_subproc(argv: list[str], *, fsize: int | None = None, timeout: float = 180) -> tuple[int, str, str]:
    def pre():
        _drop_dac_caps()
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT)]), COLUMNS="120")
    p = subprocess.run([sys.executable, "-m", "nape.cli", *argv], capture_output=True, text=True, timeout=timeout,
                       preexec_fn=pre, env=env)
    return p.returncode, p.stdout, p.stderr


# ------------------------------------------------------------------ the matrix


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    seen, out = set(), []
    for name, sp in sub.choices.items():
        if id(sp) not in seen:  # aliases (analyze) share their parser
            seen.add(id(sp))
            out.append((name, sp))
    return out


COMMANDS = _commands()
POSITIVE_TYPES = ("_pos", "_positive", "_mtu", "_baud", "_rate", "_nonneg", "positive", "nonneg", "mtu")
OUT_DIR = "{out_dir}"


def _is_dir_option(a: argparse.Action) -> bool:
    text = f"{a.help or ''} {a.metavar or ''}".lower()
    return "folder" in text or "outdir" in text or "dir" in text.split()


def _base(name: str, sp) -> tuple[list[str], dict[str, int]]:
    """Arguments that make ``name`` valid apart from the one under test, and where each
    required positional sits in them."""
    args, where = [name], {}
    for a in sp._actions:
        if a.option_strings or a.dest == "help" or a.nargs == "?":
            continue
        where[a.dest] = len(args)
        if a.dest == "hex":
            args.append("0101010a000000000000000010270000" + "00" * 20)
        elif a.dest == "csv":
            args.append("{data}/imp.csv")
        elif a.dest == "out":
            args.append("{new}/new.nape")
        else:
            args.append("{data}/rec.nape")
    if name == "flash":
        args += ["--port", BOGUS_PORT, "--skip-micropython"]
    if name == "rom":
        where["file"] = len(args)
        args.append("{data}/rec.nape")
    if name in ("sessions", "trends"):
        args += ["--db", "{data}/trends.db"]
    return args, where


def _input_variants(kind: str) -> list[tuple[str, str]]:
    trunc = "{data}/trunc.csv" if kind == "csv" else "{data}/trunc.nape"
    other = "{data}/rec.nape" if kind == "csv" else "{data}/imp.csv"
    return [("missing", "{data}/no-such-file"), ("directory", "{data}/folder"), ("empty", "{data}/empty"),
            ("truncated", trunc), ("other-format", other), ("png", "{data}/image.png")]


def _cases():
    cases = []

    def add(cid, argv, mode="inproc", marks=(), expect=None):
        cases.append(pytest.param(argv, mode, expect, id=cid, marks=list(marks)))

    for name, sp in COMMANDS:
        base, where = _base(name, sp)
        add(f"{name}-unknown-option", base + ["--no-such-option"])  # every command, even one without options
        positionals = [a for a in sp._actions if not a.option_strings and a.dest != "help"]
        for a in positionals:
            idx = where.get(a.dest)
            if a.dest == "hex":
                for v, val in (("not-hex", "zz"), ("odd-digits", "0"), ("too-short", "01"), ("empty", ""),
                               ("long-junk", "ff" * 700)):
                    add(f"{name}-{a.dest}-{v}", _replace(base, idx, val))
            elif a.dest == "out":
                add(f"{name}-out-existing-recording", _replace(base, idx, "{data}/rec.nape"))
                add(f"{name}-out-directory", _replace(base, idx, "{data}/folder"))
                add(f"{name}-out-missing-parent", _replace(base, idx, "{data}/no/such/dir/x.nape"))
                add(f"{name}-out-read-only", _replace(base, idx, "{ro}/x.nape") + _cheap_source(name), "readonly",
                    marks=[pytest.mark.slow])
                add(f"{name}-out-full-disk", _replace(base, idx, "{new}/x.nape") + _cheap_source(name), "fulldisk",
                    marks=[pytest.mark.slow])
            else:
                kind = "csv" if a.dest == "csv" else "nape"
                for v, path in _input_variants(kind):
                    argv = _replace(base, idx, path)
                    add(f"{name}-{a.dest}-{v}", argv)
        for a in sp._actions:
            if not a.option_strings or a.dest == "help":
                continue
            opt = max(a.option_strings, key=len)
            tname = getattr(a.type, "__name__", "") if a.type is not None else ""
            if a.choices:
                add(f"{name}-{opt}-bogus-choice", base + [opt, "bogus"], expect=2)
            elif a.type is not None and a.type not in (str, Path):
                vals = [("not-a-number", "abc"), ("nan", "nan"), ("inf", "inf"), ("huge", "1e999")]
                if tname.startswith(POSITIVE_TYPES):
                    vals.append(("negative", "-5"))
                for v, val in vals:
                    if tname == "int" and v in ("huge",):
                        continue
                    add(f"{name}-{opt}-{v}", base + [f"{opt}={val}"], expect=2)
            elif a.dest == "set":
                for v, val in (("no-equals", "neck_flexion_deg"), ("unknown", "no_such_setting=3"),
                               ("not-a-number", "neck_flexion_deg=abc"), ("nan", "neck_flexion_deg=nan"),
                               ("inf", "neck_flexion_deg=inf")):
                    add(f"{name}-{opt}-{v}", base + [opt, val])
            elif a.dest == "settings":
                for v, path in _input_variants("json") + [("json-list", "{data}/list.json"),
                                                           ("unknown-key", "{data}/unknown.json")]:
                    if v == "truncated":
                        path = "{data}/trunc.csv"
                    add(f"{name}-{opt}-{v}", base + [opt, path])
            elif a.dest == "db":
                if name == "analyse":  # the report is the product; an unusable trends DB only warns
                    add(f"{name}-{opt}-directory", base + [opt, "{data}/folder"], expect="warn")
                    continue
                for v, path in (("directory", "{data}/folder"), ("not-a-database", "{data}/not-a-db.sqlite"),
                                ("other-format", "{data}/rec.nape")):
                    add(f"{name}-{opt}-{v}", _strip(base, opt) + [opt, path])
            elif a.dest == "firmware":
                for v, path in _input_variants("bin"):
                    add(f"{name}-{opt}-{v}", _strip(base, "--skip-micropython") + [opt, path])
            elif a.dest == "source":
                add(f"{name}-{opt}-missing", base + [opt, "{data}/no-such-dir"])
                add(f"{name}-{opt}-a-file", base + [opt, "{data}/rec.nape"])
                add(f"{name}-{opt}-no-firmware-inside", base + [opt, "{data}/firmware"])
            elif a.dest in ("out", "csv", "parquet") and name != "import" or (name == "import" and a.dest == "out"):
                is_dir = _is_dir_option(a)
                src = [name, "--virtual"] if name == "rom" else base + _cheap_source(name)  # a ROM test to write
                if is_dir:
                    add(f"{name}-{opt}-is-a-file", src + [opt, "{data}/rec.nape"])
                else:
                    add(f"{name}-{opt}-existing-recording", src + [opt, "{data}/rec.nape"])
                target = "{ro}" if is_dir else "{ro}/out.file"
                # each of these runs the command in a subprocess up to its first write (seconds
                # each): analyse and import stay in the default run, the others are slow tests
                slow = [] if name in ("analyse", "import") else [pytest.mark.slow]
                add(f"{name}-{opt}-read-only", src + [opt, target], "readonly", marks=slow)
                add(f"{name}-{opt}-full-disk", src + [opt, "{new}/o" if is_dir else "{new}/out.file"], "fulldisk",
                    marks=slow)
    # unreachable devices
    add("scan-no-adapter", ["scan", "--timeout", "0.5"], "subproc", expect="device")
    add("record-unreachable-address", ["record", "{new}/x.nape", "--address", "00:11:22:33:44:55",
                                       "--scan-timeout", "0.5", "--give-up", "1"], "subproc")
    add("record-no-virtual-radio", ["record", "{new}/x.nape", "--virtual", "--radio", "{data}/no-radio.sock",
                                    "--duration", "1"], "subproc")
    for name, sp in COMMANDS:  # other device commands (pair, ...): no adapter / nothing in range
        dests = {a.dest for a in sp._actions}
        if name not in ("scan", "record", "flash") and dests & {"address", "scan_timeout"}:
            add(f"{name}-no-adapter", [name, "--scan-timeout", "0.5"], "subproc", expect="device")
    add("doctor-unexpected-argument", ["doctor", "extra"], expect=2)
    add("flash-port-missing", ["flash", "--port", BOGUS_PORT, "--skip-micropython"], "subproc")
    add("flash-port-not-a-device", ["flash", "--port", "{data}/rec.nape", "--skip-micropython"], "subproc")
    return cases


def _replace(base: list[str], idx: int | None, val: str) -> list[str]:
    if idx is None:  # right after the command name
        return base[:1] + [val] + base[1:]
    return base[:idx] + [val] + base[idx + 1 :]


def _strip(base: list[str], opt: str) -> list[str]:
    out, skip = [], False
    for x in base:
        if skip:
            skip = False
            continue
        if x == opt:
            skip = opt != "--skip-micropython"
            continue
        out.append(x)
    return out


def _cheap_source(name: str) -> list[str]:
    """Extra arguments that give commands without an input file a small, quick source."""
    return {"demo": ["--time-scale", "0.02"], "rom": [], "record": ["--virtual", "--duration", "2", "--speed", "50",
                                                                     "--time-scale", "0.02", "--quiet"]}.get(name, [])


CASES = _cases()


def _fill(argv: list[str], data: Path, tmp: Path) -> list[str]:
    new = tmp / "new"
    new.mkdir(exist_ok=True)
    ro = tmp / "ro"
    ro.mkdir(exist_ok=True)
    return [x.replace("{data}", str(data)).replace("{new}", str(new)).replace("{ro}", str(ro)) for x in argv]


def test_every_command_is_in_the_matrix():
    names = {c.id.split("-")[0] for c in CASES}
    assert {n for n, _ in COMMANDS} <= names, {n for n, _ in COMMANDS} - names


@pytest.mark.parametrize("argv,mode,expect", CASES)
def test_bad_input(argv, mode, expect, data, tmp_path):
    before = _hashes(data)
    args = _fill(argv, data, tmp_path)
    ro = tmp_path / "ro"
    if mode == "inproc":
        rc, out, err = run_inproc(args)
    else:
        if mode == "readonly":
            ro.chmod(0o555)
        try:
            rc, out, err = run_subproc(args, fsize=FULL_DISK_BYTES if mode == "fulldisk" else None)
        finally:
            ro.chmod(0o755)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err + out, err[-3000:]
    assert "argument COMMAND" not in err, err  # the case must reach its command
    if expect == "warn":
        assert rc == 0 and len(lines) == 1 and lines[0].startswith("nape: warning:"), (rc, err)
    elif expect == "device" and not NO_BLUEZ:
        assert rc in (0, 1) and len(lines) <= 1, (rc, err)  # an adapter is there: an empty scan is fine
    else:
        assert rc != 0, (rc, out[-500:], err)
        if expect == 2:
            assert rc == 2, (rc, err)
        assert len(lines) == 1, err
        assert ": error: " in lines[0] and lines[0].startswith("nape"), lines[0]
        assert len(lines[0]) > len("nape: error: ") + 5
    after = _hashes(data)
    assert {k: v for k, v in after.items() if k in before} == before, "an input file was changed"
    assert set(before) <= set(after), "an input file was removed"


# ------------------------------------------------------------------ odd but valid input (issue 16)
#
# Real recordings that are short, damaged or implausible in places: each must give exit 0, a
# report that says what could not be judged, and no warning (RuntimeWarning included) on the
# way: these run with every warning turned into an error.

SHORT_LENGTHS = {"0-samples": 0, "1-sample": 1, "5s": 250, "10s": 500, "29s": 1450}


def run_strict(argv: list[str]) -> tuple[int, str, str]:
    """``run_inproc`` with every Python warning an error."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return run_inproc(argv)


def _short_recording(path: Path, n: int, head: bool = True) -> Path:
    from nape.recording import RecordingWriter

    if n == 0:
        with RecordingWriter(path, {"imu_roles": ["trunk", "head"] if head else ["trunk"], "source": "simulated",
                                    "sample_rate_hz": 50}):
            pass
        return path
    return write_recording(path, 50.0, pitch_quat(np.full(n, 10.0)), pitch_quat(np.full(n, 35.0)) if head else None)


@pytest.mark.parametrize("head", [True, False], ids=["two-imus", "trunk-only"])
@pytest.mark.parametrize("length", list(SHORT_LENGTHS), ids=list(SHORT_LENGTHS))
def test_short_recording_analyses_exports_and_reanalyses(length, head, tmp_path):
    import json

    rec = _short_recording(tmp_path / "short.nape", SHORT_LENGTHS[length], head)
    db = tmp_path / "trends.db"
    rc, out, err = run_strict(["analyse", str(rec), "--out", str(tmp_path / "r"), "--db", str(db)])
    assert rc == 0, err
    report = json.loads((tmp_path / "r" / "short.json").read_text())
    notes = " ".join(report["quality_notes"])
    assert "nothing could be judged" in notes if length == "0-samples" else "Too short to judge" in notes, notes
    html = (tmp_path / "r" / "short.html").read_text()
    assert "Too short to judge" in html or "nothing could be judged" in html
    rc, out, err = run_strict(["export", str(rec), "--csv", str(tmp_path / "csv")])
    assert rc == 0, err
    assert (tmp_path / "csv" / "angles.csv").exists()
    rec.write_bytes(rec.read_bytes())  # the file "changed": reanalyse picks it up
    os.utime(rec, ns=(1, 1))
    rc, out, err = run_strict(["sessions", "--db", str(db), "--reanalyse"])
    assert rc == 0 and "re-analysed 1 changed file" in out, (out, err)


# ------------------------------------------------------------------ implausible samples (issue 16)

PLAUSIBLE_RATE = 100


def _imu_recording(path: Path, acc: np.ndarray, gyr: np.ndarray, q: np.ndarray | None = None,
                   rate: int = PLAUSIBLE_RATE) -> Path:
    """A trunk-only recording of raw acc (m/s²) and gyr (rad/s), 10 samples a packet."""
    from nape import wire
    from nape.recording import RecordingWriter

    n = len(acc)
    q = pitch_quat(np.zeros(n)) if q is None else q
    period = int(round(1e6 / rate))
    with RecordingWriter(path, {"imu_roles": ["trunk"], "sample_rate_hz": rate, "source": "import"},
                         fsync_interval_s=0) as w:
        for i in range(0, n, 10):
            j = min(n, i + 10)
            w.write_packets([wire.encode_samples(1, i, i * period // 1000, period, np.zeros(j - i, np.uint8),
                                                 q[i:j, None], acc[i:j, None], gyr[i:j, None])], 1.7e9 + i / rate)
    return path


def _still(n: int, seed: int = 1, gyro_offset_rads: float = 0.01):
    from tests.recording_factory import specific_force

    rng = np.random.default_rng(seed)
    q = pitch_quat(np.full(n, 5.0))
    acc = specific_force(q, np.zeros((n, 3))) + rng.normal(0, 0.02, (n, 3))
    gyr = rng.normal(0, 0.002, (n, 3)) + gyro_offset_rads
    return q, acc, gyr


def _bending(n: int, seed: int = 2):
    """A wearer bending forward and back slowly (±20° every 8 s): acc and gyr in sensor axes."""
    from tests.recording_factory import body_rates, specific_force

    rng = np.random.default_rng(seed)
    t = np.arange(n) / PLAUSIBLE_RATE
    q = pitch_quat(20 * np.sin(2 * np.pi * t / 8) + 10)
    acc = specific_force(q, np.zeros((n, 3))) + rng.normal(0, 0.02, (n, 3))
    gyr = body_rates(q, PLAUSIBLE_RATE) + rng.normal(0, 0.002, (n, 3)) + np.radians(0.5)
    return q, acc, gyr


@pytest.mark.parametrize("at", [3000, 6000, 6001, 100], ids=["middle", "block-edge", "after-block-edge", "early"])
@pytest.mark.parametrize("value", [[0, 0, 500.0], [0, 51 * 9.80665, 0], [0, 6 * 9.80665, 9.8]],
                         ids=["500-m-s2", "51-g", "6-g-spike"])
def test_one_impossible_sample_is_a_glitch_not_a_jolt(value, at, tmp_path):
    import json

    q, acc, gyr = _still(PLAUSIBLE_RATE * 90)
    acc[at] = value
    rec = _imu_recording(tmp_path / "glitch.nape", acc, gyr, q)
    rc, out, err = run_strict(["analyse", str(rec), "--out", str(tmp_path), "--db", str(tmp_path / "t.db")])
    assert rc == 0, err
    report = json.loads((tmp_path / "glitch.json").read_text())
    assert report["jolts"] == [], report["jolts"]
    assert report["glitches"]["samples"] == 1, report["glitches"]
    assert any("sensor glitch masked" in n for n in report["quality_notes"])


def test_glitch_guard_masks_nan_inf_and_huge_values():
    from nape.analysis.quality import GlitchGuard
    from nape.settings import AnalysisSettings

    q, acc, gyr = _still(50)
    acc, gyr, q = acc[:, None], gyr[:, None], q[:, None]
    acc[10, 0] = [np.nan, 0, 9.8]
    acc[20, 0] = [1e308, 0, 0]
    gyr[30, 0] = [0, np.inf, 0]
    guard = GlitchGuard(1, AnalysisSettings())
    q2, a2, g2 = guard(np.zeros(50, np.uint8), q, acc, gyr)
    assert np.isfinite(a2).all() and np.isfinite(g2).all() and np.isfinite(q2).all()
    assert abs(np.linalg.norm(a2[20, 0]) - 9.80665) < 0.5  # interpolated from its neighbours
    assert guard.summary() == {"samples": 3, "by_kind": {"non_finite": 2, "impossible": 1}}


def test_a_shock_railing_one_axis_is_not_a_glitch():
    """A ±16 g sensor clips each axis: a knock at 16 g on one axis and 7 g on another is 17.5 g
    in all and real; only an axis beyond full scale is impossible."""
    from nape.analysis.quality import GlitchGuard
    from nape.settings import AnalysisSettings

    g = 9.80665
    q, acc, gyr = _still(60)
    acc, gyr, q = acc[:, None].copy(), gyr[:, None], q[:, None]
    acc[20:26, 0] = [[0, 4 * g, 3 * g], [0, 10 * g, 5 * g], [0, 16 * g, 7 * g], [0, 16 * g, 7 * g],
                     [0, 9 * g, 4 * g], [0, 3 * g, 2 * g]]  # a 30 ms knock, railed for 10 ms
    gyr = gyr.copy()
    gyr[20:24, 0] = np.radians([[0, 900, 600], [0, 2000, 1500], [0, 2000, 1400], [0, 800, 500]])
    acc[40, 0] = [0, 0, 17 * g]  # one axis beyond ±16 g: a fault
    guard = GlitchGuard(1, AnalysisSettings())
    _q2, a2, _g2 = guard(np.zeros(60, np.uint8), q, acc, gyr)
    assert guard.summary() == {"samples": 1, "by_kind": {"impossible": 1}}
    assert np.linalg.norm(a2[22, 0]) / g > 17.4  # the knock's peak kept whole


def test_a_saturated_sample_is_kept_as_a_lower_bound_not_masked():
    """A value at the sensor's range (saturation flag) is a lower bound of the truth: kept as
    measured and counted; before, it was masked and interpolated, so a knock that railed the
    sensor read lower than the rail."""
    from nape import wire
    from nape.analysis.quality import GlitchGuard
    from nape.settings import AnalysisSettings

    g = 9.80665
    q, acc, gyr = _still(40)
    acc = acc[:, None].copy()
    acc[20:24, 0] = [[0, 0, 6 * g], [0, 0, 16 * g], [0, 0, 16 * g], [0, 0, 5 * g]]  # a knock railing for 2 samples
    flags = np.zeros(40, np.uint8)
    flags[21:23] = wire.FLAG_TRUNK_SAT
    guard = GlitchGuard(1, AnalysisSettings())
    _q, a2, _g = guard(flags, q[:, None], acc, gyr[:, None])
    assert guard.summary() == {"samples": 0, "by_kind": {}, "saturated_samples": 2}
    assert a2[21, 0, 2] == pytest.approx(16 * g) and a2[22, 0, 2] == pytest.approx(16 * g)  # the rail, not lower


def test_a_lone_saturated_spike_whose_neighbours_agree_is_still_a_glitch():
    from nape import wire
    from nape.analysis.quality import GlitchGuard
    from nape.settings import AnalysisSettings

    g = 9.80665
    q, acc, gyr = _still(20)
    acc = acc[:, None].copy()
    acc[5, 0] = [0, 0, 16 * g]  # one sample at the rail, both neighbours at 1 g: a glitch
    flags = np.zeros(20, np.uint8)
    flags[5] = wire.FLAG_TRUNK_SAT
    guard = GlitchGuard(1, AnalysisSettings())
    _q, a2, _g = guard(flags, q[:, None], acc, gyr[:, None])
    assert guard.summary() == {"samples": 1, "by_kind": {"spike": 1}}
    assert abs(np.linalg.norm(a2[5, 0]) - g) < 0.5


@pytest.mark.parametrize("case", ["still", "bending"])
def test_gyroscope_in_degrees_taken_as_radians_is_warned_about(case, tmp_path):
    import json

    q, acc, gyr = (_still if case == "still" else _bending)(PLAUSIBLE_RATE * 60)
    rec = _imu_recording(tmp_path / "dps.nape", acc, np.clip(np.degrees(gyr), -3000, 3000), q)
    rc, out, err = run_strict(["analyse", str(rec), "--out", str(tmp_path), "--db", str(tmp_path / "t.db")])
    assert rc == 0, err
    report = json.loads((tmp_path / "dps.json").read_text())
    assert any("degrees per second given as radians" in w for w in report["input_warnings"]), report["input_warnings"]
    assert any("degrees per second given as radians" in h for h in report["headlines"])


@pytest.mark.parametrize("case", ["still", "bending"])
def test_plausible_input_gets_no_warning(case, tmp_path):
    from nape.analysis import analyse

    q, acc, gyr = (_still if case == "still" else _bending)(PLAUSIBLE_RATE * 60)
    f = analyse(_imu_recording(tmp_path / "ok.nape", acc, gyr, q))
    assert f.input_warnings == [] and f.glitches["samples"] == 0


def test_large_zero_rate_offset_in_rad_s_is_not_a_unit_error():
    from nape.analysis.quality import input_warnings

    _q, acc, gyr = _still(PLAUSIBLE_RATE * 60, gyro_offset_rads=np.radians(20))  # datasheet worst case
    assert input_warnings(acc, gyr, 1 / PLAUSIBLE_RATE) == []


def test_earth_frame_input_is_warned_about():
    from nape.analysis.quality import input_warnings

    _q, _acc, gyr = _bending(PLAUSIBLE_RATE * 60)
    acc = np.tile([0.0, 0.0, 9.80665], (len(gyr), 1)) + np.random.default_rng(3).normal(0, 0.02, gyr.shape)
    w = input_warnings(acc, gyr, 1 / PLAUSIBLE_RATE)
    assert len(w) == 1 and "Earth (world) axes" in w[0]


# ------------------------------------------------------------------ real logs as they come (issue 16)


def _phone_log(path: Path, seconds: float = 90.0, rate: float = 20.0, seed: int = 4, layout: str = "long",
               gyro_dps: bool = True) -> Path:
    """A phone-like log: ~20 Hz, jittery timestamps (steps 17–80 ms), accelerometer (g) and
    gyroscope (°/s) as separate rows with their own clocks, a magnetometer to skip, a 2 s pause.
    The wearer sits upright for 20 s, then bends forward 30° and back every 10 s."""
    from tests.recording_factory import body_rates, specific_force

    rng = np.random.default_rng(seed)
    fine = 200.0
    tf = np.arange(int(seconds * fine)) / fine
    pitch = np.where(tf < 20, 0.0, 15 - 15 * np.cos(2 * np.pi * (tf - 20) / 10))
    q = pitch_quat(pitch)
    acc = specific_force(q, np.zeros((len(tf), 3))) / 9.80665
    gyr = np.degrees(body_rates(q, fine))

    def stamps(offset):
        t, out = offset, []
        while t < seconds - 0.1:
            out.append(t)
            t += max(0.017, rng.normal(1 / rate, 0.012))
            if 40.0 <= t < 42.0:  # the phone paused
                t = 42.0 + rng.uniform(0, 0.02)
        return np.array(out)

    rows = []
    for kind, x, off in (("acc", acc, 0.003), ("gyro", gyr, 0.011), ("mag", acc * 40, 0.02)):
        for t in stamps(off):
            v = x[min(int(round(t * fine)), len(tf) - 1)] + rng.normal(0, 0.003 if kind == "acc" else 0.1, 3)
            rows.append((t, kind, v))
    rows.sort(key=lambda r: r[0])
    if layout == "long":
        lines = ["trial,timestamp_ms,sensor,x,y,z"] + [f"1,{t * 1000:.1f},{k},{v[0]:.5f},{v[1]:.5f},{v[2]:.5f}"
                                                        for t, k, v in rows]
        path.write_text("\n".join(lines) + "\n")
        return path
    acc_rows = [(t, v) for t, k, v in rows if k == "acc"]
    gyr_rows = [(t, v) for t, k, v in rows if k == "gyro"]
    path.write_text("t_s,ax,ay,az\n" + "".join(f"{t:.4f},{v[0]:.5f},{v[1]:.5f},{v[2]:.5f}\n" for t, v in acc_rows))
    gp = path.with_name(path.stem + "-gyr.csv")
    gp.write_text("t_s,gx,gy,gz\n" + "".join(f"{t:.4f},{v[0]:.4f},{v[1]:.4f},{v[2]:.4f}\n" for t, v in gyr_rows))
    return path


def test_jittery_phone_log_with_separate_streams_imports_without_rate(tmp_path):
    import json

    from nape.recording import open_recording

    log = _phone_log(tmp_path / "phone.csv")
    out = tmp_path / "phone.nape"
    rc, o, err = run_strict(["import", str(log), "--out", str(out), "--columns", "timestamp_ms=time_ms",
                             "--acc-unit", "g", "--gyr-unit", "dps", "--start", "2025-01-06T09:30:00Z"])
    assert rc == 0, err
    assert "resampled to 20 Hz" in o, o
    meta = open_recording(out).metadata
    timing = meta["extras"]["import"]["timing"]
    assert meta["sample_rate_hz"] == 20 and timing["resampled"] and timing["gaps"] == 1
    assert 5 < timing["mean_abs_jitter_ms"] < 20 and timing["max_abs_jitter_ms"] > 20
    rc, o, err = run_strict(["analyse", str(out), "--out", str(tmp_path), "--db", str(tmp_path / "t.db")])
    assert rc == 0, err
    report = json.loads((tmp_path / "phone.json").read_text())
    assert report["input_warnings"] == [] and report["jolts"] == []
    assert any(g["reason"] == "missing in the imported file" for g in report["gaps"])
    notes = " ".join(report["quality_notes"])
    assert "resampled" in notes and "100 Hz" not in notes and "radio" not in notes, notes
    assert report["exposure_s"]["trunk_over_threshold_s"] > 10  # the bends are seen


def test_accelerometer_and_gyroscope_in_two_files_merge_by_time(tmp_path):
    from nape.recording import open_recording

    log = _phone_log(tmp_path / "acc.csv", layout="two")
    out = tmp_path / "two.nape"
    rc, o, err = run_strict(["import", str(log), "--gyr", str(tmp_path / "acc-gyr.csv"), "--out", str(out),
                             "--columns", "t_s=time_s,ax=trunk_acc_x,ay=trunk_acc_y,az=trunk_acc_z,gx=trunk_gyr_x,"
                             "gy=trunk_gyr_y,gz=trunk_gyr_z", "--acc-unit", "g", "--gyr-unit", "dps"])
    assert rc == 0, err
    assert open_recording(out).metadata["extras"]["import"]["layout"] == "two files"


def test_degrees_imported_as_radians_are_stopped_or_warned(tmp_path):
    import json

    log = _phone_log(tmp_path / "phone.csv")
    out = tmp_path / "p.nape"
    rc, o, err = run_strict(["import", str(log), "--out", str(out), "--columns", "timestamp_ms=time_ms",
                             "--acc-unit", "g"])  # gyroscope left at rad/s: wrong
    if rc != 0:  # stopped: a plain one-line error naming the unit options
        assert "unit" in err and len(err.strip().splitlines()) == 1, err
        return
    rc, o, err = run_strict(["analyse", str(out), "--out", str(tmp_path), "--db", str(tmp_path / "t.db")])
    report = json.loads((tmp_path / "p.json").read_text())
    assert any("degrees per second given as radians" in w for w in report["input_warnings"])


def test_gyro_less_import_says_what_is_lost(tmp_path):
    import json

    t = np.arange(3000) / 50.0
    rows = "".join(f"{x:.3f},0.0,0.0,9.80665\n" for x in t)
    (tmp_path / "acc.csv").write_text("time_s,trunk_acc_x,trunk_acc_y,trunk_acc_z\n" + rows)
    rc, o, err = run_strict(["import", str(tmp_path / "acc.csv"), "--out", str(tmp_path / "a.nape"), "--no-gyro"])
    assert rc == 0, err
    rc, o, err = run_strict(["analyse", str(tmp_path / "a.nape"), "--out", str(tmp_path), "--db", str(tmp_path / "t.db")])
    assert rc == 0, err
    report = json.loads((tmp_path / "a.json").read_text())
    assert any("No gyroscope" in w for w in report["input_warnings"]), report["input_warnings"]


@pytest.mark.parametrize("cells,message", [
    ("1e308", r"line 4, column trunk_acc_z: 1e\+308 m/s² is beyond"),
    ("-1e308", r"line 4, column trunk_acc_z: -1e\+308 m/s² is beyond"),
    ("400", r"line 4, column trunk_acc_z: 400 m/s² is beyond ±32.8 g"),
])
def test_out_of_range_csv_value_is_an_error_with_its_line(cells, message, tmp_path):
    import re

    rows = ["time_s,trunk_acc_x,trunk_acc_y,trunk_acc_z,trunk_gyr_x,trunk_gyr_y,trunk_gyr_z"]
    rows += [f"{i / 100:.2f},0,0,{cells if i == 2 else '9.8'},0,0,0" for i in range(100)]
    (tmp_path / "x.csv").write_text("\n".join(rows) + "\n")
    rc, o, err = run_strict(["import", str(tmp_path / "x.csv"), "--out", str(tmp_path / "x.nape")])
    assert rc == 1 and re.search(message, err) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.nape").exists()


def test_bad_column_map_is_a_clear_error(tmp_path):
    rc, o, err = run_strict(["import", str(tmp_path / "x.csv"), "--columns", "foo"])
    assert rc == 1 and "CSV_NAME=NAPE_NAME" in err, err


# ------------------------------------------------------------------ coverage (issue 16)


def test_mostly_zeroed_file_is_damage_not_radio_and_stays_out_of_trend_totals(tmp_path):
    import json

    from nape import trends

    n = 50 * 600
    t = np.arange(n) / 50
    rec = write_recording(tmp_path / "zero.nape", 50.0, pitch_quat(np.zeros(n)),
                          pitch_quat(np.where((t > 60) & (t < 400), 35.0, 5.0)))
    raw = bytearray(rec.read_bytes())
    a, b = int(len(raw) * 0.1), int(len(raw) * 0.96)
    raw[a:b] = bytes(b - a)  # 86 % of the file zeroed
    rec.write_bytes(bytes(raw))
    db = tmp_path / "t.db"
    rc, out, err = run_strict(["analyse", str(rec), "--out", str(tmp_path), "--db", str(db)])
    assert rc == 0, err
    report = json.loads((tmp_path / "zero.json").read_text())
    assert report["low_coverage"] and report["valid_s"] < 0.2 * report["duration_s"]
    assert report["headlines"][0].startswith("Little valid data") and "of valid data" in report["headlines"][0]
    assert all("of valid data" in h for h in report["headlines"] if "never" in h)
    assert [g["reason"] for g in report["gaps"]] == ["damaged file"]
    notes = " ".join(report["quality_notes"])
    assert "file is damaged" in notes and "lost in transmission (radio)" not in notes
    # trends: listed, flagged, left out of the totals
    ok = write_recording(tmp_path / "ok.nape", 50.0, pitch_quat(np.zeros(3000)))
    assert run_strict(["analyse", str(ok), "--out", str(tmp_path), "--db", str(db)])[0] == 0
    items = trends.sessions(db)
    assert {Path(s.path).name: s.low_coverage for s in items} == {"zero.nape": True, "ok.nape": False}
    total = trends.daily_from(items)
    assert sum(p.recordings for p in total) == 1 and sum(p.left_out for p in total) == 1
    rc, out, err = run_strict(["sessions", "--db", str(db)])
    assert rc == 0 and "little valid data" in out, out


def test_timeline_breaks_at_gaps():
    from nape.analysis.coverage import with_breaks
    from nape.analysis.findings import Calibration, Findings
    from nape.report.recording import _timeline

    t, (y,) = with_breaks([0, 1, 2, 10, 11], [1, 2, 3, 4, 5])
    assert list(t) == [0, 1, 2, 2.5, 10, 11] and np.isnan(y[3]) and list(y[:3]) == [1, 2, 3]
    f = Findings(path="x.nape", metadata={}, settings={"neck_flexion_deg": 20.0}, duration_s=11, samples=5,
                 lost_samples=0, malformed_packets=0, file_issues=[], calibration=Calibration("none", "", [[1, 0, 0, 0]]),
                 roles=["trunk"], series={"time_s": [0, 1, 2, 10, 11], "trunk_inclination_deg": [1, 2, 3, 4, 5], "lying": [False] * 5})
    trace = _timeline(f).data[0]
    assert len(trace.y) == 6 and np.isnan(trace.y[3])  # the line breaks over the missing seconds


# ------------------------------------------------------------------ safe output (issue 16)


def test_full_disk_keeps_the_previous_report_whole(tmp_path):
    rec = write_recording(tmp_path / "r.nape", 50.0, pitch_quat(np.zeros(1500)))
    out = tmp_path / "out"
    assert run_strict(["analyse", str(rec), "--out", str(out), "--db", str(tmp_path / "t.db")])[0] == 0
    before = _hashes(out)
    rc, o, err = run_subproc(["analyse", str(rec), "--out", str(out), "--db", str(tmp_path / "t.db")],
                             fsize=FULL_DISK_BYTES)
    assert rc == 1 and err.strip().startswith("nape: error: File too large: "), err  # EFBIG's own words
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _hashes(out) == before, "a failed write damaged the previous report"
    assert sorted(p.name for p in out.iterdir()) == ["r.html", "r.json"], "a temporary file was left behind"


def test_safe_write_keeps_mode_and_leaves_nothing_on_error(tmp_path):
    from nape import safe_write

    p = tmp_path / "page.html"
    safe_write.write_text(p, "old")
    p.chmod(0o640)
    with pytest.raises(RuntimeError), safe_write.replacing(p) as f:
        f.write("half a new page")
        raise RuntimeError("the writer failed half-way")
    assert p.read_text() == "old" and list(tmp_path.iterdir()) == [p]
    safe_write.write_text(p, "new")
    assert p.read_text() == "new" and p.stat().st_mode & 0o777 == 0o640


def test_recorder_write_error_says_what_the_os_said(tmp_path, monkeypatch):
    import errno

    from nape import wire
    from nape.errors import RecordingError
    from nape.recording import RecordingWriter

    w = RecordingWriter(tmp_path / "r.nape", {"imu_roles": ["trunk"], "source": "simulated"}, fsync_interval_s=0)
    pkt = wire.encode_samples(1, 0, 0, 10000, np.zeros(1, np.uint8), pitch_quat(np.zeros(1))[:, None],
                              np.zeros((1, 1, 3)), np.zeros((1, 1, 3)))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    for _ in range(2):  # the first failure and every later write name the cause
        with pytest.raises(RecordingError, match="No space left on device"):
            w.write_packets([pkt], 1.7e9)


def test_non_utf8_file_name_analyses_and_indexes(tmp_path):
    name = os.fsdecode(b"caf\xe9 drive.nape")
    rec = write_recording(tmp_path / name, 50.0, pitch_quat(np.zeros(1500)))
    rc, out, err = run_subproc(["analyse", str(rec), "--db", str(tmp_path / "t.db")])
    assert rc == 0 and "Traceback" not in err, err
    assert (tmp_path / os.fsdecode(b"caf\xe9 drive.html")).stat().st_size > 1000
    assert (tmp_path / os.fsdecode(b"caf\xe9 drive.json")).stat().st_size > 100
    rc, out, err = run_subproc(["sessions", "--db", str(tmp_path / "t.db")])
    assert rc == 0 and "Traceback" not in err, err


def test_closed_pipe_never_loses_a_file(tmp_path):
    rec = write_recording(tmp_path / "r.nape", 50.0, pitch_quat(np.zeros(1500)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT)]))
    p = subprocess.Popen([sys.executable, "-m", "nape.cli", "analyse", str(rec), "--out", str(tmp_path / "o"),
                          "--db", str(tmp_path / "t.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.readline()  # `| head -1`
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
    assert (tmp_path / "o" / "r.html").exists() and (tmp_path / "o" / "r.json").exists()
    from nape import trends

    assert [Path(s.path).name for s in trends.sessions(tmp_path / "t.db")] == ["r.nape"]


# ------------------------------------------------------------------ settings (issue 16)


@pytest.mark.parametrize("pair,message", [
    ("neck_flexion_deg", r"setting 'neck_flexion_deg' has no value: the form is --set NAME=VALUE \(e.g. --set neck_flexion_deg=20\)"),
    ("neck_flexion_deg=-5", r"neck_flexion_deg=-5 is out of range: allowed 0° to 90°"),
    ("neck_flexion_deg=500", r"neck_flexion_deg=500 is out of range: allowed 0° to 90°"),
    ("hold_s=0", r"hold_s=0 is out of range: allowed 1 s to 7200 s"),
    ("posture_lowpass_hz=50", r"posture_lowpass_hz=50 is out of range: allowed 0.01 Hz to 5 Hz"),
    ("fuse_on_host=0.5", r"fuse_on_host is 0 \(off\) or 1 \(on\)"),
    ("neck_flexon_deg=25", r"unknown setting 'neck_flexon_deg'; did you mean neck_flexion_deg"),
])
def test_settings_are_validated_with_the_form_shown(pair, message, tmp_path):
    import re

    rec = write_recording(tmp_path / "r.nape", 50.0, pitch_quat(np.zeros(100)))
    for cmd in (["analyse", str(rec), "--db", str(tmp_path / "t.db")], ["export", str(rec), "--csv", str(tmp_path)]):
        rc, out, err = run_strict(cmd + ["--set", pair])
        assert rc == 1 and re.search(message, err) and len(err.strip().splitlines()) == 1, err
    (tmp_path / "s.json").write_text('{"neck_flexion_deg": 500}')
    rc, out, err = run_strict(["analyse", str(rec), "--settings", str(tmp_path / "s.json"), "--db", str(tmp_path / "t.db")])
    assert rc == 1 and "out of range" in err, err


def test_every_default_lies_in_its_range():
    import dataclasses

    from nape.settings import LIMITS, AnalysisSettings, check_range

    s = AnalysisSettings()
    for f in dataclasses.fields(s):
        if f.name != "sources":
            lo, hi, _unit = LIMITS.get(f.name, (0.0, float("inf"), ""))
            assert lo <= getattr(s, f.name) <= hi, f.name
            check_range(f.name, getattr(s, f.name))


HOSTILE = {
    "device_name": '<script>alert("device")</script>',
    "firmware_version": '"><img src=x onerror=alert(1)>',
    "created": "<svg onload=alert(2)>",
    "imu_roles": ["trunk", "head", "<script>alert('roles')</script>"],
    "extras": {"original_file": "<iframe src=//evil>", "notes": "</title><script>alert(3)</script>"},
}


def test_hostile_strings_in_every_header_field_are_escaped_in_every_page(tmp_path):
    import html as html_mod
    import re

    from nape import wire
    from nape.recording import RecordingWriter
    from nape.report.page import CSP, esc

    name = "<img src=x onerror=alert(4)>.nape"
    rec = tmp_path / name
    n = 1500
    q = pitch_quat(np.zeros(n))
    acc = np.tile([0.0, 0.0, 9.80665], (n, 1))
    meta = {"source": "simulated", "sample_rate_hz": 50, **HOSTILE}
    with RecordingWriter(rec, meta, fsync_interval_s=0) as w:
        for i in range(0, n, 5):
            if i == 500:
                w.write_note({"event": "gap", "boot_id": None, "from_seq": 500,
                              "reason": "<script>alert('gap')</script> [bold]rich[/bold]"}, 1.7e9 + i / 50)
                continue  # these samples are missing: the gap with the hostile reason is listed
            qq = np.stack([q[i:i + 5], q[i:i + 5]], axis=1)
            aa = np.stack([acc[i:i + 5], acc[i:i + 5]], axis=1)
            w.write_packets([wire.encode_samples(3, i, i * 20, 20000, np.zeros(5, np.uint8), qq, aa,
                                                 np.zeros_like(aa))], 1.7e9 + i / 50)
    db = tmp_path / "t.db"
    rc, out, err = run_strict(["analyse", str(rec), "--out", str(tmp_path / "o"), "--db", str(db)])
    assert rc == 0, err
    rc2, out2, err2 = run_strict(["trends", "--db", str(db), "--out", str(tmp_path / "trends.html")])
    assert rc2 == 0, err2
    pages = {"report": (tmp_path / "o" / (Path(name).stem + ".html")).read_text(),
             "trends": (tmp_path / "trends.html").read_text()}
    hostile = [v for v in HOSTILE.values() if isinstance(v, str)] + HOSTILE["imu_roles"][2:] + [name]
    hostile += ["<script>alert('gap')</script>"]
    for page_name, page in pages.items():
        assert f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">' in page, page_name
        head = page.split("<script", 1)[0]
        assert "Content-Security-Policy" in head  # before any script runs
        for h in hostile:
            assert h not in page, (page_name, h)
        # only plotly's own and the plots' script elements: none from the recording
        assert not re.search(r"<script[^>]*>\s*alert", page), page_name
        markup = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S)  # the page outside its scripts
        assert not re.search(r"<(img|svg|iframe|script)\b", markup), page_name
    report = pages["report"]
    for h in (HOSTILE["device_name"], HOSTILE["imu_roles"][2], "<script>alert('gap')</script>"):
        assert html_mod.escape(h) in report, h  # shown, as text
    assert "[bold]rich[/bold]" in out  # the terminal prints the text, not rich markup


def test_csp_forbids_network_access():
    from nape.report.page import CSP

    rules = dict(r.strip().split(" ", 1) for r in CSP.split(";"))
    assert rules["default-src"] == "'none'" and rules["connect-src"] == "'none'"
    for k in ("script-src", "style-src", "img-src", "font-src"):
        assert "http" not in rules[k] and "*" not in rules[k] and "'self'" not in rules[k], k


def test_analyse_says_it_writes_to_trends_and_can_skip_it(tmp_path):
    from nape import trends

    rec = write_recording(tmp_path / "r.nape", 50.0, pitch_quat(np.zeros(1500)))
    rc, out, err = run_strict(["analyse", str(rec), "--db", str(tmp_path / "t.db")])
    lines = [ln for ln in out.splitlines() if "trends database" in ln]
    assert rc == 0 and len(lines) == 1 and "--no-trends" in lines[0], out
    rc, out, err = run_strict(["analyse", str(rec), "--db", str(tmp_path / "u.db"), "--no-trends"])
    assert rc == 0 and "trends" not in out and not (tmp_path / "u.db").exists(), out
    assert len(trends.sessions(tmp_path / "t.db")) == 1


@pytest.mark.parametrize("rate", [100, 200, 400])
def test_report_names_the_streams_own_rate(rate):
    from nape.analysis.findings import Calibration, Findings, Jolt
    from nape.report import quality_notes, render_html
    from nape.settings import AnalysisSettings

    j = Jolt(peak_t_s=5.0, start_s=4.9, end_s=5.2, cause="bump", grade="mild", peak_trunk_g=0.5, peak_head_g=float("nan"),
             peak_head_dps=float("nan"))
    j.trace = {"source": "stream", "t_rel_s": [0.0, 0.01], "trunk_acc_g": [0.1, 0.5], "trunk_gyr_dps": [0.0, 1.0]}
    f = Findings(path="x.nape", metadata={"sample_rate_hz": rate}, settings=AnalysisSettings().as_dict(),
                 duration_s=10, samples=10 * rate, lost_samples=0, malformed_packets=0, file_issues=[],
                 calibration=Calibration("none", "", [[1, 0, 0, 0]]), roles=["trunk"], jolts=[j], valid_s=10.0,
                 series={"time_s": [0.0], "trunk_inclination_deg": [0.0], "lying": [False]})
    notes = " ".join(quality_notes(f))
    assert f"the {rate} Hz stream" in notes and (rate == 100 or "100 Hz" not in notes), notes
    page = render_html(f)
    assert f"{rate} Hz stream" in page and (rate == 100 or "100 Hz stream" not in page)
