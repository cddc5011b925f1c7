"""The default extrapolation drift, its scale learned by leave-future-out inside the data (bayescale._discrepancy)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import _discrepancy
from bayescale.simulate import chinchilla_runs, design_runs, simulate
from tests.conftest import FAST, shared_path
from tests.test_compare import misspecified

# A bend that starts inside the fitted runs and is steeper than the 0.01 floor
BEND_AT, BEND_RATE = 1e20, 0.04


def test_shift_draws_fixed_and_learned():
    distance = np.array([0.0, 0.05, 1.0, 3.0])
    slope, edge, _ = _discrepancy.unit_draws(4000, 3)
    assert abs(np.mean(slope)) < 0.05 and np.std(slope) == pytest.approx(1.0, abs=0.05)  # Gaussian slope
    fixed = _discrepancy.shift_draws(0.02, distance, 4000, seed=3)
    np.testing.assert_allclose(fixed, 0.02 * slope[:, None] * distance[None, :])  # a fixed scale: slope only
    setting = {"means": [0.0, -0.01], "scales": [0.01, 0.1], "offsets": [0.0, 0.03], "weights": [0.25, 0.75]}
    mixed = _discrepancy.shift_draws(setting, distance, 4000, seed=3)
    assert np.all(mixed[:, 0] == 0.0)  # nothing moves inside the data
    ramp = 1 - np.exp(-distance / _discrepancy.RAMP)
    narrow = np.isclose(mixed[:, 3], 0.01 * slope * 3.0)  # draws given the first point: slope only
    assert np.mean(narrow) == pytest.approx(0.25, abs=0.035)  # 5 s.e. for 4000 draws
    wide = (-0.01 + 0.1 * slope[~narrow]) * 3.0 + 0.03 * edge[~narrow] * ramp[3]
    np.testing.assert_allclose(mixed[~narrow, 3], wide)
    assert _discrepancy.scale_of(setting) == pytest.approx(0.0775)
    assert _discrepancy.offset_of(setting) == pytest.approx(0.0225)
    assert _discrepancy.mean_of(setting) == pytest.approx(-0.0075)
    # rms shift one e-fold out: sqrt(0.25 * 0.01^2 + 0.75 * (0.01^2 + 0.1^2 + (0.03 * ramp(1))^2))
    expected = np.sqrt(0.25e-4 + 0.75 * (1e-4 + 0.01 + (0.03 * ramp[2]) ** 2))
    assert _discrepancy.spread_at(setting) == pytest.approx(expected)
    np.testing.assert_array_equal(mixed, _discrepancy.shift_draws(setting, distance, 4000, seed=3))
    assert not _discrepancy.is_active(0.0) and _discrepancy.is_active(setting)
    assert _discrepancy.is_active({"scales": [0.0], "offsets": [0.01], "weights": [1.0]})


def test_joint_evidence_matches_the_dense_gaussian():
    """The rank-2 closed form equals a dense multivariate normal density, averaged over draws."""
    from scipy import stats

    rng = np.random.default_rng(0)
    d = np.array([0.1, 0.4, 1.2, 2.0])
    residual, noise = rng.normal(0, 0.02, (5, 4)), np.abs(rng.normal(0.01, 0.002, 5))
    points = {"means": [0.0, 0.01, -0.02], "offsets": [0.0, 0.02, 0.05], "scales": [0.0, 0.03, 0.01]}
    got = _discrepancy.joint_evidence(residual, noise, d, points)
    r = _discrepancy._ramp(d)
    for g in range(3):
        m, b, s = (points[k][g] for k in ("means", "offsets", "scales"))
        dens = [
            stats.multivariate_normal(m * d, v**2 * np.eye(4) + s * s * np.outer(d, d) + b * b * np.outer(r, r)).logpdf(
                e
            )
            for e, v in zip(residual, noise, strict=True)
        ]
        assert got[g] == pytest.approx(np.log(np.mean(np.exp(dens))), rel=1e-9)


def _held_out_runs(scale: float, rng: np.random.Generator, points) -> _discrepancy.HeldOut:
    """20 held-out runs 0.3-3 e-folds out whose log target misses the law by N(0, (scale d)^2), noise 0.003."""
    d = np.linspace(0.3, 3.0, 20)
    log_mean = rng.normal(0.0, 1e-4, (100, len(d)))
    y = np.exp(scale * d * rng.standard_normal(len(d)) + 0.003 * rng.standard_normal(len(d)))
    return _discrepancy.held_out(log_mean, np.full(100, 0.003), "normal", 4.0, d, y, points)


def test_calibrated_prior_learns_the_scale_that_predicts_held_out_runs():
    """Tasks whose held-out runs miss by a slope of 0.02 per e-fold and whose own leave-future-out says nothing:
    the learned prior's band is that wide; when each task's own evidence points at its own scale, it is trusted."""
    points = _discrepancy.grid() | {"growth": 1.0}
    rng = np.random.default_rng(0)
    held = [_held_out_runs(0.02, rng, points) for _ in range(30)]
    silent = np.zeros((30, len(points["scales"])))
    prior, numbers = _discrepancy.calibrated_prior(held, silent, points)
    assert _discrepancy.spread_at(points | {"weights": prior}, 2.0) == pytest.approx(0.04, rel=0.35), numbers
    # each task's own evidence points at its own scale, and its future agrees: the evidence gets full weight
    log_s = np.log(np.where(points["scales"] > 0, points["scales"], 0.001))
    centres = np.exp(rng.uniform(np.log(0.003), np.log(0.1), 30))
    held = [_held_out_runs(c, rng, points) for c in centres]
    own = -0.5 * ((log_s[None, :] - np.log(centres)[:, None]) / 0.2) ** 2
    prior, numbers = _discrepancy.calibrated_prior(held, own, points)
    assert numbers["lfo_weight"] >= 0.5, numbers
    updated = [
        _discrepancy.spread_at(_discrepancy.reweight({**points, "cuts": [{"loglik": o}]}, numbers | {"weights": prior}))
        for o in own
    ]
    ratio = np.array(updated) / centres  # rms shift one e-fold out against the task's own scale
    assert np.mean((ratio > 0.5) & (ratio < 2.0)) >= 0.8, ratio.round(2)


def test_interval_scores_match_the_definition():
    """The objective's interval score of a one-point grid posterior equals Gneiting & Raftery's for that Gaussian,
    summed over the 50, 80, 90 and 95% bands (the levels bands are judged at)."""
    from scipy import stats

    points = _discrepancy.grid() | {"growth": 1.0}
    held = _held_out_runs(0.02, np.random.default_rng(1), points)
    g = int(np.flatnonzero((points["scales"] == 0.02) & (points["offsets"] == 0.0))[0])
    q = np.zeros(len(points["scales"]))
    q[g] = 1.0
    d = np.linspace(0.3, 3.0, 20)
    sd = np.sqrt(0.003**2 + (0.02 * d) ** 2)
    want = np.zeros(20)
    for level in (0.5, 0.8, 0.9, 0.95):
        c = stats.norm.ppf((1 + level) / 2) * sd
        want += 2 * c + 2 / (1 - level) * np.maximum(held.miss - c, 0)
    np.testing.assert_allclose(_discrepancy.interval_scores(held, q), want, rtol=0.02)
    c90 = stats.norm.ppf(0.95) * sd  # one level on its own (bench/headroom.py reads the 90% band)
    want90 = 2 * c90 + 20 * np.maximum(held.miss - c90, 0)
    np.testing.assert_allclose(_discrepancy.interval_scores(held, q, levels=(0.9,)), want90, rtol=0.02)


def test_the_corpus_prior_ships_with_the_package():
    """The learned prior is package data (a missing file would silently fall back to a uniform grid)."""
    prior = _discrepancy.shipped_prior()
    assert prior["tasks"] >= 40 and len(prior["families"]) >= 8, {k: prior.get(k) for k in ("tasks", "families")}
    assert len(prior["weights"]) == len(prior["scales"]) and sum(prior["weights"]) == pytest.approx(1.0)
    assert prior["growth"] in (0.5, 0.75, 1.0) and prior["lfo_weight"] in _discrepancy.LFO_WEIGHTS


def test_true_law_keeps_the_floor_scale(chinchilla_fit):
    """Simulated from the law itself: the 30 largest runs are predicted well, so the scale stays near 0.01."""
    setting = chinchilla_fit.meta["discrepancy"]
    assert setting["learned"] and setting["heldout_runs"] == 30
    assert _discrepancy.scale_of(setting) < 0.02, setting
    assert setting["heldout_rms_log_error"] < 0.02
    assert "without the 30 runs with" in chinchilla_fit.extrapolation_note


def test_learned_scale_is_saved_and_reproducible(tmp_path, chinchilla_data, chinchilla_fit):
    loaded = bs.load(chinchilla_fit.save(tmp_path / "fit.nc"))
    assert loaded.meta["discrepancy"] == chinchilla_fit.meta["discrepancy"]
    again = bs.fit("chinchilla", chinchilla_data, seed=1, **FAST)
    assert again.meta["discrepancy"]["weights"] == chinchilla_fit.meta["discrepancy"]["weights"]
    beyond = pd.DataFrame({"N": [7e10], "D": [1.4e12]})
    pd.testing.assert_frame_equal(loaded.predict(beyond), again.predict(beyond))


def test_too_few_runs_fall_back_to_the_floor_and_say_why():
    fitted = bs.fit("chinchilla", chinchilla_runs(n=10, seed=5), seed=0, **FAST)
    setting = fitted.meta["discrepancy"]
    assert not setting["learned"]
    np.testing.assert_allclose(setting["weights"], _discrepancy.shipped_prior()["weights"], rtol=1e-12)  # prior alone
    assert "not updated by your runs (too few runs to hold 3 out and refit (10 runs))" in fitted.extrapolation_note


def test_few_heldout_runs_widen_without_a_false_alarm():
    """12 runs from the law itself: 3 held out are little evidence, so the bands widen, but no 'poor' warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", bs.SamplingWarning)
        fitted = bs.fit("chinchilla", chinchilla_runs(n=12, seed=5), seed=0, **FAST)
    setting = fitted.meta["discrepancy"]
    assert setting["learned"] and setting["heldout_runs"] == 3 and not _discrepancy.is_poor(setting)


def test_learned_drift_covers_a_bend_inside_the_data_where_the_fixed_floor_does_not():
    """The law bends away within the largest fitted runs: leave-future-out sees it and widens the bands."""
    data = misspecified(bend_at=BEND_AT, rate=BEND_RATE)
    fixed = bs.calibration("chinchilla", data, fraction=0.25, discrepancy=0.01, **FAST).table.set_index("prob")
    learned = bs.calibration("chinchilla", data, fraction=0.25, **FAST).table.set_index("prob")
    assert fixed.loc[0.9, "coverage"] < 0.6, fixed
    assert learned.loc[0.9, "coverage"] >= 0.8, learned
    assert learned.loc[0.9, "mean_rel_width"] < 0.25, learned


def test_poor_extrapolation_inside_the_data_is_reported_in_words():
    with pytest.warns(UserWarning, match="predicts your own largest runs poorly"):
        fitted = bs.fit("chinchilla", misspecified(bend_at=BEND_AT, rate=BEND_RATE), seed=0, **FAST)
    assert _discrepancy.is_poor(fitted.meta["discrepancy"])


def test_default_covers_the_real_misfitting_sweep():
    """The sweep where the fixed 0.01 drift under-covered (4 of 7 held-out runs): the learned one covers."""
    iso = pd.read_csv(shared_path("isoflops", "isoflops.csv"))
    data = bs.ScalingData.from_frame(
        iso[iso.experiment == "misfitting__fineweb_c4__transformer"],
        columns={"N": "params", "D": "tokens", "C": "budget", "loss": "loss"},
    )
    report = bs.calibration("chinchilla", data, holdout="budget", n_budgets=2, **FAST)
    row = report.table.set_index("prob").loc[0.9]
    assert row.n_heldout == 7 and row.coverage >= 6 / 7, report
    assert row.mean_rel_width < 0.1


@pytest.mark.parametrize("name", [n for n in bs.laws() if bs.law(n).design.get("ranges")])
def test_every_law_orders_its_runs_for_leave_future_out(name):
    law = bs.law(name)
    data = design_runs(law, seed=0)
    order, by = _discrepancy.order_of(law, data.with_inputs(law.inputs).frame)
    assert order.shape == (len(data),) and np.all(np.isfinite(order)) and np.ptp(order) > 0, by


def test_a_down_input_extrapolates_towards_smaller_values():
    """downstream-exp's new runs are better models (lower loss): order, frontier and distance point that way."""
    law = bs.law("downstream-exp")
    assert law.directions == {"loss": -1} and bs.law("chinchilla").directions == {"N": 1, "D": 1}
    data = design_runs(law, seed=0)
    order, by = _discrepancy.order_of(law, data.frame)
    assert by == "1/loss" and np.all(np.diff(order[np.argsort(data.frame["loss"].to_numpy())]) <= 0)
    fitted = bs.fit(law, data, seed=0, **FAST)
    low, high = data.frame["loss"].min(), data.frame["loss"].max()
    distance = fitted.distance(pd.DataFrame({"loss": [low / np.e, high * np.e, (low + high) / 2]}))
    np.testing.assert_allclose(distance, [1.0, 0.0, 0.0], atol=1e-12)
    assert fitted.meta["discrepancy"]["learned"] and "with 1/loss >=" in fitted.extrapolation_note


def isoflop_runs(budgets=(1e18, 3e18, 1e19, 3e19, 1e20), per_budget=(8, 8, 8, 8, 14), seed=0):
    """Chinchilla runs on IsoFLOP curves with a C column; the top budget holds 30% of the runs."""
    n, d, c = [], [], []
    for budget, k in zip(budgets, per_budget, strict=True):
        centre = np.sqrt(budget / 6 / 20)  # ~20 tokens per parameter
        sizes = centre * np.exp(np.linspace(-1.5, 1.5, k))
        n += list(sizes)
        d += list(budget / (6 * sizes))
        c += [budget] * k
    data = simulate("chinchilla", {"N": np.array(n), "D": np.array(d)}, noise=0.005, seed=seed)
    return bs.ScalingData.from_frame(data.frame.assign(C=c))


def test_a_compute_column_whose_top_budget_is_large_still_learns():
    """Defect 1: with budgets as C, the top budget holds > 20% of the runs; it is held out whole, not skipped."""
    data = isoflop_runs()
    order, by = _discrepancy.order_of(bs.law("chinchilla"), data.frame)
    masks = _discrepancy.cuts(order, n_params=5)
    assert by == "C" and masks, "no leave-future-out cut"
    top = data.frame["C"] == data.frame["C"].max()
    np.testing.assert_array_equal(~masks[0], top.to_numpy())  # the whole top budget, nothing else
    for inner in masks:  # budgets are never split
        assert data.frame["C"][inner].max() < data.frame["C"][~inner].min()
    fitted = bs.fit("chinchilla", data, seed=0, **FAST)
    setting = fitted.meta["discrepancy"]
    assert setting["learned"] and setting["heldout_runs"] == 14, fitted.extrapolation_note
    assert "C >= 1e+20" in fitted.extrapolation_note


def test_distance_counts_extrapolation_in_any_input(chinchilla_fit):
    """Defect 3: a model 3.5x larger than any fitted one, inside the fitted compute range, is 1.25 e-folds out."""
    frame = chinchilla_fit.data.frame
    n_max, nd_max = frame["N"].max(), (frame["N"] * frame["D"]).max()
    big_n = pd.DataFrame({"N": [3.5 * n_max], "D": [0.5 * nd_max / (3.5 * n_max)]})
    assert np.log(big_n.N * big_n.D)[0] < np.log(nd_max)  # inside the compute range
    assert chinchilla_fit.distance(big_n)[0] == pytest.approx(np.log(3.5), rel=1e-9)
    # tokens per parameter below the fitted range, N, D and compute inside it
    ratio = frame["D"] / frame["N"]
    i = int(np.argmin(ratio))
    odd = pd.DataFrame({"N": [frame["N"][i]], "D": [frame["D"][i] / np.e]})
    assert chinchilla_fit.distance(odd)[0] == pytest.approx(1.0, rel=1e-9)
    inside = pd.DataFrame({"N": [np.sqrt(frame["N"].min() * n_max)], "D": [frame["D"].median()]})
    assert chinchilla_fit.distance(inside)[0] == 0.0
    a = chinchilla_fit.predict(big_n).iloc[0]
    plain = bs.Fit(*_parts(chinchilla_fit), {**chinchilla_fit.meta, "discrepancy": 0.0}).predict(big_n).iloc[0]
    assert (a.mean_upper - a.mean_lower) > 1.2 * (plain.mean_upper - plain.mean_lower)


def _parts(fitted):
    return fitted.law, fitted.idata, fitted.spec, fitted.constants, fitted.data


def test_composition_keeps_the_downstream_drift(chinchilla_fit):
    """Defect 2: a chained prediction measures the downstream law's distance at the upstream loss (median)."""
    law = bs.law("downstream-exp")
    acc = bs.fit(law, design_runs(law, seed=0), seed=0, discrepancy=0.05, **FAST)
    at = pd.DataFrame({"N": [1e12], "D": [2e13]})
    loss = np.median(chinchilla_fit.predictive_draws(at, seed=1))
    d = acc.distance(pd.DataFrame({"loss": [loss]}))[0]
    assert d > 0.05  # a lower loss than any fitted run
    drifted = acc.mean_draws(at, from_fit=chinchilla_fit)
    plain = bs.Fit(*_parts(acc), {**acc.meta, "discrepancy": 0.0}).mean_draws(at, from_fit=chinchilla_fit)
    # same draws otherwise, so their ratio is the drift alone: slope 0.05 per e-fold, d e-folds out
    assert np.std(np.log(drifted / plain)) == pytest.approx(0.05 * d, rel=0.1)


def test_block_sums_equal_the_whole_matrix(chinchilla_fit, monkeypatch):
    """For 10^5-10^6 runs the learning sums over held-out runs block by block; the result is the same number."""
    fit, frame = chinchilla_fit, chinchilla_fit.data.frame
    heldout = frame.iloc[100:].reset_index(drop=True)
    points = _discrepancy.grid()
    y = np.log(heldout["loss"].to_numpy())
    d = np.linspace(0.0, 1.5, len(heldout))
    g, r = _discrepancy._axes_of(d, points)
    log_w = np.random.default_rng(0).normal(0, 0.3, fit.n_draws)
    whole = _discrepancy.joint_evidence(y[None, :] - np.log(fit.mean_draws(heldout)), fit.noise_sd(), d, points, log_w)
    monkeypatch.setattr(_discrepancy, "BLOCK_CELLS", fit.n_draws * 7)  # blocks of 7 runs
    sums, _ = _discrepancy._residual_sums(fit, heldout, y, g, r, log_w)
    blocked = _discrepancy._evidence(sums, fit.noise_sd(), g, r, points, log_w)
    np.testing.assert_allclose(blocked, whole, rtol=1e-10)
    idx = np.arange(90, 150)
    np.testing.assert_allclose(
        _discrepancy.summed_loglik(fit, frame, fitted_on=True)(idx), fit.log_likelihood()[:, idx].sum(axis=1)
    )


def test_drift_distance_is_relative_to_the_fitted_span():
    """With span power p, e-folds beyond the data count per (e-folds the runs span)**p along each axis: a law fitted
    over one decade and asked one decade out is as far out as one fitted over two decades asked two decades out
    (p = 1). A frontier saved without spans (older fits) reads as plain e-folds."""
    law = bs.law("power")
    one = pd.DataFrame({"x": np.geomspace(1e8, 1e9, 5)})
    two = pd.DataFrame({"x": np.geomspace(1e8, 1e10, 5)})
    e1, e2 = _discrepancy.frontier(law, one), _discrepancy.frontier(law, two)
    assert e1["spans"]["inputs"]["x"] == pytest.approx(np.log(10)) and e2["spans"]["position"] == pytest.approx(
        np.log(100)
    )
    at_1e10, at_1e12 = pd.DataFrame({"x": [1e10]}), pd.DataFrame({"x": [1e12]})
    assert _discrepancy.distance(law, e1, at_1e10)[0] == pytest.approx(np.log(10))  # p = 0: plain e-folds
    assert _discrepancy.distance(law, e1, at_1e10, 1.0)[0] == pytest.approx(1.0)
    assert _discrepancy.distance(law, e2, at_1e12, 1.0)[0] == pytest.approx(1.0)
    assert _discrepancy.distance(law, e1, at_1e10, 0.5)[0] == pytest.approx(np.sqrt(np.log(10)))
    single = _discrepancy.frontier(law, pd.DataFrame({"x": [1e9, 1e9]}))  # span 0: counted as MIN_SPAN
    assert _discrepancy.distance(law, single, at_1e10, 1.0)[0] == pytest.approx(np.log(10) / _discrepancy.MIN_SPAN)
    old = {k: v for k, v in e1.items() if k != "spans"}
    assert _discrepancy.distance(law, old, at_1e10, 1.0)[0] == pytest.approx(np.log(10))


def test_the_learned_span_power_sets_the_band(chinchilla_fit):
    """The shipped prior's span power reaches the fit's setting and its bands: a narrower fitted span widens the
    band at the same point (the drift's distance grows), plain e-folds (power 0) leave it as it was."""
    setting = chinchilla_fit.meta["discrepancy"]
    assert setting["span_power"] == _discrepancy.shipped_prior().get("span_power", 0.0)
    assert _discrepancy.ramp_of(setting) == _discrepancy.ramp_of(_discrepancy.shipped_prior())
    new = pd.DataFrame(
        {"N": [4 * chinchilla_fit.data.frame["N"].max()], "D": [4 * chinchilla_fit.data.frame["D"].max()]}
    )
    frontier = chinchilla_fit.meta["frontier"]
    narrow = {**frontier, "spans": {"position": 0.5, "inputs": {"N": 0.25, "D": 0.25}, "ratio": 0.5}}

    def width(power: float, edges: dict) -> float:
        meta = {**chinchilla_fit.meta, "frontier": edges, "discrepancy": {**setting, "span_power": power}}
        row = bs.Fit(*_parts(chinchilla_fit), meta).predict(new).iloc[0]
        return float(np.log(row.mean_upper / row.mean_lower))

    assert width(0.0, narrow) == pytest.approx(width(0.0, frontier), rel=1e-9)
    assert width(1.0, narrow) > 1.5 * width(1.0, frontier)
    assert chinchilla_fit.drift_distance(new)[0] == pytest.approx(
        _discrepancy.distance(chinchilla_fit.law, frontier, new, setting["span_power"])[0]
    )


def test_the_ramp_sets_how_soon_the_edge_offset_acts():
    """A setting's ramp is how far beyond the data its edge offset sets in: a short ramp applies the whole offset just
    past the edge, the default (settings saved without one) only part of it; the evidence reads the same ramp."""
    d = np.array([0.0, 0.02, 1.0])
    setting = {"scales": [0.0], "offsets": [0.05], "weights": [1.0]}
    default = _discrepancy.shift_draws(setting, d, 2000, seed=1)
    short = _discrepancy.shift_draws(setting | {"ramp": 0.005}, d, 2000, seed=1)
    assert np.all(default[:, 0] == 0) and np.all(short[:, 0] == 0)  # nothing moves inside the data
    assert np.std(short[:, 1]) == pytest.approx(0.05 * (1 - np.exp(-4)), rel=0.05)  # 98% set in at 0.02
    assert np.std(default[:, 1]) == pytest.approx(0.05 * (1 - np.exp(-0.2)), rel=0.05)  # 18% at the default 0.1
    np.testing.assert_allclose(short[:, 2], default[:, 2], rtol=1e-4)  # far out both are whole
    assert _discrepancy.spread_at(setting | {"ramp": 0.005}, 0.02) > 4 * _discrepancy.spread_at(setting, 0.02)
    points = {"means": [0.0], "offsets": [0.05], "scales": [0.0]}
    _, r_short = _discrepancy._axes_of(d, points | {"ramp": 0.005})
    _, r_default = _discrepancy._axes_of(d, points)
    assert r_short[1] > 0.95 and r_default[1] < 0.2
