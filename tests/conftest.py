"""Shared test fixtures."""

from __future__ import annotations

import pytest

# --- vendor contract checker (owner: syncd/sim/contract.py) -----------------
# Every simulator answer during the session, and the request behind it, is
# checked against the vendor's OpenAPI document; a test whose requests or
# answers break the contract fails in teardown. SYNCD_CONTRACT=off disables.
from syncd.sim import contract as _contract


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
