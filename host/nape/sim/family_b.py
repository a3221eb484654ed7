"""Scenario family B: a second, independently built simulated wearer for held-out scoring.

Family A (:mod:`nape.sim.scenarios` with :mod:`nape.sim.motion` / :mod:`nape.sim.body`)
moves a hip-pivoted trunk through scripted segments. Family B shares none of that chain:
it writes the kinematics directly from vehicle input to sensor, with its own body model,
its own event mix and its own sensor quirks, so that a detector tuned on one family can be
judged on the other (bench.detection, leave-one-family-out). What differs:

* Seat and body: a sprung (suspension) seat — floor → seat 2.2 Hz, ζ 0.25 — under a body on
  its cushion, seat → trunk 5.5 Hz, ζ 0.35, in series (family A: one 4.5 Hz, ζ 0.4 stage);
  fore-aft belt and seat back 3 Hz, ζ 0.4; lateral 2.5 Hz, ζ 0.45. The trunk leans 14°/g
  forward in braking and 10°/g outward in corners (1.2 Hz, ζ 0.5; family A 10 and 8°/g at
  1.5 Hz, ζ 0.7). Seated slightly reclined (trunk −12…−4°).
* Head and neck: a pendulum at 2.2 Hz, ζ 0.35 (family A: 3.5 Hz, ζ 0.3) with a head
  restraint that stops extension softly at 6–12° behind the seated head (tanh limit).
* Frequent voluntary head movement in the car and in the office — nods, looks up and down,
  mirror checks and turns in conversation, 50–250 °/s peak, every 3–15 s — with the trunk
  still. They are labelled ``head_turn`` (negatives for a jolt detector).
* Events in clusters 0.5–5 s apart: a braking and then a rear impact, a pothole inside a
  braking, two potholes in a row; manoeuvre chains (accelerate, corner, corner, brake) up
  to 60 s long; stretches of rough road (vertical vibration at the trunk 0.06–0.15 g RMS).
* Sensor: 200 or 400 Hz, ±16 g clipping, ±15° mounting, ICM-42688-P or MPU-6050 errors
  (:func:`nape.sim.sensor.apply_sensor_errors`) and single-sample glitches (a sample of one
  accelerometer axis replaced by a value of ±4–16 g, about one a minute).
* Office hours: seated at a desk, upright, keyboard (trunk 15–25° forward, neck 15–30°) or
  phone (trunk 15–20° forward, neck 40–55°) postures, no vehicle.

Labels follow :mod:`nape.sim.labels`, with the same definitions computed from this family's
own physics: manoeuvres on the vehicle's sustained horizontal acceleration
(:func:`~nape.sim.labels.sustained_g`; rear-impact pulses left out), potholes on the seat's
vertical acceleration (the floor shock after the sprung seat), rear impacts on the NIC of the
true head and T1 accelerations from the impact's onset (:func:`~nape.sim.labels.nic_max`);
``t_peak`` is the peak of the trunk's response (module code).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nape import quat

from . import rotations as rot
from .body import response
from .labels import (LOWPASS_DELAY_S, MANOEUVRES, NIC_SPAN_S, JoltLabel, Labels, manoeuvre_peak, nic_max, severity,
                     sustained_g)
from .sensor import G, SensorModel, apply_sensor_errors
from .simulate import ImuSignals

KINDS_B: tuple[str, ...] = ("drive_b", "office_b")
DEFAULT_MINUTES_B: dict[str, float] = {"drive_b": 12.0, "office_b": 20.0}
RATES_HZ = (200.0, 400.0)

SEAT_SUSPENSION = (2.2, 0.25)  # floor -> seat, Hz / damping ratio
CUSHION = (5.5, 0.35)  # seat -> trunk, vertical
BELT_FORE_AFT = (3.0, 0.4)
BELT_LATERAL = (2.5, 0.45)
TRUNK_PITCH_DEG_PER_G = 14.0
TRUNK_ROLL_DEG_PER_G = 10.0
TRUNK_LEAN = (1.2, 0.5)
NECK = (2.2, 0.35)
HEAD_GAIN_PER_M = 5.0  # head pendulum gain from pivot acceleration (m L / I about the pivot)
TRUNK_SENSOR_TO_PIVOT = np.array([0.06, 0.0, 0.11])  # m, trunk frame
PIVOT_TO_HEAD_SENSOR = np.array([0.03, 0.0, 0.14])  # m, head frame
GLITCH_PER_S = 1.0 / 60.0
VEHICLE_SETTLE_S = 1.0


@dataclass
class FamilyBResult:
    """What :func:`simulate_b` returns: enough for :func:`nape.sim.to_recording.write_truth_recording`
    and the bench. ``vehicle``: per-sample truth of being driven (for context scoring);
    ``office``: per-sample truth of office work (for head movements per office hour)."""

    rate_hz: float
    t: np.ndarray
    imus: dict[str, ImuSignals]
    labels: Labels
    seed: int
    kind: str
    vehicle: np.ndarray
    office: np.ndarray
    sensor: str = ""
    misalignment_deg: float = 0.0
    notes: list[str] = field(default_factory=list)


def _min_jerk(n: int, i0: int, i1: int) -> np.ndarray:
    """0 → 1 minimum-jerk ramp between samples i0 and i1 (clipped to [0, n))."""
    s = np.clip((np.arange(n) - i0) / max(i1 - i0, 1), 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s * s)


def _bump(n: int, i0: int, move: int, hold: int) -> np.ndarray:
    """0 → 1 → 0: minimum-jerk out in ``move`` samples, hold, back in ``move``."""
    return _min_jerk(n, i0, i0 + move) - _min_jerk(n, i0 + move + hold, i0 + 2 * move + hold)


def _transmit(x: np.ndarray, f_hz: float, zeta: float, dt: float) -> np.ndarray:
    """Absolute acceleration of a mass on a spring-damper base-excited by acceleration ``x``."""
    w = 2 * np.pi * f_hz
    return response(x, [2 * zeta * w, w * w], f_hz, zeta, dt)


class _Builder:
    """Accumulates inputs and labels on one time grid."""

    def __init__(self, rng: np.random.Generator, n: int, rate: float):
        self.rng, self.n, self.rate = rng, n, rate
        self.a_long = np.zeros(n)  # vehicle along its heading, m/s^2
        self.a_impact = np.zeros(n)  # the rear impacts' part of a_long, m/s^2
        self.yaw_rate = np.zeros(n)  # rad/s
        self.a_lat = np.zeros(n)  # lateral acceleration of the corners, m/s^2
        self.a_floor_z = np.zeros(n)  # vertical floor input, m/s^2 (shocks)
        self.rough = np.zeros(n)  # rough-road RMS envelope at the trunk, g
        self.neck_pitch = np.zeros(n)  # voluntary neck flexion, rad
        self.neck_yaw = np.zeros(n)  # voluntary neck rotation, rad
        self.trunk_pitch = np.zeros(n)  # posture, rad
        self.neck_posture = np.zeros(n)
        self.vehicle = np.zeros(n, bool)
        self.office = np.zeros(n, bool)
        self.events: list[tuple[str, float, float]] = []  # (kind, t_on, t_off)
        self.head_moves: list[tuple[float, float]] = []

    def i(self, t: float) -> int:
        return int(round(t * self.rate))

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    # ---- vehicle events (t: start, s)

    def pulse_long(self, t: float, g: float, rise: float, plateau: float, kind: str | None) -> float:
        n, i0 = self.n, self.i(t)
        r, p = self.i(rise), self.i(plateau)
        shape = _min_jerk(n, i0, i0 + r) - _min_jerk(n, i0 + r + p, i0 + 2 * r + p)
        self.a_long += g * G * shape
        end = t + 2 * rise + plateau
        if kind:
            self.events.append((kind, t, end + VEHICLE_SETTLE_S))
        return end

    def corner(self, t: float, g: float, dur: float, speed: float) -> float:
        """A corner of lateral ``g`` at ``speed`` m/s: yaw rate g·G/speed, min-jerk in and out
        (the car is taken to corner at ``speed``, whatever the longitudinal pulses did)."""
        n, i0 = self.n, self.i(t)
        ramp = min(1.0, dur / 3)
        shape = _min_jerk(n, i0, i0 + self.i(ramp)) - _min_jerk(n, i0 + self.i(dur - ramp), i0 + self.i(dur))
        side = self.rng.choice([-1.0, 1.0])
        self.yaw_rate += side * g * G / speed * shape
        self.a_lat += side * g * G * shape  # taken at the corner's own speed (a_long does not track it)
        self.events.append(("lateral", t, t + dur + VEHICLE_SETTLE_S))
        return t + dur

    def shock(self, t: float, g: float, width: float, kind: str) -> float:
        """Half-sine shock: vertical at the floor (pothole) or forward at the trunk's seat back (rear impact)."""
        i0, m = self.i(t), max(2, self.i(width))
        sl = slice(i0, min(i0 + m, self.n))
        half = g * G * np.sin(np.pi * np.arange(sl.stop - sl.start) / m)
        if kind == "pothole":
            self.a_floor_z[sl] += half
        else:
            self.a_long[sl] += half
            self.a_impact[sl] += half
        self.events.append((kind, t, t + width + VEHICLE_SETTLE_S))
        return t + width

    def head_move(self, t: float, office: bool) -> float:
        """A voluntary head movement of 50–250 °/s peak: nod, look up, mirror check or conversation turn."""
        what = self.rng.choice(["nod", "look_up", "mirror", "talk"], p=[0.35, 0.2, 0.25 if not office else 0.05,
                                                                        0.2 if not office else 0.4])
        angle = {"nod": self.u(15, 35), "look_up": -self.u(10, 25), "mirror": self.u(20, 45),
                 "talk": self.u(10, 30)}[what]
        peak_dps = self.u(50, 250)
        move = max(0.15, 1.875 * abs(angle) / peak_dps)  # minimum jerk: peak rate 1.875 angle / time
        hold = self.u(0.2, 1.5)
        shape = _bump(self.n, self.i(t), self.i(move), self.i(hold))
        if what in ("nod", "look_up"):
            self.neck_pitch += np.radians(angle) * shape
        else:
            self.neck_yaw += np.radians(angle) * self.rng.choice([-1.0, 1.0]) * shape
        end = t + 2 * move + hold
        self.head_moves.append((t, end + 0.3))
        return end


def _drive(b: _Builder, t0: float, t1: float) -> None:
    """Clusters and chains of manoeuvres with cruising and head movement between."""
    rng = b.rng
    b.vehicle[b.i(t0): b.i(t1)] = True
    b.trunk_pitch[b.i(t0): b.i(t1)] = np.radians(b.u(-12, -4))
    b.neck_posture[b.i(t0): b.i(t1)] = np.radians(b.u(0, 12))
    t = t0 + 8.0
    busy: list[tuple[float, float]] = []
    while t < t1 - 70:
        kind = rng.choice(["chain", "brake_impact", "pothole_in_brake", "pothole_pair", "single", "rough"],
                          p=[0.2, 0.15, 0.15, 0.15, 0.2, 0.15])
        start = t
        if kind == "chain":  # accelerate → corner → corner → brake, gaps 0.5–5 s, up to 60 s
            t = b.pulse_long(t, b.u(0.3, 0.5), b.u(0.3, 0.6), b.u(0.5, 3.0), "acceleration") + b.u(0.5, 5)
            for _ in range(int(rng.integers(1, 4))):
                t = b.corner(t, b.u(0.35, 0.65), b.u(3.0, 8.0), b.u(8, 14)) + b.u(0.5, 5)
            t = b.pulse_long(t, -b.u(0.35, 0.8), b.u(0.2, 0.5), b.u(0.5, 3.0), "braking")
        elif kind == "brake_impact":  # brake to a stop, then hit from behind 0.5–5 s later
            t = b.pulse_long(t, -b.u(0.35, 0.8), b.u(0.2, 0.5), b.u(0.5, 2.5), "braking") + b.u(0.5, 5)
            t = b.shock(t, b.u(1.5, 5.0), b.u(0.08, 0.18), "rear_impact")
        elif kind == "pothole_in_brake":
            end = b.pulse_long(t, -b.u(0.35, 0.7), b.u(0.3, 0.5), b.u(1.5, 3.0), "braking")
            b.shock(t + b.u(0.8, 1.6), b.u(2.0, 5.0), b.u(0.04, 0.1), "pothole")
            t = end
        elif kind == "pothole_pair":
            t = b.shock(t, b.u(2.0, 5.0), b.u(0.04, 0.1), "pothole") + b.u(0.5, 3.0)
            t = b.shock(t, b.u(2.0, 5.0), b.u(0.04, 0.1), "pothole")
        elif kind == "single":
            g = b.u(-0.9, 0.55)
            t = b.pulse_long(t, g, b.u(0.3, 0.6), b.u(0.5, 3.0), "acceleration" if g > 0 else "braking")
        else:  # rough road for 20–60 s with a pothole in it
            dur = b.u(20, 60)
            b.rough[b.i(t): b.i(t + dur)] = b.u(0.06, 0.15)
            b.shock(t + b.u(5, dur - 5), b.u(2.5, 5.0), b.u(0.04, 0.1), "pothole")
            t += dur
        busy.append((start - 1.5, t + 2.5))
        t += b.u(6, 20)
    _head_moves(b, t0 + 3, t1 - 3, busy, office=False)


def _office(b: _Builder, t0: float, t1: float) -> None:
    """Desk work: upright, keyboard or phone postures; frequent head movement; no vehicle."""
    b.office[b.i(t0): b.i(t1)] = True
    t = t0
    while t < t1:
        dur = min(b.u(60, 240), t1 - t)
        pose = b.rng.choice(["upright", "keyboard", "phone"])
        trunk, neck = {"upright": (b.u(-5, 5), b.u(0, 10)), "keyboard": (b.u(15, 25), b.u(15, 30)),
                       "phone": (b.u(15, 20), b.u(40, 55))}[pose]
        sl = slice(b.i(t), b.i(t + dur))
        b.trunk_pitch[sl] = np.radians(trunk)
        b.neck_posture[sl] = np.radians(neck)
        t += dur
    _head_moves(b, t0 + 3, t1 - 3, [], office=True)


def _head_moves(b: _Builder, t0: float, t1: float, busy: list[tuple[float, float]], office: bool) -> None:
    t = t0 + b.u(1, 5)
    while t < t1:
        if not any(a <= t <= c for a, c in busy):
            t = b.head_move(t, office)
        t += b.u(3, 15)


def _smooth_posture(x: np.ndarray, rate: float) -> np.ndarray:
    """Posture steps turned into 2 s transitions (a moving average)."""
    k = max(1, int(2.0 * rate))
    pad = np.concatenate([np.full(k, x[0]), x, np.full(k, x[-1])])
    return np.convolve(pad, np.ones(k) / k, mode="same")[k:-k]


def simulate_b(seed: int, kind: str, minutes: float | None = None, road_vibration: float = 1.0) -> FamilyBResult:
    """Simulate one family-B recording (``road_vibration``: factor on the road and rough-road
    vibration, 0 = a perfectly smooth road; the random draws are the same whatever it is).

    Raises:
        ValueError: unknown ``kind`` or a non-positive length.
    """
    if kind not in KINDS_B:
        raise ValueError(f"kind must be one of {KINDS_B}, got {kind!r}")
    minutes = DEFAULT_MINUTES_B[kind] if minutes is None else minutes
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes!r}")
    if not 0.0 <= road_vibration <= 10.0:
        raise ValueError(f"road_vibration must be within [0, 10], got {road_vibration!r}")
    rng = np.random.default_rng([seed, 0xB])
    rate = float(rng.choice(RATES_HZ))
    dt = 1.0 / rate
    total = 30.0 + minutes * 60.0
    n = int(total * rate)
    b = _Builder(rng, n, rate)
    # a still, upright start (the analysis takes it as neutral), then the activity
    if kind == "drive_b":
        _drive(b, 30.0, total)
    else:
        _office(b, 30.0, total)
    t = np.arange(n) * dt

    # --- vehicle: heading, lateral acceleration, floor vibration
    heading = np.cumsum(b.yaw_rate) * dt
    # lateral = speed × yaw rate at each corner's own speed: integrating a_long instead left the
    # car at rest after its first braking, so later corners had no lateral acceleration at all
    a_lat = b.a_lat
    rough_noise = _band_noise(rng, n, rate, 5.0, 25.0)
    # trunk-level roughness: the seat chain passes 5-25 Hz at roughly unit gain overall here
    road = road_vibration * (b.rough * G * rough_noise + b.vehicle * 0.02 * G * _band_noise(rng, n, rate, 8.0, 30.0))

    # --- occupant: sprung seat and cushion (vertical), belt (horizontal), trunk lean
    a_z = _transmit(_transmit(b.a_floor_z, *SEAT_SUSPENSION, dt), *CUSHION, dt) + road
    a_x = _transmit(b.a_long, *BELT_FORE_AFT, dt)
    a_y = _transmit(a_lat, *BELT_LATERAL, dt)
    w_lean = 2 * np.pi * TRUNK_LEAN[0]
    lean_pitch = response(b.a_long, [np.radians(TRUNK_PITCH_DEG_PER_G) / G * w_lean ** 2], *TRUNK_LEAN, dt)
    lean_roll = response(-a_lat, [np.radians(TRUNK_ROLL_DEG_PER_G) / G * w_lean ** 2], *TRUNK_LEAN, dt)
    sway = 0.4 * np.radians(1.0) * _band_noise(rng, n, rate, 0.1, 0.8)
    pitch_t = _smooth_posture(b.trunk_pitch, rate) - lean_pitch + sway  # braking (a_long < 0) leans forward
    roll_t = lean_roll + 0.5 * sway
    q_trunk = rot.yaw_mul(heading, rot.euler_yxz(pitch_t, roll_t, np.zeros(n))).T  # (n, 4)
    a_body = np.column_stack([a_x * np.cos(heading) - a_y * np.sin(heading),
                              a_x * np.sin(heading) + a_y * np.cos(heading), a_z])

    # --- head: pendulum on the neck driven by the pivot's fore-aft / lateral acceleration, restraint
    flex_dyn = response(-HEAD_GAIN_PER_M * a_x, [1.0], *NECK, dt)  # pushed forward: head lags into extension
    stop = np.radians(b.u(6, 12))
    flex_dyn = np.where(flex_dyn < 0, -stop * np.tanh(-flex_dyn / stop), flex_dyn)  # the head restraint
    lat_dyn = response(HEAD_GAIN_PER_M * a_y, [1.0], *NECK, dt)
    neck_flex = _smooth_posture(b.neck_posture, rate) + b.neck_pitch + flex_dyn
    q_neck = rot.euler_yxz(neck_flex, lat_dyn, b.neck_yaw).T
    q_head = quat.mul(q_trunk, q_neck)

    # --- sensor positions relative to the body point: second derivatives add rotation effects
    off_t = np.zeros((n, 3))
    off_h = quat.rotate(q_trunk, np.broadcast_to(TRUNK_SENSOR_TO_PIVOT, (n, 3))) + quat.rotate(
        q_head, np.broadcast_to(PIVOT_TO_HEAD_SENSOR, (n, 3)))
    a_trunk = a_body + np.gradient(np.gradient(off_t, dt, axis=0), dt, axis=0)
    a_head = a_body + np.gradient(np.gradient(off_h, dt, axis=0), dt, axis=0)

    mis = float(rng.uniform(0, 15))
    sensor = SensorModel.icm42688() if rng.random() < 0.7 else SensorModel.mpu6050()
    imus = {}
    for k, (role, q_seg, a_w) in enumerate((("trunk", q_trunk, a_trunk), ("head", q_head, a_head))):
        q_mount = rot.random_rotation(np.random.default_rng([seed, 0xB, 10 + k]), np.radians(mis))
        q_s = quat.mul(q_seg, np.broadcast_to(q_mount, q_seg.shape).copy())
        f = quat.rotate(quat.conj(q_s), a_w + np.array([0.0, 0.0, G]))
        gyr = rot.body_rate(np.ascontiguousarray(q_s.T), dt).T
        acc, gyro = apply_sensor_errors(f, gyr, sensor, rate, 16.0, 2000.0, np.random.default_rng([seed, 0xB, 20 + k]))
        _glitches(np.random.default_rng([seed, 0xB, 30 + k]), acc, rate)
        imus[role] = ImuSignals(acc, gyro, q_s, f, gyr, q_mount)

    seat_z = _transmit(b.a_floor_z, *SEAT_SUSPENSION, dt)
    labels = _labels(b, a_trunk, a_head, t, dt, np.column_stack([b.a_long - b.a_impact, a_lat]), seat_z,
                     quat.axis_in_world(q_trunk, 0))
    return FamilyBResult(rate, t, imus, labels, seed, kind, b.vehicle, b.office, sensor.name, mis)


def _band_noise(rng: np.random.Generator, n: int, rate: float, lo: float, hi: float) -> np.ndarray:
    """Unit-RMS band-limited Gaussian noise."""
    from scipy import signal

    sos = signal.butter(2, [lo, min(hi, 0.45 * rate)], btype="band", fs=rate, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n))
    return x / max(float(x.std()), 1e-12)


def _glitches(rng: np.random.Generator, acc: np.ndarray, rate: float) -> None:
    """Single-sample glitches: one axis of one sample replaced by ±4–16 g (in place)."""
    n = len(acc)
    k = rng.poisson(GLITCH_PER_S * n / rate)
    idx = rng.integers(0, n, size=k)
    acc[idx, rng.integers(0, 3, size=k)] = rng.choice([-1.0, 1.0], size=k) * rng.uniform(4, 16, size=k) * G


def _labels(b: _Builder, a_trunk: np.ndarray, a_head: np.ndarray, t: np.ndarray, dt: float,
            a_vehicle: np.ndarray, seat_z: np.ndarray, fwd: np.ndarray) -> Labels:
    """Jolt labels graded on the physical quantity of each cause (module docstring; ``a_vehicle``
    (n, 2) the vehicle's own longitudinal / lateral acceleration, ``seat_z`` the seat's vertical,
    m/s^2; ``fwd`` (n, 3) the trunk's forward axis), head moves as negatives."""
    sustained = sustained_g(a_vehicle, dt)
    response_of = {"pothole": np.abs(a_trunk[:, 2]), "rear_impact": np.hypot(a_trunk[:, 0], a_trunk[:, 1])}
    head_g = np.linalg.norm(a_head, axis=1) / G
    trunk_g = np.linalg.norm(a_trunk, axis=1) / G
    out = Labels()
    for kind, t0, t1 in b.events:
        i0, i1 = b.i(t0), min(b.i(t1), len(t) - 1)
        if i1 <= i0:
            continue
        if kind in MANOEUVRES:
            j1 = min(b.i(t1 - VEHICLE_SETTLE_S + LOWPASS_DELAY_S), len(t) - 1)
            value = float(sustained[i0:max(j1, i0 + 1)].max())
            peak_vehicle = float(np.abs(np.hypot(*a_vehicle[i0:i1].T)).max()) / G
        elif kind == "pothole":
            value = peak_vehicle = float(np.abs(seat_z[i0:i1]).max()) / G
        else:
            n = min(i0 + max(1, b.i(NIC_SPAN_S)), len(t))
            value = nic_max(a_trunk[i0:n], a_head[i0:n], fwd[i0] * [1.0, 1.0, 0.0], dt)
            peak_vehicle = float(np.abs(b.a_impact[i0:i1]).max()) / G
        # the time: a manoeuvre's plateau centre (nape.sim.labels.manoeuvre_peak); a shock's, the
        # trunk's response peak, what a body-worn sensor sees
        if kind in MANOEUVRES:
            j1 = max(min(b.i(t1 - VEHICLE_SETTLE_S + LOWPASS_DELAY_S), len(t) - 1), i0 + 1)
            k = manoeuvre_peak(t, t[i0:j1], sustained[i0:j1])
        else:
            k = i0 + int(np.argmax(response_of[kind][i0:i1]))
        out.events.append(JoltLabel(t0, float(t[k]), t1, kind, severity(kind, value),
                                    float(head_g[i0:i1].max()), float(trunk_g[i0:i1].max()), 0.0,
                                    peak_vehicle_acc_g=peak_vehicle, grade_value=value))
    for t0, t1 in b.head_moves:
        i0, i1 = b.i(t0), min(b.i(t1), len(t) - 1)
        if i1 > i0:
            k = i0 + int(np.argmax(head_g[i0:i1]))
            out.events.append(JoltLabel(t0, float(t[k]), t1, "head_turn", "none", float(head_g[i0:i1].max()),
                                        float(trunk_g[i0:i1].max()), 0.0))
    out.events.sort(key=lambda e: e.t_peak)
    return out
