"""Does averaging laws beat the task's own law? On the calibration corpus's tasks whose law has a rival taking the
same inputs (chinchilla <-> kaplan, power <-> bnsl1), fit both laws with default settings, mix them with
`bayescale.average` (stacking on leave-one-out and on leave-future-out densities) and score each band on the
task's held-out runs as bench/corpus.py does (coverage, interval scores at 50% and 90%, log scale x100).

The default bands here use the shipped corpus prior (not leave-one-family-out): the question is only whether the
mixture beats its own law under the same prior.

Usage: python bench/average.py [--shard 0/2]     (each shard writes bench/results/average_<k>.csv)
       python bench/average.py --report          (joins the shards, writes bench/results/average.md)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_tasks import tasks  # noqa: E402

import bayescale as bs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RIVAL = {"chinchilla": "kaplan", "kaplan": "chinchilla", "power": "bnsl1", "bnsl1": "power"}
PROBS = (0.5, 0.8, 0.9, 0.95)


def scores(draws: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Coverage at PROBS and the interval scores at 50% and 90% (log scale x100), averaged over the held-out runs."""
    out = {}
    for p in PROBS:
        lo, hi = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
        out[f"cov{round(p * 100)}"] = float(np.mean((lo <= y) & (y <= hi)))
        if p in (0.5, 0.9):
            a = 1 - p
            ly, llo, lhi = np.log(y), np.log(lo), np.log(hi)
            score = (lhi - llo) + 2 / a * (np.maximum(llo - ly, 0) + np.maximum(ly - lhi, 0))
            out[f"is{round(p * 100)}"] = float(100 * np.mean(score))
    return out


def run(shard: int, n_shards: int) -> None:
    todo = [t for t in tasks() if t.law in RIVAL and not t.fit_options][shard::n_shards]
    rows = []
    for task in todo:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits = {name: bs.fit(name, task.train, progress=False, seed=0) for name in (task.law, RIVAL[task.law])}
            mixes = {m: bs.average(fits, method=m) for m in ("loo", "lfo")}
        y = task.test[bs.law(task.law).target].to_numpy(dtype=float)
        bands = {"own law": (fits[task.law].predictive_draws(task.test, seed=1), 1.0)} | {
            f"stacking ({m})": (mix.predictive_draws(task.test, seed=1), mix.weights[task.law])
            for m, mix in mixes.items()
        }
        for method, (draws, weight) in bands.items():
            rows.append(
                {"task": task.name, "family": task.family, "method": method, "own_weight": weight} | scores(draws, y)
            )
        seconds = time.perf_counter() - start
        print(task.name, f"{seconds:.0f} s", {r["method"]: round(r["is90"], 1) for r in rows[-3:]}, flush=True)
        pd.DataFrame(rows).to_csv(RESULTS / f"average_{shard}.csv", index=False)


def report() -> None:
    rows = pd.concat([pd.read_csv(p) for p in sorted(RESULTS.glob("average_*.csv"))], ignore_index=True)
    cols = ["cov50", "cov80", "cov90", "cov95", "is50", "is90", "own_weight"]
    per_family = rows.groupby(["family", "method"])[cols].mean()
    pooled = per_family.groupby("method").mean()
    text = "\n\n".join(
        [
            f"# Averaging two laws by stacking: {rows.task.nunique()} corpus tasks, {rows.family.nunique()} families",
            "## Pooled, each family weighted equally\n" + pooled.to_markdown(floatfmt=".3f"),
            "## Per family\n" + per_family.to_markdown(floatfmt=".3f"),
            "## Per task (IS90)\n"
            + rows.pivot(index="task", columns="method", values="is90").to_markdown(floatfmt=".2f"),
        ]
    )
    (RESULTS / "average.md").write_text(text + "\n")
    print(text[: text.index("## Per task")])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shard", default="0/1", help="k/n: run every n-th task from the k-th")
    parser.add_argument("--report", action="store_true", help="join the shards' results and write the tables")
    args = parser.parse_args()
    if args.report:
        report()
    else:
        k, n = map(int, args.shard.split("/"))
        run(k, n)
