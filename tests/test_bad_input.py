"""Bad input gets a clear 4xx in OpenAI's error shape, with a request id and no stack trace."""

import json

import aiohttp
import pytest
from conftest import make_config
from fakes.openai_schema import validate_openai

from onyproxy.app import create_app

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]


async def call(server, method: str, path: str, **kwargs):
    async with aiohttp.ClientSession() as http:
        resp = await http.request(method, server.make_url(path), **kwargs)
        text = await resp.text()
        return resp, text


def assert_openai_error(resp, body: dict, status: int) -> dict:
    assert resp.status == status
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["x-request-id"]
    validate_openai("error", body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(("payload", "param"), [
    (b"{not json", None),
    (b"[1, 2]", None),
    (b"", None),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
    (b'{"model": "mock-small"}', "messages"),
    (b'{"model": "mock-small", "messages": []}', "messages"),
    (b'{"model": "mock-small", "messages": ["hi"]}', "messages[0]"),
    (b'{"model": 42, "messages": [{"role": "user", "content": "hi"}]}', "model"),
    (b'{"model": "mock-small", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
    (b'{"model": "mock-small", "messages": [{"role": "user"}], "temperature": 9}',
     "temperature"),
    (b'{"model": "mock-small", "messages": [{"role": "user"}], "max_tokens": -1}',
     "max_tokens"),
])
async def test_malformed_chat_requests_are_400(gateway, payload, param):
    server = await gateway()
    resp, text = await call(server, "POST", CHAT, data=payload,
                            headers={"content-type": "application/json"})

    error = assert_openai_error(resp, json.loads(text), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert "Traceback" not in text


async def test_embeddings_without_input_is_400(gateway):
    server = await gateway()
    resp, text = await call(server, "POST", "/v1/embeddings", json={"model": "mock-small"})

    assert assert_openai_error(resp, json.loads(text), 400)["param"] == "input"


async def test_body_over_limit_is_413(aiohttp_server, tmp_path):
    config = make_config({"server": {"max_body_mb": 0.001}}, tmp_path=tmp_path)
    server = await aiohttp_server(create_app(config))
    big = {"model": "mock-small", "messages": [{"role": "user", "content": "x" * 5000}]}
    resp, text = await call(server, "POST", CHAT, json=big)

    assert assert_openai_error(resp, json.loads(text), 413)["code"] == "request_too_large"


async def test_unknown_model_is_404_model_not_found(gateway):
    server = await gateway()
    resp, text = await call(server, "POST", CHAT, json={"model": "nope", "messages": USER})

    error = assert_openai_error(resp, json.loads(text), 404)
    assert error["code"] == "model_not_found" and "'nope'" in error["message"]


async def test_unknown_path_is_json_404(gateway):
    server = await gateway()
    resp, text = await call(server, "GET", "/v1/nothing-here")

    assert assert_openai_error(resp, json.loads(text), 404)["code"] == "not_found"


async def test_wrong_method_is_405(gateway):
    server = await gateway()
    resp, text = await call(server, "GET", CHAT)

    assert assert_openai_error(resp, json.loads(text), 405)["code"] == "method_not_allowed"
    assert "POST" in resp.headers["allow"]


async def test_client_request_id_is_kept_when_sane(gateway):
    server = await gateway()
    resp, _ = await call(server, "POST", CHAT, json={"model": "mock-small", "messages": USER},
                         headers={"x-request-id": "trace-123.abc"})
    assert resp.headers["x-request-id"] == "trace-123.abc"
    resp, _ = await call(server, "POST", CHAT, json={"model": "mock-small", "messages": USER},
                         headers={"x-request-id": "bad id with spaces\u00e9"})
    assert resp.headers["x-request-id"].startswith("req_")


async def test_ops_endpoints(gateway):
    server = await gateway()
    resp, text = await call(server, "GET", "/healthz")
    assert resp.status == 200 and resp.headers["x-request-id"]
    resp, text = await call(server, "GET", "/readyz")
    assert resp.status == 200 and '"ready"' in text


def nested(depth: int) -> bytes:
    return b'{"model": "mock-small", "messages": [{"role": "user", "content": "hi"}], "x": ' \
        + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [70, 300, 1000])
async def test_json_nested_deeper_than_64_levels_is_400(gateway, depth):
    """orjson parses 1024 levels but encodes 255: refused when parsed, not a 500 later."""
    server = await gateway()
    resp, text = await call(server, "POST", CHAT, data=nested(depth),
                            headers={"content-type": "application/json"})

    error = assert_openai_error(resp, json.loads(text), 400)
    assert error["code"] == "json_too_deep"


async def test_json_nested_62_levels_is_served(gateway):
    server = await gateway()
    resp, _ = await call(server, "POST", CHAT, data=nested(62),
                         headers={"content-type": "application/json"})
    assert resp.status == 200


@pytest.mark.parametrize(("encoding", "data"), [
    ("gzip", b'{"model": "mock-small"}'),      # says gzip, is not
    ("compress", json.dumps({"model": "mock-small", "messages": USER}).encode()),  # not decoded
])
async def test_a_wrong_content_encoding_is_400(gateway, encoding, data):
    server = await gateway()
    resp, text = await call(server, "POST", CHAT, data=data,
                            headers={"content-type": "application/json",
                                     "content-encoding": encoding})

    assert assert_openai_error(resp, json.loads(text), 400)["type"] == "invalid_request_error"


async def test_a_gzipped_body_is_served(gateway):
    import gzip
    server = await gateway()
    body = gzip.compress(json.dumps({"model": "mock-small", "messages": USER}).encode())
    resp, _ = await call(server, "POST", CHAT, data=body,
                         headers={"content-type": "application/json",
                                  "content-encoding": "gzip"})
    assert resp.status == 200


async def test_an_overlong_model_name_is_400_and_never_logged(gateway, tmp_path, caplog):
    """Without any key: a 900 KB model name must not become a 900 KB log line."""
    server = await gateway({"pipeline": [{"name": "auth"}, {"name": "routing"}],
                            "security": {"key_pepper": "p" * 32}})
    model = "m" * 900_000
    with caplog.at_level("INFO"):
        resp, text = await call(server, "POST", CHAT, json={"model": model, "messages": USER},
                                headers={"user-agent": "u" * 5000})

    error = assert_openai_error(resp, json.loads(text), 400)
    assert (error["param"], error["code"]) == ("model", "model_too_long")
    assert model not in text
    ours = [r for r in caplog.records if r.name.startswith("onyproxy")]
    assert any(r.name == "onyproxy.access" for r in ours)
    assert all(len(r.getMessage()) < 2000 and "m" * 300 not in
               repr(getattr(r, "fields", None)) for r in ours)


async def test_the_user_agent_is_cut_to_256_characters(gateway):
    from onyproxy.client_input import user_agent
    assert user_agent("u" * 5000) == "u" * 256 and user_agent(None) is None


@pytest.mark.parametrize(("path", "body", "error_of"), [
    ("/v1/messages", {"model": "m" * 300, "max_tokens": 5, "messages": USER},
     lambda answer: answer["type"] == "error" and answer["error"]),
    (f"/v1beta/models/{'m' * 300}:generateContent",
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
     lambda answer: answer["error"]["status"] == "INVALID_ARGUMENT" and answer["error"]),
])
async def test_an_overlong_model_is_400_in_the_called_apis_shape(gateway, path, body, error_of):
    server = await gateway()
    resp, text = await call(server, "POST", path, json=body)
    assert resp.status == 400 and "m" * 300 not in text
    error = error_of(json.loads(text))
    assert "256 characters" in error["message"]
