"""A Jira Cloud simulator that the unmodified ``jira`` 3.10.5 library talks to.

Credentials (basic auth, email:api_token; anything else answers 401):
``admin@example.com`` / ``sim-api-token`` (the daemon's account) and
``engineer@example.com`` / ``engineer-token`` (the person behind the actor helpers).
Point the library at it with::

    JIRA(server=sim.base_url, basic_auth=("admin@example.com", "sim-api-token"),
         max_retries=0, get_server_info=True)

Every REST operation answers under ``/rest/api/2/``, ``/rest/api/3/`` and
``/rest/api/latest/`` (the library uses ``latest`` for the assignee call).
v3 speaks ADF for descriptions and comment bodies and refuses plain strings; v2
speaks plain text. Implemented operations (Jira's own operationIds):

getServerInfo, getCurrentUser, findUsers, getAllProjects, getProject,
getProjectVersions, getProjectComponents, createVersion, getVersion, updateVersion,
getIssueAllTypes, getPriorities, getStatuses, getStatus, getStatusCategories,
getResolutions, getAllWorkflows, getFields,
createIssue, getIssue, editIssue, deleteIssue, assignIssue, getChangeLogs,
getComments, addComment, getComment, updateComment, deleteComment,
getCommentPropertyKeys, getCommentProperty, setCommentProperty, deleteCommentProperty,
getIssuePropertyKeys, getIssueProperty, setIssueProperty, deleteIssueProperty,
getTransitions, doTransition,
getRemoteIssueLinks, createOrUpdateRemoteIssueLink, deleteRemoteIssueLinkById,
deleteRemoteIssueLinkByGlobalId,
addAttachment, getAttachment, getAttachmentContent,
searchAndReconsileIssuesUsingJql (GET), searchAndReconsileIssuesUsingJqlPost (POST),
and the admin webhooks (not in the OpenAPI document): registerAdminWebhook,
getAdminWebhooks, getAdminWebhook, deleteAdminWebhook under ``/rest/webhooks/1.0/webhook``.

JQL: see :mod:`syncd.sim.jql`. Knobs (``configure`` / ``POST /_sim/knobs``):
``search_lag`` (seconds a write stays invisible to search unless its id is in
``reconcileIssues``), ``issue_write_limit`` (``[writes, seconds]`` per issue, default
``[20, 2]``, ``null`` = off; answers 429 ``jira-per-issue-on-write``). The account
limit (``rate_limit``/``rate_window``) answers 429 ``jira-burst-based``.

Webhooks: ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``,
``X-Atlassian-Webhook-Identifier`` (same on every retry of a delivery),
``X-Atlassian-Webhook-Retry`` (present from the first retry on: 1, 2, ...).
Events: jira:issue_created, jira:issue_updated, jira:issue_deleted,
comment_created, comment_updated, comment_deleted, jira:version_released.
A comment also fires jira:issue_updated (``issue_commented`` etc.), as Jira does.

Known differences from the real service:

* one workflow and one permission level for every user; no screens, no
  required-field schemes beyond project, issue type and summary;
* ``issue.property[...]`` is searchable for every property; real Jira indexes only
  properties an app declares (Connect/Forge entity property modules);
* ADF is converted to text line by line (marks dropped) for v2 and webhooks;
* webhooks carry v2-style fields; JQL filters on webhooks use the same subset;
* ``GET .../remotelink?globalId=`` answers a (filtered) array;
* the per-issue write limit uses one window (real Jira has 20/2 s and 100/30 s);
* the 401 message and some 400 wordings are approximations of Jira's.
"""

from __future__ import annotations

import base64
import copy
import email.parser
import email.policy
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from syncd.sim import jql
from syncd.sim.core import JSON, Request, Response, SimError, SimServer, iso
from syncd.sim.jira_adf import ADF_ERROR, adf_to_text, is_adf, text_to_adf
from syncd.sim.jira_catalog import (
    CUSTOM_FIELDS, DONE_RESOLUTION, DONE_STATUS, ISSUE_TYPES, PRIORITIES, RESOLUTIONS,
    STATUS_CATEGORIES, STATUSES, SYSTEM_FIELDS, TRANSITIONS, WORKFLOW_NAME,
    Attachment, CommentRec, Component, History, IssueRec, Project, User, Version, field_list,
)

ADMIN_EMAIL, ADMIN_TOKEN = "admin@example.com", "sim-api-token"
ENGINEER_EMAIL, ENGINEER_TOKEN = "engineer@example.com", "engineer-token"
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
_VERSIONS = ("2", "3", "latest")
_ISSUE_FIELDS = list(SYSTEM_FIELDS) + list(CUSTOM_FIELDS)


def _err(status: int, *messages: str, errors: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> SimError:
    return SimError(status, {"errorMessages": list(messages), "errors": errors or {}}, headers)


def _api_version(request: Request) -> str:
    """``2`` or ``3``; ``latest`` is v2 on Jira Cloud."""
    ver = request.path.split("/")[3] if request.path.startswith("/rest/api/") else "2"
    return "3" if ver == "3" else "2"


@dataclass
class Hook:
    id: int
    name: str
    url: str
    events: list[str]
    jql: str | None
    secret: str | None
    enabled: bool = True
    updated: float = 0.0


def _user_date(iso_date: str) -> str:
    """``2020-09-09`` → ``09/Sep/20``, Jira's user-facing date (recorded in
    ../shared/realworld/jira/webhook/jw-version-released.json)."""
    from datetime import date
    return date.fromisoformat(iso_date[:10]).strftime("%d/%b/%y")


@dataclass
class _Change:
    """What one state change did, for the changelog and the webhook."""
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, fid: str, name: str, old: Any, old_s: str | None, new: Any, new_s: str | None,
            fieldtype: str = "jira") -> None:
        self.items.append({"field": name, "fieldtype": fieldtype, "fieldId": fid,
                           "from": None if old is None else str(old), "fromString": old_s,
                           "to": None if new is None else str(new), "toString": new_s})


class JiraSim(SimServer):
    vendor = "jira"
    read_only_posts = frozenset({"searchAndReconsileIssuesUsingJqlPost"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.users: dict[str, User] = {}
        self.projects: dict[str, Project] = {}
        self.versions: dict[str, Version] = {}
        self.components: dict[str, Component] = {}
        self.issues: dict[int, IssueRec] = {}
        self.attachments: dict[int, Attachment] = {}
        self.hooks: dict[int, Hook] = {}
        self.search_lag = 0.0
        self.issue_write_limit: tuple[int, float] | None = (20, 2.0)
        self._issue_writes: dict[int, list[float]] = {}
        self._snapshots: dict[int, list[tuple[float, IssueRec]]] = {}
        self._delivery_secrets: dict[str, str] = {}
        self._seq = 10000
        super().__init__(*args, **kwargs)
        self.seed_demo()

    # ------------------------------------------------------------------ world
    def _next_id(self) -> int:
        self._seq += 1
        return self._seq

    def seed_demo(self) -> None:
        """The minimum world: two users, projects ENG and SUP with components and versions."""
        with self.lock:
            self.admin = self.add_user(ADMIN_EMAIL, "Sync Daemon", ADMIN_TOKEN, "557058:sim-admin")
            self.engineer = self.add_user(ENGINEER_EMAIL, "Erin Engineer", ENGINEER_TOKEN, "557058:sim-engineer")
            for key, name in (("ENG", "Engineering"), ("SUP", "Support Escalations")):
                project = self.add_project(key, name)
                for comp in ("Backend", "Frontend"):
                    self._add_component(project, comp)
                self.create_version(project.key, "1.0")

    def add_user(self, email: str, display_name: str, api_token: str, account_id: str | None = None) -> User:
        with self.lock:
            user = User(account_id or f"557058:{uuid.uuid4()}", email, display_name, api_token)
            self.users[user.account_id] = user
            return user

    def add_project(self, key: str, name: str) -> Project:
        with self.lock:
            project = Project(str(self._next_id()), key, name, self.admin.account_id)
            self.projects[project.id] = project
            return project

    def _add_component(self, project: Project, name: str) -> Component:
        comp = Component(str(self._next_id()), project.id, name)
        self.components[comp.id] = comp
        project.component_ids.append(comp.id)
        return comp

    def create_version(self, project: str, name: str, released: bool = False,
                       description: str | None = None, release_date: str | None = None) -> Version:
        with self.lock:
            proj = self._project(project)
            if any(v.name == name and v.project_id == proj.id for v in self.versions.values()):
                raise _err(400, errors={"name": "A version with this name already exists in this project."})
            version = Version(str(self._next_id()), proj.id, name, description, released, False, release_date)
            self.versions[version.id] = version
            return version

    def describe(self) -> dict[str, Any]:
        return {
            "vendor": "jira",
            "base_url": self.base_url,
            "credentials": {"email": ADMIN_EMAIL, "api_token": ADMIN_TOKEN},
            "engineer": {"email": ENGINEER_EMAIL, "api_token": ENGINEER_TOKEN},
            "projects": [p.key for p in self.projects.values()],
            "webhook_secrets": {h.name: h.secret for h in self.hooks.values()},
            "client": (f'JIRA(server="{self.base_url}", basic_auth=("{ADMIN_EMAIL}", "{ADMIN_TOKEN}"), '
                       "max_retries=0, get_server_info=True)"),
            "register_webhook": f"POST {self.base_url}/rest/webhooks/1.0/webhook "
                                '{"name", "url", "events": ["jira:issue_updated", ...], "secret"}',
        }

    # ---------------------------------------------------------- SimServer API
    def setup_routes(self) -> None:
        api: list[tuple[str, str, str, Callable[[Request], Response]]] = [
            ("GET", "serverInfo", "getServerInfo", self._h_server_info),
            ("GET", "myself", "getCurrentUser", self._h_myself),
            ("GET", "user/search", "findUsers", self._h_find_users),
            ("GET", "project", "getAllProjects", self._h_projects),
            ("GET", "project/{project}", "getProject", self._h_project),
            ("GET", "project/{project}/versions", "getProjectVersions", self._h_project_versions),
            ("GET", "project/{project}/components", "getProjectComponents", self._h_project_components),
            ("POST", "version", "createVersion", self._h_create_version),
            ("GET", "version/{id}", "getVersion", self._h_version),
            ("PUT", "version/{id}", "updateVersion", self._h_update_version),
            ("GET", "issuetype", "getIssueAllTypes", self._h_issue_types),
            ("GET", "priority", "getPriorities", self._h_priorities),
            ("GET", "status", "getStatuses", self._h_statuses),
            ("GET", "status/{id}", "getStatus", self._h_status),
            ("GET", "statuscategory", "getStatusCategories", self._h_status_categories),
            ("GET", "resolution", "getResolutions", self._h_resolutions),
            ("GET", "workflow", "getAllWorkflows", self._h_workflows),
            ("GET", "field", "getFields", lambda r: Response(200, field_list())),
            ("POST", "issue", "createIssue", self._h_create_issue),
            ("GET", "issue/{issue}", "getIssue", self._h_get_issue),
            ("PUT", "issue/{issue}", "editIssue", self._h_edit_issue),
            ("DELETE", "issue/{issue}", "deleteIssue", self._h_delete_issue),
            ("PUT", "issue/{issue}/assignee", "assignIssue", self._h_assign),
            ("GET", "issue/{issue}/changelog", "getChangeLogs", self._h_changelogs),
            ("GET", "issue/{issue}/comment", "getComments", self._h_comments),
            ("POST", "issue/{issue}/comment", "addComment", self._h_add_comment),
            ("GET", "issue/{issue}/comment/{id}", "getComment", self._h_comment),
            ("PUT", "issue/{issue}/comment/{id}", "updateComment", self._h_update_comment),
            ("DELETE", "issue/{issue}/comment/{id}", "deleteComment", self._h_delete_comment),
            ("GET", "comment/{id}/properties", "getCommentPropertyKeys", self._h_comment_prop_keys),
            ("GET", "comment/{id}/properties/{key}", "getCommentProperty", self._h_comment_prop),
            ("PUT", "comment/{id}/properties/{key}", "setCommentProperty", self._h_set_comment_prop),
            ("DELETE", "comment/{id}/properties/{key}", "deleteCommentProperty", self._h_delete_comment_prop),
            ("GET", "issue/{issue}/properties", "getIssuePropertyKeys", self._h_issue_prop_keys),
            ("GET", "issue/{issue}/properties/{key}", "getIssueProperty", self._h_issue_prop),
            ("PUT", "issue/{issue}/properties/{key}", "setIssueProperty", self._h_set_issue_prop),
            ("DELETE", "issue/{issue}/properties/{key}", "deleteIssueProperty", self._h_delete_issue_prop),
            ("GET", "issue/{issue}/transitions", "getTransitions", self._h_transitions),
            ("POST", "issue/{issue}/transitions", "doTransition", self._h_do_transition),
            ("GET", "issue/{issue}/remotelink", "getRemoteIssueLinks", self._h_remote_links),
            ("POST", "issue/{issue}/remotelink", "createOrUpdateRemoteIssueLink", self._h_add_remote_link),
            ("DELETE", "issue/{issue}/remotelink", "deleteRemoteIssueLinkByGlobalId", self._h_delete_remote_link),
            ("DELETE", "issue/{issue}/remotelink/{id}", "deleteRemoteIssueLinkById", self._h_delete_remote_link),
            ("POST", "issue/{issue}/attachments", "addAttachment", self._h_add_attachment),
            ("GET", "attachment/{id}", "getAttachment", self._h_attachment),
            ("GET", "attachment/content/{id}", "getAttachmentContent", self._h_attachment_content),
            ("GET", "search/jql", "searchAndReconsileIssuesUsingJql", self._h_search),
            ("POST", "search/jql", "searchAndReconsileIssuesUsingJqlPost", self._h_search),
        ]
        for method, path, op, handler in api:
            for ver in _VERSIONS:
                self.route(method, f"/rest/api/{ver}/{path}", op, handler)
        hooks = "/rest/webhooks/1.0/webhook"
        self.route("POST", hooks, "registerAdminWebhook", self._h_register_hook)
        self.route("GET", hooks, "getAdminWebhooks", self._h_hooks)
        self.route("GET", hooks + "/{id}", "getAdminWebhook", self._h_hook)
        self.route("DELETE", hooks + "/{id}", "deleteAdminWebhook", self._h_delete_hook)

    def authenticate(self, request: Request) -> Response | None:
        header = request.header("authorization") or ""
        if header.lower().startswith("basic "):
            try:
                email_addr, _, token = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                email_addr, token = "", ""
            for user in self.users.values():
                if user.email == email_addr and hmac.compare_digest(user.api_token, token):
                    request.params["_account"] = user.account_id
                    return None
        return Response(401, {"errorMessages": ["Client must be authenticated to access this resource."],
                              "errors": {}}, {"WWW-Authenticate": 'Basic realm="protected-area"'})

    def rate_limited(self, request: Request, retry_after: float) -> Response:
        return self._too_many("jira-burst-based", retry_after, self.knobs.rate_limit or 100)

    def _too_many(self, reason: str, retry_after: float, limit: int) -> Response:
        seconds = max(1, int(retry_after + 0.999))
        headers = {"Retry-After": str(seconds), "RateLimit-Reason": reason,
                   "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": iso(self.clock.now() + seconds).replace("Z", "+0000")}
        return Response(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, headers)

    def error_body(self, status: int, message: str) -> JSON:
        return {"errorMessages": [message], "errors": {}}

    def configure(self, body: dict[str, JSON]) -> None:
        if "search_lag" in body:
            self.set_search_lag(float(body["search_lag"] or 0))
        if "issue_write_limit" in body:
            lim = body["issue_write_limit"]
            self.issue_write_limit = None if lim is None else (int(lim[0]), float(lim[1]))

    def sign_webhook(self, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        # The sender hands us the delivery's own header dict on every attempt, so the
        # retry counter lives in it; Jira adds the header from the first retry on.
        marker = "X-Syncd-Sim-Attempts"
        attempts = int(headers.pop(marker, "0"))
        out = {k: v for k, v in headers.items()}
        if attempts:
            out["X-Atlassian-Webhook-Retry"] = str(attempts)
        headers[marker] = str(attempts + 1)
        secret = self._delivery_secrets.get(headers.get("X-Atlassian-Webhook-Identifier", ""))
        if secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            out["X-Hub-Signature"] = f"sha256={digest}"
        return out

    # ------------------------------------------------------------- look-ups
    def _url(self, ver: str, path: str) -> str:
        return f"{self.base_url}/rest/api/{ver}/{path}"

    def _project(self, ref: str) -> Project:
        for p in self.projects.values():
            if ref in (p.id, p.key) or ref.upper() == p.key:
                return p
        raise _err(404, f"No project could be found with key '{ref}'.")

    def issue(self, ref: str | int) -> IssueRec:
        """An issue by id, key or a key it had before a move."""
        ref = str(ref)
        if ref.isdigit() and int(ref) in self.issues:
            return self.issues[int(ref)]
        upper = ref.upper()
        for rec in self.issues.values():
            if rec.key == upper or upper in rec.old_keys:
                return rec
        raise _err(404, ISSUE_NOT_FOUND)

    def _comment(self, issue: IssueRec, comment_id: str) -> CommentRec:
        for c in issue.comments:
            if str(c.id) == comment_id:
                return c
        raise _err(404, "Can not find a comment for the id: %s." % comment_id)

    def _comment_anywhere(self, comment_id: str) -> tuple[IssueRec, CommentRec]:
        for rec in self.issues.values():
            for c in rec.comments:
                if str(c.id) == comment_id:
                    return rec, c
        raise _err(404, "The comment does not exist.")

    def _actor(self, request: Request) -> str:
        return request.params.get("_account", self.admin.account_id)

    # ------------------------------------------------------------ rendering
    def _user_json(self, account_id: str | None, ver: str = "2") -> dict[str, Any] | None:
        if account_id is None or account_id not in self.users:
            return None
        u = self.users[account_id]
        avatar = f"https://avatar.example.invalid/{u.account_id}.png"
        return {"self": self._url(ver, f"user?accountId={u.account_id}"), "accountId": u.account_id,
                "emailAddress": u.email, "displayName": u.display_name, "active": True,
                "timeZone": "UTC", "accountType": "atlassian",
                "avatarUrls": {s: avatar for s in ("48x48", "24x24", "16x16", "32x32")}}

    def _project_json(self, p: Project, ver: str, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"self": self._url(ver, f"project/{p.id}"), "id": p.id, "key": p.key, "name": p.name,
                               "projectTypeKey": "software", "simplified": False, "style": "classic",
                               "isPrivate": False}
        if full:
            out["description"] = ""
            out["lead"] = self._user_json(p.lead, ver)
            out["issueTypes"] = [self._issuetype_json(i, ver) for i in ISSUE_TYPES]
            out["versions"] = [self._version_json(v, ver) for v in self.versions.values() if v.project_id == p.id]
            out["components"] = [self._component_json(self.components[c], ver) for c in p.component_ids]
            out["assigneeType"] = "UNASSIGNED"
        return out

    def _issuetype_json(self, tid: str, ver: str) -> dict[str, Any]:
        name, desc = ISSUE_TYPES[tid]
        return {"self": self._url(ver, f"issuetype/{tid}"), "id": tid, "name": name, "description": desc,
                "iconUrl": f"{self.base_url}/images/icons/issuetypes/{name.lower()}.svg",
                "subtask": False, "hierarchyLevel": 0}

    def _category_json(self, cid: int, ver: str) -> dict[str, Any]:
        key, name, color = STATUS_CATEGORIES[cid]
        return {"self": self._url(ver, f"statuscategory/{cid}"), "id": cid, "key": key,
                "colorName": color, "name": name}

    def _status_json(self, sid: str, ver: str) -> dict[str, Any]:
        name, cat = STATUSES[sid]
        return {"self": self._url(ver, f"status/{sid}"), "id": sid, "name": name, "description": "",
                "iconUrl": f"{self.base_url}/images/icons/status.png",
                "statusCategory": self._category_json(cat, ver)}

    def _priority_json(self, pid: str, ver: str) -> dict[str, Any]:
        return {"self": self._url(ver, f"priority/{pid}"), "id": pid, "name": PRIORITIES[pid],
                "iconUrl": f"{self.base_url}/images/icons/priorities/{PRIORITIES[pid].lower()}.svg"}

    def _resolution_json(self, rid: str, ver: str) -> dict[str, Any]:
        name, desc = RESOLUTIONS[rid]
        return {"self": self._url(ver, f"resolution/{rid}"), "id": rid, "name": name, "description": desc}

    def _version_json(self, v: Version, ver: str) -> dict[str, Any]:
        out: dict[str, Any] = {"self": self._url(ver, f"version/{v.id}"), "id": v.id, "name": v.name,
                               "archived": v.archived, "released": v.released, "projectId": int(v.project_id)}
        if v.description is not None:
            out["description"] = v.description
        if v.release_date is not None:
            out["releaseDate"] = v.release_date
        return out

    def _component_json(self, c: Component, ver: str) -> dict[str, Any]:
        return {"self": self._url(ver, f"component/{c.id}"), "id": c.id, "name": c.name}

    def _body_json(self, doc: dict[str, Any] | None, ver: str) -> Any:
        if doc is None:
            return None
        return doc if ver == "3" else adf_to_text(doc)

    def _comment_json(self, issue: IssueRec, c: CommentRec, ver: str, with_props: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": self._url(ver, f"issue/{issue.id}/comment/{c.id}"), "id": str(c.id),
            "author": self._user_json(c.author, ver), "body": self._body_json(c.body, ver),
            "updateAuthor": self._user_json(c.update_author, ver),
            "created": iso(c.created, jira=True), "updated": iso(c.updated, jira=True), "jsdPublic": True}
        if with_props:
            out["properties"] = [{"key": k, "value": v} for k, v in c.properties.items()]
        return out

    def _attachment_json(self, a: Attachment, ver: str) -> dict[str, Any]:
        return {"self": self._url(ver, f"attachment/{a.id}"), "id": str(a.id), "filename": a.filename,
                "author": self._user_json(a.author, ver), "created": iso(a.created, jira=True),
                "size": len(a.content), "mimeType": a.mime_type,
                "content": self._url(ver, f"attachment/content/{a.id}")}

    def _field_value(self, rec: IssueRec, fid: str, ver: str) -> Any:
        if fid in CUSTOM_FIELDS:
            return self._custom_json(rec, fid, ver)
        simple: dict[str, Callable[[], Any]] = {
            "summary": lambda: rec.summary,
            "description": lambda: self._body_json(rec.description, ver),
            "issuetype": lambda: self._issuetype_json(rec.issuetype_id, ver),
            "project": lambda: self._project_json(self.projects[rec.project_id], ver),
            "status": lambda: self._status_json(rec.status_id, ver),
            "resolution": lambda: rec.resolution_id and self._resolution_json(rec.resolution_id, ver),
            "resolutiondate": lambda: rec.resolution_date and iso(rec.resolution_date, jira=True),
            "priority": lambda: self._priority_json(rec.priority_id, ver),
            "labels": lambda: list(rec.labels),
            "components": lambda: [self._component_json(self.components[c], ver) for c in rec.component_ids],
            "fixVersions": lambda: [self._version_json(self.versions[v], ver) for v in rec.fix_version_ids],
            "assignee": lambda: self._user_json(rec.assignee, ver),
            "reporter": lambda: self._user_json(rec.reporter, ver),
            "creator": lambda: self._user_json(rec.reporter, ver),
            "created": lambda: iso(rec.created, jira=True),
            "updated": lambda: iso(rec.updated, jira=True),
            "statuscategorychangedate": lambda: iso(rec.status_changed, jira=True),
            "comment": lambda: {"comments": [self._comment_json(rec, c, ver) for c in rec.comments],
                                "self": self._url(ver, f"issue/{rec.id}/comment"),
                                "maxResults": len(rec.comments), "total": len(rec.comments), "startAt": 0},
            "attachment": lambda: [self._attachment_json(self.attachments[a], ver) for a in rec.attachment_ids],
        }
        value = simple[fid]()
        return value if value not in ("", 0) or fid in ("summary",) else None

    def _custom_json(self, rec: IssueRec, fid: str, ver: str) -> Any:
        cf, value = CUSTOM_FIELDS[fid], rec.custom.get(fid)
        if value is None:
            return None
        if cf.kind == "datetime":
            return iso(value, jira=True)
        if cf.kind == "select":
            return {"self": self._url(ver, f"customFieldOption/{value}"), "value": dict(cf.options)[value],
                    "id": value}
        return value

    def _issue_json(self, rec: IssueRec, ver: str, wanted: set[str] | None,
                    props: list[str] | None = None, changelog: bool = False) -> dict[str, Any]:
        """``wanted``: field ids to include (None = all)."""
        fids = [f for f in _ISSUE_FIELDS if wanted is None or f in wanted]
        out: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": str(rec.id), "self": self._url(ver, f"issue/{rec.id}"), "key": rec.key,
            "fields": {f: self._field_value(rec, f, ver) for f in fids}}
        if props:
            keys = list(rec.properties) if "*all" in props else props
            out["properties"] = {k: rec.properties[k] for k in keys if k in rec.properties}
        if changelog:
            out["changelog"] = {"startAt": 0, "maxResults": len(rec.changelog), "total": len(rec.changelog),
                                "histories": [self._history_json(h, ver) for h in rec.changelog]}
        return out

    def _history_json(self, h: History, ver: str) -> dict[str, Any]:
        return {"id": str(h.id), "author": self._user_json(h.author, ver),
                "created": iso(h.created, jira=True), "items": h.items}

    # ------------------------------------------------------ catalogue handlers
    def _h_server_info(self, r: Request) -> Response:
        return Response(200, {
            "baseUrl": self.base_url, "displayUrl": self.base_url, "version": "1001.0.0-SNAPSHOT",
            "versionNumbers": [1001, 0, 0], "deploymentType": "Cloud", "buildNumber": 100288,
            "buildDate": "2025-11-01T00:00:00.000+0000", "serverTime": iso(self.clock.now(), jira=True),
            "scmInfo": "syncd-sim", "serverTitle": "Jira (syncd simulator)"})

    def _h_myself(self, r: Request) -> Response:
        return Response(200, self._user_json(self._actor(r), _api_version(r)))

    def _h_find_users(self, r: Request) -> Response:
        q = (r.arg("query") or r.arg("accountId") or r.arg("username") or "").lower()
        found = [self._user_json(u.account_id, _api_version(r)) for u in self.users.values()
                 if q in u.email.lower() or q in u.display_name.lower() or q == u.account_id.lower()]
        start, size = int(r.arg("startAt", "0") or 0), int(r.arg("maxResults", "50") or 50)
        return Response(200, found[start:start + size])

    def _h_projects(self, r: Request) -> Response:
        return Response(200, [self._project_json(p, _api_version(r)) for p in self.projects.values()])

    def _h_project(self, r: Request) -> Response:
        return Response(200, self._project_json(self._project(r.params["project"]), _api_version(r), full=True))

    def _h_project_versions(self, r: Request) -> Response:
        p = self._project(r.params["project"])
        return Response(200, [self._version_json(v, _api_version(r)) for v in self.versions.values()
                              if v.project_id == p.id])

    def _h_project_components(self, r: Request) -> Response:
        p, ver = self._project(r.params["project"]), _api_version(r)
        return Response(200, [{**self._component_json(self.components[c], ver), "project": p.key,
                               "projectId": int(p.id), "assigneeType": "PROJECT_DEFAULT"}
                              for c in p.component_ids])

    def _h_create_version(self, r: Request) -> Response:
        body = r.json() or {}
        if not body.get("name"):
            raise _err(400, errors={"name": "You must specify a valid version name"})
        project = str(body.get("project") or body.get("projectId") or "")
        v = self.create_version(project, body["name"], bool(body.get("released")),
                                body.get("description"), body.get("releaseDate"))
        return Response(201, self._version_json(v, _api_version(r)))

    def _version(self, vid: str) -> Version:
        if vid not in self.versions:
            raise _err(404, f"Could not find version for id '{vid}'")
        return self.versions[vid]

    def _h_version(self, r: Request) -> Response:
        return Response(200, self._version_json(self._version(r.params["id"]), _api_version(r)))

    def _h_update_version(self, r: Request) -> Response:
        v, body = self._version(r.params["id"]), r.json() or {}
        was_released = v.released
        for attr, key in (("name", "name"), ("description", "description"), ("archived", "archived"),
                          ("released", "released"), ("release_date", "releaseDate")):
            if key in body:
                setattr(v, attr, body[key])
        if v.released and not was_released:
            self._version_released(v)
        return Response(200, self._version_json(v, _api_version(r)))

    def _h_issue_types(self, r: Request) -> Response:
        return Response(200, [self._issuetype_json(t, _api_version(r)) for t in ISSUE_TYPES])

    def _h_priorities(self, r: Request) -> Response:
        return Response(200, [self._priority_json(p, _api_version(r)) for p in PRIORITIES])

    def _h_statuses(self, r: Request) -> Response:
        return Response(200, [self._status_json(s, _api_version(r)) for s in STATUSES])

    def _h_status(self, r: Request) -> Response:
        ref = r.params["id"].lower()
        for sid, (name, _) in STATUSES.items():
            if ref in (sid, name.lower()):
                return Response(200, self._status_json(sid, _api_version(r)))
        raise _err(404, f"The status with ID '{r.params['id']}' does not exist.")

    def _h_status_categories(self, r: Request) -> Response:
        return Response(200, [self._category_json(c, _api_version(r)) for c in STATUS_CATEGORIES])

    def _h_resolutions(self, r: Request) -> Response:
        return Response(200, [self._resolution_json(x, _api_version(r)) for x in RESOLUTIONS])

    def _h_workflows(self, r: Request) -> Response:
        return Response(200, [{"name": WORKFLOW_NAME, "description": "To Do, In Progress, Done",
                               "steps": len(STATUSES), "default": True}])

    # ------------------------------------------------------ per-issue writes
    def _write_gate(self, rec: IssueRec) -> None:
        """Jira's per-issue write limit: too many writes to one issue answer 429 for it alone."""
        if self.issue_write_limit is None:
            return
        limit, window = self.issue_write_limit
        now = self.clock.now()
        recent = [t for t in self._issue_writes.get(rec.id, []) if now - t < window]
        if len(recent) >= limit:
            self._issue_writes[rec.id] = recent
            raise SimError(**_as_kwargs(self._too_many("jira-per-issue-on-write", window - (now - recent[0]), limit)))
        recent.append(now)
        self._issue_writes[rec.id] = recent

    def _touched(self, rec: IssueRec, actor: str, change: _Change | None, event: str | None,
                 event_type: str, comment: CommentRec | None = None) -> None:
        """After every change: move ``updated``, record history, index, fire webhooks."""
        now = self.clock.now()
        rec.updated = max(now, rec.updated)
        if change is not None and change.items:
            rec.changelog.append(History(self._next_id(), actor, now, change.items))
        if self.search_lag > 0:
            self._snapshots.setdefault(rec.id, []).append((now, _snapshot(rec)))
        if event is not None:
            self._fire_issue_event(rec, actor, event, event_type, change, comment)

    # ------------------------------------------------------------ field edits
    def _apply_fields(self, rec: IssueRec, fields: dict[str, Any], ver: str, change: _Change) -> None:
        errors: dict[str, str] = {}
        for fid, value in fields.items():
            try:
                self._set_field(rec, fid, value, ver, change)
            except ValueError as e:
                errors[fid] = str(e)
        if errors:
            raise _err(400, errors=errors)

    def _set_field(self, rec: IssueRec, fid: str, value: Any, ver: str, change: _Change) -> None:
        if fid in CUSTOM_FIELDS:
            return self._set_custom(rec, fid, value, change)
        if fid == "summary":
            if not isinstance(value, str) or not value.strip():
                raise ValueError("You must specify a summary of the issue.")
            if "\n" in value:
                raise ValueError("The summary is invalid because it contains newline characters.")
            change.add("summary", "summary", None, rec.summary, None, value)
            rec.summary = value
        elif fid == "description":
            doc = self._rich_text(value, ver)
            change.add("description", "description", None, adf_to_text(rec.description) or None,
                       None, adf_to_text(doc) or None)
            rec.description = doc
        elif fid == "labels":
            self._set_labels(rec, _labels(value), change)
        elif fid == "priority":
            pid = _pick(value, PRIORITIES, lambda k: PRIORITIES[k])
            change.add("priority", "priority", rec.priority_id, PRIORITIES[rec.priority_id], pid, PRIORITIES[pid])
            rec.priority_id = pid
        elif fid == "assignee":
            self._set_assignee(rec, None if value is None else value.get("accountId") or value.get("id"), change)
        elif fid == "components":
            ids = [self._component_ref(rec, v) for v in _list(value)]
            self._set_refs(rec, "component_ids", ids, "components", "Component",
                           lambda c: self.components[c].name, change)
        elif fid == "fixVersions":
            ids = [self._version_ref(rec, v) for v in _list(value)]
            self._set_refs(rec, "fix_version_ids", ids, "fixVersions", "Fix Version",
                           lambda v: self.versions[v].name, change)
        elif fid in ("issuetype", "project", "reporter"):
            if fid == "issuetype":
                rec.issuetype_id = _pick(value, ISSUE_TYPES, lambda k: ISSUE_TYPES[k][0])
        else:
            raise ValueError(f"Field '{fid}' cannot be set. It is not on the appropriate screen, or unknown.")

    def _rich_text(self, value: Any, ver: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if ver == "3":
            if not is_adf(value):
                raise ValueError(ADF_ERROR)
            return value
        if not isinstance(value, str):
            raise ValueError("Operation value must be a string")
        return text_to_adf(value)

    def _set_labels(self, rec: IssueRec, labels: list[str], change: _Change) -> None:
        if labels != rec.labels:
            change.add("labels", "labels", None, " ".join(rec.labels), None, " ".join(labels))
            rec.labels = labels

    def _set_assignee(self, rec: IssueRec, account: str | None, change: _Change) -> None:
        if account is not None and account not in self.users:
            raise ValueError(f"User '{account}' does not exist.")
        if account == rec.assignee:
            return
        name = lambda a: self.users[a].display_name if a else None  # noqa: E731
        change.add("assignee", "assignee", rec.assignee, name(rec.assignee), account, name(account))
        rec.assignee = account

    def _set_refs(self, rec: IssueRec, attr: str, ids: list[str], fid: str, label: str,
                  name: Callable[[str], str], change: _Change) -> None:
        old = getattr(rec, attr)
        for gone in [i for i in old if i not in ids]:
            change.add(fid, label, gone, name(gone), None, None)
        for new in [i for i in ids if i not in old]:
            change.add(fid, label, None, None, new, name(new))
        setattr(rec, attr, ids)

    def _component_ref(self, rec: IssueRec, ref: Any) -> str:
        for cid in self.projects[rec.project_id].component_ids:
            c = self.components[cid]
            if isinstance(ref, dict) and (ref.get("id") == cid or ref.get("name") == c.name):
                return cid
        raise ValueError(f"Component name '{_name_of(ref)}' is not valid")

    def _version_ref(self, rec: IssueRec, ref: Any) -> str:
        for v in self.versions.values():
            if v.project_id == rec.project_id and isinstance(ref, dict) and \
                    (str(ref.get("id")) == v.id or ref.get("name") == v.name):
                return v.id
        raise ValueError(f"Version name '{_name_of(ref)}' is not valid")

    def _set_custom(self, rec: IssueRec, fid: str, value: Any, change: _Change) -> None:
        cf, old = CUSTOM_FIELDS[fid], rec.custom.get(fid)
        new: Any = value
        if value is not None:
            if cf.kind == "text" and not isinstance(value, str):
                raise ValueError("Operation value must be a string")
            if cf.kind == "number":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError("Operation value must be a number")
                new = float(value)
            if cf.kind == "datetime":
                try:
                    new = datetime.fromisoformat(str(value)).timestamp()
                except ValueError:
                    raise ValueError("Invalid date format. Please enter the date in the format \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\".")
            if cf.kind == "select":
                options = dict(cf.options)
                by_value = {v: k for k, v in cf.options}
                ref = value if isinstance(value, dict) else {}
                new = str(ref["id"]) if str(ref.get("id")) in options else by_value.get(ref.get("value"))
                if new is None:
                    raise ValueError(f"Option value '{_name_of(value)}' is not valid")
        if new == old:
            return
        show = lambda v: None if v is None else (  # noqa: E731
            iso(v, jira=True) if cf.kind == "datetime" else dict(cf.options)[v] if cf.kind == "select"
            else _num(v) if cf.kind == "number" else str(v))
        change.add(fid, cf.name, None, show(old), None, show(new), fieldtype="custom")
        if new is None:
            rec.custom.pop(fid, None)
        else:
            rec.custom[fid] = new

    def _apply_update_ops(self, rec: IssueRec, update: dict[str, Any], ver: str, change: _Change,
                          actor: str) -> list[CommentRec]:
        """``update`` operations: labels/components/fixVersions add|remove|set, comment add."""
        added: list[CommentRec] = []
        errors: dict[str, str] = {}
        for fid, ops in update.items():
            try:
                if fid == "comment":
                    for op in _list(ops):
                        body = self._rich_text((op.get("add") or {}).get("body"), ver)
                        if body is None:
                            raise ValueError("Comment body can not be empty!")
                        added.append(self._new_comment(rec, actor, body, {}))
                    continue
                current = {"labels": list(rec.labels),
                           "components": [{"id": c} for c in rec.component_ids],
                           "fixVersions": [{"id": v} for v in rec.fix_version_ids]}.get(fid)
                if current is None:
                    self._set_field(rec, fid, _last_set(ops), ver, change)
                    continue
                for op in _list(ops):
                    if not isinstance(op, dict) or len(op) != 1:
                        raise ValueError("Operation must be one of add, remove, set")
                    verb, arg = next(iter(op.items()))
                    if verb == "set":
                        current = list(arg)
                    elif verb == "add":
                        current = current + [arg] if arg not in current else current
                    elif verb == "remove":
                        current = [x for x in current if not _same_ref(x, arg, fid, self)]
                    else:
                        raise ValueError(f"Operation '{verb}' is not supported")
                self._set_field(rec, fid, current, ver, change)
            except ValueError as e:
                errors[fid] = str(e)
        if errors:
            raise _err(400, errors=errors)
        return added

    # ------------------------------------------------------------ issue life
    def create_issue(self, fields: dict[str, Any], actor: str, ver: str = "2",
                     properties: list[dict[str, Any]] | None = None,
                     update: dict[str, Any] | None = None) -> IssueRec:
        """The one code path that creates an issue (API and actors)."""
        errors: dict[str, str] = {}
        project = None
        try:
            pref = fields.get("project") or {}
            project = self._project(str(pref.get("id") or pref.get("key") or ""))
        except SimError:
            errors["project"] = "valid project is required"
        itype = fields.get("issuetype") or {}
        try:
            type_id = _pick(itype, ISSUE_TYPES, lambda k: ISSUE_TYPES[k][0])
        except ValueError:
            errors["issuetype"] = "valid issue type is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        if errors or project is None:
            raise _err(400, errors=errors)
        now = self.clock.now()
        key = f"{project.key}-{project.next_number}"
        project.next_number += 1
        rec = IssueRec(self._next_id(), key, project.id, type_id, fields["summary"], actor, now, now,
                       status_changed=now)
        rest = {k: v for k, v in fields.items() if k not in ("project", "issuetype")}
        created = _Change()
        self._apply_fields(rec, rest, ver, created)
        if update:
            self._apply_update_ops(rec, update, ver, created, actor)
        for prop in properties or []:
            rec.properties[str(prop["key"])] = prop.get("value")
        self.issues[rec.id] = rec
        # issue_created carries a changelog of the initial values, Status included
        # (recorded: ../shared/realworld/jira/webhook/jw-cloud-issue-created.json); the
        # issue's own history starts empty, so it is not appended to rec.changelog.
        status = self._status_json(rec.status_id, "2")
        created.add("status", "Status", None, None, rec.status_id, status.get("name"))
        self._touched(rec, actor, None, None, "issue_created")
        self._fire_issue_event(rec, actor, "jira:issue_created", "issue_created", created, None)
        return rec

    def edit_issue(self, rec: IssueRec, fields: dict[str, Any], update: dict[str, Any], actor: str,
                   ver: str = "2") -> None:
        self._write_gate(rec)
        trial = _snapshot(rec)   # validate on a copy so a 400 leaves the issue unchanged
        change = _Change()
        self._apply_fields(trial, fields, ver, change)
        comments = self._apply_update_ops(trial, update, ver, change, actor)
        _copy_into(rec, trial)
        if change.items:
            self._touched(rec, actor, change, "jira:issue_updated", "issue_updated")
        for c in comments:
            self._fire_comment(rec, c, actor, "comment_created")

    def transition(self, rec: IssueRec, transition_id: str, actor: str, fields: dict[str, Any] | None = None,
                   ver: str = "2") -> None:
        allowed = {t.id: t for t in TRANSITIONS if t.source == rec.status_id}
        t = allowed.get(str(transition_id))
        if t is None:
            raise _err(400, f"Transition id '{transition_id}' is not valid for this issue.")
        self._write_gate(rec)
        change = _Change()
        old = rec.status_id
        change.add("status", "status", old, STATUSES[old][0], t.target, STATUSES[t.target][0])
        rec.status_id = t.target
        if STATUSES[old][1] != STATUSES[t.target][1]:
            rec.status_changed = self.clock.now()
        if t.target == DONE_STATUS and rec.resolution_id is None:
            res = (fields or {}).get("resolution")
            rid = _pick(res, RESOLUTIONS, lambda k: RESOLUTIONS[k][0]) if res else DONE_RESOLUTION
            change.add("resolution", "resolution", None, None, rid, RESOLUTIONS[rid][0])
            rec.resolution_id, rec.resolution_date = rid, self.clock.now()
        elif t.target != DONE_STATUS and rec.resolution_id is not None:
            change.add("resolution", "resolution", rec.resolution_id, RESOLUTIONS[rec.resolution_id][0], None, None)
            rec.resolution_id, rec.resolution_date = None, None
        rest = {k: v for k, v in (fields or {}).items() if k != "resolution"}
        self._apply_fields(rec, rest, ver, change)
        self._touched(rec, actor, change, "jira:issue_updated", "issue_generic")

    def move(self, rec: IssueRec, project_ref: str, actor: str) -> str:
        target = self._project(project_ref)
        if target.id == rec.project_id:
            return rec.key
        old_project, old_key = self.projects[rec.project_id], rec.key
        new_key = f"{target.key}-{target.next_number}"
        target.next_number += 1
        change = _Change()
        change.add("project", "project", old_project.id, old_project.name, target.id, target.name)
        change.add("key", "Key", None, old_key, None, new_key)
        rec.old_keys.append(old_key)
        rec.key, rec.project_id = new_key, target.id
        # Versions and components belong to a project: Jira drops them on a move.
        rec.fix_version_ids, rec.component_ids = [], []
        self._touched(rec, actor, change, "jira:issue_updated", "issue_moved")
        return new_key

    def _new_comment(self, rec: IssueRec, actor: str, body: dict[str, Any], props: dict[str, Any]) -> CommentRec:
        now = self.clock.now()
        c = CommentRec(self._next_id(), actor, body, now, now, actor, dict(props))
        rec.comments.append(c)
        return c

    def add_comment(self, rec: IssueRec, body: dict[str, Any], actor: str,
                    properties: dict[str, Any] | None = None) -> CommentRec:
        self._write_gate(rec)
        c = self._new_comment(rec, actor, body, properties or {})
        self._fire_comment(rec, c, actor, "comment_created")
        return c

    def _fire_comment(self, rec: IssueRec, c: CommentRec, actor: str, event: str) -> None:
        type_name = {"comment_created": "issue_commented", "comment_updated": "issue_comment_edited",
                     "comment_deleted": "issue_comment_deleted"}[event]
        self._touched(rec, actor, None, "jira:issue_updated", type_name, comment=c)
        self._fire(event, rec, self._event_body(event, rec, actor, None, c))

    def _version_released(self, v: Version) -> None:
        # The real delivery's version (../shared/realworld/jira/webhook/jw-version-released.json):
        # description always present, overdue, and userReleaseDate as "09/Sep/20".
        version = {"description": "", **self._version_json(v, "2"), "overdue": False}
        if v.release_date:
            version["userReleaseDate"] = _user_date(v.release_date)
        body = {"timestamp": int(self.clock.now() * 1000), "webhookEvent": "jira:version_released",
                "version": version}
        self._fire("jira:version_released", None, body)

    # ------------------------------------------------------------- webhooks
    def _event_body(self, event: str, rec: IssueRec, actor: str, change: _Change | None,
                    comment: CommentRec | None, type_name: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"timestamp": int(self.clock.now() * 1000), "webhookEvent": event}
        if type_name:
            body["issue_event_type_name"] = type_name
        if not event.startswith("comment_"):
            # Jira Cloud comment events carry no top-level user: the comment's author and
            # updateAuthor say who (recorded: ../shared/realworld/jira/webhook/
            # jw-cloud-comment-created.json, jw-cloud-comment-updated.json).
            body["user"] = self._user_json(actor, "2")
        body["issue"] = {"id": str(rec.id), "self": self._url("2", f"issue/{rec.id}"), "key": rec.key,
                         "fields": {f: self._field_value(rec, f, "2") for f in _ISSUE_FIELDS if f != "comment"}}
        if change is not None and change.items:
            history = str(rec.changelog[-1].id) if rec.changelog and event != "jira:issue_created" \
                else str(self._next_id())
            body["changelog"] = {"id": history, "items": change.items}
        if comment is not None:
            body["comment"] = self._comment_json(rec, comment, "2")
        return body

    def _fire_issue_event(self, rec: IssueRec, actor: str, event: str, type_name: str,
                          change: _Change | None, comment: CommentRec | None) -> None:
        if any(event in h.events for h in self.hooks.values()):
            self._fire(event, rec, self._event_body(event, rec, actor, change, comment, type_name))

    def _fire(self, event: str, rec: IssueRec | None, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        for hook in list(self.hooks.values()):
            if not hook.enabled or event not in hook.events:
                continue
            if hook.jql and rec is not None and not self._jql_matches(hook.jql, rec):
                continue
            delivery = str(uuid.uuid4())
            if hook.secret:
                self._delivery_secrets[delivery] = hook.secret
            self.webhooks.send(hook.url, raw, {"X-Atlassian-Webhook-Identifier": delivery})

    def _jql_matches(self, text: str, rec: IssueRec) -> bool:
        try:
            query = jql.parse(text)
        except jql.JqlError:
            return False
        return jql.evaluate(query.where, _Facts(self, rec), self.clock.now())

    def _hook_json(self, h: Hook) -> dict[str, Any]:
        return {"self": f"{self.base_url}/rest/webhooks/1.0/webhook/{h.id}", "name": h.name, "url": h.url,
                "events": h.events, "filters": {"issue-related-events-section": h.jql or ""},
                "excludeBody": False, "enabled": h.enabled, "lastUpdated": int(h.updated * 1000),
                "lastUpdatedUser": self.admin.account_id, "lastUpdatedDisplayName": self.admin.display_name}

    def _h_register_hook(self, r: Request) -> Response:
        body = r.json() or {}
        if not body.get("url") or not body.get("name"):
            raise _err(400, errors={"url": "A webhook needs a name and a url."})
        jql_text = (body.get("filters") or {}).get("issue-related-events-section") or None
        if jql_text:
            self._parse_jql(jql_text)
        hook = Hook(self._next_id(), body["name"], body["url"], list(body.get("events") or []), jql_text,
                    body.get("secret"), bool(body.get("enabled", True)), self.clock.now())
        self.hooks[hook.id] = hook
        return Response(201, self._hook_json(hook))

    def _h_hooks(self, r: Request) -> Response:
        return Response(200, [self._hook_json(h) for h in self.hooks.values()])

    def _hook(self, hid: str) -> Hook:
        if not hid.isdigit() or int(hid) not in self.hooks:
            raise _err(404, "Webhook not found.")
        return self.hooks[int(hid)]

    def _h_hook(self, r: Request) -> Response:
        return Response(200, self._hook_json(self._hook(r.params["id"])))

    def _h_delete_hook(self, r: Request) -> Response:
        del self.hooks[self._hook(r.params["id"]).id]
        return Response(204)

    # -------------------------------------------------------- issue handlers
    def _h_create_issue(self, r: Request) -> Response:
        body = r.json() or {}
        rec = self.create_issue(body.get("fields") or {}, self._actor(r), _api_version(r),
                                body.get("properties"), body.get("update"))
        return Response(201, {"id": str(rec.id), "key": rec.key, "self": self._url(_api_version(r), f"issue/{rec.id}")})

    def _h_get_issue(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        wanted = _wanted_fields(_multi(r, "fields"), default_all=True)
        expand = _multi(r, "expand")
        return Response(200, self._issue_json(rec, _api_version(r), wanted, _multi(r, "properties"),
                                              changelog="changelog" in expand))

    def _h_edit_issue(self, r: Request) -> Response:
        rec, body = self.issue(r.params["issue"]), r.json() or {}
        self.edit_issue(rec, body.get("fields") or {}, body.get("update") or {}, self._actor(r), _api_version(r))
        if (r.arg("returnIssue") or "").lower() == "true":
            return Response(200, self._issue_json(rec, _api_version(r), None))
        return Response(204)

    def _h_delete_issue(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        self._write_gate(rec)
        if any("jira:issue_deleted" in h.events for h in self.hooks.values()):
            self._fire("jira:issue_deleted", rec,
                       self._event_body("jira:issue_deleted", rec, self._actor(r), None, None, "issue_deleted"))
        del self.issues[rec.id]
        self._snapshots.pop(rec.id, None)
        return Response(204)

    def _h_assign(self, r: Request) -> Response:
        rec, body = self.issue(r.params["issue"]), r.json() or {}
        self._write_gate(rec)
        change = _Change()
        try:
            self._set_assignee(rec, body.get("accountId"), change)
        except ValueError as e:
            raise _err(400, errors={"assignee": str(e)})
        if change.items:
            self._touched(rec, self._actor(r), change, "jira:issue_updated", "issue_assigned")
        return Response(204)

    def _h_changelogs(self, r: Request) -> Response:
        rec, ver = self.issue(r.params["issue"]), _api_version(r)
        start, size = _int(r.arg("startAt"), 0), _int(r.arg("maxResults"), 100)
        page = rec.changelog[start:start + size]
        return Response(200, {"self": self._url(ver, f"issue/{rec.id}/changelog"), "startAt": start,
                              "maxResults": size, "total": len(rec.changelog),
                              "isLast": start + size >= len(rec.changelog),
                              "values": [self._history_json(h, ver) for h in page]})

    def _h_comments(self, r: Request) -> Response:
        rec, ver = self.issue(r.params["issue"]), _api_version(r)
        start, size = _int(r.arg("startAt"), 0), _int(r.arg("maxResults"), 5000)
        comments = list(rec.comments)
        if (r.arg("orderBy") or "").startswith("-"):
            comments.reverse()
        with_props = "properties" in _multi(r, "expand")
        return Response(200, {"comments": [self._comment_json(rec, c, ver, with_props)
                                           for c in comments[start:start + size]],
                              "startAt": start, "maxResults": size, "total": len(comments)})

    def _h_add_comment(self, r: Request) -> Response:
        rec, body, ver = self.issue(r.params["issue"]), r.json() or {}, _api_version(r)
        try:
            doc = self._rich_text(body.get("body"), ver)
        except ValueError as e:
            raise _err(400, errors={"comment": str(e)})
        if doc is None or not adf_to_text(doc).strip() and not doc.get("content"):
            raise _err(400, errors={"comment": "Comment body can not be empty!"})
        props = {str(p["key"]): p.get("value") for p in body.get("properties") or []}
        c = self.add_comment(rec, doc, self._actor(r), props)
        return Response(201, self._comment_json(rec, c, ver, with_props=bool(props)))

    def _h_comment(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        c = self._comment(rec, r.params["id"])
        return Response(200, self._comment_json(rec, c, _api_version(r), "properties" in _multi(r, "expand")))

    def _h_update_comment(self, r: Request) -> Response:
        rec, body, ver = self.issue(r.params["issue"]), r.json() or {}, _api_version(r)
        c = self._comment(rec, r.params["id"])
        try:
            doc = self._rich_text(body.get("body"), ver)
        except ValueError as e:
            raise _err(400, errors={"comment": str(e)})
        self._write_gate(rec)
        if doc is not None:
            c.body = doc
        for p in body.get("properties") or []:
            c.properties[str(p["key"])] = p.get("value")
        c.updated, c.update_author = self.clock.now(), self._actor(r)
        self._fire_comment(rec, c, self._actor(r), "comment_updated")
        return Response(200, self._comment_json(rec, c, ver))

    def _h_delete_comment(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        c = self._comment(rec, r.params["id"])
        self._write_gate(rec)
        rec.comments.remove(c)
        self._fire_comment(rec, c, self._actor(r), "comment_deleted")
        return Response(204)

    def _prop_keys(self, props: dict[str, Any], url: str) -> Response:
        return Response(200, {"keys": [{"key": k, "self": f"{url}/{k}"} for k in props]})

    def _h_comment_prop_keys(self, r: Request) -> Response:
        _, c = self._comment_anywhere(r.params["id"])
        return self._prop_keys(c.properties, self._url(_api_version(r), f"comment/{c.id}/properties"))

    def _h_comment_prop(self, r: Request) -> Response:
        _, c = self._comment_anywhere(r.params["id"])
        key = r.params["key"]
        if key not in c.properties:
            raise _err(404, f"The property with key '{key}' does not exist.")
        return Response(200, {"key": key, "value": c.properties[key]})

    def _h_set_comment_prop(self, r: Request) -> Response:
        _, c = self._comment_anywhere(r.params["id"])
        value = _property_value(r)
        created = r.params["key"] not in c.properties
        c.properties[r.params["key"]] = value
        # The document describes a JSON body (untyped) for both statuses.
        return Response(201 if created else 200, {})

    def _h_delete_comment_prop(self, r: Request) -> Response:
        _, c = self._comment_anywhere(r.params["id"])
        if c.properties.pop(r.params["key"], _MISSING) is _MISSING:
            raise _err(404, f"The property with key '{r.params['key']}' does not exist.")
        return Response(204)

    def _h_issue_prop_keys(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        return self._prop_keys(rec.properties, self._url(_api_version(r), f"issue/{rec.id}/properties"))

    def _h_issue_prop(self, r: Request) -> Response:
        rec, key = self.issue(r.params["issue"]), r.params["key"]
        if key not in rec.properties:
            raise _err(404, f"The property with key '{key}' does not exist.")
        return Response(200, {"key": key, "value": rec.properties[key]})

    def _h_set_issue_prop(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        value = _property_value(r)
        self._write_gate(rec)
        created = r.params["key"] not in rec.properties
        rec.properties[r.params["key"]] = value
        if self.search_lag > 0:
            self._snapshots.setdefault(rec.id, []).append((self.clock.now(), _snapshot(rec)))
        return Response(201 if created else 200, {})

    def _h_delete_issue_prop(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        if rec.properties.pop(r.params["key"], _MISSING) is _MISSING:
            raise _err(404, f"The property with key '{r.params['key']}' does not exist.")
        return Response(204)

    def _transition_json(self, t: Any, ver: str) -> dict[str, Any]:
        return {"id": t.id, "name": t.name, "to": self._status_json(t.target, ver), "hasScreen": False,
                "isGlobal": False, "isInitial": False, "isAvailable": True, "isConditional": False,
                "isLooped": False}

    def _h_transitions(self, r: Request) -> Response:
        rec, ver = self.issue(r.params["issue"]), _api_version(r)
        only = r.arg("transitionId")
        found = [self._transition_json(t, ver) for t in TRANSITIONS
                 if t.source == rec.status_id and (only is None or t.id == only)]
        return Response(200, {"expand": "transitions", "transitions": found})

    def _h_do_transition(self, r: Request) -> Response:
        rec, body = self.issue(r.params["issue"]), r.json() or {}
        tid = str((body.get("transition") or {}).get("id") or "")
        actor, ver = self._actor(r), _api_version(r)
        self.transition(rec, tid, actor, body.get("fields") or {}, ver)
        for op in (body.get("update") or {}).get("comment") or []:
            try:
                doc = self._rich_text((op.get("add") or {}).get("body"), ver)
            except ValueError as e:
                raise _err(400, errors={"comment": str(e)})
            if doc is not None:
                self._fire_comment(rec, self._new_comment(rec, actor, doc, {}), actor, "comment_created")
        return Response(204)

    def _link_json(self, rec: IssueRec, link: dict[str, Any], ver: str) -> dict[str, Any]:
        return {**link, "self": self._url(ver, f"issue/{rec.id}/remotelink/{link['id']}")}

    def _h_remote_links(self, r: Request) -> Response:
        rec, gid = self.issue(r.params["issue"]), r.arg("globalId")
        return Response(200, [self._link_json(rec, link, _api_version(r)) for link in rec.remote_links
                              if gid is None or link.get("globalId") == gid])

    def _h_add_remote_link(self, r: Request) -> Response:
        rec, body = self.issue(r.params["issue"]), r.json() or {}
        obj = body.get("object") or {}
        if not obj.get("url") or not obj.get("title"):
            raise _err(400, errors={"title": "'title' is required.", "url": "'url' is required."})
        self._write_gate(rec)
        gid = body.get("globalId")
        existing = next((x for x in rec.remote_links if gid and x.get("globalId") == gid), None)
        stored = {k: body[k] for k in ("globalId", "application", "relationship", "object") if k in body}
        if existing is not None:
            link_id = existing["id"]
            existing.clear()
            existing.update({"id": link_id, **stored})
            link, status = existing, 200
        else:
            link, status = {"id": self._next_id(), **stored}, 201
            rec.remote_links.append(link)
        return Response(status, {"id": link["id"], "self": self._url(_api_version(r), f"issue/{rec.id}/remotelink/{link['id']}")})

    def _h_delete_remote_link(self, r: Request) -> Response:
        rec = self.issue(r.params["issue"])
        lid, gid = r.params.get("id"), r.arg("globalId")
        keep = [x for x in rec.remote_links
                if not ((lid is not None and str(x["id"]) == lid) or (gid is not None and x.get("globalId") == gid))]
        if len(keep) == len(rec.remote_links):
            raise _err(404, "Remote link not found.")
        rec.remote_links[:] = keep
        return Response(204)

    def _h_add_attachment(self, r: Request) -> Response:
        if (r.header("x-atlassian-token") or "").lower() != "no-check":
            return Response(403, b"XSRF check failed", {"Content-Type": "text/plain"})
        rec = self.issue(r.params["issue"])
        files = _multipart_files(r)
        if not files:
            raise _err(400, "No files were attached: send multipart/form-data with a 'file' part.")
        self._write_gate(rec)
        change, out, actor = _Change(), [], self._actor(r)
        for filename, mime, content in files:
            a = Attachment(self._next_id(), rec.id, filename, mime, content, actor, self.clock.now())
            self.attachments[a.id] = a
            rec.attachment_ids.append(a.id)
            change.add("attachment", "Attachment", None, None, a.id, filename)
            out.append(self._attachment_json(a, _api_version(r)))
        self._touched(rec, actor, change, "jira:issue_updated", "issue_updated")
        return Response(200, out)

    def _attachment(self, aid: str) -> Attachment:
        if not aid.isdigit() or int(aid) not in self.attachments:
            raise _err(404, f"The attachment with id '{aid}' does not exist")
        return self.attachments[int(aid)]

    def _h_attachment(self, r: Request) -> Response:
        a = self._attachment(r.params["id"])
        out = self._attachment_json(a, _api_version(r))
        out["id"] = a.id   # AttachmentMetadata types the id as an integer
        return Response(200, out)

    def _h_attachment_content(self, r: Request) -> Response:
        a = self._attachment(r.params["id"])
        return Response(200, a.content, {"Content-Type": a.mime_type,
                                         "Content-Disposition": f'attachment; filename="{a.filename}"'})

    # ----------------------------------------------------------------- search
    def _parse_jql(self, text: str) -> jql.Query:
        try:
            query = jql.parse(text)
        except jql.JqlError as e:
            raise _err(400, str(e))
        for c in jql.clauses(query.where):
            if c.field == "project":
                for v in c.values:
                    if not any(v.lower() in (p.key.lower(), p.id, p.name.lower()) for p in self.projects.values()):
                        raise _err(400, f"The value '{v}' does not exist for the field 'project'.")
            known = {"project", "key", "id", "updated", "created", "resolutiondate", "labels", "status",
                     "statuscategory", "resolution", "priority", "assignee", "reporter", "summary",
                     "fixversion", "component", "issuetype", "type", "issue.property"}
            if c.field in jql.DATE_FIELDS:
                for v in c.values:
                    try:
                        jql.date_literal(v, self.clock.now())
                    except jql.JqlError as e:
                        raise _err(400, str(e))
            if c.field not in known and c.field not in _CUSTOM_CLAUSES:
                raise _err(400, f"Field '{c.field}' does not exist or you do not have permission to view it.")
        return query

    def _h_search(self, r: Request) -> Response:
        if r.method == "POST":
            body = r.json() or {}
            fields = body.get("fields") or []
            props, expand = body.get("properties") or [], body.get("expand") or ""
            reconcile = [int(x) for x in body.get("reconcileIssues") or []]
            text, token, size = body.get("jql") or "", body.get("nextPageToken"), body.get("maxResults")
        else:
            fields, props, expand = _multi(r, "fields"), _multi(r, "properties"), ",".join(_multi(r, "expand"))
            reconcile = [int(x) for x in _multi(r, "reconcileIssues") if x.strip().isdigit()]
            text, token, size = r.arg("jql") or "", r.arg("nextPageToken"), r.arg("maxResults")
        if isinstance(fields, str):
            fields = fields.split(",")
        if isinstance(props, str):
            props = props.split(",")
        query = self._parse_jql(text)
        wanted = _wanted_fields(list(fields), default_all=False)
        only_ids = wanted == set() and "key" not in fields
        cap = 5000 if only_ids else 100
        size = min(max(_int(size, 50), 1), cap)
        start = _decode_token(token, text)
        hits = self._search(query, set(reconcile))
        page = hits[start:start + size]
        ver = _api_version(r)
        issues = [{"id": str(rec.id)} if only_ids and not props else
                  self._issue_json(rec, ver, wanted or set(), list(props)) for rec in page]
        out: dict[str, Any] = {"issues": issues, "isLast": start + size >= len(hits)}
        if not out["isLast"]:
            out["nextPageToken"] = _encode_token(start + size, text)
        if "changelog" in expand:
            for item, rec in zip(issues, page):
                item["changelog"] = self._issue_json(rec, ver, set(), changelog=True)["changelog"]
        return Response(200, out)

    def _search(self, query: jql.Query, reconcile: set[int]) -> list[IssueRec]:
        now = self.clock.now()
        hits = []
        for rec in self.issues.values():
            view = rec if rec.id in reconcile else self._indexed(rec, now)
            if view is not None and jql.evaluate(query.where, _Facts(self, view), now):
                hits.append(view)
        return _ordered(hits, query.order)

    def _indexed(self, rec: IssueRec, now: float) -> IssueRec | None:
        """The issue as the search index knows it: ``search_lag`` seconds behind.

        Every write stores a snapshot; search sees the newest snapshot old enough,
        so a new issue is invisible and an edited one shows its previous state.
        """
        if self.search_lag <= 0:
            return rec
        snaps = self._snapshots.get(rec.id)
        if not snaps:
            return rec
        visible = [i for i, (at, _) in enumerate(snaps) if now - at >= self.search_lag]
        if not visible:
            return None
        del snaps[:visible[-1]]          # older visible snapshots can never be seen again
        return snaps[0][1]

    def set_search_lag(self, seconds: float) -> None:
        """Turn eventual consistency on/off; existing issues are indexed as they are now."""
        with self.lock:
            self.search_lag = max(0.0, float(seconds))
            self._snapshots = {i: [(float("-inf"), _snapshot(rec))] for i, rec in self.issues.items()}

    # ----------------------------------------------------------------- actors
    def _actor_ref(self, issue: str | int) -> IssueRec:
        return self.issue(issue)

    def engineer_create(self, project: str, summary: str, **fields: Any) -> str:
        """An engineer files an issue (v2 field shapes); returns the key."""
        with self.lock:
            body = {"project": {"key": project}, "issuetype": {"name": "Bug"}, "summary": summary, **fields}
            return self.create_issue(body, self.engineer.account_id).key

    def engineer_comment(self, issue: str | int, body: str) -> str:
        """An engineer comments in Jira; returns the comment id."""
        with self.lock:
            rec = self._actor_ref(issue)
            return str(self.add_comment(rec, text_to_adf(body), self.engineer.account_id).id)

    def engineer_transition(self, issue: str | int, to_status: str) -> None:
        """An engineer moves the issue along the workflow (only allowed transitions)."""
        with self.lock:
            rec = self._actor_ref(issue)
            target = next((sid for sid, (name, _) in STATUSES.items() if name.lower() == to_status.lower()), None)
            t = next((t for t in TRANSITIONS if t.source == rec.status_id and t.target == target), None)
            if t is None:
                raise ValueError(f"no transition from {STATUSES[rec.status_id][0]!r} to {to_status!r}")
            self.transition(rec, t.id, self.engineer.account_id)

    def engineer_edit(self, issue: str | int, fields: dict[str, Any]) -> None:
        """An engineer edits fields (v2 shapes: plain-text description)."""
        with self.lock:
            self.edit_issue(self._actor_ref(issue), fields, {}, self.engineer.account_id)

    def release_version(self, project: str, name: str) -> None:
        with self.lock:
            proj = self._project(project)
            v = next((v for v in self.versions.values() if v.project_id == proj.id and v.name == name), None)
            if v is None:
                raise ValueError(f"no version {name!r} in {project}")
            if not v.released:
                v.released = True
                v.release_date = time.strftime("%Y-%m-%d", time.gmtime(self.clock.now()))
                self._version_released(v)

    def move_issue(self, issue: str | int, new_project: str) -> str:
        """Move an issue to another project: new key, same id; the old key still resolves."""
        with self.lock:
            return self.move(self._actor_ref(issue), new_project, self.engineer.account_id)


# ------------------------------------------------------------------ helpers

_MISSING = object()
_CUSTOM_CLAUSES = {f"cf[{cf.number}]": cf.id for cf in CUSTOM_FIELDS.values()}
_CUSTOM_CLAUSES.update({cf.name.lower(): cf.id for cf in CUSTOM_FIELDS.values()})
_CUSTOM_CLAUSES.update({cf.id: cf.id for cf in CUSTOM_FIELDS.values()})


class _Facts:
    """An issue as the JQL evaluator sees it."""

    def __init__(self, sim: JiraSim, rec: IssueRec):
        self.sim, self.rec = sim, rec

    def values(self, name: str) -> list[Any]:
        rec, sim = self.rec, self.sim
        if name in _CUSTOM_CLAUSES:
            value = rec.custom.get(_CUSTOM_CLAUSES[name])
            cf = CUSTOM_FIELDS[_CUSTOM_CLAUSES[name]]
            if value is None:
                return []
            return [value, dict(cf.options)[value]] if cf.kind == "select" else [value]
        project = sim.projects[rec.project_id]
        status_name, cat = STATUSES[rec.status_id]
        user = lambda a: [] if a is None else [a, sim.users[a].email, sim.users[a].display_name]  # noqa: E731
        table: dict[str, Callable[[], list[Any]]] = {
            "project": lambda: [project.key, project.id, project.name],
            "key": lambda: [rec.key, *rec.old_keys],
            "id": lambda: [rec.id],
            "updated": lambda: [rec.updated],
            "created": lambda: [rec.created],
            "resolutiondate": lambda: [] if rec.resolution_date is None else [rec.resolution_date],
            "labels": lambda: list(rec.labels),
            "status": lambda: [status_name, rec.status_id],
            "statuscategory": lambda: [STATUS_CATEGORIES[cat][1], STATUS_CATEGORIES[cat][0], cat],
            "resolution": lambda: [] if rec.resolution_id is None else [rec.resolution_id, RESOLUTIONS[rec.resolution_id][0]],
            "priority": lambda: [rec.priority_id, PRIORITIES[rec.priority_id]],
            "assignee": lambda: user(rec.assignee),
            "reporter": lambda: user(rec.reporter),
            "summary": lambda: [rec.summary],
            "fixversion": lambda: [x for v in rec.fix_version_ids for x in (v, sim.versions[v].name)],
            "component": lambda: [x for c in rec.component_ids for x in (c, sim.components[c].name)],
            "issuetype": lambda: [rec.issuetype_id, ISSUE_TYPES[rec.issuetype_id][0]],
            "type": lambda: [rec.issuetype_id, ISSUE_TYPES[rec.issuetype_id][0]],
        }
        return table[name]() if name in table else []

    def property_values(self, key: str, path: str) -> list[Any]:
        node: Any = self.rec.properties.get(key, _MISSING)
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return []
            node = node[part]
        values = node if isinstance(node, list) else [node]
        return [json.dumps(v) if isinstance(v, (dict, bool)) else v for v in values if v is not None]


def _ordered(hits: list[IssueRec], order: tuple[tuple[str, bool], ...]) -> list[IssueRec]:
    if not order:
        order = (("created", False), ("id", False))
    result = list(hits)
    for name, asc in reversed(order):
        result.sort(key=_sort_key(name), reverse=not asc)
    return result


def _sort_key(name: str) -> Callable[[IssueRec], Any]:
    if name in ("key", "issuekey"):
        return lambda rec: (rec.key.split("-")[0], int(rec.key.split("-")[1]))
    if name in ("updated", "created", "id"):
        return lambda rec: getattr(rec, name)
    if name == "priority":
        return lambda rec: int(rec.priority_id)
    if name in ("resolutiondate", "resolved"):
        return lambda rec: rec.resolution_date or 0.0
    raise _err(400, f"Not able to sort using field '{name}'.")


def _snapshot(rec: IssueRec) -> IssueRec:
    return copy.deepcopy(rec)


def _copy_into(target: IssueRec, source: IssueRec) -> None:
    for name in target.__dataclass_fields__:
        setattr(target, name, getattr(source, name))


def _as_kwargs(resp: Response) -> dict[str, Any]:
    return {"status": resp.status, "body": resp.body, "headers": resp.headers}


def _multi(r: Request, name: str) -> list[str]:
    """A query parameter given repeated and/or comma-separated."""
    return [part.strip() for value in r.query.get(name, []) for part in value.split(",") if part.strip()]


def _wanted_fields(requested: list[str], default_all: bool) -> set[str] | None:
    """Field ids to render; None = all. Search defaults to id only (empty set)."""
    requested = [f for f in requested if f]
    if not requested:
        return None if default_all else set()
    include = {f for f in requested if not f.startswith("-")}
    exclude = {f[1:] for f in requested if f.startswith("-")}
    base = set(_ISSUE_FIELDS) if include & {"*all", "*navigable"} or not include else set()
    names = {cf.name.lower(): cf.id for cf in CUSTOM_FIELDS.values()}
    base |= {names.get(f.lower(), f) for f in include if not f.startswith("*")}
    return {f for f in base if f in _ISSUE_FIELDS and f not in exclude}


def _encode_token(offset: int, text: str) -> str:
    raw = json.dumps({"o": offset, "q": hashlib.sha1(text.encode()).hexdigest()[:10]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str | None, text: str) -> int:
    if not token:
        return 0
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if raw["q"] != hashlib.sha1(text.encode()).hexdigest()[:10]:
            raise ValueError("token for another query")
        return int(raw["o"])
    except (ValueError, KeyError, TypeError):
        raise _err(400, "The provided next page token is invalid or expired.")


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("Operation value must be an array")
    return value


def _labels(value: Any) -> list[str]:
    labels = _list(value)
    for label in labels:
        if not isinstance(label, str) or not label or " " in label:
            raise ValueError("The label '%s' contains spaces which is invalid." % label)
    return list(dict.fromkeys(labels))


def _pick(ref: Any, table: dict[str, Any], name: Callable[[str], str]) -> str:
    """An id from ``{"id"}`` or ``{"name"}``."""
    if isinstance(ref, dict):
        if str(ref.get("id")) in table:
            return str(ref["id"])
        for key in table:
            if ref.get("name") is not None and name(key).lower() == str(ref["name"]).lower():
                return key
    raise ValueError(f"Specify a valid value for {_name_of(ref)}")


def _name_of(ref: Any) -> str:
    if isinstance(ref, dict):
        return str(ref.get("name") or ref.get("value") or ref.get("id"))
    return str(ref)


def _last_set(ops: Any) -> Any:
    for op in reversed(_list(ops)):
        if isinstance(op, dict) and "set" in op:
            return op["set"]
    raise ValueError("Operation must be 'set' for this field")


def _same_ref(current: Any, arg: Any, fid: str, sim: JiraSim) -> bool:
    if fid == "labels":
        return current == arg
    table = sim.components if fid == "components" else sim.versions
    cid = current.get("id")
    if isinstance(arg, dict):
        return str(arg.get("id")) == cid or (arg.get("name") is not None and cid in table
                                             and table[cid].name == arg.get("name"))
    return False


def _property_value(r: Request) -> Any:
    if not r.body.strip():
        raise _err(400, "The property value can not be empty.")
    try:
        value = r.json()
    except ValueError:
        raise _err(400, "The property value must be valid JSON.")
    if len(r.body) > 32768:
        raise _err(400, "The property value is too big: the limit is 32768 bytes.")
    return value


def _multipart_files(r: Request) -> list[tuple[str, str, bytes]]:
    ctype = r.header("content-type") or ""
    if not ctype.startswith("multipart/"):
        return []
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + r.body)
    out = []
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") != "file":
            continue
        filename = part.get_filename() or "attachment"
        out.append((filename, part.get_content_type(), part.get_payload(decode=True) or b""))
    return out
