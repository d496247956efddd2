"""The ``store`` fixture: every store test runs on SQLite (a temp file) and on Postgres.

Postgres gets a fresh, uniquely named schema per test (``search_path`` set via the
libpq ``options`` in the URL), dropped afterwards, so parallel runs never collide.
Without ``SYNCD_TEST_PG_URL`` (or when it does not answer) the Postgres half is
skipped with a message, unless ``SYNCD_REQUIRE_PG=1``, which makes it fail.
"""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa

from syncd.sim.core import Clock
from syncd.store import Store


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url = os.environ.get("SYNCD_TEST_PG_URL")
    required = os.environ.get("SYNCD_REQUIRE_PG") == "1"
    if not url:
        if required:
            pytest.fail("SYNCD_REQUIRE_PG=1 but SYNCD_TEST_PG_URL is not set")
        pytest.skip("Postgres tests skipped: set SYNCD_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as err:
        if required:
            pytest.fail(f"SYNCD_REQUIRE_PG=1 but Postgres at SYNCD_TEST_PG_URL is unreachable: {err.orig}")
        pytest.skip(f"Postgres tests skipped: SYNCD_TEST_PG_URL unreachable ({err.orig})")
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of an empty database (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'syncd.db'}"
        return
    base = request.getfixturevalue("pg_base_url")
    schema = f"syncd_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
