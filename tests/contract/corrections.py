"""The corrections table: where the vendors' OpenAPI documents disagree with
the real services, and how the in-memory copy of each document is corrected.

Each :class:`Correction` is one difference (vendor, target, what is relaxed,
why), applied by :mod:`contract.loader` when it loads a document.
Operations the documents do not describe at all are listed in
:data:`UNDOCUMENTED`; :data:`ERROR_SHAPES` gives each vendor's error body.
Every helper that edits a document fails loudly (:class:`ContractSetupError`)
when its target is gone, so a stale entry is noticed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class ContractSetupError(RuntimeError):
    """A document cannot be loaded or a correction no longer fits it."""


@dataclass(frozen=True)
class Correction:
    """One known difference between a document and the real service.

    Exactly one of ``patch`` (edits the in-memory document; must raise when its
    target is gone, so a stale entry is noticed), ``formats`` (replaces a format
    checker) or ``path_alias`` (served prefix → documented prefix) is set.
    """

    vendor: str
    target: str
    relaxed: str
    why: str
    patch: Callable[[dict], None] | None = None
    formats: tuple[tuple[str, Callable[[Any], bool]], ...] = ()
    path_alias: tuple[str, str] | None = None


@dataclass(frozen=True)
class Undocumented:
    """An operation the vendor serves but its document does not list."""

    vendor: str
    method: str
    path: str      # regular expression, matched in full against the served path
    reason: str
    header: tuple[str, str] | None = None   # (lower-case name, value) the request must carry


# ---------------------------------------------------------------------------
# Helpers that edit a document copy (each fails loudly when its target is gone)
# ---------------------------------------------------------------------------

def _at(doc: dict, *keys: str) -> Any:
    node: Any = doc
    for key in keys:
        try:
            node = node[key]
        except (KeyError, TypeError, IndexError):
            raise ContractSetupError(f"correction target missing: {'/'.join(keys)}") from None
    return node


def _resolve(doc: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = _at(doc, *node["$ref"].lstrip("#/").split("/"))
    return node


def _schema(doc: dict, name: str) -> dict:
    return _at(doc, "components", "schemas", name)


def _make_nullable(node: dict) -> None:
    node["nullable"] = True
    if "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]


def _nullable(schema: str, *props: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        for prop in props:
            _make_nullable(_at(_schema(doc, schema), "properties", prop))
    return patch


def _nullable_in_any(schemas: tuple[str, ...], *props: str) -> Callable[[dict], None]:
    """Mark ``props`` nullable in every one of ``schemas`` that has them (each
    prop must exist in at least one — a vanished prop fails loudly)."""
    def patch(doc: dict) -> None:
        for prop in props:
            hits = [_schema(doc, name)["properties"][prop] for name in schemas
                    if prop in _schema(doc, name).get("properties", {})]
            if not hits:
                raise ContractSetupError(f"{prop} is in none of {schemas}")
            for node in hits:
                _make_nullable(node)
    return patch


def _request_schema(path: str, method: str, schema: dict) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        _at(doc, "paths", path, method, "requestBody", "content", "application/json")["schema"] = schema
    return patch


def _optional_path_parameter(path: str, name: str) -> Callable[[dict], None]:
    """Replace the path-level parameter ``name`` (often a shared $ref) by an
    inline copy that is not required — only on this path."""
    def patch(doc: dict) -> None:
        params = _at(doc, "paths", path, "parameters")
        for i, param in enumerate(params):
            resolved = _resolve(doc, param)
            if resolved.get("name") == name:
                params[i] = {**copy.deepcopy(resolved), "required": False}
                return
        raise ContractSetupError(f"{path} has no parameter {name}")
    return patch


def _drop_format(*keys: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        node = _at(doc, *keys)
        if "format" not in node:
            raise ContractSetupError(f"{'/'.join(keys)} has no format any more")
        del node["format"]
    return patch


def _add_enum_value(schema: str, prop: str, value: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        enum = _at(_schema(doc, schema), "properties", prop, "enum")
        if value in enum:
            raise ContractSetupError(f"{schema}.{prop} lists {value!r} now: drop the correction")
        enum.append(value)
    return patch


def _enum_ignoring_case(path: str, method: str, param: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        for node in _at(doc, "paths", path, method, "parameters"):
            if node.get("name") == param:
                enum = _at(node, "schema", "enum")
                node["schema"]["enum"] = [*enum, *(v.capitalize() for v in enum if v.capitalize() not in enum)]
                return
        raise ContractSetupError(f"{method.upper()} {path} has no parameter {param}")
    return patch


def _request_body(path: str, method: str, media: str, schema: dict) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        _at(doc, "paths", path, method, "requestBody", "content", media)["schema"] = schema
    return patch


def _plain_text_error(path: str, method: str, status: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        response = _at(doc, "paths", path, method, "responses", status)
        if response.get("content"):
            raise ContractSetupError(f"{method.upper()} {path} {status} documents a body now")
        response["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return patch


def _partial_trigger_update(doc: dict) -> None:
    """UpdateTrigger takes any subset of a trigger; read-only members are ignored."""
    trigger = copy.deepcopy(_schema(doc, "TriggerObject"))
    trigger.pop("required", None)
    for prop in trigger.get("properties", {}).values():
        prop.pop("readOnly", None)
    _request_schema("/api/v2/triggers/{trigger_id}", "put",
                    {"type": "object", "properties": {"trigger": trigger}, "required": ["trigger"]})(doc)


def _ticket_custom_field_values(doc: dict) -> None:
    value_item = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "value": {"nullable": True}}}
    for name in ("TicketCreateInput", "TicketUpdateInput"):
        items = _at(_schema(doc, name), "properties", "custom_fields", "items")
        if items.get("$ref") != "#/components/schemas/CustomFieldObject":
            raise ContractSetupError(f"{name}.custom_fields no longer references CustomFieldObject")
        _schema(doc, name)["properties"]["custom_fields"]["items"] = value_item


def _add_property(schema: str, prop: str, definition: dict) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        props = _at(_schema(doc, schema), "properties")
        if prop in props:
            raise ContractSetupError(f"{schema}.{prop} is documented now: drop the correction")
        props[prop] = definition
    return patch


def _any_json(*keys: str) -> Callable[[dict], None]:
    """Let the node at ``keys`` hold any JSON value (null included)."""
    def patch(doc: dict) -> None:
        node = _at(doc, *keys)
        description = node.get("description")
        node.clear()
        node.update({"nullable": True} | ({"description": description} if description else {}))
    return patch


def _string_or_integer(schemas: str | tuple[str, ...], *props: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        for schema, prop in [(n, p) for n in ((schemas,) if isinstance(schemas, str) else schemas) for p in props]:
            node = _at(_schema(doc, schema), "properties", prop)
            if node.get("type") != "string":
                raise ContractSetupError(f"{schema}.{prop} is not typed string any more")
            rest = {k: v for k, v in node.items() if k not in ("type", "format")}
            node.clear()
            node.update(rest | {"anyOf": [{"type": "string"}, {"type": "integer"}]})
    return patch


def _integer_or_string(schema: str, prop: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        node = _at(_schema(doc, schema), "properties", prop)
        if node.get("type") != "integer":
            raise ContractSetupError(f"{schema}.{prop} is not typed integer any more")
        rest = {k: v for k, v in node.items() if k != "type"}
        node.clear()
        node.update(rest | {"anyOf": [{"type": "integer"}, {"type": "string"}]})
    return patch


def _object_or_array(path: str, method: str, status: str) -> Callable[[dict], None]:
    def patch(doc: dict) -> None:
        media = _at(doc, "paths", path, method, "responses", status, "content", "application/json")
        one = media["schema"]
        media["schema"] = {"anyOf": [one, {"type": "array", "items": one}]}
    return patch


def _ref_siblings_nullable(doc: dict) -> None:
    """``{$ref: X, nullable: true}`` → ``X`` or null (OpenAPI 3.0 ignores a $ref's siblings)."""
    found = 0

    def walk(node: Any) -> None:
        nonlocal found
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict) and "$ref" in value and value.get("nullable") is True:
                    extra = {k: v for k, v in value.items() if k not in ("$ref", "nullable")}
                    node[key] = extra | {"anyOf": [{"$ref": value["$ref"]}, {"enum": [None]}]}
                    found += 1
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    if not found:
        raise ContractSetupError("no $ref+nullable siblings left in the Intercom document")


_JIRA_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:?\d\d|Z)")


def _jira_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return True   # the type check reports non-strings
    if not _JIRA_DATETIME.fullmatch(value):
        return False
    try:
        datetime.strptime(re.sub(r"([+-]\d\d):(\d\d)$", r"\1\2", value.replace("Z", "+0000")),
                          "%Y-%m-%dT%H:%M:%S.%f%z" if "." in value else "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# THE table of corrections: every place we validate less than the document says.
# ---------------------------------------------------------------------------

CORRECTIONS: tuple[Correction, ...] = (
    # -- Jira ---------------------------------------------------------------
    Correction(
        "jira", "/rest/api/2/* (every v2 operation)",
        "v2 requests are validated against the v3 operation of the same path",
        "the jira library talks v2 by default (serverInfo at start, comments as plain "
        "text); the v3 document is the only one we have and the two differ only in "
        "comment/description bodies, which the document leaves untyped anyway",
        path_alias=("/rest/api/2/", "/rest/api/3/"),
    ),
    Correction(
        "jira", "format date-time (all schemas)",
        "date-times may carry the offset without a colon (+0000)",
        "Jira sends 2021-01-17T12:34:00.000+0000 everywhere, the document's own "
        "examples included; strict RFC 3339 rejects it",
        formats=(("date-time", _jira_datetime),),
    ),
    Correction(
        "jira", "getRemoteIssueLinks 200",
        "an array of RemoteIssueLink is accepted besides one object",
        "documented as one object, but Jira (and the document's example) answers an "
        "array when no globalId is given",
        patch=_object_or_array("/rest/api/3/issue/{issueIdOrKey}/remotelink", "get", "200"),
    ),
    Correction(
        "jira", "schema ServerInformation",
        "property defaultLocale {locale: string} allowed",
        "additionalProperties is false, yet the document's example and real Jira "
        "include defaultLocale",
        patch=_add_property("ServerInformation", "defaultLocale", {
            "type": "object", "properties": {"locale": {"type": "string"}}}),
    ),
    Correction(
        "jira", "schema ChangeDetails",
        "from, fromString, to, toString may be null",
        "not marked nullable, but changelog items of a field set from/to empty carry null",
        patch=_nullable("ChangeDetails", "from", "fromString", "to", "toString"),
    ),
    Correction(
        "jira", "/rest/api/latest/* (jira library's assign_issue and a few others)",
        "latest requests are validated against the v3 operation of the same path",
        "'latest' is Jira's alias of the newest REST version; the jira library uses it "
        "for some calls (PUT .../assignee)",
        path_alias=("/rest/api/latest/", "/rest/api/3/"),
    ),
    Correction(
        "jira", "schema SearchAndReconcileRequestBean",
        "expand and properties may be null",
        "the jira library always sends them, as null when unset; Jira's JSON binding "
        "reads null as absent",
        patch=_nullable("SearchAndReconcileRequestBean", "expand", "properties"),
    ),
    Correction(
        "jira", "deleteIssue parameter deleteSubtasks",
        "'True'/'False' accepted besides 'true'/'false'",
        "the jira library sends str(bool) ('False'); Jira parses booleans ignoring case",
        patch=_enum_ignoring_case("/rest/api/3/issue/{issueIdOrKey}", "delete", "deleteSubtasks"),
    ),
    Correction(
        "jira", "addAttachment request body (multipart/form-data)",
        "the multipart body is an object of parts, not checked further",
        "the document types the multipart body as an array of MultipartFile, which no "
        "multipart form can be; the simulator checks the 'file' part itself",
        patch=_request_body("/rest/api/3/issue/{issueIdOrKey}/attachments", "post",
                            "multipart/form-data", {"type": "object"}),
    ),
    Correction(
        "jira", "addAttachment 403",
        "a text/plain body is accepted",
        "without X-Atlassian-Token: no-check Jira refuses the upload with a plain-text "
        "'XSRF check failed', not a JSON ErrorCollection",
        patch=_plain_text_error("/rest/api/3/issue/{issueIdOrKey}/attachments", "post", "403"),
    ),
    # -- Zendesk ------------------------------------------------------------
    Correction(
        "zendesk", "schema TicketObject",
        "assignee_id, group_id, organization_id, external_id, problem_id, "
        "forum_topic_id, satisfaction_rating, priority, type, recipient, "
        "ticket_form_id, via_followup_source_id, custom_status_id, raw_subject, subject "
        "may be null",
        "the document marks almost nothing nullable; real tickets carry null in all of "
        "these when unset (priority and type included)",
        patch=_nullable("TicketObject", "assignee_id", "group_id", "organization_id",
                        "external_id", "problem_id", "forum_topic_id", "satisfaction_rating",
                        "priority", "type", "recipient", "ticket_form_id",
                        "via_followup_source_id", "custom_status_id", "raw_subject", "subject"),
    ),
    Correction(
        "zendesk", "schema TicketObject custom_fields[].value",
        "any JSON value (null, boolean, number, string, array)",
        "typed string, but the value follows the field's type: checkbox → boolean, "
        "multi-select → array, unset → null",
        patch=_any_json("components", "schemas", "TicketObject", "properties",
                        "custom_fields", "items", "properties", "value"),
    ),
    Correction(
        "zendesk", "CreateTicket/UpdateTicket request: custom_fields items",
        "items are {id, value} (value any JSON), not CustomFieldObject",
        "the document points the items at CustomFieldObject, the *definition* of a field "
        "(key, title, read-only members); tickets are written with [{id, value}]",
        patch=_ticket_custom_field_values,
    ),
    Correction(
        "zendesk", "schemas UserForAdmin/UserForEndUser",
        "default_group_id, alias, signature, phone, shared_phone_number, photo, "
        "organization_id, remote_photo_url may be null",
        "real user records carry null in each of these when unset (an end user has no "
        "default group, most users no phone or photo)",
        patch=_nullable_in_any(("UserForAdmin", "UserForEndUser"), "default_group_id", "alias",
                               "signature", "phone", "shared_phone_number", "photo",
                               "organization_id", "remote_photo_url"),
    ),
    Correction(
        "zendesk", "ListSessions parameter user_id",
        "user_id is not required on /api/v2/sessions",
        "the document gives GET /api/v2/sessions the shared path parameter UserId (required), but the "
        "path has no {user_id}: an admin lists every session of the account with no parameter at all",
        patch=_optional_path_parameter("/api/v2/sessions", "user_id"),
    ),
    Correction(
        "zendesk", "IncrementalTicketExportCursor parameter start_time",
        "start_time is optional on this path (the shared parameter stays required elsewhere)",
        "a cursor export's follow-up pages are requested with ?cursor= alone, which is how "
        "the service is meant to be paged; the shared parameter marks start_time required",
        patch=_optional_path_parameter("/api/v2/incremental/tickets/cursor", "start_time"),
    ),
    Correction(
        "zendesk", "UpdateTrigger request body",
        "any subset of TriggerObject; read-only members (id, url, ...) allowed",
        "the document reuses the create schema (title/conditions/actions and a category "
        "required); Zendesk accepts partial updates and ignores read-only members, "
        "which zenpy sends back",
        patch=_partial_trigger_update,
    ),
    Correction(
        "zendesk", "schema TicketObject",
        "property comment_count (integer, read-only) added",
        "GET answers asked with ?include=comment_count carry it on every ticket (the "
        "Tickets reference: 'include a comment_count property in the JSON objects "
        "returned by GET requests by sideloading it'); the schema lists no such "
        "property, so without this row its type would go unchecked",
        patch=_add_property("TicketObject", "comment_count", {"type": "integer", "readOnly": True}),
    ),
    # -- Intercom -----------------------------------------------------------
    Correction(
        "intercom", "13 properties written {$ref, nullable: true}",
        "null accepted where the author wrote nullable next to a $ref",
        "OpenAPI 3.0 ignores siblings of $ref, so the document forbids null there; its "
        "examples and the service carry null (e.g. conversation_part.assigned_to)",
        patch=_ref_siblings_nullable,
    ),
    Correction(
        "intercom", "reply/close/assign/open/snooze requests: admin_id",
        "integer accepted besides string",
        "typed string, while the document's own request examples (and python-intercom "
        "callers) send integers, which the service accepts",
        patch=_string_or_integer(("admin_reply_conversation_request", "close_conversation_request",
                                  "assign_conversation_request", "open_conversation_request",
                                  "snooze_conversation_request"), "admin_id"),
    ),
    Correction(
        "intercom", "create_conversation_request.from.id",
        "format uuid dropped (minLength/maxLength 24 kept)",
        "typed format uuid *and* 24 characters long: no value can be both; contact ids are "
        "24 hex characters, as the document's own example shows",
        patch=_drop_format("components", "schemas", "create_conversation_request",
                           "properties", "from", "properties", "id"),
    ),
    Correction(
        "intercom", "schema data_attribute.model (answers only)",
        "model 'conversation' allowed in data_attribute answers",
        "GET /data_attributes?model=conversation is documented (since 2.3) and answers "
        "conversation attributes, yet the answer schema lists only contact|company. "
        "create_data_attribute_request is NOT relaxed: on 2.14 the service refuses "
        "model=conversation (only the Unstable version accepts it)",
        patch=_add_enum_value("data_attribute", "model", "conversation"),
    ),
    Correction(
        "intercom", "schema cursor_pages.per_page",
        "string accepted besides integer",
        "a GET list echoes per_page as the query string sent it: recorded "
        "'\"per_page\": \"50\"' in ../shared/realworld/intercom/api/ia-list-conversations.json "
        "(amp-labs/connectors, a real GET /conversations answer)",
        patch=_integer_or_string("cursor_pages", "per_page"),
    ),
    Correction(
        "intercom", "update_ticket_request.ticket_state_id",
        "integer accepted besides string",
        "same string-vs-integer id mismatch as admin_id",
        patch=_string_or_integer("update_ticket_request", "ticket_state_id"),
    ),
)

# Operations the vendors serve that their documents do not describe at all.
UNDOCUMENTED: tuple[Undocumented, ...] = (
    Undocumented("zendesk", "POST", r"/api/v2/webhooks",
                 "Zendesk webhooks API is not part of the Support API document"),
    Undocumented("zendesk", "GET", r"/api/v2/webhooks(/[^/]+)?",
                 "Zendesk webhooks API is not part of the Support API document"),
    Undocumented("zendesk", "PUT|PATCH|DELETE", r"/api/v2/webhooks/[^/]+",
                 "Zendesk webhooks API is not part of the Support API document"),
    Undocumented("zendesk", "GET|POST", r"/api/v2/webhooks/[^/]+/signing_secret",
                 "Zendesk webhooks API (signing secret) is not part of the Support API document"),
    Undocumented("zendesk", "GET", r"/api/v2/jira/links",
                 "Zendesk's Jira integration links API (developer reference \"Jira links\") is not part "
                 "of the Support API document"),
    Undocumented("zendesk", "GET", r"/api/v2/integrations/jira/[^/]+/links",
                 "the Jira integration V2 links API (developer reference \"JIRA Integration Links (V2)\") "
                 "is not part of the Support API document"),
    Undocumented("zendesk", "GET", r"/attachments/token/[^/]+/?",
                 "an attachment's content_url is a file download on the account host, not an API operation"),
    Undocumented("jira", "GET|POST", r"/rest/webhooks/1\.0/webhook",
                 "Jira admin webhooks are not in the platform v3 document"),
    Undocumented("jira", "GET|PUT|DELETE", r"/rest/webhooks/1\.0/webhook/[^/]+",
                 "Jira admin webhooks are not in the platform v3 document"),
    Undocumented("jira", "GET", r"/rest/applinks/latest/listApplicationlinks",
                 "the jira library asks the applinks plugin API (not in the platform document) "
                 "when it creates a remote link"),
    Undocumented("intercom", "POST", r"/data_attributes",
                 "conversation data attributes are created on the Unstable version, which the "
                 "2.14 document does not describe", header=("intercom-version", "Unstable")),
)

# The error body each vendor sends when the operation documents no error body.
# Jira and Intercom: their documents' own generic error schemas; Zendesk's
# document has only a JSON:API "Errors" schema that accepts any object, so the
# shape of the real service ({"error": ..., "description": ...}) is written here.
ERROR_SHAPES: dict[str, Callable[[dict], dict]] = {
    "jira": lambda doc: _schema(doc, "ErrorCollection")
    | {"anyOf": [{"required": ["errorMessages"]}, {"required": ["errors"]}]},
    "intercom": lambda doc: _schema(doc, "error"),
    "zendesk": lambda doc: {
        "type": "object",
        "anyOf": [
            {"required": ["error"], "properties": {
                "error": {"anyOf": [{"type": "string"}, {"type": "object"}]},
                "description": {"type": "string"},
                "details": {"type": "object"}}},
            {"required": ["errors"], "properties": {"errors": {"type": "array"}}},
        ],
    },
}


def corrections_for(vendor: str) -> list[Correction]:
    return [c for c in CORRECTIONS if c.vendor == vendor]
