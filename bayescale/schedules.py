"""Learning-rate schedule features for the lr-annealing law (Tissue et al. 2024): S1 and S2 per step."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from bayescale.errors import DataError


def annealing_areas(
    table: pd.DataFrame, run: str = "run", step: str = "step", lr: str = "lr", decay: float = 0.999
) -> pd.DataFrame:
    """Add S1 (forward area: summed learning rate up to each step) and S2 (annealing area) to `table`.

    `table` holds one row per optimiser step of each run (every step, so the sums are exact), with the
    learning rate used at that step. S2 = sum_i m_i with m_i = decay * m_(i-1) + (lr_(i-1) - lr_i): a
    momentum of learning-rate drops. Rows keep their order (the index is reset); use the result to fit whole loss curves of
    runs with different schedules, or to describe a new schedule and predict its curve.
    """
    for col in (run, step, lr):
        if col not in table:
            raise DataError(f"annealing_areas: missing column {col!r}; table has {list(table.columns)}")
    if not 0 <= decay < 1:
        raise DataError(f"annealing_areas: decay must be in [0, 1), got {decay}")
    out = table.reset_index(drop=True)
    out["S1"] = np.nan
    out["S2"] = np.nan
    for _, rows in out.groupby(run, sort=False):
        rows = rows.sort_values(step, kind="stable")
        steps = rows[step].to_numpy()
        if np.any(np.diff(steps) != 1):
            raise DataError(
                f"annealing_areas: run {rows[run].iloc[0]!r} must list every step once (found gaps or repeats "
                f"near step {steps[np.flatnonzero(np.diff(steps) != 1)[0]]}); expand the schedule to every step first"
            )
        eta = rows[lr].to_numpy(dtype=float)
        drops = np.concatenate([[0.0], eta[:-1] - eta[1:]])
        momentum = lfilter([1.0], [1.0, -decay], drops)  # m_i = decay m_(i-1) + drop_i, vectorised
        out.loc[rows.index, "S1"] = np.cumsum(eta)
        out.loc[rows.index, "S2"] = np.cumsum(momentum)
    return out


def schedule(
    total_steps: int,
    peak_lr: float,
    kind: str = "cosine",
    warmup: int = 0,
    final_fraction: float = 0.1,
    anneal_fraction: float = 0.2,
    run: str = "run",
) -> pd.DataFrame:
    """A per-step schedule table (constant, cosine, or warmup-stable-decay 'wsd') for simulation and prediction."""
    s = np.arange(1, total_steps + 1)
    low = final_fraction * peak_lr
    if kind == "constant":
        eta = np.full(total_steps, peak_lr)
    elif kind == "cosine":
        eta = low + 0.5 * (peak_lr - low) * (1 + np.cos(np.pi * s / total_steps))
    elif kind == "wsd":
        start = int(total_steps * (1 - anneal_fraction))
        frac = np.clip((s - start) / max(total_steps - start, 1), 0, 1)
        eta = peak_lr - (peak_lr - low) * frac
    else:
        raise DataError(f"schedule kind must be 'constant', 'cosine' or 'wsd', got {kind!r}")
    if warmup:
        eta = np.where(s <= warmup, peak_lr * s / warmup, eta)
    return pd.DataFrame({"run": run, "step": s, "lr": eta})
