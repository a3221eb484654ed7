"""The recording report: one self-contained HTML page with plots, and the JSON summary.

The page uses the shared shell (:mod:`nape.report.page`: plotly.js inlined, no network
requests, laid out for a phone as well as a desktop screen); the terminal summary is the
CLI's (:mod:`nape.cli.summaries`). Plain words first: what
was found, when (clock time) and what it means. The JSON (``protocol/report.schema.json``)
carries the numbers behind every sentence and plot, units in the field names.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis import Findings
from ..analysis.findings import Jolt, PostureEpisode, episode_record, jolt_record
from ..analysis.posture import runs
from ..settings import AnalysisSettings
from .page import esc, page, plot, table
from .words import GRADE_COLOUR, fmt_clock, fmt_duration, plural

REPORT_VERSION = 3  # 3: the setting 'refuse' renamed 'fuse_on_host'
MAX_JOLT_PANELS = 12  # per-jolt panels (most severe first); the table lists every jolt
GRADE_RANK = {"mild": 0, "moderate": 1, "severe": 2}
ROLE_COLOUR = {"trunk": "#2e7d32", "head": "#1565c0"}
ROLE_WORDS = {"trunk": "upper back", "head": "head"}
CAUSE_WORDS = {
    "braking": "hard braking", "acceleration": "hard acceleration", "bump": "a bump (pothole, kerb or step)",
    "lateral": "a sideways jolt (cornering)", "rear_impact_like": "a push from behind, like a rear impact",
    "knock": "a knock",
}
MEANING = {
    "neck_flexion": "Your head was bent forward relative to your upper back (as when looking down at a "
    "screen or phone) for a long stretch. Holding the neck flexed beyond about 20° for long periods is "
    "linked with neck pain; try raising the screen or taking short breaks to look up.",
    "trunk_inclination": "Your upper back was leaning or rounded forward for a long stretch (hunching). "
    "Sitting back against the chair and bringing the work closer helps.",
    "bed_neck": "In bed your neck stayed bent relative to your back for a long time. A pillow that keeps "
    "the head in line with the spine (about 10 cm lying on the back, shoulder height lying on the side) helps.",
    "knock": "A short knock or blow to the body; away from a vehicle this is often a fall or bumping into something.",
    "braking": "A hard deceleration, as in firm or emergency braking: the head is thrown forward.",
    "acceleration": "A hard acceleration: the body is pushed back into the seat and the head lags.",
    "bump": "A vertical shock, as from a pothole, speed bump or a step down.",
    "lateral": "A sideways jolt, as from sharp cornering or a knock from the side.",
    "rear_impact_like": "A sudden strong push from behind, like a low-speed rear impact: the body is "
    "pushed forward and the head lags, bending the neck back.",
}
GRADE_WORDS = {
    "vehicle": {"mild": "within normal driving", "moderate": "harsh, beyond normal driving",
                "severe": "at emergency-braking level"},
    "shock": {"mild": "a light shock", "moderate": "a firm shock, like a pothole taken at speed",
              "severe": "a strong shock, about twice what low-speed rear impacts give the head"},
}
RULA_MEANING = {
    "1": "neck 0–10° forward: fine",
    "2": "neck 10–20° forward",
    "3": "neck more than 20° forward",
    "4": "neck bent backwards, or forward and twisted/side-bent",
    "5": "bent and twisted or side-bent",
    "6": "bent, twisted and side-bent",
}
NECK_BAND_WORDS = {"-90..0": "bent backwards", "0..10": "neutral", "10..20": "slightly forward",
                   "20..45": "forward (poor if held)", "45..180": "far forward"}
TRUNK_BAND_WORDS = {"-90..0": "leaning back", "0..20": "upright (ISO 11226: acceptable)",
                    "20..60": "forward (ISO 11226: limited holding time)", "60..180": "far forward (ISO 11226: not acceptable)"}
BAND_COLOURS = ["#90caf9", "#a5d6a7", "#fff59d", "#ffcc80", "#ef9a9a"]


# ---------------------------------------------------------------- words and times


def start_time(f: Findings) -> datetime | None:
    """Start of the recording in the local time zone of this computer, from the header's
    ``created`` (ISO 8601 UTC); None when missing or unreadable."""
    created = f.metadata.get("created") if isinstance(f.metadata, dict) else None
    if not isinstance(created, str):
        return None
    try:
        dt = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone()


def clock(f: Findings, t_s: float, seconds: bool = True) -> str:
    """Clock time of ``t_s`` seconds into the recording ('08:42:13' or '08:42'), or the
    elapsed time ('0:11:40 in') when the start time is unknown."""
    start = start_time(f)
    if start is None:
        return f"{fmt_clock(t_s)} in"
    return (start + timedelta(seconds=float(t_s))).strftime("%H:%M:%S" if seconds else "%H:%M")


def _jolt_order(j: Jolt):
    size = j.peak_trunk_g if np.isfinite(j.peak_trunk_g) else 0.0
    return (GRADE_RANK[j.grade], size)


def jolt_sentence(j: Jolt, s: dict) -> str:
    """What one jolt means, in plain words."""
    vehicle = j.cause in ("braking", "acceleration", "lateral")
    words = GRADE_WORDS["vehicle" if vehicle else "shock"][j.grade]
    if vehicle:
        how = {"braking": "slowed down", "acceleration": "sped up", "lateral": "turned"}[j.cause]
        size = f"The vehicle {how} at {j.peak_vehicle_g:.2f} g ({words})." if np.isfinite(j.peak_vehicle_g) else ""
    else:
        size = f"Your upper back took a {j.peak_trunk_g:.1f} g shock ({words})."
    out = f"{MEANING.get(j.cause, '')} {size}".strip()
    ref = s.get("nic_reference_m2s2", 15.0)
    if np.isfinite(j.nic_m2s2):
        if j.nic_m2s2 >= ref:
            out += (f" The neck-loading measure NIC reached {j.nic_m2s2:.1f} m²/s², above the {ref:g} m²/s² proposed as "
                    "an injury threshold: if your neck hurts in the next days, see a clinician.")
        else:
            out += f" The neck-loading measure NIC stayed at {j.nic_m2s2:.1f} m²/s², below the {ref:g} m²/s² injury threshold."
    return out


def headlines(f: Findings) -> list[str]:
    """The summary in plain words, one sentence each."""
    out = []
    if f.jolts:
        by = {g: sum(j.grade == g for j in f.jolts) for g in ("severe", "moderate", "mild")}
        worst = max(f.jolts, key=_jolt_order)
        if by["severe"] or by["moderate"]:
            parts = " and ".join(f"{n} {g}" for g, n in by.items() if n and g != "mild")
            out.append(f"{plural(len(f.jolts), 'jolt')}, {parts}: worst {CAUSE_WORDS[worst.cause]} "
                       f"at {clock(f, worst.peak_t_s, seconds=False)} ({worst.grade}).")
        else:
            out.append(f"{plural(len(f.jolts), 'jolt')}, all mild; strongest {CAUSE_WORDS[worst.cause]} "
                       f"at {clock(f, worst.peak_t_s, seconds=False)}.")
    else:
        out.append("No jolts.")
    for kind, label, key in (
        ("neck_flexion", "Neck flexed", "neck_over_threshold_s"),
        ("trunk_inclination", "Upper back hunched", "trunk_over_threshold_s"),
    ):
        total = getattr(f.exposure_s, key)
        if total is None:  # no head IMU
            continue
        eps = [e for e in f.episodes if e.kind == kind]
        thr = f.settings["neck_flexion_deg" if kind == "neck_flexion" else "trunk_inclination_deg"]
        if eps:
            longest = max(eps, key=lambda e: e.duration_s)
            out.append(f"{label} > {thr:g}° for {fmt_duration(total)}, longest {fmt_duration(longest.duration_s)} "
                       f"(from {clock(f, longest.start_s, seconds=False)}; {plural(len(eps), 'long stretch')}).")
        elif total > 0:
            out.append(f"{label} > {thr:g}° for {fmt_duration(total)} in short spells, never held for "
                       f"{fmt_duration(f.settings['hold_s'])} or longer.")
        else:
            out.append(f"{label} > {thr:g}°: never.")
    if "head" not in f.roles:
        out.append("No head sensor: neck posture was not measured, only the upper back.")
    bed = [e for e in f.episodes if e.kind == "bed_neck"]
    if f.lying_s > 0:
        extra = (f"; neck bent in bed for {fmt_duration(sum(e.duration_s for e in bed))} (pillow)" if bed else "")
        out.append(f"Lying down for {fmt_duration(f.lying_s)} (not counted as poor posture){extra}.")
    return out


def quality_notes(f: Findings) -> list[str]:
    """Calibration and data-quality notes in plain words."""
    notes = [f"Calibration ({f.calibration.method}): {f.calibration.detail}."]
    if f.calibration.method in ("guess", "none"):
        notes.append("Uncalibrated: no still, upright moment was found to take as your neutral posture, so angles "
                     "may be offset by a few degrees. Press calibrate while sitting upright next time.")
    if f.orientation_source:
        notes.append(f"Orientation: {f.orientation_source}.")
    notes += gap_notes(f)
    if f.malformed_packets:
        notes.append(f"{f.malformed_packets} malformed packets were skipped.")
    for issue in f.file_issues:
        notes.append(f"File: {issue['kind']} at byte {issue['offset']}: {issue['detail']}.")
    if "head" not in f.roles:
        notes.append("No head sensor: neck flexion, RULA and the neck-loading measure (NIC) are not measured.")
    no_window = sum(1 for j in f.jolts if (j.trace or {}).get("source") != "event window")
    if f.jolts and no_window:
        notes.append(f"{plural(no_window, 'jolt')} without a high-rate event window from the board: their traces "
                     "are the 100 Hz stream, which can read short shocks a little low.")
    start = start_time(f)
    if start is None:
        notes.append("The recording has no start time: times are shown as time into the recording.")
    else:
        notes.append(f"Times are clock times on this computer's time zone (UTC{start.strftime('%z')[:3]}:"
                     f"{start.strftime('%z')[3:]}); the recording started {start.strftime('%Y-%m-%d %H:%M:%S')}.")
    return notes


def gap_notes(f: Findings) -> list[str]:
    """Gaps in plain words with their reason, clock time, length and count, then the losses
    by reason (``f.gaps`` lists every reboot and buffer overflow; the rest of
    ``f.lost_samples`` was lost in transmission)."""
    notes = []
    by_reason = {"on-board buffer overflow": 0, "device reboot": 0}
    for g in f.gaps:
        reason, n = g.get("reason", "lost in transmission"), g.get("missing_samples")
        when, length = clock(f, g["start_s"]), fmt_duration(g["duration_s"])
        if reason in by_reason:
            by_reason[reason] += n or 0
        if reason == "device reboot":
            lost = (f" It had not yet sent its last {plural(n, 'sample')}: lost." if n else "")
            off = (f"no data for {length}, while it was off." if g["duration_s"] >= 0.5 else
                   "it was back within a moment, so no time is missing.")
            notes.append(f"The device restarted (device reboot) at {when}: {off}{lost}")
        elif reason == "on-board buffer overflow":
            notes.append(f"Gap in the data at {when}: {length} missing ({plural(n or 0, 'sample')}), on-board buffer "
                         "overflow: the device was out of reach of this computer longer than its memory holds, "
                         "so it overwrote its oldest samples.")
        else:
            count = f" ({plural(n, 'sample')})" if n is not None else ""
            notes.append(f"Gap in the data at {when}: {length} missing{count}, lost in transmission (radio).")
    total = f.samples + f.lost_samples
    radio = max(0, f.lost_samples - sum(by_reason.values()))
    if radio:
        notes.append(f"{radio} samples were lost in transmission ({100 * radio / max(total, 1):.2f} %).")
    else:
        notes.append("No samples lost in transmission.")
    if by_reason["on-board buffer overflow"]:
        k = by_reason["on-board buffer overflow"]
        notes.append(f"{k} samples were lost to on-board buffer overflow ({100 * k / max(total, 1):.2f} %).")
    return notes


# ---------------------------------------------------------------- HTML pieces


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, autosize=True, margin={"l": 48, "r": 12, "t": 16, "b": 40},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
                      font={"size": 13}, plot_bgcolor="#fafafa", **kw)
    return fig


def _x_times(f: Findings, t_s) -> np.ndarray:
    """Plot x values: local clock times (datetime64, ms) or, without a start time, minutes."""
    start = start_time(f)
    t = np.asarray(t_s, float)
    if start is None:
        return t / 60.0
    base = np.datetime64(start.replace(tzinfo=None), "ms")
    return base + np.round(t * 1000).astype("timedelta64[ms]")


def _shape_x(v):
    """A shape coordinate on the timeline's x axis: date text or minutes."""
    return str(v) if isinstance(v, np.datetime64) else float(v)


def _timeline(f: Findings) -> go.Figure:
    s = f.series
    x = _x_times(f, s["time_s"])
    lying = np.array(s.get("lying", []), dtype=bool)
    upright = lambda key: np.where(lying, np.nan, np.asarray(s[key], float)) if len(lying) else s[key]  # noqa: E731
    fig = go.Figure()
    if "neck_flexion_deg" in s:
        fig.add_trace(go.Scatter(x=x, y=upright("neck_flexion_deg"), name="neck flexion",
                                 line={"color": ROLE_COLOUR["head"]}, hovertemplate="%{y:.0f}°"))
    fig.add_trace(go.Scatter(x=x, y=upright("trunk_inclination_deg"), name="upper back",
                             line={"color": ROLE_COLOUR["trunk"]}, hovertemplate="%{y:.0f}°"))
    xs = lambda t: _shape_x(_x_times(f, [t])[0])  # noqa: E731
    # shapes as one list: plotly's add_vrect / add_vline re-validate every shape on each call
    # (quadratic: minutes for the hundreds of jolts and episodes of a long recording)
    band = lambda x0, x1, colour, opacity: {"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1,  # noqa: E731
                                           "y0": 0, "y1": 1, "fillcolor": colour, "opacity": opacity,
                                           "line": {"width": 0}, "layer": "below"}
    shapes = []
    for e in f.episodes:
        colour = {"neck_flexion": "#ef9a9a", "trunk_inclination": "#a5d6a7"}.get(e.kind, "#ce93d8")
        shapes.append(band(xs(e.start_s), xs(e.end_s), colour, 0.3))
    for i0, i1 in runs(lying):
        shapes.append(band(_shape_x(x[i0]), _shape_x(x[i1 - 1]), "#bbbbbb", 0.25))
    thr = f.settings["neck_flexion_deg"]
    shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": thr, "y1": thr,
                   "line": {"dash": "dot", "color": "#777", "width": 1}})
    for j in f.jolts:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": xs(j.peak_t_s), "x1": xs(j.peak_t_s), "y0": 0.9, "y1": 1,
                       "line": {"color": GRADE_COLOUR[j.grade], "width": 2}})
    fig.update_layout(shapes=shapes)
    return _layout(fig, 360, yaxis_title="angle (°, forward +)", hovermode="x unified", showlegend=True,
                   xaxis_title=None if start_time(f) else "time (min)")


def _jolt_chart(f: Findings) -> go.Figure:
    js = sorted(f.jolts, key=lambda j: j.peak_t_s)
    fig = go.Figure(go.Bar(
        x=[clock(f, j.peak_t_s) for j in js], y=[j.peak_trunk_g for j in js],
        marker_color=[GRADE_COLOUR[j.grade] for j in js], text=[j.grade for j in js], textposition="none",
        customdata=[CAUSE_WORDS[j.cause] for j in js],
        hovertemplate="%{x} %{customdata}: %{y:.2f} g (%{text})<extra></extra>",
    ))
    # one clock-time label per jolt: upright, so that jolts seconds apart (a braking, then a
    # bump) still have readable labels on a phone
    return _layout(fig, 280, yaxis_title="upper back peak (g)",
                   xaxis={"type": "category", "tickangle": -90, "automargin": True})


def _band_chart(bands: dict, words: dict, title: str) -> go.Figure:
    labels = [f"{k.replace('..', '–')}°" for k in bands]
    fig = go.Figure(go.Bar(x=labels, y=[v / 60 for v in bands.values()], marker_color=BAND_COLOURS[: len(bands)],
                           customdata=[words.get(k, "") for k in bands],
                           hovertemplate="%{x} (%{customdata}): %{y:.1f} min<extra></extra>"))
    return _layout(fig, 260, yaxis_title="minutes", xaxis_title=title)


def _jolt_trace_figure(j: Jolt) -> go.Figure | None:
    tr = j.trace
    if not tr or len(tr.get("t_rel_s", [])) < 2:
        return None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for role in ("trunk", "head"):
        if f"{role}_acc_g" not in tr:
            continue
        name = ROLE_WORDS[role]
        fig.add_trace(go.Scatter(x=tr["t_rel_s"], y=tr[f"{role}_acc_g"], name=name, legendgroup=role,
                                 line={"color": ROLE_COLOUR[role]}, hovertemplate="%{y:.2f} g"), row=1, col=1)
        fig.add_trace(go.Scatter(x=tr["t_rel_s"], y=tr[f"{role}_gyr_dps"], name=name, legendgroup=role, showlegend=False,
                                 line={"color": ROLE_COLOUR[role], "dash": "dot"}, hovertemplate="%{y:.0f} °/s"),
                      row=2, col=1)
    fig.update_yaxes(title_text="accel. (g)", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="turn rate (°/s)", row=2, col=1, rangemode="tozero")
    fig.update_xaxes(title_text="seconds from the peak", row=2, col=1)
    return _layout(fig, 340, hovermode="x unified")


def _na(v, fmt: str, unit: str = "") -> str:
    return "–" if v is None or not np.isfinite(v) else format(v, fmt) + unit


def _badge(grade: str) -> str:
    return f'<span class="g" style="background:{GRADE_COLOUR[grade]}">{grade}</span>'


SHORT_LIST = 12  # longer tables show the most important rows and fold the full list away


def _episode_rows(eps: list[PostureEpisode], f: Findings) -> list[list[str]]:
    return [[clock(f, e.start_s), fmt_duration(e.duration_s), esc(e.pattern or e.kind.replace("_", " ")),
             f"{e.mean_deg:.0f}° (peak {e.peak_deg:.0f}°)"] for e in eps]


def _episodes_html(f: Findings, bed: bool) -> str:
    """Episode table (the longest ``SHORT_LIST`` when there are more, the rest folded away)
    and, once per kind, what it means."""
    eps = [e for e in f.episodes if (e.kind == "bed_neck") == bed]
    if not eps:
        return ""
    head = ["start", "held", "what", "angle"]
    if len(eps) <= SHORT_LIST:
        out = table(head, _episode_rows(eps, f), "long")
    else:
        top = sorted(sorted(eps, key=lambda e: e.duration_s, reverse=True)[:SHORT_LIST], key=lambda e: e.start_s)
        out = (f'<p class="meta">The {SHORT_LIST} longest of {len(eps)}:</p>' + table(head, _episode_rows(top, f), "long")
               + f"<details><summary>All {len(eps)} (tap to show)</summary>{table(head, _episode_rows(eps, f), 'long')}"
               "</details>")
    kinds = dict.fromkeys(e.kind for e in eps)
    words = {"neck_flexion": "Neck", "trunk_inclination": "Upper back", "bed_neck": "In bed"}
    return out + '<ul class="meaning">' + "".join(
        f"<li><b>{words.get(k, k)}:</b> {esc(MEANING.get(k, ''))}</li>" for k in kinds) + "</ul>"


def _jolt_panel(f: Findings, j: Jolt, k: int) -> str:
    tr = j.trace or {}
    facts = [("upper back peak", _na(j.peak_trunk_g, ".2f", " g")), ("head peak", _na(j.peak_head_g, ".2f", " g")),
             ("vehicle", _na(j.peak_vehicle_g, ".2f", " g")), ("neck turn rate", _na(j.peak_neck_dps, ".0f", " °/s")),
             ("NIC", _na(j.nic_m2s2, ".1f", " m²/s²"))]
    dl = "".join(f"<div><dt>{esc(a)}</dt><dd>{esc(b)}</dd></div>" for a, b in facts)
    if tr.get("source") == "event window":
        src = (f"Traces: the board's high-rate event window ({tr['rate_hz']:g} Hz)"
               + ("" if tr.get("complete", True) else ", partly lost in transmission") + ".")
    elif tr:
        src = ("Traces: no high-rate event window from the board for this jolt, so the 100 Hz stream around the "
               "peak is shown (short shocks may read a little low).")
    else:
        src = "No traces: the data around this jolt is not available."
    fig = plot(_jolt_trace_figure(j), f"jolt{k}")
    return (f'<section class="jolt" id="jolt-{k}"><h3>{esc(clock(f, j.peak_t_s))} · '
            f'{esc(CAUSE_WORDS[j.cause])} {_badge(j.grade)}</h3>'
            f'<p>{esc(jolt_sentence(j, f.settings))}</p><dl class="facts">{dl}</dl>{fig}'
            f'<p class="meta">{esc(src)} Solid: linear acceleration (gravity removed); dotted: angular '
            f"velocity. Green: upper back, blue: head.</p></section>")


def panel_jolts(f: Findings) -> list[Jolt]:
    """The jolts that get a panel: the ``MAX_JOLT_PANELS`` most severe, in time order."""
    top = sorted(f.jolts, key=_jolt_order, reverse=True)[:MAX_JOLT_PANELS]
    return sorted(top, key=lambda j: j.peak_t_s)


def _standards_section(f: Findings) -> str:
    iso_rows = [[clock(f, e.start_s), esc(e.pattern or e.kind.replace("_", " ")), fmt_duration(e.duration_s),
                 esc(e.iso11226_verdict or "–")] for e in f.episodes if e.kind != "bed_neck"]
    parts = ["<p>ISO 11226 judges postures held for a while: the angle and how long it was held. "
             "RULA scores the neck from 1 (fine) upwards; 3 or more calls for a change.</p>"]
    parts.append(table(["start", "posture", "held", "ISO 11226"], iso_rows, "long") if iso_rows
                 else "<p>ISO 11226: no posture was held long enough to judge; nothing to flag.</p>")
    if f.rula_neck_s:
        total = sum(f.rula_neck_s.values()) or 1.0
        rows = [[k, fmt_duration(v), f"{100 * v / total:.0f} %", RULA_MEANING.get(k, "")]
                for k, v in sorted(f.rula_neck_s.items())]
        parts.append(table(["RULA neck score", "time", "share", "meaning"], rows))
    else:
        parts.append("<p>RULA neck score: needs the head sensor.</p>")
    return "<h2>ISO 11226 and RULA</h2>" + "".join(parts)


def _exposure_section(f: Findings) -> str:
    out = ["<h2>Time by angle</h2><p>Minutes in each range while not lying (tap a bar for details).</p>"]
    for key, words, title in (("neck_bands_s", NECK_BAND_WORDS, "neck flexion"),
                              ("trunk_bands_s", TRUNK_BAND_WORDS, "upper back inclination")):
        bands = getattr(f.exposure_s, key)
        if not bands:
            continue
        total = sum(bands.values()) or 1.0
        out.append(f"<h3>{title.capitalize()}</h3>")
        out.append(plot(_band_chart(bands, words, f"{title} (°)"), f"bands-{key}"))
        out.append(table(["range", "what", "time", "share"],
                          [[f"{k.replace('..', '–')}°", esc(words.get(k, "")), fmt_duration(v),
                            f"{100 * v / total:.0f} %"] for k, v in bands.items()]))
    if f.exposure_s.neck_bands_s is None:
        out.append("<p>Neck angles need the head sensor.</p>")
    return "".join(out)


def _bed_section(f: Findings) -> str:
    if f.lying_s <= 0:
        return ""
    rows = _episodes_html(f, bed=True)
    words = {"lying_supine": "on your back", "lying_prone": "on your front", "lying_side": "on your side"}
    how = ", ".join(f"{words.get(k, k.replace('_', ' '))} {fmt_duration(v)}"
                    for k, v in f.activity_s.items() if k.startswith("lying") and v > 0)
    text = f"<p>Lying down for {fmt_duration(f.lying_s)}" + (f" ({how})" if how else "") + ".</p>"
    if rows:
        text += rows
    elif "head" in f.roles:
        text += "<p>Your neck stayed in line with your back while lying: no sign of a pillow that is too high or too low.</p>"
    else:
        text += "<p>Pillow fit needs the head sensor.</p>"
    return "<h2>In bed</h2>" + text


def render_html(f: Findings) -> str:
    """The whole report page as one string (plotly.js inlined)."""
    panels = panel_jolts(f)
    pidx = {id(j): k for k, j in enumerate(panels)}
    jolt_rows = [
        [clock(f, j.peak_t_s), esc(CAUSE_WORDS[j.cause]), _badge(j.grade),
         _na(j.peak_trunk_g, ".2f"), _na(j.peak_head_g, ".2f"), _na(j.nic_m2s2, ".1f"),
         f'<a href="#jolt-{pidx[id(j)]}">details</a>' if id(j) in pidx else ""]
        for j in f.jolts
    ]
    ep_html = _episodes_html(f, bed=False)
    act_rows = [[esc(k.replace("_", " ")), fmt_duration(v)] for k, v in f.activity_s.items() if v > 0]
    sources = AnalysisSettings().sources
    settings_rows = [[esc(k), f"{v:g}", esc(sources.get(k, "Nape default (see nape.settings)"))]
                     for k, v in f.settings.items()]
    summary = "".join(f"<li>{esc(h)}</li>" for h in headlines(f))
    notes = "".join(f"<li>{esc(n)}</li>" for n in quality_notes(f))
    meta = f.metadata
    start = start_time(f)
    when = f" · {start.strftime('%Y-%m-%d %H:%M')}" if start else ""
    none = "<p>None.</p>"
    more = len(f.jolts) - len(panels)
    panel_html = "".join(_jolt_panel(f, j, k) for k, j in enumerate(panels))
    if more > 0:
        panel_html += (f'<p class="meta">{plural(more, "more jolt")} (milder) are in the chart and the list above, '
                       f"without a panel.</p>")
    jolt_table = table(["time", "cause", "grade", "upper back (g)", "head (g)", "NIC (m²/s²)", ""], jolt_rows, "long")
    if len(jolt_rows) > SHORT_LIST:
        jolt_table = f"<details><summary>All {len(jolt_rows)} jolts (tap to show)</summary>{jolt_table}</details>"
    jolts_html = ('<p class="meta">Peak upper-back acceleration of each jolt; yellow: mild, orange: moderate, '
                  'red: severe.</p>' + plot(_jolt_chart(f), "jolts") + jolt_table
        + f"<h3>Each jolt</h3>{panel_html}"
        + "<p class=\"meta\">NIC: Neck Injury Criterion (Boström et al. 1996); 15 m²/s² was proposed as an injury "
          "threshold and is exceeded by some harmless activities, so it is shown for comparison only.</p>"
        ) if f.jolts else none
    body = f"""<h1>Nape report</h1>
<p class="meta">{esc(str(meta.get('device_name', '')))} · firmware {esc(str(meta.get('firmware_version', '')))}
 · {esc(str(meta.get('source', '')))}{esc(when)} · {fmt_duration(f.duration_s)} recorded · IMUs: {', '.join(f.roles)}</p>
<h2>Summary</h2><ul class="summary">{summary}</ul>
<h2>Posture over time</h2>
<p class="meta">Red / green bands: long poor-posture episodes (neck / upper back); purple: neck bent in bed; grey: lying;
ticks along the top: jolts, coloured by grade; dotted line: {f.settings['neck_flexion_deg']:g}°. Drag to zoom, double-tap to reset.</p>
{plot(_timeline(f), "timeline")}
<h2>Long poor-posture episodes</h2>
{ep_html or none}
{_exposure_section(f)}
{_standards_section(f)}
<h2>Jolts</h2>
{jolts_html}
{_bed_section(f)}
<h2>What you were doing</h2>{table(["activity", "time"], act_rows) if act_rows else none}
<h2>Calibration and data quality</h2><ul>{notes}</ul>
<h2>Settings used</h2>
<details><summary>{len(settings_rows)} analysis settings and their sources (tap to show)</summary>
{table(["setting", "value", "source"], settings_rows, "long")}</details>
<p class="meta">Nape is not a medical device. Grades describe movement intensity, not injury.</p>"""
    return page(f"Nape report — {Path(f.path).name}", body)


# ---------------------------------------------------------------- JSON


def to_json(f: Findings) -> dict:
    """The JSON report (protocol/report.schema.json): units in the field names."""
    d = f.as_dict()
    panels = {id(j) for j in panel_jolts(f)}
    start = start_time(f)
    d["jolts"] = []
    for j in f.jolts:
        r = jolt_record(j)
        r["peak_local_time"] = clock(f, j.peak_t_s) if start else None
        r["meaning"] = jolt_sentence(j, f.settings)
        r["trace"] = j.trace if id(j) in panels else None
        d["jolts"].append(r)
    d["episodes"] = []
    for e in f.episodes:
        r = episode_record(e)
        r["start_local_time"] = clock(f, e.start_s) if start else None
        r["meaning"] = MEANING.get(e.kind, "")
        d["episodes"].append(r)
    d["gaps"] = [{"reason": "lost in transmission", "missing_samples": None, "boot_number": 1} | g
                 | {"start_local_time": clock(f, g["start_s"]) if start else None} for g in d["gaps"]]
    d["file_issues"] = [{"offset_bytes": i["offset"], "kind": i["kind"], "detail": i["detail"]} for i in f.file_issues]
    d["start_local"] = start.isoformat(timespec="seconds") if start else None
    d["jolt_panels"] = len(panels)
    d["headlines"] = headlines(f)
    d["quality_notes"] = quality_notes(f)
    d["report_version"] = REPORT_VERSION
    return _finite(d)


def _finite(o):
    """NaN/inf → None so the JSON is standard (RFC 8259 has no NaN)."""
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def write_reports(f: Findings, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``stem.html`` and ``stem.json`` into ``out_dir``; returns their paths.

    Raises:
        OSError: the folder cannot be created or written.
    """
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
