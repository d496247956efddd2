"""The items changed since a date, on each side (``syncd reconcile --since DATE``).

The same change feeds the pollers read (:meth:`poll` of each connector), started
at the date instead of at syncd's stored cursor: Zendesk's incremental ticket
export from ``start_time``, Jira's search on ``updated >=``, Intercom's search on
``updated_at >``. They list every item changed since the date, linked or not; the
caller keeps the linked ones. Zendesk's export leaves out the last minute (the
vendor holds it back), so a change made in the minute before the audit may be
missing: the next audit, or the daemon's own poll, finds it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Mapping

from .domain import ItemRef

MAX_PAGES = 10_000   # a change feed that never ends is a vendor bug, not a reason to loop forever


def parse_date(text: str) -> datetime:
    """``2026-11-30`` (midnight UTC) or an ISO time (``2026-11-30T08:00:00+01:00``; UTC when
    no offset is given). Anything else raises ``ValueError`` with what was expected."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2026-11-30) or an ISO time (2026-11-30T08:00:00Z)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def start_cursor(name: str, connector: Any, since: datetime) -> str:
    """The poll cursor of ``name``'s connector that starts at ``since``."""
    ts = since.timestamp()
    if name == "zendesk":
        return json.dumps({"start_time": int(ts)})
    # Jira and Intercom start their window ``poll_overlap`` before the cursor's ``t``.
    return json.dumps({"t": ts + float(connector.poll_overlap), "seen": {}})


def changed(name: str, connector: Any, since: datetime) -> set[ItemRef]:
    """Every item of ``name`` (``zendesk``, ``intercom``, ``jira``) changed at or after ``since``."""
    out: set[ItemRef] = set()
    cursor = start_cursor(name, connector, since)
    for _ in range(MAX_PAGES):
        page = connector.poll(cursor)
        out.update(page.items)
        if not page.more:
            return out
        cursor = page.cursor
    raise RuntimeError(f"{name}: the change feed did not end after {MAX_PAGES} pages")


def changed_everywhere(desks: Mapping[str, Any], tracker: Any, since: datetime) -> set[ItemRef]:
    found = changed("jira", tracker, since)
    for name, desk in desks.items():
        found |= changed(name, desk, since)
    return found
