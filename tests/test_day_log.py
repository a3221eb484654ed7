"""Mixed-rate recordings: the board's offline day log (wire types 3 LOG and 4 MARKS) on the host.

Codec and recorder: MARKS decoded and rejected as protocol/SPEC.md type 4 says, LOG and MARKS
stored and deduplicated. Analysis: LOG spans give posture from the board's quaternions at
10 Hz that agrees with the full-rate analysis of the same simulated wearer; jolts in LOG spans
come from the board's EVENT windows, found and graded; nothing crashes on all-LOG,
alternating or truncated recordings; what was dropped is said.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from bench import fuzz
from nape import wire, wire_log, wire_marks
from nape.analysis import analyse
from nape.errors import PacketError
from nape.recorder import REASON_LOG_FULL, record
from nape.recording import RecordingWriter, open_recording
from nape.report import quality_notes, render_html, to_json
from tests.recording_factory import body_rates, pitch_quat, specific_force
from tests.test_recorder import Scripted

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "report.schema.json").read_text("utf-8"))


# ---------------------------------------------------------------- MARKS codec

def _marks(n=3, mark_id=7, mask=3):
    return wire_marks.encode_marks_packet(mask, mark_id, [(1000 * i, 1 + i % 7, i & 3, 10 * i, 100 * i) for i in range(n)])


def test_marks_round_trip_and_ids_wrap():
    p = wire.decode_packet(_marks(19, 65534))
    assert isinstance(p, wire_marks.MarksPacket) and p.count == 19
    assert [m.mark_id for m in p.marks[:3]] == [65534, 65535, 0]
    assert p.marks[3].kind == wire_marks.LOG_DROPPED and p.marks[3].b == 30 and p.marks[3].c == 300
    assert p.marks[0].name == "alert_start"


@pytest.mark.parametrize("mutate,words", [
    (lambda b: b[:-1], "length"),
    (lambda b: b + b"\0", "length"),
    (lambda b: b[:3] + bytes([0]) + b[4:], "count is 0"),
    (lambda b: b[:3] + bytes([20]) + b[4:], "count is 20"),
    (lambda b: b[:6] + b"\x01\x00" + b[8:], "reserved"),
    (lambda b: b[:12] + bytes([8]) + b[13:], "unknown kind 8"),
    (lambda b: b[:12] + bytes([0]) + b[13:], "unknown kind 0"),
    (lambda b: bytes([2]) + b[1:], "version"),
    (lambda b: b[:2] + bytes([4]) + b[3:], "imu_mask"),
    (lambda b: b[:2] + bytes([0]) + b[3:], "imu_mask"),
    (lambda b: b[:5], "too short"),
])
def test_bad_marks_are_one_clear_error(mutate, words):
    with pytest.raises(PacketError) as e:
        wire.decode_packet(mutate(_marks()))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_the_bulk_decoder_hands_log_and_marks_over_and_counts_bad_ones():
    q = np.tile([1.0, 0, 0, 0], (5, 2, 1))
    log = wire_log.encode_log_packet(3, 10, 1000, 100, q)
    bad = _marks()[:-1]
    off: list = []
    arrays, errors = wire.decode_samples_many([log, _marks(), bad], offline=off)
    assert arrays == {} and [i for i, _ in errors] == [2]
    assert [type(p).__name__ for _, p in off] == ["LogPacket", "MarksPacket"]
    arrays, errors = wire.decode_samples_many([log, _marks(), bad])  # without a list: checked, not kept
    assert arrays == {} and [i for i, _ in errors] == [2]


VECTORS = Path(__file__).resolve().parents[1] / "protocol" / "vectors" / "marks.json"


@pytest.mark.skipif(not VECTORS.exists(), reason="protocol/vectors/marks.json not written yet (the firmware side)")
def test_marks_vectors_shared_with_the_firmware():
    cases = json.loads(VECTORS.read_text("utf-8"))
    assert any(c["valid"] for c in cases) and any(not c["valid"] for c in cases)
    for c in cases:
        data = bytes.fromhex(c["hex"])
        if not c["valid"]:
            with pytest.raises(PacketError, match=c["error"]):
                wire.decode_packet(data)
            continue
        p = wire.decode_packet(data)
        d = c["decoded"]
        assert (p.imu_mask, p.mark_id, p.count) == (d["imu_mask"], d["mark_id"], d.get("count", len(d["marks"])))
        assert [(m.t_ms, m.kind, m.a, m.b, m.c) for m in p.marks] == [
            (m["t_ms"], m["kind"], m["a"], m["b"], m["c"]) for m in d["marks"]]
        assert wire_marks.encode_marks_packet(p.imu_mask, p.mark_id, [(m.t_ms, m.kind, m.a, m.b, m.c)
                                                                     for m in p.marks]) == data


MARKS_FIELDS = {"version": (0, 1), "type": (1, 1), "mask": (2, 1), "count": (3, 1), "mark_id": (4, 2),
                "reserved": (6, 2), "t_ms": (8, 4), "kind": (12, 1), "a": (13, 1), "b": (14, 2), "c": (16, 4)}
LOG_FIELDS = {"version": (0, 1), "type": (1, 1), "mask": (2, 1), "count": (3, 1), "seq": (4, 4), "t_ms": (8, 4),
              "period_ms": (12, 2), "quat0": (14, 3), "quat_last": (-3, 3)}


def _mutated(b: bytes, off: int, size: int, value: int) -> bytes:
    b = bytearray(b)
    off = off % len(b)
    b[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(b)


def _check_against_spec(b: bytes):
    legal = fuzz.spec_legal(b)
    try:
        pkt = wire.decode_packet(b)
    except PacketError as e:
        assert not legal, f"refused a valid packet: {e}"
        assert str(e) and "\n" not in str(e)
        return None
    assert legal, "accepted an invalid packet"
    return pkt


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 19), mark_id=st.integers(0, 65535), field=st.sampled_from(sorted(MARKS_FIELDS)),
       value=st.integers(0, 2**32 - 1))
def test_marks_packet_with_one_field_mutated(n, mark_id, field, value):
    off, size = MARKS_FIELDS[field]
    pkt = _check_against_spec(_mutated(_marks(n, mark_id), off, size, value))
    if pkt is not None:
        assert isinstance(pkt, wire_marks.MarksPacket | wire.SamplesPacket | wire.EventPacket | wire_log.LogPacket)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=st.sampled_from([1, 2, 3]), n=st.integers(1, 38), seed=st.integers(0, 2**16),
       field=st.sampled_from(sorted(LOG_FIELDS)), value=st.integers(0, 2**32 - 1))
def test_log_packet_with_one_field_mutated(mask, n, seed, field, value):
    k = 1 + (mask == 3)
    q = np.random.default_rng(seed).normal(size=(n, k, 4))
    b = wire_log.encode_log_packet(mask, seed, seed * 7, 100, q)
    off, size = LOG_FIELDS[field]
    _check_against_spec(_mutated(b, off, size, value))


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=0, max_size=300), ptype=st.sampled_from([3, 4]))
def test_random_bodies_of_types_3_and_4_never_crash(data, ptype):
    _check_against_spec(bytes([1, ptype]) + data)


# ---------------------------------------------------------------- recorder

def test_the_recorder_keeps_log_and_marks_once_and_names_a_log_full_gap(tmp_path):
    q = np.tile([1.0, 0, 0, 0], (5, 2, 1))
    samples = wire.encode_samples(3, 0, 0, 10000, np.zeros(5, np.uint8), q, np.zeros((5, 2, 3)), np.zeros((5, 2, 3)))
    drop = wire_marks.encode_marks_packet(3, 0, [(60, wire_marks.LOG_DROPPED, 0, 20, 5)])
    log1 = wire_log.encode_log_packet(3, 25, 300, 100, q)  # seqs 5..24 were dropped by the board
    script = [("stream", samples), ("stream", drop), ("stream", drop), ("stream", log1), ("stream", log1),
              ("stream", wire_marks.encode_marks_packet(3, 1, [(900, wire_marks.OFFLINE_END, 0, 0, 30)]))]
    path = tmp_path / "r.nape"
    stats = asyncio.run(record(Scripted(script), path, chunk_interval_s=0))
    assert stats.log_samples == 5 and stats.samples == 10 and stats.marks == 2
    assert stats.duplicate_samples == 5 and stats.lost_samples == 20 and stats.malformed == 0
    types = [p[1] for _t, p in open_recording(path).iter_packets()]
    assert types == [1, 4, 3, 4]  # the repeats are not in the file
    (gap,) = [n for _t, n in open_recording(path).iter_notes() if n.get("event") == "gap"]
    assert gap["reason"] == REASON_LOG_FULL and gap["from_seq"] == 5 and gap["missing_samples"] == 20


# ---------------------------------------------------------------- synthetic mixed recordings

RATE = 100.0


def _write(path: Path, pitch_t, pitch_h, in_log, marks=(), events=(), cut_bytes=0, drop_log=None):
    """SAMPLES where not ``in_log`` (per 100 Hz sample), LOG (every 10th sample) where it is;
    one seq space. ``drop_log``: (first, last) LOG sample numbers the board dropped (not written)."""
    qt, qh = pitch_quat(pitch_t), pitch_quat(pitch_h, heading_deg=0.0)
    q = np.stack([qt, qh], axis=1)
    acc = np.stack([specific_force(qt, np.zeros((len(qt), 3))), specific_force(qh, np.zeros((len(qh), 3)))], axis=1)
    gyr = np.stack([body_rates(qt, RATE), body_rates(qh, RATE)], axis=1)
    n = len(qt)
    packets, seq, log_no = [], 0, 0
    cuts = [0] + list(np.flatnonzero(in_log[1:] != in_log[:-1]) + 1) + [n]
    for i0, i1 in zip(cuts[:-1], cuts[1:]):
        if not in_log[i0]:
            for i in range(i0, i1, 10):
                j = min(i1, i + 10)
                packets.append(wire.encode_samples(3, seq, i * 10, 10000, np.zeros(j - i, np.uint8), q[i:j], acc[i:j],
                                                   gyr[i:j]))
                seq += j - i
            continue
        idx = np.arange(i0, i1, 10)
        for p in range(0, len(idx), 38):
            sel = idx[p:p + 38]
            keep = [s for s in range(len(sel)) if drop_log is None or not drop_log[0] <= log_no + s < drop_log[1]]
            if keep:
                k0 = keep[0]
                sel2 = sel[k0:keep[-1] + 1]
                packets.append(wire_log.encode_log_packet(3, seq + k0, int(sel2[0] * 10), 100, q[sel2]))
            seq += len(sel)
            log_no += len(sel)
    packets += list(events)
    packets += list(marks)
    meta = {"imu_roles": ["trunk", "head"], "sample_rate_hz": RATE, "source": "simulated", "wire_format_version": 1}
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for k in range(0, len(packets), 50):
            w.write_packets(packets[k:k + 50], 1.7e9 + k)
    if cut_bytes:
        data = path.read_bytes()
        path.write_bytes(data[:-cut_bytes])
    return path


def _profile(n_s: float, flex_from: float, flex_to: float, deg: float = 35.0, trunk: float = 0.0):
    t = np.arange(int(n_s * RATE)) / RATE
    head = np.where((t >= flex_from) & (t < flex_to), deg, 0.0)
    return t, np.full(len(t), trunk), head


def _schema_ok(f):
    doc = json.loads(json.dumps(to_json(f), default=float))
    errs = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in Draft202012Validator(SCHEMA).iter_errors(doc)]
    assert not errs, errs


def test_an_all_log_recording_is_analysed_from_the_boards_quaternions(tmp_path):
    t, trunk, head = _profile(600, 120, 420)
    f = analyse(_write(tmp_path / "log.nape", trunk, head, np.ones(len(t), bool)))
    assert f.rates["full_rate_s"] == 0 and f.rates["reduced_rate_s"] == pytest.approx(600, abs=1)
    assert [s["rate"] for s in f.rates["spans"]] == ["reduced"] and "10 Hz" in f.rates["meaning"]
    assert f.calibration.method == "automatic" and "day log" in f.calibration.detail
    (ep,) = [e for e in f.episodes if e.kind == "neck_flexion"]
    assert ep.start_s == pytest.approx(120, abs=3) and ep.duration_s == pytest.approx(300, rel=0.02)
    assert ep.mean_deg == pytest.approx(35, abs=1.5)
    assert "board's own fusion" in f.orientation_source
    assert f.activity_s["walking"] == 0 and f.activity_s["vehicle"] == 0
    _schema_ok(f)


def test_alternating_rates_give_one_episode_and_no_interpolation_across_a_change(tmp_path):
    t, trunk, head = _profile(600, 100, 500)
    in_log = (t // 20).astype(int) % 2 == 1  # 20 s SAMPLES, 20 s LOG, ...
    f = analyse(_write(tmp_path / "alt.nape", trunk, head, in_log))
    (ep,) = [e for e in f.episodes if e.kind == "neck_flexion"]
    assert ep.duration_s == pytest.approx(400, rel=0.02) and ep.mean_deg == pytest.approx(35, abs=1.5)
    spans = f.rates["spans"]
    assert len(spans) == 30 and {s["rate"] for s in spans} == {"full", "reduced"}
    assert f.rates["full_rate_s"] == pytest.approx(300, abs=2) and f.rates["reduced_rate_s"] == pytest.approx(300, abs=2)
    assert f.lost_samples == 0 and f.gaps == []
    neck = np.array(f.series["neck_flexion_deg"])
    assert np.nanmax(np.abs(neck)) < 37  # no overshoot or spike at the 29 rate changes
    _schema_ok(f)


def test_a_recording_cut_inside_a_log_packet_is_read_up_to_the_cut(tmp_path):
    t, trunk, head = _profile(300, 60, 240)
    in_log = t >= 100
    f = analyse(_write(tmp_path / "cut.nape", trunk, head, in_log, cut_bytes=100))
    assert f.file_issues and f.rates["reduced_rate_s"] > 150
    assert any(e.kind == "neck_flexion" for e in f.episodes)


def test_dropped_log_is_a_gap_with_its_reason_and_alerts_come_from_marks(tmp_path):
    t, trunk, head = _profile(900, 200, 700)
    in_log = (t >= 100) & (t < 800)
    first_log = 100 * 100  # seq of the first LOG sample: 100 s of SAMPLES before
    marks = [wire_marks.encode_marks_packet(3, 0, [
        (100_000, wire_marks.OFFLINE_START, 0, 0, first_log),
        (100_000, wire_marks.LOG_DROPPED, 0, 600, first_log),
        (262_000, wire_marks.ALERT_START, wire_marks.ALERT_NECK, 0, 0),
        (700_500, wire_marks.ALERT_END, wire_marks.ALERT_NECK, 0, 0),
        (800_000, wire_marks.OFFLINE_END, 0, 0, first_log + 7000)]),
        wire_marks.encode_marks_packet(3, 1, [(100_000, wire_marks.LOG_DROPPED, 0, 600, first_log)])]  # a repeat
    f = analyse(_write(tmp_path / "drop.nape", trunk, head, in_log, marks=marks, drop_log=(0, 600)))
    (gap,) = f.gaps
    assert gap["reason"] == REASON_LOG_FULL and gap["missing_samples"] == 600
    assert gap["start_s"] == pytest.approx(100, abs=0.5) and gap["duration_s"] == pytest.approx(60, abs=0.5)
    assert f.rates["log_dropped_samples"] == 600 and "full" in f.rates["dropped_words"]
    assert f.alerts == [{"start_s": pytest.approx(262, abs=0.2), "end_s": pytest.approx(700.5, abs=0.2),
                         "neck": True, "trunk": False}]
    _schema_ok(f)
    html = render_html(f)
    assert "reduced rate" in html and "10 Hz" in html and "log full" in html


# ---------------------------------------------------------------- the simulated wearer

@pytest.fixture(scope="module")
def wearer(tmp_path_factory):
    """A simulated mixed day (desk, drive, bed; 40 min): once at full rate, once with the
    middle 60 % as the board's day log."""
    from nape.sim import simulate
    from nape.sim.day_log import write_day_log_recording
    from nape.sim.scenarios import scenario
    from nape.sim.to_recording import write_truth_recording

    script, st_ = scenario(3, "mixed", minutes=40, sensor="icm42688")
    sim = simulate(script, 3, st_)
    d = tmp_path_factory.mktemp("daylog")
    span = (0.2 * sim.t[-1], 0.8 * sim.t[-1])
    write_truth_recording(sim, d / "full.nape")
    info = write_day_log_recording(sim, d / "mixed.nape", [span])
    return sim, span, analyse(d / "full.nape"), analyse(d / "mixed.nape"), info


def test_posture_in_the_log_span_agrees_with_the_full_rate_analysis(wearer):
    sim, (a, b), full, mixed, _ = wearer

    def inside(f):
        return [e for e in f.episodes if e.start_s >= a and e.end_s <= b]

    ef, em = inside(full), inside(mixed)
    assert len(ef) >= 3 and [e.kind for e in em] == [e.kind for e in ef]
    for x, y in zip(ef, em):
        assert y.duration_s == pytest.approx(x.duration_s, rel=0.05)  # measured: within 1 %
        assert y.start_s == pytest.approx(x.start_s, abs=5)
        assert y.mean_deg == pytest.approx(x.mean_deg, abs=1.5)
    # per held posture (simulator labels) in the span: the mean angles of the two analyses
    tf, tm = np.array(full.series["time_s"]), np.array(mixed.series["time_s"])
    diffs = {k: [] for k in ("trunk_inclination_deg", "neck_flexion_deg")}
    for p in sim.labels.postures:
        if p.t_start < a + 5 or p.t_end > b or p.t_end - p.t_start < 30:
            continue
        for k in diffs:
            sf = (tf >= p.t_start + 5) & (tf < p.t_end - 5)
            sm = (tm >= p.t_start + 5) & (tm < p.t_end - 5)
            diffs[k].append(np.mean(np.array(mixed.series[k])[sm]) - np.mean(np.array(full.series[k])[sf]))
    assert len(diffs["trunk_inclination_deg"]) >= 10
    for k, v in diffs.items():
        assert np.max(np.abs(v)) < 1.5, (k, v)  # measured: 0.6° trunk, 0.4° neck at most
    # lying and its side are told from the board's orientation as at full rate
    for k in ("lying_supine", "lying_side", "lying_prone"):
        assert mixed.activity_s[k] == pytest.approx(full.activity_s[k], abs=5)
    # what needs the accelerometer is not measured in the span, and said so
    assert mixed.activity_s["vehicle"] < full.activity_s["vehicle"]
    assert "walking and vehicle rides not measured" in mixed.rates["meaning"]


def test_jolts_in_the_log_span_come_from_the_boards_windows_graded_like_the_stream(wearer):
    sim, (a, b), full, mixed, info = wearer
    labels = [e for e in sim.labels.events if e.kind != "head_turn" and a <= e.t_peak < b]
    assert len(info["windows"]) == len(labels) >= 10
    cause = {"pothole": "bump", "rear_impact": "rear_impact_like"}

    def matched(f):
        out = []
        for e in labels:
            js = [j for j in f.jolts if abs(j.peak_t_s - e.t_peak) <= 1.5]
            out.append((e, js[0] if js else None))
        return out

    mf, mm = matched(full), matched(mixed)
    found_full = sum(j is not None for _, j in mf)
    found_log = sum(j is not None for _, j in mm)
    assert found_log >= found_full - 1 and found_log >= 8
    right = sum(j is not None and j.cause == cause.get(e.kind, e.kind) and j.grade == e.severity for e, j in mm)
    assert right >= 0.8 * found_log
    for _e, j in mm:
        if j is not None:
            assert j.source == "event window" and j.trace is not None and j.trace["rate_hz"] == 100.0
    assert mixed.rates["window_jolts"] == found_log


@pytest.mark.parametrize("width", [390, 1280])
def test_the_report_shows_where_the_rate_was_reduced_in_a_browser(wearer, browser, tmp_path, width):
    _sim, _span, _full, mixed, _ = wearer
    page = tmp_path / "daylog.html"
    page.write_text(render_html(mixed), encoding="utf-8")
    browser.viewport(width, 900, mobile=width < 500, scale=2 if width < 500 else 1)
    browser.load(page.as_uri())
    assert not browser.errors()
    assert browser.js("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    legend = browser.js("Array.from(document.querySelectorAll('#timeline .legendtext')).map(e => e.textContent)")
    assert any("reduced rate" in x for x in legend), legend
    # the strip is drawn: a shape of the reduced-rate colour in the timeline
    fills = browser.js("Array.from(document.querySelectorAll('#timeline .shapelayer path'))"
                       ".map(e => e.style.fill || e.getAttribute('fill'))")
    assert any("79, 195, 247" in (x or "") or "4fc3f7" in (x or "").lower() for x in fills), fills
    text = browser.js("document.body.innerText")
    assert "Light-blue strip along the bottom: reduced rate" in text and "10 Hz" in text
    art = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
    art.mkdir(parents=True, exist_ok=True)
    browser.js("document.getElementById('timeline').scrollIntoView()")
    browser.screenshot(art / f"daylog-report-{width}.png")


def test_nape_decode_prints_log_and_marks_packets(capsys):
    from nape.cli import main

    assert main(["decode", _marks(2, 9).hex()]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "MarksPacket" and [m["kind_name"] for m in out["marks"]] == ["alert_start", "alert_end"]
    log = wire_log.encode_log_packet(1, 5, 100, 100, np.tile([1.0, 0, 0, 0], (2, 1, 1)))
    assert main(["decode", log.hex()]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "LogPacket" and out["period_ms"] == 100 and len(out["quat"]) == 2


def test_the_report_says_how_far_the_boards_orientation_was_from_the_hosts(wearer, tmp_path):
    """The reduced-rate posture is only as good as the board's own fusion: the figure is
    measured where both exist, small with a good gyroscope and large with an uncorrected
    MPU-6050 zero-rate offset (±20 °/s)."""
    from nape.sim import simulate
    from nape.sim.day_log import write_day_log_recording
    from nape.sim.scenarios import scenario

    chk = wearer[3].rates["board_orientation_check"]
    assert chk["median_abs_deg"] < 1.0 and chk["p95_abs_deg"] < 3.0 and chk["compared_s"] > 600
    script, st_ = scenario(1, "night", minutes=12, sensor="mpu6050")
    sim = simulate(script, 1, st_)
    write_day_log_recording(sim, tmp_path / "mpu.nape", [(0.3 * sim.t[-1], 0.7 * sim.t[-1])])
    f = analyse(tmp_path / "mpu.nape")
    assert f.rates["board_orientation_check"]["median_abs_deg"] > 10  # measured: 43° for this wearer
    assert any("rests on the board's own orientation" in n for n in quality_notes(f))


# ---------------------------------------------------------------- analysis fuzz: odd mixes never crash

_PKT = st.tuples(st.sampled_from(["samples", "log", "marks", "event", "boot", "junk"]),
                 st.integers(0, 3000),  # seq
                 st.integers(1, 40),  # count
                 st.sampled_from([100, 50, 1, 1000, 65535]),  # LOG period_ms
                 st.integers(0, 2**32 - 1))  # t_ms / mark argument


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs=st.lists(_PKT, min_size=1, max_size=25), cut=st.integers(0, 200), head=st.booleans())
def test_any_mix_of_samples_log_marks_and_events_is_analysed_without_a_crash(tmp_path, specs, cut, head):
    mask = 3 if head else 1
    k = 1 + head
    rng = np.random.default_rng(len(specs) + cut)
    chunks: list[tuple[str, object]] = []
    for kind, seq, count, period_ms, x in specs:
        q = rng.normal(size=(count, k, 4))
        q /= np.linalg.norm(q, axis=-1, keepdims=True)
        if kind == "samples":
            n = min(count, 11)
            chunks.append(("p", wire.encode_samples(mask, seq, seq * 10, 10000, np.zeros(n, np.uint8), q[:n],
                                                    rng.normal(0, 9.8, (n, k, 3)), rng.normal(0, 1, (n, k, 3)))))
        elif kind == "log":
            chunks.append(("p", wire_log.encode_log_packet(mask, seq, (seq * 100) % 2**32, period_ms,
                                                           q[: wire_log.per_packet(mask)])))
        elif kind == "marks":
            marks = [((x + 1000 * i) % 2**32, 1 + (x + i) % 7, x & 3, (x >> 8) & 0xFFFF, seq) for i in range(1 + count % 19)]
            chunks.append(("p", wire_marks.encode_marks_packet(mask, x & 0xFFFF, marks)))
        elif kind == "event":
            n = min(count, 10)
            chunks.append(("p", wire.encode_event(mask, x & 0xFF, 0, n, n // 2, 400, seq * 10,
                                                  rng.normal(0, 20, (n, k, 3)), rng.normal(0, 3, (n, k, 3)))))
        elif kind == "boot":
            chunks.append(("n", {"event": "boot", "boot_id": f"{x:08x}"}))
        else:
            chunks.append(("p", bytes([1, 3 + (x & 1)]) + rng.bytes(count)))
    path = tmp_path / "fuzz.nape"
    meta = {"imu_roles": ["trunk", "head"][:k], "sample_rate_hz": 100.0, "source": "simulated", "wire_format_version": 1}
    with RecordingWriter(path, meta, fsync_interval_s=0, overwrite=True) as w:
        for i, (what, item) in enumerate(chunks):
            if what == "p":
                w.write_packets([item], 1.7e9 + i)
            else:
                w.write_note(item, 1.7e9 + i)
    if cut:
        data = path.read_bytes()
        path.write_bytes(data[: max(0, len(data) - cut)])
    try:
        f = analyse(path)
    except Exception as e:  # only a plainly worded RecordingError is allowed (a file cut into its header)
        from nape.errors import RecordingError

        assert isinstance(e, RecordingError) and "\n" not in str(e), repr(e)
        return
    if f.samples:  # (a report without samples is not a schema-valid report: the schema asks for ≥ 1)
        _schema_ok(f)
    # seconds at each rate: real, non-negative, finite numbers (no NaN from an empty span)
    assert all(0.0 <= f.rates[k] < 1e7 for k in ("full_rate_s", "reduced_rate_s")), f.rates
    render_html(f)


def test_end_to_end_the_whole_firmware_alone_then_nape_record_then_the_report(tmp_path):
    """The whole firmware on the virtual board (bench.offline_day's wearer: upright, a 2 g
    30 ms bump every 40 s, a 35° hunch from 100 s to 190 s) with no host for its 200 s (the
    day log from 5 s on), then ``nape.recorder.record`` over the virtual radio, then the analysis."""
    from bench.offline_day import Wearer
    from nape.ble import BleTransport, VirtualDevice
    from nape.ble.virtual import nsim_blob

    wearer = Wearer(200.0, jolt_every_s=40.0)
    path = tmp_path / "day.nape"

    async def run():
        async with VirtualDevice(nsim_blob(wearer), speed=0, secure=False, quiet_hours=False, flash=True,
                                 daylog_kib=3968, offline_after_s=5.0, start_timeout=120.0) as vd:
            for _ in range(600):
                if any(e.get("line", "").startswith("NAPE-APP source_done") for e in vd.events if e.get("event") == "fw"):
                    break
                await asyncio.sleep(0.5)
            return await record(BleTransport(bumble=vd.bumble_args), path)

    stats = asyncio.run(run())
    assert stats.lost_samples == 0 and stats.duplicate_samples == 0 and stats.malformed == 0
    assert stats.log_samples > 1900 and stats.marks >= 2  # 10 Hz for ~195 s; OFFLINE_START / END at least
    f = analyse(path)
    assert f.lost_samples == 0 and f.gaps == []
    assert [s["rate"] for s in f.rates["spans"]] == ["full", "reduced"]
    assert f.rates["spans"][1]["start_s"] == pytest.approx(5, abs=0.5) and f.rates["reduced_rate_s"] > 190
    # every bump from the board's own windows, at its time, graded as the stream grades a bump:
    # on the seat's shock, which for a 30 ms, 2 g pulse at the upper back (a seated body rings at
    # ~4.5 Hz and passes so short a pulse only in part) is well beyond the 2.5 g "severe" bound
    assert [round(j.peak_t_s) for j in f.jolts] == [round(b) for b in wearer.bumps]
    assert all(j.cause == "bump" and j.grade_basis == "seat" and j.peak_trunk_g == pytest.approx(2.0, abs=0.15)
               and j.grade_value > 2.5 and j.grade == "severe" for j in f.jolts)
    (ep,) = f.episodes
    assert ep.kind == "trunk_inclination" and ep.duration_s == pytest.approx(90, abs=2)
    assert ep.mean_deg == pytest.approx(35, abs=1.5)
    # the board's posture alert (held 60 s): from its marks
    assert [a["trunk"] for a in f.alerts] == [True] and f.alerts[0]["start_s"] == pytest.approx(160, abs=2)
    _schema_ok(f)


def test_windows_of_one_manoeuvre_are_one_jolt_and_other_causes_stay_apart():
    """A braking still pushing as its window ends triggers the board again: one event, kept at
    its largest graded value over the whole span; a different cause next to it stays its own."""
    from nape.analysis.findings import Jolt
    from nape.analysis.window_jolts import merge_same_event

    def j(t, cause, v):
        return Jolt(peak_t_s=t + 0.1, start_s=t - 0.2, end_s=t + 0.5, cause=cause, grade="mild",
                    peak_trunk_g=v, peak_head_g=float("nan"), peak_head_dps=float("nan"), grade_value=v)

    got = merge_same_event([j(10.0, "braking", 0.5), j(10.75, "braking", 0.7), j(11.6, "bump", 1.2),
                            j(30.0, "braking", 0.4)], merge_s=1.0)
    assert [(x.cause, x.grade_value, x.start_s, x.end_s) for x in got] == [
        ("braking", 0.7, 9.8, 11.25), ("bump", 1.2, 11.4, 12.1), ("braking", 0.4, 29.8, 30.5)]
    assert merge_same_event([j(10.0, "braking", 0.5), j(12.0, "braking", 0.7)], merge_s=1.0)[1].start_s == 11.8
