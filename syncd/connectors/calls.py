"""What every connector does around a vendor call: spend the account's budget,
retry by our one policy, turn SDK exceptions into :mod:`syncd.errors`, count.

The SDKs' own retries are switched off by each connector so a POST is never
repeated behind our back; a 429 is caught by a ``requests`` response hook
(zenpy, jira) or from the httpx response (intercom) so its ``Retry-After``
reaches us instead of the SDK sleeping on it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import time
import urllib.request
from typing import Callable, Mapping, TypeVar

import requests
import structlog

from ..budget import Budget, Unlimited, WaitTooLong, current_wait_limit
from ..errors import (Ambiguous, Conflict, NotFound, RateLimited, Refused, Throttled, Transient,
                      Unauthorized, VendorError)
from ..fencing import before_write
from ..metrics import METRICS
from ..retry import RetryDecision, RetryPolicy, call_with_retry

T = TypeVar("T")
log = structlog.get_logger("syncd.vendor")

# (vendor, operation) -> time.time() of its last success in this process: /readyz clears a
# poller's error as soon as the operation that failed works again (not at the next poll).
_LAST_SUCCESS: dict[tuple[str, str], float] = {}


def last_success(vendor: str, operation: str) -> float:
    return _LAST_SUCCESS.get((vendor, operation), 0.0)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds to wait from a 429's headers: ``Retry-After`` (seconds or HTTP date),
    Intercom's ``X-RateLimit-Reset`` (unix time), else one second."""
    lowered = {k.lower(): v for k, v in headers.items()}
    now = time.time() if now is None else now
    value = lowered.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            return max(0.0, parsed.timestamp() - now)
    reset = lowered.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    return 1.0


# Zendesk's account-wide 429 body (the per-minute plan limit). Seen in real answers:
# https://github.com/airbytehq/airbyte/issues/11035 ("Number of allowed API requests per
# minute exceeded"); the incremental-export endpoint's reads "Number of allowed incremental
# export API requests per minute exceeded" (airbyte #11899).
_ZENDESK_ACCOUNT_TEXT = "requests per minute exceeded"


def rate_limit_scope(vendor: str, headers: Mapping[str, str], message: str) -> str | None:
    """What a 429 limits. Jira names it (``RateLimit-Reason``). Zendesk does not; its
    per-ticket update limit (30 updates per ticket per user per 10 minutes) is told
    apart by the *absence* of the account signals: an account 429 has
    ``X-Rate-Limit-Remaining: 0`` and the per-minute text above; anything else on a
    call for one ticket is taken as that ticket's limit (``zendesk-ticket-updates``).
    The reasoning and its sources are in docs/operations.md, "Rate limits". The caller
    applies an item scope only to a call that names its target; else the account waits."""
    lowered = {k.lower(): v for k, v in headers.items()}
    reason = lowered.get("ratelimit-reason")
    if reason:
        return reason
    if vendor == "zendesk":
        if lowered.get("x-rate-limit-remaining", "").strip() == "0" or _ZENDESK_ACCOUNT_TEXT in message.lower():
            return None
        return "zendesk-ticket-updates"
    return None


def error_for_status(vendor: str, operation: str, status: int, headers: Mapping[str, str],
                     message: str) -> VendorError:
    """Sort an HTTP failure by its meaning."""
    if status == 429:
        return RateLimited(vendor, operation, retry_after_seconds(headers), rate_limit_scope(vendor, headers, message))
    if status in (401, 403):
        return Unauthorized(vendor, operation, message, status)
    if status == 404:
        return NotFound(vendor, operation, message, status)
    if status == 409:
        return Conflict(vendor, operation, message, status)
    if status in (408, 425) or status >= 500:
        return Transient(vendor, operation, message, status)
    return Refused(vendor, operation, message, status)


class HTTPFailure(Exception):
    """Raised from a requests response hook so the SDK never handles the status itself."""

    def __init__(self, response: requests.Response):
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


CONNECTIONS_KEPT = 32   # as many as threads may call one vendor at once (a command's --threads tops out at 32)


def keep_connections(session: requests.Session, size: int = CONNECTIONS_KEPT) -> None:
    """Keep up to ``size`` connections to the vendor open. requests keeps 10 by default:
    with more threads calling at once (``links import``/``reconcile --dry-run`` with
    ``--threads 16``) each call beyond the tenth opened a new connection and dropped it
    after, a TCP (and TLS) handshake per call. Same retry setting as requests' default
    adapter (none: our retry policy decides)."""
    from requests.adapters import HTTPAdapter
    for scheme in ("http://", "https://"):
        session.mount(scheme, HTTPAdapter(pool_connections=4, pool_maxsize=size))


def skip_environment_lookups(session: requests.Session, base_url: str) -> None:
    """While ``trust_env`` is on, requests reads and parses the environment again on
    every request (~5 % of a busy daemon's CPU). When it names no proxy, stop looking
    and take the CA bundle it names (what requests would pick per request) once, now;
    with a proxy set nothing changes. (``~/.netrc``, the other thing it looks up, never
    applies: our clients always send explicit credentials.) For plain ``http://`` (a
    simulator on loopback) no bundle is set: requests checks whether the path is a
    directory on every request, a system call per vendor call for nothing."""
    if urllib.request.getproxies():
        return
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True and base_url.lower().startswith("https:"):
        session.verify = bundle
    session.trust_env = False


def raise_on_429(response: requests.Response, *args: object, **kwargs: object) -> requests.Response:
    """requests hook: stop zenpy/jira from sleeping on a 429 themselves."""
    if response.status_code == 429:
        raise HTTPFailure(response)
    return response


def translate_requests_error(vendor: str, operation: str, error: BaseException) -> VendorError | None:
    """The part of error translation common to the requests-based SDKs."""
    if isinstance(error, HTTPFailure):
        r = error.response
        return error_for_status(vendor, operation, r.status_code, r.headers, _short(r.text))
    if isinstance(error, requests.ReadTimeout):
        return Ambiguous(vendor, operation, f"{type(error).__name__}: no answer in time, the request may have been carried out")
    if isinstance(error, (requests.Timeout, requests.ConnectionError)):
        return Transient(vendor, operation, type(error).__name__)
    response = getattr(error, "response", None)
    if isinstance(response, requests.Response):
        return error_for_status(vendor, operation, response.status_code, response.headers, _short(response.text))
    return None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class Caller:
    """Runs one vendor call with budget, retry policy, translation and metrics."""

    def __init__(self, vendor: str, translate: Callable[[str, str, BaseException], VendorError | None],
                 budget: Budget | Unlimited | None = None, policy: RetryPolicy | None = None):
        self.vendor = vendor
        self.translate = translate
        self.budget = budget or Unlimited()
        self.policy = policy or RetryPolicy()

    def __call__(self, operation: str, fn: Callable[[], T], idempotent: bool = True,
                 target: str | None = None) -> T:
        """``idempotent=False`` for creates and comment posts (see :func:`syncd.retry.decide`).
        ``target`` (e.g. ``ticket:42``, ``issue:10001``) names the one ticket / issue the
        call writes, so that its own rate limit holds back only calls for it.

        Inside :func:`syncd.budget.wait_limit` (a reconcile holding a claim) no wait --
        budget slot, gate, hold, in-call retry -- is longer than the limit: the call
        raises :class:`~syncd.errors.Throttled` (not sent) or the 429 instead."""
        max_wait = current_wait_limit()
        policy = self.policy
        if max_wait is not None:
            policy = dataclasses.replace(policy, max_delay=min(policy.max_delay, max_wait),
                                         total_budget=min(policy.total_budget, max_wait))

        def attempt() -> T:
            try:
                permit = self.budget.acquire(target, max_wait)
            except WaitTooLong as e:
                scope = "zendesk-ticket-updates" if self.vendor == "zendesk" and e.scope == target else (
                    "jira-per-issue-on-write" if e.scope == target else None)
                raise Throttled(self.vendor, operation, e.wait, scope, time.time() + e.wait) from None
            if not idempotent:
                # After any wait for the budget, right before the request: the claim must still stand.
                before_write(self.vendor, operation)
            started = time.monotonic()
            account_limited = False
            try:
                result = fn()
            except VendorError:
                raise
            except Exception as e:
                error = self.translate(self.vendor, operation, e)
                if error is None:
                    raise
                METRICS.vendor_call(self.vendor, operation, error.status or 0, time.monotonic() - started)
                if isinstance(error, RateLimited):
                    if error.per_item and target is None and error.scope != "jira-per-issue-on-write":
                        # An item scope we only inferred (Zendesk) on a call for no one item: the account's.
                        error = RateLimited(self.vendor, operation, error.retry_after, None)
                    if error.per_item and target is not None:
                        self.budget.hold(target, error.retry_after)
                        log.warning("rate_limited_target", vendor=self.vendor, operation=operation,
                                    target=target, scope=error.scope, retry_after=error.retry_after)
                    elif not error.per_item:
                        account_limited = True
                        self.budget.pause(error.retry_after)
                        log.warning("rate_limited_account", vendor=self.vendor, operation=operation,
                                    scope=error.scope, retry_after=error.retry_after)
                raise error from e
            finally:
                self.budget.done(permit, account_limited)
            METRICS.vendor_call(self.vendor, operation, 200, time.monotonic() - started)
            _LAST_SUCCESS[(self.vendor, operation)] = time.time()
            return result

        return call_with_retry(attempt, policy, on_retry=self._on_retry, idempotent=idempotent)

    def _on_retry(self, error: BaseException, decision: RetryDecision) -> None:
        METRICS.retry(self.vendor)
        log.warning("vendor_retry", vendor=self.vendor, error=str(error), delay=round(decision.delay, 3))
