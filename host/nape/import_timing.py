"""Irregular sample times → a fixed rate, for importing logs whose clocks jitter (protocol/IMPORT.md 1.3).

Phone and research loggers stamp each sample with the time it was read, which wanders around
the nominal period (a 20 Hz phone log: steps from 17 to 80 ms). The analysis runs on one
fixed rate, so such rows are resampled onto the grid ``t0 + k × period`` by linear
interpolation between the two rows around each grid point, streaming (one row carried
between blocks). A stretch between two rows longer than ``gap_s`` is not interpolated
across: its grid points are left out (the recording then has a gap there, with its reason).
Rows repeating the previous row's time are dropped (the first one is kept).

Single-row glitches are dropped before interpolating (:meth:`GridResampler.despike`): a row
that the analysis would mask or replace as a glitch at the file's own rate (nape.analysis:
``quality.GlitchGuard``, and from 50 Hz the jolt detector's one-sample rule) — one IMU's
acceleration or angular velocity far from both neighbouring rows. Interpolated onto the grid,
such a row would become two or three smaller samples that no longer look like one bad sample,
and the analysis would take them for a shock or, through the orientation filter, for a tilt;
dropped, the grid points around it are interpolated from its neighbours, which is what the
analysis does with a glitch it recognises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REASON_SOURCE_GAP = "missing in the imported file"


@dataclass
class TimingStats:
    """How much the rows' timing differed from the grid (for the recording header)."""

    rows: int = 0
    duplicates: int = 0  # rows dropped: same time as the row before
    steps: int = 0
    abs_dev_sum_s: float = 0.0  # sum of |step − period|
    max_dev_s: float = 0.0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # [from_k, to_k) grid points left out

    def as_dict(self, period_s: float) -> dict:
        mean = self.abs_dev_sum_s / self.steps if self.steps else 0.0
        return {"rows": self.rows, "duplicate_rows_dropped": self.duplicates,
                "mean_abs_jitter_ms": round(mean * 1e3, 3), "max_abs_jitter_ms": round(self.max_dev_s * 1e3, 3),
                "mean_abs_jitter_share": round(mean / period_s, 4) if period_s else None,
                "gaps": len(self.gaps), "gap_samples": int(sum(b - a for a, b in self.gaps))}


class GridResampler:
    """Streams (time, values) blocks onto the grid ``t0 + k × period_s``.

    Args:
        period_s: grid period, s.
        gap_s: rows further apart than this are not interpolated across.
        t0: grid origin, s (default: the first row's time).
        next_k: first grid index still to produce (continuing a recording).
    """

    def __init__(self, period_s: float, gap_s: float, t0: float | None = None, next_k: int = 0):
        self.period = period_s
        self.gap = gap_s
        self.t0 = t0
        self.next_k = next_k
        self.prev: tuple[float, np.ndarray] | None = None
        self.stats = TimingStats()
        self.planned: dict = {}  # figures worked out before (the importer's first pass), for the header
        self.span_s = 0.0
        self.spike: tuple[float, float] | None = None  # (acc m/s², gyr rad/s) once despike() is called
        self.held: tuple[np.ndarray, np.ndarray] | None = None  # the last row, waiting for its next neighbour
        self.spikes = 0  # rows dropped as single-row glitches

    def despike(self, acc_ms2: float, gyr_rads: float | None, acc_axis_ms2: float | None = None) -> None:
        """From now on drop single-row glitches before interpolating; the columns are 6 per IMU
        (acc x y z, gyr x y z, as nape.importer). A row is one when, for one IMU, its
        acceleration differs from both neighbouring rows by more than ``acc_ms2`` while they
        agree within a quarter of that, likewise its angular velocity with ``gyr_rads`` (None:
        not judged), or one axis of its acceleration lies more than ``acc_axis_ms2`` beyond both
        neighbours on the same side (None: not judged). Each block's last row then waits for the
        next block: call :meth:`finish` after the last one."""
        self.spike = (float(acc_ms2), None if gyr_rads is None else float(gyr_rads),
                      None if acc_axis_ms2 is None else float(acc_axis_ms2))

    def _despiked(self, t: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows ready to interpolate: the held row and ``t`` but the last (held now), less spikes."""
        if self.held is not None:
            t = np.concatenate([self.held[0], t])
            vals = np.concatenate([self.held[1], vals])
        if len(t) == 0:
            return t, vals
        self.held = (t[-1:].copy(), vals[-1:].copy())
        left = 1 if self.prev is not None else 0
        cv = np.concatenate([self.prev[1][None], vals]) if left else vals
        bad = np.zeros(len(cv), bool)
        if len(cv) >= 3:
            acc_lim, gyr_lim, axis_lim = self.spike
            for c0 in range(0, cv.shape[1] - 2, 3):
                is_acc = (c0 // 3) % 2 == 0
                x = cv[:, c0:c0 + 3]
                dx = np.diff(x, axis=0)
                if is_acc and axis_lim is not None:  # one axis beyond both neighbours, same side
                    up = (dx[:-1] > axis_lim) & (-dx[1:] > axis_lim)
                    down = (-dx[:-1] > axis_lim) & (dx[1:] > axis_lim)
                    bad[1:-1] |= (up | down).any(axis=1)
                lim = acc_lim if is_acc else gyr_lim
                if lim is None:
                    continue
                step = np.einsum("ij,ij->i", dx, dx) > lim * lim
                for i in np.flatnonzero(step[:-1] & step[1:]) + 1:  # rare: the neighbours must agree
                    d = x[i + 1] - x[i - 1]
                    bad[i] |= float(d @ d) < (lim / 4) ** 2
        bad[-1] = False  # held: judged with the next block
        keep = ~bad[left:]
        self.spikes += int((~keep[:-1]).sum())
        return t[:-1][keep[:-1]], vals[:-1][keep[:-1]]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid points up to the held row (the file's last, judged by range only), after
        :meth:`despike`; empty otherwise."""
        if self.held is None:
            return np.zeros(0, np.int64), np.zeros((0, 0))
        t, vals = self.held
        self.held, spike, self.spike = None, self.spike, None
        try:
            self.stats.rows -= len(t)  # counted when it came
            return self.feed(t, vals)
        finally:
            self.spike = spike

    @property
    def gaps_seen(self) -> list[tuple[int, int]]:
        """[from_k, to_k) gaps produced so far."""
        return self.stats.gaps

    def place(self, t: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values already on this grid (times ``t0 + k × period``): their indices, gaps noted."""
        k = np.rint((np.asarray(t, float) - self.t0) / self.period).astype(np.int64)
        if len(k):
            prev = self.next_k - 1 if self.next_k else int(k[0]) - 1
            steps = np.diff(np.concatenate([[prev], k]))
            for i in np.flatnonzero(steps > 1):
                self.stats.gaps.append((int(k[i] - steps[i] + 1), int(k[i])))
            self.next_k = int(k[-1]) + 1
        return k, vals

    def feed(self, t: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid indices (m,) and interpolated values (m, columns) for the rows ``t`` (n,) s,
        ``vals`` (n, columns); times must not decrease (checked by the caller)."""
        t = np.asarray(t, float)
        vals = np.asarray(vals, float)
        self.stats.rows += len(t)
        if self.spike is not None:
            t, vals = self._despiked(t, vals)
            if len(t) == 0:
                return np.zeros(0, np.int64), np.zeros((0, vals.shape[1]))
        if self.prev is not None:
            t = np.concatenate([[self.prev[0]], t])
            vals = np.concatenate([self.prev[1][None], vals])
        keep = np.concatenate([[True], np.diff(t) > 0])
        self.stats.duplicates += int((~keep).sum())
        t, vals = t[keep], vals[keep]
        if self.t0 is None:
            self.t0 = float(t[0])
        dt = np.diff(t)
        if len(dt):
            dev = np.abs(dt - self.period)
            self.stats.steps += len(dt)
            self.stats.abs_dev_sum_s += float(dev[dt <= self.gap].sum())
            self.stats.max_dev_s = max(self.stats.max_dev_s, float(dev[dt <= self.gap].max(initial=0.0)))
        self.prev = (float(t[-1]), vals[-1].copy())
        last_k = int(np.floor((t[-1] - self.t0) / self.period + 1e-9))
        if last_k < self.next_k:
            return np.zeros(0, np.int64), np.zeros((0, vals.shape[1]))
        k = np.arange(self.next_k, last_k + 1, dtype=np.int64)
        g = self.t0 + k * self.period
        j = np.clip(np.searchsorted(t, g, side="right") - 1, 0, max(len(t) - 2, 0))
        span = t[np.minimum(j + 1, len(t) - 1)] - t[j]
        ok = (span <= self.gap) | (np.abs(g - t[j]) < 1e-9)
        self.next_k = last_k + 1
        self._note_gaps(k, ok)
        k, g = k[ok], g[ok]
        out = np.stack([np.interp(g, t, vals[:, c]) for c in range(vals.shape[1])], axis=1) if len(k) else \
            np.zeros((0, vals.shape[1]))
        return k, out

    def _note_gaps(self, k: np.ndarray, ok: np.ndarray) -> None:
        gaps = self.stats.gaps
        for i in np.flatnonzero(~ok):
            kk = int(k[i])
            if gaps and gaps[-1][1] == kk:
                gaps[-1] = (gaps[-1][0], kk + 1)
            else:
                gaps.append((kk, kk + 1))
