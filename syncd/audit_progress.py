"""Where a ``syncd reconcile --dry-run`` pass stopped, and what it found so far.

An audit of every link takes as long as the account budget allows for its reads
(10,000 links at Zendesk's 700 requests a minute: most of an hour), so a pass
cut short (Ctrl-C, a crash) carries on where it stopped, as ``links import``
does. The audit goes through the issues by ascending id, in chunks; after each
chunk one transaction stores the last issue id audited and the chunk's
findings (the issues with drift, and those that could not be read). A run of
the same scope resumes after that id and reports the findings of the whole
pass, its earlier runs included; a finished pass, or ``--restart``, starts a
new one. One row per scope (``all``, ``desk:zendesk``, ``issue:SUP-1``, with
``since:`` when given): passes of different scopes do not disturb each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from .schema import audit_findings, audit_runs, insert_for
from .store import Store


@dataclass(frozen=True)
class AuditPass:
    scope: str
    cursor: int | None     # the last issue id audited; None: none yet
    done: bool
    checked: int           # issues audited in this pass, all runs
    started_at: float
    resumed: bool = False  # this run carries on an earlier one


def scope_key(scope: str, value: str | None, since: str | None) -> str:
    key = scope if value is None else f"{scope}:{value}"
    return key if since is None else f"{key} since:{since}"


def load(store: Store, scope: str) -> AuditPass | None:
    c = audit_runs.c
    with store.transaction() as conn:
        row = conn.execute(sa.select(audit_runs).where(c.scope == scope)).first()
    if row is None:
        return None
    return AuditPass(row.scope, row.cursor, bool(row.done), row.checked, row.started_at)


def begin(store: Store, scope: str, restart: bool, now: float) -> AuditPass:
    """The pass this run works on: the unfinished one of ``scope``, else a new one
    (the old pass's findings forgotten)."""
    old = load(store, scope)
    if old is not None and not old.done and not restart:
        return AuditPass(old.scope, old.cursor, False, old.checked, old.started_at, resumed=True)
    fresh = AuditPass(scope, None, False, 0, now)
    with store.transaction() as conn:
        conn.execute(sa.delete(audit_findings).where(audit_findings.c.scope == scope))
        _save(conn, fresh, now)
    return fresh


def record(store: Store, current: AuditPass, cursor: int, checked: int,
           findings: Iterable[tuple[int, Mapping[str, Any]]], now: float, done: bool = False) -> AuditPass:
    """A chunk was audited up to issue ``cursor``: its findings (issue id, report)
    and the new position, in one transaction."""
    after = AuditPass(current.scope, cursor, done, current.checked + checked, current.started_at, current.resumed)
    with store.transaction() as conn:
        for issue_id, doc in findings:
            stmt = insert_for(conn, audit_findings).values(scope=current.scope, issue_id=issue_id,
                                                           doc=json.dumps(doc))
            conn.execute(stmt.on_conflict_do_update(index_elements=["scope", "issue_id"],
                                                    set_={"doc": stmt.excluded.doc}))
        _save(conn, after, now)
    return after


def finish(store: Store, current: AuditPass, now: float) -> AuditPass:
    done = AuditPass(current.scope, current.cursor, True, current.checked, current.started_at, current.resumed)
    with store.transaction() as conn:
        _save(conn, done, now)
    return done


def findings(store: Store, scope: str) -> list[dict[str, Any]]:
    """The reports of the pass's drifted or unreadable issues, by issue id."""
    c = audit_findings.c
    with store.transaction() as conn:
        rows = conn.execute(sa.select(c.doc).where(c.scope == scope).order_by(c.issue_id)).all()
    return [json.loads(r.doc) for r in rows]


def _save(conn: sa.Connection, p: AuditPass, now: float) -> None:
    values = {"scope": p.scope, "cursor": p.cursor, "done": p.done, "checked": p.checked,
              "started_at": p.started_at, "updated_at": now}
    stmt = insert_for(conn, audit_runs).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["scope"],
                                            set_={k: v for k, v in values.items() if k != "scope"}))
