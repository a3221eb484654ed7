"""The neutral from walking: a head sensor worn at an angle (cap, glasses, ear hook) never
looks upright at a still start, so its upright reference comes from walking."""

import numpy as np

from nape import quat
from nape.analysis import analyse
from nape.settings import AnalysisSettings
from tests.recording_factory import G, pitch_quat, write_recording

RATE = 50.0


def _mounted(q_body: np.ndarray, deg: float, axis=(0.0, 1.0, 0.0)) -> np.ndarray:
    """The sensor's orientation when it is worn turned by ``deg`` about ``axis`` (body frame)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    h = np.radians(deg) / 2
    m = np.concatenate([[np.cos(h)], np.sin(h) * a])
    return quat.mul(q_body, np.broadcast_to(m, q_body.shape))


def _day(tmp_path, mount_deg: float, read_deg: float = 35.0, walk_head_deg: float = 0.0, name: str = "r.nape",
         axis=(0.0, 1.0, 0.0)):
    """Sitting still reading (head flexed ``read_deg``, back upright) for 3 min, walking 2 min
    (head ``walk_head_deg``), then reading again for 5 min: never still with the head upright;
    the head sensor worn turned by ``mount_deg``."""
    segs = [(180, read_deg, False), (120, walk_head_deg, True), (300, read_deg, False)]
    n = int(sum(d for d, _, _ in segs) * RATE)
    head = np.concatenate([np.full(int(d * RATE), a) for d, a, _ in segs])
    walking = np.concatenate([np.full(int(d * RATE), w) for d, _, w in segs])
    # smooth the head's changes over ~2 s so the angular rates stay plausible
    k = int(2 * RATE)
    head = np.convolve(np.pad(head, (k, k), mode="edge"), np.ones(k) / k, mode="same")[k:-k]
    t = np.arange(n) / RATE
    lin = np.zeros((n, 3))
    lin[:, 2] = np.where(walking, 0.25 * G * np.sin(2 * np.pi * 1.8 * t), 0.0)  # steps at 1.8 Hz
    lin[:, 0] = np.where(walking, 0.1 * G * np.sin(2 * np.pi * 0.9 * t), 0.0)
    sway = np.where(walking, 2.0 * np.sin(2 * np.pi * 0.9 * t), 0.0)  # the body rocks with the steps
    q_t = pitch_quat(sway)
    q_h = _mounted(pitch_quat(head + sway), mount_deg, axis)
    return write_recording(tmp_path / name, RATE, q_t, q_h, lin_trunk=lin, lin_head=lin)


def _neck_episode_mins(f) -> float:
    return sum(e.duration_s for e in f.episodes if e.kind == "neck_flexion") / 60


def test_tilted_head_sensor_takes_its_neutral_from_walking(tmp_path):
    f = analyse(_day(tmp_path, mount_deg=30.0))
    cal = f.calibration
    assert cal.method == "walking"
    assert "head" in cal.walking_reference["used_for"] and "upper back" not in cal.walking_reference["used_for"]
    assert cal.walking_reference["walk_s"] >= 60
    assert cal.guess_error_deg is not None and cal.guess_error_deg < 10
    # the reading at the end is found (and the one at the start, measured from walking)
    assert _neck_episode_mins(f) > 6
    eps = [e for e in f.episodes if e.kind == "neck_flexion"]
    assert all(abs(e.mean_deg - 35) < 6 for e in eps)
    assert any(e.start_s > 300 for e in eps)


def test_walking_reference_copes_with_any_mounting_axis(tmp_path):
    for i, (deg, axis) in enumerate([(30.0, (1.0, 0.0, 0.0)), (45.0, (1.0, 1.0, 0.3)), (-70.0, (0.0, 1.0, 0.0)),
                                     (90.0, (0.0, 1.0, 0.0))]):
        f = analyse(_day(tmp_path, mount_deg=deg, axis=axis, name=f"m{i}.nape"))
        eps = [e for e in f.episodes if e.kind == "neck_flexion"]
        assert any(e.start_s > 300 and abs(e.mean_deg - 35) < 8 for e in eps), (deg, axis, f.calibration.detail)


def test_bent_head_that_looks_level_is_flagged_not_hidden(tmp_path):
    """Reading (35° bent) through a sensor worn 30° the other way looks level: the still start
    is kept (a bowed walk would look the same), but the report says how far it is from walking."""
    from nape.plainwords import calibration_notes

    f = analyse(_day(tmp_path, mount_deg=-30.0))
    ref = f.calibration.walking_reference
    assert f.calibration.method == "automatic" and ref["reason"] == "disagreed" and ref["apart_deg"][1] > 30
    words = " ".join(calibration_notes(f.calibration.to_dict(), f.series, f.settings))
    assert "differently while you walked" in words and "35°" in words, words


def test_walks_that_disagree_are_not_a_reference(tmp_path):
    """One walk looking ahead, one looking at a phone (40° bowed): the head's walking direction
    is unknown, so the neutral stays the plain guess it was."""
    segs = [(120, 35.0, False), (60, 0.0, True), (60, 35.0, False), (60, 40.0, True), (120, 35.0, False)]
    head = np.concatenate([np.full(int(d * RATE), a) for d, a, _ in segs])
    walking = np.concatenate([np.full(int(d * RATE), w) for d, _, w in segs])
    k = int(2 * RATE)
    head = np.convolve(np.pad(head, (k, k), mode="edge"), np.ones(k) / k, mode="same")[k:-k]
    n, t = len(head), np.arange(len(head)) / RATE
    lin = np.zeros((n, 3))
    lin[:, 2] = np.where(walking, 0.25 * G * np.sin(2 * np.pi * 1.8 * t), 0.0)
    sway = np.where(walking, 2.0 * np.sin(2 * np.pi * 0.9 * t), 0.0)
    f = analyse(write_recording(tmp_path / "p.nape", RATE, pitch_quat(sway), _mounted(pitch_quat(head + sway), 30.0),
                                lin_trunk=lin, lin_head=lin))
    assert f.calibration.walking_reference["reason"] == "walks_disagree"
    assert f.calibration.method == "guess"


def test_level_sensor_and_upright_start_keep_the_still_neutral(tmp_path):
    f = analyse(_day(tmp_path, mount_deg=0.0, read_deg=0.0))
    assert f.calibration.method == "automatic"
    ref = f.calibration.walking_reference
    assert ref is not None and ref["used_for"] == [] and max(ref["apart_deg"]) < 3
    assert not [e for e in f.episodes if e.kind == "neck_flexion"]


def test_without_walking_the_neutral_stays_a_plain_guess(tmp_path):
    n = int(300 * RATE)
    q_t = pitch_quat(np.zeros(n))
    q_h = _mounted(pitch_quat(np.full(n, 35.0)), 30.0)
    f = analyse(write_recording(tmp_path / "w.nape", RATE, q_t, q_h))
    assert f.calibration.method == "guess" and f.calibration.walking_reference is None


def test_walking_search_is_a_setting(tmp_path):
    f = analyse(_day(tmp_path, mount_deg=30.0), AnalysisSettings(calib_walk_search_s=0))
    assert f.calibration.method == "guess" and f.calibration.walking_reference is None


def test_report_says_the_neutral_came_from_walking_and_is_valid(tmp_path):
    import json

    from jsonschema import Draft202012Validator

    from nape.report import to_json
    from nape.report.recording import how_sure
    from tests.test_report_schema import SCHEMA_PATH

    f = analyse(_day(tmp_path, mount_deg=30.0))
    doc = json.loads(json.dumps(to_json(f), default=float))
    errs = list(Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))).iter_errors(doc))
    assert not errs, [e.message for e in errs[:5]]
    assert doc["calibration"]["method"] == "walking"
    assert doc["calibration"]["walking_reference"]["used_for"] == ["head"]
    words = " ".join(doc["quality_notes"])
    assert "while you walked" in words and "head sensor" in words, words
    assert "walking" in how_sure(f)


def test_sensors_worn_at_an_angle_still_find_the_upright_start(tmp_path):
    """Upright and still at the start, but both sensors worn 40° off level: the old z-axis tests
    reject the start and take the first still moment that happens to look level — here the
    reading that follows; tested against walking the start is upright."""
    segs = [(60, 0.0, 0.0, False), (120, 15.0, 35.0, False), (120, 0.0, 5.0, True), (300, 15.0, 35.0, False)]
    trunk = np.concatenate([np.full(int(d * RATE), a) for d, a, _, _ in segs])
    head = np.concatenate([np.full(int(d * RATE), a + b) for d, a, b, _ in segs])
    walking = np.concatenate([np.full(int(d * RATE), w) for d, _, _, w in segs])
    k = int(2 * RATE)
    trunk, head = (np.convolve(np.pad(x, (k, k), mode="edge"), np.ones(k) / k, mode="same")[k:-k] for x in (trunk, head))
    n, t = len(trunk), np.arange(len(trunk)) / RATE
    lin = np.zeros((n, 3))
    lin[:, 2] = np.where(walking, 0.25 * G * np.sin(2 * np.pi * 1.8 * t), 0.0)
    q_t = _mounted(pitch_quat(trunk), -40.0)  # upright back reads 40° back: beyond upright_tilt_deg
    q_h = _mounted(pitch_quat(head), -30.0, (1.0, 0.0, 0.0))
    f = analyse(write_recording(tmp_path / "a.nape", RATE, q_t, q_h, lin_trunk=lin, lin_head=lin))
    cal = f.calibration
    assert cal.method == "automatic" and cal.start_s < 30, cal.detail
    assert cal.walking_reference["reason"] == "tilted_mount"
    necks = [e for e in f.episodes if e.kind == "neck_flexion"]
    assert any(e.start_s > 300 and abs(e.mean_deg - 35) < 6 for e in necks), [(e.start_s, e.mean_deg) for e in necks]
