"""Diagnostics, coded and in plain words: the runs' design before a fit (too few scales, inputs that move
together), the sampling (divergences, R-hat, effective sample size) and what the posterior says about each
parameter (pressed against a bound, barely narrowed by the data).

Every finding is a dict {code, severity, message, params}; `fit.diagnostics["findings"]` keeps them with the fit
and `fit.diagnostics["problems"]` their messages."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import arviz as az

    from bayescale.laws import Law, Prior


class SamplingWarning(UserWarning):
    """The sampler may not have explored the posterior well; the message says what to try."""


class IdentificationWarning(SamplingWarning):
    """The runs or the posterior cannot pin down some parameters; the message says which and what to add."""


MIN_SCALES = 3  # distinct values an input needs for its exponent to rest on more than a line through two points
COLLINEAR = 0.99  # |correlation| of two log inputs above which their effects cannot be told apart
AT_BOUND = 0.05  # posterior's 5% quantile closer to a bound than this share of its 90% width: piled against it
WEAK = 0.7  # posterior sd above this share of the prior sd: the data barely narrowed the prior
IDENTIFICATION_CODES = (
    "few_scales",
    "collinear_inputs",
    "at_bound",
    "weak",
    "contradicting_runs",
)  # IdentificationWarning


def finding(code: str, message: str, params: Any = (), severity: str = "warning") -> dict[str, Any]:
    return {"code": code, "severity": severity, "message": message, "params": list(params)}


# Run noise (sd of log target) below which runs look computed from a formula rather than measured: the smoothest
# real runs in bench/corpus.py scatter by 4e-4 (BNSL's language curves) to 1e-3 (OLMo); exact runs fit to 1e-9.
NOISE_FREE = 1e-4  # posterior median: a warning
NOISE_FREE_AT_BEST = 1e-7  # at the best fit, before sampling: an error (NUTS would only spin; measured R-hat 3.6)


def noise_free_message(sigma: float) -> str:
    return (
        f"the law fits these runs almost exactly (run noise {sigma:.1g} on log scale; measured training runs "
        "scatter by 1e-3 to 1e-1): they look computed from the formula rather than measured. A posterior needs "
        "run-to-run noise to be defined, and NUTS cannot explore one this sharp (chains do not mix). Add the noise "
        "you expect (e.g. bayescale.simulate(..., noise=0.01)), or take the best fit alone with method='map'."
    )


def noise_free(sigma: np.ndarray) -> list[dict]:
    """A finding when the fitted run noise is far below any measured runs' (runs computed from the law)."""
    level = float(np.median(sigma))
    return [finding("noise_free", noise_free_message(level), ["sigma"])] if level < NOISE_FREE else []


@contextlib.contextmanager
def _arviz_without_numba() -> Iterator[None]:
    """ArviZ's NumPy path for a few thousand draws: with Numba installed, ArviZ compiles its R-hat and ESS functions on
    their first call in every process (0.22 s measured), longer than the NumPy path takes (5 ms); same numbers."""
    from arviz.utils import Numba

    was = Numba.numba_flag
    Numba.numba_flag = False
    try:
        yield
    finally:
        Numba.numba_flag = was


RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


def check(idata: az.InferenceData, var_names: list[str]) -> dict:
    """Measure divergences, worst R-hat and lowest bulk ESS; return them and the problems found, in words."""
    import arviz as az

    stats = idata.sample_stats
    chains = idata.posterior.sizes["chain"]
    n_draws = chains * idata.posterior.sizes["draw"]
    divergent = int(stats["diverging"].sum()) if "diverging" in stats else 0
    with _arviz_without_numba():
        summary = az.summary(idata, var_names=var_names, kind="diagnostics", round_to="none")
    rhat = summary["r_hat"].to_numpy(dtype=float)
    ess = summary["ess_bulk"].to_numpy(dtype=float)
    worst_rhat = float(np.nanmax(rhat)) if chains > 1 else float("nan")
    min_ess = float(np.nanmin(ess))
    found = []
    if divergent:
        found.append(
            finding(
                "divergences",
                f"{divergent} of {n_draws} draws ended in a divergence: the sampler met curvature it could not follow, "
                "so intervals may be biased. Try tune=2000 and target_accept=0.95, a Student-t likelihood if some "
                "runs are outliers, or tighter priors on parameters the data cannot identify.",
            )
        )
    if chains > 1 and worst_rhat > RHAT_MAX:
        bad = summary.index[rhat > RHAT_MAX].tolist()
        found.append(
            finding(
                "rhat",
                f"chains disagree (R-hat {worst_rhat:.3f} > {RHAT_MAX}) for {', '.join(bad)}: the posterior may be "
                "multimodal or not yet converged. Run more tune and draws, or check whether the data can identify "
                "these parameters (e.g. an irreducible loss far below every observed loss).",
                bad,
            )
        )
    if min_ess < ESS_PER_CHAIN_MIN * chains:
        low = summary.index[ess < ESS_PER_CHAIN_MIN * chains].tolist()
        found.append(
            finding(
                "low_ess",
                f"few effective draws ({min_ess:.0f}, want at least {ESS_PER_CHAIN_MIN * chains}) for {', '.join(low)}: "
                "interval ends are noisy. Increase draws (e.g. draws=2000).",
                low,
            )
        )
    return {"divergences": divergent, "max_rhat": worst_rhat, "min_ess_bulk": min_ess, "findings": found}


def with_problems(report: dict) -> dict:
    """`report` with `problems`: the messages of its findings, in order."""
    return report | {"problems": [f["message"] for f in report["findings"]]}


def warn(findings: list[dict], what: str) -> None:
    for f in findings:
        category = IdentificationWarning if f["code"] in IDENTIFICATION_CODES else SamplingWarning
        warnings.warn(f"{what}: {f['message']}", category, stacklevel=3)


def design(law: Law, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Before a fit: inputs at fewer than MIN_SCALES distinct values, and pairs of inputs whose logs move together
    (e.g. every run at 20 tokens per parameter: N and D cannot be separated)."""
    found = []
    logs = {}
    for name in law.inputs:
        values = frame[name].to_numpy(dtype=float)
        distinct = np.unique(np.round(values, 12))
        if len(distinct) < MIN_SCALES and len(values) > len(distinct):
            shown = ", ".join(f"{v:.3g}" for v in distinct)
            found.append(
                finding(
                    "few_scales",
                    f"{name} takes only {len(distinct)} distinct values ({shown}): how {law.target} changes with {name} "
                    f"rests on {len(distinct)} points. Add runs at a third scale of {name}.",
                    [name],
                )
            )
        if np.all(values > 0) and len(distinct) >= MIN_SCALES:
            logs[name] = np.log(values)
    names = list(logs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            r = float(np.corrcoef(logs[a], logs[b])[0, 1])
            if abs(r) > COLLINEAR:
                ratio = np.exp(logs[b] - logs[a])
                found.append(
                    finding(
                        "collinear_inputs",
                        f"log {a} and log {b} move together (correlation {r:.3f}; {b}/{a} from {ratio.min():.3g} to "
                        f"{ratio.max():.3g}): the law cannot tell their effects apart, so their exponents trade off and "
                        f"anything that depends on the split (e.g. the compute-optimal allocation) is poorly determined. "
                        f"Add runs at other ratios of {b} to {a}.",
                        [a, b],
                    )
                )
    return found


def identification(law: Law, draws: Mapping[str, np.ndarray], constants: Mapping[str, float]) -> list[dict]:
    """After a fit: parameters whose posterior piles against a bound of their support or prior, and parameters
    the data barely narrowed (posterior sd above WEAK of the prior's)."""
    found = []
    for name, param in law.params.items():
        x = np.asarray(draws[name], dtype=float)
        if x.ndim != 1:
            continue  # per-group parameters: judged by their pooled prior, not here
        q05, q50, q95 = np.quantile(x, [0.05, 0.5, 0.95])
        spread = max(q95 - q05, 1e-12)
        lower, upper = _bounds(param.support, param.prior, constants)
        if q05 - lower < AT_BOUND * spread or upper - q95 < AT_BOUND * spread:
            side, bound = ("lower", lower) if q05 - lower < AT_BOUND * spread else ("upper", upper)
            found.append(
                finding(
                    "at_bound",
                    f"{name} is pressed against its {side} bound {bound:.3g} (median {q50:.3g}): the data push it "
                    "beyond what the law allows, so its interval is cut off there. The law may not suit these runs, "
                    "or the bound is too tight.",
                    [name],
                )
            )
            continue
        prior_sd = _prior_sd(param.prior, constants)
        if np.isfinite(prior_sd) and x.std() > WEAK * prior_sd:
            found.append(
                finding(
                    "weak",
                    f"the data barely narrow {name} (posterior sd {x.std():.3g} against the prior's {prior_sd:.3g}): "
                    f"its interval mostly restates the prior. Runs over a wider range of the inputs it acts on would "
                    "pin it down; or fix it (fixed=) or give it an informed prior (priors=).",
                    [name],
                    severity="info",
                )
            )
    return found


def _bounds(support: tuple[float, float], prior: Prior, constants: Mapping[str, float]) -> tuple[float, float]:
    args = prior.resolve(constants)
    lower, upper = support
    if prior.dist in ("HalfNormal", "HalfCauchy", "HalfStudentT", "Exponential", "Gamma", "LogNormal", "Beta"):
        lower = max(lower, 0.0)
    if prior.dist == "Beta":
        upper = min(upper, 1.0)
    return max(lower, args.get("lower", -np.inf)), min(upper, args.get("upper", np.inf))


def _prior_sd(prior: Prior, constants: Mapping[str, float]) -> float:
    """The prior's standard deviation (scipy.stats), inf where it has none."""
    from scipy import stats

    a = prior.resolve(constants)
    dist = {
        "Normal": lambda: stats.norm(a["mu"], a["sigma"]),
        "HalfNormal": lambda: stats.halfnorm(scale=a["sigma"]),
        "LogNormal": lambda: stats.lognorm(s=a["sigma"], scale=np.exp(a["mu"])),
        "Uniform": lambda: stats.uniform(a["lower"], a["upper"] - a["lower"]),
        "TruncatedNormal": lambda: stats.truncnorm(
            (a.get("lower", -np.inf) - a["mu"]) / a["sigma"],
            (a.get("upper", np.inf) - a["mu"]) / a["sigma"],
            loc=a["mu"],
            scale=a["sigma"],
        ),
        "Beta": lambda: stats.beta(a["alpha"], a["beta"]),
        "Gamma": lambda: stats.gamma(a["alpha"], scale=1 / a["beta"]),
        "Exponential": lambda: stats.expon(scale=1 / a["lam"]),
        "StudentT": lambda: stats.t(a["nu"], a["mu"], a["sigma"]),
        "HalfStudentT": lambda: stats.t(a["nu"], 0.0, a["sigma"]),  # sd of |T| <= sd of T: conservative
    }.get(prior.dist)
    return float(dist().std()) if dist else float("inf")


CONTRADICTION_SDS = 8.0  # a pair of runs contradicts the law's direction by more than this many noise sds ...
CONTRADICTION_LOG = 0.05  # ... and by more than 5% of the target, so that heavy-tailed noise does not set it off
CONTRADICTION_MAX_RUNS = 2000  # all ordered pairs are compared: n^2 cells


def contradictions(
    law: Law, frame: pd.DataFrame, params: Mapping[str, float], constants: Mapping[str, float], sigma: np.ndarray
) -> list[dict]:
    """After a fit: pairs of runs no law moving like the fitted one can fit both of. From run i to run j every input
    moves the fitted law down or leaves it (the same value where the law is not monotone in it), so the law puts
    j's target no higher, yet it is higher by more than CONTRADICTION_SDS run noise sds (`sigma`, log scale, per
    run): a model that got worse with more parameters on repeated data, a run that diverged. Such runs pull the
    fit towards them."""
    n = len(frame)
    if n < 2 or n > CONTRADICTION_MAX_RUNS:
        return []
    x = {k: frame[k].to_numpy(dtype=float) for k in law.inputs}
    with np.errstate(all="ignore"):
        base = np.log(np.broadcast_to(law.mean(params, x, constants), n))
        # u[k]: the input signed so that larger means a lower law value; None where the law turns in it
        u: dict[str, np.ndarray | None] = {}
        for k, values in x.items():
            step = 1e-3 * (np.abs(values) + np.ptp(values) + 1e-12)
            moved = np.log(np.broadcast_to(law.mean(params, {**x, k: values + step}, constants), n)) - base
            signs = np.sign(np.where(np.abs(moved) > 1e-12, moved, 0.0))
            if not np.all(np.isfinite(moved)):
                return []
            turns = set(np.unique(signs[signs != 0]).tolist())  # runs where the law is flat in k do not count
            if not turns:
                continue
            u[k] = -turns.pop() * values if len(turns) == 1 else None
    if not any(v is not None for v in u.values()):
        return []
    better_or_same = np.ones((n, n), bool)  # [i, j]: j at least as far as i along every input the law moves with
    strictly = np.zeros((n, n), bool)
    for k, v in u.items():
        if v is None:
            better_or_same &= x[k][None, :] == x[k][:, None]
        else:
            better_or_same &= v[None, :] >= v[:, None]
            strictly |= v[None, :] > v[:, None]
    log_y = np.log(frame[law.target].to_numpy(dtype=float))
    worse_by = log_y[None, :] - log_y[:, None]  # [i, j]: how much higher (worse for a falling law) j is than i
    noise = np.sqrt(sigma[:, None] ** 2 + sigma[None, :] ** 2)
    bad = better_or_same & strictly & (worse_by > np.maximum(CONTRADICTION_SDS * noise, CONTRADICTION_LOG))
    if not bad.any():
        return []
    sds = np.where(bad, worse_by / noise, -np.inf)
    i, j = np.unravel_index(int(np.argmax(sds)), sds.shape)
    runs = sorted(set(np.flatnonzero(bad.any(axis=0)).tolist()))
    where = ", ".join(f"{k}={x[k][j]:.3g}" for k in law.inputs)
    other = ", ".join(f"{k}={x[k][i]:.3g}" for k in law.inputs)
    shown = ", ".join(map(str, runs[:8])) + (" ..." if len(runs) > 8 else "")
    message = (
        f"run {j} ({where}) has {law.target} {np.exp(log_y[j]):.4g}, higher than run {i}'s {np.exp(log_y[i]):.4g} "
        f"({other}) by {sds[i, j]:.0f} run-noise sds, although the fitted law puts it no higher (every input moves "
        f"the law down, or not at all, from run {i} to run {j}): no setting of {law.name!r} fits both. {len(runs)} "
        f"run(s) lie this far above a run the law puts at or above them (rows {shown}). Runs that got worse with more "
        "parameters or data (overfitting on repeated data, a diverged run) pull the fit towards them: drop them, or "
        "fit a law that can turn."
    )
    return [finding("contradicting_runs", message)]
