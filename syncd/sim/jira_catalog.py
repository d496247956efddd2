"""The fixed world of the Jira simulator and its mutable records.

Fixed: status categories, statuses, the one workflow, resolutions, priorities,
issue types and fields (system and custom). Mutable: users, projects, versions,
issues, comments — plain records guarded by the simulator's lock (they are state,
not domain values, hence not frozen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# id -> (key, name, colorName)
STATUS_CATEGORIES: dict[int, tuple[str, str, str]] = {
    2: ("new", "To Do", "blue-gray"),
    4: ("indeterminate", "In Progress", "yellow"),
    3: ("done", "Done", "green"),
}

# id -> (name, status category id)
STATUSES: dict[str, tuple[str, int]] = {
    "10000": ("To Do", 2),
    "3": ("In Progress", 4),
    "10001": ("Done", 3),
}
INITIAL_STATUS = "10000"
DONE_STATUS = "10001"


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    source: str     # status id
    target: str     # status id


# The only workflow: To Do -(Start)-> In Progress -(Done)-> Done; Stop and Reopen go back.
WORKFLOW_NAME = "Software Simplified Workflow"
TRANSITIONS: tuple[Transition, ...] = (
    Transition("11", "Start", "10000", "3"),
    Transition("21", "Done", "3", "10001"),
    Transition("31", "Stop", "3", "10000"),
    Transition("41", "Reopen", "10001", "10000"),
)

RESOLUTIONS: dict[str, tuple[str, str]] = {
    "10000": ("Done", "Work has been completed on this issue."),
    "10001": ("Won't Do", "This issue won't be actioned."),
}
DONE_RESOLUTION = "10000"

PRIORITIES: dict[str, str] = {"1": "Highest", "2": "High", "3": "Medium", "4": "Low", "5": "Lowest"}
DEFAULT_PRIORITY = "3"

ISSUE_TYPES: dict[str, tuple[str, str]] = {
    "10001": ("Task", "A small, distinct piece of work."),
    "10002": ("Story", "Functionality or a feature expressed as a user goal."),
    "10004": ("Bug", "A problem or error."),
}

_CF = "com.atlassian.jira.plugin.system.customfieldtypes:"


@dataclass(frozen=True)
class CustomField:
    id: str
    name: str
    kind: str            # text | number | datetime | select
    custom_type: str
    options: tuple[tuple[str, str], ...] = ()   # (option id, value) for select

    @property
    def number(self) -> int:
        return int(self.id.rsplit("_", 1)[1])


CUSTOM_FIELDS: dict[str, CustomField] = {f.id: f for f in (
    CustomField("customfield_10050", "Customer impact", "text", _CF + "textfield"),
    CustomField("customfield_10051", "Linked tickets", "number", _CF + "float"),
    CustomField("customfield_10052", "SLA deadline", "datetime", _CF + "datetime"),
    CustomField("customfield_10053", "Severity", "select", _CF + "select",
                (("10100", "Sev 1"), ("10101", "Sev 2"), ("10102", "Sev 3"))),
    CustomField("customfield_10054", "Linked organizations", "number", _CF + "float"),
    CustomField("customfield_10055", "Desk status", "text", _CF + "textfield"),
)}

# System fields: id -> (name, schema type, schema items, navigable, orderable)
SYSTEM_FIELDS: dict[str, tuple[str, str, str | None]] = {
    "summary": ("Summary", "string", None),
    "description": ("Description", "string", None),
    "issuetype": ("Issue Type", "issuetype", None),
    "project": ("Project", "project", None),
    "status": ("Status", "status", None),
    "resolution": ("Resolution", "resolution", None),
    "resolutiondate": ("Resolved", "datetime", None),
    "priority": ("Priority", "priority", None),
    "labels": ("Labels", "array", "string"),
    "components": ("Components", "array", "component"),
    "fixVersions": ("Fix versions", "array", "version"),
    "assignee": ("Assignee", "user", None),
    "reporter": ("Reporter", "user", None),
    "creator": ("Creator", "user", None),
    "created": ("Created", "datetime", None),
    "updated": ("Updated", "datetime", None),
    "statuscategorychangedate": ("Status Category Changed", "datetime", None),
    "comment": ("Comment", "comments-page", None),
    "attachment": ("Attachment", "array", "attachment"),
}
_CLAUSES = {"fixVersions": ["fixVersion"], "components": ["component"], "issuetype": ["issuetype", "type"],
            "resolutiondate": ["resolutiondate", "resolved"], "attachment": ["attachments"]}


def field_list() -> list[dict[str, Any]]:
    """``GET /field``: every field with its clause names (the jira library maps them)."""
    out: list[dict[str, Any]] = []
    for fid, (name, typ, items) in SYSTEM_FIELDS.items():
        schema: dict[str, Any] = {"type": typ, "system": fid}
        if items:
            schema["items"] = items
        out.append({"id": fid, "key": fid, "name": name, "custom": False, "orderable": True,
                    "navigable": True, "searchable": True,
                    "clauseNames": _CLAUSES.get(fid, [fid]), "schema": schema})
    for cf in CUSTOM_FIELDS.values():
        typ = {"text": "string", "number": "number", "datetime": "datetime", "select": "option"}[cf.kind]
        out.append({"id": cf.id, "key": cf.id, "name": cf.name, "custom": True, "orderable": True,
                    "navigable": True, "searchable": True,
                    "clauseNames": [f"cf[{cf.number}]", cf.name],
                    "schema": {"type": typ, "custom": cf.custom_type, "customId": cf.number}})
    return out


# --------------------------------------------------------------------------- records

@dataclass
class User:
    account_id: str
    email: str
    display_name: str
    api_token: str


@dataclass
class Project:
    id: str
    key: str
    name: str
    lead: str                 # account id
    next_number: int = 1
    component_ids: list[str] = field(default_factory=list)


@dataclass
class Version:
    id: str
    project_id: str
    name: str
    description: str | None = None
    released: bool = False
    archived: bool = False
    release_date: str | None = None


@dataclass
class Component:
    id: str
    project_id: str
    name: str


@dataclass
class CommentRec:
    id: int
    author: str
    body: dict[str, Any]      # ADF
    created: float
    updated: float
    update_author: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Attachment:
    id: int
    issue_id: int
    filename: str
    mime_type: str
    content: bytes
    author: str
    created: float


@dataclass
class History:
    id: int
    author: str
    created: float
    items: list[dict[str, Any]]


@dataclass
class IssueRec:
    id: int
    key: str
    project_id: str
    issuetype_id: str
    summary: str
    reporter: str
    created: float
    updated: float
    description: dict[str, Any] | None = None   # ADF
    status_id: str = INITIAL_STATUS
    status_changed: float = 0.0
    resolution_id: str | None = None
    resolution_date: float | None = None
    priority_id: str = DEFAULT_PRIORITY
    labels: list[str] = field(default_factory=list)
    component_ids: list[str] = field(default_factory=list)
    fix_version_ids: list[str] = field(default_factory=list)
    assignee: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)   # field id -> stored value
    comments: list[CommentRec] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    remote_links: list[dict[str, Any]] = field(default_factory=list)
    attachment_ids: list[int] = field(default_factory=list)
    changelog: list[History] = field(default_factory=list)
    old_keys: list[str] = field(default_factory=list)


@dataclass
class Hook:
    """An admin webhook registration."""
    id: int
    name: str
    url: str
    events: list[str]
    jql: str | None
    secret: str | None
    enabled: bool = True
    updated: float = 0.0
