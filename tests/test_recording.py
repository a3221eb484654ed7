"""Tests of the .nape recording container (host/nape/recording.py, protocol/RECORDING.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nape.recording as recording
from nape.errors import NapeError, RecordingError
from nape.recording import (
    MAGIC,
    SYNC,
    Chunk,
    ChunkType,
    ReadIssue,
    RecordingWriter,
    open_recording,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z
META = {
    "created": "2025-01-01T00:00:00.000Z",
    "device_name": "Nape-01",
    "firmware_version": "0.1.0",
    "wire_format_version": 1,
    "imu_roles": ["trunk", "head"],
    "sample_rate_hz": 100,
    "source": "simulated",
    "extras": {"operator": "test", "unicode": "Zürich ✓"},
}
FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

packet_st = st.binary(min_size=0, max_size=80)
op_st = st.one_of(
    st.tuples(st.just("p"), st.lists(packet_st, min_size=1, max_size=6)),
    st.tuples(
        st.just("n"),
        st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=8)), max_size=3),
    ),
)
ops_st = st.lists(op_st, min_size=1, max_size=8)


def write_file(path: Path, ops, metadata=None, close: bool = True) -> bytes:
    """Write ``ops`` (("p", packets) / ("n", note)) with the real writer; return the file bytes."""
    w = RecordingWriter(path, dict(META if metadata is None else metadata), fsync_interval_s=3600, overwrite=True)
    for i, (kind, value) in enumerate(ops):
        if kind == "p":
            w.write_packets(value, T0 + i * 0.01)
        else:
            w.write_note(value, T0 + i * 0.01)
    if close:
        w.close()
    else:
        w._abandon()  # simulate a crash: no END chunk
    return path.read_bytes()


def read_all(path: Path):
    rec = open_recording(path)
    return rec, list(rec.chunks())


def spans(chunks: list[Chunk], file_size: int) -> list[tuple[int, int]]:
    """[start, end) byte range of every chunk of a clean file."""
    starts = [c.offset for c in chunks]
    return list(zip(starts, starts[1:] + [file_size]))


def content(chunks):
    """Chunks without their offsets (for comparisons across shifted files)."""
    return [(c.type, c.host_time_s, c.packets, c.note) for c in chunks]


def put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Scratch directory, on tmpfs when there is one (these tests write thousands of small files)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix="nape-test-recording-", dir=shm))
        yield root
        shutil.rmtree(root, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("rec")


@pytest.fixture
def tmp_path(workdir) -> Path:
    """Per-test directory inside :func:`workdir` (shadows pytest's tmp_path)."""
    return Path(tempfile.mkdtemp(dir=workdir))


@pytest.fixture(scope="module")
def sample(workdir) -> tuple[bytes, list[Chunk]]:
    """A small clean recording used by the exhaustive tests."""
    ops = [
        ("p", [b"\x01\x02\x03", b"", b"\xff" * 40]),
        ("n", {"event": "gap", "missing_packets": 3}),
        ("p", [bytes(range(20))] * 3),
        ("n", {"event": "calibration", "q": [1.0, 0.0, 0.0, 0.0]}),
        ("p", [SYNC * 3, b"x"]),  # packets containing the sync marker must not confuse anything
    ]
    data = write_file(workdir / "sample.nape", ops)
    _, chunks = read_all(workdir / "sample.nape")
    return data, chunks


# ---------------------------------------------------------------------------------------------
# round trip and writer behaviour
# ---------------------------------------------------------------------------------------------


def test_round_trip_metadata_packets_notes(tmp_path):
    path = tmp_path / "a.nape"
    packets1 = [b"\x00" * 20, bytes(range(256)) * 2, b""]
    with RecordingWriter(path, META) as w:
        w.write_packets(packets1, T0)
        w.write_note({"event": "disconnect", "reason": "timeout"}, T0 + 1.5)
        w.write_packets([b"abc"], T0 + 2.25)
        assert (w.chunk_count, w.packet_count) == (3, 4)
    assert w.closed

    rec = open_recording(path)
    assert rec.version == 1
    assert rec.metadata == META
    assert rec.closed_cleanly  # probed from the tail before any pass
    chunks = list(rec.chunks())
    assert [c.type for c in chunks] == [ChunkType.PACKETS, ChunkType.NOTE, ChunkType.PACKETS, ChunkType.END]
    assert chunks[0].packets == packets1 and chunks[0].host_time_s == T0 and chunks[0].note is None
    assert chunks[1].note == {"event": "disconnect", "reason": "timeout"} and chunks[1].host_time_s == T0 + 1.5
    assert chunks[1].packets is None
    assert chunks[2].packets == [b"abc"]
    assert chunks[3].note == {"chunks": 3, "packets": 4}
    assert chunks[0].offset == rec.header_size
    assert rec.issues == []
    assert rec.closed_cleanly
    assert list(rec.iter_packets()) == [(T0, p) for p in packets1] + [(T0 + 2.25, b"abc")]
    assert list(rec.iter_notes()) == [(T0 + 1.5, {"event": "disconnect", "reason": "timeout"})]
    assert all(type(p) is bytes for _, p in rec.iter_packets())


def test_header_layout_is_as_documented(tmp_path):
    data = write_file(tmp_path / "h.nape", [])
    assert data[:8] == b"\x89NAP\r\n\x1a\n"
    version, n = struct.unpack_from("<HI", data, 8)
    assert version == 1
    assert json.loads(data[14 : 14 + n]) == META
    assert data[14 : 14 + n].isascii()
    (crc,) = struct.unpack_from("<I", data, 14 + n)
    assert crc == zlib.crc32(data[: 14 + n])
    end = data[18 + n :]
    assert end[:4] == SYNC and end[4:6] == b"\x03\x00"
    (length,) = struct.unpack_from("<I", end, 6)
    assert len(end) == 14 + length
    assert struct.unpack_from("<I", end, 10 + length)[0] == zlib.crc32(end[4 : 10 + length])


def test_created_is_filled_in_and_unknown_keys_kept(tmp_path):
    with RecordingWriter(tmp_path / "c.nape", {"source": "ble", "custom": 1}) as w:
        pass
    meta = open_recording(tmp_path / "c.nape").metadata
    assert meta["custom"] == 1 and meta["source"] == "ble"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", meta["created"])
    assert w.metadata == meta


@pytest.mark.parametrize(
    "bad",
    [
        {"source": "wifi"},
        {"sample_rate_hz": float("nan")},
        {"sample_rate_hz": -5},
        {"imu_roles": "trunk"},
        {"imu_roles": ["trunk", "trunk"]},
        {"wire_format_version": "1"},
        {"device_name": 7},
        {"extras": [1]},
        {"extras": {"x": float("inf")}},
        {"extras": {"x": object()}},
    ],
)
def test_invalid_metadata_is_refused_and_no_file_left(tmp_path, bad):
    with pytest.raises(RecordingError):
        RecordingWriter(tmp_path / "m.nape", bad)
    assert not (tmp_path / "m.nape").exists()


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "o.nape"
    path.write_bytes(b"precious")
    with pytest.raises(RecordingError) as info:
        RecordingWriter(path, META)
    assert "exists" in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == b"precious"
    with RecordingWriter(path, META, overwrite=True) as w:
        w.write_packets([b"new"], T0)
    assert list(open_recording(path).iter_packets()) == [(T0, b"new")]


def test_writer_error_paths(tmp_path):
    with pytest.raises(RecordingError):
        RecordingWriter(tmp_path / "missing-dir" / "x.nape", META)
    with pytest.raises(RecordingError):
        RecordingWriter(tmp_path, META, overwrite=True)  # a directory
    with pytest.raises(RecordingError):
        RecordingWriter(tmp_path / "i.nape", META, fsync_interval_s=-1)
    w = RecordingWriter(tmp_path / "v.nape", META)
    for call in (
        lambda: w.write_packets(["text"], T0),  # type: ignore[arg-type]
        lambda: w.write_packets([b"x" * 65536], T0),
        lambda: w.write_packets([b"x"], float("nan")),
        lambda: w.write_packets([b"x"], "now"),  # type: ignore[arg-type]
        lambda: w.write_note({"a": float("nan")}, T0),
        lambda: w.write_note({"a": {1, 2}}, T0),
        lambda: w.write_note(["not", "a", "dict"], T0),  # type: ignore[arg-type]
        lambda: w.write_note({"big": "x" * (1 << 20)}, T0),
    ):
        with pytest.raises(RecordingError):
            call()
    w.write_packets([bytearray(b"ba"), memoryview(b"mv")], T0)
    w.close()
    w.close()  # idempotent
    with pytest.raises(RecordingError):
        w.write_packets([b"x"], T0)
    rec, chunks = read_all(tmp_path / "v.nape")
    assert chunks[0].packets == [b"ba", b"mv"] and len(chunks) == 2 and rec.issues == []


def test_empty_batch_writes_nothing_and_huge_batch_is_split(tmp_path):
    path = tmp_path / "s.nape"
    many = [bytes([i % 251]) * (i % 7) for i in range(70_000)]  # > 65535 packets
    big = [b"\xab" * 60_000] * 40  # > 1 MiB
    with RecordingWriter(path, META) as w:
        w.write_packets([], T0)
        w.write_packets(many, T0 + 1)
        w.write_packets(big, T0 + 2)
    rec, chunks = read_all(path)
    kinds = [c.type for c in chunks]
    assert kinds.count(ChunkType.PACKETS) >= 4 and kinds[-1] == ChunkType.END
    assert [p for t, p in rec.iter_packets() if t == T0 + 1] == many
    assert [p for t, p in rec.iter_packets() if t == T0 + 2] == big
    assert rec.issues == []
    assert all(len(c.packets) <= 0xFFFF for c in chunks if c.packets is not None)


def test_fsync_interval(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    with RecordingWriter(tmp_path / "f0.nape", META, fsync_interval_s=0) as w:
        for i in range(5):
            w.write_packets([b"x"], T0 + i)
    every = len(calls)
    calls.clear()
    with RecordingWriter(tmp_path / "f1.nape", META, fsync_interval_s=3600) as w:
        for i in range(5):
            w.write_packets([b"x"], T0 + i)
    assert every >= 5 + 1  # every chunk plus the header
    assert 1 <= len(calls) <= 3  # header and close only


def test_exception_in_with_block_still_closes_cleanly(tmp_path):
    path = tmp_path / "e.nape"
    with pytest.raises(KeyboardInterrupt):
        with RecordingWriter(path, META) as w:
            w.write_packets([b"a"], T0)
            raise KeyboardInterrupt
    rec, chunks = read_all(path)
    assert chunks[1].note == {"event": "writer_exception", "exception": "KeyboardInterrupt"}
    assert chunks[-1].type == ChunkType.END and rec.closed_cleanly and rec.issues == []


def test_reading_while_writing(tmp_path):
    path = tmp_path / "live.nape"
    w = RecordingWriter(path, META, fsync_interval_s=3600)
    w.write_packets([b"one"], T0)
    rec = open_recording(path)
    assert [p for _, p in rec.iter_packets()] == [b"one"]
    assert rec.issues == [] and not rec.closed_cleanly
    w.write_packets([b"two"], T0 + 1)
    assert [p for _, p in rec.iter_packets()] == [b"one", b"two"]
    w.close()
    assert [c.type for c in rec.chunks()][-1] == ChunkType.END and rec.closed_cleanly


# ---------------------------------------------------------------------------------------------
# truncation
# ---------------------------------------------------------------------------------------------


def check_truncation(path: Path, data: bytes, chunks: list[Chunk], cut: int) -> None:
    header_size = chunks[0].offset
    put(path, data[:cut])
    if cut < header_size:
        with pytest.raises(RecordingError):
            open_recording(path)
        return
    rec, got = read_all(path)
    complete = [c for c, (_, end) in zip(chunks, spans(chunks, len(data))) if end <= cut]
    assert got == complete
    boundary = cut in {header_size} | {end for _, end in spans(chunks, len(data))}
    if boundary:
        assert rec.issues == []
    else:
        assert [i.kind for i in rec.issues] == ["truncated"]
        assert rec.issues[0].offset == max([header_size] + [e for _, e in spans(chunks, len(data)) if e <= cut])
    assert rec.closed_cleanly == (cut == len(data))


def test_truncation_at_every_offset(sample, workdir):
    data, chunks = sample
    path = workdir / "cut.nape"
    for cut in range(len(data) + 1):
        check_truncation(path, data, chunks, cut)


@FAST
@given(ops=ops_st, data=st.data())
def test_truncation_property(workdir, ops, data):
    raw = write_file(workdir / "tp.nape", ops)
    _, chunks = read_all(workdir / "tp.nape")
    cut = data.draw(st.integers(0, len(raw)), label="cut")
    check_truncation(workdir / "tp_cut.nape", raw, chunks, cut)


# ---------------------------------------------------------------------------------------------
# corruption and resynchronisation
# ---------------------------------------------------------------------------------------------


def survivors(chunks, file_size, lo, hi):
    """Chunks whose bytes do not intersect the damaged range [lo, hi)."""
    return [c for c, (s, e) in zip(chunks, spans(chunks, file_size)) if e <= lo or s >= hi]


def assert_damage_reported(rec):
    kinds = {i.kind for i in rec.issues}
    assert kinds & {"corrupt", "truncated"}, rec.issues
    assert kinds <= {"corrupt", "truncated", "count_mismatch"}, rec.issues


def test_every_single_byte_flip_loses_only_its_chunk(sample, workdir):
    data, chunks = sample
    path = workdir / "flip.nape"
    for pos in range(chunks[0].offset, len(data)):
        for xor in (0x01, 0x80 | (pos & 0x7F)):
            damaged = bytearray(data)
            damaged[pos] ^= xor
            rec, got = read_all(put(path, bytes(damaged)))
            assert got == survivors(chunks, len(data), pos, pos + 1), (pos, xor)
            assert_damage_reported(rec)


@FAST
@given(ops=ops_st, data=st.data())
def test_single_byte_flip_property(workdir, ops, data):
    raw = write_file(workdir / "fp.nape", ops)
    _, chunks = read_all(workdir / "fp.nape")
    pos = data.draw(st.integers(chunks[0].offset, len(raw) - 1), label="pos")
    xor = data.draw(st.integers(1, 255), label="xor")
    damaged = bytearray(raw)
    damaged[pos] ^= xor
    rec, got = read_all(put(workdir / "fp_bad.nape", bytes(damaged)))
    assert got == survivors(chunks, len(raw), pos, pos + 1)
    assert_damage_reported(rec)


@FAST
@given(ops=ops_st, data=st.data())
def test_random_span_corruption_loses_only_touched_chunks(workdir, ops, data):
    raw = write_file(workdir / "sp.nape", ops)
    _, chunks = read_all(workdir / "sp.nape")
    lo = data.draw(st.integers(chunks[0].offset, len(raw) - 1), label="lo")
    hi = data.draw(st.integers(lo + 1, min(len(raw), lo + 64)), label="hi")
    noise = data.draw(st.binary(min_size=hi - lo, max_size=hi - lo), label="noise")
    damaged = bytearray(raw)
    for k, b in enumerate(noise):
        damaged[lo + k] ^= b or 0x5A  # every byte in the span really changes
    rec, got = read_all(put(workdir / "sp_bad.nape", bytes(damaged)))
    assert got == survivors(chunks, len(raw), lo, hi)
    assert_damage_reported(rec)


@FAST
@given(ops=ops_st, garbage=st.binary(min_size=1, max_size=300), data=st.data())
def test_garbage_between_chunks_is_skipped(workdir, ops, garbage, data):
    raw = write_file(workdir / "gb.nape", ops)
    _, chunks = read_all(workdir / "gb.nape")
    k = data.draw(st.integers(0, len(chunks) - 1), label="before chunk")
    at = chunks[k].offset
    rec, got = read_all(put(workdir / "gb_bad.nape", raw[:at] + garbage + raw[at:]))
    assert content(got) == content(chunks)
    assert [c.offset for c in got] == [c.offset + (len(garbage) if c.offset >= at else 0) for c in chunks]
    assert rec.issues == [ReadIssue(at, "corrupt", rec.issues[0].detail)]
    assert f"skipped {len(garbage)} damaged bytes" in rec.issues[0].detail
    assert rec.closed_cleanly


def test_garbage_after_end_keeps_all_chunks(sample, workdir):
    data, chunks = sample
    rec, got = read_all(put(workdir / "tail.nape", data + b"\x00garbage" * 10))
    assert got == chunks
    assert [i.kind for i in rec.issues] == ["corrupt"] and rec.issues[0].offset == len(data)
    assert not rec.closed_cleanly  # END is no longer the last thing in the file


def test_implausible_length_is_never_followed(sample, workdir):
    data, chunks = sample
    at = chunks[1].offset
    damaged = bytearray(data)
    struct.pack_into("<I", damaged, at + 6, 0x7FFF_FFFF)  # a 2 GiB "chunk" in a tiny file
    rec, got = read_all(put(workdir / "len.nape", bytes(damaged)))
    assert got == [c for c in chunks if c.offset != at]
    assert rec.issues[0].kind == "corrupt" and rec.issues[0].offset == at
    assert "implausible payload length 2147483647" in rec.issues[0].detail


def test_missing_chunk_is_detected_by_end_totals(sample, workdir):
    data, chunks = sample
    (s, e) = spans(chunks, len(data))[1]
    rec, got = read_all(put(workdir / "gap.nape", data[:s] + data[e:]))
    assert got == chunks[:1] + [
        Chunk(c.type, c.offset - (e - s), c.host_time_s, c.packets, c.note) for c in chunks[2:]
    ]
    assert [i.kind for i in rec.issues] == ["count_mismatch"]


def test_valid_crc_but_malformed_or_unknown_chunks_are_skipped(sample, workdir):
    data, chunks = sample
    n = chunks[1].offset
    extras = [
        recording._frame(9, b"future chunk type"),
        recording._frame(1, struct.pack("<dH", T0, 2) + b"\x05\x00ab"),  # lengths don't add up
        recording._frame(1, b"short"),
        recording._frame(2, struct.pack("<d", T0) + b"[" * 100_000),  # recursion bomb
        recording._frame(2, struct.pack("<d", T0) + b"\xff\xfe"),  # not UTF-8
        recording._frame(3, struct.pack("<d", T0) + b"[1, 2]"),  # not an object
    ]
    blob = b"".join(extras)
    rec, got = read_all(put(workdir / "odd.nape", data[:n] + blob + data[n:]))
    assert content(got) == content(chunks)
    assert [i.kind for i in rec.issues] == ["unknown_type"] + ["bad_payload"] * 5 + ["count_mismatch"]


# ---------------------------------------------------------------------------------------------
# header problems and open errors
# ---------------------------------------------------------------------------------------------


def test_damaged_header_still_reads_every_chunk(sample, workdir):
    data, chunks = sample
    path = workdir / "hdr.nape"
    header_size = chunks[0].offset
    for pos in range(8, header_size):
        damaged = bytearray(data)
        damaged[pos] ^= 0x10 if pos >= 14 else 0xFF
        rec, got = read_all(put(path, bytes(damaged)))
        assert content(got) == content(chunks), pos
        assert rec.issues and rec.issues[0].kind in {"header_crc", "header_corrupt"}, pos
        if pos >= header_size - 4:  # only the CRC itself was hit: metadata parses unchanged
            assert rec.metadata == META
        with pytest.raises(RecordingError, match="header"):
            RecordingWriter.open_append(path)


def test_corrupt_magic_is_not_a_nape_file(sample, workdir):
    data, _ = sample
    for pos in range(8):
        damaged = bytearray(data)
        damaged[pos] ^= 0x20
        with pytest.raises(RecordingError, match="not a .nape file"):
            open_recording(put(workdir / "magic.nape", bytes(damaged)))


def test_unsupported_version_with_valid_crc(sample, workdir):
    data, chunks = sample
    n = chunks[0].offset - 18
    head = bytearray(data[: 14 + n])
    struct.pack_into("<H", head, 8, 2)
    fixed = bytes(head) + struct.pack("<I", zlib.crc32(head)) + data[chunks[0].offset :]
    with pytest.raises(RecordingError, match="unsupported .nape format version 2"):
        open_recording(put(workdir / "v2.nape", fixed))


def one_line_error(path) -> str:
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    msg = str(info.value)
    assert msg and "\n" not in msg and isinstance(info.value, NapeError)
    return msg


def test_open_errors_are_one_clear_line(tmp_path, sample):
    data, _ = sample
    assert "no such file" in one_line_error(tmp_path / "nope.nape")
    assert "directory" in one_line_error(tmp_path)
    assert "empty" in one_line_error(put(tmp_path / "empty.nape", b""))
    assert "not a .nape file" in one_line_error(put(tmp_path / "txt.nape", b"hello, world\n" * 10))
    assert "not a .nape file" in one_line_error(put(tmp_path / "xdf.nape", b"XDF:" + bytes(100)))
    assert "truncated" in one_line_error(put(tmp_path / "short.nape", MAGIC[:5]))
    assert "truncated" in one_line_error(put(tmp_path / "short2.nape", data[:30]))
    crlf_to_lf = data.replace(b"\r\n", b"\n")
    assert "text mode" in one_line_error(put(tmp_path / "t1.nape", crlf_to_lf))
    lf_to_crlf = data.replace(b"\n", b"\r\n")
    assert "text mode" in one_line_error(put(tmp_path / "t2.nape", lf_to_crlf))
    seven_bit = bytes(b & 0x7F for b in data)
    assert "7-bit" in one_line_error(put(tmp_path / "t3.nape", seven_bit))
    if os.path.exists("/dev/null"):
        assert "not a regular file" in one_line_error("/dev/null")


def exercise(path: Path) -> None:
    """Open and fully read a file; only RecordingError may escape."""
    try:
        rec = open_recording(path)
    except RecordingError:
        return
    list(rec.chunks())
    list(rec.iter_packets())
    assert isinstance(rec.closed_cleanly, bool)
    assert all(isinstance(i, ReadIssue) for i in rec.issues)


@FAST
@given(blob=st.binary(max_size=400))
def test_fuzz_random_bytes(workdir, blob):
    exercise(put(workdir / "fz1.nape", blob))
    exercise(put(workdir / "fz2.nape", MAGIC + blob))
    exercise(put(workdir / "fz3.nape", MAGIC + b"\x01\x00" + blob))


@FAST
@given(blob=st.binary(max_size=300), ctype=st.integers(0, 255))
def test_fuzz_valid_crc_frames(sample, workdir, blob, ctype):
    data, chunks = sample
    header = data[: chunks[0].offset]
    payloads = [blob, struct.pack("<dH", T0, 3) + blob, struct.pack("<d", T0) + blob]
    frames = b"".join(recording._frame(ctype, p) for p in payloads)
    exercise(put(workdir / "fz4.nape", header + frames + SYNC + blob))


@FAST
@given(data=st.data())
def test_fuzz_mutated_recordings(sample, workdir, data):
    raw, _ = sample
    damaged = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(damaged) - 1))
        damaged[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    exercise(put(workdir / "fz5.nape", bytes(damaged[:cut])))


# ---------------------------------------------------------------------------------------------
# append / crash recovery
# ---------------------------------------------------------------------------------------------


def test_append_after_crash_truncates_partial_tail(tmp_path):
    path = tmp_path / "crash.nape"
    raw = write_file(path, [("p", [b"a", b"b"]), ("n", {"event": "x"}), ("p", [b"c"])], close=False)
    _, before = read_all(path)
    partial = recording._frame(1, struct.pack("<dH", T0, 1) + b"\x03\x00xyz")[:-5]
    put(path, raw + partial)  # the crash left half a chunk
    assert not open_recording(path).closed_cleanly

    with RecordingWriter.open_append(path, fsync_interval_s=0) as w:
        assert (w.chunk_count, w.packet_count) == (4, 3)  # 3 old chunks + the "reopened" note
        w.write_packets([b"d"], T0 + 10)
    rec, after = read_all(path)
    assert after[:3] == before
    note = after[3].note
    assert note is not None
    assert note["event"] == "reopened" and note["truncated_at"] == len(raw)
    assert note["truncated_bytes"] == len(partial) and note["previous_end_chunk"] is False
    assert [c["kind"] for c in note["cut"]] == ["truncated"]
    assert after[4].packets == [b"d"]
    assert after[5].type == ChunkType.END and after[5].note == {"chunks": 5, "packets": 4}
    assert rec.issues == [] and rec.closed_cleanly


def test_append_after_clean_close_keeps_old_end(tmp_path):
    path = tmp_path / "again.nape"
    write_file(path, [("p", [b"a"])])
    with RecordingWriter.open_append(path) as w:
        w.write_note({"event": "session 2"}, T0 + 100)
    rec, chunks = read_all(path)
    assert [c.type for c in chunks] == [
        ChunkType.PACKETS, ChunkType.END, ChunkType.NOTE, ChunkType.NOTE, ChunkType.END
    ]
    reopened = chunks[2].note
    assert reopened is not None
    assert reopened["previous_end_chunk"] is True and reopened["truncated_bytes"] == 0
    assert rec.issues == [] and rec.closed_cleanly


def test_append_refuses_bad_files_and_concurrent_writers(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        RecordingWriter.open_append(tmp_path / "none.nape")
    with pytest.raises(RecordingError, match="not a .nape file"):
        RecordingWriter.open_append(put(tmp_path / "junk.nape", b"junk" * 10))
    path = tmp_path / "busy.nape"
    w = RecordingWriter(path, META)
    if recording._fcntl is not None:
        with pytest.raises(RecordingError, match="another writer"):
            RecordingWriter.open_append(path)
    w.close()
    RecordingWriter.open_append(path).close()


# ---------------------------------------------------------------------------------------------
# bounded memory and speed
# ---------------------------------------------------------------------------------------------


class SizedReadsOnly:
    """Wraps a binary file and fails if anything reads without a bounded size."""

    limit = 4 << 20

    def __init__(self, f):
        self._f = f
        self.sizes: list[int] = []

    def read(self, size=None):
        assert size is not None and 0 <= size <= self.limit, f"unbounded read({size})"
        self.sizes.append(size)
        return self._f.read(size)

    def readall(self):  # pragma: no cover - must never be called
        raise AssertionError("readall() called")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def big_recording(path: Path, megabytes: float) -> int:
    pkt = bytes(range(200)) + b"\x00" * 44  # 244 bytes, a full BLE notification
    with RecordingWriter(path, META, fsync_interval_s=3600, overwrite=True) as w:
        n = 0
        while n * 244 < megabytes * 1e6:
            w.write_packets([pkt] * 10, T0 + n / 1000)
            n += 10
    return n


def test_reader_only_reads_bounded_blocks(tmp_path, monkeypatch):
    path = tmp_path / "big.nape"
    n = big_recording(path, 6)
    opened: list[SizedReadsOnly] = []
    real_open = open

    def guarded_open(*args, **kwargs):
        f = SizedReadsOnly(real_open(*args, **kwargs))
        opened.append(f)
        return f

    monkeypatch.setattr(recording, "open", guarded_open, raising=False)
    rec = open_recording(path)
    assert rec.closed_cleanly
    assert sum(1 for _ in rec.iter_packets()) == n
    assert rec.issues == []
    assert opened and all(f.sizes for f in opened)
    assert sum(len(f.sizes) for f in opened) > 5  # streamed in several blocks, not one read


def test_reader_memory_is_bounded(tmp_path):
    path = tmp_path / "mem.nape"
    big_recording(path, 12)
    rec = open_recording(path)
    tracemalloc.start()
    try:
        count = sum(len(c.packets or ()) for c in rec.chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 40_000
    assert peak < 6 << 20, f"peak {peak / 1e6:.1f} MB while reading a 12 MB file"


# ---------------------------------------------------------------------------------------------
# the worked example in protocol/RECORDING.md is exact
# ---------------------------------------------------------------------------------------------


def doc_example_bytes() -> bytes:
    text = (ROOT / "protocol" / "RECORDING.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- example-hex -->\s*```text\n(.*?)```", text, re.S)
    assert block, "hex example block missing from protocol/RECORDING.md"
    out = bytearray()
    for line in block.group(1).splitlines():
        line = line.split("|")[0]  # drop the comment column
        if ":" in line:
            out += bytes.fromhex(line.split(":", 1)[1])
    return bytes(out)


def test_documented_example_matches_writer(tmp_path, monkeypatch):
    doc = doc_example_bytes()
    monkeypatch.setattr(recording.time, "time", lambda: T0 + 1.0)
    path = tmp_path / "example.nape"
    with RecordingWriter(path, {"created": "2025-01-01T00:00:00Z", "source": "simulated"}) as w:
        w.write_packets([b"\x01\x02\x03", b"\xaa"], T0 + 0.25)
        w.write_note({"event": "gap"}, T0 + 0.5)
    assert path.read_bytes() == doc
    rec, chunks = read_all(path)
    assert [c.type for c in chunks] == [ChunkType.PACKETS, ChunkType.NOTE, ChunkType.END]
    assert rec.issues == [] and rec.closed_cleanly


def test_file_shrinking_after_open_is_handled(sample, workdir):
    data, chunks = sample
    path = put(workdir / "shrink.nape", data)
    rec = open_recording(path)
    put(path, data[: chunks[0].offset - 3])  # replaced by a stub shorter than its header
    assert rec.closed_cleanly is False
    assert list(rec.chunks()) == []
    path.unlink()
    with pytest.raises(RecordingError, match="no such file|read error"):
        list(rec.chunks())
