"""Tool definitions and tool choice, OpenAI ↔ Anthropic.

OpenAI: ``{"type": "function", "function": {"name", "description", "parameters", "strict"}}``
and ``tool_choice`` ``"auto" | "none" | "required" | {"type": "function", "function": {"name"}}``
with a separate ``parallel_tool_calls``. Anthropic: ``{"name", "description", "input_schema",
"strict"}`` and ``tool_choice`` ``{"type": "auto" | "any" | "tool" | "none", "name",
"disable_parallel_tool_use"}``.
"""

from __future__ import annotations

from typing import Any

from onyproxy.errors import GatewayError, invalid_request

# Anthropic requires an input_schema; a function without parameters takes an empty object.
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

_TO_ANTHROPIC_CHOICE = {"auto": "auto", "none": "none", "required": "any"}
_TO_OPENAI_CHOICE = {"auto": "auto", "none": "none", "any": "required"}


def unsupported(param: str, why: str) -> GatewayError:
    """A 400 naming a parameter the target API cannot honour."""
    return invalid_request(f"'{param}' is not supported by this model's provider: {why}",
                           param=param, code="unsupported_parameter")


def to_anthropic_tools(tools: list[Any] | None) -> list[dict[str, Any]]:
    out = []
    for index, tool in enumerate(tools or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise unsupported(f"tools[{index}].type",
                               "only function tools map to Anthropic tools.")
        mapped: dict[str, Any] = {"name": function.get("name"),
                                  "input_schema": function.get("parameters") or EMPTY_SCHEMA}
        if function.get("description"):
            mapped["description"] = function["description"]
        if function.get("strict"):
            mapped["strict"] = True
        out.append(mapped)
    return out


def to_anthropic_tool_choice(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None  # Anthropic's default with tools is auto, as OpenAI's
    if isinstance(choice, dict):
        if choice.get("type") != "function":
            raise unsupported("tool_choice", f"type '{choice.get('type')}' has no Anthropic "
                                              "equivalent.")
        mapped: dict[str, Any] = {"type": "tool",
                                  "name": (choice.get("function") or {}).get("name")}
    else:
        mapped = {"type": _TO_ANTHROPIC_CHOICE.get(choice or "auto", "")}
        if not mapped["type"]:
            raise invalid_request(f"Invalid value for 'tool_choice': {choice!r}.",
                                  param="tool_choice")
    if parallel is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    return mapped


def to_openai_tools(tools: list[Any] | None) -> list[dict[str, Any]]:
    out = []
    for index, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") \
                or "input_schema" not in tool:
            # Server tools (web search, code execution, ...) run inside Anthropic's API.
            raise unsupported(f"tools[{index}]", f"the Anthropic server tool "
                                                  f"'{tool.get('type')}' only runs on Anthropic.")
        function: dict[str, Any] = {"name": tool.get("name"),
                                    "parameters": tool.get("input_schema") or EMPTY_SCHEMA}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict"):
            function["strict"] = True
        out.append({"type": "function", "function": function})
    return out


def to_openai_tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """(OpenAI ``tool_choice``, ``parallel_tool_calls``) for an Anthropic ``tool_choice``."""
    if not isinstance(choice, dict):
        return None, None
    kind = choice.get("type")
    if kind == "tool":
        mapped: Any = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind in _TO_OPENAI_CHOICE:
        mapped = _TO_OPENAI_CHOICE[kind]
    else:
        raise invalid_request(f"tool_choice.type: unknown value '{kind}'.", param="tool_choice")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    return mapped, parallel
