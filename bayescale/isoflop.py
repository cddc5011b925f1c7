"""IsoFLOP analysis (Chinchilla Approach 2) done jointly, and the classic parabola fit to compare with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data import GROUP, ScalingData
from bayescale.errors import DataError
from bayescale.fit import Fit, fit


@dataclass
class IsoflopFit:
    """The joint IsoFLOP posterior: exponent `a` of N*(C) and each budget's optimum with intervals."""

    fit: Fit
    budgets: np.ndarray

    def exponent(self, prob: float = 0.9) -> dict[str, float]:
        draws = self.fit.draws("a")
        lo, med, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2])
        return {"median": float(med), "lower": float(lo), "upper": float(hi), "prob": prob}

    def optima(self, prob: float = 0.9, compute: Any = None) -> pd.DataFrame:
        """N*(C) per budget (or at `compute`) from the fitted power law, with intervals."""
        c = np.atleast_1d(np.asarray(self.budgets if compute is None else compute, dtype=float))
        k = self.fit.constants
        n_star = k["N0"] * np.exp(self.fit.draws("lg")[:, None] + self.fit.draws("a")[:, None] * np.log(c / k["C0"]))
        lo, med, hi = np.quantile(n_star, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
        return pd.DataFrame({"C": c, "N_opt_median": med, "N_opt_lower": lo, "N_opt_upper": hi})

    def plot(self, ax: Any = None, prob: float = 0.9) -> Any:
        from bayescale.plots import plot_isoflop

        return plot_isoflop(self, ax=ax, prob=prob)


def _with_budget_groups(data: ScalingData) -> ScalingData:
    for col in ("N", "C", "loss"):
        if col not in data.frame:
            raise DataError(f"IsoFLOP analysis needs columns N, C (the budget of each curve) and loss; missing {col!r}")
    frame = data.frame.copy()
    frame[GROUP] = [f"{c:.4g}" for c in frame["C"]]
    counts = frame.groupby(GROUP).size()
    if (counts < 3).any():
        raise DataError(f"each IsoFLOP budget needs at least 3 runs; budget {counts.idxmin()} has {counts.min()}")
    return ScalingData(frame, origin=data.origin, check=False)


def fit_isoflop(data: ScalingData, **fit_kwargs: Any) -> IsoflopFit:
    """Fit all IsoFLOP curves at once: shared E, alpha, beta, power law for N*(C), per-budget height."""
    grouped = _with_budget_groups(data)
    result = fit("isoflop", grouped, groups={"h": "separate"}, **fit_kwargs)
    return IsoflopFit(fit=result, budgets=np.sort(grouped.frame["C"].unique()))


def parabola_isoflop(data: ScalingData) -> dict[str, Any]:
    """The classic recipe: a parabola in log N per budget, its vertex as N*, then log N* ~ a log C by least squares."""
    frame = _with_budget_groups(data).frame
    budgets, optima = [], []
    for c, rows in frame.groupby("C"):
        x = np.log(rows["N"].to_numpy())
        p2, p1, _ = np.polyfit(x, rows["loss"].to_numpy(), 2)
        if p2 <= 0:
            continue  # no minimum: the classic recipe drops such curves
        budgets.append(c)
        optima.append(np.exp(-p1 / (2 * p2)))
    slope, intercept = np.polyfit(np.log(budgets), np.log(optima), 1)
    return {"a": float(slope), "intercept": float(intercept), "optima": pd.DataFrame({"C": budgets, "N_opt": optima})}
