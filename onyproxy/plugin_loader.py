"""Find a plugin class by name: first-party folder, entry point, or ``module:Class``."""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points

_FIRST_PARTY = re.compile(r"^[a-z][a-z0-9_]*$")
ENTRY_POINT_GROUP = "onyproxy.plugins"


class PluginNotFound(LookupError):
    """No plugin answers to the name given in the pipeline."""


def find_plugin(name: str) -> type:
    """Return the plugin class called ``name``.

    ``auth`` → ``plugins.auth.Plugin``; a name registered in the ``onyproxy.plugins`` entry point
    group → that object; ``package.module:Class`` → that class.
    """
    if ":" in name:
        return _from_path(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _checked(ep.load(), name)
    if _FIRST_PARTY.match(name):
        try:
            module = importlib.import_module(f"plugins.{name}")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"plugins.{name}", "plugins"):
                raise
        else:
            return _checked(getattr(module, "Plugin", None), name)
    raise PluginNotFound(
        f"unknown plugin '{name}' (expected a first-party plugin such as "
        f"{', '.join(first_party())}, an '{ENTRY_POINT_GROUP}' entry point, "
        f"or a 'module:Class' path)"
    )


def first_party() -> list[str]:
    """Names of the plugins shipped in ``plugins/``."""
    import pkgutil

    import plugins

    return sorted(m.name for m in pkgutil.iter_modules(plugins.__path__) if m.ispkg)


def _from_path(spec: str) -> type:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise PluginNotFound(f"cannot import module '{module_name}' for plugin '{spec}'") from None
    return _checked(getattr(module, attr, None), spec)


def _checked(obj: object, name: str) -> type:
    if not isinstance(obj, type) or not isinstance(getattr(obj, "name", None), str):
        raise PluginNotFound(f"'{name}' is not a plugin class (a class with a 'name')")
    if not hasattr(obj, "Config"):
        raise PluginNotFound(f"plugin '{name}' has no Config schema")
    return obj
