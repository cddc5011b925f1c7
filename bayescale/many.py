"""`fit_many`: run many independent fits on a dask.distributed cluster and collect a summary table.

Each job is one call of `bayescale.fit` in a worker process; its posterior is saved to
`out_dir/<name>.nc` (atomically, via `Fit.save`) and a summary row comes back. A job that fails is
reported in its row (status "error" and the error text) and never stops the others.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data import ScalingData
from bayescale.errors import BayescaleError

REQUIRED = ("name", "law", "data")
FIT_KEYS = (
    "draws",
    "tune",
    "chains",
    "seed",
    "likelihood",
    "nu",
    "groups",
    "pooling",
    "sampler",
    "flops_per_token_param",
)
INT_KEYS = ("draws", "tune", "chains", "seed")
DEFAULTS = {"chains": 2}
SUMMARY_COLUMNS = [
    "name",
    "law",
    "status",
    "error",
    "seconds",
    "path",
    "divergences",
    "max_rhat",
    "min_ess_bulk",
    "problems",
]
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def normalise_jobs(jobs: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[dict[str, Any]]:
    """Check job specs before anything runs; a bad spec raises a BayescaleError naming the job and the key."""
    if isinstance(jobs, pd.DataFrame):
        jobs = jobs.to_dict("records")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, job in enumerate(jobs):
        if not isinstance(job, Mapping):
            raise BayescaleError(f"job {i}: must be a dict with keys {list(REQUIRED)}, got {type(job).__name__}")
        job = {k: v for k, v in job.items() if not _missing(v)}
        label = f"job {i}" + (f" ({job['name']!r})" if "name" in job else "")
        missing = [k for k in REQUIRED if k not in job]
        if missing:
            raise BayescaleError(f"{label}: missing key(s) {missing}; every job needs {list(REQUIRED)}")
        unknown = sorted(set(job) - {*REQUIRED, "columns", *FIT_KEYS})
        if unknown:
            raise BayescaleError(f"{label}: unknown key(s) {unknown}; allowed: {[*REQUIRED, 'columns', *FIT_KEYS]}")
        name = job["name"]
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise BayescaleError(
                f"{label}: name must be a non-empty string of letters, digits, '.', '_' or '-' (it names the "
                f"saved file), got {name!r}"
            )
        if name in seen:
            raise BayescaleError(f"{label}: name {name!r} is used by more than one job")
        seen.add(name)
        data = job["data"]
        if not isinstance(data, ScalingData | pd.DataFrame | str | Path):
            raise BayescaleError(
                f"{label}: data must be a ScalingData, a DataFrame or a CSV path, got {type(data).__name__}"
            )
        if "columns" in job:
            if isinstance(data, ScalingData):
                raise BayescaleError(
                    f"{label}: 'columns' maps CSV/DataFrame columns to roles; this data is already a ScalingData"
                )
            if not isinstance(job["columns"], Mapping):
                raise BayescaleError(f"{label}: columns must be a dict role -> column, got {job['columns']!r}")
        for key in INT_KEYS:
            if key in job:
                value = job[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float | np.integer | np.floating)
                    or float(value) != int(value)
                ):
                    raise BayescaleError(f"{label}: {key} must be a whole number, got {value!r}")
                job[key] = int(value)
        if isinstance(job["law"], Path):
            job["law"] = str(job["law"])
        out.append(job)
    if not out:
        raise BayescaleError("fit_many: no jobs given")
    return out


def _error_row(job: Mapping[str, Any], message: str, seconds: float = float("nan")) -> dict[str, Any]:
    return {
        "name": job["name"],
        "law": str(job["law"]),
        "status": "error",
        "error": message,
        "seconds": seconds,
        "path": "",
        "divergences": np.nan,
        "max_rhat": np.nan,
        "min_ess_bulk": np.nan,
        "problems": "",
    }


def run_job(job: Mapping[str, Any], out_dir: str | None) -> dict[str, Any]:
    """One job, in whichever process runs it: read the data, fit, save, summarise. Never raises."""
    start = time.perf_counter()
    try:
        import bayescale as bs
        from bayescale.diagnostics import SamplingWarning

        data = job["data"]
        if isinstance(data, str | Path):
            data = ScalingData.from_csv(data, columns=job.get("columns"))
        elif isinstance(data, pd.DataFrame):
            data = ScalingData.from_frame(data, columns=job.get("columns"), origin=f"job {job['name']!r}")
        kwargs = {**DEFAULTS, **{k: job[k] for k in FIT_KEYS if k in job}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)  # the same problems are in the summary row
            result = bs.fit(job["law"], data, progress=False, **kwargs)
        path = result.save(Path(out_dir) / f"{job['name']}.nc") if out_dir else None
        report = result.diagnostics
        row = {
            "name": job["name"],
            "law": result.law.name,
            "status": "ok",
            "error": "",
            "seconds": time.perf_counter() - start,
            "path": str(path) if path else "",
            "divergences": report["divergences"],
            "max_rhat": report["max_rhat"],
            "min_ess_bulk": report["min_ess_bulk"],
            "problems": " | ".join(report["problems"]),
        }
        for name in result.var_names:
            draws = result.draws(name)
            if draws.ndim == 1:
                row[f"median_{name}"] = float(np.median(draws))
            else:
                for group, value in zip(result.spec.groups, np.median(draws, axis=0), strict=True):
                    row[f"median_{name}[{group}]"] = float(value)
        return row
    except Exception as exc:  # noqa: BLE001 - a failing job is reported in its row, never raised
        return _error_row(job, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)


def fit_many(
    jobs: Iterable[Mapping[str, Any]] | pd.DataFrame,
    client: Any = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    n_workers: int | None = None,
) -> pd.DataFrame:
    """Fit many (law, data) jobs in parallel on dask.distributed and return one summary row per job.

    `jobs`: dicts (or DataFrame rows) with `name` (the job id and file name), `law` (catalogue name or TOML
    path), `data` (a ScalingData or DataFrame, or a CSV path with an optional `columns` role -> column
    mapping), and optional fit options draws, tune, chains (default 2), seed, likelihood, nu, groups, pooling,
    sampler, flops_per_token_param. Every fit runs with progress=False.

    `client`: a `dask.distributed.Client` to submit to, used as is. Without one, a LocalCluster of
    `n_workers` (default: os.cpu_count()) single-threaded worker processes is started and closed afterwards.

    `out_dir`: each successful fit is saved to `out_dir/<name>.nc`; without it nothing is written.

    Returns a DataFrame in job order: name, law, status ("ok"/"error"), error, seconds, path, divergences,
    max_rhat, min_ess_bulk, problems (sampling diagnostics in words) and median_<param> per parameter.
    """
    specs = normalise_jobs(jobs)
    out = None
    if out_dir is not None:
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        out = str(out)
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if client is None:
        cluster = LocalCluster(
            n_workers=n_workers or os.cpu_count() or 2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    rows: dict[str, dict[str, Any]] = {}
    try:
        futures = {}
        for job in specs:
            key = f"bayescale-fit-{job['name']}-{uuid.uuid4().hex[:8]}"
            futures[client.submit(run_job, job, out, key=key, pure=False)] = job
        with _Progress(len(futures), enabled=progress) as bar:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # noqa: BLE001 - e.g. the worker process died mid-fit
                    row = _error_row(job, f"{type(exc).__name__}: {exc}")
                rows[job["name"]] = row
                bar.advance(row)
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    table = pd.DataFrame([rows[job["name"]] for job in specs])
    extra = [c for c in table.columns if c not in SUMMARY_COLUMNS]
    return table.reindex(columns=[*SUMMARY_COLUMNS, *extra])


class _Progress:
    """A rich progress bar on stderr (or nothing), advanced as jobs finish."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.failed = total, enabled, 0
        self._bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("fit_many"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total)
        return self

    def advance(self, row: Mapping[str, Any]) -> None:
        self.failed += row["status"] != "ok"
        if self._bar is not None:
            note = f"last: {row['name']} {row['status']}" + (f", {self.failed} failed" if self.failed else "")
            self._bar.update(self._task, advance=1, description=note)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


CSV_OPTIONS = ("draws", "tune", "chains", "seed", "likelihood", "nu")


def jobs_from_csv(path: str | Path) -> list[dict[str, Any]]:
    """Jobs from a CSV with columns name, law, csv and col_<ROLE> (e.g. col_N=params), plus optional
    draws, tune, chains, seed, likelihood, nu. Relative data paths are taken relative to the jobs file."""
    path = Path(path)
    if not path.is_file():
        raise BayescaleError(f"jobs file {path} does not exist")
    table = pd.read_csv(path, dtype={"name": str, "law": str, "csv": str})
    missing = [c for c in ("name", "law", "csv") if c not in table.columns]
    if missing:
        raise BayescaleError(f"jobs file {path}: missing column(s) {missing}; it has {list(table.columns)}")
    unknown = [c for c in table.columns if c not in ("name", "law", "csv", *CSV_OPTIONS) and not c.startswith("col_")]
    if unknown:
        raise BayescaleError(
            f"jobs file {path}: unknown column(s) {unknown}; allowed: name, law, csv, "
            f"col_<ROLE> (e.g. col_N), {', '.join(CSV_OPTIONS)}"
        )
    jobs = []
    for i, row in enumerate(table.to_dict("records")):
        for key in ("name", "law", "csv"):
            if _missing(row[key]):
                raise BayescaleError(f"jobs file {path}: row {i} (CSV line {i + 2}) has no {key!r}")
        data = Path(row["csv"])
        job: dict[str, Any] = {
            "name": row["name"],
            "law": row["law"],
            "data": str(data if data.is_absolute() else path.parent / data),
        }
        columns = {c[4:]: str(v) for c, v in row.items() if c.startswith("col_") and not _missing(v)}
        if columns:
            job["columns"] = columns
        job.update({k: row[k] for k in CSV_OPTIONS if k in row and not _missing(row[k])})
        jobs.append(job)
    return jobs
