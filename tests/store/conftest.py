"""The ``store`` fixture: every store test runs on SQLite (a temp file) and on Postgres.

Postgres gets a fresh, uniquely named schema per test (``search_path`` set via the
libpq ``options`` in the URL), dropped afterwards, so parallel runs never collide.
Without ``SYNCD_TEST_PG_URL`` (or when it does not answer) the Postgres half is
skipped with a message, unless ``SYNCD_REQUIRE_PG=1``, which makes it fail.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import sqlalchemy as sa

from syncd.sim.core import Clock
from syncd.store import Store


@pytest.fixture
def clock() -> Clock:
    """Real time that a test can jump forward instead of sleeping."""
    return Clock()


@pytest.fixture
def store(db_url: str, clock: Clock) -> Iterator[Store]:
    opened = Store.open(db_url, clock=clock.now)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def raw(db_url: str) -> Iterator[sa.Engine]:
    """A plain engine on the same database, for what the store's API must not offer (triggers, EXPLAIN)."""
    engine = sa.create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()
