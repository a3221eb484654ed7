"""Analysis v0: one .nape recording in, findings out, chunk by chunk.

``analyse(path, settings)`` is a pure function of the file (so many recordings can be
analysed in parallel) that reads it in blocks of packets (so an 8-hour recording never
sits in memory at once: only a 10 Hz posture series and the sparse jolt candidates do).

Angles (degrees, ISO 11226 definitions, docs/CONVENTIONS.md):
- segment inclination: pitch of the segment's forward (x) axis below horizontal,
  relative to the neutral posture (flexion / forward positive);
- neck flexion: head inclination − trunk inclination;
- lateral: roll of the segment's left (y) axis, right-side bend positive.
Jolts: peaks of linear acceleration (specific force rotated to the world frame, gravity
removed), graded by ``AnalysisSettings``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from . import quat, wire
from .errors import RecordingError
from .recording import open_recording
from .settings import AnalysisSettings

G = 9.80665
SERIES_HZ = 10.0  # posture series rate kept in memory
BATCH_PACKETS = 4000


@dataclass
class PostureEpisode:
    """A poor posture held at least ``hold_s``."""

    kind: str  # "neck_flexion" or "trunk_inclination"
    start_s: float
    end_s: float
    mean_deg: float
    peak_deg: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Jolt:
    """A jarring movement: a short peak of linear acceleration."""

    t_s: float  # time of the peak, s from recording start
    start_s: float
    end_s: float
    cause: str  # braking, acceleration, bump, lateral, rear_impact_like
    grade: str  # mild, moderate, severe
    peak_trunk_g: float
    peak_head_g: float
    peak_head_dps: float


@dataclass
class Findings:
    """Everything the report shows. Times are seconds from the recording's first sample."""

    path: str
    metadata: dict
    settings: dict
    duration_s: float
    samples: int
    lost_samples: int
    malformed_packets: int
    file_issues: list[dict]
    calibration: dict
    roles: list[str]
    episodes: list[PostureEpisode] = field(default_factory=list)
    jolts: list[Jolt] = field(default_factory=list)
    head_turns: int = 0
    lying_s: float = 0.0
    exposure_s: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)  # 1 Hz: t_s, neck_flexion_deg, trunk_inclination_deg, ...

    def as_dict(self) -> dict:
        d = asdict(self)
        for e, ep in zip(d["episodes"], self.episodes):
            e["duration_s"] = ep.duration_s
        return d


# ---------------------------------------------------------------- reading


def _packet_batches(rec, batch: int = BATCH_PACKETS) -> Iterator[list[bytes]]:
    buf: list[bytes] = []
    for _t, packet in rec.iter_packets():
        buf.append(packet)
        if len(buf) >= batch:
            yield buf
            buf = []
    if buf:
        yield buf


@dataclass
class _Clock:
    """Unwraps 32-bit sequence numbers into a continuous sample index."""

    offset: int = 0
    last: int | None = None
    first: int | None = None

    def unwrap(self, seq: np.ndarray) -> np.ndarray:
        seq = seq.astype(np.int64)
        out = np.empty_like(seq)
        # wraps inside the block: a drop by more than 2^31
        wraps = np.concatenate([[0], np.cumsum(np.diff(seq) < -(1 << 31))]) << 32
        if self.last is not None and seq[0] - self.last < -(1 << 31):
            self.offset += 1 << 32
        out[:] = seq + wraps + self.offset
        self.offset += int(wraps[-1])
        self.last = int(seq[-1])
        if self.first is None:
            self.first = int(out[0])
        return out - self.first


def _angles(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pitch (forward +), roll (right bend +) in degrees and tilt of the z axis from vertical."""
    x_w = quat.axis_in_world(q, 0)
    y_w = quat.axis_in_world(q, 1)
    z_w = quat.axis_in_world(q, 2)
    pitch = np.degrees(np.arcsin(np.clip(-x_w[..., 2], -1, 1)))
    roll = np.degrees(np.arcsin(np.clip(y_w[..., 2], -1, 1)))
    tilt = np.degrees(np.arccos(np.clip(z_w[..., 2], -1, 1)))
    return pitch, roll, tilt


# ---------------------------------------------------------------- main entry


def analyse(
    path: Path | str,
    settings: AnalysisSettings | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Findings:
    """Analyse one recording.

    Args:
        path: a .nape file.
        settings: thresholds; defaults documented in :mod:`nape.settings`.
        on_progress: called with (bytes read so far, file size).

    Raises:
        RecordingError: the file cannot be read or holds no samples.
    """
    s = settings or AnalysisSettings()
    path = Path(path)
    rec = open_recording(path)
    size = path.stat().st_size
    roles = list(rec.metadata.get("imu_roles") or ["trunk"])
    mask = sum(bit for r, bit in wire.ROLE_BITS if r in roles)
    neutral = _neutral(open_recording(path), mask, s)
    state = _Stream(s, mask, neutral)
    malformed = 0
    for batch in _packet_batches(rec):
        arrays, errors = wire.decode_samples_many(batch)
        malformed += len(errors)
        if mask in arrays:
            state.feed(arrays[mask])
        if on_progress:
            on_progress(min(size, rec.bytes_read if hasattr(rec, "bytes_read") else size), size)
    if state.n == 0:
        raise RecordingError(f"{path}: no samples for IMUs {roles} in this recording")
    return state.finish(path, rec, roles, malformed)


def _neutral(rec, mask: int, s: AnalysisSettings) -> dict:
    """Median pitch/roll of each segment over the first ``neutral_window_s`` seconds."""
    pitches, rolls, n_needed = [], [], None
    for batch in _packet_batches(rec, 500):
        arrays, _ = wire.decode_samples_many(batch)
        if mask not in arrays:
            continue
        a = arrays[mask]
        if n_needed is None:
            n_needed = max(1, int(s.neutral_window_s * 1e6 / a.period_us[0]))
        p, r, _ = _angles(a.quat)
        pitches.append(p)
        rolls.append(r)
        if sum(len(x) for x in pitches) >= n_needed:
            break
    if not pitches:
        return {"method": "none", "pitch_deg": [0.0, 0.0], "roll_deg": [0.0, 0.0]}
    p = np.concatenate(pitches)[:n_needed]
    r = np.concatenate(rolls)[:n_needed]
    return {
        "method": f"first {s.neutral_window_s:g} s assumed upright (no calibration captured)",
        "pitch_deg": np.median(p, axis=0).tolist(),
        "roll_deg": np.median(r, axis=0).tolist(),
    }


class _Stream:
    """Block-by-block state: filters with carried state, the 10 Hz series, jolt runs."""

    def __init__(self, s: AnalysisSettings, mask: int, neutral: dict):
        self.s = s
        self.mask = mask
        self.roles = wire.roles_of(mask)
        self.neutral_pitch = np.array(neutral["pitch_deg"][: len(self.roles)])
        self.neutral_roll = np.array(neutral["roll_deg"][: len(self.roles)])
        self.neutral = neutral
        self.clock = _Clock()
        self.n = 0
        self.rate_hz: float | None = None
        self.series: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "pitch", "roll", "tilt")}
        self.runs: list[dict] = []
        self.last_index = -1
        self.lost = 0

    def _setup(self, period_us: int) -> None:
        self.rate_hz = 1e6 / period_us
        self.step = max(1, int(round(self.rate_hz / SERIES_HZ)))
        n_ch = len(self.roles)
        self.sos_post = signal.butter(2, self.s.posture_lowpass_hz, fs=self.rate_hz, output="sos")
        self.zi_post = None
        cut = min(self.s.jolt_lowpass_hz, 0.45 * self.rate_hz)
        self.sos_jolt = signal.butter(2, cut, fs=self.rate_hz, output="sos")
        self.zi_jolt = None
        self.n_ch = n_ch

    def feed(self, a: wire.SampleArrays) -> None:
        if self.rate_hz is None:
            self._setup(int(a.period_us[0]))
        idx = self.clock.unwrap(a.seq)
        gaps = np.diff(np.concatenate([[self.last_index], idx])) - 1
        self.lost += int(gaps[gaps > 0].sum())
        self.last_index = int(idx[-1])
        self.n += len(idx)
        t = idx / self.rate_hz
        pitch, roll, tilt = _angles(a.quat)  # (n, n_imu)
        pitch = pitch - self.neutral_pitch
        roll = roll - self.neutral_roll
        block = np.concatenate([pitch, roll], axis=1)
        if self.zi_post is None:
            self.zi_post = signal.sosfilt_zi(self.sos_post)[:, :, None] * block[0][None, None, :]
        smooth, self.zi_post = signal.sosfilt(self.sos_post, block, axis=0, zi=self.zi_post)
        keep = idx % self.step == 0
        k = self.n_ch
        self.series["t"].append(t[keep])
        self.series["pitch"].append(smooth[keep, :k])
        self.series["roll"].append(smooth[keep, k:])
        self.series["tilt"].append(tilt[keep])
        self._jolt_runs(a, t)

    def _jolt_runs(self, a: wire.SampleArrays, t: np.ndarray) -> None:
        lin = quat.rotate(a.quat, a.acc) - np.array([0.0, 0.0, G])  # (n, n_imu, 3) world, m/s^2
        flat = lin.reshape(len(t), -1)
        if self.zi_jolt is None:
            self.zi_jolt = np.zeros((self.sos_jolt.shape[0], 2, flat.shape[1]))
        filt, self.zi_jolt = signal.sosfilt(self.sos_jolt, flat, axis=0, zi=self.zi_jolt)
        lin = filt.reshape(lin.shape)
        mag_g = np.linalg.norm(lin, axis=2) / G  # (n, n_imu)
        above = (mag_g > self.s.jolt_trigger_g).any(axis=1)
        if not above.any():
            return
        edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
        gyr_dps = np.degrees(np.linalg.norm(a.gyr, axis=2))  # (n, n_imu)
        fwd = quat.axis_in_world(a.quat[:, 0], 0)
        for i0, i1 in zip(edges[::2], edges[1::2]):
            seg = slice(i0, i1)
            m = mag_g[seg]
            ipk = i0 + int(np.argmax(m.max(axis=1)))
            run = {
                "start_s": float(t[i0]), "end_s": float(t[i1 - 1]), "t_s": float(t[ipk]),
                "peak": m.max(axis=0).tolist(), "peak_dps": gyr_dps[seg].max(axis=0).tolist(),
                "lin_trunk": lin[ipk, 0].tolist(), "fwd": fwd[ipk].tolist(),
            }
            self.runs.append(run)

    # ------------------------------------------------------------ finishing

    def finish(self, path: Path, rec, roles: list[str], malformed: int) -> Findings:
        s = self.s
        t = np.concatenate(self.series["t"])
        pitch = np.concatenate(self.series["pitch"])
        roll = np.concatenate(self.series["roll"])
        tilt = np.concatenate(self.series["tilt"])
        lying = tilt[:, 0] > s.lying_trunk_deg
        trunk_incl = pitch[:, 0]
        has_head = "head" in roles and "trunk" in roles
        neck = pitch[:, 1] - pitch[:, 0] if has_head else None
        dt = 1.0 / SERIES_HZ
        episodes = []
        if neck is not None:
            episodes += _episodes("neck_flexion", t, neck, lying, s.neck_flexion_deg, s)
        episodes += _episodes("trunk_inclination", t, trunk_incl, lying, s.trunk_inclination_deg, s)
        episodes.sort(key=lambda e: e.start_s)
        jolts, head_turns = _jolts(self.runs, s)
        exposure = {"trunk_over_threshold_s": float(((trunk_incl > s.trunk_inclination_deg) & ~lying).sum() * dt)}
        if neck is not None:
            exposure["neck_over_threshold_s"] = float(((neck > s.neck_flexion_deg) & ~lying).sum() * dt)
            bands = [(-90, 0), (0, 10), (10, 20), (20, 45), (45, 180)]
            exposure["neck_bands_s"] = {
                f"{lo}..{hi}": float(((neck >= lo) & (neck < hi) & ~lying).sum() * dt) for lo, hi in bands
            }
        series = _one_hz(t, trunk_incl, neck, lying)
        return Findings(
            path=str(path),
            metadata=rec.metadata,
            settings=s.as_dict(),
            duration_s=float(self.last_index + 1) / self.rate_hz,
            samples=self.n,
            lost_samples=self.lost,
            malformed_packets=malformed,
            file_issues=[{"offset": i.offset, "kind": i.kind, "detail": i.detail} for i in rec.issues],
            calibration=self.neutral,
            roles=roles,
            episodes=episodes,
            jolts=jolts,
            head_turns=head_turns,
            lying_s=float(lying.sum() * dt),
            exposure_s=exposure,
            series=series,
        )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _episodes(kind, t, angle, lying, threshold, s: AnalysisSettings) -> list[PostureEpisode]:
    """Episodes with hysteresis: enter above threshold, leave below threshold − hysteresis
    for longer than ``end_grace_s``; keep those lasting ``hold_s`` or more."""
    high = (angle > threshold) & ~lying
    still_high = (angle > threshold - s.hysteresis_deg) & ~lying
    out = []
    dt = 1.0 / SERIES_HZ
    grace = int(round(s.end_grace_s / dt))
    raw = _runs(high)
    # extend each run while the angle stays above the exit level
    merged: list[list[int]] = []
    for i0, i1 in raw:
        while i1 < len(angle) and still_high[i1]:
            i1 += 1
        if merged and i0 - merged[-1][1] <= grace:
            merged[-1][1] = max(merged[-1][1], i1)
        else:
            merged.append([i0, i1])
    for i0, i1 in merged:
        dur = (i1 - i0) * dt
        if dur >= s.hold_s:
            seg = angle[i0:i1]
            out.append(PostureEpisode(kind, float(t[i0]), float(t[i1 - 1] + dt), float(seg.mean()), float(seg.max())))
    return out


def _grade(peak_g: float, s: AnalysisSettings) -> str:
    if peak_g >= s.jolt_severe_g:
        return "severe"
    if peak_g >= s.jolt_moderate_g:
        return "moderate"
    return "mild"


def _jolts(runs: list[dict], s: AnalysisSettings) -> tuple[list[Jolt], int]:
    """Merge threshold runs into events, drop voluntary head turns, classify and grade."""
    events: list[list[dict]] = []
    for r in sorted(runs, key=lambda r: r["start_s"]):
        if events and r["start_s"] - events[-1][-1]["end_s"] <= s.jolt_merge_s:
            events[-1].append(r)
        else:
            events.append([r])
    jolts, head_turns = [], 0
    for ev in events:
        if ev[-1]["end_s"] - ev[0]["start_s"] > s.jolt_max_s:
            continue  # rhythmic or sustained motion, e.g. walking
        peaks = np.max([r["peak"] for r in ev], axis=0)
        dps = np.max([r["peak_dps"] for r in ev], axis=0)
        trunk_g = float(peaks[0])
        head_g = float(peaks[-1]) if len(peaks) > 1 else float("nan")
        head_dps = float(dps[-1]) if len(dps) > 1 else float("nan")
        if len(peaks) > 1 and trunk_g < s.jolt_trigger_g and head_dps > s.head_turn_dps:
            head_turns += 1
            continue
        best = max(ev, key=lambda r: r["peak"][0])
        jolts.append(Jolt(
            t_s=best["t_s"], start_s=ev[0]["start_s"], end_s=ev[-1]["end_s"],
            cause=_cause(best, trunk_g, s), grade=_grade(trunk_g, s),  # vehicle-side peak: the braking/shock literature grades that
            peak_trunk_g=trunk_g, peak_head_g=head_g, peak_head_dps=head_dps,
        ))
    return jolts, head_turns


def _cause(run: dict, trunk_g: float, s: AnalysisSettings) -> str:
    a = np.array(run["lin_trunk"])
    fwd = np.array(run["fwd"])
    fwd_h = fwd[:2] / max(np.linalg.norm(fwd[:2]), 1e-9)
    along = float(a[:2] @ fwd_h)
    across = float(abs(a[0] * -fwd_h[1] + a[1] * fwd_h[0]))
    if abs(a[2]) > np.hypot(along, across):
        return "bump"
    if across > abs(along):
        return "lateral"
    if along < 0:
        return "braking"
    return "rear_impact_like" if trunk_g >= s.jolt_severe_g else "acceleration"


def _one_hz(t, trunk, neck, lying) -> dict:
    """Per-second means for plots and JSON (8 h = 28 800 points)."""
    sec = np.floor(t).astype(np.int64)
    uniq, inv = np.unique(sec, return_inverse=True)
    cnt = np.bincount(inv)

    def mean(x):
        return np.round(np.bincount(inv, weights=x) / cnt, 2).tolist()

    out = {"t_s": uniq.astype(float).tolist(), "trunk_inclination_deg": mean(trunk),
           "lying": (np.bincount(inv, weights=lying) / cnt > 0.5).tolist()}
    if neck is not None:
        out["neck_flexion_deg"] = mean(neck)
    return out
