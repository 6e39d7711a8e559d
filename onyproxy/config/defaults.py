"""Files shipped inside the package (``onyproxy/defaults/``): the default gateway config and
the model catalog. Read through :mod:`importlib.resources`, so an installed wheel finds them
whatever the working directory is."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def shipped(name: str) -> Traversable:
    """The packaged file ``onyproxy/defaults/<name>``."""
    return files("onyproxy").joinpath("defaults", name)
