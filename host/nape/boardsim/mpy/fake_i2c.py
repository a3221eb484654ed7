"""Fake I2C bus for the virtual board and the firmware tests under the unix MicroPython
(register level).

``FakeI2C`` has the ``machine.I2C`` memory-transfer methods used by the drivers and holds
one chip model per 7-bit address. Every call is one transaction (numbered from 1 in
``transactions``); errors are injected per transaction number or per register:

    bus = FakeI2C()
    bus.add(0x68, FakeMPU6050())
    bus.fail_next(2)            # the next two transactions raise OSError(5)
    bus.fail_reg(0x74, 1)       # the next transaction touching reg 0x74 fails
    bus.fail_always()           # every transaction fails from now on

A transaction to an address with no chip raises OSError(19) (ENODEV), like a NACK.
Injected failures happen before the chip sees the transfer (address NACK): a failed
FIFO read pops nothing.

Chip models (fake_mpu6050, fake_icm42688) share ``FakeImuChip``: a 128-byte register
file with auto-increment, a byte FIFO with a bounded size, and ``push(acc, gyr)`` that
turns one physical sample (m/s^2, rad/s, sensor axes) into int16 counts with the
currently configured range, saturating at the int16 limits. One ``push`` = one sample
period at the configured ODR (the fake keeps no clock).

``records(stream, width)`` yields float32 little-endian records from a byte stream
(stdin from the CPython test): width floats per record.
"""

import struct

import micropython


@micropython.viper
def _copy(dst, doff: int, src, soff: int, n: int):
    """dst[doff:doff + n] = src[soff:soff + n] without allocating (the drivers' hot path
    runs with the heap locked in tests)."""
    d = ptr8(dst)
    s = ptr8(src)
    for i in range(n):
        d[doff + i] = s[soff + i]

EIO = 5
ENODEV = 19

G = 9.80665
RAD2DEG = 57.29577951308232


def counts(value, lsb_per_unit):
    """Round ``value * lsb_per_unit`` to the nearest int and clamp to int16."""
    c = value * lsb_per_unit
    c = int(c + 0.5) if c >= 0 else -int(-c + 0.5)
    if c > 32767:
        return 32767
    if c < -32768:
        return -32768
    return c


class FakeI2C:
    """machine.I2C stand-in holding chip models by address."""

    def __init__(self):
        self.devices = {}
        self.transactions = 0
        self.trace = False
        self.log = []  # (op, addr, reg, nbytes) when trace is on
        self._fail_from = 0
        self._fail_until = 0  # exclusive; -1: forever
        self._fail_reg = -1
        self._fail_reg_left = 0
        self.errno = EIO

    def add(self, addr, chip):
        self.devices[addr] = chip
        return chip

    # ---- error injection ----------------------------------------------------------

    def fail_on(self, n, count=1, errno=EIO):
        """Transactions n .. n+count-1 (1-based, absolute) raise OSError(errno)."""
        self._fail_from = n
        self._fail_until = n + count
        self.errno = errno

    def fail_next(self, count=1, errno=EIO):
        """The next ``count`` transactions raise OSError(errno)."""
        self.fail_on(self.transactions + 1, count, errno)

    def fail_always(self, errno=EIO):
        """Every transaction from the next one on raises OSError(errno)."""
        self._fail_from = self.transactions + 1
        self._fail_until = -1
        self.errno = errno

    def fail_reg(self, reg, count=1, errno=EIO):
        """The next ``count`` transactions addressed to register ``reg`` fail."""
        self._fail_reg = reg
        self._fail_reg_left = count
        self.errno = errno

    def heal(self):
        """Stop all injected failures."""
        self._fail_from = 0
        self._fail_until = 0
        self._fail_reg_left = 0

    def _begin(self, op, addr, reg, n):
        self.transactions += 1
        t = self.transactions
        if self.trace:
            self.log.append((op, addr, reg, n))
        if self._fail_from and t >= self._fail_from and (self._fail_until < 0 or t < self._fail_until):
            raise OSError(self.errno)
        if self._fail_reg_left and reg == self._fail_reg:
            self._fail_reg_left -= 1
            raise OSError(self.errno)
        chip = self.devices.get(addr)
        if chip is None:
            raise OSError(ENODEV)
        return chip

    # ---- machine.I2C interface ------------------------------------------------------

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        chip = self._begin("r", addr, memaddr, len(buf))
        chip.read_into(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        chip = self._begin("w", addr, memaddr, len(buf))
        chip.write(memaddr, buf)

    def scan(self):
        return sorted(self.devices)


@micropython.viper
def _copy_frames(dst, pos: int, cap: int, src, off: int, stride: int, size: int, n: int):
    """``n`` frames of ``size`` bytes, ``stride`` apart from ``src[off]``, appended to the
    ring ``dst`` (capacity ``cap``) at ``pos``."""
    d = ptr8(dst)
    s = ptr8(src)
    for f in range(n):
        o = off + f * stride
        for i in range(size):
            d[pos] = s[o + i]
            pos += 1
            if pos == cap:
                pos = 0


class FakeFifo:
    """Byte ring buffer with a fixed capacity."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.buf = bytearray(capacity)
        self.head = 0
        self.n = 0

    def clear(self):
        self.head = 0
        self.n = 0

    def room(self):
        return self.capacity - self.n

    def put(self, b):
        """Append one byte; returns False (nothing stored) when full."""
        if self.n >= self.capacity:
            return False
        self.buf[(self.head + self.n) % self.capacity] = b
        self.n += 1
        return True

    def drop(self, k):
        """Discard the ``k`` oldest bytes."""
        if k > self.n:
            k = self.n
        self.head = (self.head + k) % self.capacity
        self.n -= k

    def extend(self, data):
        """Append ``data`` (bytes); the caller made room (``room()``, ``drop``)."""
        cap = self.capacity
        n = len(data)
        pos = (self.head + self.n) % cap
        first = n if n <= cap - pos else cap - pos
        _copy(self.buf, pos, data, 0, first)
        if first < n:
            _copy(self.buf, 0, data, first, n - first)
        self.n += n

    def extend_frames(self, src, off, stride, size, n):
        """Append ``n`` frames of ``size`` bytes taken ``stride`` apart from ``src[off]``;
        the caller made room."""
        _copy_frames(self.buf, (self.head + self.n) % self.capacity, self.capacity, src, off,
                     stride, size, n)
        self.n += n * size

    def get_into(self, buf, empty=0xFF):
        """Pop ``len(buf)`` bytes into ``buf`` (``empty`` once the FIFO runs dry)."""
        want = len(buf)
        k = want if want <= self.n else self.n
        cap = self.capacity
        h = self.head
        first = k if k <= cap - h else cap - h
        _copy(buf, 0, self.buf, h, first)
        if first < k:
            _copy(buf, first, self.buf, 0, k - first)
        for i in range(k, want):
            buf[i] = empty
        self.head = (h + k) % cap
        self.n -= k

    def get(self, empty=0xFF):
        """Pop the oldest byte (``empty`` when there is none)."""
        if not self.n:
            return empty
        b = self.buf[self.head]
        self.head = (self.head + 1) % self.capacity
        self.n -= 1
        return b


class FakeImuChip:
    """Register file + FIFO shared by the chip models; subclasses give the semantics.

    Subclass hooks: ``_defaults()`` (reset register values), ``_read_reg(reg)`` and
    ``_write_reg(reg, val)`` for special registers, ``_fifo_reg`` (reads of it pop the
    FIFO and do not auto-increment), ``acc_lsb_per_g()``, ``gyr_lsb_per_dps()``,
    ``_sample(acc_counts, gyr_counts)``.
    """

    _fifo_reg = -1

    def __init__(self, who_am_i, fifo_bytes):
        self.who_am_i = who_am_i
        self.regs = bytearray(128)
        self.fifo = FakeFifo(fifo_bytes)
        self.pushed = 0  # samples pushed
        self.dropped = 0  # FIFO bytes lost to overflow
        self.reset()

    def reset(self):
        self.regs = bytearray(128)
        self._defaults()
        self.fifo.clear()

    def _defaults(self):
        pass

    # ---- bus side -----------------------------------------------------------------

    def read_into(self, reg, buf):
        if reg == self._fifo_reg:  # FIFO reads pop bytes and do not auto-increment
            self.fifo.get_into(buf)
            return
        for i in range(len(buf)):
            if reg == self._fifo_reg:
                buf[i] = self.fifo.get()
                continue
            buf[i] = self._read_reg(reg) & 0xFF
            reg = (reg + 1) & 0x7F

    def write(self, reg, data):
        for b in data:
            self._write_reg(reg, b)
            reg = (reg + 1) & 0x7F

    def _read_reg(self, reg):
        return self.regs[reg]

    def _write_reg(self, reg, val):
        self.regs[reg] = val

    # ---- test side ------------------------------------------------------------------

    def counts(self, acc, gyr):
        """(acc counts, gyr counts) lists for SI inputs under the current ranges."""
        la = self.acc_lsb_per_g() / G
        lg = self.gyr_lsb_per_dps() * RAD2DEG
        return ([counts(acc[0], la), counts(acc[1], la), counts(acc[2], la)],
                [counts(gyr[0], lg), counts(gyr[1], lg), counts(gyr[2], lg)])

    def push(self, acc, gyr):
        """One sample period: acc (m/s^2) and gyr (rad/s), x, y, z in sensor axes.

        Returns the (acc, gyr) counts stored, or None when the sensors are off.
        """
        if not self.running():
            return None
        ca, cg = self.counts(acc, gyr)
        self.pushed += 1
        self._sample(ca, cg)
        return ca, cg

    def push_counts(self, v, o=0):
        """One sample period from raw counts already in the current ranges (the virtual
        board's wearer file): ``v[o:o + 3]`` acc x, y, z, ``v[o + 3:o + 6]`` gyr x, y, z
        (int16, sensor axes). Returns False when the sensors are off."""
        if not self.running():
            return False
        self.pushed += 1
        self._sample(v[o:o + 3], v[o + 3:o + 6])
        return True

    def push_frames(self, src, off, stride, n):
        """``n`` sample periods at once from FIFO frames the host packed in this chip's
        format (``frame_format()``), ``stride`` bytes apart from ``src[off]`` (the virtual
        board's fast path: one call per poll). The data registers get the last frame.
        Returns False when the sensors are off.

        Raises:
            ValueError: the chip's FIFO is not set up for that frame format.
        """
        if not self.running():
            return False
        size = self.check_frames()
        self.pushed += n
        self._frames_put(src, off, stride, size, n)
        return True

    def _frames_put(self, src, off, stride, size, n):
        """Overflow as the chip does it (subclasses), then the frames into the FIFO."""
        need = n * size - self.fifo.room()
        if need > 0:
            self.dropped += need
            self.fifo.drop(need)
        self.fifo.extend_frames(src, off, stride, size, n)

    def set_i16(self, reg, v, big_endian=True):
        v &= 0xFFFF
        hi, lo = v >> 8, v & 0xFF
        if big_endian:
            self.regs[reg], self.regs[reg + 1] = hi, lo
        else:
            self.regs[reg], self.regs[reg + 1] = lo, hi


def records(stream, width):
    """Yield tuples of ``width`` floats read as float32 little-endian from ``stream``."""
    size = 4 * width
    fmt = "<%df" % width
    while True:
        b = stream.read(size)
        while b and len(b) < size:  # a pipe may deliver a record in pieces
            more = stream.read(size - len(b))
            if not more:
                return
            b += more
        if not b:
            return
        yield struct.unpack(fmt, b)


def stdin_records(width):
    """``records`` over this process's stdin (bytes)."""
    import sys

    return records(sys.stdin.buffer, width)
