"""JSON representations of the Jira simulator's records (users, projects,
catalogue entries, issues, comments, attachments, changelog), per API version:
v3 speaks ADF, v2 plain text.
"""

from __future__ import annotations

from typing import Any, Callable

from syncd.sim.core import iso
from syncd.sim.jira_adf import adf_to_text
from syncd.sim.jira_catalog import (
    CUSTOM_FIELDS, ISSUE_TYPES, PRIORITIES, RESOLUTIONS, STATUSES, STATUS_CATEGORIES, SYSTEM_FIELDS,
    Attachment, CommentRec, Component, History, IssueRec, Project, Version,
)
from syncd.sim.jira_state import JiraState


ISSUE_FIELDS = list(SYSTEM_FIELDS) + list(CUSTOM_FIELDS)


def user_json(sim: JiraState, account_id: str | None, ver: str = "2") -> dict[str, Any] | None:
    if account_id is None or account_id not in sim.users:
        return None
    u = sim.users[account_id]
    avatar = f"https://avatar.example.invalid/{u.account_id}.png"
    return {"self": sim.url(ver, f"user?accountId={u.account_id}"), "accountId": u.account_id,
            "emailAddress": u.email, "displayName": u.display_name, "active": True,
            "timeZone": "UTC", "accountType": "atlassian",
            "avatarUrls": {s: avatar for s in ("48x48", "24x24", "16x16", "32x32")}}


def project_json(sim: JiraState, p: Project, ver: str, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"self": sim.url(ver, f"project/{p.id}"), "id": p.id, "key": p.key, "name": p.name,
                           "projectTypeKey": "software", "simplified": False, "style": "classic",
                           "isPrivate": False}
    if full:
        out["description"] = ""
        out["lead"] = user_json(sim, p.lead, ver)
        out["issueTypes"] = [issuetype_json(sim, i, ver) for i in ISSUE_TYPES]
        out["versions"] = [version_json(sim, v, ver) for v in sim.versions.values() if v.project_id == p.id]
        out["components"] = [component_json(sim, sim.components[c], ver) for c in p.component_ids]
        out["assigneeType"] = "UNASSIGNED"
    return out


def issuetype_json(sim: JiraState, tid: str, ver: str) -> dict[str, Any]:
    name, desc = ISSUE_TYPES[tid]
    return {"self": sim.url(ver, f"issuetype/{tid}"), "id": tid, "name": name, "description": desc,
            "iconUrl": f"{sim.base_url}/images/icons/issuetypes/{name.lower()}.svg",
            "subtask": False, "hierarchyLevel": 0}


def category_json(sim: JiraState, cid: int, ver: str) -> dict[str, Any]:
    key, name, color = STATUS_CATEGORIES[cid]
    return {"self": sim.url(ver, f"statuscategory/{cid}"), "id": cid, "key": key,
            "colorName": color, "name": name}


def status_json(sim: JiraState, sid: str, ver: str) -> dict[str, Any]:
    name, cat = STATUSES[sid]
    return {"self": sim.url(ver, f"status/{sid}"), "id": sid, "name": name, "description": "",
            "iconUrl": f"{sim.base_url}/images/icons/status.png",
            "statusCategory": category_json(sim, cat, ver)}


def priority_json(sim: JiraState, pid: str, ver: str) -> dict[str, Any]:
    return {"self": sim.url(ver, f"priority/{pid}"), "id": pid, "name": PRIORITIES[pid],
            "iconUrl": f"{sim.base_url}/images/icons/priorities/{PRIORITIES[pid].lower()}.svg"}


def resolution_json(sim: JiraState, rid: str, ver: str) -> dict[str, Any]:
    name, desc = RESOLUTIONS[rid]
    return {"self": sim.url(ver, f"resolution/{rid}"), "id": rid, "name": name, "description": desc}


def version_json(sim: JiraState, v: Version, ver: str) -> dict[str, Any]:
    out: dict[str, Any] = {"self": sim.url(ver, f"version/{v.id}"), "id": v.id, "name": v.name,
                           "archived": v.archived, "released": v.released, "projectId": int(v.project_id)}
    if v.description is not None:
        out["description"] = v.description
    if v.release_date is not None:
        out["releaseDate"] = v.release_date
    return out


def component_json(sim: JiraState, c: Component, ver: str) -> dict[str, Any]:
    return {"self": sim.url(ver, f"component/{c.id}"), "id": c.id, "name": c.name}


def body_json(sim: JiraState, doc: dict[str, Any] | None, ver: str) -> Any:
    if doc is None:
        return None
    return doc if ver == "3" else adf_to_text(doc)


def comment_json(sim: JiraState, issue: IssueRec, c: CommentRec, ver: str, with_props: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "self": sim.url(ver, f"issue/{issue.id}/comment/{c.id}"), "id": str(c.id),
        "author": user_json(sim, c.author, ver), "body": body_json(sim, c.body, ver),
        "updateAuthor": user_json(sim, c.update_author, ver),
        "created": iso(c.created, jira=True), "updated": iso(c.updated, jira=True), "jsdPublic": True}
    if with_props:
        out["properties"] = [{"key": k, "value": v} for k, v in c.properties.items()]
    return out


def attachment_json(sim: JiraState, a: Attachment, ver: str) -> dict[str, Any]:
    return {"self": sim.url(ver, f"attachment/{a.id}"), "id": str(a.id), "filename": a.filename,
            "author": user_json(sim, a.author, ver), "created": iso(a.created, jira=True),
            "size": len(a.content), "mimeType": a.mime_type,
            "content": sim.url(ver, f"attachment/content/{a.id}")}


def field_value(sim: JiraState, rec: IssueRec, fid: str, ver: str) -> Any:
    if fid in CUSTOM_FIELDS:
        return custom_json(sim, rec, fid, ver)
    simple: dict[str, Callable[[], Any]] = {
        "summary": lambda: rec.summary,
        "description": lambda: body_json(sim, rec.description, ver),
        "issuetype": lambda: issuetype_json(sim, rec.issuetype_id, ver),
        "project": lambda: project_json(sim, sim.projects[rec.project_id], ver),
        "status": lambda: status_json(sim, rec.status_id, ver),
        "resolution": lambda: rec.resolution_id and resolution_json(sim, rec.resolution_id, ver),
        "resolutiondate": lambda: rec.resolution_date and iso(rec.resolution_date, jira=True),
        "priority": lambda: priority_json(sim, rec.priority_id, ver),
        "labels": lambda: list(rec.labels),
        "components": lambda: [component_json(sim, sim.components[c], ver) for c in rec.component_ids],
        "fixVersions": lambda: [version_json(sim, sim.versions[v], ver) for v in rec.fix_version_ids],
        "assignee": lambda: user_json(sim, rec.assignee, ver),
        "reporter": lambda: user_json(sim, rec.reporter, ver),
        "creator": lambda: user_json(sim, rec.reporter, ver),
        "created": lambda: iso(rec.created, jira=True),
        "updated": lambda: iso(rec.updated, jira=True),
        "statuscategorychangedate": lambda: iso(rec.status_changed, jira=True),
        "comment": lambda: {"comments": [comment_json(sim, rec, c, ver) for c in rec.comments],
                            "self": sim.url(ver, f"issue/{rec.id}/comment"),
                            "maxResults": len(rec.comments), "total": len(rec.comments), "startAt": 0},
        "attachment": lambda: [attachment_json(sim, sim.attachments[a], ver) for a in rec.attachment_ids],
    }
    value = simple[fid]()
    return value if value not in ("", 0) or fid in ("summary",) else None


def custom_json(sim: JiraState, rec: IssueRec, fid: str, ver: str) -> Any:
    cf, value = CUSTOM_FIELDS[fid], rec.custom.get(fid)
    if value is None:
        return None
    if cf.kind == "datetime":
        return iso(value, jira=True)
    if cf.kind == "select":
        return {"self": sim.url(ver, f"customFieldOption/{value}"), "value": dict(cf.options)[value],
                "id": value}
    return value


def issue_json(sim: JiraState, rec: IssueRec, ver: str, wanted: set[str] | None,
               props: list[str] | None = None, changelog: bool = False) -> dict[str, Any]:
    """``wanted``: field ids to include (None = all)."""
    fids = [f for f in ISSUE_FIELDS if wanted is None or f in wanted]
    out: dict[str, Any] = {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": str(rec.id), "self": sim.url(ver, f"issue/{rec.id}"), "key": rec.key,
        "fields": {f: field_value(sim, rec, f, ver) for f in fids}}
    if props:
        keys = list(rec.properties) if "*all" in props else props
        out["properties"] = {k: rec.properties[k] for k in keys if k in rec.properties}
    if changelog:
        out["changelog"] = {"startAt": 0, "maxResults": len(rec.changelog), "total": len(rec.changelog),
                            "histories": [history_json(sim, h, ver) for h in rec.changelog]}
    return out


def history_json(sim: JiraState, h: History, ver: str) -> dict[str, Any]:
    return {"id": str(h.id), "author": user_json(sim, h.author, ver),
            "created": iso(h.created, jira=True), "items": h.items}


def wanted_fields(requested: list[str], default_all: bool) -> set[str] | None:
    """Field ids to render; None = all. Search defaults to id only (empty set)."""
    requested = [f for f in requested if f]
    if not requested:
        return None if default_all else set()
    include = {f for f in requested if not f.startswith("-")}
    exclude = {f[1:] for f in requested if f.startswith("-")}
    base = set(ISSUE_FIELDS) if include & {"*all", "*navigable"} or not include else set()
    names = {cf.name.lower(): cf.id for cf in CUSTOM_FIELDS.values()}
    base |= {names.get(f.lower(), f) for f in include if not f.startswith("*")}
    return {f for f in base if f in ISSUE_FIELDS and f not in exclude}
