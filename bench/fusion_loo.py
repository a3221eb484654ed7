"""Leave-one-out check of the firmware fusion's tuned defaults (firmware/fusion.py).

Three ``FusionSettings`` defaults were chosen on the BROAD development trials rather than taken
from the VQF paper: ``tau_acc_s``, ``acc_damping`` and ``bias_forgetting_time_s``. This script
shows how much that choice depends on the trials it was made on:

1. it runs the firmware under MicroPython for every setting combination of a small grid on
   every trial in ``--data`` and divides the inclination RMSE (movement samples) by the ``vqf``
   package's real-time 6D filter on the same trial (as ``bench/firmware_accuracy.py``);
2. "all trials": the combination with the smallest worst-case ratio over all trials (the
   selection rule that gave the defaults);
3. leave one out: for each trial, the same rule applied to the other trials only, and the
   ratio that choice reaches on the held-out trial. A held-out ratio above 1 means a trial
   like it would not have been predicted by the others.

Prints a table; ``--json`` prints one JSON object. Takes minutes (grid x trials runs).
Exit status 0 always (this is a report, not a target).

Usage: python -m bench.fusion_loo [--data DIR] [--json] [--tau 3.0,3.1] [--damping 0.6,0.707]
       [--forgetting 100,400]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.firmware_accuracy import (  # noqa: E402
    DEFAULT_DATA,
    inclination_rmse_deg,
    load_trial,
    run_firmware,
    run_vqf,
)



def _firmware_defaults() -> dict:
    """The three tuned FusionSettings defaults, read from firmware/fusion.py itself."""
    from bench.fusion_float32 import firmware_namespace

    st = firmware_namespace(False)["FusionSettings"]()
    return {k: float(getattr(st, k)) for k in ("tau_acc_s", "acc_damping", "bias_forgetting_time_s")}


DEFAULTS = _firmware_defaults()


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _pick(grid: list[dict], ratios: dict, idx: list[int]) -> dict:
    """Combination with the smallest worst-case (then mean) ratio over trials ``idx``."""

    def key(c):
        r = [ratios[_k(c)][i] for i in idx]
        return (max(r), sum(r) / len(r))

    return min(grid, key=key)


def _k(c: dict) -> tuple:
    return (c["tau_acc_s"], c["acc_damping"], c["bias_forgetting_time_s"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of BROAD .mat trials")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--tau", default="2.8,3.0,3.1,3.2,3.5", help="tau_acc_s values, s")
    ap.add_argument("--damping", default="0.5,0.6,0.7071", help="acc_damping values")
    ap.add_argument("--forgetting", default="100,400", help="bias_forgetting_time_s values, s")
    args = ap.parse_args(argv)
    files = sorted(Path(args.data).glob("*.mat"))
    if len(files) < 2:
        print("need at least 2 .mat trials in %s" % args.data, file=sys.stderr)
        return 2
    grid = [
        {"tau_acc_s": t, "acc_damping": z, "bias_forgetting_time_s": f}
        for t, z, f in itertools.product(_floats(args.tau), _floats(args.damping), _floats(args.forgetting))
    ]
    if all(_k(c) != _k(DEFAULTS) for c in grid):
        grid.append(dict(DEFAULTS))
    trials = [load_trial(p) for p in files]
    names = [p.stem for p in files]
    e_vqf = [inclination_rmse_deg(run_vqf(t), t) for t in trials]
    ratios: dict = {}
    try:
        from rich.progress import Progress
    except ImportError:  # pragma: no cover
        Progress = None
    total = len(grid) * len(trials)
    if Progress is not None and not args.json:
        with Progress(transient=True) as prog:
            task = prog.add_task("firmware runs", total=total)
            for c in grid:
                r = []
                for t, ev in zip(trials, e_vqf):
                    r.append(inclination_rmse_deg(run_firmware(t, c), t) / ev)
                    prog.advance(task)
                ratios[_k(c)] = r
    else:
        for c in grid:
            ratios[_k(c)] = [inclination_rmse_deg(run_firmware(t, c), t) / ev for t, ev in zip(trials, e_vqf)]
    n = len(trials)
    best_all = _pick(grid, ratios, list(range(n)))
    loo = []
    for j in range(n):
        c = _pick(grid, ratios, [i for i in range(n) if i != j])
        loo.append(
            {
                "held_out": names[j],
                "chosen_on_others": c,
                "held_out_ratio": round(ratios[_k(c)][j], 4),
                "defaults_ratio": round(ratios[_k(DEFAULTS)][j], 4),
            }
        )
    res = {
        "benchmark": "fusion_loo",
        "metric": "firmware/vqf inclination RMSE ratio on movement samples",
        "defaults": DEFAULTS,
        "grid_size": len(grid),
        "best_on_all_trials": {"settings": best_all, "ratios": [round(v, 4) for v in ratios[_k(best_all)]]},
        "defaults_ratios": [round(v, 4) for v in ratios[_k(DEFAULTS)]],
        "leave_one_out": loo,
        "held_out_worst_ratio": max(r["held_out_ratio"] for r in loo),
        "trials": names,
        "grid": [{"settings": c, "ratios": [round(v, 4) for v in ratios[_k(c)]]} for c in grid],
    }
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    fmt = lambda c: "tau %.2f s, damping %.3f, forgetting %g s" % _k(c)  # noqa: E731
    print("Grid of %d settings x %d trials; ratio = firmware / vqf 6D (inclination RMSE)" % (len(grid), n))
    print("defaults (%s): %s" % (fmt(DEFAULTS), " ".join("%.3f" % v for v in ratios[_k(DEFAULTS)])))
    print("best worst-case on all trials: %s: %s" % (fmt(best_all), " ".join("%.3f" % v for v in ratios[_k(best_all)])))
    print("")
    print("%-36s %-46s %9s %9s" % ("held-out trial", "chosen on the other trials", "held-out", "defaults"))
    for r in loo:
        print("%-36s %-46s %9.3f %9.3f" % (r["held_out"], fmt(r["chosen_on_others"]), r["held_out_ratio"], r["defaults_ratio"]))
    print("")
    print("worst held-out ratio %.3f (above 1.0: that trial is not predicted by the others)" % res["held_out_worst_ratio"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
