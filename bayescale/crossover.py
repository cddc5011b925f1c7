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
    """P(a better) per budget, and the budget where the compute-optimal losses cross (None if they do not)."""

    table: pd.DataFrame
    crossing: dict[str, float] | None
    fraction_crossing: float
    draws: dict[str, np.ndarray] = field(repr=False)
    labels: tuple[str, str] = ("a", "b")

    def __repr__(self) -> str:
        where = (
            "no crossing within the grid"
            if self.crossing is None
            else (
                f"cross at C = {self.crossing['median']:.3g} FLOPs "
                f"({self.crossing['prob']:.0%} interval {self.crossing['lower']:.3g} - {self.crossing['upper']:.3g})"
            )
        )
        return f"Crossover {self.labels[0]} vs {self.labels[1]}: {where}; {self.fraction_crossing:.0%} of draws cross\n{self.table.to_string()}"

    def plot(self, ax: Any = None) -> Any:
        from bayescale.plots import plot_crossover

        return plot_crossover(self, ax=ax)


def crossover(
    fit_a: Fit,
    fit_b: Fit,
    compute: Sequence[float],
    prob: float = 0.9,
    flops_per_token_param: float = 6.0,
    labels: tuple[str, str] = ("a", "b"),
    seed: int = 0,
) -> Crossover:
    """Compare two fitted families at their compute-optimal allocations along a compute grid.

    Draws of the two posteriors are paired at random (they are independent fits). The crossing budget
    of a draw is where loss_a - loss_b changes sign (log-linear interpolation); the interval is over draws
    that cross, and `crossing` is None when fewer than half the draws cross within the grid.
    """
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
    sign = np.sign(diff)
    change = sign[:, 1:] != sign[:, :-1]
    crosses = change.any(axis=1)
    first = np.argmax(change, axis=1)
    rows = np.arange(s)
    d0, d1 = diff[rows, first], diff[rows, first + 1]
    w = d0 / np.where(d0 - d1 == 0, 1e-300, d0 - d1)
    log_c = np.log(c[first]) + w * (np.log(c[np.minimum(first + 1, len(c) - 1)]) - np.log(c[first]))
    crossing_c = np.where(crosses, np.exp(log_c), np.nan)
    fraction = float(crosses.mean())
    crossing = None
    if fraction >= 0.5:
        clo, cmed, chi = np.quantile(crossing_c[crosses], q)
        crossing = {"median": float(cmed), "lower": float(clo), "upper": float(chi), "prob": prob}
    return Crossover(
        table=table,
        crossing=crossing,
        fraction_crossing=fraction,
        draws={"diff": diff, "crossing_C": crossing_c},
        labels=labels,
    )
