"""LOG and MARKS packets (wire format v1, types 3 and 4): the offline day log.

MARKS (type 4, ``MarksBatcher``): what happened while the board logged on its own
(posture alerts, calibration, dropped data, offline start and end); see the end of
this module and protocol/SPEC.md ("Type 4: MARKS").

MicroPython. protocol/SPEC.md ("Type 3: LOG") is the reference; the host decodes them
with ``nape.wire_log``. Header as SAMPLES (14 bytes: version, type 3, imu_mask, count,
u32 seq, u32 t_ms) but with a u16 ``period_ms``; then per sample one packed quaternion per
IMU present, trunk first: 3 bytes, "smallest three" (``quat24``). At 10 Hz with two IMUs a
full packet (38 samples, 242 bytes) holds 3.8 s, 63.7 bytes/s in 244-byte buffer slots.

Allocation: ``quat24`` makes a few floats per quaternion (at the log rate, 10 Hz);
``LogBatcher`` writes into one buffer made at construction.
"""

import struct
from array import array

import micropython
from micropython import const

_HDR = const(14)
_SCALE = 89.09545442950498  # 63 * sqrt(2): code units per unit of a quaternion component
MAX_PACKET = const(243)  # one offline-buffer slot (ble_buffer.MAX_PACKET)


def _code(v):
    """round(v * _SCALE) half away from zero, + 64, clamped to 0..127."""
    x = v * _SCALE
    c = int(x + 0.5) if x >= 0 else -int(-x + 0.5)
    c += 64
    return 0 if c < 0 else (127 if c > 127 else c)


def quat24(q):
    """Quaternion (w, x, y, z; any non-zero norm) -> 24-bit int: bits 0-1 the index of the
    largest |component| (made positive), bits 2-8, 9-15, 16-22 the other three as 7-bit
    codes in w, x, y, z order; bit 23 reserved (0)."""
    w = q[0]
    x = q[1]
    y = q[2]
    z = q[3]
    n = (w * w + x * x + y * y + z * z) ** 0.5
    big = 0
    m = abs(w)
    if abs(x) > m:
        big = 1
        m = abs(x)
    if abs(y) > m:
        big = 2
        m = abs(y)
    if abs(z) > m:
        big = 3
    s = 1.0 / n
    if q[big] < 0:
        s = -s
    word = big
    shift = 2
    for k in range(4):
        if k != big:
            word |= _code(q[k] * s) << shift
            shift += 7
    return word


_C8 = const(22808)  # round(63 * sqrt(2) * 256): the code scale in 1/256 units


@micropython.viper
def _q24_f32(q, tmp, buf, off: int) -> int:
    """``quat24`` of a float32 quaternion (``array('f')``: ``Fusion.q``) in integers, the
    3 bytes written at ``buf[off:]``; no heap objects. The components are rounded to
    1/16384 from their float32 bits (as ``pipeline._put`` does), the norm is an integer
    square root, the codes ``round(v * 63 * sqrt(2) / |q|)`` in integers: within one
    code of ``quat24`` (equal but for rounding half-points). Returns 0, or -1 (nothing
    written) when a component is 1.01 or more in magnitude (not a unit quaternion)."""
    qb = ptr32(q)
    v = ptr32(tmp)  # magnitudes (ptr32 reads back unsigned: signs kept in sg)
    b = ptr8(buf)
    big = 0
    m = -1
    n2 = 0
    sg = 0
    for i in range(4):
        x = int(qb[i])
        e = (x >> 23) & 0xFF
        r = 0
        if e >= 127:  # |q_i| >= 1
            r = 16384 + ((x & 0x7FFFFF) >> 9) if e == 127 else 32767
        elif e > 110:
            k = 136 - e
            r = (((x & 0x7FFFFF) | 0x800000) + (1 << (k - 1))) >> k
        if r > 16548:
            return -1
        if (x >> 31) & 1:
            sg |= 1 << i
        v[i] = r
        if r > m:
            m = r
            big = i
        n2 += r * r
    n = 16384
    for _ in range(6):  # Newton from 1.0: exact in a few steps near the unit norm
        if n <= 0:
            return -1
        n = (n + n2 // n) >> 1
    if n <= 0:
        return -1
    neg = (sg >> big) & 1
    den = n << 8
    word = big
    shift = 2
    for k in range(4):
        if k != big:
            a = int(v[k])
            code = ((a * _C8) * 2 + den) // (2 * den)
            if ((sg >> k) & 1) != neg:
                code = 0 - code
            code += 64
            if code < 0:
                code = 0
            elif code > 127:
                code = 127
            word |= code << shift
            shift += 7
    b[off] = word & 0xFF
    b[off + 1] = (word >> 8) & 0xFF
    b[off + 2] = (word >> 16) & 0xFF
    return 0


def per_packet(imu_mask):
    """Samples in a full LOG packet: 38 (two IMUs), 76 (one)."""
    n = 2 if imu_mask == 3 else 1
    return (MAX_PACKET - _HDR) // (3 * n)


class LogBatcher:
    """LOG packets from orientations; ``add`` returns True when the packet is full,
    ``packet()`` then gives its bytes.

    Args:
        imu_mask: 1 trunk, 2 head, 3 both.
        period_ms: log period, ms (100 at 10 Hz).
        seq: sequence number of the first sample.
        per: samples per packet (default and most: ``per_packet(imu_mask)``).

    Raises:
        ValueError: a bad ``imu_mask``, ``period_ms`` outside 1..65535 or ``per`` outside
            1..``per_packet``.
    """

    def __init__(self, imu_mask, period_ms, seq=0, per=None):
        if imu_mask not in (1, 2, 3):
            raise ValueError("imu_mask must be 1, 2 or 3")
        most = per_packet(imu_mask)
        if per is None:
            per = most
        if not 1 <= per <= most or not 1 <= period_ms <= 0xFFFF:
            raise ValueError("per or period_ms out of range")
        self.imu_mask = imu_mask
        self.two = imu_mask == 3
        self.period_ms = period_ms
        self.per = per
        self.size = 6 if self.two else 3
        self.buf = bytearray(_HDR + per * self.size)
        self.seq = seq  # seq of the next sample added
        self.count = 0
        self._tmp = array("i", (0, 0, 0, 0))

    def add_f32(self, t_ms, q0, q1=None):
        """``add`` for float32 quaternions (``array('f')``, ``Fusion.q``): the packing in
        integers (``_q24_f32``), no heap objects (the float path if one is not a unit
        quaternion). Returns True when the packet is full."""
        n = self.count
        off = _HDR + n * self.size
        if _q24_f32(q0, self._tmp, self.buf, off) or \
                (self.two and _q24_f32(q1, self._tmp, self.buf, off + 3)):
            return self.add(t_ms, q0, q1)
        b = self.buf
        if n == 0:
            struct.pack_into("<BBBBIIH", b, 0, 1, 3, self.imu_mask, 0, self.seq & 0xFFFFFFFF,
                             t_ms & 0xFFFFFFFF, self.period_ms)
        n += 1
        self.count = n
        b[3] = n
        self.seq += 1
        return n >= self.per

    def add(self, t_ms, q0, q1=None):
        """One sample: orientation ``q0`` (first IMU in the mask) and ``q1`` (head, with two
        IMUs). Returns True when the packet is full."""
        b = self.buf
        n = self.count
        if n == 0:
            struct.pack_into("<BBBBIIH", b, 0, 1, 3, self.imu_mask, 0, self.seq & 0xFFFFFFFF,
                             t_ms & 0xFFFFFFFF, self.period_ms)
        off = _HDR + n * self.size
        v = quat24(q0)
        b[off] = v & 0xFF
        b[off + 1] = (v >> 8) & 0xFF
        b[off + 2] = v >> 16
        if self.two:
            v = quat24(q1)
            b[off + 3] = v & 0xFF
            b[off + 4] = (v >> 8) & 0xFF
            b[off + 5] = v >> 16
        n += 1
        self.count = n
        b[3] = n
        self.seq += 1
        return n >= self.per

    def packet(self):
        """Bytes of the current packet (copy) and reset; None if empty."""
        n = self.count
        if n == 0:
            return None
        self.count = 0
        return bytes(memoryview(self.buf)[:_HDR + n * self.size])


# --- MARKS (type 4): what happened on the board while it logged on its own ----------------

MARKS_HDR = const(8)
MARK_SIZE = const(12)
MARKS_MAX = const(19)  # 8 + 19 * 12 = 236 bytes: one 244-byte slot / notification

ALERT_START = const(1)  # a: bit 0 neck, bit 1 trunk over its limit
ALERT_END = const(2)
CALIBRATED = const(3)
LOG_DROPPED = const(4)  # b: samples dropped (<= 65535), c: first dropped seq
EVENT_DROPPED = const(5)  # b: event_id, c: samples in the window
OFFLINE_START = const(6)  # c: seq of the first LOG sample
OFFLINE_END = const(7)  # c: next seq


class MarksBatcher:
    """MARKS packets (protocol/SPEC.md, "Type 4: MARKS"): ``add`` returns True when the
    packet is full (``MARKS_MAX`` marks); ``packet()`` then gives its bytes. Mark ids start
    at ``mark_id`` and go up by one per mark (mod 2**16). One buffer, made here."""

    def __init__(self, imu_mask, mark_id=0):
        if imu_mask not in (1, 2, 3):
            raise ValueError("imu_mask must be 1, 2 or 3")
        self.imu_mask = imu_mask
        self.buf = bytearray(MARKS_HDR + MARKS_MAX * MARK_SIZE)
        self.next_id = mark_id & 0xFFFF  # id of the next mark added
        self.count = 0

    def add(self, t_ms, kind, a=0, b=0, c=0):
        """One mark: device time ``t_ms`` (ms since boot), ``kind`` 1..7 and its fields
        (a: u8, b: u16, c: u32). Returns True when the packet is full.

        Raises:
            ValueError: an unknown kind or a field out of range (nothing is added).
        """
        if not 1 <= kind <= 7 or not 0 <= a <= 0xFF or not 0 <= b <= 0xFFFF:
            raise ValueError("bad mark")
        buf = self.buf
        n = self.count
        if n == 0:
            struct.pack_into("<BBBBHH", buf, 0, 1, 4, self.imu_mask, 0, self.next_id, 0)
        struct.pack_into("<IBBHI", buf, MARKS_HDR + n * MARK_SIZE, t_ms & 0xFFFFFFFF, kind, a,
                         b, c & 0xFFFFFFFF)
        n += 1
        self.count = n
        buf[3] = n
        self.next_id = (self.next_id + 1) & 0xFFFF
        return n >= MARKS_MAX

    def packet(self):
        """Bytes of the current packet (copy) and reset; None if empty."""
        n = self.count
        if n == 0:
            return None
        self.count = 0
        return bytes(memoryview(self.buf)[:MARKS_HDR + n * MARK_SIZE])


def encode_marks(imu_mask, mark_id, marks):
    """One MARKS packet from ``marks``, a list of (t_ms, kind, a, b, c) (1..19 of them)."""
    if not 1 <= len(marks) <= MARKS_MAX:
        raise ValueError("1..19 marks per packet")
    mb = MarksBatcher(imu_mask, mark_id)
    for m in marks:
        mb.add(m[0], m[1], m[2], m[3], m[4])
    return mb.packet()
