"""The one safe evaluator for `condition`, `if` and `while` expressions. Never eval/exec.

Expressions are Python-like and are parsed into an AST that only these nodes may appear
in: literals, names, `${name}` references, `a.b` and `a[b]` lookups into data,
comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`), `and`/`or`/`not`,
arithmetic (`+`, `-`, `*`, `/`, `//`, `%`, unary `-`), `x if c else y`, list/tuple/dict
literals, and calls of the helper functions in FUNCTIONS. Names are variables, plus
`steps` (each step's `status`, `output`, `error`, `exit_code`) and `true`/`false`/`null`.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synthesis.engine.substitution import UnknownVariable, lookup

MAX_LENGTH = 2000
MAX_SEQUENCE = 100_000  # no `"x" * 10**9`

_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_][A-Za-z0-9_.\-]*)\}")
_CONSTANTS = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}


class ExpressionError(ValueError):
    """A problem with an expression, at parse time or when it is evaluated."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": _text,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sum": sum,
    "sorted": sorted,
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    "strip": lambda s: _text(s).strip(),
    "startswith": lambda s, prefix: _text(s).startswith(prefix),
    "endswith": lambda s, suffix: _text(s).endswith(suffix),
    "contains": lambda container, item: item in container,
    "split": lambda s, sep=None: _text(s).split(sep),
    "join": lambda items, sep="": _text(sep).join(_text(i) for i in items),
    "replace": lambda s, old, new: _text(s).replace(old, new),
    "keys": lambda d: list(d.keys()),
    "values": lambda d: list(d.values()),
    "get": lambda d, key, default=None: d.get(key, default) if isinstance(d, dict) else default,
    "defined": None,  # handled by the evaluator: defined("name")
    "var": None,  # handled by the evaluator: var("step-1_output")
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}
_ALLOWED = (
    ast.Expression,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Compare,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.IfExp,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Call,
    *_BINARY,
    *_COMPARE,
)


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.Expression

    def evaluate(self, variables: Mapping[str, Any], steps: Mapping[str, Any]) -> Any:
        """Raises ExpressionError on an unknown name, a type error and the like."""
        try:
            return _Evaluator(variables, steps).visit(self.tree.body)
        except ExpressionError:
            raise
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            ZeroDivisionError,
            AttributeError,
        ) as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def parse(source: Any) -> Expression:
    """Parse and check an expression; raises ExpressionError naming the problem."""
    if isinstance(source, bool):
        source = "true" if source else "false"
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("must be a non-empty expression string")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    rewritten = _REFERENCE.sub(lambda m: f"var({m.group(1)!r})", source)
    try:
        tree = ast.parse(rewritten.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"name {node.id!r} is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                known = ", ".join(sorted(FUNCTIONS))
                raise ExpressionError(f"only these functions can be called: {known}")
            if node.keywords:
                raise ExpressionError("keyword arguments are not allowed")
    return Expression(source, tree)


class _Evaluator:
    def __init__(self, variables: Mapping[str, Any], steps: Mapping[str, Any]) -> None:
        self.variables = variables
        self.steps = steps

    def visit(self, node: ast.AST) -> Any:
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id="steps"):
                return self.steps
            case ast.Name(id=name):
                return self._lookup(name)
            case ast.Attribute(value=inner, attr=attr):
                return _member(self.visit(inner), attr)
            case ast.Subscript(value=inner, slice=ast.Slice() as part):
                low = self.visit(part.lower) if part.lower else None
                high = self.visit(part.upper) if part.upper else None
                step = self.visit(part.step) if part.step else None
                return self.visit(inner)[low:high:step]
            case ast.Subscript(value=inner, slice=key):
                return self.visit(inner)[self.visit(key)]
            case ast.BoolOp(op=ast.And(), values=values):
                result: Any = True
                for value in values:
                    result = self.visit(value)
                    if not result:
                        return result
                return result
            case ast.BoolOp(op=ast.Or(), values=values):
                result = False
                for value in values:
                    result = self.visit(value)
                    if result:
                        return result
                return result
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self.visit(operand)
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                return -self.visit(operand)
            case ast.UnaryOp(op=ast.UAdd(), operand=operand):
                return +self.visit(operand)
            case ast.BinOp(left=left, op=op, right=right):
                a, b = self.visit(left), self.visit(right)
                if isinstance(op, ast.Mult):
                    _check_repeat(a, b)
                return _bounded(_BINARY[type(op)](a, b))
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                current = self.visit(left)
                for op, comparator in zip(ops, comparators, strict=True):
                    right = self.visit(comparator)
                    if not _COMPARE[type(op)](current, right):
                        return False
                    current = right
                return True
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self.visit(body) if self.visit(test) else self.visit(orelse)
            case ast.List(elts=elts) | ast.Tuple(elts=elts):
                return [self.visit(e) for e in elts]
            case ast.Dict(keys=keys, values=values):
                return {
                    self.visit(k): self.visit(v)
                    for k, v in zip(keys, values, strict=True)
                    if k is not None
                }
            case ast.Call(func=ast.Name(id=name), args=args):
                arguments = [self.visit(a) for a in args]
                if name == "var":  # `${name}`, which may be a path: `${cfg.items.0}`
                    try:
                        return lookup(_text(arguments[0]), self.variables)
                    except UnknownVariable as exc:
                        raise ExpressionError(str(exc)) from None
                if name == "defined":
                    return _text(arguments[0]) in self.variables
                return _bounded(FUNCTIONS[name](*arguments))
        raise ExpressionError(f"{type(node).__name__} is not allowed")

    def _lookup(self, name: str) -> Any:
        if name in self.variables:
            return self.variables[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        raise ExpressionError(f"unknown variable {name!r}")


def _member(value: Any, name: str) -> Any:
    """`a.b` reads key `b` of a mapping; nothing else has members."""
    if isinstance(value, Mapping):
        if name in value:
            return value[name]
        raise ExpressionError(f"no field {name!r}")
    raise ExpressionError(f"cannot read {name!r} of a {type(value).__name__}")


def _check_repeat(a: Any, b: Any) -> None:
    """Refuse `sequence * n` before it is built if the result would be too long."""
    for seq, n in ((a, b), (b, a)):
        if (
            isinstance(seq, str | list | tuple)
            and isinstance(n, int)
            and len(seq) * n > MAX_SEQUENCE
        ):
            raise ExpressionError(f"result longer than {MAX_SEQUENCE}")


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_SEQUENCE:
        raise ExpressionError(f"result longer than {MAX_SEQUENCE}")
    return value


def truthy(expression: Expression, variables: Mapping[str, Any], steps: Mapping[str, Any]) -> bool:
    return bool(expression.evaluate(variables, steps))
