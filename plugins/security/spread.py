"""One key used from many client addresses at once: the sign of a key that leaked.

Per key, an ordered map of the addresses seen within ``window_s``, each with the time it was
last seen, oldest first. A request moves its address to the end and drops addresses that
fell out of the window from the front (amortised O(1)). More than ``max_ips`` addresses left
is a finding; the map never holds more than ``max_ips + 1`` of them, so memory per key is
bounded whatever an attacker does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from plugins.security.config import ManyIpsConfig
from plugins.security.findings import Finding


class SpreadDetector:
    """Distinct client addresses per key, bounded to the ``max_keys`` most recent keys."""

    def __init__(self, config: ManyIpsConfig, clock: Callable[[], float],
                 max_keys: int = 100_000) -> None:
        self.config = config
        self._clock = clock
        self._max = max_keys
        self._keys: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def seen(self, key_id: str, client: str) -> Finding | None:
        """``key_id`` was used from ``client`` now; a finding when too many addresses use it."""
        now = self._clock()
        clients = self._clients(key_id)
        clients[client] = now
        clients.move_to_end(client)
        window = self.config.window_s
        while clients and now - next(iter(clients.values())) >= window:
            clients.popitem(last=False)
        if len(clients) <= self.config.max_ips:
            return None
        count = len(clients)
        clients.popitem(last=False)  # keep the bound; the cooldown stops repeated reports
        return Finding(
            kind="many_ips", key_id=key_id,
            reason=f"used from {count} client addresses within {window:g} s (more than "
                   f"{self.config.max_ips})",
            evidence={"distinct_ips": count, "max_ips": self.config.max_ips,
                      "window_s": window})

    def _clients(self, key_id: str) -> OrderedDict[str, float]:
        clients = self._keys.get(key_id)
        if clients is None:
            clients = self._keys[key_id] = OrderedDict()
            if len(self._keys) > self._max:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key_id)
        return clients
