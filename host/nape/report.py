"""Report v0: one self-contained HTML page with plots, a JSON summary, a terminal summary.

The HTML inlines plotly.js (no network requests; it opens from disk, zooms, works
offline). Plain words first: what was found and what it means.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from rich.console import Console
from rich.table import Table

from .analysis import Findings
from .analysis.posture import runs
from .settings import AnalysisSettings

GRADE_COLOUR = {"mild": "#c9a227", "moderate": "#e07b00", "severe": "#c62828"}
MEANING = {
    "neck_flexion": "Your head was bent forward relative to your upper back (as when looking down at a "
    "screen or phone) for a long stretch. Holding the neck flexed beyond about 20° for long periods is "
    "linked with neck pain; try raising the screen or taking short breaks to look up.",
    "trunk_inclination": "Your upper back was leaning or rounded forward for a long stretch (hunching). "
    "Sitting back against the chair and bringing the work closer helps.",
    "bed_neck": "In bed your neck stayed bent relative to your back for a long time. A pillow that keeps "
    "the head in line with the spine (about 10 cm lying on the back, shoulder height lying on the side) helps.",
    "knock": "A short sideways or backwards knock, e.g. a bump against the head or body.",
    "braking": "A hard deceleration, as in firm or emergency braking: the head is thrown forward.",
    "acceleration": "A hard acceleration: the body is pushed back into the seat and the head lags.",
    "bump": "A vertical shock, as from a pothole, speed bump or a step down.",
    "lateral": "A sideways jolt, as from sharp cornering or a knock from the side.",
    "rear_impact_like": "A sudden strong push from behind, like a low-speed rear impact: the kind of "
    "movement that can cause whiplash. If you have neck pain after it, see a clinician.",
}


def fmt_duration(seconds: float) -> str:
    """'2 h 10 min', '34 min', '45 s'."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min" if m >= 10 or not s else f"{m} min {s} s"
    return f"{s} s"


def fmt_clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def headlines(f: Findings) -> list[str]:
    """The summary in plain words, one sentence each."""
    out = []
    if f.jolts:
        by = {g: sum(j.grade == g for j in f.jolts) for g in ("mild", "moderate", "severe")}
        parts = ", ".join(f"{n} {g}" for g, n in by.items() if n)
        worst = max(f.jolts, key=lambda j: j.peak_trunk_g)
        out.append(
            f"{len(f.jolts)} jolt{'s' if len(f.jolts) != 1 else ''} ({parts}); strongest: "
            f"{worst.cause.replace('_', ' ')} at {fmt_clock(worst.t_s)} ({worst.peak_trunk_g:.2f} g)."
        )
    else:
        out.append("No jolts.")
    for kind, label, key in (
        ("neck_flexion", "Neck flexed", "neck_over_threshold_s"),
        ("trunk_inclination", "Upper back hunched", "trunk_over_threshold_s"),
    ):
        eps = [e for e in f.episodes if e.kind == kind]
        thr = f.settings["neck_flexion_deg" if kind == "neck_flexion" else "trunk_inclination_deg"]
        if key not in f.exposure_s:
            continue
        total = f.exposure_s[key]
        if eps:
            longest = max(e.duration_s for e in eps)
            out.append(
                f"{label} > {thr:g}° for {fmt_duration(total)} in all; {len(eps)} long episode"
                f"{'s' if len(eps) != 1 else ''}, longest {fmt_duration(longest)}."
            )
        else:
            out.append(f"{label} > {thr:g}° for {fmt_duration(total)} in all; never held for long.")
    if f.lying_s > 0:
        out.append(f"Lying down for {fmt_duration(f.lying_s)} (not counted as poor posture).")
    return out


def quality_notes(f: Findings) -> list[str]:
    notes = [f"Calibration ({f.calibration.get('method', 'unknown')}): {f.calibration.get('detail', '')}."]
    if f.orientation_source:
        notes.append(f"Orientation: {f.orientation_source}.")
    for g in f.gaps:
        notes.append(f"Gap in the data at {fmt_clock(g['start_s'])}: {fmt_duration(g['duration_s'])} missing.")
    if f.lost_samples:
        notes.append(f"{f.lost_samples} samples were lost in transmission ({100 * f.lost_samples / max(f.samples + f.lost_samples, 1):.2f} %).")
    if f.malformed_packets:
        notes.append(f"{f.malformed_packets} malformed packets were skipped.")
    for issue in f.file_issues:
        notes.append(f"File: {issue['kind']} at byte {issue['offset']}: {issue['detail']}.")
    if "head" not in f.roles:
        notes.append("No head sensor: neck flexion is not measured, only the upper back.")
    return notes


# ---------------------------------------------------------------- HTML


def _timeline(f: Findings) -> go.Figure:
    s = f.series
    t = np.array(s["t_s"]) / 60.0
    fig = go.Figure()
    if "neck_flexion_deg" in s:
        fig.add_trace(go.Scatter(x=t, y=s["neck_flexion_deg"], name="neck flexion (°)", line={"color": "#1565c0"}))
    fig.add_trace(go.Scatter(x=t, y=s["trunk_inclination_deg"], name="upper back inclination (°)", line={"color": "#2e7d32"}))
    for e in f.episodes:
        fig.add_vrect(x0=e.start_s / 60, x1=e.end_s / 60, fillcolor="#ef9a9a" if e.kind == "neck_flexion" else "#a5d6a7",
                      opacity=0.3, line_width=0)
    lying = np.array(s.get("lying", []), dtype=bool)
    for i0, i1 in runs(lying):
        fig.add_vrect(x0=t[i0], x1=t[i1 - 1], fillcolor="#bbbbbb", opacity=0.25, line_width=0,
                      annotation_text="lying", annotation_position="top left")
    thr = f.settings["neck_flexion_deg"]
    fig.add_hline(y=thr, line_dash="dot", line_color="#777", annotation_text=f"{thr:g}°")
    for j in f.jolts:
        fig.add_vline(x=j.t_s / 60, line_color=GRADE_COLOUR[j.grade], line_width=2)
    fig.update_layout(
        title="Posture over time (red/green bands: long poor-posture episodes; grey: lying; vertical lines: jolts)",
        xaxis_title="time (min)", yaxis_title="angle (°, forward +)", height=420,
        margin={"l": 50, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _jolt_chart(f: Findings) -> go.Figure:
    js = sorted(f.jolts, key=lambda j: j.t_s)
    fig = go.Figure(go.Bar(
        x=[f"{fmt_clock(j.t_s)} {j.cause.replace('_', ' ')}" for j in js], y=[j.peak_trunk_g for j in js],
        marker_color=[GRADE_COLOUR[j.grade] for j in js], text=[j.grade for j in js], textposition="outside",
        hovertemplate="%{x}: %{y:.2f} g (%{text})<extra></extra>",
    ))
    fig.update_layout(title="Jolts in time order: peak upper-back acceleration (g), coloured by grade",
                      yaxis_title="g", height=320, margin={"l": 50, "r": 20, "t": 60, "b": 80})
    return fig


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _na(v: float, fmt: str) -> str:
    return "–" if v is None or not np.isfinite(v) else format(v, fmt)


def _exposure_chart(f: Findings) -> go.Figure | None:
    bands = f.exposure_s.get("neck_bands_s")
    if not bands:
        return None
    colours = ["#90caf9", "#a5d6a7", "#fff59d", "#ffcc80", "#ef9a9a"]
    fig = go.Figure(go.Bar(x=[f"{k}°" for k in bands], y=[v / 60 for v in bands.values()], marker_color=colours,
                           hovertemplate="%{x}: %{y:.1f} min<extra></extra>"))
    fig.update_layout(title="Time by neck flexion band (minutes, not lying)", yaxis_title="min", height=300,
                      margin={"l": 50, "r": 20, "t": 60, "b": 40})
    return fig


def _episode_rows(f: Findings, bed: bool) -> list[list[str]]:
    return [
        [fmt_clock(e.start_s), fmt_duration(e.duration_s), html.escape(e.pattern or e.kind.replace("_", " ")),
         f"{e.mean_deg:.0f}°", f"{e.peak_deg:.0f}°", html.escape(e.iso11226 or "–"),
         html.escape(MEANING.get(e.kind, ""))]
        for e in f.episodes if (e.kind == "bed_neck") == bed
    ]


def render_html(f: Findings) -> str:
    """The whole report page as one string (plotly.js inlined)."""
    figs = [_timeline(f), _exposure_chart(f)] + ([_jolt_chart(f)] if f.jolts else [])
    plots = "".join(
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot{i}", config={"responsive": True})
        for i, fig in enumerate(figs) if fig is not None
    )
    jolt_rows = [
        [fmt_clock(j.t_s), html.escape(j.cause.replace("_", " ")),
         f'<span class="g" style="background:{GRADE_COLOUR[j.grade]}">{j.grade}</span>',
         _na(j.peak_trunk_g, ".2f"), _na(j.peak_head_g, ".2f"), _na(j.vehicle_g, ".2f"), _na(j.neck_dps, ".0f"),
         _na(j.nic_m2s2, ".1f"), html.escape(MEANING.get(j.cause, ""))]
        for j in f.jolts
    ]
    ep_rows = _episode_rows(f, bed=False)
    bed_rows = _episode_rows(f, bed=True)
    act_rows = [[html.escape(k.replace("_", " ")), fmt_duration(v)] for k, v in f.activity_s.items() if v > 0]
    rula_rows = [[k, fmt_duration(v), RULA_MEANING.get(k, "")] for k, v in sorted(f.rula_neck_s.items())]
    sources = AnalysisSettings().sources
    settings_rows = [[html.escape(k), f"{v:g}", html.escape(sources.get(k, "Nape default (see nape.settings)"))]
                     for k, v in f.settings.items()]
    summary = "".join(f"<li>{html.escape(h)}</li>" for h in headlines(f))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in quality_notes(f))
    meta = f.metadata
    none = "<p>None.</p>"
    bed_html = (f"<h2>In bed</h2>{_table(['start', 'duration', 'what', 'mean', 'peak', 'ISO 11226', 'what it means'], bed_rows)}"
                if bed_rows else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nape report — {html.escape(Path(f.path).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: auto; padding: 1em; color: #222; }}
h1 {{ font-size: 1.5em; }} table {{ border-collapse: collapse; width: 100%; font-size: .9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3em; text-align: left; vertical-align: top; }}
.g {{ color: white; padding: 0 .4em; border-radius: .3em; }} .summary li {{ font-size: 1.1em; margin: .3em 0; }}
.meta {{ color: #666; font-size: .85em; }} .wrap {{ overflow-x: auto; }}
</style>
<script>{get_plotlyjs()}</script>
</head><body>
<h1>Nape report</h1>
<p class="meta">{html.escape(str(meta.get('device_name', '')))} · firmware {html.escape(str(meta.get('firmware_version', '')))}
 · {html.escape(str(meta.get('source', '')))} · {fmt_duration(f.duration_s)} recorded · {f.samples} samples · IMUs: {', '.join(f.roles)}</p>
<h2>Summary</h2><ul class="summary">{summary}</ul>
{plots}
<h2>Long poor-posture episodes</h2>
<div class="wrap">{_table(["start", "duration", "pattern", "mean", "peak", "ISO 11226", "what it means"], ep_rows) if ep_rows else none}</div>
<h2>Jolts</h2>
<div class="wrap">{_table(["time", "cause", "grade", "upper back (g)", "head (g)", "vehicle (g)", "neck turn rate (°/s)",
                            "NIC (m²/s²)", "what it means"], jolt_rows) if jolt_rows else none}</div>
<p class="meta">NIC: Neck Injury Criterion (Boström et al. 1996); 15 m²/s² was proposed as an injury threshold
and is exceeded by some harmless activities, so it is shown for comparison only.</p>
{bed_html}
<h2>Neck score (RULA) over the day</h2>
<div class="wrap">{_table(["RULA neck score", "time", "meaning"], rula_rows) if rula_rows else none}</div>
<h2>What you were doing</h2>{_table(["activity", "time"], act_rows) if act_rows else none}
<h2>Data quality</h2><ul>{notes}</ul>
<h2>Settings used</h2>
<div class="wrap">{_table(["setting", "value", "source"], settings_rows)}</div>
<p class="meta">Nape is not a medical device. Grades describe movement intensity, not injury.</p>
</body></html>
"""


RULA_MEANING = {
    "1": "neck 0–10° forward: fine",
    "2": "neck 10–20° forward",
    "3": "neck more than 20° forward",
    "4": "neck bent backwards, or forward and twisted/side-bent",
    "5": "bent and twisted or side-bent",
    "6": "bent, twisted and side-bent",
}


def to_json(f: Findings) -> dict:
    """The JSON summary (units in the field names)."""
    d = f.as_dict()
    d["headlines"] = headlines(f)
    d["quality_notes"] = quality_notes(f)
    d["report_version"] = 1
    return _finite(d)


def _finite(o):
    """NaN/inf → None so the JSON is standard (RFC 8259 has no NaN)."""
    if isinstance(o, float):
        return o if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


def write_reports(f: Findings, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``stem.html`` and ``stem.json`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"html": out_dir / f"{stem}.html", "json": out_dir / f"{stem}.json"}
    paths["html"].write_text(render_html(f), encoding="utf-8")
    paths["json"].write_text(json.dumps(to_json(f), indent=1, default=_json_default, allow_nan=False),
                             encoding="utf-8")
    return paths


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o))


def print_summary(f: Findings, console: Console | None = None) -> None:
    """Terminal summary: headlines and a table of findings with coloured grades."""
    c = console or Console()
    c.print(f"[bold]Nape[/bold] · {Path(f.path).name} · {fmt_duration(f.duration_s)} · IMUs {', '.join(f.roles)}")
    for h in headlines(f):
        c.print(f"  • {h}")
    if f.jolts or f.episodes:
        t = Table(title="Findings")
        for col in ("time", "finding", "grade / duration", "peak"):
            t.add_column(col)
        style = {"mild": "yellow", "moderate": "dark_orange", "severe": "bold red"}
        rows = [(e.start_s, fmt_clock(e.start_s), e.pattern or e.kind.replace("_", " "), fmt_duration(e.duration_s),
                 f"{e.peak_deg:.0f}°") for e in f.episodes]
        rows += [(j.t_s, fmt_clock(j.t_s), f"jolt: {j.cause.replace('_', ' ')}", f"[{style[j.grade]}]{j.grade}[/]",
                  f"{j.peak_trunk_g:.2f} g") for j in f.jolts]
        for row in sorted(rows):
            t.add_row(*row[1:])
        c.print(t)
    for n in quality_notes(f):
        c.print(f"  [dim]{n}[/dim]")
