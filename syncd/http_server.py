"""The webhook server's HTTP limits (issue 12, finding 4).

uvicorn bounds a request's header block (h11's ``max_incomplete_event_size``), the
concurrent connections (``limit_concurrency``) and the idle time between requests
(``timeout_keep_alive``) -- but not the time a client may take to send its headers:
one sending a byte a second holds a connection for ever. :class:`GuardedH11Protocol`
adds that (``header_timeout``) and logs every refusal made below the application --
headers too slow, too large, not HTTP -- as ``http_refused`` with the vendor path
(when the request line got through) and the client address, instead of uvicorn's bare
"Invalid HTTP request received.". The body's timeout, the header count, the body
size and the delivery-id length are checked by the application (:mod:`syncd.webhooks`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import HttpSettings
from .webhooks import VENDOR_PATHS

log = structlog.get_logger("syncd.http")

_HEAD_KEPT = 512   # enough of a request's first bytes to read its request line


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's header block."""

    header_timeout = 10.0
    max_header_bytes = 16 * 1024

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head = b""
        self._head_size = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers():
            if len(self._head) < _HEAD_KEPT:
                self._head = (self._head + data)[:_HEAD_KEPT]
            self._head_size += len(data)
            self._arm()
        super().data_received(data)
        if not self._awaiting_headers():   # a request's headers are complete: the app has it now
            self._disarm()
            self._head, self._head_size = b"", 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting_headers():
            return
        if self.cycle is not None and not self._head:
            # An idle keep-alive connection: uvicorn's own keep-alive timeout closes it.
            return
        self._refused("header_timeout")
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        too_large = self._head_size > self.max_header_bytes
        self._refused("headers_too_large" if too_large else "invalid_http_request")
        super().send_400_response(msg)

    def _refused(self, reason: str) -> None:
        path = _request_path(self._head)
        log.warning("http_refused", reason=reason, vendor=VENDOR_PATHS.get(path or ""), path=path,
                    remote=f"{self.client[0]}:{self.client[1]}" if self.client else None,
                    received=self._head_size)


def _request_path(head: bytes) -> str | None:
    """The path of ``METHOD /path HTTP/1.1``, if that much arrived (never the query: it could hold a token)."""
    line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) < 2 or not parts[1].startswith(b"/"):
        return None
    return parts[1].split(b"?", 1)[0].decode("latin-1")[:200]


def guarded_protocol(header_timeout: float, max_header_bytes: int) -> type[GuardedH11Protocol]:
    return type("SyncdH11Protocol", (GuardedH11Protocol,),
                {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes})


def server_config(app: Any, http: HttpSettings) -> uvicorn.Config:
    """uvicorn's config with syncd's limits (``[http]``, docs/configuration.md)."""
    return uvicorn.Config(
        app, host=http.host, port=http.port, log_config=None, access_log=False, lifespan="off",
        http=guarded_protocol(http.header_timeout_seconds, http.max_header_bytes),
        h11_max_incomplete_event_size=http.max_header_bytes,
        limit_concurrency=http.max_connections,
        timeout_keep_alive=http.keep_alive_seconds,
    )
