"""Redaction: secrets out of every log line, and personal data out of what goes upstream.

- ``on_log`` masks keys and tokens anywhere in an access record and keeps, hashes or drops the
  client IP; ``start`` also puts a filter on the process's log handlers, so no library can
  print a key either.
- ``on_request`` (when ``pii`` is configured and applies to the model and key) finds personal
  data in the request's text and masks it, replaces it with per-request pseudonyms, or refuses
  the request. Pseudonyms are restored in the answer by ``on_response`` (JSON answers) and
  ``on_chunk`` (streams, see :mod:`.stream`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange
from onyproxy.pipeline import Plugin
from onyproxy.sse import Event
from plugins.redaction.config import PIIConfig, RedactionConfig, check_config
from plugins.redaction.credentials import Installed, install_filter, remove_filter, scrub
from plugins.redaction.detectors import Detector, custom_detector, detectors_for
from plugins.redaction.request_text import rewrite_request
from plugins.redaction.scanner import Scanner
from plugins.redaction.stream import StreamRestorer, restore_values
from plugins.redaction.vault import PLACEHOLDER_BYTES, Vault


@dataclass(slots=True)
class RedactionState:
    """What this plugin keeps on ``ex.state["redaction"]``: counts per kind, never values
    (except in the vault, which lives only as long as the exchange)."""

    found: Counter[str] = field(default_factory=Counter)
    vault: Vault | None = None
    stream: StreamRestorer | None = None


class PIIRule:
    """The ``pii`` options, compiled: which exchanges they cover and the scanner to run."""

    def __init__(self, config: PIIConfig) -> None:
        self.mode = config.mode
        detectors: list[Detector] = detectors_for(list(config.kinds))
        detectors += [custom_detector(c.name, c.pattern) for c in config.custom]
        self.scanner = Scanner(detectors)
        self.models = frozenset(config.models)
        self.keys = frozenset(config.keys)

    def covers(self, ex: Exchange) -> bool:
        if self.models and ex.model not in self.models:
            return False
        if self.keys:
            return ex.identity is not None and ex.identity.key_id in self.keys
        return True


class RedactionPlugin(Plugin):
    """Masks secrets in logs; masks, pseudonymises or blocks PII in requests."""

    name = "redaction"
    Config = RedactionConfig
    check_config = staticmethod(check_config)

    def __init__(self, config: RedactionConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.rule = PIIRule(config.pii) if config.pii is not None else None
        self._ip_key = _ip_hash_key(gateway)
        self._filter: Installed | None = None
        if self.rule is None:
            self.on_request = None  # type: ignore[assignment]
        if self.rule is None or self.rule.mode != "pseudonymise":
            # The pipeline only calls callable hooks: nothing to restore, nothing to pay.
            self.on_response = None  # type: ignore[assignment]
            self.on_chunk = None  # type: ignore[assignment]

    async def start(self) -> None:
        if self.config.log_filter:
            self._filter = install_filter()

    async def stop(self) -> None:
        remove_filter(self._filter)
        self._filter = None

    async def on_request(self, ex: Exchange) -> None:
        rule = self.rule
        if rule is None or not rule.covers(ex):
            return
        state = RedactionState()
        if rule.mode == "block":
            _find_all(rule.scanner, ex, state)
            if state.found:
                raise pii_refused(sorted(state.found))
            return
        vault = Vault() if rule.mode == "pseudonymise" else None
        _replace_all(rule.scanner, ex, state, vault)
        if state.found:
            ex.flags.add("pii_masked")
            if vault:
                state.vault, state.stream = vault, StreamRestorer(vault)
            ex.state[self.name] = state

    async def on_response(self, ex: Exchange) -> None:
        state = ex.state.get(self.name)
        if not isinstance(state, RedactionState) or not state.vault or ex.response is None \
                or ex.operation == "embeddings":  # vectors hold no text to restore
            return
        if ex.response_raw is not None and not PLACEHOLDER_BYTES.search(ex.response_raw):
            return  # the model did not repeat any placeholder: relay the bytes untouched
        if restore_values(state.vault, ex.response):
            ex.response_raw = None

    async def on_chunk(self, ex: Exchange, event: Event) -> None:
        state = ex.state.get(self.name)
        if isinstance(state, RedactionState) and state.stream is not None:
            state.stream.restore_event(ex.shape, event)

    async def on_log(self, ex: Exchange, record: dict[str, Any]) -> None:
        ip = record.get("client_ip")
        if self.config.client_ip == "drop":
            record.pop("client_ip", None)
        elif self.config.client_ip == "hash" and ip:
            record["client_ip"] = self.hash_ip(ip)
        scrub(record)

    def hash_ip(self, ip: str) -> str:
        """A keyed hash of ``ip``: the same IP gives the same value, which cannot be reversed
        by hashing all 2^32 IPv4 addresses without the key."""
        return "ip_" + hmac.new(self._ip_key, ip.encode(), hashlib.sha256).hexdigest()[:16]


def pii_refused(kinds: list[str]) -> GatewayError:
    """400 naming the kinds found, never the values."""
    return GatewayError(
        400, "invalid_request_error",
        f"The request contains personal data ({', '.join(kinds)}) that this gateway does not "
        f"send to models. Remove it and try again.", code="pii_detected")


def _find_all(scanner: Scanner, ex: Exchange, state: RedactionState) -> None:
    def count(text: str) -> str:
        for _, _, detector in scanner.find(text):
            state.found[detector.kind] += 1
        return text

    rewrite_request(ex.shape, ex.body, count)


def _replace_all(scanner: Scanner, ex: Exchange, state: RedactionState,
                 vault: Vault | None) -> None:
    def replacement(detector: Detector, value: str) -> str:
        state.found[detector.kind] += 1
        if vault is None:
            return f"[{detector.label}]"
        return vault.placeholder(detector.label, value)

    rewrite_request(ex.shape, ex.body, lambda text: scanner.replace(text, replacement)[0])


def _ip_hash_key(gateway: Any) -> bytes:
    # Derived from the pepper, so hashes are stable across restarts and workers without using
    # the pepper itself for a second purpose; without a pepper, stable for this process only.
    config = getattr(gateway, "config", None)
    pepper = getattr(getattr(config, "security", None), "key_pepper", "") or ""
    if not pepper:
        return secrets.token_bytes(32)
    return hmac.new(pepper.encode(), b"onyproxy redaction client_ip", hashlib.sha256).digest()
