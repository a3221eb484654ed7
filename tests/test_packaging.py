"""What a fresh install relies on: the launcher, the shipped sources, one-line child failures."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from nape import childlog, micropython
from nape.ble import VirtualDevice
from nape.boardsim import mpy_dir
from nape.errors import FirmwareError
from nape.paths import firmware_dir

ROOT = Path(__file__).resolve().parents[1]


def test_firmware_is_package_data_linked_to_the_one_source():
    d = firmware_dir()
    assert (d / "main.py").is_file()
    assert d.resolve() == (ROOT / "firmware").resolve()  # a link, not a copy, in a checkout
    assert not (ROOT / "firmware" / "simhost.py").exists()  # host-only code is not flashed


def test_board_simulation_lives_in_the_package_not_in_tests():
    d = mpy_dir()
    assert {"bluetooth.py", "machine.py", "simhost.py", "nsim_app.py"} <= {p.name for p in d.glob("*.py")}
    assert "tests" not in d.resolve().parts
    assert not (ROOT / "tests" / "firmware" / "shims").exists()


def test_runtime_code_never_reads_the_checkout_or_tests():
    for py in (ROOT / "host" / "nape").rglob("*.py"):
        if "mpy" in py.parts:
            continue
        text = py.read_text(encoding="utf-8")
        assert "REPO_ROOT" not in text, py
        assert '/ "tests"' not in text and "tests/firmware" not in text, py
        assert "parents[2]" not in text, py


def test_micropython_found_without_path(monkeypatch):
    """pipx, cron and desktop shortcuts call nape by full path with a bare PATH."""
    monkeypatch.delenv("NAPE_MICROPYTHON", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    exe = micropython.find()
    scripts = sysconfig.get_path("scripts")
    if (Path(scripts) / "micropython").is_file():
        assert Path(exe).parent == Path(scripts)
    out = subprocess.run([exe, "-c", "import sys; print(sys.implementation.name)"], capture_output=True, text=True)
    assert out.stdout.strip() == "micropython"


def test_micropython_override_and_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPE_MICROPYTHON", str(tmp_path / "nowhere"))
    with pytest.raises(FirmwareError, match="NAPE_MICROPYTHON=.* is not an executable"):
        micropython.find()


def test_last_error_line_picks_the_exception():
    err = "Traceback (most recent call last):\n  File \"x\", line 1\nModuleNotFoundError: No module named 'bumble'\n"
    assert micropython.last_error_line(err) == "ModuleNotFoundError: No module named 'bumble'"
    assert childlog.cause(err) == "bumble is not installed: pip install bumble"
    assert childlog.cause("") == "no message"


def test_virtual_device_without_bumble_says_so_in_one_line(tmp_path, monkeypatch):
    """bumble hidden from the child: one line naming the cause and the full log, no traceback."""
    fake = tmp_path / "hide"
    (fake / "bumble").mkdir(parents=True)
    (fake / "bumble" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'bumble'\", name='bumble')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake))
    monkeypatch.setenv("NAPE_LOG_DIR", str(tmp_path / "logs"))

    async def go():
        vd = VirtualDevice(start_timeout=30)
        with pytest.raises(FirmwareError) as ei:
            await vd.start()
        return str(ei.value)

    msg = asyncio.run(go())
    assert "\n" not in msg
    assert msg.startswith("virtual device did not start: bumble is not installed: pip install bumble")
    assert "RuntimeWarning" not in msg and "Traceback" not in msg
    log = Path(msg.split("full log: ")[1].rstrip(")"))
    assert log.is_file() and "Traceback" in log.read_text()


def test_cli_reports_a_missing_bumble_child_in_one_line(tmp_path):
    fake = tmp_path / "hide"
    (fake / "bumble").mkdir(parents=True)
    (fake / "bumble" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'bumble'\", name='bumble')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(ROOT / "host")]),
               NAPE_LOG_DIR=str(tmp_path / "logs"))
    code = ("import sys, bumble\n")  # the parent itself must not need bumble for this message
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0  # the hiding works
    # the parent has bumble; only the virtual-device child is denied it
    env_child = dict(os.environ, NAPE_LOG_DIR=str(tmp_path / "logs"))
    code = ("import os, sys; os.environ['PYTHONPATH'] = %r; from nape.cli import main; sys.exit(main(['scan', '--virtual', '--timeout', '1']))"
            % str(fake))
    r = subprocess.run([sys.executable, "-c", code], env=dict(env_child, PYTHONPATH=str(ROOT / "host")),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "bumble is not installed: pip install bumble" in lines[0]
