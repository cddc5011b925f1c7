"""Compute-optimal allocation, IsoFLOP analysis and family crossover against known truths."""

import subprocess
import sys

import numpy as np
import pytest

import bayescale as bs
from bayescale._isoflop_sim import chinchilla_isoflops
from bayescale.allocate import optimal_n
from bayescale.simulate import chinchilla_runs
from tests.conftest import FAST

PUBLISHED = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def true_n_opt(c, p=PUBLISHED, k=6.0):
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return g * (c / k) ** (p["beta"] / (p["alpha"] + p["beta"]))


def test_numeric_optimum_matches_closed_form(chinchilla_fit):
    budgets = np.geomspace(1e19, 1e25, 25)
    closed = optimal_n(chinchilla_fit, budgets, method="closed")
    numeric = optimal_n(chinchilla_fit, budgets, method="numeric")
    assert np.max(np.abs(numeric / closed - 1)) < 1e-6


def test_numeric_path_is_vectorised(chinchilla_fit, monkeypatch):
    """Every draw and budget at once: a few dozen whole-array law evaluations, each over all draws x budgets, not
    one Python-level search per draw (the mechanism, not seconds: the machines are shared)."""
    from bayescale import allocate

    budgets = np.geomspace(1e19, 1e25, 20)
    shapes = []
    real = allocate._loss

    def counted(fit, p, n, d, fixed):
        shapes.append(np.shape(n))
        return real(fit, p, n, d, fixed)

    monkeypatch.setattr(allocate, "_loss", counted)
    n_opt = optimal_n(chinchilla_fit, budgets, method="numeric")
    assert n_opt.shape == (chinchilla_fit.n_draws, budgets.size)
    assert len(shapes) < 100, len(shapes)
    assert all(np.prod(shape) >= chinchilla_fit.n_draws * budgets.size for shape in shapes), shapes


def test_interval_of_n_opt_contains_the_truth(chinchilla_fit):
    alloc = chinchilla_fit.allocate([5.76e23], prob=0.9)
    row = alloc.table.iloc[0]
    truth = true_n_opt(5.76e23)
    assert row.N_lower < truth < row.N_upper, (row, truth)
    assert row.tokens_per_param_median == pytest.approx(row.D_median / row.N_median, rel=0.3)
    assert alloc.draws["N"].shape == (chinchilla_fit.n_draws, 1)
    np.testing.assert_allclose(alloc.draws["N"] * alloc.draws["D"] * 6, 5.76e23, rtol=1e-9)


def test_inference_cost_shrinks_the_model(chinchilla_fit):
    plain = chinchilla_fit.allocate([1e23]).table.iloc[0]
    served = chinchilla_fit.allocate([1e23], inference_tokens=2e12).table.iloc[0]
    assert served.N_median < plain.N_median
    assert served.tokens_per_param_median > plain.tokens_per_param_median


def test_target_loss_is_reached_with_the_asked_probability(chinchilla_fit):
    loose = chinchilla_fit.target_loss(2.0, prob=0.5).iloc[0]
    strict = chinchilla_fit.target_loss(2.0, prob=0.95).iloc[0]
    assert loose.C < strict.C
    # the law itself at the returned (N, D), as target_loss uses it (no run noise, no extrapolation discrepancy)
    from bayescale.allocate import _loss, _params

    loss = _loss(chinchilla_fit, _params(chinchilla_fit), np.array([[strict.N]]), np.array([[strict.D]]), {})[:, 0]
    assert np.mean(loss <= 2.0) >= 0.95 and strict.P_reached >= 0.95
    with pytest.raises(bs.BayescaleError, match="no budget up to"):
        chinchilla_fit.target_loss(1.0, prob=0.9)


def test_allocation_needs_n_and_d():
    data = bs.simulate("power", {"x": np.geomspace(1e7, 1e10, 20)}, seed=0)
    power = bs.fit("power", data, seed=0, **FAST)
    with pytest.raises(bs.BayescaleError, match="allocation needs a law of N and D"):
        power.allocate([1e21])


def test_isoflop_covers_the_truth_where_parabolas_miss():
    """Wide grid (N*/3 .. 30 N*), centred with Kaplan's exponent 0.73: the classic recipe is biased."""
    data, a_true = chinchilla_isoflops(seed=0)
    parabola = bs.parabola_isoflop(data)["a"]
    iso = bs.fit_isoflop(data, seed=0, **FAST)
    a = iso.exponent(prob=0.9)
    assert a["lower"] < a_true < a["upper"], (a, a_true)
    assert not a["lower"] < parabola < a["upper"], (parabola, a)
    assert abs(parabola - a_true) > 0.03
    assert iso.fit.diagnostics["max_rhat"] <= 1.01 and iso.fit.diagnostics["divergences"] == 0
    optima = iso.optima()
    assert len(optima) == len(iso.budgets) and (optima.N_opt_lower < optima.N_opt_upper).all()


def test_crossover_covers_a_known_crossing():
    """Family b starts better (smaller reducible terms) but has a higher floor E: they cross near 1.5e21 FLOPs."""
    b_params = {"E": 1.9, "a": -1.6, "b": -1.4}
    fam_a = chinchilla_runs(n=120, noise=0.005, seed=11)
    fam_b = chinchilla_runs(n=120, noise=0.005, seed=12, params=b_params)
    fit_a = bs.fit("chinchilla", fam_a, seed=0, **FAST)
    fit_b = bs.fit("chinchilla", fam_b, seed=0, **FAST)
    grid = np.geomspace(1e18, 1e26, 33)
    # the true crossing, from the true laws through the same allocation code (numeric, fine grid)
    law = bs.law("chinchilla")
    truth_a = {k: p.value for k, p in law.params.items()}
    truth_b = {**truth_a, **b_params}

    def true_opt_loss(values, c):
        ns = np.geomspace(1e6, 1e15, 20001)
        return np.min(law.mean(values, {"N": ns, "D": c / (6 * ns)}, {"N0": 1e9, "D0": 1e11}))

    fine = np.geomspace(1e18, 1e26, 400)
    diff = np.array([true_opt_loss(truth_a, c) - true_opt_loss(truth_b, c) for c in fine])
    c_true = fine[np.flatnonzero(np.sign(diff[1:]) != np.sign(diff[:-1]))[0]]
    result = bs.crossover(fit_a, fit_b, grid, labels=("a", "b"))
    assert result.crossing is not None, result
    assert result.crossing["lower"] < c_true < result.crossing["upper"], (result.crossing, c_true)
    assert result.table["P(a better)"].iloc[0] < 0.1 and result.table["P(a better)"].iloc[-1] > 0.9


def test_crossover_reports_every_crossing():
    """a wins only in the middle of the grid (P(a better) 0 -> 1 -> 0): two crossings, each with its interval."""
    from bayescale.crossover import _crossings

    c = np.geomspace(1e18, 1e26, 41)
    x = np.log10(c)
    rng = np.random.default_rng(0)
    shift = rng.normal(0, 0.1, (2000, 1))  # each draw's crossings move together by ~0.1 decade
    diff = (x[None, :] - 20 - shift) * (x[None, :] - 23 - shift)  # negative (a better) between 1e20 and 1e23
    crossings, first = _crossings(diff, c, prob=0.9)
    assert len(crossings) == 2, crossings
    for crossing, truth in zip(crossings, (1e20, 1e23), strict=True):
        assert crossing["lower"] < truth < crossing["upper"], (crossing, truth)
        assert 1.2 < crossing["upper"] / crossing["lower"] < 3, crossing  # +-1.645 x 0.1 decade, not the grid
    assert np.nanmedian(first) == pytest.approx(1e20, rel=0.1)
    one, _ = _crossings(diff[:, :20], c[:20], prob=0.9)  # a grid that ends before the second crossing
    assert len(one) == 1 and one[0]["lower"] < 1e20 < one[0]["upper"]


def test_plots_take_and_return_an_axis(chinchilla_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert chinchilla_fit.allocate(np.geomspace(1e20, 1e24, 5)).plot(ax=ax) is ax
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("training compute")
    plt.close("all")


def test_cli_allocate(tmp_path, chinchilla_fit):
    path = chinchilla_fit.save(tmp_path / "fit.nc")
    out = subprocess.run(
        [sys.executable, "-m", "bayescale.cli", "allocate", str(path), "--compute", "1e21,1e23"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "N_median" in out.stdout and "tokens_per_param_median" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "bayescale.cli", "allocate", str(path), "--target-loss", "2.0", "--prob", "0.9"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Cheapest compute reaching loss 2.0" in out.stdout
