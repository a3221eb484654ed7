"""Run ``nape cohort`` on a Slurm (or PBS) batch cluster with dask-jobqueue.

The batch system starts the Dask workers as jobs; the scheduler runs here (a login or
head node); the work is the same library call as ``nape cohort``
(:func:`nape.cohort.run_cohort`). Every node must see the recordings and ``OUT`` at the
same paths (shared storage) and run the same Python environment with nape installed
(``pip install 'nape[cohort]'``).

Usage::

    python docs/cohort_slurm.py study.csv /shared/study-cohort --host 10.1.0.5 --jobs 8 --cores 8 \\
        --memory 16GB --walltime 02:00:00 --queue normal --account myproject [--pseudonymise]
    python docs/cohort_slurm.py study.csv /shared/study-cohort --pbs ...      # PBS / Torque
    python docs/cohort_slurm.py study.csv /tmp/x --dry-run                   # print the job script only

Each job runs ``--cores`` single-threaded worker processes with ``--memory`` shared among
them (one analysis needs well under 1 GiB); ``--jobs`` jobs give jobs × cores workers.
"""

from __future__ import annotations

import argparse
import sys


def make_cluster(args):
    """A dask-jobqueue cluster: one single-threaded worker process per core of each job."""
    from dask_jobqueue import PBSCluster, SLURMCluster

    cls = PBSCluster if args.pbs else SLURMCluster
    return cls(cores=args.cores, processes=args.cores, memory=args.memory, walltime=args.walltime,
               queue=args.queue, account=args.account, python=sys.executable,
               scheduler_options={"host": args.host, "dashboard": False}, job_name="nape-cohort")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("source", help="folder of .nape files or CSV manifest path,wearer,group[,label] (shared storage)")
    ap.add_argument("out", help="output folder on shared storage")
    ap.add_argument("--jobs", type=int, default=4, help="batch jobs to start (default 4)")
    ap.add_argument("--cores", type=int, default=4, help="cores per job = worker processes per job (default 4)")
    ap.add_argument("--memory", default="8GB", help="memory per job (default 8GB)")
    ap.add_argument("--walltime", default="02:00:00", help="job wall time (default 02:00:00)")
    ap.add_argument("--queue", help="partition / queue")
    ap.add_argument("--account", help="account / project to charge")
    ap.add_argument("--host", help="address the scheduler listens on: this node's address on the network the compute "
                    "nodes reach (required unless --dry-run, which uses 127.0.0.1)")
    ap.add_argument("--pbs", action="store_true", help="PBS / Torque instead of Slurm")
    ap.add_argument("--pseudonymise", action="store_true", help="pseudonymous wearer ids in tables and report")
    ap.add_argument("--dry-run", action="store_true", help="print the job script and stop (no jobs submitted)")
    args = ap.parse_args(argv)
    if args.dry_run and not args.host:
        args.host = "127.0.0.1"
    if not args.host:
        ap.error("--host is required: the address of this node that the compute nodes can reach")

    from distributed import Client

    from nape.cohort import run_cohort

    cluster = make_cluster(args)
    try:
        if args.dry_run:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.jobs)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=3600)  # the queue decides when jobs start

            def progress(done, total, res):
                print(f"{done}/{total} {res['recording_id']}: {res['status']}"
                      + (f" ({res['reason']})" if res.get("reason") else ""), flush=True)

            run = run_cohort(args.source, args.out, client, pseudonymise=args.pseudonymise, on_result=progress)
        print(f"{run.counts}; cohort report: {run.paths['html']}")
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
