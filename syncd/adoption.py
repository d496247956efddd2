"""Adoption import (``syncd links import``): the links an account already keeps
somewhere else, verified one by one and stored as syncd links.

Three sources, each read page by page (through the connectors' pagers) and
resumable (:mod:`syncd.import_progress`):

* ``zendesk-integration`` — Zendesk's own Jira integration (``GET /api/v2/jira/links``):
  ticket id, issue id and the issue key the integration last saw;
* ``key-field`` — Zendesk tickets whose mapped key field
  (``[escalation] key_field``) names issue keys;
* ``jira-remote-links`` — Jira remote links whose URL is a desk item of this account.

Hand-kept links are "often wrong", so nothing is stored on trust. Each candidate
is checked against both vendors before it is stored: the issue exists, the key
the source holds is that issue's key now, and the desk item exists. A candidate
that fails is reported as *wrong* with the reason and never stored; a link syncd
already holds is *skipped*. An imported link is stored with
:meth:`Store.add_link`, audited as ``link_added`` and marked dirty (reason
``import``), so the daemon reconciles it like any link it made itself.

The import only reads from the vendors: it writes nothing to Zendesk or Jira
(the first reconcile of each link does, paced by the daemon's budget).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import structlog

from . import import_progress
from .connectors.base import DeskConnector, TrackerConnector
from .connectors.zendesk import ZendeskConnector
from .domain import ItemRef, TrackerIssue
from .errors import Refused
from .import_progress import Progress
from .store import Store

log = structlog.get_logger(__name__)

SOURCES = ("zendesk-integration", "zendesk-integration-v2", "key-field", "intercom-key-field", "jira-remote-links")
# The engine's pattern for issue keys typed into the key field (uppercase project, dash, number).
KEY_IN_TEXT = re.compile(r"\b([A-Z][A-Z0-9_]+-\d+)\b")
IMPORTED, SKIPPED, WRONG = "imported", "skipped", "wrong"


class SourceUnusable(Exception):
    """The import cannot run as asked (a source that is not configured, a key field that is not custom)."""


@dataclass(frozen=True)
class Candidate:
    """One link a source claims. ``issue_id``/``issue_key``: what the source holds
    (either may be unknown); ``desk_seen``: the desk item was just read from the
    desk itself, so it exists; ``origin``: where the claim came from, for the report."""

    desk: ItemRef
    issue_id: str | None
    issue_key: str | None
    origin: str
    desk_seen: bool = False
    problem: str | None = None   # the record itself is bad (a hostile issue id or key): reported wrong


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    outcome: str                 # imported | skipped | wrong
    reason: str
    issue_id: str | None = None  # the issue the link points at (imported, skipped)
    issue_key: str | None = None

    def doc(self) -> dict[str, Any]:
        c = self.candidate
        return {"outcome": self.outcome, "desk": str(c.desk), "issue_id": self.issue_id or c.issue_id,
                "issue_key": self.issue_key or c.issue_key, "origin": c.origin, "reason": self.reason}


@dataclass(frozen=True)
class Page:
    candidates: tuple[Candidate, ...]
    cursor: str | None   # where the page after this one starts
    last: bool = False   # the source says no page follows (else: the pager stopping says so)


@dataclass(frozen=True)
class Report:
    source: str
    dry_run: bool
    resumed_from: str | None
    complete: bool               # the source was read to its end
    verdicts: tuple[Verdict, ...]
    totals: Progress | None      # across the runs of this pass (None on a dry run)

    def of(self, outcome: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.outcome == outcome]

    def doc(self) -> dict[str, Any]:
        totals = None if self.totals is None else {
            "imported": self.totals.imported, "skipped": self.totals.skipped, "wrong": self.totals.wrong}
        return {"source": self.source, "dry_run": self.dry_run, "resumed_from": self.resumed_from,
                "complete": self.complete, **{o: [v.doc() for v in self.of(o)] for o in (IMPORTED, SKIPPED, WRONG)},
                "totals": totals}


@dataclass
class Importer:
    """Checks candidates and stores the good ones. ``dry_run``: check, store nothing."""

    store: Store
    tracker: TrackerConnector
    desks: Mapping[str, DeskConnector]
    dry_run: bool = False
    source: str = ""
    # Candidates checked at once: each check is a few vendor round trips one after the
    # other, so one at a time the network's latency, not the account budget (which
    # still paces every read), would decide how long an import of thousands takes.
    threads: int = 1
    _issues: dict[str, TrackerIssue | None] = field(default_factory=dict)
    _desk_items: dict[ItemRef, bool] = field(default_factory=dict)   # exists? (read for a whole page)

    def verify_all(self, candidates: Sequence[Candidate],
                   desk_items: Mapping[ItemRef, bool] | None = None) -> list[Verdict]:
        """``desk_items``: which of the page's desk items exist, when already read
        (:meth:`look_up_desk_items`); else read here."""
        self._desk_items = dict(self.look_up_desk_items(candidates) if desk_items is None else desk_items)
        if self.threads <= 1 or len(candidates) <= 1:
            return [self.verify(c) for c in candidates]
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="import") as pool:
            return list(pool.map(self.verify, candidates))

    def verify(self, c: Candidate) -> Verdict:
        if c.problem is not None:
            return Verdict(c, WRONG, c.problem)
        if c.desk.system not in self.desks:
            return Verdict(c, WRONG, f"{c.desk.system} is not configured")
        linked = self.store.links_for_desk(c.desk)
        if any(l.issue_id == c.issue_id or (c.issue_id is None and l.issue_key == c.issue_key) for l in linked):
            return Verdict(c, SKIPPED, "already linked", c.issue_id, c.issue_key)
        issue, problem = self._issue(c)
        if issue is None:
            return Verdict(c, WRONG, problem)
        if any(l.issue_id == issue.ref.id for l in linked):
            return Verdict(c, SKIPPED, "already linked", issue.ref.id, issue.key)
        if not c.desk_seen and not self._desk_item_exists(c.desk):
            return Verdict(c, WRONG, f"{c.desk} does not exist", issue.ref.id, issue.key)
        if not self.dry_run:
            self._store(c, issue)
        return Verdict(c, IMPORTED, "would import" if self.dry_run else "imported", issue.ref.id, issue.key)

    def look_up_desk_items(self, candidates: Sequence[Candidate]) -> dict[ItemRef, bool]:
        """Which Zendesk tickets of a page exist, read at once (``show_many``: one call per
        hundred, not two per ticket: the ticket and its comments, which the import never uses)."""
        zendesk = self.desks.get("zendesk")
        refs = [c.desk for c in candidates if c.desk.system == "zendesk" and not c.desk_seen]
        if not refs or not isinstance(zendesk, ZendeskConnector):
            return {}
        found = zendesk.existing([r.id for r in refs])
        return {r: r.id in found for r in refs}

    def _desk_item_exists(self, ref: ItemRef) -> bool:
        known = self._desk_items.get(ref)
        return known if known is not None else self.desks[ref.system].fetch(ref) is not None

    def _issue(self, c: Candidate) -> tuple[TrackerIssue | None, str]:
        """The issue the candidate names, or None and why it names none (or the wrong one)."""
        if c.issue_id is not None:
            issue = self._fetch(c.issue_id)
            if issue is None:
                return None, f"issue id {c.issue_id} does not exist (deleted?)"
            if c.issue_key is None or issue.key == c.issue_key:
                return issue, ""
            other = self._fetch(c.issue_key)
            if other is None or other.ref.id == issue.ref.id:
                return None, f"key {c.issue_key} is stale: issue {c.issue_id} is {issue.key} now (moved?)"
            return None, f"key {c.issue_key} names issue {other.ref.id} ({other.key}), not issue {c.issue_id}"
        assert c.issue_key is not None, "a candidate names an issue by id or by key"
        issue = self._fetch(c.issue_key)
        if issue is None:
            return None, f"no issue {c.issue_key} (deleted?)"
        if issue.key != c.issue_key:
            return None, f"{c.issue_key} was moved: the issue is {issue.key} now"
        return issue, ""

    def _fetch(self, id_or_key: str) -> TrackerIssue | None:
        # One read per issue and run: many tickets often name the same issue.
        if id_or_key not in self._issues:
            try:
                self._issues[id_or_key] = self.tracker.fetch(id_or_key)
            except Refused:   # not an id or key at all: the source holds garbage
                self._issues[id_or_key] = None
        return self._issues[id_or_key]

    def _store(self, c: Candidate, issue: TrackerIssue) -> None:
        link = self.store.add_link(c.desk, issue.ref.id, issue.key)
        self.store.audit("link_added", link.id, desk=str(c.desk), issue=issue.key, source=f"import:{self.source}",
                         origin=c.origin)
        # Both sides: the desk item's fields and comments, and the issue's aggregates.
        self.store.mark_dirty([c.desk, issue.ref], "import")
        log.info("link_imported", link=link.id, desk=str(c.desk), issue=issue.key, source=self.source)


# -- sources ---------------------------------------------------------------------------------

def zendesk_integration_pages(zendesk: Any, after: str | None, page_size: int) -> Iterator[Page]:
    """Zendesk's Jira integration links, by link id (``page[after]`` is the last id read)."""
    params: dict[str, Any] = {"page[size]": page_size}
    if after:
        params["page[after]"] = after
    for raw in zendesk._pages("listJiraLinks", "jira/links", params):
        links = list(raw.get("links") or [])
        found = tuple(c for c in (_integration_candidate(l) for l in links) if c is not None)
        cursor = str(links[-1]["id"]) if links else after
        yield Page(found, cursor, not (raw.get("meta") or {}).get("has_more"))


def _integration_candidate(raw: Mapping[str, Any]) -> Candidate | None:
    origin = f"zendesk jira link {raw.get('id')}"
    try:
        desk = ItemRef("zendesk", str(raw.get("ticket_id")))
    except ValueError:
        log.warning("import_record_refused", source="zendesk-integration", origin=origin, reason="bad ticket id")
        return None
    key = str(raw["issue_key"]).upper() if raw.get("issue_key") else None
    issue_id = str(raw["issue_id"]) if raw.get("issue_id") not in (None, "") else None
    if issue_id is None and key is None:
        return None
    return Candidate(desk, issue_id, key, origin)


def key_field_pages(zendesk: Any, locator: str, after: str | None, page_size: int) -> Iterator[Page]:
    """Zendesk tickets (the ticket list, cursor-paged) whose key field names issue keys."""
    if not locator.startswith("custom:"):
        raise SourceUnusable(f"the key field {locator!r} is not a custom ticket field (custom:<id>)")
    field_id = int(locator.split(":", 1)[1])
    params: dict[str, Any] = {"page[size]": page_size}
    if after:
        params["page[after]"] = after
    for raw in zendesk._pages("listTickets", "tickets.json", params):
        meta = raw.get("meta") or {}
        found = tuple(c for t in raw.get("tickets") or [] for c in _key_candidates(t, field_id, locator))
        after = meta.get("after_cursor") or after
        yield Page(found, after, not meta.get("has_more"))


def _key_candidates(ticket: Mapping[str, Any], field_id: int, locator: str) -> list[Candidate]:
    value = next((f.get("value") for f in ticket.get("custom_fields") or [] if f.get("id") == field_id), None)
    if not value:
        return []
    text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    desk = ItemRef("zendesk", str(ticket["id"]))
    return [Candidate(desk, None, key, f"{desk} {locator}", desk_seen=True)
            for key in dict.fromkeys(KEY_IN_TEXT.findall(text.upper()))]


def remote_link_pages(jira: Any, desks: Mapping[str, DeskConnector], after: str | None, page_size: int,
                      scope: str | None) -> Iterator[Page]:
    """Issues by ascending id (``id > <last id read>``), each with its remote links;
    a link whose URL is a desk item of this account is a candidate."""
    patterns = desk_url_patterns(desks)
    where = f"id > {int(after or 0)}" + (f" AND ({scope})" if scope else "")
    for issues in jira._search(f"{where} ORDER BY id ASC", ["key"], page_size):
        found: list[Candidate] = []
        for raw in issues:
            remote = jira._rest("getRemoteIssueLinks", "GET", f"issue/{raw['id']}/remotelink") or []
            found += _remote_candidates(str(raw["id"]), str(raw["key"]), remote, patterns)
        after = str(issues[-1]["id"]) if issues else after
        yield Page(tuple(found), after, len(issues) < page_size)


def desk_url_patterns(desks: Mapping[str, DeskConnector]) -> list[tuple[re.Pattern[str], str]]:
    """For each configured desk kind, a pattern of its items' agent URLs (from the
    connector's own ``agent_url``, so the two never disagree) and the kind."""
    kinds = {"zendesk": ("zendesk",), "intercom": ("intercom:conversation", "intercom:ticket")}
    out: list[tuple[re.Pattern[str], str]] = []
    for name, desk in desks.items():
        for kind in kinds.get(name, ()):
            sample = desk.agent_url(ItemRef(kind, "4242424242"))
            head, _, tail = sample.partition("4242424242")
            out.append((re.compile(re.escape(head) + r"([1-9][0-9]{0,18})" + re.escape(tail) + r"(?:[/?#].*)?"), kind))
    return out


def _remote_candidates(issue_id: str, key: str, remote: Sequence[Mapping[str, Any]],
                       patterns: Sequence[tuple[re.Pattern[str], str]]) -> list[Candidate]:
    out: list[Candidate] = []
    for link in remote:
        url = str((link.get("object") or {}).get("url") or "")
        for pattern, kind in patterns:
            m = pattern.fullmatch(url)
            if m:
                out.append(Candidate(ItemRef(kind, m.group(1)), issue_id, key, f"{key} remote link {link.get('id')}"))
                break
    return out


# -- a run -----------------------------------------------------------------------------------

def _read_ahead(importer: Importer, pages: Iterator[Page],
                max_pages: int | None) -> Iterator[tuple[Page, dict[ItemRef, bool]]]:
    """Each page with its desk items, the next one read (on a thread of its own) while
    the caller checks this one. The checks are paced by the budget; were the next
    page and its tickets read only after a page's last check, the budget would go
    unused meanwhile (its burst holds a few calls, not a page's reads: the import of
    10,000 links took 1.18 times its budget's minimum, most of it in those gaps).
    No page is asked for after the last one, or after ``max_pages``."""
    def next_page() -> tuple[Page, dict[ItemRef, bool]] | None:
        page = next(pages, None)
        return None if page is None else (page, importer.look_up_desk_items(page.candidates))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-pages") as reader:
        coming = reader.submit(next_page)
        read = 0
        while (item := coming.result()) is not None:
            read += 1
            if not item[0].last and (max_pages is None or read < max_pages):
                coming = reader.submit(next_page)
            else:
                coming = reader.submit(lambda: None)
            yield item

PageSource = Callable[[str | None], Iterator[Page]]


def run(importer: Importer, pages: PageSource, *, restart: bool = False, max_pages: int | None = None,
        on_verdict: Callable[[Verdict], None] = lambda v: None) -> Report:
    """Read ``pages`` from where the last run of this source stopped (or from the first
    page: ``restart``, a finished pass, or no earlier run), checking and storing
    each candidate, and storing the position after each page (not on a dry run).
    ``max_pages``: stop after that many pages; the next run carries on."""
    store, source = importer.store, importer.source
    stored = import_progress.load(store, source)
    progress = stored if stored is not None and not stored.done and not restart else \
        import_progress.fresh(source, time.time())
    verdicts: list[Verdict] = []
    complete, read = True, 0
    for page, desk_items in _read_ahead(importer, pages(progress.cursor), max_pages):
        found = importer.verify_all(page.candidates, desk_items)
        for v in found:
            on_verdict(v)
        verdicts += found
        counts = [sum(1 for v in found if v.outcome == o) for o in (IMPORTED, SKIPPED, WRONG)]
        progress = progress.after_page(page.cursor, False, *counts)
        if not importer.dry_run:
            import_progress.save(store, progress)
        read += 1
        if page.last:
            break
        if max_pages is not None and read >= max_pages:
            # Stop without asking for the next page: the next run starts there (and
            # finds the source finished if this page was its last).
            complete = False
            break
    if complete:
        progress = progress.after_page(progress.cursor, True, 0, 0, 0)
        if not importer.dry_run:
            import_progress.save(store, progress)
    resumed = stored.cursor if stored is not None and not stored.done and not restart else None
    log.info("import_finished", source=source, dry_run=importer.dry_run, complete=complete, pages=read,
             imported=sum(v.outcome == IMPORTED for v in verdicts), wrong=sum(v.outcome == WRONG for v in verdicts))
    return Report(source, importer.dry_run, resumed, complete, tuple(verdicts),
                  None if importer.dry_run else progress)
