"""Field writes to either side: the one place that writes fields, logs the refusals and
records the writes in the reconcile's :class:`~syncd.outcome.Outcome`.

Field writes are set-values, so repeating one is harmless and needs no intent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping as TMapping, Sequence

import structlog

from .connectors.base import DeskConnector, DeskWrite, FieldFailure, TrackerConnector
from .domain import ItemRef, Side, Value
from .failpoints import failpoint
from .metrics import METRICS
from .outcome import Outcome, Write, show

log = structlog.get_logger("syncd.engine")   # one logger for all of the engine's parts, as before the split


class FieldWriter:
    def __init__(self, desks: TMapping[str, DeskConnector], tracker: TrackerConnector):
        self.desks = desks
        self.tracker = tracker

    def conditional(self, ref: ItemRef) -> bool:
        """Whether the item's desk refuses a write planned from an outdated copy."""
        return self.desks[ref.system].conditional_writes

    def stamp_after_write(self, ref: ItemRef) -> datetime | None:
        """The item's ``updated_at`` right after syncd's last field write, where the desk tells."""
        return self.desks[ref.system].written_stamp(ref)

    def write(self, side: Side, ref: ItemRef, key: str | None, values: dict[str, Value],
              outcome: Outcome, expect: datetime | None = None) -> Sequence[FieldFailure]:
        """``expect``: the desk item's ``updated_at`` the values were planned from; a desk
        with conditional writes refuses them (Conflict) if the item changed since."""
        if side is Side.DESK:
            desk = self.desks[ref.system]
            if expect is not None and self.conditional(ref):
                failures = desk.update_fields(ref, values, expect=expect)
            else:
                failures = desk.update_fields(ref, values)
        else:
            failures = self.tracker.update_fields(ref.id, values)
        failpoint("after_field_write")
        self._record(ref, key, values, failures, outcome)
        return failures

    def write_with_comment(self, ref: ItemRef, values: dict[str, Value], body: str, public: bool,
                           outcome: Outcome, expect: datetime | None = None) -> DeskWrite:
        """Desk fields and one comment in one request (one write per item per reconcile);
        the caller holds the comment's intent. ``expect`` as in :meth:`write`."""
        desk = self.desks[ref.system]
        written = desk.update_with_comment(ref, values, body, public,
                                           expect=expect if self.conditional(ref) else None)
        failpoint("after_field_write")
        self._record(ref, None, values, written.failures, outcome)
        return written

    @staticmethod
    def _record(ref: ItemRef, key: str | None, values: TMapping[str, Value], failures: Sequence[FieldFailure],
                outcome: Outcome) -> None:
        failed = {f.locator for f in failures}
        for f in failures:
            log.warning("field_write_failed", target=str(ref), locator=f.locator, reason=f.reason)
            outcome.decisions.append(f"{f.locator}: refused: {f.reason}")
        for locator, value in values.items():
            if locator not in failed:
                outcome.writes.append(Write(key or str(ref), f"field:{locator}", show(value)))
        METRICS.inc("field_writes", len(values) - len(failed))
