"""Zero content retention (issue 8, DESIGN.md §4): prompts and answers never reach a file,
a log line, a metric or a crash report, on any surface, provider or path.

A real ``onyproxy serve`` runs the full pipeline (auth with keys made by the CLI, security,
ratelimit, redaction blocking e-mail addresses, residency, routing, metering, and a plugin that
crashes on demand) in front of the three fake upstreams and the mock. Every request carries
canaries (see ``canary``) in its system prompt, user turns, tool description, tool arguments
and tool result; the fakes echo them in answers and, on demand, in error bodies and in-stream
errors. Afterwards every byte the gateway wrote under its working directory (SQLite with WAL
and SHM, usage spool, key pepper, TMPDIR and HOME), its stdout/stderr up to and after SIGTERM,
and ``/metrics`` are searched for every canary, plain and encoded.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from canary import (
    CHAT_SURFACES,
    EMBED_SURFACES,
    CanaryBook,
    auth_headers,
    bad_json,
    leaks,
    odd_parts,
    request_for,
    tag_of,
    too_large,
    with_email,
    wrong_types,
)
from fakes import anthropic_upstream, gemini_upstream
from fakes.control import Fault, UpstreamController, root_url
from fakes.openai_upstream import (
    BODY,
    Behaviour,
    FakeOpenAI,
    create_fake_openai_app,
    write_sse,
)
from serve_process import GatewayProcess, free_port

TESTS = Path(__file__).parent
SLOW_S = 3.0  # a "slow" upstream holds its answer this long; "-t" targets give up after 0.5 s
UPSTREAM_MODELS = {"openai": ("gpt-4o-mini", "text-embedding-3-small"),
                   "anthropic": ("claude-sonnet-4-5", None),
                   "gemini": ("gemini-2.5-flash", "gemini-embedding-001"),
                   "mock": ("mock-small", "mock-embed")}
FAKES = ("openai", "anthropic", "gemini")


def echo(raw: bytes) -> str:
    """An error message that quotes the request, as providers' messages do."""
    return f"Invalid request: {raw.decode(errors='replace')}"


# --- fake upstreams that misbehave as the request's canary tag says ------------------------

class TaggedOpenAI(FakeOpenAI):
    def next_behaviour(self, path: str) -> Behaviour:
        raw = self.requests[-1].raw  # recorded just before, with no await in between
        return {
            "badreq": Behaviour.error(400, echo(raw)), "server": Behaviour.error(500, echo(raw)),
            "badcode": Behaviour.error(400, echo(raw), error_type=echo(raw), code=echo(raw),
                                       param=echo(raw)),
            "toomany": Behaviour.error(429, echo(raw)), "slow": Behaviour.slow(SLOW_S),
            "drop": Behaviour.drop_stream(2), "sseerr": Behaviour(error_after_events=2, error_body={
                "message": echo(raw), "type": echo(raw), "code": echo(raw), "param": None}),
            "cut": Behaviour.trickle(0.2), "hangup": Behaviour.hang_up(),
        }.get(tag_of(raw), Behaviour())


class TaggedController(UpstreamController):
    def next_fault(self, path: str) -> Fault:
        raw = self.requests[-1].raw
        return {
            "badreq": Fault(status=400, message=echo(raw)),
            "badcode": Fault(status=400, message=echo(raw), error_type=echo(raw)),
            "server": Fault(status=500, message=echo(raw)),
            "toomany": Fault(status=429, message=echo(raw)), "slow": Fault(delay_s=SLOW_S),
            "drop": Fault(drop_after_events=2),
            "sseerr": Fault(error_after_events=2, message=echo(raw), error_type=echo(raw)),
            "cut": Fault(event_delay_s=0.2),
        }.get(tag_of(raw), Fault())


async def responses_api(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses`` for the fake OpenAI: echoes the last input text."""
    body: dict[str, Any] = request[BODY]  # type: ignore[assignment]
    texts = [i["content"] for i in body.get("input", []) if isinstance(i.get("content"), str)]
    text = f"echo: {texts[-1] if texts else ''}"
    usage = {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    done = {"id": "resp_1", "object": "response", "status": "completed",
            "model": body.get("model"), "output": [message], "usage": usage}
    if not body.get("stream"):
        return web.json_response(done)
    return await write_sse(request, [
        {"type": "response.created", "response": {**done, "status": "in_progress",
                                                  "output": [], "usage": None}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": text},
        {"type": "response.completed", "response": done}])


async def start_fakes(aiohttp_server) -> dict[str, str]:
    openai_app = create_fake_openai_app(TaggedOpenAI())
    openai_app.router.add_post("/v1/responses", responses_api)
    urls = {"openai": str((await aiohttp_server(openai_app)).make_url("/v1"))}
    for name, module in (("anthropic", anthropic_upstream), ("gemini", gemini_upstream)):
        app = module.create_app(TaggedController(module.error_response))
        urls[name] = root_url(await aiohttp_server(app))
    return urls


# --- the gateway ---------------------------------------------------------------------------

def gateway_config(level: str, urls: dict[str, str], workdir: Path) -> dict[str, Any]:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    providers: dict[str, Any] = {"mock": {"type": "mock"}}
    models: dict[str, Any] = {}
    for name, url in urls.items():
        providers[name] = {"type": name, "base_url": url, "api_key": f"sk-{name}-upstream"}
        providers[f"{name}_down"] = {"type": name, "api_key": "sk-down",
                                     "base_url": closed + ("/v1" if name == "openai" else "")}
    for name, upstream in UPSTREAM_MODELS.items():
        for kind, model in zip(("chat", "embed"), upstream, strict=True):
            if model is None:
                continue
            models[f"{name}-{kind}"] = {"targets": [{"provider": name, "model": model}]}
            if name != "mock":
                models[f"{name}-{kind}-t"] = {"targets": [
                    {"provider": name, "model": model, "timeout_s": 0.5}]}
                models[f"{name}-{kind}-down"] = {"targets": [
                    {"provider": f"{name}_down", "model": model}]}
    models["fallback-chat"] = {"targets": [{"provider": "openai_down", "model": "gpt-4o-mini"},
                                           {"provider": "anthropic", "model": "claude-sonnet-4-5"}]}
    pipeline = [
        {"name": "auth", "failures": {"max": 1000, "window_s": 60, "block_s": 1}},
        {"name": "security"},
        {"name": "ratelimit", "backend": "memory",
         "defaults": {"rpm": 100000, "tpm": 100000000, "concurrent": 500}},
        {"name": "redaction", "pii": {"mode": "block", "kinds": ["email"]}},
        {"name": "residency"},
        {"name": "routing", "retries": 2, "timeout_s": 30, "backoff_s": 0.05,
         "max_backoff_s": 0.2, "circuit": {"failures": 100000}},
        {"name": "metering"},
        {"name": "canary:CrashPlugin"},
    ]
    return {"server": {"max_body_mb": 1},
            "storage": {"url": f"sqlite:///{workdir}/data/onyproxy.db"},
            "logging": {"level": level}, "providers": providers, "models": models,
            "pipeline": pipeline}


def gateway_env(workdir: Path) -> dict[str, str]:
    for folder in ("tmp", "home"):
        (workdir / folder).mkdir(exist_ok=True)
    path = os.pathsep.join(filter(None, [str(TESTS.parent), str(TESTS),
                                         os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "TMPDIR": str(workdir / "tmp"), "HOME": str(workdir / "home")}


def cli_json(gateway: GatewayProcess, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "onyproxy", "--config", str(gateway.config_path), *args,
         "--json"], capture_output=True, text=True, timeout=60,
        cwd=gateway.config_path.parent, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- the calls -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    label: str
    surface: str
    path: str
    body: bytes
    expect: int | tuple[int, ...] | None  # None: the client gives up before any answer
    how: str = "read"  # read | cut: hang up after the first bytes | abandon: before the answer
    key: str = "main"  # main | wrong | limited (rpm 1, used) | fenced (regions) | broke (budget)
    usr: str = ""  # the user canary, echoed in the answer of an "ok" call


# (tag, model suffix, status): "badcode" quotes the request in the error's type and code too
# (they were logged and stored); "-t" targets time out, "-down" ones refuse connections.
FAULTS = (("ok", "", 200), ("badreq", "", 400), ("badcode", "", 400), ("server", "", 502),
          ("toomany", "", 429), ("slow", "-t", 504), ("refused", "-down", 502))
CRASHES = (("crashreq", 500), ("crashresp", 500), ("crashdone", 200), ("crashlog", 200))


def plan(book: CanaryBook) -> list[Call]:
    calls: list[Call] = []

    def add(tag: str, surface: str, model: str, expect: Any, *, stream: bool = False,
            how: str = "read", key: str = "main", make: Any = None) -> None:
        label = f"{surface}{'+stream' if stream else ''} {model} {tag} {how} {key}"
        p = book.issue(tag, label)
        if make is None:
            path, body = request_for(surface, model, p, stream)
        else:
            path, body = make(surface, model, p)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        calls.append(Call(label, surface, path, raw, expect, how, key, p.usr))

    for surface in CHAT_SURFACES:
        for provider in (*FAKES, "mock"):
            model = f"{provider}-chat"
            for stream in (True,) if surface == "gemarray" else (False, True):
                for tag, suffix, status in FAULTS[:1] if provider == "mock" else FAULTS:
                    add(tag, surface, model + suffix, status, stream=stream)
            add("cut", surface, model, 200, stream=True, how="cut")
            if provider != "mock":
                add("drop", surface, model, 200, stream=True)
                add("sseerr", surface, model, 200, stream=True)
                add("slow", surface, model, None, how="abandon")
        add("hangup", surface, "openai-chat", 502)
        add("ok", surface, "fallback-chat", 200)  # the first target is down
        add("ok", surface, "fallback-chat", 200, stream=True)
        for provider in (*FAKES, "mock"):
            # Refused, or passed through to a provider of the same shape; never a crash.
            add("oddparts", surface, f"{provider}-chat", (200, 400), make=odd_parts)
        add("fenced", surface, "mock-chat", 403, key="fenced")
        add("broke", surface, "openai-chat", 429, key="broke")  # budget spent
        for provider in ("openai", "mock"):
            for tag, status in CRASHES:
                for stream in (False, True):
                    add(tag, surface, f"{provider}-chat", status, stream=stream)
            if surface != "gemarray":  # answered from one upstream JSON answer: no chunks
                add("crashchunk", surface, f"{provider}-chat", 200, stream=True)
    for surface in EMBED_SURFACES:
        for provider in ("openai", "gemini", "mock"):
            for tag, suffix, status in FAULTS[:1] if provider == "mock" else FAULTS:
                add(tag, surface, f"{provider}-embed{suffix}", status)
    for surface in CHAT_SURFACES + EMBED_SURFACES:
        model = "mock-chat" if surface in CHAT_SURFACES else "mock-embed"
        add("badjson", surface, model, 400, make=bad_json)
        add("wrongtype", surface, model, 400, make=wrong_types)
        add("unknown", surface, "no-such-model", 404)
        add("pii", surface, model, 400, make=with_email)
        add("badkey", surface, model, 401, key="wrong")
        add("limited", surface, model, 429, key="limited")
    add("toolarge", "chat", "mock-chat", 413, make=too_large)
    return calls


async def send(session: aiohttp.ClientSession, gateway: GatewayProcess, call: Call,
               keys: dict[str, str]) -> tuple[int | None, bytes]:
    headers = {"content-type": "application/json", **auth_headers(call.surface,
                                                                   keys[call.key])}
    post = session.post(gateway.url(call.path), data=io.BytesIO(call.body), headers=headers)
    if call.how == "abandon":
        try:
            async with asyncio.timeout(0.5), post as resp:
                return resp.status, await resp.read()
        except TimeoutError:
            return None, b""
    async with post as resp:
        if call.how == "cut":
            first = await resp.content.readany()
            resp.close()
            return resp.status, first
        return resp.status, await resp.read()


async def run_calls(gateway: GatewayProcess, calls: list[Call], keys: dict[str, str]
                    ) -> list[tuple[int | str | None, bytes]]:
    gate = asyncio.Semaphore(24)

    async def one(call: Call) -> tuple[int | str | None, bytes]:
        async with gate:
            try:
                return await send(session, gateway, call, keys)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return type(exc).__name__, b""

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        # Use up the limited key's one request per minute; its calls below are all refused.
        warmup = replace(calls[0], key="limited", how="read")
        assert (await send(session, gateway, warmup, keys))[0] == 200
        return await asyncio.gather(*(one(call) for call in calls))


# --- the checks ----------------------------------------------------------------------------

def scan_tree(root: Path, cores: dict[bytes, str]) -> list[str]:
    """Every canary in every file under ``root``, as ``"<file>: <encoding>: <where from>"``."""
    return [f"{path.relative_to(root)}: {hit}" for path in sorted(root.rglob("*"))
            if path.is_file() for hit in leaks(path.read_bytes(), cores)]


def echoed(call: Call) -> bool:
    """Whether the answer the client gets quotes the call's user canary."""
    tag = tag_of(call.body)
    return call.key == "main" and call.how == "read" and (
        tag == "badreq" or (tag == "ok" and call.surface in CHAT_SURFACES))


def test_the_scanner_finds_canaries_in_every_encoding_it_claims():
    book = CanaryBook()
    p = book.issue("ok", "planted")
    text = f'{{"msg": "{p.usr}"}}'.encode()
    planted = {
        "raw": text, "upper": text.upper(), "json": json.dumps(json.dumps(p.sys)).encode(),
        "base64": b"x=" + base64.b64encode(b"ab" + p.arg.encode()),
        "urlsafe": base64.urlsafe_b64encode(b"\xff\xfe" + p.res.encode()),
        "hex": b"0" + (b"zz" + p.tool.encode()).hex().encode(),
        "utf-16": p.usr.encode("utf-16-le"), "utf-32": p.sys.encode("utf-32"),
    }
    for name, blob in planted.items():
        assert leaks(b"\x00junk " + blob + b" tail\n", book.where), name
    assert leaks(os.urandom(1 << 16) + b"CANARY-ok-usr-" + b"a" * 20, book.where) == []


@pytest.mark.slow
@pytest.mark.parametrize("level", ["debug", "info"])
async def test_no_canary_reaches_any_file_log_or_metric(level, aiohttp_server, tmp_path):
    urls = await start_fakes(aiohttp_server)
    env = gateway_env(tmp_path)
    gateway = GatewayProcess(gateway_config(level, urls, tmp_path), tmp_path, env=env)
    try:
        await asyncio.to_thread(gateway.wait_ready)
        keys = {"main": (await asyncio.to_thread(cli_json, gateway, env, "quickstart"))["key"],
                "wrong": "ony-" + "x" * 40}
        limits = {"limited": ("--rpm", "1"), "fenced": ("--regions", "eu"),
                  "broke": ("--budget-usd", "0")}
        for name, limit in limits.items():
            keys[name] = (await asyncio.to_thread(
                cli_json, gateway, env, "keys", "create", "--account", "you@example.com",
                "--name", name, *limit))["key"]
        book = CanaryBook()
        calls = plan(book)
        outcomes = await run_calls(gateway, calls, keys)
        async with aiohttp.ClientSession() as session, \
                session.get(gateway.url("/metrics")) as resp:
            assert resp.status == 200
            metrics = await resp.read()
        # While it runs (usage spool segments, SQLite WAL and SHM), and after SIGTERM.
        running = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
        found = [f"running: {hit}" for hit in scan_tree(tmp_path, book.where)]
    finally:
        exit_code = await asyncio.to_thread(gateway.stop)

    found += scan_tree(tmp_path, book.where)
    found += [f"/metrics: {hit}" for hit in leaks(metrics, book.where)]
    assert found == [], "content reached the gateway's files, logs or metrics:\n" + \
        "\n".join(found)
    wrong = [f"{c.label}: expected {c.expect}, got {status}"
             for c, (status, _) in zip(calls, outcomes, strict=True)
             if status not in (c.expect if isinstance(c.expect, tuple) else (c.expect,))]
    assert wrong == [], "calls did not take the path they test:\n" + "\n".join(wrong)
    # The canaries were there to be leaked: answers echo them, and so do the upstream 400s
    # that reach the client (and only the client).
    silent = [c.label for c, (_, body) in zip(calls, outcomes, strict=True)
              if echoed(c) and c.usr.encode() not in body]
    assert silent == [], "answers without their canary:\n" + "\n".join(silent)
    # A crash after a stream started ends it with an error event (it used to hang the client).
    unended = [c.label for c, (_, body) in zip(calls, outcomes, strict=True)
               if tag_of(c.body) == "crashchunk" and b"Internal gateway error." not in body]
    assert unended == [], "streams a crash left open:\n" + "\n".join(unended)
    # What was scanned: the spool and the WAL while running, and crash reports that were made.
    assert "data/onyproxy.db-wal" in running
    assert any(f.startswith("data/spool/") for f in running), running
    log = gateway.log()
    crashes = sum(tag_of(c.body).startswith("crash") for c in calls)
    assert log.count("canary.CanaryCrash (message withheld)") == crashes, log
    assert "Traceback" not in log
    assert exit_code == 0, log[-2000:]
