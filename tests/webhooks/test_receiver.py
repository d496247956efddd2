"""The webhook receiver over real HTTP: uvicorn on an ephemeral port, httpx (or a
raw socket, where the test needs to control how much of the body is sent).

The sink is an in-test sqlite3 store with a real unique constraint on
(source, delivery_id), standing in for syncd.store until the lead's
end-to-end test with the real store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import select
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator, Sequence

import httpx
import pytest
import structlog
import uvicorn

from syncd.domain import ItemRef
from syncd.webhook_payloads import Ignored, MalformedPayload, Relevant, parse_intercom, parse_jira, parse_zendesk
from syncd.webhooks import Response, StoreUnavailable, WebhookConfig, make_app

ZD_SECRET = b"zendesk-signing-secret-123"
JIRA_SECRET = b"jira-webhook-secret-456"
IC_SECRET = b"intercom-client-secret-789"
LIMIT = 64 * 1024


class SqliteSink:
    """A DeliverySink with a real unique constraint, like the store will have."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute("CREATE TABLE inbox (source TEXT, delivery_id TEXT, body BLOB, PRIMARY KEY (source, delivery_id))")
        self.db.execute("CREATE TABLE dirty (item TEXT PRIMARY KEY)")
        self.lock = threading.Lock()
        self.unavailable = False
        self.gate: threading.Event | None = None   # when set, accept_delivery waits for it

    def accept_delivery(self, source: str, delivery_id: str, body: bytes, refs: Sequence[ItemRef],
                        stamp: float | None = None) -> bool:
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            if self.unavailable:
                raise StoreUnavailable("database is locked")
            try:
                with self.db:
                    self.db.execute("INSERT INTO inbox VALUES (?, ?, ?)", (source, delivery_id, body))
                    self.db.executemany("INSERT OR IGNORE INTO dirty VALUES (?)", [(str(r),) for r in refs])
            except sqlite3.IntegrityError:
                return False
            return True

    def deliveries(self) -> list[tuple[str, str, bytes]]:
        with self.lock:
            return self.db.execute("SELECT source, delivery_id, body FROM inbox ORDER BY rowid").fetchall()

    def dirty(self) -> set[str]:
        with self.lock:
            return {row[0] for row in self.db.execute("SELECT item FROM dirty")}


@contextmanager
def serve(app) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn exited during start-up"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


class CurrentSink:
    """One server serves the whole module (start/stop costs ~0.2 s); each test
    gets a fresh SqliteSink and wake-up list behind it."""

    def __init__(self) -> None:
        self.target = SqliteSink()
        self.woken: list[tuple[ItemRef, ...]] = []

    def accept_delivery(self, source: str, delivery_id: str, body: bytes, refs: Sequence[ItemRef],
                        stamp: float | None = None) -> bool:
        return self.target.accept_delivery(source, delivery_id, body, refs)

    def wake(self, refs: tuple[ItemRef, ...]) -> None:
        self.woken.append(refs)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, CurrentSink]]:
    current = CurrentSink()
    config = WebhookConfig(zendesk_secret=ZD_SECRET, jira_secret=JIRA_SECRET, intercom_secret=IC_SECRET,
                           max_body_bytes=LIMIT)
    extra = {("GET", "/readyz"): lambda: Response.json(200, {"ready": True})}
    with serve(make_app(current, config, extra_routes=extra, on_stored=current.wake)) as url:
        yield url, current


@pytest.fixture
def sink(server) -> SqliteSink:
    server[1].target = SqliteSink()
    server[1].woken = []
    return server[1].target


@pytest.fixture
def woken(server, sink) -> list[tuple[ItemRef, ...]]:
    return server[1].woken


@pytest.fixture
def base_url(server, sink) -> str:
    return server[0]


# -- independent signing (the vendors' documented formulas) -----------------------

def zendesk_headers(body: bytes, at: datetime | None = None, invocation: str | None = "inv-1") -> dict[str, str]:
    stamp = (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = base64.b64encode(hmac.new(ZD_SECRET, stamp.encode() + body, hashlib.sha256).digest()).decode()
    headers = {"X-Zendesk-Webhook-Signature": sig, "X-Zendesk-Webhook-Signature-Timestamp": stamp,
               "Content-Type": "application/json"}
    if invocation:
        headers["X-Zendesk-Webhook-Invocation-Id"] = invocation
    return headers


def jira_headers(body: bytes, identifier: str | None = "wh-1") -> dict[str, str]:
    headers = {"X-Hub-Signature": "sha256=" + hmac.new(JIRA_SECRET, body, hashlib.sha256).hexdigest(),
               "Content-Type": "application/json"}
    if identifier:
        headers["X-Atlassian-Webhook-Identifier"] = identifier
    return headers


def intercom_headers(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature": "sha1=" + hmac.new(IC_SECRET, body, hashlib.sha1).hexdigest(),
            "Content-Type": "application/json"}


def zendesk_body(ticket_id: object = "42") -> bytes:
    return json.dumps({"ticket_id": ticket_id, "updated_at": "2024-05-01T10:00:00Z", "event": "ticket_changed"}).encode()


def jira_body(event: str = "jira:issue_updated", issue_id: object = "10001") -> bytes:
    return json.dumps({"webhookEvent": event, "timestamp": 1714557600000,
                       "issue": {"id": issue_id, "key": "ENG-7", "fields": {"summary": "x"}},
                       "changelog": {"items": [{"field": "status", "fromString": "Open", "toString": "Done"}]},
                       "user": {"accountId": "abc"}}).encode()


def intercom_body(topic: str = "conversation.user.replied", item_id: object = "215", nid: str = "notif_1") -> bytes:
    return json.dumps({"type": "notification_event", "id": nid, "topic": topic, "app_id": "app1",
                       "data": {"type": "notification_event_data", "item": {"type": "conversation", "id": item_id}}}).encode()


def post(base_url: str, vendor: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base_url}/webhooks/{vendor}", content=body, headers=headers, timeout=5)


# -- stored / duplicate / ignored ----------------------------------------------------

def test_zendesk_delivery_is_stored_and_its_ticket_marked_dirty(base_url, sink, woken):
    body = zendesk_body("42")
    answer = post(base_url, "zendesk", body, zendesk_headers(body))
    assert answer.status_code == 200 and answer.json() == {"status": "stored"}
    assert sink.deliveries() == [("zendesk", "inv-1", body)]
    assert sink.dirty() == {"zendesk:42"}
    assert woken == [(ItemRef("zendesk", "42"),)]


def test_jira_delivery_is_stored_by_issue_id(base_url, sink):
    body = jira_body("comment_created", "10077")
    answer = post(base_url, "jira", body, jira_headers(body, "atl-9"))
    assert answer.json() == {"status": "stored"}
    assert sink.deliveries() == [("jira", "atl-9", body)]
    assert sink.dirty() == {"jira:10077"}


def test_jira_issue_deleted_still_marks_dirty(base_url, sink):
    body = jira_body("jira:issue_deleted", "10002")
    assert post(base_url, "jira", body, jira_headers(body)).json() == {"status": "stored"}
    assert sink.dirty() == {"jira:10002"}


def test_intercom_conversation_and_ticket_topics(base_url, sink):
    conv = intercom_body("conversation.admin.noted", "215", "notif_a")
    ticket = intercom_body("ticket.state.updated", "77", "notif_b")
    assert post(base_url, "intercom", conv, intercom_headers(conv)).json() == {"status": "stored"}
    assert post(base_url, "intercom", ticket, intercom_headers(ticket)).json() == {"status": "stored"}
    assert [d[1] for d in sink.deliveries()] == ["notif_a", "notif_b"]
    assert sink.dirty() == {"intercom:conversation:215", "intercom:ticket:77"}


def test_same_delivery_three_times_concurrently_then_later_is_stored_once(base_url, sink, woken):
    body = jira_body("jira:issue_updated", "10005")
    headers = jira_headers(body, "atl-dup")
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: post(base_url, "jira", body, headers), range(3)))
    later = post(base_url, "jira", body, headers)
    statuses = sorted(a.json()["status"] for a in answers + [later])
    assert [a.status_code for a in answers + [later]] == [200] * 4
    assert statuses == ["duplicate", "duplicate", "duplicate", "stored"]
    assert len(sink.deliveries()) == 1
    assert len(woken) == 1


def test_intercom_ping_is_acknowledged_and_not_stored(base_url, sink, woken):
    body = json.dumps({"type": "notification_event", "id": "notif_ping", "topic": "ping",
                       "data": {"item": {"type": "ping", "message": "hello"}}}).encode()
    answer = post(base_url, "intercom", body, intercom_headers(body))
    assert answer.status_code == 200 and answer.json() == {"status": "ignored"}
    assert sink.deliveries() == [] and woken == []


def test_unknown_jira_event_is_acknowledged_and_not_stored(base_url, sink):
    body = json.dumps({"webhookEvent": "sprint_started", "sprint": {"id": 3}}).encode()
    answer = post(base_url, "jira", body, jira_headers(body))
    assert answer.json() == {"status": "ignored"}
    assert sink.deliveries() == []


def test_unknown_intercom_topic_is_acknowledged_and_not_stored(base_url, sink):
    body = intercom_body("contact.user.created", "c1")
    assert post(base_url, "intercom", body, intercom_headers(body)).json() == {"status": "ignored"}
    assert sink.deliveries() == []


# -- refusals -----------------------------------------------------------------------

def test_bad_signature_is_401_and_nothing_stored(base_url, sink):
    body = jira_body()
    headers = jira_headers(body)
    tampered = body.replace(b"10001", b"10009")
    assert post(base_url, "jira", tampered, headers).status_code == 401
    assert post(base_url, "jira", body, {"Content-Type": "application/json"}).status_code == 401
    ic = intercom_body()
    wrong_algo = {"X-Hub-Signature": "sha256=" + hmac.new(IC_SECRET, ic, hashlib.sha256).hexdigest()}
    assert post(base_url, "intercom", ic, wrong_algo).status_code == 401
    assert sink.deliveries() == []


def test_stale_zendesk_timestamp_is_401(base_url, sink):
    body = zendesk_body()
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    assert post(base_url, "zendesk", body, zendesk_headers(body, at=old)).status_code == 401
    assert sink.deliveries() == []


def test_malformed_json_is_400_after_a_valid_signature(base_url, sink):
    body = b'{"webhookEvent": "jira:issue_updated", "issue": '
    answer = post(base_url, "jira", body, jira_headers(body))
    assert answer.status_code == 400 and answer.json() == {"error": "invalid_json"}
    assert sink.deliveries() == []


@pytest.mark.parametrize("vendor, body", [
    ("zendesk", zendesk_body("{{ticket.id}}")),
    ("zendesk", json.dumps({"updated_at": "x", "event": "ticket_changed"}).encode()),
    ("jira", json.dumps({"webhookEvent": "jira:issue_updated"}).encode()),
    ("intercom", json.dumps({"type": "notification_event", "topic": "conversation.user.replied",
                             "data": {"item": {"id": "1"}}}).encode()),
    ("intercom", b"[1, 2, 3]"),
])
def test_payload_not_in_the_vendor_shape_is_400(base_url, sink, vendor, body):
    headers = {"zendesk": zendesk_headers, "jira": jira_headers, "intercom": intercom_headers}[vendor](body)
    assert post(base_url, vendor, body, headers).status_code == 400
    assert sink.deliveries() == []


def raw_request(base_url: str, head: bytes) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(head)
    return sock


def read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_declared_10_mib_body_is_413_before_any_of_it_is_sent(base_url, sink):
    head = (b"POST /webhooks/jira HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nX-Hub-Signature: sha256=00\r\n\r\n" % (10 * 1024 * 1024))
    started = time.monotonic()
    sock = raw_request(base_url, head)
    try:
        # Not one body byte was sent: an answer proves the server did not wait for them.
        assert read_status(sock) == 413
    finally:
        sock.close()
    assert time.monotonic() - started < 1.0
    assert sink.deliveries() == []


def test_streamed_10_mib_body_is_refused_once_past_the_limit(base_url, sink):
    head = (b"POST /webhooks/intercom HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    sock = raw_request(base_url, head)
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"a" * 16 * 1024)
    sent, status = 0, None
    try:
        while sent < 10 * 1024 * 1024 and status is None:
            try:
                sock.sendall(chunk)
            except OSError:   # the server closed on us: the answer is already waiting
                break
            sent += 16 * 1024
            if sent > LIMIT and select.select([sock], [], [], 0.05)[0]:
                break
        status = read_status(sock)
    finally:
        sock.close()
    assert status == 413
    assert sent < 10 * LIMIT, f"client got to send {sent} bytes before the refusal"
    assert sink.deliveries() == []


def test_wrong_method_unknown_path_and_unconfigured_vendor():
    sink = SqliteSink()
    config = WebhookConfig(jira_secret=JIRA_SECRET)
    with serve(make_app(sink, config)) as url:
        assert httpx.get(f"{url}/webhooks/jira").status_code == 405
        assert httpx.post(f"{url}/healthz").status_code == 405
        assert httpx.post(f"{url}/nope", content=b"{}").status_code == 404
        body = intercom_body()
        assert httpx.post(f"{url}/webhooks/intercom", content=body, headers=intercom_headers(body)).status_code == 404
    assert sink.deliveries() == []


def test_healthz_and_extra_routes(base_url):
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base_url}/readyz").json() == {"ready": True}
    assert httpx.get(f"{base_url}/metrics").status_code == 404


# -- store trouble -------------------------------------------------------------------

def test_store_unavailable_is_503_and_a_later_retry_stores_it(base_url, sink, woken):
    body = zendesk_body("8")
    sink.unavailable = True
    first = post(base_url, "zendesk", body, zendesk_headers(body, invocation="inv-8"))
    assert first.status_code == 503
    assert sink.deliveries() == [] and woken == []
    sink.unavailable = False
    retry = post(base_url, "zendesk", body, zendesk_headers(body, invocation="inv-8"))   # re-signed, as Zendesk does
    assert retry.json() == {"status": "stored"}
    assert sink.dirty() == {"zendesk:8"}


def test_a_slow_store_does_not_block_other_requests(base_url, sink):
    sink.gate = threading.Event()
    body = jira_body()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, base_url, "jira", body, jira_headers(body))
        time.sleep(0.05)   # let the delivery reach the (blocked) sink
        started = time.monotonic()
        assert httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        assert time.monotonic() - started < 0.5
        assert not pending.done()
        sink.gate.set()
        assert pending.result(timeout=5).json() == {"status": "stored"}


# -- logging -------------------------------------------------------------------------

def test_refusal_logs_carry_the_reason_and_never_the_secret_signature_or_body(base_url):
    body = intercom_body(item_id="secret-item-215")
    forged = "sha1=" + hmac.new(b"guess", body, hashlib.sha1).hexdigest()
    zd = zendesk_body()
    stale = zendesk_headers(zd, at=datetime.now(timezone.utc) - timedelta(hours=1))
    with structlog.testing.capture_logs() as logs:
        assert post(base_url, "intercom", body, {"X-Hub-Signature": forged}).status_code == 401
        assert post(base_url, "zendesk", zd, stale).status_code == 401
    refused = [e for e in logs if e["event"] == "webhook_refused"]
    assert [(e["vendor"], e["reason"]) for e in refused] == [("intercom", "bad_signature"), ("zendesk", "stale_timestamp")]
    assert all(e["remote"].startswith("127.0.0.1:") and e["size"] > 0 for e in refused)
    everything = repr(logs)
    for leak in (IC_SECRET.decode(), ZD_SECRET.decode(), forged, forged.removeprefix("sha1="),
                 stale["X-Zendesk-Webhook-Signature"], "secret-item-215"):
        assert leak not in everything


def test_config_repr_hides_secrets():
    text = repr(WebhookConfig(zendesk_secret=ZD_SECRET, jira_secret=JIRA_SECRET, intercom_secret=IC_SECRET))
    assert all(s.decode() not in text for s in (ZD_SECRET, JIRA_SECRET, IC_SECRET))


# -- payload parsing (pure) -------------------------------------------------------------

def test_zendesk_delivery_id_falls_back_to_digest_of_timestamp_and_body():
    body = zendesk_body(42)
    parsed = parse_zendesk(body, {"x-zendesk-webhook-signature-timestamp": "T1"})
    assert parsed == Relevant("sha256:" + hashlib.sha256(b"T1" + body).hexdigest(), (ItemRef("zendesk", "42"),))
    assert parse_zendesk(body, {"x-zendesk-webhook-signature-timestamp": "T2"}).delivery_id != parsed.delivery_id


def test_jira_delivery_id_falls_back_to_digest_of_body():
    body = jira_body(issue_id=10003)
    assert parse_jira(body, {}) == Relevant("sha256:" + hashlib.sha256(body).hexdigest(), (ItemRef("jira", "10003"),),
                                            actor="abc")


@pytest.mark.parametrize("parse, body", [
    (parse_zendesk, zendesk_body("0")),
    (parse_zendesk, zendesk_body(True)),
    (parse_zendesk, zendesk_body("12:3")),
    (parse_jira, jira_body(issue_id="ENG-7")),
    (parse_jira, json.dumps({"issue": {"id": "1"}}).encode()),
    (parse_intercom, intercom_body(item_id="a:b")),
    (parse_intercom, json.dumps({"type": "other", "id": "n", "topic": "ping"}).encode()),
    (parse_intercom, b"\xff\xfe"),
])
def test_malformed_payloads_are_refused_with_a_reason(parse, body):
    with pytest.raises(MalformedPayload) as caught:
        parse(body, {})
    assert caught.value.reason


def test_a_released_version_is_queued_itself():
    body = json.dumps({"webhookEvent": "jira:version_released", "version": {"id": "10020", "name": "2.4"}}).encode()
    parsed = parse_jira(body, {"x-atlassian-webhook-identifier": "d-1"})
    assert parsed == Relevant("d-1", (ItemRef("jira:version", "10020"),))
    with pytest.raises(MalformedPayload):
        parse_jira(json.dumps({"webhookEvent": "jira:version_released"}).encode(), {})


def test_ignored_payloads_say_why():
    assert parse_intercom(intercom_body("conversation_part.redacted"), {}) == \
        Ignored("unhandled_topic", "conversation_part.redacted")
    # A tag is how a teammate escalates; its item is the whole conversation.
    tagged = parse_intercom(intercom_body("conversation_part.tag.created"), {})
    assert isinstance(tagged, Relevant) and tagged.refs == (ItemRef("intercom:conversation", "215"),)
    assert parse_jira(json.dumps({"webhookEvent": "jira:version_unreleased"}).encode(), {}) == \
        Ignored("unhandled_event", "jira:version_unreleased")
    other = json.dumps({"ticket_id": "1", "event": "user_changed"}).encode()
    assert parse_zendesk(other, {}) == Ignored("unhandled_event", "user_changed")


def test_the_echo_of_syncds_own_write_is_stored_but_not_queued():
    """Deliveries whose actor is syncd's own account are stored (so a redelivery
    is still a duplicate) but mark nothing dirty; anyone else's change is queued."""
    own = SqliteSink()
    config = WebhookConfig(zendesk_secret=ZD_SECRET, jira_secret=JIRA_SECRET, max_body_bytes=LIMIT,
                           own_actors={"jira": "syncd-account", "zendesk": "900"})
    with serve(make_app(own, config)) as url:
        ours = json.dumps({"webhookEvent": "comment_created", "issue": {"id": "10001"},
                           "user": {"accountId": "syncd-account"}}).encode()
        answer = post(url, "jira", ours, jira_headers(ours, identifier="wh-own"))
        assert (answer.status_code, answer.json()["status"]) == (200, "own_change")
        assert post(url, "jira", ours, jira_headers(ours, identifier="wh-own")).json()["status"] == "duplicate"
        zd_ours = json.dumps({"ticket_id": "42", "actor": "900", "event": "ticket_changed"}).encode()
        assert post(url, "zendesk", zd_ours, zendesk_headers(zd_ours, invocation="z-own")).json()["status"] == "own_change"
        assert own.dirty() == set()
        theirs = jira_body()                      # actor "abc": an engineer
        assert post(url, "jira", theirs, jira_headers(theirs, identifier="wh-eng")).json()["status"] == "stored"
        zd_theirs = json.dumps({"ticket_id": "42", "actor": "901", "event": "ticket_changed"}).encode()
        assert post(url, "zendesk", zd_theirs, zendesk_headers(zd_theirs, invocation="z-agent")).json()["status"] == "stored"
    assert own.dirty() == {"jira:10001", "zendesk:42"}
    assert len(own.deliveries()) == 4


# -- Intercom: who made the change ---------------------------------------------------

def intercom_part_body(topic: str, authors: list[dict], kind: str = "conversation", nid: str = "notif_p") -> bytes:
    """A notification whose item carries the parts the event created, as Intercom sends it."""
    parts = [{"type": f"{kind}_part", "id": str(900 + n), "part_type": "note", "body": "<p>x</p>",
              "created_at": 1714557600 + n, "author": author} for n, author in enumerate(authors)]
    item = {"type": kind, "id": "215", f"{kind}_parts": {"type": f"{kind}_part.list", f"{kind}_parts": parts}}
    return json.dumps({"type": "notification_event", "id": nid, "topic": topic,
                       "data": {"type": "notification_event_data", "item": item}}).encode()


SYNCD_ADMIN = {"type": "admin", "id": "7001", "name": "syncd", "email": "syncd@example.com"}
TEAMMATE = {"type": "admin", "id": 7002, "name": "Ann", "email": "ann@example.com"}   # ids may come as numbers
CUSTOMER = {"type": "user", "id": "6650a1", "name": "Cy", "email": "cy@example.com"}


@pytest.mark.parametrize("topic, authors, kind, actor", [
    ("conversation.admin.noted", [SYNCD_ADMIN], "conversation", "admin:7001"),
    ("conversation.admin.closed", [SYNCD_ADMIN], "conversation", "admin:7001"),
    ("ticket.note.created", [SYNCD_ADMIN], "ticket", "admin:7001"),
    ("conversation.admin.noted", [TEAMMATE], "conversation", "admin:7002"),
    # never name an actor for a customer's change, nor when it cannot be told
    ("conversation.user.replied", [CUSTOMER], "conversation", None),
    ("conversation.user.replied", [SYNCD_ADMIN], "conversation", None),    # a customer topic is never filtered
    ("ticket.contact.replied", [CUSTOMER], "ticket", None),
    ("conversation.admin.replied", [SYNCD_ADMIN, CUSTOMER], "conversation", None),
    ("conversation.admin.replied", [SYNCD_ADMIN, TEAMMATE], "conversation", None),
    ("conversation.admin.noted", [], "conversation", None),
    ("conversation.admin.noted", [{"type": "admin"}], "conversation", None),
])
def test_intercom_actor_is_the_admin_author_of_an_admin_topic(topic, authors, kind, actor):
    parsed = parse_intercom(intercom_part_body(topic, authors, kind), {})
    assert isinstance(parsed, Relevant)
    assert parsed.actor == actor
    assert parsed.refs == (ItemRef(f"intercom:{kind}", "215"),)


def test_intercom_echo_of_syncds_admin_is_stored_but_not_queued():
    own = SqliteSink()
    config = WebhookConfig(intercom_secret=IC_SECRET, max_body_bytes=LIMIT, own_actors={"intercom": "admin:7001"})
    with serve(make_app(own, config)) as url:
        ours = intercom_part_body("conversation.admin.noted", [SYNCD_ADMIN], nid="notif_own")
        assert post(url, "intercom", ours, intercom_headers(ours)).json()["status"] == "own_change"
        assert post(url, "intercom", ours, intercom_headers(ours)).json()["status"] == "duplicate"
        assert own.dirty() == set()
        teammate = intercom_part_body("conversation.admin.noted", [TEAMMATE], nid="notif_ann")
        assert post(url, "intercom", teammate, intercom_headers(teammate)).json()["status"] == "stored"
        customer = intercom_part_body("ticket.contact.replied", [CUSTOMER], "ticket", nid="notif_cy")
        assert post(url, "intercom", customer, intercom_headers(customer)).json()["status"] == "stored"
    assert own.dirty() == {"intercom:conversation:215", "intercom:ticket:215"}
    assert len(own.deliveries()) == 3


def tagged_body(tags: list[tuple[int, dict]]) -> bytes:
    item = {"type": "conversation", "id": "215", "tags": {"type": "tag.list", "tags": [
        {"type": "tag", "id": str(n), "name": f"t{n}", "applied_at": at, "applied_by": by}
        for n, (at, by) in enumerate(tags)]}}
    return json.dumps({"type": "notification_event", "id": "notif_t", "topic": "conversation_part.tag.created",
                       "data": {"type": "notification_event_data", "item": item}}).encode()


@pytest.mark.parametrize("tags, actor", [
    ([(100, TEAMMATE), (200, SYNCD_ADMIN)], "admin:7001"),             # syncd's tag is the newest
    ([(100, SYNCD_ADMIN), (200, TEAMMATE)], "admin:7002"),
    ([(200, SYNCD_ADMIN), (200, TEAMMATE)], None),                     # same second: cannot tell
    ([(200, {"type": "bot", "id": "1"})], None),
    ([], None),
])
def test_intercom_tagging_actor_is_who_applied_the_newest_tag(tags, actor):
    parsed = parse_intercom(tagged_body(tags), {})
    assert isinstance(parsed, Relevant) and parsed.actor == actor
