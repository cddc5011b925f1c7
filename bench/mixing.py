"""How well NUTS mixes on corpus tasks: divergences, worst R-hat and lowest bulk ESS per law file, task and seed.

For every corpus task whose name contains `--only`, each law in `--laws` (catalogue names or paths to law files,
e.g. a variant written to /tmp) is fitted to the task's fit part with no discrepancy, at the law file's own draw
counts, once per seed. Use it to compare parameterisations of one law before changing its file. Writes a markdown
table to `--out` (default: print only).

Usage: python bench/mixing.py --only datablations/ --laws data-constrained-overfit,/tmp/variant.toml --seeds 0,1
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_tasks import tasks  # noqa: E402

import bayescale as bs  # noqa: E402


def mixing(task, law: str, seed: int) -> dict:
    """One fit's sampler health: divergences, worst R-hat and lowest bulk ESS, and the parameters they belong to."""
    import arviz as az

    start = time.perf_counter()
    fitted = bs.fit(bs.law(law), task.train, discrepancy=0.0, seed=seed, progress=False, **task.fit_options)
    seconds = time.perf_counter() - start
    # The figures are the fit's own (what the user is told); the summary over the same names only says whose.
    report = fitted.diagnostics
    summary = az.summary(fitted.idata, var_names=fitted.var_names, kind="diagnostics", round_to="none")
    return {
        "task": task.name,
        "law": law,
        "seed": seed,
        "divergences": report["divergences"],
        "max R-hat": report["max_rhat"],
        "worst": summary["r_hat"].idxmax(),
        "min bulk ESS": report["min_ess_bulk"],
        "least": summary["ess_bulk"].idxmin(),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="datablations/", help="substring of the task names")
    parser.add_argument("--laws", default="data-constrained-overfit", help="comma-separated names or law files")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default=None, help="where the table goes (markdown)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    laws, seeds = args.laws.split(","), [int(s) for s in args.seeds.split(",")]
    chosen = [t for t in tasks() if args.only in t.name]
    rows = [mixing(t, law, seed) for t in chosen for law in laws for seed in seeds]
    text = pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")
    print(text)
    if args.out:
        Path(args.out).write_text(f"# Mixing: {', '.join(laws)} on the corpus tasks matching {args.only!r}\n\n{text}\n")


if __name__ == "__main__":
    main()
