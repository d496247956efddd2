"""syncd/wiring.py: every connector, whoever asks for it (the daemon, a CLI command,
the sandbox, the observer), is built from the config with its account budget and
the configured vendor timeout."""

from __future__ import annotations

import re
from typing import Iterator

import pytest

from syncd.budget import Unlimited
from syncd.runtime import App
from syncd.sandbox import World, build_world
from syncd.wiring import Clients


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = build_world(tmp_path / "world")
    text = w.config_path.read_text()
    text = re.sub(r"\[syncd\]\n", "[syncd]\nvendor_timeout_seconds = 7\n", text, count=1)
    w.config_path.write_text(text.replace("requests_per_minute = 6000", "requests_per_minute = 1200"))
    yield w
    w.stop()


def test_connectors_carry_the_configured_timeout_and_their_account_budget(world: World) -> None:
    clients = Clients.of(world.settings())
    desks, tracker = clients.connectors()

    assert set(desks) == {"zendesk", "intercom"}
    for name, connector in {"jira": tracker, **desks}.items():
        assert connector.access.timeout == 7, name                  # type: ignore[attr-defined]
        assert connector.call.budget is clients.budgets[name], name   # type: ignore[attr-defined]
        assert clients.budgets[name].per_minute == 1200


def test_the_daemon_builds_its_connectors_the_same_way(world: World) -> None:
    app = App.build(world.settings())
    try:
        connectors = {"jira": app.engine.tracker, **app.engine.desks}
        assert {n: c.access.timeout for n, c in connectors.items()} == {   # type: ignore[attr-defined]
            "jira": 7, "zendesk": 7, "intercom": 7}
        assert all(c.call.budget is app.budgets[n] for n, c in connectors.items())   # type: ignore[attr-defined]
        ic = world.intercom.describe()
        zendesk_user = world.zendesk.describe()["users"]["admin"]
        assert app._own_actors() == {"jira": app.engine.tracker.account_id, "zendesk": str(zendesk_user),
                                     "intercom": f"admin:{ic['admins'][0]['id']}"}
    finally:
        app.store.close()


def test_an_observer_is_not_paced_by_syncds_budgets(world: World) -> None:
    clients = Clients.unpaced(world.settings())
    assert isinstance(clients.jira().call.budget, Unlimited)
    assert clients.zendesk().access.timeout == 7


def test_the_memories_that_fill_with_traffic_take_their_bounds_from_the_config(tmp_path) -> None:
    """Issue 10: a soak (and an admin short of memory) bounds each memory that grows with
    traffic; the daemon must keep to what [syncd] says, not to the built-in defaults."""
    from datetime import datetime, timezone

    from syncd.domain import ItemRef, TrackerIssue
    from syncd.issue_hints import IssueHint

    w = build_world(tmp_path / "world")
    try:
        text = w.config_path.read_text().replace(
            "[syncd]\n", "[syncd]\nissue_hints_max_bytes = 3000\npoll_stamps_max_items = 2\n", 1)
        w.config_path.write_text(text)
        app = App.build(w.settings())
        try:
            for n in range(5):   # five issues, 1,000 bytes of delivery each: only three fit
                app.engine.hints.note(str(n), IssueHint(float(n), {"id": str(n)}, None, float(n)), 1000)
            assert app.engine.hints.bytes_held == 3000 and len(app.engine.hints) == 3
            assert app.engine.hints.delivered("0") is None and app.engine.hints.delivered("4") is not None

            stamps = app.poll_stamps
            assert stamps is not None
            at = datetime(2026, 12, 3, tzinfo=timezone.utc)
            for n in range(4):
                stamps.remember(TrackerIssue(ItemRef.parse(f"jira:{n + 1}"), f"SUP-{n + 1}", "u", "s", {}, (), (), at))
            assert len(stamps) == 2
            assert stamps.covers(ItemRef.parse("jira:4"), at) and not stamps.covers(ItemRef.parse("jira:1"), at)
        finally:
            app.store.close()
    finally:
        w.stop()
