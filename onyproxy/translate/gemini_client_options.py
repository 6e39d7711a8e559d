"""Gemini ``generationConfig``, ``tools`` and ``toolConfig`` -> OpenAI chat request options.

What OpenAI-compatible APIs cannot do (``topK``, logprobs as Gemini reports them, returned
thoughts, non-text output, Google's built-in tools) is refused with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from onyproxy.errors import invalid_request
from onyproxy.translate.gemini_common import camel, pick
from onyproxy.translate.gemini_schema import json_schema

_SAME = {"temperature": "temperature", "topP": "top_p", "candidateCount": "n", "seed": "seed",
         "presencePenalty": "presence_penalty", "frequencyPenalty": "frequency_penalty",
         "maxOutputTokens": "max_completion_tokens"}
# Read below, or known not to change the text answer (media resolution only sets how many
# tokens an input image costs).
_HANDLED = frozenset({*_SAME, "stopSequences", "responseMimeType", "responseSchema",
                      "responseJsonSchema", "responseModalities", "thinkingConfig",
                      "mediaResolution"})
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}


def chat_options(body: dict[str, Any]) -> dict[str, Any]:
    """Every OpenAI option the Gemini request sets, beyond model and messages."""
    options = generation_options(pick(body, "generationConfig", {}))
    functions = tools(pick(body, "tools", []))
    choice = pick(pick(body, "toolConfig", {}), "functionCallingConfig")
    if functions:
        functions, tool_choice = restrict(functions, choice)
        options["tools"] = functions
        if tool_choice is not None:
            options["tool_choice"] = tool_choice
    return options


def generation_options(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise invalid_request("generationConfig must be an object.", param="generationConfig")
    for name, value in config.items():
        if value is not None and camel(name) not in _HANDLED:
            raise invalid_request(f"generationConfig.{name} is not supported for this model "
                                  f"(its provider speaks the OpenAI API).",
                                  param=f"generationConfig.{name}")
    options = {ours: pick(config, theirs) for theirs, ours in _SAME.items()
               if pick(config, theirs) is not None}
    if pick(config, "stopSequences"):
        options["stop"] = list(pick(config, "stopSequences"))
    modalities = [str(m).upper() for m in pick(config, "responseModalities", [])]
    if modalities and modalities != ["TEXT"]:
        raise invalid_request("generationConfig.responseModalities: only TEXT can be served "
                              "by this model.", param="generationConfig.responseModalities")
    options.update(response_format(config))
    effort = reasoning_effort(pick(config, "thinkingConfig"))
    if effort is not None:
        options["reasoning_effort"] = effort
    return options


def response_format(config: dict[str, Any]) -> dict[str, Any]:
    mime = pick(config, "responseMimeType", "text/plain")
    raw = pick(config, "responseJsonSchema")
    schema = raw if raw is not None else json_schema(pick(config, "responseSchema"))
    if mime == "text/plain" and schema is None:
        return {}
    if mime != "application/json":
        raise invalid_request(f"generationConfig.responseMimeType {mime!r} cannot be served by "
                              f"this model; use application/json or text/plain.",
                              param="generationConfig.responseMimeType")
    if schema is None:
        return {"response_format": {"type": "json_object"}}
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "response", "schema": schema}}}


def reasoning_effort(thinking: Any) -> str | None:
    """OpenAI's ``reasoning_effort`` for a ``thinkingConfig`` (None: the model's default)."""
    if thinking is None:
        return None
    if pick(thinking, "includeThoughts"):
        raise invalid_request("generationConfig.thinkingConfig.includeThoughts: this model's "
                              "provider does not return its thoughts.",
                              param="generationConfig.thinkingConfig.includeThoughts")
    level = pick(thinking, "thinkingLevel")
    if level is not None:
        if str(level).lower() not in _LEVELS:
            raise invalid_request(f"generationConfig.thinkingConfig.thinkingLevel {level!r} "
                                  f"is not a known level.",
                                  param="generationConfig.thinkingConfig.thinkingLevel")
        return _LEVELS[str(level).lower()]
    budget = pick(thinking, "thinkingBudget")
    if budget is None or int(budget) < 0:  # -1 asks for dynamic thinking: the default
        return None
    budget = int(budget)
    if budget == 0:
        return "none"
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def tools(raw: Any) -> list[dict[str, Any]]:
    """Function declarations as OpenAI function tools; Google's built-in tools are refused."""
    out = []
    for index, tool in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(tool, dict):
            raise invalid_request(f"tools[{index}] must be an object.", param=f"tools[{index}]")
        for name, value in tool.items():
            if camel(name) != "functionDeclarations" and value is not None:
                raise invalid_request(f"tools[{index}].{name}: only function declarations can "
                                      f"be served by this model.", param=f"tools[{index}].{name}")
        for number, declaration in enumerate(pick(tool, "functionDeclarations", [])):
            out.append(function_tool(declaration,
                                     f"tools[{index}].functionDeclarations[{number}]"))
    return out


def function_tool(declaration: Any, where: str) -> dict[str, Any]:
    name = pick(declaration, "name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}.name is required.", param=f"{where}.name")
    function: dict[str, Any] = {"name": name}
    if pick(declaration, "description"):
        function["description"] = pick(declaration, "description")
    raw = pick(declaration, "parametersJsonSchema")
    parameters = raw if raw is not None else json_schema(pick(declaration, "parameters"))
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def restrict(functions: list[dict[str, Any]],
             config: Any) -> tuple[list[dict[str, Any]], Any]:
    """(tools, tool_choice) for a ``functionCallingConfig``.

    ``allowedFunctionNames`` has no OpenAI field of its own: the tools offered are narrowed to
    those names instead, which constrains the model the same way.
    """
    if config is None:
        return functions, None
    mode = str(pick(config, "mode", "AUTO")).upper()
    if mode == "NONE":
        return functions, "none"
    names = pick(config, "allowedFunctionNames", [])
    if names:
        functions = [f for f in functions if f["function"]["name"] in names]
        if not functions:
            raise invalid_request("toolConfig.functionCallingConfig.allowedFunctionNames names "
                                  "no declared function.", param="toolConfig")
    if mode != "ANY":  # AUTO, VALIDATED: text or a call of the offered functions
        return functions, "auto"
    if len(functions) == 1:
        return functions, {"type": "function", "function": {"name": functions[0]["function"]
                                                            ["name"]}}
    return functions, "required"
