"""The firmware encoder, run by the real MicroPython interpreter, against the shared vectors."""

import json
import sys
from pathlib import Path

from tests.mpy import run_mpy

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"

_ENCODE_SAMPLES = r"""
import sys, json, binascii
import wire
print(sys.implementation.name)
cases = json.loads(sys.stdin.read())
for c in cases:
    n = len(c["flags"])
    b = wire.SampleBatcher(c["imu_mask"], c["period_us"], n, seq=c["seq"])
    for i in range(n):
        q, a, g = c["quat"][i], c["acc_ms2"][i], c["gyr_rads"][i]
        if c["imu_mask"] == 3:
            full = b.add(c["t_ms"], c["flags"][i], q[0], a[0], g[0], q[1], a[1], g[1])
        else:
            full = b.add(c["t_ms"] if i == 0 else 0, c["flags"][i], q[0], a[0], g[0])
    assert full
    print(c["name"], binascii.hexlify(b.packet()).decode(), b.seq)
"""


def _run(code, cases):
    out = run_mpy(code, stdin=json.dumps(cases).encode()).decode().split("\n")
    assert out[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [line.split() for line in out[1:] if line]


def test_firmware_samples_encoder_matches_vectors():
    cases = json.loads((VECTORS / "encode_samples.json").read_text())
    rows = _run(_ENCODE_SAMPLES, cases)
    assert len(rows) == len(cases)
    for c, (name, hexed, next_seq) in zip(cases, rows):
        assert name == c["name"]
        assert hexed == c["hex"], name
        assert int(next_seq) == c["seq"] + len(c["flags"])


_ENCODE_EVENT = r"""
import sys, json, binascii
import wire
print(sys.implementation.name)
for c in json.loads(sys.stdin.read()):
    acc = [v for s in c["acc_ms2"] for imu in s for v in imu]
    gyr = [v for s in c["gyr_rads"] for imu in s for v in imu]
    pkt = wire.encode_event(c["imu_mask"], c["event_id"], c["first_index"], c["total"], c["pre_trigger"],
                            c["rate_hz"], c["trigger_t_ms"], acc, gyr, 0, len(c["acc_ms2"]))
    print(c["name"], binascii.hexlify(pkt).decode())
"""


def test_firmware_event_encoder_matches_vectors():
    cases = json.loads((VECTORS / "encode_event.json").read_text())
    rows = _run(_ENCODE_EVENT, cases)
    assert [r[1] for r in rows] == [c["hex"] for c in cases]


_FRAGMENT = r"""
import sys, json, binascii
import wire
print(sys.implementation.name)
for c in json.loads(sys.stdin.read()):
    f = wire.Fragmenter(c["max_value_len"])
    f.counter = c["counter"]
    vals = f.split(binascii.unhexlify(c["packet_hex"]))
    print(c["name"], ",".join(binascii.hexlify(v).decode() for v in vals))
"""


def test_firmware_fragmenter_matches_vectors():
    cases = json.loads((VECTORS / "fragments.json").read_text())
    rows = _run(_FRAGMENT, cases)
    assert [r[1].split(",") for r in rows] == [c["values_hex"] for c in cases]


def test_samples_per_packet_fits_mtu():
    out = run_mpy("import wire\nprint(wire.samples_per_packet(3, 244), wire.samples_per_packet(1, 244), "
                  "wire.samples_per_packet(3, 20))").decode().split()
    assert out == ["5", "10", "1"]


_ENCODE_LOG = r"""
import sys, json, binascii
import logpack
print(sys.implementation.name)
for c in json.loads(sys.stdin.read()):
    if not c["valid"]:
        continue
    b = logpack.LogBatcher(c["imu_mask"], c["period_ms"], seq=c["seq"], per=len(c["quat"]))
    for i, s in enumerate(c["quat"]):
        full = b.add(c["t_ms"] if i == 0 else 12345, s[0], s[1] if len(s) > 1 else None)
    assert full
    print(c["name"], binascii.hexlify(b.packet()).decode(), b.seq)
"""


def test_firmware_log_encoder_matches_vectors():
    cases = [c for c in json.loads((VECTORS / "log.json").read_text()) if c["valid"]]
    rows = _run(_ENCODE_LOG, cases)
    assert [r[0] for r in rows] == [c["name"] for c in cases]
    assert [r[1] for r in rows] == [c["hex"] for c in cases]
    assert [int(r[2]) for r in rows] == [c["seq"] + len(c["quat"]) for c in cases]
