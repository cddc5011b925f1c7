"""Thinning a training curve's checkpoints: the time it saves and what it does to the posterior and the bands.

Data: the Gemstones constant-LR curves shipped with bayescale (bs.datasets, MIT): 22 models, checkpoints from 10B
tokens. Law: chinchilla on (N, D = tokens seen). Fit part: checkpoints up to 100B tokens, every k-th checkpoint of
each model kept (k = 1, 2, 4, 8, 16); held out: every checkpoint beyond 100B tokens (to 350B). One default fit per k
(calibration included), in this process after one warm-up fit, so every row is timed with the law loaded.
Reported per k: fitted rows, fit seconds, posterior median and 90% width of alpha, beta and E, and at the held-out
checkpoints the median's mean |relative error|, the mean relative 90% width and the share inside the 90% band.

Usage: python bench/thinning.py      results: bench/results/thinning.md
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs

HERE = Path(__file__).resolve().parent
CUT = 100e9
KS = (1, 2, 4, 8, 16)
PARAMS = ("alpha", "beta", "E")


def curves() -> tuple[pd.DataFrame, pd.DataFrame]:
    source = bs.datasets.load("gemstones-curves")
    runs = source.frame.rename(columns={"params_active_precise": "N", "tokens": "D", "final_loss": "loss"})
    runs = runs[runs["D"] >= 10e9].sort_values(["run_name", "D"])
    return runs[runs["D"] <= CUT], runs[runs["D"] > CUT]


def main() -> None:
    warnings.simplefilter("ignore")
    fit_part, held = curves()
    test = held[["N", "D", "loss"]].reset_index(drop=True)
    bs.fit("chinchilla", fit_part[["N", "D", "loss"]].iloc[::16], seed=0, progress=False)  # load the law once
    rows = []
    for k in KS:
        thinned = fit_part.groupby("run_name", group_keys=False).apply(lambda g, k=k: g.iloc[::k])
        start = time.perf_counter()
        fitted = bs.fit("chinchilla", thinned[["N", "D", "loss"]], seed=0, progress=False)
        row = {"k": k, "rows": len(thinned), "fit (s)": time.perf_counter() - start}
        for name in PARAMS:
            lo, med, hi = np.quantile(fitted.draws(name), [0.05, 0.5, 0.95])
            row |= {f"{name} median": med, f"{name} 90% width": hi - lo}
        band = fitted.predict(test, prob=0.9)
        y = test["loss"].to_numpy()
        row |= {
            "held-out |error|": float(np.mean(np.abs(band["median"] / y - 1))),
            "held-out 90% width": float(np.mean((band["upper"] - band["lower"]) / band["median"])),
            "held at 90%": float(np.mean((band["lower"] <= y) & (y <= band["upper"]))),
        }
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows).set_index("k")
    text = (
        f"# Thinning checkpoints: Gemstones constant-LR curves, chinchilla law, fitted to {CUT:.0e} tokens, "
        f"{len(test)} later checkpoints held out\n\n" + table.to_markdown(floatfmt=".4g") + "\n"
    )
    (HERE / "results" / "thinning.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
