"""Register syncd's webhooks with the vendors (``syncd webhooks install``).

Idempotent: an existing registration with syncd's name is reused, not doubled.

* Zendesk: a webhook (``conditional_ticket_events``) plus a trigger whose
  ``notification_webhook`` action sends :data:`ZENDESK_BODY` on every ticket
  create or change. Zendesk generates the signing secret; it is returned so the
  admin can store it where the config's ``zendesk.webhook_secret`` points.
* Jira: an admin webhook with a secret of our choosing.

The requests themselves are connector methods (``install_webhook``), made through
the connectors' sessions, budgets and retry policy; this module holds what syncd
registers.
"""

from __future__ import annotations

import json

from .connectors.jira import JiraConnector
from .connectors.zendesk import ZendeskConnector, ZendeskWebhook

NAME = "syncd"
ZENDESK_BODY = json.dumps({"ticket_id": "{{ticket.id}}",
                           "updated_at": "{{ticket.updated_at_with_timestamp}}",
                           "actor": "{{current_user.id}}",
                           "event": "ticket_changed"})
JIRA_EVENTS = ["jira:issue_created", "jira:issue_updated", "jira:issue_deleted",
               "comment_created", "comment_updated", "comment_deleted", "jira:version_released"]


def install_zendesk(z: ZendeskConnector, endpoint: str) -> ZendeskWebhook:
    """syncd's webhook and trigger on Zendesk (see :meth:`ZendeskConnector.install_webhook`)."""
    return z.install_webhook(NAME, endpoint, ZENDESK_BODY)


def install_jira(j: JiraConnector, endpoint: str, secret: str) -> str:
    """syncd's admin webhook on Jira (see :meth:`JiraConnector.install_webhook`)."""
    return j.install_webhook(NAME, endpoint, secret, JIRA_EVENTS)
