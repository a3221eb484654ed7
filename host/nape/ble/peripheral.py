"""The radio side of the virtual Nape: a bumble peripheral driven by the firmware's ``bluetooth`` calls.

The firmware (``firmware/ble_app.py`` + ``ble_service.py``) runs unmodified in the unix
MicroPython; its ``bluetooth`` module is ``nape/boardsim/mpy/bluetooth.py``, which
forwards every call over an AF_UNIX socket to :class:`FirmwareBridge`. The bridge owns a
real bumble :class:`~bumble.device.Device` with a GATT server on a
:class:`~nape.ble.radio.VirtualRadio` and turns the calls into bumble operations
(services, advertising, notifications) and bumble events back into MicroPython IRQs.
Nothing of the Nape protocol lives here: it only speaks the MicroPython API.

Bridge frames (both directions): u16 length of (type + payload), u8 type, payload;
little-endian.

firmware -> bridge:
  0x01 HELLO       u16 version                       -> 0x81 HELLO_ACK u8 addr_type, 6B addr, u16 credits
  0x02 CONFIG      u8 key, value                     (1 gap_name utf-8, 2 mtu u16, 3 bond u8,
                                                      4 le_secure u8, 5 mitm u8, 6 io u8, 7 addr_mode u8)
  0x03 REGISTER    services definition               -> 0x83 HANDLES (or 0x92 ERROR)
  0x04 ADVERTISE   u32 interval_us (0 = stop), u8 connectable, u8 n, adv, u8 m, resp
  0x05 NOTIFY      u16 conn, u16 value_handle, u8 kind (0 notify, 1 indicate), data
  0x06 WRITE_LOCAL u16 value_handle, u8 send_update, data
  0x07 DISCONNECT  u16 conn
  0x08 PAIR        u16 conn
  0x09 ACTIVE      u8 on
  0x0B SECRET_REPLY u16 request, u16 n (0xFFFF: None), n bytes   (answer to 0x93)
bridge -> firmware:
  0x90 IRQ         u8 event, event data (see the shim)
  0x91 CREDIT      u16 n: buffers freed for notifications (the firmware starts with HELLO_ACK's)
  0x92 ERROR       utf-8 text
  0x93 SECRET_REQ  u16 request, u8 op (0 get / 1 set), u8 sec_type, u8 index,
                   u16 n (0xFFFF: None), key, u16 m (0xFFFF: None), value
                   -> the firmware's _IRQ_GET_SECRET / _IRQ_SET_SECRET handler answers
  0x94 INPUT       u8 gpio, u8 level: a board input changes (the pair button, ``set_input``)

Bonding keys live in the firmware (MicroPython's secret IRQs, persisted by the firmware),
not in the bridge: bumble's key store for the peripheral is :class:`FirmwareKeyStore`,
which asks the firmware. A bond therefore survives a restart of the virtual device
exactly when the firmware kept its secrets.

REGISTER payload: u8 n_services, per service: u8 uuid_len, uuid (LE), u8 n_chars, per
characteristic: u8 uuid_len, uuid, u16 flags, u8 n_descriptors, per descriptor: u8
uuid_len, uuid, u16 flags. HANDLES: u8 n_services, per service u8 n, n x u16 value
handles (each characteristic's value handle followed by its descriptors', as
MicroPython returns them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

from bumble import hci
from bumble.att import ATT_READ_NOT_PERMITTED_ERROR, ATT_WRITE_NOT_PERMITTED_ERROR, ATT_Error
from bumble.core import UUID
from bumble.device import AdvertisingType, Connection, Device, DeviceConfiguration
from bumble.gatt import Characteristic, CharacteristicValue, Descriptor, Service
from bumble.host import Host
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from .radio import VirtualRadio

log = logging.getLogger(__name__)

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_ENCRYPTION_UPDATE = 28

_FLAG_READ_ENCRYPTED = 0x0200
_FLAG_READ_AUTHENTICATED = 0x0400
_FLAG_WRITE_ENCRYPTED = 0x1000
_FLAG_WRITE_AUTHENTICATED = 0x2000

DEFAULT_ADDRESS = "C0:4E:41:50:45:01"  # static random ("NAPE")
INITIAL_CREDITS = 12  # like NimBLE's pool of notification buffers


def _uuid_from_le(raw: bytes) -> UUID:
    return UUID.from_bytes(bytes(raw))


class FirmwareBridge:
    """Serves one firmware instance at a time on an AF_UNIX socket.

    Args:
        radio: the virtual radio the peripheral lives on.
        address: the peripheral's static random address.
        keystore: path of the peripheral's bonding key store (JSON); None keeps keys
            in memory only.
        on_event: ``fn(kind, **fields)`` for observers (connection, disconnection,
            mtu, firmware_connected, firmware_gone); used by the virtual-device process.
    """

    def __init__(self, radio: VirtualRadio, address: str = DEFAULT_ADDRESS,
                 keystore: str | os.PathLike[str] | None = None,
                 on_event: Callable[..., None] | None = None) -> None:
        self.radio = radio
        self.controller = radio.local_controller("nape-peripheral")
        config = DeviceConfiguration(name="Nape", address=hci.Address(address))
        self.device = Device(config=config, host=Host(self.controller, AsyncPipeSink(self.controller)))
        if keystore is not None:
            from bumble.keys import JsonKeyStore

            self.device.keystore = JsonKeyStore(namespace=address, filename=str(keystore))
        else:
            self.device.keystore = FirmwareKeyStore(self)
        self._secret_req = 0
        self._secret_waiters: dict[int, asyncio.Future] = {}
        self.device.on("connection", self._on_connection)
        self.on_event = on_event or (lambda kind, **kw: None)
        self._writer: asyncio.StreamWriter | None = None
        self._values: dict[int, bytes] = {}
        self._attrs: dict[int, Characteristic | Descriptor] = {}
        self._server: asyncio.AbstractServer | None = None
        self._fw_task: asyncio.Task | None = None
        self._bond = False
        self._le_secure = False
        self._mitm = False
        self._io = 3  # NoInputNoOutput
        self.truncated = 0  # notifications longer than MTU - 3 (bumble would cut them)
        self.notifications = 0
        # connection ids given to the firmware: never reused (bumble reuses HCI handles),
        # so a notification the firmware queued for a link that has since dropped cannot
        # reach the next central
        self._conns: dict[int, Connection] = {}
        self._ids: dict[Connection, int] = {}
        self._next_id = 1
        self.firmware_connected = asyncio.Event()
        self.firmware_gone = asyncio.Event()
        self.device.pairing_config_factory = self._pairing_config
        self._registered: tuple[bytes, bytes] | None = None  # (REGISTER payload, HANDLES answer)
        #: ``fn(value_handle, data)`` for every notification sent (observers, e.g. the
        #: virtual device's record of what went on air); None: no observer.
        self.on_notify: Callable[[int, bytes], None] | None = None

    # --- lifecycle -------------------------------------------------------------------
    async def start(self, path: str | os.PathLike[str]) -> None:
        """Power the peripheral on and listen for the firmware at ``path``."""
        await self.device.power_on()
        p = Path(path)
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        self._server = await asyncio.start_unix_server(self._firmware, str(p))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.device.connections.values()):
            with contextlib.suppress(Exception):
                await conn.disconnect()
        with contextlib.suppress(Exception):
            await self.device.stop_advertising()
        with contextlib.suppress(Exception):
            await self.device.power_off()

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        return PairingConfig(
            sc=self._le_secure, mitm=self._mitm, bonding=self._bond,
            delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability(self._io)),
        )

    # --- firmware socket ---------------------------------------------------------------
    def _send(self, ftype: int, payload: bytes = b"") -> None:
        w = self._writer
        if w is not None and not w.is_closing():
            w.write(struct.pack("<HB", len(payload) + 1, ftype) + payload)

    def _irq(self, event: int, payload: bytes) -> None:
        self._send(0x90, bytes([event]) + payload)

    async def _firmware(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            writer.close()  # one firmware at a time
            return
        self._writer = writer
        self.firmware_gone.clear()
        self.firmware_connected.set()
        self.on_event("firmware_connected")
        try:
            while True:
                hdr = await reader.readexactly(2)
                (n,) = struct.unpack("<H", hdr)
                body = await reader.readexactly(n)
                try:
                    await self._frame(body[0], body[1:])
                except Exception as e:  # report, keep the radio up
                    log.exception("bridge frame 0x%02x failed", body[0])
                    self._send(0x92, str(e).encode()[:200])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writer = None
            self.on_event("firmware_gone")
            self.firmware_gone.set()
            with contextlib.suppress(Exception):
                await self.device.stop_advertising()
            for conn in list(self.device.connections.values()):
                with contextlib.suppress(Exception):
                    await conn.disconnect()
            writer.close()

    async def _frame(self, t: int, p: bytes) -> None:
        if t == 0x05:  # NOTIFY: the hot path
            conn_h, handle, kind = struct.unpack_from("<HHB", p, 0)
            data = p[5:]
            conn = self._conns.get(conn_h)
            attr = self._attrs.get(handle)
            if conn is not None and attr is not None:
                if len(data) > conn.att_mtu - 3:
                    self.truncated += 1
                if kind == 0:
                    await self.device.notify_subscriber(conn, attr, data, force=True)
                    self.notifications += 1
                    if self.on_notify is not None:
                        self.on_notify(handle, data)
                else:
                    asyncio.create_task(self._indicate(conn, attr, data))
            self._send(0x91, struct.pack("<H", 1))
        elif t == 0x01:
            addr = self.device.random_address
            self._send(0x81, bytes([1]) + bytes(reversed(bytes(addr))) + struct.pack("<H", INITIAL_CREDITS))
        elif t == 0x02:
            self._config(p[0], p[1:])
        elif t == 0x03:
            self._send(0x83, self._register(p))
        elif t == 0x04:
            await self._advertise(p)
        elif t == 0x06:
            handle, send_update = struct.unpack_from("<HB", p, 0)
            self._values[handle] = bytes(p[3:])
            attr = self._attrs.get(handle)
            if send_update and attr is not None:
                await self.device.notify_subscribers(attr, bytes(p[3:]))
        elif t == 0x07:
            (conn_h,) = struct.unpack_from("<H", p, 0)
            conn = self._conns.get(conn_h)
            if conn is not None:
                asyncio.create_task(conn.disconnect())
        elif t == 0x08:
            (conn_h,) = struct.unpack_from("<H", p, 0)
            conn = self._conns.get(conn_h)
            if conn is not None:
                asyncio.create_task(self._pair(conn))
        elif t == 0x09:
            if not p[0]:
                await self.device.stop_advertising()
        elif t == 0x0B:
            req, n = struct.unpack_from("<HH", p, 0)
            fut = self._secret_waiters.pop(req, None)
            if fut is not None and not fut.done():
                fut.set_result(None if n == 0xFFFF else bytes(p[4:4 + n]))

    async def secret(self, op: int, sec_type: int, index: int, key: bytes | None,
                     value: bytes | None = None, timeout: float = 2.0) -> bytes | None:
        """Ask the firmware's secret IRQ handler (op 0 get, 1 set)."""
        if self._writer is None:
            return None
        self._secret_req = (self._secret_req + 1) & 0xFFFF
        req = self._secret_req
        fut = asyncio.get_running_loop().create_future()
        self._secret_waiters[req] = fut
        k = b"\xff\xff" if key is None else struct.pack("<H", len(key)) + key
        v = b"\xff\xff" if value is None else struct.pack("<H", len(value)) + value
        self._send(0x93, struct.pack("<HBBB", req, op, sec_type, index) + k + v)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._secret_waiters.pop(req, None)

    def set_input(self, gpio: int, level: int) -> bool:
        """Drive a board input (the machine shim's ``Pin``), e.g. the pair button; False
        when no firmware is connected."""
        if self._writer is None:
            return False
        self._send(0x94, bytes([gpio & 0xFF, 1 if level else 0]))
        return True

    async def _indicate(self, conn: Connection, attr, data: bytes) -> None:
        status = 0
        try:
            await self.device.indicate_subscriber(conn, attr, data, force=True)
        except Exception:
            status = 1
        self._irq(_IRQ_GATTS_INDICATE_DONE, struct.pack("<HHB", self._ids.get(conn, 0), attr.handle, status))

    async def _pair(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.pair()

    def _config(self, key: int, raw: bytes) -> None:
        if key == 1:
            name = raw.decode(errors="replace")
            self.device.name = name
            for svc in self.device.gatt_server.services:
                dn = getattr(svc, "device_name_characteristic", None)
                if dn is not None:
                    dn.value = raw[:248]
        elif key == 2:
            (mtu,) = struct.unpack("<H", raw)
            self.device.gatt_server.max_mtu = max(23, min(517, mtu))
        elif key == 3:
            self._bond = bool(raw[0])
        elif key == 4:
            self._le_secure = bool(raw[0])
        elif key == 5:
            self._mitm = bool(raw[0])
        elif key == 6:
            self._io = raw[0]

    # --- GATT ---------------------------------------------------------------------------
    def _register(self, p: bytes) -> bytes:
        if self._registered is not None:
            # a rebooted firmware registers again: the same table gets the same handles
            # (as on the board, where the stack starts empty and allocates them in order)
            if p != self._registered[0]:
                raise ValueError("a different GATT table after a firmware restart is not supported")
            for h in self._values:
                self._values[h] = b""
            return self._registered[1]
        out = self._register_new(p)
        self._registered = (bytes(p), out)
        return out

    def _register_new(self, p: bytes) -> bytes:
        pos = 0

        def take_uuid() -> UUID:
            nonlocal pos
            n = p[pos]
            u = _uuid_from_le(p[pos + 1: pos + 1 + n])
            pos += 1 + n
            return u

        services, handle_lists = [], []
        n_svc = p[pos]
        pos += 1
        for _ in range(n_svc):
            suuid = take_uuid()
            n_chr = p[pos]
            pos += 1
            chars, per_char = [], []
            for _ in range(n_chr):
                cuuid = take_uuid()
                (flags,) = struct.unpack_from("<H", p, pos)
                pos += 2
                n_desc = p[pos]
                pos += 1
                descs = []
                for _ in range(n_desc):
                    duuid = take_uuid()
                    (dflags,) = struct.unpack_from("<H", p, pos)
                    pos += 2
                    d = Descriptor(duuid, self._permissions(dflags))
                    d.value = CharacteristicValue(read=self._reader(d, dflags), write=self._writer_cb(d, dflags))
                    descs.append(d)
                c = Characteristic(cuuid, Characteristic.Properties(flags & 0xFF),
                                   self._permissions(flags), b"", descriptors=descs)
                c.value = CharacteristicValue(read=self._reader(c, flags), write=self._writer_cb(c, flags))
                chars.append(c)
                per_char.append((c, descs))
            services.append(Service(suuid, chars))
            handle_lists.append(per_char)
        self.device.add_services(services)
        out = bytearray([len(handle_lists)])
        for per_char in handle_lists:
            hs = []
            for c, descs in per_char:
                hs.append(c.handle)
                hs.extend(d.handle for d in descs)
            out.append(len(hs))
            out += struct.pack(f"<{len(hs)}H", *hs)
            for c, descs in per_char:
                self._attrs[c.handle] = c
                self._values[c.handle] = b""
                for d in descs:
                    self._attrs[d.handle] = d
                    self._values[d.handle] = b""
        return bytes(out)

    @staticmethod
    def _permissions(flags: int) -> Characteristic.Permissions:
        perm = Characteristic.Permissions(0)
        if flags & 0x02:
            perm |= Characteristic.Permissions.READABLE
        if flags & 0x0C:
            perm |= Characteristic.Permissions.WRITEABLE
        if flags & _FLAG_READ_ENCRYPTED:
            perm |= Characteristic.Permissions.READ_REQUIRES_ENCRYPTION
        if flags & _FLAG_READ_AUTHENTICATED:
            perm |= Characteristic.Permissions.READ_REQUIRES_AUTHENTICATION
        if flags & _FLAG_WRITE_ENCRYPTED:
            perm |= Characteristic.Permissions.WRITE_REQUIRES_ENCRYPTION
        if flags & _FLAG_WRITE_AUTHENTICATED:
            perm |= Characteristic.Permissions.WRITE_REQUIRES_AUTHENTICATION
        return perm

    # bumble's server does not check the READABLE / WRITEABLE permissions; NimBLE does
    def _reader(self, attr, flags: int):
        def read(_connection):
            if not flags & 0x02:
                raise ATT_Error(ATT_READ_NOT_PERMITTED_ERROR, attr.handle)
            return self._values.get(attr.handle, b"")
        return read

    def _writer_cb(self, attr, flags: int):
        def write(connection, value):
            if not flags & 0x0C:
                raise ATT_Error(ATT_WRITE_NOT_PERMITTED_ERROR, attr.handle)
            data = bytes(value)
            self._values[attr.handle] = data
            self._irq(_IRQ_GATTS_WRITE, struct.pack("<HH", self._ids.get(connection, 0), attr.handle) + data)
        return write

    # --- GAP ------------------------------------------------------------------------------
    async def _advertise(self, p: bytes) -> None:
        interval_us, connectable = struct.unpack_from("<IB", p, 0)
        if interval_us == 0:
            await self.device.stop_advertising()
            return
        n = p[5]
        adv = bytes(p[6: 6 + n])
        m = p[6 + n]
        resp = bytes(p[7 + n: 7 + n + m])
        ms = max(20.0, interval_us / 1000.0)
        await self.device.start_advertising(
            advertising_type=(AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE if connectable
                              else AdvertisingType.UNDIRECTED_SCANNABLE),
            advertising_data=adv, scan_response_data=resp,
            advertising_interval_min=ms, advertising_interval_max=ms,
        )

    def _on_connection(self, conn: Connection) -> None:
        if conn.role != hci.Role.PERIPHERAL:
            return
        cid = self._next_id
        self._next_id = self._next_id % 0xEFFF + 1
        self._conns[cid] = conn
        self._ids[conn] = cid
        addr = conn.peer_address
        info = bytes([addr.address_type]) + bytes(reversed(bytes(addr)))
        self._irq(_IRQ_CENTRAL_CONNECT, struct.pack("<H", cid) + info)
        self.on_event("connection", handle=cid, peer=str(addr))

        def on_disconnection(reason: int) -> None:
            self._conns.pop(cid, None)
            self._ids.pop(conn, None)
            self._irq(_IRQ_CENTRAL_DISCONNECT, struct.pack("<H", cid) + info)
            self.on_event("disconnection", handle=cid, reason=reason)

        def on_mtu() -> None:
            self._irq(_IRQ_MTU_EXCHANGED, struct.pack("<HH", cid, conn.att_mtu))
            self.on_event("mtu", handle=cid, mtu=conn.att_mtu)

        def on_encryption() -> None:
            self._irq(_IRQ_ENCRYPTION_UPDATE, struct.pack(
                "<HBBBB", cid, 1 if conn.encryption else 0, 1 if conn.authenticated else 0,
                1 if self._bond else 0, conn.encryption_key_size or 16))
            self.on_event("encryption", handle=cid, encrypted=bool(conn.encryption))

        conn.on("disconnection", on_disconnection)
        conn.on("connection_att_mtu_update", on_mtu)
        conn.on("connection_encryption_change", on_encryption)


class FirmwareKeyStore:
    """bumble key store backed by the firmware's ``_IRQ_GET_SECRET`` / ``_IRQ_SET_SECRET``.

    One secret record per bonded peer: ``sec_type`` 2 (NimBLE's peer security record,
    the type the firmware counts bonds by), key = the peer's address (ASCII), value = JSON
    of bumble's ``PairingKeys``. The firmware stores them as opaque bytes, as it would
    NimBLE's records, and may refuse to (outside its pairing window).
    """

    SEC_TYPE = 2

    def __init__(self, bridge: FirmwareBridge) -> None:
        self.bridge = bridge

    async def get(self, name: str):
        from bumble.keys import PairingKeys

        raw = await self.bridge.secret(0, self.SEC_TYPE, 0, name.encode())
        if not raw:
            return None
        return PairingKeys.from_dict(json.loads(raw)["keys"])

    async def update(self, name: str, keys) -> None:
        old = await self.get(name)
        if old is not None:  # bumble updates piecewise: keep what is not replaced
            merged = old.to_dict()
            merged.update({k: v for k, v in keys.to_dict().items() if v is not None})
            data = merged
        else:
            data = keys.to_dict()
        await self.bridge.secret(1, self.SEC_TYPE, 0, name.encode(),
                                 json.dumps({"name": name, "keys": data}).encode())

    async def delete(self, name: str) -> None:
        await self.bridge.secret(1, self.SEC_TYPE, 0, name.encode(), None)

    async def get_all(self):
        from bumble.keys import PairingKeys

        out = []
        for i in range(64):
            raw = await self.bridge.secret(0, self.SEC_TYPE, i, None)
            if not raw:
                break
            rec = json.loads(raw)
            out.append((rec["name"], PairingKeys.from_dict(rec["keys"])))
        return out

    async def delete_all(self) -> None:
        for name, _ in await self.get_all():
            await self.delete(name)

    async def get_resolving_keys(self):
        from bumble.keys import KeyStore

        return await KeyStore.get_resolving_keys(self)  # type: ignore[arg-type]
