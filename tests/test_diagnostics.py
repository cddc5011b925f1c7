"""Coded diagnostics: the runs' design before a fit, the posterior's identification after it."""

import re
import warnings

import numpy as np
import pytest

import bayescale as bs
from bayescale import diagnostics
from bayescale.simulate import chinchilla_runs, design_runs, simulate
from tests.conftest import SMALL


def codes(found):
    return [f["code"] for f in found]


def runs_at(n_params, tokens):
    """Runs of the published Chinchilla law (1% noise) at the given sizes: the frame the design checks read."""
    return simulate("chinchilla", {"N": n_params, "D": tokens}, seed=0).frame


def test_design_names_inputs_at_two_scales_and_inputs_that_move_together():
    n = np.geomspace(1e8, 1e10, 30)
    law, fixed_ratio = bs.law("chinchilla"), runs_at(n, 20 * n * np.exp(np.random.default_rng(1).normal(0, 0.01, 30)))
    found = diagnostics.design(law, fixed_ratio)
    assert codes(found) == ["collinear_inputs"] and found[0]["params"] == ["N", "D"]
    assert "D/N from 19" in found[0]["message"] and "Add runs at other ratios of D to N" in found[0]["message"]
    two_sizes = runs_at(np.repeat([1e8, 1e9], 10), np.geomspace(1e9, 1e11, 20))
    found = diagnostics.design(law, two_sizes)
    assert codes(found) == ["few_scales"] and "N takes only 2 distinct values (1e+08, 1e+09)" in found[0]["message"]
    assert diagnostics.design(law, chinchilla_runs(n=40, seed=0).frame) == []  # a good design says nothing


def test_identification_names_a_parameter_at_its_bound_and_one_the_data_did_not_narrow():
    law = bs.law("chinchilla")
    rng = np.random.default_rng(0)
    constants = {"N0": 1e9, "D0": 1e11, "loss_min": 2.0}
    draws = {
        "E": np.abs(rng.normal(0, 0.01, 4000)),  # piled against its lower bound 0
        "a": rng.normal(-1.0, 0.05, 4000),
        "alpha": rng.uniform(0.05, 0.9, 4000),  # sd 0.25, as wide as its prior: nothing learned
        "b": rng.normal(-1.0, 0.05, 4000),
        "beta": rng.normal(0.28, 0.02, 4000),
    }
    found = diagnostics.identification(law, draws, constants)
    assert codes(found) == ["at_bound", "weak"] and [f["params"] for f in found] == [["E"], ["alpha"]]
    assert "E is pressed against its lower bound 0" in found[0]["message"]
    assert (
        found[1]["severity"] == "info"
        and "posterior sd 0.24" in found[1]["message"]
        or "posterior sd 0.25" in found[1]["message"]
    )


def test_a_fit_keeps_its_findings_and_warns_about_the_design_first():
    # One decade of N (D tied to it): an exponent stays "weak" for every seed tried (0-2). Over two decades the
    # data narrow the exponents to just under the threshold, and whether one is flagged depends on the draws.
    n = np.geomspace(1e8, 1e9, 40)
    runs = runs_at(n, 20 * n * np.exp(np.random.default_rng(1).normal(0, 0.01, 40)))
    with pytest.warns(diagnostics.IdentificationWarning, match="log N and log D move together"):
        fit = bs.fit("chinchilla", runs, seed=0, discrepancy=0.0, **SMALL)
    found = fit.diagnostics["findings"]
    assert found[0]["code"] == "collinear_inputs"
    assert all({"code", "severity", "message", "params"} <= set(f) for f in found)
    assert fit.diagnostics["problems"] == [f["message"] for f in found]
    assert "weak" in codes(found)  # with N and D tied, their exponents are not both learned


def test_a_good_fit_has_no_findings(chinchilla_fit):
    assert [f for f in chinchilla_fit.diagnostics["findings"] if f["severity"] == "warning"] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", diagnostics.IdentificationWarning)
        assert diagnostics.design(chinchilla_fit.law, chinchilla_fit.data.frame) == []


def test_runs_computed_from_the_formula_are_named_before_sampling(monkeypatch):
    """40 exact Chinchilla runs (a common first test): the best fit's run noise is ~1e-9, so the fit stops at once
    with a named error instead of sampling a posterior NUTS cannot explore (R-hat 3.6, 4 effective draws)."""
    import nutpie

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled although the runs are noise-free")

    monkeypatch.setattr(nutpie, "sample", no_sampling)
    with pytest.raises(bs.DataError, match=r"run noise \de-\d+ on log scale.*computed from the formula.*method='map'"):
        bs.fit("chinchilla", chinchilla_runs(n=40, noise=0.0, seed=0), seed=0, **SMALL)


def test_noise_free_runs_the_best_fit_missed_are_named_after_sampling(monkeypatch):
    """Where the start search stops short of the exact fit (kaplan's ill-conditioned optimum stopped at noise 2e-4 on
    one machine, 5e-8 on another, so the check before sampling is switched off here), the posterior piles onto
    near-zero noise and the finding that explains the stuck chains comes first."""
    monkeypatch.setattr(diagnostics, "NOISE_FREE_AT_BEST", 0.0)
    with pytest.warns(diagnostics.SamplingWarning, match="computed from the formula"):
        fit = bs.fit("kaplan", design_runs("kaplan", seed=0, noise=0.0), seed=0, discrepancy=0.0, **SMALL)
    assert codes(fit.diagnostics["findings"])[0] == "noise_free"


def test_sampling_checks_run_arviz_without_numba_and_restore_its_setting(monkeypatch):
    """R-hat and ESS for a fit's draws use ArviZ's NumPy path (Numba would compile them in every new process, 0.22 s,
    for a 5 ms computation), and ArviZ's own setting is as it was afterwards, also when the check fails."""
    import arviz as az
    from arviz.utils import Numba

    rng = np.random.default_rng(0)
    idata = az.from_dict({"a": rng.normal(size=(2, 200))}, sample_stats={"diverging": np.zeros((2, 200), bool)})
    seen = []
    summary = az.summary
    monkeypatch.setattr(az, "summary", lambda *a, **k: (seen.append(Numba.numba_flag), summary(*a, **k))[1])
    monkeypatch.setattr(Numba, "numba_flag", True)
    report = diagnostics.check(idata, ["a"])
    assert seen == [False] and Numba.numba_flag is True
    assert report["max_rhat"] < 1.05 and report["min_ess_bulk"] > 100

    monkeypatch.setattr(az, "summary", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        diagnostics.check(idata, ["a"])
    assert Numba.numba_flag is True


def test_runs_the_law_cannot_rank_are_named():
    """A 2.8B model that overfits (loss 4.1 where the 1.1B model on the same data reached 3.0) lies far above a run
    every input of data-constrained ranks at or above it: named with both rows; clean simulated runs are not."""
    from bayescale.simulate import law_values

    law = bs.law("data-constrained")
    runs = design_runs("data-constrained", n=60, noise=0.01, seed=1).frame.reset_index(drop=True)
    runs.loc[40, ["N", "D", "U", "loss"]] = [1.1e9, 5e10, 4e9, 3.0]
    runs.loc[41, ["N", "D", "U", "loss"]] = [2.8e9, 5e10, 4e9, 4.1]
    consts = law.resolve_constants({k: runs[k].to_numpy(float) for k in (*law.inputs, law.target)})
    sigma = np.full(len(runs), 0.01)
    found = diagnostics.contradictions(law, runs, law_values(law), consts, sigma)
    assert codes(found) == ["contradicting_runs"]
    assert re.search(
        r"run 41 \(N=2.8e\+09.*loss 4.1, higher than run \d+'s .*fits both. 1 run.*\(rows 41\)", found[0]["message"]
    )
    clean = design_runs("data-constrained", n=60, noise=0.01, seed=1, likelihood="student_t").frame
    consts = law.resolve_constants({k: clean[k].to_numpy(float) for k in (*law.inputs, law.target)})
    assert diagnostics.contradictions(law, clean, law_values(law), consts, sigma) == []


def test_a_fit_reports_runs_its_law_cannot_rank():
    runs = chinchilla_runs(n=40, noise=0.01, seed=0).frame.reset_index(drop=True)
    runs.loc[len(runs)] = {"N": runs.N.max() * 2, "D": runs.D.max() * 2, "loss": runs.loss.max() * 1.5}
    with pytest.warns(diagnostics.IdentificationWarning, match=f"run {len(runs) - 1} .*no setting of 'chinchilla'"):
        fit = bs.fit("chinchilla", runs, seed=0, discrepancy=0.0, **SMALL)
    assert "contradicting_runs" in codes(fit.diagnostics["findings"])
