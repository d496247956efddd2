"""Intercom ticket types, ticket states and tickets: the tickets half of
:class:`syncd.sim.intercom_world.IntercomWorld`.

A mixin, not a separate object: tickets share the workspace's id sequence (so
ids stay what they were), clock, contacts, admins, parts, authors and webhook
``emit`` with conversations. It relies on these members of ``IntercomWorld``:
``now``, ``emit``, ``app_id``, ``max_parts``, ``tickets``, ``ticket_types``,
``ticket_states``, ``contacts``, ``admin``, ``contact_by``, ``create_contact``,
``part_json``, ``conversation_json``, ``_num_id``, ``_new_part``, ``_author``,
``_attachments``. Callers hold the simulator's lock.
"""

from __future__ import annotations

import html
from typing import Any

from syncd.sim.intercom_records import (
    JSON,
    Contact,
    Part,
    Ticket,
    TicketState,
    TicketType,
    TicketTypeAttribute,
    WorldError,
    bad,
    not_found,
)


class TicketsPart:
    """Ticket types and states, tickets and their parts (mixed into ``IntercomWorld``)."""

    # -- ticket types and states ------------------------------------------
    def create_ticket_type(self, body: JSON) -> TicketType:
        if not body.get("name"):
            raise bad("name is required", "name")
        category = body.get("category") or "Customer"
        if category not in ("Customer", "Back-office", "Tracker"):
            raise bad("category must be Customer, Back-office or Tracker", "category")
        now = self.now()
        tt = TicketType(self._num_id(1000), body["name"], body.get("description") or "", category,
                        body.get("icon") or "🎟️", now, now)
        self.ticket_types[tt.id] = tt
        # Every ticket type starts with these two attributes (Intercom's docs).
        self.add_ticket_type_attribute(tt, {"name": "_default_title_", "description": "Title",
                                            "data_type": "string", "required_to_create": False}, default=True)
        self.add_ticket_type_attribute(tt, {"name": "_default_description_", "description": "Description",
                                            "data_type": "string", "required_to_create": False}, default=True)
        return tt

    def ticket_type(self, ticket_type_id: Any) -> TicketType:
        found = self.ticket_types.get(str(ticket_type_id)) if ticket_type_id is not None else None
        if found is None:
            raise not_found("Ticket type")
        return found

    def add_ticket_type_attribute(self, tt: TicketType, body: JSON, default: bool = False) -> TicketTypeAttribute:
        name, dtype = body.get("name"), body.get("data_type")
        if not name or dtype not in ("string", "list", "integer", "decimal", "boolean", "datetime", "files"):
            raise bad("name and a supported data_type are required")
        if any(a.name == name for a in tt.attributes):
            raise bad(f"An attribute named {name} already exists", "name")
        attr = TicketTypeAttribute(self._num_id(8000), name, body.get("description") or "", dtype,
                                   len(tt.attributes), bool(body.get("required_to_create")), default, self.now())
        tt.attributes.append(attr)
        tt.updated_at = self.now()
        return attr

    def ticket_type_attribute_json(self, tt: TicketType, a: TicketTypeAttribute) -> JSON:
        return {"type": "ticket_type_attribute", "id": a.id, "workspace_id": self.app_id, "name": a.name,
                "description": a.description, "data_type": a.data_type, "input_options": {},
                "order": a.order, "required_to_create": a.required_to_create,
                "required_to_create_for_contacts": False, "visible_on_create": True,
                "visible_to_contacts": True, "default": a.default, "ticket_type_id": int(tt.id),
                "archived": False, "created_at": a.created_at, "updated_at": a.created_at}

    def ticket_state_json(self, s: TicketState) -> JSON:
        return {"type": "ticket_state", "id": s.id, "category": s.category,
                "internal_label": s.internal_label, "external_label": s.external_label}

    def ticket_type_json(self, tt: TicketType) -> JSON:
        return {"type": "ticket_type", "id": tt.id, "category": tt.category, "name": tt.name,
                "description": tt.description, "icon": tt.icon, "workspace_id": self.app_id,
                # {"type": "list", "data": [...]} as the real service sends it (recorded:
                # ../shared/realworld/intercom/webhook/iw-ticket-created.json, 2026).
                "ticket_type_attributes": {"type": "list", "data": [
                    self.ticket_type_attribute_json(tt, a) for a in tt.attributes]},
                "ticket_states": {"type": "list", "data": [
                    self.ticket_state_json(s) for s in self.ticket_states.values()]},
                "archived": tt.archived, "created_at": tt.created_at, "updated_at": tt.updated_at}

    def ticket_state_detailed_json(self, s: TicketState) -> JSON:
        out = self.ticket_state_json(s)
        out["archived"] = False
        # Every state belongs to every ticket type here (the default workspace set-up).
        out["ticket_types"] = {"type": "list", "data": [self.ticket_type_json(t) for t in self.ticket_types.values()]}
        return out

    def ticket_state(self, state_id: Any) -> TicketState:
        found = self.ticket_states.get(str(state_id)) if state_id is not None else None
        if found is None:
            raise bad(f"Ticket state {state_id} not found", "ticket_state_id")
        return found

    def state_for(self, category: str) -> TicketState:
        return next(s for s in self.ticket_states.values() if s.category == category)

    # -- tickets ----------------------------------------------------------
    def ticket(self, ticket_id: Any) -> Ticket:
        found = self.tickets.get(str(ticket_id)) if ticket_id is not None else None
        if found is None:
            raise not_found("Ticket")
        return found

    def _check_ticket_attributes(self, tt: TicketType, values: Any) -> None:
        if not isinstance(values, dict):
            raise bad("ticket_attributes must be an object", "ticket_attributes")
        names = {a.name for a in tt.attributes}
        for key in values:
            if key not in names:
                raise bad(f"Ticket attribute '{key}' does not exist on ticket type {tt.name}", "ticket_attributes")

    def create_ticket(self, body: JSON) -> Ticket:
        tt = self.ticket_type(body.get("ticket_type_id"))
        refs = body.get("contacts")
        if not isinstance(refs, list) or len(refs) != 1:
            raise bad("exactly one contact is required", "contacts")
        contact = self._ticket_contact(refs[0])
        attrs = body.get("ticket_attributes") or {}
        self._check_ticket_attributes(tt, attrs)
        missing = [a.name for a in tt.attributes if a.required_to_create and a.name not in attrs]
        if missing:
            raise bad(f"Missing required ticket attributes: {', '.join(missing)}", "ticket_attributes")
        now = body.get("created_at") or self.now()
        number = str(sum(1 for _ in self.tickets.values()) + 1)
        ticket = Ticket(self._num_id(300_000_000_000), number, tt.id, [contact.id], dict(attrs),
                        self.state_for("submitted").id, now, now, company_id=body.get("company_id"))
        assignment = body.get("assignment") or {}
        if assignment.get("admin_assignee_id"):
            ticket.admin_assignee_id = self.admin(assignment["admin_assignee_id"]).id
        self.tickets[ticket.id] = ticket
        self._emit_ticket("ticket.created", ticket)
        return ticket

    def _ticket_contact(self, ref: Any) -> Contact:
        if not isinstance(ref, dict):
            raise bad("contacts items must be objects", "contacts")
        if "email" in ref and "id" not in ref and "external_id" not in ref:
            try:
                return self.contact_by(email=ref["email"])
            except WorldError:  # Intercom creates the contact when the email is unknown
                return self.create_contact({"role": "user", "email": ref["email"]})
        return self.contact_by(id=ref.get("id"), external_id=ref.get("external_id"))

    # Ticket part topics deliver {"type": "ticket_ticket_part", "ticket": <the whole
    # ticket>, "ticket_part": <the new part>} (recorded: ../shared/realworld/intercom/
    # webhook/iw-ticket-note-created.json, iw-ticket-admin-replied.json,
    # iw-ticket-contact-replied.json); every other ticket topic delivers the whole
    # ticket with all its parts (iw-ticket-state-updated.json, iw-ticket-created.json).
    TICKET_PART_TOPICS = frozenset({"ticket.note.created", "ticket.admin.replied", "ticket.contact.replied"})

    def _add_ticket_part(self, ticket: Ticket, part: Part, topic: str | None) -> Part:
        ticket.parts.append(part)
        ticket.updated_at = self.now()
        if topic:
            self._emit_ticket(topic, ticket, part)
        return part

    def _emit_ticket(self, topic: str, ticket: Ticket, part: Part | None = None) -> None:
        whole = self.ticket_json(ticket, parts=list(ticket.parts))
        if topic in self.TICKET_PART_TOPICS and part is not None:
            self.emit(topic, {"type": "ticket_ticket_part", "ticket": whole,
                              "ticket_part": self.part_json(part, ticket=True)})
        else:
            self.emit(topic, whole)

    def ticket_reply_and_assign(self, ticket: Ticket, admin_id: Any, body: str) -> Part:
        """Recorded: ticket.admin.replied whose part is an assignment with the reply's
        body (../shared/realworld/intercom/webhook/iw-ticket-admin-replied.json)."""
        admin = self.admin(admin_id)
        if not body:
            raise bad("body is required", "body")
        ticket.admin_assignee_id = admin.id
        part = self._new_part("assignment", f"<p>{html.escape(body)}</p>", self._author("admin", admin),
                              assigned_to={"type": "admin", "id": admin.id})
        return self._add_ticket_part(ticket, part, "ticket.admin.replied")

    def update_ticket(self, ticket: Ticket, body: JSON) -> None:
        tt = self.ticket_type(ticket.ticket_type_id)
        admin = self.admin(body["admin_id"]) if body.get("admin_id") is not None else None
        author = self._author("admin", admin) if admin else {"type": "bot", "id": "0", "name": "Operator",
                                                             "email": "", "from_ai_agent": False,
                                                             "is_ai_answer": False}
        if "ticket_attributes" in body:
            self._check_ticket_attributes(tt, body["ticket_attributes"])
            ticket.attributes.update(body["ticket_attributes"])
        if "is_shared" in body:
            ticket.is_shared = bool(body["is_shared"])
        if "snoozed_until" in body:
            ticket.snoozed_until = body["snoozed_until"]
        ticket.updated_at = self.now()
        if body.get("ticket_attributes"):
            self._emit_ticket("ticket.attribute.updated", ticket)
        target = None
        if body.get("ticket_state_id") is not None:
            target = self.ticket_state(body["ticket_state_id"])
        elif body.get("open") is False:
            target = self.state_for("resolved")
        elif body.get("open") is True and not ticket.open:
            target = self.state_for("in_progress")
        if target is not None and target.id != ticket.state_id:
            self._set_state(ticket, target, author)
        if body.get("assignee_id") is not None:
            self._assign_ticket(ticket, str(body["assignee_id"]), author)

    def _set_state(self, ticket: Ticket, target: TicketState, author: JSON) -> None:
        previous = self.ticket_states[ticket.state_id].category
        ticket.state_id = target.id
        # Resolving a ticket closes it (and unsnoozes it); any other state reopens it.
        ticket.open = target.category != "resolved"
        if not ticket.open:
            ticket.snoozed_until = None
        part = self._new_part("ticket_state_updated_by_admin", None, author,
                              previous_ticket_state=previous, ticket_state=target.category)
        self._add_ticket_part(ticket, part, "ticket.state.updated")

    def _assign_ticket(self, ticket: Ticket, assignee: str, author: JSON) -> None:
        if assignee != "0":
            self.admin(assignee)
        ticket.admin_assignee_id = assignee
        part = self._new_part("assignment", None, author,
                              assigned_to={"type": "admin", "id": assignee} if assignee != "0" else None)
        self._add_ticket_part(ticket, part, "ticket.admin.assigned" if assignee != "0" else None)

    def reply_ticket(self, ticket: Ticket, body: JSON) -> Part:
        kind = body.get("type")
        if kind == "admin":
            admin = self.admin(body.get("admin_id"))
            mtype = body.get("message_type")
            if mtype not in ("comment", "note") or not body.get("body"):
                raise bad("message_type comment|note and body are required", "message_type")
            part = self._new_part(mtype, body["body"], self._author("admin", admin),
                                  attachments=self._attachments(body.get("attachment_urls")))
            topic = "ticket.note.created" if mtype == "note" else "ticket.admin.replied"
            return self._add_ticket_part(ticket, part, topic)
        if kind == "user":
            contact = self.contact_by(id=body.get("intercom_user_id"), email=body.get("email"),
                                      external_id=body.get("user_id"))
            if contact.id not in ticket.contact_ids:
                raise WorldError(403, "forbidden", "User is not a participant of this ticket")
            if body.get("message_type", "comment") != "comment" or not body.get("body"):
                raise bad("a user reply is a comment with a body", "message_type")
            part = self._new_part("comment", body["body"], self._author(contact.role, contact),
                                  attachments=self._attachments(body.get("attachment_urls")))
            return self._add_ticket_part(ticket, part, "ticket.contact.replied")
        raise bad("type must be admin or user", "type")

    def ticket_json(self, t: Ticket, *, parts: list[Part] | None = None) -> JSON:
        tt, state = self.ticket_types[t.ticket_type_id], self.ticket_states[t.state_id]
        shown = t.parts[-self.max_parts:] if parts is None else parts
        return {
            "type": "ticket", "id": t.id, "ticket_id": t.ticket_id, "category": tt.category,
            "ticket_attributes": dict(t.attributes), "ticket_state": self.ticket_state_json(state),
            "ticket_type": self.ticket_type_json(tt),
            "contacts": {"type": "contact.list", "contacts": [
                {"type": "contact", "id": cid, "external_id": self.contacts[cid].external_id}
                for cid in t.contact_ids]},
            "admin_assignee_id": t.admin_assignee_id, "team_assignee_id": t.team_assignee_id,
            "created_at": t.created_at, "updated_at": t.updated_at, "open": t.open,
            "snoozed_until": t.snoozed_until or 0,
            "linked_objects": {"type": "list", "total_count": 0, "has_more": False, "data": []},
            "ticket_parts": {"type": "ticket_part.list", "ticket_parts": [self.part_json(p, ticket=True)
                                                                         for p in shown],
                             "total_count": len(shown)},
            "is_shared": t.is_shared,
        }

    def ticket_record(self, t: Ticket) -> JSON:
        rec: JSON = {"id": t.id, "created_at": t.created_at, "updated_at": t.updated_at,
                     "ticket_type_id": t.ticket_type_id, "state": self.ticket_states[t.state_id].category,
                     "ticket_state_id": t.state_id, "open": t.open, "is_shared": t.is_shared,
                     "contact_ids": t.contact_ids, "admin_assignee_id": t.admin_assignee_id,
                     "team_assignee_id": t.team_assignee_id, "snoozed_until": t.snoozed_until}
        rec.update(t.attributes)
        return rec
