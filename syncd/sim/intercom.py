"""A simulated Intercom REST API (version 2.14) for tests, benchmarks and ``syncd demo``.

The official client, python-intercom 5.x, works against it unmodified::

    sim = IntercomSim().start()
    client = Intercom(token=sim.token, base_url=sim.base_url,
                      headers={"Intercom-Version": "2.14"})

Credentials: ``Authorization: Bearer <sim.token>`` (default ``sim-intercom-token``);
anything else is a 401 ``error.list`` with code ``unauthorized``. Webhooks are
signed ``X-Hub-Signature: sha1=<hex HMAC-SHA1(sim.client_secret, raw body)>``.

Implemented operations (operationIds of intercom-2.14.yaml):
  identifyAdmin, listAdmins, retrieveAdmin,
  CreateContact, ShowContact, createOrUpdateCompany, RetrieveACompanyById,
  attachContactToACompany, listCompaniesForAContact, ListAttachedContacts,
  createTag, listTags, findTag, attachTagToConversation, detachTagFromConversation,
  lisDataAttributes, createDataAttribute,
  createConversation, listConversations, retrieveConversation, updateConversation,
  replyConversation, manageConversation, searchConversations,
  listTicketTypes, createTicketType, getTicketType, createTicketTypeAttribute,
  listTicketStates, createTicket, getTicket, updateTicket, replyTicket, searchTickets.

``Intercom-Version``: a request without it is answered as ``default_version``
(2.14) and recorded (:meth:`IntercomSim.requests_without_version`), because the
daemon must always send it; a version Intercom does not know is a 400
``intercom_version_invalid``. Authenticated answers carry ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset`` (unix time); a 429 carries them with Remaining 0
and code ``rate_limit_exceeded``.

Webhook subscriptions live in Intercom's Developer Hub, not in the REST API:
register them with :meth:`IntercomSim.subscribe` or ``POST /_sim/intercom/subscriptions``
``{"url", "topics"}``. Topics fired: conversation.user.created,
conversation.user.replied, conversation.admin.replied, conversation.admin.noted,
conversation.admin.closed, conversation.admin.opened, conversation.admin.snoozed,
conversation.admin.assigned, conversation_part.tag.created, ticket.created, ticket.state.updated,
ticket.attribute.updated, ticket.note.created, ticket.admin.replied, ticket.admin.assigned,
ticket.contact.replied, ping.

Known differences from the real service:
  * one workspace, no teams, no OAuth scopes (no 403s), no regions;
  * every version from 1.0 to 2.14 is accepted but answered in the 2.14 shape;
  * conversation data attributes (``jira_key``...) are defined by an admin in
    Intercom's settings: :meth:`IntercomSim.define_conversation_attribute`;
    ``POST /data_attributes`` refuses ``model: conversation`` on 2.14 (400) and
    accepts it with ``Intercom-Version: Unstable``, as Intercom does. They are
    listed with ``model: conversation`` (the 2.14 document's enum forgets it);
  * search ``>``/``<`` include equality (as Intercom documents), ``=`` on dates is
    exact (not day-rounded); ``per_page`` above 150 is clamped; cursors are
    keyset cursors over (updated_at, id) ascending for search and descending
    for ``GET /conversations``;
  * a webhook body says ``delivery_attempts: 1`` on retries too (the body is
    signed once and resent byte for byte);
  * ticket ``snoozed_until`` is 0 when not snoozed; ticket numbers (``ticket_id``)
    count from 1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from syncd.sim.core import Clock, Request, Response, SimError, SimServer
from syncd.sim.intercom_search import QueryError, compile_query, page_by_key
from syncd.sim.intercom_world import JSON, IntercomWorld, WorldError

SUPPORTED_VERSIONS = frozenset({"1.0", "1.1", "1.2", "1.3", "1.4", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5",
                                "2.6", "2.7", "2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14",
                                "Unstable"})
CONVERSATION_DATE_FIELDS = frozenset({"created_at", "updated_at", "waiting_since", "snoozed_until"})
TICKET_DATE_FIELDS = frozenset({"created_at", "updated_at", "snoozed_until"})
# Intercom counts its limit in 10-second windows (10,000/min per app ≈ 1,667 per window).
DEFAULT_WINDOW_LIMIT = 1667
HEADER_WINDOW = 10.0


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    topics: frozenset[str]


@dataclass(frozen=True)
class VersionSeen:
    operation: str
    version: str | None   # None: the request had no Intercom-Version header


class IntercomSim(SimServer):
    vendor = "intercom"
    read_only_posts = frozenset({"searchConversations", "searchTickets"})

    def __init__(self, clock: Clock | None = None, host: str = "127.0.0.1", port: int = 0,
                 token: str = "sim-intercom-token", client_secret: str = "sim-intercom-client-secret",
                 app_id: str = "simapp01", seed: bool = True):
        self.token = token
        self.client_secret = client_secret
        self.app_id = app_id
        self.default_version = "2.14"
        self.subscriptions: dict[str, Subscription] = {}
        self.versions_seen: list[VersionSeen] = []
        self._hdr_window: deque[float] = deque()
        super().__init__(clock, host, port)
        self.webhooks.timeout = 5.0   # Intercom resends a delivery not answered within 5 s
        self.world = IntercomWorld(self.clock.now, self._emit, app_id)
        if seed:
            self.seed_demo()

    def seed_demo(self) -> None:
        """Two admins, one user contact, the four ticket states and a "Bug" ticket type."""
        with self.lock:
            self.world.seed()

    # -- routes -----------------------------------------------------------
    def setup_routes(self) -> None:
        r = self.route
        r("GET", "/me", "identifyAdmin", self._me)
        r("GET", "/admins", "listAdmins", self._list_admins)
        r("GET", "/admins/{admin_id}", "retrieveAdmin", self._get_admin)
        r("POST", "/contacts", "CreateContact", self._create_contact)
        r("GET", "/contacts/{contact_id}/companies", "listCompaniesForAContact", self._contact_companies)
        r("POST", "/contacts/{contact_id}/companies", "attachContactToACompany", self._attach_company)
        r("GET", "/contacts/{contact_id}", "ShowContact", self._get_contact)
        r("POST", "/companies", "createOrUpdateCompany", self._upsert_company)
        r("GET", "/companies/{company_id}/contacts", "ListAttachedContacts", self._company_contacts)
        r("GET", "/companies/{company_id}", "RetrieveACompanyById", self._get_company)
        r("POST", "/tags", "createTag", self._create_tag)
        r("GET", "/tags", "listTags", self._list_tags)
        r("GET", "/tags/{tag_id}", "findTag", self._find_tag)
        r("GET", "/data_attributes", "lisDataAttributes", self._list_data_attributes)
        r("POST", "/data_attributes", "createDataAttribute", self._create_data_attribute)
        r("POST", "/conversations/search", "searchConversations", self._search_conversations)
        r("GET", "/conversations", "listConversations", self._list_conversations)
        r("POST", "/conversations", "createConversation", self._create_conversation)
        r("POST", "/conversations/{conversation_id}/tags", "attachTagToConversation", self._tag_conversation)
        r("DELETE", "/conversations/{conversation_id}/tags/{tag_id}", "detachTagFromConversation",
          self._untag_conversation)
        r("POST", "/conversations/{conversation_id}/reply", "replyConversation", self._reply_conversation)
        r("POST", "/conversations/{conversation_id}/parts", "manageConversation", self._manage_conversation)
        r("GET", "/conversations/{conversation_id}", "retrieveConversation", self._get_conversation)
        r("PUT", "/conversations/{conversation_id}", "updateConversation", self._update_conversation)
        r("GET", "/ticket_states", "listTicketStates", self._list_ticket_states)
        r("GET", "/ticket_types", "listTicketTypes", self._list_ticket_types)
        r("POST", "/ticket_types", "createTicketType", self._create_ticket_type)
        r("POST", "/ticket_types/{ticket_type_id}/attributes", "createTicketTypeAttribute",
          self._create_ticket_type_attribute)
        r("GET", "/ticket_types/{ticket_type_id}", "getTicketType", self._get_ticket_type)
        r("POST", "/tickets/search", "searchTickets", self._search_tickets)
        r("POST", "/tickets", "createTicket", self._create_ticket)
        r("POST", "/tickets/{ticket_id}/reply", "replyTicket", self._reply_ticket)
        r("GET", "/tickets/{ticket_id}", "getTicket", self._get_ticket)
        r("PUT", "/tickets/{ticket_id}", "updateTicket", self._update_ticket)
        # control API (not accounted, no auth), next to the core's /_sim/ routes
        r("POST", "/_sim/intercom/subscriptions", "_sim.intercom.subscribe", self._ctl_subscribe)
        r("GET", "/_sim/intercom/subscriptions", "_sim.intercom.subscriptions", self._ctl_subscriptions)
        r("POST", "/_sim/intercom/subscriptions/{sub_id}/ping", "_sim.intercom.ping", self._ctl_ping)
        r("POST", "/_sim/intercom/act/{action}", "_sim.intercom.act", self._ctl_act)

    def route(self, method: str, path: str, operation: str, handler: Callable[[Request], Response]) -> None:
        if not operation.startswith("_sim"):
            handler = _with_world_errors(handler)
        super().route(method, path, operation, handler)

    # -- vendor behaviour hooks --------------------------------------------
    def error_body(self, status: int, message: str) -> JSON:
        code = {400: "parameter_invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                409: "conflict", 429: "rate_limit_exceeded", 500: "server_error",
                502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}.get(status, "error")
        return error_list(code, message)

    def authenticate(self, request: Request) -> Response | None:
        auth = request.header("authorization") or ""
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            return Response(401, error_list("unauthorized", "Access Token Invalid"))
        version = request.header("intercom-version")
        with self.lock:
            self.versions_seen.append(VersionSeen(request.operation, version))
        if version is not None and version not in SUPPORTED_VERSIONS:
            return Response(400, error_list("intercom_version_invalid", "The requested version could not be found"))
        return None

    def rate_limited(self, request: Request, retry_after: float) -> Response:
        limit, _ = self.rate_remaining()
        limit = limit or DEFAULT_WINDOW_LIMIT
        reset = int(self.clock.now() + max(1.0, retry_after))
        return Response(429, error_list("rate_limit_exceeded", f"Exceeded rate limit of {limit} in 10_seconds"),
                        {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
                         "X-RateLimit-Reset": str(reset)})

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        # Intercom sends its rate headers on every authenticated answer.
        if not request.operation.startswith("_sim") and response.status not in (401, 429):
            response.headers.update(self._rate_headers())
        return response

    def _rate_headers(self) -> dict[str, str]:
        now = time.monotonic()
        with self.lock:
            self._hdr_window.append(now)
            while self._hdr_window and now - self._hdr_window[0] >= HEADER_WINDOW:
                self._hdr_window.popleft()
            used = len(self._hdr_window)
        limit, remaining = self.rate_remaining()
        if limit is None:
            limit, remaining = DEFAULT_WINDOW_LIMIT, max(0, DEFAULT_WINDOW_LIMIT - used)
        reset = int(self.clock.now()) + int(HEADER_WINDOW - (self.clock.now() % HEADER_WINDOW))
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset)}

    def configure(self, body: dict[str, Any]) -> None:
        """Knobs: ``default_version``, ``client_secret``, ``max_parts`` (parts shown per GET)."""
        if "default_version" in body:
            if body["default_version"] not in SUPPORTED_VERSIONS:
                raise SimError(400, error_list("parameter_invalid", "unknown version"))
            self.default_version = body["default_version"]
        if "client_secret" in body:
            self.client_secret = str(body["client_secret"])
        if "max_parts" in body:
            self.world.max_parts = int(body["max_parts"])

    def sign_webhook(self, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        digest = hmac.new(self.client_secret.encode(), body, hashlib.sha1).hexdigest()
        return {**headers, "X-Hub-Signature": f"sha1={digest}"}

    def requests_without_version(self) -> list[str]:
        """Operations that were called without an ``Intercom-Version`` header."""
        with self.lock:
            return [v.operation for v in self.versions_seen if v.version is None]

    # -- webhooks ---------------------------------------------------------
    def subscribe(self, url: str, topics: list[str] | set[str] | frozenset[str]) -> Subscription:
        """What an admin does in the Developer Hub: send ``topics`` to ``url``."""
        sub = Subscription(f"sub_{uuid.uuid4().hex[:12]}", url, frozenset(topics))
        with self.lock:
            self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, sub_id: str) -> None:
        with self.lock:
            self.subscriptions.pop(sub_id, None)

    def ping(self, sub_id: str) -> None:
        """The Developer Hub's "send a test request" button."""
        sub = self.subscriptions[sub_id]
        self._deliver(sub, "ping", {"type": "ping", "message": "Hi there! This is a test notification."})

    def _emit(self, topic: str, item: JSON) -> None:
        for sub in list(self.subscriptions.values()):
            if topic in sub.topics:
                self._deliver(sub, topic, item)

    def _deliver(self, sub: Subscription, topic: str, item: JSON) -> None:
        now = int(self.clock.now())
        envelope = {"type": "notification_event", "app_id": self.app_id,
                    "data": {"type": "notification_event_data", "item": item},
                    "links": {}, "id": f"notif_{uuid.uuid4()}", "topic": topic, "delegated": False,
                    "delivery_status": None, "delivery_attempts": 1, "delivered_at": 0,
                    "first_sent_at": now, "created_at": now, "self": None}
        self.webhooks.send(sub.url, json.dumps(envelope).encode(), {})

    # -- actors: people acting through the same code as the API ------------
    def create_conversation(self, contact_id: str, body: str) -> str:
        """A customer starts a conversation; returns its id."""
        with self.lock:
            return self.world.create_conversation(self.world.contact(contact_id), body).id

    def customer_reply(self, conv_id: str, body: str, contact_id: str | None = None) -> str:
        """The conversation's (first) customer writes; returns the part id."""
        with self.lock:
            conv = self.world.conversation(conv_id)
            contact = self.world.contact(contact_id or conv.contact_ids[0])
            return self.world.reply_as_contact(conv, contact, body).id

    def admin_reply(self, conv_id: str, admin_id: str, body: str) -> str:
        with self.lock:
            return self.world.reply_as_admin(self.world.conversation(conv_id), admin_id, "comment", body).id

    def admin_note(self, conv_id: str, admin_id: str, body: str) -> str:
        with self.lock:
            return self.world.reply_as_admin(self.world.conversation(conv_id), admin_id, "note", body).id

    def admin_reply_and(self, conv_id: str, admin_id: str, body: str, action: str) -> str:
        """A teammate replies and acts in one step (reply and close, reply and
        assign, …): one part of the action's type carrying the reply; returns its id."""
        with self.lock:
            return self.world.reply_and_act(self.world.conversation(conv_id), admin_id, body, action).id

    def ticket_admin_reply_and_assign(self, ticket_id: str, admin_id: str, body: str) -> str:
        """A teammate replies on a ticket while assigning it (to themself)."""
        with self.lock:
            return self.world.ticket_reply_and_assign(self.world.ticket(ticket_id), admin_id, body).id

    def close(self, conv_id: str, admin_id: str | None = None) -> None:
        self._manage(conv_id, {"message_type": "close", "type": "admin", "admin_id": admin_id})

    def reopen(self, conv_id: str, admin_id: str | None = None) -> None:
        self._manage(conv_id, {"message_type": "open", "admin_id": admin_id})

    def _manage(self, conv_id: str, body: JSON) -> None:
        with self.lock:
            body["admin_id"] = body["admin_id"] or self.first_admin_id()
            self.world.manage(self.world.conversation(conv_id), body)

    def create_ticket(self, contact_id: str, title: str, description: str = "",
                      ticket_type_id: str | None = None) -> str:
        """A customer submits a ticket; returns its id."""
        with self.lock:
            tt = ticket_type_id or next(iter(self.world.ticket_types))
            return self.world.create_ticket({"ticket_type_id": tt, "contacts": [{"id": contact_id}],
                                             "ticket_attributes": {"_default_title_": title,
                                                                   "_default_description_": description}}).id

    def set_ticket_state(self, ticket_id: str, category_or_id: str, admin_id: str | None = None) -> None:
        """An agent moves a ticket to a state, by category (``in_progress``) or state id."""
        with self.lock:
            states = self.world.ticket_states
            state_id = category_or_id if category_or_id in states else self.world.state_for(category_or_id).id
            self.world.update_ticket(self.world.ticket(ticket_id),
                                     {"ticket_state_id": state_id, "admin_id": admin_id or self.first_admin_id()})

    def ticket_note(self, ticket_id: str, admin_id: str, body: str) -> str:
        with self.lock:
            return self.world.reply_ticket(self.world.ticket(ticket_id),
                                           {"type": "admin", "admin_id": admin_id,
                                            "message_type": "note", "body": body}).id

    def ticket_customer_reply(self, ticket_id: str, body: str) -> str:
        with self.lock:
            ticket = self.world.ticket(ticket_id)
            return self.world.reply_ticket(ticket, {"type": "user", "intercom_user_id": ticket.contact_ids[0],
                                                    "message_type": "comment", "body": body}).id

    def define_conversation_attribute(self, name: str, data_type: str = "string") -> int:
        """An admin adds a conversation data attribute in Intercom's settings (API
        version 2.14 cannot create one); returns its id."""
        with self.lock:
            return self.world.define_conversation_attribute(name, data_type).id

    def first_admin_id(self) -> str:
        with self.lock:
            return next(iter(self.world.admins))

    def first_contact_id(self) -> str:
        with self.lock:
            return next(iter(self.world.contacts))

    def describe(self) -> dict[str, Any]:
        """What a person needs to use this simulator."""
        with self.lock:
            admins = [{"id": a.id, "name": a.name, "email": a.email} for a in self.world.admins.values()]
            types = [{"id": t.id, "name": t.name} for t in self.world.ticket_types.values()]
        return {
            "vendor": "intercom", "base_url": self.base_url, "token": self.token,
            "auth": "Authorization: Bearer <token>", "api_version": self.default_version,
            "webhook_client_secret": self.client_secret,
            "webhook_signature": "X-Hub-Signature: sha1=<hex HMAC-SHA1(client_secret, raw body)>",
            "app_id": self.app_id, "admins": admins, "ticket_types": types,
            "subscriptions_url": f"{self.base_url}/_sim/intercom/subscriptions",
            "client": (f"Intercom(token={self.token!r}, base_url={self.base_url!r}, "
                       f"headers={{'Intercom-Version': {self.default_version!r}}})"),
        }

    # -- handlers: admins, contacts, companies ------------------------------
    def _me(self, req: Request) -> Response:
        return ok(self.world.me_json(self.world.admin(self.first_admin_id())))

    def _list_admins(self, req: Request) -> Response:
        return ok({"type": "admin.list", "admins": [self.world.admin_json(a) for a in self.world.admins.values()]})

    def _get_admin(self, req: Request) -> Response:
        return ok(self.world.admin_json(self.world.admin(req.params["admin_id"])))

    def _create_contact(self, req: Request) -> Response:
        return ok(self.world.contact_json(self.world.create_contact(body_of(req))))

    def _get_contact(self, req: Request) -> Response:
        return ok(self.world.contact_json(self.world.contact(req.params["contact_id"])))

    def _contact_companies(self, req: Request) -> Response:
        contact = self.world.contact(req.params["contact_id"])
        companies = [self.world.companies[i] for i in contact.company_ids]
        chunk, pages = numbered_page(req, companies, default_size=15)
        pages["next"] = None if pages["page"] >= pages["total_pages"] else (
            f"/contacts/{contact.id}/companies?page={pages['page'] + 1}")
        return ok({"type": "list", "companies": [self.world.company_json(c) for c in chunk],
                   "total_count": len(companies), "pages": pages})

    def _attach_company(self, req: Request) -> Response:
        body = body_of(req)
        return ok(self.world.company_json(self.world.attach_contact_to_company(req.params["contact_id"],
                                                                               body.get("id"))))

    def _upsert_company(self, req: Request) -> Response:
        return ok(self.world.company_json(self.world.upsert_company(body_of(req))))

    def _get_company(self, req: Request) -> Response:
        return ok(self.world.company_json(self.world.company(req.params["company_id"])))

    def _company_contacts(self, req: Request) -> Response:
        contacts = self.world.company_contacts(req.params["company_id"])
        chunk, pages = numbered_page(req, contacts, default_size=50)
        return ok({"type": "list", "data": [self.world.contact_json(c) for c in chunk],
                   "total_count": len(contacts), "pages": pages})

    # -- handlers: tags, data attributes --------------------------------------
    def _create_tag(self, req: Request) -> Response:
        return ok(self.world.tag_json(self.world.upsert_tag(body_of(req))))

    def _list_tags(self, req: Request) -> Response:
        return ok({"type": "list", "data": [self.world.tag_json(t) for t in self.world.tags.values()]})

    def _find_tag(self, req: Request) -> Response:
        return ok(self.world.tag_json(self.world.tag(req.params["tag_id"])))

    def _tag_conversation(self, req: Request) -> Response:
        body = body_of(req)
        conv = self.world.conversation(req.params["conversation_id"])
        return ok(self.world.tag_json(self.world.tag_conversation(conv, body.get("id"), body.get("admin_id"))))

    def _untag_conversation(self, req: Request) -> Response:
        body = body_of(req)
        conv = self.world.conversation(req.params["conversation_id"])
        return ok(self.world.tag_json(self.world.untag_conversation(conv, req.params["tag_id"],
                                                                    body.get("admin_id"))))

    def _list_data_attributes(self, req: Request) -> Response:
        model = req.arg("model")
        if model is not None and model not in ("contact", "company", "conversation"):
            raise SimError(400, error_list("parameter_invalid", "model must be contact, company or conversation"))
        attrs = [a for a in self.world.data_attributes.values() if model is None or a.model == model]
        return ok({"type": "list", "data": [self.world.data_attribute_json(a) for a in attrs]})

    def _create_data_attribute(self, req: Request) -> Response:
        unstable = req.header("intercom-version") == "Unstable"
        attr = self.world.create_data_attribute(body_of(req), conversation_model=unstable)
        return ok(self.world.data_attribute_json(attr))

    # -- handlers: conversations -----------------------------------------------
    def _create_conversation(self, req: Request) -> Response:
        body = body_of(req)
        sender = body.get("from") or {}
        if sender.get("type") not in ("user", "lead", "contact") or not sender.get("id"):
            raise SimError(400, error_list("parameter_invalid", "from must name a contact", "from"))
        contact = self.world.contact(sender["id"])
        conv = self.world.create_conversation(contact, body.get("body") or "", body.get("subject"),
                                              body.get("attachment_urls"), body.get("created_at"))
        return ok({"type": "user_message", "id": conv.source["id"], "created_at": conv.created_at,
                   "body": conv.source["body"], "message_type": "inapp", "conversation_id": conv.id})

    def _get_conversation(self, req: Request) -> Response:
        return ok(self.world.conversation_json(self.world.conversation(req.params["conversation_id"])))

    def _update_conversation(self, req: Request) -> Response:
        conv = self.world.conversation(req.params["conversation_id"])
        self.world.update_conversation(conv, body_of(req))
        return ok(self.world.conversation_json(conv))

    def _reply_conversation(self, req: Request) -> Response:
        body = body_of(req)
        conv = self.world.conversation(req.params["conversation_id"])
        if body.get("type") == "admin":
            self.world.reply_as_admin(conv, body.get("admin_id"), body.get("message_type"), body.get("body"),
                                      body.get("attachment_urls"))
        elif body.get("type") == "user":
            if body.get("message_type", "comment") != "comment":
                raise SimError(400, error_list("parameter_invalid", "a user reply is a comment", "message_type"))
            contact = self.world.contact_by(id=body.get("intercom_user_id"), email=body.get("email"),
                                            external_id=body.get("user_id"))
            self.world.reply_as_contact(conv, contact, body.get("body"), body.get("attachment_urls"))
        else:
            raise SimError(400, error_list("parameter_invalid", "type must be admin or user", "type"))
        return ok(self.world.conversation_json(conv))

    def _manage_conversation(self, req: Request) -> Response:
        conv = self.world.conversation(req.params["conversation_id"])
        self.world.manage(conv, body_of(req))
        return ok(self.world.conversation_json(conv))

    def _list_conversations(self, req: Request) -> Response:
        per_page = int_arg(req, "per_page")
        page = page_by_key(list(self.world.conversations.values()),
                           lambda c: (-c.updated_at, -int(c.id)), per_page, req.arg("starting_after"))
        return ok({"type": "conversation.list", "total_count": page.total_count,
                   "pages": page.pages_json(per_page_as_sent=req.arg("per_page")),
                   "conversations": [self.world.conversation_json(c, with_parts=False) for c in page.items]})

    def _search_conversations(self, req: Request) -> Response:
        page = self._search(req, list(self.world.conversations.values()), self.world.conversation_record,
                            CONVERSATION_DATE_FIELDS)
        return ok({"type": "conversation.list", "total_count": page.total_count, "pages": page.pages_json(),
                   "conversations": [self.world.conversation_json(c, with_parts=False) for c in page.items]})

    def _search(self, req: Request, items: list[Any], record: Callable[[Any], JSON],
                date_fields: frozenset[str]) -> Any:
        body = body_of(req)
        pagination = body.get("pagination") or {}
        try:
            pred = compile_query(body.get("query"), date_fields)
            hits = [i for i in items if pred(record(i))]
            return page_by_key(hits, lambda i: (i.updated_at, int(i.id)), pagination.get("per_page"),
                               pagination.get("starting_after"))
        except QueryError as e:
            raise SimError(400, error_list("parameter_invalid", str(e), "query")) from None

    # -- handlers: tickets -------------------------------------------------------
    def _list_ticket_states(self, req: Request) -> Response:
        return ok({"type": "list", "data": [self.world.ticket_state_detailed_json(s)
                                            for s in self.world.ticket_states.values()]})

    def _list_ticket_types(self, req: Request) -> Response:
        return ok({"type": "list", "data": [self.world.ticket_type_json(t)
                                            for t in self.world.ticket_types.values()]})

    def _create_ticket_type(self, req: Request) -> Response:
        return ok(self.world.ticket_type_json(self.world.create_ticket_type(body_of(req))))

    def _get_ticket_type(self, req: Request) -> Response:
        return ok(self.world.ticket_type_json(self.world.ticket_type(req.params["ticket_type_id"])))

    def _create_ticket_type_attribute(self, req: Request) -> Response:
        tt = self.world.ticket_type(req.params["ticket_type_id"])
        attr = self.world.add_ticket_type_attribute(tt, body_of(req))
        return ok(self.world.ticket_type_attribute_json(tt, attr))

    def _create_ticket(self, req: Request) -> Response:
        return ok(self.world.ticket_json(self.world.create_ticket(body_of(req))))

    def _get_ticket(self, req: Request) -> Response:
        return ok(self.world.ticket_json(self.world.ticket(req.params["ticket_id"])))

    def _update_ticket(self, req: Request) -> Response:
        ticket = self.world.ticket(req.params["ticket_id"])
        self.world.update_ticket(ticket, body_of(req))
        return ok(self.world.ticket_json(ticket))

    def _reply_ticket(self, req: Request) -> Response:
        ticket = self.world.ticket(req.params["ticket_id"])
        part = self.world.reply_ticket(ticket, body_of(req))
        out = self.world.part_json(part, ticket=True)
        return ok({k: out[k] for k in ("type", "id", "part_type", "body", "created_at", "updated_at",
                                       "author", "attachments", "redacted")})

    def _search_tickets(self, req: Request) -> Response:
        page = self._search(req, list(self.world.tickets.values()), self.world.ticket_record, TICKET_DATE_FIELDS)
        return ok({"type": "ticket.list", "total_count": page.total_count, "pages": page.pages_json(),
                   "tickets": [self.world.ticket_json(t) for t in page.items]})

    # -- control API ---------------------------------------------------------------
    def _ctl_subscribe(self, req: Request) -> Response:
        body = req.json() or {}
        if not body.get("url") or not isinstance(body.get("topics"), list):
            raise SimError(400, {"error": "url and topics are required"})
        sub = self.subscribe(body["url"], body["topics"])
        return Response(201, {"id": sub.id, "url": sub.url, "topics": sorted(sub.topics)})

    def _ctl_subscriptions(self, req: Request) -> Response:
        return Response(200, {"subscriptions": [{"id": s.id, "url": s.url, "topics": sorted(s.topics)}
                                                for s in self.subscriptions.values()]})

    def _ctl_ping(self, req: Request) -> Response:
        if req.params["sub_id"] not in self.subscriptions:
            raise SimError(404, {"error": "no such subscription"})
        self.ping(req.params["sub_id"])
        return Response(202, {"ok": True})

    def _ctl_act(self, req: Request) -> Response:
        """Actors over HTTP, for a simulator running in another process (``syncd demo``)."""
        actions: dict[str, Callable[..., Any]] = {
            "create_conversation": self.create_conversation, "customer_reply": self.customer_reply,
            "admin_reply": self.admin_reply, "admin_note": self.admin_note, "close": self.close,
            "reopen": self.reopen, "create_ticket": self.create_ticket,
            "set_ticket_state": self.set_ticket_state, "ticket_note": self.ticket_note,
            "ticket_customer_reply": self.ticket_customer_reply,
            "define_conversation_attribute": self.define_conversation_attribute,
        }
        action = actions.get(req.params["action"])
        if action is None:
            raise SimError(404, {"error": f"unknown action; one of {sorted(actions)}"})
        try:
            result = action(**(req.json() or {}))
        except WorldError as e:
            raise SimError(e.status, error_list(e.code, e.message)) from None
        except TypeError as e:
            raise SimError(400, {"error": str(e)}) from None
        return Response(200, {"result": result})



def _with_world_errors(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """World errors become Intercom error lists in one place."""
    def wrapped(req: Request) -> Response:
        try:
            return handler(req)
        except WorldError as e:
            raise SimError(e.status, error_list(e.code, e.message, e.field)) from None
    return wrapped


def error_list(code: str, message: str, field_name: str | None = None) -> JSON:
    """Intercom's error shape."""
    err: JSON = {"code": code, "message": message}
    if field_name:
        err["field"] = field_name
    return {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [err]}


def ok(body: JSON) -> Response:
    return Response(200, body)


def body_of(req: Request) -> JSON:
    try:
        body = req.json()
    except json.JSONDecodeError:
        raise SimError(400, error_list("parameter_invalid", "body is not JSON")) from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise SimError(400, error_list("parameter_invalid", "body must be a JSON object"))
    return body


def numbered_page(req: Request, items: list[Any], default_size: int) -> tuple[list[Any], JSON]:
    """Page-number paging (``?page=&per_page=``) of the older list endpoints."""
    page = max(1, int_arg(req, "page") or 1)
    size = min(max(1, int_arg(req, "per_page") or default_size), 150)
    total_pages = max(1, -(-len(items) // size))
    return items[(page - 1) * size:page * size], {"type": "pages", "page": page, "per_page": size,
                                                  "total_pages": total_pages}


def int_arg(req: Request, name: str) -> int | None:
    value = req.arg(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise SimError(400, error_list("parameter_invalid", f"{name} must be an integer", name)) from None
