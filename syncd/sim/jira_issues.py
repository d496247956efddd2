"""Jira issues: the one create/edit/move path (API and actors) and the issue
routes (create, get, edit, delete, assign, changelog).
"""

from __future__ import annotations

from typing import Any

from syncd.sim.core import Request, Response, SimError
from syncd.sim.jira_catalog import ISSUE_TYPES, IssueRec
from syncd.sim.jira_changes import fire_comment, touched, write_gate
from syncd.sim.jira_fields import apply_fields, apply_update_ops, pick, set_assignee
from syncd.sim.jira_http import api_version, err, int_arg, multi
from syncd.sim.jira_render import history_json, issue_json, status_json, wanted_fields
from syncd.sim.jira_search import snapshot
from syncd.sim.jira_state import Change, JiraState
from syncd.sim.jira_webhooks import event_body, fire, fire_issue_event


def create_issue(sim: JiraState, fields: dict[str, Any], actor: str, ver: str = "2",
                 properties: list[dict[str, Any]] | None = None,
                 update: dict[str, Any] | None = None) -> IssueRec:
    """The one code path that creates an issue (API and actors)."""
    errors: dict[str, str] = {}
    project = None
    try:
        pref = fields.get("project") or {}
        project = sim.project(str(pref.get("id") or pref.get("key") or ""))
    except SimError:
        errors["project"] = "valid project is required"
    itype = fields.get("issuetype") or {}
    try:
        type_id = pick(itype, ISSUE_TYPES, lambda k: ISSUE_TYPES[k][0])
    except ValueError:
        errors["issuetype"] = "valid issue type is required"
    if not fields.get("summary"):
        errors["summary"] = "You must specify a summary of the issue."
    if errors or project is None:
        raise err(400, errors=errors)
    now = sim.clock.now()
    key = f"{project.key}-{project.next_number}"
    project.next_number += 1
    rec = IssueRec(sim.next_id(), key, project.id, type_id, fields["summary"], actor, now, now,
                   status_changed=now)
    rest = {k: v for k, v in fields.items() if k not in ("project", "issuetype")}
    created = Change()
    apply_fields(sim, rec, rest, ver, created)
    if update:
        apply_update_ops(sim, rec, update, ver, created, actor)
    for prop in properties or []:
        rec.properties[str(prop["key"])] = prop.get("value")
    sim.issues[rec.id] = rec
    # issue_created carries a changelog of the initial values, Status included
    # (recorded: ../shared/realworld/jira/webhook/jw-cloud-issue-created.json); the
    # issue's own history starts empty, so it is not appended to rec.changelog.
    status = status_json(sim, rec.status_id, "2")
    created.add("status", "Status", None, None, rec.status_id, status.get("name"))
    touched(sim, rec, actor, None, None, "issue_created")
    fire_issue_event(sim, rec, actor, "jira:issue_created", "issue_created", created, None)
    return rec


def edit_issue(sim: JiraState, rec: IssueRec, fields: dict[str, Any], update: dict[str, Any], actor: str,
               ver: str = "2") -> None:
    write_gate(sim, rec)
    trial = snapshot(rec)   # validate on a copy so a 400 leaves the issue unchanged
    change = Change()
    apply_fields(sim, trial, fields, ver, change)
    comments = apply_update_ops(sim, trial, update, ver, change, actor)
    _copy_into(rec, trial)
    if change.items:
        touched(sim, rec, actor, change, "jira:issue_updated", "issue_updated")
    for c in comments:
        fire_comment(sim, rec, c, actor, "comment_created")


def move(sim: JiraState, rec: IssueRec, project_ref: str, actor: str) -> str:
    target = sim.project(project_ref)
    if target.id == rec.project_id:
        return rec.key
    old_project, old_key = sim.projects[rec.project_id], rec.key
    new_key = f"{target.key}-{target.next_number}"
    target.next_number += 1
    change = Change()
    change.add("project", "project", old_project.id, old_project.name, target.id, target.name)
    change.add("key", "Key", None, old_key, None, new_key)
    rec.old_keys.append(old_key)
    rec.key, rec.project_id = new_key, target.id
    # Versions and components belong to a project: Jira drops them on a move.
    rec.fix_version_ids, rec.component_ids = [], []
    touched(sim, rec, actor, change, "jira:issue_updated", "issue_moved")
    return new_key


def create_issue_http(sim: JiraState, r: Request) -> Response:
    body = r.json() or {}
    rec = create_issue(sim, body.get("fields") or {}, sim.actor(r), api_version(r),
                            body.get("properties"), body.get("update"))
    return Response(201, {"id": str(rec.id), "key": rec.key, "self": sim.url(api_version(r), f"issue/{rec.id}")})


def show_issue(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    wanted = wanted_fields(multi(r, "fields"), default_all=True)
    expand = multi(r, "expand")
    return Response(200, issue_json(sim, rec, api_version(r), wanted, multi(r, "properties"),
                                          changelog="changelog" in expand))


def edit_issue_http(sim: JiraState, r: Request) -> Response:
    rec, body = sim.issue(r.params["issue"]), r.json() or {}
    edit_issue(sim, rec, body.get("fields") or {}, body.get("update") or {}, sim.actor(r), api_version(r))
    if (r.arg("returnIssue") or "").lower() == "true":
        return Response(200, issue_json(sim, rec, api_version(r), None))
    return Response(204)


def delete_issue(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    write_gate(sim, rec)
    if any("jira:issue_deleted" in h.events for h in sim.hooks.values()):
        fire(sim, "jira:issue_deleted", rec,
                   event_body(sim, "jira:issue_deleted", rec, sim.actor(r), None, None, "issue_deleted"))
    del sim.issues[rec.id]
    sim.snapshots.pop(rec.id, None)
    return Response(204)


def assign(sim: JiraState, r: Request) -> Response:
    rec, body = sim.issue(r.params["issue"]), r.json() or {}
    write_gate(sim, rec)
    change = Change()
    try:
        set_assignee(sim, rec, body.get("accountId"), change)
    except ValueError as e:
        raise err(400, errors={"assignee": str(e)})
    if change.items:
        touched(sim, rec, sim.actor(r), change, "jira:issue_updated", "issue_assigned")
    return Response(204)


def changelogs(sim: JiraState, r: Request) -> Response:
    rec, ver = sim.issue(r.params["issue"]), api_version(r)
    start, size = int_arg(r.arg("startAt"), 0), int_arg(r.arg("maxResults"), 100)
    page = rec.changelog[start:start + size]
    return Response(200, {"self": sim.url(ver, f"issue/{rec.id}/changelog"), "startAt": start,
                          "maxResults": size, "total": len(rec.changelog),
                          "isLast": start + size >= len(rec.changelog),
                          "values": [history_json(sim, h, ver) for h in page]})


def _copy_into(target: IssueRec, source: IssueRec) -> None:
    for name in target.__dataclass_fields__:
        setattr(target, name, getattr(source, name))
