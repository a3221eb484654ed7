"""Host decoder against the shared vectors in protocol/vectors/ (the firmware passes the same)."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nape import wire
from nape.errors import PacketError

VECTORS = Path(__file__).resolve().parents[1] / "protocol" / "vectors"
DECODE = json.loads((VECTORS / "decode.json").read_text())
ENC_S = json.loads((VECTORS / "encode_samples.json").read_text())
ENC_E = json.loads((VECTORS / "encode_event.json").read_text())
FRAGS = json.loads((VECTORS / "fragments.json").read_text())


def test_vectors_cover_valid_and_malformed():
    assert sum(c["valid"] for c in DECODE) >= 7
    assert sum(not c["valid"] for c in DECODE) >= 15


@pytest.mark.parametrize("case", [c for c in DECODE if c["valid"]], ids=lambda c: c["name"])
def test_decode_valid_vector(case):
    pkt = wire.decode_packet(bytes.fromhex(case["hex"]))
    d = case["decoded"]
    assert pkt.imu_mask == d["imu_mask"]
    half_mg, half_01dps = 0.5e-3, 0.05
    np.testing.assert_allclose(pkt.acc / wire.G, d["acc_g"], atol=half_mg)
    np.testing.assert_allclose(np.rad2deg(pkt.gyr), d["gyr_dps"], atol=half_01dps)
    if d["type"] == "samples":
        assert (pkt.seq, pkt.t_ms, pkt.period_us) == (d["seq"], d["t_ms"], d["period_us"])
        assert pkt.flags.tolist() == d["flags"]
        np.testing.assert_allclose(pkt.quat, d["quat"], atol=0.5 / 16384 + 1e-6)
    else:
        assert (pkt.event_id, pkt.first_index, pkt.total, pkt.pre_trigger, pkt.rate_hz, pkt.trigger_t_ms) == (
            d["event_id"], d["first_index"], d["total"], d["pre_trigger"], d["rate_hz"], d["trigger_t_ms"])


@pytest.mark.parametrize("case", [c for c in DECODE if not c["valid"]], ids=lambda c: c["name"])
def test_decode_malformed_vector_one_clear_error(case):
    with pytest.raises(PacketError) as e:
        wire.decode_packet(bytes.fromhex(case["hex"]))
    msg = str(e.value)
    assert case["error"] in msg
    assert "\n" not in msg


@pytest.mark.parametrize("case", ENC_S, ids=lambda c: c["name"])
def test_host_encoder_matches_vector_and_physical_inputs(case):
    pkt = wire.encode_samples(case["imu_mask"], case["seq"], case["t_ms"], case["period_us"],
                              np.array(case["flags"]), np.array(case["quat"]),
                              np.array(case["acc_ms2"]), np.array(case["gyr_rads"]))
    assert pkt.hex() == case["hex"]
    dec = wire.decode_packet(pkt)
    acc = np.array(case["acc_ms2"])
    inside = np.abs(acc / wire.ACC_LSB_MS2) < 32767
    np.testing.assert_allclose(dec.acc[inside], acc[inside], atol=wire.ACC_LSB_MS2 / 2 + 1e-12)
    np.testing.assert_allclose(dec.quat, case["quat"], atol=0.5 / 16384 + 1e-12)


def test_saturation_sets_flags_and_clamps():
    case = next(c for c in ENC_S if c["name"] == "two_imu_saturating")
    dec = wire.decode_packet(bytes.fromhex(case["hex"]))
    assert dec.flags[0] & wire.FLAG_TRUNK_SAT and dec.flags[0] & wire.FLAG_HEAD_SAT
    assert dec.acc[0, 0, 0] == pytest.approx(32767 * wire.ACC_LSB_MS2)
    assert np.rad2deg(dec.gyr[0, 1, 2]) == pytest.approx(-3276.8)


@pytest.mark.parametrize("case", FRAGS, ids=lambda c: c["name"])
def test_fragments_vector_and_reassembly(case):
    pkt = bytes.fromhex(case["packet_hex"])
    vals = wire.fragment(pkt, case["max_value_len"], case["counter"])
    assert [v.hex() for v in vals] == case["values_hex"]
    assert all(len(v) <= case["max_value_len"] for v in vals)
    r = wire.Reassembler()
    outs = [r.feed(v) for v in vals]
    assert outs[-1] == pkt and all(o is None for o in outs[:-1]) and r.dropped == 0


def test_reassembler_drops_packet_with_lost_fragment_and_recovers():
    a, b = bytes(range(50)), bytes(range(100, 150))
    va = wire.fragment(a, 20, 0)
    vb = wire.fragment(b, 20, len(va))
    r = wire.Reassembler()
    got = [r.feed(v) for v in va[:1] + va[2:] + vb]  # middle fragment of a lost
    assert [g for g in got if g is not None] == [b]
    assert r.dropped == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_decoder(data):
    try:
        wire.decode_packet(data)
    except PacketError as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=40), max_size=30))
def test_random_notifications_never_crash_reassembler(values):
    r = wire.Reassembler()
    for v in values:
        out = r.feed(v)
        assert out is None or len(out) <= wire.MAX_PACKET


def test_bulk_decoder_matches_single_decoder_and_reports_malformed():
    good = [bytes.fromhex(c["hex"]) for c in DECODE if c["valid"] and c["decoded"]["type"] == "samples"]
    bad = [bytes.fromhex(c["hex"]) for c in DECODE if not c["valid"] and not c["name"].startswith("event")]
    packets = good + bad + good
    arrays, errors = wire.decode_samples_many(packets)
    assert sorted(i for i, _ in errors) == list(range(len(good), len(good) + len(bad)))
    singles = [wire.decode_packet(p) for p in good + good]
    for mask, arr in arrays.items():
        mine = [s for s in singles if s.imu_mask == mask]
        np.testing.assert_array_equal(arr.quat, np.concatenate([s.quat for s in mine]))
        np.testing.assert_array_equal(arr.acc, np.concatenate([s.acc for s in mine]))
        np.testing.assert_array_equal(arr.flags, np.concatenate([s.flags for s in mine]))
        exp_seq = np.concatenate([s.seq + np.arange(s.count) for s in mine])
        np.testing.assert_array_equal(arr.seq, exp_seq)
