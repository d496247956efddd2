"""What this process last saw of each side of a link, to skip re-reading the side that did not change.

A reconcile is triggered by one side (the webhook or poll named it); that side is
always read fresh. The *other* side is usually unchanged, and reading it again
costs a vendor call that the account's rate budget pays for. The engine may use
the snapshot kept here instead, but only when both of these hold:

* the entry was stored at the link's current base revision (no other worker or
  replica synced a field of the link since: it would have moved the revision);
* the plan made with it writes no field, or writes fields only to the remembered
  side and that side's vendor refuses a write planned from an outdated copy
  (Zendesk's safe update: a 409 makes the engine read and plan again). Any other
  field write needs the target's current value for the conflict rule, so the
  engine reads the side and plans again.

Why that is enough: the snapshot agrees with the base (it was stored with it),
so the plan sees no change on the remembered side and derives nothing from it.
A change there that syncd has not seen yet (its webhook is queued or still on
the way) is simply not acted on in this pass: that item's own reconcile reads it
fresh and carries it across. Comments and notes are append-only and recorded as
intents, so a stale view of the other side cannot double or drop them.

Entries are patched with the fields syncd wrote (and the comments it posted);
a write the snapshot cannot model (a Jira transition, ``tags+``, a Zendesk
write whose new ``updated_at`` is unknown) drops the entry instead.

Per process, bounded (least recently used entries go first), thread-safe.
``on_put`` is told every entry stored (the pollers' :mod:`syncd.poll_stamps`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Generic, TypeVar

from .domain import Comment, DeskItem, Side, TrackerIssue

S = TypeVar("S", DeskItem, TrackerIssue)


@dataclass(frozen=True)
class Snapshot(Generic[S]):
    item: S
    revision: int     # the link's base revision this snapshot is consistent with


class SnapshotCache:
    def __init__(self, capacity: int = 20_000,
                 on_put: Callable[[DeskItem | TrackerIssue], None] | None = None):
        self.capacity = capacity
        self.on_put = on_put
        self._entries: OrderedDict[tuple[int, Side], Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, link_id: int, side: Side, revision: int) -> DeskItem | TrackerIssue | None:
        """The snapshot of ``side`` if it was stored at ``revision``, else None."""
        with self._lock:
            entry = self._entries.get((link_id, side))
            if entry is None:
                return None
            if entry.revision != revision:
                del self._entries[(link_id, side)]
                return None
            self._entries.move_to_end((link_id, side))
            return entry.item

    def peek(self, link_id: int, side: Side) -> DeskItem | TrackerIssue | None:
        """The snapshot whatever its revision (for what stays true across revisions, e.g.
        the comments an item had: they are only ever added to)."""
        with self._lock:
            entry = self._entries.get((link_id, side))
            return None if entry is None else entry.item

    def put(self, link_id: int, side: Side, item: DeskItem | TrackerIssue, revision: int) -> None:
        with self._lock:
            self._entries[(link_id, side)] = Snapshot(item, revision)
            self._entries.move_to_end((link_id, side))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        if self.on_put is not None:
            self.on_put(item)

    def patch(self, link_id: int, side: Side, change: Callable[[S], S]) -> None:
        """Apply ``change`` to the snapshot of ``side`` (if any), keeping its revision."""
        with self._lock:
            entry = self._entries.get((link_id, side))
            if entry is not None:
                self._entries[(link_id, side)] = Snapshot(change(entry.item), entry.revision)

    def drop(self, link_id: int, side: Side) -> None:
        with self._lock:
            self._entries.pop((link_id, side), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def with_comment(item: S, comment: Comment) -> S:
    """``item`` as it is after syncd posted ``comment`` on it (keeps a cached
    comment list, and so Zendesk's comment count, in step with the vendor)."""
    return replace(item, comments=item.comments + (comment,))
