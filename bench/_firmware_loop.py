"""MicroPython code of the whole-loop and heap measurements (bench/firmware_cost.py).

Kept as a string template, run by the real unix MicroPython with the firmware compiled by
mpy-cross (``-march=x64``: the viper code native, as ``-march=xtensawin`` makes it on the
board). Placeholders: %(iters)d loop iterations (one sampler poll of board time each) per round, %(rounds)d rounds, %(loops)d
Pystone loops, %(pystone)s Pystone source, %(mode)s "stream" (a central connected and
streaming, active rates), "saver" (no central: the power saver's rates, packets into the
offline buffer, no light sleep: the advertising-window loop) or "offline" (the saver as
the board runs it: ``main.run``'s passes, ``Device.idle`` light-sleeping between FIFO
batches through the machine shim, whose clock and FIFOs advance while asleep; one
iteration = one main-loop pass, its us scaled to SAMPLER_POLL_MS of board time).
"""

LOOP = r"""
import sys, gc, time, math, micropython
gc.collect()
free_start = gc.mem_free()
import machine, bluetooth, fake_i2c, fake_mpu6050, fake_icm42688
gc.collect()
free_fakes = gc.mem_free()
import main
import ble_app  # main imports it at boot; its code is module code (frozen on a plain ESP32), not data
import config
config.BLE_SECRETS_FILE = ""  # bonds in RAM: the unix port's "/" is the host's root
if "%(mode)s" == "offline":  # the day log as the board keeps it (on the unix port only when asked), from the start
    config.DAYLOG = 2
    config.DAYLOG_FILE = "%(daylog_file)s"
    config.SAVER_AFTER_S = 0
gc.collect()
free_imports = gc.mem_free()
print(sys.implementation.name)

K = 500  # template frames per IMU: 1 s at 500 Hz


@micropython.viper
def _copy(dst, src, off: int, n: int):
    d = ptr8(dst)
    s = ptr8(src)
    for i in range(n):
        d[i] = s[off + i]


class FastBus:
    # machine.I2C for the timed loop: FIFO count and FIFO data reads are served from FIFO
    # bytes recorded from the register-level fakes, with a native copy (the board's I2C
    # driver is C; this Python method call costs more CPU than it, so the figure is
    # conservative). Counts bytes and transactions for the bus-time estimate.
    def __init__(self):
        self.dev = {}
        self.nbytes = 0
        self.ntrans = 0

    def add(self, addr, tmpl, frame):
        self.dev[addr] = [tmpl, frame, 0, 0]  # FIFO bytes, frame size, position, queued frames

    def queue(self, n):
        for d in self.dev.values():
            d[3] += n

    def readfrom_mem_into(self, addr, reg, buf):
        d = self.dev[addr]
        n = len(buf)
        self.nbytes += n
        self.ntrans += 1
        if n == 2:  # FIFO count (big-endian bytes)
            c = d[3] * d[1]
            buf[0] = c >> 8
            buf[1] = c & 255
            return
        f = d[1]
        _copy(buf, d[0], d[2] * f, n)
        p = d[2] + n // f
        d[2] = p - K if p >= K else p
        d[3] -= n // f

    def writeto_mem(self, addr, reg, buf):
        self.ntrans += 1
        self.nbytes += len(buf)


bus = fake_i2c.FakeI2C()
c0 = bus.add(0x68, fake_mpu6050.FakeMPU6050())
c1 = bus.add(0x69, fake_icm42688.FakeICM42688())
machine.I2C.attach(0, bus)
machine.Timer.reset_all()
# bench scaffolding allocated before the firmware's share is measured: FIFO byte templates
tmpls = [bytearray((K + 32) * 16), bytearray((K + 32) * 16)]
fast = FastBus()
%(pystone)s
gc.collect()
free_before_boot = gc.mem_free()
if %(iters)d == 0:  # heap calibration: only what is free before boot counts (no boot needed)
    print("HEAP", free_start, free_fakes, free_imports, free_before_boot, 0, 0)
    raise SystemExit
dev = main.boot(start_timer=False, clock=machine.time_ms)
gc.collect()
free_boot = gc.mem_free()
smp = dev.sampler
app = dev.app
svc = app.service
ble = bluetooth.BLE()
print("HEAP", free_start, free_fakes, free_imports, free_before_boot, free_boot, app.store.ram_cap)
if %(iters)d == 0:  # heap calibration only
    raise SystemExit
MODE = "%(mode)s"
if MODE == "saver":  # what Device._power applies when no central is connected
    import config
    smp.set_rates(config.SAVER_RATE_HZ, config.SAVER_RAW_ODR_HZ)
if MODE == "offline":  # no central: the policy in saver from now on (Device._power applies it)
    import power
    pol = power.PowerPolicy(machine.time_ms(), saver_after_s=0)
    app.power = pol
    dev.power = pol
    dev.step(machine.time_ms())
    # the power-on pairing signal was timed on the real ticks_ms, the loop runs on the
    # shim's virtual clock: end it now (the board plays it once, awake, at power-on)
    dev.feedback.buzzer.stop()
# the wearer: nodding and turning, a walking bounce; no jolt (a steady day, not a crash)
for chip, drv, tm in ((c0, dev.trunk, tmpls[0]), (c1, dev.head, tmpls[1])):
    fr = drv._FRAME
    o = 0
    for i in range(K + 32):
        w = 2 * math.pi * (i %% K) * 0.002
        chip.push((2.0 * math.sin(w) + 0.3, 1.0 * math.cos(2 * w), 9.5 + 0.8 * math.sin(4 * w)),
                  (0.6 * math.sin(w), 0.4 * math.cos(w), 0.3 * math.sin(2 * w)))
        for j in range(fr):
            tm[o] = chip.fifo.get()
            o += 1
    fast.add(drv.addr, tm, fr)
    drv.i2c = fast
# stream: a central connects (MTU 247) and starts the stream: the board streams and sends
if MODE == "stream":
    ble._inject(1, (3, 1, b"\x00" * 6)); app.tick()
    ble._inject(21, (3, 247)); app.tick()
    # secure by default: the central bonds in the power-on window (the stack stores its keys,
    # then reports the encrypted link), as the owner's host does
    svc._irq(30, (2, b"bench-central", b"keys")); ble._inject(28, (3, True, False, True, 16)); app.tick()
    ble._inject(3, (3, svc.h_control, b"\x01")); app.tick()
now = machine.time_ms()


import config
POLL = config.SAMPLER_POLL_MS
PASSES = POLL // config.MAIN_LOOP_MS
NRAW = smp.odr_hz * POLL // 1000
print("POLL", POLL, PASSES, NRAW)
qacc = [0]


def advance(ms):
    # ms of board time: the chips fill their FIFOs at the current ODR, the clock moves
    q = qacc[0] + smp.odr_hz * ms
    n = q // 1000
    qacc[0] = q - 1000 * n
    fast.queue(n)


def offline_iteration():
    # one pass of main.run: step, then Device.idle light-sleeps (the shim's sleep_hook
    # fills the FIFOs, the clock jumps) and drains the FIFOs; in an advertising window it
    # stays awake MAIN_LOOP_MS (modem sleep) and the sampler's timer polls every POLL
    now = machine.time_ms()
    dev.step(now)
    if not dev.idle(now):
        advance(config.MAIN_LOOP_MS)
        machine.Timer.now_ms += config.MAIN_LOOP_MS
        t = machine.time_ms()
        if smp._last_poll is None or t - smp._last_poll >= POLL:
            smp.poll(t)
    ble._sent.clear()


if MODE == "offline":
    machine.sleep_hook = advance
    offline_iteration()  # apply the saver's rates (Device._power), then re-count
    NRAW = smp.odr_hz * POLL // 1000
    print("WAKE", dev.wake_ms, smp.odr_hz, smp.fused_hz)


def iteration():
    # one loop iteration: SAMPLER_POLL_MS of board time = one sampler poll (NRAW raw samples
    # per IMU) and POLL / MAIN_LOOP_MS main-loop passes (BLE tick and send, commands,
    # power, clock)
    global now
    fast.queue(NRAW)
    now += POLL
    smp.poll(now)
    for s in range(PASSES):
        dev.step(now)
    ble._sent.clear()  # the loopback radio keeps what it sent: forget it


if MODE == "offline":
    iteration = offline_iteration


def run(n):
    for i in range(n):
        iteration()


run(100)
N = %(iters)d
rounds = []
b_all = 0
s_all = 0
w_all = 0
for r in range(%(rounds)d):
    gc.collect()
    b0 = machine.time_ms()
    s0 = machine.slept_ms
    w0 = machine.lightsleeps
    t0 = time.ticks_us()
    run(N)
    us = time.ticks_diff(time.ticks_us(), t0) / N
    b = machine.time_ms() - b0
    if MODE == "offline":  # us per SAMPLER_POLL_MS of board time, as the other modes
        us = us * N * POLL / b
    b_all += b
    s_all += machine.slept_ms - s0
    w_all += machine.lightsleeps - w0
    gc.collect()
    ps = %(loops)d * 1e6 / proc0(%(loops)d)
    rounds.append((us, ps))
print("SLEEP", b_all, s_all, w_all, dev.wake_ms, smp.odr_hz, smp.fused_hz)
# allocation per iteration: the collector off, the whole iteration and the sampler alone
gc.collect()
gc.disable()
m0 = gc.mem_alloc()
run(%(alloc)d)
a_iter = (gc.mem_alloc() - m0) / %(alloc)d
a_poll = 0
a_ble = 0
gc.enable()
gc.collect()
gc.disable()
for i in range(%(alloc)d if MODE != "offline" else 0):
    fast.queue(NRAW)
    now += POLL
    m0 = gc.mem_alloc()
    smp.poll(now)
    a_poll += gc.mem_alloc() - m0
    m0 = gc.mem_alloc()
    for s in range(PASSES):
        dev.step(now)
    a_ble += gc.mem_alloc() - m0
    ble._sent.clear()
gc.enable()
gc.collect()
h = smp.health()
print("LOOP", smp.fused_samples, smp.raw_samples, svc.sent_notifications, h["overruns"],
      h["errors"], fast.nbytes, fast.ntrans, a_iter, a_poll / %(alloc)d, a_ble / %(alloc)d, gc.mem_free(),
      ' '.join('%%.3f,%%.1f' %% r for r in rounds))
"""
