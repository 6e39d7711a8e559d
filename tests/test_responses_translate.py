"""Responses ↔ Chat Completions translation, as literal pairs of payloads."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from onyproxy.errors import GatewayError
from onyproxy.sse import Event
from onyproxy.translate import Context
from onyproxy.translate.responses_request import to_chat_request
from onyproxy.translate.responses_response import to_responses_response
from onyproxy.translate.responses_stream import ResponsesStream

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


def ctx(request: dict[str, Any] | None = None) -> Context:
    return Context(model="my-model", operation="chat", request=request or {"model": "my-model"},
                   include_usage=True)


def chat(body: dict[str, Any]) -> dict[str, Any]:
    return to_chat_request({"model": "my-model", **body}, ctx())


# --- requests -----------------------------------------------------------------------------


def test_items_map_to_messages_in_order():
    assert chat({"instructions": "Be brief.", "input": [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "status": "completed", "content": [
            {"type": "output_text", "text": "Let me look.", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_2", "name": "zoom", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
        {"type": "function_call_output", "call_id": "call_2",
         "output": [{"type": "input_text", "text": "big"}]},
    ]})["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "zoom", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "big"}]},
    ]


def test_options_map_to_their_chat_names():
    assert chat({"input": "hi", "stream": True, "max_output_tokens": 64, "top_p": 0.9,
                 "parallel_tool_calls": False, "store": True, "metadata": {"a": "b"},
                 "reasoning": {"effort": "low", "summary": "auto"}, "tool_choice": "required",
                 "text": {"format": {"type": "json_object"}, "verbosity": "low"},
                 "user": "u-1"}) == {
        "model": "my-model", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "max_completion_tokens": 64, "top_p": 0.9, "parallel_tool_calls": False,
        "user": "u-1", "tool_choice": "required", "response_format": {"type": "json_object"},
        "verbosity": "low", "reasoning_effort": "low"}


@pytest.mark.parametrize("body, param", [
    ({"input": "hi", "conversation": "conv_1"}, "conversation"),
    ({"input": "hi", "background": True}, "background"),
    ({"input": "hi", "tools": [{"type": "file_search", "vector_store_ids": ["vs"]}]}, "tools"),
    ({"input": "hi", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"input": "hi", "frobnicate": 1}, "frobnicate"),
    ({"input": [{"role": "user", "content": [
        {"type": "input_file", "file_url": "https://x.test/a.pdf"}]}]},
     "input[0].content[0].file_url"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
])
def test_what_cannot_be_translated_is_a_400_naming_it(body, param):
    with pytest.raises(GatewayError) as caught:
        chat(body)
    assert caught.value.status == 400 and caught.value.param == param


# --- answers ------------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1741476542, "model": "gpt-x",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.", "refusal": None,
        "tool_calls": [{"id": "call_9", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 8},
              "completion_tokens_details": {"reasoning_tokens": 3}},
}


def test_a_chat_completion_becomes_a_response_object():
    request = {"model": "my-model", "input": "hi", "instructions": "Be brief.",
               "temperature": 0.2, "tools": [{"type": "function", "name": "get_weather",
                                              "parameters": {}, "strict": True}]}
    response = to_responses_response(COMPLETION, ctx(request))
    Response.model_validate(response)
    message, call = response["output"]
    assert response["model"] == "my-model" and response["status"] == "completed"
    assert response["created_at"] == 1741476542
    assert response["instructions"] == "Be brief." and response["temperature"] == 0.2
    assert response["tools"] == request["tools"]
    assert message["content"] == [{"type": "output_text", "text": "Checking.",
                                   "annotations": [], "logprobs": []}]
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert {k: call[k] for k in ("type", "call_id", "name", "arguments", "status")} == {
        "type": "function_call", "call_id": "call_9", "name": "get_weather",
        "arguments": "{\"city\":\"Oslo\"}", "status": "completed"}
    assert response["usage"] == {
        "input_tokens": 20, "input_tokens_details": {"cached_tokens": 8,
                                                     "cache_write_tokens": 0},
        "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 29}


def test_a_cut_off_answer_is_incomplete_and_a_refusal_is_a_refusal_part():
    cut = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "Once upon", "refusal": None}}]}
    response = to_responses_response(cut, ctx())
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    refused = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
    (message,) = to_responses_response(refused, ctx())["output"]
    assert message["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


# --- streams ------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, Any] | None = None) -> Event:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return Event.of({"id": "c", "object": "chat.completion.chunk", "created": 1,
                     "model": "gpt-x", "choices": choices, "usage": usage})


def convert(events: list[Event], with_finish: bool = True) -> list[dict[str, Any]]:
    converter = ResponsesStream(ctx())
    out = [e for event in events for e in converter.feed(event)]
    if with_finish:
        out += converter.finish()
    objs = [e.json() for e in out]
    for event, obj in zip(out, objs, strict=True):
        assert event.event == obj["type"]
        EVENTS.validate_python(obj)
    assert [o["sequence_number"] for o in objs] == list(range(len(objs)))
    return objs


def test_text_then_tool_call_stream():
    objs = convert([
        chunk({"role": "assistant", "content": ""}), chunk({"content": "Let me"}),
        chunk({"content": " check."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"), chunk(usage={"prompt_tokens": 5, "completion_tokens": 7,
                                              "total_tokens": 12}),
        Event("[DONE]")])
    assert [o["type"] for o in objs] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    assert objs[6]["text"] == "Let me check." and objs[12]["arguments"] == "{\"a\":1}"
    final = objs[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["call_id"] == "call_1"
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["output_tokens"] == 7
    assert final["model"] == "my-model"


def test_a_stream_that_ends_without_done_still_completes():
    objs = convert([chunk({"content": "Hi"}), chunk({}, "stop")])
    assert objs[-1]["type"] == "response.completed"
    assert objs[-1]["response"]["output"][0]["content"][0]["text"] == "Hi"


def test_an_in_stream_error_becomes_an_error_event_and_ends_the_stream():
    error = Event.of({"error": {"message": "overloaded", "type": "server_error",
                                "param": None, "code": None}})
    objs = convert([chunk({"content": "Hi"}), error, chunk({"content": "late"})])
    assert objs[-1]["type"] == "error" and objs[-1]["message"] == "overloaded"
    assert "response.completed" not in [o["type"] for o in objs]
