"""Analysis v0 on recordings with exactly known angles and accelerations."""

import numpy as np
import pytest

from nape.analysis import analyse
from nape.errors import RecordingError
from nape.settings import AnalysisSettings
from tests.recording_factory import G, in_car, pitch_quat, write_recording

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
    assert f.exposure_s.neck_over_threshold_s == pytest.approx(100 - 1.33, abs=3)
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
    p = write_recording(tmp_path / "r.nape", RATE, q, q, lin_trunk=in_car(lin, RATE), lin_head=lin * 1.2)
    f = analyse(p)
    assert len(f.jolts) == 1
    j = f.jolts[0]
    assert j.cause == "braking" and j.grade == grade
    assert j.peak_t_s == pytest.approx(30, abs=0.1)
    assert j.peak_trunk_g == pytest.approx(g_peak, rel=0.12)
    assert j.peak_vehicle_g == pytest.approx(g_peak, rel=0.15)


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
    p = write_recording(tmp_path / "r.nape", RATE, q, q, lin_trunk=in_car(trunk, RATE), lin_head=head)
    f = analyse(p)
    assert len(f.jolts) == 1
    j = f.jolts[0]
    assert j.nic_m2s2 > 0.5 and j.peak_head_rel_g > 0.5
    # graded on NIC (the neck's loading), not on the back's 2 g peak: a 60 ms head lag after a
    # 2 g, 0.1 s push stays under Euro NCAP's best-seat level (8 m²/s²): mild
    assert j.cause == "rear_impact_like" and j.grade_basis == "nic" and j.grade_value == j.nic_m2s2
    assert j.nic_m2s2 < AnalysisSettings().nic_moderate_m2s2 and j.grade == "mild"


def test_vertical_shock_is_a_bump_and_quiet_ride_has_no_jolt(tmp_path):
    n = int(40 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = _pulse(n, int(20 * RATE), 2.0 * G, [0, 0, 1], width_s=0.3)
    p = write_recording(tmp_path / "a.nape", RATE, q, q, lin_trunk=in_car(lin, RATE), lin_head=lin)
    f = analyse(p)
    assert [j.cause for j in f.jolts] == ["bump"]
    quiet = write_recording(tmp_path / "b.nape", RATE, q, q, lin_trunk=in_car(lin * 0.1, RATE), lin_head=lin * 0.1)
    assert analyse(quiet).jolts == []


def test_lost_packets_are_counted(tmp_path):
    n = int(60 * RATE)
    q = pitch_quat(np.zeros(n))
    p = write_recording(tmp_path / "r.nape", RATE, q, q, drop_packets={10, 11, 300})
    f = analyse(p)
    assert f.lost_samples == 15
    assert f.samples == n - 15


def test_empty_recording_says_nothing_was_judged(tmp_path):
    from nape.recording import RecordingWriter
    p = tmp_path / "e.nape"
    with RecordingWriter(p, {"imu_roles": ["trunk"], "source": "simulated"}):
        pass
    f = analyse(p)
    assert f.samples == 0 and f.valid_s == 0 and f.low_coverage
    assert any("nothing could be judged" in w for w in f.not_judged)


def _write_packets(path, rate_hz, packets_in_order):
    from nape.recording import RecordingWriter
    meta = {"device_name": "factory", "firmware_version": "test", "imu_roles": ["trunk", "head"],
            "sample_rate_hz": rate_hz, "source": "simulated", "wire_format_version": 1}
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for k in range(0, len(packets_in_order), 50):
            w.write_packets(packets_in_order[k:k + 50], 1.7e9 + k)
    return path


def _backfill_day(n):
    """(packets, backfilled copies) of a 2-IMU recording: neck flexion 30° for 100 s and a braking."""
    from nape import wire
    from tests.recording_factory import body_rates, specific_force

    q_t = pitch_quat(np.zeros(n))
    q_h = pitch_quat(_ramp(n, 0, 30, int(60 * RATE), int(160 * RATE)))
    lin = in_car(_pulse(n, int(120 * RATE), -0.5 * G, [1, 0, 0], width_s=1.0), RATE)
    quat_all = np.stack([q_t, q_h], axis=1)
    acc = np.stack([specific_force(q_t, lin), specific_force(q_h, lin * 1.2)], axis=1)
    gyr = np.stack([body_rates(q_t, RATE), body_rates(q_h, RATE)], axis=1)
    period = int(1e6 / RATE)
    live, back = [], []
    for i in range(0, n, 5):
        args = (3, i, int(i * period / 1000), period)
        data = (quat_all[i:i + 5], acc[i:i + 5], gyr[i:i + 5])
        live.append(wire.encode_samples(*args, np.zeros(5, np.uint8), *data))
        back.append(wire.encode_samples(*args, np.full(5, wire.FLAG_BACKFILL, np.uint8), *data))
    return live, back


def _summary(f):
    return (f.samples, f.lost_samples, [(j.cause, j.grade, round(j.peak_t_s, 2), round(j.peak_trunk_g, 3)) for j in f.jolts],
            [(e.kind, round(e.start_s, 1), round(e.end_s, 1), round(e.mean_deg, 2)) for e in f.episodes])


def test_backfilled_samples_are_normal_data_placed_by_seq(tmp_path, monkeypatch):
    """Samples re-sent from the device's buffer (BACKFILL flag) and written to the file after
    newer ones — here the 40 s holding the braking, 25 s late — and packets sent twice give
    exactly the analysis of the in-order recording; a backfill later than the reorder
    window (stream.REORDER_S) is counted as lost, not misplaced."""
    from nape.analysis import stream

    monkeypatch.setattr(stream, "BATCH_PACKETS", 200)  # 20 s per batch: order across batches matters
    n = int(300 * RATE)
    live, back = _backfill_day(n)
    ref = _summary(analyse(_write_packets(tmp_path / "a.nape", RATE, live)))
    assert ref[1] == 0 and len(ref[2]) == 1 and ref[2][0][:2] == ("braking", "moderate")
    assert [e[0] for e in ref[3]] == ["neck_flexion"]
    per_s = int(RATE / 5)  # packets per second
    a, b, late = 100 * per_s, 140 * per_s, 165 * per_s
    shuffled = live[:a] + live[b:late] + back[a:b] + live[late:]
    shuffled = shuffled[:500] + live[400:450] + shuffled[500:]  # 10 s sent twice
    assert _summary(analyse(_write_packets(tmp_path / "b.nape", RATE, shuffled))) == ref
    too_late = live[:a] + live[b:] + back[a:b]  # arrives 160 s after its place was passed
    f = analyse(_write_packets(tmp_path / "c.nape", RATE, too_late))
    assert f.samples == n - 40 * int(RATE) and f.lost_samples == 40 * int(RATE)
    assert not f.jolts  # the braking was in the lost part


def test_sequence_numbers_wrapping_past_2_32_are_continuous(tmp_path, monkeypatch):
    """seq is mod 2^32: a recording that wraps in the middle (and a backfilled stretch around
    the wrap written late) still reads as one continuous stream."""
    from nape import wire
    from nape.analysis import stream

    monkeypatch.setattr(stream, "BATCH_PACKETS", 100)
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    acc = np.tile([0.0, 0.0, G], (n, 2, 1))
    gyr = np.zeros((n, 2, 3))
    quat_all = np.stack([q, q], axis=1)
    first = 2**32 - 3000
    packets = [wire.encode_samples(3, first + i, i * 20, 20000, np.full(5, wire.FLAG_BACKFILL if 2900 <= i < 3200 else 0,
                                                                     np.uint8), quat_all[i:i + 5], acc[i:i + 5],
                                   gyr[i:i + 5]) for i in range(0, n, 5)]
    moved = packets[:580] + packets[640:700] + packets[580:640] + packets[700:]  # the wrap arrives 12 s late
    f = analyse(_write_packets(tmp_path / "w.nape", RATE, moved))
    assert (f.samples, f.lost_samples, f.duration_s) == (n, 0, pytest.approx(120.0))


@pytest.mark.parametrize("peak_g,grade", [(0.67, "severe"), (0.60, "moderate")])
def test_corner_after_a_speed_up_is_graded_on_its_true_acceleration(tmp_path, monkeypatch, peak_g, grade):
    """A gentle 9 s speed-up (0.14 g, below the trigger) then a 5 s corner: the fusion filter
    (VQF) has taken part of both for tilted gravity and reads the corner ~3 % low — 0.67 g
    would be graded moderate. The jolt measure removes gravity with the minute-long reference
    carried by the gyro: within 1.5 % of the truth, so 0.67 g is severe (boundary 0.65 g).
    Detection and the vehicle-level measure use the streaming form of the same reference."""
    from nape.analysis import jolts

    detectors = []
    finish = jolts.JoltDetector.finish
    monkeypatch.setattr(jolts.JoltDetector, "finish", lambda self, *a, **k: detectors.append(self) or finish(self, *a, **k))
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    t = np.arange(n) / RATE
    lin = np.zeros((n, 3))
    lin[:, 0] = 0.14 * G * np.clip(np.minimum(t - 50, 59 - t), 0, 1)
    lin[:, 1] = peak_g * G * np.clip(np.minimum(t - 61, 67 - t), 0, 1)  # 1 s ramps, 5 s plateau
    f = analyse(write_recording(tmp_path / "c.nape", RATE, q, q, lin_trunk=in_car(lin, RATE), lin_head=lin))
    assert [(j.cause, j.grade) for j in f.jolts] == [("lateral", grade)]
    (run,) = detectors[0].runs
    assert run["grade_sustained_g"] == pytest.approx(peak_g, rel=0.015)
    assert abs(run["vehicle_across_g"]) == pytest.approx(peak_g, rel=0.015)  # fused alone: ~3 % low


def test_long_corner_is_one_jolt_over_its_whole_plateau(tmp_path):
    """A 14 s corner at 0.40 g (trigger 0.35 g): the fused inclination (VQF, 3 s) leans into
    it, and a trigger on the fused linear acceleration drops below 0.35 g after a few seconds
    (the corner split or ended early). Detection removes the trunk's gravity with the
    minute-long reference carried by the gyro, so the corner stays above the trigger to its end."""
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    t = np.arange(n) / RATE
    lin = np.zeros((n, 3))
    lin[:, 1] = 0.40 * G * np.clip(np.minimum(t - 60, 75 - t), 0, 1)  # 1 s ramps, 13 s plateau
    f = analyse(write_recording(tmp_path / "c.nape", RATE, q, q, lin_trunk=in_car(lin, RATE), lin_head=lin))
    assert [(j.cause, j.grade) for j in f.jolts] == [("lateral", "moderate")]
    j = f.jolts[0]
    assert j.start_s == pytest.approx(60.9, abs=0.3)
    # the head IMU keeps the fused inclination: its lean outlasts the corner by up to ~1.5 s
    assert 74.0 <= j.end_s <= 76.0
    assert j.peak_vehicle_g == pytest.approx(0.40, rel=0.03)
