"""The Gemini adapter's pure parts: URLs, request bodies, error and usage reading."""

from __future__ import annotations

import aiohttp
import pytest

from onyproxy.config.model import ProviderConfig
from onyproxy.exchange import Usage
from onyproxy.providers.gemini import (
    SKIP_SIGNATURE,
    GeminiAdapter,
    model_name,
    prepare,
    read_gemini_error,
    read_retry_delay,
)

QUOTA = {"error": {"code": 429, "message": "Resource has been exhausted.",
                   "status": "RESOURCE_EXHAUSTED", "details": [
                       {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": "37.5s"}]}}
BAD_KEY = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                     "status": "INVALID_ARGUMENT", "details": [
                         {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                          "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}


@pytest.mark.parametrize(("base_url", "root"), [
    (None, "https://generativelanguage.googleapis.com/v1beta"),
    ("https://gw.example/", "https://gw.example/v1beta"),
    ("https://gw.example/v1", "https://gw.example/v1"),
    ("https://gw.example/v1alpha", "https://gw.example/v1alpha"),
])
async def test_api_root_defaults_to_v1beta_unless_the_base_url_names_a_version(base_url, root):
    async with aiohttp.ClientSession() as session:
        adapter = GeminiAdapter("g", ProviderConfig(type="gemini", base_url=base_url), session)
    assert adapter.api_root == root


def test_model_names_get_the_models_prefix_once():
    assert model_name("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert model_name("models/gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert model_name("tunedModels/my-tune") == "tunedModels/my-tune"


def test_embed_requests_name_the_target_model_and_pick_the_method():
    single = {"content": {"parts": [{"text": "a"}]}, "model": "models/client-name"}
    assert prepare("embeddings", single, False, "models/emb") == (
        "embedContent", {"content": {"parts": [{"text": "a"}]}, "model": "models/emb"})
    batch = {"requests": [{"model": "models/client-name", "content": single["content"]}]}
    assert prepare("embeddings", batch, False, "models/emb") == (
        "batchEmbedContents", {"requests": [{"content": single["content"],
                                             "model": "models/emb"}]})


def test_generate_drops_a_body_model_and_picks_stream_method():
    body = {"model": "client-name", "contents": [{"parts": [{"text": "hi"}]}]}
    assert prepare("chat", body, True, "models/gemini-2.5-flash") == (
        "streamGenerateContent", {"contents": [{"parts": [{"text": "hi"}]}]})


def test_gemini_3_replays_get_a_signature_only_on_each_turns_first_call():
    call = {"functionCall": {"name": "f", "args": {}}}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]},
                         {"role": "model", "parts": [{"text": "ok"}, call, call]},
                         {"role": "model", "parts": [{**call, "thoughtSignature": "real"}]}]}
    _, sent = prepare("chat", body, False, "models/gemini-3-flash-preview")
    signatures = [[p.get("thoughtSignature") for p in c["parts"]] for c in sent["contents"]]
    assert signatures == [[None], [None, SKIP_SIGNATURE, None], ["real"]]
    assert body["contents"][1]["parts"][1] == call  # the client's body is not changed
    _, older = prepare("chat", body, False, "models/gemini-2.5-flash")
    assert older["contents"] == body["contents"]


def test_errors_are_read_from_the_gemini_shape():
    assert read_gemini_error(BAD_KEY) == (
        "API key not valid. Please pass a valid API key.", "invalid_request_error", None,
        "API_KEY_INVALID")
    assert read_gemini_error([QUOTA])[1:] == ("rate_limit_error", None, "RESOURCE_EXHAUSTED")
    assert read_gemini_error("not json") == ("", None, None, None)


def test_retry_delay_comes_from_retry_info():
    assert read_retry_delay(QUOTA) == 37.5
    assert read_retry_delay(BAD_KEY) is None
    assert read_retry_delay({"error": "plain"}) is None


async def test_usage_counts_thoughts_as_completion_and_reasoning():
    usage = Usage()
    async with aiohttp.ClientSession() as session:
        adapter = GeminiAdapter("g", ProviderConfig(type="gemini"), session)
    adapter.read_usage("gemini", {"usageMetadata": {
        "promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 20,
        "thoughtsTokenCount": 30, "toolUsePromptTokenCount": 5, "totalTokenCount": 155}}, usage)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
            usage.reasoning_tokens, usage.reported) == (105, 50, 60, 30, True)
    assert usage.total_tokens == 155
