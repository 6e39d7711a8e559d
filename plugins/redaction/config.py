"""Options of the ``redaction`` plugin, checked at start (patterns are compiled here once)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from plugins.redaction.detectors import KINDS

if TYPE_CHECKING:
    from onyproxy.config.model import GatewayConfig

Kind = Literal["email", "phone", "tckn", "iban_tr", "card", "ip"]
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*$")


def _regex(value: str) -> str | None:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        return f"invalid regular expression ({exc})"
    if compiled.match(""):
        return "the pattern matches empty text; it must match at least one character"
    return None


def _name(value: str) -> str | None:
    if not _NAME.match(value):
        return f"expected letters, digits and single underscores, starting with a letter, " \
               f"got {value!r}"
    if value.lower() in KINDS:
        return f"'{value}' is a built-in kind; list it under kinds instead"
    return None


def _unique_names(custom: list[CustomPattern]) -> str | None:
    labels = [c.name.upper() for c in custom if c is not None]  # None: invalid, reported
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    return f"names must differ (ignoring case): {', '.join(repeated)}" if repeated else None


@dataclass(frozen=True)
class CustomPattern:
    """A site-specific kind of personal data, e.g. an employee or customer number."""

    name: str = field(metadata={
        "check": _name, "doc": "its placeholder label in capitals, e.g. employee_id → "
                               "[EMPLOYEE_ID]"})
    pattern: str = field(metadata={
        "check": _regex, "doc": "a Python regular expression; the whole match is replaced"})


@dataclass(frozen=True)
class PIIConfig:
    """Masking of personal data in what is sent upstream."""

    mode: Literal["mask", "pseudonymise", "block"] = field(default="mask", metadata={
        "doc": "mask: [EMAIL]; pseudonymise: [EMAIL_1], restored in the answer; "
               "block: refuse with 400 naming the kind"})
    kinds: list[Kind] = field(default_factory=lambda: list(KINDS), metadata={
        "doc": "built-in detectors to run: " + ", ".join(KINDS)})
    custom: list[CustomPattern] = field(default_factory=list, metadata={
        "check": _unique_names, "doc": "extra detectors: [{name, pattern}]"})
    models: list[str] = field(default_factory=list, metadata={
        "doc": "client model names this applies to; empty: every model"})
    keys: list[str] = field(default_factory=list, metadata={
        "doc": "key ids this applies to; empty: every caller"})


@dataclass(frozen=True)
class RedactionConfig:
    """Options of the ``redaction`` plugin."""

    pii: PIIConfig | None = field(default=None, metadata={
        "doc": "PII masking of requests; absent: requests are forwarded unchanged"})
    client_ip: Literal["keep", "hash", "drop"] = field(default="keep", metadata={
        "doc": "in access-log lines: keep, replace by a keyed hash, or drop"})
    log_filter: bool = field(default=True, metadata={
        "doc": "mask keys and tokens in every log line of the process, not only access lines"})


def check_config(config: RedactionConfig, gateway: GatewayConfig) -> Iterator[tuple[str, str]]:
    """Model names under ``pii.models`` must be models of this gateway."""
    if config.pii is None:
        return
    for index, model in enumerate(config.pii.models):
        if model not in gateway.models:
            known = ", ".join(sorted(gateway.models)) or "none"
            yield f"pii.models[{index}]", f"unknown model '{model}' (known: {known})"
