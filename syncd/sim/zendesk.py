"""A stateful simulator of the Zendesk Support API, for zenpy 2.0.57 unmodified.

Operations (Zendesk's own operationIds, from vendor-specs/zendesk-support.yaml;
every path also answers with zenpy's ``.json`` suffix):

* tickets: ``CreateTicket`` (``Idempotency-Key``), ``ShowTicket``, ``TicketsShowMany``,
  ``ListTickets``, ``UpdateTicket`` (comment, status, tags / additional_tags /
  remove_tags, custom_fields, safe_update + updated_stamp);
* comments and files: ``ListTicketComments`` (cursor ``page[size]``/``page[after]``
  or offset ``page``/``per_page``), ``UploadFiles``, ``DeleteUpload``,
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

Known differences from the real service:

* only the ``notification_webhook`` trigger action is carried out; other
  actions are stored but ignored, and triggers do not re-run on their own changes;
* webhooks are always sent with POST and JSON whatever ``http_method`` says;
  no circuit breaker; delivery retries are the core sender's;
* timestamps have one-second resolution, as on Zendesk, so two updates within
  one second share ``updated_at`` and ``safe_update`` cannot tell them apart;
  the export cursor, however, orders on the exact time;
* no audits API, no side-loading, no search, no ticket deletion, no macros,
  no custom statuses, no "100 updates per minute per account" limit; unknown
  upload tokens in a comment are ignored; closed tickets are never produced
  automatically (no 28-day auto-close);
* ``ticket_events`` items follow the real service (``child_events``), not the
  document, which describes them as metric events;
* the Idempotency-Key mismatch body (``IdempotentRequestError``) follows
  Zendesk's prose docs, not a schema.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import quote, urlsplit

import structlog

from syncd.sim.core import JSON, Clock, Request, Response, SimError, SimServer, iso
from syncd.sim.zendesk_triggers import (
    STATUS_ORDER,
    UpdateContext,
    placeholder_values,
    render_template,
    trigger_matches,
)

log = structlog.get_logger(__name__)

ADMIN_EMAIL = "admin@example.com"
AGENT_EMAIL = "agent@example.com"
CUSTOMER_EMAIL = "customer@example.com"
API_TOKEN = "sim-token"
ACCOUNT_ID = "9000001"
BRAND_ID = 360000001           # every Zendesk account has a default brand
SUBDOMAIN_HOST = "https://syncd-sim.zendesk.com"   # what {{ticket.url}} shows, like the real one

IDEMPOTENCY_TTL = 2 * 3600.0   # Zendesk keeps keys for two hours


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

@dataclass
class Ticket:
    id: int
    subject: str
    description: str
    status: str
    priority: str | None
    type: str | None
    tags: list[str]
    requester_id: int
    submitter_id: int
    organization_id: int | None
    assignee_id: int | None
    group_id: int | None
    custom: dict[int, JSON]
    external_id: str | None
    due_at: str | None
    created: float
    updated: float
    via_channel: str
    comments: list[dict[str, JSON]] = field(default_factory=list)


@dataclass
class Upload:
    token: str
    attachments: list[dict[str, JSON]]
    expires: float


class ZendeskSim(SimServer):
    """Zendesk Support on loopback. ``with ZendeskSim() as sim: zenpy_client(sim)``."""

    vendor = "zendesk"

    def __init__(self, clock: Clock | None = None, host: str = "127.0.0.1", port: int = 0):
        self._ids = {name: itertools.count(start) for name, start in (
            ("ticket", 1), ("user", 1_000_001), ("org", 2_000_001), ("field", 3_000_001),
            ("trigger", 4_000_001), ("option", 5_000_001), ("comment", 10_000_001),
            ("audit", 20_000_001), ("attachment", 30_000_001), ("event", 40_000_001),
            ("invocation", 50_000_001))}
        self.tickets: dict[int, Ticket] = {}
        self.users: dict[int, dict[str, JSON]] = {}
        self.organizations: dict[int, dict[str, JSON]] = {}
        self.ticket_fields: dict[int, dict[str, JSON]] = {}
        self.triggers: dict[int, dict[str, JSON]] = {}
        self.webhook_defs: dict[str, dict[str, JSON]] = {}
        self.webhook_secrets: dict[str, str] = {}
        self.audits: list[dict[str, JSON]] = []      # ticket events, in time order
        self.uploads: dict[str, Upload] = {}
        self.files: dict[str, tuple[bytes, str]] = {}   # attachment token -> (bytes, content type)
        self.attachments: dict[int, dict[str, JSON]] = {}
        self._idempotency: dict[str, tuple[str, int, dict[str, JSON], float]] = {}
        self._ticket_updates: dict[tuple[int, int], list[float]] = {}
        self._incremental_calls: list[float] = []
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
            org = self._new_org({"name": "Acme Inc"})
            self.admin = self._new_user({"name": "Ada Admin", "email": ADMIN_EMAIL, "role": "admin"})
            self.agent = self._new_user({"name": "Alan Agent", "email": AGENT_EMAIL, "role": "agent"})
            self.customer = self._new_user({"name": "Cleo Customer", "email": CUSTOMER_EMAIL,
                                            "role": "end-user", "organization_id": org["id"]})
            for kind, title in (("subject", "Subject"), ("description", "Description"), ("status", "Status"),
                                ("tickettype", "Type"), ("priority", "Priority"), ("group", "Group"),
                                ("assignee", "Assignee")):
                self._new_field({"type": kind, "title": title}, system=True)
            self.jira_field = self._new_field({"type": "text", "title": "Jira issue"})
            self.area_field = self._new_field({"type": "tagger", "title": "Product area", "custom_field_options": [
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
        r = self.route
        r("POST", "/api/v2/tickets{.json}", "CreateTicket", self._create_ticket)
        r("GET", "/api/v2/tickets{.json}", "ListTickets", self._list_tickets)
        r("GET", "/api/v2/tickets/show_many{.json}", "TicketsShowMany", self._show_many)
        r("GET", "/api/v2/tickets/{ticket_id}/comments{.json}", "ListTicketComments", self._list_comments)
        r("GET", "/api/v2/tickets/{ticket_id}{.json}", "ShowTicket", self._show_ticket)
        r("PUT", "/api/v2/tickets/{ticket_id}{.json}", "UpdateTicket", self._update_ticket_http)
        r("POST", "/api/v2/uploads{.json}", "UploadFiles", self._upload)
        r("DELETE", "/api/v2/uploads/{token}{.json}", "DeleteUpload", self._delete_upload)
        r("GET", "/api/v2/attachments/{attachment_id}{.json}", "ShowAttachment", self._show_attachment)
        r("GET", "/attachments/token/{token}/", "DownloadAttachmentContent", self._download)
        r("GET", "/api/v2/users/me{.json}", "ShowCurrentUser", self._me)
        r("GET", "/api/v2/users{.json}", "ListUsers", self._list_users)
        r("POST", "/api/v2/users{.json}", "CreateUser", self._create_user)
        r("GET", "/api/v2/users/{user_id}{.json}", "ShowUser", self._show_user)
        r("GET", "/api/v2/organizations{.json}", "ListOrganizations", self._list_orgs)
        r("POST", "/api/v2/organizations{.json}", "CreateOrganization", self._create_org)
        r("GET", "/api/v2/organizations/{organization_id}{.json}", "ShowOrganization", self._show_org)
        r("GET", "/api/v2/ticket_fields{.json}", "ListTicketFields", self._list_fields)
        r("POST", "/api/v2/ticket_fields{.json}", "CreateTicketField", self._create_field)
        r("GET", "/api/v2/ticket_fields/{ticket_field_id}{.json}", "ShowTicketfield", self._show_field)
        r("GET", "/api/v2/incremental/tickets/cursor{.json}", "IncrementalTicketExportCursor", self._export_cursor)
        r("GET", "/api/v2/incremental/ticket_events{.json}", "IncrementalTicketEvents", self._export_events)
        r("GET", "/api/v2/triggers{.json}", "ListTriggers", self._list_triggers)
        r("POST", "/api/v2/triggers{.json}", "CreateTrigger", self._create_trigger)
        r("GET", "/api/v2/triggers/{trigger_id}{.json}", "GetTrigger", self._show_trigger)
        r("PUT", "/api/v2/triggers/{trigger_id}{.json}", "UpdateTrigger", self._update_trigger)
        r("DELETE", "/api/v2/triggers/{trigger_id}{.json}", "DeleteTrigger", self._delete_trigger)
        r("GET", "/api/v2/webhooks{.json}", "ListWebhooks", self._list_webhooks)
        r("POST", "/api/v2/webhooks{.json}", "CreateOrCloneWebhook", self._create_webhook)
        r("GET", "/api/v2/webhooks/{webhook_id}/signing_secret{.json}", "ShowWebhookSigningSecret", self._signing_secret)
        r("GET", "/api/v2/webhooks/{webhook_id}{.json}", "ShowWebhook", self._show_webhook)
        r("DELETE", "/api/v2/webhooks/{webhook_id}{.json}", "DeleteWebhook", self._delete_webhook)

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

    # -- helpers ----------------------------------------------------------
    def _next(self, kind: str) -> int:
        return next(self._ids[kind])

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v2/{path}"

    def _caller(self, request: Request) -> dict[str, JSON]:
        return self.users[int(request.params["_user_id"])]

    def _body(self, request: Request, key: str) -> dict[str, JSON]:
        try:
            body = request.json() or {}
        except ValueError:
            raise SimError(400, {"error": "InvalidJSON", "description": "The request body is not valid JSON"})
        value = body.get(key) if isinstance(body, dict) else None
        if not isinstance(value, dict):
            raise SimError(400, {"error": "InvalidEndpoint", "description": f"The request must contain a '{key}' object"})
        return value

    def _int_param(self, request: Request, name: str) -> int:
        try:
            return int(request.params[name])
        except ValueError:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})

    def _ticket(self, ticket_id: int) -> Ticket:
        t = self.tickets.get(ticket_id)
        if t is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return t

    @staticmethod
    def _invalid(attribute: str, message: str, code: str = "InvalidValue") -> SimError:
        return SimError(422, {"error": "RecordInvalid", "description": "Record validation errors",
                              "details": {attribute: [{"description": message, "error": code}]}})

    def _page(self, request: Request, key: str, items: list[JSON], path: str) -> dict[str, JSON]:
        """Cursor paging when the client asks with ``page[size]``/``page[after]``,
        offset paging (``page``, ``per_page``) otherwise, as Zendesk does."""
        if request.arg("page[size]") is not None or request.arg("page[after]") is not None:
            size = max(1, min(100, int(request.arg("page[size]") or 100)))
            start = int(_unb64(request.arg("page[after]") or "") or 0)
            page = items[start:start + size]
            end = start + len(page)
            has_more = end < len(items)
            after = _b64(str(end)) if page else None
            before = _b64(str(start)) if page else None
            return {key: page,
                    "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                    "links": {"next": f"{self._url(path)}?page[size]={size}&page[after]={after}" if has_more else None,
                              "prev": f"{self._url(path)}?page[size]={size}&page[before]={before}" if start else None}}
        per_page = max(1, min(100, int(request.arg("per_page") or 100)))
        number = max(1, int(request.arg("page") or 1))
        start = (number - 1) * per_page
        page = items[start:start + per_page]
        more = start + per_page < len(items)
        return {key: page, "count": len(items),
                "next_page": f"{self._url(path)}?page={number + 1}&per_page={per_page}" if more else None,
                "previous_page": f"{self._url(path)}?page={number - 1}&per_page={per_page}" if number > 1 else None}

    # -- users, organizations ----------------------------------------------
    def _new_user(self, data: dict[str, JSON]) -> dict[str, JSON]:
        uid, now = self._next("user"), iso(self.clock.now())
        user = {"id": uid,
                "name": data.get("name") or data.get("email") or f"user {uid}", "email": data.get("email"),
                "created_at": now, "updated_at": now, "time_zone": "UTC", "iana_time_zone": "Etc/UTC",
                "phone": None, "shared_phone_number": False, "photo": None, "locale_id": 1, "locale": "en-US",
                "organization_id": data.get("organization_id"), "role": data.get("role") or "end-user",
                "verified": True, "external_id": data.get("external_id"), "tags": list(data.get("tags") or []),
                "alias": "", "active": True, "shared": False, "shared_agent": False, "last_login_at": None,
                "two_factor_auth_enabled": False, "signature": "", "details": "", "notes": "",
                "role_type": None, "custom_role_id": None, "moderator": data.get("role") in ("admin", "agent"),
                "ticket_restriction": None if data.get("role") in ("admin", "agent") else "requested",
                "only_private_comments": False, "restricted_agent": False, "suspended": False,
                "default_group_id": None, "report_csv": False, "user_fields": {}}
        self.users[uid] = user
        return user

    def _user_json(self, user: dict[str, JSON]) -> dict[str, JSON]:
        # Zendesk sends null for unset user attributes (last_login_at, photo,
        # default_group_id...); the document forbids null there, so unset keys are
        # left out instead - the same to zenpy, which defaults them to None.
        return {k: v for k, v in {**user, "url": self._url(f"users/{user['id']}.json")}.items() if v is not None}

    def _find_or_create_requester(self, requester: dict[str, JSON]) -> int:
        email = requester.get("email")
        found = next((u for u in self.users.values() if email and u["email"] == email), None)
        return (found or self._new_user({"name": requester.get("name"), "email": email}))["id"]

    def _me(self, request: Request) -> Response:
        return Response(200, {"user": self._user_json(self._caller(request))})

    def _list_users(self, request: Request) -> Response:
        users = [self._user_json(u) for u in self.users.values()]
        role = request.arg("role")
        if role:
            users = [u for u in users if u["role"] == role]
        return Response(200, self._page(request, "users", users, "users.json"))

    def _create_user(self, request: Request) -> Response:
        data = self._body(request, "user")
        if not data.get("name"):
            raise self._invalid("name", "Name: cannot be blank", "BlankValue")
        if data.get("email") and any(u["email"] == data["email"] for u in self.users.values()):
            raise self._invalid("email", f"Email: {data['email']} is already being used by another user",
                                "DuplicateValue")
        return Response(201, {"user": self._user_json(self._new_user(data))})

    def _show_user(self, request: Request) -> Response:
        user = self.users.get(self._int_param(request, "user_id"))
        if user is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return Response(200, {"user": self._user_json(user)})

    def _new_org(self, data: dict[str, JSON]) -> dict[str, JSON]:
        oid, now = self._next("org"), iso(self.clock.now())
        org = {"id": oid, "name": data["name"], "created_at": now, "updated_at": now,
               "details": data.get("details"), "notes": data.get("notes"), "external_id": data.get("external_id"),
               "group_id": None, "domain_names": list(data.get("domain_names") or []), "shared_comments": False,
               "shared_tickets": False, "tags": list(data.get("tags") or []), "organization_fields": {}}
        self.organizations[oid] = org
        return org

    def _org_json(self, org: dict[str, JSON]) -> dict[str, JSON]:
        return {**org, "url": self._url(f"organizations/{org['id']}.json")}

    def _list_orgs(self, request: Request) -> Response:
        orgs = [self._org_json(o) for o in self.organizations.values()]
        return Response(200, self._page(request, "organizations", orgs, "organizations.json"))

    def _create_org(self, request: Request) -> Response:
        data = self._body(request, "organization")
        if not data.get("name"):
            raise self._invalid("name", "Name: cannot be blank", "BlankValue")
        if any(o["name"] == data["name"] for o in self.organizations.values()):
            raise self._invalid("name", "Name: has already been taken", "DuplicateValue")
        return Response(201, {"organization": self._org_json(self._new_org(data))})

    def _show_org(self, request: Request) -> Response:
        org = self.organizations.get(self._int_param(request, "organization_id"))
        if org is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return Response(200, {"organization": self._org_json(org)})

    # -- ticket fields -----------------------------------------------------
    def _new_field(self, data: dict[str, JSON], system: bool = False) -> dict[str, JSON]:
        fid, now = self._next("field"), iso(self.clock.now())
        options = [{"id": self._next("option"), "name": o["name"], "raw_name": o["name"], "value": o["value"],
                    "position": i, "default": False} for i, o in enumerate(data.get("custom_field_options") or [])]
        f = {"id": fid, "type": data["type"], "title": data["title"], "raw_title": data["title"],
             "description": data.get("description") or "", "raw_description": data.get("description") or "",
             "position": len(self.ticket_fields), "active": data.get("active", True),
             "required": bool(data.get("required", False)), "collapsed_for_agents": False,
             "regexp_for_validation": None, "title_in_portal": data["title"], "raw_title_in_portal": data["title"],
             "visible_in_portal": system, "editable_in_portal": system, "required_in_portal": False,
             "tag": data.get("tag"), "created_at": now, "updated_at": now, "removable": not system,
             }
        if data.get("agent_description"):
            f["agent_description"] = data["agent_description"]
        if data["type"] in ("tagger", "multiselect"):
            f["custom_field_options"] = options
        f["_system"] = system
        self.ticket_fields[fid] = f
        return f

    def _field_json(self, f: dict[str, JSON]) -> dict[str, JSON]:
        return {k: v for k, v in {**f, "url": self._url(f"ticket_fields/{f['id']}.json")}.items()
                if not k.startswith("_")}

    def _custom_fields(self) -> list[dict[str, JSON]]:
        return [f for f in self.ticket_fields.values() if not f["_system"] and f["active"]]

    def _list_fields(self, request: Request) -> Response:
        fields = [self._field_json(f) for f in self.ticket_fields.values()]
        return Response(200, self._page(request, "ticket_fields", fields, "ticket_fields.json"))

    def _create_field(self, request: Request) -> Response:
        data = self._body(request, "ticket_field")
        if not data.get("title") or not data.get("type"):
            raise self._invalid("title", "Title: cannot be blank", "BlankValue")
        known = ("text", "textarea", "checkbox", "date", "integer", "decimal", "regexp", "tagger", "multiselect")
        if data["type"] not in known:
            raise self._invalid("type", f"Type: {data['type']} is not a valid field type")
        if data["type"] in ("tagger", "multiselect") and not data.get("custom_field_options"):
            raise self._invalid("custom_field_options", "Field options: cannot be blank", "BlankValue")
        return Response(201, {"ticket_field": self._field_json(self._new_field(data))})

    def _show_field(self, request: Request) -> Response:
        f = self.ticket_fields.get(self._int_param(request, "ticket_field_id"))
        if f is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return Response(200, {"ticket_field": self._field_json(f)})

    # -- tickets: JSON ------------------------------------------------------
    def ticket_json(self, t: Ticket) -> dict[str, JSON]:
        custom = [{"id": f["id"], "value": t.custom.get(f["id"])} for f in self._custom_fields()]
        return {
            "url": self._url(f"tickets/{t.id}.json"), "id": t.id, "external_id": t.external_id,
            "via": {"channel": t.via_channel, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": iso(t.created), "updated_at": iso(t.updated), "generated_timestamp": int(t.updated),
            "type": t.type, "subject": t.subject, "raw_subject": t.subject, "description": t.description,
            "priority": t.priority, "status": t.status, "recipient": None, "requester_id": t.requester_id,
            "submitter_id": t.submitter_id, "assignee_id": t.assignee_id, "organization_id": t.organization_id,
            "group_id": t.group_id, "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
            "forum_topic_id": None, "problem_id": None, "has_incidents": False, "is_public": any(
                c["public"] for c in t.comments), "due_at": t.due_at, "tags": list(t.tags),
            "custom_fields": custom, "fields": custom, "satisfaction_rating": None,
            "sharing_agreement_ids": [], "followup_ids": [], "ticket_form_id": None, "brand_id": BRAND_ID,
            "allow_channelback": False, "allow_attachments": True, "from_messaging_channel": False,
        }

    # -- tickets: the one write path (HTTP handlers and actors) -----------------
    def _validate_custom(self, values: Iterable[dict[str, JSON]]) -> dict[int, JSON]:
        out: dict[int, JSON] = {}
        for item in values:
            fid = int(item.get("id", 0))
            f = self.ticket_fields.get(fid)
            if f is None or f["_system"]:
                continue   # Zendesk ignores unknown field ids
            value = item.get("value")
            if f["type"] == "tagger" and value not in (None, "") and \
                    value not in [o["value"] for o in f["custom_field_options"]]:
                raise self._invalid(str(fid), f"{f['title']}: {value} is not a valid option")
            out[fid] = None if value == "" else value
        return out

    def _apply_tagger_tags(self, t: Ticket, changed: dict[int, JSON]) -> None:
        """A dropdown's value is also a tag on the ticket (Zendesk keeps both in step)."""
        for fid, value in changed.items():
            f = self.ticket_fields[fid]
            if f["type"] != "tagger":
                continue
            option_tags = {o["value"] for o in f["custom_field_options"]}
            t.tags = [x for x in t.tags if x not in option_tags] + ([value] if value else [])

    def _apply_tags_to_taggers(self, t: Ticket) -> None:
        for f in self._custom_fields():
            if f["type"] == "tagger":
                present = [o["value"] for o in f["custom_field_options"] if o["value"] in t.tags]
                t.custom[f["id"]] = present[0] if present else None

    def _new_comment(self, t: Ticket, data: dict[str, JSON], author: dict[str, JSON], via: str) -> dict[str, JSON]:
        body = data.get("body")
        html = data.get("html_body")
        if not body and not html:
            raise self._invalid("comment", "Comment: cannot be blank", "BlankValue")
        plain = body if body else _strip_html(html or "")
        public = bool(data.get("public", True)) or author["role"] == "end-user"
        attachments: list[dict[str, JSON]] = []
        for token in data.get("uploads") or []:
            upload = self.uploads.pop(token, None)
            if upload is not None:
                attachments.extend(upload.attachments)
        cid = self._next("comment")
        return {"id": cid, "type": "Comment", "author_id": author["id"], "body": plain,
                "html_body": html or f'<div class="zd-comment" dir="auto"><p dir="auto">{_escape(plain)}</p></div>',
                "plain_body": plain, "public": public, "attachments": attachments, "audit_id": None,
                "via": {"channel": via, "source": {"from": {}, "to": {}, "rel": None}},
                "created_at": iso(self.clock.now()), "metadata": {"system": {}, "custom": {}}}

    def create_ticket_from(self, data: dict[str, JSON], caller: dict[str, JSON], via: str = "api") -> dict[str, JSON]:
        """Create a ticket from a ``ticket`` object as the API receives it; fires triggers.
        Returns ``{"ticket": ..., "audit": ...}``."""
        comment = data.get("comment")
        if not isinstance(comment, dict):
            raise self._invalid("base", "Description: cannot be blank", "BlankValue")
        status = data.get("status") or ("open" if data.get("assignee_id") else "new")
        if status not in STATUS_ORDER:
            raise self._invalid("status", f"Status: {status} is not valid")
        if isinstance(data.get("requester"), dict):
            requester_id = self._find_or_create_requester(data["requester"])
        else:
            requester_id = int(data.get("requester_id") or caller["id"])
        if requester_id not in self.users:
            raise self._invalid("requester", "Requester: is invalid", "InvalidValue")
        now = self.clock.now()
        custom = self._validate_custom(data.get("custom_fields") or [])
        t = Ticket(id=self._next("ticket"), subject=data.get("subject") or "", description="", status=status,
                   priority=data.get("priority"), type=data.get("type"), tags=_dedupe(data.get("tags") or []),
                   requester_id=requester_id, submitter_id=int(data.get("submitter_id") or caller["id"]),
                   organization_id=data.get("organization_id") or self.users[requester_id].get("organization_id"),
                   assignee_id=data.get("assignee_id"), group_id=data.get("group_id"), custom=custom,
                   external_id=data.get("external_id"), due_at=data.get("due_at"), created=now, updated=now,
                   via_channel=via)
        author = self.users.get(int(comment.get("author_id") or requester_id)) or self.users[requester_id]
        first = self._new_comment(t, comment, author, via)
        t.description = first["plain_body"]
        if not t.subject:
            t.subject = t.description[:80]
        self._apply_tagger_tags(t, custom)
        self._apply_tags_to_taggers(t)
        t.comments.append(first)
        self.tickets[t.id] = t
        audit = self._audit(t, caller, via, _field_events(None, self.ticket_json(t), "Create"), first)
        self._fire_triggers(UpdateContext(self.ticket_json(t), "Create", {}, caller, first))
        log.debug("zendesk_sim_ticket_created", ticket=t.id, via=via)
        return {"ticket": self.ticket_json(t), "audit": audit}

    def update_ticket_from(self, ticket_id: int, data: dict[str, JSON], caller: dict[str, JSON],
                           via: str = "api") -> dict[str, JSON]:
        """Apply a ``ticket`` object as ``PUT /tickets/{id}`` receives it; fires
        triggers when something changed. Returns ``{"ticket": ..., "audit": ...}``."""
        t = self._ticket(ticket_id)
        if t.status == "closed":
            raise self._invalid("status", "Status: closed prevents ticket update", "ClosedTicket")
        if data.get("safe_update") and data.get("updated_stamp") is not None:
            if _parse_stamp(str(data["updated_stamp"])) != int(t.updated):
                raise SimError(409, {"error": "UpdateConflict", "description":
                                     "Safe Update prevented the update due to outdated ticket data. "
                                     "Please fetch the latest ticket data and try again."})
        before = self.ticket_json(t)
        comment = self._new_comment(t, data["comment"], self._comment_author(data["comment"], caller), via) \
            if isinstance(data.get("comment"), dict) else None
        self._apply_attributes(t, data)
        if comment is not None:
            self._status_after_comment(t, data, comment)
        after = self.ticket_json(t)
        previous = {k: before[k] for k in after if k not in ("updated_at", "generated_timestamp")
                    and before[k] != after[k]}
        if not previous and comment is None:
            return {"ticket": after, "audit": None}   # nothing changed: no audit, no trigger
        t.updated = max(self.clock.now(), t.updated)
        if comment is not None:
            t.comments.append(comment)
        audit = self._audit(t, caller, via, _field_events(before, after, "Change"), comment)
        self._fire_triggers(UpdateContext(self.ticket_json(t), "Change", previous, caller, comment))
        log.debug("zendesk_sim_ticket_updated", ticket=t.id, via=via, changed=sorted(previous))
        return {"ticket": self.ticket_json(t), "audit": audit}

    def _comment_author(self, comment: dict[str, JSON], caller: dict[str, JSON]) -> dict[str, JSON]:
        author_id = comment.get("author_id")
        if author_id is None:
            return caller
        author = self.users.get(int(author_id))
        if author is None:
            raise self._invalid("comment", "Comment: author is invalid")
        return author

    def _apply_attributes(self, t: Ticket, data: dict[str, JSON]) -> None:
        status = data.get("status")
        if status is not None:
            if status not in STATUS_ORDER:
                raise self._invalid("status", f"Status: {status} is not valid")
            t.status = status
        for name in ("subject", "priority", "type", "assignee_id", "group_id", "external_id", "due_at",
                     "organization_id"):
            if name in data:
                setattr(t, name, data[name])
        if t.assignee_id and t.status == "new" and status is None:
            t.status = "open"
        if "tags" in data:
            t.tags = _dedupe(data["tags"] or [])
        if data.get("additional_tags"):
            t.tags = _dedupe([*t.tags, *_as_list(data["additional_tags"])])
        if data.get("remove_tags"):
            gone = set(_as_list(data["remove_tags"]))
            t.tags = [x for x in t.tags if x not in gone]
        tags_touched = any(k in data for k in ("tags", "additional_tags", "remove_tags"))
        if tags_touched:
            self._apply_tags_to_taggers(t)
        custom = self._validate_custom(data.get("custom_fields") or [])
        t.custom.update(custom)
        self._apply_tagger_tags(t, custom)

    @staticmethod
    def _status_after_comment(t: Ticket, data: dict[str, JSON], comment: dict[str, JSON]) -> None:
        if "status" in data:
            return
        # An end user writing reopens a waiting ticket; an agent's public reply opens a new one.
        if comment["author_id"] == t.requester_id and t.status in ("pending", "solved"):
            t.status = "open"
        elif comment["author_id"] != t.requester_id and comment["public"] and t.status == "new":
            t.status = "open"

    def _audit(self, t: Ticket, caller: dict[str, JSON], via: str, events: list[dict[str, JSON]],
               comment: dict[str, JSON] | None) -> dict[str, JSON]:
        aid = self._next("audit")
        evs = [{"id": self._next("event"), **e} for e in events]
        if comment is not None:
            comment["audit_id"] = aid
            evs.insert(0, {"id": comment["id"], "type": "Comment", "author_id": comment["author_id"],
                           "body": comment["body"], "html_body": comment["html_body"],
                           "plain_body": comment["plain_body"], "public": comment["public"],
                           "attachments": comment["attachments"], "audit_id": aid})
        audit = {"id": aid, "ticket_id": t.id, "created_at": iso(t.updated), "author_id": caller["id"],
                 "metadata": {"system": {}, "custom": {}}, "via": {"channel": via, "source": {}},
                 "events": evs, "_ts": t.updated}
        self.audits.append(audit)
        return _audit_json(audit)

    # -- triggers -> webhooks ------------------------------------------------
    def _fire_triggers(self, ctx: UpdateContext) -> None:
        for trigger in sorted(self.triggers.values(), key=lambda x: (x["position"], x["id"])):
            if not trigger.get("active", True) or not trigger_matches(trigger, ctx):
                continue
            for action in trigger.get("actions") or []:
                if action.get("field") == "notification_webhook":
                    self._invoke_webhook(action.get("value") or [], ctx)

    def _invoke_webhook(self, value: list[JSON], ctx: UpdateContext) -> None:
        if not value:
            return
        hook = self.webhook_defs.get(str(value[0]))
        if hook is None or hook["status"] != "active" or "conditional_ticket_events" not in hook["subscriptions"]:
            return
        template = value[1] if len(value) > 1 and isinstance(value[1], str) else ""
        values = placeholder_values(ctx, host=SUBDOMAIN_HOST.removeprefix("https://"),
                                    updated_at_iso=iso(self.tickets[ctx.ticket["id"]].updated))
        body = render_template(template, values).encode()
        headers = {"X-Zendesk-Account-Id": ACCOUNT_ID, "X-Zendesk-Webhook-Id": hook["id"],
                   "X-Zendesk-Webhook-Invocation-Id": str(self._next("invocation"))}
        self.webhooks.send(hook["endpoint"], body, headers)
        log.debug("zendesk_sim_webhook_queued", webhook=hook["id"], ticket=ctx.ticket["id"])

    # -- tickets: HTTP ------------------------------------------------------
    def _create_ticket(self, request: Request) -> Response:
        data = self._body(request, "ticket")
        key = request.header("idempotency-key")
        if key is None:
            result = self.create_ticket_from(data, self._caller(request))
            return Response(201, result, {"Location": result["ticket"]["url"]})
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        now = self.clock.now()
        self._idempotency = {k: v for k, v in self._idempotency.items() if v[3] > now}
        stored = self._idempotency.get(key)
        if stored is not None:
            if stored[0] != digest:
                raise SimError(400, {"error": "IdempotentRequestError",
                                     "description": "The request parameters do not match the original request "
                                                    "made with this idempotency key"})
            return Response(201, stored[2], {"x-idempotency-lookup": "hit", "Location": stored[2]["ticket"]["url"]})
        result = self.create_ticket_from(data, self._caller(request))
        self._idempotency[key] = (digest, result["ticket"]["id"], result, now + IDEMPOTENCY_TTL)
        return Response(201, result, {"x-idempotency-lookup": "miss", "Location": result["ticket"]["url"]})

    def _show_ticket(self, request: Request) -> Response:
        return Response(200, {"ticket": self.ticket_json(self._ticket(self._int_param(request, "ticket_id")))})

    def _list_tickets(self, request: Request) -> Response:
        items = [self.ticket_json(t) for t in self.tickets.values()]
        return Response(200, self._page(request, "tickets", items, "tickets.json"))

    def _show_many(self, request: Request) -> Response:
        raw = request.arg("ids") or ""
        try:
            ids = [int(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise SimError(400, {"error": "InvalidPaginationParameter", "description": "ids must be integers"})
        if len(ids) > 100:
            raise SimError(400, {"error": "TooManyValues", "description": "You can only specify up to 100 ids"})
        tickets = [self.ticket_json(self.tickets[i]) for i in ids if i in self.tickets]
        return Response(200, {"tickets": tickets, "count": len(tickets), "next_page": None, "previous_page": None})

    def _update_ticket_http(self, request: Request) -> Response:
        ticket_id = self._int_param(request, "ticket_id")
        data = self._body(request, "ticket")
        caller = self._caller(request)
        self._ticket(ticket_id)
        limited = self._ticket_update_limited(ticket_id, caller["id"])
        if limited is not None:
            return limited
        result = self.update_ticket_from(ticket_id, data, caller)
        if result["audit"] is None:
            result = {"ticket": result["ticket"]}
        return Response(200, result)

    def _ticket_update_limited(self, ticket_id: int, user_id: int) -> Response | None:
        if self.ticket_update_limit is None:
            return None
        now, window = self.clock.now(), self.ticket_update_window
        recent = [x for x in self._ticket_updates.get((ticket_id, user_id), []) if now - x < window]
        if len(recent) >= self.ticket_update_limit:
            self._ticket_updates[(ticket_id, user_id)] = recent
            retry = max(1, math.ceil(window - (now - recent[0])))
            return Response(429, {"error": "APIRateLimitExceeded", "description":
                                  "Rate limit for ticket updates exceeded, please wait before updating "
                                  "this ticket again"}, {"Retry-After": str(retry)})
        self._ticket_updates[(ticket_id, user_id)] = [*recent, now]
        return None

    def _list_comments(self, request: Request) -> Response:
        t = self._ticket(self._int_param(request, "ticket_id"))
        comments = list(t.comments)
        if request.arg("sort_order") == "desc" or request.arg("sort") == "-created_at":
            comments.reverse()
        return Response(200, self._page(request, "comments", comments, f"tickets/{t.id}/comments.json"))

    # -- uploads and attachments -------------------------------------------------
    def _upload(self, request: Request) -> Response:
        name = request.arg("filename")
        if not name:
            raise SimError(400, {"error": "InvalidEndpoint", "description": "filename is required"})
        ctype = request.header("content-type") or "application/octet-stream"
        att_token = secrets.token_urlsafe(18)
        aid = self._next("attachment")
        url = f"{self.base_url}/attachments/token/{att_token}/?name={quote(name)}"
        att = {"id": aid, "url": self._url(f"attachments/{aid}.json"), "file_name": name,
               "content_url": url, "mapped_content_url": url, "content_type": ctype,
               "size": len(request.body), "inline": False, "deleted": False,
               "malware_access_override": False, "malware_scan_result": "malware_not_found", "thumbnails": []}
        self.files[att_token] = (request.body, ctype)
        self.attachments[aid] = att
        token = request.arg("token")
        upload = self.uploads.get(token) if token else None
        if upload is None:
            upload = Upload(secrets.token_urlsafe(18), [], self.clock.now() + 3 * 86400)
            self.uploads[upload.token] = upload
        upload.attachments.append(att)
        return Response(201, {"upload": {"token": upload.token, "expires_at": iso(upload.expires),
                                         "attachment": att, "attachments": list(upload.attachments)}})

    def _delete_upload(self, request: Request) -> Response:
        if self.uploads.pop(request.params["token"], None) is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return Response(204)

    def _show_attachment(self, request: Request) -> Response:
        att = self.attachments.get(self._int_param(request, "attachment_id"))
        if att is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return Response(200, {"attachment": att})

    def _download(self, request: Request) -> Response:
        stored = self.files.get(request.params["token"])
        if stored is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return Response(200, stored[0], {"Content-Type": stored[1]})

    # -- incremental exports -------------------------------------------------------
    def _incremental_limited(self) -> Response | None:
        if self.incremental_rate_limit is None:
            return None
        now = time.monotonic()
        self._incremental_calls = [x for x in self._incremental_calls if now - x < 60.0]
        if len(self._incremental_calls) >= int(self.incremental_rate_limit):
            retry = max(1, math.ceil(60.0 - (now - self._incremental_calls[0])))
            return Response(429, {"error": "APIRateLimitExceeded", "description":
                                  "Number of allowed incremental export API requests per minute exceeded"},
                            {"Retry-After": str(retry)})
        self._incremental_calls.append(now)
        return None

    def _export_cursor(self, request: Request) -> Response:
        limited = self._incremental_limited()
        if limited is not None:
            return limited
        cursor, start = request.arg("cursor"), request.arg("start_time")
        if (cursor is None) == (start is None):
            raise SimError(400, {"error": "InvalidPaginationParameter",
                                 "description": "Exactly one of start_time or cursor is required"})
        if cursor is not None:
            position = _decode_cursor(cursor)
        else:
            position = (float(int(start or 0)) - 1e-6, 0)   # start_time is inclusive
        per_page = max(1, min(1000, int(request.arg("per_page") or 1000)))
        horizon = self.clock.now() - self.export_exclusion
        ready = sorted((t for t in self.tickets.values() if t.updated < horizon and (t.updated, t.id) > position),
                       key=lambda t: (t.updated, t.id))
        page = ready[:per_page]
        last = (page[-1].updated, page[-1].id) if page else position
        after = _encode_cursor(last)
        body = {"tickets": [self.ticket_json(t) for t in page], "after_cursor": after,
                "after_url": self._url(f"incremental/tickets/cursor.json?cursor={after}&per_page={per_page}"),
                "before_cursor": None, "before_url": None, "end_of_stream": len(ready) <= per_page}
        return Response(200, body)

    def _export_events(self, request: Request) -> Response:
        limited = self._incremental_limited()
        if limited is not None:
            return limited
        try:
            start = int(request.arg("start_time") or "")
        except ValueError:
            raise SimError(400, {"error": "InvalidPaginationParameter", "description": "start_time is required"})
        with_comments = "comment_events" in (request.arg("include") or "").split(",")
        per_page = max(1, min(1000, int(request.arg("per_page") or 1000)))
        horizon = self.clock.now() - self.export_exclusion
        ready = [a for a in self.audits if start <= a["_ts"] < horizon]
        page = ready[:per_page]
        end_time = int(page[-1]["_ts"]) if page else start
        query = f"start_time={end_time}" + ("&include=comment_events" if with_comments else "")
        return Response(200, {"ticket_events": [self._ticket_event(a, with_comments) for a in page],
                              "next_page": self._url(f"incremental/ticket_events.json?{query}"),
                              "count": len(page), "end_of_stream": len(ready) <= per_page, "end_time": end_time})

    def _ticket_event(self, audit: dict[str, JSON], with_comments: bool) -> dict[str, JSON]:
        via = "API" if audit["via"]["channel"] == "api" else "Web form"
        children = []
        comment_public = None
        for e in audit["events"]:
            if e["type"] == "Comment":
                comment_public = e["public"]
                if with_comments:
                    children.append({"id": e["id"], "via": via, "via_reference_id": None, "event_type": "Comment",
                                     "type": "Comment", "author_id": e["author_id"], "body": e["body"],
                                     "html_body": e["html_body"], "public": e["public"],
                                     "attachments": e["attachments"], "audit_id": audit["id"]})
            else:
                child = {"id": e["id"], "via": via, "via_reference_id": None,
                         "event_type": "Create" if e["type"] == "Create" else "Change", e["field_name"]: e["value"]}
                if "previous_value" in e:
                    child["previous_value"] = e["previous_value"]
                children.append(child)
        return {"id": audit["id"], "ticket_id": audit["ticket_id"], "timestamp": int(audit["_ts"]),
                "created_at": audit["created_at"], "updater_id": audit["author_id"], "via": via,
                "system": {}, "event_type": "Audit", "comment_present": comment_public is not None,
                "comment_public": bool(comment_public), "child_events": children}

    # -- triggers -----------------------------------------------------------------
    def _trigger_json(self, trig: dict[str, JSON]) -> dict[str, JSON]:
        return {**trig, "url": self._url(f"triggers/{trig['id']}.json")}

    def _store_trigger(self, trig: dict[str, JSON], data: dict[str, JSON]) -> dict[str, JSON]:
        for name in ("title", "description", "active", "position", "category_id"):
            if name in data:
                trig[name] = data[name]
        if "conditions" in data:
            trig["conditions"] = {"all": list((data["conditions"] or {}).get("all") or []),
                                  "any": list((data["conditions"] or {}).get("any") or [])}
        if "actions" in data:
            trig["actions"] = list(data["actions"] or [])
        trig["raw_title"] = trig["title"]
        trig["updated_at"] = iso(self.clock.now())
        return trig

    def _list_triggers(self, request: Request) -> Response:
        items = [self._trigger_json(x) for x in sorted(self.triggers.values(), key=lambda x: x["position"])]
        active = request.arg("active")
        if active is not None:
            items = [x for x in items if x["active"] == (active == "true")]
        return Response(200, self._page(request, "triggers", items, "triggers.json"))

    def _create_trigger(self, request: Request) -> Response:
        data = self._body(request, "trigger")
        if not data.get("title") or not data.get("actions") or "conditions" not in data:
            raise self._invalid("base", "Title, conditions and actions are required", "BlankValue")
        tid, now = self._next("trigger"), iso(self.clock.now())
        trig = {"id": tid, "title": "", "description": "", "active": True, "position": len(self.triggers) + 1,
                "default": False, "category_id": "1", "created_at": now, "conditions": {"all": [], "any": []},
                "actions": []}
        self.triggers[tid] = self._store_trigger(trig, data)
        return Response(201, {"trigger": self._trigger_json(trig)})

    def _get_trigger(self, request: Request) -> dict[str, JSON]:
        trig = self.triggers.get(self._int_param(request, "trigger_id"))
        if trig is None:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        return trig

    def _show_trigger(self, request: Request) -> Response:
        return Response(200, {"trigger": self._trigger_json(self._get_trigger(request))})

    def _update_trigger(self, request: Request) -> Response:
        trig = self._store_trigger(self._get_trigger(request), self._body(request, "trigger"))
        return Response(200, {"trigger": self._trigger_json(trig)})

    def _delete_trigger(self, request: Request) -> Response:
        del self.triggers[self._get_trigger(request)["id"]]
        return Response(204)

    # -- webhooks (the Webhooks API answers errors as {"errors": [...]}) --------------------
    @staticmethod
    def _webhook_error(status: int, code: str, title: str, detail: str = "") -> SimError:
        return SimError(status, {"errors": [{"code": code, "title": title, "detail": detail}]})

    def _webhook_json(self, hook: dict[str, JSON]) -> dict[str, JSON]:
        return dict(hook)

    def _list_webhooks(self, request: Request) -> Response:
        hooks = [self._webhook_json(h) for h in self.webhook_defs.values()]
        return Response(200, {"webhooks": hooks, "meta": {"has_more": False, "after_cursor": None,
                                                            "before_cursor": None},
                              "links": {"next": None, "prev": None}})

    def _create_webhook(self, request: Request) -> Response:
        data = self._body(request, "webhook")
        for name in ("name", "endpoint", "http_method", "request_format", "status"):
            if not data.get(name):
                raise self._webhook_error(400, "InvalidInput", "Invalid input", f"{name} is required")
        if not str(data["endpoint"]).startswith(("http://", "https://")):
            raise self._webhook_error(400, "InvalidInput", "Invalid input", "endpoint must be a URL")
        caller, now = self._caller(request), iso(self.clock.now())
        hid = _ulid(self.clock.now())
        hook = {"id": hid, "name": data["name"], "description": data.get("description"),
                "status": data["status"], "endpoint": data["endpoint"], "http_method": data["http_method"],
                "request_format": data["request_format"], "subscriptions": list(data.get("subscriptions") or []),
                "created_at": now, "created_by": str(caller["id"]), "updated_at": now, "updated_by": str(caller["id"])}
        self.webhook_defs[hid] = hook
        given = (data.get("signing_secret") or {}).get("secret")
        self.webhook_secrets[hid] = given or secrets.token_urlsafe(32)
        return Response(201, {"webhook": self._webhook_json(hook)})

    def _get_webhook(self, request: Request) -> dict[str, JSON]:
        hook = self.webhook_defs.get(request.params["webhook_id"])
        if hook is None:
            raise self._webhook_error(404, "WebhookNotFound", "Webhook not found")
        return hook

    def _show_webhook(self, request: Request) -> Response:
        return Response(200, {"webhook": self._webhook_json(self._get_webhook(request))})

    def _delete_webhook(self, request: Request) -> Response:
        hook = self._get_webhook(request)
        del self.webhook_defs[hook["id"]]
        return Response(204)

    def _signing_secret(self, request: Request) -> Response:
        hook = self._get_webhook(request)
        return Response(200, {"signing_secret": {"algorithm": "SHA256", "secret": self.webhook_secrets[hook["id"]]}})

    # -- actors: people acting through the same write path as the API -----------------
    def create_ticket(self, subject: str, body: str, *, requester_email: str = CUSTOMER_EMAIL,
                      tags: Iterable[str] = (), custom_fields: dict[int, JSON] | None = None,
                      priority: str | None = None) -> int:
        """A customer writes in through the web form; returns the ticket id."""
        with self.lock:
            requester = next(u for u in self.users.values() if u["email"] == requester_email) \
                if any(u["email"] == requester_email for u in self.users.values()) \
                else self._new_user({"email": requester_email, "name": requester_email})
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

    def customer_reply(self, ticket_id: int, body: str) -> int:
        """The requester writes again (e.g. answers the email); returns the comment id."""
        with self.lock:
            requester = self.users[self._ticket(ticket_id).requester_id]
            self.update_ticket_from(ticket_id, {"comment": {"body": body, "public": True}}, requester, via="web")
            return int(self.tickets[ticket_id].comments[-1]["id"])

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


# ---------------------------------------------------------------------------
# small pure helpers
# ---------------------------------------------------------------------------

def _audit_json(audit: dict[str, JSON]) -> dict[str, JSON]:
    """The audit as the ticket create/update answers carry it. Events whose value
    is a list or null (tags, cleared fields) are left out there: the document types
    ``value`` as string|integer. The incremental ticket events keep them all."""
    events = [e for e in audit["events"] if e["type"] == "Comment" or type(e.get("value")) in (str, int)]
    return {**{k: v for k, v in audit.items() if not k.startswith("_")}, "events": events}


_AUDITED = ("subject", "status", "priority", "type", "requester_id", "assignee_id", "group_id", "tags",
            "external_id", "due_at", "organization_id")


def _field_events(before: dict[str, JSON] | None, after: dict[str, JSON], kind: str) -> list[dict[str, JSON]]:
    """Audit events for what differs; custom fields are named by their id, as on Zendesk."""
    def flat(ticket: dict[str, JSON]) -> dict[str, JSON]:
        out = {k: ticket[k] for k in _AUDITED}
        out.update({str(c["id"]): c["value"] for c in ticket["custom_fields"]})
        return out

    new, old = flat(after), flat(before) if before is not None else {}
    events = []
    for name, value in new.items():
        if before is None and value in (None, [], ""):
            continue
        if before is not None and old.get(name) == value:
            continue
        event = {"type": kind, "field_name": name, "value": value}
        if before is not None:
            event["previous_value"] = old.get(name)
        events.append(event)
    return events


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    if not text:
        return ""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": "invalid cursor"})


def _encode_cursor(position: tuple[float, int]) -> str:
    # Same layout as Zendesk's opaque cursor: base64("<time>||<id>|").
    return _b64(f"{position[0]!r}||{position[1]}|")


def _decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        ts, _, rest = _unb64(cursor).partition("||")
        return float(ts), int(rest.rstrip("|"))
    except ValueError:
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": "invalid cursor"})


def _parse_stamp(stamp: str) -> int:
    import calendar
    try:
        return calendar.timegm(time.strptime(stamp.replace("+00:00", "Z")[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        raise SimError(400, {"error": "InvalidValue", "description": "updated_stamp is not a valid time"})


def _dedupe(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(t) for t in tags))


def _as_list(value: JSON) -> list[str]:
    return value.split() if isinstance(value, str) else list(value)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _strip_html(html: str) -> str:
    import re
    return re.sub(r"<[^>]+>", "", html).strip()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(now: float) -> str:
    """Zendesk webhook ids are ULIDs (``01F1KRFQ6BG29CNWFR60NK5FNY``)."""
    value = (int(now * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))
