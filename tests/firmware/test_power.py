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
# OFFLINE_ADV_INTERVAL_US (60 ms); the head IMU keeps 6-axis fusion
SAVER = {"mode": "saver", "rate": 50, "odr": 200, "adv": 60000, "cpu": 240000000, "head_lp": False}
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
