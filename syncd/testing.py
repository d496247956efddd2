"""The helpers that tests, benchmarks and ``syncd demo`` share, in one place.

Waiting (three semantics, each named for what it does):

* :func:`wait_for` -- poll until ``check`` returns something truthy and return
  it, or ``None`` on timeout; a :class:`LookupError` from ``check`` (the thing
  looked up does not exist yet) counts as "not yet";
* :func:`wait_for_strict` -- the same, but any exception from ``check``
  propagates at once (the crash harness: a check that raises is a bug);
* :func:`assert_eventually` -- poll a condition; :class:`AssertionError` on timeout.

Looking and acting as people would: :class:`Observer` reads both sides over
HTTP with syncd's own connectors, built by :mod:`syncd.wiring` from the world's
config; :class:`Teammate` is a human Intercom admin.
A running installation (:func:`syncd.sandbox.build_world` + :class:`syncd.runtime.App`):
:func:`quiet`, :func:`captured_logs`, :func:`log_events`, :func:`ticket_key`, :func:`ticket_notes`.

The runtime and the connectors are imported only where used (type hints and
inside :class:`Observer`), so importing this module stays light and cannot
close an import cycle through ``syncd.runtime``.
"""

from __future__ import annotations

import io
import json
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from .domain import DeskItem, ItemRef, TrackerIssue
from .logs import configure_logging

if TYPE_CHECKING:
    from .runtime import App
    from .sandbox import World

WAIT_TIMEOUT = 20.0


def wait_for(check: Callable[[], object], timeout: float = WAIT_TIMEOUT, every: float = 0.05) -> object:
    """Poll ``check`` until it returns something truthy; return it (or None on timeout).
    A :class:`LookupError` (KeyError, IndexError, ...) from ``check`` counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except LookupError:
            value = None
        if value:
            return value
        time.sleep(every)
    return None


def wait_for_strict(check: Callable[[], object], timeout: float = WAIT_TIMEOUT, every: float = 0.05) -> object:
    """Like :func:`wait_for`, but an exception from ``check`` propagates at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    return None


def assert_eventually(cond: Callable[[], bool], timeout: float = 5.0, every: float = 0.01) -> None:
    """Poll ``cond`` until it holds; :class:`AssertionError` when it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError("condition not met in time")


class Observer:
    """Reads both sides over HTTP with syncd's own connectors, as a person looking at the UIs would."""

    def __init__(self, world: World):
        from .wiring import Clients
        # Built as syncd builds its own (the world's config: accounts, timeout), but not paced
        # by syncd's budgets: a person looking does not wait for the daemon's rate.
        # Intercom as syncd's own admin, so ``by_integration`` tells syncd's parts apart.
        clients = Clients.unpaced(world.settings())
        self.zendesk = clients.zendesk()
        self.jira = clients.jira()
        self.intercom = clients.intercom()

    def ticket(self, ticket_id: int) -> DeskItem:
        item = self.zendesk.fetch(ItemRef("zendesk", str(ticket_id)))
        assert item is not None
        return item

    def issue(self, key: str) -> TrackerIssue | None:
        return self.jira.resolve_key(key)

    def ticket_has(self, ticket_id: int, text: str, public: bool) -> bool:
        return any(text in c.body and c.public == public for c in self.ticket(ticket_id).comments)

    def issue_has(self, key: str, text: str) -> bool:
        issue = self.issue(key)
        return issue is not None and any(text in c.body for c in issue.comments)

    def issue_description(self, key: str) -> str:
        return str(self.jira.client.issue(key, fields="description").fields.description or "")

    def remote_links(self, key: str) -> list[str]:
        return [link.object.url for link in self.jira.client.remote_links(key)]

    def intercom_item(self, ref: ItemRef) -> DeskItem:
        item = self.intercom.fetch(ref)
        assert item is not None
        return item

    def conversation(self, conv_id: str) -> DeskItem:
        return self.intercom_item(ItemRef("intercom:conversation", conv_id))

    def intercom_ticket(self, ticket_id: str) -> DeskItem:
        return self.intercom_item(ItemRef("intercom:ticket", ticket_id))

    def intercom_has(self, ref: ItemRef, text: str, public: bool) -> bool:
        return any(text in c.body and c.public == public for c in self.intercom_item(ref).comments)

    def intercom_key(self, ref: ItemRef) -> str | None:
        """The key syncd wrote into the item's ``jira_issue`` attribute, once that issue exists."""
        key = self.intercom_item(ref).fields.get("attr:jira_issue")
        return key if isinstance(key, str) and self.issue(key) is not None else None

    def intercom_parts(self, ref: ItemRef, text: str) -> list:
        """The comments/notes of the item containing ``text``."""
        return [c for c in self.intercom_item(ref).comments if text in c.body]


class Teammate:
    """A human Intercom teammate (the workspace's second admin, not syncd's)
    acting through Intercom's REST API, as the inbox UI would."""

    def __init__(self, world: World):
        from intercom import Intercom
        ic = world.intercom.describe()
        self.admin_id = str(ic["admins"][1]["id"])
        self.client = Intercom(token=ic["token"], base_url=world.intercom.base_url,
                               headers={"Intercom-Version": ic["api_version"]})

    def tag(self, conv_id: str, name: str) -> None:
        tag = self.client.tags.create(request={"name": name})
        self.client.tags.tag_conversation(conv_id, tag_id=str(tag.id), admin_id=self.admin_id)

    def set_attributes(self, conv_id: str, **values: str) -> None:
        self.client.conversations.update(conv_id, custom_attributes=dict(values))

    def attach_company(self, contact_id: str, name: str) -> None:
        from intercom import CreateOrUpdateCompanyRequest
        company = self.client.companies.create_or_update(
            request=CreateOrUpdateCompanyRequest(company_id=name.lower().replace(" ", "-"), name=name))
        self.client.companies.attach_contact(contact_id=contact_id, company_id=str(company.id))

    def set_ticket_attributes(self, ticket_id: str, **values: str) -> None:
        self.client.tickets.update(ticket_id, ticket_attributes=dict(values), admin_id=int(self.admin_id))


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
