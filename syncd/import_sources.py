"""Two more ``syncd links import`` sources (the others are in :mod:`syncd.adoption`):

* ``zendesk-integration-v2`` — the links of Zendesk's Jira integration V2
  (``GET /api/v2/integrations/jira/{external_id}/links``, Zendesk reference "JIRA
  Integration Links (V2)"). A source of its own rather than a flag on
  ``zendesk-integration``: another endpoint, named by the integration's external
  id, with opaque cursors instead of link ids and every id a string; and an account
  that moved from V1 to V2 (or runs two V2 integrations) has several lists, each
  resumed on its own (its progress is stored under ``zendesk-integration-v2:<id>``).
* ``intercom-key-field`` — Intercom conversations whose mapped key attribute
  (``[escalation] key_field = "attr:<name>"``) names issue keys, found with
  Intercom's search (``custom_attributes.<name>`` contains ``-``: every issue key
  has one), so conversations without a key cost nothing.

Every identifier a source hands on is parsed to its vendor's spelling first: the
external id before it becomes a URL path, and each record's ticket id, issue id
and issue key before they become refs, URLs or database keys. A record with a
hostile issue id or key is reported *wrong* with what was expected; one whose
desk id is not an id at all cannot name an item and is logged
(``import_record_refused``) and left out.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterator, Mapping
from urllib.parse import quote

import structlog

from .adoption import Candidate, Page, SourceUnusable, KEY_IN_TEXT
from .domain import ItemRef, parse_id

log = structlog.get_logger(__name__)

# Zendesk does not document the external id's spelling (it is copied from the Admin
# Center): letters, digits and . _ - , at most 64, which keeps it one URL path segment
# with nothing to escape.
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A Jira issue key: project key (a capital letter, then capitals, digits, _), dash, number.
_ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]{0,254}-[1-9][0-9]{0,18}")
_CURSOR = re.compile(r"[\x21-\x7e]{1,512}")   # an opaque cursor: printable ASCII, bounded
EXTERNAL_ID_EXPECTED = "letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)"


def parse_external_id(text: str) -> str:
    """The V2 integration's external id, or ValueError naming what was expected."""
    if not isinstance(text, str) or not _EXTERNAL_ID.fullmatch(text):
        shown = text[:40] + "…" if isinstance(text, str) and len(text) > 40 else text
        raise ValueError(f"bad external id {shown!r}: expected {EXTERNAL_ID_EXPECTED}")
    return text


def parse_issue_key(text: str) -> str:
    """A Jira issue key (upper-cased: Jira's keys are), or ValueError naming what was expected."""
    key = text.strip().upper() if isinstance(text, str) else ""
    if not _ISSUE_KEY.fullmatch(key):
        shown = text[:40] + "…" if isinstance(text, str) and len(text) > 40 else text
        raise ValueError(f"bad issue key {shown!r}: expected a project key, a dash and a number (SUP-12)")
    return key


def v2_progress_name(external_id: str) -> str:
    """Where a V2 integration's import progress is stored (the column holds 64 characters)."""
    name = f"zendesk-integration-v2:{external_id}"
    return name if len(name) <= 64 else f"zendesk-integration-v2:#{hashlib.sha256(external_id.encode()).hexdigest()[:32]}"


# -- zendesk-integration-v2 ------------------------------------------------------------------

def zendesk_integration_v2_pages(zendesk: Any, external_id: str, after: str | None,
                                 page_size: int) -> Iterator[Page]:
    """The V2 integration's links, page by page (``page[after]``: the opaque cursor of the
    page before)."""
    ext = parse_external_id(external_id)
    params: dict[str, Any] = {"page[size]": page_size}
    if after:
        params["page[after]"] = after
    for raw in zendesk._pages("ListJiraIntegrationLinks", f"integrations/jira/{quote(ext, safe='')}/links", params):
        meta = raw.get("meta") or {}
        cursor = meta.get("after_cursor")
        if cursor is not None and not (isinstance(cursor, str) and _CURSOR.fullmatch(cursor)):
            raise SourceUnusable("Zendesk answered a page cursor that is not one (not printable ASCII, "
                                 "or longer than 512 characters)")
        found = tuple(c for c in (v2_candidate(l, ext) for l in raw.get("links") or []) if c is not None)
        yield Page(found, cursor or after, not meta.get("has_more"))


def v2_candidate(raw: Mapping[str, Any], external_id: str) -> Candidate | None:
    """One V2 link record as a candidate; its ids parsed, a bad issue id or key a problem."""
    ticket = raw.get("ticket_id")
    origin = f"zendesk jira v2 integration {external_id}, ticket {str(ticket)[:40]!r}"
    try:
        desk = ItemRef("zendesk", str(ticket) if isinstance(ticket, (str, int)) and not isinstance(ticket, bool)
                       else repr(ticket))
    except ValueError as e:
        log.warning("import_record_refused", source="zendesk-integration-v2", origin=origin, reason=str(e))
        return None
    issue_id, key, problems = raw.get("issue_id"), raw.get("issue_key"), []
    if issue_id in (None, ""):
        issue_id = None
    else:
        try:
            issue_id = parse_id(str(issue_id) if not isinstance(issue_id, bool) else "")
        except ValueError as e:
            problems.append(str(e).replace("bad item id", "bad issue id"))
            issue_id = None
    if key in (None, ""):
        key = None
    else:
        try:
            key = parse_issue_key(key)
        except ValueError as e:
            problems.append(str(e))
            key = None
    if issue_id is None and key is None and not problems:
        return None
    return Candidate(desk, issue_id, key, origin, problem="; ".join(problems) or None)


# -- intercom-key-field ----------------------------------------------------------------------

def intercom_key_field_pages(intercom: Any, locator: str, after: str | None, page_size: int) -> Iterator[Page]:
    """Conversations whose key attribute contains a dash (``starting_after`` paging;
    the cursor stored is Intercom's)."""
    from intercom import SingleFilterSearchRequest
    from .connectors.intercom import CONVERSATION, conversation_fields
    name = _attribute_name(locator)
    query = SingleFilterSearchRequest(field=f"custom_attributes.{name}", operator="~", value="-")
    position = after
    while True:
        items, nxt = intercom.search("conversations", query, position, page_size)
        if nxt is not None and not _CURSOR.fullmatch(nxt):
            raise SourceUnusable("Intercom answered a starting_after that is not a cursor")
        found = [c for raw in items for c in _conversation_candidates(raw, CONVERSATION, locator, conversation_fields)]
        yield Page(tuple(found), nxt or position, nxt is None)
        if nxt is None:
            return
        position = nxt


def _attribute_name(locator: str) -> str:
    if not locator.startswith("attr:") or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}", locator[5:]):
        raise SourceUnusable(f"the key field {locator!r} is not a conversation attribute (attr:<name>)")
    return locator[5:]


def _conversation_candidates(raw: Mapping[str, Any], kind: str, locator: str, fields_of: Any) -> list[Candidate]:
    try:
        desk = ItemRef(kind, str(raw.get("id")))
    except ValueError as e:
        log.warning("import_record_refused", source="intercom-key-field", reason=str(e))
        return []
    value = fields_of(raw).get(locator)
    text = " ".join(value) if isinstance(value, tuple) else str(value or "")
    return [Candidate(desk, None, key, f"{desk} {locator}", desk_seen=True)
            for key in dict.fromkeys(KEY_IN_TEXT.findall(text.upper()))]
