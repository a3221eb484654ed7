"""Decoder fuzzing: BLE packets, bulk decoding, fragments, event windows, control values, ``.nape``.

Every target is a function ``run(data: bytes)`` that feeds arbitrary bytes to one decoder and checks
what comes out. A **crash** is any exception other than the decoder's documented error type
(``PacketError`` for the wire format, ``RecordingError`` for recordings, ``DeviceError`` for control
and status values), or a broken invariant (an ``AssertionError`` from the target's checks, e.g. the
bulk decoder disagreeing with the single-packet decoder). A **hang** is one input that takes longer
than ``HANG_S`` seconds of CPU time, twice in a row (libFuzzer's ``-timeout`` also kills a true
infinite loop).

Targets (CPython):

==================  ===============================================================================
``packet``          ``nape.wire.decode_packet`` on one packet; decoded arrays checked
``samples_many``    ``nape.wire.decode_samples_many`` on a list of packets, checked against
                    ``decode_packet`` packet by packet (same errors, same samples)
``reassembler``     ``nape.wire.Reassembler`` fed a list of notification values
``event_window``    EVENT packets through ``decode_packet`` into the analysis' event-window assembly
                    (``nape.analysis.jolts._event_windows``)
``control``         ``nape.ble.protocol.parse_control`` / ``parse_status``
``recording``       ``nape.recording.open_recording`` + every chunk + ``closed_cleanly`` on a file
``wire_fields``     structure-aware: a valid SAMPLES or EVENT packet with one header field mutated;
                    the decoder must refuse exactly the values the spec forbids
==================  ===============================================================================

Target under the real MicroPython (``tests/mpy.py``): ``fw_control`` -- the firmware's control
command parser (``firmware/ble_service.py``, ``CMD_*``), a mutation loop over its own corpus
(``tests/fuzz/corpus/fw_control/``) run inside the interpreter; every write must get a response in
the documented format (or none, for ACK and empty writes), and the service must still stream
afterwards.

Engines: ``atheris`` (coverage-guided libFuzzer, ``pip install -e .[fuzz]``; each target runs in its
own subprocess, ``cov``/``ft`` are libFuzzer's edge and feature counts, ``corpus`` its unique
inputs) or ``random`` (a built-in mutator over the stored corpus; no coverage figures; used by the
fast test subset and when atheris is missing). Crashing inputs are saved to
``tests/fuzz/crashers/TARGET/`` (they become regression cases of ``tests/test_fuzz_fast.py``).

The resync figure (``--resync N``): N recordings of 40-80 chunks each get one random damaged span
(random bytes, zeros, bytes deleted or inserted, 1 byte to 3 chunks long); the reader must recover
every chunk that the span does not touch -- in particular the first intact chunk after the span
(resync distance 0 chunks = within one frame).

Usage::

    python -m bench.fuzz                      # every target, 10^6 inputs each, in turn
    python -m bench.fuzz --n 20000 --targets packet,recording --engine random
    python -m bench.fuzz --max-seconds 240    # at most 4 min per atheris target (time box)
    python -m bench.fuzz --json               # one JSON object of figures and targets

Exit status 1 when a target has a crash or a hang, or the resync target is missed (the column
"all --n" says whether a time-boxed target reached ``--n`` inputs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS_DIR = FUZZ_DIR / "corpus"
CRASH_DIR = FUZZ_DIR / "crashers"
HANG_S = 1.0
DEFAULT_N = 1_000_000
CPYTHON_TARGETS = ("packet", "samples_many", "reassembler", "event_window", "control", "recording", "wire_fields")
ALL_TARGETS = CPYTHON_TARGETS + ("fw_control", "analysis")
ANALYSIS_N = 100_000  # whole recordings through analysis, report and export: ~20 ms each (bench/fuzz_analysis.py)

_TMP = Path(os.environ.get("NAPE_FUZZ_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()))


# --------------------------------------------------------------------------- input framing


def split_values(data: bytes, max_len: int = 600) -> list[bytes]:
    """Split fuzz bytes into a list of values: each is a u16 LE length (mod ``max_len + 1``) + bytes."""
    out = []
    i = 0
    n = len(data)
    while i + 2 <= n and len(out) < 64:
        ln = (data[i] | (data[i + 1] << 8)) % (max_len + 1)
        out.append(data[i + 2 : i + 2 + ln])
        i += 2 + ln
    return out


def join_values(values: list[bytes]) -> bytes:
    """Inverse of :func:`split_values` (for building seeds)."""
    return b"".join(struct.pack("<H", len(v)) + v for v in values)


# --------------------------------------------------------------------------- targets

_mods: dict = {}


def _load() -> None:
    if _mods:
        return
    from nape import recording, wire
    from nape.analysis import jolts
    from nape.ble import protocol
    from nape.errors import DeviceError, PacketError, RecordingError

    _mods.update(wire=wire, recording=recording, jolts=jolts, protocol=protocol, PacketError=PacketError,
                 RecordingError=RecordingError, DeviceError=DeviceError)


def _check_samples(pkt, data: bytes) -> None:
    import numpy as np

    wire = _mods["wire"]
    n_imu = len(pkt.roles)
    assert pkt.count == data[3] and pkt.imu_mask == data[2]
    assert pkt.quat.shape == (pkt.count, n_imu, 4) and pkt.acc.shape == (pkt.count, n_imu, 3)
    assert pkt.gyr.shape == (pkt.count, n_imu, 3) and pkt.flags.shape == (pkt.count,)
    assert np.all(np.abs(np.linalg.norm(pkt.quat, axis=2) - 1.0) <= wire.QUAT_NORM_TOL)
    assert pkt.period_us > 0


def t_packet(data: bytes) -> None:
    wire = _mods["wire"]
    try:
        pkt = wire.decode_packet(data)
    except _mods["PacketError"] as e:
        assert str(e) and "\n" not in str(e)
        return
    if isinstance(pkt, wire.SamplesPacket):
        _check_samples(pkt, data)
    elif data[1] == wire.TYPE_LOG:
        assert pkt.quat.shape == (pkt.count, len(pkt.roles), 4) and pkt.period_ms > 0
        assert abs(float((pkt.quat ** 2).sum(-1).max()) - 1.0) < 1e-9
    elif data[1] == wire.TYPE_MARKS:
        assert 1 <= pkt.count <= 19 and len(data) == 8 + 12 * pkt.count
        assert all(1 <= m.kind <= 7 for m in pkt.marks)
    else:
        assert pkt.first_index + pkt.count <= pkt.total and pkt.pre_trigger < pkt.total and pkt.rate_hz > 0
        assert pkt.acc.shape == (pkt.count, len(pkt.roles), 3)


def t_samples_many(data: bytes) -> None:
    import numpy as np

    wire = _mods["wire"]
    packets = split_values(data, 520)
    arrays, errors = wire.decode_samples_many(packets)
    bad = {i for i, _ in errors}
    assert len(bad) == len(errors), "a packet reported twice"
    want: dict[int, list] = {}
    for i, p in enumerate(packets):
        if len(p) >= 2 and p[0] == wire.VERSION and p[1] == wire.TYPE_EVENT:
            assert i not in bad  # EVENT packets are skipped silently
            continue
        try:
            pkt = wire.decode_packet(p)
        except _mods["PacketError"]:
            assert i in bad, f"packet {i} is malformed but the bulk decoder accepted it"
            continue
        assert i not in bad, f"packet {i} decodes alone but the bulk decoder refused it"
        if not isinstance(pkt, wire.SamplesPacket):
            continue  # a valid LOG or MARKS packet: no samples of the bulk arrays
        want.setdefault(pkt.imu_mask, []).append(pkt)
    assert set(arrays) <= set(want) | {m for m, a in arrays.items() if len(a) == 0}
    for mask, pkts in want.items():
        a = arrays[mask]
        assert len(a) == sum(p.count for p in pkts)
        assert np.array_equal(a.quat, np.concatenate([p.quat for p in pkts]))
        assert np.array_equal(a.acc, np.concatenate([p.acc for p in pkts]))
        assert np.array_equal(a.seq, np.concatenate([(p.seq + np.arange(p.count)) & 0xFFFFFFFF for p in pkts]))
        assert np.array_equal(a.t_ms, np.concatenate([p.t_ms + np.arange(p.count) * (p.period_us / 1000.0) for p in pkts]))


def t_reassembler(data: bytes) -> None:
    wire = _mods["wire"]
    r = wire.Reassembler()
    values = split_values(data, 300)
    got = 0
    for v in values:
        out = r.feed(v)
        if out is not None:
            assert isinstance(out, bytes) and len(out) <= wire.MAX_PACKET
            got += 1
    assert r.dropped >= 0 and got + r.dropped <= len(values) + 1


def t_event_window(data: bytes) -> None:
    wire = _mods["wire"]
    events = []
    for p in split_values(data, 520):
        try:
            pkt = wire.decode_packet(p)
        except _mods["PacketError"]:
            continue
        if isinstance(pkt, wire.EventPacket):
            events.append(pkt)
    with warnings.catch_warnings():  # numpy "mean of empty slice" on a partial window is no crash
        warnings.simplefilter("ignore", RuntimeWarning)
        out = _mods["jolts"]._event_windows(events, 0.0)
    assert len(out) == len({(e.event_id, e.trigger_t_ms, e.total, e.pre_trigger, e.acc.shape[1]) for e in events})
    for w in out:
        assert isinstance(w["complete"], bool) and len(w["peak"]) >= 1


def t_control(data: bytes) -> None:
    proto = _mods["protocol"]
    err = _mods["DeviceError"]
    for fn in (proto.parse_control, proto.parse_status):
        try:
            fn(data)
        except err as e:
            assert str(e) and "\n" not in str(e)


_rec_path = Path(os.environ.get("NAPE_FUZZ_FILE") or _TMP / f"nape-fuzz-{os.getpid()}.nape")


def t_recording(data: bytes) -> None:
    rec_mod = _mods["recording"]
    with open(_rec_path, "wb") as f:
        f.write(data)
    try:
        rec = rec_mod.open_recording(_rec_path)
        chunks = list(rec.chunks())
        clean = rec.closed_cleanly
        probe = rec_mod.open_recording(_rec_path).closed_cleanly
    except _mods["RecordingError"] as e:
        assert str(e) and "\n" not in str(e)
        return
    assert clean == probe or not clean or not probe  # both are bool
    size = len(data)
    last = -1
    for c in chunks:
        assert rec.header_size <= c.offset < size and c.offset > last
        last = c.offset
        if c.packets is not None:
            assert all(isinstance(p, bytes) for p in c.packets)
        else:
            assert isinstance(c.note, dict)
    for i in rec.issues:
        assert 0 <= i.offset <= size and i.kind and "\n" not in i.detail


# structure-aware: one header field of a valid packet set to a value taken from the input


def _valid_samples(rng: random.Random) -> tuple[bytes, int]:
    import numpy as np

    wire = _mods["wire"]
    mask = rng.choice((1, 2, 3))
    n_imu = 1 + (mask == 3)
    n = rng.randint(1, 10)
    q = np.random.default_rng(rng.getrandbits(32)).normal(size=(n, n_imu, 4))
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    acc = np.random.default_rng(rng.getrandbits(32)).normal(0, 20, size=(n, n_imu, 3))
    gyr = np.random.default_rng(rng.getrandbits(32)).normal(0, 3, size=(n, n_imu, 3))
    pkt = wire.encode_samples(mask, rng.getrandbits(32), rng.getrandbits(32), rng.randint(1, 65535),
                              np.zeros(n, np.uint8), q, acc, gyr)
    return pkt, n


def _valid_event(rng: random.Random) -> bytes:
    import numpy as np

    wire = _mods["wire"]
    mask = rng.choice((1, 2, 3))
    n_imu = 1 + (mask == 3)
    n = rng.randint(1, 12)
    total = rng.randint(n, 600)
    first = rng.randint(0, total - n)
    acc = np.random.default_rng(rng.getrandbits(32)).normal(0, 30, size=(n, n_imu, 3))
    gyr = np.random.default_rng(rng.getrandbits(32)).normal(0, 5, size=(n, n_imu, 3))
    return wire.encode_event(mask, rng.getrandbits(16), first, total, rng.randint(0, total - 1),
                             rng.randint(1, 2000), rng.getrandbits(32), acc, gyr)


def spec_legal(b: bytes) -> bool:
    """Whether ``b`` is a valid packet by protocol/SPEC.md, checked field by field (the oracle)."""
    import numpy as np

    version, ptype, mask, count = (b + bytes(4))[:4]
    n_imu = bin(mask & 3).count("1")
    if not (len(b) >= 4 and version == 1 and ptype in (1, 2, 3, 4) and mask in (1, 2, 3) and count > 0):
        return False
    if ptype == 3:  # LOG: 14-byte header, period_ms > 0, 3-byte packed quaternions
        if len(b) != 14 + count * 3 * n_imu or struct.unpack_from("<H", b, 12)[0] == 0:
            return False
        for i in range(14, len(b), 3):
            w = b[i] | b[i + 1] << 8 | b[i + 2] << 16
            small = [((w >> (2 + 7 * k)) & 127) - 64 for k in range(3)]
            if w >> 23 or sum(v * v for v in small) / (63.0 ** 2 * 2) > 1.02:
                return False
        return True
    if ptype == 4:  # MARKS: 8-byte header, 1..19 marks of 12 bytes, reserved 0, kinds 1..7
        return (count <= 19 and len(b) == 8 + 12 * count and struct.unpack_from("<H", b, 6)[0] == 0
                and all(1 <= b[8 + 12 * i + 4] <= 7 for i in range(count)))
    if ptype == 1:
        if len(b) != 14 + count * (1 + 20 * n_imu) or struct.unpack_from("<H", b, 12)[0] == 0:
            return False
        raw = np.frombuffer(b, dtype=np.dtype([("f", "u1"), ("i", "<i2", (n_imu, 10))]), offset=14)
        norms = np.linalg.norm(raw["i"][:, :, :4] / 16384.0, axis=2)
        return bool(np.all(np.abs(norms - 1) <= _mods["wire"].QUAT_NORM_TOL))
    if len(b) != 18 + count * 12 * n_imu:
        return False
    _eid, first, total, pre, rate = struct.unpack_from("<HHHHH", b, 4)
    return rate > 0 and first + count <= total and pre < total


def t_wire_fields(data: bytes) -> None:
    """The fuzz bytes seed a valid packet and pick one field and its new value; the oracle is the spec."""
    wire = _mods["wire"]
    if len(data) < 6:
        return
    rng = random.Random(data[:4])
    field = data[4] % 10
    val = int.from_bytes(data[5:9].ljust(4, b"\0"), "little")
    if data[4] & 0x80:
        b = bytearray(_valid_event(rng))
        fields = {0: ("version", 0, 1), 1: ("type", 1, 1), 2: ("mask", 2, 1), 3: ("count", 3, 1),
                  4: ("event_id", 4, 2), 5: ("first", 6, 2), 6: ("total", 8, 2), 7: ("pre", 10, 2),
                  8: ("rate", 12, 2), 9: ("trig", 14, 4)}
    else:
        b, _n = _valid_samples(rng)
        b = bytearray(b)
        fields = {0: ("version", 0, 1), 1: ("type", 1, 1), 2: ("mask", 2, 1), 3: ("count", 3, 1),
                  4: ("seq", 4, 4), 5: ("t_ms", 8, 4), 6: ("period", 12, 2), 7: ("flags", 14, 1),
                  8: ("quat_w", 15, 2), 9: ("length", -1, 0)}
    name, off, size = fields[field]
    if name == "length":
        cut = val % (len(b) + 20)
        b = b[:cut] if cut <= len(b) else b + bytes(cut - len(b))
    else:
        val &= (1 << (8 * size)) - 1
        b[off : off + size] = val.to_bytes(size, "little")
    b = bytes(b)
    ok = True
    try:
        pkt = wire.decode_packet(b)
    except _mods["PacketError"]:
        ok = False
    legal = spec_legal(b)
    assert ok == legal, f"field {name}={val}: decoder {'accepted' if ok else 'refused'}, spec says {legal}"
    if ok and b[1] == 1:
        _check_samples(pkt, b)


TARGETS = {
    "packet": (t_packet, "nape.wire.decode_packet"),
    "samples_many": (t_samples_many, "nape.wire.decode_samples_many vs decode_packet"),
    "reassembler": (t_reassembler, "nape.wire.Reassembler"),
    "event_window": (t_event_window, "EVENT packets -> event windows (analysis.jolts)"),
    "control": (t_control, "nape.ble.protocol parse_control / parse_status"),
    "recording": (t_recording, "nape.recording reader (.nape)"),
    "wire_fields": (t_wire_fields, "structure-aware: one header field mutated"),
    "fw_control": (None, "firmware control commands (MicroPython)"),
    "analysis": (lambda data: _analysis_target()(data), "recordings built from the input -> analysis, report, export"),
}


def _analysis_target():
    from bench import fuzz_analysis

    return fuzz_analysis.t_analysis


# --------------------------------------------------------------------------- seeds


def seeds(target: str) -> list[bytes]:
    """Valid (and a few edge-case) inputs for ``target``, built from the project's own encoders."""
    _load()
    import numpy as np

    wire = _mods["wire"]
    rng = random.Random(7)
    vectors = json.loads((ROOT / "protocol" / "vectors" / "decode.json").read_text())
    vec_packets = [bytes.fromhex(v["hex"]) for v in vectors]
    samples = [_valid_samples(rng)[0] for _ in range(4)]
    events = [_valid_event(rng) for _ in range(3)]
    if target == "packet":
        return vec_packets + samples + events
    if target in ("samples_many",):
        return [join_values(samples), join_values(vec_packets), join_values(samples[:2] + events[:1])]
    if target == "reassembler":
        frags = json.loads((ROOT / "protocol" / "vectors" / "fragments.json").read_text())
        out = [join_values([bytes.fromhex(h) for h in f["values_hex"]]) for f in frags]
        out.append(join_values(wire.fragment(samples[0], 20) + wire.fragment(samples[1], 20, counter=9)))
        return out
    if target == "event_window":
        n = 30
        acc = np.random.default_rng(1).normal(0, 10, size=(n, 2, 3))
        parts = [wire.encode_event(3, 5, i, n, 10, 1000, 12345, acc[i : i + 10], acc[i : i + 10]) for i in (0, 10, 20)]
        return [join_values(parts), join_values(events)]
    if target == "control":
        return [bytes([0x81, 0]) + struct.pack("<II", 0, 20), bytes([0xA0]) + struct.pack("<I", 99),
                bytes([0x82, 2]), bytes([1, 5, 3, 80]) + bytes(40) + b"0.1.0"]
    if target == "recording":
        return _seed_recording_bytes()
    if target == "wire_fields":
        return [bytes([i, 0, 0, 0, f, 1, 0, 0, 0]) for i in range(3) for f in (0, 3, 6, 0x86, 0x87)]
    if target == "fw_control":
        return [bytes.fromhex(h) for h in FW_SEEDS]
    if target == "analysis":
        from bench import fuzz_analysis

        return fuzz_analysis.seeds()
    raise KeyError(target)


def _seed_recordings() -> list[Path]:
    rec = _mods["recording"]
    rng = random.Random(3)
    out = []
    d = Path(tempfile.mkdtemp(prefix="nape-fuzz-seed-"))
    for k in range(2):
        p = d / f"seed{k}.nape"
        with rec.RecordingWriter(p, {"source": "simulated", "imu_roles": ["trunk", "head"][: k + 1],
                                     "sample_rate_hz": 100}, fsync_interval_s=3600) as w:
            for c in range(3):
                w.write_packets([_valid_samples(rng)[0] for _ in range(2)], 1.7e9 + c)
            w.write_note({"event": "gap", "missing_packets": 2}, 1.7e9 + 5)
        out.append(p)
    return out


def _seed_recording_bytes() -> list[bytes]:
    paths = _seed_recordings()
    data = [p.read_bytes() for p in paths]
    shutil.rmtree(paths[0].parent, ignore_errors=True)
    return data


FW_SEEDS = ["01", "02", "0307000000", "0402", "051e142d00", "06" + struct.pack("<Q", 1700000000123).hex(),
            "07", "08", "090b000000", "00", "99", "0100", "0a00", "0b", "0c" + "00" * 32,
            "0d020100", "0d040000", "0d090000",
            "0d820100", "0d840000", "0e00000000", "0f05000000"]


# --------------------------------------------------------------------------- random engine


_INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x40, 0xC0, 0x3F, 16, 32, 64)


def mutate(data: bytes, rng: random.Random, pool: list[bytes], max_len: int = 4096) -> bytes:
    """One to four random byte-level mutations (flip, set, insert, delete, duplicate, splice)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        n = len(b)
        if op == 0 and n:
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.choice(_INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
        elif op == 2:
            i = rng.randint(0, n)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and n:
            i = rng.randrange(n)
            del b[i : i + rng.randint(1, 16)]
        elif op == 4 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 32))
            k = rng.randint(0, n)
            b[k:k] = b[i:j]
        elif op == 5 and pool:
            other = rng.choice(pool)
            if other:
                i = rng.randint(0, len(other))
                k = rng.randint(0, n)
                b = b[:k] + bytearray(other[i : i + rng.randint(1, 64)]) + b[k:]
        elif op == 6 and n >= 2:
            i = rng.randrange(n - 1)
            v = rng.choice((0, 1, 0xFFFF, 0x7FFF, 0x8000, rng.randrange(65536)))
            b[i : i + 2] = struct.pack("<H", v)
        elif op == 7 and n:
            del b[rng.randint(0, n) :]
    return bytes(b[:max_len])


def run_random(target: str, n: int, seed: int = 1, extra: list[bytes] | None = None,
               save_crashes: bool = True, max_s: float = 0) -> dict:
    """Run ``n`` inputs of ``target`` in process with the built-in mutator (at most ``max_s``
    seconds when given); return figures."""
    _load()
    fn = TARGETS[target][0]
    corpus = stored_corpus(target) + seeds(target) + list(extra or [])
    rng = random.Random(seed)
    crashes: list[dict] = []
    hangs = 0
    slowest = 0.0
    t0 = time.perf_counter()
    runs = 0
    for data in corpus:  # every stored input first (regression)
        c, dt = _one(fn, data)
        runs += 1
        slowest = max(slowest, dt)
        hangs += dt > HANG_S
        if c:
            crashes.append(_crash(target, data, c, save_crashes))
    max_len = 400 if target == "analysis" else 4096  # a plan of a few hundred bytes describes a recording
    while runs < n and not (max_s and time.perf_counter() - t0 > max_s):
        data = mutate(rng.choice(corpus), rng, corpus, max_len)
        c, dt = _one(fn, data)
        runs += 1
        if dt > slowest:
            slowest = dt
        if dt > HANG_S:
            hangs += 1
            _save(target, "hang", data, save_crashes)
        if c:
            crashes.append(_crash(target, data, c, save_crashes))
    elapsed = time.perf_counter() - t0
    _rec_path.unlink(missing_ok=True)
    if target == "analysis":
        from bench import fuzz_analysis

        fuzz_analysis.cleanup()
    return {"target": target, "engine": "random", "inputs": runs, "crashes": len(crashes), "hangs": hangs,
            "coverage": None, "corpus": len(corpus), "inputs_per_s": runs / elapsed if elapsed else 0.0,
            "seconds": elapsed, "slowest_input_s": slowest, "crash_examples": crashes[:5]}


def _random_job(job: tuple) -> dict:
    target, n, seed, max_s = job
    return run_random(target, n, seed, max_s=max_s)


def run_random_jobs(target: str, n: int, seed: int, jobs: int, max_s: float = 0) -> dict:
    """:func:`run_random` in ``jobs`` processes (seeds ``seed``, ``seed`` + 1, ...), figures summed."""
    if jobs <= 1:
        return run_random(target, n, seed, max_s=max_s)
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        parts = pool.map(_random_job, [(target, -(-n // jobs), seed + k, max_s) for k in range(jobs)])
    out = dict(parts[0])
    for k in ("inputs", "crashes", "hangs"):
        out[k] = sum(p[k] for p in parts)
    out["seconds"] = max(p["seconds"] for p in parts)
    out["inputs_per_s"] = out["inputs"] / out["seconds"] if out["seconds"] else 0.0
    out["slowest_input_s"] = max(p["slowest_input_s"] for p in parts)
    out["crash_examples"] = [c for p in parts for c in p["crash_examples"]][:5]
    out["jobs"] = jobs
    return out


def _one(fn, data: bytes, _retry: bool = True) -> tuple[str | None, float]:
    """Run one input; (error or None, seconds of this thread's CPU time).

    CPU time, not wall time, so that a shared machine stalling the process is not a hang; an
    input over ``HANG_S`` is run again and counts as slow only if it is slow both times.
    """
    t = time.thread_time()
    try:
        fn(data)
        err = None
    except Exception as e:  # noqa: BLE001 - anything undocumented is a crash
        err = f"{type(e).__name__}: {e}".splitlines()[0][:300]
    dt = time.thread_time() - t
    if dt > HANG_S and _retry and err is None:
        dt = min(dt, _one(fn, data, False)[1])
    return err, dt


def _save(target: str, kind: str, data: bytes, save: bool) -> Path | None:
    if not save:
        return None
    d = CRASH_DIR / target
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}"
    p.write_bytes(data)
    return p


def _crash(target: str, data: bytes, err: str, save: bool) -> dict:
    p = _save(target, "crash", data, save)
    return {"error": err, "input_hex": data[:64].hex(), "file": str(p.relative_to(ROOT)) if p else None}


def stored_corpus(target: str) -> list[bytes]:
    """Every stored corpus input and crasher of ``target`` (the regression cases)."""
    out = []
    for d in (CORPUS_DIR / target, CRASH_DIR / target):
        if d.is_dir():
            out += [p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()]
    return out


# --------------------------------------------------------------------------- atheris engine


def _atheris_worker(target: str, n: int, corpus_dir: str, crash_dir: str, max_s: int = 0, seed: int = 1) -> None:
    import atheris

    with atheris.instrument_imports(include=["nape"]):
        _load()
    fn = TARGETS[target][0]
    Path(crash_dir).mkdir(parents=True, exist_ok=True)

    def one(data: bytes) -> None:
        err, dt = _one(fn, data)
        kind = "crash" if err else ("hang" if dt > HANG_S else None)
        if kind:
            p = Path(crash_dir) / f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}"
            p.write_bytes(data)
            with open(Path(crash_dir) / "log.jsonl", "a") as f:
                f.write(json.dumps({"kind": kind, "file": p.name, "error": err, "seconds": dt}) + "\n")

    argv = [sys.argv[0], f"-runs={n}", "-timeout=20", "-max_len=4096", "-print_final_stats=1",
            f"-rss_limit_mb={os.environ.get('NAPE_FUZZ_RSS_LIMIT_MB', '3072')}",  # env: 0 = no limit
            f"-seed={1000 * seed + 1 + ALL_TARGETS.index(target)}", corpus_dir]
    if max_s:
        argv.insert(1, f"-max_total_time={max_s}")
    atheris.Setup(argv, one)
    atheris.Fuzz()


def run_atheris(target: str, n: int, keep_corpus: bool = True, max_s: int = 0, seed: int = 1) -> dict:
    """Run ``target`` under atheris in a subprocess; return figures parsed from libFuzzer's stats."""
    _load()
    work = Path(tempfile.mkdtemp(prefix=f"nape-fuzz-{target}-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for i, data in enumerate(stored_corpus(target) + seeds(target)):
        (corpus / f"seed{i:04d}").write_bytes(data)
    crash_tmp = work / "crashes"
    cmd = [sys.executable, "-m", "bench.fuzz", "--worker", target, "--n", str(n), "--corpus", str(corpus),
           "--crash-dir", str(crash_tmp), "--max-seconds", str(max_s), "--seed", str(seed)]
    t0 = time.perf_counter()
    env = dict(os.environ, NAPE_FUZZ_FILE=str(_TMP / f"{work.name}.nape"))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    Path(env["NAPE_FUZZ_FILE"]).unlink(missing_ok=True)
    elapsed = time.perf_counter() - t0
    err = proc.stderr
    runs = _last_int(r"Done (\d+) runs", err) or _last_int(r"stat::number_of_executed_units:\s*(\d+)", err) or 0
    cov = _last_int(r"cov: (\d+)", err)
    ft = _last_int(r"ft: (\d+)", err)
    corp = _last_int(r"corp: (\d+)", err)
    log = []
    if (crash_tmp / "log.jsonl").exists():
        log = [json.loads(x) for x in (crash_tmp / "log.jsonl").read_text().splitlines() if x]
    crashes = [x for x in log if x["kind"] == "crash"]
    hangs = [x for x in log if x["kind"] == "hang"]
    killed = proc.returncode != 0
    if killed:  # libFuzzer stopped the run: a timeout, an out-of-memory or a crash in native code
        hangs.append({"kind": "hang", "error": err.strip().splitlines()[-1:] if err.strip() else "?"})
    for x in crashes + [h for h in hangs if "file" in h]:
        _save(target, x["kind"], (crash_tmp / x["file"]).read_bytes(), True)
    if keep_corpus:
        _keep_corpus(target, corpus)
    shutil.rmtree(work, ignore_errors=True)
    return {"target": target, "engine": "atheris", "inputs": runs, "crashes": len(crashes), "hangs": len(hangs),
            "coverage": {"cov": cov, "ft": ft}, "corpus": corp, "inputs_per_s": runs / elapsed if elapsed else 0.0,
            "seconds": elapsed, "exit": proc.returncode, "crash_examples": crashes[:5],
            "libfuzzer_tail": err.strip().splitlines()[-3:] if killed else []}


def _keep_corpus(target: str, corpus: Path, limit: int = 60) -> None:
    """Store up to ``limit`` of the fuzzer's corpus (the smallest ones, which still cover most paths)."""
    files = sorted((p for p in corpus.iterdir() if p.is_file() and not p.name.startswith("seed")),
                   key=lambda p: (p.stat().st_size, p.name))
    files = [p for p in files if p.stat().st_size <= 8192]
    step = max(1, len(files) // limit)
    dest = CORPUS_DIR / target
    dest.mkdir(parents=True, exist_ok=True)
    room = max(0, 2 * limit - sum(1 for _ in dest.iterdir()))  # the stored corpus stays small
    for p in files[::step][:min(limit, room)]:
        data = p.read_bytes()
        (dest / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def _last_int(pattern: str, text: str) -> int | None:
    m = re.findall(pattern, text)
    return int(m[-1]) if m else None


# --------------------------------------------------------------------------- MicroPython target

FW_FUZZ = r"""
import sys, struct, time
import bluetooth, ble_buffer, ble_service
print(sys.implementation.name)
N = %(n)d
SEED = %(seed)d
corpus = [bytes.fromhex(h) for h in %(corpus)r]
ble = bluetooth.BLE()
st = ble_buffer.PacketStore(ram_slots=64)

def mk(seq, count):
    b = bytearray(14 + count * 41)
    struct.pack_into("<BBBBIIH", b, 0, 1, 1, 3, count, seq, seq * 10, 10000)
    for i in range(count):
        for k in range(2):
            struct.pack_into("<h", b, 14 + i * 41 + 1 + 20 * k, 16384)
    return bytes(b)

for k in range(40):
    st.append(mk(k * 5, 5))
settings = {}
def on_command(op, payload):
    if op == ble_service.CMD_SET_POSTURE:
        neck, trunk, hold = struct.unpack("<BBH", payload)
        if not (5 <= neck <= 90 and 5 <= trunk <= 90 and 1 <= hold <= 3600):
            return ble_service.RES_BAD_VALUE
        settings["posture"] = (neck, trunk, hold)
    return ble_service.RES_OK
svc = ble_service.NapeService(ble, st, name="Nape", fw_version="0.1.0", imu_mask=3, rate_hz=100,
                              on_command=on_command)
ble._inject(1, (7, 1, b"\x00" * 6)); svc.poll()
ble._inject(21, (7, 247)); svc.poll()
H = svc.h_control
LEN = {1: 1, 2: 1, 3: 5, 4: 2, 5: 5, 6: 9, 7: 1, 8: 1, 9: 5, 10: 2, 11: 1, 12: 33, 13: 4, 14: 5, 15: 5}
x = SEED or 1
def rnd(k):
    global x
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x %% k
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x09, 0x01, 0x03)
def mutate(b):
    b = bytearray(b)
    for _ in range(1 + rnd(3)):
        op = rnd(7)
        n = len(b)
        if op == 0 and n:
            b[rnd(n)] ^= 1 << rnd(8)
        elif op == 1 and n:
            b[rnd(n)] = INTERESTING[rnd(8)] if rnd(2) else rnd(256)
        elif op == 2:
            i = rnd(n + 1)
            b = b[:i] + bytes([rnd(256)]) + b[i:]
        elif op == 3 and n:
            i = rnd(n)
            b = b[:i] + b[i + 1 + rnd(4):]
        elif op == 4:
            b = b + bytes(rnd(256) for _ in range(1 + rnd(40)))
        elif op == 5 and n:
            b = b[:rnd(n + 1)]
        elif op == 6:
            b = bytearray(bytes([rnd(256)])) + b[1:]
    return bytes(b)

crashes = 0
bad_resp = 0
examples = []
paths = {}
slowest = 0
hangs = 0
t0 = time.ticks_ms()
for it in range(N):
    cmd = corpus[rnd(len(corpus))]
    if it >= len(corpus) * 4:
        cmd = mutate(cmd)
    ble._sent.clear()
    t = time.ticks_us()
    try:
        ble._inject(3, (7, H, cmd))
        svc.poll()
        svc.pump(8)
    except Exception as e:
        crashes += 1
        if len(examples) < 5:
            examples.append((cmd.hex(), repr(e)))
        continue
    dt = time.ticks_diff(time.ticks_us(), t)
    if dt > 1000000:  # wall time here: slow twice in a row to count (a loaded machine stalls us)
        t = time.ticks_us()
        ble._inject(3, (7, H, cmd))
        svc.poll()
        svc.pump(8)
        dt = min(dt, time.ticks_diff(time.ticks_us(), t))
        ble._sent.clear()
        if dt > 1000000:
            hangs += 1
        continue
    if dt > slowest:
        slowest = dt
    eff = cmd[:40]  # the stack keeps at most the characteristic's 40-byte buffer
    resp = [s[1][2] for s in ble._sent if s[0] == "notify" and s[1][1] == H and s[1][2][0] & 0x80
            and not (s[1][2][0] == 0xA0 and len(s[1][2]) == 5)]
    # no response (SPEC): ACK and PREV_ACK of the right length, LOG_ACK of the right length
    # with a known type (2 EVENT, 4 MARKS; bit 7: of the previous boot); any other write gets
    # exactly one response
    silent = not eff or (eff[0] in (9, 15) and len(eff) == 5) or (
        eff[0] == 13 and len(eff) == 4 and eff[1] in (2, 4, 0x82, 0x84))
    want = 0 if silent else 1
    ok = len(resp) == want
    if ok and want:
        r = resp[0]
        ok = r[0] == (eff[0] | 0x80) & 0xFF and r[1] <= 6 and (
            len(r) in (2, 10) or (eff[0] == 11 and r[1] == 0 and len(r) == 18))  # AUTH_CHALLENGE: nonce
        exp = 1 if eff[0] not in LEN else (2 if len(eff) != LEN[eff[0]] else None)
        if exp is None and eff[0] == 13:
            exp = 3  # LOG_ACK of another type: bad value
        if exp is not None and r[1] != exp:
            ok = False
        key = (eff[0] if eff[0] in LEN else -1, r[1])
        paths[key] = paths.get(key, 0) + 1
    if not ok:
        bad_resp += 1
        if len(examples) < 5:
            examples.append((cmd.hex(), "response " + repr(resp)))
    if (it & 255) == 0:
        svc.streaming = False  # keep the loop about commands, not streaming
elapsed = time.ticks_diff(time.ticks_ms(), t0)
# afterwards the service must still work: START answers OK and the stream flows
ble._sent.clear()
ble._inject(3, (7, H, b"\x08")); svc.poll(); svc.pump(64)
stream = [s for s in ble._sent if s[0] == "notify" and s[1][1] == svc.h_stream]
alive = svc.streaming and len(stream) > 0
print("RESULT", N, crashes + bad_resp, hangs, len(paths), elapsed, slowest, int(alive), repr(examples))
"""


def run_fw_control(n: int, seed: int = 1) -> dict:
    """Mutation-fuzz the firmware's control parser inside MicroPython; return figures."""
    from tests.mpy import run_mpy

    corpus = [d.hex() for d in stored_corpus("fw_control")] + FW_SEEDS
    code = FW_FUZZ % {"n": n, "seed": seed, "corpus": corpus}
    t0 = time.perf_counter()
    out = run_mpy(code, timeout=max(120.0, n / 500.0)).decode().splitlines()
    elapsed = time.perf_counter() - t0
    assert out[0] == "micropython"
    line = [x for x in out if x.startswith("RESULT ")][-1]
    parts = line.split(" ", 8)
    runs, crashes, hangs, paths, ms, slowest_us, alive = (int(v) for v in parts[1:8])
    examples = parts[8]
    if not alive:
        crashes += 1
    return {"target": "fw_control", "engine": "micropython-mutation", "inputs": runs, "crashes": crashes,
            "hangs": hangs, "coverage": {"response_kinds": paths}, "corpus": len(corpus),
            "inputs_per_s": runs / (ms / 1000.0) if ms else 0.0, "seconds": elapsed,
            "slowest_input_s": slowest_us / 1e6, "alive_after": bool(alive),
            "crash_examples": [] if examples == "[]" else [examples[:600]]}


# --------------------------------------------------------------------------- resync measurement


def build_recording(rng: random.Random, n_chunks: int) -> tuple[bytes, list[int], list[int]]:
    """A recording of ``n_chunks`` PACKETS / NOTE chunks: (bytes, chunk offsets, chunk sizes)."""
    _load()
    rec_mod = _mods["recording"]
    frames = []
    for c in range(n_chunks):
        if rng.random() < 0.85:
            pk = [rng.randbytes(rng.choice((219, 224, 44, rng.randint(1, 300)))) for _ in range(rng.randint(1, 12))]
            payload = struct.pack("<dH", 1.7e9 + c, len(pk)) + b"".join(struct.pack("<H", len(p)) + p for p in pk)
            frames.append(rec_mod._frame(1, payload))
        else:
            frames.append(rec_mod._frame(2, struct.pack("<d", 1.7e9 + c) + json.dumps({"event": "n", "k": c}).encode()))
    header = rec_mod._encode_header(b'{"source":"simulated"}')
    starts, pos = [], len(header)
    for f in frames:
        starts.append(pos)
        pos += len(f)
    return header + b"".join(frames), starts, [len(f) for f in frames]


DAMAGE = ("random", "zeros", "delete", "insert", "sync_garbage")


def damage(data: bytes, a: int, ln: int, kind: str, rng: random.Random) -> bytes:
    """``data`` with the span ``a .. a + ln`` damaged by ``kind`` (one of ``DAMAGE``)."""
    rec_mod = _mods["recording"]
    b = bytearray(data)
    if kind == "random":
        b[a : a + ln] = rng.randbytes(ln)
    elif kind == "zeros":
        b[a : a + ln] = bytes(ln)
    elif kind == "delete":
        del b[a : a + ln]
    elif kind == "insert":
        b[a:a] = rng.randbytes(ln)
    else:  # garbage full of sync markers and plausible lengths
        g = b"".join(rec_mod.SYNC + struct.pack("<BBI", rng.randint(1, 3), 0, rng.randint(0, 4000))
                     for _ in range(ln // 10 + 1))[:ln]
        b[a : a + len(g)] = g
    return bytes(b)


def resync_check(path: Path, starts: list[int], sizes: list[int], a: int, ln: int, kind: str,
                 original: bytes | None = None) -> dict:
    """Read the damaged file at ``path``; compare with the chunks written (see :func:`measure_resync`).

    With ``original`` (the file before the damage), a chunk that the span overlaps but left
    byte-identical (e.g. garbage that happens to equal what it overwrote) may be read back.
    """
    rec = _mods["recording"].open_recording(path)
    got = {c.offset for c in rec.chunks()}
    if original is not None:
        damaged = path.read_bytes()
        for s_, n_ in zip(starts, sizes):
            if s_ in got and s_ < a + ln and s_ + n_ > a and damaged[s_ : s_ + n_] == original[s_ : s_ + n_]:
                got.discard(s_)  # untouched in fact: neither lost nor a phantom
    shift = {"delete": -ln, "insert": ln}.get(kind, 0)
    span_end = a + (0 if kind == "insert" else ln)
    before = [s for s, n in zip(starts, sizes) if s + n <= a]  # untouched, same offsets
    after = [s for s in starts if s >= span_end]  # untouched, shifted by the size change
    expected = set(before) | {s + shift for s in after}
    lost = len(expected - got)
    distance = 0
    if after and after[0] + shift not in got:  # the first intact chunk after the span
        distance = next((k for k, s in enumerate(after) if s + shift in got), len(after))
    return {"lost": lost, "distance": distance, "phantom": len(got - expected)}


def measure_resync(trials: int, seed: int = 11) -> dict:
    """Corrupt one random span per recording; count chunks lost outside the span (must be 0).

    Returns figures: trials, chunks lost that the span did not touch, the worst resync distance in
    chunks after the span (0 = the first intact chunk after the span was recovered) and how many
    files had a phantom chunk (a chunk read that was never written).
    """
    _load()
    rng = random.Random(seed)
    lost_outside = worst = phantoms = 0
    kinds: dict[str, int] = {}
    span_sizes = []
    d = Path(tempfile.mkdtemp(prefix="nape-resync-", dir=_TMP))
    path = d / "r.nape"
    try:
        for _ in range(trials):
            data, starts, sizes = build_recording(rng, rng.randint(40, 80))
            a = rng.randint(starts[0], len(data) - 1)
            ln = rng.randint(1, min(3 * max(sizes), len(data) - a))
            kind = rng.choice(DAMAGE)
            kinds[kind] = kinds.get(kind, 0) + 1
            span_sizes.append(ln)
            path.write_bytes(damage(data, a, ln, kind, rng))
            r = resync_check(path, starts, sizes, a, ln, kind, data)
            lost_outside += r["lost"]
            worst = max(worst, r["distance"])
            phantoms += r["phantom"] > 0
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"target": "resync", "trials": trials, "chunks_lost_outside_span": lost_outside,
            "worst_resync_distance_chunks": worst, "files_with_phantom_chunks": phantoms,
            "span_bytes_max": max(span_sizes) if span_sizes else 0, "kinds": kinds}


# --------------------------------------------------------------------------- main


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None,
                    help=f"inputs per target (default 10^6; the analysis target {ANALYSIS_N:,})")
    ap.add_argument("--jobs", type=int, default=1, help="processes per random-engine target (default 1)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS), help="comma-separated targets")
    ap.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    ap.add_argument("--resync", type=int, default=2000, help="damaged recordings for the resync figure (0: skip)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=int, default=0,
                    help="stop each target after this many seconds (0: run all --n inputs)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--crash-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _atheris_worker(args.worker, args.n, args.corpus, args.crash_dir, args.max_seconds, args.seed)
        return 0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _have_atheris() else "random"
    rows = []
    for t in [x for x in args.targets.split(",") if x]:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r}; choose from {', '.join(ALL_TARGETS)}")
        n = args.n if args.n is not None else (ANALYSIS_N if t == "analysis" else DEFAULT_N)
        if t == "fw_control":
            rows.append(run_fw_control(n, args.seed))
        elif engine == "atheris" and t != "analysis":  # analysis: structure-aware plans, random engine
            rows.append(run_atheris(t, n, max_s=args.max_seconds, seed=args.seed))
        else:
            rows.append(run_random_jobs(t, n, args.seed, args.jobs, args.max_seconds))
        r = rows[-1]
        r["complete"] = r["inputs"] >= n
        print(f"  {t}: {r['inputs']} inputs, {r['crashes']} crashes, {r['hangs']} hangs, "
              f"{r['inputs_per_s']:.0f}/s", file=sys.stderr, flush=True)
        if args.json:
            print("ROW " + json.dumps(r), file=sys.stderr, flush=True)
    resync = measure_resync(args.resync, args.seed) if args.resync else None
    ok = all(r["crashes"] == 0 and r["hangs"] == 0 for r in rows)  # "complete" says whether --n was reached
    if resync:
        ok = ok and resync["chunks_lost_outside_span"] == 0 and resync["worst_resync_distance_chunks"] == 0 \
            and resync["files_with_phantom_chunks"] == 0
    result = {"targets": {"inputs_per_target": args.n or DEFAULT_N, "analysis_inputs": args.n or ANALYSIS_N, "crashes": 0, "hangs": 0, "resync_distance_chunks": 0},
              "engine": engine, "rows": rows, "resync": resync, "ok": ok}
    if args.json:
        print(json.dumps(result))
    else:
        from rich.console import Console
        from rich.table import Table

        tab = Table(title=f"fuzzing ({engine} engine; target: {args.n or DEFAULT_N} inputs, analysis "
                          f"{args.n or ANALYSIS_N}, 0 crashes, 0 hangs)")
        for col in ("target", "inputs", "crashes", "hangs", "coverage / paths", "corpus", "inputs/s", "all --n"):
            tab.add_column(col, justify="left" if col == "target" else "right")
        for r in rows:
            cov = r["coverage"]
            cov_s = "n/a" if not cov else ", ".join(f"{k} {v}" for k, v in cov.items())
            tab.add_row(r["target"], f"{r['inputs']:,}", str(r["crashes"]), str(r["hangs"]), cov_s,
                        str(r["corpus"]), f"{r['inputs_per_s']:,.0f}", "yes" if r["complete"] else "no (time)")
        Console().print(tab)
        if resync:
            print(f"resync: {resync['trials']} damaged recordings, {resync['chunks_lost_outside_span']} chunks "
                  f"lost outside the damaged span, worst resync distance {resync['worst_resync_distance_chunks']} "
                  f"chunks (target 0 = within one frame), {resync['files_with_phantom_chunks']} phantom chunks")
        for r in rows:
            for c in r.get("crash_examples") or []:
                print(f"  {r['target']} crash: {c}")
        print("OK" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
