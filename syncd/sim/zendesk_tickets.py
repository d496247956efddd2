"""Zendesk tickets: the ticket record, its JSON, the one write path that the
HTTP handlers and the actors share (comments, tags, custom fields, safe
updates, audits, triggers), and the ticket and comment routes.

The state lives on :class:`syncd.sim.zendesk.ZendeskSim` (``sim.tickets``,
``sim.audits``); callers hold ``sim.lock``.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Iterable

import structlog

from syncd.sim import zendesk_fields, zendesk_http, zendesk_statuses, zendesk_users, zendesk_webhooks
from syncd.sim.core import JSON, Request, Response, SimError, iso
from syncd.sim.zendesk_state import Ticket, ZendeskState
from syncd.sim.zendesk_triggers import STATUS_ORDER, UpdateContext

# Logged under the simulator's module name, as before the split.
log = structlog.get_logger("syncd.sim.zendesk")

BRAND_ID = 360000001           # every Zendesk account has a default brand
IDEMPOTENCY_TTL = 2 * 3600.0   # Zendesk keeps keys for two hours


def ticket_json(sim: ZendeskState, t: Ticket) -> dict[str, JSON]:
    custom = [{"id": f["id"], "value": t.custom.get(f["id"])} for f in zendesk_fields.custom_fields(sim)]
    return {
        "url": sim.url(f"tickets/{t.id}.json"), "id": t.id, "external_id": t.external_id,
        "via": {"channel": t.via_channel, "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso(t.created), "updated_at": iso(t.updated), "generated_timestamp": int(t.updated),
        "type": t.type, "subject": t.subject, "raw_subject": t.subject, "description": t.description,
        "priority": t.priority, "status": t.status, "custom_status_id": t.custom_status_id,
        "recipient": None, "requester_id": t.requester_id,
        "submitter_id": t.submitter_id, "assignee_id": t.assignee_id, "organization_id": t.organization_id,
        "group_id": t.group_id, "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
        "forum_topic_id": None, "problem_id": None, "has_incidents": False, "is_public": any(
            c["public"] for c in t.comments), "due_at": t.due_at, "tags": list(t.tags),
        "custom_fields": custom, "fields": custom, "satisfaction_rating": None,
        "sharing_agreement_ids": [], "followup_ids": [], "ticket_form_id": None, "brand_id": BRAND_ID,
        "allow_channelback": False, "allow_attachments": True, "from_messaging_channel": False,
    }


def validate_custom(sim: ZendeskState, values: Iterable[dict[str, JSON]]) -> dict[int, JSON]:
    out: dict[int, JSON] = {}
    for item in values:
        fid = int(item.get("id", 0))
        f = sim.ticket_fields.get(fid)
        if f is None or f["_system"]:
            continue   # Zendesk ignores unknown field ids
        value = item.get("value")
        if f["type"] == "tagger" and value not in (None, "") and \
                value not in [o["value"] for o in f["custom_field_options"]]:
            raise zendesk_http.invalid(str(fid), f"{f['title']}: {value} is not a valid option")
        out[fid] = None if value == "" else value
    return out


def apply_tagger_tags(sim: ZendeskState, t: Ticket, changed: dict[int, JSON]) -> None:
    """A dropdown's value is also a tag on the ticket (Zendesk keeps both in step)."""
    for fid, value in changed.items():
        f = sim.ticket_fields[fid]
        if f["type"] != "tagger":
            continue
        option_tags = {o["value"] for o in f["custom_field_options"]}
        t.tags = [x for x in t.tags if x not in option_tags] + ([value] if value else [])


def apply_tags_to_taggers(sim: ZendeskState, t: Ticket) -> None:
    for f in zendesk_fields.custom_fields(sim):
        if f["type"] == "tagger":
            present = [o["value"] for o in f["custom_field_options"] if o["value"] in t.tags]
            t.custom[f["id"]] = present[0] if present else None


def new_comment(sim: ZendeskState, t: Ticket, data: dict[str, JSON], author: dict[str, JSON],
                via: str) -> dict[str, JSON]:
    body = data.get("body")
    html = data.get("html_body")
    if not body and not html:
        raise zendesk_http.invalid("comment", "Comment: cannot be blank", "BlankValue")
    plain = body if body else _strip_html(html or "")
    public = bool(data.get("public", True)) or author["role"] == "end-user"
    attachments: list[dict[str, JSON]] = []
    for token in data.get("uploads") or []:
        upload = sim.uploads.pop(token, None)
        if upload is not None:
            attachments.extend(upload.attachments)
    cid = sim.next_id("comment")
    return {"id": cid, "type": "Comment", "author_id": author["id"], "body": plain,
            "html_body": html or f'<div class="zd-comment" dir="auto"><p dir="auto">{_escape(plain)}</p></div>',
            "plain_body": plain, "public": public, "attachments": attachments, "audit_id": None,
            "via": {"channel": via, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": iso(sim.clock.now()), "metadata": {"system": {}, "custom": {}}}


def create_ticket_from(sim: ZendeskState, data: dict[str, JSON], caller: dict[str, JSON],
                       via: str = "api") -> dict[str, JSON]:
    """Create a ticket from a ``ticket`` object as the API receives it; fires triggers.
    Returns ``{"ticket": ..., "audit": ...}``."""
    comment = data.get("comment")
    if not isinstance(comment, dict):
        raise zendesk_http.invalid("base", "Description: cannot be blank", "BlankValue")
    status = data.get("status") or ("open" if data.get("assignee_id") else "new")
    if status not in STATUS_ORDER:
        raise zendesk_http.invalid("status", f"Status: {status} is not valid")
    if isinstance(data.get("requester"), dict):
        requester_id = zendesk_users.find_or_create_requester(sim, data["requester"])
    else:
        requester_id = int(data.get("requester_id") or caller["id"])
    if requester_id not in sim.users:
        raise zendesk_http.invalid("requester", "Requester: is invalid", "InvalidValue")
    now = sim.clock.now()
    custom = validate_custom(sim, data.get("custom_fields") or [])
    t = Ticket(id=sim.next_id("ticket"), subject=data.get("subject") or "", description="", status=status,
               priority=data.get("priority"), type=data.get("type"), tags=_dedupe(data.get("tags") or []),
               requester_id=requester_id, submitter_id=int(data.get("submitter_id") or caller["id"]),
               organization_id=data.get("organization_id") or sim.users[requester_id].get("organization_id"),
               assignee_id=data.get("assignee_id"), group_id=data.get("group_id"), custom=custom,
               external_id=data.get("external_id"), due_at=data.get("due_at"), created=now, updated=now,
               via_channel=via)
    zendesk_statuses.apply_to_ticket(sim, t, data)
    zendesk_statuses.align(sim, t)
    author = sim.users.get(int(comment.get("author_id") or requester_id)) or sim.users[requester_id]
    first = new_comment(sim, t, comment, author, via)
    t.description = first["plain_body"]
    if not t.subject:
        t.subject = t.description[:80]
    apply_tagger_tags(sim, t, custom)
    apply_tags_to_taggers(sim, t)
    t.comments.append(first)
    sim.tickets[t.id] = t
    audit = record_audit(sim, t, caller, via, _field_events(None, ticket_json(sim, t), "Create"), first)
    zendesk_webhooks.fire_triggers(sim, UpdateContext(ticket_json(sim, t), "Create", {}, caller, first))
    log.debug("zendesk_sim_ticket_created", ticket=t.id, via=via)
    return {"ticket": ticket_json(sim, t), "audit": audit}


def update_ticket_from(sim: ZendeskState, ticket_id: int, data: dict[str, JSON], caller: dict[str, JSON],
                       via: str = "api") -> dict[str, JSON]:
    """Apply a ``ticket`` object as ``PUT /tickets/{id}`` receives it; fires
    triggers when something changed. Returns ``{"ticket": ..., "audit": ...}``."""
    t = sim.ticket(ticket_id)
    if t.status == "closed":
        raise zendesk_http.invalid("status", "Status: closed prevents ticket update", "ClosedTicket")
    if _stale_safe_update(data, t):
        # Checked before anything is read from the body: a refused update
        # changes nothing (no comment, no consumed upload, no trigger).
        raise SimError(409, {"error": "UpdateConflict", "description":
                             "Safe Update prevented the update due to outdated ticket data. "
                             "Please fetch the latest ticket data and try again."})
    before = ticket_json(sim, t)
    comment = new_comment(sim, t, data["comment"], comment_author(sim, data["comment"], caller), via) \
        if isinstance(data.get("comment"), dict) else None
    apply_attributes(sim, t, data)
    if comment is not None:
        status_after_comment(t, data, comment)
    zendesk_statuses.align(sim, t)
    after = ticket_json(sim, t)
    previous = {k: before[k] for k in after if k not in ("updated_at", "generated_timestamp")
                and before[k] != after[k]}
    if not previous and comment is None:
        return {"ticket": after, "audit": None}   # nothing changed: no audit, no trigger
    t.updated = max(sim.clock.now(), t.updated)
    if comment is not None:
        t.comments.append(comment)
    audit = record_audit(sim, t, caller, via, _field_events(before, after, "Change"), comment)
    zendesk_webhooks.fire_triggers(sim, UpdateContext(ticket_json(sim, t), "Change", previous, caller, comment))
    log.debug("zendesk_sim_ticket_updated", ticket=t.id, via=via, changed=sorted(previous))
    return {"ticket": ticket_json(sim, t), "audit": audit}


def comment_author(sim: ZendeskState, comment: dict[str, JSON], caller: dict[str, JSON]) -> dict[str, JSON]:
    author_id = comment.get("author_id")
    if author_id is None:
        return caller
    author = sim.users.get(int(author_id))
    if author is None:
        raise zendesk_http.invalid("comment", "Comment: author is invalid")
    return author


def apply_attributes(sim: ZendeskState, t: Ticket, data: dict[str, JSON]) -> None:
    status = data.get("status")
    if status is not None:
        if status not in STATUS_ORDER:
            raise zendesk_http.invalid("status", f"Status: {status} is not valid")
        t.status = status
    zendesk_statuses.apply_to_ticket(sim, t, data)   # a custom status decides the status
    if data.get("custom_status_id") is not None:
        status = t.status
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
        apply_tags_to_taggers(sim, t)
    custom = validate_custom(sim, data.get("custom_fields") or [])
    t.custom.update(custom)
    apply_tagger_tags(sim, t, custom)


def status_after_comment(t: Ticket, data: dict[str, JSON], comment: dict[str, JSON]) -> None:
    if "status" in data:
        return
    # An end user writing reopens a waiting ticket; an agent's public reply opens a new one.
    if comment["author_id"] == t.requester_id and t.status in ("pending", "solved"):
        t.status = "open"
    elif comment["author_id"] != t.requester_id and comment["public"] and t.status == "new":
        t.status = "open"


def record_audit(sim: ZendeskState, t: Ticket, caller: dict[str, JSON], via: str, events: list[dict[str, JSON]],
                 comment: dict[str, JSON] | None) -> dict[str, JSON]:
    aid = sim.next_id("audit")
    evs = [{"id": sim.next_id("event"), **e} for e in events]
    if comment is not None:
        comment["audit_id"] = aid
        evs.insert(0, {"id": comment["id"], "type": "Comment", "author_id": comment["author_id"],
                       "body": comment["body"], "html_body": comment["html_body"],
                       "plain_body": comment["plain_body"], "public": comment["public"],
                       "attachments": comment["attachments"], "audit_id": aid})
    audit = {"id": aid, "ticket_id": t.id, "created_at": iso(t.updated), "author_id": caller["id"],
             "metadata": {"system": {}, "custom": {}}, "via": {"channel": via, "source": {}},
             "events": evs, "_ts": t.updated}
    sim.audits.append(audit)
    return _audit_json(audit)


def create_ticket_http(sim: ZendeskState, request: Request) -> Response:
    data = zendesk_http.body(request, "ticket")
    key = request.header("idempotency-key")
    if key is None:
        result = create_ticket_from(sim, data, sim.caller(request))
        return Response(201, result, {"Location": result["ticket"]["url"]})
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    now = sim.clock.now()
    sim.idempotency = {k: v for k, v in sim.idempotency.items() if v[3] > now}
    stored = sim.idempotency.get(key)
    if stored is not None:
        if stored[0] != digest:
            raise SimError(400, {"error": "IdempotentRequestError",
                                 "description": "The request parameters do not match the original request "
                                                "made with this idempotency key"})
        return Response(201, stored[2], {"x-idempotency-lookup": "hit", "Location": stored[2]["ticket"]["url"]})
    result = create_ticket_from(sim, data, sim.caller(request))
    sim.idempotency[key] = (digest, result["ticket"]["id"], result, now + IDEMPOTENCY_TTL)
    return Response(201, result, {"x-idempotency-lookup": "miss", "Location": result["ticket"]["url"]})


def tickets_out(sim: ZendeskState, request: Request, tickets: Iterable[Ticket]) -> list[dict[str, JSON]]:
    """Tickets as a GET answers them. ``?include=comment_count`` adds an integer
    ``comment_count`` property to each ticket (Zendesk's tickets reference:
    "include a comment_count property in the JSON objects returned by GET
    requests by sideloading it"); it counts every comment, public or private."""
    counted = "comment_count" in _includes(request)
    return [ticket_json(sim, t) | ({"comment_count": len(t.comments)} if counted else {}) for t in tickets]


def show_ticket(sim: ZendeskState, request: Request) -> Response:
    (ticket,) = tickets_out(sim, request, [sim.ticket(zendesk_http.int_param(request, "ticket_id"))])
    answer: dict[str, JSON] = {"ticket": ticket}
    if "users" in _includes(request):
        answer["users"] = users_sideload(sim, [ticket.get(k) for k in ("requester_id", "submitter_id", "assignee_id")])
    if "organizations" in _includes(request):
        org = sim.organizations.get(ticket.get("organization_id"))  # type: ignore[arg-type]
        answer["organizations"] = [zendesk_users.org_json(sim, org)] if org else []
    return Response(200, answer)


def users_sideload(sim: ZendeskState, ids: Iterable[object]) -> list[dict[str, JSON]]:
    """``?include=users``: the users a GET answer refers to, once each, in a top-level
    ``users`` list (Zendesk's side-loading; comments accept it per the reference)."""
    wanted = dict.fromkeys(i for i in ids if isinstance(i, int) and i in sim.users)
    return [zendesk_users.user_json(sim, sim.users[i]) for i in wanted]


def list_tickets(sim: ZendeskState, request: Request) -> Response:
    items = tickets_out(sim, request, sim.tickets.values())
    return Response(200, zendesk_http.page(request, "tickets", items, sim.url("tickets.json")))


def show_many(sim: ZendeskState, request: Request) -> Response:
    raw = request.arg("ids") or ""
    try:
        ids = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": "ids must be integers"})
    if len(ids) > 100:
        raise SimError(400, {"error": "TooManyValues", "description": "You can only specify up to 100 ids"})
    tickets = tickets_out(sim, request, [sim.tickets[i] for i in ids if i in sim.tickets])
    return Response(200, {"tickets": tickets, "count": len(tickets), "next_page": None, "previous_page": None})


def update_ticket_http(sim: ZendeskState, request: Request) -> Response:
    ticket_id = zendesk_http.int_param(request, "ticket_id")
    data = zendesk_http.body(request, "ticket")
    caller = sim.caller(request)
    sim.ticket(ticket_id)
    limited = ticket_update_limited(sim, ticket_id, caller["id"])
    if limited is not None:
        return limited
    result = update_ticket_from(sim, ticket_id, data, caller)
    if result["audit"] is None:
        # Nothing changed, so no new audit; Zendesk still answers {ticket, audit}
        # and the audit it shows is the ticket's latest, an older one.
        result = {"ticket": result["ticket"], "audit": latest_audit(sim, ticket_id)}
    return Response(200, result)


def latest_audit(sim: ZendeskState, ticket_id: int) -> dict[str, JSON]:
    # Every ticket has at least its creation audit.
    return _audit_json(next(a for a in reversed(sim.audits) if a["ticket_id"] == ticket_id))


def ticket_update_limited(sim: ZendeskState, ticket_id: int, user_id: int) -> Response | None:
    if sim.ticket_update_limit is None:
        return None
    now, window = sim.clock.now(), sim.ticket_update_window
    recent = [x for x in sim.ticket_updates.get((ticket_id, user_id), []) if now - x < window]
    if len(recent) >= sim.ticket_update_limit:
        sim.ticket_updates[(ticket_id, user_id)] = recent
        retry = max(1, math.ceil(window - (now - recent[0])))
        return Response(429, {"error": "APIRateLimitExceeded", "description":
                              "Rate limit for ticket updates exceeded, please wait before updating "
                              "this ticket again"}, {"Retry-After": str(retry)})
    sim.ticket_updates[(ticket_id, user_id)] = [*recent, now]
    return None


def list_comments(sim: ZendeskState, request: Request) -> Response:
    t = sim.ticket(zendesk_http.int_param(request, "ticket_id"))
    comments = list(t.comments)
    if request.arg("sort_order") == "desc" or request.arg("sort") == "-created_at":
        comments.reverse()
    page = zendesk_http.page(request, "comments", comments, sim.url(f"tickets/{t.id}/comments.json"))
    if "users" in _includes(request):
        page["users"] = users_sideload(sim, [c.get("author_id") for c in page["comments"]])
    return Response(200, page)


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


def _stale_safe_update(data: dict[str, JSON], t: Ticket) -> bool:
    """Whether a safe update must be refused: ``safe_update`` is present and
    ``updated_stamp`` is not the ticket's ``updated_at``.

    Zendesk documents that ``safe_update: false`` "has the same effect as true";
    only leaving the property out makes the update unsafe. Both sides are
    compared in whole seconds, Zendesk's resolution: a second update within the
    same second as the one the caller read is invisible to the check, on the
    real service as here."""
    if "safe_update" not in data or data.get("updated_stamp") is None:
        return False
    return _parse_stamp(str(data["updated_stamp"])) != int(t.updated)


def _parse_stamp(stamp: str) -> int:
    """An ISO-8601 time (``Z`` or an offset) as whole epoch seconds."""
    try:
        parsed = datetime.fromisoformat(stamp.strip())
    except ValueError:
        raise SimError(400, {"error": "InvalidValue", "description": "updated_stamp is not a valid time"})
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return math.floor(parsed.timestamp())


def _includes(request: Request) -> set[str]:
    """The sideloads asked for with ``?include=a,b``."""
    return {name.strip() for name in (request.arg("include") or "").split(",") if name.strip()}


def _dedupe(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(t) for t in tags))


def _as_list(value: JSON) -> list[str]:
    return value.split() if isinstance(value, str) else list(value)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _strip_html(html: str) -> str:
    import re
    return re.sub(r"<[^>]+>", "", html).strip()
