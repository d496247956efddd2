"""The engine's decisions, on the in-memory store and fake connectors (no HTTP, no
database): intent recovery and its settle window, escalation recovery and
duplicate repair, reading less through snapshots, conflict logging, aggregates.
The end-to-end and crash tests cover the same decisions through the real
vendors' simulators; these say which decision went wrong when one breaks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

import pytest
from structlog.testing import capture_logs

from engine_fakes import FakeDesk, FakeTracker, comment, desk_item
from syncd.aggregates import aggregate_values
from syncd.connectors.base import DeskConnector, TrackerConnector
from syncd.domain import BaseEntry, ItemRef, Link
from syncd.engine import Engine, EscalationPending, IntentSettling
from syncd.errors import Ambiguous, Refused
from syncd.mapping import ConflictRule, EscalationRules, FanoutRules, FieldRule, Mapping
from syncd.memory_store import MemoryStore
from syncd.store_ports import StoreUnavailable

DESK = ItemRef("zendesk", "1")
PRIORITY = FieldRule("priority", desk="priority", tracker="priority",
                     to_tracker={"low": "Low", "normal": "Medium", "high": "High"},
                     to_desk={"Low": "low", "Medium": "normal", "High": "high"})
CREATE_SETTLE, INTENT_SETTLE = 10.0, 60.0


def mapping(rule: FieldRule = PRIORITY, **kw) -> Mapping:
    kw.setdefault("fanout", FanoutRules(on_status=()))
    kw.setdefault("escalation", EscalationRules(default_project="SUP"))
    return Mapping(desk="zendesk", source_path="test.toml", fields=(rule,), **kw)


@dataclass
class Setup:
    engine: Engine
    store: MemoryStore
    desk: FakeDesk
    tracker: FakeTracker

    def link(self) -> Link:
        """The desk item linked to SUP-1 and synced once (both sides agree on priority high)."""
        self.desk.put(desk_item(DESK, fields={"priority": "high"}, tags=["jira_linked"]))
        self.tracker.put("SUP-1", {"priority": "High"})
        link = self.engine.link(DESK, "SUP-1")
        self.engine.reconcile(DESK)
        assert self.store.link_state(link.id).revision == 1
        return link

    def pending(self, key: str, kind: str, link: Link, side: str, body: str, age: float) -> None:
        """What an attempt that died between recording an intent and finishing it leaves."""
        payload = {"side": side, "body": body, "public": False, "source_id": key.rsplit(":", 1)[-1]}
        assert self.store.begin_intent(key, kind, link.id, payload).owned
        self.store.backdate_intent(key, age)


def build(m: Mapping | None = None, conditional_writes: bool = True, store: MemoryStore | None = None) -> Setup:
    store, desk, tracker = store or MemoryStore(), FakeDesk(conditional_writes=conditional_writes), FakeTracker()
    engine = Engine(store, {"zendesk": desk}, tracker, {"zendesk": m or mapping()},
                    create_settle_seconds=CREATE_SETTLE, intent_settle_seconds=INTENT_SETTLE)
    return Setup(engine, store, desk, tracker)


def events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


def test_fakes_implement_the_connector_ports() -> None:
    for port, fake in ((DeskConnector, FakeDesk()), (TrackerConnector, FakeTracker())):
        wanted = {n for n in dir(port) if not n.startswith("_")} | set(port.__annotations__)
        assert {n for n in wanted if not hasattr(fake, n)} == set(), port.__name__


# -- intent recovery ---------------------------------------------------------------

def test_pending_comment_younger_than_the_settle_window_is_waited_for_not_written_again() -> None:
    s = build()
    link = s.link()
    key = f"comment:{link.id}:tracker:c9"
    s.pending(key, "comment", link, "tracker", "Ann wrote: it fails", age=INTENT_SETTLE - 20)
    with pytest.raises(IntentSettling):
        s.engine.reconcile(DESK)
    assert s.tracker.posted == []
    assert s.store.pending_intents() == [key]


def test_pending_comment_past_the_settle_window_and_not_found_is_written_once() -> None:
    s = build()
    link = s.link()
    key = f"comment:{link.id}:tracker:c9"
    s.pending(key, "comment", link, "tracker", "Ann wrote: it fails", age=INTENT_SETTLE + 5)
    with capture_logs() as logs:
        s.engine.reconcile(DESK)
        s.engine.reconcile(DESK)
    assert s.tracker.posted == [(link.issue_id, "Ann wrote: it fails", key)]
    done = s.store.get_intent(key)
    assert done is not None and done.state == "done" and done.result == s.tracker.find_comment(link.issue_id, key)
    assert [e["how"] for e in events(logs, "intent_recovered")] == ["rewritten"]
    assert len(events(logs, "intent_replayed")) == 1


def test_pending_comment_found_on_the_vendor_side_is_finished_not_written_again() -> None:
    s = build()
    link = s.link()
    key = f"comment:{link.id}:tracker:c9"
    s.pending(key, "comment", link, "tracker", "Ann wrote: it fails", age=INTENT_SETTLE + 5)
    landed = s.tracker.add_comment(link.issue_id, "Ann wrote: it fails", source=key)   # before the crash
    with capture_logs() as logs:
        s.engine.reconcile(DESK)
    assert len(s.tracker.posted) == 1
    done = s.store.get_intent(key)
    assert done is not None and (done.state, done.result) == ("done", landed)
    assert [e["how"] for e in events(logs, "intent_recovered")] == ["found"]


def test_pending_desk_note_is_found_by_its_exact_body() -> None:
    s = build()
    link = s.link()
    s.pending("note:fanout:x", "note", link, "desk", "Jira SUP-1 is Done.", age=5)
    landed = s.desk.add_comment(DESK, "Jira SUP-1 is Done.", False)
    s.engine.reconcile(DESK)
    assert [body for _, body, _ in s.desk.posted] == ["Jira SUP-1 is Done."]
    done = s.store.get_intent("note:fanout:x")
    assert done is not None and (done.state, done.result) == ("done", landed)


def test_a_write_without_an_answer_keeps_its_intent_and_a_refused_one_drops_it() -> None:
    s = build()
    link = s.link()
    issue = s.tracker.issues[link.issue_id]
    s.tracker.issues[link.issue_id] = replace(
        issue, comments=(comment("j1", "Fixed in build 42", at=datetime.now(timezone.utc)),))
    key = f"comment:{link.id}:desk:j1"
    s.desk.fail_next_comment = Ambiguous("zendesk", "updateTicket", "read timeout")
    with pytest.raises(Ambiguous):
        s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert s.store.pending_intents() == [key], "it may have landed: recovery must look first"
    assert s.store.drop_intent(key)
    s.desk.fail_next_comment = Refused("zendesk", "updateTicket", "422", status=422)
    with pytest.raises(Refused):
        s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert s.store.pending_intents() == [], "it certainly did not happen: the next try writes at once"
    s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert len([p for p in s.desk.posted if "Fixed in build 42" in p[1]]) == 1


class DownAtDrop(MemoryStore):
    """The database goes away between recording an intent and dropping it."""

    down = False

    def drop_intent(self, key, claim=None):
        if self.down:
            raise StoreUnavailable("database down", "database_unreachable")
        return super().drop_intent(key, claim)


def test_a_refused_write_whose_intent_could_not_be_dropped_is_written_again_at_once_by_this_process() -> None:
    s = build(store=DownAtDrop())
    link = s.link()
    issue = s.tracker.issues[link.issue_id]
    s.tracker.issues[link.issue_id] = replace(
        issue, comments=(comment("j1", "Fixed in build 42", at=datetime.now(timezone.utc)),))
    s.desk.fail_next_comment = Refused("zendesk", "updateTicket", "422", status=422)
    s.store.down = True   # type: ignore[attr-defined]
    with pytest.raises(Refused):
        s.engine.reconcile(ItemRef("jira", link.issue_id))
    s.store.down = False   # type: ignore[attr-defined]
    assert s.store.pending_intents() == [f"comment:{link.id}:desk:j1"]
    restarted = Engine(s.store, {"zendesk": s.desk}, s.tracker, s.engine.mappings,
                       intent_settle_seconds=INTENT_SETTLE)
    with pytest.raises(IntentSettling):   # another process cannot know it was never sent
        restarted.reconcile(ItemRef("jira", link.issue_id))
    s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert len([b for _, b, _ in s.desk.posted if "Fixed in build 42" in b]) == 1
    assert s.store.pending_intents() == []


# -- escalation ---------------------------------------------------------------------

def escalating(s: Setup) -> None:
    s.desk.put(desk_item(DESK, tags=["jira_escalate"], comments=[comment("c1", "Paying by card fails")]))


def test_escalation_creates_one_issue_links_it_and_counts_the_first_comment_as_its_description() -> None:
    s = build()
    escalating(s)
    s.engine.reconcile(DESK)
    s.engine.reconcile(DESK)
    assert len(s.tracker.created) == 1 and s.tracker.created[0].project == "SUP"
    (link,) = s.store.links_for_desk(DESK)
    assert s.store.get_intent(f"create:{DESK}").result == link.issue_id   # type: ignore[union-attr]
    assert s.tracker.posted == [], "the first comment is the issue's description, not a comment"
    notes = [body for _, body, _ in s.desk.posted]
    assert notes == [f"Escalated to Jira: {link.issue_key} https://jira.example/browse/{link.issue_key}"]
    assert (link.issue_id, f"syncd:{DESK}") in s.tracker.remote_links
    assert "jira_linked" in s.desk.items[DESK].tags


def test_a_create_that_landed_before_a_crash_is_found_by_its_origin_not_made_twice() -> None:
    s = build()
    escalating(s)
    s.store.begin_intent(f"create:{DESK}", "create", None, {"origin": str(DESK), "project": "SUP"})
    landed = s.tracker.put("SUP-7", origin=str(DESK))
    with capture_logs() as logs:
        s.engine.reconcile(DESK)
    assert s.tracker.created == []
    assert [l.issue_id for l in s.store.links_for_desk(DESK)] == [landed.ref.id]
    assert s.store.get_intent(f"create:{DESK}").state == "done"   # type: ignore[union-attr]
    assert [(e["how"], e["target"]) for e in events(logs, "intent_recovered")][:1] == [("found", "SUP-7")]


def test_a_pending_create_not_found_is_waited_for_within_the_settle_window_then_made() -> None:
    s = build()
    escalating(s)
    s.tracker.search_visible = False   # Jira search has not caught up (or the create never went out)
    s.store.begin_intent(f"create:{DESK}", "create", None, {"origin": str(DESK), "project": "SUP"})
    with pytest.raises(EscalationPending):
        s.engine.reconcile(DESK)
    assert s.tracker.created == [] and s.store.links_for_desk(DESK) == []
    s.store.backdate_intent(f"create:{DESK}", CREATE_SETTLE + 1)
    s.engine.reconcile(DESK)
    assert len(s.tracker.created) == 1 and len(s.store.links_for_desk(DESK)) == 1


def test_a_second_issue_for_one_origin_is_deleted_and_the_oldest_kept() -> None:
    """A writer frozen past the claim check made its issue, which search did not show when
    its pending create was taken over after the settle window: the taker's create is the
    second one, found right after it and deleted; the oldest is kept."""
    s = build()
    escalating(s)
    s.store.begin_intent(f"create:{DESK}", "create", None, {"origin": str(DESK), "project": "SUP"})
    older = s.tracker.put("SUP-1", origin=str(DESK))
    s.tracker.search_visible, s.tracker.search_catches_up_on_create = False, True
    s.store.backdate_intent(f"create:{DESK}", CREATE_SETTLE + 1)
    s.engine.reconcile(DESK)
    assert len(s.tracker.created) == 1
    (made,) = [i for i in s.tracker.deleted]
    assert made != older.ref.id and made not in s.tracker.issues
    assert [l.issue_id for l in s.store.links_for_desk(DESK)] == [older.ref.id]
    assert [a.event for a in s.store.audits if a.event == "duplicate_repaired"] == ["duplicate_repaired"]


def test_an_escalation_on_the_happy_path_searches_for_no_duplicate() -> None:
    """Our own fresh intent, our claim held: nobody else may have created the issue, so the
    label search after the create (crash recovery, duplicate repair) is not made (issue 16)."""
    s = build()
    escalating(s)
    s.engine.reconcile(DESK)
    assert len(s.tracker.created) == 1 and len(s.store.links_for_desk(DESK)) == 1
    assert s.tracker.searches == 0


def test_an_escalation_left_half_done_is_resumed_once() -> None:
    s = build()
    escalating(s)
    issue = s.tracker.put("SUP-1", origin=str(DESK))
    link = s.store.add_link(DESK, issue.ref.id, issue.key)
    s.store.begin_intent(f"create:{DESK}", "create", None, {"origin": str(DESK)})
    s.store.finish_intent(f"create:{DESK}", issue.ref.id)   # the escalating worker died after the link
    s.engine.reconcile(DESK)
    s.engine.reconcile(DESK)
    assert [b for _, b, _ in s.desk.posted if b.startswith("Escalated")] == [
        "Escalated to Jira: SUP-1 https://jira.example/browse/SUP-1"]
    assert s.tracker.posted == [], "the first comment is the description"
    assert s.store.get_intent(f"comment:{link.id}:tracker:c1").result == "description"   # type: ignore[union-attr]


# -- reading less -------------------------------------------------------------------

def test_an_issue_change_is_carried_to_the_desk_from_the_remembered_item_without_reading_it() -> None:
    s = build()
    link = s.link()
    reads = s.desk.fetches[DESK]
    s.tracker.edit(link.issue_id, priority="Low")
    s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert s.desk.fetches[DESK] == reads, "the desk item came from the snapshot"
    assert s.desk.items[DESK].fields["priority"] == "low"
    assert s.store.link_state(link.id).base["priority"] == BaseEntry("low", "Low")


def test_a_desk_edited_since_it_was_remembered_refuses_the_write_and_both_items_stay_dirty() -> None:
    s = build()
    link = s.link()
    s.desk.edit(DESK, subject="changed by an agent")   # no webhook seen yet
    s.tracker.edit(link.issue_id, priority="Low")
    with capture_logs() as logs:
        s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert s.desk.items[DESK].fields["priority"] == "high", "nothing written from the outdated copy"
    assert len(events(logs, "write_conflict")) == 1
    assert s.store.dirty_refs("write_conflict") == {DESK, ItemRef("jira", link.issue_id)}
    s.engine.reconcile(DESK)   # the dirty item's own reconcile reads fresh and carries the change
    assert s.desk.items[DESK].fields["priority"] == "low"


def test_a_desk_without_conditional_writes_is_read_before_a_field_is_written_to_it() -> None:
    s = build(conditional_writes=False)
    link = s.link()
    reads = s.desk.fetches[DESK]
    s.tracker.edit(link.issue_id, priority="Low")
    s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert s.desk.fetches[DESK] == reads + 1
    assert s.desk.items[DESK].fields["priority"] == "low"


def test_a_desk_change_needs_no_read_of_the_issue_when_it_writes_nothing_there() -> None:
    s = build()
    link = s.link()
    issue_reads = s.tracker.fetches[link.issue_id]
    s.desk.edit(DESK, subject="a field no rule maps")
    s.engine.reconcile(DESK)
    assert s.tracker.fetches[link.issue_id] == issue_reads


# -- conflicts ---------------------------------------------------------------------

def test_a_value_changed_on_both_sides_is_logged_as_a_conflict_with_both_values() -> None:
    s = build(mapping(FieldRule("priority", desk="priority", tracker="priority", conflict=ConflictRule.TRACKER_WINS,
                                to_tracker=PRIORITY.to_tracker, to_desk=PRIORITY.to_desk)))
    link = s.link()
    s.desk.edit(DESK, priority="normal")
    s.tracker.edit(link.issue_id, priority="Low")
    with capture_logs() as logs:
        outcome = s.engine.reconcile(DESK)
    (logged,) = events(logs, "field_conflict")
    assert (logged["log_level"], logged["link"], logged["field"], logged["kept"], logged["replaced"]) == (
        "warning", link.id, "priority", "Low", "normal")
    assert any(d.startswith("priority: conflict:") for d in outcome.decisions)
    assert s.desk.items[DESK].fields["priority"] == "low"


# -- aggregates --------------------------------------------------------------------

def test_the_issue_counts_its_linked_items_and_organizations_and_takes_the_earliest_due_date() -> None:
    due = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    m = mapping(linked_count_field="customfield_1", linked_orgs_field="customfield_2", sla_field="customfield_3")
    items = [desk_item(ItemRef("zendesk", "1"), organization="Acme"),
             desk_item(ItemRef("zendesk", "2"), organization="Acme"),
             desk_item(ItemRef("zendesk", "3"), organization=None)]
    items[1] = replace(items[1], due_at=due)
    assert aggregate_values(m, items) == {"customfield_1": "3", "customfield_2": "1",
                                          "customfield_3": "2030-01-02T03:04:05.000+0000"}
    s = build(m)
    link = s.link()
    s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert s.tracker.issues[link.issue_id].fields["customfield_1"] == "1"
    writes = len(s.tracker.field_writes)
    s.engine.reconcile(ItemRef("jira", link.issue_id))
    assert len(s.tracker.field_writes) == writes, "unchanged aggregates are not written again"


def test_keys_typed_into_the_key_field_are_linked_and_an_unknown_one_gets_a_note() -> None:
    s = build(mapping(escalation=EscalationRules(default_project="SUP", key_field="custom:42")))
    s.tracker.put("SUP-1", {"priority": "High"})
    s.desk.put(desk_item(DESK, fields={"priority": "high", "custom:42": "see sup-1, NOPE-9"}))
    s.engine.reconcile(DESK)
    s.engine.reconcile(DESK)
    assert [l.issue_key for l in s.store.links_for_desk(DESK)] == ["SUP-1"]
    assert [b for _, b, _ in s.desk.posted] == ["syncd: Jira issue NOPE-9 does not exist; not linked."]
    assert s.desk.items[DESK].fields["custom:42"] == "SUP-1", "the key field shows the linked keys"
    assert s.tracker.created == []
