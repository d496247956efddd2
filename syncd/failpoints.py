"""Failpoints: kill the daemon abruptly at a named moment, to prove crash safety.

``SYNCD_FAILPOINTS="after_comment_post=2,mid_poll_page:jira"`` makes the process
SIGKILL itself the 2nd time it passes ``after_comment_post`` and the 1st time
it passes ``mid_poll_page`` tagged ``jira`` (a point may carry a tag — the poll
source — and a spec may name the point alone or ``point:tag``). SIGKILL, not an exception: no ``finally`` block,
no transaction rollback handler, no atexit hook may run — exactly what a power
cut or the OOM killer does.

``point=N@stop`` freezes the process instead (SIGSTOP to itself): a stalled VM,
a long GC pause, a laptop lid. The test resumes it with SIGCONT whenever it likes
— typically after its leases ran out and another worker took its claims.

The environment is read once, at import. Unset (every production run), a
failpoint is a call to a function that returns at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

ENV = "SYNCD_FAILPOINTS"

# Every point the code passes; a name outside this list in SYNCD_FAILPOINTS is a
# typo that would silently never fire, so parsing refuses it.
POINTS = (
    "after_delivery_stored",   # webhook stored + marked dirty, 2xx not yet sent
    "after_issue_create",      # Jira create returned, intent not yet finished
    "after_link_added",        # escalation's link stored, its note not yet recorded
    "after_comment_post",      # vendor comment made, intent not yet finished
    "after_note_post",         # desk note made, intent not yet finished
    "after_field_write",       # vendor fields written, base not yet stored
    "mid_poll_page",           # poll page fetched, cursor not yet advanced
    "during_migration",        # a migration step ran, its transaction not committed
    "before_vendor_write",     # claim proven current, non-idempotent request not yet sent (tag: operation)
    "http_starting",           # the HTTP server's thread started, not yet serving
)
ACTIONS = ("kill", "stop")


def parse(spec: str) -> dict[str, tuple[int, str]]:
    """``"a=2,b:x@stop"`` → ``{"a": (2, "kill"), "b:x": (1, "stop")}``: act at the Nth pass of each point."""
    armed: dict[str, tuple[int, str]] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        part, _, action = part.partition("@")
        action = action.strip() or "kill"
        name, _, count = part.partition("=")
        name = name.strip()
        if name.partition(":")[0] not in POINTS:
            raise ValueError(f"{ENV}: unknown failpoint {name!r} (known: {', '.join(POINTS)})")
        if action not in ACTIONS:
            raise ValueError(f"{ENV}: {name}: unknown action {action!r} (known: {', '.join(ACTIONS)})")
        n = int(count) if count.strip() else 1
        if n < 1:
            raise ValueError(f"{ENV}: {name} count must be ≥ 1, not {n}")
        armed[name] = (n, action)
    return armed


_ARMED: dict[str, tuple[int, str]] = parse(os.environ.get(ENV, ""))
_passes: dict[str, int] = {}
_lock = threading.Lock()


def failpoint(name: str, when: bool = True, tag: str = "") -> None:
    """Die here (SIGKILL to self) if ``name`` (or ``name:tag``) is armed and this is
    its Nth pass. ``when=False`` is no pass (an empty poll page has nothing to lose)."""
    if not _ARMED or not when:
        return
    _hit(name)
    if tag:
        _hit(f"{name}:{tag}")


def _hit(name: str) -> None:
    armed = _ARMED.get(name)
    if armed is None:
        return
    target, action = armed
    with _lock:
        _passes[name] = _passes.get(name, 0) + 1
        fire = _passes[name] == target
    if fire:
        # One plain line on stderr (no logging machinery: it may buffer) so the
        # harness can tell "died at the failpoint" from "crashed somewhere else".
        if action == "stop":
            sys.stderr.write(f"SYNCD_FAILPOINT_STOPPED {name} pass={target}\n")
            sys.stderr.flush()
            # To this thread, not the process: a process-directed signal may be taken by another
            # thread while this one runs on a little (and sends the very request it must not).
            # A stop taken by any thread freezes them all until SIGCONT.
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
            return
        sys.stderr.write(f"SYNCD_FAILPOINT_FIRED {name} pass={target}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENV", "POINTS", "failpoint", "parse"]
