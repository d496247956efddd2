"""Jira remote issue links (create or update by ``globalId``, list, delete).
"""

from __future__ import annotations

from typing import Any

from syncd.sim.core import Request, Response
from syncd.sim.jira_catalog import IssueRec
from syncd.sim.jira_changes import write_gate
from syncd.sim.jira_http import api_version, err
from syncd.sim.jira_state import JiraState


def _link_json(sim: JiraState, rec: IssueRec, link: dict[str, Any], ver: str) -> dict[str, Any]:
    return {**link, "self": sim.url(ver, f"issue/{rec.id}/remotelink/{link['id']}")}


def list_remote_links(sim: JiraState, r: Request) -> Response:
    rec, gid = sim.issue(r.params["issue"]), r.arg("globalId")
    return Response(200, [_link_json(sim, rec, link, api_version(r)) for link in rec.remote_links
                          if gid is None or link.get("globalId") == gid])


def add_remote_link(sim: JiraState, r: Request) -> Response:
    rec, body = sim.issue(r.params["issue"]), r.json() or {}
    obj = body.get("object") or {}
    if not obj.get("url") or not obj.get("title"):
        raise err(400, errors={"title": "'title' is required.", "url": "'url' is required."})
    write_gate(sim, rec)
    gid = body.get("globalId")
    existing = next((x for x in rec.remote_links if gid and x.get("globalId") == gid), None)
    stored = {k: body[k] for k in ("globalId", "application", "relationship", "object") if k in body}
    if existing is not None:
        link_id = existing["id"]
        existing.clear()
        existing.update({"id": link_id, **stored})
        link, status = existing, 200
    else:
        link, status = {"id": sim.next_id(), **stored}, 201
        rec.remote_links.append(link)
    return Response(status, {"id": link["id"], "self": sim.url(api_version(r), f"issue/{rec.id}/remotelink/{link['id']}")})


def delete_remote_link(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    lid, gid = r.params.get("id"), r.arg("globalId")
    keep = [x for x in rec.remote_links
            if not ((lid is not None and str(x["id"]) == lid) or (gid is not None and x.get("globalId") == gid))]
    if len(keep) == len(rec.remote_links):
        raise err(404, "Remote link not found.")
    rec.remote_links[:] = keep
    return Response(204)
