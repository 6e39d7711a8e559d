"""Security monitoring: fraud and abuse signals from live traffic, and automatic suspension.

Three detectors, each with ``action: log | suspend | off`` (``auth_failures``: ``log | off``):

- ``usage_spike`` (:mod:`.spike`): a key's requests or tokens per minute above
  ``max(floor, factor x its own baseline)``;
- ``many_ips`` (:mod:`.spread`): a key used from more than ``max_ips`` client addresses
  within ``window_s``;
- ``auth_failures`` (:mod:`.bursts`): ``threshold`` failed authentications from one address
  within ``window_s``.

A finding, once per ``cooldown_s`` per detector and key (or address), becomes a security
event: ``onyproxy_security_events_total{kind}``, one JSON line on the ``onyproxy.security``
logger (event id, kind, action, key and account id or the client, reason, evidence: numbers
only, never content), and a record in the store (``Store.list_security_events``). With
``action: suspend`` the key is also suspended (:mod:`.writer`): it then gets the same 401 as
any unusable key, on this worker at once and on every other within the auth plugin's
``cache_ttl_s``; ``onyproxy keys reinstate KEY_ID`` or ``POST /admin/keys/{id}/reinstate``
lifts it. ``onyproxy subject object`` contests the stored event (its id, key and time go on
the objection; the audit entry, actor ``system:security``, says the same). Store writes happen
in a background task; the hooks do O(1) work in memory. Stored events are personal data of the
key's holder: they are in the person's export, lose their client address on erasure, and are
deleted after ``retention.usage_events_days`` or with the purged account (docs/privacy.md).

Client addresses are personal data. The detectors hold them in memory only; events name an
address by a keyed hash (HMAC-SHA256 under a key derived from the pepper, 16 hex characters):
the same address gives the same hash on every worker and after restarts, so incidents can be
correlated, while the 2^32 IPv4 addresses cannot be tried without the pepper. ``client_ip:
keep`` writes the address itself (for tools such as fail2ban). The address is the one the auth
plugin counted failures against (it honours auth's ``trusted_proxies``).

State is per gateway process, in memory: no network round-trip on the request path, nothing
to run. The price: with ``server.workers: N`` (or several machines) each process sees only
its share of the traffic. Ratios (``factor``) are unaffected, but absolute numbers are per
process: with connections spread evenly, a key must reach about N x ``min_requests_per_minute``
in total, and be seen from ``max_ips`` addresses by one process, before that process reports
it; divide floors and ``max_ips`` by N to keep gateway-wide thresholds. A shared Redis state
would see gateway-wide numbers at the cost of a round-trip per request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from onyproxy.exchange import Exchange
from onyproxy.pipeline import Plugin
from onyproxy.storage import SecurityEvent, new_id, utcnow
from plugins.security.bursts import BurstDetector
from plugins.security.config import SecurityConfig, check_config
from plugins.security.findings import Cooldown, Finding
from plugins.security.spike import SpikeDetector
from plugins.security.spread import SpreadDetector
from plugins.security.writer import EventWriter

log = logging.getLogger("onyproxy.security")

BLOCKED = "too_many_auth_failures"  # the auth plugin's 429 for an address it blocked


class SecurityPlugin(Plugin):
    """Runs the detectors on every exchange and reports what they find (module docs)."""

    name = "security"
    Config = SecurityConfig
    check_config = staticmethod(check_config)

    def __init__(self, config: SecurityConfig, gateway: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config, gateway)
        tracked = config.max_tracked
        self.spikes = None if config.usage_spike.action == "off" else \
            SpikeDetector(config.usage_spike, clock, tracked)
        self.spread = None if config.many_ips.action == "off" else \
            SpreadDetector(config.many_ips, clock, tracked)
        self.bursts = None if config.auth_failures.action == "off" else \
            BurstDetector(config.auth_failures, clock, tracked)
        self.cooldown = Cooldown(config.cooldown_s, clock, tracked)
        self.writer = EventWriter(lambda: self.gateway.store, self._forget_keys)
        self._hash_key = client_hash_key(gateway.config.security.key_pepper)

    async def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()

    async def on_request(self, ex: Exchange) -> None:
        """Count the request against its key (auth ran before: the caller is known)."""
        identity = ex.identity
        if identity is None or identity.key_id is None:
            return
        if self.spikes is not None:
            self._report(ex, self.spikes.request(identity.key_id))
        if self.spread is not None:
            self._report(ex, self.spread.seen(identity.key_id, (ex.client_ip or "unknown")))

    async def on_complete(self, ex: Exchange) -> None:
        """Failed authentication counts against the address; tokens against the key."""
        if auth_failed(ex):
            if self.bursts is not None:
                self._report(ex, self.bursts.failed(ex.client_ip or "unknown"))
            return
        identity = ex.identity
        if self.spikes is not None and identity is not None and identity.key_id is not None:
            self._report(ex, self.spikes.tokens(identity.key_id, ex.usage.total_tokens))

    def _report(self, ex: Exchange, finding: Finding | None) -> None:
        if finding is None or not self.cooldown.admit(finding):
            return
        event = self._event(ex, finding)
        metrics = self.gateway.metrics
        if metrics is not None and hasattr(metrics, "security_event"):
            metrics.security_event(event.kind)
        log.warning("security event: %s", event.kind, extra={"fields": event_fields(event)})
        self.writer.submit(event)

    def _event(self, ex: Exchange, finding: Finding) -> SecurityEvent:
        wanted = getattr(self.config, finding.kind).action
        action = "suspend" if wanted == "suspend" and finding.key_id is not None else "log"
        account = ex.identity.account_id if ex.identity is not None and finding.key_id else None
        return SecurityEvent(
            id=new_id("sec"), kind=finding.kind, at=utcnow(), action=action,
            key_id=finding.key_id, account_id=account, client=self._client(finding.client),
            reason=finding.reason, evidence=finding.evidence)

    def _client(self, address: str | None) -> str | None:
        if address is None or self.config.client_ip == "keep":
            return address
        return hmac.new(self._hash_key, address.encode(), hashlib.sha256).hexdigest()[:16]

    def _forget_keys(self) -> None:
        """Make this worker's auth plugin re-read keys, so a suspension applies at once."""
        forget = getattr(self.gateway.pipeline.get("auth"), "forget_keys", None)
        if forget is not None:
            forget()


def client_hash_key(pepper: str | None) -> bytes:
    """The key client addresses are hashed with, derived from the pepper (its own label, so
    these hashes match no other use of it). Without a pepper (hand-built test gateways) a
    random key: hashes then hold within this process only."""
    secret = pepper.encode() if pepper else secrets.token_bytes(32)
    return hmac.new(secret, b"onyproxy security client_ip", hashlib.sha256).digest()



def auth_failed(ex: Exchange) -> bool:
    """A 401, or the auth plugin's 429 for an address it blocked after failures."""
    error = ex.error
    if error is None:
        return False
    return ex.status == 401 or (ex.status == 429 and error.code == BLOCKED)


def event_fields(event: SecurityEvent) -> dict[str, Any]:
    """The JSON fields of an event's log line: ids, kind, numbers; never content."""
    return {"event_id": event.id, "kind": event.kind, "action": event.action,
            "key_id": event.key_id, "account_id": event.account_id, "client": event.client,
            "reason": event.reason, "evidence": event.evidence}
