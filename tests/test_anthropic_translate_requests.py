"""Request translation OpenAI ↔ Anthropic, with literal bodies in the two API references' shapes.

The tool example (get_stock_price, toolu_01D7FLrfh4GYq7yT1ULFeyMV, "^GSPC", "259.75 USD") is the
one in Anthropic's Messages reference (``tools`` parameter); the weather call (call_abc123,
get_current_weather, Boston) is OpenAI's chat-completions reference example.
"""

import pytest

from onyproxy.errors import GatewayError
from onyproxy.translate import Context
from onyproxy.translate.anthropic_client_request import to_openai_request
from onyproxy.translate.anthropic_request import DEFAULT_MAX_TOKENS, to_anthropic_request

CTX = Context(model="any", operation="chat")
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJ"
         "RU5ErkJggg==")
STOCK_SCHEMA = {"type": "object",
                "properties": {"ticker": {"type": "string",
                                          "description": "The stock ticker symbol, e.g. AAPL"}},
                "required": ["ticker"]}


def openai_body(**extra):
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def anthropic_body(**extra):
    return {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
            **extra}


def test_openai_conversation_with_tools_images_and_results_maps_to_messages():
    body = {
        "model": "claude-test",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Prices in USD."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What do these show?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg",
                                                    "detail": "high"}}]},
            {"role": "user", "content": "And the S&P 500 and the Dow?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "type": "function",
                 "function": {"name": "get_stock_price", "arguments": "{\"ticker\": \"^GSPC\"}"}},
                {"id": "toolu_02", "type": "function",
                 "function": {"name": "get_stock_price", "arguments": "{\"ticker\": \"^DJI\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
             "content": "259.75 USD"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": [
                {"type": "text", "text": "391.10 USD"}]},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_stock_price",
            "description": "Get the current stock price for a given ticker symbol.",
            "parameters": STOCK_SCHEMA}}],
        "tool_choice": "auto",
        "max_completion_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-42",
    }
    assert to_anthropic_request(body, CTX) == {
        "model": "claude-test",
        "system": "You are terse.\n\nPrices in USD.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What do these show?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PIXEL}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                {"type": "text", "text": "And the S&P 500 and the Dow?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                 "name": "get_stock_price", "input": {"ticker": "^GSPC"}},
                {"type": "tool_use", "id": "toolu_02", "name": "get_stock_price",
                 "input": {"ticker": "^DJI"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                 "content": "259.75 USD"},
                {"type": "tool_result", "tool_use_id": "toolu_02",
                 "content": [{"type": "text", "text": "391.10 USD"}]}]},
        ],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "tools": [{"name": "get_stock_price", "input_schema": STOCK_SCHEMA,
                   "description": "Get the current stock price for a given ticker symbol."}],
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": "user-42"},
    }


def test_max_tokens_defaults_because_anthropic_requires_it():
    assert to_anthropic_request(openai_body(), CTX)["max_tokens"] == DEFAULT_MAX_TOKENS
    assert to_anthropic_request(openai_body(max_tokens=7), CTX)["max_tokens"] == 7


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_stock_price"}}, None,
     {"type": "tool", "name": "get_stock_price"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tool_choice_maps_to_anthropic(choice, parallel, expected):
    tools = [{"type": "function", "function": {"name": "get_stock_price"}}]
    extra = {"tools": tools, "tool_choice": choice, "parallel_tool_calls": parallel}
    body = to_anthropic_request(openai_body(**{k: v for k, v in extra.items() if v is not None}),
                                CTX)
    assert body["tool_choice"] == expected
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


def test_json_schema_response_format_becomes_structured_output():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = to_anthropic_request(openai_body(response_format=fmt, reasoning_effort="low"), CTX)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema},
                                     "effort": "low"}


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": 1.5}, "temperature"),
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"reasoning_effort": "minimal"}, "reasoning_effort"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
    ({"frobnicate": 1}, "frobnicate"),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}}]}]},
     "messages[0].content[0].image_url.url"),
])
def test_what_anthropic_cannot_honour_is_a_400_naming_it(extra, param):
    with pytest.raises(GatewayError) as caught:
        to_anthropic_request(openai_body(**extra), CTX)
    assert caught.value.status == 400 and caught.value.param == param
    assert param.split("[")[0] in caught.value.message


def test_neutral_values_of_unsupported_parameters_pass():
    body = openai_body(n=1, logprobs=False, presence_penalty=0, frequency_penalty=0, seed=3,
                       store=False, response_format={"type": "text"})
    assert set(to_anthropic_request(body, CTX)) == {"model", "messages", "max_tokens"}


def test_anthropic_request_with_tool_round_trip_maps_to_openai():
    body = {
        "model": "gpt-test",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse."},
                   {"type": "text", "text": "Prices in USD.", "cache_control": {
                       "type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PIXEL}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                {"type": "text", "text": "What's the S&P 500 at today?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                 "name": "get_stock_price", "input": {"ticker": "^GSPC"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                 "content": "259.75 USD"},
                {"type": "text", "text": "Thanks. In euros?"}]},
        ],
        "tools": [{"name": "get_stock_price",
                   "description": "Get the current stock price for a given ticker symbol.",
                   "input_schema": STOCK_SCHEMA}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END", "STOP"],
        "temperature": 0.5,
        "top_p": 0.7,
        "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
        "stream": True,
    }
    assert to_openai_request(body, CTX) == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are terse.\n\nPrices in USD."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                {"type": "text", "text": "What's the S&P 500 at today?"}]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "type": "function",
                 "function": {"name": "get_stock_price", "arguments": "{\"ticker\":\"^GSPC\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
             "content": "259.75 USD"},
            {"role": "user", "content": "Thanks. In euros?"},
        ],
        "max_completion_tokens": 1024,
        "temperature": 0.5,
        "top_p": 0.7,
        "stop": ["END", "STOP"],
        "stream": True,
        "tools": [{"type": "function", "function": {
            "name": "get_stock_price", "parameters": STOCK_SCHEMA,
            "description": "Get the current stock price for a given ticker symbol."}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b",
    }


def test_tool_error_result_keeps_its_error_signal():
    body = anthropic_body(messages=[
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "is_error": True, "content": [
                                          {"type": "text", "text": "city not found"}]}]}])
    messages = to_openai_request(body, CTX)["messages"]
    assert messages[1] == {"role": "tool", "tool_call_id": "t1",
                           "content": "Error: city not found"}


def test_structured_output_maps_to_json_schema_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "string"}},
              "additionalProperties": False}
    body = to_openai_request(anthropic_body(output_config={
        "format": {"type": "json_schema", "schema": schema}}), CTX)
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "output", "schema": schema, "strict": True}}


@pytest.mark.parametrize(("extra", "param"), [
    ({"top_k": 5}, "top_k"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"container": "c1"}, "container"),
    ({"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "x"}}]}]}, "messages.0.content.0.type"),
])
def test_what_openai_cannot_honour_is_a_400_naming_it(extra, param):
    with pytest.raises(GatewayError) as caught:
        to_openai_request(anthropic_body(**extra), CTX)
    assert caught.value.status == 400 and caught.value.param == param
    assert param.split("[")[0].split(".")[0] in caught.value.message
