"""Redaction over loopback: what reaches the upstream is masked, callers get their values back
in pseudonymise mode (JSON and streams, placeholders split across events, every client shape),
block answers 400 in the caller's shape, and secrets never reach a log line."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp import web

TCKN = "10000000146"
EMAIL = "ayse@ornek.com.tr"
PHONE = "0532 123 45 67"
PROMPT = f"Merhaba, TC kimlik no {TCKN}, telefon {PHONE}, e-posta {EMAIL}"
ROUTING = {"name": "routing", "retries": 0, "timeout_s": 5}


def pipeline(**pii: Any) -> dict[str, Any]:
    return {"pipeline": [{"name": "redaction", "pii": pii}, ROUTING]}


def chat_body(stream: bool = False) -> dict[str, Any]:
    return {"model": "gpt-test", "stream": stream,
            "messages": [{"role": "user", "content": PROMPT}]}


# --- a tiny upstream that streams exactly the pieces a test gives it -------------------------

class SplitUpstream:
    """An OpenAI-compatible upstream answering with ``pieces``, one chunk each."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.base_url = ""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        if not body.get("stream"):
            return web.json_response(completion("".join(self.pieces)))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for piece in self.pieces:
            await resp.write(sse(chunk({"content": piece})))
        await resp.write(sse(chunk({}, finish="stop")))
        await resp.write(sse(chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 4,
                                                "total_tokens": 7})))
        await resp.write(b"data: [DONE]\n\n")
        return resp


    async def responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API, which OpenAI providers are asked for Responses clients."""
        body = await request.json()
        self.bodies.append(body)
        text = "".join(self.pieces)
        if not body.get("stream"):
            return web.json_response(response_object(text))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for kind, fields in responses_events(self.pieces):
            await resp.write(f"event: {kind}\n".encode() + sse({"type": kind, **fields}))
        return resp


def response_object(text: str, status: str = "completed") -> dict:
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": status,
            "model": "gpt-4o-mini", "output": [{
                "type": "message", "id": "msg_1", "role": "assistant", "status": status,
                "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}


def responses_events(pieces: list[str]) -> list[tuple[str, dict]]:
    """The events of a one-message Responses stream, as OpenAI sends them."""
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    text = "".join(pieces)
    part = {"type": "output_text", "text": text, "annotations": []}
    events = [("response.created", {"response": response_object("", "in_progress")})]
    events += [("response.output_text.delta", {**ids, "delta": p}) for p in pieces]
    events += [("response.output_text.done", {**ids, "text": text}),
               ("response.content_part.done", {**ids, "part": part}),
               ("response.completed", {"response": response_object(text)})]
    return [(kind, {**fields, "sequence_number": n}) for n, (kind, fields) in enumerate(events)]


def chunk(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "choices": choices, "usage": usage}


def completion(text: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


def sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


@pytest.fixture
async def split_upstream(aiohttp_server) -> SplitUpstream:
    upstream = SplitUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    app.router.add_post("/v1/responses", upstream.responses)
    server = await aiohttp_server(app)
    upstream.base_url = str(server.make_url("/v1"))
    return upstream


def split_config(upstream: SplitUpstream, **pii: Any) -> dict[str, Any]:
    return {"providers": {"split": {"type": "openai", "base_url": upstream.base_url,
                                    "api_key": "sk-split-upstream-key"}},
            "models": {"gpt-test": {"targets": [{"provider": "split", "model": "gpt-4o-mini"}]}},
            **pipeline(**pii)}


# --- OpenAI surface with the fake OpenAI upstream --------------------------------------------

@pytest.fixture
def openai_gateway(gateway, fake_openai):
    from conftest import openai_provider

    async def start(**pii: Any):
        return await gateway({**openai_provider(fake_openai), **pipeline(**pii)})
    return start


def upstream_text(fake) -> str:
    return fake.last.body["messages"][0]["content"]


async def test_mask_sends_placeholders_upstream_and_the_client_sees_them(openai_gateway,
                                                                        fake_openai):
    server = await openai_gateway(mode="mask")
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/chat/completions"), json=chat_body()) as resp:
        answer = await resp.json()
    sent = upstream_text(fake_openai)
    assert sent == "Merhaba, TC kimlik no [TCKN], telefon [PHONE], e-posta [EMAIL]"
    for value in (TCKN, PHONE, EMAIL):
        assert value not in fake_openai.last.raw.decode()
    assert answer["choices"][0]["message"]["content"] == f"echo: {sent}"


async def test_pseudonymise_restores_values_in_a_json_answer(openai_gateway, fake_openai):
    server = await openai_gateway(mode="pseudonymise")
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k",
                                  max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    assert upstream_text(fake_openai) == \
        "Merhaba, TC kimlik no [TCKN_1], telefon [PHONE_1], e-posta [EMAIL_1]"
    assert answer.choices[0].message.content == f"echo: {PROMPT}"


async def test_pseudonymise_restores_values_in_a_stream(openai_gateway, fake_openai):
    server = await openai_gateway(mode="pseudonymise")
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k",
                                  max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": PROMPT}])
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "[EMAIL_1]" in upstream_text(fake_openai)
    assert text == f"echo: {PROMPT}"


async def test_block_answers_400_in_the_openai_shape_and_sends_nothing(openai_gateway,
                                                                      fake_openai):
    server = await openai_gateway(mode="block", kinds=["tckn", "iban_tr"])
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/chat/completions"), json=chat_body()) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "pii_detected"
    assert "tckn" in error["message"] and TCKN not in error["message"]
    assert fake_openai.requests == []


async def test_a_rule_for_another_model_leaves_requests_alone(gateway, fake_openai):
    from conftest import openai_provider

    config = openai_provider(fake_openai)
    server = await gateway({**config, **pipeline(mode="block", models=["mock-small"])})
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/chat/completions"), json=chat_body()) as resp:
        assert resp.status == 200
    assert upstream_text(fake_openai) == PROMPT


# --- placeholders split across stream events, in every client shape --------------------------

# The model's answer in pieces that cut through both placeholders, and a final "[PH" that only
# looks like the start of one and must still reach the client.
PIECES = ["Yazdim: [EMA", "IL_", "1], ara [", "PHONE_1", "] ve [TC", "KN_1]. Son [PH"]
RESTORED = f"Yazdim: {EMAIL}, ara {PHONE} ve {TCKN}. Son [PH"


async def sse_events(resp: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    events = []
    async for line in resp.content:
        text = line.decode().strip()
        if text.startswith("data: ") and text != "data: [DONE]":
            events.append(json.loads(text[6:]))
    return events


async def test_openai_stream_split_inside_placeholders(gateway, split_upstream):
    split_upstream.pieces = PIECES
    server = await gateway(split_config(split_upstream, mode="pseudonymise"))
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k",
                                  max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": PROMPT}])
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert split_upstream.bodies[0]["messages"][0]["content"] == \
        "Merhaba, TC kimlik no [TCKN_1], telefon [PHONE_1], e-posta [EMAIL_1]"
    assert text == RESTORED


async def test_anthropic_stream_split_inside_placeholders(gateway, split_upstream):
    split_upstream.pieces = PIECES
    server = await gateway(split_config(split_upstream, mode="pseudonymise"))
    sdk = anthropic.AsyncAnthropic(base_url=str(server.make_url("")), api_key="k",
                                   max_retries=0)
    async with sdk, sdk.messages.stream(model="gpt-test", max_tokens=50, system=f"Ops {PHONE}",
                                        messages=[{"role": "user", "content": PROMPT}]) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    sent = split_upstream.bodies[0]["messages"]
    assert sent[0]["content"] == "Ops [PHONE_1]"
    assert "[EMAIL_1]" in sent[1]["content"] and EMAIL not in json.dumps(sent)
    assert text == RESTORED
    assert final.content[0].text == RESTORED


async def test_gemini_stream_split_inside_placeholders(gateway, split_upstream):
    split_upstream.pieces = PIECES
    server = await gateway(split_config(split_upstream, mode="pseudonymise"))
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    url = server.make_url("/v1beta/models/gpt-test:streamGenerateContent?alt=sse")
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200
        events = await sse_events(resp)
    text = "".join(part.get("text", "") for event in events
                   for candidate in event.get("candidates", [])
                   for part in candidate.get("content", {}).get("parts", []))
    assert EMAIL not in json.dumps(split_upstream.bodies[0])
    assert text == RESTORED


async def test_responses_stream_split_inside_placeholders(gateway, split_upstream):
    split_upstream.pieces = PIECES
    server = await gateway(split_config(split_upstream, mode="pseudonymise"))
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k",
                                  max_retries=0) as sdk:
        stream = await sdk.responses.create(model="gpt-test", input=PROMPT, stream=True)
        deltas, final = [], None
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                final = event.response
    assert EMAIL not in json.dumps(split_upstream.bodies[0])
    assert "".join(deltas) == RESTORED
    assert final is not None and final.output_text == RESTORED


@pytest.mark.parametrize("surface", ["openai", "anthropic", "gemini", "responses"])
async def test_json_answers_are_restored_in_every_client_shape(gateway, split_upstream, surface):
    split_upstream.pieces = PIECES
    server = await gateway(split_config(split_upstream, mode="pseudonymise"))
    path, body, read = JSON_CALLS[surface]
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url(path), json=body, headers=HEADERS) as resp:
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    assert EMAIL not in json.dumps(split_upstream.bodies[0])
    assert read(answer) == RESTORED


HEADERS = {"anthropic-version": "2023-06-01"}
JSON_CALLS = {
    "openai": ("/v1/chat/completions", chat_body(),
               lambda a: a["choices"][0]["message"]["content"]),
    "anthropic": ("/v1/messages", {"model": "gpt-test", "max_tokens": 50,
                                   "messages": [{"role": "user", "content": PROMPT}]},
                  lambda a: a["content"][0]["text"]),
    "gemini": ("/v1beta/models/gpt-test:generateContent",
               {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
               lambda a: a["candidates"][0]["content"]["parts"][0]["text"]),
    "responses": ("/v1/responses", {"model": "gpt-test", "input": PROMPT},
                  lambda a: a["output"][0]["content"][0]["text"]),
}


@pytest.mark.parametrize(("surface", "read_error"), [
    ("anthropic", lambda body: (body["type"], body["error"]["type"], body["error"]["message"])),
    ("gemini", lambda body: ("error", body["error"]["status"], body["error"]["message"])),
    ("responses", lambda body: ("error", body["error"]["type"], body["error"]["message"])),
])
async def test_block_answers_400_in_each_callers_shape(gateway, split_upstream, surface,
                                                       read_error):
    server = await gateway(split_config(split_upstream, mode="block"))
    path, body, _ = JSON_CALLS[surface]
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url(path), json=body, headers=HEADERS) as resp:
        assert resp.status == 400
        kind, error_type, message = read_error(await resp.json())
    assert kind == "error"
    assert error_type in ("invalid_request_error", "INVALID_ARGUMENT")
    assert "email, phone, tckn" in message
    assert all(value not in message for value in (TCKN, PHONE, EMAIL))
    assert split_upstream.bodies == []


# --- logs ------------------------------------------------------------------------------------

async def test_access_lines_hash_the_ip_and_no_log_line_carries_a_key(gateway, split_upstream,
                                                                     caplog):
    caplog.set_level(logging.INFO)
    split_upstream.pieces = ["ok"]
    config = split_config(split_upstream, mode="mask")
    config["pipeline"][0]["client_ip"] = "hash"
    server = await gateway(config)
    client_key = "ony-" + "K" * 40
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/chat/completions"), json=chat_body(),
                      headers={"authorization": f"Bearer {client_key}"}) as resp:
        assert resp.status == 200
    logging.getLogger("some.sdk").warning("retrying with api_key=%s", "sk-split-upstream-key")
    access = [r for r in caplog.records if r.name == "onyproxy.access"]
    assert access and access[-1].fields["client_ip"].startswith("ip_")
    assert "pii_masked" in access[-1].fields["flags"]
    assert "sk-split-upstream-key" not in caplog.text and client_key not in caplog.text
    assert "api_key=***" in caplog.text
    for value in (TCKN, PHONE, EMAIL):
        assert value not in caplog.text
