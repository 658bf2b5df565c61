"""`${name}` substitution in step parameters, at any depth.

`$${` is a literal `${`. `${a.b.0}` reads a path into a variable's value (object keys and
list indexes). A string that is exactly `${name}` becomes the variable's value
with its own type (a list stays a list); inside a longer string a value is written as
text (strings as they are, anything else as JSON). An unknown name is an error that
names it, never a silent empty string. `${secret.NAME}` reads the server's named secrets
(engine/secrets.py), not the variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from synthesis.engine.secrets import PREFIX

_NAME = r"([A-Za-z0-9_][A-Za-z0-9_.\-]*)"  # step ids may start with a digit
_TOKEN = re.compile(r"\$\$\{|\$\{" + _NAME + r"\}")
WHOLE_REFERENCE = re.compile(r"\$\{" + _NAME + r"\}")


class UnknownVariable(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown variable {self.name!r}"


class UnknownSecret(UnknownVariable):
    def __str__(self) -> str:
        return f"unknown secret {self.name!r}"


def is_whole_reference(value: Any) -> bool:
    return isinstance(value, str) and WHOLE_REFERENCE.fullmatch(value) is not None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def lookup(
    name: str, variables: Mapping[str, Any], secrets: Mapping[str, str] | None = None
) -> Any:
    """`name`, or a path into a variable's value: `fetch_output.body.items.0.id`; with
    `secrets`, `secret.NAME` is that secret."""
    if secrets is not None and name.startswith(PREFIX):
        secret = name[len(PREFIX) :]
        if secret not in secrets:
            raise UnknownSecret(secret)
        return secrets[secret]
    if name in variables:
        return variables[name]
    head, *path = name.split(".")
    if head not in variables or not path:
        raise UnknownVariable(name)
    value = variables[head]
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise UnknownVariable(name)
    return value


def substitute(
    value: Any, variables: Mapping[str, Any], secrets: Mapping[str, str] | None = None
) -> Any:
    """Return `value` with every reference replaced; raises UnknownVariable (or
    UnknownSecret for `${secret.NAME}` when `secrets` are given)."""
    if isinstance(value, str):
        whole = WHOLE_REFERENCE.fullmatch(value)
        if whole:
            return lookup(whole.group(1), variables, secrets)
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            return as_text(lookup(match.group(1), variables, secrets))

        return _TOKEN.sub(replace, value)
    if isinstance(value, dict):
        return {key: substitute(item, variables, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables, secrets) for item in value]
    return value
