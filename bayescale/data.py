"""`ScalingData`: a validated table of training runs, with columns named by role (N, D, C, step, loss, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import DataError

POSITIVE_ROLES = ("N", "D", "C", "step", "loss")
GROUP = "group"
LARGE_RUNS = 20_000  # from this many runs a fit samples fewer draws by default and says how long it should take
WEIGHT = "weight"  # optional: how much each run counts in the fit (relative; bayescale._model)


class ScalingData:
    """Training runs with columns renamed to roles; every numeric value checked on the way in.

    Build it with `from_frame` or `from_csv`, mapping roles to your column names:
    `ScalingData.from_csv("runs.csv", columns={"N": "params", "D": "tokens", "loss": "loss"})`.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        origin: str = "data",
        row_offset: int = 0,
        check: bool = True,
        names: Mapping[str, str] | None = None,
    ):
        self.origin = origin
        self.names = dict(names or {})  # role -> the user's column name, where they differ (names in = names out)
        self._row_offset = row_offset  # CSV line of row 0, for messages
        self.frame = frame.reset_index(drop=True)
        if check:
            self._validate()

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, columns: Mapping[str, str] | None = None, origin: str = "DataFrame"
    ) -> ScalingData:
        """Take runs from a DataFrame; `columns` maps role -> column name (unmapped roles keep their names)."""
        return cls(_select(df, columns, origin), origin=origin, names=_renamed(columns))

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        columns: Mapping[str, str] | None = None,
        roles: Sequence[str] | None = None,
        **read_csv: Any,
    ) -> ScalingData:
        """Read runs from a CSV file; `columns` maps role -> column name. With `roles` (what a law needs), only the
        columns that serve a role are kept, and a missing role is named before any value is checked."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"CSV file {path} does not exist")
        try:
            df = pd.read_csv(path, **read_csv)
        except pd.errors.EmptyDataError:
            raise DataError(f"CSV file {path} is empty: expected a header line and one row per run") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"CSV file {path} could not be read: {str(exc).strip()}") from None
        frame = _select(df, columns, str(path), roles)
        return cls(frame, origin=str(path), row_offset=2, names=_renamed(columns))

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"ScalingData({len(self)} runs, columns {list(self.frame.columns)}, from {self.origin})"

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def __getitem__(self, role: str) -> np.ndarray:
        return self.frame[role].to_numpy()

    @property
    def groups(self) -> list[str] | None:
        """Sorted group labels, or None without a group column."""
        if GROUP not in self.frame:
            return None
        return sorted(self.frame[GROUP].astype(str).unique())

    @property
    def weights(self) -> np.ndarray | None:
        """Each run's relative weight, scaled to mean 1 (so weights move evidence between runs but do not add or
        remove any: the fit holds as much information as the number of runs); None without a weight column or
        when every run has the same weight."""
        if WEIGHT not in self.frame:
            return None
        w = self.frame[WEIGHT].to_numpy(dtype=float)
        return None if np.ptp(w) == 0 else w / w.mean()

    def subset(self, mask: Sequence[bool] | np.ndarray) -> ScalingData:
        """The runs where `mask` is true (for hold-out splits)."""
        return ScalingData(self.frame[np.asarray(mask, dtype=bool)], origin=f"{self.origin} (subset)", names=self.names)

    def with_inputs(self, needed: Sequence[str], flops_per_token_param: float = 6.0) -> ScalingData:
        """Complete the N, D, C triple with C = k·N·D when a law needs one of them and two are present."""
        frame = self.frame
        missing = [r for r in ("N", "D", "C") if r in needed and r not in frame]
        if not missing:
            return self
        frame = frame.copy()
        k = flops_per_token_param
        for role in missing:
            have = {"N", "D", "C"} - {role}
            if not have <= set(frame):
                continue
            if role == "D":
                frame["D"] = frame["C"] / (k * frame["N"])
            elif role == "N":
                frame["N"] = frame["C"] / (k * frame["D"])
            else:
                frame["C"] = k * frame["N"] * frame["D"]
        return ScalingData(frame, origin=self.origin, check=False, names=self.names)

    def check_for(self, law: Any, n_extra_params: int = 1) -> None:
        """Raise a DataError when this table cannot fit `law`: a missing input or too few rows."""
        needed = [*law.inputs, law.target]
        absent = [c for c in needed if c not in self.frame]
        if absent:
            raise DataError(
                f"law {law.name!r} needs column(s) {absent} (roles); the data from {self.origin} has "
                f"{self.columns}. Map each role to a column (command line: --col ROLE=COLUMN; Python: "
                "columns={'N': 'params'})"
            )
        bad = self.frame[law.target] <= 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column {law.target!r}: row {self._row(row)} has value {self.frame[law.target].iloc[row]!r}; "
                "the likelihood is on log scale, so values must be positive"
            )
        target = self.frame[law.target].to_numpy(dtype=float)
        cap = law.target_max
        if cap is not None and (target > cap).any():
            row = int(np.flatnonzero(target > cap)[0])
            raise DataError(
                f"column {law.target!r}: row {self._row(row)} has value {target[row]:g}, above {cap:g}, the largest "
                f"value law {law.name!r} allows for {law.target!r} (target_max): a percentage instead of a fraction?"
            )
        if np.ptp(target) == 0:
            raise DataError(
                f"column {law.target!r} has the same value ({target[0]:g}) in all {len(target)} runs: there is "
                "nothing for the law to explain"
            )
        for name in law.inputs:
            values = self.frame[name].to_numpy(dtype=float)
            if len(values) > 1 and np.ptp(values) == 0:
                raise DataError(
                    f"column {name!r} has the same value ({values[0]:g}) in all {len(values)} runs: law "
                    f"{law.name!r} cannot learn how {law.target} changes with {name}. Add runs at 3 or more values "
                    f"of {name}, or use a law without {name}"
                )
        n_params = len(law.params) + n_extra_params
        if len(self) <= n_params:
            raise DataError(
                f"too few runs for law {law.name!r}: {len(self)} rows for {n_params} parameters "
                f"({', '.join(law.params)} and the noise scale); need at least {n_params + 1}"
            )

    # --- validation ---------------------------------------------------------------------------
    def _row(self, i: int) -> str:
        return f"{i} (CSV line {i + self._row_offset})" if self._row_offset else str(i)

    def _check_weights(self, w: np.ndarray) -> None:
        if (w < 0).any():
            row = int(np.flatnonzero(w < 0)[0])
            raise DataError(
                f"column {WEIGHT!r}: row {self._row(row)} has value {w[row]:g}; a run's weight must be 0 or more"
            )
        if not (w > 0).any():
            raise DataError(f"column {WEIGHT!r} is 0 in every run: at least one run must count")

    def _validate(self) -> None:
        if len(self.frame) == 0:
            raise DataError(f"no runs in {self.origin}")
        for col in self.frame.columns:
            if col == GROUP:
                if self.frame[col].isna().any():
                    row = int(np.flatnonzero(self.frame[col].isna().to_numpy())[0])
                    raise DataError(f"column 'group': row {self._row(row)} is empty")
                continue
            values = self.frame[col]
            numeric = pd.to_numeric(values, errors="coerce")
            not_numeric = numeric.isna() & values.notna()
            if not_numeric.any():
                row = int(np.flatnonzero(not_numeric.to_numpy())[0])
                raise DataError(f"column {col!r} is not numeric: row {self._row(row)} has value {values.iloc[row]!r}")
            arr = numeric.to_numpy(dtype=float)
            bad = ~np.isfinite(arr)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"column {col!r}: row {self._row(row)} has value {arr[row]} (NaN or infinite); drop or fix it"
                )
            if col in POSITIVE_ROLES and (arr <= 0).any():
                row = int(np.flatnonzero(arr <= 0)[0])
                raise DataError(f"column {col!r}: row {self._row(row)} has value {arr[row]:g}; {col} must be positive")
            if col == WEIGHT:
                self._check_weights(arr)
            self.frame[col] = arr
        dup = self.frame.duplicated(keep=False)
        if dup.any():
            rows = np.flatnonzero(dup.to_numpy())
            first = self.frame.iloc[rows[0]]
            twin = [r for r in rows[1:] if self.frame.iloc[r].equals(first)][0]
            values = ", ".join(f"{k}={v}" for k, v in first.items())
            raise DataError(
                f"rows {self._row(int(rows[0]))} and {self._row(int(twin))} are identical ({values}); "
                f"{dup.sum()} rows are duplicated in all. Remove duplicates (df.drop_duplicates()) so no run counts twice"
            )


def _select(
    df: pd.DataFrame, columns: Mapping[str, str] | None, origin: str, roles: Sequence[str] | None = None
) -> pd.DataFrame:
    """The table renamed to roles: the mapped columns, and with `roles` (what a law needs) also the columns already
    named by a role, checked for every needed role before any value is (so a missing role is named as such)."""
    missing = [(role, col) for role, col in (columns or {}).items() if col not in df.columns]
    if missing:
        role, col = missing[0]
        raise DataError(
            f"missing column {col!r} (mapped to role {role!r}) in {origin}; available columns: {list(df.columns)}"
        )
    if roles is not None:
        columns = _with_named_roles(df, dict(columns or {}), roles, origin)
    if columns is None:
        return df.copy()
    return df[list(columns.values())].set_axis(list(columns.keys()), axis=1).copy()


def _renamed(columns: Mapping[str, str] | None) -> dict[str, str]:
    """The roles a mapping gives another name: role -> the user's column."""
    return {role: col for role, col in (columns or {}).items() if role != col}


def _show(value: Any) -> str:
    """A value as a person would write it: 1e+09, -5, 'abc'."""
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{float(value):g}"
    return repr(value)


def as_frame(new: Any, roles: Sequence[str]) -> pd.DataFrame:
    """Turn prediction inputs (DataFrame, ScalingData, dict of arrays or scalars) into a role-named frame."""
    if isinstance(new, ScalingData):
        frame = new.frame.copy()
    elif isinstance(new, pd.DataFrame):
        frame = new.copy()
    elif isinstance(new, Mapping):
        frame = pd.DataFrame({k: np.atleast_1d(np.asarray(v)) for k, v in new.items()})
    else:
        raise DataError(f"prediction inputs must be a DataFrame, ScalingData or dict, got {type(new).__name__}")
    missing = [r for r in roles if r not in frame]
    if missing:
        raise DataError(f"prediction inputs lack column(s) {missing}; they have {list(frame.columns)}")
    for role in roles:
        arr = pd.to_numeric(frame[role], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(arr) | ((arr <= 0) if role in POSITIVE_ROLES else False)
        if np.any(bad):
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"prediction input {role!r}: row {row} has value {_show(frame[role].iloc[row])}")
        frame[role] = arr
    return frame


def _with_named_roles(df: pd.DataFrame, columns: dict[str, str], roles: Sequence[str], origin: str) -> dict[str, str]:
    """`columns` plus every needed or known role that a column already carries by name; raises a DataError naming
    the roles nothing provides (two of N, D, C stand in for the third: C = 6 N D)."""
    known = [*roles, *(r for r in (*POSITIVE_ROLES, GROUP, WEIGHT) if r not in roles)]
    mapping = columns | {r: r for r in known if r not in columns and r in df.columns and r not in columns.values()}
    have = set(mapping)
    triple = {"N", "D", "C"}
    absent = [r for r in roles if r not in have and not (r in triple and len((triple - {r}) & have) == 2)]
    if absent:
        raise DataError(
            f"the law needs role(s) {absent} and no column provides them: {origin} has columns {list(df.columns)}. "
            "Map each role to a column (command line: --col ROLE=COLUMN, e.g. --col N=params; Python: "
            "columns={'N': 'params'}); two of N, D, C give the third"
        )
    return mapping
