"""Fast subset of the decoder fuzzing (bench/fuzz.py): a few thousand inputs per target, every stored
corpus input and crasher as a regression case, and structure-aware hypothesis properties.

A failure here names the target and the input (hex). The long runs (10^6 inputs per target,
coverage-guided with atheris) are ``python -m bench.fuzz``; docs/RELIABILITY.md has their figures.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import fuzz
from nape import wire
from nape.errors import PacketError

N_FAST = 2000

fuzz._load()


@pytest.fixture(autouse=True, scope="module")
def _scratch_file():
    """The recording target writes its input to one scratch file; remove it afterwards."""
    yield
    fuzz._rec_path.unlink(missing_ok=True)


@pytest.mark.parametrize("target", fuzz.CPYTHON_TARGETS)
def test_fast_random_fuzz_finds_no_crash(target):
    r = fuzz.run_random(target, N_FAST, seed=20261125, save_crashes=False)
    assert r["inputs"] >= N_FAST
    assert r["crashes"] == 0, r["crash_examples"]


def _stored():
    out = []
    for kind in (fuzz.CORPUS_DIR, fuzz.CRASH_DIR):
        if kind.is_dir():
            for d in sorted(kind.iterdir()):
                if d.is_dir() and d.name in fuzz.TARGETS:
                    out += [pytest.param(d.name, p, id=f"{kind.name}/{d.name}/{p.name}") for p in sorted(d.iterdir())
                            if p.is_file() and p.name != "log.jsonl"]
    return out


STORED = _stored()


def test_the_corpus_and_the_crashers_are_stored():
    targets = {p.values[0] for p in STORED}
    assert {"packet", "recording", "fw_control", "event_window"} <= targets
    assert any("crashers/event_window" in p.id for p in STORED)  # the one crasher found so far


@pytest.mark.parametrize("target,path", [p for p in STORED if p.values[0] != "fw_control"])
def test_stored_input_regression(target, path: Path):
    fn = fuzz.TARGETS[target][0]
    fn(path.read_bytes())  # raises on a crash or a broken invariant


def test_fw_control_parser_under_micropython():
    # the stored fw_control corpus is replayed first, then mutated, inside MicroPython
    r = fuzz.run_fw_control(4000, seed=7)
    assert r["inputs"] == 4000
    assert r["crashes"] == 0, r["crash_examples"]
    assert r["alive_after"]
    assert r["coverage"]["response_kinds"] >= 15  # every opcode answered OK / bad length / unknown ...


def test_resync_after_random_damage():
    r = fuzz.measure_resync(150, seed=99)
    assert r["chunks_lost_outside_span"] == 0
    assert r["worst_resync_distance_chunks"] == 0
    assert r["files_with_phantom_chunks"] == 0
    assert set(r["kinds"]) == set(fuzz.DAMAGE)


def test_resync_check_is_not_vacuous(tmp_path):
    # told the damage is elsewhere, the check must see the chunks it destroyed as lost
    rng = random.Random(1)
    data, starts, sizes = fuzz.build_recording(rng, 20)
    p = tmp_path / "r.nape"
    p.write_bytes(fuzz.damage(data, starts[10] + 3, 5, "zeros", rng))
    r = fuzz.resync_check(p, starts, sizes, starts[2] + 3, 5, "zeros")
    assert r["lost"] == 1
    # and a truthful report is clean
    assert fuzz.resync_check(p, starts, sizes, starts[10] + 3, 5, "zeros") == {"lost": 0, "distance": 0, "phantom": 0}


# ---------------------------------------------------------------- hypothesis: structure-aware


def _packet(mask, n, seq, t_ms, period, q_seed):
    n_imu = 1 + (mask == 3)
    g = np.random.default_rng(q_seed)
    q = g.normal(size=(n, n_imu, 4))
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    return wire.encode_samples(mask, seq, t_ms, period, np.zeros(n, np.uint8), q, g.normal(0, 20, (n, n_imu, 3)),
                               g.normal(0, 3, (n, n_imu, 3)))


SAMPLES_FIELDS = {"version": (0, "B"), "type": (1, "B"), "mask": (2, "B"), "count": (3, "B"), "seq": (4, "I"),
                  "t_ms": (8, "I"), "period_us": (12, "H"), "flags": (14, "B"), "quat_w": (15, "h")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=st.sampled_from([1, 2, 3]), n=st.integers(1, 11), seq=st.integers(0, 2**32 - 1),
       t_ms=st.integers(0, 2**32 - 1), period=st.integers(1, 65535), q_seed=st.integers(0, 2**16),
       field=st.sampled_from(sorted(SAMPLES_FIELDS)), value=st.integers(0, 2**32 - 1))
def test_samples_packet_with_one_field_mutated(mask, n, seq, t_ms, period, q_seed, field, value):
    b = bytearray(_packet(mask, n, seq, t_ms, period, q_seed))
    off, fmt = SAMPLES_FIELDS[field]
    size = struct.calcsize(fmt)
    v = value & ((1 << (8 * size)) - 1)
    b[off:off + size] = v.to_bytes(size, "little")
    b = bytes(b)
    legal = fuzz.spec_legal(b)
    try:
        pkt = wire.decode_packet(b)
    except PacketError as e:
        assert not legal, f"{field}={v}: refused a valid packet: {e}"
        assert "\n" not in str(e)
        return
    assert legal, f"{field}={v}: accepted an invalid packet"
    assert pkt.count == b[3] and pkt.seq == struct.unpack_from("<I", b, 4)[0]
    # the bulk decoder agrees
    arrays, errors = wire.decode_samples_many([b])
    assert not errors and len(arrays[pkt.imu_mask]) == pkt.count


@settings(max_examples=100, deadline=None)
@given(mask=st.sampled_from([1, 2, 3]), n=st.integers(1, 11), q_seed=st.integers(0, 2**16),
       cut=st.integers(0, 600), extra=st.binary(max_size=8))
def test_truncated_or_extended_samples_packet(mask, n, q_seed, cut, extra):
    b = _packet(mask, n, 1, 2, 10000, q_seed)
    bad = b[: cut % (len(b) + 1)] + extra
    if len(bad) == len(b):  # same length: a (maybe valid) mutation, not a truncation
        return
    with pytest.raises(PacketError):
        wire.decode_packet(bad)
    _, errors = wire.decode_samples_many([b, bad, b])
    skipped = bad[:2] == b"\x01\x02"  # looks like an EVENT packet: the bulk decoder leaves those alone
    assert [i for i, _ in errors] == ([] if skipped else [1])


@settings(max_examples=100, deadline=None)
@given(mask=st.sampled_from([1, 2, 3]), n=st.integers(1, 10), total_extra=st.integers(0, 400),
       first=st.integers(0, 400), pre=st.integers(0, 800), rate=st.integers(0, 3000))
def test_event_packet_fields(mask, n, total_extra, first, pre, rate):
    n_imu = 1 + (mask == 3)
    total = n + total_extra
    acc = np.zeros((n, n_imu, 3))
    b = wire.encode_event(mask, 1, first, total, pre, rate, 5, acc, acc)
    legal = rate > 0 and first + n <= total and pre < total
    assert fuzz.spec_legal(b) == legal
    try:
        p = wire.decode_packet(b)
    except PacketError:
        assert not legal
        return
    assert legal and p.first_index == first and p.total == total


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_chunks=st.integers(3, 30), where=st.floats(0, 1, exclude_max=True),
       length=st.integers(1, 3000), kind=st.sampled_from(fuzz.DAMAGE))
def test_recording_with_a_corrupt_span_resyncs_within_one_frame(tmp_path, seed, n_chunks, where, length, kind):
    rng = random.Random(seed)
    data, starts, sizes = fuzz.build_recording(rng, n_chunks)
    a = starts[0] + int(where * (len(data) - starts[0]))
    ln = min(length, len(data) - a)
    p = tmp_path / f"h{seed}.nape"
    p.write_bytes(fuzz.damage(data, a, ln, kind, rng))
    r = fuzz.resync_check(p, starts, sizes, a, ln, kind, data)
    assert r == {"lost": 0, "distance": 0, "phantom": 0}
    p.unlink()


@settings(max_examples=150, deadline=None)
@given(packets=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6), mtu_value=st.integers(2, 244),
       drop=st.sets(st.integers(0, 40), max_size=3))
def test_reassembler_returns_only_whole_packets(packets, mtu_value, drop):
    values = []
    for k, pk in enumerate(packets):
        values += wire.fragment(pk, mtu_value, counter=len(values))
    r = wire.Reassembler()
    got = []
    for i, v in enumerate(values):
        if i in drop:
            continue
        out = r.feed(v)
        if out is not None:
            got.append(out)
    # every packet out is one that went in (never a splice of two), in order
    it = iter(packets)
    for g in got:
        assert any(g == pk for pk in it)
    if not drop:
        assert got == [pk for pk in packets if len(pk) <= wire.MAX_PACKET]


# ------------------------------------------------------------------ analysis (bench/fuzz_analysis.py)


def test_fast_analysis_fuzz_finds_no_crash():
    """A few dozen whole recordings (random length, gaps, reboots, rate switches, saturation,
    extreme values, hostile header strings) through analysis, report and export."""
    r = fuzz.run_random("analysis", 40, seed=20261207, save_crashes=False)
    assert r["inputs"] >= 40
    assert r["crashes"] == 0, r["crash_examples"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=160))
def test_analysis_never_raises_on_any_plan(data):
    from bench import fuzz_analysis

    fuzz_analysis.t_analysis(data)  # raises on a crash, a warning or a broken invariant


def test_analysis_plans_cover_the_shapes_of_real_trouble(tmp_path):
    """The plans really build what the target claims: reboots, losses, rate switches, saturation."""
    from bench import fuzz_analysis
    from nape.analysis import analyse

    rng = random.Random(3)
    seen = {"reboot": 0, "loss": 0, "rates": 0, "glitch": 0, "empty": 0}
    for _ in range(60):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 120)))
        if not fuzz_analysis.build(data, tmp_path / "p.nape"):
            continue
        f = analyse(tmp_path / "p.nape")
        reasons = {g["reason"] for g in f.gaps}
        seen["reboot"] += "device reboot" in reasons
        seen["loss"] += f.lost_samples > 0
        seen["glitch"] += f.glitches.get("samples", 0) > 0
        seen["empty"] += f.samples == 0
        periods = {int.from_bytes(p[12:14], "little") for _t, p in
                   __import__("nape.recording", fromlist=["x"]).open_recording(tmp_path / "p.nape").iter_packets()
                   if len(p) > 14 and p[1] == 1}
        seen["rates"] += len(periods) > 1
    assert all(v > 0 for v in seen.values()), seen
