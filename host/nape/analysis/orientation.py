"""Orientation on the host: re-fusion with VQF, sensor-to-segment alignment, body angles.

- Re-fusion: the stream carries each IMU's raw acc/gyr beside the firmware quaternion, so
  the host re-fuses them with the ``vqf`` package's real-time 6D filter (Laidig & Seel 2023),
  block by block with its state carried, for reference-quality orientation (VQF's
  rest-based gyro-bias estimation off, see :class:`Refuser`). Firmware quaternions are used
  when ``AnalysisSettings.fuse_on_host`` is 0.
- Alignment: a neutral (upright) orientation gives each sensor's "up" in its own frame; the
  segment frame (x forward, y left, z up) is built with z on that up vector and x on the
  sensor's x axis made horizontal (the enclosure's arrow; hardware/MOUNTING.md). This removes
  any tilt of the mounting; a yaw of the mounting about the body's vertical remains and
  mixes a little flexion into lateral bending (cos 15° = 0.97).
- Angles: segment inclination is the pitch of its forward axis below horizontal (ISO 11226
  inclination, forward +); neck flexion = head − trunk inclination (ISO 11226). Neck joint
  angles (flexion about y, lateral bend about x, axial rotation about z: intrinsic Y-X-Z
  Cardan angles of the head relative to the trunk) need the two IMUs' headings aligned:
  6D fusion gives each IMU its own drifting heading, so the heading offset is taken at the
  neutral pose and then tracked as the slow (``heading_tau_s``) mean of the head–trunk yaw
  difference while upright, assuming axial neck rotation averages out over minutes.
"""

from __future__ import annotations

import numpy as np
from vqf import VQF

from .. import quat


class Refuser:
    """VQF 6D per IMU, fed block by block (state carried across blocks).

    VQF's rest-based gyro-bias estimation is off by default: it takes the slow rotation of a
    wearer who only seems still (a held head drifts, a standing trunk sways, ≈ 0.1–0.3 °/s)
    for gyro bias and integrates the error into the heading — on a simulated 8-min workday
    with an ideal sensor, after the analysis' heading tracking, 8° median / 13° p95 false
    neck axial rotation while sitting still, 1.5° / 2.3° without it (before tracking, 5 min:
    p95 56° vs 11°; tests/test_scenarios.py). The zero-rate offset measured over
    the still stretches of the first minutes (:mod:`.calibration`) is removed instead, and
    VQF's motion-based estimation (bias about the horizontal axes, observable from the
    accelerometer) stays on; slow heading drift left over is what the analysis' heading
    tracking (``heading_tau_s``) absorbs.
    """

    def __init__(self, n_imu: int, period_s: float, gyro_offset=None, rest_bias_estimation: bool = False):
        """``gyro_offset``: (n_imu, 3) rad/s removed before fusion; ``rest_bias_estimation``:
        VQF's ``restBiasEstEnabled``."""
        self.filters = [VQF(period_s, restBiasEstEnabled=rest_bias_estimation) for _ in range(n_imu)]
        self.offset = np.zeros((n_imu, 3)) if gyro_offset is None else np.asarray(gyro_offset, float)

    def __call__(self, acc: np.ndarray, gyr: np.ndarray) -> np.ndarray:
        """Orientations (n, k, 4) for raw acc (m/s^2) and gyr (rad/s), gyro offset removed."""
        out = np.empty(acc.shape[:2] + (4,))
        for k, f in enumerate(self.filters):
            g = np.ascontiguousarray(gyr[:, k] - self.offset[k])
            r = f.updateBatch(g, np.ascontiguousarray(acc[:, k]))
            out[:, k] = r["quat6D"]
        return out


def segment_alignment(q_neutral: np.ndarray) -> np.ndarray:
    """Quaternion of the segment frame in the sensor frame (q_seg = q_sensor ⊗ result)."""
    up = quat.rotate(quat.conj(q_neutral), np.array([0.0, 0.0, 1.0]))
    x = np.array([1.0, 0.0, 0.0]) - up[0] * up
    if np.linalg.norm(x) < 0.3:  # sensor x nearly vertical: fall back to sensor y
        x = np.array([0.0, 1.0, 0.0]) - up[1] * up
        x = np.cross(x, up)
    x /= np.linalg.norm(x)
    y = np.cross(up, x)
    return matrix_to_quat(np.stack([x, y, up], axis=1))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix (columns = rotated axes)."""
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.zeros(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q, float)
    return q / np.linalg.norm(q) * (1 if q[0] >= 0 else -1)


def inclination(q_seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pitch (forward +), roll (right side down +) and tilt of the segment's z axis from vertical, deg.

    Only the vertical (world z) components of the segment axes are needed: x_w·z = 2(xz − wy),
    y_w·z = 2(yz + wx), z_w·z = 1 − 2(x² + y²) (third row of the rotation matrix).
    """
    w, x, y, z = (q_seg[..., i] for i in range(4))
    pitch = np.degrees(np.arcsin(np.clip(-2.0 * (x * z - w * y), -1, 1)))
    roll = np.degrees(np.arcsin(np.clip(2.0 * (y * z + w * x), -1, 1)))
    tilt = np.degrees(np.arccos(np.clip(1.0 - 2.0 * (x * x + y * y), -1, 1)))
    return pitch, roll, tilt


def yaw(q_seg: np.ndarray) -> np.ndarray:
    """Heading of the segment's forward axis, rad."""
    x_w = quat.axis_in_world(q_seg, 0)
    return np.arctan2(x_w[..., 1], x_w[..., 0])


def z_rotation(angle: np.ndarray) -> np.ndarray:
    h = np.asarray(angle) / 2
    z = np.zeros_like(h)
    return np.stack([np.cos(h), z, z, np.sin(h)], axis=-1)


def joint_angles(q_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intrinsic Y-X-Z Cardan angles of q_rel (deg): flexion (about y, forward +),
    lateral bend (about x, right +), axial rotation (about z, left +)."""
    w, x, y, z = np.moveaxis(q_rel, -1, 0)
    r02 = 2 * (x * z + w * y)
    r22 = 1 - 2 * (x * x + y * y)
    r12 = 2 * (y * z - w * x)
    r10 = 2 * (x * y + w * z)
    r11 = 1 - 2 * (x * x + z * z)
    flex = np.degrees(np.arctan2(r02, r22))
    lat = np.degrees(np.arcsin(np.clip(-r12, -1, 1)))
    axial = np.degrees(np.arctan2(r10, r11))
    return flex, lat, axial


def neck_angle_deg(packet) -> float | None:
    """Neck flexion of a packet's newest sample, degrees (head pitch − trunk pitch, forward +;
    uncalibrated: the mounting offset is not removed), or None without a head IMU (or packet)."""
    if packet is None or packet.quat.shape[1] < 2:
        return None
    pitch, _roll, _tilt = inclination(packet.quat[-1])
    return float(pitch[1] - pitch[0])
