"""Find the board's IMUs at boot: trunk (required) at 0x68, head (optional) at 0x69.

Both IMUs share one I2C bus; the AD0 pin picks the address (trunk AD0 low, head AD0
high). Each address may carry an MPU-6050/6500 or an ICM-42688-P.
"""

from micropython import const

import imu_icm42688
import imu_mpu6050
from imu_base import ImuError

TRUNK_ADDR = const(0x68)
HEAD_ADDR = const(0x69)

# Tried in this order. MPU first: its detect only reads, while the ICM's may select
# register bank 0 (a write) on a chip that answers with an unknown ID.
_DRIVERS = (imu_mpu6050, imu_icm42688)


def detect(i2c, addr):
    """Driver for whichever supported IMU answers at ``addr``, or None.

    Raises:
        ImuError: a chip was identified but could not be set up.
    """
    for mod in _DRIVERS:
        drv = mod.detect(i2c, addr)
        if drv is not None:
            return drv
    return None


# Why the head IMU was left out by the last find_imus (None: found, or absent).
head_error = None


def find_imus(i2c):
    """Detect the IMUs; returns ``{"trunk": driver, "head": driver or None}``.

    Drivers start with their default ranges and rate (see the driver modules); call
    ``configure`` to change them. The head IMU is optional: one that is identified but
    cannot be set up is left out (``None``) and the reason kept in ``head_error``, so
    the wearable still runs on the trunk alone.

    Raises:
        ImuError: no supported IMU at the trunk address 0x68 (it is required), or the
            trunk IMU was identified but could not be set up.
    """
    global head_error
    trunk = detect(i2c, TRUNK_ADDR)
    if trunk is None:
        raise ImuError("trunk IMU not found at 0x%02x (MPU-6050/6500 or ICM-42688-P)" % TRUNK_ADDR, TRUNK_ADDR)
    head_error = None
    try:
        head = detect(i2c, HEAD_ADDR)
    except ImuError as e:
        head_error = str(e)
        head = None
    return {"trunk": trunk, "head": head}
