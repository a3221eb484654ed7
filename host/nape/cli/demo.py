"""``nape demo``: a simulated wearer end to end — firmware under MicroPython, the wire format
over the virtual radio (or a pipe), recording, analysis, report. No hardware."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from .common import MTU, NONNEG_INT, at_most, console, open_transport, progress
from .recordings import analyse_and_report


def cmd_demo(args) -> int:
    """Simulate a wearer, stream through the firmware and wire format, record, analyse, report."""
    from ..recorder import record
    from ..sim import SimSettings, simulate_day

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nape_path = out / "demo.nape"
    t0 = time.monotonic()
    with progress() as prog:
        task = prog.add_task("simulating the wearer's day", total=None)
        sim = simulate_day(seed=args.seed, settings=SimSettings(head_imu=not args.no_head, time_scale=args.time_scale))
        (out / "demo.truth.json").write_text(json.dumps(sim.labels.to_dict(), indent=1))
        ble = args.link == "ble"
        prog.update(task, total=len(sim.t), completed=0,
                    description="firmware (MicroPython) → BLE GATT on the virtual radio → recording" if ble
                    else "firmware (MicroPython) → wire format → recording")

        def on_progress(stats):
            prog.update(task, completed=stats.samples)

        async def run(keys: str):
            # the virtual radio: the firmware's own GATT service and sampling loop under MicroPython,
            # bleak + BleTransport on this side (real ATT/GATT traffic, MTU negotiation, Just Works
            # bonding in a throw-away key store)
            async with open_transport(pipe=not ble, virtual=ble, reuse_radio=False, make_sim=lambda: sim, speed=0,
                                      keystore=Path(keys) / "bonds.json", mtu=args.mtu, pair=True) as link:
                meta = {"sim_seed": args.seed, **({"link": "virtual-ble"} if ble else {})}
                return await record(link.transport, nape_path, metadata=meta, on_progress=on_progress,
                                    overwrite=True)

        with tempfile.TemporaryDirectory(prefix="nape-demo-keys-") as keys:
            stats = asyncio.run(run(keys))
    console.print(f"recorded {stats.samples} samples in {stats.packets} packets "
                  f"({stats.lost_samples} lost, {stats.malformed} malformed) → {nape_path}")
    _, paths = analyse_and_report(nape_path, out, "report", args)  # demo data stays out of trends
    console.print(f"demo done in {time.monotonic() - t0:.1f} s")
    console.print(f"[bold]report:[/bold] {paths['html'].resolve()}")
    console.print(f"json:   {paths['json'].resolve()}")
    return 0


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
    d.add_argument("--link", choices=("ble", "pipe"), default="ble",
                   help="ble (default): real GATT traffic over the bumble virtual radio, as a board is "
                        "recorded; pipe: the firmware's packets straight through a pipe (faster)")
    d.set_defaults(func=cmd_demo)
