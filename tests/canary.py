"""Canary strings for the zero-retention suite: issuing them, finding them, carrying them.

Every piece of a prompt (system, user, tool description, tool arguments, tool result) gets its
own canary ``CANARY-<tag>-<piece>-<core>``. The ``tag`` tells the fake upstreams (and the crash
plugin below) how to misbehave for that request; the ``core`` is 20 random lowercase letters,
so it survives JSON escaping, case changes and URL encoding unchanged, and, holding no digit
or ``@``, no PII detector ever masks it. :func:`leaks` looks for cores in bytes as they are, and
inside base64, hex and UTF-16/32 encodings.

This module is also imported by the gateway under test (``canary:CrashPlugin`` in its
pipeline, found through ``PYTHONPATH``), so it imports nothing test-only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterator, Mapping
from string import ascii_lowercase
from typing import Any, NamedTuple

import orjson

from onyproxy.pipeline import NoConfig, Plugin

CORE_LEN = 20
TAG = re.compile(rb"CANARY-([a-z]+)-")
_LETTER_RUN = re.compile(rb"[a-z]{%d,}" % CORE_LEN)
_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}")
_HEX_RUN = re.compile(rb"[0-9a-fA-F]{40,}")
_URLSAFE = bytes.maketrans(b"-_", b"+/")


class Prompt(NamedTuple):
    """The canaries of one request, one per piece of the prompt."""

    tag: str
    sys: str
    usr: str
    tool: str
    arg: str
    res: str


class CanaryBook:
    """Issues canaries and remembers which request and piece each core belongs to."""

    def __init__(self) -> None:
        self.where: dict[bytes, str] = {}

    def issue(self, tag: str, label: str) -> Prompt:
        assert tag.isalpha() and tag.islower(), tag
        pieces = {piece: self._one(tag, piece, label) for piece in Prompt._fields[1:]}
        return Prompt(tag=tag, **pieces)

    def _one(self, tag: str, piece: str, label: str) -> str:
        core = "".join(secrets.choice(ascii_lowercase) for _ in range(CORE_LEN))
        self.where[core.encode()] = f"{label} [{piece}]"
        return f"CANARY-{tag}-{piece}-{core}"


def tag_of(raw: bytes) -> str:
    """The tag of the first canary in ``raw`` ('' when there is none)."""
    found = TAG.search(raw)
    return found.group(1).decode() if found else ""


# --- finding canaries ------------------------------------------------------------------------

def leaks(data: bytes, cores: Mapping[bytes, str]) -> list[str]:
    """Every canary of ``cores`` found in ``data``, as ``"<encoding>: <request [piece]>"``."""
    found: list[str] = []
    for encoding, text in decodings(data):
        found.extend(f"{encoding}: {cores[core]}" for core in _cores_in(text, cores))
    return sorted(set(found))


def decodings(data: bytes) -> Iterator[tuple[str, bytes]]:
    """``data`` as is (any letter case, JSON- or URL-escaped) and decoded from what could be
    base64 (both alphabets, every alignment), hex (both alignments) or UTF-16/32."""
    yield "raw", data.lower()
    yield "utf-16/32", data.replace(b"\x00", b"").lower()
    for run in _B64_RUN.findall(data):
        run = run.translate(_URLSAFE)
        for shift in range(4):
            part = run[shift:]
            part = part[:len(part) - len(part) % 4]
            try:
                yield "base64", base64.b64decode(part).lower()
            except (binascii.Error, ValueError):
                continue
    for run in _HEX_RUN.findall(data):
        for shift in range(2):
            part = run[shift:]
            yield "hex", bytes.fromhex(part[:len(part) - len(part) % 2].decode()).lower()


def _cores_in(text: bytes, cores: Mapping[bytes, str]) -> Iterator[bytes]:
    for run in _LETTER_RUN.findall(text):
        for start in range(len(run) - CORE_LEN + 1):
            if run[start:start + CORE_LEN] in cores:
                yield run[start:start + CORE_LEN]


# --- a plugin that crashes on demand, with the prompt in its exception -------------------------

class CanaryCrash(RuntimeError):
    """Raised by :class:`CrashPlugin`; its message (and its cause's) quotes the request."""


class CrashPlugin(Plugin):
    """Raises in the hook a request's canary tag names: ``crashreq`` (on_request), ``crashresp``
    (on_response), ``crashchunk`` (on_chunk), ``crashdone`` (on_complete), ``crashlog``
    (on_log). The exception and its cause quote the whole request body, like a careless
    third-party plugin would."""

    name = "canary_crash"
    Config = NoConfig

    @staticmethod
    def _crash(ex: Any, tag: str) -> None:
        raw = orjson.dumps(ex.body) if isinstance(ex.body, dict) else b""
        if tag_of(raw) == tag:
            text = raw.decode()
            raise CanaryCrash(f"{tag} while handling {text}") from ValueError(text)

    async def on_request(self, ex: Any) -> None:
        self._crash(ex, "crashreq")

    async def on_response(self, ex: Any) -> None:
        self._crash(ex, "crashresp")

    async def on_chunk(self, ex: Any, event: Any) -> None:
        self._crash(ex, "crashchunk")

    async def on_complete(self, ex: Any) -> None:
        self._crash(ex, "crashdone")

    async def on_log(self, ex: Any, record: dict[str, Any]) -> None:
        self._crash(ex, "crashlog")


# --- requests in each surface's shape, every piece carrying its canary ----------------------

CHAT_SURFACES = ("chat", "responses", "messages", "gemini", "gemarray")
EMBED_SURFACES = ("embeddings", "embed", "batch")
_PARAMS = {"type": "object", "properties": {"query": {"type": "string"}}}


def request_for(surface: str, model: str, p: Prompt, stream: bool = False
                ) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` of a call to ``surface`` whose every text carries a canary of ``p``."""
    lookup = f"Look up {p.usr} please."
    args = json.dumps({"query": p.arg})
    result = f"Found: {p.res}"
    ask = f"Now repeat {p.usr} and {p.res}"
    describe = f"Looks things up ({p.tool})"
    if surface == "chat":
        call = {"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": args}}
        return "/v1/chat/completions", {
            "model": model, "stream": stream, "messages": [
                {"role": "system", "content": f"Be brief. {p.sys}"},
                {"role": "user", "content": lookup},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": result},
                {"role": "user", "content": ask}],
            "tools": [{"type": "function", "function": {
                "name": "lookup", "description": describe, "parameters": _PARAMS}}]}
    if surface == "responses":
        return "/v1/responses", {
            "model": model, "stream": stream, "instructions": f"Be brief. {p.sys}",
            "input": [
                {"role": "user", "content": lookup},
                {"type": "function_call", "call_id": "call_1", "name": "lookup",
                 "arguments": args},
                {"type": "function_call_output", "call_id": "call_1", "output": result},
                {"role": "user", "content": ask}],
            "tools": [{"type": "function", "name": "lookup", "description": describe,
                       "parameters": _PARAMS}]}
    if surface == "messages":
        return "/v1/messages", {
            "model": model, "max_tokens": 64, "stream": stream, "system": f"Be brief. {p.sys}",
            "messages": [
                {"role": "user", "content": lookup},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup",
                     "input": {"query": p.arg}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": result},
                    {"type": "text", "text": ask}]}],
            "tools": [{"name": "lookup", "description": describe, "input_schema": _PARAMS}]}
    if surface in ("gemini", "gemarray"):  # gemarray: a stream as one JSON array, no SSE
        method = "generateContent" if not stream else \
            "streamGenerateContent" if surface == "gemarray" else "streamGenerateContent?alt=sse"
        return f"/v1beta/models/{model}:{method}", {
            "systemInstruction": {"parts": [{"text": f"Be brief. {p.sys}"}]},
            "contents": [
                {"role": "user", "parts": [{"text": lookup}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "lookup", "args": {"query": p.arg}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "lookup", "response": {"result": result}}}]},
                {"role": "user", "parts": [{"text": ask}]}],
            "tools": [{"functionDeclarations": [
                {"name": "lookup", "description": describe, "parameters": _PARAMS}]}]}
    texts = [f"{p.sys} {p.usr}", f"{p.tool} {p.arg} {p.res}"]
    if surface == "embeddings":
        return "/v1/embeddings", {"model": model, "input": texts}
    if surface == "embed":
        return f"/v1beta/models/{model}:embedContent", {
            "content": {"parts": [{"text": t} for t in texts]}}
    assert surface == "batch", surface
    return f"/v1beta/models/{model}:batchEmbedContents", {"requests": [
        {"model": f"models/{model}", "content": {"parts": [{"text": t}]}} for t in texts]}


def with_email(surface: str, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
    """A call whose user turns hold an e-mail address (itself a canary)."""
    core = p.usr.rsplit("-", 1)[1]
    return request_for(surface, model, p._replace(usr=f"{p.usr} (mail {core}@example.org)"))


def too_large(surface: str, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
    """A call a little over 1 MB."""
    return request_for(surface, model, p._replace(usr=f"{p.usr} {'pad ' * 300_000}"))


def wrong_types(surface: str, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
    """A call to ``surface`` with the canaries where a list or an object belongs."""
    path, body = request_for(surface, model, p)
    field = {"chat": "messages", "responses": "tools", "messages": "messages",
             "gemini": "contents", "gemarray": "contents", "embeddings": "input",
             "embed": "content",
             "batch": "requests"}[surface]
    body[field] = {"text": p.usr, "n": p.sys} if field == "input" else f"{p.usr} {p.sys}"
    if surface in ("chat", "messages"):
        body["temperature"] = p.res
    return path, body


def odd_parts(surface: str, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
    """A call to ``surface`` with canaries in unknown roles, part types and media fields."""
    path, body = request_for(surface, model, p)
    if surface == "chat":
        body["messages"] = [{"role": "user", "content": [
            {"type": p.usr, "text": p.sys}, {"type": "image_url", "image_url": {"url": p.res}}]},
            {"role": p.arg, "content": p.tool}]
    elif surface == "responses":
        body["input"] = [{"type": p.usr, "content": p.sys}, {"role": "user", "content": [
            {"type": "input_image", "image_url": p.res}, {"type": p.arg, "text": p.tool}]}]
    elif surface == "messages":
        body["messages"] = [{"role": "user", "content": [
            {"type": p.usr, "text": p.sys}, {"type": "image", "source": {
                "type": "base64", "media_type": p.res, "data": _b64(p.arg)}}]},
            {"role": p.tool, "content": p.usr}]
    else:
        body["contents"] = [{"role": p.usr, "parts": [
            {"inlineData": {"mimeType": p.sys, "data": _b64(p.res)}}, {p.arg: p.tool}]}]
    return path, body


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bad_json(surface: str, model: str, p: Prompt) -> tuple[str, bytes]:
    """A call to ``surface`` whose body breaks off in the middle of a canary-laden JSON text."""
    path, body = request_for(surface, model, p)
    raw = json.dumps(body).encode()
    return path, raw[:raw.index(p.usr.encode()) + len(p.usr) + 3]


def auth_headers(surface: str, key: str) -> dict[str, str]:
    """The key where that surface's SDK sends it."""
    if surface == "messages":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if surface in ("gemini", "gemarray", "embed", "batch"):
        return {"x-goog-api-key": key}
    return {"authorization": f"Bearer {key}"}
