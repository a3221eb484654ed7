"""Sustained poor posture from the 10 Hz angle series: episodes, ISO 11226, RULA, exposure.

Definitions (degrees, relative to the neutral posture, forward/flexion positive):
- neck flexion = head inclination − trunk inclination (ISO 11226);
- trunk inclination = forward pitch of the upper back (hunching);
- bed: while lying, the neck's lateral bend and flexion relative to the trunk (joint angles).
"""

from __future__ import annotations

import numpy as np

from ..settings import AnalysisSettings
from .findings import PostureEpisode

SERIES_HZ = 10.0


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of True runs."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def centred_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Moving mean over ``width`` points, centred, same length as ``x`` whatever its length
    (points beyond the ends count as 0, so a series shorter than ``width`` never reaches a
    share it has not shown for ``width`` points)."""
    x = np.asarray(x, float)
    if len(x) == 0:
        return x.copy()
    width = max(1, int(width))
    full = np.convolve(x, np.ones(width) / width, mode="full")
    start = (width - 1) // 2
    return full[start: start + len(x)]


def episodes(kind: str, t: np.ndarray, angle: np.ndarray, valid: np.ndarray, threshold: float,
             s: AnalysisSettings, hold_s: float | None = None) -> list[PostureEpisode]:
    """Episodes with hysteresis: enter above ``threshold``; stay while above
    ``threshold − hysteresis_deg``; dips shorter than ``end_grace_s`` do not end an episode;
    keep those lasting ``hold_s`` or more."""
    hold = s.hold_s if hold_s is None else hold_s
    high = (angle > threshold) & valid
    still_high = (angle > threshold - s.hysteresis_deg) & valid
    dt = 1.0 / SERIES_HZ
    grace = int(round(s.end_grace_s / dt))
    merged: list[list[int]] = []
    for i0, i1 in runs(high):
        while i1 < len(angle) and still_high[i1]:
            i1 += 1
        if merged and i0 - merged[-1][1] <= grace:
            merged[-1][1] = max(merged[-1][1], i1)
        else:
            merged.append([i0, i1])
    out = []
    for i0, i1 in merged:
        if (i1 - i0) * dt >= hold:
            seg = angle[i0:i1]
            out.append(PostureEpisode(kind, float(t[i0]), float(t[i1 - 1] + dt), float(seg.mean()), float(seg.max())))
    return out


def iso11226_head(mean_head_deg: float, neck_deg: float, duration_s: float, s: AnalysisSettings) -> str:
    """ISO 11226 evaluation of a head posture held ``duration_s``."""
    if mean_head_deg < 0 or mean_head_deg > 85:
        return "not acceptable: head inclination outside 0–85°"
    if neck_deg > s.iso_neck_flexion_deg:
        return f"not acceptable: neck flexion {neck_deg:.0f}° beyond {s.iso_neck_flexion_deg:g}°"
    if mean_head_deg <= 25:
        return "acceptable"
    limit = _interp_holding(mean_head_deg, 25.0, 85.0, s.iso_head_hold_25_min, s.iso_head_hold_85_min)
    if duration_s / 60 <= limit:
        return f"acceptable (held {duration_s / 60:.1f} min ≤ {limit:.1f} min allowed at {mean_head_deg:.0f}°)"
    return f"not acceptable: held {duration_s / 60:.1f} min > {limit:.1f} min allowed at {mean_head_deg:.0f}°"


def iso11226_trunk(mean_trunk_deg: float, duration_s: float, s: AnalysisSettings) -> str:
    """ISO 11226 evaluation of a trunk inclination held ``duration_s``."""
    if mean_trunk_deg > 60:
        return "not acceptable: trunk inclination above 60°"
    if mean_trunk_deg <= 20:
        return "acceptable"
    limit = _interp_holding(mean_trunk_deg, 20.0, 60.0, s.iso_trunk_hold_20_min, s.iso_trunk_hold_60_min)
    if duration_s / 60 <= limit:
        return f"acceptable (held {duration_s / 60:.1f} min ≤ {limit:.1f} min allowed at {mean_trunk_deg:.0f}°)"
    return f"not acceptable: held {duration_s / 60:.1f} min > {limit:.1f} min allowed at {mean_trunk_deg:.0f}°"


def _interp_holding(angle: float, a0: float, a1: float, m0: float, m1: float) -> float:
    """Maximum acceptable holding time (min), linear between the curve's end points."""
    return float(np.interp(angle, [a0, a1], [m0, m1]))


def rula_neck(neck: np.ndarray, lateral: np.ndarray | None, axial: np.ndarray | None,
              s: AnalysisSettings) -> np.ndarray:
    """RULA neck score per sample (McAtamney & Corlett 1993): 1 for 0–10° flexion,
    2 for 10–20°, 3 above 20°, 4 in extension; +1 twisted, +1 side-bent."""
    score = np.where(neck < -s.rula_extension_deg, 4, np.where(neck > 20, 3, np.where(neck > 10, 2, 1)))
    if lateral is not None:
        score = score + (np.abs(lateral) > s.rula_side_bend_deg)
    if axial is not None:
        score = score + (np.abs(axial) > s.rula_twist_deg)
    return score


def pattern(ep: PostureEpisode, s: AnalysisSettings) -> str:
    """Plain-words pattern of a neck episode: phone / looking down vs keyboard."""
    if ep.kind != "neck_flexion":
        return "hunched upper back"
    # head-vs-trunk geometry: on a phone the neck bends deep (33–45°) over a back that is
    # upright or leans a little (seated: 15–20°); at a keyboard the back leans further or
    # the neck bends less, the eyes on a screen ahead
    if ep.mean_deg >= s.phone_neck_deg and ep.mean_trunk_inclination_deg < s.phone_trunk_max_deg:
        return "phone / looking down (deep neck flexion, back upright or slightly forward)"
    if ep.mean_trunk_inclination_deg >= s.keyboard_trunk_deg:
        return "keyboard (neck and upper back forward)"
    if ep.mean_deg >= s.phone_neck_deg:
        return "phone / looking down (deep neck flexion, upright back)"
    return "head forward"


def bed_pattern(flex: float, lateral: float, side_lying: bool) -> str:
    if side_lying:
        return "neck bent sideways in bed: pillow too low or too high for side lying"
    if flex > 0:
        return "neck flexed in bed: pillow too high"
    return "neck extended in bed: pillow too low"
