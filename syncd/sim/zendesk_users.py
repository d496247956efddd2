"""Zendesk users and organizations: the people of the simulated account.

Route handlers of :class:`syncd.sim.zendesk.ZendeskSim` (each takes the sim and
the request); the state lives on the sim (``sim.users``, ``sim.organizations``).
"""

from __future__ import annotations


from syncd.sim import zendesk_http
from syncd.sim.core import JSON, Request, Response, SimError, iso
from syncd.sim.zendesk_state import ZendeskState


def new_user(sim: ZendeskState, data: dict[str, JSON]) -> dict[str, JSON]:
    uid, now = sim.next_id("user"), iso(sim.clock.now())
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
    sim.users[uid] = user
    return user


def user_json(sim: ZendeskState, user: dict[str, JSON]) -> dict[str, JSON]:
    # Zendesk sends null for unset user attributes (last_login_at, photo,
    # default_group_id...); the document forbids null there, so unset keys are
    # left out instead - the same to zenpy, which defaults them to None.
    return {k: v for k, v in {**user, "url": sim.url(f"users/{user['id']}.json")}.items() if v is not None}


def find_or_create_requester(sim: ZendeskState, requester: dict[str, JSON]) -> int:
    email = requester.get("email")
    found = next((u for u in sim.users.values() if email and u["email"] == email), None)
    return (found or new_user(sim, {"name": requester.get("name"), "email": email}))["id"]


def me(sim: ZendeskState, request: Request) -> Response:
    return Response(200, {"user": user_json(sim, sim.caller(request))})


def list_sessions(sim: ZendeskState, request: Request) -> Response:
    """ListSessions: an admin sees every session of the account."""
    return Response(200, {"sessions": list(sim.sessions), "next_page": None, "previous_page": None, "count": len(sim.sessions)})


def list_users(sim: ZendeskState, request: Request) -> Response:
    users = [user_json(sim, u) for u in sim.users.values()]
    role = request.arg("role")
    if role:
        users = [u for u in users if u["role"] == role]
    return Response(200, zendesk_http.page(request, "users", users, sim.url("users.json")))


def create_user(sim: ZendeskState, request: Request) -> Response:
    data = zendesk_http.body(request, "user")
    if not data.get("name"):
        raise zendesk_http.invalid("name", "Name: cannot be blank", "BlankValue")
    if data.get("email") and any(u["email"] == data["email"] for u in sim.users.values()):
        raise zendesk_http.invalid("email", f"Email: {data['email']} is already being used by another user",
                            "DuplicateValue")
    return Response(201, {"user": user_json(sim, new_user(sim, data))})


def show_user(sim: ZendeskState, request: Request) -> Response:
    user = sim.users.get(zendesk_http.int_param(request, "user_id"))
    if user is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return Response(200, {"user": user_json(sim, user)})


def new_org(sim: ZendeskState, data: dict[str, JSON]) -> dict[str, JSON]:
    oid, now = sim.next_id("org"), iso(sim.clock.now())
    org = {"id": oid, "name": data["name"], "created_at": now, "updated_at": now,
           "details": data.get("details"), "notes": data.get("notes"), "external_id": data.get("external_id"),
           "group_id": None, "domain_names": list(data.get("domain_names") or []), "shared_comments": False,
           "shared_tickets": False, "tags": list(data.get("tags") or []), "organization_fields": {}}
    sim.organizations[oid] = org
    return org


def org_json(sim: ZendeskState, org: dict[str, JSON]) -> dict[str, JSON]:
    return {**org, "url": sim.url(f"organizations/{org['id']}.json")}


def list_orgs(sim: ZendeskState, request: Request) -> Response:
    orgs = [org_json(sim, o) for o in sim.organizations.values()]
    return Response(200, zendesk_http.page(request, "organizations", orgs, sim.url("organizations.json")))


def create_org(sim: ZendeskState, request: Request) -> Response:
    data = zendesk_http.body(request, "organization")
    if not data.get("name"):
        raise zendesk_http.invalid("name", "Name: cannot be blank", "BlankValue")
    if any(o["name"] == data["name"] for o in sim.organizations.values()):
        raise zendesk_http.invalid("name", "Name: has already been taken", "DuplicateValue")
    return Response(201, {"organization": org_json(sim, new_org(sim, data))})


def show_org(sim: ZendeskState, request: Request) -> Response:
    org = sim.organizations.get(zendesk_http.int_param(request, "organization_id"))
    if org is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return Response(200, {"organization": org_json(sim, org)})
