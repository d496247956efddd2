"""Backfill (``syncd backfill --since DATE``): desk items that should already be
escalated or linked, found through the desk's own listing and queued for the
running daemon.

The daemon learns of an item from a webhook or a poll. Its first Zendesk poll
starts a minute before it did, so a ticket tagged (or given a project, or an
issue key typed into its key field) before syncd was installed, or while its
webhooks were not set up, is never seen unless someone edits it again. The
backfill reads every item changed since ``DATE``:

* Zendesk: the cursor-based incremental ticket export (``start_time`` = DATE,
  included), paced below the export's own limit (10 requests a minute,
  shared with the daemon's poller) on top of the account budget;
* Intercom: conversation and ticket search on ``updated_at`` (Intercom's ``>``
  includes equality), paced by the account budget;

and checks each record against the desk's mapping ``[escalation]`` rules as the
engine would (:func:`wanted`: the escalation tag, the project field, issue keys
in the key field). A closed or deleted Zendesk ticket is reported, not queued
(Zendesk refuses any update to it). An item the rules want is **queued** (marked dirty, reason
``backfill``) unless syncd already holds what it asks for (**already linked**: a
link for an escalation; every typed key linked). The daemon does the work and
pays for it from its budget: the create happens behind its recorded intent, so
an item queued twice (two backfills, or a backfill and a webhook) is escalated
once. The backfill itself only reads from the vendors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping as TMapping, Protocol, Sequence

import structlog

from .budget import Budget
from .domain import ItemRef, Link, Value, vendor_refs
from .mapping import EscalationRules

log = structlog.get_logger(__name__)

SINCE_EXPECTED = "a date (2026-11-30) or a UTC time (2026-11-30T08:00:00Z)"
KEY_IN_TEXT = re.compile(r"\b([A-Z][A-Z0-9_]+-\d+)\b")   # as the engine reads the key field
# The Zendesk export allows 10 requests a minute per account; the daemon's poller (every
# 10 s) takes up to 6 of them, so the backfill keeps to the rest.
EXPORT_PER_MINUTE = 4.0
QUEUED, WOULD_QUEUE, ALREADY_LINKED = "queued", "would queue", "already linked"
CLOSED = "closed"   # a closed (or deleted) Zendesk ticket: read-only there, so not queued
READ_ONLY_STATUSES = {"zendesk": frozenset({"closed", "deleted"})}


class BackfillError(Exception):
    """The desk's listing cannot be read as asked (e.g. it repeats a position)."""


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a date (midnight UTC) or an ISO 8601 time (UTC unless it names an
    offset), not in the future. ValueError names what was expected."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            when = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", text):
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
            when = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        else:
            raise ValueError(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not {SINCE_EXPECTED}") from None
    if when > now:
        raise ValueError(f"{text} is in the future: expected {SINCE_EXPECTED} in the past")
    return when


@dataclass(frozen=True)
class Wanted:
    """An item the mapping's escalation rules want escalated or linked, and why."""

    ref: ItemRef
    why: str
    escalate: bool                 # the escalation tag or the project field asks for an issue
    keys: tuple[str, ...] = ()     # issue keys typed into the key field


def wanted(ref: ItemRef, fields: TMapping[str, Value], rules: EscalationRules) -> Wanted | None:
    """What the engine would do with an item that has no link yet (pure): escalate it
    (the tag, a project picked in the project field) or link the keys typed into
    its key field; None when neither."""
    reasons: list[str] = []
    tags = fields.get("tags")
    if rules.tag and isinstance(tags, tuple) and rules.tag in tags:
        reasons.append(f"tag {rules.tag}")
    if rules.project_field and fields.get(rules.project_field):
        reasons.append(f"project field {rules.project_field}")
    escalate = bool(reasons)
    typed = fields.get(rules.key_field) if rules.key_field else None
    text = " ".join(typed) if isinstance(typed, tuple) else (typed or "")
    keys = tuple(dict.fromkeys(KEY_IN_TEXT.findall(text.upper())))
    if keys:
        reasons.append(f"key field names {', '.join(keys)}")
    if not reasons:
        return None
    return Wanted(ref, "; ".join(reasons), escalate=escalate, keys=keys)


def settled(w: Wanted, links: Sequence[Link]) -> bool:
    """Whether syncd already holds what ``w`` asks for: a link (an escalation is made
    once, whatever it was made from) and every typed key linked."""
    if not links:
        return False
    linked = {l.issue_key for l in links}
    return all(k in linked for k in w.keys)


@dataclass(frozen=True)
class Verdict:
    wanted: Wanted
    outcome: str   # queued | would queue | already linked

    def doc(self) -> dict[str, Any]:
        return {"item": str(self.wanted.ref), "outcome": self.outcome, "why": self.wanted.why}


@dataclass(frozen=True)
class Report:
    since: datetime
    desks: tuple[str, ...]
    dry_run: bool
    read: int                          # items the listings answered
    verdicts: tuple[Verdict, ...]      # the items the rules want

    def of(self, *outcomes: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.outcome in outcomes]

    def doc(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "desks": list(self.desks), "dry_run": self.dry_run,
                "read": self.read, "found": len(self.verdicts), "queued": len(self.of(QUEUED, WOULD_QUEUE)),
                "already_linked": len(self.of(ALREADY_LINKED)), "closed": len(self.of(CLOSED)),
                "items": [v.doc() for v in self.verdicts]}


# -- listings: pages of (ref, fields) ------------------------------------------------------

Record = tuple[ItemRef, TMapping[str, Value]]


def zendesk_records(zendesk: Any, since: datetime, pace: Budget | None = None,
                    per_page: int = 1000) -> Iterator[list[Record]]:
    """Tickets changed at or after ``since`` (the export's ``start_time`` is included),
    page by page, through the connector (the account budget) and ``pace`` (the
    export's own limit). Zendesk leaves out the last minute: the daemon's poller
    covers it."""
    from .connectors.zendesk import ticket_fields
    params: dict[str, Any] = {"start_time": int(since.timestamp()), "per_page": per_page}
    seen: set[str] = set()
    while True:
        if pace is not None:
            pace.done(pace.acquire())
        page = zendesk._get("incrementalTicketExport", "incremental/tickets/cursor.json", params) or {}
        tickets = [t for t in page.get("tickets") or [] if isinstance(t, dict)]
        yield _records("zendesk", tickets, ticket_fields)
        after = page.get("after_cursor")
        if page.get("end_of_stream", True) or not after:
            return
        if after in seen:
            raise BackfillError("the Zendesk export handed out a cursor already read")
        seen.add(str(after))
        params = {"cursor": str(after), "per_page": per_page}


def intercom_records(intercom: Any, since: datetime) -> Iterator[list[Record]]:
    """Conversations, then tickets, with ``updated_at`` at or after ``since``, page by
    page through the connector's search (the account budget)."""
    from .connectors.intercom import CONVERSATION, TICKET, conversation_fields, ticket_fields
    for stream, kind, fields_of in (("conversations", CONVERSATION, conversation_fields),
                                    ("tickets", TICKET, ticket_fields)):
        after: str | None = None
        seen: set[str] = set()
        while True:
            items, after = intercom._search(stream, int(since.timestamp()), after)
            yield _records(kind, items, fields_of)
            if after is None:
                break
            if after in seen:
                raise BackfillError(f"the Intercom {stream} search handed out a cursor already read")
            seen.add(after)


def _records(kind: str, raws: Sequence[TMapping[str, Any]],
             fields_of: Callable[[Any], TMapping[str, Value]]) -> list[Record]:
    refs, refused = vendor_refs(kind, [r.get("id") for r in raws])
    if refused:
        log.warning("vendor_id_refused", vendor=kind.split(":")[0], operation="backfill", ids=refused)
    by_id = {str(r.get("id")): r for r in raws}
    return [(ref, fields_of(by_id[ref.id])) for ref in refs]


# -- a run ---------------------------------------------------------------------------------

class QueueStore(Protocol):
    """What the backfill needs of :class:`syncd.store.Store`."""

    def links_for_desk(self, desk: ItemRef) -> list[Link]: ...
    def mark_dirty(self, refs: Iterable[ItemRef], reason: str, delay: float = 0.0) -> None: ...


def run(store: QueueStore, pages: Iterable[list[Record]], rules_of: Callable[[ItemRef], EscalationRules], *,
        since: datetime, desks: Sequence[str], dry_run: bool = False,
        on_verdict: Callable[[Verdict], None] = lambda v: None) -> Report:
    """Check each page's items against their desk's rules and queue (not on a dry
    run) the ones syncd does not hold yet, one page at a time: a run cut short has
    queued what it found so far, and running it again queues nothing twice
    (marking dirty coalesces)."""
    verdicts: list[Verdict] = []
    read = 0
    for records in pages:
        read += len(records)
        found: list[Verdict] = []
        for ref, fields in records:
            w = wanted(ref, fields, rules_of(ref))
            if w is None:
                continue
            if fields.get("status") in READ_ONLY_STATUSES.get(ref.system, ()):
                # Zendesk refuses every update to a closed ticket: escalating one now would
                # make an issue whose key and note can never reach the ticket.
                outcome = CLOSED
            elif settled(w, store.links_for_desk(ref)):
                outcome = ALREADY_LINKED
            else:
                outcome = WOULD_QUEUE if dry_run else QUEUED
            found.append(Verdict(w, outcome))
        queue = [v.wanted.ref for v in found if v.outcome == QUEUED]
        if queue:
            store.mark_dirty(queue, "backfill")
        for v in found:
            on_verdict(v)
        verdicts += found
    report = Report(since, tuple(desks), dry_run, read, tuple(verdicts))
    log.info("backfill_finished", since=since.isoformat(), desks=list(desks), dry_run=dry_run, read=read,
             found=len(verdicts), queued=len(report.of(QUEUED)), already_linked=len(report.of(ALREADY_LINKED)))
    return report
