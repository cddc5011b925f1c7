"""Real data by name: shipped tables load anywhere, the others say where they come from."""

from pathlib import Path

import numpy as np
import pytest

import bayescale as bs
from bayescale import datasets


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """A machine without ../shared/data: empty working folder, no BAYESCALE_DATA."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path / "none"))
    monkeypatch.setattr(datasets, "__file__", str(tmp_path / "a" / "b" / "datasets.py"))
    return tmp_path


@pytest.mark.parametrize("name", datasets.names(shipped_only=True))
def test_shipped_data_loads_without_any_folder(name, nowhere):
    ds = bs.datasets.load(name)
    assert "shipped_data" in str(ds.path) and len(ds.frame) >= 90
    assert ds.licence in ds.provenance  # the attribution travels with the data
    for role, column in ds.columns.items():
        assert column in ds.frame.columns, (role, column)
        if role in ("N", "D", "C", "U", "x", "loss"):
            assert (ds.frame[column].dropna() > 0).all(), (role, column)


def test_only_permissively_licensed_data_is_shipped():
    shipped = Path(bs.__file__).parent / datasets.SHIPPED
    folders = {p.name for p in shipped.iterdir() if p.is_dir()}
    allowed = {e.folder for e in datasets.DATASETS.values() if e.licence in ("MIT", "CC BY 4.0", "Apache-2.0")}
    assert folders == allowed, folders ^ allowed
    for entry in datasets.DATASETS.values():
        if entry.licence is None:
            assert not (shipped / entry.folder).exists(), entry.folder


def test_unshipped_data_says_where_it_comes_from(nowhere):
    with pytest.raises(bs.DataError, match="not shipped .*epoch-research/analyzing-chinchilla.* pass folder="):
        bs.datasets.load("chinchilla")
    with pytest.raises(bs.DataError, match="unknown data set 'chinchila'"):
        bs.datasets.load("chinchila")


def test_a_shipped_table_fits_with_its_roles():
    ds = bs.datasets.load("gemstones")
    data = bs.ScalingData.from_frame(ds.frame, columns={k: ds.columns[k] for k in ("N", "D", "loss")})
    assert len(data) == len(ds.frame) and np.all(data["D"] > 0)
    derived = bs.datasets.load("datablations").frame
    np.testing.assert_allclose(derived.unique_tokens, derived.token_num / derived.epochs)
