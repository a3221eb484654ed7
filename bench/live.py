"""Live view (nape.live): sample-to-screen latency, update rate and angle accuracy.

A simulated wearer puts the sensor on (stands still, then hunches over a keyboard, looks
down at a phone, turns the head) — ``nape.sim`` — and the virtual Nape (the firmware under
MicroPython on a bumble radio, real time) streams it over BLE to the same code
``nape record --live`` runs: recorder → LiveFeed → LiveServer (127.0.0.1, token) → the
page in headless Chromium. The page logs every sample it draws (sequence number, wall
clock ms, neck and upper-back angle).

- sample-to-screen latency: when the page drew a sample minus when the board sampled it
  (the virtual board's start time + sequence number × 10 ms; same machine, same clock);
  it includes the board's 20 ms send period, BLE, the recorder, the socket and the page's
  play-out (a packet's samples are drawn spread over its span);
- update rate: samples drawn per second (the screen changes at this rate);
- angle error: drawn neck flexion and upper-back inclination minus the simulator's true
  angles for the same sample, once the neutral posture was captured.

Targets: update rate ≥ 20 Hz, p95 latency < 200 ms, p95 angle error ≤ 2°.

Usage::

    python -m bench.live [--seconds 40] [--json]
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

if __package__ in (None, ""):  # python bench/live.py
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "host")]

TARGETS = {"update_rate_hz": [">=", 20.0], "latency_p95_ms": ["<", 200.0], "angle_error_p95_deg": ["<=", 2.0]}


def fitting_script():
    """Putting the sensor on: still and upright, then typical postures (nape.sim segments)."""
    from nape.sim import Posture, Segment

    return [
        Segment("put on, stand still", 9.0, "standing", Posture(), "upright", transition_s=0.0, sway=0.3),
        Segment("keyboard", 10.0, "sitting", Posture(trunk_pitch_deg=22, neck_flexion_deg=27, hip_height_m=0.5),
                "keyboard_hunch", transition_s=3.0, sway=0.4),
        Segment("phone", 10.0, "sitting", Posture(trunk_pitch_deg=5, neck_flexion_deg=40, hip_height_m=0.5),
                None, transition_s=3.0, sway=0.4),
        Segment("look left", 8.0, "sitting", Posture(neck_axial_deg=50, hip_height_m=0.5), None, transition_s=2.0, sway=0.3),
        Segment("upright again", 60.0, "sitting", Posture(trunk_pitch_deg=2, neck_flexion_deg=5, hip_height_m=0.5),
                "upright", transition_s=3.0, sway=0.4),
    ]


async def run_session(seconds: float, browser=None, workdir: Path | None = None, seed: int = 0,
                      watch=None) -> dict:
    """Stream ``seconds`` of the fitting script through the virtual Nape into the live view.

    ``browser``: a bench._chromium.Chromium that loads the page (None: no page);
    ``watch(server, feed)``: an async callback run while recording (e.g. tests' checks).
    Returns the simulation, the virtual board's start time and the page's log.
    """
    from nape.ble import BleTransport, VirtualDevice, nsim_blob
    from nape.live import LiveFeed, LiveServer
    from nape.recorder import record
    from nape.sim import SimSettings, simulate

    sim = simulate(fitting_script(), seed=seed, settings=SimSettings())
    n = min(len(sim.t), int(seconds * sim.rate_hz))
    workdir = workdir or Path(tempfile.mkdtemp(prefix="nape-live-"))
    async with VirtualDevice(nsim_blob(sim, n=n), speed=1.0) as vd:
        feed = LiveFeed()
        # secure by default: the owner's host bonds in the board's power-on window
        tr = BleTransport(bumble=dict(vd.bumble_args, keystore=str(workdir / "keys.json")), pair=True)
        feed.link = tr.stats
        async with LiveServer(feed, title="Nape live · bench") as srv:
            if browser is not None:
                await asyncio.to_thread(browser.load, srv.url)
            extra = asyncio.get_running_loop().create_task(watch(srv, feed)) if watch else None
            path = workdir / "live.nape"
            path.unlink(missing_ok=True)
            stats = await record(tr, path, on_packet=feed.on_packet, on_progress=feed.on_progress)
            await asyncio.sleep(0.5)  # let the page draw the last packet
            if extra is not None:
                await extra
            page = "{}"
            if browser is not None:
                page = await asyncio.to_thread(browser.js, "JSON.stringify(window.napeLive)")
                await asyncio.to_thread(browser.load, "about:blank")  # leave before the server goes
    return {"sim": sim, "start_unix_ms": vd.info["start_unix_ms"], "page": json.loads(page), "stats": stats,
            "feed": feed, "samples": n}


def measure(run: dict) -> dict:
    """Latency, update rate and angle errors from a session's page log."""
    sim, start = run["sim"], run["start_unix_ms"]
    painted = np.array([p for p in run["page"].get("painted", []) if p[0] is not None], float)
    if len(painted) < 10:
        raise SystemExit("the page drew fewer than 10 samples: is the page loading?")
    seq, wall = painted[:, 0].astype(int), painted[:, 1]
    lat = wall - (start + seq * 1000.0 / sim.rate_hz)
    span_s = (wall[-1] - wall[0]) / 1000.0
    ok = seq < len(sim.t)
    # angles: after the neutral was captured (the first 9 s are still and upright)
    settled = ok & (seq >= int(9.0 * sim.rate_hz))
    neck_err = np.abs(painted[settled, 2] - sim.truth.neck_flexion_deg[seq[settled]])
    trunk_err = np.abs(painted[settled, 3] - sim.truth.trunk_inclination_deg[seq[settled]])
    err = np.concatenate([neck_err, trunk_err]) if len(neck_err) else np.array([np.nan])
    return {"samples_drawn": int(len(painted)), "update_rate_hz": float((len(painted) - 1) / span_s),
            "latency_median_ms": float(np.median(lat)), "latency_p95_ms": float(np.percentile(lat, 95)),
            "latency_max_ms": float(lat.max()),
            "angle_error_median_deg": float(np.median(err)), "angle_error_p95_deg": float(np.percentile(err, 95)),
            "neck_error_p95_deg": float(np.percentile(neck_err, 95)) if len(neck_err) else None,
            "trunk_error_p95_deg": float(np.percentile(trunk_err, 95)) if len(trunk_err) else None,
            "lost_samples": run["stats"].lost_samples, "socket_frames": run["page"].get("frames", 0)}


def passes(values: dict) -> dict:
    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}
    return {k: bool(ops[op](values[k], lim)) for k, (op, lim) in TARGETS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="seconds of real-time streaming (default 40)")
    ap.add_argument("--json", action="store_true", help="one JSON object: values, targets, pass")
    args = ap.parse_args(argv)
    from bench._chromium import Chromium

    t0 = time.monotonic()
    with Chromium() as browser:
        run = asyncio.run(run_session(args.seconds, browser))
    values = measure(run)
    ok = passes(values)
    if args.json:
        print(json.dumps({"values": values, "targets": TARGETS, "pass": all(ok.values()), "checks": ok}))
    else:
        print(f"live view, {args.seconds:g} s real time through the virtual Nape ({time.monotonic() - t0:.0f} s)")
        print(f"{'measure':<34}{'value':>10}  target")
        for k, v in values.items():
            tgt = " ".join(str(x) for x in TARGETS[k]) if k in TARGETS else ""
            mark = ("  ok" if ok[k] else "  FAIL") if k in ok else ""
            print(f"{k:<34}{v if isinstance(v, int) or v is None else f'{v:.1f}':>10}  {tgt}{mark}")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
