"""Wire format v1 encoder (protocol/SPEC.md), MicroPython.

Builds SAMPLES and EVENT packets into buffers allocated once, and splits packets into
notification-sized fragments. Physical inputs: quaternion (w, x, y, z), specific force
in m/s^2, angular velocity in rad/s.
"""

import struct
from micropython import const

VERSION = const(1)
TYPE_SAMPLES = const(1)
TYPE_EVENT = const(2)

SAMPLES_HEADER = const(14)
EVENT_HEADER = const(18)
MAX_PACKET = const(512)

FLAG_TRUNK_SAT = const(0x01)
FLAG_HEAD_SAT = const(0x02)
FLAG_TRUNK_REST = const(0x04)
FLAG_HEAD_REST = const(0x08)
FLAG_ALERT = const(0x10)
FLAG_JOLT = const(0x20)
FLAG_BACKFILL = const(0x40)

FRAG_START = const(0x80)
FRAG_END = const(0x40)

# m/s^2 -> mg and rad/s -> 0.1 deg/s
_ACC_SCALE = 1000.0 / 9.80665
_GYR_SCALE = 1800.0 / 3.141592653589793
_Q_SCALE = 16384.0


def _i16(v):
    """Round to nearest and saturate to int16. Returns (value, saturated)."""
    n = int(v + 0.5) if v >= 0 else -int(-v + 0.5)
    if n > 32767:
        return 32767, True
    if n < -32768:
        return -32768, True
    return n, False


def imu_count(imu_mask):
    return (imu_mask & 1) + ((imu_mask >> 1) & 1)


def samples_per_packet(imu_mask, max_value_len):
    """How many samples fit in one notification of ``max_value_len`` bytes (≥ 1)."""
    size = 1 + 20 * imu_count(imu_mask)
    n = (max_value_len - 1 - SAMPLES_HEADER) // size
    return n if n >= 1 else 1


class SampleBatcher:
    """Collects fused samples into SAMPLES packets.

    ``add`` returns True when the packet is full; then ``packet()`` gives its bytes and
    the next ``add`` starts a new packet. Sequence numbers count every sample.
    """

    def __init__(self, imu_mask, period_us, per_packet, seq=0):
        if imu_mask not in (1, 2, 3):
            raise ValueError("imu_mask must be 1, 2 or 3")
        self.imu_mask = imu_mask
        self.period_us = period_us
        self.per_packet = per_packet
        self.sample_size = 1 + 20 * imu_count(imu_mask)
        self.buf = bytearray(SAMPLES_HEADER + per_packet * self.sample_size)
        self.seq = seq  # seq of the next sample added
        self.count = 0
        self.saturations = 0

    def _put_imu(self, off, q, acc, gyr):
        sat = False
        buf = self.buf
        for i in range(4):
            v, s = _i16(q[i] * _Q_SCALE)
            struct.pack_into("<h", buf, off, v)
            off += 2
        for i in range(3):
            v, s = _i16(acc[i] * _ACC_SCALE)
            sat = sat or s
            struct.pack_into("<h", buf, off, v)
            off += 2
        for i in range(3):
            v, s = _i16(gyr[i] * _GYR_SCALE)
            sat = sat or s
            struct.pack_into("<h", buf, off, v)
            off += 2
        return sat

    def add(self, t_ms, flags, q0, acc0, gyr0, q1=None, acc1=None, gyr1=None):
        """Add one sample. Trunk values in q0/acc0/gyr0, head in q1/acc1/gyr1.

        For a head-only mask pass the head values as q0/acc0/gyr0.
        Returns True when the packet is full.
        """
        if self.count == 0:
            struct.pack_into(
                "<BBBBIIH", self.buf, 0, VERSION, TYPE_SAMPLES, self.imu_mask, 0,
                self.seq & 0xFFFFFFFF, t_ms & 0xFFFFFFFF, self.period_us,
            )
        off = SAMPLES_HEADER + self.count * self.sample_size
        first_sat = FLAG_TRUNK_SAT if self.imu_mask & 1 else FLAG_HEAD_SAT
        if self._put_imu(off + 1, q0, acc0, gyr0):
            flags |= first_sat
            self.saturations += 1
        if self.imu_mask == 3:
            if self._put_imu(off + 21, q1, acc1, gyr1):
                flags |= FLAG_HEAD_SAT
                self.saturations += 1
        self.buf[off] = flags & 0x7F
        self.count += 1
        self.seq += 1
        self.buf[3] = self.count
        return self.count >= self.per_packet

    def pending(self):
        return self.count

    def packet(self):
        """Bytes of the current packet (copy) and reset for the next one; None if empty."""
        if self.count == 0:
            return None
        out = bytes(self.buf[: SAMPLES_HEADER + self.count * self.sample_size])
        self.count = 0
        return out


def encode_event(imu_mask, event_id, first_index, total, pre_trigger, rate_hz,
                 trigger_t_ms, acc, gyr, start, count):
    """One EVENT packet with ``count`` raw samples from index ``start`` of a window.

    ``acc`` and ``gyr`` are flat sequences, per sample and per IMU present
    (trunk first): 3 values each, in m/s^2 and rad/s.
    """
    n_imu = imu_count(imu_mask)
    buf = bytearray(EVENT_HEADER + count * 12 * n_imu)
    struct.pack_into(
        "<BBBBHHHHHI", buf, 0, VERSION, TYPE_EVENT, imu_mask, count,
        event_id & 0xFFFF, first_index, total, pre_trigger, rate_hz, trigger_t_ms & 0xFFFFFFFF,
    )
    off = EVENT_HEADER
    for s in range(start, start + count):
        for k in range(n_imu):
            base = (s * n_imu + k) * 3
            for i in range(3):
                struct.pack_into("<h", buf, off, _i16(acc[base + i] * _ACC_SCALE)[0])
                off += 2
            for i in range(3):
                struct.pack_into("<h", buf, off, _i16(gyr[base + i] * _GYR_SCALE)[0])
                off += 2
    return bytes(buf)


class Fragmenter:
    """Splits packets into notification values of at most ``max_value_len`` bytes."""

    def __init__(self, max_value_len):
        if max_value_len < 2:
            raise ValueError("max_value_len must be >= 2")
        self.max_value_len = max_value_len
        self.counter = 0

    def split(self, packet):
        """List of notification values (bytes) carrying ``packet``."""
        step = self.max_value_len - 1
        out = []
        n = len(packet)
        pos = 0
        while True:
            end = pos + step
            hdr = self.counter & 0x3F
            if pos == 0:
                hdr |= FRAG_START
            if end >= n:
                hdr |= FRAG_END
            out.append(bytes((hdr,)) + packet[pos:end])
            self.counter = (self.counter + 1) & 0x3F
            if end >= n:
                return out
            pos = end
