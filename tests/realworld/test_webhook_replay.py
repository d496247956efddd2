"""Every recorded webhook body, re-signed and posted to the real receiver.

Each corpus file has its expected outcome written here: the item it marks dirty
and the actor syncd derives from it (checked by making that actor "syncd
itself": the delivery is then stored as an echo and queues nothing), or the
exact refusal, or "ignored" for a body that is not a syncd topic (acknowledged
with 200 so the vendor neither retries nor pauses the webhook).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from realworld_corpus import ABSENT_REASON, body_of, corpus_present, entries, signed_headers

pytestmark = pytest.mark.skipif(not corpus_present() and not entries(), reason=ABSENT_REASON)

CONV = "intercom:conversation:137324500000000"
CONV_ZULIP = "intercom:conversation:21322009097"


@dataclass(frozen=True)
class Marks:
    item: str
    actor: str | None        # None: the payload names no actor syncd can trust


@dataclass(frozen=True)
class Ignores:
    reason: str


@dataclass(frozen=True)
class Refuses:
    reason: str


EXPECTED: dict[str, Marks | Ignores | Refuses] = {
    # Zendesk: an event-subscription webhook, not syncd's trigger
    "zw-user-deleted-event": Ignores("unhandled_event"),
    # Jira Cloud
    "jw-cloud-issue-created": Marks("jira:10509", "5cedcb4355a88a0fc86388ba"),
    "jw-cloud-issue-updated-custom": Marks("jira:10368", "5cedcb4355a88a0fc86388ba"),
    "jw-issue-updated-resolved": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-issue-updated-reopened": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-issue-updated-fixversion": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-issue-updated-labels": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-issue-updated-priority": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-issue-updated-assigned-empty-changelog": Marks("jira:10001", "123456"),
    "jw-issue-deleted": Marks("jira:10303", "5c5f880629be9642ba529340"),
    # issue 11 finding 4: no top-level user, the actor is the comment's author / updateAuthor
    "jw-cloud-comment-created": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-cloud-comment-updated": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-cloud-comment-deleted": Marks("jira:10357", None),   # names no deleter
    # issue 11 finding 6: Jira Server comment events carry no issue; its id is in comment.self
    "jw-server-comment-created": Marks("jira:10013", "levbrouk"),
    "jw-j2m-comment-created": Marks("jira:26313", None),     # sanitised: the author has no name left
    "jw-server-issue-updated-commented": Marks("jira:10013", "levbrouk"),
    "jw-server-old-no-event-type": Marks("jira:10040", "5c5f880629be9642ba529340"),
    "jw-j2m-issue-status-changed": Marks("jira:11442", "5bcede20b3e37a158c364fef"),
    "jw-version-released": Marks("jira:version:10000", None),
    # sentry trimmed the delivery to changelog + issue key: not a Jira delivery any more
    "jw-sentry-status-trimmed": Refuses("missing_webhook_event"),
    # Intercom conversations (2019/2020 item shape)
    "iw-conv-admin-replied": Marks(CONV, "admin:3330619"),
    "iw-conv-admin-noted": Marks(CONV, "admin:3330619"),
    "iw-conv-admin-closed": Marks(CONV, "admin:3330619"),
    "iw-conv-admin-opened": Marks(CONV, "admin:3330619"),
    "iw-conv-admin-assigned": Marks(CONV, "admin:3330619"),
    "iw-conv-admin-snoozed": Marks(CONV, "admin:3330619"),
    "iw-conv-admin-unsnoozed": Marks(CONV, "admin:3330619"),
    "iw-conv-admin-single-created": Marks(CONV, None),    # no part: only the message
    "iw-conv-part-tag-created": Marks(CONV, None),        # 2020 tags carry no applied_by
    "iw-conv-part-redacted": Ignores("unhandled_topic"),
    "iw-conv-user-replied": Marks(CONV_ZULIP, None),      # a customer's topic never names an actor
    "iw-conv-admin-replied-zulip": Marks(CONV_ZULIP, "admin:1957471"),
    "iw-contact-created": Ignores("unhandled_topic"),
    "iw-user-created": Ignores("unhandled_topic"),
    # Intercom tickets (2026): issue 11 findings 1 and 5
    "iw-ticket-created": Marks("intercom:ticket:215472629311235", None),
    "iw-ticket-state-updated": Marks("intercom:ticket:215472629311235", "admin:9608799"),  # newest part's author
    "iw-ticket-note-created": Marks("intercom:ticket:215472629353977", "admin:9608799"),
    "iw-ticket-admin-replied": Marks("intercom:ticket:215472629311235", "admin:9608799"),
    "iw-ticket-contact-replied": Marks("intercom:ticket:215472629548109", None),
}

WEBHOOKS = entries(channel="webhook")


def test_every_recorded_webhook_has_an_expected_outcome():
    assert sorted(e["id"] for e in WEBHOOKS) == sorted(EXPECTED)


def post(receiver, entry: dict, extra: dict[str, str] | None = None) -> httpx.Response:
    body = body_of(entry)
    return httpx.post(f"{receiver.url}/webhooks/{entry['vendor']}", content=body,
                      headers=signed_headers(entry["vendor"], body, extra), timeout=30)


def _delivery_headers(entry: dict) -> dict[str, str]:
    """The delivery id header the vendor sent, where the recording kept it."""
    kept = entry["source"].get("delivery_headers") or {}
    return {k.lower(): v for k, v in kept.items() if k.lower() == "x-zendesk-webhook-invocation-id"}


@pytest.mark.parametrize("entry", WEBHOOKS, ids=[e["id"] for e in WEBHOOKS])
def test_recorded_webhook_is_understood(receiver, entry):
    expected = EXPECTED[entry["id"]]
    answer = post(receiver, entry, _delivery_headers(entry))
    if isinstance(expected, Refuses):
        assert (answer.status_code, answer.json()) == (400, {"error": expected.reason})
        assert receiver.stored_deliveries() == [] and receiver.dirty() == set()
        return
    assert answer.status_code == 200, answer.text
    if isinstance(expected, Ignores):
        assert answer.json() == {"status": "ignored"}
        assert receiver.stored_deliveries() == [] and receiver.dirty() == set()
        return
    assert answer.json() == {"status": "stored"}
    assert receiver.dirty() == {expected.item}
    assert [s for s, _ in receiver.stored_deliveries()] == [entry["vendor"]]


@pytest.mark.parametrize("entry", [e for e in WEBHOOKS if isinstance(EXPECTED.get(e["id"]), Marks)],
                         ids=[e["id"] for e in WEBHOOKS if isinstance(EXPECTED.get(e["id"]), Marks)])
def test_recorded_webhook_actor_is_derived(receiver, entry):
    """Made "syncd itself", the derived actor turns the delivery into an echo
    (stored, nothing dirty); any other account leaves it work to do."""
    expected = EXPECTED[entry["id"]]
    assert isinstance(expected, Marks)
    receiver.own_actors[entry["vendor"]] = expected.actor or "someone-else-entirely"
    answer = post(receiver, entry, {"x-atlassian-webhook-identifier": "replay-1"})
    assert answer.status_code == 200, answer.text
    if expected.actor is None:
        assert answer.json() == {"status": "stored"} and receiver.dirty() == {expected.item}
    else:
        assert answer.json() == {"status": "own_change"} and receiver.dirty() == set()
    assert len(receiver.stored_deliveries()) == 1
