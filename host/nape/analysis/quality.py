"""Plausibility guards on the sample stream: sensor glitches masked, input doubts named.

Glitches (:class:`GlitchGuard`), per IMU and sample, before anything else sees the data:

- ``non_finite``: NaN or infinity in acc, gyr or the quaternion;
- ``impossible``: specific force above ``glitch_acc_max_g`` or angular velocity above
  ``glitch_gyr_max_dps`` on any one axis (the sensor clips each axis, so the whole vector
  of a real shock may reach √3 × that): beyond the full scale of any body-worn MEMS IMU (±16 g, ±2000 °/s
  on the MPU-6050 / ICM-42688 class the board uses), so a sensor or transfer fault (a value
  at the wire format's i16 limit, ±32.767 g / ±3276.7 °/s, is one of these);
- ``spike``: one sample whose specific force differs from both neighbours by more than
  ``glitch_spike_g`` while the neighbours agree within a quarter of that: a body segment
  cannot jump and come back within one sample period (shocks at the back and head last
  50–150 ms, several samples); or whose angular velocity differs from both neighbours by
  more than ``glitch_spike_dps`` while they agree within a quarter of that (the fastest head
  movements take 100 ms and more, 5 samples and more from ``GYRO_SPIKE_MIN_HZ``; below it
  a real movement may be one sample, so there the rule is off; one glitched rate sample
  would turn every fused orientation after it).

Saturated samples are not glitches: a sample whose saturation flag is set (``TRUNK_SAT`` /
``HEAD_SAT``, protocol/SPEC.md: a value reached the sensor's range) and that is neither
impossible nor a spike is kept as measured: the railed value is a lower bound of the truth,
closer to it than an interpolation from the neighbours (which made a knock that rails the
sensor read lower than the rail). They are counted (``saturated_samples`` in :meth:`GlitchGuard.summary`) and where they lie is
remembered (:meth:`GlitchGuard.saturated_between`), so a jolt's peak can be given as "at least".
A flagged sample that is an isolated spike (the spike rule) is masked as a spike.

A masked sample's acc and gyr (and quaternion) are replaced by linear interpolation between
the nearest valid samples of the same IMU (held at the ends), so filters, the jolt detector
and the posture angles never see it; the count goes into the findings and the report. A
spike is judged with both neighbours, so the last sample of a block is judged by range only.

Input doubts (:func:`input_warnings`), from the first two minutes of the trunk IMU:

- gyroscope units: the gravity direction the accelerometer measures turns as the gyroscope
  says, so integrating the gyroscope over 1 s windows and comparing with the measured change
  of the gravity direction tells rad/s from °/s (a factor 57.3 either way); a still sensor's
  zero-rate offset of a few °/s read as rad/s alone predicts tens of degrees a second;
- Earth-frame axes: the gyroscope turns the sensor by tens of degrees but the measured
  gravity direction never moves: the accelerometer was given in Earth (world) axes.
"""

from __future__ import annotations

import numpy as np

from .. import wire
from ..settings import AnalysisSettings

G = 9.80665
I16_ACC_MS2 = 32767 * wire.ACC_LSB_MS2 * 0.999  # at the wire format's limit
I16_GYR_RADS = 32767 * wire.GYR_LSB_RADS * 0.999
SAT_FLAGS = (wire.FLAG_TRUNK_SAT, wire.FLAG_HEAD_SAT)
_BLOCK_ARRAYS = ("index", "t_ms", "flags", "quat", "acc", "gyr")
KINDS = ("non_finite", "impossible", "spike")
DEG_PER_RAD = 180.0 / np.pi
UNIT_CHECK_S = 120.0  # the unit and frame checks read the first two minutes of the trunk IMU
UNIT_WINDOW_S = 1.0  # gyro integration window of the unit check
UNIT_MIN_WINDOWS = 5  # windows with a usable gravity direction at both ends before judging
UNIT_MIN_ERR_DEG = 20.0  # median gravity-direction error (as given) above which the units are doubted
UNIT_FIT_RATIO = 0.25  # ... and another scale's error must be below this share of it
REST_ACC_STD_G = 0.01  # a window this still (accelerometer std) shows the gyroscope's rest noise
REST_NOISE_MAX_RADS = 0.03  # rest noise above this (1.7 °/s): °/s taken as rad/s (MEMS: 0.05–0.2 °/s)
EARTH_FRAME_TURN_DEG = 10.0  # gyro-integrated tilt over which a fixed gravity direction is suspicious
EARTH_FRAME_STILL_DEG = 2.0  # ... "fixed": 99th percentile of the direction's change
GYRO_SPIKE_MIN_HZ = 50.0  # the gyroscope spike rule from this rate: a 100 ms head movement spans 5+ samples


class GlitchGuard:
    """Masks glitches in blocks of one stream (stateful: remembers each IMU's last valid sample)."""

    def __init__(self, n_imu: int, s: AnalysisSettings):
        self.n_imu = n_imu
        self.acc_max = s.glitch_acc_max_g * G
        self.gyr_max = np.radians(s.glitch_gyr_max_dps)
        self.spike = s.glitch_spike_g * G
        self.spike_gyr = np.radians(s.glitch_spike_dps)
        self.counts = dict.fromkeys(KINDS, 0)
        self.samples = 0  # (sample, IMU) pairs masked
        self.saturated = 0  # (sample, IMU) pairs at the sensor's range, kept as measured
        self._sat_runs: list[list[tuple[int, int]]] = [[] for _ in range(n_imu)]  # grid index runs per IMU
        self._keep_sat: np.ndarray | None = None
        self._last: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * n_imu

    def __call__(self, flags: np.ndarray, q: np.ndarray, acc: np.ndarray, gyr: np.ndarray):
        """Masked copies of ``q`` (n, k, 4), ``acc``, ``gyr`` (n, k, 3; m/s², rad/s); the
        inputs are returned as they are when nothing is masked."""
        bad = self.find(flags, q, acc, gyr)
        return self._masked({"quat": q, "acc": acc, "gyr": gyr}, bad)

    def blocks(self, blocks):
        """Masked :class:`~nape.analysis.stream.Block` s, one sample behind: a block's last sample
        waits for the next block, so a spike is judged with both neighbours wherever blocks are
        cut; the sample before is kept as context (judged already, not passed on again)."""
        from .stream import Block

        held = ctx = None  # the sample waiting for its next neighbour; the one before it (masked)
        for b in blocks:
            if b.reduced:  # the offline day log: orientation only, passed on as it is
                if held is not None:
                    yield from self._final(ctx, held)
                held = ctx = None
                yield b
                continue
            parts = [x for x in (ctx, held) if x is not None] + [b]
            cat = {k: np.concatenate([getattr(p, k) for p in parts]) for k in _BLOCK_ARRAYS}
            skip = 1 if ctx is not None else 0  # rows already judged and passed on
            bad = self.find(cat["flags"], cat["quat"], cat["acc"], cat["gyr"], judge=slice(skip, len(cat["index"]) - 1),
                            period_s=b.period_s)
            q, acc, gyr = self._masked(cat, bad)
            self._note_saturated(cat["index"])
            out = slice(skip, len(cat["index"]) - 1)
            if out.stop > out.start:
                samples = b.samples + (held.samples if held is not None else 0) - 1
                yield Block(cat["index"][out], cat["t_ms"][out], cat["flags"][out], q[out], acc[out], gyr[out],
                            b.period_s, max(samples, 0))
            last = len(cat["index"]) - 1
            ctx = Block(*(x[last - 1: last] for x in (cat["index"], cat["t_ms"], cat["flags"], q, acc, gyr)),
                        b.period_s, 0) if last >= 1 else ctx
            held = Block(*(cat[k][last:] for k in _BLOCK_ARRAYS), b.period_s, 1)
        if held is not None:  # the very last sample: judged with the one before it only
            yield from self._final(ctx, held)

    def _final(self, ctx, held):
        """The held sample as the last of its run: judged with the one before it only."""
        from .stream import Block

        parts = [x for x in (ctx, held) if x is not None]
        cat = {k: np.concatenate([getattr(p, k) for p in parts]) for k in _BLOCK_ARRAYS}
        n = len(cat["index"])
        bad = self.find(cat["flags"], cat["quat"], cat["acc"], cat["gyr"], judge=slice(n - 1, n), period_s=held.period_s)
        q, acc, gyr = self._masked(cat, bad)
        self._note_saturated(cat["index"])
        yield Block(cat["index"][-1:], cat["t_ms"][-1:], cat["flags"][-1:], q[-1:], acc[-1:], gyr[-1:],
                    held.period_s, held.samples)

    def _note_saturated(self, index: np.ndarray) -> None:
        """Remember the grid indices of the saturated samples :meth:`find` just kept (as runs)."""
        keep = self._keep_sat
        if keep is None or not keep.any():
            return
        for k in range(min(self.n_imu, keep.shape[1])):
            idx = np.asarray(index)[keep[:, k]]
            if not len(idx):
                continue
            cut = np.flatnonzero(np.diff(idx) > 1) + 1
            runs = self._sat_runs[k]
            for a in np.split(idx, cut):
                lo, hi = int(a[0]), int(a[-1])
                if runs and lo <= runs[-1][1] + 1:
                    runs[-1] = (runs[-1][0], max(runs[-1][1], hi))
                else:
                    runs.append((lo, hi))

    def saturated_between(self, imu: int, lo: float, hi: float) -> bool:
        """Whether IMU ``imu`` had a saturated (kept) sample at grid index ``lo`` … ``hi``."""
        if imu >= len(self._sat_runs):
            return False
        return any(a <= hi and b >= lo for a, b in self._sat_runs[imu])

    def _masked(self, cat: dict, bad: np.ndarray):
        q, acc, gyr = cat["quat"], cat["acc"], cat["gyr"]
        if bad.any():
            q, acc, gyr = q.astype(float), acc.astype(float), gyr.astype(float)
            for k in range(min(self.n_imu, acc.shape[1])):
                if bad[:, k].any():
                    self._fill(k, bad[:, k], q, acc, gyr)
        self._remember(q, acc, gyr, bad)
        return q, acc, gyr

    def find(self, flags: np.ndarray, q: np.ndarray, acc: np.ndarray, gyr: np.ndarray,
             judge: slice | None = None, period_s: float | None = None) -> np.ndarray:
        """(n, k) bool: glitched samples per IMU among the rows ``judge`` (default all; the others
        are context: already judged, or still waiting); counted by kind (first kind that applies).
        ``period_s``: the sample period (None: a high-rate window; the gyroscope spike rule
        applies from ``GYRO_SPIKE_MIN_HZ``)."""
        n, k = acc.shape[:2]
        with np.errstate(all="ignore"):
            # fast path: one sum per array is finite only when every value is (the usual case)
            every = bool(np.isfinite(acc.sum()) and np.isfinite(gyr.sum()) and np.isfinite(q.sum()))
            if every:
                fin = np.ones((n, k), bool)
                a, w = acc, gyr
            else:
                fin = np.isfinite(acc).all(-1) & np.isfinite(gyr).all(-1) & np.isfinite(q).all(-1)
                a = np.where(fin[..., None], acc, 0.0)
                w = np.where(fin[..., None], gyr, 0.0)
            flags = np.asarray(flags, np.int64)
            sat = np.stack([(flags & SAT_FLAGS[j]) != 0 if j < len(SAT_FLAGS) else np.zeros(n, bool)
                            for j in range(k)], axis=1)
            # per axis, as the sensor clips: a shock that rails one axis at ±16 g while another
            # reads 6 g is 17 g in all and real (up to √3 × full scale); one axis beyond is not
            # (the wire format's i16 limit, ±32.767 g, is beyond every body-worn sensor: impossible)
            impossible = _beyond(a, self.acc_max) | _beyond(w, self.gyr_max)
            spike = np.zeros((n, k), bool)
            if n >= 3:
                fast = period_s is None or period_s <= 1.0 / GYRO_SPIKE_MIN_HZ + 1e-9
                for x, lim in ((a, self.spike), (w, self.spike_gyr)) if fast else ((a, self.spike),):
                    jump = _sq_step(x) > lim ** 2  # |x[i+1] − x[i]|
                    cand = jump[:-1] & jump[1:]  # sample i (1..n−2) far from both neighbours
                    for i, j in zip(*np.nonzero(cand)):  # rare: the neighbours must agree
                        d = x[i + 2, j] - x[i, j]
                        spike[i + 1, j] |= float(d @ d) < (lim / 4) ** 2
        rows = np.zeros(n, bool)
        rows[judge if judge is not None else slice(None)] = True
        spike[1:-1] &= ~(~fin[:-2] | ~fin[2:] | sat[:-2] | sat[2:])  # a neighbour at the rail: no verdict
        kinds = {"non_finite": ~fin, "impossible": fin & impossible, "spike": fin & ~impossible & spike}
        for name, m in kinds.items():
            self.counts[name] += int((m & rows[:, None]).sum())
        # at the sensor's range and neither impossible nor a lone spike: kept, a lower bound of the truth
        self._keep_sat = fin & sat & ~impossible & ~spike & rows[:, None]
        self.saturated += int(self._keep_sat.sum())
        self._unusable = ~fin | impossible  # never an anchor for the interpolation
        bad = (~fin | impossible | spike) & rows[:, None]
        self.samples += int(bad.sum())
        return bad

    def _fill(self, k: int, bad: np.ndarray, q: np.ndarray, acc: np.ndarray, gyr: np.ndarray) -> None:
        unusable = getattr(self, "_unusable", None)
        good = np.flatnonzero(~bad & (~unusable[:, k] if unusable is not None and len(unusable) == len(bad) else True))
        idx = np.arange(len(bad))
        last = self._last[k]
        if len(good) == 0:  # nothing valid in the block: the last valid sample, else at rest upright
            a0, w0, q0 = last if last is not None else (np.array([0.0, 0.0, G]), np.zeros(3), np.array([1.0, 0, 0, 0]))
            acc[:, k], gyr[:, k], q[:, k] = a0, w0, q0
            return
        for arr in (acc, gyr, q):
            for c in range(arr.shape[2]):
                arr[bad, k, c] = np.interp(idx[bad], good, np.asarray(arr[good, k, c], float))
        norm = np.linalg.norm(q[bad, k], axis=-1, keepdims=True)
        q[bad, k] = np.where(norm > 0, q[bad, k] / np.where(norm > 0, norm, 1), [1.0, 0, 0, 0])

    def _remember(self, q, acc, gyr, bad) -> None:
        for k in range(min(self.n_imu, acc.shape[1])):
            good = np.flatnonzero(~bad[:, k])
            if len(good):
                i = good[-1]
                self._last[k] = (np.array(acc[i, k], float), np.array(gyr[i, k], float), np.array(q[i, k], float))

    def summary(self) -> dict:
        """``{"samples": masked, "by_kind": {kind: count}}`` (kinds with a count only), and
        ``"saturated_samples"``: samples at the sensor's range, kept as measured (when there were any)."""
        out = {"samples": self.samples, "by_kind": {k: v for k, v in self.counts.items() if v}}
        if self.saturated:
            out["saturated_samples"] = self.saturated
        return out


def _beyond(x: np.ndarray, limit: float) -> np.ndarray:
    """Any of the three axes (last axis) beyond ±``limit``, column by column."""
    return (np.abs(x[..., 0]) > limit) | (np.abs(x[..., 1]) > limit) | (np.abs(x[..., 2]) > limit)


def _sq_step(x: np.ndarray) -> np.ndarray:
    """Squared length of x[i+1] − x[i] over the last axis (3), column by column."""
    cols = np.ascontiguousarray(np.moveaxis(x, -1, 0))  # (3, n, ...): contiguous rows subtract fast
    return sum((cols[c, 1:] - cols[c, :-1]) ** 2 for c in range(3))


def mask_event(ev, n_imu: int, s: AnalysisSettings) -> None:
    """Mask glitches in one EVENT packet's high-rate window in place (no flags: range only)."""
    guard = GlitchGuard(n_imu, s)
    n, k = ev.acc.shape[:2]
    q = np.tile(np.array([1.0, 0, 0, 0]), (n, k, 1))
    _q, ev.acc, ev.gyr = guard(np.zeros(n, np.uint8), q, ev.acc, ev.gyr)


# ---------------------------------------------------------------- input doubts


NO_GYRO_WORDS = ("No gyroscope in this recording (imported without one): orientation comes from the accelerometer "
                 "alone, so posture angles lag by a few seconds and read wrong while moving; turning speeds, head "
                 "turns and the neck-loading measure (NIC) are not measured, and jolt sizes are less certain.")


def header_warnings(metadata: dict) -> list[str]:
    """Doubts the recording header states (an import without gyroscope), plain words."""
    extras = metadata.get("extras") if isinstance(metadata, dict) else None
    imp = extras.get("import") if isinstance(extras, dict) else None
    gyro = imp.get("gyroscope") if isinstance(imp, dict) else None
    return [NO_GYRO_WORDS] if isinstance(gyro, str) and gyro.startswith("none") else []


def input_warnings(acc: np.ndarray, gyr: np.ndarray, period_s: float) -> list[str]:
    """Plain-words doubts about the units and frame of one IMU's data.

    Args:
        acc: (n, 3) specific force, m/s² (sensor frame expected).
        gyr: (n, 3) angular velocity, rad/s expected.
        period_s: sample period, s.
    """
    if earth_frame_suspected(acc, gyr, period_s):  # first: the unit fit means nothing in Earth axes
        return ["The accelerometer's gravity direction never moves although the gyroscope turns the sensor by more "
                f"than {EARTH_FRAME_TURN_DEG:g}° at a time: the data looks like Earth (world) axes, not the sensor's "
                "own axes. Posture angles need sensor-frame data."]
    scale, _err = gyro_unit_fit(acc, gyr, period_s)
    out = []
    if scale is not None and scale < 1:
        out.append("The gyroscope values look like degrees per second given as radians per second (its turning, "
                   "or its noise at rest, fits what the accelerometer sees only when divided by 57.3): orientation, "
                   "posture and lying times are not trustworthy. Re-import with the gyroscope in rad/s.")
    elif scale is not None and scale > 1:
        out.append("The gyroscope values look like radians per second given as degrees per second (they match the "
                   "accelerometer only when multiplied by 57.3): orientation and jolt figures are not trustworthy. "
                   "Re-import with the gyroscope in rad/s.")
    return out


def gyro_unit_fit(acc: np.ndarray, gyr: np.ndarray, period_s: float) -> tuple[float | None, float]:
    """The gyroscope scale (1/57.3 or 57.3) that fits the accelerometer far better than the data as
    given, or None when the data as given fits (or there is too little to tell); and the median
    gravity-direction error (degrees per window) of the data as given.

    The gyroscope's median (its zero-rate offset, for data that is mostly still) is removed first:
    an offset of up to ±20 °/s is within a MEMS datasheet and must not pass for a unit error. Then
    (a) windows with motion: integrated rotation against the accelerometer's tilt change; (b)
    without motion: the rest noise, under :data:`REST_NOISE_MAX_RADS` for any MEMS gyroscope
    in rad/s (0.05–0.2 °/s), 57 times that in °/s taken as rad/s."""
    acc = np.asarray(acc, float)
    gyr = np.asarray(gyr, float)
    w = max(2, int(round(UNIT_WINDOW_S / period_s)))
    if len(acc) < UNIT_MIN_WINDOWS * w or not np.isfinite(acc).all() or not np.isfinite(gyr).all():
        return None, 0.0
    gyr = gyr - np.median(gyr, axis=0)
    g_dir, ok = _gravity_dir(acc, max(1, w // 5))
    starts = np.arange(0, len(acc) - w, w)
    starts = starts[ok[starts] & ok[starts + w]]
    if len(starts) < UNIT_MIN_WINDOWS:
        return None, 0.0
    wins = gyr[starts[:, None] + np.arange(w)[None, :]]  # (windows, w, 3)
    errs: dict[float, float] = {}
    for scale in (1.0, 1.0 / DEG_PER_RAD, DEG_PER_RAD, 0.0):
        errs[scale] = float(np.median(_window_errors(g_dir[starts], g_dir[starts + w], wins * scale, period_s)))
    best = min((1.0, 1.0 / DEG_PER_RAD, DEG_PER_RAD), key=lambda k: errs[k])
    # another scale must fit far better than the data as given, and better than no rotation at all
    # (vigorous movement blurs the gravity direction: then nothing fits and no verdict is given)
    if best != 1.0 and errs[1.0] > UNIT_MIN_ERR_DEG and errs[best] < UNIT_FIT_RATIO * errs[1.0] \
            and (best > 1.0 or errs[best] < 0.8 * errs[0.0]):
        return best, errs[1.0]
    acc_w = acc[starts[:, None] + np.arange(w)[None, :]]
    still = np.linalg.norm(acc_w.std(axis=1), axis=1) < REST_ACC_STD_G * G
    if still.sum() >= UNIT_MIN_WINDOWS:
        noise = float(np.median(np.linalg.norm(wins[still].std(axis=1), axis=1)))
        if noise > REST_NOISE_MAX_RADS:
            return 1.0 / DEG_PER_RAD, errs[1.0]
    return None, errs[1.0]


def earth_frame_suspected(acc: np.ndarray, gyr: np.ndarray, period_s: float) -> bool:
    """True when the gyroscope (offset removed) tilts the sensor by more than
    :data:`EARTH_FRAME_TURN_DEG` within a quarter of its 2 s windows (at least 10 windows) while
    the measured gravity direction stays within :data:`EARTH_FRAME_STILL_DEG` all along (99th
    percentile)."""
    acc = np.asarray(acc, float)
    gyr = np.asarray(gyr, float)
    w = max(2, int(round(2.0 / period_s)))
    if len(acc) < 5 * w or not np.isfinite(acc).all() or not np.isfinite(gyr).all():
        return False
    g_dir, ok = _gravity_dir(acc, max(1, w // 10))
    if ok.sum() < 10:
        return False
    mean = g_dir[ok].mean(axis=0)
    mean /= max(np.linalg.norm(mean), 1e-12)
    spread = np.degrees(np.arccos(np.clip(g_dir[ok] @ mean, -1, 1)))
    tilt = np.cross(gyr - np.median(gyr, axis=0), g_dir) * period_s  # turning of the gravity direction
    m = len(tilt) // w
    turned = np.degrees(np.linalg.norm(tilt[: m * w].reshape(m, w, 3).sum(axis=1), axis=1))
    return bool(len(turned) >= 10 and np.percentile(spread, 99) < EARTH_FRAME_STILL_DEG
                and np.percentile(turned, 75) > EARTH_FRAME_TURN_DEG)


def _gravity_dir(acc: np.ndarray, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit gravity direction (moving mean over ``smooth`` samples) and where it is usable
    (magnitude within 15 % of 1 g: little linear acceleration)."""
    kern = np.ones(smooth) / smooth
    m = np.stack([np.convolve(acc[:, c], kern, mode="same") for c in range(3)], axis=1) if smooth > 1 else acc
    norm = np.linalg.norm(m, axis=1)
    ok = np.abs(norm - G) < 0.15 * G
    return m / np.maximum(norm, 1e-9)[:, None], ok


def _window_errors(g0: np.ndarray, g1: np.ndarray, w: np.ndarray, dt: float) -> np.ndarray:
    """Degrees between the measured gravity directions ``g1`` (m, 3) and ``g0`` carried by the
    angular velocities ``w`` (m, steps, 3) (sensor frame: a fixed world vector turns by −ω dt;
    each step an exact rotation, Rodrigues' formula)."""
    v = g0.copy()
    for j in range(w.shape[1]):
        omega = -w[:, j] * dt
        ang = np.linalg.norm(omega, axis=1, keepdims=True)
        axis = omega / np.maximum(ang, 1e-15)
        c, s = np.cos(ang), np.sin(ang)
        v = v * c + np.cross(axis, v) * s + axis * (axis * v).sum(1, keepdims=True) * (1 - c)
    return np.degrees(np.arccos(np.clip((v * g1).sum(1), -1.0, 1.0)))
