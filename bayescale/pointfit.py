"""Point fits of Chinchilla-form laws: variable projection (`map_fit`) and the classic multi-start recipe.

Both minimise the same objective, the Huber loss (delta = 1e-3) summed over runs on log residuals
log L_pred - log L_obs, as in Hoffmann et al. 2022 (Approach 3) and the Epoch replication
(Besiroglu et al. 2024), so their objective values are directly comparable.

Laws of the form `E + exp(s_1 - e_1 * log(x_1 / x0_1)) + ... + exp(s_K - e_K * log(x_K / x0_K))`
(chinchilla: K = 2; power: K = 1) are linear in (E, exp(s_1), ..., exp(s_K)) once the exponents are
fixed. `map_fit` exploits that (variable projection): for fixed exponents the linear coefficients are
solved by non-negative least squares, so only the K exponents are searched (a coarse grid, then
Nelder-Mead on the profile objective), followed by one polish of all parameters from that single
point. The Huber loss on log residuals is not linear in the coefficients, so the inner solve is done
in two honest steps: iteratively reweighted NNLS for the Huber loss on the relative-error
linearisation (log L_pred - log L_obs ~ (L_pred - L_obs) / L_obs, weights 1/L_obs) gives a start, and a
bounded trust-region solve of the exact inner Huber problem (3 unknowns) finishes it.

`classic_fit` is the replication's recipe: L-BFGS-B from a grid of starts (Epoch grid: log E in
{-1, -0.5, ..., 1}, log A and log B in {0, 5, ..., 25}, alpha and beta in {0, 0.5, ..., 2}: 4500
starts), best objective wins. `bootstrap_fit` resamples runs and refits from the classic best start.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize, nnls
from threadpoolctl import threadpool_limits

from bayescale.data import ScalingData, as_frame
from bayescale.errors import BayescaleError
from bayescale.laws import Law
from bayescale.laws import law as get_law

DELTA = 1e-3
# The Epoch replication's grid of L-BFGS-B starts (Besiroglu et al. 2024, following Hoffmann et al. 2022).
EPOCH_GRID = {
    "log_E": np.arange(-1.0, 1.01, 0.5),
    "log_scale": np.arange(0.0, 25.1, 5.0),
    "exponent": np.arange(0.0, 2.01, 0.5),
}
_EXPONENT_CAP = 2.0  # search range for an exponent whose support is unbounded above


def _one_blas_thread(func: Callable) -> Callable:
    """Run with OpenBLAS limited to one thread: these problems have 3-5 unknowns, and threaded BLAS calls
    inside L-BFGS-B / NNLS cost far more than they save (measured: 20 classic starts on the Chinchilla data
    took 7.5 s with 2 OpenBLAS threads on a busy 2-core machine, 0.32 s with one)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


# --- the law's structure -------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    """A law read as `offset + sum_k exp(scale_k - exponent_k * log(input_k / ref_k))`."""

    offset: str
    terms: tuple[tuple[str, str, str, str], ...]  # (scale param, exponent param, input, reference constant)

    @property
    def scales(self) -> list[str]:
        return [t[0] for t in self.terms]

    @property
    def exponents(self) -> list[str]:
        return [t[1] for t in self.terms]


def _flatten_sum(tree: tuple) -> list[tuple]:
    if tree[0] == "add":
        return _flatten_sum(tree[1]) + _flatten_sum(tree[2])
    return [tree]


def _power_term(tree: tuple, law: Law) -> tuple[str, str, str, str] | None:
    """Match exp(s - e * log(x / x0)) with s, e parameters, x an input and x0 a numeric/statistic constant."""
    try:
        call, fn, body = tree
        sub, (k1, scale), (mul, (k2, expo), (call2, fn2, (div, (k3, x), (k4, ref)))) = body
    except (TypeError, ValueError):
        return None
    ok = (call, fn, sub, mul, call2, fn2, div) == ("call", "exp", "sub", "mul", "call", "log", "div")
    ok = ok and (k1, k2, k3, k4) == ("name",) * 4
    ok = ok and scale in law.params and expo in law.params and x in law.inputs and ref in law.constants
    return (scale, expo, x, ref) if ok else None


def law_form(law: Law) -> Form:
    """The law's linear/nonlinear split, or a BayescaleError naming the law when it has no such form."""
    parts = _flatten_sum(law.formula.tree) if not law.definitions else []
    offsets = [p[1] for p in parts if p[0] == "name" and p[1] in law.params]
    terms = [_power_term(p, law) for p in parts if not (p[0] == "name" and p[1] in law.params)]
    names = [*offsets, *(n for t in terms if t for n in t[:2])]
    if (
        len(offsets) != 1
        or not terms
        or any(t is None for t in terms)
        or len(set(names)) != len(names)
        or set(names) != set(law.params)
    ):
        raise BayescaleError(
            f"method='map' (variable projection) supports laws of the form "
            f"E + exp(a - alpha * log(N / N0)) + ... (e.g. 'chinchilla', 'power'); law {law.name!r} has "
            f"formula {law.formula.source!r}. Use method='nuts' for it."
        )
    offset = offsets[0]
    if law.params[offset].support[0] != 0.0:
        raise BayescaleError(f"method='map': law {law.name!r}: {offset!r} must have support starting at 0")
    return Form(offset, tuple(terms))  # type: ignore[arg-type]


# --- the problem in arrays -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Problem:
    form: Form
    u: np.ndarray  # (K, n): log(x_k / x0_k)
    logx: np.ndarray  # (K, n): log(x_k), natural units (classic parameterisation)
    logref: np.ndarray  # (K,): log(x0_k)
    y: np.ndarray
    logy: np.ndarray
    bounds: np.ndarray  # (K, 2): exponent search bounds

    @property
    def k(self) -> int:
        return len(self.form.terms)


def _prepare(
    law: Law, data: ScalingData | pd.DataFrame, flops_per_token_param: float = 6.0
) -> tuple[ScalingData, dict[str, float], _Problem]:
    form = law_form(law)
    if isinstance(data, pd.DataFrame):
        data = ScalingData.from_frame(data)
    data = data.with_inputs(law.inputs, flops_per_token_param)
    data.check_for(law, n_extra_params=0)
    columns = {c: data[c] for c in (*law.inputs, law.target)}
    constants = law.resolve_constants(columns)
    logx = np.array([np.log(np.asarray(data[x], dtype=float)) for _, _, x, _ in form.terms])
    logref = np.array([np.log(constants[ref]) for *_, ref in form.terms])
    bounds = []
    for expo in form.exponents:
        lo, hi = law.params[expo].support
        bounds.append((max(lo, 0.0), min(hi, _EXPONENT_CAP)))
    y = np.asarray(data[law.target], dtype=float)
    problem = _Problem(form, logx - logref[:, None], logx, logref, y, np.log(y), np.array(bounds))
    return data, constants, problem


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _design(problem: _Problem, exponents: np.ndarray) -> np.ndarray:
    """Columns [1, (x_k/x0_k)^-e_k ...]: the law is X @ (E, exp(s_1), ..., exp(s_K))."""
    return np.column_stack([np.ones(problem.y.size), *np.exp(-exponents[:, None] * problem.u)])


# --- variable projection ---------------------------------------------------------------------------
def _inner_start(X: np.ndarray, y: np.ndarray, delta: float, iters: int = 25) -> np.ndarray:
    """Huber regression on relative errors (X theta - y) / y with theta >= 0, by IRLS with NNLS inside.

    Only a start for the exact inner solve, so a few reweightings suffice."""
    Xr = X / y[:, None]
    w = np.ones(y.size)
    theta = np.zeros(X.shape[1])
    for _ in range(iters):
        sw = np.sqrt(w)
        new, _ = nnls(Xr * sw[:, None], sw, maxiter=50 * X.shape[1])
        done = np.max(np.abs(new - theta)) <= 1e-9 * (1.0 + np.max(np.abs(new)))
        theta = new
        if done:
            break
        rho = np.abs(Xr @ theta - 1.0)
        w = np.minimum(1.0, delta / np.maximum(rho, 1e-300))
    return theta


def _inner_exact(X: np.ndarray, logy: np.ndarray, theta0: np.ndarray, delta: float) -> tuple[np.ndarray, float]:
    """min over theta >= 0 of sum Huber(log(X theta) - log y): bounded trust region with the exact Huber loss."""
    theta0 = np.maximum(theta0, 0.0)
    if not np.any(X @ theta0 > 0):
        theta0 = theta0 + 1e-3

    def resid(t):
        return np.log(np.maximum(X @ t, 1e-300)) - logy

    def jac(t):
        return X / np.maximum(X @ t, 1e-300)[:, None]

    sol = least_squares(
        resid,
        theta0,
        jac=jac,
        bounds=(0.0, np.inf),
        loss="huber",
        f_scale=delta,
        method="trf",
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
        gtol=1e-12,
        max_nfev=200,
    )
    best, obj = sol.x, float(_huber(resid(sol.x), delta).sum())
    start_obj = float(_huber(resid(theta0), delta).sum())
    return (best, obj) if obj <= start_obj else (theta0, start_obj)


def _profile(problem: _Problem, exponents: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    X = _design(problem, exponents)
    theta0 = _inner_start(X, problem.y, delta)
    theta, obj = _inner_exact(X, problem.logy, theta0, delta)
    return obj, theta


def _full_objective(z: np.ndarray, problem: _Problem, delta: float) -> tuple[float, np.ndarray]:
    """Huber objective and gradient in z = (E, c_1..c_K, e_1..e_K), law = E + sum c_k exp(-e_k u_k)."""
    k = problem.k
    E, c, e = z[0], z[1 : 1 + k], z[1 + k :]
    terms = np.exp(-e[:, None] * problem.u)
    pred = E + c @ terms
    r = np.log(np.maximum(pred, 1e-300)) - problem.logy
    g = np.clip(r, -delta, delta) / pred
    grad = np.concatenate([[g.sum()], terms @ g, -c * ((terms * problem.u) @ g)])
    return float(_huber(r, delta).sum()), grad


def _polish(problem: _Problem, z0: np.ndarray, delta: float) -> tuple[np.ndarray, float]:
    """All parameters at once from the projected solution: trust-region Huber solve, then L-BFGS-B; best kept."""
    k = problem.k
    lower = np.concatenate([np.zeros(1 + k), problem.bounds[:, 0]])
    upper = np.concatenate([np.full(1 + k, np.inf), problem.bounds[:, 1]])

    def resid(z):
        return np.log(np.maximum(z[0] + z[1 : 1 + k] @ np.exp(-z[1 + k :, None] * problem.u), 1e-300)) - problem.logy

    def jac(z):
        terms = np.exp(-z[1 + k :, None] * problem.u)
        pred = z[0] + z[1 : 1 + k] @ terms
        cols = [np.ones_like(pred), *terms, *(-z[1 + i] * terms[i] * problem.u[i] for i in range(k))]
        return np.column_stack(cols) / pred[:, None]

    best_z, best_obj = z0, _full_objective(z0, problem, delta)[0]
    sol = least_squares(
        resid,
        np.clip(z0, lower, upper),
        jac=jac,
        bounds=(lower, upper),
        loss="huber",
        f_scale=delta,
        method="trf",
        x_scale="jac",
        xtol=1e-13,
        ftol=1e-13,
        gtol=1e-13,
        max_nfev=500,
    )
    obj = _full_objective(sol.x, problem, delta)[0]
    if obj < best_obj:
        best_z, best_obj = sol.x, obj
    res = minimize(
        _full_objective,
        best_z,
        args=(problem, delta),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lower, np.where(np.isinf(upper), None, upper), strict=True)),
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000},
    )
    if res.fun < best_obj:
        best_z, best_obj = res.x, float(res.fun)
    return best_z, best_obj


def _grid_axes(problem: _Problem, points: int) -> list[np.ndarray]:
    return [np.linspace(lo + 0.02 * (hi - lo), hi, points) for lo, hi in problem.bounds]


@_one_blas_thread
def map_fit(
    law: str | Path | Law,
    data: ScalingData | pd.DataFrame,
    *,
    delta: float = DELTA,
    grid_points: int | None = None,
    flops_per_token_param: float = 6.0,
) -> PointFit:
    """Minimise the Huber objective by variable projection from ONE deterministic start (no random grid).

    1. Profile objective P(exponents) = min over the linear coefficients (E, exp(a), exp(b)) >= 0, solved
       exactly (IRLS-NNLS start, then a bounded trust-region solve of the inner Huber problem).
    2. P on a coarse grid over the exponents' supports, Nelder-Mead on P from the best grid point.
    3. One polish of all parameters (trust region, then L-BFGS-B) from that point.
    """
    start = time.perf_counter()
    the_law = get_law(law)
    data, constants, problem = _prepare(the_law, data, flops_per_token_param)
    k = problem.k
    points = grid_points or (12 if k == 2 else 40 if k == 1 else 6)
    evals = 0

    def profile(e: np.ndarray) -> float:
        nonlocal evals
        evals += 1
        e = np.clip(e, problem.bounds[:, 0], problem.bounds[:, 1])
        return _profile(problem, e, delta)[0]

    grid = [np.array(p) for p in itertools.product(*_grid_axes(problem, points))]
    values = [profile(e) for e in grid]
    e0 = grid[int(np.argmin(values))]
    step = (problem.bounds[:, 1] - problem.bounds[:, 0]) / points
    toward = np.where(e0 + step <= problem.bounds[:, 1], step, -step)  # first simplex: one grid step per axis
    simplex = np.vstack([e0, *(e0 + np.eye(k)[i] * toward[i] for i in range(k))])
    nm = minimize(
        profile,
        e0,
        method="Nelder-Mead",
        bounds=problem.bounds,
        options={"initial_simplex": simplex, "xatol": 1e-7, "fatol": 1e-14, "maxfev": 400},
    )
    e_best = np.clip(nm.x, problem.bounds[:, 0], problem.bounds[:, 1])
    _, theta = _profile(problem, e_best, delta)
    z, obj = _polish(problem, np.concatenate([theta, e_best]), delta)
    params = _law_params(the_law, problem, z, constants)
    return PointFit(
        the_law,
        params,
        obj,
        time.perf_counter() - start,
        constants,
        "map (variable projection)",
        delta,
        flops_per_token_param,
        info={"grid_points": len(grid), "profile_evals": evals, "nelder_mead_converged": bool(nm.success)},
    )


def _law_params(law: Law, problem: _Problem, z: np.ndarray, constants: Mapping[str, float]) -> dict[str, float]:
    k = problem.k
    form = problem.form
    params = {form.offset: float(z[0])}
    with np.errstate(divide="ignore"):
        for i, (scale, expo, *_) in enumerate(form.terms):
            params[scale] = float(np.log(z[1 + i]))
            params[expo] = float(z[1 + k + i])
    ordered = {name: params[name] for name in law.params}
    with np.errstate(over="ignore"):
        derived = law.derived_values(ordered, constants)
    return {**ordered, **{n: float(v) for n, v in derived.items()}}


# --- the classic recipe ----------------------------------------------------------------------------
def _classic_objective(phi: np.ndarray, logx: np.ndarray, logy: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Epoch parameterisation phi = (log E, log A_1..log A_K, e_1..e_K): log L = LSE(log E, log A_k - e_k log x_k)."""
    k = logx.shape[0]
    parts = np.vstack([np.full(logy.size, phi[0]), phi[1 : 1 + k, None] - phi[1 + k :, None] * logx])
    top = parts.max(axis=0)
    weights = np.exp(parts - top)
    total = weights.sum(axis=0)
    weights /= total
    r = top + np.log(total) - logy
    g = np.clip(r, -delta, delta)
    grad = np.concatenate([[weights[0] @ g], weights[1:] @ g, -(weights[1:] * logx) @ g])
    return float(_huber(r, delta).sum()), grad


def _classic_starts(k: int, n_starts: int | None, seed: int) -> np.ndarray:
    axes = [EPOCH_GRID["log_E"], *[EPOCH_GRID["log_scale"]] * k, *[EPOCH_GRID["exponent"]] * k]
    grid = np.array(list(itertools.product(*axes)))
    if n_starts is not None and n_starts < len(grid):
        keep = np.sort(np.random.default_rng(seed).choice(len(grid), n_starts, replace=False))
        grid = grid[keep]
    return grid


def _lbfgs(phi0: np.ndarray, logx: np.ndarray, logy: np.ndarray, delta: float) -> tuple[np.ndarray, float]:
    with np.errstate(over="ignore", invalid="ignore"):
        res = minimize(_classic_objective, phi0, args=(logx, logy, delta), jac=True, method="L-BFGS-B")
    return res.x, float(res.fun) if np.isfinite(res.fun) else np.inf


def _phi_to_z(problem: _Problem, phi: np.ndarray) -> np.ndarray:
    k = problem.k
    e = phi[1 + k :]
    return np.concatenate([[np.exp(phi[0])], np.exp(phi[1 : 1 + k] - e * problem.logref), e])


@_one_blas_thread
def classic_fit(
    data: ScalingData | pd.DataFrame,
    delta: float = DELTA,
    n_starts: int | None = None,
    seed: int = 0,
    *,
    law: str | Path | Law = "chinchilla",
    flops_per_token_param: float = 6.0,
) -> PointFit:
    """The replication's recipe: L-BFGS-B (analytic gradient) on the Huber objective from each grid start.

    `n_starts=None` uses the full Epoch grid (4500 starts for chinchilla); an integer uses that many grid
    points drawn without replacement (seeded). Exponents are unconstrained, as in the original recipe.
    """
    start = time.perf_counter()
    the_law = get_law(law)
    data, constants, problem = _prepare(the_law, data, flops_per_token_param)
    starts = _classic_starts(problem.k, n_starts, seed)
    best_phi, best, found = None, np.inf, []
    for phi0 in starts:
        phi, obj = _lbfgs(phi0, problem.logx, problem.logy, delta)
        found.append(obj)
        if obj < best:
            best_phi, best = phi, obj
    z = _phi_to_z(problem, best_phi)
    objective = _full_objective(z, problem, delta)[0]  # the same objective function as map_fit reports
    params = _law_params(the_law, problem, z, constants)
    return PointFit(
        the_law,
        params,
        objective,
        time.perf_counter() - start,
        constants,
        "classic (L-BFGS-B grid)",
        delta,
        flops_per_token_param,
        info={
            "n_starts": len(starts),
            "phi": best_phi.tolist(),
            "n_starts_at_best": int(np.sum(np.asarray(found) <= best + 1e-9)),
        },
    )


# --- bootstrap -------------------------------------------------------------------------------------
@dataclass
class Bootstrap:
    """Refits on runs resampled with replacement: percentile intervals and prediction draws."""

    fits: list[PointFit]
    base: PointFit
    seconds: float

    def table(self) -> pd.DataFrame:
        """One row per resample, one column per parameter (sampled and derived)."""
        return pd.DataFrame([f.params for f in self.fits])

    def intervals(self, prob: float = 0.9) -> pd.DataFrame:
        """Percentile intervals per parameter: lower, median, upper (and the full-data point estimate)."""
        if not 0 < prob < 1:
            raise BayescaleError(f"prob must lie strictly between 0 and 1, got {prob}")
        table = self.table()
        q = table.quantile([(1 - prob) / 2, 0.5, (1 + prob) / 2]).T
        q.columns = ["lower", "median", "upper"]
        q["estimate"] = [self.base.params[n] for n in q.index]
        return q

    def predict_draws(self, new: Any) -> np.ndarray:
        """The law's value at each new row for each resample: shape (n_boot, n)."""
        return np.vstack([f.mean(new) for f in self.fits])


@_one_blas_thread
def bootstrap_fit(
    data: ScalingData | pd.DataFrame,
    n_boot: int = 100,
    seed: int = 0,
    *,
    delta: float = DELTA,
    law: str | Path | Law = "chinchilla",
    start: PointFit | None = None,
    n_starts: int | None = None,
    flops_per_token_param: float = 6.0,
) -> Bootstrap:
    """Resample runs with replacement `n_boot` times; refit each by L-BFGS-B from the classic best start.

    `start` is the full-data classic fit (computed with `classic_fit(..., n_starts=n_starts)` when not given).
    """
    t0 = time.perf_counter()
    the_law = get_law(law)
    data, constants, problem = _prepare(the_law, data, flops_per_token_param)
    base = start or classic_fit(data, delta, n_starts, seed, law=the_law, flops_per_token_param=flops_per_token_param)
    k = problem.k
    z = np.array(
        [
            base.params[problem.form.offset],
            *np.exp([base.params[s] for s in problem.form.scales]),
            *[base.params[e] for e in problem.form.exponents],
        ]
    )
    phi0 = np.concatenate([[np.log(z[0])], np.log(z[1 : 1 + k]) + z[1 + k :] * problem.logref, z[1 + k :]])
    rng = np.random.default_rng(seed)
    fits = []
    for _ in range(n_boot):
        idx = rng.integers(0, problem.y.size, problem.y.size)
        t = time.perf_counter()
        phi, obj = _lbfgs(phi0, problem.logx[:, idx], problem.logy[idx], delta)
        zb = _phi_to_z(problem, phi)
        fits.append(
            PointFit(
                the_law,
                _law_params(the_law, problem, zb, constants),
                obj,
                time.perf_counter() - t,
                constants,
                "bootstrap (classic best start)",
                delta,
                flops_per_token_param,
            )
        )
    return Bootstrap(fits, base, time.perf_counter() - t0)


def bootstrap_intervals(
    data: ScalingData | pd.DataFrame, n_boot: int = 100, prob: float = 0.9, seed: int = 0, **kwargs: Any
) -> pd.DataFrame:
    """Percentile bootstrap intervals per parameter (see `bootstrap_fit`)."""
    return bootstrap_fit(data, n_boot=n_boot, seed=seed, **kwargs).intervals(prob)


# --- the result ------------------------------------------------------------------------------------
@dataclass
class PointFit:
    """A point estimate of a law's parameters: `.params` in the law's own parameterisation plus derived ones."""

    law: Law
    params: dict[str, float]
    objective: float  # sum of Huber(delta) over runs of log L_pred - log L_obs
    seconds: float
    constants: dict[str, float]
    method: str
    delta: float = DELTA
    flops_per_token_param: float = 6.0
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return (
            f"PointFit({self.law.name}, {self.method}: {shown}; objective={self.objective:.6g}, {self.seconds:.2f} s)"
        )

    def _frame(self, new: Any) -> pd.DataFrame:
        frame = as_frame(new, [])
        frame = (
            ScalingData(frame, origin="prediction inputs", check=False)
            .with_inputs(self.law.inputs, self.flops_per_token_param)
            .frame
        )
        return as_frame(frame, list(self.law.inputs))

    def mean(self, new: Any) -> np.ndarray:
        """The law's value at each new row."""
        frame = self._frame(new)
        params = {k: self.params[k] for k in self.law.params}
        inputs = {k: frame[k].to_numpy(dtype=float) for k in self.law.inputs}
        with np.errstate(over="ignore", divide="ignore"):
            return np.broadcast_to(self.law.mean(params, inputs, self.constants), len(frame)).astype(float)

    def predict(self, new: Any) -> pd.DataFrame:
        """Inputs plus `median`: the point prediction (the median under multiplicative noise)."""
        out = self._frame(new).copy()
        out["median"] = self.mean(out)
        return out


def huber_objective(
    law: str | Path | Law,
    data: ScalingData | pd.DataFrame,
    params: Mapping[str, float],
    delta: float = DELTA,
    flops_per_token_param: float = 6.0,
) -> float:
    """Sum over runs of Huber(delta) of log L_pred - log L_obs, at `params` in the law's parameterisation."""
    the_law = get_law(law)
    if isinstance(data, pd.DataFrame):
        data = ScalingData.from_frame(data)
    data = data.with_inputs(the_law.inputs, flops_per_token_param)
    columns = {c: data[c] for c in (*the_law.inputs, the_law.target)}
    constants = the_law.resolve_constants(columns)
    pred = the_law.mean({k: params[k] for k in the_law.params}, {k: columns[k] for k in the_law.inputs}, constants)
    return float(_huber(np.log(pred) - np.log(columns[the_law.target]), delta).sum())
