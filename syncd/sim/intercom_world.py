"""The state of a simulated Intercom workspace and the only code that changes it.

HTTP handlers (:mod:`syncd.sim.intercom`) and the "actor" helpers both call these
methods, so a customer reply made by a test fires the same webhook as one made
over the API. Every change moves ``updated_at`` (Intercom's seconds) and may
emit a webhook topic through the ``emit`` callback the simulator gives.

Callers hold the simulator's lock; nothing here locks. The records it changes
are in :mod:`syncd.sim.intercom_records` (``WorldError`` is re-exported here);
ticket types, states and tickets are the :class:`~syncd.sim.intercom_tickets.TicketsPart` mixin.
"""

from __future__ import annotations

import html
import itertools
import mimetypes
import posixpath
import uuid
from typing import Any, Callable

from syncd.sim.intercom_records import (
    CUSTOM_ATTRIBUTE_TYPES,
    JSON,
    TICKET_STATE_CATEGORIES,
    Admin,
    AppliedTag,
    Company,
    Contact,
    Conversation,
    DataAttribute,
    Part,
    Tag,
    Ticket,
    TicketState,
    TicketType,
    WorldError,
    bad,
    not_found,
)
from syncd.sim.intercom_tickets import TicketsPart

Emit = Callable[[str, JSON], None]


class IntercomWorld(TicketsPart):
    """Admins, contacts, companies, tags, data attributes, conversations and tickets."""

    def __init__(self, now: Callable[[], float], emit: Emit, app_id: str, max_parts: int = 500):
        self._now = now
        self.emit = emit
        self.app_id = app_id
        self.max_parts = max_parts
        self._seq = itertools.count(1)
        self.admins: dict[str, Admin] = {}
        self.contacts: dict[str, Contact] = {}
        self.companies: dict[str, Company] = {}
        self.tags: dict[str, Tag] = {}
        self.data_attributes: dict[int, DataAttribute] = {}
        self.conversations: dict[str, Conversation] = {}
        self.ticket_types: dict[str, TicketType] = {}
        self.ticket_states: dict[str, TicketState] = {}
        self.tickets: dict[str, Ticket] = {}

    # -- ids and time -----------------------------------------------------
    def now(self) -> int:
        return int(self._now())

    def _num_id(self, base: int) -> str:
        return str(base + next(self._seq))

    def _hex_id(self) -> str:
        return uuid.uuid4().hex[:24]

    # -- seed -------------------------------------------------------------
    def seed(self) -> None:
        """The minimum world: two admins, one user, the ticket states, a ticket type."""
        self.add_admin("Ada Agent", "ada@example.com")
        self.add_admin("Bob Backline", "bob@example.com")
        self.create_contact({"role": "user", "email": "carol@example.com", "name": "Carol Customer",
                             "external_id": "cust-1"})
        for cat, label in zip(TICKET_STATE_CATEGORIES,
                              ("Submitted", "In progress", "Waiting on customer", "Resolved")):
            sid = self._num_id(7000)
            self.ticket_states[sid] = TicketState(sid, cat, label, label)
        for name, dtype in (("name", "string"), ("email", "string")):
            self._add_data_attribute("contact", name, dtype, "", custom=False)
        self._add_data_attribute("company", "name", "string", "", custom=False)
        self.create_ticket_type({"name": "Bug", "description": "Bugs reported by customers",
                                 "category": "Customer", "icon": "🐞"})

    # -- admins -----------------------------------------------------------
    def add_admin(self, name: str, email: str) -> Admin:
        admin = Admin(self._num_id(100), name, email)
        self.admins[admin.id] = admin
        return admin

    def admin(self, admin_id: Any) -> Admin:
        found = self.admins.get(str(admin_id)) if admin_id is not None else None
        if found is None:
            raise not_found("Admin")
        return found

    def admin_json(self, a: Admin) -> JSON:
        return {"type": "admin", "id": a.id, "name": a.name, "email": a.email, "job_title": "Support",
                "away_mode_enabled": False, "away_mode_reassign": False, "away_status_reason_id": None,
                "has_inbox_seat": True, "team_ids": [], "avatar": None}

    def me_json(self, a: Admin) -> JSON:
        body = self.admin_json(a)
        body.update({"avatar": {"type": "avatar", "image_url": None}, "email_verified": True,
                     "app": {"type": "app", "id_code": self.app_id, "name": "syncd simulator",
                             "created_at": 1700000000, "secure": False, "identity_verification": False,
                             "timezone": "UTC", "region": "US"}})
        body.pop("away_status_reason_id")
        return body

    # -- contacts and companies -------------------------------------------
    def create_contact(self, body: JSON) -> Contact:
        role = body.get("role") or "user"
        if role not in ("user", "lead"):
            raise bad("role must be user or lead", "role")
        email = body.get("email")
        if not (email or body.get("external_id") or role == "lead"):
            raise bad("email or external_id is required for a user")
        for c in self.contacts.values():
            if role == "user" and c.role == "user" and (
                    (email and c.email == email) or (body.get("external_id") and c.external_id == body["external_id"])):
                raise WorldError(409, "conflict", f"A contact matching those details already exists with id={c.id}")
        now = self.now()
        contact = Contact(self._hex_id(), role, email, body.get("name"), body.get("external_id"), now, now)
        self.contacts[contact.id] = contact
        return contact

    def contact(self, contact_id: Any) -> Contact:
        found = self.contacts.get(str(contact_id)) if contact_id is not None else None
        if found is None:
            raise not_found("User")
        return found

    def contact_by(self, *, id: Any = None, email: str | None = None, external_id: str | None = None) -> Contact:
        if id is not None:
            return self.contact(id)
        for c in self.contacts.values():
            if (email and c.email == email) or (external_id and c.external_id == external_id):
                return c
        raise not_found("User")

    def contact_json(self, c: Contact) -> JSON:
        return {
            "type": "contact", "id": c.id, "workspace_id": self.app_id, "external_id": c.external_id,
            "role": c.role, "email": c.email or "", "email_domain": (c.email or "@").split("@")[1],
            "phone": None, "name": c.name, "owner_id": None, "has_hard_bounced": False,
            "marked_email_as_spam": False, "unsubscribed_from_emails": False,
            "created_at": c.created_at, "updated_at": c.updated_at, "signed_up_at": None,
            "last_seen_at": None, "last_replied_at": None, "last_contacted_at": None,
            "last_email_opened_at": None, "last_email_clicked_at": None, "language_override": None,
            "browser": None, "browser_version": None, "browser_language": None, "os": None,
            "custom_attributes": {}, "avatar": None,
            "tags": {"type": "list", "data": [], "url": f"/contacts/{c.id}/tags", "total_count": 0, "has_more": False},
            "notes": {"type": "list", "data": [], "url": f"/contacts/{c.id}/notes", "total_count": 0, "has_more": False},
            "companies": {"type": "list", "url": f"/contacts/{c.id}/companies", "total_count": len(c.company_ids),
                          "has_more": False,
                          "data": [{"type": "company", "id": i, "url": f"/companies/{i}"} for i in c.company_ids]},
            "location": {"type": "location", "country": None, "region": None, "city": None},
            "social_profiles": {"type": "list", "data": []},
        }

    def upsert_company(self, body: JSON) -> Company:
        company_id = body.get("company_id")
        if not company_id:
            raise bad("company_id is required", "company_id")
        now = self.now()
        for co in self.companies.values():
            if co.company_id == company_id:
                co.name = body.get("name", co.name)
                co.plan = body.get("plan", co.plan)
                co.updated_at = now
                return co
        co = Company(self._hex_id(), str(company_id), body.get("name"), now, now, body.get("plan"))
        self.companies[co.id] = co
        return co

    def company(self, company_id: Any) -> Company:
        found = self.companies.get(str(company_id)) if company_id is not None else None
        if found is None:
            raise not_found("Company")
        return found

    def attach_contact_to_company(self, contact_id: str, company_id: Any) -> Company:
        contact, co = self.contact(contact_id), self.company(company_id)
        if co.id not in contact.company_ids:
            contact.company_ids.append(co.id)
            contact.updated_at = self.now()
        return co

    def company_contacts(self, company_id: str) -> list[Contact]:
        co = self.company(company_id)
        return [c for c in self.contacts.values() if co.id in c.company_ids]

    def company_json(self, co: Company) -> JSON:
        users = sum(1 for c in self.contacts.values() if co.id in c.company_ids)
        return {"type": "company", "id": co.id, "name": co.name or "", "app_id": self.app_id,
                "plan": {"type": "plan", "id": "1", "name": co.plan} if co.plan else {},
                "company_id": co.company_id, "remote_created_at": co.created_at, "created_at": co.created_at,
                "updated_at": co.updated_at, "last_request_at": co.updated_at, "size": 0, "website": "",
                "industry": "", "monthly_spend": 0, "session_count": 0, "user_count": users,
                "custom_attributes": {}, "tags": {"type": "tag.list", "tags": []},
                "segments": {"type": "segment.list", "segments": []}}

    # -- tags -------------------------------------------------------------
    def upsert_tag(self, body: JSON) -> Tag:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad("name is required", "name")
        if body.get("id") is not None:
            tag = self.tag(body["id"])
            tag.name = name
            return tag
        for t in self.tags.values():
            if t.name.lower() == name.lower():   # names are case insensitive
                return t
        tag = Tag(self._num_id(5000), name)
        self.tags[tag.id] = tag
        return tag

    def tag(self, tag_id: Any) -> Tag:
        found = self.tags.get(str(tag_id)) if tag_id is not None else None
        if found is None:
            raise not_found("Tag")
        return found

    @staticmethod
    def tag_json(t: Tag) -> JSON:
        return {"type": "tag", "id": t.id, "name": t.name}

    # -- data attributes --------------------------------------------------
    def _add_data_attribute(self, model: str, name: str, dtype: str, description: str,
                            custom: bool, admin_id: str | None = None) -> DataAttribute:
        attr = DataAttribute(int(self._num_id(9000)), model, name, dtype, description, custom, self.now(), admin_id)
        self.data_attributes[attr.id] = attr
        return attr

    def create_data_attribute(self, body: JSON, *, conversation_model: bool = False) -> DataAttribute:
        """``conversation_model``: only the Unstable API version creates conversation
        attributes; on 2.14 an admin defines them in Intercom's settings
        (:meth:`define_conversation_attribute`)."""
        name, model, dtype = body.get("name"), body.get("model"), body.get("data_type")
        models = ("contact", "company", "conversation") if conversation_model else ("contact", "company")
        if model not in models:
            raise bad("The Data Attribute model field must be either contact or company", "model")
        if not name:
            raise bad("name is required", "name")
        if dtype not in CUSTOM_ATTRIBUTE_TYPES:
            raise bad(f"data_type {dtype!r} is not supported", "data_type")
        if any(a.model == model and a.name == name for a in self.data_attributes.values()):
            raise bad(f"A {model} attribute with that name already exists", "name")
        return self._add_data_attribute(model, name, dtype, body.get("description") or "", custom=True)

    def define_conversation_attribute(self, name: str, data_type: str = "string",
                                      description: str = "") -> DataAttribute:
        """What an admin does in Settings > Data > Conversation data."""
        return self.create_data_attribute({"name": name, "model": "conversation", "data_type": data_type,
                                           "description": description}, conversation_model=True)

    def data_attribute_json(self, a: DataAttribute) -> JSON:
        full = f"custom_attributes.{a.name}" if a.custom else a.name
        return {"type": "data_attribute", "id": a.id, "model": a.model, "name": a.name, "full_name": full,
                "label": a.name, "description": a.description, "data_type": a.data_type,
                "api_writable": True, "messenger_writable": False, "ui_writable": True, "custom": a.custom,
                "archived": False, "created_at": a.created_at, "updated_at": a.created_at,
                "admin_id": a.admin_id or ""}

    def _check_custom_attributes(self, model: str, values: Any) -> None:
        if not isinstance(values, dict):
            raise bad("custom_attributes must be an object", "custom_attributes")
        known = {a.name: a for a in self.data_attributes.values() if a.model == model and a.custom}
        for key, value in values.items():
            attr = known.get(key)
            if attr is None:
                raise bad(f"Custom attribute '{key}' does not exist", "custom_attributes")
            kinds = CUSTOM_ATTRIBUTE_TYPES[attr.data_type]
            if value is not None and (not isinstance(value, kinds) or
                                      (bool not in kinds and isinstance(value, bool))):
                raise bad(f"Custom attribute '{key}' must be of type {attr.data_type}", "custom_attributes")

    # -- parts ------------------------------------------------------------
    def _author(self, kind: str, who: Admin | Contact) -> JSON:
        return {"type": kind, "id": who.id, "name": who.name, "email": who.email or "",
                "from_ai_agent": False, "is_ai_answer": False}

    def _new_part(self, part_type: str, body: str | None, author: JSON, **extra: Any) -> Part:
        return Part(self._num_id(30_000_000_000), part_type, body, author, self.now(), **extra)

    @staticmethod
    def _attachments(urls: Any) -> list[JSON]:
        if urls is None:
            return []
        if not isinstance(urls, list) or len(urls) > 10:
            raise bad("attachment_urls must be a list of at most 10 URLs", "attachment_urls")
        out = []
        for url in urls:
            name = posixpath.basename(str(url).split("?")[0]) or "attachment"
            out.append({"type": "upload", "name": name, "url": str(url),
                        "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                        "filesize": 0, "width": 0, "height": 0})
        return out

    @staticmethod
    def part_json(p: Part, *, ticket: bool = False) -> JSON:
        out: JSON = {"type": "ticket_part" if ticket else "conversation_part", "id": p.id,
                     "part_type": p.part_type, "body": p.body, "created_at": p.created_at,
                     "updated_at": p.created_at, "assigned_to": p.assigned_to,
                     "author": ({k: p.author[k] for k in ("type", "id", "name", "email")} if ticket else p.author),
                     "attachments": p.attachments, "external_id": None, "redacted": False}
        if ticket:
            if p.ticket_state is not None:
                out["previous_ticket_state"] = p.previous_ticket_state
                out["ticket_state"] = p.ticket_state
            out["app_package_code"] = ""
            out["updated_attribute_data"] = None
        else:
            out.update({"notified_at": p.created_at, "tags": [], "metadata": None,
                        "email_message_metadata": None, "event_details": None, "app_package_code": None})
        return out

    # -- conversations ----------------------------------------------------
    def conversation(self, conv_id: Any) -> Conversation:
        found = self.conversations.get(str(conv_id)) if conv_id is not None else None
        if found is None:
            raise not_found("Conversation")
        return found

    def create_conversation(self, contact: Contact, body: str, subject: str | None = None,
                            attachment_urls: Any = None, created_at: int | None = None) -> Conversation:
        if not body:
            raise bad("body is required", "body")
        now = created_at or self.now()
        source = {"type": "conversation", "id": self._num_id(40_000_000), "delivered_as": "customer_initiated",
                  "subject": subject or "", "body": f"<p>{body}</p>", "author": self._author(contact.role, contact),
                  "attachments": self._attachments(attachment_urls), "url": None, "redacted": False}
        conv = Conversation(self._num_id(200_000_000_000), now, now, source, [contact.id],
                            waiting_since=now, last_contact_reply_at=now)
        self.conversations[conv.id] = conv
        self._emit_conversation("conversation.user.created", conv, [])
        return conv

    def _touch(self, conv: Conversation) -> None:
        conv.updated_at = self.now()

    def _add_conv_part(self, conv: Conversation, part: Part, topic: str | None) -> Part:
        conv.parts.append(part)
        self._touch(conv)
        if topic:
            self._emit_conversation(topic, conv, [part])
        return part

    def reply_as_admin(self, conv: Conversation, admin_id: Any, message_type: str, body: str | None,
                       attachment_urls: Any = None) -> Part:
        admin = self.admin(admin_id)
        if message_type not in ("comment", "note", "quick_reply"):
            raise bad("message_type must be comment, note or quick_reply", "message_type")
        if message_type in ("comment", "note") and not body:
            raise bad("body is required for comment and note", "body")
        part = self._new_part(message_type, body, self._author("admin", admin),
                              attachments=self._attachments(attachment_urls))
        if message_type == "comment":
            conv.waiting_since = None
            conv.last_admin_reply_at = part.created_at
        topic = "conversation.admin.noted" if message_type == "note" else "conversation.admin.replied"
        return self._add_conv_part(conv, part, topic)

    def reply_as_contact(self, conv: Conversation, contact: Contact, body: str | None,
                         attachment_urls: Any = None) -> Part:
        if not body:
            raise bad("body is required", "body")
        if contact.id not in conv.contact_ids:
            raise WorldError(403, "forbidden", "User is not a participant of this conversation")
        part = self._new_part("comment", body, self._author(contact.role, contact),
                              attachments=self._attachments(attachment_urls))
        # A customer writing into a closed or snoozed conversation reopens it.
        if conv.state != "open":
            conv.state, conv.snoozed_until = "open", None
        conv.waiting_since = conv.waiting_since or part.created_at
        conv.last_contact_reply_at = part.created_at
        return self._add_conv_part(conv, part, "conversation.user.replied")

    # A reply written together with an action arrives as one part of the action's
    # type carrying the body, under conversation.admin.replied: recorded as part_type
    # "open" (../shared/realworld/intercom/webhook/iw-conv-admin-replied.json) and
    # "assignment" (iw-conv-admin-replied-zulip.json).
    REPLY_ACTIONS = ("close", "open", "snoozed", "assignment")

    def reply_and_act(self, conv: Conversation, admin_id: Any, body: str, action: str) -> Part:
        admin = self.admin(admin_id)
        if action not in self.REPLY_ACTIONS or not body:
            raise bad(f"action must be one of {self.REPLY_ACTIONS}, with a body", "message_type")
        extra: JSON = {}
        if action == "close":
            conv.state, conv.snoozed_until = "closed", None
        elif action == "open":
            conv.state, conv.snoozed_until = "open", None
        elif action == "snoozed":
            conv.state, conv.snoozed_until = "snoozed", self.now() + 3600
        else:
            conv.admin_assignee_id = int(admin.id)
            extra["assigned_to"] = {"type": "admin", "id": admin.id}
        part = self._new_part(action, f"<p>{html.escape(body)}</p>", self._author("admin", admin), **extra)
        conv.waiting_since = None
        conv.last_admin_reply_at = part.created_at
        return self._add_conv_part(conv, part, "conversation.admin.replied")

    def manage(self, conv: Conversation, body: JSON) -> Part:
        kind = body.get("message_type")
        admin = self.admin(body.get("admin_id"))
        author = self._author("admin", admin)
        if kind == "close":
            conv.state, conv.snoozed_until = "closed", None
            return self._add_conv_part(conv, self._new_part("close", body.get("body"), author),
                                       "conversation.admin.closed")
        if kind == "open":
            conv.state, conv.snoozed_until = "open", None
            return self._add_conv_part(conv, self._new_part("open", None, author), "conversation.admin.opened")
        if kind == "snoozed":
            until = body.get("snoozed_until")
            if not isinstance(until, int) or until <= self.now():
                raise bad("snoozed_until must be a unix time in the future", "snoozed_until")
            conv.state, conv.snoozed_until = "snoozed", until
            return self._add_conv_part(conv, self._new_part("snoozed", None, author),
                                       "conversation.admin.snoozed")
        if kind == "assignment":
            return self._assign(conv, body, author)
        raise bad("message_type must be close, open, snoozed or assignment", "message_type")

    def _assign(self, conv: Conversation, body: JSON, author: JSON) -> Part:
        kind, assignee = body.get("type") or "admin", str(body.get("assignee_id", ""))
        if kind not in ("admin", "team") or not assignee:
            raise bad("type admin|team and assignee_id are required", "assignee_id")
        if kind == "admin" and assignee != "0":
            self.admin(assignee)
        value = None if assignee == "0" else int(assignee)
        if kind == "admin":
            conv.admin_assignee_id = value
        else:
            conv.team_assignee_id = value
        part = self._new_part("assignment", body.get("body"), author,
                              assigned_to={"type": kind, "id": assignee} if value is not None else None)
        return self._add_conv_part(conv, part, "conversation.admin.assigned")

    def update_conversation(self, conv: Conversation, body: JSON) -> None:
        if "custom_attributes" in body:
            self._check_custom_attributes("conversation", body["custom_attributes"])
            conv.custom_attributes.update(body["custom_attributes"])
        if "title" in body:
            conv.title = body["title"]
        if "read" in body:
            conv.read = bool(body["read"])
        self._touch(conv)

    def tag_conversation(self, conv: Conversation, tag_id: Any, admin_id: Any) -> Tag:
        tag, admin = self.tag(tag_id), self.admin(admin_id)
        if all(t.tag_id != tag.id for t in conv.tags):
            conv.tags.append(AppliedTag(tag.id, self.now(), admin.id))
            self._touch(conv)
            self._emit_conversation("conversation_part.tag.created", conv, [])
        return tag

    def untag_conversation(self, conv: Conversation, tag_id: Any, admin_id: Any) -> Tag:
        tag = self.tag(tag_id)
        self.admin(admin_id)
        if all(t.tag_id != tag.id for t in conv.tags):
            raise not_found("Tag")
        conv.tags = [t for t in conv.tags if t.tag_id != tag.id]
        self._touch(conv)
        return tag

    def conversation_json(self, conv: Conversation, *, parts: list[Part] | None = None,
                          with_parts: bool = True) -> JSON:
        """``parts`` None: the newest ``max_parts`` parts, as ``GET`` answers."""
        out: JSON = {
            "type": "conversation", "id": conv.id, "title": conv.title, "created_at": conv.created_at,
            "updated_at": conv.updated_at, "waiting_since": conv.waiting_since,
            "snoozed_until": conv.snoozed_until, "open": conv.state != "closed", "state": conv.state,
            "read": conv.read, "priority": "not_priority", "admin_assignee_id": conv.admin_assignee_id,
            "team_assignee_id": conv.team_assignee_id,
            "tags": {"type": "tag.list", "tags": [self._applied_tag_json(t) for t in conv.tags]},
            "conversation_rating": None, "source": conv.source,
            "contacts": {"type": "contact.list", "contacts": [
                {"type": "contact", "id": cid, "external_id": self.contacts[cid].external_id}
                for cid in conv.contact_ids]},
            "teammates": {"type": "admin.list", "teammates": []},
            "custom_attributes": dict(conv.custom_attributes),
            "first_contact_reply": {"created_at": conv.created_at, "type": "conversation", "url": None},
            "sla_applied": None, "statistics": self._statistics(conv),
            "linked_objects": {"type": "list", "total_count": 0, "has_more": False, "data": []},
            "ai_agent_participated": False, "ai_agent": None,
        }
        if with_parts:
            shown = conv.parts[-self.max_parts:] if parts is None else parts
            out["conversation_parts"] = {"type": "conversation_part.list",
                                         "conversation_parts": [self.part_json(p) for p in shown],
                                         "total_count": len(shown)}
        return out

    def _applied_tag_json(self, t: AppliedTag) -> JSON:
        return {"type": "tag", "id": t.tag_id, "name": self.tags[t.tag_id].name, "applied_at": t.applied_at,
                "applied_by": {"type": "admin", "id": t.applied_by}}

    @staticmethod
    def _statistics(conv: Conversation) -> JSON:
        out: JSON = {"type": "conversation_statistics", "count_conversation_parts": len(conv.parts) + 1,
                     "count_reopens": sum(1 for p in conv.parts if p.part_type == "open")}
        # Intercom leaves a statistic out until it has happened.
        for key, value in (("last_contact_reply_at", conv.last_contact_reply_at),
                           ("last_admin_reply_at", conv.last_admin_reply_at)):
            if value is not None:
                out[key] = value
        return out

    def conversation_record(self, conv: Conversation) -> JSON:
        """The flat view the search language filters on."""
        rec: JSON = {"id": conv.id, "created_at": conv.created_at, "updated_at": conv.updated_at,
                     "state": conv.state, "open": conv.state != "closed", "read": conv.read,
                     "contact_ids": conv.contact_ids, "tag_ids": [t.tag_id for t in conv.tags],
                     "admin_assignee_id": conv.admin_assignee_id, "team_assignee_id": conv.team_assignee_id,
                     "waiting_since": conv.waiting_since, "snoozed_until": conv.snoozed_until,
                     "title": conv.title, "source.body": conv.source["body"],
                     "source.author.id": conv.source["author"]["id"],
                     "source.author.email": conv.source["author"]["email"]}
        for key, value in conv.custom_attributes.items():
            rec[f"custom_attributes.{key}"] = value
        return rec

    def _emit_conversation(self, topic: str, conv: Conversation, new_parts: list[Part]) -> None:
        # Intercom's webhook item carries only the parts the event created.
        self.emit(topic, self.conversation_json(conv, parts=new_parts))
