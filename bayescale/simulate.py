"""Simulate runs from a law at known parameter values: for the demo, parameter-recovery tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayescale import _noise
from bayescale.data import ScalingData
from bayescale.laws import Law
from bayescale.laws import law as get_law


def law_values(the_law: Law, params: Mapping[str, float] | None = None) -> dict[str, float]:
    """The law file's published/typical values (`value` fields), overridden by `params`."""
    values = {name: p.value for name, p in the_law.params.items()}
    values.update(params or {})
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ValueError(f"law {the_law.name!r} gives no value for {missing}; pass them in params=")
    return values


def simulate(
    law: str | Law,
    inputs: Mapping[str, np.ndarray],
    params: Mapping[str, float] | None = None,
    noise: float = 0.01,
    seed: int = 0,
    likelihood: str = "normal",
    nu: float = 4.0,
) -> ScalingData:
    """Runs at the given inputs with target = law × exp(noise · eps), eps standard normal or Student-t(nu)
    (truncated so that the target stays at or below the law's target_max, as the fits assume).

    The noise is multiplicative, as in the fits (a law's [noise] power is not simulated: its runs get power 0);
    `likelihood="student_t"` simulates the default fitting model exactly (heavy-tailed run-to-run scatter)."""
    the_law = get_law(law)
    columns = {k: np.asarray(v, dtype=float) for k, v in inputs.items()}
    placeholder = {**columns, the_law.target: np.ones(1)}  # target statistics only shape priors, never the mean
    constants = the_law.resolve_constants(placeholder)
    mean = np.broadcast_to(
        the_law.mean(law_values(the_law, params), columns, constants), len(next(iter(columns.values())))
    )
    rng = np.random.default_rng(seed)
    cap = the_law.target_max
    upper = None if cap is None or noise <= 0 else (np.log(cap) - np.log(mean)) / noise
    y = mean * np.exp(noise * _noise.draws(rng, mean.shape, likelihood, nu, upper))
    return ScalingData.from_frame(pd.DataFrame({**columns, the_law.target: y}), origin=f"simulated from {the_law.name}")


def design_runs(
    law: str | Law,
    n: int | None = None,
    noise: float | None = None,
    seed: int = 0,
    params: Mapping[str, float] | None = None,
    likelihood: str = "normal",
) -> ScalingData:
    """Runs drawn log-uniformly over the ranges in the law file's [design] table, at the law's values."""
    the_law = get_law(law)
    design = the_law.design
    missing = [k for k in the_law.inputs if k not in design.get("ranges", {})]
    if missing:
        raise ValueError(f"law {the_law.name!r} has no [design] range for {missing}; pass inputs to simulate()")
    n = n or design["n"]
    rng = np.random.default_rng(seed + 10_000)
    inputs = {k: np.exp(rng.uniform(*np.log(design["ranges"][k]), n)) for k in the_law.inputs}
    return simulate(
        the_law,
        inputs,
        params=params,
        noise=design["noise"] if noise is None else noise,
        seed=seed,
        likelihood=likelihood,
    )


def chinchilla_runs(
    n: int = 150,
    noise: float = 0.01,
    seed: int = 0,
    n_range: tuple[float, float] = (7e7, 1.6e10),
    d_range: tuple[float, float] = (5e9, 5e11),
    params: Mapping[str, float] | None = None,
) -> ScalingData:
    """Runs drawn log-uniformly over N and D from the published Chinchilla law (the demo's data)."""
    rng = np.random.default_rng(seed + 10_000)
    n_values = np.exp(rng.uniform(*np.log(n_range), n))
    d_values = np.exp(rng.uniform(*np.log(d_range), n))
    return simulate("chinchilla", {"N": n_values, "D": d_values}, params=params, noise=noise, seed=seed)
