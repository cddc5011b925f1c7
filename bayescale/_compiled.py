"""A law's log density, gradient and trace expansion as PyTensor C functions, cached in memory and on disk.

NUTS needs logp and its gradient on the unconstrained parameter vector. PyTensor's C backend caches its
compiled modules per machine, and a compiled function pickles, so the whole function is kept on disk under
a key of the model's structure and the library versions: a later process loads it in well under a second
instead of rebuilding it (bench/nuts.py measures both). The data are shared variables, set per fit.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from bayescale._model import ModelSpec, build

CACHE_FORMAT = 1  # bump when the pickled layout below changes
_IN_MEMORY: dict[tuple, CFunctions] = {}


@dataclass
class CFunctions:
    """Compiled functions of one model structure; `set_data` points them at a fit's runs."""

    n_dim: int
    names: list[str]  # expanded trace variables, in the order expand returns them
    shapes: list[tuple[int, ...]]
    dims: dict[str, tuple[str, ...]]
    logp: Any  # PyTensor Function: flat unconstrained point -> (logp, gradient)
    expand: Any  # PyTensor Function: flat unconstrained point -> list of trace values
    support_point: Any  # PyTensor Function: () -> flat unconstrained point at the priors' centres

    def set_data(self, arrays: Mapping[str, np.ndarray]) -> None:
        for fn in (self.logp, self.expand, self.support_point):
            for shared in fn.get_shared():
                if shared.name in arrays:
                    shared.set_value(np.asarray(arrays[shared.name], dtype=shared.get_value().dtype))

    def initial_point(self, seed: Any) -> np.ndarray:
        """PyMC's default start: the support point jittered by U(-1, 1) in unconstrained space."""
        centre = np.asarray(self.support_point(), dtype=float)
        return centre + np.random.default_rng(seed).uniform(-1.0, 1.0, centre.shape)


def cache_dir() -> Path:
    """Where compiled laws are kept: $BAYESCALE_CACHE, else ~/.cache/bayescale/compiled."""
    if os.environ.get("BAYESCALE_CACHE"):
        return Path(os.environ["BAYESCALE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayescale" / "compiled"


def _disk_key(spec: ModelSpec) -> str:
    versions = [version(p) for p in ("pymc", "pytensor", "nutpie", "numpy")]
    text = repr((CACHE_FORMAT, spec.key(), versions, sys.version))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def c_functions(spec: ModelSpec, arrays: Mapping[str, np.ndarray]) -> CFunctions:
    """The compiled functions for `spec` with `arrays` set: from memory, else from disk, else compiled now."""
    key = spec.key()
    funcs = _IN_MEMORY.get(key)
    if funcs is None:
        path = cache_dir() / f"{_disk_key(spec)}.pkl"
        funcs = _load(path)
        if funcs is None:
            funcs = _compile(spec, arrays)
            _save(funcs, path)
        _IN_MEMORY[key] = funcs
    funcs.set_data(arrays)
    return funcs


def _load(path: Path) -> CFunctions | None:
    """A cached compile, or None if there is none or it cannot be read (then it is rebuilt and replaced)."""
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            funcs = pickle.load(fh)
        return funcs if isinstance(funcs, CFunctions) else None
    except Exception:  # a truncated or stale file is only a cache miss
        return None


def _save(funcs: CFunctions, path: Path) -> None:
    """Write atomically (temporary file, then rename): concurrent workers never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(funcs, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:  # a read-only home still fits, it only compiles again next time
        pass


def _compile(spec: ModelSpec, arrays: Mapping[str, np.ndarray]) -> CFunctions:
    import pytensor
    import pytensor.tensor as pt
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords
    from pymc.initial_point import make_initial_point_expression

    model = build(spec, arrays)
    n_dim, _, logp, expand, _, shape_info = _make_functions(
        model,
        mode="FAST_RUN",
        compute_grad=True,
        join_expanded=False,
        pymc_initial_point_fn=lambda seed: {},  # unused: the start comes from support_point below
    )
    centres = make_initial_point_expression(
        free_rvs=model.free_RVs,
        rvs_to_transforms=model.rvs_to_transforms,
        initval_strategies={},
        jitter_rvs=set(),
        default_strategy="support_point",
        return_transformed=True,
    )
    support_point = pytensor.function([], pt.concatenate([pt.as_tensor(c).ravel() for c in centres]), mode="FAST_RUN")
    for fn in (logp, expand, support_point):
        fn.trust_input = True
    dims, _ = _prepare_dims_and_coords(model, shape_info)
    names, _, shapes = shape_info
    return CFunctions(
        n_dim=n_dim,
        names=list(names),
        shapes=[tuple(int(s) for s in shape) for shape in shapes],
        dims={k: tuple(v) for k, v in dims.items() if v},
        logp=logp,
        expand=expand,
        support_point=support_point,
    )


def nutpie_model(funcs: CFunctions, coords: Mapping[str, list], start: Any) -> Any:
    """A nutpie model calling the C functions (one copy per chain: a PyTensor function is not re-entrant)."""
    from nutpie.compiled_pyfunc import from_pyfunc

    names, shapes = funcs.names, funcs.shapes

    def make_logp() -> Any:
        fn = funcs.logp.copy()

        def logp(x: np.ndarray, **_: Any) -> tuple[float, np.ndarray]:
            value, grad = fn(x)
            return float(value), grad

        return logp

    def make_expand(_seed1: Any, _seed2: Any, _chain: Any) -> Any:
        fn = funcs.expand.copy()

        def expand(x: np.ndarray, **_: Any) -> dict[str, np.ndarray]:
            return {n: np.asarray(v).reshape(s) for n, v, s in zip(names, fn(x), shapes, strict=True)}

        return expand

    return from_pyfunc(
        funcs.n_dim,
        make_logp,
        make_expand,
        [np.dtype("float64")] * len(names),
        shapes,
        names,
        coords=dict(coords),
        dims={k: v for k, v in funcs.dims.items() if k in names},
        make_initial_point_fn=start,
    )


def clear() -> None:
    """Forget the in-memory compiles (the disk cache stays)."""
    _IN_MEMORY.clear()
