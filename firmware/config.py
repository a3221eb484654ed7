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
PIN_PAIR_BUTTON = const(0)  # the XIAO's BOOT button (GPIO0, to GND when pressed): pairing / forget
STATUS_LED_ACTIVE_LOW = const(1)  # the XIAO user LED lights when the pin is driven low
PAIR_BUTTON_ACTIVE_LOW = const(1)  # BOOT pulls GPIO0 to GND; the firmware enables the pull-up

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

# --- Posture alert (firmware/posture.py): the one source of the board's defaults ---------
# The same values and sources as the host's analysis (host/nape/settings.py), so a buzz
# and a reported episode mean the same thing. SET_POSTURE (protocol/SPEC.md) changes the
# first three at run time.
# Neck flexion (head - trunk inclination) above which posture is poor. Norasi H. et al.
# (2022), Exposure to neck flexion and risk of neck pain, Appl Ergon (systematic review):
# 20 deg is the best-supported risk cut-off (ISO 11226:2000 calls > 25 deg not acceptable).
POSTURE_NECK_FLEXION_LIMIT_DEG = const(20)
# Trunk (upper back) inclination above which the back counts as hunched. ISO 11226:2000:
# 0-20 deg acceptable, 20-60 deg only for limited holding times.
POSTURE_TRUNK_INCLINATION_LIMIT_DEG = const(20)
# Poor posture held this long before the buzz, s (ISO 11226 limits holding times; Nape
# reports anything held for a minute: the host's hold_s).
POSTURE_HOLD_S = const(60)
POSTURE_REARM_DEG = const(5)  # corrected = this far below the limit (host hysteresis_deg)
POSTURE_REARM_S = const(5)  # corrected this long re-arms the alert (host end_grace_s)
POSTURE_LYING_DEG = const(60)  # trunk tilt from vertical = lying: no buzz (host lying_trunk_deg)
POSTURE_REPEAT_S = const(120)  # buzz again after this long if not corrected (Nape default)
# Quiet hours, local hour of day: no buzz from START to END (wraps over midnight; Nape
# default; equal values disable them). Local time = the SET_TIME clock (UTC: unix ms)
# plus UTC_OFFSET_MIN; before the host has set the time the board has no clock and
# quiet hours do not apply.
POSTURE_QUIET_START_H = const(22)
POSTURE_QUIET_END_H = const(7)
UTC_OFFSET_MIN = const(0)  # local time minus UTC, minutes (e.g. 60 for CET, -300 for EST)
CALIB_STILL_S = const(3)  # calibration: this long upright, looking straight ahead

# --- Power saver (firmware/power.py; hardware/POWER.md gives the budget) ----------
POWER_SAVER_ENABLED = const(1)
SAVER_AFTER_S = const(60)  # enter saver this long after the last central left
# Fused rate and IMU ODR in saver: the posture alert runs at POSTURE_UPDATE_HZ (10 Hz) on
# slow angles; 50 Hz is the lowest rate the fusion accepts (>= 32 Hz: its 0.5 s filters
# need 16 samples) that both IMU families have as an ODR and that POSTURE_UPDATE_HZ
# divides. No jolt screening in saver (it needs >= 200 Hz raw). A central connecting
# restores STREAM_RATE_HZ / RAW_ODR_HZ at once (firmware/main.py, Device._power).
SAVER_RATE_HZ = const(50)
SAVER_STILL_AFTER_S = const(60)  # in saver, wearer still this long -> still rate
SAVER_STILL_RATE_HZ = const(50)  # = SAVER_RATE_HZ: the fusion cannot run below 32 Hz
ADV_INTERVAL_US = const(100000)  # fast, connectable advertising while active
SAVER_ADV_INTERVAL_US = const(1022500)  # slow advertising in saver (~1 s)
ACTIVE_CPU_FREQ_HZ = const(160000000)
SAVER_CPU_FREQ_HZ = const(80000000)
# Offline logging = the saver (firmware/power.py rule 5; reasons and figures in
# hardware/POWER.md). Raw ODR: the lowest the jolt screen takes (>= 200 Hz) on both chips.
SAVER_RAW_ODR_HZ = const(200)
SLEEP_ENABLED = const(1)  # machine.lightsleep between FIFO batches (no central, outside windows)
SLEEP_FIFO_FILL_PCT = const(75)  # wake before the smallest FIFO is this full (power.fifo_wake_ms)
SLEEP_MAX_MS = const(1000)  # longest single light sleep
OFFLINE_ADV_EVERY_S = const(10)  # an advertising window this often: reconnect within it
OFFLINE_ADV_WINDOW_MS = const(200)  # awake (modem sleep, BLE on) this long per window
OFFLINE_ADV_INTERVAL_US = const(40000)  # advertising interval inside a window (5 events)
OFFLINE_CPU_FREQ_HZ = const(240000000)  # with light sleep the fastest clock costs least

# --- Sampling loop and entry point (firmware/sampler.py, firmware/main.py) -------------
# Added with the sampling loop; values above are unchanged.
SAMPLER_POLL_MS = const(40)  # FIFO drain period: 20 samples per IMU at 500 Hz; the smallest
#   FIFO (MPU-6500, 512 B = 42 samples) overflows after 84 ms. 40 ms halves the per-poll cost
#   (bus transactions, bookkeeping) of a 20 ms poll (bench/firmware_cost.py whole loop)
SAMPLER_TIMER_ID = const(0)  # machine.Timer that schedules the drain
POSTURE_UPDATE_HZ = const(10)  # posture alert updates per second (from the fused stream)
MAIN_LOOP_MS = const(20)  # main loop period: BLE tick and send, commands, power policy. 20 ms:
#   a quarter of the BLE housekeeping of a 5 ms loop (bench/firmware_cost.py), inside a
#   30 ms connection interval and the 50 ms it takes to fill a packet at 100 Hz
FAULT_BLINKS = const(3)  # status LED blinks per cycle when the trunk IMU is missing
# gc.threshold: collect after this much allocation. Measured with bench/firmware_cost.py's
# whole loop on an 8 MB heap (unix port, us per 20 ms loop iteration, mean / median):
# 64 KiB 1072 / 266, 256 KiB 811 / 175, 1 MiB 497 / 155, none 434 / 163. Small thresholds
# leave the heap fragmented right after each collection, and every multi-block allocation
# (heap frames, tuples, bytes) then searches far. 1 MiB keeps a collection short (0.6 ms
# here; it sweeps the whole heap) instead of one long pause when 8 MB are full. On a heap
# smaller than this (plain ESP32) the collector simply runs when the heap is full.
GC_THRESHOLD_BYTES = const(1048576)
# Offline buffer in RAM (firmware/ble_buffer.py, 249 bytes per slot): at most BLE_RAM_SLOTS
# (1 MB: 3.4 min of two-IMU samples at 100 Hz on the XIAO's PSRAM heap), fewer when the
# heap is small (a plain ESP32 without PSRAM has ~110 KiB), keeping HEAP_RESERVE_BYTES free
# for the sampler, the jolt screen and the garbage between collections (main.ram_slots).
BLE_RAM_SLOTS = const(4096)
BLE_RAM_SLOTS_MIN = const(32)  # 2 x the spill batch (ble_buffer.PacketStore)
HEAP_RESERVE_BYTES = const(65536)
# Offline buffer on flash (firmware/ble_buffer.py): when the RAM ring is full its oldest
# unconfirmed packets spill to this file on the VFS ("" = RAM only). Size: BLE_SPILL_KIB,
# in whole 16-slot batches (ble_buffer.spill_slots); the index costs 5 bytes of heap per
# slot. MicroPython's ESP32 partition tables (ports/esp32/partitions-8MiB.csv /
# -16MiB.csv) give the VFS 0x4F0000 = 4.94 MiB on 8 MiB flash (XIAO ESP32S3) and
# 0xCD0000 = 12.8 MiB on 16 MiB. Most of the XIAO's VFS goes to the day log (DAYLOG_*):
# the spill file only has to bridge the SAVER_AFTER_S after a central left and a
# reconnection's backfill. 640 KiB = 2 672 slots = 2.2 min of two-IMU samples at
# 100 Hz (5.6 min with the RAM ring).
BLE_SPILL_FILE = "/nape-spill.bin"
BLE_SPILL_KIB = const(640)
# Use the spill file: 1 = on the board (MicroPython's esp32 port, whose VFS is the flash
# partition) when the heap at boot holds its index (5 bytes per slot: 80 KiB for 16 384
# slots) besides HEAP_RESERVE_BYTES and a RAM ring of BLE_RAM_SLOTS_MIN slots
# (main.buffer_plan): yes on the XIAO ESP32S3's 8 MB PSRAM heap, no on a plain ESP32
# (~110 KiB), which then buffers in RAM only; 2 = the same on any port (the unix port's
# "/" is the host's root, so tests point BLE_SPILL_FILE elsewhere); 0 = RAM only.
BLE_SPILL = const(1)

# --- BLE security (protocol/SECURITY.md; firmware/ble_service.py, firmware/pair_button.py) ---
# 1: the stream, event, history (backfill) and control characteristics need an encrypted
# link with a central bonded in a pairing window (and, when BLE_OWNER_KEY_FILE exists on
# the board, the owner key's proof). 0 is a DEVELOPMENT switch only: any central in range
# may stream, fetch the history and command the board; the status flags and the scan
# response say so (nape scan shows "OPEN").
BLE_SECURE = const(1)
# Pairing window: new bonds are accepted only this long after power-on and after a long
# press of the pair button (PAIR_PRESS_MS); outside it the board refuses pairing.
BLE_PAIR_WINDOW_S = const(120)
BLE_MAX_BONDS = const(4)  # centrals bonded at once; a further one is refused (forget one first)
BLE_SECRETS_FILE = "/nape-bonds.txt"  # bonding keys on the board's flash (survive reboots)
# Owner key (32 bytes, hex) that `nape flash` writes over USB: when present, a central must
# prove it (HMAC-SHA256 challenge-response on the control characteristic) before the board
# sends anything or takes a command. No file: bonded centrals need no proof.
BLE_OWNER_KEY_FILE = "/nape-owner.key"
PAIR_PRESS_MS = const(3000)  # hold the pair button this long: pairing window opens (one buzz)
FORGET_PRESS_MS = const(10000)  # hold it this long: every bond is forgotten (long buzz)

# --- Offline day log (firmware/daylog.py; protocol/SPEC.md "Streaming, backfill and the offline buffer") ---
# With no authorized central for SAVER_AFTER_S the board logs, instead of SAMPLES: both
# IMUs' orientation at DAYLOG_HZ (LOG packets, 64 bytes of flash per second with two
# IMUs), posture-alert events and drops (MARKS) and every jolt's EVENT window, to this file.
DAYLOG_FILE = "/nape-day.log"
DAYLOG_HZ = const(10)  # LOG rate (divides the fused rates 100 and 50 Hz)
# Largest day log, KiB: XIAO ESP32S3 VFS 5056 KiB - 640 KiB spill - ~320 KiB firmware
# files and bonds - DAYLOG_FREE_KIB = 3968 KiB = 16 651 slots = 17.6 h of two-IMU
# orientation at 10 Hz (35 h with the trunk IMU only). daylog.plan takes less when the VFS
# has less free (a plain 4 MiB ESP32: 2 MiB VFS -> 1600 KiB = 7.1 h) or the heap cannot
# hold the index (3 bytes per slot).
DAYLOG_KIB = const(3968)
DAYLOG_FREE_KIB = const(128)  # leave this much of the VFS free besides the spill file
DAYLOG_MIN_KIB = const(64)  # less room than this: no day log (printed at boot)
# 1 = on the board (esp32 port) only, 2 = on any port (tests), 0 = off (SAMPLES buffer only)
DAYLOG = const(1)
