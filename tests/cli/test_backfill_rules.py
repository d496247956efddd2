"""``syncd backfill``'s pure parts: which items the escalation rules want (as the engine
reads a desk item), when syncd already holds what they ask for, and ``--since``."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from syncd.backfill import parse_since, settled, wanted
from syncd.domain import ItemRef, Link
from syncd.mapping import EscalationRules

RULES = EscalationRules(tag="jira_escalate", project_field="custom:5", key_field="custom:1")
REF = ItemRef("zendesk", "7")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def _link(key: str, issue_id: str = "10") -> Link:
    return Link(1, REF, issue_id, key, NOW)


def test_the_rules_the_engine_escalates_or_links_by() -> None:
    assert wanted(REF, {"tags": ("jira_escalate", "vip")}, RULES).why == "tag jira_escalate"
    assert wanted(REF, {"tags": ("jira_escalated",)}, RULES) is None      # a tag, not a substring
    assert wanted(REF, {"custom:5": "sup"}, RULES).escalate
    typed = wanted(REF, {"custom:1": "see sup-12 and ENG-3, SUP-12"}, RULES)
    assert typed.keys == ("SUP-12", "ENG-3") and not typed.escalate
    assert typed.why == "key field names SUP-12, ENG-3"
    assert wanted(REF, {"custom:1": "no key here", "tags": None, "custom:5": None}, RULES) is None
    assert wanted(REF, {"tags": ("jira_escalate",)}, EscalationRules(tag="")) is None


def test_already_linked_means_every_typed_key_linked() -> None:
    escalate = wanted(REF, {"tags": ("jira_escalate",)}, RULES)
    assert not settled(escalate, [])
    assert settled(escalate, [_link("SUP-1")])
    typed = wanted(REF, {"custom:1": "SUP-1 ENG-2"}, RULES)
    assert not settled(typed, [_link("SUP-1")])
    assert settled(typed, [_link("SUP-1"), _link("ENG-2", "11")])


def test_since_accepts_dates_and_utc_times() -> None:
    assert parse_since("2026-11-30", NOW) == datetime(2026, 11, 30, tzinfo=timezone.utc)
    assert parse_since("2026-11-30T08:15:00Z", NOW) == datetime(2026, 11, 30, 8, 15, tzinfo=timezone.utc)
    assert parse_since("2026-11-30T08:15", NOW) == datetime(2026, 11, 30, 8, 15, tzinfo=timezone.utc)
    assert parse_since("2026-11-30T09:15:00+01:00", NOW) == datetime(2026, 11, 30, 8, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-02-30", "30/11/2026", "2026-11-30T24:00:00Z",
                                 "2026-11-30; DROP TABLE dirty", "1" * 500])
def test_since_refuses_with_the_expectation(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not a date \(2026-11-30\) or a UTC time"):
        parse_since(bad, NOW)


def test_since_in_the_future_is_refused() -> None:
    with pytest.raises(ValueError, match="is in the future"):
        parse_since("2026-12-03", NOW)
