"""The snapshot cache and the comment-count shortcut, on their own."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from syncd.connectors.zendesk import CommentCount
from syncd.domain import Comment, DeskItem, ItemRef, Side, TrackerIssue
from syncd.link_reconcile import _patched
from syncd.snapshots import SnapshotCache, with_comment

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 23, 9, 5, tzinfo=timezone.utc)


def desk(**fields: object) -> DeskItem:
    return DeskItem(ref=ItemRef("zendesk", "7"), title="t", url="u", status="open", description="",
                    requester=None, organization=None, fields=dict(fields), comments=(), updated_at=T0)  # type: ignore[arg-type]


def issue(**fields: object) -> TrackerIssue:
    return TrackerIssue(ref=ItemRef("jira", "10001"), key="SUP-1", url="u", summary="s", fields=dict(fields),  # type: ignore[arg-type]
                        released_versions=(), comments=(), updated_at=T0)


def comment(cid: str, public: bool = True) -> Comment:
    return Comment(id=cid, author="a", body=cid, public=public, created_at=T0)


def test_a_snapshot_is_served_only_at_the_revision_it_was_stored_with():
    cache = SnapshotCache()
    cache.put(1, Side.DESK, desk(), revision=3)
    assert cache.get(1, Side.DESK, 3) == desk()
    assert cache.get(1, Side.TRACKER, 3) is None
    # Another worker synced the link (revision 4): the copy may miss that, so it is gone.
    assert cache.get(1, Side.DESK, 4) is None
    assert cache.get(1, Side.DESK, 3) is None
    assert cache.peek(1, Side.DESK) is None


def test_peek_ignores_the_revision_and_drop_forgets():
    cache = SnapshotCache()
    cache.put(1, Side.TRACKER, issue(), revision=1)
    assert cache.peek(1, Side.TRACKER) == issue()
    cache.drop(1, Side.TRACKER)
    assert cache.peek(1, Side.TRACKER) is None


def test_patch_changes_the_copy_and_keeps_its_revision():
    cache = SnapshotCache()
    cache.patch(1, Side.TRACKER, lambda i: i)            # nothing stored: nothing happens
    assert cache.peek(1, Side.TRACKER) is None
    cache.put(1, Side.TRACKER, issue(linked="1"), revision=5)
    cache.patch(1, Side.TRACKER, lambda i: replace(i, fields={**i.fields, "linked": "2"}))
    assert cache.get(1, Side.TRACKER, 5) == issue(linked="2")


def test_the_cache_is_bounded_and_evicts_the_least_recently_used():
    cache = SnapshotCache(capacity=2)
    cache.put(1, Side.DESK, desk(), 1)
    cache.put(2, Side.DESK, desk(), 1)
    assert cache.get(1, Side.DESK, 1) is not None      # 1 is now the most recent
    cache.put(3, Side.DESK, desk(), 1)
    assert len(cache) == 2
    assert cache.peek(2, Side.DESK) is None
    assert cache.peek(1, Side.DESK) is not None and cache.peek(3, Side.DESK) is not None


def test_with_comment_appends_what_syncd_posted():
    item = with_comment(desk(), comment("9"))
    assert [c.id for c in item.comments] == ["9"]


def test_patched_sets_written_fields_and_the_desks_new_stamp():
    d = _patched(desk(priority="low", impact="x"), {"priority": "high"}, T1, conditional=True)
    assert isinstance(d, DeskItem)
    assert d.fields == {"priority": "high", "impact": "x"} and d.updated_at == T1
    i = _patched(issue(priority="Low"), {"priority": "High"}, None, conditional=False)
    assert i is not None and i.fields["priority"] == "High" and i.updated_at == T0


def test_patched_models_tags_and_status_on_a_desk_with_safe_updates():
    """The copy stays unsettled (its read is older than T1): a poll view or a read must
    show it exactly before a field write is planned from it (syncd.poll_stamps)."""
    base = replace(desk(), tags=("b", "x"), fields={"tags": ("b", "x"), "status": "solved"}, status="solved")
    d = _patched(base, {"tags+": ("a",), "tags-": ("x",), "status": "open"}, T1, conditional=True)
    assert isinstance(d, DeskItem)
    assert d.tags == ("a", "b") and d.fields["tags"] == ("a", "b")
    assert d.status == "open" and d.fields["status"] == "open" and d.updated_at == T1
    assert d.observed_at == base.observed_at
    gone = _patched(base, {"tags": ()}, T1, conditional=True)
    assert isinstance(gone, DeskItem) and gone.tags == () and gone.fields["tags"] is None


def test_patched_gives_up_where_the_result_is_not_known():
    # A conditional desk without its new updated_at: a safe update from it would be refused.
    assert _patched(desk(priority="low"), {"priority": "high"}, None, conditional=True) is None
    # A status change (a Jira transition may set resolution too) and additive locators.
    assert _patched(issue(status="To Do"), {"status": "Done"}, None, conditional=False) is None
    assert _patched(desk(), {"tags+": ("a",)}, None, conditional=False) is None
    assert _patched(desk(), {"status": "open"}, None, conditional=False) is None
    # Nothing written: the snapshot as it is.
    assert _patched(desk(), {}, None, conditional=True) == desk()


def test_comment_count_is_trusted_only_once_seen_to_count_internal_notes():
    counts = CommentCount()
    listed = (comment("1"), comment("2", public=False), comment("3"))
    assert not counts.trusts(3, 3)                 # not learnt yet
    counts.learn(3, (comment("1"), comment("3")))  # only public comments: both meanings agree
    assert not counts.trusts(2, 2)
    counts.learn(3, listed)                        # counted the internal note too
    assert counts.trusts(3, 3)
    assert not counts.trusts(4, 3)                 # something new: list again
    assert not counts.trusts(None, 3)              # the sideload was not answered


def test_comment_count_of_public_comments_only_is_never_trusted():
    counts = CommentCount()
    counts.learn(2, (comment("1"), comment("2", public=False), comment("3")))
    assert counts.verdict is False
    counts.learn(3, (comment("1"), comment("2", public=False), comment("3")))
    assert not counts.trusts(3, 3)


def test_the_cache_is_bounded_by_the_comments_it_holds_too():
    """A few long conversations must not take the memory: entries go, oldest first, once the
    comments they hold together pass the limit."""
    cache = SnapshotCache(capacity=100, max_comments=10)
    long = replace(desk(), comments=tuple(comment(str(n)) for n in range(6)))
    cache.put(1, Side.DESK, long, 1)
    cache.put(2, Side.DESK, long, 1)           # 12 comments: the oldest entry goes
    assert cache.peek(1, Side.DESK) is None and cache.peek(2, Side.DESK) is not None
    assert cache.comments_held == 6
    cache.put(3, Side.DESK, desk(), 1)
    cache.patch(3, Side.DESK, lambda d: with_comment(d, comment("x")))
    assert cache.comments_held == 7
    cache.put(2, Side.DESK, desk(), 2)         # replacing an entry gives its comments back
    assert cache.comments_held == 1
    cache.drop(3, Side.DESK)
    assert cache.comments_held == 0 and len(cache) == 1
    cache.put(4, Side.DESK, replace(desk(), comments=tuple(comment(str(n)) for n in range(11))), 1)
    assert cache.peek(4, Side.DESK) is None and cache.comments_held == 0   # alone over the limit: not kept
