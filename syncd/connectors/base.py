"""The two ports the engine talks to. One implementation per vendor lives beside
this file; each turns vendor exceptions into :mod:`syncd.errors` at its edge and
returns only :mod:`syncd.domain` values.

Every call here is synchronous (zenpy and jira are): the runtime calls them from
worker threads, never from the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from ..domain import Attachment, Comment, DeskItem, IssueSpec, ItemRef, TrackerIssue, Value


@dataclass(frozen=True)
class FieldFailure:
    """One field the vendor refused; the others were written."""

    locator: str
    value: Value
    reason: str


@dataclass(frozen=True)
class DeskWrite:
    """What one write of fields and a comment together did: the comment's id and the
    fields the vendor refused (the others were written)."""

    comment_id: str
    failures: tuple[FieldFailure, ...] = ()


@dataclass(frozen=True)
class PollPage:
    """Items changed since a cursor. ``cursor`` is opaque and is stored only after
    the items are marked dirty (same transaction). ``more`` says call again now."""

    items: tuple[ItemRef, ...]
    cursor: str
    more: bool = False
    # Each item's ``updated`` as the poll saw it, where the vendor said: the poller
    # leaves out an item still at the stamp of syncd's last reconcile of it.
    stamps: Mapping[ItemRef, datetime] = field(default_factory=dict)
    # Each item's number of comments, where the answer says (Jira): a reconcile whose
    # comments were not all read (syncd.issue_hints) is trusted only while it matches.
    comment_counts: Mapping[ItemRef, int] = field(default_factory=dict)
    # Each item as the answer shows it, where it shows all a read would but the comments
    # (Zendesk's export: fields, status, tags, and the comment count above), read at the
    # view's ``observed_at``: the echo of syncd's own write is then proven, not re-read.
    views: Mapping[ItemRef, DeskItem] = field(default_factory=dict)


def polled_stamps(kind: str, items: Iterable[Mapping[str, Any]],
                  stamp_of: Callable[[Mapping[str, Any]], datetime | None]) -> dict[ItemRef, datetime]:
    """``PollPage.stamps`` for items a vendor listed: the newest stamp per item. An item
    whose id or stamp does not parse gets none (it is then queued, as without stamps)."""
    stamps: dict[ItemRef, datetime] = {}
    for item in items:
        try:
            ref, stamp = ItemRef(kind, str(item.get("id"))), stamp_of(item)
        except (ValueError, TypeError, OverflowError):
            continue
        if stamp is not None and (ref not in stamps or stamps[ref] < stamp):
            stamps[ref] = stamp
    return stamps


class DeskConnector(Protocol):
    system: str   # "zendesk" | "intercom"
    # Whether a field write can be made conditional on the item not having changed since it
    # was read (Zendesk safe update: 409 otherwise); the engine then may plan a write from a
    # remembered copy of the item (docs/architecture.md, "Reading less").
    conditional_writes: bool
    # syncd's own account as this desk's webhooks name the actor (Zendesk: the user id;
    # Intercom: ``admin:<id>``): the receiver stores its echoes without queueing them.
    own_actor: str

    def written_stamp(self, ref: ItemRef) -> datetime | None:
        """The item's ``updated_at`` right after syncd's last field write to it, where the
        desk tells (None elsewhere)."""
        ...

    def fetch(self, ref: ItemRef, known: Sequence[Comment] | None = None) -> DeskItem | None:
        """Current state, comments included; ``None`` when the item is gone.
        ``DeskItem.not_applicable`` names the mapping's locators this kind of item lacks.
        ``known``: the item's comments as syncd last saw them (plus its own since), which
        the connector may reuse when the vendor proves nothing else was added."""

    def agent_url(self, ref: ItemRef) -> str:
        """The item's page for an agent (shown in the Jira issue's remote link)."""

    def update_fields(self, ref: ItemRef, values: Mapping[str, Value],
                      expect: datetime | None = None) -> Sequence[FieldFailure]:
        """Write several locators in as few calls as the vendor allows (Zendesk: one PUT).
        ``expect``: the item's ``updated_at`` the values were planned from; a connector
        whose vendor has conditional writes (``conditional_writes = True``) raises
        :class:`~syncd.errors.Conflict` instead of overwriting a newer edit."""

    def add_comment(self, ref: ItemRef, body: str, public: bool,
                    attachments: Sequence[Attachment] = ()) -> str:
        """Post a note (``public=False``) or a reply the customer sees; returns its id."""

    def update_with_comment(self, ref: ItemRef, values: Mapping[str, Value], body: str, public: bool,
                            expect: datetime | None = None) -> DeskWrite:
        """Write fields and post one comment, in one request where the vendor takes both
        (Zendesk: ``comment`` and fields in one ticket update). Not idempotent (the comment):
        made under the comment's intent. ``expect`` as in :meth:`update_fields`; a
        :class:`~syncd.errors.Conflict` means nothing was written, neither fields nor comment."""

    def find_comment(self, ref: ItemRef, body: str, since: datetime) -> str | None:
        """Recovery after a crash: the id of a comment syncd wrote with exactly this
        body at or after ``since``, else ``None``."""

    def find_comments(self, ref: ItemRef, body: str, since: datetime) -> list[str]:
        """Ids of every comment syncd wrote with exactly this body at or after ``since``,
        oldest first: more than one means a post slipped past the claim check."""

    def retract_comment(self, ref: ItemRef, comment_id: str) -> bool:
        """Hide a comment syncd posted twice, as far as the desk allows (no desk here lets
        syncd delete one); False when nothing could be done."""

    def download(self, attachment: Attachment) -> bytes:
        """The bytes of an attachment of one of this desk's comments (authenticated)."""

    def poll(self, cursor: str | None) -> PollPage:
        """Items changed since ``cursor`` (``None``: start from now)."""


class TrackerConnector(Protocol):
    system: str   # "jira"
    account_id: str   # syncd's own account: its changes come back as webhooks naming it

    def fetch(self, issue_id: str) -> TrackerIssue | None:
        """By immutable id; ``None`` when deleted."""

    def resolve_key(self, key: str) -> TrackerIssue | None:
        """By key (an old key of a moved issue resolves too); ``None`` when unknown."""

    def from_delivery(self, raw: Mapping[str, Any], known: tuple[Comment, ...],
                      delivered: Sequence[Mapping[str, Any]]) -> TrackerIssue | None:
        """The issue as a webhook delivery's ``issue`` showed it, with ``known`` comments
        (an older read's) and ``delivered`` ones; None when it cannot stand in for a read."""

    def create_issue(self, spec: IssueSpec, origin: str) -> TrackerIssue:
        """Create, carrying ``origin`` (e.g. ``zendesk:123``) in an issue entity
        property in the same call, so :meth:`find_created` can find it after a crash."""

    def find_created(self, origin: str) -> TrackerIssue | None:
        """The issue created for ``origin``, if a create went through."""

    def created_for(self, origin: str, limit: int = 20) -> list[str]:
        """Ids of every issue carrying ``origin``'s marker, oldest first: more than one means
        a create slipped past the claim check, and the engine deletes all but the oldest."""

    def delete_issue(self, issue_id: str) -> bool:
        """Delete an issue syncd made twice; False when it was already gone."""

    def update_fields(self, issue_id: str, values: Mapping[str, Value]) -> Sequence[FieldFailure]:
        """``status`` is written by a transition; one refused field does not block the rest."""

    def add_comment(self, issue_id: str, body: str, source: str,
                    attachments: Sequence[Attachment] = ()) -> str:
        """Post a comment carrying ``source`` (the desk comment it mirrors) as a
        comment property; returns its id."""

    def find_comment(self, issue_id: str, source: str) -> str | None:
        """Recovery: the id of the comment carrying ``source``, else ``None``."""

    def find_comments(self, issue_id: str, source: str, first_only: bool = False) -> list[str]:
        """Ids of syncd's comments carrying ``source``, oldest first (duplicate repair)."""

    def delete_comment(self, issue_id: str, comment_id: str) -> bool:
        """Delete a comment syncd posted twice; False when it was already gone."""

    def download(self, attachment: Attachment) -> bytes:
        """The bytes of an issue attachment (authenticated)."""

    def upsert_remote_link(self, issue_id: str, global_id: str, url: str, title: str) -> None:
        """Show the desk item inside the issue; idempotent by ``global_id``."""

    def poll(self, cursor: str | None) -> PollPage:
        """Issues updated since ``cursor`` (overlapping windows; duplicates are harmless)."""

    def issues_with_fix_version(self, version_id: str) -> Sequence[str]:
        """Ids of the issues whose fix versions include ``version_id``."""
