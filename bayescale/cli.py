"""The `bayescale` command: laws, fit, predict, summary, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bayescale.errors import BayescaleError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Bayesian neural scaling laws.")
console = Console()


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        for part in item.split(","):
            if "=" not in part:
                raise BayescaleError(f"{what} expects ROLE=VALUE pairs, got {part!r}")
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


@app.command("laws")
def laws_cmd(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show priors too.")] = False) -> None:
    """List every law in the catalogue with its formula, inputs and reference."""
    from bayescale.laws import law, laws

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
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    likelihood: Annotated[str, typer.Option(help="student_t (robust, default) or normal")] = "student_t",
    progress: bool = True,
) -> None:
    """Fit a law to the runs in CSV and save the posterior."""
    import bayescale as bs

    columns = _pairs(col, "--col") or None
    data = bs.ScalingData.from_csv(csv, columns=columns)
    result = bs.fit(law, data, draws=draws, tune=tune, chains=chains, seed=seed, likelihood=likelihood,
                    progress=progress)
    from bayescale.report import frame_table

    console.print(frame_table(result.summary(), f"{result.law.name} on {csv} (90% HDI)"))
    for problem in result.diagnostics["problems"]:
        console.print(f"[yellow]warning:[/] {problem}")
    result.save(out)
    console.print(f"saved to {out}")


@app.command("predict")
def predict_cmd(
    fit_path: Annotated[Path, typer.Argument(help="A saved fit (.nc).")],
    at: Annotated[list[str], typer.Option("--at", help="Inputs, e.g. N=7e10,D=1.4e12 (repeatable).")] = [],  # noqa: B006
    csv: Annotated[Path | None, typer.Option("--csv", help="CSV of inputs to predict at.")] = None,
    prob: float = 0.9,
    seed: int = 0,
) -> None:
    """Posterior-predictive median and band at new inputs."""
    import pandas as pd

    import bayescale as bs
    from bayescale.report import frame_table

    result = bs.load(fit_path)
    rows = []
    for item in at:
        pairs = _pairs([item], "--at")
        try:
            rows.append({k: (float(v) if k != "group" else v) for k, v in pairs.items()})
        except ValueError as exc:
            raise BayescaleError(f"--at {item!r}: {exc}") from None
    frame = pd.concat([pd.DataFrame(rows), pd.read_csv(csv)] if csv else [pd.DataFrame(rows)], ignore_index=True)
    if frame.empty:
        raise BayescaleError("give --at ROLE=VALUE,... or --csv FILE")
    console.print(frame_table(result.predict(frame, prob=prob, seed=seed), f"{result.law.name}: {prob:.0%} bands"))


@app.command("summary")
def summary_cmd(fit_path: Path, prob: float = 0.9) -> None:
    """Posterior table of a saved fit."""
    import bayescale as bs
    from bayescale.report import frame_table

    result = bs.load(fit_path)
    console.print(frame_table(result.summary(prob=prob), f"{result.law.name} ({prob:.0%} HDI)"))


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("bayescale-demo.png"),
    draws: int = 1000,
    chains: int = 4,
    seed: int = 0,
) -> None:
    """Simulate runs from the published Chinchilla law, fit, and predict a 70B / 1.4T-token run."""
    from bayescale.demo import run_demo

    run_demo(out=out, draws=draws, chains=chains, seed=seed, console=console)


def main() -> None:
    """Entry point: bad input becomes one clear line on stderr and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except BayescaleError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
