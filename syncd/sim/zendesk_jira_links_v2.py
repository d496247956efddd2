"""The links of Zendesk's Jira integration V2 (``GET /api/v2/integrations/jira/{external_id}/links``).

Source: Zendesk developer reference, "JIRA Integration Links (V2)"
(https://developer.zendesk.com/api-reference/ticketing/jira_v2/jira_integration_links_v2/):
a link is ``{ticket_id, issue_id, issue_key}``, all three strings (the V1 list
answers ``ticket_id`` as an integer); ``external_id`` names the integration (Admin
Center > Integrations > Jira > Edit). The list is cursor-paged with ``page[after]``
or ``page[before]`` (string cursors), ``page[size]`` (default 100, at most 100), and
filtered by ``ticket_id`` and ``issue_id``. Admins only.

The reference shows neither the answer's shape nor what an unknown external id
answers. This simulator answers as Zendesk's other cursor-paged lists do
(``meta.has_more``, ``meta.after_cursor``, ``meta.before_cursor``) with the
records under ``links`` (so no pagination ``links`` object, as in
:mod:`syncd.sim.zendesk_jira_links`), cursors are opaque strings, and an unknown
integration is a 404 ``RecordNotFound`` like any unknown Zendesk record.
"""

from __future__ import annotations

import base64
import binascii

from syncd.sim.core import JSON, Request, Response, SimError
from syncd.sim.zendesk_state import ZendeskState

DEFAULT_PAGE = 100
MAX_PAGE = 100


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"v2link:{seq}".encode()).decode().rstrip("=")


def _position(cursor: str, name: str) -> int:
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        kind, _, seq = text.partition(":")
        if kind != "v2link":
            raise ValueError(cursor)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": f"{name} is not a valid cursor"})


def _size(request: Request) -> int:
    raw = request.arg("page[size]")
    if raw in (None, ""):
        return DEFAULT_PAGE
    try:
        size = int(raw or "")
    except ValueError:
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": "page[size] must be an integer"})
    if not 1 <= size <= MAX_PAGE:
        raise SimError(400, {"error": "InvalidPaginationParameter",
                             "description": f"page[size] must be between 1 and {MAX_PAGE}"})
    return size


def list_links(sim: ZendeskState, request: Request) -> Response:
    external_id = request.params["external_id"]
    size = _size(request)
    after, before = request.arg("page[after]"), request.arg("page[before]")
    ticket, issue = request.arg("ticket_id"), request.arg("issue_id")
    with sim.lock:
        if external_id not in sim.jira_v2_links:
            raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
        found = [l for l in sim.jira_v2_links[external_id]
                 if (ticket is None or l["ticket_id"] == ticket) and (issue is None or l["issue_id"] == issue)]
        if before:
            end = _position(before, "page[before]")
            earlier = [l for l in found if int(l["_seq"]) < end]
            chunk, more = earlier[-size:], len(earlier) > size
        else:
            start = _position(after, "page[after]") if after else 0
            later = [l for l in found if int(l["_seq"]) > start]
            chunk, more = later[:size], len(later) > size
        shown = [{k: v for k, v in l.items() if not k.startswith("_")} for l in chunk]
        meta = {"has_more": more,
                "after_cursor": _cursor(int(chunk[-1]["_seq"])) if chunk else None,
                "before_cursor": _cursor(int(chunk[0]["_seq"])) if chunk else None}
    return Response(200, {"links": shown, "meta": meta})


def add_link(sim: ZendeskState, external_id: str, ticket_id: int | str, issue_id: str,
             issue_key: str) -> dict[str, JSON]:
    """What linking an issue in the V2 integration's sidebar leaves behind (the
    integration ``external_id`` is installed on first use). Values are stored as
    given, so a test can hand the importer a hostile record."""
    with sim.lock:
        link: dict[str, JSON] = {"ticket_id": str(ticket_id), "issue_id": str(issue_id), "issue_key": issue_key,
                                 "_seq": sim.next_id("jira_v2_link")}
        sim.jira_v2_links.setdefault(external_id, []).append(link)
        return {k: v for k, v in link.items() if not k.startswith("_")}
