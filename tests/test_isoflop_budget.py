"""IsoFLOP fits predicting budgets they were not fitted on: the smooth-height law does, the per-budget one says why not."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale._isoflop_sim import chinchilla_isoflops
from bayescale.data import ScalingData

FAST = dict(draws=300, tune=300, chains=2, progress=False, discrepancy=0.0)
FITTED = (1e18, 3e18, 1e19, 3e19, 1e20)
NEXT = (3e20, 1e21)  # the next two budgets, as a user extrapolating a sweep would ask for


@pytest.fixture(scope="module")
def sweep():
    """Chinchilla IsoFLOP runs on seven budgets, split into the five fitted and the next two held out."""
    data, _ = chinchilla_isoflops(budgets=FITTED + NEXT, per_budget=9, noise=0.005, seed=1)
    frame = data.frame
    fitted = ScalingData.from_frame(frame[frame["C"] <= FITTED[-1]][["N", "C", "loss"]])
    heldout = frame[frame["C"] > FITTED[-1]].reset_index(drop=True)
    return fitted, heldout


def test_smooth_law_is_exact_on_the_chinchilla_surface():
    """With b = alpha beta/(alpha+beta), a = beta/(alpha+beta) and lg, lh from A, B, every IsoFLOP slice matches."""
    chin, smooth = bs.law("chinchilla"), bs.law("isoflop-smooth")
    values = {k: p.value for k, p in chin.params.items()}
    consts = {"N0": 1e9, "D0": 1e11}
    big_a, big_b = chin.derived_values(values, consts)["A"], chin.derived_values(values, consts)["B"]
    al, be = values["alpha"], values["beta"]
    c0 = 1e20
    n_star = (al * big_a / (be * big_b)) ** (1 / (al + be)) * (c0 / 6) ** (be / (al + be))
    height = big_a * n_star**-al * (al + be) / be
    params = {
        "E": values["E"],
        "alpha": al,
        "beta": be,
        "a": be / (al + be),
        "b": al * be / (al + be),
        "lg": np.log(n_star / 1e9),
        "lh": np.log(height),
    }
    c = np.repeat([1e18, 1e20, 1e23], 50)
    n = np.tile(np.geomspace(1e7, 1e12, 50), 3)
    expected = chin.mean(values, {"N": n, "D": c / (6 * n)}, consts)
    got = smooth.mean(params, {"N": n, "C": c}, {"N0": 1e9, "C0": c0})
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_smooth_heights_predict_the_next_budgets(sweep):
    fitted, heldout = sweep
    iso = bs.fit_isoflop(fitted, heights="smooth", seed=0, **FAST)
    assert iso.heights == "smooth" and iso.fit.law.name == "isoflop-smooth"
    pred = iso.predict(heldout[["N", "C"]])  # budgets 3e20 and 1e21 were never fitted
    y = heldout["loss"].to_numpy()
    inside = (pred["lower"].to_numpy() <= y) & (y <= pred["upper"].to_numpy())
    assert inside.mean() >= 0.8, f"90% bands hold {inside.mean():.0%} of {len(y)} held-out runs"
    assert np.median(np.abs(pred["median"].to_numpy() / y - 1)) < 0.01
    # the exponent of N*(C) is still read off, and covers Chinchilla's beta/(alpha+beta)
    a = iso.exponent()
    assert a["lower"] <= 0.28 / 0.62 <= a["upper"], a


@pytest.mark.filterwarnings("ignore::bayescale.diagnostics.SamplingWarning")  # a short fit: only its error matters
def test_per_budget_heights_refuse_an_unseen_budget_in_words(sweep):
    fitted, heldout = sweep
    # only predict's refusal is checked, so a short fit on the top three fitted budgets (the 12-start MAP
    # search dominates the time of this fit and grows with the number of per-budget heights)
    top3 = ScalingData.from_frame(fitted.frame[fitted.frame["C"] >= 1e19])
    iso = bs.fit_isoflop(top3, seed=0, **{**FAST, "draws": 50, "tune": 100})  # the default: a height per budget
    assert iso.heights == "per-budget"
    # a fitted budget predicts without a group column: the budget picks its curve
    at_fitted = iso.predict(pd.DataFrame({"N": [3e8, 1e9], "C": [1e20, 1e20]}))
    assert np.all(at_fitted["lower"] < at_fitted["upper"])
    with pytest.raises(bs.BayescaleError) as err:
        iso.predict(heldout[["N", "C"]])
    message = str(err.value)
    assert "3e+20" in message and "(nor 1 more)" in message, message  # names the budget
    assert "heights='smooth'" in message and "isoflop-smooth" in message, message  # and the remedy


def test_heights_must_be_a_known_form(sweep):
    fitted, _ = sweep
    with pytest.raises(bs.BayescaleError, match="heights must be one of 'per-budget', 'smooth'"):
        bs.fit_isoflop(fitted, heights="pooled")
