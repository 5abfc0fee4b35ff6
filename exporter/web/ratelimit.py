"""exporter-toolkit's rate_limit: a token bucket in front of every request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class RateLimit:
    interval_seconds: float  # one request per interval on average...
    burst: int  # ...with up to this many at once


class TokenBucket:
    """On average one request per interval, up to burst at once; the rest get 429."""

    def __init__(self, limit: RateLimit) -> None:
        self._per_second = 1.0 / limit.interval_seconds
        self._capacity = float(limit.burst)
        self._tokens = float(limit.burst)
        self._then = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._then) * self._per_second)
            self._then = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
