"""Detection under sensor perturbations: bench.detection's recordings, re-scored when the sensors lie.

The simulators model the sensor side in one way (nape.sim.sensor: datasheet noise, bias and
scale error, 16-bit ADC, ±16 g; 0–15° mounting; family A at 100 Hz, family B at 200 / 400 Hz
with single-sample glitches). Real recordings differ: a sensor mounted further off, biases at
the top of the datasheet range, noisier parts, a ±8 g range, phones at 50–100 Hz with jittery
timestamps and lost samples. This bench takes the recordings bench.detection builds (same
scenarios, same seeds' physics: ``bench.detection._simulate``), applies each perturbation
below to the *measured* signals of both IMUs, and runs the same pipeline as bench.detection
(orientation re-estimated by ``vqf.VQF`` 6D from the perturbed signals, .nape recording,
``nape.analysis.analyse`` with default settings) and the same scoring
(``bench.detection.score_jolts``, ``score_postures``, ``aggregate``).

Perturbations (each drawn per recording and per IMU from its own seeded generator, so every
row sees the same draw; "±x" means a random sign, magnitude x, on every axis — the top of the
range, not a spread inside it):

=================  ===========================================================================
mount15, mount30   a fixed rotation of the sensor frame by 15° / 30° about a uniformly random
                   axis, per IMU, applied to accelerometer and gyroscope alike (on top of the
                   simulator's own 0–15°)
gyro_bias          +-2 °/s on every gyroscope axis
acc_bias           +-0.05 g on every accelerometer axis
scale              +-3 % scale error on every axis of both sensors
noise3             white noise raised to 3 × the part's datasheet density (ICM-42688-P or
                   MPU-6050, nape.sim.sensor), over the Nyquist band
clip16, clip8      accelerometer clipped to ±16 g / ±8 g
rate100, rate50    what a phone would log: the clean simulated signals low-passed (4th-order
                   Butterworth, causal, at 0.4 × the new rate), read at 100 / 50 Hz with ±2 ms
                   uniform timestamp jitter and 1 % of the samples dropped at random, given
                   the part's errors at that rate (nape.sim.sensor), written as a CSV
                   (protocol/IMPORT.md) and imported with ``nape.importer.import_csv`` (the
                   path a phone recording takes)
glitch             single-sample glitches, 2 a minute per IMU and sensor (none within 2 samples
                   of another): one axis of one sample set to ±4–16 g (accelerometer) or
                   ±500–2000 °/s (gyroscope)
combined           mount15 + gyro_bias + acc_bias + scale + noise3 + clip16 + glitch + rate100
combined_hard      mount30 + gyro_bias + acc_bias + scale + noise3 + clip8 + glitch + rate50
=================  ===========================================================================

Targets (per family; decided before looking at a result): jolt F1 drop from the unperturbed
row <= 0.03 under each single perturbation in the datasheet-realistic range (mount15,
gyro_bias, acc_bias, scale, noise3, clip16, rate100, glitch) and jolt F1 >= 0.90 under
``combined``. The harder rows (mount30, clip8, rate50, combined_hard) and the other figures
(severity exact, head movements flagged as jolts per office hour, drive time recognised as a
vehicle, posture episodes found and false posture minutes) are reported for information,
next to bench.detection's targets where it has one.

Posture (family A only; family B has no posture truth): "found" = scored reference episodes
matched by a detected episode / scored reference episodes; "false min/h" = minutes of
detected episodes overlapping no reference episode at all, per recorded hour.

Usage::

    python -m bench.detection_perturb [--seeds 9000-9003] [--seeds-b 9100-9103] [--minutes M]
                                      [--only mount15,rate100] [--jobs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench import detection as det  # noqa: E402
from nape import quat  # noqa: E402
from nape.analysis import analyse  # noqa: E402
from nape.settings import AnalysisSettings  # noqa: E402
from nape.sim.sensor import G, SensorModel  # noqa: E402

DEFAULT_SEEDS = "9000-9003"  # drive, workday, night, mixed (bench.detection.kind_for)
DEFAULT_SEEDS_B = "9100-9103"  # drive_b, office_b, drive_b, office_b
MAX_F1_DROP = 0.03
COMBINED_MIN_F1 = 0.90

GYRO_BIAS_DPS = 2.0
ACC_BIAS_G = 0.05
SCALE_ERROR = 0.03
NOISE_FACTOR = 3.0
JITTER_S = 0.002
DROP_SHARE = 0.01
GLITCH_PER_MIN = 2.0


@dataclass(frozen=True)
class Perturbation:
    """What one row does to the measured signals (None / 0: leave alone)."""

    mount_deg: float = 0.0
    gyro_bias_dps: float = 0.0
    acc_bias_g: float = 0.0
    scale: float = 0.0
    noise_factor: float = 1.0
    clip_g: float | None = None
    glitches_per_min: float = 0.0
    rate_hz: float | None = None  # resample like a phone (jitter, drops) and import the CSV


ROWS: dict[str, Perturbation] = {
    "none": Perturbation(),
    "mount15": Perturbation(mount_deg=15.0),
    "mount30": Perturbation(mount_deg=30.0),
    "gyro_bias": Perturbation(gyro_bias_dps=GYRO_BIAS_DPS),
    "acc_bias": Perturbation(acc_bias_g=ACC_BIAS_G),
    "scale": Perturbation(scale=SCALE_ERROR),
    "noise3": Perturbation(noise_factor=NOISE_FACTOR),
    "clip16": Perturbation(clip_g=16.0),
    "clip8": Perturbation(clip_g=8.0),
    "rate100": Perturbation(rate_hz=100.0),
    "rate50": Perturbation(rate_hz=50.0),
    "glitch": Perturbation(glitches_per_min=GLITCH_PER_MIN),
    "combined": Perturbation(15.0, GYRO_BIAS_DPS, ACC_BIAS_G, SCALE_ERROR, NOISE_FACTOR, 16.0, GLITCH_PER_MIN, 100.0),
    "combined_hard": Perturbation(30.0, GYRO_BIAS_DPS, ACC_BIAS_G, SCALE_ERROR, NOISE_FACTOR, 8.0, GLITCH_PER_MIN,
                                  50.0),
}
REALISTIC = ("mount15", "gyro_bias", "acc_bias", "scale", "noise3", "clip16", "rate100", "glitch")
SENSORS = {m.name: m for m in (SensorModel.icm42688(), SensorModel.mpu6050())}


# ---------------------------------------------------------------------------- perturbing


def _signs(rng: np.random.Generator) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=3)


def _draws(rng: np.random.Generator) -> dict:
    """Every random choice of one IMU's perturbation, made whatever the row asks, so a row's
    mounting rotation or bias signs are the same ones the combined rows use."""
    axis = rng.normal(size=3)
    return {"axis": axis / np.linalg.norm(axis), "gyr": _signs(rng), "acc": _signs(rng), "scale_a": _signs(rng),
            "scale_g": _signs(rng), "noise": np.random.default_rng(rng.integers(2**63)),
            "glitch": np.random.default_rng(rng.integers(2**63)), "errors": np.random.default_rng(rng.integers(2**63))}


def mount(acc: np.ndarray, gyr: np.ndarray, deg: float, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The signals of a sensor frame turned by ``deg`` about ``axis`` (sensor axes): both sensors
    see the same world in the turned axes, ``v' = R^T v``."""
    acc = np.array(acc, dtype=float)
    gyr = np.array(gyr, dtype=float)
    if deg:
        h = np.radians(deg) / 2
        q = quat.conj(np.concatenate([[np.cos(h)], np.sin(h) * axis]))
        acc = quat.rotate(np.broadcast_to(q, (len(acc), 4)), acc)
        gyr = quat.rotate(np.broadcast_to(q, (len(gyr), 4)), gyr)
    return acc, gyr


def sensor_errors(acc: np.ndarray, gyr: np.ndarray, rate_hz: float, p: Perturbation, sensor: SensorModel,
                  d: dict) -> tuple[np.ndarray, np.ndarray]:
    """Scale error, biases, extra noise, glitches and clipping of ``p`` on one IMU's signals."""
    acc = np.array(acc, dtype=float)
    gyr = np.array(gyr, dtype=float)
    if p.scale:
        acc *= 1.0 + p.scale * d["scale_a"]
        gyr *= 1.0 + p.scale * d["scale_g"]
    if p.gyro_bias_dps:
        gyr += np.radians(p.gyro_bias_dps) * d["gyr"]
    if p.acc_bias_g:
        acc += p.acc_bias_g * G * d["acc"]
    if p.noise_factor > 1.0:
        a_std, g_std = sensor.noise_std(rate_hz)
        extra = np.sqrt(p.noise_factor ** 2 - 1.0)  # on top of the part's own noise: p.noise_factor × in all
        acc += d["noise"].normal(scale=extra * a_std, size=acc.shape)
        gyr += d["noise"].normal(scale=extra * g_std, size=gyr.shape)
    if p.glitches_per_min:  # single-sample: none within 2 samples of another (that would be a burst)
        n, rng = len(acc), d["glitch"]
        k = rng.poisson(2 * p.glitches_per_min * n / rate_hz / 60.0)
        idx = np.sort(rng.integers(1, n - 1, size=k))
        lone = np.ones(k, bool)
        lone[1:] &= np.diff(idx) > 2
        lone[:-1] &= np.diff(idx) > 2
        which = rng.integers(0, 2, size=k)  # accelerometer or gyroscope
        for j, (x, lo, hi) in enumerate(((acc, 4 * G, 16 * G), (gyr, np.radians(500), np.radians(2000)))):
            m = lone & (which == j)
            x[idx[m], rng.integers(0, 3, size=m.sum())] = rng.choice([-1.0, 1.0], size=m.sum()) * rng.uniform(
                lo, hi, size=m.sum())
    if p.clip_g is not None:
        np.clip(acc, -p.clip_g * G, p.clip_g * G, out=acc)
    return acc, gyr


def phone_samples(t: np.ndarray, x: np.ndarray, rate_in: float, rate_out: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """What a phone logging at ``rate_out`` would write: (times s, values (M, C)).

    Low-passed (causal 4th-order Butterworth at 0.4 × rate_out, the sensor's own output
    filter), read at ``k / rate_out + U(-JITTER_S, JITTER_S)``, ``DROP_SHARE`` of the rows
    dropped at random (never the first two).
    """
    from scipy import signal

    if rate_out < rate_in:
        sos = signal.butter(4, 0.4 * rate_out, fs=rate_in, output="sos")
        zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]  # running before the log starts
        x, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    n_out = int(np.floor((t[-1] - t[0]) * rate_out)) - 1
    tk = t[0] + np.arange(n_out) / rate_out + rng.uniform(-JITTER_S, JITTER_S, size=n_out)
    tk = np.clip(tk, t[0], t[-1])
    keep = np.ones(n_out, bool)
    drop = rng.choice(np.arange(2, n_out), size=int(DROP_SHARE * n_out), replace=False)
    keep[drop] = False
    tk = tk[keep]
    cols = [np.interp(tk, t, x[:, c]) for c in range(x.shape[1])]
    return tk, np.column_stack(cols)


def write_phone_recording(tk: np.ndarray, signals: dict[str, tuple[np.ndarray, np.ndarray]], folder: Path,
                          name: str) -> Path:
    """Rows stamped ``tk`` as a phone app would export them (a CSV, protocol/IMPORT.md), imported
    into a .nape recording with :func:`nape.importer.import_csv`."""
    from nape.importer import import_csv

    roles = [r for r in ("trunk", "head") if r in signals]
    v = np.column_stack([np.column_stack(signals[r]) for r in roles])
    names = ["time_s"] + [f"{r}_{k}_{a}" for r in roles for k in ("acc", "gyr") for a in "xyz"]
    csv_path = folder / f"{name}.csv"
    np.savetxt(csv_path, np.column_stack([tk, v]), delimiter=",", header=",".join(names), comments="",
               fmt=["%.6f"] + ["%.6g"] * v.shape[1])
    out = folder / f"{name}.nape"
    import_csv(csv_path, out, start="2026-01-01T00:00:00+00:00", device_name="phone-sim")
    csv_path.unlink()
    return out


@dataclass
class _Perturbed:
    """The few fields nape.sim.to_recording.write_truth_recording reads."""

    rate_hz: float
    imus: dict
    seed: int


@dataclass
class _Imu:
    acc: np.ndarray
    gyr: np.ndarray
    quat_true: np.ndarray


def _recording(sim, sensor: SensorModel, p: Perturbation, seed: int, family: str, folder: Path, name: str) -> Path:
    """The perturbed recording of ``sim``. At the simulator's rate the perturbations go onto the
    measured signals. Resampled (a phone), they start from the *clean* signals: a phone's part
    filters and samples the motion at its own rate, and its noise, bias and glitches arise at
    that rate (a glitch of the simulator's own, low-passed, would be a shock no sensor makes),
    so the part's errors (nape.sim.sensor.apply_sensor_errors, ±16 g) are drawn anew there."""
    from nape.sim.sensor import apply_sensor_errors
    from nape.sim.to_recording import write_truth_recording

    roles = [r for r in ("trunk", "head") if r in sim.imus]
    draws = {r: _draws(np.random.default_rng([seed, ord(family), 0x9E, k])) for k, r in enumerate(roles)}
    signals = {}
    if p.rate_hz is not None:
        t = np.asarray(sim.t)
        tk = None
        for role in roles:
            imu, d = sim.imus[role], draws[role]
            acc, gyr = mount(imu.acc_clean, imu.gyr_clean, p.mount_deg, d["axis"])
            tk, x = phone_samples(t, np.column_stack([acc, gyr]), sim.rate_hz, p.rate_hz,
                                  np.random.default_rng([seed, ord(family), 0x9F]))  # one clock for both IMUs
            acc, gyr = apply_sensor_errors(x[:, :3], x[:, 3:], sensor, p.rate_hz, 16.0, 2000.0, d["errors"])
            signals[role] = sensor_errors(acc, gyr, p.rate_hz, p, sensor, d)
        return write_phone_recording(tk, signals, folder, name)
    for role in roles:
        imu, d = sim.imus[role], draws[role]
        acc, gyr = mount(imu.acc, imu.gyr, p.mount_deg, d["axis"])
        signals[role] = sensor_errors(acc, gyr, sim.rate_hz, p, sensor, d)
    fake = _Perturbed(sim.rate_hz, {r: _Imu(a, g, sim.imus[r].quat_true) for r, (a, g) in signals.items()}, sim.seed)
    path = folder / f"{name}.nape"
    write_truth_recording(fake, path)
    return path


def _false_posture_minutes(sim, episodes: list, s: AnalysisSettings) -> float:
    """Minutes of detected neck / trunk episodes overlapping no reference episode."""
    lying_codes = [k for k, nm in enumerate(sim.truth.activity_names) if nm.startswith("lying")]
    lying = np.isin(sim.truth.activity, lying_codes)
    total = 0.0
    for kind in det.EPISODE_KINDS:
        angle, thr = ((sim.truth.neck_flexion_deg, s.neck_flexion_deg) if kind == "neck_flexion"
                      else (sim.truth.trunk_inclination_deg, s.trunk_inclination_deg))
        refs = det.reference_episodes(sim.t, angle, lying, s, thr)
        for e in episodes:
            if e.kind == kind and not any(min(r[1], e.end_s) > max(r[0], e.start_s) for r in refs):
                total += (e.end_s - e.start_s) / 60.0
    return total


def run_seed(job: tuple) -> list[dict]:
    """Every row of :data:`ROWS` (``rows``) for one seed; never raises (errors are results)."""
    seed, family, kind, minutes, rows = job
    out = []
    try:
        sim, labels, vehicle, office, mis, sensor_name = det._simulate(seed, family, kind, minutes, None)
    except Exception as e:
        return [{"row": r, "seed": seed, "family": family, "kind": kind, "ok": False,
                 "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()} for r in rows]
    sensor = SENSORS.get(sensor_name, SensorModel.icm42688())
    s = AnalysisSettings()
    context_at = det.script_context(sim) if family == "a" else (lambda t: f"family B {kind}")
    for row in rows:
        t0 = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="nape-perturb-") as d:
                path = _recording(sim, sensor, ROWS[row], seed, family, Path(d), f"s{seed}")
                f = analyse(path, s)
            jolts = det.score_jolts(labels, f.jolts, context_at)
            out.append({
                "row": row, "seed": seed, "family": family, "kind": kind, "ok": True,
                "hours": len(sim.t) / sim.rate_hz / 3600.0, "rate_hz": sim.rate_hz, "misalignment_deg": mis,
                "sensor": sensor_name, "jolts": jolts,
                "context": det._context_figures(f, vehicle, office, sim.rate_hz, jolts["false_positives"]),
                "postures": det.score_postures(sim, f.episodes, s) if family == "a" else det._no_postures(),
                "false_posture_min": _false_posture_minutes(sim, f.episodes, s) if family == "a" else 0.0,
                "seconds": time.perf_counter() - t0,
            })
        except Exception as e:  # a crash under a perturbation is a finding: report it
            out.append({"row": row, "seed": seed, "family": family, "kind": kind, "ok": False,
                        "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
    return out


# ---------------------------------------------------------------------------- figures


def row_figures(results: list[dict]) -> dict:
    """bench.detection's aggregate plus posture found / false minutes for one (family, row)."""
    agg = det.aggregate(results)
    ok = [r for r in results if r["ok"]]
    refs = sum(agg["postures"][k]["references"] for k in det.EPISODE_KINDS)
    matched = sum(agg["postures"][k]["matched"] for k in det.EPISODE_KINDS)
    hours = sum(r["hours"] for r in ok)
    o = agg["jolts"]["overall"]
    v = agg["values"]
    return {
        "recordings": len(results), "failed": len(results) - len(ok),
        "errors": sorted({r["error"] for r in results if not r["ok"]}),
        "tp": o["tp"], "fn": o["fn"], "fp": o["fp"],
        "jolt_f1": v["jolt_f1"], "severity_exact": v["severity_exact"],
        "office_false_jolts_per_h": v["office_false_jolts_per_h"],
        "vehicle_context_share": v["vehicle_context_share"],
        "office_vehicle_share": v["office_vehicle_share"],
        "posture_found": matched / refs if refs else None,
        "posture_false_min_per_h": (sum(r["false_posture_min"] for r in ok) / hours) if hours and refs else None,
        "false_positive_reasons": agg["jolts"]["false_positive_reasons"],
        "missed_reasons": agg["jolts"]["missed_reasons"],
    }


def summarise(results: list[dict], rows: list[str]) -> dict:
    fams = sorted({r["family"] for r in results})
    table = {fam: {row: row_figures([r for r in results if r["family"] == fam and r["row"] == row])
                   for row in rows} for fam in fams}
    values, targets, passed = {}, {}, {}
    for fam in fams:
        base = table[fam].get("none", {}).get("jolt_f1")
        for row in rows:
            fig = table[fam][row]
            for k in ("jolt_f1", "severity_exact", "office_false_jolts_per_h", "vehicle_context_share",
                      "posture_found", "posture_false_min_per_h"):
                values[f"{fam}.{row}.{k}"] = fig[k]
            f1 = fig["jolt_f1"]
            if row in REALISTIC and base is not None:
                key = f"{fam}.{row}.jolt_f1_drop"
                values[key] = None if f1 is None else base - f1
                targets[key] = MAX_F1_DROP
                passed[key] = None if f1 is None else (base - f1 <= MAX_F1_DROP and not fig["failed"])
            if row == "combined":
                key = f"{fam}.combined.jolt_f1"
                targets[key] = COMBINED_MIN_F1
                passed[key] = None if f1 is None else (f1 >= COMBINED_MIN_F1 and not fig["failed"])
    return {"table": table, "values": values, "targets": targets, "pass": passed,
            "all_pass": all(v is not False for v in passed.values()) and any(v is True for v in passed.values())}


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f} %" if pct else f"{v:.2f}"


def print_tables(summ: dict, meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console() if sys.stdout.isatty() else Console(width=160)
    con.print(f"[bold]Detection under sensor perturbations[/bold] — family A seeds {meta['seeds_text']}, "
              f"family B seeds {meta['seeds_b_text']}, {meta['seconds']:.0f} s wall on {meta['jobs']} processes")
    tgt = det.TARGETS
    for fam, rows in summ["table"].items():
        t = Table(title=f"family {fam.upper()} (realistic rows: F1 drop ≤ {MAX_F1_DROP}; combined: F1 ≥ "
                        f"{COMBINED_MIN_F1}; other columns for information, bench.detection's targets in the header)")
        for c in ("row", "TP", "FN", "FP", "jolt F1", "F1 drop", "result",
                  f"severity exact (≥ {tgt['severity_exact']:.0%})",
                  f"head moves as jolts / office h (≤ {tgt['office_false_jolts_per_h']:g})",
                  f"drive as vehicle (≥ {tgt['vehicle_context_share']:.0%})", "posture found", "false posture min/h"):
            t.add_column(c, justify="left" if c == "row" else "right")
        base = rows.get("none", {}).get("jolt_f1")
        for row, fig in rows.items():
            key = f"{fam}.{row}.jolt_f1_drop" if row in REALISTIC else f"{fam}.{row}.jolt_f1"
            ok = summ["pass"].get(key)
            res = "[green]PASS[/green]" if ok else ("[red]FAIL[/red]" if ok is False else "info")
            drop = None if base is None or fig["jolt_f1"] is None else base - fig["jolt_f1"]
            name = row + (" *" if row in REALISTIC else "") + (f" [red]({fig['failed']} failed)[/red]" if fig["failed"] else "")
            t.add_row(name, str(fig["tp"]), str(fig["fn"]), str(fig["fp"]), _fmt(fig["jolt_f1"]),
                      _fmt(drop) if row != "none" else "", res if row != "none" else "",
                      _fmt(fig["severity_exact"], True), _fmt(fig["office_false_jolts_per_h"]),
                      _fmt(fig["vehicle_context_share"], True), _fmt(fig["posture_found"], True),
                      _fmt(fig["posture_false_min_per_h"]))
        con.print(t)
        con.print("* datasheet-realistic single perturbation")
        for row, fig in rows.items():
            for e in fig["errors"]:
                con.print(f"[red]{row}: {e}[/red]")
    print("all targets pass" if summ["all_pass"] else "some targets FAIL")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seeds", default=DEFAULT_SEEDS, help="family A seeds (default %(default)s; 'none' to skip)")
    ap.add_argument("--seeds-b", default=DEFAULT_SEEDS_B, help="family B seeds (default %(default)s; 'none' to skip)")
    ap.add_argument("--minutes", type=float, default=None, help="scenario length (default: per kind)")
    ap.add_argument("--only", default=None, help=f"comma-separated rows (default: all: {', '.join(ROWS)}); "
                    "'none' (the unperturbed row) is always run")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of figures and targets")
    ap.add_argument("--details", action="store_true", help="with --json: every recording's matches and misses")
    args = ap.parse_args(argv)
    try:
        seeds = [] if args.seeds == "none" else det.parse_seeds(args.seeds)
        seeds_b = [] if args.seeds_b == "none" else det.parse_seeds(args.seeds_b)
    except ValueError as e:
        ap.error(str(e))
    rows = list(ROWS)
    if args.only:
        asked = [r.strip() for r in args.only.split(",") if r.strip()]
        bad = [r for r in asked if r not in ROWS]
        if bad:
            ap.error(f"unknown row(s) {', '.join(bad)}; rows: {', '.join(ROWS)}")
        rows = ["none"] + [r for r in asked if r != "none"]
    if args.minutes is not None and not args.minutes > 0:
        ap.error("--minutes must be > 0")
    jobs = [(s, "a", det.kind_for(s, "all"), args.minutes, rows) for s in seeds]
    jobs += [(s, "b", ("drive_b", "office_b")[s % 2], args.minutes, rows) for s in seeds_b]
    if not jobs:
        ap.error("no seeds")
    t0 = time.perf_counter()
    results: list[dict] = []
    if args.jobs <= 1 or len(jobs) == 1:
        it, pool = map(run_seed, jobs), None
    else:
        pool = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(min(args.jobs, len(jobs)))
        it = pool.imap_unordered(run_seed, jobs, chunksize=1)
    try:
        for k, rs in enumerate(it, 1):
            results += rs
            if not args.json:
                print(f"[{k}/{len(jobs)}] family {rs[0]['family']} seed {rs[0]['seed']} {rs[0]['kind']}: "
                      f"{sum(r['ok'] for r in rs)}/{len(rs)} rows ok", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    summ = summarise(results, rows)
    meta = {"seeds_text": args.seeds, "seeds_b_text": args.seeds_b, "seeds": seeds, "seeds_b": seeds_b,
            "rows": rows, "realistic_rows": list(REALISTIC), "seconds": time.perf_counter() - t0, "jobs": args.jobs}
    if args.json:
        out = {"bench": "detection_perturb", **meta, "values": summ["values"], "targets": summ["targets"],
               "pass": summ["pass"], "all_pass": summ["all_pass"], "table": summ["table"]}
        if args.details:
            out["per_recording"] = [{k: v for k, v in r.items() if k != "traceback"} for r in results]
        print(json.dumps(out, default=float))
    else:
        print_tables(summ, meta)
    return 0 if summ["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
