"""Randomised scenarios for validating the analysis: drives, workdays, nights and mixed days.

Every generator takes a :class:`numpy.random.Generator` and returns a script (a list of
:class:`~nape.sim.script.Segment`) for :func:`nape.sim.simulate`; the ground-truth labels
then come from the simulator itself (:mod:`nape.sim.labels`), never from here.
:func:`scenario` turns a seed and a kind into a deterministic ``(script, settings)`` pair.

Every script starts with the wearer standing upright for :data:`CALIBRATION_S` seconds
(the analysis takes the start of a recording as the neutral posture, and the wearer is
asked to start upright), unless a generator is called with ``calibrate=False`` to be
spliced into a longer day.

What the generators draw (ranges are the ones :data:`RANGES` states and the tests check):

* :func:`random_drive` — walk to the car, get in, then a drive built from manoeuvres in a
  random order, separated by 3–12 s of cruising at 8–22 m/s (30–80 km/h):

  - braking labelled ``"braking"``: *routine* 0.15–0.30 g (graded mild), *harsh* 0.35–0.60 g
    (moderate), *emergency* 0.65–1.0 g (severe) — naturalistic-driving figures quoted in
    :mod:`nape.sim.labels`. Plateaus last at most 3 s (kinematic events in naturalistic
    data are short), so a braking manoeuvre lasts 0.5–4 s;
  - hard accelerations labelled ``"acceleration"``, 0.30–0.60 g from (near) standstill;
  - potholes of 0.8–4.0 g at the seat, 40–100 ms wide (mild to severe at the upper back,
    which sees 0.4–1.2 times the seat peak);
  - corners of 30–100° at 5–12 m/s, lasting 2.5–10 s, aimed at 0.12–0.70 g lateral
    (labelled ``"lateral"``; the simulator measures the real peak);
  - rear impacts while stopped at a light, 1.0–4.5 g seat-back pulses of 80–200 ms
    (delta-V 1.4–15.9 km/h), after which the driver brakes the car back to a stop;
  - voluntary head turns of the driver (labelled ``"head_turn"``, negatives for a jolt
    detector): mirror checks of 20–45° in 0.25–0.45 s and shoulder checks of 60–85° in
    0.35–0.55 s, about one per 35 s of free driving, never within 2 s of a labelled jolt;
  - driver head motion: the drive is cut into 20–60 s stretches with different seated
    postures (trunk −15…−5°, neck flexion 2–15°, lateral ±3°) and occasional 3–6 s
    glances down at the dashboard (neck flexion 25–40°, unlabelled);
  - unlabelled routine speed changes of 0.08–0.18 g bring the car up to speed, slow it for
    corners and stop it at lights (below any harsh-braking threshold).

  Every drive contains at least one of each of: routine, harsh and emergency braking, hard
  acceleration, pothole, corner, rear impact, mirror check and shoulder check.

* :func:`random_workday` — desk work with random posture episodes: upright sitting,
  keyboard hunch (neck flexion 15–35°, trunk 12–32°), phone use sitting or standing (neck
  25–55°), standing, breaks with head turns, walking (sometimes looking at a phone). Each
  episode lasts 10–50 s (below the 60 s hold time), 45–90 s (around it) or 90–600 s.

* :func:`random_night` — sit on the bed, maybe read reclined against the headboard (trunk
  25–40° back, neck flexion 20–45°: a real neck-flexion episode that is not lying), then
  lie supine or on either side with a low or high pillow, turning over between postures
  (2.5–5 s turns), and maybe get up again at the end.

* ``"mixed"`` (:func:`random_mixed`) — a workday, a walk to the car, a drive, a walk and a
  night, in that order.

Grades. The braking / pothole / impact magnitudes above are the *inputs* drawn here (vehicle
deceleration, seat shock, seat-back push). The labels' ``severity`` grades each cause on the
quantity that loads the neck in it, computed from the simulated physics — the vehicle's
sustained acceleration for manoeuvres, the seat's vertical shock for potholes, NIC of the
true head and upper-back motion for rear impacts (:mod:`nape.sim.labels`, ``[GRADE]`` in
:mod:`nape.settings`) — the same definitions the analysis estimates from its sensors. So
"harsh" braking drawn at 0.35–0.60 g is moderate, and the rear impacts drawn here (Δv 1–16
km/h into a seat back) load the simulated neck to NIC 2–7 m²/s² on the bench's seeds: mild.

:func:`random_settings` draws the sensor side: a mounting misalignment of 0–15° about a
random axis per IMU (:attr:`SimSettings.mounting_misalignment_deg`) and the error model of
either supported IMU part (ICM-42688-P with probability 0.7, else MPU-6050), at 100 Hz with
both IMUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .script import (
    BodyTurn,
    Corner,
    Event,
    HeadTurn,
    Posture,
    Pothole,
    RearImpact,
    Segment,
    VehicleAccel,
    extent,
    speed_change,
)
from .sensor import G, SensorModel
from .settings import SimError, SimSettings

KINDS: tuple[str, ...] = ("drive", "workday", "night", "mixed")
CALIBRATION_S = 20.0
MAX_MISALIGNMENT_DEG = 15.0
DEFAULT_MINUTES: dict[str, float] = {"drive": 12.0, "workday": 30.0, "night": 30.0, "mixed": 45.0}

# Ranges drawn by the generators (the tests check the simulated labels against them).
RANGES: dict[str, tuple[float, float]] = {
    "brake_routine_g": (0.15, 0.30),
    "brake_harsh_g": (0.35, 0.60),
    "brake_emergency_g": (0.65, 1.0),
    "hard_accel_g": (0.30, 0.60),
    "routine_speed_change_g": (0.08, 0.18),
    "pothole_g": (0.8, 4.0),
    "pothole_width_s": (0.04, 0.10),
    "corner_target_g": (0.12, 0.70),
    "corner_deg": (30.0, 100.0),
    "corner_speed_mps": (5.0, 12.0),
    "corner_duration_s": (2.5, 10.0),
    "rear_impact_g": (1.0, 4.5),
    "rear_impact_width_s": (0.08, 0.20),
    "cruise_mps": (8.0, 22.0),
    "mirror_check_deg": (20.0, 45.0),
    "shoulder_check_deg": (60.0, 85.0),
    "plateau_max_s": (0.0, 3.0),
    "misalignment_deg": (0.0, MAX_MISALIGNMENT_DEG),
}

# Label kinds each scenario kind promises to contain (at least one of each).
PROMISED_EVENTS: dict[str, tuple[str, ...]] = {
    "drive": ("braking", "acceleration", "pothole", "lateral", "rear_impact", "head_turn"),
    "workday": ("head_turn",),
    "night": (),
    "mixed": ("braking", "acceleration", "pothole", "lateral", "rear_impact", "head_turn"),
}
PROMISED_POSTURES: dict[str, tuple[str, ...]] = {
    "drive": ("upright", "driving"),
    "workday": ("upright", "keyboard_hunch", "phone"),
    "night": ("upright",),  # plus at least one lying label, see LYING_LABELS
    "mixed": ("upright", "keyboard_hunch", "phone", "driving"),
}
LYING_LABELS: tuple[str, ...] = (
    "bed_supine_low_pillow",
    "bed_supine_high_pillow",
    "bed_side_low_pillow",
    "bed_side_high_pillow",
)

_SEATED_CAR = dict(hip_height_m=0.55, hip_forward_m=0.0)
_DESK = dict(hip_height_m=0.50)
_BED = dict(hip_height_m=0.55, hip_forward_m=-0.3)


def _u(rng: np.random.Generator, key_or_lo, hi: float | None = None) -> float:
    lo, hi = RANGES[key_or_lo] if hi is None else (key_or_lo, hi)
    return float(rng.uniform(lo, hi))


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def calibration_segment(rng: np.random.Generator) -> Segment:
    """Standing still and upright for :data:`CALIBRATION_S` seconds (labelled ``upright``)."""
    return Segment("calibration_neutral", CALIBRATION_S, "standing", Posture(), "upright",
                   transition_s=0.0, sway=float(rng.uniform(0.2, 0.4)))


def random_settings(rng: np.random.Generator, rate_hz: float = 100.0, head_imu: bool = True) -> SimSettings:
    """Sensor side of a scenario: misalignment 0–15° and an ICM-42688-P (70 %) or MPU-6050 part."""
    mis = _u(rng, "misalignment_deg")
    sensor = SensorModel.icm42688() if rng.random() < 0.7 else SensorModel.mpu6050()
    return SimSettings(rate_hz=rate_hz, head_imu=head_imu, sensor=sensor, mounting_misalignment_deg=mis)


# ---------------------------------------------------------------------------- driving


@dataclass
class _Drive:
    """Builder of a drive: absolute event times from the drive's start, current speed."""

    rng: np.random.Generator
    t: float = 2.0
    v: float = 0.0
    events: list[tuple[float, Event]] = field(default_factory=list)
    jolt_windows: list[tuple[float, float]] = field(default_factory=list)  # labelled vehicle events

    def add(self, ev: Event, labelled: bool) -> None:
        a, b = extent(ev)
        self.events.append((ev.t_s, ev))
        if labelled:
            self.jolt_windows.append((ev.t_s + a, ev.t_s + b + 1.0))  # + the labels' settling time
        if isinstance(ev, VehicleAccel):
            self.v += ev.delta_v
        elif isinstance(ev, RearImpact):
            self.v += ev.peak_g * G * ev.width_s / 2
        self.t = max(self.t, ev.t_s + b)

    def wait(self, lo: float, hi: float) -> None:
        self.t += float(self.rng.uniform(lo, hi))

    def routine_to(self, target: float) -> None:
        """Unlabelled gentle speed change to ``target`` m/s (0.08–0.18 g)."""
        dv = target - self.v
        if abs(dv) < (1e-9 if target == 0.0 else 0.3):
            return
        a = _u(self.rng, "routine_speed_change_g")
        self.add(speed_change(self.t, dv, a, float(self.rng.uniform(0.8, 1.5))), labelled=False)
        self.wait(1.0, 3.0)

    def ensure_moving(self, min_v: float) -> None:
        if self.v < min_v:
            self.routine_to(max(min_v + 1.0, _u(self.rng, "cruise_mps")))

    # manoeuvres ---------------------------------------------------------------------

    def brake(self, category: str) -> None:
        rng = self.rng
        self.ensure_moving(8.0)
        a = _u(rng, f"brake_{category}_g")
        rise = {"routine": (0.5, 1.0), "harsh": (0.3, 0.5), "emergency": (0.15, 0.3)}[category]
        rise_s = float(rng.uniform(*rise))
        cap = a * G * (rise_s + RANGES["plateau_max_s"][1])  # speed change of the longest plateau
        dv_max = min(self.v, cap)
        dv_min = min(dv_max, 3.0 if category == "routine" else 4.0)
        dv = float(rng.uniform(dv_min, dv_max))
        if self.v - dv < 1.5:  # no crawling on: to a full stop, or leave 1.5 m/s if that is too long
            dv = self.v if self.v <= cap else self.v - 1.5
        self.add(speed_change(self.t, -dv, a, rise_s, label="braking"), labelled=True)
        self.wait(2.0, 5.0)
        if self.v < 1e-6:
            self.v = 0.0
            self.wait(1.0, 4.0)

    def hard_acceleration(self) -> None:
        rng = self.rng
        if self.v > 6.0:
            self.routine_to(float(rng.uniform(0.0, 5.0)))
            self.wait(1.0, 3.0)
        a = _u(rng, "hard_accel_g")
        rise_s = float(rng.uniform(0.2, 0.4))
        dv_max = a * G * (rise_s + RANGES["plateau_max_s"][1])
        target = min(_u(rng, "cruise_mps"), self.v + dv_max)
        dv = max(target - self.v, 3.0)
        self.add(speed_change(self.t, dv, a, rise_s, label="acceleration"), labelled=True)
        self.wait(2.0, 5.0)

    def pothole(self) -> None:
        self.ensure_moving(5.0)
        ev = Pothole(self.t + 0.5, _u(self.rng, "pothole_g"), _u(self.rng, "pothole_width_s"))
        self.add(ev, labelled=True)
        self.wait(2.0, 5.0)

    def corner(self) -> None:
        rng = self.rng
        v_c = _u(rng, "corner_speed_mps")
        self.routine_to(v_c)
        angle = _u(rng, "corner_deg")
        a_target = _u(rng, "corner_target_g")
        # minimum-jerk heading change: peak yaw rate 1.875 angle / duration
        dur = self.v * 1.875 * np.deg2rad(angle) / (a_target * G)
        dur = float(np.clip(dur, *RANGES["corner_duration_s"]))
        self.add(Corner(self.t, _sign(rng) * angle, dur), labelled=True)
        self.wait(2.0, 4.0)

    def rear_impact(self) -> None:
        rng = self.rng
        self.routine_to(0.0)
        self.v = 0.0
        self.wait(2.0, 6.0)
        ev = RearImpact(self.t, _u(rng, "rear_impact_g"), _u(rng, "rear_impact_width_s"))
        self.add(ev, labelled=True)
        self.t += float(rng.uniform(0.8, 1.5))
        # the driver brakes the pushed car back to a stop, gently
        self.add(speed_change(self.t, -self.v, _u(rng, "routine_speed_change_g"), 0.4), labelled=False)
        self.v = 0.0
        self.wait(3.0, 8.0)


_DRIVE_MANOEUVRES: dict[str, float] = {  # relative frequency of extra manoeuvres
    "brake_routine": 0.26,
    "brake_harsh": 0.12,
    "brake_emergency": 0.06,
    "hard_acceleration": 0.10,
    "pothole": 0.18,
    "corner": 0.22,
    "rear_impact": 0.06,
}
_REQUIRED_MANOEUVRES = tuple(_DRIVE_MANOEUVRES)
_MANOEUVRE_S = 28.0  # mean drive time one manoeuvre takes, with its cruising


def _head_turn(rng: np.random.Generator, t: float, shoulder: bool) -> HeadTurn:
    if shoulder:
        return HeadTurn(t, _sign(rng) * _u(rng, "shoulder_check_deg"), float(rng.uniform(0.35, 0.55)),
                        float(rng.uniform(0.3, 0.8)))
    return HeadTurn(t, _sign(rng) * _u(rng, "mirror_check_deg"), float(rng.uniform(0.25, 0.45)),
                    float(rng.uniform(0.2, 0.8)))


def _free_gaps(busy: list[tuple[float, float]], t0: float, t1: float) -> list[tuple[float, float]]:
    """Gaps of [t0, t1] not covered by the ``busy`` intervals."""
    gaps, cur = [], t0
    for a, b in sorted(busy):
        if a > cur:
            gaps.append((cur, min(a, t1)))
        cur = max(cur, b)
        if cur >= t1:
            break
    if cur < t1:
        gaps.append((cur, t1))
    return [(a, b) for a, b in gaps if b > a]


def _place_head_turns(rng: np.random.Generator, d: _Drive, end: float) -> float:
    """Add mirror/shoulder checks in the free time; returns the (possibly extended) drive end."""
    margin = 2.0
    busy = [(a - margin, b + margin) for a, b in d.jolt_windows]
    placed: list[HeadTurn] = []
    for a, b in _free_gaps(busy, 3.0, end - 3.0):
        t = a + float(rng.exponential(35.0))
        while t + 2.5 < b:
            placed.append(_head_turn(rng, t, shoulder=rng.random() < 0.35))
            t += 3.0 + float(rng.exponential(35.0))
    kinds = {abs(h.angle_deg) >= 60 for h in placed}
    for shoulder in (False, True):
        if shoulder not in kinds:  # promised: at least one of each, at the end if need be
            placed.append(_head_turn(rng, end, shoulder))
            end += 6.0
    for h in placed:
        d.events.append((h.t_s, h))
    return end


def _drive_body(rng: np.random.Generator, minutes: float) -> list[Segment]:
    """The seated drive itself (car standing still at its start and end)."""
    n_total = max(len(_REQUIRED_MANOEUVRES), int(round(minutes * 60.0 / _MANOEUVRE_S)))
    names, probs = list(_DRIVE_MANOEUVRES), np.array(list(_DRIVE_MANOEUVRES.values()))
    extra = list(rng.choice(names, size=n_total - len(_REQUIRED_MANOEUVRES), p=probs / probs.sum()))
    order = list(_REQUIRED_MANOEUVRES) + [str(x) for x in extra]
    order = [order[i] for i in rng.permutation(len(order))]

    d = _Drive(rng)
    d.routine_to(_u(rng, "cruise_mps"))
    for name in order:
        if name.startswith("brake_"):
            d.brake(name.removeprefix("brake_"))
        else:
            getattr(d, name)()
        if d.v < 0.5:  # pull away again (routine), sometimes after a hard acceleration manoeuvre
            d.routine_to(_u(rng, "cruise_mps"))
        elif rng.random() < 0.4:
            d.routine_to(_u(rng, "cruise_mps"))
        d.wait(3.0, 12.0)
    d.routine_to(0.0)
    d.v = 0.0
    end = _place_head_turns(rng, d, d.t + 4.0)

    # cut into seated stretches at times where no event is running
    occupied = sorted((t + extent(e)[0] - 0.3, t + extent(e)[1] + 0.3) for t, e in d.events)
    merged: list[list[float]] = []
    for a, b in occupied:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])

    def free_at(x: float) -> float:
        for a, b in merged:
            if a <= x < b:
                return b
        return x

    cuts, x = [0.0], 0.0
    while True:
        x = free_at(x + float(rng.uniform(20.0, 60.0)))
        if x > end - 10.0:
            break
        cuts.append(x)
        if rng.random() < 0.2:  # glance down at the dashboard for 3-6 s, if that stays event-free
            g = float(rng.uniform(3.0, 6.0))
            if free_at(x) == x and all(b <= x or a >= x + g for a, b in merged):
                x += g
                cuts.append(-x)  # negative marks the end of a glance
    cuts.append(end)

    segs: list[Segment] = []
    bounds = [abs(c) for c in cuts]
    for k in range(len(bounds) - 1):
        a, b = bounds[k], bounds[k + 1]
        glance = k + 1 < len(cuts) and cuts[k + 1] < 0
        if glance:
            p = Posture(trunk_pitch_deg=_u(rng, -12.0, -5.0), neck_flexion_deg=_u(rng, 25.0, 40.0), **_SEATED_CAR)
            name, label, tr = "glance_dashboard", None, 1.0
        else:
            p = Posture(trunk_pitch_deg=_u(rng, -15.0, -5.0), neck_flexion_deg=_u(rng, 2.0, 15.0),
                        neck_lateral_deg=_u(rng, -3.0, 3.0), **_SEATED_CAR)
            name, label, tr = "drive", "driving", float(rng.uniform(1.5, 3.0))
        evs = tuple(_shift(e, -a) for t, e in sorted(d.events, key=lambda te: te[0]) if a <= t < b)
        segs.append(Segment(name, b - a, "driving", p, label, transition_s=min(tr, 0.5 * (b - a)),
                            sway=float(rng.uniform(0.4, 0.8)), events=evs))
    return segs


def _shift(e: Event, dt: float) -> Event:
    return replace(e, t_s=e.t_s + dt)


def _walk(rng: np.random.Generator, name: str, lo: float, hi: float, phone: bool = False) -> Segment:
    dur = float(rng.uniform(lo, hi))
    neck = _u(rng, 25.0, 45.0) if phone else _u(rng, 0.0, 12.0)
    evs = []
    t = float(rng.uniform(5.0, 15.0))
    while t + 4.0 < dur - 2.0:
        evs.append(BodyTurn(t, _sign(rng) * float(rng.uniform(30.0, 120.0)), float(rng.uniform(1.5, 3.5))))
        t += float(rng.uniform(10.0, 40.0))
    return Segment(name, dur, "walking", Posture(trunk_pitch_deg=_u(rng, 0.0, 6.0), neck_flexion_deg=neck),
                   "walking_phone" if phone else "walking", transition_s=float(rng.uniform(2.0, 3.0)),
                   walk_speed_mps=float(rng.uniform(1.0, 1.5)), sway=float(rng.uniform(0.6, 0.9)),
                   events=tuple(evs))


def _get_in_car(rng: np.random.Generator) -> Segment:
    return Segment("get_in_car", float(rng.uniform(8.0, 15.0)), "driving",
                   Posture(trunk_pitch_deg=-10.0, neck_flexion_deg=8.0, **_SEATED_CAR), None,
                   transition_s=3.0, sway=0.8)


def _leave_car(rng: np.random.Generator) -> Segment:
    return Segment("leave_car", float(rng.uniform(8.0, 15.0)), "standing", Posture(), None,
                   transition_s=3.0, sway=0.8)


def random_drive(rng: np.random.Generator, minutes: float = DEFAULT_MINUTES["drive"], *,
                 calibrate: bool = True) -> list[Segment]:
    """Calibrate, walk to the car, drive about ``minutes`` minutes (see the module docs), get out.

    The drive holds at least one of every manoeuvre whatever ``minutes`` says, so very short
    drives come out longer than asked.
    """
    segs = [calibration_segment(rng)] if calibrate else []
    segs += [_walk(rng, "walk_to_car", 20.0, 40.0), _get_in_car(rng)]
    segs += _drive_body(rng, minutes)
    segs += [_leave_car(rng), _walk(rng, "walk_away", 15.0, 30.0)]
    return segs


# ---------------------------------------------------------------------------- workday


def _duration(rng: np.random.Generator) -> float:
    """Episode length: 30 % short (10–50 s), 20 % around the hold time (45–90 s), 50 % long (90–600 s)."""
    r = rng.random()
    if r < 0.3:
        return float(rng.uniform(10.0, 50.0))
    if r < 0.5:
        return float(rng.uniform(45.0, 90.0))
    return float(np.exp(rng.uniform(np.log(90.0), np.log(600.0))))


def _head_turns_in(rng: np.random.Generator, dur: float, rate_per_s: float, start: float = 4.0) -> tuple:
    out = []
    t = start + float(rng.exponential(1.0 / rate_per_s))
    while t + 3.0 < dur - 1.0:
        out.append(HeadTurn(t, _sign(rng) * float(rng.uniform(30.0, 80.0)), float(rng.uniform(0.3, 0.6)),
                            float(rng.uniform(0.3, 1.5))))
        t += 4.0 + float(rng.exponential(1.0 / rate_per_s))
    return tuple(out)


def _workday_segment(rng: np.random.Generator, kind: str) -> Segment:
    dur = _duration(rng)
    tr = float(rng.uniform(1.5, 4.0))
    u = lambda lo, hi: _u(rng, lo, hi)  # noqa: E731
    if kind == "desk_upright":
        p = Posture(trunk_pitch_deg=u(-5, 8), neck_flexion_deg=u(-5, 12), neck_lateral_deg=u(-3, 3), **_DESK)
        return Segment(kind, dur, "sitting", p, "upright", tr, sway=u(0.4, 0.7),
                       events=_head_turns_in(rng, dur, 1 / 90))
    if kind == "keyboard_hunch":
        p = Posture(trunk_pitch_deg=u(12, 32), neck_flexion_deg=u(15, 35), neck_lateral_deg=u(-4, 4),
                    hip_forward_m=0.05, **_DESK)
        return Segment(kind, dur, "sitting", p, "keyboard_hunch", tr, sway=u(0.4, 0.6))
    if kind == "phone":
        if rng.random() < 0.7:
            p = Posture(trunk_pitch_deg=u(0, 18), neck_flexion_deg=u(25, 55), neck_lateral_deg=u(-5, 5),
                        hip_height_m=0.48)
            return Segment(kind, dur, "sitting", p, "phone", tr, sway=u(0.4, 0.6))
        p = Posture(trunk_pitch_deg=u(0, 12), neck_flexion_deg=u(25, 55), neck_lateral_deg=u(-5, 5))
        return Segment("phone_standing", dur, "standing", p, "phone", tr, sway=u(0.6, 0.9))
    if kind == "standing":
        p = Posture(trunk_pitch_deg=u(-3, 5), neck_flexion_deg=u(-5, 10))
        return Segment(kind, dur, "standing", p, "standing", tr, sway=u(0.6, 1.0),
                       events=_head_turns_in(rng, dur, 1 / 40))
    if kind == "break":
        dur = float(rng.uniform(20.0, 120.0))
        p = Posture(trunk_pitch_deg=u(-3, 3), neck_flexion_deg=u(-5, 5))
        evs = _head_turns_in(rng, dur, 1 / 12)
        if not evs:
            evs = (HeadTurn(min(6.0, dur / 3), _sign(rng) * u(40, 80), u(0.3, 0.6), u(0.3, 1.0)),)
        return Segment(kind, dur, "standing", p, "upright", tr, sway=u(0.7, 1.0), events=evs)
    if kind == "walking":
        return _walk(rng, "walking", 20.0, 180.0, phone=False)
    if kind == "walking_phone":
        return _walk(rng, "walking_phone", 20.0, 150.0, phone=True)
    raise SimError(f"unknown workday segment kind {kind!r}")


_WORKDAY_KINDS: dict[str, float] = {
    "desk_upright": 0.22,
    "keyboard_hunch": 0.26,
    "phone": 0.16,
    "standing": 0.1,
    "break": 0.1,
    "walking": 0.1,
    "walking_phone": 0.06,
}


def random_workday(rng: np.random.Generator, minutes: float = DEFAULT_MINUTES["workday"], *,
                   calibrate: bool = True) -> list[Segment]:
    """Calibrate, then random posture episodes for about ``minutes`` minutes (see the module docs).

    Always holds at least one upright, keyboard-hunch, phone and break episode (the break
    with at least one head turn).
    """
    names, probs = list(_WORKDAY_KINDS), np.array(list(_WORKDAY_KINDS.values()))
    probs = probs / probs.sum()
    required = ["desk_upright", "keyboard_hunch", "phone", "break"]
    order = [required[i] for i in rng.permutation(len(required))]
    segs = [calibration_segment(rng)] if calibrate else []
    total, k, prev = 0.0, 0, None
    while total < minutes * 60.0 or k < len(order):
        if k < len(order) and (rng.random() < 0.35 or total > 0.6 * minutes * 60.0):
            kind = order[k]
            k += 1
        else:
            kind = str(rng.choice(names, p=probs))
            if kind == prev and kind in ("walking", "walking_phone", "break"):
                continue
        seg = _workday_segment(rng, kind)
        left = minutes * 60.0 - total
        if seg.duration_s > left + 60.0 and not seg.events and seg.activity != "walking":
            seg = replace(seg, duration_s=max(left, 10.0) + 60.0)  # do not overshoot by minutes
        segs.append(seg)
        total += seg.duration_s
        prev = kind
    return segs


# ---------------------------------------------------------------------------- night


def _lying_segment(rng: np.random.Generator, side: int, pillow: str, dur: float) -> Segment:
    """``side``: 0 supine, -1 right side down, +1 left side down; ``pillow``: "low" or "high"."""
    u = lambda lo, hi: _u(rng, lo, hi)  # noqa: E731
    if side == 0:
        flex = u(0, 15) if pillow == "low" else u(20, 40)
        p = Posture(trunk_pitch_deg=u(-88, -78), neck_flexion_deg=flex, neck_lateral_deg=u(-4, 4),
                    neck_axial_deg=u(-20, 20), **_BED)
        return Segment(f"bed_supine_{pillow}_pillow", dur, "lying_supine", p, f"bed_supine_{pillow}_pillow",
                       float(rng.uniform(2.5, 5.0)), sway=u(0.1, 0.3))
    # a low pillow lets the head drop towards the mattress, a high one pushes it up
    towards_mattress = -side  # right side down (side -1): lateral bending to the right is +
    lat = u(8, 20) if pillow == "low" else -u(5, 15)
    p = Posture(trunk_pitch_deg=u(-88, -80), trunk_axial_deg=side * u(80, 95), neck_flexion_deg=u(0, 15),
                neck_lateral_deg=towards_mattress * lat, **_BED)
    return Segment(f"bed_side_{pillow}_pillow", dur, "lying_side", p, f"bed_side_{pillow}_pillow",
                   float(rng.uniform(2.5, 5.0)), sway=u(0.1, 0.3))


def random_night(rng: np.random.Generator, minutes: float = DEFAULT_MINUTES["night"], *,
                 calibrate: bool = True) -> list[Segment]:
    """Calibrate, sit on the bed, maybe read, then lie and turn over for about ``minutes`` minutes."""
    u = lambda lo, hi: _u(rng, lo, hi)  # noqa: E731
    segs = [calibration_segment(rng)] if calibrate else []
    segs.append(Segment("sit_on_bed", u(8, 15), "sitting",
                        Posture(trunk_pitch_deg=u(0, 8), neck_flexion_deg=u(5, 15), hip_height_m=0.50),
                        None, transition_s=3.0, sway=0.6))
    total = 0.0
    if rng.random() < 0.6:
        dur = min(u(60, 600), max(0.4 * minutes * 60.0, 60.0))
        p = Posture(trunk_pitch_deg=u(-40, -25), neck_flexion_deg=u(20, 45), neck_lateral_deg=u(-4, 4), **_BED)
        segs.append(Segment("reading_in_bed", dur, "sitting", p, "reading_in_bed", transition_s=u(3, 5),
                            sway=u(0.3, 0.5)))
        total += dur
    last, n_lying = None, 0
    while total < minutes * 60.0 or n_lying < 2:  # always lies down and turns over at least once
        while True:
            side = int(rng.choice([0, -1, 1]))
            pillow = "low" if rng.random() < 0.5 else "high"
            if (side, pillow) != last:
                break
        last = (side, pillow)
        dur = u(20, 60) if rng.random() < 0.2 else u(60, 900)
        dur = min(dur, max(minutes * 60.0 - total, 20.0) + 60.0)
        segs.append(_lying_segment(rng, side, pillow, dur))
        total += dur
        n_lying += 1
    if rng.random() < 0.5:  # get up again
        segs.append(Segment("sit_up", u(8, 15), "sitting",
                            Posture(trunk_pitch_deg=u(0, 8), neck_flexion_deg=u(5, 15), hip_height_m=0.50),
                            None, transition_s=4.0, sway=0.6))
        segs.append(Segment("stand_up", u(15, 30), "standing", Posture(), "upright", transition_s=3.0, sway=0.8))
    return segs


# ---------------------------------------------------------------------------- mixed and entry


def random_mixed(rng: np.random.Generator, minutes: float = DEFAULT_MINUTES["mixed"]) -> list[Segment]:
    """Calibrate, workday (40 %), walk to the car, drive (30 %), walk, night (30 %)."""
    segs = [calibration_segment(rng)]
    segs += random_workday(rng, 0.4 * minutes, calibrate=False)
    segs += random_drive(rng, 0.3 * minutes, calibrate=False)
    segs += random_night(rng, 0.3 * minutes, calibrate=False)
    return segs


SENSORS = {"icm42688": SensorModel.icm42688, "mpu6050": SensorModel.mpu6050}


def scenario(seed: int, kind: str = "mixed", minutes: float | None = None,
             rate_hz: float = 100.0, sensor: str | None = None) -> tuple[list[Segment], SimSettings]:
    """The deterministic scenario ``(script, settings)`` of ``seed`` and ``kind``.

    Args:
        seed: non-negative integer; the same seed and kind always give the same script.
        kind: one of :data:`KINDS`.
        minutes: approximate length; None uses :data:`DEFAULT_MINUTES`.
        rate_hz: IMU output rate.
        sensor: None draws the IMU part with the seed (see :func:`random_settings`);
            "icm42688" or "mpu6050" forces one (the script and misalignment stay the same).

    Raises:
        SimError: unknown kind or sensor, bad seed or non-positive minutes.
    """
    if sensor is not None and sensor not in SENSORS:
        raise SimError(f"unknown sensor {sensor!r}; known: {', '.join(SENSORS)}")
    if kind not in KINDS:
        raise SimError(f"unknown scenario kind {kind!r}; known: {', '.join(KINDS)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SimError(f"seed must be a non-negative integer, got {seed!r}")
    minutes = DEFAULT_MINUTES[kind] if minutes is None else float(minutes)
    if not minutes > 0:
        raise SimError(f"minutes must be > 0, got {minutes!r}")
    k = KINDS.index(kind)
    rng = np.random.default_rng([int(seed), 0x5CE, k])
    if kind == "drive":
        script = random_drive(rng, minutes)
    elif kind == "workday":
        script = random_workday(rng, minutes)
    elif kind == "night":
        script = random_night(rng, minutes)
    else:
        script = random_mixed(rng, minutes)
    settings = random_settings(np.random.default_rng([int(seed), 0x5E7, k]), rate_hz=rate_hz)
    if sensor is not None:
        settings = replace(settings, sensor=SENSORS[sensor]())
    return script, settings
