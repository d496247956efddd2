"""Fake connectors implementing the engine's connector ports in memory, with what
they were asked recorded, so the engine can be built in a unit test without HTTP
(with :class:`syncd.memory_store.MemoryStore` for the store).

They keep the vendor behaviours the engine's decisions depend on: a desk with
conditional writes refuses a write planned from an outdated copy (Zendesk safe
update), syncd's comments come back ``by_integration``, a Jira comment carries its
marker, a created issue its origin, and Jira search may lag behind a create. A
non-idempotent write passes :func:`syncd.fencing.before_write` first, as in the real
connectors (the claim check; from there on the request counts as sent).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from syncd.connectors.base import DeskWrite, FieldFailure, PollPage
from syncd.domain import Attachment, Comment, DeskItem, IssueSpec, ItemRef, TrackerIssue, Value
from syncd.errors import Conflict, VendorError
from syncd.fencing import before_write

# Stamps the fakes give: a minute in the past, so that a copy read now is "settled"
# (read well after its updated_at, see syncd.link_reconcile.SETTLED).
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)


def now() -> datetime:
    return datetime.now(timezone.utc)


def desk_item(ref: ItemRef, title: str = "Checkout fails", fields: Mapping[str, Value] | None = None,
              comments: Sequence[Comment] = (), tags: Sequence[str] = (), organization: str | None = "Acme",
              updated_at: datetime = T0) -> DeskItem:
    return DeskItem(ref=ref, title=title, url=f"https://desk.example/{ref.id}", status="open",
                    description="Paying by card shows an error page.", requester="ann@example.com",
                    organization=organization, fields=dict(fields or {}), comments=tuple(comments),
                    updated_at=updated_at, tags=tuple(sorted(tags)))


def comment(cid: str, body: str, at: datetime = T0, public: bool = True, author: str = "Ann") -> Comment:
    return Comment(id=cid, author=author, body=body, public=public, created_at=at)


@dataclass
class FakeDesk:
    """A Zendesk-like desk (``conditional_writes``: safe updates)."""

    system: str = "zendesk"
    conditional_writes: bool = True
    own_actor: str = "12345"                                      # syncd's agent, as webhooks name it
    items: dict[ItemRef, DeskItem] = field(default_factory=dict)
    fetches: Counter = field(default_factory=Counter)             # ref -> reads
    posted: list[tuple[ItemRef, str, bool]] = field(default_factory=list)
    field_writes: list[tuple[ItemRef, dict[str, Value]]] = field(default_factory=list)
    combined: list[tuple[ItemRef, dict[str, Value], str]] = field(default_factory=list)   # fields + comment in one
    fail_next_comment: VendorError | None = None                  # raised (once) instead of posting
    retracted: list[str] = field(default_factory=list)            # comment ids retract_comment hid
    _stamps: dict[ItemRef, datetime] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def put(self, item: DeskItem) -> DeskItem:
        self.items[item.ref] = item
        return item

    def edit(self, ref: ItemRef, **fields: Value) -> None:
        """An agent's edit on the desk: the item's updated_at moves."""
        item = self.items[ref]
        self.items[ref] = replace(item, fields={**item.fields, **fields}, updated_at=now())

    def fetch(self, ref: ItemRef, known: Sequence[Comment] | None = None) -> DeskItem | None:
        self.fetches[ref] += 1
        item = self.items.get(ref)
        return None if item is None else replace(item, observed_at=now())

    def written_stamp(self, ref: ItemRef) -> datetime | None:
        return self._stamps.get(ref)

    def agent_url(self, ref: ItemRef) -> str:
        return f"https://desk.example/agent/{ref.id}"

    def update_fields(self, ref: ItemRef, values: Mapping[str, Value],
                      expect: datetime | None = None) -> Sequence[FieldFailure]:
        item = self.items[ref]
        if self.conditional_writes and expect is not None and expect != item.updated_at:
            raise Conflict(self.system, "updateTicket", "the item changed since it was read", status=409)
        fields, tags = dict(item.fields), item.tags
        for locator, value in values.items():
            if locator == "tags+":
                tags = tuple(sorted({*tags, *value}))   # type: ignore[misc]
                fields["tags"] = tags
            else:
                fields[locator] = value
        stamp = now()
        self.items[ref] = replace(item, fields=fields, tags=tags, updated_at=stamp)
        self._stamps[ref] = stamp
        self.field_writes.append((ref, dict(values)))
        return ()

    def add_comment(self, ref: ItemRef, body: str, public: bool, attachments: Sequence[Attachment] = ()) -> str:
        before_write(self.system, "createComment")   # as the real connectors: the claim check, then the request
        if self.fail_next_comment is not None:
            error, self.fail_next_comment = self.fail_next_comment, None
            raise error
        cid = f"dc{next(self._ids)}"
        self.posted.append((ref, body, public))
        item = self.items[ref]
        made = Comment(id=cid, author="syncd", body=body, public=public, created_at=now(), by_integration=True)
        self.items[ref] = replace(item, comments=item.comments + (made,), updated_at=now())
        return cid

    def update_with_comment(self, ref: ItemRef, values: Mapping[str, Value], body: str, public: bool,
                            expect: datetime | None = None) -> DeskWrite:
        """As Zendesk: one request; a refused safe update writes neither fields nor comment."""
        item = self.items[ref]
        if self.conditional_writes and expect is not None and expect != item.updated_at:
            raise Conflict(self.system, "updateTicket", "the item changed since it was read", status=409)
        self.combined.append((ref, dict(values), body))
        cid = self.add_comment(ref, body, public)
        self.update_fields(ref, values)
        return DeskWrite(cid)

    def find_comment(self, ref: ItemRef, body: str, since: datetime) -> str | None:
        found = self.find_comments(ref, body, since)
        return found[0] if found else None

    def find_comments(self, ref: ItemRef, body: str, since: datetime) -> list[str]:
        item = self.items.get(ref)
        return [c.id for c in (item.comments if item else ())
                if c.by_integration and c.body == body and c.created_at >= since]

    def retract_comment(self, ref: ItemRef, comment_id: str) -> bool:
        """As Zendesk: private, text gone (the comment stays)."""
        item = self.items[ref]
        self.retracted.append(comment_id)
        self.items[ref] = replace(item, comments=tuple(
            replace(c, public=False, body="▇") if c.id == comment_id else c for c in item.comments))
        return True

    def download(self, attachment: Attachment) -> bytes:
        return b""

    def poll(self, cursor: str | None) -> PollPage:
        return PollPage((), cursor or "0")


@dataclass
class FakeTracker:
    """A Jira-like tracker: comments carry their marker, issues their origin; search can lag."""

    system: str = "jira"
    account_id: str = "syncd-account"
    issues: dict[str, TrackerIssue] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)          # issue id -> origin it was created for
    markers: dict[str, str] = field(default_factory=dict)          # comment id -> source marker
    search_visible: bool = True                                    # False: creates not found by search yet
    search_catches_up_on_create: bool = False                      # True: a create makes search visible again
    searches: int = 0                                              # label searches (find_created, created_for)
    fetches: Counter = field(default_factory=Counter)
    created: list[IssueSpec] = field(default_factory=list)
    posted: list[tuple[str, str, str]] = field(default_factory=list)   # (issue id, body, source)
    deleted: list[str] = field(default_factory=list)
    field_writes: list[tuple[str, dict[str, Value]]] = field(default_factory=list)
    remote_links: dict[tuple[str, str], str] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(10001))
    _comment_ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def put(self, key: str, fields: Mapping[str, Value] | None = None, origin: str | None = None,
            comments: Sequence[Comment] = ()) -> TrackerIssue:
        issue_id = str(next(self._ids))
        issue = TrackerIssue(ref=ItemRef("jira", issue_id), key=key, url=f"https://jira.example/browse/{key}",
                             summary="", fields=dict(fields or {}), released_versions=(),
                             comments=tuple(comments), updated_at=T0)
        self.issues[issue_id] = issue
        if origin is not None:
            self.origins[issue_id] = origin
        return issue

    def edit(self, issue_id: str, **fields: Value) -> None:
        issue = self.issues[issue_id]
        self.issues[issue_id] = replace(issue, fields={**issue.fields, **fields}, updated_at=now())

    def fetch(self, issue_id: str) -> TrackerIssue | None:
        self.fetches[issue_id] += 1
        return self.issues.get(issue_id)

    def resolve_key(self, key: str) -> TrackerIssue | None:
        return next((i for i in self.issues.values() if i.key == key), None)

    def from_delivery(self, raw: Any, known: tuple[Comment, ...], delivered: Any) -> TrackerIssue | None:
        return None   # no webhook deliveries here: the engine reads

    def create_issue(self, spec: IssueSpec, origin: str) -> TrackerIssue:
        before_write(self.system, "createIssue")
        self.search_visible = self.search_visible or self.search_catches_up_on_create
        self.created.append(spec)
        issue = self.put(f"{spec.project}-{len(self.issues) + 1}", {**spec.extra, **spec.fields}, origin)
        self.issues[issue.ref.id] = replace(issue, summary=spec.summary)
        return self.issues[issue.ref.id]

    def find_created(self, origin: str) -> TrackerIssue | None:
        found = self.created_for(origin)
        return self.issues[found[0]] if found else None

    def created_for(self, origin: str, limit: int = 20) -> list[str]:
        self.searches += 1
        if not self.search_visible:
            return []
        return sorted((i for i, o in self.origins.items() if o == origin and i in self.issues), key=int)[:limit]

    def delete_issue(self, issue_id: str) -> bool:
        self.deleted.append(issue_id)
        return self.issues.pop(issue_id, None) is not None

    def update_fields(self, issue_id: str, values: Mapping[str, Value]) -> Sequence[FieldFailure]:
        issue = self.issues[issue_id]
        self.issues[issue_id] = replace(issue, fields={**issue.fields, **values}, updated_at=now())
        self.field_writes.append((issue_id, dict(values)))
        return ()

    def add_comment(self, issue_id: str, body: str, source: str, attachments: Sequence[Attachment] = ()) -> str:
        before_write(self.system, "addComment")
        cid = str(next(self._comment_ids))
        self.posted.append((issue_id, body, source))
        self.markers[cid] = source
        issue = self.issues[issue_id]
        made = Comment(id=cid, author="syncd", body=body, public=True, created_at=now(), by_integration=True)
        self.issues[issue_id] = replace(issue, comments=issue.comments + (made,), updated_at=now())
        return cid

    def find_comment(self, issue_id: str, source: str) -> str | None:
        found = self.find_comments(issue_id, source, first_only=True)
        return found[0] if found else None

    def find_comments(self, issue_id: str, source: str, first_only: bool = False) -> list[str]:
        issue = self.issues.get(issue_id)
        found = [c.id for c in (issue.comments if issue else ()) if self.markers.get(c.id) == source]
        return found[:1] if first_only else found

    def delete_comment(self, issue_id: str, comment_id: str) -> bool:
        issue = self.issues[issue_id]
        kept = tuple(c for c in issue.comments if c.id != comment_id)
        self.issues[issue_id] = replace(issue, comments=kept)
        return len(kept) < len(issue.comments)

    def download(self, attachment: Attachment) -> bytes:
        return b""

    def upsert_remote_link(self, issue_id: str, global_id: str, url: str, title: str) -> None:
        self.remote_links[(issue_id, global_id)] = url

    def poll(self, cursor: str | None) -> PollPage:
        return PollPage((), cursor or "0")

    def issues_with_fix_version(self, version_id: str) -> Sequence[str]:
        return [i for i, issue in self.issues.items() if version_id in (issue.fields.get("fixVersions") or ())]

