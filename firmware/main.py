"""Nape board entry point (MicroPython; the board runs it at boot as ``main.py``).

Boot (``boot``):
  I2C on the config pins -> ``imu_detect.find_imus`` (trunk 0x68 required, head 0x69
  optional) at ``config.RAW_ODR_HZ`` (500 Hz on the supported chips) -> the BLE app
  (``ble_app.BleApp``; a radio-less ``LocalSink`` when the ``bluetooth`` module or the
  stack is missing, so posture alerts still work) -> buzzer on the motor pin ->
  posture alert -> ``sampler.Sampler`` -> a ``machine.Timer`` every
  ``config.SAMPLER_POLL_MS`` that schedules ``Sampler.poll``.

Main loop (``Device.step``, every ``config.MAIN_LOOP_MS``): BLE housekeeping and
sending (``app.tick()``), EVENT windows to the BLE service, CALIBRATE and SET_POSTURE
commands to the posture alert, the power-saver policy (status flag and advertising
interval; see ``_power``).

No trunk IMU: the reason is printed and the status LED blinks ``config.FAULT_BLINKS``
short flashes then a pause, forever (``fault``).

``import main`` does nothing by itself (tests boot it with fakes and an injected app).
"""

import gc
import time

import machine

import config
import imu_detect
from buzzer import Buzzer
from imu_base import ImuError
from pipeline import Pipeline
from posture import PostureAlert, PostureSettings
from power import MODE_SAVER, PowerPolicy
from sampler import Sampler


class LocalSink:
    """Fusion and batching without a radio (the packets are dropped)."""

    def __init__(self, imu_mask, rate_hz):
        self.pipeline = Pipeline(imu_mask, rate_hz, 244)

    def step(self, t_ms, acc0, gyr0, acc1=None, gyr1=None):
        p = self.pipeline
        p.step(t_ms, acc0, gyr0, acc1, gyr1)
        if p.outbox:
            p.outbox.clear()

    def tick(self):
        return 0


def make_app(imu_mask, rate_hz):
    """``ble_app.BleApp``, or a ``LocalSink`` when BLE is not available."""
    try:
        import ble_app

        return ble_app.BleApp(imu_mask, rate_hz)
    except (ImportError, OSError) as e:
        print("main: no BLE (%r): alerts only" % (e,))
        return LocalSink(imu_mask, rate_hz)


class Device:
    """The booted board: drivers, app, sampler, timer; ``step`` is one main-loop pass."""

    def __init__(self, trunk, head, app, sampler, power, timer):
        self.trunk = trunk
        self.head = head
        self.app = app
        self.sampler = sampler
        self.power = power
        self.timer = timer
        s = getattr(app, "settings", None)
        self._settings = dict(s) if s is not None else None

    def step(self, now_ms):
        """One main-loop pass. Never blocks (the app only queues and sends)."""
        app = self.app
        app.tick()
        svc = getattr(app, "service", None)
        if svc is not None and self.sampler.events:
            _forward_events(self.sampler.events, svc)
        self._commands(now_ms)
        self._power(now_ms, svc)

    def _commands(self, now_ms):
        app = self.app
        req = getattr(app, "calibrate_request_s", None)
        if req is not None:  # CALIBRATE: neutral posture after the wearer held still
            app.calibrate_request_s = None
            self.sampler.calibrate(now_ms, int(req * 1000))
        s = getattr(app, "settings", None)
        if s is not None and s != self._settings:  # SET_POSTURE
            self._settings = dict(s)
            old = self.sampler.posture
            new = PostureAlert(PostureSettings(threshold_deg=s["neck_limit_deg"],
                                               trunk_threshold_deg=s["trunk_limit_deg"],
                                               hold_s=s["hold_s"]))
            if old is not None:
                new.neutral_trunk_deg = old.neutral_trunk_deg
                new.neutral_head_deg = old.neutral_head_deg
            self.sampler.posture = new

    def _power(self, now_ms, svc):
        """Power policy. Applied: the status flag and the advertising interval. Not yet:
        the saver sample rates and CPU clock (the pipeline's fusion rate is fixed at
        construction, and a lower raw ODR ends jolt screening)."""
        p = self.power
        fu = self.sampler.sink.pipeline.fusion
        if p.update(now_ms, svc is not None and svc.conn is not None, fu[0].rest) and svc is not None:
            svc.saver = p.mode == MODE_SAVER
            if svc.adv_interval_us != p.adv_interval_us:
                svc.adv_interval_us = p.adv_interval_us
                if svc.conn is None:
                    svc.advertise()


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
    if app is None:
        app = make_app(mask, config.STREAM_RATE_HZ)
    if buzzer is None:
        buzzer = Buzzer.on_pin()
    sampler = Sampler(trunk, head, app, fused_hz=config.STREAM_RATE_HZ,
                      poll_ms=config.SAMPLER_POLL_MS, posture=PostureAlert(), buzzer=buzzer,
                      posture_hz=config.POSTURE_UPDATE_HZ, clock=clock)
    timer = None
    if start_timer:
        timer = machine.Timer(config.SAMPLER_TIMER_ID, mode=machine.Timer.PERIODIC,
                              period=config.SAMPLER_POLL_MS, callback=sampler.timer_cb)
    print("main: trunk %s%s, raw %d Hz, stream %d Hz" % (
        trunk.chip, (", head " + head.chip) if head is not None else "", sampler.odr_hz,
        sampler.fused_hz))
    return Device(trunk, head, app, sampler, PowerPolicy(time.ticks_ms()), timer)


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
        dev.step(time.ticks_ms())
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
