"""Body geometry and the linear dynamic models of the seated occupant and the head-neck.

Geometry (segment frames: x anterior, y left, z up; metres):

* The trunk is a rigid segment pivoting at the hip joint. The trunk IMU (T1–T4, on the
  skin of the upper back) sits ``HIP_TO_TRUNK_SENSOR`` from the hip: 0.45 m up the
  trunk and 0.10 m posterior (upper thoracic level of an average adult; cf. Winter,
  *Biomechanics and Motor Control of Human Movement*, segment-length table).
* The neck pivot (C7/T1) is ``TRUNK_SENSOR_TO_NECK_PIVOT`` from the trunk IMU: 0.10 m
  up and 0.07 m anterior (inside the body, above the sensor).
* The head IMU on a headband is ``NECK_PIVOT_TO_HEAD_SENSOR`` from the pivot in the head
  frame: 0.15 m up, 0.02 m forward.

Head-neck dynamics: the head is a damped inverted pendulum about the neck pivot, held up
by muscle stiffness; its posture angle is the static equilibrium and the dynamic part
``phi`` obeys, for the flexion (about y) and lateral (about x) axes::

    phi'' + 2 zeta w phi' + w^2 phi = -/+ G_head * a_pivot   (trunk-frame x / y)

with ``G_head = m L / (I_cm + m L^2)`` (d'Alembert force on the head's centre of mass).
Head mass m = 4.7 kg (≈ 6.7 % of 70 kg body mass, de Leva 1996, J Biomech 29:1223),
centre of mass L = 0.17 m above C7, I_cm = 0.022 kg m² → G_head ≈ 5.1 1/m. Natural
frequency 3.5 Hz and damping ratio 0.3 sit in the 2–4 Hz / 0.3–0.5 range of the project
brief; a forward push of the pivot makes the head lag into extension and rebound into
flexion, as in rear-impact volunteer tests. With the default rear impact (2 g, 150 ms) the
head lags the chest by up to ~2 g of relative acceleration, the neck extends ~12° and
rebounds ~6° into flexion.

Occupant dynamics in a vehicle (only vehicle accelerations drive these; walking does not):

* The whole body moves relative to the vehicle through seat/belt compliance, a base-excited
  2nd-order system per axis: fore-aft 4 Hz / ζ 0.5, lateral 3 Hz / ζ 0.5, vertical
  4.5 Hz / ζ 0.4 (the seated-body vertical apparent-mass resonance is near 4–6 Hz;
  Fairley & Griffin 1989, J Biomech 22:81).
* The trunk pitches forward under braking (10°/g static, 1.5 Hz, ζ 0.7) and leans
  outward in corners (8°/g, 1.5 Hz, ζ 0.7) — belted volunteers in braking tests show trunk
  excursions of this order.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

HIP_TO_TRUNK_SENSOR = np.array([-0.10, 0.0, 0.45])
TRUNK_SENSOR_TO_NECK_PIVOT = np.array([0.07, 0.0, 0.10])
NECK_PIVOT_TO_HEAD_SENSOR = np.array([0.02, 0.0, 0.15])

HEAD_MASS_KG = 4.7
HEAD_COM_ABOVE_PIVOT_M = 0.17
HEAD_INERTIA_COM_KGM2 = 0.022
HEAD_GAIN_PER_M = HEAD_MASS_KG * HEAD_COM_ABOVE_PIVOT_M / (
    HEAD_INERTIA_COM_KGM2 + HEAD_MASS_KG * HEAD_COM_ABOVE_PIVOT_M**2
)
NECK_FREQ_HZ = 3.5
NECK_DAMPING = 0.3

SEAT_FREQ_HZ = np.array([4.0, 3.0, 4.5])  # x, y, z
SEAT_DAMPING = np.array([0.5, 0.5, 0.4])
TRUNK_PITCH_DEG_PER_G = 10.0
TRUNK_ROLL_DEG_PER_G = 8.0
TRUNK_SWAY_FREQ_HZ = 1.5
TRUNK_SWAY_DAMPING = 0.7

# Walking (per step cycle; step frequency 1.9 Hz): vertical hip excursion ±2 cm, lateral
# ±2.5 cm at stride frequency, upper-trunk pitch ±1.5°, roll ±2°, counter-rotation ±3°;
# the head partly stabilises against trunk rotation (gaze stabilisation).
STEP_FREQ_HZ = 1.9
GAIT_HIP_AMPLITUDE_M = np.array([0.008, 0.025, 0.02])
GAIT_TRUNK_AMPLITUDE_DEG = np.array([1.5, 2.0, 3.0])  # pitch, roll, axial
GAIT_HEAD_STABILISATION = np.array([0.6, 0.6, 0.8])  # fraction of trunk rotation the neck undoes


def _second_order(num: list[float], w: float, zeta: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear (Tustin) discretisation of ``num(s) / (s^2 + 2 zeta w s + w^2)``."""
    b, a = signal.bilinear(num, [1.0, 2 * zeta * w, w * w], fs=1.0 / dt)
    return np.asarray(b), np.asarray(a)


def response(x: np.ndarray, num: list[float], freq_hz: float, zeta: float, dt: float) -> np.ndarray:
    """Output of ``num(s)/(s^2 + 2ζωs + ω^2)`` driven by ``x`` (sampled every ``dt``), from rest."""
    b, a = _second_order(num, 2 * np.pi * freq_hz, zeta, dt)
    return np.asarray(signal.lfilter(b, a, x, axis=-1))


def seat_displacement(a_vehicle: np.ndarray, dt: float) -> np.ndarray:
    """Body displacement relative to the vehicle, (3, N) m, from vehicle acceleration (3, N) m/s^2."""
    return np.stack([response(-a_vehicle[k], [1.0], SEAT_FREQ_HZ[k], SEAT_DAMPING[k], dt) for k in range(3)])


def trunk_lean(a_vehicle: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic trunk (pitch, roll) in rad from vehicle acceleration (3, N) (fore-aft, lateral rows)."""
    w2 = (2 * np.pi * TRUNK_SWAY_FREQ_HZ) ** 2
    k_pitch = np.deg2rad(TRUNK_PITCH_DEG_PER_G) / 9.80665 * w2
    k_roll = np.deg2rad(TRUNK_ROLL_DEG_PER_G) / 9.80665 * w2
    pitch = response(-a_vehicle[0], [k_pitch], TRUNK_SWAY_FREQ_HZ, TRUNK_SWAY_DAMPING, dt)
    roll = response(a_vehicle[1], [k_roll], TRUNK_SWAY_FREQ_HZ, TRUNK_SWAY_DAMPING, dt)
    return pitch, roll


def head_lag(a_pivot_trunk: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic neck (flexion, lateral) in rad from the pivot's linear acceleration (3, N) in trunk axes."""
    g = HEAD_GAIN_PER_M
    flex = response(-g * a_pivot_trunk[0], [1.0], NECK_FREQ_HZ, NECK_DAMPING, dt)
    lat = response(g * a_pivot_trunk[1], [1.0], NECK_FREQ_HZ, NECK_DAMPING, dt)
    return flex, lat
