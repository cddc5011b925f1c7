"""Which law for a corpus task: candidate laws judged on the fit part alone, then on the held-out runs.

For every corpus task whose name contains `--only`, each law in `--laws` is fitted to the task's fit part (no
discrepancy). Columns from the fit part alone, as a user would choose: PSIS-LOO elpd and leave-future-out elpd
(bs.compare, the law's own future side held out: the lowest-loss 20% for a downstream law). Columns from the
held-out runs, to see whether that choice was right: coverage of the plain 50% and 90% bands and the mean log miss
(positive: the runs lie above the median). Writes bench/results/law_choice.md (or --out).

Usage: python bench/law_choice.py [--only olmo/ --laws downstream-exp,downstream-loss-sigmoid --by loss]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_tasks import tasks  # noqa: E402

import bayescale as bs  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "law_choice.md"


def judge(task, laws: list[str], by: str) -> pd.DataFrame:
    """One row per law: fit-part LOO and LFO, then the held-out runs' coverage and miss."""
    fits = {name: bs.fit(name, task.train, progress=False, discrepancy=0.0, **task.fit_options) for name in laws}
    loo = bs.compare(fits)
    lfo = bs.compare(fits, method="lfo", by=by).set_index("law")
    rows = []
    for name, fitted in fits.items():
        band = fitted.predict(task.test, prob=[0.5, 0.9])
        y = task.test[fitted.law.target].to_numpy()
        inside = {p: np.mean((band[f"lower_{p}"] <= y) & (y <= band[f"upper_{p}"])) for p in (50, 90)}
        rows.append(
            {
                "task": task.name,
                "law": name,
                "elpd_loo": loo.loc[name, "elpd_loo"],
                "loo_se": loo.loc[name, "se"],
                "elpd_lfo": lfo.loc[name, "elpd_lfo"],
                "held cov50": inside[50],
                "held cov90": inside[90],
                "held mean miss": float(np.mean(np.log(y) - np.log(band["median"]))),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="olmo/", help="substring of the task names")
    parser.add_argument("--laws", default="downstream-exp,downstream-loss-sigmoid")
    parser.add_argument("--by", default="loss", help="the input leave-future-out cuts on")
    parser.add_argument("--out", default=str(OUT), help="where the table goes")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    laws = args.laws.split(",")
    needs = set(bs.law(laws[0]).inputs) | {bs.law(laws[0]).target}
    chosen = [t for t in tasks() if args.only in t.name and needs <= set(t.train.frame)]
    table = pd.concat([judge(t, laws, args.by) for t in chosen], ignore_index=True)
    text = table.to_markdown(index=False, floatfmt=".3f")
    head = f"# Law choice: {', '.join(laws)} on the corpus tasks matching {args.only!r}"
    why = "elpd_loo, elpd_lfo: fit part only (higher is better). held ...: the held-out runs, plain bands."
    Path(args.out).write_text(f"{head}\n\n{why}\n\n{text}\n")
    print(text)


if __name__ == "__main__":
    main()
