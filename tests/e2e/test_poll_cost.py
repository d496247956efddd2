"""Polls cost nothing for what syncd already carried across (issue 16): a poll that
finds an item still at the ``updated`` stamp of syncd's last reconcile of it queues
nothing, and so reads nothing. A whole-second stamp counts only once settled: an
edit in the same second as an early read, its webhook lost, is still found."""

from __future__ import annotations

import json
import math
import time

from syncd.connectors.jira import parse_jira_time
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World
from syncd.sim.core import iso
from syncd.testing import Observer, Teammate, quiet, ticket_key, wait_for


SEARCH = "searchAndReconsileIssuesUsingJql"


def poller(app: App, source: str):  # type: ignore[no-untyped-def]
    return next(p for p in app.pollers if p.source.name == source)


def escalated(world: World, daemon: App, look: Observer, subject: str, text: str) -> tuple[int, str]:
    """A ticket an agent escalated by its tag, its issue created and the daemon quiet again."""
    ticket = world.zendesk.create_ticket(subject, text, tags=["jira_escalate"])
    key = wait_for(lambda: ticket_key(look, world, ticket))
    assert isinstance(key, str)
    quiet(world, daemon)
    return ticket, key


def edit_in_the_written_second(world: World, ticket: int, **change: object) -> None:
    """An agent's edit made in the same second as syncd's last write (the ticket's stamp
    stays, whole seconds), its webhook lost: only a poll's view can show it."""
    z = world.zendesk
    with z.lock:
        written = z.tickets[ticket].updated
    z.knobs.webhooks.drop = 1.0
    z.agent_set(ticket, **change)  # type: ignore[arg-type]
    with z.lock:
        z.tickets[ticket].updated = written


def test_jira_poll_queues_nothing_for_a_change_a_webhook_already_carried(
        world: World, daemon: App, look: Observer) -> None:
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Exports time out", "Since Monday.")
    # syncd's own writes to the issue (the escalation's) are not trusted to be its
    # last change: the first poll queues the issue once and the reconcile reads it.
    poller(daemon, "jira").poll_once()
    quiet(world, daemon)

    j.engineer_comment(key, "The export job ran out of memory.")
    assert wait_for(lambda: look.ticket_has(ticket, "The export job ran out of memory.", public=False))
    quiet(world, daemon)

    reads = j.count("getIssue")
    # The issue is inside the poll's look-back window, changed since the last poll,
    # and still at the stamp the webhook's reconcile read: nothing to do.
    assert poller(daemon, "jira").poll_once() == 0
    quiet(world, daemon)
    assert j.count("getIssue") == reads

    # A change whose webhook is lost is still found by the next poll.
    j.knobs.webhooks.drop = 1.0
    j.engineer_comment(key, "Fixed in the next deploy.")
    assert poller(daemon, "jira").poll_once() == 1
    assert wait_for(lambda: look.ticket_has(ticket, "Fixed in the next deploy.", public=False))


def test_intercom_overlap_does_not_queue_a_conversation_again_once_reconciled(
        world: World, daemon: App, look: Observer) -> None:
    ic = world.intercom
    ref = ItemRef("intercom:conversation", ic.create_conversation(ic.first_contact_id(), "Invoices are blank"))
    Teammate(world).tag(ref.id, "jira_escalate")
    key = wait_for(lambda: look.intercom_key(ref))
    assert isinstance(key, str)
    ic.customer_reply(ref.id, "Still blank this morning.")
    assert wait_for(lambda: look.issue_has(key, "Still blank this morning."))
    quiet(world, daemon)
    time.sleep(2.1)   # Intercom stamps whole seconds: a read from now on is settled

    poll = poller(daemon, "intercom")
    poll.poll_once()          # the webhook's read came too early to prove the second over
    quiet(world, daemon)
    reads = ic.count("retrieveConversation")
    # The window overlaps the last one, so the conversation is listed again; it has
    # not changed since the (settled) read that poll caused.
    assert poll.poll_once() == 0
    quiet(world, daemon)
    assert ic.count("retrieveConversation") == reads


def test_an_edit_in_the_same_second_as_an_early_read_is_still_polled(
        world: World, daemon: App, look: Observer) -> None:
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, daemon, look, "Badge printer offline", "Front desk.")
    poller(daemon, "zendesk").poll_once()
    quiet(world, daemon)

    # Both replies get the same whole-second stamp: the vendor clock is pinned inside one second.
    second = math.floor(time.time()) + 3
    z.clock.set(second + 0.1)
    z.customer_reply(ticket, "It shows error 42.")
    assert wait_for(lambda: look.issue_has(key, "It shows error 42."))   # read at once, by the webhook
    z.knobs.webhooks.drop = 1.0
    z.clock.set(second + 0.6)
    z.customer_reply(ticket, "Now error 43.")
    time.sleep(0.3)
    assert not look.issue_has(key, "Now error 43."), "the webhook was meant to be lost"
    z.clock.set(time.time() + 10)   # whatever comes next is later (and past any export exclusion)

    assert poller(daemon, "zendesk").poll_once() >= 1
    assert wait_for(lambda: look.issue_has(key, "Now error 43."))
    quiet(world, daemon)
    assert sum("Now error 43." in c.body for c in look.issue(key).comments) == 1  # type: ignore[union-attr]
    assert j.count("createIssue") == 1


def test_jira_window_moves_on_while_nothing_changes(world: World, daemon: App) -> None:
    j = world.jira
    tracker = daemon.engine.tracker
    j.clock.advance(-600)   # three issues last changed ten minutes ago
    keys = [j.engineer_create("SUP", f"Old issue {n}") for n in range(3)]
    j.clock.advance(600)
    with j.lock:
        stamps = {str(j.issue(k).id): iso(j.issue(k).updated, jira=True) for k in keys}
    newest = max(parse_jira_time(s) for s in stamps.values()).timestamp()
    # A poller that saw them when they changed, and nothing since.
    cursor = json.dumps({"t": newest, "seen": stamps})

    tracker.poll_overlap = 60   # the connector's setting (built from the config's poll overlap)

    def searches(cursor: str) -> tuple[int, str]:
        before = j.count(SEARCH)
        page = tracker.poll(cursor, page_size=1)
        assert page.items == ()
        return j.count(SEARCH) - before, page.cursor

    _, cursor = searches(cursor)
    # The look-back window no longer reaches back to those issues: one empty answer.
    calls, cursor = searches(cursor)
    assert calls == 1


def test_a_zendesk_poll_proves_the_echo_of_a_ticket_write_and_the_next_jira_change_reads_no_ticket(
        world: World, daemon: App, look: Observer) -> None:
    """syncd's note on the ticket stamps it with a whole second that syncd cannot prove
    is over. The Zendesk poll's export shows the ticket whole, with its comment count,
    read well after that second: showing what syncd wrote and no comment more, it proves
    nothing changed since. The echo is not queued, and the next Jira change is written
    to the ticket from that proven copy (a safe update), without reading it."""
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, daemon, look, "Reports are blank", "Since the upgrade.")
    zpoll = poller(daemon, "zendesk")
    zpoll.poll_once()       # the escalation's own writes, read once
    quiet(world, daemon)

    j.engineer_comment(key, "Looking into it now.")
    assert wait_for(lambda: look.ticket_has(ticket, "Looking into it now.", public=False))
    quiet(world, daemon)
    time.sleep(2.1)         # the view must be read after the write's second is over
    shows, updates = z.count("ShowTicket"), z.count("UpdateTicket")
    assert zpoll.poll_once() == 0, "the echo of syncd's own note was queued"
    quiet(world, daemon)
    assert z.count("ShowTicket") == shows

    def jira_status_shown() -> bool:   # from the simulator's state: a look over HTTP would count
        with z.lock:
            return z.tickets[ticket].custom.get(world.field_id(9002)) == "In Progress"

    j.engineer_transition(key, "In Progress")
    assert wait_for(jira_status_shown)
    quiet(world, daemon)
    assert z.count("UpdateTicket") == updates + 1
    assert z.count("ShowTicket") == shows, "the ticket was read although the poll had proven syncd's copy"


def test_a_change_in_the_same_second_as_syncd_s_write_is_still_polled(
        world: World, daemon: App, look: Observer) -> None:
    """The poll's view proves nothing when it shows more than syncd wrote: an agent's
    edit in the same second as syncd's note keeps the ticket's stamp, and with its
    webhook lost only the view's fields tell. The ticket is queued and read."""
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Exports fail", "Every night.")
    zpoll = poller(daemon, "zendesk")
    zpoll.poll_once()
    quiet(world, daemon)

    j.engineer_comment(key, "Reproduced.")
    assert wait_for(lambda: look.ticket_has(ticket, "Reproduced.", public=False))
    quiet(world, daemon)
    edit_in_the_written_second(world, ticket, priority="urgent")
    time.sleep(2.1)
    assert zpoll.poll_once() == 1
    assert wait_for(lambda: (look.issue(key) or issue_none()).fields.get("priority") == "Highest")


def issue_none():  # type: ignore[no-untyped-def]
    raise AssertionError("the issue is gone")


def test_a_restarted_daemon_starts_from_what_the_last_one_learned_of_the_comment_count(
        world: World, daemon: App, look: Observer) -> None:
    """Whether Zendesk's comment count counts internal notes is learned from a listing
    (no document says); until then no poll view stands in for a read. The next process
    on the same store starts from the verdict instead of learning it again."""
    z = world.zendesk
    ticket = z.create_ticket("Login loops", "On Safari.", tags=["jira_escalate"])
    assert wait_for(lambda: ticket_key(look, world, ticket))
    quiet(world, daemon)
    poller(daemon, "zendesk").poll_once()   # the escalation note is read back: learned there
    quiet(world, daemon)
    assert getattr(daemon.engine.desks["zendesk"], "comment_count").verdict is True
    daemon.stop()

    again = App.build(world.settings())
    try:
        assert getattr(again.engine.desks["zendesk"], "comment_count").verdict is True
    finally:
        again.store.close()


def moved_after_a_blind_second_edit(world: World, daemon: App, key: str, ticket: int, to: str,
                                    **edit: object) -> None:
    """The issue moves to In Progress (syncd writes the ticket), an agent edits the ticket
    in the same second as that write (webhook lost), and the issue moves on to ``to``."""
    j = world.jira
    j.engineer_transition(key, "In Progress")
    assert wait_for(lambda: jira_status_on(world, ticket) == "In Progress")
    quiet(world, daemon)
    edit_in_the_written_second(world, ticket, **edit)
    j.engineer_transition(key, to)
    assert wait_for(lambda: jira_status_on(world, ticket) == to)
    quiet(world, daemon)


def jira_status_on(world: World, ticket: int) -> object:
    """From the simulator's state: a look over HTTP would count as a call."""
    with world.zendesk.lock:
        return world.zendesk.tickets[ticket].custom.get(world.field_id(9002))


def second_move_costs(world: World, daemon: App, key: str, ticket: int, to: str) -> tuple[int, int]:
    """The issue moves to In Progress (syncd writes the ticket, its copy is unsettled), then
    on to ``to`` right after; returns the ShowTicket and UpdateTicket calls of that second move."""
    z, j = world.zendesk, world.jira
    j.engineer_transition(key, "In Progress")
    assert wait_for(lambda: jira_status_on(world, ticket) == "In Progress")
    quiet(world, daemon)
    shows, updates = z.count("ShowTicket"), z.count("UpdateTicket")
    j.engineer_transition(key, to)
    assert wait_for(lambda: jira_status_on(world, ticket) == to)
    quiet(world, daemon)
    return z.count("ShowTicket") - shows, z.count("UpdateTicket") - updates


def test_a_transition_right_after_syncd_s_own_ticket_write_is_written_without_reading_the_ticket(
        world: World, daemon: App, look: Observer) -> None:
    """Back-to-back moves of an issue (a fan-out's, say): syncd's copy of the ticket is
    unsettled right after its own write, but a move writes only fields Jira alone feeds
    (the Jira status, with its note), which no agent edit can conflict with: the safe
    update goes out from the copy."""
    ticket, key = escalated(world, daemon, look, "Sync stalls", "Since noon.")
    shows, updates = second_move_costs(world, daemon, key, ticket, "To Do")
    assert updates == 1
    assert shows == 0, "the ticket was read before a write of Jira-fed fields only"


def test_an_agent_edit_in_the_second_of_syncd_s_write_survives_an_unread_write_and_reaches_jira(
        world: World, daemon: App, look: Observer) -> None:
    """The unread write must lose nothing: an agent's priority edit in the same second as
    syncd's previous write (its stamp unchanged, its webhook lost) is not overwritten by
    the move written from the copy, and the poll's view, which shows it, brings it to Jira."""
    z = world.zendesk
    ticket, key = escalated(world, daemon, look, "Reports empty", "All of them.")
    zpoll = poller(daemon, "zendesk")
    zpoll.poll_once()
    quiet(world, daemon)
    moved_after_a_blind_second_edit(world, daemon, key, ticket, "To Do", priority="urgent")
    with z.lock:
        assert z.tickets[ticket].priority == "urgent", "the move overwrote the agent's edit"
    time.sleep(2.1)
    assert zpoll.poll_once() == 1, "the poll's view did not show the agent's edit"
    assert wait_for(lambda: (look.issue(key) or issue_none()).fields.get("priority") == "Highest")


def test_a_fan_out_right_after_syncd_s_own_ticket_write_still_reopens_a_ticket_solved_in_its_blind_second(
        world: World, daemon: App, look: Observer) -> None:
    """Done right after another move: whether fan-out reopens the ticket depends on its
    status now, and fan-out happens once. An agent solved it in the same second as syncd's
    last write (its webhook lost), which the copy cannot show: fan-out writes its status
    whatever the copy shows, and the ticket is reopened with the note."""
    z = world.zendesk
    ticket, key = escalated(world, daemon, look, "Refunds fail", "Every card.")
    z.agent_set(ticket, status="open")      # syncd's copy shows it open: nothing to reopen
    quiet(world, daemon)
    moved_after_a_blind_second_edit(world, daemon, key, ticket, "Done", status="solved")
    with z.lock:
        assert z.tickets[ticket].status == "open", "fan-out did not reopen the ticket solved in the blind second"
    assert look.ticket_has(ticket, f"Jira {key} is Done", public=False)


def test_done_right_after_another_move_reopens_and_tells_the_ticket_without_reading_it(
        world: World, daemon: App, look: Observer) -> None:
    """Resolving an issue right after another move (fan-out to every linked ticket, issue 16):
    syncd's copy of each ticket is unsettled after its own write, and fan-out must not
    decide from the status it shows. It sets the status whatever the copy shows, in the
    same safe update as its note: one UpdateTicket a ticket, no ShowTicket. A ticket an
    agent had put on hold (the copy knows it) is reopened all the same."""
    z = world.zendesk
    ticket, key = escalated(world, daemon, look, "Invoices doubled", "Since the upgrade.")
    z.agent_set(ticket, status="hold")
    quiet(world, daemon)
    shows, updates = second_move_costs(world, daemon, key, ticket, "Done")
    assert updates == 1
    assert shows == 0, "the ticket was read before a fan-out that depends on none of its values"
    with z.lock:
        assert z.tickets[ticket].status == "open"
    assert look.ticket_has(ticket, f"Jira {key} is Done", public=False)
