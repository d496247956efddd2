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

from typing import Mapping as TMapping

import structlog

from .aggregates import Aggregates
from .connectors.base import DeskConnector, TrackerConnector
from .domain import VERSION_KIND, DeskItem, ItemRef, Link
from .errors import NotFound
from .escalation import Escalation
from .field_writes import FieldWriter
from .intents import IntentWrites
from .link_reconcile import LinkReconciler
from .locks import LinkLocks
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
                 snapshots: SnapshotCache | None = None):
        self.store = store
        # What this process last saw of each side of each link (skips re-reading the unchanged side).
        self.snapshots = snapshots if snapshots is not None else SnapshotCache()
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
    def reconcile(self, ref: ItemRef, dry_run: bool = False) -> Outcome:
        outcome = Outcome(ref)
        if ref.is_desk:
            self._reconcile_desk(ref, outcome, dry_run)
        elif ref.kind == VERSION_KIND:
            self._fan_out_version(ref.id, dry_run)
        else:
            self._reconcile_issue(ref.id, outcome, dry_run)
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
        known_links = self.store.links_for_desk(ref)
        seen = self.store.revisions([l.id for l in known_links])
        item = desk.fetch(ref, known=self.links.known_comments(known_links))
        if item is None:
            log.info("desk_item_gone", item=str(ref))
            return
        mapping = self.mappings[ref.system]
        links = self.store.links_for_desk(ref)
        if not dry_run:
            links = links + self.escalation.links_from_key_field(item, links, mapping, outcome)
            if not links and self.escalation.wanted(item, mapping):
                links = [self.escalation.escalate(item, mapping, outcome)]
            item = self.escalation.housekeeping(item, links, mapping, outcome)
        for link in links:
            # A link made in this pass (escalation, typed key) re-reads the item:
            # creating it took a while, and the agent may have edited meanwhile.
            self.links.reconcile(link, outcome, dry_run, desk_item=item, seen=seen.get(link.id, -1))

    def _reconcile_issue(self, issue_id: str, outcome: Outcome, dry_run: bool) -> None:
        links = self.store.links_for_issue(issue_id)
        if not links:
            return
        seen = self.store.revisions([l.id for l in links])
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
        desk_items: list[DeskItem] = []
        for link in links:   # fan-out: every linked desk item in one pass
            item = self.links.reconcile(link, outcome, dry_run, issue=issue, seen=seen.get(link.id, 0))
            if item is not None:
                desk_items.append(item)
        self.aggregates.refresh(issue, links, desk_items, outcome, dry_run)

    def _fan_out_version(self, version_id: str, dry_run: bool) -> None:
        """A released version changes no issue: queue every linked issue that has
        it as a fix version; their reconcile posts the release note."""
        linked = [ItemRef("jira", i) for i in self.tracker.issues_with_fix_version(version_id)
                  if self.store.links_for_issue(i)]
        log.info("version_released", version_id=version_id, linked_issues=len(linked))
        if linked and not dry_run:
            self.store.mark_dirty(linked, "version_released")
