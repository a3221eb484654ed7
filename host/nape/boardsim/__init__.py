"""Simulating a Nape board on the host (nothing here is flashed to a board).

``mpy/`` holds MicroPython sources that run under the unix MicroPython beside the real
``firmware/`` modules:

- ``bluetooth.py``, ``machine.py``: stand-ins for the ESP32's ``bluetooth`` and ``machine``
  modules (the BLE shim bridges to a bumble virtual radio through ``nape.ble.peripheral``);
- ``simhost.py``: the firmware pipeline on raw samples piped through stdin (``nape demo --link pipe``);
- ``nsim_app.py``: ``ble_app.BleApp`` on raw samples from a file (the virtual device).

:func:`mpy_dir` finds the folder (inside an installed wheel too); ``nape.micropython``
starts the interpreter with it on ``MICROPYPATH``.
"""

from __future__ import annotations

import os
from importlib.resources import as_file, files
from pathlib import Path

from ..errors import FirmwareError


def mpy_dir() -> Path:
    """The board-simulation MicroPython sources (override with ``NAPE_BOARDSIM_DIR``).

    Raises:
        FirmwareError: the folder is missing (a broken install).
    """
    env = os.environ.get("NAPE_BOARDSIM_DIR")
    if env:
        d = Path(env)
    else:
        with as_file(files(__package__) / "mpy") as p:  # a real folder for wheels and checkouts
            d = Path(p)
    if not (d / "bluetooth.py").is_file():
        raise FirmwareError(f"board-simulation sources not found in {d} (reinstall nape, or set NAPE_BOARDSIM_DIR)")
    return d
