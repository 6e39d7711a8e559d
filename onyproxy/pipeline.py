"""The plugin interface and the pipeline that runs the hooks (DESIGN.md §1).

A plugin is a plain class with a ``name``, a ``Config`` dataclass and any of the async hooks
``on_request``, ``on_response``, ``on_chunk``, ``on_complete``, ``on_log``. The pipeline looks
the hooks up once, at start: a hook a plugin does not define costs nothing per request.
Request-side hooks run in pipeline order, response-side hooks in reverse order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from onyproxy.logs import log_crash

if TYPE_CHECKING:
    from onyproxy.exchange import Exchange
    from onyproxy.gateway import Gateway
    from onyproxy.sse import Event


@dataclass(frozen=True)
class NoConfig:
    """The schema of a plugin that takes no options."""


class Plugin:
    """Base class for plugins; subclassing is optional, the attributes are what counts.

    ``start()`` and ``stop()``, when defined, run once with the gateway's lifetime.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any, gateway: Gateway) -> None:
        self.config = config
        self.gateway = gateway


Hook = Callable[..., Awaitable[None]]


class Pipeline:
    """Runs the hooks of an ordered list of plugin instances."""

    def __init__(self, plugins: list[Any]) -> None:
        self.plugins = plugins
        self._request = _hooks(plugins, "on_request")
        self._response = _hooks(reversed(plugins), "on_response")
        self._chunk = _hooks(reversed(plugins), "on_chunk")
        self._complete = _hooks(reversed(plugins), "on_complete")
        self._log = _hooks(reversed(plugins), "on_log")

    @property
    def has_chunk_hooks(self) -> bool:
        return bool(self._chunk)

    def get(self, name: str) -> Any | None:
        """The plugin instance called ``name``, if it is in the pipeline."""
        return next((p for p in self.plugins if p.name == name), None)

    async def request(self, ex: Exchange) -> None:
        """Request side, in pipeline order; a hook rejects by raising ``GatewayError``."""
        for hook in self._request:
            await hook(ex)

    async def response(self, ex: Exchange) -> None:
        """The upstream answered (headers and body, or the start of a stream)."""
        for hook in self._response:
            await hook(ex)

    async def chunk(self, ex: Exchange, event: Event) -> None:
        """One streamed event, in the client's shape, before it is written."""
        for hook in self._chunk:
            await hook(ex, event)

    async def complete(self, ex: Exchange) -> None:
        """The exchange ended. Every hook runs even if an earlier one fails."""
        for hook in self._complete:
            try:
                await hook(ex)
            except Exception as exc:
                log_crash(f"{_owner(hook)}.on_complete", exc)

    async def log(self, ex: Exchange, record: dict[str, Any]) -> None:
        """An access-log record is about to be written; hooks may scrub it in place."""
        for hook in self._log:
            try:
                await hook(ex, record)
            except Exception as exc:
                log_crash(f"{_owner(hook)}.on_log", exc)

    async def start(self) -> None:
        for plugin in self.plugins:
            start = getattr(plugin, "start", None)
            if start is not None:
                await start()

    async def stop(self) -> None:
        for plugin in reversed(self.plugins):
            stop = getattr(plugin, "stop", None)
            if stop is not None:
                try:
                    await stop()
                except Exception as exc:
                    log_crash(f"{plugin.name}.stop", exc)


def _hooks(plugins: Any, name: str) -> list[Hook]:
    return [getattr(p, name) for p in plugins if callable(getattr(p, name, None))]


def _owner(hook: Hook) -> str:
    return getattr(getattr(hook, "__self__", None), "name", "plugin")
