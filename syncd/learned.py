"""What syncd learns about a vendor account by watching its answers, kept across restarts.

One fact so far: whether Zendesk's ``comment_count`` sideload counts internal notes
(:class:`syncd.connectors.zendesk.CommentCount`). No document or recording says, so
syncd learns it from the first listing of a ticket that has an internal note; until
then a poll's tickets cannot stand in for reads and every echo costs a read. A
restarted daemon starts from what the last one learned, per account.

Kept in the ``cursors`` table, one row per fact (a cursor is what it is: a value a
process resumes from), under a key that names the account by a digest of its URL,
so that pointing the configuration at another account starts over.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Protocol, Sequence

import structlog

from .domain import ItemRef

log = structlog.get_logger("syncd.learned")


class FactStore(Protocol):
    def get_cursor(self, source: str) -> str | None: ...
    def advance_cursor(self, source: str, cursor: str, refs: Sequence[ItemRef], fence: int | None = None) -> None: ...


class Learner(Protocol):
    on_change: Callable[[str], None] | None

    def recall(self, said: str | None) -> None: ...


def fact_key(vendor: str, fact: str, account_url: str) -> str:
    """The row of one fact of one account (fits the 64 characters of ``cursors.source``)."""
    account = hashlib.sha256(account_url.rstrip("/").encode()).hexdigest()[:16]
    return f"learned:{vendor}:{fact}:{account}"


def keep(store: FactStore, learner: Learner, key: str) -> None:
    """Start ``learner`` from what was written under ``key`` and write down what it learns."""
    learner.recall(store.get_cursor(key))

    def write(said: str) -> None:
        try:
            store.advance_cursor(key, said, [])
        except Exception as e:   # noqa: BLE001 - relearned after a restart; never fail the read that learned it
            log.warning("learned_fact_not_kept", fact=key, error=str(e))
        else:
            log.info("learned_fact", fact=key, value=said)

    learner.on_change = write
