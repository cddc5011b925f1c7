"""The run-to-run noise of the log target: its density and its draws, Student-t or Gaussian, truncated where the
law caps the target (an accuracy cannot exceed 1). One place, so that fits, bands and simulations agree."""

from __future__ import annotations

import numpy as np


def log_density(
    z: np.ndarray, sigma: np.ndarray, likelihood: str, nu: float, upper: np.ndarray | None = None
) -> np.ndarray:
    """Log density of log-targets at standardised residuals `z` with noise scale `sigma`; `upper` is the cap's
    standardised place (log cap - log mean) / sigma, where the law has one (the density is renormalised below it)."""
    from scipy.special import gammaln

    if likelihood == "student_t":  # closed form: scipy.stats.t.logpdf is ~5x slower here
        const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
        out = const - (nu + 1) / 2 * np.log1p(z * z / nu) - np.log(sigma)
    else:
        out = -0.5 * z * z - 0.5 * np.log(2 * np.pi) - np.log(sigma)
    return out if upper is None else out - _log_cdf(upper, likelihood, nu)


def draws(
    rng: np.random.Generator, shape: tuple[int, ...], likelihood: str, nu: float, upper: np.ndarray | None = None
) -> np.ndarray:
    """Standardised noise draws of `shape`; below `upper` (standardised cap, broadcast to `shape`) where given, by
    the inverse CDF of a uniform on (0, F(upper)). Without a cap, the same draws as before caps existed."""
    if upper is None:
        return rng.standard_t(nu, shape) if likelihood == "student_t" else rng.standard_normal(shape)
    from scipy import stats

    dist = stats.t(nu) if likelihood == "student_t" else stats.norm()
    top = np.exp(_log_cdf(np.broadcast_to(upper, shape), likelihood, nu))
    return dist.ppf(np.maximum(rng.uniform(size=shape) * top, 1e-300))


def _log_cdf(x: np.ndarray, likelihood: str, nu: float) -> np.ndarray:
    from scipy import stats

    return stats.t.logcdf(x, nu) if likelihood == "student_t" else stats.norm.logcdf(x)
