"""The extrapolation discrepancy: how far a law's prediction may move beyond the data, and learning how far.

No law is exactly true, so beyond the fitted runs each posterior draw's log-prediction moves by
    delta * d + epsilon * (1 - exp(-d / RAMP)),
d the log-distance beyond the data in e-folds (Fit.distance); delta = tau z, tau ~ HalfNormal(scale), z ~ N(0, 1):
an unknown change of slope; epsilon ~ N(0, offset^2): the law's bias at the edge of the data, reached within a
few RAMPs. A number fixes `scale` (offset 0). "auto", the default, learns both by leave-future-out inside the
data: refit the law without its largest runs (the top FRACTION by compute, whole budgets kept together), score
every (offset, scale) pair on OFFSETS x SCALES by the log predictive density of those runs, and weight the pairs
by it (pseudo-BMA). A law that predicted the user's own largest runs well keeps narrow bands; one that did not
gets wide ones (README, "Calibration").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import logsumexp

from bayescale import _walk
from bayescale.data import ScalingData
from bayescale.errors import BayescaleError
from bayescale.laws import Law

if TYPE_CHECKING:
    from bayescale.fit import Fit

# Slope scales tried. The floor, 0.01, is the scale that calibrated the longest real extrapolation we have
# (Chinchilla replication, 3 e-folds, bench/calibration.py): the data may widen bands beyond it, never narrow
# them, because a law can bend just beyond the data where no held-out run inside it can show it
# (tests/test_compare.py).
SCALES = (0.01, 0.015, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)
OFFSETS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1)
RAMP = 0.1  # e-folds over which the edge offset sets in (63% at 0.1, 99% at 0.5)
FRACTION = 0.2  # share of the runs, the largest by compute, held out to learn the discrepancy
FALLBACK = SCALES[0]  # the scale used when the data are too few to hold any out
MIN_HELDOUT = 3
MIN_SPARE = 3  # the inner fit needs at least this many runs beyond the law's parameter count
POOR = 0.02  # a learned rms shift one e-fold out above this (2x the floor's), with misses beyond the noise, is reported
SCORE_ROWS = 8000  # posterior x discrepancy draws used to score each pair (smooths the Monte Carlo estimate)


def _ramp(distance: Any) -> Any:
    """How far the edge offset has set in, `distance` e-folds beyond the data: 0 at the edge, 1 far out."""
    return 1 - np.exp(-np.asarray(distance, float) / RAMP)


def _components(setting: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scales, offsets, weights) of a stored setting: a fixed number is one pair with offset 0."""
    if isinstance(setting, dict):
        return tuple(np.asarray(setting[k], float) for k in ("scales", "offsets", "weights"))
    return np.array([float(setting or 0.0)]), np.zeros(1), np.ones(1)


def is_active(setting: Any) -> bool:
    """Whether a fit's stored discrepancy setting moves predictions beyond the data at all."""
    scales, offsets, weights = _components(setting)
    return bool(np.any((weights > 0) & ((scales > 0) | (offsets > 0))))


def scale_of(setting: Any) -> float:
    """The slope scale: fixed, or the posterior mean of the learned one."""
    scales, _, weights = _components(setting)
    return float(np.dot(scales, weights))


def offset_of(setting: Any) -> float:
    """The edge offset's sd: 0 when fixed, or the posterior mean of the learned one."""
    _, offsets, weights = _components(setting)
    return float(np.dot(offsets, weights))


def spread_at(setting: Any, distance: float = 1.0) -> float:
    """The rms shift of the law's log-prediction `distance` e-folds beyond the data."""
    scales, offsets, weights = _components(setting)
    return float(np.sqrt(np.dot(weights, (scales * distance) ** 2 + (offsets * _ramp(distance)) ** 2)))


def option_of(setting: Any) -> float | str:
    """The `fit(discrepancy=...)` option that produced a stored setting: a number, or "auto"."""
    return "auto" if isinstance(setting, dict) else float(setting or 0.0)


def unit_draws(n_draws: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Per draw, |h| z (slope for a scale of 1) and e (offset for an sd of 1), h, z, e standard normal."""
    rng = np.random.default_rng([seed, 7919])
    half = np.abs(rng.standard_normal(n_draws))
    slope = half * rng.standard_normal(n_draws)
    return slope, rng.standard_normal(n_draws), rng


def shift_draws(setting: Any, distance: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """Per posterior draw and row, the shift of the law's log-prediction: (S, n). A learned setting draws
    each draw's (offset, scale) pair from its weights; a fixed one scales every draw alike."""
    slope, edge, rng = unit_draws(n_draws, seed)
    scales, offsets, weights = _components(setting)
    pick = rng.choice(len(weights), size=n_draws, p=weights) if len(weights) > 1 else np.zeros(n_draws, int)
    distance = np.asarray(distance, float)[None, :]
    return (scales[pick] * slope)[:, None] * distance + (offsets[pick] * edge)[:, None] * _ramp(distance)


def order_of(law: Law, frame: Any) -> tuple[np.ndarray, str]:
    """How far each run lies towards extrapolation: log compute C if known (IsoFLOP budgets stay whole),
    else log(N D), else the sum of the logs of the law's positive inputs (negated for "down" inputs)."""
    if "C" in frame and np.all(frame["C"] > 0):
        return np.log(frame["C"].to_numpy(dtype=float)), "C"
    if {"N", "D"} <= set(law.inputs):
        label = "N*D"
    else:
        names = [k for k in law.inputs if np.all(frame[k] > 0)]
        if not names:
            raise BayescaleError(f"law {law.name!r} has no positive input to order runs by for extrapolation")
        label = "*".join(k if law.directions.get(k, 1) > 0 else f"1/{k}" for k in names)
    return _walk.position(frame, law.inputs, law.directions), label


def heldout_score(
    inner: Fit, heldout: Any, mean: np.ndarray, distance: np.ndarray, pairs: list[tuple[float, float]], seed: int
) -> np.ndarray:
    """For each (offset, scale) pair, the summed pointwise log predictive density of the held-out runs under
    a fit without discrepancy, whose law values there are `mean` (S, n) at `distance` beyond its data (each
    run's density averaged over posterior and discrepancy draws).

    Pointwise, not joint: the runs share one shift per draw, so their joint density sees a single draw of
    it and barely informs the scales, while this score is the one the bands are judged by (pseudo-BMA
    weights, Yao et al. 2018)."""
    repeats = max(1, SCORE_ROWS // inner.n_draws)
    units = [unit_draws(inner.n_draws, seed + k) for k in range(repeats)]
    slope = np.concatenate([u[0] for u in units])[:, None]
    edge = np.concatenate([u[1] for u in units])[:, None]
    distance = distance[None, :]
    ramp = _ramp(distance)
    log_base = np.log(np.tile(mean, (repeats, 1)))
    out = []
    for offset, scale in pairs:
        loglik = inner._loglik(heldout, np.exp(log_base + scale * slope * distance + offset * edge * ramp))
        out.append(float(np.sum(logsumexp(loglik, axis=0) - np.log(loglik.shape[0]))))
    return np.array(out)


def learn(law: Law, data: ScalingData, refit: Callable[[ScalingData], Fit], seed: int) -> dict[str, Any]:
    """Learn the drift scale by leave-future-out inside `data`; `refit` fits the law (without discrepancy)."""
    order, by = order_of(law, data.frame)
    cut = float(np.quantile(order, 1 - FRACTION))
    inner = order <= cut
    n_out = int((~inner).sum())
    if n_out < MIN_HELDOUT or inner.sum() < len(law.params) + MIN_SPARE:
        return fallback(f"too few runs to hold {MIN_HELDOUT} out and refit ({len(order)} runs, {n_out} above the cut)")
    heldout = data.frame[~inner].reset_index(drop=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inner_fit = refit(data.subset(inner))
            mean, distance = inner_fit.mean_draws(heldout), inner_fit.distance(heldout)
            pairs = [(b, s) for b in OFFSETS for s in SCALES]
            logp = heldout_score(inner_fit, heldout, mean, distance, pairs, seed)
    except BayescaleError as exc:
        return fallback(f"the refit without the largest runs failed: {exc}")
    weights = np.exp(logp - logp.max())
    weights /= weights.sum()
    error = np.log(heldout[law.target].to_numpy(dtype=float)) - np.log(np.median(mean, 0))
    return {
        "scales": [s for _, s in pairs],
        "offsets": [b for b, _ in pairs],
        "weights": [float(w) for w in weights],
        "learned": True,
        "heldout_runs": n_out,
        "cutoff": {by: float(np.exp(cut))},
        "heldout_rms_log_error": float(np.sqrt(np.mean(error**2))),
        "run_noise": float(np.median(inner_fit.draws("sigma"))),
        "heldout_max_distance": float(distance.max()),
        "inner_divergences": inner_fit.meta["diagnostics"].get("divergences"),
    }


def is_poor(setting: Any) -> bool:
    """The law extrapolated poorly inside the data: wide learned shift, and misses well beyond the run noise
    (a few held-out runs alone widen the bands without being called poor)."""
    if not isinstance(setting, dict) or not setting.get("learned"):
        return False
    return spread_at(setting) > POOR and setting["heldout_rms_log_error"] > 2 * setting["run_noise"]


def fallback(reason: str) -> dict[str, Any]:
    """The fixed FALLBACK scale, with the reason it was not learned."""
    return {"scales": [FALLBACK], "offsets": [0.0], "weights": [1.0], "learned": False, "reason": reason}


def describe(setting: Any) -> str:
    """The discrepancy in one or two plain sentences, for summaries and warnings."""
    if not isinstance(setting, dict):
        return f"Extrapolation drift: fixed prior scale {scale_of(setting):g} per e-fold beyond the data."
    if not setting.get("learned"):
        return f"Extrapolation drift: prior scale {FALLBACK:g} per e-fold (not learned: {setting['reason']})."
    ((by, cut),) = setting["cutoff"].items()
    return (
        f"Extrapolation drift learned by leave-future-out: refitted without the {setting['heldout_runs']} runs "
        f"with {by} > {cut:.3g}, the law missed them by {100 * setting['heldout_rms_log_error']:.1f}% (rms log error, "
        f"up to {setting['heldout_max_distance']:.2f} e-folds out); slope scale {scale_of(setting):.3g} per e-fold, "
        f"edge offset {offset_of(setting):.3g} (posterior means): predictions 1 e-fold beyond the data move by "
        f"{100 * spread_at(setting):.1f}% (rms)."
    )
