"""firmware/power.py (power-saver policy), run by the real MicroPython interpreter."""

import json
import random

import pytest

from tests.mpy import run_mpy

# The settings the policy must use by default (firmware/config.py, hardware/POWER.md).
SAVER_AFTER_S = 60
STILL_AFTER_S = 60
ACTIVE = {"mode": "active", "rate": 100, "odr": 400, "adv": 100000, "cpu": 160000000, "head_lp": False}
# saver (offline logging): 50 Hz fused (the lowest rate the fusion runs at that both IMU
# families offer) from 200 Hz raw (jolt screening on); advertising in short windows every
# OFFLINE_ADV_INTERVAL_US (40 ms); the head IMU keeps 6-axis fusion
SAVER = {"mode": "saver", "rate": 50, "odr": 200, "adv": 40000, "cpu": 240000000, "head_lp": False}
SAVER_STILL = dict(SAVER, rate=40)  # with still_rate_hz=40 (the default equals SAVER)

_PRELUDE = r"""
import sys, json, time
import power
print(sys.implementation.name)
def st(p):
    return {"mode": p.mode, "rate": p.sample_rate_hz, "odr": p.raw_odr_hz,
            "adv": p.adv_interval_us, "cpu": p.cpu_freq_hz, "head_lp": p.head_low_power}
"""


def _run(body: str, stdin: bytes = b"") -> list:
    out = run_mpy(_PRELUDE + body, stdin=stdin).decode().splitlines()
    assert out[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [json.loads(line) for line in out[1:] if line]


def test_defaults_come_from_config_and_saver_engages_at_exactly_saver_after_s():
    rows = _run(
        r"""
p = power.PowerPolicy(0)
print(json.dumps(st(p)))
print(json.dumps(p.seconds_to_saver(1500)))
print(json.dumps([p.update(59999, False, False), st(p)]))
print(json.dumps([p.update(60000, False, False), st(p)]))
print(json.dumps([p.update(60100, False, False), st(p), p.transitions]))
"""
    )
    assert rows[0] == ACTIVE
    assert rows[1] == pytest.approx(SAVER_AFTER_S - 1.5)
    assert rows[2] == [False, ACTIVE]  # 1 ms short of the limit: nothing changes
    assert rows[3] == [True, SAVER]
    assert rows[4] == [False, SAVER, 1]


def test_central_connect_leaves_saver_immediately_and_disconnect_restarts_the_timer():
    rows = _run(
        r"""
p = power.PowerPolicy(0)
p.update(70000, False, False)
print(json.dumps(st(p)))
print(json.dumps([p.update(70001, True, False), st(p)]))      # central connects
print(json.dumps([p.update(500000, True, True), st(p)]))      # long session, wearer still
print(json.dumps(p.seconds_to_saver(500000)))
p.update(500010, False, False)                                # central leaves at 500.010 s
print(json.dumps([p.update(560009, False, False), st(p)]))    # 59.999 s later: still active
print(json.dumps([p.update(560010, False, False), st(p), p.transitions]))
"""
    )
    assert rows[0] == SAVER
    assert rows[1] == [True, ACTIVE]
    assert rows[2] == [False, ACTIVE]  # stillness has no effect while a central listens
    assert rows[3] == -1  # never, while connected
    assert rows[4] == [False, ACTIVE]
    assert rows[5] == [True, SAVER, 3]


def test_stillness_lowers_the_saver_rate_and_motion_restores_it_at_once():
    rows = _run(
        r"""
p = power.PowerPolicy(0, still_rate_hz=40)
p.update(60000, False, False)
out = [st(p)]
p.update(61000, False, True)               # still from 61 s
p.update(120999, False, True); out.append(st(p))
p.update(121000, False, True); out.append(st(p))
p.update(121050, False, False); out.append(st(p))   # one moving sample
p.update(121100, False, True); out.append(st(p))    # still again: timer restarts
p.update(181100, False, True); out.append(st(p))
p.update(181200, True, True); out.append(st(p))     # central: full rate even if still
print(json.dumps(out))
"""
    )[0]
    assert rows == [SAVER, SAVER, SAVER_STILL, SAVER, SAVER, SAVER_STILL, ACTIVE]


def test_disabled_saver_never_engages_and_zero_delay_engages_at_boot():
    rows = _run(
        r"""
p = power.PowerPolicy(0, enabled=0)
p.update(10 * 3600 * 1000, False, True)
print(json.dumps([st(p), p.seconds_to_saver(0), p.transitions]))
q = power.PowerPolicy(5, saver_after_s=0)
print(json.dumps([st(q), q.transitions]))
"""
    )
    assert rows[0] == [ACTIVE, -1, 0]
    assert rows[1] == [SAVER, 1]


def test_tick_wraparound_is_handled_with_ticks_diff():
    rows = _run(
        r"""
t0 = time.ticks_add(0, -30000)      # 30 s before the tick counter wraps
p = power.PowerPolicy(t0)
p.update(time.ticks_add(t0, 59999), False, False); a = st(p)
p.update(time.ticks_add(t0, 60000), False, False); b = st(p)
print(json.dumps([a, b, time.ticks_add(t0, 60000) < t0]))
"""
    )
    a, b, wrapped = rows[0]
    assert wrapped is True  # the raw tick value really did wrap
    assert a == ACTIVE and b == SAVER


def test_invalid_settings_raise_value_error():
    rows = _run(
        r"""
res = []
for kw in ({"saver_after_s": -1}, {"still_after_s": -5}, {"saver_rate_hz": 0}, {"still_rate_hz": -3}):
    try:
        power.PowerPolicy(0, **kw)
        res.append("no error")
    except ValueError:
        res.append("ValueError")
print(json.dumps(res))
"""
    )
    assert rows[0] == ["ValueError"] * 4


def _reference(events, saver_after_ms=SAVER_AFTER_S * 1000, still_after_ms=STILL_AFTER_S * 1000):
    """Independent CPython model of the rules in firmware/power.py's docstring."""
    out = []
    no_central_since, still_since, mode = 0, None, "active"
    for t, central, still in events:
        still_since = (t if still_since is None else still_since) if still else None
        if central:
            no_central_since, mode = None, "active"
        else:
            if no_central_since is None:
                no_central_since = t
            if mode == "active" and t - no_central_since >= saver_after_ms:
                mode = "saver"
        if mode == "active":
            out.append(ACTIVE)
        elif still_since is not None and t - still_since >= still_after_ms:
            out.append(SAVER_STILL)
        else:
            out.append(SAVER)
    return out


def test_random_timeline_matches_an_independent_reference():
    rng = random.Random(8)
    events, t, central, still = [], 0, False, False
    for _ in range(3000):  # ~64 simulated minutes in irregular steps
        t += rng.choice((20, 100, 500, 1000, 5000))
        if rng.random() < 0.008:
            central = not central
        if rng.random() < 0.01:
            still = not still
        events.append((t, central, still))
    rows = _run(
        r"""
ev = json.loads(sys.stdin.read())
p = power.PowerPolicy(0, still_rate_hz=40)
res = []
for t, c, s in ev:
    p.update(t, c, s)
    res.append(st(p))
print(json.dumps(res))
""",
        stdin=json.dumps(events).encode(),
    )[0]
    expected = _reference(events)
    assert len(rows) == len(expected)
    assert {r["mode"] for r in rows} == {"active", "saver"}  # the timeline exercises both
    assert any(r == SAVER_STILL for r in rows)
    for i, (got, want) in enumerate(zip(rows, expected)):
        assert got == want, (i, events[i], got, want)


# --- light sleep between FIFO batches (main.Device.idle), on the register-level fakes ----

_SLEEP_HARNESS = r"""
import sys, json, math, time
import machine, fake_i2c, fake_mpu6050, fake_icm42688, bluetooth
import main, pipeline, power, config
print(sys.implementation.name)
cfg = json.loads(sys.stdin.read())
config.BLE_SECRETS_FILE = ""
bus = fake_i2c.FakeI2C()
chips = [bus.add(0x68, fake_mpu6050.FakeMPU6050()), bus.add(0x69, fake_icm42688.FakeICM42688())]
machine.I2C.attach(0, bus)
machine.Timer.reset_all()
ADV = []  # ("on" | "off", board ms)


class Radio:
    def gap_advertise(self, interval, adv_data=None, resp_data=None):
        ADV.append(("off" if interval is None else "on", machine.time_ms()))


class Svc:
    # what Device reads from the BLE service: link, status, events, advertising
    def __init__(self):
        self.conn = None
        self.rate_hz = 100
        self.imu_errors = 0
        self._events = []
        self.max_events = 16
        self.time_offset_ms = None
        self._boot_ms = 0
        self.ble = Radio()

    def queue_event(self, p):
        self._events.append(p)

    def advertise(self, fast=False):
        self.ble.gap_advertise(config.OFFLINE_ADV_INTERVAL_US)


class App:  # radio-less: fusion and packets (dropped); Device runs its own power policy
    def __init__(self):
        self.pipeline = pipeline.Pipeline(3, 100, 244, fragment=False)
        self.service = Svc()

    def step_wire(self, t, a0, g0, a1, g1, w, jolt=False):
        self.pipeline.step_wire(t, a0, g0, a1, g1, w, jolt)
        self.pipeline.outbox.clear()

    def flush(self):
        self.pipeline.flush()
        self.pipeline.outbox.clear()

    def tick(self):
        return 0


acc = [0, 0]
t_sim = [0]


def world(ms):
    # the wearer for ms of board time: each chip samples at its own ODR (slow nodding)
    for i in range(2):
        c = chips[i]
        acc[i] += ms * int(dev.sampler.odr_hz)
        n = acc[i] // 1000
        acc[i] -= n * 1000
        for k in range(n):
            t_sim[0] += 1
            w = 0.002 * t_sim[0]
            c.push((1.5 * math.sin(w), 0.3, 9.6), (0.2 * math.cos(w), 0.0, 0.1))


dev = main.boot(app=App(), clock=machine.time_ms, start_timer=False)
dev.power = power.PowerPolicy(machine.time_ms(), saver_after_s=cfg["saver_after_s"])
dev._own_power = True
dev.feedback.buzzer.stop()
machine.sleep_hook = world
svc = dev.app.service
smp = dev.sampler
out = {"phases": []}
end = cfg["end_ms"]
wake_set = False
saver_wake = 0
while machine.time_ms() < end:
    now = machine.time_ms()
    if cfg.get("connect_at_ms") is not None and now >= cfg["connect_at_ms"] and svc.conn is None \
            and (not ADV or ADV[-1][0] == "on"):  # a scanning central connects while it advertises
        svc.conn = 1
    dev.step(now)
    if cfg.get("wake_ms") and dev.wake_ms and not wake_set:  # a sleep longer than the FIFO holds
        wake_set = True
        fifo_wake = dev.wake_ms
    if wake_set:
        dev.wake_ms = cfg["wake_ms"]
    if dev.power.mode == "saver" and not wake_set:
        saver_wake = dev.wake_ms
    ms = dev.idle(now)
    ph = (dev.power.mode, "sleep" if ms else "awake", smp.odr_hz)
    if not out["phases"] or out["phases"][-1][1:] != list(ph):
        out["phases"].append([now] + list(ph))
    if not ms:  # awake: the main loop's pass period; the sampler's timer polls
        world(config.MAIN_LOOP_MS)
        machine.Timer.now_ms += config.MAIN_LOOP_MS
        if smp._last_poll is None or machine.time_ms() - smp._last_poll >= smp.poll_ms:
            smp.poll(machine.time_ms())
h = smp.health()
out.update({"sleeps": machine.lightsleeps, "slept_ms": machine.slept_ms,
            "longest": max([s[1] for s in machine.sleeps] or [0]),
            "wake_ms": fifo_wake if wake_set else saver_wake, "overflows": h["fifo_overflows"],
            "late": h["late_polls"], "gaps": h["gaps"], "fused": h["fused_samples"], "errors": h["errors"],
            "adv": ADV, "fifo_frames": [dev.trunk.fifo_frames, dev.head.fifo_frames],
            "max_fill": [c.fifo.room() for c in chips]})
print(json.dumps(out))
"""


def _sleep_run(cfg: dict) -> dict:
    from tests.firmware.test_sampler import FAKES

    lines = run_mpy(_SLEEP_HARNESS, stdin=json.dumps(cfg).encode(), extra_path=[FAKES], timeout=300).decode().splitlines()
    assert lines[0] == "micropython", "the test must run under MicroPython, not CPython"
    return json.loads(lines[-1])


def test_light_sleep_only_offline_fifo_never_overflows_and_a_central_ends_it():
    out = _sleep_run({"saver_after_s": 2, "end_ms": 30000, "connect_at_ms": 17000})
    modes = [(p[1], p[2]) for p in out["phases"]]
    # active (no sleep) -> saver: advertising windows (awake) and light sleep alternate ->
    # a central connects: active, awake for good
    assert modes[0] == ("active", "awake")
    assert ("saver", "sleep") in modes and ("saver", "awake") in modes
    assert modes[-1] == ("active", "awake")
    assert all(p[2] == "awake" for p in out["phases"] if p[1] == "active")
    t_saver = next(p[0] for p in out["phases"] if p[1] == "saver")
    t_back = next(p[0] for p in out["phases"] if p[1] == "active" and p[0] > t_saver)
    # the central (scanning from 17 s) gets in at the next advertising window: within
    # OFFLINE_ADV_EVERY_S (windows every 10 s from entering the saver)
    assert 2000 <= t_saver <= 2040 and 17000 < t_back <= 17000 + 10000 + 40
    assert (t_back - t_saver) % 10000 <= 40 + 200  # inside a window (OFFLINE_ADV_WINDOW_MS)
    assert [p[3] for p in out["phases"] if p[1] == "saver"] == [200] * len([p for p in out["phases"] if p[1] == "saver"])
    # the wake period: 75 % of the smaller FIFO (MPU-6050: 1024 B / 12 B = 85 frames) at 200 Hz
    assert out["fifo_frames"] == [85, 128]
    assert out["wake_ms"] == 85 * 1000 * 75 // 100 // 200 == 318
    assert 0 < out["longest"] <= out["wake_ms"]
    # most of the offline time asleep (advertising windows: 200 ms every 10 s awake)
    offline_ms = t_back - t_saver
    assert out["slept_ms"] > 0.9 * offline_ms and out["sleeps"] >= offline_ms / out["wake_ms"] * 0.9
    # nothing lost: no overflow, no gap, no late poll; every fused sample produced
    assert out["overflows"] == 0 and out["gaps"] == 0 and out["late"] == 0 and out["errors"] == 0
    assert abs(out["fused"] - (100 * t_saver + 50 * offline_ms + 100 * (30000 - t_back)) / 1000) <= 12
    # advertising stopped for each sleep phase and restarted in each window
    adv = out["adv"]
    assert adv[0][0] == "off" and all(a[0] != b[0] for a, b in zip(adv, adv[1:]))
    ons = [t for k, t in adv if k == "on"]
    assert len(ons) >= 2 and all(9900 <= b - a <= 10100 for a, b in zip(ons, ons[1:]))


def test_a_sleep_longer_than_the_fifo_holds_overflows_the_fakes():
    """The negative control of the wake period: 700 ms at 200 Hz is 140 samples, more than
    the MPU-6050's 85 frames and the ICM-42688-P's 128: the fakes overflow, the sampler sees it."""
    out = _sleep_run({"saver_after_s": 1, "end_ms": 8000, "wake_ms": 700})
    assert out["wake_ms"] == 318 and out["longest"] > 318
    assert out["overflows"] > 0
    t_saver = next(p[0] for p in out["phases"] if p[1] == "saver")
    assert out["fused"] < (100 * t_saver + 50 * (8000 - t_saver)) / 1000 - 20  # samples lost


def test_sleep_ms_follows_the_advertising_windows():
    rows = _run(
        r"""
p = power.PowerPolicy(0, saver_after_s=1, adv_every_s=10, adv_window_ms=300)
res = [p.sleep_ms(500, False, 300)]                 # active: never
p.update(1000, False, False)                        # saver from 1 s: windows at 1, 11, 21 s
res += [p.sleep_ms(1000, False, 300), p.adv_window]   # window open
res += [p.sleep_ms(1299, False, 300), p.sleep_ms(1300, False, 300), p.adv_window]
res += [p.sleep_ms(10900, False, 300)]              # cut at the next window (11 s)
res += [p.sleep_ms(11000, False, 300), p.sleep_ms(12000, True, 300)]  # window; a central
q = power.PowerPolicy(0, saver_after_s=0, sleep=0)
res += [q.sleep_ms(5000, False, 300), q.mode, q.cpu_freq_hz, q.adv_interval_us]
print(json.dumps(res))
"""
    )[0]
    assert rows == [0, 0, True, 0, 300, False, 100, 0, 0, 0, "saver", 80000000, 1022500]


def test_fifo_wake_ms_per_chip():
    rows = _run(
        r"""
class D:
    def __init__(self, frames):
        self.fifo_frames = frames
print(json.dumps([power.fifo_wake_ms([D(128)], 200), power.fifo_wake_ms([D(85), None, D(128)], 200),
                  power.fifo_wake_ms([D(42)], 200), power.fifo_wake_ms([D(128)], 50),
                  power.fifo_wake_ms([D(128)], 500)]))
"""
    )[0]
    # ICM-42688-P 480 ms, MPU-6050 318 ms, MPU-6500 157 ms at 200 Hz; capped at SLEEP_MAX_MS
    assert rows == [480, 318, 157, 1000, 192]
