"""Adapter for the Gemini API (``generativelanguage.googleapis.com``).

``POST {base_url}/v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``,
``:embedContent`` and ``:batchEmbedContents``, with the key in ``x-goog-api-key``. The model is
in the URL, not the body. Errors are ``{"error": {"code", "message", "status", "details"}}``;
a quota error says when to retry in a ``RetryInfo`` detail rather than a header, and a bad key
is a 400 ``API_KEY_INVALID``, which is the operator's problem, not the client's. Usage comes
from ``usageMetadata``, which stream events repeat cumulatively (see
:func:`onyproxy.translate.gemini_common.openai_usage` for how thoughts are counted).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from onyproxy.providers.base import Adapter, Reply, UpstreamError
from onyproxy.providers.http import post
from onyproxy.providers.openai import read_openai_usage
from onyproxy.secret_mask import mask_known
from onyproxy.translate.gemini_common import openai_usage, pick

if TYPE_CHECKING:
    from onyproxy.config.model import TargetConfig
    from onyproxy.exchange import Exchange, Usage
    from onyproxy.sse import Event

_VERSIONED = re.compile(r"/v1(alpha|beta)?$")
# Documented stand-in for a thought signature the conversation lost (history from another
# model or an OpenAI client that dropped it); Gemini 3 refuses replayed calls without one.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "NOT_FOUND": "invalid_request_error",
    "PERMISSION_DENIED": "permission_error",
    "UNAUTHENTICATED": "authentication_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
}


class GeminiAdapter(Adapter):
    """Speaks generateContent (JSON and SSE) and the two embedding methods."""

    type = "gemini"
    shapes = ("gemini",)
    operations = ("chat", "embeddings")
    default_base_url = "https://generativelanguage.googleapis.com"

    async def send(self, ex: Exchange, target: TargetConfig, operation: str, shape: str,
                   body: dict[str, Any], stream: bool, timeout_s: float) -> Reply:
        model = model_name(target.model)
        method, body = prepare(operation, body, stream, model)
        headers = {**self.config.headers, **target.headers}
        if self.config.api_key:
            headers["x-goog-api-key"] = self.config.api_key
        try:
            reply = await post(self.session, self.name, f"{self.api_root}/{model}:{method}",
                               headers, body, shape=shape, stream=stream, timeout_s=timeout_s,
                               read_error=read_gemini_error, read_retry_after=read_retry_delay,
                               params={"alt": "sse"} if stream else None)
        except UpstreamError as err:
            raise self.credential_error(err) if err.code == "API_KEY_INVALID" else err from None
        if reply.body is not None:
            self.read_usage(shape, reply.body, ex.usage)
        else:
            reply.events = self.metered(shape, self.checked(reply.events), ex.usage)
        return reply

    @property
    def api_root(self) -> str:
        """The base URL with an API version: ``v1beta`` unless the config names one."""
        return self.base_url if _VERSIONED.search(self.base_url) else self.base_url + "/v1beta"

    def read_usage(self, shape: str, obj: dict[str, Any], usage: Usage) -> None:
        converted = openai_usage(pick(obj, "usageMetadata"))
        if converted is not None:
            read_openai_usage(converted, usage)

    async def checked(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """Pass events through; an ``{"error": ...}`` event ends the stream as an error."""
        async for event in events:
            obj = event.json() if '"error"' in event.data else None
            if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
                error = obj["error"]
                status = error.get("code") if isinstance(error.get("code"), int) else 502
                message = mask_known(str(error.get("message") or "The stream failed."),
                                     [self.config.api_key, *self.config.headers.values()])
                raise UpstreamError(self.name, status, "stream", message,
                                    retryable=False, code=error.get("status"))
            yield event

    def credential_error(self, err: UpstreamError) -> UpstreamError:
        return UpstreamError(self.name, 502, "http",
                             f"The provider '{self.name}' refused the gateway's credentials "
                             f"(HTTP {err.status}).", retryable=True)


def model_name(model: str) -> str:
    """``models/<id>`` (tuned models keep their own collection prefix)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def prepare(operation: str, body: dict[str, Any], stream: bool,
            model: str) -> tuple[str, dict[str, Any]]:
    """(method, body) for the call; the body names the target model where the API wants it."""
    if operation == "embeddings":
        requests = pick(body, "requests")
        if requests is None:
            return "embedContent", {**_without_model(body), "model": model}
        return "batchEmbedContents", {
            "requests": [{**_without_model(item), "model": model} for item in requests]}
    body = sign_replayed_calls(_without_model(body), model)
    return ("streamGenerateContent" if stream else "generateContent"), body


def _without_model(body: dict[str, Any]) -> dict[str, Any]:
    # The client's model name is the gateway's, not the provider's: the URL carries the target.
    return {key: value for key, value in body.items() if key != "model"}


def sign_replayed_calls(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Give the first function call of each model turn a signature, for Gemini 3 models."""
    contents = pick(body, "contents")
    if "gemini-3" not in model or not isinstance(contents, list):
        return body
    return {**body, "contents": [_signed(content) for content in contents]}


def _signed(content: Any) -> Any:
    if not isinstance(content, dict) or content.get("role") != "model":
        return content
    parts = list(pick(content, "parts", []))
    for index, part in enumerate(parts):
        if isinstance(part, dict) and pick(part, "functionCall") is not None:
            if pick(part, "thoughtSignature") is None:
                parts[index] = {**part, "thoughtSignature": SKIP_SIGNATURE}
            break
    return {**content, "parts": parts}


def read_gemini_error(parsed: Any) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, param, code) from a Gemini error body (``code`` is the status name, or
    the ``ErrorInfo`` reason such as ``API_KEY_INVALID`` when there is one)."""
    if isinstance(parsed, list) and parsed:  # streamGenerateContent without alt=sse
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return "", None, None, None
    status = error.get("status")
    reasons = [d.get("reason") for d in error.get("details") or [] if isinstance(d, dict)]
    reason = next((r for r in reasons if r), None)
    return (str(error.get("message") or ""), _ERROR_TYPES.get(status, "invalid_request_error"),
            None, reason or status)


def read_retry_delay(parsed: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "7s"``), if any."""
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None
