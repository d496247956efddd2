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
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

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


MAX_BYTES = 8 * 2**20   # delivery bodies kept, all issues together (Python holds a few times that)


@dataclass(frozen=True)
class _Held:
    """What is kept of one issue: the newest payload that showed its fields (with its
    stamp) and the comments deliveries carried, each with the bytes it is counted as."""

    payload: tuple[float, Mapping[str, Any]] | None = None
    payload_size: int = 0
    comments: tuple[tuple[Mapping[str, Any], int], ...] = ()

    @property
    def size(self) -> int:
        return self.payload_size + sum(n for _, n in self.comments)

    def without(self, ids: set[str]) -> "_Held":
        """The same with the comments of these ids left out (a payload's id may be a number)."""
        return replace(self, comments=tuple((c, n) for c, n in self.comments if str(c.get("id")) not in ids))


class IssueHints:
    """Bounded in issues and in the bytes of the deliveries it keeps: a count alone let
    a Cloud issue payload (5–10 KB of fields, seen in real deliveries, more with Server's
    comments) times 10,000 issues take hundreds of MB; the soak saw these hints fill as
    the largest growth of an hour. The least recently delivered issue goes first: its
    next reconcile reads it (one ``getIssue``)."""

    def __init__(self, capacity: int = 10_000, max_bytes: int = MAX_BYTES):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._held: OrderedDict[str, _Held] = OrderedDict()   # least recently delivered first
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes_held(self) -> int:
        with self._lock:
            return self._bytes

    def _put(self, issue_id: str, held: _Held) -> None:
        """Replace the issue's entry (the caller holds the lock and popped the old one)."""
        self._held[issue_id] = held
        self._bytes += held.size

    def note(self, issue_id: str, hint: IssueHint, size: int = 0) -> None:
        """Keep what ``hint`` showed of the issue; ``size``: the delivery's length in bytes,
        what this keeps of it is counted as that much."""
        shows_issue = hint.issue is not None and hint.issue_stamp is not None
        if not shows_issue and hint.comment is None:
            return
        with self._lock:
            held = self._held.pop(issue_id, _Held())
            self._bytes -= held.size
            if shows_issue and (held.payload is None or held.payload[0] <= hint.issue_stamp):  # type: ignore[operator]
                held = replace(held, payload=(hint.issue_stamp, hint.issue), payload_size=size)
            if hint.comment is not None:
                held = held.without({str(hint.comment.get("id"))})
                held = replace(held, comments=(held.comments + ((hint.comment, size),))[-MAX_COMMENTS:])
            self._put(issue_id, held)
            while self._held and (len(self._held) > self.capacity or self._bytes > self.max_bytes):
                self._bytes -= self._held.popitem(last=False)[1].size

    def consumed(self, issue_id: str, comment_ids: Iterable[object]) -> None:
        """A pass over the issue finished with these comments in its copy of the issue
        (a read showed them, or they stood in for one): keeping them too would only make
        the hints grow with every conversation. Called once the pass has finished, never
        before: a pass that fails is retried from the same deliveries."""
        with self._lock:
            held = self._held.get(issue_id)
            if held is None or not held.comments:
                return
            self._bytes -= held.size
            held = held.without({str(i) for i in comment_ids})
            self._held[issue_id] = held       # keeps its place: a read is not a delivery
            self._bytes += held.size

    def delivered(self, issue_id: str) -> Delivered | None:
        """What deliveries said of the issue; None when none carried its fields."""
        with self._lock:
            held = self._held.get(issue_id)
            if held is None or held.payload is None:
                return None
            return Delivered(held.payload[0], held.payload[1], tuple(c for c, _ in held.comments))

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for h in self._held.values() if h.payload is not None)
