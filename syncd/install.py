"""Register syncd's webhooks with the vendors (``syncd webhooks install``).

Idempotent: an existing registration with syncd's name is reused, not doubled.

* Zendesk: a webhook (``conditional_ticket_events``) plus a trigger whose
  ``notification_webhook`` action sends :data:`ZENDESK_BODY` on every ticket
  create or change. Zendesk generates the signing secret; it is returned so the
  admin can store it where the config's ``zendesk.webhook_secret`` points.
* Jira: an admin webhook with a secret of our choosing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .connectors.jira import JiraConnector
from .connectors.zendesk import ZendeskConnector

NAME = "syncd"
ZENDESK_BODY = json.dumps({"ticket_id": "{{ticket.id}}",
                           "updated_at": "{{ticket.updated_at_with_timestamp}}",
                           "actor": "{{current_user.id}}",
                           "event": "ticket_changed"})
JIRA_EVENTS = ["jira:issue_created", "jira:issue_updated", "jira:issue_deleted",
               "comment_created", "comment_updated", "comment_deleted", "jira:version_released"]


@dataclass(frozen=True)
class ZendeskWebhook:
    webhook_id: str
    trigger_id: str
    signing_secret: str


def install_zendesk(z: ZendeskConnector, endpoint: str) -> ZendeskWebhook:
    def call(method: str, path: str, body: Any = None) -> Any:
        def go() -> Any:
            r = z.session.request(method, z._url(path), json=body, timeout=z.access.timeout)
            r.raise_for_status()
            return r.json() if r.content else None
        return z.call(f"{method} {path.split('?')[0]}", go)

    hooks = call("GET", "webhooks").get("webhooks", [])
    hook = next((h for h in hooks if h.get("name") == NAME and h.get("endpoint") == endpoint), None)
    if hook is None:
        hook = call("POST", "webhooks", {"webhook": {
            "name": NAME, "endpoint": endpoint, "http_method": "POST", "request_format": "json",
            "status": "active", "subscriptions": ["conditional_ticket_events"]}})["webhook"]
    secret = call("GET", f"webhooks/{hook['id']}/signing_secret")["signing_secret"]["secret"]
    trigger = next((t for t in _all_triggers(call) if t.get("title") == NAME), None)
    actions = [{"field": "notification_webhook", "value": [str(hook["id"]), ZENDESK_BODY]}]
    if trigger is None:
        trigger = call("POST", "triggers.json", {"trigger": {
            "title": NAME, "active": True,
            "conditions": {"all": [], "any": [
                {"field": "update_type", "operator": "is", "value": "Create"},
                {"field": "update_type", "operator": "is", "value": "Change"}]},
            "actions": actions}})["trigger"]
    elif trigger.get("actions") != actions:
        # The public URL changed (a new webhook, with its own secret): the trigger
        # must call the new webhook, or every delivery fails the signature check.
        trigger = call("PUT", f"triggers/{trigger['id']}.json", {"trigger": {"actions": actions}})["trigger"]
    return ZendeskWebhook(str(hook["id"]), str(trigger["id"]), secret)


def _all_triggers(call: Any) -> list[Any]:
    """Every trigger, page by page: real accounts page them (``meta.has_more``,
    recorded in ../shared/realworld/zendesk/api/zd-triggers-amp.json), and a
    "syncd" trigger missed on page one would be created a second time. Cursors
    go to our own base URL, never to the host a ``links.next`` names."""
    found: list[Any] = []
    path = "triggers.json?page[size]=100"
    for _ in range(1000):   # 100,000 triggers: far beyond any account
        page = call("GET", path) or {}
        found.extend(page.get("triggers") or [])
        meta = page.get("meta") or {}
        if not (meta.get("has_more") and meta.get("after_cursor")):
            return found
        path = f"triggers.json?page[size]=100&page[after]={quote(str(meta['after_cursor']), safe='')}"
    return found


def install_jira(j: JiraConnector, endpoint: str, secret: str) -> str:
    session = j.client._session
    base = j.access.url.rstrip("/") + "/rest/webhooks/1.0/webhook"

    def call(method: str, url: str, body: Any = None) -> Any:
        def go() -> Any:
            r = session.request(method, url, data=json.dumps(body) if body is not None else None)
            return r.json() if r.content else None
        return j.call("webhook", go)

    existing = call("GET", base) or []
    for hook in existing:
        if hook.get("name") == NAME and hook.get("url") == endpoint:
            return str(hook.get("self") or hook.get("id"))
    made = call("POST", base, {"name": NAME, "url": endpoint, "events": JIRA_EVENTS,
                               "excludeBody": False, "secret": secret})
    return str(made.get("self") or made.get("id"))
