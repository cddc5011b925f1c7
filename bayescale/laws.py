"""The law catalogue: read, validate and look up the declarative TOML law files in `models/`."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from bayescale._formula import Formula, FormulaError, evaluate, parse
from bayescale.errors import LawFileError, UnknownLawError

# NUTS back-ends a fit can use; a law file may name its default in [sampling] (see bayescale._sampling).
Sampler = Literal["nutpie", "nutpie-numba", "pymc", "numpyro"]

# Distribution name -> (required arguments, optional arguments); only these may appear in law files.
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Normal": (("mu", "sigma"), ()),
    "HalfNormal": (("sigma",), ()),
    "LogNormal": (("mu", "sigma"), ()),
    "Uniform": (("lower", "upper"), ()),
    "TruncatedNormal": (("mu", "sigma"), ("lower", "upper")),
    "Beta": (("alpha", "beta"), ()),
    "Gamma": (("alpha", "beta"), ()),
    "Exponential": (("lam",), ()),
    "StudentT": (("nu", "mu", "sigma"), ()),
    "HalfStudentT": (("nu", "sigma"), ()),
    "HalfCauchy": (("beta",), ()),
}
ROLES = ("N", "D", "C", "step", "loss")
_STATISTIC = re.compile(r"^\s*(min|max|geomean|median|mean)\(\s*([A-Za-z_]\w*)\s*\)\s*$")
DEFAULT_SIGMA_PRIOR = {"dist": "HalfNormal", "sigma": 0.1}


@dataclass(frozen=True)
class Prior:
    """A prior: a whitelisted PyMC distribution name and its arguments (numbers or constant expressions)."""

    dist: str
    args: Mapping[str, float | Formula]

    def resolve(self, constants: Mapping[str, float]) -> dict[str, float]:
        """Arguments as numbers, with constant expressions evaluated."""
        return {k: float(evaluate(v, constants)) if isinstance(v, Formula) else v for k, v in self.args.items()}

    def describe(self) -> str:
        args = ", ".join(
            f"{k}={v.source if isinstance(v, Formula) else v:g}" if not isinstance(v, Formula) else f"{k}={v.source}"
            for k, v in self.args.items()
        )
        return f"{self.dist}({args})"


@dataclass(frozen=True)
class Param:
    """One law parameter: its prior, support, a typical or published value, and why the prior is what it is."""

    name: str
    prior: Prior
    support: tuple[float, float]
    value: float | None
    why: str


@dataclass(frozen=True)
class Law:
    """A scaling law compiled from its TOML file; evaluate it with `mean` on NumPy or PyTensor."""

    name: str
    title: str
    reference: str
    inputs: tuple[str, ...]
    target: str
    formula: Formula
    definitions: tuple[tuple[str, Formula], ...]
    derived: tuple[tuple[str, Formula], ...]
    constants: Mapping[str, float | str]
    params: Mapping[str, Param]
    published: Mapping[str, float]
    sigma_prior: Prior
    # [noise] power: run noise (sd of log target) that scales as target^-power, e.g. accuracy's; None = constant
    noise_power: Prior | None = None
    # the largest value the target can take (accuracy, error rate: 1), or None; the likelihood is truncated there
    target_max: float | None = None
    design: Mapping[str, Any] = field(default_factory=dict)
    optimum: Formula | None = None  # closed-form N*(C, k), when the law has one
    sampling: Mapping[str, Any] = field(default_factory=dict)  # sampler defaults this law needs, e.g. tune
    # +1 where larger values of an input are extrapolation (the default), -1 where smaller ones are (e.g. loss)
    directions: Mapping[str, int] = field(default_factory=dict)
    source: str = field(repr=False, default="")
    path: str = ""
    notes: str = ""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params)

    def resolve_constants(self, columns: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Numbers for every constant; data statistics (e.g. `geomean(N)`) are taken from `columns`."""
        out: dict[str, float] = {}
        for key, spec in self.constants.items():
            if isinstance(spec, str):
                func, col = _STATISTIC.match(spec).groups()  # validated at load time
                x = np.asarray(columns[col], dtype=float)
                out[key] = float(
                    {"min": np.min, "max": np.max, "median": np.median, "mean": np.mean}[func](x)
                    if func != "geomean"
                    else np.exp(np.mean(np.log(x)))
                )
            else:
                out[key] = float(spec)
        return out

    def mean(
        self,
        params: Mapping[str, Any],
        inputs: Mapping[str, Any],
        constants: Mapping[str, float],
        backend: str = "numpy",
    ) -> Any:
        """The law's value (no noise) for parameter values and inputs that broadcast together."""
        env: dict[str, Any] = {**constants, **params, **inputs}
        for name, expr in self.definitions:
            env[name] = evaluate(expr, env, backend)
        return evaluate(self.formula, env, backend)

    def derived_values(self, params: Mapping[str, Any], constants: Mapping[str, float]) -> dict[str, Any]:
        """Reported quantities (e.g. A and B in natural units) computed from the sampled parameters."""
        env: dict[str, Any] = {**constants, **params}
        out = {}
        for name, expr in self.derived:
            out[name] = env[name] = evaluate(expr, env)
        return out

    def describe(self) -> str:
        return f"{self.name}: {self.title}\n  {self.target} = {self.formula.source}\n  inputs: {', '.join(self.inputs)}\n  reference: {self.reference}"


def _fail(path: str, fieldname: str, problem: str) -> LawFileError:
    return LawFileError(f"law file {path}: field '{fieldname}': {problem}")


def _catalogue_dir() -> Path:
    """The installed catalogue (bayescale.models in the wheel), else `models/` beside the source tree."""
    try:
        return Path(str(resources.files("bayescale.models")))
    except ModuleNotFoundError:  # running from a source checkout, where bayescale/ shadows the install
        return Path(__file__).resolve().parent.parent / "models"


@cache
def _catalogue() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_catalogue_dir().glob("*.toml"))}


def laws() -> list[str]:
    """Names of every law in the catalogue (`models/`)."""
    return list(_catalogue())


def law(name_or_path: str | Path | Law) -> Law:
    """Look up a law by catalogue name, or load a user's own TOML law file from a path."""
    if isinstance(name_or_path, Law):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise UnknownLawError(f"law file {text} does not exist")
        return _load(str(path.resolve()))
    catalogue = _catalogue()
    by_lower = {k.lower(): k for k in catalogue}
    if text.lower() not in by_lower:
        import difflib

        near = difflib.get_close_matches(text.lower(), list(by_lower), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(by_lower[n]) for n in near)}? " if near else ""
        raise UnknownLawError(
            f"unknown law {text!r}; {hint}known laws: {', '.join(catalogue)} (or give a path to a .toml file)"
        )
    return _load(str(catalogue[by_lower[text.lower()]]))


def adjusted(
    base: Law,
    priors: Mapping[str, Any] | None = None,
    fixed: Mapping[str, float] | None = None,
    tie: Mapping[str, str] | None = None,
) -> Law:
    """`base` with some priors replaced (same grammar as a law file's `prior = {...}`), some parameters fixed
    to numbers (they become constants; `fixed` also sets a law's numeric constant, e.g. `vocab`) and some tied to
    others (`tie={"beta": "alpha"}`: beta takes alpha's value; reported as a derived quantity), without writing a
    law file. The result is a law of its own: its TOML text, saved with a fit, records the changes, and it
    compiles separately from `base`."""
    priors, fixed, tie = priors or {}, fixed or {}, tie or {}
    if not priors and not fixed and not tie:
        return base
    import tomli_w

    spec = tomllib.loads(base.source)
    where = f"{base.name} (changed at call time)"
    settable = {k for k, v in spec.get("constants", {}).items() if _number(v)}  # e.g. a tokenizer's vocab
    for kind, changes in (("priors", priors), ("fixed", fixed), ("tie", tie)):
        for name in changes:
            if name not in spec["params"] and not (kind == "fixed" and name in settable):
                import difflib

                near = difflib.get_close_matches(str(name), list(spec["params"]), n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise LawFileError(
                    f"{kind}={{{name!r}: ...}}: {name!r} is not a parameter of law {base.name!r}; {hint}"
                    f"its parameters: {', '.join(spec['params'])}"
                    + (
                        f"; constants fixed= can set: {', '.join(sorted(settable))}"
                        if kind == "fixed" and settable
                        else ""
                    )
                )
    for name, prior in priors.items():
        spec["params"][name]["prior"] = dict(prior) if isinstance(prior, Mapping) else prior
    notes = []
    for name, value in fixed.items():
        if not _number(value) or not math.isfinite(value):
            raise LawFileError(f"fixed={{{name!r}: {value!r}}}: a fixed parameter takes a finite number")
        spec["params"].pop(name, None)  # a parameter becomes a constant; a constant takes the new number
        spec.setdefault("constants", {})[name] = float(value)
        spec.get("published", {}).pop(name, None)
        notes.append(f"{name} fixed at {value:g}")
    for name, to in tie.items():
        if to not in spec["params"] or to in tie:
            raise LawFileError(
                f"tie={{{name!r}: {to!r}}}: {to!r} must be a free parameter of law {base.name!r} that is not tied "
                f"itself; free: {', '.join(p for p in spec['params'] if p not in tie)}"
            )
        del spec["params"][name]
        spec["definitions"] = {name: to, **spec.get("definitions", {})}  # the formula reads it
        spec["derived"] = {name: to, **spec.get("derived", {})}  # reported, and seen by derived quantities
        spec.get("published", {}).pop(name, None)
        notes.append(f"{name} tied to {to}")
    notes += [f"prior of {name} set at call time" for name in priors]
    spec["title"] = f"{spec.get('title', spec['name'])} ({'; '.join(notes)})"
    if not spec["params"]:
        raise LawFileError(f"fixed=: law {base.name!r} needs at least one free parameter to fit")
    try:
        source = tomli_w.dumps(spec)
    except TypeError as exc:  # e.g. a prior given as something TOML cannot hold
        raise LawFileError(f"priors=: {exc}; give each prior as a dict of numbers and strings") from None
    return from_spec(tomllib.loads(source), where, source)


@cache
def _load(path: str) -> Law:
    source = Path(path).read_text()
    try:
        spec = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise LawFileError(f"law file {path}: not valid TOML: {exc}") from None
    return from_spec(spec, path, source)


_TABLES = ("constants", "params", "definitions", "derived", "published", "noise", "design", "sampling", "extrapolation")
_TEXTS = ("name", "title", "reference", "notes", "target")


def from_spec(spec: Mapping[str, Any], path: str = "<law>", source: str = "") -> Law:
    """Validate a parsed law file and compile its formulas. Every problem is a LawFileError naming the file and,
    where a check knows it, the field; a shape no check foresaw is still reported as a LawFileError."""
    try:
        return _from_spec(spec, path, source)
    except LawFileError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        raise LawFileError(
            f"law file {path}: malformed ({type(exc).__name__}: {exc}); compare it with a catalogue law "
            "(`bayescale laws` lists them; models/ holds their files)"
        ) from None


def _check_shape(spec: Mapping[str, Any], path: str) -> None:
    """Required keys present, tables are tables and texts are texts, before any field is read."""
    for key in ("name", "formula", "inputs", "params"):
        if key not in spec:
            raise _fail(path, key, "is required")
    for key in _TABLES:
        if key in spec and not isinstance(spec[key], dict):
            raise _fail(path, key, f"must be a table ([{key}] with key = value lines), got {spec[key]!r}")
    for key in _TEXTS:
        if key in spec and not isinstance(spec[key], str):
            raise _fail(path, key, f"must be a string, got {spec[key]!r}")
    if "optimum" in spec and not (isinstance(spec["optimum"], dict) and "N" in spec["optimum"]):
        raise _fail(path, "optimum", f'must be a table with N = "<formula>", got {spec["optimum"]!r}')


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _from_spec(spec: Mapping[str, Any], path: str, source: str) -> Law:
    _check_shape(spec, path)
    inputs = spec["inputs"]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i.isidentifier() for i in inputs):
        raise _fail(path, "inputs", f"must be a non-empty list of names, got {inputs!r}")
    target = spec.get("target", "loss")

    constants: dict[str, float | str] = {}
    for key, value in spec.get("constants", {}).items():
        if isinstance(value, str):
            m = _STATISTIC.match(value)
            if not m or m.group(2) not in (*inputs, target):
                raise _fail(
                    path,
                    f"constants.{key}",
                    f"{value!r} must be a number or min/max/mean/median/geomean(<input or {target}>)",
                )
        elif not isinstance(value, int | float) or isinstance(value, bool):
            raise _fail(path, f"constants.{key}", f"must be a number, got {value!r}")
        constants[key] = value

    params: dict[str, Param] = {}
    raw_params = spec["params"]
    if not isinstance(raw_params, dict) or not raw_params:
        raise _fail(path, "params", "must be a table with one sub-table per parameter")
    for pname, p in raw_params.items():
        if not isinstance(p, dict) or "prior" not in p:
            raise _fail(path, f"params.{pname}.prior", "is required")
        prior = _prior(p["prior"], path, f"params.{pname}.prior", constants)
        support = p.get("support", [-math.inf, math.inf])
        if not (
            isinstance(support, list) and len(support) == 2 and all(map(_number, support)) and support[0] < support[1]
        ):
            raise _fail(path, f"params.{pname}.support", f"must be [lower, upper], got {support!r}")
        value = p.get("value")
        if value is not None and not _number(value):
            raise _fail(path, f"params.{pname}.value", f"must be a number, got {value!r}")
        if value is not None and not support[0] <= value <= support[1]:
            raise _fail(path, f"params.{pname}.value", f"{value} lies outside its support {support}")
        params[pname] = Param(pname, prior, (float(support[0]), float(support[1])), value, p.get("why", ""))

    known = set(inputs) | set(constants) | set(params)
    clash = set(inputs) & (set(constants) | set(params)) or set(constants) & set(params)
    if clash:
        raise _fail(path, "params", f"names used twice: {sorted(clash)}")
    definitions = []
    for dname, expr in spec.get("definitions", {}).items():
        definitions.append((dname, _formula(expr, known, path, f"definitions.{dname}")))
        known.add(dname)
    formula = _formula(spec["formula"], known, path, "formula")
    from_target = {k for k, v in constants.items() if isinstance(v, str) and _STATISTIC.match(v).group(2) == target}
    leaked = from_target & (formula.names | {n for _, f in definitions for n in f.names})
    if leaked:
        raise _fail(
            path,
            "formula",
            f"uses {sorted(leaked)}, computed from the target {target!r}; such constants may only set priors",
        )
    derived = []
    dknown = set(constants) | set(params)
    for dname, expr in spec.get("derived", {}).items():
        derived.append((dname, _formula(expr, dknown, path, f"derived.{dname}")))
        dknown.add(dname)
    unused = set(params) - formula.names - {n for _, f in definitions for n in f.names}
    if unused:
        raise _fail(path, "params", f"parameters never used by the formula: {sorted(unused)}")

    published = spec.get("published", {})
    for key, value in published.items():
        if key not in params and key not in dict(derived):
            raise _fail(path, f"published.{key}", "is neither a parameter nor a derived quantity")
        if not isinstance(value, int | float):
            raise _fail(path, f"published.{key}", f"must be a number, got {value!r}")
    noise = spec.get("noise", {})
    sigma_prior = _prior(noise.get("sigma", DEFAULT_SIGMA_PRIOR), path, "noise.sigma", constants)
    noise_power = _prior(noise["power"], path, "noise.power", constants) if "power" in noise else None
    unknown = set(noise) - {"sigma", "power"}
    if unknown:
        raise _fail(path, "noise", f"unknown keys {sorted(unknown)} (known: sigma, power)")
    target_max = spec.get("target_max")
    if target_max is not None and not (_number(target_max) and 0 < target_max < float("inf")):
        raise _fail(path, "target_max", f"must be a positive number (e.g. 1.0 for an accuracy), got {target_max!r}")
    return Law(
        name=str(spec["name"]),
        title=str(spec.get("title", spec["name"])),
        reference=str(spec.get("reference", "")),
        inputs=tuple(inputs),
        target=str(target),
        formula=formula,
        definitions=tuple(definitions),
        derived=tuple(derived),
        constants=constants,
        params=params,
        published=dict(published),
        sigma_prior=sigma_prior,
        noise_power=noise_power,
        target_max=None if target_max is None else float(target_max),
        source=source,
        path=path,
        notes=str(spec.get("notes", "")),
        design=_design(spec.get("design", {}), inputs, path),
        sampling=_sampling(spec.get("sampling", {}), path),
        directions=_directions(spec.get("extrapolation", {}), inputs, path),
        optimum=_formula(spec["optimum"]["N"], dknown | {"C", "k"}, path, "optimum.N") if "optimum" in spec else None,
    )


def _design(design: Mapping[str, Any], inputs: list[str], path: str) -> dict[str, Any]:
    """Simulation design: a [low, high] log-uniform range per input, run count `n` and log-noise `noise`."""
    for key, kind in (("n", "a whole number of runs"), ("noise", "a number (log-scale noise sd)")):
        if key in design and not (_number(design[key]) and design[key] > 0):
            raise _fail(path, f"design.{key}", f"must be {kind} above 0, got {design[key]!r}")
    out = {"n": int(design.get("n", 100)), "noise": float(design.get("noise", 0.01)), "ranges": {}}
    for key, value in design.items():
        if key in ("n", "noise"):
            continue
        if key not in inputs:
            raise _fail(path, f"design.{key}", f"is not an input of the law ({', '.join(inputs)})")
        if not (isinstance(value, list) and len(value) == 2 and all(map(_number, value)) and 0 < value[0] < value[1]):
            raise _fail(path, f"design.{key}", f"must be [low, high] with 0 < low < high, got {value!r}")
        out["ranges"][key] = (float(value[0]), float(value[1]))
    return out


def _directions(table: Mapping[str, Any], inputs: list[str], path: str) -> dict[str, int]:
    """Which way each input extrapolates: [extrapolation] loss = "down" for an input whose new runs are smaller."""
    for key, value in table.items():
        if key not in inputs:
            raise _fail(path, f"extrapolation.{key}", f"is not an input of the law ({', '.join(inputs)})")
        if value not in ("up", "down"):
            raise _fail(path, f"extrapolation.{key}", f"must be 'up' or 'down', got {value!r}")
    return {k: -1 if table.get(k) == "down" else 1 for k in inputs}


def _sampling(sampling: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Sampler defaults a hard law needs (draws, tune, target_accept, sampler); the caller's arguments still win."""
    allowed = {"draws": int, "tune": int, "target_accept": float}
    for key, value in sampling.items():
        if key == "sampler":
            if value not in get_args(Sampler):
                raise _fail(path, "sampling.sampler", f"one of {', '.join(get_args(Sampler))}, got {value!r}")
            continue
        if key not in allowed or not isinstance(value, int | float) or isinstance(value, bool):
            raise _fail(path, f"sampling.{key}", f"allowed: {', '.join(allowed)} with numeric values, got {value!r}")
    return {k: allowed.get(k, str)(v) for k, v in sampling.items()}


def _formula(expr: Any, known: set[str], path: str, fieldname: str) -> Formula:
    if not isinstance(expr, str):
        raise _fail(path, fieldname, f"must be a string, got {expr!r}")
    try:
        return parse(expr, known)
    except FormulaError as exc:
        raise _fail(path, fieldname, str(exc)) from None


def _prior(spec: Any, path: str, fieldname: str, constants: Mapping[str, Any]) -> Prior:
    if not isinstance(spec, dict) or "dist" not in spec:
        raise _fail(path, fieldname, 'must be a table like { dist = "Normal", mu = 0, sigma = 1 }')
    dist = spec["dist"]
    if dist not in DISTRIBUTIONS:
        raise _fail(path, fieldname, f"distribution {dist!r} is not supported; use one of {', '.join(DISTRIBUTIONS)}")
    required, optional = DISTRIBUTIONS[dist]
    args = {k: v for k, v in spec.items() if k != "dist"}
    missing = [a for a in required if a not in args]
    extra = [a for a in args if a not in required + optional]
    if missing or extra:
        raise _fail(
            path,
            fieldname,
            f"{dist} needs {list(required)} (optional {list(optional)}); missing {missing}, unexpected {extra}",
        )
    resolved: dict[str, float | Formula] = {}
    for key, value in args.items():
        if isinstance(value, str):
            resolved[key] = _formula(value, set(constants), path, f"{fieldname}.{key}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            resolved[key] = float(value)
        else:
            raise _fail(path, f"{fieldname}.{key}", f"must be a number or an expression of constants, got {value!r}")
    return Prior(dist, resolved)
