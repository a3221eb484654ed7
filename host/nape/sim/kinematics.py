"""Rigid-body chain, dynamic responses and the clean IMU signals they produce.

Chain (world frame z up; the *support frame* is the ground or the vehicle, yawed by the
heading ``psi`` and translating with speed ``v`` along it)::

    p_hip    = hip(t) + vehicle vibration(t) + seat compliance d(t)          (support frame)
    R_trunk  = Rz(psi) Ry(pitch) Rx(roll) Rz(axial)
    p_trunk  = p_hip + R_trunk_rel (HIP_TO_TRUNK_SENSOR + breathing)
    p_pivot  = p_trunk + R_trunk_rel TRUNK_SENSOR_TO_NECK_PIVOT
    R_head   = R_trunk Ry(flex) Rx(lateral) Rz(axial)                       (neck joint)
    p_head   = p_pivot + R_head_rel NECK_PIVOT_TO_HEAD_SENSOR

World acceleration of a point = support acceleration ``v' h(psi) + v psi' h_perp(psi)``
(analytic in the vehicle's own longitudinal acceleration) + the second derivative of its
position in the yawing support frame expressed in world axes, ``d²/dt² [Rz(psi) p]``. That
second derivative is a 4th-order central difference on the internal grid, which runs
``oversample`` times faster than the output; angular velocity is
``log(q_{k-1}* q_{k+1}) / 2dt`` in the body frame. Both are then decimated to the output
rate by :func:`scipy.signal.resample_poly` (Kaiser-windowed FIR, zero phase), so the
anti-alias filter does not shift peaks in time. ``quat_true`` is the orientation sampled at
the output instants. Specific force in the sensor frame is ``f = R_s^T (a - g)``,
``g = (0, 0, -9.80665)``. Strapdown integration of the decimated ``gyr_clean`` reproduces
``quat_true`` to a few hundredths of a degree over the default day.

Long signals are evaluated in cache-sized blocks (:mod:`nape.sim.blocks`); stencils get a
halo so the result is identical to whole-array evaluation.

Dynamics (:mod:`nape.sim.body`): vehicle accelerations drive seat compliance and trunk lean;
the neck pivot's linear acceleration, expressed in the trunk frame, drives the head lag.

Mounting: each sensor frame is its segment frame rotated by a fixed seeded rotation of
``mounting_misalignment_deg`` about a random axis, ``q_sensor = q_segment ⊗ q_mount``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from . import blocks, body
from . import rotations as rot
from .motion import Motion
from .sensor import G

GRAVITY_UP = np.array([0.0, 0.0, G])  # -g_world


@dataclass
class SegmentSignals:
    """Clean signals of one segment's sensor at the output rate (sample-major arrays)."""

    q_segment: np.ndarray  # (n, 4) segment-to-world
    q_sensor: np.ndarray  # (n, 4) sensor-to-world (= quat_true)
    acc: np.ndarray  # (n, 3) specific force, sensor frame, m/s^2
    gyr: np.ndarray  # (n, 3) angular rate, sensor frame, rad/s
    q_mount: np.ndarray  # (4,) sensor-to-segment


@dataclass
class Kinematics:
    """Output-rate clean signals plus the vehicle's motion on the internal grid."""

    trunk: SegmentSignals
    head: SegmentSignals
    out_index: np.ndarray  # internal-grid index of each output sample
    vehicle_acc: np.ndarray  # (3, N_int) vehicle-frame acceleration of the vehicle body, m/s^2
    vehicle_speed: np.ndarray  # (N_int,) m/s


def _decimate(x: np.ndarray, os: int, first: int, n: int) -> np.ndarray:
    """Anti-alias filter and keep every ``os``-th sample of (3, N); returns (n, 3)."""
    if os > 1:
        x = signal.resample_poly(x, 1, os, axis=1, padtype="line")
    return rot.rows(x[:, first : first + n])


def _sensor_signals(q_seg, p_world, a_support, q_mount, dt, os, first, n, out_index) -> SegmentSignals:
    """Specific force and angular rate of a sensor mounted on a segment, decimated to the output."""
    N = q_seg.shape[1]
    q_s = np.empty_like(q_seg)
    f = np.empty((3, N))
    for i0, i1 in blocks.spans(N):
        q_s[:, i0:i1] = rot.mul(q_seg[:, i0:i1], q_mount[:, None])
    blocks.with_halo(lambda p: blocks.second_derivative(p, dt), p_world, 2, f)
    for i0, i1 in blocks.spans(N):
        a = f[:, i0:i1] + a_support[:, i0:i1]
        a[2] += G
        f[:, i0:i1] = rot.apply_t(rot.matrix(q_s[:, i0:i1]), a)
    w = blocks.with_halo(lambda q: rot.body_rate(q, dt), q_s, 1, np.empty((3, N)))
    return SegmentSignals(
        q_segment=rot.rows(q_seg[:, out_index]),
        q_sensor=rot.rows(q_s[:, out_index]),
        acc=_decimate(f, os, first, n),
        gyr=_decimate(w, os, first, n),
        q_mount=q_mount,
    )


def compute(m: Motion, os: int, first: int, n_out: int, q_mounts: dict[str, np.ndarray]) -> Kinematics:
    """Run the chain on the internal grid and return output-rate clean signals.

    Args:
        m: intended motion on the internal grid.
        os: oversampling factor (internal rate / output rate).
        first: index (in output samples) of output time 0 in the decimated internal grid.
        n_out: number of output samples.
        q_mounts: sensor-to-segment rotation (4,) per role ("trunk", "head").
    """
    dt = m.dt
    N = len(m.t)
    psi = m.heading
    dpsi = np.gradient(psi, dt)
    d2 = lambda x: blocks.second_derivative(x, dt)  # noqa: E731

    # Vehicle body acceleration in the vehicle frame: own longitudinal + cornering + vibration.
    veh_acc = blocks.with_halo(d2, m.vehicle_disp, 2, np.empty((3, N)))
    veh_acc[0] += m.vehicle_acc_lon
    veh_acc[1] += m.vehicle_speed * dpsi

    # Occupant responses to vehicle acceleration.
    d_seat = body.seat_displacement(veh_acc, dt)
    pitch_dyn, roll_dyn = body.trunk_lean(veh_acc, dt)

    # Trunk chain, block by block.
    q_tr = np.empty((4, N))
    P_trunk = np.empty((3, N))
    P_pivot = np.empty((3, N))
    a_support = np.empty((3, N))
    back = body.HIP_TO_TRUNK_SENSOR
    for i0, i1 in blocks.spans(N):
        sl = slice(i0, i1)
        ps = psi[sl]
        q_rel = rot.euler_yxz(m.trunk[0, sl] + pitch_dyn[sl], m.trunk[1, sl] + roll_dyn[sl], m.trunk[2, sl])
        r_rel = rot.matrix(q_rel)
        q_tr[:, sl] = rot.yaw_mul(ps, q_rel)
        hip = m.hip[:, sl] + m.vehicle_disp[:, sl] + d_seat[:, sl]
        # Breathing: the back surface moves out (-x) on inhalation by up to 1.5 mm.
        p_trunk = hip + rot.apply(r_rel, back) - r_rel[:, 0] * (0.0015 * m.breath[sl])
        p_pivot = p_trunk + rot.apply(r_rel, body.TRUNK_SENSOR_TO_NECK_PIVOT)
        P_trunk[:, sl] = rot.yaw_rotate(ps, p_trunk)
        P_pivot[:, sl] = rot.yaw_rotate(ps, p_pivot)
        # Support (ground/vehicle) acceleration in world axes.
        speed = m.walk_speed[sl] + m.vehicle_speed[sl]
        lon = m.vehicle_acc_lon[sl]
        c, s = np.cos(ps), np.sin(ps)
        a_support[0, sl] = lon * c - speed * dpsi[sl] * s
        a_support[1, sl] = lon * s + speed * dpsi[sl] * c
    a_support[2] = 0.0
    # Walking speed changes: add d(v_walk)/dt along the heading.
    walk_acc = np.gradient(m.walk_speed, dt)
    a_support[0] += walk_acc * np.cos(psi)
    a_support[1] += walk_acc * np.sin(psi)
    del d_seat, walk_acc

    # Head lag driven by the pivot's linear acceleration in trunk axes.
    a_piv = blocks.with_halo(d2, P_pivot, 2, np.empty((3, N)))
    for i0, i1 in blocks.spans(N):
        sl = slice(i0, i1)
        a_piv[:, sl] = rot.apply_t(rot.matrix(q_tr[:, sl]), a_piv[:, sl] + a_support[:, sl])
    flex_dyn, lat_dyn = body.head_lag(a_piv, dt)
    del a_piv

    # Head chain.
    q_hd = np.empty((4, N))
    P_head = P_pivot  # overwritten in place block by block
    for i0, i1 in blocks.spans(N):
        sl = slice(i0, i1)
        q = rot.mul(q_tr[:, sl], rot.euler_yxz(m.neck[0, sl] + flex_dyn[sl], m.neck[1, sl] + lat_dyn[sl], m.neck[2, sl]))
        q_hd[:, sl] = q
        P_head[:, sl] += rot.apply(rot.matrix(q), body.NECK_PIVOT_TO_HEAD_SENSOR)

    out_index = (first + np.arange(n_out)) * os
    trunk_sig = _sensor_signals(q_tr, P_trunk, a_support, q_mounts["trunk"], dt, os, first, n_out, out_index)
    head_sig = _sensor_signals(q_hd, P_head, a_support, q_mounts["head"], dt, os, first, n_out, out_index)
    return Kinematics(trunk_sig, head_sig, out_index, veh_acc, m.vehicle_speed)
