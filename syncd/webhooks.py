"""The webhook receiver: a raw ASGI app (uvicorn runs it; no framework).

For each vendor delivery: refuse early what is too big, verify the signature
on the raw bytes, find the items it names, and *store* it (delivery + dirty
marks in one transaction, via the :class:`DeliverySink`) before answering 2xx.
The payload is only a hint; workers reconcile later. So the vendor-facing path
does one blocking thing — the sink call, in a worker thread — and answers fast.

Routes: ``POST /webhooks/{zendesk,jira,intercom}``, ``GET /healthz``, and
whatever ``extra_routes`` the runtime adds (``/readyz``, ``/metrics``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Mapping, MutableMapping

import structlog

from .domain import ItemRef
from .failpoints import failpoint
from .issue_hints import IssueHint, IssueHints
from .metrics import METRICS
from .signatures import DEFAULT_ZENDESK_TOLERANCE, SignatureInvalid, verify_intercom, verify_jira, verify_zendesk
from .schema import inbox
from .store_ports import DeliverySink, StoreUnavailable
from .webhook_flow import WebhookFlow
from .webhook_payloads import PARSERS, Headers, Ignored, MalformedPayload

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

VENDOR_PATHS: Mapping[str, str] = {
    "/webhooks/zendesk": "zendesk",
    "/webhooks/jira": "jira",
    "/webhooks/intercom": "intercom",
}
DEFAULT_MAX_BODY_BYTES = 1024 * 1024   # real payloads are a few KiB; Jira's largest well under this


@dataclass(frozen=True)
class Response:
    """What an extra route answers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, doc: Any) -> "Response":
        return cls(status, json.dumps(doc).encode())


# A plain handler runs in a worker thread of the shared pool (it may touch the database);
# a coroutine function runs on the event loop and must not block (``/readyz``: it waits on
# its own thread); ``/healthz`` is answered on the loop itself, touching nothing.
Handler = Callable[[], Response] | Callable[[], Awaitable[Response]]
OnStored = Callable[[tuple[ItemRef, ...]], None]   # runs on the event loop: must not block
OnEcho = Callable[[str, "IssueHint"], None]         # runs on a thread: may read the database


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class WebhookConfig:
    """Per-vendor secret (``None``: vendor not configured, its path answers 404).
    Secrets are kept out of ``repr`` so a logged config never shows them."""

    zendesk_secret: bytes | None = field(default=None, repr=False)
    jira_secret: bytes | None = field(default=None, repr=False)
    intercom_secret: bytes | None = field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # vendor → syncd's own account there. A delivery whose actor is syncd is the
    # echo of syncd's own write: stored (so a repeat is still a duplicate) but
    # not queued. The engine itself queues what such a write affects.
    own_actors: Mapping[str, str] = field(default_factory=dict)
    zendesk_tolerance: timedelta = DEFAULT_ZENDESK_TOLERANCE
    now: Callable[[], datetime] = field(default=_utc_now, repr=False, compare=False)
    # A body trickling in slower than this (all of it, from the end of the headers) is
    # refused 408: a slow client must not hold a connection and a request slot forever.
    body_timeout: float = 10.0
    max_headers: int = 100       # more header lines than any vendor sends: refused 431

    def secret_for(self, vendor: str) -> bytes | None:
        return {"zendesk": self.zendesk_secret, "jira": self.jira_secret,
                "intercom": self.intercom_secret}.get(vendor)


MAX_DELIVERY_ID = inbox.c.delivery_id.type.length or 200


class _Refusal(Exception):
    """Internal: stop handling and answer ``status`` (logged as ``webhook_refused``)."""

    def __init__(self, status: int, reason: str, size: int | None = None, close: bool = False):
        self.status, self.reason, self.size, self.close = status, reason, size, close
        super().__init__(reason)


class _ClientGone(Exception):
    pass


def make_app(sink: DeliverySink, config: WebhookConfig,
             extra_routes: Mapping[tuple[str, str], Handler] | None = None,
             on_stored: OnStored | None = None, flow: WebhookFlow | None = None,
             hints: IssueHints | None = None, echo: OnEcho | None = None) -> ASGIApp:
    """The ASGI callable. ``extra_routes`` maps ``(METHOD, path)`` to a handler;
    ``on_stored`` is told the refs of every newly stored delivery (to wake workers);
    ``flow`` counts accepted and refused deliveries per vendor (see :mod:`syncd.webhook_flow`);
    ``hints`` is told what each Jira delivery showed of its issue (:mod:`syncd.issue_hints`);
    ``echo`` what a Jira delivery of syncd's own change showed (:meth:`syncd.engine.Engine.echo_delivered`)."""
    return _WebhookApp(sink, config, dict(extra_routes or {}), on_stored, flow or WebhookFlow(), hints, echo)


class _WebhookApp:
    def __init__(self, sink: DeliverySink, config: WebhookConfig,
                 extra_routes: dict[tuple[str, str], Handler], on_stored: OnStored | None, flow: WebhookFlow,
                 hints: IssueHints | None = None, echo: OnEcho | None = None):
        self.sink, self.config, self.on_stored, self.flow, self.hints = sink, config, on_stored, flow, hints
        self.echo = echo
        self.routes: dict[tuple[str, str], Handler] = {("GET", "/healthz"): _healthz, **extra_routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        vendor = VENDOR_PATHS.get(path)
        try:
            if len(scope.get("headers", ())) > self.config.max_headers:
                raise _Refusal(431, "too_many_headers", len(scope["headers"]), close=True)
            if vendor is not None:
                await self._vendor(vendor, method, scope, receive, send)
            else:
                await self._other(path, method, send)
        except _Refusal as refusal:
            _log_refusal(vendor, path, refusal, scope)
            if vendor is not None and refusal.status in (400, 401, 413):   # the delivery itself was bad
                self.flow.refused(vendor, refusal.reason)
            status_text = "unauthorized" if refusal.status == 401 else refusal.reason
            await _send(send, refusal.status, {"error": status_text}, close=refusal.close)
        except _ClientGone:
            log.info("webhook_client_gone", vendor=vendor, remote=_remote(scope))

    async def _other(self, path: str, method: str, send: Send) -> None:
        handler = self.routes.get((method, path))
        if handler is None and method == "HEAD":   # probes (load balancers, curl -I) ask HEAD: answer as GET
            handler = self.routes.get(("GET", path))
        if handler is None:
            if any(p == path for (_, p) in self.routes):
                raise _Refusal(405, "method_not_allowed", close=True)
            raise _Refusal(404, "unknown_path", close=True)
        if handler is _healthz:
            # Liveness: the process and its event loop answer. No database, no thread pool
            # (its threads may all be stuck on a hung database: that is not a reason to restart).
            answer = _healthz()
            await _send_raw(send, answer.status, answer.body, answer.content_type)
            return
        try:
            if asyncio.iscoroutinefunction(handler):
                answer = await handler()
            else:
                answer = await asyncio.to_thread(handler)  # type: ignore[arg-type]
        except Exception as exc:   # a broken probe must not take the receiver down
            log.error("route_failed", path=path, error=type(exc).__name__)
            answer = Response.json(500, {"error": "internal"})
        await _send_raw(send, answer.status, answer.body, answer.content_type)

    async def _vendor(self, vendor: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        secret = self.config.secret_for(vendor)
        if secret is None:
            raise _Refusal(404, "vendor_not_configured", close=True)
        if method != "POST":
            raise _Refusal(405, "method_not_allowed", close=True)
        headers = _headers(scope)
        body = await _read_body(receive, headers, self.config.max_body_bytes, self.config.body_timeout)
        try:
            self._verify(vendor, secret, body, headers)
        except SignatureInvalid as bad:
            raise _Refusal(401, bad.reason, len(body)) from None
        try:
            parsed = PARSERS[vendor](body, headers)
        except MalformedPayload as bad:
            raise _Refusal(400, bad.reason, len(body)) from None
        except Exception as exc:
            # A parser bug, not the vendor's: still a 400 with a reason rather than a
            # 500 the vendor retries forever. Type only (the message may quote the body).
            log.error("webhook_parse_failed", vendor=vendor, error=type(exc).__name__)
            raise _Refusal(400, "unparseable_body", len(body)) from None
        if not isinstance(parsed, Ignored) and len(parsed.delivery_id) > MAX_DELIVERY_ID:
            # Longer than the inbox column: refused whole, never stored cut short (a cut id
            # could make two deliveries one) nor left to the database to refuse (a 500).
            raise _Refusal(400, "delivery_id_too_long", len(body))
        self.flow.accepted(vendor)   # signed and in the vendor's shape: the configuration works
        if isinstance(parsed, Ignored):
            log.info("webhook_ignored", vendor=vendor, reason=parsed.reason, detail=parsed.detail)
            await _send(send, 200, {"status": "ignored"})
            return
        if parsed.actor is not None and parsed.actor == self.config.own_actors.get(vendor):
            log.info("webhook_own_change", vendor=vendor, delivery_id=parsed.delivery_id,
                     items=[str(r) for r in parsed.refs])
            status = await self._store(vendor, parsed.delivery_id, body, (), len(body))
            await _send(send, 200, {"status": "own_change" if status == "stored" else status})
            if self.echo is not None and parsed.hint is not None and status == "stored":
                await self._echoed(parsed.refs[0].id, parsed.hint)
            return
        if self.hints is not None and parsed.hint is not None:
            # Before the mark: a worker that claims the item finds what the delivery showed.
            self.hints.note(parsed.refs[0].id, parsed.hint, len(body))
        status = await self._store(vendor, parsed.delivery_id, body, parsed.refs, len(body), parsed.stamp)
        await _send(send, 200, {"status": status})

    def _verify(self, vendor: str, secret: bytes, body: bytes, headers: Headers) -> None:
        if vendor == "zendesk":
            verify_zendesk(secret, body, headers.get("x-zendesk-webhook-signature"),
                           headers.get("x-zendesk-webhook-signature-timestamp"),
                           self.config.now(), self.config.zendesk_tolerance)
        elif vendor == "jira":
            verify_jira(secret, body, headers.get("x-hub-signature"))
        else:
            verify_intercom(secret, body, headers.get("x-hub-signature"))

    async def _store(self, vendor: str, delivery_id: str, body: bytes,
                     refs: tuple[ItemRef, ...], size: int, stamp: float | None = None) -> str:
        try:
            # The one blocking call of the request: off the event loop, so other
            # deliveries keep being answered while the database commits.
            stored = await asyncio.to_thread(self.sink.accept_delivery, vendor, delivery_id, body, refs,
                                             stamp=stamp)
        except StoreUnavailable:
            # Nothing was stored: 503 makes the vendor retry later.
            raise _Refusal(503, "store_unavailable", size) from None
        except Exception as exc:
            # Type only: driver errors can quote the statement's parameters (the body).
            log.error("webhook_store_failed", vendor=vendor, delivery_id=delivery_id, error=type(exc).__name__)
            raise _Refusal(500, "store_failed", size) from None
        if not stored:
            log.info("webhook_duplicate", vendor=vendor, delivery_id=delivery_id)
            return "duplicate"
        failpoint("after_delivery_stored")
        log.info("webhook_stored", vendor=vendor, delivery_id=delivery_id, items=[str(r) for r in refs])
        self._notify(refs)
        return "stored"

    async def _echoed(self, issue_id: str, hint: IssueHint) -> None:
        """Answered already: what the echo showed only spares a later read, so a failure
        here costs that read, nothing else."""
        assert self.echo is not None
        try:
            await asyncio.to_thread(self.echo, issue_id, hint)
        except Exception as exc:
            log.error("webhook_echo_failed", error=type(exc).__name__)

    def _notify(self, refs: tuple[ItemRef, ...]) -> None:
        if self.on_stored is None:
            return
        try:
            self.on_stored(refs)
        except Exception as exc:   # stored already: a failed wake-up only delays the work
            log.error("webhook_notify_failed", error=type(exc).__name__)


async def _read_body(receive: Receive, headers: Headers, limit: int, timeout: float = 10.0) -> bytes:
    """The whole body, refusing with 413 as soon as it passes ``limit`` — from
    Content-Length before reading anything, else while streaming — so a huge
    body is never buffered; and with 408 when it has not all come within ``timeout``."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _Refusal(413, "body_too_large", int(declared), close=True)
    chunks: list[bytes] = []
    size = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
        except asyncio.TimeoutError:
            raise _Refusal(408, "body_timeout", size, close=True) from None
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refusal(413, "body_too_large", size, close=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        # First occurrence wins; a repeated signature header gains nothing.
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _remote(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


def _log_refusal(vendor: str | None, path: str, refusal: _Refusal, scope: Scope) -> None:
    # Never the secret, the signature value or the body: reason and size are enough
    # to tell a misconfigured secret from a probe from an oversized payload.
    log.warning("webhook_refused", vendor=vendor, path=path, status=refusal.status,
                reason=refusal.reason, remote=_remote(scope), size=refusal.size)
    METRICS.webhook_refused(vendor, refusal.reason)


def _healthz() -> Response:
    return Response.json(200, {"status": "ok"})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send(send: Send, status: int, doc: Any, close: bool = False) -> None:
    await _send_raw(send, status, json.dumps(doc).encode(), "application/json", close)


async def _send_raw(send: Send, status: int, body: bytes, content_type: str, close: bool = False) -> None:
    headers = [(b"content-type", content_type.encode("latin-1")),
               (b"content-length", str(len(body)).encode())]
    if close:
        # The request body was left unread: closing is cheaper than letting the
        # server drain megabytes we already refused.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
