"""Shared test fixtures."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa

# --- vendor contract checker (owner: tests/contract/) -----------------------
# Every simulator answer during the session, and the request behind it, is
# checked against the vendor's OpenAPI document; a test whose requests or
# answers break the contract fails in teardown. SYNCD_CONTRACT=off disables.
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent))   # --import-mode=importlib: make `contract` importable
import contract as _contract  # noqa: E402


@pytest.fixture(scope="session")
def contract_recorder():
    """The session's :class:`ContractRecorder` (``None`` when switched off).
    Tests that provoke violations on purpose call ``contract_recorder.take()``."""
    if not _contract.contract_enabled():
        yield None
        return
    recorder = _contract.ContractRecorder().install()
    yield recorder
    recorder.uninstall()


@pytest.fixture(autouse=True)
def _contract_check(request: pytest.FixtureRequest, contract_recorder):
    if contract_recorder is None:
        yield
        return
    contract_recorder.begin(request.node.nodeid)
    yield
    problems = contract_recorder.end(request.node.nodeid)
    if problems:
        pytest.fail(_contract.format_report(request.node.nodeid, problems), pytrace=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    recorder = _contract.ACTIVE_RECORDER
    if recorder is not None:
        terminalreporter.write_line(recorder.summary())
# --- end vendor contract checker ---------------------------------------------


# --- databases: every store-backed test runs on SQLite and on Postgres -------
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


