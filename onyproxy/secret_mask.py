"""Secret-shaped text masked: API keys, bearer tokens, JWTs and password values.

Core knowledge, as the core needs it too: a provider's error message relayed to a client must
not carry the gateway's provider key (:mod:`onyproxy.forward`), and the redaction plugin masks
the same shapes in access records and log lines. Patterns are compiled once and each is tried
only where its marker occurs. Each secret keeps a short, non-secret lead (``sk-ant-``,
``Bearer``) so a reader still sees what kind of credential was there. Masking is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

MASK = "***"

_TOKEN = r"(?P<secret>[A-Za-z0-9_~+/=.-]{8,}+)(?!\*)"  # possessive: "sk-ant-api03-***" stays
_VALUE = r"(?P<secret>[^\s\"',;&}]{4,}+)"  # a field's value; "***" is too short to match again
_NAMED = r"[\"']?\s*[:=]\s*[\"']?(?:(?i:bearer|basic)\s+)?+"  # name: "Bearer x", name='x'

# (marker, pattern): the pattern is tried only where its lower-case marker occurs, at a word
# start; group "secret" is masked, what precedes it (the lead) is kept.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (marker, re.compile(pattern)) for marker, pattern in (
        ("ony-", r"ony-" + _TOKEN),                                    # gateway keys
        ("sk-", r"sk-(?:ant-(?:[a-z]+\d*-)?|proj-|svcacct-|admin-)?" + _TOKEN),  # OpenAI, Anthropic
        ("aiza", r"AIza" + _TOKEN),                                    # Google API keys
        ("bearer", r"(?i:bearer)\s+" + _TOKEN),
        ("basic", r"Basic\s+" + _TOKEN),
        ("eyj", r"eyJ(?P<secret>[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)"),  # JWTs
        *((name, f"(?i:{re.escape(name)}){_NAMED}" + _VALUE) for name in (
            "api_key", "api-key", "apikey", "x-api-key", "x-goog-api-key", "authorization",
            "password", "passwd", "secret", "client_secret", "token", "access_token",
            "refresh_token", "key_pepper", "jwt_secret")),
        ("key=", r"key=" + _VALUE),                                    # ?key=... (Gemini SDKs)
    ))
_MARKERS = tuple(marker for marker, _ in _RULES)
# The quick test before any pattern runs: markers that contain another one are implied by it
# ("access_token" by "token").
_QUICK = tuple(m for m in _MARKERS if not any(o != m and o in m for o in _MARKERS))
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def mask_secrets(text: str) -> str:
    """``text`` with every key, token and password value replaced by its lead and ``***``.

    Markers are found with ``str.find`` and each pattern is only matched where its marker is:
    a log line without any marker costs one lower-casing and a few substring checks.
    """
    low = text.lower()
    if not _may_hold_secret(low):
        return text
    if len(low) != len(text):  # a few non-ASCII letters change length when lower-cased
        low = text.translate(_ASCII_LOWER)
    spans = sorted(_secret_spans(text, low))
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        if end <= last:
            continue  # inside a span already masked (sk-... after "Bearer ")
        pieces.append(text[last:max(start, last)])
        pieces.append(MASK)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _may_hold_secret(low: str) -> bool:
    return any(marker in low for marker in _QUICK)


def _secret_spans(text: str, low: str) -> Iterator[tuple[int, int]]:
    for marker, pattern in _RULES:
        pos = low.find(marker)
        while pos >= 0:
            if _word_start(text, pos) or (marker == "key=" and text[pos - 1] in "?&"):
                match = pattern.match(text, pos)
                if match:
                    yield match.span("secret")
            pos = low.find(marker, pos + 1)


def _word_start(text: str, pos: int) -> bool:
    if pos == 0:
        return True
    before = text[pos - 1]
    return not (before.isalnum() or before == "_")


def scrub(value: Any) -> Any:
    """``value`` with secrets masked in every string inside it (dicts and lists walked)."""
    if isinstance(value, dict | list):
        strings: list[str] = []
        _collect_strings(value, strings)
        if not _may_hold_secret("\n".join(strings).lower()):
            return value  # one quick test over all the strings, instead of one per string
    return _scrub(value)


def _collect_strings(value: dict[str, Any] | list[Any], into: list[str]) -> None:
    # Only values: keys are never masked, and names such as "prompt_tokens" (marker "token")
    # would send every access record down the slow path.
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, str):
            into.append(item)
        elif isinstance(item, dict | list):
            _collect_strings(item, into)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _scrub(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _scrub(item)
    return value


def mask_known(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (what the gateway itself sent upstream: provider keys,
    ``Authorization`` values, custom auth headers) replaced by ``***``, and then every
    secret-shaped value masked as :func:`mask_secrets` does."""
    for secret in secrets:
        # Also the bare token of "Bearer <token>": a provider may echo either.
        for value in (secret, secret.rpartition(" ")[2]):
            if len(value) >= 8 and value in text:
                text = text.replace(value, MASK)
    return mask_secrets(text)
