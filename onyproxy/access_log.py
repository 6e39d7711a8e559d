"""The structured access log: one JSON line per exchange, metadata only.

Never the body, never the query string (Gemini SDKs may put the key there), never an error
message (providers echo prompts in theirs): only types, codes, sizes and timings.
"""

from __future__ import annotations

import logging
from typing import Any

from onyproxy.exchange import Exchange
from onyproxy.pipeline import Pipeline

access = logging.getLogger("onyproxy.access")
MAX_PATH = 512  # a Gemini path carries the model; aiohttp allows request lines of 8 KB


def access_record(ex: Exchange) -> dict[str, Any]:
    """The fields of one access-log line."""
    record: dict[str, Any] = {
        "request_id": ex.request_id,
        "path": ex.path[:MAX_PATH],
        "surface": ex.surface,
        "operation": ex.operation,
        "model": ex.model or None,
        "provider": ex.provider,
        "provider_model": ex.provider_model,
        "status": ex.status,
        "stream": ex.stream,
        "latency_ms": round(ex.latency_s * 1000, 2),
        "ttft_ms": None if ex.ttft_s is None else round(ex.ttft_s * 1000, 2),
        "prompt_tokens": ex.usage.prompt_tokens,
        "completion_tokens": ex.usage.completion_tokens,
        "attempts": len(ex.attempts),
        "client_ip": ex.client_ip,
        "account_id": ex.identity.account_id if ex.identity else None,
        "key_id": ex.identity.key_id if ex.identity else None,
    }
    if ex.error is not None:
        record["error_type"] = ex.error.type
        record["error_code"] = ex.error.code
    if ex.flags:
        record["flags"] = sorted(ex.flags)
    return record


async def write_access_log(pipeline: Pipeline, ex: Exchange) -> None:
    """Let ``on_log`` hooks scrub the record, then write it."""
    if not access.isEnabledFor(logging.INFO):
        return
    record = access_record(ex)
    await pipeline.log(ex, record)
    access.info("request", extra={"fields": record})
