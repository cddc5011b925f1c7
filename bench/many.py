"""fit_many on 2 local dask workers vs a sequential loop in one process: 40 small power-law fits.

Each job: the `power` law on its own simulated data set (design_runs, 40 runs), draws=300, tune=300,
chains=2, fitted, saved to netCDF and summarised, i.e. exactly `bayescale.many.run_job` in both arms.
The sequential arm runs in this process (one compile, then 39 cached refits); the parallel arm starts a
LocalCluster(n_workers=2, threads_per_worker=1, processes=True); each worker loads the compiled law. Wall
times include those compiles; cluster start-up is reported separately and included in the total.
Writes bench/results/many.md and prints it.

Usage: python bench/many.py [--jobs 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import bayescale as bs
from bayescale.many import run_job
from bayescale.simulate import design_runs

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = dict(draws=300, tune=300, chains=2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    jobs = [
        {"name": f"power-{i:02d}", "law": "power", "data": design_runs("power", seed=i), "seed": i, **SETTINGS}
        for i in range(args.jobs)
    ]

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        seq_rows = []
        for job in jobs:
            seq_rows.append(run_job(job, str(Path(tmp) / "sequential")))
            print(f"sequential {job['name']}: {seq_rows[-1]['status']} {seq_rows[-1]['seconds']:.1f} s", flush=True)
        sequential = time.perf_counter() - start

        from dask.distributed import Client, LocalCluster

        start = time.perf_counter()
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(args.workers)
            startup = time.perf_counter() - start
            t = time.perf_counter()
            summary = bs.fit_many(jobs, client=client, out_dir=Path(tmp) / "parallel", progress=True)
            fits = time.perf_counter() - t
        parallel = startup + fits

    seq_ok = sum(r["status"] == "ok" for r in seq_rows)
    par_ok = int((summary.status == "ok").sum())
    seq_first, seq_rest = seq_rows[0]["seconds"], statistics.median(r["seconds"] for r in seq_rows[1:])
    par_median = float(summary.seconds.median())
    lines = [
        "| arm | total wall (s) | of which cluster start-up (s) | jobs ok | per-job time, median (s) | speed-up |",
        "|---|---|---|---|---|---|",
        f"| sequential loop, 1 process | {sequential:.1f} | - | {seq_ok}/{len(jobs)} | {seq_rest:.2f} "
        f"(first, with compile: {seq_first:.1f}) | 1.00x |",
        f"| fit_many, {args.workers} local workers | {parallel:.1f} | {startup:.1f} | {par_ok}/{len(jobs)} | "
        f"{par_median:.2f} (in the workers, incl. each worker's compile) | {sequential / parallel:.2f}x |",
        f"| fit_many, excluding cluster start-up | {fits:.1f} | - | | | {sequential / fits:.2f}x |",
    ]
    notes = [
        "",
        f"{len(jobs)} jobs: power law, 40 simulated runs each, draws={SETTINGS['draws']}, tune={SETTINGS['tune']}, "
        f"chains={SETTINGS['chains']}; every job is fitted, saved to netCDF and summarised in both arms.",
        "In the loop each fit splits its chains over this process and a forked one, so the loop uses both cores "
        "too; in fit_many each worker (a daemon process, which may not fork) samples a fit's chains itself and "
        "loads the compiled law from the disk cache instead of compiling it.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"at the end {os.getloadavg()[0]:.1f} "
        f"Date: {time.strftime('%Y-%m-%d')}.",
    ]
    text = "# fit_many: 2 local dask workers vs a sequential loop\n\n" + "\n".join(lines + notes) + "\n"
    (ROOT / "bench" / "results" / "many.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
