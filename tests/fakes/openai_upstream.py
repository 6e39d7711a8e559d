"""A fake OpenAI upstream: a real aiohttp server that speaks the OpenAI wire format.

It answers ``POST /v1/chat/completions`` (plain, streamed, tool calls), ``POST
/v1/embeddings`` (float or base64) and ``GET /v1/models`` deterministically; a
:class:`FakeOpenAI` controller scripts failures and records what arrived.

Start it from a conftest with pytest-aiohttp's ``aiohttp_server`` (``tests/`` has no
``__init__.py``, so pytest puts it on ``sys.path`` and this imports as ``fakes.openai_upstream``)::

    @pytest.fixture
    async def fake_openai(aiohttp_server):
        server, fake = await start_fake_openai(aiohttp_server)
        return fake                  # fake.base_url == "http://127.0.0.1:PORT/v1"

``start_fake_openai(aiohttp_server, FakeOpenAI(api_key="sk-x", models=[...]))`` makes it
demand ``Authorization: Bearer sk-x`` and list other models.

Script failures with :class:`Behaviour`: each one queued by ``fake.script(...)`` is used by
one request, in order (only by requests whose path contains ``path=``, when given); then
``fake.default`` applies, which answers normally unless replaced::

    fake.script(Behaviour.error(429, retry_after=2), Behaviour.error(500))
    fake.script(Behaviour.slow(5), Behaviour.drop_stream(after_events=3))
    fake.script(Behaviour.hang_up(), Behaviour.trickle(0.05), path="/chat/completions")
    fake.script(Behaviour.error_in_stream(after_events=2))

Read what arrived: ``fake.requests`` (failed ones too) holds :class:`RecordedRequest` (method,
path, query, headers, raw and parsed JSON body, arrival time); ``fake.last``,
``fake.requests_to("/embeddings")``; ``fake.in_flight`` / ``fake.max_in_flight`` count
concurrent requests; ``fake.disconnects`` counts clients that left before the answer ended.
These names match the controller the other provider fakes share (``fakes.control``).

What the fake model says (an echo of the last user text, tool calls for weather questions,
deterministic embeddings) is built in ``fakes.openai_answers``. Like OpenAI, streams put
``"usage": null`` on every chunk and add a usage chunk when ``stream_options.include_usage``
is set, and pad chunks with ``obfuscation`` unless ``include_obfuscation`` is false.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_answers import (
    DEFAULT_DIMENSIONS,
    FINGERPRINT,
    completion_body,
    embedding_inputs,
    embedding_list,
    plan_answer,
    stream_chunks,
)
from multidict import CIMultiDict, CIMultiDictProxy

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"

# The (type, code, message) OpenAI sends with each status; Behaviour.error's defaults.
ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, SERVER_ERROR),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class Behaviour:
    """How the fake answers one request; ``Behaviour()`` answers normally."""

    status: int | None = None  # answer this status with error_body (unless a stream error)
    error_body: Mapping[str, Any] | None = None  # the "error" object of that answer
    headers: Mapping[str, str] = field(default_factory=dict)  # extra headers on the error
    delay_s: float = 0.0  # wait before sending anything
    close_connection: bool = False  # close the socket instead of answering
    drop_after_events: int | None = None  # close a stream after K SSE events ([DONE] counts)
    error_after_events: int | None = None  # send `data: {"error":...}` after K events, end
    event_interval_s: float = 0.0  # wait between SSE events
    path: str | None = None  # only requests whose path contains this use it

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> Behaviour:
        """Answer ``status`` with ``{"error": {...}}``; ``retry_after`` sets that header."""
        fallback = ("invalid_request_error" if status < 500 else "server_error", None, "Error.")
        default_type, default_code, default_message = ERROR_DEFAULTS.get(status, fallback)
        body = {
            "message": message or default_message,
            "type": error_type or default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return cls(status=status, error_body=body, headers=headers)

    @classmethod
    def slow(cls, seconds: float) -> Behaviour:
        """Answer normally after ``seconds``, before any byte is sent."""
        return cls(delay_s=seconds)

    @classmethod
    def hang_up(cls) -> Behaviour:
        """Close the connection without answering."""
        return cls(close_connection=True)

    @classmethod
    def drop_stream(cls, after_events: int) -> Behaviour:
        """Stream normally, then close the connection after ``after_events`` events."""
        return cls(drop_after_events=after_events)

    @classmethod
    def error_in_stream(cls, after_events: int, message: str = SERVER_ERROR) -> Behaviour:
        """Stream normally, then send OpenAI's in-stream error event and end the stream."""
        body = {"message": message, "type": "server_error", "param": None, "code": None}
        return cls(error_after_events=after_events, error_body=body)

    @classmethod
    def trickle(cls, interval_s: float) -> Behaviour:
        """Stream normally with ``interval_s`` between events."""
        return cls(event_interval_s=interval_s)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the fake upstream."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: CIMultiDictProxy[str]
    raw: bytes
    body: Any  # the parsed JSON body, or None when the body was empty or not JSON
    at: float  # time.monotonic() on arrival


class FakeOpenAI:
    """Scripts the fake upstream's behaviour and records the requests that reach it."""

    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, api_key: str | None = None):
        self.models = list(models)
        self.api_key = api_key
        self.default = Behaviour()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.disconnects = 0
        self.base_url = ""  # set by start_fake_openai
        self._script: list[Behaviour] = []
        self._closing = asyncio.Event()

    def script(self, *behaviours: Behaviour, path: str | None = None) -> None:
        """Queue behaviours for the next requests (whose path contains ``path``, if given)."""
        self._script.extend(replace(b, path=path) if path else b for b in behaviours)

    @property
    def pending(self) -> list[Behaviour]:
        """The scripted behaviours that no request has used yet."""
        return list(self._script)

    @property
    def last(self) -> RecordedRequest:
        """The most recent request; fails loudly when nothing arrived."""
        assert self.requests, "the fake OpenAI upstream received no request"
        return self.requests[-1]

    def requests_to(self, path_part: str) -> list[RecordedRequest]:
        """The requests whose path contains ``path_part``."""
        return [r for r in self.requests if path_part in r.path]

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` requests arrived, e.g. before cancelling a client."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                await asyncio.sleep(0.005)

    def next_behaviour(self, path: str) -> Behaviour:
        for i, behaviour in enumerate(self._script):
            if behaviour.path is None or behaviour.path in path:
                return self._script.pop(i)
        return self.default

    async def pause(self, seconds: float) -> None:
        # Server shutdown sets _closing, so a test never waits out a long scripted delay.
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = CIMultiDictProxy(CIMultiDict(request.headers))
        query = dict(request.query)
        recorded = RecordedRequest(
            request.method, request.path, query, headers, raw, body, time.monotonic()
        )
        self.requests.append(recorded)
        return recorded


FAKE_OPENAI = web.AppKey("fake_openai", FakeOpenAI)
BODY = web.RequestKey("fake_openai_body", object)
BEHAVIOUR = web.RequestKey("fake_openai_behaviour", Behaviour)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_fake_openai_app(fake: FakeOpenAI | None = None) -> web.Application:
    app = web.Application(middlewares=[scripted_behaviour])
    app[FAKE_OPENAI] = fake or FakeOpenAI()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.on_response_prepare.append(add_openai_headers)
    app.on_shutdown.append(release_waiters)
    return app


async def start_fake_openai(
    aiohttp_server: Callable[..., Awaitable[TestServer]], fake: FakeOpenAI | None = None
) -> tuple[TestServer, FakeOpenAI]:
    """Serve a fake OpenAI on loopback; ``fake.base_url`` is its ``.../v1`` URL."""
    app = create_fake_openai_app(fake)
    server = await aiohttp_server(app)
    app[FAKE_OPENAI].base_url = str(server.make_url("/v1"))
    return server, app[FAKE_OPENAI]


def openai_error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> web.Response:
    error_type = "invalid_request_error" if status < 500 else "server_error"
    body = {"message": message, "type": error_type, "param": param, "code": code}
    return web.json_response({"error": body}, status=status)


@web.middleware
async def scripted_behaviour(request: web.Request, handler: Handler) -> web.StreamResponse:
    fake = request.app[FAKE_OPENAI]
    request[BODY] = (await fake.record(request)).body
    behaviour = request[BEHAVIOUR] = fake.next_behaviour(request.path)
    fake.in_flight += 1
    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
    try:
        await fake.pause(behaviour.delay_s)
        if behaviour.close_connection:
            return hang_up(request)
        if behaviour.status is not None and behaviour.error_after_events is None:
            body = {"error": dict(behaviour.error_body or {})}
            return web.json_response(body, status=behaviour.status, headers=behaviour.headers)
        return await checked(request, handler)
    except (asyncio.CancelledError, ConnectionResetError):
        # The client (the gateway under test) went away mid-answer: tests assert
        # that a cancelled client call also cancels the upstream call.
        fake.disconnects += 1
        raise
    finally:
        fake.in_flight -= 1


async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer unknown routes, bad keys and bad JSON the way OpenAI does."""
    fake = request.app[FAKE_OPENAI]
    if request.match_info.http_exception is not None:
        return openai_error(404, f"Invalid URL ({request.method} {request.path})")
    if fake.api_key and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return openai_error(401, ERROR_DEFAULTS[401][2], code="invalid_api_key")
    if request.method == "POST" and not isinstance(request[BODY], dict):
        return openai_error(400, "We could not parse the JSON body of your request.")
    return await handler(request)


def hang_up(request: web.Request) -> web.Response:
    # close() flushes what was already written, then ends the TCP connection, so the
    # client sees a truncated answer; the response returned after it is never sent.
    if request.transport is not None:
        request.transport.close()
    return web.Response()


async def add_openai_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("x-request-id", f"req_{uuid.uuid4().hex}")
    response.headers.setdefault("openai-version", "2020-10-01")
    response.headers.setdefault("openai-processing-ms", "1")


async def release_waiters(app: web.Application) -> None:
    app[FAKE_OPENAI]._closing.set()


async def list_models(request: web.Request) -> web.Response:
    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
        for m in request.app[FAKE_OPENAI].models
    ]
    return web.json_response({"object": "list", "data": data})


# --- chat completions ----------------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body: dict[str, Any] = request[BODY]  # type: ignore[assignment]
    problem = chat_request_problem(body)
    if problem is not None:
        return problem
    answer = plan_answer(body)
    envelope = {
        "id": f"chatcmpl-{secrets.token_hex(14)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if not body.get("stream"):
        return web.json_response(completion_body(envelope, answer))
    options = body.get("stream_options") or {}
    chunks = stream_chunks(envelope, answer, bool(options.get("include_usage")))
    if options.get("include_obfuscation", True):
        chunks = [{**chunk, "obfuscation": secrets.token_urlsafe(4)} for chunk in chunks]
    return await write_sse(request, chunks)


def chat_request_problem(body: dict[str, Any]) -> web.Response | None:
    if not body.get("model"):
        return openai_error(400, "you must provide a model parameter")
    if not body.get("messages"):
        message = "Missing required parameter: 'messages'."
        return openai_error(400, message, param="messages", code="missing_required_parameter")
    if body.get("stream_options") is not None and not body.get("stream"):
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return openai_error(400, message, param="stream_options")
    return None


async def write_sse(request: web.Request, chunks: list[dict[str, Any]]) -> web.StreamResponse:
    behaviour = request[BEHAVIOUR]
    fake = request.app[FAKE_OPENAI]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    events = [json.dumps(chunk, separators=(",", ":")) for chunk in chunks] + ["[DONE]"]
    for sent, event in enumerate(events):
        if sent == behaviour.drop_after_events:
            hang_up(request)
            return response
        if sent:
            await fake.pause(behaviour.event_interval_s)
        if sent == behaviour.error_after_events:
            # OpenAI reports a failure after the 200 as a data event with an error object.
            error = json.dumps({"error": behaviour.error_body}, separators=(",", ":"))
            await response.write(f"data: {error}\n\n".encode())
            break
        await response.write(f"data: {event}\n\n".encode())
    await response.write_eof()
    return response


# --- embeddings -----------------------------------------------------------------------------


async def embeddings(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY]  # type: ignore[assignment]
    if not body.get("model"):
        return openai_error(400, "you must provide a model parameter")
    inputs = embedding_inputs(body.get("input"))
    if inputs is None:
        return openai_error(400, "'$.input' is invalid.", param="input")
    dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    return web.json_response(embedding_list(body["model"], inputs, dimensions, as_base64))
