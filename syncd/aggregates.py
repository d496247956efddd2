"""The issue's aggregates: what all its linked desk items add up to (how many are
linked, how many organizations, the earliest SLA due date), written to Jira fields
the mapping names. These fields are syncd's alone, outside the base: they are
computed afresh on every reconcile of the issue and written only when they differ.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping as TMapping, Sequence

from .domain import DeskItem, Link, Side, TrackerIssue, Value
from .field_writes import FieldWriter
from .mapping import Mapping
from .outcome import Outcome, Write, show
from .snapshots import SnapshotCache

JIRA_TIME = "%Y-%m-%dT%H:%M:%S.000+0000"


def aggregate_values(mapping: Mapping, items: Sequence[DeskItem]) -> dict[str, Value]:
    """The aggregate fields' values for an issue with these linked desk items."""
    values: dict[str, Value] = {}
    if mapping.linked_count_field:
        values[mapping.linked_count_field] = str(len(items))
    if mapping.linked_orgs_field:
        values[mapping.linked_orgs_field] = str(len({i.organization for i in items if i.organization}))
    if mapping.sla_field:
        dues = sorted(i.due_at for i in items if i.due_at is not None)
        values[mapping.sla_field] = dues[0].strftime(JIRA_TIME) if dues else None
    return values


class Aggregates:
    def __init__(self, mappings: TMapping[str, Mapping], fields: FieldWriter, snapshots: SnapshotCache):
        self.mappings = mappings
        self.fields = fields
        self.snapshots = snapshots

    def refresh(self, issue: TrackerIssue, links: Sequence[Link], items: Sequence[DeskItem],
                outcome: Outcome, dry_run: bool = False) -> None:
        if not items:
            return
        values = aggregate_values(self.mappings[items[0].ref.system], items)
        changed = {k: v for k, v in values.items() if issue.fields.get(k) != v}
        if changed and dry_run:   # `syncd plan` shows what `resync` writes, aggregates included
            outcome.writes.extend(Write(issue.key, f"field:{k}", show(v)) for k, v in changed.items())
            return
        if not changed:
            return
        failed = {f.locator for f in self.fields.write(Side.TRACKER, issue.ref, issue.key, changed, outcome)}
        written = {k: v for k, v in changed.items() if k not in failed}
        # Keep the remembered issue in step: the next desk-side change then needs no read of the issue.
        for link in links:
            if failed:
                self.snapshots.drop(link.id, Side.TRACKER)
            else:
                self.snapshots.patch(link.id, Side.TRACKER,
                                     lambda seen: replace(seen, fields={**seen.fields, **written}))
