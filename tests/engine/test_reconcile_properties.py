"""The project's proof: reconcile converges, whatever the events do.

A tiny in-memory world (desk fields + comments, tracker fields + comments, a
store holding the base and the mirrored-comment intents) goes through any
interleaving of edits on both sides and of "events" (an event = run ``plan``
on the state it reads and apply the writes). Events repeat, and may read a
stale snapshot of either side (a delayed read); a write computed from a stale
snapshot is still applied as a set-value, as a real vendor would. An event may
also crash after its writes and before storing the base. After quiescence (one
final reconcile) the sides agree, no comment was mirrored twice, every eligible
comment was mirrored exactly once, and a further plan is empty.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from syncd.domain import Comment, DeskItem, ItemRef, Link, Side, TrackerIssue, Value
from syncd.mapping import ConflictRule, Direction, FanoutRules, FieldRule, Mapping
from syncd.reconcile import BaseEntry, MirrorState, Plan, plan, translate

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
LINK = Link(id=1, desk=ItemRef("zendesk", "5"), issue_id="10001", issue_key="ENG-5", created_at=T0)


def _bijection(pairs: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return pairs, {v: k for k, v in pairs.items()}


_PRIO = _bijection({"low": "Low", "normal": "Medium", "high": "High", "urgent": "Highest"})
_STATUS = _bijection({"new": "To Do", "open": "In Progress", "pending": "Waiting", "solved": "Done"})
_LABELS = _bijection({"bug": "Bug", "ui": "UI", "db": "Database"})

RULES = (
    FieldRule("priority", "priority", "priority", Direction.BOTH, ConflictRule.NEWEST, *_PRIO),
    FieldRule("status", "status", "status", Direction.BOTH, ConflictRule.TRACKER_WINS, *_STATUS,
              note_on_change=True),
    FieldRule("labels", "tags", "labels", Direction.BOTH, ConflictRule.DESK_WINS, *_LABELS),
    FieldRule("team", "custom:1", "customfield_1", Direction.DESK_TO_TRACKER, ConflictRule.NEWEST),
)
DESK_DOMAIN: dict[str, list[Value]] = {
    "priority": [None, *_PRIO[0]],
    "status": list(_STATUS[0]),
    "tags": [(), ("bug",), ("ui",), ("bug", "db"), ("bug", "db", "ui")],
    "custom:1": [None, "alpha", "beta"],
}
TRACKER_DOMAIN: dict[str, list[Value]] = {
    "priority": [None, *_PRIO[1]],
    "status": list(_STATUS[1]),
    "labels": [(), ("Bug",), ("UI",), ("Bug", "Database"), ("Database", "UI")],
    "customfield_1": [None, "alpha", "gamma"],
}


def make_mapping(desk_status: str | None) -> Mapping:
    return Mapping(desk="zendesk", source_path="prop.toml", fields=RULES,
                   fanout=FanoutRules(on_status=("Done",), desk_status=desk_status))


@dataclass
class World:
    desk_fields: dict[str, Value]
    tracker_fields: dict[str, Value]
    desk_comments: list[Comment] = field(default_factory=list)
    tracker_comments: list[Comment] = field(default_factory=list)
    released: tuple[str, ...] = ()
    clock: int = 1
    desk_updated: int = 0
    tracker_updated: int = 0
    # the store
    base: dict[str, BaseEntry] = field(default_factory=dict)
    mirrored: MirrorState = MirrorState()
    note_keys: set[str] = field(default_factory=set)
    # bookkeeping for the assertions
    copies: Counter = field(default_factory=Counter)
    desk_history: list[DeskItem] = field(default_factory=list)
    tracker_history: list[TrackerIssue] = field(default_factory=list)
    next_id: int = 0

    def tick(self) -> datetime:
        self.clock += 1
        return T0 + timedelta(minutes=self.clock)

    def new_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}{self.next_id}"

    def desk(self) -> DeskItem:
        return DeskItem(LINK.desk, "t", "u", "open", "", None, None, dict(self.desk_fields),
                        tuple(self.desk_comments), T0 + timedelta(minutes=self.desk_updated))

    def tracker(self) -> TrackerIssue:
        return TrackerIssue(ItemRef("jira", "10001"), "ENG-5", "u", "s", dict(self.tracker_fields),
                            self.released, tuple(self.tracker_comments),
                            T0 + timedelta(minutes=self.tracker_updated))

    def snapshot(self) -> None:
        self.desk_history.append(self.desk())
        self.tracker_history.append(self.tracker())

    # -- what people do
    def edit(self, side: Side, locator: str, value: Value) -> None:
        self.set_field(side, locator, value)
        self.snapshot()

    def set_field(self, side: Side, locator: str, value: Value) -> None:
        self.tick()
        if side is Side.DESK:
            self.desk_fields[locator], self.desk_updated = value, self.clock
        else:
            self.tracker_fields[locator], self.tracker_updated = value, self.clock

    def comment(self, side: Side, public: bool) -> None:
        at = self.tick()
        if side is Side.DESK:
            self.desk_comments.append(Comment(self.new_id("d"), "Ann", "help", public, at))
        else:
            body = "#public fixed" if public else "looking"
            self.tracker_comments.append(Comment(self.new_id("j"), "Bob", body, False, at))
        self.snapshot()

    def release(self) -> None:
        self.tick()
        version = f"1.{self.clock}"
        fix = self.tracker_fields.get("fixVersions") or ()
        self.tracker_fields["fixVersions"] = tuple(sorted((*fix, version)))
        self.released = (*self.released, version)
        self.tracker_updated = self.clock
        self.snapshot()

    # -- what syncd does
    def apply(self, p: Plan) -> None:
        """Apply writes as the engine does: set-values; comments and notes recorded as intents first."""
        for w in p.field_writes:
            self.set_field(w.side, w.locator, w.value)
        for w in p.comment_writes:
            made = Comment(self.new_id("s"), "syncd", w.body, w.public, self.tick(), by_integration=True)
            self.copies[(w.side, w.source_id)] += 1
            if w.side is Side.DESK:
                self.desk_comments.append(made)
                self.mirrored = MirrorState(self.mirrored.to_tracker, self.mirrored.to_desk | {w.source_id})
            else:
                self.tracker_comments.append(made)
                self.mirrored = MirrorState(self.mirrored.to_tracker | {w.source_id}, self.mirrored.to_desk)
        for n in p.notes:
            if n.key not in self.note_keys:   # the intent key's unique constraint
                self.note_keys.add(n.key)
                self.desk_comments.append(Comment(self.new_id("n"), "syncd", n.body, n.public, self.tick(),
                                                  by_integration=True))
        self.snapshot()

    def event(self, mapping: Mapping, desk_lag: int = 0, tracker_lag: int = 0, store: bool = True) -> Plan:
        desk = self.desk_history[max(0, len(self.desk_history) - 1 - desk_lag)]
        tracker = self.tracker_history[max(0, len(self.tracker_history) - 1 - tracker_lag)]
        p = plan(mapping, LINK, desk, tracker, self.base, self.mirrored)
        self.apply(p)
        if store:
            self.base = dict(p.new_base)
        return p

    def fresh_plan(self, mapping: Mapping) -> Plan:
        return plan(mapping, LINK, self.desk(), self.tracker(), self.base, self.mirrored)


def operations_over(desk_domain: dict[str, list[Value]], tracker_domain: dict[str, list[Value]]):
    edits = st.one_of(
        st.tuples(st.just("edit_desk"), st.sampled_from(list(desk_domain)), st.integers(0, 10)),
        st.tuples(st.just("edit_tracker"), st.sampled_from(list(tracker_domain)), st.integers(0, 10)),
    )
    comments = st.tuples(st.sampled_from(["comment_desk", "comment_tracker"]), st.booleans())
    events = st.tuples(st.just("event"), st.integers(0, 4), st.integers(0, 4), st.booleans())
    releases = st.tuples(st.just("release"))
    return st.lists(st.one_of(edits, comments, events, events, releases), max_size=30)


def initial(domain: dict[str, list[Value]]):
    return st.fixed_dictionaries({k: st.sampled_from(v) for k, v in domain.items()})


operations = operations_over(DESK_DOMAIN, TRACKER_DOMAIN)
initial_desk = initial(DESK_DOMAIN)
initial_tracker = initial(TRACKER_DOMAIN)


def _world(desk_fields, tracker_fields) -> World:
    world = World(dict(desk_fields), dict(tracker_fields))
    # Comments from before the link existed: history, never mirrored.
    world.desk_comments.append(Comment("old-d", "Ann", "before", True, T0 - timedelta(days=1)))
    world.tracker_comments.append(Comment("old-j", "Bob", "#public before", False, T0 - timedelta(days=1)))
    world.snapshot()
    return world


def _run(world: World, mapping: Mapping, ops, desk_domain: dict[str, list[Value]] = DESK_DOMAIN,
         tracker_domain: dict[str, list[Value]] = TRACKER_DOMAIN) -> None:
    for op in ops:
        kind = op[0]
        if kind == "edit_desk":
            domain = desk_domain[op[1]]
            world.edit(Side.DESK, op[1], domain[op[2] % len(domain)])
        elif kind == "edit_tracker":
            domain = tracker_domain[op[1]]
            world.edit(Side.TRACKER, op[1], domain[op[2] % len(domain)])
        elif kind == "comment_desk":
            world.comment(Side.DESK, op[1])
        elif kind == "comment_tracker":
            world.comment(Side.TRACKER, op[1])
        elif kind == "release":
            world.release()
        else:
            _, desk_lag, tracker_lag, store = op
            world.event(mapping, desk_lag, tracker_lag, store)
            if desk_lag == tracker_lag == 0 and store:
                # A fresh, stored reconcile leaves nothing to do: the echo of its own writes is empty.
                assert world.fresh_plan(mapping).empty


def _assert_converged(world: World, mapping: Mapping, skip_fields: frozenset[str] = frozenset()) -> None:
    final = world.fresh_plan(mapping)
    assert final.empty, final
    assert dict(final.new_base) == world.base
    for rule in mapping.fields:
        if rule.direction is Direction.BOTH and rule.name not in skip_fields:
            desk_value, tracker_value = world.desk_fields.get(rule.desk), world.tracker_fields.get(rule.tracker)
            # Agreement through the tables, read either way: a lossy table (Jira's
            # Lowest and Low both mean Zendesk's low) agrees from the tracker side.
            assert (translate(desk_value, rule.to_tracker, None) == tracker_value
                    or translate(tracker_value, rule.to_desk, None) == desk_value), rule.name
    assert all(n == 1 for n in world.copies.values()), world.copies   # no comment mirrored twice
    for c in world.desk_comments:
        expected = int(not c.by_integration and c.public and c.created_at >= T0)
        assert world.copies[(Side.TRACKER, c.id)] == expected, c
    for c in world.tracker_comments:
        expected = int(not c.by_integration and c.created_at >= T0)
        assert world.copies[(Side.DESK, c.id)] == expected, c
    public_copies = {c.body.split("\n", 1)[1] for c in world.desk_comments
                     if c.by_integration and c.public and c.author == "syncd" and "commented on" in c.body}
    assert public_copies <= {"fixed"}   # the marker is stripped from public replies


@settings(max_examples=200, deadline=None)
@given(initial_desk, initial_tracker, operations)
def test_reconcile_converges_under_any_interleaving(desk_fields, tracker_fields, ops):
    mapping = make_mapping(desk_status=None)
    world = _world(desk_fields, tracker_fields)
    _run(world, mapping, ops)
    world.event(mapping)            # quiescence: one last reconcile on fresh reads
    _assert_converged(world, mapping)


@settings(max_examples=100, deadline=None)
@given(initial_desk, initial_tracker, operations)
def test_fanout_reopening_the_desk_never_loops(desk_fields, tracker_fields, ops):
    # Fan-out sets the desk to "open" when Jira reaches Done, so status may
    # legitimately differ across sides; everything else must still converge.
    mapping = make_mapping(desk_status="open")
    world = _world(desk_fields, tracker_fields)
    _run(world, mapping, ops)
    world.event(mapping)
    _assert_converged(world, mapping, skip_fields=frozenset({"status"}))


@settings(max_examples=100, deadline=None)
@given(initial_desk, initial_tracker, operations, st.randoms(use_true_random=False))
def test_plan_depends_only_on_its_inputs(desk_fields, tracker_fields, ops, rnd: random.Random):
    mapping = make_mapping(desk_status="open")
    world = _world(desk_fields, tracker_fields)
    _run(world, mapping, ops)
    desk, tracker = world.desk(), world.tracker()
    expected = plan(mapping, LINK, desk, tracker, world.base, world.mirrored)
    shuffled_comments = list(desk.comments)
    rnd.shuffle(shuffled_comments)
    shuffled_fields = list(tracker.fields.items())
    rnd.shuffle(shuffled_fields)
    again = plan(mapping, LINK, replace(desk, comments=tuple(shuffled_comments)),
                 replace(tracker, fields=dict(shuffled_fields)), dict(reversed(list(world.base.items()))),
                 world.mirrored)
    assert again == expected


# -- the shipped mappings: both pairs (issue 4 asks the property of the Intercom pair too)

def _shipped(name: str) -> Mapping:
    from pathlib import Path
    from syncd.mapping_loader import load_mapping, resolve_mapping_path
    return load_mapping(resolve_mapping_path(f"builtin:{name}", Path(".")))


def _domains(mapping: Mapping) -> tuple[dict[str, list[Value]], dict[str, list[Value]]]:
    """Each locator's values: the mapping's own table entries, or free text."""
    desk: dict[str, set] = {}
    tracker: dict[str, set] = {}
    for rule in mapping.fields:
        desk.setdefault(rule.desk, set()).update(set(rule.to_tracker) | set(rule.to_desk.values()) or {"a", "b"})
        tracker.setdefault(rule.tracker, set()).update(set(rule.to_desk) | set(rule.to_tracker.values()) or {"a", "b"})
    return ({k: [None, *sorted(v)] for k, v in desk.items()}, {k: [None, *sorted(v)] for k, v in tracker.items()})


def _shipped_property(name: str):
    mapping = _shipped(name)
    desk_domain, tracker_domain = _domains(mapping)

    @settings(max_examples=100, deadline=None)
    @given(initial(desk_domain), initial(tracker_domain), operations_over(desk_domain, tracker_domain))
    def prop(desk_fields, tracker_fields, ops):
        world = _world(desk_fields, tracker_fields)
        _run(world, mapping, ops, desk_domain, tracker_domain)
        world.event(mapping)
        # Fan-out reopens the desk item on Done: its status field may differ by design.
        _assert_converged(world, mapping, skip_fields=frozenset({"desk_state", "desk_status"}))

    return prop


test_shipped_intercom_mapping_converges = _shipped_property("intercom-jira")
test_shipped_zendesk_mapping_converges = _shipped_property("zendesk-jira")


# ---------------------------------------------------------------- first sync (issue 11 finding 7)

@settings(max_examples=200, deadline=None)
@given(desk_value=st.sampled_from(DESK_DOMAIN["priority"]), tracker_value=st.sampled_from(TRACKER_DOMAIN["priority"]),
       desk_later=st.booleans(), started_by=st.sampled_from([Side.DESK, Side.TRACKER]))
def test_first_sync_the_starting_side_keeps_its_value(desk_value, tracker_value, desk_later, started_by):
    """Whatever the clocks say, on a link's first sync a non-empty value on the
    side that started the link is never overwritten by a ``newest`` rule, the
    other side ends up agreeing with it, and a second plan is empty."""
    rule = RULES[0]
    m = Mapping(desk="zendesk", source_path="p.toml", fields=(rule,), fanout=FanoutRules(on_status=()))
    later, earlier = T0 + timedelta(seconds=30), T0
    desk = DeskItem(ref=LINK.desk, title="t", url="u", status="open", description="", requester=None,
                    organization=None, fields={"priority": desk_value}, comments=(),
                    updated_at=later if desk_later else earlier)
    tracker = TrackerIssue(ref=ItemRef("jira", "10001"), key="ENG-5", url="u", summary="t",
                           fields={"priority": tracker_value}, released_versions=(), comments=(),
                           updated_at=earlier if desk_later else later)
    p = plan(m, LINK, desk, tracker, {}, MirrorState(), started_by=started_by)
    kept = desk_value if started_by is Side.DESK else tracker_value
    if kept is not None:
        assert all(w.side is started_by.other for w in p.field_writes), p
    fields = {Side.DESK: dict(desk.fields), Side.TRACKER: dict(tracker.fields)}
    for w in p.field_writes:
        fields[w.side][w.locator] = w.value
    assert translate(fields[Side.DESK]["priority"], rule.to_tracker, None) == fields[Side.TRACKER]["priority"]
    again = plan(m, LINK, replace(desk, fields=fields[Side.DESK]), replace(tracker, fields=fields[Side.TRACKER]),
                 p.new_base, MirrorState(), started_by=started_by)
    assert again.field_writes == ()
