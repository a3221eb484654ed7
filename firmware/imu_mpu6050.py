"""InvenSense MPU-6050 / MPU-6500 6-axis IMU driver over I2C (MicroPython).

Written from the MPU-6000/6050 and MPU-6500 register maps. WHO_AM_I reads 0x68 on an
MPU-6050 (whatever the AD0 pin) and 0x70 on an MPU-6500. The interface is the one
documented in ``imu_base``: ``read_one`` (m/s^2, rad/s), ``read_raw`` and ``read_fifo``
(raw counts), ``health()``.

Sampling: the internal rate is 1 kHz with the digital low-pass filter on, divided by
``1 + SMPLRT_DIV``; ``odr_hz`` becomes the lowest rate 1000 / (1 + div) >= the request
(400 Hz -> 500 Hz). The DLPF bandwidth is the widest table entry <= odr / 2.
The FIFO holds accel x, y, z then gyro x, y, z per sample (12 bytes, big-endian).
FIFO size: 1024 bytes (MPU-6050), 512 bytes (MPU-6500).

Usage::

    from machine import I2C, Pin
    import imu_mpu6050
    imu = imu_mpu6050.MPU6050(I2C(0, scl=Pin(22), sda=Pin(21), freq=400000), 0x68)
"""

import time

from micropython import const

from imu_base import ImuBase, ImuError, check_accel_g, check_gyro_dps

_SMPLRT_DIV = const(0x19)
_CONFIG = const(0x1A)
_GYRO_CONFIG = const(0x1B)
_ACCEL_CONFIG = const(0x1C)
_ACCEL_CONFIG2 = const(0x1D)  # MPU-6500 only
_FIFO_EN = const(0x23)
_INT_STATUS = const(0x3A)
_ACCEL_XOUT_H = const(0x3B)
_SIGNAL_PATH_RESET = const(0x68)
_USER_CTRL = const(0x6A)
_PWR_MGMT_1 = const(0x6B)
_PWR_MGMT_2 = const(0x6C)
_FIFO_COUNTH = const(0x72)
_FIFO_R_W = const(0x74)
_WHO_AM_I = const(0x75)

_ID_MPU6050 = const(0x68)
_ID_MPU6500 = const(0x70)
_STARTUP_MS = const(30)

# Register bits.
_PWR_DEVICE_RESET = const(0x80)
_PWR_CLK_PLL_XGYRO = const(0x01)
_USER_FIFO_EN = const(0x40)
_USER_FIFO_RESET = const(0x04)
_FIFO_EN_GYRO_ACCEL = const(0x78)  # XG, YG, ZG, ACCEL
_CONFIG_FIFO_MODE = const(0x40)  # MPU-6500: stop writing when the FIFO is full

# DLPF_CFG 1..6 -> bandwidth in Hz (gyro; the accelerometer's is within a few Hz).
_DLPF_BW = (188, 98, 42, 20, 10, 5)


def _rate(odr_hz):
    """Sample-rate divider for the lowest rate 1000 / (1 + div) >= odr_hz.

    Raises:
        ValueError: odr_hz above 1000 Hz or below 1000 / 256 Hz.
    """
    if odr_hz <= 0 or odr_hz > 1000:
        raise ValueError("odr_hz must be in (3.9, 1000] for MPU-6050/6500")
    div = int(1000 / odr_hz) - 1
    if div > 255:
        raise ValueError("odr_hz must be in (3.9, 1000] for MPU-6050/6500")
    return div


def _dlpf(odr_hz):
    """DLPF_CFG with the widest bandwidth <= odr_hz / 2 (6 if none)."""
    for i in range(len(_DLPF_BW)):
        if 2 * _DLPF_BW[i] <= odr_hz:
            return i + 1
    return 6


class MPU6050(ImuBase):
    """MPU-6050 or MPU-6500 on I2C; see ``imu_base`` for the interface.

    Args:
        i2c: machine.I2C.
        addr: 0x68 (AD0 low) or 0x69 (AD0 high).
        accel_g: accelerometer full scale, +-2, 4, 8 or 16 g.
        gyro_dps: gyroscope full scale, +-250, 500, 1000 or 2000 deg/s.
        odr_hz: wanted sample rate in Hz (actual rate in ``odr_hz`` attribute).
        max_retries: extra attempts per I2C transaction after an OSError.

    Raises:
        ImuError: no chip answers, WHO_AM_I is not 0x68/0x70, or the bus keeps failing.
        ValueError: unsupported range or rate.
    """

    _IDS = (_ID_MPU6050, _ID_MPU6500)
    _DATA_REG = _ACCEL_XOUT_H
    _DATA_LEN = 14  # accel (6), temperature (2), gyro (6)
    _DATA_GYR = 8
    _FIFO_DATA = _FIFO_R_W
    _FRAME = 12
    _FRAME_ACC = 0
    _FRAME_GYR = 6

    def __init__(self, i2c, addr=0x68, accel_g=8, gyro_dps=2000, odr_hz=500, max_retries=2):
        check_accel_g(accel_g)
        check_gyro_dps(gyro_dps)
        _rate(odr_hz)
        super().__init__(i2c, addr, max_retries)
        self.chip = "MPU-6050/6500"
        who = self.check_id()
        self.who_am_i = who
        if who == _ID_MPU6500:
            self.chip = "MPU-6500"
            self._FIFO_BYTES = 512
        else:
            self.chip = "MPU-6050"
            self._FIFO_BYTES = 1024
        self._reset()
        self.configure(accel_g, gyro_dps, odr_hz)
        # Gyro start-up time after wake-up: 30 ms typical; drop the settling samples.
        time.sleep_ms(_STARTUP_MS)
        self.fifo_reset()

    def _reset(self):
        self._write(_PWR_MGMT_1, _PWR_DEVICE_RESET)
        # DEVICE_RESET clears itself when the reset is done (<= 100 ms); the chip may not
        # answer meanwhile, so errors while polling are expected and not counted.
        b = self._b1
        for _ in range(100):
            time.sleep_ms(1)
            try:
                self.i2c.readfrom_mem_into(self.addr, _PWR_MGMT_1, b)
            except OSError:
                continue
            if not b[0] & _PWR_DEVICE_RESET:
                break
        else:
            raise ImuError("%s at 0x%02x: reset did not complete" % (self.chip, self.addr), self.addr)
        if self.who_am_i == _ID_MPU6500:
            self._write(_SIGNAL_PATH_RESET, 0x07)  # gyro, accel, temp signal paths
            time.sleep_ms(1)
        self._write(_PWR_MGMT_1, _PWR_CLK_PLL_XGYRO)  # wake, PLL clock
        self._write(_PWR_MGMT_2, 0x00)  # all axes on
        time.sleep_ms(1)

    def configure(self, accel_g=None, gyro_dps=None, odr_hz=None):
        """Set ranges (+-g, +-deg/s) and sample rate (Hz); None keeps the current one.

        Resets the FIFO (samples queued at the old scale are dropped; ``gap`` follows).

        Raises:
            ValueError: unsupported range or rate.
            ImuError: the bus failed after retries.
        """
        if accel_g is None:
            accel_g = self.accel_g
        if gyro_dps is None:
            gyro_dps = self.gyro_dps
        if odr_hz is None:
            odr_hz = self._odr_req
        a = check_accel_g(accel_g)
        g = check_gyro_dps(gyro_dps)
        div = _rate(odr_hz)
        odr = 1000 / (1 + div)
        dlpf = _dlpf(odr)
        self._write(_USER_CTRL, 0x00)  # FIFO off while reconfiguring
        if self.who_am_i == _ID_MPU6500:
            self._write(_CONFIG, _CONFIG_FIFO_MODE | dlpf)
            self._write(_ACCEL_CONFIG2, dlpf)  # ACCEL_FCHOICE_B = 0, A_DLPF_CFG
        else:
            self._write(_CONFIG, dlpf)
        self._write(_SMPLRT_DIV, div)
        self._write(_GYRO_CONFIG, g << 3)
        self._write(_ACCEL_CONFIG, a << 3)
        self._set_scale(accel_g, gyro_dps)
        self.odr_hz = odr
        self._odr_req = odr_hz
        self._write(_FIFO_EN, _FIFO_EN_GYRO_ACCEL)
        self.fifo_reset()

    def _fifo_count(self):
        return self._read_u16(_FIFO_COUNTH) & 0x1FFF  # 13 bits on the MPU-6500

    def fifo_reset(self):
        """Disable, reset and re-enable the FIFO; queued samples are lost (``gap``).

        Raises:
            ImuError: the bus failed after retries.
        """
        self._write(_USER_CTRL, _USER_FIFO_RESET)
        self._write(_USER_CTRL, _USER_FIFO_EN)
        self._read_u8(_INT_STATUS)  # clear a latched FIFO_OFLOW_INT
        self._lost = True


def detect(i2c, addr):
    """Return an ``MPU6050`` driver if an MPU-6050/6500 answers at ``addr``, else None.

    A chip that answers with the right WHO_AM_I but then fails to configure raises.

    Raises:
        ImuError: the chip was identified but could not be set up.
    """
    b = bytearray(1)
    for attempt in range(2):
        try:
            i2c.readfrom_mem_into(addr, _WHO_AM_I, b)
            break
        except OSError:
            if attempt:
                return None
    if b[0] not in (_ID_MPU6050, _ID_MPU6500):
        return None
    return MPU6050(i2c, addr)
