"""The records of a simulated Intercom workspace (admins, contacts, companies,
tags, data attributes, conversations and their parts, ticket types, states and
tickets) and the error the workspace answers with. Plain mutable records guarded
by the simulator's lock: state, not domain values, hence not frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


JSON = dict[str, Any]

TICKET_STATE_CATEGORIES = ("submitted", "in_progress", "waiting_on_customer", "resolved")
CUSTOM_ATTRIBUTE_TYPES = {"string": (str,), "integer": (int,), "float": (int, float),
                          "boolean": (bool,), "date": (int,), "datetime": (int,)}


class WorldError(Exception):
    """A request Intercom refuses: HTTP status, Intercom error code, message."""

    def __init__(self, status: int, code: str, message: str, field_name: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field_name


def not_found(what: str) -> WorldError:
    return WorldError(404, "not_found", f"{what} Not Found")


def bad(message: str, field_name: str | None = None) -> WorldError:
    return WorldError(400, "parameter_invalid", message, field_name)


@dataclass
class Admin:
    id: str
    name: str
    email: str


@dataclass
class Contact:
    id: str
    role: str
    email: str | None
    name: str | None
    external_id: str | None
    created_at: int
    updated_at: int
    company_ids: list[str] = field(default_factory=list)


@dataclass
class Company:
    id: str
    company_id: str
    name: str | None
    created_at: int
    updated_at: int
    plan: str | None = None


@dataclass
class Tag:
    id: str
    name: str


@dataclass
class DataAttribute:
    id: int
    model: str
    name: str
    data_type: str
    description: str
    custom: bool
    created_at: int
    admin_id: str | None = None


@dataclass
class Part:
    """A conversation part or a ticket part."""
    id: str
    part_type: str
    body: str | None
    author: JSON
    created_at: int
    attachments: list[JSON] = field(default_factory=list)
    assigned_to: JSON | None = None
    previous_ticket_state: str | None = None
    ticket_state: str | None = None


@dataclass
class AppliedTag:
    tag_id: str
    applied_at: int
    applied_by: str


@dataclass
class Conversation:
    id: str
    created_at: int
    updated_at: int
    source: JSON
    contact_ids: list[str]
    state: str = "open"
    read: bool = False
    title: str | None = None
    admin_assignee_id: int | None = None
    team_assignee_id: int | None = None
    snoozed_until: int | None = None
    waiting_since: int | None = None
    custom_attributes: JSON = field(default_factory=dict)
    tags: list[AppliedTag] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    last_contact_reply_at: int | None = None
    last_admin_reply_at: int | None = None


@dataclass
class TicketTypeAttribute:
    id: str
    name: str
    description: str
    data_type: str
    order: int
    required_to_create: bool
    default: bool
    created_at: int


@dataclass
class TicketType:
    id: str
    name: str
    description: str
    category: str
    icon: str
    created_at: int
    updated_at: int
    attributes: list[TicketTypeAttribute] = field(default_factory=list)
    archived: bool = False


@dataclass
class TicketState:
    id: str
    category: str
    internal_label: str
    external_label: str


@dataclass
class Ticket:
    id: str
    ticket_id: str
    ticket_type_id: str
    contact_ids: list[str]
    attributes: JSON
    state_id: str
    created_at: int
    updated_at: int
    open: bool = True
    is_shared: bool = True
    admin_assignee_id: str = "0"
    team_assignee_id: str = "0"
    company_id: str | None = None
    snoozed_until: int | None = None
    parts: list[Part] = field(default_factory=list)
