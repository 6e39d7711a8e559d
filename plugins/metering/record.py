"""A usage event from an Exchange, and its spool encoding (one JSON object, no content).

Which exchanges get an event: every one whose caller is known (``ex.identity``) or that reached
a provider. Exchanges with neither (a missing or wrong API key, a body refused before auth) get
none: there is nobody to show them to or bill, metrics and the access log count them, and a
flood of bad keys cannot fill the database. Refused requests of known callers (429 rate or
budget limits, 403, 400 after auth) are recorded with their status, error type and zero
tokens, and ``billable`` false: visible in usage reports, never on an invoice.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from onyproxy.exchange import Exchange, Usage
from onyproxy.storage import UsageEvent, to_utc

MAX_TEXT = 256  # model names and user agents come from clients: bounded, never content
_NAMES = tuple(f.name for f in dataclasses.fields(UsageEvent))
_FIELDS = frozenset(_NAMES)


def wanted(ex: Exchange) -> bool:
    """Whether ``ex`` gets a usage event (see the module docstring)."""
    if ex.operation == "models":
        return False  # listing models is not usage
    return ex.identity is not None or bool(ex.attempts)


def event_id(ex: Exchange) -> tuple[str, str | None]:
    """``(request_id, client_request_id)``. The store keeps one event per request id, so an
    id a client chose (``x-request-id``) cannot be the key, or reusing it would hide usage."""
    given = ex.headers.get("x-request-id") if ex.headers is not None else None
    if given and given == ex.request_id:
        return f"req_{uuid.uuid4().hex}", given
    return ex.request_id, None


def build_event(ex: Exchange, request_id: str, client_request_id: str | None, usage: Usage,
                cost: Decimal, flags: list[str]) -> UsageEvent:
    """The event of ``ex`` with the tokens and cost metering settled on."""
    identity = ex.identity
    attempts = ex.attempts
    provider = ex.provider or (attempts[-1].provider if attempts else "")
    provider_model = ex.provider_model or (attempts[-1].model if attempts else "")
    ttft = ex.ttft_s
    error = ex.error
    return UsageEvent(
        request_id=request_id, client_request_id=client_request_id,
        account_id=identity.account_id if identity else None,
        key_id=identity.key_id if identity else None,
        model=ex.model[:MAX_TEXT], provider=provider, provider_model=provider_model,
        surface=ex.surface, attempts=len(attempts), status=ex.status or 499,
        error_type=(error.code or error.type) if error is not None else None,
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost, latency_ms=round(ex.latency_s * 1000),
        ttft_ms=None if ttft is None else round(ttft * 1000), streamed=ex.stream,
        ip=ex.client_ip, user_agent=(ex.user_agent or "")[:MAX_TEXT] or None,
        created_at=to_utc(datetime.fromtimestamp(ex.started_wall, UTC)),
        flags=flags, billable=ex.provider is not None,
        server_tool_uses=dict(usage.server_tool_uses),
    )


def encode(event: UsageEvent) -> bytes:
    """The spool payload: compact JSON, money as decimal text, time as ISO 8601."""
    # Not dataclasses.asdict: it deep-copies every value, and this runs once per request.
    return orjson.dumps({name: getattr(event, name) for name in _NAMES}, default=_plain)


def decode(payload: bytes) -> UsageEvent:
    """The event a spool payload holds (fields a newer version added are ignored)."""
    raw: dict[str, Any] = orjson.loads(payload)
    fields = {k: v for k, v in raw.items() if k in _FIELDS}
    fields["cost_usd"] = Decimal(fields.get("cost_usd") or "0")
    fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    return UsageEvent(**fields)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)
