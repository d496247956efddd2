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
a write the snapshot cannot model (a Jira transition, ``tags+`` or a status on a
desk without safe updates, a Zendesk write whose new ``updated_at`` is unknown)
drops the entry instead. A patched Zendesk entry is unsettled: it is planned from
for a field write only once a read or a poll view has proven it (syncd.poll_stamps).

Per process, bounded (least recently used entries go first) both in entries and in
the comments they hold -- a snapshot carries its item's whole comment list, so a
count of entries alone would let a few long conversations take the memory of a
daemon meant to run for months -- and thread-safe.
``on_put`` is told every entry stored (the pollers' :mod:`syncd.poll_stamps`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Generic, TypeVar

from .domain import Comment, DeskItem, ItemRef, Side, TrackerIssue

S = TypeVar("S", DeskItem, TrackerIssue)


@dataclass(frozen=True)
class Snapshot(Generic[S]):
    item: S
    revision: int     # the link's base revision this snapshot is consistent with


MAX_COMMENTS = 100_000   # comments held across all entries (~1 KiB each with its body: ~100 MiB at most)


class SnapshotCache:
    def __init__(self, capacity: int = 20_000, max_comments: int = MAX_COMMENTS,
                 on_put: Callable[[DeskItem | TrackerIssue], None] | None = None):
        self.capacity = capacity
        self.max_comments = max_comments
        self.on_put = on_put
        self._entries: OrderedDict[tuple[int, Side], Snapshot] = OrderedDict()
        self._comments = 0     # comments held by all entries
        self._by_ref: dict[ItemRef, set[tuple[int, Side]]] = {}   # desk entries by the item's ref
        self._lock = threading.Lock()

    def _set(self, key: tuple[int, Side], entry: Snapshot) -> None:
        self._pop(key)
        self._entries[key] = entry
        self._comments += len(entry.item.comments)
        if key[1] is Side.DESK:
            self._by_ref.setdefault(entry.item.ref, set()).add(key)

    def _pop(self, key: tuple[int, Side]) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._comments -= len(old.item.comments)
            keys = self._by_ref.get(old.item.ref)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_ref[old.item.ref]

    def _evict(self) -> None:
        while self._entries and (len(self._entries) > self.capacity or self._comments > self.max_comments):
            self._pop(next(iter(self._entries)))

    @property
    def comments_held(self) -> int:
        with self._lock:
            return self._comments

    def get(self, link_id: int, side: Side, revision: int) -> DeskItem | TrackerIssue | None:
        """The snapshot of ``side`` if it was stored at ``revision``, else None."""
        with self._lock:
            entry = self._entries.get((link_id, side))
            if entry is None:
                return None
            if entry.revision != revision:
                self._pop((link_id, side))
                return None
            self._entries.move_to_end((link_id, side))
            return entry.item

    def peek(self, link_id: int, side: Side) -> DeskItem | TrackerIssue | None:
        """The snapshot whatever its revision (for what stays true across revisions, e.g.
        the comments an item had: they are only ever added to)."""
        with self._lock:
            entry = self._entries.get((link_id, side))
            return None if entry is None else entry.item

    def entry(self, link_id: int, side: Side) -> Snapshot | None:
        """The snapshot and the revision it was stored at, leaving the LRU order alone
        (for looking, e.g. the admin page: a look must not keep an entry alive)."""
        with self._lock:
            return self._entries.get((link_id, side))

    def put(self, link_id: int, side: Side, item: DeskItem | TrackerIssue, revision: int) -> None:
        with self._lock:
            self._set((link_id, side), Snapshot(item, revision))
            self._evict()
        if self.on_put is not None:
            self.on_put(item)

    def patch(self, link_id: int, side: Side, change: Callable[[S], S]) -> None:
        """Apply ``change`` to the snapshot of ``side`` (if any), keeping its revision."""
        with self._lock:
            entry = self._entries.get((link_id, side))
            if entry is not None:
                new = Snapshot(change(entry.item), entry.revision)
                self._comments += len(new.item.comments) - len(entry.item.comments)
                self._entries[(link_id, side)] = new   # keeps its place in the LRU order
                self._evict()

    def settle(self, seen: DeskItem, same: Callable[[DeskItem], bool]) -> int:
        """A desk item's entries shown unchanged by a later look (``seen``, e.g. a poll's
        view of it, with ``same`` telling an entry it shows as it is) take that look's
        ``observed_at``: they are then as good as a read made at that time (settled, see
        :mod:`syncd.link_reconcile`). Returns how many entries were settled."""
        settled = 0
        with self._lock:
            for key in tuple(self._by_ref.get(seen.ref, ())):
                entry = self._entries[key]
                item = entry.item
                if (isinstance(item, DeskItem) and item.updated_at == seen.updated_at and same(item)
                        and seen.observed_at is not None
                        and (item.observed_at is None or item.observed_at < seen.observed_at)):
                    self._entries[key] = Snapshot(replace(item, observed_at=seen.observed_at), entry.revision)
                    settled += 1
        return settled

    def drop(self, link_id: int, side: Side) -> None:
        with self._lock:
            self._pop((link_id, side))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def with_comment(item: S, comment: Comment) -> S:
    """``item`` as it is after syncd posted ``comment`` on it (keeps a cached
    comment list, and so Zendesk's comment count, in step with the vendor)."""
    return replace(item, comments=item.comments + (comment,))
