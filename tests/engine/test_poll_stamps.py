"""Which stamps prove a polled item has nothing new (syncd.poll_stamps), on their own."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from syncd.connectors.base import polled_stamps
from syncd.domain import DeskItem, ItemRef, Side, TrackerIssue
from syncd.poll_stamps import ReconciledStamps
from syncd.snapshots import SnapshotCache

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
TICKET = ItemRef("zendesk", "7")
ISSUE = ItemRef("jira", "10001")


def desk(observed: timedelta | None) -> DeskItem:
    return DeskItem(ref=TICKET, title="t", url="u", status="open", description="", requester=None,
                    organization=None, fields={}, comments=(), updated_at=T0,
                    observed_at=None if observed is None else T0 + observed)


def issue(updated: datetime = T0) -> TrackerIssue:
    return TrackerIssue(ref=ISSUE, key="SUP-1", url="u", summary="s", fields={}, released_versions=(),
                        comments=(), updated_at=updated)


def test_a_jira_read_covers_its_own_stamp_only():
    stamps = ReconciledStamps()
    stamps.remember(issue())
    assert stamps.covers(ISSUE, T0)
    assert not stamps.covers(ISSUE, T0 + timedelta(milliseconds=1))
    assert not stamps.covers(TICKET, T0)


def test_a_whole_second_stamp_counts_only_from_a_settled_read():
    stamps = ReconciledStamps()
    stamps.remember(desk(observed=timedelta(milliseconds=300)))   # same second: a later edit keeps T0
    assert not stamps.covers(TICKET, T0)
    stamps.remember(desk(observed=None))                          # the connector did not say when
    assert not stamps.covers(TICKET, T0)
    stamps.remember(desk(observed=timedelta(seconds=2)))
    assert stamps.covers(TICKET, T0)
    # A later unsettled copy (e.g. after syncd's own write) forgets the older proof.
    stamps.remember(replace(desk(observed=timedelta(seconds=2)), updated_at=T0 + timedelta(seconds=5)))
    assert not stamps.covers(TICKET, T0)
    assert not stamps.covers(TICKET, T0 + timedelta(seconds=5))


def test_bounded_and_fed_by_the_snapshot_cache():
    stamps = ReconciledStamps(capacity=1)
    cache = SnapshotCache(on_put=stamps.remember)
    cache.put(1, Side.TRACKER, issue(), revision=1)
    assert stamps.covers(ISSUE, T0)
    cache.put(2, Side.DESK, desk(observed=timedelta(seconds=3)), revision=1)
    assert stamps.covers(TICKET, T0) and not stamps.covers(ISSUE, T0)
    assert len(stamps) == 1


def test_polled_stamps_keep_the_newest_and_skip_what_does_not_parse():
    later = T0 + timedelta(seconds=1)
    items = [{"id": 7, "at": T0}, {"id": 7, "at": later}, {"id": "x/../1", "at": T0}, {"id": 8, "at": None},
             {"id": 9, "at": "garbage"}]

    def stamp_of(item):  # type: ignore[no-untyped-def]
        at = item["at"]
        if isinstance(at, str):
            raise ValueError(at)
        return at

    assert polled_stamps("zendesk", items, stamp_of) == {TICKET: later}


def test_a_delivery_stand_in_counts_only_while_the_poll_shows_as_many_comments():
    """A Jira delivery stood in for the read: its comments are an older read's, so one made
    in between whose deliveries were lost is missing. The poll's comment count tells."""
    stamps = ReconciledStamps()
    stamps.remember(replace(issue(), comments_unproven=True))
    assert stamps.covers(ISSUE, T0, comments=0)
    assert not stamps.covers(ISSUE, T0, comments=1)
    assert not stamps.covers(ISSUE, T0)            # an answer that did not say
    stamps.remember(issue())                       # a read proves them all
    assert stamps.covers(ISSUE, T0)
