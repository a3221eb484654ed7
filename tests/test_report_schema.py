"""protocol/report.schema.json describes what nape.report writes, and rejects what it must not."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from nape.analysis import analyse
from nape.report import to_json, write_reports
from tests.recording_factory import G, pitch_quat, write_recording

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
    p = write_recording(d / "two.nape", RATE, pitch_quat(trunk), pitch_quat(trunk + neck), lin_trunk=lin,
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
    assert {len(v) for v in s.values()} == {len(s["t_s"])} and len(s["t_s"]) == 200
    assert set(s) == {"t_s", "trunk_inclination_deg", "neck_flexion_deg", "head_inclination_deg", "neck_lateral_deg",
                      "activity", "lying"}


def test_trunk_only_report_with_unmeasured_head_values_is_valid(validator, tmp_path):
    n = int(60 * RATE)
    t = (np.arange(n) - int(30 * RATE)) / RATE
    lin = np.zeros((n, 3))
    lin[:, 2] = 2.0 * G * np.exp(-0.5 * (t / 0.06) ** 2)  # a bump
    p = write_recording(tmp_path / "trunk.nape", RATE, pitch_quat(np.zeros(n)), lin_trunk=lin)
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


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("jolts"), "'jolts' is a required property"),
    (lambda d: d["jolts"][0].update(grade="extreme"), "'extreme' is not one of"),
    (lambda d: d.update(report_version=7), "1 was expected"),
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
