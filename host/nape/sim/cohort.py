"""A simulated cohort: several wearers in groups, short recordings, a manifest.

For tests, benchmarks and trying ``nape cohort`` without data. Each recording is a
simulated wearer (:func:`nape.sim.simulate_day` or a :mod:`nape.sim.scenarios` drive or
night) written with the fast host encoder (:func:`nape.sim.to_recording.write_truth_recording`);
optionally guided range-of-motion tests (:func:`nape.sim.rom_script.simulate_rom`) and
damaged files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .settings import SimError, SimSettings

KINDS = ("day", "drive", "night")
_T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@dataclass
class SimCohort:
    """What :func:`write_cohort` wrote."""

    manifest: Path
    healthy: list[Path] = field(default_factory=list)  # analysable recordings
    damaged: list[Path] = field(default_factory=list)  # garbage: the analysis must refuse them
    truncated: list[Path] = field(default_factory=list)  # cut short: analysable, flagged as damaged
    rom: list[Path] = field(default_factory=list)  # guided range-of-motion tests (also in healthy)


def _sim(kind: str, seed: int, time_scale: float, head: bool):
    from . import simulate, simulate_day
    from .scenarios import scenario

    if kind == "day":
        return simulate_day(seed, SimSettings(time_scale=time_scale, head_imu=head))
    script, st = scenario(seed, kind, 0.5)
    return simulate(script, seed, replace(st, head_imu=head))


def write_cohort(folder: str | Path, wearers: int = 4, recordings_per_wearer: int = 3,
                 groups: tuple[str, ...] = ("office", "fleet"), seed: int = 0, time_scale: float = 0.1,
                 garbage: int = 1, truncated: int = 0, rom_tests: int = 0, names: list[str] | None = None) -> SimCohort:
    """Write a simulated cohort and its manifest ``folder/manifest.csv``.

    Wearer ``k`` is in group ``groups[k % len(groups)]``; the fleet group (any group but
    the first) drives, the first group works at a desk; every third recording is a night.
    The first wearer has no head sensor when there are more than three wearers.

    Args:
        folder: created if missing.
        wearers, recordings_per_wearer: cohort size.
        time_scale: length of the simulated day (1.0 ≈ 15 min).
        garbage: extra files of random bytes named ``.nape`` (listed in the manifest).
        truncated: healthy recordings cut short (the end of the file missing).
        rom_tests: guided range-of-motion tests of the second wearer, a little stiffer each time.
        names: wearer ids (default W01, W02, ...).

    Raises:
        SimError: bad sizes. OSError: the folder cannot be written.
    """
    import numpy as np

    from .rom_script import simulate_rom
    from .to_recording import write_truth_recording

    if wearers < 1 or recordings_per_wearer < 1 or not groups:
        raise SimError("a cohort needs at least one wearer, one recording each and one group")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"W{k + 1:02d}" for k in range(wearers)]
    out = SimCohort(folder / "manifest.csv")
    lines = [("path", "wearer", "group", "label")]
    for k in range(wearers):
        group = groups[k % len(groups)]
        head = not (k == 0 and wearers > 3)
        for r in range(recordings_per_wearer):
            kind = "night" if r % 3 == 2 else ("drive" if group != groups[0] and r % 3 == 1 else "day")
            s = seed + 100 * k + r
            path = folder / f"w{k + 1:02d}-{r + 1}-{kind}.nape"
            created = (_T0 + timedelta(days=r, hours=k)).isoformat().replace("+00:00", "Z")
            write_truth_recording(_sim(kind, s, time_scale, head), path, overwrite=True,
                                  metadata={"created": created, "sim_kind": kind})
            out.healthy.append(path)
            lines.append((path.name, names[k], group, f"day {r + 1}" if kind != "night" else f"night {r + 1}"))
    rng = np.random.default_rng(seed)
    for t in range(min(truncated, len(out.healthy))):
        src = out.healthy[t]
        data = src.read_bytes()
        cut = folder / f"{src.stem}-cut.nape"
        cut.write_bytes(data[: int(len(data) * 0.7)])
        out.truncated.append(cut)
        k = int(src.name[1:3]) - 1
        lines.append((cut.name, names[k], groups[k % len(groups)], "cut short"))
    for t in range(rom_tests):
        k = min(1, wearers - 1)
        maxima = {"rotation_left": 75.0 - 12.0 * t, "rotation_right": 78.0 - 12.0 * t, "flexion": 55.0 - 8.0 * t}
        sim, truth = simulate_rom(seed + 900 + t, maxima)
        path = folder / f"w{k + 1:02d}-rom-{t + 1}.nape"
        created = (_T0 + timedelta(days=7 * t, hours=18)).isoformat().replace("+00:00", "Z")
        write_truth_recording(sim, path, overwrite=True, metadata={"created": created, "rom_protocol": truth["protocol"]})
        out.rom.append(path)
        out.healthy.append(path)
        lines.append((path.name, names[k], groups[k % len(groups)], f"ROM test {t + 1}"))
    for g in range(garbage):
        path = folder / f"damaged-{g + 1}.nape"
        path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        out.damaged.append(path)
        lines.append((path.name, names[g % wearers], groups[(g % wearers) % len(groups)], "damaged"))
    with open(out.manifest, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(lines)
    return out
