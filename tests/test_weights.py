"""Per-run weights: a `weight` column makes each run's log density count that many times (relative, mean 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale._model import build, data_arrays, make_spec
from bayescale.simulate import chinchilla_runs, law_values
from tests.conftest import FAST, SMALL


def _runs_with_a_bad_batch(n: int = 60, bad: int = 30, seed: int = 4) -> pd.DataFrame:
    """`n` runs from the Chinchilla law, plus `bad` runs of the same sizes whose loss is 8% too high."""
    good = chinchilla_runs(n=n, noise=0.01, seed=seed).frame
    off = chinchilla_runs(n=bad, noise=0.01, seed=seed + 1).frame
    off["loss"] *= 1.08
    return pd.concat([good.assign(weight=1.0), off.assign(weight=0.0)], ignore_index=True)


def test_weight_zero_runs_do_not_move_the_posterior():
    """A batch of runs 8% off the law spoils the fit when it counts; with weight 0, E is recovered and the noise is
    the good runs' own."""
    runs = _runs_with_a_bad_batch()
    true_e = law_values(bs.law("chinchilla"))["E"]
    weighted = bs.fit("chinchilla", runs, seed=0, discrepancy=0.0, **FAST)
    plain = bs.fit("chinchilla", runs.drop(columns="weight"), seed=0, discrepancy=0.0, **FAST)
    assert weighted.spec.weighted and not plain.spec.weighted
    lo, hi = np.quantile(weighted.draws("E"), [0.025, 0.975])
    assert lo < true_e < hi, (lo, hi, true_e)
    # counted, the bad batch shows up as noise: the run noise is 4x larger (measured 0.033 against 0.008)
    assert np.median(plain.draws("sigma")) > 2.5 * np.median(weighted.draws("sigma"))


def test_the_weighted_model_adds_each_runs_log_density_times_its_weight():
    """The model's log density: the unweighted one plus (w - 1) x each run's log density, weights scaled to mean 1."""
    data = bs.ScalingData.from_frame(chinchilla_runs(n=30, seed=2).frame.assign(weight=np.linspace(0.5, 3.0, 30)))
    law = bs.law("chinchilla")
    w = data.weights
    assert w.mean() == pytest.approx(1.0) and w[-1] / w[0] == pytest.approx(6.0)
    spec = make_spec(law, data)
    plain = make_spec(law, bs.ScalingData.from_frame(data.frame.drop(columns="weight")))
    weighted_model, plain_model = build(spec, data_arrays(spec, data)), build(plain, data_arrays(plain, data))
    point = plain_model.initial_point()
    per_run = plain_model.compile_fn(plain_model.logp(vars=plain_model.observed_RVs, sum=False)[0])(point)
    got = weighted_model.compile_logp()(point) - plain_model.compile_logp()(point)
    assert got == pytest.approx(np.sum((w - 1) * per_run), rel=1e-9)


def test_equal_weights_are_no_weights():
    """Weights that are all equal change nothing: the unweighted model is compiled and sampled."""
    data = bs.ScalingData.from_frame(chinchilla_runs(n=30, seed=2).frame.assign(weight=2.5))
    assert data.weights is None and not make_spec(bs.law("chinchilla"), data).weighted


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0] * 29 + [-1.0], "column 'weight': row 29 has value -1; a run's weight must be 0 or more"),
        ([0.0] * 30, "column 'weight' is 0 in every run"),
        ([1.0] * 29 + [np.nan], "column 'weight': row 29 has value nan"),
    ],
)
def test_bad_weights_are_named(weights, message):
    frame = chinchilla_runs(n=30, seed=2).frame.assign(weight=weights)
    with pytest.raises(bs.DataError, match=message.replace("(", r"\(")):
        bs.ScalingData.from_frame(frame)


def test_a_weight_column_is_read_from_csv_by_name_or_by_role(tmp_path):
    frame = chinchilla_runs(n=30, seed=2).frame.assign(w=np.linspace(1, 2, 30))
    frame.to_csv(tmp_path / "runs.csv", index=False)
    mapped = bs.ScalingData.from_csv(tmp_path / "runs.csv", columns={"weight": "w"}, roles=["N", "D", "loss"])
    assert mapped.weights is not None and mapped.names == {"weight": "w"}
    frame.rename(columns={"w": "weight"}).to_csv(tmp_path / "named.csv", index=False)
    named = bs.ScalingData.from_csv(tmp_path / "named.csv", roles=["N", "D", "loss"])
    np.testing.assert_allclose(named.weights, mapped.weights)


def test_a_weighted_fit_saves_loads_and_compares(tmp_path):
    """The weights are saved with the runs; LOO reads each run's weighted log density (what it put in)."""
    runs = _runs_with_a_bad_batch(n=30, bad=10)
    runs.loc[runs.weight == 0, "weight"] = 0.2
    fitted = bs.fit("chinchilla", runs, seed=0, **SMALL)
    loaded = bs.load(fitted.save(tmp_path / "w.nc"))
    assert loaded.spec.weighted and loaded.spec.key() == fitted.spec.key()
    assert loaded.weight_column == "weight" and "runs weighted by 'weight'" in repr(loaded)
    w = fitted.data.weights
    np.testing.assert_allclose(fitted.log_likelihood(), fitted.loglik_at(fitted.data.frame) * w[None, :], rtol=1e-6)
    np.testing.assert_allclose(loaded.log_likelihood(), fitted.log_likelihood(), rtol=1e-6)
    table = bs.compare({"weighted": fitted, "again": loaded})
    assert len(table) == 2


def test_map_refuses_weights():
    runs = _runs_with_a_bad_batch(n=30, bad=5)
    with pytest.raises(bs.BayescaleError, match="method='map' does not take run weights"):
        bs.fit("chinchilla", runs, method="map")
