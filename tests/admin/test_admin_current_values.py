"""The link page of a running daemon shows both sides' current values as the daemon last
read them (its snapshots, with when and at which base revision) next to the base, after a
real escalation and sync through the simulators (issue 15, admin page: "both sides' current
values and the last synced base")."""

from __future__ import annotations

import re
import urllib.request
from typing import Iterator

import pytest

from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World, build_world
from syncd.testing import Observer, quiet, wait_for

from .conftest import enable_admin


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = build_world(tmp_path / "world", zendesk_poll=3600, jira_poll=3600, intercom_poll=3600)
    yield w
    w.stop()


def _page(app: App, token: str, path: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{app.admin_port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.read().decode()


def test_link_page_shows_what_the_daemon_last_read(world: World) -> None:
    _, token = enable_admin(world)
    app = App.build(world.settings())
    app.start()
    try:
        z, look = world.zendesk, Observer(world)
        ticket = z.create_ticket("Exports are empty <b>today</b>", "The CSV has no rows.")
        z.agent_set(ticket, add_tags=["jira_escalate"], priority="high")
        key = wait_for(lambda: look.ticket(ticket).fields.get(f"custom:{world.field_id(9001)}"), timeout=30)
        assert key
        quiet(world, app)
        (link,) = app.store.links_for_desk(ItemRef("zendesk", str(ticket)))
        html = _page(app, token, f"/links/{link.id}")
        assert "<b>today" not in html
        source = html.split('id="now-source"', 1)[1].split("</p>", 1)[0]
        assert re.search(r"Desk: read \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ, item updated", source), source
        assert "Jira: read (time of read not known), item updated" in source, source
        now = html.split('id="now"', 1)[1].split("</table>", 1)[0]
        assert "<td>priority</td><td>high</td><td>High</td><td>high</td><td>High</td>" in now, now
    finally:
        app.stop()
