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

Layout: this module is the server (state, seeding, authentication, rate limits,
knobs, signing, the route table, look-ups, the public write API and the
actors). The resources are modules of functions of ``(sim, ...)`` typed against
:class:`~syncd.sim.jira_state.JiraState`, which this class implements:
:mod:`~syncd.sim.jira_projects` (projects, versions, users, catalogue),
:mod:`~syncd.sim.jira_issues` (create/edit/move, issue routes),
:mod:`~syncd.sim.jira_fields` (field values and update operations),
:mod:`~syncd.sim.jira_changes` (write limit, after-change bookkeeping, comment events),
:mod:`~syncd.sim.jira_comments`, :mod:`~syncd.sim.jira_properties`,
:mod:`~syncd.sim.jira_transitions`, :mod:`~syncd.sim.jira_links` (remote links),
:mod:`~syncd.sim.jira_attachments`, :mod:`~syncd.sim.jira_search` (JQL, index),
:mod:`~syncd.sim.jira_webhooks`; JSON shapes are in :mod:`~syncd.sim.jira_render`,
shared request helpers in :mod:`~syncd.sim.jira_http`, records and the fixed
world in :mod:`~syncd.sim.jira_catalog`. None of them imports this module.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
import uuid
from typing import Any, Callable

from syncd.sim import (
    jira_attachments,
    jira_comments,
    jira_issues,
    jira_links,
    jira_projects,
    jira_properties,
    jira_search,
    jira_transitions,
    jira_webhooks,
)
from syncd.sim.core import JSON, Request, Response, SimServer
from syncd.sim.jira_adf import text_to_adf
from syncd.sim.jira_catalog import (
    STATUSES, TRANSITIONS, Attachment, CommentRec, Component, Hook, IssueRec, Project, User, Version, field_list,
)
from syncd.sim.jira_http import ISSUE_NOT_FOUND, err, too_many

ADMIN_EMAIL, ADMIN_TOKEN = "admin@example.com", "sim-api-token"
ENGINEER_EMAIL, ENGINEER_TOKEN = "engineer@example.com", "engineer-token"
_VERSIONS = ("2", "3", "latest")

__all__ = ["ADMIN_EMAIL", "ADMIN_TOKEN", "ENGINEER_EMAIL", "ENGINEER_TOKEN", "ISSUE_NOT_FOUND", "Hook", "JiraSim"]

Handler = Callable[[Any, Request], Response]


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
        self.issue_writes: dict[int, list[float]] = {}
        self.snapshots: dict[int, list[tuple[float, IssueRec]]] = {}
        self.delivery_secrets: dict[str, str] = {}
        self._seq = 10000
        super().__init__(*args, **kwargs)
        self.seed_demo()

    # ------------------------------------------------------------------ world
    def seed_demo(self) -> None:
        """The minimum world: two users, projects ENG and SUP with components and versions."""
        with self.lock:
            self.admin = self.add_user(ADMIN_EMAIL, "Sync Daemon", ADMIN_TOKEN, "557058:sim-admin")
            self.engineer = self.add_user(ENGINEER_EMAIL, "Erin Engineer", ENGINEER_TOKEN, "557058:sim-engineer")
            for key, name in (("ENG", "Engineering"), ("SUP", "Support Escalations")):
                project = self.add_project(key, name)
                for comp in ("Backend", "Frontend"):
                    jira_projects.add_component(self, project, comp)
                self.create_version(project.key, "1.0")

    def add_user(self, email: str, display_name: str, api_token: str, account_id: str | None = None) -> User:
        with self.lock:
            user = User(account_id or f"557058:{uuid.uuid4()}", email, display_name, api_token)
            self.users[user.account_id] = user
            return user

    def add_project(self, key: str, name: str) -> Project:
        with self.lock:
            project = Project(str(self.next_id()), key, name, self.admin.account_id)
            self.projects[project.id] = project
            return project

    def create_version(self, project: str, name: str, released: bool = False,
                       description: str | None = None, release_date: str | None = None) -> Version:
        with self.lock:
            return jira_projects.create_version(self, project, name, released, description, release_date)

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
        p, i, c, props = jira_projects, jira_issues, jira_comments, jira_properties
        api: list[tuple[str, str, str, Handler]] = [
            ("GET", "serverInfo", "getServerInfo", p.server_info),
            ("GET", "myself", "getCurrentUser", p.myself),
            ("GET", "user/search", "findUsers", p.find_users),
            ("GET", "project", "getAllProjects", p.list_projects),
            ("GET", "project/{project}", "getProject", p.show_project),
            ("GET", "project/{project}/versions", "getProjectVersions", p.project_versions),
            ("GET", "project/{project}/components", "getProjectComponents", p.project_components),
            ("POST", "version", "createVersion", p.create_version_http),
            ("GET", "version/{id}", "getVersion", p.show_version),
            ("PUT", "version/{id}", "updateVersion", p.update_version),
            ("GET", "issuetype", "getIssueAllTypes", p.issue_types),
            ("GET", "priority", "getPriorities", p.priorities),
            ("GET", "status", "getStatuses", p.statuses),
            ("GET", "status/{id}", "getStatus", p.show_status),
            ("GET", "statuscategory", "getStatusCategories", p.status_categories),
            ("GET", "resolution", "getResolutions", p.resolutions),
            ("GET", "workflow", "getAllWorkflows", p.workflows),
            ("GET", "field", "getFields", lambda sim, r: Response(200, field_list())),
            ("POST", "issue", "createIssue", i.create_issue_http),
            ("GET", "issue/{issue}", "getIssue", i.show_issue),
            ("PUT", "issue/{issue}", "editIssue", i.edit_issue_http),
            ("DELETE", "issue/{issue}", "deleteIssue", i.delete_issue),
            ("PUT", "issue/{issue}/assignee", "assignIssue", i.assign),
            ("GET", "issue/{issue}/changelog", "getChangeLogs", i.changelogs),
            ("GET", "issue/{issue}/comment", "getComments", c.list_comments),
            ("POST", "issue/{issue}/comment", "addComment", c.add_comment_http),
            ("GET", "issue/{issue}/comment/{id}", "getComment", c.show_comment),
            ("PUT", "issue/{issue}/comment/{id}", "updateComment", c.update_comment),
            ("DELETE", "issue/{issue}/comment/{id}", "deleteComment", c.delete_comment),
            ("GET", "comment/{id}/properties", "getCommentPropertyKeys", props.comment_property_keys),
            ("GET", "comment/{id}/properties/{key}", "getCommentProperty", props.show_comment_property),
            ("PUT", "comment/{id}/properties/{key}", "setCommentProperty", props.set_comment_property),
            ("DELETE", "comment/{id}/properties/{key}", "deleteCommentProperty", props.delete_comment_property),
            ("GET", "issue/{issue}/properties", "getIssuePropertyKeys", props.issue_property_keys),
            ("GET", "issue/{issue}/properties/{key}", "getIssueProperty", props.show_issue_property),
            ("PUT", "issue/{issue}/properties/{key}", "setIssueProperty", props.set_issue_property),
            ("DELETE", "issue/{issue}/properties/{key}", "deleteIssueProperty", props.delete_issue_property),
            ("GET", "issue/{issue}/transitions", "getTransitions", jira_transitions.list_transitions),
            ("POST", "issue/{issue}/transitions", "doTransition", jira_transitions.do_transition),
            ("GET", "issue/{issue}/remotelink", "getRemoteIssueLinks", jira_links.list_remote_links),
            ("POST", "issue/{issue}/remotelink", "createOrUpdateRemoteIssueLink", jira_links.add_remote_link),
            ("DELETE", "issue/{issue}/remotelink", "deleteRemoteIssueLinkByGlobalId", jira_links.delete_remote_link),
            ("DELETE", "issue/{issue}/remotelink/{id}", "deleteRemoteIssueLinkById", jira_links.delete_remote_link),
            ("POST", "issue/{issue}/attachments", "addAttachment", jira_attachments.add_attachments),
            ("GET", "attachment/{id}", "getAttachment", jira_attachments.show_attachment),
            ("GET", "attachment/content/{id}", "getAttachmentContent", jira_attachments.attachment_content),
            ("GET", "search/jql", "searchAndReconsileIssuesUsingJql", jira_search.search_http),
            ("POST", "search/jql", "searchAndReconsileIssuesUsingJqlPost", jira_search.search_http),
        ]
        for method, path, op, handler in api:
            for ver in _VERSIONS:
                self.route(method, f"/rest/api/{ver}/{path}", op, functools.partial(handler, self))
        hooks = "/rest/webhooks/1.0/webhook"
        w = jira_webhooks
        for method, path, op, handler in (("POST", hooks, "registerAdminWebhook", w.register_hook),
                                          ("GET", hooks, "getAdminWebhooks", w.list_hooks),
                                          ("GET", hooks + "/{id}", "getAdminWebhook", w.show_hook),
                                          ("DELETE", hooks + "/{id}", "deleteAdminWebhook", w.delete_hook)):
            self.route(method, path, op, functools.partial(handler, self))

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
        return too_many(self, "jira-burst-based", retry_after, self.knobs.rate_limit or 100)

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
        secret = self.delivery_secrets.get(headers.get("X-Atlassian-Webhook-Identifier", ""))
        if secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            out["X-Hub-Signature"] = f"sha256={digest}"
        return out

    # ------------------------- the JiraState surface (syncd.sim.jira_state)
    def next_id(self) -> int:
        self._seq += 1
        return self._seq

    def url(self, ver: str, path: str) -> str:
        return f"{self.base_url}/rest/api/{ver}/{path}"

    def project(self, ref: str) -> Project:
        for p in self.projects.values():
            if ref in (p.id, p.key) or ref.upper() == p.key:
                return p
        raise err(404, f"No project could be found with key '{ref}'.")

    def issue(self, ref: str | int) -> IssueRec:
        """An issue by id, key or a key it had before a move."""
        ref = str(ref)
        if ref.isdigit() and int(ref) in self.issues:
            return self.issues[int(ref)]
        upper = ref.upper()
        for rec in self.issues.values():
            if rec.key == upper or upper in rec.old_keys:
                return rec
        raise err(404, ISSUE_NOT_FOUND)

    def actor(self, request: Request) -> str:
        return request.params.get("_account", self.admin.account_id)

    # -------------------- writes: the same paths the HTTP routes take
    def create_issue(self, fields: dict[str, Any], actor: str, ver: str = "2",
                     properties: list[dict[str, Any]] | None = None,
                     update: dict[str, Any] | None = None) -> IssueRec:
        """The one code path that creates an issue (API and actors)."""
        return jira_issues.create_issue(self, fields, actor, ver, properties, update)

    def edit_issue(self, rec: IssueRec, fields: dict[str, Any], update: dict[str, Any], actor: str,
                   ver: str = "2") -> None:
        jira_issues.edit_issue(self, rec, fields, update, actor, ver)

    def transition(self, rec: IssueRec, transition_id: str, actor: str, fields: dict[str, Any] | None = None,
                   ver: str = "2") -> None:
        jira_transitions.transition(self, rec, transition_id, actor, fields, ver)

    def move(self, rec: IssueRec, project_ref: str, actor: str) -> str:
        return jira_issues.move(self, rec, project_ref, actor)

    def add_comment(self, rec: IssueRec, body: dict[str, Any], actor: str,
                    properties: dict[str, Any] | None = None) -> CommentRec:
        return jira_comments.add_comment(self, rec, body, actor, properties)

    def set_search_lag(self, seconds: float) -> None:
        """Turn eventual consistency on/off; existing issues are indexed as they are now."""
        with self.lock:
            self.search_lag = max(0.0, float(seconds))
            self.snapshots = {i: [(float("-inf"), jira_search.snapshot(rec))] for i, rec in self.issues.items()}

    # ----------------------------------------------------------------- actors
    def engineer_create(self, project: str, summary: str, **fields: Any) -> str:
        """An engineer files an issue (v2 field shapes); returns the key."""
        with self.lock:
            body = {"project": {"key": project}, "issuetype": {"name": "Bug"}, "summary": summary, **fields}
            return self.create_issue(body, self.engineer.account_id).key

    def engineer_comment(self, issue: str | int, body: str) -> str:
        """An engineer comments in Jira; returns the comment id."""
        with self.lock:
            rec = self.issue(issue)
            return str(self.add_comment(rec, text_to_adf(body), self.engineer.account_id).id)

    def engineer_transition(self, issue: str | int, to_status: str) -> None:
        """An engineer moves the issue along the workflow (only allowed transitions)."""
        with self.lock:
            rec = self.issue(issue)
            target = next((sid for sid, (name, _) in STATUSES.items() if name.lower() == to_status.lower()), None)
            t = next((t for t in TRANSITIONS if t.source == rec.status_id and t.target == target), None)
            if t is None:
                raise ValueError(f"no transition from {STATUSES[rec.status_id][0]!r} to {to_status!r}")
            self.transition(rec, t.id, self.engineer.account_id)

    def engineer_edit(self, issue: str | int, fields: dict[str, Any]) -> None:
        """An engineer edits fields (v2 shapes: plain-text description)."""
        with self.lock:
            self.edit_issue(self.issue(issue), fields, {}, self.engineer.account_id)

    def release_version(self, project: str, name: str) -> None:
        with self.lock:
            proj = self.project(project)
            v = next((v for v in self.versions.values() if v.project_id == proj.id and v.name == name), None)
            if v is None:
                raise ValueError(f"no version {name!r} in {project}")
            if not v.released:
                v.released = True
                v.release_date = time.strftime("%Y-%m-%d", time.gmtime(self.clock.now()))
                jira_webhooks.version_released(self, v)

    def move_issue(self, issue: str | int, new_project: str) -> str:
        """Move an issue to another project: new key, same id; the old key still resolves."""
        with self.lock:
            return self.move(self.issue(issue), new_project, self.engineer.account_id)
