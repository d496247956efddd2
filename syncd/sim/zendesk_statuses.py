"""Zendesk custom ticket statuses (``/api/v2/custom_statuses``), as the Support
API document describes them (shared/vendor-specs/zendesk-support.yaml,
"Custom Ticket Statuses"; no recording of them exists in ../shared/realworld).

Every account has one default custom status per category (new, open, pending,
hold, solved); admins add more ("Waiting on engineering" in *open*, "Fix
released" in *solved*). A ticket carries ``custom_status_id``: setting it sets
``status`` to the custom status's category; setting ``status`` alone moves the
ticket to that category's default custom status (a ticket whose custom status is
already in the category keeps it). ``closed`` has no custom status of its own.

Route handlers of :class:`syncd.sim.zendesk.ZendeskSim`; the state is
``sim.custom_statuses`` (id → object).
"""

from __future__ import annotations


from syncd.sim import zendesk_http
from syncd.sim.core import JSON, Request, Response, SimError, iso
from syncd.sim.zendesk_state import Ticket, ZendeskState

CATEGORIES = ("new", "open", "pending", "hold", "solved")
DEFAULT_LABELS = {"new": "New", "open": "Open", "pending": "Pending", "hold": "On-hold", "solved": "Solved"}
MAX_LABEL = 48


def seed_defaults(sim: ZendeskState) -> None:
    for category in CATEGORIES:
        new_status(sim, {"status_category": category, "agent_label": DEFAULT_LABELS[category]}, default=True)


def new_status(sim: ZendeskState, data: dict[str, JSON], default: bool = False) -> dict[str, JSON]:
    category, label = data.get("status_category"), data.get("agent_label")
    if category not in CATEGORIES:
        raise zendesk_http.invalid("status_category", f"Status category: {category} is not valid")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise zendesk_http.invalid("agent_label", "Agent label: is invalid", "InvalidValue")
    if any(s["agent_label"].lower() == label.lower() and s["status_category"] == category
           for s in sim.custom_statuses.values()):
        raise zendesk_http.invalid("agent_label", "Agent label: has already been taken", "DuplicateValue")
    now = iso(sim.clock.now())
    sid = sim.next_id("custom_status")
    status = {"id": sid, "status_category": category,
              "agent_label": label, "raw_agent_label": label,
              "end_user_label": data.get("end_user_label") or label,
              "raw_end_user_label": data.get("end_user_label") or label,
              "description": data.get("description") or "", "raw_description": data.get("description") or "",
              "end_user_description": data.get("end_user_description") or "",
              "raw_end_user_description": data.get("end_user_description") or "",
              "active": bool(data.get("active", True)), "default": default, "created_at": now, "updated_at": now}
    sim.custom_statuses[sid] = status
    return status


def default_for(sim: ZendeskState, category: str) -> dict[str, JSON]:
    return next(s for s in sim.custom_statuses.values() if s["status_category"] == category and s["default"])


def apply_to_ticket(sim: ZendeskState, t: Ticket, data: dict[str, JSON]) -> None:
    """A ``custom_status_id`` in a ticket write: checked, and the status follows it."""
    if "custom_status_id" not in data or data["custom_status_id"] is None:
        return
    raw = data["custom_status_id"]
    found = sim.custom_statuses.get(raw) if isinstance(raw, int) and not isinstance(raw, bool) else None
    if found is None or not found["active"]:
        raise zendesk_http.invalid("custom_status_id", "Custom status: is invalid", "InvalidValue")
    t.custom_status_id = int(found["id"])
    t.status = str(found["status_category"])


def align(sim: ZendeskState, t: Ticket) -> None:
    """After any write: a ticket whose status left its custom status's category
    moves to the new category's default (closed keeps the solved one)."""
    if t.status == "closed":
        return
    current = sim.custom_statuses.get(t.custom_status_id) if t.custom_status_id is not None else None
    if current is None or current["status_category"] != t.status:
        t.custom_status_id = int(default_for(sim, t.status)["id"])


def list_statuses(sim: ZendeskState, request: Request) -> Response:
    found = list(sim.custom_statuses.values())
    categories = request.arg("status_categories")
    if categories:
        wanted = {c.strip() for c in categories.split(",")}
        found = [s for s in found if s["status_category"] in wanted]
    for name in ("active", "default"):
        value = request.arg(name)
        if value is not None:
            found = [s for s in found if s[name] is (value.lower() == "true")]
    return Response(200, {"custom_statuses": [_out(sim, s) for s in found]})   # "No pagination is provided"


def show_status(sim: ZendeskState, request: Request) -> Response:
    return Response(200, {"custom_status": _out(sim, _status(sim, request))})


def create_status(sim: ZendeskState, request: Request) -> Response:
    return Response(201, {"custom_status": _out(sim, new_status(sim, zendesk_http.body(request, "custom_status")))})


def update_status(sim: ZendeskState, request: Request) -> Response:
    status = _status(sim, request)
    data = zendesk_http.body(request, "custom_status")
    for key in ("agent_label", "end_user_label", "description", "end_user_description", "active"):
        if key in data:
            status[key] = data[key]
            if f"raw_{key}" in status:
                status[f"raw_{key}"] = data[key]
    status["updated_at"] = iso(sim.clock.now())
    return Response(200, {"custom_status": _out(sim, status)})


def _out(sim: ZendeskState, status: dict[str, JSON]) -> dict[str, JSON]:
    return {"url": sim.url(f"custom_statuses/{status['id']}.json"), **status}


def _status(sim: ZendeskState, request: Request) -> dict[str, JSON]:
    found = sim.custom_statuses.get(zendesk_http.int_param(request, "custom_status_id"))
    if found is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return found
