"""Intercom desk connector (python-intercom 5.x, access-token auth).

Items: ``intercom:conversation:<id>`` and ``intercom:ticket:<id>``.

Choices and Intercom quirks this module lives with:

* **Intercom-Version** is sent on every request (the SDK never sends it, and an
  answer in another version's shape may not fit its models).
* The SDK's own retries stay off (its default); every call goes through one
  :class:`~syncd.connectors.calls.Caller` (budget, our retry policy, error
  translation). A 429 carries ``X-RateLimit-Reset`` (unix time), which
  :func:`~syncd.connectors.calls.retry_after_seconds` turns into a wait.
* Replies are POSTs that Intercom does not deduplicate: when a reply is retried
  inside one call (5xx, timeout), the retry first looks for the part the failed
  attempt may have written, so one ``add_comment`` never posts twice.
* ``GET /conversations/{id}`` shows only the **500 newest parts**; older
  comments are invisible to :meth:`IntercomConnector.fetch` and
  :meth:`IntercomConnector.find_comment` (mirroring is about recent ones).
* Bodies are HTML. We read them as plain text (:func:`html_to_text`) and write
  plain text as escaped ``<p>`` paragraphs (:func:`text_to_html`); comments are
  compared after that same round trip, so Intercom's own markup does not hide a
  comment syncd wrote.
* The conversation's source message is its first comment (id = the source id).
  ``comment`` parts are public, ``note`` parts are not; state changes,
  assignments etc. are not comments. ``by_integration`` means the author is the
  configured admin (``IntercomAccess.admin_id``).
* Field values are canonical (``None``/``str``/sorted ``tuple``): custom
  attribute numbers and booleans read as strings (``"3"``, ``"true"``) and are
  written back in the attribute's declared type; a tuple is written to a text
  attribute comma separated.
* ``state`` is open|closed|snoozed. Snoozing needs a time the mapping cannot
  give: it snoozes for ``snooze_seconds`` (a day). On tickets ``state`` is
  written through the ticket's ``open`` flag.
* ``ticket_state`` reads as the state's *category* (submitted, in_progress,
  waiting_on_customer, resolved — stable across workspaces); a write accepts a
  category or a state's internal label.
* Tickets do not show their tags in API answers, so only ``tags+`` (add) works
  on tickets; ``tags`` (replace) is refused there, and a ticket item says
  ``tags`` is not applicable (``DeskItem.not_applicable``), as a conversation
  says of ``ticket_state`` and ``ticket_attr:``.
* On a ticket ``attr:<name>`` reads and writes the ticket attribute ``<name>``
  (same as ``ticket_attr:<name>``), so one mapping serves both kinds.
* A ticket write carrying ``ticket_state`` and ``state`` writes the ticket
  state only: it decides open/closed itself (resolved closes).
* Polling searches conversations and tickets with ``updated_at > since``
  (Intercom's ``>`` includes equality; its search index lags a little, hence
  the overlap). python-intercom 5.0.1's search pager resends the first page, so
  we follow ``pages.next.starting_after`` ourselves, one page per stream per
  :meth:`IntercomConnector.poll` call.
* Contact names and companies are cached for ``person_ttl`` seconds: they
  change rarely and cost two calls each.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import httpx
import structlog
from intercom import (AdminReplyConversationRequest, AdminReplyTicketRequest, Intercom,
                      SingleFilterSearchRequest, StartingAfterPaging)
from intercom.conversations import (ConversationsManageRequestBody_Close, ConversationsManageRequestBody_Open,
                                    ConversationsManageRequestBody_Snoozed)
from intercom.core.api_error import ApiError

from ..bounded import BoundedDict
from ..budget import Budget
from ..domain import Attachment, Comment, DeskItem, ItemRef, Value, vendor_refs
from ..errors import Ambiguous, NotFound, Refused, Transient, VendorError
from ..fencing import before_write
from ..retry import RetryPolicy
from ..secrets import Secret, as_secret
from .base import DeskWrite, FieldFailure, PollPage, polled_stamps
from .calls import Caller, error_for_status

log = structlog.get_logger("syncd.intercom")

REMEMBERED = 50_000   # contacts remembered (name, company); forgetting one costs one read later
CONVERSATION = "intercom:conversation"
TICKET = "intercom:ticket"
COMMENT_PARTS = {"comment": True, "note": False}   # part_type → public
# A teammate's reply written together with an action ("reply and close", a reply
# that assigns or reopens) arrives as the action's part carrying the reply's body:
# recorded as part_type "open" (../shared/realworld/intercom/webhook/iw-conv-admin-replied.json,
# 2020) and "assignment" (iw-conv-admin-replied-zulip.json, 2019; iw-ticket-admin-replied.json,
# 2026). Such a part with a body is a public reply; without one it is only the action.
REPLY_ACTION_PARTS = frozenset({"assignment", "open", "close", "snoozed", "unsnoozed",
                                "assign_and_reopen", "assign_and_unassign"})
STATES = ("open", "closed", "snoozed")
JSON = dict[str, Any]
EPOCH = datetime.fromtimestamp(0, timezone.utc)
RETRY_MATCH_SECONDS = 60


@dataclass(frozen=True)
class IntercomAccess:
    url: str              # https://api.intercom.io (or .eu./.au.), or the simulator's base URL
    token: Secret   # a plain str is wrapped: the repr never shows it
    admin_id: str         # the admin syncd writes as; its parts are ``by_integration``
    api_version: str = "2.14"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", as_secret(self.token))


# -- error translation -------------------------------------------------------

def translate_intercom_error(vendor: str, operation: str, error: BaseException) -> VendorError | None:
    """SDK/httpx exceptions → :mod:`syncd.errors`; ``None`` for anything else."""
    if isinstance(error, ApiError):
        headers = dict(error.headers or {})
        return error_for_status(vendor, operation, error.status_code or 0, headers, _error_message(error.body))
    if isinstance(error, httpx.ReadTimeout):
        return Ambiguous(vendor, operation, f"{type(error).__name__}: no answer in time, the request may have been carried out")
    if isinstance(error, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
        return Transient(vendor, operation, type(error).__name__)
    return None


def _error_message(body: Any) -> str:
    """The first message of Intercom's ``error.list``, whatever shape the SDK left it in."""
    data = _plain(body)
    if isinstance(data, dict):
        errors = data.get("errors") or []
        if errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0].get("code") or "error")
        return str(data.get("message") or data)[:300]
    return str(data)[:300]


# -- HTML <-> plain text -----------------------------------------------------

_BLOCKS = frozenset({"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
                     "blockquote", "pre", "tr", "table"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self._pre = 0
        self._after_br = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.lines.append("")
            self._after_br = True
            return
        if tag in _BLOCKS:
            if self.lines[-1].strip():
                self.lines.append("")
            self._pre += tag == "pre"
        self._after_br = False

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            # "<p><br></p>" is how editors write an empty line: one line, not two.
            if not (self._after_br and not self.lines[-1]):
                self.lines.append("")
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
        self._after_br = False

    def handle_data(self, data: str) -> None:
        if self._pre:
            first, *rest = data.split("\n")
            self.lines[-1] += first
            self.lines.extend(rest)
        else:
            self.lines[-1] += re.sub(r"\s+", " ", data)
        self._after_br = self._after_br and not data.strip()


def html_to_text(body: str | None) -> str:
    """Intercom HTML as plain text: one line per paragraph/``<br>``, entities decoded."""
    if not body:
        return ""
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    lines = [line.strip() for line in parser.lines]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def text_to_html(text: str) -> str:
    """Plain text as escaped ``<p>`` paragraphs, one per line."""
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.strip().split("\n"))


# -- small pure helpers ------------------------------------------------------

def _plain(obj: Any) -> Any:
    """An SDK model as plain JSON data (dicts and lists)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "dict"):
        return _plain(obj.dict())
    return obj


def epoch(ts: Any) -> datetime:
    return datetime.fromtimestamp(int(ts or 0), timezone.utc)


def canonical(value: Any) -> Value:
    """An Intercom attribute value in syncd's canonical form."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return tuple(sorted(str(v) for v in value if v not in (None, ""))) or None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def coerce(value: Value, data_type: str | None) -> Any:
    """A canonical value in the attribute's declared type. Raises ``ValueError``.

    An empty text attribute is written as ``""``: the API takes no ``null`` there."""
    if value is None:
        return "" if data_type in (None, "string", "list") else None
    text = ", ".join(value) if isinstance(value, tuple) else value
    if data_type in ("integer", "date", "datetime"):
        try:
            return int(text)
        except ValueError:
            if data_type == "integer":
                raise
            return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    if data_type in ("float", "decimal"):
        return float(text)
    if data_type == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{text!r} is not a boolean")
        return lowered in ("true", "1", "yes")
    return text


def web_url(api_url: str, app_id: str, item_id: str) -> str:
    """The inbox page of a conversation or ticket (tickets live in the same inbox)."""
    parts = urlsplit(api_url)
    host = parts.netloc
    if host.endswith("intercom.io"):
        base = "https://" + host.replace("api.", "app.", 1).replace("intercom.io", "intercom.com")
    else:   # a simulator: its own base URL
        base = api_url.rstrip("/")
    return f"{base}/a/inbox/{app_id}/inbox/conversation/{item_id}"


def part_public(part: JSON) -> bool | None:
    """Whether a part is a public reply (True), a note (False) or no comment (None).

    Decided by its type, not by the presence of a body: bots write bodies on
    parts that are no one's message (``channel_and_reply_time_expectation``,
    recorded in ../shared/realworld/intercom/webhook/iw-ticket-created.json)."""
    kind = part.get("part_type") or ""
    if kind in COMMENT_PARTS:
        return COMMENT_PARTS[kind]
    author = part.get("author") or {}
    if kind in REPLY_ACTION_PARTS and author.get("type") == "admin" and html_to_text(part.get("body")):
        return True
    return None


def part_comment(part: JSON, admin_id: str) -> Comment | None:
    """A conversation/ticket part as a comment, or ``None`` for non-comment parts."""
    public = part_public(part)
    if public is None:
        return None
    return _comment(part, public, admin_id)


def _comment(part: JSON, public: bool, admin_id: str) -> Comment:
    author = part.get("author") or {}
    return Comment(
        id=str(part["id"]), author=author.get("name") or author.get("email") or str(author.get("id") or "Unknown"),
        body=html_to_text(part.get("body")), public=public, created_at=epoch(part.get("created_at")),
        by_integration=author.get("type") == "admin" and str(author.get("id")) == admin_id,
        attachments=tuple(Attachment(a.get("name") or "file", a.get("url") or "", int(a.get("filesize") or 0),
                                     a.get("content_type") or "application/octet-stream")
                          for a in part.get("attachments") or []),
    )


def conversation_parts(raw: JSON) -> list[JSON]:
    return list((raw.get("conversation_parts") or {}).get("conversation_parts") or [])


def ticket_parts(raw: JSON) -> list[JSON]:
    return list((raw.get("ticket_parts") or {}).get("ticket_parts") or [])


def conversation_comments(raw: JSON, admin_id: str) -> tuple[Comment, ...]:
    source = raw.get("source") or {}
    out = [_comment(source, True, admin_id)] if source.get("id") else []
    out.extend(c for c in (part_comment(p, admin_id) for p in conversation_parts(raw)) if c is not None)
    return tuple(out)


def ticket_comments(raw: JSON, admin_id: str) -> tuple[Comment, ...]:
    return tuple(c for c in (part_comment(p, admin_id) for p in ticket_parts(raw)) if c is not None)


def conversation_title(raw: JSON) -> str:
    source = raw.get("source") or {}
    for candidate in (raw.get("title"), html_to_text(source.get("subject"))):
        if candidate:
            return str(candidate)
    first = html_to_text(source.get("body")).split("\n", 1)[0]
    return first[:200]


def conversation_fields(raw: JSON) -> dict[str, Value]:
    fields: dict[str, Value] = {
        "state": raw.get("state") or ("open" if raw.get("open", True) else "closed"),
        "tags": tuple(sorted(t["name"] for t in (raw.get("tags") or {}).get("tags") or [])) or None,
    }
    for name, value in (raw.get("custom_attributes") or {}).items():
        fields[f"attr:{name}"] = canonical(value)
    return fields


def ticket_state_of(raw: JSON) -> str | None:
    state = raw.get("ticket_state")
    if isinstance(state, dict):
        return state.get("category") or state.get("internal_label")
    return state   # older versions answer the category as a string


def ticket_fields(raw: JSON) -> dict[str, Value]:
    snoozed = bool(raw.get("snoozed_until")) and raw.get("open", True)
    fields: dict[str, Value] = {
        "state": "snoozed" if snoozed else ("open" if raw.get("open", True) else "closed"),
        "ticket_state": ticket_state_of(raw),
    }
    for name, value in (raw.get("ticket_attributes") or {}).items():
        # ``attr:<name>`` too, so one mapping serves conversations and tickets
        # (a ticket type given the same attribute names gets the same sync).
        fields[f"ticket_attr:{name}"] = fields[f"attr:{name}"] = canonical(value)
    return fields


def contact_companies(page: Any) -> list[JSON]:
    """The companies of a contact's company list. Intercom's own 2.14 example
    (../shared/realworld/intercom/api/ia-contact-companies-doc.json) lists them
    under ``data``; python-intercom 5.0.1 reads only ``companies`` (and keeps
    ``data`` as an extra field), so both are read from the raw answer."""
    raw = _plain(getattr(page, "response", None)) or {}
    listed = raw.get("data") or raw.get("companies") or [] if isinstance(raw, dict) else []
    if not listed:
        listed = [_plain(c) for c in getattr(page, "items", None) or []]
    return [c for c in listed if isinstance(c, dict)]


def ticket_attr_types(raw: JSON) -> dict[str, str]:
    """Attribute name → data_type of a ticket's type.

    The real list is ``{"type": "list", "data": [...]}`` (a 2026 ticket in
    ../shared/realworld/intercom/webhook/iw-ticket-created.json, and Intercom's
    own 2.14 example in ../shared/realworld/intercom/api/ia-ticket-doc.json);
    the SDK's model names the list ``ticket_type_attributes``, read too."""
    listing = (raw.get("ticket_type") or {}).get("ticket_type_attributes") or {}
    attrs = listing.get("data") or listing.get("ticket_type_attributes") or [] if isinstance(listing, dict) else []
    return {str(a["name"]): a.get("data_type") or "string" for a in attrs if isinstance(a, dict) and a.get("name")}


def _unique(refs: Iterable[ItemRef]) -> tuple[ItemRef, ...]:
    return tuple(dict.fromkeys(refs))


@dataclass(frozen=True)
class Person:
    name: str | None
    organization: str | None


# -- the connector -----------------------------------------------------------

class IntercomConnector:
    system = "intercom"
    # Intercom has no conditional update: a field write is always planned from a fresh read.
    conditional_writes = False

    def __init__(self, access: IntercomAccess, budget: Budget | None = None, policy: RetryPolicy | None = None,
                 page_size: int = 150, poll_overlap: float = 30.0, snooze_seconds: int = 86400,
                 person_ttl: float = 600.0):
        self.access = access
        self.admin_id = str(access.admin_id)
        self.page_size = page_size
        self.poll_overlap = poll_overlap
        self.snooze_seconds = snooze_seconds
        self.person_ttl = person_ttl
        self.call = Caller("intercom", translate_intercom_error, budget, policy)
        self.client = Intercom(token=access.token.reveal(), base_url=access.url.rstrip("/"),
                               headers={"Intercom-Version": access.api_version}, timeout=access.timeout)
        self._lock = threading.Lock()
        self._app_id: str | None = None
        self._people: BoundedDict[str, tuple[float, Person]] = BoundedDict(REMEMBERED)
        self._tag_ids: dict[str, str] = {}
        self._attr_types: dict[str, str] = {}
        self._states: list[JSON] = []

    # -- reads ------------------------------------------------------------
    def fetch(self, ref: ItemRef, known: Sequence[Comment] | None = None) -> DeskItem | None:
        """``known`` is not needed: a conversation or ticket carries its parts."""
        sent = datetime.now(timezone.utc)   # observed_at: tells a settled read (syncd.poll_stamps)
        try:
            raw = self._get_raw(ref)
        except NotFound:
            return None
        item = self._ticket_item(ref, raw) if ref.kind == TICKET else self._conversation_item(ref, raw)
        return replace(item, observed_at=sent)

    def _get_raw(self, ref: ItemRef) -> JSON:
        operation = "getTicket" if ref.kind == TICKET else "retrieveConversation"
        return self.call(operation, lambda: self._read(ref))

    def _read(self, ref: ItemRef) -> JSON:
        """One GET without the Caller, for use inside another call's attempt."""
        if ref.kind == TICKET:
            return _plain(self.client.tickets.get(ref.id))
        return _plain(self.client.conversations.find(ref.id))

    def _conversation_item(self, ref: ItemRef, raw: JSON) -> DeskItem:
        fields = conversation_fields(raw)
        person = self._person(_first_contact(raw))
        return DeskItem(
            ref=ref, title=conversation_title(raw), url=self.item_url(ref), status=str(fields["state"]),
            description=html_to_text((raw.get("source") or {}).get("body")),
            requester=person.name, organization=person.organization, fields=fields,
            comments=conversation_comments(raw, self.admin_id), updated_at=epoch(raw.get("updated_at")),
            tags=fields["tags"] or (),   # type: ignore[arg-type]
            not_applicable=frozenset({"ticket_state", "ticket_attr:"}),
        )

    def _ticket_item(self, ref: ItemRef, raw: JSON) -> DeskItem:
        fields = ticket_fields(raw)
        attrs = raw.get("ticket_attributes") or {}
        person = self._person(_first_contact(raw))
        return DeskItem(
            ref=ref, title=str(attrs.get("_default_title_") or ""), url=self.item_url(ref),
            status=str(fields["ticket_state"] or fields["state"]),
            description=html_to_text(str(attrs.get("_default_description_") or "")),
            requester=person.name, organization=person.organization, fields=fields,
            comments=ticket_comments(raw, self.admin_id), updated_at=epoch(raw.get("updated_at")),
            not_applicable=frozenset({"tags"}),   # the API never shows a ticket's tags
        )

    @property
    def own_actor(self) -> str:
        """How a webhook names syncd's admin: ``admin:<id>`` (a contact id could collide)."""
        return f"admin:{self.admin_id}"

    def item_url(self, ref: ItemRef) -> str:
        return web_url(self.access.url, self.app_id(), ref.id)

    agent_url = item_url   # the name the engine asks for (DeskConnector.agent_url)

    def written_stamp(self, ref: ItemRef) -> datetime | None:
        """Unknown: without conditional writes the engine never plans from a remembered copy."""
        return None

    def rate_limit(self) -> int | None:
        """Requests the app may make per 10-second window (``X-RateLimit-Limit`` of
        identifyAdmin; 10,000/min ≈ 1,667), or None when Intercom does not say."""
        def go() -> str | None:
            headers = self.client.admins.with_raw_response.identify().headers   # a plain dict: lower-case names
            return {k.lower(): v for k, v in headers.items()}.get("x-ratelimit-limit")
        limit = self.call("identifyAdmin", go)
        return int(limit) if limit and str(limit).isdigit() and int(limit) > 0 else None

    def app_id(self) -> str:
        """The workspace's app id (in every inbox URL), asked for once: ``identifyAdmin``."""
        if self._app_id is None:
            me = _plain(self.call("identifyAdmin", lambda: self.client.admins.identify()))
            self._app_id = str((me.get("app") or {}).get("id_code") or "app")
        return self._app_id

    def _person(self, contact_id: str | None) -> Person:
        if contact_id is None:
            return Person(None, None)
        with self._lock:
            cached = self._people.get(contact_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            contact = _plain(self.call("ShowContact", lambda: self.client.contacts.find(contact_id)))
            page = self.call("listCompaniesForAContact",
                             lambda: self.client.contacts.list_attached_companies(contact_id))
        except NotFound:
            return Person(None, None)
        org = next((c["name"] for c in contact_companies(page) if c.get("name")), None)
        person = Person(contact.get("name") or contact.get("email") or None, org)
        with self._lock:
            self._people[contact_id] = (time.monotonic() + self.person_ttl, person)
        return person

    # -- field writes -----------------------------------------------------
    def update_fields(self, ref: ItemRef, values: Mapping[str, Value]) -> Sequence[FieldFailure]:
        writer = self._ticket_writes if ref.kind == TICKET else self._conversation_writes
        failures = writer(ref, values)
        log.info("intercom_fields_written", item=str(ref), locators=sorted(values),
                 refused=[f.locator for f in failures])
        return failures

    def _conversation_writes(self, ref: ItemRef, values: Mapping[str, Value]) -> list[FieldFailure]:
        failures: list[FieldFailure] = []
        attrs = {k: v for k, v in values.items() if k.startswith("attr:")}
        if attrs:
            failures += self._write_attrs(ref, attrs)
        for locator in ("tags", "tags+"):
            if locator in values:
                failures += self._guard({locator: values[locator]},
                                        lambda loc=locator: self._write_conversation_tags(ref, values[loc], loc))
        if "state" in values:
            failures += self._guard({"state": values["state"]}, lambda: self._write_state(ref, values["state"]))
        failures += [FieldFailure(k, v, f"unknown Intercom conversation locator {k!r}")
                     for k, v in values.items() if not (k.startswith("attr:") or k in ("tags", "tags+", "state"))]
        return failures

    def _guard(self, locators: Mapping[str, Value], write: Callable[[], None]) -> list[FieldFailure]:
        """Run one write; a refusal becomes failures of its locators, a retryable error propagates."""
        try:
            write()
        except VendorError as e:
            if e.retryable:
                raise
            return [FieldFailure(k, v, str(e)) for k, v in locators.items()]
        except ValueError as e:   # a value that cannot take the attribute's type
            return [FieldFailure(k, v, str(e)) for k, v in locators.items()]
        return []

    def _split(self, locators: Mapping[str, Value], write: Callable[[Mapping[str, Value]], None]) -> list[FieldFailure]:
        """All locators in one call; when Intercom refuses it, one call each so
        that only the refused ones fail."""
        failures = self._guard(locators, lambda: write(locators))
        if not failures or len(locators) == 1:
            return failures
        out: list[FieldFailure] = []
        for k, v in locators.items():
            out += self._guard({k: v}, lambda one={k: v}: write(one))
        return out

    def _write_attrs(self, ref: ItemRef, attrs: Mapping[str, Value]) -> list[FieldFailure]:
        def write(some: Mapping[str, Value]) -> None:
            payload = {k.split(":", 1)[1]: coerce(v, self.attribute_type(k.split(":", 1)[1])) for k, v in some.items()}
            self.call("updateConversation",
                      lambda: self.client.conversations.update(ref.id, custom_attributes=payload))
        return self._split(attrs, write)

    def attribute_type(self, name: str) -> str | None:
        """The data type of the conversation data attribute ``name``; None when there is none."""
        if name not in self._attr_types:
            listed = _plain(self.call("lisDataAttributes",
                                      lambda: self.client.data_attributes.list(model="conversation")))
            with self._lock:
                self._attr_types.update({a["name"]: a.get("data_type") or "string"
                                         for a in listed.get("data") or [] if a.get("custom", True)})
        return self._attr_types.get(name)

    def _write_state(self, ref: ItemRef, value: Value) -> None:
        if value not in STATES:
            raise Refused("intercom", "manageConversation", f"state must be one of {STATES}, not {value!r}")
        if value == "closed":
            body: Any = ConversationsManageRequestBody_Close(type="admin", admin_id=self.admin_id)
        elif value == "open":
            body = ConversationsManageRequestBody_Open(admin_id=self.admin_id)
        else:
            body = ConversationsManageRequestBody_Snoozed(admin_id=self.admin_id,
                                                          snoozed_until=int(time.time()) + self.snooze_seconds)
        self.call("manageConversation", lambda: self.client.conversations.manage(ref.id, request=body))

    def _write_conversation_tags(self, ref: ItemRef, value: Value, locator: str) -> None:
        wanted = _names(value)
        current: dict[str, str] = {}
        if locator == "tags":
            raw = self._get_raw(ref)
            current = {t["name"].lower(): str(t["id"]) for t in (raw.get("tags") or {}).get("tags") or []}
        for name in wanted:
            if name.lower() not in current:
                tag_id = self._tag_id(name)
                self.call("attachTagToConversation", lambda: self.client.tags.tag_conversation(
                    ref.id, tag_id=tag_id, admin_id=self.admin_id))
        if locator == "tags":
            keep = {n.lower() for n in wanted}
            for name, tag_id in current.items():
                if name not in keep:
                    self.call("detachTagFromConversation", lambda t=tag_id: self.client.tags.untag_conversation(
                        ref.id, t, admin_id=self.admin_id))

    def _tag_id(self, name: str) -> str:
        """The id of the tag called ``name`` (case-insensitive, as Intercom), created when missing."""
        key = name.lower()
        if key not in self._tag_ids:
            listed = _plain(self.call("listTags", lambda: self.client.tags.list()))
            with self._lock:
                self._tag_ids.update({t["name"].lower(): str(t["id"]) for t in listed.get("data") or []})
        if key not in self._tag_ids:
            created = _plain(self.call("createTag", lambda: self.client.tags.create(request={"name": name})))
            with self._lock:
                self._tag_ids[key] = str(created["id"])
        return self._tag_ids[key]

    def _ticket_writes(self, ref: ItemRef, values: Mapping[str, Value]) -> list[FieldFailure]:
        failures: list[FieldFailure] = []
        put = {k: v for k, v in values.items() if k in ("ticket_state", "state") or _is_ticket_attr(k)}
        if put:
            types = self._ticket_attr_types(ref) if any(_is_ticket_attr(k) for k in put) else {}
            failures += self._split(put, lambda some: self._put_ticket(ref, some, types))
        if "tags+" in values:
            failures += self._guard({"tags+": values["tags+"]}, lambda: self._tag_ticket(ref, values["tags+"]))
        if "tags" in values:
            failures.append(FieldFailure("tags", values["tags"],
                                         "Intercom does not show a ticket's tags; only tags+ (add) is possible"))
        failures += [FieldFailure(k, v, f"unknown Intercom ticket locator {k!r}") for k, v in values.items()
                     if not (k in ("ticket_state", "state", "tags", "tags+") or _is_ticket_attr(k))]
        return failures

    def _put_ticket(self, ref: ItemRef, some: Mapping[str, Value], types: Mapping[str, str]) -> None:
        kwargs: dict[str, Any] = {"admin_id": int(self.admin_id)}
        attrs = {k.split(":", 1)[1]: v for k, v in some.items() if _is_ticket_attr(k)}
        if attrs:
            kwargs["ticket_attributes"] = {name: coerce(v, types.get(name)) for name, v in attrs.items()}
        if "ticket_state" in some:
            kwargs["ticket_state_id"] = self._ticket_state_id(some["ticket_state"])
        # A ticket state says open or closed by itself (resolved closes): when both
        # come in one write (Jira Done → resolved, and fan-out's "reopen"), the
        # precise one wins rather than reopening what was just resolved.
        if "state" in some and "ticket_state" not in some:
            state = some["state"]
            if state not in ("open", "closed"):
                raise Refused("intercom", "updateTicket",
                              f"a ticket's state can be written open or closed, not {state!r}")
            kwargs["open"] = state == "open"
        self.call("updateTicket", lambda: self.client.tickets.update(ref.id, **kwargs))

    def _ticket_attr_types(self, ref: ItemRef) -> dict[str, str]:
        return ticket_attr_types(self._get_raw(ref))

    def _ticket_state_id(self, value: Value) -> str:
        if not isinstance(value, str):
            raise Refused("intercom", "updateTicket", f"ticket_state must be a single name, not {value!r}")
        if not self._states:
            listed = _plain(self.call("listTicketStates", lambda: self.client.ticket_states.list_ticket_states()))
            self._states = list(listed.get("data") or [])
        wanted = value.strip().lower()
        for key in ("internal_label", "category"):
            for state in self._states:
                if str(state.get(key) or "").lower() == wanted:
                    return str(state["id"])
        raise Refused("intercom", "updateTicket", f"no ticket state named {value!r}")

    def _tag_ticket(self, ref: ItemRef, value: Value) -> None:
        for name in _names(value):
            tag_id = self._tag_id(name)
            self.call("attachTagToTicket", lambda: self.client.tags.tag_ticket(
                ref.id, tag_id=tag_id, admin_id=self.admin_id))

    # -- comments ---------------------------------------------------------
    def add_comment(self, ref: ItemRef, body: str, public: bool,
                    attachments: Sequence[Attachment] = ()) -> str:
        kind = "comment" if public else "note"
        # A retry only takes a part this recent for the one a failed attempt wrote;
        # the margin allows for our clock and Intercom's disagreeing.
        recent = datetime.fromtimestamp(int(time.time()) - RETRY_MATCH_SECONDS, timezone.utc)
        urls = [a.url for a in attachments][:10] or None   # Intercom takes at most 10 URLs and fetches them
        attempts = 0

        def post() -> str:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                found = self._find_in(self._read(ref), ref, body, recent, kind)
                if found is not None:
                    return found
            # Retried as idempotent (it looks first), but still a write: only the claim's holder sends it.
            before_write("intercom", operation)
            return self._post_reply(ref, kind, body, urls)

        operation = "replyTicket" if ref.kind == TICKET else "replyConversation"
        part_id = self.call(operation, post)
        log.info("intercom_comment_added", item=str(ref), part=part_id, public=public, attempts=attempts)
        return part_id

    def update_with_comment(self, ref: ItemRef, values: Mapping[str, Value], body: str, public: bool,
                            expect: datetime | None = None) -> DeskWrite:
        """Intercom 2.14 cannot fold them: attributes, tags and state are written by their
        own endpoints and a note or reply is a conversation part of its own
        (``replyConversation``/``replyTicket``), so this is the field writes, then the comment."""
        failures = tuple(self.update_fields(ref, values))
        return DeskWrite(self.add_comment(ref, body, public), failures)

    def _post_reply(self, ref: ItemRef, kind: str, body: str, urls: list[str] | None) -> str:
        # attachment_urls only when there are some: the API does not take null there.
        request: dict[str, Any] = {"message_type": kind, "type": "admin", "admin_id": self.admin_id,
                                   "body": text_to_html(body), **({"attachment_urls": urls} if urls else {})}
        if ref.kind == TICKET:
            part = _plain(self.client.tickets.reply(ref.id, request=AdminReplyTicketRequest(**request)))
            return str(part["id"])
        conv = _plain(self.client.conversations.reply(ref.id, request=AdminReplyConversationRequest(**request)))
        # The answer is the whole conversation: ours is the newest part by us with this body.
        found = self._find_in(conv, ref, body, EPOCH, kind)
        if found is None:
            # Posted: not a refusal (that would drop its intent and post it again).
            raise Ambiguous("intercom", "replyConversation", "reply posted but not found in the conversation")
        return found

    def find_comment(self, ref: ItemRef, body: str, since: datetime) -> str | None:
        try:
            raw = self._get_raw(ref)
        except NotFound:
            return None
        return self._find_in(raw, ref, body, since, None)

    def find_comments(self, ref: ItemRef, body: str, since: datetime) -> list[str]:
        try:
            raw = self._get_raw(ref)
        except NotFound:
            return []
        parts = ticket_parts(raw) if ref.kind == TICKET else conversation_parts(raw)
        return [str(p["id"]) for p in _matching_parts(parts, self.admin_id, body, since, None)]

    def retract_comment(self, ref: ItemRef, comment_id: str) -> bool:
        """Nothing: Intercom deletes no reply or note through its API, and cannot make a reply
        private. 2.14 can redact a conversation part (``POST /conversations/redact``, its body
        blanked) but names no ticket part, and the simulator lacks it; the double is reported
        (``duplicate_found``) for an admin to hide by hand (docs/operations.md)."""
        return False

    def _find_in(self, raw: JSON, ref: ItemRef, body: str, since: datetime, kind: str | None) -> str | None:
        """Newest part by our admin with this body at or after ``since`` (second resolution)."""
        parts = ticket_parts(raw) if ref.kind == TICKET else conversation_parts(raw)
        mine = _matching_parts(parts, self.admin_id, body, since, kind)
        return str(mine[-1]["id"]) if mine else None

    # -- polling ----------------------------------------------------------
    def poll(self, cursor: str | None) -> PollPage:
        """Conversations and tickets with ``updated_at`` in [t − overlap, now]: both ends
        included (Intercom's ``>`` includes equality; no upper bound), the newest
        ``updated_at`` seen becomes the next ``t``.

        The cursor is ``{"t": newest updated_at seen}``; while a window is being
        paged it also holds the window start and each stream's
        ``starting_after`` (``null`` when that stream is finished), and
        ``more`` is true. ``None`` starts from now. One page per stream per call:
        the position is stored with the page's items marked dirty (the poller does
        both in one transaction), so paging resumes from the stored cursor.
        """
        if cursor is None:
            return PollPage((), json.dumps({"t": int(time.time())}))
        state = json.loads(cursor)
        since = int(state.get("since", state["t"] - self.poll_overlap))
        newest = int(state["t"])
        refs: list[ItemRef] = []
        stamps: dict[ItemRef, datetime] = {}
        nexts: dict[str, str | None] = {}
        for stream, kind in (("conversations", CONVERSATION), ("tickets", TICKET)):
            position = state.get(stream, "") if "since" in state else ""
            if position is None:      # this stream finished earlier in the window
                nexts[stream] = None
                continue
            items, after = self._search(stream, since, position or None)
            found, refused = vendor_refs(kind, [i.get("id") for i in items])
            if refused:
                log.warning("vendor_id_refused", vendor="intercom", operation=f"search {stream}", ids=refused)
            refs += found
            stamps.update(polled_stamps(kind, items, lambda i: epoch(i["updated_at"]) if i.get("updated_at") else None))
            newest = max([newest, *(int(i.get("updated_at") or 0) for i in items)])
            nexts[stream] = after
        if all(v is None for v in nexts.values()):
            out = PollPage(_unique(refs), json.dumps({"t": newest}), more=False, stamps=stamps)
        else:
            out = PollPage(_unique(refs), json.dumps({"t": newest, "since": since, **nexts}), more=True,
                           stamps=stamps)
        log.info("intercom_polled", items=len(out.items), more=out.more, since=since)
        return out

    def _search(self, stream: str, since: int, starting_after: str | None) -> tuple[list[JSON], str | None]:
        """One page of one stream, and the ``starting_after`` of the next (None: this was
        the last): the one place that pages Intercom (its search is the only listing
        syncd reads past a first page). python-intercom's pager is not used (it repeats
        page one)."""
        query = SingleFilterSearchRequest(field="updated_at", operator=">", value=since)
        return self.search(stream, query, starting_after)

    def search(self, stream: str, query: Any, starting_after: str | None,
               per_page: int | None = None) -> tuple[list[JSON], str | None]:
        """One page of ``stream`` (conversations, tickets) matching ``query`` (a
        python-intercom search request), and the ``starting_after`` of the next page
        (None: this was the last)."""
        paging = StartingAfterPaging(per_page=per_page or self.page_size, starting_after=starting_after)
        if stream == "tickets":
            page = self.call("searchTickets", lambda: self.client.tickets.search(query=query, pagination=paging))
        else:
            page = self.call("searchConversations",
                             lambda: self.client.conversations.search(query=query, pagination=paging))
        items = [_plain(i) for i in page.items or [] if i is not None]
        response = _plain(page.response) or {}
        nxt = ((response.get("pages") or {}).get("next") or {}).get("starting_after")
        return items, (str(nxt) if nxt and items else None)


def _is_ticket_attr(locator: str) -> bool:
    return locator.startswith(("ticket_attr:", "attr:"))


# Intercom contact ids are hex object ids ("5f297f71bce3e055f3afdf6e" in every recording
# in ../shared/realworld/intercom): checked before one becomes a URL path.
_CONTACT_ID = re.compile(r"[0-9a-f]{1,64}")


def _first_contact(raw: JSON) -> str | None:
    contacts = (raw.get("contacts") or {}).get("contacts") or []
    first = contacts[0].get("id") if contacts and isinstance(contacts[0], dict) else None
    if isinstance(first, str) and _CONTACT_ID.fullmatch(first):
        return first
    if first is not None:
        log.warning("vendor_id_refused", vendor="intercom", operation="contact", ids=[str(first)[:40]])
    return None


def _names(value: Value) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


def _matching_parts(parts: list[JSON], admin_id: str, body: str, since: datetime, kind: str | None) -> list[JSON]:
    """Parts by ``admin_id`` whose text equals ``body`` after the HTML round trip, oldest first."""
    wanted = html_to_text(text_to_html(body))
    floor = int(since.timestamp())
    return [p for p in parts
            if (p.get("author") or {}).get("type") == "admin" and str((p.get("author") or {}).get("id")) == admin_id
            and (kind is None or p.get("part_type") == kind) and p.get("part_type") in COMMENT_PARTS
            and int(p.get("created_at") or 0) >= floor and html_to_text(p.get("body")) == wanted]
