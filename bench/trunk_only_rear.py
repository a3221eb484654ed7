"""Rear impacts graded without a head sensor: how far the trunk-only grade is from the neck's.

With a head IMU a rear impact is graded on NIC (head relative to T1, nape.settings [NIC]);
with the upper-back IMU alone it is graded on the upper back's forward velocity change against
real-world crash-recorder figures (8 / 15 km/h, [DELTAV]). This bench measures how often the
two agree: every rear impact of family-A drives and family-B drives is analysed from the
trunk IMU alone (the head IMU left out of the recording) and its ΔV grade set against the
simulator's NIC label of the same impact. For family A it also compares the estimated ΔV with
the seat's true ΔV (peak · g · width / 2 of the scripted pulse), which the crash-recorder
figures are about.

No target: the figures are what the report's words on the trunk-only grade rest on.

Usage::

    python -m bench.trunk_only_rear [--seeds-a 9000-9023] [--seeds-b 9100-9110] [--jobs 2] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.detection import parse_seeds  # noqa: E402
from nape.analysis import analyse  # noqa: E402
from nape.sim import simulate  # noqa: E402
from nape.sim.family_b import simulate_b  # noqa: E402
from nape.sim.scenarios import scenario  # noqa: E402
from nape.sim.script import RearImpact  # noqa: E402
from nape.sim.to_recording import write_truth_recording  # noqa: E402

G = 9.80665
STEP = {"mild": 0, "moderate": 1, "severe": 2}


def run_seed(job: tuple[str, int]) -> list[dict]:
    fam, seed = job
    true_dv: list[tuple[float, float]] = []
    if fam == "a":
        script, st = scenario(seed, "drive", None)
        sim = simulate(script, seed, st)
        t0 = 0.0
        for seg in sim.script:
            for ev in seg.events:
                if isinstance(ev, RearImpact):
                    true_dv.append((t0 + ev.t_s, ev.peak_g * G * ev.width_s / 2 * 3.6))
            t0 += seg.duration_s
    else:
        sim = simulate_b(seed, "drive_b")
    sim = dataclasses.replace(sim, imus={"trunk": sim.imus["trunk"]})
    with tempfile.TemporaryDirectory(prefix="nape-rear-") as d:
        p = Path(d) / "x.nape"
        write_truth_recording(sim, p)
        f = analyse(p)
    rows = []
    for e in sim.labels.events:
        if e.kind != "rear_impact":
            continue
        js = [j for j in f.jolts if abs(j.peak_t_s - e.t_peak) <= 1.5 and j.cause == "rear_impact_like"]
        j = js[0] if js else None
        tdv = min(true_dv, key=lambda x: abs(x[0] - e.t_start))[1] if true_dv else None
        rows.append({"family": fam, "seed": seed, "nic": e.grade_value, "label": e.severity, "true_dv_kmh": tdv,
                     "dv_kmh": j.delta_v_kmh if j else None, "grade": j.grade if j else None,
                     "basis": j.grade_basis if j else None})
    return rows


def aggregate(rows: list[dict]) -> dict:
    out = {}
    for fam in sorted({r["family"] for r in rows}):
        rs = [r for r in rows if r["family"] == fam]
        found = [r for r in rs if r["grade"]]
        agree = sum(r["grade"] == r["label"] for r in found)
        within = sum(abs(STEP[r["grade"]] - STEP[r["label"]]) <= 1 for r in found)
        higher = sum(STEP[r["grade"]] > STEP[r["label"]] for r in found)
        fig = {"impacts": len(rs), "graded": len(found), "agree": agree, "within_one_step": within,
               "graded_higher": higher, "agree_share": agree / len(found) if found else None,
               "label_nic_range": [min(r["nic"] for r in rs), max(r["nic"] for r in rs)] if rs else None,
               "dv_range_kmh": [min(r["dv_kmh"] for r in found), max(r["dv_kmh"] for r in found)] if found else None}
        withtrue = [r for r in found if r["true_dv_kmh"]]
        if withtrue:
            ratio = np.array([r["dv_kmh"] / r["true_dv_kmh"] for r in withtrue])
            fig["dv_over_true"] = {"median": float(np.median(ratio)), "p10": float(np.percentile(ratio, 10)),
                                   "p90": float(np.percentile(ratio, 90))}
        out[fam] = fig
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seeds-a", default="9000-9011", help="family A drive seeds (default %(default)s)")
    ap.add_argument("--seeds-b", default="9100-9107", help="family B drive seeds (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    try:
        jobs = [("a", s) for s in parse_seeds(args.seeds_a)] + [("b", s) for s in parse_seeds(args.seeds_b)]
    except ValueError as e:
        ap.error(str(e))
    if args.jobs > 1 and len(jobs) > 1:
        with mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(args.jobs) as pool:
            rows = [r for rs in pool.map(run_seed, jobs, chunksize=1) for r in rs]
    else:
        rows = [r for job in jobs for r in run_seed(job)]
    agg = aggregate(rows)
    if args.json:
        print(json.dumps({"bench": "trunk_only_rear", "values": agg, "targets": {}, "pass": {}, "rows": rows},
                         default=float))
        return 0
    print("Rear impacts graded from the upper back alone (ΔV, 8 / 15 km/h) against the simulator's NIC labels")
    for fam, v in agg.items():
        line = (f"  family {fam.upper()}: {v['impacts']} impacts, {v['graded']} graded; same grade {v['agree']}, "
                f"within one step {v['within_one_step']}, graded higher {v['graded_higher']}; label NIC "
                f"{v['label_nic_range'][0]:.1f}–{v['label_nic_range'][1]:.1f} m²/s²")
        if v["dv_range_kmh"]:
            line += f", ΔV read {v['dv_range_kmh'][0]:.1f}–{v['dv_range_kmh'][1]:.1f} km/h"
        print(line)
        if "dv_over_true" in v:
            q = v["dv_over_true"]
            print(f"    ΔV read / seat's true ΔV: median {q['median']:.2f} (p10 {q['p10']:.2f}, p90 {q['p90']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
