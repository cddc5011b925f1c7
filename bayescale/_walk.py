"""A learned model-discrepancy term: a Brownian motion in log compute, added to the law's log-prediction.

Real sweeps depart from any law smoothly along the compute axis (misfitting's IsoFLOP residuals drift by
~2% over the last decade). A Brownian motion delta(s) in s = log compute (a Gaussian process with covariance
tau^2 min(s, s')) fitted with the law learns tau from those in-sample departures, and beyond the largest
fitted run it continues as delta(s_max) + tau sqrt(s - s_max) eps: bands widen with distance, by an amount the
data taught. It lives on K fixed knots (piecewise-linear between them) so the model keeps a fixed size.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

KNOTS = 16
TAU_PRIOR = 0.02  # HalfNormal scale of tau, log-loss per sqrt(e-fold): misfitting's drift needs ~0.01


def position(
    columns: Mapping[str, np.ndarray], inputs: tuple[str, ...] | list[str], directions: Mapping[str, int] | None = None
) -> np.ndarray:
    """Each run's place on the compute axis: log(N D) for laws of N and D, else the sum of log inputs > 0,
    each signed by its extrapolation direction (Law.directions; +1 when not given)."""
    if "N" in inputs and "D" in inputs:
        return np.log(np.asarray(columns["N"], dtype=float)) + np.log(np.asarray(columns["D"], dtype=float))
    directions = directions or {}
    total = np.zeros(len(np.asarray(columns[inputs[0]])))
    for name in inputs:
        values = np.asarray(columns[name], dtype=float)
        if np.all(values > 0):
            total = total + directions.get(name, 1) * np.log(values)
    return total


def knot_range(pos: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(pos)), float(np.max(pos))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def weights(pos: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(n, KNOTS) linear-interpolation weights of each position on the knot grid (clamped at its ends)."""
    t = np.clip((np.asarray(pos, dtype=float) - lo) / (hi - lo), 0.0, 1.0) * (KNOTS - 1)
    left = np.minimum(np.floor(t).astype(int), KNOTS - 2)
    frac = t - left
    out = np.zeros((len(t), KNOTS))
    out[np.arange(len(t)), left] = 1.0 - frac
    out[np.arange(len(t)), left + 1] = frac
    return out


def offsets(
    delta: np.ndarray, tau: np.ndarray, pos: np.ndarray, lo: float, hi: float, rng: np.random.Generator
) -> np.ndarray:
    """Per draw, the discrepancy at new positions: (S, n). Inside the fitted range it interpolates the fitted
    knots; beyond it the walk goes on, delta(end) + tau sqrt(distance) eps (one eps per draw and side)."""
    inside = delta @ weights(pos, lo, hi).T
    above = np.sqrt(np.maximum(pos - hi, 0.0))[None, :] * (tau * rng.standard_normal(len(tau)))[:, None]
    below = np.sqrt(np.maximum(lo - pos, 0.0))[None, :] * (tau * rng.standard_normal(len(tau)))[:, None]
    return inside + above + below
