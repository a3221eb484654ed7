"""Shared base of the IMU drivers (imu_mpu6050, imu_icm42688): interface, errors, counters.

Every driver exposes the same interface, so the sampling loop never cares which chip is
fitted at an address.

Construction::

    drv = Driver(i2c, addr=0x68, accel_g=8, gyro_dps=2000, odr_hz=500, max_retries=2)

``i2c`` is a ``machine.I2C`` (anything with ``readfrom_mem_into`` and ``writeto_mem``).
The constructor checks WHO_AM_I (``ImuError`` on a wrong ID), resets and configures the
chip, and starts the FIFO. Module-level ``detect(i2c, addr)`` in each driver module
returns a driver or ``None``; ``imu_detect.find_imus(i2c)`` applies the board's address
convention (trunk 0x68, head 0x69).

Attributes (read-only for callers):
    chip: chip name, e.g. ``"MPU-6050"``.  addr: 7-bit I2C address.
    accel_g: accelerometer full scale, +-g.  gyro_dps: gyroscope full scale, +-deg/s.
    odr_hz: actual output (sample) rate in Hz; the lowest supported rate >= requested.
    acc_lsb_per_g: counts per g.  gyr_lsb_per_dps: counts per deg/s.
    acc_scale: m/s^2 per count.  gyr_scale: rad/s per count.
    fifo_frames: FIFO capacity in samples.
    gap: after ``read_fifo``, True when its first sample does not follow on from the last
        sample of the previous call (stream start, FIFO overflow, FIFO reset or a failed
        FIFO read lost samples in between). The caller re-anchors its timestamps.
    Counters (ints, never reset by the driver; also in ``health()``):
        i2c_errors: failed I2C transactions (OSError), retried or not.
        retries: repeated attempts after a failed transaction.
        fifo_overflows: FIFO found full (samples lost) or out of frame alignment; each
            one resets the FIFO.
        saturations: samples (from read_one/read_raw/read_fifo) with any axis at the
            int16 limit (+32767 or -32768): the physical value was out of range.
        id_mismatch: WHO_AM_I checks that read a wrong chip ID.

Methods:
    configure(accel_g=None, gyro_dps=None, odr_hz=None): change ranges and/or rate (None
        keeps the current setting); resets the FIFO.
    read_one(acc3, gyr3): latest sample as floats, in place into two ``array('f')`` of 3:
        specific force in m/s^2 and angular rate in rad/s, sensor axes.
    read_raw(acc3, gyr3): latest sample as raw counts into two ``array('h')`` of 3.
    read_fifo(out_acc, out_gyr, max_n) -> n: moves up to ``max_n`` queued samples, oldest
        first, into ``array('h')`` buffers as RAW COUNTS, interleaved x, y, z
        (sample i axis k at ``[3 * i + k]``); each buffer needs ``3 * max_n`` entries.
        Raw counts are chosen because floats are heap objects on the ESP32: a scaled FIFO
        read would allocate six floats per sample. Convert with ``acc_scale`` and
        ``gyr_scale`` (or ``sample_si``) when a float is needed.
    sample_si(raw_acc, raw_gyr, i, acc3, gyr3): sample ``i`` of raw buffers -> m/s^2, rad/s.
    fifo_reset(): empty the FIFO (the next ``read_fifo`` reports ``gap``).
    check_id(): re-read WHO_AM_I; counts ``id_mismatch`` and raises ``ImuError`` if wrong.
    health() -> dict: the counters plus ``chip`` and ``addr``, for the status characteristic.

Errors: transient ``OSError`` from the bus is retried up to ``max_retries`` times per
transaction (counted); a transaction that still fails raises ``ImuError``. A failed FIFO
data read is not retried (the bytes may already have left the FIFO): the FIFO is reset
and the samples are reported lost through ``gap``.

No allocation on the hot path (read_raw, read_fifo) beyond ints; read_one creates the six
floats it stores.
"""

import micropython
from micropython import const

# FIFO burst size in samples: one I2C transaction moves up to this many samples.
_CHUNK = const(16)
_WHO_AM_I = const(0x75)  # same register on every supported chip

G = 9.80665  # m/s^2 per g
DEG = 0.017453292519943295  # rad per degree


@micropython.viper
def _decode_fifo(buf, k: int, f: int, lay: int, hv: int, oa, og, j0: int) -> int:
    """Decode ``k`` FIFO frames of ``f`` bytes from ``buf``: big-endian int16 acc and gyr
    x, y, z at byte offsets ``lay & 0xFF`` / ``(lay >> 8) & 0xFF`` of each frame, into
    ``oa``/``og`` (``array('h')``) from index ``j0``. With a header mask
    ``(lay >> 16) & 0xFF`` a frame whose first byte does not match ``hv`` stops the
    decoding. Returns ``decoded | saturated_samples << 16`` (a sample with any axis at
    +32767 or -32768 counts once). Native code (added for the sampling loop's cost:
    ~5x faster than the per-sample Python ``_decode``), no allocation."""
    b = ptr8(buf)
    A = ptr16(oa)
    G = ptr16(og)
    ao = lay & 0xFF
    go = (lay >> 8) & 0xFF
    hm = (lay >> 16) & 0xFF
    n = 0
    sat = 0
    o = 0
    j = j0
    while n < k:
        if hm and (b[o] & hm) != hv:
            break
        s = 0
        for i in range(3):
            v = (b[o + ao + 2 * i] << 8) | b[o + ao + 2 * i + 1]
            if v == 0x7FFF or v == 0x8000:
                s = 1
            A[j + i] = v
            v = (b[o + go + 2 * i] << 8) | b[o + go + 2 * i + 1]
            if v == 0x7FFF or v == 0x8000:
                s = 1
            G[j + i] = v
        sat += s
        n += 1
        o += f
        j += 3
    return n | (sat << 16)


class ImuError(Exception):
    """An IMU is missing, is the wrong chip, or its bus keeps failing.

    Attributes:
        addr: 7-bit I2C address of the IMU concerned (or None).
    """

    def __init__(self, msg, addr=None):
        super().__init__(msg)
        self.addr = addr


class ImuBase:
    """Bus access with bounded retries, counters, FIFO and data-register decoding.

    Subclasses set the class constants below and implement ``configure``,
    ``_fifo_count`` and ``fifo_reset``.
    """

    chip = "?"
    _IDS = ()  # accepted WHO_AM_I values
    _DATA_REG = 0  # first data register of the accel+gyro burst (big-endian int16)
    _DATA_LEN = 12  # bytes in that burst
    _DATA_GYR = 6  # offset of gyro X in that burst (accel X is at 0)
    _FIFO_DATA = 0  # FIFO read register (does not auto-increment)
    _FRAME = 12  # FIFO bytes per sample
    _FRAME_ACC = 0  # offset of accel X in a FIFO frame
    _FRAME_GYR = 6  # offset of gyro X in a FIFO frame
    _HDR_MASK = 0  # FIFO frame header check: frame[0] & mask == value (mask 0: none)
    _HDR_VAL = 0
    _FIFO_BYTES = 1024  # FIFO size in bytes

    def __init__(self, i2c, addr, max_retries):
        self.i2c = i2c
        self.addr = addr
        self.max_retries = max_retries
        self.i2c_errors = 0
        self.retries = 0
        self.fifo_overflows = 0
        self.saturations = 0
        self.id_mismatch = 0
        self.gap = True
        self._lost = True  # samples lost since the last sample returned by read_fifo
        self.who_am_i = 0
        self.accel_g = 0
        self.gyro_dps = 0
        self.odr_hz = 0.0
        self._odr_req = 0
        self.acc_lsb_per_g = 1
        self.gyr_lsb_per_dps = 1.0
        self.acc_scale = 1.0
        self.gyr_scale = 1.0
        self._b1 = bytearray(1)
        self._b2 = bytearray(2)
        self._data = bytearray(self._DATA_LEN)
        self._fifo = bytearray(self._FRAME * _CHUNK)
        mv = memoryview(self._fifo)
        # One view per burst length, made once: slicing on the hot path would allocate.
        self._fifo_mv = [mv[: k * self._FRAME] for k in range(_CHUNK + 1)]
        self._health = {}

    # ---- bus access -------------------------------------------------------------

    def _fail(self, what, reg, exc):
        return ImuError(
            "%s at 0x%02x: I2C %s of reg 0x%02x failed %d times (%s)"
            % (self.chip, self.addr, what, reg, self.max_retries + 1, exc),
            self.addr,
        )

    def _read(self, reg, buf):
        """Burst-read ``len(buf)`` bytes from ``reg`` into ``buf``, retrying on OSError.

        Raises:
            ImuError: the transaction failed ``max_retries + 1`` times.
        """
        tries = 0
        while True:
            try:
                self.i2c.readfrom_mem_into(self.addr, reg, buf)
                return
            except OSError as e:
                self.i2c_errors += 1
                if tries >= self.max_retries:
                    raise self._fail("read", reg, e)
                tries += 1
                self.retries += 1

    def _write(self, reg, val):
        """Write one byte ``val`` to ``reg``, retrying on OSError.

        Raises:
            ImuError: the transaction failed ``max_retries + 1`` times.
        """
        b = self._b1
        tries = 0
        while True:
            b[0] = val
            try:
                self.i2c.writeto_mem(self.addr, reg, b)
                return
            except OSError as e:
                self.i2c_errors += 1
                if tries >= self.max_retries:
                    raise self._fail("write", reg, e)
                tries += 1
                self.retries += 1

    def _read_u8(self, reg):
        self._read(reg, self._b1)
        return self._b1[0]

    def _read_u16(self, reg):
        """Big-endian unsigned 16-bit register pair starting at ``reg``."""
        b = self._b2
        self._read(reg, b)
        return (b[0] << 8) | b[1]

    # ---- identity -----------------------------------------------------------------

    def check_id(self):
        """Read WHO_AM_I; return it if it is one of this driver's chips.

        Raises:
            ImuError: wrong ID (``id_mismatch`` is counted) or the bus failed.
        """
        who = self._read_u8(_WHO_AM_I)
        if who not in self._IDS or (self.who_am_i and who != self.who_am_i):
            self.id_mismatch += 1
            raise ImuError(
                "IMU at 0x%02x: WHO_AM_I 0x%02x, expected %s (%s)"
                % (self.addr, who, " or ".join(["0x%02x" % i for i in self._IDS]), self.chip),
                self.addr,
            )
        return who

    # ---- ranges -------------------------------------------------------------------

    def configure(self, accel_g=None, gyro_dps=None, odr_hz=None):
        """Set ranges (+-g, +-deg/s) and sample rate (Hz), None keeping the current one;
        resets the FIFO."""
        raise NotImplementedError

    def _set_scale(self, accel_g, gyro_dps):
        self.accel_g = accel_g
        self.gyro_dps = gyro_dps
        self.acc_lsb_per_g = 32768 // accel_g  # 16384 (2 g) .. 2048 (16 g)
        # Datasheet sensitivities for 250/500/1000/2000 deg/s: 131, 65.5, 32.8, 16.4.
        self.gyr_lsb_per_dps = _gyr_lsb(gyro_dps)
        self.acc_scale = G / self.acc_lsb_per_g
        self.gyr_scale = DEG / self.gyr_lsb_per_dps

    # ---- data registers ---------------------------------------------------------------

    def read_raw(self, acc3, gyr3):
        """Burst-read the latest sample as raw counts into ``array('h')`` acc3, gyr3.

        Returns True when any axis is saturated (also counted in ``saturations``).

        Raises:
            ImuError: the bus failed after retries.
        """
        b = self._data
        self._read(self._DATA_REG, b)
        return self._decode(b, 0, self._DATA_GYR, acc3, gyr3, 0)

    def read_one(self, acc3, gyr3):
        """Burst-read the latest sample into ``array('f')`` acc3 (m/s^2) and gyr3 (rad/s).

        Sensor axes; accelerometer is specific force (+9.81 on the up axis at rest).
        Returns True when any axis is saturated (also counted in ``saturations``).

        Raises:
            ImuError: the bus failed after retries.
        """
        b = self._data
        self._read(self._DATA_REG, b)
        sa = self.acc_scale
        sg = self.gyr_scale
        g = self._DATA_GYR
        sat = False
        for k in range(3):
            i = 2 * k
            v = (b[i] << 8) | b[i + 1]
            if v == 0x7FFF or v == 0x8000:
                sat = True
            if v & 0x8000:
                v -= 0x10000
            acc3[k] = v * sa
            v = (b[g + i] << 8) | b[g + i + 1]
            if v == 0x7FFF or v == 0x8000:
                sat = True
            if v & 0x8000:
                v -= 0x10000
            gyr3[k] = v * sg
        if sat:
            self.saturations += 1
        return sat

    def _decode(self, b, ao, go, out_acc, out_gyr, j):
        """Big-endian int16 x, y, z at ``b[ao:]`` and ``b[go:]`` -> out_*[j:j+3]."""
        sat = False
        for k in range(3):
            i = 2 * k
            v = (b[ao + i] << 8) | b[ao + i + 1]
            if v == 0x7FFF or v == 0x8000:
                sat = True
            if v & 0x8000:
                v -= 0x10000
            out_acc[j + k] = v
            v = (b[go + i] << 8) | b[go + i + 1]
            if v == 0x7FFF or v == 0x8000:
                sat = True
            if v & 0x8000:
                v -= 0x10000
            out_gyr[j + k] = v
        if sat:
            self.saturations += 1
        return sat

    def sample_si(self, raw_acc, raw_gyr, i, acc3, gyr3):
        """Sample ``i`` of raw count buffers -> acc3 (m/s^2), gyr3 (rad/s), array('f')."""
        j = 3 * i
        sa = self.acc_scale
        sg = self.gyr_scale
        for k in range(3):
            acc3[k] = raw_acc[j + k] * sa
            gyr3[k] = raw_gyr[j + k] * sg

    # ---- FIFO ---------------------------------------------------------------------

    @property
    def fifo_frames(self):
        return self._FIFO_BYTES // self._FRAME

    def _fifo_count(self):
        """Bytes queued in the FIFO."""
        raise NotImplementedError

    def fifo_reset(self):
        """Empty the FIFO; samples in it are lost and the next read reports ``gap``."""
        raise NotImplementedError

    def _overflow(self):
        self.fifo_overflows += 1
        self.fifo_reset()

    def read_fifo(self, out_acc, out_gyr, max_n):
        """Move up to ``max_n`` queued samples, oldest first, into raw-count buffers.

        Args:
            out_acc, out_gyr: ``array('h')`` of at least ``3 * max_n``; sample i, axis k
                goes to ``[3 * i + k]``, in counts (times ``acc_scale`` -> m/s^2,
                times ``gyr_scale`` -> rad/s).
            max_n: most samples to move; the rest stay queued for the next call.

        Returns:
            Number of samples written. 0 after an overflow: the FIFO was full (samples
            lost) or out of frame alignment, so it is counted in ``fifo_overflows``,
            reset, and ``gap`` is set.

        Raises:
            ImuError: the FIFO count could not be read, or the FIFO could not be reset,
            after retries.
        """
        f = self._FRAME
        lost = self._lost  # samples were lost before this call's first sample
        self._lost = False  # fifo_reset() below sets it again
        n = 0
        cnt = self._fifo_count()
        if cnt > self._FIFO_BYTES - f or cnt % f:
            # Full to the last whole frame (a sample may have been dropped) or misaligned.
            self._overflow()
            frames = 0
        else:
            frames = cnt // f
            if frames > max_n:
                frames = max_n
        ao = self._FRAME_ACC
        go = self._FRAME_GYR
        hm = self._HDR_MASK
        hv = self._HDR_VAL
        buf = self._fifo
        while n < frames:
            k = frames - n
            if k > _CHUNK:
                k = _CHUNK
            try:
                self.i2c.readfrom_mem_into(self.addr, self._FIFO_DATA, self._fifo_mv[k])
            except OSError:
                # Not retried: part of the burst may already have left the FIFO.
                self.i2c_errors += 1
                self.fifo_reset()
                break
            r = int(_decode_fifo(buf, k, f, ao | (go << 8) | (hm << 16), hv, out_acc, out_gyr, 3 * n))
            d = r & 0xFFFF
            self.saturations += r >> 16
            n += d
            if d < k:
                self._overflow()  # lost packet alignment
                frames = n
        if n:
            self.gap = lost
        else:
            self._lost = self._lost or lost
            self.gap = self._lost
        return n

    # ---- status -------------------------------------------------------------------

    def health(self):
        """Counters for the status characteristic.

        Returns the same dict object each call (updated in place): copy it to keep a
        snapshot. Keys: chip, addr, i2c_errors, retries, fifo_overflows, saturations,
        id_mismatch.
        """
        h = self._health
        h["chip"] = self.chip
        h["addr"] = self.addr
        h["i2c_errors"] = self.i2c_errors
        h["retries"] = self.retries
        h["fifo_overflows"] = self.fifo_overflows
        h["saturations"] = self.saturations
        h["id_mismatch"] = self.id_mismatch
        return h


def _gyr_lsb(gyro_dps):
    if gyro_dps == 250:
        return 131.0
    if gyro_dps == 500:
        return 65.5
    if gyro_dps == 1000:
        return 32.8
    if gyro_dps == 2000:
        return 16.4
    raise ValueError("gyro_dps must be 250, 500, 1000 or 2000")


def check_accel_g(accel_g):
    """Validate an accelerometer range; returns its 2-bit code (2 g: 0 .. 16 g: 3).

    Raises:
        ValueError: not 2, 4, 8 or 16.
    """
    for code in range(4):
        if accel_g == (2 << code):
            return code
    raise ValueError("accel_g must be 2, 4, 8 or 16")


def check_gyro_dps(gyro_dps):
    """Validate a gyroscope range; returns its 2-bit code (250 dps: 0 .. 2000 dps: 3).

    Raises:
        ValueError: not 250, 500, 1000 or 2000.
    """
    for code in range(4):
        if gyro_dps == (250 << code):
            return code
    raise ValueError("gyro_dps must be 250, 500, 1000 or 2000")
