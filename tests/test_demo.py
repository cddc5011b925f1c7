"""`bayescale demo` runs on its embedded default and writes its plot."""

from rich.console import Console

from bayescale.demo import run_demo


def test_demo_small(tmp_path):
    console = Console(record=True, width=120)
    out = tmp_path / "demo.png"
    result = run_demo(out=out, draws=300, chains=4, seed=0, console=console)
    text = console.export_text()
    assert out.stat().st_size > 20_000
    assert "Prediction for a 70B-parameter, 1.4T-token run" in text and "90% predictive band" in text
    row = result.predict({"N": 7e10, "D": 1.4e12}).iloc[0]
    assert row.lower < 1.9366 < row.upper  # the true law value at 70B / 1.4T
