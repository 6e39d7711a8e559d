"""A stream longer than the server's drain is cut at shutdown and still recorded: flagged
``partial``, metered for what was relayed, in the store after the gateway stopped. The
gateway runs as ``onyproxy serve`` runs it (``AppRunner`` with handler cancellation) on
loopback, with a short drain so the test does not wait out the default."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from conftest import make_config, openai_provider
from fakes.openai_upstream import Behaviour
from serve_process import free_port

from onyproxy.app import create_app
from onyproxy.storage import open_store

LONG_TEXT = " ".join(f"word{n}" for n in range(200))


async def test_a_stream_cut_by_shutdown_is_recorded_partial(fake_openai, tmp_path):
    fake_openai.script(Behaviour.trickle(0.2))  # 200 events: longer than the drain
    config = make_config({**openai_provider(fake_openai),
                          "pipeline": [{"name": "routing", "retries": 0},
                                       {"name": "metering"}]}, tmp_path=tmp_path)
    runner = web.AppRunner(create_app(config), handler_cancellation=True,
                           shutdown_timeout=0.3, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    body = {"model": "gpt-test", "stream": True,
            "messages": [{"role": "user", "content": LONG_TEXT}]}
    relayed = b""
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        request_id = resp.headers["x-request-id"]
        while relayed.count(b"data: ") < 3:
            relayed += await resp.content.readany()
        stopping = asyncio.ensure_future(runner.cleanup())  # SIGTERM, as serve handles it
        try:
            while chunk := await resp.content.readany():
                relayed += chunk
        except aiohttp.ClientError:
            pass  # cut
        await stopping
    assert b"[DONE]" not in relayed  # the stream was cut, not finished
    store = await open_store(config.storage.url)
    try:
        (event,) = await store.list_usage_events()
    finally:
        await store.close()
    assert event.request_id == request_id and event.streamed
    assert "partial" in event.flags and "estimated" in event.flags
    assert event.output_tokens > 0 and event.input_tokens > 0
