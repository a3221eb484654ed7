"""firmware/ble_buffer.py (offline buffer), run by the real MicroPython interpreter.

Packets come out as hex and are checked with the host decoder (nape.wire), so the
buffer is tested against the wire format, not against itself.
"""

import json

from nape import wire
from tests.mpy import run_mpy

_PRELUDE = r"""
import sys, json, struct, binascii
import ble_buffer
print(sys.implementation.name)

def mk(seq, count, mask=3, t_ms=None):
    size = 1 + 20 * ((mask & 1) + ((mask >> 1) & 1))
    b = bytearray(14 + count * size)
    struct.pack_into("<BBBBIIH", b, 0, 1, 1, mask, count, seq & 0xFFFFFFFF,
                     (seq * 10 if t_ms is None else t_ms) & 0xFFFFFFFF, 10000)
    for i in range(count):
        o = 14 + i * size
        b[o] = 0x04
        for k in range(1 + (mask == 3)):
            struct.pack_into("<hhhh", b, o + 1 + 20 * k, 16384, 0, 0, 0)
            struct.pack_into("<hhh", b, o + 9 + 20 * k, (seq + i) & 0x7FFF, 0, 1000)
    return bytes(b)

def drain(st, start):
    out = []
    cur = start
    while True:
        r = st.read_from(cur)
        if r is None:
            return out
        p, first = r
        out.append(binascii.hexlify(p).decode())
        cur = (first + p[3]) & 0xFFFFFFFF

def emit(obj):
    print(json.dumps(obj))
"""


def _run(body: str, tmp_path=None) -> list:
    code = _PRELUDE + body
    if tmp_path is not None:
        code = code.replace("SPILL", str(tmp_path / "spill.bin"))
    out = run_mpy(code).decode().splitlines()
    assert out[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [json.loads(line) for line in out[1:] if line]


def _seqs(hexes):
    seqs = []
    for h in hexes:
        p = wire.decode_packet(bytes.fromhex(h))
        assert isinstance(p, wire.SamplesPacket)
        seqs.extend(range(p.seq, p.seq + p.count))
        # the payload travelled intact: acc x carries the seq
        assert [int(round(a)) for a in p.acc[:, 0, 0] * 1000 / 9.80665] == [
            (s & 0x7FFF) for s in range(p.seq, p.seq + p.count)]
    return seqs


def test_ram_only_keeps_the_newest_and_counts_what_it_lost():
    (r,) = _run(r"""
st = ble_buffer.PacketStore(ram_slots=64, flash_path=None, spill_batch=16)
for k in range(100):
    st.append(mk(k * 5, 5))
emit({"count": st.count(), "oldest": st.oldest_seq(), "next": st.next_seq(),
      "overflow": st.overflow_samples, "all": drain(st, 0)})
""")
    # 100 packets into 64 slots, evicted 16 at a time: 48 newest..64 kept
    assert r["next"] == 500
    assert r["count"] in range(48, 65)
    assert r["overflow"] == 500 - 5 * r["count"]
    assert _seqs(r["all"]) == list(range(r["oldest"], 500))


def test_spills_to_flash_and_reads_back_every_sample_once_in_order(tmp_path):
    (r,) = _run(r"""
st = ble_buffer.PacketStore(ram_slots=64, flash_path="SPILL", flash_slots=256, spill_batch=16)
for k in range(300):
    st.append(mk(k * 5, 5))
emit({"count": st.count(), "oldest": st.oldest_seq(), "next": st.next_seq(),
      "overflow": st.overflow_samples, "spilled": st.spilled, "writes": st.flash_writes,
      "fill": st.fill_permille(), "all": drain(st, 0)})
""", tmp_path)
    assert r["overflow"] == 0 and r["count"] == 300 and r["oldest"] == 0 and r["next"] == 1500
    assert r["spilled"] >= 236 and r["writes"] <= r["spilled"] // 16 + 2  # batched writes
    assert r["fill"] == 937  # 300 / 320
    assert _seqs(r["all"]) == list(range(1500))


def test_full_flash_overwrites_the_oldest_and_counts_them(tmp_path):
    (r,) = _run(r"""
st = ble_buffer.PacketStore(ram_slots=32, flash_path="SPILL", flash_slots=64, spill_batch=16)
for k in range(200):
    st.append(mk(k * 5, 5))
emit({"oldest": st.oldest_seq(), "next": st.next_seq(), "overflow": st.overflow_samples,
      "count": st.count(), "older": st.read_from(0)[1], "all": drain(st, st.oldest_seq())})
""", tmp_path)
    assert r["next"] == 1000
    assert r["overflow"] == r["oldest"] == 1000 - 5 * r["count"]
    assert r["older"] == r["oldest"]  # asking for lost samples gives the oldest kept
    assert _seqs(r["all"]) == list(range(r["oldest"], 1000))


def test_packets_delivered_to_a_streaming_central_are_dropped_not_spilled(tmp_path):
    r = _run(r"""
st = ble_buffer.PacketStore(ram_slots=32, flash_path="SPILL", flash_slots=64, spill_batch=16)
for k in range(40):
    st.append(mk(k * 5, 5), delivered_to=k * 5)   # everything before this packet was sent
emit({"spilled": st.spilled, "dropped": st.dropped_delivered, "oldest": st.oldest_seq()})
for k in range(40, 80):
    st.append(mk(k * 5, 5), delivered_to=None)    # link lost: nothing more is delivered
emit({"spilled": st.spilled, "overflow": st.overflow_samples, "oldest": st.oldest_seq(),
      "all": drain(st, 0)})
""", tmp_path)
    a, b = r
    assert a["spilled"] == 0 and a["dropped"] == 16 and a["oldest"] == 80
    assert b["spilled"] > 0 and b["overflow"] == 0
    assert _seqs(b["all"]) == list(range(b["oldest"], 400))


def test_reading_from_inside_a_packet_trims_it_to_start_there():
    (r,) = _run(r"""
st = ble_buffer.PacketStore(ram_slots=32)
st.append(mk(100, 5, t_ms=12340))
st.append(mk(105, 5))
p, first = st.read_from(103)
emit({"first": first, "hex": binascii.hexlify(p).decode(), "none": st.read_from(110)})
""")
    p = wire.decode_packet(bytes.fromhex(r["hex"]))
    assert r["first"] == 103 and p.seq == 103 and p.count == 2 and p.t_ms == 12370
    assert r["none"] is None


def test_sequence_numbers_wrap_at_2_to_the_32(tmp_path):
    (r,) = _run(r"""
st = ble_buffer.PacketStore(ram_slots=32, flash_path="SPILL", flash_slots=64, spill_batch=16)
start = 0xFFFFFFFF - 99
for k in range(60):
    st.append(mk(start + k * 5, 5))
emit({"oldest": st.oldest_seq(), "next": st.next_seq(), "all": drain(st, start),
      "mid": st.read_from(3)[1]})
""", tmp_path)
    start = 0xFFFFFFFF - 99
    assert r["oldest"] == start and r["next"] == (start + 300) & 0xFFFFFFFF and r["mid"] == 3
    seqs = []
    for h in r["all"]:
        p = wire.decode_packet(bytes.fromhex(h))
        seqs.extend((p.seq + i) & 0xFFFFFFFF for i in range(p.count))
    assert seqs == [(start + i) & 0xFFFFFFFF for i in range(300)]


def test_mark_backfill_sets_the_flag_on_every_sample_only():
    (r,) = _run(r"""
p = mk(7, 3, mask=1)
emit({"in": binascii.hexlify(p).decode(),
      "out": binascii.hexlify(ble_buffer.mark_backfill(p)).decode()})
""")
    a = wire.decode_packet(bytes.fromhex(r["in"]))
    b = wire.decode_packet(bytes.fromhex(r["out"]))
    assert list(b.flags) == [f | 0x40 for f in a.flags]
    assert (b.quat == a.quat).all() and (b.acc == a.acc).all() and b.seq == a.seq


def test_rejects_packets_it_cannot_store():
    (r,) = _run(r"""
st = ble_buffer.PacketStore(ram_slots=32)
res = []
for bad in (b"\x01\x02\x01\x01" + bytes(20), bytes(300), b"\x01\x01"):
    try:
        st.append(bad)
        res.append("stored")
    except ValueError:
        res.append("ValueError")
emit(res)
""")
    assert r == ["ValueError"] * 3


def test_spill_size_setting_and_capacity_in_hours():
    """config.BLE_SPILL_KIB -> slots, and the documented hours at the default rate."""
    out = run_mpy(r"""
import sys, json, config, ble_buffer
print(sys.implementation.name)
s8 = ble_buffer.spill_slots(config.BLE_SPILL_KIB)
s16 = ble_buffer.spill_slots(12288)
h = lambda slots, rate: ble_buffer.capacity_s(slots, 5, rate) / 3600
print(json.dumps([config.BLE_SPILL_KIB, s8, s16, config.BLE_RAM_SLOTS,
                  h(config.BLE_RAM_SLOTS + s8, 100), h(config.BLE_RAM_SLOTS + s8, config.SAVER_RATE_HZ),
                  h(config.BLE_RAM_SLOTS + s16, 100), ble_buffer.spill_slots(1)]))
""").decode().splitlines()
    assert out[0] == "micropython"
    kib, s8, s16, ram, h100, hsaver, h16, tiny = json.loads(out[1])
    assert s8 == 2672 and s8 * 244 <= kib * 1024  # whole 16-slot batches within the setting
    assert s16 == 51568 and s16 * 244 <= 12288 * 1024 < (s16 + 16) * 244
    # 5.6 min with the RAM ring (the day log holds the rest: daylog.py); README / SPEC
    assert round(h100 * 60, 1) == 5.6 and round(hsaver * 60, 1) == 11.3 and round(h16, 2) == 0.77
    assert ram == 4096 and tiny == 0
