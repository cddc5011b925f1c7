"""`sample_prior`: a law's prior predictive at the user's runs, before any fitting.

A prior is worth checking before a fit: a band that misses most runs, or one that spans decades, says the priors
(a law file's or the ones given with `priors=`) do not suit these data. The draws come from PyMC's
`sample_prior_predictive` on the same model `fit` samples, so what is checked is what will be fitted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from bayescale._model import Likelihood, build, data_arrays, make_spec
from bayescale.data import ScalingData
from bayescale.fit import _prepare
from bayescale.laws import Law, adjusted
from bayescale.laws import law as get_law


@dataclass
class PriorCheck:
    """Prior draws of the parameters and of each run's target (run noise included), with the runs themselves."""

    law: Law
    data: ScalingData
    params: dict[str, np.ndarray]  # name -> (S,) or (S, groups)
    predictive: np.ndarray  # (S, n): target values drawn from the prior predictive at each run

    def table(self, prob: float = 0.9) -> pd.DataFrame:
        """Per run: the inputs, the observed target, the prior predictive median and central `prob` band, and
        whether the run lies inside it."""
        lo, med, hi = np.quantile(self.predictive, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
        out = self.data.frame[[*self.law.inputs, self.law.target]].copy()
        out["prior_median"], out["prior_lower"], out["prior_upper"] = med, lo, hi
        out["inside"] = (out[self.law.target] >= lo) & (out[self.law.target] <= hi)
        return out

    def summary(self, prob: float = 0.9) -> str:
        """One line: how many runs the prior band holds and how wide it is (a factor, median over runs)."""
        t = self.table(prob)
        factor = float(np.median(t.prior_upper / t.prior_lower))
        return (
            f"prior predictive of {self.law.name!r}: its {prob:.0%} band holds {int(t.inside.sum())} of {len(t)} runs "
            f"and spans a factor {factor:.3g} in {self.law.target} (median over runs); a band that misses most runs "
            "means priors that contradict the data, one that spans orders of magnitude means priors that say little"
        )

    def plot(self, ax: Any = None, prob: float = 0.9, n_draws: int = 20) -> Any:
        """Your runs (black) over the prior: each run's prior median and `prob` band (blue bars) and a few prior
        draws (faint dots), along the axis extrapolation follows (compute, else N*D, else the inputs), log
        scales. Returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        from bayescale._discrepancy import order_of

        ax = ax or plt.subplots(figsize=(7, 4.5))[1]
        log_x, label = order_of(self.law, self.data.frame)
        x = np.exp(log_x)
        t = self.table(prob)
        picks = np.random.default_rng(0).choice(len(self.predictive), min(n_draws, len(self.predictive)), False)
        ax.scatter(
            np.tile(x, len(picks)),
            self.predictive[picks].ravel(),
            s=3,
            color="C0",
            alpha=0.15,
            lw=0,
            label=f"{len(picks)} prior draws",
        )
        ax.errorbar(
            x,
            t.prior_median,
            yerr=[t.prior_median - t.prior_lower, t.prior_upper - t.prior_median],
            fmt="none",
            ecolor="C0",
            alpha=0.5,
            lw=1,
            label=f"prior median and {prob:.0%} band",
        )
        ax.scatter(
            x,
            t[self.law.target],
            s=12,
            color="k",
            zorder=3,
            label=f"your runs ({int(t.inside.sum())} of {len(t)} inside)",
        )
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel=self.law.target)
        ax.set_title(f"{self.law.name}: prior predictive at your runs", fontsize=10)
        ax.legend(fontsize=8)
        return ax


def sample_prior(
    law: str | Law,
    data: ScalingData | pd.DataFrame,
    *,
    draws: int = 500,
    seed: int = 0,
    likelihood: Likelihood = "student_t",
    nu: float = 4.0,
    priors: Mapping[str, Mapping[str, Any]] | None = None,
    fixed: Mapping[str, float] | None = None,
    flops_per_token_param: float = 6.0,
) -> PriorCheck:
    """Draw from `law`'s prior predictive at the runs in `data` (the same model and options as `fit`)."""
    import pymc as pm

    the_law = adjusted(get_law(law), priors=priors, fixed=fixed)
    runs = _prepare(the_law, data, flops_per_token_param)
    spec = replace(make_spec(the_law, runs, likelihood=likelihood, nu=nu), weighted=False)  # no effect a priori
    quiet = logging.getLogger("pymc")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # PyMC logs the variables it samples at INFO
    try:
        with build(spec, data_arrays(spec, runs)):
            idata = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    finally:
        quiet.setLevel(level)
    params = {name: idata.prior[name].values.reshape(draws, *idata.prior[name].shape[2:]) for name in the_law.params}
    log_y = idata.prior_predictive["obs"].values.reshape(draws, -1)
    return PriorCheck(the_law, runs, params, np.exp(log_y))
