"""Where each ``syncd links import`` source stopped, and what it found so far.

One row per source (``import_progress``, migration 0004). A run stores the
position after each page it finished, so a run cut short (Ctrl-C, a crash, a
``--max-pages`` budget) carries on from the next page; a source read to its
end starts again from its first page, since new hand-kept links may have
appeared since. Links themselves are stored with :meth:`Store.add_link`,
whose unique constraint makes a page read twice harmless (its links come back
as "already linked").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sqlalchemy as sa

from .schema import import_progress, insert_for
from .store import Store


@dataclass(frozen=True)
class Progress:
    source: str
    cursor: str | None     # where the next page starts; None: the first page
    done: bool
    imported: int = 0
    skipped: int = 0
    wrong: int = 0
    started_at: float = 0.0

    def after_page(self, cursor: str | None, done: bool, imported: int, skipped: int, wrong: int) -> "Progress":
        return replace(self, cursor=cursor, done=done, imported=self.imported + imported,
                       skipped=self.skipped + skipped, wrong=self.wrong + wrong)


def fresh(source: str, now: float) -> Progress:
    return Progress(source, None, False, started_at=now)


def load(store: Store, source: str) -> Progress | None:
    c = import_progress.c
    with store.transaction() as conn:
        row = conn.execute(sa.select(import_progress).where(c.source == source)).first()
    if row is None:
        return None
    return Progress(row.source, row.cursor, bool(row.done), row.imported, row.skipped, row.wrong, row.started_at)


def save(store: Store, progress: Progress) -> None:
    c = import_progress.c
    values = {"source": progress.source, "cursor": progress.cursor, "done": progress.done,
              "imported": progress.imported, "skipped": progress.skipped, "wrong": progress.wrong,
              "started_at": progress.started_at, "updated_at": store.clock()}
    with store.transaction() as conn:
        stmt = insert_for(conn, import_progress).values(**values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[c.source], set_={k: v for k, v in values.items() if k != "source"}))


def all_progress(store: Store) -> list[Progress]:
    with store.transaction() as conn:
        rows = conn.execute(sa.select(import_progress).order_by(import_progress.c.source)).all()
    return [Progress(r.source, r.cursor, bool(r.done), r.imported, r.skipped, r.wrong, r.started_at) for r in rows]
