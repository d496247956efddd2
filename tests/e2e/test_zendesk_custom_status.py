"""Zendesk custom ticket statuses end to end (issue 11): the mapping's fan-out moves
every linked ticket from "Waiting on engineering" to "Fix released" when the Jira
issue is done; a custom status the account does not have stops the start.
Runs on SQLite and on Postgres (the ``db_url`` fixture)."""

from __future__ import annotations

import re
from typing import Iterator

import pytest

from syncd.connectors.zendesk import CustomStatusError
from syncd.testing import Observer, wait_for
from syncd.runtime import App
from syncd.sandbox import World


def _add_status(world: World, category: str, label: str) -> int:
    from syncd.sim import zendesk_statuses
    with world.zendesk.lock:
        return int(zendesk_statuses.new_status(world.zendesk, {"status_category": category,
                                                               "agent_label": label})["id"])


def _fan_out_to(world: World, status: str) -> None:
    mapping = world.directory / "zendesk-jira.toml"
    text = mapping.read_text()
    text = re.sub(r'(?m)^desk_status = "open"', f'desk_status = "{status}"', text)
    text = re.sub(r'(?m)^desk_status_field = "status"', 'desk_status_field = "custom_status"', text)
    mapping.write_text(text)


@pytest.fixture
def custom_daemon(world: World) -> Iterator[tuple[App, int, int]]:
    waiting = _add_status(world, "open", "Waiting on engineering")
    fixed = _add_status(world, "solved", "Fix released")
    _fan_out_to(world, "Fix released")
    app = App.build(world.settings())
    app.start()
    yield app, waiting, fixed
    app.stop()


def test_fanout_moves_linked_tickets_to_a_custom_status(world, custom_daemon):
    app, waiting, fixed = custom_daemon
    z, j, look = world.zendesk, world.jira, Observer(world)
    first = z.create_ticket("Export hangs", "Since Monday")
    z.agent_set(first, add_tags=["jira_escalate"])
    key = wait_for(lambda: look.ticket(first).fields.get(f"custom:{world.field_id(9001)}"))
    assert key
    second = z.create_ticket("Export stuck", "Same here")
    z.agent_set(second, custom_fields={world.field_id(9001): key})
    # both linked (the Jira status mirrored onto each) before the issue moves
    assert wait_for(lambda: all(look.ticket(t).fields.get(f"custom:{world.field_id(9002)}") == "To Do"
                                for t in (first, second)))
    for t in (first, second):   # agents park both tickets while engineering works
        with z.lock:
            z.update_ticket_from(t, {"custom_status_id": waiting}, z.agent)
    assert wait_for(lambda: all(z.tickets[t].status == "open" for t in (first, second)))

    j.engineer_transition(key, "In Progress")
    j.engineer_transition(key, "Done")
    assert wait_for(lambda: all(z.tickets[t].custom_status_id == fixed for t in (first, second)), timeout=60), \
        [(z.tickets[t].status, z.tickets[t].custom_status_id) for t in (first, second)]
    assert all(z.tickets[t].status == "solved" for t in (first, second))


def test_a_custom_status_the_account_lacks_stops_the_start(world):
    _fan_out_to(world, "Shipped to customers")
    with pytest.raises(CustomStatusError, match="no active custom status 'Shipped to customers'"):
        App.build(world.settings())
