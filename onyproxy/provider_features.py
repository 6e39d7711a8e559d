"""Request fields that make a provider do more than answer, on the operator's account.

Provider-run tools (web search, code execution, MCP servers ...), priority tiers and
provider-side storage cost the operator money or reach third parties, while metering counts
tokens. Each is off until ``models.<name>.allow`` names it. This module is the one place that
says, per API shape, which fields and values turn a feature on: the names of
:data:`FEATURES` are what the config accepts and the README lists.

Sources: Anthropic Messages ``tools`` union and top-level fields (anthropic-sdk-python
``MessageCreateParams``), OpenAI Chat Completions and Responses ``CreateParams`` (openai-python),
Gemini ``GenerateContentRequest`` and ``Tool`` (google-genai).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from onyproxy.errors import GatewayError

FEATURES: dict[str, str] = {
    "web_search": "provider-run web search: Anthropic web_search tools, OpenAI "
                  "web_search_options and web_search tools, Gemini googleSearch, "
                  "googleSearchRetrieval, enterpriseWebSearch and other search tools",
    "web_fetch": "the provider fetches URLs: Anthropic web_fetch tools, Gemini urlContext",
    "code_execution": "code run in the provider's sandbox: Anthropic code_execution tools and "
                      "container, OpenAI code_interpreter and programmatic_tool_calling, "
                      "Gemini codeExecution",
    "mcp_servers": "the provider calls MCP servers the client names: Anthropic mcp_servers "
                   "and mcp_toolset, OpenAI mcp tools, Gemini mcpServers",
    "computer_use": "computer and browser tools: Anthropic computer_*, browser_toolset_*, "
                    "OpenAI computer and computer_use_preview, Gemini computerUse",
    "file_search": "search over files stored at the provider: OpenAI file_search, Gemini "
                   "fileSearch and retrieval",
    "image_generation": "OpenAI Responses image_generation tool",
    "google_maps": "Gemini googleMaps grounding",
    "advisor": "Anthropic advisor tool (a second model consulted per call)",
    "service_tier": "a service tier other than the default: OpenAI flex, scale, priority, "
                    "fast ...; Gemini flex, priority",
    "inference_geo": "Anthropic inference_geo (region-pinned inference is priced higher)",
    "speed": "Anthropic speed other than 'standard' (fast mode is priced higher)",
    "store": "provider-side storage shared by every account on the provider key: OpenAI store, "
             "previous_response_id, conversation and stored prompts; Gemini store and "
             "cachedContent",
    "background": "OpenAI Responses background mode (needs a stored response)",
}

# Tool types that are plain definitions the client runs itself: nothing extra upstream.
_CLIENT_TOOLS = frozenset({"function", "custom", "local_shell", "shell", "apply_patch",
                           "namespace", "tool_search"})
_ANTHROPIC_CLIENT_PREFIXES = ("bash_", "text_editor_", "memory_", "tool_search_tool_")
_ANTHROPIC_TOOLS = (  # (type prefix, feature)
    ("web_search_", "web_search"), ("web_fetch_", "web_fetch"),
    ("code_execution_", "code_execution"), ("computer_", "computer_use"),
    ("browser_toolset_", "computer_use"), ("mcp_toolset", "mcp_servers"),
    ("advisor_", "advisor"),
)
_OPENAI_TOOLS = {
    "web_search": "web_search", "web_search_2025_08_26": "web_search",
    "web_search_preview": "web_search", "web_search_preview_2025_03_11": "web_search",
    "file_search": "file_search", "code_interpreter": "code_execution",
    "programmatic_tool_calling": "code_execution", "computer": "computer_use",
    "computer_use_preview": "computer_use", "image_generation": "image_generation",
    "mcp": "mcp_servers",
}
_GEMINI_TOOLS = {
    "googleSearch": "web_search", "googleSearchRetrieval": "web_search",
    "enterpriseWebSearch": "web_search", "parallelAiSearch": "web_search",
    "exaAiSearch": "web_search", "urlContext": "web_fetch", "codeExecution": "code_execution",
    "googleMaps": "google_maps", "fileSearch": "file_search", "retrieval": "file_search",
    "computerUse": "computer_use", "mcpServers": "mcp_servers",
}
_OPENAI_TIERS = (None, "auto", "default")
_GEMINI_TIERS = (None, "", "unspecified", "standard", "service_tier_unspecified",
                 "service_tier_standard")
_SHOWN = 64  # client-chosen text quoted in an error message is cut to this


@dataclass(frozen=True, slots=True)
class Use:
    """One place in a request that turns on ``feature`` (``None``: an unknown tool type)."""

    feature: str | None
    param: str  # the top-level field
    where: str  # the exact place, e.g. "tools[2]"
    value: str = ""  # the type or value that did it


def check_feature_names(names: list[str]) -> str | None:
    """Config check for ``models.<name>.allow``: every entry must be a known feature."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        return f"unknown feature {unknown[0]!r} (known: {', '.join(FEATURES)})"
    return None


def refuse_unallowed(body: dict[str, Any], shape: str, allowed: Collection[str],
                     model: str) -> None:
    """Raise a 400 naming the first field of ``body`` (in ``shape``) that asks for a feature
    not in ``allowed``."""
    for use in uses(body, shape):
        if use.feature is None:
            raise GatewayError(
                400, "invalid_request_error",
                f"'{use.where}' has the tool type '{use.value[:_SHOWN]}', which this gateway "
                f"does not know; it is refused so that no unknown provider-run tool runs.",
                param=use.param, code="feature_not_allowed")
        if use.feature not in allowed:
            shown = f" ({use.value[:_SHOWN]})" if use.value else ""
            raise GatewayError(
                400, "invalid_request_error",
                f"'{use.where}'{shown} turns on '{use.feature}' at the provider, which is not "
                f"allowed for the model '{model}' on this gateway.",
                param=use.param, code="feature_not_allowed")


def restricted(body: dict[str, Any], shape: str, allowed: Collection[str]) -> dict[str, Any]:
    """``body`` as it may go upstream: OpenAI's Responses API stores every response unless
    told not to, so without ``store`` allowed the gateway says ``store: false``."""
    if shape == "openai-responses" and "store" not in allowed and body.get("store") is None:
        return {**body, "store": False}
    return body


def uses(body: dict[str, Any], shape: str) -> Iterator[Use]:
    """Every place in ``body`` that turns on a feature."""
    reader = _READERS.get(shape)
    return reader(body) if reader is not None else iter(())


def _anthropic(body: dict[str, Any]) -> Iterator[Use]:
    for index, tool in _tools(body.get("tools")):
        kind = tool.get("type")
        if kind in (None, "custom") or kind.startswith(_ANTHROPIC_CLIENT_PREFIXES):
            continue
        feature = next((f for prefix, f in _ANTHROPIC_TOOLS if kind.startswith(prefix)), None)
        yield Use(feature, "tools", f"tools[{index}]", kind)
    if body.get("mcp_servers"):
        yield Use("mcp_servers", "mcp_servers", "mcp_servers")
    if body.get("container"):
        yield Use("code_execution", "container", "container")
    if body.get("inference_geo"):
        yield Use("inference_geo", "inference_geo", "inference_geo", str(body["inference_geo"]))
    if body.get("speed") not in (None, "standard"):
        yield Use("speed", "speed", "speed", str(body["speed"]))


def _openai_common(body: dict[str, Any]) -> Iterator[Use]:
    tier = body.get("service_tier")
    if tier not in _OPENAI_TIERS:
        yield Use("service_tier", "service_tier", "service_tier", str(tier))
    if body.get("store") is True:
        yield Use("store", "store", "store", "true")
    for index, tool in _tools(body.get("tools")):
        kind = tool.get("type")
        if kind is None or kind in _CLIENT_TOOLS:
            continue
        yield Use(_OPENAI_TOOLS.get(kind), "tools", f"tools[{index}]", kind)


def _openai_chat(body: dict[str, Any]) -> Iterator[Use]:
    yield from _openai_common(body)
    if body.get("web_search_options") is not None:
        yield Use("web_search", "web_search_options", "web_search_options")


def _openai_responses(body: dict[str, Any]) -> Iterator[Use]:
    yield from _openai_common(body)
    for name in ("previous_response_id", "conversation", "prompt"):
        if body.get(name):
            yield Use("store", name, name)
    if body.get("background"):
        yield Use("background", "background", "background", "true")


def _gemini(body: dict[str, Any]) -> Iterator[Use]:
    fields = {_camel(key): value for key, value in body.items()}
    for index, tool in _tools(fields.get("tools")):
        for key, value in tool.items():
            name = _camel(key)
            if name == "functionDeclarations" or value is None:
                continue
            yield Use(_GEMINI_TOOLS.get(name), "tools", f"tools[{index}].{key}", name)
    tier = fields.get("serviceTier")
    if (tier.lower() if isinstance(tier, str) else tier) not in _GEMINI_TIERS:
        yield Use("service_tier", "serviceTier", "serviceTier", str(tier))
    if fields.get("store") is True:
        yield Use("store", "store", "store", "true")
    if fields.get("cachedContent"):
        yield Use("store", "cachedContent", "cachedContent")


_READERS = {
    "anthropic": _anthropic,
    "openai": _openai_chat,
    "openai-responses": _openai_responses,
    "gemini": _gemini,
}


def _tools(tools: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            if isinstance(tool, dict):
                if tool.get("type") is not None and not isinstance(tool["type"], str):
                    tool = {**tool, "type": repr(tool["type"])}
                yield index, tool


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
