"""Register-level model of an ICM-42688-P (WHO_AM_I 0x47) for tests.

Modelled (from the datasheet, user bank 0): REG_BANK_SEL (0x76, in every bank) switches
banks and WHO_AM_I reads 0x47 in bank 0 only; DEVICE_CONFIG.SOFT_RESET_CONFIG restores
the defaults and sets INT_STATUS.RESET_DONE; sensors start off (PWR_MGMT0 = 0) and an
off sensor reads -32768; ranges in GYRO_CONFIG0 / ACCEL_CONFIG0 bits 7:5 (code 0 = the
largest range); INTF_CONFIG0 bit 4 (SENSOR_DATA_ENDIAN) and bit 5 (FIFO_COUNT_ENDIAN)
choose big (1, default) or little endian, bit 6 counts FIFO records instead of bytes;
FIFO_CONFIG bits 7:6 choose bypass (0), stream (1, drops the oldest packets when full)
or stop-on-full (2, 3: drops new packets); FIFO_CONFIG1 enables accel/gyro;
SIGNAL_PATH_RESET.FIFO_FLUSH empties the FIFO; reads of FIFO_DATA pop bytes without
auto-increment; INT_STATUS clears on read. FIFO packets: 3 (header 0x68, accel, gyro,
temperature byte, 2-byte timestamp, 16 bytes), 1 (0x40, accel, temp, 8 bytes) or
2 (0x20, gyro, temp, 8 bytes). FIFO size 2048 bytes.
"""

import struct

from fake_i2c import FakeImuChip

DEVICE_CONFIG = 0x11
FIFO_CONFIG = 0x16
TEMP_DATA1 = 0x1D
ACCEL_DATA_X1 = 0x1F
GYRO_DATA_X1 = 0x25
INT_STATUS = 0x2D
FIFO_COUNTH = 0x2E
FIFO_COUNTL = 0x2F
FIFO_DATA = 0x30
SIGNAL_PATH_RESET = 0x4B
INTF_CONFIG0 = 0x4C
PWR_MGMT0 = 0x4E
GYRO_CONFIG0 = 0x4F
ACCEL_CONFIG0 = 0x50
FIFO_CONFIG1 = 0x5F
WHO_AM_I = 0x75
REG_BANK_SEL = 0x76

ACC_LSB = (2048, 4096, 8192, 16384)  # code 0: 16 g .. 3: 2 g
GYR_LSB = (16.4, 32.8, 65.5, 131.0, 262.0, 524.3, 1048.6, 2097.2)  # 2000 .. 15.6 dps


class FakeICM42688(FakeImuChip):
    """ICM-42688-P; another ``who_am_i`` models a wrong chip."""

    _fifo_reg = FIFO_DATA

    def __init__(self, who_am_i=0x47):
        self.bank = 0
        self.banks = [bytearray(128) for _ in range(5)]
        FakeImuChip.__init__(self, who_am_i, 2048)
        self.tmst = 0

    def reset(self):
        FakeImuChip.reset(self)
        self.banks = [bytearray(128) for _ in range(5)]
        self.banks[0] = self.regs
        self.bank = 0

    def _defaults(self):
        r = self.regs
        r[INTF_CONFIG0] = 0x30
        r[GYRO_CONFIG0] = 0x06
        r[ACCEL_CONFIG0] = 0x06
        r[INT_STATUS] = 0x10  # RESET_DONE_INT
        r[WHO_AM_I] = self.who_am_i

    def running(self):
        return bool(self.regs[PWR_MGMT0] & 0x0F)

    def acc_on(self):
        return (self.regs[PWR_MGMT0] & 0x03) >= 2

    def gyr_on(self):
        return (self.regs[PWR_MGMT0] & 0x0C) == 0x0C

    def big_endian(self):
        return bool(self.regs[INTF_CONFIG0] & 0x10)

    def acc_lsb_per_g(self):
        return ACC_LSB[(self.regs[ACCEL_CONFIG0] >> 5) & 3]

    def gyr_lsb_per_dps(self):
        return GYR_LSB[(self.regs[GYRO_CONFIG0] >> 5) & 7]

    def packet_size(self):
        en = self.regs[FIFO_CONFIG1] & 0x03
        return 16 if en == 3 else 8 if en else 0

    def _read_reg(self, reg):
        if reg == REG_BANK_SEL:
            return self.bank
        if self.bank:
            return self.banks[self.bank][reg]
        if reg == FIFO_COUNTH or reg == FIFO_COUNTL:
            n = self.fifo.n
            if self.regs[INTF_CONFIG0] & 0x40:  # FIFO_COUNT_REC
                size = self.packet_size()
                n = n // size if size else 0
            hi_first = self.regs[INTF_CONFIG0] & 0x20
            first = reg == FIFO_COUNTH
            return (n >> 8) if first == bool(hi_first) else (n & 0xFF)
        v = self.regs[reg]
        if reg == INT_STATUS:
            self.regs[INT_STATUS] = 0
        return v

    def _write_reg(self, reg, val):
        if reg == REG_BANK_SEL:
            self.bank = val & 7 if (val & 7) < 5 else 0
            return
        if self.bank:
            self.banks[self.bank][reg] = val
            return
        if reg in (WHO_AM_I, INT_STATUS, FIFO_COUNTH, FIFO_COUNTL) or TEMP_DATA1 <= reg <= 0x2A:
            return  # read-only
        if reg == DEVICE_CONFIG and val & 0x01:
            self.reset()
            return
        if reg == SIGNAL_PATH_RESET:
            if val & 0x02:
                self.fifo.clear()
            return  # all bits clear themselves
        if reg == FIFO_CONFIG and not val & 0xC0:
            self.fifo.clear()  # bypass: FIFO not operational
        self.regs[reg] = val

    FRAME = "icm42688:packet3:be:16"

    def check_frames(self):
        """Frame size of the FIFO setup ``push_frames`` feeds (packet 3: header 0x68,
        accel, gyro, temperature, timestamp; big-endian: what the driver sets). Raises
        ValueError for any other setup."""
        r = self.regs
        if not r[FIFO_CONFIG] >> 6 or r[FIFO_CONFIG1] & 0x03 != 3 or not self.big_endian():
            raise ValueError("ICM FIFO not set up for big-endian packet-3 frames")
        if not (self.acc_on() and self.gyr_on()):
            raise ValueError("ICM accel and gyro must both be on for packet-3 frames")
        return 16

    def _frames_put(self, src, off, stride, size, n):
        r = self.regs
        o = off + (n - 1) * stride  # the last frame -> data registers, timestamp
        r[ACCEL_DATA_X1:ACCEL_DATA_X1 + 12] = src[o + 1:o + 13]
        r[INT_STATUS] |= 0x08  # DATA_RDY_INT
        self.tmst = (src[o + 14] << 8) | src[o + 15]
        k = self.fifo.room() // size
        if k < n:  # full: stream mode drops the oldest packets, stop-on-full the new ones
            r[INT_STATUS] |= 0x02  # FIFO_FULL_INT
            self.dropped += (n - k) * size
            if r[FIFO_CONFIG] >> 6 >= 2:
                n = k
            else:
                self.fifo.drop((n - k) * size)
        if n > 0:
            self.fifo.extend_frames(src, off, stride, size, n)

    def _i16(self, out, v):
        v &= 0xFFFF
        if self.big_endian():
            out.append(v >> 8)
            out.append(v & 0xFF)
        else:
            out.append(v & 0xFF)
            out.append(v >> 8)

    def _sample(self, ca, cg):
        if not self.acc_on():
            ca = [-32768] * 3
        if not self.gyr_on():
            cg = [-32768] * 3
        be = self.big_endian()
        e = ">" if be else "<"
        r = self.regs
        # TEMP_DATA1..GYRO_DATA_Z0 (0x1D..0x2A): temperature (0: 25 degC), accel, gyro
        struct.pack_into(e + "7h", r, TEMP_DATA1, 0, ca[0], ca[1], ca[2], cg[0], cg[1], cg[2])
        r[INT_STATUS] |= 0x08  # DATA_RDY_INT
        self.tmst = (self.tmst + 1) & 0xFFFF
        mode = r[FIFO_CONFIG] >> 6
        size = self.packet_size()
        if not mode or not size:
            return
        en = r[FIFO_CONFIG1] & 0x03
        if en == 3:  # header 0x68, accel, gyro, temperature byte, timestamp
            out = struct.pack(e + "B6hBH", 0x68, ca[0], ca[1], ca[2], cg[0], cg[1], cg[2], 0,
                              self.tmst)
        else:
            out = bytearray()
            out.append(0x40 if en == 1 else 0x20)
            for v in (ca if en & 1 else cg):
                self._i16(out, v)
            out.append(0)  # temperature, 1 byte: 25 degC
        if self.fifo.room() < size:
            self.regs[INT_STATUS] |= 0x02  # FIFO_FULL_INT
            self.dropped += size
            if mode >= 2:
                return  # stop-on-full: the new packet is lost
            self.fifo.drop(size)  # stream: the oldest packet is lost
        self.fifo.extend(out)
