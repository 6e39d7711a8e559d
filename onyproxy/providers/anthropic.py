"""Adapter for Anthropic's Messages API (``POST {base_url}/v1/messages``).

Authentication is the ``x-api-key`` header plus a dated ``anthropic-version``. Usage comes in
the JSON answer, and in streams from ``message_start`` (input side) and ``message_delta``
(cumulative output). Errors are ``{"type": "error", "error": {"type", "message"}}``; HTTP 529
``overloaded_error`` is retryable like any 5xx (see :mod:`onyproxy.providers.http`), and the
same error sent inside a stream after the 200 ends the stream as an ``UpstreamError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from onyproxy.errors import GatewayError
from onyproxy.providers.base import Adapter, Reply, UpstreamError
from onyproxy.providers.http import post

if TYPE_CHECKING:
    from onyproxy.config.model import TargetConfig
    from onyproxy.exchange import Exchange, Usage
    from onyproxy.sse import Event

API_VERSION = "2023-06-01"
# Anthropic's error.type for failures it reports inside a stream, as the HTTP status it would
# have used outside one (https://docs.anthropic.com/en/api/errors).
STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicAdapter(Adapter):
    """Speaks the Messages API, JSON and SSE."""

    type = "anthropic"
    shapes = ("anthropic",)
    operations = ("chat",)
    default_base_url = "https://api.anthropic.com"

    async def send(self, ex: Exchange, target: TargetConfig, operation: str, shape: str,
                   body: dict[str, Any], stream: bool, timeout_s: float) -> Reply:
        body = {key: value for key, value in body.items() if key != "stream"}
        body["model"] = target.model
        if stream:
            body["stream"] = True
        reply = await post(self.session, self.name, self.base_url + "/v1/messages",
                           self.headers(ex, target), body, shape=shape, stream=stream,
                           timeout_s=timeout_s, read_error=read_anthropic_error)
        if reply.body is not None:
            self.read_usage(shape, reply.body, ex.usage)
        else:
            reply.events = self.metered(shape, self.checked(reply.events), ex.usage)
        return reply

    def headers(self, ex: Exchange, target: TargetConfig) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, **self.config.headers, **target.headers}
        betas = client_betas(ex)
        if betas:
            # An Anthropic client's beta opt-ins reach Anthropic unchanged (same shape: the
            # answer is relayed as is, so nothing downstream has to understand the feature);
            # refuse_headers has made sure the operator allowed each one.
            headers["anthropic-beta"] = ",".join(betas)
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def refuse_headers(self, ex: Exchange) -> None:
        """A beta can switch on paid or third-party features (MCP servers, code execution,
        1M context ...): each value must be in ``providers.<name>.allowed_betas``."""
        for beta in client_betas(ex):
            if beta not in self.config.allowed_betas:
                raise GatewayError(
                    400, "invalid_request_error",
                    f"The anthropic-beta value '{beta[:64]}' is not allowed on this gateway "
                    f"for the provider '{self.name}'.", param="anthropic-beta",
                    code="beta_not_allowed")

    async def checked(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """Pass events through; an ``error`` event ends the stream as an ``UpstreamError``."""
        async for event in events:
            if event.event == "error":
                raise self.stream_error(event.json())
            yield event

    def stream_error(self, obj: Any) -> UpstreamError:
        error = obj.get("error") if isinstance(obj, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        status = STREAM_ERROR_STATUS.get(kind or "", 502)
        # The provider's message may echo the prompt; the client gets a neutral one.
        return UpstreamError(self.name, status, "stream",
                             f"The provider '{self.name}' reported {kind or 'an error'} "
                             f"mid-stream.", retryable=False, error_type=kind)

    def read_usage(self, shape: str, obj: dict[str, Any], usage: Usage) -> None:
        if obj.get("type") == "message_start":
            obj = obj.get("message") or {}
        read_anthropic_usage(obj.get("usage"), usage)


def client_betas(ex: Exchange) -> list[str]:
    """The ``anthropic-beta`` values of an Anthropic client (every header line, comma lists
    split); other clients' betas are never passed on, as their answers are translated."""
    if ex.shape != "anthropic" or ex.headers is None:
        return []
    lines = ex.headers.getall("anthropic-beta", []) if hasattr(ex.headers, "getall") else \
        [ex.headers.get("anthropic-beta") or ""]
    return [value.strip() for line in lines for value in line.split(",") if value.strip()]


def read_anthropic_usage(raw: Any, usage: Usage) -> None:
    """A Message's or stream event's usage; counts absent from an event are left as they were.

    Anthropic's ``input_tokens`` excludes cache reads and writes. The gateway's prompt count
    includes both, with reads as ``cached_tokens``, as OpenAI reports it.
    """
    if not isinstance(raw, dict):
        return
    if raw.get("input_tokens") is not None:
        cached = int(raw.get("cache_read_input_tokens") or 0)
        written = int(raw.get("cache_creation_input_tokens") or 0)
        usage.prompt_tokens = int(raw["input_tokens"]) + cached + written
        usage.cached_tokens = cached
    if raw.get("output_tokens") is not None:
        usage.completion_tokens = int(raw["output_tokens"])  # cumulative in message_delta
    read_server_tool_use(raw.get("server_tool_use"), usage)
    usage.reported = True


def read_server_tool_use(raw: Any, usage: Usage) -> None:
    """``server_tool_use`` counts (``web_search_requests`` ...) as uses per feature; like the
    token counts they are cumulative, so a later event's count replaces an earlier one."""
    if not isinstance(raw, dict):
        return
    for key, count in raw.items():
        if key.endswith("_requests") and isinstance(count, int) and not isinstance(count, bool):
            name = key.removesuffix("_requests")
            if count > 0 or name in usage.server_tool_uses:
                usage.server_tool_uses[name] = count


def read_anthropic_error(parsed: Any) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, param, code) from an Anthropic error body."""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return "", None, None, None
    return str(error.get("message") or ""), error.get("type"), None, None
