"""What every Jira write shares: the per-issue write limit, the bookkeeping after
a change (``updated``, changelog, search snapshot, webhooks) and the comment
record with its events.
"""

from __future__ import annotations

from typing import Any

from syncd.sim.jira_catalog import CommentRec, History, IssueRec
from syncd.sim.jira_http import as_error, too_many
from syncd.sim.jira_search import snapshot
from syncd.sim.jira_state import Change, JiraState
from syncd.sim.jira_webhooks import event_body, fire, fire_issue_event


def write_gate(sim: JiraState, rec: IssueRec) -> None:
    """Jira's per-issue write limit: too many writes to one issue answer 429 for it alone."""
    if sim.issue_write_limit is None:
        return
    limit, window = sim.issue_write_limit
    now = sim.clock.now()
    recent = [t for t in sim.issue_writes.get(rec.id, []) if now - t < window]
    if len(recent) >= limit:
        sim.issue_writes[rec.id] = recent
        raise as_error(too_many(sim, "jira-per-issue-on-write", window - (now - recent[0]), limit))
    recent.append(now)
    sim.issue_writes[rec.id] = recent


def touched(sim: JiraState, rec: IssueRec, actor: str, change: Change | None, event: str | None,
            event_type: str, comment: CommentRec | None = None) -> None:
    """After every change: move ``updated``, record history, index, fire webhooks."""
    now = sim.clock.now()
    rec.updated = max(now, rec.updated)
    if change is not None and change.items:
        rec.changelog.append(History(sim.next_id(), actor, now, change.items))
    if sim.search_lag > 0:
        sim.snapshots.setdefault(rec.id, []).append((now, snapshot(rec)))
    if event is not None:
        fire_issue_event(sim, rec, actor, event, event_type, change, comment)


def new_comment(sim: JiraState, rec: IssueRec, actor: str, body: dict[str, Any], props: dict[str, Any]) -> CommentRec:
    now = sim.clock.now()
    c = CommentRec(sim.next_id(), actor, body, now, now, actor, dict(props))
    rec.comments.append(c)
    return c


def fire_comment(sim: JiraState, rec: IssueRec, c: CommentRec, actor: str, event: str) -> None:
    type_name = {"comment_created": "issue_commented", "comment_updated": "issue_comment_edited",
                 "comment_deleted": "issue_comment_deleted"}[event]
    touched(sim, rec, actor, None, "jira:issue_updated", type_name, comment=c)
    fire(sim, event, rec, event_body(sim, event, rec, actor, None, c))
