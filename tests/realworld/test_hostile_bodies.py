"""Issue 12 findings 1 and 2: signed hostile bodies and identifier tricks get a
400 with a logged ``webhook_refused`` reason, never a 500; nothing is stored.

Signed with the test's own code (realworld_corpus), posted to the real receiver
in front of a real store; the vendor shapes are taken from the recordings.
"""

from __future__ import annotations

import copy
import json

import httpx
import pytest
import structlog
from realworld_corpus import ABSENT_REASON, corpus_present, doc_of, entries, signed_headers

pytestmark = pytest.mark.skipif(not corpus_present(), reason=ABSENT_REASON)


def recorded(name: str) -> dict:
    return doc_of(next(e for e in entries(channel="webhook") if e["id"] == name))


def post(receiver, vendor: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{receiver.url}/webhooks/{vendor}", content=body,
                      headers=signed_headers(vendor, body), timeout=60)


def refused(receiver, vendor: str, body: bytes) -> str:
    """Post; assert a 400 refusal logged with its reason and nothing stored; return the reason."""
    with structlog.testing.capture_logs() as logs:
        answer = post(receiver, vendor, body)
    assert answer.status_code == 400, answer.text
    reason = answer.json()["error"]
    assert [e["reason"] for e in logs if e["event"] == "webhook_refused"] == [reason]
    assert not [e for e in logs if e.get("log_level") in ("error", "critical")], logs
    assert receiver.stored_deliveries() == [] and receiver.dirty() == set()
    return reason


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


ZENDESK_TRIGGER = {"ticket_id": "35436", "updated_at": "2024-05-01T12:00:00Z", "actor": "1", "event": "ticket_changed"}


@pytest.mark.parametrize("vendor", ["zendesk", "jira", "intercom"])
@pytest.mark.parametrize("depth", [65, 5_000, 50_000])
def test_deep_nesting_is_refused(receiver, vendor, depth):
    assert refused(receiver, vendor, nested(depth)) == "json_too_deep"


def test_a_5000_digit_ticket_id_is_refused(receiver):
    assert refused(receiver, "zendesk", json.dumps({**ZENDESK_TRIGGER, "ticket_id": "9" * 5000}).encode()) \
        == "bad_ticket_id"


def test_a_5000_digit_issue_id_number_is_refused(receiver):
    body = recorded("jw-cloud-issue-created")
    text = json.dumps(body).replace('"id": "10509"', '"id": ' + "7" * 5000, 1)
    assert refused(receiver, "jira", text.encode()) == "number_too_long"


@pytest.mark.parametrize("ident", ["200000000026?", "200000000026#x", "./200000000026", "1/../../admins",
                                   "0200000000026", " 200000000026", "200000000026\n", "-5", "1e3", "",
                                   "9" * 20, "9223372036854775808", "２００"])
def test_intercom_item_id_in_another_spelling_is_refused(receiver, ident):
    body = recorded("iw-conv-admin-noted")
    body["data"]["item"]["id"] = ident
    assert refused(receiver, "intercom", json.dumps(body).encode()) == "bad_item_id"


@pytest.mark.parametrize("ident", ["215472629353977?", "../tickets", 215472629353977.0, True, None])
def test_intercom_ticket_part_ticket_id_in_another_spelling_is_refused(receiver, ident):
    body = recorded("iw-ticket-note-created")
    body["data"]["item"]["ticket"]["id"] = ident
    assert refused(receiver, "intercom", json.dumps(body).encode()) == "bad_item_id"


@pytest.mark.parametrize("ident", ["35436?", "35436#x", "./35436", "1/../../users", "035436", "35436 ", 0, -1,
                                   "9" * 20, 35436.0])
def test_zendesk_ticket_id_in_another_spelling_is_refused(receiver, ident):
    assert refused(receiver, "zendesk", json.dumps({**ZENDESK_TRIGGER, "ticket_id": ident}).encode()) \
        == "bad_ticket_id"


@pytest.mark.parametrize("comment_self", ["https://j/rest/api/2/issue/10013?x/comment/1",
                                          "https://j/rest/api/2/issue/../comment/1",
                                          "https://j/rest/api/2/issue/PRJX-14/comment/1", None])
def test_jira_server_comment_without_a_usable_issue_id_is_refused(receiver, comment_self):
    body = recorded("jw-server-comment-created")
    body["comment"]["self"] = comment_self
    assert refused(receiver, "jira", json.dumps(body).encode()) in ("bad_issue_id", "missing_issue")


def test_the_one_spelling_is_stored(receiver):
    body = recorded("iw-conv-admin-noted")
    answer = post(receiver, "intercom", json.dumps(body).encode())
    assert answer.json() == {"status": "stored"} and receiver.dirty() == {"intercom:conversation:137324500000000"}


def test_numbers_as_ids_take_the_same_spelling(receiver):
    body = copy.deepcopy(recorded("jw-cloud-issue-created"))
    body["issue"]["id"] = 10509   # a JSON number: the same item as "10509"
    assert post(receiver, "jira", json.dumps(body).encode()).json() == {"status": "stored"}
    assert receiver.dirty() == {"jira:10509"}
