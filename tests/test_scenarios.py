"""Randomised scenarios (nape.sim.scenarios) and the fast recording path (nape.sim.to_recording)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nape import wire
from nape.analysis import analyse
from nape.recording import open_recording
from nape.sim import HeadTurn, Pothole, RearImpact, SimError, VehicleAccel, severity, simulate
from nape.sim.scenarios import (
    KINDS,
    LYING_LABELS,
    MAX_MISALIGNMENT_DEG,
    PROMISED_EVENTS,
    PROMISED_POSTURES,
    RANGES,
    scenario,
)
from nape.sim.script import Corner
from nape.sim.to_recording import samples_per_packet, write_truth_recording

SEED = 4247  # its 3-minute drive: emergency brake 0.78 g, pothole 2.0 g at the seat, 1.5 g at the back (moderate)
VEH_TOL_G = 0.06  # road vibration adds to the scripted vehicle acceleration in the labels
SHOCK_TOL_G = 0.25  # potholes / rear impacts: vibration and the short pulse's sampling


def _events(script):
    return [e for seg in script for e in seg.events]


@pytest.fixture(scope="module")
def drive():
    script, settings = scenario(SEED, "drive", minutes=3)
    return script, settings, simulate(script, SEED, settings)


@pytest.fixture(scope="module")
def workday():
    script, settings = scenario(SEED, "workday", minutes=6)
    return script, settings, simulate(script, SEED, settings)


@pytest.fixture(scope="module")
def night():
    script, settings = scenario(SEED, "night", minutes=5)
    return script, settings, simulate(script, SEED, settings)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_scenario_other_seed_other(kind):
    a = scenario(7, kind)
    assert a == scenario(7, kind)
    assert a != scenario(8, kind)


def test_bad_arguments_are_sim_errors():
    with pytest.raises(SimError, match="kind"):
        scenario(1, "holiday")
    with pytest.raises(SimError, match="seed"):
        scenario(-1, "drive")
    with pytest.raises(SimError, match="minutes"):
        scenario(1, "drive", minutes=0)


@pytest.mark.parametrize("seed", range(20, 30))
def test_settings_misalignment_and_sensor_within_ranges(seed):
    for kind in KINDS:
        _, st = scenario(seed, kind)
        assert 0.0 <= st.mounting_misalignment_deg <= MAX_MISALIGNMENT_DEG
        assert st.sensor.name in ("ICM-42688-P", "MPU-6050")
        assert st.head_imu and st.rate_hz == 100.0


@pytest.mark.parametrize("seed", range(10))
def test_drive_scripts_hold_every_promised_manoeuvre(seed):
    for kind in ("drive", "mixed"):
        script, _ = scenario(seed, kind)
        ev = _events(script)
        brakes = [e.accel_g for e in ev if isinstance(e, VehicleAccel) and e.label == "braking"]
        lo_r, hi_r = RANGES["brake_routine_g"]
        lo_h, hi_h = RANGES["brake_harsh_g"]
        lo_e, hi_e = RANGES["brake_emergency_g"]
        assert any(lo_r <= -a <= hi_r for a in brakes)
        assert any(lo_h <= -a <= hi_h for a in brakes)
        assert any(lo_e <= -a <= hi_e for a in brakes)
        assert all(-a <= hi_e for a in brakes)
        accel = [e for e in ev if isinstance(e, VehicleAccel) and e.label == "acceleration"]
        assert accel and all(RANGES["hard_accel_g"][0] <= e.accel_g <= RANGES["hard_accel_g"][1] for e in accel)
        # unlabelled speed changes stay routine
        assert all(abs(e.accel_g) <= RANGES["routine_speed_change_g"][1] for e in ev
                   if isinstance(e, VehicleAccel) and e.label is None)
        assert all(e.hold_s <= RANGES["plateau_max_s"][1] + 1e-9 for e in ev if isinstance(e, VehicleAccel) and e.label)
        pot = [e for e in ev if isinstance(e, Pothole)]
        assert pot and all(RANGES["pothole_g"][0] <= e.peak_g <= RANGES["pothole_g"][1] for e in pot)
        rear = [e for e in ev if isinstance(e, RearImpact)]
        assert rear and all(RANGES["rear_impact_g"][0] <= e.peak_g <= RANGES["rear_impact_g"][1] for e in rear)
        assert any(isinstance(e, Corner) for e in ev)
        turns = [abs(e.angle_deg) for e in ev if isinstance(e, HeadTurn)]
        assert any(RANGES["mirror_check_deg"][0] <= a <= RANGES["mirror_check_deg"][1] for a in turns)
        assert any(RANGES["shoulder_check_deg"][0] <= a <= RANGES["shoulder_check_deg"][1] for a in turns)


@pytest.mark.parametrize("seed", range(10))
def test_workday_and_night_scripts_hold_their_postures(seed):
    labels = {kind: Counter(s.posture_label for s in scenario(seed, kind)[0]) for kind in KINDS}
    for kind in KINDS:
        for p in PROMISED_POSTURES[kind]:
            assert labels[kind][p] >= 1, (kind, p)
    assert any(labels["night"][p] for p in LYING_LABELS)
    day, _ = scenario(seed, "workday")
    durations = [s.duration_s for s in day[1:] if s.posture_label in ("keyboard_hunch", "phone", "upright")]
    assert min(durations) < 60.0 or max(durations) > 60.0  # both sides of the hold time occur over seeds
    for kind in KINDS:
        script, _ = scenario(seed, kind)
        assert script[0].name == "calibration_neutral" and script[0].duration_s >= 10.0


def test_simulated_drive_labels_match_the_promise_and_ranges(drive):
    _, _, sim = drive
    ev = sim.labels.events
    kinds = Counter(e.kind for e in ev)
    for k in PROMISED_EVENTS["drive"]:
        assert kinds[k] >= 1, k
    brakes = sorted((e for e in ev if e.kind == "braking"), key=lambda e: e.peak_vehicle_acc_g)
    # graded on the vehicle's sustained acceleration (nape.sim.labels): routine braking stays
    # mild, this seed's "harsh" draw (0.62 g) moderate — the upper back overshoots it at 0.66 g,
    # which graded it severe when the back was the measure — and the emergency stop severe
    assert [e.severity for e in brakes] == ["mild", "moderate", "severe"]
    for e in ev:
        if e.kind == "head_turn":
            continue
        assert e.severity == severity(e.kind, e.grade_value)
        if e.kind in ("braking", "acceleration", "lateral"):  # the 2 Hz low-pass of the vehicle's own pulse
            # (peak_vehicle_acc_g also holds the road's vibration along that axis)
            assert e.peak_vehicle_acc_g * 0.8 <= e.grade_value <= e.peak_vehicle_acc_g + 1e-9
        elif e.kind == "pothole":  # the seat: this family's vertical vehicle input
            assert e.grade_value == pytest.approx(e.peak_vehicle_acc_g, rel=1e-9)
    for e in ev:
        if e.kind in ("braking", "acceleration"):
            assert RANGES["brake_routine_g"][0] - VEH_TOL_G <= e.peak_vehicle_acc_g <= 1.0 + VEH_TOL_G
        elif e.kind == "pothole":
            lo, hi = RANGES["pothole_g"]
            assert lo - SHOCK_TOL_G <= e.peak_vehicle_acc_g <= hi + SHOCK_TOL_G
        elif e.kind == "rear_impact":
            lo, hi = RANGES["rear_impact_g"]
            assert lo - SHOCK_TOL_G <= e.peak_vehicle_acc_g <= hi + SHOCK_TOL_G
        elif e.kind == "lateral":
            assert 0.0 < e.peak_vehicle_acc_g <= RANGES["corner_target_g"][1] + 0.15
        assert e.t_start <= e.t_peak <= e.t_end
    # head turns are kept >= 2 s clear of every vehicle jolt label, so matching is unambiguous
    jolts = [e for e in ev if e.kind != "head_turn"]
    for h in (e for e in ev if e.kind == "head_turn"):
        assert all(h.t_end <= j.t_start - 1.5 or h.t_start >= j.t_end + 1.5 for j in jolts), h
    assert sim.truth.vehicle_speed_mps.min() > -0.05
    assert abs(sim.truth.vehicle_speed_mps[-1]) < 0.05  # parked again at the end


def test_simulated_postures_within_ranges(workday, night):
    _, _, day = workday
    ranges = {"keyboard_hunch": ((15, 35), (12, 32)), "phone": ((25, 55), (0, 18))}
    seen = set()
    for p in day.labels.postures:
        if p.kind in ranges:
            (n0, n1), (t0, t1) = ranges[p.kind]
            assert n0 - 3 <= p.mean_neck_flexion_deg <= n1 + 3, p
            assert t0 - 3 <= p.mean_trunk_inclination_deg <= t1 + 3, p
            seen.add(p.kind)
    assert seen == set(ranges)
    _, _, nt = night
    lying = [p for p in nt.labels.postures if p.kind in LYING_LABELS]
    assert lying and all(p.activity.startswith("lying") for p in lying)
    for p in lying:
        if "side" in p.kind:
            assert abs(p.mean_neck_lateral_deg) >= 3.0, p  # head drops to / is pushed from the mattress


def test_truth_recording_decodes_to_the_same_samples(drive, tmp_path):
    _, _, sim = drive
    path = write_truth_recording(sim, tmp_path / "d.nape")
    rec = open_recording(path)
    assert rec.metadata["imu_roles"] == ["trunk", "head"] and rec.metadata["source"] == "simulated"
    packets = [p for _, p in rec.iter_packets()]
    arrays, errors = wire.decode_samples_many(packets)
    assert not errors
    a = arrays[3]
    n = len(sim.t)
    assert len(a) == n
    assert len(packets) == -(-n // samples_per_packet(2))
    assert np.array_equal(a.seq, np.arange(n))
    np.testing.assert_allclose(a.acc[:, 0], sim.imus["trunk"].acc, atol=wire.ACC_LSB_MS2)
    np.testing.assert_allclose(a.gyr[:, 1], sim.imus["head"].gyr, atol=wire.GYR_LSB_RADS)
    # the orientation is VQF's estimate, not the truth: close in inclination, not identical
    z_est = _z_in_sensor(a.quat[:, 0])
    z_true = _z_in_sensor(sim.imus["trunk"].quat_true)
    err = np.degrees(np.arccos(np.clip(np.sum(z_est * z_true, axis=1), -1, 1)))
    assert 0.0 < np.median(err[500:]) < 3.0


def _z_in_sensor(q):
    """World up expressed in the sensor frame: inclination without heading."""
    w, x, y, z = np.asarray(q).T
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1)


def test_analysis_finds_the_emergency_brake_and_the_pothole(drive, tmp_path):
    _, _, sim = drive
    f = analyse(write_truth_recording(sim, tmp_path / "e2e.nape"))
    emergency = max((e for e in sim.labels.events if e.kind == "braking"), key=lambda e: e.peak_vehicle_acc_g)
    pothole = max((e for e in sim.labels.events if e.kind == "pothole"), key=lambda e: e.peak_vehicle_acc_g)
    assert emergency.severity == "severe" and pothole.severity in ("moderate", "severe")
    for label in sim.labels.events:  # the analysis grades the same upper-back quantity as the label
        if label.kind != "head_turn" and label.severity != "mild":
            j = min(f.jolts, key=lambda j: abs(j.peak_t_s - label.t_peak))
            assert abs(j.peak_t_s - label.t_peak) <= 1.0 and j.grade == label.severity, (label, j)
    found = [(j.peak_t_s, j.cause, j.grade, round(j.peak_trunk_g, 2)) for j in f.jolts]
    for label in (emergency, pothole):
        near = [j for j in f.jolts if abs(j.peak_t_s - label.t_peak) <= 1.0]
        assert near, f"no jolt within 1 s of {label.kind} at {label.t_peak:.2f} s " \
                     f"({label.peak_vehicle_acc_g:.2f} g); found {found}"
    brake = min(f.jolts, key=lambda j: abs(j.peak_t_s - emergency.t_peak))
    bump = min(f.jolts, key=lambda j: abs(j.peak_t_s - pothole.t_peak))
    assert brake.cause == "braking", found
    assert bump.cause == "bump", found
    assert brake.peak_trunk_g == pytest.approx(emergency.peak_trunk_acc_g, rel=0.3)
    assert bump.peak_trunk_g == pytest.approx(pothole.peak_trunk_acc_g, rel=0.3)


def test_bench_matching_rules():
    """bench.detection: ±1 s matching, mild labels ignored, head turns are negatives, seed ranges."""
    from types import SimpleNamespace as NS

    from bench.detection import parse_seeds, score_jolts

    def lab(t, kind, sev):
        return NS(t_start=t - 0.3, t_peak=t, t_end=t + 2.0, kind=kind, severity=sev, peak_trunk_acc_g=0.5,
                  peak_head_acc_g=0.5, peak_vehicle_acc_g=0.5)

    def det(t, cause="braking", grade="moderate"):
        return NS(peak_t_s=t, cause=cause, grade=grade, peak_trunk_g=0.5)

    labels = [lab(10, "braking", "moderate"), lab(30, "braking", "mild"), lab(50, "head_turn", "none"),
              lab(70, "pothole", "severe")]
    jolts = [det(10.8), det(30.2, grade="mild"), det(50.1), det(71.5, "bump", "severe"), det(90)]
    r = score_jolts(labels, jolts)
    assert [(m["kind"], m["grade"]) for m in r["matched"]] == [("braking", "moderate")]
    assert len(r["mild_detected"]) == 1 and r["head_turns_flagged"] == 1
    assert [m["kind"] for m in r["missed"]] == ["pothole"]  # 1.5 s from its peak: not a match
    assert sorted(f["t_s"] for f in r["false_positives"]) == [50.1, 71.5, 90]
    assert parse_seeds("9000-9002,7") == [7, 9000, 9001, 9002]
    with pytest.raises(ValueError):
        parse_seeds("5-3")


def _neck_axial_still_error(sim, refuser, calib) -> np.ndarray:
    """|estimated − true| neck axial rotation (deg) at 10 Hz while the true neck angles stay
    within 2° over ±2 s (held still), after the first minute; heading offset from the neutral
    window only (no tracking), so every degree of heading drift shows."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    from nape import quat
    from nape.analysis.orientation import joint_angles, segment_alignment, yaw, z_rotation

    acc = np.stack([sim.imus[r].acc for r in ("trunk", "head")], axis=1)
    gyr = np.stack([sim.imus[r].gyr for r in ("trunk", "head")], axis=1)
    q = refuser(acc, gyr)
    neutral = [np.asarray(n, float) for n in calib.neutral_quat_wxyz]
    seg = [quat.mul(q[:, k], segment_alignment(neutral[k])) for k in range(2)]
    n_seg = [quat.mul(neutral[k], segment_alignment(neutral[k])) for k in range(2)]
    d0 = float(yaw(n_seg[0]) - yaw(n_seg[1]))
    _, _, axial = joint_angles(quat.mul(quat.mul(quat.conj(seg[0]), z_rotation(np.full(len(q), d0))), seg[1]))
    step = int(sim.rate_hz / 10)
    tr = sim.truth
    lat, ax_true, est = tr.neck_lateral_deg[::step], tr.neck_axial_deg[::step], axial[::step]
    span = lambda x: maximum_filter1d(x, 41) - minimum_filter1d(x, 41)  # noqa: E731
    still = (span(lat) < 2) & (span(ax_true) < 2) & (sim.t[::step] > 60)
    assert still.sum() > 200  # the workday has held postures to compare
    return np.abs((est - ax_true + 180) % 360 - 180)[still]


def test_vqf_rest_bias_estimation_turns_a_still_head(tmp_path):
    """VQF's rest-based gyro-bias estimation takes the slow drift of a head that only seems
    still for gyro bias: with an ideal sensor and mounting, neck axial rotation during held
    postures drifts by tens of degrees with it (before the analysis' heading tracking, which
    cuts it to 8° median / 13° p95 on the 8-min version of this day) and stays within a few
    degrees without it (Refuser's default), given the calibration's zero-rate offset.
    Measured: p95 56° with, 10.6° without (no heading tracking here: a zero-rate offset off
    by 0.03 °/s turns the head by 9° in 5 min)."""
    import dataclasses

    from nape.analysis import calibration
    from nape.analysis.orientation import Refuser
    from nape.sim.sensor import SensorModel
    from nape.settings import AnalysisSettings

    seed = 4241
    script, settings = scenario(seed, "workday", minutes=5)
    settings = dataclasses.replace(settings, sensor=SensorModel.ideal(), mounting_misalignment_deg=0.0)
    sim = simulate(script, seed, settings)
    path = write_truth_recording(sim, tmp_path / "w.nape")
    calib = calibration.estimate(open_recording(path), 3, 2, AnalysisSettings())
    # the ideal sensor has no zero-rate offset: the estimate must not take sway for one
    assert np.degrees(np.abs(calib.gyro_offset_rad_s)).max() < 0.06
    period = 1.0 / sim.rate_hz
    off = _neck_axial_still_error(sim, Refuser(2, period, calib.gyro_offset_rad_s), calib)
    on = _neck_axial_still_error(sim, Refuser(2, period, calib.gyro_offset_rad_s, rest_bias_estimation=True), calib)
    print(f"neck axial error while still, p95: rest bias estimation off {np.percentile(off, 95):.2f}°, "
          f"on {np.percentile(on, 95):.2f}°")
    assert np.percentile(off, 95) < 15.0
    assert np.percentile(on, 95) > 3 * np.percentile(off, 95)


def test_bench_perturbations_are_what_they_claim():
    """bench.detection_perturb: a mounting rotation keeps magnitudes and turns both sensors by the
    angle asked; biases and scale at the top of their range; isolated glitches; a phone's rows at
    the new rate with at most ±2 ms jitter and 1 % lost."""
    from bench.detection_perturb import ROWS, SENSORS, _draws, mount, phone_samples, sensor_errors

    rng = np.random.default_rng(3)
    acc = rng.normal(size=(600, 3)) + [0, 0, 9.8]
    gyr = rng.normal(size=(600, 3))
    d = _draws(np.random.default_rng(5))
    a2, g2 = mount(acc, gyr, 30.0, d["axis"])
    assert np.allclose(np.linalg.norm(a2, axis=1), np.linalg.norm(acc, axis=1))
    cos = (a2 * acc).sum(1) / np.linalg.norm(acc, axis=1) ** 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() <= 30.0 + 1e-6
    assert np.allclose(np.linalg.norm(g2, axis=1), np.linalg.norm(gyr, axis=1))
    zero = np.zeros((6000, 3))
    ab, gb = sensor_errors(zero, zero, 100.0, ROWS["acc_bias"], SENSORS["ICM-42688-P"], d)
    assert np.allclose(np.abs(ab), 0.05 * 9.80665) and not gb.any()
    _, gb = sensor_errors(zero, zero, 100.0, ROWS["gyro_bias"], SENSORS["ICM-42688-P"], d)
    assert np.allclose(np.degrees(np.abs(gb)), 2.0)
    ag, gg = sensor_errors(zero, zero, 100.0, ROWS["glitch"], SENSORS["ICM-42688-P"], _draws(np.random.default_rng(6)))
    hit = np.flatnonzero(np.abs(ag).max(1) + np.abs(gg).max(1) > 0)
    assert len(hit) >= 2 and np.diff(hit).min() > 2  # single samples, never a burst
    t = np.arange(0, 60, 1 / 400)
    tk, x = phone_samples(t, np.column_stack([np.sin(t), np.cos(t)]), 400.0, 100.0, np.random.default_rng(1))
    grid = np.rint(tk * 100) / 100
    assert np.abs(tk - grid).max() <= 0.002 + 1e-9 and 0.985 < len(tk) / (60 * 100) < 0.995
    assert np.abs(x - np.column_stack([np.sin(tk), np.cos(tk)])).max() < 0.05  # low-passed, not started from 0
