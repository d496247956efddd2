"""Jira issues as their webhook deliveries showed them: a delivery may stand in for a read.

A ``jira:issue_updated`` delivery carries the issue's fields as they were right
after the change (``issue.fields``, ``updated`` in milliseconds), and a comment event
the comment. When the worker reconciles an issue whose queued events are all at or
before such a delivery's ``updated``, the delivery's fields are as good as a
``getIssue`` (see :meth:`syncd.engine.Engine._reconcile_issue`); the comments come
from an older read plus the comments deliveries carried, and the poll checks their
number (:mod:`syncd.poll_stamps`), so a comment whose deliveries were all lost is
still found.

Per process (a delivery received by another replica is simply not here: the
worker reads), bounded, thread-safe. Nothing here is trusted for more than its
stamp says: the engine decides.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

MAX_COMMENTS = 20   # comments kept per issue: a burst of comments beyond that is read instead


@dataclass(frozen=True)
class IssueHint:
    """What one Jira delivery said of its issue. ``stamp``: when the change was made
    (epoch seconds, see :func:`syncd.webhook_payloads.jira_stamp`); ``issue``: the
    delivery's ``issue`` object when it carries its fields (issue events; comment events
    carry a partial issue without ``updated``), as of ``issue_stamp``; ``comment``: the
    comment it carried."""

    stamp: float
    issue: Mapping[str, Any] | None
    comment: Mapping[str, Any] | None
    issue_stamp: float | None = None   # the issue's own ``updated`` (a Server delivery's may be older)


@dataclass(frozen=True)
class Delivered:
    """All this process was told of one issue: the newest issue payload and its stamp,
    and the comments deliveries carried (newest last)."""

    stamp: float
    issue: Mapping[str, Any]
    comments: tuple[Mapping[str, Any], ...]


class IssueHints:
    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._issues: OrderedDict[str, tuple[float, Mapping[str, Any]]] = OrderedDict()
        self._comments: OrderedDict[str, tuple[Mapping[str, Any], ...]] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, issue_id: str, hint: IssueHint) -> None:
        with self._lock:
            if hint.issue is not None and hint.issue_stamp is not None:
                old = self._issues.get(issue_id)
                if old is None or old[0] <= hint.issue_stamp:
                    self._issues[issue_id] = (hint.issue_stamp, hint.issue)
                self._issues.move_to_end(issue_id)
            if hint.comment is not None:
                kept = tuple(c for c in self._comments.get(issue_id, ()) if c.get("id") != hint.comment.get("id"))
                self._comments[issue_id] = (kept + (hint.comment,))[-MAX_COMMENTS:]
                self._comments.move_to_end(issue_id)
            for entries in (self._issues, self._comments):
                while len(entries) > self.capacity:
                    entries.popitem(last=False)

    def delivered(self, issue_id: str) -> Delivered | None:
        """What deliveries said of the issue; None when none carried its fields."""
        with self._lock:
            found = self._issues.get(issue_id)
            if found is None:
                return None
            return Delivered(found[0], found[1], self._comments.get(issue_id, ()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._issues)
