"""The pure reconcile function: mapping + base + both current states → writes + new base.

:func:`plan` looks at ONE link: the desk item, the Jira issue, the *base* (the
values of every mapped field the last time the link was in sync) and the set of
comments already mirrored. It does no I/O, reads no clock and logs nothing: the
engine applies the writes (each one idempotent, intents recorded first), logs
the :class:`Decision` values and stores ``new_base``.

Why a base instead of "last writer wins": with a base, a value that changed on
one side only is copied across, and a write the daemon made itself comes back
with both sides equal to the base, so it produces nothing — no echo loop
without any "ignore my own user" rule. Applying a plan's writes and planning
again yields an empty plan.

Choices worth knowing:

* Conflict rule ``newest`` compares ``DeskItem.updated_at`` with
  ``TrackerIssue.updated_at``; on a tie the **tracker wins** (Jira is the
  engineering system of record, and a fixed tie-break keeps the result
  deterministic).
* On a new link (no base entry for a field) the direction's source side counts
  as changed; for ``both`` both count as changed and the conflict rule decides,
  unless the values already agree. On the link's *first* sync (empty base) rule
  ``newest`` would compare nothing a person did — the issue was just created
  from the ticket, so it is always newer — and would throw away the agent's
  value for an escalation default (issue 11 finding 7: an urgent ticket
  rewritten to normal). There the side that started the link wins
  (``started_by``, the desk: every link syncd makes starts from a desk item —
  escalation creates the issue from it, ``syncd link`` links it to an issue).
  Explicit ``desk``/``tracker`` rules still decide.
* A change the direction forbids is recorded as ``skipped`` once and the base
  moves on, so it is not reported again on every reconcile.
* An unmapped value (missing from a non-empty table, no default) is reported
  as ``unmapped`` on every reconcile and the field's base stays where it was, so
  the value is copied once the table is fixed.
* The base carries reserved entries (names starting with ``__``): the Jira
  status and released fix versions last seen (fan-out triggers on *entering*
  a status / *newly* released versions) and a generation counter. Note keys
  include a digest of the base they were computed from, so the same change
  planned twice before the base is stored yields the same key (posted once),
  while the same transition happening again later (Done → reopened → Done)
  yields a new key because the generation has moved on. Mapping rule names
  must therefore not start with ``__``.
* Fan-out does not fire on the first reconcile of a link (no status seen
  yet): linking a ticket to an issue that is already Done does not reopen it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime, timedelta, timezone
from typing import Mapping as TMapping

from .domain import Attachment, BaseEntry, Comment, DeskItem, Link, Side, TrackerIssue, Value
from .mapping import ConflictRule, FieldRule, Mapping

STATUS_KEY = "__status__"          # tracker status last seen (desk side unused)
RELEASED_KEY = "__released__"      # fix versions of the issue already released when last seen
GENERATION_KEY = "__generation__"  # bumped whenever the stored base changes
RESERVED_PREFIX = "__"
STATUS_LOCATOR = "status"          # the Jira locator fan-out watches
FIX_VERSIONS_LOCATOR = "fixVersions"

__all__ = [
    "BaseEntry", "FieldWrite", "CommentWrite", "NoteWrite", "Decision", "Plan", "MirrorState",
    "Unmapped", "plan", "translate", "reserved",
    "STATUS_KEY", "RELEASED_KEY", "GENERATION_KEY",
]


@dataclass(frozen=True)
class FieldWrite:
    """Set ``locator`` on ``side`` to ``value`` (a set-value, so repeating it is harmless)."""

    side: Side
    locator: str
    value: Value
    field: str          # mapping rule name ("fanout" for a fan-out write with no status rule)
    # The value it replaces on ``side`` (the link's history shows old → new); not part of
    # the write's identity: the same write planned from two reads is the same write.
    old: Value = dataclass_field(default=None, compare=False)
    # Set by fan-out: the value is fan-out's own (the status it reopens to, and that status
    # as Jira shows it), not the desk's: no value a remembered desk item holds decides it
    # (syncd.link_reconcile._may_write_unread).
    fanout: bool = dataclass_field(default=False, compare=False)


@dataclass(frozen=True)
class CommentWrite:
    """Mirror comment ``source_id`` onto ``side`` (the side it will be written to)."""

    side: Side
    source_id: str
    body: str
    public: bool
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class NoteWrite:
    """A note posted on the desk item. ``key`` is unique per change occurrence:
    the engine uses it as the intent key so the note is posted once."""

    key: str
    body: str
    public: bool = False


@dataclass(frozen=True)
class Decision:
    """Something the engine should log. ``kind``: copied | conflict | unmapped | skipped.

    For a conflict, ``kept`` and ``replaced`` are the winning value and the value
    a person set on the losing side that is overwritten (each in its own terms),
    so the log line shows both (the engine logs conflicts at warning)."""

    field: str
    kind: str
    detail: str
    kept: str | None = None
    replaced: str | None = None


@dataclass(frozen=True)
class Plan:
    field_writes: tuple[FieldWrite, ...]
    comment_writes: tuple[CommentWrite, ...]
    notes: tuple[NoteWrite, ...]
    new_base: TMapping[str, BaseEntry]
    decisions: tuple[Decision, ...]
    # A fan-out on a Jira status is in this plan. Unless planned with ``reopen_blind``,
    # whether it reopens the desk item was decided from the item's status as given: the
    # engine then needs that status fresh (syncd.link_reconcile._may_write_unread).
    fans_out: bool = False

    @property
    def empty(self) -> bool:
        """Nothing to write. ``new_base`` may still differ from the stored base
        (e.g. the first reconcile of a link whose sides already agree): the
        engine stores it whenever it differs."""
        return not (self.field_writes or self.comment_writes or self.notes)


@dataclass(frozen=True)
class MirrorState:
    """Source comment ids already mirrored (intents done or pending), per direction."""

    to_tracker: frozenset[str] = frozenset()
    to_desk: frozenset[str] = frozenset()


class Unmapped(Exception):
    """A value has no entry in a non-empty translation table and no default."""

    def __init__(self, value: str):
        self.value = value
        super().__init__(value)


# ---------------------------------------------------------------- translation

def translate(value: Value, table: TMapping[str, str], default: str | None) -> Value:
    """Translate one side's value into the other side's terms.

    An empty table copies as is; multi-valued tuples translate element-wise and
    stay sorted (and free of duplicates, as canonical values are sets).
    Raises :class:`Unmapped` for a value the table does not know and no default covers.
    """
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(sorted({_translate_one(v, table, default) for v in value}))
    return _translate_one(value, table, default)


def _translate_one(value: str, table: TMapping[str, str], default: str | None) -> str:
    if not table:
        return value
    if value in table:
        return table[value]
    if default is not None:
        return default
    raise Unmapped(value)


def _to_tracker(rule: FieldRule, value: Value) -> Value:
    return translate(value, rule.to_tracker, rule.default_to_tracker)


def _to_desk(rule: FieldRule, value: Value) -> Value:
    return translate(value, rule.to_desk, rule.default_to_desk)


def _same(a: Value, b: Value) -> bool:
    # Connectors may report an empty multi-valued field as None or as ():
    # both mean "empty", and treating them as different would write forever.
    # A text field shows a multi-valued one (fix versions) as "1.0, 1.1".
    if isinstance(a, tuple) and isinstance(b, str):
        return ", ".join(a) == b
    if isinstance(b, tuple) and isinstance(a, str):
        return ", ".join(b) == a
    return a == b or (not a and not b and a != "" and b != "")


def _agree(rule: FieldRule, desk: Value, tracker: Value) -> bool:
    """True when either side's value, translated, is what the other side holds."""
    try:
        if _same(_to_tracker(rule, desk), tracker):
            return True
    except Unmapped:
        pass
    try:
        return _same(_to_desk(rule, tracker), desk)
    except Unmapped:
        return False


def _show(value: Value) -> str:
    if value is None or value == ():
        return "(none)"
    if isinstance(value, tuple):
        return ", ".join(value)
    return value


# ---------------------------------------------------------------- fields

@dataclass(frozen=True)
class _FieldOutcome:
    write: FieldWrite | None = None
    base: BaseEntry | None = None       # None: keep the stored entry
    decision: Decision | None = None


def _winner(rule: FieldRule, desk: DeskItem, tracker: TrackerIssue) -> Side:
    if rule.conflict is ConflictRule.DESK_WINS:
        return Side.DESK
    if rule.conflict is ConflictRule.TRACKER_WINS:
        return Side.TRACKER
    # Newest wins; a tie goes to the tracker (documented in the module docstring).
    return Side.DESK if _utc(desk.updated_at) > _utc(tracker.updated_at) else Side.TRACKER


def _changed(rule: FieldRule, side: Side, value: Value, entry: BaseEntry | None) -> bool:
    if entry is None:
        # New link: the side the direction copies from counts as changed, so
        # the first reconcile brings both sides into agreement -- except an
        # empty value: linking a blank ticket must not wipe the issue's value.
        return rule.direction.allows(side) and not _same(value, None)
    return value != (entry.desk if side is Side.DESK else entry.tracker)


def _reconcile_field(rule: FieldRule, desk: DeskItem, tracker: TrackerIssue,
                     entry: BaseEntry | None, started_by: Side | None = None) -> _FieldOutcome:
    """``started_by``: on the link's first sync, the side that started it (wins a
    ``newest`` conflict); ``None`` on every later sync."""
    d, t = desk.fields.get(rule.desk), tracker.fields.get(rule.tracker)
    desk_changed = _changed(rule, Side.DESK, d, entry)
    tracker_changed = _changed(rule, Side.TRACKER, t, entry)
    if not desk_changed and not tracker_changed:
        return _FieldOutcome()
    if _agree(rule, d, t):
        return _FieldOutcome(base=BaseEntry(d, t))
    conflict = desk_changed and tracker_changed
    if conflict and started_by is not None and rule.conflict is ConflictRule.NEWEST:
        source = started_by
    else:
        source = _winner(rule, desk, tracker) if conflict else (Side.DESK if desk_changed else Side.TRACKER)
    if not rule.direction.allows(source):
        detail = (f"{source.value} value {_show(d if source is Side.DESK else t)!r} not copied: "
                  f"direction is {rule.direction.value}")
        return _FieldOutcome(base=BaseEntry(d, t), decision=Decision(rule.name, "skipped", detail))
    why = "it started the link" if conflict and started_by is source and rule.conflict is ConflictRule.NEWEST \
        else f"rule {rule.conflict.value}"
    return _copy(rule, source, d, t, conflict, why)


def _copy(rule: FieldRule, source: Side, d: Value, t: Value, conflict: bool, why: str = "") -> _FieldOutcome:
    try:
        value = _to_tracker(rule, d) if source is Side.DESK else _to_desk(rule, t)
    except Unmapped as exc:
        detail = f"{source.value} value {exc.value!r} has no {source.other.value} equivalent in the mapping"
        return _FieldOutcome(decision=Decision(rule.name, "unmapped", detail))
    target = source.other
    locator = rule.tracker if target is Side.TRACKER else rule.desk
    loser = t if target is Side.TRACKER else d
    write = FieldWrite(target, locator, value, rule.name, old=loser)
    base = BaseEntry(d, value) if target is Side.TRACKER else BaseEntry(value, t)
    if conflict:
        detail = (f"changed on both sides; {source.value} wins by {why}: "
                  f"{target.value} value {_show(loser)!r} replaced by {_show(value)!r}")
        return _FieldOutcome(write, base, Decision(rule.name, "conflict", detail,
                                                   kept=_show(d if source is Side.DESK else t), replaced=_show(loser)))
    detail = f"{source.value} → {target.value}: {_show(loser)!r} → {_show(value)!r}"
    return _FieldOutcome(write, base, Decision(rule.name, "copied", detail))


# ---------------------------------------------------------------- notes & fan-out

def _digest(base: TMapping[str, BaseEntry]) -> str:
    """Stable across processes (unlike ``hash``): part of every note key."""
    text = repr(sorted((name, entry.desk, entry.tracker) for name, entry in base.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _change_notes(mapping: Mapping, link: Link, tracker: TrackerIssue,
                  base: TMapping[str, BaseEntry], digest: str) -> list[NoteWrite]:
    notes = []
    for rule in mapping.fields:
        entry = base.get(rule.name)
        new = tracker.fields.get(rule.tracker)
        if rule.note_on_change and entry is not None and new != entry.tracker:
            old = entry.tracker
            notes.append(NoteWrite(
                key=f"note:{link.id}:{rule.name}:{_show(old)}->{_show(new)}:{digest}",
                body=f"Jira {rule.name} changed: {_show(old)} → {_show(new)}",
            ))
    return notes


def _as_tuple(value: Value) -> tuple[str, ...]:
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


@dataclass(frozen=True)
class _Fanout:
    notes: tuple[NoteWrite, ...]
    desk_status: str | None     # desk status to set, None for none


def _fanout(mapping: Mapping, link: Link, tracker: TrackerIssue, status: Value, fix_versions: Value,
            base: TMapping[str, BaseEntry], digest: str) -> _Fanout:
    rules = mapping.fanout
    entry = base.get(STATUS_KEY)
    if entry is None or status == entry.tracker or status not in rules.on_status:
        return _Fanout((), None)
    versions = _as_tuple(fix_versions)
    values = {
        "issue_key": tracker.key,
        "status": _show(status),
        "fix_suffix": f" (fix version {', '.join(versions)})" if versions else "",
        "issue_url": tracker.url,
    }
    key = f"fanout:{link.id}:status:{status}:{digest}"
    notes = [NoteWrite(key, _fill(rules.note, values))]
    if rules.public_reply:
        notes.append(NoteWrite(f"{key}:reply",
                               _fill(rules.public_reply, values), public=True))
    return _Fanout(tuple(notes), rules.desk_status)


def _released(tracker: TrackerIssue, fix_versions: Value) -> tuple[str, ...]:
    return tuple(sorted(set(tracker.released_versions) & set(_as_tuple(fix_versions))))


def _release_notes(mapping: Mapping, link: Link, tracker: TrackerIssue, released: tuple[str, ...],
                   base: TMapping[str, BaseEntry], digest: str) -> list[NoteWrite]:
    entry = base.get(RELEASED_KEY)
    if entry is None:   # first look at this link: record, do not announce old releases
        return []
    newly = sorted(set(released) - set(_as_tuple(entry.tracker)))
    return [
        NoteWrite(f"fanout:{link.id}:release:{version}:{digest}",
                  _fill(mapping.fanout.on_release_note, {"version": version, "issue_key": tracker.key,
                                                         "issue_url": tracker.url}))
        for version in newly
    ]


class _Keep(dict):
    """``format_map`` helper: an unknown placeholder stays as written instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, values: TMapping[str, str]) -> str:
    return template.format_map(_Keep(values))


# ---------------------------------------------------------------- comments

def _utc(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC, so naive and aware values compare.
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _minutes(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%MZ")


def _in_scope(comment: Comment, link: Link, mapping: Mapping, done: frozenset[str]) -> bool:
    if comment.by_integration or comment.id in done:
        return False
    return mapping.comments.mirror_history or _utc(comment.created_at) >= _history_cutoff(link)


# Vendors stamp comments to the whole second (Zendesk, Intercom) while the link's
# creation time has microseconds: a reply written in the same second as the link
# would look older than it. Anything from the second before on counts as new.
HISTORY_SLACK = timedelta(seconds=1)


def _history_cutoff(link: Link) -> datetime:
    return _utc(link.created_at).replace(microsecond=0) - HISTORY_SLACK


def _split_marker(body: str, marker: str) -> tuple[bool, str]:
    """``(public, body without marker)``. The marker must stand alone
    (``#public`` matches ``#public: hi`` but not ``#publicity``)."""
    text = body.lstrip()
    if not marker or not text.startswith(marker):
        return False, body
    rest = text[len(marker):]
    if rest and (rest[0].isalnum() or rest[0] == "_"):
        return False, body
    return True, rest.strip()


_Pending = list[tuple[Comment, CommentWrite]]   # source comment + the write that mirrors it


def _desk_comments(mapping: Mapping, link: Link, desk: DeskItem, done: frozenset[str]) -> _Pending:
    rules = mapping.comments
    out = []
    for c in desk.comments:
        wanted = rules.desk_public_to_tracker if c.public else rules.desk_internal_to_tracker
        if wanted and _in_scope(c, link, mapping, done):
            header = _fill(rules.to_tracker_header,
                           {"author": c.author, "desk_ref": str(desk.ref), "created": _minutes(c.created_at)})
            out.append((c, CommentWrite(Side.TRACKER, c.id, f"{header}\n{c.body}", c.public, c.attachments)))
    return out


def _tracker_comments(mapping: Mapping, link: Link, tracker: TrackerIssue, done: frozenset[str]) -> _Pending:
    rules = mapping.comments
    if not rules.tracker_to_desk:
        return []
    out = []
    for c in tracker.comments:
        if _in_scope(c, link, mapping, done):
            public, body = _split_marker(c.body, rules.public_marker)
            header = _fill(rules.to_desk_header,
                           {"author": c.author, "issue_key": tracker.key, "created": _minutes(c.created_at)})
            out.append((c, CommentWrite(Side.DESK, c.id, f"{header}\n{body}", public, c.attachments)))
    return out


def _comment_writes(mapping: Mapping, link: Link, desk: DeskItem, tracker: TrackerIssue,
                    mirrored: MirrorState) -> tuple[CommentWrite, ...]:
    pairs = (_desk_comments(mapping, link, desk, mirrored.to_tracker)
             + _tracker_comments(mapping, link, tracker, mirrored.to_desk))
    pairs.sort(key=lambda p: (_utc(p[0].created_at), p[0].id, p[1].side.value))
    return tuple(write for _, write in pairs)


# ---------------------------------------------------------------- plan

def plan(mapping: Mapping, link: Link, desk: DeskItem, tracker: TrackerIssue,
         base: TMapping[str, BaseEntry], mirrored: MirrorState, started_by: Side = Side.DESK,
         reopen_blind: bool = False) -> Plan:
    """What to write for one link so both sides agree again. Pure: same inputs, same plan.

    ``started_by``: the side the link was made from; it wins ``newest`` conflicts
    on the link's first sync (``base`` empty), see the module docstring.
    ``reopen_blind``: ``desk`` is a remembered copy that may be behind the item: a
    fan-out writes its desk status even where the copy shows it already (an agent may
    have closed the item since), so the plan does not depend on the copy's status."""
    digest = _digest(base)
    first_sync = started_by if not base else None
    writes: dict[tuple[Side, str], FieldWrite] = {}
    new_base: dict[str, BaseEntry] = {}
    decisions: list[Decision] = []
    for rule in mapping.fields:
        if not desk.holds(rule.desk):   # e.g. a ticket-only rule on a conversation
            if rule.name in base:
                new_base[rule.name] = base[rule.name]
            continue
        outcome = _reconcile_field(rule, desk, tracker, base.get(rule.name), first_sync)
        if outcome.write is not None:
            writes[(outcome.write.side, outcome.write.locator)] = outcome.write
        if outcome.decision is not None:
            decisions.append(outcome.decision)
        entry = outcome.base if outcome.base is not None else base.get(rule.name)
        if entry is not None:
            new_base[rule.name] = entry

    # Fan-out looks at the tracker as it will be after this plan's writes: a
    # status the desk is overwriting in this same plan is not announced.
    status = _after(tracker.fields, writes, Side.TRACKER, STATUS_LOCATOR)
    fix_versions = _after(tracker.fields, writes, Side.TRACKER, FIX_VERSIONS_LOCATOR)
    released = _released(tracker, fix_versions)
    fan = _fanout(mapping, link, tracker, status, fix_versions, base, digest)
    if fan.desk_status is not None:
        _set_desk_status(mapping, desk, tracker, fan.desk_status, writes, new_base, decisions, reopen_blind)
    new_base[STATUS_KEY] = BaseEntry(None, status)
    new_base[RELEASED_KEY] = BaseEntry(None, released)
    _stamp_generation(base, new_base)

    notes = (_change_notes(mapping, link, tracker, base, digest) + list(fan.notes)
             + _release_notes(mapping, link, tracker, released, base, digest))
    return Plan(
        field_writes=tuple(sorted(writes.values(), key=lambda w: (w.side.value, w.locator))),
        comment_writes=_comment_writes(mapping, link, desk, tracker, mirrored),
        notes=tuple(sorted(notes, key=lambda n: n.key)),
        new_base=new_base,
        decisions=tuple(sorted(decisions, key=lambda x: (x.field, x.kind, x.detail))),
        fans_out=bool(fan.notes),
    )


def _after(fields: TMapping[str, Value], writes: TMapping[tuple[Side, str], FieldWrite],
           side: Side, locator: str) -> Value:
    write = writes.get((side, locator))
    return write.value if write is not None else fields.get(locator)


def _set_desk_status(mapping: Mapping, desk: DeskItem, tracker: TrackerIssue, status: str,
                     writes: dict[tuple[Side, str], FieldWrite], new_base: dict[str, BaseEntry],
                     decisions: list[Decision], blind: bool = False) -> None:
    """Fan-out reopens the desk item so an agent tells the customer. It overrides
    the status rule's own copy, and the base records the desk status *we* set,
    so the next reconcile does not copy "open" back and reopen the Jira issue.
    A rule that only *shows* the desk status in another Jira field (not the
    watched status) gets the new value in the same plan, so nothing is left over."""
    locator = mapping.fanout.desk_status_field
    rule = next((r for r in mapping.fields if r.desk == locator), None)
    replaced = writes.pop((Side.DESK, locator), None)
    if replaced is not None and replaced.value != status:
        decisions.append(Decision(replaced.field, "skipped",
                                  f"desk value {_show(replaced.value)!r} not written: fan-out sets {status!r}"))
    if blind or not _same(desk.fields.get(locator), status):
        # Named after the status rule when there is one, so an engine that keeps
        # a rule's old base when its write is refused keeps this one too.
        owner = rule.name if rule is not None else "fanout"
        writes[(Side.DESK, locator)] = FieldWrite(Side.DESK, locator, status, owner, old=desk.fields.get(locator),
                                                  fanout=True)
    if rule is None:
        return
    shown = new_base[rule.name].tracker if rule.name in new_base else tracker.fields.get(rule.tracker)
    if rule.tracker != STATUS_LOCATOR and rule.direction.allows(Side.DESK):
        try:
            value = _to_tracker(rule, status)
        except Unmapped:
            value = shown
        if not _same(value, shown):
            writes[(Side.TRACKER, rule.tracker)] = FieldWrite(Side.TRACKER, rule.tracker, value, rule.name,
                                                              old=tracker.fields.get(rule.tracker), fanout=True)
        shown = value
    new_base[rule.name] = BaseEntry(status, shown)


def _stamp_generation(base: TMapping[str, BaseEntry], new_base: dict[str, BaseEntry]) -> None:
    old = base.get(GENERATION_KEY)
    generation = int(old.tracker) if old is not None and isinstance(old.tracker, str) else 0
    previous = {k: v for k, v in base.items() if k != GENERATION_KEY}
    if new_base != previous:
        generation += 1
    new_base[GENERATION_KEY] = BaseEntry(None, str(generation))


def reserved(name: str) -> bool:
    """True for base entry names syncd keeps for itself (mapping rules must not use them)."""
    return name.startswith(RESERVED_PREFIX)
