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


def _packets(rng, n_packets):
    """Random valid SAMPLES packets of every mask and size, some EVENT packets, in one list."""
    out = []
    seq = int(rng.integers(0, 2**32))
    for _ in range(n_packets):
        mask = int(rng.choice([1, 2, 3]))
        k = len(wire.roles_of(mask))
        if rng.random() < 0.1:
            acc = rng.normal(0, 20, (3, k, 3))
            out.append(wire.encode_event(mask, 7, 0, 9, 2, 500, 1234, acc, rng.normal(0, 3, (3, k, 3))))
            continue
        n = int(rng.integers(1, 11))
        q = rng.normal(size=(n, k, 4))
        q /= np.linalg.norm(q, axis=2, keepdims=True)
        flags = rng.integers(0, 128, n).astype(np.uint8)
        out.append(wire.encode_samples(mask, seq, int(rng.integers(0, 2**32)), int(rng.integers(1, 65536)), flags,
                                       q, rng.normal(0, 30, (n, k, 3)), rng.normal(0, 5, (n, k, 3))))
        seq = (seq + n) & 0xFFFFFFFF
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.data())
def test_bulk_decoder_equals_single_decoder_on_mixed_packets(seed, n_packets, data):
    """Mixed masks, lengths, EVENTs, corrupted bytes: the bulk decoder gives exactly the single
    decoder's samples (in packet order) and verdicts, and decodes the same EVENT packets."""
    rng = np.random.default_rng(seed)
    packets = _packets(rng, n_packets)
    for _ in range(data.draw(st.integers(0, 3))):  # corrupt some: truncate, flip a byte, empty
        i = data.draw(st.integers(0, len(packets) - 1))
        p = bytearray(packets[i])
        if not p:
            continue
        how = data.draw(st.sampled_from(["cut", "flip", "empty"]))
        if how == "cut":
            p = p[: data.draw(st.integers(0, len(p) - 1))]
        elif how == "flip":
            j = data.draw(st.integers(0, len(p) - 1))
            p[j] ^= 1 << data.draw(st.integers(0, 7))
        else:
            p = bytearray()
        packets[i] = bytes(p)
    events: list = []
    arrays, errors = wire.decode_samples_many(packets, events=events)
    singles, exp_errors, exp_events = [], [], []
    for i, p in enumerate(packets):
        try:
            d = wire.decode_packet(p)
        except PacketError:
            exp_errors.append(i)
            continue
        (singles if isinstance(d, wire.SamplesPacket) else exp_events).append(d)
    assert [i for i, _ in errors] == exp_errors
    assert [e.event_id for e in events] == [e.event_id for e in exp_events]
    for e, x in zip(events, exp_events):
        np.testing.assert_array_equal(e.acc, x.acc)
    for mask in (1, 2, 3):
        mine = [s for s in singles if s.imu_mask == mask]
        if not mine:
            assert mask not in arrays
            continue
        a = arrays[mask]
        np.testing.assert_array_equal(a.quat, np.concatenate([s.quat for s in mine]))
        np.testing.assert_array_equal(a.gyr, np.concatenate([s.gyr for s in mine]))
        np.testing.assert_array_equal(a.flags, np.concatenate([s.flags for s in mine]))
        np.testing.assert_array_equal(a.seq, np.concatenate([(s.seq + np.arange(s.count)) % 2**32 for s in mine]))
        np.testing.assert_allclose(a.t_ms, np.concatenate([s.t_ms + np.arange(s.count) * s.period_us / 1000
                                                           for s in mine]))


def test_backfill_flag_decodes_like_any_sample():
    """BACKFILL (bit 6) marks a sample re-sent from the offline buffer: the bulk decoder keeps
    the bit in ``flags`` and decodes the values exactly as without it."""
    rng = np.random.default_rng(3)
    q = rng.normal(size=(5, 2, 4))
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    acc, gyr = rng.normal(0, 9, (5, 2, 3)), rng.normal(0, 2, (5, 2, 3))
    live = wire.encode_samples(3, 100, 1000, 10000, np.zeros(5, np.uint8), q, acc, gyr)
    back = wire.encode_samples(3, 100, 1000, 10000, np.full(5, wire.FLAG_BACKFILL, np.uint8), q, acc, gyr)
    a, _ = wire.decode_samples_many([live])
    b, _ = wire.decode_samples_many([back])
    assert (b[3].flags == wire.FLAG_BACKFILL).all() and (a[3].flags == 0).all()
    for f in ("seq", "t_ms", "quat", "acc", "gyr"):
        np.testing.assert_array_equal(getattr(a[3], f), getattr(b[3], f))
