"""An in-memory implementation of the engine's store port, with inspectable state.

For unit tests of :class:`syncd.engine.Engine` (no database, no HTTP): it keeps
the same promises as :class:`syncd.store.Store` on the operations the engine uses
— an intent is owned only by the call that recorded or took it over, a base is
written only over the revision it was read at, a link is unique per pair — and
``tests/store/test_engine_port.py`` holds both implementations to them. The
state is plain attributes and a few read-only views, so a test can see what the
engine recorded and can set up what an earlier, crashed attempt left behind.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from .domain import BaseEntry, ItemRef, Link
from .store_ports import Claim
from .store_ports import Begun, Intent, Linked, LinkNotFound, LinkState, StaleBase, StoreError

__all__ = ["AuditEntry", "DirtyMark", "MemoryStore"]


@dataclass(frozen=True)
class DirtyMark:
    """One ``mark_dirty`` call, as the engine made it."""

    ref: ItemRef
    reason: str
    delay: float


@dataclass(frozen=True)
class AuditEntry:
    event: str
    link_id: int | None
    detail: Mapping[str, Any]


class MemoryStore:
    """Implements :class:`syncd.store_ports.EngineStore`."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.links: dict[int, Link] = {}
        self.bases: dict[int, tuple[dict[str, BaseEntry], int]] = {}
        self.intents: dict[str, Intent] = {}
        self.marks: list[DirtyMark] = []
        self.audits: list[AuditEntry] = []
        self._next_link = 1
        self._lock = threading.Lock()   # the engine runs on several worker threads

    # -- links -----------------------------------------------------------------
    def add_link(self, desk: ItemRef, issue_id: str, issue_key: str) -> Link:
        with self._lock:
            for link in self.links.values():
                if link.desk == desk and link.issue_id == issue_id:
                    return link
            link = Link(self._next_link, desk, issue_id, issue_key, self._now())
            self.links[link.id] = link
            self._next_link += 1
            return link

    def remove_link(self, desk: ItemRef, issue_id: str) -> bool:
        with self._lock:
            gone = [l for l in self.links.values() if l.desk == desk and l.issue_id == issue_id]
            for link in gone:
                del self.links[link.id]
                self.bases.pop(link.id, None)
                # As in the database: an intent outlives its link, or a retry could write twice.
                for key, intent in self.intents.items():
                    if intent.link_id == link.id:
                        self.intents[key] = replace(intent, link_id=None)
            return bool(gone)

    def links_for_desk(self, desk: ItemRef) -> list[Link]:
        with self._lock:
            return [l for l in self._sorted_links() if l.desk == desk]

    def links_for_issue(self, issue_id: str) -> list[Link]:
        with self._lock:
            return [l for l in self._sorted_links() if l.issue_id == issue_id]

    def linked(self, ref: ItemRef) -> Linked:
        with self._lock:
            found = tuple(l for l in self._sorted_links() if (l.desk == ref if ref.is_desk else l.issue_id == ref.id))
            return Linked(found, {l.id: self.bases.get(l.id, ({}, 0))[1] for l in found})

    def update_issue_key(self, issue_id: str, key: str) -> None:
        with self._lock:
            for link in list(self.links.values()):
                if link.issue_id == issue_id:
                    self.links[link.id] = replace(link, issue_key=key)

    # -- bases -----------------------------------------------------------------
    def revisions(self, link_ids: Sequence[int]) -> dict[int, int]:
        with self._lock:
            return {i: self.bases.get(i, ({}, 0))[1] for i in link_ids}

    def link_state(self, link_id: int, extra_keys: Sequence[str] = ()) -> LinkState:
        with self._lock:
            base, revision = self.bases.get(link_id, ({}, 0))
            found = [i for i in self.intents.values() if i.link_id == link_id or i.key in extra_keys]
            found.sort(key=lambda i: (i.created_at, i.key))
            return LinkState(dict(base), revision, tuple(found))

    def put_base(self, link_id: int, base: Mapping[str, BaseEntry], expected_revision: int) -> int:
        with self._lock:
            if link_id not in self.links:
                raise LinkNotFound(f"link {link_id} does not exist")
            if self.bases.get(link_id, ({}, 0))[1] != expected_revision:
                raise StaleBase(f"link {link_id}: base moved past revision {expected_revision}")
            self.bases[link_id] = (dict(base), expected_revision + 1)
            return expected_revision + 1

    # -- intents ---------------------------------------------------------------
    def begin_intent(self, key: str, kind: str, link_id: int | None = None, payload: Mapping | None = None,
                     claim: Claim | None = None) -> Begun:
        with self._lock:
            if key in self.intents:
                return Begun(self.intents[key], False)
            intent = Intent(key, kind, "pending", None, link_id, None if payload is None else dict(payload),
                            self._now(), *_owner(claim))
            self.intents[key] = intent
            return Begun(intent, True)

    def take_intent(self, seen: Intent, claim: Claim | None) -> bool:
        with self._lock:
            now = self.intents.get(seen.key)
            if now is None or now.state != "pending" or (now.claim_ref, now.claim_fence) != (seen.claim_ref,
                                                                                              seen.claim_fence):
                return False
            ref, fence = _owner(claim)
            self.intents[seen.key] = replace(now, claim_ref=ref, claim_fence=fence, created_at=self._now())
            return True

    def drop_intent(self, key: str, claim: Claim | None = None) -> bool:
        with self._lock:
            intent = self.intents.get(key)
            if intent is None or intent.state != "pending":
                return False
            if claim is not None and not intent.owned_by(claim):
                return False
            del self.intents[key]
            return True

    def finish_intent(self, key: str, result: str) -> None:
        with self._lock:
            if key not in self.intents:
                raise StoreError(f"no intent {key!r} to finish")
            self.intents[key] = replace(self.intents[key], state="done", result=result)

    def get_intent(self, key: str) -> Intent | None:
        with self._lock:
            return self.intents.get(key)

    # -- notices ---------------------------------------------------------------
    def mark_dirty(self, refs: Iterable[ItemRef], reason: str, delay: float = 0.0) -> None:
        with self._lock:
            self.marks.extend(DirtyMark(ref, reason, delay) for ref in sorted(set(refs)))

    def audit(self, event: str, link_id: int | None = None, **detail: Any) -> None:
        with self._lock:
            self.audits.append(AuditEntry(event, link_id, detail))

    # -- inspection ------------------------------------------------------------
    def pending_intents(self) -> list[str]:
        """Keys of the intents recorded and not finished, oldest first (as :class:`syncd.store.Store`)."""
        with self._lock:
            return [i.key for i in sorted(self.intents.values(), key=lambda i: (i.created_at, i.key))
                    if i.state == "pending"]

    def dirty_refs(self, reason: str | None = None) -> set[ItemRef]:
        """Every item marked dirty (for ``reason`` alone, when given)."""
        with self._lock:
            return {m.ref for m in self.marks if reason is None or m.reason == reason}

    def backdate_intent(self, key: str, seconds: float) -> None:
        """Make an intent look recorded ``seconds`` earlier (a test's way to be past a settle window)."""
        with self._lock:
            intent = self.intents[key]
            when = datetime.fromtimestamp(intent.created_at.timestamp() - seconds, timezone.utc)
            self.intents[key] = replace(intent, created_at=when)

    def _sorted_links(self) -> list[Link]:
        return [self.links[i] for i in sorted(self.links)]

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)


def _owner(claim: Claim | None) -> tuple[str | None, int | None]:
    return (None, None) if claim is None else (str(claim.ref), claim.fence)
