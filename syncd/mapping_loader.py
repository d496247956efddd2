"""Mapping files (``mappings/*.toml``) → :class:`syncd.mapping.Mapping`, validated.

Every problem names the file, the key (``fields[priority].direction``) and what
was expected; unknown keys are problems. :func:`load_mapping` raises the first,
:func:`read_mapping` returns them all (for ``syncd config check``).

Beyond types, the loader refuses what would make the sync misbehave quietly:
locators the desk or Jira does not have, two rules writing the same field (they
would overwrite each other on every reconcile), a value table for a direction
the rule never copies, and template placeholders the engine does not fill.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path
from typing import Any, Mapping as TMapping

from .toml_reader import REQUIRED, TomlReader, at_least, non_empty, one_of
from .errors import ConfigError
from .mapping import (AttachmentRules, CommentRules, ConflictRule, Direction, EscalationRules,
                      FanoutRules, FieldRule, Mapping)

DESKS = ("zendesk", "intercom")
_DESK_LOCATORS = {
    "zendesk": re.compile(r"status|custom_status|priority|type|tags|subject|custom:\d+"),
    "intercom": re.compile(r"state|tags|attr:.+|ticket_state|ticket_attr:.+"),
}
_TRACKER_LOCATOR = re.compile(r"status|resolution|fixVersions|labels|priority|components|summary|key|customfield_\d+")
_DESK_EXPECTED = {
    "zendesk": "a Zendesk locator: status, custom_status, priority, type, tags, subject or custom:<ticket field id>",
    "intercom": "an Intercom locator: state, tags, attr:<name>, ticket_state or ticket_attr:<name>",
}
_TRACKER_EXPECTED = ("a Jira locator: status, resolution, fixVersions, labels, priority, "
                     "components, summary, key or customfield_<n>")

# Placeholders the engine fills in each template: keep in step with
# syncd/reconcile.py and syncd/engine.py (escalation.summary uses str.format,
# so an unknown name there would fail at escalation time, not at start).
PLACEHOLDERS = {
    "comments.to_tracker_header": {"author", "desk_ref", "created"},
    "comments.to_desk_header": {"author", "issue_key", "created"},
    "escalation.summary": {"title", "ref"},
    "escalation.note": {"issue_key", "issue_url"},
    "fanout.note": {"issue_key", "issue_url", "status", "fix_suffix"},
    "fanout.public_reply": {"issue_key", "issue_url", "status", "fix_suffix"},
    "fanout.on_release_note": {"issue_key", "issue_url", "version"},
}

TOP_KEYS = ("desk", "aggregates", "fields", "comments", "escalation", "fanout", "attachments")
FIELD_KEYS = ("name", "desk", "tracker", "direction", "conflict", "to_tracker", "to_desk",
              "default_to_tracker", "default_to_desk", "note_on_change")


def resolve_mapping_path(ref: str, base: Path) -> Path:
    """``builtin:zendesk-jira`` → the copy shipped in :mod:`syncd.mappings`;
    a relative path is relative to ``base`` (the config file's folder)."""
    if ref.startswith("builtin:"):
        name = ref.removeprefix("builtin:").removesuffix(".toml")
        return Path(str(resources.files("syncd") / "mappings" / f"{name}.toml"))
    path = Path(ref).expanduser()
    return path if path.is_absolute() else base / path


def load_mapping(path: str | Path) -> Mapping:
    """The validated mapping in ``path``; raises the first :class:`ConfigError`."""
    problems, mapping = read_mapping(path)
    if problems:
        raise problems[0]
    assert mapping is not None
    return mapping


def read_mapping(path: str | Path) -> tuple[list[ConfigError], Mapping | None]:
    """All problems of ``path``, and the mapping when there are none."""
    reader = TomlReader(path)
    data = reader.parse()
    if data is None:
        return reader.problems, None
    mapping = _MappingReader(reader).mapping(data)
    return reader.problems, (None if reader.problems else mapping)


class _MappingReader:
    def __init__(self, reader: TomlReader):
        self.r = reader
        self.desk = "zendesk"

    # -- locators and templates

    def desk_locator(self, table: TMapping[str, Any], prefix: str, key: str, default: Any = None) -> str | None:
        pattern = _DESK_LOCATORS[self.desk]
        check = lambda v: None if pattern.fullmatch(v) else _DESK_EXPECTED[self.desk]  # noqa: E731
        return self.r.get(table, prefix, key, "str", default, check)

    def tracker_locator(self, table: TMapping[str, Any], prefix: str, key: str, default: Any = None) -> str | None:
        check = lambda v: None if _TRACKER_LOCATOR.fullmatch(v) else _TRACKER_EXPECTED  # noqa: E731
        return self.r.get(table, prefix, key, "str", default, check)

    def template(self, table: TMapping[str, Any], prefix: str, key: str, default: Any) -> str | None:
        allowed = PLACEHOLDERS[f"{prefix}.{key}"]
        return self.r.get(table, prefix, key, "str", default, lambda v: _template_problem(v, allowed))

    # -- sections

    def mapping(self, data: TMapping[str, Any]) -> Mapping:
        self.r.keys(data, "", TOP_KEYS)
        desk = self.r.get(data, "", "desk", "str", check=one_of(*DESKS))
        self.desk = desk or "zendesk"
        aggregates = self.r.table(data, "", "aggregates") or {}
        return Mapping(
            desk=desk,
            source_path=self.r.path,
            fields=self.fields(data.get("fields", [])),
            comments=self.comments(self.r.table(data, "", "comments") or {}),
            escalation=self.escalation(self.r.table(data, "", "escalation") or {}),
            fanout=self.fanout(self.r.table(data, "", "fanout") or {}),
            attachments=self.attachments(self.r.table(data, "", "attachments") or {}),
            **self.aggregates(aggregates),
        )

    def aggregates(self, t: TMapping[str, Any]) -> dict[str, str | None]:
        keys = ("linked_count_field", "linked_orgs_field", "sla_field")
        self.r.keys(t, "aggregates", keys)
        return {k: self.tracker_locator(t, "aggregates", k) for k in keys}

    def fields(self, items: Any) -> tuple[FieldRule, ...]:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            self.r.problem("fields", "an array of tables [[fields]]")
            return ()
        self.unique_names(items)
        rules = tuple(self.field(i, item) for i, item in enumerate(items, start=1))
        valid = tuple(r for r in rules if r is not None)
        self.one_writer_per_field(valid)
        return valid

    def unique_names(self, items: list[dict[str, Any]]) -> None:
        # Names key the audit log and the stored base: a repeat would mix two fields.
        seen: set[str] = set()
        for item in items:
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                self.r.problem(f"fields[{name}].name", "a field name used once only")
            seen.add(name)

    def field(self, position: int, t: TMapping[str, Any]) -> FieldRule | None:
        name = t.get("name")
        p = f"fields[{name}]" if isinstance(name, str) and name else f"fields[#{position}]"
        self.r.keys(t, p, FIELD_KEYS)
        values = dict(
            name=self.r.get(t, p, "name", "str", check=non_empty),
            desk=self.desk_locator(t, p, "desk", default=REQUIRED),
            tracker=self.tracker_locator(t, p, "tracker", default=REQUIRED),
            direction=self.enum(t, p, "direction", Direction, Direction.BOTH),
            conflict=self.enum(t, p, "conflict", ConflictRule, ConflictRule.NEWEST),
            to_tracker=self.r.get(t, p, "to_tracker", "str_table", {}),
            to_desk=self.r.get(t, p, "to_desk", "str_table", {}),
            default_to_tracker=self.r.get(t, p, "default_to_tracker", "str", None),
            default_to_desk=self.r.get(t, p, "default_to_desk", "str", None),
            note_on_change=self.r.get(t, p, "note_on_change", "bool", False),
        )
        if any(v is None for k, v in values.items() if k in ("name", "desk", "tracker", "direction", "conflict")):
            return None
        self.tables_fit_direction(p, t, values["direction"])
        return FieldRule(**values)

    def enum(self, t: TMapping[str, Any], p: str, key: str, kind: Any, default: Any) -> Any:
        value = self.r.get(t, p, key, "str", default.value, one_of(*(m.value for m in kind)))
        return None if value is None else kind(value)

    def tables_fit_direction(self, p: str, t: TMapping[str, Any], direction: Direction) -> None:
        # A table for a direction the rule never copies would be silently ignored.
        if direction is Direction.DESK_TO_TRACKER:
            unused = ("to_desk", "default_to_desk", "note_on_change")
        elif direction is Direction.TRACKER_TO_DESK:
            unused = ("to_tracker", "default_to_tracker")
        else:
            unused = ()
        for key in unused:
            if key in t:
                self.r.problem(f"{p}.{key}", f"no {key} with direction = \"{direction.value}\" (it would never be used)")

    def one_writer_per_field(self, rules: tuple[FieldRule, ...]) -> None:
        writers: dict[tuple[str, str], str] = {}
        for rule in rules:
            for side, locator, writes in (("desk", rule.desk, rule.direction is not Direction.DESK_TO_TRACKER),
                                          ("tracker", rule.tracker, rule.direction is not Direction.TRACKER_TO_DESK)):
                if not writes:
                    continue
                other = writers.setdefault((side, locator), rule.name)
                if other != rule.name:
                    self.r.problem(f"fields[{rule.name}].{side}",
                                   f"a {side} field no other rule writes ({locator} is already written by "
                                   f"fields[{other}]; two writers would overwrite each other)")

    def comments(self, t: TMapping[str, Any]) -> CommentRules:
        p, d = "comments", CommentRules()
        self.r.keys(t, p, CommentRules.__dataclass_fields__)
        return CommentRules(
            desk_public_to_tracker=self.r.get(t, p, "desk_public_to_tracker", "bool", d.desk_public_to_tracker),
            desk_internal_to_tracker=self.r.get(t, p, "desk_internal_to_tracker", "bool", d.desk_internal_to_tracker),
            tracker_to_desk=self.r.get(t, p, "tracker_to_desk", "bool", d.tracker_to_desk),
            public_marker=self.r.get(t, p, "public_marker", "str", d.public_marker, non_empty),
            mirror_history=self.r.get(t, p, "mirror_history", "bool", d.mirror_history),
            to_tracker_header=self.template(t, p, "to_tracker_header", d.to_tracker_header),
            to_desk_header=self.template(t, p, "to_desk_header", d.to_desk_header),
        )

    def escalation(self, t: TMapping[str, Any]) -> EscalationRules:
        p, d = "escalation", EscalationRules()
        self.r.keys(t, p, EscalationRules.__dataclass_fields__)
        fields = self.r.get(t, p, "fields", "str_table", {})
        for locator in fields or {}:
            if not _TRACKER_LOCATOR.fullmatch(locator):
                self.r.problem(f"{p}.fields.{locator}", _TRACKER_EXPECTED)
        project_values = self.r.get(t, p, "project_values", "str_table", {})
        for value, key in (project_values or {}).items():
            if not re.fullmatch(r"[A-Z][A-Z0-9_]+", key):
                self.r.problem(f"{p}.project_values.{value}", f"a Jira project key like \"SUP\", got {key!r}")
        return EscalationRules(
            tag=self.r.get(t, p, "tag", "str", d.tag, non_empty),
            project_field=self.desk_locator(t, p, "project_field"),
            project_values=project_values,
            default_project=self.r.get(t, p, "default_project", "str", None, _project_key),
            issue_type=self.r.get(t, p, "issue_type", "str", d.issue_type, non_empty),
            summary=self.template(t, p, "summary", d.summary),
            labels=self.r.get(t, p, "labels", "str_list", d.labels),
            key_field=self.desk_locator(t, p, "key_field"),
            linked_tag=self.r.get(t, p, "linked_tag", "str", d.linked_tag, non_empty),
            note=self.template(t, p, "note", d.note),
            fields=fields,
        )

    def fanout(self, t: TMapping[str, Any]) -> FanoutRules:
        p, d = "fanout", FanoutRules()
        self.r.keys(t, p, FanoutRules.__dataclass_fields__)
        # TOML has no null: an empty string switches an optional action off.
        desk_status = self.r.get(t, p, "desk_status", "str", d.desk_status)
        public_reply = self.template(t, p, "public_reply", d.public_reply or "")
        return FanoutRules(
            on_status=self.r.get(t, p, "on_status", "str_list", d.on_status),
            note=self.template(t, p, "note", d.note),
            desk_status=desk_status or None,
            desk_status_field=self.r.get(t, p, "desk_status_field", "str", d.desk_status_field),
            public_reply=public_reply or None,
            on_release_note=self.template(t, p, "on_release_note", d.on_release_note),
        )

    def attachments(self, t: TMapping[str, Any]) -> AttachmentRules:
        p, d = "attachments", AttachmentRules()
        self.r.keys(t, p, AttachmentRules.__dataclass_fields__)
        return AttachmentRules(
            enabled=self.r.get(t, p, "enabled", "bool", d.enabled),
            max_bytes=self.r.get(t, p, "max_bytes", "int", d.max_bytes, at_least(1)),
            mode=self.r.get(t, p, "mode", "str", d.mode, one_of("upload", "link")),
        )


def _project_key(v: str) -> str | None:
    return None if re.fullmatch(r"[A-Z][A-Z0-9_]+", v) else "a Jira project key like \"SUP\""


def _template_problem(text: str, allowed: set[str]) -> str | None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        return f"a template with balanced braces ({exc})"
    unknown = sorted(n for n in names if n not in allowed)
    if unknown:
        return f"a template using only {{{'}, {'.join(sorted(allowed))}}} (unknown: {', '.join(unknown)})"
    return None
