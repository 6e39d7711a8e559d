"""Request translation to and from the Gemini shape, as literal pairs.

Gemini shapes follow the API reference (ai.google.dev/api/generate-content) and what
google-genai 3.x really sends (mixed camelCase / snake_case); OpenAI shapes follow the Chat
Completions reference.
"""

from __future__ import annotations

import pytest

from onyproxy.errors import GatewayError
from onyproxy.translate import Context
from onyproxy.translate.gemini_client_request import to_openai
from onyproxy.translate.gemini_provider_request import to_gemini
from onyproxy.translate.gemini_schema import json_schema

CTX = Context(model="gw-model", operation="chat")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def rejected(call, *args) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value


# -- OpenAI client -> Gemini provider --------------------------------------------------------


def test_openai_chat_becomes_generate_content_request():
    body = {
        "model": "gw-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "And goodbye?"},
        ],
        "max_completion_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": "END",
        "n": 2, "seed": 7, "presence_penalty": 0.5, "frequency_penalty": 0.1,
        "response_format": {"type": "json_object"}, "user": "u-1", "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert to_gemini(body, CTX) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "And goodbye?"}]},
        ],
        "generationConfig": {
            "maxOutputTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"],
            "candidateCount": 2, "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": 0.1,
            "responseMimeType": "application/json",
        },
    }


def test_tool_results_become_one_turn_of_function_responses_named_by_their_calls():
    body = {"model": "m", "tools": [WEATHER], "tool_choice": "auto", "messages": [
        {"role": "user", "content": "Weather in Paris and London?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
             "extra_content": {"google": {"thought_signature": "c2ln"}}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"London"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "rainy"},
    ]}
    request = to_gemini(body, CTX)
    assert request["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "get_weather", "args": {"city": "London"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "rainy"}}}]},
    ]
    assert request["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather in a city",
        "parametersJsonSchema": WEATHER["function"]["parameters"]}]}]
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize(("choice", "config"), [
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ({"type": "allowed_tools", "allowed_tools": {
        "mode": "auto", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}},
     {"mode": "VALIDATED", "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice_becomes_function_calling_config(choice, config):
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER],
            "tool_choice": choice}
    assert to_gemini(body, CTX)["toolConfig"] == {"functionCallingConfig": config}


def test_images_become_inline_or_file_data():
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?size=2",
                                            "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]}]}
    assert to_gemini(body, CTX)["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?size=2"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]


def test_image_url_without_a_media_type_is_a_400_naming_it():
    body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/picture"}}]}]}
    err = rejected(to_gemini, body, CTX)
    assert err.param == "messages[0].content[0].image_url.url"
    assert "data: URL" in err.message


def test_json_schema_response_format_is_passed_as_json_schema():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}},
              "additionalProperties": False, "required": ["n"]}
    body = {"messages": [{"role": "user", "content": "count"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "count", "schema": schema,
                                               "strict": True}}}
    assert to_gemini(body, CTX)["generationConfig"] == {
        "responseMimeType": "application/json", "responseJsonSchema": schema}


def test_reasoning_effort_becomes_a_thinking_budget():
    body = {"messages": [{"role": "user", "content": "think"}], "reasoning_effort": "low"}
    assert to_gemini(body, CTX)["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024}}


@pytest.mark.parametrize(("extra", "param"), [
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
])
def test_parameters_gemini_cannot_honour_are_a_400_naming_them(extra, param):
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    assert rejected(to_gemini, body, CTX).param == param


def test_tool_result_for_an_unknown_call_is_a_400():
    body = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "tool", "tool_call_id": "call_x", "content": "42"}]}
    assert rejected(to_gemini, body, CTX).param == "messages[1].tool_call_id"


# -- Gemini client -> OpenAI provider --------------------------------------------------------


def test_generate_content_request_becomes_openai_chat():
    # As google-genai 3.x sends it: camelCase containers, snake_case inside some of them.
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [
                {"text": "What is in it?"},
                {"inlineData": {"mime_type": "image/png", "data": "iVBORw0KGgo="}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.3, "topP": 0.8,
                             "stopSequences": ["END"], "candidateCount": 1, "seed": 3,
                             "thinkingConfig": {"thinking_budget": -1}},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    }
    assert to_openai(body, CTX) == {
        "model": "gw-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in it?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]},
        ],
        "max_completion_tokens": 50, "temperature": 0.3, "top_p": 0.8, "stop": ["END"],
        "n": 1, "seed": 3,
    }


def test_stream_flag_comes_from_the_context_not_the_body():
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    ctx = Context(model="gw-model", operation="chat", stream=True)
    assert to_openai(body, ctx)["stream"] is True


def test_function_calls_and_responses_pair_by_id_then_by_name():
    body = {"contents": [
        {"role": "user", "parts": [{"text": "Weather in two cities"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": "c2ln"},
            {"functionCall": {"id": "abc", "name": "get_weather", "args": {"city": "London"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"id": "abc", "name": "get_weather",
                                  "response": {"output": "rainy"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}]},
    ]}
    messages = to_openai(body, CTX)["messages"]
    assert messages[1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "abc", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"London"}'}}]},
        {"role": "tool", "tool_call_id": "abc", "content": "rainy"},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'},
    ]


def test_function_declarations_and_tool_config_become_tools_and_tool_choice():
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Weather?"}]}],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "d",
             "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                            "required": ["city"]}},
            {"name": "get_time",
             "parameters_json_schema": {"type": "object", "properties": {}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                 "allowedFunctionNames": ["get_weather"]}},
    }
    request = to_openai(body, CTX)
    assert request["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "d",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    assert request["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_response_schema_becomes_a_json_schema_response_format():
    body = {"contents": [{"parts": [{"text": "n?"}]}], "generationConfig": {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}}}
    assert to_openai(body, CTX)["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "response",
        "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}}


@pytest.mark.parametrize(("extra", "named"), [
    ({"generationConfig": {"topK": 40}}, "generationConfig.topK"),
    ({"generationConfig": {"responseLogprobs": True}}, "generationConfig.responseLogprobs"),
    ({"generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
     "generationConfig.thinkingConfig.includeThoughts"),
    ({"generationConfig": {"responseModalities": ["IMAGE"]}},
     "generationConfig.responseModalities"),
    ({"tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
    ({"cachedContent": "cachedContents/abc"}, "cachedContent"),
])
def test_fields_an_openai_provider_cannot_honour_are_a_400_naming_them(extra, named):
    body = {"contents": [{"parts": [{"text": "hi"}]}], **extra}
    assert named in rejected(to_openai, body, CTX).message


def test_function_response_without_a_call_is_a_400():
    body = {"contents": [{"role": "user", "parts": [
        {"functionResponse": {"name": "f", "response": {}}}]}]}
    assert "contents[0].parts[0]" in rejected(to_openai, body, CTX).message


def test_gemini_schema_becomes_json_schema():
    schema = {"type": "OBJECT", "propertyOrdering": ["tags", "note"], "properties": {
        "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]},
                 "maxItems": "3", "min_items": "1"},
        "note": {"type": "STRING", "nullable": True, "example": "x"},
        "user_id": {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}], "nullable": True}}}
    assert json_schema(schema) == {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]},
                 "maxItems": 3, "minItems": 1},
        "note": {"type": ["string", "null"]},
        "user_id": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}}}
