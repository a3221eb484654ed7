"""The cohort page (``nape cohort``): one self-contained HTML file from ``cohort.json``, on the
shared shell (:mod:`.page`: plotly.js inlined, CSP forbidding any request, phone and desktop).

Every string that came from a user — wearer ids, groups, labels, paths, failure reasons —
is escaped, in the page and in the plots' labels (plotly renders some HTML in labels).
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from .page import TOOLBAR_PX, esc, page, plot, table
from .recording import CAUSE_WORDS, GRADE_PATTERN
from .words import GRADE_COLOUR

COHORT_CSS = """
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(9em, 1fr)); gap: .5em; margin: .6em 0; }
.cards div { border: 1px solid #ddd; border-radius: .5em; padding: .4em .6em; }
.cards b { display: block; font-size: 1.35em; } .cards span { color: #555; font-size: .85em; }
code, pre { font-size: .85em; } pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f7f7; padding: .5em; }
.bad { color: #c62828; }
"""


def e(v) -> str:
    """Any value as escaped HTML text ('–' for missing)."""
    return "–" if v is None else esc(v)


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, autosize=True, margin={"l": 48, "r": 12, "t": TOOLBAR_PX, "b": 40},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
                      font={"size": 13}, plot_bgcolor="#fafafa", **kw)
    return fig


def num(v, fmt: str = ".1f", unit: str = "") -> str:
    return "–" if v is None else format(v, fmt) + unit


def _card(value: str, words: str) -> str:
    return f"<div><b>{value}</b><span>{e(words)}</span></div>"


def _summary(c: dict) -> list[str]:
    n = c["counts"]
    out = [f"{n['wearers']} wearers in {n['groups']} group{'s' if n['groups'] != 1 else ''}, "
           f"{n['analysed']} recordings analysed, {n['hours_worn']:.1f} hours worn."]
    if n["failed"]:
        out.append(f"{n['failed']} recording{'s' if n['failed'] != 1 else ''} could not be analysed: "
                   "see Data quality for the reasons.")
    for m in ("neck_poor_min_per_h", "trunk_poor_min_per_h"):
        named = [f"{o['wearer']} ({o['value']:.1f})" for d in c["distributions"][m] for o in d["outliers"]]
        if named:
            from ..cohort.figures import DISTRIBUTIONS

            out.append(f"Stand out for {DISTRIBUTIONS[m]}: {', '.join(named)}.")
    out += _group_findings(c)
    stiffer = [f"{t['wearer']} ({t['direction_label']}, {t['change_deg']:+.0f}°)" for t in c["rom_trends"] if t["trend"] == "stiffer"]
    if stiffer:
        out.append(f"Neck range of motion got smaller between tests for: {', '.join(stiffer)}.")
    return out


#: the y axis of each wearer figure's box plot: its unit (the heading above the chart says what it is)
BOX_UNIT = {"hours_worn": "hours", "neck_poor_min_per_h": "min per hour worn",
            "trunk_poor_min_per_h": "min per hour worn", "jolts_per_driving_h": "jolts per hour"}


def _group_findings(c: dict) -> list[str]:
    """Which group spends most time in poor posture, what to look at first, and how sure the
    rates are (on how many hours, how much driving), in sentences."""
    th = c["thresholds"]
    out = []
    groups = [g for g in c["groups"] if g.get("neck_poor_min_per_h") is not None or g.get("trunk_poor_min_per_h") is not None]
    if groups:
        key = lambda g: (g.get("neck_poor_min_per_h") or 0) + (g.get("trunk_poor_min_per_h") or 0)  # noqa: E731
        worst = max(groups, key=key)
        each = "; ".join(f"{g['group']} {num(g.get('neck_poor_min_per_h'))} and {num(g.get('trunk_poor_min_per_h'))}"
                         for g in sorted(groups, key=key, reverse=True))
        out.append(f"Minutes per hour worn with the neck bent forward more than {th['neck_flexion_deg']:g}° and the "
                   f"upper back leaning forward more than {th['trunk_inclination_deg']:g}° (not lying): {each}.")
        if key(worst) > 0:
            look = ("neck" if (worst.get("neck_poor_min_per_h") or 0) >= (worst.get("trunk_poor_min_per_h") or 0)
                    else "upper back")
            tip = ("screen and phone height, and how long people look down without a break" if look == "neck"
                   else "chair, desk height and reach, and how long people lean forward without a break")
            who = f"the {worst['group']} group" if len(groups) > 1 else "this group"
            out.append(f"What to look at first: {who}'s {look} posture — {tip}. Each wearer's report says which "
                       "postures (keyboard, phone, hunching) made up the time.")
    n = c["counts"]
    hours = [w["hours_worn"] for w in c["wearers"] if w.get("hours_worn") is not None]
    if hours:
        driving = sum(g.get("driving_h") or 0 for g in c["groups"])
        sure = (f"How sure: these rates rest on {n['hours_worn']:.1f} hours worn ({min(hours):.1f} to "
                f"{max(hours):.1f} per wearer); the fewer the hours, the more one long stretch moves a wearer's rate.")
        if driving > 0:
            per = min((g["driving_h"] for g in c["groups"] if g.get("driving_h")), default=driving)
            sure += (f" Jolts per driving hour rest on {driving:.2f} hours of driving: in the group with the least "
                     f"driving each jolt adds {1 / per:.0f} per hour, so read them with care.")
        out.append(sure)
    return out


def _box(c: dict, metric: str, words: str):
    rows = c["distributions"].get(metric) or []
    if not rows:
        return None
    fig = go.Figure()
    for r in rows:
        fig.add_trace(go.Box(y=[v["value"] for v in r["values"]], name=html.escape(r["group"]),
                             text=[html.escape(v["wearer"]) for v in r["values"]], boxpoints="all", jitter=0.4,
                             pointpos=0, hovertemplate="%{text}: %{y:.2f}<extra></extra>"))
    return _layout(fig, 280, yaxis={"title": {"text": BOX_UNIT.get(metric, words)}, "rangemode": "tozero"},
                   showlegend=False)


def _jolt_chart(c: dict):
    rows = c["jolts_by_cause_grade"]
    if not any(r["jolts_in_vehicle"] for r in rows):
        return None
    groups = sorted({r["group"] for r in rows})
    driving = {g["group"]: g["driving_h"] for g in c["groups"]}
    fig = go.Figure()
    for grade in ("mild", "moderate", "severe"):
        y = []
        for g in groups:
            n = sum(r["jolts_in_vehicle"] for r in rows if r["group"] == g and r["grade"] == grade)
            y.append(n / driving[g] if driving.get(g) else None)
        fig.add_trace(go.Bar(x=[html.escape(g) for g in groups], y=y, name=grade,
                             marker={"color": GRADE_COLOUR[grade], "pattern": {"shape": GRADE_PATTERN[grade],
                                     "fgcolor": "rgba(255,255,255,0.75)", "size": 7}},
                             hovertemplate="%{x}: %{y:.2f} per driving hour<extra>" + grade + "</extra>"))
    return _layout(fig, 280, barmode="stack", yaxis_title="jolts per driving hour")


def _outlier_list(c: dict) -> str:
    from ..cohort.figures import DISTRIBUTIONS

    items = []
    for m, words in DISTRIBUTIONS.items():
        for d in c["distributions"][m]:
            for o in d["outliers"]:
                side = "high" if o["value"] > d["median"] else "low"
                items.append(f"<li><b>{e(o['wearer'])}</b> ({e(d['group'])}): {e(words)} {o['value']:.2f}, "
                             f"{side} for the group (median {d['median']:.2f}, normal range "
                             f"{d['low_fence']:.2f}–{d['high_fence']:.2f})</li>")
    if not items:
        return "<p>No wearer stands out from their group (Tukey's fences, 1.5 × IQR).</p>"
    return "<ul>" + "".join(items) + "</ul>"


def _wearer_table(c: dict) -> str:
    rows = [[e(w["wearer"]), e(w["group"]), str(w["recordings"]), num(w["hours_worn"]),
             num(w["neck_poor_min_per_h"]), num(w["trunk_poor_min_per_h"]),
             f"{w['neck_iso11226_not_acceptable'] or 0} / {w['trunk_iso11226_not_acceptable'] or 0}",
             num(w["driving_h"], ".2f"), num(w.get("jolts_per_driving_h"), ".1f"), num(w["lying_h"]),
             num(w["coverage"] * 100 if w["coverage"] is not None else None, ".1f", " %")]
            for w in c["wearers"]]
    return table(["wearer", "group", "recordings", "hours worn", "neck bent forward (min/h)", "upper back leaning forward (min/h)",
                   "ISO 11226 not acceptable (neck / back)", "driving (h)", "jolts per driving hour", "lying (h)",
                   "samples kept"], rows, "long")


def _group_table(c: dict) -> str:
    rows = [[e(g["group"]), str(g["wearers"]), str(g["recordings"]), num(g["hours_worn"]),
             num(g["neck_poor_min_per_h"]), num(g["trunk_poor_min_per_h"]), num(g["driving_h"], ".2f"),
             str(g["jolts"] or 0)] for g in c["groups"]]
    return table(["group", "wearers", "recordings", "hours worn", "neck bent forward (min/h)",
                   "upper back leaning forward (min/h)", "driving (h)", "jolts"], rows, "long")


def _jolt_table(c: dict) -> str:
    rows = [[e(r["wearer"]), e(r["group"]), e(CAUSE_WORDS.get(r["cause"], r["cause"])), e(r["grade"]),
             str(r["jolts_in_vehicle"]), num(r["per_driving_h"], ".2f"), str(r["jolts_elsewhere"])]
            for r in c["jolts_by_cause_grade"]]
    if not rows:
        return "<p>No jolts.</p>"
    return table(["wearer", "group", "cause", "grade", "in a vehicle", "per driving hour", "elsewhere"], rows, "long")


def _bed(c: dict) -> str:
    if not c["bed"]:
        lying = [w for w in c["wearers"] if (w["lying_h"] or 0) > 0]
        return ("<p>Nobody's neck stayed bent in bed: no sign of a pillow that is too high or too low.</p>" if lying
                else "<p>No recording includes time in bed.</p>")
    rows = [[e(b["wearer"]), e(b["group"]), e(b["pattern"]), str(b["episodes"]), num(b["minutes"], ".0f")]
            for b in c["bed"]]
    return ("<p>Long stretches in bed with the neck bent relative to the back, by what they suggest about the pillow.</p>"
            + table(["wearer", "group", "what it suggests", "episodes", "minutes"], rows, "long"))


def _rom(c: dict) -> str:
    if not c["rom_trends"]:
        return "<p>No range-of-motion tests in this cohort.</p>"
    rows = [[e(t["wearer"]), e(t["direction_label"]), str(t["tests"]), num(t["first_deg"], ".0f", "°"), num(t["last_deg"], ".0f", "°"),
             num(t["change_deg"], "+.0f", "°"), e(t["trend"]),
             f"{t['typical_low_deg']:.0f}–{t['typical_high_deg']:.0f}°"] for t in c["rom_trends"]]
    return (f"<p>End range of each direction in the first and the last test; a change of more than "
            f"{c['thresholds']['rom_change_deg']:g}° is called stiffer or freer.</p>"
            + table(["wearer", "direction", "tests", "first", "last", "change", "trend", "typical"], rows, "long"))


def _quality(c: dict) -> str:
    rows = []
    for q in c["quality"]:
        flags = []
        if q["status"] == "failed":
            flags.append(f'<span class="bad">not analysed: {e(q["failure_reason"])}</span>')
        else:
            if q["coverage"] is not None and q["coverage"] < c["thresholds"]["min_coverage"]:
                flags.append(f"only {q['coverage'] * 100:.1f} % of samples kept")
            if q["damaged"]:
                flags.append("damaged file (parts skipped; see its report)")
            if q["calibration_guessed"]:
                flags.append("calibration guessed: angles may be offset by a few degrees")
            if q["has_head"] is False:
                flags.append("no head sensor: neck not measured")
        where = e(q["path"]) if q["path"] else e(q["recording_id"])
        rows.append([e(q["wearer"]), e(q["label"] or ""), where, "; ".join(flags)])
    if not rows:
        return "<p>Every recording was analysed, complete and calibrated.</p>"
    return table(["wearer", "label", "recording", "flags"], rows, "long")


def _recordings(c: dict) -> str:
    rows = []
    for r in c["recordings"]:
        report = r["report_html"] or r["report_json"]
        link = f'<a href="{e(report)}">report</a>' if report else e(r["failure_reason"])
        rows.append([e(r["wearer"]), e(r["group"]), e(r["label"] or ""), e(r["kind"] or "–"),
                     e((r["start_utc"] or "–").replace("T", " ")), num(r["hours"], ".2f"), link])
    listing = table(["wearer", "group", "label", "kind", "start (UTC)", "hours", ""], rows, "long")
    return f"<details><summary>All {len(rows)} recordings (tap to show)</summary>{listing}</details>"


def render_cohort_html(c: dict) -> str:
    """The cohort report page (see the module docstring) from ``cohort.json``'s content."""
    from ..cohort.figures import DISTRIBUTIONS

    n = c["counts"]
    cards = "".join([_card(str(n["wearers"]), "wearers"), _card(str(n["groups"]), "groups"),
                     _card(str(n["analysed"]), "recordings analysed"), _card(f"{n['hours_worn']:.1f}", "hours worn"),
                     _card(str(n["failed"]), "not analysed")])
    boxes = "".join(f"<h3>{e(words.capitalize())}</h3>" + plot(_box(c, m, words), f"dist-{m}")
                    for m, words in DISTRIBUTIONS.items() if c["distributions"].get(m))
    summary = "".join(f"<li>{e(s)}</li>" for s in _summary(c))
    queries = "".join(f"<h3>{e(k)}</h3><pre>{e(v)}</pre>" for k, v in c["queries"].items())
    th = c["thresholds"]
    body = f"""<h1>Nape cohort report</h1>
<p class="meta">Made {e(c['created_utc'].replace('T', ' ').replace('Z', ' UTC'))} · {e(c['privacy'])}</p>
<div class="cards">{cards}</div>
<h2>Summary</h2><ul class="summary">{summary}</ul>
<h2>Groups</h2>{_group_table(c)}
<h2>Each wearer</h2>
<p class="meta">Poor posture: minutes with the neck bent forward more than {th['neck_flexion_deg']:g}° or the upper back
forward more than {th['trunk_inclination_deg']:g}° (not lying), per hour worn. ISO 11226: long episodes judged not
acceptable. Jolts per driving hour: jolts in minutes spent in a vehicle.</p>
{_wearer_table(c)}
<h2>How wearers compare</h2>
<p class="meta">One dot per wearer; the box spans the middle half of the group. A wearer beyond 1.5 box lengths from
the box stands out and is named below.</p>
{boxes or '<p>No figures yet.</p>'}
<h3>Who stands out</h3>{_outlier_list(c)}
<h2>Jolts while driving</h2>
<p class="meta">Jolts in a vehicle per hour of driving, by grade (mild plain, moderate striped, severe
criss-crossed), in {sum(g.get('driving_h') or 0 for g in c['groups']):.2f} hours of driving in all.</p>
{plot(_jolt_chart(c), "jolts-by-grade")}
{_jolt_table(c)}
<h2>In bed</h2>{_bed(c)}
<h2>Neck range of motion over time</h2>{_rom(c)}
<h2>Data quality</h2>{_quality(c)}
<h2>Recordings</h2>{_recordings(c)}
<h2>Query the tables yourself</h2>
<p>The figures come from {', '.join(f'<code>{e(t)}</code>' for t in c['tables'].values())} in this folder, through
DuckDB. Make a view per table (<code>CREATE VIEW recordings AS FROM 'recordings.parquet'</code>, …), then:</p>
<details><summary>The queries (tap to show)</summary>{queries}</details>
<p class="meta">Nape is not a medical device. Grades describe movement intensity, not injury.</p>"""
    return page("Nape cohort report", body, COHORT_CSS)
