"""Mapping files: the shipped ones load as documented; mistakes are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.errors import ConfigError
from syncd.mapping import ConflictRule, Direction
from syncd.mapping_loader import load_mapping, read_mapping

REPO = Path(__file__).resolve().parents[2]
ZENDESK = REPO / "mappings" / "zendesk-jira.toml"
INTERCOM = REPO / "mappings" / "intercom-jira.toml"

FIELD = """
desk = "zendesk"

[[fields]]
name = "priority"
desk = "priority"
tracker = "priority"
"""


def problems_of(tmp_path: Path, text: str) -> list[ConfigError]:
    path = tmp_path / "m.toml"
    path.write_text(text)
    problems, mapping = read_mapping(path)
    assert mapping is None and problems
    assert all(p.path == str(path) for p in problems)
    with pytest.raises(ConfigError):
        load_mapping(path)
    return problems


def only(tmp_path: Path, text: str) -> ConfigError:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.mark.parametrize("name", ["zendesk-jira.toml", "intercom-jira.toml"])
def test_package_copy_is_identical(name):
    assert (REPO / "syncd" / "mappings" / name).read_bytes() == (REPO / "mappings" / name).read_bytes()


def test_zendesk_mapping_maps_what_support_needs():
    m = load_mapping(ZENDESK)
    assert m.desk == "zendesk" and m.source_path == str(ZENDESK)
    status = m.field("jira_status")
    assert (status.desk, status.tracker, status.direction, status.note_on_change) == (
        "custom:9002", "status", Direction.TRACKER_TO_DESK, True)
    assert (m.field("jira_resolution").desk, m.field("jira_fix_versions").desk) == ("custom:9003", "custom:9004")
    prio = m.field("priority")
    assert prio.direction is Direction.BOTH and prio.conflict is ConflictRule.NEWEST
    assert dict(prio.to_tracker) == {"urgent": "Highest", "high": "High", "normal": "Medium", "low": "Low"}
    assert all(prio.to_desk[prio.to_tracker[v]] == v for v in prio.to_tracker)   # round trip
    desk_status = m.field("desk_status")
    assert (desk_status.tracker, desk_status.direction) == ("customfield_10055", Direction.DESK_TO_TRACKER)
    impact = m.field("customer_impact")
    assert (impact.desk, impact.tracker, impact.direction) == ("custom:9006", "customfield_10050", Direction.BOTH)
    assert (m.escalation.key_field, m.escalation.project_field) == ("custom:9001", "custom:9005")
    assert m.fanout.on_status == ("Done",) and m.fanout.public_reply is None
    assert (m.linked_count_field, m.linked_orgs_field, m.sla_field) == (
        "customfield_10051", "customfield_10054", "customfield_10052")
    assert (m.fanout.desk_status, m.fanout.desk_status_field) == ("open", "status")


def test_intercom_mapping_uses_intercom_locators():
    m = load_mapping(INTERCOM)
    assert m.desk == "intercom"
    assert all(r.desk.startswith(("attr:", "ticket_attr:")) or r.desk in ("state", "tags", "ticket_state")
               for r in m.fields)
    assert m.field("ticket_state").to_desk["Done"] == "resolved"


def test_minimal_mapping_takes_the_model_defaults(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(FIELD)
    m = load_mapping(path)
    assert m.field("priority").direction is Direction.BOTH and m.escalation.tag == "jira_escalate"
    assert m.fanout.desk_status == "open" and m.linked_count_field is None


def test_bad_direction_enum(tmp_path):
    err = only(tmp_path, FIELD + 'direction = "sideways"\n')
    assert err.key == "fields[priority].direction"
    assert "desk_to_tracker" in err.expected and "'sideways'" in err.expected


def test_bad_conflict_enum(tmp_path):
    err = only(tmp_path, FIELD + 'conflict = "jira"\n')
    assert err.key == "fields[priority].conflict" and "newest" in err.expected


def test_unknown_keys_anywhere(tmp_path):
    problems = problems_of(tmp_path, FIELD + 'directon = "both"\n\n[fanout]\nnotes = "x"\n\n[extra]\n')
    assert {p.key for p in problems} == {"fields[priority].directon", "fanout.notes", "extra"}


def test_duplicate_field_names(tmp_path):
    text = FIELD + '\n[[fields]]\nname = "priority"\ndesk = "subject"\ntracker = "summary"\n'
    err = only(tmp_path, text)
    assert err.key == "fields[priority].name" and "once" in err.expected


def test_two_rules_writing_one_field(tmp_path):
    text = FIELD + '\n[[fields]]\nname = "p2"\ndesk = "custom:1"\ntracker = "priority"\n'
    err = only(tmp_path, text)
    assert err.key == "fields[p2].tracker" and "fields[priority]" in err.expected


def test_value_table_must_map_strings_to_strings(tmp_path):
    err = only(tmp_path, FIELD + "\n[fields.to_tracker]\nurgent = 1\n")
    assert err.key == "fields[priority].to_tracker" and "string = string" in err.expected


def test_table_for_a_direction_never_copied(tmp_path):
    err = only(tmp_path, FIELD + 'direction = "desk_to_tracker"\n\n[fields.to_desk]\nHigh = "high"\n')
    assert err.key == "fields[priority].to_desk" and "desk_to_tracker" in err.expected


def test_locators_must_exist_on_their_side(tmp_path):
    problems = problems_of(tmp_path, FIELD.replace('desk = "priority"', 'desk = "attr:prio"')
                           .replace('tracker = "priority"', 'tracker = "customfield_x"'))
    by_key = {p.key: p.expected for p in problems}
    assert "custom:<ticket field id>" in by_key["fields[priority].desk"]
    assert "customfield_<n>" in by_key["fields[priority].tracker"]


def test_missing_required_field_key(tmp_path):
    err = only(tmp_path, FIELD.replace('tracker = "priority"\n', ""))
    assert err.key == "fields[priority].tracker" and "missing" in err.expected


def test_unknown_desk(tmp_path):
    err = only(tmp_path, FIELD.replace('desk = "zendesk"', 'desk = "freshdesk"'))
    assert err.key == "desk" and "zendesk" in err.expected and "intercom" in err.expected


def test_template_placeholders_are_checked(tmp_path):
    err = only(tmp_path, FIELD + '\n[escalation]\nnote = "Escalated: {issue_kye}"\n')
    assert err.key == "escalation.note" and "issue_kye" in err.expected and "issue_key" in err.expected


def test_all_problems_are_reported_together(tmp_path):
    text = FIELD + ('direction = "x"\n\n[[fields]]\nname = "priority"\ndesk = "status"\ntracker = "labels"\n'
                    '\n[attachments]\nmode = "fax"\nmax_bytes = "big"\n\n[escalation]\ndefault_project = "sup"\n')
    keys = {p.key for p in problems_of(tmp_path, text)}
    assert keys == {"fields[priority].direction", "fields[priority].name", "attachments.mode",
                    "attachments.max_bytes", "escalation.default_project"}


def test_missing_file_and_syntax_error(tmp_path):
    problems, _ = read_mapping(tmp_path / "absent.toml")
    assert [p.key for p in problems] == ["(file)"]
    err = only(tmp_path, FIELD + "name = \n")
    assert err.key.startswith("line 8,") and "TOML" in err.expected
