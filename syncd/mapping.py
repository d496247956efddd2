"""The typed form of a mapping file (``mappings/zendesk-jira.toml``,
``mappings/intercom-jira.toml``). Loading and validation: :mod:`syncd.mapping_loader`.

A *locator* names a field on one side in that side's own terms:

* desk (Zendesk): ``status``, ``priority``, ``type``, ``tags``, ``subject``,
  ``custom:<ticket field id>``;
  desk (Intercom): ``state``, ``tags``, ``attr:<conversation attribute>``,
  ``ticket_state``, ``ticket_attr:<name>``;
* tracker (Jira): ``status`` (written by a transition), ``resolution``,
  ``fixVersions``, ``labels``, ``priority``, ``components``, ``summary``,
  ``key``, ``customfield_<n>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping as TMapping

from .domain import Side


class Direction(str, Enum):
    DESK_TO_TRACKER = "desk_to_tracker"
    TRACKER_TO_DESK = "tracker_to_desk"
    BOTH = "both"

    def allows(self, source: Side) -> bool:
        if self is Direction.BOTH:
            return True
        return (self is Direction.DESK_TO_TRACKER) == (source is Side.DESK)


class ConflictRule(str, Enum):
    DESK_WINS = "desk"
    TRACKER_WINS = "tracker"
    NEWEST = "newest"


@dataclass(frozen=True)
class FieldRule:
    """One mapped field.

    ``to_tracker``/``to_desk`` translate values; a value missing from a non-empty
    table falls back to ``default_to_*``; with no default the value is *unmapped*:
    reported, and that field alone is left alone. An empty table means "copy as is".
    """

    name: str
    desk: str
    tracker: str
    direction: Direction = Direction.BOTH
    conflict: ConflictRule = ConflictRule.NEWEST
    to_tracker: TMapping[str, str] = field(default_factory=dict)
    to_desk: TMapping[str, str] = field(default_factory=dict)
    default_to_tracker: str | None = None
    default_to_desk: str | None = None
    note_on_change: bool = False   # internal note on the desk item when the tracker value changes


@dataclass(frozen=True)
class CommentRules:
    desk_public_to_tracker: bool = True
    desk_internal_to_tracker: bool = False
    tracker_to_desk: bool = True
    public_marker: str = "#public"     # a tracker comment starting with this becomes a public reply
    mirror_history: bool = False       # mirror comments written before the link existed
    # Headers put above a mirrored comment so the reader sees who wrote it and when.
    to_tracker_header: str = "{author} wrote on {desk_ref} at {created}:"
    to_desk_header: str = "{author} commented on {issue_key} at {created}:"


@dataclass(frozen=True)
class EscalationRules:
    tag: str = "jira_escalate"
    project_field: str | None = None                              # desk locator of a "Jira project" dropdown
    project_values: TMapping[str, str] = field(default_factory=dict)  # dropdown value → project key
    default_project: str | None = None
    issue_type: str = "Bug"
    summary: str = "{title}"
    labels: tuple[str, ...] = ("from-support",)
    key_field: str | None = None         # desk locator that shows (and accepts) the linked issue key
    linked_tag: str = "jira_linked"
    note: str = "Escalated to Jira: {issue_key} {issue_url}"
    fields: TMapping[str, str] = field(default_factory=dict)    # tracker locator → value at creation


@dataclass(frozen=True)
class FanoutRules:
    """What every linked desk item gets when its issue is resolved or its fix released."""

    on_status: tuple[str, ...] = ("Done",)
    note: str = "Jira {issue_key} is {status}{fix_suffix}."
    desk_status: str | None = "open"       # so the agent tells the customer
    desk_status_field: str = "status"      # desk locator that value is written to (Intercom: "state")
    public_reply: str | None = None        # template, or None for no public reply
    on_release_note: str = "Fix version {version} of {issue_key} has been released."


@dataclass(frozen=True)
class AttachmentRules:
    enabled: bool = True
    max_bytes: int = 10 * 1024 * 1024
    mode: str = "upload"    # upload | link


@dataclass(frozen=True)
class Mapping:
    desk: str                                  # zendesk | intercom
    source_path: str
    fields: tuple[FieldRule, ...] = ()
    comments: CommentRules = CommentRules()
    escalation: EscalationRules = EscalationRules()
    fanout: FanoutRules = FanoutRules()
    attachments: AttachmentRules = AttachmentRules()
    # Tracker locators that receive aggregates over all links of an issue.
    linked_count_field: str | None = None      # how many desk items are linked
    linked_orgs_field: str | None = None       # how many distinct organizations
    sla_field: str | None = None               # earliest SLA deadline of the linked items

    def field(self, name: str) -> FieldRule:
        for rule in self.fields:
            if rule.name == name:
                return rule
        raise KeyError(name)
