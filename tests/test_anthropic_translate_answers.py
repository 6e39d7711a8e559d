"""Answer and stream translation OpenAI ↔ Anthropic, checked against both APIs' own schemas.

OpenAI-shaped output is validated with the schemas of OpenAI's OpenAPI spec
(``fakes.openai_schema``); Anthropic-shaped output with the official ``anthropic`` SDK's models.
Inputs are literal bodies in the shapes of the two API references (Anthropic's "Hi! My name is
Claude." message and its streaming example; OpenAI's call_abc123 tool-call example).
"""

import json

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from fakes.openai_schema import validate_openai
from pydantic import TypeAdapter

from onyproxy.errors import GatewayError
from onyproxy.sse import Event
from onyproxy.translate import Context
from onyproxy.translate.anthropic_client_response import to_anthropic_response
from onyproxy.translate.anthropic_client_stream import OpenAIToAnthropicStream
from onyproxy.translate.anthropic_response import to_openai_response
from onyproxy.translate.anthropic_stream import AnthropicToOpenAIStream

CTX = Context(model="client-model", operation="chat")
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)


def run(converter, events):
    out = [e for event in events for e in converter.feed(event)]
    return out + converter.finish()


def anthropic_events(*pairs):
    return [Event(json.dumps(data), name) for name, data in pairs]


def openai_events(*chunks):
    return [Event(json.dumps(c)) for c in chunks] + [Event("[DONE]")]


# -- Anthropic provider → OpenAI client ------------------------------------------------------


def test_anthropic_message_becomes_a_valid_chat_completion():
    message = {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "Hi! My name is Claude."}],
               "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 2095, "output_tokens": 503}}
    answer = to_openai_response(message, CTX)
    validate_openai("chat.completion", answer)
    assert answer["model"] == "client-model" and answer["object"] == "chat.completion"
    assert answer["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                  "message": {"role": "assistant", "refusal": None,
                                              "content": "Hi! My name is Claude."}}]
    assert answer["usage"] == {"prompt_tokens": 2095, "completion_tokens": 503,
                               "total_tokens": 2598, "prompt_tokens_details": {
                                   "cached_tokens": 0}}


def test_anthropic_tool_use_becomes_tool_calls_with_json_string_arguments():
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
               "content": [{"type": "text", "text": "Checking."},
                           {"type": "tool_use", "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                            "name": "get_stock_price", "input": {"ticker": "^GSPC"}}],
               "stop_reason": "tool_use", "stop_sequence": None,
               "usage": {"input_tokens": 10, "output_tokens": 5,
                         "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}}
    answer = to_openai_response(message, CTX)
    validate_openai("chat.completion", answer)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"] == [{
        "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "type": "function",
        "function": {"name": "get_stock_price", "arguments": "{\"ticker\":\"^GSPC\"}"}}]
    # Anthropic's input_tokens leaves out cache reads and writes; OpenAI's prompt counts all.
    assert answer["usage"]["prompt_tokens"] == 130
    assert answer["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    ("model_context_window_exceeded", "length"), ("pause_turn", "stop")])
def test_stop_reasons_map_to_openai_finish_reasons(stop, finish):
    message = {"id": "m", "content": [], "stop_reason": stop, "usage": {}}
    answer = to_openai_response(message, CTX)
    assert answer["choices"][0]["finish_reason"] == finish
    validate_openai("chat.completion", answer)


def test_anthropic_stream_becomes_chat_completion_chunks():
    events = anthropic_events(
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message",
            "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hello"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "!"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                              "stop_sequence": None},
                           "usage": {"output_tokens": 15}}),
        ("message_stop", {"type": "message_stop"}))
    out = run(AnthropicToOpenAIStream(CTX), events)
    assert out[-1].is_done
    chunks = [e.json() for e in out[:-1]]
    for chunk in chunks:
        validate_openai("chat.completion.chunk", chunk)
        assert chunk["model"] == "client-model"
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": "!"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 25
    assert chunks[-1]["usage"]["completion_tokens"] == 15


def test_anthropic_tool_use_stream_becomes_tool_call_deltas():
    def tool_start(index, tool_id):
        return ("content_block_start", {"type": "content_block_start", "index": index,
                                        "content_block": {"type": "tool_use", "id": tool_id,
                                                          "name": "get_weather", "input": {}}})

    def json_delta(index, piece):
        return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                        "delta": {"type": "input_json_delta",
                                                  "partial_json": piece}})

    events = anthropic_events(
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_2", "content": [], "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Let me check."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        tool_start(1, "toolu_01"), json_delta(1, ""), json_delta(1, "{\"location\": "),
        json_delta(1, "\"Paris\"}"),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        tool_start(2, "toolu_02"), json_delta(2, "{\"location\": \"London\"}"),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 40}}),
        ("message_stop", {"type": "message_stop"}))
    chunks = [e.json() for e in run(AnthropicToOpenAIStream(CTX), events)[:-1]]
    for chunk in chunks:
        validate_openai("chat.completion.chunk", chunk)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[:-1]
             if c["choices"][0]["delta"].get("tool_calls")]
    assert calls == [
        {"index": 0, "id": "toolu_01", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": "{\"location\": "}},
        {"index": 0, "function": {"arguments": "\"Paris\"}"}},
        {"index": 1, "id": "toolu_02", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "function": {"arguments": "{\"location\": \"London\"}"}}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


# -- OpenAI-shaped provider → Anthropic client -----------------------------------------------


def test_openai_tool_call_answer_becomes_a_valid_anthropic_message():
    answer = {"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916,
              "model": "gpt-4o-mini",
              "choices": [{"index": 0, "message": {
                  "role": "assistant", "content": None, "tool_calls": [{
                      "id": "call_abc123", "type": "function",
                      "function": {"name": "get_current_weather",
                                   "arguments": "{\n\"location\": \"Boston, MA\"\n}"}}]},
                  "logprobs": None, "finish_reason": "tool_calls"}],
              "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
                        "completion_tokens_details": {"reasoning_tokens": 0}}}
    message = to_anthropic_response(answer, CTX)
    Message.model_validate(message)
    assert message == {
        "id": "msg_abc123", "type": "message", "role": "assistant", "model": "client-model",
        "content": [{"type": "tool_use", "id": "call_abc123", "name": "get_current_weather",
                     "input": {"location": "Boston, MA"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 82, "output_tokens": 17, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
    ("content_filter", "refusal")])
def test_finish_reasons_map_to_anthropic_stop_reasons(finish, stop):
    answer = {"id": "x", "choices": [{"index": 0, "finish_reason": finish, "message": {
        "role": "assistant", "content": "hi"}}], "usage": {
        "prompt_tokens": 10, "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 4}}}
    message = to_anthropic_response(answer, CTX)
    Message.model_validate(message)
    assert message["stop_reason"] == stop
    assert message["usage"]["input_tokens"] == 6 and message["usage"][
        "cache_read_input_tokens"] == 4


def test_tool_arguments_that_are_not_an_object_are_a_gateway_error():
    answer = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
            "name": "f", "arguments": "[1, 2"}}]}}]}
    with pytest.raises(GatewayError) as caught:
        to_anthropic_response(answer, CTX)
    assert caught.value.status == 502


def chunk(delta, finish=None, **extra):
    return {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}], **extra}


USAGE_CHUNK = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
               "model": "gpt-4o-mini", "choices": [],
               "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}


def names_and_validate(events):
    for event in events:
        assert event.json()["type"] == event.event
        if event.event != "ping":  # a keep-alive the SDK's event union leaves out
            STREAM_EVENT.validate_python(event.json())
    return [e.event for e in events]


def test_openai_chunks_become_the_anthropic_event_sequence():
    events = openai_events(chunk({"role": "assistant", "content": ""}),
                           chunk({"content": "Hello"}), chunk({"content": "!"}),
                           chunk({}, "stop"), USAGE_CHUNK)
    out = run(OpenAIToAnthropicStream(CTX), events)
    assert names_and_validate(out) == [
        "message_start", "ping", "content_block_start", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    start = out[0].json()["message"]
    assert start["id"] == "msg_123" and start["model"] == "client-model"
    assert [e.json()["delta"]["text"] for e in out[3:5]] == ["Hello", "!"]
    assert out[6].json()["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert out[6].json()["usage"]["output_tokens"] == 12
    assert out[6].json()["usage"]["input_tokens"] == 9


def test_openai_tool_call_chunks_become_tool_use_blocks_in_order():
    def call(index, arguments, call_id=None):
        fragment = {"index": index, "function": {"arguments": arguments}}
        if call_id:
            fragment.update(id=call_id, type="function")
            fragment["function"]["name"] = "get_weather"
        return chunk({"tool_calls": [fragment]})

    events = openai_events(chunk({"role": "assistant", "content": "Checking."}),
                           call(0, "", "call_1"), call(0, "{\"city\":"), call(0, "\"Paris\"}"),
                           call(1, "{\"city\":\"London\"}", "call_2"),
                           chunk({}, "tool_calls"), USAGE_CHUNK)
    out = run(OpenAIToAnthropicStream(CTX), events)
    assert names_and_validate(out) == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    starts = [e.json() for e in out if e.event == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "call_1",
                                          "name": "get_weather", "input": {}}
    pieces = [e.json()["delta"].get("partial_json") for e in out
              if e.event == "content_block_delta" and e.json()["index"] == 1]
    assert "".join(pieces) == "{\"city\":\"Paris\"}"
    assert out[-2].json()["delta"]["stop_reason"] == "tool_use"


def test_stream_without_usage_chunk_still_ends_properly():
    events = openai_events(chunk({"role": "assistant", "content": "hi"}), chunk({}, "length"))
    out = run(OpenAIToAnthropicStream(CTX), events)
    assert names_and_validate(out)[-2:] == ["message_delta", "message_stop"]
    assert out[-2].json()["delta"]["stop_reason"] == "max_tokens"


def test_openai_in_stream_error_becomes_a_gateway_error():
    converter = OpenAIToAnthropicStream(CTX)
    converter.feed(Event(json.dumps(chunk({"content": "par"}))))
    with pytest.raises(GatewayError):
        converter.feed(Event(json.dumps({"error": {"message": "boom", "type": "server_error"}})))
