"""Full logs of child processes (virtual device, firmware under MicroPython) that failed.

A failing child is reported to the user in one line with its real cause; the whole of
what it printed goes to a file that the line names, in the user's log folder
(``platformdirs.user_log_path("nape")``, or ``NAPE_LOG_DIR``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import platformdirs

# Missing Python packages a child may need, and what to tell the user.
_HINTS = {
    "bumble": "bumble is not installed: pip install bumble",
    "bleak": "bleak is not installed: pip install bleak",
    "numpy": "numpy is not installed: pip install numpy",
}


def log_dir() -> Path:
    d = Path(os.environ.get("NAPE_LOG_DIR") or platformdirs.user_log_path("nape"))
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        d = Path(tempfile.gettempdir())
    return d


def write(name: str, text: str) -> Path | None:
    """Save ``text`` as ``<log dir>/<name>-<time>.log``; ``None`` if it cannot be written."""
    path = log_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        path.write_text(text, encoding="utf-8", errors="replace")
    except OSError:
        return None
    return path


def cause(stderr: str) -> str:
    """The real cause in a child's stderr, in words a user can act on."""
    from .micropython import last_error_line

    line = last_error_line(stderr)
    if line.startswith(("ModuleNotFoundError", "ImportError")) and "'" in line:
        mod = line.split("'")[1].split(".")[0]
        if mod in _HINTS:
            return _HINTS[mod]
    return line or "no message"


def summary(what: str, stderr: str, name: str) -> str:
    """One line: ``what: cause (full log: PATH)``, the log saved under ``name``."""
    path = write(name, stderr)
    where = f" (full log: {path})" if path else ""
    return f"{what}: {cause(stderr)}{where}"
