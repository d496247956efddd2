"""What one reconcile did (or, in a dry run, would do), and the waits it may end in.

Shared by the engine's parts (:mod:`syncd.engine` and the modules it is built from);
the worker reads :class:`EscalationPending` to defer an item briefly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .domain import ItemRef, Link, Side, Value
from .errors import Transient
from .reconcile import Plan

__all__ = ["EscalationPending", "IntentSettling", "Outcome", "Write", "describe", "excerpt", "show"]


@dataclass(frozen=True)
class Write:
    """One write the engine made (or, in a dry run, would make)."""

    target: str        # item ref or issue key
    what: str          # field:<locator> | comment | note | create | link
    detail: str
    # For the link's history (syncd.history): the link, the value replaced, why, and the
    # comment mirrored (source id, or a note's intent key) with the id it got on the target.
    link: int | None = None
    old: str | None = None
    why: str | None = None
    source: str | None = None
    mirrored: str | None = None


@dataclass
class Outcome:
    ref: ItemRef
    writes: list[Write] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    # The reconciled item's links as the pass left them, for its history entries (None:
    # the pass did not get that far; the history looks them up).
    links: tuple[Link, ...] | None = None


class EscalationPending(Transient):
    """A create was started (intent recorded) but the issue is not findable yet:
    Jira search is eventually consistent, so wait rather than create twice."""


class IntentSettling(EscalationPending):
    """A comment or note may be in flight (its call timed out, or the process died
    mid-call) and is not visible yet: wait before writing it again."""


def show(value: Value) -> str:
    if isinstance(value, tuple):
        return ", ".join(value)
    return "∅" if value is None else value


def excerpt(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def describe(p: Plan, link: Link, outcome: Outcome) -> None:
    """A dry run's writes: what carrying out ``p`` would write."""
    for w in p.field_writes:
        target = link.issue_key if w.side is Side.TRACKER else str(link.desk)
        outcome.writes.append(Write(target, f"field:{w.locator}", show(w.value)))
    for cw in p.comment_writes:
        target = link.issue_key if cw.side is Side.TRACKER else str(link.desk)
        outcome.writes.append(Write(target, "comment", excerpt(cw.body)))
    for n in p.notes:
        outcome.writes.append(Write(str(link.desk), "note", excerpt(n.body)))
