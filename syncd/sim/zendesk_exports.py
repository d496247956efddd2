"""Zendesk incremental exports: the cursor-based ticket export and the ticket
events stream (``include=comment_events``), with the one-minute exclusion and
their own rate limit; and the opaque cursors Zendesk pages with.
"""

from __future__ import annotations

import math
import time

from syncd.sim import zendesk_tickets
from syncd.sim import zendesk_http
from syncd.sim.core import JSON, Request, Response, SimError
from syncd.sim.zendesk_state import ZendeskState


def incremental_limited(sim: ZendeskState) -> Response | None:
    if sim.incremental_rate_limit is None:
        return None
    now = time.monotonic()
    sim.incremental_calls = [x for x in sim.incremental_calls if now - x < 60.0]
    if len(sim.incremental_calls) >= int(sim.incremental_rate_limit):
        retry = max(1, math.ceil(60.0 - (now - sim.incremental_calls[0])))
        return Response(429, {"error": "APIRateLimitExceeded", "description":
                              "Number of allowed incremental export API requests per minute exceeded"},
                        {"Retry-After": str(retry)})
    sim.incremental_calls.append(now)
    return None


def export_cursor(sim: ZendeskState, request: Request) -> Response:
    limited = incremental_limited(sim)
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
    horizon = sim.clock.now() - sim.export_exclusion
    ready = sorted((t for t in sim.tickets.values() if t.updated < horizon and (t.updated, t.id) > position),
                   key=lambda t: (t.updated, t.id))
    page = ready[:per_page]
    last = (page[-1].updated, page[-1].id) if page else position
    after = _encode_cursor(last)
    body = {"tickets": zendesk_tickets.tickets_out(sim, request, page), "after_cursor": after,
            "after_url": sim.url(f"incremental/tickets/cursor.json?cursor={after}&per_page={per_page}"),
            "before_cursor": None, "before_url": None, "end_of_stream": len(ready) <= per_page}
    return Response(200, body)


def export_events(sim: ZendeskState, request: Request) -> Response:
    limited = incremental_limited(sim)
    if limited is not None:
        return limited
    try:
        start = int(request.arg("start_time") or "")
    except ValueError:
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": "start_time is required"})
    with_comments = "comment_events" in zendesk_tickets._includes(request)
    per_page = max(1, min(1000, int(request.arg("per_page") or 1000)))
    horizon = sim.clock.now() - sim.export_exclusion
    ready = [a for a in sim.audits if start <= a["_ts"] < horizon]
    page = ready[:per_page]
    end_time = int(page[-1]["_ts"]) if page else start
    query = f"start_time={end_time}" + ("&include=comment_events" if with_comments else "")
    return Response(200, {"ticket_events": [ticket_event(sim, a, with_comments) for a in page],
                          "next_page": sim.url(f"incremental/ticket_events.json?{query}"),
                          "count": len(page), "end_of_stream": len(ready) <= per_page, "end_time": end_time})


def ticket_event(sim: ZendeskState, audit: dict[str, JSON], with_comments: bool) -> dict[str, JSON]:
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


def _encode_cursor(position: tuple[float, int]) -> str:
    # Same layout as Zendesk's opaque cursor: base64("<time>||<id>|").
    return zendesk_http.b64(f"{position[0]!r}||{position[1]}|")


def _decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        ts, _, rest = zendesk_http.unb64(cursor).partition("||")
        return float(ts), int(rest.rstrip("|"))
    except ValueError:
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": "invalid cursor"})
