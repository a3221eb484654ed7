"""The virtual board (host only, MicroPython): the whole firmware, fed by a simulated wearer.

``main.boot`` brings the board up exactly as on the ESP32 -- IMU detection and setup
through the real drivers, the jolt screen, the offline buffer, the BLE app, the posture
alert and buzzer after fusion, the sampler -- but on the register-level fake IMUs
(``fake_mpu6050`` trunk at 0x68, ``fake_icm42688`` head at 0x69) on a fake I2C bus, with a
buzzer whose PWM records the patterns it plays (``PatternPWM``) and the ``bluetooth`` shim
bridged to a bumble radio (``nape.ble.peripheral``).

The wearer comes from a file of the chips' own FIFO frames (``nape.ble.virtual.wearer_blob``,
format NFRM): header ``NFRM`` u8 imu_mask, f32 acc_lsb_per_g, f32 gyr_lsb_per_dps, f32
rate_hz, u32 n, u8 trunk frame bytes, u8 head frame bytes (23 bytes), then per sample the
trunk's MPU-6050 frame (accel, gyro; big-endian int16) and the head's ICM-42688-P packet 3
(header 0x68, accel, gyro, temperature, timestamp). The host made them from the simulated
wearer: resampled to the IMUs' output rate, turned into CHIP axes with the inverse of the
board's axis map (``config.TRUNK_AXIS_MAP`` / ``HEAD_AXIS_MAP``, hardware/MOUNTING.md; the
sampler undoes it) and quantised at the ranges the drivers set. At boot the chips' ranges
and FIFO setup are checked against the file (refused in one line otherwise); then each
poll hands every chip its frames in one call (``push_frames``: the chip's FIFO, overflow
rules and data registers), so the simulation costs little next to the firmware.

Pacing: ``--speed`` times real time; 0 = as fast as possible, but while a central
streams no faster than the link drains. ::

    micropython board_app.py --wearer FILE [--speed 1] [--flash PATH] [--ram-slots N]
                             [--flash-slots N] [--name Nape] [--insecure] [--secrets PATH]
                             [--owner-key PATH] [--pair-window S] [--no-quiet-hours] [--hold]
                             [--daylog PATH [--daylog-kib 4096] [--offline-after S]]
                             [--away A:B]

``--daylog``: the offline day log (firmware/daylog.py) in this file, ``--daylog-kib`` big;
it logs after ``--offline-after`` seconds of board time without a central (default
``config.SAVER_AFTER_S``).

``--away A:B``: the host is out of range from board second A to B: the board prints
``NAPE-APP away t_ms=<ms> lightsleeps=<n> mode=<power mode>`` and ``NAPE-APP back ...``
(the same fields) at those board times and the
virtual-device process takes it off the air in between (its links drop, its advertising
reaches nobody), so it runs alone and, with a day log, logs offline.

``--hold``: the wearer starts moving when a central first streams (``nape demo``: the whole
day goes out live, EVENT windows included); the board's clock waits at 0 until then.
``--no-quiet-hours``: the posture alert buzzes at any hour (tests; the board's clock is the
host's wall clock, so quiet hours would otherwise depend on when the test runs).

Prints ``NAPE-APP start_unix_ms=<ms> rate_hz=<hz> n=<fused samples>`` when sampling
starts, ``NAPE-APP buzz t_ms=<board ms> on_ms=<ms>`` per motor pulse, and ``NAPE-APP
source_done next_seq=<seq>`` when the file is exhausted, then keeps serving (backfill,
status) until killed or the radio goes away. Never flashed to a board.
"""

import json
import struct
import sys
import time

import asyncio

import ble_buffer
import daylog
import config
import fake_i2c
import fake_icm42688
import fake_mpu6050
import machine
import main
from ble_app import make_app
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


_HDR = 23


class Wearer:
    """FIFO frames from an NFRM file, read forward in blocks: ``span(i, k)`` returns
    ``(buf, off)`` with records ``i .. i + k - 1`` at ``buf[off:]`` (``rec`` bytes each:
    trunk frame, then head frame)."""

    def __init__(self, path):
        f = open(path, "rb")
        hdr = f.read(_HDR)
        if hdr is None or len(hdr) != _HDR or hdr[:4] != b"NFRM":
            raise ValueError("bad wearer file header (not NFRM)")
        (self.mask, self.acc_lsb_per_g, self.gyr_lsb_per_dps, self.rate_hz, self.n,
         self.trunk_size, self.head_size) = struct.unpack_from("<BfffIBB", hdr, 4)
        self.two = self.mask == 3
        self.rec = self.trunk_size + (self.head_size if self.two else 0)
        self._f = f
        self._buf = b""
        self._first = 0  # record index of _buf[0]

    def span(self, i, k):
        rec = self.rec
        j = i - self._first
        if j < 0 or (j + k) * rec > len(self._buf):
            self._f.seek(_HDR + i * rec)
            self._buf = self._f.read((_BLOCK if k < _BLOCK else k) * rec) or b""
            self._first = i
            j = 0
            if len(self._buf) < k * rec:
                raise EOFError("wearer file ended at record %d" % i)
        return self._buf, j * rec

    def close(self):
        self._f.close()


def boot_board(wearer, store, name=config.BLE_NAME, secure=None, secrets_path="", owner_key_path="",
               pair_window_s=None, daylog_path=None, daylog_kib=0, offline_after_s=None, board_clock=False):
    """Fake bus with the wearer's IMUs, then ``main.boot`` with the BLE app on ``store``
    (and, with ``daylog_path``, the offline day log of ``daylog_kib`` KiB, made by the
    board's own ``daylog.make``; ``offline_after_s`` None: ``config.SAVER_AFTER_S``)
    and the recording buzzer; ``board_clock``: the power policy on board time
    (``BleApp.use_clock``). Returns (device, chips, pwm)."""
    bus = fake_i2c.FakeI2C()
    chips = [bus.add(0x68, fake_mpu6050.FakeMPU6050())]
    if wearer.two:
        chips.append(bus.add(0x69, fake_icm42688.FakeICM42688()))
    machine.I2C.attach(config.I2C_ID, bus)
    machine.Timer.reset_all()
    # the board's own app construction (ble_app.make_app): the same security as main.py on a
    # board; secure None = config.BLE_SECURE, False = the development switch
    app = make_app(wearer.mask, config.STREAM_RATE_HZ, store=store, name=name, secure=secure,
                   secrets_path=secrets_path or "", owner_key_path=owner_key_path or "",
                   pair_window_s=pair_window_s)
    if board_clock:
        # the power policy on board time (the saver engages after SAVER_AFTER_S of board time
        # without a central, as on a board, however fast the simulation runs); otherwise on
        # this computer's clock, so a board sped up runs in the saver only after that much
        # real time
        app.use_clock(machine.time_ms)
    if daylog_path and daylog_kib > 0:
        dl = daylog.make(app, wearer.mask, daylog_kib, daylog_path)
        if dl is not None and offline_after_s is not None:
            dl.after_ms = int(offline_after_s * 1000)
    pwm = PatternPWM()
    dev = main.boot(app=app, buzzer=Buzzer(pwm), start_timer=False, clock=machine.time_ms)
    sizes = (wearer.trunk_size, wearer.head_size)
    for c, size in zip(chips, sizes):
        if c.acc_lsb_per_g() != wearer.acc_lsb_per_g or abs(c.gyr_lsb_per_dps() - wearer.gyr_lsb_per_dps) > 0.01:
            raise SystemExit("wearer file made for %g LSB/g, %g LSB/dps; the chips run at %g, %g"
                             % (wearer.acc_lsb_per_g, wearer.gyr_lsb_per_dps, c.acc_lsb_per_g(),
                                c.gyr_lsb_per_dps()))
        if c.check_frames() != size:
            raise SystemExit("wearer file frames of %d bytes; the %s FIFO takes %d" % (size, c.FRAME, c.check_frames()))
    return dev, chips, pwm


def feed(wearer, chips, t_ms, odr, k, start):
    """Give each chip ``k`` samples at ``odr`` Hz, the first at board time
    ``t_ms + start / odr``: each the wearer's record at that instant (the newest at or
    before it). Returns False when the file is exhausted."""
    rate = wearer.rate_hz
    idx = []
    for j in range(k):
        i = int((t_ms * odr + (start + j) * 1000) * rate / (1000 * odr) + 1e-6)
        if i >= wearer.n:
            return False
        idx.append(i)
    if not idx:
        return True
    rec = wearer.rec
    if idx[-1] - idx[0] == k - 1:  # consecutive records (the ODR is the file's rate): one call
        buf, off = wearer.span(idx[0], k)
        chips[0].push_frames(buf, off, rec, k)
        if wearer.two:
            chips[1].push_frames(buf, off + wearer.trunk_size, rec, k)
        return True
    for i in idx:  # a lower ODR (power saver): every few records
        buf, off = wearer.span(i, 1)
        chips[0].push_frames(buf, off, rec, 1)
        if wearer.two:
            chips[1].push_frames(buf, off + wearer.trunk_size, rec, 1)
    return True


class Feeder:
    """The wearer's samples into the chips as board time goes by: ``advance(ms)`` gives each
    chip what its FIFO takes in ``ms`` at the sampler's current ODR (exact over each board
    second) and moves ``board_ms``; ``more`` turns False when the file is used up. Also the
    shim's ``machine.sleep_hook``: the FIFOs fill while the board light-sleeps."""

    def __init__(self, wearer, chips, smp):
        self.wearer = wearer
        self.chips = chips
        self.smp = smp
        self.board_ms = 0
        self.frac = 0  # samples of the current ODR already pushed in this board second
        self.odr = smp.odr_hz
        self.more = True

    def advance(self, ms):
        while ms > 0 and self.more:
            odr = self.smp.odr_hz
            if odr != self.odr:  # power saver or back: the chips now sample at another rate
                self.odr = odr
                self.frac = (self.board_ms % 1000) * odr // 1000
            into = self.board_ms % 1000
            step = ms if ms < 1000 - into else 1000 - into
            k = ((into + step) * odr) // 1000 - self.frac
            self.more = feed(self.wearer, self.chips, self.board_ms - into, odr, k, self.frac)
            self.frac += k
            self.board_ms += step
            ms -= step
            if self.board_ms % 1000 == 0:
                self.frac = 0


async def run_board(path, speed=1.0, flash_path=None, ram_slots=4096, flash_slots=16384,
                    name=config.BLE_NAME, secure=None, secrets_path="", quiet_hours=True,
                    hold=False, owner_key_path="", pair_window_s=None, daylog_path=None,
                    daylog_kib=0, offline_after_s=None, away=None):
    """Virtual board main: the whole firmware on the wearer in ``path``. ``away``:
    (from_ms, to_ms) of board time when the host is out of range (announced on stdout;
    the virtual-device process takes the board off the air)."""
    wearer = Wearer(path)
    store = ble_buffer.PacketStore(ram_slots, flash_path, flash_slots)
    dev, chips, _pwm = boot_board(wearer, store, name, secure, secrets_path, owner_key_path, pair_window_s,
                                  daylog_path, daylog_kib, offline_after_s, board_clock=away is not None)
    if not quiet_hours:
        dev.feedback.posture = PostureAlert(PostureSettings(quiet_start_h=None))
    app = dev.app
    smp = dev.sampler
    poll = config.SAMPLER_POLL_MS
    passes = poll // config.MAIN_LOOP_MS
    n_fused = int(wearer.n * smp.fused_hz / wearer.rate_hz)
    print("NAPE-APP start_unix_ms=%d rate_hz=%d n=%d" % (time.time_ns() // 1000000, smp.fused_hz, n_fused))
    while hold and not app.service.streaming:  # BLE only, the wearer waits
        app.tick()
        await asyncio.sleep_ms(5)
    t_real0 = time.ticks_ms()
    feeder = Feeder(wearer, chips, smp)
    machine.sleep_hook = feeder.advance
    board_ms = 0
    more = True
    away_state = 0  # 0 before the away span, 1 in it, 2 back in range: real time until a
    back_real = 0   # central streams again (its advertising windows, 200 ms every 10 s of
    while more:     # board time, must last as long as on a board), 3 after that
        if away is not None and away_state < 2 and board_ms >= away[away_state]:
            print("NAPE-APP %s t_ms=%d lightsleeps=%d mode=%s" % ("away" if away_state == 0 else "back", board_ms,
                                                                machine.lightsleeps, dev.power.mode))
            away_state += 1
            back_real = time.ticks_ms()
            continue
        if away_state == 2:
            if app.service.streaming:
                away_state = 3
                print("NAPE-APP reconnected t_ms=%d after_ms=%d" % (board_ms, board_ms - away[1]))
            elif board_ms - away[1] + poll > time.ticks_diff(time.ticks_ms(), back_real):
                dev.step(board_ms)
                await asyncio.sleep_ms(2)
                continue
        if speed > 0:
            if board_ms + poll > time.ticks_diff(time.ticks_ms(), t_real0) * speed:
                dev.step(board_ms)
                await asyncio.sleep_ms(2)
                continue
        elif app.backlog() > 1000:  # as fast as possible, but no faster than the link drains
            app.tick()
            await asyncio.sleep_ms(1)
            continue
        feeder.advance(poll)
        board_ms = feeder.board_ms
        more = feeder.more
        machine.Timer.step(poll)
        smp.poll(board_ms)
        for _ in range(passes):
            dev.step(board_ms)
        if away is not None and more:
            # main.run's idle: in the saver with no central, light sleep between FIFO
            # batches with the advertising stopped outside its windows (the shim's
            # lightsleep moves the clock; sleep_hook feeds the chips meanwhile)
            dev.idle(board_ms)
            board_ms = feeder.board_ms
            more = feeder.more
        # with nobody streaming, leave the radio's other processes (pairing, bonding) room
        await asyncio.sleep_ms(0 if app.service.streaming else 1)
    wearer.close()
    smp.poll(board_ms)
    app.flush()
    app.service.set_source_done()
    print("NAPE-APP source_done next_seq=%d" % app.pipeline.batcher.seq)  # SAMPLES and LOG
    dl = app.daylog
    if dl is not None:
        print("DAYLOG " + json.dumps(dl.stats()))
    while True:
        board_ms += config.MAIN_LOOP_MS
        machine.Timer.step(config.MAIN_LOOP_MS)
        dev.step(board_ms)
        await asyncio.sleep_ms(2)


def _main(argv):
    opts = {"--speed": "1", "--flash": None, "--ram-slots": "4096", "--flash-slots": "16384",
            "--name": config.BLE_NAME, "--wearer": None, "--secrets": None, "--owner-key": None,
            "--pair-window": None, "--daylog": None, "--daylog-kib": "4096", "--offline-after": None,
            "--away": None}
    secure = None  # the board's config.BLE_SECURE
    quiet = True
    hold = False
    i = 1
    while i < len(argv):
        if argv[i] in ("--secure", "--insecure", "--no-quiet-hours", "--hold"):
            if argv[i] in ("--secure", "--insecure"):
                secure = argv[i] == "--secure"
            quiet = quiet and argv[i] != "--no-quiet-hours"
            hold = hold or argv[i] == "--hold"
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
                          secure=secure, secrets_path=opts["--secrets"] or "", quiet_hours=quiet,
                          hold=hold, owner_key_path=opts["--owner-key"] or "",
                          pair_window_s=None if opts["--pair-window"] is None else int(opts["--pair-window"]),
                          daylog_path=opts["--daylog"], daylog_kib=int(opts["--daylog-kib"]),
                          offline_after_s=None if opts["--offline-after"] is None else float(opts["--offline-after"]),
                          away=_span_ms(opts["--away"])))


def _span_ms(text):
    """``"A:B"`` board seconds -> (A ms, B ms), or None."""
    if not text:
        return None
    a, b = text.split(":")
    return (int(float(a) * 1000), int(float(b) * 1000))


if __name__ == "__main__":
    _main(sys.argv)
