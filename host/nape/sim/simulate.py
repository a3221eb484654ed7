"""Entry points: :func:`simulate` (any script) and :func:`simulate_day` (the default day).

Randomness: one seed drives independent generators — ``[seed, 1]`` for the motion
(sway, micro-movements, road vibration, heading, phases), ``[seed, 2]`` for the mounting
misalignments, ``[seed, 3]`` / ``[seed, 4]`` for the trunk / head sensor errors — so the
motion is the same at every output rate and with or without the head IMU, and identical
inputs give bit-identical outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nape import quat

from . import rotations as rot
from .kinematics import compute
from .labels import Labels, make_labels
from .motion import Timeline, build_motion
from .script import ACTIVITY_NAMES, Segment, default_day_script, scaled
from .sensor import apply_sensor_errors
from .settings import SimError, SimSettings

_MARGIN_S = 1.0  # simulated before 0 and after the end, then cropped (filter edge effects)


@dataclass
class ImuSignals:
    """One IMU's signals at the output rate (N samples).

    Attributes:
        acc: measured specific force, (N, 3) m/s^2, sensor frame (noise, bias, scale error,
            quantisation and range clipping applied).
        gyr: measured angular rate, (N, 3) rad/s, sensor frame (same errors).
        quat_true: true sensor-to-world orientation, (N, 4) (w, x, y, z).
        acc_clean: specific force without sensor errors, (N, 3) m/s^2.
        gyr_clean: angular rate without sensor errors, (N, 3) rad/s.
        mount_quat: fixed sensor-to-segment rotation (4,) — identity for nominal mounting.
    """

    acc: np.ndarray
    gyr: np.ndarray
    quat_true: np.ndarray
    acc_clean: np.ndarray
    gyr_clean: np.ndarray
    mount_quat: np.ndarray


@dataclass
class Truth:
    """True body angles at the output rate, degrees unless stated.

    Attributes:
        neck_flexion_deg: head inclination − trunk inclination (ISO 11226), flexion +.
        trunk_inclination_deg: sagittal inclination of the trunk segment vs upright neutral,
            forward +; the elevation of its anterior axis below horizontal (−90 supine;
            ≈0 lying on the side, where the sagittal plane is horizontal).
        head_inclination_deg: the same for the head segment.
        neck_joint_flexion_deg: flexion of the head relative to the trunk (joint angle of
            ``R_trunk^T R_head = Ry(flex) Rx(lateral) Rz(axial)``); unlike the ISO angle it stays
            meaningful lying on the side, where ISO neck flexion is ≈ 0.
        neck_lateral_deg: lateral bending of head relative to trunk, to the right +.
        neck_axial_deg: axial rotation of head relative to trunk, to the left +.
        activity: (N,) int8 index into ``activity_names``; a segment's activity applies from
            its start, including its transition.
        activity_names: names of the activity codes.
        quat_trunk_segment: trunk segment-to-world orientation, (N, 4).
        quat_head_segment: head segment-to-world orientation, (N, 4).
        vehicle_speed_mps: (N,) vehicle speed (0 outside the car).
    """

    neck_flexion_deg: np.ndarray
    trunk_inclination_deg: np.ndarray
    head_inclination_deg: np.ndarray
    neck_joint_flexion_deg: np.ndarray
    neck_lateral_deg: np.ndarray
    neck_axial_deg: np.ndarray
    activity: np.ndarray
    activity_names: list[str]
    quat_trunk_segment: np.ndarray
    quat_head_segment: np.ndarray
    vehicle_speed_mps: np.ndarray


@dataclass
class SimResult:
    """Everything one simulation produced."""

    rate_hz: float
    t: np.ndarray
    imus: dict[str, ImuSignals]
    truth: Truth
    labels: Labels
    seed: int
    settings: SimSettings
    script: list[Segment] = field(default_factory=list)


def simulate(script: Sequence[Segment], seed: int = 0, settings: SimSettings | None = None) -> SimResult:
    """Simulate the wearer following ``script``.

    Args:
        script: segments in order (see :mod:`nape.sim.script`); durations are multiplied by
            ``settings.time_scale``.
        seed: non-negative integer; identical (script, seed, settings) give identical arrays.
        settings: run settings; None means :class:`SimSettings` defaults.

    Returns:
        A :class:`SimResult` at ``settings.rate_hz``; ``t`` runs from 0 in steps of 1/rate.

    Raises:
        SimError: on a negative or non-integer seed, invalid settings, or an invalid script
            (unknown activity, non-positive duration, vehicle speed going negative).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SimError(f"seed must be a non-negative integer, got {seed!r}")
    settings = settings or SimSettings()
    settings.validate()
    segs = scaled(list(script), settings.time_scale)
    tl = Timeline.of(segs)

    rate = float(settings.rate_hz)
    os = settings.internal_oversample()
    n_out = int(round(tl.total_s * rate))
    margin = int(math.ceil(_MARGIN_S * rate))
    dt = 1.0 / (rate * os)
    t_int = (np.arange((n_out + 2 * margin) * os) - margin * os) * dt
    t_out = np.arange(n_out) / rate

    motion = build_motion(tl, t_int, dt, np.random.default_rng([seed, 1]), settings.road_vibration)
    rng_mount = np.random.default_rng([seed, 2])
    mis = np.deg2rad(settings.mounting_misalignment_deg)
    q_mounts = {role: rot.random_rotation(rng_mount, mis) for role in ("trunk", "head")}
    kin = compute(motion, os, margin, n_out, q_mounts)
    seg_idx = motion.segment[kin.out_index]
    del motion

    trunk_inc = np.rad2deg(rot.pitch_of(kin.trunk.q_segment))
    head_inc = np.rad2deg(rot.pitch_of(kin.head.q_segment))
    flex, lat, axial = rot.neck_angles(quat.mul(quat.conj(kin.trunk.q_segment), kin.head.q_segment))
    codes = np.array([ACTIVITY_NAMES.index(s.activity) for s in segs], dtype=np.int8)
    truth = Truth(
        neck_flexion_deg=head_inc - trunk_inc,
        trunk_inclination_deg=trunk_inc,
        head_inclination_deg=head_inc,
        neck_joint_flexion_deg=np.rad2deg(flex),
        neck_lateral_deg=np.rad2deg(lat),
        neck_axial_deg=np.rad2deg(axial),
        activity=codes[seg_idx],
        activity_names=list(ACTIVITY_NAMES),
        quat_trunk_segment=kin.trunk.q_segment,
        quat_head_segment=kin.head.q_segment,
        vehicle_speed_mps=kin.vehicle_speed[kin.out_index],
    )
    labels = make_labels(tl, kin, t_out, t_int, truth.neck_flexion_deg, trunk_inc, truth.neck_lateral_deg)

    roles = [("trunk", kin.trunk, 3)] + ([("head", kin.head, 4)] if settings.head_imu else [])
    imus = {}
    for role, sig, stream in roles:
        acc, gyr = apply_sensor_errors(
            sig.acc, sig.gyr, settings.sensor, rate, settings.acc_range_g, settings.gyr_range_dps,
            np.random.default_rng([seed, stream]),
        )
        imus[role] = ImuSignals(acc, gyr, sig.q_sensor, sig.acc, sig.gyr, sig.q_mount)
    return SimResult(rate, t_out, imus, truth, labels, seed, settings, segs)


def simulate_day(seed: int = 0, settings: SimSettings | None = None) -> SimResult:
    """The default scripted ~15-minute day (:func:`~nape.sim.script.default_day_script`).

    Raises:
        SimError: on invalid settings.
    """
    return simulate(default_day_script(), seed, settings)
