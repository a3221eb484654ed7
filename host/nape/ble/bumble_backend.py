"""A bleak backend over bumble: bleak's public API on a bumble host stack, no adapter needed.

Pass the classes as ``backend=`` to bleak, and the bumble HCI transport as ``bumble=``::

    from bleak import BleakClient, BleakScanner
    from nape.ble.bumble_backend import BumbleClient, BumbleScanner

    args = {"transport": "unix:/run/user/1000/nape/radio.sock"}
    dev = await BleakScanner.find_device_by_name("Nape", backend=BumbleScanner, bumble=args)
    async with BleakClient(dev, backend=BumbleClient, bumble=args) as client:
        await client.start_notify(STREAM_UUID, on_value)

Each scanner and each client opens its own HCI transport and bumble
:class:`~bumble.device.Device` (on the virtual radio: its own controller), powers it on,
and closes it again on ``stop()`` / ``disconnect()`` (a client keeps it across a lost
link, so reconnecting skips that; call ``disconnect()`` or use ``async with`` to release
it), so nothing stays open after ``asyncio.run()`` returns. Discovered services are
cached per peer and reused while the peer's Database Hash is unchanged. The transport may be any bumble transport name (``unix:``,
``tcp-client:``, ``usb:0`` for a real controller, ...).

``bumble`` options (dict, all optional except ``transport``; the ``NAPE_BUMBLE_TRANSPORT``
environment variable is the default transport):

* ``transport``: bumble transport name.
* ``address``: this central's static random address (default: random per session;
  give a fixed one, with ``keystore``, to keep bonds across sessions).
* ``keystore``: path of a JSON key store for bonding keys (bumble's default location
  is never used; without it keys live in memory for the session).
* ``mtu``: ATT MTU requested right after connecting (default 517, what BlueZ asks);
  0 keeps the default 23. ``BleakClient.mtu_size`` gives the negotiated value.
* ``io_capability``: SMP IO capability for pairing (default NoInputNoOutput).
* ``secure_connections`` / ``bonding`` / ``mitm``: pairing requirements (default
  True / True / False).

bleak's other keyword arguments (``bluez=``, ``cb=``, ``winrt=``, ...) are accepted and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_16, normalize_uuid_32
from bumble import hci
from bumble.att import ATT_Error
from bumble.core import TimeoutError as CoreTimeoutError
from bumble.device import Connection, Device, DeviceConfiguration, Peer
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

log = logging.getLogger(__name__)

ENV_TRANSPORT = "NAPE_BUMBLE_TRANSPORT"

# (transport, peer address) -> (Database Hash, services): GATT robust caching
_GATT_CACHE: dict[tuple[str, str], tuple[bytes, list]] = {}


@dataclass
class BumbleArgs:
    transport: str
    address: str | None = None
    keystore: str | None = None
    mtu: int = 517
    io_capability: int = PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
    secure_connections: bool = True
    bonding: bool = True
    mitm: bool = False

    @classmethod
    def from_kwargs(cls, bumble: dict | None) -> BumbleArgs:
        opts = dict(bumble or {})
        transport = opts.pop("transport", None) or os.environ.get(ENV_TRANSPORT)
        if not transport:
            raise BleakError(
                f"bumble backend: no transport (pass bumble={{'transport': ...}} or set {ENV_TRANSPORT})")
        unknown = set(opts) - set(cls.__dataclass_fields__)
        if unknown:
            raise BleakError(f"bumble backend: unknown options {sorted(unknown)}")
        return cls(transport=transport, **opts)


def random_static_address() -> str:
    b = bytearray(secrets.token_bytes(6))
    b[0] |= 0xC0  # static random: two top bits set
    return ":".join(f"{x:02X}" for x in b)


class _Session:
    """One bumble host (Device) on its own HCI transport."""

    def __init__(self, args: BumbleArgs, name: str) -> None:
        self.args = args
        self.name = name
        self.transport = None
        self.device: Device | None = None

    async def open(self) -> Device:
        try:
            self.transport = await open_transport(self.args.transport)
        except (OSError, Exception) as e:  # bumble raises its own types too
            raise BleakError(f"bumble transport {self.args.transport!r} unavailable: {e}") from e
        address = self.args.address or self._identity()
        config = DeviceConfiguration(name=self.name, address=hci.Address(address))
        device = Device.from_config_with_hci(config, self.transport.source, self.transport.sink)
        if self.args.keystore:
            from bumble.keys import JsonKeyStore

            device.keystore = JsonKeyStore(namespace=address, filename=str(self.args.keystore))
        a = self.args
        device.pairing_config_factory = lambda _c: PairingConfig(
            sc=a.secure_connections, mitm=a.mitm, bonding=a.bonding,
            delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability(a.io_capability)),
        )
        try:
            await device.power_on()
        except BaseException:
            await self.close()
            raise
        self.device = device
        return device

    def _identity(self) -> str:
        """A random static address; with a key store, the same one every session (bonds are
        per address), kept next to it in ``<keystore>.address``."""
        if not self.args.keystore:
            return random_static_address()
        from pathlib import Path

        p = Path(str(self.args.keystore) + ".address")
        try:
            return str(hci.Address(p.read_text().strip())).split("/")[0]
        except (OSError, ValueError, Exception):
            addr = random_static_address()
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(addr + "\n")
            return addr

    @property
    def terminated(self) -> asyncio.Future | None:
        return getattr(self.transport.source, "terminated", None) if self.transport else None

    async def close(self) -> None:
        t, self.transport, self.device = self.transport, None, None
        if t is not None:
            with contextlib.suppress(Exception):
                await t.close()


# --- advertising data ------------------------------------------------------------------
def _uuid_str(raw: bytes) -> str:
    if len(raw) == 2:
        return normalize_uuid_16(int.from_bytes(raw, "little"))
    if len(raw) == 4:
        return normalize_uuid_32(int.from_bytes(raw, "little"))
    h = raw[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_adv(data: bytes) -> dict[str, Any]:
    """Name, service UUIDs, manufacturer and service data, TX power from AD structures."""
    out: dict[str, Any] = {"name": None, "uuids": [], "mfr": {}, "sdata": {}, "tx": None}
    pos = 0
    while pos < len(data):
        n = data[pos]
        if n == 0 or pos + 1 + n > len(data):
            break
        t, v = data[pos + 1], bytes(data[pos + 2: pos + 1 + n])
        pos += 1 + n
        if t in (0x08, 0x09):
            if t == 0x09 or out["name"] is None:
                out["name"] = v.decode(errors="replace")
        elif t in (0x02, 0x03):
            out["uuids"] += [_uuid_str(v[i:i + 2]) for i in range(0, len(v) - 1, 2)]
        elif t in (0x04, 0x05):
            out["uuids"] += [_uuid_str(v[i:i + 4]) for i in range(0, len(v) - 3, 4)]
        elif t in (0x06, 0x07):
            out["uuids"] += [_uuid_str(v[i:i + 16]) for i in range(0, len(v) - 15, 16)]
        elif t == 0xFF and len(v) >= 2:
            out["mfr"][int.from_bytes(v[:2], "little")] = v[2:]
        elif t == 0x16 and len(v) >= 2:
            out["sdata"][_uuid_str(v[:2])] = v[2:]
        elif t == 0x0A and v:
            out["tx"] = struct.unpack("b", v[:1])[0]
    return out


@dataclass(frozen=True)
class BumbleDetails:
    """``BLEDevice.details`` of devices found by :class:`BumbleScanner`."""

    address: hci.Address
    transport: str


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend on a bumble host."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        bumble: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._args = BumbleArgs.from_kwargs(bumble)
        self._active = scanning_mode != "passive"
        self._session: _Session | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._session = _Session(self._args, "nape-scanner")
        device = await self._session.open()
        device.on("advertisement", self._on_advertisement)
        await device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        s, self._session = self._session, None
        if s is None:
            return
        if s.device is not None:
            with contextlib.suppress(Exception):
                await s.device.stop_scanning()
        await s.close()

    def _on_advertisement(self, adv) -> None:
        raw = adv.data_bytes
        if adv.is_scan_response and adv.data is not None:
            # bumble merged the advertisement with its scan response in ``data`` only
            raw = b"".join(bytes((len(v) + 1, int(t))) + bytes(v) for t, v in adv.data.ad_structures)
        ad = parse_adv(raw)
        uuids = [u.lower() for u in ad["uuids"]]
        if not self.is_allowed_uuid(uuids):
            return
        data = AdvertisementData(
            local_name=ad["name"], manufacturer_data=ad["mfr"], service_data=ad["sdata"],
            service_uuids=uuids, tx_power=ad["tx"], rssi=adv.rssi, platform_data=(adv,),
        )
        addr = adv.address.to_string(with_type_qualifier=False)
        device = self.create_or_update_device(
            addr, addr, ad["name"], BumbleDetails(adv.address, self._args.transport), data)
        self.call_detection_callbacks(device, data)


_PROPS = [
    (0x01, "broadcast"), (0x02, "read"), (0x04, "write-without-response"), (0x08, "write"),
    (0x10, "notify"), (0x20, "indicate"), (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
]


class BumbleClient(BaseBleakClient):
    """bleak client backend on a bumble host (central role)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        bumble: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout, **kwargs)
        self._args = BumbleArgs.from_kwargs(bumble)
        self._target: hci.Address | None = None
        self._name = None
        if isinstance(address_or_ble_device, BLEDevice):
            self._name = address_or_ble_device.name
            if isinstance(address_or_ble_device.details, BumbleDetails):
                self._target = address_or_ble_device.details.address
        self._service_filter = services
        self._session: _Session | None = None
        self._conn: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._closing = False
        self.paired_once = False  # this connection attempt paired (not bleak API)

    # --- info ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._conn.att_mtu if self._conn is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._conn is not None

    # --- connection -------------------------------------------------------------------
    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._conn is not None:
            return
        self.paired_once = False
        target = self._target
        if target is None:
            try:
                target = hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS)
            except Exception as e:
                raise BleakDeviceNotFoundError(self.address, f"bad address {self.address!r}") from e
        self._closing = False
        try:
            # the HCI session outlives a lost link (a reconnect skips opening and powering on)
            if self._session is None or self._session.device is None:
                await self._close_session()
                self._session = _Session(self._args, "nape-central")
                await self._session.open()
                term = self._session.terminated
                if term is not None:
                    session = self._session
                    term.add_done_callback(lambda _f: self._on_transport_lost(session))
            device = self._session.device
            assert device is not None
            try:
                # the outer limit guards against a controller that never ends a cancelled attempt
                conn = await asyncio.wait_for(device.connect(target, timeout=self._timeout),
                                              self._timeout + 2.0)
            except (asyncio.TimeoutError, CoreTimeoutError) as e:
                raise BleakDeviceNotFoundError(self.address, f"{self.address} not found") from e
            except Exception as e:
                raise BleakError(f"connection to {self.address} failed: {e}") from e
            self._conn = conn
            conn.on("disconnection", self._on_disconnection)
            self._peer = Peer(conn)
            await self._secure(pair)
            if self._args.mtu and self._args.mtu > 23:
                await self._gatt(self._peer.request_mtu(self._args.mtu))
            await self._gatt(self._discover())
        except BaseException:
            await self._teardown(close=True)
            raise

    async def _secure(self, pair: bool) -> None:
        """Encrypt with a stored bond (as OS stacks do for bonded devices), else pair if asked."""
        s, conn = self._session, self._conn
        keys = None
        if s is not None and s.device is not None and s.device.keystore is not None and conn is not None:
            with contextlib.suppress(Exception):
                keys = await s.device.keystore.get(str(conn.peer_address))
        if keys is not None and (keys.ltk or keys.ltk_central):
            try:
                await self._gatt(conn.encrypt())
                return
            except BleakError:
                raise
            except Exception as e:  # e.g. the peripheral lost its bond: pair again if allowed
                log.info("encryption with the stored bond failed: %s", e)
                if not pair:
                    raise BleakError(f"encryption with the stored bond failed: {e}") from e
        if pair:
            await self.pair()

    @property
    def is_encrypted(self) -> bool:
        """The link is encrypted (not part of bleak's API)."""
        return bool(self._conn is not None and self._conn.is_encrypted)

    async def _services(self) -> list:
        """The peer's services with characteristics and descriptors: from the cache when
        the peer's Database Hash (GATT robust caching) is unchanged, else discovered."""
        from bumble.core import UUID
        from bumble.gatt_client import CharacteristicProxy, DescriptorProxy, ServiceProxy

        peer, conn = self._peer, self._conn
        assert peer is not None and conn is not None
        key = (self._args.transport, str(conn.peer_address))
        db_hash = None
        with contextlib.suppress(ATT_Error, Exception):
            values = await peer.read_characteristics_by_uuid(UUID.from_16_bits(0x2B2A))
            db_hash = bytes(values[0]) if values else None
        cached = _GATT_CACHE.get(key)
        client = conn.gatt_client
        if db_hash is not None and cached is not None and cached[0] == db_hash:
            services = []
            for sh, se, su, chars in cached[1]:
                svc = ServiceProxy(client, sh, se, UUID.from_bytes(su))
                for ch_h, ch_e, ch_u, props, descs in chars:
                    ch = CharacteristicProxy(client, ch_h, ch_e, UUID.from_bytes(ch_u), props)
                    ch.descriptors = [DescriptorProxy(client, dh, UUID.from_bytes(du)) for dh, du in descs]
                    ch.descriptors_discovered = True
                    svc.characteristics.append(ch)
                client.services.append(svc)
                services.append(svc)
            return services
        services = await peer.discover_services()
        record = []
        for svc in services:
            chars = []
            for ch in await svc.discover_characteristics():
                descs = await ch.discover_descriptors()
                chars.append((ch.handle, ch.end_group_handle, bytes(ch.uuid.uuid_bytes), int(ch.properties),
                              [(d.handle, bytes(d.type.uuid_bytes)) for d in descs]))
            record.append((svc.handle, svc.end_group_handle, bytes(svc.uuid.uuid_bytes), chars))
        if db_hash is not None:
            _GATT_CACHE[key] = (db_hash, record)
        return services

    async def _discover(self) -> None:
        assert self._peer is not None
        collection = BleakGATTServiceCollection()
        for svc in await self._services():
            su = _uuid_str(bytes(svc.uuid.uuid_bytes))
            if self._service_filter and su not in self._service_filter:
                continue
            bs = BleakGATTService(svc, svc.handle, su)
            collection.add_service(bs)
            for ch in svc.characteristics:
                props = [n for bit, n in _PROPS if ch.properties & bit]
                bc = BleakGATTCharacteristic(
                    ch, ch.handle, _uuid_str(bytes(ch.uuid.uuid_bytes)), props,
                    lambda: self.mtu_size - 3, bs)
                collection.add_characteristic(bc)
                for d in ch.descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(
                        d, d.handle, _uuid_str(bytes(d.type.uuid_bytes)), bc))
        self.services = collection

    def _on_disconnection(self, reason: int) -> None:
        was = self._conn is not None
        self._conn = None
        self._peer = None
        self._subscribers.clear()
        self.services = None
        if was and not self._closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    def _on_transport_lost(self, session: _Session) -> None:
        """The HCI transport died (the radio went away): the session is unusable."""
        if session is not self._session:
            return
        self._session = None
        asyncio.get_running_loop().create_task(session.close())
        if self._conn is not None:
            self._on_disconnection(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)

    async def _close_session(self) -> None:
        s, self._session = self._session, None
        if s is not None:
            await s.close()

    async def _teardown(self, close: bool) -> None:
        self._conn = None
        self._peer = None
        self._subscribers.clear()
        self.services = None
        if close:
            await self._close_session()

    async def disconnect(self) -> None:
        """Disconnect and release the HCI session (call it after a lost link too)."""
        self._closing = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.disconnect(), 5.0)
        await self._teardown(close=True)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        if self._conn is None:
            raise BleakError("Not connected")
        self.paired_once = True  # (nape's transport: a drop from now on is a refused pairing)
        try:
            await self._gatt(self._conn.pair())
        except BleakError:
            raise
        except Exception as e:
            raise BleakError(f"pairing failed: {e}") from e

    async def unpair(self) -> None:
        s = self._session
        if s is not None and s.device is not None and s.device.keystore is not None:
            with contextlib.suppress(Exception):
                await s.device.keystore.delete(str(self._conn.peer_address if self._conn else self.address))
        await self.disconnect()

    # --- GATT -------------------------------------------------------------------------
    @staticmethod
    async def _gatt(coro):
        """Run a bumble GATT call; ATT errors -> BleakGATTProtocolError, link loss -> BleakError."""
        try:
            return await coro
        except ATT_Error as e:
            raise BleakGATTProtocolError(e.error_code) from e
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise BleakError("disconnected") from None  # bumble cancels requests of a lost link

    def _need(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
                             **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(self._need().read_value(characteristic.obj)))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False,
                                   **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(self._need().read_value(descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data, response: bool) -> None:
        await self._gatt(self._need().write_value(characteristic.obj, bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data) -> None:
        await self._gatt(self._need().write_value(descriptor.obj, bytes(data), with_response=True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        peer = self._need()

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = on_value
        await self._gatt(peer.subscribe(characteristic.obj, on_value, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._need()
        sub = self._subscribers.pop(characteristic.handle, None)
        await self._gatt(peer.unsubscribe(characteristic.obj, sub))
