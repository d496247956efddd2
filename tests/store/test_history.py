"""The per-link history (syncd/history.py): attribution of the engine's writes (pure), and
recording, reading and pruning on SQLite and Postgres."""

from __future__ import annotations

from syncd import history
from syncd.config import RetentionSettings
from syncd.domain import ItemRef, Side
from syncd.engine import Write
from syncd.reconcile import BaseEntry, CommentWrite, Decision, FieldWrite, NoteWrite, Plan
from syncd.retention import Housekeeper
from syncd.sim.core import Clock
from syncd.store import Store

Z1 = ItemRef.parse("zendesk:1")
Z2 = ItemRef.parse("zendesk:2")


def _plan(*, fields=(), comments=(), notes=(), decisions=()) -> Plan:
    return Plan(tuple(fields), tuple(comments), tuple(notes), {"priority": BaseEntry("high", "High")},
                tuple(decisions))


# -- attribution (pure) ------------------------------------------------------------------------

def test_attributed_tags_link_old_value_and_rule_with_the_values_a_conflict_compared(store: Store) -> None:
    link = store.add_link(Z1, "10001", "SUP-1")
    conflict = Decision("priority", "conflict", "changed on both sides; tracker wins by rule newest: "
                        "desk value 'low' replaced by 'urgent'", kept="Highest", replaced="low")
    p = _plan(fields=[FieldWrite(Side.DESK, "priority", "urgent", "priority", old="low")],
              comments=[CommentWrite(Side.DESK, "77", "Looking", public=False)],
              notes=[NoteWrite("fanout:5:status:Done:abc", "Fixed")], decisions=[conflict])
    writes = [Write("zendesk:1", "field:priority", "urgent"),
              Write("zendesk:1", "comment", "Looking", source="77", mirrored="9001"),
              Write("zendesk:1", "note", "Fixed", source="fanout:5:status:Done:abc", mirrored="9002"),
              Write("SUP-1", "comment", "replayed", source="88", mirrored="12")]
    out = history.attributed(writes, link, [p])
    assert [w.link for w in out] == [link.id] * 4
    assert out[0].old == "low"
    assert out[0].why == ("rule priority (conflict): changed on both sides; tracker wins by rule newest: "
                          "desk value 'low' replaced by 'urgent'")
    assert out[1].why == "comment 77 of the tracker mirrored (internal)"
    assert out[2].why == "fan-out: the issue entered a fan-out status"
    assert out[3].why.startswith("recovery:")   # not in this plan: an earlier attempt's, written again


def test_note_reasons_are_read_from_the_intent_key() -> None:
    assert history.note_why("note:escalated:4") == "escalation: the issue was created for this item"
    assert history.note_why("note:badkey:zendesk:1:NOPE-1") == "the key field names no Jira issue (NOPE-1)"
    assert history.note_why("fanout:4:release:1.0:abc") == "fix version 1.0 released"
    assert history.note_why("fanout:4:status:Done:abc:reply").endswith("(public reply)")
    assert history.note_why("note:4:jira_status:To Do->Done:abc") == "rule jira_status: note_on_change"


def test_writes_outside_a_link_go_to_the_link_their_target_names_else_to_the_item(store: Store) -> None:
    a = store.add_link(Z1, "10001", "SUP-1")
    b = store.add_link(Z1, "10002", "SUP-2")
    writes = [Write("SUP-2", "create", "created for zendesk:1"),        # names link b only
              Write("zendesk:1", "field:tags+", "jira_linked")]         # the item: both links
    assert history.record(store, writes, Z1, "zendesk:1 (webhook:zendesk)") == 2
    with store.reading() as conn:
        of_b = history.read(conn, link_id=b.id)
        of_a = history.read(conn, desk_ref="zendesk:1")
    assert [(e.what, e.link_id, e.side, e.issue_key) for e in of_b] == [("create", b.id, "tracker", "SUP-2")]
    assert of_b[0].why.startswith("escalation:") and of_b[0].new == "created for zendesk:1"
    # By item: its own entry and its links' (a's history by link is empty).
    assert [(e.what, e.link_id) for e in of_a] == [("field:tags+", None), ("create", b.id)]
    assert (of_a[0].desk, of_a[0].why, of_a[0].trigger) == ("zendesk:1", history.BOOKKEEPING,
                                                            "zendesk:1 (webhook:zendesk)")
    store.remove_link(Z1, "10002")   # what was written for a removed link stays readable by item
    with store.reading() as conn:
        assert history.read(conn, link_id=a.id) == []
        assert [e.what for e in history.read(conn, issue_id="10002")] == ["create"]
        assert len(history.read(conn, desk_ref="zendesk:1")) == 2


# -- recording, reading, pruning ---------------------------------------------------------------

def test_history_is_newest_first_paged_and_kept_apart_per_link(store: Store) -> None:
    a = store.add_link(Z1, "10001", "SUP-1")
    b = store.add_link(Z2, "10001", "SUP-1")
    for n in range(5):
        history.record(store, [Write("SUP-1", "field:priority", f"v{n}", link=a.id, old=f"v{n - 1}",
                                     why="rule priority")], Z1, "zendesk:1 (poll:zendesk)")
    history.record(store, [Write("zendesk:2", "comment", "<script>x</script>", link=b.id, source="5",
                                 mirrored="6")], Z2, "jira:10001 (webhook:jira)")
    with store.reading() as conn:
        first = history.read(conn, link_id=a.id, limit=3)
        rest = history.read(conn, link_id=a.id, limit=3, before=first[-1].id)
        of_b = history.read(conn, link_id=b.id)
    assert [e.new for e in first] == ["v4", "v3", "v2"] and [e.new for e in rest] == ["v1", "v0"]
    assert first[0].old == "v3" and first[0].side == "tracker" and first[0].issue_id == "10001"
    assert [(e.what, e.source_id, e.mirrored_id, e.new) for e in of_b] == [("comment", "5", "6", "<script>x</script>")]


def test_long_values_are_cut_to_their_columns_not_refused(store: Store) -> None:
    link = store.add_link(Z1, "10001", "SUP-1")
    key = "note:1:summary:" + "x" * 400
    history.record(store, [Write("zendesk:1", "note", "y" * 5000, link=link.id, source=key, mirrored="1")], Z1,
                   "t" * 400)
    with store.reading() as conn:
        (entry,) = history.read(conn, link_id=link.id)
    assert len(entry.source_id) == 300 and entry.source_id.endswith("…")
    assert entry.new == "y" * 5000 and len(entry.trigger) == 300


def test_housekeeping_prunes_history_after_history_days(store: Store, clock: Clock) -> None:
    link = store.add_link(Z1, "10001", "SUP-1")
    history.record(store, [Write("SUP-1", "field:priority", "High", link=link.id)], Z1, "old")
    clock.advance(3 * 86400)
    history.record(store, [Write("SUP-1", "field:priority", "Low", link=link.id)], Z1, "new")
    keeper = Housekeeper(store, RetentionSettings(history_days=2), settle_seconds=60)
    assert keeper.run().history == 1
    with store.reading() as conn:
        assert [e.trigger for e in history.read(conn, link_id=link.id)] == ["new"]
