"""The redaction plugin's hooks, called directly with hand-built Exchanges: config, the text it
rewrites in each request shape, the three modes, restoring answers, and access-log scrubbing."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import orjson
import pytest
import yaml

from onyproxy.config import ConfigError, parse_config
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange, Identity
from onyproxy.pipeline import Pipeline
from plugins.redaction import Plugin
from plugins.redaction.config import CustomPattern, PIIConfig, RedactionConfig

TCKN = "10000000146"
EMAIL = "ayse@ornek.com.tr"
PHONE = "0532 123 45 67"
IMAGE = "data:image/png;base64,QUJDMTAwMDAwMDAxNDY="  # base64 is never rewritten


def make_plugin(pepper: str = "pepper", **options) -> Plugin:
    gateway = SimpleNamespace(config=SimpleNamespace(security=SimpleNamespace(key_pepper=pepper)))
    return Plugin(RedactionConfig(**options), gateway)


def pii(**options) -> PIIConfig:
    return PIIConfig(**options)


def exchange(body: dict, shape: str = "openai", model: str = "m", key_id: str | None = None,
             surface: str | None = None) -> Exchange:
    identity = Identity(account_id="acc", key_id=key_id) if key_id else None
    return Exchange(request_id="req_1", surface=surface or shape.split("-")[0], shape=shape,
                    operation="chat", path="/v1/chat/completions", headers={}, query={},
                    client_ip="203.0.113.9", user_agent=None, body=body, model=model,
                    identity=identity)


def chat(*messages: dict, **extra) -> dict:
    return {"model": "m", "messages": list(messages), **extra}


# --- config ----------------------------------------------------------------------------------

def config_problems(entry: dict) -> list[str]:
    raw = {"providers": {"mock": {"type": "mock"}},
           "models": {"m": {"targets": [{"provider": "mock", "model": "x"}]}},
           "pipeline": [{"name": "routing"}, {"name": "redaction", **entry}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(raw), "gateway.yaml", {})
    return caught.value.problems


def test_an_invalid_custom_regex_is_a_config_error_naming_its_key_path():
    problems = config_problems({"pii": {"custom": [{"name": "emp", "pattern": r"EMP-\d+"},
                                                   {"name": "bad", "pattern": "(unclosed"}]}})
    assert len(problems) == 1
    assert problems[0].startswith(
        "gateway.yaml: pipeline[1].pii.custom[1].pattern: invalid regular expression")


@pytest.mark.parametrize(("entry", "where"), [
    ({"pii": {"kinds": ["email", "ssn"]}}, "pipeline[1].pii.kinds[1]"),
    ({"pii": {"mode": "hide"}}, "pipeline[1].pii.mode"),
    ({"pii": {"models": ["nope"]}}, "pipeline[1].pii.models[0]: unknown model 'nope'"),
    ({"pii": {"custom": [{"name": "email", "pattern": "x"}]}}, "pipeline[1].pii.custom[0].name"),
    ({"pii": {"custom": [{"name": "any", "pattern": ".*"}]}}, "matches empty text"),
    ({"client_ip": "mask"}, "pipeline[1].client_ip"),
    ({"pii": {"kind": ["email"]}}, "pipeline[1].pii.kind: unknown key"),
])
def test_config_problems_name_the_key(entry, where):
    assert any(where in problem for problem in config_problems(entry))


def test_hooks_that_have_nothing_to_do_are_not_in_the_pipeline():
    assert not Pipeline([make_plugin()]).has_chunk_hooks
    assert not Pipeline([make_plugin(pii=pii(mode="mask"))]).has_chunk_hooks
    assert Pipeline([make_plugin(pii=pii(mode="pseudonymise"))]).has_chunk_hooks
    assert make_plugin().on_request is None


# --- which text is rewritten, per shape ------------------------------------------------------

async def masked(body: dict, shape: str = "openai") -> dict:
    ex = exchange(copy.deepcopy(body), shape)
    await make_plugin(pii=pii()).on_request(ex)
    return ex.body


async def test_openai_chat_text_parts_tool_arguments_and_tool_results_are_masked():
    tools = [{"type": "function", "function": {"name": "email", "parameters": {
        "type": "object", "properties": {"email": {"type": "string",
                                                   "description": "e.g. a@b.co"}}}}}]
    body = chat(
        {"role": "system", "content": f"Operator phone {PHONE}."},
        {"role": "user", "content": [{"type": "text", "text": f"Ben {EMAIL}"},
                                     {"type": "image_url", "image_url": {"url": IMAGE}}]},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "lookup", "arguments": orjson.dumps({"tckn": TCKN}).decode()}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f'{{"email": "{EMAIL}"}}'},
        tools=tools)
    out = await masked(body)
    assert out["messages"][0]["content"] == "Operator phone [PHONE]."
    assert out["messages"][1]["content"][0]["text"] == "Ben [EMAIL]"
    assert out["messages"][1]["content"][1] == body["messages"][1]["content"][1]
    assert orjson.loads(out["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {
        "tckn": "[TCKN]"}
    assert out["messages"][3]["content"] == '{"email": "[EMAIL]"}'
    assert out["tools"] == tools  # schemas are not the caller's data


async def test_openai_embeddings_input_strings_are_masked_and_token_arrays_kept():
    out = await masked({"model": "m", "input": [f"mail {EMAIL}", "plain"]})
    assert out["input"] == ["mail [EMAIL]", "plain"]
    tokens = {"model": "m", "input": [[1, 2, 3]]}
    assert await masked(tokens) == tokens


async def test_anthropic_system_blocks_tool_use_and_tool_results_are_masked():
    body = {"model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": f"Agent line {PHONE}"}],
            "messages": [
                {"role": "user", "content": f"TC {TCKN}"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": f"user gave {TCKN}", "signature": "sig"},
                    {"type": "tool_use", "id": "t1", "name": "find",
                     "input": {EMAIL: EMAIL, "nested": [f"call {PHONE}"]}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1",
                     "content": [{"type": "text", "text": f"found {EMAIL}"}]},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "MTAwMDAwMDAxNDY="}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                    "data": f"CV of {EMAIL}"}}]}]}
    out = await masked(body, "anthropic")
    assert out["system"][0]["text"] == "Agent line [PHONE]"
    assert out["messages"][0]["content"] == "TC [TCKN]"
    thinking, tool_use = out["messages"][1]["content"]
    assert thinking == body["messages"][1]["content"][0]  # signed by the provider: untouched
    assert tool_use["input"] == {EMAIL: "[EMAIL]", "nested": ["call [PHONE]"]}  # keys kept
    result, image, document = out["messages"][2]["content"]
    assert result["content"][0]["text"] == "found [EMAIL]"
    assert image == body["messages"][2]["content"][1]
    assert document["source"]["data"] == "CV of [EMAIL]"
    assert (await masked({"model": "m", "system": f"to {EMAIL}", "messages": []},
                         "anthropic"))["system"] == "to [EMAIL]"


async def test_gemini_contents_system_instruction_and_function_parts_are_masked():
    body = {"systemInstruction": {"parts": [{"text": f"Phone {PHONE}"}]},
            "contents": [
                {"role": "user", "parts": [{"text": f"TC {TCKN}"},
                                           {"inlineData": {"mimeType": "image/png",
                                                           "data": "MTAwMDAwMDAxNDY="}}]},
                {"role": "model", "parts": [{"thought": True, "text": f"think {TCKN}"},
                                            {"functionCall": {"name": "f",
                                                              "args": {"to": EMAIL}}}]},
                {"role": "user", "parts": [{"functionResponse": {
                    "name": "f", "response": {"result": f"sent to {EMAIL}"}}}]}]}
    out = await masked(body, "gemini")
    assert out["systemInstruction"]["parts"][0]["text"] == "Phone [PHONE]"
    assert out["contents"][0]["parts"][0]["text"] == "TC [TCKN]"
    assert out["contents"][0]["parts"][1] == body["contents"][0]["parts"][1]
    assert out["contents"][1]["parts"][0] == body["contents"][1]["parts"][0]
    assert out["contents"][1]["parts"][1]["functionCall"]["args"] == {"to": "[EMAIL]"}
    assert out["contents"][2]["parts"][0]["functionResponse"]["response"] == {
        "result": "sent to [EMAIL]"}


async def test_gemini_embedding_requests_are_masked():
    out = await masked({"requests": [{"content": {"parts": [{"text": f"a {EMAIL}"}]}}],
                        "content": {"parts": [{"text": f"b {EMAIL}"}]}}, "gemini")
    assert out["requests"][0]["content"]["parts"][0]["text"] == "a [EMAIL]"
    assert out["content"]["parts"][0]["text"] == "b [EMAIL]"


async def test_responses_instructions_input_items_and_function_outputs_are_masked():
    body = {"model": "m", "instructions": f"Call {PHONE}", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": f"TC {TCKN}"},
                                     {"type": "input_image", "image_url": IMAGE}]},
        {"type": "function_call", "call_id": "c", "name": "f",
         "arguments": f'{{"to": "{EMAIL}"}}'},
        {"type": "function_call_output", "call_id": "c", "output": f"mailed {EMAIL}"}]}
    out = await masked(body, "openai-responses")
    assert out["instructions"] == "Call [PHONE]"
    assert out["input"][0]["content"][0]["text"] == "TC [TCKN]"
    assert out["input"][0]["content"][1] == body["input"][0]["content"][1]
    assert out["input"][1]["arguments"] == '{"to": "[EMAIL]"}'
    assert out["input"][2]["output"] == "mailed [EMAIL]"
    plain = await masked({"model": "m", "input": f"hi {EMAIL}"}, "openai-responses")
    assert plain["input"] == "hi [EMAIL]"


# --- modes and scope -------------------------------------------------------------------------

async def test_pseudonyms_are_stable_per_value_and_numbered_per_kind():
    plugin = make_plugin(pii=pii(mode="pseudonymise"))
    ex = exchange(chat({"role": "user", "content": f"{EMAIL}, b@c.io, {EMAIL}, {TCKN}"}))
    await plugin.on_request(ex)
    assert ex.body["messages"][0]["content"] == "[EMAIL_1], [EMAIL_2], [EMAIL_1], [TCKN_1]"
    assert ex.state["redaction"].found == {"email": 3, "tckn": 1}
    assert "pii_masked" in ex.flags


async def test_block_names_the_kinds_and_never_the_values():
    plugin = make_plugin(pii=pii(mode="block"))
    ex = exchange(chat({"role": "user", "content": f"{TCKN} {EMAIL} {EMAIL}"}))
    with pytest.raises(GatewayError) as caught:
        await plugin.on_request(ex)
    err = caught.value
    assert (err.status, err.type, err.code) == (400, "invalid_request_error", "pii_detected")
    assert "email, tckn" in err.message
    assert TCKN not in err.message and EMAIL not in err.message
    assert ex.body["messages"][0]["content"] == f"{TCKN} {EMAIL} {EMAIL}"


async def test_block_lets_clean_requests_through_unchanged():
    ex = exchange(chat({"role": "user", "content": "Merhaba, iyi misin?"}))
    await make_plugin(pii=pii(mode="block")).on_request(ex)
    assert "redaction" not in ex.state


async def test_only_the_configured_kinds_and_custom_patterns_are_masked():
    rule = pii(kinds=["tckn"], custom=[CustomPattern("employee_id", r"\bEMP-\d{6}\b")])
    ex = exchange(chat({"role": "user", "content": f"EMP-004211 {TCKN} {EMAIL}"}))
    await make_plugin(pii=rule).on_request(ex)
    assert ex.body["messages"][0]["content"] == f"[EMPLOYEE_ID] [TCKN] {EMAIL}"


@pytest.mark.parametrize(("models", "keys", "model", "key_id", "applies"), [
    (["m"], [], "m", None, True),
    (["m"], [], "other", None, False),
    ([], ["key_a"], "m", "key_a", True),
    ([], ["key_a"], "m", "key_b", False),
    ([], ["key_a"], "m", None, False),
    (["m"], ["key_a"], "m", "key_a", True),
    (["m"], ["key_a"], "other", "key_a", False),
])
async def test_rules_apply_per_model_and_per_key(models, keys, model, key_id, applies):
    plugin = make_plugin(pii=pii(models=models, keys=keys))
    ex = exchange(chat({"role": "user", "content": EMAIL}), model=model, key_id=key_id)
    await plugin.on_request(ex)
    assert (ex.body["messages"][0]["content"] == "[EMAIL]") is applies


# --- restoring JSON answers ------------------------------------------------------------------

async def pseudonymised(content: str, **rule) -> tuple[Plugin, Exchange]:
    plugin = make_plugin(pii=pii(mode="pseudonymise", **rule))
    ex = exchange(chat({"role": "user", "content": content}))
    await plugin.on_request(ex)
    return plugin, ex


async def test_answers_get_the_original_values_back_and_raw_bytes_are_dropped():
    plugin, ex = await pseudonymised(f"Write to {EMAIL} about {TCKN}")
    answer = {"choices": [{"index": 0, "message": {
        "role": "assistant", "content": "I wrote to [EMAIL_1] about [TCKN_1] and [PHONE_1].",
        "tool_calls": [{"id": "c", "type": "function", "function": {
            "name": "send", "arguments": '{"to": "[EMAIL_1]"}'}}]}}]}
    ex.response, ex.response_raw = answer, orjson.dumps(answer)
    await plugin.on_response(ex)
    message = ex.response["choices"][0]["message"]
    assert message["content"] == f"I wrote to {EMAIL} about {TCKN} and [PHONE_1]."
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == {"to": EMAIL}
    assert ex.response_raw is None


async def test_an_answer_without_placeholders_keeps_its_bytes():
    plugin, ex = await pseudonymised(f"Write to {EMAIL}")
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "[1] ok"}}]}
    raw = orjson.dumps(answer)
    ex.response, ex.response_raw = answer, raw
    await plugin.on_response(ex)
    assert ex.response_raw is raw


async def test_values_restored_into_json_arguments_are_escaped():
    plugin, ex = await pseudonymised('ref "Q\\1" please',
                                     custom=[CustomPattern("ref", r'"Q\\\d"')])
    assert ex.body["messages"][0]["content"] == "ref [REF_1] please"
    answer = {"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"r": "[REF_1]"}}],
              "tool": {"arguments": '{"r": "[REF_1]"}'}}
    ex.response, ex.response_raw = answer, None
    await plugin.on_response(ex)
    assert ex.response["content"][0]["input"] == {"r": '"Q\\1"'}
    assert orjson.loads(ex.response["tool"]["arguments"]) == {"r": '"Q\\1"'}


async def test_anthropic_thinking_blocks_in_answers_are_left_as_signed():
    plugin, ex = await pseudonymised(f"hi {EMAIL}")
    answer = {"content": [{"type": "thinking", "thinking": "mail [EMAIL_1]", "signature": "s"},
                          {"type": "text", "text": "mailed [EMAIL_1]"}]}
    ex.response = answer
    await plugin.on_response(ex)
    assert answer["content"][0]["thinking"] == "mail [EMAIL_1]"
    assert answer["content"][1]["text"] == f"mailed {EMAIL}"


# --- access-log records ----------------------------------------------------------------------

def record(**extra) -> dict:
    return {"request_id": "req_1", "path": "/v1/chat/completions", "client_ip": "203.0.113.9",
            "model": "m", "status": 200, **extra}


@pytest.mark.parametrize("secret", [
    "ony-" + "A" * 40, "sk-proj-" + "b" * 40, "sk-ant-api03-" + "c" * 60, "AIza" + "d" * 35,
    "Bearer " + "e" * 30,
])
async def test_secrets_anywhere_in_a_record_are_masked(secret):
    rec = record(path=f"/v1/x?key={secret}", flags=[f"auth {secret}"], nested={"k": secret})
    await make_plugin().on_log(exchange({}), rec)
    assert secret not in orjson.dumps(rec).decode()
    assert "***" in rec["flags"][0] and "***" in rec["nested"]["k"]


async def test_client_ip_is_kept_hashed_or_dropped_as_configured():
    kept = record()
    await make_plugin().on_log(exchange({}), kept)
    assert kept["client_ip"] == "203.0.113.9"
    hashed, again = record(), record()
    await make_plugin(client_ip="hash").on_log(exchange({}), hashed)
    await make_plugin(client_ip="hash").on_log(exchange({}), again)
    assert hashed["client_ip"] == again["client_ip"] != "203.0.113.9"
    assert hashed["client_ip"].startswith("ip_")
    other = record()
    await make_plugin(pepper="another", client_ip="hash").on_log(exchange({}), other)
    assert other["client_ip"] != hashed["client_ip"]
    dropped = record()
    await make_plugin(client_ip="drop").on_log(exchange({}), dropped)
    assert "client_ip" not in dropped
