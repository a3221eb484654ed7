"""Orientation error of the offline-logging fusion rate against the streaming rate.

Offline (no central, ``firmware/power.py`` saver) the board fuses ``SAVER_RATE_HZ``
(50 Hz) boxcar means of its 200 Hz raw samples instead of 100 Hz means of 500 Hz
(``firmware/sampler.py``: the block mean of ``odr / fused_hz`` raw samples). This bench
measures what that costs in orientation on real IMU recordings with an optical reference
(the BROAD trials of ``bench.firmware_accuracy``, ~285.7 Hz):

1. each trial's gyro and accelerometer samples are boxcar-averaged in blocks of D samples
   (as the sampler does): D = 3 gives ~95 Hz (the streaming rate), D = 6 ~48 Hz (the
   offline rate), D = 7 ~41 Hz (a lower rate the fusion still accepts, >= 32 Hz);
2. ``firmware/fusion.py`` runs under the real MicroPython on each (``run_firmware``);
3. per rate: the inclination RMSE (deg) against the optical reference (movement samples),
   and the RMS / 95th-percentile inclination difference from the ~95 Hz run at the same
   instants (each block's last sample time).

Prints a table; ``--json`` one JSON object with ``values``, ``targets`` and ``pass``.
Target: the offline rate's inclination RMSE at most ``TARGET_EXTRA_DEG`` above the
streaming rate's on every trial (the posture thresholds are 20 deg, their hysteresis 5).

Usage: python -m bench.fusion_rate [--data DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.firmware_accuracy import (  # noqa: E402
    DEFAULT_DATA,
    inclination_rmse_deg,
    load_trial,
    run_firmware,
    vertical_in_sensor,
)

DECIMATIONS = (3, 6, 7)  # ~95 Hz (streaming), ~48 Hz (offline), ~41 Hz
STREAM_DEC = 3
OFFLINE_DEC = 6
TARGET_EXTRA_DEG = 1.0


def decimate(trial: dict, d: int) -> dict:
    """Boxcar means of ``d`` samples (gyro, acc); reference and movement at each block's
    last sample."""
    n = len(trial["gyr"]) // d * d
    out = {"rate": trial["rate"] / d}
    for k in ("gyr", "acc"):
        out[k] = trial[k][:n].reshape(-1, d, 3).mean(axis=1)
    idx = np.arange(d - 1, n, d)
    out["quat"] = trial["quat"][idx]
    out["movement"] = trial["movement"][idx]
    out["idx"] = idx
    return out


def _incl_diff_deg(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    a = vertical_in_sensor(np.asarray(qa, dtype=float))
    b = vertical_in_sensor(np.asarray(qb, dtype=float))
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0)))


def measure(data: Path) -> dict:
    trials = sorted(data.glob("*.mat"))
    if not trials:
        raise FileNotFoundError("no BROAD trials (*.mat) in %s" % data)
    res = {}
    for path in trials:
        t = load_trial(path)
        runs = {}
        for d in DECIMATIONS:
            dt = decimate(t, d)
            q = run_firmware(dt)
            runs[d] = (dt, q)
        ref_dt, ref_q = runs[STREAM_DEC]
        row = {}
        for d, (dt, q) in runs.items():
            # the same instants as the streaming run: block ends common to both
            common, ia, ib = np.intersect1d(dt["idx"], ref_dt["idx"], return_indices=True)
            diff = _incl_diff_deg(q[ia], ref_q[ib])
            row["%.0f Hz" % dt["rate"]] = {
                "decimation": d,
                "rate_hz": round(dt["rate"], 1),
                "inclination_rmse_deg": round(inclination_rmse_deg(q, dt), 3),
                "vs_stream_rms_deg": round(float(np.sqrt(np.mean(diff ** 2))), 3),
                "vs_stream_p95_deg": round(float(np.percentile(diff, 95)), 3),
            }
        res[path.stem] = row
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        res = measure(a.data)
    except (FileNotFoundError, OSError) as e:
        print("fusion_rate: %s" % e, file=sys.stderr)
        return 1
    ok = True
    for row in res.values():
        by = {v["decimation"]: v for v in row.values()}
        extra = by[OFFLINE_DEC]["inclination_rmse_deg"] - by[STREAM_DEC]["inclination_rmse_deg"]
        ok = ok and extra <= TARGET_EXTRA_DEG
    out = {"benchmark": "fusion_rate", "values": res,
           "targets": {"offline_extra_inclination_rmse_deg": TARGET_EXTRA_DEG}, "pass": ok}
    if a.json:
        print(json.dumps(out, indent=1))
        return 0 if ok else 1
    print("%-36s %8s %12s %14s %14s" % ("trial", "rate", "RMSE (deg)", "vs ~95 Hz RMS", "vs ~95 Hz p95"))
    for name, row in res.items():
        for v in row.values():
            print("%-36s %6.1f Hz %12.3f %14.3f %14.3f" % (name, v["rate_hz"], v["inclination_rmse_deg"],
                                                         v["vs_stream_rms_deg"], v["vs_stream_p95_deg"]))
    print("target: offline (~48 Hz) RMSE <= streaming (~95 Hz) + %.1f deg on every trial: %s"
          % (TARGET_EXTRA_DEG, "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
