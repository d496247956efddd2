"""Zendesk's own Jira integration links (``GET /api/v2/jira/links``).

Source: Zendesk developer reference, "Jira links"
(https://developer.zendesk.com/api-reference/ticketing/jira/links/): a link is
``{id, ticket_id, issue_id, issue_key, created_at, updated_at, url}``; the list
is "ordered by id", 1000 links per page by default, paged with ``page[size]`` and
``page[after]`` (an integer: the page starts with the link right after that id),
and ``filter[ticket_id]`` narrows it to one ticket. The reference does not show
the list's answer; this simulator answers as Zendesk's other cursor-paged lists
do (``meta.has_more``, ``meta.after_cursor``), with the cursor being the last
link id of the page, and ``links`` holding the records (so no pagination
``links`` object, which would collide with it).

The integration keeps the key it last saw: after a Jira move or delete the
stored key goes stale, which is what ``syncd links import`` must notice.
"""

from __future__ import annotations

from syncd.sim.core import JSON, Request, Response, SimError, iso
from syncd.sim.zendesk_state import ZendeskState

DEFAULT_PAGE = 1000


def link_json(sim: ZendeskState, link: dict[str, JSON]) -> dict[str, JSON]:
    return {**link, "url": sim.url(f"jira/links/{link['id']}.json")}


def _int_arg(request: Request, name: str) -> int | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": f"{name} must be an integer"})


def list_links(sim: ZendeskState, request: Request) -> Response:
    size = _int_arg(request, "page[size]") or DEFAULT_PAGE
    after = _int_arg(request, "page[after]") or 0
    ticket = _int_arg(request, "filter[ticket_id]")
    with sim.lock:
        found = sorted((l for l in sim.jira_links.values()
                        if int(l["id"]) > after and (ticket is None or l["ticket_id"] == ticket)),
                       key=lambda l: int(l["id"]))
        chunk = [link_json(sim, l) for l in found[:max(1, min(size, DEFAULT_PAGE))]]
    more = len(found) > len(chunk)
    return Response(200, {"links": chunk, "meta": {"has_more": more,
                                                    "after_cursor": str(chunk[-1]["id"]) if chunk else None}})


def add_link(sim: ZendeskState, ticket_id: int, issue_id: str, issue_key: str) -> dict[str, JSON]:
    """What an agent's "link issue" in the integration's sidebar leaves behind."""
    with sim.lock:
        now = iso(sim.clock.now())
        link: dict[str, JSON] = {"id": sim.next_id("jira_link"), "ticket_id": ticket_id, "issue_id": str(issue_id),
                                 "issue_key": issue_key, "created_at": now, "updated_at": now}
        sim.jira_links[int(link["id"])] = link
        return link
