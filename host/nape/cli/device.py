"""``nape scan``, ``nape record`` and ``nape pair``: the commands that talk to a Nape over BLE.

All use bleak's public API through :class:`nape.ble.BleTransport`: on Linux that is BlueZ over
D-Bus with a real adapter. ``--virtual`` runs the very same code with bleak's ``backend=`` set
to the bumble backend, against the virtual Nape (the firmware under MicroPython on a bumble
virtual radio): the one at ``--radio`` / ``$NAPE_VIRTUAL_RADIO`` / the default radio path if
one is running (``nape.ble.serve_virtual_device``), else one started for the session,
streaming a simulated wearer's day.

Security (protocol/SECURITY.md): pairing is LE Secure Connections **Just Works**
(:mod:`nape.ble.pairing`), accepted by the board only in its pairing window (after
power-on, and after a 3 s press of its button); ``nape pair`` bonds once, within arm's
reach; later sessions re-encrypt with the stored keys (BlueZ, or the virtual radio's JSON
key store, :mod:`nape.ble.keystore`). A board that holds an owner key (``nape flash``
writes it) also wants its proof: this computer's key file (``$NAPE_OWNER_KEY`` or
``<user data dir>/nape/owner.key``) is used when it exists (``common.open_transport``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections import deque
from pathlib import Path

from rich.live import Live
from rich.table import Table

from ..ble.keystore import ENV_KEYSTORE, default_keystore, forget_bonds
from ..errors import DeviceError, NapeError, NotBondedError
from .common import MTU, POSITIVE, at_most, console, err_console, open_transport
from .live import add_live_arguments, both_progress, start_live_view

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
  nape record fit.nape --virtual --live       watch head and back in a browser page while recording

Ctrl-C stops; the file is closed properly. Every packet is written as it arrives and
fsynced at least every 0.5 s: a crash or kill -9 loses at most the last second.
"""

EPILOG_PAIR = """examples:
  nape pair                       bond with the first Nape in range (in its pairing window)
  nape pair --virtual             bond with the virtual Nape
  nape pair --forget              forget every Nape bond of this computer's key store
  nape pair --forget C0:4E:41:50:45:01 --virtual
"""


# ---------------------------------------------------------------- scan


def cmd_scan(args) -> int:
    """List Nape devices in range (a real adapter via bleak, or --virtual: the virtual radio)."""
    from ..ble import scan

    found = asyncio.run(scan(virtual=args.virtual, timeout=args.timeout, all_devices=args.all))
    table = Table(title="BLE devices" + (" (virtual radio)" if args.virtual else ""))
    for col in ("name", "address", "RSSI (dBm)", "Nape service", "security"):
        table.add_column(col)
    for d in found:
        table.add_row(d.name or "?", d.address, str(d.rssi), "yes" if d.is_nape else "no", d.security())
    console.print(table)
    if not found:
        console.print("no Nape device found: is it charged, in range and not connected to another host?")
    return 0


# ---------------------------------------------------------------- record


class _Status:
    """The live terminal status of ``nape record``."""

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
        from ..analysis.orientation import neck_angle_deg

        s = self.stats
        link = self.transport.stats
        t = Table(title=f"recording {self.path.name}" + (" (virtual radio)" if self.virtual else ""),
                  show_header=False, min_width=50)
        t.add_column("what")
        t.add_column("value", justify="right")
        t.add_row("elapsed", f"{time.monotonic() - self.t0:.0f} s")
        t.add_row("link", link_line(self.transport))
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


def link_line(transport) -> str:
    """One line on the link: streaming, or away and how the recorder keeps looking."""
    st = transport.link_state() if hasattr(transport, "link_state") else {"state": "streaming"}
    if st["state"] == "lost":
        return (f"out of range for {st['lost_s']:.0f} s: looking for the board (attempt {st['attempts']}, "
                f"every ≤ {st['backoff_max_s']:.0f} s; it advertises every 10 s while alone); "
                "everything it logs meanwhile comes back on reconnection")
    return {"connecting": "connecting…", "streaming": "streaming", "closed": "closed"}[st["state"]]


def _link_events(console_) -> object:
    """``on_link`` for BleTransport: one line per link loss and per reconnection."""
    def on_link(event: str, **kw) -> None:
        if event == "disconnected":
            console_.print(f"{time.strftime('%H:%M:%S')} link lost: reconnecting (Ctrl-C stops; "
                           "the file keeps everything received)")
        elif event == "reconnected":
            console_.print(f"{time.strftime('%H:%M:%S')} back after {kw.get('seconds', 0):.1f} s "
                           f"({kw.get('attempts', 1)} attempt{'s' if kw.get('attempts', 1) != 1 else ''}): "
                           "backfilling what the board kept")
    return on_link


async def _run_record(args, on_done) -> None:
    from ..recorder import record

    path = Path(args.out)
    econ = err_console()  # the live status and the link lines share it

    def wearer():
        from ..sim import SimSettings, simulate_day

        return simulate_day(seed=args.seed, settings=SimSettings(time_scale=args.time_scale))

    async with open_transport(virtual=args.virtual, radio=args.radio, make_sim=wearer, speed=args.speed,
                              keystore=args.keystore, mtu=args.mtu, address=args.address, name=args.name,
                              backfill=not args.no_backfill, pair=args.pair, scan_timeout=args.scan_timeout,
                              give_up_after_s=args.give_up, on_link=_link_events(econ)) as link:
        tr = link.transport
        meta: dict = {"sim_seed": args.seed} if link.started_virtual_device else {}
        status = _Status(path, tr, args.virtual)
        stopper = None
        live = None

        def opened(_p) -> None:  # connected and the file exists: show the live status
            nonlocal stopper, live
            if not args.quiet:
                live = Live(status, console=econ, refresh_per_second=4,
                            redirect_stdout=False, redirect_stderr=False)
                live.start()
            if args.duration:
                async def stop_later() -> None:
                    await asyncio.sleep(args.duration)
                    await tr.close()
                stopper = asyncio.get_running_loop().create_task(stop_later())

        view = await start_live_view(args, f"Nape live · recording {path.name}", tr)
        try:
            return await record(tr, path, metadata=meta, on_progress=both_progress(status.update, view),
                                overwrite=args.overwrite, on_open=opened,
                                on_packet=view.feed.on_packet if view else None)
        finally:
            if stopper is not None:
                stopper.cancel()
            if live is not None:
                live.stop()
            if view is not None:
                await view.stop()
            on_done(status.stats, tr)


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
    s, link = final.get("stats"), final.get("link")
    if s is None:
        if interrupted:
            console.print("stopped before the recording started")
            return 130
        return 1
    console.print(f"{'stopped (file closed): ' if interrupted else ''}{s.samples} samples → {path} "
                  f"({s.lost_samples} lost, {s.duplicate_samples} duplicates dropped, "
                  f"{link.disconnects} link drops, {len(link.reconnect_s)} reconnections, "
                  f"{s.backfilled_samples} re-sent from the board's buffer, "
                  f"{s.log_samples} from its day log at the reduced rate)")
    return 0


# ---------------------------------------------------------------- pair


async def _pair(args) -> str:
    from ..ble.pairing import pair

    async with open_transport(virtual=args.virtual, radio=args.radio, keystore=args.keystore,
                              address=args.address, scan_timeout=args.scan_timeout) as link:
        try:
            return await pair(link.transport, args.scan_timeout)
        except NotBondedError as e:  # refused: the keys just stored here are of no use
            if args.virtual and getattr(e, "address", None):
                with contextlib.suppress(DeviceError, OSError):
                    forget_bonds(Path(args.keystore or default_keystore()), e.address)
            raise


async def _forget_on_board(args) -> str | None:
    """Ask the Nape in range to forget this computer's bond (``CMD_FORGET``); returns its
    address, or None when none answered with a bond it accepts."""
    from ..ble import protocol as P

    try:
        async with open_transport(virtual=args.virtual, radio=args.radio, keystore=args.keystore,
                                  address=args.address, scan_timeout=min(args.scan_timeout, 5.0),
                                  backfill=False, connect_attempts=1) as link:
            tr = link.transport
            try:
                info = await tr.connect()
                await tr.command(P.cmd_forget())
                return info.extra.get("address")
            finally:
                await tr.close()
    except DeviceError:
        return None


def cmd_pair(args) -> int:
    """Bond with a Nape (LE Secure Connections, Just Works), or forget bonds (--forget)."""
    if args.forget is not None:
        addr = None if args.forget == "*" else args.forget
        board = asyncio.run(_forget_on_board(args))
        console.print(f"the Nape {board} forgot this computer" if board else
                      "no Nape in range answered: it keeps its side of the bond until it is paired "
                      "again or you hold its button 10 s")
        addr = addr or (None if args.virtual else board)
        if args.virtual:
            ks = Path(args.keystore or default_keystore())
            n = forget_bonds(ks, addr)
            console.print(f"forgot {n} bond{'s' if n != 1 else ''} in {ks}")
            return 0
        if addr is None:
            raise DeviceError("with a real adapter give the address to forget: nape pair --forget ADDR")
        from ..ble.pairing import unpair

        asyncio.run(unpair(addr))
        console.print(f"forgot the bond with {addr} (BlueZ)")
        return 0
    addr = asyncio.run(_pair(args))
    where = str(args.keystore or default_keystore()) if args.virtual else "BlueZ"
    console.print(f"paired with {addr}: encrypted (LE Secure Connections, Just Works — the board has no "
                  f"display for a passkey); bond kept in {where}")
    return 0


# ---------------------------------------------------------------- parser


def _link_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--virtual", action="store_true",
                   help="use the virtual Nape on the bumble virtual radio instead of a real adapter")
    p.add_argument("--radio", help="virtual radio: AF_UNIX path or bumble transport name "
                   "(default $NAPE_VIRTUAL_RADIO, else the default path)")
    p.add_argument("--address", help="the device's BLE address (default: the first Nape advertising)")
    p.add_argument("--keystore", type=Path,
                   help=f"bond key store of the virtual radio's central (default ${ENV_KEYSTORE} or "
                        "<user data dir>/nape/ble-keys.json; a real adapter's bonds live in BlueZ)")
    p.add_argument("--scan-timeout", type=POSITIVE, default=10.0, help="seconds to look for the device (default 10)")


def register(sub, formatter) -> None:
    """Add ``scan``, ``record`` and ``pair``."""
    sc = sub.add_parser("scan", help="list Nape devices in range (or on the virtual radio)",
                        description=cmd_scan.__doc__, formatter_class=formatter,
                        epilog="example:\n  nape scan\n  nape scan --virtual --timeout 3")
    sc.add_argument("--virtual", action="store_true", help="scan the virtual radio (starts a virtual device)")
    sc.add_argument("--timeout", type=at_most(3600.0), default=5.0, help="seconds to scan (default 5)")
    sc.add_argument("--all", action="store_true", help="list every advertiser, not only Nape devices")
    sc.set_defaults(func=cmd_scan)

    r = sub.add_parser("record", help="record a Nape over BLE into a .nape file (live status)",
                       description=str(cmd_record.__doc__) + "\n\n" + RECORD_HELP,
                       formatter_class=formatter, epilog=EPILOG_RECORD)
    r.add_argument("out", help="the .nape file to create")
    _link_arguments(r)
    r.add_argument("--name", help="advertised name to match (default: any Nape)")
    r.add_argument("--duration", type=POSITIVE, help="stop after this many seconds (default: until Ctrl-C)")
    r.add_argument("--mtu", type=MTU, help="virtual radio only: ATT MTU to ask for (23..517, default 517; "
                   "a real adapter negotiates on its own)")
    r.add_argument("--no-backfill", action="store_true",
                   help="start with live data; do not fetch what the board buffered before")
    r.add_argument("--pair", action="store_true", help="pair if not bonded yet (see nape pair)")
    r.add_argument("--give-up", type=POSITIVE, metavar="S",
                   help="stop when the link stays lost this many seconds (default: keep trying)")
    r.add_argument("--speed", type=POSITIVE, default=1.0,
                   help="virtual device started for the session: times real time (default 1)")
    r.add_argument("--seed", type=int, default=0, help="virtual device started for the session: wearer seed")
    r.add_argument("--time-scale", type=POSITIVE, default=1.0,
                   help="virtual device started for the session: stretch the simulated day (1 ≈ 15 min)")
    r.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    r.add_argument("--quiet", action="store_true", help="no live status")
    add_live_arguments(r)
    r.set_defaults(func=cmd_record)

    p = sub.add_parser("pair", help="bond with a Nape (Just Works), or forget bonds",
                       description=str(cmd_pair.__doc__) + "\n\n" + PAIR_HELP,
                       formatter_class=formatter, epilog=EPILOG_PAIR)
    _link_arguments(p)
    p.add_argument("--forget", nargs="?", const="*", metavar="ADDR",
                   help="remove the bond with ADDR (every bond in the key store when no ADDR is given)")
    p.set_defaults(func=cmd_pair)
