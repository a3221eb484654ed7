"""BleTransport: the Nape device over BLE, through bleak (real adapter or the bumble backend).

On connect it finds the device (service UUID, optionally name / address), connects,
gets a large ATT MTU, reads the status characteristic (-> :class:`DeviceInfo`),
subscribes to control, status, event and stream, sets the device clock and starts the
stream with a BACKFILL from the oldest stored sample (first connection) or from the
sequence number after the last complete packet it received (reconnections), so the
recorder sees every sample exactly once and in order. When the link drops it reconnects
with exponential back-off until :meth:`close` (or ``give_up_after_s``).

Sequence numbers restart at 0 when the device reboots. The status carries a random
``boot_id`` per boot: when it differs from the last link's, the transport forgets the
old sequence number, asks the new boot for everything it stored (BACKFILL_ALL) and puts
a ``Notification("boot", u32 LE boot_id + f64 epoch + source)`` in the stream first, so the
recorder keeps one sequence space per boot. When the board kept an earlier boot's day log
over a reboot (status ``prev_boot_id``), that comes first: in that boot's sequence space
(the one being recorded, or a ``boot`` marker for it), BACKFILL_PREV, PREV_ACK and
LOG_ACK with the previous-boot bit, and at PREV_END the current boot starts
(``_enter_prev``, ``_after_prev``; protocol/SPEC.md "Boots"). Link events (connected, disconnected, reconnected, reboot) are
also kept as notes for the recording (:meth:`drain_notes`); the reboot note carries what
the old boot had (``lost_samples_at_least``), and a ``buffer_overflow`` note says when
the device no longer holds the samples a reconnection asks for (its ``oldest_seq`` is
past them: the host was away longer than the on-board buffer holds).

Security (protocol/SECURITY.md): a board in secure mode serves only a link encrypted with
a bond it accepted in its pairing window and, when it holds an owner key, a central that
proved the key (``owner_key``; challenge-response on the control characteristic). When
it refuses, connecting raises :class:`~nape.errors.NotBondedError` with one line saying
what to do, and a lost link is not retried once the board refuses.

The stream ends when the device reports END_OF_DATA (a finite source, like the virtual
device's simulated day) and everything up to it has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from .. import wire
from ..errors import DeviceError, NotBondedError
from ..transport import DeviceInfo, Notification, Transport
from . import protocol as P

log = logging.getLogger(__name__)

_END = object()

_ATT_INSUFFICIENT_AUTHENTICATION = 0x05
_ATT_INSUFFICIENT_ENCRYPTION = 0x0F

_OPEN_WINDOW = (f"switch it on, or hold its button {P.PAIR_PRESS_S} s, then run `nape pair` "
                f"within {P.PAIR_WINDOW_S} s")
NOT_BONDED = f"not bonded with this Nape: {_OPEN_WINDOW}"
PAIRING_REFUSED = ("this Nape refused pairing (its pairing window is closed, or it has all "
                   f"the bonds it takes): {_OPEN_WINDOW}")


def owner_key_missing(where: str) -> str:
    return (f"this Nape asks for its owner key and this computer has none ({where}): copy "
            "the key file from the computer that ran `nape flash`, or run `nape flash` again")


def _att_code(e: BaseException) -> int | None:
    """The ATT error code of a bleak GATT error, else None."""
    code = e.args[0] if getattr(e, "args", None) else None
    return code if isinstance(code, int) else None


@dataclass
class LinkStats:
    """What happened on the link (times are ``time.monotonic()`` seconds)."""

    connects: int = 0
    disconnects: int = 0
    reconnect_s: list[float] = field(default_factory=list)  # link lost -> streaming again
    connect_s: list[float] = field(default_factory=list)  # connect() -> streaming
    notifications: int = 0
    stale_notifications: int = 0  # arrived on a new link before its START/BACKFILL answer
    acks: int = 0
    backfill_requests: list[int | None] = field(default_factory=list)  # from_seq of each (None: buffer empty)
    mtu: int = 23
    last_status: P.Status | None = None
    boots: list[int] = field(default_factory=list)  # boot ids seen, in order (a reboot adds one)

    def summary(self) -> dict:
        """JSON-ready figures for the recording's session NOTE (times in ms)."""
        r = sorted(self.reconnect_s)
        st = self.last_status
        return {
            "connects": self.connects, "disconnects": self.disconnects,
            "reconnects": len(r),
            "reconnect_ms_median": round(1000 * r[len(r) // 2], 1) if r else None,
            "reconnect_ms_max": round(1000 * r[-1], 1) if r else None,
            "backfill_requests": len(self.backfill_requests),
            "notifications": self.notifications, "stale_notifications": self.stale_notifications,
            "acks": self.acks, "mtu": self.mtu,
            "boot_ids": [f"{b:08x}" for b in self.boots],
            "device_overflow_samples": st.overflow_samples if st else None,
            "device_buffer_fill_permille": st.buffer_fill_permille if st else None,
        }


def _ahead(a: int | None, b: int | None) -> int:
    """How far u32 sequence number ``a`` is after ``b`` (0 if not after, or unknown)."""
    if a is None or b is None:
        return 0
    d = (a - b) & 0xFFFFFFFF
    return d if d < 0x80000000 else 0


def _was_paired(client) -> bool:
    """The bumble backend paired on this attempt (then a drop is the board's refusal)."""
    backend = getattr(client, "_backend", None)
    return bool(getattr(backend, "paired_once", False))


def backend_kwargs(bumble: dict | None) -> tuple[dict, dict]:
    """(scanner kwargs, client kwargs) for bleak: the bumble backend when ``bumble`` is given."""
    if bumble is None:
        return {}, {}
    from .bumble_backend import BumbleClient, BumbleScanner

    return {"backend": BumbleScanner, "bumble": bumble}, {"backend": BumbleClient, "bumble": bumble}


class BleTransport(Transport):
    """A Nape over BLE (bleak).

    Args:
        address: connect to this address (else the first device advertising the Nape
            service, optionally with ``name``).
        name: advertised name to match (None: any Nape).
        bumble: options for the bumble bleak backend (``{"transport": "unix:..."}``);
            None uses bleak's platform backend (a real adapter).
        backfill: on the first connection, ask for everything the device has buffered
            (True) or only live data (False). Reconnections always backfill the gap.
        scan_timeout, connect_timeout: seconds.
        backoff_initial_s, backoff_max_s: reconnect back-off (doubles per failed attempt).
        give_up_after_s: stop reconnecting after this long without a link (None: never);
            the notification iterator then raises :class:`DeviceError`.
        set_time: send the host clock to the device on every connection.
        ack_interval_s: how often to confirm received samples (CMD_ACK), so the device can
            reuse its buffer; 0 disables (the device then spills everything to flash).
        connect_attempts: tries of the first connection (a link lost during setup).
        pair: pair (LE Secure Connections, bonding) if the link is not encrypted with a
            stored bond; needed for a device in secure mode. With the bumble backend give
            ``bumble={"keystore": path}`` to keep the bond across sessions.
        owner_key: the owner key to prove when the board asks for one (``nape flash``
            provisions it; :func:`nape.ble.owner.load_owner_key`); None: none.
        owner_key_source: where the key was looked for (for the message when it is missing).
        on_link: ``fn(event, **fields)`` for "connected", "disconnected", "reconnected".

    Raises (from connect):
        nape.errors.NotBondedError: the board refuses this computer (message: what to do).
        nape.errors.DeviceError: no device found, connection or setup failed.
    """

    def __init__(self, address: str | None = None, *, name: str | None = None,
                 bumble: dict | None = None, backfill: bool = True, scan_timeout: float = 10.0,
                 connect_timeout: float = 10.0, backoff_initial_s: float = 0.05,
                 backoff_max_s: float = 5.0, give_up_after_s: float | None = None,
                 set_time: bool = True, ack_interval_s: float = 0.5, connect_attempts: int = 3,
                 pair: bool = False, owner_key: bytes | None = None,
                 owner_key_source: str = "no key given",
                 on_link: Callable[..., None] | None = None) -> None:
        self.address = address
        self.name = name
        self.bumble = bumble
        self.backfill = backfill
        self.scan_timeout = scan_timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.give_up_after_s = give_up_after_s
        self.set_time = set_time
        self.ack_interval_s = ack_interval_s
        self.connect_attempts = connect_attempts
        self.pair = pair
        self.owner_key = owner_key
        self.owner_key_source = owner_key_source
        self.on_link = on_link or (lambda event, **kw: None)
        self.stats = LinkStats()
        self._scan_kw, self._client_kw = backend_kwargs(bumble)
        self._device = None  # BLEDevice
        self._client = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._responses: asyncio.Queue = asyncio.Queue()
        self._reasm = wire.Reassembler()
        self._ev_reasm = wire.Reassembler()
        self._windows: dict[int, dict[int, int]] = {}  # event_id -> {first_index: count} received
        self._log_acks: list[bytes] = []  # LOG_ACK commands waiting for the acker
        self._next_seq: int | None = None  # after the last complete SAMPLES packet
        self._end_seq: int | None = None
        self._closing = False
        self._reconnect_task: asyncio.Task | None = None
        self._lost_at: float | None = None
        self._info: DeviceInfo | None = None
        self._accepting = False  # stream data of this link is current (START/BACKFILL answered)
        self._established = False
        self._lost = asyncio.Event()  # the current link went down
        self._bleak = None  # the BleakClient, kept across reconnections
        self._time_set_at: float | None = None
        self._acked: int | None = None
        self._ack_task: asyncio.Task | None = None
        self._boot_id: int | None = None
        # the previous boot's day log kept over a reboot (status version 4): streaming it
        # (BACKFILL_PREV) before the current boot's data; set when it has all arrived
        self._prev_mode = False
        self._prev_end = asyncio.Event()
        self._prev_task: asyncio.Task | None = None
        self._notes: list[dict] = []
        self._attempt = 0  # reconnection attempts since the link was lost

    def link_state(self) -> dict:
        """Where the link stands, for a status line: ``state`` "connecting" (before the
        first link), "streaming", "lost" (reconnecting: ``lost_s`` seconds since,
        ``attempts`` so far, ``backoff_max_s``) or "closed"."""
        if self._closing:
            return {"state": "closed"}
        if not self._established:
            return {"state": "connecting"}
        if self._client is None or not self._accepting:
            lost = time.monotonic() - self._lost_at if self._lost_at is not None else 0.0
            return {"state": "lost", "lost_s": lost, "attempts": self._attempt,
                    "backoff_max_s": self.backoff_max_s}
        return {"state": "streaming"}

    # --- Transport -----------------------------------------------------------------------
    async def connect(self) -> DeviceInfo:
        t0 = time.monotonic()
        self._device = await self._find()
        delay = self.backoff_initial_s
        for attempt in range(1, self.connect_attempts + 1):
            try:
                status = await self._open()
                break
            except DeviceError as e:
                if attempt == self.connect_attempts or isinstance(e, NotBondedError):
                    raise
                await asyncio.sleep(delay)  # e.g. the link dropped during setup
                delay = min(2 * delay, self.backoff_max_s)
        self.stats.connect_s.append(time.monotonic() - t0)
        self._established = True  # from now on a lost link is reconnected
        roles = wire.roles_of(status.imu_mask)
        self._info = DeviceInfo(
            name=self._device.name or "Nape", firmware_version=status.firmware_version,
            imu_roles=roles, rate_hz=float(status.rate_hz),
            extra={"source": "ble", "virtual": bool(self.bumble), "address": self._device.address,
                   "mtu": self.stats.mtu},
        )
        return self._info

    async def notifications(self) -> AsyncIterator[Notification]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        self._closing = True
        if self._ack_task is not None:
            self._ack_task.cancel()
            with contextlib.suppress(BaseException):
                await self._ack_task
            self._ack_task = None
        client = self._client
        if client is not None and self._accepting and (self._log_acks or (
                self._next_seq is not None and self._next_seq != self._acked)):
            with contextlib.suppress(Exception):  # best effort: else the next link confirms
                await asyncio.wait_for(self._final_acks(client), 2.0)
        if self._prev_task is not None and not self._prev_task.done():
            self._prev_task.cancel()
            with contextlib.suppress(BaseException):
                await self._prev_task
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnect_task
            self._reconnect_task = None
        self._client = None
        c, self._bleak = self._bleak, None
        if c is not None:  # also after a lost link: releases the backend's resources
            with contextlib.suppress(Exception):
                await c.disconnect()
        self._queue.put_nowait(_END)

    def drain_notes(self) -> list[dict]:
        notes, self._notes = self._notes, []
        return notes

    def link_summary(self) -> dict:
        return self.stats.summary()

    # --- commands ---------------------------------------------------------------------------
    async def command(self, value: bytes, timeout: float = 5.0) -> P.Response:
        """Write a control command (``protocol.cmd_*``) and wait for its response.

        Raises:
            DeviceError: not connected, no response, or the device refused it.
        """
        client = self._client
        if client is None:
            raise DeviceError("not connected")
        while not self._responses.empty():
            self._responses.get_nowait()
        lost = self._lost
        try:
            await client.write_gatt_char(P.CONTROL_UUID, value, response=True)
            deadline = time.monotonic() + timeout
            while True:
                get = asyncio.ensure_future(self._responses.get())
                gone = asyncio.ensure_future(lost.wait())
                done, _ = await asyncio.wait({get, gone}, timeout=max(0.0, deadline - time.monotonic()),
                                             return_when=asyncio.FIRST_COMPLETED)
                for f in (get, gone):
                    if not f.done():
                        f.cancel()
                if get in done:
                    r = get.result()
                    if r.opcode == value[0]:
                        break
                    continue
                if gone in done:
                    raise DeviceError(f"link lost waiting for the answer to 0x{value[0]:02x}")
                raise asyncio.TimeoutError
        except asyncio.TimeoutError as e:
            raise DeviceError(f"no response to command 0x{value[0]:02x}") from e
        except Exception as e:
            if isinstance(e, DeviceError):
                raise
            raise DeviceError(f"command 0x{value[0]:02x} failed: {e}") from e
        if not r.ok:
            raise DeviceError(f"device refused command 0x{value[0]:02x}: {P.RESULTS.get(r.result, r.result)}")
        return r

    async def read_status(self) -> P.Status:
        if self._client is None:
            raise DeviceError("not connected")
        st = P.parse_status(await self._client.read_gatt_char(P.STATUS_UUID))
        self.stats.last_status = st
        return st

    # --- internals ---------------------------------------------------------------------------
    async def _find(self):
        from bleak import BleakScanner

        def match(d, ad) -> bool:
            if self.address is not None:
                return d.address.lower() == self.address.lower()
            if P.SERVICE_UUID not in [u.lower() for u in ad.service_uuids]:
                return False
            return self.name is None or ad.local_name == self.name

        try:
            dev = await BleakScanner.find_device_by_filter(match, timeout=self.scan_timeout, **self._scan_kw)
        except Exception as e:
            raise DeviceError(f"BLE scan failed ({e}): no Bluetooth adapter reachable through BlueZ? For the simulated device use --virtual") from e
        if dev is None:
            what = self.address or (f"'{self.name}'" if self.name else "a Nape")
            raise DeviceError(f"no BLE device found: {what} (scanned {self.scan_timeout:.0f} s)")
        return dev

    async def _open(self) -> P.Status:
        from bleak import BleakClient

        self._lost = asyncio.Event()
        client = self._bleak
        if client is None:  # one BleakClient per device, reconnected after a loss
            client = self._bleak = BleakClient(
                self._device, disconnected_callback=self._link_down, timeout=self.connect_timeout,
                pair=self.pair, **self._client_kw)
        try:
            await client.connect()
        except Exception as e:
            if "stored bond failed" in str(e):  # the board no longer has our bond
                raise NotBondedError(NOT_BONDED) from e
            if self.pair and _was_paired(client):
                raise NotBondedError(PAIRING_REFUSED) from e  # dropped while / right after pairing
            raise DeviceError(f"cannot connect to {self._device.address}: {e}") from e
        try:
            await self._request_mtu(client)
            self._accepting = False
            self._client = client
            self.stats.mtu = client.mtu_size
            prev = self.stats.last_status  # the old link's newest status (notified every second)
            try:
                raw = await client.read_gatt_char(P.STATUS_UUID)
            except Exception as e:
                if _att_code(e) in (_ATT_INSUFFICIENT_ENCRYPTION, _ATT_INSUFFICIENT_AUTHENTICATION):
                    raise NotBondedError(NOT_BONDED) from e
                if self.pair and not client.is_connected:
                    raise NotBondedError(PAIRING_REFUSED) from e
                raise
            status = P.parse_status(raw)
            if not status.authorized:
                status = await self._settled_status(client, status)
            self.stats.last_status = status
            prev_id = status.prev_boot_id if status.prev_boot_id != status.boot_id else None
            self._prev_mode = prev_id is not None
            if prev_id is not None:  # the board kept an earlier boot's log: it goes first
                self._enter_prev(status)
            rebooted = self._boot_id is not None and status.boot_id != self._boot_id and not self._prev_mode
            if rebooted:  # a new sequence space: what we had is from the old boot
                got, had = self._next_seq, prev.next_seq if prev is not None else None
                self._notes.append({"event": "reboot", "t": time.time(),
                                    "previous_boot_id": f"{self._boot_id:08x}",
                                    "boot_id": f"{status.boot_id:08x}",
                                    # the old boot's samples after what we received are gone
                                    # with its RAM: at least the device's last known next_seq - ours
                                    "previous_received_next_seq": got, "previous_device_next_seq": had,
                                    "lost_samples_at_least": _ahead(had, got)})
                self._next_seq = None
                self._end_seq = None
                self._acked = None
            want = self._next_seq if self._next_seq is not None else (0 if rebooted else None)
            if not self._prev_mode and want is not None and status.oldest_seq is not None \
                    and _ahead(status.oldest_seq, want):
                # the device overwrote what we still need (away longer than its buffer holds)
                self._notes.append({"event": "buffer_overflow", "t": time.time(),
                                    "boot_id": f"{status.boot_id:08x}", "from_seq": want,
                                    "oldest_seq": status.oldest_seq,
                                    "missing_samples_at_least": _ahead(status.oldest_seq, want),
                                    "device_overflow_samples": status.overflow_samples})
            if status.boot_id != self._boot_id and not self._prev_mode:
                self._start_boot(status.boot_id, time.time() - status.uptime_s, "uptime")
            await client.start_notify(P.CONTROL_UUID, self._on_control)
            if not status.authorized:
                await self._authorize(status)
            await client.start_notify(P.STATUS_UUID, self._on_status)
            await client.start_notify(P.EVENT_UUID, self._on_event)
            await client.start_notify(P.STREAM_UUID, self._on_stream)
            if self.set_time and (self._time_set_at is None or time.monotonic() - self._time_set_at > 600):
                await self.command(P.cmd_set_time(int(time.time() * 1000)))
                self._time_set_at = time.monotonic()
            if self._prev_mode:
                want = self._next_seq if self._next_seq is not None else 0
                self._prev_end.clear()
                r = await self.command(P.cmd_backfill_prev(want))
                self.stats.backfill_requests.append(want)
                self._prev_task = asyncio.get_running_loop().create_task(self._after_prev(client))
            elif self._next_seq is not None:
                self.stats.backfill_requests.append(self._next_seq)
                await self.command(P.cmd_backfill(self._next_seq))
            elif self.backfill or rebooted:  # nothing received yet from this boot
                r = await self.command(P.cmd_backfill_all())
                self.stats.backfill_requests.append(r.oldest_seq)
            else:
                await self.command(P.cmd_start())
        except BaseException as e:
            self._client = None
            with contextlib.suppress(Exception):
                await client.disconnect()
            if isinstance(e, DeviceError | asyncio.CancelledError):
                raise
            raise DeviceError(f"setting up {self._device.address} failed: {e}") from e
        self.stats.connects += 1
        self._notes.append({"event": "connected", "t": time.time(), "mtu": self.stats.mtu,
                            "from_seq": self.stats.backfill_requests[-1] if self.stats.backfill_requests else None})
        self.on_link("connected", mtu=self.stats.mtu)
        if self.ack_interval_s and (self._ack_task is None or self._ack_task.done()):
            self._ack_task = asyncio.get_running_loop().create_task(self._acker())
        return status

    def _start_boot(self, boot_id: int, epoch_s: float | None, source: str) -> None:
        """The recorder's next packets belong to boot ``boot_id`` (a ``boot`` notification:
        u32 boot_id, f64 unix s at its device time 0 (NaN: unknown), how that was known)."""
        self._boot_id = boot_id
        self.stats.boots.append(boot_id)
        e = float("nan") if epoch_s is None else float(epoch_s)
        self._queue.put_nowait(Notification("boot", struct.pack("<Id", boot_id, e) + source.encode()))

    def _enter_prev(self, status: P.Status) -> None:
        """The board kept the log of a boot before this one (protocol/SPEC.md "Boots"):
        the recorder goes on in that boot's sequence space (or starts it) for BACKFILL_PREV."""
        pid = status.prev_boot_id
        if pid is None:
            return
        if self._boot_id != pid:
            if self._boot_id is not None:  # we were in an earlier boot still
                self._notes.append({"event": "reboot", "t": time.time(),
                                    "previous_boot_id": f"{self._boot_id:08x}", "boot_id": f"{pid:08x}",
                                    "previous_received_next_seq": self._next_seq,
                                    "previous_device_next_seq": None, "lost_samples_at_least": 0})
            self._next_seq = None
            self._end_seq = None
            self._acked = None
            if status.prev_epoch_ms:
                epoch, source = status.prev_epoch_ms / 1000.0, "board clock"
            else:  # it ended before this boot began: the latest it can have been
                epoch = time.time() - status.uptime_s - (status.prev_last_t_ms or 0) / 1000.0
                source = "latest possible: ended as the next boot began"
            self._start_boot(pid, epoch, source)
        # what follows is what the board kept on flash: its SAMPLES buffer (RAM) went with
        # the reboot, so samples missing from here on were lost with it
        self._notes.append({"event": "previous_boot_log", "t": time.time(), "boot_id": f"{pid:08x}",
                            "from_seq": self._next_seq, "oldest_seq": status.prev_oldest_seq,
                            "next_seq": status.prev_next_seq, "packets": status.prev_packets,
                            "current_boot_id": f"{status.boot_id:08x}"})

    async def _after_prev(self, client) -> None:
        """Once the previous boot's log has all arrived (EVT_PREV_END): confirm it, then
        start the current boot (a ``boot`` notification, BACKFILL_ALL)."""
        lost = self._lost
        try:
            done = asyncio.ensure_future(self._prev_end.wait())
            gone = asyncio.ensure_future(lost.wait())
            await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
            for f in (done, gone):
                f.cancel()
            if lost.is_set() or self._closing or self._client is not client:
                return
            await self._final_acks(client)  # with response: freed on the board before we go on
            status = P.parse_status(await client.read_gatt_char(P.STATUS_UUID))
            self.stats.last_status = status
            prev_id, got = self._boot_id, self._next_seq
            self._prev_mode = False
            self._accepting = False
            self._notes.append({"event": "reboot", "t": time.time(),
                                "previous_boot_id": f"{prev_id:08x}" if prev_id is not None else None,
                                "boot_id": f"{status.boot_id:08x}", "previous_received_next_seq": got,
                                "previous_device_next_seq": got, "lost_samples_at_least": 0,
                                "previous_boot_log": "kept by the board over the reboot"})
            self._next_seq = None
            self._end_seq = None
            self._acked = None
            if status.oldest_seq is not None and status.oldest_seq > 0:
                self._notes.append({"event": "buffer_overflow", "t": time.time(),
                                    "boot_id": f"{status.boot_id:08x}", "from_seq": 0,
                                    "oldest_seq": status.oldest_seq,
                                    "missing_samples_at_least": status.oldest_seq,
                                    "device_overflow_samples": status.overflow_samples})
            self._start_boot(status.boot_id, time.time() - status.uptime_s, "uptime")
            r = await self.command(P.cmd_backfill_all())
            self.stats.backfill_requests.append(r.oldest_seq)
        except Exception as e:  # the link dropped meanwhile: the next link starts again
            log.info("after the previous boot's log: %s", e)

    @staticmethod
    async def _settled_status(client, status: P.Status, wait_s: float = 2.0) -> P.Status:
        """The status once the board has taken in the link's encryption: it rewrites the
        value when its stack reports encryption, which may be just after our first read.
        Returns the first authorized status, or the last one read within ``wait_s``
        (a refused link is dropped by the board meanwhile: the read then fails)."""
        deadline = time.monotonic() + wait_s
        while not status.authorized and not (status.bonded and status.owner_key_required) \
                and time.monotonic() < deadline and client.is_connected:
            await asyncio.sleep(0.1)
            with contextlib.suppress(Exception):
                status = P.parse_status(await client.read_gatt_char(P.STATUS_UUID))
        return status

    async def _authorize(self, status: P.Status) -> None:
        """Prove the owner key if the board asks for it; else say why it refuses.

        Raises:
            NotBondedError: not bonded (or pairing refused), no owner key, or a wrong one.
        """
        refused = PAIRING_REFUSED if self.pair else NOT_BONDED
        if not (status.bonded and status.owner_key_required):
            raise NotBondedError(refused)
        try:
            r = await self.command(P.cmd_auth_challenge())
        except DeviceError as e:  # RES_NOT_AUTHORIZED: the bond itself is not accepted
            raise NotBondedError(refused) from e
        if self.owner_key is None:
            raise NotBondedError(owner_key_missing(self.owner_key_source))
        try:
            await self.command(P.cmd_auth_prove(self.owner_key, r.payload))
        except DeviceError as e:
            raise NotBondedError("this Nape rejected the owner key of this computer "
                                 f"({self.owner_key_source}): it belongs to another Nape; "
                                 "copy the right key file, or run `nape flash` again") from e

    async def _acker(self) -> None:
        """Confirm what arrived, so the device may reuse that part of its buffer."""
        while not self._closing:
            await asyncio.sleep(self.ack_interval_s)
            seq, client, prev = self._next_seq, self._client, self._prev_mode
            while self._log_acks and client is not None and self._accepting:
                try:  # the day log's MARKS packets and EVENT windows received
                    await client.write_gatt_char(P.CONTROL_UUID, self._log_acks[0], response=False)
                    self._log_acks.pop(0)
                except Exception as e:  # unacknowledged: the next link sends them again
                    log.debug("log ack failed: %s", e)
                    break
            if seq is None or seq == self._acked or client is None or not self._accepting:
                continue
            try:
                cmd = P.cmd_prev_ack(seq) if prev else P.cmd_ack(seq)
                if prev != self._prev_mode:  # the boot changed meanwhile: not this seq
                    continue
                await client.write_gatt_char(P.CONTROL_UUID, cmd, response=False)
                self._acked = seq
                self.stats.acks += 1
            except Exception as e:  # link dropping: the next link's BACKFILL confirms instead
                log.debug("ack failed: %s", e)

    async def _final_acks(self, client) -> None:
        """On close: confirm what arrived (ACK) and the day log's MARKS / EVENT windows
        (LOG_ACK), so the board frees them now instead of sending them again."""
        # with response: the board has each one before the link drops (a write without
        # response may still be queued here when we disconnect)
        while self._log_acks:
            await client.write_gatt_char(P.CONTROL_UUID, self._log_acks[0], response=True)
            self._log_acks.pop(0)
        if self._next_seq is not None and self._next_seq != self._acked:
            cmd = P.cmd_prev_ack(self._next_seq) if self._prev_mode else P.cmd_ack(self._next_seq)
            await client.write_gatt_char(P.CONTROL_UUID, cmd, response=True)
            self._acked = self._next_seq
            self.stats.acks += 1

    @staticmethod
    async def _request_mtu(client) -> None:
        """Get a large MTU. bleak has no public call for it: BlueZ (like the bumble
        backend) exchanges it on connect but only reports it after ``_acquire_mtu``."""
        if client.mtu_size <= 23:
            acquire = getattr(getattr(client, "_backend", None), "_acquire_mtu", None)
            if acquire is not None:
                with contextlib.suppress(Exception):
                    await acquire()

    # --- notification callbacks (bleak calls them in the event loop) --------------------------
    def _on_stream(self, _char, value: bytearray) -> None:
        v = bytes(value)
        if not self._accepting:
            # queued by the device for the previous link: the backfill re-sends it
            self.stats.stale_notifications += 1
            return
        self.stats.notifications += 1
        self._queue.put_nowait(Notification("stream", v))
        pkt = self._reasm.feed(v)
        if pkt is not None and len(pkt) >= 8 and pkt[1] == 4:  # the day log's MARKS
            self._log_acks.append(P.cmd_log_ack(4, pkt[4] | (pkt[5] << 8), self._prev_mode))
        if pkt is not None and len(pkt) >= 14 and pkt[1] in (1, 3):  # SAMPLES, LOG: one seq line
            seq, = struct.unpack_from("<I", pkt, 4)
            end = (seq + pkt[3]) & 0xFFFFFFFF
            if self._next_seq is None or ((end - self._next_seq) & 0xFFFFFFFF) < 0x80000000:
                self._next_seq = end
            self._check_end()

    def _on_event(self, _char, value: bytearray) -> None:
        if not self._accepting:
            self.stats.stale_notifications += 1
            return
        self.stats.notifications += 1
        self._queue.put_nowait(Notification("event", bytes(value)))
        pkt = self._ev_reasm.feed(bytes(value))
        if pkt is not None and len(pkt) >= 18 and pkt[1] == 2:  # a whole window: LOG_ACK
            eid, first, total = struct.unpack_from("<HHH", pkt, 4)
            got = self._windows.setdefault(eid, {})
            got[first] = pkt[3]
            if sum(got.values()) >= total:  # every sample of the window, each packet once
                del self._windows[eid]
                self._log_acks.append(P.cmd_log_ack(2, eid, self._prev_mode))

    def _on_status(self, _char, value: bytearray) -> None:
        with contextlib.suppress(DeviceError):
            self.stats.last_status = P.parse_status(bytes(value))

    def _on_control(self, _char, value: bytearray) -> None:
        try:
            r = P.parse_control(bytes(value))
        except DeviceError as e:
            log.warning("%s", e)
            return
        if r.is_event:
            if r.opcode == P.EVT_PREV_END:
                if self._accepting and self._prev_mode:
                    self._prev_end.set()  # (notifications arrive in order: it all came)
            elif self._accepting:
                self._end_seq = r.next_seq
                self._check_end()
        else:
            if r.opcode in (P.CMD_START, P.CMD_BACKFILL, P.CMD_BACKFILL_ALL, P.CMD_BACKFILL_PREV) and r.ok:
                self._accepting = True  # what follows on this link is the answer
                self._reasm = wire.Reassembler()
                self._ev_reasm = wire.Reassembler()
                self._windows.clear()
            self._responses.put_nowait(r)

    def _check_end(self) -> None:
        if self._end_seq is not None and self._next_seq == self._end_seq:
            self._end_seq = None
            self._closing = True
            self._queue.put_nowait(_END)

    def _link_down(self, client) -> None:
        self._lost.set()
        self._on_disconnect(client)

    def _on_disconnect(self, client) -> None:
        if self._closing or not self._established or self._client is None:
            return  # our own disconnect, or a link lost during setup (the caller retries)
        self.stats.disconnects += 1
        self._client = None
        self._accepting = False
        self._lost_at = time.monotonic()
        self._notes.append({"event": "disconnected", "t": time.time(), "next_seq": self._next_seq})
        self.on_link("disconnected", next_seq=self._next_seq)
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self.backoff_initial_s
        started = time.monotonic()
        attempt = 0
        while not self._closing:
            attempt += 1
            self._attempt = attempt
            try:
                if attempt > 3:  # the device may have changed address / gone quiet: scan again
                    self._device = await self._find()
                    self._bleak = None
                await self._open()
            except NotBondedError as e:  # the board refuses us: retrying cannot help
                self._queue.put_nowait(e)
                return
            except Exception as e:  # DeviceError, or anything unexpected: keep trying
                log.info("reconnect attempt %d failed: %s", attempt, e)
                if self.give_up_after_s is not None and time.monotonic() - started > self.give_up_after_s:
                    self._queue.put_nowait(DeviceError(
                        f"link lost and not back after {self.give_up_after_s:.0f} s: {e}"))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            dt = time.monotonic() - (self._lost_at or started)
            self.stats.reconnect_s.append(dt)
            self._notes.append({"event": "reconnected", "t": time.time(),
                                "seconds": round(dt, 4), "attempts": attempt})
            self.on_link("reconnected", seconds=dt, attempts=attempt, from_seq=self._next_seq)
            return
