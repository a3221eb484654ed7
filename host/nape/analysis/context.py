"""Activity context per second: upright, walking, in a vehicle, lying supine / prone / side.

Features from the upper-back IMU only (so it works with one IMU):
- lying: trunk long axis tilted more than ``lying_trunk_deg`` from vertical, or reclined
  backwards more than ``lying_recline_deg``; supine when the
  back faces down (segment x axis points up), prone when it points down and that lasts
  ``lying_prone_min_s`` (shorter: bending forward), side otherwise;
- walking: band power of the specific-force magnitude at step frequencies (0.8–3 Hz)
  above ``walk_rms_g`` (heel strikes give 0.1–0.3 g at the upper back);
- vehicle: road vibration (6–30 Hz band) above ``vehicle_vib_rms_g`` while upright and not
  walking, held for most of ``vehicle_window_s`` (engine and road vibration is continuous,
  typing or fidgeting is not); breaks of up to ``vehicle_gap_s`` without walking or lying
  (a stop at lights) stay in the vehicle, and step-like motion shorter than
  ``walk_in_vehicle_max_s`` inside a drive (a seat ringing after a bump) is not walking;
- vehicle without road vibration (a smooth road, an electric car): the car's own cue —
  horizontal acceleration of the trunk in the world frame, per-second mean between
  ``vehicle_manoeuvre_min_g`` and ``vehicle_manoeuvre_max_g`` held ``vehicle_manoeuvre_min_s``
  (speeding up, slowing, cornering) while upright, with no steps (``gait_step_lo_hz`` –
  ``gait_step_hi_hz`` band under ``walk_rms_g``), smooth within the second (RMS about the
  second's mean under ``vehicle_cue_swing_g``) and no body transition (trunk inclination
  steady within ``transition_deg`` over ``transition_s``); ``vehicle_cue_s`` of it within
  ``vehicle_cue_window_s`` is a vehicle, as is road vibration: either suffices.
Sitting and standing cannot be told apart from the trunk alone and are reported as upright.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .. import quat
from ..settings import AnalysisSettings
from .posture import centred_mean, runs

G = 9.80665
NAMES = ["upright", "walking", "vehicle", "lying_supine", "lying_prone", "lying_side"]


class ContextFeatures:
    """Accumulates per-second feature sums across blocks."""

    def __init__(self, rate_hz: float, s: AnalysisSettings):
        self.rate = rate_hz
        self.s = s
        nyq = rate_hz / 2
        self.sos_gait = signal.butter(2, [0.8, min(3.0, 0.9 * nyq)], btype="band", fs=rate_hz, output="sos")
        self.sos_vib = signal.butter(2, [6.0, min(30.0, 0.9 * nyq)], btype="band", fs=rate_hz, output="sos")
        lo, hi = min(s.gait_step_lo_hz, 0.8 * nyq), min(s.gait_step_hi_hz, 0.9 * nyq)
        self.sos_step = signal.butter(2, [lo, max(hi, 1.05 * lo)], btype="band", fs=rate_hz, output="sos")
        self.zi_gait = np.zeros((self.sos_gait.shape[0], 2))
        self.zi_vib = np.zeros((self.sos_vib.shape[0], 2))
        self.zi_step = np.zeros((self.sos_step.shape[0], 2))
        self.sums: dict[str, np.ndarray] = {k: np.zeros(0) for k in ("n", "gait", "vib", "tilt", "fwd_up", "step",
                                                                     "hx", "hy", "hh", "nh")}
        self.size = 0  # seconds seen (the sums arrays may be longer)

    def feed(self, index: np.ndarray, acc_trunk: np.ndarray, tilt_deg: np.ndarray, fwd_up: np.ndarray,
             q_trunk: np.ndarray | None = None) -> None:
        """One block: the trunk sensor's specific force (m/s², sensor frame), its inclination,
        its forward axis' up component and (optional) its orientation sensor → world, from which
        the horizontal acceleration of the car's cue is taken."""
        mag = np.sqrt(np.einsum("ij,ij->i", acc_trunk, acc_trunk)) / G
        gait, self.zi_gait = signal.sosfilt(self.sos_gait, mag - 1.0, zi=self.zi_gait)
        vib, self.zi_vib = signal.sosfilt(self.sos_vib, mag - 1.0, zi=self.zi_vib)
        step, self.zi_step = signal.sosfilt(self.sos_step, mag - 1.0, zi=self.zi_step)
        cols = [("n", None), ("gait", gait ** 2), ("vib", vib ** 2), ("tilt", tilt_deg), ("fwd_up", fwd_up),
                ("step", step ** 2)]
        if q_trunk is not None:
            a_w = quat.rotate(q_trunk, acc_trunk) / G  # specific force in the world frame: x, y horizontal
            ok = np.isfinite(a_w).all(axis=1)
            hx, hy = np.where(ok, a_w[:, 0], 0.0), np.where(ok, a_w[:, 1], 0.0)
            cols += [("hx", hx), ("hy", hy), ("hh", hx * hx + hy * hy), ("nh", ok.astype(float))]
        self._add_per_second(index, cols)

    def feed_orientation(self, index: np.ndarray, tilt_deg: np.ndarray, fwd_up: np.ndarray) -> None:
        """Seconds of the offline day log (orientation only, reduced rate): lying and its side
        are told from the trunk's orientation as at full rate; walking and a vehicle ride need
        the accelerometer and are not told there (such seconds are upright or lying)."""
        self._add_per_second(index, [("n", None), ("tilt", tilt_deg), ("fwd_up", fwd_up), ("reduced", None)])

    def _add_per_second(self, index: np.ndarray, cols: list) -> None:
        """Add each (key, values) column into its per-second sums (None: count samples). Blocks
        are in time order: only this block's seconds are touched."""
        sec = (index / self.rate).astype(np.int64)
        s0 = int(sec[0])
        local = sec - s0
        size = int(sec[-1]) + 1
        for key, val in cols:
            arr = self.sums.get(key, np.zeros(0))
            if len(arr) < size:
                arr = np.concatenate([arr, np.zeros(max(size, 2 * len(arr)) - len(arr))])
            counts = np.bincount(local, weights=val)
            arr[s0: s0 + len(counts)] += counts
            self.sums[key] = arr
        self.size = max(self.size, size)

    def classify(self) -> tuple[np.ndarray, dict]:
        """Activity code per second (index into NAMES; -1 = no data) and seconds per activity."""
        s = self.s
        sums = {k: np.pad(v[: self.size], (0, max(0, self.size - len(v)))) for k, v in self.sums.items()}
        n = sums["n"]
        reduced = sums.get("reduced", np.zeros(len(n))) * 2 > n  # mostly the offline day log: no acc
        have = n > 0
        nn = np.where(have, n, 1)
        gait = np.sqrt(sums["gait"] / nn)
        vib = np.sqrt(sums["vib"] / nn)
        tilt = sums["tilt"] / nn
        fwd_up = sums["fwd_up"] / nn
        act = np.zeros(len(n), dtype=np.int8)
        lying = (tilt > s.lying_trunk_deg) | ((tilt > s.lying_recline_deg) & (fwd_up > 0))
        walking = _min_runs((gait > s.walk_rms_g) & ~lying, int(s.walk_min_s))  # a shock is not a walk
        w = max(1, int(s.vehicle_window_s))
        vib_on = (vib > s.vehicle_vib_rms_g) & ~lying & ~walking
        share = centred_mean(vib_on, w)
        vehicle = (share > 0.6) & ~lying & ~walking
        car, moving, cue = self._car_cue(sums, nn, tilt, lying, walking, have & ~reduced)
        vehicle |= car
        # a stop at a junction or in a queue quietens the road: short breaks between vehicle
        # stretches with no walking or lying in them stay in the vehicle
        # (a seat ringing after a pothole looks like a few seconds of steps: inside a drive,
        # "walking" shorter than walk_in_vehicle_max_s is not)
        brief = walking & ~_min_runs(walking, int(s.walk_in_vehicle_max_s))
        vehicle = _fill_gaps(vehicle, ~lying & (~walking | brief) & have & ~reduced, int(s.vehicle_gap_s))
        # nobody leaves or enters a car without standing up or sitting down: before the first and
        # after the last sign of a drive, the vehicle holds up to vehicle_gap_s while the wearer
        # neither walks, lies nor changes posture
        still_seated = ~lying & ~walking & ~moving & have & ~reduced
        vehicle = _extend(vehicle, still_seated, int(s.vehicle_gap_s))
        # a drive, once recognised, is kept by a single speed change or corner within
        # vehicle_gap_s (it takes two to start one): a quiet motorway ends with one braking
        for _ in range(2):
            joined = _fill_gaps(vehicle | (cue & still_seated), still_seated, int(s.vehicle_gap_s))
            keep = np.zeros_like(vehicle)
            for i0, i1 in runs(joined):
                if vehicle[i0:i1].any():
                    keep[i0:i1] = True
            vehicle = _extend(keep, still_seated, int(s.vehicle_gap_s))
        walking &= ~vehicle
        act[walking] = 1
        act[vehicle] = 2
        act[lying & (fwd_up >= -0.5) & (fwd_up > 0.5)] = 3
        # face down for less than lying_prone_min_s is bending forward (picking something up)
        prone = _min_runs(lying & (fwd_up < -0.5), int(s.lying_prone_min_s))
        lying &= ~(lying & (fwd_up < -0.5) & ~prone)
        act[prone] = 4
        act[lying & (np.abs(fwd_up) <= 0.5)] = 5
        act[~have] = -1
        totals = {name: float((act == i).sum()) for i, name in enumerate(NAMES)}
        return act, totals


    def _car_cue(self, sums: dict, nn: np.ndarray, tilt: np.ndarray, lying: np.ndarray, walking: np.ndarray,
                 full: np.ndarray) -> np.ndarray:
        """Seconds in a vehicle by the car's own accelerations (no road vibration needed)."""
        s = self.s
        n_sec = len(nn)
        if "nh" not in sums or n_sec == 0:
            return np.zeros(n_sec, bool), np.ones(n_sec, bool), np.zeros(n_sec, bool)
        nh = np.where(sums["nh"] > 0, sums["nh"], 1)
        h = np.hypot(sums["hx"] / nh, sums["hy"] / nh)
        # a car's speed change or corner is smooth: within the second the horizontal acceleration
        # stays near its mean; arms, hands and a moving chest make it swing about it
        swing = np.sqrt(np.maximum(sums["hh"] / nh - h * h, 0.0))
        # (a belted trunk rings at its belt / seat-back resonance in a hard manoeuvre: in
        # proportion to the car's acceleration, so the allowance grows with it)
        smooth = full & (h <= s.vehicle_manoeuvre_max_g) & (swing <= s.vehicle_cue_swing_g + s.vehicle_cue_swing_ratio * h)
        step = np.sqrt(sums["step"] / nn)
        # no steps around the second, no change of posture within transition_s
        stepping = _dilate(step > s.walk_rms_g, 1)
        w = max(1, int(round(s.transition_s)))
        tilt_f = np.where(full, tilt, np.nan)
        moving = np.zeros(n_sec, bool)
        if n_sec > 1:
            lo = _rolling(tilt_f, w, np.fmin)
            hi = _rolling(tilt_f, w, np.fmax)
            # a sustained acceleration tilts the apparent vertical by up to atan(a/g), and a fused
            # inclination follows part of that: only a change beyond it is the body's own
            h_max = _rolling(np.where(smooth, h, np.nan), w, np.fmax)
            allow = s.transition_deg + np.degrees(np.arctan(np.nan_to_num(h_max)))
            moving = _dilate((hi - lo) > allow, w)
        cue = ((h >= s.vehicle_manoeuvre_min_g) & (h <= s.vehicle_manoeuvre_max_g) & full & (sums["nh"] > 0)
               & smooth
               & ~lying & ~walking & ~stepping & ~moving)
        # the fused orientation needs time to settle after the start of full-rate data (its
        # inclination error reads as horizontal acceleration until then)
        settle = int(round(s.vehicle_cue_settle_s))
        for i0, _i1 in runs(full):
            cue[i0: i0 + settle] = False
        cue = _min_runs(cue, max(1, int(round(s.vehicle_manoeuvre_min_s))))
        win = max(1, int(round(s.vehicle_cue_window_s)))
        count = centred_mean(cue.astype(float), win) * win
        starts = np.zeros(n_sec)
        # a manoeuvre and the fused inclination's recovery after it (seconds later, separated
        # by a ringing second or two) are one, not two
        gap = max(1, int(round(s.vehicle_manoeuvre_min_s)))
        for i0, _i1 in runs(_fill_gaps(cue, np.ones(n_sec, bool), gap)):
            starts[i0] = 1.0
        separate = centred_mean(starts, win) * win  # distinct speed changes / corners in the window
        ok = (count >= s.vehicle_cue_s - 1e-9) & (separate >= s.vehicle_cue_runs - 1e-9)
        return ok & ~lying & ~walking & full, moving, cue


def _rolling(x: np.ndarray, w: int, fn) -> np.ndarray:
    """``fn``-reduction (np.fmin / np.fmax: NaN ignored) of ``x`` over the trailing ``w`` + 1 values."""
    out = x.copy()
    for k in range(1, w + 1):
        out[k:] = fn(out[k:], x[:-k])
    return out


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` widened by ``k`` elements on each side."""
    out = mask.copy()
    for j in range(1, k + 1):
        out[j:] |= mask[:-j]
        out[:-j] |= mask[j:]
    return out


def _extend(mask: np.ndarray, allowed: np.ndarray, max_len: int) -> np.ndarray:
    """``mask`` with each True run extended forward and backward by up to ``max_len`` elements,
    as far as ``allowed`` holds without a break."""
    out = mask.copy()
    n = len(mask)
    for i0, i1 in runs(mask):
        j = i1
        while j < min(n, i1 + max_len) and allowed[j]:
            j += 1
        out[i1:j] = True
        j = i0
        while j > max(0, i0 - max_len) and allowed[j - 1]:
            j -= 1
        out[j:i0] = True
    return out


def _fill_gaps(mask: np.ndarray, allowed: np.ndarray, max_len: int) -> np.ndarray:
    """``mask`` with False runs of at most ``max_len`` between two True runs set True where
    the whole run is ``allowed``."""
    out = mask.copy()
    true_runs = runs(mask)
    for (_a0, a1), (b0, _b1) in zip(true_runs[:-1], true_runs[1:]):
        if b0 - a1 <= max_len and allowed[a1:b0].all():
            out[a1:b0] = True
    return out


def _min_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    """``mask`` with True runs shorter than ``min_len`` cleared."""
    out = np.zeros_like(mask)
    for i0, i1 in runs(mask):
        if i1 - i0 >= min_len:
            out[i0:i1] = True
    return out
