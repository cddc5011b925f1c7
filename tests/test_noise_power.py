"""A law's `[noise] power`: run noise in log units that scales as target^-power (accuracy's scatter is about
constant in accuracy units, so in log units it is largest where accuracy is lowest)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale._model import build, data_arrays
from bayescale.errors import LawFileError
from bayescale.simulate import law_values
from tests.conftest import FAST


def _accuracy_runs(n: int = 80, noise: float = 0.02, seed: int = 3) -> pd.DataFrame:
    """Accuracies from the sigmoid law with *additive* noise (sd `noise` in accuracy units): power 1 in log units."""
    law = bs.law("downstream-sigmoid")
    c = np.geomspace(1e18, 1e24, n)
    columns = {"C": c, "acc": np.ones(1)}
    mean = law.mean(law_values(law), {"C": c}, law.resolve_constants(columns))
    acc = mean + noise * np.random.default_rng(seed).standard_normal(n)
    return pd.DataFrame({"C": c, "acc": acc})


@pytest.fixture(scope="module")
def accuracy_fit() -> bs.Fit:
    return bs.fit("downstream-sigmoid", _accuracy_runs(), seed=0, discrepancy=0.0, **FAST)


def test_the_noise_power_is_recovered(accuracy_fit: bs.Fit):
    """Additive noise is power 1: the 95% interval holds 1 and excludes constant log noise (power 0)."""
    lo, hi = np.quantile(accuracy_fit.draws("noise_power"), [0.025, 0.975])
    assert 0.3 < lo < 1.0 < hi, (lo, hi)
    assert "noise_power" in accuracy_fit.summary().index


def test_bands_are_narrower_in_log_units_where_accuracy_is_higher(accuracy_fit: bs.Fit):
    """The predictive band follows the noise: at 0.76 accuracy 2.6-2.9x narrower (log units, measured on two seeds)
    than at the floor's 0.25."""
    band = accuracy_fit.predict({"C": [3e18, 1e23]}, prob=0.9)
    width = np.log(band.upper / band.lower).to_numpy()
    level = band["median"].to_numpy()
    assert level[0] < 0.35 and level[1] > 0.7, level
    assert width[0] > 2.0 * width[1], width


def test_the_numpy_log_likelihood_is_the_models(accuracy_fit: bs.Fit):
    """The fit's stored pointwise log-likelihood (NumPy) equals the PyMC model's, draw by draw."""
    import pymc as pm

    model = build(accuracy_fit.spec, data_arrays(accuracy_fit.spec, accuracy_fit.data))
    few = accuracy_fit.idata.isel(draw=slice(0, 3))
    ll = pm.compute_log_likelihood(few, model=model, extend_inferencedata=False, progressbar=False)
    want = ll["obs"].values.reshape(-1, len(accuracy_fit.data.frame))
    got = accuracy_fit.log_likelihood().reshape(4, -1, want.shape[1])[:, :3].reshape(-1, want.shape[1])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_unknown_noise_keys_are_named(tmp_path):
    text = bs.law("downstream-sigmoid").source.replace("power =", "powr =")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LawFileError, match=r"noise.*unknown keys \['powr'\]"):
        bs.law(path)


def test_a_saved_fit_predicts_the_same_bands_after_load(accuracy_fit: bs.Fit, tmp_path):
    """The noise's reference level comes from the saved runs: a loaded fit's bands are the same to the digit."""
    at = {"C": [3e18, 1e22]}
    again = bs.load(accuracy_fit.save(tmp_path / "acc.nc"))
    pd.testing.assert_frame_equal(again.predict(at), accuracy_fit.predict(at))
