"""The fake upstream: an OpenAI-format chat server that answers at once, in its own process.

``python -m bench.upstream [--port P]`` prints ``port=<P>`` once it listens. Answers are built
once at start, so the upstream spends its CPU on HTTP, not on the fake model:

- non-stream: a ``chat.completion`` object with usage (~500 bytes);
- stream: 20 ``chat.completion.chunk`` events (each written separately, no delay), a usage
  chunk when ``stream_options.include_usage`` is set, then ``[DONE]``. Like OpenAI, chunks
  carry ``"usage": null`` when usage was asked for.
"""

from __future__ import annotations

import argparse
import sys

import orjson
from aiohttp import web

from bench.loop import run, serve

WORDS = 20
CREATED = 1_700_000_000
ID = "chatcmpl-bench0123456789"


def completion(model: str) -> bytes:
    return orjson.dumps({
        "id": ID, "object": "chat.completion", "created": CREATED, "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
            "role": "assistant", "refusal": None,
            "content": " ".join(f"word{i}" for i in range(WORDS))}}],
        "usage": {"prompt_tokens": 25, "completion_tokens": WORDS, "total_tokens": 25 + WORDS,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    })


def chunks(model: str, with_usage: bool) -> list[bytes]:
    """The wire bytes of one whole stream, one element per event."""
    def event(delta: dict, finish: str | None, **extra) -> bytes:
        obj = {"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": model,
               "system_fingerprint": "fp_bench",
               "choices": [{"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish}], **extra}
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    extra = {"usage": None} if with_usage else {}
    events = [event({"role": "assistant", "content": ""}, None, **extra)]
    events += [event({"content": f" word{i}"}, None, **extra) for i in range(WORDS - 2)]
    events.append(event({}, "stop", **extra))
    if with_usage:
        usage = {"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                 "system_fingerprint": "fp_bench", "choices": [],
                 "usage": {"prompt_tokens": 25, "completion_tokens": WORDS,
                           "total_tokens": 25 + WORDS}}
        events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


class Answers:
    """Pre-built answers per model name (the gateway renames the model it forwards)."""

    def __init__(self) -> None:
        self._json: dict[str, bytes] = {}
        self._stream: dict[tuple[str, bool], list[bytes]] = {}

    def json(self, model: str) -> bytes:
        if model not in self._json:
            self._json[model] = completion(model)
        return self._json[model]

    def stream(self, model: str, with_usage: bool) -> list[bytes]:
        key = (model, with_usage)
        if key not in self._stream:
            self._stream[key] = chunks(model, with_usage)
        return self._stream[key]


def make_app() -> web.Application:
    answers = Answers()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = str(body.get("model") or "gpt-bench")[:64]
        if not body.get("stream"):
            return web.Response(body=answers.json(model), content_type="application/json")
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream",
                                           "cache-control": "no-cache"})
        await resp.prepare(request)
        for event in answers.stream(model, with_usage):
            await resp.write(event)
        await resp.write_eof()
        return resp

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    run(serve, make_app(), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
