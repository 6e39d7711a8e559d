"""The auth plugin in a running gateway, called with the official SDKs over loopback HTTP:
each SDK's way of sending the key, the one 401 in each API's shape, revocation within the
cache TTL, the model allow-list, blocking an address, and the store going away at runtime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from conftest import BASE_CONFIG, make_config
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from onyproxy.accounts import create_account
from onyproxy.appkeys import GATEWAY
from onyproxy.config import parse_config
from onyproxy.config.defaults import shipped
from onyproxy.keys import create_key, revoke_key
from onyproxy.storage import utcnow
from plugins.auth.config import AuthConfig
from plugins.auth.plugin import INVALID_KEY

# google-genai's async client subclasses aiohttp.ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged"
    ":DeprecationWarning")

PEPPER = "e2e-pepper-0123456789abcdefghij"
TTL_S = 0.5
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]}
MODELS = {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]},
          "mock-large": {"targets": [{"provider": "mock", "model": "mock-large"}]}}
# The same call on each surface: path and body.
CALLS = {
    "openai": ("/v1/chat/completions", CHAT),
    "anthropic": ("/v1/messages", {**CHAT, "max_tokens": 16}),
    "gemini": ("/v1beta/models/mock-small:generateContent",
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}


def auth_overrides(**auth: Any) -> dict[str, Any]:
    options = {"cache_ttl_s": TTL_S, "negative_ttl_s": 0,
               "failures": {"max": 1000, "delay_s": 0}, **auth}
    return {"security": {"key_pepper": PEPPER}, "models": MODELS,
            "pipeline": [{"name": "auth", **options}, *BASE_CONFIG["pipeline"]]}


class Keys:
    """Issues keys straight into the running gateway's store (as the CLI would)."""

    def __init__(self, gw: Any) -> None:
        self.gw = gw

    async def issue(self, email: str = "ada@example.com", **options: Any) -> tuple[str, str]:
        store = self.gw.store
        account = await store.get_account_by_email(email) or \
            await create_account(store, email=email, name="Ada Lovelace")
        issued = await create_key(store, account.id, pepper=PEPPER, **options)
        return issued.secret, issued.record.id


@pytest.fixture
def start(gateway) -> Callable[..., Any]:
    async def run(**auth: Any) -> tuple[str, Keys]:
        server = await gateway(auth_overrides(**auth))
        return str(server.make_url("")).rstrip("/"), Keys(server.app[GATEWAY])
    return run


async def post(url: str, path: str, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, \
            session.post(url + path, json=body, headers=headers or {}) as resp:
        return resp.status, await resp.json(), resp.headers


def message_of(surface: str, body: dict[str, Any]) -> str:
    return body["error"]["message"]


# -- the official SDKs -----------------------------------------------------------------------


async def test_openai_sdk_sends_bearer_and_sees_only_its_models(start):
    url, keys = await start()
    secret, _ = await keys.issue(models=["mock-small"])
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=secret, max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(**CHAT)
        assert answer.choices[0].message.content == "echo: hi"
        assert [m.id async for m in sdk.models.list()] == ["mock-small"]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await sdk.chat.completions.create(**{**CHAT, "model": "mock-large"})
    assert "'mock-large'" in denied.value.message


@pytest.mark.parametrize("how", ["auth_token", "api_key"])
async def test_anthropic_sdk_authenticates_with_bearer_or_x_api_key(start, how):
    url, keys = await start()
    secret, _ = await keys.issue()
    async with anthropic.AsyncAnthropic(base_url=url, max_retries=0, **{how: secret}) as sdk:
        message = await sdk.messages.create(model="mock-small", max_tokens=16,
                                            messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "echo: hi"


async def test_google_genai_sdk_authenticates_with_x_goog_api_key(start):
    url, keys = await start()
    secret, _ = await keys.issue()
    sdk = gemini_sdk(url, secret)
    try:
        answer = await sdk.aio.models.generate_content(model="mock-small", contents="hi")
    finally:
        await sdk.aio.aclose()
    assert answer.text == "echo: hi"


def gemini_sdk(url: str, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))


async def sdk_errors(url: str, key: str) -> dict[str, tuple[int, str]]:
    """(status, message) each SDK reports for a call made with ``key``."""
    found: dict[str, tuple[int, str]] = {}
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as oai:
        with pytest.raises(openai.APIStatusError) as caught:
            await oai.chat.completions.create(**CHAT)
    found["openai"] = caught.value.status_code, caught.value.body["message"]
    async with anthropic.AsyncAnthropic(base_url=url, auth_token=key, max_retries=0) as ant:
        with pytest.raises(anthropic.APIStatusError) as caught_a:
            await ant.messages.create(model="mock-small", max_tokens=16,
                                      messages=[{"role": "user", "content": "hi"}])
    found["anthropic"] = caught_a.value.status_code, caught_a.value.body["error"]["message"]
    gem = gemini_sdk(url, key)
    try:
        with pytest.raises(genai_errors.APIError) as caught_g:
            await gem.aio.models.generate_content(model="mock-small", contents="hi")
    finally:
        await gem.aio.aclose()
    found["gemini"] = caught_g.value.code, caught_g.value.message
    return found


async def test_wrong_revoked_and_expired_keys_get_one_401_in_every_sdk(start):
    url, keys = await start()
    revoked, revoked_id = await keys.issue()
    await revoke_key(keys.gw.store, revoked_id)
    expired, _ = await keys.issue(expires_at=utcnow() + timedelta(seconds=1))
    await asyncio.sleep(1.05)
    for key in ("ony-" + "W" * 40, "sk-definitely-not-ours", revoked, expired):
        assert await sdk_errors(url, key) == {surface: (401, INVALID_KEY)
                                               for surface in CALLS}


@pytest.mark.parametrize("surface", CALLS)
async def test_missing_key_is_the_same_401_in_each_shape(start, surface):
    url, _ = await start()
    path, body = CALLS[surface]
    status, answer, headers = await post(url, path, body)
    assert status == 401 and headers["x-request-id"]
    expected = {
        "openai": {"error": {"message": INVALID_KEY, "type": "authentication_error",
                             "param": None, "code": "invalid_api_key"}},
        "anthropic": {"type": "error", "error": {"type": "authentication_error",
                                                  "message": INVALID_KEY}},
        "gemini": {"error": {"code": 401, "message": INVALID_KEY, "status": "UNAUTHENTICATED"}},
    }
    assert answer == expected[surface]


async def test_query_key_works_for_gemini_paths(start):
    url, keys = await start()
    secret, _ = await keys.issue()
    path, body = CALLS["gemini"]
    status, answer, _ = await post(url, f"{path}?key={secret}", body)
    assert status == 200 and answer["candidates"][0]["content"]["parts"][0]["text"] == "echo: hi"


# -- revocation, allow-list, blocking --------------------------------------------------------


async def test_revocation_elsewhere_takes_effect_within_the_cache_ttl(start):
    url, keys = await start()
    secret, key_id = await keys.issue()
    auth = {"authorization": f"Bearer {secret}"}
    assert (await post(url, *CALLS["openai"], auth))[0] == 200
    await revoke_key(keys.gw.store, key_id)  # the CLI or another worker: no signal here
    # Cache entries expire by the clock, so once the TTL has passed the key must be refused,
    # however slow the machine; no upper bound on elapsed time is asserted.
    await asyncio.sleep(TTL_S + 0.1)
    assert (await post(url, *CALLS["openai"], auth))[0] == 401


async def test_a_model_outside_the_allow_list_is_403_in_each_shape(start):
    url, keys = await start()
    secret, _ = await keys.issue(models=["mock-large"])
    for surface, (path, body) in CALLS.items():
        status, answer, _ = await post(url, path, body, {"x-api-key": secret})
        assert status == 403, surface
        assert "'mock-small'" in message_of(surface, answer)


async def test_an_address_sending_wrong_keys_is_slowed_then_blocked(start):
    url, keys = await start(failures={"max": 3, "window_s": 60, "block_s": 2, "delay_s": 0.2})
    good, _ = await keys.issue()
    began = time.monotonic()
    for _ in range(3):
        status, _, _ = await post(url, *CALLS["openai"], {"x-api-key": "ony-" + "Z" * 40})
        assert status == 401
    assert time.monotonic() - began >= 0.2  # the second failure waited
    for surface, (path, body) in CALLS.items():
        status, answer, headers = await post(url, path, body, {"x-api-key": "ony-" + "Y" * 40})
        assert status == 429 and headers["retry-after"] in ("1", "2"), surface
        assert "Too many failed sign-ins" in message_of(surface, answer)
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        scraped = await resp.text()
    # The core counts every 401 exchange; the plugin counts the refusals of a blocked address.
    assert 'onyproxy_auth_failures_total{surface="openai"} 3.0' in scraped
    assert 'onyproxy_ratelimited_total{scope="ip"} 3.0' in scraped
    # A block refuses only keys that fail: a valid key from the same address gets through.
    assert (await post(url, *CALLS["openai"], {"authorization": f"Bearer {good}"}))[0] == 200


async def test_models_listing_needs_a_key(start):
    url, _ = await start()
    async with aiohttp.ClientSession() as session, session.get(url + "/v1/models") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["message"] == INVALID_KEY


def test_the_default_config_puts_auth_first():
    text = shipped("gateway.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "gateway.yaml", {})
    assert config.plugins[0].name == "auth"
    assert config.plugins[0].config == AuthConfig()


async def test_an_empty_pepper_on_sqlite_is_generated_once_and_kept(aiohttp_server, tmp_path,
                                                                   caplog):
    from onyproxy.app import create_app

    config = make_config(auth_overrides() | {"security": {}}, tmp_path=tmp_path)
    server = await aiohttp_server(create_app(config))
    pepper_file = tmp_path / "key_pepper"
    assert pepper_file.stat().st_mode & 0o777 == 0o600
    pepper = pepper_file.read_text().strip()
    assert server.app[GATEWAY].config.security.key_pepper == pepper
    assert f"generated a key pepper and saved it in {pepper_file}" in caplog.text
    await server.close()
    caplog.clear()
    server = await aiohttp_server(create_app(config))
    assert server.app[GATEWAY].config.security.key_pepper == pepper
    assert "generated" not in caplog.text


# -- MongoDB: the store going away at runtime, and the pepper it needs -----------------------


@pytest.fixture
def secantus(tmp_path) -> Any:
    """A SecantusDB server of this test's own, so the test may kill it."""
    import subprocess
    import sys
    from pathlib import Path

    from storage.conftest import STARTUP_TIMEOUT_S, _answers_ping, _stop, free_port

    port = free_port()
    url = f"mongodb://127.0.0.1:{port}/onyproxy_auth?directConnection=true"
    exe = Path(sys.executable).parent / "secantusd-py"
    proc = subprocess.Popen([str(exe), "--host", "127.0.0.1", "--port", str(port),
                             "--storage-path", str(tmp_path / "mongo")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _answers_ping(url):
        assert proc.poll() is None and time.monotonic() < deadline, "SecantusDB did not start"
        time.sleep(0.2)
    server = type("Secantus", (), {"url": url, "stop": lambda self: _stop(proc)})()
    yield server
    if proc.poll() is None:
        _stop(proc)


@pytest.mark.slow
async def test_mongo_down_at_runtime_serves_cached_keys_and_503s_unknown_ones(gateway,
                                                                             secantus):
    server = await gateway({**auth_overrides(), "storage": {"url": secantus.url}})
    url, keys = str(server.make_url("")).rstrip("/"), Keys(server.app[GATEWAY])
    known, _ = await keys.issue()
    unseen, _ = await keys.issue("bob@example.com")
    assert (await post(url, *CALLS["openai"], {"authorization": f"Bearer {known}"}))[0] == 200
    secantus.stop()
    await asyncio.sleep(TTL_S)  # the cached entry is stale: the store is asked, and fails
    for surface, (path, body) in CALLS.items():
        status, answer, _ = await post(url, path, body, {"x-api-key": known})
        assert status == 200, surface
        status, answer, headers = await post(url, path, body, {"x-api-key": unseen})
        assert status == 503 and headers["retry-after"] == "5", surface
        assert "cannot verify API keys" in message_of(surface, answer)
    async with aiohttp.ClientSession() as session, session.get(url + "/readyz") as resp:
        assert resp.status == 503 and (await resp.json())["checks"]["storage"] is False


@pytest.mark.slow
async def test_mongo_with_an_empty_pepper_refuses_to_start(aiohttp_server, secantus, tmp_path):
    from onyproxy.app import create_app
    from onyproxy.pepper import PepperError

    config = make_config({**auth_overrides(), "security": {},
                          "storage": {"url": secantus.url}}, tmp_path=tmp_path)
    with pytest.raises(PepperError, match=r"security\.key_pepper is empty: with MongoDB"):
        await aiohttp_server(create_app(config))
    assert not (tmp_path / "key_pepper").exists()
