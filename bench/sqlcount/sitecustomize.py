"""Bench only (bench/throughput.py ``--count-sql``): put on a daemon's PYTHONPATH with
``SYNCD_SQL_COUNT_FILE`` set, this counts the store's transactions (by the Store method
that opened them, read or write) and the SQL statements the daemon runs, and writes them
as JSON to that file when the daemon exits. ``Store.complete`` calls stand for the
reconciles that finished, so the bench can say what one costs the database.

Counting costs CPU itself: a run with it measures transactions, not CPU.
Never shipped: syncd itself neither imports nor needs it."""

from __future__ import annotations

import atexit
import collections
import json
import os
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_PATH = os.environ.get("SYNCD_SQL_COUNT_FILE")

if _PATH:
    import sqlalchemy as sa
    from sqlalchemy import event

    import syncd.store as _store

    _lock = threading.Lock()
    _transactions: collections.Counter[str] = collections.Counter()
    _statements: collections.Counter[str] = collections.Counter()
    _opened = _store.Store._tx

    @contextmanager
    def _counted_tx(self: Any, write: bool = True) -> Iterator[Any]:
        caller = sys._getframe(2).f_code.co_name   # the Store method (contextmanager adds a frame)
        with _lock:
            _transactions[f"{caller} ({'write' if write else 'read'})"] += 1
        with _opened(self, write) as conn:
            yield conn

    _store.Store._tx = _counted_tx   # type: ignore[method-assign]

    @event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with _lock:
            _statements[" ".join(statement.split())[:80]] += 1

    @atexit.register
    def _write() -> None:
        with _lock:
            doc = {"transactions": dict(_transactions), "statements": dict(_statements)}
        with open(_PATH, "w") as fh:
            json.dump(doc, fh, indent=1)
