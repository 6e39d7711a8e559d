"""What every provider adapter offers the forwarder.

An adapter speaks one API family. It receives a request body already in one of its ``shapes``
(translation happens outside, in :mod:`onyproxy.translate`), sends it, and hands back a
:class:`Reply` in that same shape, reading the usage on the way.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

if TYPE_CHECKING:
    from onyproxy.config.model import ProviderConfig, TargetConfig
    from onyproxy.exchange import Exchange, Usage
    from onyproxy.sse import Event

log = logging.getLogger("onyproxy.providers")


@dataclass(eq=False)
class UpstreamError(Exception):
    """The provider failed or refused; ``retryable`` says whether another try may help.

    ``message`` is what the client may see (for a 4xx it is the provider's own message); it is
    never logged, as providers echo prompts in error messages.
    """

    provider: str
    status: int  # HTTP status from the provider, or 502/504 for transport failures
    kind: str  # "http" | "timeout" | "connection" | "stream"
    message: str
    retryable: bool
    retry_after_s: float | None = None
    error_type: str | None = None  # the provider's error type, e.g. "invalid_request_error"
    param: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.provider}: {self.kind} {self.status}")


@dataclass(eq=False)
class Reply:
    """A successful upstream answer, in the adapter's shape.

    Exactly one of ``body`` (non-stream) or ``events`` (stream) is set. ``raw`` holds the body's
    original bytes so an untranslated answer is relayed without re-encoding.
    """

    shape: str
    status: int = 200
    body: dict[str, Any] | None = None
    raw: bytes | None = None
    events: AsyncIterator[Event] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    close: Callable[[], Awaitable[None]] | None = None

    async def aclose(self) -> None:
        """Release the upstream connection (cancels an unfinished stream)."""
        if self.close is not None:
            close, self.close = self.close, None
            await close()


class Adapter:
    """Base for adapters: one instance per configured provider."""

    type: ClassVar[str] = ""
    shapes: ClassVar[tuple[str, ...]] = ()  # API shapes it speaks natively, preferred first
    operations: ClassVar[tuple[str, ...]] = ("chat",)
    default_base_url: ClassVar[str | None] = None

    def __init__(self, name: str, config: ProviderConfig, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.config = config
        self.session = session
        self.base_url = (config.base_url or self.default_base_url or "").rstrip("/")
        warn_if_plaintext(name, self.base_url)

    async def send(self, ex: Exchange, target: TargetConfig, operation: str, shape: str,
                   body: dict[str, Any], stream: bool, timeout_s: float) -> Reply:
        """Send ``body`` (in ``shape``) to the provider; raise :class:`UpstreamError` on failure.

        Must record usage on ``ex.usage`` from the answer (for streams: as events pass).
        """
        raise NotImplementedError

    def refuse_headers(self, ex: Exchange) -> None:
        """Raise a ``GatewayError`` when ``ex`` carries client headers this adapter would pass
        on and its provider's config does not allow (nothing by default)."""

    def read_usage(self, shape: str, obj: dict[str, Any], usage: Usage) -> None:
        """Copy the usage in a response body or stream event of ``shape`` onto ``usage``."""
        raise NotImplementedError

    async def metered(self, shape: str, events: AsyncIterator[Event],
                      usage: Usage) -> AsyncIterator[Event]:
        """Pass ``events`` through, reading usage from those that carry it."""
        async for event in events:
            if "usage" in event.data:  # also matches Gemini's usageMetadata
                obj = event.json()
                if isinstance(obj, dict):
                    self.read_usage(shape, obj, usage)
            yield event


def warn_if_plaintext(provider: str, base_url: str) -> None:
    """Warn, once per provider at start, when prompts and the provider key would cross the
    network unencrypted: ``http://`` to anything but this machine (a local vLLM or Ollama on
    loopback is fine). Upstream certificates are always verified (aiohttp's default)."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return
    log.warning("provider '%s' uses plain http:// to %s: prompts, answers and the provider key "
                "travel unencrypted; use https:// unless this network is trusted",
                provider, parts.hostname)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
