"""``nape cohort``: many wearers' recordings on Dask, with a progress bar (the CLI side of
:mod:`nape.cohort`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import NapeError
from .common import NONNEG_INT, add_settings_arguments, console, err_console, progress, settings_from_args

NEEDS = "nape cohort needs Dask, DuckDB and pyarrow: pip install 'nape[cohort]'"


def _check_extra() -> None:
    """One line naming what to install when the ``cohort`` extra is missing."""
    try:
        import distributed  # noqa: F401
        import duckdb  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise NapeError(f"{NEEDS} (missing: {e.name})") from None


def cmd_cohort(args) -> int:
    """Analyse every recording of a folder or CSV manifest on Dask and write a cohort report."""
    _check_extra()
    from ..cohort import connect, local_cluster, read_entries, run_cohort
    from ..cohort.store import prepare

    settings = settings_from_args(args)
    entries = read_entries(args.source)  # one line on a bad manifest, before any cluster starts
    prepare(Path(args.out))
    out, err = console, err_console()
    cluster = None
    if args.scheduler:
        client = connect(args.scheduler)
        where = f"the Dask cluster at {args.scheduler}"
    else:
        cluster = local_cluster(args.workers)
        from distributed import Client

        client = Client(cluster)
        where = f"a local Dask cluster ({len(cluster.workers)} workers on 127.0.0.1)"
    try:
        err.print(f"{len(entries)} recordings → {where}")
        with progress(counted=True, on=err) as prog:
            task = prog.add_task("analysing recordings", total=len(entries))

            def on_result(done, total, res):
                prog.update(task, completed=done, total=total)

            run = run_cohort(args.source, args.out, client, settings, pseudonymise=args.pseudonymise,
                             force=args.force, retries=args.retries, html=args.html, on_result=on_result)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    c = run.counts
    failed = [r for r in run.cohort["recordings"] if r["status"] == "failed"]
    out.print(f"{c['analysed']} analysed, {c['unchanged']} unchanged since the last run (skipped), "
              f"{len(failed)} not analysed; {run.recorded_hours:.2f} recorded hours analysed in {run.seconds:.1f} s",
              soft_wrap=True)
    for r in failed:  # this run's failures and earlier ones of unchanged files
        out.print(f"  not analysed: {r['path'] or r['recording_id']} ({r['wearer']}): {r['failure_reason']}",
                  soft_wrap=True, markup=False)
    out.print(f"[bold]cohort report:[/bold] {run.paths['html'].resolve()}", soft_wrap=True)
    out.print(f"json:    {run.paths['json'].resolve()}", soft_wrap=True)
    out.print(f"tables:  {', '.join(p.name for k, p in run.paths.items() if k not in ('html', 'json'))} "
              f"in {run.out.resolve()}", soft_wrap=True)
    return 0


def register(sub, formatter) -> None:
    """Add ``cohort``."""
    p = sub.add_parser(
        "cohort", help="analyse many wearers' recordings on Dask (laptop or cluster) and write a cohort report",
        description=(cmd_cohort.__doc__ or "") + "\n\nSOURCE is a folder of .nape files (DIR/GROUP/WEARER/*.nape, "
        "DIR/WEARER/*.nape or DIR/*.nape) or a CSV manifest with lines path,wearer,group[,label]. OUT gets one "
        "report per recording, recordings/epochs/episodes/jolts/rom.parquet, cohort.json and cohort.html. A rerun "
        "skips recordings whose bytes and settings are unchanged. Needs: pip install 'nape[cohort]'.",
        formatter_class=formatter,
        epilog="example:\n  nape cohort recordings/ --out cohort/\n"
               "  nape cohort study.csv --out study-cohort/ --pseudonymise\n"
               "  nape cohort study.csv --out study-cohort/ --scheduler tcp://127.0.0.1:8786\n"
               "  nape cohort recordings/ --out cohort/ --workers 2 --set neck_flexion_deg=25")
    p.add_argument("source", help="folder of .nape recordings, or CSV manifest path,wearer,group[,label]")
    p.add_argument("--out", required=True, help="output folder for the cohort (created; reused by reruns)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on this existing Dask cluster (default: a local cluster, one worker per core)")
    p.add_argument("--workers", type=NONNEG_INT, default=0, help="local cluster: worker processes (default 0: one per core)")
    p.add_argument("--retries", type=NONNEG_INT, default=2, help="Dask retries of a task after a lost worker (default 2)")
    p.add_argument("--pseudonymise", "--pseudonymize", action="store_true",
                   help="replace wearer ids by stable pseudonyms and leave file paths out of tables and report")
    p.add_argument("--html", action="store_true",
                   help="also write each recording's HTML report (about 5 MB each; the JSON report is always written)")
    p.add_argument("--force", action="store_true", help="analyse every recording again, even unchanged ones")
    add_settings_arguments(p)
    p.set_defaults(func=cmd_cohort)
