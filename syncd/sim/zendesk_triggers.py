"""Zendesk trigger semantics for the simulator: condition matching and
placeholder rendering, as pure functions over plain dicts.

Kept apart from :mod:`syncd.sim.zendesk` so the rules can be read (and tested)
without a server. Only the subset syncd and its tests rely on is implemented;
see :func:`condition_matches` for the list. An unknown condition never matches,
so a trigger the simulator does not understand stays silent rather than firing
on every change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

JSON = Any

STATUS_ORDER = ("new", "open", "pending", "hold", "solved", "closed")


@dataclass(frozen=True)
class UpdateContext:
    """What one ticket create/update looked like, as triggers see it.

    ``ticket`` is the ticket's JSON after the change; ``previous`` maps each
    changed attribute to its value before the change (absent = unchanged).
    """

    ticket: dict[str, JSON]
    update_type: str                      # "Create" | "Change"
    previous: dict[str, JSON] = field(default_factory=dict)
    current_user: dict[str, JSON] = field(default_factory=dict)
    comment: dict[str, JSON] | None = None  # the comment added by this update, if any


def trigger_matches(trigger: dict[str, JSON], ctx: UpdateContext) -> bool:
    """All of ``conditions.all`` and, when present, at least one of ``conditions.any``."""
    conditions = trigger.get("conditions") or {}
    every = conditions.get("all") or []
    some = conditions.get("any") or []
    if not all(condition_matches(c, ctx) for c in every):
        return False
    return not some or any(condition_matches(c, ctx) for c in some)


def condition_matches(cond: dict[str, JSON], ctx: UpdateContext) -> bool:
    """Supported: ``update_type is``; ``current_tags includes|not_includes``;
    ``comment_is_public is true|false|not_relevant``; ``role is agent|end_user``;
    and for plain ticket attributes (status, priority, type, assignee_id,
    group_id, ...) ``is``, ``is_not``, ``changed``, ``not_changed``, ``value``
    (changed to), ``value_previous`` (changed from), and ``less_than`` /
    ``greater_than`` for status."""
    name, op, value = cond.get("field"), cond.get("operator"), cond.get("value")
    if name == "update_type":
        return op == "is" and str(value) == ctx.update_type
    if name == "current_tags":
        return _tags_condition(op, value, ctx.ticket.get("tags") or [])
    if name == "comment_is_public":
        return _comment_public_condition(value, ctx.comment)
    if name == "role":
        return op == "is" and str(value) == ("agent" if ctx.current_user.get("role") in ("admin", "agent") else "end_user")
    if name in ctx.ticket:
        return _attribute_condition(name, op, value, ctx)
    return False


def _tags_condition(op: str | None, value: JSON, tags: list[str]) -> bool:
    wanted = set(value.split() if isinstance(value, str) else (value or []))
    hit = bool(wanted & set(tags))
    if op == "includes":
        return hit
    if op == "not_includes":
        return not hit
    return False


def _comment_public_condition(value: JSON, comment: dict[str, JSON] | None) -> bool:
    wanted = str(value).lower()
    if wanted == "not_relevant":
        return True
    if comment is None:
        return False
    return bool(comment.get("public")) is (wanted == "true")


def _attribute_condition(name: str, op: str | None, value: JSON, ctx: UpdateContext) -> bool:
    current = ctx.ticket.get(name)
    changed = name in ctx.previous
    if op == "is":
        return _same(current, value)
    if op == "is_not":
        return not _same(current, value)
    if op == "changed":
        return changed
    if op == "not_changed":
        return not changed
    if op == "value":
        return changed and _same(current, value)
    if op == "value_previous":
        return changed and _same(ctx.previous.get(name), value)
    if op in ("less_than", "greater_than") and name == "status":
        return _status_compare(op, current, value)
    return False


def _same(actual: JSON, wanted: JSON) -> bool:
    # Zendesk sends condition values as strings ("123", "open") whatever the type.
    if actual is None:
        return wanted in (None, "", "null")
    return str(actual).lower() == str(wanted).lower()


def _status_compare(op: str, current: JSON, value: JSON) -> bool:
    if current not in STATUS_ORDER or value not in STATUS_ORDER:
        return False
    a, b = STATUS_ORDER.index(current), STATUS_ORDER.index(value)
    return a < b if op == "less_than" else a > b


_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z0-9_.]+)\s*\}\}")


def render_template(template: str, values: dict[str, str]) -> str:
    """Replace ``{{name}}`` placeholders. Like Zendesk, values are inserted as raw
    text (no JSON escaping) and an unknown placeholder renders empty."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def placeholder_values(ctx: UpdateContext, *, host: str, updated_at_iso: str) -> dict[str, str]:
    """The placeholders the simulator knows, rendered as Zendesk renders them."""
    t = ctx.ticket
    user = ctx.current_user

    def text(v: JSON) -> str:
        return "" if v is None else str(v)

    status = text(t.get("status"))
    return {
        "ticket.id": text(t.get("id")),
        "ticket.external_id": text(t.get("external_id")),
        "ticket.title": text(t.get("subject")),
        "ticket.description": text(t.get("description")),
        # Zendesk renders the status for humans: "Open", "Pending", ...
        "ticket.status": status.capitalize(),
        "ticket.priority": text(t.get("priority")).capitalize(),
        "ticket.ticket_type": text(t.get("type")).capitalize(),
        "ticket.tags": " ".join(t.get("tags") or []),
        "ticket.updated_at_with_timestamp": updated_at_iso,
        "ticket.created_at_with_timestamp": text(t.get("created_at")),
        "ticket.url": f"{host}/agent/tickets/{t.get('id')}",
        "ticket.link": f"{host}/agent/tickets/{t.get('id')}",
        "ticket.requester.id": text(t.get("requester_id")),
        "ticket.assignee.id": text(t.get("assignee_id")),
        "ticket.organization.id": text(t.get("organization_id")),
        "ticket.group.id": text(t.get("group_id")),
        "ticket.latest_comment.id": text((ctx.comment or {}).get("id")),
        "ticket.latest_comment.value": text((ctx.comment or {}).get("body")),
        "current_user.id": text(user.get("id")),
        "current_user.email": text(user.get("email")),
        "current_user.name": text(user.get("name")),
    }
