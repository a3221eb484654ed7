"""End-to-end speed and memory of the analysis on an 8-hour, two-IMU, 100 Hz recording.

1. Builds (once; cached in ``<tmp>/nape-bench-throughput-v1`` or ``--cache``) a recording of
   ``--hours`` hours: four different 15-minute simulated scenarios (drive, workday, night
   and mixed, from different seeds) make one unique hour; every hour of the recording plays
   the four in a rotated order. Each 15-minute chunk is encoded once with
   ``nape.wire.encode_samples`` (orientation from ``vqf.VQF`` 6D, as the fast simulation
   path does) and the repeats only get new sequence numbers and device times, so the file
   is a valid continuous stream. The quantised acc/gyr of the whole recording are cached
   beside it for the VQF timing.
2. Runs ``nape.analysis.analyse`` on it in a fresh child process and reports the wall time
   of the call and the child's peak RSS (``VmHWM`` of its own address space, which includes
   the interpreter and numpy/scipy, also reported alone as the peak before the call).
3. Times, in another child, the ``vqf`` package's offline filter (``vqf.offlineVQF``, 6D)
   alone on the same samples of both IMUs — a floor for any analysis that re-fuses the raw
   signals — and reports the ratio.

Targets: analysis <= 10 s, peak RSS <= 1 GiB, analysis <= 3 x the offlineVQF time. Prints a
table, or one JSON object with ``--json``. Exit status 1 when a target fails.

Usage: python -m bench.analysis_throughput [--hours 8] [--repeat 1] [--cache DIR] [--rebuild] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from nape import wire  # noqa: E402

RATE_HZ = 100.0
CHUNK_MINUTES = 15.0
CHUNKS = (("drive", 7100), ("workday", 7101), ("night", 7102), ("mixed", 7103))
CACHE_VERSION = "v1"
TARGETS = {"analysis_s": 10.0, "peak_rss_bytes": float(1 << 30), "ratio_to_vqf": 3.0}
_HDR = struct.Struct("<BBBBIIH")  # SAMPLES header (protocol/SPEC.md)


def default_cache() -> Path:
    return Path(tempfile.gettempdir()) / f"nape-bench-throughput-{CACHE_VERSION}"


def _chunk(kind: str, seed: int) -> dict:
    """One simulated chunk, quantised as the wire does, with its VQF orientation and packets."""
    from nape.sim import simulate
    from nape.sim.scenarios import scenario
    from nape.sim.to_recording import samples_per_packet, vqf_orientation

    script, settings = scenario(seed, kind, CHUNK_MINUTES, rate_hz=RATE_HZ)
    sim = simulate(script, seed, settings)
    per = samples_per_packet(2)
    n = (len(sim.t) // per) * per
    roles = ("trunk", "head")
    acc = np.stack([sim.imus[r].acc[:n] for r in roles], axis=1)
    gyr = np.stack([sim.imus[r].gyr[:n] for r in roles], axis=1)
    acc = np.round(acc / wire.ACC_LSB_MS2) * wire.ACC_LSB_MS2  # the values the file will hold
    gyr = np.round(gyr / wire.GYR_LSB_RADS) * wire.GYR_LSB_RADS
    q = np.stack([vqf_orientation(acc[:, k], gyr[:, k], RATE_HZ) for k in range(2)], axis=1)
    period = int(round(1e6 / RATE_HZ))
    flags = np.zeros(per, np.uint8)
    packets = [wire.encode_samples(3, i, (i * period) // 1000, period, flags, q[i:i + per], acc[i:i + per],
                                   gyr[i:i + per]) for i in range(0, n, per)]
    return {"acc": acc.astype(np.float32), "gyr": gyr.astype(np.float32), "packets": packets, "n": n}


def build(cache: Path, hours: float, log=print) -> tuple[Path, Path]:
    """Create (or reuse) the recording and the sample arrays; returns their paths."""
    from nape.recording import RecordingWriter

    cache.mkdir(parents=True, exist_ok=True)
    tag = f"{hours:g}h_{RATE_HZ:g}hz"
    rec_path, arr_path = cache / f"recording_{tag}.nape", cache / f"samples_{tag}.npz"
    if rec_path.exists() and arr_path.exists():
        return rec_path, arr_path
    t0 = time.perf_counter()
    chunks = []
    for kind, seed in CHUNKS:
        log(f"simulating {CHUNK_MINUTES:g} min {kind} (seed {seed}) ...")
        chunks.append(_chunk(kind, seed))
    per = len(chunks[0]["acc"]) // len(chunks[0]["packets"])
    n_target = int(round(hours * 3600 * RATE_HZ)) // per * per
    order: list[tuple[int, int]] = []  # (chunk, samples used: whole chunks, the last one cut)
    total, h = 0, 0
    while total < n_target:
        for k in range(len(chunks)):
            c = (h + k) % len(chunks)
            if total >= n_target:
                break
            use = min(chunks[c]["n"], n_target - total)
            order.append((c, use))
            total += use
        h += 1
    log(f"writing {total / RATE_HZ / 3600:.2f} h ({total} samples, {len(order)} chunks) to {rec_path} ...")
    period = int(round(1e6 / RATE_HZ))
    meta = {"device_name": "Nape-sim-fast", "firmware_version": "host-encoder", "wire_format_version": wire.VERSION,
            "imu_roles": ["trunk", "head"], "sample_rate_hz": RATE_HZ, "source": "simulated",
            "orientation_source": "vqf.VQF 6D real-time", "bench": "analysis_throughput"}
    tmp = rec_path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    base = 0
    with RecordingWriter(tmp, meta, fsync_interval_s=3600.0) as w:
        for c, use in order:
            batch = []
            for pkt in chunks[c]["packets"][: use // per]:
                h0 = _HDR.unpack_from(pkt)
                seq = base + h0[4]
                b = bytearray(pkt)
                _HDR.pack_into(b, 0, h0[0], h0[1], h0[2], h0[3], seq & 0xFFFFFFFF,
                               ((seq * period) // 1000) & 0xFFFFFFFF, h0[6])
                batch.append(bytes(b))
                if len(batch) >= 2000:
                    w.write_packets(batch, 1.7e9 + seq / RATE_HZ)
                    batch = []
            if batch:
                w.write_packets(batch, 1.7e9 + (base + use) / RATE_HZ)
            base += use
    np.savez(arr_path.with_suffix(".partial.npz"),
             acc=np.concatenate([chunks[c]["acc"][:use] for c, use in order]),
             gyr=np.concatenate([chunks[c]["gyr"][:use] for c, use in order]))
    os.replace(arr_path.with_suffix(".partial.npz"), arr_path)
    os.replace(tmp, rec_path)
    log(f"built in {time.perf_counter() - t0:.0f} s")
    return rec_path, arr_path


# Peak RSS: VmHWM of this process's own address space (ru_maxrss would also carry the parent's
# high-water mark across fork + exec on Linux); ru_maxrss where /proc is missing.
_HWM = r"""
def hwm_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

_ANALYSIS_CHILD = _HWM + r"""
import json, sys, time
from nape.analysis import analyse
rss1 = hwm_kib()
t = time.perf_counter()
f = analyse(sys.argv[1])
dt = time.perf_counter() - t
rss2 = hwm_kib()
print(json.dumps({"seconds": dt, "rss_before_kib": rss1, "peak_rss_kib": rss2, "samples": f.samples,
                  "duration_s": f.duration_s, "jolts": len(f.jolts), "episodes": len(f.episodes)}))
"""

_VQF_CHILD = _HWM + r"""
import json, sys, time
import numpy as np
from vqf import offlineVQF
d = np.load(sys.argv[1])
rate = float(sys.argv[2])
acc = d["acc"]; gyr = d["gyr"]
total = 0.0
for k in range(acc.shape[1]):
    a = np.ascontiguousarray(acc[:, k], dtype=np.float64)
    g = np.ascontiguousarray(gyr[:, k], dtype=np.float64)
    t = time.perf_counter()
    offlineVQF(g, a, None, 1.0 / rate)
    total += time.perf_counter() - t
print(json.dumps({"seconds": total, "samples": int(acc.shape[0]), "imus": int(acc.shape[1]),
                  "peak_rss_kib": hwm_kib()}))
"""


def _child(code: str, *args: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "host"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:] or ''}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(rec_path: Path, arr_path: Path, repeat: int = 1) -> dict:
    """Run the analysis and the offline VQF ``repeat`` times each in fresh children; best times."""
    runs = [_child(_ANALYSIS_CHILD, str(rec_path)) for _ in range(repeat)]
    vqfs = [_child(_VQF_CHILD, str(arr_path), str(RATE_HZ)) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    vbest = min(v["seconds"] for v in vqfs)
    peak = max(r["peak_rss_kib"] for r in runs) * 1024  # Linux: KiB
    values = {
        "analysis_s": best["seconds"],
        "peak_rss_bytes": float(peak),
        "ratio_to_vqf": best["seconds"] / vbest if vbest > 0 else None,
    }
    passed = {k: (values[k] is not None and values[k] <= TARGETS[k]) for k in TARGETS}
    return {
        "recording": str(rec_path), "file_bytes": rec_path.stat().st_size,
        "hours": best["duration_s"] / 3600.0, "samples": best["samples"], "imus": 2, "rate_hz": RATE_HZ,
        "analysis_runs_s": [r["seconds"] for r in runs],
        "analysis_rss_before_call_bytes": best["rss_before_kib"] * 1024,
        "analysis_result": {"jolts": best["jolts"], "episodes": best["episodes"]},
        "offline_vqf_runs_s": [v["seconds"] for v in vqfs],
        "offline_vqf_s": vbest,
        "values": values, "targets": dict(TARGETS), "pass": passed, "all_pass": all(passed.values()),
    }


def print_table(m: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console() if sys.stdout.isatty() else Console(width=120)
    con.print(f"[bold]Analysis throughput[/bold] — {m['hours']:.2f} h, {m['imus']} IMUs at {m['rate_hz']:g} Hz, "
              f"{m['samples']} samples, file {m['file_bytes'] / 2**20:.0f} MiB ({m['recording']})")
    t = Table(title="Targets")
    for c in ("measure", "value", "target", "result"):
        t.add_column(c)
    v, p = m["values"], m["pass"]

    def res(ok):
        return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"

    t.add_row("analyse() wall time", f"{v['analysis_s']:.2f} s", "≤ 10 s", res(p["analysis_s"]))
    t.add_row("peak RSS of the analysing process", f"{v['peak_rss_bytes'] / 2**20:.0f} MiB "
              f"({m['analysis_rss_before_call_bytes'] / 2**20:.0f} MiB before the call)", "≤ 1024 MiB",
              res(p["peak_rss_bytes"]))
    t.add_row("vqf.offlineVQF alone (both IMUs)", f"{m['offline_vqf_s']:.2f} s", "", "")
    t.add_row("analysis / offlineVQF", f"{v['ratio_to_vqf']:.2f} ×" if v["ratio_to_vqf"] else "—", "≤ 3 ×",
              res(p["ratio_to_vqf"]))
    con.print(t)
    con.print(f"runs: analysis {', '.join(f'{x:.2f}' for x in m['analysis_runs_s'])} s; offlineVQF "
              f"{', '.join(f'{x:.2f}' for x in m['offline_vqf_runs_s'])} s; analysis found "
              f"{m['analysis_result']['jolts']} jolts, {m['analysis_result']['episodes']} episodes")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--hours", type=float, default=8.0, help="recording length (default 8)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the best counts")
    ap.add_argument("--cache", type=Path, default=None, help=f"cache folder (default {default_cache()})")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached recording")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if not args.hours > 0 or args.repeat < 1:
        ap.error("--hours must be > 0 and --repeat >= 1")
    cache = args.cache or default_cache()
    if args.rebuild:
        for p in cache.glob(f"*_{args.hours:g}h_*"):
            p.unlink()
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    rec, arr = build(cache, args.hours, log)
    m = measure(rec, arr, args.repeat)
    if args.json:
        print(json.dumps({"bench": "analysis_throughput", **m}))
    else:
        print_table(m)
    return 0 if m["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
