"""OpenAI request options -> Gemini ``tools``, ``toolConfig`` and ``generationConfig``.

JSON Schemas (tool parameters, ``response_format``) are passed as ``parametersJsonSchema`` and
``responseJsonSchema``, which take JSON Schema as it is, rather than rewritten into Gemini's
OpenAPI-subset ``Schema``, which cannot express all of it.
"""

from __future__ import annotations

from typing import Any

from onyproxy.errors import invalid_request

# reasoning_effort -> thinkingBudget, the table Google's own OpenAI-compatible API documents
# for Gemini 2.5 (Gemini 3 still accepts a budget); "none" turns thinking off, and "xhigh"
# (newer OpenAI models) gets the largest budget every Gemini 2.5 model accepts.
_THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576,
                     "xhigh": 24576}
_SAME_NAME = {"temperature": "temperature", "top_p": "topP", "n": "candidateCount",
              "seed": "seed", "presence_penalty": "presencePenalty",
              "frequency_penalty": "frequencyPenalty"}


def tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``tools`` as one Gemini tool holding every function declaration."""
    declarations = []
    for index, tool in enumerate(body.get("tools") or []):
        where = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise invalid_request(f"'{where}.type' must be 'function'; Gemini has no "
                                  f"equivalent of other tool types.", param=f"{where}.type")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid_request(f"'{where}.function.name' is required.",
                                  param=f"{where}.function.name")
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters") is not None:
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    """``tool_choice`` (and ``parallel_tool_calls``) as ``toolConfig.functionCallingConfig``."""
    if body.get("parallel_tool_calls") is False:
        raise invalid_request("'parallel_tool_calls': false cannot be honoured: Gemini has no "
                              "switch for parallel function calls.", param="parallel_tool_calls")
    choice = body.get("tool_choice")
    if choice is None:
        return None
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return _allowed_tools(choice.get("allowed_tools") or {})
    raise invalid_request("'tool_choice' must be 'auto', 'none', 'required', a function or "
                          "allowed_tools.", param="tool_choice")


def _allowed_tools(allowed: dict[str, Any]) -> dict[str, Any]:
    names = [(tool.get("function") or {}).get("name") for tool in allowed.get("tools") or []
             if isinstance(tool, dict)]
    if not names or not all(isinstance(n, str) for n in names):
        raise invalid_request("'tool_choice.allowed_tools.tools' must name functions.",
                              param="tool_choice.allowed_tools.tools")
    # VALIDATED: text or a call of one of the named functions, which is what "auto" means here.
    mode = {"auto": "VALIDATED", "required": "ANY"}.get(allowed.get("mode"))
    if mode is None:
        raise invalid_request("'tool_choice.allowed_tools.mode' must be 'auto' or 'required'.",
                              param="tool_choice.allowed_tools.mode")
    return {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": names}}


def generation_config(body: dict[str, Any]) -> dict[str, Any]:
    """Sampling, length, stop, output format and thinking settings."""
    _refuse_unmappable(body)
    config = {gemini: body[name] for name, gemini in _SAME_NAME.items()
              if body.get(name) is not None}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    config.update(_response_format(body.get("response_format")))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGETS:
            raise invalid_request(f"'reasoning_effort' must be one of "
                                  f"{', '.join(_THINKING_BUDGETS)}.", param="reasoning_effort")
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS[effort]}
    return config


def _refuse_unmappable(body: dict[str, Any]) -> None:
    if body.get("logprobs"):
        # Gemini's logprobsResult is not mapped back into OpenAI's logprobs yet.
        raise invalid_request("'logprobs' is not supported for Gemini models by this gateway.",
                              param="logprobs")
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise invalid_request("'modalities' other than [\"text\"] cannot be served by Gemini "
                              "through Chat Completions.", param="modalities")


def _response_format(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema is not None:
            out["responseJsonSchema"] = schema
        return out
    raise invalid_request("'response_format.type' must be text, json_object or json_schema.",
                          param="response_format.type")
