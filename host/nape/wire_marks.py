"""Wire format v1, type 4 MARKS: the offline day log's timestamped marks.

protocol/SPEC.md ("Type 4: MARKS") is the reference. Header 8 bytes: u8 version 1, u8 type 4,
u8 imu_mask, u8 count (1..19), u16 ``mark_id`` (id of the first mark; per boot, +1 per mark,
modulo 2^16), u16 reserved 0; then ``count`` marks of 12 bytes, little-endian: u32 ``t_ms``
(device ms since boot), u8 ``kind``, u8 ``a``, u16 ``b``, u32 ``c``.

Kinds (what ``a``, ``b``, ``c`` mean):

====  =============  =================================================================
1     ALERT_START    a: bit 0 neck, bit 1 trunk (which posture alert started)
2     ALERT_END      a: as ALERT_START
3     CALIBRATED     the wearer captured the neutral posture
4     LOG_DROPPED    b: LOG samples dropped (log full, oldest first), c: first dropped seq
5     EVENT_DROPPED  b: event_id of the dropped jolt window, c: samples in the window
6     OFFLINE_START  c: seq of the first LOG sample
7     OFFLINE_END    c: next seq (the first live sample's)
====  =============  =================================================================
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import PacketError
from .wire import VERSION, roles_of

TYPE_MARKS = 4
MARKS_HEADER = 8
MARK_BYTES = 12
MAX_MARKS = 19  # 8 + 19 * 12 = 236 bytes: one notification at ATT MTU 247

ALERT_START = 1
ALERT_END = 2
CALIBRATED = 3
LOG_DROPPED = 4
EVENT_DROPPED = 5
OFFLINE_START = 6
OFFLINE_END = 7
KIND_NAMES = {ALERT_START: "alert_start", ALERT_END: "alert_end", CALIBRATED: "calibrated",
              LOG_DROPPED: "log_dropped", EVENT_DROPPED: "event_dropped", OFFLINE_START: "offline_start",
              OFFLINE_END: "offline_end"}
ALERT_NECK = 0x01
ALERT_TRUNK = 0x02

_MARK = struct.Struct("<IBBHI")


@dataclass(frozen=True)
class Mark:
    """One mark: device time (ms since boot), kind and its three arguments."""

    mark_id: int  # per boot, modulo 2^16
    t_ms: int
    kind: int
    a: int
    b: int
    c: int

    @property
    def name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind {self.kind}")


@dataclass
class MarksPacket:
    """A decoded MARKS packet."""

    imu_mask: int
    mark_id: int  # id of the first mark
    marks: list[Mark]

    @property
    def count(self) -> int:
        return len(self.marks)

    @property
    def roles(self) -> tuple[str, ...]:
        return roles_of(self.imu_mask)


def decode_marks_packet(data: bytes) -> MarksPacket:
    """Decode one MARKS packet.

    Raises:
        PacketError: the bytes do not follow protocol/SPEC.md type 4 (one-line message).
    """
    data = bytes(data)
    if len(data) < MARKS_HEADER:
        raise PacketError(f"MARKS packet too short: length {len(data)} bytes, header needs {MARKS_HEADER}")
    version, ptype, mask, count, mark_id, reserved = struct.unpack_from("<BBBBHH", data, 0)
    if version != VERSION:
        raise PacketError(f"unsupported wire format version {version} (this host reads {VERSION})")
    if ptype != TYPE_MARKS:
        raise PacketError(f"not a MARKS packet (type {ptype})")
    if mask == 0 or mask & ~0x03:
        raise PacketError(f"invalid imu_mask 0x{mask:02x}")
    if not 1 <= count <= MAX_MARKS:
        raise PacketError(f"MARKS packet count is {count} marks (1 to {MAX_MARKS} allowed)")
    if reserved != 0:
        raise PacketError(f"MARKS packet reserved field is 0x{reserved:04x}, not 0")
    expected = MARKS_HEADER + count * MARK_BYTES
    if len(data) != expected:
        raise PacketError(f"MARKS packet length is {len(data)} bytes, its count implies {expected}")
    marks = []
    for i in range(count):
        t_ms, kind, a, b, c = _MARK.unpack_from(data, MARKS_HEADER + i * MARK_BYTES)
        if kind not in KIND_NAMES:
            raise PacketError(f"MARKS mark {i} has unknown kind {kind}")
        marks.append(Mark((mark_id + i) & 0xFFFF, t_ms, kind, a, b, c))
    return MarksPacket(imu_mask=mask, mark_id=mark_id, marks=marks)


def encode_marks_packet(imu_mask: int, mark_id: int, marks: list[tuple[int, int, int, int, int]]) -> bytes:
    """Bytes of one MARKS packet; ``marks`` as (t_ms, kind, a, b, c) (host twin of the firmware's).

    Raises:
        ValueError: bad ``imu_mask``, count (1 .. 19), kind or an argument out of its range.
    """
    if imu_mask not in (1, 2, 3) or not 1 <= len(marks) <= MAX_MARKS:
        raise ValueError("imu_mask must be 1, 2 or 3 and a packet holds 1 to 19 marks")
    body = []
    for t_ms, kind, a, b, c in marks:
        if kind not in KIND_NAMES or not (0 <= a <= 0xFF and 0 <= b <= 0xFFFF and 0 <= c <= 0xFFFFFFFF):
            raise ValueError(f"mark out of range: kind {kind}, a {a}, b {b}, c {c}")
        body.append(_MARK.pack(t_ms & 0xFFFFFFFF, kind, a, b, c))
    return struct.pack("<BBBBHH", VERSION, TYPE_MARKS, imu_mask, len(marks), mark_id & 0xFFFF, 0) + b"".join(body)
