"""The options of the virtual-device process (``python -m nape.cli.virtual_device``, also
``python -m nape.ble.virtual``), which :class:`nape.ble.VirtualDevice` starts: the whole
firmware under MicroPython (the virtual board) on a bumble virtual radio (:func:`nape.ble.virtual.serve`)."""

from __future__ import annotations

import argparse
import sys

from ..ble.virtual import __doc__ as VIRTUAL_DOC
from ..ble.virtual import serve


def main(argv: list[str] | None = None) -> int:
    """Parse the options and serve; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m nape.ble.virtual", description=(VIRTUAL_DOC or "").split("\n")[0])
    p.add_argument("--radio", required=True, help="AF_UNIX path to serve the virtual radio (HCI) on")
    p.add_argument("--tcp", type=int, default=None, help="also serve HCI on this TCP port (0: any)")
    p.add_argument("--nsim", required=True, help="the wearer: FIFO frames (NFRM, nape.ble.virtual.wearer_blob)")
    p.add_argument("--speed", type=float, default=1.0, help="times real time; 0 = as fast as possible")
    p.add_argument("--workdir", required=True)
    p.add_argument("--flash", action="store_true", help="spill the offline buffer to a file")
    p.add_argument("--ram-slots", type=int, default=4096)
    p.add_argument("--flash-slots", type=int, default=16384)
    p.add_argument("--daylog-kib", type=int, default=0,
                   help="offline day log of this many KiB (firmware/daylog.py; 0: none)")
    p.add_argument("--away", default=None,
                   help="A:B board seconds when the host is out of range (the board runs alone)")
    p.add_argument("--offline-after", type=float, default=None,
                   help="board seconds without a central before the day log runs "
                        "(default: the firmware's SAVER_AFTER_S)")
    p.add_argument("--name", default="Nape")
    p.add_argument("--keystore", default=None,
                   help="keep the peripheral's bonds in this bumble JSON key store instead of the firmware")
    p.add_argument("--insecure", action="store_true",
                   help="development mode (config.BLE_SECURE = 0): no encryption or bond required")
    p.add_argument("--pair-window", type=int, default=None,
                   help="pairing window after boot / a long press, s (default: the firmware's config)")
    p.add_argument("--owner-key", default=None, help="owner key file on the virtual board's flash")
    p.add_argument("--button-gpio", type=int, default=0, help="GPIO of the pair button (config.PIN_PAIR_BUTTON)")
    p.add_argument("--secrets", default=None, help="firmware bond file (default: in the work directory)")
    p.add_argument("--no-quiet-hours", action="store_true",
                   help="the board's posture alert buzzes at any hour (tests)")
    p.add_argument("--hold", action="store_true",
                   help="the wearer starts when a central first streams (the board's clock waits)")
    p.add_argument("--heap", default="16m")
    args = p.parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
