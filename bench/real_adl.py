"""Jolts and lying on real everyday movements: UMAFall chest-IMU trials (subjects 01–09).

Data: ``<repo root>/../shared/data/umafall`` (override: ``NAPE_SHARED_DATA`` = the folder
holding ``umafall/``); see its README. E. Casilari, J. A. Santoyo-Ramón, J. M. Cano-García,
"UMAFall: A Multisensor Dataset for the Research on Automatic Fall Detection", Procedia
Computer Science 110 (2017) 32–39. When the folder is absent the bench says so and exits 0.

Each trial goes the way a user's import goes: a CSV in the layout of protocol/IMPORT.md,
:func:`nape.importer.import_csv` into a temporary ``.nape`` file, then
:func:`nape.analysis.analyse` with default settings. What the bench does before the CSV,
because the raw trials are not yet in a form the importer takes:

* Separate streams, jittery clock: acc and gyro rows come with their own ~20 Hz timestamps
  (some repeated ~17 ms apart). Repeated timestamps are dropped and both streams are
  linearly interpolated onto one uniform grid at the trial's median acc rate.
* Range artefact: stretches of some trials read 1/4 of the true specific force (a still
  sensor reading 0.25 g, then 1.0 g a moment later, with no motion in the gyro): samples
  whose 1 s median magnitude is below 0.45 g are multiplied by 4; a few trials show the
  opposite (a still chest reading 3.9 g): above 2.5 g they are divided by 4.
* Axes: the chest sensor's axes differ from Nape's (x forward, y left, z up). Up is the mean
  specific force over the stillest second of the first three; forward is the sensor's z
  axis (the board normal, out of the chest: it points up in every lying-down trial, so the
  wearer lay on the back) made perpendicular to up; left = up × forward.

Measures (targets from issue 15): share of ADL trials with any jolt reported (≤ 2 %), any
graded severe (0), lying recognised (any lying seconds) in lying-down trials (≥ 90 %) and in
sitting / bending trials (≤ 5 %); share of everyday time called a vehicle (≤ 1 %: the
car's cue must not come from everyday movement); and for the falls (not targets) what the analysis called
them: causes of the reported jolts (a fall should come out as a knock or fall, not as a
driving manoeuvre).

Usage::

    python -m bench.real_adl [--subjects 01-09] [--jobs 2] [--json] [--details]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from nape.analysis import analyse  # noqa: E402
from nape.importer import import_csv  # noqa: E402

G = 9.80665
SCALE_FIX_BELOW_G = 0.45  # 1 s median |a| below this: a stretch read at 1/4 scale
SCALE_FIX_ABOVE_G = 2.5  # ... above this: a stretch read at 4 × scale (no chest motion holds 2.5 g for 1 s)
SCALE_FACTOR = 4.0
TARGETS = {"adl_jolt_trial_share": 0.02, "adl_severe_trials": 0, "lying_recognised_share": 0.90,
           "lying_false_share": 0.05, "adl_vehicle_time_share": 0.01}
LYING = "LyingDown_OnABed"
NOT_LYING = ("Sitting_GettingUpOnAChair", "Bending")
DRIVING_CAUSES = ("braking", "acceleration", "lateral", "bump", "rear_impact_like")


def data_dir() -> Path:
    """The UMAFall folder: ``$NAPE_SHARED_DATA/umafall`` or ``<repo root>/../shared/data/umafall``."""
    base = os.environ.get("NAPE_SHARED_DATA")
    return (Path(base) if base else ROOT.parent / "shared" / "data") / "umafall"


def load_trials(folder: Path, subjects: set[str] | None = None) -> list[dict]:
    """Trials with their raw acc (g) and gyro (°/s) rows: dicts of index fields plus
    ``acc`` / ``gyr`` arrays (n, 4): time_ms, x, y, z."""
    index = {int(r["trial_idx"]): r for r in csv.DictReader(open(folder / "trials_index.csv", newline=""))}
    rows: dict[tuple[int, str], list] = {}
    with gzip.open(folder / "umafall_chest_s01-09.csv.gz", "rt", newline="") as f:
        rd = csv.reader(f)
        next(rd)
        for tid, t_ms, _no, sensor, x, y, z in rd:
            if sensor in ("acc", "gyro"):
                rows.setdefault((int(tid), sensor), []).append((float(t_ms), float(x), float(y), float(z)))
    out = []
    for tid, r in sorted(index.items()):
        if subjects and r["subject"][-2:] not in subjects:
            continue
        if (tid, "acc") in rows and (tid, "gyro") in rows:
            out.append({**r, "acc": np.array(rows[(tid, "acc")]), "gyr": np.array(rows[(tid, "gyro")])})
    return out


def _dedupe(a: np.ndarray) -> np.ndarray:
    """Rows with strictly increasing time (a repeated or earlier timestamp is dropped)."""
    prev_max = np.concatenate([[-np.inf], np.maximum.accumulate(a[:-1, 0])])
    return a[a[:, 0] > prev_max]


def to_uniform(trial: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(time_s, acc m/s² (n, 3), gyro rad/s (n, 3), rate Hz) on one uniform grid, in Nape's
    trunk axes (module docstring)."""
    acc, gyr = _dedupe(trial["acc"]), _dedupe(trial["gyr"])
    rate = float(np.round(1000.0 / np.median(np.diff(acc[:, 0]))))
    t0, t1 = max(acc[0, 0], gyr[0, 0]), min(acc[-1, 0], gyr[-1, 0])
    t = np.arange(t0, t1, 1000.0 / rate)
    a = np.column_stack([np.interp(t, acc[:, 0], acc[:, k]) for k in (1, 2, 3)])
    w = np.column_stack([np.interp(t, gyr[:, 0], gyr[:, k]) for k in (1, 2, 3)])
    mag = np.linalg.norm(a, axis=1)
    k = max(1, int(rate))
    med = np.array([np.median(mag[max(0, i - k // 2): i + k // 2 + 1]) for i in range(len(mag))])
    a[med < SCALE_FIX_BELOW_G] *= SCALE_FACTOR
    a[med > SCALE_FIX_ABOVE_G] /= SCALE_FACTOR
    # up: the stillest second of the first three
    first = min(len(t), 3 * k)
    starts = range(0, max(1, first - k + 1))
    i0 = min(starts, key=lambda i: float(np.linalg.norm(w[i: i + k], axis=1).std() + np.linalg.norm(a[i: i + k], axis=1).std()))
    up = a[i0: i0 + k].mean(axis=0)
    up /= np.linalg.norm(up)
    # the board normal; a trial whose still start has it near vertical (the tag worn turned)
    # leaves forward unknown: the sensor's -x then (its up axis in every other trial)
    normal = np.array([0.0, 0.0, 1.0]) if abs(up[2]) < 0.8 else np.array([-1.0, 0.0, 0.0])
    fwd = normal - (normal @ up) * up
    fwd /= np.linalg.norm(fwd)
    left = np.cross(up, fwd)
    r = np.stack([fwd, left, up])  # rows: Nape axes in sensor coordinates
    return (t - t[0]) / 1000.0, (a @ r.T) * G, np.radians(w @ r.T), rate


def run_trial(trial: dict) -> dict:
    """Import and analyse one trial; never raises (errors are results)."""
    out = {k: trial[k] for k in ("trial_idx", "trial_id", "subject", "movement_type", "activity")}
    try:
        t, a, w, rate = to_uniform(trial)
        with tempfile.TemporaryDirectory(prefix="nape-adl-") as d:
            path = Path(d) / "trial.csv"
            with open(path, "w", newline="") as f:
                wr = csv.writer(f)
                wr.writerow(["time_s"] + [f"trunk_{c}" for c in ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")])
                for i in range(len(t)):
                    wr.writerow([f"{t[i]:.4f}", *(f"{v:.5f}" for v in a[i]), *(f"{v:.6f}" for v in w[i])])
            rec = Path(d) / "trial.nape"
            import_csv(path, rec, start="2017-04-14T12:00:00Z")
            f = analyse(rec)
        out.update(ok=True, rate_hz=rate, duration_s=f.duration_s,
                   jolts=[{"t_s": j.peak_t_s, "cause": j.cause, "grade": j.grade, "trunk_g": j.peak_trunk_g} for j in f.jolts],
                   lying_s=f.lying_s, calibration=f.calibration.method,
                   vehicle_s=sum(1 for a in f.series.get("activity", []) if a == "vehicle"),
                   seconds=len(f.series.get("activity", [])),
                   trunk_max_deg=max((abs(x) for x in f.series.get("trunk_inclination_deg", [])), default=0.0),
                   lying_kinds=dict(Counter(a for a in f.series.get("activity", []) if a.startswith("lying"))))
    except Exception as e:  # noqa: BLE001 - a crash is a result too
        out.update(ok=False, error=f"{type(e).__name__}: {e}")
    return out


def aggregate(results: list[dict]) -> dict:
    ok = [r for r in results if r["ok"]]
    adl = [r for r in ok if r["movement_type"] == "ADL"]
    falls = [r for r in ok if r["movement_type"] == "Fall"]
    lying = [r for r in ok if r["activity"] == LYING]
    not_lying = [r for r in ok if r["activity"] in NOT_LYING]
    share = lambda rs, f: (sum(1 for r in rs if f(r)) / len(rs)) if rs else None  # noqa: E731
    values = {
        "trials": len(results), "errors": len(results) - len(ok),
        "adl_trials": len(adl),
        "adl_jolt_trial_share": share(adl, lambda r: r["jolts"]),
        "adl_severe_trials": sum(1 for r in adl if any(j["grade"] == "severe" for j in r["jolts"])),
        "adl_jolts": sum(len(r["jolts"]) for r in adl),
        "lying_trials": len(lying),
        "lying_recognised_share": share(lying, lambda r: r["lying_s"] > 0),
        "sit_bend_trials": len(not_lying),
        "lying_false_share": share(not_lying, lambda r: r["lying_s"] > 0),
        "adl_vehicle_time_share": (sum(r["vehicle_s"] for r in adl) / max(1, sum(r["seconds"] for r in adl))) if adl else None,
        "adl_vehicle_trials": sum(1 for r in adl if r["vehicle_s"]),
        "fall_trials": len(falls),
        "fall_driving_cause_share": share(falls, lambda r: any(j["cause"] in DRIVING_CAUSES for j in r["jolts"])),
        "fall_knock_share": share(falls, lambda r: any(j["cause"] == "knock" for j in r["jolts"])),
        "fall_causes": dict(Counter(j["cause"] for r in falls for j in r["jolts"])),
        "adl_causes": dict(Counter(j["cause"] for r in adl for j in r["jolts"])),
        "adl_by_activity": {a: f"{sum(1 for r in adl if r['activity'] == a and r['jolts'])}/"
                               f"{sum(1 for r in adl if r['activity'] == a)}"
                            for a in sorted({r["activity"] for r in adl})},
    }
    passes = {
        "adl_jolt_trial_share": values["adl_jolt_trial_share"] is not None and values["adl_jolt_trial_share"] <= TARGETS["adl_jolt_trial_share"],
        "adl_severe_trials": values["adl_severe_trials"] <= TARGETS["adl_severe_trials"],
        "lying_recognised_share": values["lying_recognised_share"] is not None and values["lying_recognised_share"] >= TARGETS["lying_recognised_share"],
        "lying_false_share": values["lying_false_share"] is not None and values["lying_false_share"] <= TARGETS["lying_false_share"],
        "no_errors": values["errors"] == 0,
        "adl_vehicle_time_share": values["adl_vehicle_time_share"] is not None and values["adl_vehicle_time_share"] <= TARGETS["adl_vehicle_time_share"],
    }
    return {"values": values, "targets": TARGETS, "pass": passes, "all_pass": all(passes.values())}


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def print_table(agg: dict, seconds: float) -> None:
    v, p = agg["values"], agg["pass"]
    print(f"UMAFall chest IMU: {v['trials']} trials ({v['adl_trials']} everyday, {v['fall_trials']} falls), "
          f"{v['errors']} errors, {seconds:.0f} s")
    rows = [
        ("everyday trials with any jolt", _pct(v["adl_jolt_trial_share"]), "<= 2 %", p["adl_jolt_trial_share"]),
        ("everyday trials with a severe jolt", str(v["adl_severe_trials"]), "0", p["adl_severe_trials"]),
        (f"lying recognised ({v['lying_trials']} lying-down trials)", _pct(v["lying_recognised_share"]), ">= 90 %",
         p["lying_recognised_share"]),
        (f"lying in sitting / bending ({v['sit_bend_trials']} trials)", _pct(v["lying_false_share"]), "<= 5 %",
         p["lying_false_share"]),
        (f"everyday time called a vehicle ({v['adl_vehicle_trials']} trials with any)", _pct(v["adl_vehicle_time_share"]),
         "<= 1 %", p["adl_vehicle_time_share"]),
        ("falls with a driving cause", _pct(v["fall_driving_cause_share"]), "(info)", None),
        ("falls reported as a knock", _pct(v["fall_knock_share"]), "(info)", None),
    ]
    w = max(len(r[0]) for r in rows)
    for name, val, target, ok in rows:
        res = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {name:<{w}}  {val:>9}  {target:>8}  {res}")
    print("  everyday trials with jolts, by activity:", ", ".join(f"{a} {n}" for a, n in v["adl_by_activity"].items()))
    print("  causes reported in everyday trials:", v["adl_causes"] or "none")
    print("  causes reported in falls:", v["fall_causes"] or "none")


def _subjects(text: str) -> set[str]:
    out: set[str] = set()
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.update(f"{i:02d}" for i in range(int(a), int(b or a) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--subjects", default="01-09", help="e.g. 01-09 or 1,3 (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object with values, targets, pass")
    ap.add_argument("--details", action="store_true", help="also list every trial with a jolt or a lying mismatch")
    args = ap.parse_args(argv)
    folder = data_dir()
    if not (folder / "trials_index.csv").exists():
        msg = f"skipped: UMAFall data not found at {folder} (set NAPE_SHARED_DATA to the folder holding umafall/)"
        print(json.dumps({"bench": "real_adl", "skipped": msg}) if args.json else msg)
        return 0
    t0 = time.perf_counter()
    trials = load_trials(folder, _subjects(args.subjects))
    if args.jobs > 1:
        with mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(args.jobs) as pool:
            results = pool.map(run_trial, trials, chunksize=4)
    else:
        results = [run_trial(t) for t in trials]
    agg = aggregate(results)
    seconds = time.perf_counter() - t0
    if args.json:
        out = {"bench": "real_adl", "seconds": seconds, **agg}
        if args.details:
            out["per_trial"] = results
        print(json.dumps(out, default=float))
    else:
        print_table(agg, seconds)
        if args.details:
            for r in results:
                bad_lying = (r["activity"] == LYING) == (not r.get("lying_s"))
                if not r["ok"] or r.get("jolts") or (r["activity"] in NOT_LYING + (LYING,) and bad_lying):
                    print(f"  {r['trial_id']}: " + (r.get("error") or
                          f"lying {r['lying_s']:.0f} s {r['lying_kinds']} (trunk up to {r['trunk_max_deg']:.0f}°), calib {r['calibration']}, jolts " +
                          ", ".join(f"{j['t_s']:.1f}s {j['cause']} {j['grade']} {j['trunk_g']:.2f}g" for j in r["jolts"])))
    return 0 if agg["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
