"""The catalogue: lookup, user law files, malformed-file errors, published values."""

import math
import textwrap

import numpy as np
import pytest

import bayescale as bs
from bayescale.laws import DISTRIBUTIONS

GOOD = textwrap.dedent(
    """
    name = "mine"
    inputs = ["N"]
    formula = "E + exp(a - alpha * log(N / N0))"
    [constants]
    N0 = 1e9
    [params.E]
    prior = { dist = "HalfNormal", sigma = 2.0 }
    support = [0.0, inf]
    [params.a]
    prior = { dist = "Normal", mu = 0.0, sigma = 1.0 }
    [params.alpha]
    prior = { dist = "Uniform", lower = 0.0, upper = 1.0 }
    support = [0.0, 1.0]
    """
)


def test_catalogue_lists_the_engine_laws():
    assert {"power", "chinchilla", "kaplan"} <= set(bs.laws())


def test_unknown_law_names_the_known_ones():
    with pytest.raises(bs.UnknownLawError, match=r"unknown law 'chinchila'.*chinchilla"):
        bs.law("chinchila")


def test_user_law_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    law = bs.law(str(path))
    assert law.name == "mine" and law.inputs == ("N",)
    assert law.mean({"E": 1.0, "a": 0.0, "alpha": 0.5}, {"N": np.array([1e9])}, {"N0": 1e9})[0] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "edit, field, problem",
    [
        (lambda s: s.replace('formula = "E + exp(a - alpha * log(N / N0))"\n', ""), "formula", "is required"),
        (lambda s: s.replace("log(N / N0)", "log(N / M0)"), "formula", "unknown name 'M0'"),
        (lambda s: s.replace("exp(a", "eval(a"), "formula", "function 'eval' is not allowed"),
        (lambda s: s.replace('dist = "HalfNormal"', 'dist = "Cauchyish"'), "params.E.prior", "not supported"),
        (lambda s: s.replace("sigma = 2.0", "scale = 2.0"), "params.E.prior", "missing ['sigma']"),
        (lambda s: s.replace("N0 = 1e9", 'N0 = "spread(N)"'), "constants.N0", "must be a number or"),
        (lambda s: s + "\n[published]\nZ = 1.0\n", "published.Z", "neither a parameter"),
        (
            lambda s: s.replace("support = [0.0, 1.0]", "support = [0.0, 1.0]\nvalue = 3.0"),
            "params.alpha.value",
            "outside",
        ),
        (lambda s: s.replace('inputs = ["N"]', "inputs = 3"), "inputs", "non-empty list"),
        (lambda s: s + '[params.unused]\nprior = { dist = "Normal", mu = 0, sigma = 1 }\n', "params", "never used"),
        (lambda s: s + '\n[sampling]\nsampler = "stan"\n', "sampling.sampler", "one of nutpie, nutpie-numba"),
        (lambda s: s + '\n[extrapolation]\nN = "sideways"\n', "extrapolation.N", "must be 'up' or 'down'"),
        (lambda s: s + '\n[extrapolation]\nloss = "down"\n', "extrapolation.loss", "not an input of the law"),
    ],
)
def test_malformed_law_file_names_file_field_and_problem(tmp_path, edit, field, problem):
    path = tmp_path / "broken.toml"
    path.write_text(edit(GOOD))
    with pytest.raises(bs.LawFileError) as err:
        bs.law(str(path))
    message = str(err.value)
    assert str(path) in message and f"'{field}'" in message and problem in message, message


def test_not_toml_at_all(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("name = [unclosed")
    with pytest.raises(bs.LawFileError, match="not valid TOML"):
        bs.law(str(path))


@pytest.mark.parametrize("name", bs.laws())
def test_every_law_is_documented_and_consistent(name):
    law = bs.law(name)
    assert law.title and law.reference, f"{name}: title and reference are required"
    for p in law.params.values():
        assert p.why, f"{name}.{p.name}: say why the prior is what it is"
        assert p.prior.dist in DISTRIBUTIONS
        assert p.value is not None, f"{name}.{p.name}: give a published or typical value (used for recovery)"


@pytest.mark.parametrize("name", [n for n in bs.laws() if bs.law(n).published])
def test_published_values_match_the_sampled_parameterisation(name):
    """`value` fields (sampled scale) reproduce the paper's numbers through the derived formulas."""
    law = bs.law(name)
    constants = law.resolve_constants({**{k: np.array([1.0]) for k in law.inputs}, law.target: np.array([1.0])})
    values = {k: p.value for k, p in law.params.items()}
    reported = {**values, **law.derived_values(values, constants)}
    for key, published in law.published.items():
        assert math.isclose(float(reported[key]), published, rel_tol=2e-3), (key, reported[key], published)


def test_law_file_sampler_is_the_fit_default(tmp_path, monkeypatch):
    """A law's [sampling] sampler reaches the sampler unless the caller names another."""
    import importlib

    from bayescale.simulate import simulate

    sampling = importlib.import_module("bayescale._sampling")  # where fit() finds the sampler when it runs

    path = tmp_path / "mine.toml"
    path.write_text(GOOD + '\n[sampling]\nsampler = "nutpie-numba"\n')
    seen = []

    def record(*args, sampler, **kwargs):
        seen.append(sampler)
        raise RuntimeError("stop before sampling")

    monkeypatch.setattr(sampling, "run", record)
    law = bs.law(str(path))
    data = simulate(law, {"N": np.geomspace(1e7, 1e10, 12)}, params={"E": 1.0, "a": 0.0, "alpha": 0.5}, seed=0)
    for sampler in (None, "nutpie"):
        with pytest.raises(RuntimeError, match="stop before sampling"):
            bs.fit(law, data, sampler=sampler)
    assert seen == ["nutpie-numba", "nutpie"]
