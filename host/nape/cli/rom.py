"""``nape rom``: the guided neck range-of-motion test.

Modes:

* ``nape rom --virtual`` (alias ``--simulate``): a simulated wearer does the test; their IMU
  signals run through the firmware's own code under MicroPython and the wire format
  (:class:`nape.device_sim.SimulatedTransport`) into ``rom.nape``, with the prompts shown as
  the stream reaches them; then the recording is analysed.
* ``nape rom FILE.nape``: analyse a recorded test.
* ``nape rom [--address ADDR]`` (a real device over BLE, :class:`nape.ble.BleTransport`):
  the timed prompts are shown live as the test proceeds (:mod:`nape.rom_session` keeps the
  test clock), the stream (live data only, no backfill of what the board held before) is
  recorded into ``rom.nape`` with the schedule as ``"rom_protocol"`` metadata, the link is
  closed when the protocol's last sample is in the file, then the recording is analysed.
  Without an adapter: one line, exit 1. ``--virtual-radio`` does the same through bleak's
  bumble backend against the virtual Nape (the one at ``--radio`` / ``$NAPE_VIRTUAL_RADIO``
  if running, else one started for the session); it streams a simulated everyday wearer,
  not a ROM test, so its angles mean nothing — it checks the plumbing.

Results: a terminal table, ``STEM.rom.html`` (self-contained) and ``STEM.rom.json``
(``protocol/rom.schema.json``), and a row in the trends database (``nape trends`` shows
range of motion over days; ``nape sessions`` lists the tests). Simulated tests are kept
out of the trends database unless ``--db`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from .. import safe_write
from ..errors import NapeError
from ..rom_session import LIVE_GRACE_S, LiveTestClock, mmss
from .common import (ANGLE_0_45, MTU, NONNEG_INT, POSITIVE, add_db_argument, add_settings_arguments, console,
                     err_console, open_transport, progress, settings_from_args)
from .live import add_live_arguments, start_live_view


def _parse_sim_max(items: list[str] | None) -> dict[str, float]:
    from ..analysis.rom import DIRECTIONS

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or name not in DIRECTIONS:
            raise NapeError(f"--sim-max needs DIRECTION=DEGREES with DIRECTION one of {', '.join(DIRECTIONS)}; "
                            f"got {item!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise NapeError(f"--sim-max {name} needs a number of degrees, got {value!r}") from None
    return out


def _prompt(at: float, text: str) -> str:
    return f"[dim]{mmss(at)}[/dim] [bold]{text}[/bold]"


def record_virtual(out: Path, seed: int = 0, maxima: dict[str, float] | None = None, misalignment_deg: float = 0.0,
                   mtu: int = 247) -> tuple[Path, dict]:
    """Simulate the wearer doing the guided test and record it through the firmware.

    The prompts are printed as the recorded stream reaches their time (the sample clock).

    Returns:
        (path of ``rom.nape``, ground truth of the simulation).

    Raises:
        nape.sim.SimError: invalid ``maxima``; FirmwareError: MicroPython failed;
        RecordingError: the file cannot be written.
    """
    from ..analysis.rom import Protocol
    from ..recorder import record
    from ..sim import SimSettings
    from ..sim.rom_script import simulate_rom

    protocol = Protocol()
    safe_write.make_folder(out)
    path = out / "rom.nape"
    sim, truth = simulate_rom(seed, maxima, SimSettings(mounting_misalignment_deg=misalignment_deg), protocol)
    prompts = protocol.prompts()
    shown = [0]

    async def run(prog, task):
        def on_progress(stats):
            t = stats.samples / sim.rate_hz
            while shown[0] < len(prompts) and prompts[shown[0]][0] <= t:
                at, _phase, text = prompts[shown[0]]
                prog.console.print(_prompt(at, text))
                shown[0] += 1
            prog.update(task, completed=stats.samples)

        async with open_transport(pipe=True, make_sim=lambda: sim, mtu=mtu) as link:
            return await record(link.transport, path, metadata={"rom_protocol": truth["protocol"], "sim_seed": seed,
                                                                "rom_sim_truth_deg": truth["held_max_deg"]},
                                on_progress=on_progress, overwrite=True)

    with progress() as prog:
        task = prog.add_task("guided test (simulated wearer → firmware → recording)", total=len(sim.t))
        stats = asyncio.run(run(prog, task))
    for at, _phase, text in prompts[shown[0]:]:
        console.print(_prompt(at, text))
    console.print(f"recorded {stats.samples} samples ({stats.lost_samples} lost) → {path}")
    return path, truth


class _LiveView:
    """The live terminal view of a guided test on a device: the prompt due now, the next one,
    the test clock and the link's figures."""

    def __init__(self, clock: LiveTestClock) -> None:
        self.clock = clock

    def __rich__(self):
        v = self.clock
        t = min(v.clock_s(time.monotonic()), v.total_s)
        tab = Table(title="range-of-motion test" + (" (virtual radio)" if v.virtual else ""), show_header=False,
                    min_width=56)
        tab.add_column("what")
        tab.add_column("value")
        if v.t0 is None:
            tab.add_row("state", "connected, waiting for the first sample…" if v.stats else "connecting…")
            return tab
        tab.add_row("now", f"[bold]{v.prompts[v.shown - 1][2] if v.shown else ''}[/bold]")
        if v.shown < len(v.prompts):
            at, _phase, text = v.prompts[v.shown]
            tab.add_row(f"next in {max(0.0, at - t):.0f} s", text)
        else:
            tab.add_row("next", "end of the test")
        tab.add_row("time", f"{mmss(t)} / {mmss(v.total_s)}")
        s, link = v.stats, v.transport.stats
        tab.add_row("samples (lost)", f"{s.samples} ({s.lost_samples})")
        tab.add_row("link drops", f"{link.disconnects}")
        return Group(tab, ProgressBar(total=v.total_s, completed=t, width=56))


async def _record_live(tr, path: Path, protocol, virtual: bool, quiet: bool = False, live_view=None):
    """Record the guided test from ``tr`` (not yet connected) into ``path``: prompts live,
    stop at the end of the protocol. Returns the RecordStats.

    Raises:
        DeviceError: the device cannot be reached or the link is lost for good (what was
            received is in the file); RecordingError: the file cannot be written.
    """
    from ..recorder import record

    clock = LiveTestClock(protocol, tr, virtual)
    live = None
    ticker = None
    stopped = [False]

    def on_progress(stats) -> None:
        clock.stats = stats
        if live_view is not None:
            live_view.feed.on_progress(stats)
        if clock.t0 is None and stats.samples > 0:
            clock.t0 = time.monotonic() - stats.samples / (clock.rate_hz or 1.0)

    async def tick() -> None:
        while True:
            now = time.monotonic()
            for at, _phase, text in clock.due(now):
                (live.console if live else console).print(_prompt(at, text))
            if live_view is not None:
                live_view.feed.extra["rom"] = rom_status(clock, now)
            if clock.done(now):
                stopped[0] = True
                await tr.close()
                return
            await asyncio.sleep(0.05)

    def opened(_p) -> None:  # connected and the file exists
        nonlocal live, ticker
        clock.rate_hz = float(tr.info.rate_hz)
        if not quiet:
            live = Live(_LiveView(clock), console=err_console(), refresh_per_second=8, transient=True,
                        redirect_stdout=False, redirect_stderr=False)
            live.start()
        ticker = asyncio.get_running_loop().create_task(tick())

    try:
        stats = await record(tr, path, metadata={"rom_protocol": protocol.schedule()},
                             on_progress=on_progress, on_open=opened, progress_interval_s=0.05,
                             on_packet=live_view.feed.on_packet if live_view is not None else None)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(BaseException):
                await ticker
        if live is not None:
            live.stop()
    clock.stats = stats
    for at, _phase, text in clock.due(float("inf")):
        console.print(_prompt(at, text))
    if not stopped[0]:
        console.print("[yellow]the device stopped streaming before the end of the test[/yellow]")
    return stats


def rom_status(clock: LiveTestClock, now: float) -> dict:
    """The test's prompt now and next, for the live page (nape.live)."""
    t = min(clock.clock_s(now), clock.total_s)
    nxt = clock.prompts[clock.shown] if clock.shown < len(clock.prompts) else None
    return {"now": clock.prompts[clock.shown - 1][2] if clock.shown else "sit upright and still",
            "next": nxt[2] if nxt else None, "next_in_s": max(0.0, nxt[0] - t) if nxt else None,
            "elapsed_s": round(t, 1), "total_s": clock.total_s}


async def _record_device(args, out: Path) -> Path:
    """Connect (real adapter, or the virtual radio) and record the guided test into
    ``out/rom.nape``. Returns its path.

    Raises:
        DeviceError, FirmwareError, RecordingError.
    """
    from ..analysis.rom import Protocol

    protocol = Protocol()
    safe_write.make_folder(out)
    path = out / "rom.nape"
    if path.exists() and not args.overwrite:
        raise NapeError(f"{path}: already exists (use --overwrite to replace it, or --out for another folder)")

    def wearer():  # an everyday wearer long enough for the whole protocol
        from ..sim import SimSettings, simulate_day

        return simulate_day(seed=args.seed, settings=SimSettings(time_scale=max(0.1, 2.0 * protocol.total_s / 900.0)))

    async with open_transport(virtual=bool(args.virtual_radio), radio=args.radio, make_sim=wearer, speed=args.speed,
                              keystore=args.keystore, address=args.address, backfill=False,
                              scan_timeout=args.scan_timeout, give_up_after_s=LIVE_GRACE_S) as link:
        view = await start_live_view(args, "Nape live · range-of-motion test", link.transport)
        try:
            stats = await _record_live(link.transport, path, protocol, bool(args.virtual_radio), live_view=view)
        finally:
            if view is not None:
                await view.stop()
    console.print(f"recorded {stats.samples} samples ({stats.lost_samples} lost) → {path}")
    return path


def analyse_and_report(path: Path, out: Path | None, args, index: bool):
    """Analyse one ROM recording, print the table, write the reports and index them.

    Returns:
        (RomResult, {"html": path, "json": path}, trends db path or None).

    Raises:
        RecordingError, RomError: the file is not a readable ROM test.
    """
    from .. import trends
    from ..analysis.rom import analyse_rom
    from ..recording import open_recording
    from ..report.rom import write_rom_reports
    from .summaries import print_rom_summary

    settings = settings_from_args(args)
    open_recording(path)  # fail fast with one line, before any progress bar
    with progress() as prog:
        task = prog.add_task(f"analysing {path.name}", total=None)
        result = analyse_rom(path, settings, on_progress=lambda done, total: prog.update(task, completed=done,
                                                                                          total=total or None))
    print_rom_summary(result, console)
    paths = write_rom_reports(result, out or path.parent, f"{path.stem}.rom")
    db = trends.index_rom_after_analysis(result, paths, db=getattr(args, "db", None)) if index else None
    return result, paths, db


def cmd_rom(args) -> int:
    """Guided neck range-of-motion test: end range in six directions against typical values."""
    if sum(bool(x) for x in (args.file, args.virtual, args.virtual_radio)) > 1:
        raise NapeError("give only one of: a recording to analyse, --virtual, --virtual-radio")
    if args.file:
        path = Path(args.file)
        _, paths, db = analyse_and_report(path, Path(args.out) if args.out else None, args, index=True)
    elif args.virtual:
        if args.live:
            raise NapeError("--live shows a device's stream as it happens; the simulated test (--virtual) runs "
                            "faster than real time: use --virtual-radio or a device")
        out = Path(args.out or "nape-rom")
        path, _ = record_virtual(out, args.seed, _parse_sim_max(args.sim_max), args.misalignment, args.mtu)
        # simulated tests stay out of the user's trends unless a database is named
        _, paths, db = analyse_and_report(path, out, args, index=bool(args.db))
    else:
        out = Path(args.out or "nape-rom")
        path = asyncio.run(_record_device(args, out))
        # a real device's test goes into the trends; the virtual radio's (not a ROM test) only with --db
        _, paths, db = analyse_and_report(path, out, args, index=not args.virtual_radio or bool(args.db))
    console.print(f"[bold]report:[/bold] {paths['html'].resolve()}", soft_wrap=True)
    console.print(f"json:   {paths['json'].resolve()}", soft_wrap=True)
    if db:
        console.print(f"trends: indexed in {db} (nape sessions, nape trends)", soft_wrap=True)
    return 0


def register(sub, formatter) -> None:
    """Add ``rom``."""
    r = sub.add_parser(
        "rom", help="guided neck range-of-motion test (a Nape, the simulated wearer, or a recorded test)",
        description=cmd_rom.__doc__ + "\n\nThe wearer sits upright and still, then bends the head forward, back, "
        "to each side and turns it to each side, holding each end position for 3 s. The largest angle held for "
        "1 s in each direction is compared with typical values for healthy adults (sources in nape/settings.py).\n"
        "With a device (no FILE, no --virtual) the prompts are shown live with a countdown; keep the "
        "wearer sitting still until the first prompt. The recording stops at the end of the test.",
        formatter_class=formatter,
        epilog="example:\n  nape rom                                  a real Nape (the first in range)\n"
               "  nape rom --address C0:4E:41:50:45:01 --out ~/nape/rom-today\n"
               "  nape rom --virtual-radio --speed 10        plumbing check on the virtual Nape\n"
               "  nape rom --live                           prompts and angles in a local web page too\n"
               "  nape rom --virtual\n  nape rom --virtual --sim-max rotation_left=55 --out /tmp/rom\n"
               "  nape rom nape-rom/rom.nape --db ~/nape/nape.db")
    r.add_argument("file", nargs="?", help="a recorded range-of-motion test (.nape) to analyse")
    r.add_argument("--virtual", "--simulate", action="store_true",
                   help="run the test on the simulated wearer (firmware under MicroPython, no hardware)")
    r.add_argument("--out", help="folder for the reports (default: beside the recording; ./nape-rom when recording)")
    r.add_argument("--address", help="the device's BLE address (default: the first Nape advertising)")
    r.add_argument("--virtual-radio", action="store_true",
                   help="record from the virtual Nape on the bumble virtual radio (streams an everyday "
                        "simulated wearer, not a ROM test: checks the plumbing)")
    r.add_argument("--radio", help="virtual radio: AF_UNIX path or bumble transport name (--virtual-radio; "
                   "default $NAPE_VIRTUAL_RADIO, else a virtual Nape started for the session)")
    r.add_argument("--speed", type=POSITIVE, default=1.0,
                   help="virtual Nape started for the session: times real time (default 1)")
    r.add_argument("--keystore", type=Path, help="bond key store of the virtual radio's central")
    r.add_argument("--scan-timeout", type=POSITIVE, default=10.0, help="seconds to look for the device (default 10)")
    r.add_argument("--overwrite", action="store_true", help="replace OUT/rom.nape if it exists (device recording)")
    r.add_argument("--seed", type=NONNEG_INT, default=0,
                   help="simulation seed (--virtual, and the virtual Nape started for --virtual-radio; default 0)")
    r.add_argument("--sim-max", action="append", metavar="DIRECTION=DEG",
                   help="simulated end range of one direction, e.g. rotation_left=55 (--virtual; repeatable)")
    r.add_argument("--misalignment", type=ANGLE_0_45, default=0.0,
                   help="simulated sensor mounting misalignment, degrees (--virtual, 0..45, default 0)")
    r.add_argument("--mtu", type=MTU, default=247, help="ATT MTU of the simulated link (23..517, default 247)")
    add_settings_arguments(r)
    add_live_arguments(r)
    add_db_argument(r)
    r.set_defaults(func=cmd_rom)
