"""A stateful simulator of the Zendesk Support API, for zenpy 2.0.57 unmodified.

Operations (Zendesk's own operationIds, from vendor-specs/zendesk-support.yaml;
every path also answers with zenpy's ``.json`` suffix):

* tickets: ``CreateTicket`` (``Idempotency-Key``), ``ShowTicket``, ``TicketsShowMany``,
  ``ListTickets`` (these three and the cursor export take ``include=comment_count``),
  ``UpdateTicket`` (comment, status, tags / additional_tags / remove_tags,
  custom_fields, safe_update + updated_stamp: 409 ``UpdateConflict`` when stale);
* comments and files: ``ListTicketComments`` (cursor ``page[size]``/``page[after]``
  or offset ``page``/``per_page``), ``MakeTicketCommentPrivate``,
  ``RedactTicketCommentInAgentWorkspace`` (:mod:`~syncd.sim.zendesk_redactions`), ``UploadFiles``, ``DeleteUpload``,
  ``ShowAttachment``, and ``DownloadAttachmentContent`` (the ``content_url``; not
  an API operation, so the name is ours);
* ``ShowCurrentUser``, ``ListUsers``, ``CreateUser``, ``ShowUser``;
  ``ListOrganizations``, ``CreateOrganization``, ``ShowOrganization``;
  ``ListTicketFields``, ``CreateTicketField``, ``ShowTicketfield``;
* ``IncrementalTicketExportCursor``, ``IncrementalTicketEvents``
  (``include=comment_events``);
* ``ListTriggers``, ``CreateTrigger``, ``GetTrigger``, ``UpdateTrigger``, ``DeleteTrigger``;
* webhooks (absent from the OpenAPI document; names from Zendesk's Webhooks API
  reference): ``ListWebhooks``, ``CreateOrCloneWebhook``, ``ShowWebhook``,
  ``DeleteWebhook``, ``ShowWebhookSigningSecret``.

Layout: this module is the server (state, authentication, rate limits, the
route table, the actors) and the zenpy wiring. The route modules see it through
the :class:`~syncd.sim.zendesk_state.ZendeskState` protocol (records ``Ticket``
and ``Upload`` live there too) and share the request/paging helpers of
:mod:`~syncd.sim.zendesk_http`; none of them imports this module.
The route groups are functions of ``(sim, request)`` in
:mod:`~syncd.sim.zendesk_tickets` (tickets, comments, the one write path),
:mod:`~syncd.sim.zendesk_users` (users, organizations),
:mod:`~syncd.sim.zendesk_fields` (ticket fields),
:mod:`~syncd.sim.zendesk_attachments` (uploads, attachments),
:mod:`~syncd.sim.zendesk_exports` (incremental exports) and
:mod:`~syncd.sim.zendesk_webhooks` (triggers, webhooks); trigger rules and
placeholders are in :mod:`~syncd.sim.zendesk_triggers`.

Credentials: HTTP basic ``{email}/token:{token}`` for an agent or admin, e.g.
``admin@example.com/token`` + ``sim-token`` (see :meth:`ZendeskSim.describe`).
Passwords, bearer tokens and end users get 401 ``{"error": "Couldn't authenticate you"}``.

Pointing zenpy at it: zenpy builds ``https://{subdomain}.{domain}/api/v2``.
:func:`zenpy_client` splits ``127.0.0.1:PORT`` into ``subdomain="127"`` and
``domain="0.0.1:PORT"``, sets ``protocol = "http"`` on every api object of the
instance, and mounts zenpy's own retrying adapter on ``http://`` (zenpy mounts it
only on ``https://``, so this keeps its real retry behaviour: GETs retried on
503, resets and timeouts; POSTs not). No process-wide env var is needed.

Knobs (``configure`` / ``POST /_sim/knobs``): ``export_exclusion`` (seconds, default
60: the incremental exports hold back items changed that recently),
``incremental_rate_limit`` (requests per minute on the incremental endpoints,
default off; Zendesk's is 10), ``ticket_update_limit`` / ``ticket_update_window``
(default 30 per 600 s per ticket and user, on the simulator clock),
``api_tokens`` (list). The core's ``rate_limit`` adds ``X-Rate-Limit`` and
``X-Rate-Limit-Remaining`` to every answer and 429s with ``Retry-After``.

Triggers run on every create/update that changed something (API or actor) in
``position`` order; a matching ``notification_webhook`` action renders its
body template (see :mod:`syncd.sim.zendesk_triggers`) and delivers it signed:
``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(secret, timestamp + body)),
``X-Zendesk-Webhook-Signature-Timestamp`` (fresh per attempt),
``X-Zendesk-Webhook-Id``, ``X-Zendesk-Webhook-Invocation-Id`` (same for retries),
``X-Zendesk-Account-Id``.

Timestamps have one-second resolution, as on Zendesk: two updates within one
second share ``updated_at``, so a ``safe_update`` whose ``updated_stamp`` was read
between them is accepted although the ticket changed after the read. The real
service has the same blind spot.

Known differences from the real service:

* only the ``notification_webhook`` trigger action is carried out; other
  actions are stored but ignored, and triggers do not re-run on their own changes;
* webhooks are always sent with POST and JSON whatever ``http_method`` says;
  no circuit breaker; delivery retries are the core sender's;
* the export cursor orders on the exact time, finer than the one-second
  ``updated_at`` it shows;
* no audits API, no side-loading but ``comment_count``, no search, no ticket
  deletion, no macros, no custom statuses, no "100 updates per minute per
  account" limit; unknown upload tokens in a comment are ignored; closed
  tickets are never produced automatically (no 28-day auto-close);
* ``ticket_events`` items follow the real service (``child_events``), not the
  document, which describes them as metric events;
* the Idempotency-Key mismatch body (``IdempotentRequestError``) follows
  Zendesk's prose docs, not a schema.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import math
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from syncd.sim import (
    zendesk_attachments,
    zendesk_exports,
    zendesk_fields,
    zendesk_http,
    zendesk_jira_links,
    zendesk_jira_links_v2,
    zendesk_redactions,
    zendesk_statuses,
    zendesk_tickets,
    zendesk_users,
    zendesk_webhooks,
)
from syncd.sim.core import JSON, Clock, Request, Response, SimServer, iso
from syncd.sim.zendesk_state import Ticket, Upload
from syncd.sim.zendesk_tickets import BRAND_ID, IDEMPOTENCY_TTL
from syncd.sim.zendesk_webhooks import ACCOUNT_ID, SUBDOMAIN_HOST

ADMIN_EMAIL = "admin@example.com"
AGENT_EMAIL = "agent@example.com"
CUSTOMER_EMAIL = "customer@example.com"
API_TOKEN = "sim-token"

__all__ = [
    "ACCOUNT_ID", "ADMIN_EMAIL", "AGENT_EMAIL", "API_TOKEN", "BRAND_ID", "CUSTOMER_EMAIL", "IDEMPOTENCY_TTL",
    "SUBDOMAIN_HOST", "Ticket", "Upload", "ZendeskSim", "zenpy_client",
]


class ZendeskSim(SimServer):
    """Zendesk Support on loopback. ``with ZendeskSim() as sim: zenpy_client(sim)``."""

    vendor = "zendesk"

    def __init__(self, clock: Clock | None = None, host: str = "127.0.0.1", port: int = 0):
        self._ids = {name: itertools.count(start) for name, start in (
            ("ticket", 1), ("user", 1_000_001), ("org", 2_000_001), ("field", 3_000_001),
            ("trigger", 4_000_001), ("option", 5_000_001), ("comment", 10_000_001),
            ("audit", 20_000_001), ("attachment", 30_000_001), ("event", 40_000_001),
            ("invocation", 50_000_001), ("custom_status", 60_000_001), ("jira_link", 1),
            ("jira_v2_link", 1))}
        self.tickets: dict[int, Ticket] = {}
        self.jira_links: dict[int, dict[str, JSON]] = {}   # Zendesk's own Jira integration (zendesk_jira_links)
        # The V2 integration's links, per integration external id (zendesk_jira_links_v2).
        self.jira_v2_links: dict[str, list[dict[str, JSON]]] = {}
        self.users: dict[int, dict[str, JSON]] = {}
        self.sessions: list[dict[str, JSON]] = []   # web sign-ins (an API token opens none)
        self.organizations: dict[int, dict[str, JSON]] = {}
        self.ticket_fields: dict[int, dict[str, JSON]] = {}
        self.custom_statuses: dict[int, dict[str, JSON]] = {}
        self.triggers: dict[int, dict[str, JSON]] = {}
        self.webhook_defs: dict[str, dict[str, JSON]] = {}
        self.webhook_secrets: dict[str, str] = {}
        self.audits: list[dict[str, JSON]] = []      # ticket events, in time order
        self.uploads: dict[str, Upload] = {}
        self.files: dict[str, tuple[bytes, str]] = {}   # attachment token -> (bytes, content type)
        self.attachments: dict[int, dict[str, JSON]] = {}
        self.idempotency: dict[str, tuple[str, int, dict[str, JSON], float]] = {}
        self.ticket_updates: dict[tuple[int, int], list[float]] = {}
        self.incremental_calls: list[float] = []
        self.api_tokens: set[str] = {API_TOKEN}
        self.export_exclusion = 60.0
        self.incremental_rate_limit: int | None = None
        self.ticket_update_limit: int | None = 30
        self.ticket_update_window = 600.0
        super().__init__(clock=clock, host=host, port=port)
        self.seed_demo()

    # -- world ------------------------------------------------------------
    def seed_demo(self) -> None:
        """An account usable at once: an admin, an agent, a customer in an
        organization, the system ticket fields, and two custom fields (a text
        field "Jira issue" and a dropdown "Product area")."""
        with self.lock:
            org = zendesk_users.new_org(self, {"name": "Acme Inc"})
            zendesk_statuses.seed_defaults(self)
            self.admin = zendesk_users.new_user(self, {"name": "Ada Admin", "email": ADMIN_EMAIL, "role": "admin"})
            self.agent = zendesk_users.new_user(self, {"name": "Alan Agent", "email": AGENT_EMAIL, "role": "agent"})
            self.customer = zendesk_users.new_user(self, {"name": "Cleo Customer", "email": CUSTOMER_EMAIL,
                                                          "role": "end-user", "organization_id": org["id"]})
            for kind, title in (("subject", "Subject"), ("description", "Description"), ("status", "Status"),
                                ("tickettype", "Type"), ("priority", "Priority"), ("group", "Group"),
                                ("assignee", "Assignee")):
                zendesk_fields.new_field(self, {"type": kind, "title": title}, system=True)
            self.jira_field = zendesk_fields.new_field(self, {"type": "text", "title": "Jira issue"})
            self.area_field = zendesk_fields.new_field(self, {
                "type": "tagger", "title": "Product area", "custom_field_options": [
                    {"name": "Billing", "value": "area_billing"},
                    {"name": "Login", "value": "area_login"},
                    {"name": "Other", "value": "area_other"},
                ]})

    def describe(self) -> dict[str, JSON]:
        """What a person (or the demo) needs to talk to this simulator."""
        netloc = urlsplit(self.base_url).netloc
        sub, dom = netloc.split(".", 1)
        return {
            "vendor": self.vendor,
            "base_url": self.base_url,
            "api_root": f"{self.base_url}/api/v2",
            "credentials": {"email": ADMIN_EMAIL, "token": API_TOKEN,
                            "basic_auth_user": f"{ADMIN_EMAIL}/token",
                            "agent_email": AGENT_EMAIL, "customer_email": CUSTOMER_EMAIL},
            "users": {"admin": self.admin["id"], "agent": self.agent["id"], "customer": self.customer["id"]},
            "custom_fields": {"jira_issue": self.jira_field["id"], "product_area": self.area_field["id"]},
            "webhook_secrets": dict(self.webhook_secrets),
            "zenpy": (f"syncd.sim.zendesk.zenpy_client('{self.base_url}') - or by hand: "
                      f"Zenpy(subdomain='{sub}', domain='{dom}', email='{ADMIN_EMAIL}', token='{API_TOKEN}'), "
                      "then api.protocol = 'http' on every api object of the client "
                      f"(or env ZENPY_FORCE_SCHEME=http ZENPY_FORCE_NETLOC={netloc}, process-wide)"),
            "knobs": {"export_exclusion": self.export_exclusion,
                      "incremental_rate_limit": self.incremental_rate_limit,
                      "ticket_update_limit": self.ticket_update_limit,
                      "ticket_update_window": self.ticket_update_window},
        }

    def configure(self, body: dict[str, JSON]) -> None:
        if "export_exclusion" in body:
            self.export_exclusion = float(body["export_exclusion"])
        if "incremental_rate_limit" in body:
            self.incremental_rate_limit = body["incremental_rate_limit"]
        if "ticket_update_limit" in body:
            self.ticket_update_limit = body["ticket_update_limit"]
        if "ticket_update_window" in body:
            self.ticket_update_window = float(body["ticket_update_window"])
        if "api_tokens" in body:
            self.api_tokens = set(body["api_tokens"])

    # -- vendor hooks -----------------------------------------------------
    def setup_routes(self) -> None:
        def r(method: str, path: str, operation: str, handler: Callable[[ZendeskSim, Request], Response]) -> None:
            self.route(method, path, operation, functools.partial(handler, self))

        r("POST", "/api/v2/tickets{.json}", "CreateTicket", zendesk_tickets.create_ticket_http)
        r("GET", "/api/v2/tickets{.json}", "ListTickets", zendesk_tickets.list_tickets)
        r("GET", "/api/v2/tickets/show_many{.json}", "TicketsShowMany", zendesk_tickets.show_many)
        r("GET", "/api/v2/tickets/{ticket_id}/comments{.json}", "ListTicketComments", zendesk_tickets.list_comments)
        r("PUT", "/api/v2/tickets/{ticket_id}/comments/{ticket_comment_id}/make_private{.json}",
          "MakeTicketCommentPrivate", zendesk_redactions.make_private)
        r("PUT", "/api/v2/comment_redactions/{ticket_comment_id}{.json}", "RedactTicketCommentInAgentWorkspace",
          zendesk_redactions.redact)
        r("GET", "/api/v2/tickets/{ticket_id}{.json}", "ShowTicket", zendesk_tickets.show_ticket)
        r("PUT", "/api/v2/tickets/{ticket_id}{.json}", "UpdateTicket", zendesk_tickets.update_ticket_http)
        r("POST", "/api/v2/uploads{.json}", "UploadFiles", zendesk_attachments.upload)
        r("DELETE", "/api/v2/uploads/{token}{.json}", "DeleteUpload", zendesk_attachments.delete_upload)
        r("GET", "/api/v2/attachments/{attachment_id}{.json}", "ShowAttachment", zendesk_attachments.show_attachment)
        r("GET", "/attachments/token/{token}/", "DownloadAttachmentContent", zendesk_attachments.download)
        r("GET", "/api/v2/users/me{.json}", "ShowCurrentUser", zendesk_users.me)
        r("GET", "/api/v2/users{.json}", "ListUsers", zendesk_users.list_users)
        r("POST", "/api/v2/users{.json}", "CreateUser", zendesk_users.create_user)
        r("GET", "/api/v2/users/{user_id}{.json}", "ShowUser", zendesk_users.show_user)
        r("GET", "/api/v2/sessions{.json}", "ListSessions", zendesk_users.list_sessions)
        r("GET", "/api/v2/organizations{.json}", "ListOrganizations", zendesk_users.list_orgs)
        r("POST", "/api/v2/organizations{.json}", "CreateOrganization", zendesk_users.create_org)
        r("GET", "/api/v2/organizations/{organization_id}{.json}", "ShowOrganization", zendesk_users.show_org)
        r("GET", "/api/v2/custom_statuses{.json}", "ListCustomStatuses", zendesk_statuses.list_statuses)
        r("POST", "/api/v2/custom_statuses{.json}", "CreateCustomStatus", zendesk_statuses.create_status)
        r("GET", "/api/v2/custom_statuses/{custom_status_id}{.json}", "ShowCustomStatus", zendesk_statuses.show_status)
        r("PUT", "/api/v2/custom_statuses/{custom_status_id}{.json}", "UpdateCustomStatus",
          zendesk_statuses.update_status)
        r("GET", "/api/v2/ticket_fields{.json}", "ListTicketFields", zendesk_fields.list_fields)
        r("POST", "/api/v2/ticket_fields{.json}", "CreateTicketField", zendesk_fields.create_field)
        r("GET", "/api/v2/ticket_fields/{ticket_field_id}{.json}", "ShowTicketfield", zendesk_fields.show_field)
        r("GET", "/api/v2/incremental/tickets/cursor{.json}", "IncrementalTicketExportCursor",
          zendesk_exports.export_cursor)
        r("GET", "/api/v2/incremental/ticket_events{.json}", "IncrementalTicketEvents", zendesk_exports.export_events)
        r("GET", "/api/v2/jira/links{.json}", "ListJiraLinks", zendesk_jira_links.list_links)
        r("GET", "/api/v2/integrations/jira/{external_id}/links{.json}", "ListJiraIntegrationLinks",
          zendesk_jira_links_v2.list_links)
        r("GET", "/api/v2/triggers{.json}", "ListTriggers", zendesk_webhooks.list_triggers)
        r("POST", "/api/v2/triggers{.json}", "CreateTrigger", zendesk_webhooks.create_trigger)
        r("GET", "/api/v2/triggers/{trigger_id}{.json}", "GetTrigger", zendesk_webhooks.show_trigger)
        r("PUT", "/api/v2/triggers/{trigger_id}{.json}", "UpdateTrigger", zendesk_webhooks.update_trigger)
        r("DELETE", "/api/v2/triggers/{trigger_id}{.json}", "DeleteTrigger", zendesk_webhooks.delete_trigger)
        r("GET", "/api/v2/webhooks{.json}", "ListWebhooks", zendesk_webhooks.list_webhooks)
        r("POST", "/api/v2/webhooks{.json}", "CreateOrCloneWebhook", zendesk_webhooks.create_webhook)
        r("GET", "/api/v2/webhooks/{webhook_id}/signing_secret{.json}", "ShowWebhookSigningSecret",
          zendesk_webhooks.signing_secret)
        r("GET", "/api/v2/webhooks/{webhook_id}{.json}", "ShowWebhook", zendesk_webhooks.show_webhook)
        r("DELETE", "/api/v2/webhooks/{webhook_id}{.json}", "DeleteWebhook", zendesk_webhooks.delete_webhook)

    def authenticate(self, request: Request) -> Response | None:
        if request.operation == "DownloadAttachmentContent":
            return None   # content_url is a capability URL, as on Zendesk
        user = self._user_from_auth(request.header("authorization") or "")
        if user is None:
            return Response(401, {"error": "Couldn't authenticate you"})
        request.params["_user_id"] = str(user["id"])
        return None

    def _user_from_auth(self, header: str) -> dict[str, JSON] | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            login, _, secret = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        email, slash, kind = login.rpartition("/")
        if not slash or kind != "token" or secret not in self.api_tokens:
            return None
        with self.lock:
            user = next((u for u in self.users.values() if u["email"] == email), None)
        if user is None or user["role"] not in ("admin", "agent"):
            return None
        user["last_login_at"] = iso(self.clock.now())   # API token use counts as a login
        return user

    def rate_limited(self, request: Request, retry_after: float) -> Response:
        limit, _ = self.rate_remaining()
        headers = {"Retry-After": str(max(1, math.ceil(retry_after))),
                   "X-Rate-Limit": str(limit if limit is not None else 0), "X-Rate-Limit-Remaining": "0"}
        return Response(429, {"error": "APIRateLimitExceeded",
                              "description": "Number of allowed API requests per minute exceeded"}, headers)

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        limit, remaining = self.rate_remaining()
        if limit is not None and not request.operation.startswith("_sim"):
            response.headers.setdefault("X-Rate-Limit", str(limit))
            response.headers.setdefault("X-Rate-Limit-Remaining", str(remaining))
        return response

    def error_body(self, status: int, message: str) -> JSON:
        names = {400: "InvalidEndpoint", 401: "Couldn't authenticate you", 403: "Forbidden",
                 404: "RecordNotFound", 409: "UpdateConflict", 422: "RecordInvalid",
                 500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
        return {"error": names.get(status, "Error"), "description": message}

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def sign_webhook(self, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        secret = self.webhook_secrets.get(headers.get("X-Zendesk-Webhook-Id", ""), "")
        stamp = iso(self.clock.now())
        digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        return {**headers, "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode()}

    # -- the ZendeskState surface the route modules use (syncd.sim.zendesk_state) --
    def next_id(self, kind: str) -> int:
        return next(self._ids[kind])

    def url(self, path: str) -> str:
        return f"{self.base_url}/api/v2/{path}"

    def caller(self, request: Request) -> dict[str, JSON]:
        return self.users[int(request.params["_user_id"])]

    def ticket(self, ticket_id: int) -> Ticket:
        t = self.tickets.get(ticket_id)
        if t is None:
            raise zendesk_http.not_found()
        return t

    # -- tickets: the one write path, shared by the HTTP handlers and the actors --
    def ticket_json(self, t: Ticket) -> dict[str, JSON]:
        return zendesk_tickets.ticket_json(self, t)

    def create_ticket_from(self, data: dict[str, JSON], caller: dict[str, JSON], via: str = "api") -> dict[str, JSON]:
        """Create a ticket from a ``ticket`` object as the API receives it; fires triggers.
        Returns ``{"ticket": ..., "audit": ...}``."""
        return zendesk_tickets.create_ticket_from(self, data, caller, via)

    def update_ticket_from(self, ticket_id: int, data: dict[str, JSON], caller: dict[str, JSON],
                           via: str = "api") -> dict[str, JSON]:
        """Apply a ``ticket`` object as ``PUT /tickets/{id}`` receives it; fires
        triggers when something changed. Returns ``{"ticket": ..., "audit": ...}``."""
        return zendesk_tickets.update_ticket_from(self, ticket_id, data, caller, via)

    # -- actors: people acting through the same write path as the API -----------------
    def create_ticket(self, subject: str, body: str, *, requester_email: str = CUSTOMER_EMAIL,
                      tags: Iterable[str] = (), custom_fields: dict[int, JSON] | None = None,
                      priority: str | None = None) -> int:
        """A customer writes in through the web form; returns the ticket id."""
        with self.lock:
            requester = next(u for u in self.users.values() if u["email"] == requester_email) \
                if any(u["email"] == requester_email for u in self.users.values()) \
                else zendesk_users.new_user(self, {"email": requester_email, "name": requester_email})
            data: dict[str, JSON] = {"subject": subject, "comment": {"body": body}, "tags": list(tags),
                                     "requester_id": requester["id"], "priority": priority,
                                     "custom_fields": [{"id": k, "value": v} for k, v in (custom_fields or {}).items()]}
            return int(self.create_ticket_from(data, requester, via="web")["ticket"]["id"])

    def agent_reply(self, ticket_id: int, body: str, public: bool = True, *, agent_id: int | None = None) -> int:
        """An agent answers (``public``) or leaves an internal note; returns the comment id."""
        with self.lock:
            agent = self.users[agent_id or self.agent["id"]]
            self.update_ticket_from(ticket_id, {"comment": {"body": body, "public": public}}, agent, via="web")
            return int(self.tickets[ticket_id].comments[-1]["id"])

    def sign_in(self, email: str) -> None:
        """A person signs in to the agent interface as ``email`` (a web session; ``syncd doctor``
        flags one on syncd's own account)."""
        with self.lock:
            user = next(u for u in self.users.values() if u["email"] == email)
            sid = len(self.sessions) + 1
            self.sessions.append({"id": sid, "user_id": user["id"], "authenticated_at": iso(self.clock.now()),
                                  "last_seen_at": iso(self.clock.now()),
                                  "url": f"{self.base_url}/api/v2/users/{user['id']}/sessions/{sid}.json"})

    def customer_reply(self, ticket_id: int, body: str) -> int:
        """The requester writes again (e.g. answers the email); returns the comment id."""
        with self.lock:
            requester = self.users[self.ticket(ticket_id).requester_id]
            self.update_ticket_from(ticket_id, {"comment": {"body": body, "public": True}}, requester, via="web")
            return int(self.tickets[ticket_id].comments[-1]["id"])

    def integration_link(self, ticket_id: int, issue_id: str, issue_key: str) -> dict[str, JSON]:
        """An agent links a Jira issue with Zendesk's own Jira integration (GET /api/v2/jira/links lists it)."""
        return zendesk_jira_links.add_link(self, ticket_id, issue_id, issue_key)

    def integration_v2_link(self, external_id: str, ticket_id: int | str, issue_id: str,
                            issue_key: str) -> dict[str, JSON]:
        """An agent links a Jira issue with the V2 integration ``external_id``
        (GET /api/v2/integrations/jira/{external_id}/links lists it)."""
        return zendesk_jira_links_v2.add_link(self, external_id, ticket_id, issue_id, issue_key)

    def agent_set(self, ticket_id: int, *, status: str | None = None, add_tags: Iterable[str] = (),
                  remove_tags: Iterable[str] = (), custom_fields: dict[int, JSON] | None = None,
                  priority: str | None = None, assignee_id: int | None = None,
                  agent_id: int | None = None) -> dict[str, JSON]:
        """An agent changes fields in the agent workspace; returns the ticket JSON."""
        data: dict[str, JSON] = {}
        if status is not None:
            data["status"] = status
        if priority is not None:
            data["priority"] = priority
        if assignee_id is not None:
            data["assignee_id"] = assignee_id
        if add_tags:
            data["additional_tags"] = list(add_tags)
        if remove_tags:
            data["remove_tags"] = list(remove_tags)
        if custom_fields:
            data["custom_fields"] = [{"id": k, "value": v} for k, v in custom_fields.items()]
        with self.lock:
            agent = self.users[agent_id or self.agent["id"]]
            return self.update_ticket_from(ticket_id, data, agent, via="web")["ticket"]


# ---------------------------------------------------------------------------
# zenpy wiring
# ---------------------------------------------------------------------------

def zenpy_client(target: "ZendeskSim | str", email: str = ADMIN_EMAIL, token: str = API_TOKEN,
                 **kwargs: Any) -> Any:
    """A real ``zenpy.Zenpy`` talking to the simulator over plain HTTP.

    ``kwargs`` go to ``Zenpy`` (``timeout``, ``ratelimit_budget``, ``session``...)."""
    from requests.adapters import HTTPAdapter
    from zenpy import Zenpy
    from zenpy.lib.api import BaseApi

    base_url = target.base_url if isinstance(target, SimServer) else target
    netloc = urlsplit(base_url).netloc
    subdomain, dot, domain = netloc.partition(".")
    if not dot:
        raise ValueError(f"need a dotted host (e.g. 127.0.0.1:PORT), got {netloc!r}")
    client = Zenpy(subdomain=subdomain, domain=domain, email=email, token=token, **kwargs)
    seen: set[int] = set()

    def visit(obj: object) -> None:
        for value in vars(obj).values():
            if isinstance(value, BaseApi) and id(value) not in seen:
                seen.add(id(value))
                value.protocol = "http"
                visit(value)

    visit(client)
    client.users.session.mount("http://", HTTPAdapter(**Zenpy.http_adapter_kwargs()))
    return client
