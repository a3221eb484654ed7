"""``nape rom``: the guided neck range-of-motion test.

Modes:

* ``nape rom --virtual`` (alias ``--simulate``): a simulated wearer does the test; their IMU
  signals run through the firmware's own code under MicroPython and the wire format
  (:class:`nape.device_sim.SimulatedTransport`) into ``rom.nape``, with the prompts shown as
  the stream reaches them; then the recording is analysed.
* ``nape rom FILE.nape``: analyse a recorded test.
* ``nape rom [--address ADDR]`` (a real device over BLE, :class:`nape.ble.BleTransport`):
  the timed prompts are shown live as the test proceeds, the stream (live data only, no
  backfill of what the board held before) is recorded into ``rom.nape`` with the schedule
  as ``"rom_protocol"`` metadata, the link is closed when the protocol's last sample is in
  the file, then the recording is analysed. Without an adapter: one line, exit 1.
  ``--virtual-radio`` does the same through bleak's bumble backend against the virtual Nape
  (the one at ``--radio`` / ``$NAPE_VIRTUAL_RADIO`` if running, else one started for the
  session); it streams a simulated everyday wearer, not a ROM test, so its angles mean
  nothing — it checks the plumbing.

The test clock starts at the first live sample. It is the sample clock (samples received
or lost since then ÷ sample rate: the clock of the analysis) or the wall clock since that
sample, whichever is ahead — so prompts keep coming while the link is briefly lost. The
recording stops when the sample clock reaches the end of the protocol, or
``LIVE_GRACE_S`` after it by the wall clock if samples stopped arriving (the analysis
then reports them as lost).

Results: a terminal table, ``STEM.rom.html`` (self-contained) and ``STEM.rom.json``
(``protocol/rom.schema.json``), and a row in the trends database (``nape trends`` shows
range of motion over days; ``nape sessions`` lists the tests). Simulated tests are kept
out of the trends database unless ``--db`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

from .argtypes import mtu, nonneg_int, positive_float
from .errors import NapeError

#: Seconds (wall clock) past the end of the protocol after which a live recording stops
#: even if the link lost samples that have not come back.
LIVE_GRACE_S = 15.0


def _consoles():
    from rich.console import Console

    return Console(), Console(stderr=True)


def _progress(err_console):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), console=err_console, transient=True)


def _parse_sim_max(items: list[str] | None) -> dict[str, float]:
    from .analysis.rom import DIRECTIONS

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


def record_virtual(out: Path, seed: int = 0, maxima: dict[str, float] | None = None, misalignment_deg: float = 0.0,
                   mtu: int = 247, console=None, err_console=None) -> tuple[Path, dict]:
    """Simulate the wearer doing the guided test and record it through the firmware.

    The prompts are printed as the recorded stream reaches their time (the sample clock).

    Returns:
        (path of ``rom.nape``, ground truth of the simulation).

    Raises:
        nape.sim.SimError: invalid ``maxima``; FirmwareError: MicroPython failed;
        RecordingError: the file cannot be written.
    """
    from .analysis.rom import Protocol
    from .device_sim import SimulatedTransport
    from .recorder import record
    from .sim import SimSettings
    from .sim.rom_script import simulate_rom

    c, e = (console, err_console) if console is not None else _consoles()
    protocol = Protocol()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rom.nape"
    sim, truth = simulate_rom(seed, maxima, SimSettings(mounting_misalignment_deg=misalignment_deg), protocol)
    prompts = protocol.prompts()
    shown = [0]
    with _progress(e) as prog:
        task = prog.add_task("guided test (simulated wearer → firmware → recording)", total=len(sim.t))

        def on_progress(stats):
            t = stats.samples / sim.rate_hz
            while shown[0] < len(prompts) and prompts[shown[0]][0] <= t:
                at, phase, text = prompts[shown[0]]
                prog.console.print(f"[dim]{int(at) // 60}:{int(at) % 60:02d}[/dim] [bold]{text}[/bold]")
                shown[0] += 1
            prog.update(task, completed=stats.samples)

        stats = asyncio.run(record(SimulatedTransport(sim, max_value_len=mtu - 3), path,
                                   metadata={"rom_protocol": truth["protocol"], "sim_seed": seed,
                                             "rom_sim_truth_deg": truth["held_max_deg"]},
                                   on_progress=on_progress, overwrite=True))
    for at, phase, text in prompts[shown[0]:]:
        c.print(f"[dim]{int(at) // 60}:{int(at) % 60:02d}[/dim] [bold]{text}[/bold]")
    c.print(f"recorded {stats.samples} samples ({stats.lost_samples} lost) → {path}")
    return path, truth


def _mmss(t: float) -> str:
    return f"{int(t) // 60}:{int(t) % 60:02d}"


class _LiveTest:
    """State and live view (rich) of a guided test on a device: the test clock, the
    prompt due now and the next one, and the link's figures."""

    def __init__(self, protocol, transport, virtual: bool) -> None:
        self.protocol = protocol
        self.total_s = float(protocol.total_s)
        self.prompts = protocol.prompts()
        self.transport = transport
        self.virtual = virtual
        self.stats = None
        self.rate_hz = 0.0
        self.t0: float | None = None  # monotonic time of the first sample
        self.shown = 0

    def sample_clock_s(self) -> float:
        """Seconds of the test covered by samples received or counted lost."""
        s = self.stats
        if s is None or not self.rate_hz:
            return 0.0
        return (s.samples + s.lost_samples) / self.rate_hz

    def clock_s(self, now: float) -> float:
        """Test time, s: the sample clock or the wall clock since the first sample, whichever is ahead."""
        if self.t0 is None:
            return 0.0
        return max(self.sample_clock_s(), now - self.t0)

    def due(self, now: float) -> list[tuple[float, str, str]]:
        """Prompts reached since the last call."""
        t = self.clock_s(now)
        out = []
        while self.t0 is not None and self.shown < len(self.prompts) and self.prompts[self.shown][0] <= t:
            out.append(self.prompts[self.shown])
            self.shown += 1
        return out

    def done(self, now: float) -> bool:
        """The protocol is fully recorded (sample clock), or samples stopped coming for too long."""
        if self.t0 is None:
            return False
        return self.sample_clock_s() >= self.total_s or now - self.t0 >= self.total_s + LIVE_GRACE_S

    def __rich__(self):
        import time

        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        now = time.monotonic()
        t = min(self.clock_s(now), self.total_s)
        title = "range-of-motion test" + (" (virtual radio)" if self.virtual else "")
        tab = Table(title=title, show_header=False, min_width=56)
        tab.add_column("what")
        tab.add_column("value")
        if self.t0 is None:
            tab.add_row("state", "connected, waiting for the first sample…" if self.stats else "connecting…")
            return tab
        now_text = self.prompts[self.shown - 1][2] if self.shown else ""
        tab.add_row("now", f"[bold]{now_text}[/bold]")
        if self.shown < len(self.prompts):
            at, _phase, text = self.prompts[self.shown]
            tab.add_row(f"next in {max(0.0, at - t):.0f} s", text)
        else:
            tab.add_row("next", "end of the test")
        tab.add_row("time", f"{_mmss(t)} / {_mmss(self.total_s)}")
        s, link = self.stats, self.transport.stats
        tab.add_row("samples (lost)", f"{s.samples} ({s.lost_samples})")
        tab.add_row("link drops", f"{link.disconnects}")
        return Group(tab, ProgressBar(total=self.total_s, completed=t, width=56))


async def _record_live(tr, path: Path, protocol, virtual: bool, console, err_console, quiet: bool = False):
    """Record the guided test from ``tr`` (not yet connected) into ``path``: prompts live,
    stop at the end of the protocol. Returns the RecordStats.

    Raises:
        DeviceError: the device cannot be reached or the link is lost for good (what was
            received is in the file); RecordingError: the file cannot be written.
    """
    import time

    from rich.live import Live

    from .recorder import record

    view = _LiveTest(protocol, tr, virtual)
    live = None
    ticker = None
    stopped = [False]

    def on_progress(stats) -> None:
        view.stats = stats
        if view.t0 is None and stats.samples > 0:
            view.t0 = time.monotonic() - stats.samples / (view.rate_hz or 1.0)

    async def tick() -> None:
        while True:
            now = time.monotonic()
            for at, _phase, text in view.due(now):
                (live.console if live else console).print(f"[dim]{_mmss(at)}[/dim] [bold]{text}[/bold]")
            if view.done(now):
                stopped[0] = True
                await tr.close()
                return
            await asyncio.sleep(0.05)

    def opened(_p) -> None:  # connected and the file exists
        nonlocal live, ticker
        view.rate_hz = float(tr.info.rate_hz)
        if not quiet:
            live = Live(view, console=err_console, refresh_per_second=8, transient=True,
                        redirect_stdout=False, redirect_stderr=False)
            live.start()
        ticker = asyncio.get_running_loop().create_task(tick())

    try:
        stats = await record(tr, path, metadata={"rom_protocol": protocol.schedule()},
                             on_progress=on_progress, on_open=opened, progress_interval_s=0.05)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(BaseException):
                await ticker
        if live is not None:
            live.stop()
    view.stats = stats
    for at, _phase, text in view.due(float("inf")):
        console.print(f"[dim]{_mmss(at)}[/dim] [bold]{text}[/bold]")
    if not stopped[0]:
        console.print("[yellow]the device stopped streaming before the end of the test[/yellow]")
    return stats


async def _record_device(args, out: Path, console, err_console):
    """Connect (real adapter, or the virtual radio) and record the guided test into
    ``out/rom.nape``. Returns its path.

    Raises:
        DeviceError, FirmwareError, RecordingError.
    """
    from .analysis.rom import Protocol
    from .ble import BleTransport, VirtualDevice, nsim_blob, virtual_radio
    from .errors import DeviceError
    from .record_cli import default_keystore, owner_key_kwargs

    protocol = Protocol()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rom.nape"
    if path.exists() and not args.overwrite:
        raise NapeError(f"{path}: already exists (use --overwrite to replace it, or --out for another folder)")
    vd = None
    try:
        bumble = None
        if args.virtual_radio:
            radio = virtual_radio(args.radio)
            if radio is None:
                if args.radio and os.path.sep in args.radio:
                    raise DeviceError(f"no virtual radio at {args.radio}")
                from .sim import SimSettings, simulate_day

                # an everyday wearer long enough for the whole protocol
                scale = max(0.1, 2.0 * protocol.total_s / 900.0)
                vd = VirtualDevice(nsim_blob(simulate_day(seed=args.seed, settings=SimSettings(time_scale=scale))),
                                   speed=args.speed)
                await vd.start()
                radio = vd.transport
            bumble = {"transport": radio, "keystore": str(args.keystore or default_keystore())}
        # a virtual board started here is paired in its power-on window (a real one: `nape pair`)
        tr = BleTransport(args.address, bumble=bumble, backfill=False, scan_timeout=args.scan_timeout,
                          give_up_after_s=LIVE_GRACE_S, pair=vd is not None, **owner_key_kwargs())
        stats = await _record_live(tr, path, protocol, bool(args.virtual_radio), console, err_console)
    finally:
        if vd is not None:
            await vd.stop()
    console.print(f"recorded {stats.samples} samples ({stats.lost_samples} lost) → {path}")
    return path


def analyse_and_report(path: Path, out: Path | None, args, index: bool, console=None, err_console=None):
    """Analyse one ROM recording, print the table, write the reports and index them.

    Returns:
        (RomResult, {"html": path, "json": path}, trends db path or None).

    Raises:
        RecordingError, RomError: the file is not a readable ROM test.
    """
    from . import trends
    from .analysis.rom import analyse_rom, print_rom_summary, write_rom_reports
    from .recording import open_recording
    from .settings import AnalysisSettings

    c, e = (console, err_console) if console is not None else _consoles()
    settings = AnalysisSettings.from_json(args.settings) if getattr(args, "settings", None) else AnalysisSettings()
    settings = settings.with_overrides(getattr(args, "set", None) or [])
    open_recording(path)  # fail fast with one line, before any progress bar
    with _progress(e) as prog:
        task = prog.add_task(f"analysing {path.name}", total=None)

        def on_progress(done, total):
            prog.update(task, completed=done, total=total or None)

        result = analyse_rom(path, settings, on_progress=on_progress)
    print_rom_summary(result, c)
    paths = write_rom_reports(result, out or path.parent, f"{path.stem}.rom")
    db = trends.index_rom_after_analysis(result, paths, db=getattr(args, "db", None)) if index else None
    return result, paths, db


def cmd_rom(args) -> int:
    """Guided neck range-of-motion test: end range in six directions against typical values."""
    c, e = _consoles()
    if sum(bool(x) for x in (args.file, args.virtual, args.virtual_radio)) > 1:
        raise NapeError("give only one of: a recording to analyse, --virtual, --virtual-radio")
    if args.file:
        path = Path(args.file)
        out = Path(args.out) if args.out else None
        _, paths, db = analyse_and_report(path, out, args, index=True, console=c, err_console=e)
    elif args.virtual:
        out = Path(args.out or "nape-rom")
        path, _ = record_virtual(out, args.seed, _parse_sim_max(args.sim_max), args.misalignment, args.mtu, c, e)
        # simulated tests stay out of the user's trends unless a database is named
        _, paths, db = analyse_and_report(path, out, args, index=bool(args.db), console=c, err_console=e)
    else:
        out = Path(args.out or "nape-rom")
        path = asyncio.run(_record_device(args, out, c, e))
        # a real device's test goes into the trends; the virtual radio's (not a ROM test) only with --db
        _, paths, db = analyse_and_report(path, out, args, index=not args.virtual_radio or bool(args.db),
                                          console=c, err_console=e)
    c.print(f"[bold]report:[/bold] {paths['html'].resolve()}", soft_wrap=True)
    c.print(f"json:   {paths['json'].resolve()}", soft_wrap=True)
    if db:
        c.print(f"trends: indexed in {db} (nape sessions, nape trends)", soft_wrap=True)
    return 0


def _angle(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 45.0:
        raise argparse.ArgumentTypeError(f"must be 0..45 degrees: {v}")
    return v


def register(subparsers) -> None:
    """Add the ``rom`` command to the nape CLI."""
    from . import trends

    r = subparsers.add_parser(
        "rom", help="guided neck range-of-motion test (a Nape, the simulated wearer, or a recorded test)",
        description=cmd_rom.__doc__ + "\n\nThe wearer sits upright and still, then bends the head forward, back, "
        "to each side and turns it to each side, holding each end position for 3 s. The largest angle held for "
        "1 s in each direction is compared with typical values for healthy adults (sources in nape/settings.py).\n"
        "With a device (no FILE, no --virtual) the prompts are shown live with a countdown; keep the "
        "wearer sitting still until the first prompt. The recording stops at the end of the test.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  nape rom                                  a real Nape (the first in range)\n"
               "  nape rom --address C0:4E:41:50:45:01 --out ~/nape/rom-today\n"
               "  nape rom --virtual-radio --speed 10        plumbing check on the virtual Nape\n"
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
    r.add_argument("--speed", type=positive_float, default=1.0,
                   help="virtual Nape started for the session: times real time (default 1)")
    r.add_argument("--keystore", type=Path, help="bond key store of the virtual radio's central")
    r.add_argument("--scan-timeout", type=positive_float, default=10.0, help="seconds to look for the device (default 10)")
    r.add_argument("--overwrite", action="store_true", help="replace OUT/rom.nape if it exists (device recording)")
    r.add_argument("--seed", type=nonneg_int, default=0,
                   help="simulation seed (--virtual, and the virtual Nape started for --virtual-radio; default 0)")
    r.add_argument("--sim-max", action="append", metavar="DIRECTION=DEG",
                   help="simulated end range of one direction, e.g. rotation_left=55 (--virtual; repeatable)")
    r.add_argument("--misalignment", type=_angle, default=0.0,
                   help="simulated sensor mounting misalignment, degrees (--virtual, 0..45, default 0)")
    r.add_argument("--mtu", type=mtu, default=247, help="ATT MTU of the simulated link (23..517, default 247)")
    r.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one analysis setting")
    r.add_argument("--settings", help="JSON file of setting overrides")
    trends.add_db_argument(r)
    r.set_defaults(func=cmd_rom)
