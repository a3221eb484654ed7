"""One cohort task: analyse one recording on a worker and write its report and table parts.

:func:`analyse_entry` runs on a Dask worker (or anywhere): it hashes the file, skips it
when an earlier run already analysed the same bytes with the same settings, else runs the
existing pure analysis (:func:`nape.analysis.analyse`, or :func:`nape.analysis.rom.analyse_rom`
for a guided range-of-motion test), writes the report (``OUT/reports/RID.html`` and
``.json``) and its rows of every table (``OUT/parts/TABLE/RID.parquet``), and returns a
small summary. Memory stays that of one analysis (chunked; a 10-hour recording needs a
few hundred MiB); nothing big travels back to the client.

A recording that cannot be analysed — missing, damaged beyond reading, or crashing the
analysis — gives ``status = "failed"`` and a one-line reason; the task itself does not raise.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from .. import safe_write
from ..errors import NapeError
from . import features
from .manifest import is_url
from .store import TABLES, file_sha256

if TYPE_CHECKING:
    from ..settings import AnalysisSettings

MAX_REASON_CHARS = 300


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a worker needs for one recording (small; pickled to the worker)."""

    recording_id: str
    path: str
    out: str
    settings: AnalysisSettings
    settings_sha256: str
    known: dict | None = None  # the state of an earlier run, to skip unchanged recordings
    force: bool = False
    pseudonymise: bool = False
    html: bool = False  # also each recording's HTML report (~5 MB each: plotly inlined)


def one_line(e: BaseException) -> str:
    """A one-line reason for a failure: the message, or the error type and where it happened."""
    text = " ".join(str(e).split()) or type(e).__name__
    if not isinstance(e, (NapeError, OSError)):
        frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        where = f" in {Path(frame.filename).name}:{frame.lineno}" if frame else ""
        text = f"the analysis failed ({type(e).__name__}{where}): {text}"
    return text[:MAX_REASON_CHARS]


@contextmanager
def local_copy(path: str):
    """A local file for ``path``: the file itself, or a URL copied through fsspec into a
    temporary file (streamed; removed afterwards)."""
    if not is_url(path):
        yield Path(path)
        return
    import fsspec

    fd, tmp = tempfile.mkstemp(suffix=".nape", prefix="nape-cohort-")
    try:
        with os.fdopen(fd, "wb") as dst, fsspec.open(path, "rb") as src:
            while block := src.read(1 << 20):  # type: ignore[union-attr]  # streamed: bounded memory
                dst.write(block)
        yield Path(tmp)
    finally:
        os.unlink(tmp)


def analyse_entry(spec: TaskSpec) -> dict:
    """Analyse one recording (see the module docstring). Never raises for a bad recording.

    Returns:
        ``{"recording_id", "status": "analysed" | "unchanged" | "failed", "reason",
        "content_sha256", "settings_sha256", "kind", "duration_s", "analysis_s"}`` (and
        ``cpu_s``, the task's CPU seconds, when analysed).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    out = Path(spec.out)
    base = {"recording_id": spec.recording_id, "settings_sha256": spec.settings_sha256, "reason": None,
            "content_sha256": None, "kind": None, "duration_s": None, "analysis_s": 0.0}
    shown = f"{spec.recording_id}.nape" if spec.pseudonymise else spec.path  # the path reports name
    local = None
    try:
        with local_copy(spec.path) as local:
            sha = file_sha256(local)
            base["content_sha256"] = sha
            known = spec.known or {}
            if (not spec.force and known.get("content_sha256") == sha
                    and known.get("settings_sha256") == spec.settings_sha256
                    and known.get("status") in ("analysed", "failed")
                    and (out / "parts" / "recordings" / f"{spec.recording_id}.parquet").exists()):
                return base | {k: known.get(k) for k in ("reason", "kind", "duration_s")} | {
                    "status": "unchanged", "previous_status": known.get("status")}
            result = _analyse(local, spec, sha, t0)
            result["cpu_s"] = time.process_time() - c0
    except Exception as e:  # noqa: BLE001 - a bad recording must not stop the cohort
        reason = one_line(e)
        for p in {str(x) for x in (local, spec.path) if x is not None}:  # no raw path behind a pseudonym
            reason = reason.replace(p, shown)
        write_parts(out, spec.recording_id, {"recordings": [features.failed_row(spec.recording_id, reason,
                                                                               base["content_sha256"])]})
        return base | {"status": "failed", "reason": reason, "analysis_s": time.perf_counter() - t0}
    return base | result


def _analyse(local: Path, spec: TaskSpec, sha: str, t0: float) -> dict:
    from ..recording import open_recording

    rec = open_recording(local)
    out = Path(spec.out)
    rid = spec.recording_id
    shown = f"{rid}.nape" if spec.pseudonymise else spec.path  # the path the report names
    if "rom_protocol" in rec.metadata:
        from ..analysis.rom import analyse_rom
        from ..report.rom import render_rom_html

        r = analyse_rom(local, spec.settings)
        r = dataclasses.replace(r, path=shown)
        reports = write_report(out, rid, r.to_dict(), (lambda: render_rom_html(r)) if spec.html else None)
        row = features.rom_recording_row(r, rid, sha, reports, time.perf_counter() - t0)
        row["closed_cleanly"] = rec.closed_cleanly
        write_parts(out, rid, {"recordings": [row], "rom": features.rom_rows(r, rid)})
        return {"status": "analysed", "kind": "rom", "duration_s": r.duration_s, "analysis_s": row["analysis_s"]}
    from ..analysis import analyse
    from ..report import render_html, to_json

    f = analyse(local, spec.settings)
    f = dataclasses.replace(f, path=shown)
    reports = write_report(out, rid, to_json(f), (lambda: render_html(f)) if spec.html else None)
    row = features.recording_row(f, rid, sha, reports, time.perf_counter() - t0)
    row["closed_cleanly"] = rec.closed_cleanly
    row["damaged"] = row["damaged"] or not rec.closed_cleanly
    write_parts(out, rid, {"recordings": [row], "epochs": features.epoch_rows(f, rid),
                           "episodes": features.episode_rows(f, rid), "jolts": features.jolt_rows(f, rid)})
    return {"status": "analysed", "kind": "everyday", "duration_s": f.duration_s, "analysis_s": row["analysis_s"]}


def write_report(out: Path, rid: str, report: dict, html=None) -> dict[str, str]:
    """Write ``reports/RID.json`` (the JSON report) and, when ``html`` (a function giving the
    page) is given, ``reports/RID.html``; returns their paths relative to ``out``.

    Raises:
        OSError: the files cannot be written.
    """
    import json

    paths = {"json": Path("reports") / f"{rid}.json"}
    texts = {"json": json.dumps(report, indent=1, allow_nan=False, default=_plain)}
    if html is not None:
        paths["html"] = Path("reports") / f"{rid}.html"
        texts["html"] = html()
    for kind, rel in paths.items():
        safe_write.check_target(out / rel)
        tmp = out / rel.with_name(f".{rel.name}.{os.getpid()}.tmp")
        tmp.write_text(texts[kind], encoding="utf-8")
        os.replace(tmp, out / rel)
    if html is None:
        (out / "reports" / f"{rid}.html").unlink(missing_ok=True)  # an earlier run's page would be stale
    return {k: str(v) for k, v in paths.items()}


def _plain(o):
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(type(o).__name__)


def write_parts(out: Path, rid: str, rows: dict[str, list[dict]]) -> None:
    """Replace the recording's part of every table (atomically; tables without rows lose
    any part an earlier run left).

    Raises:
        OSError: the output folder cannot be written.
    """
    for name in TABLES:
        path = Path(out) / "parts" / name / f"{rid}.parquet"
        if not rows.get(name):
            path.unlink(missing_ok=True)
            continue
        safe_write.check_target(path)
        tmp = path.with_name(f".{rid}.{os.getpid()}.tmp")
        pq.write_table(features.table(name, rows[name]), tmp)
        os.replace(tmp, path)
