"""What a detector found, and the cooldown that makes one incident one event."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Finding:
    """One detection: which detector, about which key or client address, and the numbers.

    ``client`` is the address as the detector saw it; the plugin hashes it (or not, per
    ``client_ip``) before it goes anywhere. ``evidence`` holds numbers only, never content.
    """

    kind: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    key_id: str | None = None
    client: str | None = None

    @property
    def subject(self) -> str:
        return f"key:{self.key_id}" if self.key_id is not None else f"ip:{self.client}"


class Cooldown:
    """Remembers, per (kind, subject), until when further findings are not reported.

    Bounded: past ``max_entries`` the expired entries go first, then the oldest.
    """

    def __init__(self, seconds: float, clock: Callable[[], float],
                 max_entries: int = 100_000) -> None:
        self.seconds = seconds
        self._clock = clock
        self._max = max_entries
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()

    def admit(self, finding: Finding) -> bool:
        """True when ``finding`` is news (and start its cooldown); False while cooling down."""
        now = self._clock()
        key = (finding.kind, finding.subject)
        until = self._until.get(key)
        if until is not None and now < until:
            return False
        self._until[key] = now + self.seconds
        self._until.move_to_end(key)
        if len(self._until) > self._max:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        for key in [k for k, until in self._until.items() if until <= now]:
            del self._until[key]
        while len(self._until) > self._max:
            self._until.popitem(last=False)
