"""The ``metering`` plugin when its spool disk refuses records, and at shutdown: the memory
bound and what ``on_backlog_full`` does past it, a spool that cannot be created, and an
exchange cut by the server's shutdown that is still recording when the plugin stops."""

from __future__ import annotations

import asyncio
import errno
import os
from types import SimpleNamespace

import pytest
from conftest import make_config
from prometheus_client import CollectorRegistry
from test_metering import MODELS, answered, exchange

from onyproxy.config.errors import ConfigError
from onyproxy.errors import GatewayError, StartupError
from onyproxy.exchange import Identity
from onyproxy.sse import Event
from onyproxy.storage import open_store
from plugins.metering import Plugin
from plugins.metering.config import MeteringConfig

ONE_RECORD_MB = 0.0002  # ~200 bytes: the memory backlog is full after one record


def refuse_everything(fd: int, data) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
async def start_metering(tmp_path):
    """``await start_metering(**options)`` → a started plugin whose gateway has a real
    metrics registry (``plugin.gateway.metrics.registry``); stopped afterwards."""
    config = make_config({"providers": {"up": {"type": "openai", "base_url": "http://x.test"},
                                        "mock": {"type": "mock"}},
                          "models": MODELS}, tmp_path=tmp_path)
    store = await open_store(config.storage.url)
    started: list[Plugin] = []

    async def start(**options) -> Plugin:
        metrics = SimpleNamespace(registry=CollectorRegistry(), spool=lambda depth: None,
                                  spool_flush_error=lambda: None)
        gateway = SimpleNamespace(config=config, store=store, metrics=metrics, readiness={})
        plugin = Plugin(MeteringConfig(spool_dir=str(tmp_path / "spool"), **options), gateway)
        await plugin.start()
        started.append(plugin)
        return plugin

    yield start
    for plugin in started:
        await plugin.stop()
    await store.close()


def lost(plugin: Plugin) -> float:
    registry = plugin.gateway.metrics.registry
    return registry.get_sample_value("onyproxy_usage_records_lost_total") or 0.0


async def stored_ids(plugin: Plugin) -> list[str]:
    await plugin.flusher.flush()
    return sorted(e.request_id for e in await plugin.gateway.store.list_usage_events())


def call(request_id: str):
    return answered(exchange(identity=Identity("acc_1", "key_1"), request_id=request_id), 9, 3)


async def test_past_the_memory_bound_refuse_answers_503_and_keeps_admitted_records(
        start_metering, monkeypatch):
    plugin = await start_metering(memory_backlog_mb=ONE_RECORD_MB, on_backlog_full="refuse")
    monkeypatch.setattr(os, "write", refuse_everything)
    first, second, refused = call("req_1"), call("req_2"), call("req_3")
    await plugin.on_request(first)
    await plugin.on_request(second)
    await plugin.on_complete(first)
    assert plugin.writer.full
    with pytest.raises(GatewayError) as caught:
        await plugin.on_request(refused)
    assert (caught.value.status, caught.value.code) == (503, "usage_spool_full")
    assert caught.value.headers["retry-after"]
    await plugin.on_complete(refused)  # the refusal itself is not usage: nothing kept
    await plugin.on_complete(second)  # admitted before the bound: kept past it
    assert plugin.writer.backlog == 2 and lost(plugin) == 0
    assert await stored_ids(plugin) == ["req_1", "req_2"]  # from memory to the store
    await plugin.on_request(call("req_4"))  # room again: admitted


async def test_past_the_memory_bound_accept_lets_calls_through_and_counts_the_loss(
        start_metering, monkeypatch):
    plugin = await start_metering(memory_backlog_mb=ONE_RECORD_MB, on_backlog_full="accept")
    monkeypatch.setattr(os, "write", refuse_everything)
    for n in (1, 2, 3):
        ex = call(f"req_{n}")
        await plugin.on_request(ex)  # never refused
        await plugin.on_complete(ex)
    assert lost(plugin) == 2
    assert await stored_ids(plugin) == ["req_1"]


async def test_a_spool_that_cannot_be_created_is_a_startup_error_naming_it(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool's parent folder should be")
    config = make_config(tmp_path=tmp_path)
    gateway = SimpleNamespace(config=config, store=None, metrics=None, readiness={})
    plugin = Plugin(MeteringConfig(spool_dir=str(blocker / "spool")), gateway)
    with pytest.raises(StartupError) as caught:
        await plugin.start()
    assert str(blocker / "spool") in str(caught.value)
    assert "usage spool" in str(caught.value)


def test_on_backlog_full_accepts_only_refuse_or_accept(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_config({"pipeline": [{"name": "metering", "on_backlog_full": "drop"}]},
                    tmp_path=tmp_path)
    assert "pipeline[0].on_backlog_full" in str(caught.value)
    with pytest.raises(ConfigError):
        make_config({"pipeline": [{"name": "metering", "memory_backlog_mb": 0}]},
                    tmp_path=tmp_path)


async def test_a_stream_cut_at_shutdown_is_recorded_partial_before_the_plugin_stops(
        start_metering):
    """The server cut a stream (its handler was cancelled) and its ``on_complete`` runs in a
    task of its own, loading the tokenizer to count what was relayed, when the plugin is told
    to stop: the record is still written, then stored by the last flush."""
    plugin = await start_metering()
    ex = answered(exchange(stream=True, request_id="req_cut"), reported=False)
    await plugin.on_request(ex)
    await plugin.on_chunk(ex, Event.of({"choices": [{"delta": {"content": "half an answ"}}]}))
    ex.flags.add("client_disconnected")  # what a cancelled handler sets
    finishing = asyncio.ensure_future(plugin.on_complete(ex))
    await asyncio.sleep(0)  # it started, and waits for the tokenizer
    await plugin.stop()
    await finishing
    (event,) = await plugin.gateway.store.list_usage_events()
    assert event.request_id == "req_cut" and event.flags == ["partial", "estimated"]
    assert event.output_tokens > 0
