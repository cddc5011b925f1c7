"""Which family wins at scale: P(loss_a < loss_b) along compute and where the two laws cross."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale.allocate import allocate

if TYPE_CHECKING:
    from bayescale.fit import Fit


@dataclass
class Crossover:
    """P(a better) per budget, and every budget where the compute-optimal losses cross (with its interval)."""

    table: pd.DataFrame
    crossings: list[dict[str, float]]
    fraction_crossing: float
    draws: dict[str, np.ndarray] = field(repr=False)
    labels: tuple[str, str] = ("a", "b")

    @property
    def crossing(self) -> dict[str, float] | None:
        """The first crossing along compute, or None."""
        return self.crossings[0] if self.crossings else None

    def __repr__(self) -> str:
        where = "; ".join(
            f"cross at C = {c['median']:.3g} FLOPs ({c['prob']:.0%} interval {c['lower']:.3g} - {c['upper']:.3g}, "
            f"{c['fraction']:.0%} of draws)"
            for c in self.crossings
        )
        head = f"Crossover {self.labels[0]} vs {self.labels[1]}: {where or 'no crossing within the grid'}"
        return f"{head}\n{self.table.to_string()}"

    def plot(self, ax: Any = None) -> Any:
        from bayescale.plots import plot_crossover

        return plot_crossover(self, ax=ax)


def crossover(
    fit_a: Fit,
    fit_b: Fit,
    compute: Sequence[float],
    prob: float = 0.9,
    flops_per_token_param: float = 6.0,
    labels: tuple[str, str] | None = None,
    seed: int = 0,
) -> Crossover:
    """Compare two fitted families at their compute-optimal allocations along a compute grid.

    Draws of the two posteriors are paired at random (they are independent fits). Where the median difference
    changes sign the grid is split into stretches (at the log-midpoints between those changes); in each stretch a
    draw's crossing budget is its first sign change there (log-linear interpolation), and a crossing is reported
    when at least half the draws cross in it, with its interval over those draws. Labels default to the laws' names.
    """
    labels = labels or _labels(fit_a, fit_b)
    c = np.sort(np.asarray(compute, dtype=float))
    loss_a = allocate(fit_a, c, flops_per_token_param=flops_per_token_param).draws["loss"]
    loss_b = allocate(fit_b, c, flops_per_token_param=flops_per_token_param).draws["loss"]
    rng = np.random.default_rng(seed)
    s = min(len(loss_a), len(loss_b))
    diff = loss_a[rng.permutation(len(loss_a))[:s]] - loss_b[rng.permutation(len(loss_b))[:s]]
    q = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
    lo, med, hi = np.quantile(diff, q, axis=0)
    table = pd.DataFrame(
        {
            "C": c,
            f"P({labels[0]} better)": np.mean(diff < 0, axis=0),
            "diff_median": med,
            "diff_lower": lo,
            "diff_upper": hi,
        }
    )
    crossings, crossing_c = _crossings(diff, c, prob)
    fraction = float(np.isfinite(crossing_c).mean())
    return Crossover(table, crossings, fraction, {"diff": diff, "crossing_C": crossing_c}, labels)


def _crossings(diff: np.ndarray, c: np.ndarray, prob: float) -> tuple[list[dict[str, float]], np.ndarray]:
    """Every crossing of the difference draws `diff` (S, k) along the grid `c`, and each draw's first crossing."""
    q = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
    crossings, first = [], np.full(len(diff), np.nan)
    for start, stop in _stretches(np.median(diff, axis=0)):
        at = _first_crossing(diff[:, start:stop], c[start:stop])
        crosses = np.isfinite(at)
        first = np.where(np.isnan(first), at, first)
        if crosses.mean() >= 0.5:
            lo, med, hi = np.quantile(at[crosses], q)
            crossings.append(
                {"median": float(med), "lower": float(lo), "upper": float(hi), "prob": prob}
                | {"fraction": float(crosses.mean())}
            )
    return crossings, first


def _labels(fit_a: Fit, fit_b: Fit) -> tuple[str, str]:
    """The two fits' law names, numbered when they are the same law."""
    a, b = fit_a.law.name, fit_b.law.name
    return (a, b) if a != b else (f"{a} (1)", f"{b} (2)")


def _stretches(median: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges [start, stop) of the grid, one per sign change of the median difference (the whole grid when
    there is none); neighbouring stretches share the grid point between them so no crossing is lost."""
    changes = np.flatnonzero(np.sign(median[1:]) != np.sign(median[:-1]))
    if len(changes) <= 1:
        return [(0, len(median))]
    bounds = [0, *((changes[:-1] + changes[1:] + 1) // 2 + 1), len(median)]
    return [(max(lo - 1, 0), hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _first_crossing(diff: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Per draw, the budget of the first sign change of `diff` (S, k) along `c` (log-linear), NaN if none."""
    if diff.shape[1] < 2:
        return np.full(len(diff), np.nan)
    sign = np.sign(diff)
    change = sign[:, 1:] != sign[:, :-1]
    first = np.argmax(change, axis=1)
    rows = np.arange(len(diff))
    d0, d1 = diff[rows, first], diff[rows, first + 1]
    w = d0 / np.where(d0 - d1 == 0, 1e-300, d0 - d1)
    log_c = np.log(c[first]) + w * (np.log(c[first + 1]) - np.log(c[first]))
    return np.where(change.any(axis=1), np.exp(log_c), np.nan)
