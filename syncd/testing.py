"""Helpers for tests and benchmarks that drive a whole simulated installation
(:func:`syncd.sim.world.build_world` + :class:`syncd.runtime.App`)."""

from __future__ import annotations

import io
import json
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from .demo import Observer, wait_for
from .logs import configure_logging
from .runtime import App
from .sim.world import World


def quiet(world: World, app: App, settle: float = 0.3) -> None:
    """Webhooks delivered, queue empty and no worker busy — and still so after
    ``settle`` seconds, so that a write which should *not* happen had its chance."""
    for sim in (world.zendesk, world.jira, world.intercom):
        sim.webhooks.flush()
    idle = lambda: app.store.queue_depth() == 0 and app.workers.busy == 0  # noqa: E731
    assert wait_for(idle, timeout=15), "the queue never drained"
    time.sleep(settle)
    assert wait_for(idle, timeout=15), "the queue never drained"


@contextmanager
def captured_logs(level: str = "info") -> Iterator[io.StringIO]:
    """Everything syncd logs meanwhile, as JSON lines."""
    buf = io.StringIO()
    configure_logging(level, "json", stream=buf)
    try:
        yield buf
    finally:
        configure_logging("warning", "json", stream=sys.stderr)


def log_events(buf: io.StringIO, name: str) -> list[dict]:
    """The JSON log lines of ``buf`` (see :func:`captured_logs`) whose event is ``name``."""
    found = []
    for line in buf.getvalue().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == name:
            found.append(doc)
    return found


def ticket_key(look: Observer, world: World, ticket: int) -> str | None:
    """The key the ticket's "Jira issue" field shows, once that issue exists."""
    key = look.ticket(ticket).fields.get(f"custom:{world.field_id(9001)}")
    return key if isinstance(key, str) and look.issue(key) is not None else None


def ticket_notes(look: Observer, ticket: int) -> list[str]:
    return [c.body for c in look.ticket(ticket).comments if not c.public]
