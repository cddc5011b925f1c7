"""A small slice of the calibration corpus (bench/corpus.py) and its proper scores."""

import sys

import numpy as np
import pytest

from tests.conftest import REPO, SHARED, SMALL

sys.path.insert(0, str(REPO / "bench"))
corpus = pytest.importorskip("corpus")
corpus_tasks = pytest.importorskip("corpus_tasks")


def test_interval_score_and_coverage_by_hand():
    """Gneiting & Raftery's interval score: width, plus 2/alpha times the miss beyond the band (log scale x100)."""
    draws = np.exp(np.linspace(-1, 1, 100001))[:, None] * np.ones((1, 3))  # uniform on [-1, 1] in log
    r = {"name": "t", "family": "f", "law": "power", "d": np.zeros(3), "y": np.exp(np.array([0.0, 0.7, -1.5]))}
    rows = corpus.score_rows(r, "m", draws, np.zeros(3)).set_index("y")
    np.testing.assert_allclose(rows["cov90"], [1, 1, 0])
    np.testing.assert_allclose(rows["cov50"], [1, 0, 0])
    # 90% band in log: [-0.9, 0.9]; the third run is 0.6 below it: 1.8 + 2 / 0.1 * 0.6 = 13.8
    np.testing.assert_allclose(rows["is90"], [180, 180, 1380], rtol=1e-3)
    # 50% band: [-0.5, 0.5]; 0.7 is 0.2 above: 1 + 4 * 0.2
    np.testing.assert_allclose(rows["is50"], [100, 180, 100 + 400 * 1.0], rtol=1e-3)
    np.testing.assert_allclose(rows["bias"], np.exp(-np.log(r["y"])) - 1, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not SHARED.exists(), reason="real data not available: ../shared/data is absent")
def test_smoke_slice_runs_every_method():
    """Three small real tasks from three families, every method scored on the same held-out runs."""
    tasks = corpus_tasks.smoke_tasks()
    assert len({t.family for t in tasks}) == 3
    results = [corpus.run_task(t, index=1, **SMALL) for t in tasks]
    priors = {r["family"]: corpus.learn_prior([q for q in results if q["family"] != r["family"]]) for r in results}
    for r in results:
        methods = corpus.method_draws(r, priors)
        assert {"default", "previous", "none", "fixed 0.01"} <= set(methods)
        scores = {m: corpus.score_rows(r, m, *v) for m, v in methods.items()}
        n = len(r["y"])
        for m, s in scores.items():
            assert len(s) == n and s[["cov50", "cov90", "is90", "logpd"]].notna().all().all(), m
            assert (s["cov50"] <= s["cov90"]).all()  # nested bands
        # no discrepancy is never wider than the default beyond the data
        assert scores["none"]["width90"].mean() <= scores["default"]["width90"].mean() * 1.05
        assert r["default_setting"]["prior_tasks"] == 2  # learned without this task's family
        assert priors[r["family"]]["families"] == sorted({q["family"] for q in results} - {r["family"]})
