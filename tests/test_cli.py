"""The `bayescale` console script end to end, including its error path."""

import io
import json
import subprocess
import sys

import pandas as pd
import pytest

import bayescale as bs
from bayescale.simulate import chinchilla_runs


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bayescale.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def cli_here(*args):
    """The same command run in this process (typer's test runner): for checks that need no fresh process,
    which costs seconds of imports per call."""
    from typer.testing import CliRunner

    from bayescale.cli import app

    result = CliRunner().invoke(app, list(args))
    result.returncode = result.exit_code
    return result


def test_laws_lists_formula_inputs_reference():
    out = cli("laws")
    assert out.returncode == 0, out.stderr
    assert "chinchilla" in out.stdout and "E + exp(a - alpha * log(N / N0))" in out.stdout
    assert "Hoffmann et al. 2022" in out.stdout and "inputs: N, D" in out.stdout


def test_start_up_loads_no_heavy_library():
    """`bayescale --help`, `laws` and `import bayescale` load PyMC, PyTensor, ArviZ, xarray and scipy.stats only
    when a command needs them (they cost seconds at start-up)."""
    code = (
        "import sys, bayescale, bayescale.cli\n"
        "[bayescale.law(n) for n in bayescale.laws()]\n"
        "print(sorted(m for m in ('pymc', 'pytensor', 'arviz', 'xarray', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    chinchilla_runs(n=80, seed=4).frame.rename(columns={"N": "params", "D": "tokens"}).to_csv(path, index=False)
    return path


def test_fit_then_predict(runs_csv, tmp_path):
    out_path = tmp_path / "fit.nc"
    out = cli(
        "fit",
        str(runs_csv),
        "--law",
        "chinchilla",
        "--col",
        "N=params",
        "--col",
        "D=tokens",
        "--col",
        "loss=loss",
        "-o",
        str(out_path),
        "--draws",
        "300",
        "--tune",
        "300",
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr
    assert out_path.exists() and "alpha" in out.stdout
    assert "Extrapolation error from a prior learned from" in " ".join(out.stdout.split())
    pred = cli("predict", str(out_path), "--at", "N=7e10,D=1.4e12", "--prob", "0.9")
    assert pred.returncode == 0, pred.stderr
    assert "median" in pred.stdout and "7e+10" in pred.stdout
    summary = cli_here("summary", str(out_path))
    assert summary.returncode == 0 and "beta" in summary.stdout
    as_json = cli_here("predict", str(out_path), "--at", "N=7e10,D=1.4e12", "--at", "N=1e9,D=2e10", "--format", "json")
    rows = json.loads(as_json.stdout)
    assert len(rows) == 2 and rows[0]["N"] == 7e10 and rows[0]["lower"] < rows[0]["median"] < rows[0]["upper"]
    as_csv = cli_here("allocate", str(out_path), "--compute", "1e21,1e23", "-f", "csv")
    table = pd.read_csv(io.StringIO(as_csv.stdout))
    assert len(table) == 2 and table["C"].tolist() == [1e21, 1e23]  # one row per budget
    own = json.loads(cli_here("predict", str(out_path), "--at", "params=7e10,tokens=1.4e12", "-f", "json").stdout)
    roles = json.loads(cli_here("predict", str(out_path), "--at", "N=7e10,D=1.4e12", "-f", "json").stdout)
    assert own[0]["params"] == 7e10 and own[0]["median"] == roles[0]["median"]  # the fit's own names, after load
    assert own[0]["domain"] == "extrapolation" and own[0]["distance"] > 1
    params = pd.read_csv(io.StringIO(cli_here("summary", str(out_path), "-f", "csv").stdout))
    assert "alpha" in params["param"].tolist()


def test_version_and_machine_readable_laws():
    from importlib.metadata import version

    assert cli("--version").stdout.strip() == f"bayescale {version('bayescale')}"
    laws = json.loads(cli("laws", "--format", "json").stdout)
    chinchilla = next(x for x in laws if x["law"] == "chinchilla")
    assert chinchilla["inputs"] == "N D" and "E + exp(a - alpha * log(N / N0))" in chinchilla["formula"]


FIT = ["fit", "{csv}", "--law", "chinchilla", "--col", "N=params", "--col", "D=tokens"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["fit", "{csv}", "--law", "chinchila", "-o", "x.nc", "--col", "N=params", "--col", "D=tokens"],
            "unknown law 'chinchila'; did you mean 'chinchilla'?",
        ),
        (["fit", "{csv}", "--law", "chinchilla", "-o", "x.nc", "--col", "N=parms"], "missing column 'parms'"),
        (["predict", "nothere.nc", "--at", "N=1e9,D=1e10"], "no saved fit at nothere.nc"),
        (
            ["fit", "{csv}", "--law", "chinchilla", "-o", "x.nc", "--discrepancy", "gp"],
            "--discrepancy: expected 'auto' or a number, got 'gp'",
        ),
        (["predict", "{csv}", "--at", "N=1e9"], "is not a bayescale fit"),
        (["fit", "{empty}", "--law", "chinchilla", "-o", "x.nc"], "empty.csv is empty"),
        ([*FIT, "-o", "x.nc", "--chains", "0"], "chains must be a whole number >= 1, got 0"),
        ([*FIT, "-o", "x.nc", "--draws", "0"], "draws must be a whole number >= 1, got 0"),
        (["fit", "{csv}", "--law", "chinchilla", "-o", "{csv}/fit.nc"], "runs.csv is a file, not a folder"),
        (["fit", "{csv}", "--law", "chinchilla", "-o", "x.nc"], "needs role(s) ['N', 'D']"),
        (["fit", "{csv}", "--law", "chinchilla", "-o", "x.nc", "--col", "N=params"], "needs role(s) ['D']"),
        (["allocate", "x.nc", "--budget", "1e24"], "No such option: --budget"),  # click's own usage errors too
        (["allocate"], "Missing argument 'fit_path'"),
    ],
)
def test_errors_are_one_clear_line(args, message, runs_csv, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    args = [a.replace("{csv}", str(runs_csv)).replace("{empty}", str(tmp_path / "empty.csv")) for a in args]
    out = cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_discrepancy_option_reads_auto_or_a_number():
    from bayescale.cli import _number_or_auto

    assert _number_or_auto("auto", "--discrepancy") == "auto"
    assert _number_or_auto("0.01", "--discrepancy") == 0.01
    with pytest.raises(bs.BayescaleError, match="--discrepancy: expected 'auto' or a number, got 'wide'"):
        _number_or_auto("wide", "--discrepancy")


def test_fix_and_prior_options(runs_csv, tmp_path):
    base = ["fit", str(runs_csv), "--law", "chinchilla", "--col", "N=params", "--col", "D=tokens", "-o"]
    bad = cli_here(*base, str(tmp_path / "a.nc"), "--fix", "E=high")
    assert bad.exit_code != 0 and "--fix E=high: the value must be a number" in str(bad.exception)
    bad = cli_here(*base, str(tmp_path / "a.nc"), "--prior", "alpha=Normal(0.3)")
    assert bad.exit_code != 0 and "--prior alpha=Normal(0.3): expected NAME={dist" in str(bad.exception)
    out = cli_here(
        *base,
        str(tmp_path / "fixed.nc"),
        "--fix",
        "E=1.69",
        "--prior",
        'alpha={dist = "TruncatedNormal", mu = 0.34, sigma = 0.05, lower = 0}',
        "--draws",
        "100",
        "--tune",
        "200",
        "--chains",
        "2",
        "--discrepancy",
        "0",
        "--no-progress",
    )
    assert out.exit_code == 0, out.output
    law = bs.load(tmp_path / "fixed.nc").law
    assert "E" not in law.params and law.params["alpha"].prior.args["sigma"] == 0.05
