"""Build .nape recordings from known orientation and acceleration profiles (host encoder).

Lets analysis tests state exact ground truth without the simulator or the firmware.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nape import quat, wire
from nape.recording import RecordingWriter

G = 9.80665


def pitch_quat(pitch_deg: np.ndarray, heading_deg: float = 0.0) -> np.ndarray:
    """Sensor-to-world quaternions: heading about z, then forward pitch about y."""
    p = np.deg2rad(np.asarray(pitch_deg, float)) / 2
    qp = np.stack([np.cos(p), np.zeros_like(p), np.sin(p), np.zeros_like(p)], axis=-1)
    h = np.deg2rad(heading_deg) / 2
    qh = np.array([np.cos(h), 0, 0, np.sin(h)])
    return quat.mul(np.broadcast_to(qh, qp.shape), qp)


def specific_force(q: np.ndarray, lin_acc_world: np.ndarray) -> np.ndarray:
    """Sensor-frame specific force for world linear acceleration (m/s^2)."""
    f_world = lin_acc_world + np.array([0.0, 0.0, G])
    return quat.rotate(quat.conj(q), f_world)


def body_rates(q: np.ndarray, rate_hz: float) -> np.ndarray:
    """Sensor-frame angular velocity (rad/s) consistent with the orientation sequence q."""
    if len(q) < 2:  # a single orientation: no rotation to see
        return np.zeros((len(q), 3))
    dq = np.gradient(q, 1.0 / rate_hz, axis=0)
    return 2.0 * quat.mul(quat.conj(q), dq)[:, 1:]


def write_recording(path: Path, rate_hz: float, q_trunk, q_head=None, lin_trunk=None, lin_head=None,
                    per_packet: int = 5, drop_packets: set[int] | None = None, gyr_add_trunk=None) -> Path:
    """Encode the profiles into SAMPLES packets and write a .nape file (``gyr_add_trunk``: (n, 3)
    rad/s added to the trunk's angular velocity, a sensor fault the orientation does not follow)."""
    n = len(q_trunk)
    lin_trunk = np.zeros((n, 3)) if lin_trunk is None else lin_trunk
    qs = [q_trunk] + ([q_head] if q_head is not None else [])
    lins = [lin_trunk] + ([np.zeros((n, 3)) if lin_head is None else lin_head] if q_head is not None else [])
    quat_all = np.stack(qs, axis=1)
    acc_all = np.stack([specific_force(q, l) for q, l in zip(qs, lins)], axis=1)
    gyr_all = np.stack([body_rates(q, rate_hz) for q in qs], axis=1)
    if gyr_add_trunk is not None:
        gyr_all[:, 0] += gyr_add_trunk
    mask = 3 if q_head is not None else 1
    period = int(round(1e6 / rate_hz))
    roles = ["trunk", "head"] if q_head is not None else ["trunk"]
    meta = {"device_name": "factory", "firmware_version": "test", "imu_roles": roles, "sample_rate_hz": rate_hz,
            "source": "simulated", "wire_format_version": 1}
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        batch = []
        for k, i in enumerate(range(0, n, per_packet)):
            j = min(n, i + per_packet)
            pkt = wire.encode_samples(mask, i, int(i * period / 1000), period, np.zeros(j - i, np.uint8),
                                      quat_all[i:j], acc_all[i:j], gyr_all[i:j])
            if not drop_packets or k not in drop_packets:
                batch.append(pkt)
            if len(batch) >= 100:
                w.write_packets(batch, 1.7e9 + i / rate_hz)
                batch = []
        if batch:
            w.write_packets(batch, 1.7e9 + n / rate_hz)
    return path


def road_vibration(n: int, rate_hz: float, rms_g: float = 0.02, seed: int = 0) -> np.ndarray:
    """Vertical road / engine vibration (n, 3) m/s², band 8–25 Hz, ``rms_g`` RMS: what makes
    the analysis' vehicle context (a car on the road vibrates continuously)."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    sos = signal.butter(2, [8.0, min(25.0, 0.45 * rate_hz)], btype="band", fs=rate_hz, output="sos")
    v = signal.sosfiltfilt(sos, rng.standard_normal(n))
    out = np.zeros((n, 3))
    out[:, 2] = v / max(float(v.std()), 1e-12) * rms_g * G
    return out


def in_car(lin: np.ndarray, rate_hz: float, rms_g: float = 0.02) -> np.ndarray:
    """``lin`` (n, 3) m/s² with :func:`road_vibration` added."""
    return lin + road_vibration(len(lin), rate_hz, rms_g)
