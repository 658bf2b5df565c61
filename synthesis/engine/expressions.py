"""The one safe evaluator for `condition`, `if` and `while` expressions. Never eval/exec.

Expressions are Python-like and are parsed into an AST that only these nodes may appear
in: literals, names, `${name}` references, `a.b` and `a[b]` lookups into data,
comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`), `and`/`or`/`not`,
arithmetic (`+`, `-`, `*`, `/`, `//`, `%`, unary `-`), `x if c else y`, list/tuple/dict
literals, and calls of the helper functions in FUNCTIONS. Names are variables, plus
`steps` (each step's `status`, `output`, `error`, `exit_code`) and `true`/`false`/`null`.

Evaluation is bounded in memory and time, whatever the expression and the variables:

- every value an expression builds (by a literal, an operator or a function) is measured
  before it is built, and may weigh at most MAX_SIZE, its weight being its characters
  and elements, nested ones included (so `[[1] * 99999] * 99999` is refused, not built);
- integers an expression computes may have at most MAX_INT_BITS bits;
- an evaluation has MAX_WORK units of work, each about 10 ns of work or 4 bytes built,
  charged before each operation (the costs are the underscored constants below). Past
  it the evaluation fails with "expression too expensive".

So the worst expression takes a few tens of milliseconds and a few megabytes of the
thread that evaluates it (an execution actor's), never the rest of the process's time.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synthesis.engine.substitution import UnknownVariable, lookup

MAX_LENGTH = 2000  # characters of source
MAX_NESTING = 100  # levels of the parsed expression
MAX_SIZE = 100_000  # characters and elements of any value an expression builds
MAX_INT_BITS = 4096  # of an integer an expression computes
MAX_ROUND_DIGITS = 1000  # |ndigits| of round()
MAX_WORK = 1_000_000  # units of work per evaluation
# What work costs, in units
_NODE = 1  # visiting a node of the expression
_CHARS_PER_UNIT = 4  # characters compared, searched or hashed, for one unit
_BUILD = 2  # a character or an element built (an element is 8 bytes)
_OBJECT = 12  # a new string object (a piece of split())
_CONTAINER = 100  # a list or dict weighed element by element
_ELEMENT = 3  # an element of flat data weighed (at C speed)
_LOOP = 10  # an element handled by a loop in Python
_RENDER = 50  # a list or dict element measured for str()

_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_][A-Za-z0-9_.\-]*)\}")
_CONSTANTS = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_CONTAINERS = (list, tuple, dict)
_LITERALS = (str, int, float, type(None))  # bool is an int
_SCALARS = {int, float, bool, type(None)}


class ExpressionError(ValueError):
    """A problem with an expression, at parse time or when it is evaluated."""


class _List(list[Any]):
    """A list an evaluation built, which knows its weight (so no walk has to learn it)."""

    __slots__ = ("weight",)

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self.weight: int | None = None


class _Dict(dict[Any, Any]):
    """A dict an evaluation built, which knows its weight."""

    __slots__ = ("weight",)

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self.weight: int | None = None


_BUILT = {_List, _Dict}


def _too_large() -> ExpressionError:
    return ExpressionError(f"result larger than {MAX_SIZE} characters and elements")


# Names callable in an expression; each is a `_Evaluator` method `_f_<name>`, except
# `defined` and `var`, which the evaluator handles itself.
FUNCTIONS = (
    "len",
    "str",
    "int",
    "float",
    "bool",
    "abs",
    "min",
    "max",
    "round",
    "sum",
    "sorted",
    "lower",
    "upper",
    "strip",
    "startswith",
    "endswith",
    "contains",
    "split",
    "join",
    "replace",
    "keys",
    "values",
    "get",
    "defined",
    "var",
)

_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_ORDER: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    **_ORDER,
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
    *_ARITHMETIC,
    *_COMPARE,
)


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.Expression

    def evaluate(self, variables: Mapping[str, Any], steps: Mapping[str, Any]) -> Any:
        """Raises ExpressionError on an unknown name, a type error, a value or a cost over
        the limits, and the like."""
        try:
            return _Evaluator(variables, steps).visit(self.tree.body)
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError("a value is nested too deeply") from None
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            ArithmeticError,
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
    except RecursionError:
        raise ExpressionError(f"nested deeper than {MAX_NESTING} levels") from None
    pending: list[tuple[ast.AST, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        _check_node(node)
        if depth > MAX_NESTING:
            raise ExpressionError(f"nested deeper than {MAX_NESTING} levels")
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return Expression(source, tree)


def _check_node(node: ast.AST) -> None:
    if not isinstance(node, _ALLOWED):
        raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")
    if isinstance(node, ast.Constant) and not isinstance(node.value, _LITERALS):
        raise ExpressionError(f"{type(node.value).__name__} literals are not allowed")
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


class _Evaluator:
    """One evaluation: the values it sees and the work it has done."""

    def __init__(self, variables: Mapping[str, Any], steps: Mapping[str, Any]) -> None:
        self.variables = variables
        self.steps = steps
        self.work = 0

    # ---- the budget ------------------------------------------------------------------

    def charge(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise ExpressionError(f"expression too expensive (over {MAX_WORK} units of work)")

    def weight(self, value: Any, cap: int = MAX_SIZE) -> int:
        """Characters and elements in `value`, nested ones included; once the count passes
        `cap` the walk stops and returns what it has. A walk is charged; the weight of a
        value this evaluation built is known without one."""
        if isinstance(value, str):
            return len(value)
        if not isinstance(value, _CONTAINERS):
            return 0
        total = 0
        pending = [value]
        while pending:
            current = pending.pop()
            known = current.weight if type(current) in _BUILT else None
            if known is not None:
                total += known
            else:
                total += len(current)
                if total > cap:
                    return total
                self.charge(_CONTAINER + _ELEMENT * len(current))
                items = [*current, *current.values()] if isinstance(current, dict) else current
                kinds = set(map(type, items))  # so that flat data is weighed at C speed
                if kinds == {str}:
                    total += sum(map(len, items))
                elif not kinds <= _SCALARS:
                    self.charge(_LOOP * len(items))
                    for item in items:
                        if isinstance(item, str):
                            total += len(item)
                        elif isinstance(item, _CONTAINERS):
                            pending.append(item)
            if total > cap:
                return total
        return total

    def cost(self, value: Any) -> int:
        """Units to read `value` once: to compare, search or hash it."""
        if isinstance(value, str):
            return len(value) // _CHARS_PER_UNIT
        return self.weight(value, MAX_WORK)

    def build(self, weight: int) -> None:
        """Refuse a value about to be built if it would weigh more than MAX_SIZE, else
        charge for building it."""
        if weight > MAX_SIZE:
            raise _too_large()
        self.charge(_BUILD * weight + 1)

    def built(self, value: _List | _Dict, weight: int | None = None) -> Any:
        """A container just built, given its weight; with none given, weigh it (its length
        was bounded before it was built) and refuse it if it is over MAX_SIZE."""
        if weight is None:
            weight = self.weight(value)
            self.build(weight)
        value.weight = weight
        return value

    def number(self, value: Any) -> Any:
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise ExpressionError(f"number larger than {MAX_INT_BITS} bits")
        return value

    def text(self, value: Any, room: int = MAX_SIZE) -> str:
        """`str(value)`, refused before it is built if it could be longer than `room`. A
        string is itself; anything else is measured first, then rendered by Python."""
        if isinstance(value, str):
            return value
        bound = 0
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                bound += self._repr_length(item, room - bound)
            elif isinstance(item, _CONTAINERS):
                self.charge(_RENDER * len(item))
                # brackets, `(x,)`, and ", " between elements (and ": " in a dict)
                bound += 3 + (4 if isinstance(item, dict) else 2) * len(item)
                if bound > room:
                    raise _too_large()
                pending.extend(item)
                if isinstance(item, dict):
                    pending.extend(item.values())
            elif isinstance(item, bool) or item is None:
                bound += 5
            elif isinstance(item, int):
                bound += item.bit_length() // 3 + 2  # digits and sign
            else:
                bound += len(repr(item))  # a float, or what an embedding may pass
            if bound > room:
                raise _too_large()
        result = str(value)
        self.charge(_BUILD * len(result))
        return result

    def _repr_length(self, text: str, room: int) -> int:
        """An upper bound of `len(repr(text))`, refused past `room`."""
        if len(text) + 2 > room:
            raise _too_large()
        self.charge(len(text) // _CHARS_PER_UNIT)
        if text.isascii() and text.isprintable():  # only quotes and backslashes escaped
            return len(text) + 2 + text.count("\\") + text.count("'")
        return len(repr(text))

    # ---- nodes -----------------------------------------------------------------------

    def visit(self, node: ast.AST) -> Any:
        self.charge(_NODE)
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
                value = self.visit(inner)
                bounds = [self.visit(p) if p else None for p in (part.lower, part.upper, part.step)]
                return self._slice(value, slice(*bounds))
            case ast.Subscript(value=inner, slice=key):
                value, index = self.visit(inner), self.visit(key)
                self.charge(self.cost(index))
                return value[index]
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
                return self.number(-self.visit(operand))
            case ast.UnaryOp(op=ast.UAdd(), operand=operand):
                return self.number(+self.visit(operand))
            case ast.BinOp(left=left, op=op, right=right):
                return self._arithmetic(type(op), self.visit(left), self.visit(right))
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                current = self.visit(left)
                for op, comparator in zip(ops, comparators, strict=True):
                    right = self.visit(comparator)
                    if not self._compare(type(op), current, right):
                        return False
                    current = right
                return True
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self.visit(body) if self.visit(test) else self.visit(orelse)
            case ast.List(elts=elts) | ast.Tuple(elts=elts):
                items = [self.visit(e) for e in elts]
                weight = len(items) + sum(self.weight(item) for item in items)
                self.build(weight)
                return self.built(_List(items), weight)
            case ast.Dict(keys=keys, values=values):
                pairs = [
                    (self.visit(k), self.visit(v))
                    for k, v in zip(keys, values, strict=True)
                    if k is not None
                ]
                weight = len(pairs) + sum(self.weight(k) + self.weight(v) for k, v in pairs)
                self.build(weight)
                return self.built(_Dict(pairs), weight)
            case ast.Call(func=ast.Name(id=name), args=args):
                arguments = [self.visit(a) for a in args]
                if name == "var":  # `${name}`, which may be a path: `${cfg.items.0}`
                    try:
                        return lookup(self.text(arguments[0]), self.variables)
                    except UnknownVariable as exc:
                        raise ExpressionError(str(exc)) from None
                if name == "defined":
                    return self.text(arguments[0]) in self.variables
                function: Callable[..., Any] = getattr(self, f"_f_{name}")
                return function(*arguments)
        raise ExpressionError(f"{type(node).__name__} is not allowed")

    def _lookup(self, name: str) -> Any:
        if name in self.variables:
            return self.variables[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        raise ExpressionError(f"unknown variable {name!r}")

    def _slice(self, value: Any, part: slice) -> Any:
        if not isinstance(value, str | list | tuple):
            return value[part]  # the error Python gives
        length = len(range(*part.indices(len(value))))
        if length > MAX_SIZE:
            raise _too_large()
        if isinstance(value, str):
            self.build(length)
            return value[part]
        return self.built(_List(value[part]))

    def _arithmetic(self, op: type[ast.operator], a: Any, b: Any) -> Any:
        if op is ast.Add:
            if isinstance(a, str) and isinstance(b, str):
                self.build(len(a) + len(b))
            elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
                weight = self.weight(a) + self.weight(b)
                self.build(weight)
                return self.built(_List(a + b), weight)
        elif op is ast.Mult:
            for items, times in ((a, b), (b, a)):
                if isinstance(items, str | list | tuple) and isinstance(times, int):
                    weight = self.weight(items) * max(times, 0)
                    self.build(weight)
                    if isinstance(items, str):
                        return items * times
                    repeated = _List(items)
                    repeated *= times
                    return self.built(repeated, weight)
            # A product has the bits of its factors together, or one fewer.
            both = isinstance(a, int) and isinstance(b, int)
            if both and a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
                raise ExpressionError(f"number larger than {MAX_INT_BITS} bits")
        elif op is ast.Mod and isinstance(a, str):
            raise ExpressionError("'%' formats no strings here: use + and str()")
        return self.number(_ARITHMETIC[op](a, b))

    def _compare(self, op: type[ast.cmpop], a: Any, b: Any) -> Any:
        if op in _ORDER:
            # Comparing stops at the end of either side, so either side's cost bounds it.
            if isinstance(a, str) and isinstance(b, str):
                self.charge(min(len(a), len(b)) // _CHARS_PER_UNIT)
            elif isinstance(a, _CONTAINERS) and isinstance(b, _CONTAINERS):
                self.charge(self.cost(a if len(a) <= len(b) else b))
        elif op in (ast.In, ast.NotIn):
            self._charge_search(a, b)
        return _COMPARE[op](a, b)

    def _charge_search(self, item: Any, container: Any) -> None:
        """Charge `item in container`."""
        if isinstance(container, str):
            self.charge(self.cost(container) + self.cost(item))
        elif isinstance(container, list | tuple):
            self.charge(len(container) * (1 + self.cost(item)))
        else:
            self.charge(self.cost(item))  # hashing it

    def _iteration(self, items: Any) -> int:
        """Units to go through `items` element by element, comparing them."""
        if isinstance(items, str):
            return len(items)
        return self.weight(items, MAX_WORK) + len(items)

    # ---- helper functions ------------------------------------------------------------

    def _f_len(self, value: Any) -> int:
        return len(value)

    def _f_str(self, value: Any) -> str:
        return self.text(value)

    def _rendered(self, value: Any, room: int) -> str:
        self.charge(_RENDER)
        return self.text(value, room)

    def _f_int(self, value: Any, *base: Any) -> int:
        if isinstance(value, str):
            if len(value) > MAX_SIZE:
                raise _too_large()
            self.charge(self.cost(value))
        return self.number(int(value, *base))

    def _f_float(self, value: Any) -> float:
        if isinstance(value, str):
            if len(value) > MAX_SIZE:
                raise _too_large()
            self.charge(self.cost(value))
        return float(value)

    def _f_bool(self, value: Any) -> bool:
        return bool(value)

    def _f_abs(self, value: Any) -> Any:
        return abs(value)

    def _f_min(self, *values: Any) -> Any:
        self.charge(self._iteration(values[0] if len(values) == 1 else values))
        return min(*values)

    def _f_max(self, *values: Any) -> Any:
        self.charge(self._iteration(values[0] if len(values) == 1 else values))
        return max(*values)

    def _f_round(self, value: Any, *digits: Any) -> Any:
        if digits and isinstance(digits[0], int) and abs(digits[0]) > MAX_ROUND_DIGITS:
            raise ExpressionError(f"round: ndigits must be within +/-{MAX_ROUND_DIGITS}")
        return self.number(round(value, *digits))

    def _f_sum(self, items: Any, *start: Any) -> Any:
        if start and (isinstance(start[0], bool) or not isinstance(start[0], int | float)):
            raise ExpressionError("sum adds numbers")
        self.charge(len(items))  # adding numbers; anything else fails at once
        return self.number(sum(items, *start))

    def _f_sorted(self, items: Any) -> list[Any]:
        units = self._iteration(items)
        self.charge(units * max(1, len(items).bit_length()))
        weight = 2 * len(items) if isinstance(items, str) else self.weight(items)
        self.build(weight)
        return self.built(_List(sorted(items)), weight)

    def _transform(self, value: Any, change: Callable[[str], str]) -> str:
        """`change` of the text of `value`, which may be up to 3 times as long (`ß`)."""
        text = self.text(value)
        self.build(len(text))
        result = change(text)
        if len(result) > MAX_SIZE:
            raise _too_large()
        return result

    def _f_lower(self, value: Any) -> str:
        return self._transform(value, str.lower)

    def _f_upper(self, value: Any) -> str:
        return self._transform(value, str.upper)

    def _f_strip(self, value: Any) -> str:
        return self._transform(value, str.strip)

    def _f_startswith(self, value: Any, prefix: Any) -> bool:
        self.charge(self.cost(prefix))
        return self.text(value).startswith(prefix)

    def _f_endswith(self, value: Any, suffix: Any) -> bool:
        self.charge(self.cost(suffix))
        return self.text(value).endswith(suffix)

    def _f_contains(self, container: Any, item: Any) -> bool:
        self._charge_search(item, container)
        return item in container

    def _f_split(self, value: Any, *separator: Any) -> list[str]:
        text = self.text(value)
        if len(text) > MAX_SIZE:  # which bounds the pieces and their count
            raise _too_large()
        pieces = text.split(*separator)
        weight = len(pieces) + sum(map(len, pieces))
        self.charge(_OBJECT * len(pieces))
        self.build(weight)
        return self.built(_List(pieces), weight)

    def _f_join(self, items: Any, separator: Any = "") -> str:
        separator = self.text(separator)
        self.charge(_LOOP * len(items))
        parts: list[str] = []
        size = 0
        for item in items:
            if parts:
                size += len(separator)
            part = item if isinstance(item, str) else self._rendered(item, MAX_SIZE - size)
            size += len(part)
            if size > MAX_SIZE:
                raise _too_large()
            parts.append(part)
        self.build(size)
        return separator.join(parts)

    def _f_replace(self, value: Any, old: Any, new: Any) -> str:
        text = self.text(value)
        self.charge(self.cost(text))
        count = text.count(old)
        self.build(len(text) + count * (len(new) - len(old)))
        return text.replace(old, new)

    def _f_keys(self, mapping: Any) -> list[Any]:
        if len(mapping) > MAX_SIZE:
            raise _too_large()
        return self.built(_List(mapping.keys()))

    def _f_values(self, mapping: Any) -> list[Any]:
        if len(mapping) > MAX_SIZE:
            raise _too_large()
        return self.built(_List(mapping.values()))

    def _f_get(self, mapping: Any, key: Any, default: Any = None) -> Any:
        self.charge(self.cost(key))
        return mapping.get(key, default) if isinstance(mapping, dict) else default


def _member(value: Any, name: str) -> Any:
    """`a.b` reads key `b` of a mapping; nothing else has members."""
    if isinstance(value, Mapping):
        if name in value:
            return value[name]
        raise ExpressionError(f"no field {name!r}")
    raise ExpressionError(f"cannot read {name!r} of a {type(value).__name__}")


def truthy(expression: Expression, variables: Mapping[str, Any], steps: Mapping[str, Any]) -> bool:
    return bool(expression.evaluate(variables, steps))
