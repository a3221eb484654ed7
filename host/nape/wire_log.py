"""Wire format v1, type 3 LOG: the offline day log's reduced-rate orientation records.

protocol/SPEC.md ("Type 3: LOG") is the reference. A LOG packet has the SAMPLES header
layout (version, type 3, imu_mask, count, u32 seq, u32 t_ms) but a u16 ``period_ms``, then
``count`` samples of one packed quaternion per IMU present (trunk first): 3 bytes,
"smallest three" -- 2 bits for which component is largest in magnitude (0 w, 1 x, 2 y,
3 z; the quaternion is negated so that component is positive), then the other three in
w, x, y, z order as 7-bit codes ``round(v * 63 * sqrt 2) + 64`` (bits 2-8, 9-15, 16-22),
bit 23 reserved (0). Each component is within 1 / (2 * 63 * sqrt 2) = 0.0056 of the
input, the orientation within 2 deg (99 % within 1.25 deg; tests/test_wire_log.py
measures it).

The firmware encoder (firmware/logpack.py) and this codec share protocol/vectors/log.json.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from .errors import PacketError
from .wire import VERSION, roles_of

TYPE_LOG = 3
LOG_HEADER = 14
LOG_QUAT_BYTES = 3
LOG_SCALE = 63.0 * math.sqrt(2.0)  # code units per unit of a quaternion component
#: a decoded quaternion's three small components may square-sum to at most 1 + this
LOG_NORM_TOL = 0.02
MAX_LOG_PACKET = 243  # fits one offline-buffer slot (firmware/ble_buffer.py)
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])  # the three small components


@dataclass
class LogPacket:
    """A decoded LOG packet: orientations at a reduced rate."""

    imu_mask: int
    seq: int
    t_ms: int
    period_ms: int
    quat: np.ndarray  # (n, n_imu, 4) unit quaternions (w, x, y, z), w >= 0 not implied

    @property
    def count(self) -> int:
        return len(self.quat)

    @property
    def roles(self) -> tuple[str, ...]:
        return roles_of(self.imu_mask)


def per_packet(imu_mask: int) -> int:
    """Samples in a full LOG packet (38 with two IMUs, 76 with one)."""
    return (MAX_LOG_PACKET - LOG_HEADER) // (LOG_QUAT_BYTES * len(roles_of(imu_mask)))


def pack_quats(quat: np.ndarray) -> np.ndarray:
    """(n, 4) quaternions (any norm > 0) -> (n,) uint32 24-bit words.

    Raises:
        ValueError: a quaternion of zero or non-finite norm.
    """
    q = np.asarray(quat, dtype=np.float64).reshape(-1, 4)
    norm = np.linalg.norm(q, axis=1)
    if not np.all(np.isfinite(norm)) or np.any(norm <= 0):
        raise ValueError("quaternions must have a finite, non-zero norm")
    q = q / norm[:, None]
    big = np.argmax(np.abs(q), axis=1)
    q = q * np.where(q[np.arange(len(q)), big] < 0, -1.0, 1.0)[:, None]
    small = np.take_along_axis(q, _OTHERS[big], axis=1) * LOG_SCALE
    code = np.sign(small) * np.floor(np.abs(small) + 0.5) + 64  # round half away from zero
    code = np.clip(code, 0, 127).astype(np.uint32)
    return big.astype(np.uint32) | (code[:, 0] << 2) | (code[:, 1] << 9) | (code[:, 2] << 16)


def unpack_quats(words: np.ndarray) -> np.ndarray:
    """(n,) 24-bit words -> (n, 4) unit quaternions.

    Raises:
        PacketError: a reserved bit set, or small components too large for a unit quaternion.
    """
    w = np.asarray(words, dtype=np.uint32)
    if np.any(w >> 23):
        raise PacketError("LOG quaternion has its reserved bit 23 set")
    big = (w & 3).astype(int)
    small = np.stack([((w >> (2 + 7 * k)) & 127).astype(np.float64) - 64.0 for k in range(3)], axis=1) / LOG_SCALE
    s = np.sum(small * small, axis=1)
    if np.any(s > 1.0 + LOG_NORM_TOL):
        i = int(np.argmax(s > 1.0 + LOG_NORM_TOL))
        raise PacketError(f"LOG quaternion {i} is not a unit quaternion (small components square-sum {s[i]:.3f})")
    out = np.empty((len(w), 4))
    rows = np.arange(len(w))
    out[rows[:, None], _OTHERS[big]] = small
    out[rows, big] = np.sqrt(np.clip(1.0 - s, 0.0, None))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def encode_log_packet(imu_mask: int, seq: int, t_ms: int, period_ms: int, quat: np.ndarray) -> bytes:
    """Bytes of one LOG packet; ``quat`` (n, n_imu, 4), trunk first.

    Raises:
        ValueError: bad ``imu_mask``, shape, count (1 .. ``per_packet``) or period (1 .. 65535 ms).
    """
    n_imu = len(roles_of(imu_mask)) if imu_mask in (1, 2, 3) else 0
    q = np.asarray(quat, dtype=np.float64)
    if not n_imu or q.ndim != 3 or q.shape[1:] != (n_imu, 4):
        raise ValueError("quat must be (n, IMUs in imu_mask, 4) with imu_mask 1, 2 or 3")
    n = len(q)
    if not 1 <= n <= per_packet(imu_mask) or not 1 <= period_ms <= 0xFFFF:
        raise ValueError("count or period_ms out of range")
    words = pack_quats(q.reshape(-1, 4))
    body = b"".join(struct.pack("<I", int(x))[:3] for x in words)
    return struct.pack("<BBBBIIH", VERSION, TYPE_LOG, imu_mask, n, seq & 0xFFFFFFFF,
                       t_ms & 0xFFFFFFFF, period_ms) + body


def decode_log_packet(data: bytes) -> LogPacket:
    """Decode one LOG packet.

    Raises:
        PacketError: the bytes do not follow protocol/SPEC.md type 3 (one-line message).
    """
    data = bytes(data)
    if len(data) < LOG_HEADER:
        raise PacketError(f"LOG packet too short: {len(data)} bytes, header needs {LOG_HEADER}")
    version, ptype, mask, count, seq, t_ms, period_ms = struct.unpack_from("<BBBBIIH", data, 0)
    if version != VERSION:
        raise PacketError(f"unsupported wire format version {version} (this host reads {VERSION})")
    if ptype != TYPE_LOG:
        raise PacketError(f"not a LOG packet (type {ptype})")
    if mask == 0 or mask & ~0x03:
        raise PacketError(f"invalid imu_mask 0x{mask:02x}")
    if count == 0:
        raise PacketError("packet holds 0 samples")
    if period_ms == 0:
        raise PacketError("LOG packet has period_ms 0")
    n_imu = len(roles_of(mask))
    expected = LOG_HEADER + count * n_imu * LOG_QUAT_BYTES
    if len(data) != expected:
        raise PacketError(f"LOG packet is {len(data)} bytes, header implies {expected}")
    raw = np.frombuffer(data, dtype=np.uint8, offset=LOG_HEADER).reshape(-1, 3).astype(np.uint32)
    words = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    quat = unpack_quats(words).reshape(count, n_imu, 4)
    return LogPacket(imu_mask=mask, seq=seq, t_ms=t_ms, period_ms=period_ms, quat=quat)
