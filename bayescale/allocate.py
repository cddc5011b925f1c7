"""Compute-optimal allocation with posterior uncertainty: N*, D*, tokens per parameter, loss at the optimum.

For every posterior draw and budget, the law is minimised along the budget constraint
C = k N D (+ 2 N T when T inference tokens are priced at 2N FLOPs each). Laws that declare a closed
form (`[optimum]` in the law file) use it; all others use a vectorised golden-section search in log N.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayescale._formula import evaluate
from bayescale.errors import BayescaleError

# A bayescale.fit.Fit. Not imported, even for type checking: fit.py calls this module (Fit.allocate), and the
# flow stays one-way (fit -> analyses).
Fit = Any

_GOLDEN = (np.sqrt(5) - 1) / 2


@dataclass
class Allocation:
    """Per budget: medians and `prob` intervals of N*, D*, D*/N* and the loss at the optimum; `.draws` holds all draws."""

    table: pd.DataFrame
    draws: dict[str, np.ndarray] = field(repr=False)  # name -> (S, budgets)
    prob: float = 0.9

    def __repr__(self) -> str:
        return f"Allocation ({self.prob:.0%} intervals)\n{self.table.to_string()}"

    def plot(self, ax: Any = None) -> Any:
        from bayescale.plots import plot_frontier

        return plot_frontier(self, ax=ax)


def _check_law(fit: Fit) -> None:
    if not {"N", "D"} <= set(fit.law.inputs):
        raise BayescaleError(f"allocation needs a law of N and D; {fit.law.name!r} takes {list(fit.law.inputs)}")


def _loss(
    fit: Fit, params: Mapping[str, np.ndarray], n: np.ndarray, d: np.ndarray, fixed: Mapping[str, float]
) -> np.ndarray:
    inputs = {"N": n, "D": d, **{k: np.full_like(n, v) for k, v in fixed.items()}}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return fit.law.mean(params, inputs, fit.constants)


def _params(fit: Fit) -> dict[str, np.ndarray]:
    if fit.spec.modes:
        raise BayescaleError("allocation with per-group parameters: refit one group or use shared parameters")
    return {k: fit.draws(k)[:, None] for k in fit.law.params}


def optimal_n(
    fit: Fit,
    compute: np.ndarray,
    k: float = 6.0,
    inference_tokens: float = 0.0,
    fixed: Mapping[str, float] | None = None,
    method: str = "auto",
    bounds: tuple[float, float] = (1e3, 1e16),
    iterations: int = 45,
) -> np.ndarray:
    """N* for every draw (rows) and budget (columns): closed form where the law declares one, else numeric."""
    _check_law(fit)
    fixed = dict(fixed or {})
    missing = [i for i in fit.law.inputs if i not in ("N", "D") and i not in fixed]
    if missing:
        raise BayescaleError(f"law {fit.law.name!r} also needs {missing}: pass fixed={{...}} values for them")
    params = _params(fit)
    c = np.asarray(compute, dtype=float)[None, :]
    if method == "closed" or (method == "auto" and fit.law.optimum is not None and inference_tokens == 0):
        if fit.law.optimum is None:
            raise BayescaleError(f"law {fit.law.name!r} declares no closed-form optimum")
        env = {**fit.constants, **params}
        env.update(fit.law.derived_values(params, fit.constants))
        return np.broadcast_to(evaluate(fit.law.optimum, {**env, "C": c, "k": k}), (fit.n_draws, c.shape[1])).copy()

    def objective(log_n: np.ndarray, p: Mapping[str, np.ndarray], budget: np.ndarray) -> np.ndarray:
        """Loss along the budget constraint; +inf where the constraint leaves no training tokens."""
        n = np.exp(log_n)
        d = (budget - 2.0 * n * inference_tokens) / (k * n)
        out = _loss(fit, p, n, np.where(d > 0, d, np.nan), fixed)
        return np.where(np.isfinite(out), out, np.inf)

    # bracket: N from bounds[0] up to one training token per parameter (and 2 N T < C with inference)
    lo = np.full((fit.n_draws, c.shape[1]), np.log(bounds[0]))
    top = np.minimum(bounds[1], c / k)
    if inference_tokens:
        top = np.minimum(top, 0.999 * c / (2.0 * inference_tokens))
    hi = np.broadcast_to(np.log(top), lo.shape).copy()
    # a coarse grid finds the basin (the law may be flat far from the optimum), golden section refines it
    grid = lo[..., None] + (hi - lo)[..., None] * np.linspace(0, 1, 24)
    coarse = objective(grid, {key: v[..., None] for key, v in params.items()}, c[..., None])
    best = np.argmin(coarse, axis=-1)
    step = (hi - lo) / 23
    a, b = np.maximum(lo, lo + (best - 1) * step), np.minimum(hi, lo + (best + 1) * step)
    x1, x2 = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    f1, f2 = objective(x1, params, c), objective(x2, params, c)
    for _ in range(iterations):  # one new evaluation per step, all draws and budgets at once
        left = f1 < f2  # minimum lies in [a, x2]: old x1 becomes the new x2
        a, b = np.where(left, a, x1), np.where(left, x2, b)
        x_new = np.where(left, b - _GOLDEN * (b - a), a + _GOLDEN * (b - a))
        f_new = objective(x_new, params, c)
        x1, x2, f1, f2 = (
            np.where(left, x_new, x2),
            np.where(left, x1, x_new),
            np.where(left, f_new, f2),
            np.where(left, f1, f_new),
        )
    return np.exp((a + b) / 2)


def allocate(
    fit: Fit,
    compute: float | Sequence[float],
    prob: float = 0.9,
    flops_per_token_param: float = 6.0,
    inference_tokens: float = 0.0,
    fixed: Mapping[str, float] | None = None,
    method: str = "auto",
) -> Allocation:
    """Compute-optimal N*, D*, D*/N* and loss per budget, with posterior medians and `prob` intervals."""
    compute = np.atleast_1d(np.asarray(compute, dtype=float))
    if np.any(compute <= 0):
        raise BayescaleError(f"compute budgets must be positive, got {compute.tolist()}")
    k = flops_per_token_param
    n = optimal_n(fit, compute, k=k, inference_tokens=inference_tokens, fixed=fixed, method=method)
    d = (compute[None, :] - 2.0 * n * inference_tokens) / (k * n)
    loss = _loss(fit, _params(fit), n, d, dict(fixed or {}))
    return summarise(compute, {"N": n, "D": d, "tokens_per_param": d / n, "loss": loss}, prob, inference_tokens)


def summarise(
    compute: np.ndarray, draws: dict[str, np.ndarray], prob: float, inference_tokens: float = 0.0
) -> Allocation:
    """An Allocation from draws (S, budgets) of N*, D*, D*/N* and the loss: medians and central `prob` intervals."""
    q = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
    rows = {"C": compute}
    for name, values in draws.items():
        lo, med, hi = np.quantile(values, q, axis=0)
        rows.update({f"{name}_median": med, f"{name}_lower": lo, f"{name}_upper": hi})
    table = pd.DataFrame(rows)
    if inference_tokens:
        table.insert(1, "inference_tokens", inference_tokens)
    return Allocation(table=table, draws=draws, prob=prob)


def target_loss(
    fit: Fit,
    target: float,
    prob: float = 0.9,
    flops_per_token_param: float = 6.0,
    compute_range: tuple[float, float] = (1e17, 1e28),
    fixed: Mapping[str, float] | None = None,
    n_budgets: int = 221,
    n_sizes: int = 61,
) -> pd.DataFrame:
    """The cheapest budget C, with one (N, D) for all draws, whose loss is <= `target` with probability `prob`.

    For each budget on a log grid (20 per decade), the size N that maximises P(loss <= target) is chosen; the answer is the
    smallest budget where that probability reaches `prob`, with that N and D. Uses the law itself
    (no run-to-run noise), i.e. the probability that the *expected* loss of such a run meets the target.
    """
    _check_law(fit)
    k = flops_per_token_param
    params = _params(fit)
    cs = np.geomspace(*compute_range, n_budgets)
    centre = np.median(optimal_n(fit, cs, k=k, fixed=fixed), axis=0)
    best_p, best_n = np.zeros(n_budgets), np.zeros(n_budgets)
    for j, c in enumerate(cs):  # sizes within 30x of the median optimum; one (draws x sizes) evaluation each
        ns = np.geomspace(centre[j] / 30, min(centre[j] * 30, c / k), n_sizes)[None, :]
        p = np.mean(_loss(fit, params, ns, c / (k * ns), dict(fixed or {})) <= target, axis=0)
        best_p[j], best_n[j] = p.max(), ns[0, int(np.argmax(p))]
    reached = np.flatnonzero(best_p >= prob)
    if reached.size == 0:
        raise BayescaleError(
            f"no budget up to {compute_range[1]:.3g} FLOPs reaches loss {target} with probability {prob} "
            f"(best: {best_p.max():.2f}); the law's floor may lie above the target"
        )
    j = reached[0]  # the first budget on the grid (20 per decade) that reaches it
    c_star, n_star = float(cs[j]), float(best_n[j])
    return pd.DataFrame(
        {
            "target_loss": [target],
            "prob": [prob],
            "C": [c_star],
            "N": [n_star],
            "D": [c_star / (k * n_star)],
            "P_reached": [best_p[j]],
            "C_previous_budget": [float(cs[j - 1]) if j else np.nan],
        }
    )
