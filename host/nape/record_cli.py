"""``nape record`` and ``nape pair``: record a Nape over BLE into a ``.nape`` file; bond with it.

Both use bleak's public API (``BleakScanner``, ``BleakClient``, ``start_notify``) through
:class:`nape.ble.BleTransport`: on Linux that is BlueZ over D-Bus with a real adapter.
``--virtual`` runs the very same code with bleak's ``backend=`` set to the bumble backend,
against the virtual Nape (the firmware under MicroPython on a bumble virtual radio): the
one at ``--radio`` / ``$NAPE_VIRTUAL_RADIO`` / the default radio path if one is running
(``nape.ble.serve_virtual_device``), else one started for the session, streaming a
simulated wearer's day.

Security (protocol/SECURITY.md): the board has no display and no keypad, so it cannot
show or take a passkey; pairing is LE Secure Connections **Just Works** (ECDH key
exchange: the link is encrypted against passive eavesdropping; no MITM protection). The
board accepts pairing only in its pairing window (after power-on, and after a 3 s press
of its button); ``nape pair`` bonds once, within arm's reach; later sessions re-encrypt
with the stored keys. A board that holds an owner key (``nape flash`` writes it) also
wants its proof: the key file of this computer (``$NAPE_OWNER_KEY`` or
``<user data dir>/nape/owner.key``) is used when it exists. A real adapter keeps its keys in BlueZ; the virtual radio's central keeps them in a
JSON key store, by default ``<user data dir>/nape/ble-keys.json`` (``--keystore`` or
``$NAPE_BLE_KEYSTORE``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from collections import deque
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .argtypes import mtu, positive_float
from .errors import DeviceError, NapeError, NotBondedError

ENV_KEYSTORE = "NAPE_BLE_KEYSTORE"

RECORD_HELP = """\
Uses bleak (BlueZ over D-Bus with a real adapter). --virtual runs the same code against the
virtual Nape (the firmware under MicroPython on a bumble virtual radio): the one served at
--radio / $NAPE_VIRTUAL_RADIO if running, else one started for this session that streams
a simulated wearer's day. The live status shows samples/s, lost samples, the board's
buffer level and the current (uncalibrated) neck angle."""

PAIR_HELP = """\
The board accepts pairing only in its pairing window: 120 s after you switch it on, and
120 s after you hold its button for 3 s (it buzzes twice). It has no display or keypad
for a passkey, so pairing is LE Secure Connections "Just Works": the link is encrypted
(ECDH), without protection against an active man in the middle during pairing; pair
within arm's reach. A board takes 4 bonds; holding its button 10 s forgets them all. A
real adapter keeps the bond in BlueZ; the virtual radio's central in a JSON key store
(--keystore). --forget also asks the board, when it is in range, to forget this computer.
protocol/SECURITY.md says what is protected and how."""

EPILOG_RECORD = """examples:
  nape record today.nape                      the first Nape in range (real adapter, BlueZ)
  nape record drive.nape --address C0:4E:41:50:45:01 --duration 3600
  nape record demo.nape --virtual --duration 30      simulated wearer on the virtual radio
  nape record fast.nape --virtual --speed 20 --duration 10

Ctrl-C stops; the file is closed properly. Every packet is written as it arrives and
fsynced at least every 0.5 s: a crash or kill -9 loses at most the last second.
"""

EPILOG_PAIR = """examples:
  nape pair                       bond with the first Nape in range (in its pairing window)
  nape pair --virtual             bond with the virtual Nape
  nape pair --forget              forget every Nape bond of this computer's key store
  nape pair --forget C0:4E:41:50:45:01 --virtual
"""


def default_keystore() -> Path:
    """Where the virtual radio's central keeps bonding keys: ``$NAPE_BLE_KEYSTORE`` or
    ``<user data dir>/nape/ble-keys.json``."""
    env = os.environ.get(ENV_KEYSTORE)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("nape")) / "ble-keys.json"


def owner_key_kwargs() -> dict:
    """``owner_key`` / ``owner_key_source`` for :class:`nape.ble.BleTransport`: this
    computer's owner key file (``nape flash`` writes it), if there is one.

    Raises:
        DeviceError: the file exists but holds no key.
    """
    from .ble.owner import default_owner_key_path, load_owner_key

    path = default_owner_key_path()
    return {"owner_key": load_owner_key(path), "owner_key_source": str(path)}


def neck_angle_deg(packet) -> float | None:
    """Neck flexion of the newest sample, degrees (head pitch − trunk pitch, forward +;
    uncalibrated: the mounting offset is not removed), or None without a head IMU."""
    if packet is None or packet.quat.shape[1] < 2:
        return None
    from .analysis.orientation import inclination

    q = packet.quat[-1]
    pitch, _roll, _tilt = inclination(q)
    return float(pitch[1] - pitch[0])


class _Status:
    """The live terminal status (rich) of ``nape record``."""

    def __init__(self, path: Path, transport, virtual: bool) -> None:
        self.path = path
        self.transport = transport
        self.virtual = virtual
        self.stats = None
        self.window: deque[tuple[float, int]] = deque()
        self.t0 = time.monotonic()

    def update(self, stats) -> None:
        self.stats = stats
        now = time.monotonic()
        self.window.append((now, stats.samples))
        while len(self.window) > 2 and now - self.window[0][0] > 2.0:
            self.window.popleft()

    def rate(self) -> float:
        if len(self.window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.window[0], self.window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def __rich__(self) -> Table:
        s = self.stats
        link = self.transport.stats
        t = Table(title=f"recording {self.path.name}" + (" (virtual radio)" if self.virtual else ""),
                  show_header=False, min_width=50)
        t.add_column("what")
        t.add_column("value", justify="right")
        t.add_row("elapsed", f"{time.monotonic() - self.t0:.0f} s")
        if s is None:
            t.add_row("state", "connecting…")
            return t
        t.add_row("samples", f"{s.samples}")
        t.add_row("samples/s", f"{self.rate():.0f}")
        t.add_row("lost samples", f"{s.lost_samples}" + (" ✗" if s.lost_samples else ""))
        t.add_row("re-sent from the board's buffer", f"{s.backfilled_samples}")
        t.add_row("link drops / reconnects", f"{link.disconnects} / {len(link.reconnect_s)}")
        st = link.last_status
        t.add_row("board buffer", f"{st.buffer_fill_permille / 10:.1f} %" if st else "?")
        if st and st.battery_pct is not None:
            t.add_row("battery", f"{st.battery_pct} %")
        a = neck_angle_deg(s.last_packet)
        t.add_row("neck angle (uncalibrated)", "no head IMU" if a is None else f"{a:+.0f}°")
        return t


async def _run_record(args, on_done) -> None:
    from .ble import BleTransport, VirtualDevice, nsim_blob, virtual_radio
    from .recorder import record

    path = Path(args.out)
    vd = None
    try:
        meta: dict = {}
        if args.virtual:
            radio = virtual_radio(args.radio)
            if radio is None:
                if args.radio and os.path.sep in args.radio:
                    raise DeviceError(f"no virtual radio at {args.radio}")
                from .sim import SimSettings, simulate_day

                sim = simulate_day(seed=args.seed, settings=SimSettings(time_scale=args.time_scale))
                vd = VirtualDevice(nsim_blob(sim), speed=args.speed)
                await vd.start()
                radio = vd.transport
                meta["sim_seed"] = args.seed
            bumble = {"transport": radio, "keystore": str(args.keystore or default_keystore())}
            if vd is not None:
                args.pair = True  # our own virtual board: pair in its power-on window
            if args.mtu is not None:
                bumble["mtu"] = 0 if args.mtu == 23 else args.mtu
        else:
            bumble = None
        tr = BleTransport(args.address, name=args.name, bumble=bumble, backfill=not args.no_backfill,
                          pair=args.pair, scan_timeout=args.scan_timeout,
                          give_up_after_s=args.give_up, **owner_key_kwargs())
        status = _Status(path, tr, args.virtual)
        stopper = None
        live = None

        def opened(_p) -> None:  # connected and the file exists: show the live status
            nonlocal stopper, live
            if not args.quiet:
                live = Live(status, console=Console(stderr=True), refresh_per_second=4,
                            redirect_stdout=False, redirect_stderr=False)
                live.start()
            if args.duration:
                async def stop_later() -> None:
                    await asyncio.sleep(args.duration)
                    await tr.close()
                stopper = asyncio.get_running_loop().create_task(stop_later())

        try:
            stats = await record(tr, path, metadata=meta, on_progress=status.update,
                                 overwrite=args.overwrite, on_open=opened)
        finally:
            if stopper is not None:
                stopper.cancel()
            if live is not None:
                live.stop()
            on_done(status.stats, tr)
        return stats
    finally:
        if vd is not None:
            await vd.stop()


def cmd_record(args) -> int:
    """Record a Nape over BLE into a .nape file, with a live status; Ctrl-C stops."""
    path = Path(args.out)
    if path.exists() and not args.overwrite:
        raise NapeError(f"{path}: already exists (use --overwrite to replace it)")
    final: dict = {}

    def on_done(stats, tr) -> None:
        final["stats"], final["link"] = stats, tr.stats

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        await _run_record(args, on_done)

    interrupted = False
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    out = Console()
    s, link = final.get("stats"), final.get("link")
    if s is None:
        if interrupted:
            out.print("stopped before the recording started")
            return 130
        return 1
    out.print(f"{'stopped (file closed): ' if interrupted else ''}{s.samples} samples → {path} "
              f"({s.lost_samples} lost, {s.duplicate_samples} duplicates dropped, "
              f"{link.disconnects} link drops, {s.backfilled_samples} re-sent from the board's buffer)")
    return 0


# ---------------------------------------------------------------- pair


def forget_bonds(keystore: Path, address: str | None) -> int:
    """Remove the bond with ``address`` (every bond when None) from a bumble JSON key
    store; returns how many were removed.

    Raises:
        DeviceError: the key store is not valid JSON.
    """
    if not keystore.exists():
        return 0
    try:
        data = json.loads(keystore.read_text() or "{}")
    except ValueError as e:
        raise DeviceError(f"{keystore}: not a key store ({e})") from None
    n = 0
    for ns, peers in data.items():
        if not isinstance(peers, dict):
            continue
        for peer in list(peers):
            if address is None or peer.split("/")[0].upper() == address.upper():
                del peers[peer]
                n += 1
    tmp = keystore.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, keystore)
    return n


async def _pair(args) -> str:
    from bleak import BleakClient

    from .ble import BleTransport
    from .ble import protocol as P

    if args.virtual:
        from .ble import virtual_radio

        radio = virtual_radio(args.radio)
        if radio is None:
            raise DeviceError("no virtual Nape running: give --radio (the radio of a running virtual "
                              "device, nape.ble.serve_virtual_device)")
        bumble = {"transport": radio, "keystore": str(args.keystore or default_keystore())}
    else:
        bumble = None
    from .ble.transport import PAIRING_REFUSED

    tr = BleTransport(args.address, bumble=bumble, scan_timeout=args.scan_timeout)
    dev = await tr._find()
    kw = tr._client_kw
    client = BleakClient(dev, pair=True, timeout=args.scan_timeout, **kw)
    try:
        async with client as c:
            st = P.parse_status(await c.read_gatt_char(P.STATUS_UUID))
            st = await BleTransport._settled_status(c, st)
            if not st.flags & P.ST_ENCRYPTED:
                raise DeviceError(f"{dev.address}: paired, but the device reports an unencrypted link")
            if st.secure and not st.bonded:  # outside its window, or over its bond limit
                _drop_refused_keys(args, dev.address)
                raise NotBondedError(PAIRING_REFUSED)
    except DeviceError:
        raise
    except Exception as e:
        if getattr(getattr(client, "_backend", None), "paired_once", False):
            _drop_refused_keys(args, dev.address)
            raise NotBondedError(PAIRING_REFUSED) from e  # the board dropped the link after pairing
        raise DeviceError(f"pairing with {dev.address} failed: {e}") from e
    return dev.address


def _drop_refused_keys(args, address: str) -> None:
    """The board refused the bond: the keys the virtual radio's central just stored are of
    no use (BlueZ keeps its own; ``nape pair --forget ADDR`` removes them)."""
    if args.virtual:
        with contextlib.suppress(DeviceError, OSError):
            forget_bonds(Path(args.keystore or default_keystore()), address)


async def _forget_on_board(args) -> str | None:
    """Ask the Nape in range to forget this computer's bond (``CMD_FORGET``); returns its
    address, or None when none was reached with a bond it accepts."""
    from .ble import BleTransport, virtual_radio
    from .ble import protocol as P

    bumble = None
    if args.virtual:
        radio = virtual_radio(args.radio)
        if radio is None:
            return None
        bumble = {"transport": radio, "keystore": str(args.keystore or default_keystore())}
    tr = BleTransport(args.address, bumble=bumble, backfill=False, connect_attempts=1,
                      scan_timeout=min(args.scan_timeout, 5.0), **owner_key_kwargs())
    try:
        info = await tr.connect()
        await tr.command(P.cmd_forget())
        return info.extra.get("address")
    except DeviceError:
        return None
    finally:
        await tr.close()


def cmd_pair(args) -> int:
    """Bond with a Nape (LE Secure Connections, Just Works), or forget bonds (--forget)."""
    out = Console()
    if args.forget is not None:
        addr = None if args.forget == "*" else args.forget
        board = asyncio.run(_forget_on_board(args))
        out.print(f"the Nape {board} forgot this computer" if board else
                  "no Nape in range answered: it keeps its side of the bond until it is paired "
                  "again or you hold its button 10 s")
        if args.virtual:
            ks = Path(args.keystore or default_keystore())
            n = forget_bonds(ks, addr)
            out.print(f"forgot {n} bond{'s' if n != 1 else ''} in {ks}")
            return 0
        return asyncio.run(_forget_real(addr or board, out))
    addr = asyncio.run(_pair(args))
    where = str(args.keystore or default_keystore()) if args.virtual else "BlueZ"
    out.print(f"paired with {addr}: encrypted (LE Secure Connections, Just Works — the board has no "
              f"display for a passkey); bond kept in {where}")
    return 0


async def _forget_real(address: str | None, out: Console) -> int:
    from bleak import BleakClient

    if address is None:
        raise DeviceError("with a real adapter give the address to forget: nape pair --forget ADDR")
    try:
        await BleakClient(address).unpair()
    except Exception as e:
        raise DeviceError(f"cannot remove the bond with {address} ({e}): no Bluetooth adapter reachable "
                          "through BlueZ? For the virtual Nape use --virtual") from e
    out.print(f"forgot the bond with {address} (BlueZ)")
    return 0


# ---------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--virtual", action="store_true",
                   help="use the virtual Nape on the bumble virtual radio instead of a real adapter")
    p.add_argument("--radio", help="virtual radio: AF_UNIX path or bumble transport name "
                   "(default $NAPE_VIRTUAL_RADIO, else the default path)")
    p.add_argument("--address", help="the device's BLE address (default: the first Nape advertising)")
    p.add_argument("--keystore", type=Path,
                   help=f"bond key store of the virtual radio's central (default ${ENV_KEYSTORE} or "
                        "<user data dir>/nape/ble-keys.json; a real adapter's bonds live in BlueZ)")
    p.add_argument("--scan-timeout", type=positive_float, default=10.0, help="seconds to look for the device (default 10)")


def register(subparsers) -> None:
    """Add ``record`` and ``pair`` to the ``nape`` parser's subparsers."""
    r = subparsers.add_parser("record", help="record a Nape over BLE into a .nape file (live status)",
                              description=str(cmd_record.__doc__) + "\n\n" + RECORD_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_RECORD)
    r.add_argument("out", help="the .nape file to create")
    _common(r)
    r.add_argument("--name", help="advertised name to match (default: any Nape)")
    r.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: until Ctrl-C)")
    r.add_argument("--mtu", type=mtu, help="virtual radio only: ATT MTU to ask for (23..517, default 517; "
                   "a real adapter negotiates on its own)")
    r.add_argument("--no-backfill", action="store_true",
                   help="start with live data; do not fetch what the board buffered before")
    r.add_argument("--pair", action="store_true", help="pair if not bonded yet (see nape pair)")
    r.add_argument("--give-up", type=positive_float, metavar="S",
                   help="stop when the link stays lost this many seconds (default: keep trying)")
    r.add_argument("--speed", type=positive_float, default=1.0,
                   help="virtual device started for the session: times real time (default 1)")
    r.add_argument("--seed", type=int, default=0, help="virtual device started for the session: wearer seed")
    r.add_argument("--time-scale", type=positive_float, default=1.0,
                   help="virtual device started for the session: stretch the simulated day (1 ≈ 15 min)")
    r.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    r.add_argument("--quiet", action="store_true", help="no live status")
    r.set_defaults(func=cmd_record)

    p = subparsers.add_parser("pair", help="bond with a Nape (Just Works), or forget bonds",
                              description=str(cmd_pair.__doc__) + "\n\n" + PAIR_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_PAIR)
    _common(p)
    p.add_argument("--forget", nargs="?", const="*", metavar="ADDR",
                   help="remove the bond with ADDR (every bond in the key store when no ADDR is given)")
    p.set_defaults(func=cmd_pair)
