"""firmware/posture.py (alert state machine) and firmware/buzzer.py, under MicroPython.

Orientations are made inside MicroPython from pitch (about the segment's left y axis,
forward positive) and roll angles; updates run at 100 Hz (10 ms apart).
"""

import json

import pytest

from tests.mpy import run_mpy

_PRELUDE = r"""
import sys, json, math, time, gc
import posture
print(sys.implementation.name)

def q(pitch_deg, roll_deg=0.0):
    # sensor-to-world: pitch about +y (x axis tips down = flexion), then roll about x
    p = math.radians(pitch_deg) / 2
    r = math.radians(roll_deg) / 2
    cp, sp, cr, sr = math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    return (cp * cr, cp * sr, sp * cr, -sp * sr)

def run(alert, segs, t0=0, dt=10):
    # segs: (seconds, trunk_pitch, head_pitch or None, hour or None[, trunk_roll])
    # returns buzz times (ms since t0) and the end time (ms since t0)
    t = t0
    buzz = []
    for seg in segs:
        dur, tr, hd, hr = seg[0], seg[1], seg[2], seg[3]
        roll = seg[4] if len(seg) > 4 else 0.0
        qt = q(tr, roll)
        qh = q(hd) if hd is not None else None
        for i in range(int(dur * 1000 / dt + 0.5)):
            if alert.update(t, qt, qh, hr):
                buzz.append(time.ticks_diff(t, t0))
            t = time.ticks_add(t, dt)
    return buzz

def st(a):
    return {"state": posture.STATE_NAMES[a.state], "alerts": a.alerts, "over_since": a.over_since_ms,
            "trunk": a.trunk_deg, "head": a.head_deg, "neck": a.neck_deg, "margin": a.margin_deg,
            "lying": a.lying, "quiet": a.quiet}

def out(*v):
    print(json.dumps(v))
"""


def _run(body: str) -> list:
    lines = run_mpy(_PRELUDE + body).decode().splitlines()
    assert lines[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [json.loads(x) for x in lines[1:] if x]


def test_neck_flexion_held_61_s_buzzes_once_at_60_s_and_59_s_does_not():
    rows = _run(
        r"""
a = posture.PostureAlert(posture.PostureSettings(repeat_s=0))
out(run(a, [(61, 0, 30, 12)]), st(a))
b = posture.PostureAlert(posture.PostureSettings(repeat_s=0))
out(run(b, [(59, 0, 30, 12), (30, 0, 0, 12)]), st(b))
"""
    )
    (buzz, s), (buzz59, s59) = rows
    assert buzz == [60000]  # the first update at or after 60 s of holding (updates every 10 ms)
    assert s["state"] == "alerted" and s["alerts"] == 1 and s["over_since"] == 0
    assert s["neck"] == pytest.approx(30.0, abs=1e-4) and s["trunk"] == pytest.approx(0.0, abs=1e-4)
    assert s["head"] == pytest.approx(30.0, abs=1e-4) and s["margin"] == pytest.approx(10.0, abs=1e-4)
    assert buzz59 == []
    assert s59["state"] == "ok" and s59["alerts"] == 0 and s59["over_since"] is None


def test_rearm_after_correction_then_a_new_episode_buzzes_again():
    rows = _run(
        r"""
s = posture.PostureSettings(repeat_s=0)
a = posture.PostureAlert(s)
out(run(a, [(61, 0, 30, 12), (6, 0, 0, 12), (61, 0, 30, 12)]), st(a))
# a correction shorter than rearm_s does not re-arm: no second buzz, still alerted
b = posture.PostureAlert(s)
out(run(b, [(61, 0, 30, 12), (4, 0, 0, 12), (61, 0, 30, 12)]), st(b))
# a correction only to just under the threshold (not rearm_deg below) does not re-arm
c = posture.PostureAlert(s)
out(run(c, [(61, 0, 30, 12), (10, 0, 17, 12), (61, 0, 30, 12)]), st(c))
# a glance up during the hold does not restart the minute
d = posture.PostureAlert(s)
out(run(d, [(40, 0, 30, 12), (3, 0, 0, 12), (30, 0, 30, 12)]), st(d))
# ... and the buzz waits while the wearer is corrected at the 60 s mark
e = posture.PostureAlert(s)
out(run(e, [(58, 0, 30, 12), (4, 0, 0, 12), (5, 0, 30, 12)]), st(e))
"""
    )
    assert rows[0][0] == [60000, 67000 + 60000]
    assert rows[0][1]["alerts"] == 2 and rows[0][1]["over_since"] == 67000
    assert rows[1][0] == [60000] and rows[1][1]["state"] == "alerted"
    assert rows[2][0] == [60000] and rows[2][1]["state"] == "alerted"
    assert rows[3][0] == [60000] and rows[3][1]["over_since"] == 0
    assert rows[4][0] == [62000]  # back to poor posture at 62 s: buzz on that update


def test_repeat_after_repeat_s_while_still_poor():
    rows = _run(
        r"""
a = posture.PostureAlert(posture.PostureSettings(repeat_s=120))
out(run(a, [(301, 0, 30, 12)]), st(a))
b = posture.PostureAlert()  # default repeat_s = 120
out(run(b, [(181, 0, 30, 12)]), st(b))
"""
    )
    assert rows[0][0] == [60000, 180000, 300000] and rows[0][1]["alerts"] == 3
    assert rows[1][0] == [60000, 180000]


def test_lying_down_with_the_neck_flexed_does_not_buzz():
    rows = _run(
        r"""
a = posture.PostureAlert()
out(run(a, [(200, -85, -45, 12)]), st(a))        # on the back, chin on chest
b = posture.PostureAlert()
out(run(b, [(200, 70, 110, 12)]), st(b))         # prone / face down
c = posture.PostureAlert()
out(run(c, [(200, 0, 30, 12, 80)]), st(c))       # on the side (trunk rolled 80 deg)
d = posture.PostureAlert()
out(run(d, [(61, 0, 30, 12, 50)]), st(d))        # leaning 50 deg sideways: not lying
e = posture.PostureAlert()                       # 50 s flexed, 30 s lying, 40 s flexed: timing restarts
out(run(e, [(50, 0, 30, 12), (30, -85, -55, 12), (61, 0, 30, 12)]), st(e))
"""
    )
    for buzz, s in rows[:3]:
        assert buzz == [] and s["lying"] is True and s["state"] == "ok"
    assert rows[3][0] == [60000] and rows[3][1]["lying"] is False
    assert rows[4][0] == [80000 + 60000]


def test_quiet_hours_do_not_buzz():
    rows = _run(
        r"""
for hour in (22, 23, 0, 3, 6.9, 7, 12, 21.99, None):
    a = posture.PostureAlert()
    out(hour, run(a, [(61, 0, 30, hour)]), st(a)["quiet"])
a = posture.PostureAlert(posture.PostureSettings(quiet_start_h=None))
out("off", run(a, [(61, 0, 30, 23)]))
a = posture.PostureAlert(posture.PostureSettings(quiet_start_h=13, quiet_end_h=14))
out("13-14", run(a, [(61, 0, 30, 13.5)]), run(a, [(61, 0, 30, 14)], t0=61000))
"""
    )
    quiet = {json.dumps(r[0]): (r[1], r[2]) for r in rows[:-2]}
    for h in ("22", "23", "0", "3", "6.9"):
        assert quiet[h] == ([], True), h
    for h in ("7", "12", "21.99", "null"):
        assert quiet[h] == ([60000], False), h
    assert rows[-2] == ["off", [60000]]
    assert rows[-1] == ["13-14", [], [60000]]


def test_one_imu_mode_uses_trunk_inclination():
    rows = _run(
        r"""
a = posture.PostureAlert()
out(run(a, [(61, 30, None, 12)]), st(a))
b = posture.PostureAlert()
out(run(b, [(61, 15, None, 12)]), st(b))
c = posture.PostureAlert(posture.PostureSettings(threshold_deg=5, trunk_threshold_deg=40))
out(run(c, [(61, 30, None, 12)]), st(c))  # neck threshold plays no part without a head
# with a head IMU both angles are watched: a hunched trunk with the head following buzzes
d = posture.PostureAlert()
out(run(d, [(61, 30, 30, 12)]), st(d))
e = posture.PostureAlert()
out(run(e, [(61, 0, 15, 12)]), st(e))
"""
    )
    (b1, s1), (b2, _), (b3, _), (b4, s4), (b5, _) = rows
    assert b1 == [60000] and s1["head"] is None and s1["neck"] is None
    assert s1["trunk"] == pytest.approx(30.0, abs=1e-4) and s1["margin"] == pytest.approx(10.0, abs=1e-4)
    assert b2 == [] and b3 == []
    assert b4 == [60000] and s4["neck"] == pytest.approx(0.0, abs=1e-4)
    assert b5 == []


def test_calibration_makes_angles_relative_to_the_neutral_posture():
    rows = _run(
        r"""
a = posture.PostureAlert()
a.calibrate(q(10), q(25))   # upper back leans 10 deg, head pitched 25 deg when upright
out(run(a, [(61, 10, 44.5, 12)]), st(a))    # neck flexion 19.5 relative: not over
out(run(a, [(61, 10, 51, 12)], t0=61000), st(a))   # 26: over
b = posture.PostureAlert()
b.calibrate(q(10))
out(run(b, [(61, 35, None, 12)]), st(b))  # trunk 25 relative
"""
    )
    assert rows[0][0] == [] and rows[0][1]["neck"] == pytest.approx(19.5, abs=1e-3)
    assert rows[1][0] == [60000] and rows[1][1]["neck"] == pytest.approx(26.0, abs=1e-3)
    assert rows[1][1]["trunk"] == pytest.approx(0.0, abs=1e-3)
    assert rows[2][0] == [60000] and rows[2][1]["trunk"] == pytest.approx(25.0, abs=1e-3)


def test_ticks_wraparound():
    rows = _run(
        r"""
a = posture.PostureAlert()
t0 = time.ticks_add(0, -30000)  # ticks_ms wraps 30 s into the episode
out(run(a, [(121, 0, 30, 12)], t0=t0), st(a)["alerts"])
"""
    )
    assert rows[0] == [[60000], 1]


def test_settings_validation():
    rows = _run(
        r"""
for kw in ({"hold_s": -1}, {"rearm_deg": -1}, {"lying_deg": 0}, {"repeat_s": -5}):
    try:
        posture.PostureSettings(**kw)
        out("ok")
    except ValueError:
        out("ValueError")
"""
    )
    assert rows == [["ValueError"]] * 4


def test_update_allocation_is_bounded_and_cost_does_not_grow_with_garbage():
    rows = _run(
        r"""
qt, qh = q(3), q(33)
for head in (qh, None):
    a = posture.PostureAlert()
    for i in range(100):
        a.update(i * 10, qt, head, 12)
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    i = 100
    while i < 1100:
        a.update(i * 10, qt, head, 12)
        i += 1
    used = gc.mem_alloc() - m0
    gc.enable()
    gc.collect()
    # cost of 2000 updates on a clean heap, then after ~20000 updates of garbage
    # (no collection in between on the 64 MB test heap)
    times = []
    i = 0
    while i < 24000:
        if i == 0 or i == 22000:
            t = time.ticks_us()
        a.update(20000 + i * 10, qt, head, 12)
        i += 1
        if i == 2000 or i == 24000:
            times.append(time.ticks_diff(time.ticks_us(), t) / 2000)
    out(head is not None, used / 1000, times)
"""
    )
    for two, per_update, (early, late) in rows:
        # unix port: 32 bytes per float (16 on the ESP32): 20 floats with a head IMU, 11 without
        print("head=%s: %.0f bytes/update (unix, 64-bit), %.1f us/update clean heap, %.1f us after 20000 updates"
              % (two, per_update, early, late))
        assert per_update <= (20 if two else 11) * 32 + 1  # floats x 32-byte GC blocks
        # a heap-allocated frame alive while floats are made makes every call rescan the
        # garbage (see posture.py): cost would grow ~linearly with it
        assert late < 3 * early + 5


# ------------------------------------------------------------------ buzzer

_BUZZ = r"""
import sys, json, time
import buzzer
print(sys.implementation.name)

class FakePWM:
    # records (now, duty) for every duty change; 'now' is set by the test loop
    def __init__(self):
        self.log = []
        self.now = 0
    def duty_u16(self, v):
        self.log.append((self.now, v))

class OldPWM:
    def __init__(self):
        self.log = []
        self.now = 0
    def duty(self, v):
        self.log.append((self.now, v))

def drive(b, pwm, t_from, t_to, step=1):
    t = t_from
    playing = []
    while t <= t_to:
        pwm.now = t
        playing.append(b.tick(t))
        t += step
    return playing

def out(*v):
    print(json.dumps(v))
"""


def _buzz(body: str) -> list:
    lines = run_mpy(_BUZZ + body).decode().splitlines()
    assert lines[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [json.loads(x) for x in lines[1:] if x]


def test_buzzer_pattern_timing_with_a_fake_pwm():
    rows = _buzz(
        r"""
pwm = FakePWM()
b = buzzer.Buzzer(pwm, duty_pct=75)
pwm.now = 1000
b.play(1000, ((100, 50), (100, 400)))
playing = drive(b, pwm, 1001, 2000)
out(pwm.log, playing.index(False) + 1001, b.playing, b.on, b.played)
# default pattern from config: ALERT_PULSES x (ALERT_PULSE_MS on, ALERT_GAP_MS off)
import config
pwm = FakePWM()
b = buzzer.Buzzer(pwm)
pwm.now = 0
b.play(0)
drive(b, pwm, 0, 3000, step=10)
out(pwm.log, [config.ALERT_PULSES, config.ALERT_PULSE_MS, config.ALERT_GAP_MS, config.MOTOR_DUTY_PCT])
"""
    )
    log, end, playing, on, played = rows[0]
    on75 = 75 * 65535 // 100
    assert log == [[0, 0], [1000, on75], [1100, 0], [1150, on75], [1250, 0]]
    assert end == 1650 and playing is False and on is False and played == 1
    log, (pulses, pulse_ms, gap_ms, pct) = rows[1]
    on_duty = pct * 65535 // 100
    want = [[0, 0]]
    t = 0
    for _ in range(pulses):
        want += [[t, on_duty], [t + pulse_ms, 0]]
        t += pulse_ms + gap_ms
    assert log == want


def test_buzzer_late_ticks_stop_and_old_duty_api():
    rows = _buzz(
        r"""
pwm = FakePWM()
b = buzzer.Buzzer(pwm, duty_pct=100)
pwm.now = 0
b.play(0, ((100, 100), (100, 100), (100, 100)))
drive(b, pwm, 0, 1000, step=250)      # ticks at 0, 250, 500, ...: phases are skipped, no drift
out(pwm.log)
pwm = FakePWM()
b = buzzer.Buzzer(pwm, duty_pct=50)
pwm.now = 5
b.play(5, ((1000, 0),))
pwm.now = 200
b.stop()
out(pwm.log, b.playing, b.tick(300))
old = OldPWM()
b = buzzer.Buzzer(old, duty_pct=60)
old.now = 0
b.play(0, ((30, 0),))
drive(b, old, 0, 100)
out(old.log)
import machine
b = buzzer.Buzzer.on_pin()
b.play(0)
out(b._pwm.freq(), b._pwm.duty_u16(), b.tick(10))
"""
    )
    # on 0-100, off 100-200, on 200-300, off 300-400, on 400-500, off 500-600
    # ticks at 0 (on), 250 (on: 2nd pulse), 500 (off: 3rd pulse ended), 750 (done)
    assert rows[0][0] == [[0, 0], [0, 65535], [500, 0]]
    assert rows[1] == [[[0, 0], [5, 32767], [200, 0]], False, False]
    assert rows[2][0] == [[0, 0], [0, 613], [30, 0]]
    assert rows[3] == [20000, 75 * 65535 // 100, True]
