"""Averaging laws by stacking weights: the weights, the mixture's draws, bands and allocations."""

import copy
import io
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.simulate import chinchilla_runs
from tests.conftest import FAST


@pytest.fixture(scope="module")
def kaplan_fit(chinchilla_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit("kaplan", chinchilla_data, seed=0, **FAST)


@pytest.fixture(scope="module")
def fits(chinchilla_fit, kaplan_fit):
    return {"chinchilla": chinchilla_fit, "kaplan": kaplan_fit}


def fixed(fits, weights):
    """An Average with chosen weights, to test the mixture apart from the weights."""
    return bs.Average(fits=fits, weights=pd.Series(weights, dtype=float), method="test", table=pd.DataFrame())


BIG = pd.DataFrame({"N": [3e10, 7e10], "D": [6e11, 1.4e12]})


def test_stacking_weighs_the_true_law_higher(fits):
    """Runs simulated from Chinchilla's law: both kinds of stacking put most weight on it."""
    loo = bs.average(fits, method="loo")
    lfo = bs.average(fits, method="lfo", fraction=0.2, draws=300, tune=300)
    for mixed in (loo, lfo):
        assert mixed.weights.sum() == pytest.approx(1.0)
        assert mixed.weights["chinchilla"] > 0.6, mixed.weights
        assert list(mixed.weights.index) == ["chinchilla", "kaplan"]
        assert "weight" in mixed.table.columns
    assert "chinchilla" in repr(lfo) and "lfo stacking" in repr(lfo)


def test_a_law_with_all_the_weight_gives_its_own_draws_and_allocation(fits, chinchilla_fit):
    only = fixed(fits, {"chinchilla": 1.0, "kaplan": 0.0})
    np.testing.assert_array_equal(only.predictive_draws(BIG, seed=3), chinchilla_fit.predictive_draws(BIG, seed=3))
    mine, theirs = only.allocate([1e22, 1e23]), chinchilla_fit.allocate([1e22, 1e23])
    pd.testing.assert_frame_equal(mine.table, theirs.table)


def test_the_mixture_takes_each_law_in_proportion_to_its_weight(fits, chinchilla_fit, kaplan_fit):
    mixed = fixed(fits, {"chinchilla": 0.3, "kaplan": 0.7})
    draws = mixed.predictive_draws(BIG, seed=1)
    own = chinchilla_fit.predictive_draws(BIG, seed=1)[: len(draws)]
    other = kaplan_fit.predictive_draws(BIG, seed=1)[: len(draws)]
    from_own = np.all(draws == own, axis=1)
    assert np.all(from_own | np.all(draws == other, axis=1))  # every draw is one law's whole draw
    assert from_own.mean() == pytest.approx(0.3, abs=0.03)
    np.testing.assert_array_equal(draws, mixed.predictive_draws(BIG, seed=1))  # same seed, same mixture


def test_predict_gives_the_band_and_each_laws_median(fits):
    mixed = fixed(fits, {"chinchilla": 0.5, "kaplan": 0.5})
    table = mixed.predict(BIG, prob=[0.5, 0.9])
    assert {"median", "lower_50", "upper_50", "lower_90", "upper_90", "median_chinchilla", "median_kaplan"} <= set(
        table.columns
    )
    assert np.all(table.lower_90 < table.lower_50) and np.all(table.lower_50 < table["median"])
    assert np.all(table["median"] < table.upper_50) and np.all(table.upper_50 < table.upper_90)
    lo, hi = (
        table[["median_chinchilla", "median_kaplan"]].min(axis=1),
        table[["median_chinchilla", "median_kaplan"]].max(axis=1),
    )
    assert np.all((lo <= table["median"]) & (table["median"] <= hi))  # the mixture's median lies between the laws'
    with pytest.raises(bs.BayescaleError, match="strictly between 0 and 1"):
        mixed.predict(BIG, prob=1.5)
    one = mixed.predict({"N": 3e10, "D": 6e11})  # a dict of scalars is one row, as for Fit.predict
    assert len(one) == 1 and one["median"].iloc[0] == pytest.approx(table["median"].iloc[0], rel=5e-3)  # other draws


def test_bad_requests_say_what_is_wrong(fits, chinchilla_fit):
    with pytest.raises(bs.BayescaleError, match="method must be one of"):
        bs.average(fits, method="bma")
    with pytest.raises(bs.BayescaleError, match="at least two fits"):
        bs.average({"chinchilla": chinchilla_fit})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = bs.fit("chinchilla", chinchilla_runs(n=60, seed=9), seed=0, **FAST)
    with pytest.raises(bs.BayescaleError, match="different runs"):
        bs.average({"a": chinchilla_fit, "b": other}, method="loo")
    reordered = copy.copy(chinchilla_fit)  # the same runs in reverse order: scores would pair the wrong runs
    reordered.data = bs.ScalingData.from_frame(chinchilla_fit.data.frame.iloc[::-1].reset_index(drop=True))
    for combine in (bs.average, bs.compare):
        with pytest.raises(bs.BayescaleError, match="in another order"):
            combine({"a": chinchilla_fit, "b": reordered})
    with pytest.raises(bs.BayescaleError, match=r"leaves \d+ runs to fit and 1 to score"):
        bs.average(fits, method="lfo", fraction=0.005)  # one run held out: nothing to stack on


def test_cli_average(tmp_path, chinchilla_fit, kaplan_fit):
    a, b = chinchilla_fit.save(tmp_path / "chinchilla.nc"), kaplan_fit.save(tmp_path / "kaplan.nc")
    command = ["average", str(a), str(b), "--at", "N=3e10,D=6e11", "--compute", "1e23", "--format", "csv"]
    out = subprocess.run([sys.executable, "-m", "bayescale.cli", *command], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("law,weight\nchinchilla,")
    assert "median_chinchilla" in out.stdout and "N_median" in out.stdout  # the band, then the allocation
    weights = pd.read_csv(io.StringIO(out.stdout), nrows=2)  # the first table: one row per law
    assert weights.weight.sum() == pytest.approx(1.0, abs=1e-6)
