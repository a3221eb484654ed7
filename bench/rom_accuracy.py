"""Accuracy of the neck range-of-motion analysis (nape rom) on randomised simulated wearers.

For every seed the bench draws a wearer's end ranges (uniform: flexion 35–65°, extension
40–80°, side-bending 25–50°, rotation 45–85° per side, each side independently), a sensor
(ICM-42688-P for even seeds, MPU-6050 for odd) and simulates the guided test
(``nape.sim.rom_script.simulate_rom``) with ``--misalignment`` degrees (default 15) of
mounting misalignment on both IMUs. The recording takes the fast path by default
(``write_truth_recording``: ``vqf.VQF`` 6D orientation from the noisy signals);
``--firmware`` runs the MicroPython firmware instead. ``nape.analysis.rom.analyse_rom``
then measures the six held end ranges, with and without the functional-axis correction.

Error = measured − true held end range (the same held-maximum rule applied to the
simulator's true joint angles). Target: every direction of every seed within ±3°
(exit status 1 otherwise).

Usage::

    python -m bench.rom_accuracy [--seeds 9000-9019] [--misalignment 15] [--firmware] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # python bench/rom_accuracy.py
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "host")]

from nape.analysis.rom import DIRECTIONS, analyse_rom  # noqa: E402
from nape.settings import AnalysisSettings  # noqa: E402
from nape.sim import SensorModel, SimSettings  # noqa: E402
from nape.sim.rom_script import simulate_rom  # noqa: E402

TARGET_DEG = 3.0
RANGES = {"flexion": (35, 65), "extension": (40, 80), "lateral_left": (25, 50), "lateral_right": (25, 50),
          "rotation_left": (45, 85), "rotation_right": (45, 85)}


def parse_seeds(text: str) -> list[int]:
    """``"9000-9019"`` or ``"1,2,5-7"`` → sorted unique seeds."""
    out: set[int] = set()
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return sorted(out)


def one(seed: int, misalignment: float, firmware: bool, folder: Path) -> dict:
    rng = np.random.default_rng([seed, 77])
    maxima = {d: float(rng.uniform(*RANGES[d])) for d in DIRECTIONS}
    sensor = SensorModel.icm42688() if seed % 2 == 0 else SensorModel.mpu6050()
    sim, truth = simulate_rom(seed, maxima, SimSettings(mounting_misalignment_deg=misalignment, sensor=sensor))
    path = folder / f"rom{seed}.nape"
    meta = {"rom_protocol": truth["protocol"]}
    if firmware:
        from nape.device_sim import SimulatedTransport
        from nape.recorder import record

        asyncio.run(record(SimulatedTransport(sim), path, metadata=meta, overwrite=True))
    else:
        from nape.sim.to_recording import write_truth_recording

        write_truth_recording(sim, path, metadata=meta, overwrite=True)
    res = {"seed": seed, "sensor": "icm42688" if seed % 2 == 0 else "mpu6050", "truth": truth["held_max_deg"]}
    for key, fa in (("on", 1.0), ("off", 0.0)):
        r = analyse_rom(path, AnalysisSettings(rom_functional_axis=fa))
        res[key] = {d: (v - truth["held_max_deg"][d]) if v is not None else None for d, v in r.max_deg().items()}
        if fa:
            res["functional_axis_deg"] = r.functional_axis_deg
    return res


def summarise(rows: list[dict]) -> dict:
    out = {}
    for key in ("on", "off"):
        per = {}
        for d in DIRECTIONS:
            e = np.array([abs(r[key][d]) if r[key][d] is not None else np.inf for r in rows])
            per[d] = {"mean_abs_deg": float(np.mean(e)), "p95_abs_deg": float(np.percentile(e, 95)),
                      "max_abs_deg": float(np.max(e)), "within_target": float(np.mean(e <= TARGET_DEG))}
        allv = np.array([abs(r[key][d]) if r[key][d] is not None else np.inf for r in rows for d in DIRECTIONS])
        out[key] = {"per_direction": per, "max_abs_deg": float(allv.max()), "mean_abs_deg": float(allv.mean()),
                    "within_target": float(np.mean(allv <= TARGET_DEG))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seeds", default="9000-9019", help="e.g. 9000-9049 or 1,2,5-7 (default %(default)s)")
    ap.add_argument("--misalignment", type=float, default=15.0, help="mounting misalignment, degrees (default 15)")
    ap.add_argument("--firmware", action="store_true", help="record through the MicroPython firmware (slower)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of figures and targets")
    a = ap.parse_args(argv)
    seeds = parse_seeds(a.seeds)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one(s, a.misalignment, a.firmware, Path(tmp)) for s in seeds]
    fig = summarise(rows)
    ok = fig["on"]["max_abs_deg"] <= TARGET_DEG
    if a.json:
        print(json.dumps({"seeds": a.seeds, "misalignment_deg": a.misalignment, "firmware": a.firmware,
                          "target_abs_deg": TARGET_DEG, "met": ok, "figures": fig,
                          "seconds": round(time.monotonic() - t0, 1)}))
        return 0 if ok else 1
    print(f"nape rom accuracy: {len(seeds)} seeds ({a.seeds}), {a.misalignment:g}° misalignment, "
          f"{'firmware' if a.firmware else 'fast path (VQF)'}; |measured − true| held end range, degrees")
    print(f"{'direction':<16}{'mean':>7}{'p95':>7}{'max':>7}{'≤3°':>7}   | functional axis off: {'mean':>5}{'max':>7}")
    for d in DIRECTIONS:
        on, off = fig["on"]["per_direction"][d], fig["off"]["per_direction"][d]
        print(f"{d:<16}{on['mean_abs_deg']:7.2f}{on['p95_abs_deg']:7.2f}{on['max_abs_deg']:7.2f}"
              f"{100 * on['within_target']:6.0f}%   | {off['mean_abs_deg']:26.2f}{off['max_abs_deg']:7.2f}")
    print(f"all: max {fig['on']['max_abs_deg']:.2f}° (target ≤ {TARGET_DEG:g}° {'met' if ok else 'NOT met'}); "
          f"functional axis off: max {fig['off']['max_abs_deg']:.2f}°; {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
