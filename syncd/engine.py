"""The engine: one dirty item in, every link of it reconciled.

For each link: read both sides, let the pure :func:`syncd.reconcile.plan` decide,
apply the writes (non-idempotent ones behind a recorded intent), store the new
base. The engine never branches on the vendor: desks differ only behind the
:class:`~syncd.connectors.base.DeskConnector` port.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping as TMapping, Sequence

import structlog

from .connectors.base import DeskConnector, FieldFailure, TrackerConnector
from .domain import VERSION_KIND, Attachment, Comment, DeskItem, IssueSpec, ItemRef, Link, Side, TrackerIssue, Value
from .errors import Ambiguous, Conflict, NotFound, RateLimited, Transient, VendorError
from .failpoints import failpoint
from .fencing import ClaimLost, current_claim, still_held
from .history import attributed
from .locks import LinkLocks
from .mapping import Mapping
from .metrics import METRICS
from .reconcile import STATUS_LOCATOR, BaseEntry, CommentWrite, MirrorState, NoteWrite, Plan, plan
from .snapshots import SnapshotCache, with_comment
from .queue import Claim
from .store import Intent, LinkState, StaleBase, Store, StoreError
from .unsent import UnsentIntents, watching_send

log = structlog.get_logger("syncd.engine")
KEY_RE = re.compile(r"\b([A-Z][A-Z0-9_]+-\d+)\b")
# How long after its updated_at a remembered desk item must have been read before a
# conditional write may be planned from it: Zendesk's whole second, plus a second
# for the difference between its clock and ours.
SETTLED = timedelta(seconds=2)


@dataclass(frozen=True)
class Write:
    """One write the engine made (or, in a dry run, would make)."""

    target: str        # item ref or issue key
    what: str          # field:<locator> | comment | note | create | link
    detail: str
    # For the link's history (syncd.history): the link, the value replaced, why, and the
    # comment mirrored (source id, or a note's intent key) with the id it got on the target.
    link: int | None = None
    old: str | None = None
    why: str | None = None
    source: str | None = None
    mirrored: str | None = None


@dataclass
class Outcome:
    ref: ItemRef
    writes: list[Write] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)


class EscalationPending(Transient):
    """A create was started (intent recorded) but the issue is not findable yet:
    Jira search is eventually consistent, so wait rather than create twice."""


class IntentSettling(EscalationPending):
    """A comment or note may be in flight (its call timed out, or the process died
    mid-call) and is not visible yet: wait before writing it again."""


class Engine:
    def __init__(self, store: Store, desks: TMapping[str, DeskConnector], tracker: TrackerConnector,
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
        # twice the vendor call timeout (the runtime sets it).
        self.intent_settle_seconds = intent_settle_seconds
        self.unsent = UnsentIntents()   # writes this process never sent while the database was down

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

    def _fan_out_version(self, version_id: str, dry_run: bool) -> None:
        """A released version changes no issue: queue every linked issue that has
        it as a fix version; their reconcile posts the release note."""
        linked = [ItemRef("jira", i) for i in self.tracker.issues_with_fix_version(version_id)
                  if self.store.links_for_issue(i)]
        log.info("version_released", version_id=version_id, linked_issues=len(linked))
        if linked and not dry_run:
            self.store.mark_dirty(linked, "version_released")

    def link(self, desk_ref: ItemRef, key: str) -> Link:
        """Link a desk item to an existing issue by key (``syncd link``)."""
        issue = self.tracker.resolve_key(key)
        if issue is None:
            raise NotFound("jira", "getIssue", f"no Jira issue {key}")
        if self.desks[desk_ref.system].fetch(desk_ref) is None:
            raise NotFound(desk_ref.system, "fetch", f"no {desk_ref}")
        return self._add_link(desk_ref, issue)

    # -- desk side --------------------------------------------------------
    def _reconcile_desk(self, ref: ItemRef, outcome: Outcome, dry_run: bool) -> None:
        desk = self.desks[ref.system]
        known_links = self.store.links_for_desk(ref)
        seen = self.store.revisions([l.id for l in known_links])
        item = desk.fetch(ref, known=self._known_comments(known_links))
        if item is None:
            log.info("desk_item_gone", item=str(ref))
            return
        mapping = self.mappings[ref.system]
        links = self.store.links_for_desk(ref)
        if not dry_run:
            links = links + self._links_from_key_field(item, links, mapping, outcome)
            if not links and self._wants_escalation(item, mapping):
                links = [self._escalate(item, mapping, outcome)]
            item = self._desk_housekeeping(item, links, mapping, outcome)
        for link in links:
            # A link made in this pass (escalation, typed key) re-reads the item:
            # creating it took a while, and the agent may have edited meanwhile.
            self._reconcile_link(link, outcome, dry_run, desk_item=item, seen=seen.get(link.id, -1))

    def _wants_escalation(self, item: DeskItem, mapping: Mapping) -> bool:
        rules = mapping.escalation
        if rules.tag and rules.tag in item.tags:
            return True
        return bool(rules.project_field and item.fields.get(rules.project_field))

    def _project_for(self, item: DeskItem, mapping: Mapping) -> str:
        rules = mapping.escalation
        chosen = item.fields.get(rules.project_field) if rules.project_field else None
        if isinstance(chosen, str) and chosen:
            return rules.project_values.get(chosen, chosen.upper())
        if rules.default_project is None:
            raise NotFound("jira", "createIssue", "no project chosen and no escalation.default_project")
        return rules.default_project

    def _escalate(self, item: DeskItem, mapping: Mapping, outcome: Outcome) -> Link:
        """Create the item's issue, once. The create is owned by one claim: the intent records
        the claim that may make it, and nobody else does (a stale worker whose claim was taken
        stops at the claim check right before the request). What slips through anyway (a
        process frozen between that check and its request) is repaired right after: see
        :meth:`_repair_duplicate_issues`."""
        origin = str(item.ref)
        key = f"create:{origin}"
        intent = self.store.get_intent(key)
        issue: TrackerIssue | None = None
        if intent is not None and intent.state == "done" and intent.result:
            issue = self.tracker.fetch(intent.result)
        elif intent is not None:
            issue = self.tracker.find_created(origin)
            if issue is None and _age(intent) < self.create_settle_seconds and not self.unsent.never_sent(intent):
                raise EscalationPending("jira", "createIssue", "earlier create not visible yet; waiting")
            if issue is None and not self.store.take_intent(intent, current_claim()):
                raise EscalationPending("jira", "createIssue", "another worker took the create over; waiting")
            if issue is None:
                self._recovered(key, origin, "rewritten")
        if issue is None:
            spec = self._issue_spec(item, mapping)
            if intent is None:
                begun = self.store.begin_intent(key, "create", None, {"origin": origin, "project": spec.project},
                                                claim=current_claim())
                if not begun.owned:
                    # Another worker recorded it between our read and now: it makes the create.
                    raise EscalationPending("jira", "createIssue", "another worker records this create; waiting")
            with watching_send() as send:
                try:
                    issue = self.tracker.create_issue(spec, origin)
                except Exception as e:
                    # Nothing was created when the request never left (a failed claim check, a
                    # Throttled wait, the database gone at the check) or a 429 refused it: drop
                    # the intent so the next try creates at once instead of waiting out a settle
                    # window measured from this intent.
                    if isinstance(e, RateLimited) or not send.left:
                        self._drop_unsent(key, current_claim())
                    raise
            failpoint("after_issue_create")
            outcome.writes.append(Write(issue.key, "create", f"created for {origin}: {spec.summary}"))
            METRICS.inc("issues_created")
            log.info("issue_created", desk=origin, issue=issue.key, issue_id=issue.ref.id)
            issue = self._repair_duplicate_issues(origin, issue)
        elif intent is not None and intent.state != "done":
            self._recovered(key, origin, "found", issue.key)
        self.store.finish_intent(key, issue.ref.id)
        link = self._add_link(item.ref, issue)
        failpoint("after_link_added")
        # Under the link's lock: a worker reconciling the new issue meanwhile would
        # take an intent recorded here, still in flight (e.g. waiting out a 429),
        # for a crashed one and write it a second time.
        with self.locks.hold(link.id):
            self._finish_escalation(item, link, issue, mapping, outcome)
        return link

    def _recovered(self, key: str, where: str, how: str, target: str | None = None) -> None:
        log.info("intent_recovered", key=key, where=where, how=how, **({"target": target} if target else {}))

    def _repair_duplicate_issues(self, origin: str, made: TrackerIssue) -> TrackerIssue:
        """After a create: every issue carrying the origin's label. More than one means a
        create slipped past the claim check (a writer frozen between check and request):
        keep the oldest, delete the others and the links to them. Returns the kept issue."""
        found = self.tracker.created_for(origin) if hasattr(self.tracker, "created_for") else []
        if len(found) < 2:
            return made
        keep, extra = found[0], found[1:]
        for issue_id in extra:
            for link in self.store.links_for_issue(issue_id):
                if str(link.desk) == origin:
                    self.store.remove_link(link.desk, issue_id)
            deleted = self.tracker.delete_issue(issue_id)   # type: ignore[attr-defined]
            METRICS.inc("duplicates_repaired")
            log.warning("duplicate_repaired", what="issue", where=origin, removed=issue_id, kept=keep,
                        deleted=deleted)
            self.store.audit("duplicate_repaired", None, what="issue", desk=origin, removed=issue_id, kept=keep)
        if keep == made.ref.id:
            return made
        kept = self.tracker.fetch(keep)
        if kept is None:
            raise EscalationPending("jira", "createIssue", f"kept issue {keep} of {origin} not readable yet")
        return kept

    def _history_scope(self, link: Link, state: LinkState) -> Link:
        """The link as the plan should see it for the history rule. A link that
        syncd made by escalating the item covers the item's whole conversation:
        a reply written between the agent's tag and the link's creation (the
        daemon was down or behind) is not "history" and must reach Jira. The
        first comment is already recorded as mirrored (it is the description)."""
        created = state.intent(f"create:{link.desk}")
        if created is not None and created.state == "done" and created.result == link.issue_id:
            return replace(link, created_at=datetime.fromtimestamp(0, timezone.utc))
        return link

    def _resume_escalation(self, link: Link, item: DeskItem, issue: TrackerIssue, outcome: Outcome,
                           state: LinkState) -> bool:
        """Once the link is stored the item is never escalated again, but the rest of the
        escalation may be undone: the escalating worker died (or has not yet taken the
        link's lock). Finish it before planning, or the plan would mirror the first
        comment, already the issue's description. Caller holds the link's lock.
        True when it did something (the link's intents changed)."""
        if state.intent(f"note:escalated:{link.id}") is not None:
            return False
        created = state.intent(f"create:{link.desk}")
        if created is None or created.state != "done" or created.result != link.issue_id:
            return False
        log.info("escalation_resumed", link=link.id, issue=issue.key)
        self._finish_escalation(item, link, issue, self.mappings[link.desk.system], outcome)
        return True

    def _finish_escalation(self, item: DeskItem, link: Link, issue: TrackerIssue, mapping: Mapping,
                           outcome: Outcome) -> None:
        """After the link: the description counted as mirrored, then the escalation note.
        Idempotent; the caller holds the link's lock."""
        if item.comments:
            # The first comment became the issue's description: record it as
            # mirrored so it does not arrive a second time as a comment.
            first = item.comments[0]
            done = f"comment:{link.id}:{Side.TRACKER.value}:{first.id}"
            # A record, not a write (nothing is sent): whoever recorded it, it ends done.
            begun = self.store.begin_intent(done, "comment", link.id, {"side": Side.TRACKER.value,
                                                                       "source_id": first.id,
                                                                       "body": "(issue description)", "public": True},
                                            claim=current_claim())
            if begun.intent.state != "done":
                self.store.finish_intent(done, "description")
        note = mapping.escalation.note.format(issue_key=issue.key, issue_url=issue.url)
        self._post_note(link, NoteWrite(f"note:escalated:{link.id}", note), outcome)

    def _issue_spec(self, item: DeskItem, mapping: Mapping) -> IssueSpec:
        rules = mapping.escalation
        first = item.comments[0].body if item.comments else item.description
        description = "\n".join([
            first, "",
            f"Requester: {item.requester or 'unknown'}",
            f"Organization: {item.organization or 'none'}",
            f"Support item: {item.url}",
        ])
        fields: dict[str, Value] = dict(rules.fields)
        if rules.labels:
            fields["labels"] = tuple(sorted(rules.labels))
        return IssueSpec(project=self._project_for(item, mapping), issue_type=rules.issue_type,
                         summary=rules.summary.format(title=item.title, ref=str(item.ref))[:250],
                         description=description, fields=fields)

    def _links_from_key_field(self, item: DeskItem, links: list[Link], mapping: Mapping,
                              outcome: Outcome) -> list[Link]:
        """An agent typed issue keys into the key field: link the new ones."""
        locator = mapping.escalation.key_field
        typed = item.fields.get(locator) if locator else None
        if not typed:
            return []
        text = " ".join(typed) if isinstance(typed, tuple) else typed
        known = {l.issue_key for l in links}
        added: list[Link] = []
        for key in dict.fromkeys(KEY_RE.findall(text.upper())):
            if key in known:
                continue
            issue = self.tracker.resolve_key(key)
            if issue is None:
                log.warning("link_refused", desk=str(item.ref), key=key, reason="no such Jira issue")
                self._post_note_unlinked(item, f"syncd: Jira issue {key} does not exist; not linked.",
                                         f"note:badkey:{item.ref}:{key}", outcome)
                continue
            if issue.ref.id in {l.issue_id for l in links + added}:
                continue
            added.append(self._add_link(item.ref, issue))
            outcome.writes.append(Write(str(item.ref), "link", issue.key))
        return added

    def _add_link(self, desk_ref: ItemRef, issue: TrackerIssue) -> Link:
        link = self.store.add_link(desk_ref, issue.ref.id, issue.key)
        self.store.audit("link_added", link.id, desk=str(desk_ref), issue=issue.key)
        desk = self.desks[desk_ref.system]
        self.tracker.upsert_remote_link(issue.ref.id, f"syncd:{desk_ref}", _desk_url(desk, desk_ref),
                                        f"{desk_ref.system.capitalize()} {desk_ref.kind.split(':')[-1]} {desk_ref.id}")
        # The issue's aggregates (linked count, organizations, SLA) change with its links.
        self.store.mark_dirty([issue.ref], "link_added")
        return link

    def _desk_housekeeping(self, item: DeskItem, links: Sequence[Link], mapping: Mapping,
                           outcome: Outcome) -> DeskItem:
        """Keep the key field and the linked tag true, in one write; returns the item as it now is."""
        if not links:
            return item
        values: dict[str, Value] = {}
        rules = mapping.escalation
        keys = ", ".join(sorted({l.issue_key for l in links}))
        if rules.key_field and item.fields.get(rules.key_field) != keys:
            values[rules.key_field] = keys
        if rules.linked_tag and item.holds("tags") and rules.linked_tag not in item.tags:
            values["tags+"] = (rules.linked_tag,)
        if not values:
            return item
        failed = {f.locator for f in self._write_fields(Side.DESK, item.ref, None, values, outcome)}
        fields = dict(item.fields)
        tags = item.tags
        if rules.key_field and rules.key_field in values and rules.key_field not in failed:
            fields[rules.key_field] = keys
        if "tags+" in values and "tags+" not in failed:
            tags = tuple(sorted({*tags, rules.linked_tag}))   # type: ignore[arg-type]
            fields["tags"] = tags
        # The write moved updated_at: a safe update planned from the old one would be refused.
        updated = None if failed else self._stamp_after_write(item.ref)
        return replace(item, fields=fields, tags=tags, updated_at=updated or item.updated_at)

    # -- tracker side -----------------------------------------------------
    def _reconcile_issue(self, issue_id: str, outcome: Outcome, dry_run: bool) -> None:
        links = self.store.links_for_issue(issue_id)
        if not links:
            return
        seen = self.store.revisions([l.id for l in links])
        issue = self.tracker.fetch(issue_id)
        if issue is None:
            log.info("issue_gone", issue_id=issue_id, links=len(links))
            return
        if issue.key != links[0].issue_key and not dry_run:
            self.store.update_issue_key(issue_id, issue.key)
            log.info("issue_key_changed", issue_id=issue_id, old=links[0].issue_key, new=issue.key)
            links = self.store.links_for_issue(issue_id)
            # Each desk item shows the key: refresh it there too.
            self.store.mark_dirty([l.desk for l in links], "issue_key_changed")
        desk_items: list[DeskItem] = []
        for link in links:   # fan-out: every linked desk item in one pass
            item = self._reconcile_link(link, outcome, dry_run, issue=issue, seen=seen.get(link.id, 0))
            if item is not None:
                desk_items.append(item)
        self._aggregates(issue, links, desk_items, outcome, dry_run)

    def _aggregates(self, issue: TrackerIssue, links: Sequence[Link], items: Sequence[DeskItem],
                    outcome: Outcome, dry_run: bool = False) -> None:
        if not items:
            return
        mapping = self.mappings[items[0].ref.system]
        values: dict[str, Value] = {}
        if mapping.linked_count_field:
            values[mapping.linked_count_field] = str(len(items))
        if mapping.linked_orgs_field:
            values[mapping.linked_orgs_field] = str(len({i.organization for i in items if i.organization}))
        if mapping.sla_field:
            dues = sorted(i.due_at for i in items if i.due_at is not None)
            values[mapping.sla_field] = dues[0].strftime("%Y-%m-%dT%H:%M:%S.000+0000") if dues else None
        changed = {k: v for k, v in values.items() if issue.fields.get(k) != v}
        if changed and dry_run:   # `syncd plan` shows what `resync` writes, aggregates included
            outcome.writes.extend(Write(issue.key, f"field:{k}", _show(v)) for k, v in changed.items())
            return
        if changed:
            failed = {f.locator for f in self._write_fields(Side.TRACKER, issue.ref, issue.key, changed, outcome)}
            written = {k: v for k, v in changed.items() if k not in failed}
            # Keep the remembered issue in step (these fields are syncd's alone, outside
            # the base): the next desk-side change then needs no read of the issue.
            for link in links:
                if failed:
                    self.snapshots.drop(link.id, Side.TRACKER)
                else:
                    self.snapshots.patch(link.id, Side.TRACKER,
                                         lambda seen: replace(seen, fields={**seen.fields, **written}))

    # -- one link ---------------------------------------------------------
    def _reconcile_link(self, link: Link, outcome: Outcome, dry_run: bool,
                        desk_item: DeskItem | None = None, issue: TrackerIssue | None = None,
                        seen: int = 0) -> DeskItem | None:
        """Every write made meanwhile is the link's, with why (its history: syncd.history)."""
        writes, plans = len(outcome.writes), len(outcome.plans)
        try:
            return self._sync_link(link, outcome, dry_run, desk_item, issue, seen)
        finally:
            outcome.writes[writes:] = attributed(outcome.writes[writes:], link, outcome.plans[plans:])

    def _sync_link(self, link: Link, outcome: Outcome, dry_run: bool,
                   desk_item: DeskItem | None = None, issue: TrackerIssue | None = None,
                   seen: int = 0) -> DeskItem | None:
        """``seen``: the link's base revision before ``desk_item``/``issue`` were read.
        Given one side (the one that changed), the other may come from the snapshot
        cache (see :mod:`syncd.snapshots` for when that is safe)."""
        mapping = self.mappings[link.desk.system]
        with self.locks.hold(link.id):
            other = _other_side(link, desk_item, issue)
            # Base and intents in one read; read again only after something changed them.
            state = self.store.link_state(link.id, (f"create:{link.desk}",))
            if not dry_run:
                self._recover_intents(link, outcome, state)
            base, revision = state.base, state.revision
            if revision != seen:
                # Another worker synced this link after our read: a stale value
                # would look like a fresh edit and undo that worker's write.
                desk_item, issue, other = None, None, None
            cached: Side | None = None
            if other is not None and not dry_run:
                remembered = self.snapshots.get(link.id, other, revision)
                if remembered is not None:
                    cached = other
                    if other is Side.DESK:
                        desk_item = remembered  # type: ignore[assignment]
                    else:
                        issue = remembered  # type: ignore[assignment]
            item = desk_item
            while True:
                item = item or self._fetch_desk(link)
                if item is None:
                    log.info("desk_item_gone", link=link.id, desk=str(link.desk))
                    return None
                issue = issue or self.tracker.fetch(link.issue_id)
                if issue is None:
                    log.info("issue_gone", link=link.id, issue_id=link.issue_id)
                    return item
                if not dry_run and self._resume_escalation(link, item, issue, outcome, state):
                    state = self.store.link_state(link.id, (f"create:{link.desk}",))
                p = plan(mapping, self._history_scope(link, state), item, issue, base, _mirror_state(state))
                if cached is None or not p.field_writes or self._may_write_unread(p, cached, item):
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
            outcome.plans.append(p)
            outcome.decisions.extend(f"{d.field}: {d.kind}: {d.detail}" for d in p.decisions)
            for d in p.decisions:
                if d.kind == "conflict":   # a value someone set is being overwritten: say so, with both
                    log.warning("field_conflict", link=link.id, field=d.field, kept=d.kept,
                                replaced=d.replaced, detail=d.detail)
                elif d.kind == "unmapped":
                    log.info("field_unmapped", link=link.id, field=d.field, detail=d.detail)
            if dry_run:
                _describe(p, link, outcome)
                return item
            try:
                new_base, posted = self._apply(link, p, item, issue, base, outcome)
            except Conflict:
                # The desk refused a safe update: someone edited the item since it was
                # read. Nothing else of the plan was written (desk fields go first);
                # reconcile again from fresh reads.
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
                return item
            if new_base != base:
                try:
                    revision = self.store.put_base(link.id, new_base, revision)
                except StaleBase:
                    # Another worker or process synced this link meanwhile. Our writes
                    # were idempotent; reconcile once more from a fresh read.
                    log.info("base_moved", link=link.id)
                    self._unfinished(link, outcome, "base_moved")
                    self._forget(link)
                    return item
            self._remember(link, p, item, issue, posted, revision)
            return item

    def _unfinished(self, link: Link, outcome: Outcome, reason: str) -> None:
        """A reconcile that could not finish leaves its item dirty (and the link's desk item,
        whose fresh read decides again): completing the claim then keeps the row."""
        self.store.mark_dirty({link.desk, outcome.ref}, reason)

    def _fetch_desk(self, link: Link) -> DeskItem | None:
        return self.desks[link.desk.system].fetch(link.desk, known=self._known_comments([link]))

    def _known_comments(self, links: Sequence[Link]) -> tuple[Comment, ...] | None:
        """The desk item's comments as last seen through any of ``links`` (any revision:
        comments are only ever added, so a count check is all a connector needs)."""
        for link in links:
            seen = self.snapshots.peek(link.id, Side.DESK)
            if seen is not None:
                return seen.comments
        return None

    def _may_write_unread(self, p: Plan, cached: Side, item: DeskItem) -> bool:
        """Whether the plan made with a remembered side may be carried out as it is: only
        when every field write goes to that side, the vendor refuses a write planned from
        an outdated copy (Zendesk's safe update) and the copy is *settled*: read at least
        :data:`SETTLED` after its ``updated_at``. Zendesk stamps whole seconds, so an edit
        made in the same second as the copy's stamp would look like no change to it.
        Anything else reads the side first."""
        if cached is not Side.DESK or not self._conditional(item.ref):
            return False
        if item.observed_at is None or item.observed_at - item.updated_at < SETTLED:
            return False
        return all(w.side is Side.DESK for w in p.field_writes)

    def _remember(self, link: Link, p: Plan, item: DeskItem, issue: TrackerIssue,
                  posted: TMapping[Side, Sequence[Comment]], revision: int) -> None:
        """Keep what each side now holds, as of the link's new revision: the fields
        written set on it, the comments posted added. A desk item written to without
        knowing its new ``updated_at`` and a Jira issue whose status was moved (a
        transition may set other fields) are forgotten instead."""
        writes = {(w.side, w.locator): w.value for w in p.field_writes}
        for side, snapshot in ((Side.DESK, item), (Side.TRACKER, issue)):
            values = {locator: value for (s, locator), value in writes.items() if s is side}
            patched = _patched(snapshot, values, self._stamp_after_write(link.desk) if side is Side.DESK else None,
                               side is Side.DESK and self._conditional(link.desk))
            if patched is None:
                self.snapshots.drop(link.id, side)
                continue
            for comment in posted.get(side, ()):
                patched = with_comment(patched, comment)
            self.snapshots.put(link.id, side, patched, revision)

    def _conditional(self, ref: ItemRef) -> bool:
        """Whether the item's desk refuses a write planned from an outdated copy."""
        return self.desks[ref.system].conditional_writes

    def _stamp_after_write(self, ref: ItemRef) -> datetime | None:
        """The item's ``updated_at`` right after syncd's last field write, where the desk tells."""
        return self.desks[ref.system].written_stamp(ref)

    def _forget(self, link: Link) -> None:
        for side in Side:
            self.snapshots.drop(link.id, side)

    def _apply(self, link: Link, p: Plan, item: DeskItem, issue: TrackerIssue,
               base: TMapping[str, BaseEntry], outcome: Outcome) -> tuple[dict[str, BaseEntry], dict[Side, list[Comment]]]:
        """Make the plan's writes; returns the base to store and the comments posted, by side."""
        new_base = dict(p.new_base)
        posted: dict[Side, list[Comment]] = {Side.DESK: [], Side.TRACKER: []}
        for side, ref, key in ((Side.DESK, item.ref, None), (Side.TRACKER, issue.ref, issue.key)):
            writes = {w.locator: w.value for w in p.field_writes if w.side is side}
            if not writes:
                continue
            failed = self._write_fields(side, ref, key, writes, outcome,
                                        expect=item.updated_at if side is Side.DESK else None)
            if len(failed) < len(writes):
                self._queue_siblings(link, side, ref)
            for failure in failed:
                for w in p.field_writes:
                    if w.side is side and w.locator == failure.locator:
                        # Keep the old base for that field alone: it is tried again next time.
                        if w.field in base:
                            new_base[w.field] = base[w.field]
                        else:
                            new_base.pop(w.field, None)
        for cw in p.comment_writes:
            posted[cw.side].extend(self._post_comment(link, cw, outcome))
        for note in p.notes:
            posted[Side.DESK].extend(self._post_note(link, note, outcome))
        return new_base, posted

    def _queue_siblings(self, link: Link, side: Side, ref: ItemRef) -> None:
        """A value written to an issue (or desk item) shared by other links must
        reach them too. The echo webhook of syncd's own write is not queued (see
        syncd.webhooks), so the engine queues the written item itself."""
        others = (self.store.links_for_issue(link.issue_id) if side is Side.TRACKER
                  else self.store.links_for_desk(link.desk))
        if any(other.id != link.id for other in others):
            self.store.mark_dirty([ref], "shared_item_written")

    def _write_fields(self, side: Side, ref: ItemRef, key: str | None, values: dict[str, Value],
                      outcome: Outcome, expect: datetime | None = None) -> Sequence[FieldFailure]:
        """``expect``: the desk item's ``updated_at`` the values were planned from; a desk
        with conditional writes refuses them (Conflict) if the item changed since."""
        if side is Side.DESK:
            desk = self.desks[ref.system]
            if expect is not None and self._conditional(ref):
                failures = desk.update_fields(ref, values, expect=expect)
            else:
                failures = desk.update_fields(ref, values)
        else:
            failures = self.tracker.update_fields(ref.id, values)
        failpoint("after_field_write")
        failed = {f.locator for f in failures}
        for f in failures:
            log.warning("field_write_failed", target=str(ref), locator=f.locator, reason=f.reason)
            outcome.decisions.append(f"{f.locator}: refused: {f.reason}")
        for locator, value in values.items():
            if locator not in failed:
                outcome.writes.append(Write(key or str(ref), f"field:{locator}", _show(value)))
        METRICS.inc("field_writes", len(values) - len(failed))
        return failures

    # -- comments and notes (non-idempotent: intent first) ----------------
    def _post_comment(self, link: Link, cw: CommentWrite, outcome: Outcome) -> tuple[Comment, ...]:
        """Returns the comment as posted (none when another attempt owns or made it)."""
        key = f"comment:{link.id}:{cw.side.value}:{cw.source_id}"
        if self.store.get_intent(key) is not None:
            return ()
        body, files = self._attachments(link, cw)
        payload = {"side": cw.side.value, "source_id": cw.source_id, "body": body, "public": cw.public}
        if not self._own_intent(key, "comment", link.id, payload):
            return ()
        target = self._write_comment(link, key, cw.side, body, cw.public, files)
        failpoint("after_comment_post")
        if cw.side is Side.TRACKER and not still_held():
            target = self._repair_duplicate_comments(link, key, target)
        self.store.finish_intent(key, target)
        outcome.writes.append(Write(link.issue_key if cw.side is Side.TRACKER else str(link.desk),
                                    "comment", _excerpt(cw.body), source=cw.source_id, mirrored=target))
        METRICS.inc("comments_mirrored")
        log.info("comment_mirrored", link=link.id, direction=f"to_{cw.side.value}", source=cw.source_id,
                 target=target, public=cw.public)
        return (_own_comment(target, body, cw.public),)

    def _repair_duplicate_comments(self, link: Link, key: str, made: str) -> str:
        """The comment was posted under a claim taken meanwhile (this process was frozen between
        its check and its request): the new holder may have posted it too. Keep the oldest
        comment carrying the intent's marker, delete the others. Returns the kept one."""
        found = self.tracker.find_comments(link.issue_id, key)   # type: ignore[attr-defined]
        if len(found) < 2:
            return made
        keep = found[0]
        for comment_id in found[1:]:
            deleted = self.tracker.delete_comment(link.issue_id, comment_id)   # type: ignore[attr-defined]
            METRICS.inc("duplicates_repaired")
            log.warning("duplicate_repaired", what="comment", where=link.issue_key, key=key, removed=comment_id,
                        kept=keep, deleted=deleted)
            self.store.audit("duplicate_repaired", link.id, what="comment", issue=link.issue_key, key=key,
                             removed=comment_id, kept=keep)
        return keep

    def _attachments(self, link: Link, cw: CommentWrite) -> tuple[str, tuple[Attachment, ...]]:
        """Per the mapping: files within the size limit are downloaded from the
        source side and uploaded; the others become a line with their link (and
        why they were not copied). Done before the intent is recorded, so the
        recorded body is the one written (recovery matches on it)."""
        rules = self.mappings[link.desk.system].attachments
        if not cw.attachments or not rules.enabled:
            return cw.body, ()
        source: DeskConnector | TrackerConnector = (
            self.desks[link.desk.system] if cw.side is Side.TRACKER else self.tracker)
        lines: list[str] = []
        files: list[Attachment] = []
        for a in cw.attachments:
            if rules.mode == "upload" and a.size <= rules.max_bytes:
                files.append(replace(a, data=source.download(a)))
                continue
            why = "" if rules.mode == "link" else f" (not copied: larger than {rules.max_bytes:,} bytes)"
            lines.append(f"Attachment {a.name}, {a.size:,} bytes: {a.url}{why}")
        body = cw.body + ("\n\n" + "\n".join(lines) if lines else "")
        return body, tuple(files)

    def _own_intent(self, key: str, kind: str, link_id: int | None, payload: dict) -> bool:
        """Record the intent under the current claim; true only when *this* call recorded it.
        Another worker or process (``syncd link`` beside the daemon) that planned the same write
        owns it while it is pending, and recovery looks after it if that one died."""
        begun = self.store.begin_intent(key, kind, link_id, payload, claim=current_claim())
        if not begun.owned and begun.intent.state == "pending":
            log.info("intent_owned_elsewhere", key=key)
        return begun.owned

    def _post_note(self, link: Link, note: NoteWrite, outcome: Outcome) -> tuple[Comment, ...]:
        payload = {"side": Side.DESK.value, "body": note.body, "public": note.public}
        if not self._own_intent(note.key, "note", link.id, payload):
            return ()
        target = self._write_comment(link, note.key, Side.DESK, note.body, note.public, ())
        failpoint("after_note_post")
        self.store.finish_intent(note.key, target)
        outcome.writes.append(Write(str(link.desk), "note", _excerpt(note.body), source=note.key, mirrored=target))
        log.info("note_posted", link=link.id, key=note.key, public=note.public)
        return (_own_comment(target, note.body, note.public),)

    def _post_note_unlinked(self, item: DeskItem, body: str, key: str, outcome: Outcome) -> None:
        begun = self.store.begin_intent(key, "note", None, {"side": "desk", "body": body, "public": False},
                                        claim=current_claim())
        intent = begun.intent
        if intent.state == "done":
            return
        desk = self.desks[item.ref.system]
        if not begun.owned:
            # An earlier attempt recorded it and died or timed out: look before writing again.
            found = desk.find_comment(item.ref, body, _desk_search_since(intent))
            if found is not None:
                self.store.finish_intent(key, found)
                self._recovered(key, str(item.ref), "found", found)
                return
            if _age(intent) < self.intent_settle_seconds and not self.unsent.never_sent(intent):
                raise IntentSettling(item.ref.system, "note", f"{key} not visible yet; waiting before writing again")
            if not self.store.take_intent(intent, current_claim()):
                raise IntentSettling(item.ref.system, "note", f"{key} taken over by another worker")
            self._recovered(key, str(item.ref), "rewritten")
        target = self._intent_write(key, lambda: desk.add_comment(item.ref, body, False))
        self.store.finish_intent(key, target)
        outcome.writes.append(Write(str(item.ref), "note", _excerpt(body), source=key, mirrored=target))

    def _write_comment(self, link: Link, key: str, side: Side, body: str, public: bool,
                       attachments: Sequence) -> str:
        if side is Side.TRACKER:
            return self._intent_write(key, lambda: self.tracker.add_comment(
                link.issue_id, body, source=key, attachments=attachments))
        return self._intent_write(key, lambda: self.desks[link.desk.system].add_comment(
            link.desk, body, public, attachments))

    def _intent_write(self, key: str, write: Callable[[], str]) -> str:
        """Make the write of pending intent ``key``. Refused, or stopped before its request
        left: nothing to look for later, so the intent is dropped and the next try writes at
        once. Ambiguous (no answer in time): the intent stays for recovery to look first."""
        with watching_send() as send:
            try:
                return write()
            except Exception as e:
                refused = isinstance(e, VendorError) and not isinstance(e, Ambiguous)
                if refused or not send.left:
                    self._drop_unsent(key, current_claim())
                raise

    def _drop_unsent(self, key: str, claim: Claim | None) -> None:
        """Forget the pending intent of a write that never happened; when the database is what
        failed, remember it in this process so recovery here need not wait (syncd.unsent)."""
        try:
            self.store.drop_intent(key, claim)
        except StoreError:
            self.unsent.remember(key, claim)

    def _recover_intents(self, link: Link, outcome: Outcome, state: LinkState) -> None:
        """A pending intent means an earlier attempt died between recording and
        finishing: look for the write on the vendor side before writing again."""
        for intent in state.intents:
            if intent.link_id != link.id or intent.state != "pending" or intent.kind not in ("comment", "note"):
                continue
            p = intent.payload
            side = Side(p["side"])
            if side is Side.TRACKER:
                found = self.tracker.find_comment(link.issue_id, intent.key)
            else:
                found = self.desks[link.desk.system].find_comment(link.desk, p["body"], _desk_search_since(intent))
            where = str(link.desk) if side is Side.DESK else link.issue_key
            if found is None and _age(intent) < self.intent_settle_seconds and not self.unsent.never_sent(intent):
                # It may still land (a stalled call, a crash mid-call): look again later.
                raise IntentSettling(link.desk.system if side is Side.DESK else "jira", intent.kind,
                                     f"{intent.key} not visible yet; waiting before writing again")
            if found is None:
                # Written again only by the claim that takes the intent over (one of two takers wins).
                if not self.store.take_intent(intent, current_claim()):
                    raise IntentSettling(link.desk.system if side is Side.DESK else "jira", intent.kind,
                                         f"{intent.key} taken over by another worker")
                found = self._write_comment(link, intent.key, side, p["body"], bool(p.get("public")), ())
                outcome.writes.append(Write(where, intent.kind, _excerpt(p["body"]),
                                            source=p.get("source_id", intent.key), mirrored=found))
                log.info("intent_replayed", link=link.id, key=intent.key)
                self._recovered(intent.key, where, "rewritten", found)
            else:
                self._recovered(intent.key, where, "found", found)
            self.store.finish_intent(intent.key, found)


def _patched(snapshot: DeskItem | TrackerIssue, values: TMapping[str, Value],
             stamp: datetime | None, conditional: bool) -> DeskItem | TrackerIssue | None:
    """``snapshot`` with ``values`` written to it, or None when the result is not known
    well enough to plan from: a conditional desk's item with no new ``updated_at`` (a
    safe update planned from it would be refused), a moved status (a transition or a
    state change may set other fields), an additive locator."""
    if not values:
        return snapshot
    if any(locator.endswith(("+", "-")) or locator == STATUS_LOCATOR for locator in values):
        return None
    if conditional:
        if stamp is None:
            return None
        return replace(snapshot, fields={**snapshot.fields, **values}, updated_at=stamp)
    return replace(snapshot, fields={**snapshot.fields, **values})


def _other_side(link: Link, desk_item: DeskItem | None, issue: TrackerIssue | None) -> Side | None:
    """The side not given (it did not trigger this reconcile), when exactly one is."""
    if (desk_item is None) == (issue is None):
        return None
    return Side.TRACKER if desk_item is not None else Side.DESK


def _own_comment(target: str, body: str, public: bool) -> Comment:
    """A comment syncd just posted, as a fresh read would show it (enough for the plan)."""
    return Comment(id=target, author="syncd", body=body, public=public,
                   created_at=datetime.now(timezone.utc), by_integration=True)


def _mirror_state(state: LinkState) -> MirrorState:
    """The comments already mirrored (or being mirrored) of the link, by side."""
    to_tracker: set[str] = set()
    to_desk: set[str] = set()
    for intent in state.intents:
        if intent.kind != "comment" or intent.link_id is None:
            continue
        side, source = intent.payload["side"], intent.payload["source_id"]
        (to_tracker if side == Side.TRACKER.value else to_desk).add(source)
    return MirrorState(frozenset(to_tracker), frozenset(to_desk))


def _desk_url(desk: DeskConnector, ref: ItemRef) -> str:
    return desk.agent_url(ref)


def _age(intent: Intent) -> float:
    created = intent.created_at if intent.created_at.tzinfo else intent.created_at.replace(tzinfo=timezone.utc)
    return time.time() - created.timestamp()


def _desk_search_since(intent: Intent) -> datetime:
    """Where recovery starts looking for a desk comment an intent may have written: desks
    carry no marker, so by body, from a little before the intent (vendors stamp seconds)."""
    since = intent.created_at.replace(tzinfo=intent.created_at.tzinfo or timezone.utc)
    return _minus(since, 120)


def _minus(when: datetime, seconds: float) -> datetime:
    return datetime.fromtimestamp(when.timestamp() - seconds, timezone.utc)


def _show(value: Value) -> str:
    if isinstance(value, tuple):
        return ", ".join(value)
    return "∅" if value is None else value


def _excerpt(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _describe(p: Plan, link: Link, outcome: Outcome) -> None:
    for w in p.field_writes:
        target = link.issue_key if w.side is Side.TRACKER else str(link.desk)
        outcome.writes.append(Write(target, f"field:{w.locator}", _show(w.value)))
    for cw in p.comment_writes:
        target = link.issue_key if cw.side is Side.TRACKER else str(link.desk)
        outcome.writes.append(Write(target, "comment", _excerpt(cw.body)))
    for n in p.notes:
        outcome.writes.append(Write(str(link.desk), "note", _excerpt(n.body)))


__all__ = ["Engine", "Outcome", "Write", "EscalationPending"]
