"""``nape demo``: a simulated wearer end to end — firmware under MicroPython, the wire format
over the virtual radio (or a pipe), recording, analysis, report. No hardware."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from .. import safe_write
from .common import MTU, NONNEG_INT, at_most, console, open_transport, progress
from .recordings import analyse_and_report


def cmd_demo(args) -> int:
    """Simulate a wearer, stream through the firmware and wire format, record, analyse, report."""
    from ..ble.virtual import BOARD_ODR_HZ
    from ..recorder import record
    from ..sim import SimSettings, simulate_day

    out = Path(args.out)
    safe_write.make_folder(out)
    nape_path = out / "demo.nape"
    t0 = time.monotonic()
    with progress() as prog:
        task = prog.add_task("simulating the wearer's day", total=None)
        ble = args.link == "ble"
        # over BLE the virtual board runs the whole firmware: simulate at its IMUs' rate so
        # the jolt screen and its EVENT windows see the real high-rate signal
        sim = simulate_day(seed=args.seed, settings=SimSettings(head_imu=not args.no_head, time_scale=args.time_scale,
                                                                rate_hz=BOARD_ODR_HZ if ble else 100.0))
        (out / "demo.truth.json").write_text(json.dumps(sim.labels.to_dict(), indent=1))
        prog.update(task, total=len(sim.t), completed=0,
                    description="firmware (MicroPython) → BLE GATT on the virtual radio → recording" if ble
                    else "firmware (MicroPython) → wire format → recording")

        away = _away_span(sim, args.away) if ble else None
        host: dict = {"reconnected_at": None, "backfill_done_at": None, "seen": 0}

        def on_link(event: str, **_kw) -> None:  # the recorder's link events (host side)
            if event == "reconnected":
                host["reconnected_at"] = time.monotonic()
                prog.update(task, description="back in range: backfilling the board's day log")
            elif event == "disconnected":
                prog.update(task, description="host away: the board records on its own")

        def on_progress(stats):
            prog.update(task, completed=stats.samples)
            got = stats.backfilled_samples + stats.log_samples
            if host["reconnected_at"] is not None and got > host["seen"]:
                host["backfill_done_at"] = time.monotonic()  # still catching up
            host["seen"] = got

        async def run(keys: str):
            # the virtual radio: the firmware's own GATT service and sampling loop under MicroPython,
            # bleak + BleTransport on this side (real ATT/GATT traffic, MTU negotiation, Just Works
            # bonding in a throw-away key store)
            # hold: the wearer starts when the recorder streams, so the whole day (and every
            # jolt's high-rate window) goes out live, as from a board worn beside a laptop
            async with open_transport(pipe=not ble, virtual=ble, reuse_radio=False, make_sim=lambda: sim, speed=0,
                                      keystore=Path(keys) / "bonds.json", mtu=args.mtu, pair=True,
                                      hold=ble, away_s=away, **({"on_link": on_link} if ble else {})) as link:
                meta = {"sim_seed": args.seed, **({"link": "virtual-ble"} if ble else {})}
                if away:
                    meta["host_away_s"] = list(away)
                st = await record(link.transport, nape_path, metadata=meta, on_progress=on_progress,
                                  overwrite=True, progress_interval_s=0.05)
                return st, list(link.device.events) if link.device is not None else []

        with tempfile.TemporaryDirectory(prefix="nape-demo-keys-") as keys:
            stats, events = asyncio.run(run(keys))
    console.print(f"recorded {stats.samples} samples in {stats.packets} packets "
                  f"({stats.lost_samples} lost, {stats.duplicate_samples} duplicates, "
                  f"{stats.malformed} malformed) → {nape_path}")
    day = _backfill_summary(away, events, stats, host) if away else None
    if day:
        console.print(day["line"])
        (out / "demo.day.json").write_text(json.dumps({k: v for k, v in day.items() if k != "line"}, indent=1))
    findings, paths = analyse_and_report(nape_path, out, "report", args)  # demo data stays out of trends
    if day:
        r = findings.rates or {}
        console.print(f"in the report: {r.get('reduced_rate_s', 0):.0f} s at the day log's reduced rate, "
                      f"{r.get('window_jolts', 0)} jolts found in the board's own high-rate windows")
    console.print(f"demo done in {time.monotonic() - t0:.1f} s")
    console.print(f"[bold]report:[/bold] {paths['html'].resolve()}")
    console.print(f"json:   {paths['json'].resolve()}")
    return 0


def _away_span(sim, which: str) -> tuple[float, float] | None:
    """(from, to) board seconds of the scripted segment the host misses (``--away``)."""
    if which == "none":
        return None
    spans = [(p.t_start, p.t_end) for p in sim.labels.postures if p.activity == which]
    if not spans:
        return None
    return (round(spans[0][0] - 5.0, 3), round(spans[-1][1], 3))  # from before the car starts


def _backfill_summary(away, events: list[dict], stats, host: dict) -> dict | None:
    """What the board kept while the host was away and how it came back (the virtual
    device's ``away`` / ``back`` / ``reconnected`` board times, the recorder's counts, and
    the host's wall time from the reconnection to the end of the backfill)."""
    ev = {e.get("event"): e for e in events if e.get("event") in ("away", "back", "reconnected")}
    if "away" not in ev or "reconnected" not in ev:
        return {"line": "the host never came back within the demo (see --away)", "complete": False}
    board_s = (ev["reconnected"]["t_ms"] - ev["away"]["t_ms"]) / 1000.0
    wall = None
    if host["reconnected_at"] is not None and host["backfill_done_at"] is not None:
        wall = max(host["backfill_done_at"] - host["reconnected_at"], 1e-3)
    x = board_s / wall if wall else None
    day = {"away_board_s": round(board_s, 1), "reconnect_after_board_s": ev["reconnected"]["after_ms"] / 1000.0,
           "log_samples": stats.log_samples, "marks": stats.marks,
           "backfilled_samples": stats.backfilled_samples, "lost_samples": stats.lost_samples,
           "duplicate_samples": stats.duplicate_samples, "backfill_wall_s": None if wall is None else round(wall, 2),
           "backfill_x_realtime": None if x is None else round(x, 1), "complete": True}
    day["line"] = (f"host away {board_s:.0f} board s (the drive): the board logged on its own, advertised "
                   f"every 10 s and was found {day['reconnect_after_board_s']:.1f} s after coming back in range; "
                   f"backfilled {stats.backfilled_samples} full-rate samples and {stats.log_samples} "
                   f"reduced-rate (10 Hz) ones, {stats.marks} marks"
                   + (f", at {x:.0f}x real time" if x else "")
                   + f"; {stats.lost_samples} lost, {stats.duplicate_samples} duplicated")
    return day


def register(sub, formatter) -> None:
    """Add ``demo``."""
    d = sub.add_parser("demo", help="simulate a wearer end to end and write a report (no hardware)",
                       description=cmd_demo.__doc__, formatter_class=formatter,
                       epilog="example:\n  nape demo\n  nape demo --out /tmp/nape --seed 3 --mtu 23\n"
                              "  nape demo --link pipe --no-head")
    d.add_argument("--out", default="nape-demo", help="output folder (default: ./nape-demo)")
    d.add_argument("--seed", type=NONNEG_INT, default=0, help="simulation seed (default 0)")
    d.add_argument("--time-scale", type=at_most(100.0), default=1.0,
                   help="stretch the scripted day's segments by this factor (default 1.0 ≈ 15 min)")
    d.add_argument("--mtu", type=MTU, default=247, help="ATT MTU of the simulated link (23..517, default 247)")
    d.add_argument("--no-head", action="store_true", help="simulate a board without the head IMU")
    d.add_argument("--away", choices=("driving", "none"), default="driving",
                   help="the part of the day the host misses (BLE only): driving (default): the board "
                        "logs the drive on its own and the recorder backfills it when back in range; "
                        "none: the host stays in range all day")
    d.add_argument("--link", choices=("ble", "pipe"), default="ble",
                   help="ble (default): real GATT traffic over the bumble virtual radio, as a board is "
                        "recorded; pipe: the firmware's packets straight through a pipe (faster)")
    d.set_defaults(func=cmd_demo)
