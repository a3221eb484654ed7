"""The ``.nape`` recording file: an append-only, crash-safe container of raw BLE packets and notes.

The full byte-level specification is ``protocol/RECORDING.md``; this is a summary.
All integers are unsigned little-endian, floats are IEEE-754 binary64 little-endian, and every
CRC is CRC-32/ISO-HDLC (``zlib.crc32``, the CRC of PNG and Ethernet).

File header (written once, when the file is created)::

    offset  size  field
    0       8     magic            89 4E 41 50 0D 0A 1A 0A   ("\\x89NAP\\r\\n\\x1a\\n")
    8       2     u16 version      1
    10      4     u32 meta_len     bytes of JSON that follow (<= 1 MiB)
    14      N     metadata         UTF-8 JSON object (writers emit ASCII only)
    14+N    4     u32 header_crc   CRC-32 of bytes 0 .. 14+N-1

Chunks (appended after the header until the file is closed)::

    offset  size  field
    0       4     sync             C1 4E F5 9B
    4       1     u8 type          1 = PACKETS, 2 = NOTE, 3 = END
    5       1     u8 flags         0 (reserved; readers ignore)
    6       4     u32 length       payload bytes (<= 1 MiB)
    10      L     payload
    10+L    4     u32 crc          CRC-32 of bytes 4 .. 10+L-1 (type, flags, length, payload)

Every payload starts with an f64 host time (seconds since the Unix epoch, when the host received
the data or wrote the note):

* PACKETS: f64 time, u16 count, then count x (u16 packet length, packet bytes).
* NOTE: f64 time, then a UTF-8 JSON object (gap, calibration, disconnect, ...).
* END: f64 time, then a JSON object of totals ``{"chunks": n, "packets": m}`` counting every intact
  chunk and every packet before it; a writer that closes cleanly writes END last.

Reading never trusts a damaged length: when a chunk has no sync marker, an implausible length,
runs past the end of the file, or fails its CRC, the reader records a :class:`ReadIssue` and scans
forward from the next byte for the next sync marker. A file cut at any byte therefore yields every
chunk completed before the cut, and a damaged span costs only the chunks it touches. The file is
read in bounded blocks (never whole), so an 8-hour recording streams in constant memory.

Example::

    from nape.recording import RecordingWriter, open_recording

    with RecordingWriter("s.nape", {"source": "ble", "device_name": "Nape-01"}) as w:
        w.write_packets([b"...", b"..."], host_time_s=time.time())
        w.write_note({"event": "calibrated"}, host_time_s=time.time())

    rec = open_recording("s.nape")
    for t, packet in rec.iter_packets():
        ...
    print(rec.issues, rec.closed_cleanly)
"""

from __future__ import annotations

import enum
import json
import math
import os
import stat
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from nape.errors import RecordingError

try:  # advisory single-writer lock; POSIX only
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]

__all__ = [
    "MAGIC",
    "SYNC",
    "FORMAT_VERSION",
    "MAX_PAYLOAD_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_PACKET_BYTES",
    "SOURCES",
    "ChunkType",
    "Chunk",
    "ReadIssue",
    "Recording",
    "RecordingWriter",
    "open_recording",
]

#: File signature. \x89 catches 7-bit transfers, \r\n catches CRLF->LF, \x1a stops DOS ``type``,
#: the final \n catches LF->CRLF (the same reasoning as PNG's signature).
MAGIC = b"\x89NAP\r\n\x1a\n"
#: Chunk sync marker: 0xC1 and 0xF5 never occur in UTF-8 (so never in JSON text), no 0x00/0xFF,
#: no CR/LF, and four distinct bytes so the marker cannot overlap itself.
SYNC = b"\xc1\x4e\xf5\x9b"
#: The only format version this module reads and writes.
FORMAT_VERSION = 1
#: Upper bound of a chunk payload; a larger length field is corrupt by definition.
MAX_PAYLOAD_BYTES = 1 << 20
#: Upper bound of the header's metadata JSON.
MAX_METADATA_BYTES = 1 << 20
#: Largest single packet (its length is a u16).
MAX_PACKET_BYTES = 0xFFFF
#: Allowed values of the ``source`` metadata key.
SOURCES = ("simulated", "ble", "import")

_FIXED_HEADER = struct.Struct("<8sHI")  # magic, version, meta_len
_CHUNK_HEAD = struct.Struct("<BBI")  # type, flags, length (follows SYNC)
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_PACKETS_HEAD = struct.Struct("<dH")
_FIXED_HEADER_SIZE = _FIXED_HEADER.size  # 14
_CHUNK_OVERHEAD = 4 + _CHUNK_HEAD.size + 4  # sync + head + crc = 14
_BLOCK = 1 << 20  # read granularity
_TAIL_PROBE = 1 << 16  # how far back closed_cleanly looks for the final END chunk

_crc32 = zlib.crc32


class ChunkType(enum.IntEnum):
    """Chunk type byte (offset 4 of a chunk)."""

    PACKETS = 1
    NOTE = 2
    END = 3


@dataclass(frozen=True, slots=True)
class Chunk:
    """One intact chunk as read from a file.

    Attributes:
        type: The chunk type.
        offset: Byte offset of the chunk's sync marker in the file.
        host_time_s: Host time stored in the payload, seconds since the Unix epoch.
        packets: The raw packets of a PACKETS chunk (``None`` for other types).
        note: The JSON object of a NOTE chunk, or the totals of an END chunk (``None`` for PACKETS).
    """

    type: ChunkType
    offset: int
    host_time_s: float | None
    packets: list[bytes] | None
    note: dict[str, Any] | None


class ReadIssue(NamedTuple):
    """Something the reader had to skip or could not verify.

    ``kind`` is one of:

    * ``"header_crc"`` -- the header CRC does not match; metadata is a best-effort, unverified parse.
    * ``"header_corrupt"`` -- the header's metadata length is implausible or its JSON unreadable.
    * ``"corrupt"`` -- a damaged span was skipped (detail: size and the first failure's reason).
    * ``"truncated"`` -- the file ends inside a chunk (an incomplete tail, e.g. after a crash).
    * ``"bad_payload"`` -- a chunk passed its CRC but its payload is malformed; skipped.
    * ``"unknown_type"`` -- an intact chunk of a type this reader does not know; skipped.
    * ``"count_mismatch"`` -- an END chunk's totals differ from what was read before it.
    """

    offset: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"offset {self.offset}: {self.kind}: {self.detail}"


# --------------------------------------------------------------------------------------------
# Encoding helpers (shared by the writer and the documentation example)
# --------------------------------------------------------------------------------------------


def _json_bytes(obj: dict[str, Any], what: str) -> bytes:
    """Serialise a JSON object the way writers must: compact, ASCII-only, no NaN/Infinity."""
    if not isinstance(obj, dict):
        raise RecordingError(f"{what} must be a dict, got {type(obj).__name__}")
    try:
        text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise RecordingError(f"{what} is not JSON-serialisable: {exc}") from None
    return text.encode("ascii")


def _frame(chunk_type: int, payload: bytes) -> bytes:
    """Wrap a payload into a complete chunk (sync, type, flags, length, payload, CRC)."""
    head = _CHUNK_HEAD.pack(chunk_type, 0, len(payload))
    crc = _crc32(payload, _crc32(head))
    return b"".join((SYNC, head, payload, _U32.pack(crc)))


def _encode_header(metadata_json: bytes) -> bytes:
    head = _FIXED_HEADER.pack(MAGIC, FORMAT_VERSION, len(metadata_json)) + metadata_json
    return head + _U32.pack(_crc32(head))


def _check_time(host_time_s: float) -> float:
    if isinstance(host_time_s, bool) or not isinstance(host_time_s, (int, float)):
        raise RecordingError(f"host_time_s must be a number of seconds, got {host_time_s!r}")
    t = float(host_time_s)
    if not math.isfinite(t):
        raise RecordingError(f"host_time_s must be finite, got {host_time_s!r}")
    return t


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _normalise_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Copy ``metadata``, fill ``created`` and type-check the documented keys.

    Raises:
        RecordingError: a documented key has the wrong type or value.
    """
    if not isinstance(metadata, dict):
        raise RecordingError(f"metadata must be a dict, got {type(metadata).__name__}")
    meta = dict(metadata)
    meta.setdefault("created", _utc_now_iso())

    def bad(key: str, want: str) -> RecordingError:
        return RecordingError(f"metadata[{key!r}] must be {want}, got {meta[key]!r}")

    for key in ("created", "device_name", "firmware_version"):
        if key in meta and not isinstance(meta[key], str):
            raise bad(key, "a string")
    if "wire_format_version" in meta:
        v = meta["wire_format_version"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad("wire_format_version", "a non-negative int")
    if "imu_roles" in meta:
        roles = meta["imu_roles"]
        if (
            not isinstance(roles, (list, tuple))
            or not all(isinstance(r, str) and r for r in roles)
            or len(set(roles)) != len(roles)
        ):
            raise bad("imu_roles", 'a list of distinct role names such as ["trunk", "head"]')
        meta["imu_roles"] = list(roles)
    if "sample_rate_hz" in meta:
        r = meta["sample_rate_hz"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (math.isfinite(r) and r > 0):
            raise bad("sample_rate_hz", "a positive number of Hz")
    if "source" in meta and meta["source"] not in SOURCES:
        raise bad("source", f"one of {', '.join(SOURCES)}")
    if "extras" in meta and not isinstance(meta["extras"], dict):
        raise bad("extras", "a dict")
    return meta


def _parse_json_object(raw: bytes | memoryview) -> dict[str, Any] | None:
    """Decode a UTF-8 JSON object; ``None`` if it is not valid UTF-8 JSON or not an object."""
    try:
        obj = json.loads(bytes(raw).decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return obj if isinstance(obj, dict) else None


def _parse_payload(
    ctype: int, buf: bytes, start: int, end: int, offset: int
) -> tuple[Chunk | None, int, str]:
    """Decode the payload ``buf[start:end]`` of an intact chunk of type ``ctype`` at ``offset``.

    Returns ``(chunk, n_packets, "")`` on success, ``(None, 0, reason)`` otherwise.
    """
    length = end - start
    if ctype == 1:
        if length < _PACKETS_HEAD.size:
            return None, 0, f"PACKETS payload of {length} bytes is shorter than its 10-byte head"
        t, count = _PACKETS_HEAD.unpack_from(buf, start)
        p = start + _PACKETS_HEAD.size
        if count * 2 > end - p:
            return None, 0, f"PACKETS count {count} does not fit in {length} bytes"
        if count:
            # Fast path: every packet has the first packet's length (the usual case). Verified
            # exactly: the size must add up and every length field must equal the first.
            (n,) = _U16.unpack_from(buf, p)
            stride = n + 2
            if end - p == count * stride:
                lo, hi = bytes((n & 0xFF,)), bytes((n >> 8,))
                if buf[p:end:stride] == lo * count and buf[p + 1 : end : stride] == hi * count:
                    packets = [buf[i : i + n] for i in range(p + 2, end, stride)]
                    return Chunk(ChunkType.PACKETS, offset, t, packets, None), count, ""
        u16 = _U16.unpack_from
        packets = []
        append = packets.append
        try:
            for _ in range(count):
                q = p + 2 + u16(buf, p)[0]
                append(buf[p + 2 : q])
                p = q
        except struct.error:
            p = -1
        if p != end:  # p is monotonic, so p == end proves every packet lay inside the payload
            return None, 0, "PACKETS packet lengths do not add up to the payload length"
        return Chunk(ChunkType.PACKETS, offset, t, packets, None), count, ""
    if ctype == 2 or ctype == 3:
        if length < 8:
            return None, 0, f"{ChunkType(ctype).name} payload of {length} bytes has no host time"
        (t,) = _F64.unpack_from(buf, start)
        obj = _parse_json_object(memoryview(buf)[start + 8 : end])
        if obj is None:
            return None, 0, f"{ChunkType(ctype).name} payload is not a UTF-8 JSON object"
        return Chunk(ChunkType(ctype), offset, t, None, obj), 0, ""
    return None, 0, f"unknown chunk type {ctype}"


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


class _Frame(NamedTuple):
    """An intact chunk frame found by :func:`_scan` (internal)."""

    offset: int
    size: int  # whole chunk, sync to CRC
    chunk: Chunk | None  # None: unknown type or malformed payload (issue already recorded)
    n_packets: int


def _read_error(path: str, exc: OSError) -> RecordingError:
    return RecordingError(f"{path}: read error: {exc.strerror or exc}")


def _scan(f: Any, start: int, issues: list[ReadIssue], resyncing: bool = False) -> Iterator[_Frame]:
    """Yield every intact chunk frame of the open binary file ``f`` from byte ``start`` on.

    Reads in blocks of about 1 MiB and keeps at most one block plus one chunk (<= 1 MiB), so
    memory stays at a few MiB whatever the file size.
    Damaged spans are skipped by scanning for the next sync marker and reported into ``issues``.
    With ``resyncing=True`` the scan starts by searching for a sync marker without reporting the
    bytes it skips (used after a damaged header, which has been reported already).

    Raises:
        OSError: the file cannot be read (callers wrap it).
    """
    f.seek(start)
    read = f.read
    buf = b""
    base = start  # file offset of buf[0]
    pos = 0
    eof = False
    bad_at = -1  # file offset where the current damaged span began (-1: none)
    bad_reason = ""
    bad_truncated = False
    sync = SYNC
    head_unpack = _CHUNK_HEAD.unpack_from
    u32 = _U32.unpack_from
    crc32 = _crc32
    max_len = MAX_PAYLOAD_BYTES

    def refill(need: int) -> None:
        """Make ``need`` bytes available at ``pos`` unless the file ends first."""
        nonlocal buf, base, pos, eof
        parts = [buf[pos:]]
        have = len(parts[0])
        while have < need and not eof:
            block = read(max(_BLOCK, need - have))
            if not block:
                eof = True
                break
            parts.append(block)
            have += len(block)
        base += pos
        pos = 0
        buf = b"".join(parts)

    while True:
        if resyncing:
            # Search forward for the next sync marker, keeping 3 bytes across block edges.
            while True:
                i = buf.find(sync, pos)
                if i >= 0:
                    pos = i
                    break
                if eof:
                    pos = len(buf)
                    break
                pos = max(pos, len(buf) - 3)
                refill(_BLOCK)
            resyncing = False

        avail = len(buf) - pos
        if avail < 10 and not eof:
            refill(10)
            avail = len(buf) - pos
        if avail == 0:
            break

        reason = ""
        truncated = False
        if not buf.startswith(sync, pos):
            if eof and avail < 4 and sync.startswith(buf[pos:]):
                reason, truncated = "file ends inside a sync marker", True
            else:
                reason = "missing sync marker"
        elif avail < 10:
            reason, truncated = "file ends inside a chunk head", True
        else:
            ctype, _flags, length = head_unpack(buf, pos + 4)
            if length > max_len:
                reason = f"implausible payload length {length}"
            else:
                total = length + 14
                if avail < total and not eof:
                    refill(total)
                    avail = len(buf) - pos
                if avail < total:
                    reason, truncated = (
                        f"chunk of {total} bytes runs past the end of the file",
                        True,
                    )
                else:
                    crc_at = pos + 10 + length
                    if crc32(memoryview(buf)[pos + 4 : crc_at]) != u32(buf, crc_at)[0]:
                        reason = "CRC mismatch"
                    else:
                        offset = base + pos
                        if bad_at >= 0:
                            issues.append(
                                ReadIssue(
                                    bad_at,
                                    "corrupt",
                                    f"skipped {offset - bad_at} damaged bytes ({bad_reason})",
                                )
                            )
                            bad_at = -1
                        chunk, n, why = _parse_payload(ctype, buf, pos + 10, crc_at, offset)
                        if chunk is None:
                            kind = "bad_payload" if ctype in (1, 2, 3) else "unknown_type"
                            issues.append(ReadIssue(offset, kind, why))
                        pos += total
                        yield _Frame(offset, total, chunk, n)
                        continue

        # Damaged or incomplete chunk at pos: remember the span, never trust its length.
        if bad_at < 0:
            bad_at, bad_reason, bad_truncated = base + pos, reason, truncated
        pos += 1
        resyncing = True

    if bad_at >= 0:
        end = base + pos
        if bad_truncated:
            issues.append(
                ReadIssue(bad_at, "truncated", f"last {end - bad_at} bytes are an incomplete chunk")
            )
        else:
            issues.append(
                ReadIssue(
                    bad_at,
                    "corrupt",
                    f"skipped {end - bad_at} damaged bytes up to the end of the file ({bad_reason})",
                )
            )


class Recording:
    """An opened ``.nape`` recording (see :func:`open_recording`).

    The file is not held open: each call to :meth:`chunks` opens it again and streams it, so a
    recording that is still being written can be read (its growing tail shows as ``truncated``).

    Attributes:
        path: The file's path.
        metadata: The header's metadata object (unverified if a ``header_crc`` issue is present).
        version: The header's format version.
        header_size: Bytes occupied by the header; the first chunk starts here.
        issues: Problems found so far: header issues at open, chunk issues as :meth:`chunks` runs
            (reset at the start of each pass).
    """

    def __init__(
        self,
        path: str,
        metadata: dict[str, Any],
        version: int,
        header_size: int,
        header_issues: list[ReadIssue],
        resync_start: bool,
    ) -> None:
        self.path = path
        self.metadata = metadata
        self.version = version
        self.header_size = header_size
        self._header_issues = list(header_issues)
        self._resync_start = resync_start
        self.issues: list[ReadIssue] = list(header_issues)
        self._closed_cleanly: bool | None = None

    def __repr__(self) -> str:
        return f"Recording({self.path!r}, version={self.version}, issues={len(self.issues)})"

    def _frames(self) -> Iterator[_Frame]:
        """Yield intact frames, resetting and filling :attr:`issues`, checking END totals.

        Raises:
            RecordingError: the file cannot be read any more.
        """
        issues = self.issues = list(self._header_issues)
        n_chunks = 0
        n_packets = 0
        last_type: int | None = None
        issues_at_last = -1
        try:
            with open(self.path, "rb", buffering=0) as f:
                for frame in _scan(f, self.header_size, issues, self._resync_start):
                    chunk = frame.chunk
                    if chunk is not None and chunk.type is ChunkType.END and chunk.note is not None:
                        want = (chunk.note.get("chunks"), chunk.note.get("packets"))
                        if want != (n_chunks, n_packets):
                            issues.append(
                                ReadIssue(
                                    frame.offset,
                                    "count_mismatch",
                                    f"END records {want[0]} chunks / {want[1]} packets, "
                                    f"read {n_chunks} / {n_packets}",
                                )
                            )
                    n_chunks += 1
                    n_packets += frame.n_packets
                    last_type = chunk.type if chunk is not None else None
                    issues_at_last = len(issues)
                    yield frame
        except OSError as exc:
            raise _read_error(self.path, exc) from None
        # Clean: the last chunk is an END and nothing (no damaged tail) follows it.
        self._closed_cleanly = last_type is ChunkType.END and len(issues) == issues_at_last

    def chunks(self) -> Iterator[Chunk]:
        """Iterate over every intact chunk in file order, streaming the file in blocks.

        Damaged spans, a truncated tail and malformed chunks are skipped and reported in
        :attr:`issues` as the iteration reaches them.

        Raises:
            RecordingError: the file cannot be read (deleted, I/O error).
        """
        for frame in self._frames():
            if frame.chunk is not None:
                yield frame.chunk

    def iter_packets(self) -> Iterator[tuple[float, bytes]]:
        """Yield ``(host_time_s, packet)`` for every packet of every PACKETS chunk, in order.

        ``host_time_s`` is the receive time of the packet's chunk (seconds since the Unix epoch).

        Raises:
            RecordingError: the file cannot be read.
        """
        for chunk in self.chunks():
            if chunk.packets is not None:
                t = chunk.host_time_s
                for packet in chunk.packets:
                    yield t, packet  # type: ignore[misc]

    def iter_notes(self) -> Iterator[tuple[float, dict[str, Any]]]:
        """Yield ``(host_time_s, note)`` for every NOTE chunk, in order.

        Raises:
            RecordingError: the file cannot be read.
        """
        for chunk in self.chunks():
            if chunk.type is ChunkType.NOTE:
                yield chunk.host_time_s, chunk.note  # type: ignore[misc]

    @property
    def closed_cleanly(self) -> bool:
        """True if the last chunk of the file is an intact END chunk.

        After a complete :meth:`chunks` pass this is that pass's verdict; before one, it is found
        by probing only the last 64 KiB of the file, so it is cheap on long recordings.

        Raises:
            RecordingError: the file cannot be read.
        """
        if self._closed_cleanly is None:
            try:
                return self._probe_tail_for_end()
            except OSError as exc:
                raise _read_error(self.path, exc) from None
        return self._closed_cleanly

    def _probe_tail_for_end(self) -> bool:
        with open(self.path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            start = max(self.header_size, size - _TAIL_PROBE)
            if size - start < _CHUNK_OVERHEAD:  # no room for any chunk (or the file shrank)
                return False
            f.seek(start)
            tail = f.read(size - start)
        # Try each sync marker from the right: is it an intact END chunk ending exactly at EOF?
        i = tail.rfind(SYNC)
        while i >= 0:
            if len(tail) - i >= _CHUNK_OVERHEAD:
                ctype, _flags, length = _CHUNK_HEAD.unpack_from(tail, i + 4)
                crc_at = i + 10 + length
                if (
                    ctype == ChunkType.END
                    and crc_at + 4 == len(tail)
                    and _crc32(memoryview(tail)[i + 4 : crc_at]) == _U32.unpack_from(tail, crc_at)[0]
                ):
                    return _parse_payload(ctype, tail, i + 10, crc_at, start + i)[0] is not None
            i = tail.rfind(SYNC, 0, i)
        return False


def _text_mode_hint(head: bytes) -> str:
    if head.startswith(b"\x89NAP\n\x1a"):
        return " (its line endings were converted CRLF -> LF: transferred in text mode)"
    if head.startswith(b"\x89NAP\r\r\n") or head.startswith(b"\x89NAP\r\n\x1a\r\n"):
        return " (its line endings were converted LF -> CRLF: transferred in text mode)"
    if head[:1] == b"\x09" and head[1:8] == MAGIC[1:8]:
        return " (its high bits were stripped: transferred over a 7-bit channel)"
    return " (wrong magic bytes)"


def open_recording(path: str | os.PathLike[str]) -> Recording:
    """Open a ``.nape`` recording and read its header (chunks are read lazily).

    A damaged header whose magic is intact does not fail: a CRC mismatch or an unreadable
    metadata length is recorded in :attr:`Recording.issues` and the chunks are still readable.

    Args:
        path: The recording file.

    Returns:
        The opened :class:`Recording`.

    Raises:
        RecordingError: one line naming the file and the reason: no such file, a directory or
            other non-regular file, unreadable, empty, not a .nape file (wrong magic), a truncated
            header, or an unsupported format version.
    """
    p = os.fspath(path)
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    try:  # before open(): opening a FIFO (named pipe) for reading blocks until a writer comes
        st0 = os.stat(p)
    except OSError:
        st0 = None  # open() below names the reason
    if st0 is not None and not (stat.S_ISREG(st0.st_mode) or stat.S_ISDIR(st0.st_mode)):
        raise RecordingError(f"{p}: not a regular file, not a .nape file")
    try:
        f = open(p, "rb", buffering=0)
    except FileNotFoundError:
        raise RecordingError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{p}: is a directory, not a .nape file") from None
    except PermissionError:
        if os.path.isdir(p):
            raise RecordingError(f"{p}: is a directory, not a .nape file") from None
        raise RecordingError(f"{p}: permission denied") from None
    except OSError as exc:
        raise RecordingError(f"{p}: cannot open: {exc.strerror or exc}") from None
    try:
        with f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise RecordingError(f"{p}: is a directory, not a .nape file")
            if not stat.S_ISREG(st.st_mode):
                raise RecordingError(f"{p}: not a regular file, not a .nape file")
            return _read_header(p, f, st.st_size)
    except OSError as exc:
        raise _read_error(p, exc) from None


def _read_header(p: str, f: Any, size: int) -> Recording:
    if size == 0:
        raise RecordingError(f"{p}: empty file (0 bytes), not a .nape recording")
    head = f.read(_FIXED_HEADER_SIZE)
    if head[:8] != MAGIC:
        if len(head) < 8 and MAGIC.startswith(head):
            raise RecordingError(f"{p}: truncated .nape header ({len(head)} bytes)")
        raise RecordingError(f"{p}: not a .nape file{_text_mode_hint(head)}")
    if len(head) < _FIXED_HEADER_SIZE:
        raise RecordingError(f"{p}: truncated .nape header ({len(head)} bytes)")
    _magic, version, meta_len = _FIXED_HEADER.unpack(head)
    header_end = _FIXED_HEADER_SIZE + meta_len + 4

    def salvage(issue: ReadIssue, meta: dict[str, Any]) -> Recording:
        # The header cannot be trusted: look for chunks right after its fixed fields.
        return Recording(p, meta, version, _FIXED_HEADER_SIZE, [issue], resync_start=True)

    if meta_len > MAX_METADATA_BYTES:
        return salvage(
            ReadIssue(10, "header_corrupt", f"implausible metadata length {meta_len}; metadata lost"),
            {},
        )
    if size < header_end:
        rest = f.read(size - _FIXED_HEADER_SIZE)  # < 1 MiB + 4 bytes by the check above
        if SYNC not in rest:
            raise RecordingError(
                f"{p}: truncated .nape header ({size} of {header_end} bytes)"
            )
        return salvage(
            ReadIssue(10, "header_corrupt", f"metadata length {meta_len} runs past the end of the file; metadata lost"),
            {},
        )
    body = f.read(meta_len + 4)
    if len(body) < meta_len + 4:  # the file shrank since fstat
        raise RecordingError(f"{p}: truncated .nape header")
    (stored_crc,) = _U32.unpack_from(body, meta_len)
    meta = _parse_json_object(memoryview(body)[:meta_len])
    if _crc32(memoryview(body)[:meta_len], _crc32(head)) != stored_crc:
        detail = "header CRC mismatch; metadata is unverified" if meta is not None else (
            "header CRC mismatch; metadata unreadable"
        )
        if version != FORMAT_VERSION:
            detail += f"; version field reads {version}, assuming {FORMAT_VERSION}"
            version = FORMAT_VERSION
        return salvage(ReadIssue(0, "header_crc", detail), meta or {})
    if version != FORMAT_VERSION:
        raise RecordingError(
            f"{p}: unsupported .nape format version {version} (this reader reads version {FORMAT_VERSION})"
        )
    issues = []
    if meta is None:
        issues.append(ReadIssue(_FIXED_HEADER_SIZE, "header_corrupt", "metadata is not a JSON object"))
    return Recording(p, meta or {}, version, header_end, issues, resync_start=False)


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    """Persist a new directory entry (POSIX); best effort."""
    if os.name != "posix":  # pragma: no cover
        return
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RecordingWriter:
    """Append chunks to a new ``.nape`` file; use as a context manager.

    Each ``write_*`` call writes complete chunks with one ``write`` to the OS (so a crash loses at
    most the chunk being written) and ``fsync``\\ s when ``fsync_interval_s`` has elapsed since
    the last fsync (0 = after every chunk). :meth:`close` writes the END chunk and fsyncs.
    If the ``with`` body raises, a NOTE ``{"event": "writer_exception", ...}`` and END are still
    written (the file is consistent), and the exception propagates.

    On POSIX an advisory ``flock`` prevents two writers on one file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: dict[str, Any],
        fsync_interval_s: float = 1.0,
        *,
        overwrite: bool = False,
    ) -> None:
        """Create the file and write (and fsync) its header.

        Args:
            path: File to create; conventionally ends in ``.nape``.
            metadata: Header metadata (see protocol/RECORDING.md); ``created`` is filled with the
                current UTC time if missing. Unknown keys are kept.
            fsync_interval_s: Minimum seconds between fsyncs; 0 fsyncs every chunk.
            overwrite: Replace an existing file instead of refusing.

        Raises:
            RecordingError: the file exists (and ``overwrite`` is false), cannot be created, is
                locked by another writer, the metadata is invalid, or the interval is negative.
        """
        self._path = os.fsdecode(os.fspath(path))
        self._interval = self._check_interval(fsync_interval_s)
        meta = _normalise_metadata(metadata)
        meta_json = _json_bytes(meta, "metadata")
        if len(meta_json) > MAX_METADATA_BYTES:
            raise RecordingError(f"metadata JSON is {len(meta_json)} bytes; the limit is {MAX_METADATA_BYTES}")
        self._metadata = meta
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
        if not overwrite:
            flags |= os.O_EXCL
        else:  # never truncate and write into a device, pipe or socket (safe_write.check_target)
            from .safe_write import check_target

            try:
                check_target(self._path)
            except OSError as exc:
                raise RecordingError(f"{self._path}: {exc.strerror}") from None
        self._file = self._open_locked(self._path, flags)
        self._chunks = 0
        self._packets = 0
        self._closed = False
        self._broken = False
        self._first_error: str | None = None
        self._good_end = 0
        try:
            if overwrite:
                self._file.truncate(0)
            self._write_raw(_encode_header(meta_json))
            os.fsync(self._file.fileno())
        except (OSError, RecordingError) as exc:
            self._abandon()
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(f"{self._path}: cannot write header: {exc.strerror or exc}") from None
        self._last_fsync = time.monotonic()
        _fsync_dir(self._path)

    # -- construction helpers ------------------------------------------------------------

    @staticmethod
    def _check_interval(fsync_interval_s: float) -> float:
        if (
            isinstance(fsync_interval_s, bool)
            or not isinstance(fsync_interval_s, (int, float))
            or not fsync_interval_s >= 0  # also rejects NaN
        ):
            raise RecordingError(f"fsync_interval_s must be >= 0 seconds, got {fsync_interval_s!r}")
        return float(fsync_interval_s)

    @staticmethod
    def _open_locked(path: str, flags: int) -> Any:
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise RecordingError(f"{path}: already exists; refusing to overwrite (pass overwrite=True)") from None
        except IsADirectoryError:
            raise RecordingError(f"{path}: is a directory") from None
        except FileNotFoundError:
            raise RecordingError(f"{path}: its directory does not exist") from None
        except OSError as exc:
            raise RecordingError(f"{path}: cannot open for writing: {exc.strerror or exc}") from None
        if _fcntl is not None:
            try:
                _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RecordingError(f"{path}: is being written by another writer") from None
            except OSError:  # pragma: no cover - filesystem without flock: carry on unlocked
                pass
        return open(fd, "r+b", buffering=0)

    @classmethod
    def open_append(cls, path: str | os.PathLike[str], fsync_interval_s: float = 1.0) -> RecordingWriter:
        """Reopen an existing recording (e.g. after a crash) to append more chunks.

        The file is scanned; anything after the last intact chunk (a partial chunk from a crash,
        trailing garbage) is truncated away, and a NOTE is appended first::

            {"event": "reopened", "truncated_at": <offset>, "truncated_bytes": <n>,
             "previous_end_chunk": <bool: the file ended with END>, "cut": [<issue>, ...]}

        Chunk and packet totals continue from the existing file, so the final END counts the
        whole file. Damaged spans before the last intact chunk are left in place.

        Args:
            path: An existing ``.nape`` file.
            fsync_interval_s: As for the constructor.

        Raises:
            RecordingError: the file cannot be opened as a recording, its header is damaged,
                another writer holds it, or it cannot be written.
        """
        interval = cls._check_interval(fsync_interval_s)
        rec = open_recording(path)
        if rec._header_issues:
            raise RecordingError(
                f"{rec.path}: header is damaged ({rec._header_issues[0].detail}); refusing to append"
            )
        self = cls.__new__(cls)
        self._path = rec.path
        self._interval = interval
        self._metadata = rec.metadata
        self._closed = False
        self._broken = False
        self._first_error = None
        self._file = cls._open_locked(self._path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            issues: list[ReadIssue] = []
            last_end = rec.header_size
            n_chunks = n_packets = 0
            last_chunk: Chunk | None = None
            for frame in _scan(self._file, rec.header_size, issues):
                n_chunks += 1
                n_packets += frame.n_packets
                last_end = frame.offset + frame.size
                last_chunk = frame.chunk
            size = os.fstat(self._file.fileno()).st_size
            cut = size - last_end
            if cut:
                self._file.truncate(last_end)
                os.fsync(self._file.fileno())
            self._file.seek(last_end)
        except OSError as exc:
            self._abandon()
            raise RecordingError(f"{self._path}: cannot prepare for appending: {exc.strerror or exc}") from None
        self._chunks = n_chunks
        self._packets = n_packets
        self._good_end = last_end
        self._last_fsync = time.monotonic()
        note = {
            "event": "reopened",
            "truncated_at": last_end,
            "truncated_bytes": cut,
            "previous_end_chunk": last_chunk is not None and last_chunk.type is ChunkType.END,
            "cut": [{"offset": i.offset, "kind": i.kind, "detail": i.detail} for i in issues if i.offset >= last_end],
        }
        self.write_note(note, time.time())
        return self

    # -- properties ------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The file being written."""
        return self._path

    @property
    def metadata(self) -> dict[str, Any]:
        """The header metadata as written (including the filled-in ``created``)."""
        return self._metadata

    @property
    def chunk_count(self) -> int:
        """Intact chunks in the file so far (including any from before :meth:`open_append`)."""
        return self._chunks

    @property
    def packet_count(self) -> int:
        """Packets in the file so far."""
        return self._packets

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run (or the writer was abandoned after an error)."""
        return self._closed

    # -- writing -----------------------------------------------------------------------------

    def _write_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            if n is None:  # pragma: no cover - non-blocking files only
                continue
            view = view[n:]
        self._good_end += len(data)

    def _write_chunks(self, frames: list[bytes]) -> None:
        if self._closed:
            raise RecordingError(f"{self._path}: writer is closed")
        if self._broken:  # the first error's plain words ("No space left on device"), not a riddle
            raise RecordingError(f"{self._path}: write failed: {self._first_error or 'an earlier write failed'}")
        good = self._good_end
        try:
            self._write_raw(b"".join(frames))
            now = time.monotonic()
            if self._interval == 0 or now - self._last_fsync >= self._interval:
                os.fsync(self._file.fileno())
                self._last_fsync = now
        except OSError as exc:
            self._broken = True
            self._first_error = exc.strerror or str(exc)
            try:  # leave no partial chunk behind if we can
                self._file.truncate(good)
                self._good_end = good
            except OSError:
                pass
            raise RecordingError(f"{self._path}: write failed: {exc.strerror or exc}") from None

    def sync_if_due(self) -> None:
        """fsync if something was written since the last fsync and the interval has passed
        (for callers whose writes pause: the writer itself only fsyncs when writing).

        Raises:
            RecordingError: the fsync fails.
        """
        if self._closed or self._broken or self._good_end == getattr(self, "_idle_synced_end", -1):
            return
        now = time.monotonic()
        if now - self._last_fsync >= self._interval:
            try:
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise RecordingError(f"{self._path}: fsync failed: {exc.strerror or exc}") from None
            self._last_fsync = now
            self._idle_synced_end = self._good_end

    def write_packets(
        self, packets: Iterable[bytes | bytearray | memoryview], host_time_s: float
    ) -> None:
        """Append raw packets received at ``host_time_s`` as one PACKETS chunk.

        A batch larger than a chunk can hold (65535 packets or 1 MiB of payload) is split into
        consecutive chunks with the same time. An empty batch writes nothing.

        Args:
            packets: Raw packets (``bytes``-like), each at most 65535 bytes.
            host_time_s: Host receive time, seconds since the Unix epoch.

        Raises:
            RecordingError: a packet is not bytes-like or too long, the time is not finite, the
                writer is closed, or the write fails.
        """
        t = _check_time(host_time_s)
        frames: list[bytes] = []
        parts: list[bytes] = []
        size = _PACKETS_HEAD.size
        count = 0
        packed = 0
        u16 = _U16.pack
        for pk in packets:
            if not isinstance(pk, (bytes, bytearray, memoryview)):
                raise RecordingError(f"packets must be bytes, got {type(pk).__name__}")
            pk = bytes(pk)
            if len(pk) > MAX_PACKET_BYTES:
                raise RecordingError(f"packet of {len(pk)} bytes exceeds {MAX_PACKET_BYTES}")
            if count == 0xFFFF or size + 2 + len(pk) > MAX_PAYLOAD_BYTES:
                frames.append(_frame(1, _PACKETS_HEAD.pack(t, count) + b"".join(parts)))
                parts, size, count = [], _PACKETS_HEAD.size, 0
            parts.append(u16(len(pk)))
            parts.append(pk)
            size += 2 + len(pk)
            count += 1
            packed += 1
        if count:
            frames.append(_frame(1, _PACKETS_HEAD.pack(t, count) + b"".join(parts)))
        if not frames:
            return
        self._write_chunks(frames)
        self._chunks += len(frames)
        self._packets += packed

    def write_note(self, data: dict[str, Any], host_time_s: float) -> None:
        """Append a NOTE chunk holding the JSON object ``data``.

        Args:
            data: JSON-serialisable dict, e.g. ``{"event": "gap", "missing_packets": 3}``.
            host_time_s: Host time of the note, seconds since the Unix epoch.

        Raises:
            RecordingError: ``data`` is not a JSON-serialisable dict (NaN is refused), its JSON
                exceeds 1 MiB, the time is not finite, the writer is closed, or the write fails.
        """
        self._write_json_chunk(ChunkType.NOTE, data, host_time_s)

    def _write_json_chunk(self, ctype: ChunkType, data: dict[str, Any], host_time_s: float) -> None:
        t = _check_time(host_time_s)
        payload = _F64.pack(t) + _json_bytes(data, "note")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise RecordingError(f"note JSON is {len(payload) - 8} bytes; the limit is {MAX_PAYLOAD_BYTES - 8}")
        self._write_chunks([_frame(ctype, payload)])
        self._chunks += 1

    def close(self) -> None:
        """Write the END chunk (totals of chunks and packets), fsync and close. Idempotent.

        Raises:
            RecordingError: the END chunk cannot be written or synced (the file is still closed).
        """
        if self._closed:
            return
        try:
            if not self._broken:
                totals = {"chunks": self._chunks, "packets": self._packets}
                self._write_chunks([_frame(ChunkType.END, _F64.pack(time.time()) + _json_bytes(totals, "totals"))])
                self._chunks += 1
                try:
                    os.fsync(self._file.fileno())
                except OSError as exc:
                    raise RecordingError(f"{self._path}: fsync failed: {exc.strerror or exc}") from None
        finally:
            self._abandon()

    def _abandon(self) -> None:
        """Close the file descriptor without writing anything more."""
        self._closed = True
        try:
            self._file.close()
        except OSError:  # pragma: no cover
            pass

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            if not self._closed and not self._broken:
                self.write_note({"event": "writer_exception", "exception": exc_type.__name__}, time.time())
            self.close()
        except RecordingError:
            self._abandon()  # keep the original exception
