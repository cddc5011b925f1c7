"""The `bayescale` command: laws, fit, predict, summary, allocate, compare, average, demo, fit-many."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bayescale.errors import BayescaleError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Bayesian neural scaling laws.")
# wide tables when piped to a file or another program (rich would otherwise wrap at 80 columns)
console = Console(width=None if sys.stdout.isatty() else 220)


class Format(StrEnum):
    """How a command prints its result: a table for people, CSV or JSON for scripts."""

    table = "table"
    csv = "csv"
    json = "json"


FORMAT_HELP = "table (for reading), csv or json (for scripts)."
PROB_HELP = "Probability mass of the central interval, e.g. 0.9 for a 90% band."
FormatOption = Annotated[Format, typer.Option("--format", "-f", help=FORMAT_HELP)]


def _emit(frame: Any, title: str, fmt: Format, index: str = "") -> None:
    """Print a result frame as a rich table, CSV or JSON records (the index becomes column `index`)."""
    if fmt is Format.table:
        from bayescale.report import frame_table

        console.print(frame_table(frame, title))
        return
    flat = frame.reset_index(names=index or None) if index or frame.index.name else frame
    if fmt is Format.csv:
        sys.stdout.write(flat.to_csv(index=False))
    else:
        import json

        records = json.loads(flat.to_json(orient="records", double_precision=6))  # NaN -> null, '/' unescaped
        sys.stdout.write(json.dumps(records) + "\n")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"bayescale {version('bayescale')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Bayesian neural scaling laws."""


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        for part in item.split(","):
            if "=" not in part:
                raise BayescaleError(f"{what} expects ROLE=VALUE pairs, got {part!r}")
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _fixed(items: list[str]) -> dict[str, float]:
    out = {}
    for name, value in _pairs(items, "--fix").items():
        try:
            out[name] = float(value)
        except ValueError:
            raise BayescaleError(f"--fix {name}={value}: the value must be a number") from None
    return out


def _priors(items: list[str]) -> dict[str, dict]:
    """--prior NAME={dist = "Normal", mu = 0.3, sigma = 0.1}: a TOML inline table, as in a law file."""
    import tomllib

    out = {}
    for item in items:
        name, _, table = item.partition("=")
        try:  # without '=' the table is empty, which TOML rejects too
            out[name.strip()] = tomllib.loads(f"prior = {table.strip()}")["prior"]
        except tomllib.TOMLDecodeError as exc:
            raise BayescaleError(
                f'--prior {item}: expected NAME={{dist = "Normal", mu = 0.3, sigma = 0.1}} ({exc})'
            ) from None
    return out


@app.command("laws")
def laws_cmd(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show priors too.")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """List every law in the catalogue with its formula, inputs and reference."""
    from bayescale.laws import law, laws

    if fmt is not Format.table:
        import pandas as pd

        rows = [law(n) for n in laws()]
        table = pd.DataFrame(
            {
                "law": [x.name for x in rows],
                "title": [x.title for x in rows],
                "formula": [f"{x.target} = {x.formula.source}" for x in rows],
                "inputs": [" ".join(x.inputs) for x in rows],
                "params": [" ".join(x.params) for x in rows],
                "reference": [x.reference for x in rows],
            }
        )
        return _emit(table, "", fmt)
    for name in laws():
        the_law = law(name)
        console.print(the_law.describe(), highlight=False)
        if verbose:
            for p in the_law.params.values():
                console.print(f"    {p.name} ~ {p.prior.describe()}  # {p.why}", highlight=False)
        console.print()


@app.command("fit")
def fit_cmd(
    csv: Annotated[Path, typer.Argument(help="CSV file of runs.")],
    law: Annotated[str, typer.Option("--law", "-l", help="Law name or path to a TOML law file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the fit (.nc).")],
    col: Annotated[list[str], typer.Option("--col", help="ROLE=COLUMN, e.g. N=params (repeatable).")] = [],  # noqa: B006
    draws: Annotated[
        int | None, typer.Option(help="Draws per chain (default: the law's, else 1000; 500 from 20,000 runs).")
    ] = None,
    tune: Annotated[
        int | None, typer.Option(help="Tuning steps per chain (default: the law's, else 1000; 300 from 20,000 runs).")
    ] = None,
    chains: Annotated[int, typer.Option(help="Independent Markov chains (4 lets R-hat check convergence).")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same posterior.")] = 0,
    likelihood: Annotated[str, typer.Option(help="student_t (robust, default) or normal")] = "student_t",
    walk: Annotated[bool, typer.Option(help="Add the learned discrepancy in log compute (README).")] = False,
    discrepancy: Annotated[
        str, typer.Option(help="Drift beyond the data: auto (learned by leave-future-out) or a fixed scale, e.g. 0.01.")
    ] = "auto",
    sampler: Annotated[
        str | None, typer.Option(help="nutpie (default), nutpie-numba, pymc or numpyro; default: the law's.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show sampling progress.")] = True,
    fix: Annotated[
        list[str],
        typer.Option(
            "--fix",
            help="NAME=VALUE: fix a parameter (E=1.69) or set a law's numeric constant (vocab=32000); repeatable.",
        ),
    ] = [],  # noqa: B006
    tie: Annotated[
        list[str], typer.Option("--tie", help="NAME=OTHER: a parameter takes another's value, e.g. beta=alpha.")
    ] = [],  # noqa: B006
    prior: Annotated[
        list[str],
        typer.Option(
            "--prior",
            help='NAME={...}: replace a prior, in the law files\' grammar, e.g. alpha={dist="Normal", mu=0.3, '
            "sigma=0.1} (repeatable).",
        ),
    ] = [],  # noqa: B006
) -> None:
    """Fit a law to the runs in CSV and save the posterior."""
    import bayescale as bs
    from bayescale.fit import check_output_path
    from bayescale.laws import adjusted

    check_output_path(out)  # before sampling: a bad path must not cost the fit
    drift = _number_or_auto(discrepancy, "--discrepancy")
    columns = _pairs(col, "--col") or None
    the_law = adjusted(bs.law(law), priors=_priors(prior), fixed=_fixed(fix), tie=_pairs(tie, "--tie"))
    data = bs.ScalingData.from_csv(csv, columns=columns, roles=[*the_law.inputs, the_law.target])
    result = bs.fit(
        the_law,
        data,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        likelihood=likelihood,
        walk=walk,
        discrepancy=drift,
        sampler=sampler,
        progress=progress,
    )
    from bayescale.report import frame_table

    console.print(frame_table(result.summary(), f"{result.law.name} on {csv} (90% HDI)"))
    console.print(result.extrapolation_note, highlight=False)
    for problem in result.diagnostics["problems"]:
        console.print(f"[yellow]warning:[/] {problem}")
    _save_safely(result, out)


def _save_safely(result, out: Path) -> None:
    """Save a finished fit; if the path fails now (disk full, folder removed), save it in the temp folder and say
    where, so that the sampling is never lost."""
    import tempfile

    try:
        result.save(out)
    except (OSError, BayescaleError) as exc:
        fd, rescue = tempfile.mkstemp(prefix=f"{out.stem}-", suffix=".nc")
        os.close(fd)
        result.save(rescue)
        raise BayescaleError(f"could not save the fit to {out} ({exc}); it was saved to {rescue} instead") from None
    console.print(f"saved to {out}")


def _number_or_auto(text: str, option: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise BayescaleError(f"{option}: expected 'auto' or a number, got {text!r}") from None


@app.command("predict")
def predict_cmd(
    fit_path: Annotated[Path, typer.Argument(help="A saved fit (.nc).")],
    at: Annotated[list[str], typer.Option("--at", help="Inputs, e.g. N=7e10,D=1.4e12 (repeatable).")] = [],  # noqa: B006
    csv: Annotated[Path | None, typer.Option("--csv", help="CSV of inputs to predict at.")] = None,
    prob: Annotated[str, typer.Option(help=PROB_HELP + " Several, comma-separated: 0.5,0.9.")] = "0.9",
    seed: Annotated[int, typer.Option(help="Random seed of the predictive draws.")] = 0,
    fmt: FormatOption = Format.table,
) -> None:
    """Posterior-predictive median and band at new inputs."""
    import bayescale as bs

    result = bs.load(fit_path)
    frame = _points(at, csv)
    if frame.empty:
        raise BayescaleError("give --at ROLE=VALUE,... or --csv FILE")
    probs = _probs(prob)
    table = result.predict(frame, prob=probs if len(probs) > 1 else probs[0], seed=seed)
    _emit(table, f"{result.law.name}: {', '.join(f'{p:.0%}' for p in probs)} bands", fmt)


def _points(at: list[str], csv: Path | None) -> Any:
    """The rows to predict at: each --at ROLE=VALUE,... item, then the rows of a CSV file."""
    import pandas as pd

    rows = []
    for item in at:
        pairs = _pairs([item], "--at")
        try:
            rows.append({k: (float(v) if k != "group" else v) for k, v in pairs.items()})
        except ValueError as exc:
            raise BayescaleError(f"--at {item!r}: {exc}") from None
    return pd.concat([pd.DataFrame(rows), pd.read_csv(csv)] if csv else [pd.DataFrame(rows)], ignore_index=True)


def _budgets(compute: str) -> list[float]:
    try:
        return [float(c) for c in compute.split(",")]
    except ValueError:
        raise BayescaleError(f"--compute expects comma-separated numbers, got {compute!r}") from None


def _probs(prob: str) -> list[float]:
    try:
        return [float(p) for p in prob.split(",")]
    except ValueError:
        raise BayescaleError(f"--prob expects a number or comma-separated numbers, got {prob!r}") from None


@app.command("summary")
def summary_cmd(
    fit_path: Annotated[Path, typer.Argument(help="A saved fit (.nc).")],
    prob: Annotated[float, typer.Option(help="Probability mass of the highest-density intervals.")] = 0.9,
    fmt: FormatOption = Format.table,
) -> None:
    """Posterior table of a saved fit."""
    import bayescale as bs

    result = bs.load(fit_path)
    weighted = f", runs weighted by column {result.weight_column!r}" if result.weight_column else ""
    _emit(result.summary(prob=prob), f"{result.law.name} ({prob:.0%} HDI{weighted})", fmt, index="param")
    if fmt is Format.table:
        console.print(result.extrapolation_note, highlight=False)


@app.command("allocate")
def allocate_cmd(
    fit_path: Annotated[Path, typer.Argument(help="A saved fit (.nc) of a law of N and D.")],
    compute: Annotated[
        str, typer.Option("--compute", help="Budgets in FLOPs, comma-separated.")
    ] = "1e21,1e22,1e23,1e24",
    prob: Annotated[float, typer.Option(help=PROB_HELP)] = 0.9,
    target_loss: Annotated[
        float | None, typer.Option("--target-loss", help="Cheapest budget reaching this loss.")
    ] = None,
    inference_tokens: Annotated[float, typer.Option(help="Inference tokens priced at 2N FLOPs each.")] = 0.0,
    flops_per_token_param: Annotated[
        float, typer.Option(help="Training FLOPs per token and parameter (C = k N D).")
    ] = 6.0,
    fmt: FormatOption = Format.table,
) -> None:
    """Compute-optimal N*, D*, tokens per parameter and loss per budget, or the cheapest budget for a target loss."""
    import bayescale as bs

    result = bs.load(fit_path)
    if target_loss is not None:
        table = result.target_loss(target_loss, prob=prob, flops_per_token_param=flops_per_token_param)
        return _emit(table, f"Cheapest compute reaching loss {target_loss} with probability {prob}", fmt)
    budgets = _budgets(compute)
    alloc = result.allocate(
        budgets, prob=prob, flops_per_token_param=flops_per_token_param, inference_tokens=inference_tokens
    )
    title = f"{result.law.name}: compute-optimal allocation ({prob:.0%} intervals)"
    if fmt is Format.table:
        return _emit(alloc.table.T, title, fmt)
    _emit(alloc.table, title, fmt)  # one row per budget, named columns


@app.command("suggest")
def suggest_cmd(
    fit_path: Annotated[Path, typer.Argument(help="A saved fit (.nc).")],
    target: Annotated[str, typer.Option("--target", help="A point N=7e10,D=1.4e12 or a budget C=1e24.")],
    k: Annotated[int, typer.Option("-k", help="How many runs to suggest.")] = 4,
    budget: Annotated[float | None, typer.Option(help="Most FLOPs to spend on the suggested runs in all.")] = None,
    quantity: Annotated[
        str,
        typer.Option(
            help="With a budget target: loss, N, D or tokens_per_param at the optimum; drift (the learned "
            "extrapolation error at the target); or crossover (with --against: the first budget up to C where the "
            "two fits' optimal losses cross)."
        ),
    ] = "loss",
    against: Annotated[
        Path | None, typer.Option(help="With --quantity crossover: the other family's saved fit (.nc).")
    ] = None,
    candidates: Annotated[Path | None, typer.Option(help="CSV of runs you could train (default: a grid).")] = None,
    cost: Annotated[str | None, typer.Option(help="Column of the candidates CSV holding each run's cost.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the simulated outcomes.")] = 0,
    fmt: FormatOption = Format.table,
) -> None:
    """The next runs to train: the batch that most narrows the target per FLOP (Bayesian design)."""
    import pandas as pd

    import bayescale as bs

    result = bs.load(fit_path)
    try:
        where = {key: float(v) for key, v in _pairs([target], "--target").items()}
    except ValueError:
        raise BayescaleError(f"--target expects ROLE=NUMBER pairs, got {target!r}") from None
    table = pd.read_csv(candidates) if candidates else None
    other = bs.load(against) if against is not None else None
    plan = result.suggest(
        where, candidates=table, k=k, budget=budget, quantity=quantity, cost=cost, seed=seed, against=other
    )
    _emit(plan.table, f"next runs for {plan.target} (90% width now {plan.width_now:.4g})", fmt)
    if fmt is Format.table:
        base = plan.baseline
        console.print(
            f"an IsoFLOP grid of the same cost ({base.get('runs', 0)} runs at C = {base['C']:.3g}): expected 90% "
            f"width {base['expected_width90']:.4g}; chosen by {plan.rule}",
            highlight=False,
        )


@app.command("compare")
def compare_cmd(
    fits: Annotated[list[Path], typer.Argument(help="Two or more saved fits (.nc) of the same runs.")],
    lfo: Annotated[
        bool, typer.Option("--lfo", help="Leave-future-out: refit without the runs furthest towards extrapolation.")
    ] = False,
    fraction: Annotated[float, typer.Option(help="With --lfo: share of the largest runs held out.")] = 0.2,
    name: Annotated[
        list[str], typer.Option("--name", help="A label per fit, in order (default: the file names).")
    ] = [],  # noqa: B006
    fmt: FormatOption = Format.table,
) -> None:
    """Rank laws by PSIS-LOO (default) or leave-future-out; warns about runs with high Pareto k."""
    import warnings

    import bayescale as bs

    loaded = _load_labelled(fits, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = bs.compare(loaded, method="lfo" if lfo else "loo", fraction=fraction)
    title = (
        f"leave-future-out (the {fraction:.0%} of runs furthest towards extrapolation held out)" if lfo else "PSIS-LOO"
    )
    _emit(table, title, fmt, index="law")
    for w in caught:
        if "Pareto" in str(w.message):
            Console(stderr=True).print(f"[yellow]warning:[/] {w.message}", soft_wrap=True)


def _load_labelled(fits: list[Path], name: list[str]) -> dict[str, Any]:
    """Saved fits by label: --name in order, else each file's name (its path where two names clash)."""
    import bayescale as bs

    if name and len(name) != len(fits):
        raise BayescaleError(f"--name: give one label per fit ({len(fits)} fits, {len(name)} labels)")
    loaded = {}
    for i, path in enumerate(fits):
        label = name[i] if name else (path.stem if path.stem not in loaded else str(path))
        loaded[label] = bs.load(path)
    return loaded


@app.command("average")
def average_cmd(
    fits: Annotated[list[Path], typer.Argument(help="Two or more saved fits (.nc) of the same runs.")],
    lfo: Annotated[bool, typer.Option("--lfo", help="Stack on leave-future-out refits, not PSIS-LOO.")] = False,
    fraction: Annotated[float, typer.Option(help="With --lfo: share of the largest runs held out.")] = 0.2,
    at: Annotated[list[str], typer.Option("--at", help="Predict here, e.g. N=7e10,D=1.4e12 (repeatable).")] = [],  # noqa: B006
    csv: Annotated[Path | None, typer.Option("--csv", help="CSV of inputs to predict at.")] = None,
    compute: Annotated[str | None, typer.Option(help="Allocate these budgets (FLOPs), e.g. 1e23,1e24.")] = None,
    prob: Annotated[str, typer.Option(help=PROB_HELP + " Several, comma-separated: 0.5,0.9.")] = "0.9",
    name: Annotated[
        list[str], typer.Option("--name", help="A label per fit, in order (default: the file names).")
    ] = [],  # noqa: B006
    fmt: FormatOption = Format.table,
) -> None:
    """Mix laws by stacking weights; print the weights, and the mixture's bands (--at) or allocation (--compute)."""
    import bayescale as bs

    mixed = bs.average(_load_labelled(fits, name), method="lfo" if lfo else "loo", fraction=fraction)
    how = f"leave-future-out (top {fraction:.0%} held out)" if lfo else "PSIS-LOO"
    _emit(mixed.weights.rename("weight").rename_axis("law").to_frame(), f"stacking weights on {how}", fmt, index="law")
    probs = _probs(prob)
    points = _points(at, csv)
    if not points.empty:
        table = mixed.predict(points, prob=probs if len(probs) > 1 else probs[0])
        _emit(table, f"the mixture's {', '.join(f'{p:.0%}' for p in probs)} bands", fmt)
    if compute is not None:
        alloc = mixed.allocate(_budgets(compute), prob=probs[0])
        _emit(alloc.table.T if fmt is Format.table else alloc.table, f"the mixture's allocation ({probs[0]:.0%})", fmt)


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("bayescale-demo.png"),
    draws: Annotated[int, typer.Option(help="Draws per chain.")] = 1000,
    chains: Annotated[int, typer.Option(help="Independent Markov chains.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation and the sampler.")] = 0,
) -> None:
    """Simulate runs from the published Chinchilla law, fit, and predict a 70B / 1.4T-token run."""
    from bayescale.demo import run_demo

    run_demo(out=out, draws=draws, chains=chains, seed=seed, console=console)


@app.command("fit-many")
def fit_many_cmd(
    jobs_csv: Annotated[
        Path,
        typer.Argument(
            help="CSV of jobs: name, law, csv, col_<ROLE> (e.g. col_N=params), "
            "optional draws, tune, chains, seed, likelihood."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the fits (<name>.nc) and summary.csv.")],
    workers: Annotated[int | None, typer.Option(help="Local dask worker processes (default: CPU count).")] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running dask scheduler to use instead, e.g. tcp://10.0.0.5:8786.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar over the jobs.")] = True,
    resume: Annotated[
        bool,
        typer.Option(help="Reuse fits already in --out whose job (law, data, options) is unchanged."),
    ] = True,
) -> None:
    """Fit every job in parallel (dask); save each fit and summary.csv (kept current, so a crashed run
    resumes where it stopped). Exit code 1 when any job failed or did not converge."""
    from bayescale.many import fit_many, jobs_from_csv

    jobs = jobs_from_csv(jobs_csv)
    if scheduler:
        from dask.distributed import Client

        with Client(scheduler) as client:
            summary = fit_many(jobs, client=client, out_dir=out, progress=progress, resume=resume)
    else:
        summary = fit_many(jobs, out_dir=out, progress=progress, n_workers=workers, resume=resume)
    for row in summary.itertuples():
        detail = f"{row.seconds:.1f} s, max R-hat {row.max_rhat:.3f}" if row.status == "ok" else row.error
        detail += ", reused from an earlier run" if row.reused else ""
        console.print(f"{row.name}: {row.status} ({detail})", highlight=False)
    failed = int((summary.status != "ok").sum())
    console.print(f"{len(summary) - failed} of {len(summary)} jobs ok; summary in {out / 'summary.csv'}")
    if failed:
        sys.exit(1)


def main() -> None:
    """Entry point: bad input becomes one clear line on stderr and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except BayescaleError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)  # one line, never wrapped
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click's usage errors (typer >= 0.29 vendors click: matched by what they do)
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
