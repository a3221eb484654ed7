"""Jolts told from the wearer's own movement, split where the cause changes, never dropped
whole; calibration that checks the head; phone vs keyboard (issue 15)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nape.analysis import analyse
from nape.analysis.findings import PostureEpisode
from nape.analysis.jolts import grade_of_size
from nape.analysis.posture import pattern
from nape.settings import GRADE_BOUNDS, AnalysisSettings
from tests.recording_factory import G, in_car, pitch_quat, road_vibration, write_recording

RATE = 100.0


def _pulse(n, t_peak_s, peak_ms2, axis_vec, width_s):
    t = np.arange(n) / RATE - t_peak_s
    env = np.exp(-0.5 * (t / (width_s / 2.355)) ** 2) * peak_ms2
    return env[:, None] * np.asarray(axis_vec, float)[None, :]


def _plateau(n, t0, t1, g, axis_vec, ramp_s=0.5):
    """0 → g·G → 0 along ``axis_vec`` with linear ramps, plateau from t0 to t1 (s)."""
    t = np.arange(n) / RATE
    env = np.clip(np.minimum((t - t0) / ramp_s + 1, (t1 - t) / ramp_s + 1), 0, 1) * g * G
    return env[:, None] * np.asarray(axis_vec, float)[None, :]


def test_head_nods_and_looks_are_not_jolts(tmp_path):
    """Nods (30° at ~180 °/s) move the head ~0.4 g while the trunk stays: not vehicle events."""
    n = int(90 * RATE)
    t = np.arange(n) / RATE
    head = np.zeros(n)
    for t0 in range(30, 85, 6):
        s = np.clip((t - t0) / 0.25, 0, 1)
        back = np.clip((t - t0 - 1.0) / 0.25, 0, 1)
        head += 30 * (s * s * (3 - 2 * s) - back * back * (3 - 2 * back))
    q_t = pitch_quat(np.zeros(n))
    q_h = pitch_quat(head)
    # the head sensor 0.15 m above the neck pivot: its linear acceleration from the nod
    ang = np.radians(head)
    pos = 0.15 * np.column_stack([np.sin(ang), np.zeros(n), np.cos(ang)])
    lin_h = np.gradient(np.gradient(pos, 1 / RATE, axis=0), 1 / RATE, axis=0)
    assert np.linalg.norm(lin_h, axis=1).max() > 0.35 * G  # over the trigger
    f = analyse(write_recording(tmp_path / "n.nape", RATE, q_t, q_h, lin_trunk=in_car(np.zeros((n, 3)), RATE),
                                lin_head=lin_h))
    assert f.jolts == []
    assert f.head_turns >= 5  # counted as the wearer's own head movements


def test_braking_then_rear_impact_are_two_events_each_with_its_own_nic(tmp_path):
    """A 0.5 g braking and, 2 s after it ends, a 2 g push from behind: two events, the impact's
    NIC measured from its own onset."""
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    brake = _plateau(n, 60.0, 62.0, 0.5, [-1, 0, 0])
    push = _pulse(n, 64.5, 2.0 * G, [1, 0, 0], width_s=0.1)
    head = np.roll(push, int(0.06 * RATE), axis=0) * 1.2
    f = analyse(write_recording(tmp_path / "b.nape", RATE, q, q, lin_trunk=in_car(brake + push, RATE),
                                lin_head=brake + head))
    assert [j.cause for j in f.jolts] == ["braking", "rear_impact_like"]
    assert f.jolts[1].peak_t_s == pytest.approx(64.5, abs=0.2)
    assert f.jolts[1].nic_m2s2 > 0.5


def test_pothole_inside_a_braking_is_its_own_event(tmp_path):
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    brake = _plateau(n, 60.0, 63.0, 0.5, [-1, 0, 0])
    bump = _pulse(n, 61.5, 2.0 * G, [0, 0, 1], width_s=0.06)
    f = analyse(write_recording(tmp_path / "p.nape", RATE, q, q, lin_trunk=in_car(brake + bump, RATE),
                                lin_head=brake + bump))
    assert sorted(j.cause for j in f.jolts) == ["braking", "bump"]
    assert next(j for j in f.jolts if j.cause == "bump").peak_t_s == pytest.approx(61.5, abs=0.1)


def test_chain_of_manoeuvres_longer_than_jolt_max_is_split_not_dropped(tmp_path):
    """Accelerate, corner, corner with ~2 s gaps: 23 s in all, over jolt_max_s (15 s)."""
    n = int(150 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = (_plateau(n, 60.0, 63.0, 0.45, [1, 0, 0]) + _plateau(n, 66.0, 72.0, 0.45, [0, 1, 0])
           + _plateau(n, 75.0, 82.0, 0.45, [0, -1, 0]))
    f = analyse(write_recording(tmp_path / "c.nape", RATE, q, q, lin_trunk=in_car(lin, RATE), lin_head=lin))
    assert f.jolts[-1].end_s - f.jolts[0].start_s > AnalysisSettings().jolt_max_s
    assert [j.cause for j in f.jolts] == ["acceleration", "lateral", "lateral"]


def test_rough_road_raises_no_jolts_but_a_pothole_in_it_stands_out(tmp_path):
    """Vertical vibration of 0.12 g RMS crosses the 0.35 g trigger often; a 2 g pothole in it is found."""
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    rough = road_vibration(n, RATE, rms_g=0.12, seed=3)
    assert (np.abs(rough[:, 2]) > 0.35 * G).mean() > 0.002
    quiet = analyse(write_recording(tmp_path / "r.nape", RATE, q, q, lin_trunk=rough, lin_head=rough))
    assert quiet.jolts == []
    bump = _pulse(n, 80.0, 2.0 * G, [0, 0, 1], width_s=0.06)
    f = analyse(write_recording(tmp_path / "rb.nape", RATE, q, q, lin_trunk=rough + bump, lin_head=rough + bump))
    assert [j.cause for j in f.jolts] == ["bump"]


def test_a_manoeuvre_outside_a_vehicle_is_not_reported(tmp_path):
    """No road vibration: a sustained 0.5 g push is the wearer's own doing, not a braking."""
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = _plateau(n, 60.0, 62.0, 0.5, [-1, 0, 0])
    f = analyse(write_recording(tmp_path / "o.nape", RATE, q, q, lin_trunk=lin, lin_head=lin))
    assert f.jolts == []


def test_neutral_is_a_guess_when_the_head_starts_flexed(tmp_path):
    """A recording that starts while reading (head 40° down, trunk upright): not a neutral."""
    n = int(60 * RATE)
    f = analyse(write_recording(tmp_path / "h.nape", RATE, pitch_quat(np.zeros(n)), pitch_quat(np.full(n, 40.0))))
    assert f.calibration.method == "guess"
    assert f.calibration.guess_error_deg == pytest.approx(40, abs=3)
    assert "off by up to" in f.calibration.detail
    upright = analyse(write_recording(tmp_path / "u.nape", RATE, pitch_quat(np.zeros(n)), pitch_quat(np.zeros(n))))
    assert upright.calibration.method == "automatic" and upright.calibration.guess_error_deg is None


@pytest.mark.parametrize("neck,trunk,word", [(40, 18, "phone"), (40, 3, "phone"), (25, 20, "keyboard"),
                                             (38, 30, "keyboard")])
def test_phone_and_keyboard_told_apart_by_head_and_trunk(neck, trunk, word):
    ep = PostureEpisode("neck_flexion", 0.0, 120.0, float(neck), float(neck) + 5, mean_trunk_inclination_deg=float(trunk))
    assert pattern(ep, AnalysisSettings()).startswith(word)


def test_single_sample_glitches_raise_no_jolt_but_a_real_shock_keeps_its_grade(tmp_path):
    """One sample of one axis at ±8–12 g (a bus error) is not a shock; a 2 g pothole next to
    them is found with its full peak."""
    n = int(120 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = in_car(_pulse(n, 90.0, 2.0 * G, [0, 0, 1], width_s=0.06), RATE)
    p = write_recording(tmp_path / "g.nape", RATE, q, q, lin_trunk=lin, lin_head=lin)
    ref = analyse(p)
    assert [j.cause for j in ref.jolts] == ["bump"]
    glitchy = lin.copy()
    for t, axis, g in ((40.0, 0, 12.0), (55.5, 2, -8.0), (70.25, 1, 10.0)):
        glitchy[int(t * RATE), axis] += g * G
    f = analyse(write_recording(tmp_path / "gg.nape", RATE, q, q, lin_trunk=glitchy, lin_head=lin))
    assert [(j.cause, j.grade) for j in f.jolts] == [(j.cause, j.grade) for j in ref.jolts]
    assert f.jolts[0].peak_trunk_g == pytest.approx(ref.jolts[0].peak_trunk_g, rel=1e-3)  # VQF sees the glitch


def test_single_sample_gyro_glitches_raise_no_jolt_and_are_counted(tmp_path):
    """One gyroscope sample of one axis at ±800–2000 °/s (a bus error) would turn the re-fused
    orientation by 8–20° at 100 Hz and leak gravity into the horizontal acceleration for the
    next minute, read as braking and cornering: it is masked instead, counted as a spike."""
    n = int(150 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = in_car(np.zeros((n, 3)), RATE)
    ref = analyse(write_recording(tmp_path / "g0.nape", RATE, q, q, lin_trunk=lin, lin_head=lin))
    assert ref.jolts == [] and ref.glitches["samples"] == 0
    bad = np.zeros((n, 3))
    for t, axis, dps in ((40.0, 0, 1500.0), (55.5, 1, -2000.0), (70.25, 2, 900.0), (90.0, 1, 800.0),
                         (110.0, 0, -1200.0)):
        bad[int(t * RATE), axis] = np.radians(dps)
    f = analyse(write_recording(tmp_path / "g1.nape", RATE, q, q, lin_trunk=lin, lin_head=lin, gyr_add_trunk=bad))
    assert f.jolts == []
    assert f.glitches["by_kind"].get("spike", 0) == 5


def test_a_fast_real_turn_is_not_masked_as_a_gyro_glitch(tmp_path):
    """A 90° head-and-trunk turn in 0.2 s (peak ~700 °/s, the top of voluntary head movements)
    spans many samples: nothing is masked, at 50 Hz either."""
    for rate in (50.0, RATE):
        n = int(60 * rate)
        t = np.arange(n) / rate
        s = np.clip((t - 30.0) / 0.2, 0, 1)
        heading = 90.0 * s * s * s * (10 - 15 * s + 6 * s * s)  # minimum jerk: peak 1.875 × 90° / 0.2 s
        q = np.stack([pitch_quat(np.zeros(1), float(h))[0] for h in heading])
        f = analyse(write_recording(tmp_path / f"turn{int(rate)}.nape", rate, q, q))
        assert f.glitches["samples"] == 0, rate


def test_gyro_spike_rule_only_where_a_real_movement_spans_several_samples():
    """At 100 Hz a lone 1000 °/s sample is a glitch; at 25 Hz (40 ms a sample) a quick real
    movement may be one sample, so only range and acceleration rules apply there."""
    from nape.analysis.quality import GlitchGuard

    n = 30
    q = np.tile([1.0, 0, 0, 0], (n, 1, 1))
    acc = np.tile([0.0, 0.0, G], (n, 1, 1))
    gyr = np.zeros((n, 1, 3))
    gyr[15, 0, 2] = np.radians(1000)
    flags = np.zeros(n, np.uint8)
    assert GlitchGuard(1, AnalysisSettings()).find(flags, q, acc, gyr, period_s=0.01)[15, 0]
    assert not GlitchGuard(1, AnalysisSettings()).find(flags, q, acc, gyr, period_s=0.04).any()
    gyr[16, 0, 2] = np.radians(900)  # two samples: a movement, at any rate
    assert not GlitchGuard(1, AnalysisSettings()).find(flags, q, acc, gyr, period_s=0.01).any()


GRADE_RANK = {"mild": 0, "moderate": 1, "severe": 2}


@pytest.mark.parametrize("cause, sizes_g, shape, with_head", [
    ("braking", [0.4, 0.5, 0.6, 0.75, 0.95], "plateau", True),
    ("bump", [0.5, 0.8, 1.4, 2.0, 2.6, 3.5], "vertical", True),
    ("rear_impact_like", [0.8, 1.4, 2.0, 2.6, 3.5, 4.5], "forward", True),
    ("rear_impact_like", [0.8, 1.4, 2.0, 2.6, 3.5, 4.5], "forward", False),
])
def test_a_stronger_event_of_the_same_cause_is_never_graded_lower(tmp_path, cause, sizes_g, shape, with_head):
    """Events of one cause at rising sizes, 20 s apart (shuffled in time so the order in the
    recording is not the order of size): their grades never fall as the size rises, and the
    sizes span more than one grade (so the test can fail). Rear impacts: on NIC with a head
    sensor, on the upper back's velocity change without (grade_basis says which)."""
    order = [2, 0, 4, 1, 3, 5][: len(sizes_g)]
    n = int((60 + 20 * len(sizes_g) + 20) * RATE)
    q = pitch_quat(np.zeros(n))
    lin = np.zeros((n, 3))
    times = {}
    for slot, k in enumerate(order):
        t0 = 60.0 + 20.0 * slot
        times[k] = t0
        if shape == "plateau":
            lin += _plateau(n, t0, t0 + 2.0, sizes_g[k], [-1, 0, 0])
        else:
            axis = [0, 0, 1] if shape == "vertical" else [1, 0, 0]
            lin += _pulse(n, t0, sizes_g[k] * G, axis, width_s=0.08 if shape == "vertical" else 0.1)
    # the head lags the upper back by 0.15 s (a rear impact loads the neck through that lag: NIC)
    head = np.roll(lin, int(0.15 * RATE), axis=0) if cause == "rear_impact_like" else lin
    f = analyse(write_recording(tmp_path / "m.nape", RATE, q, q if with_head else None, lin_trunk=in_car(lin, RATE),
                                lin_head=head if with_head else None))
    grades = []
    for k in range(len(sizes_g)):  # in order of size
        j = [j for j in f.jolts if j.start_s - 1.0 <= times[k] + (1.0 if shape == "plateau" else 0.0) <= j.end_s + 1.0]
        assert [x.cause for x in j] == [cause], (sizes_g[k], [(x.cause, x.peak_t_s) for x in f.jolts])
        grades.append(GRADE_RANK[j[0].grade])
        assert j[0].grade_basis == {"braking": "vehicle", "bump": "seat"}.get(cause, "nic" if with_head else "delta_v")
    assert grades == sorted(grades), grades
    assert grades[0] < grades[-1]


def test_simulator_labels_never_grade_a_stronger_event_lower():
    """The labels' grading (same quantities and settings as the analysis): monotone in size
    per kind, each kind's range (g, or NIC m²/s² for rear impacts) spanning all three grades."""
    from nape.sim.labels import SEVERITY_THRESHOLDS, severity

    for kind in SEVERITY_THRESHOLDS:
        sizes = np.linspace(0.0, 4.0 * SEVERITY_THRESHOLDS[kind][1], 801)
        ranks = [GRADE_RANK[severity(kind, a)] for a in sizes]
        assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == 2, kind


@settings(max_examples=300, deadline=None)
@given(basis=st.sampled_from(sorted(GRADE_BOUNDS)), a=st.floats(0, 200, allow_nan=False),
       b=st.floats(0, 200, allow_nan=False), lo=st.floats(0.1, 50), span=st.floats(0.0, 50))
def test_grading_is_monotone_in_the_graded_quantity_for_any_boundaries(basis, a, b, lo, span):
    """The analysis' grading (nape.analysis.jolts.grade_of_size with each basis' settings, here
    at any valid boundaries) and the simulator labels' (nape.sim.labels.severity, defaults)
    never grade the larger of two events lower."""
    from nape.sim.labels import SEVERITY_THRESHOLDS, severity

    small, large = sorted((a, b))
    bounds = (lo, lo + span)
    assert GRADE_RANK[grade_of_size(small, bounds)] <= GRADE_RANK[grade_of_size(large, bounds)]
    d = AnalysisSettings()
    default = tuple(getattr(d, k) for k in GRADE_BOUNDS[basis])
    assert GRADE_RANK[grade_of_size(small, default)] <= GRADE_RANK[grade_of_size(large, default)]
    for kind in SEVERITY_THRESHOLDS:
        assert GRADE_RANK[severity(kind, small)] <= GRADE_RANK[severity(kind, large)]


def test_each_cause_is_graded_on_its_own_published_boundaries():
    """The labels and the analysis read the same settings per cause (one definition)."""
    from nape.sim.labels import SEVERITY_THRESHOLDS

    d = AnalysisSettings()
    bounds = {b: tuple(getattr(d, k) for k in keys) for b, keys in GRADE_BOUNDS.items()}
    assert SEVERITY_THRESHOLDS["braking"] == SEVERITY_THRESHOLDS["lateral"] == bounds["vehicle"]
    assert SEVERITY_THRESHOLDS["pothole"] == bounds["seat"]
    assert SEVERITY_THRESHOLDS["rear_impact"] == bounds["nic"]
    for keys in GRADE_BOUNDS.values():
        for k in keys:
            assert k in d.sources and d.sources[k], k  # every boundary has its published source


def test_a_smooth_road_drive_is_a_vehicle_from_the_cars_own_speed_changes(tmp_path):
    """No road vibration at all (an electric car on a smooth road): gentle speed changes and
    corners (0.12–0.2 g for 3–5 s every ~25 s) make it a drive; the same still sitting without
    them, or with the trunk bending with each push, does not."""
    n = int(300 * RATE)
    q = pitch_quat(np.zeros(n))
    lin = np.zeros((n, 3))
    dirs = ([1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0])
    for k, t0 in enumerate(range(20, 290, 25)):
        lin += _plateau(n, t0, t0 + 3 + k % 3, 0.12 + 0.02 * (k % 4), dirs[k % 4])
    drive = analyse(write_recording(tmp_path / "d.nape", RATE, q, q, lin_trunk=lin, lin_head=lin))
    assert drive.activity_s["vehicle"] >= 0.9 * 280, drive.activity_s
    assert drive.jolts == []  # under the trigger: speed changes, not jolts
    still = analyse(write_recording(tmp_path / "s.nape", RATE, q, q))
    assert still.activity_s["vehicle"] == 0
    # the same pushes, each with the trunk bending 30° (sitting down, reaching): body transitions
    t = np.arange(n) / RATE
    bend = np.zeros(n)
    for t0 in range(20, 290, 25):
        bend += 30.0 * np.clip(1 - np.abs(t - t0 - 2.0) / 2.0, 0, 1)
    qb = pitch_quat(bend)
    bending = analyse(write_recording(tmp_path / "b.nape", RATE, qb, qb, lin_trunk=lin, lin_head=lin))
    assert bending.activity_s["vehicle"] == 0, bending.activity_s
