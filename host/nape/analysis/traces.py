"""Per-jolt traces for the report: acceleration and angular velocity around each jolt.

Two sources, best first:

1. the **event window** the firmware sends for each jolt trigger (EVENT packets,
   protocol/SPEC.md: raw samples at the IMU's high rate, about 0.25 s before to 0.5 s after
   the trigger), stored in the recording;
2. when a jolt has no event window (older firmware, a window lost in transmission, an
   imported or simulated recording), the **100 Hz stream** from ``STREAM_PRE_S`` before to
   ``STREAM_POST_S`` after the peak, kept in a short ring buffer during the streaming pass
   (an 8-hour recording never sits in memory).

A trace holds, per IMU present (trunk, head): the magnitude of linear acceleration (specific
force minus gravity) in g and the magnitude of angular velocity in °/s, with times in
seconds relative to the jolt's peak. Gravity is removed with the sensor's orientation from
the stream (for event windows: the stream sample nearest each raw sample); only when the
stream around a window is missing is gravity the mean specific force of the window's
pre-trigger samples (biased low for slow pulses such as braking, which ramp up before the
trigger).
"""

from __future__ import annotations

import numpy as np

from .. import quat

G = 9.80665
STREAM_PRE_S = 1.0
STREAM_POST_S = 2.0
MATCH_MARGIN_S = 1.0  # an event window belongs to a jolt if its trigger is this close to the event span


def _mags(lin_ms2: np.ndarray, gyr_rads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, k, 3) m/s², rad/s → (n, k) g and °/s, float32."""
    return ((np.linalg.norm(lin_ms2, axis=-1) / G).astype(np.float32),
            np.degrees(np.linalg.norm(gyr_rads, axis=-1)).astype(np.float32))


def _trace(source: str, rate_hz: float, t_rel_s: np.ndarray, acc_g: np.ndarray, gyr_dps: np.ndarray,
           roles: tuple[str, ...]) -> dict:
    out = {"source": source, "rate_hz": float(rate_hz), "t_rel_s": np.round(t_rel_s, 4).tolist()}
    for k, role in enumerate(roles):
        out[f"{role}_acc_g"] = np.round(acc_g[:, k].astype(float), 4).tolist()
        out[f"{role}_gyr_dps"] = np.round(gyr_dps[:, k].astype(float), 2).tolist()
    return out


class StreamTraces:
    """Ring buffer of the stream's last seconds; snapshots around jolt candidates.

    Args:
        rate_hz: stream sample rate, Hz.
        roles: IMU roles in wire order.
        keep_s: seconds kept (longest event the jolt detector measures, plus margins).
        gyro_offset_rads: zero-rate offset per IMU (k, 3), rad/s, removed from angular
            velocities (calibration); None: none.
    """

    def __init__(self, rate_hz: float, roles: tuple[str, ...], keep_s: float, gyro_offset_rads=None):
        self.rate = rate_hz
        self.roles = roles
        off = np.zeros((len(roles), 3)) if gyro_offset_rads is None else np.asarray(gyro_offset_rads, float)
        self.gyro_offset = off if off.shape == (len(roles), 3) else np.zeros((len(roles), 3))
        self.keep = int((keep_s + STREAM_PRE_S + STREAM_POST_S) * rate_hz) + 1
        self.ring: dict[str, np.ndarray] | None = None
        self.snaps: dict[int, tuple | None] = {}  # peak sample index → (trace, sample indices, orientations)

    def feed(self, index: np.ndarray, q_sensor: np.ndarray, acc: np.ndarray, gyr: np.ndarray,
             peaks_s: list[float]) -> None:
        """Add one block (arrays [sample, imu, axis]: quaternion, m/s², rad/s); snapshot the
        stream around each peak time in ``peaks_s`` (seconds from the first sample) not yet taken."""
        block = {"index": index, "q": q_sensor, "acc": acc, "gyr": gyr}
        want = [int(round(p * self.rate)) for p in peaks_s]
        want = [i for i in want if i not in self.snaps]
        if want:
            data = block if self.ring is None else {k: np.concatenate([self.ring[k], v]) for k, v in block.items()}
            for i in want:
                self.snaps[i] = self._cut(data, i)
        else:
            data = block if self.ring is None else {k: np.concatenate([self.ring[k], v[-self.keep:]])
                                                    for k, v in block.items()}
        self.ring = {k: v[-self.keep:] for k, v in data.items()}

    def _cut(self, data: dict, peak: int) -> tuple | None:
        idx = data["index"]
        lo = np.searchsorted(idx, peak - int(STREAM_PRE_S * self.rate))
        hi = np.searchsorted(idx, peak + int(STREAM_POST_S * self.rate), side="right")
        if hi - lo < 2:
            return None
        q, acc, gyr = data["q"][lo:hi], data["acc"][lo:hi], data["gyr"][lo:hi]
        lin = quat.rotate(q, acc) - np.array([0.0, 0.0, G])
        a, w = _mags(lin, gyr - self.gyro_offset)
        return _trace("stream", self.rate, (idx[lo:hi] - peak) / self.rate, a, w, self.roles), idx[lo:hi], q

    def snapshot(self, t_s: float, tol_s: float = 0.5) -> tuple | None:
        """(trace, sample indices, orientations) of the snapshot whose peak is nearest ``t_s``
        (within ``tol_s``); else a cut from the ring buffer (jolts measured after the last
        block), or None."""
        if self.snaps:
            i = min(self.snaps, key=lambda k: abs(k / self.rate - t_s))
            if abs(i / self.rate - t_s) <= tol_s and self.snaps[i] is not None:
                return self.snaps[i]
        if self.ring is not None and len(self.ring["index"]):
            return self._cut(self.ring, int(round(t_s * self.rate)))
        return None

    def near(self, t_s: float, tol_s: float = 0.5) -> dict | None:
        """The stream trace around the peak nearest ``t_s`` (see :meth:`snapshot`), or None."""
        snap = self.snapshot(t_s, tol_s)
        return None if snap is None else snap[0]

    def gravity(self, t_abs_s: np.ndarray, tol_s: float = 0.05) -> np.ndarray | None:
        """Gravity in each sensor's frame (m/s², (n, k, 3)) at the times ``t_abs_s`` (seconds
        from the first sample), from the stream orientation nearest each time; None when
        the stream does not cover them (within ``tol_s``)."""
        snap = self.snapshot(float(np.mean(t_abs_s)), tol_s=STREAM_POST_S + STREAM_PRE_S)
        if snap is None:
            return None
        _, idx, q = snap
        want = t_abs_s * self.rate
        pos = np.clip(np.searchsorted(idx, want), 1, len(idx) - 1)
        pos -= (want - idx[pos - 1]) < (idx[pos] - want)
        if np.abs(idx[pos] - want).max() > tol_s * self.rate:
            return None
        qn = q[pos]  # (n, k, 4)
        return quat.rotate(quat.conj(qn), np.broadcast_to([0.0, 0.0, G], qn.shape[:-1] + (3,)))


def event_windows(events: list, t0_ms: float | None) -> list[dict]:
    """Reassemble EVENT packets into windows.

    Returns:
        One dict per window: ``trigger_s`` (seconds from the recording's first sample),
        ``rate_hz``, ``roles``, ``complete`` (every sample arrived), ``acc`` (m/s²) and
        ``gyr`` (rad/s) as (n, k, 3), ``t_trig_s`` (n,) times relative to the trigger and
        ``pre_grav`` (k, 3) the mean pre-trigger specific force. Missing samples are NaN.
    """
    if not events or t0_ms is None:
        return []
    by_key: dict[tuple[int, int], list] = {}
    for e in events:
        by_key.setdefault((e.event_id, e.trigger_t_ms), []).append(e)
    out = []
    for parts in by_key.values():
        p0 = parts[0]
        k = p0.acc.shape[1]
        acc = np.full((p0.total, k, 3), np.nan)
        gyr = np.full((p0.total, k, 3), np.nan)
        for p in parts:
            if p.total != p0.total or p.acc.shape[1] != k:
                continue  # inconsistent part of a reused id: skip it
            acc[p.first_index: p.first_index + p.count] = p.acc
            gyr[p.first_index: p.first_index + p.count] = p.gyr
        pre = acc[: max(p0.pre_trigger, 1)]
        if np.isnan(pre).all():
            continue  # no pre-trigger samples: gravity unknown
        out.append({
            "trigger_s": (p0.trigger_t_ms - t0_ms) / 1000.0, "rate_hz": float(p0.rate_hz), "roles": p0.roles,
            "complete": not np.isnan(acc).any(), "acc": acc, "gyr": gyr, "pre_grav": np.nanmean(pre, axis=0),
            "t_trig_s": (np.arange(p0.total) - p0.pre_trigger) / float(p0.rate_hz),
        })
    return sorted(out, key=lambda w: w["trigger_s"])


def attach(jolts: list, windows: list[dict], stream: StreamTraces | None) -> None:
    """Set ``jolt.trace`` for each jolt: its event window when one triggered within
    ``MATCH_MARGIN_S`` of the jolt's span (nearest to the peak), else the stream snapshot
    around its peak, else None. Times in the trace are relative to the jolt's peak."""
    for j in jolts:
        near = [w for w in windows if j.start_s - MATCH_MARGIN_S <= w["trigger_s"] <= j.end_s + MATCH_MARGIN_S
                and (~np.isnan(w["acc"]).any(axis=(1, 2))).sum() >= 2]  # a trace needs two samples
        if near:
            w = min(near, key=lambda w: abs(w["trigger_s"] - j.peak_t_s))
            ok = ~np.isnan(w["acc"]).any(axis=(1, 2))
            t_abs = w["trigger_s"] + w["t_trig_s"][ok]
            grav = stream.gravity(t_abs) if stream is not None else None
            if grav is None or grav.shape[1] != w["acc"].shape[1]:
                grav = w["pre_grav"]
            off = stream.gyro_offset if stream is not None and stream.gyro_offset.shape[0] == w["acc"].shape[1] else 0.0
            a, g = _mags(w["acc"][ok] - grav, w["gyr"][ok] - off)
            tr = _trace("event window", w["rate_hz"], t_abs - j.peak_t_s, a, g, w["roles"])
            tr["complete"] = bool(w["complete"])
            j.trace = tr
        elif stream is not None:
            # the snapshot taken at the candidate's peak; a manoeuvre's time (the centre of its
            # plateau) may lie further from it than the default tolerance: then the nearest
            # snapshot within the jolt's span, its times made relative to the jolt's own peak
            j.trace = stream.near(j.peak_t_s)
            if j.trace is not None:
                j.trace = dict(j.trace, complete=True)
            elif (snap := stream.snapshot(j.peak_t_s, tol_s=max(j.end_s - j.start_s, 0.0) + 1.0)) is not None:
                tr, idx, _ = snap
                j.trace = dict(tr, t_rel_s=np.round(idx / stream.rate - j.peak_t_s, 4).tolist(), complete=True)
