"""Mixed-rate recordings: the analysis of the board's offline day log against the full rate.

The same simulated wearer (``nape.sim`` scenarios, ICM-42688-P) is written twice: once as a
full-rate stream (``write_truth_recording``) and once with a stretch as the board's day log
(``nape.sim.day_log``: LOG at 10 Hz of the board-like orientation, EVENT windows of the jolts
from the board's trigger, MARKS). Both are analysed and compared:

* posture: the episodes that lie inside the LOG span (each full-rate episode found with its
  duration; a LOG episode no full-rate one explains is allowed only while walking, which the
  day log cannot tell and the full-rate analysis leaves out of posture episodes) and, for
  every held posture of the simulator's labels in the span, the mean trunk inclination and
  neck flexion of the two analyses;
* jolts: the labelled vehicle events in the span found (peak within 1.5 s), their cause and
  grade right, by the stream analysis and by the EVENT windows alone;
* the board's inclination against the host's re-fusion where both exist;
* a 16-hour all-LOG day: analysis time and its episodes.

Prints a table; ``--json`` one JSON object with ``values``, ``targets`` and ``pass``.
Usage: python -m bench.mixed_rate [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "host"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

CASES = (("mixed", 3, 40.0, (0.2, 0.8)), ("workday", 2, 30.0, (0.2, 0.8)), ("drive", 1, 12.0, (0.05, 0.95)))
CAUSE = {"pothole": "bump", "rear_impact": "rear_impact_like"}
TARGETS = {"episodes_match": True,  # every full-rate episode found; an extra one only while walking
           "episode_duration_max_diff_pct": 5.0, "trunk_max_diff_deg": 1.5, "neck_flexion_max_diff_deg": 1.5,
           "jolts_found_min_vs_full": -1, "jolts_right_share_min": 0.8, "day16h_analyse_s_max": 60.0}


def _case(kind: str, seed: int, minutes: float, span: tuple[float, float], d: Path) -> dict:
    from nape.analysis import analyse
    from nape.sim import simulate
    from nape.sim.day_log import write_day_log_recording
    from nape.sim.scenarios import scenario
    from nape.sim.to_recording import write_truth_recording

    script, st = scenario(seed, kind, minutes=minutes, sensor="icm42688")
    sim = simulate(script, seed, st)
    a, b = span[0] * sim.t[-1], span[1] * sim.t[-1]
    write_truth_recording(sim, d / f"{kind}-full.nape", overwrite=True)
    info = write_day_log_recording(sim, d / f"{kind}-log.nape", [(a, b)], overwrite=True)
    full, log = analyse(d / f"{kind}-full.nape"), analyse(d / f"{kind}-log.nape")
    inside = lambda f: [e for e in f.episodes if e.start_s >= a and e.end_s <= b]  # noqa: E731
    ef, el = inside(full), inside(log)
    # each full-rate episode: the LOG episode of its kind that overlaps it most
    match = [max((y for y in el if y.kind == x.kind and min(x.end_s, y.end_s) > max(x.start_s, y.start_s)),
                 key=lambda y: min(x.end_s, y.end_s) - max(x.start_s, y.start_s), default=None) for x in ef]
    dur = [abs(y.duration_s / x.duration_s - 1) * 100 if y is not None else float("inf") for x, y in zip(ef, match)]
    # a LOG episode no full-rate one explains: allowed only while walking (the day log cannot tell walking,
    # the full-rate analysis leaves postures held while walking out)
    act = np.array(full.series["activity"])
    sec = np.array(full.series["time_s"])
    extra = [y for y in el if all(y is not m for m in match)]
    walking = [float(np.mean(act[(sec >= y.start_s) & (sec < y.end_s)] == "walking")) for y in extra]
    same = all(m is not None for m in match) and all(w >= 0.5 for w in walking)
    tf, tl = np.array(full.series["time_s"]), np.array(log.series["time_s"])
    diffs: dict[str, list[float]] = {"trunk_inclination_deg": [], "neck_flexion_deg": []}
    for p in sim.labels.postures:
        if p.t_start < a + 5 or p.t_end > b or p.t_end - p.t_start < 30:
            continue
        for k, v in diffs.items():
            sf, sl = (tf >= p.t_start + 5) & (tf < p.t_end - 5), (tl >= p.t_start + 5) & (tl < p.t_end - 5)
            v.append(float(np.mean(np.array(log.series[k])[sl]) - np.mean(np.array(full.series[k])[sf])))
    labels = [e for e in sim.labels.events if e.kind != "head_turn" and a <= e.t_peak < b]

    def jolts(f):
        m = [(e, next((j for j in f.jolts if abs(j.peak_t_s - e.t_peak) <= 1.5), None)) for e in labels]
        found = [(e, j) for e, j in m if j is not None]
        return {"found": len(found), "right": sum(j.cause == CAUSE.get(e.kind, e.kind) and j.grade == e.severity
                                                  for e, j in found)}

    jf, jl = jolts(full), jolts(log)
    return {"log_span_s": round(b - a, 1), "episodes_full": len(ef), "episodes_log": len(el), "episodes_match": same,
            "extra_log_episodes_walking_share": [round(w, 2) for w in walking],
            "episode_duration_max_diff_pct": round(max(dur, default=0.0), 2),
            "held_postures": len(diffs["trunk_inclination_deg"]),
            "trunk_max_diff_deg": round(max(map(abs, diffs["trunk_inclination_deg"]), default=0.0), 2),
            "neck_flexion_max_diff_deg": round(max(map(abs, diffs["neck_flexion_deg"]), default=0.0), 2),
            "jolt_labels": len(labels), "event_windows": len(info["windows"]),
            "jolts_found_full": jf["found"], "jolts_right_full": jf["right"],
            "jolts_found_log": jl["found"], "jolts_right_log": jl["right"],
            "board_vs_host_median_deg": log.rates.get("board_orientation_check", {}).get("median_abs_deg")}


def _day16(d: Path) -> dict:
    from nape import wire_log
    from nape.analysis import analyse
    from nape.recording import RecordingWriter
    from tests.recording_factory import pitch_quat

    n = 16 * 3600 * 10
    t = np.arange(n) / 10
    rng = np.random.default_rng(0)
    head = np.where((t % 1800) > 1200, 30.0, 0.0) + rng.normal(0, 1, n)  # 10 min of every 30 bent 30°
    q = np.stack([pitch_quat(rng.normal(0, 1, n)), pitch_quat(head)], axis=1)
    meta = {"imu_roles": ["trunk", "head"], "sample_rate_hz": 100.0, "source": "simulated", "wire_format_version": 1}
    packets = [wire_log.encode_log_packet(3, i, i * 100, 100, q[i:i + 38]) for i in range(0, n, 38)]
    with RecordingWriter(d / "day16.nape", meta, fsync_interval_s=0, overwrite=True) as w:
        for k in range(0, len(packets), 200):
            w.write_packets(packets[k:k + 200], 1.7e9 + k)
    t0 = time.perf_counter()
    f = analyse(d / "day16.nape")
    eps = [e for e in f.episodes if e.kind == "neck_flexion"]
    return {"analyse_s": round(time.perf_counter() - t0, 2), "file_mb": round((d / "day16.nape").stat().st_size / 1e6, 2),
            "episodes": len(eps), "episodes_expected": 32,
            "duration_max_err_s": round(max(abs(e.duration_s - 600) for e in eps), 2) if eps else None}


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        values = {f"{k}-{s}": _case(k, s, m, sp, d) for k, s, m, sp in CASES}
        values["day16h"] = _day16(d)
    cases = [v for k, v in values.items() if k != "day16h"]
    ok = {
        "episodes_match": all(v["episodes_match"] for v in cases),
        "episode_duration_max_diff_pct": all(v["episode_duration_max_diff_pct"] <= TARGETS["episode_duration_max_diff_pct"]
                                             for v in cases),
        "trunk_max_diff_deg": all(v["trunk_max_diff_deg"] <= TARGETS["trunk_max_diff_deg"] for v in cases),
        "neck_flexion_max_diff_deg": all(v["neck_flexion_max_diff_deg"] <= TARGETS["neck_flexion_max_diff_deg"]
                                         for v in cases),
        "jolts_found_min_vs_full": all(v["jolts_found_log"] - v["jolts_found_full"] >= TARGETS["jolts_found_min_vs_full"]
                                       for v in cases),
        "jolts_right_share_min": all(v["jolts_right_log"] >= TARGETS["jolts_right_share_min"] * v["jolts_found_log"]
                                     for v in cases),
        "day16h": values["day16h"]["analyse_s"] <= TARGETS["day16h_analyse_s_max"]
        and values["day16h"]["episodes"] == values["day16h"]["episodes_expected"],
    }
    return {"values": values, "targets": TARGETS, "checks": ok, "pass": all(ok.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = run()
    if args.json:
        print(json.dumps(out, indent=1))
        return 0 if out["pass"] else 1
    cols = ("episodes_full", "episodes_log", "extra_log_episodes_walking_share", "episode_duration_max_diff_pct", "held_postures", "trunk_max_diff_deg",
            "neck_flexion_max_diff_deg", "jolt_labels", "jolts_found_full", "jolts_right_full", "jolts_found_log",
            "jolts_right_log", "board_vs_host_median_deg")
    print("case: the LOG span of the day against the full-rate analysis of the same wearer")
    for name, v in out["values"].items():
        if name == "day16h":
            continue
        print(f"{name} (LOG {v['log_span_s'] / 60:.0f} min of the day)")
        for c in cols:
            print(f"  {c:<34} {v[c]}")
    d = out["values"]["day16h"]
    print(f"16 h all-LOG day: analysed in {d['analyse_s']} s ({d['file_mb']} MB), {d['episodes']} of "
          f"{d['episodes_expected']} episodes, durations within {d['duration_max_err_s']} s")
    print("checks: " + ", ".join(f"{k} {'ok' if v else 'FAIL'}" for k, v in out["checks"].items()))
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
