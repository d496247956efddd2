"""The daemon's own exceptions. Connectors turn every vendor/SDK exception into
one of these at their edge, sorted by HTTP meaning, so that retry rules read
naturally (see :mod:`syncd.retry`)."""

from __future__ import annotations


class SyncdError(Exception):
    """Base of everything syncd raises on purpose."""


class ConfigError(SyncdError):
    """A config or mapping file is wrong: names the file, the key and what was expected."""

    def __init__(self, path: str, key: str, expected: str):
        self.path, self.key, self.expected = path, key, expected
        super().__init__(f"{path}: {key}: {expected}")


class VendorError(SyncdError):
    """A vendor call failed. ``vendor`` is zendesk|jira|intercom, ``operation`` a short name."""

    retryable = False

    def __init__(self, vendor: str, operation: str, message: str, status: int | None = None):
        self.vendor, self.operation, self.status = vendor, operation, status
        super().__init__(f"{vendor} {operation}: {message}" + (f" (HTTP {status})" if status else ""))


# 429 scopes that limit one ticket / issue, not the account (docs/operations.md, "Rate limits").
ITEM_SCOPES = frozenset({"jira-per-issue-on-write", "zendesk-ticket-updates"})


class RateLimited(VendorError):
    """429. ``retry_after`` seconds from Retry-After / X-Rate-Limit-Reset; ``scope``
    is e.g. ``jira-per-issue-on-write`` when only one item is throttled (see
    :data:`ITEM_SCOPES`), None or another reason when the account is."""

    retryable = True

    def __init__(self, vendor: str, operation: str, retry_after: float, scope: str | None = None):
        self.retry_after, self.scope = retry_after, scope
        super().__init__(vendor, operation, f"rate limited, retry after {retry_after:.1f}s", 429)

    @property
    def per_item(self) -> bool:
        """Only the one ticket / issue is limited: not the account's problem."""
        return self.scope in ITEM_SCOPES


class Throttled(RateLimited):
    """Not sent: the call would have had to wait ``retry_after`` seconds for the
    account's budget, its gate or its ticket's / issue's hold -- longer than a
    reconcile may wait while it holds its item's claim. ``not_before`` is the wall
    time (``time.time()``) from which it may go out: the worker gives the item back
    due then instead of sleeping past its lease."""

    def __init__(self, vendor: str, operation: str, retry_after: float, scope: str | None,
                 not_before: float):
        super().__init__(vendor, operation, retry_after, scope)
        self.not_before = not_before


class Transient(VendorError):
    """5xx, timeout, connection reset: worth retrying."""

    retryable = True


class Ambiguous(Transient):
    """The request went out but no answer came back in time: the vendor may
    have carried it out. A non-idempotent write is never retried blindly after
    this; the intent is left pending and recovery looks before writing again."""


class Landed(Transient):
    """The write was carried out (``result``: what it made, e.g. the issue's id), but a
    call that belongs to it failed after (the read of what was made). Never a refusal
    of the write: the intent is finished with ``result``, and the item retried."""

    def __init__(self, vendor: str, operation: str, message: str, result: str):
        super().__init__(vendor, operation, message)
        self.result = result


class Unauthorized(VendorError):
    """401/403: credentials wrong or missing permission. Not retried."""


class NotFound(VendorError):
    """404: the item is gone (or never was)."""


class Conflict(VendorError):
    """409: e.g. Zendesk safe_update found the ticket changed meanwhile. Retry after re-reading."""

    retryable = True


class Refused(VendorError):
    """4xx the vendor will keep refusing (bad value, transition not allowed)."""
