"""Fitting, prediction, diagnostics, reproducibility and save/load of fits."""

import importlib
import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.simulate import chinchilla_runs
from tests.conftest import FAST, SMALL, shared_path

NEW = pd.DataFrame({"N": [7e10, 1e9, 3e9], "D": [1.4e12, 2e10, 6e10]})


def test_summary_columns_and_published(chinchilla_fit):
    table = chinchilla_fit.summary(prob=0.9)
    assert {"mean", "sd", "hdi_5%", "hdi_95%", "r_hat", "ess_bulk", "published"} <= set(table.columns)
    assert {"E", "alpha", "beta", "A", "B", "sigma"} <= set(table.index)
    assert table.loc["A", "published"] == 406.4
    assert table.loc["alpha", "hdi_5%"] < 0.34 < table.loc["alpha", "hdi_95%"]


def test_predict_bands_are_ordered_and_cover_the_truth(chinchilla_fit):
    pred = chinchilla_fit.predict(NEW, prob=0.9)
    assert list(pred.columns[:2]) == ["N", "D"]
    # run noise widens the law's band; far out, where the extrapolation error dominates, only by Monte Carlo error
    assert (pred.lower < pred.mean_lower * 1.002).all() and (pred.mean_upper < pred.upper * 1.002).all()
    assert (pred.lower < pred["median"]).all() and (pred["median"] < pred.upper).all()
    law = bs.law("chinchilla")
    truth = law.mean(
        {k: p.value for k, p in law.params.items()}, {"N": NEW.N.values, "D": NEW.D.values}, {"N0": 1e9, "D0": 1e11}
    )
    assert ((pred.mean_lower < truth) & (truth < pred.mean_upper)).all(), (pred, truth)


def test_prediction_is_vectorised_and_fast(chinchilla_fit, monkeypatch):
    """4000 draws x 1000 points in a few whole-array law evaluations, no per-draw or per-row Python loop (the
    mechanism, not seconds: the machines are shared)."""
    from bayescale.laws import Law

    grid = pd.DataFrame({"N": np.geomspace(1e8, 1e11, 1000), "D": np.geomspace(1e9, 1e13, 1000)})
    calls = []
    real = Law.mean

    def counted(self, params, inputs, constants):
        out = real(self, params, inputs, constants)
        calls.append(np.size(out))
        return out

    monkeypatch.setattr(Law, "mean", counted)
    pred = chinchilla_fit.predict(grid)
    assert len(pred) == 1000
    assert 1 <= len(calls) <= 3 and max(calls) >= chinchilla_fit.n_draws * 1000, calls


def test_same_seed_same_posterior(chinchilla_data, chinchilla_fit):
    """Also across process counts: each chain is seeded by (seed, chain), so chains sampled in forked processes
    (the default on Linux) and all in this process (cores=1) are the same draws."""
    from bayescale._sampling import _can_fork, _cores

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert _cores("nutpie", 4) == (min(4, usable) if _can_fork() else 1)
    again = bs.fit("chinchilla", chinchilla_data, seed=1, **FAST, cores=1)
    np.testing.assert_array_equal(again.draws("alpha"), chinchilla_fit.draws("alpha"))
    other = bs.fit("chinchilla", chinchilla_data, seed=2, **FAST)
    assert not np.array_equal(other.draws("alpha"), chinchilla_fit.draws("alpha"))


def test_refit_reuses_the_compiled_model(monkeypatch, chinchilla_data, chinchilla_fit):
    """A refit on other data of the same law compiles nothing (the mechanism; timings live in bench/)."""
    from bayescale import _compiled

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled again although the law was compiled in this process")

    monkeypatch.setattr(_compiled, "_compile", no_compile)
    part = bs.fit("chinchilla", chinchilla_data.subset(np.arange(len(chinchilla_data)) < 120), seed=3, **FAST)
    assert len(part.data) == 120


def test_compiled_law_is_kept_on_disk_and_reloaded(tmp_path, monkeypatch, chinchilla_data, chinchilla_fit):
    """A new process (here: an emptied in-memory cache) loads the compiled law instead of compiling it."""
    from bayescale import _compiled
    from bayescale._sampling import clear_cache

    monkeypatch.setenv("BAYESCALE_CACHE", str(tmp_path))
    clear_cache()
    bs.fit("chinchilla", chinchilla_data, seed=1, **FAST)  # compiles once, writes the cache file
    assert len(list(tmp_path.glob("*.pkl"))) == 1
    clear_cache()

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled again although the law was cached on disk")

    monkeypatch.setattr(_compiled, "_compile", no_compile)
    again = bs.fit("chinchilla", chinchilla_data, seed=1, **FAST)
    np.testing.assert_array_equal(again.draws("alpha"), chinchilla_fit.draws("alpha"))  # same seed, same draws


LOAD_THEN_COMPILE = """
import sys, warnings
import bayescale as bs
from bayescale.simulate import design_runs
from pytensor.link.c import cmodule
from pytensor.link.c.basic import CLinker
walks = []  # ModuleCache.refresh reads the key file of every module in PyTensor's compile directory
refresh = cmodule.ModuleCache.refresh
cmodule.ModuleCache.refresh = lambda self, *a, **k: (walks.append(1), refresh(self, *a, **k))[1]
keys = []  # CLinker.cmodule_key probes the compiler (gcc subprocesses) to find the module
cmodule_key = CLinker.cmodule_key
CLinker.cmodule_key = lambda self: (keys.append(1), cmodule_key(self))[1]
opts = dict(draws=20, tune=20, chains=2, seed=0, progress=False, discrepancy=0.0)
bs.fit("power", design_runs("power", seed=0), **opts)
print("WALKS", len(walks))
print("KEYS", len(keys))
print("PYMC", int("pymc" in sys.modules))
if sys.argv[1:]:
    bs.fit("kaplan", design_runs("kaplan", seed=0), **opts)
    print("WALKS", len(walks))
"""


def test_a_cached_law_loads_without_walking_the_compile_directory(tmp_path):
    """A new process loading a cached law tells PyTensor's module cache where its C module is, instead of letting
    it read every entry of the compile directory first (2.5 s with ~300 entries); it neither recomputes the module's
    key nor imports PyMC. A law compiled later in the same process still finds or builds its module as usual (the
    cache then reads the directory once)."""
    import subprocess
    import sys

    env = os.environ | {"BAYESCALE_CACHE": str(tmp_path)}

    def run(*args: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", LOAD_THEN_COMPILE, *args], env=env, capture_output=True, text=True)
        assert out.returncode == 0 and "cache key" not in out.stderr, out.stderr[-3000:]
        return [int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith(("WALKS", "KEYS", "PYMC"))]

    run()  # compiles power into the empty bayescale cache
    loaded, keys, pymc, compiled = run("then compile another law")
    assert loaded == 0 and compiled >= 1
    assert keys == 0  # the module key is stored with the law (the file name holds the versions and the processor)
    assert pymc == 0  # the stored graph holds no PyMC op: importing PyMC would cost ~0.2 s (and change the key)


def test_density_is_one_c_module_and_the_trace_is_completed_without_c(chinchilla_fit):
    """The mechanism behind a fast first fit: logp and gradient are one C module for the whole graph (one gcc
    call, no per-node dispatch), and the constrained parameters are computed for all draws at once after sampling
    by a function without C code. Checked against the transforms, draw by draw and chain by chain."""
    from pytensor.link.c.basic import CLinker

    from bayescale import _compiled

    funcs = _compiled.c_functions(chinchilla_fit.spec, {})
    assert isinstance(funcs.logp.maker.linker, CLinker)
    assert not funcs.expand_draws.maker.linker.c_thunks and not funcs.support_point.maker.linker.c_thunks
    post = chinchilla_fit.idata.posterior
    assert post["sigma"].dims == ("chain", "draw") and post["sigma"].shape == post["sigma_log__"].shape
    np.testing.assert_allclose(post["sigma"].values, np.exp(post["sigma_log__"].values), rtol=1e-12)
    low, high = (
        chinchilla_fit.law.params["alpha"].prior.resolve(chinchilla_fit.constants)[k] for k in ("lower", "upper")
    )
    expit = 1 / (1 + np.exp(-post["alpha_interval__"].values))
    np.testing.assert_allclose(post["alpha"].values, low + (high - low) * expit, rtol=1e-10)


def test_the_loop_over_runs_does_not_redo_work_that_depends_on_the_data_alone(chinchilla_fit):
    """Parts of the density that depend on the runs alone (chinchilla's log(N / N0) and log(D / D0)) are computed
    once per fit, when the data are set: no per-run operation of the compiled gradient is free of the parameters.
    The density and its gradient are PyMC's own, and follow new data (another fit's runs)."""
    from bayescale import _compiled
    from bayescale._model import build, data_arrays

    funcs = _compiled.c_functions(chinchilla_fit.spec, data_arrays(chinchilla_fit.spec, chinchilla_fit.data))
    assert len(funcs.data_term_names) >= 2
    graph = funcs.logp.maker.fgraph
    moves = {graph.inputs[0]}  # the flat parameter point
    for node in graph.toposort():
        if any(i in moves for i in node.inputs):
            moves.update(node.outputs)
        else:
            assert all(o.type.shape == (1,) * o.type.ndim for o in node.outputs), node  # scalars only

    fewer = chinchilla_fit.data.subset(np.arange(len(chinchilla_fit.data)) % 3 == 0)
    arrays = data_arrays(chinchilla_fit.spec, fewer)
    funcs = _compiled.c_functions(chinchilla_fit.spec, arrays)
    model = build(chinchilla_fit.spec, arrays)
    x = funcs.initial_point(3)
    logp, grad = funcs.logp(x)
    np.testing.assert_allclose(logp, model.compile_logp()(funcs.split(x)), rtol=1e-12)
    np.testing.assert_allclose(grad, model.compile_dlogp()(funcs.split(x)), rtol=1e-10)
    _compiled.c_functions(chinchilla_fit.spec, data_arrays(chinchilla_fit.spec, chinchilla_fit.data))  # as it was


def test_a_graph_without_c_code_falls_back_and_an_unpicklable_one_only_skips_the_cache(tmp_path, monkeypatch):
    """A law whose graph the whole-graph C linker refuses is compiled op by op; a compiled law that cannot be pickled
    is not cached, and no temporary file is left behind (the fit goes on)."""
    import pickle

    from bayescale import _compiled

    modes = []

    def compile_pymc(inputs, outputs, mode):
        modes.append(mode)
        if not isinstance(mode, str):
            raise NotImplementedError("an op without C code")
        return "per-op function"

    assert _compiled._compile_logp(compile_pymc, None, None, None) == "per-op function"
    assert modes[-1] == "FAST_RUN" and len(modes) == 2

    def refuse(fh):
        raise pickle.PicklingError("an op that does not pickle")

    monkeypatch.setattr(_compiled, "_module_dir", lambda fn: None)  # the header pickles; the law itself does not
    monkeypatch.setattr(_compiled, "_pickler", refuse)
    _compiled._save(object(), tmp_path / "law.pkl")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_compile_cache_is_rebuilt(tmp_path, monkeypatch, chinchilla_data):
    from bayescale._sampling import clear_cache

    monkeypatch.setenv("BAYESCALE_CACHE", str(tmp_path))
    clear_cache()
    bs.fit("chinchilla", chinchilla_data, seed=1, draws=50, tune=50, chains=2, progress=False)
    (cached,) = tmp_path.glob("*.pkl")
    cached.write_bytes(b"not a pickle")  # e.g. a machine that died mid-write with another tool
    clear_cache()
    result = bs.fit("chinchilla", chinchilla_data, seed=1, draws=50, tune=50, chains=2, progress=False)
    assert np.isfinite(result.draws("alpha")).all()
    assert cached.read_bytes() != b"not a pickle"
    clear_cache()


def test_numba_backend_gives_a_posterior_like_the_default(chinchilla_data, chinchilla_fit):
    other = bs.fit("chinchilla", chinchilla_data, seed=1, sampler="nutpie-numba", **FAST)
    for name in ("alpha", "beta", "E"):
        a, b = chinchilla_fit.draws(name), other.draws(name)
        assert abs(np.median(a) - np.median(b)) < 0.25 * np.std(a), name


def test_predict_says_how_far_out_and_gives_several_bands(chinchilla_fit):
    out = chinchilla_fit.predict(NEW, prob=[0.5, 0.9])
    assert {"lower_50", "upper_50", "lower_90", "upper_90", "mean_lower_90"} <= set(out.columns)
    assert (out.lower_90 < out.lower_50).all() and (out.lower_50 < out["median"]).all()
    assert (out["median"] < out.upper_50).all() and (out.upper_50 < out.upper_90).all()
    assert out["domain"].tolist() == ["extrapolation", "inside", "inside"], out[["N", "D", "distance"]]
    assert out["distance"].iloc[0] > 1 and (out["distance"].iloc[1:] == 0).all()
    single = chinchilla_fit.predict(NEW, prob=0.9)
    np.testing.assert_allclose(single["upper"], out["upper_90"])


def test_progress_in_words_when_not_in_a_terminal(chinchilla_data, capfd):
    """A logged or piped fit says what it is doing, phase by phase, with elapsed time (stderr is not a terminal)."""
    bs.fit("chinchilla", chinchilla_data, draws=50, tune=50, chains=1, progress=True, discrepancy=0.0)
    err = capfd.readouterr().err
    assert "bayescale fit of 'chinchilla' to 150 runs: sampling 1 chains x (50 tune + 50 draws) ..." in err, err
    assert "sampling 1 chains x (50 tune + 50 draws) done in" in err, err


def test_summary_says_what_each_row_is(chinchilla_fit):
    what = chinchilla_fit.summary()["what"]
    assert what["a"] == "sampled (internal scale; see the derived row)" and what["alpha"] == "sampled"
    assert what["A"] == "derived, paper's units: exp(a) * N0**alpha" and what["sigma"].startswith("run noise")


def test_save_load_round_trip_identical(tmp_path, chinchilla_fit):
    path = chinchilla_fit.save(tmp_path / "fit.nc")
    loaded = bs.load(path)
    pd.testing.assert_frame_equal(loaded.predict(NEW), chinchilla_fit.predict(NEW))
    pd.testing.assert_frame_equal(loaded.summary(), chinchilla_fit.summary())
    assert loaded.law.name == "chinchilla" and len(loaded.data) == len(chinchilla_fit.data)
    assert loaded.diagnostics == chinchilla_fit.diagnostics


def test_saved_fit_follows_the_umask(tmp_path, chinchilla_fit):
    """A fit is written through a private temporary file; the result is readable as any new file would be."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = chinchilla_fit.save(tmp_path / "shared.nc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_bad_sampling_numbers_are_rejected_before_sampling(chinchilla_data):
    for option, value in (("draws", 0), ("chains", 0), ("tune", -5), ("draws", 2.5)):
        with pytest.raises(bs.BayescaleError, match=rf"{option} must be a whole number >= 1, got {value}"):
            bs.fit("chinchilla", chinchilla_data, progress=False, **{option: value})


def test_output_path_is_checked_before_fitting(tmp_path):
    from bayescale.fit import check_output_path

    blocker = tmp_path / "runs.csv"
    blocker.write_text("x")
    with pytest.raises(bs.BayescaleError, match="runs.csv is a file, not a folder"):
        check_output_path(blocker / "sub" / "fit.nc")
    with pytest.raises(bs.BayescaleError, match="it is a folder"):
        check_output_path(tmp_path)
    assert check_output_path(tmp_path / "new" / "fit.nc") == tmp_path / "new" / "fit.nc"


def test_saved_pointwise_loglik_is_float32_and_loo_unchanged(tmp_path, chinchilla_fit):
    """The pointwise log-likelihood (draws x runs) is most of a saved fit: stored in float32, LOO is unchanged."""
    import arviz as az

    loaded = bs.load(chinchilla_fit.save(tmp_path / "fit.nc"))
    assert loaded.idata.log_likelihood["obs"].dtype == np.float32
    assert chinchilla_fit.idata.log_likelihood["obs"].dtype == np.float64  # the fit in memory is untouched
    before, after = az.loo(chinchilla_fit.idata).elpd_loo, az.loo(loaded.idata).elpd_loo
    assert after == pytest.approx(before, abs=1e-3)


def test_interrupted_save_keeps_the_old_file(tmp_path, chinchilla_fit, monkeypatch):
    path = chinchilla_fit.save(tmp_path / "fit.nc")
    before = path.read_bytes()

    def explode(self, filename, *args, **kwargs):
        with open(filename, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("arviz.InferenceData.to_netcdf", explode)
    with pytest.raises(KeyboardInterrupt):
        chinchilla_fit.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"], "temporary file left behind"
    assert bs.load(path).n_draws == chinchilla_fit.n_draws


def test_load_rejects_non_fits(tmp_path):
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not netcdf")
    with pytest.raises(bs.FitFileError, match="is not a bayescale fit"):
        bs.load(junk)
    with pytest.raises(bs.FitFileError, match="no saved fit"):
        bs.load(tmp_path / "missing.nc")


def test_sampling_problems_are_reported_in_plain_words(chinchilla_data):
    with pytest.warns(bs.SamplingWarning, match=r"few effective draws .* Increase draws"):
        result = bs.fit("chinchilla", chinchilla_data, draws=30, tune=30, chains=2, seed=0, progress=False)
    assert result.diagnostics["problems"]


def test_normal_likelihood_option(chinchilla_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        result = bs.fit("chinchilla", chinchilla_data, likelihood="normal", seed=0, **FAST)
    assert result.meta["likelihood"] == "normal"
    lo, hi = np.quantile(result.draws("beta"), [0.05, 0.95])
    assert lo < 0.28 < hi
    with pytest.raises(bs.BayescaleError, match="likelihood must be"):
        bs.fit("chinchilla", chinchilla_data, likelihood="cauchy", **FAST)


def test_real_chinchilla_replication():
    """The 245 Epoch-extracted Chinchilla runs: the robust fit lands on the replication's values."""
    path = shared_path("chinchilla-epoch", "svg_extracted_data.csv")
    data = bs.ScalingData.from_csv(path, columns={"N": "Model Size", "C": "Training FLOP", "loss": "loss"})
    assert len(data) == 245
    result = bs.fit("chinchilla", data, seed=0, **FAST)
    table = result.summary(prob=0.95)
    assert result.diagnostics["divergences"] == 0 and result.diagnostics["max_rhat"] <= 1.01
    # Besiroglu et al. 2024 on this data (Huber loss, bootstrap): E 1.82, alpha 0.35, beta 0.37
    for name, epoch in {"E": 1.82, "alpha": 0.35, "beta": 0.37}.items():
        assert table.loc[name, "hdi_2.5%"] <= epoch <= table.loc[name, "hdi_97.5%"], (name, table.loc[name])
    # and not on Hoffmann et al.'s beta = 0.28, which the replication could not reproduce
    assert table.loc["beta", "hdi_2.5%"] > 0.28


def test_large_fits_compute_the_pointwise_log_likelihood_when_asked(monkeypatch, tmp_path):
    """Above STORED_LOGLIK_CELLS draws x runs a fit keeps no pointwise log-likelihood (10^6 runs x 4000 draws
    would be 32 GB); `log_likelihood()` and `compare` compute it when asked, with the same numbers."""
    fit_module = importlib.import_module("bayescale.fit")  # `bayescale.fit` the attribute is the function

    data = chinchilla_runs(n=60, noise=0.01, seed=2)
    kept = bs.fit("chinchilla", data, seed=0, discrepancy=0.0, **SMALL)
    monkeypatch.setattr(fit_module, "STORED_LOGLIK_CELLS", 1000)
    lean = bs.fit("chinchilla", data, seed=0, discrepancy=0.0, **SMALL)
    assert "log_likelihood" in kept.idata.groups() and "log_likelihood" not in lean.idata.groups()
    np.testing.assert_allclose(lean.log_likelihood(), kept.log_likelihood())
    table = bs.compare({"kept": kept, "lean": lean})
    assert table.loc["kept", "elpd_loo"] == pytest.approx(table.loc["lean", "elpd_loo"])
    saved = {name: f.save(tmp_path / f"{name}.nc").stat().st_size for name, f in [("kept", kept), ("lean", lean)]}
    assert saved["kept"] - saved["lean"] >= 0.9 * kept.n_draws * len(data) * 4  # the float32 matrix is not saved


def test_a_large_fit_says_beforehand_how_long_sampling_should_take(monkeypatch, capsys):
    """From LARGE_RUNS runs (here lowered to 50) a fit times one gradient and prints the expected sampling time."""
    from bayescale import _sampling

    monkeypatch.setattr(_sampling, "LARGE_RUNS", 50)
    bs.fit(
        "chinchilla", chinchilla_runs(n=60, noise=0.01, seed=2), seed=0, discrepancy=0.0, **(SMALL | {"progress": True})
    )
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("bayescale: 60 runs"))
    assert "ms per gradient: sampling should take about" in line and re.search(
        r"2 chains on [12] processes, 500 iterations each, ~10 gradients", line
    )
    memory = float(re.search(r"memory about ([\d,]+) MB", line).group(1).replace(",", ""))
    assert 50 < memory < 5000  # this process's resident memory so far, plus ~150 bytes per run


def test_many_runs_default_to_fewer_draws_unless_asked():
    """From LARGE_RUNS runs a draw costs more and the posterior is close to Gaussian: the defaults drop to 500 draws
    after 300 tuning steps per chain. Draws or tuning asked for are kept."""
    from bayescale.data import LARGE_RUNS
    from bayescale.fit import _options

    law = bs.law("chinchilla")

    def options(draws: int | None, n_runs: int) -> tuple[int, int]:
        o = _options(law, draws, None, 4, 0, None, None, None, {}, n_runs)
        return o["draws"], o["tune"]

    assert options(None, LARGE_RUNS - 1) == (1000, 1000)
    assert options(None, LARGE_RUNS) == (500, 300)
    assert options(800, LARGE_RUNS) == (800, 300)


def test_the_cached_law_file_depends_on_the_processor_and_pytensors_c_settings(monkeypatch):
    """A cached law reuses its C module's key without recomputing it, so its file name holds what the key would:
    the processor (a -march=native module must not run on another CPU) and PyTensor's settings that enter C keys."""
    from pytensor.configdefaults import config

    from bayescale import _compiled
    from bayescale._model import make_spec
    from bayescale.simulate import design_runs

    law = bs.law("power")
    data = design_runs("power", n=20, seed=0)
    spec = make_spec(law, data.with_inputs(law.inputs, 6.0), likelihood="student_t", nu=4.0)
    here = _compiled._disk_key(spec)
    assert _compiled._disk_key(spec) == here
    with config.change_flags(check_input=not config.check_input):
        assert _compiled._disk_key(spec) != here
    monkeypatch.setattr(_compiled, "_processor", lambda: "another CPU")
    assert _compiled._disk_key(spec) != here
