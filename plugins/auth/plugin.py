"""Auth: who is calling, from the API key the client's SDK sends.

``on_request`` reads the key (see :mod:`.credentials`), hashes it with the gateway's pepper and
looks the hash up, through a short-lived per-process cache (see :mod:`.cache`) so that steady
traffic costs no database round-trip. A missing, unknown, revoked, suspended or expired key, or
a key of a suspended or deleted account, is a 401 with one and the same message, so the answer
tells a guesser nothing. A key limited to some models gets a 403 naming the model for any other.
Wrong keys from one address or with one key prefix are slowed, then blocked with 429 (the core's
:mod:`onyproxy.failure_guard`, which this plugin configures and which the admin API and the
dashboard share); a valid key always gets through. Its ``trusted_proxies`` tell the core which
forwarded hop is the client: ``ex.client_ip`` is that address for every plugin (rate limits
per ``ip``, security detectors, usage events, the access log).

When the store cannot be reached, keys verified within ``stale_ttl_s`` keep working and any
other key gets a 503 (not a 401: the key may well be valid); ``/readyz`` reports the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from onyproxy.client_address import parse_networks
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange, Identity
from onyproxy.failure_guard import FailurePolicy, too_many_failures
from onyproxy.keys import hash_key, key_opens, looks_like_key
from onyproxy.pipeline import Plugin
from onyproxy.single_flight import SingleFlight
from onyproxy.storage import ApiKey, StorageError
from plugins.auth.cache import KeyCache, Lookup
from plugins.auth.config import AuthConfig
from plugins.auth.credentials import read_key
from plugins.auth.last_used import LastUsed

log = logging.getLogger("onyproxy.auth")

INVALID_KEY = ("Invalid API key. Send a valid onyproxy key as 'Authorization: Bearer <key>' "
               "(or in the x-api-key or x-goog-api-key header).")
# After a store failure, lookups fail fast for this long instead of each waiting for the
# driver's own timeout (seconds on MongoDB), so an outage does not pile up requests.
OUTAGE_BACKOFF_S = 1.0
LIMIT_FIELDS = ("rpm", "tpm", "concurrent", "budget_usd")


def unauthorized() -> GatewayError:
    """The one 401 for every key problem."""
    return GatewayError(401, "authentication_error", INVALID_KEY, code="invalid_api_key")


class AuthPlugin(Plugin):
    """Sets ``ex.identity`` from the caller's API key, or refuses the request."""

    name = "auth"
    Config = AuthConfig

    def __init__(self, config: AuthConfig, gateway: Any,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        super().__init__(config, gateway)
        self.pepper = gateway.config.security.key_pepper
        if not self.pepper:
            raise ValueError("the auth plugin needs security.key_pepper (resolved at start)")
        self._clock = clock
        self._sleep = sleep
        self.cache = KeyCache(config.cache_ttl_s, config.negative_ttl_s, config.stale_ttl_s,
                              clock)
        failures = config.failures
        self.failures = gateway.failure_guard
        self.failures.configure(FailurePolicy(failures.max, failures.window_s, failures.block_s,
                                              failures.delay_s),
                                parse_networks(config.trusted_proxies), clock, sleep)
        self.last_used = LastUsed(lambda: self.gateway.store, config.last_used_interval_s)
        self._loading: SingleFlight[str, Lookup] = SingleFlight()  # one store read per hash
        self._store_down_until = 0.0

    async def start(self) -> None:
        self.last_used.start()

    async def stop(self) -> None:
        await self.last_used.stop()

    def forget_keys(self) -> None:
        """Drop every cached lookup (the admin API calls this after it changed keys or
        accounts, so this worker applies the change at once; others within ``cache_ttl_s``)."""
        self.cache.clear()

    async def on_request(self, ex: Exchange) -> None:
        """Authenticate the caller and check the model against the key's allow-list."""
        address = ex.client_ip or "unknown"  # trusted proxies resolved by the core
        secret = read_key(ex.headers, ex.query)
        if secret is None:
            if (wait := self.failures.blocked_for(address)) > 0:
                raise self._blocked(wait)
            raise unauthorized()  # no key is a client bug, not a guess: not counted
        lookup = await self._verify(secret)
        if lookup is None:  # a block refuses only keys that fail: a valid one gets through
            refusal = await self.failures.failed(address, secret)
            if refusal is not None:
                raise self._blocked(0, refusal)
            raise unauthorized()
        key, account = lookup.key, lookup.account
        assert key is not None and account is not None
        if ex.model and key.models is not None and ex.model not in key.models:
            raise GatewayError(
                403, "permission_error",
                f"This API key may not use the model '{ex.model}' (allowed: "
                f"{', '.join(key.models)}).", param="model", code="model_not_allowed")
        if ex.listing is not None and key.models is not None:
            ex.listing = {m: t for m, t in ex.listing.items() if m in key.models}
        ex.identity = Identity(account_id=account.id, key_id=key.id, role=account.role,
                               limits=_limits(key), allowed_models=key.models,
                               allowed_regions=allowed_regions(key.regions, account.regions))
        self.last_used.note(key.id)

    async def _verify(self, secret: str) -> Lookup | None:
        """The lookup of a usable key for ``secret``, or ``None`` when it is not one."""
        if not looks_like_key(secret):
            return None  # never hashed or looked up: junk costs nothing
        key_hash = hash_key(secret, self.pepper)
        lookup = await self._lookup(key_hash)
        return lookup if key_opens(lookup.key, lookup.account, key_hash) else None

    async def _lookup(self, key_hash: str) -> Lookup:
        cached = self.cache.fresh(key_hash)
        if cached is not None:
            return cached
        try:
            return await self._loading.run(key_hash, lambda: self._load(key_hash))
        except StorageError:
            stale = self.cache.stale(key_hash)
            if stale is not None:
                return stale
            raise GatewayError(503, "api_error",
                               "The gateway cannot verify API keys right now; try again "
                               "shortly.", code="auth_unavailable",
                               headers={"retry-after": "5"}) from None

    async def _load(self, key_hash: str) -> Lookup:
        if self._clock() < self._store_down_until:
            raise StorageError("the store failed a moment ago")
        store = self.gateway.store
        try:
            key: ApiKey | None = await store.get_key_by_hash(key_hash)
            account = await store.get_account(key.account_id) if key is not None else None
        except StorageError:
            self._store_down_until = self._clock() + OUTAGE_BACKOFF_S
            raise
        return self.cache.put(key_hash, key, account)

    def _blocked(self, wait: float, refusal: GatewayError | None = None) -> GatewayError:
        metrics = self.gateway.metrics
        if metrics is not None and hasattr(metrics, "ratelimited"):
            # Not a 401, so the core does not count it as an auth failure; nor is it the
            # ratelimit plugin's rate_limit_exceeded. Counted here, once, as an IP limit.
            metrics.ratelimited("ip")
        return refusal or too_many_failures(wait)


def allowed_regions(key: list[str] | None, account: list[str] | None) -> list[str] | None:
    """Regions both the key and its account allow (``None``: any); the residency plugin
    enforces them."""
    if key is None or account is None:
        return key if account is None else list(account)
    return [region for region in key if region in account]


def _limits(key: ApiKey) -> dict[str, Any]:
    """The key's own limits, for the ratelimit and budget plugins (unset ones left out)."""
    return {name: value for name in LIMIT_FIELDS
            if (value := getattr(key, name)) is not None}
