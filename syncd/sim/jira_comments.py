"""Jira comments: look-ups, the actors' add path and the comment routes.
"""

from __future__ import annotations

from typing import Any

from syncd.sim.core import Request, Response
from syncd.sim.jira_adf import adf_to_text
from syncd.sim.jira_catalog import CommentRec, IssueRec
from syncd.sim.jira_changes import fire_comment, new_comment, write_gate
from syncd.sim.jira_fields import rich_text
from syncd.sim.jira_http import api_version, err, int_arg, multi
from syncd.sim.jira_render import comment_json
from syncd.sim.jira_state import JiraState


def comment(sim: JiraState, issue: IssueRec, comment_id: str) -> CommentRec:
    for c in issue.comments:
        if str(c.id) == comment_id:
            return c
    raise err(404, "Can not find a comment for the id: %s." % comment_id)


def comment_anywhere(sim: JiraState, comment_id: str) -> tuple[IssueRec, CommentRec]:
    for rec in sim.issues.values():
        for c in rec.comments:
            if str(c.id) == comment_id:
                return rec, c
    raise err(404, "The comment does not exist.")


def add_comment(sim: JiraState, rec: IssueRec, body: dict[str, Any], actor: str,
                properties: dict[str, Any] | None = None) -> CommentRec:
    write_gate(sim, rec)
    c = new_comment(sim, rec, actor, body, properties or {})
    fire_comment(sim, rec, c, actor, "comment_created")
    return c


def list_comments(sim: JiraState, r: Request) -> Response:
    rec, ver = sim.issue(r.params["issue"]), api_version(r)
    start, size = int_arg(r.arg("startAt"), 0), int_arg(r.arg("maxResults"), 5000)
    comments = list(rec.comments)
    if (r.arg("orderBy") or "").startswith("-"):
        comments.reverse()
    with_props = "properties" in multi(r, "expand")
    return Response(200, {"comments": [comment_json(sim, rec, c, ver, with_props)
                                       for c in comments[start:start + size]],
                          "startAt": start, "maxResults": size, "total": len(comments)})


def add_comment_http(sim: JiraState, r: Request) -> Response:
    rec, body, ver = sim.issue(r.params["issue"]), r.json() or {}, api_version(r)
    try:
        doc = rich_text(sim, body.get("body"), ver)
    except ValueError as e:
        raise err(400, errors={"comment": str(e)})
    if doc is None or not adf_to_text(doc).strip() and not doc.get("content"):
        raise err(400, errors={"comment": "Comment body can not be empty!"})
    props = {str(p["key"]): p.get("value") for p in body.get("properties") or []}
    c = add_comment(sim, rec, doc, sim.actor(r), props)
    return Response(201, comment_json(sim, rec, c, ver, with_props=bool(props)))


def show_comment(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    c = comment(sim, rec, r.params["id"])
    return Response(200, comment_json(sim, rec, c, api_version(r), "properties" in multi(r, "expand")))


def update_comment(sim: JiraState, r: Request) -> Response:
    rec, body, ver = sim.issue(r.params["issue"]), r.json() or {}, api_version(r)
    c = comment(sim, rec, r.params["id"])
    try:
        doc = rich_text(sim, body.get("body"), ver)
    except ValueError as e:
        raise err(400, errors={"comment": str(e)})
    write_gate(sim, rec)
    if doc is not None:
        c.body = doc
    for p in body.get("properties") or []:
        c.properties[str(p["key"])] = p.get("value")
    c.updated, c.update_author = sim.clock.now(), sim.actor(r)
    fire_comment(sim, rec, c, sim.actor(r), "comment_updated")
    return Response(200, comment_json(sim, rec, c, ver))


def delete_comment(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    c = comment(sim, rec, r.params["id"])
    write_gate(sim, rec)
    rec.comments.remove(c)
    fire_comment(sim, rec, c, sim.actor(r), "comment_deleted")
    return Response(204)
