"""Whether a learning curve's scatter stays what the fitted part shows: run noise before and after the cut.

For every corpus task in one input (learning curves; for downstream accuracy, models ordered by compute), the
scatter of log target from point to point, estimated by second differences (which cancel the curve's local slope; sd
of d2 / sqrt(6) for independent noise), in each quarter of the fitted part and in the held-out part. On log-spaced
fitted points the curve's bend adds to the estimate, so the fitted part's figure is an upper bound and the ratio
held-out / last fitted quarter a lower bound. A ratio well above 1 means the held-out runs scatter more than any fit
to the fitted runs can know. Reads ../shared/data through bench/corpus_tasks.py; writes
bench/results/noise_shift.md.

Usage: python bench/noise_shift.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus_tasks  # noqa: E402

import bayescale as bs  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "noise_shift.md"


def scatter(log_y: np.ndarray) -> float:
    """The point-to-point noise sd of a sequence, from its second differences (nan under 5 points)."""
    if len(log_y) < 5:
        return float("nan")
    d2 = log_y[2:] - 2 * log_y[1:-1] + log_y[:-2]
    return float(np.std(d2) / np.sqrt(6))


def curve_noise(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, y_held: np.ndarray) -> dict[str, float]:
    """Scatter in each quarter of the fitted points (in order of x) and in the held-out points, and their ratio."""
    fit = np.log(y_fit[np.argsort(x_fit)])
    held = np.log(y_held[np.argsort(x_held)])
    quarters = [scatter(q) for q in np.array_split(fit, 4)]
    out = {f"fit q{i + 1}": q for i, q in enumerate(quarters)}
    out["held out"] = scatter(held)
    out["ratio"] = out["held out"] / quarters[-1]
    return out


def main() -> None:
    rows = []
    for task in corpus_tasks.tasks():
        law = bs.law(task.law)
        if len(law.inputs) != 1:
            continue
        x, target = law.inputs[0], law.target
        train = task.train.frame
        rows.append(
            {"task": task.name, "family": task.family, "fitted": len(train), "runs held out": len(task.test)}
            | curve_noise(
                train[x].to_numpy(float),
                train[target].to_numpy(float),
                task.test[x].to_numpy(float),
                task.test[target].to_numpy(float),
            )
        )
    table = pd.DataFrame(rows).dropna(subset=["ratio"])
    text = (
        "# Run noise before and after the cut (log units, from second differences)\n\n"
        + __doc__.split("\n\n")[1].replace("\n", " ")
        + "\n\n"
        + table.to_markdown(index=False, floatfmt=".4f")
        + "\n\nMedian ratio per family:\n\n"
        + table.groupby("family")["ratio"].median().to_frame().to_markdown(floatfmt=".2f")
        + "\n"
    )
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
