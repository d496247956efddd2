"""What Jira deliveries showed of their issues, kept to stand in for reads, is bounded
by the bytes of the deliveries as well as by the number of issues (a soak saw these
fill as the largest growth of an hour; real Cloud issue payloads are 5-10 KB each)."""

from __future__ import annotations

from syncd.issue_hints import MAX_COMMENTS, IssueHint, IssueHints


def shown(stamp: float) -> IssueHint:
    return IssueHint(stamp, {"id": "1", "fields": {"summary": "s"}}, None, stamp)


def commented(stamp: float, cid: str) -> IssueHint:
    return IssueHint(stamp, None, {"id": cid, "body": "b"})


def test_the_least_recently_delivered_issue_goes_once_the_bytes_pass_the_bound() -> None:
    hints = IssueHints(max_bytes=10_000)
    for n in range(3):
        hints.note(str(n), shown(100.0 + n), 3_000)
    assert hints.bytes_held == 9_000 and hints.delivered("0") is not None
    hints.note("0", commented(110.0, "c1"), 500)      # issue 0 is the newest now
    hints.note("3", shown(111.0), 3_000)              # 12,500 bytes: the oldest go
    assert hints.delivered("1") is None and hints.delivered("2") is not None
    kept = hints.delivered("0")
    assert kept is not None and [c["id"] for c in kept.comments] == ["c1"]
    assert hints.bytes_held == 3_000 + 3_000 + 500 + 3_000


def test_a_newer_payload_replaces_the_older_and_counts_once() -> None:
    hints = IssueHints(max_bytes=10_000)
    hints.note("7", shown(100.0), 4_000)
    hints.note("7", shown(101.0), 2_000)
    hints.note("7", shown(99.0), 9_000)               # older than what is held: kept out
    assert hints.bytes_held == 2_000
    found = hints.delivered("7")
    assert found is not None and found.stamp == 101.0


def test_comments_per_issue_stay_bounded_and_their_bytes_go_with_them() -> None:
    hints = IssueHints(max_bytes=1_000_000)
    for n in range(MAX_COMMENTS + 5):
        hints.note("9", commented(100.0 + n, f"c{n}"), 100)
    hints.note("9", commented(200.0, "c24"), 100)     # the same comment again counts once
    assert hints.bytes_held == MAX_COMMENTS * 100
    assert hints.delivered("9") is None               # comments alone: no payload to stand in


def test_a_delivery_larger_than_the_bound_is_not_kept() -> None:
    hints = IssueHints(max_bytes=1_000)
    hints.note("1", shown(100.0), 5_000)
    assert hints.delivered("1") is None and hints.bytes_held == 0


def test_comments_that_stood_in_for_a_read_are_let_go() -> None:
    """Once the engine's copy holds them, delivered comments are no news: the hints hold
    what is pending, not every conversation's history."""
    hints = IssueHints(max_bytes=1_000_000)
    hints.note("5", shown(100.0), 1_000)
    hints.note("5", commented(101.0, "c1"), 300)
    hints.note("5", commented(102.0, "c2"), 300)
    hints.consumed("5", {"c1"})
    found = hints.delivered("5")
    assert found is not None and [c["id"] for c in found.comments] == ["c2"]
    assert hints.bytes_held == 1_300
    hints.consumed("5", {"c2", "c9"})
    found = hints.delivered("5")
    assert found is not None and found.comments == () and hints.bytes_held == 1_000
