"""The default extrapolation drift, its scale learned by leave-future-out inside the data (bayescale._discrepancy)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import _discrepancy
from bayescale.simulate import chinchilla_runs, design_runs
from tests.conftest import FAST, shared_path
from tests.test_compare import misspecified

# A bend that starts inside the fitted runs and is steeper than the 0.01 floor
BEND_AT, BEND_RATE = 1e20, 0.04


def test_shift_draws_fixed_and_learned():
    distance = np.array([0.0, 0.05, 1.0, 3.0])
    slope, edge, _ = _discrepancy.unit_draws(4000, 3)
    fixed = _discrepancy.shift_draws(0.02, distance, 4000, seed=3)
    np.testing.assert_allclose(fixed, 0.02 * slope[:, None] * distance[None, :])  # a fixed scale: slope only
    setting = {"scales": [0.01, 0.1], "offsets": [0.0, 0.03], "weights": [0.25, 0.75]}
    mixed = _discrepancy.shift_draws(setting, distance, 4000, seed=3)
    assert np.all(mixed[:, 0] == 0.0)  # nothing moves inside the data
    ramp = 1 - np.exp(-distance / _discrepancy.RAMP)
    narrow = np.isclose(mixed[:, 3], 0.01 * slope * 3.0)  # draws given the first pair: slope only
    assert np.mean(narrow) == pytest.approx(0.25, abs=0.035)  # 5 s.e. for 4000 draws
    np.testing.assert_allclose(mixed[~narrow, 3], 0.1 * slope[~narrow] * 3.0 + 0.03 * edge[~narrow] * ramp[3])
    assert _discrepancy.scale_of(setting) == pytest.approx(0.0775)
    assert _discrepancy.offset_of(setting) == pytest.approx(0.0225)
    # rms shift one e-fold out: sqrt(0.25 * 0.01^2 + 0.75 * (0.1^2 + (0.03 * ramp(1))^2))
    assert _discrepancy.spread_at(setting) == pytest.approx(np.sqrt(0.25e-4 + 0.75 * (0.01 + (0.03 * ramp[2]) ** 2)))
    np.testing.assert_array_equal(mixed, _discrepancy.shift_draws(setting, distance, 4000, seed=3))
    assert not _discrepancy.is_active(0.0) and _discrepancy.is_active(setting)
    assert _discrepancy.is_active({"scales": [0.0], "offsets": [0.01], "weights": [1.0]})


def test_true_law_keeps_the_floor_scale(chinchilla_fit):
    """Simulated from the law itself: the 30 largest runs are predicted well, so the scale stays near 0.01."""
    setting = chinchilla_fit.meta["discrepancy"]
    assert setting["learned"] and setting["heldout_runs"] == 30
    assert _discrepancy.scale_of(setting) < 0.02, setting
    assert setting["heldout_rms_log_error"] < 0.02
    assert "refitted without the 30 runs" in chinchilla_fit.extrapolation_note


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
    assert not setting["learned"] and setting["scales"] == [0.01]
    assert "too few runs" in fitted.extrapolation_note and "10 runs, 2 above the cut" in fitted.extrapolation_note


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
    assert fitted.meta["discrepancy"]["learned"] and "with 1/loss >" in fitted.extrapolation_note
