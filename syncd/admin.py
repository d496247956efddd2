"""The read-only admin page: links, one link's history, the queue, dead letters, webhook flow, lag.

Served by ``syncd run`` on a port of its own (``[admin] listen``; off unless set), never
on the vendors' webhook port. Server-rendered (Starlette + Jinja2), no JavaScript at all.

What guards it, since ticket subjects and comments are text anyone can write:

* every request needs the token: ``Authorization: Bearer <token>``, or basic
  credentials (``[admin] user`` and the token as password, which is what a browser
  asks for), compared in constant time; anything else is 401;
* GET and HEAD only: it changes nothing, so it accepts no form and no other method;
* every value is escaped by Jinja2's autoescape, and a strict Content-Security-Policy
  (no script at all, styles from this server only, no framing) stops what would slip
  through; pages are ``Cache-Control: no-store`` (they show customer text);
* it shows no secret: nothing from the settings but what ``/readyz`` shows already.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import jinja2
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import admin_queries as queries
from . import history
from .admin_current import CurrentValues, Seen
from .config import AdminSettings

log = structlog.get_logger("syncd.admin")

TEMPLATES = Path(__file__).parent / "templates" / "admin"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
REALM = b'Basic realm="syncd admin", charset="UTF-8"'


def authorized(header: bytes, user: bytes, token: bytes) -> bool:
    """``Bearer <token>`` or ``Basic base64(user:token)``; constant-time in the secret."""
    scheme, _, value = header.strip().partition(b" ")
    value = value.strip()
    if scheme.lower() == b"bearer":
        return hmac.compare_digest(value, token)
    if scheme.lower() == b"basic":
        try:
            given_user, sep, password = base64.b64decode(value, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both compared whatever the first gave: the time says nothing about which was wrong.
        return bool(sep) & hmac.compare_digest(given_user, user) & hmac.compare_digest(password, token)
    return False


class Guard:
    """ASGI middleware in front of every route: authentication, read-only methods, headers."""

    def __init__(self, app: Any, user: str, token: str):
        self.app, self.user, self.token = app, user.encode(), token.encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [h for h in message.get("headers", [])
                                      if h[0].lower() not in {k for k, _ in SECURITY_HEADERS}] + SECURITY_HEADERS
            await send(message)

        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not authorized(header, self.user, self.token):
            log.info("admin_refused", reason="no credentials" if not header else "bad credentials",
                     path=scope.get("path"), remote=(scope.get("client") or ("?",))[0])
            refusal = PlainTextResponse("authentication required", 401, headers={"WWW-Authenticate": REALM.decode()})
            await refusal(scope, receive, send_guarded)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await PlainTextResponse("read-only", 405, headers={"Allow": "GET, HEAD"})(scope, receive, send_guarded)
            return
        await self.app(scope, receive, send_guarded)


class AdminPages:
    """The routes; ``status`` is what ``/readyz`` answers (queue, lag, webhook flow, pollers)."""

    def __init__(self, store: Any, status: Callable[[], dict[str, Any]], current: CurrentValues | None = None):
        """``current``: both sides' values as the daemon last read them (None: not known here)."""
        self.store, self.status, self.current = store, status, current
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                      undefined=jinja2.StrictUndefined)
        self.env.filters["when"] = _when
        self.env.filters["age"] = _age

    def routes(self) -> list[Route]:
        return [Route("/", self.overview), Route("/links", self.links), Route("/links/{link_id:int}", self.link),
                Route("/queue", self.queue), Route("/dead", self.dead), Route("/admin.css", self.css)]

    def _page(self, name: str, code: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**values), code)

    # Plain functions: Starlette runs them in its thread pool (the store blocks).
    def overview(self, request: Request) -> Response:
        return self._page("overview.html", status=self.status(), page="overview")

    def links(self, request: Request) -> Response:
        q = request.query_params.get("q", "")[:200]
        after = _int(request.query_params.get("after"))
        try:
            with self.store.reading() as conn:
                found = queries.search_links(conn, q, after)
        except queries.BadSearch as e:
            return self._page("links.html", 400, page="links", q=q, error=str(e), found=None, after=after)
        return self._page("links.html", page="links", q=q, error=None, found=found, after=after)

    def link(self, request: Request) -> Response:
        link_id = request.path_params["link_id"]
        before = _int(request.query_params.get("before")) or None
        link = self.store.get_link(link_id)
        with self.store.reading() as conn:
            entries = history.read(conn, link_id=link_id, limit=queries.PAGE + 1, before=before)
        if link is None and not entries:
            return self._page("missing.html", 404, page="links", what=f"link {link_id}")
        base, revision = self.store.get_base(link_id) if link is not None else ({}, 0)
        audit = self.store.audit_log(link_id, limit=20)
        more = len(entries) > queries.PAGE
        entries = entries[:queries.PAGE]
        seen = self.current.of(link) if self.current is not None and link is not None else None
        return self._page("link.html", page="links", link=link, link_id=link_id, revision=revision,
                          base={k: (history.show(v.desk), history.show(v.tracker))
                                for k, v in sorted(base.items()) if not k.startswith("__")},
                          now=_now_rows(seen, base), seen=seen,
                          entries=entries, next_before=entries[-1].id if more else None, audit=audit)

    def queue(self, request: Request) -> Response:
        with self.store.reading() as conn:
            rows, oldest = queries.dirty_rows(conn), queries.oldest_dirty(conn)
        return self._page("queue.html", page="queue", rows=rows, oldest=oldest, depth=self.store.queue_depth(),
                          now=datetime.now(timezone.utc))

    def dead(self, request: Request) -> Response:
        return self._page("dead.html", page="dead", rows=self.store.dead_letters(limit=200),
                          total=self.store.count_dead_letters())

    def css(self, request: Request) -> Response:
        return Response((TEMPLATES / "admin.css").read_bytes(), media_type="text/css")


def _now_rows(seen: Seen | None, base: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Per mapped field: desk now, Jira now (as last read; "?" when not read), base desk, base Jira."""
    if seen is None or (seen.desk is None and seen.tracker is None):
        return []
    names = sorted({*(seen.desk.values if seen.desk else {}), *(seen.tracker.values if seen.tracker else {})})
    rows = []
    for name in names:
        entry = base.get(name)
        rows.append((name,
                     history.show(seen.desk.values.get(name)) if seen.desk else "?",
                     history.show(seen.tracker.values.get(name)) if seen.tracker else "?",
                     history.show(entry.desk) if entry is not None else "-",
                     history.show(entry.tracker) if entry is not None else "-"))
    return rows


def make_admin_app(store: Any, settings: AdminSettings, status: Callable[[], dict[str, Any]],
                   current: CurrentValues | None = None) -> Guard:
    if settings.token is None:
        raise ValueError("the admin page needs admin.token")
    pages = AdminPages(store, status, current)
    return Guard(Starlette(routes=pages.routes()), settings.user, settings.token.reveal())


def _int(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
