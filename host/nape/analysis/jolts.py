"""Jarring movements: detect, measure, classify and grade, block by block.

Detection works on the trunk (upper back) alone: whatever the car or the road does reaches
the trunk first, while a nod, a look up or a mirror check moves the head with the trunk
still (head-only crossings of ``jolt_trigger_g`` are counted as the wearer's own head
movements, never as jolts). The trunk's linear acceleration (specific force rotated to the
world frame, gravity removed, ``jolt_lowpass_hz`` low-pass; single-sample glitches replaced
first) is split in two bands, each with its own trigger runs, so that a pothole inside a
braking is an event of its own:

* manoeuvres: the sustained part (``vehicle_lowpass_hz`` low-pass, horizontal) above
  ``jolt_trigger_g``; crossings closer than ``manoeuvre_merge_s`` and pointing the same way
  are one run (a braking and the push of an impact after it are not);
* shocks: the high band (full band minus sustained) above the larger of
  ``shock_trigger_g`` and ``vibration_floor_ratio`` × the road-vibration floor, so a rough
  road raises the floor instead of jolts and a shock well above it still counts.

The trunk's gravity is removed with a slow reference, not with the fused inclination, which
leans into a sustained manoeuvre (VQF: 3 s) so that a long corner read low, fell below the
trigger or split in two: the fused inclination averaged over ``REF_S`` ending ``REF_LAG_S``
before each sample, carried to it by the gyroscope (:meth:`JoltDetector._reference_up`; the
streaming form of the grading reference below). A manoeuvre's time is the peak of its
vehicle-level acceleration (its plateau is flat). Runs are never dropped for their length:
a chain of manoeuvres is split into its manoeuvres by direction and cause
(:meth:`JoltDetector.finish`), which also rejects the wearer's own movement (steps; a
manoeuvre outside a vehicle context or with the trunk tilting more than ``body_turn_deg``;
outside a vehicle, small shocks and series of shocks) and reports a shock outside a vehicle
as a knock (a fall or a blow).

Measures per event (window around each crossing): peak trunk / head linear acceleration
(g); the vehicle-level horizontal acceleration (trunk, ≤ 2 Hz: braking, accelerating and
cornering are slow; shocks are not) split into along / across the wearer's heading; the
vertical peak; head-minus-trunk acceleration; head-relative-to-trunk angular velocity;
the Neck Injury Criterion NIC = 0.2·a_rel + v_rel² with a_rel the T1-minus-head
acceleration along the trunk's forward direction and v_rel its integral from onset
(Boström et al. 1996; 15 m²/s² is the proposed injury threshold, exceeded by harmless
activities too, so it is reported, not alarmed on; NIC asks for CFC 60 filtering, SAE J211,
whose 100 Hz corner is above a 100 Hz stream's band, so no further filter is applied);
BrIC = √Σ(ωᵢ/ωᵢc)² from head angular velocity with critical values 66.25 / 56.45 /
42.87 rad/s (Takhounts et al. 2013).

Cause: a shock in a vehicle is a bump when vertical, else rear_impact_like when it pushes
the trunk forward, else a knock; outside a vehicle every shock is a knock. A sustained-band
run briefer than ``impulsive_max_s`` at half its peak is an impact seen through the seat
back. Manoeuvres are braking / acceleration / lateral by the direction of their sustained
acceleration relative to the wearer's heading.

Grades: each cause on the quantity that loads the neck in it (``[GRADE]`` in
:mod:`nape.settings`; the simulator's labels grade the same quantities from the simulated
physics, :mod:`nape.sim.labels`), ``Jolt.grade_basis`` saying which:

* manoeuvres ("vehicle"): the vehicle's sustained acceleration, read as the trunk's causal
  2 Hz low-pass of horizontal acceleration averaged over ``VEHICLE_AVG_S`` (the belted trunk
  overshoots the car's plateau at its belt resonance), against naturalistic-driving levels;
* bumps ("seat"): the seat's vertical shock, estimated from the trunk's vertical acceleration
  by inverting a seated body (``seat_body_hz``, ``seat_body_damping``), against measured
  road values and the NRMM seat-shock limit;
* rear impacts ("nic"): NIC from the impact's own onset, the head's horizontal acceleration
  turned into the trunk's heading first (:func:`_align_heading`: 6D fusion gives each IMU its
  own heading); without a head IMU ("delta_v", less certain) the trunk's forward velocity
  change (:func:`_delta_v_kmh`) against real-world crash-recorder figures;
* knocks ("back"): the trunk's peak acceleration magnitude.

Gravity is removed for these measures with an inclination a sustained manoeuvre cannot fool:
the fused inclination averaged over the ``REF_S`` before the event, carried through it by the
gyroscope (:meth:`JoltDetector._strapdown_linear`). Every boundary is a setting with its
source; :func:`grade_of_size` never grades a larger quantity lower.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .. import quat
from ..settings import GRADE_BOUNDS, AnalysisSettings
from .findings import Jolt
from .posture import runs

G = 9.80665
PRE_S = 0.5
POST_S = 1.5
REF_S = 60.0  # inclination reference: the fused inclination averaged over this long before an event
REF_STEP_S = 0.1  # ... sampled every this often
REF_LAG_S = 15.0  # detection's reference ends this long before the sample (a manoeuvre's longest, jolt_max_s)
HOLD_MAX_S = 120.0
DEGLITCH_JUMP_G = 1.5  # a glitch: this far from both neighbours (a 2 g, 40 ms shock at 100 Hz: 0.6 g)
DEGLITCH_MIN_HZ = 50.0  # from this rate a 50–150 ms shock spans 3+ samples and survives a median of 3
ECHO_SHOCK_G = 0.7  # horizontal shocks from this size leave an echo above the manoeuvre trigger
STEP_HOLD_S = 0.75  # a sustained-band run this long is a manoeuvre even next to a big shock (an impact's trace: ≤ 0.6 s)
SHOCK_ECHO_S = 0.5  # a sustained-band crossing this short, this close to a shock, is the shock's trace
# (the 2 Hz low-pass of a 2 g, 0.1 s push peaks near 0.9 g for ~0.25 s; braking stays above
# its trigger for 0.5–3 s)  # the most history kept for an event still being measured
VEHICLE_AVG_S = 0.5  # the vehicle's sustained acceleration: the upper back's, averaged over this long
# (a belted trunk overshoots the car's plateau at its 2.5–3 Hz belt and seat-back resonance;
# averaged over half a second it reads the car's level: 0.99–1.06 × on both simulator families)
SEAT_LOWPASS_HZ = 16.0  # the seat estimate's low-pass: a 40–100 ms shock's content lies below ~12 Hz; on the
# simulator families the estimate reads 0.92 and 1.07 × the seat's peak (25 Hz: 0.97 / 1.11, rough roads over)
NIC_SPAN_S = 0.3  # NIC's maximum is taken over this long from the onset (the retraction phase; nape.sim.labels alike)
NIC_ALIGN_S = 0.6  # the head's and trunk's velocity changes over this long from the onset align their headings
ALIGN_MIN_MPS = 0.3  # ... when both exceed this
DV_SPAN_S = 0.3  # an impact's velocity change is read over this long from its onset (pulses last 50–200 ms)
# ... as the upper back's velocity once the seat back has let go: averaged from the pulse's end
# (the longest rear-impact pulses last 200 ms) over one cycle of the seat back's 2.5–3 Hz spring
# (0.4 s). Its peak overshoots the car's velocity change (the seat back springs the trunk forward:
# 1.18 × the seat's ΔV on simulator family A), and the crash-recorder figures the grade rests on
# ([DELTAV] in nape.settings) are the car's ΔV over the pulse.
DV_SETTLE_S = (0.2, 0.6)
BRIC_CRIT = np.array([66.25, 56.45, 42.87])  # rad/s about x, y, z


class JoltDetector:
    """Streaming detector: ``feed`` blocks, then ``finish``."""

    def __init__(self, rate_hz: float, n_imu: int, s: AnalysisSettings, gyro_offset=None):
        """``gyro_offset``: (n_imu, 3) zero-rate offset, rad/s (from calibration; None: 0)."""
        self.rate = rate_hz
        self.s = s
        self.n_imu = n_imu
        self.gyro_offset = np.zeros((n_imu, 3)) if gyro_offset is None else np.asarray(gyro_offset, float)
        cut = min(s.jolt_lowpass_hz, 0.45 * rate_hz)
        self.sos = signal.butter(2, cut, fs=rate_hz, output="sos")
        self.sos_vehicle = signal.butter(2, s.vehicle_lowpass_hz, fs=rate_hz, output="sos")
        self.zi_vehicle_unit = signal.sosfilt_zi(self.sos_vehicle)  # steady state for a unit input
        # its group delay at low frequencies (2nd-order Butterworth: √2 / ω_c), s
        self.vehicle_delay_s = np.sqrt(2) / (2 * np.pi * s.vehicle_lowpass_hz)
        self.zi = np.zeros((self.sos.shape[0], 2, 3 * n_imu))
        self.zi_vehicle = np.zeros((self.sos_vehicle.shape[0], 2, 3))
        self.keep = int((REF_S + PRE_S + POST_S + 1.0) * rate_hz)
        self.hold_max = int(HOLD_MAX_S * rate_hz)

        self.buf: dict[str, np.ndarray] | None = None
        # slow gravity reference for detection (see _reference_up)
        self.ref_step = max(1, int(round(REF_STEP_S * rate_hz)))
        self.ref_p = np.array([[1.0, 0.0, 0.0, 0.0]])  # trunk's gyro-integrated orientation: sensor -> P frame
        self.ref_hist = np.zeros((0, 1, 3))  # weighted fused "up" in the P frame per step
        self.ref_w = np.zeros(0)  # samples per step
        self.ref_end = np.zeros(0)  # last sample index of each step
        self.ref_last = None  # last sample index seen
        self.pending: list[dict] = []
        self.runs: list[dict] = []
        self.acc_tail: np.ndarray | None = None  # last raw samples, for the glitch median
        self.last_run: dict[str, dict] = {}
        self.head_only = 0  # head-only trigger runs: the wearer's own head movements
        self.head_last = -(1 << 62)
        self.floor_hist: list[float] = []  # per-second mean square of the high band, g^2
        self.floor_sec: int | None = None
        self.floor_sum, self.floor_n = 0.0, 0
        self.sec_ms: dict[int, float] = {}  # per-second mean square of the high band, g^2 (finish)

    # ------------------------------------------------------------ streaming

    def feed(self, index: np.ndarray, q_sensor: np.ndarray, q_trunk_seg: np.ndarray,
             acc: np.ndarray, gyr: np.ndarray) -> None:
        n = len(index)
        acc = self._deglitch(acc)
        # linear acceleration (n, k, 3) m/s^2 in world axes at the stream's bandwidth; the
        # trunk's gravity from the slow reference, not from the fused inclination that leans
        # into a sustained manoeuvre (a long corner would fall below the trigger or split in
        # two). The head keeps the fused inclination: its fast turns and nods break the 0.1 s
        # first-order gyro steps (on held-out seeds: false triggers at posture changes).
        lin0 = rotate(q_sensor, acc)
        lin0[..., 2] -= G
        lin0[:, 0] = rotate(q_sensor[:, 0], acc[:, 0] - G * self._reference_up(index, q_sensor[:, :1], gyr[:, :1])[:, 0])
        flat, self.zi = signal.sosfilt(self.sos, lin0.reshape(n, -1), axis=0, zi=self.zi)
        lin = flat.reshape(n, self.n_imu, 3)  # low-passed for detection and classification
        veh, self.zi_vehicle = signal.sosfilt(self.sos_vehicle, lin0[:, 0], axis=0, zi=self.zi_vehicle)
        # orientation and rates are kept as they come; world-frame rates and the trunk's
        # heading are computed only inside the short windows that get measured
        # shocks ride on the high band: full band minus the sustained (vehicle-level) part
        hf = lin[:, 0] - veh
        block = {"index": index, "lin": lin, "veh": veh, "hf": hf, "q": q_sensor, "acc": acc, "gyr": gyr,
                 "qt": q_trunk_seg}
        self._candidates(index, lin, veh, hf, gyr[:, -1] - self.gyro_offset[-1])
        parts = [block] if self.buf is None else [self.buf, block]
        last = int(index[-1])
        still = []
        for r in self.pending:  # measure every event whose window has been seen in full
            if r["i1"] + POST_S * self.rate > last:
                still.append(r)
            else:
                self.runs.append(self._measure(_gather(parts, r["i0"] - (REF_S + PRE_S) * self.rate,
                                                     r["i1"] + POST_S * self.rate), r))
        self.pending = still
        if self.pending:  # an event still open: keep its start and the reference before it
            start = max(self.pending[0]["i0"] - (REF_S + PRE_S) * self.rate, last - HOLD_MAX_S * self.rate)
            self.buf = _gather(parts, min(start, last - self.keep))
        elif n >= self.keep:
            self.buf = {k: v[-self.keep:] for k, v in block.items()}
        else:  # a short block: keep what came before too
            self.buf = _gather(parts, last - self.keep)

    def _deglitch(self, acc: np.ndarray) -> np.ndarray:
        """Single-sample glitches (a bus error, a bit flip: one sample several g off) replaced
        by the median of three consecutive samples per axis (the block's last sample: of
        itself and the two before it). A shock spans several samples at 50 Hz and more and
        keeps its peak. Carries two samples across blocks."""
        if self.rate < DEGLITCH_MIN_HZ:
            return acc  # a real shock may be one sample long here: nothing to tell it from a glitch
        ext = acc if self.acc_tail is None else np.concatenate([self.acc_tail, acc])
        k = 0 if self.acc_tail is None else len(self.acc_tail)
        self.acc_tail = ext[-2:].copy()
        if len(ext) < 3:
            return acc
        # only isolated spikes are replaced: a sample more than DEGLITCH_JUMP_G from both
        # neighbours on the same side (a real peak's neighbours are close to it), so the
        # peaks the grades are read from stay untouched
        jump = DEGLITCH_JUMP_G * G
        d_prev = ext[1:] - ext[:-1]
        spike = np.zeros(ext.shape, bool)
        spike[1:-1] = ((d_prev[:-1] > jump) & (-d_prev[1:] > jump)) | ((-d_prev[:-1] > jump) & (d_prev[1:] > jump))
        spike[-1] = np.abs(ext[-1] - ext[-2]) > jump
        if not spike.any():
            return acc
        out = ext.copy()
        for i, *rest in zip(*np.nonzero(spike)):  # few: glitches are rare
            j = min(max(i, 1), len(ext) - 2) if i < len(ext) - 1 else len(ext) - 2
            out[(i, *rest)] = np.median(ext[j - 1: j + 2][(slice(None), *rest)])
        return out[k:]

    def _candidates(self, index: np.ndarray, lin: np.ndarray, veh: np.ndarray, hf: np.ndarray,
                    gyr_head: np.ndarray) -> None:
        """Trigger runs of the trunk, two kinds kept apart so that a shock inside a braking
        is its own event: "m" (manoeuvre) where the sustained acceleration ``veh`` exceeds
        ``jolt_trigger_g``; "s" (shock) where the high band ``hf`` exceeds the larger of
        ``shock_trigger_g`` and ``vibration_floor_ratio`` × the road-vibration floor (the median
        per-second RMS of ``hf`` over the previous ``vibration_floor_s`` seconds, or the
        lower-quartile RMS of the current second's 0.1 s slices if higher): rough road raises the
        floor, not the count of jolts, and a shock well above it still stands out. The head
        never triggers: a nod or a look in the mirror moves the head while the trunk stays;
        whatever the car or road does reaches the trunk first. Head-only motion (acceleration over the
        trigger or rotation over ``head_turn_dps``) is counted as the wearer's own head
        movement (``head_only``)."""
        s = self.s
        g2 = G * G
        thr = self._shock_threshold(index, hf)
        shock = np.einsum("ij,ij->i", hf, hf) > (thr * G) ** 2
        man = np.einsum("ij,ij->i", veh[:, :2], veh[:, :2]) > s.jolt_trigger_g ** 2 * g2
        # a horizontal shock leaves a trace in the sustained band for a few tenths of a second
        # (the 2 Hz low-pass of a 2 g, 0.1 s push peaks near 0.9 g): not part of any
        # manoeuvre, so a braking and a rear impact right after it stay apart
        k = int(SHOCK_ECHO_S * self.rate)
        big = shock & (np.einsum("ij,ij->i", hf[:, :2], hf[:, :2]) > (ECHO_SHOCK_G * G) ** 2)
        if big.any():
            # ... unless the sustained band holds for longer than any impact's trace: the abrupt
            # onset or end of an emergency stop (0 → 1 g in 0.1 s) is a big horizontal shock too,
            # and masking it would leave the braking itself unseen
            near = _dilate(big, k)
            hold = int(STEP_HOLD_S * self.rate)
            for i0, i1 in runs(man):
                if i1 - i0 < hold:
                    man[i0:i1] &= ~near[i0:i1]
        if self.n_imu > 1:
            head = ((np.einsum("ij,ij->i", lin[:, -1], lin[:, -1]) > s.jolt_trigger_g ** 2 * g2)
                    | (np.einsum("ij,ij->i", gyr_head, gyr_head) > np.radians(s.head_turn_dps) ** 2))
            trunk = np.einsum("ij,ij->i", lin[:, 0], lin[:, 0]) > (0.5 * s.jolt_trigger_g) ** 2 * g2
            for i0, i1 in runs(head & ~trunk):
                a = int(index[i0])
                if a - self.head_last > s.shock_merge_s * self.rate:
                    self.head_only += 1
                self.head_last = int(index[i1 - 1])
        for kind, mask, gap_s in (("m", man, s.manoeuvre_merge_s), ("s", shock, s.shock_merge_s)):
            gap = int(gap_s * self.rate)
            for i0, i1 in runs(mask):
                a, b = int(index[i0]), int(index[i1 - 1])
                # a manoeuvre's direction (world axes): a braking and the push of an impact
                # after it, or an acceleration into a corner, are not one event
                d = veh[i0:i1, :2].mean(axis=0) if kind == "m" else np.zeros(2)
                last = next((r for r in reversed(self.pending) if r["kind"] == kind), None)
                if last is None:
                    last = self.last_run.get(kind)
                same_way = kind == "s" or last is None or float(d @ last["dir"]) > 0.5 * np.linalg.norm(d) * np.linalg.norm(last["dir"])
                if last is not None and a - last["i1"] <= gap and same_way and last in self.pending:
                    last["i1"] = max(last["i1"], b)  # one event: measure it once, not per crossing
                    last["dir"] = d
                else:
                    self.pending.append({"i0": a, "i1": b, "kind": kind, "dir": d})
                self.last_run[kind] = self.pending[-1] if self.pending[-1]["kind"] == kind else last
        self.pending.sort(key=lambda r: r["i0"])

    def _shock_threshold(self, index: np.ndarray, hf: np.ndarray) -> np.ndarray:
        """Per-sample shock trigger (g): max(``shock_trigger_g``, ratio × vibration floor), the
        floor being the larger of the median per-second RMS of the high band over the previous
        ``vibration_floor_s`` complete seconds (a shock is too short to move a median) and the
        lower quartile of the RMS of the current second's 0.1 s slices (vectorised per block;
        a second split across blocks is completed from the carried sums)."""
        s = self.s
        r = max(1, int(round(self.rate)))
        step = max(1, int(round(0.1 * self.rate)))
        n_floor = max(1, int(s.vibration_floor_s))
        ms = np.einsum("ij,ij->i", hf, hf) / (G * G)
        sec = index // r
        u, inv = np.unique(sec, return_inverse=True)
        sums = np.bincount(inv, weights=ms)
        cnts = np.bincount(inv).astype(float)
        if self.floor_sec is not None:
            if u[0] == self.floor_sec:
                sums[0] += self.floor_sum
                cnts[0] += self.floor_n
            elif self.floor_n > 0:  # the carried second is complete: into the history
                self.floor_hist = (self.floor_hist + [self.floor_sum / self.floor_n])[-n_floor:]
        means = sums / cnts
        hist = np.asarray(self.floor_hist, float)
        allv = np.concatenate([np.full(n_floor, np.nan), hist, means])
        win = np.lib.stride_tricks.sliding_window_view(allv, n_floor)[len(hist) + np.arange(len(u))]
        have = ~np.isnan(win).all(axis=1)
        past = np.zeros(len(u))
        if have.any():
            past[have] = np.nanmedian(win[have], axis=1)
        # lower quartile of the 0.1 s slices of each second (this block's part of it)
        # slices counted within each second, so every second has its own (a rate that
        # is no multiple of the slice length would otherwise leave a second without one)
        per = r // step + 1
        sl = sec * per + (index - sec * r) // step
        su, sinv = np.unique(sl, return_inverse=True)
        sms = np.bincount(sinv, weights=ms) / np.bincount(sinv)
        ssec = su // per
        order = np.lexsort((sms, ssec))
        v, g = sms[order], ssec[order]
        starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
        counts = np.diff(np.append(starts, len(g)))
        pos = 0.25 * (counts - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, counts - 1)
        quart_g = v[starts + lo] + (pos - lo) * (v[starts + hi] - v[starts + lo])
        quart = quart_g[np.searchsorted(g[starts], u)]
        floor = np.sqrt(np.maximum(past, quart))
        # carry: the last second may continue in the next block
        self.floor_hist = np.concatenate([hist, means[:-1]])[-n_floor:].tolist()
        self.floor_sec, self.floor_sum, self.floor_n = int(u[-1]), float(sums[-1]), int(cnts[-1])
        self.sec_ms.update(zip(u.tolist(), means.tolist()))
        return np.maximum(s.shock_trigger_g, s.vibration_floor_ratio * floor)[inv]

    def _reference_up(self, index: np.ndarray, q: np.ndarray, gyr: np.ndarray) -> np.ndarray:
        """World up in each given sensor's frame (n, k, 3) per sample (q (n, k, 4), gyr
        (n, k, 3) rad/s of the first k IMUs; called with the trunk only), from a reference that a
        sustained manoeuvre cannot fool — the streaming form of the grading reference
        (:meth:`_strapdown_linear`): the fused "up" of every ``REF_STEP_S`` step is carried
        by the gyroscope (zero-rate offset removed) into one gyro-integrated frame P and
        averaged there over ``REF_S`` ending ``REF_LAG_S`` ago; that mean, carried back to
        each step, is the reference. The fused inclination leans towards a sustained
        acceleration with VQF's 3 s time constant; the lag keeps a manoeuvre up to
        ``jolt_max_s`` long out of its own reference (a minute's mean over a corner's
        first 10 s already leans by ~2.5°, 0.04 g). Steps of 0.1 s are integrated to first
        order. A gap of more than ``REF_S`` in the sample index restarts the reference.
        """
        n = len(index)
        st = self.ref_step
        if self.ref_last is not None and index[0] - self.ref_last > REF_S * self.rate:
            self.ref_hist, self.ref_w, self.ref_end = self.ref_hist[:0], np.zeros(0), np.zeros(0)
        self.ref_last = int(index[-1])
        starts = np.arange(0, n, st)
        ends = np.minimum(starts + st, n) - 1
        w = (ends - starts + 1).astype(float)
        inc = np.add.reduceat(gyr - self.gyro_offset[None, :gyr.shape[1]], starts, axis=0) / self.rate  # (m, k, 3) rad
        m, k = len(starts), gyr.shape[1]
        d = np.concatenate([self.ref_p[None], _exp(inc.reshape(-1, 3)).reshape(m, k, 4)])  # (m + 1, k, 4)
        p = _scan(d.transpose(1, 0, 2).reshape(-1, 4), k).reshape(k, m + 1, 4)[:, 1:]  # sensor(step end) -> P
        p = p.transpose(1, 0, 2)
        p /= np.linalg.norm(p, axis=-1, keepdims=True)
        self.ref_p = p[-1]
        g = rotate(p, _up_in_sensor(q[ends])) * w[:, None, None]  # fused up in P, weighted by samples
        hist = np.concatenate([self.ref_hist, g])
        wh = np.concatenate([self.ref_w, w])
        eh = np.concatenate([self.ref_end, index[ends].astype(float)])
        c = np.concatenate([np.zeros((1, k, 3)), np.cumsum(hist, axis=0)])
        cw = np.concatenate([[0.0], np.cumsum(wh)])
        j = np.arange(len(self.ref_w), len(hist))
        hi = np.searchsorted(eh, eh[j] - REF_LAG_S * self.rate, side="right")
        lo = np.searchsorted(eh, eh[j] - (REF_S + REF_LAG_S) * self.rate, side="right")
        hi = np.where(hi > lo, hi, j + 1)  # the recording's first seconds: what there is
        mean = (c[hi] - c[lo]) / (cw[hi] - cw[lo])[:, None, None]
        up = rotate(quat.conj(p), mean)
        up /= np.linalg.norm(up, axis=-1, keepdims=True)
        keep = np.searchsorted(eh, eh[-1] - (REF_S + REF_LAG_S) * self.rate, side="right")
        self.ref_hist, self.ref_w, self.ref_end = hist[keep:], wh[keep:], eh[keep:]
        return np.repeat(up, w.astype(int), axis=0)

    def _measure_final(self) -> None:
        if self.buf is not None:
            for r in self.pending:
                self.runs.append(self._measure(self.buf, r))
        self.pending = []

    def _measure(self, buf: dict, r: dict) -> dict:
        idx = buf["index"]
        lo = np.searchsorted(idx, r["i0"] - PRE_S * self.rate)
        hi = np.searchsorted(idx, r["i1"] + POST_S * self.rate, side="right")
        on = np.searchsorted(idx, r["i0"])
        w = {k: v[lo:hi] for k, v in buf.items()}
        w["omega"] = rotate(w["q"], w["gyr"])  # world-frame angular velocity, rad/s
        w["gyr_head"] = w["gyr"][:, -1]
        w["fwd"] = quat.axis_in_world(w["qt"], 0)
        lin_t, sustained = self._strapdown_linear(buf, int(lo), int(hi))
        on -= lo
        lin = w["lin"]
        mag = np.linalg.norm(lin, axis=2) / G
        # peaks, directions and grades over the run itself (a manoeuvre: and its low-pass
        # delay), not the whole window: the next event a second later is measured on its own
        end = int(np.searchsorted(w["index"], r["i1"], side="right"))
        # (a shock: and the body's rebound, which the grade counts too)
        tail = (self.vehicle_delay_s + 0.3) if r.get("kind") == "m" else SHOCK_ECHO_S
        sp = slice(max(on - int(0.1 * self.rate), 0), max(min(end + int(tail * self.rate), len(lin)), on + 1))
        mask = np.zeros(len(lin), bool)
        mask[sp] = True
        ipk = int(np.argmax(np.where(mask, mag[:, 0], -1.0)))
        # the wearer's heading sample by sample: a car may turn 90° during a corner
        fwd_all = w["fwd"][:, :2] / np.maximum(np.linalg.norm(w["fwd"][:, :2], axis=1, keepdims=True), 1e-9)
        fwd_h = fwd_all[min(on, len(lin) - 1)]
        veh = w["veh"]
        along_v = np.einsum("ij,ij->i", veh[:, :2], fwd_all)
        across_v = veh[:, 1] * fwd_all[:, 0] - veh[:, 0] * fwd_all[:, 1]
        vmag = np.hypot(along_v, across_v)
        # the peak away from big shocks: a pothole inside a braking leaks into the horizontal
        # (orientation shaken) and must not become the braking's time
        big = np.linalg.norm(w["hf"], axis=1) > ECHO_SHOCK_G * G
        if big.any():
            k = int(SHOCK_ECHO_S * self.rate)
            near = _dilate(big, k)
        vraw = vmag
        if big.any() and (~near & mask).any():
            vmag = np.where(near, -np.inf, vmag)
        iv = int(np.argmax(np.where(mask, vmag, -np.inf)))
        # a manoeuvre's time: the centre of its plateau (within 80 % of the peak of its half-second
        # average, the level graded), which the sensor's noise or the trunk's overshoot at the
        # onset cannot move along a corner's flat top as they move the peak
        kv = max(1, min(int(VEHICLE_AVG_S * self.rate), len(vraw)))  # ("same" needs kv <= len)
        ic = plateau_centre(np.where(mask, np.convolve(vraw, np.ones(kv) / kv, mode="same"), 0.0), iv)
        horiz = lin[:, 0, :2]
        hmag = np.linalg.norm(horiz, axis=1)
        ih = int(np.argmax(np.where(mask, hmag, -1.0)))
        iz = int(np.argmax(np.where(mask, np.abs(lin[:, 0, 2]), -1.0)))
        out = {
            "start_s": r["i0"] / self.rate, "end_s": r["i1"] / self.rate, "t_s": float(w["index"][ipk]) / self.rate,
            # a manoeuvre's time: the peak of the vehicle-level acceleration, less the low-pass'
            # delay (noise on its plateau would put the full-band peak anywhere on it)
            "t_vehicle_s": float(w["index"][ic]) / self.rate - self.vehicle_delay_s,
            "vehicle_g": float(np.hypot(along_v, across_v)[sp].max() / G),
            "peak": mag[sp].max(axis=0).tolist(),
            "vehicle_along_g": float(along_v[iv] / G), "vehicle_across_g": float(across_v[iv] / G),
            "vertical_g": float(lin[iz, 0, 2] / G),
            "horiz_peak_g": float(hmag[ih] / G),
            "horiz_along_g": float(horiz[ih] @ fwd_all[ih] / G),
            "horiz_fwhm_s": _fwhm(hmag, ih) / self.rate,
            # the graded quantities ([GRADE] in nape.settings): upper-back acceleration
            "grade_sustained_g": float(np.hypot(sustained[sp, 0], sustained[sp, 1]).max() / G),
            "grade_vertical_g": float(np.abs(lin_t[sp, 2]).max() / G),
            "grade_horizontal_g": float(np.hypot(lin_t[sp, 0], lin_t[sp, 1]).max() / G),
            "grade_magnitude_g": float(np.linalg.norm(lin_t[sp], axis=1).max() / G),
            "dv_kmh": _delta_v_kmh(lin_t[:, :2] @ fwd_h, on, self.rate),
            "kind": r.get("kind", "s"),
        }
        # the graded estimates ([GRADE] in nape.settings): the vehicle's sustained acceleration,
        # the seat's vertical shock
        smag = np.hypot(sustained[:, 0], sustained[:, 1])
        k = max(1, min(int(VEHICLE_AVG_S * self.rate), len(smag)))
        out["grade_vehicle_g"] = float(np.convolve(smag, np.ones(k) / k, mode="same")[sp].max() / G)
        z = lin_t[:, 2] - np.median(lin_t[:max(on, 1), 2])
        out["grade_seat_g"] = float(np.abs(_seat_from_back(z, self.rate, self.s.seat_body_hz,
                                                           self.s.seat_body_damping))[sp].max() / G)
        # the shock on its own: the high band (sustained part removed), so a pothole inside a
        # braking is measured on itself
        # ... over the run itself (and 0.1 s either side), not the whole window: a second
        # shock a second later is its own event
        a = max(on - int(0.1 * self.rate), 0)
        b = min(int(np.searchsorted(w["index"], r["i1"], side="right")) + int(0.1 * self.rate), len(w["hf"]))
        b = max(b, a + 1)
        hf = w["hf"][a:b]
        ihf = int(np.argmax(np.einsum("ij,ij->i", hf, hf)))
        hz = np.abs(hf[:, 2])
        hxy = np.hypot(hf[:, 0], hf[:, 1])
        ixy = int(np.argmax(hxy))
        out.update({
            "shock_t_s": float(w["index"][a + ihf]) / self.rate,
            "shock_g": float(np.linalg.norm(hf[ihf]) / G),
            "shock_vertical_g": float(hz.max() / G), "shock_horizontal_g": float(hxy[ixy] / G),
            "shock_along_g": float(hf[ixy, :2] @ fwd_all[a + ixy] / G),
            # the trunk's own tilt change over the window (its heading may turn with the car):
            # a posture change (sitting down, reaching, lying down) tilts the trunk by tens of
            # degrees; a belted trunk in a braking or a corner by a few
            "trunk_turn_deg": _tilt_change_deg(w["q"][0, 0], w["gyr"][:, 0] - self.gyro_offset[0], self.rate),
        })
        if self.n_imu > 1:
            rel = lin[:, 1] - lin[:, 0]
            # T1 minus head, forward, m/s^2; NIC asks for CFC 60 (SAE J211: 100 Hz corner), wider
            # than a 100 Hz stream's own band, so the unfiltered linear acceleration is used
            lin0 = rotate(w["q"], w["acc"])  # fused orientation, both IMUs alike; horizontal part only
            a0 = max(on - int(0.05 * self.rate), 0)
            seg = slice(a0, min(on + int(NIC_SPAN_S * self.rate), len(lin0)))
            head_h = _align_heading(lin0[a0: on + int(NIC_ALIGN_S * self.rate), 0, :2],
                                    lin0[a0: on + int(NIC_ALIGN_S * self.rate), 1, :2], lin0[:, 1, :2], self.rate)
            a_rel = (lin0[:, 0, :2] - head_h) @ fwd_h
            v_rel = np.cumsum(a_rel[seg]) / self.rate
            nic = 0.2 * a_rel[seg] + v_rel ** 2
            omega_rel = w["omega"][:, 1] - w["omega"][:, 0]
            gh = np.abs(w["gyr_head"]).max(axis=0)
            out.update({
                "head_rel_g": float(np.linalg.norm(rel, axis=1).max() / G),
                "neck_dps": float(np.degrees(np.linalg.norm(omega_rel, axis=1).max())),
                "head_dps": float(np.degrees(np.linalg.norm(w["omega"][:, 1], axis=1).max())),
                "nic": float(nic.max()) if len(nic) else float("nan"),
                "bric": float(np.sqrt(np.sum((gh / BRIC_CRIT) ** 2))),
            })
        return out

    def _strapdown_linear(self, buf: dict, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Trunk linear acceleration over ``buf[lo:hi]`` with gravity removed by a reference
        that a sustained manoeuvre cannot fool.

        Why: a fusion filter pulls its inclination towards the measured specific force
        (VQF 6D: time constant 3 s), so during a braking or a corner lasting seconds — or
        just after one — part of the acceleration is taken for tilted gravity: 5–15 % of a
        0.5 g corner. Instead, the inclination at ``lo`` is the average of the fused
        inclinations over the ``REF_S`` before it, each carried forward to ``lo`` by the
        gyroscope: a car's mean acceleration over a minute is small (Δv / 60 s: 0 → 50 km/h
        in a minute is 0.024 g), so the average leans far less than any one sample. From
        ``lo`` the gyroscope alone (zero-rate offset removed; ~0.7° over 15 s in the
        simulation) carries the orientation through the event.

        Returns:
            (lin (n, 3) m/s^2 in world axes, sustained (n, 2)): ``sustained`` is the
            horizontal acceleration after the causal ``vehicle_lowpass_hz`` low-pass, started
            at rest on its first value.
        """
        dt = 1.0 / self.rate
        gyr = buf["gyr"][:, 0] - self.gyro_offset[0]
        q_lo = buf["q"][lo, 0]
        step = max(1, int(round(REF_STEP_S * self.rate)))
        m = min(lo, int(REF_S * self.rate)) // step
        if m > 0:
            # 0.1 s increments (slow trunk rotations in a car commute to first order), each
            # carrying the fused "up" of its sample forward to lo: up_lo = R(t→lo) up_t
            a = lo - m * step
            inc = gyr[a + 1: lo + 1].reshape(m, step, 3).sum(axis=1) * dt  # rotation vector per step
            rel = _scan(np.concatenate([[[1.0, 0.0, 0.0, 0.0]], _exp(-inc[::-1])]))[::-1]
            # rel[i]: sensor(lo) <- sensor(a + i*step), i = 0..m (rel[m] = identity)
            up_t = _up_in_sensor(buf["q"][a: lo + 1: step, 0])
            up_lo = rotate(rel, up_t).mean(axis=0)
            q_lo = quat.mul(q_lo, _rotation_between(up_lo, up_t[-1]))
        d = np.concatenate([q_lo[None], _exp(gyr[lo + 1: hi] * dt)])
        q = _scan(d)
        lin = rotate(q / np.linalg.norm(q, axis=1, keepdims=True), buf["acc"][lo:hi, 0])
        lin[:, 2] -= G
        h = np.ascontiguousarray(lin[:, :2].T)  # (2, n): filter along the contiguous axis
        zi = self.zi_vehicle_unit[:, None, :] * h[:, 0][None, :, None]  # (sections, 2, 2)
        sustained, _ = signal.sosfilt(self.sos_vehicle, h, axis=-1, zi=zi)
        return lin, sustained.T

    # ------------------------------------------------------------ finishing

    def finish(self, events: list | None = None, t0_ms: float | None = None,
               walking: np.ndarray | None = None, vehicle: np.ndarray | None = None) -> tuple[list[Jolt], int]:
        """Classify, merge and grade. ``events``: decoded EVENT packets (high-rate windows);
        ``walking`` / ``vehicle``: per-second activity flags (:mod:`.context`; None: unknown,
        taken as not walking / in a vehicle).

        Each trigger run gets its own cause first; manoeuvre runs of the same cause closer
        than ``jolt_merge_s`` then form one event (shocks were merged within
        ``shock_merge_s`` already), runs of different causes never do (a braking
        followed by a rear impact are two events, a pothole inside a braking is its own).
        Rejected, and counted as the wearer's own movement (the second value returned, with
        the head-only crossings): steps (walking context); manoeuvres outside a vehicle
        context or with the trunk turning more than ``body_turn_deg`` (sitting down, lying
        down, bending or reaching make the trunk's gravity look like a sustained
        acceleration); outside a vehicle, shocks below ``knock_min_g`` (sitting down hard,
        clapping) and shocks in a series (``series_rate_hz`` over ``series_s``: hopping, jogging,
        stairs). Outside a vehicle a shock that stays is a knock (a fall or a blow), whatever
        its direction."""
        s = self.s
        self._measure_final()
        windows = _event_windows(events or [], t0_ms)

        def flag(mask, r, margin=0.0, default=False):
            if mask is None or not len(mask):
                return default
            secs = np.arange(int(r["start_s"] - margin), int(r["end_s"] + margin) + 1)
            return bool(mask[np.clip(secs, 0, len(mask) - 1)].mean() > 0.5) if margin == 0 else \
                bool(mask[np.clip(secs, 0, len(mask) - 1)].any())

        for r in self.runs:
            if (r["kind"] == "m" and r["horiz_fwhm_s"] < s.impulsive_max_s and r["horiz_peak_g"] >= s.jolt_trigger_g
                    and r["end_s"] - r["start_s"] < STEP_HOLD_S):
                # an impact seen through the seat back (a smooth 0.1–0.3 s push): sustained-band
                # crossing, but far too brief for a manoeuvre (a run held STEP_HOLD_S or longer is
                # not: a fall's or an emergency stop's sustained part beside its shock)
                r.update(kind="s", shock_t_s=r["t_s"], shock_g=r["horiz_peak_g"], shock_vertical_g=abs(r["vertical_g"]),
                         shock_horizontal_g=r["horiz_peak_g"])
        shocks_t = np.array(sorted(r["shock_t_s"] for r in self.runs if r["kind"] == "s"))
        manoeuvres = [(r["start_s"], r["end_s"]) for r in self.runs
                      if r["kind"] == "m" and r["end_s"] - r["start_s"] >= SHOCK_ECHO_S]
        own = self.head_only
        kept: list[tuple[str, dict]] = []
        for r in sorted(self.runs, key=lambda r: r["start_s"]):
            if flag(walking, r):
                own += 1
                continue
            in_car = flag(vehicle, r, margin=s.vehicle_margin_s, default=True)
            if r["kind"] == "m":
                if r["end_s"] - r["start_s"] < SHOCK_ECHO_S and np.any(
                        (shocks_t >= r["start_s"] - SHOCK_ECHO_S) & (shocks_t <= r["end_s"] + SHOCK_ECHO_S)):
                    continue  # a shock's own trace in the sustained band, not a manoeuvre
                if not in_car or r["trunk_turn_deg"] > s.body_turn_deg:
                    own += 1
                    continue
            elif r["shock_g"] < s.vibration_floor_ratio * self._floor_around(r["shock_t_s"]):
                continue  # road vibration: the start or end of a rough stretch
            elif in_car and r["shock_vertical_g"] <= s.bump_vertical_ratio * r["shock_horizontal_g"] and any(
                    a - s.manoeuvre_merge_s <= r["shock_t_s"] <= b + s.manoeuvre_merge_s for a, b in manoeuvres):
                continue  # the jerk of a braking's or a corner's onset or release, not a shock of its own
            elif not in_car:
                near = np.abs(shocks_t - r["shock_t_s"]) <= s.series_s / 2
                if r["shock_g"] < s.knock_min_g or near.sum() >= np.ceil(s.series_rate_hz * s.series_s):
                    own += 1
                    continue
            kept.append((self._cause(r, in_car), r))
        groups: list[tuple[str, list[dict]]] = []
        for cause, r in kept:
            # a left and a right corner in a row are two manoeuvres
            prev = next((g for g in reversed(groups) if g[0] == cause and (
                cause != "lateral" or g[1][-1]["vehicle_across_g"] * r["vehicle_across_g"] > 0)), None)
            if prev is not None and prev is groups[-1] and (
                    (r["kind"] == "m" and r["start_s"] - prev[1][-1]["end_s"] <= s.jolt_merge_s)
                    or (r["kind"] == "s" and abs(r["shock_t_s"] - prev[1][-1]["shock_t_s"]) <= s.shock_merge_s)):
                prev[1].append(r)
            else:
                groups.append((cause, [r]))
        jolts = [self._classify(cause, g, windows) for cause, g in groups]
        return sorted(jolts, key=lambda j: j.peak_t_s), own

    def _floor_around(self, t_s: float) -> float:
        """Vibration floor (g) around a time: the larger of the median per-second RMS of the
        high band over the ``vibration_floor_s`` before and the ``vibration_floor_s`` after
        the shock's second (a shock and its ringing fill one or two seconds, not a median)."""
        k, w = int(t_s), max(1, int(self.s.vibration_floor_s))
        before = [self.sec_ms[i] for i in range(k - w, k) if i in self.sec_ms]
        after = [self.sec_ms[i] for i in range(k + 1, k + 1 + w) if i in self.sec_ms]
        return float(np.sqrt(max(np.median(before) if before else 0.0, np.median(after) if after else 0.0)))

    def _cause(self, r: dict, in_car: bool) -> str:
        s = self.s
        if r["kind"] == "m":
            if abs(r["vehicle_across_g"]) > abs(r["vehicle_along_g"]):
                return "lateral"
            return "braking" if r["vehicle_along_g"] < 0 else "acceleration"
        if not in_car:
            return "knock"
        if r["shock_vertical_g"] > s.bump_vertical_ratio * r["shock_horizontal_g"]:
            return "bump"
        return "rear_impact_like" if r["horiz_along_g"] > 0 else "knock"

    def _classify(self, cause: str, g: list[dict], windows: list[dict]) -> Jolt:
        s = self.s
        best = max(g, key=lambda r: r["peak"][0])
        trunk_g = max(r["peak"][0] for r in g)
        head_g = max(r["peak"][-1] for r in g) if self.n_imu > 1 else float("nan")
        get = lambda key: max((r.get(key, float("nan")) for r in g), key=lambda v: -1 if np.isnan(v) else abs(v))  # noqa: E731
        veh_along = max((r["vehicle_along_g"] for r in g), key=abs)
        veh_across = max((r["vehicle_across_g"] for r in g), key=abs)
        vehicle = float(np.hypot(veh_along, veh_across))
        source = "stream"
        win = _match_window(windows, best["start_s"], best["end_s"])
        if win is not None:
            trunk_g = max(trunk_g, win["peak"][0])
            if self.n_imu > 1 and len(win["peak"]) > 1:
                head_g = max(head_g, win["peak"][-1])
            source = "event window"
        grade_of = lambda key: max(r[key] for r in g)  # noqa: E731
        dv = grade_of("dv_kmh") if cause == "rear_impact_like" else float("nan")
        if cause in ("braking", "acceleration", "lateral"):
            basis, size = "vehicle", grade_of("grade_vehicle_g")
            t_peak = max(g, key=lambda r: r["vehicle_g"])["t_vehicle_s"]
        else:
            t_peak = max(g, key=lambda r: r["shock_g"])["shock_t_s"]
            if cause == "bump":
                basis, size = "seat", grade_of("grade_seat_g")
            elif cause == "rear_impact_like" and self.n_imu > 1 and np.isfinite(get("nic")):
                basis, size = "nic", get("nic")
            elif cause == "rear_impact_like":  # no head sensor: the upper back's velocity change, less certain
                basis, size = "delta_v", dv
            else:  # a knock (a fall, a blow) may come from any direction: its whole size
                basis, size = "back", grade_of("grade_magnitude_g")
        bounds = tuple(getattr(s, k) for k in GRADE_BOUNDS[basis])
        grade = grade_of_size(size, bounds)
        if basis == "vehicle":  # the vehicle's level the grade read, not the back's overshoot of it
            vehicle = size
        return Jolt(
            peak_t_s=t_peak, start_s=g[0]["start_s"], end_s=g[-1]["end_s"], cause=cause, grade=grade,
            peak_trunk_g=float(trunk_g), peak_head_g=float(head_g), peak_head_dps=float(get("head_dps")),
            peak_vehicle_g=vehicle, peak_vertical_g=float(best["vertical_g"]), peak_head_rel_g=float(get("head_rel_g")),
            peak_neck_dps=float(get("neck_dps")), nic_m2s2=float(get("nic")), bric=float(get("bric")), source=source,
            grade_basis=basis, grade_value=float(size), delta_v_kmh=float(dv),
        )


def grade_of_size(size: float, bounds: tuple[float, float]) -> str:
    """mild / moderate / severe of a graded quantity against its (moderate, severe) boundaries;
    a quantity that could not be measured (NaN) is mild."""
    return "severe" if size >= bounds[1] else "moderate" if size >= bounds[0] else "mild"


def plateau_centre(x: np.ndarray, i: int, frac: float = 0.8) -> int:
    """Index of the middle of the stretch around ``x[i]`` (its peak) where ``x`` stays at or
    above ``frac`` × ``x[i]`` (nape.sim.labels times manoeuvres the same way)."""
    lo = hi = i
    level = frac * x[i]
    while lo > 0 and x[lo - 1] >= level:
        lo -= 1
    while hi < len(x) - 1 and x[hi + 1] >= level:
        hi += 1
    return (lo + hi) // 2


def _align_heading(a_trunk: np.ndarray, a_head: np.ndarray, head: np.ndarray, rate: float) -> np.ndarray:
    """``head`` (n, 2), the head's horizontal acceleration in its own fused frame, turned into
    the trunk's. 6D fusion gives each IMU its own drifting heading, so the two world frames
    differ by an unknown turn about vertical; over an event's first ``NIC_ALIGN_S`` the head
    and the upper back share the same velocity change (the neck carries the head along), so the
    turn between their horizontal velocity changes (sums of ``a_trunk`` / ``a_head``) is that
    offset. Without a clear velocity change (under 0.3 m/s in either) the frames are left as
    they are."""
    if not len(a_trunk):
        return head
    dt_, dh = a_trunk.sum(axis=0) / rate, a_head.sum(axis=0) / rate
    return head if min(np.hypot(*dt_), np.hypot(*dh)) < ALIGN_MIN_MPS else _turn(head, dt_, dh)


def _turn(v: np.ndarray, to: np.ndarray, frm: np.ndarray) -> np.ndarray:
    """Vectors ``v`` (n, 2) turned by the angle from direction ``frm`` to ``to``."""
    ang = np.arctan2(frm[0] * to[1] - frm[1] * to[0], frm @ to)
    c, s_ = np.cos(ang), np.sin(ang)
    return np.column_stack([c * v[:, 0] - s_ * v[:, 1], s_ * v[:, 0] + c * v[:, 1]])


def _seat_from_back(z: np.ndarray, rate: float, f_hz: float, zeta: float, fc_hz: float = SEAT_LOWPASS_HZ) -> np.ndarray:
    """The seat's vertical acceleration from the upper back's, inverting a seated body of
    resonance ``f_hz`` and damping ``zeta`` (base-excited: back/seat = (2ζωs + ω²) / (s² +
    2ζωs + ω²)); a first-order low-pass at ``fc_hz`` keeps the inverse proper and stops it
    from amplifying road vibration (its gain rises with frequency)."""
    w = 2 * np.pi * f_hz
    wc = 2 * np.pi * min(fc_hz, 0.4 * rate)
    num = np.array([1.0, 2 * zeta * w, w * w])
    den = np.polymul([2 * zeta * w, w * w], [1.0 / wc, 1.0])
    b, a = signal.bilinear(num, den, fs=rate)
    return signal.lfilter(b, a, z)


def _delta_v_kmh(a_fwd: np.ndarray, on: int, rate: float) -> float:
    """The upper back's forward velocity change (km/h) in an impact: the forward linear
    acceleration ``a_fwd`` (m/s^2) less its median over the ``PRE_S`` before the onset ``on``
    (a braking under way), integrated from 0.05 s before the onset; averaged over
    ``DV_SETTLE_S`` after the onset (where the window is shorter: its largest value over
    ``DV_SPAN_S``)."""
    if not len(a_fwd):
        return float("nan")
    pre = a_fwd[max(on - int(PRE_S * rate), 0): max(on, 1)]
    base = float(np.median(pre)) if len(pre) else 0.0
    a = max(on - int(0.05 * rate), 0)
    s0, s1 = on + int(DV_SETTLE_S[0] * rate), on + int(DV_SETTLE_S[1] * rate)
    if s1 <= len(a_fwd):  # the trunk's velocity once the seat back has let go: the car's ΔV
        v = np.cumsum(a_fwd[a: s1] - base) / rate
        return float(np.mean(v[s0 - a:]) * 3.6)
    seg = a_fwd[a: min(on + int(DV_SPAN_S * rate), len(a_fwd))] - base  # cut short: the peak
    return float(np.max(np.cumsum(seg)) / rate * 3.6) if len(seg) else float("nan")


def _gather(parts: list[dict], first_index: float, last_index: float = np.inf) -> dict:
    """Rows with ``first_index <= index <= last_index`` of consecutive buffers (dicts of
    equal-length arrays); views when they lie in one buffer."""
    out = []
    for p in parts:
        i = int(np.searchsorted(p["index"], first_index))
        j = int(np.searchsorted(p["index"], last_index, side="right"))
        if i < j:
            out.append({k: v[i:j] for k, v in p.items()})
    if len(out) == 1:
        return out[0]
    if not out:
        return {k: v[:0] for k, v in parts[-1].items()}
    return {k: np.concatenate([o[k] for o in out]) for k in out[0]}


def _exp(rotvec: np.ndarray) -> np.ndarray:
    """Unit quaternions (n, 4) of rotation vectors (n, 3), rad."""
    angle = np.sqrt(np.einsum("ij,ij->i", rotvec, rotvec))
    k = np.where(angle > 1e-12, np.sin(angle / 2) / np.maximum(angle, 1e-12), 0.5)
    return np.column_stack([np.cos(angle / 2), rotvec * k[:, None]])


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a ⊗ b of (n, 4) arrays."""
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.column_stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                            aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw])


def _scan(d: np.ndarray, k: int = 1) -> np.ndarray:
    """Running products d[0] ⊗ d[1] ⊗ … ⊗ d[i] of (n, 4) quaternions: a parallel prefix
    scan (log2 n vectorised steps; quaternion products are associative). ``k`` > 1: d holds
    k independent sequences one after the other; returns (k, n / k, 4)."""
    d = d.reshape(k, -1, 4).copy()
    step = 1
    m = d.shape[1]
    while step < m:
        d[:, step:] = _mul(d[:, :-step].reshape(-1, 4), d[:, step:].reshape(-1, 4)).reshape(k, -1, 4)
        step *= 2
    return d if k > 1 else d[0]


def _up_in_sensor(q: np.ndarray) -> np.ndarray:
    """World up (0, 0, 1) in the sensor frame of each q (n, 4): the third row of R(q)."""
    w, x, y, z = (q[..., i] for i in range(4))
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest rotation (w, x, y, z) taking direction ``a`` to direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    c = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    q = np.array([1.0 + float(a @ b), *c])
    n = np.linalg.norm(q)
    return q / n if n > 1e-9 else np.array([1.0, 0.0, 0.0, 0.0])


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v' = q ⊗ v ⊗ q* for unit quaternions q (..., 4) and vectors v (..., 3), written out
    per component (the rotation matrix of q applied to v; no temporaries of cross products)."""
    w, x, y, z = (q[..., i] for i in range(4))
    vx, vy, vz = (v[..., i] for i in range(3))
    # t = 2 u × v ; v' = v + w t + u × t
    tx = 2.0 * (y * vz - z * vy)
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    out = np.empty(np.broadcast_shapes(q.shape[:-1], v.shape[:-1]) + (3,))
    out[..., 0] = vx + w * tx + (y * tz - z * ty)
    out[..., 1] = vy + w * ty + (z * tx - x * tz)
    out[..., 2] = vz + w * tz + (x * ty - y * tx)
    return out


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` (n,) widened by ``k`` samples on either side (same length, any n)."""
    full = np.convolve(mask.astype(float), np.ones(2 * k + 1), mode="full")
    return full[k: k + len(mask)] > 0


def _tilt_change_deg(q0: np.ndarray, gyr: np.ndarray, rate: float) -> float:
    """Largest change of inclination (deg) over a window: the angle between world up seen
    from the sensor at the first sample (fused orientation ``q0``) and up carried to each
    later sample by the gyroscope (``gyr`` (n, 3) rad/s, offset removed). The gyroscope, not
    the fused orientation, because the fusion leans into a sustained acceleration (a 0.9 g
    braking would read as a 20° tilt); rotation about vertical (a car's turn) changes nothing."""
    if len(gyr) < 2:
        return 0.0
    up0 = _up_in_sensor(q0[None])[0]
    rel = _scan(np.concatenate([[[1.0, 0.0, 0.0, 0.0]], _exp(gyr[1:] / rate)]))  # sensor(t) -> sensor(0)
    up = rotate(quat.conj(rel), np.broadcast_to(up0, (len(rel), 3)))
    c = np.clip(up @ up0 / np.maximum(np.linalg.norm(up, axis=1) * np.linalg.norm(up0), 1e-12), -1.0, 1.0)
    return float(np.degrees(np.arccos(c.min())))


def _fwhm(x: np.ndarray, i: int) -> int:
    """Samples around index ``i`` where ``x`` stays at or above half of ``x[i]``."""
    half = x[i] / 2
    lo = i
    while lo > 0 and x[lo - 1] >= half:
        lo -= 1
    hi = i
    while hi < len(x) - 1 and x[hi + 1] >= half:
        hi += 1
    return hi - lo + 1


def _event_windows(events: list, t0_ms: float | None) -> list[dict]:
    """Reassemble EVENT packets into windows with peak |a − gravity| per IMU (g)."""
    if not events or t0_ms is None:
        return []
    by_id: dict[tuple, list] = {}
    for e in events:  # parts of one window agree on all of these (event_id alone may wrap)
        by_id.setdefault((e.event_id, e.trigger_t_ms, e.total, e.pre_trigger, e.acc.shape[1]), []).append(e)
    out = []
    for parts in by_id.values():
        p0 = parts[0]
        acc = np.full((p0.total, p0.acc.shape[1], 3), np.nan)
        for p in parts:
            acc[p.first_index: p.first_index + p.count] = p.acc
        fin = ~np.isnan(acc).any(axis=(1, 2))  # an incomplete window: the samples that arrived
        if not fin.any():
            continue
        n_pre = max(p0.pre_trigger, 1)
        pre = acc[:n_pre][fin[:n_pre]]
        # still-ish before the trigger: the gravity vector (no pre-trigger part arrived: the whole window's mean)
        grav = (pre if len(pre) else acc[fin]).mean(axis=0)
        peak = np.linalg.norm(acc[fin] - grav, axis=2).max(axis=0) / G
        t = (p0.trigger_t_ms - t0_ms) / 1000.0
        out.append({"t_s": t, "peak": peak.tolist(), "complete": not np.isnan(acc).any()})
    return out


def _match_window(windows: list[dict], start_s: float, end_s: float) -> dict | None:
    near = [w for w in windows if start_s - 1.0 <= w["t_s"] <= end_s + 1.0]
    return max(near, key=lambda w: w["peak"][0]) if near else None
