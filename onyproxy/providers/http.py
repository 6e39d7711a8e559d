"""The HTTP call every network adapter makes, with failures turned into ``UpstreamError``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson

from onyproxy.providers.base import Reply, UpstreamError
from onyproxy.secret_mask import mask_known
from onyproxy.sse import Event, parse_sse

# Provider refusals of the gateway's own credentials are the operator's problem, not the
# client's: they become 502 so a client never thinks its gateway key was wrong.
_CREDENTIAL_STATUSES = (401, 403)
# A provider's error type and code are logged and stored with the exchange, so only what looks
# like the identifiers real APIs send (invalid_request_error, INVALID_ARGUMENT) is kept: a
# server that puts the request, or its error message, there must not get it into a log.
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")

# Headers sent upstream whose values are never secrets (the rest are masked in errors).
_NOT_SECRET = frozenset({"content-type", "anthropic-version", "anthropic-beta"})

ErrorReader = Callable[[Any], tuple[str, str | None, str | None, str | None]]
RetryReader = Callable[[Any], float | None]


async def post(session: aiohttp.ClientSession, provider: str, url: str, headers: dict[str, str],
               body: dict[str, Any], *, shape: str, stream: bool, timeout_s: float,
               read_error: ErrorReader, params: dict[str, str] | None = None,
               read_retry_after: RetryReader | None = None) -> Reply:
    """POST ``body`` as JSON; return the parsed answer or its SSE events.

    ``timeout_s`` bounds the wait for the answer's headers and, for streams, each gap between
    reads. ``read_error`` pulls (message, type, param, code) out of a provider's error body;
    ``read_retry_after`` finds a retry delay in it, for providers that say so in the body.
    """
    data = orjson.dumps(body)
    headers = {"content-type": "application/json", **headers}
    try:
        async with asyncio.timeout(timeout_s):
            resp = await session.post(
                url, data=data, headers=headers, params=params,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_s),
            )
            if resp.status >= 400:
                raise await _http_error(resp, provider, read_error, read_retry_after,
                                        _credentials(headers))
            if not stream:
                raw = await resp.read()
                resp.release()
                return Reply(shape=shape, status=resp.status, body=_parse_body(raw, provider),
                             raw=raw)
    except TimeoutError:
        raise UpstreamError(provider, 504, "timeout",
                            f"The provider '{provider}' did not answer within {timeout_s:g}s.",
                            retryable=True) from None
    except aiohttp.ClientError as exc:
        raise _connection_error(provider, exc) from None
    return Reply(shape=shape, status=resp.status, events=_events(resp, provider),
                 close=_closer(resp))


def _parse_body(raw: bytes, provider: str) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise UpstreamError(provider, 502, "http",
                            f"The provider '{provider}' sent an answer that is not a JSON object.",
                            retryable=True)
    return body


async def _events(resp: aiohttp.ClientResponse, provider: str) -> AsyncIterator[Event]:
    try:
        async for event in parse_sse(resp.content.iter_any()):
            yield event
    except TimeoutError:
        raise UpstreamError(provider, 504, "timeout",
                            f"The provider '{provider}' stopped sending mid-stream.",
                            retryable=False) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(provider, 502, "stream",
                            f"The stream from provider '{provider}' broke off "
                            f"({type(exc).__name__}).", retryable=False) from None
    finally:
        resp.close()


def _closer(resp: aiohttp.ClientResponse):
    async def close() -> None:
        resp.close()
    return close


def _credentials(headers: dict[str, str]) -> list[str]:
    """The header values that may be secrets: everything the gateway sent but the few that
    are known not to be."""
    return [value for name, value in headers.items() if name.lower() not in _NOT_SECRET]


async def _http_error(resp: aiohttp.ClientResponse, provider: str, read_error: ErrorReader,
                      read_retry_after: RetryReader | None = None,
                      secrets: list[str] | None = None) -> UpstreamError:
    try:
        raw = await resp.read()
        parsed = orjson.loads(raw) if raw else None
    except (aiohttp.ClientError, orjson.JSONDecodeError):
        parsed = None
    finally:
        resp.release()
    status = resp.status
    retry_after = _retry_after(resp.headers.get("retry-after"))
    if retry_after is None and read_retry_after is not None:
        retry_after = read_retry_after(parsed)
    if status in _CREDENTIAL_STATUSES:
        return UpstreamError(provider, 502, "http",
                             f"The provider '{provider}' refused the gateway's credentials "
                             f"(HTTP {status}).", retryable=True)
    if status == 429 or status >= 500:
        return UpstreamError(provider, status, "http",
                             f"The provider '{provider}' failed with HTTP {status}.",
                             retryable=True, retry_after_s=retry_after)
    message, kind, param, code = read_error(parsed)
    # Relayed to the client: a provider that echoes the key it was sent (or any token) must
    # not hand the operator's credentials to whoever sent the request.
    secrets = secrets or []
    return UpstreamError(provider, status, "http",
                         mask_known(message, secrets) or f"The provider '{provider}' rejected "
                                                         f"the request (HTTP {status}).",
                         retryable=False, error_type=_clean(kind, secrets),
                         param=_unless_secret(param, secrets),
                         code=_clean(code, secrets))


def _unless_secret(value: Any, secrets: list[str]) -> Any:
    """``value``, or ``None`` when it is, or holds, a secret."""
    if isinstance(value, str) and mask_known(value, secrets) != value:
        return None
    return value


def _clean(value: Any, secrets: list[str]) -> Any:
    """An identifier field of a provider error, dropped when it is, or holds, a secret."""
    return _identifier(_unless_secret(value, secrets))


def _identifier(value: Any) -> Any:
    """``value`` when it is a number or looks like an identifier, else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return value if isinstance(value, str) and _IDENTIFIER.fullmatch(value) else None


def _connection_error(provider: str, exc: aiohttp.ClientError) -> UpstreamError:
    return UpstreamError(provider, 502, "connection",
                         f"Could not reach the provider '{provider}' ({type(exc).__name__}).",
                         retryable=True)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
