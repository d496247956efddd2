"""What the admin page reads: links by what an admin types, paged, each query on an index.

A search names a ticket (``zendesk:123``), a conversation or Intercom ticket
(``intercom:conversation:9``), an issue by key (``SUP-1``) or id (``jira:10001``), or a
bare number (any desk item or issue with that id). Pages are keyset pages on the link id
(``after``), so the millionth link costs what the first does: no OFFSET, no COUNT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from .domain import DESK_KINDS, ItemRef, Link, parse_id
from .schema import dirty, links

ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")
PAGE = 50


class BadSearch(ValueError):
    """What was typed names no ticket, conversation or issue."""


@dataclass(frozen=True)
class LinkPage:
    links: tuple[Link, ...]
    next_after: int | None      # the ``after`` of the next page (None: this is the last)


@dataclass(frozen=True)
class DirtyRow:
    ref: str
    reason: str
    attempts: int
    dirty_since: datetime
    due_at: datetime
    leased_by: str | None
    last_error: str | None


def search_condition(text: str) -> sa.ColumnElement[bool]:
    """The links ``text`` names; raises :class:`BadSearch` with what is accepted."""
    q = text.strip()
    c = links.c
    if not q:
        return sa.true()
    if ISSUE_KEY.match(q):
        return c.issue_key == q.upper()
    if q.isdigit():
        try:
            parse_id(q)
        except ValueError as e:
            raise BadSearch(str(e)) from None
        return sa.or_(c.desk_ref.in_([f"{kind}:{q}" for kind in DESK_KINDS]), c.issue_id == q)
    try:
        ref = ItemRef.parse(q)
    except ValueError as e:
        raise BadSearch(f"{e}; or an issue key like SUP-1, or a number") from None
    if ref.is_desk:
        return c.desk_ref == str(ref)
    if ref.kind == "jira":
        return c.issue_id == ref.id
    raise BadSearch(f"{q} is a Jira version, not a linked item")


def search_links(conn: sa.Connection, text: str, after: int = 0, limit: int = PAGE) -> LinkPage:
    query = (sa.select(links).where(search_condition(text), links.c.id > after)
             .order_by(links.c.id).limit(limit + 1))
    rows = [_link(r) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return LinkPage(tuple(rows), rows[-1].id if more and rows else None)


def dirty_rows(conn: sa.Connection, limit: int = PAGE) -> list[DirtyRow]:
    """The queue in the order the workers take it (due first; on ``ix_dirty_due_at``)."""
    d = dirty.c
    rows = conn.execute(sa.select(dirty).order_by(d.due_at, d.ref).limit(limit))
    return [_dirty(r) for r in rows]


def oldest_dirty(conn: sa.Connection) -> DirtyRow | None:
    """The item dirty longest (what the lag is measured by)."""
    d = dirty.c
    row = conn.execute(sa.select(dirty).order_by(d.dirty_since, d.ref).limit(1)).first()
    return None if row is None else _dirty(row)


def _dirty(r: sa.Row) -> DirtyRow:
    return DirtyRow(r.ref, r.reason, r.attempts, _utc(r.dirty_since), _utc(r.due_at), r.lease_owner, r.last_error)


def _link(r: sa.Row) -> Link:
    return Link(r.id, ItemRef.parse(r.desk_ref), r.issue_id, r.issue_key, _utc(r.created_at))


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)
