"""Terminal summaries (rich) of a recording's findings, a range-of-motion test and the trends:
the CLI's side of the reports (the pages are :mod:`nape.report`)."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

from ..plainwords import top_actions
from ..report.recording import (CAUSE_WORDS, ROLE_WORDS, clock, headlines, peak_g, quality_notes, start_time,
                              valid_words)
from ..safe_write import display_name
from ..report.words import fmt_duration


def print_summary(f, console: Console | None = None) -> None:
    """A recording's findings: headlines and a table of findings with coloured grades."""
    c = console or Console()
    start = start_time(f)
    c.print(f"[bold]Nape[/bold] · {rich_escape(display_name(Path(f.path).name))}"
            + (f" · {start.strftime('%Y-%m-%d %H:%M')}" if start else "")
            + f" · {fmt_duration(f.duration_s)}, {valid_words(f)} · sensors: "
            + rich_escape(" and ".join(ROLE_WORDS.get(r, str(r)) for r in f.roles)))  # the page's words
    for h in headlines(f):  # text from the recording (gap reasons, ...) is never rich markup
        c.print(f"  • {rich_escape(h)}")
    if f.jolts or f.episodes:
        t = Table(title="Findings")
        for col in ("time", "finding", "grade / held", "peak"):
            t.add_column(col)
        style = {"mild": "yellow", "moderate": "dark_orange", "severe": "bold red"}
        rows = [(e.start_s, clock(f, e.start_s), e.pattern or e.kind.replace("_", " "), fmt_duration(e.duration_s),
                 f"{e.peak_deg:.0f}°") for e in f.episodes]
        rows += [(j.peak_t_s, clock(f, j.peak_t_s), f"jolt: {CAUSE_WORDS[j.cause]}", f"[{style[j.grade]}]{j.grade}[/]",
                  peak_g(j)) for j in f.jolts]
        for row in sorted(rows, key=lambda r: r[0]):
            t.add_row(*row[1:])
        c.print(t)
    # what to do next: the report page's list, in the same words
    c.print("[bold]What to do next[/bold]")
    for i, a in enumerate(top_actions(f), 1):
        c.print(f"  {i}. {rich_escape(a)}")
    for n in quality_notes(f):
        c.print(f"  [dim]{rich_escape(n)}[/dim]")


def print_rom_summary(r, console: Console | None = None) -> None:
    """A range-of-motion test: a table of the six directions with coloured verdicts, then plain words."""
    c = console or Console()
    t = Table(title=f"Neck range of motion · {Path(r.path).name}")
    for col in ("direction", "end range", "typical", "verdict"):
        t.add_column(col, justify="right" if col in ("end range", "typical") else "left")
    style = {"below": "bold dark_orange", "typical": "green", "above": "cyan", "not_measured": "dim"}
    for d in r.directions:
        t.add_row(d.label, "–" if d.max_deg is None else f"{d.max_deg:.0f}°",
                  f"{d.typical_low_deg:.0f}–{d.typical_high_deg:.0f}°",
                  f"[{style[d.verdict]}]{d.verdict.replace('_', ' ')}[/]")
    c.print(t)
    heads = r.headlines()
    for d, h in zip(r.directions, heads):
        if d.verdict != "typical":
            c.print(f"  • {h}")
    for h in heads[len(r.directions):]:
        c.print(f"  • {h}")


def print_trends_summary(items, console: Console | None = None, tz: tzinfo | None = None, last_days: int = 14,
                         rom=None) -> None:
    """The trends: the last ``last_days`` days and every week, then range of motion over days."""
    from ..report.trends import rom_changes
    from ..trends import ROM_DIRECTIONS, daily_from, rom_daily_from, weekly_from

    c = console or Console()
    for title, periods in ((f"Last {last_days} days with recordings", daily_from(items, tz)[-last_days:]),
                           ("Weeks", weekly_from(items, tz))):
        if not periods:
            continue
        t = Table(title=title, box=box.SIMPLE_HEAD)
        # the period never wraps (it read "2026-…" at 80 columns): short headers, explained below
        t.add_column("period", no_wrap=True, min_width=10)
        for col in ("recs", "min", "neck fwd", "back fwd", "episodes", "mild", "mod.", "severe"):
            t.add_column(col, justify="right", min_width=len(col))
        for p in periods:
            t.add_row(p.shown, str(p.recordings), f"{p.recorded_min:.0f}",
                      "–" if p.neck_poor_min is None else f"{p.neck_poor_min:.1f}", f"{p.trunk_poor_min:.1f}",
                      str(p.episodes), str(p.jolts["mild"]), str(p.jolts["moderate"]),
                      f"[bold red]{p.jolts['severe']}[/]" if p.jolts["severe"] else "0")
        c.print(t)
        c.print("  [dim]min: minutes recorded; neck fwd / back fwd: minutes with the neck bent / upper back leaning "
                "forward beyond its limit (nape/settings.py); episodes: long stretches; mild, mod(erate), severe: "
                "jolts[/dim]")
    left = sum(p.left_out for p in daily_from(items, tz))
    if left:
        c.print(f"{left} recording{'s' if left != 1 else ''} with little valid data left out of these totals "
                "(nape sessions lists them)")
    if rom:
        t = Table(title=f"Neck range of motion, last {last_days} days with tests (mean end range, °)")
        t.add_column("day")
        for col in ("tests", "flex", "ext", "side L", "side R", "rot L", "rot R"):
            t.add_column(col, justify="right")
        for d in rom_daily_from(rom, tz)[-last_days:]:
            t.add_row(d.label, str(d.tests), *("–" if d.max_deg[k] is None else f"{d.max_deg[k]:.0f}"
                                               for k in ROM_DIRECTIONS))
        c.print(t)
        for line in rom_changes(rom):
            c.print(f"  • {line}")
