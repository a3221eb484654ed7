"""Nape firmware configuration: the one place for pins, bus settings, rates and settings.

MicroPython. Integer settings are ``const()`` so the compiler folds them; names carry
their unit (``_HZ``, ``_MS``, ``_US``, ``_S``, ``_OHM``, ``_DEG``).

The pin map and the electrical values below MUST equal ``hardware/pinmap.json`` and the
tables in ``hardware/WIRING.md`` (``tests/test_hardware.py`` checks all three agree).
Board: Seeed Studio XIAO ESP32S3 (ESP32-S3R8, 8 MB octal PSRAM, 8 MB flash).
"""

from micropython import const

FW_VERSION = "0.1.0"
BLE_NAME = "Nape"

# --- Pins (ESP32-S3 GPIO numbers; XIAO silkscreen name in the comment) -------------
PIN_I2C_SDA = const(5)  # D4, SDA of both IMUs
PIN_I2C_SCL = const(6)  # D5, SCL of both IMUs
PIN_MOTOR_PWM = const(7)  # D8, gate/base of the vibration-motor driver (LEDC PWM)
PIN_VBAT_ADC = const(1)  # D0/A0, ADC1_CH0, battery divider midpoint
PIN_STATUS_LED = const(21)  # on-board user LED (active low)
PIN_IMU_TRUNK_INT = const(2)  # D1, trunk IMU INT (optional, data-ready / FIFO watermark)
PIN_IMU_HEAD_INT = const(4)  # D3, head IMU INT (optional)
STATUS_LED_ACTIVE_LOW = const(1)  # the XIAO user LED lights when the pin is driven low

# --- I2C bus and IMUs ------------------------------------------------------------
I2C_ID = const(0)
I2C_FREQ_HZ = const(400000)  # Fast-mode; the MPU-6050/6500 top out at 400 kHz
IMU_ADDR_TRUNK = const(0x68)  # AD0 low (required IMU)
IMU_ADDR_HEAD = const(0x69)  # AD0 high (optional IMU)
# WHO_AM_I (register 0x75) values of the supported chips, for probing
WHOAMI_MPU6050 = const(0x68)
WHOAMI_MPU6500 = const(0x70)
WHOAMI_ICM42688P = const(0x47)

# Mounting: device (enclosure-marked) axis i = sign * chip axis |k| for k in the map,
# with 1 = chip X, 2 = chip Y, 3 = chip Z (hardware/MOUNTING.md). Breakout flat on the
# enclosure floor, component side facing away from the skin, chip +Y arrow up the
# spine: device x (anterior) = -chip Z, device y (left) = -chip X, device z (up) = +chip Y.
TRUNK_AXIS_MAP = (-3, -1, 2)
HEAD_AXIS_MAP = (-3, -1, 2)  # headband pod on the back of the head, same layout

# --- Sample rates ------------------------------------------------------------------
STREAM_RATE_HZ = const(100)  # fused orientation stream over BLE
RAW_ODR_HZ = const(400)  # IMU output data rate read through the FIFO (jolt screening)

# --- Vibration motor ---------------------------------------------------------------
MOTOR_PWM_FREQ_HZ = const(20000)  # above hearing; LEDC on the ESP32-S3
MOTOR_DUTY_PCT = const(75)  # ~3 V average from a 4.2 V cell (coin ERMs are 3 V parts)
ALERT_PULSE_MS = const(200)
ALERT_PULSES = const(3)
ALERT_GAP_MS = const(150)

# --- Battery sense (divider VBAT -> R_TOP -> ADC pin -> R_BOT -> GND, 100 nF at pin) --
VBAT_R_TOP_OHM = const(1000000)
VBAT_R_BOT_OHM = const(470000)
VBAT_ADC_ATTEN_DB = const(6)  # machine.ADC.ATTN_6DB: 0..1.6 V effective range on the S3
VBAT_SCALE_X10000 = const(31277)  # round(10000 * (R_TOP + R_BOT) / R_BOT)
VBAT_EMPTY_MV = const(3500)  # regulator drop-out region: treat as empty
VBAT_FULL_MV = const(4200)

# --- Posture defaults (placeholders; the posture module owns the final values) ----
POSTURE_NECK_FLEXION_LIMIT_DEG = const(25)  # ISO 11226-style neck flexion limit
POSTURE_TRUNK_INCLINATION_LIMIT_DEG = const(20)
POSTURE_HOLD_S = const(30)  # sustained this long before an alert
POSTURE_ALERT_COOLDOWN_S = const(300)
CALIB_STILL_S = const(3)  # calibration: this long upright, looking straight ahead

# --- Power saver (firmware/power.py; hardware/POWER.md gives the budget) ----------
POWER_SAVER_ENABLED = const(1)
SAVER_AFTER_S = const(60)  # enter saver this long after the last central left
SAVER_RATE_HZ = const(25)  # sample rate in saver: enough for posture alerts
SAVER_STILL_AFTER_S = const(60)  # in saver, wearer still this long -> still rate
SAVER_STILL_RATE_HZ = const(10)
ADV_INTERVAL_US = const(100000)  # fast, connectable advertising while active
SAVER_ADV_INTERVAL_US = const(1022500)  # slow advertising in saver (~1 s)
ACTIVE_CPU_FREQ_HZ = const(160000000)
SAVER_CPU_FREQ_HZ = const(80000000)

# --- Sampling loop and entry point (firmware/sampler.py, firmware/main.py) -------------
# Added with the sampling loop; values above are unchanged.
SAMPLER_POLL_MS = const(20)  # FIFO drain period: 10 samples per IMU at 500 Hz; the smallest
#                              FIFO (MPU-6500, 512 B = 42 samples) overflows after 84 ms
SAMPLER_TIMER_ID = const(0)  # machine.Timer that schedules the drain
POSTURE_UPDATE_HZ = const(10)  # posture alert updates per second (from the fused stream)
MAIN_LOOP_MS = const(5)  # main loop period: BLE tick, commands, power policy
FAULT_BLINKS = const(3)  # status LED blinks per cycle when the trunk IMU is missing
GC_THRESHOLD_BYTES = const(65536)  # gc.threshold: collect after this much allocation, so
#   heap-allocated frames (> 11 slots) never rescan a large garbage region (tune on board)
