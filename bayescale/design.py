"""Which runs to train next: the batch that most narrows a target quantity per FLOP spent (Bayesian design).

The value of a candidate run is measured on the posterior itself, by simulation (preposterior analysis): draw
plausible outcomes of the candidate runs from the posterior predictive, reweight the posterior draws by those
outcomes' likelihood (importance sampling: what the posterior would become after training them), and read the
target's spread under the reweighted draws. A batch of k runs is chosen greedily: each step adds the candidate
with the largest expected reduction of the target's variance (log scale) per FLOP, given the runs already in the
batch (their simulated outcomes are kept, so two runs that teach the same thing are not both chosen). Greedy
selection of a variance reduction is the standard batch heuristic (Krause & Guestrin 2007); it needs no refit.

The target's variance has two parts: the law's parameters (what the simulated outcomes reweight) and, for a loss
target of a fit with an extrapolation drift (bayescale._discrepancy), the drift at the target's distance beyond
the data. Runs that bring the data's frontier closer to the target shrink the second part: the runs a law's
misfit can only be learned from are the ones near where it will be used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale import _discrepancy, _noise
from bayescale.errors import BayescaleError
from bayescale.laws import law as get_law

if TYPE_CHECKING:
    from bayescale.fit import Fit

QUANTITIES = ("loss", "N", "D", "tokens_per_param", "crossover", "drift")
CROSSOVER_GRID = 48  # budgets on which a crossover target's first crossing is located (log-spaced)
MIN_CROSSING = 0.1  # a crossover target needs at least this share of draws to cross in the range
DRIFT_DRAWS = 256  # posterior draws (a random subset) a drift target's simulated evidence is averaged over
DRIFT_OUTCOMES = 32  # simulated joint outcomes of the candidates for a drift target
N_OUTCOMES = 64  # simulated outcomes per evaluation (common random numbers across candidates)


@dataclass
class Suggestion:
    """The suggested runs (`table`: inputs, position in the candidates table, cost, expected target width after
    adding the runs chosen so far),
    the target's current 90% width, the same expected width for a plain IsoFLOP grid of the same cost
    (`baseline`), and every candidate's value per FLOP at the first step (`candidates`)."""

    table: pd.DataFrame
    target: str
    width_now: float
    baseline: dict[str, Any]
    candidates: pd.DataFrame
    rule: str = "variance reduction per FLOP"

    def __repr__(self) -> str:
        last = self.table["expected_width90"].iloc[-1] if len(self.table) else self.width_now
        base = self.baseline
        return (
            f"Suggestion for {self.target}: 90% width now {self.width_now:.4g}, after these {len(self.table)} runs "
            f"{last:.4g} (expected); an IsoFLOP grid of the same cost at C = {base['C']:.3g}: "
            f"{base['expected_width90']:.4g}; chosen by {self.rule}\n{self.table.to_string()}"
        )

    def plot(self, ax: Any = None) -> Any:
        """Candidates in the (N, D) plane coloured by value per FLOP; the suggested runs circled and numbered."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        c = self.candidates
        points = ax.scatter(c["N"], c["D"], c=c["value_per_flop"], cmap="viridis", s=18)
        plt.colorbar(points, ax=ax, label="variance reduction per FLOP (first step)")
        ax.scatter(self.table["N"], self.table["D"], s=120, facecolors="none", edgecolors="tab:red", label="suggested")
        for i, row in enumerate(self.table.itertuples(), start=1):
            ax.annotate(str(i), (row.N, row.D), textcoords="offset points", xytext=(6, 6), color="tab:red")
        ax.set(
            xscale="log", yscale="log", xlabel="parameters N", ylabel="tokens D", title=f"next runs for {self.target}"
        )
        ax.legend(fontsize=8)
        return ax


def suggest(
    fit: Fit,
    target: Mapping[str, float],
    candidates: pd.DataFrame | None = None,
    k: int = 4,
    budget: float | None = None,
    quantity: str = "loss",
    cost: str | Callable[[pd.DataFrame], np.ndarray] | None = None,
    flops_per_token_param: float = 6.0,
    seed: int = 0,
    against: Fit | None = None,
) -> Suggestion:
    """Choose up to `k` runs from `candidates` (default: an IsoFLOP-style grid beyond the data, for laws of N
    and D) that most narrow the target per FLOP, within `budget` FLOPs in all if given.

    `target`: a point, e.g. {"N": 7e10, "D": 1.4e12} (the law's value there), or a compute budget {"C": 1e24}
    with `quantity` "loss" (at the compute optimum), "N", "D" or "tokens_per_param" (of the optimum), or
    "drift" (how far the law may drift at the target: the learned extrapolation error's rms shift at the target's
    distance beyond the data, which runs beyond the data's frontier teach), or
    "crossover" with another fit `against` (e.g. another architecture): the first budget up to target["C"] where
    the two compute-optimal losses cross (the runs are for this fit; draws that do not cross count as crossing at
    target["C"], censored). `cost`: a candidates column or a function of the candidates frame; default k N D FLOPs.
    """
    rng = np.random.default_rng(seed)
    if quantity == "drift":
        return _suggest_for_drift(fit, target, candidates, k, budget, cost, flops_per_token_param, rng)
    if quantity == "crossover":
        values, where = _crossover_draws(fit, against, target, flops_per_token_param, seed)
    elif against is not None:
        raise BayescaleError(
            f"against= is for quantity='crossover' (the budget where two fits cross), not {quantity!r}"
        )
    else:
        values, where = _target_draws(fit, target, quantity, flops_per_token_param)
    label = _describe(target, quantity)
    frame = _candidates(fit, candidates, budget, flops_per_token_param)
    costs = _costs(frame, cost, flops_per_token_param)
    log_mean = np.log(_law_values(fit, frame))  # (S, m)
    sigma = fit._run_sigma(log_mean)
    outcomes = _simulate(fit, log_mean, sigma, rng)  # (J, m): each outcome j from one posterior draw

    drift = _Drift.at(fit, where, quantity)
    chosen_loglik = {(): np.zeros((N_OUTCOMES, fit.n_draws))}  # summed log-likelihood of each batch chosen so far

    def loglik_of(picks: list[int]) -> np.ndarray:
        """The simulated outcomes' summed log-likelihood (J, S) of the runs at `picks`, in pick order."""
        if not picks:
            return chosen_loglik[()]
        head = tuple(picks[:-1])
        if head not in chosen_loglik:
            chosen_loglik[head] = loglik_of(list(head))
        i = picks[-1]
        return chosen_loglik[head] + _loglik_of(fit, outcomes[:, i], log_mean[:, i], sigma[:, i])

    def variance_with(picks: list[int]) -> float:  # the greedy's hot path: no widths
        return _variance(values, loglik_of(picks)) + drift.variance(frame.iloc[picks])

    def spread_with(picks: list[int]) -> dict[str, Any]:
        return _spread(values, loglik_of(picks), drift.variance(frame.iloc[picks]))

    now = spread_with([])
    per_flop = _greedy(variance_with, costs, k, budget, per_cost=True)
    spent = float(sum(costs[i] for i, _ in per_flop["picks"]))
    plain = _greedy(variance_with, costs, k, budget if budget is not None else spent, per_cost=False)
    best = min((per_flop, plain), key=lambda plan: plan["var"])  # Leskovec et al. 2007: the better of the two
    picks = [i for i, _ in best["picks"]]
    rows = [spread_with(picks[:n])["row"] for n in range(1, len(picks) + 1)]
    rule = "variance reduction per FLOP" if best is per_flop else "variance reduction (same cost)"
    table = _plan_table(frame, costs, best["picks"], rows)
    spent = float(table["cost"].sum()) if len(table) else 0.0
    baseline = _isoflop_baseline(fit, values, spent, flops_per_token_param, rng, drift)
    return Suggestion(table, label, now["row"]["expected_width90"], baseline, _scored(frame, costs, per_flop), rule)


def _plan_table(
    frame: pd.DataFrame, costs: np.ndarray, picks: list[tuple[int, float]], after: list[dict[str, Any]]
) -> pd.DataFrame:
    """The suggested runs in order: inputs, place in the candidates, cost, value per FLOP and the expected target
    spread once the runs up to this one are in (`after`, one dict per pick)."""
    return pd.DataFrame(
        [
            frame.iloc[i].to_dict() | {"candidate": i, "cost": costs[i], "value_per_flop": gain / costs[i]} | row
            for (i, gain), row in zip(picks, after, strict=True)
        ]
    )


def _scored(frame: pd.DataFrame, costs: np.ndarray, plan: dict[str, Any]) -> pd.DataFrame:
    """Every candidate with its cost and its value per FLOP at the plan's first step (NaN where it was not allowed)."""
    first = plan["first"] / costs
    return frame.assign(cost=costs, value_per_flop=np.where(np.isfinite(first), first, np.nan))


def _greedy(
    variance_with: Callable[[list[int]], float],
    costs: np.ndarray,
    k: int,
    budget: float | None,
    per_cost: bool,
    min_share: float | None = None,
) -> dict[str, Any]:
    """Up to k runs, each step the one with the largest expected variance reduction (per FLOP with `per_cost`)
    given those already chosen, within `budget`; `variance_with(picks)` is the target's expected variance once the
    runs at those candidate indices are in. With `min_share`, a reduction must exceed that share of the current
    variance to count. Returns the picks (index, variance reduction), the final expected variance and the first
    step's reductions per candidate."""
    current = variance_with([])
    picks: list[tuple[int, float]] = []
    spent, first = 0.0, None
    for _ in range(k):
        gains = np.full(len(costs), -np.inf)
        chosen = [p for p, _ in picks]
        for i in range(len(costs)):
            if i in chosen or (budget is not None and spent + costs[i] > budget):
                continue
            gains[i] = current - variance_with([*chosen, i])
        if first is None:
            first = gains.copy()
        score = gains / costs if per_cost else gains
        if min_share is not None:
            score = np.where(gains > min_share * current, score, -np.inf)
        if not np.isfinite(score).any():
            break
        i = int(np.argmax(score))
        picks.append((i, float(gains[i])))
        spent += costs[i]
        current -= gains[i]
    return {"picks": picks, "var": current, "first": first if first is not None else np.full(len(costs), np.nan)}


def _variance(values: np.ndarray, loglik: np.ndarray) -> float:
    """The target's posterior variance (log scale), averaged over the simulated outcomes behind `loglik` (J, S)."""
    w = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    mean = w @ values
    return float(np.mean(w @ values**2 - mean**2))


# --- the target ------------------------------------------------------------------------------------------------
def _target_draws(
    fit: Fit, target: Mapping[str, float], quantity: str, k: float
) -> tuple[np.ndarray, pd.DataFrame | None]:
    """Per posterior draw, the log of the target quantity (S,); and where the target lies, as checked inputs: the
    point itself, or for a compute target the optimum's median allocation (None when the law takes inputs beyond N
    and D, so that the optimum is not a full point)."""
    if not isinstance(target, Mapping) or not target:
        raise BayescaleError("target must be a point such as {'N': 7e10, 'D': 1.4e12} or a budget {'C': 1e24}")
    if quantity not in QUANTITIES:
        raise BayescaleError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    if set(target) == {"C"}:
        if not {"N", "D"} <= set(fit.law.inputs):
            raise BayescaleError(f"a compute target needs a law of N and D; {fit.law.name!r} takes {fit.law.inputs}")
        draws = fit.allocate([float(target["C"])], flops_per_token_param=k).draws
        try:
            where = fit._inputs({"N": [float(np.median(draws["N"]))], "D": [float(np.median(draws["D"]))]})
        except BayescaleError:
            where = None
        return np.log(draws[quantity][:, 0]), where
    if quantity != "loss":
        raise BayescaleError(f"quantity {quantity!r} needs a compute target {{'C': ...}}, not a point")
    where = fit._inputs({key: [float(v)] for key, v in target.items()})
    return np.log(_law_values(fit, where)[:, 0]), where


def _crossover_draws(
    fit: Fit, against: Fit | None, target: Mapping[str, float], k: float, seed: int
) -> tuple[np.ndarray, None]:
    """Per posterior draw of `fit`, the log of the first budget where its compute-optimal loss crosses that of
    `against` (a draw of it paired at random), on a log grid from the smallest fitted compute of either fit up to
    target["C"]; draws that do not cross there count as crossing at target["C"]."""
    from bayescale.crossover import _first_crossing

    if against is None:
        raise BayescaleError("quantity='crossover' needs the other fit: suggest(..., against=other_fit)")
    if not isinstance(target, Mapping) or set(target) != {"C"} or not float(target["C"]) > 0:
        raise BayescaleError("a crossover target is the largest budget to look at, e.g. {'C': 1e25}")
    smallest = min(float(np.min(_costs(f.data.frame, None, k))) for f in (fit, against))
    top = float(target["C"])
    if top <= smallest:
        raise BayescaleError(f"target C = {top:.3g} is not above the smallest fitted compute ({smallest:.3g})")
    grid = np.geomspace(smallest, top, CROSSOVER_GRID)
    loss = fit.allocate(grid, flops_per_token_param=k).draws["loss"]
    other = against.allocate(grid, flops_per_token_param=k).draws["loss"]
    other = other[np.random.default_rng(seed).integers(0, len(other), len(loss))]  # paired at random
    first = _first_crossing(loss - other, grid)
    share = float(np.isfinite(first).mean())
    if share < MIN_CROSSING:
        raise BayescaleError(
            f"only {share:.0%} of the draws cross below C = {top:.3g}: no crossover to narrow there (raise target C, "
            "or look at bayescale.crossover)"
        )
    return np.log(np.where(np.isfinite(first), first, top)), None


def _law_values(fit: Fit, frame: pd.DataFrame) -> np.ndarray:
    """The law's value per draw at checked inputs (S, n), without the extrapolation drift: runs teach the law's
    parameters, which is what the simulated outcomes reweight."""
    return fit._mean(frame, {}, 0, drift=False)


def _describe(target: Mapping[str, float], quantity: str) -> str:
    where = ", ".join(f"{key}={v:.3g}" for key, v in target.items())
    if quantity == "crossover":
        return f"the crossover budget (up to C={float(target['C']):.3g})"
    return f"{quantity} at the optimum for {where}" if set(target) == {"C"} else f"the law's value at {where}"


def _spread(values: np.ndarray, loglik: np.ndarray, drift_var: float = 0.0) -> dict[str, Any]:
    """The target's expected 90% relative width and variance (log scale) over simulated outcomes, each outcome
    reweighting the posterior draws by its likelihood `loglik` (J, S), with the drift's variance `drift_var` at the
    target (Gaussian, common random numbers); and the smallest effective share of draws."""
    w = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    shifted = values + np.sqrt(drift_var) * np.random.default_rng(7).standard_normal(len(values))
    widths = [_weighted_width(shifted, wj) for wj in w]
    ess = 1.0 / np.sum(w**2, axis=1)
    row = {"expected_width90": float(np.mean(widths)), "expected_var": _variance(values, loglik) + drift_var}
    row["min_ess_share"] = float(ess.min() / w.shape[1])
    return {"var": row["expected_var"], "row": row}


def _weighted_width(values: np.ndarray, w: np.ndarray) -> float:
    """The 90% interval's width relative to the median, of exp(values) under weights `w`."""
    order = np.argsort(values)
    cum = np.cumsum(w[order])
    lo, med, hi = (values[order][np.searchsorted(cum, q)] for q in (0.05, 0.5, 0.95))
    return float((np.exp(hi) - np.exp(lo)) / np.exp(med))


# --- candidates, their cost and simulated outcomes ---------------------------------------------------------------
def _candidates(fit: Fit, candidates: pd.DataFrame | None, budget: float | None, k: float) -> pd.DataFrame:
    """The user's candidate runs (checked), or an IsoFLOP-style grid from the largest fitted compute upwards."""
    if candidates is not None:
        frame = fit._inputs(candidates)
        if len(frame) == 0:
            raise BayescaleError("candidates is empty: give at least one run to choose from")
        return frame.reset_index(drop=True)
    if not _of_n_and_d(fit):
        raise BayescaleError(
            f"law {fit.law.name!r} takes {', '.join(fit.law.inputs)}, not N and D only: no default grid of runs; give "
            "candidates= (a table of runs you could train)"
        )
    data = fit.data.frame
    c_max = float(np.max(k * data["N"] * data["D"]))
    top = c_max * 30 if budget is None else max(min(budget, c_max * 100), c_max * 2)
    return fit._inputs(isoflop_grid(fit, np.geomspace(c_max / 4, top, 6), 7, k)).reset_index(drop=True)


def _of_n_and_d(fit: Fit) -> bool:
    """Whether the law takes N and D and nothing else: what an IsoFLOP grid (and the default candidates) fix."""
    return set(fit.law.inputs) == {"N", "D"}


def isoflop_grid(fit: Fit, budgets: Any, points: int, k: float = 6.0) -> pd.DataFrame:
    """`points` runs (N, D) on the IsoFLOP curve of each budget, N from 1/4x to 4x the posterior median N*(C)."""
    budgets = np.atleast_1d(np.asarray(budgets, float))
    n_opt = np.median(fit.allocate(budgets, flops_per_token_param=k).draws["N"], axis=0)
    ns = (n_opt[:, None] * np.geomspace(1 / 4, 4, points)[None, :]).ravel()
    return pd.DataFrame({"N": ns, "D": np.repeat(budgets, points) / (k * ns)})


def _costs(frame: pd.DataFrame, cost: str | Callable | None, k: float) -> np.ndarray:
    if cost is None:
        if not {"N", "D"} <= set(frame):
            raise BayescaleError("give cost= (a column of the candidates or a function of them): no N and D to price")
        out = k * frame["N"].to_numpy(float) * frame["D"].to_numpy(float)
    elif isinstance(cost, str):
        if cost not in frame:
            raise BayescaleError(f"cost column {cost!r} is not in the candidates ({list(frame.columns)})")
        out = frame[cost].to_numpy(float)
    else:
        out = np.asarray(cost(frame), float)
    if out.shape != (len(frame),) or not np.all(np.isfinite(out) & (out > 0)):
        raise BayescaleError("every candidate's cost must be a positive number")
    return out


def _simulate(fit: Fit, log_mean: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """N_OUTCOMES joint outcomes (log target) of every candidate, each from one posterior draw with its noise
    (`sigma` (S, m): each draw's noise scale at each candidate)."""

    pick = rng.integers(0, len(sigma), N_OUTCOMES)
    cap = fit.law.target_max
    upper = None if cap is None else (np.log(cap) - log_mean[pick]) / sigma[pick]
    eps = _noise.draws(rng, (N_OUTCOMES, log_mean.shape[1]), fit.spec.likelihood, fit.spec.nu, upper)
    return log_mean[pick] + sigma[pick] * eps


def _loglik_of(fit: Fit, y: np.ndarray, log_mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Log density of each outcome y (J,) under each draw (S,): (J, S)."""
    from bayescale.fit import log_density

    return log_density(y[:, None], log_mean[None, :], sigma[None, :], fit.spec)


def _isoflop_baseline(
    fit: Fit, values: np.ndarray, spent: float, k: float, rng: np.random.Generator, drift: _Drift
) -> dict[str, Any]:
    """A plain IsoFLOP grid of the same total cost: 5 runs at one budget C = spent / 5, N spread over 1/4x to 4x
    the current N*(C), and its expected target width, by the same simulation."""
    if not _of_n_and_d(fit) or spent <= 0:  # an IsoFLOP grid fixes N and D only
        return {"C": float("nan"), "expected_width90": float("nan")}
    c = spent / ISOFLOP_POINTS
    grid = isoflop_grid(fit, c, ISOFLOP_POINTS, k)
    return {"C": c, "runs": ISOFLOP_POINTS} | expected_after(fit, values, grid, rng, drift)


ISOFLOP_POINTS = 5


def expected_after(
    fit: Fit, values: np.ndarray, runs: pd.DataFrame, rng: np.random.Generator, drift: _Drift | None = None
) -> dict[str, float]:
    """The target's expected 90% relative width (and the smallest effective share of draws) once `runs` are
    trained, by the same simulation `suggest` uses; `values` are the target's log per draw; `drift` (optional) adds
    the extrapolation drift at the target's distance from the data with the runs in."""
    frame = fit._inputs(runs)
    log_mean = np.log(_law_values(fit, frame))
    sigma = fit._run_sigma(log_mean)
    outcomes = _simulate(fit, log_mean, sigma, rng)
    loglik = sum(_loglik_of(fit, outcomes[:, i], log_mean[:, i], sigma[:, i]) for i in range(len(frame)))
    return _spread(values, loglik, drift.variance(frame) if drift is not None else 0.0)["row"]


@dataclass
class _Drift:
    """The extrapolation drift's variance (log scale) at the target as runs are added: the target lies fewer e-folds
    beyond the data once runs come closer to it, and the fit's drift grows with that distance. No target point
    (quantities other than the loss, or a fit without drift): 0."""

    fit: Fit
    point: pd.DataFrame | None

    @classmethod
    def at(cls, fit: Fit, where: pd.DataFrame | None, quantity: str) -> _Drift:
        """The drift at the target's inputs `where` (from `_target_draws`); none for quantities other than the loss."""
        active = quantity == "loss" and _discrepancy.is_active(fit.meta.get("discrepancy", 0.0))
        return cls(fit, where if active else None)

    def variance(self, runs: pd.DataFrame) -> float:
        """The drift's variance at the target with `runs` (role-named, the law's inputs) added to the fitted ones."""
        if self.point is None:
            return 0.0
        law, inputs = self.fit.law, list(self.fit.law.inputs)
        frame = pd.concat([self.fit.data.frame[inputs], runs[inputs]], ignore_index=True)
        setting = self.fit.meta["discrepancy"]
        power = _discrepancy.span_power_of(setting)
        d = float(_discrepancy.distance(law, _discrepancy.frontier(law, frame), self.point, power)[0])
        return _discrepancy.spread_at(setting, d) ** 2


# --- the extrapolation drift as the target --------------------------------------------------------------------------
@dataclass
class _DriftEvidence:
    """What a drift target's simulation needs: the learned grid (its points with weight, their prior weights), each
    grid point's log rms shift at the target, and the drift's leave-future-out evidence machinery for new runs."""

    fit: Fit
    points: dict[str, Any]
    prior: np.ndarray  # (G,) the fit's grid weights
    values: np.ndarray  # (G,) log rms shift at the target per grid point
    draws: np.ndarray  # subset of posterior draws the evidence averages over
    noise: np.ndarray  # (s,) their noise sd

    @classmethod
    def of(cls, fit: Fit, where: pd.DataFrame | None, rng: np.random.Generator) -> _DriftEvidence:
        setting = fit.meta.get("discrepancy", 0.0)
        if not isinstance(setting, dict) or setting.get("fixed") or "weights" not in setting:
            raise BayescaleError(
                "quantity='drift' needs a fit that learned its extrapolation error (discrepancy='auto', the default)"
            )
        if where is None:
            raise BayescaleError("quantity='drift' needs a target point, or a budget of a law of N and D only")
        d = float(fit.drift_distance(where)[0])
        if d <= 0:
            raise BayescaleError("the target lies inside the fitted runs: no extrapolation drift to learn there")
        weights = np.asarray(setting["weights"], float)
        keep = weights > weights.max() * 1e-8
        points = {key: np.asarray(setting[key], float)[keep] for key in _discrepancy.GRID_KEYS}
        points["growth"] = _discrepancy.growth_of(setting)
        points["span_power"] = _discrepancy.span_power_of(setting)
        points["ramp"] = _discrepancy.ramp_of(setting)
        g, r = _discrepancy._axes_of(np.array([d]), points)
        spread = np.sqrt((points["means"] ** 2 + points["scales"] ** 2) * g[0] ** 2 + (points["offsets"] * r[0]) ** 2)
        draws = rng.choice(fit.n_draws, min(DRIFT_DRAWS, fit.n_draws), replace=False)
        noise = fit.noise_sd()[draws]
        return cls(fit, points, weights[keep] / weights[keep].sum(), np.log(spread + 1e-4), draws, noise)

    def outcomes(self, frame: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """DRIFT_OUTCOMES joint outcomes of the runs in `frame`, as residuals from each kept draw's law value
        (J, s, m), each from one grid point, one draw, one shared slope and offset and the run noise; and the runs'
        distances beyond the data (m,)."""
        log_mean = np.log(_law_values(self.fit, frame))[self.draws]
        d = self.fit.drift_distance(frame)
        g, r = _discrepancy._axes_of(d, self.points)
        p = self.points
        out = np.empty((DRIFT_OUTCOMES, *log_mean.shape))
        for j in range(DRIFT_OUTCOMES):
            k, s = rng.choice(len(self.prior), p=self.prior), rng.integers(0, len(self.draws))
            z1, z2 = rng.standard_normal(2)
            shift = (p["means"][k] + p["scales"][k] * z1) * g + p["offsets"][k] * z2 * r
            y = log_mean[s] + shift + self.noise[s] * rng.standard_normal(len(d))
            out[j] = y[None, :] - log_mean
        return out, d

    def spread(self, residuals: np.ndarray, d: np.ndarray, picks: list[int]) -> dict[str, float]:
        """The target's expected variance and 90% relative width over the outcomes once the runs `picks` are in."""
        if not picks:
            weights = np.tile(self.prior, (len(residuals), 1))
        else:
            ev = np.array(
                [_discrepancy.joint_evidence(res[:, picks], self.noise, d[picks], self.points) for res in residuals]
            )
            logw = np.log(self.prior)[None, :] + ev
            weights = np.exp(logw - logw.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
        var = float(np.mean(weights @ self.values**2 - (weights @ self.values) ** 2))
        width = float(np.mean([_weighted_width(self.values, w) for w in weights]))
        return {"expected_width90": width, "expected_var": var}


def _suggest_for_drift(
    fit: Fit,
    target: Mapping[str, float],
    candidates: pd.DataFrame | None,
    k: int,
    budget: float | None,
    cost: str | Callable | None,
    kflops: float,
    rng: np.random.Generator,
) -> Suggestion:
    """suggest() for the drift target: greedy per FLOP on the drift's expected variance at the target, each
    candidate's value from the leave-future-out evidence its simulated outcome would give (runs inside the data
    give none)."""
    _, where = _target_draws(fit, target, "loss", kflops)
    evidence = _DriftEvidence.of(fit, where, rng)
    frame = _candidates(fit, candidates, budget, kflops)
    costs = _costs(frame, cost, kflops)
    residuals, d = evidence.outcomes(frame, rng)
    now = evidence.spread(residuals, d, [])
    # runs inside the data teach the drift nothing: a reduction must beat rounding (1e-9 of the variance) to count
    plan = _greedy(
        lambda picks: evidence.spread(residuals, d, picks)["expected_var"], costs, k, budget, True, min_share=1e-9
    )
    picks = [i for i, _ in plan["picks"]]
    efolds = fit.distance(frame)  # the table says how far out each run is in e-folds; the drift uses d
    after = [evidence.spread(residuals, d, picks[:n]) | {"distance": efolds[i]} for n, i in enumerate(picks, start=1)]
    spent = float(sum(costs[i] for i in picks))
    baseline = {"C": float("nan"), "expected_width90": float("nan")}
    if _of_n_and_d(fit) and spent > 0:
        grid = fit._inputs(isoflop_grid(fit, spent / ISOFLOP_POINTS, ISOFLOP_POINTS, kflops))
        grid_res, grid_d = evidence.outcomes(grid, rng)
        baseline = {"C": spent / ISOFLOP_POINTS, "runs": ISOFLOP_POINTS}
        baseline |= evidence.spread(grid_res, grid_d, list(range(len(grid))))
    label = "the extrapolation drift at " + ", ".join(f"{key}={v:.3g}" for key, v in target.items())
    table = _plan_table(frame, costs, plan["picks"], after)
    return Suggestion(
        table, label, now["expected_width90"], baseline, _scored(frame, costs, plan), "variance reduction per FLOP"
    )


# --- replaying a sweep on runs already trained ---------------------------------------------------------------------
STRATEGIES = ("suggest", "budget order", "random")


def replay(
    law: str,
    seed_runs: pd.DataFrame,
    pool: pd.DataFrame,
    test: pd.DataFrame,
    rounds: int = 3,
    k: int = 4,
    seed: int = 0,
    **fit_options: Any,
) -> tuple[pd.DataFrame, list[Suggestion]]:
    """Replay a progressive sweep on runs that were already trained (role-named frames with the target): from a fit
    to `seed_runs`, each round `suggest` picks `k` runs from `pool` for the law's value at the held-out runs'
    typical inputs (geometric means), and two baselines spend about the same compute from the same pool, in budget
    order and at random; every strategy then updates its fit and predicts the held-out `test` runs. Returns one
    row per round and strategy (compute spent, runs fitted, mean |median / observed - 1|, mean relative 90% width,
    share of held-out runs inside the 90% band) and suggest's plans. Compute is the C column, else 6 N D."""
    from bayescale.fit import fit as fit_law

    law_inputs = list(get_law(law).inputs)
    target = {name: float(np.exp(np.log(test[name]).mean())) for name in law_inputs}
    first = fit_law(law, seed_runs, **({"seed": seed, "progress": False} | fit_options))
    fits = dict.fromkeys(STRATEGIES, first)
    left = {name: pool.reset_index(drop=True) for name in STRATEGIES}
    spent = dict.fromkeys(STRATEGIES, 0.0)
    rows = [_replay_row(0, name, 0.0, first, test) for name in STRATEGIES]
    rng, plans = np.random.default_rng(seed), []
    for r in range(1, rounds + 1):
        plan = fits["suggest"].suggest(target, candidates=left["suggest"][law_inputs], k=k, seed=seed * 1000 + r)
        plans.append(plan)
        picks = {"suggest": left["suggest"].iloc[plan.table["candidate"].to_numpy(int)]}
        budget = float(_compute(picks["suggest"]).sum())
        picks["budget order"] = _about(left["budget order"], budget, np.argsort(_compute(left["budget order"])))
        picks["random"] = _about(left["random"], budget, rng.permutation(len(left["random"])))
        for name, new in picks.items():
            fits[name] = fits[name].update(new)
            left[name] = left[name].drop(new.index).reset_index(drop=True)
            spent[name] += float(_compute(new).sum())
            rows.append(_replay_row(r, name, spent[name], fits[name], test))
    return pd.DataFrame(rows), plans


def _compute(runs: pd.DataFrame) -> np.ndarray:
    return _costs(runs, "C" if "C" in runs else None, 6.0)


def _about(pool: pd.DataFrame, spend: float, order: np.ndarray) -> pd.DataFrame:
    """Runs of `pool` taken in `order`, each kept if it brings the total compute closer to `spend`."""
    costs, kept, total = _compute(pool), [], 0.0
    for i in order:
        if abs(total + costs[i] - spend) < abs(total - spend):
            kept.append(int(i))
            total += costs[i]
    return pool.iloc[kept]


def _replay_row(round_: int, strategy: str, spent: float, fitted: Fit, test: pd.DataFrame) -> dict[str, Any]:
    band = fitted.predict(test, prob=0.9)
    y = test[fitted.law.target].to_numpy(float)
    return {
        "round": round_,
        "strategy": strategy,
        "compute": spent,
        "runs": len(fitted.data),
        "median abs. error": float(np.mean(np.abs(band["median"] / y - 1))),
        "90% width": float(np.mean((band["upper"] - band["lower"]) / band["median"])),
        "held at 90%": float(np.mean((band["lower"] <= y) & (y <= band["upper"]))),
    }
