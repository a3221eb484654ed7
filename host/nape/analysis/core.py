"""``analyse``: one .nape recording in, :class:`Findings` out, chunk by chunk.

A pure function of the file (many recordings can be analysed in parallel) that streams
it in blocks of packets: an 8-hour recording never sits in memory; only a 10 Hz angle
series, per-second context sums and the sparse jolt candidates do.

Passes: (1) calibration reads the first minutes (neutral posture); (2) one streaming pass
re-fuses orientation (VQF), aligns sensors to body segments, computes angles, context
features and jolt candidates; (3) finishing works on the 10 Hz series: heading alignment,
neck joint angles, posture episodes, ISO 11226, RULA, exposure.

Mixed-rate recordings (the board's offline day log, :mod:`.stream`): in a reduced-rate span
(LOG samples: both IMUs' orientation only, 10 Hz) posture comes from the board's own
quaternions, aligned to the body segments with the same calibration, low-passed at the
same ``posture_lowpass_hz`` and kept at the same 10 Hz series rate as the full-rate path;
lying and its side come from the trunk's orientation as at full rate. What needs the
accelerometer and gyroscope is not measured there: walking and vehicle context, and jolt
detection from the stream — jolts there come only from the board's EVENT windows
(:mod:`.window_jolts`). Re-fusion restarts (a fresh VQF) where full rate resumes, and the
head–trunk heading offset is tracked per stretch of one orientation source. Posture alerts
and what the board dropped come from its MARKS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal

from .. import quat, wire
from ..errors import RecordingError
from ..recording import open_recording
from ..settings import AnalysisSettings
from . import calibration, coverage, posture, quality, traces, window_jolts
from .context import NAMES as ACTIVITY_NAMES
from .context import ContextFeatures
from .findings import Calibration, Exposure, Findings, PostureEpisode
from .jolts import JoltDetector
from .orientation import Refuser, inclination, joint_angles, segment_alignment, yaw, z_rotation
from .stream import REASON_TRANSMISSION, BlockReader

SERIES_HZ = posture.SERIES_HZ


def analyse(
    path: Path | str,
    settings: AnalysisSettings | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Findings:
    """Analyse one recording.

    Args:
        path: a .nape file.
        settings: thresholds; defaults and sources in :mod:`nape.settings`.
        on_progress: called after each block with (samples done, estimated total samples).

    Raises:
        RecordingError: the file cannot be read (a file without samples gives findings that say so).
    """
    with np.errstate(all="ignore"):  # glitches are masked, not warned about (nape.analysis.quality)
        return _analyse(Path(path), settings or AnalysisSettings(), on_progress)


def _analyse(path: Path, s: AnalysisSettings, on_progress) -> Findings:
    rec = open_recording(path)
    roles, mask, role_doubts = recording_roles(rec, path)
    n_imu = len(wire.roles_of(mask))
    calib = calibration.estimate(open_recording(path), mask, n_imu, s)
    doubts = role_doubts + quality.header_warnings(rec.metadata) + calib.input_warnings
    stream = _Stream(s, n_imu, calib)
    reader = BlockReader(rec, mask)
    expected = _expected_samples(path, mask) if on_progress else 0
    for block in stream.guard.blocks(reader):  # glitches masked before anything sees them
        stream.feed(block)
        if on_progress:
            on_progress(stream.n, max(expected, stream.n))
    if stream.n == 0 or stream.rate is None:
        f = _no_samples(path, rec, roles, reader.malformed, calib, s)
        f.input_warnings = doubts
        return f
    stream.n = reader.samples  # every recorded sample passed on (also any between grid points)
    stream.t0_ms = reader.t0_ms  # device time of the first sample (event times: see BlockReader)
    stream.take_gaps(reader)
    act_sec, _ = stream.context.classify()
    for ev in reader.events:  # the board's high-rate windows: glitches masked as in the stream
        quality.mask_event(ev, len(wire.roles_of(ev.imu_mask)), s)
    windows = traces.event_windows(reader.events, stream.t0_ms)
    full = [(a / stream.rate, b / stream.rate) for kind, a, b in stream.spans if kind == "full"]
    covered = [e for e in reader.events if window_jolts.covered((e.trigger_t_ms - stream.t0_ms) / 1000.0, full)]
    jolts, head_turns = stream.jolts.finish(covered, stream.t0_ms, walking=act_sec == 1, vehicle=act_sec == 2) \
        if stream.jolts is not None else ([], 0)
    traces.attach(jolts, [w for w in windows if window_jolts.covered(w["trigger_s"], full)], stream.traces)
    offline = window_jolts.grade_windows([w for w in windows if not window_jolts.covered(w["trigger_s"], full)],
                                         stream.board_quat, stream.align, s,
                                         np.asarray(stream.calib.gyro_offset_rad_s or np.zeros((n_imu, 3)), float))
    f = stream.finish(path, rec, roles, reader.malformed)
    f.input_warnings = doubts + repeat_warnings(reader.duplicates, reader.late, reader.samples,
                                                       reader.contradicted)
    f.jolts, f.head_turns = sorted(jolts + offline, key=lambda j: j.peak_t_s), head_turns
    for j in jolts:  # a sensor at its range during the jolt: its peak is a lower bound
        j.range_reached = [r for k, r in enumerate(roles[:n_imu])
                           if stream.guard.saturated_between(k, j.start_s * stream.rate, j.end_s * stream.rate)]
    f.rates, f.alerts = window_jolts.rates(stream, reader, len(windows), len(offline))
    return f


HEAD_ONLY_WORDS = ("Only a head sensor was recorded, no upper-back sensor: the figures labelled upper back are the "
                   "head's own inclination, and the neck's bend (head against upper back) was not measured.")


def _packet_masks(path: Path, packets: int = 2000) -> dict[int, int]:
    """Samples per IMU mask in the first ``packets`` SAMPLES packets of a recording."""
    counts: dict[int, int] = {}
    k = 0
    for _t, p in open_recording(path).iter_packets():
        if len(p) > 3 and p[1] == wire.TYPE_SAMPLES:
            counts[p[2]] = counts.get(p[2], 0) + p[3]
            k += 1
            if k >= packets:
                break
    return counts


def recording_roles(rec, path: Path) -> tuple[list[str], int, list[str]]:
    """The IMU roles to analyse, their wire mask, and doubts in plain words.

    The header's ``imu_roles`` normally decide. When the header is unreadable, lists no known IMU,
    or lists IMUs that none of the first packets carry while the packets carry others, the packets
    decide (each SAMPLES packet names its IMUs): their samples are analysed, not dropped, and the
    doubt is said. A recording of the head IMU alone is analysed with that caveat said.
    """
    raw = rec.metadata.get("imu_roles")  # a crafted header may hold anything here
    listed = [str(r) for r in raw] if isinstance(raw, list) and raw else []
    mask = sum(bit for r, bit in wire.ROLE_BITS if r in listed)
    doubts: list[str] = []
    counts = _packet_masks(path)
    valid = {m: n for m, n in counts.items() if m in (1, 2, 3)}  # trunk, head, both
    if valid and mask not in valid:
        carried = max(valid, key=valid.get)
        said = (f"lists the IMUs {', '.join(listed)}" if listed else "does not say which IMUs were recorded"
                if not rec.issues else "is damaged")
        doubts.append(f"The recording's header {said}, but its packets carry {' and '.join(wire.roles_of(carried))}: "
                      "analysed as the packets say.")
        mask = carried
    if not mask:
        mask = 1
    roles = listed if listed and not doubts else list(wire.roles_of(mask))  # the header's words when they hold
    if list(wire.roles_of(mask)) == ["head"]:
        doubts.append(HEAD_ONLY_WORDS)
    return roles, mask, doubts


def repeat_warnings(duplicates: int, late: int, kept: int, contradicted: int = 0) -> list[str]:
    """Samples the ordering dropped (stream.BlockReader: ``duplicates``, ``late``) and sequence
    numbers the device clock contradicted (``contradicted``), in plain words."""
    out = []
    if contradicted:
        out.append(f"The sequence number jumped {contradicted} time{'s' if contradicted != 1 else ''} while the "
                   "device clock ran on normally: read as corruption (or an unannounced reboot), not as lost "
                   "data; the samples on both sides are kept on the clock's time.")
    if duplicates:
        out.append(f"{duplicates} samples repeated the sequence number of an earlier sample and were dropped "
                   f"({kept} kept): sent twice, or a sequence counter that does not advance.")
    if late:
        out.append(f"{late} samples arrived after their place in time had been passed and were dropped "
                   "(counted as lost).")
    return out


def _no_samples(path: Path, rec, roles: list[str], malformed: int, calib: Calibration, s: AnalysisSettings) -> Findings:
    """Findings of a recording without one sample of its IMUs: nothing judged, and said so."""
    return Findings(
        path=str(path), metadata=rec.metadata, settings=s.as_dict(), duration_s=0.0, samples=0, lost_samples=0,
        malformed_packets=malformed,
        file_issues=[{"offset": i.offset, "kind": i.kind, "detail": i.detail} for i in rec.issues],
        calibration=calib, roles=roles, orientation_source="none (no samples)",
        activity_s={name: 0.0 for name in ACTIVITY_NAMES}, series=_one_hz(*(np.zeros(0),) * 6),
        valid_s=0.0, low_coverage=True, not_judged=coverage.not_judged(0.0, len(roles), s),
        glitches={"samples": 0, "by_kind": {}}, rates=window_jolts.empty_rates())


def _expected_samples(path: Path, mask: int, packets: int = 2000) -> int:
    """Estimate of the samples in a recording for progress bars: its size times the samples
    per byte of its first ``packets`` packets (chunk framing makes it a slight overestimate)."""
    n = nbytes = 0
    for k, (_t, p) in enumerate(open_recording(path).iter_packets()):
        nbytes += len(p) + 2
        if len(p) > 3 and p[1] == wire.TYPE_SAMPLES and p[2] == mask:
            n += p[3]
        if k >= packets:
            break
    return int(path.stat().st_size * n / nbytes) if nbytes else 0


class _Stream:
    """State of the streaming pass."""

    def __init__(self, s: AnalysisSettings, n_imu: int, calib: Calibration):
        self.s = s
        self.n_imu = n_imu
        self.calib = calib
        self.align = [segment_alignment(np.asarray(q, float)) for q in calib.neutral_quat_wxyz]
        self.neutral_seg = [quat.mul(np.asarray(q, float), a) for q, a in zip(calib.neutral_quat_wxyz, self.align)]
        self.n = 0
        self.rate: float | None = None
        self.t0_ms: float | None = None
        self.last_index = -1
        self.lost = 0
        self.gaps: list[dict] = []
        self.boots = 1
        self.guard = quality.GlitchGuard(n_imu, s)
        self.series: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "pitch", "tilt", "qt", "qh", "src", "bt", "bh")}
        self.spans: list[list] = []  # [kind ("full" / "reduced"), first grid index, last grid index]
        self.reduced_samples = 0
        self.board_quat: dict[str, list[np.ndarray]] = {"t_s": [], "q": []}  # day-log orientation (window jolts)
        self.board_diff: list[np.ndarray] = []  # |board − host| inclination per IMU at 10 Hz, full-rate stretches
        self._kind: str | None = None
        self._sos_log: dict[float, np.ndarray] = {}
        self.jolts = None
        self.traces = None

    def _setup(self, period_s: float) -> None:
        self.rate = 1.0 / period_s
        self.step = max(1, int(round(self.rate / SERIES_HZ)))
        self.refuser = Refuser(self.n_imu, period_s, self.calib.gyro_offset_rad_s) if self.s.fuse_on_host else None
        self.sos = signal.butter(2, self.s.posture_lowpass_hz, fs=self.rate, output="sos")
        self.zi = None
        self.context = ContextFeatures(self.rate, self.s)
        self.jolts = JoltDetector(self.rate, self.n_imu, self.s, self.calib.gyro_offset_rad_s)
        self.traces = traces.StreamTraces(self.rate, ("trunk", "head")[: self.n_imu], self.s.jolt_max_s,
                                          self.calib.gyro_offset_rad_s)
        self.runs_seen = 0

    def _span(self, kind: str, idx: np.ndarray, join: int) -> None:
        """Extend the last span of ``kind`` or start one (a gap longer than ``join`` points splits)."""
        if self.spans and self.spans[-1][0] == kind and idx[0] - self.spans[-1][2] <= join:
            self.spans[-1][2] = int(idx[-1])
        else:
            self.spans.append([kind, int(idx[0]), int(idx[-1])])

    def feed(self, b) -> None:
        """One block on the analysis grid (constant rate; stream.BlockReader resamples)."""
        self.n += b.samples  # recorded samples; lost ones are counted from the sequence numbers
        if self.rate is None:
            self._setup(b.period_s)
            self.t0_ms = float(b.t_ms[0])
        if b.reduced:
            self._feed_reduced(b)
            return
        if self._kind == "reduced":  # full rate again after the day log: fresh filters, no stale state
            self.zi = None
            if self.refuser is not None:
                self.refuser = Refuser(self.n_imu, 1.0 / self.rate, self.calib.gyro_offset_rad_s)
        self._kind = "full"
        self._span("full", b.index, int(self.rate))
        idx = b.index
        self.last_index = int(idx[-1])
        q_fw, acc, gyr = b.quat, b.acc, b.gyr  # glitches already masked (quality.GlitchGuard.blocks)
        q_sensor = self.refuser(acc, gyr) if self.refuser else q_fw
        q_seg = np.stack([quat.mul(q_sensor[:, k], self.align[k]) for k in range(self.n_imu)], axis=1)
        pitch, _roll, tilt = inclination(q_seg)
        fwd_up = quat.axis_in_world(q_seg[:, 0], 0)[:, 2]
        self.context.feed(idx, acc[:, 0], tilt[:, 0], fwd_up, q_sensor[:, 0])
        self.jolts.feed(idx, q_sensor, q_seg[:, 0], acc, gyr)
        new_runs = getattr(self.jolts, "runs", [])[self.runs_seen:]
        self.runs_seen += len(new_runs)
        self.traces.feed(idx, q_sensor, acc, gyr, [r["t_s"] for r in new_runs if "t_s" in r])
        if self.zi is None or self.zi.shape[0] != self.sos.shape[0]:
            self.zi = signal.sosfilt_zi(self.sos)[:, :, None] * pitch[0][None, None, :]
        smooth, self.zi = signal.sosfilt(self.sos, pitch, axis=0, zi=self.zi)
        keep = idx % self.step == 0
        self.series["index"].append(idx[keep])
        self.series["pitch"].append(smooth[keep])
        self.series["tilt"].append(tilt[keep])
        self.series["src"].append(np.zeros(int(keep.sum()), bool))
        q_board = np.stack([quat.mul(q_fw[keep, k], self.align[k]) for k in range(self.n_imu)], axis=1)
        if self.refuser is not None:  # the board's inclination against the host's: what the day log rests on
            self.board_diff.append(np.abs(inclination(q_board)[0] - pitch[keep]).astype(np.float32))
        if self.n_imu > 1:
            self.series["qt"].append(q_seg[keep, 0])
            self.series["qh"].append(q_seg[keep, 1])
            # the board's own fusion too (its heading offset carries into the day log)
            self.series["bt"].append(q_board[:, 0])
            self.series["bh"].append(q_board[:, 1])

    def _feed_reduced(self, b) -> None:
        """A block of the offline day log: posture from the board's quaternions at its own rate."""
        idx = b.index
        self.last_index = int(idx[-1])
        self.reduced_samples += b.samples
        period = float(b.source_period_s or b.period_s)
        q_seg = np.stack([quat.mul(b.quat[:, k], self.align[k]) for k in range(self.n_imu)], axis=1)
        pitch, _roll, tilt = inclination(q_seg)
        fwd_up = quat.axis_in_world(q_seg[:, 0], 0)[:, 2]
        self.context.feed_orientation(idx, tilt[:, 0], fwd_up)
        self.board_quat["t_s"].append(idx / self.rate)
        self.board_quat["q"].append(b.quat.astype(np.float32))
        fs = 1.0 / period
        if fs not in self._sos_log:
            self._sos_log[fs] = signal.butter(2, min(self.s.posture_lowpass_hz, 0.45 * fs), fs=fs, output="sos")
        sos = self._sos_log[fs]
        if self._kind != "reduced" or self.zi is None or self.zi.shape[0] != sos.shape[0]:
            self.zi = signal.sosfilt_zi(sos)[:, :, None] * pitch[0][None, None, :]
        smooth, self.zi = signal.sosfilt(sos, pitch, axis=0, zi=self.zi)
        self._kind = "reduced"
        self._span("reduced", idx, int(round(2 * period * self.rate)))
        step = max(1, int(round(fs / SERIES_HZ)))  # 10 Hz as recorded; a faster log is decimated
        keep = np.arange(len(idx)) % step == 0
        self.series["index"].append(idx[keep])
        self.series["pitch"].append(smooth[keep])
        self.series["tilt"].append(tilt[keep])
        self.series["src"].append(np.ones(int(keep.sum()), bool))
        if self.n_imu > 1:
            self.series["qt"].append(q_seg[keep, 0])
            self.series["qh"].append(q_seg[keep, 1])
            self.series["bt"].append(q_seg[keep, 0])
            self.series["bh"].append(q_seg[keep, 1])

    def take_gaps(self, reader) -> None:
        """Lost samples and the gaps worth listing from the reader's gaps (stream.Gap, grid
        positions): every gap with a reason other than "lost in transmission" (reboots,
        on-board buffer overflow), and transmission gaps of at least one second."""
        for g in reader.gaps:
            self.lost += g.missing_samples or 0
            dur = max(0.0, g.end - g.start) / self.rate
            if g.reason != REASON_TRANSMISSION or dur >= 1.0:
                self.gaps.append({"start_s": max(0.0, g.start / self.rate), "duration_s": dur, "reason": g.reason,
                                  "missing_samples": g.missing_samples, "boot_number": g.boot})
        self.boots = sum(1 for b in reader.boots if b.samples)

    # ------------------------------------------------------------ finishing

    def finish(self, path: Path, rec, roles: list[str], malformed: int) -> Findings:
        s = self.s
        idx = np.concatenate(self.series["index"])
        t = idx / self.rate
        pitch = np.concatenate(self.series["pitch"])
        tilt = np.concatenate(self.series["tilt"])
        src = np.concatenate(self.series["src"])  # True: the offline day log (reduced rate)
        act_sec, activity_s = self.context.classify()
        act = act_sec[np.clip((t).astype(np.int64), 0, len(act_sec) - 1)]
        lying = act >= 3
        walking = act == 1
        trunk = pitch[:, 0]
        valid = ~lying
        episodes: list[PostureEpisode] = []
        lateral = axial = neck = head = None
        if self.n_imu > 1:
            head = pitch[:, 1]
            neck = head - trunk
            lateral, axial, joint_flex = self._neck_joint_angles(tilt, src)
            for e in posture.episodes("neck_flexion", t, neck, valid & ~walking, s.neck_flexion_deg, s):
                sl = (t >= e.start_s) & (t < e.end_s)
                e.mean_trunk_inclination_deg = float(trunk[sl].mean())
                e.mean_neck_lateral_deg = float(lateral[sl].mean())
                e.pattern = posture.pattern(e, s)
                e.iso11226_verdict = posture.iso11226_head(float(head[sl].mean()), e.mean_deg, e.duration_s, s)
                episodes.append(e)
            episodes += self._bed_episodes(t, lying, act, joint_flex, lateral)
        for e in posture.episodes("trunk_inclination", t, trunk, valid & ~walking, s.trunk_inclination_deg, s):
            e.mean_trunk_inclination_deg = e.mean_deg
            e.pattern = posture.pattern(e, s)
            e.iso11226_verdict = posture.iso11226_trunk(e.mean_deg, e.duration_s, s)
            episodes.append(e)
        episodes.sort(key=lambda e: e.start_s)
        dt = 1.0 / SERIES_HZ
        upright_ok = valid & (trunk <= s.trunk_inclination_deg)
        exposure = Exposure(float(((trunk > s.trunk_inclination_deg) & valid).sum() * dt))
        # ISO 11226 trunk ranges: < 20° acceptable, 20–60° limited holding time, > 60° not acceptable
        exposure.trunk_bands_s = {f"{lo}..{hi}": float(((trunk >= lo) & (trunk < hi) & valid).sum() * dt)
                                     for lo, hi in ((-90, 0), (0, 20), (20, 60), (60, 180))}
        rula = {}
        if neck is not None:
            upright_ok &= neck <= s.neck_flexion_deg
            exposure.neck_over_threshold_s = float(((neck > s.neck_flexion_deg) & valid).sum() * dt)
            bands = [(-90, 0), (0, 10), (10, 20), (20, 45), (45, 180)]
            exposure.neck_bands_s = {f"{lo}..{hi}": float(((neck >= lo) & (neck < hi) & valid).sum() * dt)
                                        for lo, hi in bands}
            score = posture.rula_neck(neck, lateral, axial, s)[valid]
            rula = {str(k): float((score == k).sum() * dt) for k in range(1, 7) if (score == k).any()}
        longest = max(((i1 - i0) * dt for i0, i1 in posture.runs(upright_ok)), default=0.0)
        duration_s = float(self.last_index + 1) / self.rate
        masked_s = self.guard.samples / self.n_imu / self.rate  # glitches: not valid data
        self.series_s = {"full": float((~src).sum() * self.step / self.rate), "reduced": float(src.sum() / SERIES_HZ)}
        valid_s = max(0.0, min(duration_s, self.series_s["full"] + self.series_s["reduced"]) - masked_s)
        first = min((e.start_s for e in episodes if e.kind != "bed_neck"), default=None)
        source = "host re-fusion (VQF 6D)" if s.fuse_on_host else "firmware fusion"
        if src.any():
            source = ("the board's own fusion at the reduced rate (offline day log)" if src.all()
                      else f"{source} at full rate; the board's own fusion in the reduced-rate spans")
        return Findings(
            path=str(path), metadata=rec.metadata, settings=s.as_dict(),
            duration_s=duration_s, samples=self.n, lost_samples=self.lost,
            malformed_packets=malformed,
            file_issues=[{"offset": i.offset, "kind": i.kind, "detail": i.detail} for i in rec.issues],
            calibration=self.calib,
            roles=roles, orientation_source=source,
            episodes=episodes, lying_s=float(lying.sum() * dt), exposure_s=exposure,
            activity_s=activity_s, rula_neck_s=rula, time_to_first_episode_s=first, longest_upright_s=float(longest),
            gaps=self.gaps, series=_one_hz(t, trunk, neck, head, lateral, act),
            valid_s=valid_s, low_coverage=coverage.is_low(valid_s, duration_s),
            not_judged=coverage.not_judged(valid_s, self.n_imu, s), glitches=self.guard.summary(),
        )

    def _neck_joint_angles(self, tilt: np.ndarray, src: np.ndarray):
        """Lateral bend, axial rotation, joint flexion (deg) with the heading offset tracked.

        Each orientation source has its own heading, so the offset is tracked per source:
        host re-fusion in the full-rate stretches (each starts from the neutral's offset, as
        re-fusion restarts after the day log), and the board's own fusion over the whole
        recording — its quaternions ride in the full-rate SAMPLES too — so that a day-log
        stretch continues the board's offset as tracked up to it (a night in bed, with no
        upright moment to track on, keeps the offset of the evening before)."""
        s = self.s
        qt = np.concatenate(self.series["qt"])
        qh = np.concatenate(self.series["qh"])
        n0 = self.neutral_seg
        d0 = float(yaw(n0[0]) - yaw(n0[1]))
        ok = (tilt[:, 0] < 45) & (tilt[:, 1] < 60)
        calib_board = self.calib.fusion != "vqf" or not s.fuse_on_host
        est = np.empty(len(qt))
        if src.any():
            bd = yaw(np.concatenate(self.series["bt"])) - yaw(np.concatenate(self.series["bh"]))
            est[src] = self._track(bd, ok, d0 if calib_board else _circ_mean(bd, ok))[src]
        diff = yaw(qt) - yaw(qh)
        cuts = [0] + list(np.flatnonzero(src[1:] != src[:-1]) + 1) + [len(src)]
        for i0, i1 in zip(cuts[:-1], cuts[1:]):
            if not src[i0]:
                d, o = diff[i0:i1], ok[i0:i1]
                init = d0 if not calib_board or not s.fuse_on_host else _circ_mean(d, o)
                est[i0:i1] = self._track(d, o, init)
        # the head IMU's world frame is turned by -δ about vertical relative to the trunk's:
        # head relative to trunk = conj(qt) ⊗ Rz(δ) ⊗ qh
        qcorr = quat.mul(quat.mul(quat.conj(qt), z_rotation(est)), qh)
        flex, lat, ax = joint_angles(qcorr)
        k = max(1, int(SERIES_HZ))
        return posture.centred_mean(lat, k), posture.centred_mean(ax, k), posture.centred_mean(flex, k)

    def _track(self, diff: np.ndarray, ok: np.ndarray, init: float) -> np.ndarray:
        """Slow (``heading_tau_s``) mean of the head–trunk yaw difference over ``ok`` samples,
        from ``init``; held where not ``ok``."""
        a = 1.0 / (SERIES_HZ * self.s.heading_tau_s)
        r = np.unwrap(np.concatenate([[init], diff]))[1:]
        if not ok.any():
            return np.full(len(r), init)
        filt, _ = signal.lfilter([a], [1, a - 1], r[ok], zi=[init * (1 - a)])
        pos = np.cumsum(ok) - 1
        return np.where(pos >= 0, filt[np.clip(pos, 0, None)], init)

    def _bed_episodes(self, t, lying, act, flex, lateral) -> list[PostureEpisode]:
        s = self.s
        out = []
        side = act == 5
        for kind_mask, angle, thr in ((lying & side, np.abs(lateral), s.bed_lateral_deg),
                                      (lying & ~side, np.abs(flex), s.bed_flexion_deg)):
            for e in posture.episodes("bed_neck", t, angle, kind_mask, thr, s, hold_s=s.bed_hold_s):
                sl = (t >= e.start_s) & (t < e.end_s)
                e.mean_neck_lateral_deg = float(lateral[sl].mean())
                e.pattern = posture.bed_pattern(float(flex[sl].mean()), e.mean_neck_lateral_deg, bool(side[sl].mean() > 0.5))
                out.append(e)
        return out


def _circ_mean(angle: np.ndarray, ok: np.ndarray, n: int = int(60 * SERIES_HZ)) -> float:
    """Circular mean (rad) of the first ``n`` ``ok`` angles (of the first ``n`` without any)."""
    first = angle[ok][:n] if ok.any() else angle[:n]
    return float(np.angle(np.exp(1j * first).mean())) if len(first) else 0.0


def _one_hz(t, trunk, neck, head, lateral, act) -> dict:
    """Per-second means for plots and JSON (8 h = 28 800 points); seconds without data are
    left out (a plot breaks the line where ``t_s`` jumps)."""
    sec = np.floor(t).astype(np.int64)
    uniq, inv = np.unique(sec, return_inverse=True)
    cnt = np.bincount(inv)

    def mean(x):
        return np.round(np.bincount(inv, weights=x) / cnt, 2).tolist()

    out = {"time_s": uniq.astype(float).tolist(), "trunk_inclination_deg": mean(trunk),
           "activity": [ACTIVITY_NAMES[a] if a >= 0 else "none" for a in act[np.searchsorted(t, uniq)]],
           "lying": (np.bincount(inv, weights=act >= 3) / cnt > 0.5).tolist()}
    if neck is not None:
        out["neck_flexion_deg"] = mean(neck)
        out["head_inclination_deg"] = mean(head)
        out["neck_lateral_deg"] = mean(lateral)
    return out
