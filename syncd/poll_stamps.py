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

What syncd *wrote* is not trusted here: a change someone made between syncd's read
and its write (Jira writes are unconditional), or in the same second after it
(Zendesk), would end up under syncd's own stamp, and if that change's webhook was
lost the poll is the only thing that would ever see it. The echo of a write
therefore costs one read, on the first poll after it.

Fed with the items the engine keeps in its snapshot cache at the end of a reconcile
(:class:`~syncd.snapshots.SnapshotCache` calls :meth:`ReconciledStamps.remember`).
Per process (with several replicas, the poll leader knows only what it reconciled
itself: the rest is queued as before), bounded, thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta

from .domain import DeskItem, ItemRef, TrackerIssue

# The engine's own margin for whole-second stamps (syncd.engine.SETTLED).
SETTLED = timedelta(seconds=2)


class ReconciledStamps:
    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        # ref → (stamp, comments it must still have: None when the read proved them all)
        self._stamps: OrderedDict[ItemRef, tuple[datetime, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, item: DeskItem | TrackerIssue) -> None:
        """``item`` as a finished reconcile last saw it (read, or read and then written to)."""
        stamp = _proving_stamp(item)
        with self._lock:
            if stamp is None:
                # The item's newest state is not known well enough: an older stamp kept
                # here would still be right, but is of no use any more.
                self._stamps.pop(item.ref, None)
                return
            unproven = isinstance(item, TrackerIssue) and item.comments_unproven
            self._stamps[item.ref] = (stamp, len(item.comments) if unproven else None)
            self._stamps.move_to_end(item.ref)
            while len(self._stamps) > self.capacity:
                self._stamps.popitem(last=False)

    def covers(self, ref: ItemRef, updated: datetime, comments: int | None = None) -> bool:
        """Whether a poll that found ``ref`` at ``updated`` (with ``comments`` comments,
        where the answer says) has nothing new to queue."""
        with self._lock:
            found = self._stamps.get(ref)
        if found is None or found[0] != updated:
            return False
        return found[1] is None or found[1] == comments

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)


def _proving_stamp(item: DeskItem | TrackerIssue) -> datetime | None:
    """The stamp up to which ``item`` is known to hold every change, or None."""
    if isinstance(item, TrackerIssue):
        return item.updated_at
    if item.observed_at is None or item.observed_at - item.updated_at < SETTLED:
        return None
    return item.updated_at
