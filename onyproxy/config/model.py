"""The gateway's configuration, one frozen dataclass per section (DESIGN.md §2).

Defaults live here and nowhere else. Field ``metadata`` carries a ``doc`` string and an optional
``check`` returning an error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from onyproxy.provider_features import check_feature_names


def _between(low: float, high: float):
    def check(value: float) -> str | None:
        if not low <= value <= high:
            return f"expected a value from {low:g} to {high:g}, got {value}"
        return None
    return check


def _positive(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return f"expected an http(s) URL, got {value!r}"


def _storage_url(value: str) -> str | None:
    if value.startswith(("sqlite://", "mongodb://", "mongodb+srv://")):
        return None
    return f"expected sqlite:///path or mongodb://host/db, got {value!r}"


@dataclass(frozen=True)
class TLSConfig:
    """HTTPS for the client side; TLS 1.3 is the minimum unless lowered on purpose."""

    cert_file: str = field(metadata={"doc": "PEM certificate chain"})
    key_file: str = field(metadata={"doc": "PEM private key"})
    min_version: Literal["1.2", "1.3"] = "1.3"


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the gateway listens."""

    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata={"check": _between(1, 65535)})
    workers: int = field(default=1, metadata={"check": _between(1, 256),
                                               "doc": "processes sharing the port"})
    max_body_mb: float = field(default=16, metadata={"check": _positive})
    tls: TLSConfig | None = None
    behind_https_proxy: bool = field(default=False, metadata={
        "doc": "HTTPS ends at a proxy or load balancer in front of the gateway: the "
               "dashboard's cookies are marked Secure (with server.tls they always are)"})
    header_timeout_s: float = field(default=10.0, metadata={
        "check": _positive, "doc": "a request's headers must be complete within this time"})
    body_timeout_s: float = field(default=60.0, metadata={
        "check": _positive,
        "doc": "a request body that stops arriving for this long ends the request"})
    keepalive_timeout_s: float = field(default=75.0, metadata={
        "check": _positive, "doc": "an idle keep-alive connection is closed after this long"})
    max_connections: int = field(default=10000, metadata={
        "check": _between(1, 10_000_000),
        "doc": "open connections per worker; one more is answered 503 and closed"})
    drain_s: float = field(default=30.0, metadata={
        "check": _between(0, 3600),
        "doc": "on SIGTERM, how long requests and streams in flight may finish before they "
               "are cut"})


@dataclass(frozen=True)
class StorageConfig:
    """Where metadata (accounts, keys, usage) lives."""

    url: str = field(default="sqlite:///./data/onyproxy.db", metadata={"check": _storage_url})


@dataclass(frozen=True)
class SecurityConfig:
    """Secrets of the gateway itself; empty means "not configured"."""

    key_pepper: str = field(default="", metadata={"doc": "HMAC pepper for stored API keys"})
    jwt_secret: str = field(default="", metadata={"doc": "HS256 secret for admin JWTs"})
    jwt_max_lifetime_s: int = field(default=86400, metadata={
        "doc": "longest an admin JWT may live: exp - iat (or exp - now without iat)",
        "check": _between(60, 31_536_000)})
    jwt_issuer: str = field(default="", metadata={"doc": "when set, admin JWTs need this iss"})
    jwt_audience: str = field(default="", metadata={"doc": "when set, admin JWTs need this aud"})
    audit_key: str = field(default="", metadata={
        "doc": "HMAC key of the audit log's hash chain (empty: derived from the key pepper)"})
    audit_anchor_file: str = field(default="", metadata={
        "doc": "file the audit chain's head is appended to daily (empty: audit-anchor.log "
               "next to the SQLite database; none with MongoDB)"})


@dataclass(frozen=True)
class ProviderConfig:
    """One upstream API endpoint and its credentials."""

    type: Literal["openai", "anthropic", "gemini", "mock"]
    base_url: str | None = field(default=None, metadata={"check": _http_url})
    api_key: str = ""
    region: str | None = field(default=None, metadata={"doc": "e.g. tr, eu, us"})
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = field(default=None, metadata={"check": _positive})
    max_connections: int = field(default=256, metadata={"check": _between(1, 100000)})
    allowed_betas: list[str] = field(default_factory=list, metadata={
        "doc": "anthropic-beta values an Anthropic client may pass on to this provider; any "
               "other value is refused with a 400 naming it"})


@dataclass(frozen=True)
class PriceConfig:
    """USD per 1M tokens."""

    input: Decimal | None = None
    cached_input: Decimal | None = None
    output: Decimal | None = None


@dataclass(frozen=True)
class TargetConfig:
    """One place a model can be served from."""

    provider: str
    model: str
    weight: float = field(default=1.0, metadata={"check": _positive})
    timeout_s: float | None = field(default=None, metadata={"check": _positive})
    price: PriceConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """A model name clients ask for, and the targets that serve it."""

    targets: list[TargetConfig]
    strategy: Literal["fallback", "round_robin", "weighted", "least_latency"] = "fallback"
    description: str = ""
    allow: list[str] = field(default_factory=list, metadata={
        "check": check_feature_names,
        "doc": "provider features clients may turn on for this model (web_search, store, "
               "service_tier ...; see onyproxy.provider_features.FEATURES); all are off by "
               "default"})


@dataclass(frozen=True)
class RetentionConfig:
    """How long each kind of record is kept (DESIGN.md §4)."""

    usage_events_days: int = field(default=90, metadata={"check": _between(1, 36500)})
    deleted_accounts_days: int = field(default=30, metadata={"check": _between(0, 36500)})
    billing_years: int = field(default=10, metadata={"check": _between(1, 100)})
    job_interval_s: float = field(default=3600.0, metadata={
        "check": _between(0, 7 * 86400),
        "doc": "how often the gateway enforces these (one process among all sharing the "
               "store does it); 0 leaves it to 'onyproxy retention run' from cron"})


@dataclass(frozen=True)
class SMTPConfig:
    """The mail server privacy notices go out through; an empty host sends nothing."""

    host: str = ""
    port: int = field(default=587, metadata={"check": _between(1, 65535)})
    starttls: bool = field(default=True, metadata={
        "doc": "upgrade to TLS before signing in (port 587); false only for a local relay"})
    username: str = ""
    password: str = field(default="", metadata={"doc": "use ${VAR}, never the value itself"})
    sender: str = field(default="", metadata={"key": "from", "doc": "the From: address"})
    timeout_s: float = field(default=10.0, metadata={"check": _positive})


@dataclass(frozen=True)
class PrivacyConfig:
    """Data-protection settings: the privacy policy in force and how notices are sent."""

    policy_version: str = field(default="", metadata={
        "doc": "the privacy-policy version accounts must accept; empty: not tracked"})
    policy_url: str = field(default="", metadata={"doc": "where the policy can be read"})
    controller: str = field(default="", metadata={
        "doc": "the data controller named in subject exports and notices"})
    smtp: SMTPConfig = field(default_factory=SMTPConfig)


@dataclass(frozen=True)
class LoggingConfig:
    """Process logging. Access log lines carry metadata only, never content."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True


@dataclass(frozen=True)
class MetricsConfig:
    """``GET /metrics`` for Prometheus; it is not behind the gateway's API keys."""

    token: str = field(default="", metadata={
        "doc": "when set, scrapes need 'Authorization: Bearer <token>'; when empty, keep the "
               "path internal (bind address, firewall)"})


@dataclass(frozen=True)
class PluginSpec:
    """A pipeline entry after its plugin was found and its options validated."""

    name: str
    plugin: type
    config: Any


@dataclass(frozen=True)
class GatewayConfig:
    """The whole, validated gateway configuration.

    ``pipeline`` holds the entries as written; ``plugins`` the same entries after each plugin was
    found and its options validated. ``source`` is the file it came from.
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    pipeline: list[dict[str, Any]] = field(default_factory=list)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    catalog: str | None = field(default=None, metadata={"doc": "path of models.yaml"})
    plugins: list[PluginSpec] = field(default_factory=list, metadata={"derived": True})
    source: str = field(default="<memory>", metadata={"derived": True})
