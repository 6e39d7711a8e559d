"""Options of the ``security`` plugin, and the check that needs the whole gateway config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from onyproxy.config.model import GatewayConfig

# ``off`` disables a detector; ``suspend`` also suspends the key (key detectors only).
Action = Literal["log", "suspend", "off"]


def _positive(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _factor(value: float) -> str | None:
    return None if value > 1 else f"expected a factor above 1, got {value}"


@dataclass(frozen=True)
class SpikeConfig:
    """A key's requests or tokens per minute far above its own usual rate."""

    action: Action = field(default="log", metadata={
        "doc": "log: metric, log line and stored event; suspend: also suspend the key; off"})
    factor: float = field(default=10.0, metadata={
        "check": _factor, "doc": "a spike is more than factor x the key's baseline per minute"})
    min_requests_per_minute: int = field(default=120, metadata={
        "check": _positive,
        "doc": "floor: fewer requests per minute are never a spike (new and idle keys)"})
    min_tokens_per_minute: int = field(default=500_000, metadata={
        "check": _positive, "doc": "floor for tokens (input + output) per minute"})
    baseline_minutes: int = field(default=60, metadata={
        "check": _positive,
        "doc": "the baseline is an average over about this many of the key's active minutes "
               "(minutes without traffic are skipped, so a quiet night is not the norm)"})


@dataclass(frozen=True)
class ManyIpsConfig:
    """One key used from many client addresses at once (a leaked key)."""

    action: Action = field(default="log", metadata={
        "doc": "log: metric, log line and stored event; suspend: also suspend the key; off"})
    max_ips: int = field(default=20, metadata={
        "check": _positive,
        "doc": "more distinct client addresses than this within window_s raise an event"})
    window_s: float = field(default=300.0, metadata={
        "check": _positive, "doc": "how long an address counts after its last request"})


@dataclass(frozen=True)
class AuthFailuresConfig:
    """Bursts of failed authentication (401) from one client address."""

    # No suspend: an address has no key to suspend (and the auth plugin already blocks it).
    action: Literal["log", "off"] = field(default="log", metadata={
        "doc": "log: metric, log line and stored event; off"})
    threshold: int = field(default=10, metadata={
        "check": _positive, "doc": "failures within window_s that raise an event"})
    window_s: float = field(default=60.0, metadata={
        "check": _positive, "doc": "the sliding window failures are counted in"})


@dataclass(frozen=True)
class SecurityConfig:
    """Options of the ``security`` plugin (per gateway process; see the plugin docs)."""

    usage_spike: SpikeConfig = field(default_factory=SpikeConfig, metadata={
        "doc": "per-key usage spikes against the key's own baseline"})
    many_ips: ManyIpsConfig = field(default_factory=ManyIpsConfig, metadata={
        "doc": "a key used from many client addresses at once"})
    auth_failures: AuthFailuresConfig = field(default_factory=AuthFailuresConfig, metadata={
        "doc": "bursts of failed authentication from one client address"})
    cooldown_s: float = field(default=600.0, metadata={
        "check": _positive,
        "doc": "after an event, the same detector stays quiet about the same key or address "
               "this long (one event per incident, not one per request)"})
    client_ip: Literal["hash", "keep"] = field(default="hash", metadata={
        "doc": "how events name a client address: hash (keyed with the pepper, so it can be "
               "correlated but not reversed) or keep (the address itself, e.g. for fail2ban)"})
    max_tracked: int = field(default=100_000, metadata={
        "check": _positive,
        "doc": "keys and addresses each detector remembers; the least recent are forgotten"})


def check_config(config: SecurityConfig, gateway: GatewayConfig) -> Iterator[tuple[str, str]]:
    """The plugin watches what the auth plugin decides, so auth must come before it."""
    names = [entry.get("name") for entry in gateway.pipeline if isinstance(entry, dict)]
    mine = names.index("security") if "security" in names else len(names)
    if "auth" not in names[:mine]:
        yield "name", ("the security plugin watches API keys and failed sign-ins: put "
                       "{name: auth} before it in the pipeline")
