"""Register-level model of an MPU-6050 (WHO_AM_I 0x68) or MPU-6500 (0x70) for tests.

Modelled (from the register maps): power-on state asleep (PWR_MGMT_1 = 0x40);
DEVICE_RESET restores the defaults and clears itself; SLEEP stops sampling; ranges in
GYRO_CONFIG / ACCEL_CONFIG bits 4:3 set the counts per unit; data registers 0x3B..0x48
big-endian (accel, temperature, gyro); FIFO_EN selects what a sample writes to the FIFO
(accel, temperature, gyro x/y/z, in register order) while USER_CTRL.FIFO_EN is set;
USER_CTRL.FIFO_RESET empties it and clears itself; FIFO_COUNTH/L give the byte count;
reads of FIFO_R_W pop bytes without auto-increment; INT_STATUS (DATA_RDY, FIFO_OFLOW)
clears on read. On overflow the MPU-6050 drops the oldest byte for each new one (the
count stays at 1024); the MPU-6500 does the same unless CONFIG.FIFO_MODE is set, in
which case new bytes are dropped. FIFO size 1024 (6050) or 512 (6500) bytes.
"""

import struct

from fake_i2c import FakeImuChip

SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
ACCEL_CONFIG2 = 0x1D
FIFO_EN = 0x23
INT_STATUS = 0x3A
ACCEL_XOUT_H = 0x3B
TEMP_OUT_H = 0x41
GYRO_XOUT_H = 0x43
SIGNAL_PATH_RESET = 0x68
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
PWR_MGMT_2 = 0x6C
FIFO_COUNTH = 0x72
FIFO_COUNTL = 0x73
FIFO_R_W = 0x74
WHO_AM_I = 0x75

ACC_LSB = (16384, 8192, 4096, 2048)
GYR_LSB = (131.0, 65.5, 32.8, 16.4)


class FakeMPU6050(FakeImuChip):
    """MPU-6050 (``who_am_i=0x68``) or MPU-6500 (``who_am_i=0x70``); any other ID
    models a wrong chip (behaves as a 6050 but reports that ID)."""

    _fifo_reg = FIFO_R_W

    def __init__(self, who_am_i=0x68):
        self.is_6500 = who_am_i == 0x70
        FakeImuChip.__init__(self, who_am_i, 512 if self.is_6500 else 1024)
        self.temp_counts = -3920  # about 25 degC on the 6050 scale

    def _defaults(self):
        self.regs[PWR_MGMT_1] = 0x40  # asleep
        self.regs[WHO_AM_I] = self.who_am_i

    def running(self):
        return not (self.regs[PWR_MGMT_1] & 0x40)

    def acc_lsb_per_g(self):
        return ACC_LSB[(self.regs[ACCEL_CONFIG] >> 3) & 3]

    def gyr_lsb_per_dps(self):
        return GYR_LSB[(self.regs[GYRO_CONFIG] >> 3) & 3]

    def _read_reg(self, reg):
        if reg == FIFO_COUNTH:
            return self.fifo.n >> 8
        if reg == FIFO_COUNTL:
            return self.fifo.n & 0xFF
        v = self.regs[reg]
        if reg == INT_STATUS:
            self.regs[INT_STATUS] = 0
        return v

    def _write_reg(self, reg, val):
        if reg in (WHO_AM_I, INT_STATUS, FIFO_COUNTH, FIFO_COUNTL) or ACCEL_XOUT_H <= reg <= 0x48:
            return  # read-only
        if reg == PWR_MGMT_1 and val & 0x80:
            self.reset()  # DEVICE_RESET; the bit reads back 0 when done
            return
        if reg == USER_CTRL:
            if val & 0x04:
                self.fifo.clear()
            val &= ~0x07  # FIFO_RESET, I2C_MST_RESET, SIG_COND_RESET clear themselves
        if reg == SIGNAL_PATH_RESET:
            val = 0
        if reg == FIFO_R_W:
            return
        self.regs[reg] = val

    def _sample(self, ca, cg):
        r = self.regs
        # data registers 0x3B..0x48: accel x y z, temperature, gyro x y z (big-endian)
        struct.pack_into(">7h", r, ACCEL_XOUT_H, ca[0], ca[1], ca[2], self.temp_counts,
                         cg[0], cg[1], cg[2])
        r[INT_STATUS] |= 0x01  # DATA_RDY_INT
        if not r[USER_CTRL] & 0x40:
            return
        en = r[FIFO_EN]
        if en == 0x78:  # the drivers' choice: accel + gyro x y z, no temperature
            out = r[ACCEL_XOUT_H:ACCEL_XOUT_H + 6] + r[GYRO_XOUT_H:GYRO_XOUT_H + 6]
            self._fifo_put(out)
            return
        out = bytearray()
        if en & 0x08:
            out.extend(self.regs[ACCEL_XOUT_H : ACCEL_XOUT_H + 6])
        if en & 0x80:
            out.extend(self.regs[TEMP_OUT_H : TEMP_OUT_H + 2])
        for k in range(3):
            if en & (0x40 >> k):
                r = GYRO_XOUT_H + 2 * k
                out.extend(self.regs[r : r + 2])
        self._fifo_put(out)

    FRAME = "mpu6050:accel_gyro:be:12"

    def check_frames(self):
        """Frame size of the FIFO setup ``push_frames`` feeds (accel + gyro x, y, z,
        big-endian: what the driver sets). Raises ValueError for any other setup."""
        r = self.regs
        if not r[USER_CTRL] & 0x40 or r[FIFO_EN] != 0x78:
            raise ValueError("MPU FIFO not set up for accel + gyro frames")
        return 12

    def _frames_put(self, src, off, stride, size, n):
        r = self.regs
        o = off + (n - 1) * stride  # the last frame -> data registers (accel, gyro)
        r[ACCEL_XOUT_H:ACCEL_XOUT_H + 6] = src[o:o + 6]
        r[GYRO_XOUT_H:GYRO_XOUT_H + 6] = src[o + 6:o + 12]
        struct.pack_into(">h", r, TEMP_OUT_H, self.temp_counts)
        r[INT_STATUS] |= 0x01  # DATA_RDY_INT
        need = n * size - self.fifo.room()
        if need > 0:  # byte by byte: each new byte drops the oldest, or is dropped
            r[INT_STATUS] |= 0x10  # FIFO_OFLOW_INT
            self.dropped += need
            if self.is_6500 and (r[CONFIG] & 0x40):
                n -= (need + size - 1) // size  # (whole frames, close enough for a fake)
                if n <= 0:
                    return
            else:
                self.fifo.drop(need)
        self.fifo.extend_frames(src, off, stride, size, n)

    def _fifo_put(self, out):
        stop_when_full = self.is_6500 and (self.regs[CONFIG] & 0x40)
        room = self.fifo.room()
        n = len(out)
        if room < n:  # byte by byte: each new byte drops the oldest, or is dropped
            self.regs[INT_STATUS] |= 0x10  # FIFO_OFLOW_INT
            self.dropped += n - room
            if stop_when_full:
                out = out[:room]
            else:
                self.fifo.drop(n - room)
        self.fifo.extend(out)
