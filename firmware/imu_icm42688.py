"""TDK InvenSense ICM-42688-P 6-axis IMU driver over I2C (MicroPython).

Written from the ICM-42688-P datasheet (register bank 0). WHO_AM_I reads 0x47. The
interface is the one documented in ``imu_base``: ``read_one`` (m/s^2, rad/s),
``read_raw`` and ``read_fifo`` (raw counts), ``health()``.

Sampling: accelerometer and gyroscope run in low-noise mode at the same ODR, the lowest
supported rate >= the request (12.5, 25, 50, 100, 200, 500, 1000, 2000, 4000, 8000 Hz;
400 Hz -> 500 Hz). Data registers and FIFO count are big-endian, the count in bytes.
The FIFO (2048 bytes) runs in stop-on-full mode with 16-byte packets: header (0x68:
accel + gyro + timestamp), accel x, y, z, gyro x, y, z, temperature (1 byte),
timestamp (2 bytes). The header is checked on every packet: a wrong one means the
stream lost alignment, which is handled like an overflow. The chip writes -32768 for a
sensor that is not ready, which is counted as a saturation.
"""

import time

from micropython import const

from imu_base import ImuBase, ImuError, check_accel_g, check_gyro_dps

_DEVICE_CONFIG = const(0x11)
_FIFO_CONFIG = const(0x16)
_ACCEL_DATA_X1 = const(0x1F)
_INT_STATUS = const(0x2D)
_FIFO_COUNTH = const(0x2E)
_FIFO_DATA_REG = const(0x30)
_SIGNAL_PATH_RESET = const(0x4B)
_INTF_CONFIG0 = const(0x4C)
_PWR_MGMT0 = const(0x4E)
_GYRO_CONFIG0 = const(0x4F)
_ACCEL_CONFIG0 = const(0x50)
_FIFO_CONFIG1 = const(0x5F)
_WHO_AM_I = const(0x75)
_REG_BANK_SEL = const(0x76)

_ID_ICM42688 = const(0x47)
_STARTUP_MS = const(40)  # gyro start-up after PWR_MGMT0 (datasheet: 30 ms typical)

# Register values and bits.
_SOFT_RESET = const(0x01)  # DEVICE_CONFIG
_FIFO_MODE_BYPASS = const(0x00)  # FIFO_CONFIG[7:6]
_FIFO_MODE_STOP_ON_FULL = const(0x80)
_FIFO_FLUSH = const(0x02)  # SIGNAL_PATH_RESET
_INTF_BIG_ENDIAN = const(0x30)  # FIFO_COUNT_ENDIAN | SENSOR_DATA_ENDIAN, count in bytes
_PWR_LN = const(0x0F)  # GYRO_MODE = ACCEL_MODE = low noise
_FIFO_ACCEL_GYRO_TEMP = const(0x07)  # FIFO_CONFIG1: ACCEL_EN | GYRO_EN | TEMP_EN

# ODR in Hz -> GYRO_ODR / ACCEL_ODR code (both registers share the table), ascending.
_ODR = (
    (12.5, 11),
    (25, 10),
    (50, 9),
    (100, 8),
    (200, 7),
    (500, 15),
    (1000, 6),
    (2000, 5),
    (4000, 4),
    (8000, 3),
)


def _odr(odr_hz):
    """(rate Hz, ODR code) of the lowest supported rate >= odr_hz.

    Raises:
        ValueError: odr_hz <= 0 or above 8000 Hz.
    """
    if odr_hz > 0:
        for rate, code in _ODR:
            if rate >= odr_hz:
                return rate, code
    raise ValueError("odr_hz must be in (0, 8000] for ICM-42688-P")


class ICM42688(ImuBase):
    """ICM-42688-P on I2C; see ``imu_base`` for the interface.

    Args:
        i2c: machine.I2C.
        addr: 0x68 (AP_AD0 low) or 0x69 (AP_AD0 high).
        accel_g: accelerometer full scale, +-2, 4, 8 or 16 g.
        gyro_dps: gyroscope full scale, +-250, 500, 1000 or 2000 deg/s.
        odr_hz: wanted sample rate in Hz (actual rate in ``odr_hz`` attribute).
        max_retries: extra attempts per I2C transaction after an OSError.

    Raises:
        ImuError: no chip answers, WHO_AM_I is not 0x47, or the bus keeps failing.
        ValueError: unsupported range or rate.
    """

    chip = "ICM-42688-P"
    _IDS = (_ID_ICM42688,)
    _DATA_REG = _ACCEL_DATA_X1
    _DATA_LEN = 12  # accel (6), gyro (6)
    _DATA_GYR = 6
    _FIFO_DATA = _FIFO_DATA_REG
    _FRAME = 16
    _FRAME_ACC = 1
    _FRAME_GYR = 7
    _HDR_MASK = 0xF0  # HEADER_MSG, HEADER_ACCEL, HEADER_GYRO, HEADER_20
    _HDR_VAL = 0x60  # not empty, accel and gyro present, 16-bit data
    _FIFO_BYTES = 2048

    def __init__(self, i2c, addr=0x68, accel_g=8, gyro_dps=2000, odr_hz=500, max_retries=2):
        check_accel_g(accel_g)
        check_gyro_dps(gyro_dps)
        _odr(odr_hz)
        super().__init__(i2c, addr, max_retries)
        # After an MCU-only reboot the chip may be left in another register bank.
        self._write(_REG_BANK_SEL, 0)
        self.who_am_i = self.check_id()
        self._write(_DEVICE_CONFIG, _SOFT_RESET)
        time.sleep_ms(2)  # datasheet: wait 1 ms after a soft reset
        self._write(_REG_BANK_SEL, 0)
        self._read_u8(_INT_STATUS)  # clear RESET_DONE_INT
        self._write(_INTF_CONFIG0, _INTF_BIG_ENDIAN)
        self.configure(accel_g, gyro_dps, odr_hz)
        self._write(_PWR_MGMT0, _PWR_LN)
        # Datasheet: no register writes for 200 us after a sensor leaves the off mode, and
        # the gyro needs ~30 ms to start (its samples read -32768 until then): wait, then
        # drop what the FIFO collected meanwhile.
        time.sleep_ms(_STARTUP_MS)
        self.fifo_reset()

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
        rate, code = _odr(odr_hz)
        # FS_SEL codes run from the largest range down: accel 0 = 16 g, gyro 0 = 2000 dps.
        self._write(_GYRO_CONFIG0, ((3 - g) << 5) | code)
        self._write(_ACCEL_CONFIG0, ((3 - a) << 5) | code)
        self._write(_FIFO_CONFIG1, _FIFO_ACCEL_GYRO_TEMP)
        self._set_scale(accel_g, gyro_dps)
        self.odr_hz = float(rate)
        self._odr_req = odr_hz
        self.fifo_reset()

    def _fifo_count(self):
        return self._read_u16(_FIFO_COUNTH)

    def fifo_reset(self):
        """Flush the FIFO and restart it in stop-on-full mode; queued samples are lost.

        Raises:
            ImuError: the bus failed after retries.
        """
        self._write(_FIFO_CONFIG, _FIFO_MODE_BYPASS)
        self._write(_SIGNAL_PATH_RESET, _FIFO_FLUSH)
        self._write(_FIFO_CONFIG, _FIFO_MODE_STOP_ON_FULL)
        self._read_u8(_INT_STATUS)  # clear a latched FIFO_FULL_INT
        self._lost = True


def detect(i2c, addr):
    """Return an ``ICM42688`` driver if an ICM-42688-P answers at ``addr``, else None.

    WHO_AM_I is read in the current bank first; only if that fails to match is bank 0
    selected (a write) and WHO_AM_I read again, so other chips are not written to unless
    they answer at 0x75 with an unknown value.

    Raises:
        ImuError: the chip was identified but could not be set up.
    """
    b = bytearray(1)
    try:
        i2c.readfrom_mem_into(addr, _WHO_AM_I, b)
        if b[0] != _ID_ICM42688:
            b[0] = 0
            i2c.writeto_mem(addr, _REG_BANK_SEL, b)
            i2c.readfrom_mem_into(addr, _WHO_AM_I, b)
    except OSError:
        return None
    if b[0] != _ID_ICM42688:
        return None
    return ICM42688(i2c, addr)
