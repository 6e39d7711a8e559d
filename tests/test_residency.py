"""Data residency: the plugin's filtering and 403 on hand-built exchanges, its place in the
pipeline, the auth plugin's combination of key and account regions, and end to end: a key
limited to some regions only ever reaches providers there, or gets a 403 before anything is
sent."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from conftest import make_config
from privacy_env import MODELS, PEPPER, PROVIDERS

from onyproxy.accounts import create_account, update_account
from onyproxy.appkeys import GATEWAY
from onyproxy.config import ConfigError
from onyproxy.config.model import ProviderConfig, TargetConfig
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange, Identity
from onyproxy.keys import create_key
from plugins.auth.plugin import allowed_regions
from plugins.residency.plugin import ResidencyConfig, ResidencyPlugin

TARGETS = [TargetConfig("virginia", "a"), TargetConfig("istanbul", "b"),
           TargetConfig("nowhere", "c")]


def plugin(regions: list[str] | None = None) -> ResidencyPlugin:
    providers = {name: ProviderConfig(**spec) for name, spec in PROVIDERS.items()}
    gateway = SimpleNamespace(config=SimpleNamespace(providers=providers))
    return ResidencyPlugin(ResidencyConfig(regions=regions or []), gateway)


def exchange(regions: list[str] | None, identity: bool = True) -> Exchange:
    ex = Exchange(request_id="r1", surface="openai", shape="openai", operation="chat",
                  path="/v1/chat/completions", headers={}, query={}, client_ip=None,
                  user_agent=None, model="mock-small", targets=list(TARGETS))
    if identity:
        ex.identity = Identity(account_id="acc_1", key_id="key_1", allowed_regions=regions)
    return ex


async def test_without_limits_every_target_stays() -> None:
    for ex in (exchange(None), exchange(None, identity=False)):
        await plugin().on_request(ex)
        assert ex.targets == TARGETS and "residency" not in ex.state


async def test_targets_outside_the_callers_regions_are_dropped() -> None:
    ex = exchange(["tr", "eu"])
    await plugin().on_request(ex)
    assert [t.provider for t in ex.targets] == ["istanbul"]
    assert ex.state["residency"] == {"dropped": 2}


async def test_no_target_left_is_a_403_naming_the_regions() -> None:
    ex = exchange(["eu"])
    with pytest.raises(GatewayError) as caught:
        await plugin().on_request(ex)
    err = caught.value
    assert (err.status, err.code, err.param) == (403, "region_not_allowed", "model")
    assert "(eu)" in err.message and "not sent" in err.message
    with pytest.raises(GatewayError, match=r"\(none\)"):
        await plugin().on_request(exchange([]))


async def test_a_provider_without_a_region_is_outside_every_limit() -> None:
    ex = exchange(["us", "tr"])
    await plugin().on_request(ex)
    assert "nowhere" not in [t.provider for t in ex.targets]


async def test_the_gateway_wide_regions_limit_everyone() -> None:
    anonymous = exchange(None, identity=False)
    await plugin(["us"]).on_request(anonymous)
    assert [t.provider for t in anonymous.targets] == ["virginia"]
    narrowed = exchange(["us", "tr"])
    await plugin(["TR"]).on_request(narrowed)
    assert [t.provider for t in narrowed.targets] == ["istanbul"]


def test_key_and_account_regions_intersect() -> None:
    assert allowed_regions(None, None) is None
    assert allowed_regions(["tr"], None) == ["tr"]
    assert allowed_regions(None, ["eu"]) == ["eu"]
    assert allowed_regions(["tr", "eu"], ["eu", "us"]) == ["eu"]
    assert allowed_regions(["tr"], ["us"]) == []


@pytest.mark.parametrize("pipeline, says", [
    (["residency", "auth", "routing"], "residency must come after auth"),
    (["auth", "routing", "residency"], "residency must come before routing"),
])
def test_the_pipeline_order_is_checked_at_start(pipeline, says) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config({"pipeline": [{"name": n} for n in pipeline],
                     "security": {"key_pepper": PEPPER}})
    assert any(says in p and "pipeline[" in p for p in caught.value.problems)


def test_bad_region_codes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"pipeline\[0\]\.regions: 'e u' is not a region"):
        make_config({"pipeline": [{"name": "residency", "regions": ["e u"]}]})


@pytest.fixture
async def served(gateway, tmp_path):
    server = await gateway({"security": {"key_pepper": PEPPER}, "providers": PROVIDERS,
                            "models": MODELS,
                            "pipeline": [{"name": "auth", "cache_ttl_s": 0.1},
                                         {"name": "residency"}, {"name": "routing"}]})
    store = server.app[GATEWAY].store
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
        yield session, store


async def chat(session, secret: str, model: str = "mock-small"):
    body = {"model": model, "messages": [{"role": "user", "content": "merhaba"}]}
    async with session.post("/v1/chat/completions", json=body,
                            headers={"authorization": f"Bearer {secret}"}) as resp:
        return resp.status, resp.headers.get("x-onyproxy-provider"), await resp.json()


async def test_a_limited_key_reaches_only_providers_in_its_regions(served) -> None:
    session, store = served
    account = await create_account(store, email="ayse@example.com", name="Ayşe")
    free = await create_key(store, account.id, pepper=PEPPER, name="free")
    local = await create_key(store, account.id, pepper=PEPPER, name="tr", regions="tr")
    assert (await chat(session, free.secret))[:2] == (200, "virginia")
    assert (await chat(session, local.secret))[:2] == (200, "istanbul")
    status, provider, body = await chat(session, local.secret, "us-only")
    assert (status, provider) == (403, None)
    assert body["error"]["code"] == "region_not_allowed"
    assert body["error"]["type"] == "permission_error"


async def test_account_regions_apply_to_all_its_keys(served) -> None:
    session, store = served
    account = await create_account(store, email="ayse@example.com", name="Ayşe")
    key = await create_key(store, account.id, pepper=PEPPER, regions=["tr", "us"])
    await update_account(store, account.id, regions="eu")
    status, _, body = await chat(session, key.secret)
    assert status == 403 and "(none)" in body["error"]["message"]


async def models_seen(session, secret: str, path: str = "/v1/models"):
    async with session.get(path, headers={"authorization": f"Bearer {secret}"}) as resp:
        return resp.status, await resp.json()


async def test_a_limited_key_lists_and_retrieves_the_models_it_may_use(served) -> None:
    session, store = served
    account = await create_account(store, email="ayse@example.com", name="Ayşe")
    free = await create_key(store, account.id, pepper=PEPPER, name="free")
    local = await create_key(store, account.id, pepper=PEPPER, name="tr", regions="tr")
    picked = await create_key(store, account.id, pepper=PEPPER, models=["us-only"])
    listed = {s: [m["id"] for m in (await models_seen(session, s))[1]["data"]]
              for s in (free.secret, local.secret, picked.secret)}
    assert listed == {free.secret: ["mock-small", "unplaced", "us-only"],
                      local.secret: ["mock-small"], picked.secret: ["us-only"]}
    status, model = await models_seen(session, local.secret, "/v1/models/mock-small")
    assert status == 200 and model["id"] == "mock-small" and model["object"] == "model"
    for secret, name in ((local.secret, "us-only"), (picked.secret, "mock-small"),
                         (free.secret, "no-such-model")):
        status, body = await models_seen(session, secret, f"/v1/models/{name}")
        assert status == 404 and body["error"]["code"] == "model_not_found"
    assert (await models_seen(session, "ony-" + "x" * 40, "/v1/models/mock-small"))[0] == 401
