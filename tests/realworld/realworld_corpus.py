"""The real-world corpus (../shared/realworld, see its PROVENANCE.md) and what
the replay tests share: where it is, its index, signing code written here
independently of syncd.signatures, and the real receiver on loopback.

The corpus is read where it lies, never copied into the repository. Absent
(a checkout without ../shared), the tests skip with the reason; in CI, where
``SYNCD_VENDOR_SPECS`` is set (../shared is required there), its absence fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import uvicorn

CORPUS_ENV = "SYNCD_REALWORLD"
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "realworld"
REQUIRED_ENV = "SYNCD_VENDOR_SPECS"   # set in CI, where ../shared must be present


def corpus_dir() -> Path:
    return Path(os.environ.get(CORPUS_ENV) or DEFAULT_CORPUS_DIR)


def corpus_present() -> bool:
    return (corpus_dir() / "index.json").is_file()


ABSENT_REASON = f"real-world corpus not found in {corpus_dir()} (set {CORPUS_ENV}; see shared/realworld/PROVENANCE.md)"


def index() -> list[dict[str, Any]]:
    """Entries of index.json; ``[]`` when the corpus is absent (and not required)."""
    if not corpus_present():
        if os.environ.get(REQUIRED_ENV):
            raise RuntimeError(f"{REQUIRED_ENV} is set (CI) but {ABSENT_REASON}")
        return []
    return json.loads((corpus_dir() / "index.json").read_text())


def entries(vendor: str | None = None, channel: str | None = None) -> list[dict[str, Any]]:
    return [e for e in index() if (vendor is None or e["vendor"] == vendor)
            and (channel is None or e["channel"] == channel)]


def body_of(entry: dict[str, Any]) -> bytes:
    return (corpus_dir() / entry["file"]).read_bytes()


def doc_of(entry: dict[str, Any]) -> Any:
    return json.loads(body_of(entry))


# -- signing, as each vendor documents it (independent of syncd.signatures) ----

ZD_SECRET = b"replay-zendesk-secret"
JIRA_SECRET = b"replay-jira-secret"
IC_SECRET = b"replay-intercom-secret"


def signed_headers(vendor: str, body: bytes, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json", **(extra or {})}
    if vendor == "zendesk":
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        mac = hmac.new(ZD_SECRET, stamp.encode() + body, hashlib.sha256).digest()
        headers["x-zendesk-webhook-signature-timestamp"] = stamp
        headers["x-zendesk-webhook-signature"] = base64.b64encode(mac).decode()
    elif vendor == "jira":
        headers["x-hub-signature"] = "sha256=" + hmac.new(JIRA_SECRET, body, hashlib.sha256).hexdigest()
    else:
        headers["x-hub-signature"] = "sha1=" + hmac.new(IC_SECRET, body, hashlib.sha1).hexdigest()
    return headers


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """An ASGI app under uvicorn on an ephemeral loopback port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn exited during start-up"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# -- a loopback server answering with recorded bodies ---------------------------

import re as _re
from dataclasses import dataclass as _dataclass, field as _field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@_dataclass(frozen=True)
class Route:
    method: str
    path: str                 # a regular expression matched against the whole path
    doc: Any                  # JSON answer
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    query_has: str | None = None   # the route matches only requests with this query parameter


@_dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@_dataclass
class ReplayServer:
    """Answers each request with the first route that matches it, else 404
    (``{"errors": [...]}``); records every request. Tests add routes before use."""

    routes: list[Route] = _field(default_factory=list)
    seen: list[Seen] = _field(default_factory=list)

    def start(self) -> str:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                replay.seen.append(Seen(self.command, parts.path, parse_qs(parts.query), body))
                query = parse_qs(parts.query)
                for r in replay.routes:
                    if r.query_has is not None and r.query_has not in query:
                        continue
                    if r.method == self.command and _re.fullmatch(r.path, parts.path):
                        self._send(r.status, r.doc, r.headers)
                        return
                self._send(404, {"type": "error.list", "errors": [{"code": "not_found", "message": "no route"}]}, ())

            def _send(self, status: int, doc: Any, headers: tuple[tuple[str, str], ...]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, method: str, path: str, doc: Any, status: int = 200, query_has: str | None = None,
            **headers: str) -> None:
        """Routes added first win; add the narrower (``query_has``) one before the general one."""
        self.routes.append(Route(method, path, doc, status, tuple(headers.items()), query_has))

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and _re.fullmatch(path, s.path)]
