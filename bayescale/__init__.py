"""bayescale: Bayesian neural scaling laws. Fit any published law with NUTS, read calibrated extrapolation bands.

Public API: `ScalingData`, `law`, `laws`, `fit`, `Fit` (`.summary`, `.predict`, `.save`), `load`, `compare`,
`average` (several laws mixed by stacking weights), `simulate`,
`datasets` (real published data by name), `sample_prior` (a law's prior predictive at your runs).
"""

import warnings as _warnings

# PyTensor's advice to install BLAS through conda says nothing about a fit; the numba backend does not use it.
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
_warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*", category=FutureWarning)

from bayescale import datasets  # noqa: E402
from bayescale.average import Average, average  # noqa: E402
from bayescale.calibration import calibration  # noqa: E402
from bayescale.compare import compare  # noqa: E402
from bayescale.crossover import crossover  # noqa: E402
from bayescale.data import ScalingData  # noqa: E402
from bayescale.diagnostics import SamplingWarning  # noqa: E402
from bayescale.errors import BayescaleError, DataError, FitFileError, LawFileError, UnknownLawError  # noqa: E402
from bayescale.fit import Fit, fit, load  # noqa: E402
from bayescale.isoflop import fit_isoflop, parabola_isoflop  # noqa: E402
from bayescale.laws import Law, law, laws  # noqa: E402
from bayescale.many import fit_many  # noqa: E402
from bayescale.prior import sample_prior  # noqa: E402
from bayescale.simulate import simulate  # noqa: E402

__all__ = [
    "Average",
    "BayescaleError",
    "DataError",
    "Fit",
    "FitFileError",
    "Law",
    "LawFileError",
    "SamplingWarning",
    "ScalingData",
    "UnknownLawError",
    "average",
    "calibration",
    "compare",
    "crossover",
    "datasets",
    "fit",
    "fit_isoflop",
    "fit_many",
    "law",
    "laws",
    "load",
    "parabola_isoflop",
    "sample_prior",
    "simulate",
]
__version__ = "0.1.0"
