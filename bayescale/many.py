"""`fit_many`: run many independent fits on a dask.distributed cluster and collect a summary table.

Each job is one call of `bayescale.fit` in a worker process; its posterior is saved to
`out_dir/<name>.nc` (atomically, via `Fit.save`) and a summary row comes back. A job that fails is
reported in its row (status "error" and the error text) and never stops the others. With `out_dir`,
`summary.csv` is rewritten after every finished job, so a crashed or interrupted run resumes where it
stopped: a job whose fingerprint (law, data, options) matches a finished row is not fitted again.
"""

from __future__ import annotations

import hashlib
import json
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
    "reused",
    "fingerprint",
]
SUMMARY_FILE = "summary.csv"
WORKER_DEATHS_ALLOWED = 1  # a job whose worker dies is retried once on a fresh worker, then reported
NOT_CONVERGED_RHAT = 1.1  # chains that disagree this much did not converge (the 1.01 bar flags milder problems)
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


def fingerprint(job: Mapping[str, Any]) -> str:
    """A hash of what determines a job's fit (law file or name, data values, options): equal fingerprints
    mean a finished fit can be reused on resume."""
    from bayescale import __version__

    digest = hashlib.sha256(__version__.encode())
    law = Path(str(job["law"]))
    digest.update(law.read_bytes() if law.suffix == ".toml" and law.is_file() else str(job["law"]).lower().encode())
    data = job["data"]
    if isinstance(data, ScalingData):
        data = data.frame
    if isinstance(data, pd.DataFrame):
        digest.update(json.dumps([str(c) for c in data.columns]).encode())
        digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
    elif Path(data).is_file():
        digest.update(Path(data).read_bytes())
    else:
        digest.update(str(data).encode())
    options = {k: v for k, v in job.items() if k not in ("name", "law", "data")}
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _convergence(row: dict[str, Any], chains: int) -> dict[str, Any]:
    """Mark a fit whose chains disagree (R-hat above NOT_CONVERGED_RHAT, or not computable because the chains
    did not move) as not converged, saying why."""
    rhat = row["max_rhat"]
    if chains > 1 and not rhat <= NOT_CONVERGED_RHAT:
        why = (
            f"max R-hat {rhat:.2f} > {NOT_CONVERGED_RHAT}" if rhat == rhat else "R-hat is undefined: they did not move"
        )
        row["status"] = "not converged"
        row["error"] = (
            f"the chains disagree ({why}): the fit is saved but its posterior is not reliable; try more "
            "tune/draws, a stronger prior or a simpler law"
        )
    return row


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
        _convergence(row, kwargs["chains"])
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
    resume: bool = True,
) -> pd.DataFrame:
    """Fit many (law, data) jobs in parallel on dask.distributed and return one summary row per job.

    `jobs`: dicts (or DataFrame rows) with `name` (the job id and file name), `law` (catalogue name or TOML
    path), `data` (a ScalingData or DataFrame, or a CSV path with an optional `columns` role -> column
    mapping), and optional fit options draws, tune, chains (default 2), seed, likelihood, nu, groups, pooling,
    sampler, flops_per_token_param. Every fit runs with progress=False.

    `client`: a `dask.distributed.Client` to submit to, used as is. Without one, a LocalCluster of
    `n_workers` (default: os.cpu_count()) single-threaded worker processes is started and closed afterwards.

    `out_dir`: each fit is saved to `out_dir/<name>.nc` and `out_dir/summary.csv` is rewritten after every
    finished job; without it nothing is written. With `resume` (default), a job whose row in an existing
    summary.csv has the same fingerprint and whose file exists is reused, not fitted again (column `reused`).

    A job whose worker process dies (e.g. out of memory) is retried once on a fresh worker when bayescale
    starts the cluster (with your own `client`, dask's `distributed.scheduler.allowed-failures` decides).

    Returns a DataFrame in job order: name, law, status ("ok", "not converged" or "error"), error (the
    reason), seconds, path, divergences, max_rhat, min_ess_bulk, problems (sampling diagnostics in words),
    reused, fingerprint and median_<param> per parameter.
    """
    specs = normalise_jobs(jobs)
    ledger = _Ledger(out_dir, {job["name"]: fingerprint(job) for job in specs}, resume)
    todo = [job for job in specs if job["name"] not in ledger.rows]
    if todo:
        with _client(client, n_workers) as active:
            _run(active, todo, ledger, progress)
    return ledger.table()


def _run(client: Any, jobs: list[dict[str, Any]], ledger: _Ledger, progress: bool) -> None:
    """Submit the jobs and record each row as its job finishes."""
    from dask.distributed import as_completed

    futures = {}
    for job in jobs:
        key = f"bayescale-fit-{job['name']}-{uuid.uuid4().hex[:8]}"
        futures[client.submit(run_job, job, ledger.folder, key=key, pure=False)] = job
    with _Progress(len(futures), enabled=progress) as bar:
        for future in as_completed(futures):
            job = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 - the worker process died (twice) while fitting it
                reason = f"{type(exc).__name__}: {exc}"
                if type(exc).__name__ == "KilledWorker":
                    reason = (
                        f"the worker process died while fitting this job, also on retry (out of memory? see the "
                        f"worker logs); the other jobs are unaffected ({reason})"
                    )
                row = _error_row(job, reason)
            ledger.record(job, row)
            bar.advance(row)


class _client:
    """The user's client as is, or a LocalCluster of single-threaded worker processes that retries a job
    once when its worker dies; closed on exit."""

    def __init__(self, client: Any, n_workers: int | None):
        self.given, self.n_workers = client, n_workers

    def __enter__(self) -> Any:
        if self.given is not None:
            return self.given
        import dask
        from dask.distributed import Client, LocalCluster

        with dask.config.set({"distributed.scheduler.allowed-failures": WORKER_DEATHS_ALLOWED}):
            self.cluster = LocalCluster(
                n_workers=self.n_workers or os.cpu_count() or 2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc: Any) -> None:
        if self.given is None:
            self.client.close()
            self.cluster.close()


class _Ledger:
    """The summary rows so far, in `out_dir/summary.csv` (rewritten atomically after every job); on resume,
    finished rows of unchanged jobs whose fit file still exists are taken from it."""

    def __init__(self, out_dir: str | Path | None, fingerprints: dict[str, str], resume: bool):
        self.fingerprints, self.rows = fingerprints, {}  # fingerprints: job name -> fingerprint, in job order
        self.folder = None
        if out_dir is None:
            return
        folder = Path(out_dir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = str(folder)
        self.path = folder / SUMMARY_FILE
        if resume and self.path.is_file():
            self.rows = self._finished(self.path)

    def _finished(self, path: Path) -> dict[str, dict[str, Any]]:
        try:
            old = pd.read_csv(path, dtype={"name": str, "fingerprint": str, "error": str, "problems": str})
        except Exception:  # noqa: BLE001 - an unreadable summary is ignored: every job is fitted again
            return {}
        if not {"name", "status", "fingerprint", "path"} <= set(old.columns):
            return {}
        rows = {}
        for row in old.to_dict("records"):
            if (
                self.fingerprints.get(row["name"]) == row["fingerprint"]
                and row["status"] in ("ok", "not converged")
                and isinstance(row["path"], str)
                and Path(row["path"]).is_file()
            ):
                rows[row["name"]] = {
                    k: ("" if _missing(v) and k in ("error", "problems") else v) for k, v in row.items()
                }
                rows[row["name"]]["reused"] = True
        return rows

    def record(self, job: Mapping[str, Any], row: dict[str, Any]) -> None:
        self.rows[job["name"]] = row | {"reused": False, "fingerprint": self.fingerprints[job["name"]]}
        if self.folder is not None:
            self._write()

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame([self.rows[name] for name in self.fingerprints if name in self.rows])
        extra = [c for c in table.columns if c not in SUMMARY_COLUMNS]
        table = table.reindex(columns=[*SUMMARY_COLUMNS, *extra])
        table["reused"] = table["reused"].astype(bool)
        return table

    def _write(self) -> None:
        tmp = self.path.with_name(f".{SUMMARY_FILE}.{os.getpid()}.tmp")
        self.table().to_csv(tmp, index=False)
        os.replace(tmp, self.path)


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
