"""Housekeeping: forget what no longer proves anything, keep what does.

Run periodically by the runtime (``[retention] every_seconds``). Each step is one
short transaction and safe to run at any time on any replica (two replicas doing
it at once delete the same rows; nothing else depends on the order):

* **inbox bodies** -- a delivery's body is emptied once it is processed (every item
  marked dirty before it was received has been reconciled) and older than
  ``inbox_body_seconds``. Nothing reads a body after the delivery was accepted; it
  is kept that long for inspection only, and it holds customer text.
* **inbox ids** -- deleted after ``inbox_ids_hours``: they only recognise a
  redelivery, and the vendors stop redelivering well within that (Jira: up to ~30
  min late). A redelivery after that is a new mark of the item, harmless: the
  reconcile finds nothing to do.
* **intents** -- a pending intent is never touched. A *done* intent proves a write
  happened, and what it proves must outlive it:

  - ``create:<desk item>``: the issue exists; the proof lives on in the link
    (an item with a link is never escalated again). Deleted once the link exists
    and its escalation note's intent is done, after the settle window.
  - ``comment:`` / ``note:``: "this source comment / this note is on the other side".
    The planner reads that from the intent's key and ``side``/``source_id``; the
    row *is* the link's comment map. Its ``body`` (a copy of the comment) and the
    claim are dropped after the settle window, the proof stays.
  - any done intent whose link was deleted (``link_id`` NULL): nothing left to prove.
* **claim counters** (``claim_fences``) of items claimed last a week ago, not dirty,
  owning no pending intent: a counter only makes the item's next fencing token larger
  than the last, and the token's time floor does that after a week (:mod:`syncd.queue`).
  Without this the table keeps a row for every ticket that ever got a webhook.
* **audit** rows after ``audit_days``; **dead letters** after ``dead_letter_days``;
  **history** entries (:mod:`syncd.history`) after ``history_days``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
import structlog

from . import history, queue
from .config import RetentionSettings
from .schema import audit, dead_letters, dirty, inbox, intents, links

log = structlog.get_logger("syncd.retention")

_KEEP_IN_PROOF = ("side", "source_id", "public")   # what the planner reads of a done comment/note intent
_BATCH = 500


@dataclass(frozen=True)
class Pruned:
    inbox_bodies: int = 0
    inbox_ids: int = 0
    intents_deleted: int = 0
    intents_slimmed: int = 0
    audit: int = 0
    dead_letters: int = 0
    history: int = 0
    fences: int = 0

    @property
    def total(self) -> int:
        return (self.inbox_bodies + self.inbox_ids + self.intents_deleted + self.intents_slimmed
                + self.audit + self.dead_letters + self.history + self.fences)


class Housekeeper:
    """Remembers how far it got (per process) so each run reads only the new rows."""

    def __init__(self, store: object, settings: RetentionSettings, settle_seconds: float):
        self.store = store
        self.settings = settings
        self.settle_seconds = settle_seconds
        self._bodies_from = 0.0       # inbox rows received before this have no body any more
        self._slimmed_from = 0.0      # done intents finished before this are slim already

    def run(self) -> Pruned:
        s, now = self.settings, self.store.clock()  # type: ignore[attr-defined]
        with self.store.transaction() as conn:  # type: ignore[attr-defined]
            bodies = self._inbox_bodies(conn, now)
        with self.store.transaction() as conn:  # type: ignore[attr-defined]
            ids = conn.execute(sa.delete(inbox).where(inbox.c.received_at < now - s.inbox_ids_hours * 3600)).rowcount
        with self.store.transaction() as conn:  # type: ignore[attr-defined]
            deleted = self._delete_settled_intents(conn, now)
        slimmed = self._slim_intents(now)
        with self.store.transaction() as conn:  # type: ignore[attr-defined]
            audits = conn.execute(sa.delete(audit).where(audit.c.at < now - s.audit_days * 86400)).rowcount
            dead = conn.execute(sa.delete(dead_letters).where(
                dead_letters.c.failed_at < now - s.dead_letter_days * 86400)).rowcount
        with self.store.transaction() as conn:  # type: ignore[attr-defined]
            written = history.prune(conn, now - s.history_days * 86400)
        with self.store.transaction() as conn:  # type: ignore[attr-defined]
            pending = sa.select(intents.c.claim_ref).where(intents.c.state == "pending",
                                                           intents.c.claim_ref.is_not(None))
            fences = queue.prune_fences(conn, now, pending)
        pruned = Pruned(bodies, ids, deleted, slimmed, audits, dead, written, fences)
        if pruned.total:
            log.info("housekeeping_pruned", **{k: v for k, v in pruned.__dict__.items() if v})
        return pruned

    def _inbox_bodies(self, conn: sa.Connection, now: float) -> int:
        # Processed: received before the oldest mark still waiting (dead letters are not waiting).
        oldest_waiting = conn.scalar(sa.select(sa.func.min(dirty.c.dirty_since)))
        cutoff = now - self.settings.inbox_body_seconds
        if oldest_waiting is not None:
            cutoff = min(cutoff, float(oldest_waiting))
        if cutoff <= self._bodies_from:
            return 0
        emptied = conn.execute(
            sa.update(inbox)
            .where(inbox.c.received_at >= self._bodies_from, inbox.c.received_at < cutoff,
                   sa.func.length(inbox.c.body) > 0)
            .values(body=b"")).rowcount
        self._bodies_from = cutoff
        return emptied

    def _delete_settled_intents(self, conn: sa.Connection, now: float) -> int:
        settled = now - self.settle_seconds
        i = intents.c
        # Their link is gone: the comment map of a deleted link proves nothing.
        orphans = conn.execute(sa.delete(intents).where(
            i.state == "done", i.link_id.is_(None), i.kind.in_(("comment", "note")),
            i.done_at < settled)).rowcount
        # create:<ref>: done, settled, the link exists and its escalation note is done.
        n = intents.alias("note")
        creates = conn.execute(
            sa.select(i.key, links.c.id.label("link_id"))
            .select_from(intents.join(links, sa.and_(i.kind == "create", i.state == "done",
                                                     i.done_at < settled,
                                                     links.c.issue_id == i.result,
                                                     i.key == sa.literal("create:") + links.c.desk_ref)))
            .where(sa.exists(sa.select(n.c.key).where(
                n.c.key == sa.literal("note:escalated:") + sa.cast(links.c.id, sa.String),
                n.c.state == "done")))
            .limit(_BATCH)).all()
        if creates:
            conn.execute(sa.delete(intents).where(i.key.in_([r.key for r in creates]), i.state == "done"))
        return orphans + len(creates)

    def _slim_intents(self, now: float) -> int:
        """Drop the body copy (and claim) of done comment/note intents past the settle window."""
        cutoff = now - self.settle_seconds
        if cutoff <= self._slimmed_from:
            return 0
        i = intents.c
        slimmed = 0
        with self.store.transaction() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                sa.select(i.key, i.payload)
                .where(i.state == "done", i.kind.in_(("comment", "note")),
                       i.done_at >= self._slimmed_from, i.done_at < cutoff, i.payload.is_not(None))).all()
            for row in rows:
                payload = json.loads(row.payload)
                slim = {k: payload[k] for k in _KEEP_IN_PROOF if k in payload}
                if slim != payload:
                    conn.execute(sa.update(intents).where(i.key == row.key, i.state == "done")
                                 .values(payload=json.dumps(slim, sort_keys=True)))
                    slimmed += 1
        self._slimmed_from = cutoff
        return slimmed
