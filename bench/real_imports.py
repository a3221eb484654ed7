"""Real phone-like logs imported as they come: UMAFall chest IMU trials (jittery ~20 Hz, acc and gyro
as separate rows with their own clocks, g and °/s) through ``nape import`` (long layout, no
``--rate``) and ``nape analyse``.

Per trial: the trial's rows are written as a long-layout CSV (``timestamp_ms, sensor, x, y, z``),
imported with ``--columns timestamp_ms=time_ms --acc-unit g --gyr-unit dps`` and analysed with
every warning an error. Figures: trials imported and analysed without error, trials refused
with a one-line reason (a dozen trials' accelerometers read 0.25–0.45 g at rest: a scale error
in those files, which the unit check refuses), the resampling
jitter (mean / max over trials), gyroscope-unit and Earth-frame warnings (a correct import
should get none), masked glitches. Targets: no trial crashes (imported or refused with its
reason), every imported trial analyses, no unit warning.

The data stay outside the repository (``<root>/../shared/data/umafall``, or ``NAPE_UMAFALL``);
without them the bench says so and exits 0 with ``"skipped"``.

Usage::

    python -m bench.real_imports [--trials 40] [--json]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "host") not in sys.path:
    sys.path[:0] = [str(ROOT / "host"), str(ROOT)]

from nape.analysis import analyse  # noqa: E402
from nape.importer import CsvImportError, import_csv  # noqa: E402

DATA = Path(os.environ.get("NAPE_UMAFALL") or ROOT.parent / "shared" / "data" / "umafall")


def trials(limit: int | None) -> dict[str, list[list[str]]]:
    """Rows per trial index (the first ``limit`` trials)."""
    out: dict[str, list[list[str]]] = defaultdict(list)
    with gzip.open(DATA / "umafall_chest_s01-09.csv.gz", "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            if limit is not None and row[0] not in out and len(out) >= limit:
                continue
            out[row[0]].append(row)
    return out


def one(rows: list[list[str]], folder: Path) -> dict:
    src = folder / "trial.csv"
    src.write_text("trial_idx,timestamp_ms,sample_no,sensor,x,y,z\n" + "".join(",".join(r) + "\n" for r in rows))
    rec = folder / "trial.nape"
    r = {"imported": False, "analysed": False}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = import_csv(src, rec, columns="timestamp_ms=time_ms", acc_unit="g", gyr_unit="dps", overwrite=True)
            r |= {"imported": True, "rate_hz": res.rate_hz, "timing": res.timing}
            f = analyse(rec)
            r |= {"analysed": True, "warnings": f.input_warnings, "glitches": f.glitches.get("samples", 0),
                  "valid_s": f.valid_s}
    except CsvImportError as e:  # a refusal with its one-line reason (e.g. data that is not 1 g at rest)
        r["refused"] = str(e)[:200]
    except Exception as e:  # the bench counts failures: any other exception is one
        r["error"] = f"{type(e).__name__}: {e}"[:200]
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=None, help="first N trials (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (DATA / "umafall_chest_s01-09.csv.gz").exists():
        print(json.dumps({"skipped": f"no data at {DATA}"}) if args.json else f"skipped: no data at {DATA}")
        return 0
    t0 = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="nape-real-imports-") as d:
        for rows in trials(args.trials).values():
            results.append(one(rows, Path(d)))
    n = len(results)
    imported = sum(r["imported"] for r in results)
    analysed = sum(r["analysed"] for r in results)
    unit = sum(any("gyroscope values" in w for w in r.get("warnings", [])) for r in results)
    earth = sum(any("Earth" in w for w in r.get("warnings", [])) for r in results)
    jit = [r["timing"]["mean_abs_jitter_ms"] for r in results if r.get("timing")]
    jmax = [r["timing"]["max_abs_jitter_ms"] for r in results if r.get("timing")]
    refused = sum("refused" in r for r in results)
    crashed = sum("error" in r for r in results)
    values = {"trials": n, "imported": imported, "analysed": analysed, "refused_with_reason": refused,
              "crashed": crashed, "resampled": len(jit),
              "mean_abs_jitter_ms": round(sum(jit) / len(jit), 2) if jit else None,
              "max_abs_jitter_ms": max(jmax) if jmax else None, "unit_warnings": unit, "earth_frame_warnings": earth,
              "glitch_samples": sum(r.get("glitches", 0) for r in results), "seconds": round(time.monotonic() - t0, 1)}
    targets = {"crashed": 0, "analysed": f"= imported ({imported})", "unit_warnings": 0}
    ok = crashed == 0 and analysed == imported and unit == 0
    errors = [r["error"] for r in results if "error" in r][:5]
    errors += sorted({r["refused"].split(": ", 1)[-1][:60] for r in results if "refused" in r})[:3]
    if args.json:
        print(json.dumps({"values": values, "targets": targets, "pass": ok, "errors": errors}))
    else:
        print(f"UMAFall chest trials imported as they come (long layout, no --rate): {n} trials")
        for k, v in values.items():
            print(f"  {k:24s} {v}")
        for e in errors:
            print(f"  error: {e}")
        print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
