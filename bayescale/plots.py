"""Plots that take an optional matplotlib `ax` and return it (ArviZ style)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


UNITS = {"N": "parameters", "D": "tokens", "C": "FLOPs", "step": "steps", "loss": "nats/token"}


def _label(role: str) -> str:
    return f"{role} ({UNITS[role]})" if role in UNITS else role


def plot_fit(fit: Any, ax: Any = None, x: str | None = None, prob: float = 0.9, n_curves: int = 5,
             extend: float = 10.0, show_noise: bool = True) -> Any:
    """Data as points, the fitted law's median per slice of the other inputs, and its `prob` bands.

    The x axis is `x` (default: the law's last input); for two-input laws one curve is drawn per
    quantile of the other input, and each run is coloured like its nearest curve. Curves extend
    `extend`-fold beyond the data to show extrapolation.
    """
    import matplotlib.pyplot as plt

    ax = _axes(ax)
    law = fit.law
    x = x or law.inputs[-1]
    others = [i for i in law.inputs if i != x]
    frame = fit.data.frame
    xs = np.geomspace(frame[x].min(), frame[x].max() * extend, 120)
    cmap = plt.get_cmap("viridis")
    if others:
        other = others[0]
        levels = np.geomspace(frame[other].min(), frame[other].max(), n_curves)
        nearest = np.abs(np.log(frame[other].to_numpy())[:, None] - np.log(levels)[None, :]).argmin(axis=1)
    else:
        other, levels, nearest = None, [None], np.zeros(len(frame), dtype=int)
    fixed = {k: float(np.exp(np.log(frame[k]).mean())) for k in others[1:]}
    for i, level in enumerate(levels):
        color = cmap(i / max(len(levels) - 1, 1))
        grid = pd.DataFrame({x: xs, **({other: level} if other else {}), **fixed})
        if "group" in frame and fit.spec.modes:
            grid["group"] = fit.spec.groups[0]
        band = fit.predict(grid, prob=prob)
        label = f"{other} = {level:.2g}" if other else "posterior median"
        ax.plot(xs, band["mean_median"], color=color, lw=1.8, label=label)
        ax.fill_between(xs, band["mean_lower"], band["mean_upper"], color=color, alpha=0.3, lw=0)
        if show_noise:
            ax.fill_between(xs, band["lower"], band["upper"], color=color, alpha=0.12, lw=0)
        pts = frame[nearest == i]
        ax.scatter(pts[x], pts[law.target], s=12, color=color, edgecolor="k", linewidths=0.3, zorder=3)
    ax.axvline(frame[x].max(), color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(law.target))
    ax.set_title(f"{law.name}: data (points), law {prob:.0%} band (dark), predictive band (light)")
    ax.legend(fontsize=8, title=None)
    return ax
