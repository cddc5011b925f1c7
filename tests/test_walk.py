"""The learned discrepancy (walk=True): a Brownian motion in log compute fitted with the law."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import _walk
from tests.conftest import FAST, SMALL
from tests.test_compare import misspecified


def test_weights_interpolate_on_the_knot_grid():
    lo, hi = 0.0, 15.0  # knots at 0, 1, ..., 15
    w = _walk.weights(np.array([0.0, 2.5, 15.0, 20.0, -3.0]), lo, hi)
    assert w.shape == (5, _walk.KNOTS)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w[1, 2:4], [0.5, 0.5])
    assert w[2, -1] == 1.0 and w[3, -1] == 1.0 and w[4, 0] == 1.0  # clamped outside the range


def test_offsets_interpolate_inside_and_spread_like_sqrt_distance_beyond():
    rng = np.random.default_rng(0)
    draws = 20000
    delta = np.tile(np.linspace(0.0, 0.03, _walk.KNOTS), (draws, 1))
    tau = np.full(draws, 0.01)
    pos = np.array([7.5, 15.0, 19.0, 31.0])  # inside, at the end, 4 and 16 e-folds beyond
    out = _walk.offsets(delta, tau, pos, 0.0, 15.0, rng)
    np.testing.assert_allclose(out[:, 0], 0.015)  # exactly the interpolated knot values, no extra noise
    np.testing.assert_allclose(out[:, 1], 0.03)
    sd4, sd16 = out[:, 2].std(), out[:, 3].std()
    assert abs(sd4 - 0.02) < 0.001 and abs(sd16 - 0.04) < 0.002  # tau * sqrt(distance)
    np.testing.assert_allclose(out[:, 2].mean(), 0.03, atol=0.001)  # centred on the walk's end


@pytest.fixture(scope="module")
def walk_report():
    # the walk with the fixed slope it is benchmarked with: "auto" would learn by refitting the walk (10x slower)
    return bs.calibration("chinchilla", misspecified(), fraction=0.25, walk=True, discrepancy=0.01, **FAST)


def test_walk_covers_a_misspecified_law(walk_report):
    table = walk_report.table.set_index("prob")
    assert table.loc[0.9, "coverage"] >= 0.8, table
    assert table.loc[0.9, "mean_rel_width"] < 0.1, table


def test_walk_fit_saves_loads_and_predicts_identically(tmp_path, chinchilla_data):
    # save/load and the band's shape need no long chains: 2 x 200 draws
    fit = bs.fit("chinchilla", chinchilla_data, seed=0, walk=True, discrepancy=0.01, **SMALL)
    assert "walk_tau" in fit.summary().index
    new = pd.DataFrame({"N": [1e9, 7e10], "D": [1e11, 1.4e12]})
    loaded = bs.load(fit.save(tmp_path / "walk.nc"))
    pd.testing.assert_frame_equal(fit.predict(new), loaded.predict(new))
    band = fit.predict(new)
    width = (band.upper - band.lower) / band["median"]
    assert width[1] > width[0]  # wider far beyond the data than inside it


def test_bad_sampler_is_named(chinchilla_data):
    with pytest.raises(bs.BayescaleError, match="sampler must be one of nutpie, nutpie-numba"):
        bs.fit("chinchilla", chinchilla_data, sampler="stan", **FAST)


def test_bad_discrepancy_is_named(chinchilla_data):
    with pytest.raises(bs.BayescaleError, match="discrepancy must be"):
        bs.fit("chinchilla", chinchilla_data, discrepancy="gp", **FAST)
    with pytest.raises(bs.BayescaleError, match="discrepancy must be"):
        bs.fit("chinchilla", chinchilla_data, discrepancy=-0.1, **FAST)
