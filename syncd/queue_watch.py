"""Following items through the dirty queue from outside the daemon (``syncd
reconcile`` without ``--dry-run``): which of them are still queued, and which the
daemon gave up on (dead letters) since a given time. Read-only queries."""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa

from .schema import dead_letters, dirty
from .store import Store

CHUNK = 500   # refs per IN (...) list: well below SQLite's and Postgres' parameter limits


def _chunks(refs: Sequence[str]) -> list[Sequence[str]]:
    return [refs[i:i + CHUNK] for i in range(0, len(refs), CHUNK)]


def still_queued(store: Store, refs: Sequence[str]) -> set[str]:
    """The refs that still have a row in the dirty queue (waiting, leased or backing off)."""
    found: set[str] = set()
    with store.transaction() as conn:
        for part in _chunks(refs):
            found |= set(conn.scalars(sa.select(dirty.c.ref).where(dirty.c.ref.in_(part))))
    return found


def dead_since(store: Store, refs: Sequence[str], since: float) -> dict[str, str]:
    """ref → last error of the refs moved to the dead letters at or after ``since``."""
    found: dict[str, str] = {}
    with store.transaction() as conn:
        for part in _chunks(refs):
            rows = conn.execute(sa.select(dead_letters.c.ref, dead_letters.c.error)
                                .where(dead_letters.c.ref.in_(part), dead_letters.c.failed_at >= since))
            found.update({r.ref: r.error for r in rows})
    return found
