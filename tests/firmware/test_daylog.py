"""firmware/daylog.py (offline day log) and the MARKS encoder (logpack.py), on the real
MicroPython; the packets are read back on the host side (nape.wire_log for LOG, the
spec's MARKS layout, nape.wire for SAMPLES / EVENT), so the log is checked against the
wire format, not against itself."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from nape import wire
from nape.ble import protocol as P
from nape.wire_log import decode_log_packet, unpack_quats
from tests.mpy import run_mpy

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "marks.json"

_PRELUDE = r"""
import sys, json, struct, binascii
import daylog, logpack
print(sys.implementation.name)
hx = lambda b: binascii.hexlify(bytes(b)).decode()
def emit(obj):
    print(json.dumps(obj))

class B:
    def __init__(s):
        s.seq = 0
        s.count = 0
class Pipe:
    # what DayLog uses of pipeline.Pipeline: the SAMPLES batcher's seq, the rate, flush, log
    def __init__(s, rate=50):
        s.batcher = B()
        s.rate_hz = rate
        s.feedback = None
        s.log = None
        s.flushed = 0
    def flush(s):
        s.batcher.count = 0
        s.flushed += 1
from array import array
Q = array("f", (0.9, 0.1, -0.3, 0.2))  # as Fusion.q: float32
def run(dl, p, seconds, t):
    step = 1000 // p.rate_hz
    for _ in range(int(seconds * p.rate_hz)):
        t += step
        if p.log is not None:
            dl.fused(t, Q, Q)
        else:
            p.batcher.seq += 1  # a SAMPLES sample
    return t
def window(eid, n_packets, per=9):
    total = per * n_packets
    out = []
    for i in range(n_packets):
        b = bytearray(18 + per * 24)
        struct.pack_into("<BBBBHHHHHI", b, 0, 1, 2, 3, per, eid, i * per, total, 3, 500, 1234)
        out.append(bytes(b))
    return out
def marks_of(dl):
    dl.new_link()
    out = []
    while True:
        m = dl.next_marks()
        if m is None:
            return out
        out.append(hx(m))
def logs_of(dl):
    out = []
    c = dl.oldest_seq()
    while c is not None:
        r = dl.read_log_from(c)
        if r is None:
            break
        out.append(hx(r[0]))
        c = r[1] + r[0][3]
    return out
"""


def _run(body: str, tmp_path: Path, **kw) -> list:
    code = (_PRELUDE + body).replace("DLPATH", str(tmp_path / "day.log"))
    out = run_mpy(code, **kw).decode().splitlines()
    assert out[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [json.loads(x) for x in out[1:] if x.startswith(("{", "["))]


def _marks(hexes: list[str]) -> list[tuple]:
    """(mark_id, t_ms, kind, a, b, c) of every mark, read as protocol/SPEC.md lays MARKS out."""
    out = []
    for h in hexes:
        pkt = bytes.fromhex(h)
        v, t, mask, count, mid, res = struct.unpack_from("<BBBBHH", pkt, 0)
        assert (v, t, res) == (1, 4, 0) and 1 <= count <= 19 and len(pkt) == 8 + 12 * count
        out += [((mid + i) & 0xFFFF, *struct.unpack_from("<IBBHI", pkt, 8 + 12 * i)) for i in range(count)]
    return out


def test_logs_ten_hz_in_the_samples_seq_line_and_marks_start_and_end(tmp_path):
    (r,) = _run(r"""
p = Pipe(50)
p.batcher.seq = 500
p.batcher.count = 3  # a partial SAMPLES packet when logging starts: it is closed first
dl = daylog.DayLog("DLPATH", 100, 3, after_ms=2000, verbose=False)
dl.attach(p)
t = 0
for _ in range(3):  # no central for 3 s of sample time: logging from 2 s on
    dl.update(t, False)
    t = run(dl, p, 1.0, t)
started = dl.logging
t = run(dl, p, 20.0, t)
dl.update(t, True)  # a central: SAMPLES again
emit({"started": started, "flushed": p.flushed, "logging": dl.logging, "seq": p.batcher.seq,
      "log": logs_of(dl), "marks": marks_of(dl), "hook": p.log is None})
""", tmp_path)
    assert r["started"] and not r["logging"] and r["hook"] and r["flushed"] == 1
    pk = [decode_log_packet(bytes.fromhex(h)) for h in r["log"]]
    seqs = [s for p in pk for s in range(p.seq, p.seq + p.count)]
    first = pk[0].seq
    assert seqs == list(range(first, r["seq"]))  # contiguous, and the SAMPLES line goes on after it
    assert first == 500 + 100  # the samples of the first 2 s took SAMPLES seqs
    assert all(p.period_ms == 100 and p.imu_mask == 3 for p in pk) and pk[0].count == 38
    assert len(seqs) == 10 * 21  # 10 Hz from 50 Hz fused samples, 21 s
    m = _marks(r["marks"])
    assert [x[2] for x in m] == [6, 7] and m[0][5] == first and m[1][5] == r["seq"]  # OFFLINE_START / END
    assert [x[0] for x in m] == [0, 1]


def test_eviction_oldest_log_first_windows_last_and_whole_with_drop_marks(tmp_path):
    (r,) = _run(r"""
p = Pipe(50)
dl = daylog.DayLog("DLPATH", 24, 3, after_ms=0, verbose=False)
dl.attach(p)
dl.update(0, False)
t = run(dl, p, 8.0, 0)  # 2 LOG packets
a = dl.add_window(window(1, 3))
b = dl.add_window(window(2, 3))
t = run(dl, p, 120.0, t)  # fills the file: the oldest LOG goes, the windows stay
mid = dict(dl.stats())
first_kept = dl.oldest_seq()
c = dl.add_window(window(3, 10))
d = dl.add_window(window(4, 10))  # no LOG left to drop: window 1, then 2, go whole
e = dl.add_window(window(5, 40))  # bigger than the file: not stored
dl.update(t, True)
dl.new_link()
evs = []
while True:
    x = dl.next_event()
    if x is None:
        break
    evs.append(hx(x[:10]))
emit({"stored": [a, b, c, d, e], "mid": mid, "end": dl.stats(), "first_kept": first_kept,
      "log": logs_of(dl), "marks": marks_of(dl), "events": evs})
""", tmp_path)
    assert r["stored"] == [True, True, True, True, False]
    mid, end = r["mid"], r["end"]
    assert mid["windows_dropped"] == 0 and mid["event"] == 6 and mid["log_dropped_samples"] > 0
    assert mid["log_dropped_samples"] == r["first_kept"]  # the oldest ones, from seq 0 on
    m = _marks(r["marks"])
    kinds = [x[2] for x in m]
    drops = [x for x in m if x[2] == 4]
    assert drops and drops[0][5] == 0 and sum(x[4] for x in drops) == end["log_dropped_samples"]
    for x, y in zip(drops, drops[1:]):  # consecutive drops merged, one mark per run
        assert y[5] != x[5] + x[4]
    ev_drops = [x for x in m if x[2] == 5]
    # id, samples: whole windows. 5 never fits; 2 goes when the marks are sealed at the end
    # (MARKS are evicted last)
    assert [(x[4], x[5]) for x in ev_drops] == [(1, 27), (5, 360), (2, 27)]
    assert kinds[0] == 6 and 7 in kinds
    # what is left: windows 3 and 4, whole and in order; LOG none (all went before any window)
    ids = [int(h[8:12][2:4] + h[8:12][0:2], 16) for h in r["events"]]
    firsts = [int(h[12:16][2:4] + h[12:16][0:2], 16) for h in r["events"]]
    assert ids == [3] * 10 + [4] * 10 and firsts == [9 * i for i in range(10)] * 2
    assert end["log"] == 0 and end["windows_dropped"] == 3 and end["marks_lost"] == 0


def test_capacity_figures_and_the_boot_plan(tmp_path):
    (r,) = _run(r"""
import config
K = 1024
xiao = daylog.plan((5056 - 320) * K, 8 * K * K, spill_bytes=config.BLE_SPILL_KIB * K, on=2)
esp32 = daylog.plan((2048 - 320) * K, 110 * K, on=2)
tiny_heap = daylog.plan((5056 - 320) * K, 100 * K, on=2)
emit({"slots_xiao": daylog.slots_for(config.DAYLOG_KIB), "h_xiao": daylog.capacity_h(daylog.slots_for(config.DAYLOG_KIB)),
      "h_xiao_trunk": daylog.capacity_h(daylog.slots_for(config.DAYLOG_KIB), 1),
      "xiao": xiao, "esp32": esp32, "h_esp32": daylog.capacity_h(daylog.slots_for(esp32[0])),
      "tiny_heap": tiny_heap, "off": daylog.plan(5000 * K, 8 * K * K, on=0),
      "unix": daylog.plan(5000 * K, 8 * K * K, on=1), "full": daylog.plan(150 * K, 8 * K * K, on=2),
      "kib": config.DAYLOG_KIB, "hz": config.DAYLOG_HZ, "max": daylog.slots_for(100000)})
""", tmp_path)
    assert r["kib"] == 3968 and r["hz"] == 10
    assert r["slots_xiao"] == 3968 * 1024 // 244 - 1 == 16651
    assert round(r["h_xiao"], 1) == 17.6 and r["h_xiao"] >= 16 and round(r["h_xiao_trunk"], 1) == 35.2  # SPEC, docstring
    assert r["xiao"][0] == 3968  # the XIAO's VFS holds the whole setting besides the spill file
    assert r["esp32"][0] == 2048 - 320 - 128 and "flash has free" in r["esp32"][1]
    assert round(r["h_esp32"], 1) == 7.1
    # 100 KiB heap: (100 - 64) KiB / 3 bytes per slot of index
    assert r["tiny_heap"][0] == (100 * 1024 - 65536) // 3 * 244 // 1024 and "heap" in r["tiny_heap"][1]
    assert r["off"][0] == 0 and r["unix"] == [0, "no board flash on this port"]
    assert r["full"][0] == 0 and "no room" in r["full"][1]
    assert r["max"] == 65534  # the u16 links


def test_a_corrupt_truncated_or_old_file_is_reset_with_a_reason_never_a_crash(tmp_path):
    good = bytearray(244 * 3)
    good[0:8] = b"NAPEDLG2"
    struct.pack_into("<HHII", good, 8, 2, 0, 50, 0xCAFE)
    v1 = bytearray(good)
    v1[0:8] = b"NAPEDLG1"
    files = {
        "garbage": bytes(range(256)) * 4,
        "short": b"NAPEDLG2\x01\x00",
        "empty": b"",
        "badsize": bytes(good) + b"xx",
        "old": bytes(v1),
        "nostate": bytes(good),
        "big": bytes(good) + bytes(244 * 20),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "adir").mkdir()
    out = run_mpy((_PRELUDE + r"""
import config
res = {}
for name in ("garbage", "short", "empty", "badsize", "old", "nostate", "big", "missing"):
    dl = daylog.DayLog("TMP/" + name, 10, 3, verbose=True)
    res[name] = [dl.reset_reason, dl.room()]
    dl.close()
class App:
    store = None
    service = None
    def set_daylog(self, dl):
        self.dl = dl
res["dir"] = daylog.make(App(), 3, 64, "TMP/adir") is None
emit(res)
""").replace("TMP", str(tmp_path))).decode().splitlines()
    res = json.loads(out[-1])
    assert res["garbage"][0] == "corrupt file (not a Nape day log)"
    assert res["short"][0].startswith("truncated file (10 bytes")
    assert res["empty"][0] == "empty file"
    assert res["badsize"][0].startswith("truncated or corrupt file")
    assert res["old"][0] == "2 packets in format 1 (an older firmware)"
    assert res["nostate"][0] == "2 packets of an unknown boot (no state file)"
    assert res["big"][0] == "22 packets, more than this boot's 10 slots"
    assert res["missing"][0] == "new file"
    assert all(v[1] == 10 for k, v in res.items() if k != "dir")  # reset: every slot free
    assert res["dir"] is True and any(x.startswith("daylog: no day log (") for x in out)
    assert any("daylog: %s: corrupt file (not a Nape day log): reset" % (tmp_path / "garbage") in x for x in out)
    for name in files:  # every file now starts with a fresh header, nothing after it
        assert (tmp_path / name).stat().st_size == 244


def test_marks_encoder_makes_the_vector_bytes_and_refuses_bad_marks(tmp_path):
    cases = json.loads(VECTORS.read_text())
    valid = [c for c in cases if c["valid"]]
    inp = [[c["decoded"]["imu_mask"], c["decoded"]["mark_id"],
            [[m["t_ms"], m["kind"], m["a"], m["b"], m["c"]] for m in c["decoded"]["marks"]]] for c in valid]
    (r,) = _run(r"""
inp = json.loads('INP')
out = [hx(logpack.encode_marks(m, i, [tuple(x) for x in ms])) for m, i, ms in inp]
bad = []
for args in ((0, 0, 0, 0), (8, 0, 0, 0), (1, 256, 0, 0), (4, 0, 65536, 0)):
    mb = logpack.MarksBatcher(3)
    try:
        mb.add(5, *args)
        bad.append("added")
    except ValueError:
        bad.append(mb.count)
try:
    logpack.encode_marks(3, 0, [(1, 1, 0, 0, 0)] * 20)
    bad.append("20 encoded")
except ValueError:
    bad.append("20 refused")
mb = logpack.MarksBatcher(1, 65535)
full = [mb.add(i, 2) for i in range(19)]
emit({"hex": out, "bad": bad, "full": full, "next": mb.next_id, "pk": hx(mb.packet()), "empty": mb.packet()})
""".replace("INP", json.dumps(inp)), tmp_path)
    assert r["hex"] == [c["hex"] for c in valid]
    assert r["bad"] == [0, 0, 0, 0, "20 refused"]
    assert r["full"] == [False] * 18 + [True] and r["next"] == 18 and r["empty"] is None
    assert _marks([r["pk"]])[0][:3] == (65535, 0, 2) and _marks([r["pk"]])[1][0] == 0  # ids wrap


_SERVICE = r"""
import bluetooth, ble_buffer, ble_service
def mk(seq, count):
    b = bytearray(14 + count * 41)
    struct.pack_into("<BBBBIIH", b, 0, 1, 1, 3, count, seq, seq * 10, 10000)
    for i in range(count):
        for k in range(2):
            struct.pack_into("<h", b, 14 + i * 41 + 1 + 20 * k, 16384)
    return bytes(b)
ble = bluetooth.BLE()
st = ble_buffer.PacketStore(ram_slots=64)
svc = ble_service.NapeService(ble, st, imu_mask=3, fast_adv_ms=50)
p = Pipe(50)
dl = daylog.DayLog("DLPATH", 200, 3, after_ms=0, verbose=False)
dl.attach(p)
svc.daylog = dl
# 100 SAMPLES, then 60 s offline (LOG, two windows), then 50 SAMPLES after the central came
for s in range(0, 100, 5):
    st.append(mk(s, 5))
p.batcher.seq = 100
dl.update(0, False)
t = run(dl, p, 30.0, 0)
dl.add_window(window(7, 4))
t = run(dl, p, 30.0, t)
dl.add_window(window(8, 4))
dl.update(t, True)
after = p.batcher.seq
for s in range(after, after + 50, 5):
    st.append(mk(s, 5))
def connect(mtu):
    ble._inject(1, (7, 1, b"\x00" * 6)); svc.poll()
    ble._inject(21, (7, mtu)); svc.poll()
def write(cmd):
    ble._inject(3, (7, svc.h_control, cmd)); svc.poll()
def drain(limit=100000):
    got = []
    n = 0
    while n < limit:
        ble._sent.clear()
        k = svc.pump(8)
        for x in ble._sent:
            if x[0] == "notify" and x[1][1] in (svc.h_stream, svc.h_event):
                got.append(["s" if x[1][1] == svc.h_stream else "e", hx(x[1][2])])
        if not k:
            return got
        n += k
    return got
"""


def _reassemble(notes: list) -> tuple[list, list]:
    streams = {"s": wire.Reassembler(), "e": wire.Reassembler()}
    out = {"s": [], "e": []}
    for ch, h in notes:
        pkt = streams[ch].feed(bytes.fromhex(h))
        if pkt is not None:
            out[ch].append(pkt)
    return out["s"], out["e"]


def _seq_line(stream: list) -> list[int]:
    seqs = []
    for pkt in stream:
        if pkt[1] == 3:
            p = decode_log_packet(pkt)
        elif pkt[1] == 1:
            p = wire.decode_packet(pkt)
        else:
            continue
        seqs += list(range(p.seq, p.seq + p.count))
    return seqs


def test_backfill_marks_and_windows_first_then_samples_and_log_by_seq_each_once(tmp_path):
    """MTU 23 (fragments) and 247: every seq once in increasing order (SAMPLES and LOG
    merged), MARKS before the seq line, EVENT windows whole; ACK / LOG_ACK free what the
    central confirmed; a second link re-sends only what was not confirmed."""
    (r,) = _run(_SERVICE + r"""
res = {"after": after}
for mtu in (23, 247):
    connect(mtu)
    write(bytes([0x08]))  # BACKFILL_ALL
    res[str(mtu)] = drain()
    ble._inject(2, (7, 1, b"\x00" * 6)); svc.poll()  # link lost, nothing confirmed
res["stats1"] = dl.stats()
connect(247)
write(bytes([0x08]))
got = drain()
res["third"] = got
write(struct.pack("<BI", 0x09, after))  # ACK everything before the SAMPLES after the day log
write(struct.pack("<BBH", 0x0D, 2, 7))  # window 7 received whole
write(struct.pack("<BBH", 0x0D, 4, 0))  # the MARKS packet of mark 0 (sealed with a LOG packet)
write(struct.pack("<BBH", 0x0D, 4, 1))  # and of mark 1 (offline end)
write(struct.pack("<BBH", 0x0D, 9, 0))  # unknown type: refused
res["bad_type"] = [hx(x[1][2]) for x in ble._sent if x[0] == "notify" and x[1][1] == svc.h_control][-1:]
res["stats2"] = dl.stats()
ble._inject(2, (7, 1, b"\x00" * 6)); svc.poll()
connect(247)
write(struct.pack("<BI", 0x03, after))  # BACKFILL from what it has (nape.ble.BleTransport)
res["fourth"] = drain()
res["status_oldest"] = svc.oldest_seq()
write(struct.pack("<BBH", 0x0D, 2, 8))  # the last window: the day log is empty, the file starts again
res["stats3"] = dl.stats()
import os
res["file_size"] = os.stat("DLPATH")[6]
emit(res)
""", tmp_path)
    after = r["after"]
    for key in ("23", "247", "third"):
        stream, events = _reassemble(r[key])
        seqs = _seq_line(stream)
        assert seqs == list(range(0, after + 50)), key  # each once, in order, SAMPLES + LOG
        types = [p[1] for p in stream]
        assert types[0] == 4 and 4 not in types[types.index(1):]  # MARKS before the seq line
        assert 3 in types and types.index(3) > types.index(1)  # LOG inside the SAMPLES line
        evs = [wire.decode_packet(p) for p in events]
        assert [(e.event_id, e.first_index) for e in evs] == [(7, 0), (7, 9), (7, 18), (7, 27),
                                                              (8, 0), (8, 9), (8, 18), (8, 27)]
        m = _marks([p.hex() for p in stream if p[1] == 4])
        assert [x[2] for x in m] == [6, 7] and m[0][5] == 100 and m[1][5] == after
    assert r["bad_type"] == [bytes((P.CMD_LOG_ACK | 0x80, 3)).hex()]
    s1, s2 = r["stats1"], r["stats2"]
    assert s1["log"] > 0 and s1["event"] == 8 and s1["marks"] == 2  # nothing confirmed: all kept
    assert s2["log"] == 0 and s2["event"] == 4 and s2["marks"] == 0  # confirmed: freed
    assert s2["rewinds"] == 0 and s2["file_slots"] == s1["file_slots"]  # window 8 still stored
    assert r["stats3"]["rewinds"] == 1 and r["stats3"]["file_slots"] == 0 and r["file_size"] == 244
    stream, events = _reassemble(r["fourth"])
    assert [p[1] for p in stream] == [1] * 10  # only the SAMPLES after the day log (not acked)
    assert {wire.decode_packet(p).event_id for p in events} == {8}  # only the window not acked
    assert r["status_oldest"] == 0  # SAMPLES before the day log were not acked


def test_pipeline_hook_samples_then_log_then_samples_one_seq_line(tmp_path):
    """The real Pipeline (fusion at 100 Hz) with the day log: SAMPLES packets, LOG
    packets while it logs, SAMPLES again; one seq line without overlap or hole."""
    (r,) = _run(r"""
import pipeline
pl = pipeline.Pipeline(3, 100, 244, fragment=False)
dl = daylog.DayLog("DLPATH", 50, 3, after_ms=3000, verbose=False)
dl.attach(pl)
acc = (0.0, 0.0, 9.80665)
gyr = (0.0, 0.0, 0.0)
out = []
t = 0
for i in range(1000):
    t += 10
    if i % 10 == 0:
        dl.update(t, 500 <= i < 510 or i >= 900)  # logs from 3 s, a central at 5 s, logs again from 8.1 s
    pl.step(t, acc, gyr, acc, gyr)
    while pl.outbox:
        out.append(hx(pl.outbox.pop(0)))
pl.flush()
while pl.outbox:
    out.append(hx(pl.outbox.pop(0)))
emit({"samples": out, "log": logs_of(dl), "seq": pl.batcher.seq, "periods": dl.offline_periods})
""", tmp_path)
    seqs = []
    for h in r["samples"]:
        p = wire.decode_packet(bytes.fromhex(h))
        seqs += [("S", s, p.t_ms + i * 10) for i, s in enumerate(range(p.seq, p.seq + p.count))]
    for h in r["log"]:
        p = decode_log_packet(bytes.fromhex(h))
        seqs += [("L", s, p.t_ms + i * 100) for i, s in enumerate(range(p.seq, p.seq + p.count))]
    seqs.sort(key=lambda x: x[1])
    assert [s for _, s, _ in seqs] == list(range(r["seq"]))
    kinds = "".join(k for k, _, _ in seqs)
    assert kinds.startswith("S") and "L" in kinds and kinds.endswith("S")
    times = [t for _, _, t in seqs]
    assert times == sorted(times)  # time goes forward across the rate changes
    assert r["periods"] == 2


def test_integer_packing_of_float32_quaternions_matches_quat24(tmp_path):
    """``LogBatcher.add_f32`` packs ``Fusion.q`` (float32) in integers, allocation-free:
    the same word as the float ``quat24`` but at rounding half-points and near-ties of the
    largest component, and always within the LOG accuracy (2 deg, SPEC)."""
    rows = run_mpy(r"""
import sys, json, random, array, gc, logpack
print(sys.implementation.name)
random.seed(7)
tmp = array.array("i", (0, 0, 0, 0))
buf = bytearray(3)
out = []
for i in range(4000):
    q = [random.random() * 2 - 1 for _ in range(4)]
    n = sum(x * x for x in q) ** 0.5
    a = array.array("f", [x / n for x in q])
    r = logpack._q24_f32(a, tmp, buf, 0)
    out.append([list(a), buf[0] | (buf[1] << 8) | (buf[2] << 16), logpack.quat24(a), r])
lb = logpack.LogBatcher(3, 100)
q0 = array.array("f", (0.9, 0.1, -0.3, 0.2))
bad = array.array("f", (3.0, 0.0, 0.0, 0.0))
lb.add_f32(0, q0, q0)
gc.collect()
m0 = gc.mem_alloc()
for i in range(30):
    lb.add_f32(100 * i, q0, q0)
alloc = gc.mem_alloc() - m0
lb.count = 0
lb.add_f32(0, bad, q0)  # not a unit quaternion: the float path (normalises)
print(json.dumps({"cases": out, "alloc": alloc, "fallback": list(lb.buf[14:20])}))
""").decode().splitlines()
    assert rows[0] == "micropython"
    r = json.loads(rows[1])
    q = np.array([c[0] for c in r["cases"]])
    mine = np.array([c[1] for c in r["cases"]], dtype=np.uint32)
    ref = np.array([c[2] for c in r["cases"]], dtype=np.uint32)
    assert all(c[3] == 0 for c in r["cases"])
    assert np.mean(mine == ref) > 0.99
    for words in (mine, ref):
        dq = unpack_quats(words)
        dot = np.abs(np.sum(dq * q, axis=1))
        ang = np.degrees(2 * np.arccos(np.clip(dot, -1, 1)))
        assert ang.max() < 2.0
    assert r["alloc"] == 0  # 30 samples, no heap objects
    w = r["fallback"][0] | (r["fallback"][1] << 8) | (r["fallback"][2] << 16)
    assert w & 3 == 0 and all(((w >> (2 + 7 * k)) & 127) == 64 for k in range(3))  # (1, 0, 0, 0)


def test_event_ids_go_on_when_the_saver_changes_the_jolt_screens_rate(tmp_path):
    """The day log and the host tell windows apart by ``event_id`` (per boot): a rate
    change (power saver: 200 Hz screening offline) makes a new screen that goes on
    counting, not one that starts again at 0."""
    out = run_mpy(r"""
import sys, json, machine, fake_i2c, fake_mpu6050, fake_icm42688, bluetooth, config, main
print(sys.implementation.name)
bus = fake_i2c.FakeI2C()
bus.add(0x68, fake_mpu6050.FakeMPU6050())
bus.add(0x69, fake_icm42688.FakeICM42688())
machine.I2C.attach(0, bus)
machine.Timer.reset_all()
dev = main.boot(clock=machine.time_ms, start_timer=False)
smp = dev.sampler
a = smp.screen
a._next_id = 41  # 41 windows so far this boot
smp.set_rates(50, config.SAVER_RAW_ODR_HZ)
b = smp.screen
smp.set_rates(100, config.RAW_ODR_HZ)
c = smp.screen
print(json.dumps([a.rate_hz, b.rate_hz, b._next_id, c.rate_hz, c._next_id, a is not b]))
""").decode().splitlines()
    assert out[0] == "micropython"
    a_rate, b_rate, b_id, c_rate, c_id, new = json.loads(out[-1])
    assert new and a_rate != b_rate and b_id == 41 and c_id == 41


_REBOOT = r"""
def plogs_of(dl):
    out = []
    c = dl.prev_oldest_seq()
    while c is not None:
        r = dl.read_prev_log_from(c)
        if r is None:
            break
        out.append(hx(r[0]))
        c = r[1] + r[0][3]
    return out
def pmarks_of(dl):
    dl.new_link()
    dl.prev_pending()
    out = []
    while True:
        m = dl.next_prev_marks()
        if m is None:
            return out
        out.append(hx(m))
def pevents_of(dl):
    dl.new_link()
    out = []
    while True:
        m = dl.next_prev_event()
        if m is None:
            return out
        out.append(hx(m[:10]))
def boot(bid, slots=200):
    dl = daylog.DayLog("DLPATH", slots, 3, boot_id=bid, after_ms=0, verbose=True)
    p = Pipe(50)
    dl.attach(p)
    dl.update(0, False)
    return dl, p
"""


def _log_seqs(hexes: list[str]) -> list[int]:
    pk = [decode_log_packet(bytes.fromhex(h)) for h in hexes]
    return [s for p in pk for s in range(p.seq, p.seq + p.count)]


def test_a_reboot_keeps_the_unconfirmed_log_as_the_previous_boots_in_seq_order(tmp_path):
    (r,) = _run(_REBOOT + r"""
dl, p = boot(0xA1)
t = run(dl, p, 40.0, 0)  # 400 LOG samples: 10 full packets and a partial one in RAM
dl.add_window(window(7, 3))
first_half = dl.oldest_seq() + 38 * 4
dl.release_log(first_half)  # a central took 4 packets (their slots are free) ...
t = run(dl, p, 30.0, t)  # ... and the log went on into them (written out of slot order)
dl.seal()
before = logs_of(dl)
marks_before = marks_of(dl)
n_before = dl.stats()
dl.close()  # power lost: no clean stop
dl2, p2 = boot(0xB2)
kept = {"reason": dl2.reset_reason, "pboot": dl2.pboot, "plog": plogs_of(dl2),
        "pmarks": pmarks_of(dl2), "pev": pevents_of(dl2), "log": dl2.oldest_seq(),
        "free": dl2.room(), "n": dl2.prev_packets()}
t2 = run(dl2, p2, 8.0, 0)  # the new boot logs from seq 0, beside the old one
cur = logs_of(dl2)
plog_again = plogs_of(dl2)
# the host takes the previous boot: every packet confirmed -> it is freed
dl2.release_prev_log(dl2.prev_next_seq())
for h in kept["pmarks"]:
    dl2.ack_prev_marks(int(h[10:12] + h[8:10], 16))
dl2.ack_prev_event(7)
gone = {"pboot": dl2.pboot, "n": dl2.prev_packets(), "log": logs_of(dl2)}
dl2.close()
dl3, p3 = boot(0xC3)  # a third boot keeps the second's log, nothing of the first
third = {"pboot": dl3.pboot, "plog": plogs_of(dl3), "older": dl3.older_dropped_packets}
emit({"before": before, "marks_before": marks_before, "kept": kept, "cur": cur,
      "plog_again": plog_again, "gone": gone, "third": third, "stats": n_before})
""", tmp_path)
    k = r["kept"]
    assert k["reason"] is None and k["pboot"] == 0xA1 and k["log"] is None
    assert k["plog"] == r["before"] and k["plog"] == r["plog_again"]  # same bytes, seq order
    seqs = _log_seqs(k["plog"])
    assert seqs == list(range(38 * 4, 38 * 4 + len(seqs)))  # what was not confirmed, once, in order
    assert k["pmarks"] == r["marks_before"] and [m[2] for m in _marks(k["pmarks"])] == [6]
    ev = [struct.unpack("<BBBBHHH", bytes.fromhex(h)) for h in k["pev"]]
    assert [(e[4], e[5], e[6]) for e in ev] == [(7, 0, 27), (7, 9, 27), (7, 18, 27)]  # the window, whole
    assert _log_seqs(r["cur"])[0] == 0  # the new boot: its own seq line from 0
    g = r["gone"]
    assert g["pboot"] == 0 and g["n"] == 0 and _log_seqs(g["log"]) == _log_seqs(r["cur"])
    th = r["third"]
    assert th["pboot"] == 0xB2 and _log_seqs(th["plog"]) == _log_seqs(r["cur"]) and th["older"] == 0


def test_the_previous_boot_is_evicted_first_with_drop_marks_in_its_own_marks(tmp_path):
    (r,) = _run(_REBOOT + r"""
dl, p = boot(0xA1, 30)
t = run(dl, p, 76.0, 0)  # 20 LOG packets of 30 slots
dl.seal()
old = logs_of(dl)
dl.close()
dl2, p2 = boot(0xB2, 30)
t = run(dl2, p2, 76.0, 0)  # 20 more: 10 + a MARKS slot of the old boot's LOG must go
dl2.seal()
emit({"old": old, "plog": plogs_of(dl2), "pmarks": pmarks_of(dl2), "cur": logs_of(dl2),
      "stats": dl2.stats()})
""", tmp_path)
    old, kept = _log_seqs(r["old"]), _log_seqs(r["plog"])
    assert kept == old[len(old) - len(kept):] and 0 < len(kept) < len(old)  # the oldest went
    drops = [m for m in _marks(r["pmarks"]) if m[2] == 4]
    assert len(drops) == 1 and drops[0][5] == old[0] and drops[0][4] == len(old) - len(kept)
    assert r["stats"]["prev_dropped_samples"] == len(old) - len(kept)
    cur = _log_seqs(r["cur"])
    assert cur == list(range(cur[0], cur[0] + len(cur))) and r["stats"]["log_dropped_samples"] == 0


def test_boot_loop_keeps_the_newest_boot_with_data_and_a_bad_state_file_resets(tmp_path):
    (r,) = _run(_REBOOT + r"""
dl, p = boot(0xA1)
run(dl, p, 20.0, 0)
dl.seal()
a = logs_of(dl)
dl.close()
out = {}
dl, p = boot(0xB2)  # crashes before it logs anything
dl.close()
dl, p = boot(0xC3)
out["c"] = [dl.pboot, plogs_of(dl) == a]
run(dl, p, 12.0, 0)
dl.seal()
c = logs_of(dl)
dl.close()
dl, p = boot(0xD4)  # the newest boot with data is kept, the older one dropped
out["d"] = [dl.pboot, plogs_of(dl) == c, dl.older_dropped_packets]
run(dl, p, 12.0, 0)
dl.close()
f = open("DLPATH.st", "wb")
f.write(b"garbage")
f.close()
dl, p = boot(0xE5)
out["bad_state"] = [dl.reset_reason, dl.pboot]
run(dl, p, 12.0, 0)
dl.close()
import os
sz = os.stat("DLPATH")[6]
f = open("DLPATH", "r+b")
f.seek(sz - 100)
f.write(b"x")
f.close()
f = open("DLPATH", "ab")
f.write(b"xx")
f.close()
dl, p = boot(0xF6)
out["truncated"] = [dl.reset_reason, dl.pboot, dl.room()]
emit(out)
""", tmp_path)
    assert r["c"] == [0xA1, True]
    assert r["d"][:2] == [0xC3, True] and r["d"][2] > 0
    assert r["bad_state"] == ["3 packets of an unknown boot (no state file)", 0] or \
        r["bad_state"][0].endswith("of an unknown boot (no state file)")
    assert r["truncated"][0].startswith("truncated or corrupt file") and r["truncated"][1:] == [0, 200]


def test_a_new_boot_takes_a_tag_no_slot_in_the_file_carries(tmp_path):
    """Freed slots keep their old boot tag until reused: a new boot's tag must differ from
    every tag left in the file, or a later scan could take a stale packet for its own."""
    (r,) = _run(_REBOOT + r"""
dl, p = boot(0xA1)
run(dl, p, 20.0, 0)  # boot A (tag 0)
dl.seal()
dl.close()
dl, p = boot(0xB2)
dl.gen = 255  # as after 255 boots: the next tag wraps to 0, the tag of A's slots
dl.save_state()
dl.release_prev_log(dl.prev_next_seq())  # the host takes A: its slots are freed, not rewritten
dl.new_link()
dl.prev_pending()
m = dl.next_prev_marks()
dl.ack_prev_marks(m[4] | (m[5] << 8))
a_gone = dl.pboot
run(dl, p, 12.0, 0)  # boot B logs (tag 255): the file is not empty, so A's stale slots stay
dl.seal()
b_log = logs_of(dl)
dl.close()
dl, p = boot(0xC3)
emit({"a_gone": a_gone, "c_gen": dl.gen, "pboot": dl.pboot, "pgen": dl.pgen, "same": plogs_of(dl) == b_log})
""", tmp_path)
    assert r["a_gone"] == 0 and r["pboot"] == 0xB2 and r["pgen"] == 255 and r["same"]
    assert r["c_gen"] not in (0, 255)  # 0 is still in the file (A's freed slots)
