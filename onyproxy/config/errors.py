"""Config errors: every problem names the file, the key path and what was expected."""

from __future__ import annotations


class ConfigError(Exception):
    """One or more problems found while loading a config file."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Problems:
    """Collects problems so that one run reports all of them, not just the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        where = f"{self.source}: {path}" if path else self.source
        self.items.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


def join(path: str, key: str | int) -> str:
    """Extend a key path: ``models`` + ``a`` -> ``models.a``; ``targets`` + 1 -> ``targets[1]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)
