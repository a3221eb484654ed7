"""Regenerate protocol/vectors/*.json, the shared test vectors of wire format v1.

Run from the repo root: ``python tools/make_vectors.py``. The host encoder
(nape.wire) produces the bytes; the firmware encoder must produce the same bytes
(tests/firmware/test_wire_firmware.py) and the host decoder must read them back
(tests/test_wire.py). Inputs are seeded and avoid exact rounding half-points.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from nape import wire  # noqa: E402

OUT = ROOT / "protocol" / "vectors"


def _unit_quats(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * np.sign(q[:, :1])


def _inputs(rng, n, n_imu, big=False):
    quat = _unit_quats(rng, n * n_imu).reshape(n, n_imu, 4)
    acc = rng.normal(scale=60.0 if big else 8.0, size=(n, n_imu, 3))
    gyr = rng.normal(scale=30.0 if big else 2.0, size=(n, n_imu, 3))
    if big:
        acc[0, 0, 0] = 400.0  # beyond +32.767 g: saturates
        gyr[0, -1, 2] = -70.0  # beyond -3276.8 deg/s: saturates
    flags = rng.integers(0, 0x80, size=n) & ~0x03
    return flags, quat, acc, gyr


def _decoded(pkt: wire.SamplesPacket) -> dict:
    return {
        "type": "samples",
        "imu_mask": pkt.imu_mask,
        "seq": pkt.seq,
        "t_ms": pkt.t_ms,
        "period_us": pkt.period_us,
        "flags": pkt.flags.tolist(),
        "quat": np.round(pkt.quat, 6).tolist(),
        "acc_g": np.round(pkt.acc / wire.G, 6).tolist(),
        "gyr_dps": np.round(np.rad2deg(pkt.gyr), 4).tolist(),
    }


def samples_cases(rng) -> tuple[list, list]:
    encode, decode = [], []
    specs = [
        ("two_imu_5", 3, 5, 1000, 123456, 10000, False),
        ("trunk_only_10", 1, 10, 0, 0, 10000, False),
        ("head_only_1", 2, 1, 4294967295, 4294967290, 5000, False),
        ("two_imu_saturating", 3, 2, 77, 9000, 10000, True),
        ("two_imu_200hz_1", 3, 1, 42, 31337, 5000, False),
    ]
    for name, mask, n, seq, t_ms, period, big in specs:
        n_imu = len(wire.roles_of(mask))
        flags, quat, acc, gyr = _inputs(rng, n, n_imu, big)
        pkt = wire.encode_samples(mask, seq, t_ms, period, flags, quat, acc, gyr)
        encode.append({
            "name": name,
            "imu_mask": mask, "seq": seq, "t_ms": t_ms, "period_us": period,
            "flags": flags.tolist(), "quat": quat.tolist(), "acc_ms2": acc.tolist(), "gyr_rads": gyr.tolist(),
            "hex": pkt.hex(),
        })
        decode.append({"name": name, "hex": pkt.hex(), "valid": True, "decoded": _decoded(wire.decode_packet(pkt))})
    good = bytes.fromhex(encode[0]["hex"])
    bad = [
        ("empty", b"", "too short"),
        ("header_only_3_bytes", good[:3], "too short"),
        ("wrong_version", bytes([2]) + good[1:], "version"),
        ("unknown_type", good[:1] + bytes([9]) + good[2:], "unknown packet type"),
        ("imu_mask_zero", good[:2] + bytes([0]) + good[3:], "imu_mask"),
        ("imu_mask_high_bits", good[:2] + bytes([0x07]) + good[3:], "imu_mask"),
        ("count_zero", good[:3] + bytes([0]) + good[4:], "0 samples"),
        ("truncated_body", good[:-1], "header implies"),
        ("extra_byte", good + b"\x00", "header implies"),
        ("count_too_high", good[:3] + bytes([6]) + good[4:], "header implies"),
        ("period_zero", good[:12] + b"\x00\x00" + good[14:], "period_us 0"),
        ("quaternion_not_unit", good[:15] + struct.pack("<h", 3000) + good[17:], "non-unit quaternion"),
    ]
    for name, data, err in bad:
        decode.append({"name": name, "hex": data.hex(), "valid": False, "error": err})
    return encode, decode


def event_cases(rng) -> tuple[list, list]:
    encode, decode = [], []
    for name, mask, n, first, total, pre, rate, trig, eid in [
        ("two_imu_event_9", 3, 9, 0, 200, 80, 400, 123456, 7),
        ("trunk_event_tail", 1, 4, 196, 200, 80, 800, 5, 65535),
    ]:
        n_imu = len(wire.roles_of(mask))
        acc = rng.normal(scale=40.0, size=(n, n_imu, 3))
        gyr = rng.normal(scale=5.0, size=(n, n_imu, 3))
        pkt = wire.encode_event(mask, eid, first, total, pre, rate, trig, acc, gyr)
        encode.append({
            "name": name, "imu_mask": mask, "event_id": eid, "first_index": first, "total": total,
            "pre_trigger": pre, "rate_hz": rate, "trigger_t_ms": trig,
            "acc_ms2": acc.tolist(), "gyr_rads": gyr.tolist(), "hex": pkt.hex(),
        })
        p = wire.decode_packet(pkt)
        decode.append({"name": name, "hex": pkt.hex(), "valid": True, "decoded": {
            "type": "event", "imu_mask": mask, "event_id": eid, "first_index": first, "total": total,
            "pre_trigger": pre, "rate_hz": rate, "trigger_t_ms": trig,
            "acc_g": np.round(p.acc / wire.G, 6).tolist(), "gyr_dps": np.round(np.rad2deg(p.gyr), 4).tolist(),
        }})
    good = bytes.fromhex(encode[0]["hex"])
    for name, data, err in [
        ("event_beyond_window", good[:6] + struct.pack("<H", 195) + good[8:], "exceed window"),
        ("event_pre_not_below_total", good[:10] + struct.pack("<H", 200) + good[12:], "pre_trigger"),
        ("event_rate_zero", good[:12] + b"\x00\x00" + good[14:], "rate_hz 0"),
        ("event_truncated", good[:-2], "header implies"),
    ]:
        decode.append({"name": name, "hex": data.hex(), "valid": False, "error": err})
    return encode, decode


def fragment_cases() -> list:
    pkt = bytes(range(55))
    cases = []
    for mtu in (23, 64, 247):
        vals = wire.fragment(pkt, mtu - 3, counter=62)
        cases.append({"name": f"mtu{mtu}", "max_value_len": mtu - 3, "counter": 62,
                      "packet_hex": pkt.hex(), "values_hex": [v.hex() for v in vals]})
    return cases


def _log_quats(rng, n: int) -> np.ndarray:
    """Unit quaternions whose LOG codes are not near a rounding half-point (so a float32
    encoder on the board gives the same bytes)."""
    from nape.wire_log import LOG_SCALE

    out = []
    while len(out) < n:
        q = _unit_quats(rng, 1)[0] * (1 if rng.random() < 0.5 else -1)
        big = int(np.argmax(np.abs(q)))
        v = np.delete(q * np.sign(q[big]), big) * LOG_SCALE
        if np.all(np.abs(np.abs(v) % 1.0 - 0.5) > 0.02):
            out.append(q)
    return np.array(out)


def log_cases(rng) -> list:
    """LOG (type 3) encoder cases (physical quaternions -> bytes) and decoder cases."""
    from nape import wire_log

    cases = []
    for name, mask, n in (("log_two_imus_full", 3, wire_log.per_packet(3)), ("log_trunk_only", 1, 9),
                          ("log_head_only", 2, 1)):
        n_imu = len(wire.roles_of(mask))
        quat = _log_quats(rng, n * n_imu).reshape(n, n_imu, 4)
        seq, t_ms = int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32))
        pkt = wire_log.encode_log_packet(mask, seq, t_ms, 100, quat)
        dec = wire_log.decode_log_packet(pkt)
        cases.append({"name": name, "valid": True, "imu_mask": mask, "seq": seq, "t_ms": t_ms,
                      "period_ms": 100, "quat": quat.tolist(), "hex": pkt.hex(),
                      "decoded": {"quat": dec.quat.tolist()}})
    good = bytes.fromhex(cases[1]["hex"])
    bad = [
        ("log_truncated", good[:-1], "header implies"),
        ("log_reserved_bit", good[:16] + bytes([good[16] | 0x80]) + good[17:], "reserved bit"),
        ("log_not_unit", good[:14] + bytes([0xFC, 0xFF, 0x7F]) + good[17:], "not a unit quaternion"),
        ("log_period_zero", good[:12] + b"\x00\x00" + good[14:], "period_ms 0"),
        ("log_count_zero", good[:3] + b"\x00" + good[4:14], "0 samples"),
        ("log_wrong_type", good[:1] + b"\x01" + good[2:], "not a LOG packet"),
    ]
    for name, data, err in bad:
        cases.append({"name": name, "valid": False, "hex": data.hex(), "error": err})
    return cases


def _marks_packet(imu_mask: int, mark_id: int, marks: list, count: int | None = None,
                  reserved: int = 0, ptype: int = 4) -> bytes:
    """A MARKS packet (type 4) laid out as protocol/SPEC.md says (independent of the
    firmware's encoder, which the firmware tests compare with these bytes)."""
    n = len(marks) if count is None else count
    out = struct.pack("<BBBBHH", 1, ptype, imu_mask, n, mark_id & 0xFFFF, reserved)
    for t_ms, kind, a, b, c in marks:
        out += struct.pack("<IBBHI", t_ms, kind, a, b, c)
    return out


def marks_cases(rng) -> list:
    """MARKS (type 4) cases: valid packets (the firmware encoder must make the same bytes;
    a host decoder must read back ``decoded``) and packets a decoder rejects."""
    cases = []
    every = [(1000, 6, 0, 0, 620), (61250, 1, 3, 0, 0), (125400, 2, 0, 0, 0), (130000, 3, 0, 0, 0),
             (3600000, 4, 0, 65535, 1240), (3700000, 5, 0, 17, 376), (4294967295, 7, 0, 0, 4294967295)]
    full = [(int(rng.integers(0, 2**32)), int(k), int(rng.integers(0, 4)) if k == 1 else 0,
             int(rng.integers(0, 65536)) if k in (4, 5) else 0, int(rng.integers(0, 2**32)))
            for k in rng.integers(1, 8, size=19)]
    for name, mask, mark_id, marks in (("marks_every_kind", 3, 65533, every),  # ids wrap past 65535
                                       ("marks_full_19", 1, 40, full),
                                       ("marks_one", 3, 0, [(5, 6, 0, 0, 0)])):
        pkt = _marks_packet(mask, mark_id, marks)
        cases.append({"name": name, "valid": True, "hex": pkt.hex(), "decoded": {
            "imu_mask": mask, "mark_id": mark_id, "count": len(marks),
            "marks": [{"t_ms": t, "kind": k, "a": a, "b": b, "c": c} for t, k, a, b, c in marks]}})
    one = [(5, 6, 0, 0, 0)]
    bad = [
        ("marks_truncated", _marks_packet(3, 0, every)[:-1], "length"),
        ("marks_too_long", _marks_packet(3, 0, every) + b"\x00", "length"),
        ("marks_count_zero", _marks_packet(3, 0, [], count=0), "count"),
        ("marks_count_20", _marks_packet(3, 0, [one[0]] * 20), "count"),
        ("marks_kind_zero", _marks_packet(3, 0, [(5, 0, 0, 0, 0)]), "kind"),
        ("marks_kind_8", _marks_packet(3, 0, [(5, 8, 0, 0, 0)]), "kind"),
        ("marks_reserved", _marks_packet(3, 0, one, reserved=1), "reserved"),
        ("marks_mask_zero", _marks_packet(0, 0, one), "imu_mask"),
    ]
    for name, data, err in bad:
        cases.append({"name": name, "valid": False, "hex": data.hex(), "error": err})
    return cases


def _status(version: int, boot_id: int, prev: tuple | None) -> bytes:
    """A status value laid out as protocol/SPEC.md ("Status") says."""
    fw = b"0.1.0"
    out = struct.pack("<BBBBHHHIIIHIIHHIB", version, 0x88, 3, 255, 0, 100, 4, 1200, 1800, 61, 247,
                      0, 0, 0, 2, boot_id, len(fw)) + fw + struct.pack("<BBBH", 0x12, 1, 4, 0)
    if prev is not None:
        out += struct.pack("<IIIHIQ", *prev)
    return out


def boots_cases() -> list:
    """The previous boot's kept day log ("Boots"): status version 4 fields, the commands
    BACKFILL_PREV / PREV_ACK / LOG_ACK with the previous-boot bit, the PREV_END event."""
    prev = (0x898CBE44, 587, 4712, 131, 471850, 1796655190462)
    none = (0, 0xFFFFFFFF, 0, 0, 0, 0)
    cases = [
        {"name": "status_v4_previous_boot_log", "kind": "status", "valid": True,
         "hex": _status(4, 0x42CCABC2, prev).hex(),
         "decoded": {"boot_id": 0x42CCABC2, "prev_boot_id": prev[0], "prev_oldest_seq": prev[1],
                     "prev_next_seq": prev[2], "prev_packets": prev[3], "prev_last_t_ms": prev[4],
                     "prev_epoch_ms": prev[5]}},
        {"name": "status_v4_marks_only_no_clock", "kind": "status", "valid": True,
         "hex": _status(4, 7, (0x1234, 0xFFFFFFFF, 0, 2, 900, 0)).hex(),
         "decoded": {"boot_id": 7, "prev_boot_id": 0x1234, "prev_oldest_seq": None, "prev_next_seq": None,
                     "prev_packets": 2, "prev_last_t_ms": 900, "prev_epoch_ms": None}},
        {"name": "status_v4_none_kept", "kind": "status", "valid": True, "hex": _status(4, 7, none).hex(),
         "decoded": {"boot_id": 7, "prev_boot_id": None, "prev_oldest_seq": None, "prev_next_seq": None,
                     "prev_packets": 0, "prev_last_t_ms": None, "prev_epoch_ms": None}},
        {"name": "status_v3_before_kept_logs", "kind": "status", "valid": True, "hex": _status(3, 7, None).hex(),
         "decoded": {"boot_id": 7, "prev_boot_id": None, "prev_oldest_seq": None, "prev_next_seq": None,
                     "prev_packets": 0, "prev_last_t_ms": None, "prev_epoch_ms": None}},
        {"name": "cmd_backfill_prev", "kind": "command", "valid": True,
         "hex": struct.pack("<BI", 0x0E, 587).hex(), "decoded": {"opcode": 0x0E, "from_seq": 587}},
        {"name": "cmd_prev_ack", "kind": "command", "valid": True,
         "hex": struct.pack("<BI", 0x0F, 4712).hex(), "decoded": {"opcode": 0x0F, "next_seq": 4712}},
        {"name": "cmd_log_ack_prev_marks", "kind": "command", "valid": True,
         "hex": struct.pack("<BBH", 0x0D, 0x84, 65535).hex(), "decoded": {"opcode": 0x0D, "type": 4, "prev": True, "id": 65535}},
        {"name": "cmd_log_ack_prev_event", "kind": "command", "valid": True,
         "hex": struct.pack("<BBH", 0x0D, 0x82, 3).hex(), "decoded": {"opcode": 0x0D, "type": 2, "prev": True, "id": 3}},
        {"name": "evt_prev_end", "kind": "event", "valid": True,
         "hex": struct.pack("<BI", 0xA1, 4712).hex(), "decoded": {"opcode": 0xA1, "next_seq": 4712}},
    ]
    return cases


def main() -> None:
    rng = np.random.default_rng(20261125)
    OUT.mkdir(parents=True, exist_ok=True)
    enc_s, dec_s = samples_cases(rng)
    enc_e, dec_e = event_cases(rng)
    files = {
        "encode_samples.json": enc_s,
        "encode_event.json": enc_e,
        "decode.json": dec_s + dec_e,
        "fragments.json": fragment_cases(),
    }
    files["log.json"] = log_cases(np.random.default_rng(20261207))  # own seed: the others stay put
    files["marks.json"] = marks_cases(np.random.default_rng(20261208))
    files["boots.json"] = boots_cases()
    for name, cases in files.items():
        (OUT / name).write_text(json.dumps(cases, indent=1) + "\n")
        print(f"wrote {OUT / name} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
