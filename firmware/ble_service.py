"""Nape GATT service (protocol/SPEC.md, section "BLE (GATT service)"), MicroPython.

One custom 128-bit service with four characteristics:

- stream  (notify): SAMPLES packets, fragmented (1-byte fragment header per notification)
- event   (notify): EVENT packets (jolt windows), fragmented the same way
- control (write, notify): commands from the central; responses and device events
- status  (read, notify): battery, buffer, firmware version, IMUs, health counters

Security (protocol/SECURITY.md): in secure mode (``config.BLE_SECURE``, the default) the
stack encrypts the link (LE Secure Connections, bonded) and the service gives data and
takes commands only on an *authorized* link: encrypted with a bond the board accepted,
i.e. made inside a pairing window (``open_pairing``: after power-on and after a long
press of the pair button), and, when the board holds an owner key, after the central
proved it (HMAC-SHA256 challenge-response, ``CMD_AUTH_*``). Stock MicroPython has no
call to reject a pairing request, so the board refuses one outside the window where it
can: the bonding keys the stack asks it to store (``_IRQ_SET_SECRET``) are not stored,
and the link is dropped before anything is sent.

Uses the ``bluetooth`` module (ESP32 NimBLE semantics). The IRQ handler only records
what happened; ``poll()``, called from the main loop, acts on it (commands, MTU,
advertising) and ``pump()`` sends queued data, so nothing here blocks the sampling loop
and nothing runs long in IRQ context. Sending goes through the offline buffer
(``ble_buffer.PacketStore``): the stream is "send stored packets from ``cursor`` on",
so live streaming and backfill are the same path; packets older than the point where
streaming (re)started carry the BACKFILL flag.
"""

import os
import struct
import time
from micropython import const

import bluetooth
import wire
import ble_buffer

# --- UUIDs ----------------------------------------------------------------------------
SERVICE_UUID = "9a1c0001-6b3e-4f2a-8d5c-4e4150450000"
STREAM_UUID = "9a1c0002-6b3e-4f2a-8d5c-4e4150450000"
EVENT_UUID = "9a1c0003-6b3e-4f2a-8d5c-4e4150450000"
CONTROL_UUID = "9a1c0004-6b3e-4f2a-8d5c-4e4150450000"
STATUS_UUID = "9a1c0005-6b3e-4f2a-8d5c-4e4150450000"

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_READ_ENCRYPTED = const(0x0200)
_FLAG_WRITE_ENCRYPTED = const(0x1000)
_IO_NO_INPUT_OUTPUT = const(3)

_ENOMEM = const(12)
_EV_CONFIRM = const(-1)  # _irq_events kind: an ACK / LOG_ACK written on an authorized link

# --- control commands (central -> device), first byte = opcode ------------------------
CMD_START = const(0x01)  # -                      start live streaming
CMD_STOP = const(0x02)  # -                       stop streaming (device keeps buffering)
CMD_BACKFILL = const(0x03)  # u32 from_seq          send stored packets from seq, then live
CMD_CALIBRATE = const(0x04)  # u8 still_s (0 = default)  capture the neutral posture
CMD_SET_POSTURE = const(0x05)  # u8 neck_deg, u8 trunk_deg, u16 hold_s
CMD_SET_TIME = const(0x06)  # u64 unix_ms            wall clock at this instant
CMD_GET_STATUS = const(0x07)  # -                    notify the status now
CMD_BACKFILL_ALL = const(0x08)  # -                  send everything stored, then live
CMD_ACK = const(0x09)  # u32 next_seq              host has every sample before next_seq (no response)
CMD_FORGET = const(0x0A)  # u8 scope (0 this central, 1 every bond)  the board forgets bonds, drops the link
CMD_AUTH_CHALLENGE = const(0x0B)  # -             response: 16-byte nonce for the owner-key proof
CMD_AUTH_PROVE = const(0x0C)  # 32 bytes HMAC-SHA256(owner key, AUTH_LABEL + nonce)
CMD_LOG_ACK = const(0x0D)  # u8 type (2 EVENT, 4 MARKS; | 0x80: of the previous boot), u16 id: the day log may free it (no response)
CMD_BACKFILL_PREV = const(0x0E)  # u32 from_seq  send the previous boot's kept day log, then EVT_PREV_END
CMD_PREV_ACK = const(0x0F)  # u32 next_seq     host has the previous boot's samples before next_seq (no response)
RESP_BIT = const(0x80)  # response: [opcode | 0x80, result, payload]
EVT_END_OF_DATA = const(0xA0)  # device event on control: u32 next_seq (source exhausted)
EVT_PREV_END = const(0xA1)  # device event on control: u32 next_seq: the previous boot's log is all sent

RES_OK = const(0)
RES_UNKNOWN = const(1)
RES_BAD_LENGTH = const(2)
RES_BAD_VALUE = const(3)
RES_NOT_READY = const(4)
RES_NOT_AUTHORIZED = const(5)  # link not bonded with this board (or the owner key not proved)
RES_DENIED = const(6)  # wrong owner-key proof (the board then drops the link)

AUTH_LABEL = b"nape-owner-v1"  # domain separation of the owner-key proof
NONCE_LEN = const(16)

_CMD_LEN = {CMD_START: 1, CMD_STOP: 1, CMD_BACKFILL: 5, CMD_CALIBRATE: 2,
            CMD_SET_POSTURE: 5, CMD_SET_TIME: 9, CMD_GET_STATUS: 1, CMD_BACKFILL_ALL: 1,
            CMD_ACK: 5, CMD_FORGET: 2, CMD_AUTH_CHALLENGE: 1, CMD_AUTH_PROVE: 33,
            CMD_LOG_ACK: 4, CMD_BACKFILL_PREV: 5, CMD_PREV_ACK: 5}
# allowed on a bonded link before the owner key is proved
_PRE_AUTH = (CMD_GET_STATUS, CMD_AUTH_CHALLENGE, CMD_AUTH_PROVE)

# --- status flags -----------------------------------------------------------------------
ST_STREAMING = const(0x01)
ST_BACKFILLING = const(0x02)
ST_CALIBRATED = const(0x04)
ST_TIME_SET = const(0x08)
ST_SAVER = const(0x10)
ST_SOURCE_DONE = const(0x20)
ST_ENCRYPTED = const(0x40)
ST_SECURE = const(0x80)  # secure mode (config.BLE_SECURE); clear: development mode, open to all
STATUS_VERSION = const(4)  # 2: u32 boot_id at offset 36; 3: security bytes after fw_version; 4: previous boot's log
# security byte of the status (version 3) and of the scan response
SEC_WINDOW_OPEN = const(0x01)  # pairing window open now
SEC_AUTHORIZED = const(0x02)  # this link may stream and command
SEC_OWNER_KEY = const(0x04)  # the board holds an owner key: centrals must prove it
SEC_PROVED = const(0x08)  # this link proved the owner key
SEC_BONDED = const(0x10)  # this link is encrypted with a bond the board accepted
ADV_SECURE = const(0x01)  # scan response mode byte: secure mode
ADV_WINDOW_OPEN = const(0x02)  # scan response mode byte: pairing window open
ADV_OWNER_KEY = const(0x04)  # scan response mode byte: owner key required
ADV_COMPANY = const(0xFFFF)  # manufacturer data company id (no SIG-assigned id; "testing")

# MicroPython's secret types (NimBLE's store object types)
SEC_OUR = const(1)  # our keys for a peer (LTK we gave it)
SEC_PEER = const(2)  # a peer's keys: one record per bonded central
SEC_CCCD = const(3)  # a bonded peer's subscriptions

MAX_CTRL_OUT = const(8)  # control responses waiting for a central that does not read
PREFERRED_MTU = const(247)  # packets are sized for at most 244-byte values
MAX_VALUE_LEN = const(244)
FAST_ADV_US = const(20000)  # advertising interval right after boot / a disconnect
FAST_ADV_MS = const(30000)  # ... for this long, then the normal interval
DROP_GRACE_MS = const(300)  # the answer to FORGET / a bad proof goes on air before the link drops


def new_boot_id():
    """A random, non-zero u32 naming this boot (hardware RNG on the ESP32).

    Sequence numbers restart at 0 on every boot; the host keeps one sequence space per
    boot id (protocol/SPEC.md, "Boots")."""
    b = os.urandom(4)
    v = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)
    return v if v else 1


def uuid128_le(s):
    """Little-endian (on-air) bytes of a 128-bit UUID string."""
    h = s.replace("-", "")
    return bytes(int(h[i:i + 2], 16) for i in range(30, -2, -2))


def adv_payload(name, service_uuid):
    """Advertising data: flags (LE general discoverable, no BR/EDR), 128-bit UUID, name."""
    nb = name.encode()
    return (b"\x02\x01\x06" + bytes((17, 0x07)) + uuid128_le(service_uuid)
            + bytes((len(nb) + 1, 0x09)) + nb)


def scan_response(mode):
    """Scan response: manufacturer data (company ``ADV_COMPANY``) ``b"N"`` + mode byte
    (``ADV_*``), so a scanner sees the security mode before connecting."""
    return bytes((5, 0xFF, ADV_COMPANY & 0xFF, ADV_COMPANY >> 8, 0x4E, mode))


class NapeService:
    """The Nape peripheral: GATT service, advertising, streaming from a PacketStore.

    Args:
        ble: ``bluetooth.BLE()``.
        store: ``ble_buffer.PacketStore`` holding the SAMPLES packets.
        name: GAP / advertised name.
        fw_version: firmware version string (status characteristic).
        imu_mask: IMUs found (wire ``imu_mask``).
        rate_hz: fused stream rate.
        on_command: ``fn(opcode, payload) -> result`` for CALIBRATE and SET_POSTURE
            (application settings); None answers RES_NOT_READY.
        on_mtu: ``fn(max_value_len)`` after an MTU exchange / disconnect, so the
            application re-sizes its packets (``Pipeline.set_mtu_value_len``).
        adv_interval_us: advertising interval after the fast window.
        secure: require an encrypted link (LE Secure Connections, bonded, "Just Works")
            for control writes and status reads; data and commands only on an
            authorized link (bonded in a pairing window; see the module doc).
        secrets: a ``BondStore`` keeping the bonding keys (default: in RAM only).
        boot_id: u32 naming this boot in the status (default: random, ``new_boot_id``).
        pair_window_s: the pairing window opened at boot and by ``open_pairing``, s
            (secure mode; 0: only ``open_pairing(seconds)`` opens one).
        max_bonds: bonded centrals at most; pairing a further one is refused.
        owner_key: bytes a central must prove (``CMD_AUTH_*``) before it gets anything;
            None: no proof.
    """

    def __init__(self, ble, store, name="Nape", fw_version="0", imu_mask=1, rate_hz=100,
                 on_command=None, on_mtu=None, adv_interval_us=100000,
                 fast_adv_us=FAST_ADV_US, fast_adv_ms=FAST_ADV_MS, secure=False, secrets=None,
                 boot_id=None, pair_window_s=0, max_bonds=4, owner_key=None):
        self.ble = ble
        self.store = store
        self.name = name
        self.fw_version = fw_version
        self.imu_mask = imu_mask
        self.rate_hz = rate_hz
        self.on_command = on_command
        self.on_mtu = on_mtu
        self.adv_interval_us = adv_interval_us
        self.fast_adv_us = fast_adv_us
        self.fast_adv_ms = fast_adv_ms
        self.secure = secure
        self.secrets = secrets if secrets is not None else BondStore(None)
        self.boot_id = boot_id if boot_id is not None else new_boot_id()
        self.pair_window_s = pair_window_s
        self.max_bonds = max_bonds
        self.owner_key = owner_key
        self._pair_until = None  # ticks_ms when the pairing window closes; None: closed
        self._adv_mode = None  # mode byte last advertised
        # per link (reset on connect / disconnect, in IRQ context)
        self._known = False  # the stack found this central's bond, or it bonded in a window
        self._refused = False  # it tried to pair outside the window / over the limit
        self._proved = False  # it proved the owner key
        self._nonce = None
        self._link_keys = []  # (sec_type, key) of this central's bond records
        self._drop = False  # disconnect once the queued responses are out (+ DROP_GRACE_MS)
        self._drop_at = None  # ticks_ms when to disconnect
        self.pair_refused = 0  # pairing attempts refused (outside the window / over the limit)
        self.bonds_forgotten = 0
        if secure and pair_window_s > 0:
            self.open_pairing()
        ble.active(True)
        ble.config(gap_name=name, mtu=PREFERRED_MTU)
        if secure:
            ble.config(bond=True, le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT)
        ble.irq(self._irq)
        enc_w = _FLAG_WRITE_ENCRYPTED if secure else 0
        enc_r = _FLAG_READ_ENCRYPTED if secure else 0
        svc = (
            bluetooth.UUID(SERVICE_UUID),
            (
                (bluetooth.UUID(STREAM_UUID), _FLAG_NOTIFY),
                (bluetooth.UUID(EVENT_UUID), _FLAG_NOTIFY),
                (bluetooth.UUID(CONTROL_UUID), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE | _FLAG_NOTIFY | enc_w),
                (bluetooth.UUID(STATUS_UUID), _FLAG_READ | _FLAG_NOTIFY | enc_r),
            ),
        )
        ((self.h_stream, self.h_event, self.h_control, self.h_status),) = \
            ble.gatts_register_services((svc,))
        ble.gatts_set_buffer(self.h_control, 40)  # the longest command: AUTH_PROVE, 33 bytes
        self._adv = adv_payload(name, SERVICE_UUID)
        # link state (written by the IRQ handler, read by poll)
        self.conn = None
        self.mtu = 23
        self._irq_events = []  # (kind, args) recorded in IRQ context
        # streaming state
        self.streaming = False
        self.cursor = None  # next seq to send
        self.acked = None  # the central confirmed every sample before this seq (ACK / BACKFILL)
        self.live_from = None  # packets before this seq are BACKFILL
        self.backfill_to = None  # seq where the requested backfill ends (status flag)
        self._frags = None
        self._frag_i = 0
        self._stream_frag = wire.Fragmenter(20)
        self._event_frag = wire.Fragmenter(20)
        self._events = []  # EVENT packets waiting (bounded)
        self._ctrl_out = []  # control notifications waiting (responses)
        self._event_frags = None
        self._event_i = 0
        self.max_events = 16
        self.source_done = False
        self._end_sent = False
        #: the offline day log (``daylog.DayLog``) or None: its LOG packets join the
        #: stream by seq, its MARKS (stream) and EVENT windows (event) go first
        self.daylog = None
        self._dl_frags = None  # a day-log MARKS packet in flight on the stream characteristic
        self._dl_i = 0
        #: streaming the previous boot's kept day log (BACKFILL_PREV) instead of this boot's
        self.prev_mode = False
        self._prev_end_sent = False
        # status / health
        self.calibrated = False
        self.saver = False
        self.time_offset_ms = None  # unix_ms - ticks_ms at SET_TIME
        self.battery_pct = 255
        self.battery_mv = 0
        self.imu_errors = 0
        self.connections = 0
        self.notify_busy = 0  # gatts_notify refused (no stack buffer): retried later
        self.notify_errors = 0  # gatts_notify failed otherwise (link lost)
        self.lost_events = 0
        self.lost_responses = 0  # control responses dropped: queue full (MAX_CTRL_OUT)
        self.sent_notifications = 0
        self.encrypted = False
        self._boot_ms = time.ticks_ms()
        self._adv_started = None
        self._adv_fast = False
        self._status_due = 0
        self.advertise(fast=True)
        self.write_status()

    # --- IRQ context: record only -------------------------------------------------------
    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self.conn = data[0]
            self.mtu = 23
            self.encrypted = False
            self._new_link()
            self._irq_events.append((event, data[0]))
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if self.conn == data[0]:
                self.conn = None
                self.streaming = False
                self.encrypted = False
                self._new_link()
            self._irq_events.append((event, data[0]))
        elif event == _IRQ_GATTS_WRITE:
            if data[1] == self.h_control:
                v = bytes(self.ble.gatts_read(self.h_control))
                if v and (v[0] == CMD_ACK or v[0] == CMD_LOG_ACK or v[0] == CMD_PREV_ACK) \
                        and self.authorized():
                    # a confirmation counts even when the link drops before poll() runs
                    # (a host confirms last, then disconnects)
                    self._irq_events.append((_EV_CONFIRM, v))
                else:
                    self._irq_events.append((event, v))
        elif event == _IRQ_MTU_EXCHANGED:
            self.mtu = data[1]
            self._irq_events.append((event, data[1]))
        elif event == _IRQ_ENCRYPTION_UPDATE:
            if data[0] == self.conn:
                self.encrypted = bool(data[1])
                self._irq_events.append((event, None))  # the status changes: rewrite it now
        elif event == _IRQ_GET_SECRET:
            return self._get_secret(data[0], data[1], data[2])
        elif event == _IRQ_SET_SECRET:
            return self._set_secret(data[0], data[1], data[2])

    def _new_link(self):
        self._known = False
        self._refused = False
        self._proved = False
        self._nonce = None
        self._link_keys = []
        self._drop = False
        self._drop_at = None

    def _get_secret(self, sec_type, index, key):
        v = self.secrets.get(sec_type, index, key)
        if v is not None and key is not None and self.conn is not None and \
                (sec_type == SEC_OUR or sec_type == SEC_PEER):
            self._known = True  # the stack looks up this central's bond: a bonded reconnection
            self._link_keys.append((sec_type, bytes(key)))
        return v

    def _set_secret(self, sec_type, key, value):
        """The stack stores (value) or deletes (None) a record. In secure mode bond records
        change only inside the pairing window and within ``max_bonds``; otherwise the
        request is refused (False: not stored) and the link is dropped (``poll``)."""
        if self.secure and (sec_type == SEC_OUR or sec_type == SEC_PEER):
            key = bytes(key)
            known = self.secrets.get(sec_type, 0, key) is not None
            if not self.pairing_open() or (value is not None and not known
                                           and self.secrets.count(SEC_PEER) >= self.max_bonds):
                if self.conn is not None:
                    self._refused = True
                self.pair_refused += 1
                return False
            if self.conn is not None and value is not None:
                self._known = True  # bonded inside the window
                self._link_keys.append((sec_type, key))
                self._irq_events.append((_IRQ_SET_SECRET, None))  # status: authorized now
        return self.secrets.set(sec_type, key, value)

    # --- security ----------------------------------------------------------------------
    def pairing_open(self):
        """True while the pairing window is open."""
        until = self._pair_until
        return until is not None and time.ticks_diff(until, time.ticks_ms()) > 0

    def pairing_left_s(self):
        """Seconds the pairing window stays open (0: closed)."""
        until = self._pair_until
        if until is None:
            return 0
        left = time.ticks_diff(until, time.ticks_ms())
        return (left + 999) // 1000 if left > 0 else 0

    def open_pairing(self, seconds=None):
        """Open the pairing window for ``seconds`` (default ``pair_window_s``) from now."""
        ms = 1000 * (self.pair_window_s if seconds is None else seconds)
        self._pair_until = time.ticks_add(time.ticks_ms(), ms)
        self._refresh_adv()

    def close_pairing(self):
        self._pair_until = None
        self._refresh_adv()

    def bonded_link(self):
        """The link is encrypted with a bond this board accepted (always True when not secure)."""
        if self.conn is None:
            return False
        return not self.secure or (self.encrypted and self._known and not self._refused)

    def authorized(self):
        """The link may stream and command: ``bonded_link`` and the owner key proved (if any)."""
        return self.bonded_link() and (self.owner_key is None or self._proved)

    def forget_link(self):
        """Forget the bond of the connected central (its key records, ours and its, in the
        store) and drop it. Its subscription records (type 3) stay until evicted."""
        n = 0
        for _t, k in self._link_keys:
            for t in (SEC_OUR, SEC_PEER):  # NimBLE keys both by the peer's address
                if self.secrets.get(t, 0, k) is not None:
                    self.secrets.set(t, k, None)
                    n += 1
        self.bonds_forgotten += 1 if n else 0
        self._known = False
        self._link_keys = []
        self._drop = True

    def forget_all(self):
        """Forget every bond (owner's very long press or CMD_FORGET 1) and drop the link."""
        self.bonds_forgotten += self.secrets.count(SEC_PEER)
        self.secrets.clear()
        self._known = False
        self._link_keys = []
        if self.conn is not None:
            self._drop = True

    def _mode(self):
        m = 0
        if self.secure:
            m |= ADV_SECURE
        if self.pairing_open():
            m |= ADV_WINDOW_OPEN
        if self.owner_key is not None:
            m |= ADV_OWNER_KEY
        return m

    def _refresh_adv(self):
        """Advertise the current mode byte again if it changed (not while connected:
        the stack does not advertise then)."""
        if self._adv_mode is not None and self._mode() != self._adv_mode and self.conn is None:
            self.advertise(fast=self._adv_fast)

    # --- main loop ---------------------------------------------------------------------
    def advertise(self, fast=False):
        interval = self.fast_adv_us if fast else self.adv_interval_us
        self._adv_mode = self._mode()
        self.ble.gap_advertise(interval, adv_data=self._adv, resp_data=scan_response(self._adv_mode))
        self._adv_started = time.ticks_ms()
        self._adv_fast = fast

    def set_adv_interval(self, interval_us):
        """Normal advertising interval (power policy); applied now unless in the fast window."""
        if interval_us == self.adv_interval_us:
            return
        self.adv_interval_us = interval_us
        if self.conn is None and not self._adv_fast:
            self.advertise(fast=False)

    def value_len(self):
        """Notification value size for the current link: min(MTU - 3, 244)."""
        v = self.mtu - 3
        return v if v < MAX_VALUE_LEN else MAX_VALUE_LEN

    def poll(self):
        """Act on recorded IRQs, keep advertising and the status fresh. Call often."""
        if self._irq_events:
            self._status_due = time.ticks_ms()  # link changed: refresh the status now
        while self._irq_events:
            ev, arg = self._irq_events.pop(0)
            if ev == _IRQ_CENTRAL_CONNECT:
                self._ctrl_out = []
                self.connections += 1
                self._adv_started = None
                self._reset_link(23)
            elif ev == _IRQ_CENTRAL_DISCONNECT:
                if self.conn is None:
                    self.streaming = False
                    self._frags = None
                    self._event_frags = None
                    self._dl_frags = None
                    self.advertise(fast=True)
                    if self.on_mtu:
                        self.on_mtu(MAX_VALUE_LEN)  # buffer-friendly packets while offline
            elif ev == _IRQ_MTU_EXCHANGED:
                self._reset_link(arg)
            elif ev == _IRQ_GATTS_WRITE:
                self._command(arg)
            elif ev == _EV_CONFIRM:
                self._confirm(arg)
        if self._drop and not self._ctrl_out:  # answered: drop the link after a grace
            self._drop = False
            self._drop_at = time.ticks_add(time.ticks_ms(), DROP_GRACE_MS)
        at = self._drop_at
        if self.conn is not None and (self._refused or (
                at is not None and time.ticks_diff(time.ticks_ms(), at) >= 0)):
            self._drop_at = None
            if self._refused:
                self._refused = False
                self._known = False
            try:
                self.ble.gap_disconnect(self.conn)  # refused pairing / forgotten bond / bad proof
            except OSError:
                pass
        if self._pair_until is not None and not self.pairing_open():
            self.close_pairing()
        now = time.ticks_ms()
        if (self.conn is None and self._adv_fast and self._adv_started is not None
                and time.ticks_diff(now, self._adv_started) > self.fast_adv_ms):
            self.advertise(fast=False)
        if time.ticks_diff(now, self._status_due) >= 0:
            self._status_due = time.ticks_add(now, 1000)
            self.write_status(notify=self.streaming)

    def _reset_link(self, mtu):
        self.mtu = mtu
        vl = self.value_len()
        self._stream_frag = wire.Fragmenter(vl)
        self._event_frag = wire.Fragmenter(vl)
        if self._frags is not None:  # a partly sent packet is re-sent whole at the new size
            self.cursor = self._frag_seq
            self._frags = None
        self._event_frags = None
        self._dl_frags = None
        if self.daylog is not None:  # unacknowledged MARKS / EVENT windows go again
            self.daylog.new_link()
        if self.on_mtu:
            self.on_mtu(vl)

    _frag_seq = None

    def delivered_to(self):
        """Seq before which the central confirmed every sample (None: nothing confirmed).

        Only confirmation counts: notifications handed to the stack are lost with the
        link if it drops before they are on air, so sent is not delivered.
        """
        return self.acked

    def _ack(self, seq):
        if self.acked is None or ((seq - self.acked) & 0xFFFFFFFF) < 0x80000000:
            self.acked = seq

    def _respond(self, opcode, result, payload=b""):
        """Queue a response; it goes out before any stream data (``_flush_control``), so
        the central sees the answer to START / BACKFILL before what it starts."""
        if self.conn is None:
            return
        if len(self._ctrl_out) >= MAX_CTRL_OUT:  # a central that writes but never reads
            self._ctrl_out.pop(0)
            self.lost_responses += 1
        self._ctrl_out.append(bytes((opcode | RESP_BIT, result)) + payload)
        self._flush_control()

    def _flush_control(self):
        """Send queued control notifications; False while some are still waiting."""
        out = self._ctrl_out
        while out:
            if self.conn is None:
                out.clear()
                return True
            try:
                self.ble.gatts_notify(self.conn, self.h_control, out[0])
            except OSError:
                self.notify_busy += 1
                return False
            out.pop(0)
        return True

    def oldest_seq(self):
        """Oldest stored seq, SAMPLES or day-log LOG (None: nothing stored)."""
        o = self.store.oldest_seq()
        dl = self.daylog
        d = dl.oldest_seq() if dl is not None else None
        if o is None or (d is not None and ((d - o) & 0xFFFFFFFF) >= 0x80000000):
            return d
        return o

    def next_seq(self):
        """Seq after the newest stored sample, SAMPLES or day-log LOG (None: nothing)."""
        n = self.store.next_seq()
        dl = self.daylog
        d = dl.next_seq() if dl is not None else None
        if n is None or (d is not None and ((d - n) & 0xFFFFFFFF) < 0x80000000):
            return d
        return n

    def _seq_info(self):
        o = self.oldest_seq()
        n = self.next_seq()
        return struct.pack("<II", 0xFFFFFFFF if o is None else o, 0 if n is None else n)

    def _start(self, from_seq):
        self.prev_mode = False
        head = self.next_seq()
        if self.daylog is not None:
            self.daylog.new_link()
        self._dl_frags = None
        self.live_from = head if head is not None else 0
        self.cursor = self.live_from if from_seq is None else from_seq
        self.acked = self.cursor  # the central asks from here: it has what came before
        self.backfill_to = None if from_seq is None else self.live_from
        self.streaming = True
        self._frags = None
        self._end_sent = False

    def _command(self, cmd):
        if not cmd:
            return
        op = cmd[0]
        want = _CMD_LEN.get(op)
        if want is None:
            self._respond(op, RES_UNKNOWN)
            return
        if len(cmd) != want:
            self._respond(op, RES_BAD_LENGTH)
            return
        if not self.bonded_link():  # (unencrypted: the stack refuses these writes already)
            self._respond(op, RES_NOT_AUTHORIZED)
            return
        if op not in _PRE_AUTH and not self.authorized():
            self._respond(op, RES_NOT_AUTHORIZED)
            return
        if op == CMD_AUTH_CHALLENGE:
            self._nonce = os.urandom(NONCE_LEN)
            self._respond(op, RES_OK, self._nonce)
        elif op == CMD_AUTH_PROVE:
            self._prove(cmd[1:])
        elif op == CMD_FORGET:
            if cmd[1] > 1:
                self._respond(op, RES_BAD_VALUE)
                return
            self._respond(op, RES_OK)
            if cmd[1]:
                self.forget_all()
            else:
                self.forget_link()
        elif op == CMD_ACK or op == CMD_LOG_ACK or op == CMD_PREV_ACK:
            self._confirm(cmd)
        elif op == CMD_BACKFILL_PREV:
            self._start_prev(struct.unpack_from("<I", cmd, 1)[0])
        elif op == CMD_START:
            if not self.streaming:
                self._start(None)
            self._respond(op, RES_OK, self._seq_info())
        elif op == CMD_STOP:
            self.streaming = False
            self._frags = None
            self._respond(op, RES_OK, self._seq_info())
        elif op == CMD_BACKFILL:
            seq = struct.unpack_from("<I", cmd, 1)[0]
            self._start(seq)
            if self.daylog is not None:
                self.daylog.release_log(seq)  # the central has what came before
            self._respond(op, RES_OK, self._seq_info())
        elif op == CMD_BACKFILL_ALL:
            oldest = self.oldest_seq()
            self._start(oldest if oldest is not None else None)
            self._respond(op, RES_OK, self._seq_info())
        elif op == CMD_SET_TIME:
            unix_ms = struct.unpack_from("<Q", cmd, 1)[0]
            now = time.ticks_ms()
            self.time_offset_ms = unix_ms - time.ticks_diff(now, self._boot_ms)
            if self.daylog is not None:  # unix ms at device time 0 (t_ms: ticks_ms)
                self.daylog.set_epoch(unix_ms - now)
            self._respond(op, RES_OK)
        elif op == CMD_GET_STATUS:
            self._respond(op, RES_OK)
            self.write_status(notify=True)
        else:  # CALIBRATE, SET_POSTURE: application settings
            if self.on_command is None:
                self._respond(op, RES_NOT_READY)
                return
            res = self.on_command(op, cmd[1:])
            if op == CMD_CALIBRATE and res == RES_OK:
                self.calibrated = True
            self._respond(op, res)

    def _confirm(self, cmd):
        """ACK / LOG_ACK (the IRQ handler found the link authorized when it arrived)."""
        op = cmd[0]
        if len(cmd) != _CMD_LEN[op]:
            self._respond(op, RES_BAD_LENGTH)
            return
        dl = self.daylog
        if op == CMD_ACK:
            seq = struct.unpack_from("<I", cmd, 1)[0]
            self._ack(seq)
            if dl is not None:
                dl.release_log(seq)
            return
        if op == CMD_PREV_ACK:
            if dl is not None:
                dl.release_prev_log(struct.unpack_from("<I", cmd, 1)[0])
            return
        typ = cmd[1]
        ident = cmd[2] | (cmd[3] << 8)
        if typ & 0x7F != 2 and typ & 0x7F != 4:
            self._respond(op, RES_BAD_VALUE)
        elif dl is not None:
            if typ == 2:
                dl.ack_event(ident)
            elif typ == 4:
                dl.ack_marks(ident)
            elif typ == 0x82:
                dl.ack_prev_event(ident)
            else:
                dl.ack_prev_marks(ident)

    def _prove(self, mac):
        key = self.owner_key
        if key is None:
            self._respond(CMD_AUTH_PROVE, RES_OK)  # nothing to prove
            return
        nonce, self._nonce = self._nonce, None  # one proof per challenge
        if nonce is None:
            self._respond(CMD_AUTH_PROVE, RES_NOT_READY)
            return
        import ble_owner  # only boards with an owner key load it (heap: plain ESP32)

        if ble_owner.same_bytes(ble_owner.hmac_sha256(key, AUTH_LABEL + nonce), mac):
            self._proved = True
            self._respond(CMD_AUTH_PROVE, RES_OK)
        else:
            self._respond(CMD_AUTH_PROVE, RES_DENIED)
            self._drop = True

    # --- data ---------------------------------------------------------------------------
    def queue_event(self, packet):
        """Queue one EVENT packet (jolt window part); the oldest is dropped when full."""
        if len(self._events) >= self.max_events:
            self._events.pop(0)
            self.lost_events += 1
        self._events.append(packet)

    def set_source_done(self):
        """The sample source is exhausted (simulated device): say so once all is sent."""
        self.source_done = True

    def pump(self, max_notifications=64):
        """Send queued notifications until the stack is busy or nothing is left.

        Returns the number of notifications sent.
        """
        conn = self.conn
        if conn is None:
            return 0
        if not self._flush_control() or not self.streaming or not self.authorized():
            return 0
        if self.prev_mode:
            return self._pump_prev(conn, max_notifications)
        ble = self.ble
        dl = self.daylog
        sent = 0
        while sent < max_notifications:
            # events first (short and rare): live ones, then the day log's windows
            ev = self._event_frags
            if ev is None:
                pk = None
                if self._events:
                    pk = self._events.pop(0)
                elif dl is not None and dl.n_ev:
                    pk = dl.next_event()
                if pk is not None:
                    ev = self._event_frags = self._event_frag.split(pk)
                    self._event_i = 0
            frags = self._frags
            dlf = self._dl_frags
            if ev is None and dlf is None and frags is None and dl is not None and dl.n_marks:
                pk = dl.next_marks()  # the day log's MARKS before the seq line
                if pk is not None:
                    dlf = self._dl_frags = self._stream_frag.split(pk)
                    self._dl_i = 0
            if ev is not None:
                value = ev[self._event_i]
                handle = self.h_event
            elif dlf is not None:
                value = dlf[self._dl_i]
                handle = self.h_stream
            else:
                if frags is None:
                    cur = self.cursor
                    got = self.store.read_from(cur)
                    if dl is not None and dl.n_log:  # the day log's LOG, merged by seq
                        lg = dl.read_log_from(cur)
                        if lg is not None and (got is None or ((lg[1] - cur) & 0xFFFFFFFF)
                                               < ((got[1] - cur) & 0xFFFFFFFF)):
                            got = lg
                    if got is None:
                        self._maybe_end()
                        break
                    pkt, first = got  # first > cursor: older samples are no longer stored
                    live_from = self.live_from
                    if pkt[1] == 1 and live_from is not None and \
                            ((first - live_from) & 0xFFFFFFFF) >= 0x80000000:
                        pkt = ble_buffer.mark_backfill(pkt)
                    self._frag_seq = first
                    self.cursor = (first + pkt[3]) & 0xFFFFFFFF
                    frags = self._frags = self._stream_frag.split(pkt)
                    self._frag_i = 0
                value = frags[self._frag_i]
                handle = self.h_stream
            try:
                ble.gatts_notify(conn, handle, value)
            except OSError as e:
                if e.args and e.args[0] == _ENOMEM:
                    self.notify_busy += 1
                else:
                    self.notify_errors += 1  # link gone under us: the IRQ follows
                break
            sent += 1
            self.sent_notifications += 1
            if ev is not None:
                self._event_i += 1
                if self._event_i >= len(ev):
                    self._event_frags = None
            elif dlf is not None:
                self._dl_i += 1
                if self._dl_i >= len(dlf):
                    self._dl_frags = None
            elif frags is not None:
                self._frag_i += 1
                if self._frag_i >= len(frags):
                    self._frags = None
            if self.conn is None or not self.streaming:
                break
        bt = self.backfill_to
        cur = self.cursor
        if bt is not None and cur is not None and self._frags is None and \
                ((cur - bt) & 0xFFFFFFFF) < 0x80000000:
            self.backfill_to = None
        return sent

    def _start_prev(self, from_seq):
        """BACKFILL_PREV: stream the previous boot's kept day log (its EVENT windows, MARKS,
        then LOG by seq from ``from_seq``), then EVT_PREV_END; this boot's data waits
        (stored) until the next START / BACKFILL."""
        dl = self.daylog
        if dl is None or not dl.pboot:
            self._respond(CMD_BACKFILL_PREV, RES_NOT_READY)
            return
        dl.new_link()
        dl.release_prev_log(from_seq)  # the central has what came before
        self.prev_mode = True
        self._prev_end_sent = False
        self.streaming = True
        self.cursor = from_seq
        self.backfill_to = None
        self._frags = self._event_frags = self._dl_frags = None
        o = dl.prev_oldest_seq()
        n = dl.prev_next_seq()
        self._respond(CMD_BACKFILL_PREV, RES_OK, struct.pack(
            "<II", 0xFFFFFFFF if o is None else o, 0 if n is None else n))

    def _pump_prev(self, conn, max_notifications):
        """``pump`` while the previous boot's day log is sent (``prev_mode``)."""
        dl = self.daylog
        sent = 0
        while sent < max_notifications:
            frags = self._frags
            if frags is None:
                handle = self.h_event
                pk = None
                if dl is not None and dl.pboot:
                    pk = dl.next_prev_event()
                    self._frag_seq = self.cursor
                    if pk is None:
                        handle = self.h_stream
                        if dl.prev_pending():
                            pk = dl.next_prev_marks()
                        if pk is None:
                            got = dl.read_prev_log_from(self.cursor)
                            if got is not None:
                                pk = got[0]
                                self._frag_seq = got[1]  # an MTU change re-sends it whole
                                self.cursor = (got[1] + pk[3]) & 0xFFFFFFFF
                        else:
                            self._frag_seq = self.cursor
                if pk is None:
                    if not self._prev_end_sent:
                        n = dl.prev_next_seq() if dl is not None else None
                        try:
                            self.ble.gatts_notify(conn, self.h_control, bytes((EVT_PREV_END,))
                                                  + struct.pack("<I", self.cursor if n is None else n))
                            self._prev_end_sent = True
                        except OSError:
                            self.notify_busy += 1
                    break
                frags = self._frags = (self._event_frag if handle == self.h_event
                                       else self._stream_frag).split(pk)
                self._frag_i = 0
                self._prev_handle = handle
            try:
                self.ble.gatts_notify(conn, self._prev_handle, frags[self._frag_i])
            except OSError as e:
                if e.args and e.args[0] == _ENOMEM:
                    self.notify_busy += 1
                else:
                    self.notify_errors += 1
                break
            sent += 1
            self.sent_notifications += 1
            self._frag_i += 1
            if self._frag_i >= len(frags):
                self._frags = None
            if self.conn is None or not self.streaming or not self.prev_mode:
                break
        return sent

    def _maybe_end(self):
        if self.source_done and not self._end_sent and self.conn is not None:
            nxt = self.next_seq()
            try:
                self.ble.gatts_notify(self.conn, self.h_control, bytes((EVT_END_OF_DATA,))
                                      + struct.pack("<I", 0 if nxt is None else nxt))
                self._end_sent = True
            except OSError:
                self.notify_busy += 1

    # --- status --------------------------------------------------------------------------
    def status_bytes(self):
        flags = 0
        if self.streaming:
            flags |= ST_STREAMING
        if self.backfill_to is not None:
            flags |= ST_BACKFILLING
        if self.calibrated:
            flags |= ST_CALIBRATED
        if self.time_offset_ms is not None:
            flags |= ST_TIME_SET
        if self.saver:
            flags |= ST_SAVER
        if self.source_done:
            flags |= ST_SOURCE_DONE
        if self.encrypted:
            flags |= ST_ENCRYPTED
        if self.secure:
            flags |= ST_SECURE
        sec = 0
        if self.pairing_open():
            sec |= SEC_WINDOW_OPEN
        if self.authorized():
            sec |= SEC_AUTHORIZED
        if self.owner_key is not None:
            sec |= SEC_OWNER_KEY
        if self._proved:
            sec |= SEC_PROVED
        if self.bonded_link():
            sec |= SEC_BONDED
        st = self.store
        o = self.oldest_seq()
        n = self.next_seq()
        fw = self.fw_version.encode()
        return struct.pack(
            "<BBBBHHHIIIHIIHHIB", STATUS_VERSION, flags, self.imu_mask, self.battery_pct,
            self.battery_mv, int(self.rate_hz), st.fill_permille(),
            0xFFFFFFFF if o is None else o, 0 if n is None else n,
            time.ticks_diff(time.ticks_ms(), self._boot_ms) // 1000, self.mtu,
            st.overflow_samples, self.notify_busy, self.imu_errors & 0xFFFF,
            self.connections & 0xFFFF, self.boot_id, len(fw)) + fw + struct.pack(
            "<BBBH", sec, self.secrets.count(SEC_PEER), self.max_bonds, self.pairing_left_s()) \
            + self._prev_status()

    def _prev_status(self):
        """Status version 4: the previous boot's kept day log (protocol/SPEC.md "Boots")."""
        dl = self.daylog
        if dl is None or not dl.pboot:
            return struct.pack("<IIIHIQ", 0, 0xFFFFFFFF, 0, 0, 0, 0)
        o = dl.prev_oldest_seq()
        n = dl.prev_next_seq()
        k = dl.prev_packets()
        return struct.pack("<IIIHIQ", dl.pboot, 0xFFFFFFFF if o is None else o,
                           0 if n is None else n, k if k < 0xFFFF else 0xFFFF,
                           dl.pend_t & 0xFFFFFFFF, dl.pepoch)

    def write_status(self, notify=False):
        value = self.status_bytes()
        self.ble.gatts_write(self.h_status, value)
        if notify and self.conn is not None:
            try:
                self.ble.gatts_notify(self.conn, self.h_status, value)
            except OSError:
                self.notify_busy += 1


class BondStore:
    """Bonding keys for ``_IRQ_GET_SECRET`` / ``_IRQ_SET_SECRET``, kept in a file.

    The stack treats them as opaque ``(sec_type, key) -> value`` records; this keeps them
    in a dict and rewrites the file (one record per line, hex) on every change, so bonds
    survive a reboot. ``path`` None keeps them in RAM.
    """

    def __init__(self, path, max_entries=64):
        self.path = path
        self.max_entries = max_entries
        self.entries = []  # [(sec_type, key bytes, value bytes)], oldest first
        if path:
            try:
                with open(path) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) == 3:
                            self.entries.append((int(parts[0]), _unhex(parts[1]), _unhex(parts[2])))
            except OSError:
                pass

    def get(self, sec_type, index, key):
        n = 0
        for t, k, v in self.entries:
            if t != sec_type:
                continue
            if key is None:
                if n == index:
                    return v
                n += 1
            elif k == bytes(key):
                return v
        return None

    def set(self, sec_type, key, value):
        key = bytes(key)
        self.entries = [e for e in self.entries if not (e[0] == sec_type and e[1] == key)]
        if value is not None:
            self.entries.append((sec_type, key, bytes(value)))
            if len(self.entries) > self.max_entries:
                self._evict()
        self._save()
        return True

    def _evict(self):
        """Drop the oldest subscription record (type 3), else the oldest record: bonds go
        last (the bond limit keeps them few)."""
        for i in range(len(self.entries)):
            if self.entries[i][0] == SEC_CCCD:
                self.entries.pop(i)
                return
        self.entries.pop(0)

    def count(self, sec_type):
        """Records of ``sec_type`` (``SEC_PEER``: bonded centrals)."""
        n = 0
        for e in self.entries:
            if e[0] == sec_type:
                n += 1
        return n

    def clear(self):
        """Forget every record (and rewrite the file)."""
        self.entries = []
        self._save()

    def _save(self):
        if self.path:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                for t, k, v in self.entries:
                    f.write("%d %s %s\n" % (t, _hex(k), _hex(v)))
            os.rename(tmp, self.path)  # a reset while writing keeps the old file


def _hex(b):
    return "".join("%02x" % x for x in b) or "-"


def _unhex(s):
    return b"" if s == "-" else bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))
