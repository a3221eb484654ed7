"""Cohort figures from the Parquet tables, through DuckDB.

:func:`merge_tables` joins every task's part with the manifest (wearer, group, label,
path) into ``OUT/TABLE.parquet``; :func:`cohort_figures` runs the queries of
:data:`QUERIES` on those files and returns ``cohort.json``. The queries read views named
after the tables, so anyone can run them on the same files::

    duckdb -c "CREATE VIEW recordings AS FROM 'OUT/recordings.parquet'; ..."

Definitions (also in the README):

* hours worn: time covered by recorded samples of everyday recordings (``worn_s``); Nape
  cannot tell a device lying on a desk from a very still wearer;
* poor-posture minutes per hour worn: minutes over the neck flexion / upper-back
  inclination threshold while not lying (the report's ``exposure_s``), per hour worn
  (neck: recordings with the head sensor only);
* ISO 11226: long episodes whose verdict is "not acceptable", per hour worn;
* jolts per driving hour: jolts whose minute was spent mostly in a vehicle, per hour in
  a vehicle, by cause and grade; jolts outside vehicles are counted apart;
* outliers: wearers outside Tukey's fences (below Q1 − 1.5 IQR or above Q3 + 1.5 IQR;
  Tukey 1977, Exploratory Data Analysis) of their group, for each figure.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import safe_write
from . import features
from .store import TABLES

COHORT_VERSION = 1
MIN_COVERAGE = 0.95
"""Recordings with fewer than this share of their samples are flagged (Nape default: more
than 5 % lost makes exposure figures noticeably low)."""
TUKEY_K = 1.5
"""Tukey's fences: outliers lie beyond Q1 − k·IQR or Q3 + k·IQR (Tukey 1977)."""

MANIFEST_SCHEMA = pa.schema([("recording_id", pa.string()), ("wearer", pa.string()), ("group", pa.string()),
                             ("label", pa.string()), ("path", pa.string()), ("manifest_line", pa.int64())])

QUERIES = {
    "wearers": """
WITH r AS (SELECT * FROM recordings),
iso AS (SELECT wearer, count(*) FILTER (WHERE kind = 'neck_flexion' AND iso11226_verdict LIKE 'not acceptable%') AS neck_n,
               count(*) FILTER (WHERE kind = 'trunk_inclination' AND iso11226_verdict LIKE 'not acceptable%') AS trunk_n
        FROM episodes GROUP BY wearer)
SELECT r.wearer, any_value(r."group") AS "group",
  count(*) FILTER (WHERE status = 'analysed') AS recordings,
  count(*) FILTER (WHERE status = 'failed') AS failed,
  coalesce(sum(worn_s) FILTER (WHERE kind = 'everyday'), 0) / 3600 AS hours_worn,
  sum(neck_over_threshold_s) FILTER (WHERE has_head) / 60
    / nullif(sum(worn_s) FILTER (WHERE has_head AND kind = 'everyday') / 3600, 0) AS neck_poor_min_per_h,
  sum(trunk_over_threshold_s) / 60 / nullif(sum(worn_s) FILTER (WHERE kind = 'everyday') / 3600, 0) AS trunk_poor_min_per_h,
  coalesce(any_value(iso.neck_n), 0) AS neck_iso11226_not_acceptable,
  coalesce(any_value(iso.trunk_n), 0) AS trunk_iso11226_not_acceptable,
  coalesce(sum(vehicle_s), 0) / 3600 AS driving_h,
  coalesce(sum(lying_s), 0) / 3600 AS lying_h,
  coalesce(sum(bed_neck_s), 0) / 60 AS bed_neck_min,
  sum(samples) / nullif(sum(samples + lost_samples), 0) AS coverage,
  count(*) FILTER (WHERE damaged) AS damaged, count(*) FILTER (WHERE calibration_guessed) AS calibration_guessed
FROM r LEFT JOIN iso USING (wearer)
GROUP BY r.wearer ORDER BY "group", r.wearer""",
    "jolts_while_driving": """
WITH j AS (SELECT j.wearer, j."group", j.cause, j.grade,
                  coalesce(e.activity = 'vehicle', false) AS in_vehicle
           FROM jolts j LEFT JOIN epochs e
             ON e.recording_id = j.recording_id AND e.epoch_start_s = floor(j.peak_t_s / 60) * 60),
d AS (SELECT wearer, sum(vehicle_s) / 3600 AS driving_h FROM recordings GROUP BY wearer)
SELECT j.wearer, j."group", j.cause, j.grade, count(*) FILTER (WHERE in_vehicle) AS jolts_in_vehicle,
       count(*) FILTER (WHERE NOT in_vehicle) AS jolts_elsewhere, any_value(d.driving_h) AS driving_h,
       count(*) FILTER (WHERE in_vehicle) / nullif(any_value(d.driving_h), 0) AS per_driving_h
FROM j JOIN d USING (wearer) GROUP BY ALL ORDER BY j."group", j.wearer, j.cause, j.grade""",
    "groups": """
SELECT "group", count(DISTINCT wearer) AS wearers, count(*) FILTER (WHERE status = 'analysed') AS recordings,
  count(*) FILTER (WHERE status = 'failed') AS failed,
  coalesce(sum(worn_s) FILTER (WHERE kind = 'everyday'), 0) / 3600 AS hours_worn,
  sum(neck_over_threshold_s) FILTER (WHERE has_head) / 60
    / nullif(sum(worn_s) FILTER (WHERE has_head AND kind = 'everyday') / 3600, 0) AS neck_poor_min_per_h,
  sum(trunk_over_threshold_s) / 60 / nullif(sum(worn_s) FILTER (WHERE kind = 'everyday') / 3600, 0) AS trunk_poor_min_per_h,
  coalesce(sum(vehicle_s), 0) / 3600 AS driving_h, sum(jolts) AS jolts
FROM recordings GROUP BY "group" ORDER BY "group\"""",
    "bed": """
SELECT wearer, "group", pattern, count(*) AS episodes, sum(duration_s) / 60 AS minutes
FROM episodes WHERE kind = 'bed_neck' GROUP BY ALL ORDER BY wearer, minutes DESC""",
    "rom_trends": """
WITH t AS (SELECT wearer, direction, direction_label, start_utc, max_deg, typical_low_deg, typical_high_deg,
                  row_number() OVER (PARTITION BY wearer, direction ORDER BY start_utc, recording_id) AS k,
                  count(*) OVER (PARTITION BY wearer, direction) AS n
           FROM rom WHERE max_deg IS NOT NULL)
SELECT wearer, direction, any_value(direction_label) AS direction_label, max(n) AS tests,
       any_value(max_deg) FILTER (WHERE k = 1) AS first_deg, any_value(max_deg) FILTER (WHERE k = n) AS last_deg,
       any_value(max_deg) FILTER (WHERE k = n) - any_value(max_deg) FILTER (WHERE k = 1) AS change_deg,
       min(start_utc) AS first_utc, max(start_utc) AS last_utc,
       any_value(typical_low_deg) AS typical_low_deg, any_value(typical_high_deg) AS typical_high_deg
FROM t GROUP BY wearer, direction ORDER BY wearer, direction""",
    "quality": f"""
SELECT recording_id, wearer, "group", label, path, status, failure_reason, coverage, damaged, calibration_guessed,
       has_head, kind
FROM recordings
WHERE status = 'failed' OR coverage < {MIN_COVERAGE} OR damaged OR calibration_guessed OR NOT has_head
ORDER BY status DESC, wearer, recording_id""",
    "recordings": """
SELECT recording_id, wearer, "group", label, path, status, kind, start_utc, duration_s / 3600 AS hours,
       report_html, report_json, failure_reason FROM recordings ORDER BY wearer, start_utc NULLS LAST, recording_id""",
}
DISTRIBUTIONS = {  # wearer figure → words
    "hours_worn": "hours worn",
    "neck_poor_min_per_h": "neck bent forward: minutes per hour worn",
    "trunk_poor_min_per_h": "upper back leaning forward: minutes per hour worn",
    "jolts_per_driving_h": "jolts per driving hour",
}


def _views(con, out: Path) -> None:
    for t in TABLES:
        path = str(Path(out) / f"{t}.parquet").replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW {t} AS SELECT * FROM read_parquet('{path}')")


def merge_tables(out: Path, manifest: list[dict]) -> dict[str, Path]:
    """Join every table's parts (of the recordings in ``manifest``) with the manifest into
    ``OUT/TABLE.parquet`` (streamed by DuckDB; atomically replaced).

    Raises:
        OSError: the files cannot be written.
    """
    import duckdb

    out = Path(out)
    con = duckdb.connect()
    man = pa.Table.from_pylist(manifest, schema=MANIFEST_SCHEMA)
    con.register("manifest", man)
    paths = {}
    for t in TABLES:
        target = out / f"{t}.parquet"
        safe_write.check_target(target)  # never renamed onto a device, pipe or folder
        tmp = out / f".{t}.parquet.tmp"
        parts = [str(p) for rid in man.column("recording_id").to_pylist()
                 if (p := out / "parts" / t / f"{rid}.parquet").exists()]
        if not parts:
            empty = features.SCHEMAS[t]
            schema = pa.schema(list(MANIFEST_SCHEMA) + [f for f in empty if f.name != "recording_id"])
            pq.write_table(schema.empty_table(), tmp)
        else:
            order = {"recordings": "m.wearer, p.start_utc, p.recording_id", "epochs": "p.recording_id, p.epoch_start_s",
                     "episodes": "p.recording_id, p.start_s", "jolts": "p.recording_id, p.peak_t_s",
                     "rom": "m.wearer, p.start_utc, p.recording_id"}[t]
            tmp_sql = str(tmp).replace("'", "''")
            con.execute(f"""COPY (SELECT m.recording_id, m.wearer, m."group", m.label, m.path, m.manifest_line,
                                         p.* EXCLUDE (recording_id)
                                  FROM read_parquet($files, union_by_name = true) p JOIN manifest m USING (recording_id)
                                  ORDER BY {order}) TO '{tmp_sql}' (FORMAT parquet)""", {"files": parts})
        os.replace(tmp, target)
        paths[t] = target
    con.close()
    return paths


def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [{c: _plain(v) for c, v in zip(cols, row)} for row in cur.fetchall()]


def _plain(v):
    if isinstance(v, float):
        return round(v, 4) if math.isfinite(v) else None
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    if hasattr(v, "item"):
        return _plain(v.item())
    return v


def _distribution(con, metric: str) -> list[dict]:
    """Quartiles, Tukey fences and named outliers of a wearer figure, per group."""
    sql = f"""
WITH w AS (SELECT wearer, "group", {metric} AS v FROM wearers WHERE {metric} IS NOT NULL),
q AS (SELECT "group", count(*) AS n, quantile_cont(v, 0.25) AS q1, median(v) AS median, quantile_cont(v, 0.75) AS q3,
             min(v) AS min, max(v) AS max FROM w GROUP BY "group")
SELECT q.*, q.q1 - {TUKEY_K} * (q.q3 - q.q1) AS low_fence, q.q3 + {TUKEY_K} * (q.q3 - q.q1) AS high_fence,
       list({{'wearer': w.wearer, 'value': w.v}} ORDER BY w.v)
         FILTER (WHERE w.v < q.q1 - {TUKEY_K} * (q.q3 - q.q1) OR w.v > q.q3 + {TUKEY_K} * (q.q3 - q.q1)) AS outliers,
       list({{'wearer': w.wearer, 'value': w.v}} ORDER BY w.v) AS values
FROM q JOIN w USING ("group") GROUP BY ALL ORDER BY q."group" """
    rows = _rows(con, sql)
    for r in rows:
        r["outliers"] = [{"wearer": o["wearer"], "value": _plain(o["value"])} for o in (r["outliers"] or [])]
        r["values"] = [{"wearer": o["wearer"], "value": _plain(o["value"])} for o in (r["values"] or [])]
    return rows


def cohort_figures(out: Path, settings, meta: dict) -> dict:
    """``cohort.json``: every figure of the cohort report, from ``OUT/*.parquet`` via DuckDB."""
    import duckdb

    con = duckdb.connect()
    _views(con, out)
    res = {name: _rows(con, sql) for name, sql in QUERIES.items()}
    jolts = res["jolts_while_driving"]
    for w in res["wearers"]:
        mine = [j for j in jolts if j["wearer"] == w["wearer"]]
        n = sum(j["jolts_in_vehicle"] for j in mine)
        w["jolts_in_vehicle"] = n
        w["jolts_elsewhere"] = sum(j["jolts_elsewhere"] for j in mine)
        w["jolts_per_driving_h"] = round(n / w["driving_h"], 4) if w["driving_h"] else None
    con.register("wearers", pa.Table.from_pylist(res["wearers"]) if res["wearers"] else
                 pa.table({"wearer": pa.array([], pa.string()), "group": pa.array([], pa.string()),
                           **{m: pa.array([], pa.float64()) for m in DISTRIBUTIONS}}))
    dist = {m: _distribution(con, m) for m in DISTRIBUTIONS}
    con.close()
    change = float(getattr(settings, "rom_change_deg", 5.0))
    for t in res["rom_trends"]:
        c = t["change_deg"]
        t["trend"] = ("one test" if t["tests"] < 2 else "freer" if c > change else "stiffer" if c < -change
                      else "steady")
    rec = res["recordings"]
    return {
        "cohort_version": COHORT_VERSION,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "raw_files": meta["source"],
        "pseudonymised": meta["pseudonymised"],
        "privacy": (f"Wearer ids are pseudonyms (keyed hashes; the key stays in {Path(out) / '.nape-cohort'}, never in "
                    f"a report) and file paths are left out. The raw recordings are in {meta['source']}."
                    if meta["pseudonymised"] else
                    f"Wearer ids and file paths as given. The raw recordings are in {meta['source']}."),
        "settings_sha256": meta["settings_sha256"], "versions": meta["versions"],
        "settings": settings.as_dict(), "run": meta["run"],
        "counts": {"recordings": len(rec), "analysed": sum(r["status"] == "analysed" for r in rec),
                   "failed": sum(r["status"] == "failed" for r in rec),
                   "wearers": len({r["wearer"] for r in rec}), "groups": len({r["group"] for r in rec}),
                   "hours_worn": round(sum(w["hours_worn"] or 0 for w in res["wearers"]), 3)},
        "groups": res["groups"], "wearers": res["wearers"], "distributions": dist,
        "jolts_by_cause_grade": jolts, "bed": res["bed"], "rom_trends": res["rom_trends"],
        "quality": res["quality"], "recordings": rec,
        "thresholds": {"min_coverage": MIN_COVERAGE, "tukey_k": TUKEY_K, "rom_change_deg": change,
                       "neck_flexion_deg": settings.neck_flexion_deg,
                       "trunk_inclination_deg": settings.trunk_inclination_deg},
        "tables": {t: f"{t}.parquet" for t in TABLES},
        "queries": {k: " ".join(v.split()) for k, v in QUERIES.items()},
    }


def write_cohort_report(out: Path, cohort: dict) -> dict[str, Path]:
    """Write ``OUT/cohort.json`` and ``OUT/cohort.html``.

    Raises:
        OSError: the files cannot be written.
    """
    import json

    from ..report.cohort import render_cohort_html

    out = Path(out)
    paths = {"json": out / "cohort.json", "html": out / "cohort.html"}
    # the pair replaced together, each through safe_write.check_target (never onto a device or pipe)
    safe_write.write_texts({paths["json"]: json.dumps(cohort, indent=1, allow_nan=False),
                            paths["html"]: render_cohort_html(cohort)})
    return paths
