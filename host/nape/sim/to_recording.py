"""Simulated wearer -> .nape recording, the fast way (no MicroPython firmware in the loop).

:func:`write_truth_recording` encodes a :class:`~nape.sim.SimResult` into SAMPLES packets
with :func:`nape.wire.encode_samples`, exactly as the board would send them (same packet
size as the firmware at the default ATT MTU, same sequence numbers and device times), and
writes them with :class:`nape.recording.RecordingWriter`.

The accelerometer and gyroscope fields carry the simulated *measured* signals (noise,
bias, scale error, quantisation). The orientation field is, by default, **not** the true
quaternion: each IMU's measured acc/gyr are run through the ``vqf`` package's real-time 6D
filter (:class:`vqf.VQF`, default parameters: rest detection and gyroscope bias
estimation on) — what a good on-board filter would send — so the analysis is judged with
realistic orientation errors (inclination errors under sustained acceleration, heading
drift, start-up convergence). ``orientation="truth"`` sends ``quat_true`` instead, to tell
analysis errors from orientation-filter errors.

The slower, more faithful path runs the firmware itself:
``nape.recorder.record(nape.device_sim.SimulatedTransport(sim), path)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nape import wire
from nape.recording import RecordingWriter

from .settings import SimError

DEFAULT_VALUE_LEN = 244  # ATT MTU 247 - 3, as nape.device_sim
_PACKETS_PER_CHUNK = 200
_HOST_T0 = 1.7e9  # wall-clock start written into the PACKETS chunks, s since the epoch
ORIENTATIONS = ("vqf", "truth")


def samples_per_packet(n_imu: int, max_value_len: int = DEFAULT_VALUE_LEN) -> int:
    """Samples per SAMPLES packet that fit one notification (the firmware's rule)."""
    size = 1 + 20 * n_imu
    return max(1, (max_value_len - 1 - wire.SAMPLES_HEADER) // size)


def vqf_orientation(acc: np.ndarray, gyr: np.ndarray, rate_hz: float) -> np.ndarray:
    """Sensor-to-world quaternions (N, 4) (w, x, y, z) from :class:`vqf.VQF` 6D, run causally.

    Args:
        acc: (N, 3) specific force, m/s^2, sensor frame.
        gyr: (N, 3) angular rate, rad/s, sensor frame.
        rate_hz: sample rate, Hz.
    """
    from vqf import VQF

    f = VQF(1.0 / float(rate_hz))
    out = f.updateBatch(np.ascontiguousarray(gyr, dtype=np.float64), np.ascontiguousarray(acc, dtype=np.float64))
    return np.asarray(out["quat6D"])


def orientations(sim, orientation: str = "vqf") -> dict[str, np.ndarray]:
    """Per-role quaternions (N, 4) that :func:`write_truth_recording` sends.

    Raises:
        SimError: unknown ``orientation``.
    """
    if orientation not in ORIENTATIONS:
        raise SimError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    out = {}
    for role, imu in sim.imus.items():
        if orientation == "vqf":
            out[role] = vqf_orientation(imu.acc, imu.gyr, sim.rate_hz)
        else:
            out[role] = np.asarray(imu.quat_true)
    return out


def write_truth_recording(
    sim,
    path: str | os.PathLike[str],
    *,
    orientation: str = "vqf",
    max_value_len: int = DEFAULT_VALUE_LEN,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``sim`` (a :class:`nape.sim.SimResult`) as a .nape recording without the firmware.

    Args:
        sim: the simulated wearer; every IMU in ``sim.imus`` is written (trunk first).
        path: file to create.
        orientation: "vqf" (default: :class:`vqf.VQF` 6D on the measured signals) or
            "truth" (the simulator's true sensor orientation).
        max_value_len: notification size the packets are sized for (the firmware's rule).
        metadata: extra header metadata (merged over the defaults).
        overwrite: replace an existing file.

    Returns:
        ``Path(path)``.

    Raises:
        SimError: unknown orientation or no trunk IMU.
        nape.errors.RecordingError: the file cannot be written.
    """
    roles = [r for r in ("trunk", "head") if r in sim.imus]
    if "trunk" not in roles:
        raise SimError("the simulation has no trunk IMU")
    mask = sum(bit for r, bit in wire.ROLE_BITS if r in roles)
    quats = orientations(sim, orientation)
    q_all = np.stack([quats[r] for r in roles], axis=1)
    acc_all = np.stack([sim.imus[r].acc for r in roles], axis=1)
    gyr_all = np.stack([sim.imus[r].gyr for r in roles], axis=1)
    n = len(q_all)
    period_us = int(round(1e6 / sim.rate_hz))
    per = samples_per_packet(len(roles), max_value_len)
    zeros = np.zeros(per, np.uint8)
    meta = {
        "device_name": "Nape-sim-fast",
        "firmware_version": "host-encoder",
        "wire_format_version": wire.VERSION,
        "imu_roles": roles,
        "sample_rate_hz": float(sim.rate_hz),
        "source": "simulated",
        "sim_seed": int(sim.seed),
        "orientation_source": "vqf.VQF 6D real-time" if orientation == "vqf" else "simulator truth",
    }
    meta.update(metadata or {})
    path = Path(path)
    with RecordingWriter(path, meta, fsync_interval_s=3600.0, overwrite=overwrite) as w:
        batch: list[bytes] = []
        for i in range(0, n, per):
            j = min(n, i + per)
            t_ms = (i * period_us) // 1000
            batch.append(wire.encode_samples(mask, i, t_ms, period_us, zeros[: j - i],
                                             q_all[i:j], acc_all[i:j], gyr_all[i:j]))
            if len(batch) >= _PACKETS_PER_CHUNK:
                w.write_packets(batch, _HOST_T0 + j / sim.rate_hz)
                batch = []
        if batch:
            w.write_packets(batch, _HOST_T0 + n / sim.rate_hz)
    return path
