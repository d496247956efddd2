"""Intercom's search query language and cursor pagination, as pure functions.

Used by the Intercom simulator for ``POST /conversations/search`` and
``POST /tickets/search`` (and the cursor of ``GET /conversations``).

A query is either a single filter ``{"field", "operator", "value"}`` or a group
``{"operator": "AND"|"OR", "value": [query, ...]}``. Intercom documents ``>``
and ``<`` as "greater (lower) *or equal*", so a poller that asks for
``updated_at > last_seen`` sees the items of ``last_seen`` again: that overlap
is on purpose here too. Limits as documented: at most 2 levels of nesting and
15 filters per group.

Records are flat dicts, e.g. ``{"updated_at": 17000, "tag_ids": ["5"],
"custom_attributes.jira_key": "ABC-1"}``; a list-valued field matches ``=`` when
any element matches.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Record = dict[str, Any]

MAX_NESTING = 2
MAX_GROUP = 15
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 150

# Operators Intercom accepts on date fields; the others answer an error there.
DATE_OPERATORS = frozenset({"=", ">", "<"})
ALL_OPERATORS = frozenset({"=", "!=", "IN", "NIN", "<", "<=", ">", ">=", "~", "!~", "^", "$"})


class QueryError(ValueError):
    """The query is not one Intercom would accept (answered as a 400)."""


def compile_query(query: Any, date_fields: frozenset[str], depth: int = 0) -> Callable[[Record], bool]:
    """Validate ``query`` once and return a predicate over records."""
    if not isinstance(query, dict):
        raise QueryError("query must be an object")
    op = query.get("operator")
    if op in ("AND", "OR"):
        return _compile_group(query, date_fields, depth)
    return _compile_filter(query, date_fields)


def _compile_group(query: Record, date_fields: frozenset[str], depth: int) -> Callable[[Record], bool]:
    if depth >= MAX_NESTING:
        raise QueryError(f"a query may nest at most {MAX_NESTING} levels")
    parts = query.get("value")
    if not isinstance(parts, list) or not parts:
        raise QueryError(f"{query['operator']} needs a non-empty list of filters")
    if len(parts) > MAX_GROUP:
        raise QueryError(f"at most {MAX_GROUP} filters per {query['operator']} group")
    preds = [compile_query(p, date_fields, depth + 1) for p in parts]
    if query["operator"] == "AND":
        return lambda rec: all(p(rec) for p in preds)
    return lambda rec: any(p(rec) for p in preds)


def _compile_filter(query: Record, date_fields: frozenset[str]) -> Callable[[Record], bool]:
    field, op, value = query.get("field"), query.get("operator"), query.get("value")
    if not isinstance(field, str) or op not in ALL_OPERATORS:
        raise QueryError(f"invalid filter {json.dumps(query)}")
    if field in date_fields:
        if op not in DATE_OPERATORS:
            raise QueryError(f"operator {op} is not supported on date field {field}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise QueryError(f"{field} needs a unix timestamp")
    if op in ("IN", "NIN") and not isinstance(value, list):
        raise QueryError(f"{op} needs a list value")
    return lambda rec: _match(rec.get(field), op, value)


def _match(actual: Any, op: str, value: Any) -> bool:
    if isinstance(actual, list):
        if op in ("!=", "NIN", "!~"):
            return all(_match(a, op, value) for a in actual)
        return any(_match(a, op, value) for a in actual)
    if op == "=":
        return _eq(actual, value)
    if op == "!=":
        return not _eq(actual, value)
    if op == "IN":
        return any(_eq(actual, v) for v in value)
    if op == "NIN":
        return not any(_eq(actual, v) for v in value)
    if actual is None:
        return False
    if op in (">", ">="):   # Intercom: "greater (or equal) than"
        return _num(actual) >= _num(value)
    if op in ("<", "<="):   # Intercom: "lower (or equal) than"
        return _num(actual) <= _num(value)
    text, needle = str(actual).lower(), str(value).lower()
    return {
        "~": needle in text,
        "!~": needle not in text,
        "^": text.startswith(needle),
        "$": text.endswith(needle),
    }[op]


def _eq(actual: Any, value: Any) -> bool:
    if isinstance(actual, bool) or isinstance(value, bool):
        return str(actual).lower() == str(value).lower()
    if actual is None or value is None:
        return actual is None and value is None
    return str(actual) == str(value)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise QueryError(f"{v!r} is not a number") from None


# ---------------------------------------------------------------------------
# Cursor pagination
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    items: list[Any]
    total_count: int
    page: int
    per_page: int
    total_pages: int
    next_cursor: str | None

    def pages_json(self, per_page_as_sent: str | None = None) -> dict[str, Any]:
        """Intercom's ``cursor_pages`` object; ``next`` only when there is more.

        As recorded (../shared/realworld/intercom/api/ia-search-conversations.json,
        ia-list-contacts.json): ``next`` is ``{"page": <next page>, "starting_after"}``.
        A GET list echoes ``per_page`` as the query string sent it — a string
        (ia-list-conversations.json: ``"per_page": "50"``); ``per_page_as_sent``
        is that raw value."""
        per_page: Any = per_page_as_sent if per_page_as_sent is not None else self.per_page
        out: dict[str, Any] = {"type": "pages", "page": self.page, "per_page": per_page,
                               "total_pages": self.total_pages}
        if self.next_cursor is not None:
            out["next"] = {"page": self.page + 1, "starting_after": self.next_cursor}
        return out


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError):
        raise QueryError("starting_after is not a cursor this API gave out") from None
    if not isinstance(key, list):
        raise QueryError("starting_after is not a cursor this API gave out")
    return key


def page_by_key(items: Sequence[Any], sort_key: Callable[[Any], Sequence[Any]],
                per_page: int | None, starting_after: str | None) -> Page:
    """Keyset pagination: the cursor holds the sort key of the last item shown,
    so an item that changes while a client pages moves behind the cursor and is
    seen again later — never skipped (Intercom's cursors are opaque; this is the
    safe reading of them)."""
    size = min(max(1, per_page or DEFAULT_PER_PAGE), MAX_PER_PAGE)
    ordered = sorted(items, key=lambda i: list(sort_key(i)))
    start = 0
    if starting_after:
        after = decode_cursor(starting_after)
        start = next((n for n, i in enumerate(ordered) if list(sort_key(i)) > after), len(ordered))
    chunk = ordered[start:start + size]
    more = start + size < len(ordered)
    total = len(ordered)
    return Page(
        items=chunk,
        total_count=total,
        page=start // size + 1,
        per_page=size,
        total_pages=max(1, -(-total // size)),
        next_cursor=encode_cursor(sort_key(chunk[-1])) if more and chunk else None,
    )
