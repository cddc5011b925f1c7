"""fit_many on a local dask cluster: failing jobs are reported, the others are saved; the fit-many command."""

import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.simulate import design_runs

SMALL = dict(draws=200, tune=200, chains=2)


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_failing_jobs_are_reported_and_the_others_saved(client, tmp_path):
    nan_loss = design_runs("power", seed=9).frame.copy()
    nan_loss.loc[3, "loss"] = np.nan
    jobs = [
        {"name": "power-0", "law": "power", "data": design_runs("power", seed=0), **SMALL, "seed": 0},
        {"name": "typo", "law": "powr", "data": design_runs("power", seed=1), **SMALL},
        {"name": "power-1", "law": "power", "data": design_runs("power", seed=2), **SMALL, "seed": 1},
        {"name": "nan-loss", "law": "power", "data": nan_loss, **SMALL},
    ]
    summary = bs.fit_many(jobs, client=client, out_dir=tmp_path, progress=True)
    assert list(summary.name) == ["power-0", "typo", "power-1", "nan-loss"]
    assert {
        "name",
        "law",
        "status",
        "error",
        "seconds",
        "path",
        "divergences",
        "max_rhat",
        "min_ess_bulk",
        "median_E",
        "median_alpha",
        "median_a",
        "median_A",
        "median_sigma",
    } <= set(summary.columns)
    rows = summary.set_index("name")
    assert rows.loc["typo", "status"] == "error" and "unknown law 'powr'" in rows.loc["typo", "error"]
    assert rows.loc["nan-loss", "status"] == "error"
    assert "column 'loss': row 3 has value nan" in rows.loc["nan-loss", "error"]
    assert not (tmp_path / "typo.nc").exists() and not (tmp_path / "nan-loss.nc").exists()
    for name in ("power-0", "power-1"):
        row = rows.loc[name]
        assert row.status == "ok" and row.error == "" and row.seconds > 0
        fit = bs.load(row.path)
        assert row.path == str(tmp_path / f"{name}.nc")
        assert fit.law.name == "power" and fit.n_draws == 400 and fit.meta["chains"] == 2
        assert row.median_alpha == pytest.approx(np.median(fit.draws("alpha")))
        assert abs(row.median_alpha - 0.3) < 0.1
        assert row.max_rhat == fit.diagnostics["max_rhat"]


@pytest.mark.parametrize(
    "jobs, message",
    [
        ([{"name": "a", "law": "power"}], r"job 0 \('a'\): missing key\(s\) \['data'\]"),
        ([{"law": "power", "data": "x.csv"}], r"missing key\(s\) \['name'\]"),
        ([{"name": "a", "law": "power", "data": "x.csv", "draw": 10}], r"unknown key\(s\) \['draw'\]"),
        ([{"name": "a", "law": "power", "data": "x.csv"}] * 2, "used by more than one job"),
        ([{"name": "a/b", "law": "power", "data": "x.csv"}], "name must be"),
        ([{"name": "a", "law": "power", "data": 3}], "data must be"),
        ([{"name": "a", "law": "power", "data": "x.csv", "draws": 1.5}], "draws must be a whole number"),
        ([], "no jobs"),
    ],
)
def test_bad_job_specs_fail_before_anything_runs(jobs, message):
    with pytest.raises(bs.BayescaleError, match=message):
        bs.fit_many(jobs, client=object(), progress=False)


def test_jobs_as_a_dataframe_are_normalised():
    from bayescale.many import normalise_jobs

    frame = pd.DataFrame(
        {"name": ["a", "b"], "law": ["power", "power"], "data": ["x.csv", "y.csv"], "draws": [100.0, np.nan]}
    )
    jobs = normalise_jobs(frame)
    assert jobs[0]["draws"] == 100 and isinstance(jobs[0]["draws"], int) and "draws" not in jobs[1]


def write_jobs(folder):
    runs = design_runs("power", seed=3).frame.rename(columns={"x": "params"})
    runs.to_csv(folder / "runs.csv", index=False)
    pd.DataFrame(
        {
            "name": ["good", "missing-column"],
            "law": ["power", "power"],
            "csv": ["runs.csv", "runs.csv"],
            "col_x": ["params", "parms"],
            "col_loss": ["loss", "loss"],
            "draws": [200, 200],
            "tune": [200, 200],
            "seed": [0, 1],
        }
    ).to_csv(folder / "jobs.csv", index=False)
    return folder / "jobs.csv"


def check_command_output(out, tmp_path):
    assert out.returncode == 1, out.stderr  # one job failed
    assert "1 of 2 jobs ok" in " ".join(out.stdout.split()) and "Traceback" not in out.stderr
    summary = pd.read_csv(tmp_path / "results" / "summary.csv").set_index("name")
    assert summary.loc["good", "status"] == "ok"
    assert bs.load(tmp_path / "results" / "good.nc").law.name == "power"
    assert summary.loc["missing-column", "status"] == "error"
    assert "missing column 'parms'" in summary.loc["missing-column", "error"]


def test_fit_many_command_on_a_running_scheduler(client, tmp_path):
    jobs = write_jobs(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayescale.cli",
            "fit-many",
            str(jobs),
            "-o",
            str(tmp_path / "results"),
            "--scheduler",
            client.scheduler.address,
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    check_command_output(out, tmp_path)


@pytest.mark.slow
def test_fit_many_command_starts_its_own_cluster(tmp_path):
    jobs = write_jobs(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayescale.cli",
            "fit-many",
            str(jobs),
            "-o",
            str(tmp_path / "results"),
            "--workers",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    check_command_output(out, tmp_path)


def test_fit_many_command_rejects_bad_jobs_file(tmp_path):
    pd.DataFrame({"name": ["a"], "law": ["power"], "data": ["runs.csv"]}).to_csv(tmp_path / "jobs.csv", index=False)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayescale.cli",
            "fit-many",
            str(tmp_path / "jobs.csv"),
            "-o",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    stderr = " ".join(out.stderr.split())  # rich wraps long lines
    assert "missing column(s) ['csv']" in stderr and "Traceback" not in stderr, out.stderr
