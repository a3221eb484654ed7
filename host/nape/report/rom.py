"""The range-of-motion test's page (HTML) and its JSON (``protocol/rom.schema.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import safe_write
from ..analysis.rom import LABELS, RomResult
from ..plainwords import ROM_VERDICT_WORDS, rom_advice, rom_calibration_note, rom_top_actions
from ..settings import CLINICAL_GUIDANCE, ROM_SOURCES
from .page import TOOLBAR_PX, esc, page, plot, table
from .words import local_time

VERDICT_COLOUR = {"below": "#e07b00", "typical": "#2e7d32", "above": "#1565c0", "not_measured": "#999"}
#: the verdict in words and shape beside the colour (the chart reads without telling colours apart)
VERDICT_MARK = {"below": " below", "above": " above"}
VERDICT_SYMBOL = {"below": "triangle-left", "above": "triangle-right", "typical": "circle", "not_measured": "circle-open"}
#: Short labels of the hold phases on the angle chart: six full names do not fit side by side
#: on a phone; the chart's caption spells them out.
PHASE_SHORT = {"flexion": "F", "extension": "E", "lateral_left": "SL", "lateral_right": "SR",
               "rotation_left": "RL", "rotation_right": "RR"}

CSS = """
.verdict-below { color: #e07b00; font-weight: bold; } .verdict-above { color: #1565c0; }
"""


def _bars(r: RomResult):
    import plotly.graph_objects as go

    names = [LABELS[d.direction] for d in r.directions]
    vals = [d.max_deg or 0.0 for d in r.directions]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=names, x=[d.typical_high_deg - d.typical_low_deg for d in r.directions],
                         base=[d.typical_low_deg for d in r.directions], orientation="h", name="typical range",
                         marker_color="rgba(46,125,50,0.18)", hoverinfo="skip"))
    fig.add_trace(go.Scatter(y=names, x=vals, mode="markers+text", name="your end range (°)",
                             text=[f"{v:.0f}°{VERDICT_MARK.get(d.verdict, '')}" if d.max_deg is not None
                                   else "not measured" for v, d in zip(vals, r.directions)],
                             textposition="middle right", cliponaxis=False,
                             marker={"size": 14, "color": [VERDICT_COLOUR[d.verdict] for d in r.directions],
                                     "symbol": [VERDICT_SYMBOL.get(d.verdict, "circle") for d in r.directions]}))
    fig.update_layout(xaxis_title="degrees", height=380, margin={"l": 8, "r": 16, "t": TOOLBAR_PX, "b": 40},
                      barmode="overlay", legend={"orientation": "h", "y": -0.2},
                      xaxis={"range": [0, max([100.0] + [v + 30 for v in vals])]},  # room for "95° above"
                      yaxis={"automargin": True})
    fig.update_yaxes(autorange="reversed")
    return fig


def _trace(r: RomResult):
    import plotly.graph_objects as go

    s = r.series
    fig = go.Figure()
    for key, name, colour in (("flexion_deg", "flexion (+) / extension (−)", "#1565c0"),
                              ("lateral_deg", "side-bending right (+) / left (−)", "#2e7d32"),
                              ("rotation_deg", "rotation left (+) / right (−)", "#c62828")):
        fig.add_trace(go.Scatter(x=s["time_s"], y=s[key], name=name, line={"color": colour}))
    shapes, notes = [], []
    for d in r.schedule.get("directions", []):
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": d["hold_start_s"], "x1": d["hold_end_s"],
                       "y0": 0, "y1": 1, "fillcolor": "#ddd", "opacity": 0.5, "line": {"width": 0}, "layer": "below"})
        notes.append({"x": (d["hold_start_s"] + d["hold_end_s"]) / 2, "y": 1, "xref": "x", "yref": "paper",
                      "yanchor": "top", "showarrow": False, "font": {"size": 11},
                      "text": PHASE_SHORT.get(d["direction"], d["direction"])})
    # x tick labels a little below the axis: "0" would touch the lowest y tick label at the corner
    fig.update_layout(xaxis={"title": "time (s)", "ticklabelstandoff": 6}, yaxis_title="angle (°)", height=380,
                      shapes=shapes, annotations=notes,
                      margin={"l": 50, "r": 12, "t": TOOLBAR_PX, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def render_rom_html(r: RomResult) -> str:
    """The ROM result as one self-contained HTML page (the shared shell, :mod:`nape.report.page`)."""
    rows = [[esc(d.label), "–" if d.max_deg is None else f"{d.max_deg:.0f}°",
             f"{d.typical_low_deg:.0f}–{d.typical_high_deg:.0f}°",
             f'<span class="verdict-{d.verdict}">{esc(ROM_VERDICT_WORDS[d.verdict])}</span>',
             esc(rom_advice(d.verdict, d.label))] for d in r.directions]
    heads = "".join(f"<li>{esc(h)}</li>" for h in r.headlines())
    arcs = {"sagittal_deg": "forward and back", "lateral_deg": "side to side", "rotation_deg": "turning left and right"}
    totals = ", ".join(f"{arcs.get(k, k)} {v:.0f}°" for k, v in r.totals_deg().items() if v is not None)
    fa = ("" if r.functional_axis_deg is None else
          f" The sensors' turn about the vertical was measured from your forward and backward bending and corrected "
          f"({r.functional_axis_deg:+.0f}°), so side-bending does not leak into bending forward.")
    top = rom_top_actions(r)
    clinician = "" if CLINICAL_GUIDANCE["neck_pain"] in top else " " + CLINICAL_GUIDANCE["neck_pain"]
    name = Path(r.path).name
    when = local_time(r.metadata.get("created"))
    phases = ", ".join(f"{short} {LABELS[k].lower()}" for k, short in PHASE_SHORT.items())
    body = f"""<h1>Neck range of motion</h1>
<p class="meta">{esc(name)}{' · ' + esc(when) if when else ''}</p>
<ul class="summary">{heads}</ul>
{table(["direction", "your end range", "typical (healthy adults)", "compared with typical", "what to do"], rows, "long")}
<p>Total movement: {esc(totals) or '–'}.</p>
{plot(_bars(r), "rom0", "End range per direction (shaded: typical for healthy adults)")}
{plot(_trace(r), "rom1", "Neck angles during the test (grey: hold phases)")}
<p class="meta">Hold phases: {esc(phases)}.</p>
<h2>How this was measured</h2>
<p class="meta">Your head is measured relative to your upper back (a sensor on each).
{esc(rom_calibration_note(r.calibration.method, r.hold_window_s))}{esc(fa)}
Orientation: {esc(r.orientation_source)}. Samples: {r.samples}, lost: {r.lost_samples}.</p>
<p class="meta">Typical ranges: {esc(ROM_SOURCES['CROM'])}</p>
<h2>What to do next</h2>
<ol class="summary">{"".join(f"<li>{esc(a)}</li>" for a in top)}</ol>
<p class="meta">Nape is not a medical device. Move only as far as is comfortable.{esc(clinician)}</p>"""
    return page(f"Nape neck range of motion · {name}", body, CSS)


def write_rom_reports(r: RomResult, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``stem.html`` and ``stem.json`` into ``out_dir``; returns their paths.

    Raises:
        OSError: the folder or files cannot be written.
    """
    out_dir = Path(out_dir)
    safe_write.make_folder(out_dir)
    paths = {"html": out_dir / f"{stem}.html", "json": out_dir / f"{stem}.json"}
    safe_write.write_text(paths["json"], json.dumps(r.to_dict(), indent=1, allow_nan=False))
    safe_write.write_text(paths["html"], render_rom_html(r))
    return paths
