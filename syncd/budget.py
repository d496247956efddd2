"""Request budgets per vendor account.

Zendesk's limit is per *account* and shared with every other integration, so the
daemon paces itself below a configured requests-per-minute instead of waiting
for 429s. A token bucket shared by all worker threads of the process; with
several replicas each takes ``rpm / replicas`` (see the runtime).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Budget:
    """Token bucket: ``per_minute`` tokens a minute, at most ``burst`` saved up.

    A small burst keeps the long-run rate at the budget while letting a single
    reconcile's few calls go out back to back.
    """

    per_minute: float
    burst: float = 5.0
    _tokens: float = field(default=0.0, init=False)
    _stamp: float = field(default_factory=time.monotonic, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    used: int = field(default=0, init=False)
    waited: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self._tokens = min(self.burst, 1.0)

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        with self._lock:
            now = time.monotonic()
            self._refill(now)
            self._tokens -= 1.0
            self.used += 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            self.waited += wait
            return wait

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)

    def pause(self, seconds: float) -> None:
        """A vendor said 429 for the whole account: spend the next ``seconds`` of tokens."""
        with self._lock:
            self._refill(time.monotonic())
            self._tokens = min(self._tokens, 0.0) - seconds * self.rate


class Unlimited:
    """Budget for tests and vendors configured without a limit."""

    used = 0
    waited = 0.0

    def acquire(self) -> None:
        self.used += 1

    def pause(self, seconds: float) -> None:
        pass
