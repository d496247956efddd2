"""Shared test fixtures."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

# --- vendor contract checker (owner: tests/contract/) -----------------------
# Every simulator answer during the session, and the request behind it, is
# checked against the vendor's OpenAPI document; a test whose requests or
# answers break the contract fails in teardown. SYNCD_CONTRACT=off disables.
# Without the documents (a fresh clone without ../shared) the checking is off
# and the summary says so, unless the run requires them (then every test fails).
# (self-contained down to the end marker: tests/sim/test_contract.py runs this block in a child pytest)
import os  # noqa: E402,F811
from pathlib import Path  # noqa: E402,F811

import sys as _sys  # noqa: E402

_sys.path.insert(0, str(Path(__file__).resolve().parent))   # --import-mode=importlib: make `contract` importable
import contract as _contract  # noqa: E402


# --- data from ../shared (vendor-specs, realworld) ----------------------------
# The repository is checked out with ``shared/`` beside it in CI and on the
# developers' machines; a fresh clone on its own (the README's ``make test``)
# has none. Tests that need it skip with the reason printed (``-rs``) unless
# the run requires it: CI (``CI=true``), ``SYNCD_REQUIRE_PG=1``,
# ``SYNCD_REQUIRE_SHARED=1`` or an explicit ``SYNCD_VENDOR_SPECS`` make a
# missing directory a failure instead.
REPO_ROOT = Path(__file__).resolve().parents[1]
REALWORLD_ENV = "SYNCD_REALWORLD"


def shared_data_required() -> bool:
    return (os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
            or os.environ.get("SYNCD_REQUIRE_PG") == "1"
            or os.environ.get("SYNCD_REQUIRE_SHARED") == "1"
            or bool(os.environ.get(_contract.SPECS_ENV)))


def shared_data_dir(kind: str) -> Path:
    """Where ``kind`` (``vendor-specs`` or ``realworld``) is looked for."""
    if kind == "vendor-specs":
        return _contract.specs_dir()
    if kind == "realworld":
        return Path(os.environ.get(REALWORLD_ENV) or REPO_ROOT.parent / "shared" / "realworld")
    raise ValueError(f"unknown shared data kind {kind!r}")


def shared_data_missing(kind: str) -> str | None:
    """Why ``kind`` cannot be used (``None`` when it can)."""
    path = shared_data_dir(kind)
    probe = path / "jira-cloud-platform-v3.json" if kind == "vendor-specs" else path / "PROVENANCE.md"
    if probe.is_file():
        return None
    env = _contract.SPECS_ENV if kind == "vendor-specs" else REALWORLD_ENV
    return f"{kind} not found at {path} (../shared beside the checkout, or set {env})"


def _require_shared(kind: str) -> Path:
    why = shared_data_missing(kind)
    if why is None:
        return shared_data_dir(kind)
    if shared_data_required():
        pytest.fail(f"{why}; this run requires it (CI / SYNCD_REQUIRE_PG / SYNCD_REQUIRE_SHARED / "
                    f"{_contract.SPECS_ENV})", pytrace=False)
    pytest.skip(f"needs ../shared: {why}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_shared(kind): needs ../shared/<kind> (vendor-specs, realworld); "
                                       "skips with the reason when absent, fails when the run requires it")


# The suite's longest tests (a minute or more each: a sliding minute of rate budget, a pip
# install into a fresh venv, the crash loops), started first. xdist hands tests out in
# collection order; one of these handed out last ran alone for its last minute or two
# while the other workers sat idle (`--durations`: 164 s, 102 s, 78 s on a loaded machine).
SLOW_FIRST = (
    "tests/cli/test_shared_budget.py",
    "tests/cli/test_first_contact.py",
    "tests/crash/test_crash_loop.py",
    "tests/crash/test_crash_stall.py",
    "tests/faults/test_replica_stalls.py",
    "tests/faults/test_fault_rate_limits.py",
    "tests/crash/test_crash_failpoints.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)   # stable: the rest keep their order


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_shared"):
        for kind in mark.args:
            _require_shared(kind)


@pytest.fixture(scope="session")
def realworld_dir() -> Path:
    """``../shared/realworld`` (recordings of real vendor traffic); skips or fails as above."""
    return _require_shared("realworld")


@pytest.fixture(scope="session")
def vendor_specs_dir() -> Path:
    return _require_shared("vendor-specs")


_CONTRACT_OFF_REASON: list[str] = []


@pytest.fixture(scope="session")
def contract_recorder():
    """The session's :class:`ContractRecorder` (``None`` when switched off).
    Tests that provoke violations on purpose call ``contract_recorder.take()``."""
    if not _contract.contract_enabled():
        yield None
        return
    why = shared_data_missing("vendor-specs")
    if why is not None:
        if shared_data_required():
            pytest.fail(f"contract checking needs the vendor documents: {why}", pytrace=False)
        _CONTRACT_OFF_REASON.append(why)
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
    if _CONTRACT_OFF_REASON:
        terminalreporter.write_line(f"contract: simulator answers NOT checked: {_CONTRACT_OFF_REASON[0]}")
        return
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


