"""``nape analyse``, ``nape info``, ``nape decode`` and ``nape export``: commands on a recording
(or one packet) that is already on disk."""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape as rich_escape

from ..safe_write import display_name
from .common import add_db_argument, add_settings_arguments, console, progress, settings_from_args


def analyse_and_report(path: Path, out: Path, stem: str, args):
    """Analyse ``path`` with the settings the command line asks for, print the terminal summary
    and write ``out/stem.html`` and ``out/stem.json``.

    Returns:
        (Findings, {"html": path, "json": path}).

    Raises:
        RecordingError: the file is not a readable recording; SettingsError; OSError.
    """
    from ..analysis import analyse
    from ..recording import open_recording
    from ..report import write_reports
    from .summaries import print_summary

    settings = settings_from_args(args)
    open_recording(path)  # fail fast, with one line, before any progress bar
    with progress() as prog:
        task = prog.add_task(f"analysing {path.name}", total=None)
        findings = analyse(path, settings, on_progress=lambda done, total: prog.update(task, completed=done,
                                                                                       total=total or None))
    with progress() as prog:  # an 8-hour report takes seconds to draw
        prog.add_task("writing the report", total=None)
        paths = write_reports(findings, out, stem)
    print_summary(findings, console)  # after the files: a closed pipe or a Ctrl-C here loses nothing
    return findings, paths


def cmd_analyse(args) -> int:
    """Analyse a recording and write its report."""
    from .. import trends

    path = Path(args.file)
    out = Path(args.out) if args.out else path.parent
    findings, paths = analyse_and_report(path, out, path.stem, args)
    console.print(f"[bold]report:[/bold] {rich_escape(display_name(paths['html'].resolve()))}")
    console.print(f"json:   {rich_escape(display_name(paths['json'].resolve()))}")
    if args.no_trends:
        return 0
    db = trends.index_after_analysis(findings, paths, db=args.db)
    if db:  # the user's own database, written by default: say so, and how not to
        console.print(f"trends: added to your trends database {db} (nape sessions, nape trends; "
                      "--no-trends to skip)", soft_wrap=True, markup=False)
    return 0


def cmd_info(args) -> int:
    """Describe a recording: header, chunks, packets, damage."""
    from ..recording import ChunkType, open_recording

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
    from .. import wire
    from ..errors import PacketError

    try:
        data = bytes.fromhex(args.hex.replace(" ", "").replace(":", ""))
    except ValueError:
        raise PacketError(f"not hexadecimal: {args.hex[:40]!r}") from None
    pkt = wire.decode_packet(data)
    out = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in vars(pkt).items()}
    if "marks" in out:  # MARKS (type 4): each mark with its kind named
        out["marks"] = [vars(m) | {"kind_name": m.name} for m in pkt.marks]
    out["type"] = type(pkt).__name__
    out["roles"] = list(pkt.roles)
    console.print_json(json.dumps(out))
    return 0


def cmd_export(args) -> int:
    """Analyse a recording and export its posture series, episodes and jolts as CSV (and Parquet)."""
    from ..analysis import analyse
    from ..export import ExportError, parquet_available, write_csv, write_parquet

    if not args.csv and args.parquet is None:
        raise ExportError("nothing to export: give --csv OUTDIR and/or --parquet [OUTDIR]")
    parquet_dir = args.parquet
    if parquet_dir is True:
        if not args.csv:
            raise ExportError("--parquet without a folder needs --csv OUTDIR (or give --parquet OUTDIR)")
        parquet_dir = args.csv
    if parquet_dir is not None and not parquet_available():  # fail before the analysis, not after
        raise ExportError("Parquet export needs pyarrow: pip install 'nape[parquet]' (or pip install pyarrow)")
    settings = settings_from_args(args)
    path = Path(args.file)
    with progress() as prog:
        task = prog.add_task(f"analysing {path.name}", total=None)
        findings = analyse(path, settings,
                           on_progress=lambda done, total: prog.update(task, completed=done, total=total or None))
    if args.csv:
        for p in write_csv(findings, args.csv).values():
            console.print(f"csv:     {p}", soft_wrap=True)
    if parquet_dir is not None:
        for p in write_parquet(findings, parquet_dir).values():
            console.print(f"parquet: {p}", soft_wrap=True)
    return 0


def register(sub, formatter) -> None:
    """Add ``analyse`` (alias ``analyze``), ``info``, ``decode`` and ``export``."""
    a = sub.add_parser("analyse", aliases=["analyze"], help="analyse a .nape recording and write its report",
                       description=cmd_analyse.__doc__, formatter_class=formatter,
                       epilog="example:\n  nape analyse drive.nape --out reports/ --set neck_flexion_deg=25")
    a.add_argument("file", help="a .nape recording")
    a.add_argument("--out", help="folder for FILE.html and FILE.json (default: beside the recording)")
    add_settings_arguments(a)
    add_db_argument(a)
    a.add_argument("--no-trends", action="store_true",
                   help="do not add this recording to the trends database (by default it is added)")
    a.set_defaults(func=cmd_analyse)

    i = sub.add_parser("info", help="show a recording's header, chunks and any damage",
                       description=cmd_info.__doc__, formatter_class=formatter,
                       epilog="example:\n  nape info drive.nape")
    i.add_argument("file", help="a .nape recording")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("decode", help="decode one BLE packet given as hex (debugging the wire format)",
                       description=cmd_decode.__doc__, formatter_class=formatter,
                       epilog="example:\n  nape decode 0101010a000000000000000010270000...")
    c.add_argument("hex", help="the packet bytes in hexadecimal (spaces and colons allowed)")
    c.set_defaults(func=cmd_decode)

    p = sub.add_parser(
        "export", help="export a recording's angles, episodes and jolts as CSV (or Parquet)",
        description=(cmd_export.__doc__ or "") + "\n\nWrites angles.csv (time_s, trunk_inclination_deg, neck_flexion_deg, "
                    "lying, ...; 1 Hz), episodes.csv and jolts.csv (units in the column names).",
        formatter_class=formatter,
        epilog="example:\n  nape export drive.nape --csv drive-tables/\n"
               "  nape export drive.nape --csv out/ --parquet\n"
               "  nape export drive.nape --parquet out/ --set neck_flexion_deg=25")
    p.add_argument("file", help="a .nape recording")
    p.add_argument("--csv", metavar="OUTDIR", help="folder for angles.csv, episodes.csv, jolts.csv")
    p.add_argument("--parquet", nargs="?", const=True, metavar="OUTDIR",
                   help="also write .parquet files (needs pyarrow), into OUTDIR or the --csv folder")
    add_settings_arguments(p)
    p.set_defaults(func=cmd_export)
