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
* ``t_peak`` — time of the largest head linear acceleration in the window.
* ``t_start`` — onset of the event's input (vehicle pulse, head-turn start); ``t_end`` —
  end of the input plus a settling time (1 s for vehicle events, enough for the 2.5 Hz,
  ζ 0.4 head response to ring down; 0.3 s for head turns).

Severity grades what the wearer's upper body experienced — the same physical quantity the
analysis measures (``nape.analysis.jolts``), at the same body segment, from the clean
signals of the upper-back (T1–T4) sensor: its linear acceleration ``a = R_sensor f_clean +
g_world`` (world axes, gravity removed) at the 100 Hz output rate. ``grade_g`` holds it:

* braking, acceleration, lateral (manoeuvres): the peak of the *sustained* horizontal
  acceleration, ``|(a_x, a_y)|`` after a causal 2nd-order Butterworth low-pass at
  ``AnalysisSettings.vehicle_lowpass_hz`` (2 Hz; braking and cornering last 0.5–10 s). At
  these frequencies a belted occupant's torso moves with the car, so the published
  vehicle-deceleration boundaries apply to it: 0.35 g and 0.65 g (harsh braking 0.35–0.45 g,
  emergency 0.64–0.97 g; Bagdadi 2013, Transp Res F 16:117; the UDRIVE/TeleFOT/100-Car
  analyses use 0.3–0.45 g). Routine braking (~0.25 g) is "mild" — not worth flagging.
  Lateral uses the same cut-offs (an assumption). The horizontal magnitude, not one axis,
  so the grade does not depend on the wearer's heading in the seat.
* pothole (upward seat shock): the peak of ``|a_z|`` (vertical) at the recording's own
  bandwidth (the sensor's anti-alias low-pass; CFC 60 of SAE J211, a 100 Hz corner, would
  not change a 100 Hz stream).
* rear_impact (seat-back push): the peak of ``|(a_x, a_y)|`` at the recording's bandwidth.
* shocks use 1.5 g and 3.0 g (``AnalysisSettings.shock_moderate_g`` / ``shock_severe_g``):
  pothole seat shocks start around 1.4 g (ISO 2631-5 guidance) and low-speed rear impacts
  reach head accelerations of ~2 g above the chest (Siegmund et al. 1997, SAE 973341). Those
  figures are at the seat; the seated body (vertical resonance 4.5 Hz, ζ 0.4 here; 4–6 Hz in
  Fairley & Griffin 1989, J Biomech 22:81) passes a 40–100 ms seat shock to the upper back
  at 0.4–1.2 times its peak (short pulses attenuated, longer ones amplified), so the same
  numbers at the back are a conservative project choice.
* head_turn: always "none" (voluntary movement, not a jolt).

``peak_vehicle_acc_g`` keeps the vehicle's own input peak along the event's axis (gravity
excluded) for reference; it no longer decides the grade (the seat-to-back transmission of
short shocks is far from 1, and a body-worn sensor cannot see the seat).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import signal

from nape import quat
from nape.settings import AnalysisSettings

from .kinematics import GRAVITY_UP, Kinematics
from .motion import Timeline
from .script import Corner, HeadTurn, Pothole, RearImpact, VehicleAccel
from .sensor import G

_S = AnalysisSettings()
SEVERITY_THRESHOLDS_G: dict[str, tuple[float, float]] = {
    "braking": (_S.jolt_moderate_g, _S.jolt_severe_g),
    "acceleration": (_S.jolt_moderate_g, _S.jolt_severe_g),
    "lateral": (_S.jolt_moderate_g, _S.jolt_severe_g),
    "pothole": (_S.shock_moderate_g, _S.shock_severe_g),
    "rear_impact": (_S.shock_moderate_g, _S.shock_severe_g),
}
GRADE_LOWPASS_HZ = _S.vehicle_lowpass_hz  # sustained (manoeuvre) acceleration, causal Butterworth, 2nd order
VEHICLE_SETTLE_S = 1.0
HEAD_TURN_SETTLE_S = 0.3


def severity(kind: str, grade_g: float) -> str:
    """Grade of a jolt from its graded upper-back acceleration (g, module docstring);
    "none" for voluntary head turns."""
    if kind == "head_turn":
        return "none"
    lo, hi = SEVERITY_THRESHOLDS_G[kind]
    a = abs(grade_g)
    return "mild" if a < lo else "moderate" if a < hi else "severe"


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
    grade_g: float = 0.0  # the graded upper-back quantity (module docstring), g


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


GRADED_BY = {"braking": "sustained", "acceleration": "sustained", "lateral": "sustained",
             "pothole": "vertical", "rear_impact": "horizontal"}


def grade_signals(lin_world: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """The graded quantities (module docstring) of upper-back linear acceleration (n, 3),
    m/s^2 in world axes, sampled every ``dt`` s; each (n,) in g."""
    sos = signal.butter(2, GRADE_LOWPASS_HZ, fs=1.0 / dt, output="sos")
    sustained = signal.sosfilt(sos, lin_world[:, :2], axis=0)
    return {
        "sustained": np.hypot(sustained[:, 0], sustained[:, 1]) / G,
        "vertical": np.abs(lin_world[:, 2]) / G,
        "horizontal": np.hypot(lin_world[:, 0], lin_world[:, 1]) / G,
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
    grade_of = grade_signals(trunk_lin - GRAVITY_UP, float(t_out[1] - t_out[0]) if len(t_out) > 1 else 0.01)

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
            grade = float(grade_of[GRADED_BY[kind]][i0:i1].max())
        events.append(
            JoltLabel(
                t_start=t_on,
                t_peak=float(t_out[k]),
                t_end=t_off,
                kind=kind,
                severity=severity(kind, grade),
                peak_head_acc_g=float(head_acc[k]),
                peak_trunk_acc_g=float(trunk_acc[i0:i1].max()),
                peak_neck_angvel_dps=float(rel_w_dps[i0:i1].max()),
                peak_vehicle_acc_g=peak_vehicle,
                peak_head_rel_acc_g=float(rel_acc[i0:i1].max()),
                grade_g=grade,
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
