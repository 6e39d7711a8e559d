"""The plugin pipeline: hook order, rejection, and on_complete exactly once."""

import asyncio
from dataclasses import dataclass

import aiohttp

from onyproxy.appkeys import GATEWAY
from onyproxy.errors import GatewayError
from onyproxy.pipeline import Pipeline


@dataclass(frozen=True)
class RecorderConfig:
    label: str = "r"
    reject: bool = False
    chunk_delay_s: float = 0.0


class Recorder:
    """A test plugin that records every hook call into a shared journal on the gateway."""

    name = "recorder"
    Config = RecorderConfig

    def __init__(self, config: RecorderConfig, gateway) -> None:
        self.config = config
        self.journal = gateway.__dict__.setdefault("test_journal", [])
        self.completed: list[set] = []

    def note(self, hook: str) -> None:
        self.journal.append(f"{self.config.label}.{hook}")

    async def on_request(self, ex) -> None:
        self.note("request")
        if self.config.reject:
            raise GatewayError(403, "permission_error", "rejected by test plugin",
                               code="test_reject")

    async def on_response(self, ex) -> None:
        self.note("response")

    async def on_chunk(self, ex, event) -> None:
        await asyncio.sleep(self.config.chunk_delay_s)

    async def on_complete(self, ex) -> None:
        self.note("complete")
        self.completed.append(set(ex.flags))


class Second(Recorder):
    name = "second"


CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "one two three"}]}


def pipeline_with(*entries: dict) -> dict:
    return {"pipeline": list(entries)}


async def post(server, body, **kwargs):
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url("/v1/chat/completions"), json=body, **kwargs)
        return resp.status, await resp.json()


async def test_request_hooks_in_order_response_hooks_reversed(gateway):
    server = await gateway(pipeline_with({"name": "test_pipeline:Recorder", "label": "a"},
                                         {"name": "test_pipeline:Second", "label": "b"}))
    status, _ = await post(server, CHAT)
    assert status == 200
    journal = server.app[GATEWAY].test_journal
    assert journal == ["a.request", "b.request", "b.response", "a.response",
                       "b.complete", "a.complete"]


async def test_rejection_renders_in_callers_shape_and_completes_once(gateway):
    server = await gateway(pipeline_with({"name": "test_pipeline:Recorder", "reject": True}))
    status, body = await post(server, CHAT)
    assert status == 403
    assert body == {"error": {"message": "rejected by test plugin", "type": "permission_error",
                              "param": None, "code": "test_reject"}}
    assert server.app[GATEWAY].test_journal == ["r.request", "r.complete"]


async def test_on_complete_runs_once_for_bad_input(gateway):
    server = await gateway(pipeline_with({"name": "test_pipeline:Recorder"}))
    status, _ = await post(server, {"model": "mock-small"})
    assert status == 400
    assert server.app[GATEWAY].test_journal == ["r.complete"]


async def test_on_complete_runs_once_when_client_disconnects_mid_stream(gateway):
    server = await gateway(pipeline_with({"name": "test_pipeline:Recorder",
                                          "chunk_delay_s": 0.2}))
    recorder = server.app[GATEWAY].pipeline.get("recorder")
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url("/v1/chat/completions"),
                               json={**CHAT, "stream": True})
        await resp.content.readline()
        resp.close()  # drop the connection mid-stream
    for _ in range(100):
        if recorder.completed:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a second on_complete would have landed by now
    assert recorder.completed == [{"client_disconnected"}]


async def test_hooks_missing_on_a_plugin_cost_nothing():
    class OnlyComplete:
        name = "only"

        async def on_complete(self, ex):
            pass

    pipeline = Pipeline([OnlyComplete()])
    assert not pipeline.has_chunk_hooks
    assert pipeline._request == [] and len(pipeline._complete) == 1


async def test_failing_on_complete_does_not_stop_the_others(caplog):
    calls = []

    class Boom:
        name = "boom"

        async def on_complete(self, ex):
            raise RuntimeError(ex)  # the exchange's text stands in for quoted content

    class Fine:
        name = "fine"

        async def on_complete(self, ex):
            calls.append("fine")

    await Pipeline([Fine(), Boom()]).complete("canary-prompt-7f3a")
    assert calls == ["fine"]
    assert "canary-prompt-7f3a" not in caplog.text
    assert "RuntimeError" in caplog.text
