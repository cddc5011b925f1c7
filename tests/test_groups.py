"""Groups with partial pooling, composition of laws, and schedule features."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.schedules import annealing_areas, schedule
from tests.conftest import FAST


@pytest.fixture(scope="module")
def families():
    """Five families share alpha; their scale `a` varies around a population value. Family 'new' has 2 runs."""
    rng = np.random.default_rng(7)
    a_values = {"f1": -0.35, "f2": -0.2, "f3": -0.3, "f4": -0.45, "new": -0.25}
    xs = {name: np.geomspace(1e7, 1e9, 2) if name == "new" else np.geomspace(1e7, 1e10, 12) for name in a_values}
    law = bs.law("power")
    x0 = np.exp(np.mean(np.log(np.concatenate(list(xs.values())))))  # the fit's x0: geomean of all runs
    frames = []
    for name, a in a_values.items():
        mean = law.mean({"E": 1.8, "a": a, "alpha": 0.3}, {"x": xs[name]}, {"x0": x0})
        loss = mean * np.exp(0.01 * rng.standard_normal(len(mean)))
        frames.append(pd.DataFrame({"x": xs[name], "loss": loss, "group": name}))
    return bs.ScalingData.from_frame(pd.concat(frames, ignore_index=True)), a_values


@pytest.fixture(scope="module")
def pooled(families):
    return bs.fit("power", families[0], groups={"a": "pooled"}, seed=0, **FAST)


@pytest.fixture(scope="module")
def separate(families):
    return bs.fit("power", families[0], groups={"a": "separate"}, seed=0, **FAST)


def test_pooling_tightens_a_small_group_and_still_covers(families, pooled, separate):
    data, a_values = families
    # at the new family's largest run: pooling narrows its band (measured ~4% here, since E and alpha are shared
    # and already borrow strength; far beyond the data the shared parameters' uncertainty dominates both)
    at = pd.DataFrame({"x": [1e9], "group": ["new"]})
    law = bs.law("power")
    # x0 is the geometric mean of all fitted x: evaluate the truth the same way
    constants = law.resolve_constants({"x": data["x"], "loss": data["loss"]})
    truth = law.mean({"E": 1.8, "a": a_values["new"], "alpha": 0.3}, {"x": np.array([1e9])}, constants)[0]
    p, s = pooled.predict(at).iloc[0], separate.predict(at).iloc[0]
    assert p.mean_lower < truth < p.mean_upper, (p, truth)
    assert s.mean_lower < truth < s.mean_upper, (s, truth)
    assert (p.mean_upper - p.mean_lower) < (s.mean_upper - s.mean_lower), (p, s)
    # 4 x 500 draws of a hierarchical scale: R-hat's own sampling noise is ~0.005, so 1.02 is the honest bar here
    assert pooled.diagnostics["divergences"] == 0 and pooled.diagnostics["max_rhat"] <= 1.02
    assert "a_tau" in pooled.summary().index


def test_unseen_group_draws_from_the_population(pooled, separate):
    known = pooled.predict(pd.DataFrame({"x": [1e9], "group": ["f1"]})).iloc[0]
    unseen = pooled.predict(pd.DataFrame({"x": [1e9], "group": ["brand-new"]})).iloc[0]
    assert unseen.mean_upper - unseen.mean_lower > known.mean_upper - known.mean_lower
    with pytest.raises(bs.BayescaleError, match="group 'brand-new' was not in the fit"):
        separate.predict(pd.DataFrame({"x": [1e9], "group": ["brand-new"]}))


def test_non_centred_pooling_option(families):
    data, _ = families
    result = bs.fit("power", data, groups={"a": "pooled"}, pooling="non-centred", seed=0, **FAST)
    assert result.spec.pooling == "non-centred" and "a_z" not in result.idata.posterior
    with pytest.raises(bs.BayescaleError, match="pooling must be"):
        bs.fit("power", data, groups={"a": "pooled"}, pooling="half", **FAST)


def test_group_options_are_checked(families):
    data, _ = families
    with pytest.raises(bs.BayescaleError, match="'zeta' is not a parameter of law 'power'"):
        bs.fit("power", data, groups={"zeta": "pooled"}, **FAST)
    with pytest.raises(bs.BayescaleError, match="must be 'shared', 'separate' or 'pooled'"):
        bs.fit("power", data, groups={"a": "partial"}, **FAST)
    no_groups = bs.ScalingData.from_frame(data.frame.drop(columns="group").drop_duplicates())
    with pytest.raises(bs.BayescaleError, match="need a 'group' column"):
        bs.fit("power", no_groups, groups={"a": "pooled"}, **FAST)


def test_composition_carries_both_posteriors(chinchilla_fit):
    """compute -> loss (chinchilla) -> error (downstream-exp): the chained band is wider than error-law-only."""
    loss = np.linspace(2.0, 3.5, 40)
    err = bs.simulate("downstream-exp", {"loss": loss}, noise=0.02, seed=3)
    err_fit = bs.fit("downstream-exp", err, seed=0, **FAST)
    at = pd.DataFrame({"N": [7e10], "D": [1.4e12]})
    chained = err_fit.predict(at, from_fit=chinchilla_fit).iloc[0]
    median_loss = chained["loss_median"]
    assert 1.85 < median_loss < 2.05
    fixed = err_fit.predict(pd.DataFrame({"loss": [median_loss]})).iloc[0]
    assert chained.mean_upper - chained.mean_lower > fixed.mean_upper - fixed.mean_lower
    law = bs.law("downstream-exp")
    truth = law.mean({k: p.value for k, p in law.params.items()}, {"loss": 1.9366}, {"L0": 3.0})
    assert chained.lower < truth < chained.upper
    with pytest.raises(bs.BayescaleError, match="from_fit: that fit predicts 'loss'"):
        chinchilla_fit.predict(at, from_fit=chinchilla_fit)


def test_annealing_areas_by_hand():
    table = pd.DataFrame({"run": "r", "step": [1, 2, 3, 4], "lr": [1.0, 1.0, 0.5, 0.25]})
    out = annealing_areas(table, decay=0.5)
    np.testing.assert_allclose(out.S1, [1.0, 2.0, 2.5, 2.75])
    # drops: 0, 0, 0.5, 0.25 -> m: 0, 0, 0.5, 0.5 -> S2: 0, 0, 0.5, 1.0
    np.testing.assert_allclose(out.S2, [0.0, 0.0, 0.5, 1.0])
    with pytest.raises(bs.DataError, match="must list every step once"):
        annealing_areas(table.iloc[[0, 2, 3]])
    const = annealing_areas(schedule(100, 1e-3, "constant"))
    assert np.allclose(const.S2, 0) and const.S1.iloc[-1] == pytest.approx(0.1)


def test_lr_annealing_predicts_a_new_schedule():
    """Fit curves of cosine and constant runs; predict a WSD run's final loss within its band."""
    law = bs.law("lr-annealing")
    values = {"L0": 2.6, "la": -0.5, "alpha": 0.5, "c": 0.3}
    curves = pd.concat(
        [
            schedule(3000, 3e-3, "cosine", warmup=100, run="cos"),
            schedule(3000, 3e-3, "constant", warmup=100, run="const"),
            schedule(2000, 3e-3, "wsd", warmup=100, run="wsd-short"),
        ]
    )
    feats = annealing_areas(curves).iloc[::50]
    train = bs.simulate(law, {"S1": feats.S1.values, "S2": feats.S2.values}, params=values, noise=0.003, seed=1)
    result = bs.fit(law, train, seed=0, **FAST)
    new = annealing_areas(schedule(4000, 3e-3, "wsd", warmup=100, run="wsd")).iloc[[-1]]
    constants = result.constants
    truth = law.mean(values, {"S1": new.S1.values, "S2": new.S2.values}, constants)[0]
    row = result.predict(new[["S1", "S2"]]).iloc[0]
    assert row.lower < truth < row.upper
