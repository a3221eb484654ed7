"""Analysis v0 on recordings with exactly known angles and accelerations."""

import numpy as np
import pytest

from nape.analysis import analyse
from nape.errors import RecordingError
from nape.settings import AnalysisSettings
from tests.recording_factory import G, pitch_quat, write_recording

RATE = 50.0


def _ramp(n, lo, hi, i0, i1, ramp=100):
    """lo outside [i0, i1), hi inside, with linear ramps of ``ramp`` samples."""
    x = np.full(n, float(lo))
    up = np.clip((np.arange(n) - i0) / ramp, 0, 1)
    down = np.clip((i1 - np.arange(n)) / ramp, 0, 1)
    return lo + (hi - lo) * np.minimum(up, down)


def test_neck_episode_found_with_start_end_and_angle(tmp_path):
    n = int(300 * RATE)
    trunk = np.full(n, 5.0)  # kyphotic mounting: neutral pitch 5 deg, removed by calibration
    head = 5.0 + _ramp(n, 0, 30, int(60 * RATE), int(160 * RATE))  # 30 deg neck flexion for ~100 s
    p = write_recording(tmp_path / "r.nape", RATE, pitch_quat(trunk, 40), pitch_quat(head, -70))
    f = analyse(p)
    neck = [e for e in f.episodes if e.kind == "neck_flexion"]
    assert len(neck) == 1
    e = neck[0]
    # threshold 20 deg is crossed 2/3 into the 2 s ramp; low-pass adds ~0.5 s delay
    assert e.start_s == pytest.approx(60 + 1.33, abs=1.5)
    assert e.end_s == pytest.approx(160 - 1.33 + 2.0, abs=2.5)
    assert e.peak_deg == pytest.approx(30, abs=0.5)
    assert f.exposure_s["neck_over_threshold_s"] == pytest.approx(100 - 1.33, abs=3)
    assert not [e for e in f.episodes if e.kind == "trunk_inclination"]
    assert f.duration_s == pytest.approx(300, abs=0.1)


def test_short_flexion_is_not_an_episode_and_threshold_is_a_setting(tmp_path):
    n = int(200 * RATE)
    head = _ramp(n, 0, 30, int(50 * RATE), int(90 * RATE))  # 40 s only
    p = write_recording(tmp_path / "r.nape", RATE, pitch_quat(np.zeros(n)), pitch_quat(head))
    assert not analyse(p).episodes
    f = analyse(p, AnalysisSettings(hold_s=30))
    assert len(f.episodes) == 1
    f = analyse(p, AnalysisSettings(hold_s=30, neck_flexion_deg=35))
    assert not f.episodes


def test_trunk_hunch_episode(tmp_path):
    n = int(200 * RATE)
    trunk = _ramp(n, 0, 28, int(20 * RATE), int(150 * RATE))
    p = write_recording(tmp_path / "r.nape", RATE, pitch_quat(trunk), pitch_quat(trunk))  # head follows: neck 0
    f = analyse(p)
    kinds = [e.kind for e in f.episodes]
    assert kinds == ["trunk_inclination"]
    assert f.episodes[0].mean_deg == pytest.approx(27.5, abs=1.5)


def _pulse(n, i_peak, peak_ms2, axis_vec, width_s=0.1):
    t = (np.arange(n) - i_peak) / RATE
    env = np.exp(-0.5 * (t / (width_s / 2.355)) ** 2) * peak_ms2
    return env[:, None] * np.asarray(axis_vec, float)[None, :]


@pytest.mark.parametrize("g_peak,grade", [(0.45, "moderate"), (0.8, "severe")])
def test_braking_jolt_graded_by_sustained_deceleration(tmp_path, g_peak, grade):
    n = int(60 * RATE)
    q = pitch_quat(np.zeros(n), heading_deg=30)
    fwd = np.array([np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30)), 0])
    lin = _pulse(n, int(30 * RATE), -g_peak * G, fwd, width_s=1.0)  # deceleration: backwards
    p = write_recording(tmp_path / "r.nape", RATE, q, q, lin_trunk=lin, lin_head=lin * 1.2)
    f = analyse(p)
    assert len(f.jolts) == 1
    j = f.jolts[0]
    assert j.cause == "braking" and j.grade == grade
    assert j.t_s == pytest.approx(30, abs=0.1)
    assert j.peak_trunk_g == pytest.approx(g_peak, rel=0.12)
    assert j.vehicle_g == pytest.approx(g_peak, rel=0.15)


def test_gentle_braking_below_trigger_is_not_a_jolt(tmp_path):
    n = int(60 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = _pulse(n, int(30 * RATE), -0.25 * G, [1, 0, 0], width_s=1.5)  # routine braking
    p = write_recording(tmp_path / "r.nape", RATE, q, q, lin_trunk=lin, lin_head=lin)
    assert analyse(p).jolts == []


def test_rear_impact_like_shock_with_head_lag_gives_nic(tmp_path):
    n = int(40 * RATE)
    q = pitch_quat(np.zeros(n))
    trunk = _pulse(n, int(20 * RATE), 2.0 * G, [1, 0, 0], width_s=0.1)  # pushed forward, short
    head = np.roll(trunk, int(0.06 * RATE), axis=0) * 1.2  # head lags, then overshoots
    p = write_recording(tmp_path / "r.nape", RATE, q, q, lin_trunk=trunk, lin_head=head)
    f = analyse(p)
    assert len(f.jolts) == 1
    j = f.jolts[0]
    assert j.cause == "rear_impact_like" and j.grade == "moderate"
    assert j.nic_m2s2 > 0.5 and j.head_rel_g > 0.5


def test_vertical_shock_is_a_bump_and_quiet_ride_has_no_jolt(tmp_path):
    n = int(40 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = _pulse(n, int(20 * RATE), 2.0 * G, [0, 0, 1], width_s=0.3)
    p = write_recording(tmp_path / "a.nape", RATE, q, q, lin_trunk=lin, lin_head=lin)
    f = analyse(p)
    assert [j.cause for j in f.jolts] == ["bump"]
    quiet = write_recording(tmp_path / "b.nape", RATE, q, q, lin_trunk=lin * 0.1, lin_head=lin * 0.1)
    assert analyse(quiet).jolts == []


def test_lost_packets_are_counted(tmp_path):
    n = int(60 * RATE)
    q = pitch_quat(np.zeros(n))
    p = write_recording(tmp_path / "r.nape", RATE, q, q, drop_packets={10, 11, 300})
    f = analyse(p)
    assert f.lost_samples == 15
    assert f.samples == n - 15


def test_empty_recording_is_a_clear_error(tmp_path):
    from nape.recording import RecordingWriter
    p = tmp_path / "e.nape"
    with RecordingWriter(p, {"imu_roles": ["trunk"], "source": "simulated"}):
        pass
    with pytest.raises(RecordingError, match="no samples"):
        analyse(p)
