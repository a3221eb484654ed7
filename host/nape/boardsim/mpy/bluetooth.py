# ``bluetooth`` for the unix MicroPython: the subset of the ESP32 (NimBLE) API that
# firmware/ble_service.py uses, bridged over a socket to a bumble GATT server.
#
# The unix port has no BLE stack. This module keeps the MicroPython API and semantics
# (value handles from ``gatts_register_services``, local attribute values, 20-byte
# default buffers for central writes, ``gatts_notify`` sending regardless of the CCCD,
# OSError(ENOMEM) when the stack has no buffer for a notification, IRQs as
# ``handler(event, data)`` tuples) and forwards the radio side to the peripheral bridge
# (host/nape/ble/peripheral.py), a real bumble Device + GATT server on a virtual link.
#
# Modes:
#   * bridge: env NAPE_BLE_BRIDGE = path of the bridge's AF_UNIX socket.
#   * loopback (env unset): no radio; tests inject IRQs with ``BLE()._inject(event, data)``
#     and read what was sent from ``BLE()._sent`` (test helpers, not in the real API).
#
# IRQ delivery. On the ESP32 the stack runs the Python handler between bytecodes of the
# main program. Here a background asyncio task reads the bridge socket and calls the
# handler, so the firmware must run under asyncio (and yield) for IRQs to arrive; events
# that arrive while a synchronous call (register, notify) reads the socket are queued
# and run through ``micropython.schedule``, i.e. between bytecodes, as on the board.
# Without asyncio, ``BLE()._poll(timeout_ms)`` (test helper) delivers pending events.
#
# Bridge frames, both directions: u16 length (of type + payload, little-endian),
# u8 type, payload. See host/nape/ble/peripheral.py for the list.

import os
import struct
import socket
import select
import errno
import micropython
from micropython import const

FLAG_BROADCAST = const(0x0001)
FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)
FLAG_AUTHENTICATED_SIGNED_WRITE = const(0x0040)
FLAG_AUX_WRITE = const(0x0100)
FLAG_READ_ENCRYPTED = const(0x0200)
FLAG_READ_AUTHENTICATED = const(0x0400)
FLAG_READ_AUTHORIZED = const(0x0800)
FLAG_WRITE_ENCRYPTED = const(0x1000)
FLAG_WRITE_AUTHENTICATED = const(0x2000)
FLAG_WRITE_AUTHORIZED = const(0x4000)

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_CONNECTION_UPDATE = const(27)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)

# frame types, firmware -> bridge
_F_HELLO = const(0x01)
_F_CONFIG = const(0x02)
_F_REGISTER = const(0x03)
_F_ADVERTISE = const(0x04)
_F_NOTIFY = const(0x05)
_F_WRITE_LOCAL = const(0x06)
_F_DISCONNECT = const(0x07)
_F_PAIR = const(0x08)
_F_ACTIVE = const(0x09)
_F_PASSKEY = const(0x0A)
_F_SECRET_REPLY = const(0x0B)
# bridge -> firmware
_F_HELLO_ACK = const(0x81)
_F_HANDLES = const(0x83)
_F_IRQ = const(0x90)
_F_CREDIT = const(0x91)
_F_ERROR = const(0x92)
_F_SECRET_REQ = const(0x93)
_F_INPUT = const(0x94)  # u8 gpio, u8 level: a board input (the pair button) changes

_PROTO_VERSION = const(1)
_DEFAULT_BUFFER = const(20)  # MicroPython's default characteristic buffer (bytes)

_CONFIG_KEYS = {"gap_name": 1, "mtu": 2, "bond": 3, "le_secure": 4, "mitm": 5, "io": 6,
                "addr_mode": 7}


class UUID:
    """16-bit (int) or 128-bit (str "xxxxxxxx-xxxx-...") UUID."""

    def __init__(self, value):
        if isinstance(value, UUID):
            self._b = value._b
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._b = struct.pack("<H", value)
        elif isinstance(value, str):
            h = value.replace("-", "")
            if len(h) != 32:
                raise ValueError("invalid UUID")
            be = bytes(int(h[i:i + 2], 16) for i in range(0, 32, 2))
            self._b = bytes(reversed(be))  # stored little-endian, as on air
        elif isinstance(value, (bytes, bytearray)) and len(value) in (2, 4, 16):
            self._b = bytes(value)
        else:
            raise ValueError("invalid UUID")

    def __eq__(self, other):
        return isinstance(other, UUID) and other._b == self._b

    def __hash__(self):
        return hash(self._b)

    def __repr__(self):
        if len(self._b) == 2:
            return "UUID(0x%04x)" % struct.unpack("<H", self._b)[0]
        h = "".join("%02x" % x for x in reversed(self._b))
        return "UUID('%s-%s-%s-%s-%s')" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def _sockaddr_un(path):
    return struct.pack("H", socket.AF_UNIX) + path.encode() + bytes(1)


class BLE:
    _instance = None

    def __new__(cls):  # singleton, as on the board
        if BLE._instance is None:
            o = object.__new__(cls)
            o._setup()
            BLE._instance = o
        return BLE._instance

    def __init__(self):
        pass

    def _setup(self):
        self._active = False
        self._irq = None
        self._values = {}  # value handle -> bytes (local attribute store)
        self._buflen = {}  # value handle -> max length of a central write
        self._append = {}  # value handle -> append mode
        self._config = {"gap_name": "MPY BTSTACK", "mtu": 23, "rxbuf": 256,
                        "bond": False, "le_secure": False, "mitm": False, "io": 3,
                        "addr_mode": 0}
        self._mac = (0, b"\x00" * 6)
        self._credits = 8
        self._pending = []  # IRQs read during synchronous calls
        self._scheduled = False
        self._rx = b""
        self._sock = None
        self._task = None
        self._sent = []  # loopback: (kind, args) of everything sent (test helper)
        self._fail_notify = 0  # loopback: refuse this many notifications with ENOMEM (test helper)
        self._next_handle = 1
        self.stats = {"notify": 0, "enomem": 0, "irq": 0}  # test helper
        path = os.getenv("NAPE_BLE_BRIDGE")
        if path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(_sockaddr_un(path))
            self._sock = s
            self._poller = select.poll()
            self._poller.register(s, select.POLLIN)
            self._send(_F_HELLO, struct.pack("<H", _PROTO_VERSION))
            t, p = self._wait_reply(_F_HELLO_ACK)
            self._mac = (p[0], bytes(p[1:7]))
            self._credits = struct.unpack_from("<H", p, 7)[0]
            s.setblocking(False)

    # --- socket plumbing -----------------------------------------------------------
    def _send(self, ftype, payload=b""):
        if self._sock is None:
            return
        frame = struct.pack("<HB", len(payload) + 1, ftype) + payload
        mv = memoryview(frame)
        off = 0
        while off < len(frame):
            try:
                n = self._sock.send(mv[off:])
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    raise
                self._poller.modify(self._sock, select.POLLOUT)
                self._poller.poll(100)
                self._poller.modify(self._sock, select.POLLIN)
                continue
            off += n

    def _read_available(self, timeout_ms=0):
        """Read what the socket has; return parsed frames [(type, payload)]."""
        if self._sock is None:
            return []
        if timeout_ms and not self._poller.poll(timeout_ms):
            return []
        while True:
            try:
                chunk = self._sock.recv(4096)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                raise
            if chunk is None:
                break
            if not chunk:
                raise OSError(errno.ECONNRESET)  # bridge gone: the radio is off
            self._rx += chunk
            if len(chunk) < 4096:
                break
        return self._parse()

    def _parse(self):
        out = []
        rx = self._rx
        pos = 0
        while len(rx) - pos >= 3:
            n = struct.unpack_from("<H", rx, pos)[0]
            if len(rx) - pos - 2 < n:
                break
            out.append((rx[pos + 2], rx[pos + 3:pos + 2 + n]))
            pos += 2 + n
        self._rx = rx[pos:]
        return out

    def _wait_reply(self, want):
        self._sock.setblocking(True)
        try:
            while True:
                chunk = self._sock.recv(4096)
                if not chunk:
                    raise OSError(errno.ECONNRESET)
                self._rx += chunk
                for t, p in self._parse():
                    if t == want:
                        return t, p
                    if t == _F_ERROR:
                        raise OSError(errno.EINVAL)
                    self._handle_frame(t, p, queue=True)
        finally:
            self._sock.setblocking(False)

    def _handle_frame(self, t, p, queue):
        if t == _F_CREDIT:
            self._credits += struct.unpack_from("<H", p, 0)[0]
        elif t == _F_IRQ:
            ev, data = self._decode_irq(p)
            if ev is None:
                return
            if queue:
                self._pending.append((ev, data))
                if not self._scheduled:
                    self._scheduled = True
                    try:
                        micropython.schedule(self._run_pending, None)
                    except RuntimeError:
                        self._scheduled = False  # queue full: the pump delivers them
            else:
                self._dispatch(ev, data)
        elif t == _F_SECRET_REQ:
            self._secret(p)  # the stack needs the answer now: call the handler directly
        elif t == _F_INPUT:
            import machine  # the shim beside this file

            machine.Pin.drive_gpio(p[0], p[1])

    def _secret(self, p):
        # u16 req, u8 op (0 get, 1 set), u8 sec_type, u8 index, u16 key_len (0xFFFF: None),
        # key, u16 value_len (0xFFFF: None), value
        req, op, sec_type, index, klen = struct.unpack_from("<HBBBH", p, 0)
        pos = 7
        key = None
        if klen != 0xFFFF:
            key = memoryview(bytes(p[pos:pos + klen]))
            pos += klen
        vlen = struct.unpack_from("<H", p, pos)[0]
        pos += 2
        value = None if vlen == 0xFFFF else memoryview(bytes(p[pos:pos + vlen]))
        result = None
        if self._irq is not None:
            if op == 0:
                result = self._irq(_IRQ_GET_SECRET, (sec_type, index, key))
            else:
                result = self._irq(_IRQ_SET_SECRET, (sec_type, key, value))
        if op == 0:
            out = b"\xff\xff" if result is None else struct.pack("<H", len(result)) + bytes(result)
        else:
            out = struct.pack("<H", 1) + (b"\x01" if result else b"\x00")
        self._send(_F_SECRET_REPLY, struct.pack("<H", req) + out)

    def _decode_irq(self, p):
        ev = p[0]
        if ev in (_IRQ_CENTRAL_CONNECT, _IRQ_CENTRAL_DISCONNECT):
            conn, at = struct.unpack_from("<HB", p, 1)
            return ev, (conn, at, memoryview(bytes(p[4:10])))
        if ev == _IRQ_GATTS_WRITE:
            conn, handle = struct.unpack_from("<HH", p, 1)
            self._store_remote_write(handle, bytes(p[5:]))
            return ev, (conn, handle)
        if ev == _IRQ_MTU_EXCHANGED:
            return ev, struct.unpack_from("<HH", p, 1)
        if ev == _IRQ_CONNECTION_UPDATE:
            return ev, struct.unpack_from("<HHHHB", p, 1)
        if ev == _IRQ_ENCRYPTION_UPDATE:
            conn, enc, auth, bonded, ks = struct.unpack_from("<HBBBB", p, 1)
            return ev, (conn, bool(enc), bool(auth), bool(bonded), ks)
        if ev == _IRQ_GATTS_INDICATE_DONE:
            return ev, struct.unpack_from("<HHB", p, 1)
        if ev == _IRQ_PASSKEY_ACTION:
            return ev, struct.unpack_from("<HBI", p, 1)
        return None, None

    def _store_remote_write(self, handle, data):
        cap = self._buflen.get(handle, _DEFAULT_BUFFER)
        if self._append.get(handle):
            data = (self._values.get(handle, b"") + data)[-cap:]
        self._values[handle] = data[:cap]

    def _dispatch(self, ev, data):
        self.stats["irq"] += 1
        if self._irq is not None:
            self._irq(ev, data)

    def _run_pending(self, _):
        self._scheduled = False
        while self._pending:
            ev, data = self._pending.pop(0)
            self._dispatch(ev, data)

    async def _pump(self):
        import asyncio
        reader = asyncio.StreamReader(self._sock)
        while True:
            self._run_pending(None)
            chunk = await reader.read(4096)
            if chunk is None:
                continue
            if not chunk:
                raise OSError(errno.ECONNRESET)
            self._rx += chunk
            for t, p in self._parse():
                self._handle_frame(t, p, queue=False)

    def _poll(self, timeout_ms=0):
        """Test helper: deliver pending IRQs (for code that does not run asyncio)."""
        self._run_pending(None)
        for t, p in self._read_available(timeout_ms):
            self._handle_frame(t, p, queue=False)

    def _inject(self, event, data):
        """Test helper (loopback): raise an IRQ as if the stack had."""
        if event == _IRQ_GATTS_WRITE and len(data) == 3:
            conn, handle, value = data
            self._store_remote_write(handle, bytes(value))
            data = (conn, handle)
        self._dispatch(event, data)

    # --- MicroPython API -----------------------------------------------------------
    def active(self, *args):
        if args:
            on = bool(args[0])
            if on != self._active:
                self._active = on
                self._send(_F_ACTIVE, bytes((1 if on else 0,)))
                if on and self._sock is not None and self._task is None:
                    try:
                        import asyncio
                        self._task = asyncio.create_task(self._pump())
                    except ImportError:
                        pass
        return self._active

    def config(self, *args, **kwargs):
        if args:
            key = args[0]
            if key == "mac":
                return self._mac
            if key in self._config:
                return self._config[key]
            raise ValueError("unknown config param")
        for key, value in kwargs.items():
            if key not in self._config:
                raise ValueError("unknown config param")
            self._config[key] = value
            code = _CONFIG_KEYS.get(key)
            if code is None:
                continue
            if key == "gap_name":
                raw = value.encode() if isinstance(value, str) else bytes(value)
            elif key == "mtu":
                raw = struct.pack("<H", value)
            else:
                raw = bytes((int(value),))
            self._send(_F_CONFIG, bytes((code,)) + raw)

    def irq(self, handler):
        self._irq = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if interval_us is None:
            self._send(_F_ADVERTISE, struct.pack("<IB", 0, 0) + b"\x00\x00")
            self._sent.append(("advertise", None))
            return
        adv = bytes(adv_data or b"")
        resp = bytes(resp_data or b"")
        if len(adv) > 31 or len(resp) > 31:
            raise OSError(errno.EINVAL)
        self._send(_F_ADVERTISE, struct.pack("<IB", interval_us, 1 if connectable else 0)
                   + bytes((len(adv),)) + adv + bytes((len(resp),)) + resp)
        self._sent.append(("advertise", (interval_us, adv, resp, connectable)))

    def gap_disconnect(self, conn_handle):
        self._send(_F_DISCONNECT, struct.pack("<H", conn_handle))
        self._sent.append(("disconnect", conn_handle))
        return True

    def gap_pair(self, conn_handle):
        self._send(_F_PAIR, struct.pack("<H", conn_handle))

    def gap_passkey(self, conn_handle, action, passkey):
        self._send(_F_PASSKEY, struct.pack("<HBI", conn_handle, action, passkey))

    def gatts_register_services(self, services):
        if not self._active:
            raise OSError(errno.EPERM)
        out = bytearray()
        out.append(len(services))
        for svc in services:
            uuid, chars = svc[0], svc[1]
            out.append(len(uuid._b))
            out += uuid._b
            out.append(len(chars))
            for ch in chars:
                out.append(len(ch[0]._b))
                out += ch[0]._b
                out += struct.pack("<H", ch[1])
                descs = ch[2] if len(ch) > 2 else ()
                out.append(len(descs))
                for d in descs:
                    out.append(len(d[0]._b))
                    out += d[0]._b
                    out += struct.pack("<H", d[1])
        if self._sock is not None:
            self._send(_F_REGISTER, bytes(out))
            t, p = self._wait_reply(_F_HANDLES)
            handles = []
            pos = 1
            for _ in range(p[0]):
                n = p[pos]
                pos += 1
                handles.append(tuple(struct.unpack_from("<%dH" % n, p, pos)))
                pos += 2 * n
        else:
            handles = []
            for svc in services:
                hs = []
                self._next_handle += 1  # service declaration
                for ch in svc[1]:
                    self._next_handle += 1  # characteristic declaration
                    hs.append(self._next_handle)
                    self._next_handle += 1
                    if ch[1] & (FLAG_NOTIFY | FLAG_INDICATE):
                        self._next_handle += 1  # CCCD
                    for _ in (ch[2] if len(ch) > 2 else ()):
                        hs.append(self._next_handle)
                        self._next_handle += 1
                handles.append(tuple(hs))
            self._sent.append(("register", handles, [
                (repr(svc[0]), [(repr(ch[0]), ch[1]) for ch in svc[1]]) for svc in services]))
        for hs in handles:
            for h in hs:
                self._values[h] = b""
        return tuple(handles)

    def gatts_read(self, value_handle):
        return self._values.get(value_handle, b"")

    def gatts_write(self, value_handle, data, send_update=False):
        data = bytes(data)
        self._values[value_handle] = data
        self._send(_F_WRITE_LOCAL, struct.pack("<HB", value_handle, 1 if send_update else 0) + data)

    def gatts_set_buffer(self, value_handle, length, append=False):
        self._buflen[value_handle] = length
        self._append[value_handle] = append

    def _notify(self, kind, conn_handle, value_handle, data):
        if data is None:
            data = self._values.get(value_handle, b"")
        if self._sock is None:
            if self._fail_notify > 0:
                self._fail_notify -= 1
                self.stats["enomem"] += 1
                raise OSError(errno.ENOMEM)
            self._sent.append((kind, (conn_handle, value_handle, bytes(data))))
            self.stats["notify"] += 1
            return
        if self._credits <= 0:
            for t, p in self._read_available():
                self._handle_frame(t, p, queue=True)
            if self._credits <= 0:
                self.stats["enomem"] += 1
                raise OSError(errno.ENOMEM)
        self._credits -= 1
        self.stats["notify"] += 1
        self._send(_F_NOTIFY, struct.pack("<HHB", conn_handle, value_handle,
                                          0 if kind == "notify" else 1) + data)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._notify("notify", conn_handle, value_handle, data)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._notify("indicate", conn_handle, value_handle, data)
