"""A Zendesk comment syncd posted twice, hidden as far as Zendesk allows (it deletes no
comment): ``find_comments`` sees every copy, ``retract_comment`` makes one private and
redacts its whole text (``MakeTicketCommentPrivate`` + ``RedactTicketCommentInAgentWorkspace``),
through the connector over real HTTP to the simulator."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
import requests

from syncd.connectors.zendesk import ZendeskAccess, ZendeskConnector, redact_all
from syncd.domain import ItemRef
from syncd.sim.zendesk import ADMIN_EMAIL, API_TOKEN, ZendeskSim


@pytest.fixture
def zendesk_sim() -> Iterator[ZendeskSim]:
    sim = ZendeskSim().start()
    yield sim
    threading.Thread(target=sim.stop, daemon=True).start()


def connector(sim: ZendeskSim) -> ZendeskConnector:
    creds = sim.describe()["credentials"]
    return ZendeskConnector(ZendeskAccess(sim.base_url, creds["email"], creds["token"], timeout=10))


def comments(sim: ZendeskSim, ticket: int) -> list[dict]:
    with sim.lock:
        return [dict(c) for c in sim.tickets[ticket].comments]


def test_a_second_copy_is_found_then_made_private_and_redacted(zendesk_sim: ZendeskSim) -> None:
    conn = connector(zendesk_sim)
    ticket = zendesk_sim.create_ticket("Checkout fails", "It fails <at> checkout & more.")
    ref = ItemRef("zendesk", str(ticket))
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    body = "Engineer (Jira): found it -- see https://example.com/x & <y>\n\nsecond paragraph"
    first = conn.add_comment(ref, body, public=True)
    zendesk_sim.agent_reply(ticket, body)   # an agent's comment with the same text is not syncd's
    second = conn.add_comment(ref, body, public=True)

    assert conn.find_comments(ref, body, since) == [first, second]
    assert conn.retract_comment(ref, second) is True

    by_id = {str(c["id"]): c for c in comments(zendesk_sim, ticket)}
    assert by_id[first]["public"] and by_id[first]["plain_body"] == body
    assert by_id[second]["public"] is False
    assert set(by_id[second]["plain_body"]) <= set("▇ \n") and "▇" in by_id[second]["plain_body"]
    assert conn.find_comments(ref, body, since) == [first]
    assert conn.retract_comment(ref, second) is True   # again: idempotent, nothing else changes
    assert {str(c["id"]): c["plain_body"] for c in comments(zendesk_sim, ticket)}[first] == body


def test_a_redaction_cannot_rewrite_a_comment(zendesk_sim: ZendeskSim) -> None:
    # The simulator's own rule (the reference does not say): the html_body sent must be the
    # comment's own, marks aside.
    ticket = zendesk_sim.create_ticket("Subject", "A body.")
    cid = comments(zendesk_sim, ticket)[0]["id"]
    url = f"{zendesk_sim.base_url}/api/v2/comment_redactions/{cid}.json"
    auth = (f"{ADMIN_EMAIL}/token", API_TOKEN)
    wrong = requests.put(url, json={"ticket_id": ticket, "html_body": "<p><redact>Something else</redact></p>"},
                         auth=auth, timeout=10)
    assert wrong.status_code == 422
    html = comments(zendesk_sim, ticket)[0]["html_body"]
    right = requests.put(url, json={"ticket_id": ticket, "html_body": redact_all(html)}, auth=auth, timeout=10)
    assert right.status_code == 200 and right.json()["comment"]["plain_body"] == "▇" * len("A body.")
    other = requests.put(url, json={"ticket_id": ticket + 1000, "html_body": "x"}, auth=auth, timeout=10)
    assert other.status_code == 404
