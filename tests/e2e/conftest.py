"""End-to-end fixtures: the three simulators, a real syncd runtime (webhook
server, pollers, workers) and a database — SQLite and Postgres for every test.

    def test_x(world, daemon, look):
        ticket = world.zendesk.create_ticket(...)      # act as a person would
        assert wait_for(lambda: look.ticket(ticket).fields.get(...) == ...)
"""

from __future__ import annotations

from typing import Iterator

import pytest

from syncd.testing import Observer, wait_for
from syncd.runtime import App
from syncd.sandbox import World, build_world

__all__ = ["wait_for"]


@pytest.fixture
def world(tmp_path, db_url) -> Iterator[World]:
    # Pollers are slow here so that webhooks, not polls, carry the changes;
    # tests of the safety net call ``poller.poll_once()`` themselves.
    w = build_world(tmp_path / "world", database_url=db_url, zendesk_poll=3600, jira_poll=3600,
                    intercom_poll=3600, log_level="info")
    yield w
    w.stop()


@pytest.fixture
def daemon(world: World) -> Iterator[App]:
    app = App.build(world.settings())
    app.start()
    yield app
    app.stop()


@pytest.fixture
def look(world: World) -> Observer:
    return Observer(world)
