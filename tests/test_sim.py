"""Tests of the simulated wearer (nape.sim): physics consistency, truth, labels, sensor model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nape import quat
from nape.sim import (
    HeadTurn,
    Posture,
    Pothole,
    RearImpact,
    Segment,
    SensorModel,
    SimError,
    SimSettings,
    VehicleAccel,
    simulate,
    simulate_day,
    speed_change,
)

G = 9.80665


@pytest.fixture(scope="module")
def day():
    return simulate_day(seed=0)


@pytest.fixture(scope="module")
def day_trunk_only():
    return simulate_day(seed=0, settings=SimSettings(head_imu=False))


def _car_script(pothole_g=2.2, with_rear=True):
    """12 s in a car: pull away, a pothole, stop, (optionally) a rear impact, stop again."""
    rear = RearImpact(8.0, 2.0, 0.15)
    dv_rear = rear.peak_g * G * rear.width_s / 2
    events = [speed_change(0.5, 8.0, 0.2, 0.5), Pothole(5.0, pothole_g, 0.06), speed_change(5.5, -8.0, 0.25, 0.5)]
    if with_rear:
        events += [rear, speed_change(9.0, -dv_rear, 0.3, 0.4)]
    return [
        Segment("seated", 2.0, "driving", Posture(trunk_pitch_deg=-10, neck_flexion_deg=10, hip_height_m=0.55),
                transition_s=0.0, sway=0.5),
        Segment("drive", 10.0, "driving", Posture(trunk_pitch_deg=-10, neck_flexion_deg=10, hip_height_m=0.55),
                transition_s=0.0, sway=0.5, events=tuple(events)),
    ]


def _window(res, t0, t1):
    return (res.t >= t0) & (res.t < t1)


def _posture(res, kind):
    (label,) = [p for p in res.labels.postures if p.kind == kind]
    return label


def _strapdown(q0, gyr, dt):
    """Integrate body rates (N, 3) from q0 with the midpoint rule; vectorised prefix product."""
    w = 0.5 * (gyr[1:] + gyr[:-1]) * dt
    ang = np.linalg.norm(w, axis=1, keepdims=True)
    safe = np.where(ang > 0, ang, 1.0)
    dq = np.concatenate([np.cos(ang / 2), np.sin(ang / 2) * w / safe], axis=1)
    prefix = dq.copy()
    step = 1
    while step < len(prefix):  # Hillis–Steele scan: prefix[i] = dq[0] ⊗ ... ⊗ dq[i]
        prefix[step:] = quat.mul(prefix[:-step], prefix[step:])
        step *= 2
    return np.concatenate([q0[None], quat.mul(np.broadcast_to(q0, prefix.shape), prefix)])


def _angle_deg(q1, q2):
    d = np.abs(np.sum(q1 * q2, axis=1))
    return np.rad2deg(2 * np.arccos(np.clip(d, 0, 1)))


def _linear_acc_g(imu):
    return np.linalg.norm(quat.rotate(imu.quat_true, imu.acc_clean) + np.array([0, 0, -G]), axis=1) / G


# --------------------------------------------------------------------------- shape & API


def test_shapes_rate_and_length(day):
    n = len(day.t)
    assert day.rate_hz == 100.0
    assert 14 * 60 <= day.t[-1] <= 16 * 60
    np.testing.assert_allclose(np.diff(day.t), 0.01)
    for role in ("trunk", "head"):
        imu = day.imus[role]
        for arr, width in ((imu.acc, 3), (imu.gyr, 3), (imu.quat_true, 4), (imu.acc_clean, 3), (imu.gyr_clean, 3)):
            assert arr.shape == (n, width) and arr.dtype == np.float64
        np.testing.assert_allclose(np.linalg.norm(imu.quat_true, axis=1), 1.0, atol=1e-12)
    assert day.truth.neck_flexion_deg.shape == (n,)
    names = day.truth.activity_names
    assert {"sitting", "standing", "walking", "lying_supine", "lying_side", "driving"} <= set(names)
    seen = {names[k] for k in np.unique(day.truth.activity)}
    assert seen == {"sitting", "standing", "walking", "lying_supine", "lying_side", "driving"}


def test_labels_are_json_serialisable(day):
    d = json.loads(json.dumps(day.labels.to_dict()))
    assert len(d["events"]) == len(day.labels.events) >= 9
    assert {e["kind"] for e in d["events"]} == {
        "head_turn", "braking", "acceleration", "pothole", "lateral", "rear_impact"
    }
    assert {p["kind"] for p in d["postures"]} >= {"upright", "keyboard_hunch", "phone", "bed_low_pillow"}


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_bit_identical_arrays(day, day_trunk_only):
    # An independent second run (head IMU off: its sensor stream must not disturb the trunk's).
    a, b = day.imus["trunk"], day_trunk_only.imus["trunk"]
    for name in ("acc", "gyr", "quat_true", "acc_clean", "gyr_clean"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(day.truth.neck_flexion_deg, day_trunk_only.truth.neck_flexion_deg)
    assert day.labels.to_dict() == day_trunk_only.labels.to_dict()


def test_other_seed_differs_and_repeat_is_identical():
    script = _car_script()
    r0, r0b, r1 = simulate(script, 0), simulate(script, 0), simulate(script, 1)
    assert np.array_equal(r0.imus["head"].acc, r0b.imus["head"].acc)
    assert np.array_equal(r0.imus["trunk"].gyr, r0b.imus["trunk"].gyr)
    assert not np.array_equal(r0.imus["head"].acc, r1.imus["head"].acc)


def test_time_scale_compresses_waiting_but_keeps_every_jolt(day):
    short = simulate_day(seed=0, settings=SimSettings(time_scale=0.1))
    assert 90 < short.t[-1] < 0.25 * day.t[-1]
    assert [(e.kind, e.severity) for e in short.labels.events] == [(e.kind, e.severity) for e in day.labels.events]
    for a, b in zip(short.labels.events, day.labels.events):
        assert a.peak_vehicle_acc_g == pytest.approx(b.peak_vehicle_acc_g, abs=0.1)
    assert short.truth.vehicle_speed_mps.min() > -0.01
    longer = simulate_day(seed=0, settings=SimSettings(time_scale=2.0, rate_hz=20.0, oversample=2))
    assert longer.t[-1] == pytest.approx(2 * day.t[-1], abs=0.1)


def test_head_omitted_when_disabled(day_trunk_only):
    assert set(day_trunk_only.imus) == {"trunk"}
    assert len(day_trunk_only.labels.events) > 0  # labels still come from the internal head


# --------------------------------------------------------------------------- physics


def test_still_upright_reads_gravity_on_up_axis(day):
    sel = _window(day, 2.0, 18.0)  # calibration stance
    for role in ("trunk", "head"):
        acc, gyr = day.imus[role].acc[sel], day.imus[role].gyr[sel]
        mean = acc.mean(axis=0)
        assert 9.55 < mean[2] < 10.05, (role, mean)
        assert np.all(np.abs(mean[:2]) < 0.4), (role, mean)
        assert abs(np.linalg.norm(acc, axis=1).mean() - G) < 0.25
        # Near-zero rotation: bias (±0.5 °/s tolerance) plus gentle sway only.
        assert np.all(np.abs(gyr.mean(axis=0)) < np.deg2rad(1.0)), role
        assert np.all(gyr.std(axis=0) < np.deg2rad(2.0)), role
        clean = day.imus[role].gyr_clean[sel]
        assert np.all(np.abs(clean).max(axis=0) < np.deg2rad(5.0))


@pytest.mark.parametrize("role", ["trunk", "head"])
def test_integrating_gyr_clean_reproduces_quat_true(day, role):
    imu = day.imus[role]
    q_int = _strapdown(imu.quat_true[0], imu.gyr_clean, 1.0 / day.rate_hz)
    err = _angle_deg(q_int, imu.quat_true)
    assert err.max() < 1.0, err.max()


def test_acc_clean_is_consistent_with_quat_true_at_rest(day):
    # Still lying supine: specific force = gravity expressed in the sensor frame.
    lab = _posture(day, "bed_supine")
    sel = _window(day, lab.t_start + 5, lab.t_end - 5)
    imu = day.imus["trunk"]
    f_world = quat.rotate(imu.quat_true[sel], imu.acc_clean[sel])
    np.testing.assert_allclose(f_world.mean(axis=0), [0, 0, G], atol=0.05)


def test_off_the_shelf_ahrs_tracks_true_tilt(day):
    # VQF (same quaternion convention) fed the *noisy* signals must recover the true tilt:
    # checks signs, frames and units of acc and gyr against quat_true end to end.
    from vqf import offlineVQF

    outside_car = day.truth.activity != day.truth.activity_names.index("driving")
    for role, imu in day.imus.items():
        est = offlineVQF(np.ascontiguousarray(imu.gyr), np.ascontiguousarray(imu.acc), None, 1 / day.rate_hz)
        up_est = quat.axis_in_world(quat.conj(est["quat6D"]), 2)  # world z in sensor axes
        up_true = quat.axis_in_world(quat.conj(imu.quat_true), 2)
        err = np.rad2deg(np.arccos(np.clip(np.sum(up_est * up_true, axis=1), -1, 1)))[outside_car]
        assert np.sqrt(np.mean(err**2)) < 1.0, role
        assert err.max() < 4.0, role


def test_mounting_misalignment_rotates_sensor_not_body():
    script = _car_script(with_rear=False)
    nominal = simulate(script, 3, SimSettings(sensor=SensorModel.ideal()))
    tilted = simulate(script, 3, SimSettings(sensor=SensorModel.ideal(), mounting_misalignment_deg=12.0))
    for role in ("trunk", "head"):
        a, b = nominal.imus[role], tilted.imus[role]
        np.testing.assert_allclose(_angle_deg(a.quat_true, b.quat_true), 12.0, atol=1e-6)
        # Rotating the sensor leaves magnitudes unchanged.
        np.testing.assert_allclose(np.linalg.norm(a.acc_clean, axis=1), np.linalg.norm(b.acc_clean, axis=1), atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(a.gyr_clean, axis=1), np.linalg.norm(b.gyr_clean, axis=1), atol=1e-9)
    np.testing.assert_array_equal(nominal.truth.neck_flexion_deg, tilted.truth.neck_flexion_deg)


def test_peaks_agree_between_100_and_400_hz():
    script = _car_script()
    lo = simulate(script, 0, SimSettings(rate_hz=100.0))
    hi = simulate(script, 0, SimSettings(rate_hz=400.0))
    assert len(hi.t) == 4 * len(lo.t)
    for a, b in zip(lo.labels.events, hi.labels.events):
        assert a.kind == b.kind
        assert b.peak_head_acc_g == pytest.approx(a.peak_head_acc_g, rel=0.08)
        assert b.peak_trunk_acc_g == pytest.approx(a.peak_trunk_acc_g, rel=0.08)
    # The body motion itself is rate-independent.
    np.testing.assert_allclose(hi.truth.neck_flexion_deg[::4], lo.truth.neck_flexion_deg, atol=0.05)


# --------------------------------------------------------------------------- truth


def test_truth_keyboard_and_phone_postures(day):
    kb = _posture(day, "keyboard_hunch")
    assert 180 <= kb.t_end - kb.t_start <= 240
    assert 25 <= kb.mean_neck_flexion_deg <= 30
    assert 20 <= kb.mean_trunk_inclination_deg <= 25
    sel = _window(day, kb.t_start, kb.t_end)
    assert np.percentile(day.truth.neck_flexion_deg[sel], 5) > 20
    assert np.percentile(day.truth.neck_flexion_deg[sel], 95) < 35

    ph = _posture(day, "phone")
    assert 120 <= ph.t_end - ph.t_start <= 180
    assert 40 <= ph.mean_neck_flexion_deg <= 50
    assert 7 <= ph.mean_trunk_inclination_deg <= 13
    sel = _window(day, ph.t_start, ph.t_end)
    assert np.percentile(day.truth.neck_flexion_deg[sel], 5) > 35

    up = day.labels.postures[0]
    assert up.kind == "upright" and up.t_start == 0.0
    assert abs(up.mean_neck_flexion_deg) < 3 and abs(up.mean_trunk_inclination_deg) < 3

    side = _posture(day, "bed_low_pillow")
    assert 10 <= side.mean_neck_lateral_deg <= 20
    sel = _window(day, side.t_start, side.t_end)
    assert abs(side.mean_neck_flexion_deg) < 4  # ISO flexion is horizontal when lying on the side
    assert 5 < day.truth.neck_joint_flexion_deg[sel].mean() < 15  # the joint is still flexed


def test_truth_matches_sensor_orientation_without_misalignment(day):
    def inclination(q):
        w, x, y, z = q.T
        return np.rad2deg(np.arcsin(np.clip(-2 * (x * z - w * y), -1, 1)))

    trunk = inclination(day.imus["trunk"].quat_true)
    head = inclination(day.imus["head"].quat_true)
    np.testing.assert_allclose(trunk, day.truth.trunk_inclination_deg, atol=1e-9)
    np.testing.assert_allclose(head - trunk, day.truth.neck_flexion_deg, atol=1e-9)


def test_transitions_are_smooth(day):
    # Outside vehicle jolts nothing jumps: < 1° per 10 ms sample (ramps, walking, head turns).
    calm = np.ones(len(day.t) - 1, dtype=bool)
    for e in day.labels.events:
        if e.kind != "head_turn":
            calm[_window(day, e.t_start, e.t_end)[1:]] = False
    assert np.abs(np.diff(day.truth.neck_flexion_deg))[calm].max() < 1.0
    assert np.abs(np.diff(day.truth.trunk_inclination_deg))[calm].max() < 1.0
    # Accelerations stay bounded outside jolts: no kinks in the scripted trajectories.
    assert _linear_acc_g(day.imus["head"])[1:][calm].max() < 0.8


# --------------------------------------------------------------------------- labels


def test_jolt_peaks_match_the_data(day):
    head_g = _linear_acc_g(day.imus["head"])
    trunk_g = _linear_acc_g(day.imus["trunk"])
    for e in day.labels.events:
        sel = _window(day, e.t_start, e.t_end)
        assert head_g[sel].max() == pytest.approx(e.peak_head_acc_g, rel=1e-9), e
        assert trunk_g[sel].max() == pytest.approx(e.peak_trunk_acc_g, rel=1e-9), e
        assert e.t_start <= e.t_peak <= e.t_end
        if e.kind not in ("braking", "acceleration", "lateral"):  # a manoeuvre's time: its plateau's centre
            assert head_g[np.searchsorted(day.t, e.t_peak)] == pytest.approx(e.peak_head_acc_g, rel=1e-9)


def test_jolt_grades_are_each_causes_physical_quantity(day):
    """``grade_value`` (what severity grades) is the quantity that loads the neck in each cause,
    from the simulated physics: the vehicle's sustained acceleration for manoeuvres (the 2 Hz
    low-pass of its own smooth pulse: just under its peak), the seat's shock for potholes (this
    family's vertical vehicle input), and for rear impacts NIC recomputed here independently from
    the head and upper-back sensors' true signals, from the impact's onset."""
    from nape.sim.labels import NIC_SPAN_S, severity

    graded = [e for e in day.labels.events if e.kind != "head_turn"]
    assert {e.kind for e in graded} == {"braking", "acceleration", "lateral", "pothole", "rear_impact"}
    lin = {r: quat.rotate(day.imus[r].quat_true, day.imus[r].acc_clean) + np.array([0, 0, -G]) for r in ("trunk", "head")}
    fwd = quat.axis_in_world(day.imus["trunk"].quat_true, 0)  # no mounting misalignment in this day
    for e in graded:
        assert e.severity == severity(e.kind, e.grade_value)
        if e.kind == "pothole":
            assert e.grade_value == pytest.approx(e.peak_vehicle_acc_g, rel=1e-9)
        elif e.kind == "rear_impact":
            i0 = int(np.searchsorted(day.t, e.t_start))
            sl = slice(i0, i0 + int(round(NIC_SPAN_S * day.rate_hz)))
            f = fwd[i0] * [1.0, 1.0, 0.0]
            a_rel = (lin["trunk"][sl] - lin["head"][sl]) @ (f / np.linalg.norm(f))
            v_rel = np.cumsum(a_rel) / day.rate_hz
            assert e.grade_value == pytest.approx(float(np.max(0.2 * a_rel + v_rel ** 2)), rel=0.02), e
            assert e.grade_value > 0.5  # the head lags: the neck is loaded
        else:
            assert 0.8 * e.peak_vehicle_acc_g <= e.grade_value <= e.peak_vehicle_acc_g + 1e-9, e


def test_jolt_kinds_severities_and_magnitudes(day):
    ev = day.labels.events
    turns = [e for e in ev if e.kind == "head_turn"]
    assert len(turns) == 2 and all(e.severity == "none" for e in turns)
    assert all(200 < e.peak_neck_angvel_dps < 450 for e in turns)  # quick voluntary turns
    brakes = sorted((e for e in ev if e.kind == "braking"), key=lambda e: e.peak_vehicle_acc_g)
    assert [e.severity for e in brakes] == ["mild", "moderate", "severe"]
    assert 0.2 < brakes[0].peak_vehicle_acc_g < 0.35 and brakes[2].peak_vehicle_acc_g > 0.65
    for e in brakes:  # the occupant feels at least most of the vehicle's deceleration
        assert e.peak_trunk_acc_g > 0.8 * e.peak_vehicle_acc_g
    (pothole,) = [e for e in ev if e.kind == "pothole"]
    assert 1.5 <= pothole.peak_vehicle_acc_g <= 3.0 and pothole.t_end - pothole.t_start < 1.5
    assert pothole.peak_head_acc_g > 1.0
    (rear,) = [e for e in ev if e.kind == "rear_impact"]
    assert 1.0 < rear.peak_head_rel_acc_g <= 2.5  # head lags the chest by up to ~2 g
    assert rear.peak_neck_angvel_dps > 100
    (lateral,) = [e for e in ev if e.kind == "lateral"]
    assert 0.35 < lateral.peak_vehicle_acc_g < 0.65


def test_rear_impact_neck_extends_then_flexes(day):
    (rear,) = [e for e in day.labels.events if e.kind == "rear_impact"]
    before = day.truth.neck_flexion_deg[_window(day, rear.t_start - 1.0, rear.t_start)].mean()
    sel = _window(day, rear.t_start, rear.t_end)
    nf = day.truth.neck_flexion_deg[sel] - before
    i_min, i_max = int(np.argmin(nf)), int(np.argmax(nf))
    assert nf[i_min] < -5 and nf[i_max] > 2 and i_min < i_max


# --------------------------------------------------------------------------- sensor model


def test_clipping_at_acc_range():
    res = simulate(_car_script(pothole_g=3.0), 0, SimSettings(acc_range_g=2.0))
    for imu in res.imus.values():
        lsb = 2.0 * G / 32768
        assert np.abs(imu.acc).max() <= 2.0 * G + 1e-9
        over = imu.acc_clean > 2.0 * G + 0.1  # well above range, noise cannot pull it back
        assert over.any()
        np.testing.assert_allclose(imu.acc[over], 2.0 * G - lsb, atol=1e-9)


def test_quantisation_to_16_bit_lsb(day):
    lsb_acc = 16.0 * G / 32768
    lsb_gyr = np.deg2rad(2000.0 / 32768)
    for imu in day.imus.values():
        np.testing.assert_allclose(imu.acc / lsb_acc, np.round(imu.acc / lsb_acc), atol=1e-6)
        np.testing.assert_allclose(imu.gyr / lsb_gyr, np.round(imu.gyr / lsb_gyr), atol=1e-6)


@pytest.mark.parametrize("model", [SensorModel.icm42688(), SensorModel.mpu6050()], ids=lambda m: m.name)
def test_noise_std_matches_datasheet_density(model):
    rate = 200.0
    still = [Segment("still", 30.0, "standing", Posture(), transition_s=0.0, sway=0.0)]
    res = simulate(still, 5, SimSettings(rate_hz=rate, sensor=model, acc_range_g=2.0, gyr_range_dps=250.0))
    acc_std, gyr_std = model.noise_std(rate)
    assert acc_std == pytest.approx(model.acc_noise_density_ug * 1e-6 * G * np.sqrt(rate / 2))
    lsb_acc, lsb_gyr = 2.0 * G / 32768, np.deg2rad(250.0 / 32768)
    for imu in res.imus.values():
        resid_acc = imu.acc - imu.acc_clean
        resid_gyr = imu.gyr - imu.gyr_clean
        # Remove the (slowly varying) bias with a 1 s moving mean before measuring noise.
        k = np.ones(int(rate)) / rate
        for resid, std, lsb in ((resid_acc, acc_std, lsb_acc), (resid_gyr, gyr_std, lsb_gyr)):
            detrended = resid - np.stack([np.convolve(resid[:, i], k, mode="same") for i in range(3)], axis=1)
            measured = detrended[int(rate) : -int(rate)].std(axis=0)
            expected = np.sqrt(std**2 + lsb**2 / 12) * np.sqrt(1 - 1 / rate)
            np.testing.assert_allclose(measured, expected, rtol=0.1)


def test_ideal_sensor_has_no_errors():
    res = simulate(_car_script(), 0, SimSettings(sensor=SensorModel.ideal()))
    for imu in res.imus.values():
        np.testing.assert_array_equal(imu.acc, imu.acc_clean)
        np.testing.assert_array_equal(imu.gyr, imu.gyr_clean)


# --------------------------------------------------------------------------- errors


def test_invalid_inputs_raise_sim_error():
    with pytest.raises(SimError):
        simulate_day(0, SimSettings(rate_hz=0.0))
    with pytest.raises(SimError):
        simulate_day(-1)
    reversing = [Segment("car", 5.0, "driving", Posture(), events=(VehicleAccel(1.0, -0.3, 0.3, 0.5, "braking"),))]
    with pytest.raises(SimError):
        simulate(reversing, 0)
    with pytest.raises(SimError):
        simulate([Segment("x", 5.0, "flying", Posture())], 0)


def test_head_turn_is_labelled_voluntary():
    script = [Segment("stand", 6.0, "standing", Posture(), transition_s=0.0, sway=0.0, events=(HeadTurn(2.0, 60.0),))]
    res = simulate(script, 0)
    (e,) = res.labels.events
    assert e.kind == "head_turn" and e.severity == "none"
    assert res.truth.neck_axial_deg.max() == pytest.approx(60.0, abs=0.5)


def test_road_vibration_factor_turns_the_road_down_and_leaves_the_events():
    """road_vibration scales the road's vibration only (0: a perfectly smooth road); the
    scripted events and their labels are the same draws, and family B takes the factor too."""
    from nape.sim.family_b import simulate_b

    st = SimSettings(time_scale=0.1, rate_hz=100.0)
    rough = simulate_day(seed=2, settings=st)
    smooth = simulate_day(seed=2, settings=SimSettings(time_scale=0.1, rate_hz=100.0, road_vibration=0.0))
    driving = np.asarray(rough.truth.vehicle_speed_mps) > 8.0
    assert driving.sum() > 100 * 30

    def hf(sim):  # the trunk's vertical acceleration above 6 Hz while driving fast: median
        from scipy import signal  # of per-second RMS (events are rare seconds)

        sos = signal.butter(2, 6.0, btype="high", fs=sim.rate_hz, output="sos")
        x = signal.sosfilt(sos, sim.imus["trunk"].acc_clean[:, 2])
        k = int(sim.rate_hz)
        secs = [np.sqrt(np.mean(x[i:i + k] ** 2)) for i in range(0, len(x) - k, k) if driving[i:i + k].all()]
        return float(np.median(secs))

    assert hf(smooth) < 0.2 * hf(rough)
    assert [e.kind for e in smooth.labels.events] == [e.kind for e in rough.labels.events]
    assert all(abs(a.t_peak - b.t_peak) < 0.1 for a, b in zip(smooth.labels.events, rough.labels.events))
    with pytest.raises(SimError):
        SimSettings(road_vibration=-1.0).validate()
    b0 = simulate_b(9100, "drive_b", 2.0, road_vibration=0.0)
    b1 = simulate_b(9100, "drive_b", 2.0)
    assert [e.kind for e in b0.labels.events] == [e.kind for e in b1.labels.events]
    with pytest.raises(ValueError):
        simulate_b(9100, "drive_b", 2.0, road_vibration=-0.5)
