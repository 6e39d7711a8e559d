"""OpenAI Responses request → Chat Completions request (a Responses client, a hub provider).

Used when the target does not speak the Responses API itself (mock, Anthropic, Gemini, a
Chat-only OpenAI-compatible server); OpenAI targets get the request untouched. Responses
features that need OpenAI's side (stored responses and conversations, built-in tools such as
web search) are refused with a 400 naming them rather than quietly answered without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onyproxy.errors import GatewayError, invalid_request

if TYPE_CHECKING:
    from onyproxy.translate import Context

# Mapped one by one below.
_MAPPED = frozenset({
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools",
    "tool_choice", "parallel_tool_calls", "text", "reasoning", "stream", "user",
    "safety_identifier", "top_logprobs", "background",
})
# Accepted and not forwarded: storage, caching and delivery hints that do not change the
# answer, and limits on built-in tool calls, which a hub provider never makes.
_IGNORED = frozenset({
    "store", "metadata", "include", "truncation", "service_tier", "prompt_cache_key",
    "prompt_cache_retention", "stream_options", "max_tool_calls",
})
# Need state kept at OpenAI.
_STATEFUL = ("previous_response_id", "conversation", "prompt")


def unsupported(param: str, why: str) -> GatewayError:
    """A 400 for a parameter this model's provider cannot honour."""
    return GatewayError(400, "invalid_request_error",
                        f"'{param}' is not supported for this model: {why}",
                        param=param, code="unsupported_parameter")


def to_chat_request(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Map a ``/v1/responses`` body to a ``/v1/chat/completions`` body."""
    _refuse(body)
    chat: dict[str, Any] = {"model": body["model"], "messages": to_messages(body)}
    if body.get("stream"):
        chat["stream"] = True
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("tools"):
        chat["tools"] = to_chat_tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = to_chat_tool_choice(body["tool_choice"])
    chat.update(_text_options(body.get("text")))
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    return chat


def _refuse(body: dict[str, Any]) -> None:
    for name in _STATEFUL:
        if body.get(name):
            raise unsupported(name, "the gateway keeps no responses or conversations; "
                                    "send the whole conversation as 'input'.")
    if body.get("background"):
        raise unsupported("background", "background responses need a stored response.")
    if body.get("top_logprobs"):
        raise unsupported("top_logprobs", "log probabilities are not translated.")
    for key in body:
        if key not in _MAPPED and key not in _IGNORED and key not in _STATEFUL:
            raise invalid_request(f"Unrecognized request argument supplied: {key}", param=key)


# --- input --------------------------------------------------------------------------------


def to_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as Chat Completions messages, in order."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for index, item in enumerate(items or []):
        _add_item(messages, item, f"input[{index}]")
    return messages


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    kind = item.get("type") or "message"
    if kind == "message":
        messages.append(_message(item, where))
    elif kind == "function_call":
        _add_tool_call(messages, item, where)
    elif kind == "function_call_output":
        messages.append({"role": "tool", "tool_call_id": _required(item, "call_id", where),
                         "content": _output_text(item.get("output"), where)})
    elif kind == "reasoning":
        # Another model's reasoning, replayed from an earlier OpenAI answer: a hub provider
        # cannot read it (it is encrypted or summarised), and the answer does not depend on it.
        return
    elif kind == "item_reference":
        raise unsupported(f"{where}.type", "item references need stored items.")
    else:
        raise unsupported(f"{where}.type", f"input items of type '{kind}' only work with "
                                           f"OpenAI's built-in tools.")


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise invalid_request(f"'{where}.role' must be user, assistant, system or developer.",
                              param=f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise invalid_request(f"'{where}.content' must be a string or an array.",
                              param=f"{where}.content")
    if role == "assistant":
        return {"role": role, "content": _assistant_text(content, where)}
    return {"role": role, "content": [_part(p, f"{where}.content[{i}]")
                                      for i, p in enumerate(content)]}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image":
        if not part.get("image_url"):
            raise unsupported(f"{where}.file_id", "images must be given as 'image_url' "
                                                  "(a URL or a data URL).")
        image = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        return _file_part(part, where)
    raise invalid_request(f"'{where}.type' must be input_text, input_image or input_file.",
                          param=f"{where}.type")


def _file_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    if part.get("file_url"):
        raise unsupported(f"{where}.file_url", "send the file as 'file_data' instead.")
    file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}
    return {"type": "file", "file": file}


def _assistant_text(content: list[Any], where: str) -> str:
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict):
            raise invalid_request(f"'{where}.content[{index}]' must be an object.",
                                  param=f"{where}.content[{index}]")
        texts.append(part.get("text") or part.get("refusal") or "")
    return "".join(texts)


def _add_tool_call(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    call = {"id": _required(item, "call_id", where), "type": "function",
            "function": {"name": _required(item, "name", where),
                         "arguments": item.get("arguments") or "{}"}}
    # Calls right after an assistant message (or another call) belong to that same turn:
    # Chat carries parallel calls, and text said before them, in one assistant message.
    if messages and messages[-1]["role"] == "assistant":
        messages[-1].setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _output_text(output: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return [_part(p, f"{where}.output[{i}]") for i, p in enumerate(output)]
    raise invalid_request(f"'{where}.output' must be a string or an array.",
                          param=f"{where}.output")


def _required(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_request(f"'{where}.{name}' is required.", param=f"{where}.{name}")
    return value


# --- tools and output format --------------------------------------------------------------


def to_chat_tools(tools: list[Any]) -> list[dict[str, Any]]:
    """Function tools in Chat's nested shape; built-in tools cannot leave OpenAI."""
    builtin = [str(t.get("type")) for t in tools if isinstance(t, dict)
               and t.get("type") != "function"]
    if builtin:
        raise unsupported("tools", f"built-in tools ({', '.join(builtin)}) run only on OpenAI, "
                                   f"and this model is served by another provider.")
    chat = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not tool.get("name"):
            raise invalid_request(f"'tools[{index}].name' is required.",
                                  param=f"tools[{index}].name")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                    if tool.get(k) is not None}
        chat.append({"type": "function", "function": function})
    return chat


def to_chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    kind = choice.get("type") if isinstance(choice, dict) else type(choice).__name__
    raise unsupported("tool_choice", f"a tool choice of type '{kind}' has no equivalent "
                                     f"for this model's provider.")


def _text_options(text: Any) -> dict[str, Any]:
    """``text.format`` → ``response_format``; ``text.verbosity`` → ``verbosity``."""
    if not isinstance(text, dict):
        return {}
    out: dict[str, Any] = {}
    fmt = text.get("format") or {}
    kind = fmt.get("type")
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "description", "schema", "strict")
                  if fmt.get(k) is not None}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind not in (None, "text"):
        raise invalid_request("'text.format.type' must be text, json_object or json_schema.",
                              param="text.format.type")
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    return out
