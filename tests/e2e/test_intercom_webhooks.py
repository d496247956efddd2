"""Intercom webhooks and polling (issue 4, point 5): ``X-Hub-Signature: sha1=``
verified, ``ping`` answered and not stored, deliveries deduplicated by
notification id, dropped deliveries healed by polling, and a 429 honouring
``X-RateLimit-Reset`` still writes exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import structlog

from syncd.testing import Observer, Teammate, wait_for
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sim.core import Fault
from syncd.sandbox import World


def post(world: World, body: bytes, secret: str | None = None) -> httpx.Response:
    key = (secret or world.intercom.client_secret).encode()
    signature = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
    return httpx.post(f"http://127.0.0.1:{world.http_port}/webhooks/intercom", content=body,
                      headers={"X-Hub-Signature": signature, "Content-Type": "application/json"}, timeout=5)


def notification(topic: str, item: dict, nid: str) -> bytes:
    return json.dumps({"type": "notification_event", "app_id": "simapp01", "id": nid, "topic": topic,
                       "data": {"type": "notification_event_data", "item": item}}).encode()


def poll_intercom(app: App) -> None:
    next(p for p in app.pollers if p.source.name == "intercom").poll_once()


def test_signature_ping_and_dedupe_by_notification_id(world: World, daemon: App) -> None:
    sub = next(iter(world.intercom.subscriptions))
    world.intercom.ping(sub)
    assert wait_for(lambda: [r for r in world.intercom.webhooks.results
                             if b'"ping"' in r.body and r.status == 200])
    ping = notification("ping", {"type": "ping", "message": "Hi there!"}, "notif_ping")
    assert post(world, ping).json() == {"status": "ignored"}

    conv = world.intercom.create_conversation(world.intercom.first_contact_id(), "Hello")
    body = notification("conversation.user.replied", {"type": "conversation", "id": conv}, "notif_dup")
    assert post(world, body, secret="not-the-client-secret").status_code == 401
    assert post(world, body).json() == {"status": "stored"}
    assert post(world, body).json() == {"status": "duplicate"}
    # the same event under a new notification id is a new delivery
    again = notification("conversation.user.replied", {"type": "conversation", "id": conv}, "notif_new")
    assert post(world, again).json() == {"status": "stored"}


def test_dropped_deliveries_are_healed_by_polling(world: World, daemon: App, look: Observer) -> None:
    ic = world.intercom
    # A fresh daemon's first poll starts its cursor at "now" (no backfill): a conversation
    # made before it is not the poll's (the fresh-clone CI run lost this race once).
    assert wait_for(lambda: daemon.store.get_cursor("intercom") is not None)
    ic.knobs.webhooks.drop = 1.0   # Intercom stopped delivering (as after throttling)
    ref = ItemRef("intercom:conversation", ic.create_conversation(ic.first_contact_id(), "Reports are empty"))
    Teammate(world).tag(ref.id, "jira_escalate")
    time.sleep(0.3)
    assert look.conversation(ref.id).fields.get("attr:jira_issue") is None   # nothing arrived
    poll_intercom(daemon)
    key = wait_for(lambda: look.intercom_key(ref))
    assert isinstance(key, str)
    ic.customer_reply(ref.id, "Still empty today.")
    poll_intercom(daemon)
    assert wait_for(lambda: look.issue_has(key, "Still empty today."))


def test_a_429_from_intercom_is_waited_out_and_the_note_written_once(
        world: World, daemon: App, look: Observer) -> None:
    ic = world.intercom
    ic.inject(Fault("429", operation="replyConversation", count=1, retry_after=2.0))
    ref = ItemRef("intercom:conversation", ic.create_conversation(ic.first_contact_id(), "Avatars are blurry"))
    started = time.monotonic()
    Teammate(world).tag(ref.id, "jira_escalate")
    key = wait_for(lambda: look.intercom_key(ref))
    assert isinstance(key, str)
    assert wait_for(lambda: look.intercom_has(ref, f"Escalated to Jira: {key}", public=False))
    assert time.monotonic() - started >= 1.0   # X-RateLimit-Reset was honoured
    limited = [r for r in ic.records() if r.operation == "replyConversation"]
    assert [r.status for r in limited][:2] == [429, 200]
    assert len(look.intercom_parts(ref, "Escalated to Jira")) == 1
    assert world.jira.count("createIssue") == 1


def test_syncds_own_notes_are_not_queued_again_but_a_teammates_reply_syncs(
        world: World, daemon: App, look: Observer) -> None:
    """The echo filter: the webhook of a note syncd wrote as its own admin is
    stored (dedupe) but queues nothing; a teammate's change is queued and syncs."""
    ic, teammate = world.intercom, Teammate(world)
    ref = ItemRef("intercom:conversation", ic.create_conversation(ic.first_contact_id(), "Search is slow"))

    def delivered(topic: str) -> list[str]:
        """Notification ids of ``topic`` for this conversation that the daemon acknowledged."""
        docs = [json.loads(r.body) for r in ic.webhooks.results if r.status == 200]
        return [d["id"] for d in docs if d["topic"] == topic and d["data"]["item"]["id"] == ref.id]

    def logged(event: str) -> set[str]:
        return {e["delivery_id"] for e in logs if e["event"] == event and e.get("items") == [str(ref)]}

    with structlog.testing.capture_logs() as logs:
        teammate.tag(ref.id, "jira_escalate")
        key = wait_for(lambda: look.intercom_key(ref))
        assert isinstance(key, str)
        world.jira.engineer_comment(key, "The index is being rebuilt.")
        # the escalation note and the engineer's note, both written as syncd's admin
        notes = wait_for(lambda: len(delivered("conversation.admin.noted")) == 2 and delivered("conversation.admin.noted"))
        assert notes and set(notes) <= logged("webhook_own_change")
        assert not set(notes) & logged("webhook_stored")      # stored without queueing the conversation
        ic.admin_reply(ref.id, teammate.admin_id, "We are on it, thanks for waiting.")
        assert wait_for(lambda: look.issue_has(key, "We are on it, thanks for waiting."))
        reply = delivered("conversation.admin.replied")
        assert len(reply) == 1 and reply[0] in logged("webhook_stored")
        assert reply[0] not in logged("webhook_own_change")
