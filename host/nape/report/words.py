"""Words, colours and times shared by every report page and the terminal summaries."""

from __future__ import annotations

from ..plainwords import fmt_duration  # noqa: F401  (one duration format for every page and the analysis)

GRADE_COLOUR = {"mild": "#a68a00", "moderate": "#d35400", "severe": "#c62828"}


def plural(n: int, word: str) -> str:
    """'1 jolt', '3 jolts', '2 patches'."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}{'es' if word.endswith(('ch', 'sh', 's', 'x')) else 's'}"




def fmt_clock(seconds: float) -> str:
    """Elapsed time 'H:MM:SS' (seconds in)."""
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def local_time(iso: object, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An ISO 8601 time (a recording's ``created``, UTC) as local clock time of this computer;
    '' when missing, the text itself when it is not a time."""
    from datetime import datetime, timezone

    if not isinstance(iso, str) or not iso:
        return ""
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone().strftime(fmt)
