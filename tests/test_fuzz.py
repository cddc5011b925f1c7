"""Fuzzing (hypothesis): random CSVs, random law files and damaged saved fits may only raise named bayescale
errors, and nothing is written outside the output path. Each test records how many cases it tried; the
counts are printed at the end of the test run (conftest.pytest_terminal_summary)."""

from __future__ import annotations

import copy
import os
import tomllib
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayescale as bs
from bayescale.errors import BayescaleError
from bayescale.laws import from_spec

# derandomized: the same cases on every run, so the suite cannot flake; no deadline: machines are shared
FUZZ = settings(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)

HEADERS = ["N", "D", "C", "loss", "params", "tokens", "", " N ", "ñ", "损失", "a,b", '"q"', "loss.1", "Unnamed: 0"]
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(["", " ", "1e400", "1e-400", "-0", "0x10", "1,5", "nan", "inf", "None", "TRUE", "１２"]),
    st.text(max_size=8),
)


@st.composite
def csv_files(draw) -> tuple[bytes, dict[str, str]]:
    """A CSV as bytes (varied headers, cells, delimiters, blank lines and encodings) and a role mapping."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)), {}
    headers = draw(st.lists(st.one_of(st.sampled_from(HEADERS), st.text(max_size=6)), min_size=1, max_size=5))
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    lines = [delimiter.join(headers)]
    for _ in range(draw(st.integers(0, 12))):
        width = draw(st.sampled_from([len(headers), len(headers), len(headers) + 1, max(len(headers) - 1, 1)]))
        lines.append(delimiter.join(draw(CELLS) for _ in range(width)))
        if draw(st.integers(0, 5)) == 0:
            lines.append("")
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    raw = text.encode(encoding, errors="replace")
    roles = draw(st.sampled_from([["N", "D", "loss"], ["N", "C", "loss"], ["x", "loss"]]))
    columns = {role: draw(st.sampled_from([*headers, role])) for role in roles if draw(st.booleans())}
    return raw, columns


def test_random_csvs_give_named_errors_only(tmp_path, record_property):
    tried = []

    @settings(FUZZ, max_examples=200)
    @given(csv_files())
    def check(case):
        raw, columns = case
        path = tmp_path / "runs.csv"
        path.write_bytes(raw)
        tried.append(1)
        try:
            data = bs.ScalingData.from_csv(path, columns=columns or None)
            data.with_inputs(["N", "D"]).check_for(bs.law("chinchilla"))
        except BayescaleError:
            pass

    check()
    record_property("fuzz: random CSVs", len(tried))
    assert len(tried) >= 200
    assert sorted(os.listdir(tmp_path)) == ["runs.csv"]


BASE_LAW = tomllib.loads(bs.law("chinchilla").source)
NAMES = ["N", "D", "E", "a", "b", "alpha", "beta", "N0", "D0", "x", "y", "__class__", "os", "exp", "log", "eval"]
OPERATORS = ["+", "-", "*", "/", "**", "%", "//", "@", "<", "==", "and", "if", "else", "lambda x:", ".", ","]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.one_of(st.floats(), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.floats(), max_size=2),
)


@st.composite
def formulas(draw) -> str:
    """Formula strings from the grammar's pieces plus hostile tokens (attributes, lambdas, imports, dunder)."""
    parts = []
    for _ in range(draw(st.integers(1, 9))):
        parts.append(draw(st.one_of(st.sampled_from(NAMES), st.sampled_from(OPERATORS), st.floats().map(repr))))
        if draw(st.integers(0, 3)) == 0:
            parts.append(draw(st.sampled_from(["(", ")", "exp(", "log(", "__import__('os').system('touch x')("])))
    return " ".join(parts)


@st.composite
def law_specs(draw) -> dict:
    """The chinchilla law file with 1-3 fields replaced by random values or random formulas."""
    spec = copy.deepcopy(BASE_LAW)
    for _ in range(draw(st.integers(1, 3))):
        table, key = spec, draw(st.sampled_from(sorted(spec)))
        while isinstance(table.get(key), dict) and table[key] and draw(st.booleans()):
            table, key = table[key], draw(st.sampled_from(sorted(table[key])))
        table[key] = draw(st.one_of(VALUES, formulas()))
    return spec


def test_random_law_files_give_named_errors_only(tmp_path, record_property, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tried, compiled = [], []

    @settings(FUZZ, max_examples=300)
    @given(law_specs())
    def check(spec):
        tried.append(1)
        try:
            law = from_spec(spec, "fuzzed.toml")
            compiled.append(law)
        except BayescaleError:
            pass

    check()
    record_property("fuzz: random law files", len(tried))
    assert len(tried) >= 300 and len(compiled) < len(tried)
    assert os.listdir(tmp_path) == []  # nothing a formula said was executed


def test_random_law_file_text_gives_named_errors_only(tmp_path, record_property):
    tried = []
    source = bs.law("power").source

    @FUZZ
    @given(st.integers(0, len(source)), st.text(max_size=20), st.integers(0, 20))
    def check(at, insert, cut):
        tried.append(1)
        path = tmp_path / "law.toml"
        path.write_text(source[:at] + insert + source[at + cut :])
        try:
            bs.law(path)
        except BayescaleError:
            pass

    check()
    record_property("fuzz: altered law file text", len(tried))
    assert len(tried) >= 100


@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory) -> bytes:
    from bayescale.simulate import design_runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)  # a short fit: only its file matters here
        fit = bs.fit("power", design_runs("power", seed=0), draws=50, tune=50, chains=2, seed=0, progress=False)
    path = fit.save(tmp_path_factory.mktemp("fit") / "fit.nc")
    return path.read_bytes()


def test_damaged_saved_fits_give_named_errors_only(saved_fit, tmp_path, record_property):
    tried = []

    @settings(FUZZ, max_examples=40)
    @given(
        st.one_of(
            st.integers(0, len(saved_fit)).map(lambda n: ("truncate", n, b"")),
            st.tuples(st.just("overwrite"), st.integers(0, len(saved_fit) - 1), st.binary(min_size=1, max_size=64)),
        )
    )
    def check(damage):
        kind, at, junk = damage
        tried.append(1)
        raw = saved_fit[:at] if kind == "truncate" else saved_fit[:at] + junk + saved_fit[at + len(junk) :]
        path = tmp_path / "damaged.nc"
        path.write_bytes(raw)
        try:
            bs.load(path).predict({"x": [1e22]})
        except BayescaleError:
            pass

    check()
    record_property("fuzz: damaged saved fits", len(tried))
    assert len(tried) >= 40
