"""Neutral posture: captured by the wearer, or estimated from the recording.

Priority: (1) a NOTE chunk ``{"kind": "calibration", "trunk_q": [w,x,y,z], "head_q": [...]}``
written when the wearer pressed "calibrate" (quaternions from the same fusion the analysis
uses: ``"fusion": "firmware"`` or ``"vqf"``); (2) the first still, upright stretch of
``neutral_window_s`` within the first ``calib_search_s`` seconds (the wearer is asked to
start upright, hardware/MOUNTING.md); (3) otherwise the stillest, most upright ``neutral_window_s``, flagged as a guess with
``guess_error_deg``: the largest tilt of a sensor's z axis from vertical in it, how far off
the neutral may be. The report says which was used.

The gyroscopes' zero-rate offset (removed before re-fusion and by the jolt measures) is the
trimmed mean over all still windows of the searched span (:func:`_zero_rate_offset`).
"""

from __future__ import annotations

import numpy as np

from ..settings import AnalysisSettings
from .findings import Calibration
from .orientation import Refuser
from .quality import UNIT_CHECK_S, GlitchGuard, input_warnings
from .stream import BlockReader

OFFSET_GATE_DPS = 1.0  # a still window's mean may differ from the neutral window's by sway (≤ 0.3 °/s simulated)
TRIM_DPS = 0.3
GUESS_WINDOW_S = 1.0  # the guessed neutral: the stillest, most upright window this long  # ... and the trimmed mean keeps windows this close to their median


def captured(rec) -> dict | None:
    """The last usable calibration NOTE in the recording, if any (a note whose quaternions are
    not four finite numbers of non-zero length is ignored: the analysis estimates instead)."""
    found = None
    for _t, note in rec.iter_notes():
        if note.get("kind") == "calibration" and _unit_quat(note.get("trunk_q")) is not None:
            found = dict(note, trunk_q=_unit_quat(note["trunk_q"]))
            if "head_q" in note:
                head = _unit_quat(note["head_q"])
                found.pop("head_q")
                if head is not None:
                    found["head_q"] = head
    return found


def _unit_quat(q) -> list[float] | None:
    """``q`` as a unit quaternion [w, x, y, z], or None when it is not four finite numbers."""
    if not isinstance(q, list | tuple) or len(q) != 4:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in q):
        return None
    a = np.asarray(q, float)
    norm = float(np.linalg.norm(a)) if np.isfinite(a).all() else 0.0
    return (a / norm).tolist() if np.isfinite(norm) and norm > 1e-6 else None


def estimate(rec, mask: int, n_imu: int, s: AnalysisSettings) -> Calibration:
    """Neutral quaternions per IMU (list of [w,x,y,z]) and how they were found."""
    note = captured(rec)
    if note is not None:
        qs = [note["trunk_q"]] + ([note["head_q"]] if n_imu > 1 and "head_q" in note else [])
        if len(qs) == n_imu:
            return Calibration("captured", "neutral posture captured by the wearer", qs,
                               fusion=note.get("fusion", "firmware"))
    accs, gyrs, fws = [], [], []
    logs: list = []  # the offline day log's blocks before the first full-rate one
    n_max = None
    period = 0.01
    guard = GlitchGuard(n_imu, s)  # glitches masked here too: a spike is no neutral posture
    for b in guard.blocks(BlockReader(rec, mask, batch=500)):
        if b.reduced:
            if not gyrs:
                logs.append(b)
                if _log_span_s(logs) >= s.calib_search_s:
                    break
            continue
        if logs and _log_span_s(logs) >= s.neutral_window_s:
            break  # the recording starts in the day log, long enough to find the neutral in it
        if n_max is None:
            period = b.period_s
            n_max = int(s.calib_search_s / period)
        accs.append(b.acc)
        gyrs.append(b.gyr)
        fws.append(b.quat)
        if sum(len(g) for g in gyrs) >= n_max:
            break
    if logs and (not gyrs or _log_span_s(logs) >= s.neutral_window_s):
        return _from_log(logs, n_imu, s)
    if not gyrs:
        return Calibration("none", "no samples", [[1, 0, 0, 0]] * n_imu, gyro_offset_rad_s=[[0.0, 0.0, 0.0]] * n_imu)
    acc = np.concatenate(accs)[:n_max]
    gyr = np.concatenate(gyrs)[:n_max]
    check = int(UNIT_CHECK_S / period)  # two minutes tell the units; more only costs time
    doubts = input_warnings(acc[:check, 0], gyr[:check, 0], period)
    win = max(1, min(int(s.neutral_window_s / period), len(gyr)))  # a short recording: all of it
    settle = max(0, min(int(s.calib_settle_s / period), len(gyr) - win))
    i0, still = _first_still_upright(acc, gyr, win, settle, s) if len(gyr) >= 2 else (0, False)
    trunk_only = False
    if not still and n_imu > 1 and len(gyr) >= 2:  # still and upright at the back, but the head tilted all along
        i0, trunk_only = _first_still_upright(acc, gyr, win, settle, s, check_head=False)
    if still:
        method, detail = "automatic", (f"first still upright {s.neutral_window_s:g} s "
                                       f"(at {i0 * period:.0f} s) taken as neutral; no calibration captured")
    elif trunk_only:
        off = float(_tilt_deg(acc[i0: i0 + win, 1:]).max())
        method, detail = "guess", (f"no still stretch with the head upright in the first {s.calib_search_s:g} s: the first "
                                   f"still upright back (at {i0 * period:.0f} s) taken as neutral, the head sensor "
                                   f"{off:.0f}° from vertical in it — the head was bent (reading, writing) or its "
                                   f"sensor sits turned; head angles may be off by up to {off:.0f}°")
    else:
        # the stillest, most upright second (a short recording may hold no still 5 s at all;
        # the filter's settling is not waited for: VQF starts from the first accelerometer sample)
        win = max(2, min(int(round(GUESS_WINDOW_S / period)), len(gyr)))
        i0 = _best_guess(acc, gyr, win, 0)
        off = _tilt_deg(acc[i0: i0 + win]).max(axis=0)
        what = "trunk" if n_imu == 1 else "trunk and head"
        method, detail = "guess", (f"no stretch of {s.neutral_window_s:g} s with the {what} still and upright in the first "
                                   f"{s.calib_search_s:g} s; the stillest, most upright second (at {i0 * period:.0f} s) "
                                   f"assumed neutral: angles may be off by up to {float(off.max()):.0f}°")
    # A still sensor's mean gyro is its zero-rate offset: MEMS parts allow up to ±20 °/s
    # (MPU-6050 datasheet), far beyond what a fusion filter's bias estimate may absorb.
    offset = (_zero_rate_offset(gyr, win, gyr[i0: i0 + win].mean(axis=0), s) if still or trunk_only
              else np.zeros((n_imu, 3)))
    if s.fuse_on_host:
        q = Refuser(n_imu, period, offset)(acc[: i0 + win], gyr[: i0 + win])
    else:
        q = np.concatenate(fws)[: i0 + win]
    seg = q[i0: i0 + win]
    neutral = []
    for k in range(n_imu):
        m = seg[:, k] * np.sign(seg[:, k] @ seg[0, k])[:, None]  # same hemisphere before averaging
        mean = m.mean(axis=0)
        neutral.append((mean / np.linalg.norm(mean)).tolist())
    # a guess: how far off the neutral may be, the sensors' tilt from vertical in it
    error = None if still else float(_tilt_deg(acc[i0: i0 + win, 1:] if trunk_only else acc[i0: i0 + win]).max())
    return Calibration(method, detail, neutral, start_s=i0 * period, gyro_offset_rad_s=np.asarray(offset).tolist(),
                       fusion="vqf" if s.fuse_on_host else "firmware", guess_error_deg=error,
                       input_warnings=doubts)


def _tilt_deg(acc: np.ndarray) -> np.ndarray:
    """Angle (deg) between each sensor's z axis and the measured specific force, (n, k)."""
    return np.degrees(np.arccos(np.clip(acc[..., 2] / np.maximum(np.linalg.norm(acc, axis=-1), 1e-9), -1, 1)))


def _window_std(gyr: np.ndarray, win: int) -> np.ndarray:
    """Largest per-axis standard deviation of the gyro over each window of ``win`` samples."""
    x = gyr.reshape(len(gyr), -1)
    kern = np.ones(win) / win
    mean = np.apply_along_axis(lambda c: np.convolve(c, kern, mode="valid"), 0, x)
    mean2 = np.apply_along_axis(lambda c: np.convolve(c * c, kern, mode="valid"), 0, x)
    return np.sqrt(np.maximum(mean2 - mean * mean, 0)).max(axis=1)


def _window_max(x: np.ndarray, win: int) -> np.ndarray:
    """Largest value over each window of ``win`` samples of ``x`` (n,)."""
    from numpy.lib.stride_tricks import sliding_window_view
    return sliding_window_view(x, win).max(axis=1) if len(x) >= win else x[:1]


def _first_still_upright(acc: np.ndarray, gyr: np.ndarray, win: int, settle: int, s: AnalysisSettings,
                         check_head: bool = True):
    """Index of the first window where every gyro axis of every IMU varies less than
    ``still_dps`` (std), the trunk sensor's z axis is within ``upright_tilt_deg`` of the
    measured gravity and, with a head IMU, the head sensor's z axis within
    ``neutral_head_tilt_deg`` (a recording that starts while reading or writing has the
    head still but flexed: not neutral). Variation, not magnitude, so a large gyro offset
    does not hide stillness."""
    std = _window_std(gyr, win)
    tilt = _tilt_deg(acc)
    ok = (std < np.radians(s.still_dps)) & (_window_max(tilt[:, 0], win)[: len(std)] < s.upright_tilt_deg)
    if acc.shape[1] > 1 and check_head:
        ok &= _window_max(tilt[:, 1], win)[: len(std)] < s.neutral_head_tilt_deg
    ok[:settle] = False
    hits = np.flatnonzero(ok)
    if len(hits):
        return int(hits[0]), True
    return max(settle, 0), False


def _best_guess(acc: np.ndarray, gyr: np.ndarray, win: int, settle: int) -> int:
    """Start of the window after ``settle`` that is stillest and most upright: the smallest
    sum of its largest sensor tilt (deg) and its gyro variation (°/s, std)."""
    std = np.degrees(_window_std(gyr, win))
    tilt = _tilt_deg(acc).max(axis=1)
    cost = std + _window_max(tilt, win)[: len(std)]
    cost[:settle] = np.inf
    return int(np.argmin(cost)) if np.isfinite(cost).any() else max(settle, 0)


def _zero_rate_offset(gyr: np.ndarray, win: int, first: np.ndarray, s: AnalysisSettings) -> np.ndarray:
    """Zero-rate offset per IMU (k, 3), rad/s: the trimmed mean of the mean gyro of every still window
    (``win`` samples, every axis' std below ``still_dps``) of the searched span whose mean
    lies within ``OFFSET_GATE_DPS`` of ``first`` (the neutral window's mean): a steady turn
    of a car or a slow deliberate head turn has a small std too, but a mean far from that.

    Why not just the neutral window: a wearer standing "still" sways and a held head drifts
    slowly, so one 5 s window's mean holds up to 0.3 °/s of real rotation (simulated wearer,
    ideal sensor) — 36° of heading in two minutes. Over all still windows of the first
    ``calib_search_s`` those slow motions go back and forth (0.01–0.03 °/s typical,
    ≤ 0.12 °/s on simulated workdays and drives); trimmed (windows within ``TRIM_DPS`` of the median) so that a car's gentle
    curves (a still wearer, a turning sensor) do not pull it.
    """
    m = len(gyr) // win
    x = gyr[: m * win].reshape(m, win, *gyr.shape[1:])
    std = x.std(axis=1).reshape(m, -1).max(axis=1)
    mean = x.mean(axis=1)
    near = (np.abs(mean - first) < np.radians(OFFSET_GATE_DPS)).reshape(m, -1).all(axis=1)
    ok = (std < np.radians(s.still_dps)) & near
    if not ok.any():
        return first
    center = np.median(mean[ok], axis=0)
    close = ok & (np.abs(mean - center) < np.radians(TRIM_DPS)).reshape(m, -1).all(axis=1)
    if not close.any():  # e.g. NaN in the windows (a zeroed stretch of file): the median stands
        return center
    return mean[close].mean(axis=0)


def _log_span_s(logs: list) -> float:
    """Seconds of orientation the offline day log's blocks hold."""
    return sum(len(b.index) * (b.source_period_s or b.period_s) for b in logs)


def _from_log(logs: list, n_imu: int, s: AnalysisSettings) -> Calibration:
    """The neutral from the board's own orientation at the reduced rate (a recording that
    starts in the offline day log): the same search as for full-rate data, with the gravity
    direction and the angular rate taken from the quaternions (no acc/gyr there). The
    gyroscopes' zero-rate offset cannot be measured from them: taken as 0."""
    from .. import quat as _q

    period = float(logs[0].source_period_s or logs[0].period_s)
    q = np.concatenate([b.quat for b in logs])[: int(s.calib_search_s / period) + 1]
    acc = _q.rotate(_q.conj(q), np.broadcast_to([0.0, 0.0, 9.80665], q.shape[:-1] + (3,)))  # gravity, m/s²
    gyr = np.zeros(acc.shape)
    if len(q) > 1:
        rel = _q.mul(_q.conj(q[:-1]), q[1:])
        rel = rel * np.where(rel[..., :1] < 0, -1.0, 1.0)
        gyr[1:] = 2.0 * rel[..., 1:] / period  # small-angle rotation vector per period
    win = max(1, min(int(s.neutral_window_s / period), len(q)))
    i0, still = _first_still_upright(acc, gyr, win, 0, s) if len(q) >= 2 else (0, False)
    if still:
        method, detail = "automatic", (f"first still upright {s.neutral_window_s:g} s (at {i0 * period:.0f} s, in the "
                                       "board's offline day log: its own orientation at the reduced rate) taken as "
                                       "neutral; no calibration captured")
    else:
        win = max(2, min(int(round(GUESS_WINDOW_S / period)), len(q))) if len(q) >= 2 else 1
        i0 = _best_guess(acc, gyr, win, 0) if len(q) >= 2 else 0
        method, detail = "guess", ("no still upright stretch in the first minutes of the board's offline day log; "
                                   f"the stillest, most upright second (at {i0 * period:.0f} s) assumed neutral")
    seg = q[i0: i0 + win]
    neutral = []
    for k in range(n_imu):
        m = seg[:, k] * np.sign(seg[:, k] @ seg[0, k])[:, None]
        mean = m.mean(axis=0)
        neutral.append((mean / np.linalg.norm(mean)).tolist())
    error = None if still else float(_tilt_deg(acc[i0: i0 + win]).max())
    return Calibration(method, detail, neutral, start_s=i0 * period, gyro_offset_rad_s=[[0.0, 0.0, 0.0]] * n_imu,
                       fusion="firmware", guess_error_deg=error)
