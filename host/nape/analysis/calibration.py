"""Neutral posture: captured by the wearer, or estimated from the recording.

Priority: (1) a NOTE chunk ``{"kind": "calibration", "trunk_q": [w,x,y,z], "head_q": [...]}``
written when the wearer pressed "calibrate" (quaternions from the same fusion the analysis
uses: ``"fusion": "firmware"`` or ``"vqf"``); (2) the first still, upright stretch of
``neutral_window_s`` within the first ``calib_search_s`` seconds (the wearer is asked to
start upright, hardware/MOUNTING.md); (3) otherwise the stillest, most upright ``neutral_window_s``, flagged as a guess with
``guess_error_deg``: the largest tilt of a sensor's z axis from vertical in it, how far off
the neutral may be. The report says which was used.

Walking (:class:`WalkReference`, the first ``calib_walk_search_s``): people walk with the head
and the upper back near upright ([WALKHEAD] in nape.settings), so a sensor's mean direction of
gravity over walking bouts is its upright whatever angle it is worn at (cap, glasses, ear hook,
back of the head). A sensor that no still stretch held upright (the head when only the back
was still and upright; both in a guess), or a head whose still start lies more than
``calib_walk_disagree_deg`` from walking, takes that as its neutral: method "walking", with
``walking_reference`` and ``guess_error_deg`` (how sure) saying so. The upper back's still
neutral is not replaced when it disagrees: the report's walking check says how far off it is.

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
    n_got, n_walk, walk = 0, 0, None
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
            walk = WalkReference(1.0 / period, n_imu, s) if s.calib_walk_search_s > 0 else None
            n_walk = int(s.calib_walk_search_s / period)
        if walk is not None:
            walk.feed(b.acc)
        if n_got < n_max:
            accs.append(b.acc)
            gyrs.append(b.gyr)
            fws.append(b.quat)
            n_got += len(b.gyr)
        if n_got >= n_max and (walk is None or walk.n_seen >= n_walk or walk.walking_s() >= s.calib_walk_enough_s):
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
    ref = walk.reference() if walk is not None else None
    # each sensor's upright whatever its mounting — unless the walks disagree (one spent looking
    # at a phone, say): then walking tells nothing certain and the z-axis tests stand alone
    ups = ref["up"] if ref is not None and float(ref["spread_deg"].max()) <= s.calib_walk_disagree_deg else None
    i0, still = _first_still_upright(acc, gyr, win, settle, s) if len(gyr) >= 2 else (0, False)
    by_walk = False
    if ups is not None and len(gyr) >= 2:  # the first still window upright by either test
        j0, by_walk = _first_still_upright(acc, gyr, win, settle, s, ups=ups)
        by_walk = by_walk and (not still or j0 < i0)
        if by_walk:
            i0, still = j0, True
    trunk_only = False
    if not still and n_imu > 1 and len(gyr) >= 2:  # still and upright at the back, but the head tilted all along
        i0, trunk_only = _first_still_upright(acc, gyr, win, settle, s, check_head=False)
        if ups is not None:
            j0, by_walk_trunk = _first_still_upright(acc, gyr, win, settle, s, check_head=False, ups=ups)
            if by_walk_trunk and (not trunk_only or j0 < i0):
                i0, trunk_only = j0, True
    if still:
        method, detail = "automatic", (f"first still upright {s.neutral_window_s:g} s "
                                       f"(at {i0 * period:.0f} s) taken as neutral; no calibration captured")
        if by_walk:
            tilt = _tilt_deg(acc[i0: i0 + win]).max(axis=0)
            detail += ("; the sensors read " + " and ".join(f"{v:.0f}°" for v in tilt) + " from level in it (worn "
                       "at an angle) but close to their direction while walking, so they counted as upright")
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
    cal = Calibration(method, detail, neutral, start_s=i0 * period, gyro_offset_rad_s=np.asarray(offset).tolist(),
                      fusion="vqf" if s.fuse_on_host else "firmware", guess_error_deg=error,
                      input_warnings=doubts)
    return _with_walking(cal, ref, still, trunk_only, n_imu, s, by_walk)


def _with_walking(cal: Calibration, ref: dict | None, still: bool, trunk_only: bool, n_imu: int,
                  s: AnalysisSettings, head_tested_on_walk: bool = False) -> Calibration:
    """The neutral checked against (and where needed replaced by) the walking reference.

    A sensor's neutral "up" is replaced by its walking reference when no still, upright
    stretch held it (the head when only the back was still and upright; both in a guess) and
    the walks agree (every bout's direction within ``calib_walk_disagree_deg`` of the mean:
    a walk spent looking at a phone bows the head 25–45°).
    Never silently: the method becomes "walking", the detail and ``walking_reference`` say
    which sensor and how sure. A still neutral further than ``calib_walk_disagree_deg`` from
    walking is kept but flagged (reason "disagreed"): people walk with the head anywhere from
    level to somewhat bowed, so that distance alone does not tell a bent head at the start
    from a bowed head while walking (simulated wearers: 0–18° down while walking)."""
    if ref is None:
        return cal
    roles = ("upper back", "head")
    consistent = float(ref["spread_deg"].max()) <= s.calib_walk_disagree_deg
    apart = [_angle_deg(_up(q), ref["up"][k]) for k, q in enumerate(cal.neutral_quat_wxyz)]
    use = [False] * n_imu
    if consistent and not still and not trunk_only:
        use = [True] * n_imu
    if consistent and n_imu > 1 and trunk_only:
        use[1] = True
    sure = [float(np.hypot(s.calib_walk_head_deg, ref["spread_deg"][k])) for k in range(n_imu)]
    info = {"walk_s": ref["walk_s"], "bouts": ref["bouts"],
            "used_for": [roles[k] for k in range(n_imu) if use[k]],
            "reason": ("walks_disagree" if not consistent else "not_upright" if any(use) else "tilted_mount"
                       if head_tested_on_walk else "disagreed" if max(apart) > s.calib_walk_disagree_deg else "agreed"),
            "apart_deg": [round(a, 1) for a in apart], "uncertainty_deg": [round(u, 1) for u in sure]}
    cal.walking_reference = info
    if not any(use):
        return cal
    cal.neutral_quat_wxyz = [(_retilt(np.asarray(q), ref["up"][k]).tolist() if use[k] else q)
                             for k, q in enumerate(cal.neutral_quat_wxyz)]
    which = " and ".join(roles[k] for k in range(n_imu) if use[k])
    why = ("no still, upright stretch" if not trunk_only else
           "the head sensor never looked upright while the wearer was still (worn tilted, or the head bent)")
    err = max(sure[k] for k in range(n_imu) if use[k])
    kept = [k for k in range(n_imu) if not use[k]]
    cal.detail = (f"{which} neutral from walking ({ref['walk_s']:.0f} s in {ref['bouts']} bout"
                  f"{'s' if ref['bouts'] > 1 else ''}): {why}; the sensor's average direction while walking taken "
                  f"as upright, sure to about {err:.0f}°" + (f" (the {roles[0]} from the still stretch at "
                                                             f"{cal.start_s:.0f} s)" if kept else ""))
    cal.method = "walking"
    cal.guess_error_deg = round(err, 1)
    return cal


def _up(q) -> np.ndarray:
    """The vertical in the sensor frame of orientation ``q`` (sensor → world)."""
    from .. import quat as _q

    return _q.rotate(_q.conj(np.asarray(q, float)), np.array([0.0, 0.0, 1.0]))


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
                         check_head: bool = True, ups: np.ndarray | None = None):
    """Index of the first window where every gyro axis of every IMU varies less than
    ``still_dps`` (std), the trunk sensor's z axis is within ``upright_tilt_deg`` of the
    measured gravity and, with a head IMU, the head sensor's z axis within
    ``neutral_head_tilt_deg`` (a recording that starts while reading or writing has the
    head still but flexed: not neutral). Variation, not magnitude, so a large gyro offset
    does not hide stillness. ``ups`` (k, 3): each sensor's upright direction in its own frame
    from walking (:class:`WalkReference`), tested against instead of its z axis (an upright head
    seen through a sensor worn at an angle does not look level); the upper back against either."""
    std = _window_std(gyr, win)
    tilt = _tilt_deg(acc)
    if ups is not None:
        u = np.asarray(ups, float)[: acc.shape[1]]
        cos = np.einsum("nkj,kj->nk", acc, u) / np.maximum(np.linalg.norm(acc, axis=-1), 1e-9)
        walk_tilt = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        tilt = np.concatenate([np.minimum(tilt[:, :1], walk_tilt[:, :1]), walk_tilt[:, 1:]], axis=1)
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


class WalkReference:
    """Each sensor's upright reference from walking: the mean direction of the specific force in
    the sensor frame over walking bouts (steps average out; people walk with the head and the
    upper back near upright, [WALKHEAD] in nape.settings), whatever angle the sensor is worn at.

    Walking: per second, the trunk's specific-force magnitude in the step band (0.8–3 Hz) above
    ``walk_rms_g`` and at step frequencies (``gait_step_lo_hz``–``gait_step_hi_hz``) above it too,
    for at least ``calib_walk_bout_s`` in a row (a seat ringing after a bump is shorter)."""

    def __init__(self, rate_hz: float, n_imu: int, s: AnalysisSettings):
        from scipy import signal

        self.s, self.rate, self.n_imu = s, rate_hz, n_imu
        nyq = rate_hz / 2
        self.sos_gait = signal.butter(2, [0.8, min(3.0, 0.9 * nyq)], btype="band", fs=rate_hz, output="sos")
        lo, hi = min(s.gait_step_lo_hz, 0.8 * nyq), min(s.gait_step_hi_hz, 0.9 * nyq)
        self.sos_step = signal.butter(2, [lo, max(hi, 1.05 * lo)], btype="band", fs=rate_hz, output="sos")
        self.zi_gait = np.zeros((self.sos_gait.shape[0], 2))
        self.zi_step = np.zeros((self.sos_step.shape[0], 2))
        self.n_seen = 0
        self._counted_at, self._walked = 0, 0.0
        self.sec: list[np.ndarray] = []  # per second: count, gait², step², acc sums (k, 3)
        self._cur = None

    def feed(self, acc: np.ndarray) -> None:
        """A block of full-rate specific force (n, k, 3), m/s², continuing the previous one."""
        from scipy import signal

        acc = np.where(np.isfinite(acc), acc, 0.0)
        mag = np.linalg.norm(acc[:, 0], axis=1) / 9.80665
        gait, self.zi_gait = signal.sosfilt(self.sos_gait, mag - 1.0, zi=self.zi_gait)
        step, self.zi_step = signal.sosfilt(self.sos_step, mag - 1.0, zi=self.zi_step)
        sec = ((self.n_seen + np.arange(len(acc))) / self.rate).astype(np.int64)
        self.n_seen += len(acc)
        s0 = int(sec[0])
        rel = sec - s0
        m = int(rel[-1]) + 1
        cnt = np.bincount(rel, minlength=m).astype(float)
        g2 = np.bincount(rel, gait ** 2, minlength=m)
        st2 = np.bincount(rel, step ** 2, minlength=m)
        sums = np.stack([np.stack([np.bincount(rel, acc[:, k, j], minlength=m) for j in range(3)], axis=1)
                         for k in range(self.n_imu)], axis=1)
        for i in range(m):
            row = [cnt[i], g2[i], st2[i], sums[i]]
            if self._cur is not None and self._cur[0] == s0 + i:
                c = self._cur[1]
                self._cur[1] = [c[0] + row[0], c[1] + row[1], c[2] + row[2], c[3] + row[3]]
            else:
                if self._cur is not None:
                    self.sec.append(self._cur[1])
                self._cur = [s0 + i, row]

    def _rows(self):
        rows = self.sec + ([self._cur[1]] if self._cur is not None else [])
        return rows

    def walking_s(self) -> float:
        """Seconds of walking found so far (bouts of ``calib_walk_bout_s`` or more); counted
        again every 30 s of data, not on every block."""
        if self.n_seen - self._counted_at >= 30 * self.rate:
            self._counted_at = self.n_seen
            self._walked = float(sum(len(b) for b in self._bouts()))
        return self._walked

    def _bouts(self) -> list[list[int]]:
        rows = self._rows()
        if not rows:
            return []
        n = np.array([r[0] for r in rows])
        full = n >= 0.5 * self.rate
        gait = np.sqrt(np.array([r[1] for r in rows]) / np.maximum(n, 1))
        step = np.sqrt(np.array([r[2] for r in rows]) / np.maximum(n, 1))
        ok = full & (gait > self.s.walk_rms_g) & (step > self.s.walk_rms_g)
        ok[:2] = False  # the band filters start from rest
        bouts, cur = [], []
        for i, v in enumerate(ok):
            if v:
                cur.append(i)
            else:
                if len(cur) >= self.s.calib_walk_bout_s:
                    bouts.append(cur)
                cur = []
        if len(cur) >= self.s.calib_walk_bout_s:
            bouts.append(cur)
        return bouts

    def reference(self) -> dict | None:
        """``{"up": (k, 3) unit vectors in the sensor frames, "walk_s", "bouts", "spread_deg": (k,)}``
        or None without a walking bout. The reference is the mean over all walking seconds; the
        spread is the largest angle of one bout's mean from it (how much the bouts disagree: a
        bout spent looking at a phone pulls the head's)."""
        bouts = self._bouts()
        if not bouts:
            return None
        rows = self._rows()
        per = [np.sum([rows[i][3] for i in b], axis=0) for b in bouts]  # (k, 3) per bout
        tot = np.sum(per, axis=0)
        up = tot / np.maximum(np.linalg.norm(tot, axis=1, keepdims=True), 1e-9)
        spread = np.zeros(self.n_imu)
        for p in per:
            u = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-9)
            spread = np.maximum(spread, np.degrees(np.arccos(np.clip((u * up).sum(axis=1), -1, 1))))
        return {"up": up, "walk_s": float(sum(len(b) for b in bouts)), "bouts": len(bouts), "spread_deg": spread}


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, float) / max(float(np.linalg.norm(a)), 1e-12)
    b = np.asarray(b, float) / max(float(np.linalg.norm(b)), 1e-12)
    return float(np.degrees(np.arccos(np.clip(a @ b, -1, 1))))


def _retilt(q: np.ndarray, up_new: np.ndarray) -> np.ndarray:
    """``q`` (sensor → world) turned by the smallest rotation in the sensor frame that makes
    ``up_new`` (sensor frame) its vertical; the heading stays as near as it can."""
    from .. import quat as _q

    q = np.asarray(q, float)
    up_old = _q.rotate(_q.conj(q), np.array([0.0, 0.0, 1.0]))
    u = np.asarray(up_new, float) / np.linalg.norm(up_new)
    axis = np.cross(u, up_old)
    sn, cs = float(np.linalg.norm(axis)), float(np.clip(u @ up_old, -1, 1))
    if sn < 1e-9:
        return q
    ang = np.arctan2(sn, cs)
    r = np.concatenate([[np.cos(ang / 2)], np.sin(ang / 2) * axis / sn])  # rotates u onto up_old
    out = _q.mul(q, r)
    return out / np.linalg.norm(out)
