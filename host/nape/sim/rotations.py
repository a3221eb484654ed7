"""Fast rotation helpers for long signals, in component-major layout.

Inside the simulator quaternions are stored as ``(4, N)`` arrays (rows w, x, y, z) and
vectors as ``(3, N)``, so every arithmetic operation runs on contiguous rows; this is
several times faster than ``(N, 4)`` for million-sample signals. Public results use the
usual ``(N, 4)`` / ``(N, 3)`` layout (:func:`rows`). Quaternions are ``(w, x, y, z)``,
segment/sensor-to-world, as fixed in docs/CONVENTIONS.md.

Angles used by the simulator (rad):

* ``pitch`` — rotation about the segment's y axis (to the wearer's left); positive tilts
  the anterior x axis down, i.e. flexion / forward inclination is positive.
* ``roll`` / lateral — rotation about the anterior x axis; positive tilts the top of the
  segment to the wearer's right (right-hand rule about +x moves +z towards -y).
* ``yaw`` / axial — rotation about the superior z axis; positive turns the anterior axis
  to the wearer's left.
"""

from __future__ import annotations

import numpy as np


def rows(a: np.ndarray) -> np.ndarray:
    """(k, N) component-major -> (N, k) contiguous sample-major."""
    return np.ascontiguousarray(a.T)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of (4, N) arrays (either may be (4, 1) to broadcast)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (inverse of a unit quaternion) of (4, N)."""
    return np.stack([q[0], -q[1], -q[2], -q[3]])


def matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (3, 3, N) of unit quaternions (4, N): ``v_world = R v_body``."""
    w, x, y, z = q
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    return np.array(
        [
            [1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy)],
            [2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx)],
            [2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy)],
        ]
    )


def apply(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``R v`` for matrices (3, 3, N) and vectors (3, N) or a constant (3,)."""
    return r[:, 0] * v[0] + r[:, 1] * v[1] + r[:, 2] * v[2]


def apply_t(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``R^T v`` (world -> body) for matrices (3, 3, N) and vectors (3, N)."""
    return r[0] * v[0] + r[1] * v[1] + r[2] * v[2]


def euler_yxz(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Quaternion (4, N) of ``Ry(a) Rx(b) Rz(c)`` (rotations about body y, then x, then z)."""
    ca, sa = np.cos(a / 2), np.sin(a / 2)
    cb, sb = np.cos(b / 2), np.sin(b / 2)
    cc, sc = np.cos(c / 2), np.sin(c / 2)
    w, x, y, z = ca * cb, ca * sb, sa * cb, -sa * sb  # Ry(a) Rx(b)
    return np.stack([w * cc - z * sc, x * cc + y * sc, y * cc - x * sc, w * sc + z * cc])


def yaw_mul(psi: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``Rz(psi) ⊗ q`` for headings (N,) rad and quaternions (4, N)."""
    c, s = np.cos(psi / 2), np.sin(psi / 2)
    w, x, y, z = q
    return np.stack([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w])


def yaw_rotate(psi: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``Rz(psi) v`` for headings (N,) rad and vectors (3, N)."""
    c, s = np.cos(psi), np.sin(psi)
    return np.stack([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


def from_rotvec(rv: np.ndarray) -> np.ndarray:
    """Quaternion (4,) of one rotation vector (3,) rad."""
    rv = np.asarray(rv, dtype=float)
    ang = float(np.linalg.norm(rv))
    if ang < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[np.cos(ang / 2)], np.sin(ang / 2) * rv / ang])


def to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vectors (3, N) rad of unit quaternions (4, N), taking the short way round."""
    sign = np.where(q[0] < 0, -1.0, 1.0)
    w = q[0] * sign
    v = q[1:] * sign
    s = np.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    ang = 2 * np.arctan2(s, w)
    k = np.where(s > 1e-12, ang / np.where(s > 1e-12, s, 1.0), 2.0)
    return k * v


def random_rotation(rng: np.random.Generator, angle_rad: float) -> np.ndarray:
    """One quaternion (4,) rotating by exactly ``angle_rad`` about a uniformly random axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return from_rotvec(axis * angle_rad)


def pitch_of(q: np.ndarray) -> np.ndarray:
    """Sagittal inclination (rad) of segments (q in (N, 4)): anterior-axis elevation below horizontal.

    This is the ZYX-Euler pitch ``asin(-R[2, 0])``: 0 upright, positive forward (flexion),
    -pi/2 lying supine; heading does not affect it.
    """
    w, x, y, z = q.T
    return np.arcsin(np.clip(-2 * (x * z - w * y), -1.0, 1.0))


def neck_angles(q_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decompose relative rotations (N, 4) as ``R = Ry(flex) Rx(lateral) Rz(axial)``.

    Returns ``(flexion, lateral, axial)`` in rad — the order the simulator composes the
    neck joint in, so the decomposition returns the generating angles (|lateral| < 90°).
    """
    w, x, y, z = q_rel.T
    r02 = 2 * (x * z + w * y)
    r12 = 2 * (y * z - w * x)
    r22 = 1 - 2 * (x * x + y * y)
    r10 = 2 * (x * y + w * z)
    r11 = 1 - 2 * (x * x + z * z)
    return np.arctan2(r02, r22), np.arcsin(np.clip(-r12, -1.0, 1.0)), np.arctan2(r10, r11)


def body_rate(q: np.ndarray, dt: float) -> np.ndarray:
    """Angular velocity (3, N) rad/s in the body frame from sampled orientations (4, N).

    Central difference on the rotation group, ``omega_k = log(q_{k-1}* ⊗ q_{k+1}) / 2dt``:
    second-order accurate, exact for constant angular velocity, and equal to the vector part
    of ``2 q* ⊗ dq/dt`` to O(dt²). The end samples repeat their neighbours.
    """
    w = np.empty((3, q.shape[1]))
    w[:, 1:-1] = to_rotvec(mul(conj(q[:, :-2]), q[:, 2:])) / (2 * dt)
    w[:, 0] = w[:, 1]
    w[:, -1] = w[:, -2]
    return w
