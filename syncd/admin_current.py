"""Both sides' current values for the admin link page, as the daemon last read them.

Not a fresh read: the admin page calls no vendor (it would spend the account's
budget on every page view, and a page anyone with the token can reload must not
be a way to cause 429s). What it shows instead is the engine's snapshot of each
side (:mod:`syncd.snapshots`): the item as this process last read it (or as it
is after syncd's own writes to it), with when it was read and the base revision
it was read at. A snapshot at an older revision than the link's base was read
before the last sync and may be stale; one missing (the daemon restarted, the
entry was evicted, the link was never reconciled by this process) is said so,
and the page falls back to the base (the values at the last sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping as TMapping

from .domain import DeskItem, Link, Side, TrackerIssue, Value
from .mapping import Mapping
from .snapshots import SnapshotCache


@dataclass(frozen=True)
class SideSeen:
    """One side as the daemon last read it."""

    values: dict[str, Value]      # mapping rule name → the side's value (its own terms)
    read_at: datetime | None      # when the read was sent (the desk connectors say; None: not known)
    updated_at: datetime          # the vendor's own stamp of the item at that read
    revision: int                 # the link's base revision the read belongs to


@dataclass(frozen=True)
class Seen:
    desk: SideSeen | None
    tracker: SideSeen | None


class CurrentValues:
    """What the link page shows as "now", from the daemon's snapshots."""

    def __init__(self, snapshots: SnapshotCache, mappings: TMapping[str, Mapping]):
        self.snapshots, self.mappings = snapshots, mappings

    def of(self, link: Link) -> Seen:
        mapping = self.mappings.get(link.desk.system)
        if mapping is None:
            return Seen(None, None)
        return Seen(self._side(link, Side.DESK, mapping), self._side(link, Side.TRACKER, mapping))

    def _side(self, link: Link, side: Side, mapping: Mapping) -> SideSeen | None:
        entry = self.snapshots.entry(link.id, side)
        if entry is None:
            return None
        item: DeskItem | TrackerIssue = entry.item
        values = {r.name: item.fields.get(r.desk if side is Side.DESK else r.tracker) for r in mapping.fields}
        read_at = item.observed_at if isinstance(item, DeskItem) else None
        return SideSeen(values, read_at, item.updated_at, entry.revision)
