"""HTTP limits of the webhook server (issue 12, finding 4), on the server syncd runs
(:func:`syncd.http_server.server_config`): slow headers and bodies are cut off,
oversized header blocks and too many headers refused, over-long delivery ids refused
whole -- each refusal logged with the vendor path and the client address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

import httpx
import pytest
import uvicorn
from structlog.testing import capture_logs

from syncd.config import HttpSettings
from syncd.domain import ItemRef
from syncd.http_server import server_config
from syncd.webhooks import WebhookConfig, make_app

SECRET = b"zendesk-limits-secret"


class ListSink:
    def __init__(self) -> None:
        self.stored: list[tuple[str, str, bytes]] = []

    def accept_delivery(self, source: str, delivery_id: str, body: bytes, refs: Sequence[ItemRef],
                        stamp: float | None = None) -> bool:
        self.stored.append((source, delivery_id, body))
        return True


@contextmanager
def serve(sink: ListSink, **limits: Any) -> Iterator[int]:
    http = HttpSettings(host="127.0.0.1", port=0, **limits)
    app = make_app(sink, WebhookConfig(zendesk_secret=SECRET, jira_secret=b"j", body_timeout=http.body_timeout_seconds,
                                       max_headers=http.max_headers))
    server = uvicorn.Server(server_config(app, http))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(5)


def _closed_while_trickling(port: int, head: bytes, trickle: bytes, every: float = 0.2,
                            give_up: float = 30.0) -> tuple[bool, bytes]:
    """Send ``head`` then ``trickle`` a byte at a time; True once the server closed the
    connection (before ``give_up`` seconds), with whatever it answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head)
    sock.settimeout(every)
    answer = b""
    deadline = time.monotonic() + give_up
    try:
        for byte in (trickle * 1000)[: int(give_up / every) + 1]:
            if time.monotonic() > deadline:
                return False, answer
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    return True, answer
                answer += chunk
            except socket.timeout:
                pass
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return True, answer
        return False, answer
    except ConnectionResetError:
        return True, answer
    finally:
        sock.close()


def _refusals(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("event") == event]


def test_headers_sent_byte_by_byte_are_cut_off_and_logged():
    with capture_logs() as logs, serve(ListSink(), header_timeout_seconds=1.0) as port:
        closed, _ = _closed_while_trickling(port, b"POST /webhooks/zendesk HTTP/1.1\r\nHost: x\r\n", b"X-Slow: abc")
        time.sleep(0.2)
    assert closed, "a client sending its headers a byte at a time kept the connection"
    refused = _refusals(logs, "http_refused")
    assert refused and refused[0]["reason"] == "header_timeout", logs
    assert refused[0]["path"] == "/webhooks/zendesk" and refused[0]["vendor"] == "zendesk"
    assert refused[0]["remote"].startswith("127.0.0.1:")


def test_body_sent_byte_by_byte_is_refused_408_and_logged():
    sink = ListSink()
    with capture_logs() as logs, serve(sink, body_timeout_seconds=1.0) as port:
        head = (b"POST /webhooks/zendesk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 400\r\n\r\n{")
        closed, answer = _closed_while_trickling(port, head, b" ")
        time.sleep(0.2)
    assert closed and answer.startswith(b"HTTP/1.1 408"), answer
    refused = _refusals(logs, "webhook_refused")
    assert refused and refused[0]["reason"] == "body_timeout" and refused[0]["vendor"] == "zendesk", logs
    assert refused[0]["remote"].startswith("127.0.0.1:")
    assert sink.stored == []


def test_oversized_header_block_is_refused_and_logged_with_path_and_client():
    with capture_logs() as logs, serve(ListSink()) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        answer = b""
        try:
            sock.sendall(b"POST /webhooks/jira HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        except OSError:
            pass   # refused (and closed) before the megabyte was through
        try:
            answer = sock.recv(65536)
        except OSError:
            pass
        finally:
            sock.close()
        time.sleep(0.2)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer
    refused = _refusals(logs, "http_refused")
    assert refused and refused[0]["reason"] == "headers_too_large", logs
    assert refused[0]["path"] == "/webhooks/jira" and refused[0]["vendor"] == "jira"
    assert refused[0]["remote"].startswith("127.0.0.1:")


def test_too_many_headers_are_refused_431_and_logged():
    with capture_logs() as logs, serve(ListSink()) as port:
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/zendesk", content=b"{}",
                       headers={f"X-H{i}": "v" for i in range(150)}, timeout=10)
        time.sleep(0.1)
    assert r.status_code == 431
    refused = _refusals(logs, "webhook_refused")
    assert refused and refused[0]["reason"] == "too_many_headers" and refused[0]["path"] == "/webhooks/zendesk"
    assert refused[0]["remote"].startswith("127.0.0.1:")


def _zendesk_signed(body: bytes, invocation: str) -> dict[str, str]:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = base64.b64encode(hmac.new(SECRET, stamp.encode() + body, hashlib.sha256).digest()).decode()
    return {"X-Zendesk-Webhook-Signature": sig, "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Invocation-Id": invocation, "Content-Type": "application/json"}


@pytest.mark.parametrize("length, stored", [(200, True), (201, False), (8 * 1024, False)])
def test_delivery_id_longer_than_its_column_is_refused_whole(length, stored):
    sink = ListSink()
    body = json.dumps({"ticket_id": "42", "updated_at": "2024-05-01T10:00:00Z", "event": "ticket_changed"}).encode()
    with capture_logs() as logs, serve(sink) as port:
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/zendesk", content=body,
                       headers=_zendesk_signed(body, "i" * length), timeout=10)
    if stored:
        assert r.status_code == 200 and [d for _, d, _ in sink.stored] == ["i" * length]
        return
    assert r.status_code == 400 and r.json() == {"error": "delivery_id_too_long"}
    assert sink.stored == [], "an over-long delivery id was stored"
    refused = _refusals(logs, "webhook_refused")
    assert refused and refused[0]["reason"] == "delivery_id_too_long" and refused[0]["vendor"] == "zendesk"
