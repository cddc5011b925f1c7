"""Run NUTS on a compiled model: nutpie (default, compiled once per law per machine) or PyMC's own samplers."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Mapping
from typing import Any, get_args

import arviz as az
import numpy as np

from bayescale._model import ModelSpec, build
from bayescale.laws import Sampler

_NUMBA: dict[tuple, Any] = {}  # ModelSpec.key() -> nutpie numba-compiled model, reused via with_data
# Measured on 6 simulated Chinchilla data sets (bench/backends.py): low-rank mass-matrix adaptation gives
# ~3x the bulk ESS of the diagonal one at a quarter of the time; target_accept 0.95 removes most divergences.
NUTPIE_DEFAULTS = {"low_rank_modified_mass_matrix": True, "target_accept": 0.95}


def _quiet_pytensor() -> None:
    """Silence PyTensor's BLAS advice; it concerns conda installs and says nothing about the fit."""
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)


def run(
    spec: ModelSpec,
    arrays: Mapping[str, np.ndarray],
    *,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    sampler: Sampler = "nutpie",
    progress: bool = True,
    init: str = "map",
    **kwargs: Any,
) -> tuple[az.InferenceData, list[str]]:
    """Sample the posterior; return the draws and the sampler's findings in words (e.g. two modes).

    The same seed, data and sampler give the same draws.

    "nutpie" runs nutpie's NUTS on PyTensor C functions that are compiled once per law per machine and
    loaded from disk after that (bayescale._compiled); "nutpie-numba" compiles the model with Numba
    instead: several times faster per draw, but ~10 s of compilation in every new process.
    `init="map"` starts every chain near the best of several L-BFGS optima of the posterior density,
    so chains do not settle in different local modes of laws like bnsl2; "prior" keeps PyMC's jittered
    support-point start.
    """
    _quiet_pytensor()
    cores = kwargs.pop("cores", None) or _cores(sampler, chains)
    if sampler in ("nutpie", "nutpie-numba"):
        import nutpie

        from bayescale._compiled import c_functions, nutpie_model

        funcs = c_functions(spec, arrays)  # also for Numba: the MAP search runs on the cached C functions
        if progress and len(arrays["log_y"]) >= LARGE_RUNS:
            print(_time_estimate(funcs, len(arrays["log_y"]), chains, draws + tune), file=sys.stderr, flush=True)
        start, findings = _map_start(funcs, seed) if init == "map" else (funcs.initial_point, [])
        coords = {"group": list(spec.groups)} if spec.groups else {}
        if sampler == "nutpie":
            compiled = nutpie_model(funcs, coords, start)
        else:
            key = spec.key()
            if key not in _NUMBA:
                _NUMBA[key] = nutpie.compile_pymc_model(build(spec, arrays))
            compiled = dataclasses.replace(_NUMBA[key].with_data(**arrays), initial_point_func=start)
        kwargs = {**NUTPIE_DEFAULTS, **kwargs}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            idata = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                seed=seed,
                progress_bar=progress,
                save_warmup=False,
                **kwargs,
            )
        if sampler == "nutpie":
            funcs.complete(idata.posterior)
        return idata, findings
    if sampler in ("pymc", "numpyro"):
        import pymc as pm

        with build(spec, arrays):
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                progressbar=progress,
                nuts_sampler=sampler,
                compute_convergence_checks=False,
                **kwargs,
            )
        return idata, []
    raise ValueError(f"sampler must be one of {', '.join(get_args(Sampler))}, got {sampler!r}")


LARGE_RUNS = 20_000  # from this many runs a fit says beforehand how long sampling should take
STEPS_PER_DRAW = 10  # leapfrog steps per NUTS iteration, measured on the catalogue laws (bench/nuts.py: 7-12)


def _time_estimate(funcs: Any, n_runs: int, chains: int, iterations: int) -> str:
    """One line before a large fit: the measured cost of one gradient times the gradients NUTS will take."""
    x = funcs.initial_point(0)
    funcs.logp(x)
    start = time.perf_counter()
    for _ in range(3):
        funcs.logp(x)
    per_gradient = (time.perf_counter() - start) / 3
    seconds = per_gradient * chains * iterations * STEPS_PER_DRAW
    return (
        f"bayescale: {n_runs:,} runs, {per_gradient * 1e3:.1f} ms per gradient: sampling should take about "
        f"{seconds / 60:.0f} min ({chains} chains x {iterations} iterations x ~{STEPS_PER_DRAW} gradients), plus a "
        "shorter refit for the extrapolation error. For training curves, keeping every k-th checkpoint divides "
        "this by about k (measured on real curves, bench/thinning.py: every 4th checkpoint widened the parameters' "
        "intervals about 2x but kept the held-out error and coverage)."
    )


def _cores(sampler: Sampler, chains: int) -> int:
    """Threads for the chains. The C functions run under the GIL, so chains on several threads only contend
    for it: one thread is 1.3x faster on 2 cores and gives the same draws (bench/nuts.py); Numba and PyMC's
    samplers run chains in parallel."""
    return 1 if sampler == "nutpie" else min(chains, os.cpu_count() or 1)


def _map_start(funcs: Any, seed: int, n_starts: int = 12) -> tuple[Any, list[str]]:
    """Find the posterior mode (unconstrained space) from several starts: a chain-start function near it, and
    a message when another mode has nearly the same density."""
    from scipy.optimize import minimize

    fn = funcs.logp

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        logp, grad = fn(x)
        if not np.isfinite(logp):
            return 1e300, np.zeros_like(x)
        return -float(logp), -np.asarray(grad, dtype=float)

    rng = np.random.default_rng(seed)
    optima = []
    for i in range(n_starts):
        x0 = funcs.initial_point(int(rng.integers(2**31)))
        if i:  # widen later starts so that other modes get a chance
            x0 = x0 + rng.normal(0.0, 1.0, x0.shape)
        with np.errstate(all="ignore"):
            res = minimize(negative, x0, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
        if np.isfinite(res.fun) and res.fun < 1e299:
            optima.append((float(res.fun), res.x))
    findings: list[str] = []
    if not optima:
        return funcs.initial_point, findings
    optima.sort(key=lambda item: item[0])
    best_value, best = optima[0]
    for value, x in optima[1:]:
        if value - best_value < 2.0 and np.max(np.abs(x - best)) > 1.0:
            findings.append(
                f"the posterior has at least two separated modes with nearly equal density (log density within "
                f"{value - best_value:.2f}); chains start at the highest. The data may not decide between two "
                "shapes of the law: compare with a simpler law, or add runs where the two disagree."
            )
            break

    def start(chain_seed: Any) -> np.ndarray:
        return best + np.random.default_rng(chain_seed).normal(0.0, 0.05, best.shape)

    return start, findings


def clear_cache() -> None:
    """Forget in-memory compiled models (the next fit of each law loads or compiles again)."""
    from bayescale._compiled import clear

    _NUMBA.clear()
    clear()
