"""The claim a worker thread holds, and the proof it still stands before a vendor write.

The vendors take no fencing token, so the check is ours: right before each
non-idempotent request (create an issue, post a comment or note) the connector's
call asks :func:`before_write`, which reads the holder's claim from the database
(its token still on the queue row, its lease not run out) and raises
:class:`ClaimLost` otherwise — nothing is sent. The claim is kept in a context
variable for the worker thread's reconcile (:func:`holding`), so the engine and
the connectors need no claim parameter on every method. Outside a claim (a CLI
command, a test calling the engine) nothing is checked.

What a check cannot prevent — a process frozen between its check and its
request — is found after the write by its marker and repaired (see the engine).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .errors import SyncdError
from .failpoints import failpoint
from .store_ports import Claim
from .unsent import request_leaving


class ClaimLost(SyncdError):
    """The claim this work ran under was taken by another holder (or its lease ran out):
    stop before writing; the item stays dirty for its current holder."""


@dataclass
class Fence:
    """One claim in hand: ``check`` asks the database whether it still stands."""

    claim: Claim
    check: Callable[[Claim], bool]
    lost: threading.Event = field(default_factory=threading.Event)   # set by the heartbeat on a failed renewal
    # Set by the worker once the reconcile is over and the claim is about to be settled
    # (completed, deferred, failed): from then on a renewal that finds the claim gone found
    # the worker's own settling, not another holder.
    settling: threading.Event = field(default_factory=threading.Event)

    def prove(self, what: str) -> None:
        if self.lost.is_set() or not self.check(self.claim):
            self.lost.set()
            raise ClaimLost(f"claim on {self.claim.ref} (token {self.claim.fence}) no longer held; not writing {what}")


_current: ContextVar[Fence | None] = ContextVar("syncd_claim", default=None)


@contextmanager
def holding(fence: Fence) -> Iterator[Fence]:
    token = _current.set(fence)
    try:
        yield fence
    finally:
        _current.reset(token)


def current_claim() -> Claim | None:
    fence = _current.get()
    return None if fence is None else fence.claim


def prove(what: str) -> None:
    """Raise :class:`ClaimLost` unless the current claim (if any) still stands."""
    fence = _current.get()
    if fence is not None:
        fence.prove(what)


def still_held() -> bool:
    """After a write: whether the claim it was made under still stands (True outside a claim).
    Only a writer whose claim was taken can have raced another one; it looks for a double."""
    fence = _current.get()
    if fence is None:
        return True
    try:
        fence.prove("(after the write)")
        return True
    except ClaimLost:
        return False


def before_write(vendor: str, operation: str) -> None:
    """Called by a connector right before it sends a non-idempotent request. The
    failpoint after the proof lets the crash tests freeze a process exactly in the
    window no check can close."""
    prove(f"{vendor} {operation}")
    failpoint("before_vendor_write", tag=operation)
    request_leaving()   # from here on the write may reach the vendor (see syncd.unsent)


__all__ = ["ClaimLost", "Fence", "before_write", "current_claim", "holding", "prove", "still_held"]
