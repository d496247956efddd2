"""One link reconciled: recover, read, plan, carry out, remember.

Under the link's lock: finish what an earlier attempt left pending (intents),
take what is known of each side (the side that changed, freshly read; the other
perhaps from this process's snapshot, see :mod:`syncd.snapshots`), read what is
missing and let the pure :func:`syncd.reconcile.plan` decide, then make the
writes and store the new base under the revision it was planned from.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field, replace
from datetime import datetime, timedelta
from typing import Mapping as TMapping, Sequence

import structlog

from .history import attributed
from .connectors.base import DeskConnector, FieldFailure, TrackerConnector
from .domain import BaseEntry, Comment, DeskItem, ItemRef, Link, Side, TrackerIssue, Value
from .errors import Conflict
from .escalation import Escalation, create_key
from .field_writes import FieldWriter
from .intents import IntentWrites, mirror_state
from .locks import LinkLocks
from .mapping import ConflictRule, Direction, Mapping
from .metrics import METRICS
from .outcome import Outcome, describe
from .reconcile import STATUS_LOCATOR, NoteWrite, Plan, plan
from .snapshots import SnapshotCache, with_comment
from .store_ports import EngineStore, LinkState, StaleBase

log = structlog.get_logger("syncd.engine")   # one logger for all of the engine's parts
# How long after its updated_at a remembered desk item must have been read before a
# conditional write may be planned from it: Zendesk's whole second, plus a second
# for the difference between its clock and ours.
SETTLED = timedelta(seconds=2)


@dataclass(frozen=True)
class _Sides:
    """What the reconcile holds of each side before reading: the side that triggered it,
    and perhaps the other remembered (``cached``)."""

    desk: DeskItem | None
    issue: TrackerIssue | None
    cached: Side | None


@dataclass(frozen=True)
class Carried:
    """Desk writes an earlier step of the same pass hands to this link's reconcile, to go
    out in its one desk write: the escalation note, the item's key field and linked tag
    (the item given already shows them). Written on their own when no plan is carried
    out (the issue gone)."""

    notes: tuple[NoteWrite, ...] = ()
    fields: TMapping[str, Value] = dataclass_field(default_factory=dict)


NOTHING = Carried()


@dataclass(frozen=True)
class Reconciled:
    """What one link's reconcile leaves: the desk item as read (None when it is gone) and
    the issue as it now stands with this reconcile's writes (None when not known without a
    read: not read at all, or its status moved). The next link of the same issue is planned
    from that issue, so a value one link wrote is not written again by the next (fan-out)."""

    item: DeskItem | None
    issue: TrackerIssue | None = None


@dataclass(frozen=True)
class _Planned:
    item: DeskItem
    issue: TrackerIssue
    plan: Plan


class LinkReconciler:
    def __init__(self, store: EngineStore, desks: TMapping[str, DeskConnector], tracker: TrackerConnector,
                 mappings: TMapping[str, Mapping], locks: LinkLocks, snapshots: SnapshotCache,
                 intents: IntentWrites, escalation: Escalation, fields: FieldWriter):
        self.store = store
        self.desks = desks
        self.tracker = tracker
        self.mappings = mappings
        self.locks = locks
        self.snapshots = snapshots
        self.intents = intents
        self.escalation = escalation
        self.fields = fields

    def reconcile(self, link: Link, outcome: Outcome, dry_run: bool, desk_item: DeskItem | None = None,
                  issue: TrackerIssue | None = None, seen: int = 0,
                  covered: frozenset[int] = frozenset(), carried: Carried = NOTHING) -> Reconciled:
        """``seen``: the link's base revision before ``desk_item``/``issue`` were read.
        Given one side (the one that changed), the other may come from the snapshot
        cache (see :mod:`syncd.snapshots` for when that is safe). ``covered``: the other
        links of the issue this pass reconciles next, from the issue this one returns
        (a value written to the issue need not queue them again). ``carried``: desk writes
        of the pass to make with this reconcile's desk write. Every write made
        meanwhile is the link's, with why (its history: syncd.history)."""
        writes, plans = len(outcome.writes), len(outcome.plans)
        try:
            return self._sync(link, outcome, dry_run, desk_item, issue, seen, covered, carried)
        finally:
            outcome.writes[writes:] = attributed(outcome.writes[writes:], link, outcome.plans[plans:])

    def _sync(self, link: Link, outcome: Outcome, dry_run: bool, desk_item: DeskItem | None,
              issue: TrackerIssue | None, seen: int, covered: frozenset[int], carried: Carried) -> Reconciled:
        with self.locks.hold(link.id):
            # Base and intents in one read; read again only after something changed them.
            state = self.store.link_state(link.id, (create_key(link.desk),))
            if not dry_run:
                self.intents.recover(link, outcome, state)
            sides = self._starting_sides(link, state.revision, seen, desk_item, issue, dry_run)
            planned = self._read_and_plan(link, sides, state, outcome, dry_run, carried)
            if not isinstance(planned, _Planned):
                if planned is not None and not dry_run:
                    self._write_carried(link, planned, carried, outcome)
                return Reconciled(planned)
            self._report(link, planned.plan, outcome)
            if dry_run:
                describe(planned.plan, link, outcome)
                return Reconciled(planned.item, planned.issue)
            return Reconciled(planned.item, self._carry_out(link, planned, state, outcome, covered, carried))

    # -- the steps ---------------------------------------------------------
    def _starting_sides(self, link: Link, revision: int, seen: int, desk_item: DeskItem | None,
                        issue: TrackerIssue | None, dry_run: bool) -> _Sides:
        """The sides given, unless another worker synced the link since they were read (a
        stale value would look like a fresh edit and undo that worker's write); with one
        side given, the other from the snapshot when one is kept at this revision."""
        if revision != seen:
            return _Sides(None, None, None)
        other = _other_side(desk_item, issue)
        remembered = self.snapshots.get(link.id, other, revision) if other is not None and not dry_run else None
        if remembered is None:
            return _Sides(desk_item, issue, None)
        if other is Side.DESK:
            return _Sides(remembered, issue, other)   # type: ignore[arg-type]
        return _Sides(desk_item, remembered, other)   # type: ignore[arg-type]

    def _read_and_plan(self, link: Link, sides: _Sides, state: LinkState, outcome: Outcome,
                       dry_run: bool, carried: Carried = NOTHING) -> _Planned | DeskItem | None:
        """Read the sides not held and plan. A plan made with a remembered side that writes a
        field it may not write unread is made again from a fresh read of that side. When a
        side is gone: the desk item as read (None when the desk item itself is gone)."""
        mapping = self.mappings[link.desk.system]
        item, issue, cached = sides.desk, sides.issue, sides.cached
        while True:
            item = item or self._fetch_desk(link)
            if item is None:
                log.info("desk_item_gone", link=link.id, desk=str(link.desk))
                return None
            issue = issue or self.tracker.fetch(link.issue_id)
            if issue is None:
                log.info("issue_gone", link=link.id, issue_id=link.issue_id)
                return item
            # An escalation note carried here is this pass's own: nothing to resume.
            if not dry_run and not carried.notes and self.escalation.resume(link, item, issue, outcome, state):
                state = self.store.link_state(link.id, (create_key(link.desk),))
            # From a remembered ticket, fan-out sets its status whatever the copy shows: on a
            # desk with safe updates it rides in the note's request, and the plan no longer
            # depends on a status the copy may have missed (issue 16: Done right after
            # another move went out unread instead of reading every ticket).
            blind = cached is Side.DESK and self.fields.conditional(item.ref)
            p = plan(mapping, self.escalation.history_scope(link, state), item, issue, state.base,
                     mirror_state(state), reopen_blind=blind)
            if cached is None or not (p.field_writes or p.fans_out) \
                    or self._may_write_unread(p, cached, item, mapping):
                break
            # A field write needs the target's current value (conflict rules):
            # read the remembered side and plan again.
            METRICS.inc("snapshot_refreshed")
            if cached is Side.DESK:
                item = None
            else:
                issue = None
            cached = None
        if cached is not None:
            METRICS.inc("snapshot_used")
        return _Planned(item, issue, p)

    @staticmethod
    def _report(link: Link, p: Plan, outcome: Outcome) -> None:
        """The plan's decisions into the outcome, and the ones people must hear of into the log."""
        outcome.plans.append(p)
        outcome.decisions.extend(f"{d.field}: {d.kind}: {d.detail}" for d in p.decisions)
        for d in p.decisions:
            if d.kind == "conflict":   # a value someone set is being overwritten: say so, with both
                log.warning("field_conflict", link=link.id, field=d.field, kept=d.kept,
                            replaced=d.replaced, detail=d.detail)
            elif d.kind == "unmapped":
                log.info("field_unmapped", link=link.id, field=d.field, detail=d.detail)

    def _carry_out(self, link: Link, planned: _Planned, state: LinkState, outcome: Outcome,
                   covered: frozenset[int], carried: Carried) -> TrackerIssue | None:
        """Make the writes, store the new base under the revision it was planned from, and
        remember what each side now holds. ``state`` is the link as first read. Returns the
        issue as it now stands (see :class:`Reconciled`)."""
        base, revision = state.base, state.revision
        try:
            new_base, posted, written = self._apply(link, planned, base, outcome, covered, carried)
        except Conflict:
            self._write_conflict(link, base, revision, outcome)
            return planned.issue     # desk fields go first: nothing was written to the issue
        except BaseException:
            # A write that failed may still have landed (an answer lost past the timeout):
            # neither side is known any more, and a remembered copy would plan the write
            # again unread (a field Jira alone feeds, say). The retry reads.
            self._forget(link)
            raise
        issue = _patched(planned.issue, written, None, False)
        for comment in posted[Side.TRACKER]:
            issue = with_comment(issue, comment) if issue is not None else None
        if new_base != base:
            try:
                revision = self.store.put_base(link.id, new_base, revision)
            except StaleBase:
                # Another worker or process synced this link meanwhile. Our writes
                # were idempotent; reconcile once more from a fresh read.
                log.info("base_moved", link=link.id)
                self._unfinished(link, outcome, "base_moved")
                self._forget(link)
                return issue   # type: ignore[return-value]
        self._remember(link, planned, posted, revision, bool(carried.fields))
        return issue   # type: ignore[return-value]

    def _write_conflict(self, link: Link, base: TMapping[str, BaseEntry], revision: int, outcome: Outcome) -> None:
        """The desk refused a safe update: someone edited the item since it was read. Nothing
        else of the plan was written (desk fields go first); reconcile again from fresh reads."""
        log.info("write_conflict", link=link.id, desk=str(link.desk))
        METRICS.inc("write_conflicts")
        # What every process remembers of this link is now suspect (the desk moved
        # under it): move the base's revision so no replica plans from a snapshot at
        # the old one, and leave both the desk item and the item this reconcile was
        # for dirty — the change that brought us here (say an engineer's comment and
        # a status on the issue) was not carried yet and must not depend on a
        # snapshot elsewhere noticing it (issue 10, finding 8).
        try:
            self.store.put_base(link.id, base, revision)
        except StaleBase:
            pass
        self._forget(link)
        self._unfinished(link, outcome, "write_conflict")

    # -- writes ------------------------------------------------------------
    def _apply(self, link: Link, planned: _Planned, base: TMapping[str, BaseEntry], outcome: Outcome,
               covered: frozenset[int], carried: Carried = NOTHING
               ) -> tuple[dict[str, BaseEntry], dict[Side, list[Comment]], dict[str, Value]]:
        """Make the plan's writes; returns the base to store, the comments posted, by side,
        and the values written to the issue.
        One write per desk item: its fields and its internal notes go in one request
        (:meth:`_write_desk`), first, so a refused safe update leaves nothing else written."""
        p, item, issue = planned.plan, planned.item, planned.issue
        new_base = dict(p.new_base)
        posted: dict[Side, list[Comment]] = {Side.DESK: [], Side.TRACKER: []}
        written: dict[str, Value] = {}
        for side, ref, key in ((Side.DESK, item.ref, None), (Side.TRACKER, issue.ref, issue.key)):
            writes = {w.locator: w.value for w in p.field_writes if w.side is side}
            if side is Side.DESK:
                failed, notes = self._write_desk(link, item, writes, p, outcome, carried)
                posted[Side.DESK].extend(notes)
            elif writes:
                failed = self.fields.write(side, ref, key, writes, outcome)
            if not writes:
                continue
            if len(failed) < len(writes):
                self._queue_siblings(link, side, ref, covered)
            if side is Side.TRACKER:
                refused = {f.locator for f in failed}
                written = {k: v for k, v in writes.items() if k not in refused}
            for failure in failed:
                for w in p.field_writes:
                    if w.side is side and w.locator == failure.locator:
                        # Keep the old base for that field alone: it is tried again next time.
                        if w.field in base:
                            new_base[w.field] = base[w.field]
                        else:
                            new_base.pop(w.field, None)
        for cw in p.comment_writes:
            posted[cw.side].extend(self.intents.post_comment(link, cw, outcome))
        for note in p.notes:
            if note.public:
                posted[Side.DESK].extend(self.intents.post_note(link, note, outcome))
        return new_base, posted, written

    def _write_desk(self, link: Link, item: DeskItem, planned: dict[str, Value], p: Plan, outcome: Outcome,
                    carried: Carried = NOTHING) -> tuple[Sequence[FieldFailure], tuple[Comment, ...]]:
        """The desk item's field writes and internal notes as one request: the notes joined
        into one comment behind their intents (:meth:`IntentWrites.post_notes`), the fields
        (set-values, idempotent) riding along. Fields alone when every note is recorded
        already (another attempt owns or made it). Returns the refused fields and the note."""
        writes = {**carried.fields, **planned}
        notes = [*carried.notes, *(n for n in p.notes if not n.public)]
        failed: list[FieldFailure] = []
        carried = False

        def write(body: str, public: bool) -> str:
            nonlocal carried
            if not writes:
                return self.desks[link.desk.system].add_comment(link.desk, body, public)
            carried = True
            done = self.fields.write_with_comment(item.ref, writes, body, public, outcome, expect=item.updated_at)
            failed.extend(done.failures)
            return done.comment_id

        posted = self.intents.post_notes(link, notes, outcome, write) if notes else ()
        if writes and not carried:
            failed.extend(self.fields.write(Side.DESK, item.ref, None, writes, outcome, expect=item.updated_at))
        return failed, posted

    def _write_carried(self, link: Link, item: DeskItem, carried: Carried, outcome: Outcome) -> None:
        """Carried desk writes when no plan is carried out (the issue is gone): on their own."""
        if carried.fields:
            self.fields.write(Side.DESK, item.ref, None, dict(carried.fields), outcome)
        if carried.notes:
            self.intents.post_notes(link, carried.notes, outcome)

    def _queue_siblings(self, link: Link, side: Side, ref: ItemRef, covered: frozenset[int]) -> None:
        """A value written to an issue (or desk item) shared by other links must
        reach them too. The echo webhook of syncd's own write is not queued (see
        syncd.webhooks), so the engine queues the written item itself, unless this
        pass reconciles every other link of the issue next, from the issue as written."""
        others = (self.store.links_for_issue(link.issue_id) if side is Side.TRACKER
                  else self.store.links_for_desk(link.desk))
        if side is Side.TRACKER:
            others = [other for other in others if other.id not in covered]
        if any(other.id != link.id for other in others):
            self.store.mark_dirty([ref], "shared_item_written")

    def _unfinished(self, link: Link, outcome: Outcome, reason: str) -> None:
        """A reconcile that could not finish leaves its item dirty (and the link's desk item,
        whose fresh read decides again): completing the claim then keeps the row."""
        self.store.mark_dirty({link.desk, outcome.ref}, reason)

    # -- reading and remembering ------------------------------------------
    def _fetch_desk(self, link: Link) -> DeskItem | None:
        return self.desks[link.desk.system].fetch(link.desk, known=self.known_comments([link]))

    def known_comments(self, links: Sequence[Link]) -> tuple[Comment, ...] | None:
        """The desk item's comments as last seen through any of ``links`` (any revision:
        comments are only ever added, so a count check is all a connector needs)."""
        for link in links:
            seen = self.snapshots.peek(link.id, Side.DESK)
            if seen is not None:
                return seen.comments
        return None

    def _may_write_unread(self, p: Plan, cached: Side, item: DeskItem, mapping: Mapping) -> bool:
        """Whether the plan made with a remembered side may be carried out as it is,
        without reading that side first. A write planned from an outdated copy could
        overwrite an edit made since, unless no value that side holds could change it: a
        field only the other side feeds, or one whose conflicts the other side wins (an
        edit there is overwritten by any plan, read or not). Edits to other fields are
        untouched: a write names its fields only. Every write must go to the remembered
        side (or be fan-out's own status shown in Jira): a value carried to the other side
        must come from a read.

        Jira has no conditional write, and a status move is decided by its workflow: only
        such writes may go to a remembered issue. Intercom has none either: the same.
        Zendesk refuses a write planned from an outdated copy (safe update), so any write
        may go to a remembered ticket once the copy is *settled* (read at least
        :data:`SETTLED` after its ``updated_at``: Zendesk stamps whole seconds, and an edit
        made in the stamp's second looks like no change to the copy). An edit the write
        does not touch, made in that blind second, stays where it is, and its own delivery
        or the poll's view brings it in (the copy stays unsettled).

        A fan-out is the exception: whether it reopens the item depends on the item's
        status now, and it happens once, so a copy that may have missed an agent closing
        the item would lose the reopen for good (the demo found it: a conversation closed,
        then In Progress and Done back to back). It goes out unread only to a desk with
        safe updates, where it was planned to write its status whatever the copy shows
        (``reopen_blind``): a close the copy missed is reopened all the same, and a later
        edit makes the safe update refuse. A fan-out that sets no status, or any fan-out to
        Intercom, reads the item first. These are the read-free paths of a change whose
        other side syncd wrote a moment ago (issue 16: Jira moves back to back, a desk
        status shown on the issue)."""
        if cached is Side.TRACKER:
            return all(w.side is Side.TRACKER and w.locator != STATUS_LOCATOR
                       and _other_side_decides(mapping, w.locator, Side.TRACKER) for w in p.field_writes)
        if cached is not Side.DESK or not all(w.side is Side.DESK or w.fanout for w in p.field_writes):
            return False
        settled = item.observed_at is not None and item.observed_at - item.updated_at >= SETTLED
        conditional = self.fields.conditional(item.ref)
        if p.fans_out and not (conditional and any(w.fanout and w.side is Side.DESK for w in p.field_writes)):
            return False   # Intercom, or a fan-out that sets no status: read the item
        if settled and conditional:
            return True
        # Fan-out's own writes (checked above: to a desk with safe updates) depend on no
        # value the copy holds.
        return all(w.fanout or _other_side_decides(mapping, w.locator, Side.DESK) for w in p.field_writes)

    def _remember(self, link: Link, planned: _Planned, posted: TMapping[Side, Sequence[Comment]],
                  revision: int, carried_fields: bool = False) -> None:
        """Keep what each side now holds, as of the link's new revision: the fields
        written set on it, the comments posted added. A desk item written to without
        knowing its new ``updated_at`` and a Jira issue whose status was moved (a
        transition may set other fields) are forgotten instead."""
        writes = {(w.side, w.locator): w.value for w in planned.plan.field_writes}
        for side, snapshot in ((Side.DESK, planned.item), (Side.TRACKER, planned.issue)):
            values = {locator: value for (s, locator), value in writes.items() if s is side}
            desk = side is Side.DESK
            # Carried fields are in the item as given already; they, like a comment posted,
            # moved its updated_at.
            touched = desk and (carried_fields or bool(posted.get(Side.DESK)))
            patched = _patched(snapshot, values, self.fields.stamp_after_write(link.desk) if desk else None,
                               desk and self.fields.conditional(link.desk), touched=touched)
            if patched is None:
                self.snapshots.drop(link.id, side)
                continue
            for comment in posted.get(side, ()):
                patched = with_comment(patched, comment)
            self.snapshots.put(link.id, side, patched, revision)

    def _forget(self, link: Link) -> None:
        for side in Side:
            self.snapshots.drop(link.id, side)


def _other_side_decides(mapping: Mapping, locator: str, target: Side) -> bool:
    """Whether no value ``target`` holds at ``locator`` can change what a plan writes
    there: every rule writing it carries the other side's value one way, or lets the
    other side win its conflicts."""
    rules = [r for r in mapping.fields if (r.desk if target is Side.DESK else r.tracker) == locator]
    one_way = Direction.TRACKER_TO_DESK if target is Side.DESK else Direction.DESK_TO_TRACKER
    wins = ConflictRule.TRACKER_WINS if target is Side.DESK else ConflictRule.DESK_WINS
    return bool(rules) and all(r.direction is one_way or r.conflict is wins for r in rules)


def _patched(snapshot: DeskItem | TrackerIssue, values: TMapping[str, Value],
             stamp: datetime | None, conditional: bool, touched: bool = False) -> DeskItem | TrackerIssue | None:
    """``snapshot`` with ``values`` written to it, or None when the result is not known
    well enough to plan from: a conditional desk's item with no new ``updated_at`` (a
    safe update planned from it would be refused), a moved Jira status (a transition may
    set other fields), an additive locator or a status on a desk without safe updates.
    On a conditional desk (Zendesk) tags and status are modelled: the copy is unsettled
    after the write in any case, so nothing plans a field write from it before a read
    or a poll view that shows it exactly (syncd.poll_stamps) proves it."""
    if not values and not touched:
        return snapshot
    if isinstance(snapshot, DeskItem) and conditional:
        if stamp is None:
            return None
        return replace(_desk_written(snapshot, values), updated_at=stamp)
    if any(locator.endswith(("+", "-")) or locator == STATUS_LOCATOR for locator in values):
        return None
    if isinstance(snapshot, TrackerIssue):
        # A Jira delivery older than this write must not stand in for a read (syncd.engine).
        return replace(snapshot, fields={**snapshot.fields, **values}, written_since_read=True)
    return replace(snapshot, fields={**snapshot.fields, **values})


def _desk_written(item: DeskItem, values: TMapping[str, Value]) -> DeskItem:
    """``item`` as a read would show it after ``values`` were written: the tag locators
    (``tags``, ``tags+``, ``tags-``) on its tags, the status on its status too."""
    fields = dict(item.fields)
    tags = set(item.tags)
    for locator, value in values.items():
        if locator == "tags+":
            tags |= set(value or ())       # type: ignore[arg-type]
        elif locator == "tags-":
            tags -= set(value or ())       # type: ignore[arg-type]
        elif locator == "tags":
            tags = set(value or ())        # type: ignore[arg-type]
        else:
            fields[locator] = value
    if any(locator.startswith("tags") for locator in values):
        fields["tags"] = tuple(sorted(tags)) or None
    status = values.get("status")
    return replace(item, fields=fields, tags=tuple(sorted(tags)),
                   status=str(status) if isinstance(status, str) else item.status)


def _other_side(desk_item: DeskItem | None, issue: TrackerIssue | None) -> Side | None:
    """The side not given (it did not trigger this reconcile), when exactly one is."""
    if (desk_item is None) == (issue is None):
        return None
    return Side.TRACKER if desk_item is not None else Side.DESK
