"""Export a recording's findings as tables: CSV always, Parquet when pyarrow is installed.

Three tables, units in the column names (docs/CONVENTIONS.md; times are seconds from the
recording's first sample):

- ``angles``: the 1 Hz posture series — ``time_s, trunk_inclination_deg, neck_flexion_deg,
  lying``, then any further series of the analysis (``head_inclination_deg``,
  ``neck_lateral_deg``, ``activity``, ...); neck and head columns are empty without a head
  IMU; lying is 0 or 1;
- ``episodes``: long poor-posture episodes — ``kind, start_s, end_s, duration_s, mean_deg,
  peak_deg``, then every further episode field (``pattern``, ``iso11226_verdict``, ...);
- ``jolts``: ``peak_t_s, start_s, end_s, cause, grade, peak_trunk_g, peak_head_g,
  peak_head_dps``, then every further jolt field (``peak_vehicle_g``, ``nic_m2s2``, ...);
  unmeasured values (e.g. head values without a head IMU) are empty.

Column names are the field names of the JSON report (protocol/report.schema.json), so a
table and the JSON say the same thing in the same words.

CSV numbers are written with Python's shortest round-trip representation, so reading them
back gives exactly the analysed values. Parquet needs the optional ``pyarrow`` package
(``pip install 'nape[parquet]'``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

from . import safe_write
from .errors import NapeError

ANGLE_COLUMNS = ("time_s", "trunk_inclination_deg", "neck_flexion_deg", "lying")
EPISODE_COLUMNS = ("kind", "start_s", "end_s", "duration_s", "mean_deg", "peak_deg")
JOLT_COLUMNS = ("peak_t_s", "start_s", "end_s", "cause", "grade", "peak_trunk_g", "peak_head_g", "peak_head_dps")
#: Columns holding text (all others hold numbers, ``lying`` 0/1).
TEXT_COLUMNS = frozenset({"kind", "cause", "grade", "grade_basis", "pattern", "iso11226_verdict", "source", "activity",
                          "range_reached"})


class ExportError(NapeError):
    """Findings cannot be exported (e.g. Parquet asked for without pyarrow)."""


def _value(v):
    """Plain Python value for a table cell: float, str, bool, or None when not measured (a list
    of names, e.g. a jolt's ``range_reached``, as one text joined by "+")."""
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v))
    v = float(v)
    return None if math.isnan(v) else v


def _records(items, leading: tuple[str, ...]) -> tuple[tuple[str, ...], list[list]]:
    """Rows of records (jolts and episodes under their JSON names): the ``leading`` columns
    first, then every other field."""
    from .analysis.findings import Jolt, PostureEpisode, episode_record, jolt_record

    dicts: list[dict] = []
    for it in items:
        if isinstance(it, Jolt):
            d: dict = jolt_record(it)
        elif isinstance(it, PostureEpisode):
            d = episode_record(it)
        else:
            d = dict(it) if isinstance(it, Mapping) else dataclasses.asdict(it)
        if "duration_s" in leading and "duration_s" not in d:
            d["duration_s"] = getattr(it, "duration_s")
        dicts.append(d)
    cols = list(leading)
    for d in dicts:
        cols += [k for k in d if k not in cols]
    return tuple(cols), [[_value(d.get(c)) for c in cols] for d in dicts]


def tables(findings) -> dict[str, tuple[tuple[str, ...], list[list]]]:
    """The three tables as {name: (columns, rows)}; unmeasured values are None.

    ``angles`` starts with :data:`ANGLE_COLUMNS` and adds any further 1 Hz series (e.g.
    ``head_inclination_deg``, ``neck_lateral_deg``, ``activity``); ``episodes`` and ``jolts``
    start with :data:`EPISODE_COLUMNS` / :data:`JOLT_COLUMNS` and add every further field.

    Raises:
        ExportError: the series' arrays differ in length.
    """
    series = findings.series
    n = len(series.get("time_s", []))
    cols = list(ANGLE_COLUMNS) + [k for k in series if k not in ANGLE_COLUMNS]
    data = {c: list(series[c]) if c in series else [None] * n for c in cols}
    bad = {c: len(v) for c, v in data.items() if len(v) != n}
    if bad:
        raise ExportError(f"posture series of {findings.path} differ in length from time_s ({n}): {bad}")
    data["lying"] = [None if v is None else bool(v) for v in data["lying"]]
    angles = [[_value(data[c][i]) for c in cols] for i in range(n)]
    return {"angles": (tuple(cols), angles), "episodes": _records(findings.episodes, EPISODE_COLUMNS),
            "jolts": _records(findings.jolts, JOLT_COLUMNS)}


def write_csv(findings, out_dir: str | Path) -> dict[str, Path]:
    """Write ``angles.csv``, ``episodes.csv`` and ``jolts.csv`` into ``out_dir``.

    Returns:
        {table name: path}.

    Raises:
        ExportError: inconsistent findings.
        OSError: the folder cannot be created or written.
    """
    out_dir = Path(out_dir)
    safe_write.make_folder(out_dir)
    paths = {}
    for name, (cols, rows) in tables(findings).items():
        p = out_dir / f"{name}.csv"
        with safe_write.replacing(p, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(cols)
            w.writerows([[_cell(v) for v in r] for r in rows])
        paths[name] = p
    return paths


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back as the same float
    return str(v)


def read_csv(path: str | Path) -> tuple[list[str], list[list]]:
    """Read back a table written by :func:`write_csv`: numbers as float, empty as None,
    :data:`TEXT_COLUMNS` as text, ``lying`` as bool."""
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        cols = next(r)
        rows = []
        for row in r:
            rows.append([v if c in TEXT_COLUMNS else None if v == "" else bool(int(v)) if c == "lying" else float(v)
                         for c, v in zip(cols, row)])
    return cols, rows


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet(findings, out_dir: str | Path) -> dict[str, Path]:
    """Write ``angles.parquet``, ``episodes.parquet`` and ``jolts.parquet`` into ``out_dir``.

    Raises:
        ExportError: pyarrow is not installed, or inconsistent findings.
        OSError: the folder cannot be created or written.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("Parquet export needs pyarrow: pip install 'nape[parquet]' (or pip install pyarrow)") from None
    out_dir = Path(out_dir)
    safe_write.make_folder(out_dir)
    paths = {}
    for name, (cols, rows) in tables(findings).items():
        arrays = []
        for k, c in enumerate(cols):
            kind = pa.string() if c in TEXT_COLUMNS else pa.bool_() if c == "lying" else pa.float64()
            arrays.append(pa.array([r[k] for r in rows], type=kind))
        table = pa.Table.from_arrays(arrays, names=list(cols))
        table = table.replace_schema_metadata({"source": str(findings.path), "producer": "nape export"})
        p = out_dir / f"{name}.parquet"
        safe_write.write_with(p, lambda tmp, table=table: pq.write_table(table, tmp))
        paths[name] = p
    return paths
