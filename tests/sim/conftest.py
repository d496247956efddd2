"""What the simulator tests share: a webhook endpoint on loopback.

It is written here, independently of the simulators' own sender, so that the
tests check the simulators' deliveries (signatures, retries, ordering) with
code that does not share their bugs.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]     # names in lower case
    body: bytes
    at: float                   # time.monotonic() on arrival
    status: int                 # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Records every POST it gets, refused ones included; answers 500 to the
    first ``fail_first`` of them and 200 to the rest."""

    def __init__(self) -> None:
        self.fail_first = 0
        self._deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._changed:
                    status = 500 if len(receiver._deliveries) < receiver.fail_first else 200
                    receiver._deliveries.append(Delivery(headers, body, time.monotonic(), status))
                    receiver._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    @property
    def deliveries(self) -> list[Delivery]:
        with self._changed:
            return list(self._deliveries)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Delivery]:
        """The deliveries once there are at least ``n``; fails the test after ``timeout`` s."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._deliveries) >= n, timeout):
                raise AssertionError(f"expected {n} deliveries, got {len(self._deliveries)}")
            return list(self._deliveries)

    def bodies(self) -> list[Any]:
        return [d.json() for d in self.deliveries]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    try:
        yield r
    finally:
        r.close()
