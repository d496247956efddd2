"""Which polled items syncd has already carried across: a poll that finds only those queues nothing.

A poll names items whose ``updated`` moved since the last poll. Many of them moved
because of something syncd already handled: the change whose webhook triggered a
reconcile seconds ago, or an item an earlier poll (an overlapping window) already
queued. Queueing them again costs a vendor read each and finds nothing to do.

A reconcile that read an item at stamp ``U`` and finished has carried every change
up to ``U`` across. If a poll then finds the item still at ``U``, nothing happened
since, and the item is not queued. This is sound only when the stamp tells every
change apart:

* Jira's ``updated`` has milliseconds: a later change gets a later stamp.
* Zendesk's and Intercom's ``updated_at`` have whole seconds: an edit made later in
  the same second as the read keeps the stamp. Such a read counts only when it was
  made at least :data:`SETTLED` after the stamp (the second was over, plus a second
  for the difference between the vendor's clock and ours), as the engine requires
  before it plans a write from a remembered item.

A Jira issue reconciled from a webhook delivery instead of a read
(:mod:`syncd.issue_hints`) has its fields as of its stamp, but its comments are an
older read's plus those deliveries carried: a comment whose deliveries were all lost
would be missing. Its stamp counts only while the poll's answer shows the same number
of comments (the Jira poll asks for them: no extra call).

What syncd *wrote* is not trusted on its stamp alone: a change someone made between
syncd's read and its write (Jira writes are unconditional), or in the same second after
it (Zendesk), would end up under syncd's own stamp, and if that change's webhook was
lost the poll is the only thing that would ever see it. On Jira the echo's delivery can
prove it (:mod:`syncd.engine`); on Zendesk the poll's own answer can: the incremental
export carries each ticket whole, with its comment count (``include=comment_count``),
as it stood when the export was asked for -- a minute or more after the stamp, since
Zendesk holds the last minute back. A desk item whose stamp is not settled (syncd wrote
to it, or read it within the stamp's second) is remembered with what it held; a poll
view at the same stamp that shows the same fields, status, tags, names and number of
comments, and was made :data:`SETTLED` after the stamp, proves that nothing changed
since: the item is not queued, and the engine's snapshot of it takes the view's time
(``on_settled``), so the next change from the other side plans from it without
reading the ticket (a safe update still refuses the write if anything changed since).
Without a view (no count, a name not known, Intercom) the echo costs one read, on the
first poll after it, as before.

Fed with the items the engine keeps in its snapshot cache at the end of a reconcile
(:class:`~syncd.snapshots.SnapshotCache` calls :meth:`ReconciledStamps.remember`).
Per process (with several replicas, the poll leader knows only what it reconciled
itself: the rest is queued as before), bounded, thread-safe.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from .domain import DeskItem, ItemRef, TrackerIssue

# The engine's own margin for whole-second stamps (syncd.engine.SETTLED).
SETTLED = timedelta(seconds=2)


@dataclass(frozen=True)
class _Known:
    stamp: datetime
    comments: int | None = None      # comments it must still have (None: the read proved them all)
    view: bytes | None = None        # an unsettled desk item: what a poll view must show (view_key)


class ReconciledStamps:
    def __init__(self, capacity: int = 100_000, on_settled: Callable[[DeskItem], None] | None = None):
        self.capacity = capacity
        self.on_settled = on_settled     # told each desk item a poll view proved unchanged
        self._stamps: OrderedDict[ItemRef, _Known] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, item: DeskItem | TrackerIssue) -> None:
        """``item`` as a finished reconcile last saw it (read, or read and then written to)."""
        known = _known(item)
        with self._lock:
            if known is None:
                # The item's newest state is not known well enough: an older stamp kept
                # here would still be right, but is of no use any more.
                self._stamps.pop(item.ref, None)
                return
            self._stamps[item.ref] = known
            self._stamps.move_to_end(item.ref)
            while len(self._stamps) > self.capacity:
                self._stamps.popitem(last=False)

    def covers(self, ref: ItemRef, updated: datetime, comments: int | None = None,
               view: DeskItem | None = None) -> bool:
        """Whether a poll that found ``ref`` at ``updated`` (with ``comments`` comments,
        and looking like ``view``, where the answer says) has nothing new to queue."""
        with self._lock:
            found = self._stamps.get(ref)
        if found is None or found.stamp != updated:
            return False
        if found.view is None:
            return found.comments is None or found.comments == comments
        if (view is None or view.updated_at != updated or view.observed_at is None
                or view.observed_at - updated < SETTLED or comments != found.comments
                or view_key(view) != found.view):
            return False
        with self._lock:
            if self._stamps.get(ref) == found:
                self._stamps[ref] = _Known(updated)    # proven now: later polls need no view
        if self.on_settled is not None:
            self.on_settled(view)
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)


def _known(item: DeskItem | TrackerIssue) -> _Known | None:
    """What ``item`` proves about itself: a stamp up to which it holds every change (with
    the comments a poll must still show, where its comments were not all read), or for a
    desk item not settled, what a poll view at its stamp must show."""
    if isinstance(item, TrackerIssue):
        return _Known(item.updated_at, len(item.comments) if item.comments_unproven else None)
    if item.observed_at is None or item.observed_at - item.updated_at < SETTLED:
        return _Known(item.updated_at, len(item.comments), view_key(item))
    return _Known(item.updated_at)


def view_key(item: DeskItem) -> bytes:
    """What a poll view must show of ``item`` to prove it unchanged: everything a read
    gives but the comments (counted apart) and the read's time. A digest, so the stamps
    hold a few bytes per item, not the item."""
    shown = (item.ref, item.title, item.status, item.description, item.requester, item.organization,
             sorted(item.fields.items()), item.tags, item.due_at, item.updated_at)
    return hashlib.blake2b(repr(shown).encode(), digest_size=16).digest()


def same_as_view(view: DeskItem) -> Callable[[DeskItem], bool]:
    """For :meth:`syncd.snapshots.SnapshotCache.settle`: an entry the view shows as it is."""
    key = view_key(view)
    return lambda item: view_key(item) == key
