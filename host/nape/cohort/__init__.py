"""Cohorts: many wearers' recordings analysed on Dask distributed, figures through DuckDB.

``run_cohort(source, out, client)`` analyses every recording of a folder or CSV manifest
(:mod:`.manifest`) as one Dask task each (:mod:`.task`: the existing pure analysis and
report writer), writes per-recording, per-minute, episode, jolt and range-of-motion tables
to Parquet (:mod:`.features`), and the cohort report ``cohort.json`` / ``cohort.html``
from those files through DuckDB (:mod:`.figures`; the page is :mod:`nape.report.cohort`). Reruns skip recordings
whose bytes and settings are unchanged (:mod:`.store`).

Needs the ``cohort`` extra: ``pip install 'nape[cohort]'`` (dask[distributed], duckdb, pyarrow).
"""

from .engine import CohortError, CohortRun, connect, local_cluster, run_cohort
from .manifest import Entry, ManifestError, read_entries

__all__ = ["CohortError", "CohortRun", "Entry", "ManifestError", "connect", "local_cluster", "read_entries",
           "run_cohort"]
