"""Held-out calibration of extrapolation bands on the real data sets in ../shared/data (README table).

For each data set and split (Chinchilla replication: top 20% of runs by compute held out; each IsoFLOP
experiment: its largest one or two budgets held out) the chinchilla law is fitted on the rest and the held-out
runs are predicted by bayescale with each discrepancy option, and by the classic recipe (Huber-loss L-BFGS +
bootstrap over runs) on exactly the same split; a last block pools every split's held-out runs per method.
Prints a markdown table and writes it to bench/results/calibration.{csv,md} (the README's table comes from the
broader bench/corpus.py). Usage: python bench/calibration.py [--discrepancy auto,0,0.01,walk+0.01] [--boot 100].
('auto' is the default learned drift, a number a fixed drift scale, 'walk' the Brownian discrepancy of
bayescale/_walk.py, 'walk+X' both)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

import bayescale as bs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EXPERIMENTS = [
    "ml_scalefit__massivetext__chinchilla",
    "epochai_chinchilla__massivetext__chinchilla",
    "misfitting__fineweb_c4__transformer",
    "llama_3__exp_loss",
]


def splits() -> dict[str, tuple[bs.ScalingData, dict]]:
    chin = bs.ScalingData.from_csv(
        SHARED / "chinchilla-epoch" / "svg_extracted_data.csv",
        columns={"N": "Model Size", "C": "Training FLOP", "loss": "loss"},
    )
    out = {"chinchilla-epoch, top 20% by C": (chin, dict(holdout="top", fraction=0.2))}
    iso = pd.read_csv(SHARED / "isoflops" / "isoflops.csv")
    for exp in EXPERIMENTS:
        data = bs.ScalingData.from_frame(
            iso[iso.experiment == exp], columns={"N": "params", "D": "tokens", "C": "budget", "loss": "loss"}
        )
        for k in (1, 2):
            out[f"{exp}, top {k} budget{'s' if k > 1 else ''}"] = (data, dict(holdout="budget", n_budgets=k))
    return out


def _discrepancy(text: str) -> dict:
    """'auto' -> learned drift; '0.01' -> fixed drift scale; 'walk' -> walk, no drift; 'walk+0.01' -> both."""
    walk = text.startswith("walk")
    scale = text.partition("+")[2] if walk else text
    return {"walk": walk, "discrepancy": scale if scale == "auto" else float(scale or 0.0)}


def _label(text: str) -> str:
    kind = {"0": "no discrepancy", "walk": "walk", "auto": "learned drift"}.get(text, f"drift {text}")
    if text.startswith("walk+"):
        kind = f"walk + drift {text[5:]}"
    return f"bayescale default ({kind})" if text == "auto" else f"bayescale, {kind}"


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """One row per method over every split: coverages weighted by held-out runs, mean width and log score."""
    weighted = ["cov 50%", "cov 80%", "cov 90%", "cov 95%", "90% width (rel.)", "log score"]
    rows = []
    for method, part in table.groupby("method", sort=False):
        n = part["n held out"]
        row = {"data set, held out": "all splits pooled", "method": method, "n held out": int(n.sum())}
        row |= {c: float((part[c] * n).sum() / n.sum()) for c in weighted}
        rows.append(row | {"seconds": float(part["seconds"].sum())})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--discrepancy", default="auto,0,0.01,walk+0.01")
    parser.add_argument("--boot", type=int, default=100)
    args = parser.parse_args()
    results = Path(__file__).parent / "results"
    if not SHARED.exists():
        sys.exit(f"shared data not found at {SHARED}")
    warnings.simplefilter("ignore")
    rows = []
    for name, (data, opts) in splits().items():
        methods = [(_label(d), dict(method="bayes", **_discrepancy(d))) for d in args.discrepancy.split(",")]
        methods.append((f"classic: Huber L-BFGS + {args.boot} bootstrap", dict(method="bootstrap", n_boot=args.boot)))
        for label, kwargs in methods:
            report = bs.calibration("chinchilla", data, **opts, **kwargs)
            t = report.table.set_index("prob")
            rows.append(
                {
                    "data set, held out": name,
                    "method": label,
                    "n held out": int(t.n_heldout[0.9]),
                    "cov 50%": t.coverage[0.5],
                    "cov 80%": t.coverage[0.8],
                    "cov 90%": t.coverage[0.9],
                    "cov 95%": t.coverage[0.95],
                    "90% width (rel.)": t.mean_rel_width[0.9],
                    "log score": t.log_score[0.9],
                    "seconds": report.seconds,
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table = pd.concat([table, pooled(table)], ignore_index=True)
    table.to_csv(results / "calibration.csv", index=False)  # first, so a formatting problem loses nothing
    text = table.to_markdown(index=False, floatfmt=".3g")  # needs tabulate: pip install -e .[bench]
    print(text)
    (results / "calibration.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
