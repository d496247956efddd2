"""Jira admin webhooks: registration routes, event bodies, and delivery through
the core sender (signing is :meth:`syncd.sim.jira.JiraSim.sign_webhook`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from syncd.sim.core import Request, Response
from syncd.sim.jira_catalog import CommentRec, Hook, IssueRec, Version
from syncd.sim.jira_http import err
from syncd.sim.jira_render import ISSUE_FIELDS, comment_json, field_value, user_json, version_json
from syncd.sim.jira_search import jql_matches, parse_jql
from syncd.sim.jira_state import Change, JiraState


# The issue fields a Jira Cloud comment_created/updated/deleted delivery carries
# (../shared/realworld/jira/webhook/jw-cloud-comment-created.json, -updated, -deleted).
COMMENT_EVENT_FIELDS = ("summary", "issuetype", "project", "assignee", "priority", "status")


def _user_date(iso_date: str) -> str:
    """``2020-09-09`` → ``09/Sep/20``, Jira's user-facing date (recorded in
    ../shared/realworld/jira/webhook/jw-version-released.json)."""
    from datetime import date
    return date.fromisoformat(iso_date[:10]).strftime("%d/%b/%y")


def version_released(sim: JiraState, v: Version) -> None:
    # The real delivery's version (../shared/realworld/jira/webhook/jw-version-released.json):
    # description always present, overdue, and userReleaseDate as "09/Sep/20".
    version = {"description": "", **version_json(sim, v, "2"), "overdue": False}
    if v.release_date:
        version["userReleaseDate"] = _user_date(v.release_date)
    body = {"timestamp": int(sim.clock.now() * 1000), "webhookEvent": "jira:version_released",
            "version": version}
    fire(sim, "jira:version_released", None, body)


def event_body(sim: JiraState, event: str, rec: IssueRec, actor: str, change: Change | None,
               comment: CommentRec | None, type_name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"timestamp": int(sim.clock.now() * 1000), "webhookEvent": event}
    if type_name:
        body["issue_event_type_name"] = type_name
    if not event.startswith("comment_"):
        # Jira Cloud comment events carry no top-level user: the comment's author and
        # updateAuthor say who (recorded: ../shared/realworld/jira/webhook/
        # jw-cloud-comment-created.json, jw-cloud-comment-updated.json).
        body["user"] = user_json(sim, actor, "2")
    # Issue events carry the issue's fields, without its comments (recorded Cloud
    # deliveries: jw-issue-updated-*.json, jw-cloud-issue-*.json); comment events only a
    # few fields and no ``updated`` (jw-cloud-comment-created.json: COMMENT_EVENT_FIELDS).
    shown = COMMENT_EVENT_FIELDS if event.startswith("comment_") else [f for f in ISSUE_FIELDS if f != "comment"]
    body["issue"] = {"id": str(rec.id), "self": sim.url("2", f"issue/{rec.id}"), "key": rec.key,
                     "fields": {f: field_value(sim, rec, f, "2") for f in shown}}
    if change is not None and change.items:
        history = str(rec.changelog[-1].id) if rec.changelog and event != "jira:issue_created" \
            else str(sim.next_id())
        body["changelog"] = {"id": history, "items": change.items}
    if comment is not None:
        body["comment"] = comment_json(sim, rec, comment, "2")
    return body


def fire_issue_event(sim: JiraState, rec: IssueRec, actor: str, event: str, type_name: str,
                     change: Change | None, comment: CommentRec | None) -> None:
    if any(event in h.events for h in sim.hooks.values()):
        fire(sim, event, rec, event_body(sim, event, rec, actor, change, comment, type_name))


def fire(sim: JiraState, event: str, rec: IssueRec | None, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    for hook in list(sim.hooks.values()):
        if not hook.enabled or event not in hook.events:
            continue
        if hook.jql and rec is not None and not jql_matches(sim, hook.jql, rec):
            continue
        delivery = str(uuid.uuid4())
        if hook.secret:
            sim.delivery_secrets[delivery] = hook.secret
        sim.webhooks.send(hook.url, raw, {"X-Atlassian-Webhook-Identifier": delivery})


def hook_json(sim: JiraState, h: Hook) -> dict[str, Any]:
    return {"self": f"{sim.base_url}/rest/webhooks/1.0/webhook/{h.id}", "name": h.name, "url": h.url,
            "events": h.events, "filters": {"issue-related-events-section": h.jql or ""},
            "excludeBody": False, "enabled": h.enabled, "lastUpdated": int(h.updated * 1000),
            "lastUpdatedUser": sim.admin.account_id, "lastUpdatedDisplayName": sim.admin.display_name}


def register_hook(sim: JiraState, r: Request) -> Response:
    body = r.json() or {}
    if not body.get("url") or not body.get("name"):
        raise err(400, errors={"url": "A webhook needs a name and a url."})
    jql_text = (body.get("filters") or {}).get("issue-related-events-section") or None
    if jql_text:
        parse_jql(sim, jql_text)
    hook = Hook(sim.next_id(), body["name"], body["url"], list(body.get("events") or []), jql_text,
                body.get("secret"), bool(body.get("enabled", True)), sim.clock.now())
    sim.hooks[hook.id] = hook
    return Response(201, hook_json(sim, hook))


def list_hooks(sim: JiraState, r: Request) -> Response:
    return Response(200, [hook_json(sim, h) for h in sim.hooks.values()])


def hook(sim: JiraState, hid: str) -> Hook:
    if not hid.isdigit() or int(hid) not in sim.hooks:
        raise err(404, "Webhook not found.")
    return sim.hooks[int(hid)]


def show_hook(sim: JiraState, r: Request) -> Response:
    return Response(200, hook_json(sim, hook(sim, r.params["id"])))


def delete_hook(sim: JiraState, r: Request) -> Response:
    del sim.hooks[hook(sim, r.params["id"]).id]
    return Response(204)
