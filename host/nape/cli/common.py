"""What every ``nape`` command shares: the consoles, the one progress bar, settings from the
command line, the one ranged-value argument type and the one way to open a radio link.

Only modules under ``nape/cli/`` import argparse and rich (tests/test_layout.py checks it).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import DeviceError

class _Stdout:
    """The results console: a fresh rich Console on stdout at each use, so it sees the terminal
    (width, ``COLUMNS``, redirection) as it is when the command runs, not at import."""

    def __getattr__(self, name: str):
        return getattr(Console(stderr=False), name)


#: Results go to stdout; progress bars and live views to stderr, so ``nape ... > file`` keeps
#: the results alone.
console = _Stdout()


def err_console() -> Console:
    """A console on stderr (progress bars, live views)."""
    return Console(stderr=True)


def progress(counted: bool = False, on: Console | None = None) -> Progress:
    """The progress bar of every command: description, bar, percentage (or ``done/total``
    items when ``counted``), elapsed time; transient, on stderr unless ``on`` is given."""
    amount = MofNCompleteColumn() if counted else TextColumn("{task.percentage:>3.0f}%")
    return Progress(TextColumn("{task.description}"), BarColumn(), amount, TimeElapsedColumn(),
                    console=on or err_console(), transient=True)


# ---------------------------------------------------------------- settings


def add_settings_arguments(p: argparse.ArgumentParser) -> None:
    """``--set NAME=VALUE`` (repeatable) and ``--settings FILE`` on a command that analyses."""
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one analysis setting")
    p.add_argument("--settings", help="JSON file of setting overrides")


def settings_from_args(args):
    """The analysis settings the command line asks for: defaults, then ``--settings FILE``,
    then each ``--set NAME=VALUE``.

    Raises:
        nape.settings.SettingsError: an unreadable file, an unknown name or a bad value.
    """
    from ..settings import AnalysisSettings

    settings = AnalysisSettings.from_json(args.settings) if getattr(args, "settings", None) else AnalysisSettings()
    return settings.with_overrides(getattr(args, "set", None) or [])


def add_db_argument(p: argparse.ArgumentParser) -> None:
    """``--db FILE``: the trends database."""
    from ..trends import default_db_path

    p.add_argument("--db", metavar="FILE", help=f"trends database (default: $NAPE_DB or {default_db_path()})")


# ---------------------------------------------------------------- ranged values


class Ranged:
    """An argparse ``type=`` for a number a user types: parsed as ``kind`` (int or float),
    finite, and within ``lo``..``hi`` (``lo`` excluded when ``lo_open``). A wrong value raises
    :class:`argparse.ArgumentTypeError` with a short reason: one line, exit 2.

    ``__name__`` starts with ``positive``/``nonneg`` for ranges that exclude negative numbers
    (tests/test_bad_input.py then tries a negative one).
    """

    def __init__(self, kind: type = float, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, what: str = "", unit: str = "") -> None:
        self.kind, self.lo, self.hi, self.lo_open, self.what, self.unit = kind, lo, hi, lo_open, what, unit
        sign = "positive" if lo is not None and (lo > 0 or (lo == 0 and lo_open)) else \
            "nonneg" if lo is not None and lo >= 0 else "number"
        self.__name__ = f"{sign}_{kind.__name__}" + (f"_{what.replace(' ', '_')}" if what else "")

    def _range(self) -> str:
        lo, hi, u = _num(self.lo), _num(self.hi), f" {self.unit}" if self.unit else ""
        if self.lo_open and self.hi is not None:
            return f"> {lo} and at most {hi}{u}"
        if self.hi is None:
            return f"> {lo}" + (" and finite" if self.kind is float else "") if self.lo_open else f">= {lo}"
        return f"{lo}..{hi}{u}"

    def __call__(self, text: str):
        try:
            v = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not {'an integer' if self.kind is int else 'a number'}: {text!r}") from None
        bad = not math.isfinite(v) or (self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)) \
            or (self.hi is not None and v > self.hi)
        if bad:
            prefix = f"{self.what} " if self.what else ""
            raise argparse.ArgumentTypeError(f"{prefix}must be {self._range()}, got {_num(v)}")
        return v


def _num(v) -> str:
    """A bound or value as typed: 5000000, 0.5, 15.26 (not 5e+06)."""
    if v is None or not math.isfinite(v):
        return str(v)
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def at_most(hi: float, unit: str = "") -> Ranged:
    """A finite number > 0 and no larger than ``hi``."""
    return Ranged(float, 0.0, hi, lo_open=True, unit=unit)


NONNEG_INT = Ranged(int, 0)  # seeds, counts
POSITIVE = Ranged(float, 0.0, lo_open=True)  # seconds, speeds, scales
MTU = Ranged(int, 23, 517, what="ATT MTU")  # bytes: the BLE minimum .. maximum
BAUD = Ranged(int, 9600, 5_000_000, what="baud")
ANGLE_0_45 = Ranged(float, 0.0, 45.0, unit="degrees")


# ---------------------------------------------------------------- radio links


@dataclass
class Link:
    """An open link to a device: the transport, and whether a virtual device was started for it."""

    transport: object
    started_virtual_device: bool = False
    device: object = None  # the VirtualDevice started for the session, if any


@contextlib.asynccontextmanager
async def open_transport(*, virtual: bool = False, pipe: bool = False, radio: str | None = None,
                         reuse_radio: bool = True, make_sim: Callable[[], object] | None = None,
                         speed: float = 1.0, keystore: str | os.PathLike | None = None, mtu: int | None = None,
                         hold: bool = False, away_s: tuple[float, float] | None = None,
                         **ble_kw) -> AsyncIterator[Link]:
    """Open the link to a real or a virtual Nape (not yet connected: the recorder connects).

    * ``pipe``: the firmware under MicroPython fed by ``make_sim()``, its packets straight
      through a pipe (:class:`nape.device_sim.SimulatedTransport`; ``mtu`` sets the value size);
    * ``virtual``: bleak's bumble backend on the virtual radio at ``radio`` /
      ``$NAPE_VIRTUAL_RADIO`` / the default path if one is serving (only when ``reuse_radio``),
      else a virtual Nape started for the session streaming ``make_sim()`` at ``speed`` times
      real time (stopped on exit; ``hold``: the wearer starts when the recorder streams;
      ``away_s``: (from, to) board seconds when it is out of range, ``VirtualDevice``);
      bonds in ``keystore``; ``mtu`` the ATT MTU to ask for;
    * else a real adapter through bleak (BlueZ).

    ``ble_kw`` goes to :class:`nape.ble.BleTransport` (address, name, pair, backfill, ...).

    Raises:
        DeviceError: no virtual radio at an explicit ``radio`` path, or none running and
            nothing to simulate.
    """
    if pipe:
        from ..device_sim import SimulatedTransport

        yield Link(SimulatedTransport(make_sim(), max_value_len=(mtu or 247) - 3), True)
        return
    from ..ble import BleTransport, VirtualDevice, nsim_blob, virtual_radio

    vd = None
    bumble = None
    try:
        if virtual:
            found = virtual_radio(radio) if reuse_radio else None
            if found is None:
                if make_sim is None:  # nothing to start one with (nape pair)
                    raise DeviceError("no virtual Nape running (start one: python -m nape.ble.virtual, "
                                      "or give --radio)")
                if radio and os.path.sep in radio:
                    raise DeviceError(f"no virtual radio at {radio}")
                vd = VirtualDevice(nsim_blob(make_sim()), speed=speed, hold=hold, away_s=away_s)
                await vd.start()
                found = vd.transport
            from ..ble.keystore import check_keystore

            bumble = {"transport": found, "keystore": str(check_keystore(Path(keystore or default_keystore())))}
            if mtu is not None:
                bumble["mtu"] = 0 if mtu == 23 else mtu
        if vd is not None:  # our own virtual board: pair inside its power-on window
            ble_kw["pair"] = True
        for k, v in owner_key_kwargs().items():
            ble_kw.setdefault(k, v)
        yield Link(BleTransport(bumble=bumble, **ble_kw), vd is not None, vd)
    finally:
        if vd is not None:
            await vd.stop()


def owner_key_kwargs() -> dict:
    """``owner_key`` / ``owner_key_source`` for :class:`nape.ble.BleTransport`: this
    computer's owner key file (``nape flash`` writes it; protocol/SECURITY.md), if any.

    Raises:
        DeviceError: the file exists but holds no key.
    """
    from ..ble.owner import default_owner_key_path, load_owner_key

    path = default_owner_key_path()
    return {"owner_key": load_owner_key(path), "owner_key_source": str(path)}


def default_keystore() -> Path:
    """Where the virtual radio's central keeps bonds (:func:`nape.ble.keystore.default_keystore`)."""
    from ..ble.keystore import default_keystore as where

    return where()
