"""How far any band of the default's form could go on the calibration corpus, in hindsight.

Per task, the one (slope scale, edge offset) point of the discrepancy grid that gives the task's held-out runs the
best 90% interval score, chosen after seeing them (the objective's Gaussian reading of the bands, with the shipped
prior's growth, span power and ramp). No method that learns from the fitted runs can beat it with bands of this
form, so the gap between it and the default's judged score bounds what a better learned discrepancy can buy; the
rest needs a better law or better data. Reads the corpus cache (bench/corpus.py) and its rows; writes
bench/results/headroom.md.

Usage: python bench/headroom.py
"""

from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

from bayescale import _discrepancy  # noqa: E402

OUT = corpus.HERE / "results" / "headroom.md"


def hindsight(r: dict, prior: dict) -> dict[str, float]:
    """A task's 90% interval score (x100, log units) with no discrepancy (grid point 0: offset 0, slope 0) and at
    its best grid point in hindsight, with the prior's growth, span power and ramp."""
    held, _ = corpus.evidences(r, prior["growth"], prior["span_power"], prior["ramp"])
    one_point = np.eye(held.mass.shape[1], dtype=np.float32)
    scores = np.array([_discrepancy.interval_scores(held, q, levels=(0.9,)).mean() for q in one_point])
    return {"none (read)": 100 * scores[0], "best in hindsight": 100 * scores.min()}


def main() -> None:
    warnings.simplefilter("ignore")
    prior = _discrepancy.shipped_prior()
    results = [pickle.loads(p.read_bytes()) for p in sorted(corpus.CACHE.glob("*.pkl"))]
    corpus.attach_distances(results)
    rows = pd.read_csv(corpus.HERE / "results" / "corpus_rows.csv")
    judged = rows[rows.method == "default"].groupby("task").is90.mean()
    per_task = pd.DataFrame(
        [
            {"task": r["name"], "family": r["family"], "default (judged)": judged[r["name"]]} | hindsight(r, prior)
            for r in results
        ]
    )
    per_task["gap"] = per_task["default (judged)"] - per_task["best in hindsight"]
    per_family = per_task.groupby("family")[["default (judged)", "none (read)", "best in hindsight", "gap"]].mean()
    pooled = per_family.mean()
    per_family.loc["pooled (families equal)"] = pooled
    goal = 0.85 * corpus.summarise(rows, ["method"], family_equal=True).loc["previous", "is90"]
    share = (pooled["default (judged)"] - goal) / pooled["gap"]
    top = per_task.nlargest(8, "gap")
    text = "\n\n".join(
        [
            f"# Headroom of the default's band form: {len(results)} tasks",
            __doc__.split("\n\n")[1].replace("\n", " "),
            "## 90% interval score (x100), tasks equal within a family\n" + per_family.to_markdown(floatfmt=".2f"),
            f"The goal (15% better than the previous default) is {goal:.2f}: it asks the default to close "
            f"{100 * share:.0f}% of the gap to the hindsight best.",
            "## The tasks with the largest gaps\n" + top.to_markdown(index=False, floatfmt=".2f"),
        ]
    )
    OUT.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
