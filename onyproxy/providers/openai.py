"""Adapter for OpenAI and every OpenAI-compatible server (Azure, vLLM, Ollama, Groq ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from onyproxy.providers.base import Adapter, Reply, UpstreamError
from onyproxy.providers.http import post
from onyproxy.sse import has_usage

if TYPE_CHECKING:
    from onyproxy.config.model import TargetConfig
    from onyproxy.exchange import Exchange, Usage
    from onyproxy.sse import Event

_PATHS = {
    ("openai", "chat"): "/chat/completions",
    ("openai", "embeddings"): "/embeddings",
    ("openai-responses", "chat"): "/responses",
}


class OpenAIAdapter(Adapter):
    """Speaks Chat Completions, Embeddings and (when translated to) Responses."""

    type = "openai"
    shapes = ("openai", "openai-responses")
    operations = ("chat", "embeddings")
    default_base_url = "https://api.openai.com/v1"

    async def send(self, ex: Exchange, target: TargetConfig, operation: str, shape: str,
                   body: dict[str, Any], stream: bool, timeout_s: float) -> Reply:
        body = {**body, "model": target.model}
        if stream and shape == "openai":
            # Usage in streams only comes when asked for; the surface strips the extra chunk
            # again when the client did not ask.
            body["stream_options"] = {**(body.get("stream_options") or {}),
                                      "include_usage": True}
        headers = {**self.config.headers, **target.headers}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        reply = await post(self.session, self.name, self.base_url + _PATHS[shape, operation],
                           headers, body, shape=shape, stream=stream, timeout_s=timeout_s,
                           read_error=read_openai_error)
        if reply.body is not None:
            self.read_usage(shape, reply.body, ex.usage)
        else:
            reply.events = self.metered(shape, self.checked(reply.events), ex.usage)
        return reply

    async def checked(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """Pass events through; an ``{"error": ...}`` event ends the stream as an error.

        OpenAI-compatible servers report failures after the 200 this way; relayed untouched,
        the exchange would count as a success.
        """
        async for event in events:
            obj = event.json() if '"error"' in event.data else None
            if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
                _, kind, _, code = read_openai_error(obj)
                # The provider's message may echo the prompt; the client gets a neutral one.
                raise UpstreamError(self.name, 502, "stream",
                                    f"The provider '{self.name}' reported "
                                    f"{kind or 'an error'} mid-stream.",
                                    retryable=False, error_type=kind, code=code)
            yield event

    async def metered(self, shape: str, events: AsyncIterator[Event],
                      usage: Usage) -> AsyncIterator[Event]:
        """Read usage from the events that carry it, without parsing the ``"usage": null``
        that every chunk has once usage was asked for."""
        async for event in events:
            if has_usage(event.data):
                obj = event.json()
                if isinstance(obj, dict):
                    self.read_usage(shape, obj, usage)
            yield event

    def read_usage(self, shape: str, obj: dict[str, Any], usage: Usage) -> None:
        if shape == "openai-responses":
            obj = obj.get("response") or obj  # stream events wrap the response object
            read_tool_calls(obj.get("output"), usage)
        read_openai_usage(obj.get("usage"), usage)


# Responses output items of built-in tools that OpenAI bills per call.
_BILLED_CALLS = {"web_search_call": "web_search", "file_search_call": "file_search"}


def read_tool_calls(output: Any, usage: Usage) -> None:
    """Count the per-call-billed tool calls of a whole Responses answer (``response.completed``
    in streams carries the whole output too, so a count replaces an earlier one)."""
    if not isinstance(output, list):
        return
    counts: dict[str, int] = {}
    for item in output:
        name = _BILLED_CALLS.get(item.get("type")) if isinstance(item, dict) else None
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    usage.server_tool_uses.update(counts)


def read_openai_usage(raw: Any, usage: Usage) -> None:
    """Chat Completions and Responses usage objects, with their token details."""
    if not isinstance(raw, dict):
        return
    prompt = raw.get("prompt_tokens", raw.get("input_tokens"))
    completion = raw.get("completion_tokens", raw.get("output_tokens"))
    if prompt is None and completion is None:
        return
    usage.prompt_tokens = int(prompt or 0)
    usage.completion_tokens = int(completion or 0)
    details_in = raw.get("prompt_tokens_details") or raw.get("input_tokens_details") or {}
    details_out = raw.get("completion_tokens_details") or raw.get("output_tokens_details") or {}
    usage.cached_tokens = int(details_in.get("cached_tokens") or 0)
    usage.reasoning_tokens = int(details_out.get("reasoning_tokens") or 0)
    usage.reported = True


def read_openai_error(parsed: Any) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, param, code) from an OpenAI error body."""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return "", None, None, None
    return (str(error.get("message") or ""), error.get("type"), error.get("param"),
            error.get("code"))
