"""Bursts of failed authentication from one client address (credential stuffing, a
script retrying a revoked key).

The auth plugin already slows and then blocks such an address; this detector turns the burst
into a security event. It counts exchanges answered 401, and the 429s the auth plugin gives
an address it blocked (``too_many_auth_failures``): once blocked an address gets no more 401s,
and its persistence is part of the picture. Per address a deque of failure times, at most
``threshold`` long; ``threshold`` failures within ``window_s`` are a finding.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable

from plugins.security.config import AuthFailuresConfig
from plugins.security.findings import Finding


class BurstDetector:
    """Failure times per address, bounded to the ``max_addresses`` most recent ones."""

    def __init__(self, config: AuthFailuresConfig, clock: Callable[[], float],
                 max_addresses: int = 100_000) -> None:
        self.config = config
        self._clock = clock
        self._max = max_addresses
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()

    def failed(self, client: str) -> Finding | None:
        """A failed authentication from ``client`` now; a finding when that makes a burst."""
        now = self._clock()
        times = self._times(client)
        window = self.config.window_s
        while times and now - times[0] >= window:
            times.popleft()
        times.append(now)
        if len(times) < self.config.threshold:
            return None
        count = len(times)
        times.clear()  # the next burst starts counting afresh
        return Finding(
            kind="auth_failures", client=client,
            reason=f"{count} failed authentications within {window:g} s",
            evidence={"failures": count, "threshold": self.config.threshold,
                      "window_s": window})

    def _times(self, client: str) -> deque[float]:
        times = self._addresses.get(client)
        if times is None:
            times = self._addresses[client] = deque(maxlen=self.config.threshold)
            if len(self._addresses) > self._max:
                self._addresses.popitem(last=False)
        else:
            self._addresses.move_to_end(client)
        return times
