"""Render DataFrames as rich tables for the terminal."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.table import Table


def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "-"
        return f"{value:.4g}"
    return str(value)


def frame_table(frame: pd.DataFrame, title: str = "") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    for idx, row in frame.iterrows():
        table.add_row(str(idx), *(_fmt(v) for v in row))
    return table
