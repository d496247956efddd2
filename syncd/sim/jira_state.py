"""The Jira simulator as its route modules see it.

:class:`~syncd.sim.jira.JiraSim` implements :class:`JiraState`; every
``jira_*`` route module is typed against this protocol, never the class, so
none imports :mod:`syncd.sim.jira` and the imports run one way (``jira`` ->
route modules -> ``jira_state``/``jira_http``/``jira_catalog`` -> ``core``).
:class:`Change` is what one state change did (changelog items and webhook
``changelog``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from syncd.sim.core import Clock, Knobs, Request
from syncd.sim.jira_catalog import Attachment, Component, Hook, IssueRec, Project, User, Version
from syncd.sim.webhook_sender import WebhookSender


@dataclass
class Change:
    """What one state change did, for the changelog and the webhook."""
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, fid: str, name: str, old: Any, old_s: str | None, new: Any, new_s: str | None,
            fieldtype: str = "jira") -> None:
        self.items.append({"field": name, "fieldtype": fieldtype, "fieldId": fid,
                           "from": None if old is None else str(old), "fromString": old_s,
                           "to": None if new is None else str(new), "toString": new_s})


class JiraState(Protocol):
    """The Jira simulator as its route modules see it. Callers hold ``lock``."""

    clock: Clock
    lock: threading.RLock
    knobs: Knobs
    webhooks: WebhookSender
    users: dict[str, User]
    projects: dict[str, Project]
    versions: dict[str, Version]
    components: dict[str, Component]
    issues: dict[int, IssueRec]
    attachments: dict[int, Attachment]
    hooks: dict[int, Hook]
    admin: User
    engineer: User
    search_lag: float
    issue_write_limit: tuple[int, float] | None
    issue_writes: dict[int, list[float]]                      # issue id -> recent write times
    snapshots: dict[int, list[tuple[float, IssueRec]]]        # issue id -> (time, copy) for search_lag
    delivery_secrets: dict[str, str]                          # webhook delivery id -> secret

    @property
    def base_url(self) -> str: ...

    def next_id(self) -> int:
        """The next id of any record (issues, comments, versions, histories...)."""
        ...

    def url(self, ver: str, path: str) -> str:
        """The REST URL of ``path`` under API version ``ver``."""
        ...

    def project(self, ref: str) -> Project:
        """A project by id or key, or 404."""
        ...

    def issue(self, ref: str | int) -> IssueRec:
        """An issue by id, key or a key it had before a move, or 404."""
        ...

    def actor(self, request: Request) -> str:
        """The account id of a request's caller."""
        ...
