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


def readable_log_axis(ax: Any, axis: str = "y") -> Any:
    """A log axis spanning less than a decade gets evenly spaced plain-number ticks (2.2, 2.4, ...) instead of
    matplotlib's lone 2x10^0 and 3x10^0."""
    import matplotlib.ticker as mticker

    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if lo > 0 and hi / lo < 10:
        target.set_major_locator(mticker.MaxNLocator(nbins=6))
        target.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        target.set_minor_locator(mticker.NullLocator())
    return ax


def plot_fit(
    fit: Any,
    ax: Any = None,
    x: str | None = None,
    prob: float = 0.9,
    n_curves: int = 5,
    extend: float = 10.0,
    show_noise: bool = True,
) -> Any:
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
        ax.fill_between(xs, band["mean_lower"], band["mean_upper"], color=color, alpha=0.35, lw=0)
        if show_noise:  # the predictive band as dashed edges: a second shade of the same colour is hard to read
            ax.plot(xs, band["lower"], color=color, lw=0.8, ls="--")
            ax.plot(xs, band["upper"], color=color, lw=0.8, ls="--")
        pts = frame[nearest == i]
        ax.scatter(pts[x], pts[law.target], s=12, color=color, edgecolor="k", linewidths=0.3, zorder=3)
    ax.axvline(frame[x].max(), color="grey", ls=":", lw=1, label=f"largest fitted {x}")
    _band_legend(ax, prob, show_noise)
    if other:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import LogNorm

        scale = ScalarMappable(norm=LogNorm(levels[0], levels[-1]), cmap=cmap)
        ax.figure.colorbar(scale, ax=ax, label=f"{_label(other)}: colour of runs and curves", pad=0.02)
    ax.set_xscale("log")
    ax.set_yscale("log")
    readable_log_axis(ax, "y")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(law.target))
    ax.set_title(f"{law.name}: runs and the fitted law beyond them", fontsize=10)
    return ax


def _band_legend(ax: Any, prob: float, show_noise: bool) -> None:
    """The curves' labels plus what the shaded band and the dashed lines mean."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color="grey", alpha=0.35, lw=0))
    labels.append(f"law, {prob:.0%} band")
    if show_noise:
        handles.append(Line2D([], [], color="grey", lw=0.8, ls="--"))
        labels.append(f"a new run, {prob:.0%} band (run noise too)")
    ax.legend(handles, labels, fontsize=8)


def plot_frontier(allocation: Any, ax: Any = None) -> Any:
    """N* and D* against compute with their intervals, on log axes."""
    ax = _axes(ax)
    t = allocation.table
    for name, color, label in (("N", "tab:blue", "N* (parameters)"), ("D", "tab:orange", "D* (tokens)")):
        ax.plot(t["C"], t[f"{name}_median"], color=color, lw=2, label=label, marker="o", ms=3)
        ax.fill_between(
            t["C"],
            t[f"{name}_lower"],
            t[f"{name}_upper"],
            color=color,
            alpha=0.25,
            lw=0,
            label=f"{allocation.prob:.0%} interval",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("compute-optimal N* (parameters), D* (tokens)")
    ax.set_title("Compute-optimal allocation")
    ax.legend(fontsize=8)
    return ax


def plot_isoflop(isoflop: Any, ax: Any = None, prob: float = 0.9) -> Any:
    """IsoFLOP curves: runs as points, the fitted curve per budget, each optimum with its interval."""
    import matplotlib.pyplot as plt

    ax = _axes(ax)
    fit = isoflop.fit
    frame = fit.data.frame
    budgets = isoflop.budgets
    cmap = plt.get_cmap("plasma")
    optima = isoflop.optima(prob=prob)
    for i, c in enumerate(budgets):
        color = cmap(i / max(len(budgets) - 1, 1))
        rows = frame[np.isclose(frame["C"], c)]
        label = rows["group"].iloc[0]
        ax.scatter(rows["N"], rows["loss"], s=14, color=color, edgecolor="k", linewidths=0.3, zorder=3)
        ns = np.geomspace(rows["N"].min() / 1.5, rows["N"].max() * 1.5, 80)
        band = fit.predict(pd.DataFrame({"N": ns, "C": c, "group": label}), prob=prob)
        ax.plot(ns, band["mean_median"], color=color, lw=1.5, label=f"C = {c:.2g}")
        ax.fill_between(ns, band["mean_lower"], band["mean_upper"], color=color, alpha=0.25, lw=0)
        opt = optima.iloc[i]
        at = fit.predict(pd.DataFrame({"N": [opt["N_opt_median"]], "C": c, "group": label}))
        ax.errorbar(
            [opt["N_opt_median"]],
            at["mean_median"],
            xerr=[[opt["N_opt_median"] - opt["N_opt_lower"]], [opt["N_opt_upper"] - opt["N_opt_median"]]],
            fmt="D",
            color=color,
            mec="k",
            ms=6,
            capsize=3,
            zorder=4,
        )
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss (nats/token)")
    a = isoflop.exponent(prob)
    ax.set_title(f"IsoFLOP curves; N* ~ C^a, a = {a['median']:.3f} [{a['lower']:.3f}, {a['upper']:.3f}]")
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_crossover(result: Any, ax: Any = None) -> Any:
    """P(family a has lower compute-optimal loss than b) against compute, with the crossing interval."""
    ax = _axes(ax)
    t = result.table
    col = [c for c in t.columns if c.startswith("P(")][0]
    ax.plot(t["C"], t[col], color="tab:purple", lw=2, marker="o", ms=3, label=col)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    for i, crossing in enumerate(result.crossings):
        label = f"crossing, {crossing['prob']:.0%} interval" if i == 0 else None
        ax.axvspan(crossing["lower"], crossing["upper"], color="tab:purple", alpha=0.15, label=label)
        ax.axvline(crossing["median"], color="tab:purple", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("probability")
    ax.set_title(f"Which family wins at scale: {result.labels[0]} vs {result.labels[1]}")
    ax.legend(fontsize=8)
    return ax
