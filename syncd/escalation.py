"""Escalation and key-field links: how a desk item comes to have a Jira issue.

A desk item the mapping wants escalated (a tag, a project picked in a dropdown)
gets one issue, created behind a recorded intent and found again by its origin
label after a crash; the link, the issue's description counted as mirrored and
the escalation note follow. Issue keys an agent types into the key field are
linked too. What a frozen writer slipped past the claim check (a second issue
for one origin) is repaired right after the create.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Mapping as TMapping, Sequence

import structlog

from .connectors.base import DeskConnector, TrackerConnector
from .domain import DeskItem, IssueSpec, ItemRef, Link, Side, TrackerIssue, Value
from .errors import Landed, NotFound, RateLimited
from .failpoints import failpoint
from .fencing import current_claim, still_held
from .field_writes import FieldWriter
from .intents import IntentWrites, age, recovered
from .locks import LinkLocks
from .mapping import EscalationRules, Mapping
from .metrics import METRICS
from .outcome import EscalationPending, Outcome, Write
from .aggregates import aggregate_values
from .reconcile import STATUS_LOCATOR, MirrorState, NoteWrite, plan
from .store_ports import EngineStore, Intent, LinkState
from .unsent import watching_send

log = structlog.get_logger("syncd.engine")   # one logger for all of the engine's parts
KEY_RE = re.compile(r"\b([A-Z][A-Z0-9_]+-\d+)\b")


@dataclass(frozen=True)
class Escalated:
    """A desk item's new link, its issue as created, and the escalation note still to post:
    it goes out with the link's first desk write (one ticket update, issue 16)."""

    link: Link
    issue: TrackerIssue
    note: NoteWrite


def create_key(desk: ItemRef | str) -> str:
    """The intent key of the issue created for a desk item."""
    return f"create:{desk}"


class Escalation:
    def __init__(self, store: EngineStore, desks: TMapping[str, DeskConnector], tracker: TrackerConnector,
                 mappings: TMapping[str, Mapping], locks: LinkLocks, intents: IntentWrites, fields: FieldWriter,
                 settle_seconds: float):
        self.store = store
        self.desks = desks
        self.tracker = tracker
        self.mappings = mappings
        self.locks = locks
        self.intents = intents
        self.fields = fields
        # How long Jira search may take to show an issue created by an earlier attempt.
        self.settle_seconds = settle_seconds

    # -- escalate ----------------------------------------------------------
    @staticmethod
    def wanted(item: DeskItem, mapping: Mapping) -> bool:
        rules = mapping.escalation
        if rules.tag and rules.tag in item.tags:
            return True
        return bool(rules.project_field and item.fields.get(rules.project_field))

    def escalate(self, item: DeskItem, mapping: Mapping, outcome: Outcome) -> Escalated:
        """Create the item's issue, once. The create is owned by one claim: the intent records
        the claim that may make it, and nobody else does (a stale worker whose claim was taken
        stops at the claim check right before the request). What slips through anyway (a
        process frozen between that check and its request) is repaired right after: see
        :meth:`_repair_duplicate_issues`."""
        origin = str(item.ref)
        key = create_key(origin)
        intent = self.store.get_intent(key)
        issue = self._earlier_create(key, origin, intent)
        if issue is None:
            issue = self._create(key, origin, item, mapping, intent, outcome)
        elif intent is not None and intent.state != "done":
            recovered(key, origin, "found", issue.key)
        self.store.finish_intent(key, issue.ref.id)
        # A fresh issue created with its one ticket's aggregates needs no pass of its own
        # for them (issue 16: a getIssue per escalation); one found again after a crash does.
        settled = intent is None and all(issue.fields.get(k) == v
                                         for k, v in aggregate_values(mapping, [item]).items())
        link = self.add_link(item.ref, issue, refresh_issue=not settled)
        failpoint("after_link_added")
        # Under the link's lock: a worker reconciling the new issue meanwhile would
        # take an intent recorded here, still in flight (e.g. waiting out a 429),
        # for a crashed one and write it a second time.
        with self.locks.hold(link.id):
            note = self._finish(item, link, issue, mapping, outcome, post=False)
        return Escalated(link, issue, note)

    def _earlier_create(self, key: str, origin: str, intent: Intent | None) -> TrackerIssue | None:
        """The issue an earlier attempt created, if any. A pending create not found yet is
        waited for while Jira search may still be catching up, then taken over (this call
        then creates it)."""
        if intent is None:
            return None
        if intent.state == "done" and intent.result:
            return self.tracker.fetch(intent.result)
        issue = self.tracker.find_created(origin)
        if issue is not None:
            return issue
        if age(intent) < self.settle_seconds and not self.intents.unsent.never_sent(intent):
            raise EscalationPending("jira", "createIssue", "earlier create not visible yet; waiting")
        if not self.store.take_intent(intent, current_claim()):
            raise EscalationPending("jira", "createIssue", "another worker took the create over; waiting")
        recovered(key, origin, "rewritten")
        return None

    def _create(self, key: str, origin: str, item: DeskItem, mapping: Mapping, intent: Intent | None,
                outcome: Outcome) -> TrackerIssue:
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
            except Landed as e:
                # Created, not read: the intent records the issue; the retry links it.
                self.store.finish_intent(key, e.result)
                outcome.writes.append(Write(e.result, "create", f"created for {origin}: {spec.summary}"))
                METRICS.inc("issues_created")
                log.info("issue_created", desk=origin, issue_id=e.result, unread=str(e))
                raise
            except Exception as e:
                # Nothing was created when the request never left (a failed claim check, a
                # Throttled wait, the database gone at the check) or a 429 refused it: drop
                # the intent so the next try creates at once instead of waiting out a settle
                # window measured from this intent. Only createIssue's own 429: an error of a
                # call made after it is no refusal (the connector says Landed for the read of
                # the issue just made, above; crash loops seed 11 and 7101: a second issue
                # per ticket).
                refused = isinstance(e, RateLimited) and e.operation == "createIssue"
                if refused or not send.left:
                    self.intents.drop_unsent(key, current_claim())
                raise
        failpoint("after_issue_create")
        outcome.writes.append(Write(issue.key, "create", f"created for {origin}: {spec.summary}"))
        METRICS.inc("issues_created")
        log.info("issue_created", desk=origin, issue=issue.key, issue_id=issue.ref.id)
        # A second issue for this origin can only come from a create that raced ours: one
        # whose claim was taken while it was frozen (then ours is no longer held), or the
        # earlier attempt of an intent we took over. On the happy path (our own fresh
        # intent, our claim still held) nobody else may create it: no search (issue 16).
        if intent is not None or not still_held():
            return self._repair_duplicate_issues(origin, issue)
        return issue

    def _repair_duplicate_issues(self, origin: str, made: TrackerIssue) -> TrackerIssue:
        """After a create: every issue carrying the origin's label. More than one means a
        create slipped past the claim check (a writer frozen between check and request):
        keep the oldest, delete the others and the links to them. Returns the kept issue."""
        found = self.tracker.created_for(origin)
        if len(found) < 2:
            return made
        keep, extra = found[0], found[1:]
        for issue_id in extra:
            for link in self.store.links_for_issue(issue_id):
                if str(link.desk) == origin:
                    self.store.remove_link(link.desk, issue_id)
            deleted = self.tracker.delete_issue(issue_id)
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
        return IssueSpec(project=_project_for(item, mapping), issue_type=rules.issue_type,
                         summary=rules.summary.format(title=item.title, ref=str(item.ref))[:250],
                         description=description, fields=fields, extra=_created_with(item, mapping, fields))

    # -- finish and resume -------------------------------------------------
    def _finish(self, item: DeskItem, link: Link, issue: TrackerIssue, mapping: Mapping,
                outcome: Outcome, post: bool = True) -> NoteWrite:
        """After the link: the description counted as mirrored, then the escalation note
        (posted here only with ``post``; else the caller carries it into the link's first
        desk write, and :meth:`resume` posts it should that never happen). Idempotent;
        the caller holds the link's lock."""
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
        note = NoteWrite(escalation_note_key(link), mapping.escalation.note.format(issue_key=issue.key,
                                                                                 issue_url=issue.url))
        if post:
            self.intents.post_note(link, note, outcome)
        return note

    def resume(self, link: Link, item: DeskItem, issue: TrackerIssue, outcome: Outcome, state: LinkState) -> bool:
        """Once the link is stored the item is never escalated again, but the rest of the
        escalation may be undone: the escalating worker died (or has not yet taken the
        link's lock). Finish it before planning, or the plan would mirror the first
        comment, already the issue's description. Caller holds the link's lock.
        True when it did something (the link's intents changed)."""
        if state.intent(escalation_note_key(link)) is not None:
            return False
        if not _created_for(link, state):
            return False
        log.info("escalation_resumed", link=link.id, issue=issue.key)
        self._finish(item, link, issue, self.mappings[link.desk.system], outcome)
        return True

    @staticmethod
    def history_scope(link: Link, state: LinkState) -> Link:
        """The link as the plan should see it for the history rule. A link that
        syncd made by escalating the item covers the item's whole conversation:
        a reply written between the agent's tag and the link's creation (the
        daemon was down or behind) is not "history" and must reach Jira. The
        first comment is already recorded as mirrored (it is the description)."""
        if _created_for(link, state):
            return replace(link, created_at=datetime.fromtimestamp(0, timezone.utc))
        return link

    # -- links -------------------------------------------------------------
    def links_from_key_field(self, item: DeskItem, links: list[Link], mapping: Mapping,
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
                self.intents.post_note_unlinked(item, f"syncd: Jira issue {key} does not exist; not linked.",
                                                f"note:badkey:{item.ref}:{key}", outcome)
                continue
            if issue.ref.id in {l.issue_id for l in links + added}:
                continue
            added.append(self.add_link(item.ref, issue))
            outcome.writes.append(Write(str(item.ref), "link", issue.key))
        return added

    def add_link(self, desk_ref: ItemRef, issue: TrackerIssue, refresh_issue: bool = True) -> Link:
        """Store the link and show the desk item in the issue; ``refresh_issue``: queue the
        issue, whose aggregates change with its links (not needed when they already hold)."""
        link = self.store.add_link(desk_ref, issue.ref.id, issue.key)
        self.store.audit("link_added", link.id, desk=str(desk_ref), issue=issue.key)
        desk = self.desks[desk_ref.system]
        self.tracker.upsert_remote_link(issue.ref.id, f"syncd:{desk_ref}", desk.agent_url(desk_ref),
                                        f"{desk_ref.system.capitalize()} {desk_ref.kind.split(':')[-1]} {desk_ref.id}")
        # The issue's aggregates (linked count, organizations, SLA) change with its links.
        if refresh_issue:
            self.store.mark_dirty([issue.ref], "link_added")
        return link

    @staticmethod
    def housekeeping(item: DeskItem, links: Sequence[Link], mapping: Mapping) -> tuple[DeskItem, dict[str, Value]]:
        """What keeps the key field and the linked tag true: the values to write (they go
        out with the first link's desk write, one ticket update) and the item as it will
        then be (its ``updated_at`` still the one read: a safe update is planned from it)."""
        rules = mapping.escalation
        values = _housekeeping_values(item, links, rules)
        if not values:
            return item, {}
        return _with_written(item, values, rules, None), values


def _housekeeping_values(item: DeskItem, links: Sequence[Link], rules: EscalationRules) -> dict[str, Value]:
    """What the item's key field and tags must be given its links, where they differ."""
    if not links:
        return {}
    values: dict[str, Value] = {}
    keys = ", ".join(sorted({l.issue_key for l in links}))
    if rules.key_field and item.fields.get(rules.key_field) != keys:
        values[rules.key_field] = keys
    if rules.linked_tag and item.holds("tags") and rules.linked_tag not in item.tags:
        values["tags+"] = (rules.linked_tag,)
    return values


def _with_written(item: DeskItem, written: TMapping[str, Value], rules: EscalationRules,
                  updated: datetime | None) -> DeskItem:
    """The item as a fresh read would show it after the housekeeping write."""
    fields = dict(item.fields)
    tags = item.tags
    if rules.key_field and rules.key_field in written:
        fields[rules.key_field] = written[rules.key_field]
    if "tags+" in written:
        tags = tuple(sorted({*tags, rules.linked_tag}))
        fields["tags"] = tags
    return replace(item, fields=fields, tags=tags, updated_at=updated or item.updated_at)


def _created_with(item: DeskItem, mapping: Mapping, fields: TMapping[str, Value]) -> dict[str, Value]:
    """What the issue would be written right after its creation, set in the create instead
    (issue 16: an escalation's editIssue calls): the link's first sync (the plan, made
    against the issue as the create sets it up) and the aggregates of its one desk item.
    Not the status (a transition) nor additive locators."""
    provisional = TrackerIssue(ref=ItemRef("jira", "1"), key="", url="", summary="", fields=dict(fields),
                               released_versions=(), comments=(), updated_at=item.updated_at)
    link = Link(0, item.ref, "1", "", datetime.now(timezone.utc))   # not stored: only planned with
    first = plan(mapping, link, item, provisional, {}, MirrorState())
    values = {w.locator: w.value for w in first.field_writes if w.side is Side.TRACKER
              and w.locator != STATUS_LOCATOR and not w.locator.endswith(("+", "-"))}
    values.update({k: v for k, v in aggregate_values(mapping, [item]).items() if v is not None})
    return {k: v for k, v in values.items() if k not in fields}


def escalation_note_key(link: Link) -> str:
    return f"note:escalated:{link.id}"


def _created_for(link: Link, state: LinkState) -> bool:
    """Whether syncd created the link's issue by escalating its desk item."""
    created = state.intent(create_key(link.desk))
    return created is not None and created.state == "done" and created.result == link.issue_id


def _project_for(item: DeskItem, mapping: Mapping) -> str:
    rules = mapping.escalation
    chosen = item.fields.get(rules.project_field) if rules.project_field else None
    if isinstance(chosen, str) and chosen:
        return rules.project_values.get(chosen, chosen.upper())
    if rules.default_project is None:
        raise NotFound("jira", "createIssue", "no project chosen and no escalation.default_project")
    return rules.default_project
