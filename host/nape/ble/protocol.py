"""Host twin of the Nape GATT service definitions (protocol/SPEC.md, "BLE (GATT service)").

UUIDs, control command encoding, response / device-event decoding and the status
characteristic layout, kept equal to ``firmware/ble_service.py`` (tests run both).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import DeviceError

SERVICE_UUID = "9a1c0001-6b3e-4f2a-8d5c-4e4150450000"
STREAM_UUID = "9a1c0002-6b3e-4f2a-8d5c-4e4150450000"
EVENT_UUID = "9a1c0003-6b3e-4f2a-8d5c-4e4150450000"
CONTROL_UUID = "9a1c0004-6b3e-4f2a-8d5c-4e4150450000"
STATUS_UUID = "9a1c0005-6b3e-4f2a-8d5c-4e4150450000"

CMD_START = 0x01
CMD_STOP = 0x02
CMD_BACKFILL = 0x03
CMD_CALIBRATE = 0x04
CMD_SET_POSTURE = 0x05
CMD_SET_TIME = 0x06
CMD_GET_STATUS = 0x07
CMD_BACKFILL_ALL = 0x08
CMD_ACK = 0x09
CMD_FORGET = 0x0A
CMD_AUTH_CHALLENGE = 0x0B
CMD_AUTH_PROVE = 0x0C
CMD_LOG_ACK = 0x0D
CMD_BACKFILL_PREV = 0x0E
CMD_PREV_ACK = 0x0F
RESP_BIT = 0x80
EVT_END_OF_DATA = 0xA0
EVT_PREV_END = 0xA1
LOG_ACK_PREV = 0x80  # LOG_ACK type bit: the packet is the previous boot's

RES_NOT_AUTHORIZED = 5
RES_DENIED = 6
RESULTS = {0: "ok", 1: "unknown command", 2: "bad length", 3: "bad value", 4: "not ready",
           5: "not bonded with this Nape (or its owner key not proved)", 6: "wrong owner key"}

#: the board's pairing window after power-on and after a long press, s
#: (``config.BLE_PAIR_WINDOW_S``; tests check they agree)
PAIR_WINDOW_S = 120
PAIR_PRESS_S = 3  # hold the pair button this long (``config.PAIR_PRESS_MS``)
AUTH_LABEL = b"nape-owner-v1"  # the owner-key proof: HMAC-SHA256(key, AUTH_LABEL + nonce)

ST_STREAMING = 0x01
ST_BACKFILLING = 0x02
ST_CALIBRATED = 0x04
ST_TIME_SET = 0x08
ST_SAVER = 0x10
ST_SOURCE_DONE = 0x20
ST_ENCRYPTED = 0x40
ST_SECURE = 0x80

SEC_WINDOW_OPEN = 0x01
SEC_AUTHORIZED = 0x02
SEC_OWNER_KEY = 0x04
SEC_PROVED = 0x08
SEC_BONDED = 0x10
ADV_COMPANY = 0xFFFF  # scan response manufacturer data: b"N" + mode byte
ADV_SECURE = 0x01
ADV_WINDOW_OPEN = 0x02
ADV_OWNER_KEY = 0x04

_STATUS = struct.Struct("<BBBBHHHIIIHIIHHIB")
_SECURITY = struct.Struct("<BBBH")  # after the firmware version (status version 3)
_PREV = struct.Struct("<IIIHIQ")  # after the security bytes (status version 4)
STATUS_VERSION = 4
STATUS_VERSIONS = (2, 3, 4)  # 2: no security bytes (firmware before secure mode); 3: no previous boot's log


def cmd_start() -> bytes:
    return bytes([CMD_START])


def cmd_stop() -> bytes:
    return bytes([CMD_STOP])


def cmd_backfill(from_seq: int) -> bytes:
    """Send stored packets from sequence number ``from_seq`` (mod 2^32), then live."""
    return struct.pack("<BI", CMD_BACKFILL, from_seq & 0xFFFFFFFF)


def cmd_backfill_all() -> bytes:
    """Send everything the device has stored, then live."""
    return bytes([CMD_BACKFILL_ALL])


def cmd_ack(next_seq: int) -> bytes:
    """The host has every sample before ``next_seq``: the device may drop them from its
    buffer when it needs room. No response; write without response."""
    return struct.pack("<BI", CMD_ACK, next_seq & 0xFFFFFFFF)


def cmd_log_ack(ptype: int, ident: int, prev: bool = False) -> bytes:
    """The host received the day log's EVENT window ``ident`` whole (``ptype`` 2) or its
    MARKS packet whose first mark is ``ident`` (``ptype`` 4): the device frees it; ``prev``:
    a packet of the previous boot's kept log (BACKFILL_PREV). No response; write without
    response (protocol/SPEC.md, "Streaming, backfill and the offline buffer", "Boots")."""
    return struct.pack("<BBH", CMD_LOG_ACK, ptype | (LOG_ACK_PREV if prev else 0), ident & 0xFFFF)


def cmd_backfill_prev(from_seq: int) -> bytes:
    """Send the previous boot's kept day log (its LOG from ``from_seq``), then EVT_PREV_END
    (protocol/SPEC.md, "Boots")."""
    return struct.pack("<BI", CMD_BACKFILL_PREV, from_seq & 0xFFFFFFFF)


def cmd_prev_ack(next_seq: int) -> bytes:
    """The host has every sample of the previous boot before ``next_seq``. No response."""
    return struct.pack("<BI", CMD_PREV_ACK, next_seq & 0xFFFFFFFF)


def cmd_calibrate(still_s: int = 0) -> bytes:
    """Capture the neutral posture over ``still_s`` seconds (0: device default)."""
    return struct.pack("<BB", CMD_CALIBRATE, still_s)


def cmd_set_posture(neck_limit_deg: int, trunk_limit_deg: int, hold_s: int) -> bytes:
    """Posture alert thresholds (degrees) and hold time (seconds)."""
    return struct.pack("<BBBH", CMD_SET_POSTURE, neck_limit_deg, trunk_limit_deg, hold_s)


def cmd_set_time(unix_ms: int) -> bytes:
    """Wall clock (ms since the Unix epoch) at the moment the command arrives."""
    return struct.pack("<BQ", CMD_SET_TIME, unix_ms)


def cmd_get_status() -> bytes:
    return bytes([CMD_GET_STATUS])


def cmd_forget(every_bond: bool = False) -> bytes:
    """The board forgets this central's bond (or every bond) and drops the link."""
    return bytes([CMD_FORGET, 1 if every_bond else 0])


def cmd_auth_challenge() -> bytes:
    return bytes([CMD_AUTH_CHALLENGE])


def owner_proof(key: bytes, nonce: bytes) -> bytes:
    """HMAC-SHA256 of the board's nonce under the owner key (protocol/SECURITY.md)."""
    import hashlib
    import hmac

    return hmac.new(key, AUTH_LABEL + nonce, hashlib.sha256).digest()


def cmd_auth_prove(key: bytes, nonce: bytes) -> bytes:
    return bytes([CMD_AUTH_PROVE]) + owner_proof(key, nonce)


def parse_scan_mode(manufacturer_data: dict[int, bytes]) -> int | None:
    """The mode byte (``ADV_*``) of a Nape's scan response, or None (not advertised:
    firmware before secure mode)."""
    v = manufacturer_data.get(ADV_COMPANY)
    if v is None or len(v) < 2 or v[0] != 0x4E:
        return None
    return v[1]


@dataclass(frozen=True)
class Response:
    """A command response or device event from the control characteristic."""

    opcode: int  # command opcode (without RESP_BIT) or the event code
    result: int  # 0 ok; see RESULTS (events: 0)
    oldest_seq: int | None = None  # START / STOP / BACKFILL: oldest stored seq
    next_seq: int | None = None  # START / STOP / BACKFILL / END_OF_DATA: next seq
    payload: bytes = b""  # what follows the result byte (AUTH_CHALLENGE: the nonce)

    @property
    def is_event(self) -> bool:
        return self.opcode in (EVT_END_OF_DATA, EVT_PREV_END)

    @property
    def ok(self) -> bool:
        return self.result == 0


def parse_control(value: bytes) -> Response:
    """Decode one control notification.

    Raises:
        DeviceError: the value is not a known response or event.
    """
    if len(value) >= 5 and value[0] in (EVT_END_OF_DATA, EVT_PREV_END):
        return Response(value[0], 0, next_seq=struct.unpack_from("<I", value, 1)[0])
    if len(value) < 2 or not value[0] & RESP_BIT:
        raise DeviceError(f"unexpected control notification {value.hex()}")
    op, res = value[0] & 0x7F, value[1]
    if op == CMD_AUTH_CHALLENGE:
        return Response(op, res, payload=bytes(value[2:]))
    if len(value) >= 10:
        oldest, nxt = struct.unpack_from("<II", value, 2)
        return Response(op, res, None if oldest == 0xFFFFFFFF else oldest, nxt)
    return Response(op, res)


@dataclass(frozen=True)
class Status:
    """The status characteristic (read on connect, notified about once a second)."""

    flags: int
    imu_mask: int
    battery_pct: int | None  # None: unknown
    battery_mv: int | None
    rate_hz: int
    buffer_fill_permille: int
    oldest_seq: int | None  # None: buffer empty
    next_seq: int
    uptime_s: int
    mtu: int
    overflow_samples: int
    notify_busy: int
    imu_errors: int
    connections: int
    boot_id: int  # random u32 naming the device's boot: sequence numbers restart with it
    firmware_version: str
    security: int | None = None  # SEC_* flags (None: firmware before status version 3)
    bonds: int | None = None  # centrals bonded with the board
    max_bonds: int | None = None
    pair_window_left_s: int | None = None  # the pairing window closes in this many s (0: closed)
    #: the previous boot's day log the board kept over a reboot (status version 4):
    #: its boot_id (None: nothing kept), oldest / next LOG seq (None: no LOG), packets
    #: kept, its newest device time (ms) and unix ms at its device time 0 (None: unknown)
    prev_boot_id: int | None = None
    prev_oldest_seq: int | None = None
    prev_next_seq: int | None = None
    prev_packets: int = 0
    prev_last_t_ms: int | None = None
    prev_epoch_ms: int | None = None

    @property
    def secure(self) -> bool:
        """Secure mode (False: the board's development mode, open to any central)."""
        return bool(self.flags & ST_SECURE)

    @property
    def authorized(self) -> bool:
        """This link may stream and command (always on a board before secure mode)."""
        return self.security is None or bool(self.security & SEC_AUTHORIZED)

    @property
    def bonded(self) -> bool:
        """This link is encrypted with a bond the board accepted."""
        return self.security is None or bool(self.security & SEC_BONDED)

    @property
    def owner_key_required(self) -> bool:
        return self.security is not None and bool(self.security & SEC_OWNER_KEY)

    @property
    def streaming(self) -> bool:
        return bool(self.flags & ST_STREAMING)

    @property
    def source_done(self) -> bool:
        return bool(self.flags & ST_SOURCE_DONE)


def parse_status(value: bytes) -> Status:
    """Decode a status value (a notification may be truncated to MTU - 3; then the
    firmware version and later fields are missing and default to 0 / "").

    Raises:
        DeviceError: the value is shorter than the first 18 bytes or of another version.
    """
    if len(value) >= 18 and value[0] > STATUS_VERSION:
        raise DeviceError(f"the board's status is version {value[0]}, newer than this nape reads "
                          f"(up to {STATUS_VERSION}): update nape")
    if len(value) < 18 or value[0] not in STATUS_VERSIONS:
        raise DeviceError(f"bad status value {value.hex()}")
    raw = bytes(value[: _STATUS.size]).ljust(_STATUS.size, b"\0")
    (_v, flags, mask, pct, mv, rate, fill, oldest, nxt, up, mtu, over, busy, imu_err, conns,
     boot_id, fw_len) = _STATUS.unpack(raw)
    fw = bytes(value[_STATUS.size: _STATUS.size + fw_len]).decode(errors="replace")
    sec = bytes(value[_STATUS.size + fw_len: _STATUS.size + fw_len + _SECURITY.size])
    security = bonds = max_bonds = left = None
    if value[0] >= 3 and len(sec) == _SECURITY.size:
        security, bonds, max_bonds, left = _SECURITY.unpack(sec)
    at = _STATUS.size + fw_len + _SECURITY.size
    prev: tuple = (None, None, None, 0, None, None)
    raw_prev = bytes(value[at: at + _PREV.size])
    if value[0] >= 4 and len(raw_prev) == _PREV.size:
        pb, po, pn, pk, pt, pe = _PREV.unpack(raw_prev)
        if pb:
            prev = (pb, None if po == 0xFFFFFFFF else po, pn if po != 0xFFFFFFFF else None, pk, pt, pe or None)
    return Status(
        flags, mask, None if pct == 255 else pct, mv or None, rate, fill,
        None if oldest == 0xFFFFFFFF else oldest, nxt, up, mtu, over, busy, imu_err, conns, boot_id, fw,
        security, bonds, max_bonds, left, *prev,
    )
