"""Execute a route: try the exchange's targets in order, with retries, backoff and fallback.

Falls over to the next target on 429, 5xx, timeouts and connection errors; a client's own 4xx
is returned at once. Each retry must be granted by ``ex.policy.may_retry`` when that is set.
A target that cannot serve the request at all (an operation or a parameter its API lacks) is
skipped; its 400 reaches the client only when no target could be tried.
Streams are only retried before their first event reaches the client, which holds here because
``forward`` returns as soon as the upstream answered with headers.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from onyproxy import provider_features, translate
from onyproxy.errors import GatewayError
from onyproxy.exchange import Attempt
from onyproxy.logs import log_crash
from onyproxy.providers.base import Reply, UpstreamError

if TYPE_CHECKING:
    from onyproxy.config.model import TargetConfig
    from onyproxy.exchange import Exchange
    from onyproxy.gateway import Gateway
    from onyproxy.providers.base import Adapter


async def forward(gw: Gateway, ex: Exchange, ctx: translate.Context) -> Reply:
    """Send the exchange upstream; return the first successful reply (in its provider shape)."""
    last: UpstreamError | None = None
    refusal: GatewayError | None = None
    allowed = _allowed_features(gw, ex)
    # What the client asked for, named as it sent it: refused whichever target would serve it.
    provider_features.refuse_unallowed(ex.body, ex.shape, allowed, ex.model)
    for target in ex.targets:  # every target: the answer must not depend on which one serves
        gw.adapters[target.provider].refuse_headers(ex)
    for target in ex.targets:
        adapter = gw.adapters[target.provider]
        try:
            shape = translate.choose_shape(ex.shape, adapter.shapes, ex.operation,
                                           target.provider)
            body = translate.request(ex.body, ex.shape, shape, ctx)
        except GatewayError as err:
            refusal = refusal or err  # another target may well be able to serve it
            continue
        # Translation must never be a way around the operator's allow list.
        provider_features.refuse_unallowed(body, shape, allowed, ex.model)
        body = provider_features.restricted(body, shape, allowed)
        outcome = await _try_target(ex, target, adapter, shape, body)
        if isinstance(outcome, Reply):
            return outcome
        last = outcome
    if last is not None:
        raise final_error(last)
    if refusal is not None:
        raise refusal
    raise GatewayError(503, "api_error", f"The model '{ex.model}' has no target available.",
                       code="no_target_available")


def _allowed_features(gw: Gateway, ex: Exchange) -> tuple[str, ...]:
    model = gw.config.models.get(ex.model)
    return tuple(model.allow) if model is not None else ()


async def _try_target(ex: Exchange, target: TargetConfig, adapter: Adapter, shape: str,
                      body: dict[str, Any]) -> Reply | UpstreamError:
    """Up to ``1 + retries`` tries at one target: its reply, or the error to fall over on."""
    timeout_s = target.timeout_s or adapter.config.timeout_s or ex.policy.timeout_s
    last: UpstreamError  # every pass of the loop either returns or sets it
    for tries in range(ex.policy.retries + 1):
        try:
            return await _attempt(ex, target, adapter, shape, body, timeout_s)
        except UpstreamError as err:
            if not err.retryable:
                raise client_error(err) from None
            last = err
        if last.kind == "timeout":
            break  # another wait of timeout_s on the same target would rarely end differently
        delay = backoff(ex.policy, tries, last.retry_after_s)
        if tries == ex.policy.retries or delay is None:
            break
        if ex.policy.may_retry is not None and not ex.policy.may_retry(target):
            break  # no retry budget left, or the target's circuit opened: fall over instead
        await asyncio.sleep(delay)
    return last


async def _attempt(ex: Exchange, target: TargetConfig, adapter: Adapter, shape: str,
                   body: dict[str, Any], timeout_s: float) -> Reply:
    """One try, recorded on ``ex.attempts`` and reported to ``ex.on_attempt`` as it ends."""
    attempt = Attempt(provider=target.provider, model=target.model, started=time.monotonic())
    ex.attempts.append(attempt)
    try:
        reply = await adapter.send(ex, target, ex.operation, shape, body, ex.stream, timeout_s)
    except UpstreamError as err:
        attempt.duration_s = time.monotonic() - attempt.started
        attempt.status, attempt.error = err.status, err.kind
        _report(ex, attempt)
        raise
    attempt.duration_s = time.monotonic() - attempt.started
    attempt.status = reply.status
    ex.provider, ex.provider_model = target.provider, target.model
    _report(ex, attempt)
    return reply


def _report(ex: Exchange, attempt: Attempt) -> None:
    # A listener's bug must not turn an upstream answer into a failed request.
    for listener in ex.on_attempt:
        try:
            listener(attempt)
        except Exception as exc:
            log_crash("on_attempt", exc)


def backoff(policy, tries: int, retry_after_s: float | None) -> float | None:
    """Seconds to wait before retry number ``tries + 1``; ``None``: move to the next target.

    Exponential, with jitter over the upper half of the step so that clients that failed
    together do not retry together; an upstream ``retry-after`` is honoured as given, and one
    longer than the policy allows means this target is better skipped than waited for.
    """
    if retry_after_s is not None:
        return retry_after_s if retry_after_s <= policy.max_backoff_s else None
    return random.uniform(0.5, 1.0) * min(policy.max_backoff_s, policy.backoff_s * 2 ** tries)


def client_error(err: UpstreamError) -> GatewayError:
    """A provider's 4xx about the request itself, passed through with its status and message."""
    return GatewayError(err.status, err.error_type or "invalid_request_error", err.message,
                        param=err.param, code=err.code)


def final_error(err: UpstreamError) -> GatewayError:
    """What the client sees when every target failed: named after the last provider."""
    if err.status == 429:
        headers = {"retry-after": str(max(1, round(err.retry_after_s)))} \
            if err.retry_after_s is not None else {}
        return GatewayError(429, "rate_limit_error", err.message, code="upstream_rate_limited",
                            headers=headers)
    if err.kind == "timeout":
        return GatewayError(504, "timeout_error", err.message, code="upstream_timeout")
    return GatewayError(502, "api_error", err.message, code="upstream_error")
