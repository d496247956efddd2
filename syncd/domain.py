"""Domain values shared by the engine, the store and the connectors.

No vendor SDK object ever crosses a connector's edge: connectors turn what the
vendor says into these frozen values, and the engine only speaks these.

Field values are *canonical*: ``None`` (empty), a ``str``, or a sorted ``tuple``
of ``str`` for multi-valued fields (labels, fix versions, tags). Connectors
produce them; the reconcile function compares them with ``==``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Mapping, Union

Value = Union[str, None, tuple[str, ...]]

DESK_KINDS = ("zendesk", "intercom:conversation", "intercom:ticket")
TRACKER_KIND = "jira"
# A Jira fix version: released versions change no issue (so no issue event and
# no poll hit); the version itself is queued and fans out to its linked issues.
VERSION_KIND = "jira:version"

# Every id syncd keeps is a vendor's positive integer: Zendesk ticket ids, Jira
# issue and version ids (JSON numbers or numeric strings), and Intercom
# conversation and ticket ids (numeric strings in every recording in
# ../shared/realworld/intercom, e.g. "137324500000000", "215472629311235").
# One spelling per item: no sign, no leading zero, no whitespace, at most an
# int64 — so "200000000026?", "./1", "1/../../admins" or "0012" never become a
# ref, a URL path or a database key.
_ID = re.compile(r"[1-9][0-9]{0,18}")
MAX_ID = 2**63 - 1


def parse_id(text: str) -> str:
    """``text`` when it is an id in its one spelling; ``ValueError`` (with why) otherwise."""
    if not isinstance(text, str) or not _ID.fullmatch(text) or int(text) > MAX_ID:
        shown = text[:40] + "…" if isinstance(text, str) and len(text) > 40 else text
        raise ValueError(f"bad item id {shown!r}: expected a positive integer of at most 19 digits, "
                         "without sign, leading zero or other characters")
    return text


class Side(str, Enum):
    DESK = "desk"
    TRACKER = "tracker"

    @property
    def other(self) -> "Side":
        return Side.TRACKER if self is Side.DESK else Side.DESK


def vendor_refs(kind: str, raw_ids: "list[object]") -> "tuple[tuple[ItemRef, ...], list[str]]":
    """Refs for ids a vendor answered (a JSON number or string each), in order and
    without repeats, and the ids refused (shown shortened) — a vendor's answer
    is input like any other, and one bad id must not stop a poll."""
    refs: dict[ItemRef, None] = {}
    refused: list[str] = []
    for raw in raw_ids:
        text = str(raw) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else repr(raw)
        try:
            refs[ItemRef(kind, text)] = None
        except ValueError:
            refused.append(text[:40])
    return tuple(refs), refused


@dataclass(frozen=True, order=True)
class ItemRef:
    """One item on one system: ``zendesk:123``, ``intercom:conversation:9``,
    ``intercom:ticket:77`` or ``jira:10001`` (Jira issue *id*, never the key)."""

    kind: str
    id: str

    def __post_init__(self) -> None:
        if self.kind not in DESK_KINDS + (TRACKER_KIND, VERSION_KIND):
            raise ValueError(f"unknown item kind {self.kind!r}; expected one of {DESK_KINDS + (TRACKER_KIND,)}")
        parse_id(self.id)

    @property
    def system(self) -> str:
        """The account a call goes to: ``zendesk``, ``intercom`` or ``jira``."""
        return self.kind.split(":", 1)[0]

    @property
    def is_desk(self) -> bool:
        return self.kind in DESK_KINDS

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> "ItemRef":
        """``zendesk:123`` / ``intercom:conversation:9`` / ``jira:10001``."""
        kind, sep, ident = text.strip().rpartition(":")   # a typed argument may carry spaces
        if not sep or not kind:
            raise ValueError(f"{text!r} is not an item reference like zendesk:123 or intercom:ticket:77")
        return cls(kind, ident)


@dataclass(frozen=True)
class Attachment:
    """A file on a comment. ``data`` is filled by the engine (downloaded from the
    source side) only when the mapping copies the file; otherwise the target
    shows ``url`` as a link."""

    name: str
    url: str
    size: int
    content_type: str = "application/octet-stream"
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Comment:
    """A comment, reply or note, as plain text.

    ``by_integration`` is true when syncd's own account wrote it: such comments
    are never mirrored (that is what stops echo loops without special rules).
    """

    id: str
    author: str
    body: str
    public: bool
    created_at: datetime
    by_integration: bool = False
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class DeskItem:
    """A Zendesk ticket, an Intercom conversation or an Intercom ticket.

    ``fields`` maps the desk's *locators* (as written in the mapping file, e.g.
    ``status``, ``priority``, ``tags``, ``custom:360001``) to canonical values.
    """

    ref: ItemRef
    title: str
    url: str
    status: str
    description: str
    requester: str | None
    organization: str | None
    fields: Mapping[str, Value]
    comments: tuple[Comment, ...]
    updated_at: datetime
    tags: tuple[str, ...] = ()
    due_at: datetime | None = None    # SLA deadline, when the desk has one
    # Locators this kind of item cannot hold (exact, or a prefix ending in ":"),
    # e.g. ``ticket_state`` on an Intercom conversation, ``tags`` on an Intercom
    # ticket: mapping rules on them do not apply to it (one mapping serves
    # every kind of item of a desk).
    not_applicable: frozenset[str] = frozenset()
    # When the request that read it was sent (syncd's clock), where the connector
    # says: with ``updated_at`` it tells whether a later edit must get a newer stamp.
    observed_at: datetime | None = None

    def holds(self, locator: str) -> bool:
        return not any(locator == n or (n.endswith(":") and locator.startswith(n)) for n in self.not_applicable)


@dataclass(frozen=True)
class TrackerIssue:
    """A Jira issue. ``ref.id`` is the immutable issue id; ``key`` may change."""

    ref: ItemRef
    key: str
    url: str
    summary: str
    fields: Mapping[str, Value]   # locators: status, resolution, fixVersions, labels, priority, customfield_N …
    released_versions: tuple[str, ...]
    comments: tuple[Comment, ...]
    updated_at: datetime
    # True when a webhook delivery stood in for the read (syncd.issue_hints): the fields are
    # as of ``updated_at``, the comments those of an older read plus the ones deliveries
    # carried, so a comment whose deliveries were lost may be missing (the poll counts them).
    comments_unproven: bool = False
    # True when syncd wrote fields to the issue after this copy was read (the copy carries
    # them): a delivery about an older change must then not stand in for a read.
    written_since_read: bool = False


@dataclass(frozen=True)
class IssueSpec:
    """What escalation asks the tracker to create."""

    project: str
    issue_type: str
    summary: str
    description: str
    fields: Mapping[str, Value] = field(default_factory=dict)   # tracker locators → values
    # Values the issue would be given right after its creation anyway (the link's first
    # sync, the aggregates), set in the create instead: one editIssue fewer. Optional: a
    # create Jira refuses with them (a field not on the create screen) is made without.
    extra: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    id: int
    desk: ItemRef
    issue_id: str
    issue_key: str
    created_at: datetime


@dataclass(frozen=True)
class BaseEntry:
    """The values of one mapped field when the link was last in sync, each side in its own terms.
    Planned by :mod:`syncd.reconcile`, kept by the store: a domain value, so the store does
    not depend on the planner."""

    desk: Value
    tracker: Value
