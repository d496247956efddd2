"""The per-vendor count of refused deliveries behind /readyz's webhook warnings."""

from __future__ import annotations

from syncd.webhook_flow import REFUSAL_STREAK, WebhookFlow


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_run_of_refusals_warns_and_one_accepted_delivery_ends_it():
    clock = Clock()
    flow = WebhookFlow(clock)
    flow.accepted("jira")
    clock.now += 60
    for _ in range(REFUSAL_STREAK - 1):
        flow.refused("jira", "bad_signature")
    assert flow.warnings() == [], "a stray forged request is not a broken configuration"
    flow.refused("jira", "bad_signature")
    clock.now += 5
    [warning] = flow.warnings()
    assert warning.startswith(f"webhooks jira: {REFUSAL_STREAK} deliveries refused in a row (last: bad_signature, 5s ago)")
    assert "last accepted 65s ago" in warning
    assert flow.report()["jira"] == {"last_accepted_age_seconds": 65.0,
                                     "refused_since_last_accepted": REFUSAL_STREAK, "last_refusal": "bad_signature"}
    flow.accepted("jira")
    assert flow.warnings() == [] and flow.report()["jira"]["refused_since_last_accepted"] == 0


def test_vendors_are_counted_apart_and_never_accepted_says_so():
    flow = WebhookFlow(Clock())
    for _ in range(REFUSAL_STREAK):
        flow.refused("zendesk", "stale_timestamp")
        flow.accepted("jira")
    [warning] = flow.warnings()
    assert warning.startswith("webhooks zendesk: ") and "last accepted never since start" in warning
