"""Real published scaling data by name: `names()`, `load(name)`, each table with its column roles and provenance.

Data sets whose licence allows it (MIT, CC BY, Apache) ship inside the package, gzipped, with their SOURCE.md
(source, commit, licence, known caveats): they load on any machine. The others are read from a folder the user
names (`folder=`, else the environment variable BAYESCALE_DATA, else ../shared/data); when it is absent, `load`
says where the data comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from bayescale.errors import DataError

SHIPPED = "shipped_data"
DEFAULT_FOLDER = Path("..") / "shared" / "data"


@dataclass(frozen=True)
class _Entry:
    """One table: its folder and file as published, the roles its columns play, columns derived from others
    (pandas expressions), its licence (None: no licence stated, so not shipped) and where it comes from."""

    folder: str
    file: str
    roles: dict[str, str]
    licence: str | None
    origin: str
    derived: dict[str, str] = field(default_factory=dict)

    @property
    def shipped(self) -> bool:
        return self.licence is not None


_EPOCH = "github.com/epoch-research/analyzing-chinchilla (data/svg_extracted_data.csv)"
_ATHENA = "github.com/Open-Athena/scaling-law-analysis (data/isoflops/extract/isoflops.csv)"
_MISFIT = "github.com/hadasah/scaling_laws (data/)"
_GEM = "github.com/mcleish7/gemstone-scaling-laws (wandb_dfs/)"
_GEMSTONE_ROLES = {"N": "params_active_precise", "D": "tokens", "step": "step", "loss": "final_loss"}
_BNSL_ROLES = {"x": "Seen Examples", "loss": "Loss"}
_SLOTH = "github.com/felipemaiapolo/statistical-scaling-law (data/)"
_SLOTH_ROLES = {"N": "params", "D": "train_tokens", "C": "train_flops"}
_SLOTH_UNITS = {"params": "size * 1e9", "train_tokens": "tokens * 1e12", "train_flops": "flops * 1e21"}  # B, T, 1e21
_COLPRET = "github.com/IBM/ColPret (aggregated_eval/)"
_REVISIT = "github.com/google-research/google-research (revisiting_neural_scaling_laws/data/)"
_MISFIT_ROLES = {"N": "N", "D": "D", "C": "C", "loss": "loss"}

DATASETS: dict[str, _Entry] = {
    "chinchilla": _Entry(
        "chinchilla-epoch",
        "svg_extracted_data.csv",
        {"N": "Model Size", "C": "Training FLOP", "loss": "loss"},
        None,
        _EPOCH,
    ),
    "isoflops": _Entry(
        "isoflops",
        "isoflops.csv",
        {"N": "params", "D": "tokens", "C": "budget", "loss": "loss", "group": "experiment"},
        None,
        _ATHENA,
    ),
    "misfitting": _Entry("misfitting-curves", "scaling_results_last_ckpt_only.csv", _MISFIT_ROLES, None, _MISFIT),
    "misfitting-curves": _Entry("misfitting-curves", "scaling_results.csv", _MISFIT_ROLES, None, _MISFIT),
    "gemstones": _Entry("gemstones-curves", "wandb_df_for_fitting_cool_end.jsonl", _GEMSTONE_ROLES, "MIT", _GEM),
    "gemstones-curves": _Entry(
        "gemstones-curves", "wandb_df_for_fitting_hot_100b+_477.jsonl", _GEMSTONE_ROLES, "MIT", _GEM
    ),
    "olmo-curves": _Entry("olmo-curves", "olmo.csv", {"step": "Step"}, "MIT", _COLPRET + " olmo.csv"),
    "bnsl-lang": _Entry("revisiting-benchmark", "benchmark.lang.csv", _BNSL_ROLES, "CC BY 4.0", _REVISIT),
    "bnsl-vision": _Entry("revisiting-benchmark", "benchmark.vision.csv", _BNSL_ROLES, "CC BY 4.0", _REVISIT),
    "datablations": _Entry(
        "datablations-contour",
        "datablations_contour_losses.csv",
        {"N": "num_params", "D": "token_num", "U": "unique_tokens", "loss": "openLM_loss"},
        "MIT",
        _COLPRET + " datablations_contour_losses.csv (from github.com/huggingface/datablations)",
        derived={"unique_tokens": "token_num / epochs"},
    ),
    "leaderboard": _Entry("llm-leaderboard-sloth", "df_full.csv", _SLOTH_ROLES, "MIT", _SLOTH, _SLOTH_UNITS),
    "leaderboard-v2": _Entry("llm-leaderboard-sloth", "df_full_v2.csv", _SLOTH_ROLES, "MIT", _SLOTH, _SLOTH_UNITS),
}


@dataclass
class Dataset:
    """A published table as its authors released it (plus any derived column), the role each column plays
    (pass `columns` to `ScalingData.from_frame`), and where it comes from (`provenance`: its SOURCE.md, with the
    source, commit, licence and known caveats: read it before fitting)."""

    name: str
    frame: pd.DataFrame
    columns: dict[str, str]
    licence: str | None
    provenance: str
    path: Path

    def __repr__(self) -> str:
        licence = self.licence or "no licence stated (not shipped)"
        return (
            f"Dataset({self.name!r}: {len(self.frame)} rows, roles {self.columns}, licence {licence}, from {self.path})"
        )


def names(shipped_only: bool = False) -> list[str]:
    """The data sets `load` knows; with `shipped_only`, those inside the package (available on any machine)."""
    return [k for k, e in DATASETS.items() if e.shipped or not shipped_only]


def load(name: str, folder: str | Path | None = None) -> Dataset:
    """A data set by name: from inside the package when its licence allows shipping it, else from `folder`
    (default: $BAYESCALE_DATA, else ../shared/data). Raises a DataError naming the source when it is absent."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    entry = DATASETS[name]
    where = _locate(entry, folder)
    if where is None:
        raise DataError(
            f"data set {name!r} is not shipped (its source states no licence) and was not found in "
            f"{_folder(folder) / entry.folder}. Get {entry.file} from {entry.origin} and pass folder= (or set "
            "BAYESCALE_DATA) to the folder that holds "
            f"{entry.folder}/"
        )
    frame = _read(where)
    for column, expression in entry.derived.items():
        frame[column] = frame.eval(expression)
    provenance = (where.parent / "SOURCE.md").read_text() if (where.parent / "SOURCE.md").is_file() else entry.origin
    return Dataset(name, frame, dict(entry.roles), entry.licence, provenance, where)


def _folder(folder: str | Path | None) -> Path:
    return Path(folder or os.environ.get("BAYESCALE_DATA") or DEFAULT_FOLDER)


def _locate(entry: _Entry, folder: str | Path | None) -> Path | None:
    """The file: the user's folder if given, else the shipped copy, else the default folder."""
    candidates = [_folder(folder) / entry.folder / entry.file]
    if folder is None:  # also the shared folder beside a source checkout (notebooks run from notebooks/)
        candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / entry.folder / entry.file)
    if entry.shipped and folder is None:
        shipped = Path(str(resources.files("bayescale"))) / SHIPPED / entry.folder / f"{entry.file}.gz"
        candidates.insert(0, shipped)
    return next((p for p in candidates if p.is_file()), None)


def _read(path: Path) -> pd.DataFrame:
    if ".jsonl" in path.name:
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)
