"""One retry policy for every vendor call.

The decision is a pure function (:func:`decide`) of the error, the attempt number
and the time spent; :func:`call_with_retry` runs it with tenacity. Retries happen
*inside* a call only for short waits; a long ``Retry-After`` (or a per-issue
write limit) is raised to the worker, which defers that one item and keeps the
thread free for others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, TypeVar

from tenacity import RetryCallState, Retrying, stop_after_attempt

from .errors import Ambiguous, Conflict, RateLimited, VendorError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4          # inside one call
    base_delay: float = 0.2        # seconds; doubled per attempt, with jitter
    max_delay: float = 5.0         # a wait longer than this is handed to the worker instead
    total_budget: float = 20.0     # never spend longer than this inside one call


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float
    reason: str


def decide(error: BaseException, attempt: int, elapsed: float, policy: RetryPolicy,
           jitter: float = 0.0, idempotent: bool = True) -> RetryDecision:
    """Whether to retry ``error`` now, after ``attempt`` tries and ``elapsed`` seconds.

    ``jitter`` in [0, 1) spreads retries of many workers apart. A non-idempotent
    call (create, comment) is not retried after an :class:`Ambiguous` failure:
    it may have landed, and repeating it could write twice.
    """
    if not isinstance(error, VendorError) or not error.retryable:
        return RetryDecision(False, 0.0, "not retryable")
    if not idempotent and isinstance(error, Ambiguous):
        return RetryDecision(False, 0.0, "may have landed: recovery looks first")
    if isinstance(error, Conflict):
        # A 409 means "re-read and decide again": that is the worker's job.
        return RetryDecision(False, 0.0, "conflict: reconcile again")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, 0.0, "attempts exhausted")
    if isinstance(error, RateLimited):
        delay = max(error.retry_after, 0.0)
        if error.per_item or delay > policy.max_delay:
            return RetryDecision(False, delay, "rate limited: defer the item")
    else:
        delay = min(policy.base_delay * (2 ** (attempt - 1)) * (1.0 + jitter), policy.max_delay)
    if elapsed + delay > policy.total_budget:
        return RetryDecision(False, delay, "time budget spent")
    return RetryDecision(True, delay, "retry")


# One generator for every call: seeding a new one per call (from os.urandom) cost
# more than the call's own retry bookkeeping. random.Random is safe across threads.
_JITTER = random.Random()


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy,
                    on_retry: Callable[[BaseException, RetryDecision], None] | None = None,
                    idempotent: bool = True) -> T:
    """Run ``fn`` under :func:`decide`. The last error is re-raised unchanged."""
    rng = _JITTER

    def _decision(state: RetryCallState) -> RetryDecision:
        assert state.outcome is not None
        error = state.outcome.exception()
        assert error is not None
        return decide(error, state.attempt_number, state.seconds_since_start or 0.0, policy, rng.random(),
                      idempotent)

    def _should_retry(state: RetryCallState) -> bool:
        if state.outcome is None or not state.outcome.failed:
            return False
        decision = _decision(state)
        if decision.retry and on_retry is not None:
            on_retry(state.outcome.exception(), decision)  # type: ignore[arg-type]
        return decision.retry

    def _wait(state: RetryCallState) -> float:
        return _decision(state).delay

    retrying = Retrying(
        retry=_should_retry,
        wait=_wait,
        stop=stop_after_attempt(policy.max_attempts),
        reraise=True,
    )
    return retrying(fn)


__all__ = ["RetryPolicy", "RetryDecision", "decide", "call_with_retry"]
