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


def test_resume_reuses_unchanged_finished_jobs_and_refits_the_rest(client, tmp_path):
    tiny = dict(draws=100, tune=100, chains=2)
    jobs = [
        {"name": "kept", "law": "power", "data": design_runs("power", seed=0), **tiny, "seed": 0},
        {"name": "changed", "law": "power", "data": design_runs("power", seed=1), **tiny, "seed": 0},
        {"name": "lost", "law": "power", "data": design_runs("power", seed=2), **tiny, "seed": 0},
    ]
    first = bs.fit_many(jobs, client=client, out_dir=tmp_path, progress=False).set_index("name")
    on_disk = pd.read_csv(tmp_path / "summary.csv").set_index("name")  # written by fit_many as jobs finish
    assert list(on_disk.index) == ["kept", "changed", "lost"] and (on_disk.status == "ok").all()
    assert not first.reused.any() and first.fingerprint.str.len().eq(16).all()
    kept_mtime = (tmp_path / "kept.nc").stat().st_mtime_ns

    jobs[1] = jobs[1] | {"seed": 1}  # a changed option: a new fingerprint, fitted again
    (tmp_path / "lost.nc").unlink()  # as after a crash that lost a file: fitted again
    second = bs.fit_many(jobs, client=client, out_dir=tmp_path, progress=False).set_index("name")
    assert second.reused.to_dict() == {"kept": True, "changed": False, "lost": False}
    assert (tmp_path / "kept.nc").stat().st_mtime_ns == kept_mtime
    assert second.loc["kept", "median_alpha"] == pytest.approx(first.loc["kept", "median_alpha"])
    assert second.loc["changed", "fingerprint"] != first.loc["changed", "fingerprint"]
    assert (tmp_path / "lost.nc").exists() and (second.status == "ok").all()

    third = bs.fit_many(jobs, client=client, out_dir=tmp_path, progress=False, resume=False)
    assert not third.reused.any()


def test_a_fit_whose_chains_disagree_is_saved_and_reported_as_not_converged(tmp_path):
    from bayescale.many import _convergence, run_job

    job = {"name": "stuck", "law": "power", "data": design_runs("power", seed=0), "draws": 30, "seed": 0}
    row = run_job(job | {"tune": 2}, str(tmp_path))  # two tuning steps: the chains stay where they started
    assert row["status"] == "not converged", row
    assert f"max R-hat {row['max_rhat']:.2f} > 1.1" in row["error"] and "try more tune/draws" in row["error"]
    assert (tmp_path / "stuck.nc").exists()
    frozen = _convergence({"status": "ok", "error": "", "max_rhat": float("nan")}, chains=2)  # chains that never moved
    assert frozen["status"] == "not converged" and "R-hat is undefined" in frozen["error"], frozen
    assert _convergence({"status": "ok", "error": "", "max_rhat": float("nan")}, chains=1)["status"] == "ok"


def _kill_workers_running(client, prefix, times, done):
    """Kill (SIGKILL) the worker process that holds a task whose key starts with `prefix`, `times` times."""
    import os
    import signal
    import time

    killed = set()
    while len(killed) < times and not done.is_set():
        for address, keys in client.processing().items():
            if address not in killed and any(str(k).startswith(prefix) for k in keys):
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                killed.add(address)
        time.sleep(0.02)


def test_a_job_whose_worker_dies_is_retried_once_then_reported(tmp_path):
    import threading

    from bayescale.many import _client

    small = dict(draws=200, tune=200, chains=2)
    with _client(None, 2) as client:  # the cluster fit_many starts when given no client
        for name, kills, status in [("once", 1, "ok"), ("twice", 2, "error")]:
            done = threading.Event()
            killer = threading.Thread(
                target=_kill_workers_running, args=(client, f"bayescale-fit-{name}-", kills, done)
            )
            killer.start()
            job = {"name": name, "law": "power", "data": design_runs("power", seed=0), **small, "seed": 0}
            try:
                row = bs.fit_many([job], client=client, out_dir=tmp_path, progress=False).iloc[0]
            finally:
                done.set()
                killer.join()
            assert row.status == status, row.error
    assert "the worker process died while fitting this job, also on retry" in row.error
    assert (tmp_path / "once.nc").exists() and not (tmp_path / "twice.nc").exists()
    assert pd.read_csv(tmp_path / "summary.csv").set_index("name").loc["twice", "status"] == "error"
