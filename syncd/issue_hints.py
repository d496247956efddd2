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


MAX_BYTES = 8 * 2**20   # delivery bodies kept, all issues together (Python holds a few times that)


class IssueHints:
    """Bounded in issues and in the bytes of the deliveries it keeps: a count alone let
    a Cloud issue payload (5–10 KB of fields, seen in real deliveries, more with Server's
    comments) times 10,000 issues take hundreds of MB; the soak saw these hints fill as
    the largest growth of an hour. The least recently delivered issue goes first: its
    next reconcile reads it (one ``getIssue``)."""

    def __init__(self, capacity: int = 10_000, max_bytes: int = MAX_BYTES):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._issues: dict[str, tuple[float, Mapping[str, Any]]] = {}
        self._comments: dict[str, tuple[Mapping[str, Any], ...]] = {}
        # Per issue, least recently delivered first: its payload's bytes and each kept comment's.
        self._weights: OrderedDict[str, tuple[int, tuple[int, ...]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes_held(self) -> int:
        with self._lock:
            return self._bytes

    def note(self, issue_id: str, hint: IssueHint, size: int = 0) -> None:
        """Keep what ``hint`` showed of the issue; ``size``: the delivery's length in bytes,
        what this keeps of it is counted as that much."""
        shows_issue = hint.issue is not None and hint.issue_stamp is not None
        if not shows_issue and hint.comment is None:
            return
        with self._lock:
            issue_size, comment_sizes = self._weights.pop(issue_id, (0, ()))
            self._bytes -= issue_size + sum(comment_sizes)
            if shows_issue:
                old = self._issues.get(issue_id)
                if old is None or old[0] <= hint.issue_stamp:   # type: ignore[operator]
                    self._issues[issue_id] = (hint.issue_stamp, hint.issue)   # type: ignore[assignment]
                    issue_size = size
            if hint.comment is not None:
                kept = [(c, n) for c, n in zip(self._comments.get(issue_id, ()), comment_sizes)
                        if c.get("id") != hint.comment.get("id")]
                kept = (kept + [(hint.comment, size)])[-MAX_COMMENTS:]
                self._comments[issue_id] = tuple(c for c, _ in kept)
                comment_sizes = tuple(n for _, n in kept)
            self._weights[issue_id] = (issue_size, comment_sizes)
            self._bytes += issue_size + sum(comment_sizes)
            while self._weights and (len(self._weights) > self.capacity or self._bytes > self.max_bytes):
                gone, (a, b) = self._weights.popitem(last=False)
                self._bytes -= a + sum(b)
                self._issues.pop(gone, None)
                self._comments.pop(gone, None)

    def consumed(self, issue_id: str, comment_ids: set[object]) -> None:
        """These comments stood in for a read and are in the engine's copy of the issue now
        (or, if that reconcile fails, the copy is forgotten and the issue is read): keeping
        them too would only make the hints grow with every conversation."""
        with self._lock:
            held = self._comments.get(issue_id)
            if not held or issue_id not in self._weights:
                return
            issue_size, sizes = self._weights[issue_id]
            gone = {str(i) for i in comment_ids}     # a payload's id may be a number or a string
            kept = [(c, n) for c, n in zip(held, sizes) if str(c.get("id")) not in gone]
            self._bytes -= sum(sizes) - sum(n for _, n in kept)
            self._weights[issue_id] = (issue_size, tuple(n for _, n in kept))
            if kept:
                self._comments[issue_id] = tuple(c for c, _ in kept)
            else:
                del self._comments[issue_id]

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
