"""Each vendor's one pager (``_pages`` in connectors/jira.py and zendesk.py) over real
HTTP: lists longer than a page are read whole through the simulators, and a vendor
that hands out a page position already read is an error, not an endless loop."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from syncd.connectors.jira import JiraAccess, JiraConnector
from syncd.connectors.zendesk import ZendeskAccess, ZendeskConnector
from syncd.domain import ItemRef
from syncd.errors import VendorError
from syncd.sim.jira import JiraSim
from syncd.sim.zendesk import ZendeskSim


@pytest.fixture
def jira_sim() -> Iterator[JiraSim]:
    sim = JiraSim().start()
    yield sim
    threading.Thread(target=sim.stop, daemon=True).start()


@pytest.fixture
def zendesk_sim() -> Iterator[ZendeskSim]:
    sim = ZendeskSim().start()
    yield sim
    threading.Thread(target=sim.stop, daemon=True).start()


def jira(sim: JiraSim) -> JiraConnector:
    creds = sim.describe()["credentials"]
    return JiraConnector(JiraAccess(sim.base_url, creds["email"], creds["api_token"], timeout=10))


def test_jira_comments_past_the_first_page_are_read(jira_sim: JiraSim) -> None:
    # getComments pages by startAt at 100 a page: syncd's own comment is the 151st.
    conn = jira(jira_sim)
    jira_sim.configure({"issue_write_limit": None})   # 150 comments at once, not a rate-limit test
    key = jira_sim.engineer_create("SUP", "Many comments")
    issue = conn.resolve_key(key)
    assert issue is not None
    for n in range(150):
        jira_sim.engineer_comment(key, f"note {n}")
    mine = conn.add_comment(issue.ref.id, "mirrored", source="comment:1:tracker:9")

    assert conn.find_comments(issue.ref.id, "comment:1:tracker:9") == [mine]


def test_jira_poll_reads_every_search_page(jira_sim: JiraSim) -> None:
    # Cloud's /search/jql pages by nextPageToken: five changed issues at two a page.
    conn = jira(jira_sim)
    cursor = conn.poll(None).cursor
    state = json.loads(cursor)
    cursor = json.dumps({**state, "t": state["t"] - 600})   # the window reaches back over the creates
    keys = [jira_sim.engineer_create("SUP", f"Issue {n}") for n in range(5)]
    ids = {i.ref.id for i in (conn.resolve_key(k) for k in keys) if i is not None}

    page = conn.poll(cursor, page_size=2)

    assert ids <= {ref.id for ref in page.items}


def test_zendesk_comments_past_the_first_page_are_read(zendesk_sim: ZendeskSim) -> None:
    # listTicketComments pages by cursor at 100 a page.
    creds = zendesk_sim.describe()["credentials"]
    conn = ZendeskConnector(ZendeskAccess(zendesk_sim.base_url, creds["email"], creds["token"], timeout=10))
    ticket = zendesk_sim.create_ticket("Long thread", "first")
    for n in range(119):
        zendesk_sim.agent_reply(ticket, f"reply {n}", public=n % 2 == 0)

    item = conn.fetch(ItemRef("zendesk", str(ticket)))

    assert item is not None and len(item.comments) == 120
    assert item.comments[-1].body == "reply 118"
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    assert conn.find_comment(ItemRef("zendesk", str(ticket)), "reply 118", since) is None   # not syncd's


class _SameCursorForever(BaseHTTPRequestHandler):
    """A Zendesk whose webhook list always says there is more, after the same cursor."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/v2/users/me.json"):
            self._send({"user": {"id": 7, "name": "syncd"}})
        elif self.path.startswith("/api/v2/webhooks"):
            self._send({"webhooks": [], "meta": {"has_more": True, "after_cursor": "c1"}})
        else:
            self._send({"error": "no route"}, 404)

    def _send(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_page_position_handed_out_twice_is_an_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SameCursorForever)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = ZendeskConnector(ZendeskAccess(f"http://127.0.0.1:{server.server_address[1]}", "a@example.com",
                                              "token", timeout=5))
        with pytest.raises(VendorError, match="already read"):
            conn.install_webhook("syncd", "https://syncd.example.com/webhooks/zendesk", "{}")
    finally:
        server.shutdown()
        server.server_close()
