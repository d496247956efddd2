"""The engine: one dirty item in, every link of it reconciled.

For each link: read both sides, let the pure :func:`syncd.reconcile.plan` decide,
apply the writes (non-idempotent ones behind a recorded intent), store the new
base. The engine never branches on the vendor: desks differ only behind the
:class:`~syncd.connectors.base.DeskConnector` port.

:class:`Engine` is the facade the worker, the runtime and the CLI call. It finds
the links of the item and hands the work to the parts it is built from, each in a
module of its own:

* :mod:`syncd.link_reconcile` — one link: recover, read, plan, carry out, remember;
* :mod:`syncd.escalation` — a desk item's issue created once, key-field links;
* :mod:`syncd.intents` — comments and notes behind recorded intents, and their recovery;
* :mod:`syncd.aggregates` — the issue's fields computed from all its linked desk items;
* :mod:`syncd.field_writes` — field writes to either side; :mod:`syncd.outcome` — what a reconcile did.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping as TMapping

import structlog

from .aggregates import Aggregates
from .connectors.base import DeskConnector, TrackerConnector
from .domain import VERSION_KIND, DeskItem, ItemRef, Link, Side, TrackerIssue
from .errors import NotFound
from .escalation import Escalation
from .field_writes import FieldWriter
from .intents import IntentWrites
from .issue_hints import IssueHint, IssueHints
from .metrics import METRICS
from .link_reconcile import NOTHING, Carried, LinkReconciler
from .locks import LinkBusy, LinkLocks
from .mapping import Mapping
from .outcome import EscalationPending, IntentSettling, Outcome, Write
from .snapshots import SnapshotCache
from .store_ports import EngineStore
from .unsent import UnsentIntents

log = structlog.get_logger("syncd.engine")

__all__ = ["Engine", "EscalationPending", "IntentSettling", "Outcome", "Write"]


class Engine:
    def __init__(self, store: EngineStore, desks: TMapping[str, DeskConnector], tracker: TrackerConnector,
                 mappings: TMapping[str, Mapping], locks: LinkLocks | None = None,
                 create_settle_seconds: float = 10.0, intent_settle_seconds: float = 60.0,
                 snapshots: SnapshotCache | None = None, hints: IssueHints | None = None):
        self.store = store
        # What this process last saw of each side of each link (skips re-reading the unchanged side).
        self.snapshots = snapshots if snapshots is not None else SnapshotCache()
        # What Jira's webhook deliveries showed of each issue (fed by the receiver).
        self.hints = hints if hints is not None else IssueHints()
        self.desks = desks
        self.tracker = tracker
        self.mappings = mappings
        self.locks = locks or LinkLocks()
        self.create_settle_seconds = create_settle_seconds
        # How long a pending comment intent may still be in flight at the vendor:
        # the retry budget plus twice the vendor call timeout (the runtime sets it).
        self.intent_settle_seconds = intent_settle_seconds
        self.unsent = UnsentIntents()   # writes this process never sent while the database was down
        self.fields = FieldWriter(desks, tracker)
        self.intents = IntentWrites(store, desks, tracker, mappings, intent_settle_seconds, self.unsent)
        self.escalation = Escalation(store, desks, tracker, mappings, self.locks, self.intents, self.fields,
                                     create_settle_seconds)
        self.aggregates = Aggregates(mappings, self.fields, self.snapshots)
        self.links = LinkReconciler(store, desks, tracker, mappings, self.locks, self.snapshots, self.intents,
                                    self.escalation, self.fields)

    # -- entry points -----------------------------------------------------
    def reconcile(self, ref: ItemRef, dry_run: bool = False, outcome: Outcome | None = None,
                  reported: float | None = None) -> Outcome:
        """``outcome``: the caller's, filled in as the writes land, so that a reconcile
        that fails half-way still tells what it wrote (the per-link history records it:
        :func:`syncd.history.record_failed`).
        ``reported``: the newest time (epoch seconds) at which the events that queued
        ``ref`` say it changed, when every one of them said so (the claim's stamp, see
        :func:`syncd.queue.mark_dirty`); None when any did not, or nothing is known."""
        outcome = Outcome(ref) if outcome is None else outcome
        if ref.is_desk:
            self._reconcile_desk(ref, outcome, dry_run)
        elif ref.kind == VERSION_KIND:
            self._fan_out_version(ref.id, dry_run)
        else:
            self._reconcile_issue(ref.id, outcome, dry_run, reported)
        return outcome

    def link(self, desk_ref: ItemRef, key: str) -> Link:
        """Link a desk item to an existing issue by key (``syncd link``)."""
        issue = self.tracker.resolve_key(key)
        if issue is None:
            raise NotFound("jira", "getIssue", f"no Jira issue {key}")
        if self.desks[desk_ref.system].fetch(desk_ref) is None:
            raise NotFound(desk_ref.system, "fetch", f"no {desk_ref}")
        return self.escalation.add_link(desk_ref, issue)

    # -- one item ---------------------------------------------------------
    def _reconcile_desk(self, ref: ItemRef, outcome: Outcome, dry_run: bool) -> None:
        desk = self.desks[ref.system]
        known = self.store.linked(ref)
        seen = known.revisions
        item = desk.fetch(ref, known=self.links.known_comments(known.links))
        if item is None:
            log.info("desk_item_gone", item=str(ref))
            return
        mapping = self.mappings[ref.system]
        links = self.store.links_for_desk(ref)
        carried, created = NOTHING, None
        if not dry_run:
            links = links + self.escalation.links_from_key_field(item, links, mapping, outcome)
            if not links and self.escalation.wanted(item, mapping):
                created = self.escalation.escalate(item, mapping, outcome)
                links = [created.link]
                seen = self.store.revisions([created.link.id])
            # The key field and linked tag, and the escalation note, go out with the first
            # link's desk write: one ticket update (issue 16).
            item, fields = self.escalation.housekeeping(item, links, mapping)
            carried = Carried((created.note,) if created else (), fields)
        outcome.links = tuple(links)
        for i, link in enumerate(links):
            # A link typed in this pass re-reads the item. An escalated one is planned from the
            # item as read and the issue as created: the desk write is a safe update, refused
            # if the agent edited meanwhile (then read again), and nothing else wrote the issue.
            made = created is not None and link.id == created.link.id
            self.links.reconcile(link, outcome, dry_run, desk_item=item, issue=created.issue if made else None,
                                 seen=seen.get(link.id, -1), carried=carried if i == 0 else NOTHING)

    def _reconcile_issue(self, issue_id: str, outcome: Outcome, dry_run: bool, reported: float | None) -> None:
        linked = self.store.linked(ItemRef("jira", issue_id))
        links, seen = list(linked.links), linked.revisions
        if not links:
            return
        held = self._held_issue(links, seen, reported) if reported is not None and not dry_run else None
        delivered = self._delivered_issue(issue_id, links, reported) if reported is not None and not held \
            and not dry_run else None
        if held is not None:
            # Every event that queued the issue is older than what this process already
            # read of it (a Jira comment fires comment_created *and* jira:issue_updated;
            # the second finds the first's read): nothing to read again.
            METRICS.inc("issue_read_skipped")
            log.info("issue_read_skipped", issue_id=issue_id, reported=reported)
            issue: TrackerIssue | None = next(iter(held.values()))
        elif delivered is not None:
            # The newest event's delivery showed the issue's fields, and no event is newer.
            METRICS.inc("issue_read_delivered")
            log.info("issue_read_delivered", issue_id=issue_id, reported=reported)
            issue = delivered
        else:
            issue = self.tracker.fetch(issue_id)
        if issue is None:
            log.info("issue_gone", issue_id=issue_id, links=len(links))
            return
        if issue.key != links[0].issue_key and dry_run:
            # The stored key is stale (the issue moved project): the next reconcile stores the new one.
            outcome.writes.append(Write(issue.key, "key", f"{links[0].issue_key} → {issue.key}"))
        if issue.key != links[0].issue_key and not dry_run:
            self.store.update_issue_key(issue_id, issue.key)
            log.info("issue_key_changed", issue_id=issue_id, old=links[0].issue_key, new=issue.key)
            links = self.store.links_for_issue(issue_id)
            # Each desk item shows the key: refresh it there too.
            self.store.mark_dirty([l.desk for l in links], "issue_key_changed")
        outcome.links = tuple(links)
        desk_items: list[DeskItem] = []
        current: TrackerIssue | None = issue
        for i, link in enumerate(links):   # fan-out: every linked desk item in one pass
            # Each link is planned from the issue as the links before it left it: a value one
            # wrote (say the desk status fan-out reopened) is not written again by the next.
            # The first is planned from what this process holds of it, when that stood in.
            first = held[link.id] if held else issue
            done = self.links.reconcile(link, outcome, dry_run, issue=first if i == 0 else current,
                                        seen=seen.get(link.id, 0), covered=frozenset(l.id for l in links[i + 1:]))
            if done.item is not None:
                desk_items.append(done.item)
            current = done.issue
        self.aggregates.refresh(current or issue, links, desk_items, outcome, dry_run)
        if held is None and not dry_run:
            # The comments deliveries carried are in the engine's copy of the issue now (or
            # a read showed them): no news any more. Only now: a pass that failed half-way
            # (the database went away) is retried from the same deliveries, and letting
            # them go when the stand-in was built lost the comment for good.
            self.hints.consumed(issue_id, (c.id for c in issue.comments))   # built only when held

    def _held_issue(self, links: list[Link], seen: TMapping[int, int],
                    reported: float) -> dict[int, TrackerIssue] | None:
        """The issue as this process holds it for each link, when for every link that is a
        read made at the link's current base revision whose ``updated`` is not older than
        ``reported``: then every change the events reported is in it (Jira stamps
        milliseconds, and a comment moves the issue's ``updated``), and what syncd wrote
        since is patched in (:mod:`syncd.snapshots`). None: read the issue."""
        held: dict[int, TrackerIssue] = {}
        for link in links:
            issue = self.snapshots.get(link.id, Side.TRACKER, seen.get(link.id, -1))
            # A delivery's stand-in (comments unproven) may lack a comment another queued
            # delivery carries: then the deliveries are looked at again, below.
            if not isinstance(issue, TrackerIssue) or issue.comments_unproven \
                    or issue.updated_at.timestamp() < reported:
                return None
            held[link.id] = issue
        return held

    def _delivered_issue(self, issue_id: str, links: list[Link], reported: float) -> TrackerIssue | None:
        """The issue as the newest webhook delivery showed it (:mod:`syncd.issue_hints`),
        when that delivery is not older than any event that queued the issue and carries
        every field a read gives; its comments are those of the last read of the issue
        this process made plus the ones deliveries carried. None: read the issue."""
        found = self.hints.delivered(issue_id)
        if found is None or found.stamp < reported:
            return None
        held = [self.snapshots.peek(link.id, Side.TRACKER) for link in links]
        if not held or not all(isinstance(i, TrackerIssue) for i in held):
            return None
        # syncd wrote fields since its last read: the delivery may show the issue from
        # before that write (Jira writes are unconditional; its stamp is not known), and
        # would undo it. Read.
        if any(i.written_since_read for i in held):   # type: ignore[union-attr]
            return None
        # Nor may it go back behind what is held (a late delivery, once the newer one was forgotten).
        if any(i.updated_at.timestamp() > found.stamp for i in held):   # type: ignore[union-attr]
            return None
        return self.tracker.from_delivery(found.issue, held[0].comments, found.comments)   # type: ignore[union-attr]

    def echo_delivered(self, issue_id: str, hint: IssueHint) -> None:
        """A delivery of syncd's own change to the issue (its write's echo: not queued).
        Where it shows every field as this process holds the issue for a link — the read
        with syncd's writes patched in — nobody changed a field between that read and
        the write, so the delivery proves the copy as of its own ``updated``: the copy is
        kept at that stamp (its comments unproven: the poll counts them, see
        :mod:`syncd.poll_stamps`), the poll then does not read the echo, and later
        deliveries may stand in again (``written_since_read`` is cleared). Anything
        else changes nothing: the poll reads the echo as before."""
        if hint.issue is None or hint.issue_stamp is None:
            return
        for link in self.store.links_for_issue(issue_id):
            # The echo can arrive while the reconcile that wrote is still finishing: under
            # the link's lock its copy (the read with the writes patched in) is complete,
            # and so is its base revision (read there too, not before: the copy moves on to
            # the revision that reconcile stores).
            try:
                with self.locks.hold(link.id):
                    self._prove_echo(link, issue_id, hint)
            except LinkBusy:
                log.info("echo_unchecked", link=link.id, issue_id=issue_id)   # the poll reads it

    def _prove_echo(self, link: Link, issue_id: str, hint: IssueHint) -> None:
        """See :meth:`echo_delivered`; the caller holds the link's lock."""
        assert hint.issue is not None and hint.issue_stamp is not None
        revision = self.store.revisions([link.id]).get(link.id, -1)
        held = self.snapshots.get(link.id, Side.TRACKER, revision)
        if not isinstance(held, TrackerIssue) or held.updated_at.timestamp() > hint.issue_stamp:
            return
        shown = self.tracker.from_delivery(hint.issue, held.comments, ())
        if shown is None or shown.fields != held.fields or shown.released_versions != held.released_versions:
            log.info("echo_differs", link=link.id, issue_id=issue_id)
            return
        METRICS.inc("echo_proven")
        self.snapshots.put(link.id, Side.TRACKER, replace(shown, comments_unproven=True), revision)

    def _fan_out_version(self, version_id: str, dry_run: bool) -> None:
        """A released version changes no issue: queue every linked issue that has
        it as a fix version; their reconcile posts the release note."""
        linked = [ItemRef("jira", i) for i in self.tracker.issues_with_fix_version(version_id)
                  if self.store.links_for_issue(i)]
        log.info("version_released", version_id=version_id, linked_issues=len(linked))
        if linked and not dry_run:
            self.store.mark_dirty(linked, "version_released")
