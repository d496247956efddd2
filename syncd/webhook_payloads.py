"""What a verified webhook delivery tells us: which items may have changed,
and the id that makes a redelivery recognisable.

Pure functions: ``(raw body, lower-cased headers) → Relevant | Ignored``, or
:class:`MalformedPayload` when the body is not the vendor's shape. The payload
is only a hint; the worker reads both sides later, so nothing here interprets
field values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from .domain import VERSION_KIND, ItemRef
from .errors import SyncdError

ZENDESK_EVENT = "ticket_changed"   # the "event" in the trigger body template syncd installs
JIRA_ISSUE_EVENT_PREFIX = "jira:issue_"
JIRA_COMMENT_EVENT_PREFIX = "comment_"
JIRA_VERSION_RELEASED = "jira:version_released"
INTERCOM_TAG_TOPIC = "conversation_part.tag.created"

Headers = Mapping[str, str]   # lower-cased names


@dataclass(frozen=True)
class Relevant:
    """Store this delivery under ``delivery_id`` and mark ``refs`` dirty.

    ``actor`` is who made the change, when the payload says (Zendesk: the
    trigger's ``{{current_user.id}}``; Jira: ``user.accountId``; Intercom:
    ``admin:<id>`` of an admin topic's part author): the receiver
    compares it with syncd's own account to recognise the echo of its own write.
    """

    delivery_id: str
    refs: tuple[ItemRef, ...]
    actor: str | None = None


@dataclass(frozen=True)
class Ignored:
    """Acknowledge and drop: the delivery can never matter (``reason`` is for the log)."""

    reason: str
    detail: str = ""


Parsed = Union[Relevant, Ignored]


class MalformedPayload(SyncdError):
    """Signed by the vendor but not the shape we expect; ``reason`` is a stable code."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def parse_zendesk(body: bytes, headers: Headers) -> Parsed:
    """Body of the trigger syncd installs:
    ``{"ticket_id": "{{ticket.id}}", "updated_at": "...", "event": "ticket_changed"}``.

    Delivery id: ``X-Zendesk-Webhook-Invocation-Id``, else a digest of the
    signed timestamp and body (each retry is re-signed, so such retries are
    not recognised as one: harmless, they only mark the same ticket dirty again).
    """
    doc = _json_object(body)
    event = doc.get("event", ZENDESK_EVENT)
    if event != ZENDESK_EVENT:
        return Ignored("unhandled_event", str(event))
    ticket_id = _numeric_id(doc.get("ticket_id"), "bad_ticket_id")
    delivery_id = headers.get("x-zendesk-webhook-invocation-id") or _digest(
        headers.get("x-zendesk-webhook-signature-timestamp", "").encode() + body)
    actor = doc.get("actor")
    return Relevant(delivery_id, (ItemRef("zendesk", ticket_id),), str(actor) if actor not in (None, "") else None)


def parse_jira(body: bytes, headers: Headers) -> Parsed:
    """``{webhookEvent, issue: {id, key, fields}, changelog, comment, user, timestamp}``.

    ``jira:issue_*`` and ``comment_*`` events name the issue by its immutable
    id; ``jira:issue_deleted`` is marked dirty too (the worker finds it gone);
    ``jira:version_released`` names the version (the worker fans it out).
    Delivery id: ``X-Atlassian-Webhook-Identifier`` (the same on every retry),
    else a digest of the body.
    """
    doc = _json_object(body)
    event = doc.get("webhookEvent")
    if not isinstance(event, str) or not event:
        raise MalformedPayload("missing_webhook_event")
    delivery_id = headers.get("x-atlassian-webhook-identifier") or _digest(body)
    if event == JIRA_VERSION_RELEASED:
        version = doc.get("version")
        if not isinstance(version, dict):
            raise MalformedPayload("missing_version")
        return Relevant(delivery_id, (ItemRef(VERSION_KIND, _numeric_id(version.get("id"), "bad_version_id")),))
    if not event.startswith((JIRA_ISSUE_EVENT_PREFIX, JIRA_COMMENT_EVENT_PREFIX)):
        return Ignored("unhandled_event", event)
    issue = doc.get("issue")
    if not isinstance(issue, dict):
        raise MalformedPayload("missing_issue")
    issue_id = _numeric_id(issue.get("id"), "bad_issue_id")
    user = doc.get("user")
    actor = user.get("accountId") if isinstance(user, dict) else None
    return Relevant(delivery_id, (ItemRef("jira", issue_id),), actor if isinstance(actor, str) else None)


def parse_intercom(body: bytes, headers: Headers) -> Parsed:
    """``{"type": "notification_event", "id", "topic", "data": {"item": {...}}}``.

    ``conversation.*`` → the conversation, ``ticket.*`` → the ticket, ``ping``
    and every other topic → ignored. Delivery id: the notification ``id``.
    Actor: ``admin:<id>`` for a teammate's change (see :func:`_intercom_actor`).
    """
    doc = _json_object(body)
    if doc.get("type") != "notification_event":
        raise MalformedPayload("not_a_notification_event")
    topic = doc.get("topic")
    if not isinstance(topic, str) or not topic:
        raise MalformedPayload("missing_topic")
    kind = _intercom_kind(topic)
    if kind is None:
        return Ignored("ping" if topic == "ping" else "unhandled_topic", topic)
    notification_id = doc.get("id")
    if not isinstance(notification_id, str) or not notification_id:
        raise MalformedPayload("missing_notification_id")
    data = doc.get("data")
    item = data.get("item") if isinstance(data, dict) else None
    if not isinstance(item, dict):
        raise MalformedPayload("missing_item")
    ref = _item_ref(kind, item.get("id"), "bad_item_id")
    return Relevant(notification_id, (ref,), _intercom_actor(topic, item))


PARSERS: Mapping[str, Callable[[bytes, Headers], Parsed]] = {
    "zendesk": parse_zendesk,
    "jira": parse_jira,
    "intercom": parse_intercom,
}


def _intercom_kind(topic: str) -> str | None:
    # "conversation_part.*" and "contact.*" topics are not ours: match on the
    # dotted prefix, not on the word. Except tagging: its item is the whole
    # conversation, and a tag is how a teammate escalates.
    if topic.startswith("conversation.") or topic == INTERCOM_TAG_TOPIC:
        return "intercom:conversation"
    if topic.startswith("ticket."):
        return "intercom:ticket"
    return None


# Topics only a teammate (or the API acting as one) can cause. The item of
# these carries just the part(s) the event created, authored by that admin.
_INTERCOM_ADMIN_TOPIC_PREFIXES = ("conversation.admin.", "ticket.admin.")
_INTERCOM_ADMIN_TOPICS = frozenset({"ticket.note.created", "ticket.state.updated"})


def _intercom_actor(topic: str, item: Mapping[str, Any]) -> str | None:
    """``admin:<id>`` when an admin topic's parts all have that one admin as
    author (for a tagging: see :func:`_tagger`), else None. Deliberately conservative: a wrong actor would drop a
    real change (until the poller), a missing one only costs a no-op reconcile,
    so a customer topic, a part-less item (tags, attributes) or parts by several
    authors never name an actor."""
    if topic == INTERCOM_TAG_TOPIC:
        return _tagger(item)
    if not (topic.startswith(_INTERCOM_ADMIN_TOPIC_PREFIXES) or topic in _INTERCOM_ADMIN_TOPICS):
        return None
    authors = {_admin_author(p) for p in _intercom_parts(item)}
    if len(authors) != 1:
        return None
    return authors.pop()


def _tagger(item: Mapping[str, Any]) -> str | None:
    """A tagging item has no part: the tag applied last (``applied_at``, whole
    seconds) names who applied it in ``applied_by``; a tie between admins → None."""
    listing = item.get("tags")
    tags = listing.get("tags") if isinstance(listing, dict) else None
    if not isinstance(tags, list):
        return None
    dated = [t for t in tags if isinstance(t, dict) and isinstance(t.get("applied_at"), int)]
    if not dated:
        return None
    newest = max(t["applied_at"] for t in dated)
    appliers = {_admin_author({"author": t.get("applied_by")}) for t in dated if t["applied_at"] == newest}
    return appliers.pop() if len(appliers) == 1 else None


def _intercom_parts(item: Mapping[str, Any]) -> list[Any]:
    for key in ("conversation_parts", "ticket_parts"):
        listing = item.get(key)
        if isinstance(listing, dict) and isinstance(listing.get(key), list):
            return listing[key]
    return []


def _admin_author(part: Any) -> str | None:
    author = part.get("author") if isinstance(part, dict) else None
    if not isinstance(author, dict) or author.get("type") != "admin":
        return None
    raw = author.get("id")
    text = str(raw).strip() if isinstance(raw, (int, str)) and not isinstance(raw, bool) else ""
    return f"admin:{text}" if text else None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("invalid_json") from None
    if not isinstance(doc, dict):
        raise MalformedPayload("not_a_json_object")
    return doc


def _numeric_id(raw: object, reason: str) -> str:
    """Zendesk ticket ids and Jira issue ids are positive integers, sent as a
    JSON number or (through a template placeholder) as a string."""
    if isinstance(raw, bool):
        raise MalformedPayload(reason)
    text = str(raw).strip() if isinstance(raw, (int, str)) else ""
    if not text.isascii() or not text.isdigit() or int(text) == 0:
        raise MalformedPayload(reason)
    return str(int(text))


def _item_ref(kind: str, raw: object, reason: str) -> ItemRef:
    text = str(raw).strip() if isinstance(raw, (int, str)) and not isinstance(raw, bool) else ""
    try:
        return ItemRef(kind, text)
    except ValueError:
        raise MalformedPayload(reason) from None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
