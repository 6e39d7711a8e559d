"""Embeddings between OpenAI ``/v1/embeddings`` and Gemini ``embedContent`` /
``batchEmbedContents``.

OpenAI clients reach a Gemini provider through ``batchEmbedContents`` (one request per input;
the adapter fills in each request's ``model``). Vectors go back as floats, or as base64 of
little-endian float32 when the client asked for ``encoding_format: base64``, which the openai
SDK does by default. Gemini's ``taskType`` and ``title`` have no OpenAI equivalent; they tune
the vector for a use and are not sent to OpenAI-compatible providers.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from onyproxy.errors import invalid_request
from onyproxy.translate import Context
from onyproxy.translate.gemini_common import bad_upstream, pick

_OPENAI_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


# -- OpenAI client, Gemini provider ----------------------------------------------------------


def openai_to_gemini(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """A ``batchEmbedContents`` request for an OpenAI embeddings request."""
    for name, value in body.items():
        if value is not None and name not in _OPENAI_FIELDS:
            raise invalid_request(f"The parameter '{name}' is not supported by this model's "
                                  f"provider (Gemini).", param=name)
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    if not all(isinstance(item, str) for item in items):
        raise invalid_request("'input' must be text for Gemini embedding models; token arrays "
                              "cannot be sent.", param="input")
    extra = {"outputDimensionality": body["dimensions"]} if body.get("dimensions") else {}
    return {"requests": [{"model": f"models/{ctx.model}", "content": {"parts": [{"text": t}]},
                          **extra} for t in items]}


def gemini_to_openai_answer(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """An OpenAI embeddings list for a Gemini answer (batch or single)."""
    found = pick(body, "embeddings")
    if found is None and pick(body, "embedding") is not None:
        found = [pick(body, "embedding")]
    as_base64 = ctx.request.get("encoding_format") == "base64"
    data = [{"object": "embedding", "index": index,
             "embedding": encode(values(item), as_base64)}
            for index, item in enumerate(found or [])]
    # The Gemini API reports no token count for embeddings.
    tokens = int(pick(pick(body, "usageMetadata"), "promptTokenCount", 0))
    return {"object": "list", "data": data, "model": ctx.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def values(item: Any) -> list[float]:
    found = pick(item, "values")
    if not isinstance(found, list):
        raise bad_upstream("The provider sent an embedding without values.")
    return found


def encode(vector: list[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# -- Gemini client, OpenAI provider ----------------------------------------------------------


def gemini_to_openai(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """An OpenAI embeddings request for ``embedContent`` or ``batchEmbedContents``."""
    batch = pick(body, "requests")
    items = batch if batch is not None else [body]
    where = "requests[{}]." if batch is not None else ""
    texts = [content_text(pick(item, "content"), where.format(i) + "content")
             for i, item in enumerate(items)]
    dimensions = {pick(item, "outputDimensionality") for item in items}
    if len(dimensions) > 1:
        raise invalid_request("outputDimensionality must be the same for every request of a "
                              "batch sent to this provider.", param="outputDimensionality")
    request: dict[str, Any] = {"model": ctx.model, "input": texts, "encoding_format": "float"}
    size = dimensions.pop()
    if size is not None:
        request["dimensions"] = int(size)
    return request


def content_text(content: Any, where: str) -> str:
    parts = pick(content, "parts")
    texts = [pick(p, "text") for p in parts] if isinstance(parts, list) and parts else [None]
    if not all(isinstance(t, str) for t in texts):
        raise invalid_request(f"{where} must hold text parts only for this model.", param=where)
    return " ".join(texts)


def openai_to_gemini_answer(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """``{"embedding"}`` or ``{"embeddings"}``, as the endpoint the client called answers."""
    items = sorted(body.get("data") or [], key=lambda item: item.get("index", 0))
    vectors = [{"values": decode(item.get("embedding"))} for item in items]
    if pick(ctx.request, "requests") is not None:
        return {"embeddings": vectors}
    if not vectors:
        raise bad_upstream("The provider sent no embedding.")
    return {"embedding": vectors[0]}


def decode(embedding: Any) -> list[float]:
    if isinstance(embedding, list):
        return embedding
    if isinstance(embedding, str):  # a provider that answered base64 anyway
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    raise bad_upstream("The provider sent an embedding that is neither floats nor base64.")
