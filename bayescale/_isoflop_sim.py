"""Simulated IsoFLOP sweeps from the published Chinchilla law (known true exponent), for tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayescale.data import ScalingData
from bayescale.laws import law


def chinchilla_isoflops(
    budgets=(1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21),
    per_budget: int = 12,
    low: float = 1 / 3,
    high: float = 30.0,
    guessed_exponent: float | None = 0.73,
    noise: float = 0.005,
    seed: int = 0,
) -> tuple[ScalingData, float]:
    """IsoFLOP runs with sizes from low*N_c to high*N_c per budget (wide and off-centre by default).

    N_c is the true optimum at the smallest budget, moved to larger budgets with `guessed_exponent`, as an
    experimenter who centres the grid with a wrong exponent would (None: centre on the true optimum).
    Returns the data and the true exponent beta / (alpha + beta) of N*(C)."""
    chin = law("chinchilla")
    values = {k: p.value for k, p in chin.params.items()}
    constants = {"N0": 1e9, "D0": 1e11}
    derived = chin.derived_values(values, constants)
    alpha, beta, a_val, b_val = values["alpha"], values["beta"], derived["A"], derived["B"]
    g = (alpha * a_val / (beta * b_val)) ** (1 / (alpha + beta))
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        true_exponent = beta / (alpha + beta)
        n_first = g * (budgets[0] / 6) ** true_exponent
        centre = n_first * (c / budgets[0]) ** (guessed_exponent if guessed_exponent is not None else true_exponent)
        n = centre * np.geomspace(low, high, per_budget)
        d = c / (6 * n)
        loss = chin.mean(values, {"N": n, "D": d}, constants) * np.exp(noise * rng.standard_normal(per_budget))
        rows.append(pd.DataFrame({"N": n, "D": d, "C": c, "loss": loss}))
    return ScalingData.from_frame(pd.concat(rows, ignore_index=True), origin="simulated Chinchilla IsoFLOPs"), beta / (
        alpha + beta
    )
