"""The Intercom simulator, driven by the real python-intercom 5.x client over HTTP.

Webhooks are received by the ``receiver`` fixture (tests/sim/conftest.py) and
their signatures checked with code written here, independently of the simulator's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from typing import TYPE_CHECKING, Any, Iterator

import httpx
import pytest
from intercom import (
    AdminReplyConversationRequest,
    AdminReplyTicketRequest,
    ContactReplyEmailRequest,
    ContactReplyIntercomUserIdRequest,
    ContactReplyTicketIntercomUserIdRequest,
    ConversationsManageRequestBody_Assignment,
    ConversationsManageRequestBody_Close,
    ConversationsManageRequestBody_Open,
    ConversationsManageRequestBody_Snoozed,
    CreateContactRequestWithEmail,
    CreateDataAttributeRequestOne,
    CreateOrUpdateCompanyRequest,
    CreateTicketTypeRequest,
    Intercom,
    MultipleFilterSearchRequest,
    SingleFilterSearchRequest,
    StartingAfterPaging,
)
from intercom.core.api_error import ApiError

from syncd.sim.core import Fault
from syncd.sim.intercom import IntercomSim
from syncd.sim.intercom_search import QueryError, compile_query, page_by_key
from syncd.sim.intercom_world import WorldError
from syncd.testing import assert_eventually

if TYPE_CHECKING:
    from conftest import Delivery, WebhookReceiver

VERSION = {"Intercom-Version": "2.14"}


# ---------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------

@pytest.fixture
def sim() -> Iterator[IntercomSim]:
    s = IntercomSim().start()
    s.webhooks.backoff = 0.05
    try:
        yield s
    finally:
        s.stop()


def make_client(sim: IntercomSim, **kw: Any) -> Intercom:
    kw.setdefault("headers", VERSION)
    return Intercom(token=sim.token, base_url=sim.base_url, **kw)


@pytest.fixture
def client(sim: IntercomSim) -> Intercom:
    return make_client(sim)


def valid_signature(secret: str, delivery: Delivery) -> bool:
    """Our own check of Intercom's X-Hub-Signature (sha1 HMAC of the raw body)."""
    expected = "sha1=" + hmac.new(secret.encode(), delivery.body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected, delivery.headers.get("x-hub-signature", ""))


def body_of(e: ApiError) -> dict[str, Any]:
    """The SDK parses some error bodies into models and leaves others as dicts."""
    body = e.body
    return body if isinstance(body, dict) else body.dict()


def err_code(e: ApiError) -> str:
    return body_of(e)["errors"][0]["code"]


def new_conversation(client: Intercom, sim: IntercomSim, body: str = "It is broken") -> str:
    msg = client.conversations.create(from_={"type": "user", "id": sim.first_contact_id()}, body=body)
    return msg.conversation_id


def admin_reply(client: Intercom, conv_id: str, admin_id: str, body: str, kind: str = "comment") -> Any:
    return client.conversations.reply(conversation_id=conv_id, request=AdminReplyConversationRequest(
        message_type=kind, type="admin", admin_id=admin_id, body=body))


# ---------------------------------------------------------------------------
# auth, version header, admins
# ---------------------------------------------------------------------------

def test_admins_me_and_lookup(sim: IntercomSim, client: Intercom) -> None:
    me = client.admins.identify()
    admins = client.admins.list().admins
    assert me.type == "admin" and me.app.id_code == sim.app_id
    assert {a.email for a in admins} == {"ada@example.com", "bob@example.com"}
    assert client.admins.find(admins[1].id).name == admins[1].name
    with pytest.raises(ApiError) as err:
        client.admins.find("999999")
    assert err.value.status_code == 404
    assert err_code(err.value) == "not_found"
    assert sim.count("identifyAdmin") == 1 and sim.count("retrieveAdmin") == 2


def test_wrong_token_is_401_error_list(sim: IntercomSim) -> None:
    bad = Intercom(token="nope", base_url=sim.base_url, headers=VERSION)
    with pytest.raises(ApiError) as err:
        bad.admins.list()
    assert err.value.status_code == 401
    assert body_of(err.value)["type"] == "error.list"
    assert err_code(err.value) == "unauthorized"


def test_version_header_recorded_when_absent_and_unknown_version_refused(sim: IntercomSim) -> None:
    with_version = make_client(sim)
    without = Intercom(token=sim.token, base_url=sim.base_url)
    with_version.admins.list()
    assert sim.requests_without_version() == []
    assert without.admins.list().admins            # still answered, as the default version
    assert sim.requests_without_version() == ["listAdmins"]
    future = make_client(sim, headers={"Intercom-Version": "9.9"})
    with pytest.raises(ApiError) as err:
        future.admins.list()
    assert err.value.status_code == 400
    assert err_code(err.value) == "intercom_version_invalid"


def test_every_answer_carries_rate_headers(sim: IntercomSim, client: Intercom) -> None:
    asked_at = sim.clock.now()   # the reset is compared with when the call went out, not later
    first = client.admins.with_raw_response.list()
    second = client.admins.with_raw_response.list()
    h1, h2 = first.headers, second.headers
    assert int(h1["x-ratelimit-limit"]) > 0
    assert int(h2["x-ratelimit-remaining"]) == int(h1["x-ratelimit-remaining"]) - 1
    assert int(h1["x-ratelimit-reset"]) >= int(asked_at)


# ---------------------------------------------------------------------------
# contacts, companies, tags, data attributes
# ---------------------------------------------------------------------------

def test_contacts_and_companies(sim: IntercomSim, client: Intercom) -> None:
    user = client.contacts.create(request=CreateContactRequestWithEmail(email="dan@example.com", role="user",
                                                                        name="Dan"))
    lead = client.contacts.create(request=CreateContactRequestWithEmail(email="lee@example.com", role="lead"))
    assert (user.role, lead.role) == ("user", "lead")
    assert client.contacts.find(user.id).email == "dan@example.com"
    with pytest.raises(ApiError) as err:
        client.contacts.create(request=CreateContactRequestWithEmail(email="dan@example.com", role="user"))
    assert err.value.status_code == 409

    co = client.companies.create_or_update(request=CreateOrUpdateCompanyRequest(company_id="acme-1", name="Acme"))
    again = client.companies.create_or_update(request=CreateOrUpdateCompanyRequest(company_id="acme-1",
                                                                                   name="Acme Inc"))
    assert again.id == co.id and client.companies.find(co.id).name == "Acme Inc"
    client.companies.attach_contact(contact_id=user.id, company_id=co.id)
    attached = client.companies.list_attached_contacts(co.id)
    assert [c.id for c in attached.data] == [user.id]
    assert [c.id for c in client.contacts.list_attached_companies(user.id)] == [co.id]
    assert client.contacts.find(user.id).companies.data[0].id == co.id


def test_tags_on_conversations_move_updated_at(sim: IntercomSim, client: Intercom) -> None:
    admin = sim.first_admin_id()
    conv_id = new_conversation(client, sim)
    before = client.conversations.find(conv_id).updated_at
    tag = client.tags.create(request={"name": "jira-linked"})
    assert client.tags.create(request={"name": "JIRA-LINKED"}).id == tag.id     # case insensitive
    assert [t.name for t in client.tags.list().data] == ["jira-linked"]
    sim.clock.advance(5)
    client.tags.tag_conversation(conversation_id=conv_id, tag_id=tag.id, admin_id=admin)
    conv = client.conversations.find(conv_id)
    assert [t.id for t in conv.tags.tags] == [tag.id]
    assert conv.updated_at >= before + 5
    client.tags.untag_conversation(conversation_id=conv_id, tag_id=tag.id, admin_id=admin)
    assert client.conversations.find(conv_id).tags.tags == []
    with pytest.raises(ApiError) as err:
        client.tags.untag_conversation(conversation_id=conv_id, tag_id=tag.id, admin_id=admin)
    assert err.value.status_code == 404


def test_conversation_data_attributes_and_custom_attributes(sim: IntercomSim, client: Intercom) -> None:
    # 2.14 cannot create conversation attributes: an admin defines them in settings...
    with pytest.raises(ApiError) as refused:
        client.data_attributes.create(request=CreateDataAttributeRequestOne(
            data_type="string", name="jira_key", model="conversation"))
    assert refused.value.status_code == 400 and err_code(refused.value) == "parameter_invalid"
    sim.define_conversation_attribute("jira_key")
    # ... or the Unstable API version does.
    unstable = make_client(sim, headers={"Intercom-Version": "Unstable"})
    attr = unstable.data_attributes.create(request=CreateDataAttributeRequestOne(
        data_type="string", name="jira_status", model="conversation"))
    assert attr.full_name == "custom_attributes.jira_status" and attr.model == "conversation"
    listed = client.data_attributes.list(model="conversation").data
    assert {a.name for a in listed} == {"jira_key", "jira_status"}
    contact_attr = client.data_attributes.create(request=CreateDataAttributeRequestOne(
        data_type="integer", name="seats", model="contact"))
    assert contact_attr.model == "contact" and contact_attr.custom
    with pytest.raises(ApiError) as dup:
        client.data_attributes.create(request=CreateDataAttributeRequestOne(
            data_type="integer", name="seats", model="contact"))
    assert dup.value.status_code == 400

    conv_id = new_conversation(client, sim)
    sim.clock.advance(3)
    conv = client.conversations.update(conv_id, custom_attributes={"jira_key": "ENG-7", "jira_status": "Open"})
    assert conv.custom_attributes == {"jira_key": "ENG-7", "jira_status": "Open"}
    assert conv.updated_at >= conv.created_at + 3
    for bad in ({"no_such": "x"}, {"jira_key": 5}):
        with pytest.raises(ApiError) as err:
            client.conversations.update(conv_id, custom_attributes=bad)
        assert err.value.status_code == 400 and err_code(err.value) == "parameter_invalid"
    assert sim.count("updateConversation") == 3


# ---------------------------------------------------------------------------
# conversations
# ---------------------------------------------------------------------------

def test_conversation_replies_notes_and_state_changes(sim: IntercomSim, client: Intercom) -> None:
    admin, contact = sim.first_admin_id(), sim.first_contact_id()
    conv_id = new_conversation(client, sim, "Export fails")
    admin_reply(client, conv_id, admin, "Looking into it")
    admin_reply(client, conv_id, admin, "<b>ENG-7</b> filed", kind="note")
    client.conversations.reply(conversation_id=conv_id, request=ContactReplyIntercomUserIdRequest(
        message_type="comment", type="user", intercom_user_id=contact, body="Thanks",
        attachment_urls=["https://files.example.com/log.txt"]))
    client.conversations.reply(conversation_id=conv_id, request=ContactReplyEmailRequest(
        message_type="comment", type="user", email="carol@example.com", body="Any news?"))
    closed = client.conversations.manage(conv_id, request=ConversationsManageRequestBody_Close(
        type="admin", admin_id=admin, body="Fixed"))
    assert (closed.state, closed.open) == ("closed", False)
    assert client.conversations.manage(conv_id, request=ConversationsManageRequestBody_Open(
        admin_id=admin)).state == "open"
    until = int(sim.clock.now()) + 3600
    snoozed = client.conversations.manage(conv_id, request=ConversationsManageRequestBody_Snoozed(
        admin_id=admin, snoozed_until=until))
    assert (snoozed.state, snoozed.snoozed_until) == ("snoozed", until)
    other = client.admins.list().admins[1].id
    assigned = client.conversations.manage(conv_id, request=ConversationsManageRequestBody_Assignment(
        type="admin", admin_id=admin, assignee_id=other))
    assert assigned.admin_assignee_id == int(other)

    conv = client.conversations.find(conv_id)
    parts = conv.conversation_parts.conversation_parts
    assert [p.part_type for p in parts] == ["comment", "note", "comment", "comment", "close", "open",
                                            "snoozed", "assignment"]
    assert [p.author.type for p in parts[:4]] == ["admin", "admin", "user", "user"]
    assert parts[1].body == "<b>ENG-7</b> filed" and parts[2].attachments[0].name == "log.txt"
    assert parts[7].assigned_to.id == other
    assert conv.source.body == "<p>Export fails</p>" and conv.contacts.contacts[0].id == contact
    assert all(isinstance(p.created_at, int) for p in parts)


def test_customer_reply_reopens_closed_conversation(sim: IntercomSim, client: Intercom) -> None:
    conv_id = sim.create_conversation(sim.first_contact_id(), "hello")
    sim.close(conv_id)
    assert client.conversations.find(conv_id).state == "closed"
    sim.customer_reply(conv_id, "still broken")
    assert client.conversations.find(conv_id).state == "open"


def test_bad_replies_are_intercom_errors(sim: IntercomSim, client: Intercom) -> None:
    conv_id = new_conversation(client, sim)
    with pytest.raises(ApiError) as no_admin:
        admin_reply(client, conv_id, "424242", "hi")
    assert no_admin.value.status_code == 404
    with pytest.raises(ApiError) as no_conv:
        client.conversations.find("1")
    assert no_conv.value.status_code == 404 and err_code(no_conv.value) == "not_found"


def test_get_conversation_shows_only_the_500_newest_parts(sim: IntercomSim, client: Intercom) -> None:
    admin = sim.first_admin_id()
    conv_id = sim.create_conversation(sim.first_contact_id(), "long one")
    for n in range(505):
        sim.admin_note(conv_id, admin, f"note {n}")
    parts = client.conversations.find(conv_id).conversation_parts
    assert len(parts.conversation_parts) == 500
    assert parts.conversation_parts[0].body == "note 5"
    assert parts.conversation_parts[-1].body == "note 504"


def test_list_conversations_pages_with_cursor(sim: IntercomSim, client: Intercom) -> None:
    ids = {new_conversation(client, sim, f"c{n}") for n in range(5)}
    pager = client.conversations.list(per_page=2)
    assert pager.response.pages.per_page == 2 and pager.response.total_count == 5
    seen = [c.id for c in pager]
    assert sorted(seen) == sorted(ids)
    assert sim.count("listConversations") == 3


# ---------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------

def _search_all(client: Intercom, query: Any, per_page: int, tickets: bool = False) -> list[str]:
    """Page by hand: the SDK's search pager re-sends the first page (see below)."""
    found: list[str] = []
    cursor = None
    search = client.tickets.search if tickets else client.conversations.search
    while True:
        page = search(query=query, pagination=StartingAfterPaging(per_page=per_page, starting_after=cursor))
        found += [i.id for i in page.items]
        nxt = page.response.pages.next if page.response.pages else None
        if nxt is None or not nxt.starting_after:
            return found
        cursor = nxt.starting_after


def test_search_conversations_by_updated_at(sim: IntercomSim, client: Intercom) -> None:
    sim.clock.set(1_800_000_000)
    old = [new_conversation(client, sim) for _ in range(2)]
    sim.clock.advance(100)
    t = int(sim.clock.now())
    fresh = [new_conversation(client, sim) for _ in range(3)]

    def q(op: str, value: int) -> SingleFilterSearchRequest:
        return SingleFilterSearchRequest(field="updated_at", operator=op, value=value)

    assert sorted(_search_all(client, q(">", t), per_page=2)) == sorted(fresh)     # ">" includes equal
    assert sorted(_search_all(client, q("<", t - 1), per_page=10)) == sorted(old)
    assert sorted(_search_all(client, q("=", t), per_page=10)) == sorted(fresh)
    both = MultipleFilterSearchRequest(operator="OR", value=[
        MultipleFilterSearchRequest(operator="AND", value=[q(">", t - 100), q("<", t - 100)]),
        MultipleFilterSearchRequest(operator="AND", value=[
            SingleFilterSearchRequest(field="id", operator="=", value=fresh[0])])])
    assert sorted(_search_all(client, both, per_page=10)) == sorted(old + [fresh[0]])
    page = client.conversations.search(query=q(">", 0), pagination=StartingAfterPaging(per_page=2))
    assert page.response.total_count == 5 and page.response.pages.total_pages == 3
    assert sim.writes() == 5   # the creates; searches are read-only POSTs


def test_search_pager_of_the_sdk_does_not_advance(sim: IntercomSim, client: Intercom) -> None:
    # python-intercom 5.0.1's search pager resends the original pagination, so
    # iterating it never ends: connectors must follow pages.next.starting_after.
    for _ in range(3):
        new_conversation(client, sim)
    query = SingleFilterSearchRequest(field="updated_at", operator=">", value=0)
    first = client.conversations.search(query=query, pagination=StartingAfterPaging(per_page=2))
    assert first.has_next
    assert [c.id for c in first.next_page().items] == [c.id for c in first.items]


def test_search_finds_items_changed_during_paging_again_not_never(sim: IntercomSim, client: Intercom) -> None:
    ids = [new_conversation(client, sim) for _ in range(4)]
    query = SingleFilterSearchRequest(field="updated_at", operator=">", value=0)
    first = client.conversations.search(query=query, pagination=StartingAfterPaging(per_page=2))
    sim.clock.advance(10)
    sim.admin_note(first.items[0].id, sim.first_admin_id(), "touch")   # moves behind the cursor
    rest = _search_all(client, query, per_page=2)
    cursor = first.response.pages.next.starting_after
    after = client.conversations.search(query=query, pagination=StartingAfterPaging(
        per_page=10, starting_after=cursor))
    assert set(c.id for c in first.items) | set(c.id for c in after.items) == set(ids)
    assert first.items[0].id in [c.id for c in after.items] and len(rest) == 4


def test_search_refuses_what_intercom_refuses(sim: IntercomSim, client: Intercom) -> None:
    bad_queries = [
        SingleFilterSearchRequest(field="updated_at", operator="!=", value=1),
        MultipleFilterSearchRequest(operator="AND", value=[MultipleFilterSearchRequest(
            operator="OR", value=[MultipleFilterSearchRequest(operator="AND", value=[
                SingleFilterSearchRequest(field="id", operator="=", value="1")])])]),
    ]
    for query in bad_queries:
        with pytest.raises(ApiError) as err:
            client.conversations.search(query=query)
        assert err.value.status_code == 400


def test_search_language_unit() -> None:
    rec = {"updated_at": 10, "tag_ids": ["5", "6"], "state": "open", "title": "Export Fails"}
    dates = frozenset({"updated_at"})
    assert compile_query({"field": "tag_ids", "operator": "=", "value": "6"}, dates)(rec)
    assert not compile_query({"field": "tag_ids", "operator": "NIN", "value": ["6"]}, dates)(rec)
    assert compile_query({"field": "title", "operator": "~", "value": "export"}, dates)(rec)
    assert compile_query({"field": "state", "operator": "IN", "value": ["open", "snoozed"]}, dates)(rec)
    with pytest.raises(QueryError):
        compile_query({"operator": "AND", "value": [{}] * 16}, dates)
    page = page_by_key(list(range(7)), lambda i: (i,), 3, None)
    assert page.items == [0, 1, 2] and page.total_pages == 3
    last = page_by_key(list(range(7)), lambda i: (i,), 3, page_by_key(list(range(7)), lambda i: (i,), 3,
                                                                      page.next_cursor).next_cursor)
    assert last.items == [6] and last.next_cursor is None and last.page == 3


# ---------------------------------------------------------------------------
# tickets
# ---------------------------------------------------------------------------

def _attribute_names(ticket_type) -> set[str]:
    # The real list is {"type": "list", "data": [...]} (../shared/realworld/intercom/webhook/
    # iw-ticket-created.json); python-intercom's model keeps "data" as an extra field.
    listing = ticket_type.ticket_type_attributes.dict()
    assert listing.get("ticket_type_attributes") is None, "the real service sends the list under data"
    return {a["name"] for a in listing["data"]}


def test_ticket_types_states_and_attributes(sim: IntercomSim, client: Intercom) -> None:
    types = client.ticket_types.list().data
    assert [t.name for t in types] == ["Bug"]
    assert _attribute_names(types[0]) == {
        "_default_title_", "_default_description_"}
    created = client.ticket_types.create(request=CreateTicketTypeRequest(name="Tracker", category="Tracker"))
    client.ticket_types.attributes.create(ticket_type_id=created.id, name="jira_key", description="Jira issue",
                                          data_type="string")
    fetched = client.ticket_types.get(created.id)
    assert "jira_key" in _attribute_names(fetched)
    states = client.ticket_states.list_ticket_states().data
    assert {s.category for s in states} == {"submitted", "in_progress", "waiting_on_customer", "resolved"}


def test_ticket_lifecycle(sim: IntercomSim, client: Intercom) -> None:
    admin, contact = sim.first_admin_id(), sim.first_contact_id()
    tt = client.ticket_types.list().data[0]
    states = {s.category: s.id for s in client.ticket_states.list_ticket_states().data}
    # python-intercom 5.0.1's tickets.create has no ticket_attributes argument.
    ticket = client.tickets.create(ticket_type_id=tt.id, contacts=[{"id": contact}], request_options={
        "additional_body_parameters": {"ticket_attributes": {"_default_title_": "Export fails"}}})
    assert ticket.ticket_state.category == "submitted" and ticket.open
    assert ticket.ticket_attributes == {"_default_title_": "Export fails"}
    sim.clock.advance(2)
    updated = client.tickets.update(ticket.id, ticket_attributes={"_default_description_": "CSV export"},
                                    ticket_state_id=states["in_progress"], admin_id=int(admin),
                                    assignee_id=admin, is_shared=False)
    assert updated.ticket_state.category == "in_progress" and updated.admin_assignee_id == admin
    assert updated.is_shared is False and updated.updated_at >= ticket.updated_at + 2
    note = client.tickets.reply(ticket.id, request=AdminReplyTicketRequest(
        message_type="note", type="admin", admin_id=admin, body="ENG-9"))
    reply = client.tickets.reply(ticket.id, request=ContactReplyTicketIntercomUserIdRequest(
        message_type="comment", type="user", intercom_user_id=contact, body="ok"))
    assert (note.part_type, note.author.type, reply.author.type) == ("note", "admin", "user")
    closed = client.tickets.update(ticket.id, open=False, admin_id=int(admin))
    assert closed.open is False and closed.ticket_state.category == "resolved"
    got = client.tickets.get(ticket.id)
    kinds = [p.part_type for p in got.ticket_parts.ticket_parts]
    assert kinds == ["ticket_state_updated_by_admin", "assignment", "note", "comment",
                     "ticket_state_updated_by_admin"]
    assert got.ticket_parts.ticket_parts[-1].previous_ticket_state == "in_progress"
    with pytest.raises(ApiError) as err:
        client.tickets.update(ticket.id, ticket_attributes={"nope": 1})
    assert err.value.status_code == 400


def test_search_tickets(sim: IntercomSim, client: Intercom) -> None:
    contact = sim.first_contact_id()
    a = sim.create_ticket(contact, "one")
    b = sim.create_ticket(contact, "two")
    sim.set_ticket_state(b, "waiting_on_customer")
    by_state = SingleFilterSearchRequest(field="state", operator="=", value="waiting_on_customer")
    assert _search_all(client, by_state, per_page=5, tickets=True) == [b]
    everything = SingleFilterSearchRequest(field="updated_at", operator=">", value=0)
    assert sorted(_search_all(client, everything, per_page=1, tickets=True)) == sorted([a, b])
    assert sim.count("searchTickets") == 3


# ---------------------------------------------------------------------------
# webhooks
# ---------------------------------------------------------------------------

ALL_TOPICS = ["conversation.user.created", "conversation.user.replied", "conversation.admin.replied",
              "conversation.admin.noted", "conversation.admin.closed", "conversation.admin.opened",
              "conversation.admin.snoozed", "ticket.created", "ticket.state.updated", "ticket.note.created",
              "ticket.admin.assigned", "ticket.contact.replied", "ping"]


def test_webhooks_signed_enveloped_and_fired_by_api_and_actors(sim: IntercomSim, client: Intercom,
                                                               receiver: WebhookReceiver) -> None:
    admin = sim.first_admin_id()
    sub = sim.subscribe(receiver.url, ALL_TOPICS)
    conv_id = new_conversation(client, sim)                       # API
    sim.customer_reply(conv_id, "more detail")                    # actors
    sim.admin_reply(conv_id, admin, "on it")
    admin_reply(client, conv_id, admin, "ENG-1", kind="note")     # API
    sim.close(conv_id)
    sim.reopen(conv_id)
    client.conversations.manage(conv_id, request=ConversationsManageRequestBody_Snoozed(
        admin_id=admin, snoozed_until=int(sim.clock.now()) + 60))
    ticket = sim.create_ticket(sim.first_contact_id(), "bug")
    sim.set_ticket_state(ticket, "in_progress")
    sim.ticket_note(ticket, admin, "ENG-2")
    client.tickets.update(ticket, assignee_id=admin, admin_id=int(admin))
    sim.ticket_customer_reply(ticket, "thanks")
    urllib.request.urlopen(urllib.request.Request(
        f"{sim.base_url}/_sim/intercom/subscriptions/{sub.id}/ping", method="POST", data=b""))
    assert_eventually(lambda: len(receiver.deliveries) == 13)
    assert [d.json()["topic"] for d in receiver.deliveries] == [
        "conversation.user.created", "conversation.user.replied", "conversation.admin.replied",
        "conversation.admin.noted", "conversation.admin.closed", "conversation.admin.opened",
        "conversation.admin.snoozed", "ticket.created", "ticket.state.updated", "ticket.note.created",
        "ticket.admin.assigned", "ticket.contact.replied", "ping"]
    assert all(valid_signature(sim.client_secret, d) for d in receiver.deliveries)
    assert not valid_signature("wrong-secret", receiver.deliveries[0])
    env = receiver.deliveries[1].json()
    assert env["type"] == "notification_event" and env["app_id"] == sim.app_id
    assert env["id"].startswith("notif_") and env["delivery_attempts"] == 1
    assert isinstance(env["created_at"], int) and isinstance(env["first_sent_at"], int)
    item = env["data"]["item"]
    assert env["data"]["type"] == "notification_event_data" and item["id"] == conv_id
    assert [p["body"] for p in item["conversation_parts"]["conversation_parts"]] == ["more detail"]
    assert receiver.deliveries[8].json()["data"]["item"]["ticket_state"]["category"] == "in_progress"
    assert len({d.json()["id"] for d in receiver.deliveries}) == 13


def test_subscription_via_control_api_filters_topics(sim: IntercomSim, receiver: WebhookReceiver) -> None:
    req = urllib.request.Request(f"{sim.base_url}/_sim/intercom/subscriptions", method="POST",
                                 data=json.dumps({"url": receiver.url, "topics": ["conversation.admin.noted"]}).encode(),
                                 headers={"Content-Type": "application/json"})
    assert json.load(urllib.request.urlopen(req))["topics"] == ["conversation.admin.noted"]
    conv_id = sim.create_conversation(sim.first_contact_id(), "hi")
    sim.admin_reply(conv_id, sim.first_admin_id(), "reply")
    sim.admin_note(conv_id, sim.first_admin_id(), "note")
    assert_eventually(lambda: len(receiver.deliveries) == 1)
    assert sim.webhooks.flush(2)
    assert [d.json()["topic"] for d in receiver.deliveries] == ["conversation.admin.noted"]


def test_webhook_retried_after_receiver_error(sim: IntercomSim, receiver: WebhookReceiver) -> None:
    receiver.fail_first = 2
    sim.subscribe(receiver.url, ["conversation.user.created"])
    sim.create_conversation(sim.first_contact_id(), "hi")
    assert_eventually(lambda: len(sim.webhooks.results) == 3)
    assert [d.status for d in receiver.deliveries] == [500, 500, 200]
    assert [r.status for r in sim.webhooks.results] == [500, 500, 200]
    assert valid_signature(sim.client_secret, receiver.deliveries[-1])


def test_webhook_drop_and_duplicate_knobs(sim: IntercomSim, receiver: WebhookReceiver) -> None:
    sim.subscribe(receiver.url, ["conversation.user.created"])
    contact = sim.first_contact_id()
    sim.knobs.webhooks.drop = 1.0
    sim.create_conversation(contact, "lost")
    assert sim.webhooks.flush(2) and receiver.deliveries == []
    sim.knobs.webhooks.drop, sim.knobs.webhooks.duplicate = 0.0, 1.0
    conv_id = sim.create_conversation(contact, "twice")
    assert_eventually(lambda: len(receiver.deliveries) == 2)
    first, second = (d.json() for d in receiver.deliveries)
    assert first["id"] == second["id"] and first["data"]["item"]["id"] == conv_id


def test_webhook_delay_and_reorder_knobs(sim: IntercomSim, receiver: WebhookReceiver) -> None:
    sim.subscribe(receiver.url, ["conversation.admin.noted"])
    conv_id = sim.create_conversation(sim.first_contact_id(), "hi")
    admin = sim.first_admin_id()
    sim.knobs.webhooks.delay = 0.4
    started = time.monotonic()
    sim.admin_note(conv_id, admin, "late")
    assert_eventually(lambda: len(receiver.deliveries) == 1)
    assert receiver.deliveries[0].at - started >= 0.4
    sim.knobs.webhooks.delay, sim.knobs.webhooks.reorder = 0.0, True
    sent = [f"n{i}" for i in range(8)]
    for body in sent:
        sim.admin_note(conv_id, admin, body)
    assert_eventually(lambda: len(receiver.deliveries) == 9)
    got = [d.json()["data"]["item"]["conversation_parts"]["conversation_parts"][0]["body"]
           for d in receiver.deliveries[1:]]
    assert sorted(got) == sorted(sent) and got != sent


# ---------------------------------------------------------------------------
# knobs seen through the real client
# ---------------------------------------------------------------------------

def test_rate_limit_429_headers_readable_by_client(sim: IntercomSim, client: Intercom) -> None:
    sim.knobs.rate_limit, sim.knobs.rate_window = 2, 30.0
    client.admins.list()
    client.admins.list()
    with pytest.raises(ApiError) as err:
        client.admins.list()
    e = err.value
    assert e.status_code == 429
    assert e.headers["x-ratelimit-limit"] == "2" and e.headers["x-ratelimit-remaining"] == "0"
    assert int(e.headers["x-ratelimit-reset"]) > int(sim.clock.now())
    assert err_code(e) == "rate_limit_exceeded"


def test_injected_429_and_5xx(sim: IntercomSim, client: Intercom) -> None:
    sim.inject(Fault("429", operation="listAdmins", count=1, retry_after=5))
    with pytest.raises(ApiError) as limited:
        client.admins.list()
    assert limited.value.status_code == 429 and "x-ratelimit-reset" in limited.value.headers
    sim.inject(Fault("status", operation="retrieveConversation", status=503, count=1))
    conv_id = new_conversation(client, sim)
    with pytest.raises(ApiError) as unavailable:
        client.conversations.find(conv_id)
    assert unavailable.value.status_code == 503
    assert err_code(unavailable.value) == "service_unavailable"
    assert client.conversations.find(conv_id).id == conv_id     # the fault was used up


def test_latency_timeout_and_reset(sim: IntercomSim) -> None:
    fast = make_client(sim, timeout=0.3)
    sim.knobs.latency = (0.15, 0.15)
    started = time.monotonic()
    fast.admins.list()
    assert time.monotonic() - started >= 0.15
    sim.knobs.latency = (0.0, 0.0)
    sim.inject(Fault("timeout", operation="listAdmins", stall=1.0, count=1))
    with pytest.raises(httpx.ReadTimeout):
        fast.admins.list()
    sim.inject(Fault("reset", operation="identifyAdmin", count=1))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        fast.admins.identify()
    assert fast.admins.identify().type == "admin"


def test_clock_moves_vendor_timestamps(sim: IntercomSim, client: Intercom) -> None:
    sim.clock.set(1_900_000_000)
    conv_id = new_conversation(client, sim)
    sim.clock.advance(3600)
    admin_reply(client, conv_id, sim.first_admin_id(), "an hour later")
    conv = client.conversations.find(conv_id)
    assert 1_900_000_000 <= conv.created_at < 1_900_000_010
    assert conv.updated_at - conv.created_at >= 3600
    assert conv.conversation_parts.conversation_parts[0].created_at == conv.updated_at


def test_describe_and_control_actors(sim: IntercomSim) -> None:
    info = sim.describe()
    assert info["base_url"] == sim.base_url and info["webhook_client_secret"] == sim.client_secret
    client = Intercom(token=info["token"], base_url=info["base_url"],
                      headers={"Intercom-Version": info["api_version"]})
    req = urllib.request.Request(f"{sim.base_url}/_sim/intercom/act/create_conversation", method="POST",
                                 data=json.dumps({"contact_id": sim.first_contact_id(), "body": "demo"}).encode())
    conv_id = json.load(urllib.request.urlopen(req))["result"]
    assert client.conversations.find(conv_id).source.body == "<p>demo</p>"
    with pytest.raises(WorldError):
        sim.admin_note(conv_id, "no-such-admin", "x")


def test_vendor_knobs_via_control_api(sim: IntercomSim, client: Intercom, receiver: WebhookReceiver) -> None:
    req = urllib.request.Request(f"{sim.base_url}/_sim/knobs", method="POST", data=json.dumps(
        {"max_parts": 3, "client_secret": "rotated-secret", "default_version": "2.11"}).encode())
    urllib.request.urlopen(req)
    assert sim.default_version == "2.11" and sim.describe()["api_version"] == "2.11"
    sim.subscribe(receiver.url, ["conversation.admin.noted"])
    conv_id = sim.create_conversation(sim.first_contact_id(), "hi")
    for n in range(5):
        sim.admin_note(conv_id, sim.first_admin_id(), f"n{n}")
    parts = client.conversations.find(conv_id).conversation_parts.conversation_parts
    assert [p.body for p in parts] == ["n2", "n3", "n4"]
    assert_eventually(lambda: len(receiver.deliveries) == 5)
    assert all(valid_signature("rotated-secret", d) for d in receiver.deliveries)


def test_ticket_webhooks_carry_the_whole_ticket_and_part_topics_the_part(sim: IntercomSim,
                                                                         receiver: WebhookReceiver) -> None:
    """As recorded in 2026 (../shared/realworld/intercom/webhook/iw-ticket-*.json): part topics
    deliver {type: ticket_ticket_part, ticket: <whole ticket>, ticket_part: <new part>}; the
    others the whole ticket with all its parts."""
    admin = sim.first_admin_id()
    sim.subscribe(receiver.url, ["ticket.created", "ticket.state.updated", "ticket.note.created", "ticket.admin.replied"])
    ticket = sim.create_ticket(sim.first_contact_id(), "bug")
    sim.set_ticket_state(ticket, "in_progress")
    note = sim.ticket_note(ticket, admin, "ENG-2")
    reply = sim.ticket_admin_reply_and_assign(ticket, admin, "we are on it")
    assert_eventually(lambda: len(receiver.deliveries) == 4)
    created, state, noted, replied = [d.json() for d in receiver.deliveries]
    assert [e["topic"] for e in (created, state, noted, replied)] == [
        "ticket.created", "ticket.state.updated", "ticket.note.created", "ticket.admin.replied"]
    assert created["data"]["item"]["type"] == "ticket" and state["data"]["item"]["type"] == "ticket"
    assert [p["part_type"] for p in state["data"]["item"]["ticket_parts"]["ticket_parts"]] == [
        "ticket_state_updated_by_admin"]
    item = noted["data"]["item"]
    assert set(item) == {"type", "ticket", "ticket_part"} and item["type"] == "ticket_ticket_part"
    assert item["ticket"]["id"] == ticket and item["ticket_part"]["id"] == note
    assert len(item["ticket"]["ticket_parts"]["ticket_parts"]) == 2            # all parts so far
    part = replied["data"]["item"]["ticket_part"]
    assert (part["id"], part["part_type"], part["body"]) == (reply, "assignment", "<p>we are on it</p>")


def test_reply_and_close_is_one_close_part_with_the_body(sim: IntercomSim, client: Intercom,
                                                         receiver: WebhookReceiver) -> None:
    """A reply written with an action is that action's part carrying the body, under
    conversation.admin.replied (../shared/realworld/intercom/webhook/iw-conv-admin-replied.json)."""
    admin = sim.first_admin_id()
    conv_id = new_conversation(client, sim)
    sim.subscribe(receiver.url, ["conversation.admin.replied"])
    part = sim.admin_reply_and(conv_id, admin, "fixed, closing", "close")
    assert_eventually(lambda: len(receiver.deliveries) == 1)
    (sent,) = receiver.deliveries[0].json()["data"]["item"]["conversation_parts"]["conversation_parts"]
    assert (sent["id"], sent["part_type"], sent["body"]) == (part, "close", "<p>fixed, closing</p>")
    assert client.conversations.find(conv_id).state == "closed"


def test_list_echoes_per_page_as_sent(sim: IntercomSim, client: Intercom) -> None:
    # ../shared/realworld/intercom/api/ia-list-conversations.json: "per_page": "50"
    new_conversation(client, sim)
    answer = httpx.get(f"{sim.base_url}/conversations", params={"per_page": "50"},
                       headers={"Authorization": f"Bearer {sim.token}", "Intercom-Version": "2.14"})
    assert answer.json()["pages"]["per_page"] == "50"
