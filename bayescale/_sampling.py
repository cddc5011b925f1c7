"""Run NUTS on a compiled model: nutpie (default, compiled once per law per machine) or PyMC's own samplers."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, get_args

import arviz as az
import numpy as np

from bayescale._model import ModelSpec, build
from bayescale.data import LARGE_RUNS
from bayescale.errors import BayescaleError, DataError
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
    init: str | Any = "map",
    **kwargs: Any,
) -> tuple[az.InferenceData, list[str]]:
    """Sample the posterior; return the draws and the sampler's findings in words (e.g. two modes).

    The same seed, data and sampler give the same draws.

    "nutpie" runs nutpie's NUTS on PyTensor C functions that are compiled once per law per machine and
    loaded from disk after that (bayescale._compiled); "nutpie-numba" compiles the model with Numba
    instead: several times faster per draw, but ~10 s of compilation in every new process.
    `init="map"` starts every chain near the best of several L-BFGS optima of the posterior density,
    so chains do not settle in different local modes of laws like bnsl2; "prior" keeps PyMC's jittered
    support-point start; a posterior (an earlier fit's, on a superset of these runs) starts one L-BFGS search at
    its median instead of twelve from the priors (a refit's mode is near its full fit's).
    """
    _quiet_pytensor()
    cores = kwargs.pop("cores", None) or _cores(sampler, chains)
    if sampler in ("nutpie", "nutpie-numba"):
        import nutpie

        from bayescale._compiled import c_functions, nutpie_model

        funcs = c_functions(spec, arrays)  # also for Numba: the MAP search runs on the cached C functions
        if progress and len(arrays["log_y"]) >= LARGE_RUNS:
            estimate = _time_estimate(funcs, len(arrays["log_y"]), chains, draws + tune, cores)
            print(estimate, file=sys.stderr, flush=True)
        start, findings = _start(funcs, seed, init)
        coords = {"group": list(spec.groups)} if spec.groups else {}
        if sampler == "nutpie":
            compiled = nutpie_model(funcs, coords, start)
        else:
            key = spec.key()
            if key not in _NUMBA:
                _NUMBA[key] = nutpie.compile_pymc_model(build(spec, arrays))
            compiled = dataclasses.replace(_NUMBA[key].with_data(**arrays), initial_point_func=start)
        kwargs = {**NUTPIE_DEFAULTS, **kwargs}

        def sample(n_chains: int, chain_seed: int, bar: bool) -> az.InferenceData:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                return nutpie.sample(
                    compiled,
                    draws=draws,
                    tune=tune,
                    chains=n_chains,
                    cores=min(cores, n_chains),
                    seed=chain_seed,
                    progress_bar=bar,
                    save_warmup=False,
                    **kwargs,
                )

        if sampler == "nutpie":  # one chain per call, seeded by (seed, chain): the same draws on any machine
            idata = _chains_in_processes(lambda c, bar: sample(1, _chain_seed(seed, c), bar), chains, cores, progress)
            funcs.complete(idata.posterior)
        else:
            idata = sample(chains, seed, progress)
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


STEPS_PER_DRAW = 10  # leapfrog steps per NUTS iteration, measured on the catalogue laws (bench/nuts.py: 7-12)
BYTES_PER_RUN = 150  # peak memory a default fit adds per run (bench/sizes.py: 557 MB at 10^5 runs, 678 MB at 10^6)


def _time_estimate(funcs: Any, n_runs: int, chains: int, iterations: int, processes: int = 1) -> str:
    """One line before a large fit: the measured cost of one gradient times the gradients NUTS will take, shared
    by the processes (C path) or threads (Numba) that sample the chains side by side."""
    x = funcs.initial_point(0)
    funcs.logp(x)
    start = time.perf_counter()
    for _ in range(3):
        funcs.logp(x)
    per_gradient = (time.perf_counter() - start) / 3
    rounds = -(-chains // max(1, processes))  # chains one after another in the busiest process
    seconds = per_gradient * rounds * iterations * STEPS_PER_DRAW
    memory = _resident_mb() + BYTES_PER_RUN * n_runs / 1e6
    return (
        f"bayescale: {n_runs:,} runs, {per_gradient * 1e3:.1f} ms per gradient: sampling should take about "
        f"{seconds / 60:.0f} min ({chains} chains on {min(processes, chains)} processes, {iterations} iterations "
        f"each, ~{STEPS_PER_DRAW} gradients per iteration), plus a shorter refit for the extrapolation error; "
        f"memory about {memory:,.0f} MB in this process. For "
        "training curves, keeping every k-th checkpoint divides this by about k (measured on real curves, bench/thinning.py: every 4th checkpoint widened the parameters' "
        "intervals about 2x but kept the held-out error and coverage)."
    )


def _resident_mb() -> float:
    """This process's peak resident memory so far, in MB (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e6 if sys.platform == "darwin" else 1024)  # bytes on macOS, KB on Linux


def _cores(sampler: Sampler, chains: int) -> int:
    """Processes (nutpie on C functions) or threads (the others) for the chains. The C functions run under the
    GIL, so chains on threads would only contend for it; forked processes run them side by side instead (Linux,
    not inside a daemon process such as a Dask worker, which may not have children)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if sampler == "nutpie" and not _can_fork():
        return 1
    return max(1, min(chains, usable))


def _can_fork() -> bool:
    import multiprocessing

    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon


def _chain_seed(seed: int, chain: int) -> int:
    """The seed of one chain sampled on its own: independent streams per chain, fixed by (seed, chain)."""
    return int(np.random.SeedSequence([seed, chain]).generate_state(1)[0])


def _chains_in_processes(
    sample: Callable[[int, bool], az.InferenceData], chains: int, processes: int, progress: bool
) -> az.InferenceData:
    """Run `sample(chain, progress_bar)` for every chain, split over this process and `processes - 1` forked
    ones (which inherit the compiled law: nothing is imported or loaded again), and join the chains in order.
    This process shows the progress bar for its own chains; a forked one sends its chains back through a pipe."""
    import multiprocessing

    groups = [list(range(chains))[i::processes] for i in range(max(1, min(processes, chains)))]
    context = multiprocessing.get_context("fork")
    children = []
    try:
        for group in groups[1:]:
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_sample_and_send, args=(sample, group, send), daemon=True)
            child.start()
            send.close()
            children.append((child, receive))
        done = dict(zip(groups[0], [sample(c, progress) for c in groups[0]], strict=True))
        for (child, receive), group in zip(children, groups[1:], strict=True):
            try:
                status, value = receive.recv()
            except EOFError:
                raise BayescaleError(
                    f"the process sampling chains {group} ended without returning them (exit code "
                    f"{child.join() or child.exitcode}): killed, or out of memory? Run with cores=1 to sample "
                    "every chain in this process."
                ) from None
            if status == "error":
                raise value
            done |= dict(zip(group, value, strict=True))
    finally:
        for child, _ in children:
            if child.is_alive():
                child.join(timeout=1.0)
            if child.is_alive():
                child.terminate()
    return az.concat(*[done[c] for c in range(chains)], dim="chain")


def _sample_and_send(sample: Callable[[int, bool], az.InferenceData], group: list[int], send: Any) -> None:
    """In a forked process: sample the chains of `group` and send them (or the error) to the parent."""
    try:
        send.send(("ok", [sample(c, False) for c in group]))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent, which raises it
        try:
            send.send(("error", error))
        except Exception:  # the error itself does not pickle
            send.send(("error", RuntimeError(f"sampling failed in a forked process: {error!r}")))
    finally:
        send.close()


def _start(funcs: Any, seed: int, init: str | Any) -> tuple[Any, list[str]]:
    """The chains' start function and the start search's findings, for `run`'s `init`."""
    if isinstance(init, str):
        return _map_start(funcs, seed) if init == "map" else (funcs.initial_point, [])
    centre = _posterior_median(funcs, init)
    return _map_start(funcs, seed) if centre is None else _map_start(funcs, seed, starts=[centre])


def _posterior_median(funcs: Any, posterior: Any) -> np.ndarray | None:
    """The median of a posterior's free variables as a flat point of `funcs`, or None where it lacks one of them
    or shapes differ (e.g. a refit without a whole group)."""
    parts = []
    for name, shape in zip(funcs.names, funcs.shapes, strict=True):
        if name not in posterior or tuple(posterior[name].shape[2:]) != tuple(shape):
            return None
        values = np.asarray(posterior[name].values, dtype=float)
        parts.append(np.median(values.reshape(-1, *shape), axis=0).ravel())
    return np.concatenate(parts) if parts else None


def _map_start(
    funcs: Any, seed: int, n_starts: int = 12, starts: list[np.ndarray] | None = None
) -> tuple[Any, list[str]]:
    """Find the posterior mode (unconstrained space) from several starts: a chain-start function near it, and
    a message when another mode has nearly the same density. Runs with no noise at the mode stop here
    (`_check_noise`), before any sampling."""
    from scipy.optimize import minimize

    fn = funcs.logp

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        logp, grad = fn(x)
        if not np.isfinite(logp):
            return 1e300, np.zeros_like(x)
        return -float(logp), -np.asarray(grad, dtype=float)

    rng = np.random.default_rng(seed)
    optima = []
    for i in range(n_starts if starts is None else len(starts)):
        if starts is not None:
            x0 = np.asarray(starts[i], dtype=float)
        else:
            x0 = funcs.initial_point(int(rng.integers(2**31)))
        if i and starts is None:  # widen later starts so that other modes get a chance
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
    _check_noise(funcs, best)
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


def _check_noise(funcs: Any, best: np.ndarray) -> None:
    """Runs that a law fits to rounding error were computed from a formula: the posterior piles onto zero noise,
    where NUTS cannot move (R-hat 3.6 and 4 effective draws measured on 40 exact Chinchilla runs). Say so at once."""
    from bayescale import diagnostics

    derived = dict(zip(funcs.derived, funcs.expand_draws(best[None, :]), strict=True))
    sigma = float(np.ravel(derived.get("sigma", [np.inf]))[0])
    if sigma < diagnostics.NOISE_FREE_AT_BEST:
        raise DataError(diagnostics.noise_free_message(sigma))


def clear_cache() -> None:
    """Forget in-memory compiled models (the next fit of each law loads or compiles again)."""
    from bayescale._compiled import clear

    _NUMBA.clear()
    clear()
