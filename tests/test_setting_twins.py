"""Settings the firmware and the host both hold must agree: the board's jolt screen decides
which jolts get a high-rate EVENT window, the host's analysis which jolts are reported; a
board that triggers above the host's threshold would leave reported jolts without their
high-rate traces (and one below it sends windows the host never reports).

The firmware's value is read by running its module under the real MicroPython.
"""

from __future__ import annotations

import re
from pathlib import Path

from nape.settings import AnalysisSettings
from tests.mpy import run_mpy

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


def test_the_firmware_jolt_trigger_is_the_hosts_jolt_trigger_g():
    out = run_mpy("import sys, jolt; print(sys.implementation.name); print(jolt.TRIGGER_MG)").decode().split()
    assert out[0] == "micropython", out
    firmware_g = int(out[1]) / 1000.0  # mg → g
    assert firmware_g == AnalysisSettings().jolt_trigger_g, (
        f"firmware jolt trigger {firmware_g} g (firmware/jolt.py TRIGGER_MG) != host jolt_trigger_g "
        f"{AnalysisSettings().jolt_trigger_g} g (nape/settings.py): change both together")


def test_no_firmware_module_overrides_the_jolt_trigger_default():
    """The board runs the screen with its default (the constant checked above): nothing passes
    another ``trigger_mg``."""
    overrides = [f"{p.name}: {m.group(0)}" for p in sorted(FIRMWARE.glob("*.py")) if p.name != "jolt.py"
                 for m in re.finditer(r"trigger_mg\s*=\s*[^,)\n]+", p.read_text(encoding="utf-8"))]
    assert not overrides, overrides
