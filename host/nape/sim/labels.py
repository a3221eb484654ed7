"""Ground-truth labels of the simulated day: jolts / head turns and held postures.

Every number in a label is measured from the simulated signals themselves, so a detector
can be scored against exactly what is in the data:

* ``peak_head_acc_g`` / ``peak_trunk_acc_g`` — max over the label window of the linear
  acceleration magnitude ``|R_sensor f_clean + g_world| / g`` at the output rate (the same
  value anyone recomputes from ``quat_true`` and ``acc_clean``).
* ``peak_head_rel_acc_g`` — max of ``|a_head - a_trunk|`` (head linear acceleration relative
  to the chest sensor, world axes), g.
* ``peak_neck_angvel_dps`` — max of ``|R_head w_head - R_trunk w_trunk|`` (relative angular
  velocity of head and trunk in world axes) from ``quat_true`` and ``gyr_clean``.
* ``t_peak`` — time of the largest head linear acceleration in the window; for a manoeuvre
  (braking, accelerating, cornering), the centre of its sustained acceleration's plateau
  (:func:`manoeuvre_peak`): a corner's flat top has no one peak.
* ``t_start`` — onset of the event's input (vehicle pulse, head-turn start); ``t_end`` —
  end of the input plus a settling time (1 s for vehicle events, enough for the 2.5 Hz,
  ζ 0.4 head response to ring down; 0.3 s for head turns).

Severity grades each cause on the physical quantity that loads the neck, computed from the
simulated physics (the vehicle's motion, the seat's shock, the head's motion relative to T1),
never from what a detector reads; the boundaries are :class:`nape.settings.AnalysisSettings`
fields with their published sources (``[GRADE]`` there). ``grade_value`` holds the quantity:

* braking, acceleration, lateral (manoeuvres): the peak of the vehicle's own horizontal
  acceleration ``|(a_lon, a_lat)|`` after a causal 2nd-order Butterworth low-pass at
  ``vehicle_lowpass_hz`` (2 Hz), g, over the manoeuvre's input (and 0.3 s for the
  filter's delay). Naturalistic-driving studies classify braking, accelerating and cornering
  by this vehicle acceleration: ``jolt_moderate_g`` / ``jolt_severe_g`` (0.35 / 0.65 g).
* pothole: the peak vertical acceleration of the seat (its surface under the occupant:
  family A's vehicle input; family B's after its sprung seat), g: ``pothole_moderate_g`` /
  ``pothole_severe_g`` (1.0 / 2.5 g).
* rear_impact: the Neck Injury Criterion NIC = 0.2·a_rel + v_rel² (Boström et al. 1996) of
  the true head and T1 (upper-back sensor) linear accelerations along the trunk's forward
  direction, ``a_rel = a_T1 − a_head``, ``v_rel`` its integral from the impact's onset, its
  maximum over ``NIC_SPAN_S``, m²/s²: ``nic_moderate_m2s2`` / ``nic_severe_m2s2`` (8 / 15).
  The head is always simulated, so a recording without the head IMU has the same label;
  the analysis then grades from the trunk's velocity change and says the grade is less
  certain.
* head_turn: always "none" (voluntary movement, not a jolt).

``peak_vehicle_acc_g`` keeps the vehicle's own input peak along the event's axis (gravity
excluded) for reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import signal

from nape import quat
from nape.settings import GRADE_BOUNDS, AnalysisSettings

from .kinematics import GRAVITY_UP, Kinematics
from .motion import Timeline
from .script import Corner, HeadTurn, Pothole, RearImpact, VehicleAccel
from .sensor import G

_S = AnalysisSettings()
MANOEUVRES = ("braking", "acceleration", "lateral")


def severity_thresholds(s: AnalysisSettings = _S) -> dict[str, tuple[float, float]]:
    """(moderate, severe) boundary of each labelled kind, in its graded quantity's unit
    (module docstring), from the analysis settings."""
    basis = {"braking": "vehicle", "acceleration": "vehicle", "lateral": "vehicle", "pothole": "seat", "rear_impact": "nic"}
    return {kind: tuple(getattr(s, k) for k in GRADE_BOUNDS[b]) for kind, b in basis.items()}


SEVERITY_THRESHOLDS = severity_thresholds()
GRADE_UNIT = {"braking": "g", "acceleration": "g", "lateral": "g", "pothole": "g", "rear_impact": "m²/s²"}
GRADE_LOWPASS_HZ = _S.vehicle_lowpass_hz  # sustained (manoeuvre) acceleration, causal Butterworth, 2nd order
NIC_SPAN_S = 0.3  # NIC's maximum is taken over this long from the impact's onset (the retraction phase)
LOWPASS_DELAY_S = 0.3  # a manoeuvre's low-passed peak may come this long after its input ends
VEHICLE_SETTLE_S = 1.0
HEAD_TURN_SETTLE_S = 0.3


def manoeuvre_peak(t_out: np.ndarray, t: np.ndarray, sustained: np.ndarray) -> int:
    """Output-sample index of a manoeuvre's time: the centre of the plateau of its sustained
    acceleration ``sustained`` (sampled at ``t``; within 80 % of its peak, as
    :func:`nape.analysis.jolts.plateau_centre`), less the low-pass' delay at low frequencies
    (√2 / ω_c): a corner's flat top has no one peak."""
    from nape.analysis.jolts import plateau_centre

    i = plateau_centre(sustained, int(np.argmax(sustained)))
    delay = np.sqrt(2) / (2 * np.pi * GRADE_LOWPASS_HZ)
    return min(int(np.searchsorted(t_out, t[i] - delay)), len(t_out) - 1)


def severity(kind: str, value: float) -> str:
    """Grade of a jolt from its graded quantity (module docstring; g or m²/s²); "none" for
    voluntary head turns."""
    if kind == "head_turn":
        return "none"
    lo, hi = SEVERITY_THRESHOLDS[kind]
    a = abs(value)
    return "mild" if a < lo else "moderate" if a < hi else "severe"


def sustained_g(a_xy: np.ndarray, dt: float) -> np.ndarray:
    """Magnitude (g) of horizontal acceleration (n, 2) m/s^2 after the causal 2nd-order
    Butterworth low-pass at ``GRADE_LOWPASS_HZ``."""
    sos = signal.butter(2, GRADE_LOWPASS_HZ, fs=1.0 / dt, output="sos")
    low = signal.sosfilt(sos, a_xy, axis=0)
    return np.hypot(low[:, 0], low[:, 1]) / G


def nic_max(a_t1: np.ndarray, a_head: np.ndarray, fwd: np.ndarray, dt: float) -> float:
    """NICmax (m²/s²) from an impact's onset: ``a_t1`` / ``a_head`` (n, 3) linear
    accelerations (world axes, m/s^2) starting at the onset, ``fwd`` the trunk's forward
    direction (3,); NIC = 0.2·a_rel + v_rel², a_rel = (a_T1 − a_head)·fwd (Boström et al. 1996)."""
    if not len(a_t1):
        return 0.0
    f = np.asarray(fwd, float)
    f = f / max(float(np.linalg.norm(f)), 1e-12)
    a_rel = (a_t1 - a_head) @ f
    v_rel = np.cumsum(a_rel) * dt
    return float(np.max(0.2 * a_rel + v_rel ** 2))


@dataclass(frozen=True)
class JoltLabel:
    """One jolt or voluntary head turn. Times in s from the start; accelerations in g."""

    t_start: float
    t_peak: float
    t_end: float
    kind: str
    severity: str
    peak_head_acc_g: float
    peak_trunk_acc_g: float
    peak_neck_angvel_dps: float
    peak_vehicle_acc_g: float = 0.0
    peak_head_rel_acc_g: float = 0.0
    grade_value: float = 0.0  # the graded quantity (module docstring): g, or m²/s² (NIC) for rear impacts


@dataclass(frozen=True)
class PostureLabel:
    """A held posture (transition excluded). Means of the truth signals over [t_start, t_end], deg."""

    t_start: float
    t_end: float
    kind: str
    mean_neck_flexion_deg: float
    mean_trunk_inclination_deg: float
    mean_neck_lateral_deg: float
    activity: str = ""


@dataclass
class Labels:
    """All labels of a run."""

    events: list[JoltLabel] = field(default_factory=list)
    postures: list[PostureLabel] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable form: ``{"events": [...], "postures": [...]}`` of plain dicts."""
        return {
            "events": [asdict(e) for e in self.events],
            "postures": [asdict(p) for p in self.postures],
        }


def _event_windows(tl: Timeline):
    """(kind, t_on, t_off, axis) of every labelled event; axis 0 fore-aft, 1 lateral, 2 vertical."""
    for start, seg in zip(tl.starts, tl.segments):
        for e in seg.events:
            t0 = float(start + e.t_s)
            if isinstance(e, HeadTurn):
                yield "head_turn", t0, t0 + 2 * e.move_s + e.hold_s + HEAD_TURN_SETTLE_S, None
            elif isinstance(e, VehicleAccel) and e.label:
                yield e.label, t0, t0 + e.length_s + VEHICLE_SETTLE_S, 0
            elif isinstance(e, Corner):
                yield "lateral", t0, t0 + e.duration_s + VEHICLE_SETTLE_S, 1
            elif isinstance(e, Pothole):
                sig = e.width_s / 2
                yield "pothole", t0 - 3 * sig, t0 + 3 * sig + VEHICLE_SETTLE_S, 2
            elif isinstance(e, RearImpact):
                yield "rear_impact", t0, t0 + e.width_s + VEHICLE_SETTLE_S, 0


def make_labels(
    tl: Timeline,
    kin: Kinematics,
    t_out: np.ndarray,
    t_int: np.ndarray,
    truth_neck_flex: np.ndarray,
    truth_trunk_inc: np.ndarray,
    truth_neck_lat: np.ndarray,
) -> Labels:
    """Measure every label from the clean output signals (and the internal vehicle motion)."""
    head_lin = quat.rotate(kin.head.q_sensor, kin.head.acc)
    trunk_lin = quat.rotate(kin.trunk.q_sensor, kin.trunk.acc)
    head_acc = np.linalg.norm(head_lin - GRAVITY_UP, axis=1) / G
    trunk_acc = np.linalg.norm(trunk_lin - GRAVITY_UP, axis=1) / G
    rel_acc = np.linalg.norm(head_lin - trunk_lin, axis=1) / G
    rel_w = quat.rotate(kin.head.q_sensor, kin.head.gyr) - quat.rotate(kin.trunk.q_sensor, kin.trunk.gyr)
    rel_w_dps = np.rad2deg(np.linalg.norm(rel_w, axis=1))
    dt_out = float(t_out[1] - t_out[0]) if len(t_out) > 1 else 0.01
    dt_int = float(t_int[1] - t_int[0]) if len(t_int) > 1 else dt_out
    vehicle_sustained = sustained_g(kin.vehicle_acc[:2].T, dt_int)
    fwd = quat.axis_in_world(kin.trunk.q_segment, 0)

    events = []
    for kind, t_on, t_off, axis in _event_windows(tl):
        i0, i1 = (int(i) for i in np.searchsorted(t_out, [t_on, t_off]))
        i0 = min(i0, len(t_out) - 1)
        i1 = max(i1, i0 + 1)
        k = i0 + int(np.argmax(head_acc[i0:i1]))
        if axis is None:
            peak_vehicle = grade = 0.0
        else:
            j0, j1 = np.searchsorted(t_int, [t_on, t_off])
            peak_vehicle = float(np.max(np.abs(kin.vehicle_acc[axis, j0:j1]))) / G
            if kind in MANOEUVRES:  # the vehicle's sustained acceleration over its input
                j1 = max(int(np.searchsorted(t_int, t_off - VEHICLE_SETTLE_S + LOWPASS_DELAY_S)), j0 + 1)
                grade = float(vehicle_sustained[j0:j1].max())
                k = manoeuvre_peak(t_out, t_int[j0:j1], vehicle_sustained[j0:j1])
            elif kind == "pothole":  # the seat: the vehicle's vertical input in this family
                grade = float(np.max(np.abs(kin.vehicle_acc[2, j0:j1]))) / G
            else:  # rear impact: NIC from its onset
                n = i0 + max(1, int(round(NIC_SPAN_S / dt_out)))
                grade = nic_max(trunk_lin[i0:n] - GRAVITY_UP, head_lin[i0:n] - GRAVITY_UP, fwd[i0] * [1.0, 1.0, 0.0], dt_out)
        events.append(
            JoltLabel(
                t_start=t_on,
                t_peak=float(t_out[k]),
                t_end=t_off,
                kind=kind,
                severity=severity(kind, grade),
                peak_head_acc_g=float(head_acc[i0:i1].max()),
                peak_trunk_acc_g=float(trunk_acc[i0:i1].max()),
                peak_neck_angvel_dps=float(rel_w_dps[i0:i1].max()),
                peak_vehicle_acc_g=peak_vehicle,
                peak_head_rel_acc_g=float(rel_acc[i0:i1].max()),
                grade_value=grade,
            )
        )
    events.sort(key=lambda e: e.t_start)

    postures = []
    for start, tr, seg in zip(tl.starts, tl.transitions, tl.segments):
        if seg.posture_label is None:
            continue
        a, b = float(start + tr), float(start + seg.duration_s)
        sel = (t_out >= a) & (t_out < b)
        if not sel.any():
            continue
        postures.append(
            PostureLabel(
                t_start=a,
                t_end=b,
                kind=seg.posture_label,
                mean_neck_flexion_deg=float(truth_neck_flex[sel].mean()),
                mean_trunk_inclination_deg=float(truth_trunk_inc[sel].mean()),
                mean_neck_lateral_deg=float(truth_neck_lat[sel].mean()),
                activity=seg.activity,
            )
        )
    return Labels(events, postures)
