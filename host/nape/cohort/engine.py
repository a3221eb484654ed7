"""Running a cohort on Dask distributed: a local cluster by default, any cluster by address.

:func:`run_cohort` plans the tasks (one per recording, :func:`nape.cohort.task.analyse_entry`),
submits them to a :class:`distributed.Client` — largest files first, so the last tasks are
short and workers finish together — with ``retries`` (a worker killed mid-task costs only
that task: the scheduler moves it to another worker, up to distributed's
``allowed-failures`` worker deaths, then Dask retries it), collects the small results as
they complete (:func:`distributed.as_completed`), records each in the resume state, then
merges the table parts and computes the cohort figures through DuckDB
(:mod:`nape.cohort.figures`).

The workers must see ``OUT`` and the recordings at the same paths as the client (one
machine, or shared storage on a cluster); recordings may also be fsspec URLs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import NapeError
from ..settings import AnalysisSettings
from . import features, store
from .manifest import Entry, is_url, read_entries
from .task import TaskSpec, analyse_entry, one_line, write_parts

DEFAULT_RETRIES = 2
CONNECT_TIMEOUT_S = 20.0
WORKER_WAIT_S = 60.0


class CohortError(NapeError):
    """The cohort cannot run (no cluster, no workers, unusable output)."""


@dataclass
class CohortRun:
    """What one run did: every recording's result, counts, and the files written."""

    out: Path
    results: dict[str, dict]  # recording id → task result
    counts: dict[str, int]
    seconds: float
    recorded_hours: float  # hours of recordings analysed in this run (not skipped)
    cohort: dict = field(default_factory=dict)  # cohort.json
    paths: dict[str, Path] = field(default_factory=dict)


def versions() -> dict:
    """Everything besides the settings that decides a recording's results (in the settings hash)."""
    from ..report import REPORT_VERSION

    return {"nape": __version__, "report": REPORT_VERSION, "features": FEATURES_VERSION, "epoch_s": features.EPOCH_S}


FEATURES_VERSION = 1  # bump when a table's schema or a feature's definition changes: reruns then redo every recording


def local_cluster(workers: int = 0, memory_limit: str | float = "auto"):
    """A Dask ``LocalCluster`` on this machine: one single-threaded worker process per core
    (or ``workers``), listening on 127.0.0.1 only, no dashboard.

    Raises:
        CohortError: the cluster cannot start.
    """
    from distributed import LocalCluster

    n = workers or os.cpu_count() or 1
    try:
        # the scheduler's HTTP server (health routes) always starts: on a free loopback port, not 8787
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None,  # type: ignore[arg-type]  # None: no dashboard
                            memory_limit=memory_limit, silence_logs=logging.ERROR,
                            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
    except (OSError, RuntimeError) as e:
        raise CohortError(f"cannot start a local Dask cluster: {one_line(e)}") from None


def connect(address: str, timeout_s: float | None = None, wait_s: float | None = None):
    """A client of the Dask scheduler at ``address`` (e.g. ``tcp://127.0.0.1:8786``) with at
    least one worker.

    Raises:
        CohortError: no scheduler answers there within ``timeout_s`` (default
            ``CONNECT_TIMEOUT_S``), or it has no worker within ``wait_s`` (``WORKER_WAIT_S``).
    """
    from distributed import Client

    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    wait_s = WORKER_WAIT_S if wait_s is None else wait_s
    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as e:
        raise CohortError(f"no Dask scheduler at {address}: {one_line(e)}") from None
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError:
        client.close()
        raise CohortError(f"the Dask scheduler at {address} has no workers (waited {wait_s:g} s); "
                          "start some with: dask worker " + address) from None
    return client


def _size(path: str) -> int:
    if is_url(path):
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def plan(entries: list[Entry], out: Path, key: bytes, pseudonymise: bool) -> list[dict]:
    """The manifest table joined to every part: recording id, wearer (or pseudonym), group,
    label, path (None when pseudonymised), manifest line — largest recordings first."""
    rows = []
    for e in entries:
        rows.append({"recording_id": store.recording_id(key, e.path),
                     "wearer": store.pseudonym(key, e.wearer) if pseudonymise else e.wearer,
                     "group": e.group, "label": e.label, "path": None if pseudonymise else e.path,
                     "manifest_line": e.line or None, "_path": e.path, "_size": _size(e.path)})
    rows.sort(key=lambda r: -r["_size"])
    return rows


def run_cohort(source: str | Path, out: str | Path, client, settings: AnalysisSettings | None = None, *,
               pseudonymise: bool = False, force: bool = False, retries: int = DEFAULT_RETRIES,
               html: bool = False, on_result: Callable[[int, int, dict], None] | None = None) -> CohortRun:
    """Analyse every recording of ``source`` (folder or CSV manifest) on ``client``'s cluster
    and write the cohort into ``out``.

    Args:
        source: folder of .nape files or CSV manifest (:mod:`nape.cohort.manifest`).
        out: output folder (:mod:`nape.cohort.store`).
        client: a :class:`distributed.Client`.
        settings: analysis settings (:mod:`nape.settings`).
        pseudonymise: wearer ids replaced by keyed pseudonyms, paths left out of the tables
            and the cohort report.
        force: analyse again even recordings unchanged since the last run.
        html: also write each recording's HTML report (about 5 MB each; the JSON always).
        retries: Dask retries per task after a lost worker.
        on_result: called after each task with (done, total, result).

    Raises:
        ManifestError: unusable source; CohortError / OutputError: unusable output;
        OSError: the output cannot be written.
    """
    from distributed import as_completed

    t0 = time.perf_counter()
    s = settings or AnalysisSettings()
    entries = read_entries(source)
    out = store.prepare(Path(out))
    key = store.cohort_key(out)
    state = store.State(out)
    # what the task writes depends on these too: a change analyses every recording again
    settings_sha = store.settings_sha256(s.as_dict(), versions() | {"html": html, "pseudonymise": pseudonymise})
    rows = plan(entries, out, key, pseudonymise)
    futures = {}
    for i, r in enumerate(rows):
        spec = TaskSpec(r["recording_id"], r["_path"], str(out.resolve()), s, settings_sha,
                        state.done.get(r["recording_id"]), force, pseudonymise, html)
        fut = client.submit(analyse_entry, spec, key=f"nape-cohort-{r['recording_id']}-{os.urandom(4).hex()}",
                            pure=False, retries=retries, priority=len(rows) - i)
        futures[fut] = r["recording_id"]
    results: dict[str, dict] = {}
    for done, fut in enumerate(as_completed(list(futures)), 1):
        rid = futures[fut]
        try:
            res = fut.result()
        except Exception as e:  # noqa: BLE001 - lost workers, cancelled tasks: this recording only
            res = _lost(out, rid, settings_sha, e)
        fut.release()
        results[rid] = res
        if res["status"] in ("analysed", "failed"):
            state.record({k: res.get(k) for k in ("recording_id", "status", "reason", "content_sha256",
                                                  "settings_sha256", "kind", "duration_s")})
        elif res["status"] == "lost":
            state.forget(rid)
        if on_result:
            on_result(done, len(rows), res)
    state.compact()
    from . import figures

    manifest = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    paths = figures.merge_tables(out, manifest)
    counts = {k: sum(1 for r in results.values() if r["status"] == k) for k in ("analysed", "unchanged", "failed", "lost")}
    hours = sum((r.get("duration_s") or 0.0) for r in results.values() if r["status"] == "analysed") / 3600
    run = CohortRun(out, results, counts, time.perf_counter() - t0, hours)
    cohort = figures.cohort_figures(out, s, {"source": str(Path(source).resolve()), "pseudonymised": pseudonymise,
                                             "settings_sha256": settings_sha, "versions": versions(),
                                             "run": {"counts": counts, "seconds": round(run.seconds, 2),
                                                     "recorded_hours_analysed": round(hours, 4)}})
    run.cohort = cohort
    run.paths = paths | figures.write_cohort_report(out, cohort)
    return run


def _lost(out: Path, rid: str, settings_sha: str, e: BaseException) -> dict:
    """The result of a task whose workers kept dying (or that was cancelled): listed as
    failed with its reason, and not remembered, so the next run tries it again."""
    name = type(e).__name__
    if name == "KilledWorker":
        reason = "the workers analysing it died repeatedly (killed, or out of memory); it will be tried again next run"
    else:
        reason = f"the task was lost ({name}: {' '.join(str(e).split())[:200]}); it will be tried again next run"
    try:
        write_parts(out, rid, {"recordings": [features.failed_row(rid, reason)]})
    except OSError:
        pass
    return {"recording_id": rid, "status": "lost", "reason": reason, "settings_sha256": settings_sha,
            "content_sha256": None, "kind": None, "duration_s": None, "analysis_s": 0.0}
