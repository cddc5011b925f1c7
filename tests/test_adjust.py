"""Priors: changed at call time (`bs.fit(..., priors=..., fixed=...)`, `--prior`, `--fix`) and checked before a
fit against the runs (`bs.sample_prior`)."""

import numpy as np
import pytest

import bayescale as bs
from bayescale.laws import adjusted
from bayescale.simulate import chinchilla_runs, simulate
from tests.conftest import SMALL

TIGHT_ALPHA = {"dist": "TruncatedNormal", "mu": 0.5, "sigma": 0.005, "lower": 0.0}


def test_a_fixed_parameter_becomes_a_constant_and_a_prior_is_replaced():
    base = bs.law("chinchilla")
    law = adjusted(base, priors={"alpha": TIGHT_ALPHA}, fixed={"E": 1.69})
    assert "E" not in law.params and law.constants["E"] == 1.69 and "E" not in law.published
    assert law.params["alpha"].prior.dist == "TruncatedNormal" and law.params["alpha"].prior.args["mu"] == 0.5
    assert law.params["beta"].prior == base.params["beta"].prior  # untouched
    assert "E fixed at 1.69" in law.title and "E = 1.69" in law.source
    assert adjusted(base) is base


def test_fixed_sets_a_laws_constant_such_as_the_vocabulary():
    """data-constrained-overfit saturates at log(vocab): another tokenizer's vocabulary moves that ceiling."""
    base = bs.law("data-constrained-overfit")
    law = adjusted(base, fixed={"vocab": 32000})
    assert law.constants["vocab"] == 32000.0 and law.params == base.params and "vocab fixed at 32000" in law.title
    params = {k: p.value for k, p in base.params.items()}
    heavy = {"N": np.array([8e9]), "D": np.array([9e11]), "U": np.array([1e8])}  # 9,000 epochs at 80 params/token
    loss = {"loss": np.array([3.0])}
    top = {
        name: float(each.mean(params, heavy, each.resolve_constants(loss))[0])
        for name, each in (("gpt2", base), ("32k", law))
    }
    assert top["gpt2"] == pytest.approx(np.log(50257), rel=1e-3)
    assert top["32k"] == pytest.approx(np.log(32000), rel=1e-3)
    with pytest.raises(bs.BayescaleError, match="constants fixed= can set: D0, N0, tokens_per_param, vocab"):
        adjusted(base, fixed={"vocb": 32000})


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(fixed={"Ee": 1.0}), r"'Ee' is not a parameter of law 'chinchilla'; did you mean 'E'\?"),
        (dict(priors={"alfa": TIGHT_ALPHA}), r"did you mean 'alpha'\?"),
        (dict(fixed={"E": "high"}), "a fixed parameter takes a finite number"),
        (dict(fixed={"E": float("nan")}), "a fixed parameter takes a finite number"),
        (dict(priors={"alpha": {"dist": "Normall"}}), "distribution 'Normall' is not supported"),
        (dict(priors={"alpha": 0.3}), "params.alpha.prior': must be a table"),
        (dict(priors={"alpha": {"dist": "Normal", "mu": 0.3}}), r"Normal needs \['mu', 'sigma'\]"),
    ],
)
def test_bad_changes_are_named(change, message):
    with pytest.raises(bs.BayescaleError, match=message):
        adjusted(bs.law("chinchilla"), **change)


def test_fit_with_a_fixed_parameter_and_a_prior_saves_and_reloads(tmp_path):
    data = chinchilla_runs(n=80, noise=0.01, seed=4)  # published parameters: E 1.69, alpha 0.34, beta 0.28
    fixed = bs.fit("chinchilla", data, fixed={"E": 1.69}, seed=0, **SMALL)
    assert "E" not in fixed.var_names
    lo, hi = np.quantile(fixed.draws("alpha"), [0.05, 0.95])
    assert lo < 0.34 < hi  # the truth, with E held at its true value
    pulled = bs.fit("chinchilla", data, priors={"alpha": TIGHT_ALPHA}, seed=0, discrepancy=0.0, **SMALL)
    assert abs(np.median(pulled.draws("alpha")) - 0.5) < 0.02  # a prior 30 sd from the data's answer wins
    loaded = bs.load(fixed.save(tmp_path / "fixed.nc"))
    assert loaded.law.title == fixed.law.title and "E" not in loaded.law.params
    new = {"N": [7e10], "D": [1.4e12]}
    np.testing.assert_allclose(loaded.predict(new)["median"], fixed.predict(new)["median"])


def test_prior_predictive_holds_the_runs_unless_a_prior_contradicts_them():
    import matplotlib

    matplotlib.use("Agg")
    data = chinchilla_runs(n=60, noise=0.01, seed=4)
    check = bs.sample_prior("chinchilla", data, draws=300, seed=1)
    assert check.predictive.shape == (300, 60) and check.params["alpha"].shape == (300,)
    table = check.table(0.9)
    assert table.inside.mean() >= 0.9  # the catalogue's priors are wide enough for the published law's runs
    assert 1.5 < (table.prior_upper / table.prior_lower).median() < 100  # and say something
    again = bs.sample_prior("chinchilla", data, draws=300, seed=1)
    np.testing.assert_array_equal(again.predictive, check.predictive)  # the same seed, the same draws
    wrong = bs.sample_prior("chinchilla", data, draws=300, priors={"E": {"dist": "Normal", "mu": 5.0, "sigma": 0.01}})
    assert wrong.table().inside.sum() == 0 and "holds 0 of 60 runs" in wrong.summary()
    ax = check.plot()
    labels = ax.get_legend_handles_labels()[1]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "N*D" and "your runs (60 of 60 inside)" in labels


@pytest.mark.parametrize(
    "tie, message",
    [
        ({"beta": "alfa"}, "'alfa' must be a free parameter of law 'chinchilla' that is not tied itself"),
        ({"beta": "beta"}, "'beta' must be a free parameter"),
        ({"bta": "alpha"}, r"did you mean 'beta'\?"),
    ],
)
def test_bad_ties_are_named(tie, message):
    with pytest.raises(bs.BayescaleError, match=message):
        adjusted(bs.law("chinchilla"), tie=tie)


def test_a_tied_parameter_takes_the_others_value_in_the_fit_and_the_allocation():
    n = np.exp(np.random.default_rng(3).uniform(np.log(7e7), np.log(1.6e10), 80))
    d = np.exp(np.random.default_rng(4).uniform(np.log(5e9), np.log(5e11), 80))
    data = simulate("chinchilla", {"N": n, "D": d}, params={"alpha": 0.3, "beta": 0.3}, seed=5)
    fit = bs.fit("chinchilla", data, tie={"beta": "alpha"}, seed=0, discrepancy=0.0, **SMALL)
    assert "beta" not in fit.law.params and "(beta tied to alpha)" in fit.law.title
    np.testing.assert_array_equal(fit.draws("beta"), fit.draws("alpha"))  # reported as a derived quantity
    lo, hi = np.quantile(fit.draws("alpha"), [0.05, 0.95])
    assert lo < 0.3 < hi
    table = fit.allocate([1e23]).table  # the closed-form optimum reads beta from the derived values
    assert np.isfinite(table.N_median[0]) and table.N_lower[0] < table.N_median[0] < table.N_upper[0]
