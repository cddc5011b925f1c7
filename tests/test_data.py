"""Bad input gets a specific error naming the column, row and value."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs


def runs(n=20):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "params": np.geomspace(1e8, 1e10, n),
            "tokens": np.geomspace(1e9, 1e11, n)[rng.permutation(n)],
            "loss": np.linspace(3.0, 2.2, n),
        }
    )


COLS = {"N": "params", "D": "tokens", "loss": "loss"}


def test_good_frame_maps_roles():
    data = bs.ScalingData.from_frame(runs(), columns=COLS)
    assert data.columns == ["N", "D", "loss"] and len(data) == 20


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda df: df.assign(loss=df.loss.where(df.index != 3, np.nan)), r"column 'loss': row 3 has value nan"),
        (lambda df: df.assign(params=df.params.where(df.index != 5, np.inf)), r"column 'N': row 5 has value inf"),
        (
            lambda df: df.assign(params=df.params.where(df.index != 2, -1.0)),
            r"column 'N': row 2 has value -1; N must be positive",
        ),
        (
            lambda df: df.assign(loss=df.loss.where(df.index != 7, 0.0)),
            r"column 'loss': row 7 has value 0; loss must be positive",
        ),
        (
            lambda df: df.assign(tokens=df.tokens.astype(object).where(df.index != 4, "lots")),
            r"column 'D' is not numeric: row 4 has value 'lots'",
        ),
        (lambda df: df.drop(columns="tokens"), r"missing column 'tokens' \(mapped to role 'D'\)"),
        (lambda df: pd.concat([df, df.iloc[[6]]]), r"rows 6 and 20 are identical"),
    ],
)
def test_bad_frames(mutate, pattern):
    with pytest.raises(bs.DataError, match=pattern):
        bs.ScalingData.from_frame(mutate(runs()), columns=COLS)


def test_csv_errors_give_the_line(tmp_path):
    df = runs()
    df.loc[3, "loss"] = np.nan
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    with pytest.raises(bs.DataError, match=r"row 3 \(CSV line 5\)"):
        bs.ScalingData.from_csv(path, columns=COLS)
    with pytest.raises(bs.DataError, match="does not exist"):
        bs.ScalingData.from_csv(tmp_path / "nope.csv")


def test_empty_csv_is_named(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(bs.DataError, match="empty.csv is empty"):
        bs.ScalingData.from_csv(path)


def test_roles_the_law_needs_are_checked_first(tmp_path):
    """A missing role is named as such (not reported as duplicated rows), and columns no role uses are ignored."""
    df = runs().assign(color="red")
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    with pytest.raises(bs.DataError, match=r"needs role\(s\) \['N', 'D'\].*--col ROLE=COLUMN"):
        bs.ScalingData.from_csv(path, roles=["N", "D", "loss"])
    with pytest.raises(bs.DataError, match=r"needs role\(s\) \['D'\]"):
        bs.ScalingData.from_csv(path, columns={"N": "params"}, roles=["N", "D", "loss"])
    data = bs.ScalingData.from_csv(path, columns={"N": "params", "D": "tokens"}, roles=["N", "D", "loss"])
    assert data.columns == ["N", "D", "loss"]  # 'color' (not numeric) is not a role: ignored, no error
    flops = df.assign(C=6 * df.params * df.tokens).drop(columns="tokens")
    flops.to_csv(path, index=False)
    data = bs.ScalingData.from_csv(path, columns={"N": "params"}, roles=["N", "D", "loss"])  # D from N and C
    assert set(data.columns) == {"N", "C", "loss"}


def test_nothing_to_learn_is_named():
    flat = runs().assign(loss=2.5)
    with pytest.raises(bs.DataError, match=r"column 'loss' has the same value \(2.5\) in all 20 runs"):
        bs.fit("chinchilla", bs.ScalingData.from_frame(flat, columns=COLS), progress=False)
    one_size = runs().assign(params=1e9)
    with pytest.raises(bs.DataError, match=r"column 'N' has the same value \(1e\+09\) in all 20 runs.*with N"):
        bs.fit("chinchilla", bs.ScalingData.from_frame(one_size, columns=COLS), progress=False)


def test_too_few_rows_for_the_law():
    data = bs.ScalingData.from_frame(runs(5), columns=COLS)
    with pytest.raises(bs.DataError, match=r"too few runs for law 'chinchilla': 5 rows for 6 parameters"):
        bs.fit("chinchilla", data, progress=False)


def test_law_input_missing_from_data():
    data = bs.ScalingData.from_frame(runs(), columns={"N": "params", "loss": "loss"})
    with pytest.raises(bs.DataError, match=r"law 'chinchilla' needs column\(s\) \['D'\]"):
        bs.fit("chinchilla", data, progress=False)


def test_unknown_law_in_fit():
    with pytest.raises(bs.UnknownLawError, match="unknown law 'chinchilla3'"):
        bs.fit("chinchilla3", bs.ScalingData.from_frame(runs(), columns=COLS), progress=False)


def test_tokens_from_compute():
    df = runs().assign(flops=lambda d: 6 * d.params * d.tokens)
    data = bs.ScalingData.from_frame(df, columns={"N": "params", "C": "flops", "loss": "loss"}).with_inputs(["N", "D"])
    np.testing.assert_allclose(data["D"], df.tokens.to_numpy())


def test_prediction_inputs_are_checked(chinchilla_fit):
    with pytest.raises(bs.DataError, match=r"prediction input 'N': row 1 has value -5"):
        chinchilla_fit.predict({"N": [1e9, -5.0], "D": [1e10, 1e10]})
    with pytest.raises(bs.DataError, match=r"lack column\(s\) \['D'\]"):
        chinchilla_fit.predict({"N": [1e9]})
