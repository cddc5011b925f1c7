"""Shared fixtures: one small simulated Chinchilla fit per session (the compile is cached across tests)."""

from __future__ import annotations

import os

# One BLAS thread per process: the suite runs 2 xdist workers whose fits fork their chains, so a multithreaded BLAS
# oversubscribes the cores and spins. Measured: notebook 06 beside two busy processes took 109 s with OpenBLAS's
# default threads and 28 s with one (24 s on an idle machine). The variables reach the processes the tests start
# (notebook kernels, subprocesses); threadpoolctl (a PyMC dependency) limits this one, whose NumPy a plugin may
# have loaded already.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.simulate import chinchilla_runs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
# Small but honest sampling settings for CI: 4 chains keep R-hat meaningful.
FAST = dict(draws=500, tune=500, chains=4, progress=False)
# For tests whose assertions need a posterior, not a precise one (save/load, shapes, smoke runs): 2 x 200 draws.
SMALL = dict(draws=200, tune=300, chains=2, progress=False)

warnings.filterwarnings("ignore", category=FutureWarning)


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with a clear reason when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it lives in ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def chinchilla_data() -> bs.ScalingData:
    return chinchilla_runs(n=150, noise=0.01, seed=1)


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla_data: bs.ScalingData) -> bs.Fit:
    return bs.fit("chinchilla", chinchilla_data, seed=1, **FAST)


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


# Long tests start first, so that the two xdist workers finish together instead of one waiting on a notebook.
LONG_FIRST = (
    "test_notebooks.py::test_notebook_executes",
    "test_recovery.py",
    "test_walk.py",
    "test_compare.py",
    "test_cli.py::test_fit_then_predict",
    "test_corpus.py",
    "test_discrepancy.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        return next((i for i, key in enumerate(LONG_FIRST) if key in item.nodeid), len(LONG_FIRST))

    items.sort(key=rank)  # stable: the order within a group is kept


def pytest_report_header(config):
    return f"bayescale: shared data {'present' if SHARED.exists() else 'ABSENT'} at {SHARED}; CI={os.environ.get('CI')}"


def pytest_runtest_logreport(report):
    """Collect the fuzz tests' case counts (recorded with record_property; they reach the controller under xdist)."""
    if report.when == "call":
        for name, value in report.user_properties:
            if name.startswith("fuzz:"):
                _FUZZ_COUNTS[name] = value


_FUZZ_COUNTS: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter):
    if _FUZZ_COUNTS:
        counts = ", ".join(f"{name[6:]} {n}" for name, n in sorted(_FUZZ_COUNTS.items()))
        terminalreporter.write_line(f"fuzzing: cases tried: {counts} (only named bayescale errors came out)")
