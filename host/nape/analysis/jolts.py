"""Jarring movements: detect, measure, classify and grade, block by block.

Detection: linear acceleration (specific force rotated to the world frame, gravity
removed, ``jolt_lowpass_hz`` low-pass) of trunk or head above ``jolt_trigger_g``. Crossings
closer than ``jolt_merge_s`` form one event; events spanning more than ``jolt_max_s`` are
rhythmic or sustained motion (walking), not jolts.

Measures per event (window around each crossing): peak trunk / head linear acceleration
(g); the vehicle-level horizontal acceleration (trunk, ≤ 2 Hz: braking, accelerating and
cornering are slow; shocks are not) split into along / across the wearer's heading; the
vertical peak; head-minus-trunk acceleration; head-relative-to-trunk angular velocity;
the Neck Injury Criterion NIC = 0.2·a_rel + v_rel² with a_rel the T1-minus-head
acceleration along the trunk's forward direction and v_rel its integral from onset
(Boström et al. 1996; 15 m²/s² is the proposed injury threshold, exceeded by harmless
activities too, so it is reported, not alarmed on); BrIC = √Σ(ωᵢ/ωᵢc)² from head angular
velocity with critical values 66.25 / 56.45 / 42.87 rad/s (Takhounts et al. 2013).

Cause: vertical shock → bump; impulsive horizontal shock (half-maximum width under
``impulsive_max_s``) → rear_impact_like (trunk pushed
forward) or knock; sustained → braking / acceleration / lateral; a fast head rotation with
a still trunk is a voluntary head turn (counted, not a jolt). Grades: vehicle manoeuvres
by the sustained acceleration (harsh 0.35 g, emergency 0.65 g); shocks and impacts by their
peak (1.5 g, 3 g). Every boundary is a setting with its source in :mod:`nape.settings`.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .. import quat
from ..settings import AnalysisSettings
from .findings import Jolt
from .posture import runs

G = 9.80665
PRE_S = 0.5
POST_S = 1.5
BRIC_CRIT = np.array([66.25, 56.45, 42.87])  # rad/s about x, y, z


class JoltDetector:
    """Streaming detector: ``feed`` blocks, then ``finish``."""

    def __init__(self, rate_hz: float, n_imu: int, s: AnalysisSettings):
        self.rate = rate_hz
        self.s = s
        self.n_imu = n_imu
        cut = min(s.jolt_lowpass_hz, 0.45 * rate_hz)
        self.sos = signal.butter(2, cut, fs=rate_hz, output="sos")
        self.sos_vehicle = signal.butter(2, s.vehicle_lowpass_hz, fs=rate_hz, output="sos")
        self.zi = np.zeros((self.sos.shape[0], 2, 3 * n_imu))
        self.zi_vehicle = np.zeros((self.sos_vehicle.shape[0], 2, 3))
        self.keep = int((PRE_S + POST_S + 1.0) * rate_hz)
        self.buf: dict[str, np.ndarray] | None = None
        self.pending: list[dict] = []
        self.runs: list[dict] = []

    # ------------------------------------------------------------ streaming

    def feed(self, index: np.ndarray, q_sensor: np.ndarray, q_trunk_seg: np.ndarray,
             acc: np.ndarray, gyr: np.ndarray) -> None:
        n = len(index)
        lin = quat.rotate(q_sensor, acc) - np.array([0.0, 0.0, G])  # (n, k, 3) m/s^2, world
        flat, self.zi = signal.sosfilt(self.sos, lin.reshape(n, -1), axis=0, zi=self.zi)
        lin = flat.reshape(n, self.n_imu, 3)
        veh, self.zi_vehicle = signal.sosfilt(self.sos_vehicle, lin[:, 0], axis=0, zi=self.zi_vehicle)
        block = {
            "index": index, "lin": lin, "veh": veh,
            "omega": quat.rotate(q_sensor, gyr),  # world-frame angular velocity, rad/s
            "gyr_head": gyr[:, -1],
            "fwd": quat.axis_in_world(q_trunk_seg, 0),
        }
        mag = np.linalg.norm(lin, axis=2) / G
        above = (mag > self.s.jolt_trigger_g).any(axis=1)
        buf = block if self.buf is None else {k: np.concatenate([self.buf[k], v]) for k, v in block.items()}
        gap = int(self.s.jolt_merge_s * self.rate)
        for i0, i1 in runs(above):
            a, b = int(index[i0]), int(index[i1 - 1])
            if self.pending and a - self.pending[-1]["i1"] <= gap:
                self.pending[-1]["i1"] = b  # one event: measure it once, not per crossing
            else:
                self.pending.append({"i0": a, "i1": b})
        self._measure_ready(buf, final=False)
        self.buf = {k: v[-self.keep:] for k, v in buf.items()}

    def _measure_ready(self, buf: dict, final: bool) -> None:
        last = int(buf["index"][-1])
        still = []
        for r in self.pending:
            if not final and r["i1"] + POST_S * self.rate > last:
                still.append(r)
                continue
            self.runs.append(self._measure(buf, r))
        self.pending = still

    def _measure(self, buf: dict, r: dict) -> dict:
        idx = buf["index"]
        lo = np.searchsorted(idx, r["i0"] - PRE_S * self.rate)
        hi = np.searchsorted(idx, r["i1"] + POST_S * self.rate, side="right")
        on = np.searchsorted(idx, r["i0"])
        w = {k: v[lo:hi] for k, v in buf.items()}
        on -= lo
        lin = w["lin"]
        mag = np.linalg.norm(lin, axis=2) / G
        ipk = int(np.argmax(mag[:, 0]))
        # the wearer's heading sample by sample: a car may turn 90° during a corner
        fwd_all = w["fwd"][:, :2] / np.maximum(np.linalg.norm(w["fwd"][:, :2], axis=1, keepdims=True), 1e-9)
        fwd_h = fwd_all[min(on, len(lin) - 1)]
        veh = w["veh"]
        along_v = np.einsum("ij,ij->i", veh[:, :2], fwd_all)
        across_v = veh[:, 1] * fwd_all[:, 0] - veh[:, 0] * fwd_all[:, 1]
        iv = int(np.argmax(np.hypot(along_v, across_v)))
        horiz = lin[:, 0, :2]
        ih = int(np.argmax(np.linalg.norm(horiz, axis=1)))
        out = {
            "start_s": r["i0"] / self.rate, "end_s": r["i1"] / self.rate, "t_s": float(w["index"][ipk]) / self.rate,
            "peak": mag.max(axis=0).tolist(),
            "vehicle_along_g": float(along_v[iv] / G), "vehicle_across_g": float(across_v[iv] / G),
            "vertical_g": float(lin[np.argmax(np.abs(lin[:, 0, 2])), 0, 2] / G),
            "horiz_peak_g": float(np.linalg.norm(horiz[ih]) / G),
            "horiz_along_g": float(horiz[ih] @ fwd_h / G),
            "horiz_fwhm_s": _fwhm(np.linalg.norm(horiz, axis=1), ih) / self.rate,
        }
        if self.n_imu > 1:
            rel = lin[:, 1] - lin[:, 0]
            a_rel = (lin[:, 0, :2] - lin[:, 1, :2]) @ fwd_h  # T1 minus head, forward, m/s^2
            seg = slice(max(on - int(0.05 * self.rate), 0), min(on + int(0.3 * self.rate), len(a_rel)))
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

    # ------------------------------------------------------------ finishing

    def finish(self, events: list | None = None, t0_ms: float | None = None,
               walking: np.ndarray | None = None) -> tuple[list[Jolt], int]:
        """Merge, classify and grade. ``events``: decoded EVENT packets (high-rate windows);
        ``walking``: per-second walking flags (steps shake the trunk rhythmically: not jolts)."""
        if self.buf is not None:
            self._measure_ready(self.buf, final=True)
        windows = _event_windows(events or [], t0_ms)
        groups: list[list[dict]] = []
        for r in sorted(self.runs, key=lambda r: r["start_s"]):
            if groups and r["start_s"] - groups[-1][-1]["end_s"] <= self.s.jolt_merge_s:
                groups[-1].append(r)
            else:
                groups.append([r])
        jolts, head_turns = [], 0
        for g in groups:
            if g[-1]["end_s"] - g[0]["start_s"] > self.s.jolt_max_s:
                continue  # longer than any manoeuvre: sustained or rhythmic motion
            if walking is not None and len(walking):
                secs = np.arange(int(g[0]["start_s"]), int(g[-1]["end_s"]) + 1)
                if walking[np.clip(secs, 0, len(walking) - 1)].mean() > 0.5:
                    continue  # steps, not a jolt
            j = self._classify(g, windows)
            if j is None:
                head_turns += 1
            else:
                jolts.append(j)
        return jolts, head_turns

    def _classify(self, g: list[dict], windows: list[dict]) -> Jolt | None:
        s = self.s
        best = max(g, key=lambda r: r["peak"][0])
        trunk_g = max(r["peak"][0] for r in g)
        head_g = max(r["peak"][-1] for r in g) if self.n_imu > 1 else float("nan")
        get = lambda key: max((r.get(key, float("nan")) for r in g), key=lambda v: -1 if np.isnan(v) else abs(v))  # noqa: E731
        veh_along = max((r["vehicle_along_g"] for r in g), key=abs)
        veh_across = max((r["vehicle_across_g"] for r in g), key=abs)
        vehicle = float(np.hypot(veh_along, veh_across))
        head_dps = get("head_dps")
        if (self.n_imu > 1 and trunk_g < s.jolt_trigger_g and head_dps > s.head_turn_dps
                and vehicle < s.jolt_trigger_g):
            return None  # a voluntary head turn
        source = "stream"
        win = _match_window(windows, best["start_s"], best["end_s"])
        if win is not None:
            trunk_g = max(trunk_g, win["peak"][0])
            if self.n_imu > 1 and len(win["peak"]) > 1:
                head_g = max(head_g, win["peak"][-1])
            source = "event window"
        vertical = best["vertical_g"]
        horiz = best["horiz_peak_g"]
        if abs(vertical) > s.bump_vertical_ratio * horiz:
            cause, size, bounds = "bump", abs(vertical), (s.shock_moderate_g, s.shock_severe_g)
        elif best["horiz_fwhm_s"] < s.impulsive_max_s:
            cause = "rear_impact_like" if best["horiz_along_g"] > 0 else "knock"
            size, bounds = horiz, (s.shock_moderate_g, s.shock_severe_g)
        elif abs(veh_across) > abs(veh_along):
            cause, size, bounds = "lateral", abs(veh_across), (s.jolt_moderate_g, s.jolt_severe_g)
        else:
            cause = "braking" if veh_along < 0 else "acceleration"
            size, bounds = abs(veh_along), (s.jolt_moderate_g, s.jolt_severe_g)
        grade = "severe" if size >= bounds[1] else "moderate" if size >= bounds[0] else "mild"
        return Jolt(
            t_s=best["t_s"], start_s=g[0]["start_s"], end_s=g[-1]["end_s"], cause=cause, grade=grade,
            peak_trunk_g=float(trunk_g), peak_head_g=float(head_g), peak_head_dps=float(head_dps),
            vehicle_g=vehicle, vertical_g=float(vertical), head_rel_g=float(get("head_rel_g")),
            neck_dps=float(get("neck_dps")), nic_m2s2=float(get("nic")), bric=float(get("bric")), source=source,
        )


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
    by_id: dict[int, list] = {}
    for e in events:
        by_id.setdefault(e.event_id, []).append(e)
    out = []
    for parts in by_id.values():
        p0 = parts[0]
        acc = np.full((p0.total, p0.acc.shape[1], 3), np.nan)
        for p in parts:
            acc[p.first_index: p.first_index + p.count] = p.acc
        pre = acc[: max(p0.pre_trigger, 1)]
        grav = np.nanmean(pre, axis=0)  # still-ish before the trigger: the gravity vector
        peak = np.nanmax(np.linalg.norm(acc - grav, axis=2), axis=0) / G
        t = (p0.trigger_t_ms - t0_ms) / 1000.0
        out.append({"t_s": t, "peak": peak.tolist(), "complete": not np.isnan(acc).any()})
    return out


def _match_window(windows: list[dict], start_s: float, end_s: float) -> dict | None:
    near = [w for w in windows if start_s - 1.0 <= w["t_s"] <= end_s + 1.0]
    return max(near, key=lambda w: w["peak"][0]) if near else None
