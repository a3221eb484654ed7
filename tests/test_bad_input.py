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
