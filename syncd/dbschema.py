"""The schema revisions shipped with this syncd (Alembic scripts in syncd/migrations),
read without touching any database: what ``db current`` compares against and
``db history`` lists, and what read-only commands require instead of migrating."""

from __future__ import annotations

from dataclasses import dataclass

from alembic.script import ScriptDirectory

from .store import alembic_config


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    doc: str
    is_head: bool


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "syncd ships at least one migration"
    return head


def history() -> list[Revision]:
    """Newest first."""
    heads = set(_scripts().get_heads())
    return [Revision(s.revision, s.down_revision if isinstance(s.down_revision, str) else None,
                     (s.doc or "").strip(), s.revision in heads)
            for s in _scripts().walk_revisions()]
