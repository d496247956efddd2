"""What the Zendesk route modules may touch: the records and the simulator's
public surface, as a protocol.

:class:`~syncd.sim.zendesk.ZendeskSim` implements :class:`ZendeskState`; the
route modules (``zendesk_tickets``, ``zendesk_users``, ...) are typed against
this protocol, not the class, so they never import :mod:`syncd.sim.zendesk`
and the imports run one way: ``zendesk`` -> route modules -> ``zendesk_state``
/ :mod:`~syncd.sim.zendesk_http` -> :mod:`~syncd.sim.core`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from syncd.sim.core import JSON, Clock, Request
from syncd.sim.webhook_sender import WebhookSender


@dataclass
class Ticket:
    id: int
    subject: str
    description: str
    status: str
    priority: str | None
    type: str | None
    tags: list[str]
    requester_id: int
    submitter_id: int
    organization_id: int | None
    assignee_id: int | None
    group_id: int | None
    custom: dict[int, JSON]
    external_id: str | None
    due_at: str | None
    created: float
    updated: float
    via_channel: str
    comments: list[dict[str, JSON]] = field(default_factory=list)
    custom_status_id: int | None = None    # see syncd.sim.zendesk_statuses


@dataclass
class Upload:
    token: str
    attachments: list[dict[str, JSON]]
    expires: float


class ZendeskState(Protocol):
    """The Zendesk simulator as its route modules see it. Callers hold ``lock``."""

    clock: Clock
    lock: threading.RLock
    webhooks: WebhookSender
    tickets: dict[int, Ticket]
    jira_links: dict[int, dict[str, JSON]]   # Zendesk's Jira integration links (zendesk_jira_links)
    jira_v2_links: dict[str, list[dict[str, JSON]]]   # the V2 integration's, per external id (zendesk_jira_links_v2)
    users: dict[int, dict[str, JSON]]
    sessions: list[dict[str, JSON]]   # ListSessions (doctor: is the integration account used by people)
    organizations: dict[int, dict[str, JSON]]
    ticket_fields: dict[int, dict[str, JSON]]
    custom_statuses: dict[int, dict[str, JSON]]
    triggers: dict[int, dict[str, JSON]]
    webhook_defs: dict[str, dict[str, JSON]]
    webhook_secrets: dict[str, str]
    audits: list[dict[str, JSON]]
    uploads: dict[str, Upload]
    files: dict[str, tuple[bytes, str]]
    attachments: dict[int, dict[str, JSON]]
    idempotency: dict[str, tuple[str, int, dict[str, JSON], float]]
    ticket_updates: dict[tuple[int, int], list[float]]
    incremental_calls: list[float]
    export_exclusion: float
    incremental_rate_limit: int | None
    ticket_update_limit: int | None
    ticket_update_window: float

    @property
    def base_url(self) -> str: ...

    def next_id(self, kind: str) -> int:
        """The next id of a kind (``ticket``, ``user``, ``comment``, ...)."""
        ...

    def url(self, path: str) -> str:
        """The API URL of ``path`` (``tickets/1.json``)."""
        ...

    def caller(self, request: Request) -> dict[str, JSON]:
        """The authenticated user of a request."""
        ...

    def ticket(self, ticket_id: int) -> Ticket:
        """A ticket, or 404 ``RecordNotFound``."""
        ...
