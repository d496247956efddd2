"""The dirty queue: SQL on one connection, inside a transaction the store opened.

One row per dirty item (the primary key is the item ref), so a burst of events
coalesces into one reconcile. A worker *claims* due rows by writing a lease
(owner + expiry) on them; a crashed worker's lease simply runs out and the row
becomes claimable again.

Every claim carries a **fencing token**: the item's counter in ``claim_fences``,
+1 at each claim and at least the claim's time in ms (it outlives the queue row,
and a new token stays larger than the old ones when housekeeping forgot the
counter of an item idle for a week: ``prune_fences``), also written on
the row. ``complete``/``defer``/``fail``/``renew`` only touch the row while that
token is on it, so a worker whose lease ran out and was taken over cannot undo
the new holder's work, nor delete dirt it never saw; ``current`` tells a holder,
right before a non-idempotent vendor write, whether its claim still stands.

Every function takes ``now`` (epoch seconds from the store's clock) so that the
whole queue runs on one clock.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

import sqlalchemy as sa
import structlog

from .domain import ItemRef
from .schema import claim_fences, dead_letters, dirty, greatest, insert_on, least
from .store_ports import Claim   # the claim is the ports' vocabulary (re-exported here)

log = structlog.get_logger(__name__)

MANUAL = "manual"  # the reason an operator's "sync now" carries: it may cut a backoff short
d = dirty.c


@dataclass(frozen=True)
class DeadLetter:
    id: int
    ref: ItemRef
    error: str
    attempts: int
    failed_at: datetime
    reason: str = ""


def _held_by(claim: Claim) -> sa.ColumnElement[bool]:
    """The row while this claim's token is on it (the lease may have been renewed)."""
    return sa.and_(d.ref == str(claim.ref), d.fence == claim.fence, d.lease_owner == claim.owner)


def mark_dirty(conn: sa.Connection, refs: Iterable[ItemRef], reason: str, delay: float, now: float,
               stamp: float | None = None) -> None:
    """Insert or coalesce. Sorted so that concurrent markers lock rows in one order (no deadlocks).

    ``stamp``: when the vendor says the item changed (a Jira webhook's ``updated``,
    epoch seconds), or None. The row keeps the newest stamp of all its marks, and NULL
    for good once any mark came without one: only then does the stamp bound every change
    the marks stand for (a poll, a released version or syncd's own queueing say nothing
    of when), and a worker holding a read at least that new may skip reading again."""
    keys = sorted({str(ref) for ref in refs})
    if not keys:
        return
    rows = [
        {"ref": k, "version": 1, "reason": reason, "due_at": now + delay, "attempts": 0, "dirty_since": now,
         "stamp": stamp}
        for k in keys
    ]
    conn.execute(_upsert(conn.dialect.name, manual=reason == MANUAL and delay == 0), rows)


@functools.lru_cache(maxsize=None)
def _upsert(dialect: str, manual: bool) -> sa.Insert:
    """The statement mark_dirty runs, built once per dialect: it runs for every webhook
    and every queued item, and building it (CASE expressions, cache key) cost as much
    CPU as executing it."""
    stmt = insert_on(dialect, dirty)
    new = stmt.excluded
    if manual:
        # An operator asked for it now: forget the backoff, keep last_error for the record.
        changes = {"attempts": 0, "due_at": least(d.due_at, new.due_at)}
    else:
        # A row under backoff keeps its due time: new events must not hammer a failing vendor.
        changes = {"due_at": sa.case((d.attempts > 0, d.due_at), else_=least(d.due_at, new.due_at))}
    # NULL sticks (a mark that reported no stamp); otherwise the newer stamp.
    stamp = sa.case((sa.or_(d.stamp.is_(None), new.stamp.is_(None)), sa.null()),
                    (d.stamp >= new.stamp, d.stamp), else_=new.stamp)
    return stmt.on_conflict_do_update(
        index_elements=[d.ref], set_={"version": d.version + 1, "reason": new.reason, "stamp": stamp, **changes}
    )


def _claimable(now: object) -> sa.ColumnElement[bool]:
    return sa.and_(d.due_at <= now, sa.or_(d.lease_expires.is_(None), d.lease_expires <= now))


# The statements every reconcile runs are built once, with bound parameters: building
# one (and its cache key) cost SQLAlchemy about as much CPU as running it.
_ANY_DUE = sa.select(d.ref).where(_claimable(sa.bindparam("now"))).limit(1)


def any_due(conn: sa.Connection, now: float) -> bool:
    """Whether a claim could take anything: a read, so an idle worker's look costs no write lock."""
    return conn.scalar(_ANY_DUE, {"now": now}) is not None


def _due(dialect: str, now: object, limit: object) -> sa.Select:
    due = sa.select(d.ref).where(_claimable(now)).order_by(d.due_at, d.ref).limit(limit)  # type: ignore[arg-type]
    if dialect == "postgresql":
        # Replicas claim side by side: rows another claimer has locked are skipped, not waited for.
        # (On SQLite the store's BEGIN IMMEDIATE already makes the whole claim exclusive.)
        due = due.with_for_update(skip_locked=True)
    return due


# The claim's fencing token: the item's counter + 1, and at least the claim's time in
# milliseconds. The floor is what lets housekeeping forget the counter of an item idle
# for FENCE_KEEP_SECONDS (the table would otherwise keep a row for every ticket that
# ever got a webhook): a token handed out after that is still larger than every token
# the item had before -- unless the store's clock went back by that much.
FENCE_KEEP_SECONDS = 7 * 86400


def fence_floor(now: float) -> int:
    return int(now * 1000)


def _next_fence(floor: sa.ColumnElement) -> sa.ColumnElement:
    counter = sa.func.coalesce(
        sa.select(claim_fences.c.fence).where(claim_fences.c.ref == d.ref).scalar_subquery(), 0) + 1
    return greatest(counter, floor)


@functools.lru_cache(maxsize=None)
def _claim_returning(dialect: str) -> sa.Update:
    """One statement instead of three (SQLite >= 3.35, Postgres): the claim runs once per
    reconcile while holding the write lock, so its cost is paid by every worker."""
    due = _due(dialect, sa.bindparam("now"), sa.bindparam("limit"))
    return (sa.update(dirty)
            .values(lease_owner=sa.bindparam("owner_v"), lease_expires=sa.bindparam("expires_v"),
                    fence=_next_fence(sa.bindparam("floor_v", type_=sa.BigInteger)))
            .where(d.ref.in_(due.scalar_subquery()))
            .returning(d.ref, d.version, d.attempts, d.dirty_since, d.due_at, d.fence, d.last_error, d.reason,
                       d.stamp))


@functools.lru_cache(maxsize=None)
def _fence_upsert(dialect: str) -> sa.Insert:
    stmt = insert_on(dialect, claim_fences)
    return stmt.on_conflict_do_update(index_elements=[claim_fences.c.ref],
                                      set_={"fence": stmt.excluded.fence, "claimed_at": stmt.excluded.claimed_at})


def claim(conn: sa.Connection, owner: str, limit: int, lease_seconds: float, now: float) -> list[Claim]:
    expires = now + lease_seconds
    if conn.dialect.update_returning:
        taken = conn.execute(_claim_returning(conn.dialect.name),
                             {"now": now, "limit": limit, "owner_v": owner, "expires_v": expires,
                              "floor_v": fence_floor(now)}).all()
        taken.sort(key=lambda r: (r.due_at, r.ref))
    else:
        due = _due(conn.dialect.name, now, limit)
        lease = sa.update(dirty).values(lease_owner=owner, lease_expires=expires,
                                        fence=_next_fence(sa.literal(fence_floor(now), sa.BigInteger)))
        keys = list(conn.scalars(due))
        if not keys:
            return []
        conn.execute(lease.where(d.ref.in_(keys)))
        taken = conn.execute(sa.select(d.ref, d.version, d.attempts, d.dirty_since, d.due_at, d.fence, d.last_error,
                                       d.reason, d.stamp)
                             .where(d.ref.in_(keys)).order_by(d.due_at, d.ref)).all()
    if taken:
        # The counter outlives the row: a token is never handed out twice for one item.
        conn.execute(_fence_upsert(conn.dialect.name),
                     [{"ref": r.ref, "fence": r.fence, "claimed_at": now} for r in taken])
    return [Claim(ItemRef.parse(r.ref), r.version, r.attempts, owner, expires, r.dirty_since, r.fence, r.last_error,
                  r.reason, r.stamp) for r in taken]


def current(conn: sa.Connection, claim: Claim, now: float) -> bool:
    """Whether ``claim`` still stands: its token on the row and its lease not run out."""
    row = conn.execute(sa.select(d.lease_expires).where(_held_by(claim))).first()
    return row is not None and row.lease_expires is not None and row.lease_expires > now


def renew(conn: sa.Connection, claim: Claim, lease_seconds: float, now: float) -> float | None:
    """Heartbeat: extend the lease while the token is still on the row; the new expiry, or
    None when the claim was taken (or settled) meanwhile. A lease that ran out but was
    taken by nobody is still this claim's (the token proves it) and is extended too."""
    expires = now + lease_seconds
    held = conn.execute(sa.update(dirty).where(_held_by(claim)).values(lease_expires=expires)).rowcount
    return expires if held else None


def release_all(conn: sa.Connection) -> int:
    """Free every lease at once (SQLite at start: the daemon lock proves their holders dead)."""
    return conn.execute(sa.update(dirty).where(d.lease_owner.is_not(None))
                        .values(lease_owner=None, lease_expires=None)).rowcount


_COMPLETE = sa.delete(dirty).where(d.ref == sa.bindparam("ref_v"), d.lease_owner == sa.bindparam("owner_v"),
                                   d.fence == sa.bindparam("fence_v"), d.version == sa.bindparam("version_v"))


def complete(conn: sa.Connection, claim: Claim, now: float) -> bool:
    """True when the row is gone; False when it was marked again meanwhile (kept, due now)
    or is no longer this claim's (another holder's: left as it is)."""
    gone = conn.execute(_COMPLETE, {"ref_v": str(claim.ref), "owner_v": claim.owner,
                                    "fence_v": claim.fence, "version_v": claim.version}).rowcount
    if gone:
        return True
    # Re-dirtied while we worked: the new event may carry a change we did not see.
    conn.execute(
        sa.update(dirty)
        .where(_held_by(claim))
        .values(lease_owner=None, lease_expires=None, due_at=now, attempts=0, last_error=None, dirty_since=now)
    )
    return False


def defer(conn: sa.Connection, claim: Claim, delay: float, error: str | None, now: float) -> bool:
    values: dict[str, object] = {"lease_owner": None, "lease_expires": None, "due_at": now + delay}
    if error is not None:
        values["last_error"] = error
    return bool(conn.execute(sa.update(dirty).where(_held_by(claim)).values(**values)).rowcount)


def fail(
    conn: sa.Connection,
    claim: Claim,
    error: str,
    max_attempts: int,
    backoff: Callable[[int], float],
    now: float,
) -> bool:
    """Count a failed attempt; True when it was the last one and the row became a dead letter."""
    query = sa.select(d.attempts, d.reason).where(_held_by(claim))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        log.warning("claim_lost", ref=str(claim.ref), owner=claim.owner, action="fail")
        return False
    attempts = row.attempts + 1
    if attempts >= max_attempts:
        conn.execute(
            sa.insert(dead_letters).values(
                ref=str(claim.ref), reason=row.reason, error=error, attempts=attempts, failed_at=now
            )
        )
        conn.execute(sa.delete(dirty).where(_held_by(claim)))
        return True
    conn.execute(
        sa.update(dirty)
        .where(_held_by(claim))
        .values(
            attempts=attempts,
            due_at=now + backoff(attempts),
            last_error=error,
            lease_owner=None,
            lease_expires=None,
        )
    )
    return False


def depth(conn: sa.Connection) -> int:
    return conn.scalar(sa.select(sa.func.count()).select_from(dirty)) or 0


def oldest_age(conn: sa.Connection, now: float) -> float | None:
    since = conn.scalar(sa.select(sa.func.min(d.dirty_since)))
    return None if since is None else max(0.0, now - since)


def list_dead(conn: sa.Connection, limit: int) -> list[DeadLetter]:
    x = dead_letters.c
    rows = conn.execute(sa.select(dead_letters).order_by(x.id).limit(limit))
    return [
        DeadLetter(
            id=r.id,
            ref=ItemRef.parse(r.ref),
            error=r.error,
            attempts=r.attempts,
            failed_at=datetime.fromtimestamp(r.failed_at, timezone.utc),
            reason=r.reason,
        )
        for r in rows
    ]


def retry_dead(conn: sa.Connection, dead_id: int, now: float) -> bool:
    """Back into the queue with a clean slate (an operator fixed the cause)."""
    x = dead_letters.c
    row = conn.execute(sa.select(x.ref).where(x.id == dead_id)).first()
    if row is None:
        return False
    conn.execute(sa.delete(dead_letters).where(x.id == dead_id))
    mark_dirty(conn, [ItemRef.parse(row.ref)], MANUAL, 0.0, now)
    return True


def drop_dead(conn: sa.Connection, dead_id: int) -> bool:
    return bool(conn.execute(sa.delete(dead_letters).where(dead_letters.c.id == dead_id)).rowcount)


def prune_fences(conn: sa.Connection, now: float, pending_owners: sa.Select, limit: int = 500) -> int:
    """Forget the counters of items claimed last ``FENCE_KEEP_SECONDS`` ago that are not
    dirty and own no pending intent (``pending_owners``: the refs of the claims that do).
    Their next token comes from the time floor, larger than any they had."""
    f = claim_fences.c
    stale = (sa.select(f.ref).where(f.claimed_at < now - FENCE_KEEP_SECONDS,
                                    ~sa.exists(sa.select(d.ref).where(d.ref == f.ref)),
                                    f.ref.not_in(pending_owners))
             .limit(limit))
    refs = list(conn.scalars(stale))
    if not refs:
        return 0
    return int(conn.execute(sa.delete(claim_fences).where(f.ref.in_(refs),
                                                          f.claimed_at < now - FENCE_KEEP_SECONDS)).rowcount)
