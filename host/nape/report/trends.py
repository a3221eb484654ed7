"""The trends page: daily and weekly poor-posture minutes, jolts and neck range of motion
across the recordings indexed in the trends database (:mod:`nape.trends`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from ..settings import AnalysisSettings
from ..trends import (GRADES, ROM_DIRECTIONS, Period, RomDay, RomSession, Session, daily_from, local_tz,
                      rom_daily_from, weekly_from)
from .page import TOOLBAR_PX, esc, page, plot, table
from .words import GRADE_COLOUR, fmt_duration, plural

ROM_COLOURS = {"flexion": "#1565c0", "extension": "#64b5f6", "lateral_left": "#2e7d32", "lateral_right": "#81c784",
               "rotation_left": "#c62828", "rotation_right": "#ef9a9a"}
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0}
MARGIN = {"l": 44, "r": 44, "t": TOOLBAR_PX, "b": 40}

#: The test's directions in words (as nape.analysis.rom.LABELS, shorter for chart legends).
ROM_LABELS = {"flexion": "bending forward", "extension": "bending backward", "lateral_left": "side-bending left",
              "lateral_right": "side-bending right", "rotation_left": "turning left", "rotation_right": "turning right"}

def rom_changes(items: list[RomSession], change_deg: float | None = None) -> list[str]:
    """Plain words: each direction's change from the first to the latest test, if larger than
    ``change_deg`` (default: the ``rom_change_deg`` setting)."""
    thr = AnalysisSettings().rom_change_deg if change_deg is None else change_deg
    labels = {"flexion": "Bending forward", "extension": "Bending backward", "lateral_left": "Side-bending left",
              "lateral_right": "Side-bending right", "rotation_left": "Rotation left",
              "rotation_right": "Rotation right"}
    if len(items) < 2:
        return []
    out = []
    for k in ROM_DIRECTIONS:
        measured = [s for s in items if s.max_deg[k] is not None]
        if len(measured) < 2:
            continue
        a, b = measured[0], measured[-1]
        diff = b.max_deg[k] - a.max_deg[k]
        if abs(diff) > thr:
            word = "freer" if diff > 0 else "stiffer"
            out.append(f"{labels[k]}: {a.max_deg[k]:.0f}° on {a.start.astimezone().date()} → {b.max_deg[k]:.0f}° "
                       f"on {b.start.astimezone().date()} ({diff:+.0f}°, {word}).")
    if not out:
        out.append(f"Range of motion unchanged within {thr:g}° from the first to the latest test.")
    return out


def fill_days(days: list[Period]) -> list[Period]:
    """Insert empty days between the first and last so gaps show as gaps (max 400 days)."""
    if not days:
        return days
    by = {p.start: p for p in days}
    first, last = days[0].start, days[-1].start
    if (last - first).days > 400:
        return days
    out, d = [], first
    while d <= last:
        out.append(by.get(d) or Period(d.isoformat(), d))
        d += timedelta(days=1)
    return out


DAY_MS = 86_400_000  # one day on a plotly date axis


def _x(periods: list[Period], what: str) -> tuple[list, dict]:
    """x values and x-axis settings: days and weeks on a date axis with short ticks ('7 Dec')
    that fit a phone; a week is drawn at its Monday (the caption says so)."""
    starts = [p.start for p in periods]
    if what == "day":
        return [d.isoformat() for d in starts], _day_axis(starts)
    return [d.isoformat() for d in starts], _day_axis(starts, 7)


def _day_axis(days: list[date], span: int = 1) -> dict:
    """A date x axis with short day ticks ('7 Dec'), half a period (``span`` days) of room at
    each end so the first and last bars sit inside the chart; tick labels a little below the
    axis, clear of the y axes' "0" labels at the corners."""
    axis = {"type": "date", "tickformat": "%-d %b", "automargin": True, "ticklabelstandoff": 6}
    if days:
        half = timedelta(hours=12 * span)
        lo, hi = datetime.combine(min(days), time()) - half, datetime.combine(max(days), time()) + half
        axis["range"] = [lo.isoformat(timespec="minutes"), hi.isoformat(timespec="minutes")]
        if (max(days) - min(days)).days <= 10 * span:  # one tick a period: automatic ticks repeat '7 Dec'
            axis["dtick"] = span * DAY_MS
            axis["tick0"] = min(days).isoformat()  # weeks: ticks on the Mondays the bars stand on
    return axis


def _charts(periods: list[Period], what: str) -> list:
    import plotly.graph_objects as go

    x, xaxis = _x(periods, what)
    # bars a day wide on the date axis: plotly sizes them from the gaps between days, and with
    # a single day it has no gap to go by and draws them a hair wide (an empty-looking chart)
    # (explicit widths are not grouped by plotly: each bar gets its own offset, side by side)
    span = (1 if what == "day" else 7) * DAY_MS
    day = lambda k: {"width": [0.4 * span] * len(x), "offset": [(k - 1) * 0.4 * span] * len(x)}  # noqa: E731
    posture = go.Figure()
    posture.add_trace(go.Bar(x=x, y=[round(p.neck_poor_min or 0.0, 1) for p in periods],
                             name="neck bent forward (min)", marker_color="#1565c0", **day(0)))
    posture.add_trace(go.Bar(x=x, y=[round(p.trunk_poor_min, 1) for p in periods],
                             name="upper back leaning forward (min)", marker_color="#2e7d32", **day(1)))
    # a day without recordings has no recorded time to draw: a gap, not a drop to 0
    posture.add_trace(go.Scatter(x=x, y=[round(p.recorded_min, 1) if p.recordings else None for p in periods],
                                 name="recorded (min, right axis)", mode="lines+markers", connectgaps=False,
                                 line={"color": "#999", "dash": "dot"}, yaxis="y2"))
    posture.update_layout(barmode="group", yaxis_title="poor posture (min)", height=340, margin=MARGIN,
                          yaxis2={"title": "recorded (min)", "overlaying": "y", "side": "right", "rangemode": "tozero",
                                  "showgrid": False, "tickmode": "auto", "nticks": 5, "tickformat": "~r"},
                          legend=LEGEND_BELOW, xaxis=xaxis)
    jolts = go.Figure()
    for g in GRADES:
        jolts.add_trace(go.Bar(x=x, y=[p.jolts[g] for p in periods], name=g, marker_color=GRADE_COLOUR[g],
                               width=[0.8 * span] * len(x)))
    most = max((sum(p.jolts.values()) for p in periods), default=0)
    # whole jolts: a step of 1 for small counts (automatic ticks would step by 0.2 or 0.5)
    counts = {"rangemode": "tozero", "tickformat": "d"} | ({"dtick": 1, "range": [0, max(most, 1) * 1.05]}
                                                           if most <= 5 else {})
    jolts.update_layout(barmode="stack", yaxis_title="jolts", height=300, margin=MARGIN, legend=LEGEND_BELOW,
                        xaxis=xaxis, yaxis=counts)
    at = "" if what == "day" else "each bar at its Monday; "
    return [(posture, f"Poor-posture minutes per {what} ({at}neck or upper back bent forward beyond its limit)"),
            (jolts, f"Jolts per {what} by grade" + (" (each bar at its Monday)" if at else ""))]


def _rom_chart(days: list[RomDay]):
    import plotly.graph_objects as go

    fig = go.Figure()
    x = [d.start.isoformat() for d in days]
    for k in ROM_DIRECTIONS:
        fig.add_trace(go.Scatter(x=x, y=[d.max_deg[k] for d in days], name=ROM_LABELS[k] + " (°)",
                                 mode="lines+markers", line={"color": ROM_COLOURS[k]}, connectgaps=True))
    fig.update_layout(yaxis_title="end range (°)", height=380, margin=MARGIN, legend=LEGEND_BELOW,
                      xaxis=_day_axis([d.start for d in days]))
    return fig


def _rom_section(rom: list[RomSession], tz: tzinfo, div_id: str) -> str:
    if not rom:
        return ""
    chart = plot(_rom_chart(rom_daily_from(rom, tz)), div_id,
                 "Neck range of motion per day (end range held in the guided test; higher = freer)")
    changes = "".join(f"<li>{esc(c)}</li>" for c in rom_changes(rom))
    rows = [[esc(s.start.astimezone(tz).strftime("%Y-%m-%d %H:%M")), esc(Path(s.path).name),
             *("–" if s.max_deg[k] is None else f"{s.max_deg[k]:.0f}" for k in ROM_DIRECTIONS),
             str(s.below_typical), esc(s.status)] for s in rom]
    heads = ["start", "file", *(f"{ROM_LABELS[k]} (°)" for k in ROM_DIRECTIONS), "below typical", "status"]
    return f"""<h2>Neck range of motion</h2>
<p>{plural(len(rom), 'guided test')} (nape rom). A smaller end range than before means a stiffer
neck in that direction, a larger one a freer neck; changes within a few degrees are measurement noise.</p>
<ul>{changes}</ul>
{chart}
{table(heads, rows, "long")}
"""


def render_trends_html(items: list[Session], tz: tzinfo | None = None, rom: list[RomSession] | None = None,
                       on_step: Callable[[str], None] | None = None) -> str:
    """The trends page as one self-contained HTML string (the shared shell, :mod:`nape.report.page`).

    Args:
        items: indexed recordings (:func:`nape.trends.sessions`).
        tz: time zone of the calendar days (default local time).
        rom: indexed range-of-motion tests (:func:`nape.trends.rom_sessions`), shown over days.
        on_step: called with a description before each step (progress display).
    """
    step = on_step or (lambda _text: None)
    tz = tz or local_tz()
    rom = rom or []
    step("daily and weekly totals")
    n_days = len(daily_from(items, tz))
    days = fill_days(daily_from(items, tz))
    weeks = weekly_from(items, tz)
    step("posture and jolt charts")
    figs = _charts(days, "day") + _charts(weeks, "week") if items else []
    plots = "".join(plot(fig, f"trend{i}", title) for i, (fig, title) in enumerate(figs))
    step("range-of-motion chart")
    rom_html = _rom_section(rom, tz, f"trend{len(figs)}")
    step("writing the page")
    missing = sum(s.status == "missing" for s in items) + sum(s.status == "missing" for s in rom)
    rows = [[esc(s.start.astimezone(tz).strftime("%Y-%m-%d %H:%M")), esc(Path(s.path).name),
             fmt_duration(s.duration_s), "–" if s.neck_poor_min is None else f"{s.neck_poor_min:.0f}",
             f"{s.trunk_poor_min:.0f}", " / ".join(str(s.jolts[g]) for g in GRADES),
             esc(s.status + (" · little valid data: left out" if s.low_coverage else ""))] for s in items]
    total = Period("all", days[0].start if days else date.today())
    for s in items:
        total.add(s)
    summary = (f"{plural(len(items), 'recording')} on {plural(n_days, 'day')}: "
               f"{fmt_duration(total.recorded_min * 60)} recorded, "
               f"neck bent forward {fmt_duration((total.neck_poor_min or 0) * 60)}, upper back leaning forward "
               f"{fmt_duration(total.trunk_poor_min * 60)}, jolts "
               + ", ".join(f"{total.jolts[g]} {g}" for g in GRADES) + ".")
    note = f"<p>{missing} recording file{'s are' if missing != 1 else ' is'} missing; their results still count.</p>" if missing else ""
    if total.left_out:
        note += (f"<p>{total.left_out} recording{'s rest' if total.left_out != 1 else ' rests'} on little valid data "
                 "(under a minute, or under half of its time): listed below, left out of the totals and charts.</p>")
    recordings = ("<h2>Recordings</h2>" + table(
        ["start", "file", "recorded", "neck bent forward (min)", "upper back leaning forward (min)",
         "jolts mild / moderate / severe",
         "status"], rows, "long")) if items else ""
    st = AnalysisSettings()
    limits_line = (f"the neck bent forward more than {st.neck_flexion_deg:g}° or the upper back leaning forward more "
                   f"than {st.trunk_inclination_deg:g}°, while not lying down (the board's limits, nape/settings.py).")
    body = f"""<h1>Nape trends</h1>
<p>{esc(summary)}</p>{note}
<p class="meta">Days are the local calendar day on which each recording started. Poor posture: {esc(limits_line)}
Neck and upper-back minutes can overlap in time. Days without recordings show as empty.</p>
{plots}
{rom_html}
{recordings}
<p class="meta">Nape is not a medical device. Grades describe movement intensity, not injury.</p>"""
    return page("Nape trends", body)
