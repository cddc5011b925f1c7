"""The main job on an embedded default: simulate Chinchilla runs, fit, tabulate, predict 70B/1.4T, plot."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bayescale.fit import Fit, fit
from bayescale.laws import law
from bayescale.report import frame_table
from bayescale.simulate import chinchilla_runs

TARGET = {"N": 7e10, "D": 1.4e12}  # Chinchilla itself: 70B parameters, 1.4T tokens


def run_demo(
    out: str | Path = "bayescale-demo.png",
    draws: int = 1000,
    chains: int = 4,
    seed: int = 0,
    n_runs: int = 150,
    noise: float = 0.01,
    console: Console | None = None,
) -> Fit:
    """Simulate runs from the published Chinchilla law, fit it, print the posterior and a 70B/1.4T prediction."""
    console = console or Console()
    chinchilla = law("chinchilla")
    data = chinchilla_runs(n=n_runs, noise=noise, seed=seed)
    console.print(
        f"[bold]bayescale demo[/]: {len(data)} runs simulated from {chinchilla.title}\n"
        f"  published values E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28; noise {noise:.0%} (log scale)\n"
        f"  N in [7e7, 1.6e10], D in [5e9, 5e11]. Sampling {chains} chains x {draws} draws with NUTS (nutpie)..."
    )
    result = fit(chinchilla, data, draws=draws, tune=draws, chains=chains, seed=seed, progress=True)
    console.print(f"sampled in {result.meta['seconds']:.1f} s (including compilation on first use)")
    console.print(result.extrapolation_note, highlight=False)
    console.print(frame_table(result.summary(prob=0.9), "Posterior (90% HDI)"))
    pred = result.predict(TARGET, prob=0.9)
    truth = float(chinchilla.mean({k: p.value for k, p in chinchilla.params.items()}, TARGET, result.constants))
    row = pred.iloc[0]
    console.print(
        f"\n[bold]Prediction for a 70B-parameter, 1.4T-token run[/] (10x beyond the largest fitted N):\n"
        f"  loss median {row['median']:.4f}, 90% predictive band [{row['lower']:.4f}, {row['upper']:.4f}]\n"
        f"  law itself (no run noise): [{row['mean_lower']:.4f}, {row['mean_upper']:.4f}]; "
        f"true law value {truth:.4f}"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = result.plot(x="D", extend=3.0)
    star = ax.scatter([TARGET["D"]], [row["median"]], marker="*", s=150, color="crimson", zorder=5)
    ax.plot([TARGET["D"]] * 2, [row["lower"], row["upper"]], color="crimson", lw=2.5, zorder=5)
    shown = ax.get_legend()  # the plot's own entries (curves, bands) plus the prediction
    ax.legend(
        [*shown.legend_handles, star],
        [*(t.get_text() for t in shown.texts), "70B / 1.4T prediction, 90% band"],
        fontsize=7,
    )
    ax.figure.tight_layout()
    ax.figure.savefig(out, dpi=120)
    plt.close(ax.figure)
    console.print(f"plot written to {out}")
    for problem in result.diagnostics["problems"]:
        console.print(f"[yellow]warning:[/] {problem}")
    return result
