"""The account budget's ledger (syncd/shared_budget.py) on SQLite and Postgres: claims
are granted only while the calls counted in the window stay within the account's
limit, a block ended early gives back what it did not use, and a holder over its
share of a crowded window waits for the others."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from syncd.shared_budget import Ended, Ledger, shared_budget
from syncd.store import Store

T0 = 1_800_000_000.0


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    s.upgrade()
    yield s
    s.close()


def ledger(store: Store, limit: int = 10) -> Ledger:
    return Ledger(store, "zendesk", limit, counted=61.0, open_counted=63.0)


def test_claims_stop_at_the_limit_and_resume_when_calls_stop_counting(store: Store) -> None:
    l = ledger(store)
    first = l.claim("daemon", 6, T0)
    second = l.claim("import", 6, T0 + 1)
    assert (first.calls, second.calls) == (6, 4), "10 calls a window, whoever asks"
    denied = l.claim("import", 6, T0 + 2)
    assert denied.calls == 0 and denied.retry_at == T0 + 63.0, "open blocks count until claim + window + block"
    assert l.claim("import", 6, T0 + 63.5).calls == 6
    assert Ledger(store, "jira", 10, 61.0, 63.0).claim("daemon", 10, T0 + 2).calls == 10, "per account"


def test_a_block_ended_early_gives_back_its_unused_calls(store: Store) -> None:
    l = ledger(store)
    block = l.claim("import", 10, T0)
    assert l.claim("daemon", 1, T0 + 0.5).calls == 0
    # The import used 3 calls, the last at T0 + 0.4: 7 go back, the 3 count until T0 + 0.4 + 61.
    again = l.claim("import", 10, T0 + 1, ended=[Ended(block.row, 3, T0 + 0.4)])   # type: ignore[arg-type]
    assert again.calls == 7
    l.settle([Ended(again.row, 0, T0 + 1)])   # type: ignore[arg-type]
    assert l.claim("daemon", 10, T0 + 2).calls == 7
    assert l.claim("daemon", 10, T0 + 61.5).calls == 3, "the 3 used calls stopped counting at T0 + 61.4"


def test_a_crowded_window_goes_to_the_holder_below_its_share(store: Store) -> None:
    l = ledger(store, limit=100)
    assert l.claim("import", 80, T0).calls == 80
    assert l.claim("import", 10, T0 + 0.5).calls == 10, "alone, a holder may fill the window"
    assert l.claim("daemon", 1, T0 + 0.6).calls == 1
    over = l.claim("import", 5, T0 + 1)
    assert over.calls == 0, "91 of 100, and the import has more than half: the others first"
    assert l.claim("daemon", 5, T0 + 1).calls == 5


def test_two_budgets_on_one_database_share_the_limit(store: Store) -> None:
    a = shared_budget(store, "jira", 6000, "host:1/daemon")
    b = shared_budget(store, "jira", 6000, "host:2/import")
    for _ in range(250):
        a.acquire()
        b.acquire()
    a.close()
    b.close()
    assert a.claims + b.claims >= 2
    # Unused calls were given back: what counts is what was used.
    granted = Ledger(store, "jira", 6000, 61.0, 63.0).claim("probe", 6000, time.time())
    assert granted.calls == 5500, "6,000 a window, 500 used by the two holders"
