"""Feature tables of one analysed recording, under the JSON report's field names and units.

Tables (one Parquet part per recording; :mod:`nape.cohort.engine` merges them):

* ``recordings``: one row per recording — what the JSON report says in its top level
  (``duration_s``, ``samples``, ``lost_samples``, ``lying_s``, ``exposure_s``'s
  ``neck_over_threshold_s`` / ``trunk_over_threshold_s``, ``activity_s``'s keys as
  ``upright_s``, ``walking_s``, ``vehicle_s``, ...), counts of episodes, ISO 11226
  verdicts and jolts, and the data-quality facts (``coverage``, ``damaged``,
  ``calibration_guessed``). A recording that could not be analysed has a row too, with
  ``status = 'failed'`` and its ``failure_reason``.
* ``epochs``: one row per minute (``EPOCH_S``) of an everyday recording, from the report's
  1 Hz series (``series``): seconds with data, lying, over each posture threshold, mean
  angles while not lying, seconds per activity, jolts by grade.
* ``episodes`` / ``jolts``: the report's ``episodes`` / ``jolts`` lists, one row each.
* ``rom``: one row per direction of a range-of-motion test (``protocol/rom.schema.json``).

Every row carries ``recording_id``; wearer, group and label are joined in at the merge,
so a part holds nothing about who wore the device.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from ..analysis.context import NAMES as ACTIVITY_NAMES
from ..analysis.findings import episode_record, jolt_record

EPOCH_S = 60  # epoch length, s (GGIR and the UK Biobank pipeline summarise per minute or finer)
GRADES = ("mild", "moderate", "severe")
ACTIVITY_COLUMNS = tuple(f"{a}_s" for a in ACTIVITY_NAMES)

F, I, S, B, T = pa.float64(), pa.int64(), pa.string(), pa.bool_(), pa.timestamp("ms", tz="UTC")

RECORDING_SCHEMA = pa.schema([
    ("recording_id", S), ("status", S), ("failure_reason", S), ("kind", S), ("content_sha256", S),
    ("report_html", S), ("report_json", S), ("start_utc", T), ("duration_s", F), ("worn_s", F),
    ("samples", I), ("lost_samples", I), ("coverage", F), ("malformed_packets", I), ("file_issues", I),
    ("closed_cleanly", B), ("damaged", B), ("calibration_method", S), ("calibration_guessed", B), ("has_head", B),
    ("lying_s", F), *((c, F) for c in ACTIVITY_COLUMNS),
    ("neck_over_threshold_s", F), ("trunk_over_threshold_s", F),
    ("neck_episodes", I), ("neck_episodes_s", F), ("trunk_episodes", I), ("trunk_episodes_s", F),
    ("neck_iso11226_not_acceptable", I), ("trunk_iso11226_not_acceptable", I),
    ("bed_neck_episodes", I), ("bed_neck_s", F), ("jolts", I), ("head_turns", I),
    ("longest_upright_s", F), ("time_to_first_episode_s", F), ("gaps", I), ("analysis_s", F),
])
EPOCH_SCHEMA = pa.schema([
    ("recording_id", S), ("epoch_start_s", F), ("epoch_start_utc", T), ("seconds_with_data", I), ("lying_s", I),
    ("neck_over_threshold_s", I), ("trunk_over_threshold_s", I), ("mean_neck_flexion_deg", F),
    ("mean_trunk_inclination_deg", F), *((c, I) for c in ACTIVITY_COLUMNS),
    ("activity", S), ("jolts", I), *((f"jolts_{g}", I) for g in GRADES),
])
EPISODE_SCHEMA = pa.schema([
    ("recording_id", S), ("kind", S), ("start_s", F), ("end_s", F), ("duration_s", F), ("mean_deg", F),
    ("peak_deg", F), ("pattern", S), ("iso11226_verdict", S), ("mean_trunk_inclination_deg", F),
    ("mean_neck_lateral_deg", F),
])
JOLT_SCHEMA = pa.schema([
    ("recording_id", S), ("peak_t_s", F), ("start_s", F), ("end_s", F), ("cause", S), ("grade", S),
    ("peak_trunk_g", F), ("peak_head_g", F), ("peak_head_dps", F), ("peak_vehicle_g", F), ("peak_vertical_g", F),
    ("peak_head_rel_g", F), ("peak_neck_dps", F), ("nic_m2s2", F), ("bric", F), ("source", S),
])
ROM_SCHEMA = pa.schema([
    ("recording_id", S), ("start_utc", T), ("direction", S), ("direction_label", S), ("max_deg", F), ("typical_low_deg", F),
    ("typical_high_deg", F), ("verdict", S),
])
SCHEMAS = {"recordings": RECORDING_SCHEMA, "epochs": EPOCH_SCHEMA, "episodes": EPISODE_SCHEMA,
           "jolts": JOLT_SCHEMA, "rom": ROM_SCHEMA}


def start_utc(metadata: dict) -> datetime | None:
    """The recording's start (header ``created``, ISO 8601) in UTC, or None."""
    created = metadata.get("created") if isinstance(metadata, dict) else None
    if not isinstance(created, str):
        return None
    try:
        dt = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _num(v):
    """Plain float, None for missing / NaN / infinite."""
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def table(name: str, rows: list[dict]) -> pa.Table:
    """Rows (dicts; missing keys are null) as a table of the fixed schema ``name``."""
    schema = SCHEMAS[name]
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def failed_row(rid: str, reason: str, content_sha256: str | None = None) -> dict:
    """The ``recordings`` row of a recording that could not be analysed."""
    return {"recording_id": rid, "status": "failed", "failure_reason": reason, "content_sha256": content_sha256}


def recording_row(f, rid: str, content_sha256: str, reports: dict[str, str], analysis_s: float) -> dict:
    """The ``recordings`` row of one everyday recording (``f``: :class:`nape.analysis.Findings`)."""
    rate = float(f.metadata.get("sample_rate_hz") or 0) if isinstance(f.metadata, dict) else 0.0
    rate = rate or (f.samples / f.duration_s if f.duration_s > 0 else 0.0)
    eps = f.episodes
    method = str(f.calibration.method or "unknown")

    def kind(k):
        return [e for e in eps if e.kind == k]

    def not_ok(k):
        return sum(1 for e in kind(k) if (e.iso11226_verdict or "").startswith("not acceptable"))

    row = {
        "recording_id": rid, "status": "analysed", "kind": "everyday", "content_sha256": content_sha256,
        "report_html": reports.get("html"), "report_json": reports.get("json"), "start_utc": start_utc(f.metadata),
        "duration_s": _num(f.duration_s), "worn_s": f.samples / rate if rate else None,
        "samples": int(f.samples), "lost_samples": int(f.lost_samples),
        "coverage": f.samples / (f.samples + f.lost_samples) if f.samples + f.lost_samples else None,
        "malformed_packets": int(f.malformed_packets), "file_issues": len(f.file_issues),
        "damaged": bool(f.file_issues) or f.malformed_packets > 0, "calibration_method": method,
        "calibration_guessed": method in ("guess", "none"), "has_head": "head" in f.roles,
        "lying_s": _num(f.lying_s),
        "neck_over_threshold_s": _num(f.exposure_s.neck_over_threshold_s),
        "trunk_over_threshold_s": _num(f.exposure_s.trunk_over_threshold_s),
        "neck_episodes": len(kind("neck_flexion")), "neck_episodes_s": sum(e.duration_s for e in kind("neck_flexion")),
        "trunk_episodes": len(kind("trunk_inclination")),
        "trunk_episodes_s": sum(e.duration_s for e in kind("trunk_inclination")),
        "neck_iso11226_not_acceptable": not_ok("neck_flexion"),
        "trunk_iso11226_not_acceptable": not_ok("trunk_inclination"),
        "bed_neck_episodes": len(kind("bed_neck")), "bed_neck_s": sum(e.duration_s for e in kind("bed_neck")),
        "jolts": len(f.jolts), "head_turns": int(f.head_turns), "longest_upright_s": _num(f.longest_upright_s),
        "time_to_first_episode_s": _num(f.time_to_first_episode_s), "gaps": len(f.gaps),
        "analysis_s": analysis_s,
    }
    for a in ACTIVITY_NAMES:
        row[f"{a}_s"] = _num(f.activity_s.get(a, 0.0))
    return row


def epoch_rows(f, rid: str) -> list[dict]:
    """One row per ``EPOCH_S`` of the recording's 1 Hz series (epochs without data are left out)."""
    s = f.series
    t = np.asarray(s.get("time_s", []), float)
    if t.size == 0:
        return []
    ep = np.floor(t / EPOCH_S).astype(np.int64)
    lying = np.asarray(s.get("lying", [False] * t.size), bool)
    trunk = np.asarray(s["trunk_inclination_deg"], float)
    neck = np.asarray(s["neck_flexion_deg"], float) if "neck_flexion_deg" in s else None
    act = np.asarray(s.get("activity", ["none"] * t.size), dtype=object)
    thr_neck, thr_trunk = f.settings["neck_flexion_deg"], f.settings["trunk_inclination_deg"]
    start = start_utc(f.metadata)
    jolt_ep = {}
    for j in f.jolts:
        jolt_ep.setdefault(int(j.peak_t_s // EPOCH_S), []).append(j.grade)
    rows = []
    for e in np.unique(ep):
        sel = ep == e
        up = sel & ~lying
        grades = jolt_ep.get(int(e), [])
        names, counts = np.unique(act[sel].astype(str), return_counts=True)
        row = {"recording_id": rid, "epoch_start_s": float(e * EPOCH_S),
               "epoch_start_utc": start + timedelta(seconds=float(e * EPOCH_S)) if start else None,
               "seconds_with_data": int(sel.sum()), "lying_s": int((sel & lying).sum()),
               "trunk_over_threshold_s": int((up & (trunk > thr_trunk)).sum()),
               "mean_trunk_inclination_deg": float(trunk[up].mean()) if up.any() else None,
               "activity": str(names[np.argmax(counts)]), "jolts": len(grades)}
        if neck is not None:
            row["neck_over_threshold_s"] = int((up & (neck > thr_neck)).sum())
            row["mean_neck_flexion_deg"] = float(neck[up].mean()) if up.any() else None
        for a in ACTIVITY_NAMES:
            row[f"{a}_s"] = int((sel & (act == a)).sum())
        for g in GRADES:
            row[f"jolts_{g}"] = grades.count(g)
        rows.append(row)
    return rows


def episode_rows(f, rid: str) -> list[dict]:
    return [{"recording_id": rid, **{k: _val(v) for k, v in episode_record(e).items()}} for e in f.episodes]


def jolt_rows(f, rid: str) -> list[dict]:
    return [{"recording_id": rid, **{k: _val(v) for k, v in jolt_record(j).items()}} for j in f.jolts]


def _val(v):
    if isinstance(v, (list, tuple)):  # names (a jolt's range_reached): one text
        return "+".join(map(str, v))
    return v if isinstance(v, (str, bool)) or v is None else _num(v)


def rom_rows(r, rid: str) -> list[dict]:
    """One row per direction of a range-of-motion test (``r``: :class:`nape.analysis.rom.RomResult`)."""
    start = start_utc(r.metadata)
    return [{"recording_id": rid, "start_utc": start, "direction": d.direction, "direction_label": d.label,
             "max_deg": _num(d.max_deg), "typical_low_deg": d.typical_low_deg, "typical_high_deg": d.typical_high_deg,
             "verdict": d.verdict} for d in r.directions]


def rom_recording_row(r, rid: str, content_sha256: str, reports: dict[str, str], analysis_s: float) -> dict:
    """The ``recordings`` row of a range-of-motion test."""
    total = r.samples + r.lost_samples
    method = str(r.calibration.method or "unknown")
    rate = float(r.metadata.get("sample_rate_hz") or 0) if isinstance(r.metadata, dict) else 0.0
    return {"recording_id": rid, "status": "analysed", "kind": "rom", "content_sha256": content_sha256,
            "report_html": reports.get("html"), "report_json": reports.get("json"), "start_utc": start_utc(r.metadata),
            "duration_s": _num(r.duration_s), "worn_s": r.samples / rate if rate else None, "samples": int(r.samples),
            "lost_samples": int(r.lost_samples), "coverage": r.samples / total if total else None,
            "calibration_method": method, "calibration_guessed": method in ("guess", "none"), "has_head": True,
            "analysis_s": analysis_s}
