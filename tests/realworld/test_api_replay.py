"""Every recorded API answer, served back on loopback to syncd's connectors
through the real client libraries (zenpy, jira, python-intercom): what syncd
makes of it.

Each corpus file is one test: the answer is served for the request syncd
makes (with whatever other recorded answers that request path needs, e.g.
``users/me`` to build the Zendesk connector), and the test asserts the domain
value syncd derives. Answers to requests syncd never makes are listed in
``NOT_REQUESTED`` with the reason, and the test checks that no connector names
that operation.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from realworld_corpus import ABSENT_REASON, corpus_present, doc_of, entries

from syncd.connectors import intercom as intercom_connector
from syncd.connectors.intercom import IntercomAccess, IntercomConnector
from syncd.connectors.jira import JiraAccess, JiraConnector
from syncd.connectors.zendesk import ZendeskAccess, ZendeskConnector
from syncd.domain import Attachment, IssueSpec, ItemRef

pytestmark = pytest.mark.skipif(not corpus_present(), reason=ABSENT_REASON)

API = entries(channel="api")
BY_ID = {e["id"]: e for e in API}


def doc(name: str) -> Any:
    return doc_of(BY_ID[name])


# -- connectors pointed at the replay server ------------------------------------

def zendesk(replay) -> ZendeskConnector:
    replay.add("GET", r"/api/v2/users/me\.json", doc("zd-users-me"))
    return ZendeskConnector(ZendeskAccess(replay.url, "agent@example.com", "token", timeout=10))


def jira(replay, deployment: str | None = None) -> JiraConnector:
    """``deployment``: added to the serverInfo doc example, which lacks the
    ``deploymentType`` every real answer has ("Cloud" / "Server" / "DataCenter")."""
    info = doc("ja-serverinfo-doc")
    replay.add("GET", r"/rest/api/2/serverInfo", {**info, "deploymentType": deployment} if deployment else info)
    replay.add("GET", r"/rest/api/2/myself", doc("ja-myself-doc"))
    return JiraConnector(JiraAccess(replay.url, "bot@example.com", "token", timeout=10))


def intercom(replay) -> IntercomConnector:
    replay.add("GET", r"/me", doc("ia-me-doc"))
    replay.add("GET", r"/contacts/[^/]+/companies", doc("ia-contact-companies-doc"))
    replay.add("GET", r"/contacts/[^/]+", {"type": "contact", "id": "c1", "name": "Cy", "email": "cy@example.com"})
    return IntercomConnector(IntercomAccess(replay.url, "token", admin_id="991267459", timeout=10))


def zendesk_ticket(replay) -> Any:
    """Ticket 4017 as recorded, its comment page, requester and organization."""
    conn = zendesk(replay)
    replay.add("GET", r"/api/v2/tickets/4017\.json", doc("zd-ticket-show"))
    replay.add("GET", r"/api/v2/tickets/4017/comments\.json", doc("zd-ticket-comments"))
    replay.add("GET", r"/api/v2/users/6130907993114\.json", doc("zd-user-show"))
    replay.add("GET", r"/api/v2/users/\d+\.json", {"user": {"id": 26155588908179, "name": "Recorded Agent"}})
    replay.add("GET", r"/api/v2/organizations/6130869157658\.json", doc("zd-org-show"))
    item = conn.fetch(ItemRef("zendesk", "4017"))
    assert item is not None
    return item


# -- Zendesk -------------------------------------------------------------------

def zd_users_me(replay) -> str:
    conn = zendesk(replay)
    assert conn.user_id == 6130907993114
    return "connector's own user id 6130907993114 (its comments are by_integration)"


def zd_ticket_show(replay) -> str:
    item = zendesk_ticket(replay)
    assert (item.ref, item.title, item.status) == (ItemRef("zendesk", "4017"), "test", "new")
    assert item.fields["status"] == "new" and item.fields["priority"] is None and item.fields["tags"] is None
    assert item.updated_at == datetime(2023, 9, 18, 23, 34, 36, tzinfo=timezone.utc)
    return "DeskItem zendesk:4017 status new, priority none, no tags"


def zd_ticket_comments(replay) -> str:
    item = zendesk_ticket(replay)
    (c,) = item.comments
    assert (c.id, c.public, c.by_integration) == ("33144692244499", True, False)
    assert [a.name for a in c.attachments] == ["README.md"] and c.attachments[0].size > 0
    return "1 public comment 33144692244499 with attachment README.md"


def zd_user_show(replay) -> str:
    item = zendesk_ticket(replay)
    assert item.requester == "09cace"
    return "requester name 09cace"


def zd_org_show(replay) -> str:
    item = zendesk_ticket(replay)
    assert item.organization == "Z3n Tests (09cace/1694303517)"
    return "organization name read"


def _zd_poll(replay, name: str) -> Any:
    conn = zendesk(replay)
    replay.add("GET", r"/api/v2/incremental/tickets/cursor\.json", doc(name))
    return conn.poll('{"start_time": 0}')


def zd_incremental_more(replay) -> str:
    page = _zd_poll(replay, "zd-incremental-more")
    assert page.items == (ItemRef("zendesk", "28"),) and page.more
    assert "MTY5NTA1MjY2My4wfHwyOHw=" in page.cursor
    return "poll: zendesk:28, more pages, cursor = after_cursor"


def zd_incremental_end(replay) -> str:
    page = _zd_poll(replay, "zd-incremental-end")
    assert len(page.items) == 87 and not page.more and page.items[0] == ItemRef("zendesk", "28")
    return "poll: 87 tickets, end of stream"


def zd_incremental_amp(replay) -> str:
    page = _zd_poll(replay, "zd-incremental-amp")
    assert page.items == (ItemRef("zendesk", "5"),) and not page.more
    return "poll: zendesk:5, end of stream"


def zd_ticket_update(replay) -> str:
    conn = zendesk(replay)
    replay.add("PUT", r"/api/v2/tickets/4016\.json", doc("zd-ticket-update"))
    ref = ItemRef("zendesk", "4016")
    assert conn.update_fields(ref, {"subject": "new subject"}) == []
    (sent,) = replay.requests("PUT", r"/api/v2/tickets/4016\.json")
    assert sent.json()["ticket"]["subject"] == "new subject"
    assert conn.written_stamp(ref) == datetime(2023, 9, 18, 23, 26, 1, tzinfo=timezone.utc)
    return "field write accepted; written_stamp = answer's updated_at"


def zd_ticket_create_comment_upload(replay) -> str:
    # The recorded answer (a ticket created with a comment carrying an upload) has the
    # {ticket, audit} shape of the ticket PUT that add_comment makes.
    conn = zendesk(replay)
    replay.add("POST", r"/api/v2/uploads\.json", doc("zd-upload"), status=201)
    replay.add("PUT", r"/api/v2/tickets/33\.json", doc("zd-ticket-create-comment-upload"))
    made = conn.add_comment(ItemRef("zendesk", "33"), "see file", True,
                            [Attachment("README.md", "http://x/README.md", 4, data=b"text")])
    assert made == "33144692244499"
    (sent,) = replay.requests("PUT", r"/api/v2/tickets/33\.json")
    assert sent.json()["ticket"]["comment"]["uploads"] == ["fBNh2fQeSkmNxY0CIL8EuKDKF"]
    return "comment id from the audit's Comment event 33144692244499"


def zd_upload(replay) -> str:
    zd_ticket_create_comment_upload(replay)
    return "upload token fBNh2fQeSkmNxY0CIL8EuKDKF attached to the comment"


def _zd_install(replay, triggers: str) -> Any:
    from syncd.install import install_zendesk
    conn = zendesk(replay)
    replay.add("GET", r"/api/v2/webhooks", doc("zd-webhook-list"))
    replay.add("POST", r"/api/v2/webhooks", doc("zd-webhook-create"), status=201)
    replay.add("GET", r"/api/v2/webhooks/[^/]+/signing_secret", doc("zd-webhook-secret"))
    replay.add("GET", r"/api/v2/triggers\.json", doc(triggers))
    replay.add("POST", r"/api/v2/triggers\.json", doc("zd-trigger-create"), status=201)
    return install_zendesk(conn, "https://syncd.example.com/webhooks/zendesk")


def zd_webhook_install(replay) -> str:
    made = _zd_install(replay, "zd-trigger-list")
    assert (made.webhook_id, made.trigger_id) == ("01HANAHBMTDTB8Q98K38YZ5ZQS", "6164111062810")
    assert made.signing_secret == "wMZJU7Dlw7pdGPBAs7fz3lVSjF5Hef8mqD7avv5n7zs="
    (posted,) = replay.requests("POST", r"/api/v2/triggers\.json")
    assert posted.json()["trigger"]["actions"][0]["value"][0] == "01HANAHBMTDTB8Q98K38YZ5ZQS"
    return "syncd webhooks install: webhook 01HANAHBMTDTB8Q98K38YZ5ZQS created, secret read, trigger created"


def zd_triggers_amp(replay) -> str:
    # A real trigger list pages (has_more, page[size]=1 here). Page two (the one after the
    # recorded cursor) holds an existing "syncd" trigger: install must find it, not add one.
    first = doc("zd-triggers-amp")
    existing = {**doc("zd-trigger-create")["trigger"], "title": "syncd", "id": 77}
    replay.add("GET", r"/api/v2/triggers\.json", {"triggers": [existing], "meta": {"has_more": False}},
               query_has="page[after]")
    replay.add("PUT", r"/api/v2/triggers/77\.json", {"trigger": existing})
    made = _zd_install(replay, "zd-triggers-amp")
    assert made.trigger_id == "77" and not replay.requests("POST", r"/api/v2/triggers\.json")
    (second,) = [s for s in replay.requests("GET", r"/api/v2/triggers\.json") if "page[after]" in s.query]
    assert second.query["page[after]"] == [first["meta"]["after_cursor"]]
    return "trigger list paged by meta.after_cursor: the existing syncd trigger on page 2 is reused"


# -- Jira ------------------------------------------------------------------------

def ja_serverinfo_doc(replay) -> str:
    conn = jira(replay)
    assert replay.requests("GET", r"/rest/api/2/serverInfo")
    assert conn.account_id
    return "client built (doc example lacks deploymentType: accepted)"


def ja_myself_doc(replay) -> str:
    conn = jira(replay)
    assert conn.account_id == "5b10a2844c20165700ede21g" and str(conn.time_zone) == "Australia/Sydney"
    return "own accountId 5b10a2844c20165700ede21g, JQL time zone Australia/Sydney"


def _ja_issue(replay, name: str, issue_id: str) -> Any:
    conn = jira(replay)
    replay.add("GET", rf"/rest/api/2/issue/{issue_id}", doc(name))
    replay.add("GET", rf"/rest/api/2/issue/{issue_id}/comment", {"comments": [], "total": 0, "startAt": 0})
    found = conn.fetch(issue_id)
    assert found is not None
    return found


def ja_issue_sentry(replay) -> str:
    found = _ja_issue(replay, "ja-issue-sentry", "10305")
    assert (found.ref, found.key, found.summary) == (ItemRef("jira", "10305"), "SEN-5", "example summary")
    assert found.fields["status"] == "To Do" and found.fields["priority"] == "Medium"
    assert found.comments == () and found.released_versions == ()
    return "TrackerIssue jira:10305 SEN-5 status To Do, priority Medium, no comments"


def ja_issue_j2m_server(replay) -> str:
    found = _ja_issue(replay, "ja-issue-j2m-server", "11442")
    assert (found.key, found.fields["status"], found.fields["priority"]) == ("BBCOM-1398", "К выполнению", "Highest")
    assert len(found.comments) == 3
    return "TrackerIssue jira:11442 BBCOM-1398 (Server), status К выполнению, 3 embedded comments"


def ja_comments_doc(replay) -> str:
    # An issue whose embedded comment page is incomplete makes syncd list the comments.
    conn = jira(replay)
    issue = doc("ja-issue-sentry")
    issue = {**issue, "fields": {**issue["fields"], "comment": {"comments": [], "total": 1}}}
    replay.add("GET", r"/rest/api/2/issue/10305/comment", doc("ja-comments-doc"))
    replay.add("GET", r"/rest/api/2/issue/10305", issue)
    found = conn.fetch("10305")
    assert found is not None
    (c,) = found.comments
    assert c.id == "10000" and c.by_integration      # written by the account of ja-myself-doc
    assert isinstance(c.body, str) and c.body         # a v3 (ADF) body is read as its text
    return "1 comment 10000, by syncd's own account, ADF body read as text"


def _ja_transition(replay, name: str, issue_id: str, status: str) -> tuple[list, list]:
    conn = jira(replay)
    replay.add("GET", rf"/rest/api/2/issue/{issue_id}/transitions", doc(name))
    replay.add("POST", rf"/rest/api/2/issue/{issue_id}/transitions", {}, status=204)
    failures = conn.update_fields(issue_id, {"status": status})
    return list(failures), [s.json() for s in replay.requests("POST", rf"/rest/api/2/issue/{issue_id}/transitions")]


def ja_transitions_sentry(replay) -> str:
    failures, posted = _ja_transition(replay, "ja-transitions-sentry", "10305", "Done")
    assert failures == [] and posted == [{"transition": {"id": "31"}}]
    failures, _ = _ja_transition(replay, "ja-transitions-sentry", "10305", "Nowhere")
    assert [f.locator for f in failures] == ["status"]      # the transition without "to" does not break it
    return "status Done → transition 31; a transition without 'to' is skipped"


def ja_transitions_j2m_server(replay) -> str:
    failures, posted = _ja_transition(replay, "ja-transitions-j2m-server", "11442", "closed")
    assert failures == [] and posted == [{"transition": {"id": "711"}}]
    return "status closed → transition 711 (case-insensitive)"


def ja_create_issue_amp(replay) -> str:
    conn = jira(replay)
    replay.add("POST", r"/rest/api/2/issue", doc("ja-create-issue-amp"), status=201)
    created = {**doc("ja-issue-sentry"), "id": "10004", "key": "AM-4"}
    replay.add("GET", r"/rest/api/2/issue/10004", created)
    issue = conn.create_issue(IssueSpec("AM", "Bug", "s", "d"), "zendesk:1")
    assert (issue.ref, issue.key) == (ItemRef("jira", "10004"), "AM-4")
    return "created jira:10004 AM-4, read back by its id"


def ja_search_jql_doc(replay) -> str:
    conn = jira(replay, "Cloud")
    replay.add("GET", r"/rest/api/2/field", [])   # the client library's field-name cache
    replay.add("GET", r"/rest/api/2/search/jql", doc("ja-search-jql-doc"))
    replay.add("POST", r"/rest/api/2/search/jql", doc("ja-search-jql-doc"))
    found = conn.issues_with_fix_version("10000")
    assert found == ["10002"] and not replay.requests("GET", r"/rest/api/2/search")
    return "Cloud: search/jql → issue 10002, isLast (no nextPageToken)"


def ja_search_v3_amp(replay) -> str:
    # Jira Server/Data Center has no /search/jql: the old /search, paged by startAt/total.
    conn = jira(replay, "Server")
    replay.add("GET", r"/rest/api/2/field", [])
    recorded = doc("ja-search-v3-amp")
    replay.add("GET", r"/rest/api/2/search", recorded)
    found = conn.issues_with_fix_version("10000")
    assert found == [str(i["id"]) for i in recorded["issues"]] and len(found) == 2
    (sent,) = replay.requests("GET", r"/rest/api/2/search")   # total 2 in one page: no second request
    assert sent.query["startAt"] == ["0"]
    return f"Server: /search (startAt/total) → issues {', '.join(found)}, one page"


# -- Intercom --------------------------------------------------------------------

def ia_me_doc(replay) -> str:
    conn = intercom(replay)
    url = conn.item_url(ItemRef("intercom:conversation", "503"))
    assert url.endswith("/a/inbox/this_is_an_id1_that_should_be_at_least_40/inbox/conversation/503")
    return "app id_code for inbox links"


def _ia_conversation(replay) -> Any:
    conn = intercom(replay)
    replay.add("GET", r"/conversations/503", doc("ia-conversation-doc"))
    item = conn.fetch(ItemRef("intercom:conversation", "503"))
    assert item is not None
    return item


def ia_conversation_doc(replay) -> str:
    item = _ia_conversation(replay)
    assert item.fields["state"] == "closed" and item.status == "closed"
    # the source message, and the one comment part; custom actions and attribute updates are not comments
    assert [c.id for c in item.comments] == ["403918334", "1"]
    return "conversation 503 closed; comments: source + part 1 (action parts ignored)"


def ia_contact_companies_doc(replay) -> str:
    item = _ia_conversation(replay)
    assert item.organization == "company12"
    return "organization company12"


def ia_ticket_doc(replay) -> str:
    conn = intercom(replay)
    replay.add("GET", r"/tickets/631", doc("ia-ticket-doc"))
    item = conn.fetch(ItemRef("intercom:ticket", "631"))
    assert item is not None and item.fields["ticket_state"] == "submitted" and item.title == "attribute_value"
    assert item.comments == ()          # a ticket_state_updated_by_admin part is no comment
    assert intercom_connector.ticket_attr_types(doc("ia-ticket-doc")) == {"_default_title_": "string", "_default_description_": "string"}
    return "ticket 631 submitted; attribute types from ticket_type_attributes.data"


def ia_search_conversations(replay) -> str:
    conn = intercom(replay)
    replay.add("POST", r"/conversations/search", doc("ia-search-conversations"))
    replay.add("POST", r"/tickets/search", {"type": "ticket.list", "tickets": [], "total_count": 0,
                                            "pages": {"type": "pages", "page": 1, "per_page": 150, "total_pages": 0}})
    page = conn.poll('{"t": 1700000000}')
    assert page.items == (ItemRef("intercom:conversation", "5"),) and page.more
    assert "WzE3MjY3NTIxNDUwMDAsNSwyXQ==" in page.cursor
    return "poll: conversation 5, next page by starting_after"


def ia_not_found(replay) -> str:
    conn = intercom(replay)
    replay.add("GET", r"/conversations/404404", doc("ia-not-found"), status=404)
    assert conn.fetch(ItemRef("intercom:conversation", "404404")) is None
    return "404 error.list → item gone (None)"


def zd_ticket_fields_amp(replay) -> str:
    # `syncd doctor` checks each mapped custom field against the account's list of fields.
    conn = zendesk(replay)
    replay.add("GET", r"/api/v2/ticket_fields\.json", doc("zd-ticket-fields-amp"))
    types = conn.ticket_field_types()
    assert len(types) == 10 and types["custom:26363655924371"] == "tagger"
    assert types["custom:26363596566419"] == "custom_status"
    (sent,) = replay.requests("GET", r"/api/v2/ticket_fields\.json")   # next_page null: one page
    assert sent.query["page[size]"] == ["100"]
    return "10 ticket fields, types by id (tagger, custom_status, ...), one page"


SCENARIOS: dict[str, Callable[[Any], str]] = {
    "zd-users-me": zd_users_me, "zd-ticket-show": zd_ticket_show, "zd-ticket-comments": zd_ticket_comments,
    "zd-user-show": zd_user_show, "zd-org-show": zd_org_show, "zd-incremental-more": zd_incremental_more,
    "zd-incremental-end": zd_incremental_end, "zd-incremental-amp": zd_incremental_amp,
    "zd-ticket-update": zd_ticket_update, "zd-ticket-create-comment-upload": zd_ticket_create_comment_upload,
    "zd-upload": zd_upload,
    "zd-webhook-list": zd_webhook_install, "zd-webhook-create": zd_webhook_install,
    "zd-webhook-secret": zd_webhook_install, "zd-trigger-list": zd_webhook_install,
    "zd-trigger-create": zd_webhook_install, "zd-triggers-amp": zd_triggers_amp,
    "zd-ticket-fields-amp": zd_ticket_fields_amp,
    "ja-serverinfo-doc": ja_serverinfo_doc, "ja-myself-doc": ja_myself_doc, "ja-issue-sentry": ja_issue_sentry,
    "ja-issue-j2m-server": ja_issue_j2m_server, "ja-comments-doc": ja_comments_doc,
    "ja-transitions-sentry": ja_transitions_sentry, "ja-transitions-j2m-server": ja_transitions_j2m_server,
    "ja-create-issue-amp": ja_create_issue_amp, "ja-search-jql-doc": ja_search_jql_doc,
    "ja-search-v3-amp": ja_search_v3_amp,
    "ia-me-doc": ia_me_doc, "ia-conversation-doc": ia_conversation_doc,
    "ia-contact-companies-doc": ia_contact_companies_doc, "ia-ticket-doc": ia_ticket_doc,
    "ia-search-conversations": ia_search_conversations, "ia-not-found": ia_not_found,
}

# Answers to requests syncd never makes.
NOT_REQUESTED: dict[str, str] = {
    "zd-ticket-audits": "syncd reads comments, not audits",
    "zd-ticket-field-create": "syncd creates no ticket fields",
    "ja-user-sentry": "syncd never looks users up (comment authors carry displayName)",
    "ia-list-conversations": "syncd searches conversations (updated_at filter), never lists them",
    "ia-list-contacts": "syncd reads one contact by id",
}


def test_every_recorded_answer_has_a_scenario_or_a_reason():
    assert not set(SCENARIOS) & set(NOT_REQUESTED)
    assert sorted([*SCENARIOS, *NOT_REQUESTED]) == sorted(e["id"] for e in API)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_recorded_answer_is_understood(replay, name):
    result = SCENARIOS[name](replay)
    assert result


CONNECTORS = Path(__file__).resolve().parents[2] / "syncd" / "connectors"


@pytest.mark.parametrize("name", sorted(NOT_REQUESTED))
def test_answer_no_connector_asks_for(name):
    operation = BY_ID[name]["kind"].split("(")[0]
    sources = "".join(p.read_text() for p in CONNECTORS.glob("*.py"))
    assert f'"{operation}"' not in sources, f"{operation} is called by a connector now: give {name} a scenario"


# -- conversations and tickets as recorded inside webhook deliveries ----------------
# No recording of GET /conversations/{id} or GET /tickets/{id} exists with real
# parts; the items of real deliveries are the same objects. Served as that
# answer, they show which parts syncd takes for comments (issue 11 finding 2:
# a reply written with an assignment/close/open/snooze is that action's part
# carrying a body; bots write bodies on parts that are nobody's message).

WEBHOOK_OBJECTS = {
    # file: (kind, [(part id, public)] expected as comments, in order)
    "iw-conv-admin-replied": ("conversation", [("6073780765", True)]),          # part_type open + body (2020)
    "iw-conv-admin-replied-zulip": ("conversation", [("2824382500", True)]),    # part_type assignment + body (2019)
    "iw-conv-admin-noted": ("conversation", [("6073788584", False)]),
    "iw-conv-admin-closed": ("conversation", []),                               # close without a body
    "iw-conv-admin-assigned": ("conversation", []),
    "iw-conv-user-replied": ("conversation", [("2824391734", True)]),
    "iw-ticket-created": ("ticket", []),                                        # bot parts, one with a body
    "iw-ticket-admin-replied": ("ticket", [("37403461654", True), ("37403474386", True)]),
    "iw-ticket-note-created": ("ticket", [("37403591177", True), ("37404518759", False)]),
    "iw-ticket-contact-replied": ("ticket", [("37404589020", True), ("37404590647", True)]),
}


@pytest.mark.parametrize("name", sorted(WEBHOOK_OBJECTS))
def test_recorded_item_parts_read_as_comments(replay, name):
    kind, expected = WEBHOOK_OBJECTS[name]
    item = doc_of(next(e for e in entries(channel="webhook") if e["id"] == name))["data"]["item"]
    item = item.get("ticket", item)   # ticket part topics carry the whole ticket beside the part
    conn = intercom(replay)
    replay.add("GET", rf"/{kind}s/{item['id']}", item)
    found = conn.fetch(ItemRef(f"intercom:{kind}", item["id"]))
    assert found is not None
    parts = [(c.id, c.public) for c in found.comments if c.id != str((item.get("source") or {}).get("id"))]
    assert parts == expected
    assert all(c.body for c in found.comments)


# -- ids read back from a vendor are checked before they become a URL path (issue 12) ----

def test_a_created_issue_id_that_is_not_an_id_goes_into_no_url(replay):
    from syncd.errors import Refused
    conn = jira(replay)
    replay.add("POST", r"/rest/api/2/issue", {**doc("ja-create-issue-amp"), "id": "../../myself"}, status=201)
    with pytest.raises(Refused, match="neither a Jira issue id nor a key"):
        conn.create_issue(IssueSpec("AM", "Bug", "s", "d"), "zendesk:1")
    assert not [s for s in replay.seen if ".." in s.path or s.path.endswith("/myself") and s.method != "GET"]
    assert [s.path for s in replay.seen if s.method == "GET"] == ["/rest/api/2/serverInfo", "/rest/api/2/myself"]


def test_a_requester_id_that_is_not_an_id_goes_into_no_url(replay):
    conn = zendesk(replay)
    ticket = doc("zd-ticket-show")
    hostile = {**ticket, "ticket": {**ticket["ticket"], "requester_id": "../../users/me", "organization_id": None}}
    replay.add("GET", r"/api/v2/tickets/4017\.json", hostile)
    replay.add("GET", r"/api/v2/tickets/4017/comments\.json", {"comments": [], "meta": {"has_more": False}})
    item = conn.fetch(ItemRef("zendesk", "4017"))
    assert item is not None and item.requester is None
    assert not [s for s in replay.seen if ".." in s.path]


def test_a_contact_id_that_is_not_an_id_goes_into_no_url(replay):
    conn = intercom(replay)
    conv = doc("ia-conversation-doc")
    replay.add("GET", r"/conversations/503", {**conv, "contacts": {"type": "contact.list", "contacts": [
        {"type": "contact", "id": "../admins"}]}})
    item = conn.fetch(ItemRef("intercom:conversation", "503"))
    assert item is not None and item.requester is None
    assert not [s for s in replay.seen if ".." in s.path or s.path == "/admins"]


# -- Jira deliveries standing in for a read (issue 16) -------------------------------

JIRA_DELIVERIES = {e["id"]: e for e in entries(vendor="jira", channel="webhook")}


def _delivered(replay, name: str):  # type: ignore[no-untyped-def]
    """What syncd makes of a recorded Jira delivery: its stamp, and the issue it would
    stand in with (comments known from an older read: none here)."""
    from syncd.webhook_payloads import Relevant, parse_jira
    parsed = parse_jira(json.dumps(doc_of(JIRA_DELIVERIES[name])).encode(), {})
    assert isinstance(parsed, Relevant)
    hint = parsed.hint
    shown = None if hint is None or hint.issue is None else jira(replay).from_delivery(
        hint.issue, (), (hint.comment,) if hint.comment else ())
    return parsed.stamp, shown


@pytest.mark.parametrize("name, status, priority", [
    ("jw-issue-updated-priority", "To Do", "High"),
    ("jw-issue-updated-resolved", "Done", "High"),
    ("jw-cloud-issue-updated-custom", None, None),
])
def test_a_recorded_cloud_issue_delivery_stands_in_with_the_fields_a_read_gives(replay, name, status, priority):
    stamp, shown = _delivered(replay, name)
    fields = doc_of(JIRA_DELIVERIES[name])["issue"]["fields"]
    assert shown is not None and stamp == shown.updated_at.timestamp()
    assert shown.updated_at == datetime.strptime(fields["updated"], "%Y-%m-%dT%H:%M:%S.%f%z")
    if status is not None:
        assert (shown.fields["status"], shown.fields["priority"]) == (status, priority)
    # Cloud deliveries carry no comments: what stands in says its comments are unproven.
    assert shown.comments_unproven


def test_a_recorded_server_delivery_with_its_comment_page_proves_its_comments(replay):
    stamp, shown = _delivered(replay, "jw-server-issue-updated-commented")
    body = doc_of(JIRA_DELIVERIES["jw-server-issue-updated-commented"])
    assert shown is not None and not shown.comments_unproven and len(shown.comments) == 10
    # The delivery's issue `updated` is five minutes older than its comment: the stamp is the comment's.
    assert stamp == datetime.strptime(body["comment"]["updated"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    assert stamp > shown.updated_at.timestamp()


@pytest.mark.parametrize("name", ["jw-cloud-comment-created", "jw-issue-updated-assigned-empty-changelog",
                                  "jw-cloud-comment-deleted", "jw-issue-deleted"])
def test_a_recorded_partial_delivery_does_not_stand_in(replay, name):
    """A Cloud comment event's issue has six fields and no ``updated``; a 2024 assignment
    delivery seven; deletions say nothing of when: the worker reads."""
    stamp, shown = _delivered(replay, name)
    assert shown is None
    if name.endswith("deleted"):
        assert stamp is None
