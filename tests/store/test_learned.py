"""What a connector learns of its account outlives the process (syncd/learned.py), on
SQLite and Postgres: the next process starts from it, another account does not."""

from __future__ import annotations

from datetime import datetime, timezone

from syncd import learned
from syncd.connectors.zendesk import CommentCount
from syncd.domain import Comment
from syncd.store import Store

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
ACCOUNT = "https://acme.zendesk.com"


def note(cid: str, public: bool) -> Comment:
    return Comment(id=cid, author="a", body=cid, public=public, created_at=T0)


def kept(store: Store, url: str = ACCOUNT) -> CommentCount:
    counts = CommentCount()
    learned.keep(store, counts, learned.fact_key("zendesk", "comment_count", url))
    return counts


def test_a_learned_comment_count_verdict_is_where_the_next_process_starts(store: Store) -> None:
    first = kept(store)
    assert first.verdict is None
    first.learn(3, (note("1", True), note("2", False), note("3", True)))   # counted the internal note
    assert first.verdict is True

    again = kept(store)                          # a restarted daemon, same account
    assert again.verdict is True and again.trusts(3, 3)
    assert kept(store, "https://other.zendesk.com").verdict is None   # another account learns afresh


def test_a_verdict_that_turns_is_written_down_as_it_turned(store: Store) -> None:
    """A listing that shows the count leaving out internal notes wins over an earlier verdict."""
    first = kept(store)
    first.learn(3, (note("1", True), note("2", False), note("3", True)))
    first.learn(2, (note("1", True), note("2", False), note("3", True)))
    assert first.verdict is False
    assert kept(store).verdict is False


def test_the_fact_key_fits_its_column_and_names_the_account_not_its_url() -> None:
    key = learned.fact_key("zendesk", "comment_count", "https://" + "a" * 300 + ".zendesk.com/")
    assert len(key) <= 64 and "zendesk.com" not in key
    assert key == learned.fact_key("zendesk", "comment_count", "https://" + "a" * 300 + ".zendesk.com")
