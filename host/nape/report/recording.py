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

from .. import safe_write
from ..analysis import Findings
from ..analysis.findings import Jolt, PostureEpisode, episode_record, jolt_record
from ..analysis import coverage
from ..analysis.posture import runs
from ..plainwords import (NECK_BANDS, TRUNK_BAND_ISO, TRUNK_BANDS, activity_label, band_label, calibration_notes,
                          episode_advice, grade_meaning, iso_verdict, jolt_advice, limits_story, top_actions,
                          walking_offset)
from ..settings import AnalysisSettings
from .page import TOOLBAR_PX, esc, page, plot, table
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
RULA_MEANING = {
    "1": "neck 0–10° forward: fine",
    "2": "neck 10–20° forward",
    "3": "neck more than 20° forward",
    "4": "neck bent backwards, or forward and twisted/side-bent",
    "5": "bent and twisted or side-bent",
    "6": "bent, twisted and side-bent",
}
NECK_BAND_WORDS = {"-90..0": "fine unless held far back (looking up)", "0..10": "fine",
                   "10..20": "fine for a while",
                   "20..45": f"poor if held (over the {AnalysisSettings().neck_flexion_deg:g}° limit)",
                   "45..180": "poor if held"}
TRUNK_BAND_WORDS = TRUNK_BAND_ISO
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
        if not 1970 <= dt.year <= 9000:  # no recording starts there; clock times would overflow
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone()
    except (ValueError, OverflowError):
        return None


def clock(f: Findings, t_s: float, seconds: bool = True, day: bool = True) -> str:
    """Clock time of ``t_s`` seconds into the recording ('08:42:13' or '08:42'), or the
    elapsed time ('0:11:40 in') when the start time is unknown. ``day``: past midnight of the
    start's day, say which day ('00:02 next day', '07:10 on day 3'): a 16 h recording from
    16:00 would otherwise list 00:02 after 22:02 with nothing to tell them apart."""
    start = start_time(f)
    if start is None:
        return f"{fmt_clock(t_s)} in"
    t = start + timedelta(seconds=float(t_s))
    text = t.strftime("%H:%M:%S" if seconds else "%H:%M")
    later = (t.date() - start.date()).days if day else 0
    return text + (" next day" if later == 1 else f" on day {later + 1}" if later > 1 else "")


RANGE_WORDS = "the sensor's range was reached"


def peak_g(j: Jolt, role: str = "trunk", fmt: str = ".2f") -> str:
    """A jolt's peak in g, "at least N g (the sensor's range was reached)" when ``role``'s
    sensor was at its range during it (the railed samples are a lower bound of the truth)."""
    v = j.peak_trunk_g if role == "trunk" else j.peak_head_g
    if v is None or not np.isfinite(v):
        return "–"
    if role in (getattr(j, "range_reached", None) or ()):
        return f"at least {format(v, fmt)} g ({RANGE_WORDS})"
    return f"{format(v, fmt)} g"


def _jolt_order(j: Jolt):
    size = j.peak_trunk_g if np.isfinite(j.peak_trunk_g) else 0.0
    return (GRADE_RANK[j.grade], size)


def jolt_sentence(j: Jolt, s: dict) -> str:
    """What one jolt means, in plain words."""
    vehicle = j.cause in ("braking", "acceleration", "lateral")
    if vehicle:
        how = {"braking": "slowed down", "acceleration": "sped up", "lateral": "turned"}[j.cause]
        size = f"The vehicle {how} at {j.peak_vehicle_g:.2f} g." if np.isfinite(j.peak_vehicle_g) else ""
    else:
        size = (f"Your upper back took a shock of {peak_g(j, fmt='.1f')}." if "trunk" in (j.range_reached or ())
                else f"Your upper back took a {j.peak_trunk_g:.1f} g shock.")
    out = f"{MEANING.get(j.cause, '')} {size} {grade_meaning(j.cause, j.grade, s, getattr(j, 'grade_basis', ''))}".strip()
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
    if f.low_coverage or not all_valid(f):
        warn = "Little valid data: read every figure with care. " if f.low_coverage else ""
        out.append(f"{warn}The figures below rest on {coverage.rests_on(f.valid_s, f.duration_s)}.")
    out += f.input_warnings
    if f.jolts:
        by = {g: sum(j.grade == g for j in f.jolts) for g in ("severe", "moderate", "mild")}
        worst = max(f.jolts, key=_jolt_order)
        if len(f.jolts) == 1:  # not "1 jolt, 1 moderate: worst ..."
            out.append(f"1 jolt: {CAUSE_WORDS[worst.cause]} at {clock(f, worst.peak_t_s, seconds=False)} ({worst.grade}).")
        elif by["severe"] or by["moderate"]:
            parts = " and ".join(f"{n} {g}" for g, n in by.items() if n and g != "mild")
            if len(f.jolts) > 1 and any(n == len(f.jolts) for n in by.values()):  # not "200 jolts, 200 moderate"
                parts = f"all {worst.grade}"
            out.append(f"{plural(len(f.jolts), 'jolt')}, {parts}: worst {CAUSE_WORDS[worst.cause]} "
                       f"at {clock(f, worst.peak_t_s, seconds=False)} ({worst.grade}).")
        else:
            out.append(f"{plural(len(f.jolts), 'jolt')}, all mild; strongest {CAUSE_WORDS[worst.cause]} "
                       f"at {clock(f, worst.peak_t_s, seconds=False)}.")
    else:
        out.append("No jolts." if all_valid(f) else f"No jolts in {fmt_duration(f.valid_s)} of valid data.")
    for kind, label, key in (
        ("neck_flexion", "Neck bent forward", "neck_over_threshold_s"),
        ("trunk_inclination", "Upper back leaning forward", "trunk_over_threshold_s"),
    ):
        total = getattr(f.exposure_s, key)
        if total is None:  # no head IMU
            continue
        eps = [e for e in f.episodes if e.kind == kind]
        thr = f.settings["neck_flexion_deg" if kind == "neck_flexion" else "trunk_inclination_deg"]
        if f.valid_s < f.settings.get("hold_s", 60.0):  # "never" would claim more than the data can show
            out.append(f"{label} more than {thr:g}° for {fmt_duration(total)} in {fmt_duration(f.valid_s)} of valid "
                       f"data: too short to judge holds of {fmt_duration(f.settings['hold_s'])}.")
            continue
        if eps:
            longest = max(eps, key=lambda e: e.duration_s)
            out.append(f"{label} more than {thr:g}° for {fmt_duration(total)}, longest {fmt_duration(longest.duration_s)} "
                       f"(from {clock(f, longest.start_s, seconds=False)}; {plural(len(eps), 'long stretch')}).")
        elif total > 0:
            out.append(f"{label} more than {thr:g}° for {fmt_duration(total)} in short spells, never held for "
                       f"{fmt_duration(f.settings['hold_s'])} or longer.")
        else:
            part = "" if all_valid(f) else f" in {fmt_duration(f.valid_s)} of valid data"
            out.append(f"{label} more than {thr:g}°: never{part}.")
    if "head" not in f.roles:
        out.append("No head sensor: neck posture was not measured, only the upper back.")
    bed = [e for e in f.episodes if e.kind == "bed_neck"]
    if f.lying_s > 0:
        extra = (f"; neck bent in bed for {fmt_duration(sum(e.duration_s for e in bed))} (pillow)" if bed else "")
        out.append(f"Lying down for {fmt_duration(f.lying_s)} (not counted as poor posture){extra}.")
    out.append(how_sure(f))
    return out


def how_sure(f: Findings) -> str:
    """How sure the angles are, in one sentence: every angle is measured from the neutral
    posture, so it is as good as that (the calibration notes give the details)."""
    method = getattr(f.calibration, "method", "unknown")
    off = walking_offset(f.series)
    tol = f.settings.get("calib_check_walk_deg", 10.0)
    see = " (see Calibration and data quality)"
    if off is not None and abs(off[1]) > tol:
        way = "forward" if off[1] > 0 else "back"
        return (f"How sure: the angles may read about {abs(off[1]):.0f}° too far {way} — while you walked your upper back "
                f"did not read upright, so the neutral posture was probably off{see}.")
    if method == "captured":
        base = "How sure: you set your neutral posture yourself, so the angles are measured from your own upright"
    elif method == "automatic":
        base = "How sure: Nape took your neutral posture from a still, upright moment (you did not press calibrate)"
    elif method == "walking":
        ref = f.calibration.walking_reference or {}
        which = " and ".join(ref.get("used_for") or ["sensors"])
        return (f"How sure: fairly — the {which} sensor never looked upright while you were still, so Nape took its "
                f"upright from your walking; the angles should be right to within about "
                f"{f.calibration.guess_error_deg or 5:.0f}°{see}.")
    elif method == "guess":
        return ("How sure: not very — Nape found no still, upright moment to take your neutral posture from and had to "
                f"guess it, so every angle may be off by as much as you were leaning then{see}.")
    else:
        return f"How sure: no neutral posture could be taken, so the angles cannot be trusted{see}."
    if off is not None:
        return f"{base}; a walk confirmed it to within about {tol:g}°{see}."
    if method == "captured":
        return base + "."
    return f"{base}; nothing could check it, so if you slouched then every angle is off by as much{see}."


def quality_notes(f: Findings) -> list[str]:
    """Calibration and data-quality notes in plain words."""
    method = f.calibration.method
    cal = calibration_notes({"method": method, "start_s": f.calibration.start_s,
                             "walking_reference": f.calibration.walking_reference,
                             "guess_error_deg": f.calibration.guess_error_deg}, f.series, f.settings)
    notes = list(f.not_judged)
    notes += [("Uncalibrated: " if method in ("guess", "none") else "Calibration: ") + " ".join(cal)]
    if f.orientation_source:  # which way the tilt angles were worked out, in words before the technical name
        src = f.orientation_source
        how = ("worked out again on this computer from the raw sensor signals, more accurate than the board's own "
               "estimate" if src.startswith("host re-fusion") else "")
        notes.append(f"Orientation: {how} ({src})." if how else f"Orientation: {src}.")
    notes += rate_notes(f)
    notes += gap_notes(f)
    notes += import_notes(f)
    notes += glitch_notes(f)
    if f.malformed_packets:
        notes.append(f"{f.malformed_packets} malformed packets were skipped.")
    for issue in f.file_issues:
        notes.append(f"File: {issue['kind']} at byte {issue['offset']}: {issue['detail']}.")
    if "head" not in f.roles:
        notes.append("No head sensor: neck flexion, RULA and the neck-loading measure (NIC) are not measured.")
    no_window = sum(1 for j in f.jolts if (j.trace or {}).get("source") != "event window")
    if f.jolts and no_window:
        notes.append(f"{plural(no_window, 'jolt')} without a high-rate event window from the board: their traces "
                     f"are {stream_words(f)}, which can read short shocks a little low.")
    start = start_time(f)
    if start is None:
        notes.append("The recording has no start time: times are shown as time into the recording.")
    else:
        notes.append(f"Times are clock times on this computer's time zone (UTC{start.strftime('%z')[:3]}:"
                     f"{start.strftime('%z')[3:]}); the recording started {start.strftime('%Y-%m-%d %H:%M:%S')}.")
    return notes


GLITCH_WORDS = {"saturation": "at the sensor's limit", "impossible": "beyond any body-worn sensor's range",
                "spike": "single-sample spikes", "non_finite": "not numbers"}


def glitch_notes(f: Findings) -> list[str]:
    """Sensor glitches masked by the analysis (nape.analysis.quality), in plain words."""
    g = f.glitches or {}
    out = []
    if g.get("saturated_samples"):
        out.append(f"{plural(g['saturated_samples'], 'sample')} reached the sensor's range: kept as measured, a lower bound "
                   "of the true value (a jolt that contains them gives its peak as \"at least\").")
    if not g.get("samples"):
        return out
    kinds = ", ".join(f"{n} {GLITCH_WORDS.get(k, k)}" for k, n in g.get("by_kind", {}).items())
    return out + [f"{plural(g['samples'], 'sensor glitch')} masked ({kinds}): physically impossible readings, "
                  "treated as sensor faults, not as movement or jolts."]


def reduced_spans(f: Findings) -> list[dict]:
    """The spans of the board's offline day log (reduced rate), from ``f.rates``."""
    return [sp for sp in (f.rates or {}).get("spans", []) if sp.get("rate") == "reduced"]


def rate_notes(f: Findings) -> list[str]:
    """Where the rate was reduced (the board's offline day log), what that means and what the
    board dropped or buzzed, in plain words."""
    r = f.rates or {}
    notes = []
    red = reduced_spans(f)
    if red:
        when = ", ".join(f"{clock(f, sp['start_s'], seconds=False)}–{clock(f, sp['end_s'], seconds=False)}"
                         for sp in red[:6]) + (f" and {len(red) - 6} more" if len(red) > 6 else "")
        notes.append(f"Reduced rate for {fmt_duration(r.get('reduced_rate_s', 0.0))} ({when}), full rate for "
                     f"{fmt_duration(r.get('full_rate_s', 0.0))}. {r.get('meaning', '')}")
        chk = r.get("board_orientation_check")
        if chk:
            notes.append(f"The reduced-rate posture rests on the board's own orientation: where both were measured "
                         f"({fmt_duration(chk['compared_s'])}), its inclination was {chk['median_abs_deg']:.1f}° from "
                         f"the host's re-fusion (median; 95 % within {chk['p95_abs_deg']:.1f}°).")
        if r.get("window_jolts"):
            notes.append(f"{plural(r['window_jolts'], 'jolt')} in the reduced-rate stretches measured from the "
                         "board's own high-rate windows alone (a braking or a corner is graded on its first half "
                         "second: a lower bound).")
    if r.get("header_rate_words"):
        notes.append(r["header_rate_words"])
    if r.get("dropped_words"):
        notes.append(r["dropped_words"])
    if r.get("event_windows_dropped"):
        notes.append(f"The board dropped {plural(r['event_windows_dropped'], 'jolt window')} (its log was full): "
                     "those jolts are not in this report.")
    if f.alerts:
        neck = sum(1 for a in f.alerts if a.get("neck"))
        back = sum(1 for a in f.alerts if a.get("trunk"))
        notes.append(f"The board buzzed {plural(len(f.alerts), 'posture alert')} (neck {neck}, upper back {back}), "
                     "first at " + clock(f, f.alerts[0]["start_s"], seconds=False) + ".")
    return notes


def gap_notes(f: Findings) -> list[str]:
    """Gaps in plain words with their reason, clock time, length and count, then the losses
    by reason (``f.gaps`` lists every reboot and buffer overflow; the rest of
    ``f.lost_samples`` was lost in transmission)."""
    notes = []
    by_reason = {"on-board buffer overflow": 0, "device reboot": 0, "damaged file": 0}
    other: dict[str, int] = {}
    for g in f.gaps:
        reason, n = g.get("reason", "lost in transmission"), g.get("missing_samples")
        when, length = clock(f, g["start_s"]), fmt_duration(g["duration_s"])
        if reason in by_reason:
            by_reason[reason] += n or 0
        elif reason != "lost in transmission":
            other[reason] = other.get(reason, 0) + (n or 0)
        count = f" ({plural(n, 'sample')})" if n is not None else ""
        if reason == "device reboot":
            lost = (f" It had not yet sent its last {plural(n, 'sample')}: lost." if n else "")
            off = (f"no data for {length}, while it was off." if g["duration_s"] >= 0.5 else
                   "it was back within a moment, so no time is missing.")
            notes.append(f"The device restarted (device reboot) at {when}: {off}{lost}")
        elif reason == "on-board buffer overflow":
            notes.append(f"Gap in the data at {when}: {length} missing ({plural(n or 0, 'sample')}), on-board buffer "
                         "overflow: the device was out of reach of this computer longer than its memory holds, "
                         "so it overwrote its oldest samples.")
        elif reason == "on-board log full: oldest posture data dropped":
            notes.append(f"Gap in the data at {when}: {length} missing{count}: the board's day log was full "
                         "(on-board log full), so it dropped its oldest posture data; its jolt windows were kept.")
        elif reason == "damaged file":
            notes.append(f"Gap in the data at {when}: {length} missing{count}: that part of the file is damaged "
                         "(unreadable on disk), not lost by the radio.")
        elif reason == "lost in transmission":
            notes.append(f"Gap in the data at {when}: {length} missing{count}, lost in transmission (radio).")
        else:
            notes.append(f"Gap in the data at {when}: {length} missing{count}: {reason}.")
    total = f.samples + f.lost_samples
    radio = max(0, f.lost_samples - sum(by_reason.values()) - sum(other.values()))
    if radio:
        notes.append(f"{radio} samples were lost in transmission ({100 * radio / max(total, 1):.2f} %).")
    elif f.metadata.get("source") != "import":
        notes.append("No samples lost in transmission.")
    if by_reason["on-board buffer overflow"]:
        k = by_reason["on-board buffer overflow"]
        notes.append(f"{k} samples were lost to on-board buffer overflow ({100 * k / max(total, 1):.2f} %).")
    if by_reason["damaged file"]:
        k = by_reason["damaged file"]
        notes.append(f"{k} samples are missing because the file is damaged ({100 * k / max(total, 1):.2f} %); "
                     "`nape info` shows where.")
    return notes


def import_notes(f: Findings) -> list[str]:
    """How an imported recording's timing was made regular (protocol/IMPORT.md), plain words."""
    extras = f.metadata.get("extras") if isinstance(f.metadata, dict) else None
    imp = extras.get("import") if isinstance(extras, dict) else None
    timing = imp.get("timing") if isinstance(imp, dict) else None
    if not isinstance(timing, dict) or not timing.get("resampled"):
        return []
    rate = f.metadata.get("sample_rate_hz")
    return [f"Imported with irregular timestamps, resampled to {_num(rate)} Hz: rows strayed "
            f"{_num(timing.get('mean_abs_jitter_ms'))} ms from the grid on average (at most "
            f"{_num(timing.get('max_abs_jitter_ms'))} ms); {_num(timing.get('gaps'))} longer pauses left as gaps."]


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else "?"


def all_valid(f: Findings) -> bool:
    """Every second valid, as the page words it: a gap of a fraction of a second (the drive's
    day log starting just after the stream stops) would read '7 min 41 s of 7 min 41 s (100 %)'."""
    return f.duration_s > 0 and (f.valid_s >= f.duration_s - 1e-6
                                 or fmt_duration(f.valid_s) == fmt_duration(f.duration_s))


def valid_words(f: Findings) -> str:
    """'all valid' or '7 min 40 s valid (85 %)': how much data every figure rests on."""
    if all_valid(f):
        return "all valid"
    share = 100.0 * f.valid_s / f.duration_s if f.duration_s > 0 else 0.0
    return f"{fmt_duration(f.valid_s)} valid ({share:.0f} %)"


def stream_words(f: Findings) -> str:
    """'the 100 Hz stream' with the recording's own rate."""
    rate = f.metadata.get("sample_rate_hz") if isinstance(f.metadata, dict) else None
    return f"the {_num(rate)} Hz stream" if isinstance(rate, int | float) and not isinstance(rate, bool) else "the stream"


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


EPISODE_FILL = {"neck_flexion": "#ef9a9a", "trunk_inclination": "#a5d6a7", "bed_neck": "#ce93d8"}
EPISODE_LEGEND = {"neck_flexion": "neck bent forward a long time", "trunk_inclination": "upper back forward a long time",
                  "bed_neck": "neck bent in bed"}
LYING_FILL, GAP_FILL = "#bbbbbb", "#5f6368"
REDUCED_FILL = "#4fc3f7"  # the strip along the bottom where the board kept its own day log


def _legend_patch(fig: go.Figure, name: str, colour: str, opacity: float) -> None:
    """A legend entry for a shaded band (shapes have none): a square of the band's colour."""
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
                             marker={"symbol": "square", "size": 14, "color": colour, "opacity": min(1.0, opacity * 2.2)}))


def _long_gaps(f: Findings) -> list[dict]:
    return [g for g in f.gaps if g.get("duration_s", 0) >= 1.0]


def _timeline(f: Findings) -> go.Figure:
    s = f.series
    x = _x_times(f, s["time_s"])
    lying = np.array(s.get("lying", []), dtype=bool)
    upright = lambda key: np.where(lying, np.nan, np.asarray(s[key], float)) if len(lying) else s[key]  # noqa: E731
    keys = [k for k in ("neck_flexion_deg", "trunk_inclination_deg") if k in s]
    tb, ys = coverage.with_breaks(s["time_s"], *(upright(k) for k in keys))  # gaps drawn as gaps
    xb, ys = _x_times(f, tb), dict(zip(keys, ys))
    fig = go.Figure()
    if "neck_flexion_deg" in s:
        fig.add_trace(go.Scatter(x=xb, y=ys["neck_flexion_deg"], name="neck bent forward (°)",
                                 line={"color": ROLE_COLOUR["head"]}, hovertemplate="%{y:.0f}°"))
    fig.add_trace(go.Scatter(x=xb, y=ys["trunk_inclination_deg"], name="upper back forward (°)",
                             line={"color": ROLE_COLOUR["trunk"]}, hovertemplate="%{y:.0f}°"))
    xs = lambda t: _shape_x(_x_times(f, [t])[0])  # noqa: E731
    # shapes as one list: plotly's add_vrect / add_vline re-validate every shape on each call
    # (quadratic: minutes for the hundreds of jolts and episodes of a long recording)
    band = lambda x0, x1, colour, opacity: {"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1,  # noqa: E731
                                           "y0": 0, "y1": 1, "fillcolor": colour, "opacity": opacity,
                                           "line": {"width": 0}, "layer": "below"}
    shapes = [band(xs(e.start_s), xs(e.end_s), EPISODE_FILL.get(e.kind, "#ce93d8"), 0.3) for e in f.episodes]
    for kind in dict.fromkeys(e.kind for e in f.episodes):  # the legend names what is drawn
        _legend_patch(fig, EPISODE_LEGEND.get(kind, kind), EPISODE_FILL.get(kind, "#ce93d8"), 0.3)
    for i0, i1 in runs(lying):
        shapes.append(band(_shape_x(x[i0]), _shape_x(x[i1 - 1]), LYING_FILL, 0.25))
    if lying.any():
        _legend_patch(fig, "lying down (angles not drawn)", LYING_FILL, 0.25)
    for g in _long_gaps(f):
        shapes.append(band(xs(g["start_s"]), xs(g["start_s"] + g["duration_s"]), GAP_FILL, 0.35))
    if _long_gaps(f):
        _legend_patch(fig, "no data (gap)", GAP_FILL, 0.35)
    for sp in reduced_spans(f):  # a strip along the bottom: does not mix with the episode shades
        shapes.append(band(xs(sp["start_s"]), xs(sp["end_s"]), REDUCED_FILL, 0.7) | {"y1": 0.05, "layer": "above"})
    if reduced_spans(f):
        _legend_patch(fig, "reduced rate (10 Hz)", REDUCED_FILL, 0.7)
    thr = _limit_line(f)[0]
    shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": thr, "y1": thr,
                   "line": {"dash": "dot", "color": "#777", "width": 1}})
    for j in f.jolts:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": xs(j.peak_t_s), "x1": xs(j.peak_t_s), "y0": 0.9, "y1": 1,
                       "line": {"color": GRADE_COLOUR[j.grade], "width": 2}})
    fig.update_layout(shapes=shapes)
    # the legend under the chart: on top, its second row reaches under plotly's toolbar on a desktop
    fig = _layout(fig, 400, yaxis_title="degrees forward from neutral", hovermode="x unified", showlegend=True,
                  xaxis_title=None if start_time(f) else "time (min)")
    return fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.16, "x": 0},
                             margin={"t": TOOLBAR_PX})


def _limit_line(f: Findings) -> tuple[float, str]:
    """The timeline's dotted line: the neck's limit, or without a head sensor (no neck line) the
    upper back's."""
    d = AnalysisSettings()  # defaults for settings a recording did not store
    if "neck_flexion_deg" in f.series:
        return f.settings.get("neck_flexion_deg", d.neck_flexion_deg), "neck"
    return f.settings.get("trunk_inclination_deg", d.trunk_inclination_deg), "upper-back"


def timeline_caption(f: Findings) -> str:
    """What the timeline draws, exactly as drawn (colours named as they look)."""
    kinds = {e.kind for e in f.episodes}
    if "neck_flexion_deg" in f.series:
        parts = ["Lines: how far your neck (blue) and upper back (green) were bent forward, in degrees from your "
                 "neutral posture; below 0 means bent back."]
    else:  # no head sensor: one line
        parts = ["Line: how far your upper back (green) leaned forward, in degrees from your neutral posture; below 0 "
                 "means leaning back. No head sensor, so no neck line."]
    if kinds & {"neck_flexion", "trunk_inclination"} == {"neck_flexion", "trunk_inclination"}:
        parts.append("Shaded: long poor-posture stretches — pink for the neck, light green for the upper back; where "
                     "both happen at once the two shades mix to a khaki colour.")
    elif kinds & {"neck_flexion", "trunk_inclination"}:
        parts.append("Shaded: long poor-posture stretches — " + ("pink: the neck." if "neck_flexion" in kinds
                                                                 else "light green: the upper back."))
    if "bed_neck" in kinds:
        parts.append("Lilac: neck bent in bed.")
    if any(np.asarray(f.series.get("lying", []), dtype=bool)):
        parts.append("Grey: lying down — the lines stop there, because lying is not counted as poor posture.")
    if _long_gaps(f):
        parts.append("Dark grey: no data (a gap in the recording, see Calibration and data quality).")
    if reduced_spans(f):
        parts.append("Light-blue strip along the bottom: reduced rate — no phone or computer was connected, so the "
                     "board kept its own day log: posture measured 10 times a second (10 Hz) from the board's own "
                     "orientation, jolts only from the board's own high-rate windows, walking and vehicle rides "
                     "not measured there.")
    if f.jolts:
        parts.append("Short ticks along the top: jolts (yellow mild, orange moderate, red severe).")
    thr, which = _limit_line(f)
    parts.append(f"Dotted line: the {thr:g}° {which} limit. Drag to zoom, double-tap to reset.")
    return " ".join(parts)


#: each grade's bar pattern in the jolt chart: the grade reads without telling colours apart
GRADE_PATTERN = {"mild": "", "moderate": "/", "severe": "x"}
GRADE_LOOK = {"mild": "yellow, plain", "moderate": "orange, striped", "severe": "red, criss-crossed"}
#: above this many jolts the bars are a few pixels wide: a pattern cannot be seen on them, only
#: wash the colour out (the legend and the list still name each grade)
PATTERN_MAX_JOLTS = 60


def _patterned(f: Findings) -> bool:
    return len(f.jolts) <= PATTERN_MAX_JOLTS


def _jolt_chart(f: Findings) -> go.Figure:
    js = sorted(f.jolts, key=lambda j: j.peak_t_s)
    times = [clock(f, j.peak_t_s) for j in js]
    fig = go.Figure()
    for grade in ("mild", "moderate", "severe"):  # one trace per grade: the legend names them
        mine = [j for j in js if j.grade == grade]
        if not mine:
            continue
        fig.add_trace(go.Bar(
            x=[clock(f, j.peak_t_s) for j in mine], y=[j.peak_trunk_g for j in mine], name=grade,
            marker={"color": GRADE_COLOUR[grade],
                    "pattern": {"shape": GRADE_PATTERN[grade] if _patterned(f) else "",
                                "fgcolor": "rgba(255,255,255,0.75)", "size": 7}},
            customdata=[CAUSE_WORDS[j.cause] for j in mine],
            hovertemplate="%{x} %{customdata}: %{y:.2f} g (" + grade + ")<extra></extra>"))
    # one clock-time label per jolt, in time order: upright, so that jolts seconds apart (a
    # braking, then a bump) still have readable labels on a phone
    fig = _layout(fig, 300, yaxis_title="upper back peak (g)", barmode="relative", showlegend=True,
                  xaxis={"type": "category", "tickangle": -90, "automargin": True, "ticklabelstandoff": 6,
                         "categoryorder": "array", "categoryarray": list(dict.fromkeys(times))})
    return fig.update_layout(margin={"t": TOOLBAR_PX})


def jolt_chart_caption(f: Findings) -> str:
    """What the jolt chart draws and why a tall bar can be mild."""
    grades = [g for g in ("mild", "moderate", "severe") if any(j.grade == g for j in f.jolts)]
    if _patterned(f):
        looks = "Colour and pattern: the jolt's grade — " + ", ".join(f"{g} ({GRADE_LOOK[g]})" for g in grades)
    else:  # too many bars for a pattern: the list below names each jolt's grade
        looks = ("Colour: the jolt's grade — " + ", ".join(f"{g} ({GRADE_LOOK[g].split(',')[0]})" for g in grades)
                 + "; the list below names each one's grade")
    return ("Bars: the peak acceleration of your upper back in each jolt, in g (1 g is the pull of gravity). "
            f"{looks}. The grade is judged by what matters for each kind of "
            "jolt (for braking, speeding up and cornering the vehicle's steady acceleration, for a push from behind "
            "the load on the neck), so a tall bar can still be mild: each jolt below says why.")


def _band_chart(bands: dict, names: dict, words: dict, title: str) -> go.Figure:
    """Minutes per angle range as horizontal bars: the ranges' names in words fit beside the
    bars on a phone, where they would overlap under them."""
    labels = [band_label(k, names) for k in bands]
    fig = go.Figure(go.Bar(y=labels, x=[v / 60 for v in bands.values()], orientation="h",
                           marker_color=BAND_COLOURS[: len(bands)], customdata=[words.get(k, "") for k in bands],
                           hovertemplate="%{y} (%{customdata}): %{x:.1f} min<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    return _layout(fig, 60 + 34 * len(bands), xaxis_title="minutes")


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
             f"{e.mean_deg:.0f}° on average (at most {e.peak_deg:.0f}°)",
             esc(iso_verdict(e.iso11226_verdict) if e.kind != "bed_neck" else "not judged: it covers sitting and standing"),
             esc(episode_advice(e.kind, e.pattern))] for e in eps]


def _episodes_html(f: Findings, bed: bool) -> str:
    """Episode table (the longest ``SHORT_LIST`` when there are more, the rest folded away)
    and, once per kind, what it means."""
    eps = [e for e in f.episodes if (e.kind == "bed_neck") == bed]
    if not eps:
        return ""
    head = ["start", "held", "what", "angle", "ISO 11226", "what to try"]
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
    facts = [("upper back peak", peak_g(j, "trunk")), ("head peak", peak_g(j, "head")),
             ("vehicle", _na(j.peak_vehicle_g, ".2f", " g")), ("neck turn rate", _na(j.peak_neck_dps, ".0f", " °/s")),
             ("NIC", _na(j.nic_m2s2, ".1f", " m²/s²"))]
    dl = "".join(f"<div><dt>{esc(a)}</dt><dd>{esc(b)}</dd></div>" for a, b in facts)
    if tr.get("source") == "event window":
        src = (f"Traces: the board's high-rate event window ({tr['rate_hz']:g} Hz)"
               + ("" if tr.get("complete", True) else ", partly lost in transmission") + ".")
    elif tr:
        src = (f"Traces: no high-rate event window from the board for this jolt, so {stream_words(f)} around the "
               "peak is shown (short shocks may read a little low).")
    else:
        src = "No traces: the data around this jolt is not available."
    fig = plot(_jolt_trace_figure(j), f"jolt{k}")
    return (f'<section class="jolt" id="jolt-{k}"><h3>{esc(clock(f, j.peak_t_s))} · '
            f'{esc(CAUSE_WORDS[j.cause])} {_badge(j.grade)}</h3>'
            f'<p>{esc(jolt_sentence(j, f.settings))}</p>'
            f'<p><b>What to try:</b> {esc(jolt_advice(j.cause, j.nic_m2s2, f.settings.get("nic_reference_m2s2", 15.0), j.grade))}</p>'
            f'<dl class="facts">{dl}</dl>{fig}'
            f'<p class="meta">{esc(src)} Solid: linear acceleration (gravity removed); dotted: angular '
            f"velocity. Green: upper back, blue: head.</p></section>")


def panel_jolts(f: Findings) -> list[Jolt]:
    """The jolts that get a panel: the ``MAX_JOLT_PANELS`` most severe, in time order."""
    top = sorted(f.jolts, key=_jolt_order, reverse=True)[:MAX_JOLT_PANELS]
    return sorted(top, key=lambda j: j.peak_t_s)


def _standards_section(f: Findings) -> str:
    iso_rows = [[clock(f, e.start_s), esc(e.pattern or e.kind.replace("_", " ")), fmt_duration(e.duration_s),
                 esc(iso_verdict(e.iso11226_verdict))] for e in f.episodes if e.kind != "bed_neck"]
    parts = ["<p>ISO 11226 (an ergonomics standard for postures held at work) judges each stretch by its angle and "
             "how long it was held. RULA (a checklist ergonomists use) scores the neck from 1 (fine) upwards; 3 or "
             "more calls for a change.</p>",
             '<p class="meta">ISO 11226 is more lenient than Nape\'s own limits (see "Long poor-posture episodes" for '
             "why), so a stretch Nape lists can be within ISO 11226 here.</p>"]
    parts.append(table(["start", "posture", "held", "ISO 11226"], iso_rows, "long") if iso_rows
                 else "<p>ISO 11226: no posture was held long enough to judge; nothing to flag.</p>")
    if f.rula_neck_s:
        total = sum(f.rula_neck_s.values()) or 1.0
        rows = [[k, fmt_duration(v), f"{100 * v / total:.0f} %", RULA_MEANING.get(k, "")]
                for k, v in sorted(f.rula_neck_s.items())]
        parts.append(table(["RULA neck score", "time", "share", "meaning"], rows))
        if any(int(k) >= 3 for k in f.rula_neck_s):
            parts.append("<p>What to try: when the score is 3 or more for long, change what you look at (screen or "
                         "phone higher) rather than holding your head up by effort.</p>")
    else:
        parts.append("<p>RULA neck score: needs the head sensor.</p>")
    return "<h2>ISO 11226 and RULA</h2>" + "".join(parts)


def _exposure_section(f: Findings) -> str:
    out = ["<h2>Time by angle</h2><p>Minutes in each range while not lying down (tap a bar for details). "
           "Angles are degrees from your neutral posture.</p>"]
    for key, names, words, title in (("neck_bands_s", NECK_BANDS, NECK_BAND_WORDS, "neck bent forward (neck flexion)"),
                                     ("trunk_bands_s", TRUNK_BANDS, TRUNK_BAND_WORDS,
                                      "upper back leaning forward (inclination)")):
        bands = getattr(f.exposure_s, key)
        if not bands:
            continue
        total = sum(bands.values()) or 1.0
        out.append(f"<h3>{esc(title.capitalize())}</h3>")
        out.append(plot(_band_chart(bands, names, words, title), f"bands-{key}"))
        out.append(table(["range", "what it means", "time", "share"],
                         [[esc(band_label(k, names)), esc(words.get(k, "")), fmt_duration(v),
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
         _na(j.peak_trunk_g, ".2f") if "trunk" not in j.range_reached else f"≥ {j.peak_trunk_g:.2f}",
         _na(j.peak_head_g, ".2f") if "head" not in j.range_reached else f"≥ {j.peak_head_g:.2f}",
         _na(j.nic_m2s2, ".1f"),
         f'<a href="#jolt-{pidx[id(j)]}">details</a>' if id(j) in pidx else ""]
        for j in f.jolts
    ]
    ep_html = _episodes_html(f, bed=False)
    act_rows = [[esc(activity_label(k)), fmt_duration(v)] for k, v in f.activity_s.items() if v > 0]
    sources = AnalysisSettings().sources
    settings_rows = [[esc(k), f"{v:g}", esc(sources.get(k, "Nape default (see nape.settings)"))]
                     for k, v in f.settings.items()]
    summary = "".join(f"<li>{esc(h)}</li>" for h in headlines(f))
    notes = "".join(f"<li>{esc(n)}</li>" for n in quality_notes(f))
    none = "<p>None.</p>"
    more = len(f.jolts) - len(panels)
    panel_html = "".join(_jolt_panel(f, j, k) for k, j in enumerate(panels))
    if more > 0:
        panel_html += (f'<p class="meta">{plural(more, "more jolt")} (milder) are in the chart and the list above, '
                       f"without a panel.</p>")
    jolt_table = table(["time", "cause", "grade", "upper back (g)", "head (g)", "NIC (m²/s²)", ""], jolt_rows, "long")
    if len(jolt_rows) > SHORT_LIST:
        jolt_table = f"<details><summary>All {len(jolt_rows)} jolts (tap to show)</summary>{jolt_table}</details>"
    jolts_html = (f'<p class="meta">{esc(jolt_chart_caption(f))}</p>'
                  + plot(_jolt_chart(f), "jolts", alt=f"Bar chart of the {plural(len(f.jolts), 'jolt')}: upper-back "
                         "peak in g against clock time, by grade; the same figures are in the table below")
                  + jolt_table
        + f"<h3>Each jolt</h3>{panel_html}"
        + "<p class=\"meta\">NIC: Neck Injury Criterion (Boström et al. 1996); 15 m²/s² was proposed as an injury "
          "threshold and is exceeded by some harmless activities, so it is shown for comparison only.</p>"
        ) if f.jolts else none
    body = f"""<h1>Nape report</h1>
<p class="meta">{esc(header_line(f) + ' · ' + valid_words(f))}</p>
<h2>Summary</h2><ul class="summary">{summary}</ul>
<h2>What to do next</h2>
<ol class="summary">{"".join(f"<li>{esc(a)}</li>" for a in top_actions(f))}</ol>
<h2>Posture over time</h2>
<p class="meta">{esc(timeline_caption(f))}</p>
{plot(_timeline(f), "timeline", alt="Timeline of neck and upper-back angles in degrees from neutral against clock "
      "time, with long poor-posture stretches shaded; the stretches are listed in the next section")}
<h2>Long poor-posture episodes</h2>
<p class="meta">{esc(limits_story(f.settings))}</p>
{ep_html or "<p>None: no poor posture was held for " + esc(fmt_duration(f.settings["hold_s"])) + " or longer.</p>"}
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


def header_line(f: Findings) -> str:
    """Device, where the data came from, start, length and sensors, skipping what is unknown
    (an imported file has no firmware: it names the file instead)."""
    meta = f.metadata if isinstance(f.metadata, dict) else {}
    extras = meta.get("extras") if isinstance(meta.get("extras"), dict) else {}
    source = meta.get("source")
    if source == "import":
        orig = extras.get("original_file")
        src = f"imported from {orig}" if orig else "imported from a file"
    else:
        src = {"ble": "recorded over Bluetooth", "simulated": "simulated wearer"}.get(str(source), str(source or ""))
    parts = []
    name = str(meta.get("device_name") or "")
    if name and not (source == "import" and name == "imported"):
        parts.append(name)
    if meta.get("firmware_version"):
        parts.append(f"firmware {meta['firmware_version']}")
    parts.append(src)
    start = start_time(f)
    if start:
        parts.append(start.strftime("%Y-%m-%d %H:%M"))
    parts.append(f"{fmt_duration(f.duration_s)} recorded")
    parts.append("sensors: " + " and ".join(ROLE_WORDS.get(r, r) for r in f.roles))
    return " · ".join(p for p in parts if p)


# ---------------------------------------------------------------- JSON


def to_json(f: Findings) -> dict:
    """The JSON report (protocol/report.schema.json): units in the field names."""
    d = f.as_dict()
    panels = {id(j) for j in panel_jolts(f)}
    start = start_time(f)
    d["jolts"] = []
    for j in f.jolts:
        r = jolt_record(j)
        r["peak_local_time"] = clock(f, j.peak_t_s, day=False) if start else None
        r["meaning"] = jolt_sentence(j, f.settings)
        r["trace"] = j.trace if id(j) in panels else None
        d["jolts"].append(r)
    d["episodes"] = []
    for e in f.episodes:
        r = episode_record(e)
        r["start_local_time"] = clock(f, e.start_s, day=False) if start else None
        r["meaning"] = MEANING.get(e.kind, "")
        d["episodes"].append(r)
    d["gaps"] = [{"reason": "lost in transmission", "missing_samples": None, "boot_number": 1} | g
                 | {"start_local_time": clock(f, g["start_s"], day=False) if start else None} for g in d["gaps"]]
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
    safe_write.make_folder(out_dir)
    paths = {"html": out_dir / f"{stem}.html", "json": out_dir / f"{stem}.json"}
    # both drawn, both written to temporaries, then both renamed: a failure or Ctrl-C on the way
    # leaves the previous pair as it was, never a new JSON beside an old HTML
    body = json.dumps(to_json(f), indent=1, default=_json_default, allow_nan=False)
    safe_write.write_texts({paths["json"]: body, paths["html"]: render_html(f)})
    return paths


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o))
