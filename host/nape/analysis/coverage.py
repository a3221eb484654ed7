"""What the data can carry: how much valid data a recording holds and what it is too short to judge.

Every headline figure rests on the *valid* data: samples on the timeline that were not lost
(radio, reboot, buffer overflow), not in damaged parts of the file and not masked as sensor
glitches (:mod:`nape.analysis.quality`). A judgement that needs a minimum stretch of data
(a posture held ``hold_s``, a vehicle's ``vehicle_window_s`` of vibration) is named as not
judged when the valid data is shorter, instead of being reported as "never".
"""

from __future__ import annotations

from ..plainwords import fmt_duration
from ..settings import AnalysisSettings

#: Below this share of the recorded span, a recording is flagged "little valid data": its
#: figures are shown but qualified, and trends keep it out of their averages (Nape default).
LOW_COVERAGE_SHARE = 0.5
#: ... and below this many valid seconds, whatever the share (Nape default: a minute).
LOW_COVERAGE_S = 60.0


def not_judged(valid_s: float, n_imu: int, s: AnalysisSettings) -> list[str]:
    """Plain-words list of what ``valid_s`` seconds of valid data are too short to judge.

    Args:
        valid_s: seconds of valid data.
        n_imu: IMUs in the recording (1: trunk only, 2: trunk and head).
        s: the analysis settings (the minimum lengths).
    """
    if valid_s <= 0:
        return ["No valid samples: nothing could be judged (posture, activity, jolts)."]
    out = []
    span = fmt_duration(valid_s)
    if valid_s < s.hold_s:
        what = "neck or upper-back" if n_imu > 1 else "upper-back"
        out.append(f"Too short to judge {what} posture holds of {fmt_duration(s.hold_s)} (only {span} of valid data): "
                   "no poor-posture episode or ISO 11226 verdict is possible.")
    if valid_s < s.bed_hold_s and n_imu > 1:
        out.append(f"Too short to judge neck posture in bed (held {fmt_duration(s.bed_hold_s)}).")
    if valid_s < 0.6 * s.vehicle_window_s:
        out.append(f"Too short to tell a vehicle ride (needs most of {fmt_duration(s.vehicle_window_s)} of road vibration).")
    if valid_s < s.walk_min_s:
        out.append(f"Too short to tell walking (needs {fmt_duration(s.walk_min_s)} of steps).")
    if valid_s < s.neutral_window_s:
        out.append(f"Too short for a still {fmt_duration(s.neutral_window_s)} to take as the neutral posture: "
                   "angles are relative to the first moment and may be offset.")
    return out


def is_low(valid_s: float, span_s: float) -> bool:
    """True when a recording rests on too little valid data to count in averages."""
    return valid_s < LOW_COVERAGE_S or (span_s > 0 and valid_s / span_s < LOW_COVERAGE_SHARE)


def rests_on(valid_s: float, span_s: float) -> str:
    """'rests on 7 min 40 s of valid data (85 % of 9 min)' for headline figures."""
    share = 100.0 * valid_s / span_s if span_s > 0 else 0.0
    return f"{fmt_duration(valid_s)} of valid data ({share:.0f} % of {fmt_duration(span_s)} recorded)"


def with_breaks(t_s, *series, max_step_s: float = 1.5):
    """``t_s`` and each series with a NaN point inserted after every step longer than
    ``max_step_s``, so that a plot breaks its line over missing data instead of drawing across.

    Returns:
        (t with the break points, [series with NaN at them]) as float arrays.
    """
    import numpy as np

    t = np.asarray(t_s, float)
    if len(t) < 2:
        return t, [np.asarray(y, float) for y in series]
    cut = np.flatnonzero(np.diff(t) > max_step_s) + 1
    tb = np.insert(t, cut, t[cut - 1] + 0.5)
    return tb, [np.insert(np.asarray(y, float), cut, np.nan) for y in series]
