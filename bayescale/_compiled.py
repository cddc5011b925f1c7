"""A law's log density and gradient as PyTensor C functions, cached in memory and on disk.

NUTS needs logp and its gradient on the unconstrained parameter vector. PyTensor's C backend caches its
compiled modules per machine, and a compiled function pickles, so the whole function is kept on disk under
a key of the model's structure and the library versions: a later process loads it in well under a second
instead of rebuilding it (bench/nuts.py measures both). The data are shared variables, set per fit.
Only logp is compiled to C. The trace's other variables (the parameters on their own scale) are computed
once for all draws after sampling, by a vectorised function on PyTensor's Python linker: that saves about
half of a first compile (~17 of ~33 C modules) and costs a few milliseconds per fit.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from bayescale._model import ModelSpec, build

CACHE_FORMAT = 6  # bump when the pickled layout below changes
_IN_MEMORY: dict[tuple, CFunctions] = {}


@dataclass
class CFunctions:
    """Compiled functions of one model structure; `set_data` points them at a fit's runs."""

    n_dim: int
    names: list[str]  # the free (unconstrained) variables, as nutpie stores them, in the order of the flat point
    shapes: list[tuple[int, ...]]
    derived: list[str]  # the other trace variables, in the order expand_draws returns them
    dims: dict[str, tuple[str, ...]]
    logp: Any  # PyTensor Function: flat unconstrained point -> (logp, gradient)
    expand_draws: Any  # PyTensor Function (Python linker): (draws, n_dim) -> list of derived values per draw
    support_point: Any  # PyTensor Function: () -> flat unconstrained point at the priors' centres
    data_terms: Any  # PyTensor Function (Python linker): () -> the parts of logp that depend on the data alone
    data_term_names: list[str]  # the shared variables of logp that hold them, in that order

    def set_data(self, arrays: Mapping[str, np.ndarray]) -> None:
        for fn in (self.logp, self.expand_draws, self.support_point, self.data_terms):
            for shared in fn.get_shared():
                if shared.name in arrays:
                    shared.set_value(np.asarray(arrays[shared.name], dtype=shared.get_value().dtype))
        terms = dict(zip(self.data_term_names, self.data_terms(), strict=True))
        for shared in self.logp.get_shared():
            if shared.name in terms:
                shared.set_value(terms[shared.name])

    def split(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The free variables of flat points `x` (..., n_dim), each shaped (..., *shape)."""
        lead, out, at = x.shape[:-1], {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = int(np.prod(shape, dtype=int))
            out[name] = x[..., at : at + size].reshape(lead + shape)
            at += size
        return out

    def complete(self, posterior: Any) -> Any:
        """Add the derived variables (constrained parameters) to a posterior of free variables only."""
        free = [posterior[n].values.reshape(posterior[n].shape[:2] + (-1,)) for n in self.names]
        flat = np.concatenate(free, axis=-1)
        lead = flat.shape[:2]
        values = self.expand_draws(np.ascontiguousarray(flat.reshape(-1, self.n_dim)))
        for name, value in zip(self.derived, values, strict=True):
            value = np.asarray(value).reshape(lead + np.shape(value)[1:])
            dims = self.dims.get(name) or tuple(f"{name}_dim_{i}" for i in range(value.ndim - 2))  # ArviZ's names
            posterior[name] = (("chain", "draw", *dims), value)
        return posterior

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
    """The law's file name: its structure, the library versions, the processor and PyTensor's settings that enter
    its C modules' keys (the stored key is reused as it was; bayescale._compiled._Key)."""
    from pytensor.configdefaults import config

    versions = [version(p) for p in ("pymc", "pytensor", "nutpie", "numpy")]
    text = repr((CACHE_FORMAT, spec.key(), versions, sys.version, _processor(), config.get_config_hash()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _processor() -> str:
    """The CPU model and instruction sets: a C module built for one (-march=native) must not run on another that
    shares the home directory (a cluster's nodes), and a cached law reuses its module's key without recomputing it."""
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh.read().split("\n\n")[0].splitlines() if ln.startswith(("model name", "flags"))]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


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
        from pytensor.configdefaults import config

        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pickle.load(fh)
            _register_module(header.get("module_dir"))
            # the C module's key includes the compiler flags; importing PyMC adds some, and the law no longer
            # needs PyMC, so it is loaded under the flags it was compiled with
            with config.change_flags(gcc__cxxflags=header.get("cxxflags", config.gcc__cxxflags)):
                funcs = pickle.load(fh)
        return funcs if isinstance(funcs, CFunctions) else None
    except Exception:  # a truncated or stale file is only a cache miss
        return None


def _register_module(module_dir: str | None) -> None:
    """Tell PyTensor's module cache where this law's C module is before loading it, so that the cache's first use in
    this process does not read the key file of every module in the compile directory (2.5 s with ~300 of them;
    measured). Only when the cache is not set up yet in this process; it reads the whole directory as usual the first
    time it misses a module."""
    from pytensor.configdefaults import config
    from pytensor.link.c import cmodule

    key_pkl = os.path.join(module_dir, "key.pkl") if module_dir else ""
    if cmodule._module_cache is not None or not os.path.exists(key_pkl):
        return
    with open(key_pkl, "rb") as fh:
        key_data = pickle.load(fh)
    entry = key_data.get_entry()
    if not os.path.exists(entry):
        return
    cache = cmodule.get_module_cache(config.compiledir, init_args={"do_refresh": False})
    cache.module_hash_to_key_data[key_data.module_hash] = key_data  # what ModuleCache.refresh records per entry
    for key in key_data.keys:
        cache.entry_from_key.setdefault(key, entry)
        if key[0]:
            cache.similar_keys.setdefault(cmodule.get_safe_part(key), []).append(key)
    cache.loaded_key_pkl.add(key_pkl)


def _module_dir(fn: Any) -> str | None:
    """The compile-directory entry of a whole-graph C function's module (None for per-op linkers)."""
    from pytensor.link.c.basic import CLinker, get_module_cache

    linker = fn.maker.linker
    if not isinstance(linker, CLinker):
        return None
    entry = get_module_cache().entry_from_key.get(linker.cmodule_key())
    return os.path.dirname(entry) if entry else None


def _save(funcs: CFunctions, path: Path) -> None:
    """Write atomically (temporary file, then rename): concurrent workers never see half a file."""
    from pytensor.configdefaults import config

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            header = {"module_dir": _module_dir(funcs.logp), "cxxflags": config.gcc__cxxflags}
            pickle.dump(header, fh)  # read first: where the law's C module is and how it was compiled
            _pickler(fh).dump(funcs)
        os.replace(tmp, path)
    except (OSError, pickle.PicklingError, AttributeError, TypeError):
        # a read-only home, or a graph with an op that does not pickle: the fit goes on, it compiles next time
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _pickler(fh: Any) -> pickle.Pickler:
    """A pickler that can write a whole-graph C function: PyTensor's op `Params` are immutable dicts, which the
    default dict pickling cannot rebuild, so they are written as constructor calls instead. Fused scalar ops
    (`Composite`) keep their generated C code: PyTensor drops it when pickling and, on loading, regenerates it to
    hash each op (1.8 s of a 3.7 s load of chinchilla's function, measured)."""
    import copyreg

    from pytensor.compile.function.types import FunctionMaker
    from pytensor.graph.destroyhandler import DestroyHandler
    from pytensor.graph.fg import FunctionGraph
    from pytensor.link.c.basic import CLinker
    from pytensor.link.c.params_type import Params
    from pytensor.scalar.basic import Composite

    pickler = pickle.Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {
        **copyreg.dispatch_table,
        Params: lambda p: (_params, (p.__params_type__, dict(p))),
        Composite: lambda op: (_blank, (type(op),), op.__getstate__() | {"_c_code": op.c_code_template}),
        FunctionGraph: lambda fg: (_blank, (FunctionGraph,), _compiled_graph_state(fg)),
        DestroyHandler: lambda dh: (_blank, (DestroyHandler,), _live_destroy_state(dh)),
        FunctionMaker: lambda maker: (_blank, (FunctionMaker,), _compiled_maker_state(maker)),
        CLinker: lambda linker: (_blank, (CLinker,), _linker_state(linker)),
    }
    return pickler


_REWRITE_ONLY_FEATURES = {"ShapeFeature": "shape_feature", "MergeFeature": "merge_feature"}


def _compiled_graph_state(fgraph: Any) -> dict:
    """A compiled function's graph without what only its rewriting used: the graph and two of its features keep every
    variable the rewrites replaced (the whole unoptimised graph, and PyMC's ops with it, which import PyMC)."""
    state = fgraph.__getstate__()
    kept = [f for f in fgraph._features if type(f).__name__ not in _REWRITE_ONLY_FEATURES]
    for feature in fgraph._features:
        state.pop(_REWRITE_ONLY_FEATURES.get(type(feature).__name__, ""), None)
    clients = {v: c for v, c in fgraph.clients.items() if c or v in fgraph.variables}
    return state | {"_features": kept, "clients": clients}


def _compiled_maker_state(maker: Any) -> dict:
    """A function maker whose outputs name the compiled graph's variables, not the unoptimised ones (which only a
    copy of the function reads, and only for their `borrow` flag)."""
    from pytensor.compile.io import SymbolicOutput

    outputs = [SymbolicOutput(v, o.borrow) for v, o in zip(maker.fgraph.outputs, maker.outputs, strict=False)]
    return vars(maker) | {"outputs": outputs}


def _live_destroy_state(handler: Any) -> dict:
    """The in-place bookkeeping of a graph, less the entries of variables no longer in it (PyTensor keeps them)."""
    live = handler.fgraph.variables
    return vars(handler) | {"clients": {v: c for v, c in handler.clients.items() if c or v in live}}


def _linker_state(linker: Any) -> dict:
    """A C linker with its module key, once it has a graph (a mode's linker has none)."""
    if getattr(linker, "fgraph", None) is None:
        return vars(linker)
    return vars(linker) | {"cmodule_key": _Key(linker.cmodule_key())}


@dataclass(frozen=True)
class _Key:
    """A whole-graph C function's module key, stored with the law: loading it then skips the key's computation, which
    probes the compiler in every new process (0.25 s measured). The law's file name holds the library versions and
    the processor, and the load sets the compiler flags it was compiled with, so the key is the one PyTensor would
    compute."""

    key: tuple

    def __call__(self) -> tuple:
        return self.key


def _blank(cls: type) -> Any:
    """An instance whose state pickle sets next (via the class's __setstate__)."""
    return cls.__new__(cls)


def _params(params_type: Any, values: dict) -> Any:
    from pytensor.link.c.params_type import Params

    return Params(params_type, **values)


def _compile(spec: ModelSpec, arrays: Mapping[str, np.ndarray]) -> CFunctions:
    """logp and gradient in C on the flat unconstrained point (as nutpie builds them); the rest without C."""
    import pytensor
    import pytensor.tensor as pt
    from nutpie.compile_pymc import _compute_shapes
    from pymc.initial_point import make_initial_point_expression
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph.replace import vectorize_graph

    model = build(spec, arrays)
    values = [model.rvs_to_values[rv] for rv in model.free_RVs]
    all_shapes = {k: tuple(int(s) for s in v) for k, v in _compute_shapes(model).items()}
    shapes = [all_shapes[v.name] for v in values]
    bounds = np.cumsum([0] + [int(np.prod(s, dtype=int)) for s in shapes])
    n_dim = int(bounds[-1])

    def unflatten(flat: Any, lead: tuple) -> dict:
        return {
            v: flat[..., a:b].reshape((*lead, *shape)).astype(v.dtype)
            for v, a, b, shape in zip(values, bounds[:-1], bounds[1:], shapes, strict=True)
        }

    rewrites = ["canonicalize", "stabilize"] + ([] if model.check_bounds else ["local_remove_check_parameter"])
    logp = pytensor.graph.rewrite_graph(model.logp(), include=rewrites)
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in pytensor.gradient.grad(logp, values)])
    point = pt.TensorType("float64", shape=(n_dim,))("_unconstrained_point")
    logp, grad = pytensor.clone_replace([logp, grad], unflatten(point, ()))
    logp, grad = pytensor.graph.rewrite_graph([logp, grad], include=("canonicalize", "stabilize", "specialize"))
    (logp, grad), data_terms, data_term_names = _precompute_data_terms([logp, grad], point)

    names = [v.name for v in values]
    derived = [v for v in model.unobserved_value_vars if v.name not in names]
    draws = pt.matrix("_unconstrained_draws", dtype="float64")
    per_draw = vectorize_graph(derived, unflatten(draws, (draws.shape[0],)))
    centres = make_initial_point_expression(
        free_rvs=model.free_RVs,
        rvs_to_transforms=model.rvs_to_transforms,
        initval_strategies={},
        jitter_rvs=set(),
        default_strategy="support_point",
        return_transformed=True,
    )
    with model:
        logp_fn = _compile_logp(compile_pymc, point, logp, grad)
        expand_draws = compile_pymc([draws], per_draw, mode="FAST_COMPILE", on_unused_input="ignore")
    support_point = pytensor.function(
        [], pt.concatenate([pt.as_tensor(c).ravel() for c in centres]), mode="FAST_COMPILE"
    )
    for fn in (logp_fn, expand_draws, support_point):
        fn.trust_input = True
    dims = model.named_vars_to_dims
    return CFunctions(
        n_dim=n_dim,
        names=names,
        shapes=shapes,
        derived=[v.name for v in derived],
        dims={k: tuple(v) for k, v in dims.items() if v},
        logp=logp_fn,
        expand_draws=expand_draws,
        support_point=support_point,
        data_terms=data_terms,
        data_term_names=data_term_names,
    )


def _precompute_data_terms(outputs: list, point: Any) -> tuple[list, Any, list[str]]:
    """Replace each per-run part of the graph that depends on the data alone (log(N / N0), say) by a shared variable
    computed once per fit, so the gradient's loop over runs does not redo it at every call (two logs and two
    divisions of chinchilla's ~33 operations per run). Returns the new outputs, the function computing the parts
    from the data (Python linker) and the parts' shared names."""
    import pytensor
    from pytensor.graph.traversal import ancestors, graph_inputs, io_toposort
    from pytensor.tensor.elemwise import DimShuffle

    nodes = io_toposort(list(graph_inputs(outputs)), outputs)
    moves = {point}
    for node in nodes:
        if any(i in moves for i in node.inputs):
            moves.update(node.outputs)
    parts = []
    for node in nodes:
        if not any(i in moves for i in node.inputs):
            continue
        for i in node.inputs:
            per_run = i.type.ndim >= 1 and i.type.shape != (1,) * i.type.ndim
            if i in moves or i.owner is None or not per_run or i in parts:
                continue
            work = [a for a in ancestors([i]) if a.owner is not None and not isinstance(a.owner.op, DimShuffle)]
            if work:
                parts.append(i)
    compute = pytensor.function([], parts, mode="FAST_COMPILE")
    if not parts:
        return outputs, compute, []
    names = [f"_data_term_{k}" for k in range(len(parts))]
    shared = [pytensor.shared(v, name=n, shape=p.type.shape) for p, v, n in zip(parts, compute(), names, strict=True)]
    return pytensor.clone_replace(outputs, dict(zip(parts, shared, strict=True))), compute, names


def _compile_logp(compile_pymc: Any, point: Any, logp: Any, grad: Any) -> Any:
    """logp and gradient as one C module for the whole graph (PyTensor's CLinker), else one module per op.

    One module: a first compile of chinchilla takes 5 s instead of 13 (one gcc call instead of ~25) and a
    call 19 us instead of 28 (no per-node dispatch). A law with an op that has no C code falls back."""
    from pytensor.compile.mode import Mode

    try:
        return compile_pymc([point], [logp, grad], mode=Mode(linker="c", optimizer="fast_run"))
    except Exception:  # an op without C code (CLinker cannot mix in Python implementations)
        return compile_pymc([point], [logp, grad], mode="FAST_RUN")


def nutpie_model(funcs: CFunctions, coords: Mapping[str, list], start: Any) -> Any:
    """A nutpie model calling the C functions. A PyTensor function is not re-entrant and a whole-graph C function
    cannot be copied, so calls take a lock; they hold the GIL anyway, so chains on threads would only queue."""
    from nutpie.compiled_pyfunc import from_pyfunc

    names, shapes = funcs.names, funcs.shapes

    lock = threading.Lock()  # chains on several threads share the one compiled function

    def make_logp() -> Any:
        fn = funcs.logp

        def logp(x: np.ndarray, **_: Any) -> tuple[float, np.ndarray]:
            with lock:
                value, grad = fn(x)
                return float(value), np.array(grad)

        return logp

    def make_expand(_seed1: Any, _seed2: Any, _chain: Any) -> Any:
        def expand(x: np.ndarray, **_: Any) -> dict[str, np.ndarray]:
            return funcs.split(np.array(x))  # the free variables only; `complete` adds the rest after sampling

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
