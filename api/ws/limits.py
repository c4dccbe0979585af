"""Abuse limits of the WebSocket endpoint: connections per process and per client address, and a
message-rate budget per connection. A client past a limit is closed with 1008 and a reason."""

from __future__ import annotations

import time
from collections import Counter

LIMIT_CLOSE = 1008


class ConnectionLimits:
    """Counts the open connections of one process, in total and by client address."""

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self._max_total = max_total
        self._max_per_client = max_per_client
        self._by_client: Counter[str] = Counter()
        self.total = 0

    def admit(self, client: str) -> str | None:
        """Count a new connection from ``client`` (its address) and return None, or return why it is
        refused (then nothing is counted). Every admitted connection must be ``release``d."""
        if self.total >= self._max_total:
            return f"too many connections to this server (limit {self._max_total})"
        if self._by_client[client] >= self._max_per_client:
            return f"too many connections from your address (limit {self._max_per_client})"
        self.total += 1
        self._by_client[client] += 1
        return None

    def release(self, client: str) -> None:
        """Forget one admitted connection of ``client``."""
        self.total -= 1
        self._by_client[client] -= 1
        if self._by_client[client] <= 0:
            del self._by_client[client]


class MessageRate:
    """A token bucket: ``rate_per_s`` messages a second on average, bursts of up to ``2 * rate_per_s``."""

    def __init__(self, rate_per_s: float) -> None:
        self._rate = rate_per_s
        self._capacity = max(2.0 * rate_per_s, 1.0)
        self._tokens = self._capacity
        self._at = time.monotonic()

    def allow(self) -> bool:
        """True (and one token spent) when one more message is within the budget now."""
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
