"""The ``nape`` command line. Every command has ``--help`` with an example.

One module per command group (MNE-Python's layout): :mod:`.demo`; :mod:`.recordings`
(analyse, info, decode, export); :mod:`.device` (scan, record, pair); :mod:`.doctor`; :mod:`.rom`;
:mod:`.trends` (trends, sessions); :mod:`.flash`; :mod:`.csv_import` (import); :mod:`.cohort`. What they
share (consoles, the progress bar, settings from arguments, the ranged-value type, opening a
real or virtual radio link) is in :mod:`.common`; terminal summaries in :mod:`.summaries`.
argparse and rich are imported only under ``nape/cli/``.

Errors a user can cause print one line (``nape: error: ...``) and exit 1; wrong
arguments exit 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from .. import __version__
from ..errors import NapeError

#: The command groups, in the order ``nape --help`` lists them.
GROUPS = ("demo", "recordings", "device", "doctor", "flash", "csv_import", "trends", "rom", "cohort")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``nape`` parser with every command group's subcommands."""
    import importlib

    p = _Parser(prog="nape", description="Nape: neck and upper-back posture and jolt analysis.",
                epilog="Start with:  nape demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"nape {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for group in GROUPS:
        importlib.import_module(f"{__name__}.{group}").register(sub, argparse.RawDescriptionHelpFormatter)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one ``nape`` command; returns the exit status."""
    try:  # building the parser imports every command group (numpy, scipy…): a second or so to Ctrl-C in
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("nape: interrupted", file=sys.stderr)
        return 130
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..safe_write import PipeSafeStream, os_error_message

    stdout, sys.stdout = sys.stdout, PipeSafeStream(sys.stdout)  # `| head` never stops the work
    try:
        return args.func(args)
    except NapeError as e:
        print(f"nape: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. unwritable output folder, full disk: the plain message and the file
        print(f"nape: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nape: interrupted", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        sys.stdout = stdout
