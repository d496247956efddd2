"""Per-link history: every write syncd makes, when, where, what and why.

Three steps, so that the SQL stays out of the engine and the engine stays free of
bookkeeping:

* :func:`attributed` (pure, called by the engine around each link's reconcile) tags the
  writes made meanwhile with the link, the value each field write replaced and why: the
  mapping rule and its decision (a conflict names both values it compared), the comment
  mirrored, the note's occasion.
* :func:`entries` (pure) turns an outcome's writes into rows. A write made for an item
  outside any one of its links (the key field and linked tag of a desk item, an issue's
  aggregates, the create of an escalation, a typed key) belongs to the link its target
  names when exactly one does, and to the item otherwise.
* :func:`record` stores them once the reconcile succeeded (the worker, ``syncd resync``,
  ``syncd link``), with the trigger: the item reconciled and what marked it dirty.

* :func:`record_failed` stores the writes that landed before a reconcile failed (an
  exception after some vendor writes): the next attempt finds them done (an issue
  created, a comment mirrored, a field already equal) and does not write them again,
  so this is the only moment they can be recorded. Their trigger says the reconcile
  failed and why.

Pruned by age (``[retention] history_days``, :mod:`syncd.retention`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence, TypeVar

import sqlalchemy as sa
import structlog

from .domain import ItemRef, Link, Side, Value
from .schema import history

if TYPE_CHECKING:
    from .reconcile import Decision, FieldWrite, Plan

log = structlog.get_logger(__name__)
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-\d+$")
BOOKKEEPING = "bookkeeping: the desk item's key field or linked tag, or the issue's aggregates"


class WriteLike(Protocol):
    """:class:`syncd.engine.Write` (not imported: the engine imports this module)."""

    target: str
    what: str
    detail: str
    link: int | None
    old: str | None
    why: str | None
    source: str | None
    mirrored: str | None


W = TypeVar("W", bound=WriteLike)


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    at: datetime
    link_id: int | None
    desk: str | None
    issue_id: str | None
    issue_key: str | None
    side: str | None          # desk | tracker
    target: str
    what: str                 # field:<locator> | comment | note | create | link
    old: str | None
    new: str | None
    source_id: str | None
    mirrored_id: str | None
    why: str | None
    trigger: str | None

    def as_doc(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "link": self.link_id, "desk": self.desk,
                "issue_id": self.issue_id, "issue_key": self.issue_key, "side": self.side, "target": self.target,
                "what": self.what, "old": self.old, "new": self.new, "source_id": self.source_id,
                "mirrored_id": self.mirrored_id, "why": self.why, "trigger": self.trigger}


# ------------------------------------------------------------------ attribution (pure)

def attributed(writes: Sequence[W], link: Link, plans: Sequence["Plan"]) -> list[W]:
    """``writes`` made while reconciling ``link`` (with ``plans``, its plan if one was made),
    each tagged with the link, the value it replaced and why."""
    fields = {(w.side, w.locator): w for p in plans for w in p.field_writes}
    decisions: dict[str, list["Decision"]] = {}
    for p in plans:
        for d in p.decisions:
            decisions.setdefault(d.field, []).append(d)
    comments = {c.source_id: c for p in plans for c in p.comment_writes}
    out: list[W] = []
    for w in writes:
        side = side_of(w.target, link)
        old, why = w.old, w.why
        if w.what.startswith("field:"):
            planned = fields.get((side, w.what.removeprefix("field:"))) if side is not None else None
            if planned is not None:
                old = old if old is not None else show(planned.old)
                why = why or field_why(planned, decisions.get(planned.field, []))
        elif w.what == "comment" and why is None:
            cw = comments.get(w.source or "")
            why = (f"comment {cw.source_id} of the {cw.side.other.value} mirrored "
                   f"({'public' if cw.public else 'internal'})" if cw is not None
                   else "recovery: an earlier attempt's comment was not found on the vendor, written again")
        elif w.what == "note" and why is None:
            why = note_why(w.source or "")
        out.append(replace(w, link=w.link if w.link is not None else link.id, old=old, why=why))  # type: ignore[type-var]
    return out


def side_of(target: str, link: Link | None) -> Side | None:
    if link is not None and target == link.issue_key:
        return Side.TRACKER
    if link is not None and target == str(link.desk):
        return Side.DESK
    if _KEY.match(target):
        return Side.TRACKER
    try:
        return Side.DESK if ItemRef.parse(target).is_desk else Side.TRACKER
    except ValueError:
        return None


def show(value: Value) -> str:
    if value is None or value == ():
        return "(none)"
    return ", ".join(value) if isinstance(value, tuple) else value


def field_why(write: "FieldWrite", decisions: Sequence["Decision"]) -> str:
    if write.field == "fanout" or any(d.kind == "skipped" and "fan-out" in d.detail for d in decisions):
        return "fan-out: the issue entered a fan-out status (mapping [fanout])"
    told = next((d for d in decisions if d.kind in ("copied", "conflict")), None)
    return f"rule {write.field}" + (f" ({told.kind}): {told.detail}" if told is not None else "")


def note_why(key: str) -> str:
    """Why a note was posted, from its intent key (see syncd.reconcile and syncd.engine)."""
    parts = key.split(":")
    if key.startswith("note:escalated:"):
        return "escalation: the issue was created for this item"
    if key.startswith("note:badkey:"):
        return f"the key field names no Jira issue ({parts[-1]})"
    if key.startswith("fanout:") and len(parts) > 2 and parts[2] == "release":
        return f"fix version {parts[3]} released" if len(parts) > 3 else "fix version released"
    if key.startswith("fanout:"):
        return ("fan-out: the issue entered a fan-out status"
                + (" (public reply)" if key.endswith(":reply") else ""))
    if key.startswith("note:") and len(parts) > 2:
        return f"rule {parts[2]}: note_on_change"
    return "note"


# --------------------------------------------------------------------- rows (pure)

def entries(writes: Iterable[WriteLike], links: Sequence[Link], ref: ItemRef, trigger: str,
            now: float) -> list[dict[str, Any]]:
    """Rows for the history table. ``links``: the reconciled item's links (after it ran)."""
    by_id = {l.id: l for l in links}
    rows = []
    for w in writes:
        link = by_id.get(w.link) if w.link is not None else _named_by(w.target, links)
        side = side_of(w.target, link)
        why = w.why or _unlinked_why(w)
        issue_id = link.issue_id if link is not None else (ref.id if ref.kind == "jira" and side is Side.TRACKER
                                                            else None)
        rows.append({
            "at": now, "link_id": w.link if w.link is not None else (link.id if link else None),
            "desk_ref": str(link.desk) if link is not None else (w.target if side is Side.DESK else None),
            "issue_id": issue_id,
            "issue_key": link.issue_key if link is not None else (w.target if side is Side.TRACKER else None),
            "side": side.value if side is not None else None,
            "target": _cut(w.target, 200), "what": _cut(w.what, 200), "old": w.old,
            "new": w.detail,
            "source_id": _cut(w.source, 300), "mirrored_id": _cut(w.mirrored, 300), "why": why,
            "trigger": _cut(trigger, 300),
        })
    return rows


def _named_by(target: str, links: Sequence[Link]) -> Link | None:
    """The one link whose desk item or issue ``target`` is (None when none or several are)."""
    named = [l for l in links if target in (str(l.desk), l.issue_key)]
    return named[0] if len(named) == 1 else None


def _unlinked_why(w: WriteLike) -> str | None:
    if w.what == "create":
        return "escalation: the desk item asked for an issue (escalation tag or project field)"
    if w.what == "link":
        return "the desk item's key field names this issue"
    if w.what.startswith("field:"):
        return BOOKKEEPING
    if w.what == "note":
        return note_why(w.source or "")
    return None


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------ SQL

class _Store(Protocol):
    def clock(self) -> float: ...
    def transaction(self) -> Any: ...
    def links_for_desk(self, desk: ItemRef) -> list[Link]: ...
    def links_for_issue(self, issue_id: str) -> list[Link]: ...


def rows(store: _Store, writes: Sequence[WriteLike], ref: ItemRef, trigger: str,
         links: Sequence[Link] | None = None) -> list[dict[str, Any]]:
    """The history rows of the writes of a reconcile of ``ref`` (none without writes).
    ``links``: the item's links as the reconcile left them, when it knows them."""
    if not writes:
        return []
    return entries(writes, _links_of(store, ref) if links is None else links, ref, trigger, store.clock())


def record(store: _Store, writes: Sequence[WriteLike], ref: ItemRef, trigger: str,
           links: Sequence[Link] | None = None) -> int:
    """Store the writes of a reconcile of ``ref`` that succeeded; returns how many. (The
    daemon's workers store them with the claim's completion: :meth:`Store.complete`.)"""
    found = rows(store, writes, ref, trigger, links)
    if found:
        with store.transaction() as conn:
            conn.execute(sa.insert(history), found)
    return len(found)


def _links_of(store: _Store, ref: ItemRef) -> Sequence[Link]:
    if ref.is_desk:
        return store.links_for_desk(ref)
    return store.links_for_issue(ref.id) if ref.kind == "jira" else []


def failed_trigger(trigger: str, error: BaseException) -> str:
    """The trigger of writes whose reconcile then failed: the trigger and the error."""
    return f"{trigger}; the reconcile failed after these writes: {type(error).__name__}: {error}"


def record_failed(store: _Store, writes: Sequence[WriteLike], ref: ItemRef, trigger: str,
                  error: BaseException, links: Sequence[Link] | None = None) -> int:
    """Store the writes a reconcile of ``ref`` made before it failed with ``error``.
    Never raises (the caller is handling ``error``; a database down now is logged and
    the entries are lost, as they would have been before)."""
    if not writes:
        return 0
    try:
        return record(store, writes, ref, failed_trigger(trigger, error), links)
    except Exception as e:
        log.warning("history_not_recorded", item=str(ref), writes=len(writes), error=f"{type(e).__name__}: {e}")
        return 0


def read(conn: sa.Connection, *, link_id: int | None = None, desk_ref: str | None = None,
         issue_id: str | None = None, limit: int = 100, before: int | None = None) -> list[HistoryEntry]:
    """Newest first, the entries of one link, or of one desk item or issue (its links' and its
    own, those of removed links included). ``before``: an entry id (paging). One criterion
    at a time, so that each read is one ordered seek on its (column, id) index."""
    h = history.c
    given = [c for c in (h.link_id == link_id if link_id is not None else None,
                         h.desk_ref == desk_ref if desk_ref is not None else None,
                         h.issue_id == issue_id if issue_id is not None else None) if c is not None]
    if len(given) != 1:
        raise ValueError("read the history of one link, one desk item or one issue")
    query = sa.select(history).where(given[0]).order_by(h.id.desc()).limit(limit)
    if before is not None:
        query = query.where(h.id < before)
    return [_entry(r) for r in conn.execute(query)]


def prune(conn: sa.Connection, older_than: float) -> int:
    """Delete entries recorded before ``older_than`` (epoch seconds)."""
    return conn.execute(sa.delete(history).where(history.c.at < older_than)).rowcount


def _entry(r: sa.Row) -> HistoryEntry:
    return HistoryEntry(r.id, datetime.fromtimestamp(r.at, timezone.utc), r.link_id, r.desk_ref, r.issue_id,
                        r.issue_key, r.side, r.target, r.what, r.old, r.new, r.source_id, r.mirrored_id, r.why,
                        r.trigger)
