"""Per-sample processing shared by the board's sampling loop and the simulated device.

One call to ``step`` takes one sample per IMU (m/s^2, rad/s, sensor frame), fuses each
IMU into an orientation, batches the result into SAMPLES packets and queues full
packets in ``outbox``: as notification values (``wire.Fragmenter``), or as whole
packets when the pipeline was made with ``fragment=False`` (the BLE app stores packets
and fragments them when it sends). Nothing here touches hardware or the radio: the
caller drains ``outbox`` when the link can take it, so the loop never blocks on BLE.

Encoding. Packets are byte-identical to ``wire.SampleBatcher`` (tests compare them), but
written by ``_put`` (``@micropython.viper``) from integers, so a sample costs no heap
objects: the quaternion is rounded from the float32 bits of ``Fusion.q`` (scaling by
2**14 is exact, so rounding from the bits equals ``wire._i16(q * 16384)``), and
acceleration / angular rate come as wire-unit integers (mg, 0.1 deg/s). ``step_wire``
takes those integers from the caller (the sampler computes them exactly from its integer
block sums); ``step`` converts float inputs with ``wire._i16`` first (simulated device;
that conversion allocates). ``wire.SampleBatcher`` allocated ~2.3 kB per two-IMU sample
on the unix port (a float and a tuple per value); ``step_wire`` allocates nothing but the
packet itself when it closes.

Rate changes. ``set_rate_hz(hz)`` (power saver) closes the partial packet, switches every
``Fusion`` with ``Fusion.set_rate_hz`` (orientation and bias kept) and starts packets with
the new ``period_us``: the host sees the change in the next packet's header.
"""

import struct
from array import array

import micropython
from micropython import const

import wire
from fusion import Fusion, FusionSettings

_G = 9.80665
_HDR = const(14)  # wire.SAMPLES_HEADER
_ACC_SCALE = 1000.0 / 9.80665  # m/s^2 -> mg (wire)
_GYR_SCALE = 1800.0 / 3.141592653589793  # rad/s -> 0.1 deg/s (wire)


@micropython.viper
def _put(buf, off: int, q, w, wo: int):
    """One IMU's 20 bytes at ``buf[off:]``, little-endian int16: q (w, x, y, z) from the
    float32 ``q`` (``array('f')``) times 16384, rounded half away from zero and saturated,
    then the six wire-unit ints ``w[wo .. wo + 5]`` (``array('h')``)."""
    b = ptr8(buf)
    qb = ptr32(q)
    wv = ptr16(w)
    o = off
    for i in range(4):
        x = int(qb[i])
        e = (x >> 23) & 0xFF
        m = (x & 0x7FFFFF) | 0x800000
        r = 0
        if e >= 136:  # |q| * 16384 >= 2**23 (or inf / nan): saturate
            r = 32768
        elif e > 110:  # else |q| * 16384 < 2**-2: rounds to 0 (zero, denormals too)
            k = 136 - e  # |q| * 16384 = m / 2**k, 1 <= k <= 25
            r = (m + (1 << (k - 1))) >> k
        if (x >> 31) & 1:
            v = 0 - (32768 if r > 32768 else r)
        else:
            v = 32767 if r > 32767 else r
        b[o] = v & 0xFF
        b[o + 1] = (v >> 8) & 0xFF
        o += 2
    for i in range(6):
        v = int(wv[wo + i])
        b[o] = v & 0xFF
        b[o + 1] = (v >> 8) & 0xFF
        o += 2


def _to_wire(acc, gyr, w, wo):
    """Float inputs (m/s^2, rad/s) -> wire-unit ints in ``w[wo .. wo + 5]``, rounded and
    saturated as ``wire.SampleBatcher`` does. Returns True if a value saturated.
    Allocates (floats)."""
    sat = False
    for i in range(3):
        v, s = wire._i16(acc[i] * _ACC_SCALE)
        w[wo + i] = v
        sat = sat or s
        v, s = wire._i16(gyr[i] * _GYR_SCALE)
        w[wo + 3 + i] = v
        sat = sat or s
    return sat


class Batcher:
    """SAMPLES packets from orientations (``array('f')``) and wire-unit ints; the same
    bytes as ``wire.SampleBatcher`` for the same values. ``add`` returns True when the
    packet is full; ``packet()`` then gives its bytes."""

    def __init__(self, imu_mask, period_us, per_packet, seq=0):
        if imu_mask not in (1, 2, 3):
            raise ValueError("imu_mask must be 1, 2 or 3")
        self.imu_mask = imu_mask
        self.two = imu_mask == 3
        self.period_us = period_us
        self.per_packet = per_packet
        self.sample_size = 1 + 20 * wire.imu_count(imu_mask)
        self.buf = bytearray(_HDR + per_packet * self.sample_size)
        self.seq = seq  # seq of the next sample added
        self.count = 0
        self.saturations = 0
        self._first_sat = wire.FLAG_TRUNK_SAT if imu_mask & 1 else wire.FLAG_HEAD_SAT

    def add(self, t_ms, flags, q0, q1, w, sat=0):
        """One sample: orientations ``q0`` (and ``q1`` with two IMUs) and ``w``, an
        ``array('h')`` of wire-unit acc x, y, z (mg) and gyr x, y, z (0.1 deg/s) per IMU.
        ``sat``: bit 0 / bit 1 set when the first / second IMU's values saturated in the
        conversion to wire units (SAT flags)."""
        buf = self.buf
        n = self.count
        if n == 0:
            struct.pack_into("<BBBBIIH", buf, 0, 1, 1, self.imu_mask, 0,
                             self.seq & 0xFFFFFFFF, t_ms & 0xFFFFFFFF, self.period_us)
        off = _HDR + n * self.sample_size
        _put(buf, off + 1, q0, w, 0)
        if sat & 1:
            flags |= self._first_sat
            self.saturations += 1
        if self.two:
            _put(buf, off + 21, q1, w, 6)
            if sat & 2:
                flags |= wire.FLAG_HEAD_SAT
                self.saturations += 1
        buf[off] = flags & 0x7F
        n += 1
        self.count = n
        self.seq += 1
        buf[3] = n
        return n >= self.per_packet

    def pending(self):
        return self.count

    def packet(self):
        """Bytes of the current packet (copy) and reset for the next one; None if empty."""
        n = self.count
        if n == 0:
            return None
        self.count = 0
        return bytes(memoryview(self.buf)[: _HDR + n * self.sample_size])


class Pipeline:
    """Fusion + batching (+ fragmentation) for one or two IMUs.

    Args:
        imu_mask: 1 trunk, 2 head, 3 both (wire format ``imu_mask``).
        rate_hz: fused output rate, Hz (one ``step`` per sample; 32..2000, ``Fusion``).
        max_value_len: bytes per notification value (ATT MTU - 3).
        seq: sequence number of the first sample.
        fragment: True: ``outbox`` gets notification values; False: whole packets.
        feedback: run after each fusion (``feedback.Feedback``: calibration, posture
            alert, buzzer; its answer is the ALERT flag), or None; settable later.

    Raises:
        ValueError: a bad ``imu_mask`` or a rate ``Fusion`` does not accept.
    """

    def __init__(self, imu_mask, rate_hz, max_value_len, seq=0, fragment=True, feedback=None):
        self.imu_mask = imu_mask
        self.rate_hz = rate_hz
        self.period_us = int(1000000 / rate_hz + 0.5)
        self.fragment = fragment
        self.fusion = []
        for _ in range(wire.imu_count(imu_mask)):
            self.fusion.append(Fusion(FusionSettings(rate_hz=rate_hz)))
        self._w = array("h", bytearray(24))  # wire-unit acc/gyr of the float path
        per = wire.samples_per_packet(imu_mask, max_value_len)
        self.batcher = Batcher(imu_mask, self.period_us, per, seq)
        self.fragmenter = wire.Fragmenter(max_value_len)
        self.outbox = []  # notification values or packets (bytes) waiting for the link
        self.alert = False  # ALERT flag of the last sample (from ``feedback``)
        self.feedback = feedback
        self.rate_changes = 0
        #: the offline day log (``daylog.DayLog``) while it logs: fused samples go to its
        #: ``fused`` (10 Hz LOG packets) instead of SAMPLES packets; None: SAMPLES
        self.log = None

    def set_mtu_value_len(self, max_value_len, seq=None):
        """(Re)size packets for a new ATT MTU; any partial packet is flushed first."""
        if seq is None:
            seq = self.batcher.seq
            self.flush()
        per = wire.samples_per_packet(self.imu_mask, max_value_len)
        self.batcher = Batcher(self.imu_mask, self.period_us, per, seq)
        self.fragmenter = wire.Fragmenter(max_value_len)

    def set_rate_hz(self, rate_hz):
        """Switch the fused rate (Hz): flush the partial packet, re-time every fusion
        (orientation and bias kept), new packets carry the new ``period_us``.

        Raises:
            ValueError: a rate ``Fusion.set_rate_hz`` refuses (nothing is changed).
        """
        if rate_hz == self.rate_hz:
            return
        fb = self.feedback
        if fb is not None and (int(rate_hz) <= 0 or int(rate_hz) % fb.posture_hz):
            raise ValueError("posture_hz must divide the fused rate")
        done = []
        try:
            for f in self.fusion:
                f.set_rate_hz(rate_hz)
                done.append(f)
        except ValueError:
            for f in done:
                f.set_rate_hz(self.rate_hz)
            raise
        self.flush()
        self.rate_hz = rate_hz
        self.period_us = int(1000000 / rate_hz + 0.5)
        b = self.batcher
        self.batcher = Batcher(self.imu_mask, self.period_us, b.per_packet, b.seq)
        if self.feedback is not None:
            self.feedback.set_rate_hz(rate_hz)
        self.rate_changes += 1

    def _flags(self, jolt):
        fu = self.fusion
        flags = 0
        if fu[0].rest:
            flags |= wire.FLAG_TRUNK_REST if self.imu_mask & 1 else wire.FLAG_HEAD_REST
        if self.imu_mask == 3 and fu[1].rest:
            flags |= wire.FLAG_HEAD_REST
        if self.alert:
            flags |= wire.FLAG_ALERT
        if jolt:
            flags |= wire.FLAG_JOLT
        return flags

    def step(self, t_ms, acc0, gyr0, acc1=None, gyr1=None, jolt=False):
        """Fuse and queue one sample. acc/gyr are 3-sequences (m/s^2, rad/s); ``jolt``:
        the jolt screen triggered in this sample's block (JOLT flag)."""
        w = self._w
        sat = 1 if _to_wire(acc0, gyr0, w, 0) else 0
        if self.imu_mask == 3 and acc1 is not None and gyr1 is not None:
            if _to_wire(acc1, gyr1, w, 6):
                sat |= 2
        else:
            acc1 = gyr1 = None
        self.step_wire(t_ms, acc0, gyr0, acc1, gyr1, w, jolt, sat)

    def step_wire(self, t_ms, acc0, gyr0, acc1, gyr1, w, jolt=False, sat=0):
        """``step`` with the packet's acc/gyr given as wire-unit ints: ``w`` is an
        ``array('h')``: acc x, y, z (mg) and gyr x, y, z (0.1 deg/s), trunk then head.
        The floats ``acc*``/``gyr*`` (m/s^2, rad/s) go to the fusion only. After fusion
        ``feedback.fused`` (if set) runs and gives the ALERT flag; then the sample goes
        to the day log while it logs (``log``), else into a SAMPLES packet."""
        fu = self.fusion
        f0 = fu[0]
        f0.update(gyr0[0], gyr0[1], gyr0[2], acc0[0], acc0[1], acc0[2])
        q1 = None
        if self.imu_mask == 3 and acc1 is not None:
            f1 = fu[1]
            f1.update(gyr1[0], gyr1[1], gyr1[2], acc1[0], acc1[1], acc1[2])
            q1 = f1.q
        elif self.imu_mask == 3:
            q1 = fu[1].q  # no head sample: the packet repeats its last orientation
        fb = self.feedback
        if fb is not None:
            self.alert = fb.fused(t_ms, f0.q, q1)
        lg = self.log
        if lg is not None:
            lg.fused(t_ms, f0.q, q1)
        elif self.batcher.add(t_ms, self._flags(jolt), f0.q, q1, w, sat):
            self.flush()

    def flush(self):
        """Close the current packet (if any) and queue it (or its notification values)."""
        pkt = self.batcher.packet()
        if pkt is not None:
            if self.fragment:
                self.outbox.extend(self.fragmenter.split(pkt))
            else:
                self.outbox.append(pkt)

