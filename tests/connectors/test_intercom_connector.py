"""The Intercom connector over real HTTP: python-intercom 5.x against the Intercom simulator.

Test set-up (contacts, companies, attributes written by people) goes through the
same SDK or the simulator's actors; what is asserted is what the connector
returns and what the simulator then holds.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from intercom import CreateOrUpdateCompanyRequest, Intercom

from syncd.connectors.intercom import (IntercomAccess, IntercomConnector, canonical, coerce, html_to_text,
                                       text_to_html)
from syncd.domain import ItemRef
from syncd.errors import RateLimited
from syncd.retry import RetryPolicy
from syncd.sim.core import Fault
from syncd.sim.intercom import IntercomSim

VERSION = "2.14"
FAST = RetryPolicy(base_delay=0.01, max_delay=2.0, total_budget=5.0)


@pytest.fixture
def sim() -> Iterator[IntercomSim]:
    s = IntercomSim().start()
    try:
        yield s
        # Every request the connector (or the set-up) made carried the version header.
        assert s.requests_without_version() == []
    finally:
        # Shutting the server down waits out its half-second poll loop; nothing
        # here needs that wait, so it happens off the test's clock.
        threading.Thread(target=s.stop, daemon=True).start()


@pytest.fixture
def client(sim: IntercomSim) -> Intercom:
    """The SDK as a person in the workspace would use it (test set-up only)."""
    return Intercom(token=sim.token, base_url=sim.base_url, headers={"Intercom-Version": VERSION})


def make_connector(sim: IntercomSim, **kw: object) -> IntercomConnector:
    access = IntercomAccess(sim.base_url, sim.token, sim.first_admin_id(), VERSION,
                            timeout=float(kw.pop("timeout", 5.0)))   # type: ignore[arg-type]
    kw.setdefault("policy", FAST)
    return IntercomConnector(access, **kw)   # type: ignore[arg-type]


@pytest.fixture
def conn(sim: IntercomSim) -> IntercomConnector:
    return make_connector(sim)


def other_admin(sim: IntercomSim) -> str:
    return [a for a in sim.world.admins if a != sim.first_admin_id()][0]


def add_attributes(sim: IntercomSim, **types: str) -> None:
    """What an admin does in Settings > Data > Conversation data (2.14 cannot create them)."""
    for name, data_type in types.items():
        sim.define_conversation_attribute(name, data_type)


def conv_ref(sim: IntercomSim, body: str = "It is broken") -> ItemRef:
    return ItemRef("intercom:conversation", sim.create_conversation(sim.first_contact_id(), body))


def ticket_ref(sim: IntercomSim, title: str = "Crash on export", description: str = "CSV export crashes") -> ItemRef:
    return ItemRef("intercom:ticket", sim.create_ticket(sim.first_contact_id(), title, description))


# ---------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------

def test_fetch_conversation_with_replies_notes_attributes_and_company(
        sim: IntercomSim, client: Intercom, conn: IntercomConnector) -> None:
    me, bob, contact = sim.first_admin_id(), other_admin(sim), sim.first_contact_id()
    company = client.companies.create_or_update(request=CreateOrUpdateCompanyRequest(company_id="acme-1",
                                                                                      name="Acme Ltd"))
    client.companies.attach_contact(contact_id=contact, company_id=company.id)
    add_attributes(sim, jira_status="string", seats="integer")
    ref = conv_ref(sim, "Export fails<br>since Monday &amp; today")
    client.conversations.update(ref.id, custom_attributes={"jira_status": "In Progress", "seats": 12})
    sim.customer_reply(ref.id, "<p>Any news?</p>")
    sim.admin_note(ref.id, bob, "<p>Filed <b>ENG-7</b></p>")
    sim.admin_reply(ref.id, me, "<p>We are on it</p>")
    client.tags.tag_conversation(ref.id, tag_id=client.tags.create(request={"name": "vip"}).id, admin_id=me)

    item = conn.fetch(ref)

    assert item is not None and item.ref == ref
    assert item.title == "Export fails"
    assert item.description == "Export fails\nsince Monday & today"
    assert (item.requester, item.organization) == ("Carol Customer", "Acme Ltd")
    assert item.url == f"{sim.base_url}/a/inbox/{sim.app_id}/inbox/conversation/{ref.id}"
    assert item.status == "open"
    assert item.fields["state"] == "open" and item.fields["tags"] == ("vip",) and item.tags == ("vip",)
    assert item.fields["attr:jira_status"] == "In Progress" and item.fields["attr:seats"] == "12"
    bodies = [(c.author, c.body, c.public, c.by_integration) for c in item.comments]
    assert bodies == [
        ("Carol Customer", "Export fails\nsince Monday & today", True, False),
        ("Carol Customer", "Any news?", True, False),
        ("Bob Backline", "Filed ENG-7", False, False),
        ("Ada Agent", "We are on it", True, True),
    ]
    assert len({c.id for c in item.comments}) == 4
    assert item.updated_at == datetime.fromtimestamp(sim.world.conversation(ref.id).updated_at, timezone.utc)


def test_fetch_ticket(sim: IntercomSim, client: Intercom, conn: IntercomConnector) -> None:
    ref = ticket_ref(sim)
    sim.ticket_note(ref.id, sim.first_admin_id(), "<p>ENG-9 filed</p>")
    sim.ticket_customer_reply(ref.id, "Thanks")
    sim.set_ticket_state(ref.id, "in_progress")

    item = conn.fetch(ref)

    assert item is not None
    assert (item.title, item.description, item.requester) == ("Crash on export", "CSV export crashes", "Carol Customer")
    assert item.fields["ticket_state"] == "in_progress" and item.status == "in_progress"
    assert item.fields["state"] == "open"
    assert item.fields["ticket_attr:_default_title_"] == "Crash on export"
    assert [(c.body, c.public, c.by_integration) for c in item.comments] == [
        ("ENG-9 filed", False, True), ("Thanks", True, False)]
    assert ref.id in item.url


def test_fetch_of_a_missing_item_is_none(conn: IntercomConnector) -> None:
    assert conn.fetch(ItemRef("intercom:conversation", "404404")) is None
    assert conn.fetch(ItemRef("intercom:ticket", "404404")) is None


# ---------------------------------------------------------------------------
# update_fields
# ---------------------------------------------------------------------------

def test_state_close_reopen_and_snooze(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    assert conn.update_fields(ref, {"state": "closed"}) == []
    assert sim.world.conversation(ref.id).state == "closed"
    assert conn.update_fields(ref, {"state": "open"}) == []
    assert conn.fetch(ref).fields["state"] == "open"   # type: ignore[union-attr]
    assert conn.update_fields(ref, {"state": "snoozed"}) == []
    assert sim.world.conversation(ref.id).snoozed_until > time.time()
    [failure] = conn.update_fields(ref, {"state": "archived"})
    assert failure.locator == "state" and sim.world.conversation(ref.id).state == "snoozed"
    parts = [p.part_type for p in sim.world.conversation(ref.id).parts]
    assert parts == ["close", "open", "snoozed"]
    assert {p.author["id"] for p in sim.world.conversation(ref.id).parts} == {sim.first_admin_id()}


def test_attributes_written_in_one_call_and_a_refused_one_alone_fails(
        sim: IntercomSim, client: Intercom, conn: IntercomConnector) -> None:
    # (no boolean attribute here: Intercom's 2.14 document has no boolean custom attribute values)
    add_attributes(sim, jira_status="string", seats="integer", jira_fix_versions="string")
    ref = conv_ref(sim)
    assert conn.update_fields(ref, {"attr:jira_status": "Done", "attr:seats": "3",
                                    "attr:jira_fix_versions": ("1.2", "1.3")}) == []
    assert sim.count("updateConversation") == 1
    assert sim.world.conversation(ref.id).custom_attributes == {
        "jira_status": "Done", "seats": 3, "jira_fix_versions": "1.2, 1.3"}

    failures = conn.update_fields(ref, {"attr:jira_status": "Open", "attr:no_such": "x", "attr:seats": "many"})
    assert sorted(f.locator for f in failures) == ["attr:no_such", "attr:seats"]
    attrs = sim.world.conversation(ref.id).custom_attributes
    assert attrs["jira_status"] == "Open" and attrs["seats"] == 3
    assert conn.fetch(ref).fields["attr:seats"] == "3"   # type: ignore[union-attr]
    assert conn.update_fields(ref, {"attr:jira_status": None}) == []
    assert conn.fetch(ref).fields["attr:jira_status"] is None   # type: ignore[union-attr]


def test_tags_add_and_replace_create_missing_tags(sim: IntercomSim, client: Intercom,
                                                   conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    client.tags.create(request={"name": "Existing"})
    assert conn.update_fields(ref, {"tags+": ("jira_escalate", "existing")}) == []
    assert conn.fetch(ref).fields["tags"] == ("Existing", "jira_escalate")   # type: ignore[union-attr]
    assert conn.update_fields(ref, {"tags+": ("jira_linked",)}) == []
    assert conn.fetch(ref).fields["tags"] == ("Existing", "jira_escalate", "jira_linked")   # type: ignore[union-attr]
    assert conn.update_fields(ref, {"tags": ("jira_linked", "vip")}) == []
    assert conn.fetch(ref).fields["tags"] == ("jira_linked", "vip")   # type: ignore[union-attr]
    assert sorted(t.name for t in sim.world.tags.values()) == ["Existing", "jira_escalate", "jira_linked", "vip"]
    assert conn.update_fields(ref, {"tags": None}) == []
    assert conn.fetch(ref).fields["tags"] is None   # type: ignore[union-attr]


def test_ticket_state_and_ticket_attributes(sim: IntercomSim, client: Intercom, conn: IntercomConnector) -> None:
    ref = ticket_ref(sim)
    tt = sim.world.ticket(ref.id).ticket_type_id
    client.ticket_types.attributes.create(tt, name="jira_key", description="Jira issue", data_type="string")
    client.ticket_types.attributes.create(tt, name="affected", description="Users", data_type="integer")

    assert conn.update_fields(ref, {"ticket_state": "in_progress", "ticket_attr:jira_key": "ENG-1",
                                    "ticket_attr:affected": "40"}) == []
    assert sim.count("updateTicket") == 1
    item = conn.fetch(ref)
    assert item is not None and item.fields["ticket_state"] == "in_progress"
    assert item.fields["ticket_attr:jira_key"] == "ENG-1" and sim.world.ticket(ref.id).attributes["affected"] == 40

    failures = conn.update_fields(ref, {"ticket_state": "Nonsense", "ticket_attr:jira_key": "ENG-2"})
    assert [f.locator for f in failures] == ["ticket_state"]
    assert conn.fetch(ref).fields["ticket_attr:jira_key"] == "ENG-2"   # type: ignore[union-attr]

    assert conn.update_fields(ref, {"ticket_state": "Resolved"}) == []   # an internal label works too
    item = conn.fetch(ref)
    assert item is not None and (item.fields["ticket_state"], item.fields["state"]) == ("resolved", "closed")
    assert conn.update_fields(ref, {"state": "open"}) == []
    assert conn.fetch(ref).fields["state"] == "open"   # type: ignore[union-attr]
    assert [f.locator for f in conn.update_fields(ref, {"tags": ("x",), "priority": "high"})] == ["tags", "priority"]


# ---------------------------------------------------------------------------
# comments
# ---------------------------------------------------------------------------

def test_add_note_and_public_reply_then_recognised_as_ours(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    note_body = "Jira ENG-7 wrote:\nuse <b> & \"quotes\"\n\nthanks"
    note = conn.add_comment(ref, note_body, public=False)
    reply = conn.add_comment(ref, "We shipped a fix.", public=True)

    parts = {p.id: p for p in sim.world.conversation(ref.id).parts}
    assert parts[note].part_type == "note" and parts[reply].part_type == "comment"
    assert parts[note].body == ("<p>Jira ENG-7 wrote:</p><p>use &lt;b&gt; &amp; &quot;quotes&quot;</p>"
                                "<p></p><p>thanks</p>")
    assert parts[note].author["id"] == sim.first_admin_id()
    item = conn.fetch(ref)
    assert item is not None
    mine = [(c.id, c.body, c.public) for c in item.comments if c.by_integration]
    assert mine == [(note, note_body, False), (reply, "We shipped a fix.", True)]


def test_add_comment_returns_the_newest_of_identical_bodies(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    first = conn.add_comment(ref, "Jira ENG-7 is Done.", public=False)
    second = conn.add_comment(ref, "Jira ENG-7 is Done.", public=False)
    assert first != second and second == sim.world.conversation(ref.id).parts[-1].id


def test_ticket_comments(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = ticket_ref(sim)
    note = conn.add_comment(ref, "internal", public=False)
    reply = conn.add_comment(ref, "for the customer", public=True)
    item = conn.fetch(ref)
    assert item is not None
    assert [(c.id, c.public, c.by_integration) for c in item.comments] == [(note, False, True), (reply, True, True)]
    assert conn.find_comment(ref, "for the customer", item.comments[0].created_at) == reply


def test_find_comment_after_add(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    since = datetime.now(timezone.utc)
    sim.admin_note(ref.id, other_admin(sim), "<p>Same words</p>")    # not ours
    posted = conn.add_comment(ref, "Same words", public=False)
    assert conn.find_comment(ref, "Same words", since) == posted
    assert conn.find_comment(ref, "Same words ", since) == posted       # same after the round trip
    assert conn.find_comment(ref, "Other words", since) is None
    assert conn.find_comment(ref, "Same words", since + timedelta(seconds=60)) is None
    assert conn.find_comment(ItemRef("intercom:conversation", "404404"), "Same words", since) is None


# ---------------------------------------------------------------------------
# poll
# ---------------------------------------------------------------------------

def drain(conn: IntercomConnector, cursor: str) -> tuple[set[ItemRef], str, int]:
    found: set[ItemRef] = set()
    calls = 0
    while True:
        page = conn.poll(cursor)
        calls += 1
        found |= set(page.items)
        cursor = page.cursor
        if not page.more:
            return found, cursor, calls


def test_poll_pages_conversations_and_tickets_then_only_new_changes(sim: IntercomSim) -> None:
    conn = make_connector(sim, page_size=2, poll_overlap=0)
    start = conn.poll(None)
    assert start.items == () and not start.more
    sim.clock.advance(5)
    convs = {conv_ref(sim, f"problem {i}") for i in range(5)}
    tickets = {ticket_ref(sim, f"ticket {i}") for i in range(3)}

    found, cursor, calls = drain(conn, start.cursor)
    assert found == convs | tickets
    assert calls == 3                       # five conversations at two a page
    assert sim.count("searchConversations") == 3 and sim.count("searchTickets") == 2

    sim.clock.advance(10)
    changed_conv, changed_ticket = sorted(convs)[0], sorted(tickets)[0]
    sim.customer_reply(changed_conv.id, "still broken")
    sim.set_ticket_state(changed_ticket.id, "resolved")
    found, cursor, _ = drain(conn, cursor)
    assert {changed_conv, changed_ticket} <= found      # ">" includes equal: older items may repeat

    sim.clock.advance(10)
    found, cursor, _ = drain(conn, cursor)
    assert found == {changed_conv, changed_ticket}
    assert json.loads(cursor)["t"] == sim.world.conversation(changed_conv.id).updated_at


def test_poll_overlap_goes_back_in_time(sim: IntercomSim) -> None:
    conn = make_connector(sim, poll_overlap=30)
    cursor = conn.poll(None).cursor
    ref = conv_ref(sim)
    sim.world.conversation(ref.id).updated_at -= 20    # e.g. indexed late, with an older timestamp
    found, _, _ = drain(conn, cursor)
    assert ref in found


# ---------------------------------------------------------------------------
# rate limits, faults, headers
# ---------------------------------------------------------------------------

def test_429_is_rate_limited_with_retry_after_from_reset(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    sim.knobs.rate_limit, sim.knobs.rate_window = 1, 30.0
    assert conn.find_comment(ref, "x", datetime.now(timezone.utc)) is None
    with pytest.raises(RateLimited) as err:
        conn.find_comment(ref, "x", datetime.now(timezone.utc))
    assert 25.0 < err.value.retry_after <= 31.0 and err.value.vendor == "intercom"
    assert sim.count("retrieveConversation") == 2     # a long wait is the worker's, not retried here


def test_short_429_is_waited_out_and_retried(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    sim.inject(Fault("429", operation="retrieveConversation", count=1, retry_after=1))
    assert conn.fetch(ref) is not None
    assert [r.status for r in sim.records() if r.operation == "retrieveConversation"] == [429, 200]


def test_5xx_is_retried_and_a_reply_is_not_doubled(sim: IntercomSim, conn: IntercomConnector) -> None:
    ref = conv_ref(sim)
    sim.inject(Fault("status", operation="retrieveConversation", status=503, count=1))
    item = conn.fetch(ref)
    assert item is not None and item.ref == ref
    assert [r.status for r in sim.records() if r.operation == "retrieveConversation"] == [503, 200]
    sim.inject(Fault("status", operation="replyConversation", status=502, count=1))
    part = conn.add_comment(ref, "after a bad gateway", public=False)
    assert [p.id for p in sim.world.conversation(ref.id).parts] == [part]


def test_reply_written_but_answer_lost_is_not_posted_again(sim: IntercomSim) -> None:
    # The simulator stalls, then still writes: the client has timed out by then.
    conn = make_connector(sim, timeout=0.3, policy=RetryPolicy(base_delay=0.6, max_delay=2.0, total_budget=5.0))
    ref = conv_ref(sim)
    sim.inject(Fault("timeout", operation="replyConversation", stall=0.4, count=1))
    part = conn.add_comment(ref, "exactly once", public=False)
    assert [p.id for p in sim.world.conversation(ref.id).parts] == [part]


def test_intercom_version_sent_on_every_request(sim: IntercomSim, client: Intercom) -> None:
    add_attributes(sim, jira_status="string")
    conn = make_connector(sim, page_size=1)
    ref, ticket = conv_ref(sim), ticket_ref(sim)
    sim.clear_records()
    before = len(sim.versions_seen)
    conn.fetch(ref)
    conn.fetch(ticket)
    conn.update_fields(ref, {"attr:jira_status": "x", "tags+": ("a",), "state": "closed"})
    conn.update_fields(ticket, {"ticket_state": "resolved"})
    conn.add_comment(ref, "hi", public=False)
    conn.find_comment(ref, "hi", datetime.now(timezone.utc) - timedelta(minutes=1))
    drain(conn, json.dumps({"t": 0}))
    seen = sim.versions_seen[before:]
    assert len(seen) == len([r for r in sim.records() if not r.operation.startswith("_sim")]) > 10
    assert {v.version for v in seen} == {VERSION}


# ---------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------

def test_html_to_text_reads_intercom_markup() -> None:
    assert html_to_text("<p>Hi <b>there</b></p><p><br></p><ul><li>one</li><li>two</li></ul>") == "Hi there\n\none\ntwo"
    assert html_to_text("<p>a&nbsp;&amp;&lt;b&gt;</p>\n<p>  spaced   out </p>") == "a &<b>\nspaced out"
    assert html_to_text(None) == "" and html_to_text("plain") == "plain"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n"), max_size=60))
def test_text_survives_the_html_round_trip_as_a_fixed_point(text: str) -> None:
    once = html_to_text(text_to_html(text))
    assert html_to_text(text_to_html(once)) == once


def test_canonical_and_coerce_are_inverse_for_typed_attributes() -> None:
    assert [canonical(v) for v in (None, "", 3, 2.0, 2.5, True, ["b", "a"])] == [
        None, None, "3", "2", "2.5", "true", ("a", "b")]
    assert coerce("3", "integer") == 3 and coerce("true", "boolean") is True and coerce("2.5", "float") == 2.5
    assert coerce(("1.2", "1.3"), "string") == "1.2, 1.3" and coerce(None, "integer") is None
    assert coerce("2024-01-02T00:00:00Z", "date") == 1704153600
    with pytest.raises(ValueError):
        coerce("many", "integer")
