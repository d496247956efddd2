"""``syncd demo``: the daemon at work, with no account anywhere.

Starts the three simulators, a real ``syncd`` runtime (webhook server, pollers,
workers) on a temporary SQLite, and plays two short stories through the
simulators' actors — the way agents, customers and engineers would act — then
checks each outcome. Every step prints what synced where and how long it took.
Exits 0 when every check holds, 1 and the failed steps otherwise.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from .domain import ItemRef
from .sandbox import World, build_world
from .testing import Observer, Teammate, wait_for

STEP_TIMEOUT = 20.0


@dataclass(frozen=True)
class StepResult:
    title: str
    ok: bool
    seconds: float
    detail: str


class Story:
    def __init__(self, world: World, echo: Callable[[str], None] = click.echo):
        self.world = world
        self.echo = echo
        self.results: list[StepResult] = []

    def step(self, title: str, act: Callable[[], None], check: Callable[[], object],
             describe: Callable[[object], str]) -> object:
        started = time.monotonic()
        act()
        value = wait_for(check, timeout=STEP_TIMEOUT)
        seconds = time.monotonic() - started
        ok = bool(value)
        detail = describe(value) if ok else "did not happen in time"
        self.results.append(StepResult(title, ok, seconds, detail))
        mark = click.style("✓", fg="green") if ok else click.style("✗", fg="red")
        self.echo(f" {mark} {title:<58} {seconds:6.2f}s  {detail}")
        return value


def zendesk_story(world: World, story: Story) -> None:
    z, j = world.zendesk, world.jira
    look = Observer(world)
    key_field = f"custom:{world.field_id(9001)}"
    status_field = f"custom:{world.field_id(9002)}"
    story.echo(click.style("Zendesk ↔ Jira", bold=True))

    ticket = z.create_ticket("Checkout fails with a 500", "Paying by card fails with an error page.")

    def issue_key(ticket_id: int) -> object:
        key = look.ticket(ticket_id).fields.get(key_field)
        return key if isinstance(key, str) and look.issue(key) is not None else None

    key = story.step("agent tags the ticket jira_escalate → Jira issue created",
                     lambda: z.agent_set(ticket, add_tags=["jira_escalate"]),
                     lambda: issue_key(ticket),
                     lambda k: f"{k} shown on ticket #{ticket}")
    if not key:
        return
    key = str(key)
    story.step("engineer comments in Jira → internal note on the ticket",
               lambda: j.engineer_comment(key, "Reproduced: the payment gateway times out."),
               lambda: look.ticket_has(ticket, "payment gateway times out", public=False),
               lambda _: f"note on ticket #{ticket}")
    story.step("customer replies on the ticket → comment in Jira",
               lambda: z.customer_reply(ticket, "It also fails on mobile."),
               lambda: look.issue_has(key, "It also fails on mobile."),
               lambda _: f"comment on {key}")
    story.step("engineer answers with #public → reply the customer sees",
               lambda: j.engineer_comment(key, "#public A fix is on its way."),
               lambda: look.ticket_has(ticket, "A fix is on its way.", public=True),
               lambda _: f"public reply on ticket #{ticket}")

    def both_edit() -> None:
        z.agent_set(ticket, priority="low")
        time.sleep(1.1)   # a later edit on the Jira side: "newest wins" must pick Jira's
        j.engineer_edit(key, {"priority": {"name": "Highest"}})

    story.step("priority edited on both sides → newest wins on both",
               both_edit,
               lambda: look.ticket(ticket).fields.get("priority") == "urgent"
               and (look.issue(key) or _NONE).fields.get("priority") == "Highest",
               lambda _: "ticket urgent, issue Highest")
    second = z.create_ticket("Card payment broken", "Same here: checkout shows an error.")
    story.step("second customer's ticket linked by typing the key",
               lambda: z.agent_set(second, custom_fields={int(key_field.split(":")[1]): key}),
               lambda: (look.issue(key) or _NONE).fields.get("customfield_10051") == "2",
               lambda _: f"{key} shows 2 linked tickets")

    def resolve() -> None:
        j.engineer_transition(key, "In Progress")
        j.engineer_transition(key, "Done")

    story.step("engineer resolves the issue → every linked ticket told and reopened",
               resolve,
               lambda: all(look.ticket(t).fields.get(status_field) == "Done" and look.ticket(t).status == "open"
                           and look.ticket_has(t, f"{key} is Done", public=False) for t in (ticket, second)),
               lambda _: "2 tickets: Jira status Done, reopened, note added")


def intercom_story(world: World, story: Story) -> None:
    ic, j = world.intercom, world.jira
    look, teammate = Observer(world), Teammate(world)
    story.echo(click.style("Intercom ↔ Jira", bold=True))
    customer = ic.first_contact_id()
    teammate.attach_company(customer, "Acme Corp")
    conv = ItemRef("intercom:conversation", ic.create_conversation(customer, "Exports to CSV hang forever."))

    key = story.step("teammate tags the conversation jira_escalate → Jira issue",
                     lambda: teammate.tag(conv.id, "jira_escalate"),
                     lambda: look.intercom_key(conv),
                     lambda k: f"{k} in the conversation's jira_issue attribute")
    if not key:
        return
    key = str(key)
    story.step("engineer comments in Jira → admin note in the conversation",
               lambda: j.engineer_comment(key, "The export job runs out of memory."),
               lambda: look.intercom_has(conv, "runs out of memory", public=False),
               lambda _: "note by syncd's admin")
    story.step("customer replies in the Messenger → comment in Jira",
               lambda: ic.customer_reply(conv.id, "It happens with 10,000 rows."),
               lambda: look.issue_has(key, "It happens with 10,000 rows."),
               lambda _: f"comment on {key}")
    story.step("engineer answers with #public → reply the customer sees",
               lambda: j.engineer_comment(key, "#public We found the cause, a fix is coming."),
               lambda: look.intercom_has(conv, "We found the cause", public=True),
               lambda _: "admin reply in the conversation")
    ticket = ItemRef("intercom:ticket", ic.create_ticket(customer, "CSV export fails", "Large exports never finish"))
    story.step("Intercom ticket linked by typing the key into its attribute",
               lambda: teammate.set_ticket_attributes(ticket.id, jira_issue=key),
               lambda: (look.issue(key) or _NONE).fields.get("customfield_10051") == "2",
               lambda _: f"{key} shows 2 linked items")

    def resolve() -> None:
        ic.close(conv.id, teammate.admin_id)
        j.engineer_transition(key, "In Progress")
        j.engineer_transition(key, "Done")

    story.step("engineer resolves → conversation reopened and told, ticket resolved",
               resolve,
               lambda: look.conversation(conv.id).status == "open"
               and look.intercom_has(conv, f"{key} is Done", public=False)
               and look.intercom_ticket(ticket.id).fields.get("ticket_state") == "resolved",
               lambda _: "conversation open with a note, ticket resolved")


class _None:
    fields: dict = {}


_NONE = _None()


def run_demo(keep: bool = False, echo: Callable[[str], None] = click.echo) -> int:
    from .logs import configure_logging
    from .runtime import App

    directory = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    echo(f"syncd demo: simulators + daemon on SQLite in {directory}")
    configure_logging("warning", "console")
    world = build_world(directory)
    app = App.build(world.settings())
    app.start()
    story = Story(world, echo)
    try:
        zendesk_story(world, story)
        intercom_story(world, story)
    finally:
        app.stop()
        world.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    failed = [r for r in story.results if not r.ok]
    total = sum(r.seconds for r in story.results)
    echo(f"{len(story.results) - len(failed)} of {len(story.results)} steps checked out in {total:.1f}s")
    for r in failed:
        echo(f"FAILED: {r.title}")
    return 1 if failed or not story.results else 0
