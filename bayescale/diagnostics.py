"""Sampling diagnostics in plain words: divergences, R-hat, effective sample size."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import arviz as az


class SamplingWarning(UserWarning):
    """The sampler may not have explored the posterior well; the message says what to try."""


RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


def check(idata: az.InferenceData, var_names: list[str]) -> dict:
    """Measure divergences, worst R-hat and lowest bulk ESS; return them and the problems found, in words."""
    import arviz as az

    stats = idata.sample_stats
    chains = idata.posterior.sizes["chain"]
    n_draws = chains * idata.posterior.sizes["draw"]
    divergent = int(stats["diverging"].sum()) if "diverging" in stats else 0
    summary = az.summary(idata, var_names=var_names, kind="diagnostics", round_to="none")
    rhat = summary["r_hat"].to_numpy(dtype=float)
    ess = summary["ess_bulk"].to_numpy(dtype=float)
    worst_rhat = float(np.nanmax(rhat)) if chains > 1 else float("nan")
    min_ess = float(np.nanmin(ess))
    problems = []
    if divergent:
        problems.append(
            f"{divergent} of {n_draws} draws ended in a divergence: the sampler met curvature it could not follow, "
            "so intervals may be biased. Try tune=2000 and target_accept=0.95, a Student-t likelihood if some "
            "runs are outliers, or tighter priors on parameters the data cannot identify."
        )
    if chains > 1 and worst_rhat > RHAT_MAX:
        bad = summary.index[rhat > RHAT_MAX].tolist()
        problems.append(
            f"chains disagree (R-hat {worst_rhat:.3f} > {RHAT_MAX}) for {', '.join(bad)}: the posterior may be "
            "multimodal or not yet converged. Run more tune and draws, or check whether the data can identify "
            "these parameters (e.g. an irreducible loss far below every observed loss)."
        )
    if min_ess < ESS_PER_CHAIN_MIN * chains:
        low = summary.index[ess < ESS_PER_CHAIN_MIN * chains].tolist()
        problems.append(
            f"few effective draws ({min_ess:.0f}, want at least {ESS_PER_CHAIN_MIN * chains}) for {', '.join(low)}: "
            "interval ends are noisy. Increase draws (e.g. draws=2000)."
        )
    return {"divergences": divergent, "max_rhat": worst_rhat, "min_ess_bulk": min_ess, "problems": problems}


def warn(report: dict, what: str) -> None:
    for problem in report["problems"]:
        warnings.warn(f"{what}: {problem}", SamplingWarning, stacklevel=3)
