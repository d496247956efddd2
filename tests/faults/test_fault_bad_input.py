"""Bad input on the daemon's real webhook port: forged, stale and missing
signatures, malformed and 10 MiB bodies, unknown events, items nobody linked,
replayed deliveries. No crash, no good delivery lost, every refusal logged with
a reason, no secret in any log line. (tests/webhooks covers the receiver alone.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone

import httpx

from .conftest import SQLITE_ONLY, comments_with, escalate, get, notes_with, wait_for

pytestmark = SQLITE_ONLY


def _zendesk_headers(secret: str, body: bytes, at: datetime | None = None, invocation: str | None = None) -> dict:
    stamp = (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    headers = {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
               "X-Zendesk-Webhook-Signature-Timestamp": stamp, "Content-Type": "application/json"}
    if invocation:
        headers["X-Zendesk-Webhook-Invocation-Id"] = invocation
    return headers


def _hub(secret: str, body: bytes, algo: str) -> dict:
    mac = hmac.new(secret.encode(), body, getattr(hashlib, algo)).hexdigest()
    return {"X-Hub-Signature": f"{algo}={mac}", "Content-Type": "application/json"}


def test_fault_bad_webhooks_are_refused_with_reasons_and_good_ones_still_sync(make_world, start_daemon, look_at, logs):
    world = make_world()
    daemon = start_daemon(world)
    look = look_at(world)
    ticket, key = escalate(world, look)
    zsecret, jsecret = world.env["SYNCD_ZENDESK_WEBHOOK_SECRET"], world.env["SYNCD_JIRA_WEBHOOK_SECRET"]
    isecret = world.env["SYNCD_INTERCOM_CLIENT_SECRET"]
    base = f"http://127.0.0.1:{daemon.http_port}/webhooks"
    ticket_body = json.dumps({"ticket_id": str(ticket), "event": "ticket_changed"}).encode()
    unlinked = world.zendesk.create_ticket("Just a question", "How do I export my data?")
    jira_body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "10010", "key": key}}).encode()

    stale = datetime.now(timezone.utc) - timedelta(hours=1)
    attempts = [   # (path, body, headers, expected status, logged reason or None)
        ("zendesk", ticket_body, {}, 401, "missing_signature"),
        ("zendesk", ticket_body, _zendesk_headers("not-the-secret", ticket_body), 401, "bad_signature"),
        ("zendesk", ticket_body, _zendesk_headers(zsecret, ticket_body, at=stale), 401, "stale_timestamp"),
        ("zendesk", b"{not json", _zendesk_headers(zsecret, b"{not json"), 400, "invalid_json"),
        ("zendesk", b"[1, 2]", _zendesk_headers(zsecret, b"[1, 2]"), 400, "not_a_json_object"),
        ("zendesk", b'{"ticket_id": "-3"}', _zendesk_headers(zsecret, b'{"ticket_id": "-3"}'), 400, "bad_ticket_id"),
        ("jira", jira_body, _hub("wrong", jira_body, "sha256"), 401, "bad_signature"),
        ("jira", jira_body, {"X-Hub-Signature": "sha256=zz"}, 401, None),
        ("jira", b'{"webhookEvent": "board_created"}', _hub(jsecret, b'{"webhookEvent": "board_created"}', "sha256"),
         200, None),   # an event we do not handle: acknowledged, ignored, logged
        ("jira", b'{"issue": {}}', _hub(jsecret, b'{"issue": {}}', "sha256"), 400, "missing_webhook_event"),
        ("intercom", b'{"type": "notification_event"}', _hub("wrong", b"{}", "sha1"), 401, "bad_signature"),
        ("intercom", b'{"type": "x"}', _hub(isecret, b'{"type": "x"}', "sha1"), 400, "not_a_notification_event"),
    ]
    for path, body, headers, status, reason in attempts:
        r = httpx.post(f"{base}/{path}", content=body, headers=headers, timeout=10)
        assert r.status_code == status, (path, body[:40], r.status_code, r.text)

    # A good change in the middle of the noise still arrives, once.
    world.zendesk.customer_reply(ticket, "Sent between the forgeries.")

    huge = b'{"ticket_id": "1", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = httpx.post(f"{base}/zendesk", content=huge, headers=_zendesk_headers(zsecret, huge), timeout=30)
    assert r.status_code == 413
    # Signed and well formed, but for tickets nobody linked (one does not even exist): stored, harmless.
    for tid in (unlinked, 987654):
        body = json.dumps({"ticket_id": str(tid), "event": "ticket_changed"}).encode()
        assert httpx.post(f"{base}/zendesk", content=body, headers=_zendesk_headers(zsecret, body),
                          timeout=10).status_code == 200
    # A replayed delivery (same invocation id) is acknowledged but stored once.
    replay = _zendesk_headers(zsecret, ticket_body, invocation="inv-replayed-1")
    first = httpx.post(f"{base}/zendesk", content=ticket_body, headers=replay, timeout=10)
    again = httpx.post(f"{base}/zendesk", content=ticket_body, headers=replay, timeout=10)
    assert (first.json()["status"], again.json()["status"]) == ("stored", "duplicate")
    unknown = httpx.post(f"{base}/zendesk", content=b'{"ticket_id": "1", "event": "user_deleted"}',
                         headers=_zendesk_headers(zsecret, b'{"ticket_id": "1", "event": "user_deleted"}'), timeout=10)
    assert unknown.json() == {"status": "ignored"}

    assert wait_for(lambda: comments_with(world, key, "Sent between the forgeries.") == 1)
    assert wait_for(lambda: daemon.store.queue_depth() == 0, timeout=10)
    time.sleep(0.3)
    assert comments_with(world, key, "Sent between the forgeries.") == 1
    assert daemon.store.links_for_desk(_ref(unlinked)) == []     # nothing escalated by a bare delivery
    assert get(daemon, "/healthz").status == 200
    assert daemon.store.count_dead_letters() == 0
    assert get(daemon, "/readyz").status == 200, get(daemon, "/readyz").body

    refused = logs.named("webhook_refused")
    reasons = [e["reason"] for e in refused]
    for _, _, _, status, reason in attempts:
        if reason is not None:
            assert reason in reasons, (reason, reasons)
    assert "body_too_large" in reasons
    assert all(e.get("status") and e.get("reason") for e in refused)
    assert {e["reason"] for e in logs.named("webhook_ignored")} >= {"unhandled_event"}
    assert logs.named("webhook_duplicate")
    rendered = json.dumps(logs.events, default=str)
    for secret in (zsecret, jsecret, isecret, world.env["SYNCD_JIRA_API_TOKEN"], world.env["SYNCD_ZENDESK_TOKEN"]):
        assert secret not in rendered


def _ref(ticket: int):
    from syncd.domain import ItemRef
    return ItemRef("zendesk", str(ticket))


def test_fault_a_secret_rotated_on_one_side_is_a_warning_until_deliveries_are_accepted_again(
        make_world, start_daemon, look_at, logs):
    """Jira starts signing with a secret syncd does not have: every delivery is refused
    (401). /readyz keeps answering 200 — unsigned requests are what a forger sends too,
    and must not take the daemon out of a load balancer — but carries a warning naming
    the vendor and the reason, `syncd status` prints it, and the Jira poller still
    brings the engineers' comments across. Once the secrets match again the first
    accepted delivery clears the warning."""
    world = make_world(jira_poll=1)
    daemon = start_daemon(world)
    look = look_at(world)
    ticket, key = escalate(world, look)
    assert get(daemon, "/readyz").body["warnings"] == []
    rotated = "rotated-on-the-jira-side-only"
    with world.jira.lock:
        for hook in world.jira.hooks.values():
            hook.secret = rotated
    for n in range(3):
        world.jira.engineer_comment(key, f"Looking into it, step {n}.")
    ready = wait_for(lambda: (r := get(daemon, "/readyz")).body["warnings"] and r, timeout=20)
    assert ready and ready.status == 200 and ready.body["status"] == "ready", ready and ready.body
    [warning] = ready.body["warnings"]
    assert warning.startswith("webhooks jira: ") and "refused in a row (last: bad_signature" in warning, warning
    assert rotated not in warning and world.env["SYNCD_JIRA_WEBHOOK_SECRET"] not in warning
    jira = ready.body["webhooks"]["jira"]
    assert jira["refused_since_last_accepted"] >= 3 and jira["last_refusal"] == "bad_signature", jira
    printed = _status_output(world)
    assert "warning:        webhooks jira: " in printed, printed
    for n in range(3):   # the poller is the safety net meanwhile
        assert wait_for(lambda: notes_with(world, ticket, f"Looking into it, step {n}.") == 1, timeout=20)

    # Jira retries the refused deliveries, still signed with the secret they were sent
    # with: let it give up on them first, or a late retry is refused after the fix.
    assert world.jira.webhooks.flush(timeout=60), "the simulator never gave up on the refused deliveries"
    with world.jira.lock:
        for hook in world.jira.hooks.values():
            hook.secret = world.env["SYNCD_JIRA_WEBHOOK_SECRET"]
    world.jira.engineer_comment(key, "Found it.")
    assert wait_for(lambda: get(daemon, "/readyz").body["warnings"] == [], timeout=20), get(daemon, "/readyz").body
    assert get(daemon, "/readyz").body["webhooks"]["jira"]["refused_since_last_accepted"] == 0
    refused = [e for e in logs.named("webhook_refused") if e["vendor"] == "jira"]
    assert refused and all(e["reason"] == "bad_signature" and e["status"] == 401 for e in refused), refused[:3]


def _status_output(world) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = Path(sys.executable).with_name("syncd")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from syncd.cli import main; main()"]
    done = subprocess.run([*command, "status", "--config", str(world.config_path)], env={**os.environ, **world.env},
                          capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr
