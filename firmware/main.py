"""Nape board entry point (MicroPython; the board runs it at boot as ``main.py``).

Boot (``boot``):
  I2C on the config pins -> ``imu_detect.find_imus`` (trunk 0x68 required, head 0x69
  optional) at ``config.RAW_ODR_HZ`` (500 Hz on the supported chips) -> the BLE app
  (``ble_app.BleApp`` with the offline buffer ``buffer_plan`` fits in the heap: RAM ring,
  plus the flash spill file when the heap holds its index, built by ``ble_app.make_app``
  with the security settings ``config.BLE_*``: secure by default; a radio-less ``LocalSink``
  when the ``bluetooth`` module or the stack is missing, so posture alerts still work)
  -> the offline day log (``daylog.make``: sized to the free flash and heap; on the esp32
  port, ``config.DAYLOG``; what an earlier boot logged and no host confirmed is kept as the
  previous boot's and sent first on the next link) -> buzzer on the motor pin -> posture alert and buzzer after fusion
  (``feedback.Feedback`` on the app's pipeline) -> ``sampler.Sampler`` (acquisition only)
  -> a ``machine.Timer`` every ``config.SAMPLER_POLL_MS`` that schedules ``Sampler.poll``.

Data flows one way: sampler (FIFO -> scaled samples -> jolt screen) -> pipeline (fusion ->
feedback: calibration, posture alert, buzzer -> flags -> packets) -> offline buffer / BLE.
With no authorized central for ``config.SAVER_AFTER_S`` the app's day log
(``daylog.DayLog``, on the samples' clock in ``BleApp.tick``) takes the pipeline's fused
samples instead of SAMPLES packets: 10 Hz LOG packets in the same ``seq`` line, MARKS,
and the jolt windows (``Device.step`` hands them to the day log instead of the live
queue; the saver keeps the jolt screen at ``SAVER_RAW_ODR_HZ``). A central connecting
ends it; the service backfills it (protocol/SPEC.md).

Main loop (``Device.step``, every ``config.MAIN_LOOP_MS``): BLE housekeeping and
sending (``app.tick()``, which also runs the day log's offline state), EVENT windows to
the BLE service (or to the day log while it logs), CALIBRATE and SET_POSTURE
commands to the posture alert, the power-saver policy (status flag and advertising
interval; see ``_power``).

No trunk IMU: the reason is printed and the status LED blinks ``config.FAULT_BLINKS``
short flashes then a pause, forever (``fault``).

``import main`` does nothing by itself (tests boot it with fakes and an injected app).
"""

import gc
import sys
import time

import machine

import config
import imu_detect
import jolt
from buzzer import Buzzer
from feedback import Feedback
from imu_base import ImuError
from pipeline import Pipeline
from posture import PostureAlert, PostureSettings
from power import PowerPolicy, fifo_wake_ms
from sampler import Sampler


class LocalSink:
    """Fusion and batching without a radio (the packets are dropped)."""

    def __init__(self, imu_mask, rate_hz):
        self.pipeline = Pipeline(imu_mask, rate_hz, 244)

    def step(self, t_ms, acc0, gyr0, acc1=None, gyr1=None, jolt=False):
        p = self.pipeline
        p.step(t_ms, acc0, gyr0, acc1, gyr1, jolt)
        if p.outbox:
            p.outbox.clear()

    def step_wire(self, t_ms, acc0, gyr0, acc1, gyr1, w, jolt=False):
        p = self.pipeline
        p.step_wire(t_ms, acc0, gyr0, acc1, gyr1, w, jolt)
        if p.outbox:
            p.outbox.clear()

    def tick(self):
        return 0


def ram_slots(free_bytes, reserve=config.HEAP_RESERVE_BYTES, most=None):
    """Offline-buffer RAM slots that fit ``free_bytes`` of heap while leaving ``reserve``
    bytes for the running loop: at most ``most`` (None: ``config.BLE_RAM_SLOTS``), at
    least ``config.BLE_RAM_SLOTS_MIN``. A slot costs ``ble_buffer.SLOT`` + 5 bytes
    (packet, seq, count)."""
    import ble_buffer

    if most is None:
        most = config.BLE_RAM_SLOTS
    n = (free_bytes - reserve) // (ble_buffer.SLOT + 5)
    if n > most:
        n = most
    return n if n > config.BLE_RAM_SLOTS_MIN else config.BLE_RAM_SLOTS_MIN


#: heap bytes per flash slot of the spill file's index (u32 seq + u8 count)
FLASH_INDEX_BYTES = 5


def buffer_plan(free_bytes, spill=None, spill_file=None, spill_kib=None):
    """How to build the offline buffer from ``free_bytes`` of heap at boot: returns
    ``(ram_slots, spill_path or None, flash_slots, why)``, ``why`` a few words for the
    boot log.

    The spill file (``config.BLE_SPILL_FILE``, ``config.BLE_SPILL_KIB``) is used when
    ``config.BLE_SPILL`` allows it (1: on the esp32 port only; 2: any port) and the heap
    holds its index (``FLASH_INDEX_BYTES`` per flash slot) while leaving
    ``config.HEAP_RESERVE_BYTES`` and a RAM ring of ``config.BLE_RAM_SLOTS_MIN`` slots;
    the RAM ring then gets what is left (``ram_slots``). Otherwise RAM only. Arguments
    left None are read from ``config`` at call time."""
    import ble_buffer

    if spill is None:
        spill = config.BLE_SPILL
    if spill_file is None:
        spill_file = config.BLE_SPILL_FILE
    if spill_kib is None:
        spill_kib = config.BLE_SPILL_KIB
    if not spill or not spill_file or spill_kib <= 0:
        return ram_slots(free_bytes), None, 0, "spill off in config"
    if spill == 1 and sys.platform != "esp32":
        return ram_slots(free_bytes), None, 0, "no board flash on this port"
    flash = ble_buffer.spill_slots(spill_kib)
    left = free_bytes - flash * FLASH_INDEX_BYTES
    if left - config.HEAP_RESERVE_BYTES < config.BLE_RAM_SLOTS_MIN * (ble_buffer.SLOT + 5):
        return ram_slots(free_bytes), None, 0, "heap too small for the spill index"
    return ram_slots(left), spill_file, flash, "heap holds the spill index"


def _store(free_bytes):
    """The offline buffer (``ble_buffer.PacketStore``) as ``buffer_plan`` says. While the
    heap has no piece big enough: half the RAM ring, down to ``config.BLE_RAM_SLOTS_MIN``,
    then without the spill file (RAM only); RAM only too when the spill file cannot be
    opened."""
    import ble_buffer

    slots, path, flash, why = buffer_plan(free_bytes)
    print("main: %d bytes free: %s" % (free_bytes, why))
    while True:
        try:
            return ble_buffer.PacketStore(slots, path, flash)
        except OSError as e:  # no filesystem, or it is full / read-only
            if path is None:
                raise
            print("main: spill file %s unusable (%r): RAM only" % (path, e))
        except MemoryError:  # free, but not in one piece
            if slots > config.BLE_RAM_SLOTS_MIN:
                slots = max(slots // 2, config.BLE_RAM_SLOTS_MIN)
                gc.collect()
                continue
            if path is None:
                raise
            print("main: no room for the spill file's index: RAM only")
        path = None
        flash = 0
        gc.collect()
        slots = ram_slots(gc.mem_free())


def make_app(imu_mask, rate_hz):
    """``ble_app.BleApp`` with an offline buffer sized to the heap (``buffer_plan``: RAM
    ring plus the flash spill file when the heap holds its index), or a ``LocalSink``
    when BLE is not available. Prints which buffer it built and how long it holds."""
    try:
        import ble_app

        gc.collect()
        store = _store(gc.mem_free())
        app = ble_app.make_app(imu_mask, rate_hz, store=store)  # security: config.BLE_*
    except (ImportError, OSError) as e:
        print("main: no BLE (%r): alerts only" % (e,))
        return LocalSink(imu_mask, rate_hz)
    per = 5 if imu_mask == 3 else 10  # samples per packet at MTU 247
    where = "spill to %s" % (store.flash_path,) if store.flash_cap else "RAM only"
    print("main: offline buffer %d RAM + %d flash slots (%s): %d s at %d Hz" % (
        store.ram_cap, store.flash_cap, where, store.capacity() * per // rate_hz, rate_hz))
    dl_on = config.DAYLOG
    if (dl_on == 2 or (dl_on == 1 and sys.platform == "esp32")) and imu_mask in (1, 3):
        import daylog  # the offline day log, sized to the flash left

        daylog.make(app, imu_mask)
    return app


class Device:
    """The booted board: drivers, app, sampler, feedback (posture alert and buzzer),
    timer; ``step`` is one main-loop pass."""

    def __init__(self, trunk, head, app, sampler, power, timer, utc_offset_min=config.UTC_OFFSET_MIN,
                 feedback=None, clock=None):
        self.trunk = trunk
        self.head = head
        self.app = app
        self.sampler = sampler
        self.feedback = feedback if feedback is not None else Feedback()
        # one power policy: the BLE app's (it knows the link and updates it in tick()),
        # else our own (no radio: the saver engages SAVER_AFTER_S after boot)
        app_power = getattr(app, "power", None)
        self._own_power = app_power is None
        self.power = power if app_power is None else app_power
        self.timer = timer
        self.utc_offset_min = utc_offset_min
        self.rate_errors = 0
        # fused rate and requested raw ODR applied; boot runs at the active rates
        self._rate = self.power.sample_rate_hz
        self._odr = self.power.raw_odr_hz
        self._freq = None  # CPU clock set on the first pass
        self._clock_due = None  # next local-hour update (now_ms clock); None: at once
        self._svc = getattr(app, "service", None)
        self._dl = getattr(app, "daylog", None)
        self._has_cmds = hasattr(app, "calibrate_request_s")
        self._settings_version = getattr(app, "settings_version", 0)
        self.clock = clock if clock is not None else time.ticks_ms
        # light sleep between FIFO batches (power.py rule 5): the FIFO bound at the
        # current ODR, the time asleep, the sleeps, advertising stopped by us
        self.wake_ms = 0
        self.slept_ms = 0
        self.sleeps = 0
        self._adv_off = False

    def step(self, now_ms):
        """One main-loop pass (every ``config.MAIN_LOOP_MS``). Never blocks (the app only
        queues and sends); allocates nothing when there is nothing to do."""
        self.app.tick()
        buz = self.feedback.buzzer
        if buz is not None and buz.playing:  # also when sampling stalls: the motor stops
            buz.tick(now_ms)
        svc = self._svc
        if svc is not None and self.sampler.events:
            dl = self._dl
            if dl is not None and dl.logging:  # offline: jolt windows into the day log
                ev = self.sampler.events
                while ev:
                    dl.add_window(ev.pop(0))
            else:
                _forward_events(self.sampler.events, svc)
        if self._has_cmds:
            self._commands(now_ms)
        self._power(now_ms, svc)
        due = self._clock_due
        if due is None or time.ticks_diff(now_ms, due) >= 0:  # once a second: clock, status
            self._clock_due = time.ticks_add(now_ms, 1000)
            self.feedback.hour_of_day = local_hour(svc, self.utc_offset_min)
            if svc is not None:  # status: failed I2C transactions + FIFO overflows, both IMUs
                svc.imu_errors = imu_error_count(self.trunk, self.head)

    def _commands(self, now_ms):
        app = self.app
        req = app.calibrate_request_s
        if req is not None:  # CALIBRATE: neutral posture after the wearer held still
            app.calibrate_request_s = None
            self.feedback.calibrate(now_ms, int(req * 1000))
        if app.settings_version != self._settings_version:  # SET_POSTURE
            self._settings_version = app.settings_version
            s = app.settings
            old = self.feedback.posture
            new = PostureAlert(PostureSettings(threshold_deg=s["neck_limit_deg"],
                                               trunk_threshold_deg=s["trunk_limit_deg"],
                                               hold_s=s["hold_s"]))
            if old is not None:
                new.neutral_trunk_deg = old.neutral_trunk_deg
                new.neutral_head_deg = old.neutral_head_deg
            self.feedback.posture = new

    def _power(self, now_ms, svc):
        """Power policy (power.py): our own policy is updated here (the BLE app updates
        its own in ``tick``, with the advertising interval and the status flag); then the
        sample rates are applied: in saver (offline logging) the fused rate drops to
        ``SAVER_RATE_HZ`` and the IMU ODR to ``SAVER_RAW_ODR_HZ`` (jolt screening stays
        on), and a central connecting restores ``STREAM_RATE_HZ`` / ``RAW_ODR_HZ`` at
        once; the CPU clock follows the policy (``machine.freq``); the light-sleep period
        (``wake_ms``) follows the ODR (``power.fifo_wake_ms``)."""
        p = self.power
        if self._own_power:
            fu = self.sampler.sink.pipeline.fusion
            still = fu[0].rest and (len(fu) < 2 or fu[1].rest)
            p.update(now_ms, svc is not None and svc.conn is not None, still)
        f = p.cpu_freq_hz
        if f != self._freq:  # CPU clock: ACTIVE_CPU_FREQ_HZ / SAVER_CPU_FREQ_HZ
            self._freq = f
            try:
                machine.freq(f)
            except (ValueError, OSError) as e:
                print("main: machine.freq(%d) failed: %r" % (f, e))
        rate = p.sample_rate_hz
        odr = p.raw_odr_hz
        if rate == self._rate and odr == self._odr:
            return
        smp = self.sampler
        scr = smp.screen
        if scr is not None and (scr.capturing() or scr.ready()):
            return  # a jolt window is being captured: a new rate makes a new screen, so switch once it is out
        self._rate = rate
        self._odr = odr
        try:
            smp.set_rates(rate, odr)
        except (ValueError, ImuError) as e:
            self.rate_errors += 1
            print("main: rate change to %d Hz / ODR %d Hz failed: %r" % (rate, odr, e))
            return
        if svc is not None:
            svc.rate_hz = smp.fused_hz  # status characteristic
        # FIFO drains: every SAMPLER_POLL_MS, or one per light sleep (power.fifo_wake_ms)
        self.wake_ms = fifo_wake_ms((self.trunk, self.head), smp.odr_hz) if p.sleep else 0
        smp.poll_ms = self.wake_ms if p.mode != "active" and self.wake_ms else config.SAMPLER_POLL_MS

    def idle(self, now_ms):
        """Light-sleep until the next FIFO batch when the power policy allows it
        (``PowerPolicy.sleep_ms``: saver, no central, outside the advertising windows),
        never while the motor plays (its PWM stops in light sleep). Stops advertising
        for the sleep phase and restarts it when a window opens. After waking, drains
        the FIFOs at once (``machine.Timer`` stands still in light sleep; a failed poll
        is counted in the sampler's ``errors``, as a timer poll's). Returns the ms slept
        (0: the caller waits ``MAIN_LOOP_MS`` as usual)."""
        svc = self._svc
        buz = self.feedback.buzzer
        conn = svc is not None and svc.conn is not None
        ms = 0
        if not (buz is not None and buz.playing):
            ms = self.power.sleep_ms(now_ms, conn, self.wake_ms)
        if ms:
            smp = self.sampler
            last = smp._last_poll
            if last is not None:  # the FIFO has been filling since the last drain
                ms -= time.ticks_diff(now_ms, last)
                if ms < 1:
                    ms = 1
            if svc is not None and not self._adv_off:
                self._adv_off = True
                svc.ble.gap_advertise(None)
            machine.lightsleep(ms)
            self.slept_ms += ms
            self.sleeps += 1
            smp._scheduled(0)  # poll now, errors counted as for a timer poll (health())
        elif self._adv_off and svc is not None:
            self._adv_off = False
            if svc.conn is None:  # a window opens: advertise again
                svc.advertise(fast=False)
        return ms


def local_hour(svc, utc_offset_min=0):
    """Local hour of day (int 0-23) from the host's SET_TIME clock, or None before it.

    SET_TIME carries unix time in ms (UTC); the BLE service keeps ``time_offset_ms`` =
    unix ms at its boot (``_boot_ms``, ``time.ticks_ms``). Local time = UTC +
    ``utc_offset_min`` (``config.UTC_OFFSET_MIN``; the board knows no time zones or
    daylight saving). Exact for ~6 days after the last SET_TIME (``ticks_diff`` range on
    the ESP32); the host sets it on every connection.
    """
    if svc is None:
        return None
    off = getattr(svc, "time_offset_ms", None)
    if off is None:
        return None
    ms = off + time.ticks_diff(time.ticks_ms(), svc._boot_ms) + utc_offset_min * 60000
    return (ms // 3600000) % 24


def imu_error_count(*drivers):
    """IMU errors for the status characteristic: failed I2C transactions (retried or not)
    plus FIFO overflows, summed over the drivers present (None is skipped)."""
    n = 0
    for d in drivers:
        if d is not None:
            n += d.i2c_errors + d.fifo_overflows
    return n


def _forward_events(windows, svc):
    """Move EVENT packets, oldest window first, into the BLE service's queue while it has
    room (interim: until the app offers ``send_event``, which the sampler then calls)."""
    while windows:
        w = windows[0]
        while w and len(svc._events) < svc.max_events:
            svc.queue_event(w.pop(0))
        if w:
            return
        if windows and windows[0] is w:  # (a poll may have dropped it meanwhile)
            windows.pop(0)


def boot(i2c=None, app=None, buzzer=None, start_timer=True, clock=None):
    """Bring the board up; returns a ``Device``.

    Args (tests inject them; None = the board's own): ``i2c`` (machine.I2C), ``app``
    (sink with ``step``, ``tick``, ``pipeline``), ``buzzer``, ``clock`` (``() -> ms`` for
    timer-driven polls, default ``time.ticks_ms``); ``start_timer`` False leaves polling
    to the caller (``device.sampler.poll``).

    Raises:
        ImuError: no trunk IMU at 0x68, or it could not be set up.
    """
    # Collect little and often: with garbage piling up on a big (PSRAM) heap, every
    # heap-allocated frame would rescan it (see sampler.py, posture.py).
    gc.threshold(config.GC_THRESHOLD_BYTES)
    if i2c is None:
        i2c = machine.I2C(config.I2C_ID, scl=machine.Pin(config.PIN_I2C_SCL),
                          sda=machine.Pin(config.PIN_I2C_SDA), freq=config.I2C_FREQ_HZ)
    imus = imu_detect.find_imus(i2c)
    trunk = imus["trunk"]
    head = imus["head"]
    if imu_detect.head_error:
        print("main: head IMU left out:", imu_detect.head_error)
    for drv in (trunk, head):
        if drv is not None:
            drv.configure(odr_hz=config.RAW_ODR_HZ)
    mask = 3 if head is not None else 1
    # the large fixed buffers first, while the heap is in one piece: the jolt screen's
    # rings, then the offline buffer sized to what is left (make_app)
    odr = int(trunk.odr_hz + 0.5)
    screen = jolt.JoltScreen(2 if head is not None else 1, odr) if odr >= 200 else None
    if app is None:
        app = make_app(mask, config.STREAM_RATE_HZ)
    if buzzer is None:
        buzzer = Buzzer.on_pin()
    if getattr(app, "buzzer", 0) is None:  # the BLE app signals the pairing window on it
        setattr(app, "buzzer", buzzer)  # (an injected or radio-less app has no such slot)
    # after fusion: calibration, posture alert (defaults: config.POSTURE_*), buzzer
    feedback = Feedback(PostureAlert(), buzzer, config.STREAM_RATE_HZ, config.POSTURE_UPDATE_HZ)
    app.pipeline.feedback = feedback
    sampler = Sampler(trunk, head, app, fused_hz=config.STREAM_RATE_HZ,
                      poll_ms=config.SAMPLER_POLL_MS, screen=screen, clock=clock)
    timer = None
    if start_timer:
        timer = machine.Timer(config.SAMPLER_TIMER_ID, mode=machine.Timer.PERIODIC,
                              period=config.SAMPLER_POLL_MS, callback=sampler.timer_cb)
    print("main: trunk %s%s, raw %d Hz, stream %d Hz" % (
        trunk.chip, (", head " + head.chip) if head is not None else "", sampler.odr_hz,
        sampler.fused_hz))
    return Device(trunk, head, app, sampler,
                  PowerPolicy(clock() if clock is not None else time.ticks_ms()), timer,
                  feedback=feedback, clock=clock)


def fault(reason, led=None, cycles=-1, on_ms=150, pause_ms=1000):
    """Print ``reason`` and blink the status LED (FAULT_BLINKS flashes, pause) ``cycles``
    times (-1: forever). The board has nothing else to do without its trunk IMU."""
    print("main: FAULT:", reason)
    if led is None:
        led = machine.Pin(config.PIN_STATUS_LED, machine.Pin.OUT)
    on = 0 if config.STATUS_LED_ACTIVE_LOW else 1
    while cycles:
        for _ in range(config.FAULT_BLINKS):
            led.value(on)
            time.sleep_ms(on_ms)
            led.value(1 - on)
            time.sleep_ms(on_ms)
        time.sleep_ms(pause_ms)
        if cycles > 0:
            cycles -= 1


def run(dev):
    """The main loop (never returns)."""
    while True:
        now = time.ticks_ms()
        dev.step(now)
        if not dev.idle(now):  # light sleep between FIFO batches when offline
            time.sleep_ms(config.MAIN_LOOP_MS)  # scheduled polls run meanwhile


def main():
    try:
        dev = boot()
    except ImuError as e:
        fault(str(e))
        return
    run(dev)


if __name__ == "__main__":
    main()
