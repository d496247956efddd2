"""Unit tests of the pure reconcile function, one rule at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from syncd.domain import Attachment, Comment, DeskItem, ItemRef, Link, Side, TrackerIssue
from syncd.mapping import (CommentRules, ConflictRule, Direction, FanoutRules, FieldRule, Mapping)
from syncd.reconcile import (GENERATION_KEY, RELEASED_KEY, STATUS_KEY, BaseEntry, CommentWrite, FieldWrite,
                             MirrorState, Plan, plan, translate, Unmapped)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
LINK = Link(id=7, desk=ItemRef("zendesk", "123"), issue_id="10001", issue_key="ENG-1", created_at=T0)

PRIORITY = FieldRule("priority", desk="priority", tracker="priority",
                     to_tracker={"low": "Low", "normal": "Medium", "high": "High"},
                     to_desk={"Low": "low", "Medium": "normal", "High": "high"})
STATUS = FieldRule("status", desk="status", tracker="status", conflict=ConflictRule.TRACKER_WINS,
                   to_tracker={"open": "In Progress", "solved": "Done", "new": "To Do"},
                   to_desk={"In Progress": "open", "Done": "solved", "To Do": "new"}, note_on_change=True)
LABELS = FieldRule("labels", desk="tags", tracker="labels",
                   to_tracker={"bug": "Bug", "ui": "UI", "db": "Database"},
                   to_desk={"Bug": "bug", "UI": "ui", "Database": "db"})
NO_FANOUT = FanoutRules(on_status=())


def mapping(*rules: FieldRule, **kw) -> Mapping:
    kw.setdefault("fanout", NO_FANOUT)
    return Mapping(desk="zendesk", source_path="test.toml", fields=rules, **kw)


def desk_item(fields=None, comments=(), updated=T0) -> DeskItem:
    return DeskItem(ref=LINK.desk, title="Login broken", url="https://z/123", status="open", description="",
                    requester="ann@example.com", organization="Acme", fields=dict(fields or {}),
                    comments=tuple(comments), updated_at=updated)


def issue(fields=None, comments=(), updated=T0, released=()) -> TrackerIssue:
    return TrackerIssue(ref=ItemRef("jira", "10001"), key="ENG-1", url="https://j/ENG-1", summary="Login broken",
                        fields=dict(fields or {}), released_versions=tuple(released), comments=tuple(comments),
                        updated_at=updated)


def comment(cid, body="hello", public=True, at=T0 + timedelta(minutes=5), by_integration=False,
            attachments=()) -> Comment:
    return Comment(id=cid, author="Ann", body=body, public=public, created_at=at,
                   by_integration=by_integration, attachments=tuple(attachments))


def apply(p: Plan, desk: DeskItem, tracker: TrackerIssue, mirrored: MirrorState):
    """Apply a plan's writes the way the engine would (set-values; syncd's comments are by_integration)."""
    dfields, tfields = dict(desk.fields), dict(tracker.fields)
    for w in p.field_writes:
        (dfields if w.side is Side.DESK else tfields)[w.locator] = w.value
    made = [comment(f"m{i}", w.body, w.public, by_integration=True) for i, w in enumerate(p.comment_writes)]
    notes = [comment(f"n{i}", n.body, n.public, by_integration=True) for i, n in enumerate(p.notes)]
    desk = replace(desk, fields=dfields, comments=desk.comments + tuple(
        c for c, w in zip(made, p.comment_writes) if w.side is Side.DESK) + tuple(notes))
    tracker = replace(tracker, fields=tfields, comments=tracker.comments + tuple(
        c for c, w in zip(made, p.comment_writes) if w.side is Side.TRACKER))
    mirrored = MirrorState(
        mirrored.to_tracker | {w.source_id for w in p.comment_writes if w.side is Side.TRACKER},
        mirrored.to_desk | {w.source_id for w in p.comment_writes if w.side is Side.DESK})
    return desk, tracker, mirrored


def assert_settles(m, desk, tracker, base, mirrored=MirrorState()) -> Plan:
    """Apply the plan, plan again: nothing more to do and the base stays put."""
    first = plan(m, LINK, desk, tracker, base, mirrored)
    desk2, tracker2, mirrored2 = apply(first, desk, tracker, mirrored)
    again = plan(m, LINK, desk2, tracker2, first.new_base, mirrored2)
    assert again.empty, again
    assert dict(again.new_base) == dict(first.new_base)
    return first


def synced_base(**entries) -> dict:
    """A base as the previous reconcile of a long-lived link would have stored it."""
    base = {name: BaseEntry(*pair) for name, pair in entries.items()}
    base[STATUS_KEY] = BaseEntry(None, entries.get("status", (None, None))[1])
    base[RELEASED_KEY] = BaseEntry(None, ())
    base[GENERATION_KEY] = BaseEntry(None, "3")
    return base


# ---------------------------------------------------------------- translation

def test_translate_identity_table_table_default_and_unmapped():
    assert translate("x", {}, None) == "x"
    assert translate("low", {"low": "Low"}, None) == "Low"
    assert translate("weird", {"low": "Low"}, "Medium") == "Medium"
    with pytest.raises(Unmapped):
        translate("weird", {"low": "Low"}, None)
    assert translate(None, {"low": "Low"}, None) is None


def test_multi_valued_translates_element_wise_and_stays_sorted():
    assert translate(("ui", "bug", "db"), LABELS.to_tracker, None) == ("Bug", "Database", "UI")


# ---------------------------------------------------------------- fields, one side changed

def test_desk_change_is_copied_to_tracker_and_base_follows():
    m = mapping(PRIORITY)
    base = synced_base(priority=("low", "Low"))
    p = assert_settles(m, desk_item({"priority": "high"}), issue({"priority": "Low"}), base)
    assert p.field_writes == (FieldWrite(Side.TRACKER, "priority", "High", "priority"),)
    assert p.new_base["priority"] == BaseEntry("high", "High")
    assert [d.kind for d in p.decisions] == ["copied"]


def test_tracker_change_is_copied_to_desk():
    m = mapping(PRIORITY)
    base = synced_base(priority=("low", "Low"))
    p = assert_settles(m, desk_item({"priority": "low"}), issue({"priority": "Medium"}), base)
    assert p.field_writes == (FieldWrite(Side.DESK, "priority", "normal", "priority"),)
    assert p.new_base["priority"] == BaseEntry("normal", "Medium")


def test_no_write_when_other_side_already_holds_the_value():
    m = mapping(PRIORITY)
    p = plan(m, LINK, desk_item({"priority": "high"}), issue({"priority": "High"}),
             synced_base(priority=("low", "Low")), MirrorState())
    assert p.field_writes == () and p.decisions == ()
    assert p.new_base["priority"] == BaseEntry("high", "High")


def test_multi_valued_field_copied_translated_and_sorted():
    m = mapping(LABELS)
    p = assert_settles(m, desk_item({"tags": ("ui", "bug")}), issue({"labels": ("Bug",)}),
                       synced_base(labels=(("bug",), ("Bug",))))
    assert p.field_writes == (FieldWrite(Side.TRACKER, "labels", ("Bug", "UI"), "labels"),)


def test_unmapped_value_is_reported_and_other_fields_still_copy():
    m = mapping(PRIORITY, LABELS)
    base = synced_base(priority=("low", "Low"), labels=((), ()))
    p = plan(m, LINK, desk_item({"priority": "urgent", "tags": ("db",)}), issue({"priority": "Low", "labels": ()}),
             base, MirrorState())
    assert p.field_writes == (FieldWrite(Side.TRACKER, "labels", ("Database",), "labels"),)
    unmapped = [d for d in p.decisions if d.kind == "unmapped"]
    assert [(d.field, "urgent" in d.detail) for d in unmapped] == [("priority", True)]
    assert p.new_base["priority"] == base["priority"]   # untouched: copied once the table knows the value


def test_default_covers_a_value_missing_from_the_table():
    rule = replace(PRIORITY, default_to_tracker="Medium")
    p = plan(mapping(rule), LINK, desk_item({"priority": "urgent"}), issue({"priority": "Low"}),
             synced_base(priority=("low", "Low")), MirrorState())
    assert p.field_writes == (FieldWrite(Side.TRACKER, "priority", "Medium", "priority"),)


def test_unchanged_and_echo_of_own_write_give_empty_plan():
    m = mapping(PRIORITY, LABELS)
    base = synced_base(priority=("high", "High"), labels=(("ui",), ("UI",)))
    p = plan(m, LINK, desk_item({"priority": "high", "tags": ("ui",)}),
             issue({"priority": "High", "labels": ("UI",)}), base, MirrorState())
    assert p.empty and p.decisions == ()
    assert dict(p.new_base) == base


# ---------------------------------------------------------------- direction

def test_direction_forbids_copy_reports_skipped_once():
    rule = replace(PRIORITY, direction=Direction.DESK_TO_TRACKER)
    m = mapping(rule)
    base = synced_base(priority=("low", "Low"))
    desk, tracker = desk_item({"priority": "low"}), issue({"priority": "High"})
    p = plan(m, LINK, desk, tracker, base, MirrorState())
    assert p.empty and [d.kind for d in p.decisions] == ["skipped"]
    again = plan(m, LINK, desk, tracker, p.new_base, MirrorState())
    assert again.decisions == () and dict(again.new_base) == dict(p.new_base)


def test_conflict_winner_forbidden_by_direction_is_skipped():
    rule = replace(PRIORITY, direction=Direction.DESK_TO_TRACKER, conflict=ConflictRule.TRACKER_WINS)
    p = plan(mapping(rule), LINK, desk_item({"priority": "normal"}), issue({"priority": "High"}),
             synced_base(priority=("low", "Low")), MirrorState())
    assert p.field_writes == () and [d.kind for d in p.decisions] == ["skipped"]


# ---------------------------------------------------------------- conflicts

@pytest.mark.parametrize("rule,desk_at,tracker_at,winner", [
    (ConflictRule.DESK_WINS, T0, T0 + timedelta(hours=1), Side.DESK),
    (ConflictRule.TRACKER_WINS, T0 + timedelta(hours=1), T0, Side.TRACKER),
    (ConflictRule.NEWEST, T0 + timedelta(hours=1), T0, Side.DESK),
    (ConflictRule.NEWEST, T0, T0 + timedelta(hours=1), Side.TRACKER),
    (ConflictRule.NEWEST, T0, T0, Side.TRACKER),   # tie goes to the tracker
])
def test_conflict_is_decided_by_the_rule_and_names_the_loser(rule, desk_at, tracker_at, winner):
    m = mapping(replace(PRIORITY, conflict=rule))
    desk = desk_item({"priority": "high"}, updated=desk_at)
    tracker = issue({"priority": "Medium"}, updated=tracker_at)
    p = assert_settles(m, desk, tracker, synced_base(priority=("low", "Low")))
    (write,), (decision,) = p.field_writes, p.decisions
    assert decision.kind == "conflict" and decision.field == "priority"
    if winner is Side.DESK:
        assert write == FieldWrite(Side.TRACKER, "priority", "High", "priority")
        assert "'Medium'" in decision.detail
    else:
        assert write == FieldWrite(Side.DESK, "priority", "normal", "priority")
        assert "'high'" in decision.detail
    assert f"{winner.value} wins" in decision.detail


def test_both_changed_to_agreeing_values_is_no_conflict():
    p = plan(mapping(PRIORITY), LINK, desk_item({"priority": "high"}), issue({"priority": "High"}),
             synced_base(priority=("low", "Low")), MirrorState())
    assert p.field_writes == () and p.decisions == ()


# ---------------------------------------------------------------- new link (no base)

def test_new_link_both_ways_conflict_rule_brings_sides_together():
    m = mapping(replace(PRIORITY, conflict=ConflictRule.DESK_WINS))
    p = assert_settles(m, desk_item({"priority": "high"}), issue({"priority": "Low"}), {})
    assert p.field_writes == (FieldWrite(Side.TRACKER, "priority", "High", "priority"),)


def test_new_link_one_way_copies_from_its_source():
    m = mapping(replace(PRIORITY, direction=Direction.TRACKER_TO_DESK, conflict=ConflictRule.DESK_WINS))
    p = assert_settles(m, desk_item({"priority": "high"}), issue({"priority": "Low"}), {})
    assert p.field_writes == (FieldWrite(Side.DESK, "priority", "low", "priority"),)
    assert p.decisions[0].kind == "copied"


def test_new_link_never_lets_an_empty_value_wipe_the_other_side():
    # A blank ticket linked to an issue that has a priority: the issue keeps it,
    # even though the desk wins conflicts; the desk gets the issue's value.
    m = mapping(replace(PRIORITY, conflict=ConflictRule.DESK_WINS))
    p = assert_settles(m, desk_item({}), issue({"priority": "Low"}), {})
    assert p.field_writes == (FieldWrite(Side.DESK, "priority", "low", "priority"),)


def test_new_link_already_agreeing_stores_base_without_writes():
    p = plan(mapping(PRIORITY), LINK, desk_item({"priority": "high"}), issue({"priority": "High"}), {}, MirrorState())
    assert p.empty and p.new_base["priority"] == BaseEntry("high", "High")


# ---------------------------------------------------------------- notes

def test_tracker_change_note_is_keyed_stably_and_posted_for_each_occurrence():
    m = mapping(STATUS)
    base = synced_base(status=("open", "In Progress"))
    desk, tracker = desk_item({"status": "open"}), issue({"status": "Done"})
    p1, p2 = plan(m, LINK, desk, tracker, base, MirrorState()), plan(m, LINK, desk, tracker, base, MirrorState())
    (note,) = p1.notes
    assert note.body == "Jira status changed: In Progress → Done" and not note.public
    assert p2.notes == p1.notes                      # planned twice before the base is stored → same key
    assert note.key.startswith(f"note:{LINK.id}:status:In Progress->Done:")
    # Reopened and done again: the same transition later gets a new key.
    desk2, tracker2, _ = apply(p1, desk, tracker, MirrorState())
    reopen = plan(m, LINK, desk2, replace(tracker2, fields={"status": "In Progress"}), p1.new_base, MirrorState())
    desk3, tracker3, _ = apply(reopen, desk2, replace(tracker2, fields={"status": "In Progress"}), MirrorState())
    done_again = plan(m, LINK, desk3, replace(tracker3, fields={"status": "Done"}), reopen.new_base, MirrorState())
    assert done_again.notes[0].body == note.body and done_again.notes[0].key != note.key


def test_no_change_note_without_a_base():
    p = plan(mapping(STATUS), LINK, desk_item({"status": "open"}), issue({"status": "Done"}), {}, MirrorState())
    assert p.notes == ()


# ---------------------------------------------------------------- fan-out

FANOUT = FanoutRules(on_status=("Done",), desk_status="open", public_reply="Good news: {issue_key} is fixed.")


def test_fanout_on_done_notes_reopens_desk_and_does_not_bounce_back():
    m = mapping(replace(STATUS, note_on_change=False), fanout=FANOUT)
    base = synced_base(status=("pending", "In Progress"))
    desk = desk_item({"status": "pending"})
    tracker = issue({"status": "Done", "fixVersions": ("2.4",)})
    p = assert_settles(m, desk, tracker, base)
    assert p.field_writes == (FieldWrite(Side.DESK, "status", "open", "status"),)
    assert [(n.body, n.public) for n in p.notes] == [
        ("Jira ENG-1 is Done (fix version 2.4).", False), ("Good news: ENG-1 is fixed.", True)]
    assert len({n.key for n in p.notes}) == 2
    assert p.new_base["status"] == BaseEntry("open", "Done")   # "open" is not copied back to Jira


def test_fanout_without_status_rule_writes_desk_status_locator():
    m = mapping(fanout=FanoutRules(on_status=("Done",), desk_status="open"))
    base = synced_base()
    base[STATUS_KEY] = BaseEntry(None, "In Progress")
    p = assert_settles(m, desk_item({"status": "pending"}), issue({"status": "Done"}), base)
    assert p.field_writes == (FieldWrite(Side.DESK, "status", "open", "fanout"),)
    assert p.notes[0].body == "Jira ENG-1 is Done."


def test_fanout_reopens_the_status_locator_not_a_field_showing_the_jira_status():
    # Jira status shown in a desk text field (one way): fan-out must reopen the
    # ticket's own status and leave that field showing "Done".
    shown = FieldRule("jira_status", desk="custom:9002", tracker="status", direction=Direction.TRACKER_TO_DESK)
    m = mapping(shown, fanout=FanoutRules(on_status=("Done",), desk_status="open"))
    base = synced_base(jira_status=("In Progress", "In Progress"))
    base[STATUS_KEY] = BaseEntry(None, "In Progress")
    desk = desk_item({"status": "pending", "custom:9002": "In Progress"})
    p = assert_settles(m, desk, issue({"status": "Done"}), base)
    assert set(p.field_writes) == {FieldWrite(Side.DESK, "custom:9002", "Done", "jira_status"),
                                   FieldWrite(Side.DESK, "status", "open", "fanout")}


def test_no_fanout_on_first_reconcile_of_a_link():
    m = mapping(fanout=FanoutRules(on_status=("Done",), desk_status="open"))
    p = plan(m, LINK, desk_item({"status": "pending"}), issue({"status": "Done"}), {}, MirrorState())
    assert p.empty and p.new_base[STATUS_KEY] == BaseEntry(None, "Done")


def test_release_note_once_per_newly_released_fix_version():
    m = mapping(fanout=FanoutRules(on_status=("Done",), desk_status=None))
    base = synced_base()
    base[STATUS_KEY] = BaseEntry(None, "Done")
    tracker = issue({"status": "Done", "fixVersions": ("2.4", "2.5")}, released=("2.3", "2.4"))
    p = assert_settles(m, desk_item(), tracker, base)
    assert [n.body for n in p.notes] == ["Fix version 2.4 of ENG-1 has been released."]
    assert p.new_base[RELEASED_KEY] == BaseEntry(None, ("2.4",))
    later = replace(tracker, released_versions=("2.3", "2.4", "2.5"))
    p2 = plan(m, LINK, desk_item(), later, p.new_base, MirrorState())
    assert [n.body for n in p2.notes] == ["Fix version 2.5 of ENG-1 has been released."]


# ---------------------------------------------------------------- comments

def test_desk_public_comment_mirrored_with_header_and_attachments():
    att = Attachment("log.txt", "https://z/a/1", 12, "text/plain")
    desk = desk_item(comments=[comment("c1", "It crashes", attachments=[att])])
    p = assert_settles(mapping(), desk, issue(), {})
    assert p.comment_writes == (CommentWrite(Side.TRACKER, "c1",
                                             "Ann wrote on zendesk:123 at 2024-05-01T12:05Z:\nIt crashes",
                                             True, (att,)),)


def test_desk_internal_comment_only_when_enabled():
    desk = desk_item(comments=[comment("c1", public=False)])
    assert plan(mapping(), LINK, desk, issue(), {}, MirrorState()).comment_writes == ()
    m = mapping(comments=CommentRules(desk_internal_to_tracker=True))
    assert [w.source_id for w in plan(m, LINK, desk, issue(), {}, MirrorState()).comment_writes] == ["c1"]


def test_by_integration_and_already_mirrored_comments_are_never_mirrored():
    desk = desk_item(comments=[comment("c1", by_integration=True), comment("c2")])
    tracker = issue(comments=[comment("j1", by_integration=True), comment("j2")])
    p = plan(mapping(), LINK, desk, tracker, {}, MirrorState(to_tracker=frozenset({"c2"})))
    assert [(w.side, w.source_id) for w in p.comment_writes] == [(Side.DESK, "j2")]


def test_history_rule_excludes_comments_before_the_link_unless_enabled():
    old = comment("c0", at=T0 - timedelta(days=1))
    desk = desk_item(comments=[old, comment("c1", at=T0)])   # at the link's creation counts as after
    assert [w.source_id for w in plan(mapping(), LINK, desk, issue(), {}, MirrorState()).comment_writes] == ["c1"]
    m = mapping(comments=CommentRules(mirror_history=True))
    assert [w.source_id for w in plan(m, LINK, desk, issue(), {}, MirrorState()).comment_writes] == ["c0", "c1"]


def test_comment_stamped_to_the_second_of_the_link_counts_as_new():
    # The link was made at 12:00:00.700; Zendesk stamps a reply written at
    # 12:00:00.900 as 12:00:00 -- it must still be mirrored.
    link = replace(LINK, created_at=T0 + timedelta(milliseconds=700))
    desk = desk_item(comments=[comment("c1", at=T0), comment("c0", at=T0 - timedelta(minutes=5))])
    assert [w.source_id for w in plan(mapping(), link, desk, issue(), {}, MirrorState()).comment_writes] == ["c1"]


@pytest.mark.parametrize("body,public,text", [
    ("#public  Fixed in 2.4 \n", True, "Fixed in 2.4"),
    ("  #public: thanks", True, ": thanks"),
    ("#publicity stunt", False, "#publicity stunt"),
    ("internal detail", False, "internal detail"),
])
def test_tracker_comment_public_marker(body, public, text):
    p = plan(mapping(), LINK, desk_item(), issue(comments=[comment("j1", body)]), {}, MirrorState())
    (w,) = p.comment_writes
    assert (w.side, w.public) == (Side.DESK, public)
    assert w.body == f"Ann commented on ENG-1 at 2024-05-01T12:05Z:\n{text}"


def test_tracker_to_desk_disabled():
    m = mapping(comments=CommentRules(tracker_to_desk=False))
    assert plan(m, LINK, desk_item(), issue(comments=[comment("j1")]), {}, MirrorState()).comment_writes == ()


def test_comments_ordered_by_created_time_then_id_whatever_the_input_order():
    desk = desk_item(comments=[comment("b", at=T0 + timedelta(minutes=2)), comment("a", at=T0 + timedelta(minutes=2))])
    tracker = issue(comments=[comment("j", at=T0 + timedelta(minutes=1))])
    p = plan(mapping(), LINK, desk, tracker, {}, MirrorState())
    assert [w.source_id for w in p.comment_writes] == ["j", "a", "b"]
    shuffled = replace(desk, comments=tuple(reversed(desk.comments)))
    assert plan(mapping(), LINK, shuffled, tracker, {}, MirrorState()) == p


# ---------------------------------------------------------------- first sync: the side that started the link wins
# Issue 11 finding 7: an urgent ticket escalated with [escalation.fields] priority = "Medium"
# became a Medium issue and the ticket was rewritten to normal ("tracker wins by rule newest":
# the issue, created from the ticket, is always newer).

def test_first_sync_of_an_escalated_link_keeps_the_agents_value():
    desk = desk_item({"priority": "high"}, updated=T0)
    tracker = issue({"priority": "Medium"}, updated=T0 + timedelta(seconds=5))   # created from the ticket
    p = assert_settles(mapping(PRIORITY), desk, tracker, {})
    assert p.field_writes == (FieldWrite(Side.TRACKER, "priority", "High", "priority"),)
    (decision,) = p.decisions
    assert (decision.kind, decision.kept, decision.replaced) == ("conflict", "high", "Medium")
    assert "desk wins by it started the link" in decision.detail


def test_after_the_first_sync_newest_decides_again():
    base = synced_base(priority=("low", "Low"))
    desk = desk_item({"priority": "high"}, updated=T0)
    tracker = issue({"priority": "Medium"}, updated=T0 + timedelta(seconds=5))
    p = plan(mapping(PRIORITY), LINK, desk, tracker, base, MirrorState())
    assert p.field_writes == (FieldWrite(Side.DESK, "priority", "normal", "priority"),)
    assert (p.decisions[0].kept, p.decisions[0].replaced) == ("Medium", "high")


def test_first_sync_keeps_an_explicit_conflict_rule():
    m = mapping(replace(PRIORITY, conflict=ConflictRule.TRACKER_WINS))
    p = plan(m, LINK, desk_item({"priority": "high"}), issue({"priority": "Medium"}), {}, MirrorState())
    assert p.field_writes == (FieldWrite(Side.DESK, "priority", "normal", "priority"),)


def test_a_link_started_from_the_tracker_lets_the_tracker_win_its_first_sync():
    desk = desk_item({"priority": "high"}, updated=T0 + timedelta(seconds=5))
    p = plan(mapping(PRIORITY), LINK, desk, issue({"priority": "Medium"}), {}, MirrorState(), started_by=Side.TRACKER)
    assert p.field_writes == (FieldWrite(Side.DESK, "priority", "normal", "priority"),)


def test_fanout_can_move_the_desk_to_a_custom_status():
    # Zendesk custom ticket statuses: "Waiting on engineering" → "Fix released" when the issue is Done.
    m = mapping(STATUS, fanout=FanoutRules(on_status=("Done",), desk_status="Fix released",
                                           desk_status_field="custom_status"))
    base = {**synced_base(status=("open", "In Progress")), STATUS_KEY: BaseEntry(None, "In Progress")}
    desk = desk_item({"status": "open", "custom_status": "Waiting on engineering"})
    p = plan(m, LINK, desk, issue({"status": "Done"}), base, MirrorState())
    assert FieldWrite(Side.DESK, "custom_status", "Fix released", "fanout") in p.field_writes
