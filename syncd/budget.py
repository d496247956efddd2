"""Request budgets per vendor account.

Zendesk's limit is per *account* and shared with every other integration, so the
daemon paces itself below a configured requests-per-minute instead of waiting
for 429s. A token bucket shared by all worker threads of the process; with
several replicas each takes ``rpm / replicas`` (see the runtime).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Budget:
    """Token bucket: ``per_minute`` tokens a minute, at most ``burst`` saved up;
    and never more than ``per_minute`` calls in any ``window + slack`` seconds.

    A small burst keeps the long-run rate at the budget while letting a single
    reconcile's few calls go out back to back. A bucket alone allows
    ``per_minute + burst`` calls in some minute (the burst, then the full rate),
    and a vendor that counts a sliding minute (Zendesk: ``per_minute`` is the
    account's limit when syncd is its only integration) answers the extra calls
    429. So the times of the last ``per_minute`` calls are kept too, and a call is
    due no earlier than ``window + slack`` after the one ``per_minute`` calls
    before it. ``slack`` covers the calls reaching the vendor later than they
    left (thread wake-up, network): under a sustained backlog the rate is
    ``per_minute`` per ``window + slack`` seconds, 1.6 % under the budget.
    """

    per_minute: float
    burst: float = 5.0
    window: float = 60.0
    slack: float = 1.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _tokens: float = field(default=0.0, init=False)
    _stamp: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _sent: collections.deque = field(default_factory=collections.deque, init=False, repr=False)
    used: int = field(default=0, init=False)
    waited: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self._tokens = min(self.burst, 1.0)
        self._stamp = self.clock()
        # ``per_minute`` may be a replica's fraction of the account's: at most its whole part a window.
        self._sent = collections.deque(maxlen=max(1, math.floor(self.per_minute * self.window / 60.0)))

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        with self._lock:
            now = self.clock()
            self._refill(now)
            self._tokens -= 1.0
            self.used += 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            if len(self._sent) == self._sent.maxlen:
                # The window is full: due once its oldest call is window + slack old.
                extra = self._sent[0] + self.window + self.slack - (now + wait)
                if extra > 0:
                    # The bucket waits as long (no burst saved across it): later calls
                    # are due after this one, so the times kept stay in order.
                    wait += extra
                    self._tokens = -wait * self.rate
            self._sent.append(now + wait)
            self.waited += wait
            return wait

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)

    def pause(self, seconds: float) -> None:
        """A vendor said 429 for the whole account: spend the next ``seconds`` of tokens."""
        with self._lock:
            self._refill(self.clock())
            self._tokens = min(self._tokens, 0.0) - seconds * self.rate


class Unlimited:
    """Budget for tests and vendors configured without a limit."""

    used = 0
    waited = 0.0

    def acquire(self) -> None:
        self.used += 1

    def pause(self, seconds: float) -> None:
        pass
