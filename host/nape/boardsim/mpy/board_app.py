"""The virtual board (host only, MicroPython): the whole firmware, fed by a simulated wearer.

``main.boot`` brings the board up exactly as on the ESP32 -- IMU detection and setup
through the real drivers, the jolt screen, the offline buffer, the BLE app, the posture
alert and buzzer after fusion, the sampler -- but on the register-level fake IMUs
(``fake_mpu6050`` trunk at 0x68, ``fake_icm42688`` head at 0x69) on a fake I2C bus, with a
buzzer whose PWM records the patterns it plays (``PatternPWM``) and the ``bluetooth`` shim
bridged to a bumble radio (``nape.ble.peripheral``).

The wearer comes from a file of raw samples in the NSIM format (``simhost.py``: header
``NSIM`` u8 imu_mask, u16 (ignored), f32 rate_hz, u32 n, then float32 acc x,y,z (m/s^2),
gyr x,y,z (rad/s) per IMU per sample, in the DEVICE frame the simulator describes),
normally at the IMUs' output rate (the host resamples slower simulations,
``nape.ble.virtual.nsim_blob``). The chips sense in their own axes: each vector is turned
into chip axes with the inverse of the board's axis map (``config.TRUNK_AXIS_MAP`` /
``HEAD_AXIS_MAP``, hardware/MOUNTING.md), which the sampler then undoes. Every ``SAMPLER_POLL_MS``
of board time the chips get one sample per output period at their *current* ODR (500 Hz
after boot; fewer in the power saver), taken from the file at that instant, then the
sampler polls their FIFOs and the main loop runs ``SAMPLER_POLL_MS / MAIN_LOOP_MS`` passes.
Board time is ``machine.time_ms()`` (the shim's virtual clock), starting at 0.

Pacing: ``--speed`` times real time; 0 = as fast as possible, but while a central
streams no faster than the link drains. ::

    micropython board_app.py --wearer FILE [--speed 1] [--flash PATH] [--ram-slots N]
                             [--flash-slots N] [--name Nape] [--secure] [--secrets PATH]
                             [--no-quiet-hours]

``--no-quiet-hours``: the posture alert buzzes at any hour (tests; the board's clock is the
host's wall clock, so quiet hours would otherwise depend on when the test runs).

Prints ``NAPE-APP start_unix_ms=<ms> rate_hz=<hz> n=<fused samples>`` when sampling
starts, ``NAPE-APP buzz t_ms=<board ms> on_ms=<ms>`` per motor pulse, and ``NAPE-APP
source_done next_seq=<seq>`` when the file is exhausted, then keeps serving (backfill,
status) until killed or the radio goes away. Never flashed to a board.
"""

import struct
import sys
import time

import asyncio

import ble_buffer
import config
import fake_i2c
import fake_icm42688
import fake_mpu6050
import machine
import main
from ble_app import BleApp
from buzzer import Buzzer
from posture import PostureAlert, PostureSettings

_BLOCK = 512  # records read per file read


class PatternPWM:
    """``machine.PWM`` for the buzzer that records what the motor does: one
    ``(board ms, on_ms)`` per pulse in ``pulses`` (and a ``NAPE-APP buzz`` line)."""

    def __init__(self, echo=True):
        self._duty = 0
        self._on_at = None
        self.pulses = []
        self.echo = echo

    def duty_u16(self, v=None):
        if v is None:
            return self._duty
        now = machine.time_ms()
        if v and not self._duty:
            self._on_at = now
        elif not v and self._duty and self._on_at is not None:
            on = now - self._on_at
            self.pulses.append((self._on_at, on))
            if self.echo:
                print("NAPE-APP buzz t_ms=%d on_ms=%d" % (self._on_at, on))
        self._duty = v

    def deinit(self):
        self.duty_u16(0)


def _to_chip(v, o, dst, m):
    """Device-frame ``v[o:o + 3]`` -> chip axes in ``dst`` (device i = sign * chip |m_i|)."""
    for i in range(3):
        k = m[i]
        if k > 0:
            dst[k - 1] = v[o + i]
        else:
            dst[-k - 1] = -v[o + i]


class Wearer:
    """Raw samples from an NSIM file, read forward in blocks; ``at(i)`` fills the
    reused lists ``acc0, gyr0, acc1, gyr1`` with record ``i`` in CHIP axes (never behind
    the last record read)."""

    def __init__(self, path):
        f = open(path, "rb")
        hdr = f.read(15)
        if hdr is None or len(hdr) != 15 or hdr[:4] != b"NSIM":
            raise ValueError("bad wearer file header")
        self.mask, _vl, self.rate_hz, self.n = struct.unpack_from("<BHfI", hdr, 4)
        self.two = self.mask == 3
        self.rec = 24 * (2 if self.two else 1)
        self.fmt = "<" + "f" * (12 if self.two else 6)
        self._f = f
        self._buf = b""
        self._first = 0  # record index of _buf[0]
        self.acc0 = [0.0, 0.0, 0.0]
        self.gyr0 = [0.0, 0.0, 0.0]
        self.acc1 = [0.0, 0.0, 0.0]
        self.gyr1 = [0.0, 0.0, 0.0]

    def at(self, i):
        rec = self.rec
        k = i - self._first
        if k * rec + rec > len(self._buf):
            # skip forward to record i, then read a block from there
            self._f.seek(15 + i * rec)
            self._buf = self._f.read(_BLOCK * rec) or b""
            self._first = i
            k = 0
            if len(self._buf) < rec:
                raise EOFError("wearer file ended at record %d" % i)
        v = struct.unpack_from(self.fmt, self._buf, k * rec)
        m = config.TRUNK_AXIS_MAP
        _to_chip(v, 0, self.acc0, m)
        _to_chip(v, 3, self.gyr0, m)
        if self.two:
            m = config.HEAD_AXIS_MAP
            _to_chip(v, 6, self.acc1, m)
            _to_chip(v, 9, self.gyr1, m)

    def close(self):
        self._f.close()


def boot_board(wearer, store, name=config.BLE_NAME, secure=False, secrets_path=None):
    """Fake bus with the wearer's IMUs, then ``main.boot`` with the BLE app on ``store``
    and the recording buzzer. Returns (device, chips, pwm)."""
    bus = fake_i2c.FakeI2C()
    chips = [bus.add(0x68, fake_mpu6050.FakeMPU6050())]
    if wearer.two:
        chips.append(bus.add(0x69, fake_icm42688.FakeICM42688()))
    machine.I2C.attach(config.I2C_ID, bus)
    machine.Timer.reset_all()
    app = BleApp(wearer.mask, config.STREAM_RATE_HZ, store=store, name=name, secure=secure,
                 secrets_path=secrets_path)
    pwm = PatternPWM()
    dev = main.boot(app=app, buzzer=Buzzer(pwm), start_timer=False, clock=machine.time_ms)
    return dev, chips, pwm


def feed(wearer, chips, t_ms, odr, k, start):
    """Push ``k`` samples per chip at ``odr`` Hz, the first at board time
    ``t_ms + start / odr``: each is the wearer's record at that instant (the newest
    record at or before it). Returns False when the file is exhausted."""
    rate = wearer.rate_hz
    two = wearer.two
    c0 = chips[0]
    c1 = chips[1] if two else None
    for j in range(k):
        i = int((t_ms * odr + (start + j) * 1000) * rate / (1000 * odr) + 1e-6)
        if i >= wearer.n:
            return False
        wearer.at(i)
        c0.push(wearer.acc0, wearer.gyr0)
        if two:
            c1.push(wearer.acc1, wearer.gyr1)
    return True


async def run_board(path, speed=1.0, flash_path=None, ram_slots=4096, flash_slots=16384,
                    name=config.BLE_NAME, secure=False, secrets_path=None, quiet_hours=True):
    """Virtual board main: the whole firmware on the wearer in ``path``."""
    wearer = Wearer(path)
    store = ble_buffer.PacketStore(ram_slots, flash_path, flash_slots)
    dev, chips, _pwm = boot_board(wearer, store, name, secure, secrets_path)
    if not quiet_hours:
        dev.feedback.posture = PostureAlert(PostureSettings(quiet_start_h=None))
    app = dev.app
    smp = dev.sampler
    poll = config.SAMPLER_POLL_MS
    passes = poll // config.MAIN_LOOP_MS
    n_fused = int(wearer.n * smp.fused_hz / wearer.rate_hz)
    print("NAPE-APP start_unix_ms=%d rate_hz=%d n=%d" % (time.time_ns() // 1000000, smp.fused_hz, n_fused))
    t_real0 = time.ticks_ms()
    board_ms = 0
    frac = 0  # samples of the current ODR already pushed in this board second
    cur_odr = smp.odr_hz
    more = True
    while more:
        if speed > 0:
            if board_ms + poll > time.ticks_diff(time.ticks_ms(), t_real0) * speed:
                dev.step(board_ms)
                await asyncio.sleep_ms(2)
                continue
        elif app.backlog() > 1000:  # as fast as possible, but no faster than the link drains
            app.tick()
            await asyncio.sleep_ms(1)
            continue
        odr = smp.odr_hz
        if odr != cur_odr:  # power saver or back: the chips now sample at another rate
            cur_odr = odr
            frac = (board_ms % 1000) * odr // 1000
        # samples due in this poll period at the current ODR (exact over a second)
        k = ((board_ms % 1000 + poll) * odr) // 1000 - frac
        more = feed(wearer, chips, board_ms - board_ms % 1000, odr, k, frac)
        frac += k
        board_ms += poll
        if board_ms % 1000 == 0:
            frac = 0
        machine.Timer.step(poll)
        smp.poll(board_ms)
        for _ in range(passes):
            dev.step(board_ms)
        # with nobody streaming, leave the radio's other processes (pairing, bonding) room
        await asyncio.sleep_ms(0 if app.service.streaming else 1)
    wearer.close()
    smp.poll(board_ms)
    app.flush()
    app.service.set_source_done()
    print("NAPE-APP source_done next_seq=%d" % (store.next_seq() or 0))
    while True:
        board_ms += config.MAIN_LOOP_MS
        machine.Timer.step(config.MAIN_LOOP_MS)
        dev.step(board_ms)
        await asyncio.sleep_ms(2)


def _main(argv):
    opts = {"--speed": "1", "--flash": None, "--ram-slots": "4096", "--flash-slots": "16384",
            "--name": config.BLE_NAME, "--wearer": None, "--secrets": None}
    secure = False
    quiet = True
    i = 1
    while i < len(argv):
        if argv[i] in ("--secure", "--no-quiet-hours"):
            secure = secure or argv[i] == "--secure"
            quiet = quiet and argv[i] != "--no-quiet-hours"
            i += 1
            continue
        if argv[i] not in opts or i + 1 >= len(argv):
            raise SystemExit("unknown option or missing value: " + argv[i])
        opts[argv[i]] = argv[i + 1]
        i += 2
    if opts["--wearer"] is None:
        raise SystemExit("usage: board_app.py --wearer FILE [--speed S] [--flash PATH]")
    asyncio.run(run_board(opts["--wearer"], float(opts["--speed"]), opts["--flash"],
                          int(opts["--ram-slots"]), int(opts["--flash-slots"]), opts["--name"],
                          secure=secure, secrets_path=opts["--secrets"], quiet_hours=quiet))


if __name__ == "__main__":
    _main(sys.argv)
