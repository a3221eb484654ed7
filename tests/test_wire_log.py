"""LOG packets (wire format type 3, the offline day log): host codec against the shared vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nape.errors import PacketError
from nape.wire_log import decode_log_packet, encode_log_packet, pack_quats, per_packet, unpack_quats

CASES = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "vectors" / "log.json").read_text())


@pytest.mark.parametrize("case", [c for c in CASES if c["valid"]], ids=lambda c: c["name"])
def test_encoder_and_decoder_match_the_vectors(case):
    quat = np.array(case["quat"])
    pkt = encode_log_packet(case["imu_mask"], case["seq"], case["t_ms"], case["period_ms"], quat)
    assert pkt.hex() == case["hex"]
    dec = decode_log_packet(bytes.fromhex(case["hex"]))
    assert (dec.imu_mask, dec.seq, dec.t_ms, dec.period_ms) == (case["imu_mask"], case["seq"], case["t_ms"], 100)
    np.testing.assert_allclose(dec.quat, np.array(case["decoded"]["quat"]), atol=1e-12)
    # the decoded orientation is the input's (q and -q are the same rotation) within 2 deg
    dot = np.abs(np.sum(dec.quat * quat, axis=2)).clip(0, 1)
    assert np.degrees(2 * np.arccos(dot)).max() < 2.0


@pytest.mark.parametrize("case", [c for c in CASES if not c["valid"]], ids=lambda c: c["name"])
def test_bad_log_packets_get_one_clear_error(case):
    with pytest.raises(PacketError, match=case["error"]):
        decode_log_packet(bytes.fromhex(case["hex"]))


def test_packing_error_over_many_orientations():
    rng = np.random.default_rng(11)
    q = rng.normal(size=(50000, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d = unpack_quats(pack_quats(q))
    err = np.degrees(2 * np.arccos(np.abs(np.sum(d * q, axis=1)).clip(0, 1)))
    assert err.max() < 2.0 and np.percentile(err, 99) < 1.25
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)


def test_full_packets_fit_one_offline_buffer_slot():
    assert per_packet(3) == 38 and per_packet(1) == per_packet(2) == 76
    q = np.tile([1.0, 0, 0, 0], (38, 2, 1))
    assert len(encode_log_packet(3, 0, 0, 100, q)) == 242 <= 243
    with pytest.raises(ValueError):
        encode_log_packet(3, 0, 0, 100, np.tile([1.0, 0, 0, 0], (39, 2, 1)))
    with pytest.raises(ValueError):
        pack_quats(np.zeros((1, 4)))
