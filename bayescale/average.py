"""Average laws fitted to the same runs: stacking weights (Yao et al. 2018, computed by ArviZ's compare) on
leave-one-out or leave-future-out predictive densities. The mixture's bands and allocations carry the
uncertainty about which law holds, which a single law's posterior leaves out.

Measured on the calibration corpus's 49 tasks whose law has a rival with the same inputs (bench/average.py,
README): the mixture's 90% interval score was 1.3% worse than the task's own law with leave-one-out weights and
4.7% worse with leave-future-out ones (50%: 13% and 3% better), so it is a tool for when laws disagree, not the
default band.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale import _discrepancy
from bayescale.compare import check_same_runs, log_predictive_density, refit_on
from bayescale.data import as_frame
from bayescale.errors import BayescaleError

if TYPE_CHECKING:
    from bayescale.allocate import Allocation
    from bayescale.fit import Fit

METHODS = ("loo", "lfo")


@dataclass
class Average:
    """Laws fitted to the same runs, mixed by `weights` (law -> weight, summing to 1). Each predictive draw comes
    from one law, picked with its weight; `table` is ArviZ's comparison table the weights come from."""

    fits: dict[str, Fit]
    weights: pd.Series
    method: str
    table: pd.DataFrame = field(repr=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name} {w:.2f}" for name, w in self.weights.items())
        return f"Average of {len(self.fits)} laws by {self.method} stacking: {shown}"

    def _pick(self, n_draws: int, seed: int) -> np.ndarray:
        """Which law each of `n_draws` mixture draws comes from (the same laws for the same seed)."""
        p = self.weights.reindex(list(self.fits)).to_numpy(dtype=float)
        return np.random.default_rng([seed, 4099]).choice(len(self.fits), size=n_draws, p=p / p.sum())

    def _mix(self, per_law: Sequence[np.ndarray], seed: int) -> np.ndarray:
        """Mixture draws (S, ...) from each law's draws (S_k, ...): draw j is law pick[j]'s draw j."""
        n = min(len(d) for d in per_law)
        pick = self._pick(n, seed)
        return np.stack([d[:n] for d in per_law])[pick, np.arange(n)]

    def predictive_draws(self, new: Any, seed: int = 0) -> np.ndarray:
        """Posterior-predictive draws of the target at each new row under the mixture (noise included): (S, n)."""
        return self._mix([fit.predictive_draws(new, seed=seed) for fit in self.fits.values()], seed)

    def predict(self, new: Any, prob: float | list[float] = 0.9, seed: int = 0) -> pd.DataFrame:
        """The new rows plus the mixture's predictive median and `prob` band(s), as `Fit.predict` names them, and
        each law's own median (`median_<law>`), to see where the laws disagree."""
        probs = [float(p) for p in np.atleast_1d(prob)]
        if not probs or not all(0 < p < 1 for p in probs):
            raise BayescaleError(f"prob must lie strictly between 0 and 1 (or be a list of such), got {prob}")
        per_law = [fit.predictive_draws(new, seed=seed) for fit in self.fits.values()]
        draws = self._mix(per_law, seed)
        out = as_frame(new, []).reset_index(drop=True)
        out["median"] = np.median(draws, axis=0)
        for p in probs:
            tag = "" if np.ndim(prob) == 0 else f"_{100 * p:g}"
            out[f"lower{tag}"], out[f"upper{tag}"] = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
        for name, own in zip(self.fits, per_law, strict=True):
            out[f"median_{name}"] = np.median(own, axis=0)
        return out

    def allocate(self, compute: float | list[float], prob: float = 0.9, seed: int = 0, **options: Any) -> Allocation:
        """Compute-optimal N*, D*, tokens per parameter and loss per budget under the mixture: each law's
        allocation draws (`Fit.allocate`, same options), mixed by the weights."""
        from bayescale.allocate import summarise

        results = [fit.allocate(compute, prob=prob, **options) for fit in self.fits.values()]
        draws = {name: self._mix([r.draws[name] for r in results], seed) for name in results[0].draws}
        budgets = np.atleast_1d(np.asarray(compute, dtype=float))
        return summarise(budgets, draws, prob, options.get("inference_tokens", 0.0))


def average(fits: Mapping[str, Fit], method: str = "loo", fraction: float = 0.2, **fit_kwargs: Any) -> Average:
    """Mix laws fitted to the same runs by stacking weights: the weights that give the best joint log score of
    held-out runs (ArviZ's compare(method="stacking")).

    method="loo" (default): PSIS leave-one-out from the fits themselves, no refit. method="lfo": the held-out runs
    are the top `fraction` of the runs towards extrapolation (by compute where known), each law refitted without
    them (`fit_kwargs` go to the refits). On the corpus the leave-one-out weights gave the better bands (above).
    """
    import arviz as az

    if method not in METHODS:
        raise BayescaleError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_same_runs(fits, "average")
    fits = dict(fits)
    if method == "loo":
        scores = {name: fit.idata_with_log_likelihood() for name, fit in fits.items()}
    else:
        scores = {name: _elpd(lfo) for name, lfo in _leave_future_out(fits, fraction, fit_kwargs).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(scores, ic="loo", method="stacking")
    weights = table["weight"].reindex(list(fits)).astype(float)
    return Average(fits=fits, weights=weights / weights.sum(), method=method, table=table)


def _leave_future_out(fits: dict[str, Fit], fraction: float, fit_kwargs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per law, the log predictive density of each of the top `fraction` runs (the first law's order towards
    extrapolation) under the law refitted without them."""
    first = next(iter(fits.values()))
    order, _ = _discrepancy.order_of(first.law, first.data.frame)
    train = order < np.quantile(order, 1 - fraction)
    n_params = max(len(fit.law.params) for fit in fits.values())
    if (~train).sum() < 2 or train.sum() < n_params + 2:
        raise BayescaleError(
            f"average: holding out the top {fraction:.0%} leaves {int(train.sum())} runs to fit and "
            f"{int((~train).sum())} to score; use method='loo' or another fraction"
        )
    return {
        name: log_predictive_density(refit_on(fit, train, **fit_kwargs), fit.data.frame[~train])
        for name, fit in fits.items()
    }


def _elpd(pointwise: np.ndarray) -> Any:
    """Pointwise held-out log densities as the ELPDData that ArviZ's compare reads."""
    import arviz as az
    import xarray as xr

    n = len(pointwise)
    values = {
        "elpd_loo": float(pointwise.sum()),
        "se": float(np.sqrt(n) * pointwise.std()),
        "p_loo": 0.0,
        "n_samples": 0,
        "n_data_points": n,
        "warning": False,
        "loo_i": xr.DataArray(pointwise),
        "pareto_k": xr.DataArray(np.zeros(n)),
        "scale": "log",
        "good_k": 0.7,
    }
    return az.ELPDData(data=list(values.values()), index=list(values))
