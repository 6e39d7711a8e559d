"""The process-wide log filter: keys and tokens are masked in every log line, cheaply."""

from __future__ import annotations

import copy
import io
import logging
from types import SimpleNamespace

import pytest

from onyproxy import secret_mask
from onyproxy.logs import JsonFormatter
from plugins.redaction import Plugin
from plugins.redaction.config import RedactionConfig
from plugins.redaction.credentials import (
    SecretFilter,
    install_filter,
    mask_secrets,
    remove_filter,
    scrub,
)

GATEWAY_KEY = "ony-" + "Zx9_" * 10
OPENAI_KEY = "sk-proj-" + "a1B2" * 12
ANTHROPIC_KEY = "sk-ant-api03-" + "q" * 80 + "-AA"
GOOGLE_KEY = "AIzaSy" + "D" * 33
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsInJvbGUiOiJhZG1pbiJ9.c2lnbmF0dXJlLXZhbHVl"


@pytest.fixture
def captured():
    """A JSON handler on the root logger, as ``setup_logging`` installs; yields its output."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


@pytest.mark.parametrize(("text", "expected"), [
    (f"using key {GATEWAY_KEY}", "using key ony-***"),
    (f"openai={OPENAI_KEY}, anthropic={ANTHROPIC_KEY}",
     "openai=sk-proj-***, anthropic=sk-ant-api03-***"),
    (f"GET /v1beta/models/g:generateContent?key={GOOGLE_KEY}&alt=sse",
     "GET /v1beta/models/g:generateContent?key=***&alt=sse"),
    (f"headers {{'Authorization': 'Bearer {GATEWAY_KEY}'}}",
     "headers {'Authorization': 'Bearer ***'}"),
    (f"x-goog-api-key: {GOOGLE_KEY}", "x-goog-api-key: ***"),
    ('{"api_key": "plain-secret-value"}', '{"api_key": "***"}'),
    ("İstanbul password=hunter22, token: 5", "İstanbul password=***, token: 5"),
    (f"admin token {JWT}", "admin token eyJ***"),
    ("prompt_tokens=12 completion_tokens=5 key_id=key_abc sk-1", None),
])
def test_secrets_are_masked_and_ordinary_text_is_not(text, expected):
    assert mask_secrets(text) == (expected or text)


def test_masking_twice_changes_nothing():
    once = mask_secrets(f"{ANTHROPIC_KEY} {OPENAI_KEY} Bearer {GATEWAY_KEY} {JWT}")
    assert mask_secrets(once) == once == "sk-ant-api03-*** sk-proj-*** Bearer *** eyJ***"


def test_every_logger_of_the_process_is_covered_once_installed(captured, caplog):
    caplog.set_level(logging.INFO)
    added = install_filter()
    try:
        library = logging.getLogger("some.library.that.misbehaves")
        library.warning("retrying with Authorization: Bearer %s", OPENAI_KEY)
        logging.getLogger("onyproxy.access").info("request", extra={"fields": {
            "path": f"/v1/x?key={GOOGLE_KEY}", "status": 200}})
        try:
            raise ValueError(f"bad key {ANTHROPIC_KEY}")
        except ValueError:
            library.exception("call failed")
    finally:
        remove_filter(added)
    out = captured.getvalue()
    for secret in (OPENAI_KEY, GOOGLE_KEY, ANTHROPIC_KEY):
        assert secret not in out
    assert "Bearer ***" in out and "key=***" in out
    assert "bad key sk-ant-api03-***" in caplog.text  # the traceback, masked once
    assert all(not isinstance(f, SecretFilter) for f in logging.getLogger().handlers[-1].filters)


async def test_two_gateways_in_one_process_keep_their_own_filters(captured):
    first, second = install_filter(), install_filter()
    remove_filter(first)
    logging.getLogger("x").warning("key %s", GATEWAY_KEY)
    remove_filter(second)
    assert GATEWAY_KEY not in captured.getvalue()


async def test_the_plugin_installs_the_filter_at_start_and_removes_it_at_stop(captured):
    gateway = SimpleNamespace(config=SimpleNamespace(security=SimpleNamespace(key_pepper="")))
    plugin = Plugin(RedactionConfig(), gateway)
    await plugin.start()
    logging.getLogger("x").warning("key %s", GATEWAY_KEY)
    await plugin.stop()
    logging.getLogger("x").warning("key %s", GATEWAY_KEY)
    first, second = captured.getvalue().splitlines()
    assert GATEWAY_KEY not in first and GATEWAY_KEY in second


def test_log_filter_can_be_turned_off(captured):
    gateway = SimpleNamespace(config=SimpleNamespace(security=SimpleNamespace(key_pepper="")))
    plugin = Plugin(RedactionConfig(log_filter=False), gateway)
    assert plugin.config.log_filter is False


def test_a_line_without_any_marker_never_reaches_the_patterns(monkeypatch):
    """Typical lines (no secret) cost a lower-casing and a few substring checks, no regex."""
    def no_patterns(text, low):
        raise AssertionError(f"patterns ran on {text!r}")

    monkeypatch.setattr(secret_mask, "_secret_spans", no_patterns)
    record = logging.LogRecord("onyproxy.server", logging.INFO, __file__, 1,
                               "worker pid %d listening on %s:%d after %.1f ms",
                               (4242, "127.0.0.1", 8080, 12.5), None)
    assert SecretFilter().filter(record)
    assert record.getMessage() == "worker pid 4242 listening on 127.0.0.1:8080 after 12.5 ms"


def test_an_access_record_is_checked_once_by_its_values_not_its_field_names(monkeypatch):
    """Field names such as "prompt_tokens" hold a marker ("token"); only values can hold a
    secret, so a record with clean values is not walked string by string."""
    record = {"request_id": "req_1", "path": "/v1/chat/completions", "model": "gpt-4o",
              "prompt_tokens": 12, "completion_tokens": 5, "key_id": "key_abc",
              "flags": ["pii_masked"], "nested": {"client_ip": "10.0.0.1"}}
    original = copy.deepcopy(record)

    def walked(value):
        raise AssertionError("the record was walked string by string")

    with monkeypatch.context() as patch:
        patch.setattr(secret_mask, "_scrub", walked)
        assert scrub(record) is record and record == original
    record["nested"]["note"] = f"Bearer {GATEWAY_KEY}"  # a secret deep inside is still found
    assert scrub(record)["nested"]["note"] == "Bearer ***"
