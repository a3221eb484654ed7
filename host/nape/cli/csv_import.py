"""``nape import``: a raw IMU CSV from another device into a ``.nape`` recording (:mod:`nape.importer`)."""

from __future__ import annotations

from pathlib import Path

from ..importer import ACC_UNITS, GYR_UNITS, MAX_RATE_HZ, MIN_RATE_HZ, import_csv
from .common import Ranged, console, progress

RATE_HZ = Ranged(float, MIN_RATE_HZ, MAX_RATE_HZ, unit="Hz")  # period_us is a u16 on the wire


def cmd_import(args) -> int:
    """Turn a raw IMU CSV from another device into a .nape recording (orientation by vqf)."""
    src = Path(args.csv)
    out = Path(args.out) if args.out else src.with_suffix(".nape")
    with progress() as prog:
        task = prog.add_task(f"importing {src.name}", total=None)
        res = import_csv(src, out, rate_hz=args.rate, acc_unit=args.acc_unit, gyr_unit=args.gyr_unit,
                         start=args.start, device_name=args.device, overwrite=args.force, columns=args.columns,
                         gyr_path=args.gyr, no_gyro=args.no_gyro,
                         on_progress=lambda done, total: prog.update(task, completed=done, total=total))
    console.print(f"imported {res.samples} samples ({', '.join(res.roles)}; {res.rate_hz:.4g} Hz from {res.rate_from}; "
                  f"{res.duration_s:.1f} s; start {res.created} from {res.start_from}) → {res.out}", soft_wrap=True)
    if res.timing:
        console.print(f"timing: resampled to {res.rate_hz:.4g} Hz (rows strayed {res.timing['mean_abs_jitter_ms']:g} ms "
                      f"on average, at most {res.timing['max_abs_jitter_ms']:g} ms; {res.timing['gaps']} gaps left as "
                      "gaps)", soft_wrap=True)
    console.print(f"next: nape analyse {res.out}", soft_wrap=True)
    return 0


def register(sub, formatter) -> None:
    """Add ``import``."""
    p = sub.add_parser(
        "import", help="convert a raw IMU CSV from another device into a .nape recording",
        description=(cmd_import.__doc__ or "") + "\n\nCSV layout: protocol/IMPORT.md (header row; time_s; "
                    "trunk_acc_x..z, trunk_gyr_x..z; optional head_acc_x..z, head_gyr_x..z).",
        formatter_class=formatter,
        epilog="example:\n  nape import phone.csv --out phone.nape\n"
               "  nape import shimmer.csv --out drive.nape --acc-unit g --gyr-unit dps --start 2025-01-06T08:15:00Z\n"
               "  nape import logger.csv --rate 100 --force\n"
               "  nape import acc.csv --gyr gyro.csv --acc-unit g --gyr-unit dps\n"
               "  nape import phone.csv --columns t=time_s,ax=trunk_acc_x,ay=trunk_acc_y,az=trunk_acc_z --no-gyro")
    p.add_argument("csv", help="CSV file (protocol/IMPORT.md)")
    p.add_argument("--out", help="the .nape file to write (default: the CSV's name with .nape)")
    p.add_argument("--rate", type=RATE_HZ, metavar="HZ",
                   help="sample rate in Hz, rows taken as evenly spaced (default: from time_s; jittery times are "
                        "resampled)")
    p.add_argument("--acc-unit", choices=sorted(ACC_UNITS), default="ms2",
                   help="unit of the *_acc_* columns: ms2 (m/s², default) or g")
    p.add_argument("--gyr-unit", choices=sorted(GYR_UNITS), default="rads",
                   help="unit of the *_gyr_* columns: rads (rad/s, default) or dps (°/s)")
    p.add_argument("--start", metavar="ISO8601",
                   help="when the recording started, e.g. 2025-01-06T08:15:00Z, from 1970-01-01 to no later than "
                        "a day from now (default: the CSV's modification time minus the recording's duration)")
    p.add_argument("--device", default="imported", help="device name for the recording header (default: imported)")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    p.add_argument("--columns", metavar="CSV=NAPE,...",
                   help="map the CSV's column names to Nape's, e.g. t_s=time_s,ax=trunk_acc_x (protocol/IMPORT.md)")
    p.add_argument("--gyr", metavar="FILE", help="a second CSV holding the gyroscope stream (its own clock), merged by time")
    p.add_argument("--no-gyro", action="store_true",
                   help="import without gyroscope (orientation from the accelerometer alone; see protocol/IMPORT.md)")
    p.set_defaults(func=cmd_import)
