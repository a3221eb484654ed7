"""``nape sessions`` and ``nape trends``: what the trends database (:mod:`nape.trends`) holds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.table import Table

from .. import safe_write, trends
from ..errors import NapeError
from ..trends import GRADES, ROM_DIRECTIONS, RomSession, Session
from .common import add_db_argument, console, progress


def _short_path(path: str) -> str:
    """File name, then its folder (with ~ for the home folder) dimmed on the next line."""
    p = Path(path)
    folder = str(p.parent)
    home = str(Path.home())
    if folder == home or folder.startswith(home + os.sep):
        folder = "~" + folder[len(home):]
    return f"{p.name}\n[dim]{folder}[/dim]"


def reanalyse_changed(db_path: Path, items: list[Session], rom: list[RomSession]) -> tuple[int, int]:
    """Analyse again every indexed recording or ROM test whose file changed since, with a
    progress bar over the files; reports are rewritten where they were (else beside the file).

    A file that cannot be analysed gets one warning line; the others go on.

    Returns:
        (files re-analysed, files that failed).
    """
    from ..analysis import analyse
    from ..analysis.rom import analyse_rom
    from ..report import write_reports
    from ..report.rom import write_rom_reports

    todo = [("recording", s) for s in items if s.status == "changed"] + [("rom", s) for s in rom if s.status == "changed"]
    done = failed = 0
    with progress(counted=True) as prog:
        task = prog.add_task("re-analysing changed recordings", total=len(todo))
        for kind, s in todo:
            path = Path(s.path)
            prog.update(task, description=f"re-analysing {path.name}")
            out = Path(s.report_html).parent if s.report_html else path.parent
            try:
                if kind == "rom":
                    r = analyse_rom(path)
                    trends.index_rom(db_path, r, write_rom_reports(r, out, Path(s.report_html).stem if s.report_html
                                                                   else f"{path.stem}.rom"))
                else:
                    f = analyse(path)
                    trends.index_findings(db_path, f, write_reports(f, out, Path(s.report_html).stem
                                                                    if s.report_html else path.stem))
                done += 1
            except (NapeError, OSError) as e:
                failed += 1
                print(f"nape: warning: {path.name} not re-analysed: {e}", file=sys.stderr)
            prog.advance(task)
    return done, failed


def cmd_sessions(args) -> int:
    """List the recordings and range-of-motion tests indexed in the trends database and whether
    their files still exist."""
    from ..report.words import fmt_duration

    db_path = trends.resolve_db_path(args.db)
    items = trends.sessions(db_path)
    rom = trends.rom_sessions(db_path)
    c = console
    if args.forget_missing:
        gone = [s.path for s in items if s.status == "missing"] + [s.path for s in rom if s.status == "missing"]
        n = trends.forget(db_path, gone)
        c.print(f"forgot {n} missing recording{'s' if n != 1 else ''}")
        items = [s for s in items if s.status != "missing"]
        rom = [s for s in rom if s.status != "missing"]
    if args.reanalyse:
        done, failed = reanalyse_changed(db_path, items, rom)
        c.print(f"re-analysed {done} changed file{'s' if done != 1 else ''}" + (f", {failed} failed" if failed else ""))
        items, rom = trends.sessions(db_path), trends.rom_sessions(db_path)
    style = {"ok": "green", "missing": "bold red", "changed": "yellow"}
    if items or not rom:
        t = Table(title=f"Recordings in {db_path}")
        t.add_column("start", no_wrap=True)
        t.add_column("recording", overflow="fold", ratio=1)  # the column that folds in a narrow terminal
        for col in ("duration", "neck min", "back min", "episodes", "jolts m/M/S"):
            t.add_column(col, justify="right")
        t.add_column("status", no_wrap=True, min_width=7)
        for s in items:
            t.add_row(s.start.astimezone().strftime("%Y-%m-%d %H:%M"), _short_path(s.path), fmt_duration(s.duration_s),
                      "–" if s.neck_poor_min is None else f"{s.neck_poor_min:.1f}", f"{s.trunk_poor_min:.1f}",
                      str(s.episodes), "/".join(str(s.jolts[g]) for g in GRADES),
                      f"[{style[s.status]}]{s.status}[/]" + (" [yellow]little data[/]" if s.low_coverage else ""))
        c.print(t)
        low = sum(s.low_coverage for s in items)
        if low:
            c.print(f"{low} recording{'s' if low != 1 else ''} with little valid data (under a minute, or under half "
                    "of its time): left out of trends' totals")
    if rom:
        t = Table(title="Neck range-of-motion tests (end range, °)")
        t.add_column("start", no_wrap=True)
        t.add_column("test", overflow="fold", ratio=1)
        for col in ("flex", "ext", "side L", "side R", "rot L", "rot R", "below"):
            t.add_column(col, justify="right")
        t.add_column("status", no_wrap=True, min_width=7)
        for s in rom:
            t.add_row(s.start.astimezone().strftime("%Y-%m-%d %H:%M"), _short_path(s.path),
                      *("–" if s.max_deg[k] is None else f"{s.max_deg[k]:.0f}" for k in ROM_DIRECTIONS),
                      str(s.below_typical), f"[{style[s.status]}]{s.status}[/]")
        c.print(t)
    missing = sum(s.status == "missing" for s in items) + sum(s.status == "missing" for s in rom)
    changed = sum(s.status == "changed" for s in items) + sum(s.status == "changed" for s in rom)
    if missing:
        c.print(f"{missing} file{'s' if missing != 1 else ''} missing (moved or deleted); their results still "
                "count in trends (nape sessions --forget-missing drops them)")
    if changed:
        c.print(f"{changed} file{'s' if changed != 1 else ''} changed since analysed: nape sessions --reanalyse "
                "analyses them again")
    return 0


def cmd_trends(args) -> int:
    """Write an HTML page of daily and weekly poor-posture minutes, jolts and neck range of
    motion, and print a summary."""
    from ..report.trends import render_trends_html
    from .summaries import print_trends_summary

    db_path = trends.resolve_db_path(args.db)
    with progress(counted=True) as prog:
        task = prog.add_task("reading the trends database", total=6)
        items = trends.sessions(db_path)
        prog.advance(task)
        rom = trends.rom_sessions(db_path)
        prog.advance(task)
        if not items and not rom:
            raise trends.TrendsError(f"trends database {db_path} holds no recordings yet: analyse one first "
                                     "(nape analyse FILE, or nape rom FILE for a range-of-motion test)")
        out = Path(args.out)
        if out.is_dir():
            out = out / "trends.html"
        if out.is_file():  # never write a page over a recording
            with open(out, "rb") as f:
                if f.read(8) == b"\x89NAP\r\n\x1a\n":
                    raise NapeError(f"{out} is a .nape recording; refusing to overwrite it with the trends page")
        out.parent.mkdir(parents=True, exist_ok=True)

        def step(text: str) -> None:
            prog.update(task, description=f"building the trends page: {text}", advance=1)

        page = render_trends_html(items, rom=rom, on_step=step)
        safe_write.write_text(out, page)
    print_trends_summary(items, console, rom=rom)
    console.print(f"[bold]trends:[/bold] {out.resolve()}", soft_wrap=True)
    return 0


def register(sub, formatter) -> None:
    """Add ``sessions`` and ``trends``."""
    s = sub.add_parser(
        "sessions", help="list analysed recordings and range-of-motion tests indexed for trends (marks missing files)",
        description=cmd_sessions.__doc__, formatter_class=formatter,
        epilog="Every 'nape analyse' and 'nape rom FILE' adds its recording to the trends database.\n\n"
               "example:\n  nape sessions\n  nape sessions --db ~/nape/nape.db --forget-missing\n"
               "  nape sessions --reanalyse")
    add_db_argument(s)
    s.add_argument("--forget-missing", action="store_true",
                   help="drop recordings whose file no longer exists from the database")
    s.add_argument("--reanalyse", "--reanalyze", action="store_true",
                   help="analyse again every recording whose file changed since it was analysed (progress bar)")
    s.set_defaults(func=cmd_sessions)

    t = sub.add_parser(
        "trends", help="daily and weekly poor-posture minutes, jolts and neck range of motion (HTML + summary)",
        description=cmd_trends.__doc__, formatter_class=formatter,
        epilog="The page is one self-contained file (plotly inlined) that opens offline.\n\n"
               "example:\n  nape trends\n  nape trends --out reports/trends.html --db ~/nape/nape.db")
    add_db_argument(t)
    t.add_argument("--out", default="nape-trends.html", help="HTML file to write (default: ./nape-trends.html)")
    t.set_defaults(func=cmd_trends)
