"""Detection accuracy of the analysis (nape.analysis.analyse) on randomised simulated scenarios.

For every seed the bench builds a scenario (``nape.sim.scenarios.scenario(seed, kind)``:
random drives, workdays, nights or mixed days, 0–15° mounting misalignment, ICM-42688-P or
MPU-6050 sensor errors), simulates it, writes a .nape recording into a temporary folder and
runs ``nape.analysis.analyse`` on it with default settings. By default the recording takes
the fast path (``nape.sim.to_recording.write_truth_recording``: ``vqf.VQF`` 6D orientation
from the noisy signals); ``--firmware`` runs the MicroPython firmware instead
(``nape.device_sim.SimulatedTransport`` + ``nape.recorder.record``); ``--orientation truth``
sends the simulator's true orientation (to separate analysis errors from filter errors).

Scoring — decided here, before looking at any result, and never tuned to the analysis:

Jolts
    A detection matches a label when ``|jolt.peak_t_s - label.t_peak| <= 1.0 s``; matching is
    one-to-one, closest pairs first, labels taken in the order (1) scored jolt labels,
    (2) "mild" jolt labels, (3) head turns.

    * Scored labels: every vehicle jolt label (braking, acceleration, pothole, lateral,
      rear_impact) graded moderate or severe. They make the recall.
    * **Mild labels are excluded** from recall *and* precision: the simulator grades a jolt
      "mild" below the moderate boundaries (0.35 g braking/acceleration/lateral, 1 g at the
      seat for a pothole, NIC 8 m²/s² for a rear impact) — "not worth flagging" — and the
      analysis only reports from its 0.35 g trigger upwards, so neither finding nor missing
      one is an error. How many were detected anyway is printed, and how many of those the
      analysis graded mild too (the simulated rear impacts load the neck to NIC 2–7 m²/s²,
      all mild, so this is where their grading shows).
    * Head turns (label kind ``head_turn``) are negatives: a detection matching one is a
      false positive.
    * Any other unmatched detection is a false positive.

    Per event type *k*: TP = scored labels of kind *k* matched (whatever cause the analysis
    gave), FN = scored labels of kind *k* not matched, FP = false-positive detections whose
    reported cause maps to *k* (bump -> pothole, rear_impact_like -> rear_impact). The
    overall row sums them. Severity: exact agreement of the analysis grade with the label
    severity on matched scored labels. Cause: agreement of the mapped cause with the label
    kind on the same pairs. The label severity grades each cause on the quantity that loads
    the neck in it, from the simulated physics (``grade_value``: the vehicle's sustained
    acceleration, the seat's shock, NIC; nape.sim.labels and ``[GRADE]`` in nape.settings),
    which the analysis estimates from its body-worn sensors.

Posture episodes
    Reference episodes come from the simulator's *true* angles (ISO 11226 neck flexion =
    head − trunk inclination, and trunk inclination), with the episode definition the
    product documents in nape.settings (defaults): an episode starts when the angle rises
    above the threshold (20°), ends when it has fallen below threshold − hysteresis (15°) and
    stayed there longer than ``end_grace_s`` (5 s), never includes lying (simulator activity
    lying_*), and counts only when it lasts ``hold_s`` (60 s) or more. A reference episode
    is *scored* when it overlaps a labelled posture (nape.sim PostureLabel) whose mean angle
    exceeds the threshold and it still exists when both levels move by ±2° (see below);
    other reference episodes (sway, transitions or postures right at the threshold) are
    "don't care". Detected episodes of the same kind are matched one-to-one
    by largest overlap. Onset error = |detected start − reference start|, offset error =
    |detected end − reference end|; a detected episode overlapping no reference (scored or
    not) is spurious. An edge is *ill-defined* — left out of the error statistics and
    counted in its own column — when it moves by more than 5 s as the entry and exit levels
    move by ±2° (the order of an IMU's inclination error and of the wearer's own sway): e.g.
    an episode followed by a posture whose true angle sits at 15.8°, right at the exit
    level, ends wherever noise decides. Episode kinds other than neck_flexion and
    trunk_inclination are counted but not scored.

Targets: jolt F1 (overall) >= 0.95, severity class exact >= 90 %, median posture onset and
offset error <= 2 s each; vehicle context >= 90 % of drive time and <= 1 % of office / home
time (all time not driving called a vehicle is reported too). Exit status 1 when a target
fails. ``--road-vibration F`` scales the simulated road vibration of both families (0: a
smooth road, where the vehicle context must rest on the car's own speed changes and corners).

Usage::

    python -m bench.detection [--seeds 9000-9049] [--kind all|drive|workday|night|mixed]
                              [--minutes M] [--jobs 2] [--firmware] [--orientation vqf|truth]
                              [--road-vibration F] [--json] [--details]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from nape.analysis import analyse  # noqa: E402
from nape.settings import AnalysisSettings  # noqa: E402
from nape.sim import simulate  # noqa: E402
from nape.sim.scenarios import KINDS, scenario  # noqa: E402

MATCH_S = 1.0
CONDITION_DEG = 2.0  # posture edges that move by more than CONDITION_S when the levels move by
CONDITION_S = 5.0  # this much are ill-defined in the truth itself and left out of the error stats
AFTER_S = 5.0  # a false positive this soon after a jolt label is attributed to it
VEHICLE_SETTLE_S = 1.0  # nape.sim.labels: label windows end 1 s after a vehicle input
JOLT_KINDS = ("braking", "acceleration", "pothole", "lateral", "rear_impact")
CAUSE_TO_KIND = {
    "braking": "braking",
    "acceleration": "acceleration",
    "bump": "pothole",
    "lateral": "lateral",
    "rear_impact_like": "rear_impact",
}
GRADES = ("mild", "moderate", "severe")
EPISODE_KINDS = ("neck_flexion", "trunk_inclination")
TARGETS = {
    "jolt_f1": 0.97,
    "vehicle_context_share": 0.90,
    "office_false_jolts_per_h": 1.0,
    "office_vehicle_share": 0.01,
    "severity_exact": 0.90,
    "posture_onset_median_s": 2.0,
    "posture_offset_median_s": 2.0,
}
DEFAULT_SEEDS = "9000-9007"
LOFO_TARGET_F1 = 0.95


# ---------------------------------------------------------------------------- arguments


def parse_seeds(text: str) -> list[int]:
    """``"9000-9049"``, ``"1,2,5-7"`` -> sorted unique seeds.

    Raises:
        ValueError: malformed text, an empty range or a negative seed.
    """
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("-"):
            raise ValueError(f"seeds must be non-negative, got {part!r}")
        lo, sep, hi = part.partition("-")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"empty seed range {part!r}")
        seeds.update(range(a, b + 1))
    if not seeds:
        raise ValueError("no seeds given")
    return sorted(seeds)


def kind_for(seed: int, kind: str) -> str:
    """``kind``, or for "all" the kinds in turn by seed (drive, workday, night, mixed)."""
    return KINDS[seed % len(KINDS)] if kind == "all" else kind


# ---------------------------------------------------------------------------- jolt scoring


def _greedy_pairs(dets: list, det_free: set[int], labels: list, lab_ids: list[int]) -> list[tuple[int, int, float]]:
    cand = []
    for i in det_free:
        for j in lab_ids:
            dt = dets[i].peak_t_s - labels[j].t_peak
            if abs(dt) <= MATCH_S:
                cand.append((abs(dt), i, j, dt))
    cand.sort()
    used_d, used_l, out = set(), set(), []
    for _, i, j, dt in cand:
        if i in used_d or j in used_l:
            continue
        used_d.add(i)
        used_l.add(j)
        out.append((i, j, dt))
    return out


def score_jolts(labels: list, jolts: list, context_at=lambda t: "unknown") -> dict:
    """Match detections to labels (module docstring) and return plain-data results.

    Args:
        labels: ``JoltLabel`` list (sim.labels.events).
        jolts: ``Jolt`` list (Findings.jolts).
        context_at: callable time (s) -> what the script does then, for describing false
            positives (see :func:`script_context`).
    """
    scored = [j for j, l in enumerate(labels) if l.kind != "head_turn" and l.severity != "mild"]
    mild = [j for j, l in enumerate(labels) if l.kind != "head_turn" and l.severity == "mild"]
    turns = [j for j, l in enumerate(labels) if l.kind == "head_turn"]
    free = set(range(len(jolts)))
    pairs: dict[str, list[tuple[int, int, float]]] = {}
    for name, group in (("scored", scored), ("mild", mild), ("head_turn", turns)):
        pairs[name] = _greedy_pairs(jolts, free, labels, group)
        free -= {i for i, _, _ in pairs[name]}

    matched = []
    for i, j, dt in pairs["scored"]:
        lab, det = labels[j], jolts[i]
        matched.append({
            "kind": lab.kind, "severity": lab.severity, "grade": det.grade,
            "cause": CAUSE_TO_KIND.get(det.cause, det.cause), "dt_s": dt,
            "label_vehicle_g": lab.peak_vehicle_acc_g, "label_trunk_g": lab.peak_trunk_acc_g,
            "label_grade_value": getattr(lab, "grade_value", None),
            "det_grade_value": getattr(det, "grade_value", None), "det_grade_basis": getattr(det, "grade_basis", None),
            "det_trunk_g": det.peak_trunk_g, "t_s": lab.t_peak,
        })
    matched_labels = {j for _, j, _ in pairs["scored"]}
    missed = []
    for j in scored:
        if j in matched_labels:
            continue
        lab = labels[j]
        near = [d for d in jolts if lab.t_start - 0.5 <= d.peak_t_s <= lab.t_end]
        s = AnalysisSettings()
        if near:
            reason = "detected in its window but > 1 s from t_peak"
        elif max(lab.peak_trunk_acc_g, lab.peak_head_acc_g) < s.jolt_trigger_g:
            reason = f"true trunk and head peaks below the {s.jolt_trigger_g:g} g trigger"
        elif lab.t_end - lab.t_start - VEHICLE_SETTLE_S > s.jolt_max_s:
            reason = f"no detection; input lasts > jolt_max_s ({s.jolt_max_s:g} s)"
        else:
            reason = "no detection in its window"
        missed.append({"kind": lab.kind, "severity": lab.severity, "t_s": lab.t_peak,
                       "duration_s": lab.t_end - lab.t_start, "label_vehicle_g": lab.peak_vehicle_acc_g,
                       "label_trunk_g": lab.peak_trunk_acc_g, "label_head_g": lab.peak_head_acc_g,
                       "reason": reason})

    fps = []
    for i, j, _ in pairs["head_turn"]:
        det = jolts[i]
        fps.append({"t_s": det.peak_t_s, "cause": CAUSE_TO_KIND.get(det.cause, det.cause), "grade": det.grade,
                    "peak_trunk_g": det.peak_trunk_g, "reason": "head turn"})
    vehicle = [labels[j] for j in scored + mild]
    for i in sorted(free):
        det = jolts[i]
        inside = [l for l in vehicle if l.t_start - 0.5 <= det.peak_t_s <= l.t_end]
        after = [l for l in vehicle if l.t_end < det.peak_t_s <= l.t_end + AFTER_S]
        if inside:
            reason = (f"second detection inside a {inside[0].kind} label's window, > 1 s from its peak "
                      "(e.g. the release at the end of the pulse)")
        elif after:
            reason = f"within {AFTER_S:g} s after a {after[0].kind} label ends"
        else:
            reason = context_at(det.peak_t_s)
        fps.append({"t_s": det.peak_t_s, "cause": CAUSE_TO_KIND.get(det.cause, det.cause), "grade": det.grade,
                    "peak_trunk_g": det.peak_trunk_g, "reason": reason})

    mild_hit = [{"kind": labels[j].kind, "grade": jolts[i].grade} for i, j, _ in pairs["mild"]]
    return {
        "scored": Counter(labels[j].kind for j in scored),
        "mild": Counter(labels[j].kind for j in mild),
        "mild_detected": mild_hit,
        "head_turns": len(turns),
        "head_turns_flagged": len(pairs["head_turn"]),
        "matched": matched,
        "missed": missed,
        "false_positives": fps,
    }


def script_context(sim):
    """time (s) -> description of what the script does then, for false positives."""
    from nape.sim import BodyTurn, VehicleAccel
    from nape.sim.script import extent

    segs = sim.script
    starts = np.concatenate([[0.0], np.cumsum([g.duration_s for g in segs])[:-1]])
    windows = []  # (t0, t1, text), most specific first
    for start, g in zip(starts, segs):
        for e in g.events:
            a, b = extent(e)
            t0 = start + e.t_s
            if isinstance(e, VehicleAccel) and e.label is None:
                windows.append((t0 + a, t0 + b + 1.0, "during a routine (unlabelled, <= 0.18 g) speed change"))
            elif isinstance(e, BodyTurn):
                windows.append((t0 + a, t0 + b + 1.0, f"during a body turn while {g.activity}"))
    for k in range(1, len(segs)):
        prev, g = segs[k - 1], segs[k]
        if g.transition_s > 0 and g.posture != prev.posture:
            what = "glance at the dashboard" if "glance" in (g.name + prev.name) else f"{prev.activity} -> {g.activity}"
            windows.append((starts[k], starts[k] + g.transition_s + 1.0, f"during a posture change ({what})"))
    names = sim.truth.activity_names

    def context_at(t: float) -> str:
        for t0, t1, text in windows:
            if t0 <= t <= t1:
                return text
        k = int(np.clip(np.searchsorted(sim.t, t), 0, len(sim.t) - 1))
        return f"no scripted event: while {names[int(sim.truth.activity[k])]}"

    return context_at


# ---------------------------------------------------------------------------- posture scoring


def reference_episodes(t: np.ndarray, angle: np.ndarray, lying: np.ndarray, s: AnalysisSettings,
                       threshold: float) -> list[tuple[float, float]]:
    """Episodes of a true angle by the product's definition (module docstring), (start, end) s.

    Starts where the angle rises above ``threshold``; holds until it is below
    ``threshold - hysteresis`` (or lying); a return above the threshold within
    ``end_grace_s`` of that (without lying in between) continues the episode; kept when
    lasting ``hold_s`` or more.
    """
    n = len(angle)
    if n < 2:
        return []
    dt = float(t[1] - t[0])
    above = (angle > threshold) & ~lying
    low = (angle < threshold - s.hysteresis_deg) | lying
    low_idx = np.flatnonzero(low)
    lying_idx = np.flatnonzero(lying)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    grace = s.end_grace_s / dt
    spans: list[list[int]] = []
    for i0, i1 in zip(edges[::2], edges[1::2]):
        k = np.searchsorted(low_idx, i1)
        end = int(low_idx[k]) if k < len(low_idx) else n  # first exit-level sample after the run
        if spans and i0 <= spans[-1][1] + grace:
            j = np.searchsorted(lying_idx, spans[-1][1])
            if j >= len(lying_idx) or lying_idx[j] >= i0:  # no lying in between
                spans[-1][1] = max(spans[-1][1], end)
                continue
        spans.append([int(i0), end])
    return [(float(t[a]), float(t[a] + (b - a) * dt)) for a, b in spans if (b - a) * dt >= s.hold_s]


def score_postures(sim, episodes: list, s: AnalysisSettings) -> dict:
    """Reference episodes from truth, matched to the analysis episodes (module docstring)."""
    lying_codes = [k for k, name in enumerate(sim.truth.activity_names) if name.startswith("lying")]
    lying = np.isin(sim.truth.activity, lying_codes)
    t = sim.t
    out: dict[str, dict] = {}
    for kind in EPISODE_KINDS:
        if kind == "neck_flexion":
            angle, thr, attr = sim.truth.neck_flexion_deg, s.neck_flexion_deg, "mean_neck_flexion_deg"
        else:
            angle, thr, attr = sim.truth.trunk_inclination_deg, s.trunk_inclination_deg, "mean_trunk_inclination_deg"
        refs = reference_episodes(t, angle, lying, s, thr)
        poor_labels = [p for p in sim.labels.postures
                       if getattr(p, attr) > thr and not p.activity.startswith("lying")]
        shifted = [reference_episodes(t, angle, lying, s, thr + d) for d in (-CONDITION_DEG, CONDITION_DEG)]

        def robust(r: tuple[float, float]) -> bool:
            """Does the reference exist at both shifted levels too (not an artefact of ±2°)?"""
            return all(any(min(r[1], x[1]) > max(r[0], x[0]) for x in alt) for alt in shifted)

        scored = [r for r in refs if robust(r) and any(min(r[1], p.t_end) > max(r[0], p.t_start) for p in poor_labels)]

        def conditioned(r: tuple[float, float], end: int) -> bool:
            """Does this edge of the reference move by <= CONDITION_S when the levels move by ±2°?"""
            for alt in shifted:
                best = max(alt, key=lambda x: min(r[1], x[1]) - max(r[0], x[0]), default=None)
                if best is None or min(r[1], best[1]) <= max(r[0], best[0]) or abs(best[end] - r[end]) > CONDITION_S:
                    return False
            return True
        dets = [(e.start_s, e.end_s) for e in episodes if e.kind == kind]
        cand = []
        for a, r in enumerate(scored):
            for b, d in enumerate(dets):
                ov = min(r[1], d[1]) - max(r[0], d[0])
                if ov > 0:
                    cand.append((-ov, a, b))
        cand.sort()
        used_r, used_d, pairs = set(), set(), []
        for _, a, b in cand:
            if a in used_r or b in used_d:
                continue
            used_r.add(a)
            used_d.add(b)
            pairs.append((a, b))
        onset = [dets[b][0] - scored[a][0] for a, b in pairs if conditioned(scored[a], 0)]
        offset = [dets[b][1] - scored[a][1] for a, b in pairs if conditioned(scored[a], 1)]
        covered = {a for _, a, _ in cand}
        missed = [scored[a] for a in range(len(scored)) if a not in covered]
        merged = [scored[a] for a in covered - used_r]
        spurious = [d for b, d in enumerate(dets) if b not in used_d
                    and not any(min(r[1], d[1]) > max(r[0], d[0]) for r in refs)]
        worst = sorted(((abs(dets[b][0] - scored[a][0]), abs(dets[b][1] - scored[a][1]), scored[a], dets[b])
                        for a, b in pairs), key=lambda x: -max(x[0], x[1]))[:3]
        out[kind] = {
            "references": len(scored), "dont_care": len(refs) - len(scored), "detected": len(dets),
            "matched": len(pairs), "missed": missed, "merged": merged, "spurious": spurious,
            "onset_errors_s": onset, "offset_errors_s": offset,
            "ill_conditioned_edges": 2 * len(pairs) - len(onset) - len(offset),
            "worst": [{"onset_err_s": w[0], "offset_err_s": w[1], "reference": w[2], "detected": w[3]} for w in worst],
        }
    out["other_kinds"] = dict(Counter(e.kind for e in episodes if e.kind not in EPISODE_KINDS))
    return out


# ---------------------------------------------------------------------------- one seed


def _record_firmware(sim, path: Path) -> None:
    import asyncio

    from nape.device_sim import SimulatedTransport
    from nape.recorder import record

    asyncio.run(record(SimulatedTransport(sim), path, metadata={"sim_seed": int(sim.seed)}))


def _no_postures() -> dict:
    """Posture scoring of a family-B recording (no posture truth there: nothing scored)."""
    empty = {"references": 0, "dont_care": 0, "detected": 0, "matched": 0, "missed": [], "merged": [],
             "spurious": [], "onset_errors_s": [], "offset_errors_s": [], "ill_conditioned_edges": 0, "worst": []}
    return {k: dict(empty) for k in EPISODE_KINDS} | {"other_kinds": {}}


def _context_figures(f, vehicle: np.ndarray, office: np.ndarray, rate: float, false_positives: list) -> dict:
    """Seconds driven and recognised as a vehicle; office seconds and false jolts in them.
    ``vehicle`` / ``office``: per-sample truth masks."""
    act = f.series.get("activity", [])
    secs = np.arange(len(act))
    idx = np.clip((secs * rate).astype(int), 0, len(vehicle) - 1)
    drive = vehicle[idx] if len(act) else np.zeros(0, bool)
    recognised = np.array([a == "vehicle" for a in act], bool)
    off = office[idx] if len(act) else np.zeros(0, bool)
    off_fp = sum(1 for fp in false_positives if 0 <= int(fp["t_s"]) < len(off) and off[int(fp["t_s"])])
    return {"drive_s": float(drive.sum()), "drive_recognised_s": float((drive & recognised).sum()),
            "office_s": float(off.sum()), "office_false_jolts": off_fp,
            "office_vehicle_s": float((off & recognised).sum()),
            "non_drive_s": float((~drive).sum()), "non_drive_vehicle_s": float((~drive & recognised).sum())}


def _simulate(seed: int, family: str, kind: str, minutes: float | None, sensor: str | None, road: float = 1.0):
    """(sim, labels, vehicle mask, office mask, misalignment, sensor name) of one seed
    (``road``: factor on the simulated road vibration, 0 = a smooth road)."""
    if family == "b":
        from nape.sim.family_b import simulate_b

        sim = simulate_b(seed, kind, minutes, road_vibration=road)
        return sim, sim.labels.events, sim.vehicle, sim.office, sim.misalignment_deg, sim.sensor
    script, settings = scenario(seed, kind, minutes, sensor=sensor)
    settings = dataclasses.replace(settings, road_vibration=road)
    sim = simulate(script, seed, settings)
    names = sim.truth.activity_names
    act = np.asarray(sim.truth.activity)
    vehicle = act == names.index("driving")
    office = np.isin(act, [k for k, n in enumerate(names) if n in ("sitting", "standing")])
    return sim, sim.labels.events, vehicle, office, settings.mounting_misalignment_deg, settings.sensor.name


def run_seed(job: tuple) -> dict:
    """Simulate, record, analyse and score one seed (with each of ``grid``'s settings when
    given: leave-one-family-out); never raises (errors are reported)."""
    seed, family, kind, minutes, firmware, orientation, sensor, grid, road = job
    t0 = time.perf_counter()
    try:
        sim, labels, vehicle, office, mis, sensor_name = _simulate(seed, family, kind, minutes, sensor, road)
        t_sim = time.perf_counter()
        s = AnalysisSettings()
        with tempfile.TemporaryDirectory(prefix="nape-bench-") as d:
            path = Path(d) / f"seed{seed}.nape"
            if firmware and family == "a":
                _record_firmware(sim, path)
            else:
                from nape.sim.to_recording import write_truth_recording

                write_truth_recording(sim, path, orientation=orientation)
            t_rec = time.perf_counter()
            f = analyse(path, s)
            t_ana = time.perf_counter()
            by_setting = {}
            for name, over in (grid or {}).items():
                g = analyse(path, s.with_overrides([f"{k}={v}" for k, v in over.items()]))
                by_setting[name] = score_jolts(labels, g.jolts)
        context_at = script_context(sim) if family == "a" else (lambda t: f"family B {kind}")
        jolts = score_jolts(labels, f.jolts, context_at)
        return {
            "seed": seed, "family": family, "kind": kind, "ok": True, "hours": len(sim.t) / sim.rate_hz / 3600.0,
            "rate_hz": sim.rate_hz, "misalignment_deg": mis, "sensor": sensor_name,
            "jolts": jolts, "by_setting": by_setting,
            "context": _context_figures(f, vehicle, office, sim.rate_hz, jolts["false_positives"]),
            "postures": score_postures(sim, f.episodes, s) if family == "a" else _no_postures(),
            "seconds": {"simulate": t_sim - t0, "record": t_rec - t_sim, "analyse": t_ana - t_rec},
        }
    except Exception as e:  # a crash is a result too: report it, keep the other seeds
        return {"seed": seed, "family": family, "kind": kind, "ok": False, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()}


# ---------------------------------------------------------------------------- aggregation


def _prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else (0.0 if p == 0 or r == 0 else None)
    return p, r, f


def _stats(x: list[float]) -> dict:
    a = np.abs(np.asarray(x, float))
    if not len(a):
        return {"n": 0, "median_s": None, "p90_s": None, "max_s": None, "signed_median_s": None}
    return {"n": int(len(a)), "median_s": float(np.median(a)), "p90_s": float(np.percentile(a, 90)),
            "max_s": float(a.max()), "signed_median_s": float(np.median(x))}


def aggregate(results: list[dict]) -> dict:
    """Figures over all seeds (plain JSON-able data)."""
    ok = [r for r in results if r["ok"]]
    per_type = {}
    tot = Counter()
    fp_by_kind = Counter()
    for r in ok:
        for fp in r["jolts"]["false_positives"]:
            fp_by_kind[fp["cause"]] += 1
    for k in JOLT_KINDS:
        labels = sum(r["jolts"]["scored"].get(k, 0) for r in ok)
        tp = sum(1 for r in ok for m in r["jolts"]["matched"] if m["kind"] == k)
        fn = labels - tp
        fp = fp_by_kind.get(k, 0)
        mild = sum(r["jolts"]["mild"].get(k, 0) for r in ok)
        mild_hit = sum(1 for r in ok for m in r["jolts"]["mild_detected"] if m["kind"] == k)
        mild_ok = sum(1 for r in ok for m in r["jolts"]["mild_detected"] if m["kind"] == k and m["grade"] == "mild")
        p, rc, f1 = _prf(tp, fp, fn)
        mk = [m for r in ok for m in r["jolts"]["matched"] if m["kind"] == k]
        per_type[k] = {"labels": labels, "tp": tp, "fn": fn, "fp": fp, "precision": p, "recall": rc, "f1": f1,
                       "severity_exact": sum(m["severity"] == m["grade"] for m in mk) / len(mk) if mk else None,
                       "cause_accuracy": sum(m["kind"] == m["cause"] for m in mk) / len(mk) if mk else None,
                       "mild_labels": mild, "mild_detected": mild_hit, "mild_graded_mild": mild_ok}
        tot.update({"labels": labels, "tp": tp, "fn": fn, "fp": fp, "mild_labels": mild, "mild_detected": mild_hit,
                    "mild_graded_mild": mild_ok})
    other_fp = sum(v for c, v in fp_by_kind.items() if c not in JOLT_KINDS)
    tot["fp"] += other_fp
    p, rc, f1 = _prf(tot["tp"], tot["fp"], tot["fn"])
    overall = dict(tot) | {"precision": p, "recall": rc, "f1": f1}

    matched = [m for r in ok for m in r["jolts"]["matched"]]
    sev_conf = Counter((m["severity"], m["grade"]) for m in matched)
    cause_conf = Counter((m["kind"], m["cause"]) for m in matched)
    sev_exact = sum(m["severity"] == m["grade"] for m in matched) / len(matched) if matched else None
    cause_acc = sum(m["kind"] == m["cause"] for m in matched) / len(matched) if matched else None
    dts = [m["dt_s"] for m in matched]

    fps = [fp for r in ok for fp in r["jolts"]["false_positives"]]
    fp_reasons = Counter(fp["reason"] for fp in fps)
    missed = [m for r in ok for m in r["jolts"]["missed"]]
    fn_reasons = Counter(f"{m['kind']}: {m['reason']}" for m in missed)

    posture = {}
    all_on, all_off = [], []
    for kind in EPISODE_KINDS:
        rows = [r["postures"][kind] for r in ok]
        on = [x for p in rows for x in p["onset_errors_s"]]
        off = [x for p in rows for x in p["offset_errors_s"]]
        all_on += on
        all_off += off
        posture[kind] = {
            "references": sum(p["references"] for p in rows), "dont_care": sum(p["dont_care"] for p in rows),
            "detected": sum(p["detected"] for p in rows), "matched": sum(p["matched"] for p in rows),
            "missed": sum(len(p["missed"]) for p in rows), "merged": sum(len(p["merged"]) for p in rows),
            "spurious": sum(len(p["spurious"]) for p in rows),
            "ill_conditioned_edges": sum(p["ill_conditioned_edges"] for p in rows),
            "onset": _stats(on), "offset": _stats(off),
        }
    posture["all"] = {"onset": _stats(all_on), "offset": _stats(all_off)}
    other = Counter()
    for r in ok:
        other.update(r["postures"].get("other_kinds", {}))
    posture["other_kinds_reported"] = dict(other)

    ctx = {k: sum(r.get("context", {}).get(k, 0.0) for r in ok)
           for k in ("drive_s", "drive_recognised_s", "office_s", "office_false_jolts", "office_vehicle_s",
                     "non_drive_s", "non_drive_vehicle_s")}
    values = {
        "jolt_f1": overall["f1"],
        "vehicle_context_share": ctx["drive_recognised_s"] / ctx["drive_s"] if ctx["drive_s"] else None,
        "office_false_jolts_per_h": ctx["office_false_jolts"] / (ctx["office_s"] / 3600.0) if ctx["office_s"] else None,
        "office_vehicle_share": ctx["office_vehicle_s"] / ctx["office_s"] if ctx["office_s"] else None,
        "non_drive_vehicle_share": ctx["non_drive_vehicle_s"] / ctx["non_drive_s"] if ctx["non_drive_s"] else None,
        "severity_exact": sev_exact,
        "posture_onset_median_s": posture["all"]["onset"]["median_s"],
        "posture_offset_median_s": posture["all"]["offset"]["median_s"],
    }
    passed = {}
    for k, target in TARGETS.items():
        v = values[k]
        if v is None:
            passed[k] = None
        elif k.endswith("_s") or k.endswith("_per_h") or k == "office_vehicle_share":
            passed[k] = v <= target
        else:
            passed[k] = v >= target
    return {
        "recordings": len(results), "failed_runs": [{"seed": r["seed"], "kind": r["kind"], "error": r["error"]}
                                                    for r in results if not r["ok"]],
        "hours": sum(r["hours"] for r in ok),
        "jolts": {
            "per_type": per_type, "overall": overall,
            "false_positives_other_cause": other_fp,
            "head_turns": sum(r["jolts"]["head_turns"] for r in ok),
            "head_turns_flagged_as_jolts": sum(r["jolts"]["head_turns_flagged"] for r in ok),
            "severity_exact": sev_exact, "cause_accuracy": cause_acc,
            "severity_confusion": {f"{a}->{b}": n for (a, b), n in sorted(sev_conf.items())},
            "cause_confusion": {f"{a}->{b}": n for (a, b), n in sorted(cause_conf.items())},
            "timing_error_s": _stats(dts),
            "false_positive_reasons": dict(fp_reasons.most_common()),
            "missed_reasons": dict(fn_reasons.most_common()),
        },
        "postures": posture,
        "values": values,
        "targets": dict(TARGETS),
        "pass": passed,
        "all_pass": all(v is not False for v in passed.values()) and any(v is True for v in passed.values()),
    }


def breakdown(results: list[dict]) -> dict:
    """Headline figures per IMU part and per scenario kind."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        if r["ok"]:
            groups.setdefault(f"sensor {r['sensor']}", []).append(r)
            groups.setdefault(f"kind {r['kind']}", []).append(r)
    out = {}
    for name, rs in sorted(groups.items()):
        a = aggregate(rs)
        o = a["jolts"]["overall"]
        out[name] = {"recordings": len(rs), "jolt_labels": o["labels"], "tp": o["tp"], "fn": o["fn"], "fp": o["fp"],
                     "head_turns_flagged": a["jolts"]["head_turns_flagged_as_jolts"],
                     "posture_refs": sum(a["postures"][k]["references"] for k in EPISODE_KINDS),
                     "posture_missed": sum(a["postures"][k]["missed"] for k in EPISODE_KINDS),
                     "posture_spurious": sum(a["postures"][k]["spurious"] for k in EPISODE_KINDS),
                     **a["values"]}
    return out


# ---------------------------------------------------------------------------- output


def _fmt(v, pct: bool = False, digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}"


def print_tables(agg: dict, meta: dict, results: list[dict], details: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console() if sys.stdout.isatty() else Console(width=150)
    j = agg["jolts"]
    con.print(f"[bold]Nape analysis detection bench[/bold] — {meta['recordings']} recordings "
              f"(kinds: {meta['kinds']}, IMU part: {meta['sensor']}), {agg['hours']:.2f} h simulated, "
              f"recording path: {meta['path']}, "
              f"{meta['seconds']:.0f} s wall on {meta['jobs']} processes; seeds {meta['seeds_text']}")
    for f in agg["failed_runs"]:
        con.print(f"[red]seed {f['seed']} ({f['kind']}) failed: {f['error']}[/red]")

    t = Table(title="Jolt detection (scored = moderate/severe labels; mild labels ignored; head turns are negatives)")
    for c in ("type", "labels", "TP", "FN", "FP", "precision", "recall", "F1", "severity exact", "cause ok",
              "mild labels (detected, graded mild)"):
        t.add_column(c, justify="right" if c != "type" else "left", no_wrap=c == "type")
    for k, row in j["per_type"].items():
        t.add_row(k, str(row["labels"]), str(row["tp"]), str(row["fn"]), str(row["fp"]), _fmt(row["precision"], True),
                  _fmt(row["recall"], True), _fmt(row["f1"]), _fmt(row["severity_exact"], True),
                  _fmt(row["cause_accuracy"], True), f"{row['mild_labels']} ({row['mild_detected']}, {row['mild_graded_mild']})")
    o = j["overall"]
    t.add_row("[bold]overall[/bold]", str(o["labels"]), str(o["tp"]), str(o["fn"]), str(o["fp"]),
              _fmt(o["precision"], True), _fmt(o["recall"], True), f"[bold]{_fmt(o['f1'])}[/bold]",
              _fmt(j["severity_exact"], True), _fmt(j["cause_accuracy"], True),
              f"{o['mild_labels']} ({o['mild_detected']}, {o['mild_graded_mild']})")
    con.print(t)
    con.print(f"head turns: {j['head_turns']} labelled, {j['head_turns_flagged_as_jolts']} reported as jolts (FP); "
              f"detections with an unmapped cause: {j['false_positives_other_cause']}; "
              f"|t_s − t_peak| on matches: median {_fmt(j['timing_error_s']['median_s'])} s, "
              f"p90 {_fmt(j['timing_error_s']['p90_s'])} s")

    t = Table(title=f"Severity on matched jolts (rows: label, columns: analysis) — exact {_fmt(j['severity_exact'], True)}")
    t.add_column("label \\ analysis")
    for g in GRADES:
        t.add_column(g, justify="right")
    for a in GRADES:
        t.add_row(a, *[str(j["severity_confusion"].get(f"{a}->{b}", 0)) for b in GRADES])
    con.print(t)

    causes = list(JOLT_KINDS) + sorted({k.split("->")[1] for k in j["cause_confusion"]} - set(JOLT_KINDS))
    t = Table(title=f"Cause on matched jolts (rows: label, columns: analysis) — accuracy {_fmt(j['cause_accuracy'], True)}")
    t.add_column("label \\ analysis")
    for c in causes:
        t.add_column(c, justify="right")
    for a in JOLT_KINDS:
        t.add_row(a, *[str(j["cause_confusion"].get(f"{a}->{c}", 0)) for c in causes])
    con.print(t)

    t = Table(title="Posture episodes vs truth (|error|, s)")
    for c in ("kind", "refs", "don't care", "detected", "matched", "missed", "merged", "spurious",
              "ill-defined edges", "onset med", "onset p90", "offset med", "offset p90", "onset bias", "offset bias"):
        t.add_column(c, justify="right" if c != "kind" else "left", no_wrap=c == "kind")
    for kind in EPISODE_KINDS:
        p = agg["postures"][kind]
        t.add_row(kind, str(p["references"]), str(p["dont_care"]), str(p["detected"]), str(p["matched"]),
                  str(p["missed"]), str(p["merged"]), str(p["spurious"]), str(p["ill_conditioned_edges"]),
                  _fmt(p["onset"]["median_s"]), _fmt(p["onset"]["p90_s"]), _fmt(p["offset"]["median_s"]),
                  _fmt(p["offset"]["p90_s"]), _fmt(p["onset"]["signed_median_s"]),
                  _fmt(p["offset"]["signed_median_s"]))
    a = agg["postures"]["all"]
    t.add_row("[bold]all[/bold]", "", "", "", "", "", "", "", "", _fmt(a["onset"]["median_s"]), _fmt(a["onset"]["p90_s"]),
              _fmt(a["offset"]["median_s"]), _fmt(a["offset"]["p90_s"]), _fmt(a["onset"]["signed_median_s"]),
              _fmt(a["offset"]["signed_median_s"]))
    con.print(t)
    if agg["postures"]["other_kinds_reported"]:
        con.print("other episode kinds the analysis reported (not scored): "
                  + ", ".join(f"{k} × {n}" for k, n in agg["postures"]["other_kinds_reported"].items()))

    t = Table(title="Errors: why")
    t.add_column("count", justify="right")
    t.add_column("false positive (detected jolt without a scored label)")
    for reason, n in j["false_positive_reasons"].items():
        t.add_row(str(n), reason)
    con.print(t)
    t = Table()
    t.add_column("count", justify="right")
    t.add_column("missed scored jolt label")
    for reason, n in j["missed_reasons"].items():
        t.add_row(str(n), reason)
    con.print(t)

    if meta.get("breakdown"):
        t = Table(title="By IMU part and scenario kind")
        for c in ("group", "recordings", "jolt labels", "TP", "FN", "FP", "head turns as jolts", "jolt F1",
                  "severity exact", "posture refs", "missed", "spurious", "onset med s", "offset med s"):
            t.add_column(c, justify="right" if c != "group" else "left", no_wrap=c == "group")
        for name, b in meta["breakdown"].items():
            t.add_row(name, str(b["recordings"]), str(b["jolt_labels"]), str(b["tp"]), str(b["fn"]), str(b["fp"]),
                      str(b["head_turns_flagged"]), _fmt(b["jolt_f1"]), _fmt(b["severity_exact"], True),
                      str(b["posture_refs"]), str(b["posture_missed"]), str(b["posture_spurious"]),
                      _fmt(b["posture_onset_median_s"]), _fmt(b["posture_offset_median_s"]))
        con.print(t)

    if details:
        t = Table(title="Per recording")
        for c in ("seed", "kind", "sensor", "mis °", "min", "TP", "FN", "FP", "sev ok", "ep refs", "ep matched",
                  "worst onset/offset s", "s (sim/rec/ana)"):
            t.add_column(c)
        for r in sorted(results, key=lambda r: r["seed"]):
            if not r["ok"]:
                t.add_row(str(r["seed"]), r["kind"], "[red]error[/red]", "", "", "", "", "", "", "", "", r["error"][:40], "")
                continue
            jj = r["jolts"]
            sev = sum(m["severity"] == m["grade"] for m in jj["matched"])
            refs = sum(r["postures"][k]["references"] for k in EPISODE_KINDS)
            mt = sum(r["postures"][k]["matched"] for k in EPISODE_KINDS)
            errs = [(w["onset_err_s"], w["offset_err_s"]) for k in EPISODE_KINDS for w in r["postures"][k]["worst"]]
            worst = max(errs, key=lambda x: max(x)) if errs else None
            sec = r["seconds"]
            t.add_row(str(r["seed"]), r["kind"], r["sensor"], f"{r['misalignment_deg']:.1f}", f"{60 * r['hours']:.1f}",
                      str(len(jj["matched"])), str(len(jj["missed"])), str(len(jj["false_positives"])),
                      f"{sev}/{len(jj['matched'])}", str(refs), str(mt),
                      f"{worst[0]:.1f}/{worst[1]:.1f}" if worst else "—",
                      f"{sec['simulate']:.1f}/{sec['record']:.1f}/{sec['analyse']:.1f}")
        con.print(t)

    t = Table(title="Targets")
    for c in ("metric", "value", "target", "result"):
        t.add_column(c)
    labels = {
        "jolt_f1": ("jolt F1 (overall)", "≥ 0.97", False),
        "vehicle_context_share": ("drive time recognised as in a vehicle", "≥ 90 %", True),
        "office_false_jolts_per_h": ("false jolts per office hour (head movement)", "≤ 1", False),
        "office_vehicle_share": ("office / home time called a vehicle", "≤ 1 %", True),
        "non_drive_vehicle_share": ("all time not driving called a vehicle (walks to the car, nights: info)", "—", True),
        "severity_exact": ("severity class exact", "≥ 90 %", True),
        "posture_onset_median_s": ("median posture onset error", "≤ 2 s", False),
        "posture_offset_median_s": ("median posture offset error", "≤ 2 s", False),
    }
    for k, (name, target, pct) in labels.items():
        v, ok = agg["values"][k], agg["pass"].get(k)
        res = "[green]PASS[/green]" if ok else ("[red]FAIL[/red]" if ok is False else "n/a")
        t.add_row(name, _fmt(v, pct) + ("" if pct or v is None or not k.endswith("_s") else " s"), target, res)
    con.print(t)


# ---------------------------------------------------------------------------- main


LOFO_GRID = {  # candidate settings a family is tuned over (leave-one-family-out)
    "default": {},
    "sensitive": {"vibration_floor_ratio": 4.0, "body_turn_deg": 25.0, "knock_min_g": 1.2},
    "strict": {"vibration_floor_ratio": 6.0, "body_turn_deg": 45.0, "knock_min_g": 2.0},
}
DEFAULT_SEEDS_B = "9100-9105"
QUICK = {"seeds": "9000-9003", "seeds_b": "9100-9103", "minutes": None}


def run(seeds: list[int], kind: str = "all", minutes: float | None = None, jobs: int = 2,
        firmware: bool = False, orientation: str = "vqf", progress: bool = False,
        sensor: str | None = None, seeds_b: list[int] | None = None, lofo: bool = False,
        road: float = 1.0) -> list[dict]:
    """Results of :func:`run_seed` for every seed (family A ``seeds``, family B ``seeds_b``)."""
    grid = LOFO_GRID if lofo else None
    jobs_list = [(s, "a", kind_for(s, kind), minutes, firmware, orientation, sensor, grid, road) for s in seeds]
    kinds_b = ("drive_b", "office_b")
    jobs_list += [(s, "b", kinds_b[s % 2], minutes, False, orientation, sensor, grid, road) for s in (seeds_b or [])]
    results = []
    if jobs <= 1 or len(jobs_list) == 1:
        it = map(run_seed, jobs_list)
        pool = None
    else:
        pool = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(min(jobs, len(jobs_list)))
        it = pool.imap_unordered(run_seed, jobs_list, chunksize=1)
    try:
        for k, r in enumerate(it, 1):
            results.append(r)
            if progress:
                status = "ok" if r["ok"] else "ERROR " + r["error"]
                print(f"[{k}/{len(jobs_list)}] family {r['family']} seed {r['seed']} {r['kind']}: {status}",
                      file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return sorted(results, key=lambda r: (r["family"], r["seed"]))


def leave_one_family_out(results: list[dict]) -> dict:
    """For each family: the setting of :data:`LOFO_GRID` with the best jolt F1 on the *other*
    family (tuning), and this family's F1 with it (judging)."""
    fams = sorted({r["family"] for r in results if r["ok"] and r.get("by_setting")})
    out = {}
    for held in fams:
        train = [r for r in results if r["ok"] and r["family"] != held]
        test = [r for r in results if r["ok"] and r["family"] == held]
        if not train or not test:
            continue

        def f1_with(rs, name):
            return aggregate([r | {"jolts": r["by_setting"][name]} for r in rs])["values"]["jolt_f1"]

        train_f1 = {name: f1_with(train, name) for name in LOFO_GRID}
        best = max(train_f1, key=lambda n: -1 if train_f1[n] is None else train_f1[n])
        out[held] = {"tuned_on": sorted({r["family"] for r in train}), "chosen": best, "train_f1": train_f1,
                     "held_out_f1": f1_with(test, best)}
    return out


def summary(results: list[dict], lofo: bool) -> dict:
    """Per-family aggregates, their targets, and leave-one-family-out."""
    fams = sorted({r["family"] for r in results})
    per_family = {fam: aggregate([r for r in results if r["family"] == fam]) for fam in fams}
    values, targets, passed = {}, {}, {}
    for fam, agg in per_family.items():
        for k, v in agg["values"].items():
            values[f"{fam}.{k}"] = v
            targets[f"{fam}.{k}"] = TARGETS.get(k)
            passed[f"{fam}.{k}"] = agg["pass"].get(k)
    lo = leave_one_family_out(results) if lofo else {}
    for fam, row in lo.items():
        values[f"lofo.{fam}.held_out_f1"] = row["held_out_f1"]
        targets[f"lofo.{fam}.held_out_f1"] = LOFO_TARGET_F1
        passed[f"lofo.{fam}.held_out_f1"] = None if row["held_out_f1"] is None else row["held_out_f1"] >= LOFO_TARGET_F1
    return {"per_family": per_family, "lofo": lo, "values": values, "targets": targets, "pass": passed,
            "all_pass": all(v is not False for v in passed.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seeds", default=DEFAULT_SEEDS, help="family A seeds, e.g. 9000-9049 or 1,2,5-7 "
                    "(default %(default)s; 'none' to skip)")
    ap.add_argument("--seeds-b", default=DEFAULT_SEEDS_B, help="family B seeds (nape.sim.family_b; "
                    "default %(default)s; 'none' to skip)")
    ap.add_argument("--kind", default="all", choices=("all",) + KINDS,
                    help="family A scenario kind; 'all' takes drive, workday, night, mixed in turn by seed (default)")
    ap.add_argument("--minutes", type=float, default=None, help="scenario length (default: per kind)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--quick", action="store_true", help=f"4 + 4 seeds ({QUICK['seeds']}, {QUICK['seeds_b']}), no LOFO")
    ap.add_argument("--no-lofo", action="store_true", help="skip leave-one-family-out (it analyses each recording "
                    f"{len(LOFO_GRID) + 1} times)")
    ap.add_argument("--firmware", action="store_true",
                    help="family A: record through the MicroPython firmware (SimulatedTransport) instead of the fast path")
    ap.add_argument("--orientation", default="vqf", choices=("vqf", "truth"),
                    help="fast path: orientation sent (vqf.VQF 6D, default; or the true one)")
    ap.add_argument("--sensor", default=None, choices=("icm42688", "mpu6050"),
                    help="family A: force the IMU part (default: drawn per seed, ICM-42688-P 70 %%, MPU-6050 30 %%)")
    ap.add_argument("--road-vibration", type=float, default=1.0, metavar="F",
                    help="factor on the simulated road vibration, both families (default 1; 0 = a smooth road: "
                         "an electric car on a motorway; the vehicle context must then rest on the car's manoeuvres)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of figures and targets")
    ap.add_argument("--details", action="store_true",
                    help="also print a per-recording table (with --json: every match, miss and false positive)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.seeds_b, args.no_lofo = QUICK["seeds"], QUICK["seeds_b"], True
    try:
        seeds = [] if args.seeds == "none" else parse_seeds(args.seeds)
        seeds_b = [] if args.seeds_b == "none" else parse_seeds(args.seeds_b)
    except ValueError as e:
        ap.error(str(e))
    lofo = not args.no_lofo and bool(seeds) and bool(seeds_b)
    t0 = time.perf_counter()
    results = run(seeds, args.kind, args.minutes, args.jobs, args.firmware, args.orientation,
                  progress=not args.json, sensor=args.sensor, seeds_b=seeds_b, lofo=lofo,
                  road=args.road_vibration)
    summ = summary(results, lofo)
    path = "firmware (MicroPython, SimulatedTransport)" if args.firmware else f"fast ({args.orientation} orientation)"
    meta = {"seeds_text": args.seeds, "seeds_b_text": args.seeds_b, "seeds": seeds, "seeds_b": seeds_b,
            "kinds": args.kind, "sensor": args.sensor or "random", "road_vibration": args.road_vibration, "recordings": len(results),
            "path": path, "seconds": time.perf_counter() - t0, "jobs": args.jobs}
    if args.json:
        out = {"bench": "detection", **meta, "values": summ["values"], "targets": summ["targets"],
               "pass": summ["pass"], "all_pass": summ["all_pass"], "lofo": summ["lofo"],
               "per_family": summ["per_family"]}
        if args.details:  # every match, miss and false positive of every recording
            out["per_recording"] = [{k: v for k, v in r.items() if k != "traceback"} for r in results]
        print(json.dumps(out, default=float))
    else:
        for fam, agg in summ["per_family"].items():
            rs = [r for r in results if r["family"] == fam]
            fmeta = meta | {"recordings": len(rs), "breakdown": breakdown(rs),
                            "seeds_text": args.seeds if fam == "a" else args.seeds_b}
            print(f"\n===== family {fam.upper()} " + ("(nape.sim.scenarios)" if fam == "a" else "(nape.sim.family_b)"))
            print_tables(agg, fmeta, rs, args.details)
        if summ["lofo"]:
            print("\n===== leave-one-family-out (tune on the other family over LOFO_GRID, judge on this one)")
            for fam, row in summ["lofo"].items():
                tf = ", ".join(f"{n} {_fmt(v)}" for n, v in row["train_f1"].items())
                ok = row["held_out_f1"] is not None and row["held_out_f1"] >= LOFO_TARGET_F1
                print(f"  held out {fam.upper()}: tuned on {'+'.join(row['tuned_on']).upper()} (F1 {tf}) -> "
                      f"'{row['chosen']}'; held-out F1 {_fmt(row['held_out_f1'])} (target >= {LOFO_TARGET_F1}) "
                      f"{'PASS' if ok else 'FAIL'}")
        print("all targets pass" if summ["all_pass"] else "some targets FAIL")
    return 0 if summ["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
