"""The simulators' contract checker.

Every answer a simulator gives — and the request that caused it — is checked
against the vendor's own OpenAPI document (``../shared/vendor-specs`` beside the checkout, or
``$SYNCD_VENDOR_SPECS``) with openapi-core. Two reasons: the simulators must
answer the way the real services do, and the daemon must only send requests
the real services accept.

The documents are not the services. Where they disagree with how the real
service behaves, the document copy is corrected *in memory*, one entry per
difference, in :data:`CORRECTIONS` (vendor, target, what is relaxed, why).
Operations the documents do not describe at all are listed in
:data:`UNDOCUMENTED` with a reason; any other unknown path is a violation.

Pieces:

* :class:`ContractChecker` — ``check(vendor, request, response) -> [Violation]``;
  loads each vendor's document lazily (first use) and caches it per process.
* :class:`ContractRecorder` — a :attr:`SimServer.global_observers` entry that
  runs the checker on every simulator answer and files the violations under
  the test that was running (see ``tests/conftest.py``).

``SYNCD_CONTRACT=off`` disables the whole thing (benchmarks, ``syncd demo``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
import yaml
from jsonschema.exceptions import best_match
from jsonschema_path import SchemaPath
from openapi_core.templating.datatypes import TemplateResult
from openapi_core.templating.paths.datatypes import PathOperationServer
from openapi_core.templating.paths.finders import BasePathFinder
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.validators import V30RequestValidator
from openapi_core.validation.response.validators import V30ResponseValidator
from openapi_core.validation.schemas.factories import SchemaValidatorsFactory
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30Validator,
    OAS30WriteValidator,
)

from syncd.sim.core import Request, Response, SimServer

log = structlog.get_logger(__name__)

SWITCH_ENV = "SYNCD_CONTRACT"
SPECS_ENV = "SYNCD_VENDOR_SPECS"
# The repository is checked out with ``shared/`` beside it (as in CI).
DEFAULT_SPECS_DIR = Path(__file__).resolve().parents[3] / "shared" / "vendor-specs"

# Jira offers OAuth2 next to basic auth; openapi-core cannot check OAuth2 and
# warns on every request. Basic auth is what we check, the warning is noise.
warnings.filterwarnings("ignore", message="Unsupported scheme type")


def contract_enabled() -> bool:
    """On unless ``SYNCD_CONTRACT`` says off (benchmarks switch it off)."""
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def specs_dir() -> Path:
    return Path(os.environ.get(SPECS_ENV) or DEFAULT_SPECS_DIR)


class ContractSetupError(RuntimeError):
    """A document cannot be loaded or a correction no longer fits it."""


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class VendorDoc:
    vendor: str
    filename: str
    # Requests are rewritten to this host: openapi-core only matches a server
    # URL the document lists (Zendesk's is the template https://{subdomain}.{domain}.com).
    server: str
    strip_json_suffix: bool = False   # zenpy appends ``.json``; the document does not


VENDORS: dict[str, VendorDoc] = {
    "jira": VendorDoc("jira", "jira-cloud-platform-v3.json", "https://your-domain.atlassian.net"),
    "zendesk": VendorDoc("zendesk", "zendesk-support.yaml", "https://example.zendesk.com",
                         strip_json_suffix=True),
    "intercom": VendorDoc("intercom", "intercom-2.14.yaml", "https://api.intercom.io"),
}


@dataclass(frozen=True)
class Violation:
    vendor: str
    operation: str      # the document's operationId, or "(undocumented)"
    method: str
    path: str           # as served (before .json stripping / aliasing)
    status: int
    part: str           # "request", "response" or "checker"
    problem: str

    def __str__(self) -> str:
        return (f"[{self.vendor}] {self.operation} {self.method} {self.path} -> {self.status}: "
                f"{self.part}: {self.problem}")


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


# ---------------------------------------------------------------------------
# Loading (once per process, per vendor, on first use)
# ---------------------------------------------------------------------------

class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


# Zendesk's examples use the bare value ``=``, which YAML reads as the special
# "value" tag and SafeLoader refuses: read it as the plain string it is.
_YamlLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _read_document(vendor: str) -> dict:
    path = specs_dir() / VENDORS[vendor].filename
    if not path.is_file():
        raise ContractSetupError(f"vendor document not found: {path} (set {SPECS_ENV} or {SWITCH_ENV}=off)")
    with path.open("rb") as fh:
        if path.suffix == ".json":
            return json.load(fh)
        return yaml.load(fh, Loader=_YamlLoader)


def corrections_for(vendor: str) -> list[Correction]:
    return [c for c in CORRECTIONS if c.vendor == vendor]


def _response_of(doc: dict, responses: dict, status: int) -> dict | None:
    """The documented response for ``status`` (exact, ``4XX`` range, default), refs resolved."""
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return _resolve(doc, responses[key])
    return None


def _resolve(doc: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = _at(doc, *node["$ref"].lstrip("#/").split("/"))
    return node


def _json_schema_of(response: dict) -> dict | None:
    for media, spec in (response.get("content") or {}).items():
        if "json" in media and isinstance(spec, dict) and "schema" in spec:
            return spec["schema"]
    return None


@dataclass(frozen=True)
class _Match:
    template: str
    params: dict[str, str]
    operation_id: str
    operation: dict


class _PathIndex:
    """Path templates of one document as regexes, most concrete first."""

    def __init__(self, paths: dict[str, dict]):
        entries = []
        for template, item in paths.items():
            names = re.findall(r"\{([^}]+)\}", template)
            regex = "".join(
                f"(?P<p{names.index(part[1:-1])}>[^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template) if part
            )
            entries.append((len(names), -len(template), template, re.compile(regex), names, item))
        entries.sort(key=lambda e: (e[0], e[1]))
        self._entries = entries
        self.match = lru_cache(maxsize=8192)(self._match)

    def _match(self, method: str, path: str) -> _Match | None | str:
        """A match; or the string "method" when the path exists without that method."""
        path_known = False
        for _, _, template, regex, names, item in self._entries:
            m = regex.fullmatch(path)
            if not m:
                continue
            operation = item.get(method.lower())
            if operation is None:
                path_known = True
                continue
            params = {name: m.group(f"p{i}") for i, name in enumerate(names)}
            return _Match(template, params, operation.get("operationId", template), operation)
        return "method" if path_known else None


class _DirectPathFinder(BasePathFinder):
    """openapi-core's finder walks every path of the document on every call
    (~3 ms for Jira's 417 paths); we already know the template, so look it up."""

    def __init__(self, spec: SchemaPath, base_url: str | None = None):
        super().__init__(spec, base_url)
        self._paths = dict((spec / "paths").str_items())
        self._server = next(iter(spec / "servers"))
        self._cache: dict[tuple[str, str], PathOperationServer] = {}

    def find(self, method: str, name: str) -> PathOperationServer:
        key = (method, name)
        found = self._cache.get(key)
        if found is None:
            server_url = (self._server / "url").read_str()
            template = "/" + name.split("/", 3)[3]   # name = scheme://host + template
            path = self._paths[template]
            found = PathOperationServer(path, path / method, self._server,
                                        TemplateResult(template, {}), TemplateResult(server_url, {}))
            self._cache[key] = found
        return found


class _OnceFormatsFactory(SchemaValidatorsFactory):
    """openapi-core deep-copies the format checker for every schema it checks
    (a quarter of the time spent); ours never changes after load: build it once."""

    def __init__(self, schema_validator_cls: type) -> None:
        super().__init__(schema_validator_cls)
        self._checkers: dict[tuple[int, int], Any] = {}

    def get_format_checker(self, format_validators: Any = None, extra_format_validators: Any = None) -> Any:
        key = (id(format_validators), id(extra_format_validators))
        if key not in self._checkers:
            self._checkers[key] = super().get_format_checker(format_validators, extra_format_validators)
        return self._checkers[key]


@dataclass
class _Loaded:
    doc: dict
    requests: V30RequestValidator
    responses: V30ResponseValidator
    index: _PathIndex
    aliases: list[tuple[str, str]]
    error_validator: OAS30Validator
    lock: threading.Lock = field(default_factory=threading.Lock)


_loaded: dict[str, _Loaded] = {}
_load_lock = threading.Lock()


def load(vendor: str) -> _Loaded:
    """The corrected document and its validators, built once per process."""
    with _load_lock:
        if vendor not in _loaded:
            started = time.monotonic()
            _loaded[vendor] = _build(vendor)
            log.info("contract_document_loaded", vendor=vendor,
                     seconds=round(time.monotonic() - started, 3))
        return _loaded[vendor]


def _build(vendor: str) -> _Loaded:
    doc = _read_document(vendor)
    formats: dict[str, Callable[[Any], bool]] = {}
    aliases = []
    for c in corrections_for(vendor):
        if c.patch is not None:
            c.patch(doc)
        formats.update(dict(c.formats))
        if c.path_alias is not None:
            aliases.append(c.path_alias)
    # The documents do not pass strict validation of the document itself (an
    # enum default of "" and the like), so the spec check is skipped.
    spec = SchemaPath.from_dict(doc)
    common: dict[str, Any] = {"path_finder_cls": _DirectPathFinder, "extra_format_validators": formats or None}
    requests = V30RequestValidator(spec, schema_validators_factory=_OnceFormatsFactory(OAS30WriteValidator), **common)
    responses = V30ResponseValidator(spec, schema_validators_factory=_OnceFormatsFactory(OAS30ReadValidator), **common)
    error_schema = copy.deepcopy(ERROR_SHAPES[vendor](doc))
    return _Loaded(doc, requests, responses, _PathIndex(doc["paths"]), aliases, OAS30Validator(error_schema))


# ---------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------

@dataclass
class CheckStats:
    checked: int = 0
    undocumented_allowed: int = 0
    seconds: float = 0.0

    @property
    def mean_ms(self) -> float:
        return 1000.0 * self.seconds / self.checked if self.checked else 0.0


class ContractChecker:
    """Validates one (request, response) pair of a simulator against its vendor document."""

    def __init__(self) -> None:
        self.stats: dict[str, CheckStats] = defaultdict(CheckStats)
        self._stats_lock = threading.Lock()

    def check(self, vendor: str, request: Request, response: Response) -> list[Violation]:
        started = time.perf_counter()
        try:
            return list(self._check(vendor, request, response))
        finally:
            with self._stats_lock:
                stats = self.stats[vendor]
                stats.checked += 1
                stats.seconds += time.perf_counter() - started

    def _check(self, vendor: str, request: Request, response: Response) -> Iterator[Violation]:
        vd = VENDORS[vendor]
        loaded = load(vendor)
        path = _documented_path(vd, loaded, request.path)

        def violation(operation: str, part: str, problem: str) -> Violation:
            return Violation(vendor, operation, request.method, request.path, response.status, part, problem)

        if _allowlisted(vendor, request, path) is not None:
            with self._stats_lock:
                self.stats[vendor].undocumented_allowed += 1
            return
        match = loaded.index.match(request.method, path)
        if not isinstance(match, _Match):
            why = ("the document lists this path but not this method" if match == "method"
                   else "the document has no such path and it is not in UNDOCUMENTED")
            yield violation("(undocumented)", "request", why)
            return

        op = match.operation_id
        mock_request = _mock_request(vd, match, request)
        with loaded.lock:
            # A request the simulator refused with a 4xx was refused as the real
            # service would refuse it (tests provoke 400/401/404 on purpose); a
            # request it accepted — or that met an injected 429/5xx — must be one
            # the real service accepts too.
            if not (400 <= response.status < 500 and response.status != 429):
                for error in loaded.requests.iter_errors(mock_request):
                    yield violation(op, "request", _explain(error))
            if response.status == 0:   # connection reset on purpose: nothing answered
                return
            for part, problem in _response_problems(loaded, match, mock_request, response):
                yield violation(op, part, problem)


def _documented_path(vd: VendorDoc, loaded: _Loaded, path: str) -> str:
    if vd.strip_json_suffix and path.endswith(".json"):
        path = path[: -len(".json")]
    for served, documented in loaded.aliases:
        if path.startswith(served):
            path = documented + path[len(served):]
    return path


def _allowlisted(vendor: str, request: Request, path: str) -> Undocumented | None:
    for entry in UNDOCUMENTED:
        if (entry.vendor == vendor and re.fullmatch(entry.method, request.method)
                and re.fullmatch(entry.path, path)
                and (entry.header is None or request.header(entry.header[0]) == entry.header[1])):
            return entry
    return None


def _mock_request(vd: VendorDoc, match: _Match, request: Request) -> MockRequest:
    headers = dict(request.headers)
    headers.pop("host", None)
    return MockRequest(
        vd.server, request.method.lower(), match.template,
        path_pattern=match.template, args=request.query, view_args=match.params,
        headers=headers, data=request.body,
        content_type=request.header("content-type") or "application/json",
    )


def _header(response: Response, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _response_problems(loaded: _Loaded, match: _Match, mock_request: MockRequest,
                       response: Response) -> Iterator[tuple[str, str]]:
    status = response.status
    body = response.encoded()
    content_type = _header(response, "content-type") or "application/json"
    is_json = "json" in content_type and bool(body)
    documented = _response_of(loaded.doc, match.operation.get("responses") or {}, status)
    documented_schema = _json_schema_of(documented) if documented is not None else None

    if status >= 400 and documented is not None and not is_json and _lists_media(documented, content_type):
        return   # a non-JSON error body the document describes (e.g. Jira's XSRF 403)
    if status >= 400 and (documented_schema is None or not is_json):
        # Errors the operation does not describe (injected 5xx, 429, most Jira
        # 4xx) must still be JSON in the vendor's error shape.
        yield from _error_shape_problems(loaded, body, is_json)
        return
    if documented is None:
        listed = ", ".join(sorted(match.operation.get("responses") or {}))
        yield "response", f"status {status} is not documented (documented: {listed})"
        return
    if not body:
        # HTTP 204 never has a body, even where the document lists a media type for it.
        if documented_schema is not None and status != 204:
            yield "response", f"empty body, but the document describes a JSON body for {status}"
        return
    if not is_json:
        return   # only JSON bodies are validated
    mock_response = MockResponse(body, status, headers=dict(response.headers), content_type=content_type)
    for error in loaded.responses.iter_errors(mock_request, mock_response):
        yield "response", _explain(error)


def _lists_media(documented: dict, content_type: str) -> bool:
    mimetype = content_type.split(";")[0].strip().lower()
    return mimetype in {m.lower() for m in (documented.get("content") or {})}


def _error_shape_problems(loaded: _Loaded, body: bytes, is_json: bool) -> Iterator[tuple[str, str]]:
    if not is_json:
        yield "response", "error answer is not JSON (the vendor answers errors in JSON)"
        return
    try:
        data = json.loads(body)
    except ValueError as e:
        yield "response", f"error answer is not valid JSON: {e}"
        return
    for error in loaded.error_validator.iter_errors(data):
        yield "response", f"error body not in the vendor's error shape: {_schema_error(error)}"


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

_MAX = 300


def _short(text: str) -> str:
    return text if len(text) <= _MAX else text[: _MAX - 3] + "..."


def _schema_error(error: Any, depth: int = 0) -> str:
    where = "/".join(str(p) for p in getattr(error, "absolute_path", ())) or "(root)"
    context = getattr(error, "context", None)
    if context and depth < 2:
        # anyOf/oneOf: the generic "not valid under any" says nothing; say why
        # each alternative failed (its most relevant error).
        branches: dict[Any, list[Any]] = defaultdict(list)
        for sub in context:
            branches[sub.relative_schema_path[0] if sub.relative_schema_path else 0].append(sub)
        reasons = [f"#{k}: {_schema_error(best_match(errs), depth + 1)}" for k, errs in list(branches.items())[:4]]
        return f"at {where}: matches none of the {error.validator} alternatives ({'; '.join(reasons)})"
    return f"at {where}: {_short(str(getattr(error, 'message', error)))}"


def _explain(error: BaseException) -> str:
    """One line naming what is wrong, down to the schema path."""
    name = type(error).__name__
    nested = getattr(error, "errors", None) or getattr(error, "context", None)
    if nested and isinstance(nested, (list, tuple)):
        return f"{name}: " + "; ".join(_explain(e) for e in nested)
    cause = error.__cause__
    schema_errors = getattr(error, "schema_errors", None) or getattr(cause, "schema_errors", None)
    if schema_errors:
        return f"{name}: " + "; ".join(_schema_error(e) for e in schema_errors)
    text = _short(str(error).removeprefix(f"{name}: "))
    if cause is not None and str(cause) not in text:
        text += f" ({_short(str(cause))})"
    return f"{name}: {text}"


# ---------------------------------------------------------------------------
# The recorder: an observer of every simulator, filing violations per test
# ---------------------------------------------------------------------------

# The most recently installed recorder (kept after uninstall for the session summary).
ACTIVE_RECORDER: ContractRecorder | None = None


class ContractRecorder:
    """Runs the checker on every simulator answer and files the violations
    under the test that was running when the request was served.

    The observer runs on the simulator's server thread *after* the answer was
    sent, so :meth:`end` waits for checks still in flight before collecting.
    Violations observed while no test (or another test) was running are kept
    as *late* ones and reported with the next test that ends, labelled so.
    """

    def __init__(self, checker: ContractChecker | None = None):
        self.checker = checker or ContractChecker()
        self._cv = threading.Condition()
        self._pending = 0
        self._current: str | None = None
        self._by_test: dict[str, list[Violation]] = defaultdict(list)
        self._late: list[str] = []

    # -- wiring -----------------------------------------------------------
    def install(self) -> ContractRecorder:
        global ACTIVE_RECORDER
        SimServer.global_observers.append(self.observe)
        ACTIVE_RECORDER = self
        return self

    def uninstall(self) -> None:
        if self.observe in SimServer.global_observers:
            SimServer.global_observers.remove(self.observe)

    # -- the observer -----------------------------------------------------
    def observe(self, sim: SimServer, request: Request, response: Response) -> None:
        vendor = getattr(sim, "vendor", "")
        if vendor not in VENDORS:
            return   # a bare SimServer (framework tests): no document to check against
        with self._cv:
            test = self._current
            self._pending += 1
        try:
            found = self.checker.check(vendor, request, response)
        except Exception as e:  # noqa: BLE001 -- never break the simulator's thread; report instead
            found = [Violation(vendor, request.operation or "?", request.method, request.path,
                               response.status, "checker", f"checker failed: {type(e).__name__}: {e}")]
        for v in found:
            log.warning("contract_violation", vendor=v.vendor, operation=v.operation, method=v.method,
                        path=v.path, status=v.status, part=v.part, problem=v.problem)
        with self._cv:
            self._pending -= 1
            if test is not None and test == self._current:
                self._by_test[test].extend(found)
            else:
                self._late.extend(f"(observed after {test or 'no test'} ended) {v}" for v in found)
            self._cv.notify_all()

    # -- per test ---------------------------------------------------------
    def begin(self, test_id: str) -> None:
        with self._cv:
            self._current = test_id

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def take(self, at_least: int = 0, timeout: float = 2.0) -> list[Violation]:
        """The current test's violations so far (cleared). ``at_least`` waits, up to
        ``timeout``, for that many — for tests that provoke violations on purpose."""
        deadline = time.monotonic() + timeout
        while True:
            self.wait_idle(max(0.0, deadline - time.monotonic()))
            with self._cv:
                got = self._by_test.get(self._current or "", [])
                if len(got) >= at_least or time.monotonic() >= deadline:
                    return self._by_test.pop(self._current or "", [])
            time.sleep(0.005)

    def end(self, test_id: str) -> list[str]:
        """Every problem to report for ``test_id``, as lines (late ones included)."""
        self.wait_idle()
        with self._cv:
            self._current = None
            lines = [str(v) for v in self._by_test.pop(test_id, [])]
            lines += self._late
            self._late = []
        return lines

    def summary(self) -> str:
        parts = [f"{vendor}: {s.checked} checked, {s.mean_ms:.2f} ms each"
                 + (f", {s.undocumented_allowed} allowlisted" if s.undocumented_allowed else "")
                 for vendor, s in sorted(self.checker.stats.items())]
        return "contract: " + ("; ".join(parts) if parts else "no simulator answers checked")


def format_report(test_id: str, lines: Iterable[str]) -> str:
    lines = list(lines)
    return (f"{len(lines)} vendor contract violation(s) in {test_id} "
            f"(syncd/sim/contract.py; SYNCD_CONTRACT=off disables):\n  " + "\n  ".join(lines))
