"""What the simulated wearer does: a list of segments, each with a target posture and events.

A :class:`Segment` holds a posture (:class:`Posture`) for ``duration_s``; the change from
the previous segment's posture happens during the first ``transition_s`` seconds with a
minimum-jerk ramp, and the segment's activity applies from its start. Events inside a
segment are placed at ``t_s`` seconds after the segment start:

* :class:`HeadTurn` — a voluntary quick head rotation and return (labelled ``head_turn``,
  severity ``none``).
* :class:`BodyTurn` — the whole body (and walking direction) turns; never labelled.
* :class:`VehicleAccel` — a jerk-limited longitudinal vehicle acceleration (+ forward) or
  braking (−); labelled with ``label`` (``"braking"``/``"acceleration"``) or unlabelled
  routine speed changes when ``label`` is None.
* :class:`Corner` — the vehicle changes heading; lateral acceleration = speed × yaw rate
  (labelled ``lateral``).
* :class:`Pothole` — a short upward seat shock (labelled ``pothole``).
* :class:`RearImpact` — the seat back pushes the occupant forward with a short Hann pulse
  (labelled ``rear_impact``).

The vehicle speed is the integral of all VehicleAccel and RearImpact pulses, so a script
must bring it up from and back to zero itself (:func:`speed_change` helps);
``simulate`` raises :class:`~nape.sim.settings.SimError` if it would go negative.
``SimSettings.time_scale`` stretches or compresses the quiet time between events but
never the events themselves (:func:`scaled`), so a compressed day still contains every
jolt with its scripted magnitude.

:func:`default_day_script` is the ~15-minute scripted day described in the module docs of
:mod:`nape.sim`. Numbers and where they come from:

* Keyboard hunch: neck flexion 27°, trunk 22° forward — within the 25–30° neck / 20–25°
  trunk the project brief asks for, and in line with observational studies of computer
  work where mean neck flexion is roughly 20–30° (e.g. Szeto, Straker & Raine 2002,
  Appl Ergon 33:75).
* Phone: neck flexion 45°, trunk 10° — smartphone texting postures of 33–45° head flexion
  have been reported (e.g. Lee et al. 2015; Hansraj 2014 discusses 15–60°).
* Walking: 1.3 m/s, 1.9 steps/s — typical self-selected adult gait.
* Driving (50 km/h cruise): routine braking 0.25 g; harsh 0.42 g; emergency 0.8 g;
  hard acceleration 0.45 g; pothole 2.2 g at the seat for ~60 ms; a 90° corner at
  30 km/h (~0.5 g lateral); a low-speed rear impact of 2 g, 150 ms (delta-V ≈ 5.3 km/h,
  within the 4–10 km/h range of volunteer rear-impact tests). Severity grades: see :mod:`nape.sim.labels`.
* Bed: supine with the trunk 85° back (upper back slightly raised), neck flexed 12° on the
  pillow; then on the right side with a low pillow, the head dropping 15° into lateral
  bending towards the mattress.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .sensor import G

ACTIVITY_NAMES: tuple[str, ...] = (
    "standing",
    "sitting",
    "walking",
    "driving",
    "lying_supine",
    "lying_side",
)


@dataclass(frozen=True)
class Posture:
    """Target posture held during a segment.

    Attributes:
        trunk_pitch_deg: trunk inclination relative to the support (ground/vehicle),
            forward (flexion) positive; -90 lies supine.
        trunk_roll_deg: lateral lean of the trunk, to the right positive.
        trunk_axial_deg: trunk rotation about its own long axis, to the left positive
            (with pitch -90, axial -90 lies on the right side).
        neck_flexion_deg: head relative to trunk about the trunk's left axis, flexion +.
        neck_lateral_deg: lateral bending of the neck, to the right +.
        neck_axial_deg: axial head rotation relative to the trunk, to the left +.
        hip_height_m: height of the hip joint above the floor / vehicle floor, m.
        hip_forward_m: fore-aft hip position in the support frame, m.
    """

    trunk_pitch_deg: float = 0.0
    trunk_roll_deg: float = 0.0
    trunk_axial_deg: float = 0.0
    neck_flexion_deg: float = 0.0
    neck_lateral_deg: float = 0.0
    neck_axial_deg: float = 0.0
    hip_height_m: float = 0.95
    hip_forward_m: float = 0.0


@dataclass(frozen=True)
class HeadTurn:
    """Voluntary head rotation by ``angle_deg`` (left +) in ``move_s``, held ``hold_s``, and back."""

    t_s: float
    angle_deg: float
    move_s: float = 0.45
    hold_s: float = 0.6


@dataclass(frozen=True)
class BodyTurn:
    """Whole-body heading change by ``angle_deg`` (left +) over ``duration_s``; unlabelled."""

    t_s: float
    angle_deg: float
    duration_s: float = 3.0


@dataclass(frozen=True)
class VehicleAccel:
    """Vehicle longitudinal acceleration ``accel_g`` (+ forward, g) with raised-cosine edges.

    Speed change = ``accel_g * G * (rise_s + hold_s)``. ``label`` is the jolt kind to
    report ("braking", "acceleration") or None for a routine, unlabelled speed change.
    """

    t_s: float
    accel_g: float
    rise_s: float
    hold_s: float
    label: str | None = None

    @property
    def delta_v(self) -> float:
        return self.accel_g * G * (self.rise_s + self.hold_s)

    @property
    def length_s(self) -> float:
        return 2 * self.rise_s + self.hold_s


@dataclass(frozen=True)
class Corner:
    """Vehicle heading change by ``angle_deg`` (left +) over ``duration_s`` (minimum jerk)."""

    t_s: float
    angle_deg: float
    duration_s: float = 5.0


@dataclass(frozen=True)
class Pothole:
    """Upward seat shock peaking at ``peak_g`` (excluding gravity) at ``t_s``; positive lobe lasts ``width_s``."""

    t_s: float
    peak_g: float = 2.2
    width_s: float = 0.06


@dataclass(frozen=True)
class RearImpact:
    """Forward push of the seat: Hann pulse of ``peak_g`` lasting ``width_s`` (delta-V = peak·G·width/2)."""

    t_s: float
    peak_g: float = 2.0
    width_s: float = 0.15


Event = HeadTurn | BodyTurn | VehicleAccel | Corner | Pothole | RearImpact


@dataclass(frozen=True)
class Segment:
    """One scripted stretch of the day.

    Attributes:
        name: free text, for plots and debugging.
        duration_s: length at time_scale 1, s.
        activity: one of :data:`ACTIVITY_NAMES`.
        posture: target posture.
        posture_label: kind of :class:`~nape.sim.labels.PostureLabel` to emit for the held
            part of the segment (after the transition), or None.
        transition_s: minimum-jerk ramp from the previous posture, s (not time-scaled).
        heading_deg: body heading relative to the start heading, deg (left +); None keeps
            the previous one.
        walk_speed_mps: walking speed, m/s (0 unless walking).
        sway: scale of postural sway and head micro-movements (1 = relaxed standing).
        events: events at offsets from the segment start.
    """

    name: str
    duration_s: float
    activity: str
    posture: Posture
    posture_label: str | None = None
    transition_s: float = 2.0
    heading_deg: float | None = None
    walk_speed_mps: float = 0.0
    sway: float = 1.0
    events: tuple[Event, ...] = field(default_factory=tuple)


def speed_change(t_s: float, delta_v_mps: float, accel_g: float, rise_s: float = 1.0, label: str | None = None) -> VehicleAccel:
    """A :class:`VehicleAccel` changing speed by ``delta_v_mps`` with plateau ``|accel_g|``.

    The rise time is shortened if the plateau would otherwise be negative.
    """
    a = abs(accel_g) * G
    rise = min(rise_s, abs(delta_v_mps) / a)
    hold = abs(delta_v_mps) / a - rise
    return VehicleAccel(t_s, abs(accel_g) if delta_v_mps >= 0 else -abs(accel_g), rise, hold, label)


EVENT_GAP_S = 1.0  # quiet time kept between consecutive events when time_scale compresses a script


def extent(e: Event) -> tuple[float, float]:
    """Start and end of an event's input relative to its ``t_s``, s."""
    if isinstance(e, HeadTurn):
        return 0.0, 2 * e.move_s + e.hold_s
    if isinstance(e, BodyTurn | Corner):
        return 0.0, e.duration_s
    if isinstance(e, VehicleAccel):
        return 0.0, e.length_s
    if isinstance(e, RearImpact):
        return 0.0, e.width_s
    return -1.5 * e.width_s, 1.5 * e.width_s  # Pothole: centred on t_s, ±3 sigma


def _scaled_events(seg: Segment, time_scale: float) -> tuple[tuple[Event, ...], float]:
    """Events at scaled offsets, never squeezed into each other, and the scaled duration."""
    order = sorted(range(len(seg.events)), key=lambda i: seg.events[i].t_s)
    placed: dict[int, Event] = {}
    end_orig = end_new = -np.inf
    start_orig = start_new = 0.0
    for i in order:
        e = seg.events[i]
        a, b = extent(e)
        gap = e.t_s + a - end_orig
        if gap < 0:  # overlaps the previous event in the script: keep the same relative timing
            t = start_new + (e.t_s - start_orig)
        else:  # otherwise compress the quiet time, keeping at least min(gap, EVENT_GAP_S)
            t = max(e.t_s * time_scale, end_new + min(gap, EVENT_GAP_S) - a)
        placed[i] = replace(e, t_s=t)
        start_orig, start_new = e.t_s, t
        end_orig, end_new = max(end_orig, e.t_s + b), max(end_new, t + b)
    dur = seg.duration_s * time_scale
    if placed:
        dur = max(dur, end_new + min(max(seg.duration_s - end_orig, 0.0), EVENT_GAP_S))
    return tuple(placed[i] for i in range(len(seg.events))), dur


def scaled(script: list[Segment], time_scale: float) -> list[Segment]:
    """The script with waiting times multiplied by ``time_scale``.

    Segment durations and event offsets are multiplied by ``time_scale``, but transition
    ramps and events keep their physical durations, and events that followed each other in
    the script stay in sequence with at least ``min(original gap, EVENT_GAP_S)`` between
    them (so a compressed drive still brakes, re-accelerates and corners exactly as
    scripted); a segment grows if its events need more room. A transition longer than the
    scaled segment is shortened to the segment length. At ``time_scale >= 1`` a script whose
    events fit is only stretched.
    """
    out = []
    for seg in script:
        events, dur = _scaled_events(seg, time_scale)
        out.append(replace(seg, duration_s=dur, transition_s=min(seg.transition_s, dur), events=events))
    return out


def _driving_events() -> tuple[Event, ...]:
    cruise = 13.9  # m/s = 50 km/h
    brake_routine = VehicleAccel(35.0, -0.25, 0.6, 1.5, "braking")
    brake_harsh = VehicleAccel(65.0, -0.42, 0.4, 1.2, "braking")
    brake_emergency = VehicleAccel(95.0, -0.80, 0.25, 1.2, "braking")
    dv_emerg = -brake_emergency.delta_v
    hard_accel_rise = 0.3
    hard_accel = VehicleAccel(102.0, 0.45, hard_accel_rise, dv_emerg / (0.45 * G) - hard_accel_rise, "acceleration")
    corner_speed = 8.3  # m/s = 30 km/h
    rear = RearImpact(195.0, 2.0, 0.15)
    rear_dv = rear.peak_g * G * rear.width_s / 2
    return (
        speed_change(10.0, cruise, 0.15, 1.5),
        brake_routine,
        speed_change(45.0, -brake_routine.delta_v, 0.12),
        brake_harsh,
        speed_change(75.0, -brake_harsh.delta_v, 0.15),
        brake_emergency,
        hard_accel,
        Pothole(125.0, 2.2, 0.06),
        speed_change(138.0, corner_speed - cruise, 0.15),
        Corner(147.0, 90.0, 5.0),
        speed_change(156.0, cruise - corner_speed, 0.15),
        speed_change(175.0, -cruise, 0.2),  # stop at a red light
        rear,  # hit from behind while stopped
        speed_change(196.5, -rear_dv, 0.3, 0.4),  # driver brakes back to a stop
    )


def default_day_script() -> list[Segment]:
    """The default ~15.4-minute scripted day (922 s at time_scale 1)."""
    P = Posture
    return [
        Segment("calibration_neutral", 20.0, "standing", P(), "upright", transition_s=0.0, sway=0.3),
        Segment("desk_upright", 45.0, "sitting", P(trunk_pitch_deg=3, neck_flexion_deg=5, hip_height_m=0.50),
                "upright", transition_s=3.0, sway=0.6),
        Segment("keyboard_hunch", 200.0, "sitting",
                P(trunk_pitch_deg=22, neck_flexion_deg=27, neck_lateral_deg=2, hip_height_m=0.50, hip_forward_m=0.05),
                "keyboard_hunch", transition_s=3.0, sway=0.5),
        Segment("upright_break", 40.0, "standing", P(), "upright", transition_s=3.0, sway=0.8,
                events=(HeadTurn(12.0, 70.0, 0.45, 0.8), HeadTurn(26.0, -60.0, 0.40, 0.6))),
        Segment("phone", 140.0, "sitting",
                P(trunk_pitch_deg=10, neck_flexion_deg=45, neck_lateral_deg=-3, hip_height_m=0.48),
                "phone", transition_s=3.0, sway=0.5),
        Segment("walk", 60.0, "walking", P(trunk_pitch_deg=3, neck_flexion_deg=5), None, transition_s=2.5,
                walk_speed_mps=1.3, sway=0.7,
                events=(BodyTurn(20.0, 90.0, 3.0), BodyTurn(40.0, 90.0, 3.0))),
        Segment("drive", 230.0, "driving",
                P(trunk_pitch_deg=-10, neck_flexion_deg=10, hip_height_m=0.55, hip_forward_m=0.0),
                "driving", transition_s=3.0, sway=0.5, events=_driving_events()),
        Segment("leave_car", 12.0, "standing", P(), None, transition_s=3.0, sway=0.8),
        Segment("sit_on_bed", 10.0, "sitting", P(trunk_pitch_deg=5, neck_flexion_deg=10, hip_height_m=0.50),
                None, transition_s=3.0, sway=0.6),
        Segment("bed_supine", 75.0, "lying_supine",
                P(trunk_pitch_deg=-85, neck_flexion_deg=12, hip_height_m=0.55, hip_forward_m=-0.3),
                "bed_supine", transition_s=3.0, sway=0.2),
        Segment("bed_side_low_pillow", 90.0, "lying_side",
                P(trunk_pitch_deg=-85, trunk_axial_deg=-90, neck_flexion_deg=10, neck_lateral_deg=15,
                  hip_height_m=0.55, hip_forward_m=-0.3),
                "bed_low_pillow", transition_s=3.0, sway=0.2),
    ]
