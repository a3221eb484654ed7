"""The simulated wearer: IMU signals, ground truth and labels of a scripted day.

A person wearing Nape (trunk IMU on the upper back at T1–T4, optional head IMU on a
headband) follows a script of segments — standing, desk work, a keyboard hunch, a break
with quick head turns, phone use, walking, ~4 minutes of driving with braking,
acceleration, a pothole, a corner and a low-speed rear impact, then lying in bed. The
simulator turns that into:

* ``SimResult.imus[role]`` — accelerometer (specific force, m/s²) and gyroscope (rad/s)
  in each sensor frame, with and without sensor errors, and the true sensor-to-world
  quaternions (conventions: docs/CONVENTIONS.md);
* ``SimResult.truth`` — true trunk/head inclination, neck flexion (ISO 11226: head
  inclination − trunk inclination), neck lateral bending / axial rotation, activity;
* ``SimResult.labels`` — jolts and head turns with measured peaks and severity grades, and
  held postures with their mean angles.

Modules: :mod:`.script` (what happens), :mod:`.motion` (script → joint angles, gait,
sway, vehicle motion), :mod:`.body` (geometry and dynamic models), :mod:`.kinematics`
(rigid-body chain → clean IMU signals), :mod:`.sensor` (datasheet error models),
:mod:`.labels` (ground-truth labels), :mod:`.simulate` (entry points).

Example::

    from nape.sim import simulate_day, SimSettings
    res = simulate_day(seed=0, settings=SimSettings(rate_hz=100.0))
    res.imus["trunk"].acc, res.truth.neck_flexion_deg, res.labels.to_dict()
"""

from .labels import JoltLabel, Labels, PostureLabel, severity
from .script import (
    ACTIVITY_NAMES,
    BodyTurn,
    Corner,
    HeadTurn,
    Posture,
    Pothole,
    RearImpact,
    Segment,
    VehicleAccel,
    default_day_script,
    speed_change,
)
from .sensor import SensorModel
from .settings import SimError, SimSettings
from .simulate import ImuSignals, SimResult, Truth, simulate, simulate_day

__all__ = [
    "ACTIVITY_NAMES",
    "BodyTurn",
    "Corner",
    "HeadTurn",
    "ImuSignals",
    "JoltLabel",
    "Labels",
    "Posture",
    "PostureLabel",
    "Pothole",
    "RearImpact",
    "Segment",
    "SensorModel",
    "SimError",
    "SimResult",
    "SimSettings",
    "Truth",
    "VehicleAccel",
    "default_day_script",
    "severity",
    "simulate",
    "simulate_day",
    "speed_change",
]
