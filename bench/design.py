"""Does `fit.suggest` buy a narrower target for the same compute? Simulated progressive sweeps, three laws.

For each law (chinchilla: the loss at the compute optimum at 1e23 FLOPs; data-constrained at a fixed 5e9 unique
tokens: the law at N = 3e9, D = 2e11; bnsl1: the curve at x = 1e10, 100x beyond its seed runs), from a small seed
sweep simulated from the true law (published or typical parameters, real-like noise), run ROUNDS rounds of
  suggest (K runs) -> "train" them (simulate from the true law) -> update,
and, with the same compute per round, two other designs: the field's habit for the law ("standard": an IsoFLOP
grid of 5 runs at one budget; for bnsl1 a regular sweep upwards) and random runs from the same candidates (at most
the same compute). Reported per law, design and round: the posterior 90% width of the target, whether it covers the
truth, and the compute spent, over SEEDS seeds; the width ratio at equal compute; and the compute each other design
would need to reach suggest's width (a power law in compute fitted to its rounds), the issue's "half the compute".

`--replay` replays the loop on real sweeps instead (bayescale.design.replay: the runs that were trained are the
pool; suggest against budget order and random picks of about the same compute; error, width and coverage at the
largest held-out runs).

Usage: python bench/design.py [--seeds 10] [--rounds 4] [--laws chinchilla,data-constrained,bnsl1] [--replay]
results: bench/results/design.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import design
from bayescale.simulate import law_values

K = 3
SAMPLING = dict(draws=500, tune=500, chains=4, progress=False, discrepancy=0.0)
HERE = Path(__file__).resolve().parent


@dataclass
class Scenario:
    """One law's simulated sweep: the true law (published or typical parameters, constants fixed once so that the
    truth does not move with the runs), a seed sweep, the target, the candidates and a standard design of a cost."""

    law: str
    noise: float
    seed_inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    target: dict[str, float]
    candidates: Callable[[], pd.DataFrame]  # role-named inputs (a "cost" column is added: 6ND or x)
    standard: Callable[[bs.Fit, float], pd.DataFrame]  # runs of about that total cost, the field's habit
    standard_name: str
    fixed: dict[str, float] = field(default_factory=dict)  # constants of the truth

    def truth_values(self) -> dict[str, float]:
        return law_values(bs.law(self.law))

    def mean(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        law = bs.law(self.law)
        n = len(next(iter(inputs.values())))
        consts = law.resolve_constants({**inputs, law.target: np.ones(n)}) | self.fixed
        return np.broadcast_to(law.mean(self.truth_values(), inputs, consts), n)

    def train(self, runs: pd.DataFrame, seed: int) -> pd.DataFrame:
        """'Train' runs: their target from the true law with the sweep's noise (multiplicative, Gaussian)."""
        law = bs.law(self.law)
        inputs = {k: runs[k].to_numpy(float) for k in law.inputs}
        y = self.mean(inputs) * np.exp(self.noise * np.random.default_rng(seed).standard_normal(len(runs)))
        return pd.DataFrame({**inputs, law.target: y})

    def cost(self, runs: pd.DataFrame) -> np.ndarray:
        return 6 * runs["N"].to_numpy(float) * runs["D"].to_numpy(float) if "N" in runs else runs["x"].to_numpy(float)

    def band(self, fit: bs.Fit) -> tuple[float, float, float]:
        """The posterior 5/50/95% of the target: the loss at the optimum of a budget, or the law's value at a point."""
        if set(self.target) == {"C"}:
            draws = fit.allocate([self.target["C"]]).draws["loss"][:, 0]
        else:
            draws = fit.mean_draws({k: [v] for k, v in self.target.items()})[:, 0]
        lo, med, hi = np.quantile(draws, [0.05, 0.5, 0.95])
        return lo, med, hi

    def true_target(self) -> float:
        if set(self.target) == {"C"}:  # the loss at the optimum, by a fine numeric search along the IsoFLOP curve
            ns = np.geomspace(1e6, 1e14, 40001)
            return float(np.min(self.mean({"N": ns, "D": self.target["C"] / (6 * ns)})))
        return float(self.mean({k: np.array([v]) for k, v in self.target.items()})[0])


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def _isoflop_at_20(c: float, extra: Mapping[str, float]) -> pd.DataFrame:
    """5 runs on one IsoFLOP curve, N from 1/4x to 4x the 20-tokens-per-parameter size (for laws without allocate)."""
    n = np.sqrt(c / (6 * 20)) * np.geomspace(1 / 4, 4, 5)
    return pd.DataFrame({"N": n, "D": c / (6 * n), **{k: np.full(5, v) for k, v in extra.items()}})


def _grid_up(fit: bs.Fit, cost: float) -> pd.DataFrame:
    """5 runs log-spaced over a factor of 4, scaled so that they cost `cost` in all (cost = x): a regular sweep
    upwards, as one would extend a learning curve."""
    shape = np.geomspace(2, 8, 5)
    return pd.DataFrame({"x": shape * cost / shape.sum()})


OTHERS = ("standard", "random")
U_FIXED = 5e9  # the data-constrained sweep's unique tokens
SCENARIOS = {
    "chinchilla": Scenario(
        "chinchilla",
        0.01,
        lambda rng: {"N": _log_uniform(rng, 1e7, 1e9, 30), "D": _log_uniform(rng, 1e9, 1e11, 30)},
        {"C": 1e23},
        lambda: pd.DataFrame(),  # the default candidates: suggest's IsoFLOP-style grid beyond the data
        lambda fit, cost: design.isoflop_grid(fit, cost / 5, 5),
        "IsoFLOP grid",
    ),
    "data-constrained": Scenario(
        "data-constrained",
        0.01,
        lambda rng: {
            "N": _log_uniform(rng, 1e7, 5e8, 40),
            "D": _log_uniform(rng, 1e9, 5e10, 40),
            "U": rng.choice([U_FIXED / 3, U_FIXED, 3 * U_FIXED], 40),
        },
        {"N": 3e9, "D": 2e11, "U": U_FIXED},
        lambda: pd.DataFrame(
            [(n, d, U_FIXED) for n in np.geomspace(2e8, 3e9, 5) for d in np.geomspace(2e10, 2e11, 5)],
            columns=["N", "D", "U"],
        ),
        lambda fit, cost: _isoflop_at_20(cost / 5, {"U": U_FIXED}),
        "IsoFLOP grid (20 tokens/param)",
    ),
    "bnsl1": Scenario(
        "bnsl1",
        0.005,
        lambda rng: {"x": _log_uniform(rng, 1e5, 1e8, 25)},
        {"x": 1e10},
        lambda: pd.DataFrame({"x": np.geomspace(3e7, 3e9, 10)}),
        _grid_up,
        "log grid upwards",
        fixed={"x0": 1e7},
    ),
}


def random_runs(pool: pd.DataFrame, cost: float, rng: np.random.Generator) -> pd.DataFrame:
    """Random candidates, in random order, as long as they fit in the cost (the cheapest one if none fits)."""
    take, total = [], 0.0
    for i in rng.permutation(len(pool)):
        if total + pool["cost"].iloc[i] <= cost:
            take.append(i)
            total += pool["cost"].iloc[i]
    return pool.iloc[take or [int(np.argmin(pool["cost"].to_numpy()))]].drop(columns="cost")


def run_seed(sc: Scenario, seed: int, rounds: int, true_value: float) -> list[dict]:
    rng = np.random.default_rng(seed)
    start = sc.train(pd.DataFrame(sc.seed_inputs(np.random.default_rng(100 + seed))), 10_000 + seed)
    inputs = list(bs.law(sc.law).inputs)
    fits = {name: bs.fit(sc.law, start, seed=seed, **SAMPLING) for name in ("suggest", "standard", "random")}
    spent = {name: 0.0 for name in fits}
    rows = []
    for r in range(1, rounds + 1):
        pool = sc.candidates()
        options = {"candidates": pool.assign(cost=sc.cost(pool)), "cost": "cost"} if len(pool) else {}
        plan = fits["suggest"].suggest(sc.target, k=K, seed=seed * 100 + r, **options)
        cost = float(plan.table["cost"].sum())
        new = {
            "suggest": plan.table[inputs],
            "standard": sc.standard(fits["standard"], cost)[inputs],
            "random": random_runs(plan.candidates[[*inputs, "cost"]], cost, rng)[inputs],
        }
        for name, runs in new.items():
            spent[name] += float(sc.cost(runs).sum())
            fits[name] = fits[name].update(sc.train(runs, seed * 1000 + r))
            lo, med, hi = sc.band(fits[name])
            rows.append(
                {"law": sc.law, "seed": seed, "round": r, "design": name, "compute": spent[name]}
                | {"width90": (hi - lo) / med, "covers": lo <= true_value <= hi}
            )
    return rows


# --- replay on real sweeps (bayescale.design.replay): the runs that were trained are the candidate pool -----------
REPLAY_SWEEPS = {  # name -> (data set, experiment or None)
    "chinchilla-epoch": ("chinchilla", None),
    "isoflops llama 3": ("isoflops", "llama_3__exp_loss"),
    "isoflops misfitting": ("isoflops", "misfitting__fineweb_c4__transformer"),
}
REPLAY_SAMPLING = dict(draws=500, tune=500, chains=4)


def replay_sweeps(seeds: int, rounds: int) -> str:
    """Each sweep split by compute (seed: smallest 30%, pool: next 60%, held out: largest 10%, whole budgets kept
    together), replayed with `seeds` seeds (the random strategy's picks and suggest's simulations)."""
    out = []
    for name, (dataset, experiment) in REPLAY_SWEEPS.items():
        source = bs.datasets.load(dataset)
        frame = source.frame if experiment is None else source.frame[source.frame.experiment == experiment]
        columns = {k: v for k, v in source.columns.items() if k != "group"}
        runs = bs.ScalingData.from_frame(frame, columns=columns).with_inputs(["N", "D"]).frame
        rank = runs["C"].rank(method="min", pct=True)
        start, pool, test = runs[rank <= 0.3], runs[(rank > 0.3) & (rank <= 0.9)], runs[rank > 0.9]
        for seed in range(seeds):
            t = time.perf_counter()
            rows, _ = design.replay("chinchilla", start, pool, test, rounds=rounds, k=K, seed=seed, **REPLAY_SAMPLING)
            out.append(rows.assign(sweep=name, seed=seed))
            print(f"{name} seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
    df = pd.concat(out, ignore_index=True)
    last = df[df["round"] == rounds]
    table = last.groupby(["sweep", "strategy"])[["compute", "median abs. error", "90% width", "held at 90%"]].mean()
    return (
        f"## Replay on real sweeps: {rounds} rounds of {K} runs from the pool, {seeds} seeds, mean after the last round\n"
        "(seed: the smallest 30% of runs by compute; pool: the next 60%; held out: the largest 10%)\n\n"
        + table.to_markdown(floatfmt=".4g")
    )


def compute_saving(df: pd.DataFrame) -> pd.DataFrame:
    """Per round, how much compute each standard design would need to reach suggest's width (median over seeds):
    a power law in compute fitted to its own rounds (least squares in logs) gives the compute at suggest's width."""
    rows = []
    for (seed, r), at in df[df.design == "suggest"].set_index(["seed", "round"]).iterrows():
        for name in OTHERS:
            own = df[(df.seed == seed) & (df.design == name)].sort_values("compute")
            x, y = np.log(own["compute"].to_numpy()), np.log(own["width90"].to_numpy())
            slope, intercept = np.polyfit(x, y, 1)
            if slope >= 0:  # its width did not shrink with compute: no finite equivalent
                continue
            needed = np.exp((np.log(at["width90"]) - intercept) / slope)
            rows.append({"round": r, "design": name, "ratio": needed / at["compute"]})
    table = pd.DataFrame(rows).groupby(["round", "design"])["ratio"].median().unstack()
    return table.rename(columns=lambda name: f"{name} compute / suggest compute")


def law_section(sc: Scenario, df: pd.DataFrame, args: argparse.Namespace) -> str:
    """One law's tables: median width, compute and coverage per round and design; width ratios at equal compute;
    the compute each other design needs for suggest's width."""
    summary = df.groupby(["round", "design"]).agg(
        compute=("compute", "median"), width90=("width90", "median"), coverage=("covers", "mean")
    )
    wide = df.pivot_table(index=["seed", "round"], columns="design", values="width90")
    ratio = pd.DataFrame(
        {f"suggest / {other} width": (wide["suggest"] / wide[other]).groupby("round").median() for other in OTHERS}
    )
    what = ", ".join(f"{k}={v:.3g}" for k, v in sc.target.items())
    return "\n\n".join(
        [
            f"## {sc.law}: target {'loss at the optimum at ' if set(sc.target) == {'C'} else 'the law at '}{what};"
            f" standard = {sc.standard_name}",
            "Median per round and design\n\n" + summary.to_markdown(floatfmt=".4g"),
            "Width ratio at equal compute (median over seeds; < 1: suggest is narrower)\n\n"
            + ratio.to_markdown(floatfmt=".3f"),
            "Compute another design needs for suggest's width / suggest's compute (median over seeds)\n\n"
            + compute_saving(df).to_markdown(floatfmt=".2f"),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--replay", action="store_true", help="replay on the real sweeps instead (appends results)")
    parser.add_argument("--laws", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.replay:
        text = replay_sweeps(args.seeds, args.rounds)
        path = HERE / "results" / "design.md"
        kept = path.read_text().split("## Replay on real sweeps")[0].rstrip() if path.exists() else ""
        path.write_text(kept + "\n\n" + text + "\n")
        print(text)
        return
    t = time.perf_counter()
    sections = []
    for name in args.laws.split(","):
        sc = SCENARIOS[name]
        true_value, rows = sc.true_target(), []
        for seed in range(args.seeds):
            rows += run_seed(sc, seed, args.rounds, true_value)
            print(f"{name} seed {seed} done, {time.perf_counter() - t:.0f} s", flush=True)
        sections.append(law_section(sc, pd.DataFrame(rows), args))
    head = (
        f"# Design benchmark: {args.seeds} seeds x {args.rounds} rounds of {K} suggested runs per law (the other "
        f"designs matched in compute per round); {time.perf_counter() - t:.0f} s\n\n"
        "Standard designs: `standard` (the field's habit for the law, named per law) and random candidates.\n"
        "Compute needed for suggest's width: per seed, a power law width(compute) fitted to the other design's\n"
        "rounds (least squares in logs) gives the compute at which it reaches suggest's width; the tables show that\n"
        "compute / suggest's compute (the issue's goal: >= 2, the same width for half the compute)."
    )
    text = "\n\n".join([head, *sections])
    path = HERE / "results" / "design.md"
    old = path.read_text() if path.exists() else ""
    replay = old[old.index("## Replay on real sweeps") :] if "## Replay on real sweeps" in old else ""
    path.write_text(text + "\n" + ("\n" + replay if replay else ""))  # the replay section is kept
    print(text)


if __name__ == "__main__":
    main()
