"""Law comparison (PSIS-LOO, leave-future-out) and held-out calibration of extrapolation bands."""

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


def test_loo_prefers_the_true_law(chinchilla_fit, kaplan_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = bs.compare({"chinchilla": chinchilla_fit, "kaplan": kaplan_fit})
    assert {"elpd_loo", "se", "elpd_diff", "weight", "n_high_pareto_k"} <= set(table.columns)
    assert table.index[0] == "chinchilla" and table["rank"].tolist() == [1, 2]  # ranks start at 1, as LFO's
    assert table.loc["kaplan", "elpd_diff"] > 2 * table.loc["kaplan", "dse"]


def test_high_pareto_k_runs_are_named():
    data = chinchilla_runs(n=40, noise=0.005, seed=3).frame
    data.loc[5, "loss"] *= 1.25  # one wild run steers a normal-likelihood fit on its own
    data = bs.ScalingData.from_frame(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1 = bs.fit("chinchilla", data, likelihood="normal", seed=0, **FAST)
        f2 = bs.fit("chinchilla", data, likelihood="normal", seed=1, **FAST)
    with pytest.warns(bs.compare.__globals__["ComparisonWarning"], match=r"Pareto k > 0.7.*run 5 \(N="):
        table = bs.compare({"a": f1, "b": f2})
    assert table["n_high_pareto_k"].max() >= 1


def test_compare_rejects_different_runs(chinchilla_fit):
    other = bs.fit("chinchilla", chinchilla_runs(n=60, seed=9), seed=0, **FAST)
    with pytest.raises(bs.BayescaleError, match="different runs"):
        bs.compare({"a": chinchilla_fit, "b": other})
    with pytest.raises(bs.BayescaleError, match="different runs"):
        bs.compare({"a": chinchilla_fit, "b": other}, method="lfo")
    with pytest.raises(bs.BayescaleError, match="at least two fits"):
        bs.compare({"a": chinchilla_fit})
    with pytest.raises(bs.BayescaleError, match="leave-future-out by 'steps': the runs have no such column"):
        bs.compare({"a": chinchilla_fit, "b": chinchilla_fit}, method="lfo", by="steps")


def test_leave_future_out(chinchilla_fit, kaplan_fit):
    table = bs.compare({"chinchilla": chinchilla_fit, "kaplan": kaplan_fit}, method="lfo", fraction=0.2)
    assert set(table["law"]) == {"chinchilla", "kaplan"}
    assert (table["n_test"] == 30).all() and (table["n_train"] == 120).all()
    best = table.sort_values("rank").iloc[0]
    assert best["law"] == "chinchilla" and best["coverage_90"] >= 0.8


def test_leave_future_out_follows_the_laws_direction():
    """A downstream law's new runs are better models (lower loss): leave-future-out holds out the lowest-loss runs,
    and on error that levels off, the law that can level off (downstream-loss-sigmoid) beats downstream-exp."""
    loss = np.linspace(2.2, 3.4, 50)
    truth = {"eps": 0.75, "floor": 0.15, "m": -0.3, "w": 0.25}  # mid-point 2.5 nats: levels off at the low end
    runs = bs.simulate("downstream-loss-sigmoid", {"loss": loss}, truth, noise=0.01, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {name: bs.fit(name, runs, seed=0, **FAST) for name in ("downstream-exp", "downstream-loss-sigmoid")}
        table = bs.compare(fits, method="lfo", by="loss", fraction=0.2)
    assert np.allclose(table["cutoff"], np.quantile(loss, 0.2)), table  # the future is the low-loss end
    assert (table["n_test"] == 10).all() and (table["n_train"] == 40).all(), table
    assert table.sort_values("rank").iloc[0]["law"] == "downstream-loss-sigmoid", table
    ordered = bs.compare(fits, method="lfo", fraction=0.2)  # no `by`: the drift's order towards extrapolation
    assert (ordered["by"] == "1/loss").all() and np.allclose(ordered["cutoff"], -np.log(np.quantile(loss, 0.2)))
    assert ordered[["law", "n_test", "elpd_lfo"]].equals(table[["law", "n_test", "elpd_lfo"]]), (ordered, table)
    report = bs.calibration("downstream-loss-sigmoid", runs, by="loss", fraction=0.2, seed=0, **FAST)
    assert len(report.heldout) == 10 and report.heldout["loss"].max() < np.quantile(loss, 0.2) + 1e-9
    unnamed = bs.calibration("downstream-loss-sigmoid", runs, fraction=0.2, seed=0, **FAST)  # no `by`: the same split
    assert np.array_equal(unnamed.heldout["loss"], report.heldout["loss"])


def test_calibrated_when_the_law_is_true():
    """Six simulated sweeps, top 20% by compute held out: 90% bands hold 80-99% of the 180 held-out runs."""
    inside, total = 0, 0
    for seed in range(6):
        data = chinchilla_runs(n=150, noise=0.01, seed=100 + seed)
        report = bs.calibration("chinchilla", data, holdout="top", fraction=0.2, seed=seed, likelihood="normal", **FAST)
        row = report.table.set_index("prob").loc[0.9]
        inside += row.coverage * row.n_heldout
        total += row.n_heldout
    assert 0.80 <= inside / total <= 0.99, inside / total


def misspecified(n=150, seed=0, bend_at=1e21, rate=0.01):
    """Chinchilla that bends upward beyond `bend_at` FLOPs (e.g. data running out): +`rate` log-loss per e-fold."""
    runs = chinchilla_runs(n=n, noise=0.005, seed=seed, n_range=(7e7, 1.6e10), d_range=(5e9, 5e11)).frame
    c = 6 * runs.N * runs.D
    runs["loss"] = runs["loss"] * np.exp(rate * np.maximum(0.0, np.log(c / bend_at)))
    return bs.ScalingData.from_frame(runs)


def test_discrepancy_covers_a_misspecified_law_where_plain_noise_does_not():
    data = misspecified()
    plain = bs.calibration("chinchilla", data, fraction=0.25, discrepancy=0.0, **FAST).table.set_index("prob")
    honest = bs.calibration("chinchilla", data, fraction=0.25, **FAST).table.set_index("prob")
    assert plain.loc[0.9, "coverage"] < 0.6, plain
    # 38 held-out runs; plain noise holds < 0.6. Since stop 21 the drift's distance is divided by the square root of
    # the fitted span (learned on the corpus, which picks it in every leave-one-family-out fold): this sweep spans
    # 5.6 e-folds of compute, so its band is narrower than before and holds 0.71-0.76 (two seeds; 0.97-1.0 with the
    # same prior at p = 0). 0.68 (26 of 38) is the floor, well above plain noise; the log score below is the proper
    # check.
    assert honest.loc[0.9, "coverage"] >= 0.68, honest
    assert honest.loc[0.9, "log_score"] > plain.loc[0.9, "log_score"] + 0.5, (honest, plain)  # a proper score
    assert honest.loc[0.9, "mean_rel_width"] < 0.1  # wider, but not uselessly wide


def test_reliability_plot_and_split_errors(chinchilla_data):
    import matplotlib

    matplotlib.use("Agg")
    report = bs.calibration("chinchilla", chinchilla_data, **FAST)
    assert list(report.table["prob"]) == [0.5, 0.8, 0.9, 0.95]
    ax = report.plot()
    assert ax.get_xlabel() == "nominal probability of the band"
    with pytest.raises(bs.BayescaleError, match="holdout must be"):
        bs.calibration("chinchilla", chinchilla_data, holdout="random", **FAST)
    with pytest.raises(bs.BayescaleError, match="cannot hold out"):
        bs.calibration("chinchilla", chinchilla_data, holdout="budget", n_budgets=500, **FAST)
    with pytest.raises(bs.BayescaleError, match="calibration by 'steps': the runs have no such column"):
        bs.calibration("chinchilla", chinchilla_data, by="steps", **FAST)


def test_discrepancy_widens_only_beyond_the_data(chinchilla_fit):
    inside = pd.DataFrame({"N": [1e9], "D": [1e11]})
    beyond = pd.DataFrame({"N": [7e10], "D": [1.4e12]})
    assert chinchilla_fit.distance(inside)[0] == 0.0
    assert chinchilla_fit.distance(beyond)[0] > 2.0
    no_disc = bs.Fit(
        chinchilla_fit.law,
        chinchilla_fit.idata,
        chinchilla_fit.spec,
        chinchilla_fit.constants,
        chinchilla_fit.data,
        {**chinchilla_fit.meta, "discrepancy": 0.0},
    )
    for frame, wider in ((inside, False), (beyond, True)):
        a, b = chinchilla_fit.predict(frame).iloc[0], no_disc.predict(frame).iloc[0]
        assert ((a.upper - a.lower) > 1.2 * (b.upper - b.lower)) == wider


def test_cli_compare(tmp_path, chinchilla_fit, kaplan_fit):
    a, b = chinchilla_fit.save(tmp_path / "chinchilla.nc"), kaplan_fit.save(tmp_path / "kaplan.nc")
    out = subprocess.run(
        [sys.executable, "-m", "bayescale.cli", "compare", str(a), str(b)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert "elpd_loo" in out.stdout and "chinchilla" in out.stdout
    named = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayescale.cli",
            "compare",
            str(a),
            str(b),
            "--name",
            "hoffmann",
            "--name",
            "kaplan",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert named.returncode == 0, named.stderr
    assert named.stdout.splitlines()[1].startswith("hoffmann,1,"), named.stdout
