"""``nape doctor``: what this machine has for Nape (:mod:`nape.doctor` runs the checks)."""

from __future__ import annotations

from rich.table import Table

from .common import console


def cmd_doctor(args) -> int:
    """Check what this machine has for Nape: MicroPython, firmware, Bluetooth, flashing tools."""
    from ..doctor import environment_overrides, healthy, run_checks

    checks = run_checks()
    table = Table(title="nape doctor")
    for col in ("check", "", "found", "to fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        mark = "[green]ok[/green]" if c.ok else ("[red]missing[/red]" if c.required else "[yellow]optional[/yellow]")
        table.add_row(c.name, mark, c.detail, c.fix)
    console.print(table)
    for k, v in environment_overrides().items():
        console.print(f"{k}={v}")
    ok = healthy(checks)
    console.print("ready: nape demo and nape flash can run" if ok else "not ready: fix the required items above")
    return 0 if ok else 1


def register(sub, formatter) -> None:
    """Add ``doctor``."""
    dr = sub.add_parser("doctor", help="check MicroPython, firmware, Bluetooth and flashing tools on this machine",
                        description=cmd_doctor.__doc__, formatter_class=formatter, epilog="example:\n  nape doctor")
    dr.set_defaults(func=cmd_doctor)
