"""Links in sync, and drift seeded on some of them: what the drift-audit tests
(tests/cli/test_fleet_audit.py) and benchmark (bench/fleet_scale.py) share.

A simulated person makes each change through the simulators' own actors, as in
every other test; the links are stored as an import would store them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .domain import ItemRef
from .sandbox import World
from .store import Store

DRIFT_KINDS = ("field", "comment_to_jira", "comment_to_desk", "key")
# What the audit reports of a link seeded with each kind: {(kind, side, what)}.
EXPECTED = {
    "field": frozenset({("field", "jira", "field:customfield_10050")}),
    "comment_to_jira": frozenset({("comment", "jira", "comment")}),
    "comment_to_desk": frozenset({("comment", "desk", "comment")}),
    "key": frozenset({("key", "syncd", "key")}),
}


@dataclass(frozen=True)
class Pair:
    ticket: int
    issue_id: str
    key: str

    @property
    def desk(self) -> str:
        return f"zendesk:{self.ticket}"


def seed_pairs(world: World, n: int, on_progress: Callable[[int], None] = lambda done: None) -> list[Pair]:
    """Tickets and issues that agree on every mapped field, so that what a reconcile
    of a new link between them would write is nothing: the key field, the linked
    tag, the priority, the desk status shown on the issue, the issue's aggregates
    (one ticket, one organization)."""
    z, j = world.zendesk, world.jira
    key_field, status_field = world.field_id(9001), world.field_id(9002)
    out = []
    for i in range(n):
        key = j.engineer_create("SUP", f"Fleet issue {i}", customfield_10055="new", customfield_10051=1,
                                customfield_10054=1)
        ticket = z.create_ticket(f"Fleet ticket {i}", "It broke.", tags=["jira_linked"], priority="normal",
                                 custom_fields={key_field: key, status_field: "To Do"})
        out.append(Pair(ticket, str(j.issue(key).id), key))
        on_progress(i + 1)
    return out


def link_pairs(store: Store, pairs: Sequence[Pair]) -> None:
    """Store the links, more than a second (the history rule's slack) after the tickets'
    first comments: those are history, not comments to mirror."""
    time.sleep(2.5)
    for p in pairs:
        store.add_link(ItemRef("zendesk", str(p.ticket)), p.issue_id, p.key)


def seed_drift(world: World, pairs: Sequence[Pair], per_kind: int) -> dict[str, str]:
    """``per_kind`` links of each kind of drift, spread over ``pairs``: a field an agent
    changed (to copy to Jira), a customer reply not mirrored (missing on Jira), an
    engineer's comment not mirrored (missing on the desk), an issue moved to another
    project (the key syncd stores is stale). Returns desk ref -> kind."""
    z, j = world.zendesk, world.jira
    wanted = per_kind * len(DRIFT_KINDS)
    if wanted > len(pairs):
        raise ValueError(f"{wanted} drifted links asked of {len(pairs)} links")
    chosen = pairs[::max(1, len(pairs) // wanted)][:wanted]
    seeded: dict[str, str] = {}
    for n, p in enumerate(chosen):
        kind = DRIFT_KINDS[n % len(DRIFT_KINDS)]
        if kind == "field":
            z.agent_set(p.ticket, custom_fields={world.field_id(9006): f"Every EU customer ({n})"})
        elif kind == "comment_to_jira":
            z.customer_reply(p.ticket, f"Any news? ({n})")
        elif kind == "comment_to_desk":
            j.engineer_comment(p.key, f"Root cause found ({n})")
        else:
            j.move_issue(p.key, "ENG")
        seeded[p.desk] = kind
    return seeded


def reported_drift(report: dict) -> dict[str, frozenset[tuple[str, str, str]]]:
    """From ``reconcile --dry-run --json``: desk ref (or ``issue KEY`` for drift of an
    issue with several links) -> {(kind, side, what)}."""
    found: dict[str, set[tuple[str, str, str]]] = {}
    for issue in report["drifted"]:
        for l in issue["links"]:
            if l["drift"]:
                found.setdefault(l["desk"], set()).update((d["kind"], d["side"], d["what"]) for d in l["drift"])
        for d in issue["issue_drift"]:
            found.setdefault(f"issue {issue['issue_key']}", set()).add((d["kind"], d["side"], d["what"]))
    return {k: frozenset(v) for k, v in found.items()}


def mismatches(seeded: dict[str, str], report: dict) -> tuple[dict, dict]:
    """(seeded links reported wrongly or not at all, links reported that were not seeded)."""
    found = reported_drift(report)
    missed = {d: (EXPECTED[k], found.get(d)) for d, k in seeded.items() if found.get(d) != EXPECTED[k]}
    extra = {d: v for d, v in found.items() if d not in seeded}
    return missed, extra
