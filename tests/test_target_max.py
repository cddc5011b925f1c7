"""A law's `target_max`: targets that cannot exceed a value (an accuracy, an error rate: 1) get a likelihood and
bands truncated there, so no band promises an accuracy above 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayescale as bs
from bayescale import _noise
from bayescale.errors import DataError, LawFileError
from bayescale.simulate import design_runs
from tests.conftest import FAST


def test_truncated_noise_draws_follow_the_truncated_distribution():
    """Draws below a standardised cap of 0.3 are the Student-t truncated there (Kolmogorov-Smirnov), and without a
    cap they are the same draws as numpy's own (fits of uncapped laws are unchanged)."""
    eps = _noise.draws(np.random.default_rng(0), (20_000,), "student_t", 4.0, np.float64(0.3))
    assert eps.max() <= 0.3
    top = stats.t.cdf(0.3, 4.0)
    assert stats.kstest(eps, lambda x: np.minimum(stats.t.cdf(x, 4.0) / top, 1.0)).pvalue > 0.01
    plain = _noise.draws(np.random.default_rng(1), (5,), "student_t", 4.0)
    np.testing.assert_array_equal(plain, np.random.default_rng(1).standard_t(4.0, (5,)))


@pytest.mark.parametrize("likelihood", ["student_t", "normal"])
def test_the_truncated_density_integrates_to_one_below_the_cap(likelihood):
    """log mean 0.97, noise 0.04, cap 1: the density of log y integrates to 1 over (-inf, 0]."""
    log_mean, sigma = np.log(0.97), 0.04

    def density(log_y: float) -> float:
        z = (log_y - log_mean) / sigma
        return float(np.exp(_noise.log_density(np.array(z), sigma, likelihood, 4.0, np.array(-log_mean / sigma))))

    total, _ = integrate.quad(density, -np.inf, 0.0)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_an_accuracy_above_its_cap_is_named():
    runs = pd.DataFrame({"C": np.geomspace(1e18, 1e22, 12), "acc": np.linspace(0.3, 0.9, 12)})
    runs.loc[7, "acc"] = 63.0
    with pytest.raises(DataError, match=r"'acc': row 7 has value 63, above 1.*target_max.*percentage"):
        bs.fit("downstream-sigmoid", runs, **FAST)


def test_a_bad_cap_in_a_law_file_is_named(tmp_path):
    text = bs.law("downstream-sigmoid").source.replace("target_max = 1.0", "target_max = -1")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LawFileError, match=r"target_max.*positive number.*-1"):
        bs.law(path)


@pytest.fixture(scope="module")
def near_ceiling() -> tuple[bs.Fit, pd.DataFrame]:
    """Accuracies that saturate at 0.97 with 3% run noise: the untruncated 90% band reached 1.02 here."""
    params = {"ceiling": 0.97, "w": 1.0}
    runs = design_runs("downstream-sigmoid", n=80, noise=0.03, seed=2, params=params, likelihood="student_t").frame
    held = design_runs("downstream-sigmoid", n=400, noise=0.03, seed=7, params=params, likelihood="student_t").frame
    fit = bs.fit("downstream-sigmoid", runs, seed=0, discrepancy=0.0, **FAST)
    return fit, held


def test_simulated_accuracies_stay_below_the_cap(near_ceiling):
    _, held = near_ceiling
    assert held.acc.max() <= 1.0
    top = held[held.C > 1e23]  # where the law is at 0.96-0.97
    assert (top.acc > 0.99).mean() > 0.04, (top.acc > 0.99).mean()  # the cap binds (measured 0.083)


def test_bands_stop_at_the_cap_and_still_cover(near_ceiling):
    """The 90% band of runs near the ceiling ends at or below 1 and holds about 90% of 400 new runs from the same
    law; the law's own band (drift included) is kept below the cap too."""
    fit, held = near_ceiling
    band = fit.predict(held, prob=0.9)
    assert band.upper.max() <= 1.0 and band.mean_upper.max() <= 1.0
    high = band["median"] > 0.9
    assert high.sum() > 100
    assert np.quantile(fit.predictive_draws(held[high]), 0.99, axis=0).max() <= 1.0
    inside = (held.acc >= band.lower) & (held.acc <= band.upper)
    assert 0.85 <= inside.mean() <= 0.95, inside.mean()
    # near the cap 0.81 (124 runs): the noise power, 0 in truth, is fitted 0.36 +- 0.19 and shrinks the noise there
    assert 0.75 <= inside[high].mean() <= 0.97, inside[high].mean()
