"""Safe formula language for law files: parse with `ast`, whitelist, evaluate on NumPy or PyTensor.

A law's formula is parsed once into a small tree of tuples. The same tree is evaluated against
NumPy (fast prediction over posterior draws) and PyTensor (the PyMC model). Nothing is ever
passed to `eval`: only arithmetic, powers, numbers, declared names and the functions below.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FUNCTIONS = (
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "softplus",
    "sigmoid",
    "tanh",
    "abs",
    "minimum",
    "maximum",
)
_ARITY = {"minimum": 2, "maximum": 2}
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}


class FormulaError(ValueError):
    """A formula uses something outside the whitelisted language."""


@dataclass(frozen=True)
class Formula:
    """A parsed expression: its source text, its tree and the names it reads."""

    source: str
    tree: tuple
    names: frozenset[str]


def parse(source: str, allowed_names: Iterable[str]) -> Formula:
    """Parse `source`, accepting only whitelisted syntax and the given names."""
    allowed = set(allowed_names)
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise FormulaError(f"cannot parse {source!r}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise FormulaError(f"cannot parse {source!r}: {exc}") from None
    names: set[str] = set()
    tree = _convert(node, allowed, names, source)
    return Formula(source=source, tree=tree, names=frozenset(names))


def _convert(node: ast.AST, allowed: set[str], names: set[str], source: str) -> tuple:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"only numbers are allowed as constants, got {node.value!r} in {source!r}")
        return ("num", float(node.value))
    if isinstance(node, ast.Name):
        if node.id not in allowed:
            raise FormulaError(
                f"unknown name {node.id!r} in {source!r}; declared names are: {', '.join(sorted(allowed))}"
            )
        names.add(node.id)
        return ("name", node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return (
            _BINOPS[type(node.op)],
            _convert(node.left, allowed, names, source),
            _convert(node.right, allowed, names, source),
        )
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _convert(node.operand, allowed, names, source)
        return ("neg", inner) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise FormulaError(f"function {what!r} is not allowed in {source!r}; allowed: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise FormulaError(f"keyword arguments are not allowed in {source!r}")
        arity = _ARITY.get(node.func.id, 1)
        if len(node.args) != arity:
            raise FormulaError(f"{node.func.id} takes {arity} argument(s) in {source!r}")
        return ("call", node.func.id, *(_convert(a, allowed, names, source) for a in node.args))
    raise FormulaError(f"{type(node).__name__} is not allowed in {source!r} (only arithmetic, ** and functions)")


def _numpy_backend() -> dict[str, Callable[..., Any]]:
    import numpy as np
    from scipy.special import expit

    return {
        "exp": np.exp,
        "log": np.log,
        "log1p": np.log1p,
        "expm1": np.expm1,
        "sqrt": np.sqrt,
        "softplus": lambda x: np.logaddexp(0.0, x),
        "sigmoid": expit,
        "tanh": np.tanh,
        "abs": np.abs,
        "minimum": np.minimum,
        "maximum": np.maximum,
    }


def _pytensor_backend() -> dict[str, Callable[..., Any]]:
    import numpy as np
    import pytensor.tensor as pt

    def float64(f: Callable[..., Any]) -> Callable[..., Any]:
        # PyTensor stores a plain Python number in the narrowest dtype that holds it (50257.0 -> float32), so
        # log(vocab) of a constant alone would be computed in float32; numbers are made float64 first
        return lambda *args: f(*(np.float64(a) if isinstance(a, int | float) else a for a in args))

    return {
        name: float64(f)
        for name, f in {
            "exp": pt.exp,
            "log": pt.log,
            "log1p": pt.log1p,
            "expm1": pt.expm1,
            "sqrt": pt.sqrt,
            "softplus": pt.softplus,
            "sigmoid": pt.sigmoid,
            "tanh": pt.tanh,
            "abs": pt.abs,
            "minimum": pt.minimum,
            "maximum": pt.maximum,
        }.items()
    }


_BACKENDS: dict[str, Callable[[], dict[str, Callable[..., Any]]]] = {
    "numpy": _numpy_backend,
    "pytensor": _pytensor_backend,
}


def evaluate(formula: Formula | tuple, env: Mapping[str, Any], backend: str = "numpy") -> Any:
    """Evaluate a parsed formula with `env` giving a value (array or tensor) for every name."""
    funcs = _BACKENDS[backend]()
    tree = formula.tree if isinstance(formula, Formula) else formula
    return _eval(tree, env, funcs)


def _eval(tree: tuple, env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> Any:
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "name":
        return env[tree[1]]
    if kind == "neg":
        return -_eval(tree[1], env, funcs)
    if kind == "call":
        return funcs[tree[1]](*(_eval(t, env, funcs) for t in tree[2:]))
    left, right = _eval(tree[1], env, funcs), _eval(tree[2], env, funcs)
    if kind == "add":
        return left + right
    if kind == "sub":
        return left - right
    if kind == "mul":
        return left * right
    if kind == "div":
        return left / right
    return left**right
