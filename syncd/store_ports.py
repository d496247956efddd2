"""What each part of syncd needs of the store, as small ports.

:class:`syncd.store.Store` implements them all on SQLite or Postgres, and
:class:`syncd.memory_store.MemoryStore` implements the engine's in memory, so the
engine can be built in a unit test. Each consumer is typed against its own port:

* :class:`EngineStore` — the engine: links, bases, intents, marking items dirty, audit;
* :class:`ClaimStore` — the worker pool: claim, renew, defer, complete, fail;
* :class:`CursorStore` — the pollers: leader lease and fenced cursor;
* :class:`DeliverySink` — the webhook receiver: store a delivery and its dirty marks.

The records and errors the ports speak in live here too, so neither a consumer nor
another implementation depends on the SQL store (``syncd.store`` re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from .domain import BaseEntry, ItemRef, Link
from .errors import SyncdError

__all__ = [
    "Begun", "Claim", "ClaimStore", "CursorStore", "DeliverySink", "EngineStore", "Fenced", "Intent", "LinkNotFound",
    "LinkState", "StaleBase", "StoreError", "StoreUnavailable",
]


# -- errors -----------------------------------------------------------------------------------

class StoreError(SyncdError):
    """The database refused something (a constraint, a bad value)."""


class StoreUnavailable(StoreError):
    """The database cannot be used right now: Postgres down, disk full, SQLite locked past the busy timeout.

    ``reason`` names the outage for operators and health checks (see :func:`syncd.store.outage_reason`):
    ``database_unreachable``, ``database_disk_full``, ``database_locked``, ``database_read_only``,
    ``database_io_error`` or ``database_unavailable``. Nothing is wrong with the data or the item
    being worked on: the same call succeeds once the database is back."""

    def __init__(self, message: str, reason: str = "database_unavailable"):
        super().__init__(message)
        self.reason = reason


class StaleBase(StoreError):
    """put_base lost a race: the link's base revision moved since it was read. Re-read and reconcile again."""


class Fenced(StoreError):
    """A poller whose leadership was taken over tried to advance a cursor."""


class LinkNotFound(StoreError):
    """The link was removed (e.g. while a worker reconciled it)."""


# -- records ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """A leased dirty item. ``version`` is the mark counter seen at claim time;
    ``fence`` the claim's fencing token (unique for the item, growing)."""

    ref: ItemRef
    version: int
    attempts: int
    owner: str
    lease_expires: float           # as claimed; a heartbeat may extend it in the database
    dirty_since: float | None = None   # when the item first became dirty: propagation lag
    fence: int = 0
    last_error: str | None = None      # why its last attempt did not finish (None: it never failed)
    reason: str = ""                   # what marked it dirty last (webhook:jira, poll:zendesk, ...): history's trigger
    stamp: float | None = None         # newest vendor stamp its marks reported; None: one reported none (queue.mark_dirty)


@dataclass(frozen=True)
class Intent:
    key: str
    kind: str
    state: str  # pending | done
    result: str | None  # the vendor's id once done
    link_id: int | None
    payload: Mapping[str, Any] | None
    created_at: datetime
    claim_ref: str | None = None      # the claim that owns it while pending (None: recorded outside a claim)
    claim_fence: int | None = None

    def owned_by(self, claim: Claim | None) -> bool:
        return claim is not None and self.claim_ref == str(claim.ref) and self.claim_fence == claim.fence


@dataclass(frozen=True)
class Begun:
    """What ``begin_intent`` found: the intent as stored, and whether the caller owns
    it (recorded it just now). A caller that does not own it must not make its write."""

    intent: Intent
    owned: bool


@dataclass(frozen=True)
class Linked:
    """An item's links (by id) and each one's base revision (0: no base yet), read in one
    transaction: every reconcile starts with both."""

    links: tuple[Link, ...]
    revisions: Mapping[int, int]


@dataclass(frozen=True)
class LinkState:
    """What the store knows of one link, read in one transaction: its base, the base's
    revision and its intents (oldest first), plus any intents asked for by key."""

    base: dict[str, BaseEntry]
    revision: int
    intents: tuple[Intent, ...]

    def intent(self, key: str) -> Intent | None:
        return next((i for i in self.intents if i.key == key), None)


# -- the engine's port ------------------------------------------------------------------------

class LinkPort(Protocol):
    def add_link(self, desk: ItemRef, issue_id: str, issue_key: str) -> Link:
        """Idempotent: the existing link when the pair is linked already."""
        ...

    def remove_link(self, desk: ItemRef, issue_id: str) -> bool: ...

    def links_for_desk(self, desk: ItemRef) -> list[Link]: ...

    def links_for_issue(self, issue_id: str) -> list[Link]: ...

    def linked(self, ref: ItemRef) -> Linked:
        """The links of a desk item or of an issue (``jira`` ref), with their base revisions."""
        ...

    def update_issue_key(self, issue_id: str, key: str) -> None: ...


class BasePort(Protocol):
    def revisions(self, link_ids: Sequence[int]) -> dict[int, int]:
        """Base revision of each link (0: no base yet)."""
        ...

    def link_state(self, link_id: int, extra_keys: Sequence[str] = ()) -> LinkState:
        """Base, revision and intents of the link (plus the intents named in ``extra_keys``)."""
        ...

    def put_base(self, link_id: int, base: Mapping[str, BaseEntry], expected_revision: int) -> int:
        """The new revision; :class:`StaleBase` when another writer moved it, :class:`LinkNotFound`
        when the link is gone."""
        ...


class IntentPort(Protocol):
    def begin_intent(self, key: str, kind: str, link_id: int | None = None, payload: Mapping | None = None,
                     claim: Claim | None = None) -> Begun: ...

    def take_intent(self, seen: Intent, claim: Claim | None) -> bool:
        """Compare-and-set on the owner seen; of two takers one wins. Restarts the intent's age."""
        ...

    def drop_intent(self, key: str, claim: Claim | None = None) -> bool: ...

    def finish_intent(self, key: str, result: str) -> None: ...

    def get_intent(self, key: str) -> Intent | None: ...


class NoticePort(Protocol):
    """What the engine tells the rest of syncd: items to reconcile again, and the audit trail."""

    def mark_dirty(self, refs: Iterable[ItemRef], reason: str, delay: float = 0.0) -> None: ...

    def audit(self, event: str, link_id: int | None = None, **detail: Any) -> None: ...


class EngineStore(LinkPort, BasePort, IntentPort, NoticePort, Protocol):
    """Everything :class:`syncd.engine.Engine` uses of the store."""


# -- the other consumers' ports ---------------------------------------------------------------

class ClaimStore(Protocol):
    """The worker pool's port: the claim and how it is settled."""

    clock: Callable[[], float]

    def claim(self, owner: str, limit: int, lease_seconds: float, look_first: bool = True) -> list[Claim]: ...

    def claim_current(self, claim: Claim) -> bool: ...

    def renew(self, claim: Claim, lease_seconds: float) -> float | None: ...

    def complete(self, claim: Claim, history_rows: Sequence[Mapping[str, Any]] = ()) -> None: ...

    def defer(self, claim: Claim, delay: float, error: str | None = None) -> None: ...

    def fail(self, claim: Claim, error: str, max_attempts: int, backoff: Callable[[int], float]) -> bool: ...


class CursorStore(Protocol):
    """The pollers' port: one leader per source, and a cursor only that leader moves."""

    def acquire_lease(self, name: str, owner: str, ttl: float) -> int | None: ...

    def release_lease(self, name: str, owner: str) -> bool: ...

    def get_cursor(self, source: str) -> str | None: ...

    def advance_cursor(self, source: str, cursor: str, refs: Sequence[ItemRef], fence: int | None = None) -> None:
        """Move the cursor and mark ``refs`` dirty, all or nothing; :class:`Fenced` for a stale leader."""
        ...


class DeliverySink(Protocol):
    """The webhook receiver's port."""

    def accept_delivery(self, source: str, delivery_id: str, body: bytes, refs: Sequence[ItemRef],
                        stamp: float | None = None) -> bool:
        """Store the delivery and mark ``refs`` dirty in one transaction; ``False``
        when ``(source, delivery_id)`` was seen before. May raise ``StoreUnavailable``."""
        ...
