"""``${VAR}`` and ``${VAR:-default}`` expansion over the string values of a parsed YAML tree.

Expansion runs after YAML parsing, so an environment value can never inject YAML structure.
Values that came from the environment are marked (:class:`Expanded`) so that the schema may read
``port: ${PORT:-8080}`` as the number it is meant to be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from onyproxy.config.errors import Problems, join

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Expanded(str):
    """A string whose text came (at least partly) from the environment."""

    __slots__ = ()


def expand(node: Any, env: Mapping[str, str], problems: Problems, path: str = "") -> Any:
    """Return ``node`` with every ``${...}`` in its strings replaced from ``env``."""
    if isinstance(node, dict):
        return {k: expand(v, env, problems, join(path, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [expand(v, env, problems, join(path, i)) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _expand_string(node, env, problems, path)
    return node


def _expand_string(text: str, env: Mapping[str, str], problems: Problems, path: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is not None and (value != "" or default is None):
            return value
        if default is not None:
            return default
        problems.add(path, f"environment variable ${{{name}}} is not set and has no default "
                           f"(write ${{{name}:-default}} to give one)")
        return ""

    return Expanded(_VAR.sub(substitute, text))
