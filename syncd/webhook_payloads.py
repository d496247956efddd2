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
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from .domain import VERSION_KIND, ItemRef, parse_id
from .errors import SyncdError
from .issue_hints import IssueHint

ZENDESK_EVENT = "ticket_changed"   # the "event" in the trigger body template syncd installs
JIRA_ISSUE_EVENT_PREFIX = "jira:issue_"
JIRA_COMMENT_EVENT_PREFIX = "comment_"
JIRA_VERSION_RELEASED = "jira:version_released"
INTERCOM_TAG_TOPIC = "conversation_part.tag.created"

Headers = Mapping[str, str]   # lower-cased names

# Bounds on a signed body (a vendor's secret can leak, and a vendor can send
# garbage): the deepest real body in ../shared/realworld nests 9 levels, the
# longest number is a 13-digit millisecond timestamp.
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 40


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
    # When the payload says its item changed (epoch seconds), for a delivery that says so
    # soundly (Jira issue and comment events); None otherwise. See jira_stamp().
    stamp: float | None = None
    hint: IssueHint | None = None   # what a Jira delivery showed of its issue (syncd.issue_hints)


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
        # e.g. an event-subscription webhook ({"type": "zen:event-type:user.deleted",
        # "event": {}}, recorded: ../shared/realworld/zendesk/webhook/zw-user-deleted-event.json)
        # pointed at syncd's URL: acknowledged, so Zendesk does not retry or deactivate it.
        return Ignored("unhandled_event", _short(doc.get("type") if isinstance(doc.get("type"), str) else event))
    ticket_id = _numeric_id(doc.get("ticket_id"), "bad_ticket_id")
    delivery_id = headers.get("x-zendesk-webhook-invocation-id") or _digest(
        headers.get("x-zendesk-webhook-signature-timestamp", "").encode() + body)
    actor = doc.get("actor")
    actor = str(actor) if isinstance(actor, (int, str)) and not isinstance(actor, bool) and actor != "" else None
    return Relevant(delivery_id, (ItemRef("zendesk", ticket_id),), actor)


def parse_jira(body: bytes, headers: Headers) -> Parsed:
    """``{webhookEvent, issue: {id, key, fields}, changelog, comment, user, timestamp}``.

    ``jira:issue_*`` and ``comment_*`` events name the issue by its immutable
    id; ``jira:issue_deleted`` is marked dirty too (the worker finds it gone);
    ``jira:version_released`` names the version (the worker fans it out).
    Jira Server/Data Center comment events carry no ``issue``: its id is taken
    from ``comment.self`` (``…/rest/api/2/issue/10013/comment/10082``, recorded
    in ../shared/realworld/jira/webhook/jw-server-comment-created.json).
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
        return Ignored("unhandled_event", _short(event))
    comment = doc.get("comment")
    comment = comment if isinstance(comment, dict) else None
    issue = doc.get("issue")
    if isinstance(issue, dict):
        issue_id = _numeric_id(issue.get("id"), "bad_issue_id")
    elif event.startswith(JIRA_COMMENT_EVENT_PREFIX) and comment is not None:
        issue_id = _issue_id_from_comment(comment)
    else:
        raise MalformedPayload("missing_issue")
    stamp = jira_stamp(event, issue, comment)
    return Relevant(delivery_id, (ItemRef("jira", issue_id),), _jira_actor(event, doc.get("user"), comment),
                    stamp, _jira_hint(event, doc.get("issue_event_type_name"), issue, comment, stamp))


def _jira_hint(event: str, type_name: Any, issue: Any, comment: Mapping[str, Any] | None,
               stamp: float | None) -> IssueHint | None:
    """What the delivery shows of its issue, for the worker (syncd.issue_hints): the
    issue only from issue events that carry ``fields.updated``; the comment only when it
    was just made (``comment_created``, or ``jira:issue_updated`` of type
    ``issue_commented``), not an edited or deleted one."""
    if stamp is None:
        return None
    fields = issue.get("fields") if isinstance(issue, dict) else None
    issue_stamp = _jira_time(fields.get("updated")) if isinstance(fields, dict) else None
    shown = issue if event.startswith(JIRA_ISSUE_EVENT_PREFIX) and issue_stamp is not None else None
    made = event == "comment_created" or (event.startswith(JIRA_ISSUE_EVENT_PREFIX) and type_name == "issue_commented")
    kept = comment if made else None
    return IssueHint(stamp, shown, kept, issue_stamp if shown is not None else None)


def jira_stamp(event: str, issue: Any, comment: Mapping[str, Any] | None) -> float | None:
    """When the change the delivery reports was made, in epoch seconds (Jira stamps
    milliseconds), or None when the payload does not say so soundly.

    * ``jira:issue_created`` / ``jira:issue_updated``: ``issue.fields.updated`` (real
      deliveries are sent 2–282 ms after it: ../shared/realworld/jira/webhook/
      jw-issue-updated-*.json, jw-cloud-issue-*.json); with a comment, the later of that
      and the comment's ``updated`` — a Jira Server ``issue_commented`` delivery carries
      an issue ``updated`` five minutes *older* than its comment
      (jw-server-issue-updated-commented.json);
    * ``comment_created`` / ``comment_updated``: the comment's ``updated`` (Cloud comment
      deliveries carry a partial issue without ``updated``: jw-cloud-comment-created.json);
    * deletions: None (a deleted comment's ``updated`` is its last edit, not the deletion).
    """
    if event.endswith("_deleted"):
        return None
    stamps: list[float] = []
    fields = issue.get("fields") if isinstance(issue, dict) else None
    if event.startswith(JIRA_ISSUE_EVENT_PREFIX):
        found = _jira_time(fields.get("updated") if isinstance(fields, dict) else None)
        if found is None:
            return None
        stamps.append(found)
    if comment is not None:
        found = _jira_time(comment.get("updated"))
        if found is None:
            return None
        stamps.append(found)
    return max(stamps) if stamps else None


def _jira_time(text: Any) -> float | None:
    """``2019-02-16T13:15:16.037-0800`` → epoch seconds; None for anything else."""
    from datetime import datetime
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


_COMMENT_SELF = re.compile(r"/rest/api/[0-9]+/issue/([^/]+)/comment/[^/]+/?\Z")


def _issue_id_from_comment(comment: Mapping[str, Any]) -> str:
    link = comment.get("self")
    found = _COMMENT_SELF.search(link) if isinstance(link, str) else None
    if found is None:
        raise MalformedPayload("missing_issue")
    return _numeric_id(found.group(1), "bad_issue_id")


def _jira_actor(event: str, user: Any, comment: Mapping[str, Any] | None) -> str | None:
    """Who made the change: ``user`` (``accountId`` on Cloud, ``name`` on Server,
    as :class:`~syncd.connectors.jira.JiraConnector` names its own account).
    Jira Cloud comment events carry no top-level ``user`` (recorded:
    ../shared/realworld/jira/webhook/jw-cloud-comment-created.json): the actor
    is ``comment.author`` for a new comment, ``comment.updateAuthor`` for an
    edit. A deletion names no deleter, so no actor (a wrong one would drop a
    real change; a missing one only costs a no-op reconcile)."""
    if isinstance(user, dict):
        return _jira_account(user)
    if comment is None:
        return None
    if event == "comment_created":
        return _jira_account(comment.get("author"))
    if event == "comment_updated":
        return _jira_account(comment.get("updateAuthor"))
    return None


def _jira_account(user: Any) -> str | None:
    if not isinstance(user, dict):
        return None
    for key in ("accountId", "name"):
        value = user.get(key)
        if isinstance(value, str) and value:
            return value
    return None


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
        return Ignored("ping" if topic == "ping" else "unhandled_topic", _short(topic))
    notification_id = doc.get("id")
    if not isinstance(notification_id, str) or not notification_id:
        raise MalformedPayload("missing_notification_id")
    data = doc.get("data")
    item = data.get("item") if isinstance(data, dict) else None
    if not isinstance(item, dict):
        raise MalformedPayload("missing_item")
    if item.get("type") == INTERCOM_TICKET_PART_ITEM:
        return _intercom_ticket_part(notification_id, topic, item)
    ref = _item_ref(kind, item.get("id"), "bad_item_id")
    return Relevant(notification_id, (ref,), _intercom_actor(topic, item))


# Ticket part topics (ticket.note.created, ticket.admin.replied,
# ticket.contact.replied) deliver ``{"type": "ticket_ticket_part", "ticket":
# {...whole ticket...}, "ticket_part": {...the new part...}}`` (recorded:
# ../shared/realworld/intercom/webhook/iw-ticket-note-created.json).
INTERCOM_TICKET_PART_ITEM = "ticket_ticket_part"


def _intercom_ticket_part(notification_id: str, topic: str, item: Mapping[str, Any]) -> Relevant:
    ticket = item.get("ticket")
    if not isinstance(ticket, dict):
        raise MalformedPayload("missing_ticket")
    ref = _item_ref("intercom:ticket", ticket.get("id"), "bad_item_id")
    part = item.get("ticket_part")
    actor = None
    if isinstance(part, dict) and (topic.startswith(_INTERCOM_ADMIN_TOPIC_PREFIXES) or topic in _INTERCOM_ADMIN_TOPICS):
        actor = _admin_author(part)   # the part this event created, not the ticket's older ones
    return Relevant(notification_id, (ref,), actor)


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


# Topics only a teammate (or the API acting as one) can cause. A conversation
# item of these (recordings from 2019/2020) carries just the part(s) the event
# created; a real ticket item carries *all* its parts (recorded:
# ../shared/realworld/intercom/webhook/iw-ticket-state-updated.json: bot parts
# and the admin's state change), so there the actor comes from the newest part(s).
_INTERCOM_ADMIN_TOPIC_PREFIXES = ("conversation.admin.", "ticket.admin.")
_INTERCOM_ADMIN_TOPICS = frozenset({"ticket.note.created", "ticket.state.updated"})


def _intercom_actor(topic: str, item: Mapping[str, Any]) -> str | None:
    """``admin:<id>`` when the parts this admin topic created (a ticket's newest
    part(s): its older ones were delivered before) all have that one admin as
    author (for a tagging: see :func:`_tagger`), else None. Deliberately
    conservative: a wrong actor would drop a real change (until the poller), a
    missing one only costs a no-op reconcile, so a customer topic, a part-less
    item (tags, attributes) or newest parts by several authors never name an actor."""
    if topic == INTERCOM_TAG_TOPIC:
        return _tagger(item)
    if not (topic.startswith(_INTERCOM_ADMIN_TOPIC_PREFIXES) or topic in _INTERCOM_ADMIN_TOPICS):
        return None
    parts = _intercom_parts(item)
    if isinstance(item.get("ticket_parts"), dict):
        parts = _newest(parts)   # a ticket item holds its whole history
    authors = {_admin_author(p) for p in parts}
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


def _newest(parts: list[Any]) -> list[Any]:
    """The parts with the highest ``created_at`` (all of them when none is dated)."""
    dated = [p for p in parts if isinstance(p, dict) and _is_int(p.get("created_at"))]
    if not dated:
        return parts
    newest = max(p["created_at"] for p in dated)
    return [p for p in dated if p["created_at"] == newest]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _admin_author(part: Any) -> str | None:
    author = part.get("author") if isinstance(part, dict) else None
    if not isinstance(author, dict) or author.get("type") != "admin":
        return None
    raw = author.get("id")
    text = str(raw).strip() if isinstance(raw, (int, str)) and not isinstance(raw, bool) else ""
    return f"admin:{text}" if text else None


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, within bounds: nesting at most ``MAX_DEPTH``
    levels, numbers at most ``MAX_NUMBER_CHARS`` characters, no NaN/Infinity.
    Anything else is a :class:`MalformedPayload` (a 400 with a logged reason),
    never a ``RecursionError``/``ValueError`` out of the receiver."""
    try:
        doc = json.loads(body, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedPayload("json_too_deep") from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("invalid_json") from None
    if not isinstance(doc, dict):
        raise MalformedPayload("not_a_json_object")
    if _depth_exceeds(doc, MAX_DEPTH):
        raise MalformedPayload("json_too_deep")
    return doc


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedPayload("number_too_long")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedPayload("number_too_long")
    return float(text)


def _no_constant(text: str) -> Any:
    raise MalformedPayload("invalid_json")   # NaN, Infinity: not JSON


def _depth_exceeds(doc: Any, limit: int) -> bool:
    """Iterative (a recursive walk is what a deep body attacks)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _numeric_id(raw: object, reason: str) -> str:
    """Zendesk ticket ids and Jira issue/version ids are positive integers, sent
    as a JSON number or (through a template placeholder) as a string, in one
    spelling (see :func:`syncd.domain.parse_id`)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise MalformedPayload(reason)
    try:
        return parse_id(str(raw))
    except ValueError:
        raise MalformedPayload(reason) from None


def _item_ref(kind: str, raw: object, reason: str) -> ItemRef:
    return ItemRef(kind, _numeric_id(raw, reason))


def _short(value: Any) -> str:
    """For a log line: a vendor's string, cut to a readable length."""
    text = value if isinstance(value, str) else json.dumps(value)[:200]
    return text[:200]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
