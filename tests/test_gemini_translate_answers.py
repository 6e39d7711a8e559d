"""Answer, stream and embedding translation to and from the Gemini shape, as literal pairs.

Gemini answers are in the form the API reference and the real SSE stream show
(``candidates[].content.parts``, cumulative ``usageMetadata`` on every event); OpenAI answers
are checked against OpenAI's published schema.
"""

from __future__ import annotations

import base64
import struct

import pytest
from fakes.openai_schema import validate_openai

from onyproxy.errors import GatewayError
from onyproxy.sse import Event
from onyproxy.translate import Context
from onyproxy.translate.gemini_client_response import to_gemini
from onyproxy.translate.gemini_client_stream import OpenAIToGeminiStream
from onyproxy.translate.gemini_embeddings import (
    gemini_to_openai,
    gemini_to_openai_answer,
    openai_to_gemini,
    openai_to_gemini_answer,
)
from onyproxy.translate.gemini_provider_response import to_openai
from onyproxy.translate.gemini_provider_stream import GeminiToOpenAIStream

CTX = Context(model="gw-model", operation="chat")
USAGE_META = {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
              "cachedContentTokenCount": 4, "totalTokenCount": 22}


def run(converter, payloads) -> list[Event]:
    events = [out for p in payloads for out in converter.feed(Event.of(p))]
    return events + converter.finish()


# -- Gemini answers for OpenAI clients -------------------------------------------------------


def test_text_answer_becomes_a_chat_completion_without_thoughts():
    body = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Let me think.", "thought": True}, {"text": "Hello "}, {"text": "there."}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": USAGE_META, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}
    answer = to_openai(body, CTX)
    validate_openai("chat.completion", answer)
    assert answer["id"] == "chatcmpl-r1" and answer["model"] == "gw-model"
    assert answer["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Hello there.",
                                              "refusal": None, "annotations": []}}]
    # candidatesTokenCount excludes thoughts; OpenAI's completion_tokens includes reasoning.
    assert answer["usage"] == {
        "prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 7}}


def test_function_calls_become_tool_calls_keeping_the_thought_signature():
    body = {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "get_weather", "args": {"city": "London"}}}]},
        "finishReason": "STOP", "index": 0}]}
    answer = to_openai(body, CTX)
    validate_openai("chat.completion", answer)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"name": "get_weather", "arguments": '{"city":"London"}'}]
    assert all(c["id"].startswith("call_") for c in calls) and calls[0]["id"] != calls[1]["id"]
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}


@pytest.mark.parametrize(("reason", "expected"), [
    ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("OTHER", "stop"),
    ("MALFORMED_FUNCTION_CALL", "stop")])
def test_finish_reasons(reason, expected):
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]},
                            "finishReason": reason, "index": 0}]}
    assert to_openai(body, CTX)["choices"][0]["finish_reason"] == expected


def test_blocked_prompt_is_a_content_filter_finish():
    answer = to_openai({"promptFeedback": {"blockReason": "SAFETY"}}, CTX)
    validate_openai("chat.completion", answer)
    assert answer["choices"][0]["finish_reason"] == "content_filter"


def test_stream_events_become_chunks_as_they_arrive():
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
         "usageMetadata": usage, "responseId": "r9"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]},
                         "finishReason": "STOP", "index": 0}],
         "usageMetadata": {**usage, "candidatesTokenCount": 2, "totalTokenCount": 5}},
    ]
    converter = GeminiToOpenAIStream(Context("gw-model", "chat", include_usage=True))
    first = converter.feed(Event.of(events[0]))
    assert [e.json()["choices"][0]["delta"] for e in first] == [
        {"role": "assistant", "content": "Hel"}]
    out = first + converter.feed(Event.of(events[1])) + converter.finish()
    chunks = [e.json() for e in out[:-1]]
    for chunk in chunks:
        validate_openai("chat.completion.chunk", chunk)
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": "Hel"}, {"content": "lo"}, {}]
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["completion_tokens"] == 2
    assert {c["id"] for c in chunks} == {"chatcmpl-r9"}
    assert out[-1].is_done


def test_stream_sends_no_usage_chunk_unless_asked():
    events = run(GeminiToOpenAIStream(CTX), [{"candidates": [{"content": {"parts": [
        {"text": "hi"}]}, "finishReason": "STOP"}], "usageMetadata": USAGE_META}])
    assert all(e.is_done or e.json()["choices"] for e in events)


def test_stream_function_calls_become_indexed_tool_call_deltas():
    event = {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionCall": {"name": "f", "args": {"a": 2}}}]}, "finishReason": "STOP"}]}
    chunks = [e.json() for e in run(GeminiToOpenAIStream(CTX), [event])[:-1]]
    calls = chunks[0]["choices"][0]["delta"]["tool_calls"]
    assert [(c["index"], c["function"]["arguments"]) for c in calls] == [
        (0, '{"a":1}'), (1, '{"a":2}')]
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    for chunk in chunks:
        validate_openai("chat.completion.chunk", chunk)


def test_error_inside_a_gemini_stream_ends_it_with_an_error():
    converter = GeminiToOpenAIStream(CTX)
    with pytest.raises(GatewayError):
        converter.feed(Event.of({"error": {"code": 503, "message": "overloaded",
                                           "status": "UNAVAILABLE"}}))


# -- OpenAI answers for Gemini clients -------------------------------------------------------


def test_chat_completion_becomes_generate_content_response():
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                         "message": {"role": "assistant", "content": "Checking.", "refusal": None,
                                     "tool_calls": [{"id": "call_1", "type": "function",
                                                     "function": {"name": "get_weather",
                                                                  "arguments": '{"city":"Paris"}'}}
                                                    ]}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15,
                      "completion_tokens_details": {"reasoning_tokens": 2}}}
    assert to_gemini(body, CTX) == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4,
                          "thoughtsTokenCount": 2, "totalTokenCount": 15},
        "modelVersion": "gw-model", "responseId": "chatcmpl-1"}


def test_openai_stream_becomes_gemini_events_with_whole_function_calls():
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta, finish=None):
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}
    upstream = [
        chunk({"role": "assistant", "content": ""}), chunk({"content": "On it."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({}, "tool_calls"),
        {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                          "total_tokens": 8}},
    ]
    converter = OpenAIToGeminiStream(CTX)
    out = [e.json() for p in upstream for e in converter.feed(Event.of(p))]
    out += [e.json() for e in converter.feed(Event("[DONE]")) + converter.finish()]
    assert out == [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "On it."}]},
                         "index": 0}], "modelVersion": "gw-model", "responseId": "chatcmpl-2"},
        {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {
            "id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}}]},
            "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3,
                           "totalTokenCount": 8},
         "modelVersion": "gw-model", "responseId": "chatcmpl-2"},
    ]


def test_openai_stream_without_usage_still_finishes_at_done():
    converter = OpenAIToGeminiStream(CTX)
    converter.feed(Event.of({"id": "c", "choices": [{"index": 0, "delta": {},
                                                     "finish_reason": "length"}]}))
    final = converter.feed(Event("[DONE]"))
    assert final[0].json()["candidates"][0] == {
        "content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS",
        "index": 0}
    assert converter.finish() == []


# -- embeddings ------------------------------------------------------------------------------


def test_openai_embeddings_request_becomes_batch_embed_contents():
    body = {"model": "gw-emb", "input": ["a", "b"], "dimensions": 8,
            "encoding_format": "base64"}
    assert openai_to_gemini(body, Context("gw-emb", "embeddings")) == {"requests": [
        {"model": "models/gw-emb", "content": {"parts": [{"text": "a"}]},
         "outputDimensionality": 8},
        {"model": "models/gw-emb", "content": {"parts": [{"text": "b"}]},
         "outputDimensionality": 8}]}


def test_gemini_embeddings_become_base64_float32_when_asked():
    ctx = Context("gw-emb", "embeddings", request={"encoding_format": "base64"})
    answer = gemini_to_openai_answer({"embeddings": [{"values": [0.5, -1.0]}]}, ctx)
    validate_openai("embedding.list", answer)
    raw = base64.b64decode(answer["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)


def test_token_array_input_cannot_reach_gemini():
    with pytest.raises(GatewayError) as caught:
        openai_to_gemini({"model": "m", "input": [[1, 2, 3]]}, Context("m", "embeddings"))
    assert caught.value.param == "input"


def test_embed_content_request_and_answer_for_an_openai_provider():
    single = {"content": {"parts": [{"text": "Hello"}, {"text": "world"}]},
              "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 4}
    ctx = Context("gw-emb", "embeddings", request=single)
    assert gemini_to_openai(single, ctx) == {"model": "gw-emb", "input": ["Hello world"],
                                             "encoding_format": "float", "dimensions": 4}
    answer = {"object": "list", "model": "x", "usage": {"prompt_tokens": 2, "total_tokens": 2},
              "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}
    assert openai_to_gemini_answer(answer, ctx) == {"embedding": {"values": [0.1, 0.2]}}
    batch_ctx = Context("gw-emb", "embeddings", request={"requests": [single, single]})
    assert openai_to_gemini_answer(answer, batch_ctx) == {"embeddings": [{"values": [0.1, 0.2]}]}
