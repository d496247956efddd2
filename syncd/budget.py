"""Request budgets per vendor account.

Zendesk's limit is per *account* and shared with every other integration, so the
daemon paces itself below a configured requests-per-minute instead of waiting
for 429s. A token bucket shared by all worker threads of the process; with
several replicas each takes ``rpm / replicas`` (see the runtime).

Two kinds of 429 reach a budget (docs/operations.md, "Rate limits"):

* **account-wide** (:meth:`Budget.pause`): a *gate* closes every call to the
  account until the Retry-After time has passed -- calls already waiting for a
  slot included -- and then one call goes out alone as a probe; the others follow
  once the probe was answered without a 429 (a 429 closes the gate again). So no
  request reaches the vendor before the time it named, not even one sent at the
  same instant as the one that drew the 429.
* **one ticket / issue** (:meth:`Budget.hold`): only calls for that target wait.

A reconcile holds its item's claim while it calls, so a caller may say how long it
is prepared to wait (``max_wait``); a longer wait raises :class:`WaitTooLong` with
the time the call could go out, *before* any slot is taken, and the worker gives
the item back with that due time instead of sleeping past its lease.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


_WAIT_LIMIT: contextvars.ContextVar[float | None] = contextvars.ContextVar("syncd_wait_limit", default=None)


@contextlib.contextmanager
def wait_limit(seconds: float) -> Iterator[None]:
    """Vendor calls made inside (on this thread) wait at most ``seconds`` for a budget
    slot, a gate, a hold or an in-call retry; a longer wait raises instead. The worker
    sets it around a reconcile: a claim must not be held asleep."""
    token = _WAIT_LIMIT.set(seconds)
    try:
        yield
    finally:
        _WAIT_LIMIT.reset(token)


def current_wait_limit() -> float | None:
    return _WAIT_LIMIT.get()


class WaitTooLong(Exception):
    """Waiting for the budget would take ``wait`` seconds (more than the caller's
    ``max_wait``); ``scope`` is ``account`` or the held target."""

    def __init__(self, wait: float, scope: str):
        self.wait, self.scope = wait, scope
        super().__init__(f"budget wait {wait:.1f}s ({scope})")


@dataclass(frozen=True)
class Permit:
    """What :meth:`Budget.acquire` hands out; give it back to :meth:`Budget.done`."""

    probe: bool = False


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
    # Account-wide gate (clock time before which nothing goes out) and probe state.
    _gate: float = field(default=0.0, init=False)
    _probing: bool = field(default=False, init=False)   # a 429 was seen and no call answered since
    _probe_out: bool = field(default=False, init=False)  # the probe call is in flight
    _holds: dict = field(default_factory=dict, init=False, repr=False)  # target -> clock time
    _changed: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)
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
            return self._reserve(self.clock())

    def _predict(self, now: float) -> float:
        """The wait :meth:`_reserve` would give now, without taking anything."""
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - 1.0
        wait = 0.0 if tokens >= 0 else -tokens / self.rate
        if len(self._sent) == self._sent.maxlen:
            wait = max(wait, self._sent[0] + self.window + self.slack - now)
        return wait

    def _reserve(self, now: float) -> float:
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

    def acquire(self, target: str | None = None, max_wait: float | None = None) -> Permit:
        """Wait for a slot, for the account's gate and for ``target``'s hold.

        With ``max_wait``, a wait longer than that raises :class:`WaitTooLong` (no slot
        taken when it is known up front; a gate closed while waiting raises too)."""
        with self._lock:
            now = self.clock()
            if max_wait is not None:
                held = self._held(target, now)
                if held > max_wait:
                    raise WaitTooLong(held, target or "account")
                ahead = max(self._predict(now), self._gate - now)
                if ahead > max_wait:
                    raise WaitTooLong(ahead, "account")
            started = now
            due = now + self._reserve(now)
            while True:
                now = self.clock()
                held_until = now + self._held(target, now)
                ready = max(due, self._gate, held_until)
                if ready <= now and not (self._probing and self._probe_out):
                    break
                if max_wait is not None and (ready - started > max_wait or now - started > max_wait):
                    # (the second: a probe has been in flight too long to wait for it)
                    scope = target if target is not None and held_until >= ready and held_until > now else "account"
                    raise WaitTooLong(max(ready - now, 1.0), scope)
                # A probe in flight: wake when it is answered (or after a short while, in
                # case its caller died without saying so).
                self._changed.wait(ready - now if ready > now else 0.5)
            probe = self._probing
            if probe:
                self._probe_out = True
            return Permit(probe=probe)

    def done(self, permit: Permit, limited: bool = False) -> None:
        """The call made under ``permit`` was answered; ``limited``: by an account 429
        (which :meth:`pause` has recorded). An answered probe opens the gate to all."""
        if not permit.probe:
            return
        with self._lock:
            self._probe_out = False
            if not limited:
                self._probing = False
            self._changed.notify_all()

    def pause(self, seconds: float) -> None:
        """A vendor said 429 for the whole account: nothing goes out for ``seconds``
        (calls already waiting included), then one probe; the bucket starts again
        from empty after the gate."""
        with self._lock:
            now = self.clock()
            self._refill(now)
            self._gate = max(self._gate, now + seconds)
            self._tokens = min(self._tokens, 0.0) - seconds * self.rate
            self._probing = True
            self._changed.notify_all()

    def close(self) -> None:
        """Nothing to give back (a :class:`~syncd.shared_budget.SharedBudget` gives back its unused calls)."""

    def hold(self, target: str, seconds: float) -> None:
        """A 429 for one ticket / issue: calls for ``target`` wait ``seconds``, others do not."""
        with self._lock:
            now = self.clock()
            self._holds[target] = max(self._holds.get(target, 0.0), now + seconds)
            if len(self._holds) > 1000:   # forget the holds that are over
                self._holds = {k: v for k, v in self._holds.items() if v > now}

    def held(self, target: str | None) -> float:
        """Seconds ``target`` must still wait (0 when not held)."""
        with self._lock:
            return self._held(target, self.clock())

    def _held(self, target: str | None, now: float) -> float:
        if target is None:
            return 0.0
        until = self._holds.get(target)
        if until is None:
            return 0.0
        if until <= now:
            del self._holds[target]
            return 0.0
        return until - now


class Unlimited:
    """Budget for tests and vendors configured without a limit."""

    used = 0
    waited = 0.0

    def acquire(self, target: str | None = None, max_wait: float | None = None) -> Permit:
        self.used += 1
        return Permit()

    def done(self, permit: Permit, limited: bool = False) -> None:
        pass

    def pause(self, seconds: float) -> None:
        pass

    def hold(self, target: str, seconds: float) -> None:
        pass

    def held(self, target: str | None) -> float:
        return 0.0
