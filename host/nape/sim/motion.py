"""Turn a script into the wearer's joint angles, hip path and vehicle motion on a time grid.

Everything here is kinematic *intent*: posture ramps, head turns, gait oscillations,
postural sway, breathing, head micro-movements and the vehicle's own motion. The
physical responses to accelerations (seat compliance, trunk lean, head lag) are added by
:mod:`nape.sim.kinematics`.

Amplitudes of the natural variability (scaled by each segment's ``sway``):

* postural sway of the trunk: 0.6° pitch, 0.4° roll, 0.8° axial RMS below ~0.3 Hz, and
  5 mm RMS hip displacement — quiet-standing sway is of this order (e.g. Winter 1995,
  Gait Posture 3:193 reports centre-of-pressure excursions of a few mm to ~1 cm);
* head micro-movements: slow wander of 1.5° flexion, 0.8° lateral, 3° axial RMS
  (< 0.25 Hz) plus 0.15° RMS faster jitter (< 1.5 Hz);
* breathing: 15 breaths/min (≈5 % slow rate variation), 0.3° trunk pitch and 1.5 mm
  back-surface displacement — not scaled by ``sway``;
* road vibration at the seat: 0.4 m/s² RMS vertical, 0.15 m/s² fore-aft and lateral,
  band 1–20 Hz, fading in with speed — typical car-seat values are a few tenths of m/s²
  (Griffin, *Handbook of Human Vibration*, 1990).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import cumulative_trapezoid

from . import blocks, body, profiles
from .script import (
    ACTIVITY_NAMES,
    BodyTurn,
    Corner,
    HeadTurn,
    Pothole,
    RearImpact,
    Segment,
    VehicleAccel,
)
from .sensor import G
from .settings import SimError

SIT_STAND_LEAN_DEG_PER_M = 60.0  # forward trunk lean while the hip rises/lowers (≈27° for 0.45 m)
ROAD_VIB_RMS = np.array([0.15, 0.15, 0.4])  # m/s^2 at full speed, vehicle x, y, z
ROAD_VIB_SPEED_MPS = 5.0  # vibration fades in as tanh((v / 5 m/s)^2)


@dataclass
class Timeline:
    """Absolute segment timing after time scaling."""

    segments: list[Segment]
    starts: np.ndarray  # (S,) s
    transitions: np.ndarray  # (S,) s
    total_s: float

    @classmethod
    def of(cls, segments: list[Segment]) -> Timeline:
        for s in segments:
            if s.activity not in ACTIVITY_NAMES:
                raise SimError(f"segment {s.name!r}: unknown activity {s.activity!r}")
            if not s.duration_s > 0:
                raise SimError(f"segment {s.name!r}: duration must be > 0")
            if not s.transition_s >= 0 or not s.sway >= 0 or not s.walk_speed_mps >= 0:
                raise SimError(f"segment {s.name!r}: transition_s, sway and walk_speed_mps must be >= 0")
        if not segments:
            raise SimError("script is empty")
        dur = np.array([s.duration_s for s in segments])
        starts = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
        trans = np.array([min(s.transition_s, s.duration_s) for s in segments])
        return cls(segments, starts, trans, float(dur.sum()))

    def index(self, t: np.ndarray) -> np.ndarray:
        """Segment index of each time (times before 0 belong to the first segment)."""
        return np.clip(np.searchsorted(self.starts, t, side="right") - 1, 0, len(self.starts) - 1)


@dataclass
class Motion:
    """Intended motion on the internal grid (all angles rad, lengths m, support frame)."""

    t: np.ndarray
    dt: float
    heading: np.ndarray  # (N,) body/vehicle heading about world z
    trunk: np.ndarray  # (3, N) pitch, roll, axial
    neck: np.ndarray  # (3, N) flexion, lateral, axial
    hip: np.ndarray  # (3, N) hip joint in the support frame
    breath: np.ndarray  # (N,) breathing waveform, -1..1
    walk_speed: np.ndarray  # (N,) m/s
    vehicle_speed: np.ndarray  # (N,) m/s
    vehicle_acc_lon: np.ndarray  # (N,) m/s^2, the vehicle's own longitudinal acceleration
    vehicle_disp: np.ndarray  # (3, N) vehicle body vibration / pothole displacement, m
    segment: np.ndarray  # (N,) segment index


def _span(t: np.ndarray, t0: float, t1: float) -> slice:
    """Indices of the sorted times ``t`` within [t0, t1)."""
    i0, i1 = np.searchsorted(t, [t0, t1])
    return slice(int(i0), int(i1))


_TARGETS = (
    lambda s: np.deg2rad(s.posture.trunk_pitch_deg),
    lambda s: np.deg2rad(s.posture.trunk_roll_deg),
    lambda s: np.deg2rad(s.posture.trunk_axial_deg),
    lambda s: np.deg2rad(s.posture.neck_flexion_deg),
    lambda s: np.deg2rad(s.posture.neck_lateral_deg),
    lambda s: np.deg2rad(s.posture.neck_axial_deg),
    lambda s: s.posture.hip_forward_m,
    lambda s: s.posture.hip_height_m,
    lambda s: s.sway,
    lambda s: s.walk_speed_mps,
    lambda s: 1.0 if s.activity == "walking" else 0.0,
)
_T_TRUNK, _T_NECK, _T_HIP_X, _T_HIP_Z, _T_SWAY, _T_WALK, _T_GAIT, _T_HEADING = 0, 3, 6, 7, 8, 9, 10, 11


def _target_table(tl: Timeline) -> np.ndarray:
    """(S, 12) per-segment targets in the order of ``_TARGETS`` plus the heading (rad)."""
    tab = np.array([[f(s) for f in _TARGETS] for s in tl.segments], dtype=float)
    heading, last = [], 0.0
    for s in tl.segments:
        last = s.heading_deg if s.heading_deg is not None else last
        heading.append(np.deg2rad(last))
    return np.column_stack([tab, heading])


def _add_events(
    tl: Timeline, t: np.ndarray, heading: np.ndarray, neck_axial: np.ndarray, acc_lon: np.ndarray, heave: np.ndarray
) -> None:
    """Add every scripted event to the given arrays, each only over its own time window.

    Args:
        heading: body/vehicle heading, rad (turns and corners).
        neck_axial: neck axial rotation, rad (head turns).
        acc_lon: vehicle longitudinal acceleration, m/s^2 (speed changes, rear impacts).
        heave: vehicle vertical displacement, m (potholes).
    """
    d2r = np.deg2rad
    for start, s in zip(tl.starts, tl.segments):
        for e in s.events:
            t0 = start + e.t_s
            if isinstance(e, HeadTurn):
                ang, mv, h = d2r(e.angle_deg), e.move_s, e.hold_s
                sl = _span(t, t0, t0 + 2 * mv + h)
                x = t[sl] - t0
                neck_axial[sl] += ang * (profiles.min_jerk(x / mv) - profiles.min_jerk((x - mv - h) / mv))
            elif isinstance(e, BodyTurn | Corner):
                ang, dur = d2r(e.angle_deg), e.duration_s
                sl = _span(t, t0, t0 + dur)
                heading[sl] += ang * profiles.min_jerk((t[sl] - t0) / dur)
                heading[sl.stop :] += ang
            elif isinstance(e, VehicleAccel):
                sl = _span(t, t0, t0 + e.length_s)
                acc_lon[sl] += e.accel_g * G * profiles.trapezoid_pulse(t[sl], t0, e.rise_s, e.hold_s)
            elif isinstance(e, RearImpact):
                sl = _span(t, t0, t0 + e.width_s)
                acc_lon[sl] += e.peak_g * G * profiles.hann_pulse(t[sl], t0, e.width_s)
            elif isinstance(e, Pothole):
                sig = e.width_s / 2
                sl = _span(t, t0 - 6 * sig, t0 + 6 * sig)
                heave[sl] += profiles.gaussian_dip(t[sl], t0, sig, e.peak_g * G * sig * sig)
            else:  # pragma: no cover - guarded by the Event union
                raise SimError(f"unknown event {e!r}")


def build_motion(tl: Timeline, t: np.ndarray, dt: float, rng: np.random.Generator,
                 road_vibration: float = 1.0) -> Motion:
    """Evaluate the script on the uniform time grid ``t`` (s; may extend beyond [0, total]).

    Raises:
        SimError: if the vehicle speed implied by the script goes negative.
    """
    n = len(t)
    d2r = np.deg2rad
    tab = _target_table(tl)
    prev_tab = np.concatenate([tab[:1], tab[:-1]])
    hips = tab[:, _T_HIP_Z]
    lying = np.array([s.activity.startswith("lying") for s in tl.segments])
    lean = np.where(lying, 0.0, d2r(SIT_STAND_LEAN_DEG_PER_M) * np.abs(np.diff(hips, prepend=hips[0])))

    # Seeded random draws, always in this order.
    heading0 = rng.uniform(-np.pi, np.pi)
    bank = profiles.NoiseBank(rng, n * dt, n)
    slow, head_slow, head_fast = (profiles.lowpass_shape(fc) for fc in (0.3, 0.25, 1.5))
    sway_rms = (d2r(0.6), d2r(0.4), d2r(0.8), 0.005, 0.005, 0.002)
    sway_noise = np.stack([bank.process(slow, a, 3.0) for a in sway_rms])
    neck_noise = np.stack(
        [bank.mix([(head_slow, d2r(a), 3.0), (head_fast, d2r(0.15), 10.0)]) for a in (1.5, 0.8, 3.0)]
    )
    breath_mod = bank.process(profiles.lowpass_shape(0.02), 0.6, 0.3)
    road_shape = profiles.road_displacement_shape()
    road = np.stack([bank.process(road_shape, ROAD_VIB_RMS[k], 30.0, deriv=2) for k in range(3)])
    breath_phase0 = rng.uniform(0, 2 * np.pi)
    gait_phase0 = rng.uniform(0, 2 * np.pi)

    m = Motion(
        t=t, dt=dt, heading=np.empty(n), trunk=np.empty((3, n)), neck=np.empty((3, n)), hip=np.empty((3, n)),
        breath=np.empty(n), walk_speed=np.empty(n), vehicle_speed=np.empty(n), vehicle_acc_lon=np.zeros(n),
        vehicle_disp=np.zeros((3, n)), segment=np.empty(n, dtype=np.intp),
    )
    # Events first: the vehicle speed (and so the road vibration) depends on them.
    heading_events = np.zeros(n)
    neck_axial_events = np.zeros(n)
    _add_events(tl, t, heading_events, neck_axial_events, m.vehicle_acc_lon, m.vehicle_disp[2])
    m.vehicle_speed[:] = cumulative_trapezoid(m.vehicle_acc_lon, dx=dt, initial=0.0)
    if m.vehicle_speed.min() < -0.05:
        k = int(np.argmin(m.vehicle_speed))
        raise SimError(f"script makes the vehicle reverse (speed {m.vehicle_speed[k]:.2f} m/s at t={t[k]:.1f} s)")

    amp_trunk = d2r(body.GAIT_TRUNK_AMPLITUDE_DEG)[:, None]
    stab = body.GAIT_HEAD_STABILISATION[:, None]
    ax, ay, az = body.GAIT_HIP_AMPLITUDE_M
    for i0, i1 in blocks.spans(n):
        tt = t[i0:i1]
        idx = tl.index(tt)
        tr = tl.transitions[idx]
        u = np.where(tr > 0, (tt - tl.starts[idx]) / np.where(tr > 0, tr, 1.0), 1.0)
        prev = prev_tab[idx].T
        val = prev + (tab[idx].T - prev) * profiles.min_jerk(u)  # (12, B)
        sway = val[_T_SWAY]
        gait = val[_T_GAIT]

        trunk = val[_T_TRUNK : _T_TRUNK + 3] + sway_noise[0:3, i0:i1] * sway
        trunk[0] += lean[idx] * profiles.bump(u)
        neck = val[_T_NECK : _T_NECK + 3] + neck_noise[:, i0:i1] * sway
        neck[2] += neck_axial_events[i0:i1]
        hip = sway_noise[3:6, i0:i1] * sway
        hip[0] += val[_T_HIP_X]
        hip[2] += val[_T_HIP_Z]

        breath = np.sin(2 * np.pi * 0.25 * (tt - t[0]) + breath_mod[i0:i1] + breath_phase0)
        trunk[0] += d2r(0.3) * breath

        # Gait: step-frequency bounce, stride-frequency sway and trunk counter-rotation.
        phase = 2 * np.pi * body.STEP_FREQ_HZ * tt + gait_phase0
        s1, c1, s_half, c_half = np.sin(phase), np.cos(phase), np.sin(phase / 2), np.cos(phase / 2)
        hip[0] += gait * ax * s1
        hip[1] += gait * ay * s_half
        hip[2] += gait * az * (c1 + 0.15 * (2 * c1 * c1 - 1))
        osc = gait * amp_trunk * np.stack([np.sin(phase + 0.3), s_half, c_half])
        trunk += osc
        neck -= stab * osc

        m.trunk[:, i0:i1] = trunk
        m.neck[:, i0:i1] = neck
        m.hip[:, i0:i1] = hip
        m.breath[i0:i1] = breath
        m.walk_speed[i0:i1] = val[_T_WALK]
        m.heading[i0:i1] = val[_T_HEADING] + heading_events[i0:i1] + heading0
        m.segment[i0:i1] = idx
        gain = road_vibration * np.tanh((m.vehicle_speed[i0:i1] / ROAD_VIB_SPEED_MPS) ** 2)
        m.vehicle_disp[:, i0:i1] += road[:, i0:i1] * gain
    return m
