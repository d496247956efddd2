"""Zendesk Support connector (zenpy 2.0, email/API-token auth).

* zenpy builds ``https://{subdomain}.{domain}``; :func:`point_zenpy_at` points one
  client instance at any base URL (a simulator on loopback included) without the
  process-wide ``ZENPY_FORCE_*`` variables.
* zenpy sleeps on a 429 by itself, without bound; a ``requests`` hook raises it
  to us instead so our budget and retry policy decide.
* All field writes to one ticket go out as **one** PUT (Zendesk allows 100
  ticket updates a minute per account and 30 per ticket per user per 10 min).
* Comments cannot carry metadata, so a mirrored comment is recognised after a
  crash by its author (syncd's own user) and its exact body.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from html import escape as html_escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

import requests
import structlog
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment as ZComment
from zenpy.lib.api_objects import Ticket

from ..secrets import Secret, as_secret
from ..bounded import BoundedDict
from ..budget import Budget
from ..domain import Attachment, Comment, DeskItem, ItemRef, Value, vendor_refs
from ..errors import Ambiguous, NotFound, Refused, Unauthorized, VendorError
from ..retry import RetryPolicy
from .base import DeskWrite, FieldFailure, PollPage, polled_stamps
from .calls import Caller, keep_connections, raise_on_429, skip_environment_lookups, translate_requests_error

log = structlog.get_logger("syncd.zendesk")

NATIVE = ("status", "priority", "type", "subject")
UNKNOWN = object()   # a name not known without a call
CUSTOM_STATUS = "custom_status"   # locator: a custom ticket status, by agent label or id


class CustomStatusError(VendorError):
    """The mapping names custom statuses the Zendesk account does not have."""

    def __init__(self, detail: str):
        super().__init__("zendesk", "ListCustomStatuses", detail)
# Side-loads whose names syncd shows: kind -> (operation to ask for one, its answer's key).
# Per-record memories (names, stamps) are bounded: forgetting one costs one read later.
REMEMBERED = 50_000
SIDELOADED = {"users": ("showUser", "user"), "organizations": ("showOrganization", "organization")}


@dataclass(frozen=True)
class ZendeskWebhook:
    """What ``syncd webhooks install`` made or found on Zendesk. Zendesk generates the
    signing secret; the admin stores it where ``zendesk.webhook_secret`` points."""
    webhook_id: str
    trigger_id: str
    signing_secret: str = field(repr=False)


@dataclass(frozen=True)
class ZendeskAccess:
    url: str            # https://acme.zendesk.com, or http://127.0.0.1:PORT for the simulator
    email: str
    token: Secret   # a plain str is wrapped: the repr never shows it
    timeout: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", as_secret(self.token))


def point_zenpy_at(client: Zenpy, base_url: str) -> None:
    """Make every API object of ``client`` talk to ``base_url``."""
    parts = urlsplit(base_url)
    host = parts.netloc
    sub, _, domain = host.partition(".")
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen or not hasattr(obj, "__dict__"):
            return
        seen.add(id(obj))
        if hasattr(obj, "protocol") and hasattr(obj, "subdomain"):
            obj.protocol, obj.subdomain, obj.domain = parts.scheme, sub, domain
        for value in vars(obj).values():
            if type(value).__module__.startswith("zenpy.lib.api"):
                visit(value)

    visit(client)


def zendesk_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")


def custom_id(locator: str) -> int:
    return int(locator.split(":", 1)[1])


def ticket_fields(raw: Mapping[str, Any]) -> dict[str, Value]:
    """A ticket record's fields by locator (native, ``tags``, ``custom:<id>``), as read by
    the engine; from any answer that carries ticket records (show, list, incremental
    export). ``custom_status`` is not here: its label needs the account's statuses."""
    fields: dict[str, Value] = {name: (str(raw[name]) if raw.get(name) is not None else None) for name in NATIVE}
    fields["tags"] = tuple(sorted(raw.get("tags") or [])) or None
    for cf in raw.get("custom_fields") or []:
        value = cf.get("value")
        if isinstance(value, list):
            fields[f"custom:{cf['id']}"] = tuple(sorted(map(str, value))) or None
        else:
            fields[f"custom:{cf['id']}"] = None if value in (None, "") else str(value)
    return fields


class ZendeskConnector:
    system = "zendesk"

    def __init__(self, access: ZendeskAccess, budget: Budget | None = None, policy: RetryPolicy | None = None,
                 custom_status_values: Sequence[str] | None = None):
        """``custom_status_values``: None when the mapping does not use the
        ``custom_status`` locator; else the custom statuses it may write (agent
        labels or ids), each checked against the account's custom statuses here,
        at start (:class:`CustomStatusError` names the unknown ones)."""
        self.access = access
        self.call = Caller("zendesk", translate_requests_error, budget, policy)
        session = requests.Session()
        session.hooks["response"].append(raise_on_429)
        skip_environment_lookups(session, access.url)
        keep_connections(session)
        self.session = session              # zenpy adds the credentials to it (see ``client``)
        self._zenpy = threading.local()
        me = self.call("showCurrentUser", lambda: self.client.users.me())
        self.user_id: int = me.id
        self._names: BoundedDict[tuple[str, int], str] = BoundedDict(REMEMBERED)
        self._field_types: dict[int, str] = {}
        self.comment_count = CommentCount()
        # updated_at of each ticket after syncd's last field write to it (for the next safe update).
        self._stamps: BoundedDict[str, datetime] = BoundedDict(REMEMBERED)
        self.custom_statuses_used = custom_status_values is not None
        self._statuses: dict[int, Mapping[str, Any]] = {}
        if custom_status_values:
            problems = [p for p in (self._status_problem(v) for v in custom_status_values) if p]
            if problems:
                raise CustomStatusError("; ".join(problems))

    @property
    def client(self) -> Zenpy:
        """This thread's zenpy client (all of them share one HTTP session and its pool).

        zenpy keeps the object being written on the shared API object
        (``_dirty_object``, set when a ticket is serialized, cleaned when its answer
        comes back), so two workers updating tickets through one client cross: the
        request is made, then cleaning the other thread's object raises
        ``TypeError: 'Ticket' object is not iterable`` or ``KeyError: '_dirty'`` --
        a write that landed reported as failed. Seen under load in the calls
        benchmarks; tests/connectors/test_zendesk_threads.py."""
        client = getattr(self._zenpy, "client", None)
        if client is None:
            host = urlsplit(self.access.url).netloc
            sub, _, domain = host.partition(".")
            client = Zenpy(subdomain=sub, domain=domain, email=self.access.email, token=self.access.token.reveal(),
                           session=self.session, timeout=self.access.timeout, disable_cache=True)
            point_zenpy_at(client, self.access.url)
            self._zenpy.client = client
        return client

    @property
    def own_actor(self) -> str:
        """syncd's user id: the ``actor`` of the webhook body syncd installs."""
        return str(self.user_id)

    def _url(self, path: str) -> str:
        return f"{self.access.url.rstrip('/')}/api/v2/{path}"

    def _get(self, operation: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._request(operation, "GET", path, params=params)

    def _request(self, operation: str, method: str, path: str, body: Any = None,
                 params: Mapping[str, Any] | None = None) -> Any:
        def go() -> Any:
            r = self.session.request(method, self._url(path), json=body, params=params, timeout=self.access.timeout)
            if r.status_code >= 300:
                r.raise_for_status()
            return r.json() if r.content else None
        return self.call(operation, go)

    def _pages(self, operation: str, path: str, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Every page of a Zendesk list, first to last: the one place that pages Zendesk.
        Each page is asked for only when the one before has been used.

        Zendesk pages two ways, told apart by the answer:

        * cursor paging (``meta.has_more`` with ``meta.after_cursor``): the next page
          repeats ``params`` with ``page[after]`` (ask for ``page[size]`` in ``params``);
        * offset paging (``next_page``, an absolute URL): the next page asks its path
          and query.

        Either way the request goes to our own base URL, never to the host an answer
        names. A vendor that hands out a position already read would page forever:
        that is an error (:class:`~syncd.errors.VendorError`), not a silent stop.
        (The incremental export is not a list: :meth:`poll` reads one page per call.)"""
        where: tuple[str, Mapping[str, Any] | None] = (path, params)
        read: set[str] = set()
        while True:
            page = self._get(operation, *where) or {}
            yield page
            meta = page.get("meta") or {}
            if meta.get("has_more") and meta.get("after_cursor"):
                where = (path, {**params, "page[after]": str(meta["after_cursor"])})
            elif page.get("next_page"):
                where = (str(page["next_page"]).split("/api/v2/", 1)[1], None)
            else:
                return
            position = json.dumps(where, sort_keys=True)
            if position in read:
                raise VendorError("zendesk", operation, f"the next page is one already read ({where[0]})")
            read.add(position)

    # -- set-up (syncd webhooks install) -------------------------------------
    def install_webhook(self, name: str, endpoint: str, body_template: str) -> ZendeskWebhook:
        """Register (or reuse: safe to run again) the webhook ``name`` towards ``endpoint``
        and the trigger that sends ``body_template`` to it on every ticket create or change."""
        # Both lists page on real accounts (zd-triggers-amp.json): a "syncd" webhook or trigger
        # missed on page one would be created a second time.
        hook = next((h for h in self.list_webhooks() if h.get("name") == name and h.get("endpoint") == endpoint), None)
        if hook is None:
            hook = self._request("CreateWebhook", "POST", "webhooks", {"webhook": {
                "name": name, "endpoint": endpoint, "http_method": "POST", "request_format": "json",
                "status": "active", "subscriptions": ["conditional_ticket_events"]}})["webhook"]
        hook_id = str(hook["id"])
        if not hook_id.isalnum():   # it goes into a URL path below
            raise Refused("zendesk", "CreateWebhook", f"unexpected webhook id {hook_id[:40]!r}")
        secret = self._get("ShowWebhookSigningSecret", f"webhooks/{hook_id}/signing_secret")["signing_secret"]["secret"]
        trigger = next((t for t in self._all_triggers() if t.get("title") == name), None)
        actions = [{"field": "notification_webhook", "value": [hook_id, body_template]}]
        if trigger is None:
            trigger = self._request("CreateTrigger", "POST", "triggers.json", {"trigger": {
                "title": name, "active": True,
                "conditions": {"all": [], "any": [
                    {"field": "update_type", "operator": "is", "value": "Create"},
                    {"field": "update_type", "operator": "is", "value": "Change"}]},
                "actions": actions}})["trigger"]
        elif trigger.get("actions") != actions:
            # The public URL changed (a new webhook, with its own secret): the trigger
            # must call the new webhook, or every delivery fails the signature check.
            trigger = self._request("UpdateTrigger", "PUT", f"triggers/{int(trigger['id'])}.json",
                                    {"trigger": {"actions": actions}})["trigger"]
        return ZendeskWebhook(hook_id, str(trigger["id"]), secret)

    def list_webhooks(self) -> list[Mapping[str, Any]]:
        """Every webhook of the account (``install_webhook`` and ``syncd doctor`` look for syncd's)."""
        return [h for page in self._pages("ListWebhooks", "webhooks", {"page[size]": 100})
                for h in page.get("webhooks") or []]

    # -- what `syncd doctor` reads -------------------------------------------
    def ticket_field_types(self) -> dict[str, str]:
        """``custom:<id>`` → its type (``text``, ``multiselect``, ...), for every ticket field."""
        return {f"custom:{f['id']}": str(f.get("type") or "text")
                for page in self._pages("listTicketFields", "ticket_fields.json", {"page[size]": 100})
                for f in page.get("ticket_fields") or [] if isinstance(f, dict) and "id" in f}

    def rate_limit(self) -> int | None:
        """Requests a minute the account allows (``X-Rate-Limit`` of showCurrentUser,
        shared with every other integration), or None when Zendesk does not say."""
        def go() -> Any:
            r = self.session.get(self._url("users/me"), timeout=self.access.timeout)
            r.raise_for_status()
            return r.headers.get("X-Rate-Limit")
        limit = self.call("showCurrentUser", go)
        return int(limit) if limit and str(limit).isdigit() and int(limit) > 0 else None

    def web_sessions(self) -> list[Mapping[str, Any]]:
        """The web sessions of syncd's own user: a person signed in with its account
        (an API token opens none)."""
        return [s for page in self._pages("listSessions", "sessions", {"page[size]": 100})
                for s in page.get("sessions") or [] if s.get("user_id") == self.user_id]

    def _all_triggers(self) -> list[Any]:
        return [t for page in self._pages("ListTriggers", "triggers.json", {"page[size]": 100})
                for t in page.get("triggers") or []]

    # -- reads ------------------------------------------------------------
    def fetch(self, ref: ItemRef, known: Sequence[Comment] | None = None) -> DeskItem | None:
        """The ticket and its comments. ``known``: the comments syncd last saw on it
        (plus those it posted since); when the ticket's ``comment_count`` says there
        are no others, they are reused instead of listing the comments again."""
        sent = datetime.now(timezone.utc)
        try:
            answer = self._get("showTicket", f"tickets/{ref.id}.json", {"include": "comment_count,users,organizations"})
        except NotFound:
            return None
        raw = answer["ticket"]
        self._learn_names(answer)
        count = raw.get("comment_count")
        if known is not None and self.comment_count.trusts(count, len(known)):
            return replace(self._item(ref, raw, tuple(known)), observed_at=sent)
        comments = self._comments(ref.id)
        self.comment_count.learn(count, comments)
        return replace(self._item(ref, raw, comments), observed_at=sent)

    def _item(self, ref: ItemRef, raw: Mapping[str, Any], comments: tuple[Comment, ...]) -> DeskItem:
        return self._item_named(ref, raw, comments, self._name(raw.get("requester_id")),
                                self._name(raw.get("organization_id"), "organizations"))

    def _item_named(self, ref: ItemRef, raw: Mapping[str, Any], comments: tuple[Comment, ...],
                    requester: str | None, organization: str | None) -> DeskItem:
        fields = ticket_fields(raw)
        if self.custom_statuses_used:
            fields["custom_status"] = self._status_label(raw.get("custom_status_id"))
        return DeskItem(
            ref=ref, title=raw.get("subject") or "", url=self.agent_url(ref), status=raw.get("status") or "new",
            description=raw.get("description") or "",
            requester=requester, organization=organization,
            fields=fields, comments=comments, updated_at=zendesk_time(raw["updated_at"]) or datetime.now(timezone.utc),
            tags=tuple(sorted(raw.get("tags") or [])), due_at=zendesk_time(raw.get("due_at")),
        )

    def existing(self, ticket_ids: Sequence[str]) -> set[str]:
        """Which of these tickets exist: ``show_many``, up to 100 ids a call (a ticket that
        does not exist is left out of the answer). For checking many links at once
        (``links import``) at one call per hundred instead of two per ticket."""
        found: set[str] = set()
        ids = [i for i in dict.fromkeys(ticket_ids) if i.isdigit()]   # ids go into the query: digits only
        for lo in range(0, len(ids), 100):
            answer = self._get("TicketsShowMany", "tickets/show_many.json", {"ids": ",".join(ids[lo:lo + 100])})
            found |= {str(t["id"]) for t in answer.get("tickets") or [] if isinstance(t, dict) and "id" in t}
        return found

    def agent_url(self, ref: ItemRef) -> str:
        return f"{self.access.url.rstrip('/')}/agent/tickets/{ref.id}"

    def _comments(self, ticket_id: str) -> tuple[Comment, ...]:
        out: list[Comment] = []
        # Authors come side-loaded: no ShowUser call per new author.
        for page in self._pages("listTicketComments", f"tickets/{ticket_id}/comments.json",
                                {"page[size]": 100, "include": "users"}):
            self._learn_names(page)
            out.extend(self._comment(c) for c in page.get("comments", []))
        return tuple(out)

    def _comment(self, c: Mapping[str, Any]) -> Comment:
        return Comment(
            id=str(c["id"]), author=self._name(c.get("author_id")) or "Unknown",
            body=c.get("plain_body") or c.get("body") or "", public=bool(c.get("public", True)),
            created_at=zendesk_time(c["created_at"]) or datetime.now(timezone.utc),
            by_integration=c.get("author_id") == self.user_id,
            attachments=tuple(Attachment(a.get("file_name", "file"), a.get("content_url", ""),
                                         int(a.get("size") or 0), a.get("content_type") or "application/octet-stream")
                              for a in c.get("attachments") or []),
        )

    def _learn_names(self, answer: Mapping[str, Any]) -> None:
        """Remember the names of the users and organizations an answer side-loaded
        (``include=users,organizations``)."""
        for kind in SIDELOADED:
            for found in answer.get(kind) or []:
                if isinstance(found, dict) and isinstance(found.get("id"), int):
                    self._names[(kind, found["id"])] = found.get("name") or str(found["id"])

    def _known_name(self, ident: object, kind: str = "users") -> str | None | object:
        """What :meth:`_name` would give without asking Zendesk, or :data:`UNKNOWN`."""
        if ident is None:
            return None
        return self._names.get((kind, ident), UNKNOWN) if isinstance(ident, int) else UNKNOWN

    def _name(self, ident: int | None, kind: str = "users") -> str | None:
        """The name of a user (or organization): side-loaded, remembered, or asked for once.
        Only an integer id goes into the URL path (a vendor answer is input too)."""
        if ident is None:
            return None
        if not isinstance(ident, int) or isinstance(ident, bool) or not 0 < ident < 2**63:
            log.warning("vendor_id_refused", vendor="zendesk", operation=kind, ids=[str(ident)[:40]])
            return None
        known = self._names.get((kind, ident))
        if known is not None:
            return known
        operation, singular = SIDELOADED[kind]
        try:
            found = self._get(operation, f"{kind}/{ident}.json")[singular]
            name = found.get("name") or str(ident)
        except NotFound:
            name = str(ident)
        self._names[(kind, ident)] = name
        return name

    # -- writes -----------------------------------------------------------
    conditional_writes = True   # safe_update: a field write is refused (409) if the ticket changed

    def update_fields(self, ref: ItemRef, values: Mapping[str, Value],
                      expect: datetime | None = None) -> Sequence[FieldFailure]:
        """One PUT. With ``expect`` (the ``updated_at`` the values were planned from)
        it is a *safe update*: Zendesk refuses it with 409 (:class:`Conflict`) when
        someone changed the ticket since, instead of overwriting their edit."""
        ticket = self._ticket_with(ref, values, expect)
        if isinstance(ticket, FieldFailure):
            return [ticket]
        try:
            audit = self.call("updateTicket", lambda: self.client.tickets.update(ticket), target=f"ticket:{ref.id}")
        except VendorError as e:
            self._stamps.pop(ref.id, None)
            if e.retryable:
                raise
            return [FieldFailure(k, v, str(e)) for k, v in values.items()]
        self._learn_stamp(ref, audit)
        return _missing_fields(values, ticket.custom_fields or [], audit)

    def update_with_comment(self, ref: ItemRef, values: Mapping[str, Value], body: str, public: bool,
                            expect: datetime | None = None) -> DeskWrite:
        """Fields and a comment in one ``PUT /api/v2/tickets/{id}`` (Zendesk's update takes
        ``comment`` beside the fields; a safe update refused with 409 writes neither). A
        request Zendesk refuses outright (a field value it rejects: 422) wrote nothing, so
        the comment is then posted alone and every field reported refused."""
        ticket = self._ticket_with(ref, values, expect)
        if isinstance(ticket, FieldFailure):
            return DeskWrite(self.add_comment(ref, body, public), (ticket,))
        ticket.comment = ZComment(body=body, public=public, author_id=self.user_id)
        try:
            audit = self.call("updateTicket", lambda: self.client.tickets.update(ticket),
                              idempotent=False, target=f"ticket:{ref.id}")
        except VendorError as e:
            self._stamps.pop(ref.id, None)
            if e.retryable or isinstance(e, Ambiguous):
                raise
            failures = tuple(FieldFailure(k, v, str(e)) for k, v in values.items())
            return DeskWrite(self.add_comment(ref, body, public), failures)
        self._learn_stamp(ref, audit)
        return DeskWrite(self._comment_id(ref, body, audit),
                         tuple(_missing_fields(values, ticket.custom_fields or [], audit)))

    def _ticket_with(self, ref: ItemRef, values: Mapping[str, Value],
                     expect: datetime | None) -> Ticket | FieldFailure:
        """The update of ``values`` (a safe update with ``expect``), or the first locator
        that cannot be written (nothing is then sent)."""
        ticket = Ticket(id=int(ref.id))
        if expect is not None:
            ticket.safe_update = True
            ticket.updated_stamp = expect.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        custom: list[dict[str, Any]] = []
        for locator, value in values.items():
            if locator in NATIVE:
                setattr(ticket, locator, value)
            elif locator == "tags":
                ticket.tags = list(value or ())
            elif locator == "tags+":
                ticket.additional_tags = list(value or ())
            elif locator == "tags-":
                ticket.remove_tags = list(value or ())
            elif locator.startswith("custom:"):
                custom.append({"id": custom_id(locator), "value": self._custom_value(custom_id(locator), value)})
            elif locator == CUSTOM_STATUS:
                found = self._status_for(value)
                if isinstance(found, str):
                    return FieldFailure(locator, value, found)
                # Zendesk sets the status to the custom status's category itself.
                ticket.custom_status_id = found
            else:
                return FieldFailure(locator, value, f"unknown Zendesk locator {locator!r}")
        if custom:
            ticket.custom_fields = custom
        return ticket

    def _learn_stamp(self, ref: ItemRef, audit: Any) -> None:
        """The ticket's ``updated_at`` after syncd's write, from the answer (a later safe
        update is planned from it)."""
        stamp = zendesk_time(getattr(getattr(audit, "ticket", None), "updated_at", None) or "") \
            if audit is not None else None
        if stamp is None:
            self._stamps.pop(ref.id, None)
        else:
            self._stamps[ref.id] = stamp

    # -- custom ticket statuses (/api/v2/custom_statuses) ---------------------
    def _load_statuses(self) -> None:
        listed = self._get("ListCustomStatuses", "custom_statuses.json")
        self._statuses = {int(s["id"]): s for s in listed.get("custom_statuses") or []
                          if isinstance(s, dict) and isinstance(s.get("id"), int)}

    def _status_label(self, status_id: Any) -> str | None:
        if not isinstance(status_id, int) or isinstance(status_id, bool):
            return None
        if status_id not in self._statuses:
            self._load_statuses()   # one added since: read the list again
        found = self._statuses.get(status_id)
        return str(found.get("agent_label")) if found is not None else str(status_id)

    def _status_for(self, value: Value) -> int | str:
        """The id of the active custom status ``value`` names (its id, or its agent
        label, case-insensitive), or the reason there is none."""
        if not isinstance(value, str) or not value.strip():
            return f"custom_status must name one custom status, not {value!r}"
        if not self._statuses:
            self._load_statuses()
        wanted = value.strip()
        if wanted.isdigit() and int(wanted) in self._statuses and self._statuses[int(wanted)].get("active", True):
            return int(wanted)
        named = [i for i, s in self._statuses.items()
                 if str(s.get("agent_label", "")).lower() == wanted.lower() and s.get("active", True)]
        if len(named) == 1:
            return named[0]
        known = sorted(str(s.get("agent_label")) for s in self._statuses.values() if s.get("active", True))
        if named:
            return f"custom status {value!r} is ambiguous ({len(named)} active statuses carry that label): use its id"
        return f"no active custom status {value!r} (known: {', '.join(known)})"

    def _status_problem(self, value: str) -> str | None:
        found = self._status_for(value)
        return found if isinstance(found, str) else None

    def written_stamp(self, ref: ItemRef) -> datetime | None:
        """The ticket's ``updated_at`` right after syncd's last write to it (fields or a comment), if known."""
        return self._stamps.get(ref.id)

    def _custom_value(self, field_id: int, value: Value) -> Any:
        # Only a multiselect field takes a list; a text field shows several
        # values (e.g. fix versions) as comma-separated text.
        if not isinstance(value, tuple):
            return value
        if field_id not in self._field_types:
            raw = self._get("showTicketField", f"ticket_fields/{field_id}.json")["ticket_field"]
            self._field_types[field_id] = raw.get("type") or "text"
        return list(value) if self._field_types[field_id] == "multiselect" else ", ".join(value)

    def add_comment(self, ref: ItemRef, body: str, public: bool,
                    attachments: Sequence[Attachment] = ()) -> str:
        # Files the engine downloaded are uploaded; the others are links in the body.
        tokens = [self._upload(a) for a in attachments if a.data is not None]
        comment = ZComment(body=body, public=public, author_id=self.user_id)
        if tokens:
            comment.uploads = tokens
        audit = self.call("updateTicket", lambda: self.client.tickets.update(Ticket(id=int(ref.id), comment=comment)),
                          idempotent=False, target=f"ticket:{ref.id}")
        self._learn_stamp(ref, audit)   # a comment moves the ticket's updated_at too
        return self._comment_id(ref, body, audit)

    def _comment_id(self, ref: ItemRef, body: str, audit: Any) -> str:
        """The id of the comment an update just posted: from the answer's audit, else looked up."""
        for event in (audit.audit.events if audit is not None and audit.audit is not None else []):
            event = event if isinstance(event, dict) else event.to_dict()
            if event.get("type") == "Comment":
                return str(event["id"])
        # The comment is posted: failing to name it is not a refusal (that would drop its
        # intent and post it again); recovery finds it by its body.
        try:
            found = self.find_comment(ref, body, datetime.fromtimestamp(time.time() - 300, timezone.utc))
        except VendorError as e:
            raise Ambiguous("zendesk", "updateTicket", f"comment posted; finding its id failed: {e}") from e
        if found is None:
            raise Ambiguous("zendesk", "updateTicket", "comment posted but not found in the ticket audit")
        return found

    def _upload(self, attachment: Attachment) -> str:
        data = attachment.data or b""
        upload = self.call("uploadFiles", lambda: self.client.attachments.upload(
            io.BytesIO(data), target_name=attachment.name, content_type=attachment.content_type))
        return upload.token

    def download(self, attachment: Attachment) -> bytes:
        def go() -> bytes:
            r = self.session.get(attachment.url, timeout=self.access.timeout)
            r.raise_for_status()
            return r.content
        return self.call("downloadAttachment", go)

    def find_comment(self, ref: ItemRef, body: str, since: datetime) -> str | None:
        found = self.find_comments(ref, body, since)
        return found[0] if found else None

    def find_comments(self, ref: ItemRef, body: str, since: datetime) -> list[str]:
        """Ids of syncd's comments with exactly this body at or after ``since``, oldest first."""
        return [c.id for c in self._comments(ref.id)
                if c.by_integration and c.created_at >= since.replace(microsecond=0) and c.body.strip() == body.strip()]

    def retract_comment(self, ref: ItemRef, comment_id: str) -> bool:
        """Hide a comment syncd posted twice; Zendesk cannot delete a comment. It is made
        private (``MakeTicketCommentPrivate``: out of the customer's view in the help centre;
        an email already sent stays sent), then its whole text is redacted
        (``RedactTicketCommentInAgentWorkspace``: every character becomes ▇, permanently).
        Both PUTs are idempotent. False when the account refuses the redaction (it needs the
        Agent Workspace, and agents allowed to delete tickets or a role allowed to redact):
        the comment is then private but keeps its text."""
        cid = _comment_id(comment_id)
        self._request("makeTicketCommentPrivate", "PUT", f"tickets/{int(ref.id)}/comments/{cid}/make_private.json")
        html = next((c.get("html_body") or "" for page in self._pages(
            "listTicketComments", f"tickets/{int(ref.id)}/comments.json", {"page[size]": 100})
            for c in page.get("comments", []) if str(c.get("id")) == str(cid)), None)
        if html is None:
            return False   # gone meanwhile (the ticket was deleted): nothing left to hide
        try:
            self._request("redactTicketCommentInAgentWorkspace", "PUT", f"comment_redactions/{cid}.json",
                          {"ticket_id": int(ref.id), "html_body": redact_all(html)})
        except (Refused, Unauthorized) as e:   # 403 without the permission, 422/400 otherwise
            log.warning("zendesk_redaction_refused", ticket=ref.id, comment=cid, error=str(e))
            return False
        return True

    # -- polling ----------------------------------------------------------
    def poll(self, cursor: str | None) -> PollPage:
        """Cursor-based incremental export: tickets updated at or after the start time
        (included), then after each ``after_cursor``. Zendesk holds back the last minute,
        so an item changed just now appears on a later poll; the cursor is Zendesk's
        ``after_cursor`` (or a start time, a minute before now, before the first page).

        One page per call, not through :meth:`_pages`: the position must be stored with
        the page's items marked dirty (the poller does both in one transaction), so
        the stream is resumed from the stored cursor, never from a generator in memory;
        ``more`` asks the poller for the next page at once."""
        if cursor is None:
            return PollPage((), json.dumps({"start_time": int(time.time()) - 60}))
        state = json.loads(cursor)
        params = {"cursor": state["cursor"]} if "cursor" in state else {"start_time": state["start_time"]}
        params["per_page"] = 1000
        params["include"] = "comment_count"   # what lets an answer's ticket stand in for a read
        sent = datetime.now(timezone.utc)
        page = self._get("incrementalTicketExport", "incremental/tickets/cursor.json", params)
        tickets = [t for t in page.get("tickets", []) if isinstance(t, dict)]
        refs, refused = vendor_refs("zendesk", [t.get("id") for t in tickets])
        if refused:
            log.warning("vendor_id_refused", vendor="zendesk", operation="incrementalTicketExport", ids=refused)
        after = page.get("after_cursor")
        new_state = {"cursor": after} if after else state
        views = self._views(refs, tickets, sent)
        return PollPage(refs, json.dumps(new_state), more=not page.get("end_of_stream", True),
                        stamps=polled_stamps("zendesk", tickets, lambda t: zendesk_time(str(t.get("updated_at") or ""))),
                        comment_counts={ref: count for ref, (_, count) in views.items()},
                        views={ref: item for ref, (item, _) in views.items()})

    def _views(self, refs: Sequence[ItemRef], tickets: Sequence[Mapping[str, Any]],
               sent: datetime) -> dict[ItemRef, tuple[DeskItem, int]]:
        """The export's tickets as a read would show them, with their comment counts, for
        the poller to compare with what syncd last wrote (:mod:`syncd.poll_stamps`): only
        where the answer says all a read would but the comments themselves — the comment
        count once it is known to count internal notes too, the requester's and
        organization's names already known (a view never costs a call). The views carry no
        comments. ``observed_at`` is when the export was asked for: the ticket was at least
        as new as this then."""
        if self.comment_count.verdict is not True:
            return {}
        wanted = {ref.id: ref for ref in refs}
        views: dict[ItemRef, tuple[DeskItem, int]] = {}
        for raw in tickets:
            ref = wanted.get(str(raw.get("id")))
            count = raw.get("comment_count")
            if ref is None or ref in views or not isinstance(count, int) or not 0 <= count < CommentCount.LIMIT:
                continue
            names = [self._known_name(raw.get("requester_id")),
                     self._known_name(raw.get("organization_id"), "organizations")]
            if UNKNOWN in names or not isinstance(raw.get("updated_at"), str):
                continue
            try:
                item = self._item_named(ref, raw, (), names[0], names[1])  # type: ignore[arg-type]
            except (ValueError, TypeError, KeyError):
                continue
            views[ref] = (replace(item, observed_at=sent), count)
        return views


class CommentCount:
    """Whether a ticket's ``comment_count`` (the ``include=comment_count`` sideload)
    can stand in for listing its comments. Trusted only once seen to count every
    comment, internal notes included: a ticket listed with both kinds whose count
    equalled the full list. Seen to count public ones only, it is never trusted
    (equal numbers could then hide a new comment)."""

    LIMIT = 10_000   # Zendesk counts approximately past 100,000; stay far below
    SAID = {"all": True, "public": False}   # how a verdict is written down (see :mod:`syncd.learned`)

    def __init__(self) -> None:
        self.verdict: bool | None = None
        # Told of every new verdict, so that it outlives the process: learning it takes a
        # listing of a ticket with an internal note, and until then no poll view is trusted.
        self.on_change: Callable[[str], None] | None = None

    def recall(self, said: str | None) -> None:
        """Take a verdict written down by an earlier process (unknown words are ignored)."""
        if said in self.SAID:
            self.verdict = self.SAID[said]

    def trusts(self, count: object, known: int) -> bool:
        return self.verdict is True and isinstance(count, int) and count == known < self.LIMIT

    def learn(self, count: object, comments: Sequence[Comment]) -> None:
        if self.verdict is False or not isinstance(count, int):
            return
        public = sum(1 for c in comments if c.public)
        if public == len(comments):
            return      # no internal note: both meanings give the same number
        if count == len(comments):
            self._decide(True)
        elif count == public:
            self._decide(False)

    def _decide(self, verdict: bool) -> None:
        if verdict is self.verdict:
            return
        self.verdict = verdict
        if self.on_change is not None:
            self.on_change("all" if verdict else "public")


def _unique(refs: Iterable[ItemRef]) -> tuple[ItemRef, ...]:
    return tuple(dict.fromkeys(refs))


def _missing_fields(values: Mapping[str, Value], custom: list[dict[str, Any]], audit: Any) -> list[FieldFailure]:
    """Zendesk answers 200 to a write naming a ticket field that does not exist and drops
    that value silently; the ticket it returns lists every field the account has, so a
    written id missing there was not written (a mapping with a wrong id, issue 13)."""
    returned = getattr(getattr(audit, "ticket", None), "custom_fields", None)
    if not custom or not isinstance(returned, list):
        return []
    present = {int(f["id"]) for f in returned if isinstance(f, dict) and "id" in f}
    return [FieldFailure(f"custom:{c['id']}", values.get(f"custom:{c['id']}"),
                        f"Zendesk has no ticket field {c['id']} (fix the id in the mapping; `syncd doctor` "
                        "checks every mapped field)")
            for c in custom if int(c["id"]) not in present]


def _comment_id(text: str) -> int:
    """A Zendesk comment id (digits) before it becomes part of a URL."""
    if not text.isdigit():
        raise ValueError(f"not a Zendesk comment id: {text!r}")
    return int(text)


class _Redactor(HTMLParser):
    """Re-emits a comment's ``html_body`` with every text run inside ``<redact>`` and every
    link or image marked ``redact``: Zendesk's way to say "redact all of it"
    (RedactTicketCommentInAgentWorkspace in vendor-specs/zendesk-support.yaml)."""

    MARKED = {"a", "img"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, ">"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, " />"))

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(f"<redact>{data}</redact>" if data.strip() else data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"<redact>&{name};</redact>")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"<redact>&#{name};</redact>")

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], close: str) -> str:
        shown = "".join(f" {k}" if v is None else f' {k}="{html_escape(v)}"' for k, v in attrs)
        return f"<{tag}{shown}{' redact' if tag in self.MARKED else ''}{close}"


def redact_all(html: str) -> str:
    parser = _Redactor()
    parser.feed(html)
    parser.close()
    return "".join(parser.out)
