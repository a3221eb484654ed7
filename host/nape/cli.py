"""The ``nape`` command line. Every command has ``--help`` with an example.

Errors a user can cause print one line (``nape: error: ...``) and exit 1; wrong
arguments exit 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .argtypes import mtu, nonneg_int, positive_float_at_most
from .errors import NapeError

console = Console(stderr=False)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)


# ---------------------------------------------------------------- commands


def cmd_demo(args) -> int:
    """Simulate a wearer, stream through the firmware and wire format, record, analyse, report."""
    from .device_sim import SimulatedTransport
    from .recorder import record
    from .sim import SimSettings, simulate_day

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nape_path = out / "demo.nape"
    t0 = time.monotonic()
    with _progress() as prog:
        task = prog.add_task("simulating the wearer's day", total=None)
        sim = simulate_day(seed=args.seed, settings=SimSettings(head_imu=not args.no_head, time_scale=args.time_scale))
        (out / "demo.truth.json").write_text(json.dumps(sim.labels.to_dict(), indent=1))
        prog.update(task, description="firmware (MicroPython) → wire format → recording", total=len(sim.t), completed=0)

        def on_progress(stats):
            prog.update(task, completed=stats.samples)

        meta = {"sim_seed": args.seed}
        if args.link == "ble":
            prog.update(task, description="firmware (MicroPython) → BLE GATT on the virtual radio → recording")
            stats = asyncio.run(_record_over_virtual_ble(sim, nape_path, args.mtu, meta, on_progress))
        else:
            transport = SimulatedTransport(sim, max_value_len=args.mtu - 3)
            stats = asyncio.run(record(transport, nape_path, metadata=meta, on_progress=on_progress, overwrite=True))
    console.print(f"recorded {stats.samples} samples in {stats.packets} packets "
                  f"({stats.lost_samples} lost, {stats.malformed} malformed) → {nape_path}")
    _, paths = _analyse_and_report(nape_path, out, "report", args)  # demo data stays out of trends
    console.print(f"demo done in {time.monotonic() - t0:.1f} s")
    console.print(f"[bold]report:[/bold] {paths['html'].resolve()}")
    console.print(f"json:   {paths['json'].resolve()}")
    return 0


async def _record_over_virtual_ble(sim, path: Path, mtu_bytes: int, metadata: dict, on_progress):
    """Record ``sim`` the way a real board is recorded: the firmware's own GATT service and
    sampling loop under MicroPython on the bumble virtual radio, bleak + BleTransport on this
    side (real ATT/GATT traffic, MTU negotiation, Just Works bonding in a throw-away key store)."""
    import tempfile

    from .ble import BleTransport, VirtualDevice, nsim_blob
    from .recorder import record

    with tempfile.TemporaryDirectory(prefix="nape-demo-keys-") as keys:
        async with VirtualDevice(nsim_blob(sim), speed=0) as vd:
            bumble = {"transport": vd.transport, "keystore": str(Path(keys) / "bonds.json"),
                      "mtu": 0 if mtu_bytes == 23 else mtu_bytes}
            tr = BleTransport(bumble=bumble, pair=True)
            return await record(tr, path, metadata={**metadata, "link": "virtual-ble"},
                                on_progress=on_progress, overwrite=True)


def _analyse_and_report(path: Path, out: Path, stem: str, args) -> dict:
    from .analysis import analyse
    from .recording import open_recording
    from .report import print_summary, write_reports
    from .settings import AnalysisSettings

    settings = AnalysisSettings.from_json(args.settings) if getattr(args, "settings", None) else AnalysisSettings()
    settings = settings.with_overrides(getattr(args, "set", None) or [])
    open_recording(path)  # fail fast, with one line, before any progress bar
    with _progress() as prog:
        task = prog.add_task(f"analysing {path.name}", total=None)
        findings = analyse(path, settings, on_progress=lambda done, total: prog.update(task, completed=done,
                                                                                       total=total or None))
    print_summary(findings, console)
    with _progress() as prog:  # an 8-hour report takes seconds to draw
        prog.add_task("writing the report", total=None)
        paths = write_reports(findings, out, stem)
    return findings, paths


def cmd_analyse(args) -> int:
    """Analyse a recording and write its report."""
    path = Path(args.file)
    out = Path(args.out) if args.out else path.parent
    findings, paths = _analyse_and_report(path, out, path.stem, args)
    console.print(f"[bold]report:[/bold] {paths['html'].resolve()}")
    console.print(f"json:   {paths['json'].resolve()}")
    from . import trends

    db = trends.index_after_analysis(findings, paths, db=args.db)
    if db:
        console.print(f"trends: indexed in {db} (nape sessions, nape trends)", soft_wrap=True)
    return 0


def cmd_info(args) -> int:
    """Describe a recording: header, chunks, packets, damage."""
    from .recording import ChunkType, open_recording

    rec = open_recording(args.file)
    counts = {t.name: 0 for t in ChunkType}
    packets = 0
    for c in rec.chunks():
        counts[c.type.name] += 1
        packets += len(c.packets or [])
    info = {"file": str(args.file), "version": rec.version, "metadata": rec.metadata, "chunks": counts,
            "packets": packets, "closed_cleanly": rec.closed_cleanly,
            "issues": [str(i) for i in rec.issues]}
    sessions = [n for _t, n in rec.iter_notes() if n.get("event") == "session_end"]  # recorder totals
    if sessions:
        info["session"] = sessions[-1]
    gaps = [n for _t, n in rec.iter_notes() if n.get("event") == "gap"]  # missing samples, with reason
    if gaps:
        info["gaps"] = gaps
    console.print_json(json.dumps(info, default=str))
    return 0


def cmd_decode(args) -> int:
    """Decode one wire-format packet given as hex (protocol/SPEC.md) and print it as JSON."""
    from . import wire
    from .errors import PacketError

    try:
        data = bytes.fromhex(args.hex.replace(" ", "").replace(":", ""))
    except ValueError:
        raise PacketError(f"not hexadecimal: {args.hex[:40]!r}") from None
    pkt = wire.decode_packet(data)
    out = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in vars(pkt).items()}
    out["type"] = type(pkt).__name__
    out["roles"] = list(pkt.roles)
    console.print_json(json.dumps(out))
    return 0


def cmd_scan(args) -> int:
    """List Nape devices in range (a real adapter via bleak, or --virtual: the virtual radio)."""
    from rich.table import Table

    from .ble import scan

    found = asyncio.run(scan(virtual=args.virtual, timeout=args.timeout, all_devices=args.all))
    table = Table(title="BLE devices" + (" (virtual radio)" if args.virtual else ""))
    for col in ("name", "address", "RSSI (dBm)", "Nape service"):
        table.add_column(col)
    for d in found:
        table.add_row(d.name or "?", d.address, str(d.rssi), "yes" if d.is_nape else "no")
    console.print(table)
    if not found:
        console.print("no Nape device found: is it charged, in range and not connected to another host?")
    return 0


def cmd_doctor(args) -> int:
    """Check what this machine has for Nape: MicroPython, firmware, Bluetooth, flashing tools."""
    from rich.table import Table

    from .doctor import environment_overrides, healthy, run_checks

    checks = run_checks()
    table = Table(title="nape doctor")
    for col in ("check", "", "found", "to fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        mark = "[green]ok[/green]" if c.ok else ("[red]missing[/red]" if c.required else "[yellow]optional[/yellow]")
        table.add_row(c.name, mark, c.detail, c.fix)
    console.print(table)
    for k, v in environment_overrides().items():
        console.print(f"{k}={v}")
    ok = healthy(checks)
    console.print("ready: nape demo and nape flash can run" if ok else "not ready: fix the required items above")
    return 0 if ok else 1


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nape", description="Nape: neck and upper-back posture and jolt analysis.",
                epilog="Start with:  nape demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"nape {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("demo", help="simulate a wearer end to end and write a report (no hardware)",
                       description=cmd_demo.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  nape demo\n  nape demo --out /tmp/nape --seed 3 --mtu 23\n  nape demo --link pipe --no-head")
    d.add_argument("--out", default="nape-demo", help="output folder (default: ./nape-demo)")
    d.add_argument("--seed", type=nonneg_int, default=0, help="simulation seed (default 0)")
    d.add_argument("--time-scale", type=positive_float_at_most(100.0), default=1.0,
                   help="stretch the scripted day's segments by this factor (default 1.0 ≈ 15 min)")
    d.add_argument("--mtu", type=mtu, default=247, help="ATT MTU of the simulated link (23..517, default 247)")
    d.add_argument("--no-head", action="store_true", help="simulate a board without the head IMU")
    d.add_argument("--link", choices=("ble", "pipe"), default="ble",
                   help="ble (default): real GATT traffic over the bumble virtual radio, as a board is "
                        "recorded; pipe: the firmware's packets straight through a pipe (faster)")
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("analyse", aliases=["analyze"], help="analyse a .nape recording and write its report",
                       description=cmd_analyse.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  nape analyse drive.nape --out reports/ --set neck_flexion_deg=25")
    a.add_argument("file", help="a .nape recording")
    a.add_argument("--out", help="folder for FILE.html and FILE.json (default: beside the recording)")
    a.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one analysis setting")
    a.add_argument("--settings", help="JSON file of setting overrides")
    a.set_defaults(func=cmd_analyse)

    i = sub.add_parser("info", help="show a recording's header, chunks and any damage",
                       description=cmd_info.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  nape info drive.nape")
    i.add_argument("file", help="a .nape recording")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("decode", help="decode one BLE packet given as hex (debugging the wire format)",
                       description=cmd_decode.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  nape decode 0101010a000000000000000010270000...")
    c.add_argument("hex", help="the packet bytes in hexadecimal (spaces and colons allowed)")
    c.set_defaults(func=cmd_decode)

    sc = sub.add_parser("scan", help="list Nape devices in range (or on the virtual radio)",
                        description=cmd_scan.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="example:\n  nape scan\n  nape scan --virtual --timeout 3")
    sc.add_argument("--virtual", action="store_true", help="scan the virtual radio (starts a virtual device)")
    sc.add_argument("--timeout", type=positive_float_at_most(3600.0), default=5.0, help="seconds to scan (default 5)")
    sc.add_argument("--all", action="store_true", help="list every advertiser, not only Nape devices")
    sc.set_defaults(func=cmd_scan)

    dr = sub.add_parser("doctor", help="check MicroPython, firmware, Bluetooth and flashing tools on this machine",
                        description=cmd_doctor.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="example:\n  nape doctor")
    dr.set_defaults(func=cmd_doctor)

    from . import export, flash, importer, record_cli, trends

    record_cli.register(sub)
    flash.register(sub)
    importer.register(sub)
    export.register(sub)
    trends.register(sub)
    from . import rom_cli

    rom_cli.register(sub)
    trends.add_db_argument(a)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except NapeError as e:
        print(f"nape: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. unwritable output folder, full disk
        print(f"nape: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nape: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
