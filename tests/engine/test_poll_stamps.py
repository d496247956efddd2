"""Which stamps prove a polled item has nothing new (syncd.poll_stamps), on their own."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from syncd.connectors.base import polled_stamps
from syncd.domain import Comment, DeskItem, ItemRef, Side, TrackerIssue
from syncd.poll_stamps import ReconciledStamps, same_as_view
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


def written(observed_before: timedelta = timedelta(seconds=-30)) -> DeskItem:
    """The ticket as syncd's write left it: its new stamp known, the copy not settled (the
    read it was planned from is older than the stamp)."""
    return replace(desk(observed=observed_before), fields={"priority": "high"}, status="open",
                   comments=(note("n1"), note("n2")))


def note(cid: str) -> Comment:
    return Comment(id=cid, author="syncd", body=cid, public=False, created_at=T0)


def view_of(item: DeskItem, after: timedelta = timedelta(seconds=40)) -> DeskItem:
    """A poll view of ``item``: no comments (counted apart), read ``after`` its stamp."""
    return replace(item, comments=(), observed_at=item.updated_at + after)


def test_an_unsettled_write_is_proven_by_a_settled_poll_view_that_shows_it_unchanged():
    settled: list[DeskItem] = []
    stamps = ReconciledStamps(on_settled=settled.append)
    item = written()
    stamps.remember(item)
    assert not stamps.covers(TICKET, T0)                       # no view: the echo is read
    assert not stamps.covers(TICKET, T0, 2, view_of(item, timedelta(seconds=1)))   # second not over
    assert not stamps.covers(TICKET, T0, 3, view_of(item))     # a comment more (a lost reply)
    assert not stamps.covers(TICKET, T0, 2, replace(view_of(item), fields={"priority": "urgent"}))
    assert not stamps.covers(TICKET, T0, 2, replace(view_of(item), status="pending"))
    assert not stamps.covers(TICKET, T0, 2, replace(view_of(item), organization="Acme"))
    assert settled == []
    assert stamps.covers(TICKET, T0, 2, view_of(item))
    assert settled == [view_of(item)]
    assert stamps.covers(TICKET, T0)                           # proven now: no view needed
    assert not stamps.covers(TICKET, T0 + timedelta(seconds=1), 2, view_of(item))


def test_a_poll_view_settles_the_engine_copy_it_shows_as_it_is_and_no_other():
    cache = SnapshotCache()
    item = written()
    cache.put(1, Side.DESK, item, revision=4)
    cache.put(2, Side.DESK, replace(item, fields={"priority": "low"}), revision=4)   # another link's copy
    cache.put(3, Side.DESK, replace(item, updated_at=T0 - timedelta(seconds=9)), revision=4)
    view = view_of(item)
    assert cache.settle(view, same_as_view(view)) == 1
    assert cache.get(1, Side.DESK, 4).observed_at == view.observed_at      # type: ignore[union-attr]
    assert cache.get(2, Side.DESK, 4).observed_at == item.observed_at      # type: ignore[union-attr]
    assert cache.get(3, Side.DESK, 4).observed_at == item.observed_at      # type: ignore[union-attr]
    cache.drop(1, Side.DESK)
    assert cache.settle(view, same_as_view(view)) == 0
