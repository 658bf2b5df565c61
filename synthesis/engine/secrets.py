"""Secrets: the server's named secrets (`${secret.NAME}`), an execution's secret variables,
and the Masker that shows `***` wherever one of their values would show.

Pure: parsing the secrets and token files' text, finding references in plan parameters,
deciding which variables are secret, and masking values at any depth of JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

MASK = "***"
MIN_LENGTH = 4  # shorter values are not masked in text: "a" would mask every "a"
PREFIX = "secret."
SECRET_ENV_PREFIX = "SYNTHESIS_SECRET_"  # the server's environment, and a command's
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `$${` is a literal `${`, as in substitution; `${secret.X}` is a reference to secret X.
_REFERENCE = re.compile(r"\$\$\{|\$\{secret\.([^}]*)\}")
_SECRET_LIKE = re.compile(
    r"pass(?:word|wd|phrase)|secret|token|api_?key|private_?key|access_?key|credential",
    re.IGNORECASE,
)


def looks_secret(name: str) -> bool:
    """A variable whose name says it holds a secret (`password`, `api_key`, `GH_TOKEN`...)
    is masked without being declared."""
    return _SECRET_LIKE.search(name) is not None


def references(value: Any) -> set[str]:
    """The secret names `${secret.NAME}` names in a value, at any depth."""
    found: set[str] = set()
    for text in leaves(value):
        if "${secret." in text:
            found.update(m.group(1) for m in _REFERENCE.finditer(text) if m.group(1) is not None)
    return found


def leaves(value: Any) -> Iterator[str]:
    """The texts a secret value could show as: its strings (and numbers), at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield orjson.dumps(value).decode()
    elif isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)


def _forms(value: str) -> tuple[str, ...]:
    """A value as it is, and as it stands inside a JSON string (`"`, `\\`, newlines and
    other control characters escaped), since outputs often carry JSON."""
    escaped = orjson.dumps(value).decode()[1:-1]
    return (value,) if escaped == value else (value, escaped)


class Masker:
    """Replaces every occurrence of each secret value (of MIN_LENGTH characters or more),
    longest first, with `***`, in strings at any depth of a JSON value (keys too).
    `str.replace` rather than one regex: a 1 MiB output takes a millisecond, not 25."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = frozenset(v for v in values if len(v) >= MIN_LENGTH)
        forms = {form for value in self.values for form in _forms(value)}
        self._ordered = sorted(forms, key=lambda v: (-len(v), v))
        self.longest = len(self._ordered[0]) if self._ordered else 0
        self._shortest = len(self._ordered[-1]) if self._ordered else 0

    def __bool__(self) -> bool:
        return bool(self._ordered)

    def union(self, values: Iterable[str]) -> Masker:
        more = frozenset(v for v in values if len(v) >= MIN_LENGTH)
        return self if more <= self.values else Masker(self.values | more)

    def text(self, text: str) -> str:
        if len(text) < self._shortest:
            return text
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def mask(self, value: Any) -> Any:
        if not self._ordered:
            return value
        return self._mask(value)

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self._mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask(v) for v in value]
        return value

    def pending_start(self, text: str) -> int:
        """Where the end of `text` that could be the start of a secret begins (its length
        when no secret starts there): what live output must wait for the next chunk."""
        for start in range(max(0, len(text) - self.longest + 1), len(text)):
            tail = text[start:]
            if any(value.startswith(tail) for value in self._ordered):
                return start
        return len(text)

    def span_end(self, text: str, cut: int) -> int:
        """Where it is safe to cut `text` at or after `cut`: never inside a secret."""
        moved = True
        while moved:
            moved = False
            for value in self._ordered:
                found = text.find(value, max(0, cut - len(value) + 1), cut + len(value) - 1)
                if found != -1 and found < cut < found + len(value):
                    cut, moved = found + len(value), True
        return cut


NO_MASK = Masker()


@dataclass
class OutputMasker:
    """Masks a step's live output, chunk by chunk: an end of a chunk that could be the
    start of a secret waits for the next chunk, so a secret split between two chunks is
    still masked; everything else goes out at once."""

    masker: Masker
    _held: dict[str, str] = field(default_factory=dict)

    def feed(self, stream: str, text: str) -> str:
        if not self.masker:
            return text
        text = self._held.pop(stream, "") + text
        cut = self.masker.span_end(text, self.masker.pending_start(text))
        if cut < len(text):
            self._held[stream] = text[cut:]
        return self.masker.text(text[:cut])

    def drain(self) -> list[tuple[str, str]]:
        """What is still held, masked: at the step's end."""
        held, self._held = self._held, {}
        return [(stream, self.masker.text(text)) for stream, text in held.items() if text]


@dataclass
class SecretScope:
    """The names of one execution's secret variables: declared (the plan's or the
    request's `secret_variables`, a parent's secrets passed to a child) or named like a
    secret. The server's named secrets come in as a `base` Masker."""

    names: set[str] = field(default_factory=set)

    def declare(self, names: Iterable[str], variables: Iterable[str] = ()) -> None:
        """Declared names, and the given variables whose names look secret."""
        self.names.update(names)
        self.names.update(n for n in variables if looks_secret(n))

    def secret_values(self, variables: Mapping[str, Any]) -> set[str]:
        return {
            leaf for name in self.names if name in variables for leaf in leaves(variables[name])
        }

    def masker(self, variables: Mapping[str, Any], base: Masker) -> Masker:
        """`base` (the named secrets) with the values of this execution's secret variables."""
        return base.union(self.secret_values(variables))

    def view(self, variables: Mapping[str, Any], masker: Masker) -> dict[str, Any]:
        """Variables as they may be shown and stored."""
        return {
            name: MASK if name in self.names else masker.mask(value)
            for name, value in variables.items()
        }

    def kept(self, variables: Mapping[str, Any], base: Masker) -> dict[str, Any]:
        """The real values of the secret variables, to run again after a restart; the
        named secrets are masked out of them even there (they are never stored)."""
        return {name: base.mask(variables[name]) for name in self.names if name in variables}


def unknown_references(
    value: Any, known: Mapping[str, str] | Iterable[str], where: str
) -> list[tuple[str, str]]:
    """(field, name) for each `${secret.NAME}` in `value` that names no secret."""
    problems: list[tuple[str, str]] = []
    if isinstance(value, str):
        problems.extend((where, n) for n in sorted(references(value)) if n not in known)
    elif isinstance(value, dict):
        for key, item in value.items():
            problems.extend(unknown_references(item, known, f"{where}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(unknown_references(item, known, f"{where}[{index}]"))
    return problems


def check_secrets(secrets: Mapping[str, str]) -> None:
    """Raise ValueError for a name that cannot be referenced or a value too short to mask."""
    for name, value in secrets.items():
        if not SECRET_NAME.fullmatch(name):
            raise ValueError(f"secret name {name!r} must be letters, digits and '_'")
        if not isinstance(value, str) or len(value) < MIN_LENGTH:
            raise ValueError(
                f"secret {name!r} must be a string of at least {MIN_LENGTH} characters "
                "(a shorter one could not be masked)"
            )


def parse_secrets(text: str, source: str) -> dict[str, str]:
    """A secrets file: a JSON object of strings, or `NAME=value` lines (`#` comments).
    Errors name the line, never a value."""
    if text.lstrip().startswith("{"):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ValueError(f"{source}: not valid JSON") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise ValueError(f"{source}: a JSON secrets file is an object of strings")
        return parsed
    secrets: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        name = name.strip()
        if not sep or not SECRET_NAME.fullmatch(name):
            raise ValueError(f"{source} line {number}: expected NAME=value")
        if name in secrets:
            raise ValueError(f"{source} line {number}: secret {name!r} is defined twice")
        secrets[name] = value.strip()
    return secrets


def parse_tokens(text: str, source: str) -> tuple[str, ...]:
    """A token file: one `TOKEN` or `TOKEN:read` a line; blank lines and `#` comments."""
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if any(c.isspace() for c in stripped):
            raise ValueError(f"{source} line {number}: expected one token, TOKEN or TOKEN:read")
        tokens.append(stripped)
    if not tokens:
        raise ValueError(f"{source}: no token in it")
    return tuple(tokens)
