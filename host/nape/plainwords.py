"""Plain words for the reports: terms explained, angle ranges named, limits reconciled,
calibration judged, and one concrete suggestion per finding.

Everything here returns text (no HTML, no rich): the recording report, the ROM page, the
trends page and the terminal summaries all say the same thing. Thresholds come from
:class:`nape.settings.AnalysisSettings` (with their sources); when to see a clinician comes
only from published guidance (:data:`nape.settings.CLINICAL_GUIDANCE`).
"""

from __future__ import annotations

import re

import numpy as np

from .settings import CLINICAL_GUIDANCE, GRADE_BOUNDS, AnalysisSettings


def fmt_duration(seconds: float) -> str:
    """'2 h 10 min', '34 min', '3 min 20 s', '45 s', 'under 1 s' (seconds in, text out)."""
    if 0 < seconds < 0.5:
        return "under 1 s"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min" if m >= 10 or not s else f"{m} min {s} s"
    return f"{s} s"


# ---------------------------------------------------------------- glossary

#: Terms a wearer may not know: (name shown, regular expression finding it in page text,
#: explanation). Order: as a reader meets them.
GLOSSARY: list[tuple[str, str, str]] = [
    ("neutral posture", r"\bneutral\b",
     "How you sit or stand upright, looking straight ahead. Every angle is measured from it: 0° is neutral."),
    ("calibration", r"\bcalibrat",
     "Taking your neutral posture, either when you press calibrate or, if you did not, from a still, upright "
     "moment Nape finds at the start of the recording."),
    ("neck flexion", r"\bflexion\b|\bflexed\b",
     "How far the head is bent forward relative to the upper back (head inclination minus upper-back "
     "inclination), in degrees. Negative: bent backwards (extension)."),
    ("extension", r"\bextension\b|\bextended\b",
     "Bending backwards, e.g. looking up at the ceiling: the opposite of flexion."),
    ("inclination", r"\binclination\b",
     "How far a body part leans forward from upright, in degrees (0° upright, 90° horizontal)."),
    ("episode", r"\bepisodes?\b",
     "A stretch of poor posture held without a break long enough to count (at least the hold time, "
     "1 minute by default)."),
    ("jolt", r"\bjolts?\b",
     "A sudden jerk of the upper back or head — braking, a bump, a knock — measured as acceleration."),
    ("g", r"\d\s?g\b",
     "Acceleration in multiples of gravity: 1 g is what you feel standing still; firm braking is about 0.4 g."),
    ("°/s", r"°/s",
     "Degrees per second: how fast the head or back turns."),
    ("ISO 11226", r"ISO\s?11226",
     "An international ergonomics standard (ISO 11226:2000) on postures held at work: how far the head and "
     "back may lean and for how long."),
    ("RULA", r"\bRULA\b",
     "Rapid Upper Limb Assessment (McAtamney & Corlett 1993), a checklist ergonomists use: it scores the neck "
     "from 1 (fine, 0–10° forward) up to 6 (bent, twisted and tilted); 3 or more calls for a change."),
    ("NIC", r"\bNIC\b",
     "Neck Injury Criterion (Boström et al. 1996): a measure of how hard a jolt loads the neck, from the "
     "difference between head and upper-back acceleration, in m²/s². 15 m²/s² was proposed as an injury "
     "threshold; everyday movements sometimes exceed it."),
    ("m²/s²", r"m²/s²", "The unit of NIC (metres squared per second squared)."),
    ("supine", r"\bsupine\b", "Lying on your back."),
    ("prone", r"\bprone\b", "Lying on your front."),
    ("lateral", r"\blateral\b", "Sideways: side-bending the neck, ear towards shoulder."),
    ("range of motion", r"\brange of motion\b|\bROM\b",
     "How far you can move your neck in each direction, in degrees from neutral."),
    ("end range", r"\bend ranges?\b",
     "The furthest you moved your head in one direction and held it (at least 1 s), in degrees from neutral."),
    ("grade", r"\bgrades?\b|\bmild\b|\bsevere\b",
     "How strong a jolt was — mild, moderate or severe — judged by what matters for its kind: the vehicle's "
     "steady acceleration for braking, speeding up and cornering, the shock at the seat for a bump, the load on the "
     "neck (NIC) for a push from behind, the blow to the upper back for a knock. So a jolt with a large upper-back "
     "peak can still be mild. The limits and their sources are in the report's settings."),
    ("IMU", r"\bIMUs?\b",
     "Inertial measurement unit: the motion sensor (accelerometer and gyroscope) on your upper back and, if "
     "fitted, on your head."),
    ("sample", r"\bsamples?\b", "One measurement of the sensors; Nape takes 100 per second."),
    ("re-fusion (VQF)", r"\bVQF\b|\bre-fusion\b",
     "Orientation worked out again on the computer from the raw sensor signals with the VQF filter (Laidig & "
     "Seel 2023), more accurate than the board's own estimate."),
    ("percentile (p95)", r"\bp95\b|\bpercentile\b", "p95: 95 % of values are at or below it."),
]


def terms_used(text: str) -> list[tuple[str, str]]:
    """(term, explanation) for every glossary term that occurs in ``text``, in glossary order."""
    return [(name, expl) for name, pattern, expl in GLOSSARY if re.search(pattern, text, re.IGNORECASE
                                                                         if name not in ("g", "NIC", "RULA") else 0)]


# ---------------------------------------------------------------- angle ranges in words

NECK_BANDS = {"-90..0": "bent back (below 0°)", "0..10": "about neutral (0–10°)",
              "10..20": "slightly forward (10–20°)", "20..45": "forward (20–45°)",
              "45..180": "far forward, over 45°"}
TRUNK_BANDS = {"-90..0": "leaning back (below 0°)", "0..20": "upright (0–20°)",
               "20..60": "leaning forward (20–60°)", "60..180": "far forward, over 60°"}
#: What ISO 11226 says about each upper-back range.
TRUNK_BAND_ISO = {"-90..0": "reclined, e.g. against a car seat or sofa: fine", "0..20": "ISO 11226: acceptable",
                  "20..60": "ISO 11226: only for a limited time", "60..180": "ISO 11226: not acceptable"}


def band_label(key: str, bands: dict[str, str]) -> str:
    """A range key like '45..180' in words ('far forward, over 45°'); unknown keys as 'a–b°'."""
    return bands.get(key, f"{key.replace('..', '–')}°")


ACTIVITY_WORDS = {"upright": "sitting or standing", "walking": "walking", "vehicle": "in a vehicle",
                  "lying_supine": "lying on your back (supine)", "lying_prone": "lying on your front (prone)",
                  "lying_side": "lying on your side"}


def activity_label(key: str) -> str:
    """An activity code of the analysis (nape.analysis.context.NAMES) in words."""
    return ACTIVITY_WORDS.get(key, key.replace("_", " "))


# ---------------------------------------------------------------- limits: one story


def limits_story(s: dict) -> str:
    """Why the summary, the episodes and ISO 11226 use different limits, in two sentences."""
    return (f"Nape flags your neck when it is bent forward more than {s['neck_flexion_deg']:g}° and your upper "
            f"back when it leans forward more than {s['trunk_inclination_deg']:g}°, held for "
            f"{_minutes(s['hold_s'])} or longer (the same rule the board buzzes on; {s['neck_flexion_deg']:g}° is the "
            "neck angle research links best with neck pain). ISO 11226, a workplace standard, is more lenient: it "
            f"allows the neck up to {s['iso_neck_flexion_deg']:g}°, and an upper back leaning "
            f"{s['trunk_inclination_deg']:g}–60° for a limited time ({s['iso_trunk_hold_20_min']:g} min at 20° down to "
            f"{s['iso_trunk_hold_60_min']:g} min at 60°). So a stretch Nape lists can still be within ISO 11226: "
            "Nape warns earlier.")


_ISO_OK = re.compile(r"acceptable \(held ([\d.]+) min ≤ ([\d.]+) min allowed at (-?\d+)°\)")
_ISO_OVER = re.compile(r"not acceptable: held ([\d.]+) min > ([\d.]+) min allowed at (-?\d+)°")


def iso_verdict(text: str | None) -> str:
    """The analysis' ISO 11226 verdict (nape.analysis.posture) in plain words, for a column
    or line already headed "ISO 11226"."""
    if not text:
        return "–"
    m = _ISO_OVER.fullmatch(text)
    if m:
        return f"beyond its limit: held {m[1]} min, longer than the {m[2]} min it allows at {m[3]}°"
    m = _ISO_OK.fullmatch(text)
    if m:
        return f"within its limit: held {m[1]} min, it allows up to {m[2]} min at {m[3]}°"
    if text == "acceptable":
        return "within its limit at this angle, however long"
    m = re.fullmatch(r"not acceptable: neck flexion (-?\d+)° beyond (\d+)°", text)
    if m:
        return f"beyond its limit: neck bent {m[1]}°, it allows up to {m[2]}°"
    return text.replace("not acceptable:", "beyond its limit:")


def _minutes(seconds: float) -> str:
    m = seconds / 60
    return f"{m:g} minute" if m == 1 else (f"{m:g} minutes" if m >= 1 else f"{seconds:g} s")


# ---------------------------------------------------------------- calibration


def calibration_notes(calibration: dict, series: dict, s: dict) -> list[str]:
    """What was taken as the neutral posture, how sure that is and how far off the angles may
    be, plainly. The check: people walk nearly upright, so the upper back's median angle while
    walking shows how far off the neutral is (when the recording has walking)."""
    method = calibration.get("method", "unknown")
    at = calibration.get("start_s")
    when = f" {_clock(at)} into the recording" if at is not None else ""
    win = s.get("neutral_window_s", 5.0)
    if method == "captured":
        out = ["You set your neutral posture yourself (calibrate): all angles are measured from it."]
    elif method == "automatic":
        out = [f"You did not press calibrate, so Nape took your neutral posture from {win:g} s in which you sat or "
               f"stood still and upright,{when}."]
    elif method == "walking":
        ref = calibration.get("walking_reference") or {}
        which = " and ".join(ref.get("used_for") or ["sensors"])
        sure = calibration.get("guess_error_deg")
        walked = _clock(ref.get("walk_s", 0))
        why = (f"the {which} sensor never looked upright while you were still (it may be worn at an angle, or you "
               "were bent over your work)")
        out = [f"You did not press calibrate and {why}, so Nape took its upright from how it hung "
               f"while you walked ({walked} of walking): people carry the head and back close to upright when they "
               "walk. Angles from it should be right to within about "
               f"{sure if sure is not None else s.get('calib_walk_head_deg', 5.0):.0f}°."]
    elif method == "guess":
        out = [f"You did not press calibrate and Nape found no still, upright moment in the first "
               f"{_minutes(s.get('calib_search_s', 300))}, so it assumed you were upright {win:g} s{when}. This is a "
               "guess."]
    else:
        out = ["No neutral posture could be taken (no samples at the start)."]
    ref = calibration.get("walking_reference") or {}
    if method == "automatic" and ref.get("reason") == "tilted_mount":
        out.append("Your sensors hang at an angle (as your walking showed), so Nape judged \"upright\" at that "
                   "still moment from how they hung while you walked, not from the sensors' own level.")
    elif method == "automatic" and ref.get("reason") == "disagreed":
        apart = ref.get("apart_deg") or [0.0]
        k = int(np.argmax(apart))
        part = ("upper back", "head")[min(k, 1)]
        out.append(f"Your {part} sensor hung {apart[k]:.0f}° differently while you walked than in that still moment: "
                   f"either your {part} was bent then or you walked {'looking down' if k else 'leaning'}; if the "
                   f"first, {part} angles may read up to about {apart[k]:.0f}° off.")
    off = walking_offset(series)
    tol = s.get("calib_check_walk_deg", 10.0)
    if off is not None:
        walk_s, med = off
        if abs(med) <= tol:
            out.append(f"Check: while you walked ({_clock(walk_s)} in all) your upper back read {med:+.0f}°, close to "
                       f"upright as expected, so the neutral posture is probably off by less than about {tol:g}° "
                       "(this check cannot see smaller offsets).")
        else:
            way = "forward" if med > 0 else "back"
            out.append(f"Check: while you walked ({_clock(walk_s)} in all) your upper back read {med:+.0f}° ({way}), "
                       f"but people walk nearly upright: the neutral posture was probably off by about {abs(med):.0f}°, "
                       f"so every angle may read about {abs(med):.0f}° too far {way}. Press calibrate while sitting "
                       "upright next time.")
    elif method in ("guess", "none"):
        out.append(f"There was no walking to check it against: if you were not upright then, every angle is off by as "
                   f"much as you were leaning — possibly {s.get('upright_tilt_deg', 35):g}° or more. Press calibrate "
                   "while sitting upright next time.")
    else:
        out.append(f"There was no walking to check it against: the search accepts up to "
                   f"{s.get('upright_tilt_deg', 35):g}° of lean, so if you were slouching then, the angles are off by as "
                   "much as you slouched. Pressing calibrate while sitting upright removes that doubt.")
    return out


def walking_offset(series: dict, min_s: float = 20.0) -> tuple[float, float] | None:
    """(seconds walked, median upper-back inclination while walking, deg), or None with less
    than ``min_s`` of walking in the per-second series."""
    act = series.get("activity") or []
    trunk = series.get("trunk_inclination_deg") or []
    vals = [t for a, t in zip(act, trunk) if a == "walking" and t is not None]
    if len(vals) < min_s:
        return None
    return float(len(vals)), float(np.median(vals))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# ---------------------------------------------------------------- suggestions

EPISODE_ADVICE = {
    "keyboard": "Raise the screen to eye level and sit back against the chair, with the keyboard close.",
    "phone": "Hold the phone higher, nearer eye level, or look up and away every few minutes.",
    "head forward": "Bring the screen or the work closer and higher, so your head can stay over your shoulders.",
    "hunched upper back": "Sit back against the backrest and bring the work closer instead of leaning to it.",
    "bed_high": "Try a lower pillow, so your head stays in line with your back.",
    "bed_low": "Try a slightly higher or firmer pillow, so your head stays in line with your back.",
    "bed_side": "Lying on your side, a pillow about as high as your shoulder keeps the neck straight.",
}


def episode_advice(kind: str, pattern: str | None) -> str:
    """One concrete suggestion for a poor-posture episode."""
    p = (pattern or "").lower()
    if kind == "bed_neck":
        return EPISODE_ADVICE["bed_side" if "sideways" in p else "bed_high" if "too high" in p else "bed_low"]
    for key in ("keyboard", "phone", "head forward", "hunched upper back"):
        if key in p:
            return EPISODE_ADVICE[key]
    return EPISODE_ADVICE["head forward" if kind == "neck_flexion" else "hunched upper back"]


JOLT_ADVICE = {
    "braking": "Leave more distance to the car ahead; keep the head restraint level with the top of your head.",
    "acceleration": "Keep the head restraint level with the top of your head and close to it.",
    "lateral": "Take corners more slowly; sit back in the seat so it holds you.",
    "bump": "Slow down for bumps and potholes; sit back in the seat.",
    "rear_impact_like": "Keep the head restraint level with the top of your head and close to it.",
    "knock": "Nothing to change unless it happens often; note what you were doing.",
}


#: What each jolt grade means, per cause, on the quantity it is graded on (``[GRADE]`` in
#: :mod:`nape.settings`, with their sources). ``{lo}`` / ``{hi}``: the cause's moderate /
#: severe boundaries in the quantity's unit. One short sentence each; no clinician advice here
#: (that comes with :func:`jolt_advice`). Keys: the cause, or "rear_impact_like/delta_v" for a
#: rear impact graded without a head sensor.
GRADE_MEANING = {
    "manoeuvre": {
        "mild": "Mild: the vehicle's sustained acceleration stayed under {lo:.2f} g, within everyday driving.",
        "moderate": "Moderate: the vehicle's sustained acceleration reached {lo:.2f} g or more, the level "
                    "driving studies call harsh.",
        "severe": "Severe: the vehicle's sustained acceleration reached {hi:.2f} g or more, the level of "
                  "emergency braking in driving studies.",
    },
    "bump": {
        "mild": "Mild: the seat's shock, estimated from your upper back's, stayed under {lo:.1f} g, the size "
                "of ordinary potholes and speed bumps.",
        "moderate": "Moderate: the seat's shock, estimated from your upper back's, reached {lo:.1f} g or "
                    "more, harder than ordinary potholes.",
        "severe": "Severe: the seat's shock, estimated from your upper back's, reached {hi:.1f} g or more, "
                  "the limit vehicle tests set for a tolerable shock at the seat.",
    },
    "rear_impact_like": {
        "mild": "Mild: the neck-loading measure NIC stayed under {lo:.0f} m²/s², the level at which "
                "crash-tested seats score best for whiplash protection.",
        "moderate": "Moderate: the neck-loading measure NIC reached {lo:.0f} m²/s² or more, beyond what "
                    "the best crash-tested seats allow.",
        "severe": "Severe: the neck-loading measure NIC reached {hi:.0f} m²/s² or more, the level "
                  "proposed as a threshold for neck injury.",
    },
    "rear_impact_like/delta_v": {
        "mild": "Mild, a less certain grade without a head sensor: your upper back's speed changed by "
                "under {lo:.0f} km/h, below the crashes with a real risk of lasting neck symptoms.",
        "moderate": "Moderate, a less certain grade without a head sensor: your upper back's speed "
                    "changed by {lo:.0f} km/h or more, where crash studies find lasting neck symptoms in "
                    "about one person in five.",
        "severe": "Severe, a less certain grade without a head sensor: your upper back's speed changed "
                  "by {hi:.0f} km/h or more, where most lasting neck symptoms occur in crash studies.",
    },
    "knock": {
        "mild": "Mild: the blow to your upper back stayed under {lo:.1f} g.",
        "moderate": "Moderate: the blow to your upper back reached {lo:.1f} g or more.",
        "severe": "Severe: the blow to your upper back reached {hi:.1f} g or more, a hard blow or fall.",
    },
}

#: the grade basis (nape.settings.GRADE_BOUNDS: which settings bound it) of each meaning
MEANING_BASIS = {"manoeuvre": "vehicle", "bump": "seat", "rear_impact_like": "nic",
                 "rear_impact_like/delta_v": "delta_v", "knock": "back"}


def grade_meaning(cause: str, grade: str, s: dict, basis: str = "") -> str:
    """What a jolt's ``grade`` means for its ``cause``, in one plain sentence, with the
    boundaries the analysis used (``s``: the recording's settings, defaults when missing).
    ``basis``: the jolt's ``grade_basis`` ("delta_v": a rear impact graded without a head
    sensor; "" in older files: the cause's usual basis).

    Raises:
        KeyError: for a grade other than mild / moderate / severe.
    """
    d = AnalysisSettings()  # defaults for settings a recording did not store
    if cause in ("braking", "acceleration", "lateral"):
        key = "manoeuvre"
    elif cause == "rear_impact_like" and basis == "delta_v":
        key = "rear_impact_like/delta_v"
    else:
        key = cause if cause in GRADE_MEANING else "knock"
    lo, hi = (s.get(k, getattr(d, k)) for k in GRADE_BOUNDS[MEANING_BASIS[key]])
    text = GRADE_MEANING[key][grade].format(lo=float(lo), hi=float(hi))
    return text + " " + TRUNK_ONLY_UNCERTAINTY if key == "rear_impact_like/delta_v" else text


#: how far the trunk-only grade of a rear impact may be from the neck-loading (NIC) grade, as
#: measured by bench.trunk_only_rear on both simulator families (same grade in 65 % / 44 % of
#: the 48 impacts it found; every other one graded higher, by one step in all but 2; before the ΔV
#: was read settled: 57 % / 20 %)
TRUNK_ONLY_UNCERTAINTY = ("How sure: in simulated crashes this grade matched the one a head sensor "
                          "gives in about half of the cases; otherwise it was higher, mostly by one step.")


def jolt_advice(cause: str, nic: float | None, nic_ref: float, grade: str = "moderate") -> str:
    """One concrete suggestion for a jolt (its ``grade`` as the analysis gives it); the
    clinician advice only from published guidance."""
    out = JOLT_ADVICE.get(cause, JOLT_ADVICE["knock"])
    if grade == "mild":
        out = "Nothing to change for one like this; only if they come often, " + out[0].lower() + out[1:]
    if (cause == "rear_impact_like" and grade != "mild") or (nic is not None and np.isfinite(nic) and nic >= nic_ref):
        out += " " + CLINICAL_GUIDANCE["neck_pain"]
    return out


def top_actions(findings) -> list[str]:
    """The two or three suggestions that matter most for this recording, most important first."""
    f = findings
    out: list[tuple[float, str]] = []
    s = f.settings
    worst = [j for j in f.jolts if (j.cause == "rear_impact_like" and j.grade != "mild") or j.grade == "severe"
             or (np.isfinite(j.nic_m2s2) and j.nic_m2s2 >= s.get("nic_reference_m2s2", 15.0))]
    if worst:
        # the same grade words as the summary and the jolt panels (not a new word like "strong")
        kinds = []
        for j in worst:
            word = (f"{j.grade} push from behind" if j.cause == "rear_impact_like" and j.grade != "severe"
                    else j.grade if j.grade == "severe" else f"{j.grade} jolt with a high neck load (NIC)")
            kinds.append(word)
        counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
        if list(counts) == ["severe"]:
            what = f"{len(worst)} severe jolt{'s' if len(worst) > 1 else ''}"
        else:
            what = (f"{len(worst)} jolt{'s' if len(worst) > 1 else ''} that may have loaded your neck ("
                    + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")")
        out.append((1e9, f"You had {what} (see Jolts). " + CLINICAL_GUIDANCE["neck_pain"]))
    # many moderate jolts (a driver braking hard again and again) call for a change too: each
    # counts as a minute of poor posture when ranking the suggestions
    moderate = [j for j in f.jolts if j.grade == "moderate" and j not in worst]
    if moderate:
        from .report.recording import CAUSE_WORDS  # the jolt list's words for each cause (imported late: a cycle)

        causes = [j.cause for j in moderate]
        top = max(dict.fromkeys(causes), key=causes.count)
        share = "" if len(causes) == 1 else "most of them " if causes.count(top) < len(causes) else "all "
        out.append((60.0 * len(moderate), f"You had {len(moderate)} moderate jolt{'s' if len(moderate) > 1 else ''} "
                                          f"({share}{CAUSE_WORDS.get(top, top)}): {JOLT_ADVICE.get(top, JOLT_ADVICE['knock'])}"))
    by_pattern: dict[str, float] = {}
    for e in f.episodes:
        key = episode_advice(e.kind, e.pattern)
        by_pattern[key] = by_pattern.get(key, 0.0) + e.duration_s
    for advice, secs in by_pattern.items():
        out.append((secs, f"{advice} ({fmt_duration(secs)} of long poor-posture stretches of this kind.)"))
    cal = getattr(f.calibration, "method", None)
    off = walking_offset(f.series)
    if cal in ("guess", "none") or (off is not None and abs(off[1]) > s.get("calib_check_walk_deg", 10.0)):
        out.append((0.5 * f.duration_s, "Press calibrate while sitting upright at the start of the next recording: "
                                         "this one's angles may be off (see Calibration)."))
    if not out:
        out.append((0.0, "Nothing stood out: keep changing position now and then, as you did."))
    if f.duration_s > 0 and (f.lost_samples / max(f.samples + f.lost_samples, 1)) > 0.05:
        out.append((0.1, "Keep the phone or computer within reach of the sensor: more than 5 % of the data was lost."))
    return [text for _, text in sorted(out, key=lambda x: -x[0])[:3]]


# ---------------------------------------------------------------- range of motion (nape rom)

ROM_VERDICT_WORDS = {"below": "less than typical", "typical": "typical", "above": "more than typical",
                     "not_measured": "not measured"}


def rom_advice(verdict: str, label: str) -> str:
    """One concrete suggestion for one direction of the range-of-motion test."""
    if verdict == "not_measured":
        return f"Repeat the test and follow the prompt for {label}: hold the end position for 3 s."
    if verdict == "below":
        return ("Repeat the test in a week or two at the same time of day: one test can be about 5° off, so "
                "only a lasting difference means a stiffer neck.")
    return "Nothing to change; repeat the test now and then to see the trend."


def rom_calibration_note(method: str | None, hold_s: float) -> str:
    """How the neutral posture of a range-of-motion test was taken (``method`` of its
    calibration: "captured", "automatic", "guess"), plainly, with how sure."""
    if method == "captured":
        head = "You set your neutral posture yourself before the test."
    elif method == "automatic":
        head = "Your neutral posture was taken while you sat still and upright at the start of the test."
    else:
        head = ("No still, upright moment was found at the start of the test, so the first seconds were assumed "
                "upright: a guess — every angle may be off by as much as you were leaning then.")
    return (f"{head} Each end range is the largest angle you held for at least {hold_s:g} s, so one jerky moment "
            "does not count. Devices like this one usually measure neck range within about 5°.")


def rom_top_actions(result) -> list[str]:
    """The two or three things that matter most after one range-of-motion test."""
    out = []
    below = [d for d in result.directions if d.verdict == "below"]
    missing = [d for d in result.directions if d.verdict == "not_measured"]
    if missing:
        out.append(f"Repeat the test: {len(missing)} direction{'s were' if len(missing) > 1 else ' was'} not measured "
                   "(follow each prompt and hold the end position for 3 s).")
    if below:
        out.append("Repeat the test in a week or two at the same time of day to see whether the smaller range "
                   f"lasts ({', '.join(d.label for d in below)}).")
        out.append(CLINICAL_GUIDANCE["neck_pain"])
    if result.asymmetry:
        out.append("Check the sensors sit straight (arrow up, centred) before the next test: a one-sided difference "
                   "can also come from a sensor mounted turned.")
    if not out:
        out.append("Nothing to change: your neck moved through its typical range. Repeat the test now and then to "
                   "see the trend.")
    return out[:3]
