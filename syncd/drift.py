"""Drift audit (``syncd reconcile --dry-run``): per link, what the next reconcile
would write — the fields that differ, the comments missing on either side, the
notes not posted yet — without writing anything.

It asks the engine itself (``Engine.reconcile(jira:<id>, dry_run=True)``, one call
per issue: an issue's reconcile covers every link of the issue and its aggregates),
so the audit and the daemon can never disagree on what counts as drift. The reads
go through the connectors :mod:`syncd.wiring` built, paced by the account budget.

The engine's dry-run :class:`~syncd.engine.Outcome` lists its writes by target (a
desk item, or the issue's key), not by link: a desk-side write belongs to the link
of that desk item; an issue-side write belongs to the link when the issue has one,
and is reported on the issue when it has several (which of its links caused it is
not in the Outcome).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import structlog

from .domain import ItemRef, Link
from .errors import SyncdError
from .store import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Drift:
    """One write the next reconcile would make. ``kind``: field | comment | note | other
    (or ``gone``: a link whose issue or desk item could not be read);
    ``side``: where it would be written (``desk`` or ``jira``): a comment missing there,
    a field whose value there differs."""

    kind: str
    side: str        # desk | jira | syncd (the key syncd stores for the link)
    what: str        # field:<locator>, comment, note, ...
    detail: str      # the value it would write, or an excerpt of the comment/note

    def doc(self) -> dict[str, str]:
        return {"kind": self.kind, "side": self.side, "what": self.what, "detail": self.detail}


@dataclass(frozen=True)
class LinkDrift:
    link_id: int
    desk: str
    issue_key: str
    drift: tuple[Drift, ...]

    def doc(self) -> dict[str, Any]:
        return {"link": self.link_id, "desk": self.desk, "issue_key": self.issue_key,
                "drift": [d.doc() for d in self.drift]}


@dataclass(frozen=True)
class IssueAudit:
    """The audit of one issue and its selected links. ``error``: the reads failed (the
    links were not checked); ``shared``: issue-side writes of an issue with several links."""

    issue_key: str
    links: tuple[LinkDrift, ...]
    shared: tuple[Drift, ...] = ()
    decisions: tuple[str, ...] = ()
    error: str | None = None

    @property
    def drifted(self) -> bool:
        return bool(self.shared) or any(l.drift for l in self.links)

    def doc(self) -> dict[str, Any]:
        return {"issue_key": self.issue_key, "links": [l.doc() for l in self.links],
                "issue_drift": [d.doc() for d in self.shared], "decisions": list(self.decisions),
                "error": self.error}


def kind_of(what: str) -> str:
    if what.startswith("field:"):
        return "field"
    return what if what in ("comment", "note", "key") else "other"


def select_links(store: Store, scope: str, value: str | None = None) -> list[Link]:
    """The links an audit looks at. ``scope``: ``all``; ``desk`` with a desk name
    (``zendesk``) or a desk item (``zendesk:12``); ``issue`` with an issue key."""
    if scope == "desk" and value and ":" in value:
        return store.links_for_desk(ItemRef.parse(value))
    found: list[Link] = []
    offset = 0
    while page := store.list_links(limit=500, offset=offset):
        offset += len(page)
        if scope == "all":
            found += page
        elif scope == "desk":
            found += [l for l in page if l.desk.system == value]
        else:
            found += [l for l in page if l.issue_key == (value or "").upper()]
    return found


def by_issue(links: Iterable[Link]) -> dict[str, list[Link]]:
    out: dict[str, list[Link]] = {}
    for l in links:
        out.setdefault(l.issue_id, []).append(l)
    return out


def audit_issue(engine: Any, issue_id: str, links: Sequence[Link]) -> IssueAudit:
    """What reconciling ``jira:<issue_id>`` would write, attributed to ``links``
    (the selected links of that issue)."""
    key = links[0].issue_key
    try:
        outcome = engine.reconcile(ItemRef("jira", issue_id), dry_run=True)
    except SyncdError as e:
        log.warning("drift_audit_failed", issue_id=issue_id, error=str(e))
        return IssueAudit(key, tuple(LinkDrift(l.id, str(l.desk), l.issue_key, ()) for l in links), error=str(e))
    every_link = engine.store.links_for_issue(issue_id)
    desks = {str(l.desk) for l in every_link}
    per_link: dict[int, list[Drift]] = {l.id: [] for l in links}
    shared: list[Drift] = []
    for w in outcome.writes:
        # A stale key is in syncd's own store, on every link of the issue.
        side = "syncd" if w.what == "key" else "desk" if w.target in desks else "jira"
        d = Drift(kind_of(w.what), side, w.what, w.detail)
        owners = [l for l in links if str(l.desk) == w.target] if side == "desk" else list(links) \
            if side == "syncd" or len(every_link) == 1 else []
        if side == "jira" and not owners:
            shared.append(d)
        for l in owners:
            per_link[l.id].append(d)
    if len(outcome.plans) < len(every_link):
        # The engine plans each link it could read both sides of; the others lost
        # their issue or desk item (deleted): the link itself is what drifted.
        missing = len(every_link) - len(outcome.plans)
        shared.append(Drift("gone", "jira", "link", f"{missing} of {len(every_link)} links of {key} could not be "
                                                    "read on both sides (issue or desk item deleted?)"))
    return IssueAudit(key, tuple(LinkDrift(l.id, str(l.desk), l.issue_key, tuple(per_link[l.id])) for l in links),
                      tuple(shared), tuple(outcome.decisions))


def audit(engine: Any, links: Sequence[Link],
          on_issue: Callable[[IssueAudit, int, int], None] = lambda a, done, total: None) -> list[IssueAudit]:
    groups = by_issue(links)
    out: list[IssueAudit] = []
    for n, (issue_id, group) in enumerate(sorted(groups.items(), key=lambda kv: int(kv[0])), 1):
        out.append(audit_issue(engine, issue_id, group))
        on_issue(out[-1], n, len(groups))
    return out


@dataclass
class Rate:
    """Items done per second and the time left, for a progress line."""

    total: int
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    def line(self, done: int) -> str:
        took = max(time.monotonic() - self.started, 1e-6)
        rate = done / took
        eta = f"{(self.total - done) / rate:.0f}s" if rate > 0 else "?"
        return f"{done}/{self.total} done, {rate:.1f}/s, ETA {eta}"
