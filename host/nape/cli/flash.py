"""``nape flash``: MicroPython and the Nape firmware onto a board (:mod:`nape.flash` does the work)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .. import flash
from ..flash import CHIPS, DEFAULT_BAUD, MARCH, FlashError
from .common import BAUD, progress


def cmd_flash(args) -> int:
    """Flash MicroPython to a Nape board (ESP32 / ESP32-S3), copy the firmware, check it answers."""
    plan = flash.build_plan(args, dry_run=args.dry_run)
    if args.dry_run:
        flash.print_plan(plan)
        return 0
    assert plan.port is not None
    # One console (stdout) for the bars and the step lines, so a terminal shows the lines
    # above the live bars; off a terminal the transient bars print nothing. Errors go to
    # stderr as one line (nape.cli).
    console = Console(highlight=False, soft_wrap=True)

    def ok(text: str) -> None:
        console.print(f"[green]✓[/green] {escape(text)}")

    with tempfile.TemporaryDirectory(prefix="nape-flash-") as tmp, \
            progress(on=console) as bars:
        build = Path(tmp)
        flash.compile_firmware(plan, build, bars)  # before touching the board: a syntax error erases nothing
        ok(f"compiled {sum(f.compiled for f in plan.files)} modules with mpy-cross -march={MARCH}")
        flashed = False
        if plan.image is not None:
            task = bars.add_task(f"detecting the chip on {plan.port}", total=None)
            found = flash.detect_chip(plan.port)
            bars.remove_task(task)
            key = flash.chip_key(found)
            if key not in CHIPS:
                raise FlashError(f"the board on {plan.port} is an {found}; nape flash supports ESP32 and ESP32-S3")
            if plan.chip != "auto" and key != plan.chip:
                raise FlashError(f"wrong chip: the board on {plan.port} is an {found}, not {CHIPS[plan.chip].name} "
                                 f"(--chip {plan.chip})")
            if key != plan.image.chip:
                raise FlashError(f"wrong image: the board on {plan.port} is an {found}, but {plan.image.path.name} "
                                 f"is MicroPython for the {plan.image.chip_name}")
            chip = CHIPS[key]
            ok(f"{found} on {plan.port}")
            flash.run_esptool_step(flash.esptool_erase_argv(plan.port, key, plan.baud), "erasing the flash", flash.TIMEOUT_ERASE_S, bars)
            ok("erased the flash")
            flash.run_esptool_step(flash.esptool_write_argv(plan.port, key, plan.baud, plan.image.path),
                          f"writing MicroPython at 0x{chip.offset:x}", flash.TIMEOUT_WRITE_S, bars)
            ok(f"wrote {plan.image.path.name} at 0x{chip.offset:x}")
            flash.wait_for_port(plan.port)
            flashed = True
        flash.copy_firmware(plan, build, bars, retries=3 if flashed else 0)
        ok(f"copied {len(plan.files)} files to the board")
        task = bars.add_task("checking the firmware version", total=None)
        got = flash.verify_board(plan.port, plan.version)
        bars.remove_task(task)
    ok(f"the board answers FW_VERSION {got}")
    return 0


EPILOG = """\
example:
  nape flash --port /dev/ttyUSB0 --firmware ESP32_GENERIC-20250415-v1.25.0.bin
  nape flash --chip esp32s3 --firmware ESP32_GENERIC_S3-20250415-v1.25.0.bin
  nape flash --skip-micropython            # only copy the firmware files and check
  nape flash --firmware ESP32_GENERIC-20250415-v1.25.0.bin --dry-run

Download the MicroPython .bin for your board from https://micropython.org/download/
(ESP32_GENERIC for an ESP32, ESP32_GENERIC_S3 for an ESP32-S3 such as the XIAO ESP32S3).
Needs esptool and mpremote: pip install 'nape[flash]'."""


def register(sub, formatter) -> argparse.ArgumentParser:
    """Add ``flash``; return its parser."""
    p = sub.add_parser(
        "flash", help="flash MicroPython and the Nape firmware to a board, then check it",
        description=str(cmd_flash.__doc__) + "\n\nSteps: detect the chip, erase, write MicroPython (esptool); "
        "compile the firmware (mpy-cross), copy it and check FW_VERSION (mpremote).",
        formatter_class=formatter, epilog=EPILOG)
    p.add_argument("--port", help="serial port (default: the only USB serial port found)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--firmware", metavar="IMAGE", help="MicroPython .bin image to flash")
    what.add_argument("--skip-micropython", action="store_true",
                      help="keep the board's MicroPython; only copy the firmware files and check")
    p.add_argument("--chip", choices=["auto", *CHIPS], default="auto",
                   help="the board's chip (default auto: detect; the image offset follows: "
                        "ESP32 0x1000, ESP32-S3 0x0)")
    p.add_argument("--baud", type=BAUD, default=DEFAULT_BAUD, help=f"esptool flashing speed (default {DEFAULT_BAUD})")
    p.add_argument("--source", metavar="DIR",
                   help="firmware folder to copy (default: the repository's firmware/, or $NAPE_FIRMWARE_DIR)")
    p.add_argument("--dry-run", action="store_true", help="print each step and its command; touch nothing")
    p.add_argument("--no-owner-key", action="store_true",
                   help="do not copy this computer's owner key to the board (protocol/SECURITY.md)")
    p.set_defaults(func=cmd_flash)
    return p

