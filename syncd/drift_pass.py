"""One drift-audit pass over many links (``syncd reconcile --dry-run``): the issues in
ascending id order, a chunk at a time, several issues of a chunk audited at once,
the position and findings stored after each chunk (:mod:`syncd.audit_progress`).

Why several at once: an issue's audit is a few reads made one after another, each
a vendor round trip (50-300 ms). One at a time, 10,000 links take an hour of
waiting on the network however large the budget; the budget, not the latency,
should decide how fast an audit goes. The reads still go through the connectors'
shared budget, so more threads never mean more than the account allows.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import audit_progress, drift
from .audit_progress import AuditPass
from .domain import Link

CHUNK = 50


@dataclass(frozen=True)
class PassReport:
    progress: AuditPass
    issues: int                     # issues of the selection (all runs)
    audited_now: int                # issues this run audited
    findings: tuple[dict[str, Any], ...]   # the pass's drifted or unreadable issues, all runs

    @property
    def drifted(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if not f.get("error")]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f.get("error")]


def run(engine: Any, links: Sequence[Link], scope: str, *, restart: bool = False, threads: int = 8,
        chunk: int = CHUNK, clock: Callable[[], float] = time.time,
        on_issue: Callable[[drift.IssueAudit, int, int], None] = lambda a, done, total: None) -> PassReport:
    """Audit the issues of ``links`` not audited yet in the current pass of ``scope``."""
    store = engine.store
    progress = audit_progress.begin(store, scope, restart, clock())
    groups = drift.by_issue(links)
    order = sorted(groups, key=int)
    todo = [i for i in order if progress.cursor is None or int(i) > progress.cursor]
    done = len(order) - len(todo)
    pool = cf.ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="audit")
    try:
        # Every issue is handed to the pool at once, so no thread idles while a chunk's
        # slowest issue finishes; the answers come back in order, and each full chunk
        # of them is stored as one step of progress.
        answers = pool.map(lambda i: drift.audit_issue(engine, i, groups[i]), todo)
        for lo in range(0, len(todo), chunk):
            ids = todo[lo:lo + chunk]
            audits = [next(answers) for _ in ids]
            for a in audits:
                done += 1
                on_issue(a, done, len(order))
            found = [(int(i), a.doc()) for i, a in zip(ids, audits) if a.drifted or a.error]
            progress = audit_progress.record(store, progress, int(ids[-1]), len(ids), found, clock())
    finally:
        # Ctrl-C: what is in flight is dropped (its chunk is audited again on the next run).
        pool.shutdown(wait=False, cancel_futures=True)
    progress = audit_progress.finish(store, progress, clock())
    return PassReport(progress, len(order), len(todo), tuple(audit_progress.findings(store, scope)))
