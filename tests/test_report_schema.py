"""protocol/report.schema.json describes what nape.report writes, and rejects what it must not."""

import copy
import dataclasses
import re
import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from nape.analysis import analyse
from nape.report import to_json, write_reports
from tests.recording_factory import G, in_car, pitch_quat, write_recording

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "protocol" / "report.schema.json"
RATE = 50.0


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _errors(validator, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


def _assert_valid(validator, doc):
    errs = _errors(validator, doc)
    assert not errs, ("report JSON does not match protocol/report.schema.json (if the report gained or renamed a "
                      "field on purpose, describe it there):\n" + "\n".join(errs[:20]))


def _window(n, i0, i1, ramp=100):
    i = np.arange(n)
    return np.minimum(np.clip((i - i0) / ramp, 0, 1), np.clip((i1 - i) / ramp, 0, 1))


@pytest.fixture(scope="module")
def two_imu_report(tmp_path_factory):
    """Neck episode, trunk episode and a moderate (0.5 g) braking jolt; written by write_reports."""
    d = tmp_path_factory.mktemp("schema2")
    n = int(200 * RATE)
    trunk = 28.0 * _window(n, int(100 * RATE), int(180 * RATE))
    neck = 30.0 * _window(n, int(20 * RATE), int(95 * RATE))
    t = (np.arange(n) - int(60 * RATE)) / RATE
    lin = np.zeros((n, 3))
    lin[:, 0] = -0.5 * G * np.exp(-0.5 * (t / 0.25) ** 2)
    p = write_recording(d / "two.nape", RATE, pitch_quat(trunk), pitch_quat(trunk + neck), lin_trunk=in_car(lin, RATE),
                        lin_head=lin)
    f = analyse(p)
    paths = write_reports(f, d, "two")
    return f, _strict_json(paths["json"].read_text(encoding="utf-8"))


def _strict_json(text: str):
    """RFC 8259 JSON only: NaN / Infinity are not JSON."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_schema_is_valid_and_every_field_says_what_it_is(validator):
    """Every named property carries a description (units in the name or stated there)."""
    schema = validator.schema
    missing = []

    def described(sub) -> bool:
        if "description" in sub:
            return True
        ref = sub.get("$ref", "")
        return ref.startswith("#/$defs/") and "description" in schema["$defs"][ref.split("/")[-1]]

    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if not described(sub):
                    missing.append(f"{where}/{name}")
            for k, v in node.items():
                if k != "allOf":  # conditional constraints restate fields described elsewhere
                    walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(schema, "")
    assert not missing, missing


def test_two_imu_report_with_episodes_and_jolt_is_valid(validator, two_imu_report):
    f, doc = two_imu_report
    assert {e["kind"] for e in doc["episodes"]} == {"neck_flexion", "trunk_inclination"}
    assert [j["grade"] for j in doc["jolts"]] == ["moderate"]
    _assert_valid(validator, doc)
    _assert_valid(validator, _strict_json(json.dumps(to_json(f), default=float)))
    s = doc["series"]  # not expressible in JSON Schema: parallel arrays
    assert {len(v) for v in s.values()} == {len(s["time_s"])} and len(s["time_s"]) == 200
    assert set(s) == {"time_s", "trunk_inclination_deg", "neck_flexion_deg", "head_inclination_deg", "neck_lateral_deg",
                      "activity", "lying"}


def test_trunk_only_report_with_unmeasured_head_values_is_valid(validator, tmp_path):
    n = int(60 * RATE)
    t = (np.arange(n) - int(30 * RATE)) / RATE
    lin = np.zeros((n, 3))
    lin[:, 2] = 2.0 * G * np.exp(-0.5 * (t / 0.06) ** 2)  # a bump
    p = write_recording(tmp_path / "trunk.nape", RATE, pitch_quat(np.zeros(n)), lin_trunk=in_car(lin, RATE))
    doc = _strict_json(write_reports(analyse(p), tmp_path, "trunk")["json"].read_text(encoding="utf-8"))
    assert doc["roles"] == ["trunk"] and "neck_flexion_deg" not in doc["series"]
    assert doc["jolts"] and doc["jolts"][0]["cause"] == "bump" and doc["jolts"][0]["peak_head_g"] is None
    _assert_valid(validator, doc)


def test_report_of_damaged_recording_with_losses_is_valid(validator, tmp_path):
    n = int(60 * RATE)
    q = pitch_quat(np.zeros(n))
    p = write_recording(tmp_path / "dmg.nape", RATE, q, q, drop_packets={10, 11})
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one bit-flipped chunk
    p.write_bytes(bytes(raw))
    doc = _strict_json(json.dumps(to_json(analyse(p)), default=float))
    assert doc["lost_samples"] > 0 and doc["file_issues"][0]["kind"] == "corrupt"
    _assert_valid(validator, doc)
    notes = doc["quality_notes"]  # losses and damage in plain words, with the numbers of the JSON
    damaged = sum(g["missing_samples"] for g in doc["gaps"] if g["reason"] == "damaged file")
    radio = doc["lost_samples"] - damaged
    assert damaged > 0 and radio == 10, doc["gaps"]  # the bit flip is file damage; packets 10, 11 the radio
    assert any(n.startswith(f"{radio} samples were lost in transmission (") for n in notes), notes
    assert any(n.startswith(f"{damaged} samples are missing because the file is damaged") for n in notes), notes
    issue = doc["file_issues"][0]
    assert any(n.startswith(f"File: corrupt at byte {issue['offset_bytes']}: ") for n in notes), notes


def test_uncalibrated_recording_says_so(validator, tmp_path):
    """Bent forward from the first second (never upright): no neutral posture to calibrate on."""
    n = int(60 * RATE)
    p = write_recording(tmp_path / "bent.nape", RATE, pitch_quat(np.full(n, 50.0)), pitch_quat(np.full(n, 70.0)))
    doc = _strict_json(json.dumps(to_json(analyse(p)), default=float))
    _assert_valid(validator, doc)
    assert doc["calibration"]["method"] == "guess"
    assert any(n.startswith("Uncalibrated: ") for n in doc["quality_notes"]), doc["quality_notes"]


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("jolts"), "'jolts' is a required property"),
    (lambda d: d["jolts"][0].update(grade="extreme"), "'extreme' is not one of"),
    (lambda d: d.update(report_version=7), "3 was expected"),
    (lambda d: d["jolts"][0].update(t_s=60.0), "Additional properties are not allowed ('t_s'"),
    (lambda d: d["calibration"].update(neutral_q=[[1, 0, 0, 0]]), "Additional properties are not allowed"),
    (lambda d: d["jolts"][0]["trace"].pop("t_rel_s"), "'t_rel_s' is a required property"),
    (lambda d: d["jolts"][0]["trace"].update(source="guess"), "'guess' is not one of"),
    (lambda d: d["jolts"][0]["trace"].pop("head_gyr_dps"), "'head_gyr_dps' is a dependency of 'head_acc_g'"),
    (lambda d: d["jolts"][0].update(peak_local_time="8:42"), "does not match"),
    (lambda d: d.update(neck_score=3), "Additional properties are not allowed"),
    (lambda d: d["episodes"][0].update(duration_s=-5.0), "less than the minimum"),
    (lambda d: d["series"].pop("neck_flexion_deg"), "'neck_flexion_deg' is a required property"),
    (lambda d: d["exposure_s"]["neck_bands_s"].update({"twenty": 1.0}), "does not match"),
    (lambda d: d.update(samples="10000"), "is not of type 'integer'"),
    (lambda d: d["jolts"][0].pop("nic_m2s2"), "'nic_m2s2' is a required property"),
    (lambda d: d["calibration"].update(method="magic"), "'magic' is not one of"),
    (lambda d: d["series"]["activity"].__setitem__(0, "flying"), "'flying' is not one of"),
    (lambda d: d["settings"].pop("neck_flexion_deg"), "'neck_flexion_deg' is a required property"),
])
def test_invalid_documents_are_rejected(validator, two_imu_report, mutate, needle):
    doc = copy.deepcopy(two_imu_report[1])
    mutate(doc)
    errs = _errors(validator, doc)
    assert any(needle in e for e in errs), errs


# Names without a unit suffix: counts, text, flags, and the dimensionless BrIC.
UNITLESS = {"samples", "lost_samples", "missing_samples", "boot_number", "malformed_packets", "head_turns", "jolt_panels", "report_version", "bric",
            "fuse_on_host", "wire_format_version",
             "log_dropped_samples", "saturated_samples", "event_windows_dropped", "event_windows", "window_jolts",
             "bouts",  # counts
             "grade_value"}  # not unitless: its unit is named by the jolt's grade_basis (g, m²/s² or km/h)
UNITS = ("_s", "_min", "_deg", "_g", "_dps", "_hz", "_m2s2", "_rad_s", "_bytes", "_wxyz", "_ratio", "_kmh")


def test_every_numeric_field_name_carries_its_unit(validator):
    """Stable names with units: a number (or array of numbers) is named ``..._s``, ``..._deg``,
    ``..._g``, ``..._dps``, ... unless it is a count or dimensionless (listed above)."""
    schema = validator.schema
    bad = []

    def numeric(sub) -> bool:
        sub = schema["$defs"][sub["$ref"].split("/")[-1]] if "$ref" in sub else sub
        t = sub.get("type")
        t = t if isinstance(t, list) else [t]
        if sub.get("type") == "array":
            return numeric(sub.get("items", {}))
        return bool({"number", "integer"} & set(t))

    def walk(node, where, unit_from_parent=False):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if (isinstance(sub, dict) and numeric(sub) and not unit_from_parent and not name.endswith(UNITS)
                        and name not in UNITLESS):
                    bad.append(f"{where}/{name}")
            for k, v in node.items():
                if k == "properties":
                    for name, sub in v.items():  # a map named e.g. activity_s: its keys are seconds
                        walk(sub, f"{where}/{name}", name.endswith(UNITS))
                else:
                    walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk(schema, "")
    walk(schema["$defs"]["exposure"], "exposure_s", True)
    assert not bad, bad
    assert "t_s" not in schema["$defs"]["jolt"]["properties"] and "peak_t_s" in schema["$defs"]["jolt"]["properties"]


def test_jolt_numbers_behind_the_panel(two_imu_report):
    """The JSON carries what the panel shows: peaks, NIC, clock time, meaning and the traces."""
    f, doc = two_imu_report
    j, jf = doc["jolts"][0], f.jolts[0]
    assert j["peak_t_s"] == pytest.approx(60.0, abs=0.1) and j["peak_trunk_g"] == pytest.approx(0.5, abs=0.05)
    assert j["nic_m2s2"] == jf.nic_m2s2 and j["peak_neck_dps"] == jf.peak_neck_dps and j["peak_vehicle_g"] == jf.peak_vehicle_g
    from datetime import datetime, timedelta  # the writer stamps `created`: clock time = start + peak_t_s

    start = datetime.fromisoformat(doc["start_local"])
    assert start.utcoffset() is not None and doc["metadata"]["created"].startswith(
        start.astimezone(__import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    # start_local and peak_t_s are rounded in the JSON: the clock time agrees within a second
    assert j["peak_local_time"] in {(start + timedelta(seconds=jf.peak_t_s + d)).strftime("%H:%M:%S") for d in (-1, 0, 1)}
    assert "braking" in j["meaning"].lower() and "NIC" in j["meaning"]
    tr = j["trace"]
    assert tr["source"] == "stream" and tr["rate_hz"] == RATE and tr["complete"] is True
    t = np.array(tr["t_rel_s"])
    assert t[0] == pytest.approx(-1.0) and t[-1] == pytest.approx(2.0) and len(t) == 3 * RATE + 1
    acc = np.array(tr["trunk_acc_g"])
    assert t[np.argmax(acc)] == pytest.approx(0.0, abs=0.05) and acc.max() == pytest.approx(0.5, abs=0.05)
    assert acc[t < -0.8].max() < 0.05  # before the jolt: still
    assert len(tr["head_acc_g"]) == len(tr["head_gyr_dps"]) == len(t)
    assert doc["jolt_panels"] == 1
    assert doc["calibration"]["neutral_quat_wxyz"][0] == pytest.approx([1, 0, 0, 0], abs=0.02)


def _with_event_window(src: Path, dst: Path, trigger_s: float, rate_hz: int = 500, lose_part: bool = False) -> Path:
    """Copy a factory recording and add the EVENT packets a board sends for a jolt trigger
    at ``trigger_s``: 0.25 s before to 0.5 s after, raw at ``rate_hz``, the same braking
    profile as the stream (−0.5 g Gaussian, σ 0.25 s, at 60 s)."""
    from nape import wire
    from nape.recording import RecordingWriter, open_recording
    from tests.recording_factory import specific_force

    rec = open_recording(src)
    pre, post = int(0.25 * rate_hz), int(0.5 * rate_hz)
    t = trigger_s + (np.arange(pre + post + 1) - pre) / rate_hz
    lin = np.zeros((len(t), 3))
    lin[:, 0] = -0.5 * G * np.exp(-0.5 * ((t - 60.0) / 0.25) ** 2)
    q_trunk = pitch_quat(np.zeros(len(t)))
    q_head = pitch_quat(np.full(len(t), 30.0))  # the neck episode is on at 60 s
    acc = np.stack([specific_force(q_trunk, lin), specific_force(q_head, lin)], axis=1)
    gyr = np.zeros_like(acc)
    packets = []
    for k, i in enumerate(range(0, len(t), 9)):
        if lose_part and k == 20:
            continue
        packets.append(wire.encode_event(3, 7, i, len(t), pre, rate_hz, int(round(trigger_s * 1000)),
                                         acc[i:i + 9], gyr[i:i + 9]))
    with RecordingWriter(dst, rec.metadata, fsync_interval_s=0) as w:
        sent = False
        for host_t, p in rec.iter_packets():
            w.write_packets([p], host_t)
            if not sent and p[1] == wire.TYPE_SAMPLES and wire.decode_packet(p).seq / RATE > trigger_s + 0.6:
                w.write_packets(packets, host_t)  # the window follows once it is complete
                sent = True
    return dst


@pytest.mark.parametrize("lose_part", [False, True])
def test_event_window_traces_replace_the_stream(validator, two_imu_report, tmp_path, lose_part):
    src = Path(two_imu_report[0].path)
    p = _with_event_window(src, tmp_path / "ev.nape", trigger_s=59.79, lose_part=lose_part)
    f = analyse(p)
    doc = to_json(f)
    _assert_valid(validator, _strict_json(json.dumps(doc)))
    (j,) = doc["jolts"]
    tr = j["trace"]
    assert tr["source"] == "event window" and tr["rate_hz"] == 500 and tr["complete"] is (not lose_part)
    t = np.array(tr["t_rel_s"])
    assert len(t) == 376 - (9 if lose_part else 0)
    assert t[0] == pytest.approx(59.79 - 0.25 - j["peak_t_s"], abs=1e-3)
    acc = np.array(tr["trunk_acc_g"])
    assert acc.max() == pytest.approx(0.5, abs=0.02)  # 1 mg resolution on the wire; gravity from the pre-trigger mean
    assert t[np.argmax(acc)] + j["peak_t_s"] == pytest.approx(60.0, abs=0.02)
    assert max(tr["trunk_gyr_dps"]) < 0.2 and max(tr["head_gyr_dps"]) < 0.2
    assert not any("without a high-rate event window" in n for n in doc["quality_notes"])


def test_many_jolts_get_panels_for_the_most_severe_only(validator, two_imu_report):
    """15 jolts: the 12 most severe get a panel and a trace in the JSON; the page says how
    many more there are; the headline names the worst one with its clock time."""
    import dataclasses
    import re

    from nape.report import MAX_JOLT_PANELS, render_html

    f0 = two_imu_report[0]
    trace = dict(f0.jolts[0].trace)
    grades = ["mild"] * 10 + ["moderate"] * 4 + ["severe"]
    jolts = [dataclasses.replace(f0.jolts[0], peak_t_s=10.0 + 10 * k, start_s=9.5 + 10 * k, end_s=11.0 + 10 * k,
                                 grade=g, peak_trunk_g=0.4 + 0.01 * k, trace=trace) for k, g in enumerate(grades)]
    f = dataclasses.replace(f0, jolts=jolts)
    doc = to_json(f)
    _assert_valid(validator, _strict_json(json.dumps(doc)))
    with_trace = [j for j in doc["jolts"] if j["trace"] is not None]
    assert MAX_JOLT_PANELS == 12 and doc["jolt_panels"] == 12 and len(with_trace) == 12
    assert {j["grade"] for j in doc["jolts"] if j["trace"] is None} == {"mild"}
    # of the mild ones, the strongest get panels: the three weakest do not
    assert [j["peak_t_s"] for j in doc["jolts"] if j["trace"] is None] == [10.0, 20.0, 30.0]
    page = render_html(f)
    assert page.count('<section class="jolt"') == 12 and "3 more jolts (milder)" in page
    start = doc["start_local"][11:16]
    assert doc["headlines"][0] == (f"15 jolts, 1 severe and 4 moderate: worst hard braking at "
                                   f"{doc['jolts'][-1]['peak_local_time'][:5]} (severe).")
    assert re.fullmatch(r"\d\d:\d\d", start)
    mild = dataclasses.replace(f, jolts=jolts[:3])
    assert to_json(mild)["headlines"][0].startswith("3 jolts, all mild; strongest hard braking at ")


@pytest.mark.parametrize("seconds,text", [(7800, "2 h 10 min"), (2040, "34 min"), (200, "3 min 20 s"), (45, "45 s"),
                                          (3600, "1 h 0 min")])
def test_durations_in_plain_words(seconds, text):
    from nape.report import fmt_duration

    assert fmt_duration(seconds) == text


def test_one_jolt_and_two_hundred_read_plainly_and_say_what_to_do(two_imu_report):
    """One jolt: 'Hard braking at 08:42 (moderate)', not '1 jolt, 1 moderate: worst …'. Two hundred
    moderate ones: 'all moderate', a suggestion in 'What to do next' (a driver braking hard again
    and again has something to change; it said 'Nothing stood out'), and a jolt chart whose bars
    are too thin for a pattern (the caption says where the grades are named instead)."""
    from nape.plainwords import top_actions
    from nape.report import render_html

    f0 = two_imu_report[0]
    base = dataclasses.replace(f0.jolts[0], cause="braking", grade="moderate", trace=None)
    one = dataclasses.replace(f0, jolts=[base], episodes=[])
    h = to_json(one)["headlines"][0]
    assert re.fullmatch(r"1 jolt: hard braking at \d\d:\d\d \(moderate\)\.", h), h
    acts = top_actions(one)
    assert acts[0].startswith("You had 1 moderate jolt (hard braking): Leave more distance"), acts
    many = dataclasses.replace(f0, episodes=[], jolts=[
        dataclasses.replace(base, peak_t_s=5.0 + 0.5 * k, start_s=4.9 + 0.5 * k, end_s=5.2 + 0.5 * k) for k in range(200)])
    doc = to_json(many)
    assert doc["headlines"][0].startswith("200 jolts, all moderate: worst hard braking at "), doc["headlines"][0]
    acts = top_actions(many)
    assert acts[0].startswith("You had 200 moderate jolts (all hard braking): "), acts
    assert not any(a.startswith("Nothing stood out") for a in acts)
    import html

    page = html.unescape(render_html(many))
    assert "the list below names each one's grade" in page and "orange, striped" not in page
    assert "All 200 jolts (tap to show)" in page
    few = html.unescape(render_html(dataclasses.replace(many, jolts=many.jolts[:3])))
    assert "moderate (orange, striped)" in few


def test_a_fraction_of_a_second_missing_does_not_read_as_missing_data(two_imu_report):
    """'The figures below rest on 7 min 41 s of valid data (100 % of 7 min 41 s recorded)' said
    nothing: a gap the page's words cannot show is 'all valid'; a real one still shows."""
    from nape.report.recording import headlines, valid_words

    f0 = two_imu_report[0]
    almost = dataclasses.replace(f0, valid_s=f0.duration_s - 0.3, low_coverage=False)
    assert valid_words(almost) == "all valid"
    assert not any(h.startswith("The figures below rest on") for h in headlines(almost))
    short = dataclasses.replace(f0, valid_s=f0.duration_s - 30.0, low_coverage=False)
    assert valid_words(short) != "all valid"
    assert any(h.startswith("The figures below rest on") for h in headlines(short))


def test_a_recording_past_midnight_says_which_day(two_imu_report, validator):
    """A 16 h day from 16:00 listed 00:02 after 22:02 with nothing to tell the days apart: past
    the start's midnight a page time says 'next day' / 'on day 3'; the JSON keeps 'HH:MM:SS'
    (its schema). Long totals read in hours ('2 h 40 min', not '159 min 57 s')."""
    from datetime import datetime, timedelta

    from nape.plainwords import top_actions
    from nape.report.recording import clock, start_time

    f, _doc = two_imu_report
    st = start_time(f)
    midnight = datetime.combine(st.date() + timedelta(days=1), datetime.min.time(), tzinfo=st.tzinfo)
    after = (midnight - st).total_seconds() + 90
    assert "day" not in clock(f, 10.0)
    assert clock(f, after).endswith(" next day") and re.fullmatch(r"\d\d:\d\d:\d\d", clock(f, after, day=False))
    assert clock(f, after + 86400, seconds=False).endswith(" on day 3")
    ep = dataclasses.replace(f.episodes[0], start_s=after, end_s=after + 9597.0)
    late = dataclasses.replace(f, episodes=[ep], duration_s=after + 9700.0)
    doc = to_json(late)
    assert re.fullmatch(r"\d\d:\d\d:\d\d", doc["episodes"][0]["start_local_time"])
    _assert_valid(validator, _strict_json(json.dumps(doc)))
    acts = top_actions(late)
    assert any("(2 h 39 min of long poor-posture stretches" in a for a in acts), acts
