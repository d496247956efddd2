"""Writes this process knows it never sent, so their intents need no settle window.

A pending intent normally means "this write may have reached the vendor": recovery
looks for it and, not finding it, waits out a settle window (minutes) before writing
again, because a stalled request may still land. When the request certainly never
left — the claim check before it, or the budget wait, failed — there is nothing to
wait for, and the intent is dropped at once. Dropping needs the database; when the
database is what failed (an outage between recording the intent and sending), the
drop cannot be made, and the link would otherwise stand still for the whole window
after the database is back (issue 10: a Postgres restart held one link's notes for
over a minute). So the process remembers it here, and recovery in this process
writes at once.

The knowledge is only about one attempt: an entry matches an intent only while the
intent is still owned by the claim it was recorded under. An intent taken over by
another worker (its owner changes) is no longer covered, and a restarted process
knows nothing — both fall back to the settle window, which is always safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

from .store_ports import Claim, Intent

CAPACITY = 10_000   # entries kept (oldest go first); each is one outage-time write


@dataclass
class SendWatch:
    """Set by the connector's last step before a non-idempotent request leaves."""

    left: bool = False


_watch: ContextVar[SendWatch | None] = ContextVar("syncd_send_watch", default=None)


@contextmanager
def watching_send() -> Iterator[SendWatch]:
    """Around one intent's write: afterwards ``watch.left`` tells whether a request left."""
    watch = SendWatch()
    token = _watch.set(watch)
    try:
        yield watch
    finally:
        _watch.reset(token)


def request_leaving() -> None:
    """Called right before a non-idempotent request is sent (after the claim check)."""
    watch = _watch.get()
    if watch is not None:
        watch.left = True


class UnsentIntents:
    """Intent keys (with the owner they were recorded under) whose write never left."""

    def __init__(self, capacity: int = CAPACITY):
        self._owners: OrderedDict[str, tuple[str | None, int | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def remember(self, key: str, claim: Claim | None) -> None:
        owner = (None, None) if claim is None else (str(claim.ref), claim.fence)
        with self._lock:
            self._owners[key] = owner
            self._owners.move_to_end(key)
            while len(self._owners) > self._capacity:
                self._owners.popitem(last=False)

    def never_sent(self, intent: Intent) -> bool:
        """True when this process recorded ``intent`` and certainly did not send its write."""
        with self._lock:
            owner = self._owners.get(intent.key)
        return owner is not None and owner == (intent.claim_ref, intent.claim_fence)


__all__ = ["SendWatch", "UnsentIntents", "request_leaving", "watching_send"]
