"""Zendesk ticket fields: the system fields and the custom fields tickets carry.

Route handlers of :class:`syncd.sim.zendesk.ZendeskSim`; the state lives on the
sim (``sim.ticket_fields``).
"""

from __future__ import annotations


from syncd.sim import zendesk_http
from syncd.sim.core import JSON, Request, Response, SimError, iso
from syncd.sim.zendesk_state import ZendeskState


def new_field(sim: ZendeskState, data: dict[str, JSON], system: bool = False) -> dict[str, JSON]:
    fid, now = sim.next_id("field"), iso(sim.clock.now())
    options = [{"id": sim.next_id("option"), "name": o["name"], "raw_name": o["name"], "value": o["value"],
                "position": i, "default": False} for i, o in enumerate(data.get("custom_field_options") or [])]
    f = {"id": fid, "type": data["type"], "title": data["title"], "raw_title": data["title"],
         "description": data.get("description") or "", "raw_description": data.get("description") or "",
         "position": len(sim.ticket_fields), "active": data.get("active", True),
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
    sim.ticket_fields[fid] = f
    return f


def field_json(sim: ZendeskState, f: dict[str, JSON]) -> dict[str, JSON]:
    return {k: v for k, v in {**f, "url": sim.url(f"ticket_fields/{f['id']}.json")}.items()
            if not k.startswith("_")}


def custom_fields(sim: ZendeskState) -> list[dict[str, JSON]]:
    return [f for f in sim.ticket_fields.values() if not f["_system"] and f["active"]]


def list_fields(sim: ZendeskState, request: Request) -> Response:
    fields = [field_json(sim, f) for f in sim.ticket_fields.values()]
    return Response(200, zendesk_http.page(request, "ticket_fields", fields, sim.url("ticket_fields.json")))


def create_field(sim: ZendeskState, request: Request) -> Response:
    data = zendesk_http.body(request, "ticket_field")
    if not data.get("title") or not data.get("type"):
        raise zendesk_http.invalid("title", "Title: cannot be blank", "BlankValue")
    known = ("text", "textarea", "checkbox", "date", "integer", "decimal", "regexp", "tagger", "multiselect")
    if data["type"] not in known:
        raise zendesk_http.invalid("type", f"Type: {data['type']} is not a valid field type")
    if data["type"] in ("tagger", "multiselect") and not data.get("custom_field_options"):
        raise zendesk_http.invalid("custom_field_options", "Field options: cannot be blank", "BlankValue")
    return Response(201, {"ticket_field": field_json(sim, new_field(sim, data))})


def show_field(sim: ZendeskState, request: Request) -> Response:
    f = sim.ticket_fields.get(zendesk_http.int_param(request, "ticket_field_id"))
    if f is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return Response(200, {"ticket_field": field_json(sim, f)})
