"""Compare laws: PSIS-LOO (ArviZ) with Pareto-k warnings in words, and leave-future-out refits."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale import _discrepancy
from bayescale.errors import BayescaleError

if TYPE_CHECKING:
    from bayescale.fit import Fit


class ComparisonWarning(UserWarning):
    """A comparison result is less reliable than it looks; the message says which runs and why."""


def _describe_run(fit: Fit, i: int) -> str:
    row = fit.data.frame.iloc[i]
    return "run " + str(i) + " (" + ", ".join(f"{k}={row[k]:.3g}" for k in fit.law.inputs) + ")"


def compare(fits: Mapping[str, Fit], method: str = "loo", **lfo_options: Any) -> pd.DataFrame:
    """Rank laws fitted to the same runs.

    method="loo": ArviZ's PSIS-LOO table (elpd_loo, se, elpd_diff, dse, weight, ...) plus the count of runs
    with Pareto k > 0.7 per law; warns naming those runs. LOO scores interpolation.
    method="lfo": leave-future-out; refits each law on runs below a cutoff and scores the runs above it,
    which matches how laws are used (see `leave_future_out` for the options).
    """
    _at_least_two(fits, "compare")
    if method == "lfo":
        return leave_future_out(fits, **lfo_options)
    if method != "loo":
        raise BayescaleError(f"method must be 'loo' or 'lfo', got {method!r}")
    import arviz as az

    check_same_runs(fits, "compare")
    bad = {}
    idatas = {name: fit.idata_with_log_likelihood() for name, fit in fits.items()}  # computed once for large fits
    for name, fit in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(idatas[name], pointwise=True)
        k = np.asarray(loo.pareto_k)
        bad[name] = np.flatnonzero(k > 0.7)
        if bad[name].size:
            runs = ", ".join(_describe_run(fit, i) for i in bad[name][:5])
            more = f" and {bad[name].size - 5} more" if bad[name].size > 5 else ""
            warnings.warn(
                f"{name}: {bad[name].size} run(s) have Pareto k > 0.7, so their leave-one-out scores are unreliable: "
                f"{runs}{more}. These runs steer the fit on their own (often the largest or outlying ones); "
                "trust method='lfo' for extrapolation, or refit without them to check.",
                ComparisonWarning,
                stacklevel=2,
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(idatas, ic="loo")
    table["rank"] = table["rank"] + 1  # the best law is rank 1, as in the leave-future-out table
    table["n_high_pareto_k"] = [bad[name].size for name in table.index]
    return table


def _at_least_two(fits: Mapping[str, Fit], caller: str) -> None:
    if len(fits) < 2:
        raise BayescaleError(f"{caller} needs at least two fits, e.g. {caller}({{'chinchilla': f1, 'kaplan': f2}})")


def check_same_runs(fits: Mapping[str, Fit], caller: str) -> None:
    """Raise unless every fit holds the same runs in the same order: pointwise scores (and stacking weights, which
    ArviZ's compare computes) pair each run's score across laws."""
    _at_least_two(fits, caller)
    first = next(iter(fits.values()))
    y0 = np.log(first.data[first.law.target])
    for name, fit in fits.items():
        y = np.log(fit.data[fit.law.target])
        if len(y) != len(y0) or not np.allclose(y, y0):
            raise BayescaleError(
                f"{caller}: {name!r} was fitted to different runs (or to the same runs in another order); "
                "scores are compared run by run, so fit every law to the same table"
            )


def log_predictive_density(fit: Fit, frame: pd.DataFrame) -> np.ndarray:
    """Per held-out run: log of the posterior-mean predictive density of its log-target (nats)."""
    from scipy.special import logsumexp

    ll = fit._loglik(frame, fit.mean_draws(frame))
    return logsumexp(ll, axis=0) - np.log(ll.shape[0])


def refit_on(fitted: Fit, train: np.ndarray, **fit_kwargs: Any) -> Fit:
    """`fitted`'s law refitted to the runs where `train` holds, with the fit's own settings (seed, likelihood,
    chains, discrepancy option) unless `fit_kwargs` overrides them."""
    from bayescale.fit import fit as run_fit

    options = {
        "seed": fitted.meta.get("seed", 0),
        "likelihood": fitted.spec.likelihood,
        "nu": fitted.spec.nu,
        "chains": fitted.meta.get("chains", 4),
        "progress": False,
        "discrepancy": _discrepancy.option_of(fitted.meta.get("discrepancy", 0.0)),
        **fit_kwargs,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_fit(fitted.law, fitted.data.subset(train), **options)


def leave_future_out(
    fits: Mapping[str, Fit],
    cutoffs: Sequence[float] | None = None,
    by: str | None = None,
    fraction: float = 0.2,
    **fit_kwargs: Any,
) -> pd.DataFrame:
    """Refit each law on runs with `by` <= cutoff and score the runs above it (elpd, its se, coverage of 90% bands).

    Default cutoff: hold out the top `fraction` of runs by `by`. Where the law's file says new runs lie the other
    way along `by` (`[extrapolation] loss = "down"`), the runs below the cutoff are the held-out future. Without
    `by`, runs are ordered towards extrapolation as the learned drift orders them: log compute C where known, else
    log(N D), else the signed sum of the logs of the law's inputs (`cutoffs` are then on that log scale); the
    table's `by` column names the order. The first fit sets the order, so every law is scored on the same runs.
    """
    check_same_runs(fits, "leave-future-out")  # one mask for every law
    first = next(iter(fits.values()))
    order, label, sign = _discrepancy.future_order(
        first.law, first.data, by, first.meta.get("flops_per_token_param", 6.0)
    )
    cuts = list(cutoffs) if cutoffs is not None else [float(np.quantile(order, 0.5 + sign * (0.5 - fraction)))]
    rows = []
    for name, fitted in fits.items():
        for cut in cuts:
            train = sign * order <= sign * cut
            if train.sum() <= len(fitted.law.params) + 1 or (~train).sum() == 0:
                raise BayescaleError(
                    f"leave-future-out: cutoff {cut:.3g} leaves {train.sum()} runs to fit and "
                    f"{(~train).sum()} to score for {name!r}"
                )
            refit = refit_on(fitted, train, **fit_kwargs)
            test = fitted.data.frame[~train]
            lpd = log_predictive_density(refit, test)
            band = refit.predict(test, prob=0.9)
            y = test[fitted.law.target].to_numpy()
            rows.append(
                {
                    "law": name,
                    "by": label,
                    "cutoff": cut,
                    "n_train": int(train.sum()),
                    "n_test": int((~train).sum()),
                    "elpd_lfo": float(lpd.sum()),
                    "se": float(np.sqrt(len(lpd)) * lpd.std()),
                    "coverage_90": float(np.mean((band["lower"] <= y) & (y <= band["upper"]))),
                }
            )
    table = pd.DataFrame(rows)
    table["rank"] = table.groupby("cutoff")["elpd_lfo"].rank(ascending=False).astype(int)
    return table.sort_values(["cutoff", "rank"]).reset_index(drop=True)
