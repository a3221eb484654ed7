"""firmware/jolt.py (raw-rate jolt screen), run by the real MicroPython interpreter.

Signals are made here with numpy (int16, wire units: mg and 0.1 deg/s), piped to
MicroPython, pushed sample by sample; the EVENT packets come back as hex and are decoded
with the host decoder (nape.wire) to check them end to end.
"""

import json

import numpy as np
import pytest

from nape import wire as hw
from tests.mpy import run_mpy

RATE = 400

# stdin: one JSON line (config), then int16 samples (n x 6 x imu_count, EVENT layout).
_DRIVER = r"""
import sys, json, gc, time, binascii
from array import array
import jolt, wire
print(sys.implementation.name)
raw = sys.stdin.buffer.read()
nl = raw.index(b"\n")
cfg = json.loads(raw[:nl])
data = array("h", raw[nl + 1:])
n_imu = cfg["imu_count"]
st = 6 * n_imu
n = len(data) // st
rate = cfg.get("rate", 400)
scr = jolt.JoltScreen(n_imu, rate, **cfg.get("kw", {}))
mvl = cfg.get("mvl", 244)
frag = wire.Fragmenter(mvl) if cfg.get("fragment") else None
take_after = cfg.get("take_after", 0)  # take windows only from this sample on
at, gt, ah, gh = array("h", [0] * 3), array("h", [0] * 3), array("h", [0] * 3), array("h", [0] * 3)
trig = []
events = []
for i in range(n):
    j = i * st
    for k in range(3):
        at[k] = data[j + k]
        gt[k] = data[j + 3 + k]
    if n_imu == 2:
        for k in range(3):
            ah[k] = data[j + 6 + k]
            gh[k] = data[j + 9 + k]
        r = scr.push(i * 1000 // rate, at, gt, ah, gh)
    else:
        r = scr.push(i * 1000 // rate, at, gt)
    if r:
        trig.append(i)
    if scr.ready() and i >= take_after:
        pk = scr.event_packets(mvl)
        if frag is not None:
            vals = []
            for p in pk:
                vals.extend(frag.split(p))
            pk = vals
        events.append([binascii.hexlify(p).decode() for p in pk])
print(json.dumps({"trig": trig, "events": events, "triggers": scr.triggers,
                  "sent": scr.windows_sent, "dropped": scr.windows_dropped,
                  "ready": scr.ready(), "pre": scr.pre, "post": scr.post}))
"""


def _run(samples: np.ndarray, **cfg) -> dict:
    """samples: (n, imu_count, 6) int16 in EVENT layout (acc mg, gyr 0.1 dps)."""
    samples = np.asarray(samples)
    cfg["imu_count"] = samples.shape[1]
    stdin = json.dumps(cfg).encode() + b"\n" + samples.astype("<i2").tobytes()
    out = run_mpy(_DRIVER, stdin=stdin).decode().splitlines()
    assert out[0] == "micropython", "the test must run under MicroPython, not CPython"
    return json.loads(out[1])


def _rest(seconds: float, imu_count: int = 1, seed: int = 1, noise_mg: int = 3) -> np.ndarray:
    """Still wearer: 1 g on z, +-noise_mg on every axis, gyro +-0.5 deg/s noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    s = np.zeros((n, imu_count, 6))
    s[:, :, 2] = 1000
    s[:, :, 0:3] += rng.integers(-noise_mg, noise_mg + 1, size=(n, imu_count, 3))
    s[:, :, 3:6] += rng.integers(-5, 6, size=(n, imu_count, 3))
    return s


def _half_sine(s: np.ndarray, start: int, peak_mg: float, axis: int = 0, dur_s: float = 0.1, imu: int = 0):
    """Add a half-sine pulse of ``peak_mg`` on ``axis``, from sample ``start``; returns it."""
    n = int(round(dur_s * RATE))
    pulse = peak_mg * np.sin(np.pi * np.arange(n) / n)
    s[start : start + n, imu, axis] += pulse
    return pulse


def _i16(s: np.ndarray) -> np.ndarray:
    return np.clip(np.round(s), -32768, 32767).astype(np.int16)


def _decode_window(hexes: list[str]):
    """Decode EVENT packets with the host decoder; return (packets, (total, n_imu, 6) ints)."""
    pkts = [hw.decode_packet(bytes.fromhex(h)) for h in hexes]
    p0 = pkts[0]
    total, n_imu = p0.total, len(p0.roles)
    out = np.full((total, n_imu, 6), np.nan)
    for p in pkts:
        assert isinstance(p, hw.EventPacket)
        for f in ("event_id", "total", "pre_trigger", "rate_hz", "trigger_t_ms", "imu_mask"):
            assert getattr(p, f) == getattr(p0, f)
        out[p.first_index : p.first_index + p.count, :, 0:3] = p.acc / hw.ACC_LSB_MS2
        out[p.first_index : p.first_index + p.count, :, 3:6] = p.gyr / hw.GYR_LSB_RADS
    assert not np.isnan(out).any(), "window has holes"
    out = np.round(out, 6)  # m/s^2 and rad/s back to LSBs: float noise only
    assert [p.first_index for p in pkts] == sorted(p.first_index for p in pkts)
    return pkts, out


def test_half_sine_jolt_triggers_once_at_the_crossing_and_the_window_holds_it():
    s = _rest(8.0)
    start = 1600
    pulse = _half_sine(s, start, 1200.0)  # 1.2 g, 100 ms, forward (x)
    expected = start + int(np.argmax(pulse > 350))  # first sample above 0.35 g
    s = _i16(s)
    r = _run(s)
    assert r["trig"] == [expected]
    assert r["triggers"] == 1 and r["sent"] == 1 and r["dropped"] == 0
    assert r["pre"] == 100 and r["post"] == 200  # 0.25 s and 0.5 s at 400 Hz
    assert len(r["events"]) == 1
    pkts, win = _decode_window(r["events"][0])
    p0 = pkts[0]
    assert p0.event_id == 0 and p0.rate_hz == RATE and p0.imu_mask == 1
    assert p0.total == 100 + 1 + 200 and p0.pre_trigger == 100
    assert p0.trigger_t_ms == expected * 1000 // RATE
    np.testing.assert_allclose(win, s[expected - 100 : expected + 201], atol=1.0)
    peak = start + int(np.argmax(pulse))
    assert np.argmax(win[:, 0, 0]) == peak - (expected - 100)  # the peak is inside
    assert win[:, 0, 0].max() >= 1195


def test_walking_and_bending_do_not_trigger_but_horizontal_braking_does():
    t = np.arange(int(30 * RATE)) / RATE
    walk = _rest(30.0, seed=2)
    walk[:, 0, 2] += 250 * np.sin(2 * np.pi * 2.0 * t)  # 2 Hz, +-0.25 g vertical
    assert _run(_i16(walk))["triggers"] == 0

    # bend forward 60 deg in 0.5 s (smooth), hold 2 s, come back: gravity turns in the
    # sensor frame by up to 0.87 g, the gyro says it is rotation, so no jolt.
    rest = _rest(6.0, seed=3)
    n = len(rest)
    th = np.zeros(n)
    ramp = 0.5 * (1 - np.cos(np.pi * np.arange(200) / 200))  # 0 -> 1 over 0.5 s
    th[800:1000] = ramp
    th[1000:1800] = 1.0
    th[1800:2000] = 1.0 - ramp
    th *= np.radians(60)
    w = np.gradient(th) * RATE  # rad/s about +y (flexion)
    rest[:, 0, 0] += -1000 * np.sin(th)
    rest[:, 0, 2] += 1000 * np.cos(th) - 1000
    rest[:, 0, 4] += np.degrees(w) * 10
    assert np.abs(rest[:, 0, 4]).max() > 1000  # up to ~190 deg/s: a brisk bend
    assert _run(_i16(rest))["triggers"] == 0

    # the same bend with the gyro hidden would look like a jolt: the check is real
    blind = rest.copy()
    blind[:, 0, 3:6] = 0
    assert _run(_i16(blind))["triggers"] >= 1

    # braking at 0.4 g (onset 100 ms, held 2 s): |a| only grows by 77 mg, still triggers
    brake = _rest(6.0, seed=4)
    onset = 0.5 * (1 - np.cos(np.pi * np.arange(40) / 40))
    prof = np.zeros(len(brake))
    prof[1200:1240] = onset
    prof[1240:2040] = 1.0
    prof[2040:2080] = 1.0 - onset
    brake[:, 0, 0] += -400 * prof
    r = _run(_i16(brake))
    assert r["triggers"] == 1
    assert 1200 < r["trig"][0] < 1240


def test_refractory_and_triggers_during_capture_extend_nothing():
    s = _rest(8.0, seed=5)
    _half_sine(s, 1000, 1200.0)
    _half_sine(s, 1120, 900.0, axis=2)  # 0.3 s later: during the capture
    _half_sine(s, 1320, 900.0, axis=1)  # 0.8 s later: capture over, refractory not
    _half_sine(s, 1600, 900.0, axis=1)  # 1.5 s later: a new jolt
    r = _run(_i16(s), kw={"refractory_s": 1.0})
    assert r["triggers"] == 2 and len(r["trig"]) == 2
    assert 1000 < r["trig"][0] < 1010 and 1600 < r["trig"][1] < 1610
    assert [len(e) > 0 for e in r["events"]] == [True, True]
    w1 = _decode_window(r["events"][0])[0][0]
    assert w1.total == 301  # not extended by the second pulse
    assert [_decode_window(e)[0][0].event_id for e in r["events"]] == [0, 1]


def test_start_tilted_and_a_jolt_soon_after_start_give_a_short_pre_trigger():
    s = _rest(2.0, seed=9)
    s[:, 0, 0:3] = s[:, 0, [2, 1, 0]]  # lying on the side: gravity on x from the first sample
    _half_sine(s, 20, 1200.0, axis=1)
    s = _i16(s)
    r = _run(s)
    assert r["triggers"] == 1 and 20 < r["trig"][0] < 30
    pkts, win = _decode_window(r["events"][0])
    trig = r["trig"][0]
    assert pkts[0].pre_trigger == trig and pkts[0].total == trig + 1 + 200  # only trig samples existed
    np.testing.assert_array_equal(win, s[: trig + 201])


def test_trigger_while_a_window_is_pending_is_dropped():
    s = _rest(10.0, seed=6)
    for start in (800, 2000, 3200):
        _half_sine(s, start, 1200.0)
    # nobody takes the first window until sample 2800: the second trigger is dropped
    r = _run(_i16(s), take_after=2800)
    assert r["triggers"] == 3
    assert r["dropped"] == 1
    assert r["sent"] == 2
    assert len(r["trig"]) == 2 and 800 < r["trig"][0] < 810 and 3200 < r["trig"][1] < 3210
    ids = [_decode_window(e)[0][0].event_id for e in r["events"]]
    assert ids == [0, 2]  # the dropped trigger used event_id 1: the host sees the gap


@pytest.mark.parametrize("imu_count, mvl, fragment", [(1, 244, False), (2, 244, False), (2, 20, True), (2, 100, True)])
def test_event_packets_decode_with_the_host_decoder(imu_count, mvl, fragment):
    s = _rest(4.0, imu_count=imu_count, seed=7)
    _half_sine(s, 900, 9000.0, imu=imu_count - 1)  # 9 g on the last IMU: a hard hit
    # after the trigger (sample 901) anything goes: full-range values exercise every bit
    rng = np.random.default_rng(8)
    s[905:1100] = rng.integers(-32768, 32768, size=(195, imu_count, 6))
    s[950, 0, 3] = -32768
    s[951, 0, 5] = 32767
    s = _i16(s)
    r = _run(s, mvl=mvl, fragment=fragment, kw={"refractory_s": 10.0})
    assert r["triggers"] == 1 and r["trig"] == [901]
    (values,) = r["events"]
    if fragment:
        ra = hw.Reassembler()
        hexes = []
        for v in values:
            b = bytes.fromhex(v)
            assert len(b) <= mvl
            pkt = ra.feed(b)
            if pkt is not None:
                hexes.append(pkt.hex())
        assert ra.dropped == 0
    else:
        hexes = values
        for h in hexes:
            assert len(h) // 2 <= mvl - 1  # each packet fits one notification (1-byte fragment header)
    pkts, win = _decode_window(hexes)
    trig = r["trig"][0]
    assert pkts[0].pre_trigger == 100 and pkts[0].total == 301
    assert pkts[0].imu_mask == (1 if imu_count == 1 else 3)
    if mvl == 244:
        assert len(pkts) == -(-301 // (9 if imu_count == 2 else 18))
    assert np.abs(win - s[trig - 100 : trig + 201]).max() <= 1.0  # within 1 LSB (exact here)


def test_encode_event_i16_is_byte_identical_to_wire_encode_event():
    out = run_mpy(
        r"""
import sys
from array import array
import jolt, wire
print(sys.implementation.name)
vals = array("h", [1000, -2000, 32767, -32768, 123, -5, 7, 8, 9, -10, 11, 12, 0, 1, -1, 500, -500, 31000])
acc, gyr = [], []
for s in range(3):
    j = 6 * s
    acc += [v * 9.80665 / 1000 for v in vals[j:j + 3]]
    gyr += [v * 3.141592653589793 / 1800 for v in vals[j + 3:j + 6]]
a = wire.encode_event(1, 70000, 1, 10, 2, 400, 2**32 + 5, acc, gyr, 1, 2)
b = jolt.encode_event_i16(1, 70000, 1, 10, 2, 400, 2**32 + 5, vals, 1, 2)
c = jolt.encode_event_i16(1, 70000, 1, 10, 2, 400, 2**32 + 5, list(vals), 1, 2)
print(a == b, b == c, len(b))
a = wire.encode_event(3, 3, 0, 5, 0, 1000, 99, acc, gyr, 0, 1)
b = jolt.encode_event_i16(3, 3, 0, 5, 0, 1000, 99, vals, 0, 1)
print(a == b)
print(jolt.event_per_packet(3, 244), jolt.event_per_packet(1, 244), jolt.event_per_packet(3, 20),
      jolt.event_per_packet(1, 512), jolt.event_per_packet(3, 600))
"""
    ).decode().split()
    assert out == ["micropython", "True", "True", "42", "True", "9", "18", "1", "41", "20"]


ACC_LSB = (16384, 8192, 4096, 2048)  # counts per g at +-2, 4, 8, 16 g
GYR_LSB = (131.0, 65.5, 32.8, 16.4, 262.0, 524.3, 1048.6, 2097.2)  # counts per deg/s (MPU/ICM ranges)


def test_counts_to_wire_units_helpers_round_like_the_encoder():
    raw = [4096, -4096, 2048, 1, -1, 32767, -32768, 0, 12345, 41, -41, 82, 123]
    out = run_mpy(
        r"""
import sys, json
from array import array
import jolt
print(sys.implementation.name)
raw = array("h", %s)
res = []
for (num, den) in [jolt.acc_ratio(l) for l in %s] + [jolt.gyr_ratio(l) for l in %s]:
    o = array("h", [0, 0, 0])
    row = []
    for i in range(len(raw) // 3):
        jolt.scale_counts(raw, i, num, den, o)
        row += list(o)
    res.append(row)
print(json.dumps(res))
""" % (raw, list(ACC_LSB), list(GYR_LSB))
    ).decode().splitlines()
    assert out[0] == "micropython"
    got = np.array(json.loads(out[1]))
    r = np.array(raw[:12], float)
    for row, per in zip(got, [1000 / l for l in ACC_LSB] + [10 / l for l in GYR_LSB]):
        exact = r * per
        want = np.sign(exact) * np.floor(np.abs(exact) + 0.5)  # the wire encoder's rounding
        assert np.abs(exact - want).max() <= 0.5
        np.testing.assert_array_equal(row, want)


def test_push_allocates_nothing_and_is_cheap():
    out = run_mpy(
        r"""
import sys, gc, time, micropython
from array import array
import jolt
print(sys.implementation.name)
rest_a, rest_g = array("h", [3, -2, 1001]), array("h", [4, -3, 2])
hit_a = array("h", [1300, 0, 1000])
for n_imu in (1, 2):
    scr = jolt.JoltScreen(n_imu, 400)
    for i in range(500):  # fill the pre-trigger history
        scr.push(i, rest_a, rest_g, rest_a, rest_g)
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    i = 0
    while i < 1000:
        scr.push(i, rest_a, rest_g, rest_a, rest_g)
        i += 1
    idle = gc.mem_alloc() - m0
    # stronger: no heap allocation at all (big frames fall back to the C stack when locked)
    micropython.heap_lock()
    try:
        i = 0
        while i < 1000:
            scr.push(i, rest_a, rest_g, rest_a, rest_g)
            i += 1
    finally:
        micropython.heap_unlock()
    m0 = gc.mem_alloc()
    i = 0
    while i < 1000:  # a trigger at i = 100, capture completes at i = 300
        scr.push(i, hit_a if i == 100 else rest_a, rest_g, rest_a, rest_g)
        i += 1
    jolt_alloc = gc.mem_alloc() - m0
    gc.enable()
    t0 = time.ticks_us()
    i = 0
    while i < 4000:
        scr.push(i, rest_a, rest_g, rest_a, rest_g)
        i += 1
    us = time.ticks_diff(time.ticks_us(), t0) / 4000
    print(n_imu, idle, jolt_alloc, scr.triggers, scr.ready(), us)
"""
    ).decode().splitlines()
    assert out[0] == "micropython"
    for line in out[1:]:
        n_imu, idle, jolt_alloc, triggers, ready, us = line.split()
        print("imu_count=%s: %s bytes / 1000 idle pushes, %s bytes / 1000 pushes with a capture, %s us/push"
              % (n_imu, idle, jolt_alloc, us))
        assert int(idle) == 0
        assert int(jolt_alloc) <= 256  # memoryview slices made once when the window completes
        assert triggers == "1" and ready == "True"
        assert float(us) < 500  # unix port; the ESP32 is ~10-20x slower
