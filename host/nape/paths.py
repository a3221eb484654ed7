"""Where nape finds the firmware sources it ships (inside the wheel, or the checkout)."""

from __future__ import annotations

import os
from importlib.resources import as_file, files
from pathlib import Path

from .errors import FirmwareError


def firmware_dir() -> Path:
    """The board's ``firmware/`` sources (override with ``NAPE_FIRMWARE_DIR``).

    In a checkout ``host/nape/firmware`` is a link to the top-level ``firmware/``; a wheel
    carries a copy made at build time. Either way it is package data of ``nape``.

    Raises:
        FirmwareError: the folder cannot be found.
    """
    env = os.environ.get("NAPE_FIRMWARE_DIR")
    if env:
        d = Path(env)
    else:
        with as_file(files("nape") / "firmware") as p:
            d = Path(p)
    if not (d / "pipeline.py").is_file():
        raise FirmwareError(f"firmware sources not found in {d} (reinstall nape, or set NAPE_FIRMWARE_DIR)")
    return d
