"""`fit` a law to runs with NUTS, and the `Fit` it returns: summary, predict, save/load."""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import pandas as pd

from bayescale import _discrepancy, _noise, _walk, diagnostics
from bayescale._model import Likelihood, Mode, ModelSpec, data_arrays, make_spec, noise_reference
from bayescale._progress import Phases
from bayescale.data import GROUP, LARGE_RUNS, WEIGHT, ScalingData, as_frame
from bayescale.errors import BayescaleError, FitFileError
from bayescale.laws import Law, Sampler, adjusted, from_spec
from bayescale.laws import law as get_law

if TYPE_CHECKING:
    import arviz as az

    from bayescale.pointfit import PointFit

FORMAT_VERSION = 2  # 2: Gaussian drift slope, frontier along every axis, corpus-prior discrepancy
# The extrapolation drift's prior scale per e-fold beyond the data: "auto" learns it by leave-future-out
# inside the data (bayescale._discrepancy); chosen by the held-out tables of bench/calibration.py (README).
DEFAULT_DISCREPANCY = "auto"
# The learned Brownian discrepancy in log compute (bayescale._walk), also chosen by those tables.
DEFAULT_WALK = False
# The pointwise log-likelihood (draws x runs) is kept with a fit up to this many values (16 MB in a saved float32
# file); larger fits compute it when asked (compare), so 10^5-10^6 runs never hold it at once.
STORED_LOGLIK_CELLS = 4_000_000
# Default draws and tuning steps per chain from LARGE_RUNS runs. A default chinchilla fit to 10^5 runs had a bulk
# ESS of 6,100 from 4,000 draws; nutpie's own default tuning is 300 steps. Checked against 1000 + 1000 (README).
LARGE_DRAWS = {"draws": 500, "tune": 300}
DEFAULT_DRAWS = {"draws": 1000, "tune": 1000}  # below LARGE_RUNS runs


class Fit:
    """A posterior over a law's parameters given runs; predicts, allocates, saves.

    Built by `bayescale.fit(...)` or `bayescale.load(path)`; holds an ArviZ InferenceData in `.idata`.
    """

    def __init__(
        self,
        law: Law,
        idata: az.InferenceData,
        spec: ModelSpec,
        constants: dict[str, float],
        data: ScalingData,
        meta: dict[str, Any],
    ):
        self.law = law
        self.idata = idata
        self.spec = spec
        self.constants = constants
        self.data = data
        self.meta = meta

    def __repr__(self) -> str:
        d = self.meta.get("diagnostics", {})
        weighted = f" weighted by {self.weight_column!r}" if self.spec.weighted else ""
        return (
            f"Fit({self.law.name}, {len(self.data)} runs{weighted}, {self.n_draws} draws, "
            f"divergences={d.get('divergences')}, max R-hat={d.get('max_rhat', float('nan')):.3f})"
        )

    @property
    def weight_column(self) -> str | None:
        """The user's name of the column that weighted the runs, or None for an unweighted fit."""
        return self.meta.get("names", {}).get(WEIGHT, WEIGHT) if self.spec.weighted else None

    # --- draws ----------------------------------------------------------------------------------
    @property
    def n_draws(self) -> int:
        post = self.idata.posterior
        return post.sizes["chain"] * post.sizes["draw"]

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of a parameter or derived quantity, chains stacked: shape (S,) or (S, groups)."""
        var = self.idata.posterior[name]
        values = var.values
        return values.reshape(self.n_draws, *values.shape[2:])

    @property
    def var_names(self) -> list[str]:
        """The law's parameters, its derived quantities and the noise scale, as summarised."""
        pooled = [f"{p}_{s}" for p, m in self.spec.modes if m == "pooled" for s in ("mu", "tau")]
        walk = ["walk_tau"] if self.spec.walk else []
        power = ["noise_power"] if self.law.noise_power is not None else []
        return [*self.law.params, *pooled, *(n for n, _ in self.law.derived), "sigma", *power, *walk]

    def _param_draws(self, frame: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Each parameter's draws shaped to broadcast against n rows: (S, 1) shared, (S, n) per group."""
        out = {}
        index = self._group_index(frame) if self.spec.modes else None
        for name in self.law.params:
            mode = self.spec.mode(name)
            values = self.draws(name)
            if mode == "shared":
                out[name] = values[:, None]
                continue
            known = index >= 0
            if not known.all() and mode == "separate":
                unknown = frame[GROUP][~known].iloc[0]
                raise BayescaleError(
                    f"group {unknown!r} was not in the fit and {name!r} is fitted separately per group; "
                    f"known groups: {list(self.spec.groups)} (use groups={{{name!r}: 'pooled'}} to predict new groups)"
                )
            per_row = values[:, np.where(known, index, 0)]
            if not known.all():
                per_row[:, ~known] = self._new_group_draws(name, rng)[:, None]
            out[name] = per_row
        return out

    def _group_index(self, frame: pd.DataFrame) -> np.ndarray:
        if GROUP not in frame:
            raise BayescaleError(
                f"this fit has per-group parameters ({', '.join(p for p, _ in self.spec.modes)}): "
                "give a 'group' column in the prediction inputs"
            )
        lookup = {g: i for i, g in enumerate(self.spec.groups)}
        return np.array([lookup.get(str(g), -1) for g in frame[GROUP]])

    def _new_group_draws(self, name: str, rng: np.random.Generator) -> np.ndarray:
        """A pooled parameter for a group never seen: drawn from the fitted population, per posterior draw."""
        centre, spread = self.draws(f"{name}_mu"), self.draws(f"{name}_tau")
        z = rng.standard_normal(centre.shape)
        lo, hi = self.law.params[name].support
        if np.isfinite(lo) and np.isfinite(hi):
            u = np.log((centre - lo) / (hi - centre))
            return lo + (hi - lo) / (1 + np.exp(-(u + spread * z)))
        if np.isfinite(lo):
            return lo + np.exp(np.log(centre - lo) + spread * z)
        if np.isfinite(hi):
            return hi - np.exp(np.log(hi - centre) + spread * z)
        return centre + spread * z

    def mean_draws(self, new: Any, seed: int = 0, from_fit: Fit | None = None) -> np.ndarray:
        """The law's value at each new row for every posterior draw: shape (S, n). No observation noise.

        With `from_fit`, the input named like that fit's target (e.g. `loss`) is taken from its
        posterior-predictive draws at the same rows, so both posteriors' uncertainty flows through.
        """
        upstream = self._upstream_draws(new, from_fit, seed) if from_fit is not None else {}
        return self._mean(self._inputs(new, skip=tuple(upstream)), upstream, seed)

    def _mean(
        self, frame: pd.DataFrame, upstream: Mapping[str, np.ndarray], seed: int, drift: bool = True
    ) -> np.ndarray:
        """mean_draws on checked inputs, with any chained inputs already drawn (shape (S, n) each); `drift=False`
        leaves out the extrapolation discrepancy (the law alone)."""
        rng = np.random.default_rng(seed)
        params = self._param_draws(frame, rng)
        inputs = {k: upstream[k] if k in upstream else frame[k].to_numpy(dtype=float)[None, :] for k in self.law.inputs}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mean = np.broadcast_to(self.law.mean(params, inputs, self.constants), (self.n_draws, len(frame)))
        # chained inputs enter the distance and the walk at their median over the upstream draws
        columns = frame.assign(**{k: np.median(v, 0) for k, v in upstream.items()})
        if drift and _discrepancy.is_active(self.meta.get("discrepancy", 0.0)):
            shift = _discrepancy.shift_draws(self.meta["discrepancy"], self.drift_distance(columns), self.n_draws, seed)
            mean = mean * np.exp(shift)
        if drift and self.meta.get("walk"):  # the learned discrepancy, continued beyond the fitted range
            pos = _walk.position(columns, self.law.inputs)
            walk_rng = np.random.default_rng([seed, 104729])
            lo, hi = self.meta["walk"]
            mean = mean * np.exp(_walk.offsets(self.draws("walk_delta"), self.draws("walk_tau"), pos, lo, hi, walk_rng))
        return mean

    def distance(self, new: Any, span_power: float = 0.0) -> np.ndarray:
        """E-folds beyond the fitted runs along the worst axis: log compute (log N D for laws of N and D), any
        single input (its largest fitted value, smallest for an input the law file marks `[extrapolation] x =
        "down"`) and tokens per parameter (both ends of the fitted range). 0 inside the data on every axis.
        `span_power` divides each axis's e-folds by the fitted span along it to that power (`drift_distance`)."""
        frame = new if isinstance(new, pd.DataFrame) else self._inputs(new)
        return _discrepancy.distance(self.law, self.meta.get("frontier", {}), frame, span_power)

    def drift_distance(self, new: Any) -> np.ndarray:
        """The distance the extrapolation drift grows with: `distance` at the learned span power (plain e-folds for
        a fixed drift)."""
        return self.distance(new, _discrepancy.span_power_of(self.meta.get("discrepancy", 0.0)))

    def noise_sd(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """Per draw, the sd of a Gaussian with the run noise's interquartile range (log target): (S,). For a law
        whose noise scales with its level ([noise] power), at the fitted runs' mean level, or the rms over the
        rows of `frame`."""
        factor = _discrepancy.noise_factor(self.spec.likelihood, self.spec.nu)
        if self.law.noise_power is None or frame is None:
            return self.draws("sigma") * factor
        sigma = self._run_sigma(np.log(self._mean(frame, {}, 0, drift=False)))
        return np.sqrt(np.mean(sigma**2, axis=1)) * factor

    def _run_sigma(self, log_mean: np.ndarray) -> np.ndarray:
        """The noise scale of each row's log target given the law's log-value per draw `log_mean` (S*k, n): sigma,
        times exp(-power (log_mean - reference)) where the law declares a [noise] power; rows cycle the draws."""
        k = log_mean.shape[0] // self.n_draws
        sigma = np.tile(self.draws("sigma"), k)[:, None]
        if self.law.noise_power is None:
            return np.broadcast_to(sigma, log_mean.shape)
        power = np.tile(self.draws("noise_power"), k)[:, None]
        reference = noise_reference(np.log(self.data.frame[self.law.target].to_numpy(dtype=float)))
        return sigma * np.exp(-power * (log_mean - reference))

    def loglik_at(self, frame: pd.DataFrame) -> np.ndarray:
        """Pointwise log density of each row's log-target under each draw of the law alone: (S, n)."""
        return self._loglik(frame, self._mean(frame, {}, 0, drift=False))

    def _loglik(self, frame: pd.DataFrame, mean: np.ndarray) -> np.ndarray:
        """Log density of each row's log-target given the law's value per draw `mean` (S*k, n): (S*k, n).

        `mean` may stack k copies of the posterior (rows cycle through the draws k times)."""
        log_mean = np.log(mean)
        log_y = np.log(frame[self.law.target].to_numpy(dtype=float))[None, :]
        return log_density(log_y, log_mean, self._run_sigma(log_mean), self.spec)

    def _upstream_draws(self, new: Any, from_fit: Fit, seed: int) -> dict[str, np.ndarray]:
        name = from_fit.law.target
        if name not in self.law.inputs:
            raise BayescaleError(
                f"from_fit: that fit predicts {name!r}, but law {self.law.name!r} takes {list(self.law.inputs)}"
            )
        draws = from_fit.predictive_draws(new, seed=seed + 1)
        rng = np.random.default_rng(seed + 2)
        index = (
            rng.permutation(draws.shape[0])[: self.n_draws]
            if draws.shape[0] >= self.n_draws
            else rng.integers(0, draws.shape[0], self.n_draws)
        )
        return {name: draws[index]}

    def predictive_draws(self, new: Any, seed: int = 0, from_fit: Fit | None = None) -> np.ndarray:
        """Posterior-predictive draws of the target at each new row (observation noise included): (S, n)."""
        skip = (from_fit.law.target,) if from_fit is not None else ()
        frame = self._inputs(new, skip=skip)
        upstream = self._upstream_draws(frame, from_fit, seed) if from_fit is not None else {}
        return self._add_noise(self._mean(frame, upstream, seed), seed)

    def _add_noise(self, mean: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        sigma = self._run_sigma(np.log(mean))
        cap = self.law.target_max
        upper = None if cap is None else (np.log(cap) - np.log(mean)) / sigma
        return mean * np.exp(sigma * _noise.draws(rng, mean.shape, self.spec.likelihood, self.spec.nu, upper))

    def _inputs(self, new: Any, skip: tuple[str, ...] = ()) -> pd.DataFrame:
        """Prediction inputs as a checked frame, completing N/D/C from the other two where needed."""
        frame = as_frame(new, []).rename(columns=self._to_roles(new))
        frame = (
            ScalingData(frame, origin="prediction inputs", check=False)
            .with_inputs(self.law.inputs, self.meta.get("flops_per_token_param", 6.0))
            .frame
        )
        return as_frame(frame, [k for k in self.law.inputs if k not in skip])

    def _to_roles(self, new: Any) -> dict[str, str]:
        """Renames of the user's own column names (as in the fitted data) found in `new` to their roles."""
        present = set(new.columns if isinstance(new, pd.DataFrame) else new if isinstance(new, Mapping) else ())
        return {col: role for role, col in self.meta.get("names", {}).items() if col in present and role not in present}

    # --- user-facing ----------------------------------------------------------------------------
    def predict(
        self, new: Any, prob: float | list[float] = 0.9, seed: int = 0, from_fit: Fit | None = None
    ) -> pd.DataFrame:
        """Inputs plus the posterior-predictive median and `prob` band (noise included), the band of the law itself,
        and each row's `distance` beyond the fitted runs (e-folds) and `domain` (inside / extrapolation). A list
        `prob=[0.5, 0.9]` gives columns lower_50, upper_50, lower_90, upper_90 (and mean_...).

        `from_fit` chains laws: e.g. `acc_fit.predict({"N": .., "D": ..}, from_fit=loss_fit)` feeds the
        loss fit's predictive draws into the accuracy law, draw by draw.
        """
        probs = [float(p) for p in np.atleast_1d(prob)]
        if not probs or not all(0 < p < 1 for p in probs):
            raise BayescaleError(f"prob must lie strictly between 0 and 1 (or be a list of such), got {prob}")
        skip = (from_fit.law.target,) if from_fit is not None else ()
        frame = self._inputs(new, skip=skip)
        upstream = self._upstream_draws(frame, from_fit, seed) if from_fit is not None else {}
        mean = self._mean(frame, upstream, seed)
        noisy = self._add_noise(mean, seed)
        out = frame.copy()
        for name, draws in upstream.items():  # the chained input's median, e.g. loss_median
            out[f"{name}_median"] = np.median(draws, axis=0)
        cap = np.inf if self.law.target_max is None else self.law.target_max  # the drift may carry it past the cap
        for prefix, draws in (("", noisy), ("mean_", np.minimum(mean, cap))):  # the run's band, then the law's own
            out[f"{prefix}median"] = np.median(draws, axis=0)
            for p in probs:
                tag = "" if np.ndim(prob) == 0 else f"_{100 * p:g}"
                lower, upper = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
                out[f"{prefix}lower{tag}"], out[f"{prefix}upper{tag}"] = lower, upper
        out["distance"] = self.distance(frame)  # e-folds beyond the fitted runs along the worst axis
        out["domain"] = np.where(out["distance"] > 0, "extrapolation", "inside")
        return out.rename(columns={role: col for col, role in self._to_roles(new).items()})  # names in = names out

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """Posterior mean, sd, HDI at `prob`, R-hat and bulk ESS per parameter, with published values where known."""
        import arviz as az

        table = az.summary(self.idata, var_names=self.var_names, hdi_prob=prob, round_to="none")
        table = table[["mean", "sd", *[c for c in table.columns if c.startswith("hdi_")], "ess_bulk", "r_hat"]]
        published = self.law.published
        if published:
            table["published"] = [published.get(i.split("[")[0], np.nan) for i in table.index]
        table["what"] = [self._explain(i.split("[")[0]) for i in table.index]
        return table

    def _explain(self, name: str) -> str:
        """What a summary row is: a sampled parameter, a quantity derived from them in the paper's units (its
        formula), the run noise, or a population parameter of a pooled one."""
        derived = dict(self.law.derived)
        if name in derived:
            return f"derived, paper's units: {derived[name].source}"
        if name == "sigma":
            return "run noise (sd of log target)" + (" at the runs' mean level" if self.law.noise_power else "")
        if name == "noise_power":
            return "run noise (log units) scales as target^-power"
        if name.endswith(("_mu", "_tau")) and name.rsplit("_", 1)[0] in self.law.params:
            return "population " + ("centre" if name.endswith("_mu") else "spread") + " of a pooled parameter"
        if name == "walk_tau":
            return "walk discrepancy per sqrt(e-fold)"
        reparametrised = any(name in f.names for _, f in self.law.derived) and name not in self.law.published
        if name in self.law.params and reparametrised:  # e.g. a = log A at N0: the paper reports A
            return "sampled (internal scale; see the derived row)"
        return "sampled"

    @property
    def extrapolation_note(self) -> str:
        """How the bands widen beyond the fitted runs, in words (learned or fixed drift scale)."""
        return _discrepancy.describe(self.meta.get("discrepancy", 0.0))

    @property
    def diagnostics(self) -> dict:
        return self.meta["diagnostics"]

    def log_likelihood(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Pointwise log density of each fitted run's log-target (or of the runs at indices `rows`) under each
        draw of the law alone: shape (S, n). Kept with the fit up to STORED_LOGLIK_CELLS draws x runs, otherwise
        computed here (S x n x 8 bytes of memory); the same numbers either way. In a weighted fit each run's log
        density is multiplied by its weight: what the run put into the posterior, so that PSIS-LOO and the
        leave-future-out importance weights take out exactly that."""
        if "log_likelihood" in self.idata.groups():
            kept = self.idata.log_likelihood["obs"].values.reshape(self.n_draws, -1)
            return kept if rows is None else kept[:, rows]
        values = self.loglik_at(self.data.frame if rows is None else self.data.frame.iloc[rows])
        weights = self.data.weights if self.spec.weighted else None
        if weights is not None:
            values = values * (weights if rows is None else weights[rows])[None, :]
        return values

    def idata_with_log_likelihood(self) -> az.InferenceData:
        """The posterior with its pointwise log-likelihood group (as ArviZ's loo needs), computed if not kept."""
        if "log_likelihood" in self.idata.groups():
            return self.idata
        out = self.idata.copy()
        out.add_groups(log_likelihood=self._log_likelihood_group())
        return out

    def _log_likelihood_group(self) -> Any:
        import xarray as xr

        post = self.idata.posterior
        loglik = self.log_likelihood().reshape(post.sizes["chain"], post.sizes["draw"], -1)
        return xr.Dataset({"obs": (("chain", "draw", "run"), loglik)})

    def save(self, path: str | Path) -> Path:
        """Write the fit (posterior, data, law file, options) to netCDF atomically: temp file, then rename."""
        path = check_output_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            idata = self.idata.copy()
            idata.posterior.attrs["bayescale"] = json.dumps(self.meta)
            if "log_likelihood" in idata.groups():  # draws x runs: half the file in float32, ample for PSIS-LOO
                idata.log_likelihood["obs"] = idata.log_likelihood["obs"].astype("float32")
            idata.to_netcdf(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # as any new file: colleagues may read it where the umask allows
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    # --- allocation and plotting live in their own modules -------------------------------------------
    def allocate(
        self,
        compute: float | list[float],
        prob: float = 0.9,
        flops_per_token_param: float = 6.0,
        inference_tokens: float = 0.0,
        fixed: Mapping[str, float] | None = None,
        method: str = "auto",
    ) -> Any:
        """Compute-optimal N*, D*, tokens per parameter and loss per budget, with intervals (see bayescale.allocate)."""
        from bayescale.allocate import allocate

        return allocate(
            self,
            compute,
            prob=prob,
            flops_per_token_param=flops_per_token_param,
            inference_tokens=inference_tokens,
            fixed=fixed,
            method=method,
        )

    def suggest(self, target: Mapping[str, float], **options: Any) -> Any:
        """The next runs to train: the batch that most narrows `target` per FLOP (bayescale.design.suggest)."""
        from bayescale.design import suggest

        return suggest(self, target, **options)

    def update(self, new_runs: ScalingData | pd.DataFrame, progress: bool = False) -> Fit:
        """Refit on these runs plus `new_runs` with every setting of this fit (law, sampler, draws, seed, groups,
        discrepancy); the compiled law is reused. Suggest, train, update: the loop of a progressive sweep."""
        new = new_runs.frame if isinstance(new_runs, ScalingData) else as_frame(new_runs, [])
        new = new.rename(columns=self._to_roles(new))
        columns = list(self.data.frame.columns)
        missing = [c for c in columns if c not in new]
        if missing:
            raise BayescaleError(f"new runs lack column(s) {missing}; the fitted runs have {columns}")
        union = pd.concat([self.data.frame, new[columns]], ignore_index=True)
        m = self.meta
        modes = {k: v for k, v in m.get("modes", {}).items() if v != "shared"}
        return fit(
            self.law,
            ScalingData(union, origin=f"{self.data.origin} + {len(new)} new runs", names=self.data.names),
            draws=m["draws"],
            tune=m["tune"],
            chains=m["chains"],
            seed=m["seed"],
            likelihood=m["likelihood"],
            nu=m["nu"],
            groups=modes or None,
            pooling=m["pooling"],
            sampler=m["sampler"],
            progress=progress,
            flops_per_token_param=m.get("flops_per_token_param", 6.0),
            discrepancy=_discrepancy.option_of(m.get("discrepancy", 0.0)),
            walk=bool(m.get("walk")),
        )

    def target_loss(self, target: float, prob: float = 0.9, **kwargs: Any) -> pd.DataFrame:
        """The cheapest compute (and N, D) reaching `target` loss with probability `prob`."""
        from bayescale.allocate import target_loss

        return target_loss(self, target, prob=prob, **kwargs)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Data, fitted curves and bands (see bayescale.plots.plot_fit)."""
        from bayescale.plots import plot_fit

        return plot_fit(self, ax=ax, **kwargs)


def fit(
    law: str | Path | Law,
    data: ScalingData | pd.DataFrame,
    *,
    draws: int | None = None,
    tune: int | None = None,
    chains: int = 4,
    seed: int = 0,
    likelihood: Likelihood = "student_t",
    nu: float = 4.0,
    groups: Mapping[str, Mode] | None = None,
    pooling: str = "centred",
    sampler: Sampler | None = None,
    progress: bool = True,
    flops_per_token_param: float = 6.0,
    discrepancy: float | str | None = None,
    walk: bool | None = None,
    method: str = "nuts",
    priors: Mapping[str, Mapping[str, Any]] | None = None,
    fixed: Mapping[str, float] | None = None,
    tie: Mapping[str, str] | None = None,
    **sampler_kwargs: Any,
) -> Fit | PointFit:
    """Fit a scaling law to runs with NUTS and return the posterior as a `Fit`.

    `law` is a catalogue name (see `laws()`) or a path to a TOML law file. The likelihood is on
    log(target) (multiplicative noise), Student-t with `nu` = 4 by default because real sweeps have
    outlying runs (on the Chinchilla replication data a Gaussian likelihood drags beta from 0.37 to 0.61);
    `likelihood="normal"` gives the plain log-normal model. `groups` maps a
    parameter to "shared" (default), "separate" (one per group) or "pooled" (per group, partially pooled;
    `pooling="non-centred"` for groups with very few runs each).

    `sampler` defaults to the law file's [sampling] choice, else "nutpie": nutpie's NUTS on PyTensor C code
    compiled once per law per machine (a new process loads it from disk). "nutpie-numba" compiles with Numba
    in every new process (~10 s) but samples 2-8x faster: the better choice for long fits or many refits of
    one law in one process (bench/nuts.py). "pymc" and "numpyro" run through pm.sample. `draws` and `tune`
    default to 1000 each per chain, or 500 and 300 from 20,000 runs (a posterior that many runs pin down is close
    to Gaussian, and each draw costs more).

    `discrepancy` sets the drift that widens bands beyond the data: "auto" (default) starts from how far
    published laws missed real held-out runs (a prior learned across a corpus of sweeps, bench/corpus.py) and
    updates it by how well the law predicted your own largest runs when they were left out (importance
    sampling from this fit, or one short refit; bayescale._discrepancy); a number fixes the slope scale per
    e-fold (0 = none). `walk=True` adds the
    learned discrepancy of bayescale._walk (README, "Calibration"). The drift acts only when predicting.

    `method="map"` skips sampling and returns a `PointFit` (bayescale.pointfit.map_fit): the Huber-loss
    point estimate of Hoffmann et al. / Besiroglu et al., found by variable projection from one start.

    `priors` replaces some of the law's priors, in the law files' grammar (`{"alpha": {"dist":
    "TruncatedNormal", "mu": 0.3, "sigma": 0.1, "lower": 0}}`); `fixed` fixes parameters to numbers
    (`{"E": 1.69}`) or sets a law's numeric constant (`{"vocab": 32000}`); `tie` makes one parameter take
    another's value (`{"beta": "alpha"}`). All are checked like a law file and saved with the fit
    (bayescale.laws.adjusted).
    """
    the_law = adjusted(get_law(law), priors=priors, fixed=fixed, tie=tie)
    if method == "map":
        if groups:
            raise BayescaleError("method='map' fits shared parameters only; drop groups= or use method='nuts'")
        if WEIGHT in (data.frame if isinstance(data, ScalingData) else data).columns:
            raise BayescaleError(
                "method='map' does not take run weights; drop the 'weight' column or use method='nuts'"
            )
        from bayescale.pointfit import map_fit

        return map_fit(the_law, data, flops_per_token_param=flops_per_token_param)
    if method != "nuts":
        raise BayescaleError(f"method must be 'nuts' or 'map', got {method!r}")
    data = _prepare(the_law, data, flops_per_token_param)
    options = _options(the_law, draws, tune, chains, seed, sampler, discrepancy, walk, sampler_kwargs, len(data))
    options |= dict(likelihood=likelihood, nu=nu, groups=groups, pooling=pooling, progress=progress)
    options["flops_per_token_param"] = flops_per_token_param
    design = diagnostics.design(the_law, data.frame)  # said before sampling: the runs decide what a fit can show
    diagnostics.warn(design, f"fit of {the_law.name!r}")
    phases = Phases(progress, f"fit of {the_law.name!r} to {len(data)} runs")
    with phases(f"sampling {options['chains']} chains x ({options['tune']} tune + {options['draws']} draws)"):
        result = _sample(the_law, data, options)
    report = result.meta["diagnostics"]
    diagnostics.warn(report["findings"], f"fit of {the_law.name!r}")
    result.meta["diagnostics"] = diagnostics.with_problems(report | {"findings": design + report["findings"]})
    if options["discrepancy"] == "auto":
        with phases("learning the extrapolation error (leave-future-out)"):
            result.meta["discrepancy"] = _learn_discrepancy(result, options)
    return result


def log_density(log_y: np.ndarray, log_mean: np.ndarray, sigma: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The likelihood's log density of log-targets `log_y` given the law's log-values and the noise scale (arrays
    broadcast against each other): Student-t with spec.nu degrees of freedom, or Gaussian; truncated at the law's
    target_max where it has one."""
    cap = spec.law.target_max
    upper = None if cap is None else (np.log(cap) - log_mean) / sigma
    return _noise.log_density((log_y - log_mean) / sigma, sigma, spec.likelihood, spec.nu, upper)


def check_output_path(path: str | Path) -> Path:
    """The path a fit will be saved to, checked before any sampling: not a folder, and under a folder that exists
    (or can be made) and is writable. Raises a BayescaleError naming what is in the way."""
    path = Path(path)
    if path.is_dir():
        raise BayescaleError(f"cannot save the fit to {path}: it is a folder; give a file name such as {path}/fit.nc")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BayescaleError(f"cannot save the fit to {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise BayescaleError(f"cannot save the fit to {path}: no permission to write in {parent}")
            break
    return path


def _umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _options(
    law: Law,
    draws: int | None,
    tune: int | None,
    chains: int,
    seed: int,
    sampler: str | None,
    discrepancy: float | str | None,
    walk: bool | None,
    sampler_kwargs: dict[str, Any],
    n_runs: int,
) -> dict[str, Any]:
    """The settings of a fit: the caller's, then the law file's [sampling] table, then the defaults; checked.
    From LARGE_RUNS runs the default draws are fewer (LARGE_DRAWS): the cost of a draw grows with the runs, the
    draws a posterior needs do not, and one that many runs pin down is close to Gaussian."""
    sampler = sampler or law.sampling.get("sampler", "nutpie")
    if sampler not in get_args(Sampler):
        raise BayescaleError(f"sampler must be one of {', '.join(get_args(Sampler))}, got {sampler!r}")
    discrepancy = DEFAULT_DISCREPANCY if discrepancy is None else discrepancy
    if discrepancy != "auto" and (not isinstance(discrepancy, int | float) or discrepancy < 0):
        raise BayescaleError(
            f"discrepancy must be 'auto' or a number >= 0 (the drift's slope scale), got {discrepancy!r}"
        )
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1):
            raise BayescaleError(f"{name} must be a whole number >= 1, got {value!r}")
    if "target_accept" in law.sampling and sampler.startswith("nutpie"):
        sampler_kwargs = {"target_accept": law.sampling["target_accept"], **sampler_kwargs}
    defaults = LARGE_DRAWS if n_runs >= LARGE_RUNS else DEFAULT_DRAWS
    return {
        "draws": law.sampling.get("draws", defaults["draws"]) if draws is None else draws,
        "tune": law.sampling.get("tune", defaults["tune"]) if tune is None else tune,
        "chains": chains,
        "seed": seed,
        "sampler": sampler,
        "discrepancy": discrepancy if discrepancy == "auto" else float(discrepancy),
        "walk": DEFAULT_WALK if walk is None else bool(walk),
        "sampler_kwargs": dict(sampler_kwargs),
    }


def _refitter(result: Fit, options: dict[str, Any]) -> Any:
    """The short refit on a subset of `result`'s runs that the learning uses where importance sampling fails: a
    quarter of the draws and half the tuning, since it only scores held-out runs; its start search begins at
    `result`'s posterior median (one search, not twelve), and it skips the checks no one reads."""
    inner = options | {"discrepancy": 0.0, "progress": False, "init": result.idata.posterior, "checks": False}
    inner |= {"draws": max(200, options["draws"] // 4), "tune": max(300, options["tune"] // 2)}

    def refit(mask: np.ndarray) -> Fit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _sample(result.law, result.data.subset(mask), inner)

    return refit


def _prepare(law: Law, data: ScalingData | pd.DataFrame, flops_per_token_param: float) -> ScalingData:
    """The runs as checked ScalingData holding every input the law needs (D from N and C, and so on)."""
    if isinstance(data, pd.DataFrame):
        data = ScalingData.from_frame(data)
    data = data.with_inputs(law.inputs, flops_per_token_param)
    data.check_for(law)
    return data


def _sample(law: Law, data: ScalingData, options: dict[str, Any]) -> Fit:
    """Build the model, run NUTS and wrap the posterior as a Fit with no learned discrepancy yet."""
    from bayescale._sampling import run

    o = options
    spec = make_spec(
        law, data, likelihood=o["likelihood"], nu=o["nu"], groups=o["groups"], pooling=o["pooling"], walk=o["walk"]
    )
    arrays = data_arrays(spec, data)
    constants = {k[2:]: float(v) for k, v in arrays.items() if k.startswith("c_")}
    start = time.perf_counter()
    idata, findings = run(
        spec,
        arrays,
        draws=o["draws"],
        tune=o["tune"],
        chains=o["chains"],
        seed=o["seed"],
        sampler=o["sampler"],
        progress=o["progress"],
        init=o.get("init", "map"),
        **o["sampler_kwargs"],
    )
    seconds = time.perf_counter() - start
    idata = _finish(idata, spec, data, constants)
    meta = {
        "format": FORMAT_VERSION,
        "law_name": law.name,
        "law_source": law.source,
        "law_path": law.path,
        "constants": constants,
        **{k: o[k] for k in ("likelihood", "nu", "pooling", "seed", "sampler", "draws", "tune", "chains")},
        "groups": list(spec.groups),
        "modes": dict(spec.modes),
        "flops_per_token_param": o["flops_per_token_param"],
        "seconds": seconds,
        "discrepancy": 0.0 if o["discrepancy"] == "auto" else o["discrepancy"],
        "walk": list(_walk.knot_range(_walk.position(data.frame, law.inputs))) if o["walk"] else None,
        "frontier": _discrepancy.frontier(law, data.frame),
        "names": data.names,
        "weighted": spec.weighted,
    }
    result = Fit(law, idata, spec, constants, data, meta)
    if not o.get("checks", True):  # a refit inside the learning: only its draws are read, nobody sees its findings
        return result
    if result.n_draws * len(data) <= STORED_LOGLIK_CELLS:  # kept for LOO; larger fits compute it when asked
        idata.add_groups(log_likelihood=result._log_likelihood_group())
    report = diagnostics.check(idata, result.var_names)
    if "sigma" in idata.posterior:  # first: it explains the sampling problems that follow from it
        report["findings"] = diagnostics.noise_free(result.draws("sigma")) + report["findings"]
    report["findings"] += [diagnostics.finding("multimodal", text) for text in findings]
    report["findings"] += diagnostics.identification(law, {p: result.draws(p) for p in law.params}, constants)
    report["findings"] += _contradicting_runs(result)
    meta["diagnostics"] = diagnostics.with_problems(report)
    return result


def _contradicting_runs(result: Fit) -> list[dict]:
    """diagnostics.contradictions at the posterior median, with each run's median noise scale (ungrouped fits)."""
    frame = result.data.frame
    if result.spec.groups or len(frame) > diagnostics.CONTRADICTION_MAX_RUNS:
        return []
    params = {p: float(np.median(result.draws(p))) for p in result.law.params}
    sigma = np.median(result._run_sigma(np.log(result._mean(frame, {}, 0, drift=False))), axis=0)
    return diagnostics.contradictions(result.law, frame, params, result.constants, sigma)


def _learn_discrepancy(result: Fit, options: dict[str, Any]) -> dict[str, Any]:
    """Learn the extrapolation error by leave-future-out inside the fitted runs (bayescale._discrepancy); the
    refits it may need are short (a quarter of the draws, half the tuning) since they only score held-out runs."""
    start = time.perf_counter()
    setting = _discrepancy.learn(result, result.data.frame, _refitter(result, options))
    setting["seconds"] = time.perf_counter() - start
    if _discrepancy.is_poor(setting):
        warnings.warn(
            f"fit of {result.law.name!r}: {_discrepancy.describe(setting)} The law predicts your own largest runs "
            "poorly, so bands beyond the data widen fast; compare other laws (bayescale.compare(..., method='lfo')).",
            stacklevel=3,
        )
    return setting


def _finish(
    idata: az.InferenceData, spec: ModelSpec, data: ScalingData, constants: dict[str, float]
) -> az.InferenceData:
    """Keep what a fit needs: posterior (+ derived quantities), sample stats, the runs."""
    import arviz as az
    import xarray as xr

    law = spec.law
    post = idata.posterior
    keep = [v for v in post.data_vars if not v.endswith(("_z", "_u"))]
    post = post[keep]
    for name, value in law.derived_values({k: post[k] for k in law.params}, constants).items():
        post[name] = value
    runs = {
        c: ("run", data.frame[c].to_numpy() if c != GROUP else data.frame[c].astype(str).to_numpy())
        for c in data.frame.columns
    }
    groups = {"posterior": post, "sample_stats": idata.sample_stats, "constant_data": xr.Dataset(runs)}
    return az.InferenceData(**groups)


def load(path: str | Path) -> Fit:
    """Read a fit written by `Fit.save`; predictions from it match the original exactly."""
    import arviz as az

    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"no saved fit at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = az.from_netcdf(path)
        idata = idata.map(lambda ds: ds.load())
        meta = json.loads(idata.posterior.attrs["bayescale"])
    except (OSError, KeyError, ValueError) as exc:
        raise FitFileError(f"{path} is not a bayescale fit ({type(exc).__name__}: {exc})") from None
    import tomllib

    the_law = from_spec(tomllib.loads(meta["law_source"]), meta["law_path"], meta["law_source"])
    runs = idata.constant_data.to_dataframe().reset_index(drop=True)
    data = ScalingData(runs, origin=str(path), check=False)
    spec = ModelSpec(
        law=the_law,
        likelihood=meta["likelihood"],
        nu=meta["nu"],
        groups=tuple(meta["groups"]),
        modes=tuple(sorted(meta["modes"].items())),
        pooling=meta.get("pooling", "centred"),
        walk=bool(meta.get("walk")),
        weighted=bool(meta.get("weighted")),
    )
    return Fit(the_law, idata, spec, meta["constants"], data, _upgrade(meta))


def _upgrade(meta: dict[str, Any]) -> dict[str, Any]:
    """Read a format-1 fit's options as format 2: its drift keeps the half-normal x normal slope it was saved with.
    Fits saved before coded diagnostics get their problems as findings of code "sampling"."""
    report = meta.get("diagnostics", {})
    if "findings" not in report:
        report["findings"] = [diagnostics.finding("sampling", text) for text in report.get("problems", [])]
    if meta.get("format", 1) >= 2:
        return meta
    setting = meta.get("discrepancy", 0.0)
    if isinstance(setting, dict):
        meta["discrepancy"] = setting | {"slope": "halfnormal-normal"}
    elif setting:
        meta["discrepancy"] = {"scales": [setting], "offsets": [0.0], "weights": [1.0], "fixed": True}
        meta["discrepancy"]["slope"] = "halfnormal-normal"
    return meta
