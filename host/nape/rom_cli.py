"""``nape rom``: the guided neck range-of-motion test.

Modes:

* ``nape rom --virtual`` (alias ``--simulate``): a simulated wearer does the test; their IMU
  signals run through the firmware's own code under MicroPython and the wire format
  (:class:`nape.device_sim.SimulatedTransport`) into ``rom.nape``, with the prompts shown as
  the stream reaches them; then the recording is analysed.
* ``nape rom FILE.nape``: analyse a recorded test.
* ``nape rom`` alone (a real device): not available yet — the guided recording needs a way
  to stop a live BLE stream when the test ends, which the recorder does not have; the
  command says so in one line.

Results: a terminal table, ``STEM.rom.html`` (self-contained) and ``STEM.rom.json``
(``protocol/rom.schema.json``), and a row in the trends database (``nape trends`` shows
range of motion over days; ``nape sessions`` lists the tests). Simulated tests are kept
out of the trends database unless ``--db`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from .errors import NapeError

REAL_DEVICE_MESSAGE = ("guided range-of-motion recording with a real device is not available yet: run the test on the "
                       "simulated wearer (nape rom --virtual) or analyse a recorded test (nape rom FILE.nape)")


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
    if args.file and args.virtual:
        raise NapeError("give either a recording to analyse or --virtual, not both")
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
        raise NapeError(REAL_DEVICE_MESSAGE)
    c.print(f"[bold]report:[/bold] {paths['html'].resolve()}", soft_wrap=True)
    c.print(f"json:   {paths['json'].resolve()}", soft_wrap=True)
    if db:
        c.print(f"trends: indexed in {db} (nape sessions, nape trends)", soft_wrap=True)
    return 0


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {v}")
    return v


def _angle(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 45.0:
        raise argparse.ArgumentTypeError(f"must be 0..45 degrees: {v}")
    return v


def _mtu(text: str) -> int:
    v = _nonneg_int(text)
    if not 23 <= v <= 517:
        raise argparse.ArgumentTypeError(f"ATT MTU must be 23..517, got {v}")
    return v


def register(subparsers) -> None:
    """Add the ``rom`` command to the nape CLI."""
    from . import trends

    r = subparsers.add_parser(
        "rom", help="guided neck range-of-motion test (simulated wearer, or analyse a recorded test)",
        description=cmd_rom.__doc__ + "\n\nThe wearer sits upright and still, then bends the head forward, back, "
        "to each side and turns it to each side, holding each end position for 3 s. The largest angle held for "
        "1 s in each direction is compared with typical values for healthy adults (sources in nape/settings.py).\n"
        "Guided recording with a real device is not available yet.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  nape rom --virtual\n  nape rom --virtual --sim-max rotation_left=55 --out /tmp/rom\n"
               "  nape rom nape-rom/rom.nape --db ~/nape/nape.db")
    r.add_argument("file", nargs="?", help="a recorded range-of-motion test (.nape) to analyse")
    r.add_argument("--virtual", "--simulate", action="store_true",
                   help="run the test on the simulated wearer (firmware under MicroPython, no hardware)")
    r.add_argument("--out", help="folder for the reports (default: beside the recording; ./nape-rom with --virtual)")
    r.add_argument("--seed", type=_nonneg_int, default=0, help="simulation seed (--virtual, default 0)")
    r.add_argument("--sim-max", action="append", metavar="DIRECTION=DEG",
                   help="simulated end range of one direction, e.g. rotation_left=55 (--virtual; repeatable)")
    r.add_argument("--misalignment", type=_angle, default=0.0,
                   help="simulated sensor mounting misalignment, degrees (--virtual, 0..45, default 0)")
    r.add_argument("--mtu", type=_mtu, default=247, help="ATT MTU of the simulated link (23..517, default 247)")
    r.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one analysis setting")
    r.add_argument("--settings", help="JSON file of setting overrides")
    trends.add_db_argument(r)
    r.set_defaults(func=cmd_rom)
