"""Held-out calibration: fit on the smaller runs, predict the largest, and measure band coverage and width."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale._discrepancy import future_order
from bayescale.data import ScalingData
from bayescale.errors import BayescaleError
from bayescale.laws import Law
from bayescale.laws import law as get_law


@dataclass
class CalibrationReport:
    """Per nominal probability: held-out coverage, mean relative band width and log score; plus the split."""

    table: pd.DataFrame
    heldout: pd.DataFrame = field(repr=False)
    method: str = "bayes"
    seconds: float = 0.0

    def __repr__(self) -> str:
        return f"Calibration ({self.method}, {len(self.heldout)} held-out runs, {self.seconds:.1f} s)\n{self.table.to_string()}"

    def plot(self, ax: Any = None, label: str | None = None) -> Any:
        """Reliability plot: held-out coverage against nominal probability (the diagonal is perfect)."""
        from bayescale.plots import _axes

        ax = _axes(ax)
        t = self.table
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfect calibration")
        n = len(self.heldout)
        se = np.sqrt(np.clip(t["prob"] * (1 - t["prob"]) / max(n, 1), 0, None))
        ax.fill_between(
            t["prob"],
            t["prob"] - 2 * se,
            t["prob"] + 2 * se,
            color="grey",
            alpha=0.15,
            lw=0,
            label=f"±2 s.e. for {n} runs",
        )
        ax.plot(t["prob"], t["coverage"], marker="o", lw=2, label=label or self.method)
        ax.set_xlabel("nominal probability of the band")
        ax.set_ylabel("fraction of held-out runs inside")
        ax.set_xlim(0.4, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_title("Reliability of extrapolation bands")
        ax.legend(fontsize=8)
        return ax


def _split_order(order: np.ndarray, holdout: str, fraction: float, n_budgets: int, label: str) -> np.ndarray:
    """The training mask from each run's place towards extrapolation (`order`: larger is further out)."""
    if holdout == "top":
        if not 0 < fraction < 1:
            raise BayescaleError(f"fraction must be in (0, 1), got {fraction}")
        return order <= np.quantile(order, 1 - fraction)
    if holdout == "budget":
        values = np.unique(order)
        if len(values) <= n_budgets:
            raise BayescaleError(f"only {len(values)} distinct {label} values; cannot hold out {n_budgets}")
        return order < values[-n_budgets]
    raise BayescaleError(f"holdout must be 'top' or 'budget', got {holdout!r}")


def calibration(
    law: str | Path | Law,
    data: ScalingData,
    holdout: str = "top",
    fraction: float = 0.2,
    probs: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
    by: str | None = None,
    n_budgets: int = 1,
    method: str = "bayes",
    n_boot: int = 100,
    seed: int = 0,
    **fit_kwargs: Any,
) -> CalibrationReport:
    """Fit on the smaller runs, predict the held-out larger ones; coverage, width and log score per probability.

    method="bayes" uses bayescale's posterior predictive bands; method="bootstrap" the classic recipe
    (Huber-loss L-BFGS point fit + bootstrap over runs, percentile bands) on exactly the same split. Without `by`,
    runs are ordered towards extrapolation as the drift orders them (log C where given, else log N D, else the law's
    inputs signed by their direction: lower loss for a downstream law); with `by`, by that column.
    """
    from bayescale.compare import log_predictive_density
    from bayescale.fit import fit as run_fit

    the_law = get_law(law)
    per_token_param = fit_kwargs.get("flops_per_token_param", 6.0)
    data = data.with_inputs([*the_law.inputs, *([by] if by else [])], per_token_param)
    order, label, sign = future_order(the_law, data, by, per_token_param, caller="calibration")
    train_mask = _split_order(sign * order, holdout, fraction, n_budgets, label)
    train, test = data.subset(train_mask), data.frame[~train_mask].reset_index(drop=True)
    y = test[the_law.target].to_numpy(dtype=float)
    start = time.perf_counter()
    if method == "bayes":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = run_fit(the_law, train, seed=seed, **{"progress": False, **fit_kwargs})
        draws = fitted.predictive_draws(test, seed=seed)
        log_score = log_predictive_density(fitted, test)
    elif method == "bootstrap":
        from bayescale.pointfit import bootstrap_fit

        boot = bootstrap_fit(train, law=the_law, n_boot=n_boot, seed=seed)
        draws = boot.predict_draws(test)
        # Gaussian on log scale with the bootstrap spread plus the training residual scatter, for a log score
        logd = np.log(draws)
        fitted_train = np.median(boot.predict_draws(train.frame), axis=0)
        residual_sd = float(np.std(np.log(train[the_law.target]) - np.log(fitted_train)))
        sd = np.sqrt(logd.var(axis=0) + residual_sd**2)
        resid = np.log(y) - logd.mean(axis=0)
        log_score = -0.5 * (resid / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    else:
        raise BayescaleError(f"method must be 'bayes' or 'bootstrap', got {method!r}")
    seconds = time.perf_counter() - start
    rows = []
    heldout = test.copy()
    for p in probs:
        lo, hi = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
        med = np.median(draws, axis=0)
        inside = (lo <= y) & (y <= hi)
        heldout[f"inside_{p:g}"] = inside
        rows.append(
            {
                "prob": p,
                "coverage": float(inside.mean()),
                "n_heldout": len(y),
                "mean_rel_width": float(np.mean((hi - lo) / med)),
                "log_score": float(np.mean(log_score)),
            }
        )
    heldout["median"] = np.median(draws, axis=0)
    return CalibrationReport(table=pd.DataFrame(rows), heldout=heldout, method=method, seconds=seconds)
